//! The `cpu-fp16` candidate: the plan's mixed-precision graph on CPU with IEEE half storage.
//!
//! The model is rewritten with the precision plan (the same Cast rewrite a strongly typed `TensorRT`
//! build gets), turned into its FP32-compute/FP16-storage emulation
//! ([`crate::precision::emulate`]), and executed by tract. Every tensor the plan makes FP16 comes
//! back as `float16` under its original name, so it compares by name against an FP32 reference.
//! Without a plan, every node that can run in FP16 does. With `--tf32` ([`RunnerOptions::tf32`])
//! the FP32 inputs of FP32 matrix products are rounded to TF32 as a GPU does
//! ([`crate::precision::tf32`]). tract runs the emulated graph with ONNX Runtime's NaN and infinity
//! semantics ([`super::ieee`]), so a NaN that FP16 overflow creates stays NaN as on the GPU.

use std::path::PathBuf;

use prost::Message;

use super::tract::TractRunner;
use super::{RunOutput, Runner, RunnerOptions, StreamedRun, TensorSink, Tensors};
use crate::error::{Error, Result};
use crate::model::Model;
use crate::model::tensor_proto;
use crate::precision::{self, Plan, Precision};

/// The `cpu-fp16` runner.
pub struct CpuFp16Runner {
    inner: TractRunner,
    /// Keeps the emulated model file alive.
    _dir: tempfile::TempDir,
    /// Where the emulated model was written (for messages).
    pub emulated_path: PathBuf,
    /// What the rewrite did.
    pub report: precision::ConvertReport,
    settings: crate::runner::RunnerSettings,
}

fn err(msg: impl Into<String>) -> Error {
    Error::runner("cpu-fp16", msg)
}

impl CpuFp16Runner {
    /// Rewrite `model` with the plan in `opts` (all FP16 when none) and prepare tract on the result.
    pub fn new(model: &Model, capture: &[String], opts: &RunnerOptions) -> Result<CpuFp16Runner> {
        Self::build(model, capture, opts, true)
    }

    /// tract's own NaN and infinity semantics, without the [`super::ieee`] rewrite: only for the
    /// tests that show what the rewrite changes.
    #[doc(hidden)]
    pub fn without_ieee_fixes(model: &Model, capture: &[String], opts: &RunnerOptions) -> Result<CpuFp16Runner> {
        Self::build(model, capture, opts, false)
    }

    fn build(model: &Model, capture: &[String], opts: &RunnerOptions, ieee: bool) -> Result<CpuFp16Runner> {
        let plan = opts.plan.clone().unwrap_or_else(|| Plan::uniform(Precision::Fp16));
        let mut converted = precision::convert(model, &plan)?;
        // External weights are inlined: the emulated model lives in a temporary folder.
        let base = model.base_dir();
        if let Some(g) = converted.proto.graph.as_mut() {
            for t in &mut g.initializer {
                if tensor_proto::external_ref(t)?.is_some() {
                    let value = tensor_proto::to_tensor(t, Some(&base))?;
                    *t = tensor_proto::from_tensor(t.tensor_name(), &value);
                }
            }
        }
        let tf32 = opts.tf32.unwrap_or(false);
        let emulated = precision::emulate::emulate_with(&converted, precision::emulate::Emulation { tf32 });
        let dir = tempfile::Builder::new()
            .prefix("trtlens-cpu-fp16-")
            .tempdir()
            .map_err(|e| err(format!("cannot create a temporary folder: {e}")))?;
        let path = dir.path().join("emulated.onnx");
        std::fs::write(&path, emulated.encode_to_vec())
            .map_err(|e| err(format!("cannot write {}: {e}", path.display())))?;
        let emulated_model = Model::load(&path)?;
        let homes: Vec<(String, String)> = capture
            .iter()
            .map(|c| (converted.report.tensors.get(c).map_or_else(|| c.clone(), |h| h.name.clone()), c.clone()))
            .collect();
        let inner_capture: Vec<String> = homes.iter().map(|(h, _)| h.clone()).collect();
        let mut inner = TractRunner::named_with(
            &emulated_model,
            &inner_capture,
            "cpu-fp16",
            "--candidate saved:PATH with TensorRT's own outputs",
            ieee,
        );
        // Tensors the plan made FP16 come back under their original names.
        inner.report_as(homes.iter().map(|(_, original)| original.clone()).collect());
        let settings = crate::runner::RunnerSettings {
            tf32: Some(if tf32 { "on" } else { "off" }.into()),
            tf32_source: Some(if opts.tf32.is_some() { "--tf32" } else { "default" }.into()),
            ..crate::runner::RunnerSettings::default()
        };
        Ok(CpuFp16Runner { inner, _dir: dir, emulated_path: path, report: converted.report, settings })
    }
}

impl Runner for CpuFp16Runner {
    fn name(&self) -> &'static str {
        "cpu-fp16"
    }

    fn version(&self) -> String {
        let tf32 =
            if self.settings.tf32.as_deref() == Some("on") { ", TF32 inputs to FP32 MatMul/Gemm/Conv" } else { "" };
        format!("tract {} (FP32 compute, FP16 storage{tf32})", super::tract::VERSION)
    }

    fn settings(&self) -> Option<crate::runner::RunnerSettings> {
        Some(self.settings.clone())
    }

    fn conversion(&self) -> Option<precision::RangeConversion> {
        Some(self.report.range_conversion())
    }

    fn run(&mut self, inputs: &Tensors) -> Result<RunOutput> {
        self.inner.run(inputs)
    }

    fn streams(&self) -> bool {
        true
    }

    fn prepare(&mut self, iterations: &[Tensors], progress: &mut dyn FnMut(crate::run::Progress)) -> Result<()> {
        self.inner.prepare(iterations, progress)
    }

    fn run_streamed(&mut self, inputs: &Tensors, sink: &mut dyn TensorSink) -> Result<StreamedRun> {
        self.inner.run_streamed(inputs, sink)
    }
}
