//! A markdown summary of a report for pull requests and CI job summaries: the verdict, the sides,
//! the first divergence and first non-finite tensor, the graph outputs, and the failing and flagged
//! tensors (at most [`MAX_ROWS`], in topological order) in a collapsible table, then the notes.
//! GitHub-flavoured markdown; names are in code spans and table cells are escaped.

use std::fmt::Write as _;

use super::{describe_tensor, outputs_passing, precision_of, verdict_word};
use crate::compare::report::{Report, Status};
use crate::compare::table::{max_abs_cell, num, severity, shown_flags};

/// Most tensor rows listed.
pub const MAX_ROWS: usize = 30;

/// Text inside a code span: backticks cannot be escaped there, so the span uses a longer fence.
fn code(s: &str) -> String {
    let longest = s.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest + 1);
    let pad = if s.starts_with('`') || s.ends_with('`') { " " } else { "" };
    format!("{fence}{pad}{s}{pad}{fence}")
}

/// A table cell: pipes escaped, line breaks removed.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace(['\n', '\r'], " ")
}

/// The summary.
#[must_use]
pub fn summary(report: &Report) -> String {
    let mut out = String::new();
    let word = verdict_word(report);
    let mark = if report.passed() { "✅" } else { "❌" };
    let model = report.model.path.as_deref().unwrap_or("two saved results");
    let _ = writeln!(out, "### trtlens: {word} {mark} {}\n", code(model));
    let side = |s: &crate::compare::report::SideReport| {
        let v = if s.version.is_empty() { String::new() } else { format!(" {}", s.version) };
        let plan = s.precision_plan.as_deref().map_or_else(String::new, |p| format!(", plan: {p}"));
        format!("{}{v}{plan}", s.runner)
    };
    let tol = &report.tolerance;
    let _ = writeln!(
        out,
        "candidate {} against reference {} · rule `{}`, atol {}, rtol {}\n",
        code(&side(&report.candidate)),
        code(&side(&report.reference)),
        tol.rule,
        tol.atol,
        tol.rtol
    );
    let (pass, total) = outputs_passing(report);
    let s = &report.summary;
    out.push_str("| | |\n|---|---|\n");
    let _ = writeln!(out, "| verdict | **{word}** |");
    let _ = writeln!(out, "| graph outputs | {pass}/{total} pass |");
    let _ = writeln!(out, "| tensors | {} compared: {} fail, {} skipped |", s.compared, s.failed, s.skipped);
    for (label, name) in [
        ("first divergence", report.first_divergence.as_deref()),
        ("first non-finite", report.first_nonfinite.as_deref()),
    ] {
        let text = match name {
            Some(n) => {
                let d = describe_tensor(report, Some(n));
                format!("{} {}", code(n), cell(d.strip_prefix(n).unwrap_or(&d).trim()))
            }
            None => "none".into(),
        };
        let _ = writeln!(out, "| {label} | {text} |");
    }
    let _ = writeln!(
        out,
        "| FP16 range | {} tensors overflow, {} underflow predicted |",
        s.fp16_overflow_predicted, s.fp16_underflow_predicted
    );
    out.push('\n');

    let failing: Vec<_> = report.outputs.iter().filter(|o| o.status != Status::Pass).collect();
    if !failing.is_empty() {
        out.push_str("Outputs out of tolerance:\n\n");
        for o in &failing {
            let status = if o.status == Status::Fail { "fail" } else { "not compared" };
            let _ = writeln!(out, "- {} {status}, max abs error {}", code(&o.name), num(o.max_abs));
        }
        out.push('\n');
    }

    let rows: Vec<_> = report.tensors.iter().filter(|t| severity(t) > 0).collect();
    if !rows.is_empty() {
        let _ = writeln!(out, "<details><summary>{} failing or flagged tensors</summary>\n", rows.len());
        out.push_str("| # | tensor | op | precision | max abs | mism % | flags |\n|---:|---|---|---|---:|---:|---|\n");
        for t in rows.iter().take(MAX_ROWS) {
            let (max_abs, mism) = t.metrics.as_ref().map_or(("-".to_string(), "-".to_string()), |m| {
                (max_abs_cell(m), format!("{:.2}", m.mismatch_ratio * 100.0))
            });
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} |",
                t.topo_index.map_or_else(|| "-".into(), |i| i.to_string()),
                cell(&code(&t.name)),
                cell(t.op_type.as_deref().unwrap_or("?")),
                precision_of(t),
                max_abs,
                mism,
                shown_flags(t).join(" ")
            );
        }
        if rows.len() > MAX_ROWS {
            let _ = writeln!(out, "\n… and {} more (see the HTML or JSON report)", rows.len() - MAX_ROWS);
        }
        out.push_str("\n</details>\n\n");
    }
    for n in &report.notes {
        let _ = writeln!(out, "> {}", n.replace('\n', " "));
    }
    if !report.notes.is_empty() {
        out.push('\n');
    }
    let _ = writeln!(out, "<sub>{} {}</sub>", report.tool.name, report.tool.version);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_spans_survive_backticks_and_cells_survive_pipes() {
        assert_eq!(code("a/b"), "`a/b`");
        assert_eq!(code("a`b"), "``a`b``");
        assert_eq!(code("`x"), "`` `x ``");
        assert_eq!(cell("a|b\nc"), "a\\|b c");
    }
}
