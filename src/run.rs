//! The `run` job: load a model, prepare inputs, execute a runner that captures every intermediate
//! tensor, and write a run directory. Progress goes to a caller-supplied callback so the CLI can
//! print it and a UI can forward it over a channel.

use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::error::{Error, Result};
use crate::inputs::{self, InputOptions};
use crate::model::Model;
use crate::model::specialize::{self, NotSpecialized, Specialized};
use crate::runner::{self, NotCaptured, RunnerKind, RunnerOptions};
use crate::store::{self, Manifest, ModelInfo, RunWriter, RunnerInfo, TensorEntry, Timings, ToolInfo};

/// Progress events of a run (also sent, as they are, by a worker process).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "step", content = "data", rename_all = "snake_case")]
pub enum Progress {
    /// The model is loaded.
    Loaded {
        /// Nodes in the graph.
        nodes: usize,
        /// Tensors to capture.
        tensors: usize,
    },
    /// An iteration finished.
    Iteration {
        /// Iterations done.
        done: usize,
        /// Iterations in all.
        total: usize,
        /// Seconds of that iteration's inference.
        seconds: f64,
    },
    /// An `If` node was replaced by the branch the inputs select (control-flow specialization).
    Specialized(Specialized),
    /// Something worth telling (never fatal).
    Warning(String),
    /// A step of a long preparation (`building engine`), with a fraction done when known.
    Step {
        /// What is happening (`building engine`).
        phase: String,
        /// One line for the user (`layer 12/95`, `12.5 s`).
        message: String,
        /// Fraction of the step done, 0..=1, when known.
        fraction: Option<f64>,
    },
}

impl std::fmt::Display for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Progress::Loaded { nodes, tensors } => write!(f, "{nodes} nodes, {tensors} tensors to capture"),
            Progress::Iteration { done, total, seconds } => {
                write!(f, "iteration {done}/{total} ran in {:.1} ms", seconds * 1e3)
            }
            Progress::Specialized(s) => write!(f, "specialized {s}"),
            Progress::Warning(w) => write!(f, "warning: {w}"),
            Progress::Step { phase, message, .. } => write!(f, "{phase}: {message}"),
        }
    }
}

/// What `run` needs.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RunRequest {
    /// The ONNX model.
    pub model: PathBuf,
    /// The runner.
    pub runner: RunnerKind,
    /// Input options.
    pub inputs: InputOptions,
    /// Runner options.
    pub runner_options: RunnerOptions,
    /// Where to save the run directory.
    pub save: PathBuf,
    /// Inline the branch of every `If` whose condition the inputs fix (control-flow specialization;
    /// `--no-specialize` turns it off).
    pub specialize: bool,
}

/// What a finished run reports.
#[derive(Debug, Clone)]
pub struct RunSummary {
    /// The run directory.
    pub dir: PathBuf,
    /// Its manifest.
    pub manifest: Manifest,
}

/// Every tensor of the model a run captures, in topological order (see [`Graph::captured`]).
///
/// [`Graph::captured`]: crate::model::graph::Graph::captured
#[must_use]
pub fn capture_list(model: &Model) -> Vec<String> {
    model.graph.captured().into_iter().map(str::to_string).collect()
}

/// Reason listed for the tensors of `Loop`/`Scan` bodies.
pub const LOOP_BODY_REASON: &str = "inside a Loop/Scan body (not captured)";

/// Node outputs a run deliberately does not capture, with the reason (listed in the manifest):
/// outputs of `Constant` nodes, and the tensors inside control-flow bodies (`Loop`/`Scan` bodies;
/// branches of `If` nodes that were not specialized, with the reason from `kept`).
#[must_use]
pub fn excluded_list(model: &Model, kept: &[NotSpecialized], specialize: bool) -> Vec<NotCaptured> {
    let g = &model.graph;
    let mut out: Vec<NotCaptured> = g
        .nodes
        .iter()
        .filter(|n| n.is_constant())
        .flat_map(|n| n.outputs.iter().filter(|o| !o.is_empty()))
        .map(|o| NotCaptured { name: o.clone(), reason: "output of a Constant node: model data, not computed".into() })
        .collect();
    let mut seen = std::collections::HashSet::new();
    for s in &g.subgraph_tensors {
        if !seen.insert(s.name.as_str()) {
            continue;
        }
        let owner = &g.nodes[s.owner];
        let reason = if owner.op_type == "If" {
            let node = owner.display_name();
            let why = match kept.iter().find(|k| k.node == node) {
                Some(k) => k.reason.clone(),
                None if !specialize => "control-flow specialization is off (--no-specialize)".into(),
                None => "its branch was not inlined".into(),
            };
            format!("inside a branch of If '{node}', not captured: {why}")
        } else {
            LOOP_BODY_REASON.to_string()
        };
        out.push(NotCaptured { name: s.name.clone(), reason });
    }
    out
}

/// The model a run executes: the user's model, or its control-flow specialization for the inputs.
pub struct Executable {
    /// The model to hand to the runner (the specialized one lives in a temporary file).
    pub model: Model,
    /// The `If`s inlined.
    pub specialized: Vec<Specialized>,
    /// The `If`s left as they are, and why.
    pub kept: Vec<NotSpecialized>,
    /// Keeps the specialized model file alive.
    _dir: Option<tempfile::TempDir>,
}

/// Specialize `model` for `iterations` (when `specialize`), writing the result to a temporary file
/// the runners can load.
pub fn executable(
    model: &Model,
    iterations: &[crate::runner::Tensors],
    specialize: bool,
    opts: &RunnerOptions,
) -> Result<Executable> {
    if !specialize {
        return Ok(Executable { model: model.clone(), specialized: vec![], kept: vec![], _dir: None });
    }
    let outcome = match specialize::decide(model, iterations, opts) {
        Ok(o) => o,
        // Never worse than not specializing: the run goes on with the model as it is.
        Err(e) => {
            let kept = vec![NotSpecialized {
                node: String::new(),
                condition: String::new(),
                reason: format!("control-flow specialization failed, the model runs as it is: {e}"),
            }];
            return Ok(Executable { model: model.clone(), specialized: vec![], kept, _dir: None });
        }
    };
    let Some(proto) = outcome.proto else {
        return Ok(Executable { model: model.clone(), specialized: vec![], kept: outcome.kept, _dir: None });
    };
    let dir = tempfile::Builder::new()
        .prefix("trtlens-specialized-")
        .tempdir()
        .map_err(|e| Error::store_io(std::env::temp_dir(), "cannot create a temporary folder", e))?;
    let specialized = specialize::materialize(model, proto, dir.path())?;
    Ok(Executable { model: specialized, specialized: outcome.specialized, kept: outcome.kept, _dir: Some(dir) })
}

/// Execute a run where its runner belongs ([`registry`](crate::runner::registry) placement):
/// in this process, or in a `trtlens worker` child for runners that can take a process down. Inside
/// a worker, always in this process.
pub fn run_placed(req: &RunRequest, progress: &mut dyn FnMut(Progress)) -> Result<RunSummary> {
    // A worker serving this very run executes it; any other process (the CLI, or a worker running
    // a whole comparison for the inspector) starts a worker of its own for it, with the
    // environment the runner needs.
    if req.runner.entry().placement == crate::runner::registry::Placement::Worker && !crate::job::serving_run() {
        return crate::job::client::run_in_worker(req, progress);
    }
    run(req, progress)
}

/// Execute a run and write its directory (in this process).
pub fn run(req: &RunRequest, progress: &mut dyn FnMut(Progress)) -> Result<RunSummary> {
    let t0 = Instant::now();
    let original = Model::load(&req.model)?;
    let input_set = inputs::prepare(&original, &req.inputs)?;
    for w in &input_set.warnings {
        progress(Progress::Warning(w.clone()));
    }
    // Open the writer before the (possibly long) specialization and run, so an unwritable
    // destination fails fast.
    let writer = RunWriter::create(&req.save)?;
    let exe = executable(&original, &input_set.iterations, req.specialize, &req.runner_options)?;
    let mut spec_warnings = Vec::new();
    for s in &exe.specialized {
        progress(Progress::Specialized(s.clone()));
    }
    for k in &exe.kept {
        let w = k.to_string();
        progress(Progress::Warning(w.clone()));
        spec_warnings.push(w);
    }
    let model = &exe.model;
    let capture = capture_list(model);
    progress(Progress::Loaded { nodes: model.graph.nodes.len(), tensors: capture.len() });
    let load_s = t0.elapsed().as_secs_f64();

    let t1 = Instant::now();
    let mut r = runner::create(req.runner, model, &capture, &req.runner_options)?;
    r.prepare(&input_set.iterations, progress)?;
    let prepare_s = t1.elapsed().as_secs_f64();

    let total = input_set.iterations.len();
    let mut iterations = Vec::with_capacity(total);
    let mut entries: Vec<TensorEntry> = Vec::new();
    let mut not_captured: Vec<NotCaptured> = Vec::new();
    let mut run_s = 0.0;
    let mut write_s = 0.0;
    let mut production_files = Vec::new();
    for (it, feed) in input_set.iterations.iter().enumerate() {
        let (specs, missing, seconds) = if r.streams() {
            let tw = Instant::now();
            let mut sink = StoreSink { writer: &writer, index: it, inputs: feed, open: None };
            let out = r.run_streamed(feed, &mut sink)?;
            let (stream, mut entry) = sink
                .open
                .take()
                .ok_or_else(|| Error::runner(r.name(), "the runner wrote no tensors (it never announced them)"))?;
            stream.finish()?;
            entry.seconds = out.seconds;
            iterations.push(entry);
            write_s += (tw.elapsed().as_secs_f64() - out.seconds).max(0.0);
            (out.specs, out.not_captured, out.seconds)
        } else {
            let out = r.run(feed)?;
            let tw = Instant::now();
            iterations.push(writer.write_iteration(it, feed, &out.tensors, out.seconds)?);
            write_s += tw.elapsed().as_secs_f64();
            let specs = out.tensors.iter().map(|(n, t)| (n.clone(), t.dtype(), t.shape().to_vec())).collect();
            (specs, out.not_captured, out.seconds)
        };
        run_s += seconds;
        if let Some(outputs) = r.production_outputs() {
            production_files.push(writer.write_extra(&format!("production_{it:04}.safetensors"), &outputs)?);
        }
        if it == 0 {
            entries = manifest_entries(model, &specs);
            not_captured.clone_from(&missing);
            for name in &capture {
                if !specs.iter().any(|(n, _, _)| n == name) && !missing.iter().any(|n| &n.name == name) {
                    not_captured
                        .push(NotCaptured { name: name.clone(), reason: "the runner returned no value".into() });
                }
            }
        }
        progress(Progress::Iteration { done: it + 1, total, seconds });
    }
    let trt = r.trt_info().map(|mut info| {
        if !production_files.is_empty()
            && let Some(p) = info.production.as_mut()
        {
            p.files = production_files;
        }
        info
    });
    let mut warnings = input_set.warnings.clone();
    warnings.extend(spec_warnings);
    if !not_captured.is_empty() {
        let w = format!(
            "{} of {} tensors could not be captured (listed in the manifest)",
            not_captured.len(),
            capture.len()
        );
        progress(Progress::Warning(w.clone()));
        warnings.push(w);
    }
    let manifest = Manifest {
        schema: store::MANIFEST_SCHEMA.into(),
        tool: ToolInfo::current(),
        runner: RunnerInfo {
            name: r.name().into(),
            version: r.version(),
            plan: plan_label(req),
            conversion: r.conversion(),
            settings: r.settings(),
        },
        model: model_info(&original),
        inputs: input_set.source.clone(),
        input_names: model.graph.inputs.clone(),
        tensors: entries,
        not_captured,
        excluded: excluded_list(model, &exe.kept, req.specialize),
        subgraph_tensors: model.graph.subgraph_tensors.iter().map(|s| s.name.clone()).collect(),
        specialized: exe.specialized.clone(),
        not_specialized: exe.kept.clone(),
        iterations,
        warnings,
        timings: Timings { load_s, prepare_s, run_s, write_s },
        created_unix: SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()),
        trt,
    };
    let dir = writer.finish(&manifest)?;
    Ok(RunSummary { dir, manifest })
}

/// How a run's plan is named in its manifest: the label of the plan given, the default plan of a
/// runner that applies one without being given one (`cpu-fp16`), or none (runners that take no
/// plan, and `onnxruntime-cuda` running the model as written).
fn plan_label(req: &RunRequest) -> Option<String> {
    use crate::runner::registry::DefaultPlan;
    let entry = req.runner.entry();
    if !entry.takes_plan {
        return None;
    }
    match (&req.runner_options.plan_label, &req.runner_options.plan, entry.default_plan) {
        (Some(l), _, _) => Some(l.clone()),
        (None, Some(p), _) => Some(p.default.to_string()),
        (None, None, DefaultPlan::AllFp16) => Some("fp16 (default plan)".into()),
        (None, None, DefaultPlan::AsWritten) => None,
    }
}

/// Model identity for manifests and reports.
#[must_use]
pub fn model_info(model: &Model) -> ModelInfo {
    ModelInfo {
        path: model.path.display().to_string(),
        sha256: model.sha256.clone(),
        opset: model.opset(),
        node_count: model.graph.nodes.len(),
    }
}

/// A [`TensorSink`](crate::runner::TensorSink) writing one iteration into the run directory.
struct StoreSink<'a> {
    writer: &'a RunWriter,
    index: usize,
    inputs: &'a crate::runner::Tensors,
    open: Option<(store::SafetensorsStream, store::IterationEntry)>,
}

impl crate::runner::TensorSink for StoreSink<'_> {
    fn begin(&mut self, specs: &[crate::runner::TensorSpec]) -> Result<()> {
        if self.open.is_some() {
            return Err(Error::runner("run", "a runner announced its tensors twice in one iteration"));
        }
        self.open = Some(self.writer.stream_iteration(self.index, self.inputs, specs, 0.0)?);
        Ok(())
    }

    fn put(&mut self, name: &str, data: &[u8]) -> Result<()> {
        match self.open.as_mut() {
            Some((s, _)) => s.write(name, data),
            None => Err(Error::runner("run", format!("tensor '{name}' arrived before the tensor list"))),
        }
    }
}

fn manifest_entries(model: &Model, tensors: &[crate::runner::TensorSpec]) -> Vec<TensorEntry> {
    let order: std::collections::HashMap<&str, usize> =
        model.graph.captured().into_iter().enumerate().map(|(i, n)| (n, i)).collect();
    tensors
        .iter()
        .map(|(name, dtype, shape)| {
            let node = model.graph.producer(name);
            TensorEntry {
                name: name.clone(),
                node: node.map(crate::model::graph::Node::display_name),
                op_type: node.map(|n| n.op_type.clone()),
                topo_index: order.get(name.as_str()).copied().unwrap_or(usize::MAX),
                dtype: *dtype,
                shape: shape.clone(),
                is_output: model.graph.tensor(name).is_some_and(|i| i.is_output),
            }
        })
        .collect()
}

/// Check that a path can be used as a run destination before doing work (used by the CLI).
pub fn check_destination(path: &Path) -> Result<()> {
    if path.is_file() {
        return Err(Error::store(path, "is a file; --save wants a directory path"));
    }
    Ok(())
}
