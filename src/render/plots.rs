//! Plots of a report, PNG or SVG, drawn with `plotters`. Text is laid out with `DejaVu` Sans embedded
//! in the binary (the `dejavu` crate, registered once as `sans-serif`), so rendering needs no font
//! package on the machine; SVG files name the `sans-serif` family and the viewer draws the glyphs.
//!
//! | plot | file | what |
//! |---|---|---|
//! | [`error_along_order`] | `error.EXT` | max absolute error per tensor in topological order, log scale; FP16 and FP32 tensors in two colours, failing ones filled; the tolerance at each tensor's largest reference value; first divergence and first non-finite tensor marked |
//! | [`overflow_map`] | `overflow.EXT` | each tensor's largest reference magnitude against the FP16 range: 65504, the smallest normal and the smallest subnormal drawn |
//! | [`error_histogram`] | `histogram-NAME.EXT` | `\|c − r\|` of one tensor in decades, exact zeros and non-finite pairs apart, with its tolerance |
//! | [`scatter`] | `scatter-NAME.EXT` | candidate against reference values of one tensor, with `y = x` |
//! | [`search`] | `search.EXT` | a search's runs: FP32 nodes kept per run, pass or fail, and the kept set |
//!
//! Values that a log axis cannot hold are drawn on its edges (errors of exactly 0 on the bottom,
//! non-finite on the top) and said so on the plot.

use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{TensorPair, file_stem, precision_of};
use crate::compare::histogram::{ErrorHistogram, HIGHEST_DECADE, LOWEST_DECADE, abs_error_histogram};
use crate::compare::metrics::{FP16_MAX, FP16_MIN_NORMAL, FP16_MIN_SUBNORMAL};
use crate::compare::report::{Report, Status, TensorReport};
use crate::error::{Error, Result};
use crate::text::elide_left;

/// Pixel size of the whole-model charts (error along the order, overflow map, search).
pub const MODEL_SIZE: (u32, u32) = (1200, 520);
/// Pixel size of the per-tensor plots (histogram, scatter).
pub const TENSOR_SIZE: (u32, u32) = (900, 600);
/// Most points a scatter draws (evenly strided over the tensor; the title says when it is a subset).
pub const SCATTER_MAX_POINTS: usize = 20_000;

/// File format of the plots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum PlotFormat {
    /// PNG images.
    #[default]
    Png,
    /// SVG drawings (also what the HTML report embeds).
    Svg,
}

impl PlotFormat {
    /// The file extension (`png`, `svg`).
    #[must_use]
    pub fn extension(self) -> &'static str {
        match self {
            PlotFormat::Png => "png",
            PlotFormat::Svg => "svg",
        }
    }
}

/// One run of a search (bisection or per-layer fallback): how many nodes it kept FP32 and whether
/// the outputs then passed. Filled by the `search` command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchRun {
    /// Nodes kept FP32 in this run.
    pub kept_fp32: usize,
    /// The outputs were within tolerance.
    pub passed: bool,
}

/// A search's history for [`search`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SearchTrace {
    /// Every run in the order made.
    pub runs: Vec<SearchRun>,
    /// The final kept set (node names kept FP32).
    pub kept: Vec<String>,
}

const FP16_COLOR: RGBColor = RGBColor(31, 119, 180);
const FP32_COLOR: RGBColor = RGBColor(230, 120, 20);
const FAIL_COLOR: RGBColor = RGBColor(214, 39, 40);
const NONFINITE_COLOR: RGBColor = RGBColor(148, 103, 189);
const PASS_COLOR: RGBColor = RGBColor(44, 160, 44);
const GREY: RGBColor = RGBColor(120, 120, 120);
const FONT: &str = "sans-serif";

type DrawResult<DB> = std::result::Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

/// Register the embedded font once (`plotters` keeps a global table).
fn register_fonts() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = plotters::style::register_font(FONT, FontStyle::Normal, dejavu::sans::regular());
        let _ = plotters::style::register_font(FONT, FontStyle::Bold, dejavu::sans::bold());
    });
}

fn draw_error(what: &str, e: impl std::fmt::Display) -> Error {
    Error::store(what, format!("cannot draw the plot: {e}"))
}

fn encode_png(rgb: &[u8], (w, h): (u32, u32), what: &str) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, w, h);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let mut writer = enc.write_header().map_err(|e| draw_error(what, e))?;
        writer.write_image_data(rgb).map_err(|e| draw_error(what, e))?;
        writer.finish().map_err(|e| draw_error(what, e))?;
    }
    Ok(out)
}

/// Draw with `$draw(&root)` on an SVG or bitmap backend of `$size` and return the file bytes.
macro_rules! render {
    ($format:expr, $size:expr, $what:expr, $draw:expr) => {{
        register_fonts();
        let size: (u32, u32) = $size;
        match $format {
            PlotFormat::Svg => {
                let mut svg = String::new();
                {
                    let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
                    $draw(&root).map_err(|e| draw_error($what, e))?;
                    root.present().map_err(|e| draw_error($what, e))?;
                }
                Ok(svg.into_bytes())
            }
            PlotFormat::Png => {
                let mut rgb = vec![0u8; size.0 as usize * size.1 as usize * 3];
                {
                    let root = BitMapBackend::with_buffer(&mut rgb, size).into_drawing_area();
                    $draw(&root).map_err(|e| draw_error($what, e))?;
                    root.present().map_err(|e| draw_error($what, e))?;
                }
                encode_png(&rgb, size, $what)
            }
        }
    }};
}

fn font(size: f64) -> TextStyle<'static> {
    (FONT, size).into_font().color(&BLACK)
}

fn anchored(size: f64, h: HPos, v: VPos, color: RGBColor) -> TextStyle<'static> {
    (FONT, size).into_font().color(&color).pos(Pos::new(h, v))
}

/// Lower and upper limits of a log axis holding every positive finite value of `values` and the
/// `must` values, with a margin; a decade around 1 when there is nothing.
fn log_range(values: impl IntoIterator<Item = f64>, must: &[f64]) -> (f64, f64) {
    let mut lo = f64::INFINITY;
    let mut hi = f64::NEG_INFINITY;
    for v in values.into_iter().chain(must.iter().copied()) {
        if v.is_finite() && v > 0.0 {
            lo = lo.min(v);
            hi = hi.max(v);
        }
    }
    if !lo.is_finite() {
        return (1e-3, 10.0);
    }
    let (lo, hi) = (lo / 4.0, hi * 4.0);
    let lo = lo.max(1e-300);
    if hi <= lo * 10.0 { (lo, lo * 100.0) } else { (lo, hi) }
}

fn exp_label(v: f64) -> String {
    if v <= 0.0 || !v.is_finite() {
        return String::new();
    }
    let e = v.log10();
    if (e - e.round()).abs() < 1e-6 { format!("1e{}", e.round() as i64) } else { format!("{v:.0e}") }
}

/// One float tensor of the report as the whole-model charts draw it.
struct Layer<'a> {
    t: &'a TensorReport,
    x: f64,
    max_abs: f64,
    nonfinite: bool,
    tolerance: f64,
    ref_abs_max: f64,
}

fn layers(report: &Report) -> Vec<Layer<'_>> {
    report
        .tensors
        .iter()
        .enumerate()
        .filter(|(_, t)| !t.exact)
        .filter_map(|(i, t)| {
            let m = t.metrics.as_ref()?;
            Some(Layer {
                t,
                x: t.topo_index.unwrap_or(i) as f64,
                max_abs: m.max_abs,
                nonfinite: m.nan_candidate + m.inf_candidate > m.nan_reference + m.inf_reference || m.max_abs.is_nan(),
                tolerance: t.atol + t.rtol * if m.reference_abs_max.is_finite() { m.reference_abs_max } else { 0.0 },
                ref_abs_max: m.reference_abs_max,
            })
        })
        .collect()
}

fn x_range(ls: &[Layer<'_>]) -> (f64, f64) {
    let lo = ls.iter().map(|l| l.x).fold(f64::INFINITY, f64::min);
    let hi = ls.iter().map(|l| l.x).fold(f64::NEG_INFINITY, f64::max);
    if lo.is_finite() { (lo - 1.0, hi + 1.0) } else { (-1.0, 1.0) }
}

fn marker_size(n: usize) -> i32 {
    if n > 400 {
        2
    } else if n > 100 {
        3
    } else {
        5
    }
}

/// A vertical marker line with a label at a fraction of the plot height (log axis).
#[allow(clippy::too_many_arguments)]
fn vertical_marker<DB: DrawingBackend>(
    chart: &mut ChartContext<
        '_,
        DB,
        Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::combinators::LogCoord<f64>>,
    >,
    x: f64,
    (lo, hi): (f64, f64),
    (xlo, xhi): (f64, f64),
    at: f64,
    text: &str,
    color: RGBColor,
) -> DrawResult<DB> {
    chart
        .draw_series(DashedLineSeries::new(vec![(x, lo), (x, hi)], 6, 4, color.stroke_width(2)))?
        .label(text.to_string())
        .legend(move |(px, py)| PathElement::new(vec![(px, py), (px + 18, py)], color.stroke_width(2)));
    let y = (lo.ln() + (hi.ln() - lo.ln()) * at).exp();
    let right_half = x > xlo + (xhi - xlo) * 0.6;
    let (h, tx) =
        if right_half { (HPos::Right, x - (xhi - xlo) * 0.005) } else { (HPos::Left, x + (xhi - xlo) * 0.005) };
    chart.draw_series(std::iter::once(Text::new(text.to_string(), (tx, y), anchored(13.0, h, VPos::Center, color))))?;
    Ok(())
}

/// A chart of tensors in topological order (x) against a log10 value (y).
type PerTensorChart<'a, DB> = ChartContext<'a, DB, Cartesian2d<plotters::coord::types::RangedCoordf64, LogCoord<f64>>>;

/// The frame of a per-tensor chart: tensors in topological order along x, a log10 y axis.
fn per_tensor_chart<'a, DB: DrawingBackend>(
    root: &'a DrawingArea<DB, Shift>,
    caption: &str,
    y_desc: &str,
    (xlo, xhi): (f64, f64),
    (lo, hi): (f64, f64),
) -> std::result::Result<PerTensorChart<'a, DB>, DrawingAreaErrorKind<DB::ErrorType>> {
    let mut chart = ChartBuilder::on(root)
        .caption(caption, font(20.0))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(xlo..xhi, (lo..hi).log_scale())?;
    chart
        .configure_mesh()
        .x_desc("tensor, topological order (#)")
        .y_desc(y_desc)
        .y_label_formatter(&|v| exp_label(*v))
        .x_label_formatter(&|v| if *v < 0.0 { String::new() } else { format!("{v:.0}") })
        .light_line_style(RGBColor(235, 235, 235))
        .label_style(font(12.0))
        .axis_desc_style(font(14.0))
        .draw()?;
    Ok(chart)
}

fn draw_error_chart<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, report: &Report) -> DrawResult<DB> {
    root.fill(&WHITE)?;
    let ls = layers(report);
    let (xlo, xhi) = x_range(&ls);
    let (lo, hi) = log_range(ls.iter().flat_map(|l| [l.max_abs, l.tolerance]), &[]);
    let title = format!(
        "max |candidate - reference| per tensor: {} vs {} ({})",
        report.candidate.runner,
        report.reference.runner,
        super::verdict_word(report)
    );
    let mut chart = per_tensor_chart(root, &title, "max abs error (log)", (xlo, xhi), (lo, hi))?;

    // Tolerance: what the rule allows at each tensor's largest reference value.
    let mut tol: Vec<(f64, f64)> = ls.iter().map(|l| (l.x, l.tolerance.max(lo))).collect();
    tol.sort_by(|a, b| a.0.total_cmp(&b.0));
    let steps: Vec<(f64, f64)> = tol
        .iter()
        .enumerate()
        .flat_map(|(i, &(x, y))| {
            let next = tol.get(i + 1).map_or(x + 0.5, |n| f64::midpoint(x, n.0));
            let prev = if i == 0 { x - 0.5 } else { f64::midpoint(tol[i - 1].0, x) };
            [(prev, y), (next, y)]
        })
        .collect();
    // One solid polyline: a dashed one is an element per dash (tens of thousands on large models).
    let tol_style = GREY.mix(0.8).stroke_width(1);
    chart
        .draw_series(LineSeries::new(steps, tol_style))?
        .label("tolerance: atol + rtol * max|reference|")
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], tol_style));

    let size = marker_size(ls.len());
    for (label, fp16) in [("FP16 tensor (filled: fails)", true), ("FP32 tensor (filled: fails)", false)] {
        let color = if fp16 { FP16_COLOR } else { FP32_COLOR };
        let pts: Vec<&Layer<'_>> =
            ls.iter().filter(|l| !l.nonfinite && (precision_of(l.t) == "FP32") != fp16).collect();
        if pts.is_empty() {
            continue;
        }
        chart
            .draw_series(pts.iter().map(|l| {
                let y = if l.max_abs > 0.0 { l.max_abs.clamp(lo, hi) } else { lo };
                let style = if l.t.status == Status::Fail { color.filled() } else { color.stroke_width(1) };
                Circle::new((l.x, y), size, style)
            }))?
            .label(label)
            .legend(move |(x, y)| Circle::new((x + 9, y), 5, color.filled()));
    }
    let nonfinite: Vec<&Layer<'_>> = ls.iter().filter(|l| l.nonfinite).collect();
    if !nonfinite.is_empty() {
        chart
            .draw_series(nonfinite.iter().map(|l| TriangleMarker::new((l.x, hi), size + 2, NONFINITE_COLOR.filled())))?
            .label("NaN/inf in the candidate (drawn at the top)")
            .legend(|(x, y)| TriangleMarker::new((x + 9, y), 6, NONFINITE_COLOR.filled()));
    }

    if let Some(first) = report.first_divergence.as_deref().and_then(|n| ls.iter().find(|l| l.t.name == n)) {
        let text = format!("first divergence: {}", elide_left(&first.t.name, 48));
        vertical_marker(&mut chart, first.x, (lo, hi), (xlo, xhi), 0.82, &text, FAIL_COLOR)?;
    }
    if let Some(nf) = report.first_nonfinite.as_deref().and_then(|n| ls.iter().find(|l| l.t.name == n)) {
        let text = format!("first non-finite: {}", elide_left(&nf.t.name, 48));
        vertical_marker(&mut chart, nf.x, (lo, hi), (xlo, xhi), 0.62, &text, NONFINITE_COLOR)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(200, 200, 200))
        .label_font(font(12.0))
        .draw()?;
    if ls.is_empty() {
        root.draw(&Text::new("no float tensor was compared", (40, 60), font(16.0)))?;
    } else if ls.iter().any(|l| l.max_abs == 0.0) {
        let (w, h) = root.dim_in_pixel();
        let note = "errors of exactly 0 are drawn on the bottom edge";
        root.draw(&Text::new(note, (w as i32 - 12, h as i32 - 6), anchored(11.0, HPos::Right, VPos::Bottom, GREY)))?;
    }
    Ok(())
}

/// A legend label, a colour and which tensors belong to the class.
type Class = (&'static str, RGBColor, fn(&TensorReport) -> bool);

fn draw_overflow_map<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, report: &Report) -> DrawResult<DB> {
    root.fill(&WHITE)?;
    let ls = layers(report);
    let (xlo, xhi) = x_range(&ls);
    let (lo, hi) = log_range(ls.iter().map(|l| l.ref_abs_max), &[FP16_MAX * 2.0, FP16_MIN_SUBNORMAL / 2.0]);
    let mut chart = per_tensor_chart(
        root,
        "reference max |value| per tensor against the FP16 range",
        "max |reference value| (log)",
        (xlo, xhi),
        (lo, hi),
    )?;
    // Shade what FP16 cannot hold.
    chart.draw_series(std::iter::once(Rectangle::new([(xlo, FP16_MAX), (xhi, hi)], FAIL_COLOR.mix(0.08).filled())))?;
    chart.draw_series(std::iter::once(Rectangle::new(
        [(xlo, lo), (xhi, FP16_MIN_SUBNORMAL)],
        NONFINITE_COLOR.mix(0.08).filled(),
    )))?;
    let lines: [(f64, &str, RGBColor, bool); 3] = [
        (FP16_MAX, "FP16 max 65504: above it FP16 is inf", FAIL_COLOR, false),
        (FP16_MIN_NORMAL, "FP16 smallest normal 6.1e-5: below it precision drops", GREY, true),
        (FP16_MIN_SUBNORMAL, "FP16 smallest subnormal 5.96e-8: below it values flush to 0", NONFINITE_COLOR, false),
    ];
    for (y, label, color, dashed) in lines {
        let style = color.stroke_width(2);
        let anno = if dashed {
            chart.draw_series(DashedLineSeries::new(vec![(xlo, y), (xhi, y)], 6, 4, style))?
        } else {
            chart.draw_series(LineSeries::new(vec![(xlo, y), (xhi, y)], style))?
        };
        anno.label(label).legend(move |(x, yy)| PathElement::new(vec![(x, yy), (x + 18, yy)], style));
    }
    let size = marker_size(ls.len());
    let classes: [Class; 3] = [
        ("OVF: values above 65504", FAIL_COLOR, |t| t.flags.iter().any(|f| f == "OVF")),
        ("UNF: some values below 5.96e-8", NONFINITE_COLOR, |t| {
            t.flags.iter().any(|f| f == "UNF") && !t.flags.iter().any(|f| f == "OVF")
        }),
        ("within the FP16 range", FP16_COLOR, |t| !t.flags.iter().any(|f| f == "OVF" || f == "UNF")),
    ];
    for (label, color, pick) in classes {
        let pts: Vec<&Layer<'_>> = ls.iter().filter(|l| pick(l.t)).collect();
        if pts.is_empty() {
            continue;
        }
        chart
            .draw_series(pts.iter().map(|l| {
                let y = if l.ref_abs_max > 0.0 && l.ref_abs_max.is_finite() { l.ref_abs_max.clamp(lo, hi) } else { lo };
                Circle::new((l.x, y), size, color.filled())
            }))?
            .label(label)
            .legend(move |(x, y)| Circle::new((x + 9, y), 5, color.filled()));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(200, 200, 200))
        .label_font(font(12.0))
        .draw()?;
    if ls.is_empty() {
        root.draw(&Text::new("no float tensor was compared", (40, 60), font(16.0)))?;
    }
    Ok(())
}

/// Where the histogram draws the exact-zero and non-finite bars (decade axis units).
const ZERO_AT: f64 = (LOWEST_DECADE - 2) as f64;
const NONFINITE_AT: f64 = (HIGHEST_DECADE + 2) as f64;

fn draw_histogram<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    t: &TensorReport,
    pair: &TensorPair,
    h: &ErrorHistogram,
) -> DrawResult<DB> {
    root.fill(&WHITE)?;
    let most = h.bins.iter().copied().chain([h.zero, h.nonfinite]).max().unwrap_or(0).max(1);
    let title = format!("|candidate - reference| of {} ({} elements)", elide_left(&t.name, 50), h.total());
    let mut chart = ChartBuilder::on(root)
        .caption(title, font(18.0))
        .margin(12)
        .x_label_area_size(50)
        .y_label_area_size(70)
        .build_cartesian_2d(ZERO_AT - 0.5..NONFINITE_AT + 1.5, 0.0..most as f64 * 1.12)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(30)
        .x_label_formatter(&|v| {
            let r = v.round();
            if (v - r).abs() > 1e-9 {
                String::new()
            } else if r == ZERO_AT {
                "0 (equal)".into()
            } else if r == NONFINITE_AT {
                "NaN/inf".into()
            } else if (f64::from(LOWEST_DECADE)..=f64::from(HIGHEST_DECADE)).contains(&r) && (r as i64) % 2 == 0 {
                format!("1e{}", r as i64)
            } else {
                String::new()
            }
        })
        .x_desc("absolute error, decades (bar from 10^k to 10^(k+1))")
        .y_desc("elements")
        .y_label_formatter(&|v| format!("{v:.0}"))
        .light_line_style(RGBColor(235, 235, 235))
        .label_style(font(12.0))
        .axis_desc_style(font(14.0))
        .draw()?;
    let tol = t.atol + t.rtol * t.metrics.as_ref().map_or(0.0, |m| m.reference_abs_max).max(0.0);
    let bars = h
        .bins
        .iter()
        .enumerate()
        .map(|(i, &c)| {
            let x = f64::from(ErrorHistogram::decade(i));
            let above = tol > 0.0 && x >= tol.log10().floor();
            (x, c, if above { FAIL_COLOR } else { FP16_COLOR })
        })
        .chain([(ZERO_AT, h.zero, PASS_COLOR), (NONFINITE_AT, h.nonfinite, NONFINITE_COLOR)]);
    chart.draw_series(
        bars.filter(|(_, c, _)| *c > 0)
            .map(|(x, c, color)| Rectangle::new([(x + 0.08, 0.0), (x + 0.92, c as f64)], color.filled())),
    )?;
    if tol > 0.0 {
        let x = tol.log10().clamp(f64::from(LOWEST_DECADE), f64::from(HIGHEST_DECADE) + 1.0);
        let style = GREY.stroke_width(2);
        chart
            .draw_series(DashedLineSeries::new(vec![(x, 0.0), (x, most as f64 * 1.1)], 6, 4, style))?
            .label(format!("tolerance at max |reference|: {}", crate::compare::table::num(tol)))
            .legend(move |(px, py)| PathElement::new(vec![(px, py), (px + 18, py)], style));
    }
    chart
        .draw_series(std::iter::empty::<Circle<(f64, f64), i32>>())?
        .label(format!(
            "iteration {}, reference {}, candidate {}",
            pair.iteration,
            pair.reference.dtype(),
            pair.candidate.dtype()
        ))
        .legend(|(x, y)| Rectangle::new([(x, y - 4), (x + 14, y + 4)], FP16_COLOR.filled()));
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(200, 200, 200))
        .label_font(font(12.0))
        .draw()?;
    Ok(())
}

fn draw_scatter<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    t: &TensorReport,
    pair: &TensorPair,
) -> DrawResult<DB> {
    root.fill(&WHITE)?;
    let n = pair.reference.len().min(pair.candidate.len());
    let stride = n.div_ceil(SCATTER_MAX_POINTS).max(1);
    let mut pts = Vec::with_capacity(n / stride + 1);
    let mut nonfinite = Vec::new();
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for i in (0..n).step_by(stride) {
        let (r, c) = (pair.reference.get_f64(i), pair.candidate.get_f64(i));
        for v in [r, c] {
            if v.is_finite() {
                lo = lo.min(v);
                hi = hi.max(v);
            }
        }
        if r.is_finite() && c.is_finite() {
            pts.push((r, c));
        } else {
            nonfinite.push((r, c));
        }
    }
    if !lo.is_finite() {
        (lo, hi) = (-1.0, 1.0);
    }
    if hi - lo <= f64::EPSILON * hi.abs().max(1.0) {
        (lo, hi) = (lo - 0.5 * lo.abs().max(1.0), hi + 0.5 * hi.abs().max(1.0));
    }
    let pad = (hi - lo) * 0.05;
    let (lo, hi) = (lo - pad, hi + pad);
    let shown = if stride > 1 { format!(", every {stride}th of {n}") } else { String::new() };
    let title = format!("candidate vs reference: {} ({} points{shown})", elide_left(&t.name, 44), pts.len());
    let mut chart = ChartBuilder::on(root)
        .caption(title, font(18.0))
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(80)
        .build_cartesian_2d(lo..hi, lo..hi)?;
    chart
        .configure_mesh()
        .x_desc(format!("reference ({})", pair.reference.dtype()))
        .y_desc(format!("candidate ({})", pair.candidate.dtype()))
        .x_label_formatter(&|v| crate::compare::table::num(*v))
        .y_label_formatter(&|v| crate::compare::table::num(*v))
        .light_line_style(RGBColor(235, 235, 235))
        .label_style(font(12.0))
        .axis_desc_style(font(14.0))
        .draw()?;
    let diag = GREY.stroke_width(1);
    chart
        .draw_series(DashedLineSeries::new(vec![(lo, lo), (hi, hi)], 6, 4, diag))?
        .label("y = x (no error)")
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], diag));
    let limits: Vec<f64> = [FP16_MAX, -FP16_MAX].into_iter().filter(|l| (lo..hi).contains(l)).collect();
    for (i, limit) in limits.iter().enumerate() {
        chart.draw_series(LineSeries::new(vec![(*limit, lo), (*limit, hi)], FAIL_COLOR.mix(0.5)))?;
        let anno = chart.draw_series(LineSeries::new(vec![(lo, *limit), (hi, *limit)], FAIL_COLOR.mix(0.5)))?;
        if i == 0 {
            anno.label("±65504: the FP16 range")
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], FAIL_COLOR.mix(0.5)));
        }
    }
    let dot = if pts.len() > 5000 { 1 } else { 2 };
    let color = if precision_of(t) == "FP32" { FP32_COLOR } else { FP16_COLOR };
    chart
        .draw_series(pts.iter().map(|&p| Circle::new(p, dot, color.mix(0.6).filled())))?
        .label(format!("element pair ({} drawn)", pts.len()))
        .legend(move |(x, y)| Circle::new((x + 9, y), 4, color.filled()));
    if !nonfinite.is_empty() {
        let edge = |v: f64, fallback: f64| {
            if v.is_nan() {
                fallback
            } else if v == f64::INFINITY {
                hi
            } else if v == f64::NEG_INFINITY {
                lo
            } else {
                v.clamp(lo, hi)
            }
        };
        chart
            .draw_series(
                nonfinite
                    .iter()
                    .map(|&(r, c)| TriangleMarker::new((edge(r, lo), edge(c, hi)), 5, NONFINITE_COLOR.filled())),
            )?
            .label(format!("{} pairs with NaN/inf (drawn on the edges)", nonfinite.len()))
            .legend(|(x, y)| TriangleMarker::new((x + 9, y), 5, NONFINITE_COLOR.filled()));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(200, 200, 200))
        .label_font(font(12.0))
        .draw()?;
    Ok(())
}

fn draw_search<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, trace: &SearchTrace) -> DrawResult<DB> {
    root.fill(&WHITE)?;
    let (plot, side) = root.split_horizontally(MODEL_SIZE.0 * 2 / 3);
    let most = trace.runs.iter().map(|r| r.kept_fp32).max().unwrap_or(0).max(1);
    let runs = trace.runs.len().max(1);
    let title = format!("search: {} runs, {} nodes kept FP32", trace.runs.len(), trace.kept.len());
    let mut chart = ChartBuilder::on(&plot)
        .caption(title, font(20.0))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.5..runs as f64 + 0.5, 0.0..most as f64 * 1.1)?;
    chart
        .configure_mesh()
        .x_desc("run")
        .y_desc("nodes kept FP32")
        .x_label_formatter(&|v| if (v - v.round()).abs() < 1e-9 { format!("{v:.0}") } else { String::new() })
        .light_line_style(RGBColor(235, 235, 235))
        .label_style(font(12.0))
        .axis_desc_style(font(14.0))
        .draw()?;
    let line: Vec<(f64, f64)> =
        trace.runs.iter().enumerate().map(|(i, r)| ((i + 1) as f64, r.kept_fp32 as f64)).collect();
    chart.draw_series(LineSeries::new(line, GREY.stroke_width(1)))?;
    for (label, passed, color) in [("outputs pass", true, PASS_COLOR), ("outputs fail", false, FAIL_COLOR)] {
        chart
            .draw_series(
                trace
                    .runs
                    .iter()
                    .enumerate()
                    .filter(|(_, r)| r.passed == passed)
                    .map(|(i, r)| Circle::new(((i + 1) as f64, r.kept_fp32 as f64), 5, color.filled())),
            )?
            .label(label)
            .legend(move |(x, y)| Circle::new((x + 9, y), 5, color.filled()));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(200, 200, 200))
        .label_font(font(12.0))
        .draw()?;
    side.draw(&Text::new(format!("kept FP32 ({}):", trace.kept.len()), (10, 40), font(15.0)))?;
    let rows = ((MODEL_SIZE.1 as usize).saturating_sub(90)) / 18;
    for (i, name) in trace.kept.iter().take(rows).enumerate() {
        side.draw(&Text::new(elide_left(name, 52), (14, 66 + 18 * i as i32), font(12.0)))?;
    }
    if trace.kept.len() > rows {
        let more = format!("... and {} more", trace.kept.len() - rows);
        side.draw(&Text::new(more, (14, 66 + 18 * rows as i32), font(12.0)))?;
    }
    Ok(())
}

/// Max absolute error per tensor along the topological order (see the module table).
pub fn error_along_order(report: &Report, format: PlotFormat) -> Result<Vec<u8>> {
    render!(format, MODEL_SIZE, "error plot", |root| draw_error_chart(root, report))
}

/// Largest reference magnitude per tensor against the FP16 range.
pub fn overflow_map(report: &Report, format: PlotFormat) -> Result<Vec<u8>> {
    render!(format, MODEL_SIZE, "overflow map", |root| draw_overflow_map(root, report))
}

/// Histogram of `|c − r|` of one pair, in decades.
pub fn error_histogram(t: &TensorReport, pair: &TensorPair, format: PlotFormat) -> Result<Vec<u8>> {
    let h = abs_error_histogram(
        pair.reference.dtype(),
        pair.reference.bytes(),
        pair.candidate.dtype(),
        pair.candidate.bytes(),
    )
    .ok_or_else(|| {
        Error::usage(format!("'{}': the two sides hold different numbers of elements; no histogram", pair.name))
    })?;
    render!(format, TENSOR_SIZE, "histogram", |root| draw_histogram(root, t, pair, &h))
}

/// Candidate against reference values of one pair.
pub fn scatter(t: &TensorReport, pair: &TensorPair, format: PlotFormat) -> Result<Vec<u8>> {
    render!(format, TENSOR_SIZE, "scatter plot", |root| draw_scatter(root, t, pair))
}

/// A search's runs and kept set.
pub fn search(trace: &SearchTrace, format: PlotFormat) -> Result<Vec<u8>> {
    render!(format, MODEL_SIZE, "search plot", |root| draw_search(root, trace))
}

/// One plot made for a report: its file stem, a title, and the file bytes.
#[derive(Debug, Clone)]
pub struct Plot {
    /// File name without extension (`error`, `overflow`, `histogram-NAME`, ...).
    pub stem: String,
    /// What it shows (HTML figure caption).
    pub title: String,
    /// File contents.
    pub bytes: Vec<u8>,
}

/// Every plot of a report: the whole-model charts, then the histogram and scatter of each pair, then
/// the search (when given).
pub fn all(
    report: &Report,
    pairs: &[TensorPair],
    search_trace: Option<&SearchTrace>,
    format: PlotFormat,
) -> Result<Vec<Plot>> {
    let mut out = vec![
        Plot {
            stem: "error".into(),
            title: "Error along the topological order".into(),
            bytes: error_along_order(report, format)?,
        },
        Plot {
            stem: "overflow".into(),
            title: "Reference magnitude against the FP16 range".into(),
            bytes: overflow_map(report, format)?,
        },
    ];
    for pair in pairs {
        let Some(t) = report.tensor(&pair.name) else {
            return Err(Error::usage(format!("'{}' is not a compared tensor of the report", pair.name)));
        };
        let stem = file_stem(&pair.name);
        out.push(Plot {
            stem: format!("histogram-{stem}"),
            title: format!("Absolute error of {}", pair.name),
            bytes: error_histogram(t, pair, format)?,
        });
        out.push(Plot {
            stem: format!("scatter-{stem}"),
            title: format!("Candidate against reference: {}", pair.name),
            bytes: scatter(t, pair, format)?,
        });
    }
    if let Some(trace) = search_trace {
        out.push(Plot { stem: "search".into(), title: "Search".into(), bytes: search(trace, format)? });
    }
    Ok(out)
}

/// Write [`all`] plots into `dir` (created if missing), each file atomically; returns the paths.
pub fn write_all(
    dir: &Path,
    format: PlotFormat,
    report: &Report,
    pairs: &[TensorPair],
    search_trace: Option<&SearchTrace>,
) -> Result<Vec<PathBuf>> {
    if dir.exists() && !dir.is_dir() {
        return Err(Error::usage(format!("--plots {}: is a file; give a directory", dir.display())));
    }
    std::fs::create_dir_all(dir).map_err(|e| Error::store_io(dir, "cannot create the plot directory", e))?;
    let mut paths = Vec::new();
    for plot in all(report, pairs, search_trace, format)? {
        let path = dir.join(format!("{}.{}", plot.stem, format.extension()));
        crate::store::write_atomic(&path, &plot.bytes)?;
        paths.push(path);
    }
    Ok(paths)
}
