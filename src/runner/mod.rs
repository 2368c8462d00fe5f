//! Runners: the backends that execute a model and capture tensors. All sit behind one [`Runner`]
//! trait; results are returned keyed by ONNX tensor name (never stored in the graph).

#[cfg(feature = "tract")]
pub mod cpu_fp16;
#[cfg(feature = "onnxruntime")]
pub mod ort;
#[cfg(any(feature = "tensorrt", feature = "tensorrt-rtx"))]
pub mod tensorrt;
#[cfg(feature = "tract")]
pub mod tract;

use std::path::PathBuf;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::model::Model;
use crate::run::Progress;
use crate::tensor::{DType, Tensor};

/// Named tensors, in a meaningful order (inputs: declaration order; outputs: topological order).
pub type Tensors = Vec<(String, Tensor)>;

/// Find a tensor by name in a [`Tensors`] list.
#[must_use]
pub fn find<'a>(tensors: &'a Tensors, name: &str) -> Option<&'a Tensor> {
    tensors.iter().find(|(n, _)| n == name).map(|(_, t)| t)
}

/// The runners that can be selected on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunnerKind {
    /// tract-onnx, embedded: nothing to install.
    Tract,
    /// ONNX Runtime CPU, loaded at run time from libonnxruntime.so.
    #[value(name = "onnxruntime", alias = "ort", alias = "onnxrt")]
    Onnxruntime,
    /// The precision plan's mixed FP16/FP32 graph on CPU with IEEE half storage (tract inside).
    #[value(name = "cpu-fp16")]
    #[serde(rename = "cpu-fp16")]
    CpuFp16,
    /// Enterprise TensorRT (11.x): the plan's engine with every tensor observable, on the GPU.
    #[value(name = "tensorrt", alias = "trt")]
    #[serde(rename = "tensorrt")]
    Tensorrt,
    /// TensorRT-RTX (1.x): the plan's engine with every tensor observable, on the GPU.
    #[value(name = "tensorrt-rtx", alias = "trt-rtx")]
    #[serde(rename = "tensorrt-rtx")]
    TensorrtRtx,
}

impl RunnerKind {
    /// Name used in manifests and reports.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            RunnerKind::Tract => "tract",
            RunnerKind::Onnxruntime => "onnxruntime",
            RunnerKind::CpuFp16 => "cpu-fp16",
            RunnerKind::Tensorrt => "tensorrt",
            RunnerKind::TensorrtRtx => "tensorrt-rtx",
        }
    }

    /// True when the runner applies a precision plan.
    #[must_use]
    pub fn takes_plan(self) -> bool {
        matches!(self, RunnerKind::CpuFp16 | RunnerKind::Tensorrt | RunnerKind::TensorrtRtx)
    }

    /// The TensorRT flavour of a TensorRT runner.
    #[must_use]
    pub fn flavour(self) -> Option<crate::trt::Flavour> {
        match self {
            RunnerKind::Tensorrt => Some(crate::trt::Flavour::Tensorrt),
            RunnerKind::TensorrtRtx => Some(crate::trt::Flavour::TensorrtRtx),
            _ => None,
        }
    }
}

/// A tensor the runner was asked for but could not provide, with the reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct NotCaptured {
    /// Tensor name.
    pub name: String,
    /// Why.
    pub reason: String,
}

/// What one iteration returns.
#[derive(Debug, Default)]
pub struct RunOutput {
    /// Captured tensors, in the order they were requested.
    pub tensors: Tensors,
    /// Requested tensors that could not be captured.
    pub not_captured: Vec<NotCaptured>,
    /// Wall time of the inference call, seconds.
    pub seconds: f64,
}

/// Options shared by runner constructors.
#[derive(Debug, Clone, Default)]
pub struct RunnerOptions {
    /// Explicit path to `libonnxruntime.so` (overrides discovery).
    pub ort_lib: Option<PathBuf>,
    /// Precision plan for runners that take one (`cpu-fp16`); `None` means all FP16 there.
    pub plan: Option<crate::precision::Plan>,
    /// How the plan is named in manifests and reports (its file, or the flags that built it).
    pub plan_label: Option<String>,
    /// TensorRT runners: libraries, observation and precision modes, engine cache.
    pub trt: crate::trt::TrtOptions,
}

/// A tensor a streaming runner announces before writing it: name, dtype, shape.
pub type TensorSpec = (String, DType, Vec<usize>);

/// Receives a streaming runner's tensors: the list first, then each tensor's bytes in that order.
pub trait TensorSink {
    /// The tensors that will follow, in order.
    fn begin(&mut self, specs: &[TensorSpec]) -> Result<()>;
    /// The next tensor's bytes (little-endian, row-major).
    fn put(&mut self, name: &str, data: &[u8]) -> Result<()>;
}

/// What a streamed iteration reports (its tensors went to the sink).
#[derive(Debug, Default)]
pub struct StreamedRun {
    /// The tensors written, in order.
    pub specs: Vec<TensorSpec>,
    /// Requested tensors that could not be captured.
    pub not_captured: Vec<NotCaptured>,
    /// Wall time of the inference call, seconds.
    pub seconds: f64,
}

/// A backend that executes a model.
pub trait Runner {
    /// Runner name (`tract`, `onnxruntime`, ...).
    fn name(&self) -> &'static str;
    /// Version of the backend library.
    fn version(&self) -> String;
    /// Run one iteration on `inputs` (every data input of the model), capturing every tensor that
    /// was requested at construction.
    fn run(&mut self, inputs: &Tensors) -> Result<RunOutput>;

    /// Get ready for these iterations (a TensorRT runner builds its engine for their shapes here,
    /// reporting progress). The default does nothing.
    fn prepare(&mut self, iterations: &[Tensors], progress: &mut dyn FnMut(Progress)) -> Result<()> {
        let _ = (iterations, progress);
        Ok(())
    }

    /// True when [`Runner::run_streamed`] is the way to run it (tensors leave a device one at a time).
    fn streams(&self) -> bool {
        false
    }

    /// Run one iteration, handing each captured tensor to `sink` as soon as it is on the host. The
    /// default runs [`Runner::run`] and hands its tensors over.
    fn run_streamed(&mut self, inputs: &Tensors, sink: &mut dyn TensorSink) -> Result<StreamedRun> {
        let out = self.run(inputs)?;
        let specs: Vec<TensorSpec> =
            out.tensors.iter().map(|(n, t)| (n.clone(), t.dtype(), t.shape().to_vec())).collect();
        sink.begin(&specs)?;
        for (n, t) in &out.tensors {
            sink.put(n, t.bytes())?;
        }
        Ok(StreamedRun { specs, not_captured: out.not_captured, seconds: out.seconds })
    }

    /// What a TensorRT runner records about its engine in the run's manifest.
    fn trt_info(&self) -> Option<crate::trt::RunInfo> {
        None
    }

    /// After an iteration: the graph outputs of the production engine (`--observe outputs`), when the
    /// runner also ran one beside its observable engine. Stored beside the run for `compare`.
    fn production_outputs(&mut self) -> Option<Tensors> {
        None
    }
}

/// Check, cheaply and before anything runs, that a runner can be created here: TensorRT runners
/// need their cargo feature and their libraries (found and loadable). Other runners say so on
/// creation. (A runner registry's availability check.)
pub fn check_available(kind: RunnerKind, opts: &RunnerOptions) -> Result<()> {
    if let Some(flavour) = kind.flavour() {
        crate::trt::require_compiled(flavour)?;
        crate::trt::discover::find(flavour, opts.trt.lib_dir.as_deref())?;
    }
    Ok(())
}

/// Build a runner for `model` that captures the `capture` tensors (ONNX names, topological order).
pub fn create(kind: RunnerKind, model: &Model, capture: &[String], opts: &RunnerOptions) -> Result<Box<dyn Runner>> {
    let _ = (model, capture, opts);
    match kind {
        #[cfg(feature = "tract")]
        RunnerKind::Tract => Ok(Box::new(tract::TractRunner::new(model, capture)?)),
        #[cfg(feature = "onnxruntime")]
        RunnerKind::Onnxruntime => Ok(Box::new(ort::OrtRunner::new(model, capture, opts)?)),
        #[cfg(feature = "tract")]
        RunnerKind::CpuFp16 => Ok(Box::new(cpu_fp16::CpuFp16Runner::new(model, capture, opts)?)),
        RunnerKind::Tensorrt | RunnerKind::TensorrtRtx => {
            let flavour = kind.flavour().ok_or_else(|| Error::runner(kind.name(), "not a TensorRT runner"))?;
            crate::trt::require_compiled(flavour)?;
            #[cfg(any(feature = "tensorrt", feature = "tensorrt-rtx"))]
            return Ok(Box::new(tensorrt::TensorrtRunner::new(flavour, model, capture, opts)?));
            #[cfg(not(any(feature = "tensorrt", feature = "tensorrt-rtx")))]
            Err(Error::runner(kind.name(), "built without TensorRT"))
        }
        #[allow(unreachable_patterns)]
        other => {
            Err(Error::runner(other.name(), "this build of trtlens was compiled without it (enable the cargo feature)"))
        }
    }
}
