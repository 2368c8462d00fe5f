//! The detail pane of the selected tensor: every metric of the report, both value ranges, FP16
//! range warnings, a log-binned histogram of `|c − r|`, the worst elements, and the producing node
//! with its inputs' own errors, so it shows whether the error came in or was made here.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph, Wrap};

use super::num;
use crate::compare::histogram::ErrorHistogram;
use crate::compare::report::{Report, Status, TensorReport};
use crate::tui::app::App;

fn kv(k: &str, v: String) -> Vec<Span<'static>> {
    vec![Span::styled(format!("{k} "), Style::default().fg(Color::DarkGray)), Span::raw(v), Span::raw("  ")]
}

fn status_span(s: Status) -> Span<'static> {
    match s {
        Status::Pass => Span::styled("PASS", Style::default().fg(Color::Green)),
        Status::Fail => Span::styled("FAIL", Style::default().fg(Color::Red).add_modifier(Modifier::BOLD)),
        Status::Skipped => Span::styled("SKIPPED", Style::default().fg(Color::DarkGray)),
    }
}

/// Histogram lines: one per non-empty decade, plus zero and non-finite counts.
fn histogram_lines(h: &ErrorHistogram, width: usize) -> Vec<Line<'static>> {
    let max = h.bins.iter().copied().max().unwrap_or(0).max(1);
    let bar_w = width.saturating_sub(20).max(4);
    let mut out = vec![Line::from(Span::styled("|c - r| by decade", Style::default().fg(Color::Cyan)))];
    for (i, &c) in h.bins.iter().enumerate().filter(|(_, c)| **c > 0) {
        let len = ((c as f64 / max as f64) * bar_w as f64).ceil() as usize;
        out.push(Line::from(vec![
            Span::styled(format!("  1e{:<4}", ErrorHistogram::decade(i)), Style::default().fg(Color::DarkGray)),
            Span::styled("█".repeat(len.max(1)), Style::default().fg(Color::Blue)),
            Span::raw(format!(" {c}")),
        ]));
    }
    out.push(Line::from(format!("  exact {}  non-finite {}", h.zero, h.nonfinite)));
    out
}

fn producer_lines(app: &App, report: &Report, t: &TensorReport) -> Vec<Line<'static>> {
    let mut out = Vec::new();
    let Some(graph) = app.ctx.graph.as_ref() else { return out };
    let Some(node) = graph.producer(&t.name) else { return out };
    let (_, prec) = app.edits.label(Some(&node.display_name()));
    out.push(Line::from(vec![
        Span::styled("producer ", Style::default().fg(Color::Cyan)),
        Span::raw(format!("{} ({}) {prec}", node.display_name(), node.op_type)),
    ]));
    let mut failing_inputs = 0;
    let mut compared_inputs = 0;
    for input in node.inputs.iter().filter(|i| !i.is_empty()) {
        let line = match report.tensor(input) {
            Some(it) => {
                compared_inputs += 1;
                if it.status == Status::Fail {
                    failing_inputs += 1;
                }
                let m = it.metrics.as_ref().map_or_else(|| "-".into(), |m| num(m.max_abs));
                vec![Span::raw(format!("  in {input}  max abs {m} ")), status_span(it.status)]
            }
            None => {
                let kind = if graph.inputs.contains(input) {
                    "graph input"
                } else if graph
                    .tensors
                    .get(input)
                    .is_some_and(|x| x.kind == crate::model::graph::TensorKind::Initializer)
                {
                    "initializer"
                } else {
                    "not compared"
                };
                vec![Span::styled(format!("  in {input}  ({kind})"), Style::default().fg(Color::DarkGray))]
            }
        };
        out.push(Line::from(line));
    }
    let verdict = match (t.status, failing_inputs) {
        (Status::Fail, 0) if compared_inputs > 0 || !node.inputs.is_empty() => {
            Span::styled("error introduced here: every compared input passes", Style::default().fg(Color::Red))
        }
        (Status::Fail, n) => {
            Span::styled(format!("error inherited: {n} input(s) already fail"), Style::default().fg(Color::Yellow))
        }
        (_, n) if n > 0 => {
            Span::styled("inputs fail but this tensor passes (error absorbed)", Style::default().fg(Color::Green))
        }
        _ => Span::raw(""),
    };
    out.push(Line::from(verdict));
    out
}

/// TensorRT candidates: the engine layer that produced the tensor, the ONNX nodes it fused, and a
/// precision mismatch of the producing node.
fn engine_lines(
    report: &crate::compare::report::Report,
    t: &crate::compare::report::TensorReport,
) -> Vec<Line<'static>> {
    let Some(e) = &t.engine else { return Vec::new() };
    let mut out = Vec::new();
    let layer = match (&e.layer, &e.layer_type) {
        (Some(l), Some(ty)) if !ty.is_empty() => format!("{l} ({ty})"),
        (Some(l), _) => l.clone(),
        (None, _) => "not listed".to_string(),
    };
    let tensor = match &e.tensor {
        Some(name) if name != &t.name => format!("  read from {name}"),
        Some(_) => String::new(),
        None => "  not read back".to_string(),
    };
    out.push(Line::from([kv("engine layer", layer), vec![Span::raw(tensor)]].concat()));
    if !e.onnx_nodes.is_empty() {
        let n = e.onnx_nodes.len();
        let what = if n == 1 { "computes".to_string() } else { format!("fuses {n} ONNX nodes:") };
        out.push(Line::from([kv(&what, e.onnx_nodes.join(", "))].concat()));
    }
    if let (Some(node), Some(trt)) = (&t.node, &report.trt)
        && let Some(m) = trt.precision_mismatches.iter().find(|m| &m.onnx_node == node)
    {
        out.push(Line::from(Span::styled(
            format!("precision mismatch: the plan says {}, the engine computes {}", m.plan, m.engine),
            Style::default().fg(Color::Yellow),
        )));
    }
    out
}

/// Draw the pane.
pub fn draw(frame: &mut Frame<'_>, area: Rect, app: &App) {
    let block = Block::default().borders(Borders::ALL).title(" detail ");
    let (Some(report), Some(row)) = (app.report.as_ref(), app.selected_row()) else {
        frame.render_widget(Paragraph::new("no tensor selected").block(block), area);
        return;
    };
    let mut lines: Vec<Line<'static>> = Vec::new();
    let Some(t) = row.tensor.and_then(|i| report.tensors.get(i)) else {
        lines.push(Line::from(format!("{}: {}", row.name, row.flags.join(" "))));
        lines.push(Line::from("present on one side only: not compared (tensors are paired by exact name)"));
        frame.render_widget(Paragraph::new(lines).block(block).wrap(Wrap { trim: false }), area);
        return;
    };
    lines.push(Line::from(vec![
        Span::styled(t.name.clone(), Style::default().add_modifier(Modifier::BOLD)),
        Span::raw(format!("  {} ", t.op_type.clone().unwrap_or_default())),
        status_span(t.status),
        Span::raw(if t.is_output { "  graph output" } else { "" }),
    ]));
    lines.push(Line::from(
        [
            kv("shape", crate::tensor::shape_string(&t.shape)),
            kv("dtype", format!("{} / {}", t.dtype_reference, t.dtype_candidate)),
            kv("tol", format!("atol {} rtol {}", num(t.atol), num(t.rtol))),
        ]
        .concat(),
    ));
    if let Some(r) = &t.reason {
        lines.push(Line::from(Span::styled(r.clone(), Style::default().fg(Color::Yellow))));
    }
    lines.extend(engine_lines(report, t));
    if let Some(m) = &t.metrics {
        lines.push(Line::from(
            [
                kv("max abs*", num(m.max_abs)),
                kv("mean", num(m.mean_abs)),
                kv("median", num(m.median_abs)),
                kv("p99", num(m.p99_abs)),
            ]
            .concat(),
        ));
        lines.push(Line::from(
            [
                kv("max rel", num(m.max_rel)),
                kv("mismatch", format!("{}/{} ({:.2}%)", m.mismatches, m.total, m.mismatch_ratio * 100.0)),
            ]
            .concat(),
        ));
        lines.push(Line::from(
            [kv("cosine", format!("{:.6}", m.cosine)), kv("rel l2", num(m.rel_l2)), kv("snr dB", num(m.snr_db))]
                .concat(),
        ));
        lines.push(Line::from(
            [
                kv("ref", format!("[{}, {}]", num(m.reference_min), num(m.reference_max))),
                kv("cand", format!("[{}, {}]", num(m.candidate_min), num(m.candidate_max))),
            ]
            .concat(),
        ));
        lines.push(Line::from(
            [
                kv("NaN", format!("{}/{}", m.nan_reference, m.nan_candidate)),
                kv("inf", format!("{}/{}", m.inf_reference, m.inf_candidate)),
                kv("iteration", t.worst_iteration.to_string()),
            ]
            .concat(),
        ));
        if let Some(ia) = m.introduced_max_abs {
            // The node's own error on the candidate's inputs (not inherited).
            lines.push(Line::from(
                [
                    kv("introduced max abs", num(ia)),
                    kv("new non-finite", m.introduced_nonfinite.unwrap_or(0).to_string()),
                    kv("mismatch", m.introduced_mismatches.unwrap_or(0).to_string()),
                ]
                .concat(),
            ));
        }
        lines.push(Line::from(Span::styled(
            "* error statistics over finite pairs",
            Style::default().fg(Color::DarkGray),
        )));
        let warn = Style::default().fg(Color::Yellow);
        if m.fp16_overflow_reference > 0 {
            lines.push(Line::from(Span::styled(
                format!("FP16: {} reference values above 65504 overflow to inf", m.fp16_overflow_reference),
                warn,
            )));
        }
        if m.fp16_underflow_reference > 0 {
            lines.push(Line::from(Span::styled(
                format!("FP16: {} reference values below 6e-8 flush to 0", m.fp16_underflow_reference),
                warn,
            )));
        } else if m.fp16_subnormal_reference > 0 {
            lines.push(Line::from(Span::styled(
                format!(
                    "FP16: {} reference values are subnormal (< 6.1e-5, reduced precision)",
                    m.fp16_subnormal_reference
                ),
                warn,
            )));
        }
        if let Some(Some(h)) = app.histograms.get(&t.name) {
            lines.extend(histogram_lines(h, area.width as usize));
        } else if app.histograms_pending.contains(&t.name) {
            lines.push(Line::from(Span::styled("|c - r| histogram: computing…", Style::default().fg(Color::DarkGray))));
        }
        if !m.top_k.is_empty() {
            lines.push(Line::from(Span::styled("worst elements", Style::default().fg(Color::Cyan))));
            for e in &m.top_k {
                let idx = e.index.iter().map(ToString::to_string).collect::<Vec<_>>().join(",");
                lines.push(Line::from(format!(
                    "  [{idx}] ref {} cand {} |d| {}",
                    num(e.reference),
                    num(e.candidate),
                    num(e.abs)
                )));
            }
        }
    }
    lines.extend(producer_lines(app, report, t));
    frame.render_widget(Paragraph::new(lines).block(block).wrap(Wrap { trim: false }), area);
}
