//! Comparison of a candidate against a reference, tensor by tensor: the `compare` job.
//!
//! Both sides are first made into saved results (runner sides are run into run directories, on the
//! same inputs), then paired by exact tensor name only: tensors present on one side are listed as
//! unmatched, never guessed. Tensors are read from memory maps one pair at a time and compared in
//! parallel, so memory stays near the size of the tensors being compared, whatever the model size.

pub mod histogram;
pub mod introduced;
pub mod metrics;
pub mod report;
pub mod source;
pub mod table;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::inputs::{InputOptions, InputSource};
use crate::model::Model;
use crate::model::specialize::{self, Specialized};
use crate::run::{self, Progress, RunRequest};
use crate::runner::{RunnerOptions, Tensors};
use crate::store::ToolInfo;
use metrics::{Outcome, TensorRef, Tolerance};
use report::{
    IterationMetrics, OutputReport, REPORT_SCHEMA, Report, ReportModel, SideReport, Status, Summary, TensorReport,
    ToleranceOverride, ToleranceReport, Unmatched,
};
use source::{Side, SideSpec};

/// Everything `compare` needs.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CompareRequest {
    /// The model (optional when both sides are saved).
    pub model: Option<PathBuf>,
    /// Reference side.
    pub reference: SideSpec,
    /// Candidate side.
    pub candidate: SideSpec,
    /// Inputs for runner sides (ignored when a saved side brings its inputs).
    pub inputs: InputOptions,
    /// Runner options.
    pub runner_options: RunnerOptions,
    /// Default tolerance.
    pub tolerance: Tolerance,
    /// Per-tensor overrides.
    pub overrides: Vec<ToleranceOverride>,
    /// Worst elements kept per tensor.
    pub top_k: usize,
    /// Keep runner-side runs here (`DIR/reference`, `DIR/candidate`) instead of a temporary folder.
    pub save_runs: Option<PathBuf>,
    /// Add plan overrides (reason `prediction`) keeping FP32 every node that reads or writes a tensor
    /// whose reference values FP16 cannot hold (needs a trtlens reference run and a model).
    pub keep_fp32_predicted: Option<crate::precision::predict::Predict>,
    /// Runner sides specialize control flow for the inputs (see [`crate::model::specialize`]).
    pub specialize: bool,
    /// Compute each node's introduced error (the node re-run by the reference implementation on
    /// the candidate's own inputs, see [`introduced`]); needs the model. On by default.
    #[serde(default = "yes")]
    pub introduced: bool,
}

fn yes() -> bool {
    true
}

impl CompareRequest {
    /// A comparison of `candidate` against `reference` with the defaults of the command line:
    /// random inputs (seed 1, one iteration), the candidate's default tolerances (registry), top 5
    /// elements, runs in a temporary folder.
    #[must_use]
    pub fn new(model: Option<PathBuf>, reference: SideSpec, candidate: SideSpec) -> CompareRequest {
        let tolerance = match &candidate {
            SideSpec::Runner(k) => k.entry().tolerance(),
            SideSpec::Saved { .. } => Tolerance::default(),
        };
        CompareRequest {
            model,
            reference,
            candidate,
            inputs: InputOptions { seed: crate::inputs::DEFAULT_SEED, iterations: 1, ..InputOptions::default() },
            runner_options: RunnerOptions::default(),
            tolerance,
            overrides: vec![],
            top_k: 5,
            save_runs: None,
            keep_fp32_predicted: None,
            specialize: true,
            introduced: true,
        }
    }
}

/// A global value (if given) and per-tensor values.
pub type ToleranceValues = (Option<f64>, Vec<(String, f64)>);

/// Parse `X` (global) or `NAME:X` (per tensor) tolerance values.
pub fn parse_tolerance_values(flag: &str, values: &[String]) -> Result<ToleranceValues> {
    let mut global = None;
    let mut per = Vec::new();
    for v in values {
        let (name, num) = match v.rsplit_once(':') {
            Some((n, x)) => (Some(n), x),
            None => (None, v.as_str()),
        };
        let x: f64 =
            num.trim().parse().map_err(|_| Error::usage(format!("{flag} '{v}': expected a number or NAME:NUMBER")))?;
        if !(x.is_finite() && x >= 0.0) {
            return Err(Error::usage(format!("{flag} '{v}': tolerances are finite and >= 0")));
        }
        match name {
            Some(n) => per.push((n.to_string(), x)),
            None => global = Some(x),
        }
    }
    Ok((global, per))
}

/// Merge per-tensor atol/rtol lists into overrides.
#[must_use]
pub fn merge_overrides(atol: Vec<(String, f64)>, rtol: Vec<(String, f64)>) -> Vec<ToleranceOverride> {
    let mut out: Vec<ToleranceOverride> = Vec::new();
    for (n, a) in atol {
        match out.iter_mut().find(|o| o.tensor == n) {
            Some(o) => o.atol = Some(a),
            None => out.push(ToleranceOverride { tensor: n, atol: Some(a), rtol: None }),
        }
    }
    for (n, r) in rtol {
        match out.iter_mut().find(|o| o.tensor == n) {
            Some(o) => o.rtol = Some(r),
            None => out.push(ToleranceOverride { tensor: n, atol: None, rtol: Some(r) }),
        }
    }
    out
}

/// A side made ready: opened saved results plus how it was obtained.
struct Ready {
    side: Side,
    report: SideReport,
    /// Keeps a temporary run directory alive as long as the side is read.
    _tmp: Option<tempfile::TempDir>,
}

/// Run the comparison. Progress goes to `progress` (runner sides report like `run`).
pub fn compare(req: &CompareRequest, progress: &mut dyn FnMut(&str, Progress)) -> Result<Report> {
    let mut c = Comparison::new(req, progress)?;
    c.candidate(&req.candidate, &req.runner_options, req.keep_fp32_predicted, progress)
}

/// A comparison with its reference made ready once: the model loaded, the reference run (or
/// opened) on the chosen inputs. Any number of candidates can then be compared against it
/// ([`Comparison::candidate`]); each runner candidate runs on exactly the reference's inputs.
pub struct Comparison {
    req: CompareRequest,
    model: Option<Model>,
    reference: Ready,
    /// The saved candidate of the request, opened early for its inputs (used by the first call).
    saved_candidate: Option<Ready>,
    /// Inputs for runner candidates (loaded from the reference run or the saved inputs).
    inputs: InputOptions,
    input_source: InputSource,
    /// Runner candidates run so far (names their run directories when `save_runs` is set).
    candidates_run: usize,
}

impl Comparison {
    /// Load the model, open saved sides and run the reference. `req.candidate` matters here only when
    /// it is saved (its inputs are the ones the reference must run on).
    pub fn new(req: &CompareRequest, progress: &mut dyn FnMut(&str, Progress)) -> Result<Comparison> {
        let model = req.model.as_deref().map(Model::load).transpose()?;
        let both_saved =
            matches!(req.reference, SideSpec::Saved { .. }) && matches!(req.candidate, SideSpec::Saved { .. });
        if model.is_none() && !both_saved {
            return Err(Error::usage(
                "a runner side needs the model: trtlens compare MODEL.onnx --reference ... --candidate ...",
            ));
        }
        for name in req.overrides.iter().map(|o| &o.tensor) {
            if let Some(m) = &model
                && !m.graph.tensors.contains_key(name.as_str())
                && !m.graph.subgraph_tensors.iter().any(|s| s.name == *name)
            {
                return Err(Error::usage(format!(
                    "tolerance override names '{name}', which is not a tensor of the model"
                )));
            }
        }

        // A side that cannot run here fails before the reference spends its time.
        for spec in [&req.reference, &req.candidate] {
            if let SideSpec::Runner(kind) = spec {
                crate::runner::check_available(*kind, &req.runner_options)?;
            }
        }

        // Saved sides first: their inputs are the ones runner sides must use.
        let reference = open_saved(&req.reference, "reference")?;
        let candidate = open_saved(&req.candidate, "candidate")?;
        if let Some(m) = &model {
            for r in [&reference, &candidate].into_iter().flatten() {
                check_same_model(m, r)?;
            }
        }
        let saved_inputs = saved_inputs(reference.as_ref(), candidate.as_ref())?;
        let mut inputs = req.inputs.clone();
        let mut input_source: Option<InputSource> = None;
        if let Some((source, path)) = &saved_inputs {
            if req.inputs.load.is_some() {
                return Err(Error::usage("--load-inputs conflicts with a saved run that brings its own inputs"));
            }
            inputs.load = Some(path.clone());
            input_source = Some(source.clone());
        }
        let polygraphy_side =
            [&reference, &candidate].into_iter().flatten().any(|r| matches!(r.side, Side::Polygraphy { .. }));
        let runner_side = reference.is_none() || candidate.is_none();
        if polygraphy_side && runner_side && saved_inputs.is_none() && req.inputs.load.is_none() {
            return Err(Error::usage(
                "Polygraphy results carry no inputs: pass the file written by polygraphy --save-inputs with --load-inputs, so both sides see the same data",
            ));
        }

        let reference = match reference {
            Some(r) => r,
            None => {
                let SideSpec::Runner(kind) = &req.reference else {
                    return Err(Error::usage("--reference: expected a runner or saved:PATH"));
                };
                // A reference always runs the model as written, without a plan.
                let opts = RunnerOptions { plan: None, plan_label: None, ..req.runner_options.clone() };
                let ready = run_side(req, *kind, "reference", &inputs, opts, &mut |p| progress("reference", p))?;
                if input_source.is_none()
                    && let Side::Run(run) = &ready.side
                {
                    input_source = Some(run.manifest.inputs.clone());
                    // Every runner candidate reuses exactly these inputs.
                    inputs = InputOptions { load: Some(run.path.clone()), iterations: 1, ..inputs };
                }
                ready
            }
        };
        let input_source = input_source.unwrap_or_else(|| InputSource {
            kind: "unknown".into(),
            path: None,
            seed: None,
            val_ranges: vec![],
            shapes: std::collections::BTreeMap::new(),
            iterations: reference.side.iterations(),
        });
        Ok(Comparison {
            req: req.clone(),
            model,
            reference,
            saved_candidate: candidate,
            inputs,
            input_source,
            candidates_run: 0,
        })
    }

    /// The model, when the comparison has one.
    #[must_use]
    pub fn model(&self) -> Option<&Model> {
        self.model.as_ref()
    }

    /// The reference's run directory, when it is a trtlens run (runner or `saved:DIR`).
    #[must_use]
    pub fn reference_run(&self) -> Option<&std::path::Path> {
        match &self.reference.side {
            Side::Run(r) => Some(&r.path),
            Side::Polygraphy { .. } => None,
        }
    }

    /// Compare one candidate against the reference: run it (a runner, with `opts` and its plan) on
    /// the reference's inputs, or open it (`saved:`), and build the report with the request's
    /// tolerances. `predict` adds the FP32 islands the reference run predicts to the plan.
    pub fn candidate(
        &mut self,
        spec: &SideSpec,
        opts: &RunnerOptions,
        predict: Option<crate::precision::predict::Predict>,
        progress: &mut dyn FnMut(&str, Progress),
    ) -> Result<Report> {
        let candidate = match spec {
            SideSpec::Saved { .. } => {
                let ready = match self.saved_candidate.take() {
                    Some(r) if self.req.candidate == *spec => r,
                    _ => open_saved(spec, "candidate")?
                        .ok_or_else(|| Error::usage("--candidate: expected saved:PATH"))?,
                };
                if let Some(m) = &self.model {
                    check_same_model(m, &ready)?;
                }
                saved_inputs(Some(&self.reference), Some(&ready))?;
                ready
            }
            SideSpec::Runner(kind) => {
                let mut opts = opts.clone();
                if let Some(what) = predict {
                    // The reference run's graph: its inner tensors name nodes of the inlined branches.
                    let (decisions, _) = recorded_specialization(Some(&self.reference), None);
                    let graph_model = self.model.as_ref().map(|m| specialize::apply_to(m, &decisions)).transpose()?;
                    predicted_islands(graph_model.as_ref(), Some(&self.reference), what, &mut opts)?;
                }
                self.candidates_run += 1;
                let which = if self.candidates_run == 1 {
                    "candidate".to_string()
                } else {
                    format!("candidate-{}", self.candidates_run)
                };
                let inputs = self.inputs.clone();
                let req = self.req.clone();
                run_side(&req, *kind, &which, &inputs, opts, &mut |p| progress("candidate", p))?
            }
        };
        let (decisions, spec_notes) = recorded_specialization(Some(&self.reference), Some(&candidate));
        // The graph the runs were made from: the model with the runs' decisions applied (no re-evaluation).
        let graph_model = match &self.model {
            Some(m) if !decisions.is_empty() => Some(specialize::apply_to(m, &decisions)?),
            _ => None,
        };
        let mut report = build_report(
            &self.req,
            self.model.as_ref(),
            graph_model.as_ref().or(self.model.as_ref()),
            &self.reference,
            &candidate,
            self.input_source.clone(),
        )?;
        report.specialized = decisions;
        report.notes.extend(spec_notes);
        if self.req.introduced
            && let Some(m) = graph_model.as_ref().or(self.model.as_ref())
        {
            self.add_introduced(m, &candidate, &mut report);
        }
        Ok(report)
    }

    /// The reference run, when the reference is a trtlens run.
    #[must_use]
    pub fn reference_rundir(&self) -> Option<&crate::store::RunDir> {
        match &self.reference.side {
            Side::Run(r) => Some(r),
            Side::Polygraphy { .. } => None,
        }
    }

    /// The graph the reference run was made from: the model with the run's control-flow
    /// specialization applied (node names of inlined branches resolve in it).
    pub fn reference_graph_model(&self) -> Result<Option<Model>> {
        let (decisions, _) = recorded_specialization(Some(&self.reference), None);
        self.model.as_ref().map(|m| specialize::apply_to(m, &decisions)).transpose()
    }

    /// Turn the introduced-error computation of later candidates on or off.
    pub fn set_introduced(&mut self, on: bool) {
        self.req.introduced = on;
    }

    /// The request this comparison was made with.
    #[must_use]
    pub fn request(&self) -> &CompareRequest {
        &self.req
    }

    /// Fill `metrics.introduced_*` and the ranked introducers; a failure becomes a note.
    fn add_introduced(&self, model: &Model, candidate: &Ready, report: &mut Report) {
        let kind = match &self.req.reference {
            SideSpec::Runner(k) if !k.takes_plan() => *k,
            _ => crate::runner::RunnerKind::Tract,
        };
        let inputs = match self.reference.side.inputs() {
            Ok(Some(i)) => Some(i),
            _ => candidate.side.inputs().ok().flatten(),
        };
        let Some(inputs) = inputs else {
            report.notes.push("introduced error not computed: no side recorded the inputs".into());
            return;
        };
        let req = &self.req;
        let tol = |name: &str| effective_tolerance(req, name);
        match introduced::compute(
            model,
            kind,
            &self.req.runner_options,
            &inputs,
            &self.reference.side,
            &candidate.side,
            &tol,
        ) {
            Ok(map) => attach_introduced(report, &map),
            Err(e) => report.notes.push(format!("introduced error not computed: {}", crate::runner::one_line(&e))),
        }
    }
}

/// Introducers listed in a report.
pub const INTRODUCERS_LISTED: usize = 10;

/// Put introduced errors into the report's metrics and rank the worst introducers.
fn attach_introduced(report: &mut Report, map: &std::collections::BTreeMap<String, introduced::Introduced>) {
    let mut ranked: Vec<(&TensorReport, &introduced::Introduced)> = Vec::new();
    for t in &mut report.tensors {
        let Some(i) = map.get(&t.name) else { continue };
        if let Some(m) = t.metrics.as_mut() {
            m.introduced_max_abs = Some(i.max_abs);
            m.introduced_rel_l2 = Some(i.rel_l2);
            m.introduced_mismatches = Some(i.mismatches);
            m.introduced_nonfinite = Some(i.nonfinite);
        }
    }
    for t in &report.tensors {
        if let Some(i) = map.get(&t.name) {
            ranked.push((t, i));
        }
    }
    ranked.sort_by(|a, b| b.1.key().partial_cmp(&a.1.key()).unwrap_or(std::cmp::Ordering::Equal));
    report.introducers = ranked
        .into_iter()
        .filter(|(_, i)| i.max_abs > 0.0 || i.nonfinite > 0)
        .take(INTRODUCERS_LISTED)
        .map(|(t, i)| introduced::Introducer {
            node: t.node.clone().unwrap_or_else(|| t.name.clone()),
            tensor: t.name.clone(),
            op_type: t.op_type.clone(),
            introduced_max_abs: i.max_abs,
            introduced_rel_l2: i.rel_l2,
            introduced_mismatches: i.mismatches,
            introduced_nonfinite: i.nonfinite,
            accumulated_max_abs: t.metrics.as_ref().map_or(f64::NAN, |m| m.max_abs),
        })
        .collect();
}

/// A saved side made from another model than the one given is refused.
fn check_same_model(model: &Model, ready: &Ready) -> Result<()> {
    if let Some(sha) = ready.side.model_sha256()
        && sha != model.sha256
    {
        return Err(Error::store(
            ready.side.path(),
            format!(
                "was made from another model (sha256 {}…, {} has {}…)",
                &sha[..12.min(sha.len())],
                model.path.display(),
                &model.sha256[..12]
            ),
        ));
    }
    Ok(())
}

/// Run a runner side into `save_runs/WHICH` (or a temporary directory) and open the run.
fn run_side(
    req: &CompareRequest,
    kind: crate::runner::RunnerKind,
    which: &str,
    inputs: &InputOptions,
    runner_options: RunnerOptions,
    progress: &mut dyn FnMut(Progress),
) -> Result<Ready> {
    let Some(model_path) = &req.model else {
        return Err(Error::usage("a runner side needs the model"));
    };
    let (dir, tmp) = match &req.save_runs {
        Some(d) => (d.join(which), None),
        None => {
            let t = tempfile::Builder::new().prefix("trtlens-compare-").tempdir().map_err(|e| {
                Error::store(std::env::temp_dir(), format!("cannot create a temporary run directory: {e}"))
            })?;
            (t.path().join(which), Some(t))
        }
    };
    let plan = runner_options.plan.clone();
    let run_req = RunRequest {
        model: model_path.clone(),
        runner: kind,
        inputs: inputs.clone(),
        runner_options,
        save: dir.clone(),
        specialize: req.specialize,
    };
    let summary = run::run_placed(&run_req, progress)?;
    let side = Side::open(&summary.dir, None)?;
    let (runner, version) = side.runner();
    Ok(Ready {
        report: SideReport {
            spec: SideSpec::Runner(kind).describe(),
            runner,
            version,
            path: if tmp.is_some() { None } else { Some(summary.dir.display().to_string()) },
            precision_plan: side.plan(),
            conversion: side.conversion(),
            plan,
            settings: side.settings(),
        },
        side,
        _tmp: tmp,
    })
}

/// The control-flow specialization recorded by run sides (the reference's, else the candidate's),
/// and notes: `If`s left in place, and sides that specialized differently.
fn recorded_specialization(reference: Option<&Ready>, candidate: Option<&Ready>) -> (Vec<Specialized>, Vec<String>) {
    fn manifest(r: Option<&Ready>) -> Option<&crate::store::Manifest> {
        match r.map(|r| &r.side) {
            Some(Side::Run(run)) => Some(&run.manifest),
            _ => None,
        }
    }
    let (rm, cm) = (manifest(reference), manifest(candidate));
    let mut notes = Vec::new();
    let Some(first) = rm.or(cm) else { return (Vec::new(), notes) };
    for k in &first.not_specialized {
        notes.push(k.to_string());
    }
    if let (Some(r), Some(c)) = (rm, cm)
        && r.specialized != c.specialized
    {
        notes.push(format!(
            "the reference and candidate runs specialized control flow differently ({} and {} If nodes inlined): \
             tensors inside the branches may be unmatched; node names follow the reference",
            r.specialized.len(),
            c.specialized.len()
        ));
    }
    (first.specialized.clone(), notes)
}

/// Extend the candidate's plan with the FP32 islands the reference run predicts.
fn predicted_islands(
    model: Option<&Model>,
    reference: Option<&Ready>,
    what: crate::precision::predict::Predict,
    opts: &mut RunnerOptions,
) -> Result<()> {
    use crate::precision::{Plan, Precision, predict};
    let (Some(model), Some(Ready { side: Side::Run(run), .. })) = (model, reference) else {
        return Err(Error::usage(
            "--keep-fp32-predicted needs the model and a trtlens reference run (a runner or saved:DIR)",
        ));
    };
    let nodes = predict::nodes_to_keep_from_run(&model.graph, run, what)?;
    let count = nodes.len();
    let plan = opts.plan.get_or_insert_with(|| Plan::uniform(Precision::Fp16));
    plan.overrides.extend(predict::overrides_for(nodes));
    let label = opts.plan_label.take().unwrap_or_else(|| plan.default.to_string());
    opts.plan_label = Some(format!("{label}; keep fp32 predicted: {count} nodes"));
    Ok(())
}

fn open_saved(spec: &SideSpec, which: &str) -> Result<Option<Ready>> {
    let SideSpec::Saved { path, runner } = spec else { return Ok(None) };
    let side = Side::open(path, runner.as_deref()).map_err(|e| match e {
        Error::Usage(m) => Error::usage(format!("--{which}: {m}")),
        other => other,
    })?;
    let (name, version) = side.runner();
    Ok(Some(Ready {
        report: SideReport {
            spec: spec.describe(),
            runner: name,
            version,
            path: Some(path.display().to_string()),
            precision_plan: side.plan(),
            conversion: side.conversion(),
            plan: None,
            settings: side.settings(),
        },
        side,
        _tmp: None,
    }))
}

/// Inputs recorded by saved sides: (source, run directory to load them from). Two saved runs must
/// have used identical inputs.
fn saved_inputs(reference: Option<&Ready>, candidate: Option<&Ready>) -> Result<Option<(InputSource, PathBuf)>> {
    let mut found: Option<(InputSource, PathBuf, Vec<Tensors>)> = None;
    for r in [reference, candidate].into_iter().flatten() {
        let Side::Run(run) = &r.side else { continue };
        let inputs = run.load_inputs()?;
        match &found {
            None => found = Some((run.manifest.inputs.clone(), run.path.clone(), inputs)),
            Some((_, first, theirs)) => {
                if *theirs != inputs {
                    return Err(Error::store(
                        &run.path,
                        format!(
                            "used different inputs than {} — compare runs made on the same inputs (trtlens run ... --load-inputs {})",
                            first.display(),
                            first.display()
                        ),
                    ));
                }
            }
        }
    }
    Ok(found.map(|(s, p, _)| (s, p)))
}

/// What is known about a tensor from the model or the saved manifests.
#[derive(Default, Clone)]
struct TensorMeta {
    node: Option<String>,
    op_type: Option<String>,
    topo_index: Option<usize>,
    is_output: bool,
}

fn tensor_meta(model: Option<&Model>, reference: &Side, candidate: &Side) -> HashMap<String, TensorMeta> {
    let mut meta: HashMap<String, TensorMeta> = HashMap::new();
    if let Some(m) = model {
        for (i, name) in m.graph.captured().into_iter().enumerate() {
            let node = m.graph.producer(name);
            meta.insert(
                name.to_string(),
                TensorMeta {
                    node: node.map(crate::model::graph::Node::display_name),
                    op_type: node.map(|n| n.op_type.clone()),
                    topo_index: Some(i),
                    is_output: m.graph.tensor(name).is_some_and(|t| t.is_output),
                },
            );
        }
        return meta;
    }
    for side in [reference, candidate] {
        if let Side::Run(r) = side {
            for e in &r.manifest.tensors {
                meta.entry(e.name.clone()).or_insert(TensorMeta {
                    node: e.node.clone(),
                    op_type: e.op_type.clone(),
                    topo_index: Some(e.topo_index),
                    is_output: e.is_output,
                });
            }
        }
    }
    meta
}

fn effective_tolerance(req: &CompareRequest, name: &str) -> Tolerance {
    let mut t = req.tolerance;
    if let Some(o) = req.overrides.iter().find(|o| o.tensor == name) {
        t.atol = o.atol.unwrap_or(t.atol);
        t.rtol = o.rtol.unwrap_or(t.rtol);
    }
    t
}

fn rank(o: &Outcome) -> (u8, u64, f64) {
    match o {
        Outcome::Skipped { .. } => (2, 0, 0.0),
        Outcome::Compared { metrics, pass } => {
            let ma = if metrics.max_abs.is_nan() { f64::INFINITY } else { metrics.max_abs };
            (u8::from(!pass), metrics.mismatches, ma)
        }
    }
}

/// Pairs of at least this many elements are compared one at a time (each using every core).
const LARGE_PAIR: usize = 4 * metrics::CHUNK;

/// One compared pair: outcome, reference shape, candidate shape when it differs.
type PairResult = (Outcome, Vec<usize>, Option<Vec<usize>>);

/// `model` identifies the compared model (path, hash); `graph_model` is the graph the runs were made
/// from (the model, or its control-flow specialization): tensor metadata and outputs come from it.
fn build_report(
    req: &CompareRequest,
    model: Option<&Model>,
    graph_model: Option<&Model>,
    reference: &Ready,
    candidate: &Ready,
    inputs: InputSource,
) -> Result<Report> {
    let (rs, cs) = (&reference.side, &candidate.side);
    if rs.iterations() != cs.iterations() {
        return Err(Error::usage(format!(
            "the reference has {} iteration(s) and the candidate {}; compare runs made on the same inputs",
            rs.iterations(),
            cs.iterations()
        )));
    }
    let meta = tensor_meta(graph_model, rs, cs);
    let ref_names = rs.names();
    let cand_names = cs.names();
    let cand_set: HashSet<&str> = cand_names.iter().map(String::as_str).collect();
    let ref_set: HashSet<&str> = ref_names.iter().map(String::as_str).collect();
    let mut paired: Vec<String> = ref_names.iter().filter(|n| cand_set.contains(n.as_str())).cloned().collect();
    // Topological order when known, else the reference's own order (stable sort keeps it).
    paired.sort_by_key(|n| meta.get(n).and_then(|m| m.topo_index).unwrap_or(usize::MAX));
    let unmatched = Unmatched {
        reference: ref_names.iter().filter(|n| !cand_set.contains(n.as_str())).cloned().collect(),
        candidate: cand_names.iter().filter(|n| !ref_set.contains(n.as_str())).cloned().collect(),
    };

    // outcomes[tensor][iteration]
    let iterations = rs.iterations();
    let mut outcomes: Vec<Vec<Outcome>> = vec![Vec::with_capacity(iterations); paired.len()];
    let mut shapes: Vec<(Vec<usize>, Option<Vec<usize>>)> = vec![(vec![], None); paired.len()];
    for it in 0..iterations {
        let rt = rs.iteration(it)?;
        let ct = cs.iteration(it)?;
        // Each tensor is read (decoded, for Polygraphy files), compared and released, so memory
        // holds the pairs being compared, not the runs: large pairs one at a time (the kernel and
        // the decoding use every core on one pair), small pairs in parallel.
        let pair = |name: &String| -> Result<(Outcome, Vec<usize>, Option<Vec<usize>>)> {
            let (Some(rm), Some(cm)) = (rt.meta(name), ct.meta(name)) else {
                return Ok((Outcome::Skipped { reason: format!("missing from iteration {it}") }, vec![], None));
            };
            let cand_shape = (cm.1 != rm.1).then(|| cm.1.to_vec());
            let shape = rm.1.to_vec();
            let (Some(r), Some(c)) = (rt.get(name)?, ct.get(name)?) else {
                return Ok((Outcome::Skipped { reason: format!("missing from iteration {it}") }, vec![], None));
            };
            let tol = effective_tolerance(req, name);
            let (rv, cv) = (r.view(), c.view());
            let rref = TensorRef::new(rv.dtype, rv.shape, rv.data);
            let cref = TensorRef::new(cv.dtype, cv.shape, cv.data);
            let outcome = if rv.dtype.is_float() || cv.dtype.is_float() {
                metrics::compare(rref, cref, &tol, req.top_k)
            } else {
                metrics::compare_exact(rref, cref, req.top_k)
            };
            drop((r, c));
            rt.release(name);
            ct.release(name);
            Ok((outcome, shape, cand_shape))
        };
        let large = |name: &String| rt.meta(name).is_some_and(|(_, shape)| crate::tensor::numel(shape) >= LARGE_PAIR);
        let mut results: Vec<Option<PairResult>> = paired
            .par_iter()
            .map(|name| if large(name) { Ok(None) } else { pair(name).map(Some) })
            .collect::<Result<_>>()?;
        for (slot, name) in results.iter_mut().zip(&paired) {
            if slot.is_none() {
                *slot = Some(pair(name)?);
            }
        }
        let results: Vec<(Outcome, Vec<usize>, Option<Vec<usize>>)> = results.into_iter().flatten().collect();
        for (i, (o, shape, cshape)) in results.into_iter().enumerate() {
            if it == 0 {
                shapes[i] = (shape, cshape);
            }
            outcomes[i].push(o);
        }
    }

    let mut tensors = Vec::with_capacity(paired.len());
    let mut first_divergence = None;
    let mut first_nonfinite = None;
    let mut summary = Summary::default();
    for (i, name) in paired.iter().enumerate() {
        let m = meta.get(name).cloned().unwrap_or_default();
        let per = &outcomes[i];
        let worst_it = (0..per.len())
            .max_by(|&a, &b| rank(&per[a]).partial_cmp(&rank(&per[b])).unwrap_or(std::cmp::Ordering::Equal))
            .unwrap_or(0);
        let worst = &per[worst_it];
        let (status, reason, metrics) = match worst {
            Outcome::Skipped { reason } => (Status::Skipped, Some(reason.clone()), None),
            Outcome::Compared { metrics, pass } => {
                (if *pass { Status::Pass } else { Status::Fail }, None, Some(metrics.clone()))
            }
        };
        let exact = !rs.dtype(name).is_some_and(crate::tensor::DType::is_float)
            && !cs.dtype(name).is_some_and(crate::tensor::DType::is_float);
        let mut flags = Vec::new();
        let any = |f: &dyn Fn(&metrics::Metrics) -> bool| per.iter().filter_map(Outcome::metrics).any(f);
        if any(&|x| x.fp16_overflow_reference > 0) {
            flags.push("OVF".to_string());
            summary.fp16_overflow_predicted += 1;
        }
        if any(&|x| x.fp16_underflow_reference > 0) {
            flags.push("UNF".to_string());
            summary.fp16_underflow_predicted += 1;
        } else if any(&|x| x.fp16_subnormal_reference > 0) {
            flags.push("SUB".to_string());
        }
        if any(&|x| x.nan_candidate > 0) {
            flags.push("NaN".to_string());
        }
        if any(&|x| x.inf_candidate > 0) {
            flags.push("INF".to_string());
        }
        if status == Status::Fail && first_divergence.is_none() {
            first_divergence = Some(name.clone());
            flags.push("FIRST".to_string());
        }
        if first_nonfinite.is_none() && any(&|x| x.nan_candidate + x.inf_candidate > 0) {
            first_nonfinite = Some(name.clone());
            flags.push("FIRST_NONFINITE".to_string());
        }
        summary.compared += 1;
        match status {
            Status::Pass => summary.passed += 1,
            Status::Fail => summary.failed += 1,
            Status::Skipped => summary.skipped += 1,
        }
        summary.exact += usize::from(exact);
        let tol = effective_tolerance(req, name);
        let (shape, shape_candidate) = shapes[i].clone();
        tensors.push(TensorReport {
            name: name.clone(),
            node: m.node,
            op_type: m.op_type,
            topo_index: m.topo_index,
            shape,
            shape_candidate,
            dtype_reference: rs.dtype(name).map_or_else(|| "?".into(), |d| d.name().to_string()),
            dtype_candidate: cs.dtype(name).map_or_else(|| "?".into(), |d| d.name().to_string()),
            is_output: m.is_output,
            exact,
            status,
            reason,
            atol: tol.atol,
            rtol: tol.rtol,
            metrics,
            worst_iteration: worst_it,
            iterations: (per.len() > 1).then(|| {
                per.iter()
                    .enumerate()
                    .map(|(it, o)| match o {
                        Outcome::Skipped { reason } => IterationMetrics {
                            iteration: it,
                            status: Status::Skipped,
                            reason: Some(reason.clone()),
                            metrics: None,
                        },
                        Outcome::Compared { metrics, pass } => IterationMetrics {
                            iteration: it,
                            status: if *pass { Status::Pass } else { Status::Fail },
                            reason: None,
                            metrics: Some(metrics.clone()),
                        },
                    })
                    .collect()
            }),
            flags,
            engine: None,
        });
    }

    // Graph outputs: from the model, else from manifests; without either, every paired tensor counts.
    let mut notes = Vec::new();
    let output_names: Vec<String> = match graph_model {
        Some(m) => m.graph.outputs.clone(),
        None => {
            let from_meta: Vec<String> =
                paired.iter().filter(|n| meta.get(*n).is_some_and(|m| m.is_output)).cloned().collect();
            if from_meta.is_empty() {
                notes.push(
                    "graph outputs unknown (no model, no trtlens manifest): the verdict covers every paired tensor"
                        .into(),
                );
                paired.clone()
            } else {
                from_meta
            }
        }
    };
    let outputs: Vec<OutputReport> = output_names
        .iter()
        .map(|n| match tensors.iter().find(|t| &t.name == n) {
            Some(t) => OutputReport {
                name: n.clone(),
                status: t.status,
                max_abs: t.metrics.as_ref().map_or(f64::NAN, |m| m.max_abs),
            },
            None => OutputReport { name: n.clone(), status: Status::Skipped, max_abs: f64::NAN },
        })
        .collect();
    for o in &outputs {
        if o.status == Status::Skipped {
            notes.push(format!(
                "graph output '{}' was not compared (missing on a side or skipped): the verdict fails",
                o.name
            ));
        }
    }
    for (which, side) in [("reference", &reference.report), ("candidate", &candidate.report)] {
        if let Some(c) = &side.conversion {
            notes.extend(conversion_notes(which, c));
        }
    }
    let verdict = if !outputs.is_empty() && outputs.iter().all(|o| o.status == Status::Pass) { "pass" } else { "fail" };
    if outputs.is_empty() {
        notes.push("nothing to judge: no graph output was compared".into());
    }

    let model_report = ReportModel {
        path: model
            .map(|m| m.path.display().to_string())
            .or_else(|| req.model.as_ref().map(|p| p.display().to_string())),
        sha256: model.map(|m| m.sha256.clone()).or_else(|| rs.model_sha256().or(cs.model_sha256()).map(str::to_string)),
        opset: model.and_then(Model::opset),
        node_count: model.map(|m| m.graph.nodes.len()),
    };
    let mut report = Report {
        schema: REPORT_SCHEMA.into(),
        tool: ToolInfo::current(),
        model: model_report,
        reference: reference.report.clone(),
        candidate: candidate.report.clone(),
        tolerance: ToleranceReport {
            rule: req.tolerance.rule,
            atol: req.tolerance.atol,
            rtol: req.tolerance.rtol,
            inf_equal: req.tolerance.inf_equal,
            overrides: req.overrides.clone(),
        },
        inputs,
        tensors,
        first_divergence,
        first_nonfinite,
        unmatched,
        outputs,
        summary,
        verdict: verdict.into(),
        notes,
        specialized: Vec::new(),
        trt: None,
        introducers: Vec::new(),
    };
    if let Side::Run(run) = cs
        && let Some(info) = &run.manifest.trt
    {
        attach_trt(req, model, rs, run, info, &output_names, &mut report)?;
    }
    Ok(report)
}

/// TensorRT candidate: per tensor the engine layer and the ONNX nodes it fused, the precision
/// mismatches, and the production engine's graph-output verdict (noted when it differs).
fn attach_trt(
    req: &CompareRequest,
    model: Option<&Model>,
    rs: &Side,
    run: &crate::store::RunDir,
    info: &crate::trt::RunInfo,
    output_names: &[String],
    report: &mut Report,
) -> Result<()> {
    use report::{EngineRef, ProductionReport, TrtReport};
    let map = &info.tensor_map;
    for t in &mut report.tensors {
        let node = model.and_then(|m| m.graph.producer(&t.name)).map(crate::model::graph::Node::display_name);
        let layer = map.layer_of(&t.name, node.as_deref().or(t.node.as_deref()));
        t.engine = Some(EngineRef {
            tensor: map.tensor(&t.name).and_then(|m| m.engine.clone()),
            layer: layer.map(|l| l.name.clone()),
            layer_type: layer.map(|l| l.layer_type.clone()),
            onnx_nodes: layer.map(|l| l.onnx_nodes.clone()).unwrap_or_default(),
        });
    }
    let production = match &info.production {
        Some(p) if !p.files.is_empty() => {
            let mut outs = Vec::new();
            for name in output_names {
                let mut status = Status::Pass;
                let mut max_abs = 0.0f64;
                for (it, file) in p.files.iter().enumerate() {
                    let c = crate::store::MappedTensors::open(&run.path.join(file))?;
                    let r = rs.iteration(it)?;
                    let (Some(rd), Some(cv)) = (r.get(name)?, c.view(name)) else {
                        status = Status::Skipped;
                        continue;
                    };
                    let rv = rd.view();
                    let tol = effective_tolerance(req, name);
                    let (rref, cref) =
                        (TensorRef::new(rv.dtype, rv.shape, rv.data), TensorRef::new(cv.dtype, cv.shape, cv.data));
                    let o = if rv.dtype.is_float() || cv.dtype.is_float() {
                        metrics::compare(rref, cref, &tol, 0)
                    } else {
                        metrics::compare_exact(rref, cref, 0)
                    };
                    match o {
                        Outcome::Compared { metrics, pass } => {
                            max_abs = max_abs.max(metrics.max_abs);
                            if !pass && status != Status::Skipped {
                                status = Status::Fail;
                            }
                        }
                        Outcome::Skipped { .. } => status = Status::Skipped,
                    }
                }
                outs.push(OutputReport { name: name.clone(), status, max_abs });
            }
            let verdict =
                if !outs.is_empty() && outs.iter().all(|o| o.status == Status::Pass) { "pass" } else { "fail" };
            let differs = verdict != report.verdict;
            if differs {
                report.notes.push(format!(
                    "marking every tensor changed the outputs: with --observe all the graph outputs {}, with the                      production fusion (--observe outputs) they {}; a fused kernel computes differently from the                      unfused layers (e.g. an intermediate that overflows FP16 only once it is materialized, or                      only inside the fusion)",
                    if report.verdict == "pass" { "pass" } else { "fail" },
                    if verdict == "pass" { "pass" } else { "fail" }
                ));
            }
            Some(ProductionReport { verdict: verdict.into(), outputs: outs, differs })
        }
        _ => None,
    };
    if !map.precision_mismatches.is_empty() {
        report.notes.push(format!(
            "{} node(s) run in another precision than the plan says (precision_mismatches)",
            map.precision_mismatches.len()
        ));
    }
    report.trt = Some(TrtReport {
        flavour: map.trt.flavour.name().into(),
        version: map.trt.version.clone(),
        observe: map.observe.name().into(),
        engine_key: info.engine_key.clone(),
        mapped: map.mapped(),
        tensors: map.tensors.len(),
        precision_mismatches: map.precision_mismatches.clone(),
        production,
    });
    Ok(())
}

/// Notes on what a side's out-of-range policy did to values above the FP16 range, or to values
/// it stored as ±inf or 0 (the ones that turn into NaN and inf: `0 · inf`, `inf − inf`, `x / 0`).
fn conversion_notes(which: &str, c: &crate::precision::RangeConversion) -> Vec<String> {
    use crate::precision::{OutOfRange, RangeAction};
    let list = |vs: &[&OutOfRange]| {
        let shown: Vec<String> = vs
            .iter()
            .take(3)
            .map(|v| match v.action {
                RangeAction::KeptFp32 => format!("{} (max |value| {:.4e})", v.name, v.max_abs),
                _ => format!("{} (max |value| {:.4e} -> {})", v.name, v.max_abs, v.became.join(", ")),
            })
            .collect();
        let more = if vs.len() > 3 { format!(" and {} more", vs.len() - 3) } else { String::new() };
        format!("{}{more}", shown.join(", "))
    };
    let mut notes = Vec::new();
    let ieee = c.nonfinite_or_zero();
    if !ieee.is_empty() {
        notes.push(format!(
            "{which}: --out-of-range ieee stored {} initializer/constant value(s) as ±inf or 0 in FP16: {}; \
             NaN and inf follow from them (0 * inf, inf - inf, x / 0); --out-of-range saturate (the default) \
             stores ±65504 / ±5.96e-8 instead",
            ieee.len(),
            list(&ieee)
        ));
    }
    let saturated: Vec<&OutOfRange> =
        c.values.iter().filter(|v| v.action == RangeAction::Saturated && v.above_max > 0).collect();
    if !saturated.is_empty() {
        notes.push(format!(
            "{which}: --out-of-range saturate stored {} initializer/constant value(s) above 65504 as ±65504: {}; \
             where the model needs the real value, --out-of-range keep-fp32 keeps the nodes reading it FP32",
            saturated.len(),
            list(&saturated)
        ));
    }
    let kept: Vec<&OutOfRange> = c.values.iter().filter(|v| v.action == RangeAction::KeptFp32).collect();
    if !kept.is_empty() {
        let nodes: usize = kept.iter().map(|v| v.readers_kept_fp32.len()).sum();
        notes.push(format!(
            "{which}: --out-of-range keep-fp32 kept {nodes} node(s) FP32 that read values above 65504: {}",
            list(&kept)
        ));
    }
    notes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tolerance_values_parse() -> Result<()> {
        let (g, per) = parse_tolerance_values("--atol", &["1e-3".into(), "out:0.5".into(), "a:b:2".into()])?;
        assert_eq!(g, Some(1e-3));
        assert_eq!(per, vec![("out".to_string(), 0.5), ("a:b".to_string(), 2.0)]);
        assert!(parse_tolerance_values("--atol", &["x:-1".into()]).is_err());
        assert!(parse_tolerance_values("--rtol", &["abc".into()]).is_err());
        let o = merge_overrides(vec![("y".into(), 1.0)], vec![("y".into(), 2.0), ("z".into(), 3.0)]);
        assert_eq!(o.len(), 2);
        assert_eq!((o[0].atol, o[0].rtol), (Some(1.0), Some(2.0)));
        Ok(())
    }
}
