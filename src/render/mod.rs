//! Shareable results: plots ([`plots`], PNG and SVG drawn with `plotters` and an embedded font), a
//! self-contained HTML page ([`html`]) and a markdown summary for pull requests ([`markdown`]), all
//! made from a [`Report`] (plus, for the per-tensor plots, the two tensors of one pair).
//!
//! [`write`] does what `--html`, `--markdown` and `--plots` ask for (`trtlens report`, `compare`, and
//! later `check`): every file is written atomically and named in the returned list. Later features
//! add their own content through [`html::Section`] and [`plots::SearchTrace`] without touching the
//! report schema.

pub mod html;
pub mod markdown;
pub mod plots;

use std::path::{Path, PathBuf};

use crate::compare::report::{Report, SideReport, Status, TensorReport};
use crate::compare::source::{Side, SideSpec};
use crate::error::{Error, Result};
use crate::tensor::Tensor;
pub use crate::text::file_stem;

pub use plots::PlotFormat;

/// The two tensors of one compared pair, as the plots of a chosen tensor need them.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorPair {
    /// Exact tensor name.
    pub name: String,
    /// The iteration they come from (the report's worst iteration for this tensor).
    pub iteration: usize,
    /// Reference values.
    pub reference: Tensor,
    /// Candidate values.
    pub candidate: Tensor,
}

/// What to write, as the command-line flags say (`--html`, `--markdown`, `--plots DIR --format`,
/// `--plot-tensor`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outputs {
    /// Self-contained HTML report.
    pub html: Option<PathBuf>,
    /// Markdown summary.
    pub markdown: Option<PathBuf>,
    /// Directory for the plots.
    pub plots: Option<PathBuf>,
    /// Format of the plot files.
    pub format: PlotFormat,
    /// Tensors whose histogram and scatter are drawn (default: [`default_tensor`]).
    pub tensors: Vec<String>,
}

impl Outputs {
    /// True when nothing is asked for.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.html.is_none() && self.markdown.is_none() && self.plots.is_none()
    }

    /// True when the outputs need tensor values (per-tensor plots in the plot directory or the page).
    #[must_use]
    pub fn wants_tensors(&self) -> bool {
        self.html.is_some() || self.plots.is_some()
    }
}

/// The tensor whose histogram and scatter are drawn when none is named: the first divergence, else
/// the first non-finite tensor, else the graph output with the largest error, else the float tensor
/// with the largest error.
#[must_use]
pub fn default_tensor(report: &Report) -> Option<&str> {
    if let Some(n) = report.first_divergence.as_deref().or(report.first_nonfinite.as_deref()) {
        return Some(n);
    }
    let err = |t: &&TensorReport| t.metrics.as_ref().map_or(f64::NEG_INFINITY, |m| m.max_abs);
    let float = |t: &&TensorReport| !t.exact && t.metrics.is_some();
    let by_error = |a: &&TensorReport, b: &&TensorReport| err(a).total_cmp(&err(b));
    report
        .tensors
        .iter()
        .filter(|t| t.is_output)
        .filter(float)
        .max_by(by_error)
        .or_else(|| report.tensors.iter().filter(float).max_by(by_error))
        .map(|t| t.name.as_str())
}

/// Open the saved results of one side of a report (the run directory or Polygraphy file it names).
fn open_side(which: &str, side: &SideReport) -> Result<Side> {
    if let Some(rest) = side.spec.strip_prefix("saved:") {
        let SideSpec::Saved { path, runner } = SideSpec::parse(&side.spec)? else {
            return Err(Error::usage(format!("the {which} side '{rest}' is not a saved result")));
        };
        return Side::open(&path, runner.as_deref());
    }
    match &side.path {
        Some(p) => Side::open(Path::new(p), None),
        None => Err(Error::usage(format!(
            "the report's {which} ran in a temporary folder that is gone, so its tensors cannot be plotted: \
             compare with --save-runs DIR (or give --plots/--html to compare itself)"
        ))),
    }
}

/// Read the two tensors of `name` from the runs the report names (its worst iteration).
pub fn load_pair(report: &Report, name: &str) -> Result<TensorPair> {
    if report.tensor(name).is_none() {
        return Err(Error::usage(format!("'{name}' is not a compared tensor of the report")));
    }
    let sides = [open_side("reference", &report.reference)?, open_side("candidate", &report.candidate)?];
    pair_from(report, name, &sides)
}

/// Read the two tensors of `name` from the given saved results (reference, candidate): run
/// directories, or Polygraphy files holding one runner (the inspector's runs).
pub fn load_pair_from(report: &Report, name: &str, reference: &Path, candidate: &Path) -> Result<TensorPair> {
    let sides = [Side::open(reference, None)?, Side::open(candidate, None)?];
    pair_from(report, name, &sides)
}

fn pair_from(report: &Report, name: &str, sides: &[Side; 2]) -> Result<TensorPair> {
    let Some(t) = report.tensor(name) else {
        return Err(Error::usage(format!("'{name}' is not a compared tensor of the report")));
    };
    let iteration = t.worst_iteration;
    let mut tensors = Vec::with_capacity(2);
    for opened in sides {
        let it = opened.iteration(iteration)?;
        let data = it
            .get(name)?
            .ok_or_else(|| Error::store(opened.path(), format!("holds no tensor '{name}' in iteration {iteration}")))?;
        tensors.push(data.view().to_tensor()?);
    }
    let candidate = tensors.pop().ok_or_else(|| Error::usage("no candidate tensor"))?;
    let reference = tensors.pop().ok_or_else(|| Error::usage("no reference tensor"))?;
    Ok(TensorPair { name: name.to_string(), iteration, reference, candidate })
}

/// The tensors named in `outputs` (or the default one) read from the report's runs. A tensor that
/// cannot be read is an error when it was named, and a note otherwise (the report may come from
/// runs that are gone).
pub fn load_pairs(report: &Report, outputs: &Outputs) -> Result<(Vec<TensorPair>, Vec<String>)> {
    let mut notes = Vec::new();
    if outputs.tensors.is_empty() {
        let Some(name) = default_tensor(report) else { return Ok((Vec::new(), notes)) };
        return match load_pair(report, name) {
            Ok(p) => Ok((vec![p], notes)),
            Err(e) => {
                notes.push(format!("no histogram or scatter of '{name}': {e}"));
                Ok((Vec::new(), notes))
            }
        };
    }
    let pairs = outputs.tensors.iter().map(|n| load_pair(report, n)).collect::<Result<Vec<_>>>()?;
    Ok((pairs, notes))
}

/// Extra content of the outputs beyond the report itself.
#[derive(Debug, Default)]
pub struct Extras<'a> {
    /// The candidate's precision plan, when known (shown on the page).
    pub plan: Option<&'a crate::precision::Plan>,
    /// Sections added by later commands (check, search).
    pub sections: Vec<html::Section>,
    /// A search's runs (drawn as a plot when present).
    pub search: Option<&'a plots::SearchTrace>,
}

/// Write what `outputs` asks for: the plots (whole-model charts, then histogram and scatter of each
/// pair), the HTML page (with the same plots embedded as SVG) and the markdown summary. Returns the
/// files written, in order.
pub fn write(report: &Report, outputs: &Outputs, pairs: &[TensorPair], extras: &Extras<'_>) -> Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    if let Some(dir) = &outputs.plots {
        written.extend(plots::write_all(dir, outputs.format, report, pairs, extras.search)?);
    }
    if let Some(path) = &outputs.html {
        let page = html::page(report, pairs, extras)?;
        crate::store::write_atomic(path, page.as_bytes())?;
        written.push(path.clone());
    }
    if let Some(path) = &outputs.markdown {
        crate::store::write_atomic(path, markdown::summary(report).as_bytes())?;
        written.push(path.clone());
    }
    Ok(written)
}

/// `PASS` or `FAIL`.
#[must_use]
pub fn verdict_word(report: &Report) -> &'static str {
    if report.passed() { "PASS" } else { "FAIL" }
}

/// `FP16`, `BF16` or `FP32` from the candidate's stored dtype of a tensor (what a precision plan
/// made of its producer), `-` for non-float tensors.
#[must_use]
pub fn precision_of(t: &TensorReport) -> &'static str {
    match t.dtype_candidate.as_str() {
        "float16" => "FP16",
        "bfloat16" => "BF16",
        "float32" | "float64" => "FP32",
        _ => "-",
    }
}

/// Counts of the outputs that pass, for summaries.
#[must_use]
pub fn outputs_passing(report: &Report) -> (usize, usize) {
    (report.outputs.iter().filter(|o| o.status == Status::Pass).count(), report.outputs.len())
}

/// One line naming a tensor with its op, node and position (`name (MatMul 'fc1', #4)`).
#[must_use]
pub fn describe_tensor(report: &Report, name: Option<&str>) -> String {
    let Some(name) = name else { return "none".into() };
    match report.tensor(name) {
        Some(t) => format!(
            "{} ({}{}, #{})",
            t.name,
            t.op_type.as_deref().unwrap_or("?"),
            t.node.as_deref().map_or_else(String::new, |n| format!(" '{n}'")),
            t.topo_index.map_or_else(|| "?".into(), |i| i.to_string())
        ),
        None => name.to_string(),
    }
}
