//! What people read: the short verdict on the terminal, the markdown summary (for
//! `$GITHUB_STEP_SUMMARY` or a merge-request comment) and GitHub Actions annotations
//! (`::error file=...,title=...::message` lines, printed when `GITHUB_ACTIONS=true`).

use std::fmt::Write as _;

use super::num;
use super::result::{CheckResult, CheckRun, CheckStatus, LayerChange, Moved};

/// Regressed layers listed on the terminal per check (all of them are in `--json` and `--junit`).
pub const TERMINAL_ROWS: usize = 10;
/// Rows of the markdown table of worst regressions per check.
pub const MARKDOWN_ROWS: usize = 20;

fn verdict_word(s: CheckStatus) -> &'static str {
    match s {
        CheckStatus::Pass => "PASS",
        CheckStatus::Fail => "FAIL",
        CheckStatus::Error => "ERROR",
    }
}

fn moved_line(m: &Moved) -> Option<String> {
    let name = |n: &Option<String>| n.clone().unwrap_or_else(|| "none".into());
    match m.change.as_str() {
        "none" => None,
        "no_baseline" => m.after.as_ref().map(|a| format!("{a} (no baseline)")),
        "same" => Some(format!("{} (unchanged)", name(&m.after))),
        change => Some(format!("{} -> {} ({change})", name(&m.before), name(&m.after))),
    }
}

fn outputs_line(c: &CheckResult) -> String {
    let within = c.outputs.iter().filter(|o| o.status == crate::compare::report::Status::Pass).count();
    let mut s = format!("{within}/{} within tolerance", c.outputs.len());
    let failing: Vec<String> = c
        .failing_outputs()
        .map(|o| {
            format!(
                "{} max abs {}{}",
                o.name,
                num(o.max_abs),
                o.baseline_max_abs.map_or(String::new(), |b| format!(" (baseline {})", num(b)))
            )
        })
        .collect();
    if !failing.is_empty() {
        let _ = write!(s, "; out of tolerance: {}", failing.join(", "));
    }
    s
}

/// The terminal text of one check.
#[must_use]
pub fn check_text(c: &CheckResult) -> String {
    let mut out = String::new();
    if let Some(e) = &c.error {
        let _ = writeln!(out, "check {}: ERROR: {}", c.name, e.message);
        return out;
    }
    let _ = writeln!(
        out,
        "check {}: {} against {} ({} tensors checked, {:.1} s)",
        c.name,
        verdict_word(c.status),
        c.baseline,
        c.tensors.checked,
        c.seconds
    );
    let _ = writeln!(
        out,
        "  candidate {}  vs  reference {}",
        c.candidate.as_deref().unwrap_or("?"),
        c.reference.as_deref().unwrap_or("?")
    );
    let _ = writeln!(out, "  outputs: {}", outputs_line(c));
    if !c.regressions.is_empty() {
        let _ = writeln!(out, "  regressed: {} layer(s)", c.regressions.len());
        for r in c.regressions.iter().take(TERMINAL_ROWS) {
            let _ = writeln!(out, "    {}", r.message());
        }
        if c.regressions.len() > TERMINAL_ROWS {
            let _ = writeln!(
                out,
                "    ... and {} more (--json, --junit, --markdown list all)",
                c.regressions.len() - TERMINAL_ROWS
            );
        }
    }
    if let Some(l) = moved_line(&c.first_divergence) {
        let _ = writeln!(out, "  first divergence: {l}");
    }
    if let Some(l) = moved_line(&c.first_nonfinite) {
        let _ = writeln!(out, "  first non-finite: {l}");
    }
    if !c.tensors.added.is_empty() || !c.tensors.removed.is_empty() {
        let _ = writeln!(
            out,
            "  tensors: {} new ({}), {} gone ({})",
            c.tensors.added.len(),
            c.tensors.added.iter().take(5).cloned().collect::<Vec<_>>().join(", "),
            c.tensors.removed.len(),
            c.tensors.removed.iter().take(5).cloned().collect::<Vec<_>>().join(", ")
        );
    }
    if !c.improvements.is_empty() {
        let names: Vec<&str> = c.improvements.iter().take(5).map(LayerChange::label).collect();
        let _ = writeln!(
            out,
            "  improved: {} layer(s) ({}{})",
            c.improvements.len(),
            names.join(", "),
            if c.improvements.len() > 5 { ", ..." } else { "" }
        );
    }
    for n in &c.notes {
        let _ = writeln!(out, "  note: {n}");
    }
    if c.baseline_updated {
        let _ = writeln!(out, "  baseline written: {}", c.baseline);
    }
    out
}

/// The terminal text of a run: each check, then the verdict.
#[must_use]
pub fn text(run: &CheckRun) -> String {
    let mut out = String::new();
    for c in &run.checks {
        out.push_str(&check_text(c));
    }
    out.push_str(&verdict_line(run));
    out.push('\n');
    out
}

/// `verdict: PASS` (with counts when there are several checks).
#[must_use]
pub fn verdict_line(run: &CheckRun) -> String {
    let count = |s: CheckStatus| run.checks.iter().filter(|c| c.status == s).count();
    if run.checks.len() == 1 {
        format!("verdict: {}", verdict_word(run.status))
    } else {
        format!(
            "verdict: {} ({} checks: {} pass, {} fail, {} error)",
            verdict_word(run.status),
            run.checks.len(),
            count(CheckStatus::Pass),
            count(CheckStatus::Fail),
            count(CheckStatus::Error)
        )
    }
}

/// Inline code in markdown, safe for table cells (pipes escaped, backticks fenced).
fn code(s: &str) -> String {
    let s = s.replace('|', "\\|").replace(['\n', '\r'], " ");
    if s.contains('`') { format!("`` {s} ``") } else { format!("`{s}`") }
}

/// Plain markdown text, safe for table cells.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace(['\n', '\r'], " ")
}

fn icon(s: CheckStatus) -> &'static str {
    match s {
        CheckStatus::Pass => "✅ pass",
        CheckStatus::Fail => "❌ fail",
        CheckStatus::Error => "⚠️ error",
    }
}

fn moved_md(m: &Moved) -> String {
    let name = |n: &Option<String>| n.as_deref().map_or_else(|| "none".to_string(), code);
    match m.change.as_str() {
        "none" => "none".into(),
        "no_baseline" => format!("{} (no baseline)", name(&m.after)),
        "same" => format!("{} (unchanged)", name(&m.after)),
        change => format!("{} → {} ({change})", name(&m.before), name(&m.after)),
    }
}

/// The markdown summary of a run: the verdict, one row per check, then per check with anything to
/// say the worst regressions, the failing outputs, the first divergence before and after, and
/// improvements.
#[must_use]
pub fn markdown(run: &CheckRun) -> String {
    let mut out = String::new();
    let failed = run.checks.iter().filter(|c| c.status != CheckStatus::Pass).count();
    let _ = writeln!(
        out,
        "## trtlens check: {}\n\n{} of {} check(s) passed.\n",
        icon(run.status),
        run.checks.len() - failed,
        run.checks.len()
    );
    out.push_str(
        "| check | verdict | outputs within tolerance | regressed layers | first divergence (baseline → now) |\n",
    );
    out.push_str("|---|---|---|---|---|\n");
    for c in &run.checks {
        if c.error.is_some() {
            let _ = writeln!(out, "| {} | {} | – | – | – |", cell(&c.name), icon(c.status));
            continue;
        }
        let within = c.outputs.iter().filter(|o| o.status == crate::compare::report::Status::Pass).count();
        let _ = writeln!(
            out,
            "| {} | {} | {within}/{} | {} | {} |",
            cell(&c.name),
            icon(c.status),
            c.outputs.len(),
            c.regressions.len(),
            moved_md(&c.first_divergence)
        );
    }
    for c in &run.checks {
        check_markdown(&mut out, c);
    }
    out
}

fn check_markdown(out: &mut String, c: &CheckResult) {
    if let Some(e) = &c.error {
        let _ = writeln!(out, "\n### {}: {}\n\n{}", cell(&c.name), icon(c.status), cell(&e.message));
        return;
    }
    let quiet = c.status == CheckStatus::Pass && c.improvements.is_empty() && c.notes.is_empty();
    if quiet {
        return;
    }
    let _ = writeln!(
        out,
        "\n### {}: {}\n\nBaseline {} · candidate {} · reference {}\n",
        cell(&c.name),
        icon(c.status),
        code(&c.baseline),
        cell(c.candidate.as_deref().unwrap_or("?")),
        cell(c.reference.as_deref().unwrap_or("?"))
    );
    let failing: Vec<_> = c.failing_outputs().collect();
    if !failing.is_empty() {
        out.push_str("**Graph outputs out of tolerance**\n\n| output | max abs now | baseline | atol | rtol |\n|---|---|---|---|---|\n");
        for o in failing {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} |",
                code(&o.name),
                num(o.max_abs),
                o.baseline_max_abs.map_or_else(|| "–".into(), num),
                o.atol.map_or_else(|| "–".into(), num),
                o.rtol.map_or_else(|| "–".into(), num)
            );
        }
        out.push('\n');
    }
    if !c.regressions.is_empty() {
        let mut worst: Vec<&LayerChange> = c.regressions.iter().collect();
        worst.sort_by(|a, b| b.severity().total_cmp(&a.severity()));
        let _ = writeln!(
            out,
            "**Worst regressions** ({} layer(s))\n\n| tensor | op | rule | baseline | now | limit |\n|---|---|---|---|---|---|",
            c.regressions.len()
        );
        for r in worst.iter().take(MARKDOWN_ROWS) {
            for x in &r.reasons {
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {} | {} | {} |",
                    code(r.label()),
                    cell(r.op_type.as_deref().unwrap_or("–")),
                    cell(x.metric.as_deref().unwrap_or(&x.rule)),
                    x.before.map_or_else(|| "–".into(), num),
                    x.after.map_or_else(|| "–".into(), num),
                    x.limit.map_or_else(|| "–".into(), num)
                );
            }
        }
        if c.regressions.len() > MARKDOWN_ROWS {
            let _ = writeln!(
                out,
                "\n… and {} more layer(s) (see the JUnit report or `--json`).",
                c.regressions.len() - MARKDOWN_ROWS
            );
        }
        out.push('\n');
    }
    let _ = writeln!(out, "First divergence: {}  ", moved_md(&c.first_divergence));
    let _ = writeln!(out, "First non-finite tensor: {}\n", moved_md(&c.first_nonfinite));
    if !c.tensors.added.is_empty() || !c.tensors.removed.is_empty() {
        let _ = writeln!(
            out,
            "Tensors new since the baseline: {}; gone: {}\n",
            c.tensors.added.len(),
            c.tensors.removed.len()
        );
    }
    if !c.improvements.is_empty() {
        let names: Vec<String> = c.improvements.iter().take(10).map(|r| code(r.label())).collect();
        let _ = writeln!(
            out,
            "**Improved**: {} layer(s): {}{}. Run `trtlens check --update-baseline` to record them.\n",
            c.improvements.len(),
            names.join(", "),
            if c.improvements.len() > 10 { ", …" } else { "" }
        );
    }
    for n in &c.notes {
        let _ = writeln!(out, "- {}", cell(n));
    }
}

/// Escape a workflow command's message.
fn gh_data(s: &str) -> String {
    s.replace('%', "%25").replace('\r', "%0D").replace('\n', "%0A")
}

/// Escape a workflow command's property value.
fn gh_property(s: &str) -> String {
    gh_data(s).replace(':', "%3A").replace(',', "%2C")
}

/// GitHub Actions workflow commands: `::error` for each check that could not run, each graph
/// output out of tolerance and each regressed layer; `::notice` for improvements.
#[must_use]
pub fn github_annotations(run: &CheckRun) -> String {
    let mut out = String::new();
    for c in &run.checks {
        let file = c.model.as_deref().map_or(String::new(), |m| format!("file={},", gh_property(m)));
        let mut line = |level: &str, title: &str, msg: &str| {
            let _ = writeln!(
                out,
                "::{level} {file}title={}::{}",
                gh_property(&format!("trtlens check {}: {title}", c.name)),
                gh_data(msg)
            );
        };
        if let Some(e) = &c.error {
            line("error", "could not run", &e.message);
            continue;
        }
        for o in c.failing_outputs() {
            line(
                "error",
                &format!("output {} out of tolerance", o.name),
                &format!(
                    "graph output {}: max abs {} (atol {}, rtol {}; baseline {})",
                    o.name,
                    num(o.max_abs),
                    o.atol.map_or_else(|| "?".into(), num),
                    o.rtol.map_or_else(|| "?".into(), num),
                    o.baseline_max_abs.map_or_else(|| "none".into(), num)
                ),
            );
        }
        for r in &c.regressions {
            line("error", &format!("{} regressed", r.label()), &r.message());
        }
        if !c.improvements.is_empty() {
            line(
                "notice",
                "improved",
                &format!(
                    "{} layer(s) improved; run trtlens check --update-baseline to record them",
                    c.improvements.len()
                ),
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping() {
        assert_eq!(code("a|b"), "`a\\|b`");
        assert_eq!(code("a`b"), "`` a`b ``");
        assert_eq!(gh_data("50%\nx"), "50%25%0Ax");
        assert_eq!(gh_property("a:b,c"), "a%3Ab%2Cc");
    }
}
