//! `trtlens check`: gate CI on accuracy regressions, per layer, against a baseline report.
//!
//! A check runs (or loads, with `saved:` sides) one comparison, exactly as `trtlens compare` does,
//! and judges the new report against a baseline report (`trtlens.report/1`, what
//! `compare --report` and `check --update-baseline` write) under a [`policy::Policy`]:
//!
//! * every graph output must be within its tolerance (the comparison's own verdict);
//! * a tensor regresses when its error grows beyond `factor × baseline + slack`, when NaN/Inf or
//!   an FP16 overflow appears in it, when the first divergence or the first non-finite tensor moves
//!   earlier (to it), when it is skipped now, and for `TensorRT` candidates when the engine runs a
//!   node in another precision than the plan says and the baseline did not list it;
//! * tensors that appear or disappear are reported (failing only if the policy says so);
//! * improvements are reported too.
//!
//! The baseline must describe the same model (sha256), inputs and tolerances; otherwise the check
//! cannot run (exit 2) unless `allow_model_change`. [`run_in_process`] runs one check in this
//! process; [`run_all`] runs many (a `trtlens.toml`, see [`config`]), each comparison in its own
//! `trtlens worker` process (crash isolation), up to `jobs` at a time. The outputs for CI systems
//! (`JUnit` XML, markdown, GitHub annotations) are in [`junit`] and [`summary`]; the JSON result in
//! [`result`].

pub mod config;
pub mod junit;
pub mod policy;
pub mod result;
pub mod summary;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde_json::Value;

use crate::cli::{InputArgs, PlanArgs};
use crate::compare::report::{Report, Status, TensorReport};
use crate::compare::source::SideSpec;
use crate::compare::{self, CompareRequest};
use crate::error::{Error, Result};
use crate::run::Progress;
use crate::runner::RunnerOptions;
use policy::{LayerMetric, Matchers, Policy, iteration_metrics};
use result::{CheckResult, CheckStatus, LayerChange, LayerRule, Moved, OutputCheck, Reason, TensorCounts};

/// The reference a check runs when none is given: embedded, FP32, the same on every machine.
pub const DEFAULT_REFERENCE: &str = "tract";
/// The candidate a check runs when none is given (FP16 storage on CPU: CI without a GPU).
pub const DEFAULT_CANDIDATE: &str = "cpu-fp16";

/// What one check is: a comparison, its baseline and its policy.
#[derive(Debug, Clone)]
pub struct CheckSpec {
    /// The check's name (`JUnit` suite, markdown heading).
    pub name: String,
    /// The model as the user spelled it (written into a new baseline's `model.path`).
    pub model_label: Option<String>,
    /// The comparison to run.
    pub request: CompareRequest,
    /// The baseline report.
    pub baseline: PathBuf,
    /// The policy.
    pub policy: Policy,
    /// The policy file, when one was given.
    pub policy_path: Option<PathBuf>,
}

/// Flags that apply to every check of a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CheckOptions {
    /// Write the new report as the baseline after a passing check.
    pub update_baseline: bool,
    /// With `update_baseline`: write it whatever the verdict, replacing an unreadable or
    /// incompatible baseline.
    pub force: bool,
    /// A baseline made from another model, other inputs or other tolerances is compared anyway
    /// (the differences become notes).
    pub allow_model_change: bool,
}

impl CheckOptions {
    fn replacing(self) -> bool {
        self.update_baseline && self.force
    }
}

/// The comparison a check runs: sides, plan and inputs as on the command line, tolerances from
/// the policy's `[outputs]` (the candidate's defaults where it sets none).
pub fn compare_request(
    model: Option<PathBuf>,
    reference: &str,
    candidate: &str,
    plan: &PlanArgs,
    inputs: &InputArgs,
    ort_lib: Option<PathBuf>,
    policy: &Policy,
) -> Result<CompareRequest> {
    let candidate = SideSpec::parse(candidate)?;
    let reference = SideSpec::parse(reference)?;
    let plan = plan.build()?;
    if plan.is_some() && !matches!(candidate, SideSpec::Runner(k) if k.takes_plan()) {
        return Err(Error::usage(format!(
            "a precision plan applies to a candidate that takes one ({}); saved results already carry theirs",
            crate::runner::registry::plan_takers()
        )));
    }
    let (plan, plan_label) = plan.map_or((None, None), |(p, l)| (Some(p), Some(l)));
    let (tolerance, overrides) = policy.outputs.tolerance(&candidate);
    let mut request = CompareRequest::new(model, reference, candidate);
    request.inputs = inputs.options()?;
    request.runner_options = RunnerOptions { ort_lib, plan, plan_label, ..RunnerOptions::default() };
    request.tolerance = tolerance;
    request.overrides = overrides;
    request.specialize = !inputs.no_specialize;
    Ok(request)
}

// ---------------------------------------------------------------------------------------------
// Reports as check reads them
// ---------------------------------------------------------------------------------------------

/// A node the engine computes in another precision than the plan says (`TensorRT` candidates).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrecisionMismatch {
    /// The ONNX node.
    pub node: String,
    /// What the plan gives it (`fp16`, `fp32`), when known.
    pub plan: Option<String>,
    /// What the engine computes it in, when known.
    pub engine: Option<String>,
}

/// A report plus what check reads from it beyond [`Report`]'s fields: the `TensorRT` candidate's
/// `precision_mismatches`, read from the report JSON wherever a version puts them (top level,
/// `trt.precision_mismatches` or `candidate.precision_mismatches`), absent in other reports.
#[derive(Debug, Clone)]
pub struct ReportDoc {
    /// The report.
    pub report: Report,
    /// Precision mismatches, in the order listed.
    pub precision_mismatches: Vec<PrecisionMismatch>,
}

impl ReportDoc {
    /// Read a report's JSON (already checked to be a `trtlens.report/1`).
    pub fn from_value(value: Value) -> std::result::Result<ReportDoc, serde_json::Error> {
        let precision_mismatches = precision_mismatches(&value);
        let report: Report = serde_json::from_value(value)?;
        Ok(ReportDoc { report, precision_mismatches })
    }

    /// A report produced in this process (serialized once, so fields a later version adds to
    /// [`Report`] are read the same way as from a file).
    pub fn from_report(report: Report) -> Result<ReportDoc> {
        let value = serde_json::to_value(&report).map_err(|e| Error::usage(format!("cannot serialize report: {e}")))?;
        Ok(ReportDoc { precision_mismatches: precision_mismatches(&value), report })
    }
}

/// `precision_mismatches` items: `{"onnx_node": N, "plan": P, "engine": E}` (also `node`, `tensor`
/// or `name` for the node; `requested`/`expected` and `built`/`actual` for the precisions), or
/// a plain node name.
fn precision_mismatches(v: &Value) -> Vec<PrecisionMismatch> {
    let list = [&v["precision_mismatches"], &v["trt"]["precision_mismatches"], &v["candidate"]["precision_mismatches"]]
        .into_iter()
        .find_map(Value::as_array);
    let Some(list) = list else { return Vec::new() };
    let field = |item: &Value, keys: &[&str]| keys.iter().find_map(|k| item[*k].as_str().map(str::to_string));
    list.iter()
        .filter_map(|item| match item {
            Value::String(s) => Some(PrecisionMismatch { node: s.clone(), plan: None, engine: None }),
            Value::Object(_) => Some(PrecisionMismatch {
                node: field(item, &["onnx_node", "node", "tensor", "name"])?,
                plan: field(item, &["plan", "requested", "expected"]),
                engine: field(item, &["engine", "built", "actual"]),
            }),
            _ => None,
        })
        .collect()
}

/// Read a baseline report. Every way it can be wrong is one clear line: missing, unreadable, not
/// JSON (corrupt), JSON but not a trtlens report (foreign), a report of another schema version,
/// a damaged report.
pub fn read_baseline(path: &Path) -> Result<ReportDoc> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::store(
                path,
                "no such baseline: create it with --update-baseline (writes the report of a passing check)",
            ));
        }
        Err(e) => return Err(Error::store_io(path, "cannot read the baseline", e)),
    };
    let value: Value = serde_json::from_slice(&bytes).map_err(|e| {
        Error::store(
            path,
            format!(
                "the baseline is not valid JSON ({e}): a corrupt file; regenerate it with --update-baseline --force"
            ),
        )
    })?;
    let schema = value.get("schema").and_then(Value::as_str);
    match schema {
        // Reports of every schema this trtlens reads (1.1 only added optional keys to 1).
        Some(s) if crate::compare::report::REPORT_SCHEMAS_READ.contains(&s) => {}
        Some(s) if s == result::CHECK_SCHEMA => {
            return Err(Error::store(
                path,
                "is a trtlens check result (trtlens.check/1), not a report: a baseline is the JSON report of \
                 trtlens compare --report or trtlens check --update-baseline",
            ));
        }
        Some(s) if s.starts_with("trtlens.report/") => {
            return Err(Error::store(
                path,
                format!(
                    "is a report of schema {s}; this trtlens reads {}: regenerate it with --update-baseline --force",
                    crate::compare::report::REPORT_SCHEMAS_READ.join(", ")
                ),
            ));
        }
        Some(s) => {
            return Err(Error::store(
                path,
                format!(
                    "is a '{s}' file, not a trtlens report: a baseline is the JSON report of trtlens compare --report or trtlens check --update-baseline"
                ),
            ));
        }
        None => {
            return Err(Error::store(
                path,
                "is not a trtlens report (no \"schema\": \"trtlens.report/1\"): a baseline is the JSON report of \
                 trtlens compare --report or trtlens check --update-baseline",
            ));
        }
    }
    ReportDoc::from_value(value).map_err(|e| {
        Error::store(path, format!("is a damaged trtlens report ({e}); regenerate it with --update-baseline --force"))
    })
}

// ---------------------------------------------------------------------------------------------
// Compatibility of the baseline
// ---------------------------------------------------------------------------------------------

fn short(sha: &str) -> &str {
    &sha[..12.min(sha.len())]
}

/// Differences between what the baseline describes and what the new report does that make the
/// comparison meaningless (model, inputs, tolerances), and notes on harmless ones.
fn differences(base: &Report, new: &Report) -> (Vec<String>, Vec<String>) {
    let (mut hard, mut notes) = (Vec::new(), Vec::new());
    if let (Some(b), Some(n)) = (&base.model.sha256, &new.model.sha256)
        && b != n
    {
        hard.push(format!("was made from another model (sha256 {}…, the model now has {}…)", short(b), short(n)));
    }
    let (bi, ni) = (&base.inputs, &new.inputs);
    if bi.kind == ni.kind {
        if bi.kind == "random" && (bi.seed != ni.seed || bi.val_ranges != ni.val_ranges) {
            let ranges = |r: &crate::inputs::InputSource| {
                r.val_ranges
                    .iter()
                    .map(|v| format!("{}{},{}", v.name.as_ref().map_or(String::new(), |n| format!("{n}:")), v.lo, v.hi))
                    .collect::<Vec<_>>()
                    .join(" ")
            };
            let seed = |r: &crate::inputs::InputSource| r.seed.map_or_else(|| "none".into(), |s| s.to_string());
            hard.push(format!(
                "used random inputs with seed {} and ranges [{}], this check seed {} and ranges [{}]",
                seed(bi),
                ranges(bi),
                seed(ni),
                ranges(ni)
            ));
        }
        if bi.kind == "file" {
            let file =
                |p: &Option<String>| p.as_deref().and_then(|p| Path::new(p).file_name().map(std::ffi::OsStr::to_owned));
            if file(&bi.path) != file(&ni.path) {
                notes.push(format!(
                    "the baseline loaded its inputs from {}, this check from {}",
                    bi.path.as_deref().unwrap_or("?"),
                    ni.path.as_deref().unwrap_or("?")
                ));
            }
        }
        if bi.shapes != ni.shapes || bi.iterations != ni.iterations {
            let shapes = |r: &crate::inputs::InputSource| {
                r.shapes
                    .iter()
                    .map(|(n, s)| format!("{n}:{}", crate::tensor::shape_string(s)))
                    .collect::<Vec<_>>()
                    .join(" ")
            };
            hard.push(format!(
                "used inputs {} x {} iteration(s), this check {} x {}",
                shapes(bi),
                bi.iterations,
                shapes(ni),
                ni.iterations
            ));
        }
    } else {
        hard.push(format!("used {} inputs, this check {} inputs", bi.kind, ni.kind));
    }
    let (bt, nt) = (&base.tolerance, &new.tolerance);
    if bt.rule != nt.rule || bt.atol != nt.atol || bt.rtol != nt.rtol || bt.inf_equal != nt.inf_equal {
        hard.push(format!(
            "used the tolerance {} atol {} rtol {}{}, this check {} atol {} rtol {}{}",
            bt.rule.name(),
            bt.atol,
            bt.rtol,
            if bt.inf_equal { " inf-equal" } else { "" },
            nt.rule.name(),
            nt.atol,
            nt.rtol,
            if nt.inf_equal { " inf-equal" } else { "" },
        ));
    }
    let sorted = |o: &[compare::report::ToleranceOverride]| {
        let mut v: Vec<String> = o.iter().map(|o| format!("{}:{:?}/{:?}", o.tensor, o.atol, o.rtol)).collect();
        v.sort();
        v
    };
    if sorted(&bt.overrides) != sorted(&nt.overrides) {
        hard.push(format!(
            "used per-tensor tolerances [{}], this check [{}]",
            sorted(&bt.overrides).join(", "),
            sorted(&nt.overrides).join(", ")
        ));
    }
    let side = |s: &compare::report::SideReport| {
        format!("{}{}", s.spec, s.precision_plan.as_ref().map_or(String::new(), |p| format!(" (plan: {p})")))
    };
    if base.reference.runner != new.reference.runner {
        notes.push(format!(
            "reference: the baseline used {}, this check {}",
            side(&base.reference),
            side(&new.reference)
        ));
    }
    if side(&base.candidate) != side(&new.candidate) {
        notes.push(format!(
            "candidate: the baseline ran {}, this check {}",
            side(&base.candidate),
            side(&new.candidate)
        ));
    }
    (hard, notes)
}

/// The error of an incompatible baseline.
fn incompatible(baseline: &Path, hard: &[String]) -> Error {
    Error::store(
        baseline,
        format!(
            "the baseline {}: pass --allow-model-change to compare anyway, or --update-baseline --force to replace it",
            hard.join("; ")
        ),
    )
}

// ---------------------------------------------------------------------------------------------
// Judging a report against the baseline
// ---------------------------------------------------------------------------------------------

/// Shortest readable form of a number: 4 significant digits, `inf`, `nan`.
#[must_use]
pub fn num(v: f64) -> String {
    if v.is_nan() {
        "nan".into()
    } else if v.is_infinite() {
        if v > 0.0 { "inf".into() } else { "-inf".into() }
    } else if v == 0.0 {
        "0".into()
    } else if (1e-3..1e5).contains(&v.abs()) {
        let s = format!("{v:.4}");
        let s = s.trim_end_matches('0').trim_end_matches('.');
        s.to_string()
    } else {
        format!("{v:.3e}")
    }
}

/// Candidate NaN and Inf beyond the reference's own, over every iteration.
fn excess_nonfinite(t: &TensorReport) -> (u64, u64) {
    iteration_metrics(t).fold((0, 0), |(n, i), m| {
        (n.max(m.nan_candidate.saturating_sub(m.nan_reference)), i.max(m.inf_candidate.saturating_sub(m.inf_reference)))
    })
}

/// Observed FP16 overflow: the reference exceeds 65504 and the candidate holds extra infinities.
fn observed_overflow(t: &TensorReport) -> u64 {
    iteration_metrics(t)
        .filter(|m| m.fp16_overflow_reference > 0)
        .map(|m| m.inf_candidate.saturating_sub(m.inf_reference))
        .max()
        .unwrap_or(0)
}

fn reference_abs_max(t: &TensorReport) -> f64 {
    iteration_metrics(t).map(|m| m.reference_abs_max).filter(|v| !v.is_nan()).fold(0.0, f64::max)
}

fn predicted_overflow(t: &TensorReport) -> bool {
    t.flags.iter().any(|f| f == "OVF")
}

/// The first tensor (report order) meeting `pred` among those not ignored: (name, position).
fn first<'a>(r: &'a Report, m: &Matchers, pred: impl Fn(&TensorReport) -> bool) -> Option<(&'a TensorReport, usize)> {
    r.tensors
        .iter()
        .enumerate()
        .find(|(_, t)| !m.ignored(&t.name, t.op_type.as_deref()) && pred(t))
        .map(|(i, t)| (t, i))
}

/// How a "first" tensor moved. Positions compare in the new report's order when the baseline's
/// tensor is still there, else by topological index.
fn moved(
    before: Option<(&TensorReport, usize)>,
    after: Option<(&TensorReport, usize)>,
    new_position: &HashMap<&str, usize>,
) -> Moved {
    let change = match (before, after) {
        (None, None) => "none",
        (None, Some(_)) => "appeared",
        (Some(_), None) => "gone",
        (Some((b, bpos)), Some((a, apos))) => {
            if a.name == b.name {
                "same"
            } else {
                let (bp, ap) = match new_position.get(b.name.as_str()) {
                    Some(p) => (*p, apos),
                    None => (b.topo_index.unwrap_or(bpos), a.topo_index.unwrap_or(apos)),
                };
                if ap < bp { "earlier" } else { "later" }
            }
        }
    };
    Moved {
        before: before.map(|(t, _)| t.name.clone()),
        after: after.map(|(t, _)| t.name.clone()),
        change: change.into(),
    }
}

fn reason(rule: &str, message: String) -> Reason {
    Reason { rule: rule.into(), metric: None, before: None, after: None, limit: None, message }
}

/// Names of the checked run for messages.
#[derive(Debug, Clone, Default)]
pub struct Labels {
    /// The check's name.
    pub name: String,
    /// The model as given.
    pub model: Option<String>,
    /// The baseline path.
    pub baseline: String,
    /// The policy path.
    pub policy: Option<String>,
}

/// Judge `new` against `base` (`None`: no baseline yet, only the outputs' tolerances count).
/// An incompatible baseline is an error unless `allow_model_change`.
pub fn evaluate(
    base: Option<&ReportDoc>,
    new: &ReportDoc,
    policy: &Policy,
    allow_model_change: bool,
    labels: &Labels,
) -> Result<CheckResult> {
    let m = policy.matchers()?;
    let layers = &policy.layers;
    let nr = &new.report;
    let mut notes = Vec::new();
    if let Some(b) = base {
        let (hard, soft) = differences(&b.report, nr);
        if !hard.is_empty() {
            if !allow_model_change {
                return Err(incompatible(Path::new(&labels.baseline), &hard));
            }
            notes.extend(hard.iter().map(|h| format!("the baseline {h} (allowed)")));
        }
        notes.extend(soft);
    }
    let br = base.map(|b| &b.report);
    let new_position: HashMap<&str, usize> = nr.tensors.iter().enumerate().map(|(i, t)| (t.name.as_str(), i)).collect();
    let base_by: HashMap<&str, &TensorReport> =
        br.map(|b| b.tensors.iter().map(|t| (t.name.as_str(), t)).collect()).unwrap_or_default();

    // Graph outputs: their tolerance must hold.
    let outputs: Vec<OutputCheck> = nr
        .outputs
        .iter()
        .map(|o| {
            let t = nr.tensor(&o.name);
            let bt = br.and_then(|b| b.tensor(&o.name));
            let max_abs = |t: Option<&TensorReport>| t.and_then(|t| LayerMetric::MaxAbs.of_tensor(t));
            OutputCheck {
                name: o.name.clone(),
                status: o.status,
                max_abs: max_abs(t).unwrap_or(f64::NAN),
                atol: t.map(|t| t.atol),
                rtol: t.map(|t| t.rtol),
                baseline_status: br.and_then(|b| b.outputs.iter().find(|bo| bo.name == o.name)).map(|bo| bo.status),
                baseline_max_abs: max_abs(bt),
                failed: policy.outputs.gate && o.status != Status::Pass,
            }
        })
        .collect();

    let mut regressions: Vec<LayerChange> = Vec::new();
    let mut improvements: Vec<LayerChange> = Vec::new();
    let change = |t: &TensorReport, reasons: Vec<Reason>| LayerChange {
        tensor: Some(t.name.clone()),
        node: t.node.clone(),
        op_type: t.op_type.clone(),
        topo_index: t.topo_index,
        is_output: t.is_output,
        reasons,
    };

    let failing = |t: &TensorReport| t.status == Status::Fail;
    let nonfinite = |t: &TensorReport| {
        let (n, i) = excess_nonfinite(t);
        n + i > 0
    };
    let (first_divergence, first_nonfinite) = match br {
        Some(b) => (
            moved(first(b, &m, failing), first(nr, &m, failing), &new_position),
            moved(first(b, &m, nonfinite), first(nr, &m, nonfinite), &new_position),
        ),
        None => {
            let now = |pred: &dyn Fn(&TensorReport) -> bool| Moved {
                before: None,
                after: first(nr, &m, pred).map(|(t, _)| t.name.clone()),
                change: "no_baseline".into(),
            };
            (now(&failing), now(&nonfinite))
        }
    };

    let mut counts = TensorCounts { compared: nr.tensors.len(), ..TensorCounts::default() };
    let precision_before: HashSet<&str> =
        base.map(|b| b.precision_mismatches.iter().map(|p| p.node.as_str()).collect()).unwrap_or_default();
    let precision_now: HashSet<&str> = new.precision_mismatches.iter().map(|p| p.node.as_str()).collect();

    for t in &nr.tensors {
        let op = t.op_type.as_deref();
        if m.ignored(&t.name, op) {
            counts.ignored += 1;
            continue;
        }
        let mut bad = Vec::new();
        let mut good = Vec::new();
        let pos_label = |name: &Option<String>| {
            name.as_deref().map_or_else(
                || "none".to_string(),
                |n| match base_by.get(n).and_then(|t| t.topo_index) {
                    Some(i) => format!("{n} (#{i})"),
                    None => n.to_string(),
                },
            )
        };
        for (mv, rule, what, on) in [
            (&first_divergence, "first_divergence", "first divergence", layers.first_divergence_earlier),
            (&first_nonfinite, "first_nonfinite", "first non-finite tensor", layers.first_nonfinite_earlier),
        ] {
            if mv.after.as_deref() == Some(t.name.as_str())
                && on
                && matches!(mv.change.as_str(), "earlier" | "appeared")
            {
                let mut r = reason(
                    &format!("{rule}_earlier"),
                    if mv.change == "appeared" {
                        format!(
                            "the {what} is now here{} (baseline: none)",
                            t.topo_index.map_or(String::new(), |i| format!(" (#{i})"))
                        )
                    } else {
                        format!(
                            "the {what} moved earlier, to here{}, from {}",
                            t.topo_index.map_or(String::new(), |i| format!(" (#{i})")),
                            pos_label(&mv.before)
                        )
                    },
                );
                r.before =
                    mv.before.as_deref().and_then(|n| base_by.get(n)).and_then(|t| t.topo_index).map(|i| i as f64);
                r.after = t.topo_index.map(|i| i as f64);
                bad.push(r);
            }
            if mv.before.as_deref() == Some(t.name.as_str()) && matches!(mv.change.as_str(), "later" | "gone") {
                good.push(reason(
                    &format!("{rule}_later"),
                    format!("no longer the {what} (now: {})", mv.after.as_deref().unwrap_or("none")),
                ));
            }
        }
        let Some(b) = base_by.get(t.name.as_str()).copied() else {
            if br.is_some() {
                counts.added.push(t.name.clone());
                if policy.changes.fail_on_added {
                    bad.push(reason("tensor_added", "a tensor the baseline did not compare".into()));
                }
                if !bad.is_empty() {
                    regressions.push(change(t, bad));
                }
            }
            continue;
        };
        counts.checked += 1;
        let (factor, slack) = m.factor_slack(&t.name, op);
        if let (Some(before), Some(after)) = (layers.metric.of_tensor(b), layers.metric.of_tensor(t)) {
            let limit = factor * before + slack;
            let metric = layers.metric.name();
            if after > limit {
                bad.push(Reason {
                    rule: "metric".into(),
                    metric: Some(metric.into()),
                    before: Some(before),
                    after: Some(after),
                    limit: Some(limit),
                    message: format!(
                        "{metric} {} -> {} (limit {factor} x {} + {})",
                        num(before),
                        num(after),
                        num(before),
                        num(slack)
                    ),
                });
            } else if before > factor * after + slack {
                good.push(Reason {
                    rule: "metric".into(),
                    metric: Some(metric.into()),
                    before: Some(before),
                    after: Some(after),
                    limit: Some((before - slack) / factor),
                    message: format!("{metric} {} -> {}", num(before), num(after)),
                });
            }
        }
        let (bn, bi) = excess_nonfinite(b);
        let (nn, ni) = excess_nonfinite(t);
        let (obs_before, obs_now) = (observed_overflow(b), observed_overflow(t));
        if layers.new_nonfinite && bn + bi == 0 && nn + ni > 0 {
            // Infinities that are an observed FP16 overflow are reported as that (below).
            let shown_inf = if layers.new_overflow && obs_before == 0 && obs_now > 0 { 0 } else { ni };
            if nn + shown_inf > 0 {
                let mut parts = Vec::new();
                if nn > 0 {
                    parts.push(format!("{nn} NaN"));
                }
                if shown_inf > 0 {
                    parts.push(format!("{shown_inf} Inf"));
                }
                let mut r = reason(
                    "new_nonfinite",
                    format!("the candidate now holds {} (baseline: none)", parts.join(" and ")),
                );
                r.before = Some(0.0);
                r.after = Some((nn + shown_inf) as f64);
                bad.push(r);
            }
        }
        if layers.new_overflow {
            if predicted_overflow(t) && !predicted_overflow(b) {
                let mut r = reason(
                    "new_overflow_predicted",
                    format!(
                        "reference values now exceed the FP16 range (max |r| {} > 65504; baseline max {})",
                        num(reference_abs_max(t)),
                        num(reference_abs_max(b))
                    ),
                );
                r.before = Some(reference_abs_max(b));
                r.after = Some(reference_abs_max(t));
                bad.push(r);
            }
            if obs_before == 0 && obs_now > 0 {
                let mut r = reason(
                    "new_overflow_observed",
                    format!(
                        "FP16 overflow: the candidate holds {obs_now} inf where the reference exceeds 65504 (baseline: none)"
                    ),
                );
                r.before = Some(0.0);
                r.after = Some(obs_now as f64);
                bad.push(r);
            }
        }
        if layers.new_nonfinite && bn + bi > 0 && nn + ni == 0 {
            good.push(reason("nonfinite_gone", format!("no NaN/Inf any more (baseline: {bn} NaN, {bi} Inf)")));
        }
        if layers.new_skipped && b.status != Status::Skipped && t.status == Status::Skipped {
            bad.push(reason(
                "new_skipped",
                format!("not compared any more: {}", t.reason.as_deref().unwrap_or("skipped")),
            ));
        }
        if layers.new_precision_mismatch
            && let Some(node) = &t.node
        {
            for p in new.precision_mismatches.iter().filter(|p| &p.node == node) {
                if !precision_before.contains(p.node.as_str()) {
                    bad.push(precision_reason(p));
                }
            }
        }
        if !bad.is_empty() {
            regressions.push(change(t, bad));
        }
        if !good.is_empty() {
            improvements.push(change(t, good));
        }
    }
    if let Some(b) = br {
        let now: HashSet<&str> = nr.tensors.iter().map(|t| t.name.as_str()).collect();
        for t in
            b.tensors.iter().filter(|t| !now.contains(t.name.as_str()) && !m.ignored(&t.name, t.op_type.as_deref()))
        {
            counts.removed.push(t.name.clone());
            if policy.changes.fail_on_removed {
                let mut c = change(t, vec![reason("tensor_removed", "compared in the baseline, not any more".into())]);
                c.topo_index = None;
                regressions.push(c);
            }
        }
    }
    // Precision mismatches on nodes without a compared tensor.
    if layers.new_precision_mismatch {
        let covered: HashSet<&str> = nr.tensors.iter().filter_map(|t| t.node.as_deref()).collect();
        for p in &new.precision_mismatches {
            if !covered.contains(p.node.as_str())
                && !precision_before.contains(p.node.as_str())
                && !m.ignored(&p.node, None)
            {
                regressions.push(LayerChange {
                    tensor: None,
                    node: Some(p.node.clone()),
                    op_type: None,
                    topo_index: None,
                    is_output: false,
                    reasons: vec![precision_reason(p)],
                });
            }
        }
    }
    if let Some(b) = base {
        for p in b.precision_mismatches.iter().filter(|p| !precision_now.contains(p.node.as_str())) {
            improvements.push(LayerChange {
                tensor: None,
                node: Some(p.node.clone()),
                op_type: None,
                topo_index: None,
                is_output: false,
                reasons: vec![reason(
                    "precision_mismatch_gone",
                    "the engine now computes it in the plan's precision".into(),
                )],
            });
        }
    }
    // Topological order; node-only and removed entries last.
    let key = |c: &LayerChange| c.tensor.as_deref().and_then(|n| new_position.get(n).copied()).unwrap_or(usize::MAX);
    regressions.sort_by_key(key);
    improvements.sort_by_key(key);

    let failed = outputs.iter().any(|o| o.failed) || !regressions.is_empty();
    let status = if failed { CheckStatus::Fail } else { CheckStatus::Pass };
    let side = |s: &compare::report::SideReport| {
        format!("{}{}", s.spec, s.precision_plan.as_ref().map_or(String::new(), |p| format!(" (plan: {p})")))
    };
    Ok(CheckResult {
        name: labels.name.clone(),
        model: labels.model.clone(),
        baseline: labels.baseline.clone(),
        policy: labels.policy.clone(),
        status,
        exit_code: status.exit_code(),
        error: None,
        reference: Some(format!("{} {}", nr.reference.runner, nr.reference.version)),
        candidate: Some(side(&nr.candidate)),
        baseline_candidate: br.map(|b| side(&b.candidate)),
        layer_rule: Some(LayerRule {
            metric: layers.metric.name().into(),
            factor: layers.factor,
            slack: layers.slack(),
        }),
        outputs,
        regressions,
        improvements,
        first_divergence,
        first_nonfinite,
        tensors: counts,
        notes,
        baseline_updated: false,
        seconds: 0.0,
    })
}

fn precision_reason(p: &PrecisionMismatch) -> Reason {
    reason(
        "new_precision_mismatch",
        format!(
            "the engine computes node {} in {}, the plan says {} (not in the baseline)",
            p.node,
            p.engine.as_deref().unwrap_or("another precision"),
            p.plan.as_deref().unwrap_or("otherwise")
        ),
    )
}

// ---------------------------------------------------------------------------------------------
// Running checks
// ---------------------------------------------------------------------------------------------

/// The baseline read before the comparison runs, or why there is none to compare with.
struct Prepared {
    baseline: Option<ReportDoc>,
    notes: Vec<String>,
}

impl CheckSpec {
    /// Names for messages and results.
    #[must_use]
    pub fn labels(&self) -> Labels {
        Labels {
            name: self.name.clone(),
            model: self.model_label.clone().or_else(|| self.request.model.as_ref().map(|p| p.display().to_string())),
            baseline: self.baseline.display().to_string(),
            policy: self.policy_path.as_ref().map(|p| p.display().to_string()),
        }
    }

    /// Read the baseline and check it against the model file before anything runs.
    fn prepare(&self, opts: CheckOptions) -> Result<Prepared> {
        let mut notes = Vec::new();
        let doc = match read_baseline(&self.baseline) {
            Ok(d) => d,
            Err(e) if opts.update_baseline && !self.baseline.exists() => {
                notes.push(format!(
                    "no baseline yet: {} is written {}",
                    self.baseline.display(),
                    if opts.force { "now (--force)" } else { "when the check passes" }
                ));
                let _ = e;
                return Ok(Prepared { baseline: None, notes });
            }
            Err(e) if opts.replacing() => {
                notes.push(format!("the baseline could not be read and is replaced: {e}"));
                return Ok(Prepared { baseline: None, notes });
            }
            Err(e) => return Err(e),
        };
        if let (Some(model), Some(sha)) = (&self.request.model, &doc.report.model.sha256)
            && let Ok(bytes) = std::fs::read(model)
        {
            let now = crate::model::sha256_hex(&bytes);
            if &now != sha && !(opts.allow_model_change || opts.replacing()) {
                return Err(incompatible(
                    &self.baseline,
                    &[format!(
                        "was made from another model (sha256 {}…, {} has {}…)",
                        short(sha),
                        model.display(),
                        short(&now)
                    )],
                ));
            }
        }
        Ok(Prepared { baseline: Some(doc), notes })
    }

    /// Judge the new report and write the baseline when asked.
    fn finish(&self, opts: CheckOptions, prepared: Prepared, mut report: Report) -> Result<CheckResult> {
        if let Some(label) = &self.model_label {
            report.model.path = Some(label.clone());
        }
        let doc = ReportDoc::from_report(report)?;
        let mut result = evaluate(
            prepared.baseline.as_ref(),
            &doc,
            &self.policy,
            opts.allow_model_change || opts.replacing(),
            &self.labels(),
        )?;
        result.notes.splice(0..0, prepared.notes);
        let write = opts.update_baseline && (result.status == CheckStatus::Pass || opts.force);
        if write {
            if let Some(dir) = self.baseline.parent().filter(|d| !d.as_os_str().is_empty() && !d.exists()) {
                std::fs::create_dir_all(dir)
                    .map_err(|e| Error::store_io(dir, "cannot create the baseline's folder", e))?;
            }
            crate::store::write_atomic(&self.baseline, baseline_json(doc.report)?.as_bytes())?;
            result.baseline_updated = true;
            if result.status != CheckStatus::Pass {
                result.notes.push(format!(
                    "the baseline was replaced although the check failed (--force): {}",
                    self.baseline.display()
                ));
            }
        } else if opts.update_baseline {
            result.notes.push("the baseline was kept: the check failed (--force replaces it anyway)".into());
        } else if !result.improvements.is_empty() && result.status == CheckStatus::Pass {
            result.notes.push(format!(
                "{} layer(s) improved: run with --update-baseline to record them",
                result.improvements.len()
            ));
        }
        Ok(result)
    }
}

/// The report as a baseline: everything but the per-tensor `top_k` element lists, which no check
/// reads (the worst element stays in `worst`); about 40 % smaller, still a `trtlens.report/1`.
pub fn baseline_json(mut report: Report) -> Result<String> {
    for t in &mut report.tensors {
        if let Some(m) = t.metrics.as_mut() {
            m.top_k.clear();
        }
        for it in t.iterations.iter_mut().flatten() {
            if let Some(m) = it.metrics.as_mut() {
                m.top_k.clear();
            }
        }
    }
    report.to_json()
}

/// Run one check in this process (its runners placed as the registry says).
pub fn run_in_process(spec: &CheckSpec, opts: CheckOptions, progress: &mut dyn FnMut(&str, Progress)) -> CheckResult {
    run_in_process_with_report(spec, opts, progress).0
}

/// [`run_in_process`], also returning the new comparison report when there is one.
pub fn run_in_process_with_report(
    spec: &CheckSpec,
    opts: CheckOptions,
    progress: &mut dyn FnMut(&str, Progress),
) -> (CheckResult, Option<Report>) {
    let t0 = Instant::now();
    let labels = spec.labels();
    let mut report = None;
    let outcome = (|| {
        let prepared = spec.prepare(opts)?;
        let r = compare::compare(&spec.request, progress)?;
        report = Some(r.clone());
        spec.finish(opts, prepared, r)
    })();
    let mut result =
        outcome.unwrap_or_else(|e| CheckResult::failed(&labels.name, labels.model, labels.baseline, labels.policy, &e));
    result.seconds = t0.elapsed().as_secs_f64();
    (result, report)
}

/// One check of [`run_all`]: its spec, or why it could not even be set up (bad plan, policy...).
pub type Planned = (Labels, Result<CheckSpec>);

/// Run checks, each comparison in its own `trtlens worker` process (`exe`), up to `jobs` at a
/// time; `on_done` sees each result as it ends (in completion order). Results come back in the
/// order given.
pub fn run_all(
    checks: &[Planned],
    opts: CheckOptions,
    jobs: usize,
    exe: &Path,
    on_done: &(dyn Fn(&CheckResult) + Sync),
) -> Result<Vec<CheckResult>> {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let tmp = tempfile::Builder::new()
        .prefix("trtlens-check-")
        .tempdir()
        .map_err(|e| Error::store(std::env::temp_dir(), format!("cannot create a temporary folder: {e}")))?;
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<CheckResult>>> = Mutex::new(vec![None; checks.len()]);
    let jobs = jobs.clamp(1, checks.len().max(1));
    std::thread::scope(|s| {
        for _ in 0..jobs {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some((labels, spec)) = checks.get(i) else { break };
                    let t0 = Instant::now();
                    let outcome = match spec {
                        Ok(spec) => run_in_worker(spec, opts, exe, &tmp.path().join(format!("{i}"))),
                        Err(e) => Err(Error::Remote { kind: e.kind(), message: e.to_string(), details: e.details() }),
                    };
                    let mut r = outcome.unwrap_or_else(|e| {
                        CheckResult::failed(
                            &labels.name,
                            labels.model.clone(),
                            labels.baseline.clone(),
                            labels.policy.clone(),
                            &e,
                        )
                    });
                    r.seconds = t0.elapsed().as_secs_f64();
                    on_done(&r);
                    if let Ok(mut all) = results.lock() {
                        all[i] = Some(r);
                    }
                }
            });
        }
    });
    let all = results.into_inner().map_err(|_| Error::usage("a check thread panicked"))?;
    Ok(all
        .into_iter()
        .zip(checks)
        .map(|(r, (labels, _))| {
            r.unwrap_or_else(|| {
                CheckResult::failed(
                    &labels.name,
                    labels.model.clone(),
                    labels.baseline.clone(),
                    labels.policy.clone(),
                    &Error::usage("the check did not run"),
                )
            })
        })
        .collect())
}

fn run_in_worker(spec: &CheckSpec, opts: CheckOptions, exe: &Path, dir: &Path) -> Result<CheckResult> {
    use crate::job::{Job, Request, client::Worker};
    let prepared = spec.prepare(opts)?;
    std::fs::create_dir_all(dir).map_err(|e| Error::store_io(dir, "cannot create a temporary folder", e))?;
    let report_path = dir.join("report.json");
    let request = Request::new(
        format!("check {}", spec.name),
        Job::Compare { request: spec.request.clone(), report: report_path.clone() },
    );
    let worker = Worker::spawn(exe, &request, &dir.join("request.json"))?;
    // Warnings (loaded inputs with NaN, If nodes kept, ...) become notes of the check.
    let mut warnings = Vec::new();
    worker.wait(&mut |e| {
        if let crate::job::Event::Log { level: crate::job::LogLevel::Warning, line } = e {
            warnings.push(line);
        }
    })?;
    let text = std::fs::read_to_string(&report_path)
        .map_err(|e| Error::store_io(&report_path, "the worker wrote no report", e))?;
    let value: Value = serde_json::from_str(&text)
        .map_err(|e| Error::store(&report_path, format!("the worker's report is not JSON: {e}")))?;
    let doc = ReportDoc::from_value(value)
        .map_err(|e| Error::store(&report_path, format!("the worker's report is damaged: {e}")))?;
    let mut result = spec.finish(opts, prepared, doc.report)?;
    result.notes.extend(warnings);
    Ok(result)
}

/// Metrics with every field set (tests build reports by hand).
#[cfg(test)]
#[must_use]
pub(crate) fn test_metrics() -> crate::compare::metrics::Metrics {
    crate::compare::metrics::Metrics {
        max_abs: 0.0,
        mean_abs: 0.0,
        median_abs: 0.0,
        p99_abs: 0.0,
        max_rel: 0.0,
        mean_rel: 0.0,
        mismatches: 0,
        total: 4,
        mismatch_ratio: 0.0,
        cosine: 1.0,
        rel_l2: 0.0,
        snr_db: f64::INFINITY,
        nan_reference: 0,
        nan_candidate: 0,
        inf_reference: 0,
        inf_candidate: 0,
        reference_min: 0.0,
        reference_max: 1.0,
        reference_abs_max: 1.0,
        candidate_min: 0.0,
        candidate_max: 1.0,
        fp16_overflow_reference: 0,
        fp16_subnormal_reference: 0,
        fp16_underflow_reference: 0,
        deviation_ratio_10pct: 0.0,
        worst: None,
        top_k: vec![],
        introduced_max_abs: None,
        introduced_rel_l2: None,
        introduced_mismatches: None,
        introduced_nonfinite: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::report::{
        OutputReport, ReportModel, SideReport, Summary, TensorReport, ToleranceReport, Unmatched,
    };

    fn side(spec: &str) -> SideReport {
        SideReport {
            spec: spec.into(),
            runner: spec.into(),
            version: "1".into(),
            path: None,
            precision_plan: None,
            conversion: None,
            plan: None,
            settings: None,
        }
    }

    /// A tensor `name` produced by op `op` with this max abs error (NaN count in the candidate).
    fn tensor(i: usize, name: &str, op: &str, max_abs: f64, nan: u64) -> TensorReport {
        let mut m = test_metrics();
        m.max_abs = max_abs;
        m.nan_candidate = nan;
        let fail = max_abs > 0.01 || nan > 0;
        TensorReport {
            name: name.into(),
            node: Some(format!("{name}/{op}")),
            op_type: Some(op.into()),
            topo_index: Some(i),
            shape: vec![4],
            shape_candidate: None,
            dtype_reference: "float32".into(),
            dtype_candidate: "float16".into(),
            is_output: name == "out",
            exact: false,
            status: if fail { Status::Fail } else { Status::Pass },
            reason: None,
            atol: 0.01,
            rtol: 0.01,
            metrics: Some(m),
            worst_iteration: 0,
            iterations: None,
            flags: if nan > 0 { vec!["NaN".into()] } else { vec![] },
            engine: None,
        }
    }

    /// A report of tensors `(name, op, max_abs, nan)`, the last one the graph output `out`.
    fn report(tensors: &[(&str, &str, f64, u64)]) -> ReportDoc {
        let tensors: Vec<TensorReport> =
            tensors.iter().enumerate().map(|(i, (n, op, a, nan))| tensor(i, n, op, *a, *nan)).collect();
        let outputs = tensors
            .iter()
            .filter(|t| t.is_output)
            .map(|t| OutputReport {
                name: t.name.clone(),
                status: t.status,
                max_abs: t.metrics.as_ref().map_or(f64::NAN, |m| m.max_abs),
            })
            .collect::<Vec<_>>();
        let verdict = if outputs.iter().all(|o| o.status == Status::Pass) { "pass" } else { "fail" };
        ReportDoc {
            report: Report {
                schema: crate::compare::report::REPORT_SCHEMA.into(),
                tool: crate::store::ToolInfo::current(),
                model: ReportModel {
                    path: Some("m.onnx".into()),
                    sha256: Some("ab".repeat(32)),
                    opset: Some(17),
                    node_count: Some(3),
                },
                reference: side("tract"),
                candidate: side("cpu-fp16"),
                tolerance: ToleranceReport {
                    rule: compare::metrics::Rule::Allclose,
                    atol: 0.01,
                    rtol: 0.01,
                    inf_equal: false,
                    overrides: vec![],
                },
                inputs: crate::inputs::InputSource {
                    kind: "random".into(),
                    path: None,
                    seed: Some(1),
                    val_ranges: vec![],
                    shapes: [("x".to_string(), vec![4])].into_iter().collect(),
                    iterations: 1,
                },
                first_divergence: tensors.iter().find(|t| t.status == Status::Fail).map(|t| t.name.clone()),
                first_nonfinite: None,
                tensors,
                unmatched: Unmatched::default(),
                outputs,
                summary: Summary::default(),
                verdict: verdict.into(),
                notes: vec![],
                specialized: vec![],
                trt: None,
                introducers: vec![],
            },
            precision_mismatches: vec![],
        }
    }

    fn judge(base: &ReportDoc, new: &ReportDoc, policy: &str) -> Result<CheckResult> {
        evaluate(Some(base), new, &Policy::from_toml(policy)?, false, &Labels::default())
    }

    fn rules(c: &CheckResult) -> Vec<(String, String)> {
        c.regressions.iter().flat_map(|r| r.reasons.iter().map(|x| (r.label().to_string(), x.rule.clone()))).collect()
    }

    const BASE: &[(&str, &str, f64, u64)] =
        &[("a", "Conv", 0.001, 0), ("b", "Relu", 0.002, 0), ("out", "Gemm", 0.003, 0)];

    #[test]
    fn identical_reports_pass() -> Result<()> {
        let c = judge(&report(BASE), &report(BASE), "")?;
        assert_eq!(c.status, CheckStatus::Pass);
        assert!(c.regressions.is_empty() && c.improvements.is_empty());
        assert_eq!(c.tensors.checked, 3);
        assert_eq!(c.first_divergence.change, "none");
        assert_eq!(c.outputs.len(), 1);
        assert!(!c.outputs[0].failed);
        Ok(())
    }

    #[test]
    fn growth_beyond_factor_and_slack_regresses_within_passes() -> Result<()> {
        let base = report(BASE);
        // b: 0.002 -> 0.0049 is within 2 x 0.002 + 0.001 = 0.005; -> 0.0051 is not.
        let within = report(&[("a", "Conv", 0.001, 0), ("b", "Relu", 0.0049, 0), ("out", "Gemm", 0.003, 0)]);
        assert_eq!(judge(&base, &within, "")?.status, CheckStatus::Pass);
        let beyond = report(&[("a", "Conv", 0.001, 0), ("b", "Relu", 0.0051, 0), ("out", "Gemm", 0.003, 0)]);
        let c = judge(&base, &beyond, "")?;
        assert_eq!(c.status, CheckStatus::Fail);
        assert_eq!(rules(&c), vec![("b".to_string(), "metric".to_string())]);
        let r = &c.regressions[0].reasons[0];
        assert_eq!((r.before, r.after, r.limit), (Some(0.002), Some(0.0051), Some(0.005)));
        assert_eq!(c.regressions[0].message(), "b (Relu): max_abs 0.002 -> 0.0051 (limit 2 x 0.002 + 0.001)");
        // A per-op override, and a stricter policy.
        assert_eq!(
            judge(&base, &beyond, "[[layers.override]]\nop_type = \"Relu\"\nfactor = 3")?.status,
            CheckStatus::Pass
        );
        assert_eq!(judge(&base, &within, "[layers]\nfactor = 1\nslack = 0")?.status, CheckStatus::Fail);
        // The other direction is an improvement.
        let c = judge(&beyond, &base, "")?;
        assert_eq!(c.status, CheckStatus::Pass);
        assert_eq!(c.improvements.len(), 1);
        assert_eq!(c.improvements[0].label(), "b");
        Ok(())
    }

    #[test]
    fn other_metrics() -> Result<()> {
        let base = report(BASE);
        let mut new = report(BASE);
        if let Some(m) = new.report.tensors[0].metrics.as_mut() {
            m.cosine = 0.99;
        }
        assert_eq!(judge(&base, &new, "")?.status, CheckStatus::Pass, "max_abs did not change");
        let c = judge(&base, &new, "[layers]\nmetric = \"cosine_distance\"")?;
        assert_eq!(rules(&c), vec![("a".to_string(), "metric".to_string())]);
        assert_eq!(c.layer_rule.as_ref().map(|l| l.slack), Some(1e-4));
        Ok(())
    }

    #[test]
    fn new_nan_fails_the_output_and_moves_the_first_divergence() -> Result<()> {
        let new = report(&[("a", "Conv", 0.001, 0), ("b", "Relu", 0.002, 3), ("out", "Gemm", 0.5, 0)]);
        let c = judge(&report(BASE), &new, "")?;
        assert_eq!(c.status, CheckStatus::Fail);
        assert!(c.outputs[0].failed);
        assert_eq!(c.first_divergence.change, "appeared");
        assert_eq!(c.first_divergence.after.as_deref(), Some("b"));
        assert_eq!(c.first_nonfinite.after.as_deref(), Some("b"));
        let r = rules(&c);
        for rule in ["first_divergence_earlier", "first_nonfinite_earlier", "metric", "new_nonfinite"] {
            assert!(r.contains(&("b".to_string(), rule.to_string())), "{rule}: {r:?}");
        }
        assert!(r.contains(&("out".to_string(), "metric".to_string())));
        // Turned off: only the metric rule is left for b.
        let c = judge(
            &report(BASE),
            &new,
            "[layers]\nnew_nonfinite = false\nfirst_divergence_earlier = false\nfirst_nonfinite_earlier = false",
        )?;
        assert_eq!(c.regressions[0].reasons.len(), 1);
        // Ignored tensors are not judged (the output's tolerance still is).
        let c = judge(&report(BASE), &new, "[ignore]\nop_types = [\"Relu\", \"Gemm\"]")?;
        assert!(c.regressions.is_empty());
        assert_eq!(c.status, CheckStatus::Fail, "a graph output out of tolerance fails whatever the ignore list");
        assert_eq!(c.tensors.ignored, 2);
        let c = judge(&report(BASE), &new, "[ignore]\ntensors = [\"b\"]\nregex = [\"^o\"]\n[outputs]\ngate = false")?;
        assert_eq!(c.status, CheckStatus::Pass);
        Ok(())
    }

    #[test]
    fn first_divergence_moving_earlier() -> Result<()> {
        let base = report(&[("a", "Conv", 0.001, 0), ("b", "Relu", 0.02, 0), ("out", "Gemm", 0.003, 0)]);
        let new = report(&[("a", "Conv", 0.0015, 0), ("b", "Relu", 0.02, 0), ("out", "Gemm", 0.003, 0)]);
        let mut new = new;
        new.report.tensors[0].status = Status::Fail;
        let c = judge(&base, &new, "")?;
        assert_eq!(c.first_divergence.change, "earlier");
        assert_eq!(rules(&c), vec![("a".to_string(), "first_divergence_earlier".to_string())]);
        assert!(c.regressions[0].message().contains("from b (#1)"), "{}", c.regressions[0].message());
        let c = judge(&new, &base, "")?;
        assert_eq!(c.first_divergence.change, "later");
        assert_eq!(c.status, CheckStatus::Pass);
        assert!(c.improvements.iter().any(|i| i.reasons.iter().any(|r| r.rule == "first_divergence_later")));
        Ok(())
    }

    #[test]
    fn tensors_that_appear_or_disappear() -> Result<()> {
        let new = report(&[("a", "Conv", 0.001, 0), ("c", "Relu", 0.002, 0), ("out", "Gemm", 0.003, 0)]);
        let c = judge(&report(BASE), &new, "")?;
        assert_eq!(c.status, CheckStatus::Pass);
        assert_eq!(
            (c.tensors.added.clone(), c.tensors.removed.clone()),
            (vec!["c".to_string()], vec!["b".to_string()])
        );
        let c = judge(&report(BASE), &new, "[changes]\nfail_on_added = true\nfail_on_removed = true")?;
        assert_eq!(
            rules(&c),
            vec![("c".to_string(), "tensor_added".to_string()), ("b".to_string(), "tensor_removed".to_string())]
        );
        // A new tensor that is now the first divergence still moves it.
        let new = report(&[("a", "Conv", 0.001, 0), ("c", "Relu", 0.5, 0), ("out", "Gemm", 0.003, 0)]);
        let c = judge(&report(BASE), &new, "")?;
        assert_eq!(rules(&c), vec![("c".to_string(), "first_divergence_earlier".to_string())]);
        Ok(())
    }

    #[test]
    fn a_tensor_skipped_now_regresses() -> Result<()> {
        let mut new = report(BASE);
        new.report.tensors[1].status = Status::Skipped;
        new.report.tensors[1].reason = Some("shape 4 vs 5".into());
        new.report.tensors[1].metrics = None;
        let c = judge(&report(BASE), &new, "")?;
        assert_eq!(rules(&c), vec![("b".to_string(), "new_skipped".to_string())]);
        assert!(c.regressions[0].message().contains("shape 4 vs 5"));
        Ok(())
    }

    #[test]
    fn incompatible_baselines_are_errors_unless_allowed() -> Result<()> {
        let base = report(BASE);
        let mut other = report(BASE);
        other.report.model.sha256 = Some("cd".repeat(32));
        other.report.inputs.seed = Some(2);
        other.report.tolerance.atol = 0.02;
        let e = judge(&base, &other, "").err().map(|e| e.to_string()).unwrap_or_default();
        for says in ["another model (sha256 abababababab…", "seed 1 and ranges []", "atol 0.01", "--allow-model-change"]
        {
            assert!(e.contains(says), "{says}: {e}");
        }
        let c = evaluate(Some(&base), &other, &Policy::default(), true, &Labels::default())?;
        assert_eq!(c.status, CheckStatus::Pass);
        assert_eq!(c.notes.len(), 3, "{:?}", c.notes);
        Ok(())
    }

    #[test]
    fn without_a_baseline_only_outputs_count() -> Result<()> {
        let new = report(&[("a", "Conv", 0.5, 0), ("out", "Gemm", 0.003, 0)]);
        let c = evaluate(None, &new, &Policy::default(), false, &Labels::default())?;
        assert_eq!(c.status, CheckStatus::Pass);
        assert_eq!(c.first_divergence.change, "no_baseline");
        assert_eq!(c.first_divergence.after.as_deref(), Some("a"));
        Ok(())
    }

    #[test]
    fn precision_mismatches_are_read_wherever_a_report_puts_them() -> Result<()> {
        let base = report(BASE);
        let mut v = serde_json::to_value(&base.report).map_err(|e| Error::usage(e.to_string()))?;
        // As a TensorRT candidate's report carries them (`trt` section of compare::report::TrtReport).
        v["trt"] = serde_json::json!({
            "flavour": "tensorrt-rtx", "version": "1.7.1.116", "observe": "all", "engine_key": "k",
            "mapped": 3, "tensors": 3, "production": null,
            "precision_mismatches": [{"onnx_node": "b/Relu", "plan": "fp32", "engine": "fp16"}]
        });
        let new = ReportDoc::from_value(v.clone()).map_err(|e| Error::usage(e.to_string()))?;
        assert_eq!(new.precision_mismatches.len(), 1);
        let c = judge(&base, &new, "")?;
        assert_eq!(rules(&c), vec![("b".to_string(), "new_precision_mismatch".to_string())]);
        assert_eq!(
            c.regressions[0].message(),
            "b (Relu): the engine computes node b/Relu in fp16, the plan says fp32 (not in the baseline)"
        );
        assert_eq!(judge(&new, &new, "")?.status, CheckStatus::Pass, "listed in the baseline too");
        assert_eq!(judge(&base, &new, "[layers]\nnew_precision_mismatch = false")?.status, CheckStatus::Pass);
        let c = judge(&new, &base, "")?;
        assert!(c.improvements.iter().any(|i| i.reasons[0].rule == "precision_mismatch_gone"));
        // Top level, plain names, a node that produced no compared tensor.
        v["precision_mismatches"] = serde_json::json!(["x/Cast"]);
        let new = ReportDoc::from_value(v).map_err(|e| Error::usage(e.to_string()))?;
        let c = judge(&base, &new, "")?;
        assert_eq!(rules(&c), vec![("x/Cast".to_string(), "new_precision_mismatch".to_string())]);
        assert_eq!(c.regressions[0].title(), "node x/Cast");
        Ok(())
    }

    #[test]
    fn numbers_read_well() {
        assert_eq!(num(0.0), "0");
        assert_eq!(num(0.0025), "0.0025");
        assert_eq!(num(7.465e-4), "7.465e-4");
        assert_eq!(num(65504.0), "65504");
        assert_eq!(num(144_119.7), "1.441e5");
        assert_eq!(num(12.5), "12.5");
        assert_eq!(num(f64::INFINITY), "inf");
    }
}
