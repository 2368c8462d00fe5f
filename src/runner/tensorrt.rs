//! The TensorRT candidates (`tensorrt`, `tensorrt-rtx`): the plan's engine, built with every tensor
//! observable ([`crate::trt::build`]), run on the GPU, its tensors read back under their ONNX names.
//!
//! The engine is built in [`Runner::prepare`], once the inputs (and so the optimization profile)
//! are known, through the engine cache. With `--observe all` the production engine (`--observe
//! outputs`, the fusion a deployment gets) is built and run too, and its graph outputs are stored
//! beside the run, so `compare` can say when marking tensors changed the verdict.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::{RunOutput, Runner, RunnerOptions, StreamedRun, TensorSink, TensorSpec, Tensors};
use crate::error::{Error, Result};
use crate::model::Model;
use crate::run::Progress;
use crate::trt::build::{BuildEvent, BuildOutput, BuildRequest, build_job};
use crate::trt::cache::ShapeRange;
use crate::trt::engine::Executor;
use crate::trt::{Flavour, Observe, Production, RunInfo};

/// A TensorRT runner.
pub struct TensorrtRunner {
    flavour: Flavour,
    model: PathBuf,
    capture: Vec<String>,
    opts: RunnerOptions,
    built: Option<(BuildOutput, Executor)>,
    production: Option<(BuildOutput, Executor)>,
    production_outputs: Option<Tensors>,
}

impl TensorrtRunner {
    /// A runner for `model` capturing `capture` (ONNX names, topological order).
    pub fn new(flavour: Flavour, model: &Model, capture: &[String], opts: &RunnerOptions) -> Result<TensorrtRunner> {
        crate::trt::require_compiled(flavour)?;
        crate::trt::discover::find(flavour, opts.trt.lib_dir.as_deref())?;
        Ok(TensorrtRunner {
            flavour,
            model: model.path.clone(),
            capture: capture.to_vec(),
            opts: opts.clone(),
            built: None,
            production: None,
            production_outputs: None,
        })
    }

    fn build(
        &self,
        observe: Observe,
        shapes: &BTreeMap<String, ShapeRange>,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<(BuildOutput, Executor)> {
        let mut options = self.opts.trt.clone();
        options.observe = observe;
        let req = BuildRequest {
            model: self.model.clone(),
            flavour: self.flavour,
            plan: self.opts.plan.clone(),
            plan_label: self.opts.plan_label.clone(),
            options,
            shapes: shapes.clone(),
            save: None,
            cancel: None,
        };
        let label = if observe == Observe::Outputs && self.opts.trt.observe != Observe::Outputs {
            "production engine: "
        } else {
            ""
        };
        let phase = if label.is_empty() { "building engine" } else { "building production engine" };
        let out = build_job(&req, &mut |e| match e {
            BuildEvent::Status(s) => progress(Progress::Step {
                phase: phase.into(),
                fraction: crate::trt::layer_fraction(&s),
                message: s.strip_prefix("building engine: ").unwrap_or(&s).to_string(),
            }),
            BuildEvent::Log(l) => progress(Progress::Warning(format!("{label}{l}"))),
        })?;
        if let Some(why) = &out.not_runnable {
            return Err(Error::runner_details(
                self.flavour.name(),
                format!("the engine was built but cannot run here: {why}"),
                format!(
                    "the build directory {} holds the engine, its build log and tensor_map.json; run `trtlens doctor` \
                     to see which GPUs can run {}",
                    out.dir.display(),
                    self.flavour.title()
                ),
            ));
        }
        let bytes = std::fs::read(out.engine_file())
            .map_err(|e| Error::store_io(out.engine_file(), "cannot read the engine", e))?;
        let exec = Executor::load(&out.libraries, &bytes)?;
        Ok((out, exec))
    }

    /// (ONNX name, engine name) of every captured tensor the engine exposes.
    fn wanted(&self, out: &BuildOutput) -> Vec<(String, String)> {
        self.capture
            .iter()
            .filter_map(|c| out.tensor_map.tensor(c).and_then(|t| t.engine.clone()).map(|e| (c.clone(), e)))
            .collect()
    }
}

/// A sink keeping tensors in memory (for [`Runner::run`]).
#[derive(Default)]
struct Collect {
    specs: Vec<TensorSpec>,
    tensors: Tensors,
}

impl TensorSink for Collect {
    fn begin(&mut self, specs: &[TensorSpec]) -> Result<()> {
        self.specs = specs.to_vec();
        Ok(())
    }

    fn put(&mut self, name: &str, data: &[u8]) -> Result<()> {
        let (_, dtype, shape) = self
            .specs
            .iter()
            .find(|(n, _, _)| n == name)
            .ok_or_else(|| Error::runner("tensorrt", format!("tensor '{name}' was not announced")))?;
        let t = crate::tensor::Tensor::from_bytes(*dtype, shape.clone(), data.to_vec())
            .map_err(|e| Error::runner("tensorrt", format!("tensor '{name}': {e}")))?;
        self.tensors.push((name.to_string(), t));
        Ok(())
    }
}

impl Runner for TensorrtRunner {
    fn name(&self) -> &'static str {
        self.flavour.name()
    }

    fn version(&self) -> String {
        match &self.built {
            Some((b, _)) => b.libraries.version.to_string(),
            None => "unknown".to_string(),
        }
    }

    fn prepare(&mut self, iterations: &[Tensors], progress: &mut dyn FnMut(Progress)) -> Result<()> {
        let mut shapes: BTreeMap<String, ShapeRange> = BTreeMap::new();
        for it in iterations {
            for (name, t) in it {
                shapes
                    .entry(name.clone())
                    .and_modify(|r| r.cover(t.shape()))
                    .or_insert_with(|| ShapeRange::fixed(t.shape()));
            }
        }
        let observe = self.opts.trt.observe;
        let main = self.build(observe, &shapes, progress)?;
        if main.0.cache_hit {
            progress(Progress::Step {
                phase: "engine".into(),
                message: format!("from the cache: {}", main.0.dir.display()),
                fraction: Some(1.0),
            });
        }
        if !main.0.tensor_map.precision_mismatches.is_empty() {
            progress(Progress::Warning(format!(
                "{} node(s) computed in another precision than the plan's (see the report's precision_mismatches)",
                main.0.tensor_map.precision_mismatches.len()
            )));
        }
        self.built = Some(main);
        if observe == Observe::All {
            self.production = Some(self.build(Observe::Outputs, &shapes, progress)?);
        }
        Ok(())
    }

    fn streams(&self) -> bool {
        true
    }

    fn run(&mut self, inputs: &Tensors) -> Result<RunOutput> {
        let mut c = Collect::default();
        let r = self.run_streamed(inputs, &mut c)?;
        Ok(RunOutput { tensors: c.tensors, not_captured: r.not_captured, seconds: r.seconds })
    }

    fn run_streamed(&mut self, inputs: &Tensors, sink: &mut dyn TensorSink) -> Result<StreamedRun> {
        let debug = self.opts.trt.observe == Observe::Debug;
        let Some((out, _)) = &self.built else {
            return Err(Error::runner(self.flavour.name(), "the engine was not built (prepare was not called)"));
        };
        let want = self.wanted(out);
        let mut not_captured: Vec<super::NotCaptured> = self
            .capture
            .iter()
            .filter_map(|c| {
                let t = out.tensor_map.tensor(c)?;
                t.engine.is_none().then(|| super::NotCaptured {
                    name: c.clone(),
                    reason: t.reason.clone().unwrap_or_else(|| "not observable".into()),
                })
            })
            .collect();
        let Some((_, exec)) = self.built.as_mut() else { return Err(Error::runner(self.flavour.name(), "no engine")) };
        let mut r = exec.run(inputs, &want, debug, sink)?;
        not_captured.append(&mut r.not_captured);
        r.not_captured = not_captured;
        if let Some((pout, pexec)) = self.production.as_mut() {
            let outputs: Vec<(String, String)> = pout
                .tensor_map
                .tensors
                .iter()
                .filter(|t| self.capture.contains(&t.onnx))
                .filter_map(|t| t.engine.clone().map(|e| (t.onnx.clone(), e)))
                .collect();
            let mut c = Collect::default();
            pexec.run(inputs, &outputs, false, &mut c)?;
            self.production_outputs = Some(c.tensors);
        }
        Ok(r)
    }

    fn trt_info(&self) -> Option<RunInfo> {
        let (out, _) = self.built.as_ref()?;
        Some(RunInfo {
            build_dir: out.dir.display().to_string(),
            engine_key: out.meta.key.clone(),
            cache_hit: out.cache_hit,
            tensor_map: out.tensor_map.clone(),
            production: self
                .production
                .as_ref()
                .map(|(p, _)| Production { engine_key: p.meta.key.clone(), files: Vec::new() }),
        })
    }

    fn production_outputs(&mut self) -> Option<Tensors> {
        self.production_outputs.take()
    }
}
