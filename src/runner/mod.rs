//! Runners: the backends that execute a model and capture tensors. All sit behind one [`Runner`]
//! trait; results are returned keyed by ONNX tensor name (never stored in the graph).

#[cfg(feature = "tract")]
pub mod cpu_fp16;
pub mod ieee;
#[cfg(feature = "onnxruntime")]
pub mod ort;
pub mod registry;
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

/// An error message on one line (runtimes' messages sometimes carry newlines and trailing blanks).
#[must_use]
pub fn one_line(e: &dyn std::fmt::Display) -> String {
    e.to_string().split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The runners that can be selected on the command line. What each one is (names, aliases, plan,
/// tolerances, placement, availability) lives in its [`registry`] entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
pub enum RunnerKind {
    /// tract-onnx, embedded: nothing to install.
    #[serde(rename = "tract")]
    Tract,
    /// ONNX Runtime CPU, loaded at run time from libonnxruntime.so.
    #[serde(rename = "onnxruntime")]
    Onnxruntime,
    /// The precision plan's mixed FP16/FP32 graph on CPU with IEEE half storage (tract inside).
    #[serde(rename = "cpu-fp16")]
    CpuFp16,
    /// ONNX Runtime's CUDA provider: the plan's mixed-precision model (or the model as written) on
    /// a GPU, from the `onnxruntime-gpu` libraries.
    #[serde(rename = "onnxruntime-cuda")]
    OnnxruntimeCuda,
    /// Enterprise TensorRT (11.x): the plan's engine with every tensor observable, on the GPU.
    #[serde(rename = "tensorrt")]
    Tensorrt,
    /// TensorRT-RTX (1.x): the plan's engine with every tensor observable, on the GPU.
    #[serde(rename = "tensorrt-rtx")]
    TensorrtRtx,
}

impl RunnerKind {
    /// Every runner kind.
    pub const ALL: [RunnerKind; 6] = [
        RunnerKind::Tract,
        RunnerKind::Onnxruntime,
        RunnerKind::CpuFp16,
        RunnerKind::OnnxruntimeCuda,
        RunnerKind::Tensorrt,
        RunnerKind::TensorrtRtx,
    ];

    /// Name used on the command line, in manifests and reports.
    #[must_use]
    pub fn name(self) -> &'static str {
        registry::entry(self).name
    }

    /// True when the runner applies a precision plan.
    #[must_use]
    pub fn takes_plan(self) -> bool {
        registry::entry(self).takes_plan
    }

    /// Its registry entry.
    #[must_use]
    pub fn entry(self) -> &'static registry::RunnerEntry {
        registry::entry(self)
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

impl std::str::FromStr for RunnerKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<RunnerKind> {
        registry::lookup(s)
            .map(|e| e.kind)
            .ok_or_else(|| Error::usage(format!("unknown runner '{s}' (runners: {})", registry::names())))
    }
}

impl std::fmt::Display for RunnerKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl clap::ValueEnum for RunnerKind {
    fn value_variants<'a>() -> &'a [Self] {
        &Self::ALL
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        let e = registry::entry(*self);
        Some(clap::builder::PossibleValue::new(e.name).aliases(e.aliases.iter().copied()).help(e.summary))
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
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct RunnerOptions {
    /// Explicit path to `libonnxruntime.so` (overrides discovery).
    pub ort_lib: Option<PathBuf>,
    /// Precision plan for runners that take one (`cpu-fp16`, `onnxruntime-cuda`); `None` means all
    /// FP16 on `cpu-fp16` and the model as written on `onnxruntime-cuda` (the registry's
    /// [`DefaultPlan`](registry::DefaultPlan)).
    pub plan: Option<crate::precision::Plan>,
    /// How the plan is named in manifests and reports (its file, or the flags that built it).
    pub plan_label: Option<String>,
    /// `--tf32 on|off`: TF32 inputs for FP32 `MatMul`/`Gemm`/`Conv` (`None`: the runner's default,
    /// off on `cpu-fp16`, the backend's own default on GPU runners).
    #[serde(default)]
    pub tf32: Option<bool>,
    /// `--ort-opt`: ONNX Runtime's graph optimizations on GPU runners (`None`: disabled, so the
    /// Casts and per-node types stay as the plan wrote them).
    #[serde(default)]
    pub ort_opt: Option<OrtOpt>,
    /// `--device N`: the GPU ordinal (`None`: 0).
    #[serde(default)]
    pub device: Option<u32>,
    /// TensorRT runners: libraries, observation and precision modes, engine cache.
    #[serde(default)]
    pub trt: crate::trt::TrtOptions,
}

/// ONNX Runtime graph optimization levels (`--ort-opt`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum OrtOpt {
    /// No graph optimization: every node runs as written (the default).
    Disable,
    /// Constant folding and redundant-node elimination.
    Basic,
    /// Also the fusions of ONNX Runtime's extended level.
    Extended,
    /// Also layout optimizations.
    Layout,
    /// Everything ONNX Runtime does by default.
    All,
}

impl OrtOpt {
    /// The name on the command line and in reports.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            OrtOpt::Disable => "disable",
            OrtOpt::Basic => "basic",
            OrtOpt::Extended => "extended",
            OrtOpt::Layout => "layout",
            OrtOpt::All => "all",
        }
    }
}

/// Backend settings a run used that change its numbers, recorded in the run manifest
/// (`runner.settings`) and the report (`reference.settings`, `candidate.settings`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct RunnerSettings {
    /// `on` or `off`: FP32 `MatMul`/`Gemm`/`Conv` inputs rounded to TF32.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tf32: Option<String>,
    /// Where the TF32 setting came from: `--tf32`, or `default` (the runner's or backend's own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tf32_source: Option<String>,
    /// ONNX Runtime's graph optimization level (`disable`, ..., `all`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub graph_optimization: Option<String>,
    /// The execution provider the nodes ran on (`CUDAExecutionProvider`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution_provider: Option<String>,
    /// The GPU ordinal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<u32>,
    /// Nodes ONNX Runtime placed on its CPU provider although a GPU provider was asked for: only
    /// nodes computing integers or booleans (shape arithmetic) are allowed there; a floating-point
    /// node on the CPU is an error.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cpu_nodes: Vec<String>,
}

/// A tensor a streaming runner announces before writing it: name, dtype, shape.
pub type TensorSpec = (String, DType, Vec<usize>);

/// Receives a streaming runner's tensors: the list first, then each tensor's bytes, each once, in
/// any order (a runner hands a tensor over when it is computed).
pub trait TensorSink {
    /// The tensors that will follow.
    fn begin(&mut self, specs: &[TensorSpec]) -> Result<()>;
    /// One announced tensor's bytes (little-endian, row-major).
    fn put(&mut self, name: &str, data: &[u8]) -> Result<()>;
}

/// A [`TensorSink`] that keeps every tensor in memory (a streaming runner's [`Runner::run`]).
#[derive(Debug, Default)]
pub struct CollectSink {
    specs: std::collections::HashMap<String, (DType, Vec<usize>)>,
    tensors: std::collections::HashMap<String, Tensor>,
}

impl CollectSink {
    /// The tensors received, in the order of `specs` (the announced order).
    #[must_use]
    pub fn into_tensors(mut self, specs: &[TensorSpec]) -> Tensors {
        specs.iter().filter_map(|(n, _, _)| self.tensors.remove(n).map(|t| (n.clone(), t))).collect()
    }
}

impl TensorSink for CollectSink {
    fn begin(&mut self, specs: &[TensorSpec]) -> Result<()> {
        self.specs = specs.iter().map(|(n, d, s)| (n.clone(), (*d, s.clone()))).collect();
        Ok(())
    }

    fn put(&mut self, name: &str, data: &[u8]) -> Result<()> {
        let (dtype, shape) =
            self.specs.get(name).ok_or_else(|| Error::runner("run", format!("tensor '{name}' was not announced")))?;
        let t = Tensor::from_bytes(*dtype, shape.clone(), data.to_vec())
            .map_err(|e| Error::runner("run", format!("tensor '{name}': {e}")))?;
        self.tensors.insert(name.to_string(), t);
        Ok(())
    }
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
    /// For runners that convert the model to mixed precision (`cpu-fp16`): the out-of-range policy
    /// and every initializer/`Constant` value it concerned (recorded in the run manifest).
    fn conversion(&self) -> Option<crate::precision::RangeConversion> {
        None
    }
    /// Backend settings that change the numbers (TF32, graph optimization, provider, device), for
    /// the run manifest; asked after the iterations ran.
    fn settings(&self) -> Option<RunnerSettings> {
        None
    }

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
        #[cfg(feature = "onnxruntime")]
        RunnerKind::OnnxruntimeCuda => Ok(Box::new(ort::OrtRunner::cuda(model, capture, opts)?)),
        RunnerKind::Tensorrt | RunnerKind::TensorrtRtx => {
            let flavour = kind.flavour().ok_or_else(|| Error::runner(kind.name(), "not a TensorRT runner"))?;
            crate::trt::require_compiled(flavour)?;
            #[cfg(any(feature = "tensorrt", feature = "tensorrt-rtx"))]
            return Ok(Box::new(tensorrt::TensorrtRunner::new(flavour, model, capture, opts)?));
            #[cfg(not(any(feature = "tensorrt", feature = "tensorrt-rtx")))]
            Err(Error::runner(kind.name(), "built without TensorRT"))
        }
        #[allow(unreachable_patterns)]
        other => Err(Error::runner(
            other.name(),
            other.entry().availability(opts).err().unwrap_or_else(|| "not available in this build".into()),
        )),
    }
}
