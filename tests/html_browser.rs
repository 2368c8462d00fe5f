//! The HTML report in a real headless browser (Debian's `chromium`, installed by `.ci/run`): the
//! page loads from a file with the network off, its script runs, and the DOM after the script holds
//! the verdict, the first divergence and one table row per tensor; address fragments filter and
//! sort the table as documented. A screenshot is kept in `target/test-artifacts/` for a human to
//! look at. Without a browser the test says `skipped` (and fails under `CI`).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{in_ci, sample};
use trtlens::compare::report::{Report, Status};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn unavailable(what: &str) -> TestResult {
    if in_ci() {
        return Err(format!("{what} (CI must install it: apt-get install -y chromium)").into());
    }
    println!("skipped: {what}");
    Ok(())
}

/// `TRTLENS_CHROMIUM`, else `chromium` or `chromium-browser` on the `PATH`.
fn chromium() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("TRTLENS_CHROMIUM").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH")?;
    ["chromium", "chromium-browser"]
        .iter()
        .flat_map(|name| std::env::split_paths(&path).map(move |d| d.join(name)))
        .find(|p| p.is_file())
}

/// Run headless Chromium on `url` with `args` (`--dump-dom`, `--screenshot=...`): a fresh profile,
/// no network, no sandbox (CI runs as root).
fn browse(chrome: &Path, profile: &Path, url: &str, args: &[&str]) -> Result<String, Box<dyn std::error::Error>> {
    let out = Command::new(chrome)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-quic",
            "--no-first-run",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        .output()?;
    if !out.status.success() {
        return Err(format!("chromium failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr)).into());
    }
    Ok(String::from_utf8(out.stdout)?)
}

/// The text inside the element with `id`, up to its first child tag (the DOM as Chromium serializes it).
fn text_of<'a>(dom: &'a str, id: &str) -> Option<&'a str> {
    let at = dom.find(&format!("id=\"{id}\""))?;
    let rest = &dom[at..];
    let start = rest.find('>')? + 1;
    let end = rest[start..].find('<')?;
    Some(&rest[start..start + end])
}

/// The `<tr>` opening tags of the layers table body, in document order.
fn rows(dom: &str) -> Vec<&str> {
    let Some(table) = dom.split("<table id=\"layers\">").nth(1) else { return Vec::new() };
    let body = table.split("<tbody>").nth(1).and_then(|b| b.split("</tbody>").next()).unwrap_or("");
    body.split("<tr ").skip(1).map(|r| &r[..r.find('>').unwrap_or(r.len())]).collect()
}

/// True when a row's opening tag has the `hidden` attribute (Chromium writes `hidden=""`).
fn hidden(tag: &str) -> bool {
    tag.contains(" hidden=\"\"") || tag.ends_with(" hidden")
}

fn attr<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let at = tag.find(&format!("{name}=\""))? + name.len() + 2;
    Some(&tag[at..at + tag[at..].find('"')?])
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", "\"").replace("&#39;", "'").replace("&amp;", "&")
}

#[test]
fn the_html_report_works_in_a_headless_browser() -> TestResult {
    let Some(chrome) = chromium() else { return unavailable("chromium not installed") };
    let tmp = tempfile::tempdir()?;
    let html = tmp.path().join("report.html");
    let json = tmp.path().join("report.json");
    // A model that fails: several tensors, a first divergence, a first non-finite tensor.
    let out = Command::new(env!("CARGO_BIN_EXE_trtlens"))
        .arg("compare")
        .arg(sample("layernorm_overflow"))
        .args(["--reference", "tract", "--candidate", "cpu-fp16", "--quiet", "--report"])
        .arg(&json)
        .arg("--html")
        .arg(&html)
        .output()?;
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let report: Report = serde_json::from_slice(&std::fs::read(&json)?)?;
    let first = report.first_divergence.clone().ok_or("the sample diverges")?;
    let url = format!("file://{}", html.display());
    let profile = tmp.path().join("profile");

    let dom = browse(&chrome, &profile, &url, &["--dump-dom"])?;
    assert!(dom.contains("data-ready=\"1\""), "the page's script ran");
    assert_eq!(text_of(&dom, "verdict"), Some("FAIL"));
    let div = dom.split("id=\"first-divergence\"").nth(1).ok_or("first divergence element")?;
    assert_eq!(attr(div, "data-tensor").map(unescape), Some(first.clone()));
    assert_eq!(text_of(&dom, "first-divergence").map(unescape), Some(first.clone()));
    let nonfinite = report.first_nonfinite.clone().ok_or("the sample has a non-finite tensor")?;
    assert_eq!(text_of(&dom, "first-nonfinite").map(unescape), Some(nonfinite));
    let n = report.tensors.len();
    assert_eq!(rows(&dom).len(), n, "one row per tensor");
    assert_eq!(text_of(&dom, "row-count"), Some(format!("{n} of {n} rows").as_str()));
    assert!(rows(&dom).iter().all(|r| !hidden(r)));
    assert_eq!(dom.matches("<svg ").count(), 4, "four plots drawn inline");

    // #failing: the script filters to the failing and skipped rows.
    let failing = report.tensors.iter().filter(|t| t.status != Status::Pass).count();
    assert!(failing > 0 && failing < n, "the sample has passing and failing tensors");
    let dom = browse(&chrome, &profile, &format!("{url}#failing"), &["--dump-dom"])?;
    assert_eq!(text_of(&dom, "row-count"), Some(format!("{failing} of {n} rows").as_str()));
    let visible: Vec<&str> = rows(&dom).into_iter().filter(|r| !hidden(r)).collect();
    assert_eq!(visible.len(), failing);
    assert!(visible.iter().all(|r| attr(r, "data-status") != Some("pass")));

    // #sort=10-desc: largest reference magnitude first (column 10), as the report says.
    let dom = browse(&chrome, &profile, &format!("{url}#sort=10-desc"), &["--dump-dom"])?;
    let top = report
        .tensors
        .iter()
        .filter_map(|t| t.metrics.as_ref().map(|m| (m.reference_abs_max, t)))
        .filter(|(v, _)| v.is_finite())
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .ok_or("metrics")?
        .1;
    let first_row = rows(&dom).first().copied().ok_or("rows")?;
    let search = attr(first_row, "data-search").map(unescape).unwrap_or_default();
    assert!(search.starts_with(&top.name.to_lowercase()), "{search} should be {}", top.name);

    // The screenshot, kept for people.
    let artifacts = Path::new(env!("CARGO_TARGET_TMPDIR")).parent().ok_or("target dir")?.join("test-artifacts");
    std::fs::create_dir_all(&artifacts)?;
    let shot = artifacts.join("html-report.png");
    let _ = std::fs::remove_file(&shot);
    browse(&chrome, &profile, &url, &["--window-size=1400,2000", &format!("--screenshot={}", shot.display())])?;
    let png = std::fs::read(&shot)?;
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "a PNG screenshot");
    let decoder = png::Decoder::new(std::io::Cursor::new(png.as_slice()));
    let info = decoder.read_info()?.info().clone();
    assert_eq!((info.width, info.height), (1400, 2000));
    println!("screenshot: {}", shot.display());
    Ok(())
}
