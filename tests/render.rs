//! Shareable results: every plot of every sample is a valid PNG and a valid SVG of the documented
//! size; the markdown summary and the HTML page say what the report says; `trtlens report` and
//! `compare --html/--markdown/--plots` write what they are asked and name it; bad destinations and
//! missing runs are one-line errors. (The HTML page in a real browser: `tests/html_browser.rs`.)

mod common;

use std::path::Path;
use std::process::Command;

use common::sample;
use trtlens::compare::report::{Report, Status};
use trtlens::render::plots::{self, MODEL_SIZE, PlotFormat, SearchRun, SearchTrace, TENSOR_SIZE};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_trtlens"))
}

/// `trtlens compare SAMPLE --reference tract --candidate cpu-fp16` at the sample's policy and shapes,
/// runs kept in `dir/runs`, report in `dir/report.json`.
fn compare_sample(
    s: &trtlens::samples::Sample,
    dir: &Path,
    extra: &[&str],
) -> Result<Report, Box<dyn std::error::Error>> {
    let report = dir.join("report.json");
    let out = bin()
        .arg("compare")
        .arg(sample(s.name))
        .args(["--reference", "tract", "--candidate", "cpu-fp16", "--out-of-range", s.policy.name(), "--quiet"])
        .args(s.shape_args())
        .arg("--save-runs")
        .arg(dir.join("runs"))
        .arg("--report")
        .arg(&report)
        .args(extra)
        .output()?;
    let code = out.status.code().unwrap_or(-1);
    if code > 1 {
        return Err(format!("{}: compare exited {code}: {}", s.name, String::from_utf8_lossy(&out.stderr)).into());
    }
    Ok(serde_json::from_slice(&std::fs::read(report)?)?)
}

/// The PNG decodes completely (signature, chunks, CRCs, zlib stream), has `size` and is not blank.
fn check_png(bytes: &[u8], size: (u32, u32), what: &str) -> TestResult {
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "{what}: PNG signature");
    let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    let mut reader = decoder.read_info()?;
    let info = reader.info();
    assert_eq!((info.width, info.height), size, "{what}: PNG size");
    let mut buf = vec![0; reader.output_buffer_size()];
    let frame = reader.next_frame(&mut buf)?;
    let pixels = &buf[..frame.buffer_size()];
    let inked = pixels.chunks(3).filter(|p| p.iter().any(|&c| c < 200)).count();
    assert!(inked > 2000, "{what}: only {inked} drawn pixels");
    Ok(())
}

/// The SVG is well-formed XML with an `<svg>` root of `size` and some text (axis labels, title).
fn check_svg(bytes: &[u8], size: (u32, u32), what: &str) -> TestResult {
    let text = std::str::from_utf8(bytes)?;
    let doc = roxmltree::Document::parse(text).map_err(|e| format!("{what}: not well-formed SVG: {e}"))?;
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "svg", "{what}");
    assert_eq!(root.attribute("width"), Some(size.0.to_string().as_str()), "{what}: width");
    assert_eq!(root.attribute("height"), Some(size.1.to_string().as_str()), "{what}: height");
    let texts = doc.descendants().filter(|n| n.has_tag_name("text")).count();
    assert!(texts >= 10, "{what}: {texts} text elements");
    assert!(!text.contains("href"), "{what}: nothing is linked");
    Ok(())
}

fn trace() -> SearchTrace {
    SearchTrace {
        runs: [(0, false), (12, true), (6, true), (3, false), (4, true)]
            .iter()
            .map(|&(kept_fp32, passed)| SearchRun { kept_fp32, passed })
            .collect(),
        kept: vec!["mlp/fc1/MatMul".into(), "mlp/fc1/Add".into(), "mlp/act/Relu".into(), "mlp/fc2/MatMul".into()],
    }
}

#[test]
fn every_plot_of_every_sample_is_a_valid_png_and_svg_of_its_size() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let search = trace();
    let mut tensor_plots = 0;
    for s in trtlens::samples::all() {
        let dir = tmp.path().join(s.name);
        let report = compare_sample(&s, &dir, &[])?;
        let name = trtlens::render::default_tensor(&report).ok_or("no tensor to plot")?.to_string();
        let pair = trtlens::render::load_pair(&report, &name)?;
        assert_eq!(pair.reference.len(), pair.candidate.len(), "{}", s.name);
        for format in [PlotFormat::Png, PlotFormat::Svg] {
            let all = plots::all(&report, std::slice::from_ref(&pair), Some(&search), format)?;
            let stems: Vec<&str> = all.iter().map(|p| p.stem.as_str()).collect();
            let stem = trtlens::text::file_stem(&name);
            assert_eq!(
                stems,
                ["error", "overflow", &format!("histogram-{stem}"), &format!("scatter-{stem}"), "search"],
                "{}",
                s.name
            );
            for p in &all {
                let size = if p.stem.starts_with("histogram") || p.stem.starts_with("scatter") {
                    tensor_plots += 1;
                    TENSOR_SIZE
                } else {
                    MODEL_SIZE
                };
                let what = format!("{} {}.{}", s.name, p.stem, format.extension());
                match format {
                    PlotFormat::Png => check_png(&p.bytes, size, &what)?,
                    PlotFormat::Svg => check_svg(&p.bytes, size, &what)?,
                }
            }
        }
    }
    assert!(tensor_plots >= 4 * trtlens::samples::all().len());
    Ok(())
}

#[test]
fn plots_mark_the_first_divergence_the_fp16_range_and_non_finite_values() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let s = trtlens::samples::find("mlp_overflow").ok_or("no sample")?;
    let report = compare_sample(&s, tmp.path(), &[])?;
    let first = report.first_divergence.clone().ok_or("mlp_overflow diverges")?;
    let svg = String::from_utf8(plots::error_along_order(&report, PlotFormat::Svg)?)?;
    assert!(svg.contains(&format!("first divergence: {first}")), "the first divergence is named");
    assert!(svg.contains("first non-finite:"), "the first non-finite tensor is named");
    assert!(svg.contains("tolerance: atol + rtol * max|reference|"), "the tolerance line is in the legend");
    assert!(svg.contains("NaN/inf in the candidate"), "non-finite tensors are drawn and said");
    let overflow = String::from_utf8(plots::overflow_map(&report, PlotFormat::Svg)?)?;
    for label in ["FP16 max 65504", "smallest subnormal 5.96e-8", "OVF: values above 65504"] {
        assert!(overflow.contains(label), "overflow map: {label}");
    }
    // Pass and fail colours and precision colours come from the report: an all-passing FP32
    // comparison has no FP16 series and no divergence marker.
    let s = trtlens::samples::find("cnn_bn_relu").ok_or("no sample")?;
    let out = bin()
        .arg("compare")
        .arg(sample(s.name))
        .args(["--reference", "tract", "--candidate", "tract", "--quiet", "--json"])
        .output()?;
    assert_eq!(out.status.code(), Some(0));
    let fp32: Report = serde_json::from_slice(&out.stdout)?;
    let svg = String::from_utf8(plots::error_along_order(&fp32, PlotFormat::Svg)?)?;
    assert!(svg.contains("FP32 tensor") && !svg.contains("FP16 tensor") && !svg.contains("first divergence"));
    assert!(svg.contains("errors of exactly 0 are drawn on the bottom edge"));
    Ok(())
}

#[test]
fn markdown_summary_says_what_the_report_says() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let s = trtlens::samples::find("mlp_overflow").ok_or("no sample")?;
    let report = compare_sample(&s, tmp.path(), &[])?;
    let md = trtlens::render::markdown::summary(&report);
    assert!(md.starts_with("### trtlens: FAIL ❌"), "{md}");
    let first = report.first_divergence.as_deref().ok_or("diverges")?;
    assert!(md.contains(&format!("| first divergence | `{first}`")), "{md}");
    assert!(md.contains("| graph outputs | 0/1 pass |"), "{md}");
    let failing = report.tensors.iter().filter(|t| t.status != Status::Pass).count();
    assert!(md.contains(&format!("<summary>{failing} failing or flagged tensors</summary>")), "{md}");
    let rows = md.lines().filter(|l| l.starts_with("| ") && l.contains("| `")).count();
    assert_eq!(rows, failing + 2, "table rows plus the two key rows naming tensors");
    let pass = trtlens::samples::find("cnn_bn_relu").ok_or("no sample")?;
    let ok = compare_sample(&pass, &tmp.path().join("pass"), &[])?;
    assert!(ok.passed());
    let md = trtlens::render::markdown::summary(&ok);
    assert!(md.starts_with("### trtlens: PASS ✅") && md.contains("| first divergence | none |"), "{md}");
    Ok(())
}

#[test]
fn the_html_page_is_self_contained_and_holds_the_report() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let s = trtlens::samples::find("attention_mask_f32min").ok_or("no sample")?;
    let report = compare_sample(&s, tmp.path(), &[])?;
    let name = trtlens::render::default_tensor(&report).ok_or("a tensor")?;
    let pair = trtlens::render::load_pair(&report, name)?;
    let html = trtlens::render::html::page(&report, &[pair], &trtlens::render::Extras::default())?;
    // No network: nothing linked or loaded, a policy forbidding it; the only URL is the SVG namespace.
    for banned in ["<link", "src=", "@import", "url(", "fetch(", "XMLHttpRequest"] {
        assert!(!html.contains(banned), "the page contains {banned}");
    }
    let urls = html.matches("http://").count() + html.matches("https://").count() + html.matches("file:").count();
    assert_eq!(urls, html.matches("http://www.w3.org/2000/svg").count(), "no URL but the SVG namespace");
    assert!(html.contains("Content-Security-Policy\" content=\"default-src 'none'"));
    assert_eq!(html.matches("<svg ").count(), 4, "error, overflow, histogram and scatter embedded");
    // The rows: one per tensor.
    let body = html.split("<table id=\"layers\">").nth(1).ok_or("layers table")?;
    let tbody = body.split("</tbody>").next().ok_or("tbody")?;
    assert_eq!(tbody.matches("<tr ").count(), report.tensors.len());
    // The embedded JSON is the report.
    let json = html.split("<script type=\"application/json\" id=\"report-json\">").nth(1).ok_or("report-json")?;
    let json = json.split("</script>").next().ok_or("end of report-json")?;
    let back: Report = serde_json::from_str(json)?;
    assert_eq!(back.to_json()?, report.to_json()?);
    // The plan the candidate ran with is on the page.
    assert!(report.candidate.plan.is_some(), "a cpu-fp16 side records its plan");
    assert!(
        html.contains("<section id=\"plan\">") && html.contains(&format!("out-of-range values: <b>{}</b>", s.policy))
    );
    Ok(())
}

fn run(cmd: &mut Command) -> Result<(i32, String, String), Box<dyn std::error::Error>> {
    let out = cmd.output()?;
    Ok((
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

fn files(dir: &Path) -> Result<Vec<String>, Box<dyn std::error::Error>> {
    let mut v: Vec<String> = std::fs::read_dir(dir)?
        .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<Result<_, _>>()?;
    v.sort();
    Ok(v)
}

#[test]
fn report_command_writes_what_it_is_asked_and_names_it() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let s = trtlens::samples::find("softmax_naive").ok_or("no sample")?;
    let report = compare_sample(&s, tmp.path(), &[])?;
    let json = tmp.path().join("report.json");
    let plots_dir = tmp.path().join("plots");
    let (html, md) = (tmp.path().join("r.html"), tmp.path().join("r.md"));
    let chosen = report.tensors.last().ok_or("tensors")?.name.clone();
    let (code, _, err) = run(bin()
        .arg("report")
        .arg(&json)
        .arg("--plots")
        .arg(&plots_dir)
        .args(["--format", "svg", "--plot-tensor", &chosen])
        .arg("--html")
        .arg(&html)
        .arg("--markdown")
        .arg(&md))?;
    assert_eq!(code, 0, "{err}");
    let stem = trtlens::text::file_stem(&chosen);
    let mut expected = vec![
        "error.svg".to_string(),
        "overflow.svg".into(),
        format!("histogram-{stem}.svg"),
        format!("scatter-{stem}.svg"),
    ];
    assert!(err.contains(&format!("plots written to {}: {}", plots_dir.display(), expected.join(", "))), "{err}");
    expected.sort();
    assert_eq!(files(&plots_dir)?, expected, "only the plots, no temporary files left");
    assert!(err.contains(&format!("HTML report written to {}", html.display())), "{err}");
    assert!(err.contains(&format!("markdown summary written to {}", md.display())), "{err}");
    assert!(std::fs::read_to_string(&html)?.contains(&format!("id=\"plot-histogram-{stem}\"")));
    assert!(std::fs::read_to_string(&md)?.starts_with("### trtlens:"));
    // Without outputs it prints the table again.
    let (code, out, _) = run(bin().arg("report").arg(&json))?;
    assert_eq!(code, 0);
    assert!(out.contains("verdict: ") && out.contains(&report.tensors[0].name));
    Ok(())
}

#[test]
fn compare_writes_plots_html_and_markdown_itself() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path();
    let (code, _, err) = run(bin()
        .arg("compare")
        .arg(sample("layernorm_overflow"))
        .args(["--reference", "tract", "--candidate", "cpu-fp16", "--report"])
        .arg(dir.join("r.json"))
        .arg("--html")
        .arg(dir.join("r.html"))
        .arg("--markdown")
        .arg(dir.join("r.md"))
        .arg("--plots")
        .arg(dir.join("plots")))?;
    assert!(code == 0 || code == 1, "{err}");
    let report: Report = serde_json::from_slice(&std::fs::read(dir.join("r.json"))?)?;
    // The runs were temporary: the report says so, as without --plots.
    assert_eq!((report.reference.path.as_deref(), report.candidate.path.as_deref()), (None, None));
    let names = files(&dir.join("plots"))?;
    assert_eq!(names.len(), 4, "{names:?}");
    assert!(
        names.iter().any(|n| n.starts_with("histogram-"))
            && names.iter().all(|n| Path::new(n).extension().is_some_and(|e| e == "png"))
    );
    assert!(dir.join("r.html").is_file() && dir.join("r.md").is_file());
    Ok(())
}

#[test]
fn bad_destinations_and_missing_runs_are_one_line_errors() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path();
    // A report whose runs were temporary: the whole-model charts are written, a named tensor cannot be.
    let (code, _, err) = run(bin()
        .arg("compare")
        .arg(sample("mlp_overflow"))
        .args(["--reference", "tract", "--candidate", "cpu-fp16", "--quiet", "--report"])
        .arg(dir.join("r.json")))?;
    assert_eq!(code, 1, "{err}");
    let (code, _, err) = run(bin()
        .arg("report")
        .arg(dir.join("r.json"))
        .arg("--plots")
        .arg(dir.join("p"))
        .args(["--plot-tensor", "logits"]))?;
    assert_eq!(code, 2, "{err}");
    assert_eq!(err.lines().filter(|l| l.starts_with("error: ")).count(), 1, "{err}");
    assert!(err.contains("temporary folder") && err.contains("--save-runs"), "{err}");
    let (code, _, err) = run(bin().arg("report").arg(dir.join("r.json")).arg("--plots").arg(dir.join("p")))?;
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("note: no histogram or scatter of"), "{err}");
    assert_eq!(files(&dir.join("p"))?, ["error.png", "overflow.png"]);
    // Destinations of the wrong kind, unknown tensors, missing and foreign reports.
    std::fs::write(dir.join("file"), b"x")?;
    let cases: Vec<(Vec<String>, &str)> = vec![
        (vec!["--plots".into(), dir.join("file").display().to_string()], "is a file; give a directory"),
        (vec!["--html".into(), dir.display().to_string()], "is a directory; give a file name"),
        (vec!["--markdown".into(), dir.display().to_string()], "is a directory; give a file name"),
        (
            vec!["--plots".into(), dir.join("q").display().to_string(), "--plot-tensor".into(), "nope".into()],
            "'nope' is not a compared tensor",
        ),
        (vec!["--format".into(), "gif".into(), "--plots".into(), "x".into()], "invalid value 'gif'"),
    ];
    for (args, want) in cases {
        let (code, _, err) = run(bin().arg("report").arg(dir.join("r.json")).args(&args))?;
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
    }
    let (code, _, err) = run(bin().arg("report").arg(dir.join("missing.json")))?;
    assert!(code == 2 && err.contains("missing.json") && err.contains("cannot read the report"), "{err}");
    let (code, _, err) = run(bin().arg("report").arg(sample("mlp_overflow")).arg("--html").arg(dir.join("x.html")))?;
    assert!(code == 2 && err.contains("not a trtlens report"), "{err}");
    assert!(!dir.join("x.html").exists());
    Ok(())
}
