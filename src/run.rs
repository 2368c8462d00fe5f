//! The `run` job: load a model, prepare inputs, execute a runner that captures every intermediate
//! tensor, and write a run directory. Progress goes to a caller-supplied callback so the CLI can
//! print it and a UI can forward it over a channel.

use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::error::{Error, Result};
use crate::inputs::{self, InputOptions};
use crate::model::Model;
use crate::runner::{self, NotCaptured, RunnerKind, RunnerOptions};
use crate::store::{self, Manifest, ModelInfo, RunWriter, RunnerInfo, TensorEntry, Timings, ToolInfo};

/// Progress events of a run.
#[derive(Debug, Clone, PartialEq)]
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
    /// Something worth telling (never fatal).
    Warning(String),
    /// What a long step is doing (`building engine: layer 3/12`, `engine cache hit`).
    Status(String),
}

/// What `run` needs.
#[derive(Debug, Clone)]
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

/// Node outputs a run deliberately does not capture, with the reason (listed in the manifest).
#[must_use]
pub fn excluded_list(model: &Model) -> Vec<NotCaptured> {
    model
        .graph
        .nodes
        .iter()
        .filter(|n| n.is_constant())
        .flat_map(|n| n.outputs.iter().filter(|o| !o.is_empty()))
        .map(|o| NotCaptured { name: o.clone(), reason: "output of a Constant node: model data, not computed".into() })
        .collect()
}

/// Execute a run and write its directory.
pub fn run(req: &RunRequest, progress: &mut dyn FnMut(Progress)) -> Result<RunSummary> {
    let t0 = Instant::now();
    let model = Model::load(&req.model)?;
    let capture = capture_list(&model);
    progress(Progress::Loaded { nodes: model.graph.nodes.len(), tensors: capture.len() });
    let input_set = inputs::prepare(&model, &req.inputs)?;
    for w in &input_set.warnings {
        progress(Progress::Warning(w.clone()));
    }
    let load_s = t0.elapsed().as_secs_f64();

    // Open the writer before the (possibly long) run, so an unwritable destination fails fast.
    let writer = RunWriter::create(&req.save)?;

    let t1 = Instant::now();
    let mut r = runner::create(req.runner, &model, &capture, &req.runner_options)?;
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
            entries = manifest_entries(&model, &specs);
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
            plan: if req.runner.takes_plan() {
                Some(req.runner_options.plan_label.clone().unwrap_or_else(|| "fp16 (default plan)".into()))
            } else {
                None
            },
        },
        model: model_info(&model),
        inputs: input_set.source.clone(),
        input_names: model.graph.inputs.clone(),
        tensors: entries,
        not_captured,
        excluded: excluded_list(&model),
        subgraph_tensors: model.graph.subgraph_tensors.iter().map(|s| s.name.clone()).collect(),
        iterations,
        warnings,
        timings: Timings { load_s, prepare_s, run_s, write_s },
        created_unix: SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()),
        trt,
    };
    let dir = writer.finish(&manifest)?;
    Ok(RunSummary { dir, manifest })
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
