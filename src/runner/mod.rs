//! Runners: the backends that execute a model and capture tensors. All sit behind one [`Runner`]
//! trait; results are returned keyed by ONNX tensor name (never stored in the graph).

#[cfg(feature = "tract")]
pub mod cpu_fp16;
#[cfg(feature = "onnxruntime")]
pub mod ort;
#[cfg(feature = "tract")]
pub mod tract;

use std::path::PathBuf;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::model::Model;
use crate::tensor::Tensor;

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
}

impl RunnerKind {
    /// Name used in manifests and reports.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            RunnerKind::Tract => "tract",
            RunnerKind::Onnxruntime => "onnxruntime",
            RunnerKind::CpuFp16 => "cpu-fp16",
        }
    }

    /// True when the runner applies a precision plan.
    #[must_use]
    pub fn takes_plan(self) -> bool {
        matches!(self, RunnerKind::CpuFp16)
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
        #[allow(unreachable_patterns)]
        other => {
            Err(Error::runner(other.name(), "this build of trtlens was compiled without it (enable the cargo feature)"))
        }
    }
}
