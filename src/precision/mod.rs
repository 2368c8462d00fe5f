//! Precision plans and the ONNX Cast rewrite.
//!
//! `TensorRT` 11 has no per-layer precision flags: a strongly typed network computes each layer in
//! the type of its inputs, so the way to choose FP16 or FP32 per node is to write the choice into
//! the ONNX graph as Cast nodes and FP16 initializers. This module does that:
//!
//! * [`plan`]: a [`Plan`] (default precision + overrides by node name, regex or op type), stored
//!   as TOML, resolved against a graph with a documented precedence.
//! * [`convert()`]: the rewrite, driven by the ONNX operator type constraints (`ops.rs`), with a
//!   [`ConvertReport`] of what was done and where every original tensor's value lives.
//! * [`export`]: the plan as `AutoCast` and `trtexec` (`TensorRT` ≤ 10) arguments.
//!
//! `docs/precision.md` describes the plan format, the per-op rules and the naming scheme.

mod convert;
mod decide;
pub mod emulate;
pub mod export;
pub(crate) mod names;
mod ops;
pub mod plan;
pub mod predict;
pub mod report;
pub mod risk;
pub mod tf32;

use prost::Message;

pub use convert::{Converted, convert};
pub(crate) use ops::{infer_types, tensor_elem};
pub use plan::{OutOfRangePolicy, Override, Plan, Precision, Reason, Selector};
pub use report::{
    CastInserted, ConvertReport, InitializerConverted, KeepReason, KeptNode, OutOfRange, RangeAction, RangeConversion,
    TensorHome,
};

use crate::error::Result;
use crate::model::Model;

/// [`convert()`] and encode: the rewritten model's bytes (deterministic: the same model and plan give
/// the same bytes) and the report.
pub fn convert_to_bytes(model: &Model, plan: &Plan) -> Result<(Vec<u8>, ConvertReport)> {
    let c = convert(model, plan)?;
    Ok((c.proto.encode_to_vec(), c.report))
}
