//! What a Cast rewrite did: nodes in FP16, nodes kept FP32 and why, Casts inserted, initializers
//! converted (with the values FP16 cannot hold), and where each original tensor's value lives in
//! the rewritten model.

use std::collections::BTreeMap;
use std::fmt;

use half::f16;
use serde::Serialize;

use crate::model::proto::data_type;

/// Largest finite FP16 value.
pub const FP16_MAX: f32 = 65504.0;

/// Why a node stays FP32.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KeepReason {
    /// The plan says FP32 (its default or an override).
    Plan,
    /// The operator's type constraints do not admit float16 at the model's opset.
    OpRejectsFloat16,
    /// The node has no float32 data to convert (integer, bool or shape computations).
    NoFloatValues,
    /// If/Loop/Scan (or another node with subgraphs): the node and its bodies stay FP32.
    ControlFlow,
    /// The output type is fixed by an attribute (`Cast` `to`, `dtype`, ...): the node stays as written.
    AttributeTyped,
    /// Not a default-domain ONNX operator (custom domain or model-local function): types unknown.
    UnknownOp,
    /// The node takes or makes sequences, optionals or maps.
    NonTensorValues,
    /// A `Constant` follows its consumers: it is converted only when every reader is FP16.
    ConstantReadInFp32,
}

impl KeepReason {
    /// A short explanation.
    #[must_use]
    pub fn text(self) -> &'static str {
        match self {
            KeepReason::Plan => "plan keeps it FP32",
            KeepReason::OpRejectsFloat16 => "op does not accept float16",
            KeepReason::NoFloatValues => "no float outputs",
            KeepReason::ControlFlow => "control flow kept FP32",
            KeepReason::AttributeTyped => "output type set by an attribute",
            KeepReason::UnknownOp => "not an ONNX operator (types unknown)",
            KeepReason::NonTensorValues => "sequence/optional/map values",
            KeepReason::ConstantReadInFp32 => "constant read in FP32",
        }
    }
}

impl fmt::Display for KeepReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.text())
    }
}

/// A node that stays FP32.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KeptNode {
    /// Node name (display name for unnamed nodes).
    pub node: String,
    /// Op type.
    pub op_type: String,
    /// Why.
    pub reason: KeepReason,
    /// Details: the override, the type variable, the opset.
    pub detail: String,
}

/// A `Cast` node the rewrite added.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CastInserted {
    /// The Cast node's name.
    pub node: String,
    /// Tensor read.
    pub from: String,
    /// Tensor written.
    pub to: String,
    /// Element type written (`float16` or `float32`).
    pub dtype: &'static str,
}

/// An initializer (or `Constant` node value) stored as FP16.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InitializerConverted {
    /// Original name.
    pub name: String,
    /// Name of the FP16 data: the same name when converted in place, `NAME__fp16` when the FP32
    /// original is still read by FP32 nodes and kept.
    pub fp16_name: String,
    /// `initializer` or `constant`.
    pub kind: &'static str,
    /// Element count.
    pub elements: usize,
    /// True when the FP32 original is kept next to the FP16 copy.
    pub kept_fp32: bool,
}

/// An initializer whose values FP16 cannot hold. Values are never clamped: what FP16 rounds them
/// to (±inf above 65504, 0 below the smallest subnormal) is what the converted model holds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutOfRange {
    /// Original name.
    pub name: String,
    /// Largest finite |value|.
    pub max_abs: f64,
    /// Values with |v| > 65504.
    pub above_max: usize,
    /// Finite values that become ±inf in FP16 (|v| ≥ 65520).
    pub to_inf: usize,
    /// Non-zero values that become 0 in FP16 (|v| < 2.98e-8).
    pub to_zero: usize,
    /// Element count.
    pub elements: usize,
}

impl OutOfRange {
    /// Range statistics of `values`, `None` when FP16 holds all of them (up to rounding).
    #[must_use]
    pub fn check(name: &str, values: &[f32]) -> Option<OutOfRange> {
        let mut r = OutOfRange {
            name: name.to_string(),
            max_abs: 0.0,
            above_max: 0,
            to_inf: 0,
            to_zero: 0,
            elements: values.len(),
        };
        for &v in values {
            if !v.is_finite() {
                continue;
            }
            r.max_abs = r.max_abs.max(f64::from(v.abs()));
            if v.abs() > FP16_MAX {
                r.above_max += 1;
            }
            let h = f16::from_f32(v);
            if h.is_infinite() {
                r.to_inf += 1;
            } else if v != 0.0 && h.to_f32() == 0.0 {
                r.to_zero += 1;
            }
        }
        (r.above_max > 0 || r.to_inf > 0 || r.to_zero > 0).then_some(r)
    }
}

/// Where an original tensor's value lives in the rewritten model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TensorHome {
    /// Tensor holding the value as its producer computed it (the original name, except for graph
    /// outputs produced by FP16 nodes: `NAME__fp16`).
    pub name: String,
    /// Its ONNX element type (`None`: unknown or not a tensor).
    pub elem_type: Option<i32>,
}

impl TensorHome {
    /// True when the value is held in FP16.
    #[must_use]
    pub fn is_fp16(&self) -> bool {
        self.elem_type == Some(data_type::FLOAT16)
    }

    /// Its element type as a trtlens dtype, when trtlens can hold it.
    #[must_use]
    pub fn dtype(&self) -> Option<crate::tensor::DType> {
        self.elem_type.and_then(crate::tensor::DType::from_onnx)
    }
}

/// The full account of a rewrite.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ConvertReport {
    /// Nodes computing in FP16, in topological order.
    pub nodes_fp16: Vec<String>,
    /// Nodes kept FP32, in topological order, with the reason.
    pub nodes_fp32: Vec<KeptNode>,
    /// Casts inserted, in the order they appear in the rewritten graph.
    pub casts: Vec<CastInserted>,
    /// Initializers and Constant values stored as FP16.
    pub initializers: Vec<InitializerConverted>,
    /// Converted initializers holding values FP16 cannot represent (reported, never clamped).
    pub out_of_range: Vec<OutOfRange>,
    /// Control-flow nodes whose bodies were left FP32.
    pub subgraphs_fp32: Vec<String>,
    /// Every tensor of the original main graph → where its value lives in the rewritten model.
    pub tensors: BTreeMap<String, TensorHome>,
}

impl ConvertReport {
    /// Kept-FP32 node counts per reason.
    #[must_use]
    pub fn kept_by_reason(&self) -> BTreeMap<KeepReason, usize> {
        let mut m = BTreeMap::new();
        for k in &self.nodes_fp32 {
            *m.entry(k.reason).or_default() += 1;
        }
        m
    }
}

/// Per-node lines shown at most.
const SHOWN: usize = 20;

impl fmt::Display for ConvertReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let by_reason: Vec<String> = self.kept_by_reason().iter().map(|(r, n)| format!("{n} {r}")).collect();
        writeln!(
            f,
            "{} nodes FP16, {} kept FP32{}; {} casts inserted; {} initializers stored FP16",
            self.nodes_fp16.len(),
            self.nodes_fp32.len(),
            if by_reason.is_empty() { String::new() } else { format!(" ({})", by_reason.join(", ")) },
            self.casts.len(),
            self.initializers.len()
        )?;
        // Nodes whose FP32 is a choice or a limit worth seeing (not integer/shape nodes or Casts).
        let notable: Vec<&KeptNode> = self
            .nodes_fp32
            .iter()
            .filter(|k| {
                !matches!(
                    k.reason,
                    KeepReason::NoFloatValues | KeepReason::AttributeTyped | KeepReason::ConstantReadInFp32
                )
            })
            .collect();
        for k in notable.iter().take(SHOWN) {
            writeln!(f, "  fp32  {} ({}): {}{}", k.node, k.op_type, k.reason, detail(&k.detail))?;
        }
        if notable.len() > SHOWN {
            writeln!(f, "  fp32  ... and {} more", notable.len() - SHOWN)?;
        }
        for r in self.out_of_range.iter().filter(|r| r.above_max > 0) {
            writeln!(
                f,
                "  range {}: max |value| {:.4e}; {} of {} values above 65504, {} become inf in FP16 (not clamped)",
                r.name, r.max_abs, r.above_max, r.elements, r.to_inf
            )?;
        }
        let underflow: Vec<&OutOfRange> = self.out_of_range.iter().filter(|r| r.to_zero > 0).collect();
        if !underflow.is_empty() {
            let values: usize = underflow.iter().map(|r| r.to_zero).sum();
            let names: Vec<&str> = underflow.iter().take(5).map(|r| r.name.as_str()).collect();
            let more = if underflow.len() > 5 { ", ..." } else { "" };
            writeln!(
                f,
                "  range {} initializers hold {values} non-zero values that become 0 in FP16 ({}{more})",
                underflow.len(),
                names.join(", ")
            )?;
        }
        for s in &self.subgraphs_fp32 {
            writeln!(f, "  body  {s}: subgraphs left FP32")?;
        }
        Ok(())
    }
}

fn detail(d: &str) -> String {
    if d.is_empty() { String::new() } else { format!(" ({d})") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_check_counts_without_clamping() {
        let r = OutOfRange::check("w", &[1.0, 70000.0, -1e9, 65510.0, 1e-12, 0.0]).expect("out of range");
        assert_eq!((r.above_max, r.to_inf, r.to_zero), (3, 2, 1));
        assert_eq!(r.max_abs, 1e9);
        assert!(OutOfRange::check("ok", &[1.0, -65504.0, 0.0]).is_none());
    }
}
