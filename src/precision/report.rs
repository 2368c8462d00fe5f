//! What a Cast rewrite did: nodes in FP16, nodes kept FP32 and why, Casts inserted, initializers
//! converted (with the values FP16 cannot hold), and where each original tensor's value lives in
//! the rewritten model.

use std::collections::BTreeMap;
use std::fmt;

use half::f16;
use serde::{Deserialize, Serialize};

use super::plan::OutOfRangePolicy;
use crate::model::proto::data_type;

/// Largest finite FP16 value.
pub const FP16_MAX: f32 = 65504.0;
/// Smallest positive FP16 value (subnormal, 2^-24).
pub const FP16_MIN_SUBNORMAL: f32 = 5.960_464_5e-8;

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
    /// `--out-of-range keep-fp32`: the node reads an initializer or `Constant` holding a value above
    /// 65504, which it reads unchanged in FP32.
    OutOfRangeConstant,
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
            KeepReason::OutOfRangeConstant => "reads a constant FP16 cannot hold",
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

/// What the out-of-range policy did with one initializer or `Constant` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RangeAction {
    /// Stored FP16 with the out-of-range values saturated: ±65504 above the range, ± the smallest
    /// subnormal (5.96e-8) below it (policies `saturate`, and `keep-fp32` for values below the range).
    Saturated,
    /// Left FP32, and every node that would have read it in FP16 kept FP32 (policy `keep-fp32`).
    KeptFp32,
    /// Stored FP16 rounded to nearest even, nothing else: ±inf at |v| ≥ 65520, 0 at |v| ≤ 2.98e-8
    /// (policy `ieee`).
    Ieee,
}

impl RangeAction {
    /// `saturated`, `kept_fp32` or `ieee`.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            RangeAction::Saturated => "saturated",
            RangeAction::KeptFp32 => "kept_fp32",
            RangeAction::Ieee => "ieee",
        }
    }
}

/// An initializer or `Constant` value holding values FP16 cannot represent (finite |v| > 65504, or
/// non-zero |v| below the smallest FP16 subnormal), and what the out-of-range policy did with them.
/// NaN and ±inf are not out of range (FP16 holds them) and are stored as they are.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutOfRange {
    /// Original name (the initializer, or the `Constant` node's output).
    pub name: String,
    /// `initializer` or `constant`.
    pub kind: String,
    /// Element count.
    pub elements: usize,
    /// Largest finite |value| (original FP32 value).
    pub max_abs: f64,
    /// Finite values with |v| > 65504.
    pub above_max: usize,
    /// Non-zero values with |v| below the smallest FP16 subnormal (5.96e-8).
    #[serde(default)]
    pub below_min: usize,
    /// Finite values IEEE rounding turns into ±inf (|v| ≥ 65520), whatever the policy did.
    pub to_inf: usize,
    /// Non-zero values IEEE rounding turns into 0 (|v| ≤ 2.98e-8), whatever the policy did.
    pub to_zero: usize,
    /// What the policy did.
    pub action: RangeAction,
    /// Values the policy changed: `above_max + below_min` when stored FP16 (saturated or rounded),
    /// 0 when kept FP32.
    pub changed: usize,
    /// What the changed values became in FP16, ascending and without repeats (`"-65504"`,
    /// `"5.9604645e-8"`, `"-inf"`, `"0"`); empty when kept FP32.
    #[serde(default)]
    pub became: Vec<String>,
    /// `keep-fp32`: the nodes kept FP32 because they read this value.
    #[serde(default)]
    pub readers_kept_fp32: Vec<String>,
}

/// A value as short text: `inf`, `-inf`, `0`, `-0`, `65504`, `5.9604645e-8`.
fn value_text(v: f32) -> String {
    if v.is_infinite() {
        if v > 0.0 { "inf".into() } else { "-inf".into() }
    } else if v == 0.0 {
        if v.is_sign_negative() { "-0".into() } else { "0".into() }
    } else if (1e-3..1e6).contains(&v.abs()) {
        format!("{v}")
    } else {
        format!("{v:e}")
    }
}

/// Is `v` a value FP16 cannot hold (finite and above 65504, or non-zero below the smallest subnormal)?
fn out_of_range(v: f32) -> bool {
    v.is_finite() && (v.abs() > FP16_MAX || (v != 0.0 && v.abs() < FP16_MIN_SUBNORMAL))
}

impl OutOfRange {
    /// Range statistics of `values` (action [`RangeAction::Ieee`], nothing changed yet), `None` when
    /// FP16 holds every value (up to rounding).
    #[must_use]
    pub fn check(name: &str, kind: &str, values: &[f32]) -> Option<OutOfRange> {
        let mut r = OutOfRange {
            name: name.to_string(),
            kind: kind.to_string(),
            elements: values.len(),
            max_abs: 0.0,
            above_max: 0,
            below_min: 0,
            to_inf: 0,
            to_zero: 0,
            action: RangeAction::Ieee,
            changed: 0,
            became: Vec::new(),
            readers_kept_fp32: Vec::new(),
        };
        for &v in values {
            if !v.is_finite() {
                continue;
            }
            r.max_abs = r.max_abs.max(f64::from(v.abs()));
            if v.abs() > FP16_MAX {
                r.above_max += 1;
            } else if v != 0.0 && v.abs() < FP16_MIN_SUBNORMAL {
                r.below_min += 1;
            }
            let h = f16::from_f32(v);
            if h.is_infinite() {
                r.to_inf += 1;
            } else if v != 0.0 && h.to_f32() == 0.0 {
                r.to_zero += 1;
            }
        }
        (r.above_max > 0 || r.below_min > 0).then_some(r)
    }

    /// Prepare `values` for FP16 storage under `policy` (saturating them in place where it says
    /// so; the caller rounds to FP16) and account for what changed. `None` when FP16 holds every
    /// value. Values above the range reach this only under `saturate` and `ieee`: `keep-fp32`
    /// keeps them FP32 before (should one arrive anyway, it is saturated, and said so).
    pub fn store(
        name: &str,
        kind: &str,
        values: &mut [f32],
        policy: super::plan::OutOfRangePolicy,
    ) -> Option<OutOfRange> {
        use super::plan::OutOfRangePolicy;
        let mut r = OutOfRange::check(name, kind, values)?;
        r.action = match policy {
            OutOfRangePolicy::Ieee => RangeAction::Ieee,
            OutOfRangePolicy::Saturate | OutOfRangePolicy::KeepFp32 => RangeAction::Saturated,
        };
        let mut became: Vec<f32> = Vec::new();
        for v in values.iter_mut().filter(|v| out_of_range(**v)) {
            if r.action == RangeAction::Saturated {
                let limit = if v.abs() > FP16_MAX { FP16_MAX } else { FP16_MIN_SUBNORMAL };
                *v = limit.copysign(*v);
            }
            r.changed += 1;
            became.push(f16::from_f32(*v).to_f32());
        }
        became.sort_by(f32::total_cmp);
        became.dedup_by(|a, b| a.to_bits() == b.to_bits());
        r.became = became.into_iter().map(value_text).collect();
        Some(r)
    }

    /// One line saying what happened, e.g. `attn.causal_mask (initializer): 28 of 64 values outside
    /// the FP16 range (max |value| 1.0000e9) saturated to -65504`.
    #[must_use]
    pub fn describe(&self) -> String {
        let outside = self.above_max + self.below_min;
        let head = format!(
            "{} ({}): {outside} of {} values outside the FP16 range (max |value| {:.4e})",
            self.name, self.kind, self.elements, self.max_abs
        );
        match self.action {
            RangeAction::Saturated => format!("{head} saturated to {}", self.became.join(", ")),
            RangeAction::Ieee => format!("{head} rounded to {} (ieee: not clamped)", self.became.join(", ")),
            RangeAction::KeptFp32 => {
                format!("{head} kept FP32 with the nodes that read it: {}", self.readers_kept_fp32.join(", "))
            }
        }
    }
}

/// The out-of-range policy of a conversion and every initializer/`Constant` value it concerned: what
/// run manifests and compare reports carry for a candidate that converted the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RangeConversion {
    /// The policy.
    pub out_of_range: OutOfRangePolicy,
    /// Every initializer/`Constant` value FP16 cannot hold and what the policy did with it.
    pub values: Vec<OutOfRange>,
}

impl RangeConversion {
    /// Values stored as ±inf or 0 (policy `ieee`), the ones that can turn into NaN downstream.
    #[must_use]
    pub fn nonfinite_or_zero(&self) -> Vec<&OutOfRange> {
        self.values.iter().filter(|v| v.action == RangeAction::Ieee && v.to_inf + v.to_zero > 0).collect()
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
    /// The policy for initializer/`Constant` values outside the FP16 range.
    pub out_of_range_policy: OutOfRangePolicy,
    /// Every initializer/`Constant` value FP16 cannot hold, and what the policy did with it.
    pub out_of_range: Vec<OutOfRange>,
    /// Control-flow nodes whose bodies were left FP32.
    pub subgraphs_fp32: Vec<String>,
    /// Every tensor of the original main graph → where its value lives in the rewritten model.
    pub tensors: BTreeMap<String, TensorHome>,
}

impl ConvertReport {
    /// The policy and what it did, as run manifests and compare reports carry it.
    #[must_use]
    pub fn range_conversion(&self) -> RangeConversion {
        RangeConversion { out_of_range: self.out_of_range_policy, values: self.out_of_range.clone() }
    }

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
            "{} nodes FP16, {} kept FP32{}; {} casts inserted; {} initializers stored FP16; out-of-range {}",
            self.nodes_fp16.len(),
            self.nodes_fp32.len(),
            if by_reason.is_empty() { String::new() } else { format!(" ({})", by_reason.join(", ")) },
            self.casts.len(),
            self.initializers.len(),
            self.out_of_range_policy
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
        // Values above the range one by one; values only below it (common in trained weights) summed up.
        let big: Vec<&OutOfRange> =
            self.out_of_range.iter().filter(|r| r.above_max > 0 || r.action == RangeAction::KeptFp32).collect();
        for r in big.iter().take(SHOWN) {
            writeln!(f, "  range {}", r.describe())?;
        }
        if big.len() > SHOWN {
            writeln!(f, "  range ... and {} more values above 65504", big.len() - SHOWN)?;
        }
        let small: Vec<&OutOfRange> =
            self.out_of_range.iter().filter(|r| r.above_max == 0 && r.action != RangeAction::KeptFp32).collect();
        if !small.is_empty() {
            let values: usize = small.iter().map(|r| r.below_min).sum();
            let zero: usize = small.iter().map(|r| r.to_zero).sum();
            let names: Vec<&str> = small.iter().take(5).map(|r| r.name.as_str()).collect();
            let more = if small.len() > 5 { ", ..." } else { "" };
            let what = if small.iter().all(|r| r.action == RangeAction::Ieee) {
                format!("{zero} of them become 0 in FP16 (ieee: not clamped)")
            } else {
                "saturated to ±5.96e-8".to_string()
            };
            writeln!(
                f,
                "  range {} initializers/constants hold {values} non-zero values below the smallest FP16 subnormal, {what} ({}{more})",
                small.len(),
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
    fn range_check_counts() {
        let r =
            OutOfRange::check("w", "initializer", &[1.0, 70000.0, -1e9, 65510.0, 1e-12, 0.0, 4e-8, f32::NEG_INFINITY])
                .expect("out of range");
        assert_eq!((r.above_max, r.below_min, r.to_inf, r.to_zero), (3, 2, 2, 1));
        assert_eq!(r.max_abs, 1e9);
        assert!(OutOfRange::check("ok", "initializer", &[1.0, -65504.0, 0.0, f32::INFINITY, f32::NAN]).is_none());
    }

    #[test]
    fn policies_store_values() {
        use super::super::plan::OutOfRangePolicy;
        let original = [1.0, 70000.0, -3.402_823_5e38, 65510.0, 1e-12, -2e-8, 0.0, f32::NEG_INFINITY, f32::NAN];
        let mut v = original;
        let r = OutOfRange::store("w", "constant", &mut v, OutOfRangePolicy::Saturate).expect("out of range");
        assert_eq!(r.action, RangeAction::Saturated);
        assert_eq!(r.changed, 5);
        assert_eq!(&v[..7], &[1.0, 65504.0, -65504.0, 65504.0, FP16_MIN_SUBNORMAL, -FP16_MIN_SUBNORMAL, 0.0]);
        assert!(v[7] == f32::NEG_INFINITY && v[8].is_nan(), "NaN and inf stay");
        assert_eq!(r.became, ["-65504", "-5.9604645e-8", "5.9604645e-8", "65504"]);
        assert!(r.describe().contains("5 of 9 values outside the FP16 range"), "{}", r.describe());

        let mut v = original;
        let r = OutOfRange::store("w", "constant", &mut v, OutOfRangePolicy::Ieee).expect("out of range");
        assert_eq!(v.map(f32::to_bits)[..8], original.map(f32::to_bits)[..8], "ieee leaves the rounding to FP16");
        assert_eq!(r.became, ["-inf", "-0", "0", "65504", "inf"]);
        assert_eq!((r.action, r.changed), (RangeAction::Ieee, 5));
        assert!(r.describe().contains("not clamped"));
        assert!(OutOfRange::store("ok", "constant", &mut [1.0, 2.0], OutOfRangePolicy::Saturate).is_none());
    }
}
