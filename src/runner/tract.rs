//! The embedded reference runner: tract-onnx, nothing to install.
//!
//! Every tensor to capture is declared a model output (`select_outputs_by_name` on the ONNX output
//! names) before tract types and optimises the graph, so intermediates survive optimisation and come
//! back under their ONNX names. Plans are built per input signature (dtypes and shapes) and cached,
//! so iterations with the same shapes reuse the plan.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use tract_onnx::prelude::{
    Datum, DatumType, Framework, InferenceFact, InferenceModelExt, IntoRunnable, IntoTValue, TValue, Tensor as TTensor,
    TractResult, TypedModel, TypedRunnableModel, tvec,
};

use super::{NotCaptured, RunOutput, Runner, Tensors};
use crate::error::{Error, Result};
use crate::model::Model;
use crate::tensor::{DType, Tensor};

/// The tract version this binary was built with.
pub const VERSION: &str = env!("TRTLENS_TRACT_VERSION");

type Plan = Arc<TypedRunnableModel>;

/// tract-onnx runner.
pub struct TractRunner {
    path: PathBuf,
    inputs: Vec<String>,
    capture: Vec<String>,
    plans: HashMap<Vec<(DType, Vec<usize>)>, Plan>,
}

fn err(e: impl std::fmt::Display) -> Error {
    Error::runner("tract", e.to_string())
}

fn tract_err(e: &tract_onnx::prelude::TractError) -> Error {
    // `{:#}` prints the whole anyhow-style context chain on one line.
    Error::runner("tract", format!("{e:#}"))
}

impl TractRunner {
    /// Prepare a runner for `model` capturing `capture`.
    pub fn new(model: &Model, capture: &[String]) -> Result<TractRunner> {
        Ok(TractRunner {
            path: model.path.clone(),
            inputs: model.graph.inputs.clone(),
            capture: capture.to_vec(),
            plans: HashMap::new(),
        })
    }

    fn build(&self, inputs: &Tensors) -> TractResult<Plan> {
        let mut m = tract_onnx::onnx().model_for_path(&self.path)?;
        let outlets = m.input_outlets()?.to_vec();
        for (ix, outlet) in outlets.iter().enumerate() {
            let name = m.node(outlet.node).name.clone();
            let Some((_, t)) = inputs.iter().find(|(n, _)| *n == name) else {
                return Err(tract_onnx::prelude::TractError::msg(format!("no value for input '{name}'")));
            };
            if t.dtype() == DType::Bfloat16 {
                return Err(tract_onnx::prelude::TractError::msg(format!(
                    "input '{name}' is bfloat16, which tract does not support"
                )));
            }
            m.set_input_fact(ix, InferenceFact::dt_shape(datum_type(t.dtype()), t.shape()))?;
        }
        m.select_outputs_by_name(&self.capture)?;
        let typed: TypedModel = m.into_optimized()?;
        typed.into_runnable()
    }
}

/// tract's datum type for ours; tract has no bfloat16 (callers reject it first, it maps to F32 here).
fn datum_type(d: DType) -> DatumType {
    match d {
        DType::Float32 | DType::Bfloat16 => f32::datum_type(),
        DType::Float16 => half::f16::datum_type(),
        DType::Float64 => f64::datum_type(),
        DType::Int8 => i8::datum_type(),
        DType::Int16 => i16::datum_type(),
        DType::Int32 => i32::datum_type(),
        DType::Int64 => i64::datum_type(),
        DType::Uint8 => u8::datum_type(),
        DType::Uint16 => u16::datum_type(),
        DType::Uint32 => u32::datum_type(),
        DType::Uint64 => u64::datum_type(),
        DType::Bool => bool::datum_type(),
    }
}

fn from_dtype(d: DatumType) -> Option<DType> {
    DType::ALL.into_iter().filter(|x| *x != DType::Bfloat16).find(|x| datum_type(*x) == d)
}

fn typed<T: bytemuck::Pod + Datum>(t: &Tensor) -> TractResult<TTensor> {
    let v: Vec<T> = bytemuck::pod_collect_to_vec(t.bytes());
    TTensor::from_shape(t.shape(), &v)
}

/// Convert our tensor into a tract tensor (copying).
fn to_tract(t: &Tensor) -> TractResult<TTensor> {
    match t.dtype() {
        DType::Float32 => typed::<f32>(t),
        DType::Float16 => typed::<half::f16>(t),
        DType::Bfloat16 => {
            let v: Vec<f32> = t.to_f32_vec();
            TTensor::from_shape(t.shape(), &v)
        }
        DType::Float64 => typed::<f64>(t),
        DType::Int8 => typed::<i8>(t),
        DType::Int16 => typed::<i16>(t),
        DType::Int32 => typed::<i32>(t),
        DType::Int64 => typed::<i64>(t),
        DType::Uint8 => typed::<u8>(t),
        DType::Uint16 => typed::<u16>(t),
        DType::Uint32 => typed::<u32>(t),
        DType::Uint64 => typed::<u64>(t),
        DType::Bool => {
            let v: Vec<bool> = t.bytes().iter().map(|&b| b != 0).collect();
            TTensor::from_shape(t.shape(), &v)
        }
    }
}

/// Convert a tract tensor to ours; symbolic dims (`TDim`) become i64 when they are concrete.
fn from_tract(t: &TTensor) -> std::result::Result<Tensor, String> {
    let shape = t.shape().to_vec();
    if let Some(d) = from_dtype(t.datum_type()) {
        // bool is one byte holding 0 or 1 in tract as in ours.
        return Tensor::from_bytes(d, shape, t.as_bytes().to_vec()).map_err(|e| e.to_string());
    }
    if t.datum_type() == DatumType::TDim {
        let c = t.cast_to::<i64>().map_err(|e| format!("symbolic shape value ({e})"))?;
        return Tensor::from_bytes(DType::Int64, shape, c.as_bytes().to_vec()).map_err(|e| e.to_string());
    }
    Err(format!("element type {:?} cannot be stored", t.datum_type()))
}

impl Runner for TractRunner {
    fn name(&self) -> &'static str {
        "tract"
    }

    fn version(&self) -> String {
        VERSION.to_string()
    }

    fn run(&mut self, inputs: &Tensors) -> Result<RunOutput> {
        let sig: Vec<(DType, Vec<usize>)> = self
            .inputs
            .iter()
            .map(|n| super::find(inputs, n).map(|t| (t.dtype(), t.shape().to_vec())))
            .collect::<Option<_>>()
            .ok_or_else(|| err("an input of the model has no value"))?;
        if !self.plans.contains_key(&sig) {
            let plan = self.build(inputs).map_err(|e| tract_err(&e))?;
            self.plans.insert(sig.clone(), plan);
        }
        let plan = &self.plans[&sig];
        let plan_inputs: Vec<String> = {
            let m = plan.model();
            m.input_outlets().map_err(|e| tract_err(&e))?.iter().map(|o| m.node(o.node).name.clone()).collect()
        };
        let mut feed = tvec![];
        for name in &plan_inputs {
            let t = super::find(inputs, name).ok_or_else(|| err(format!("no value for input '{name}'")))?;
            let tt: TValue = to_tract(t).map_err(|e| tract_err(&e))?.into_tvalue();
            feed.push(tt);
        }
        let start = Instant::now();
        let outputs = plan.run(feed).map_err(|e| tract_err(&e))?;
        let seconds = start.elapsed().as_secs_f64();
        let mut out = RunOutput { seconds, ..RunOutput::default() };
        for (name, value) in self.capture.iter().zip(outputs.iter()) {
            match from_tract(value) {
                Ok(t) => out.tensors.push((name.clone(), t)),
                Err(reason) => out.not_captured.push(NotCaptured { name: name.clone(), reason }),
            }
        }
        Ok(out)
    }
}
