//! Terminal rendering of a report: a table that fits 100 columns, failing and flagged rows
//! highlighted when colour is on (`NO_COLOR` respected by the caller), integer/shape tensors summarised
//! apart so they do not drown the float layers, and a summary naming the first divergence.

use std::fmt::Write as _;

use super::report::{Report, Status, TensorReport};

/// Rendering options.
#[derive(Debug, Clone, Copy, Default)]
pub struct TableOptions {
    /// ANSI colours.
    pub color: bool,
    /// Only rows that fail or are skipped.
    pub only_failing: bool,
    /// Only the N worst rows (by mismatch ratio, then max abs error), shown in topological order.
    pub top: Option<usize>,
}

const RED: &str = "\x1b[31m";
const YELLOW: &str = "\x1b[33m";
const GREEN: &str = "\x1b[32m";
const BOLD: &str = "\x1b[1m";
const DIM: &str = "\x1b[2m";
const RESET: &str = "\x1b[0m";

use crate::text::{elide_left as fit, elide_right as fit_head};

/// A number as the table shows it: compact, `-` for NaN, `inf`/`-inf`.
#[must_use]
pub fn num(v: f64) -> String {
    if v.is_nan() {
        "-".into()
    } else if v.is_infinite() {
        if v > 0.0 { "inf".into() } else { "-inf".into() }
    } else if v == 0.0 {
        "0".into()
    } else if (1e-3..1e4).contains(&v.abs()) {
        format!("{v:.4}").trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        format!("{v:.2e}")
    }
}

/// 2 for a failing row, 1 for a skipped or flagged one (overflow, underflow, non-finite), else 0.
#[must_use]
pub fn severity(t: &TensorReport) -> u8 {
    match t.status {
        Status::Fail => 2,
        Status::Skipped => 1,
        Status::Pass if t.flags.iter().any(|f| f == "OVF" || f == "UNF" || f == "NaN" || f == "INF") => 1,
        Status::Pass => 0,
    }
}

/// The flags a row shows: the report's flags with `FIRST_NONFINITE` as `1ST-NF`, and `SKIP` first
/// for a skipped tensor (the HTML report shows the same).
#[must_use]
pub fn shown_flags(t: &TensorReport) -> Vec<&str> {
    let mut flags: Vec<&str> =
        t.flags.iter().map(|f| if f == "FIRST_NONFINITE" { "1ST-NF" } else { f.as_str() }).collect();
    if t.status == Status::Skipped {
        flags.insert(0, "SKIP");
    }
    flags
}

/// The max-abs cell: `nan`/`inf` when the candidate went non-finite where the reference was not
/// (error statistics cover finite pairs only), else the number.
#[must_use]
pub fn max_abs_cell(m: &super::metrics::Metrics) -> String {
    if m.nan_candidate > m.nan_reference {
        "nan".into()
    } else if m.inf_candidate > m.inf_reference {
        "inf".into()
    } else {
        num(m.max_abs)
    }
}

fn row(t: &TensorReport) -> String {
    let idx = t.topo_index.map_or_else(|| "-".into(), |i| i.to_string());
    let shape = crate::tensor::shape_string(&t.shape);
    let (max_abs, mism, cosine) = match &t.metrics {
        Some(m) => (
            // Error statistics cover finite pairs; say so when the candidate went non-finite.
            max_abs_cell(m),
            format!("{:.2}", m.mismatch_ratio * 100.0),
            if t.exact {
                "exact".into()
            } else if m.cosine.is_nan() {
                "-".into()
            } else {
                format!("{:.6}", m.cosine)
            },
        ),
        None => ("-".into(), "-".into(), "-".into()),
    };
    let flags = shown_flags(t);
    format!(
        "{idx:>4} {:<29} {:<12} {:>13} {:>9} {:>7} {:>8}  {}",
        fit(&t.name, 29),
        fit_head(t.op_type.as_deref().unwrap_or("?"), 12),
        fit(&shape, 13),
        max_abs,
        mism,
        cosine,
        flags.join(" ")
    )
}

/// Render the report as text.
#[must_use]
pub fn render(report: &Report, opts: TableOptions) -> String {
    let paint = |s: &str, code: &str| if opts.color { format!("{code}{s}{RESET}") } else { s.to_string() };
    let mut out = String::new();
    let title = format!(
        "reference {} {}  vs  candidate {} {}   rule {} atol {} rtol {}",
        report.reference.runner,
        report.reference.version,
        report.candidate.runner,
        report.candidate.version,
        report.tolerance.rule,
        report.tolerance.atol,
        report.tolerance.rtol
    );
    let _ = writeln!(out, "{}", fit_head(&title, 100));
    let header = format!(
        "{:>4} {:<29} {:<12} {:>13} {:>9} {:>7} {:>8}  {}",
        "#", "tensor", "op", "shape", "max abs", "mism %", "cosine", "flags"
    );
    let _ = writeln!(out, "{}", paint(&header, BOLD));

    let float_rows: Vec<&TensorReport> = report.tensors.iter().filter(|t| !t.exact).collect();
    let mut shown: Vec<&TensorReport> =
        float_rows.iter().copied().filter(|t| !opts.only_failing || t.status != Status::Pass).collect();
    if let Some(n) = opts.top {
        let mut ranked = shown.clone();
        ranked.sort_by(|a, b| {
            let key = |t: &TensorReport| {
                t.metrics.as_ref().map_or((0.0, 0.0), |m| {
                    (m.mismatch_ratio, if m.max_abs.is_nan() { f64::INFINITY } else { m.max_abs })
                })
            };
            key(b).partial_cmp(&key(a)).unwrap_or(std::cmp::Ordering::Equal)
        });
        ranked.truncate(n);
        shown.retain(|t| ranked.iter().any(|r| std::ptr::eq(*r, *t)));
    }
    for t in &shown {
        let line = row(t);
        let line = match severity(t) {
            2 => paint(&line, RED),
            1 => paint(&line, YELLOW),
            _ => line,
        };
        let _ = writeln!(out, "{line}");
    }
    let hidden = float_rows.len() - shown.len();
    if hidden > 0 {
        let _ = writeln!(out, "{}", paint(&format!("     ({hidden} more float tensors not shown)"), DIM));
    }

    let exact: Vec<&TensorReport> = report.tensors.iter().filter(|t| t.exact).collect();
    if !exact.is_empty() {
        let bad: Vec<&&TensorReport> = exact.iter().filter(|t| t.status != Status::Pass).collect();
        let _ = writeln!(out, "integer/bool tensors: {} compared exactly, {} differ", exact.len(), bad.len());
        for t in bad {
            let _ = writeln!(out, "{}", paint(&row(t), RED));
        }
    }
    let um = &report.unmatched;
    if !um.reference.is_empty() || !um.candidate.is_empty() {
        let _ = writeln!(
            out,
            "{}",
            paint(
                &format!(
                    "unmatched: {} only in reference, {} only in candidate (see the JSON report)",
                    um.reference.len(),
                    um.candidate.len()
                ),
                YELLOW
            )
        );
        for n in um.reference.iter().take(5) {
            let _ = writeln!(out, "  reference only: {n}");
        }
        for n in um.candidate.iter().take(5) {
            let _ = writeln!(out, "  candidate only: {n}");
        }
    }
    let s = &report.summary;
    let passing_outputs = report.outputs.iter().filter(|o| o.status == Status::Pass).count();
    let _ = writeln!(
        out,
        "outputs {passing_outputs}/{} pass · {} tensors: {} fail, {} skipped · FP16: {} overflow, {} underflow predicted",
        report.outputs.len(),
        s.compared,
        s.failed,
        s.skipped,
        s.fp16_overflow_predicted,
        s.fp16_underflow_predicted
    );
    let describe = |name: &Option<String>| -> String {
        match name.as_ref().and_then(|n| report.tensor(n)) {
            Some(t) => format!(
                "{} ({} {}, #{})",
                fit(&t.name, 40),
                t.op_type.as_deref().unwrap_or("?"),
                fit(t.node.as_deref().unwrap_or(""), 24),
                t.topo_index.map_or_else(|| "?".into(), |i| i.to_string())
            ),
            None => "none".into(),
        }
    };
    let _ = writeln!(out, "first divergence: {}", describe(&report.first_divergence));
    // TensorRT candidates: where the engine computes it, and the plan nodes it computes differently.
    if let Some(e) = report.first_divergence.as_ref().and_then(|n| report.tensor(n)).and_then(|t| t.engine.as_ref())
        && let Some(layer) = &e.layer
    {
        let _ = writeln!(
            out,
            "  engine layer {} ({}) computes {}",
            fit(layer, 48),
            e.layer_type.as_deref().unwrap_or("?"),
            e.onnx_nodes.join(", ")
        );
    }
    if let Some(trt) = &report.trt {
        let _ = writeln!(
            out,
            "engine: {} {} --observe {}: {}/{} tensors exposed",
            trt.flavour, trt.version, trt.observe, trt.mapped, trt.tensors
        );
        for m in &trt.precision_mismatches {
            let _ = writeln!(out, "precision mismatch: {} (plan {}, engine {})", m.onnx_node, m.plan, m.engine);
        }
    }
    if report.first_nonfinite.is_some() {
        let _ = writeln!(out, "first non-finite: {}", describe(&report.first_nonfinite));
    }
    let introducing: Vec<_> =
        report.introducers.iter().filter(|i| i.introduced_nonfinite + i.introduced_mismatches > 0).take(5).collect();
    if !introducing.is_empty() {
        let _ = writeln!(out, "worst introducers (own error on the candidate's inputs, not inherited):");
        for i in introducing {
            let made = if i.introduced_nonfinite > 0 {
                format!("{} new non-finite", i.introduced_nonfinite)
            } else {
                format!("{} mismatches", i.introduced_mismatches)
            };
            let _ = writeln!(
                out,
                "  {} ({}): {made}, introduced max abs {} (accumulated {})",
                fit(&i.node, 48),
                i.op_type.as_deref().unwrap_or("?"),
                num(i.introduced_max_abs),
                num(i.accumulated_max_abs)
            );
        }
    }
    for sp in &report.specialized {
        let _ = writeln!(out, "specialized: {}", fit_head(&sp.to_string(), 87));
    }
    for n in &report.notes {
        let _ = writeln!(out, "note: {n}");
    }
    let verdict = if report.passed() { paint("PASS", GREEN) } else { paint("FAIL", RED) };
    let _ = writeln!(out, "verdict: {verdict}");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_keep_their_tail() {
        assert_eq!(fit("short", 10), "short");
        assert_eq!(fit("/model/decoder/Conv_output_0", 10), "…_output_0");
        assert_eq!(fit("/model/decoder/Conv_output_0", 10).chars().count(), 10);
    }

    #[test]
    fn numbers_are_compact() {
        assert_eq!(num(0.0), "0");
        assert_eq!(num(1.5), "1.5");
        assert_eq!(num(1.23456e-7), "1.23e-7");
        assert_eq!(num(f64::INFINITY), "inf");
        assert_eq!(num(f64::NAN), "-");
        assert_eq!(num(123_456.0), "1.23e5");
    }
}
