//! Runners: the backends that execute a model and capture tensors. All sit behind one [`Runner`]
//! trait; results are returned keyed by ONNX tensor name (never stored in the graph).

#[cfg(feature = "tract")]
pub mod cpu_fp16;
#[cfg(feature = "onnxruntime")]
pub mod ort;
pub mod registry;
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
}

impl RunnerKind {
    /// Every runner kind.
    pub const ALL: [RunnerKind; 3] = [RunnerKind::Tract, RunnerKind::Onnxruntime, RunnerKind::CpuFp16];

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
        other => Err(Error::runner(
            other.name(),
            other.entry().availability(opts).err().unwrap_or_else(|| "not available in this build".into()),
        )),
    }
}
