//! `trtlens predict`: which nodes FP16 will hurt, judged from FP32 reference runs alone.
//!
//! Per node, the reference magnitudes of its float inputs and outputs (every iteration of the run)
//! and of the initializers and `Constant`s it reads are checked against the FP16 range and against
//! `ModelOpt` `AutoCast`-like thresholds: `data_max` for activations (512 by default) and `init_max`
//! for stored values (65504). What exceeds is *at risk*, except the values that are meant to be huge:
//!
//! * attention masks: a large negative constant (−1e9, `torch.finfo(float32).min`) or a tensor made
//!   from one, reaching a `Softmax` only through mask arithmetic (`Add`, `Where`, `Mul`, `Sub`,
//!   `Cast`, reshapes). FP16 saturates it (−65504) or rounds it to −inf; `exp` of either is 0 like
//!   `exp(−1e9)`. Under `--out-of-range ieee` the `Mul` of `(1 − mask) · −inf` gives `0 · −inf = NaN`:
//!   that `Mul` stays at risk.
//! * clamps: `Clip`/`Min`/`Max` bounds at or beyond ±65504 clamp nothing FP16 can hold.
//!
//! Those are listed under `benign` with the reason. The fix for a tensor at risk is an FP32
//! *island*: its producer and every node reading it (under strong typing an FP32 node's output is
//! cast back to FP16 for each FP16 reader); for a stored value, the nodes reading it.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::plan::{OutOfRangePolicy, Override, Plan, Precision, Reason, Selector};
use crate::compare::metrics::{TensorRef, json_f64, reference_stats};
use crate::error::Result;
use crate::model::Model;
use crate::model::graph::{Graph, TensorKind};

/// Largest finite FP16 value.
pub const FP16_MAX: f64 = 65504.0;
/// Smallest positive FP16 subnormal (2^-24); non-zero values below half of it round to 0.
pub const FP16_MIN_SUBNORMAL: f64 = 5.960_464_477_539_063e-8;
/// Smallest positive normal FP16 value (2^-14).
pub const FP16_MIN_NORMAL: f64 = 6.103_515_625e-5;
/// `AutoCast`'s default `data_max`.
pub const DEFAULT_DATA_MAX: f64 = 512.0;
/// `AutoCast`'s default `init_max` (the FP16 maximum).
pub const DEFAULT_INIT_MAX: f64 = FP16_MAX;
/// Magnitude from which a negative value counts as a mask value (−1e4 and below: −1e9, −3.4e38, −65504).
const MASK_MAGNITUDE: f64 = 1e4;

/// Thresholds and the conversion policy the prediction assumes.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RiskOptions {
    /// Activations (node inputs/outputs) whose reference |x| exceeds this are at risk.
    pub data_max: f64,
    /// Initializers/`Constant`s whose |x| exceeds this are at risk.
    pub init_max: f64,
    /// How the conversion stores out-of-range initializers (decides what a mask constant becomes).
    pub policy: OutOfRangePolicy,
}

impl Default for RiskOptions {
    fn default() -> RiskOptions {
        RiskOptions { data_max: DEFAULT_DATA_MAX, init_max: DEFAULT_INIT_MAX, policy: OutOfRangePolicy::Saturate }
    }
}

/// Why a tensor is at risk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RiskKind {
    /// Reference values above 65504: inf in FP16.
    Overflow,
    /// A stored value FP16 turns into ±inf that a `Mul` multiplies by 0: NaN.
    Nan,
    /// Every non-zero reference value is below the smallest FP16 subnormal: 0 in FP16.
    Underflow,
    /// An initializer/`Constant` above `init_max`.
    InitMax,
    /// An activation above `data_max` (within the FP16 range).
    DataMax,
}

impl RiskKind {
    /// True for kinds that break FP16 for sure (overflow, NaN, underflow), false for threshold-only
    /// flags (`data_max`, `init_max` within range).
    #[must_use]
    pub fn certain(self) -> bool {
        matches!(self, RiskKind::Overflow | RiskKind::Nan | RiskKind::Underflow)
    }
}

/// A tensor FP16 will hurt, with the node it is attributed to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AtRisk {
    /// The node: the producer of an activation, the reader of a stored value or graph input.
    pub node: String,
    /// The tensor.
    pub tensor: String,
    /// One line: what the values are and what FP16 does to them.
    pub reason: String,
    /// Largest finite |x| in the reference (over every iteration).
    #[serde(with = "json_f64")]
    pub reference_abs_max: f64,
    /// The kind of risk.
    pub kind: RiskKind,
    /// Iterations in which it exceeds (empty for stored values).
    pub iterations: Vec<usize>,
    /// Largest finite |x| per iteration (empty for stored values).
    pub per_iteration_abs_max: Vec<f64>,
    /// The FP32 island that fixes it: the producer and every reader (stored values: the readers).
    pub island: Vec<String>,
}

/// A tensor whose out-of-range values are meant to be so (masks, clamps).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Benign {
    /// The node (producer of an activation, reader of a stored value).
    pub node: String,
    /// The tensor.
    pub tensor: String,
    /// Why it is harmless.
    pub reason: String,
}

/// What `trtlens predict` finds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    /// Tensors FP16 will hurt, worst kinds first, then in topological order.
    pub at_risk: Vec<AtRisk>,
    /// Out-of-range tensors that are meant to be (masks, clamps).
    pub benign: Vec<Benign>,
    /// The thresholds and policy used.
    pub options: RiskOptions,
    /// Iterations of the reference run examined.
    pub iterations: usize,
}

impl Prediction {
    /// Every node of every island, sorted by name.
    #[must_use]
    pub fn nodes(&self) -> BTreeSet<String> {
        self.at_risk.iter().flat_map(|a| a.island.iter().cloned()).collect()
    }

    /// Nodes of the islands of the certain risks only (overflow, NaN, underflow).
    #[must_use]
    pub fn certain_nodes(&self) -> BTreeSet<String> {
        self.at_risk.iter().filter(|a| a.kind.certain()).flat_map(|a| a.island.iter().cloned()).collect()
    }

    /// `base` with every island node kept FP32 (reason `prediction`).
    #[must_use]
    pub fn plan(&self, base: &Plan) -> Plan {
        let mut plan = base.clone();
        for n in self.nodes() {
            let why: Vec<&str> =
                self.at_risk.iter().filter(|a| a.island.contains(&n)).map(|a| a.tensor.as_str()).take(3).collect();
            plan.overrides.push(Override {
                selector: Selector::Node(n),
                precision: Precision::Fp32,
                reason: Reason::Prediction,
                note: Some(format!("predict: island of {}", why.join(", "))),
            });
        }
        plan
    }
}

/// Ops a mask may pass through on its way to the `Softmax`.
const MASK_PATH_OPS: &[&str] = &[
    "Add",
    "Sub",
    "Mul",
    "Where",
    "Cast",
    "Reshape",
    "Unsqueeze",
    "Squeeze",
    "Expand",
    "Transpose",
    "Identity",
    "Concat",
    "Slice",
    "Div",
    "Tile",
    "Max",
];

/// The ops whose input a mask is meant for.
const SOFTMAX_OPS: &[&str] = &["Softmax", "LogSoftmax"];

/// True when every path from `tensor` reaches a `Softmax` through mask arithmetic only.
fn reaches_softmax(g: &Graph, tensor: &str, depth: usize) -> bool {
    if depth > 8 {
        return false;
    }
    let Some(info) = g.tensor(tensor) else { return false };
    if info.is_output || info.consumers.is_empty() {
        return false;
    }
    info.consumers.iter().all(|&c| {
        let n = &g.nodes[c];
        if SOFTMAX_OPS.contains(&n.op_type.as_str()) {
            return true;
        }
        MASK_PATH_OPS.contains(&n.op_type.as_str())
            && n.outputs.iter().filter(|o| !o.is_empty()).all(|o| reaches_softmax(g, o, depth + 1))
    })
}

/// Range facts of one tensor (over every iteration, or of a stored value).
#[derive(Debug, Clone, Default)]
struct Range {
    min: f64,
    max: f64,
    abs_max: f64,
    overflow: u64,
    underflow: u64,
    per_it: Vec<f64>,
    over_its: Vec<usize>,
    has_zero: bool,
}

fn merge(r: &mut Range, s: &crate::compare::metrics::RangeStats, it: usize, threshold: f64) {
    let fin = |v: f64, d: f64| if v.is_nan() { d } else { v };
    r.min = r.min.min(fin(s.min, f64::INFINITY));
    r.max = r.max.max(fin(s.max, f64::NEG_INFINITY));
    r.abs_max = r.abs_max.max(fin(s.abs_max, 0.0));
    r.overflow += s.fp16_overflow;
    r.underflow += s.fp16_underflow;
    r.per_it.push(fin(s.abs_max, 0.0));
    if fin(s.abs_max, 0.0) > threshold {
        r.over_its.push(it);
    }
}

fn new_range() -> Range {
    Range { min: f64::INFINITY, max: f64::NEG_INFINITY, ..Range::default() }
}

/// True when every non-zero value is below the smallest FP16 subnormal.
fn all_flush(r: &Range) -> bool {
    r.underflow > 0 && r.abs_max < FP16_MIN_SUBNORMAL
}

/// Predict from a reference run (`run` made from `model`, its control-flow specialization applied).
pub fn predict(model: &Model, run: &crate::store::RunDir, opts: &RiskOptions) -> Result<Prediction> {
    let g = &model.graph;
    // Activations and graph inputs, over every iteration.
    let mut ranges: BTreeMap<String, Range> = BTreeMap::new();
    for it in 0..run.iterations() {
        for mapped in [run.tensors(it)?, run.inputs(it)?] {
            for name in mapped.names() {
                let Some(v) = mapped.view(name) else { continue };
                if !v.dtype.is_float() {
                    continue;
                }
                let t = TensorRef::new(v.dtype, v.shape, v.data);
                let s = reference_stats(t);
                let r = ranges.entry(name.clone()).or_insert_with(new_range);
                merge(r, &s, it, opts.data_max);
                let read_by_mul =
                    g.tensor(name).is_some_and(|t| t.consumers.iter().any(|&c| g.nodes[c].op_type == "Mul"));
                if read_by_mul && !r.has_zero {
                    r.has_zero = (0..s.total as usize).any(|i| crate::tensor::element_f64(v.dtype, v.data, i) == 0.0);
                }
            }
        }
    }
    // Stored values: initializers and Constant outputs.
    let mut stored: BTreeMap<String, Range> = BTreeMap::new();
    let base = model.base_dir();
    for t in &model.graph_proto().initializer {
        let value = crate::model::tensor_proto::to_tensor(t, Some(&base))?;
        if value.dtype().is_float() {
            stored.insert(t.tensor_name().to_string(), stored_range(&value.to_f64_vec()));
        }
    }
    for (i, n) in g.nodes.iter().enumerate() {
        if !n.is_constant() {
            continue;
        }
        let proto = &model.graph_proto().node[g.nodes[i].proto_index];
        if let Ok((_, values)) = super::convert::constant_values(model, proto) {
            let values: Vec<f64> = values.into_iter().map(f64::from).collect();
            for o in n.outputs.iter().filter(|o| !o.is_empty()) {
                stored.insert(o.clone(), stored_range(&values));
            }
        }
    }

    let mut at_risk = Vec::new();
    let mut benign = Vec::new();
    let order: BTreeMap<&str, usize> = g.captured().into_iter().enumerate().map(|(i, n)| (n, i)).collect();

    // Activations (and graph inputs).
    for (name, r) in &ranges {
        let Some(info) = g.tensor(name) else { continue };
        if info.kind == TensorKind::Initializer {
            continue;
        }
        let producer = info.producer.map(|p| g.nodes[p].display_name());
        let readers: Vec<String> = info.consumers.iter().map(|&c| g.nodes[c].display_name()).collect();
        let node = producer.clone().or_else(|| readers.first().cloned()).unwrap_or_else(|| name.clone());
        let mut island: Vec<String> = producer.iter().cloned().chain(readers.iter().cloned()).collect();
        island.dedup();
        let kind = if r.overflow > 0 {
            Some(RiskKind::Overflow)
        } else if all_flush(r) {
            Some(RiskKind::Underflow)
        } else if r.abs_max > opts.data_max {
            Some(RiskKind::DataMax)
        } else {
            None
        };
        let Some(kind) = kind else { continue };
        if kind != RiskKind::Underflow
            && r.max <= opts.data_max
            && r.min <= -MASK_MAGNITUDE
            && reaches_softmax(g, name, 0)
        {
            benign.push(Benign {
                node,
                tensor: name.clone(),
                reason: format!(
                    "attention mask: min {:.4e} reaches a Softmax through mask arithmetic; FP16 stores it as -65504 or -inf, and exp() of either is 0 like exp({:.3e})",
                    r.min, r.min
                ),
            });
            continue;
        }
        let reason = match kind {
            RiskKind::Overflow => format!(
                "reference |x| max {:.4e} > 65504 (FP16 max): {} value(s) become inf in FP16",
                r.abs_max, r.overflow
            ),
            RiskKind::Underflow => format!(
                "every non-zero reference value is below {FP16_MIN_SUBNORMAL:.3e} (|x| max {:.3e}): 0 in FP16",
                r.abs_max
            ),
            _ => format!("reference |x| max {:.4e} > --data-max {}", r.abs_max, opts.data_max),
        };
        let iterations = match kind {
            RiskKind::Underflow => (0..r.per_it.len()).collect(),
            RiskKind::Overflow => r.per_it.iter().enumerate().filter(|(_, v)| **v > FP16_MAX).map(|(i, _)| i).collect(),
            _ => r.over_its.clone(),
        };
        at_risk.push(AtRisk {
            node,
            tensor: name.clone(),
            reason,
            reference_abs_max: r.abs_max,
            kind,
            iterations,
            per_iteration_abs_max: r.per_it.clone(),
            island,
        });
    }

    // Stored values, per reader.
    for (name, r) in &stored {
        let Some(info) = g.tensor(name) else { continue };
        let over = r.abs_max > opts.init_max;
        let beyond = r.abs_max > FP16_MAX;
        let flush = all_flush(r);
        if !(over || flush) {
            continue;
        }
        for &c in &info.consumers {
            let reader = &g.nodes[c];
            let rname = reader.display_name();
            if flush {
                let became = if opts.policy == OutOfRangePolicy::Ieee { "0" } else { "5.96e-8 (saturated)" };
                at_risk.push(stored_risk(
                    &rname,
                    name,
                    r,
                    RiskKind::Underflow,
                    format!("stored value(s) |x| max {:.3e} below the FP16 subnormal range become {became}", r.abs_max),
                ));
                continue;
            }
            // Clamp bounds.
            let clamp = matches!(reader.op_type.as_str(), "Clip" | "Min" | "Max")
                && (reader.op_type != "Clip" || reader.inputs.iter().skip(1).any(|i| i == name));
            if clamp && beyond {
                benign.push(Benign {
                    node: rname,
                    tensor: name.clone(),
                    reason: format!(
                        "clamp bound {:.4e} at or beyond the FP16 range: FP16 saturates it to ±65504, it clamps nothing FP16 holds",
                        if r.max.abs() >= r.min.abs() { r.max } else { r.min }
                    ),
                });
                continue;
            }
            let mask = r.max <= opts.data_max && r.min <= -MASK_MAGNITUDE;
            if mask && (reaches_softmax(g, name, 0) || reader_reaches_softmax(g, c)) {
                let ieee_nan =
                    opts.policy == OutOfRangePolicy::Ieee && beyond && reader.op_type == "Mul" && {
                        // The other factor holds zeros: 0 * -inf = NaN.
                        reader.inputs.iter().filter(|i| *i != name).any(|o| {
                            ranges.get(o).is_some_and(|x| x.has_zero) || stored.get(o).is_some_and(|x| x.has_zero)
                        })
                    };
                if ieee_nan {
                    at_risk.push(stored_risk(
                        &rname,
                        name,
                        r,
                        RiskKind::Nan,
                        format!(
                            "mask constant {:.4e} is -inf in FP16 under --out-of-range ieee, and the other factor of this Mul holds zeros: 0 * -inf = NaN",
                            r.min
                        ),
                    ));
                } else {
                    let became = match opts.policy {
                        OutOfRangePolicy::Ieee if beyond => "-inf",
                        OutOfRangePolicy::KeepFp32 if beyond => "kept FP32 by --out-of-range keep-fp32, -inf once cast",
                        _ if beyond => "-65504 (saturated)",
                        _ => "itself",
                    };
                    benign.push(Benign {
                        node: rname,
                        tensor: name.clone(),
                        reason: format!(
                            "attention mask constant {:.4e} (FP16: {became}) reaches a Softmax through mask arithmetic: exp() of it is 0 either way",
                            r.min
                        ),
                    });
                }
                continue;
            }
            if opts.policy == OutOfRangePolicy::KeepFp32 && beyond {
                continue; // the conversion keeps this reader FP32 itself
            }
            let became = match opts.policy {
                OutOfRangePolicy::Ieee if beyond => "±inf in FP16 (--out-of-range ieee)",
                _ if beyond => "saturated to ±65504 in FP16",
                _ => "within FP16 but above --init-max",
            };
            at_risk.push(stored_risk(
                &rname,
                name,
                r,
                RiskKind::InitMax,
                format!("stored value |x| max {:.4e} > --init-max {}: {became}", r.abs_max, opts.init_max),
            ));
        }
    }
    let pos = |a: &AtRisk| {
        g.nodes
            .iter()
            .position(|n| n.display_name() == a.node)
            .or_else(|| order.get(a.tensor.as_str()).copied())
            .unwrap_or(usize::MAX)
    };
    at_risk.sort_by(|a, b| a.kind.cmp(&b.kind).then(pos(a).cmp(&pos(b))).then(a.tensor.cmp(&b.tensor)));
    Ok(Prediction { at_risk, benign, options: *opts, iterations: run.iterations() })
}

/// True when the outputs of node `c` reach a `Softmax` through mask arithmetic.
fn reader_reaches_softmax(g: &Graph, c: usize) -> bool {
    let n = &g.nodes[c];
    (MASK_PATH_OPS.contains(&n.op_type.as_str()) || SOFTMAX_OPS.contains(&n.op_type.as_str()))
        && n.outputs.iter().filter(|o| !o.is_empty()).all(|o| reaches_softmax(g, o, 1))
}

fn stored_risk(node: &str, tensor: &str, r: &Range, kind: RiskKind, reason: String) -> AtRisk {
    AtRisk {
        node: node.to_string(),
        tensor: tensor.to_string(),
        reason,
        reference_abs_max: r.abs_max,
        kind,
        iterations: vec![],
        per_iteration_abs_max: vec![],
        island: vec![node.to_string()],
    }
}

fn stored_range(values: &[f64]) -> Range {
    let mut r = new_range();
    for &v in values {
        if !v.is_finite() {
            continue;
        }
        r.min = r.min.min(v);
        r.max = r.max.max(v);
        r.abs_max = r.abs_max.max(v.abs());
        if v.abs() > FP16_MAX {
            r.overflow += 1;
        }
        if v != 0.0 && v.abs() < FP16_MIN_SUBNORMAL {
            r.underflow += 1;
        }
        if v == 0.0 {
            r.has_zero = true;
        }
    }
    r
}

impl std::fmt::Display for Prediction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let o = &self.options;
        writeln!(
            f,
            "prediction from {} reference iteration(s): --data-max {} --init-max {} --out-of-range {}",
            self.iterations, o.data_max, o.init_max, o.policy
        )?;
        if self.at_risk.is_empty() {
            writeln!(f, "at risk: none")?;
        } else {
            writeln!(f, "at risk ({}):", self.at_risk.len())?;
            for a in &self.at_risk {
                writeln!(f, "  {:<9} {}  tensor {}", kind_name(a.kind), a.node, a.tensor)?;
                writeln!(f, "            {}", a.reason)?;
                if a.per_iteration_abs_max.len() > 1 {
                    let per: Vec<String> = a
                        .per_iteration_abs_max
                        .iter()
                        .enumerate()
                        .map(|(i, v)| format!("{i}: {v:.4e}{}", if a.iterations.contains(&i) { "*" } else { "" }))
                        .collect();
                    writeln!(f, "            |x| max per iteration: {}", per.join(", "))?;
                }
                writeln!(f, "            island: {}", a.island.join(", "))?;
            }
        }
        if !self.benign.is_empty() {
            writeln!(f, "benign ({}):", self.benign.len())?;
            for b in &self.benign {
                writeln!(f, "  {}  tensor {}", b.node, b.tensor)?;
                writeln!(f, "            {}", b.reason)?;
            }
        }
        let nodes = self.nodes();
        writeln!(f, "islands: {} node(s) to keep FP32{}", nodes.len(), if nodes.is_empty() { "" } else { ":" })?;
        for n in &nodes {
            writeln!(f, "  {n}")?;
        }
        Ok(())
    }
}

/// Short name of a risk kind.
#[must_use]
pub fn kind_name(k: RiskKind) -> &'static str {
    match k {
        RiskKind::Overflow => "overflow",
        RiskKind::Nan => "nan",
        RiskKind::Underflow => "underflow",
        RiskKind::InitMax => "init_max",
        RiskKind::DataMax => "data_max",
    }
}
