//! ONNX Runtime runner (placeholder, being written).
use super::{RunOutput, Runner, RunnerOptions, Tensors};
use crate::error::{Error, Result};
use crate::model::Model;

/// ONNX Runtime CPU runner.
pub struct OrtRunner;

impl OrtRunner {
    /// Load ONNX Runtime and prepare a session capturing `capture`.
    pub fn new(_model: &Model, _capture: &[String], _opts: &RunnerOptions) -> Result<OrtRunner> {
        Err(Error::runner("onnxruntime", "not implemented yet"))
    }
}

impl Runner for OrtRunner {
    fn name(&self) -> &'static str {
        "onnxruntime"
    }
    fn version(&self) -> String {
        String::new()
    }
    fn run(&mut self, _inputs: &Tensors) -> Result<RunOutput> {
        Err(Error::runner("onnxruntime", "not implemented yet"))
    }
}
