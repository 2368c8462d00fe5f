//! The chart pane: one point per compared tensor along topological order, on a log scale, FP16
//! layers coloured apart from FP32 ones, non-finite values pinned to the top, the tolerance as a
//! horizontal line and the selection as a vertical one. `m` cycles max abs / mismatch % / 1−cosine.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Color, Style};
use ratatui::symbols::Marker;
use ratatui::text::Span;
use ratatui::widgets::{Axis, Block, Borders, Chart, Dataset, GraphType, Paragraph};

use crate::tui::app::{App, ChartMetric};
use crate::tui::rows::Row;

const FLOOR: f64 = -8.0;
const CEIL: f64 = 6.0;

fn value(r: &Row, m: ChartMetric) -> f64 {
    match m {
        ChartMetric::MaxAbs => r.max_abs,
        ChartMetric::Mismatch => r.mismatch_pct,
        ChartMetric::OneMinusCosine => 1.0 - r.cosine,
    }
}

/// `log10(v)` clamped to the plot range; NaN/inf go to the top, 0 to the floor.
fn y(v: f64) -> f64 {
    if !v.is_finite() {
        CEIL
    } else if v <= 0.0 {
        FLOOR
    } else {
        v.log10().clamp(FLOOR, CEIL)
    }
}

/// One named, coloured series of points.
fn series<'a>(name: &'a str, marker: Marker, kind: GraphType, color: Color, data: &'a [(f64, f64)]) -> Dataset<'a> {
    Dataset::default().name(name).marker(marker).graph_type(kind).style(Style::default().fg(color)).data(data)
}

/// Draw the chart.
pub fn draw(frame: &mut Frame<'_>, area: Rect, app: &App) {
    let block = Block::default()
        .borders(Borders::ALL)
        .title(format!(" {} along the graph (log10; m cycles) ", app.chart_metric.label()));
    let points: Vec<(&Row, f64)> = app
        .rows
        .iter()
        .filter(|r| r.topo.is_some() && r.status.is_some())
        .map(|r| (r, value(r, app.chart_metric)))
        .collect();
    if points.is_empty() {
        frame.render_widget(Paragraph::new("nothing to plot yet").block(block), area);
        return;
    }
    let (mut fp16, mut fp32, mut bad) = (Vec::new(), Vec::new(), Vec::new());
    for (r, v) in &points {
        let p = (r.topo.unwrap_or(0) as f64, y(*v));
        if !v.is_finite() {
            bad.push(p);
        } else if r.dtype_candidate == "float16" {
            fp16.push(p);
        } else {
            fp32.push(p);
        }
    }
    let xmax = points.iter().filter_map(|(r, _)| r.topo).max().unwrap_or(0).max(1) as f64;
    let mut datasets = vec![
        series("FP32", Marker::Braille, GraphType::Scatter, Color::White, &fp32),
        series("FP16", Marker::Braille, GraphType::Scatter, Color::Cyan, &fp16),
        series("NaN/inf", Marker::Dot, GraphType::Scatter, Color::Magenta, &bad),
    ];
    let tol = match (app.chart_metric, app.report.as_ref()) {
        (ChartMetric::MaxAbs, Some(r)) if r.tolerance.atol > 0.0 => Some(y(r.tolerance.atol)),
        _ => None,
    };
    let tol_line: Vec<(f64, f64)> = tol.map(|t| vec![(0.0, t), (xmax, t)]).unwrap_or_default();
    if !tol_line.is_empty() {
        datasets.push(series("atol", Marker::Dot, GraphType::Line, Color::Yellow, &tol_line));
    }
    let sel: Vec<(f64, f64)> =
        app.selected_row().and_then(|r| r.topo).map(|t| vec![(t as f64, FLOOR), (t as f64, CEIL)]).unwrap_or_default();
    if !sel.is_empty() {
        datasets.push(series("selected", Marker::Dot, GraphType::Line, Color::Red, &sel));
    }
    let chart = Chart::new(datasets)
        .block(block)
        .x_axis(
            Axis::default().bounds([0.0, xmax]).labels(vec![Span::raw("0"), Span::raw(format!("{}", xmax as usize))]),
        )
        .y_axis(Axis::default().bounds([FLOOR, CEIL]).labels(vec![
            Span::raw("1e-8"),
            Span::raw("1e-1"),
            Span::raw("1e6"),
        ]));
    frame.render_widget(chart, area);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_scale_pins_extremes() {
        assert_eq!(y(f64::NAN), CEIL);
        assert_eq!(y(f64::INFINITY), CEIL);
        assert_eq!(y(0.0), FLOOR);
        assert!((y(1e-3) + 3.0).abs() < 1e-12);
        assert_eq!(y(1e-20), FLOOR);
    }
}
