//! Introduced error: the error a node *makes*, apart from the error it *inherits*.
//!
//! A candidate tensor differs from the reference for two reasons: its node computed it in lower
//! precision, and its inputs already differed. To separate them, every node is run again by the
//! reference implementation (FP32) on the **candidate's own captured inputs**, and its output is
//! compared with the candidate's output: whatever differs was introduced by that node.
//!
//! All nodes are done in one run: the graph is cut at every float edge the candidate captured, so
//! each node reads its inputs from new graph inputs fed with the candidate's values (FP16 values
//! widened to the reference dtype), and its outputs are renamed so that nothing downstream reads
//! them. Integer and shape edges are not cut (they are exact on both sides), so shape arithmetic
//! still folds. One run of that model per iteration gives every node's reference output.

use std::collections::{BTreeMap, HashMap, HashSet};

use prost::Message;
use serde::{Deserialize, Serialize};

use super::metrics::{self, Outcome, TensorRef, Tolerance, json_f64};
use super::source::Side;
use crate::error::{Error, Result};
use crate::model::Model;
use crate::runner::{RunnerKind, RunnerOptions, Tensors};
use crate::tensor::{DType, Tensor};

/// Suffix of the renamed node outputs in the cut model.
const SUFFIX: &str = "__trtlens_introduced";

/// What one node introduced into one of its output tensors (worst iteration).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Introduced {
    /// Largest `|candidate − reference node on candidate inputs|` over finite pairs.
    pub max_abs: f64,
    /// `‖c − r‖ / ‖r‖` over finite pairs.
    pub rel_l2: f64,
    /// Elements out of tolerance.
    pub mismatches: u64,
    /// Elements non-finite in the candidate although the reference node gives a finite value there.
    pub nonfinite: u64,
    /// The iteration these numbers come from.
    pub iteration: usize,
}

impl Introduced {
    /// Ranking key: new non-finite values first, then mismatches, then relative L2.
    #[must_use]
    pub fn key(&self) -> (u64, u64, f64) {
        (self.nonfinite, self.mismatches, if self.rel_l2.is_nan() { 0.0 } else { self.rel_l2 })
    }

    /// True when the node introduced anything that fails the tolerance.
    #[must_use]
    pub fn fails(&self) -> bool {
        self.nonfinite > 0 || self.mismatches > 0
    }
}

/// One entry of the ranked list of the worst introducers in a report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Introducer {
    /// The node.
    pub node: String,
    /// Its output tensor.
    pub tensor: String,
    /// Op type.
    pub op_type: Option<String>,
    /// Largest introduced absolute error.
    #[serde(with = "json_f64")]
    pub introduced_max_abs: f64,
    /// Introduced relative L2 error.
    #[serde(with = "json_f64")]
    pub introduced_rel_l2: f64,
    /// Introduced mismatches.
    pub introduced_mismatches: u64,
    /// Non-finite values the node created.
    pub introduced_nonfinite: u64,
    /// Accumulated (end-to-end) max abs error of the same tensor, for contrast.
    #[serde(with = "json_f64")]
    pub accumulated_max_abs: f64,
}

/// The cut model: every node reads the candidate's captured float inputs.
struct Cut {
    proto: crate::model::proto::ModelProto,
    /// New graph inputs (original names) and the dtype each is fed in.
    fed: Vec<(String, DType)>,
    /// (renamed output, original tensor) for every float node output compared.
    outputs: Vec<(String, String)>,
}

fn cut_model(model: &Model, candidate: &HashMap<String, DType>, reference: &HashMap<String, DType>) -> Result<Cut> {
    let g = &model.graph;
    if g.nodes.iter().any(|n| !n.subgraph_attrs.is_empty()) {
        return Err(Error::usage("the graph keeps control-flow nodes (If/Loop/Scan) the runs did not inline"));
    }
    let mut proto = model.proto.clone();
    let Some(graph) = proto.graph.as_mut() else { return Err(Error::model(&model.path, "no graph")) };
    let produced: HashSet<String> =
        g.nodes.iter().filter(|n| !n.is_constant()).flat_map(|n| n.outputs.iter().cloned()).collect();
    let constant_out: HashSet<String> =
        g.nodes.iter().filter(|n| n.is_constant()).flat_map(|n| n.outputs.iter().cloned()).collect();
    let rename = |o: &str| format!("{o}{SUFFIX}");
    // A float edge the candidate captured is cut.
    let cut_dtype = |t: &str| -> Option<DType> {
        if !produced.contains(t) {
            return None;
        }
        let c = candidate.get(t)?;
        let r = reference.get(t).copied().unwrap_or(*c);
        (c.is_float() && r.is_float() && matches!(r, DType::Float32 | DType::Float16 | DType::Float64)).then_some(r)
    };
    let declared: HashMap<String, crate::model::proto::ValueInfoProto> =
        graph.value_info.iter().chain(&graph.output).map(|v| (v.name.clone().unwrap_or_default(), v.clone())).collect();
    let mut fed: Vec<(String, DType)> = Vec::new();
    let mut fed_set = HashSet::new();
    let mut outputs = Vec::new();
    for n in &mut graph.node {
        let constant = n.op_type.as_deref() == Some("Constant") && n.domain.as_deref().unwrap_or("").is_empty();
        if constant {
            continue;
        }
        for i in &mut n.input {
            if i.is_empty() || constant_out.contains(i.as_str()) {
                continue;
            }
            if let Some(dt) = cut_dtype(i) {
                if fed_set.insert(i.clone()) {
                    fed.push((i.clone(), dt));
                }
            } else if produced.contains(i.as_str()) {
                *i = rename(i);
            }
        }
        for o in &mut n.output {
            if o.is_empty() {
                continue;
            }
            if candidate.get(o.as_str()).is_some_and(|d| d.is_float()) {
                outputs.push((rename(o), o.clone()));
            }
            *o = rename(o);
        }
    }
    let elem = |d: DType| d.onnx();
    let mut inputs = graph.input.clone();
    for (name, dt) in &fed {
        let mut v = declared.get(name).cloned().unwrap_or_default();
        v.name = Some(name.clone());
        if let Some(t) = v.r#type.as_mut()
            && let Some(crate::model::proto::type_proto::Value::TensorType(tt)) = t.value.as_mut()
        {
            tt.elem_type = Some(elem(*dt));
            tt.shape = None;
        }
        if v.r#type.is_none() {
            v.r#type = Some(crate::model::proto::TypeProto {
                value: Some(crate::model::proto::type_proto::Value::TensorType(
                    crate::model::proto::type_proto::Tensor { elem_type: Some(elem(*dt)), shape: None },
                )),
                ..Default::default()
            });
        }
        inputs.push(v);
    }
    graph.input = inputs;
    graph.value_info.clear();
    graph.output = outputs
        .iter()
        .map(|(renamed, original)| {
            let mut v = declared.get(original).cloned().unwrap_or_default();
            v.name = Some(renamed.clone());
            v
        })
        .collect();
    Ok(Cut { proto, fed, outputs })
}

/// Convert a captured tensor to the dtype a cut input is fed in.
fn widen(v: &crate::store::TensorView<'_>, to: DType) -> Result<Tensor> {
    if v.dtype == to {
        return v.to_tensor();
    }
    let n = crate::tensor::numel(v.shape);
    let values: Vec<f64> = (0..n).map(|i| crate::tensor::element_f64(v.dtype, v.data, i)).collect();
    let t = match to {
        DType::Float32 => Tensor::from_f32(v.shape, &values.iter().map(|&x| x as f32).collect::<Vec<_>>()),
        DType::Float64 => Tensor::from_f64(v.shape, &values),
        DType::Float16 => {
            Tensor::from_f16(v.shape, &values.iter().map(|&x| half::f16::from_f64(x)).collect::<Vec<_>>())
        }
        other => return Err(Error::usage(format!("cannot feed a cut input as {}", other.name()))),
    };
    t.map_err(|e| Error::input(e.to_string()))
}

/// The introduced error of every float node output the candidate captured, keyed by tensor name.
///
/// `model` is the graph the runs were made from (control flow specialized); `inputs` are the graph
/// inputs of every iteration (from a run directory); `kind` is the reference implementation
/// (`tract` or `onnxruntime`).
pub fn compute(
    model: &Model,
    kind: RunnerKind,
    opts: &RunnerOptions,
    inputs: &[Tensors],
    reference: &Side,
    candidate: &Side,
    tol: &dyn Fn(&str) -> Tolerance,
) -> Result<BTreeMap<String, Introduced>> {
    let names = candidate.names();
    let cand: HashMap<String, DType> =
        names.iter().filter_map(|n| candidate.dtype(n).map(|d| (n.clone(), d))).collect();
    let refd: HashMap<String, DType> =
        reference.names().iter().filter_map(|n| reference.dtype(n).map(|d| (n.clone(), d))).collect();
    let cut = cut_model(model, &cand, &refd)?;
    let dir = tempfile::Builder::new()
        .prefix("trtlens-introduced-")
        .tempdir()
        .map_err(|e| Error::store_io(std::env::temp_dir(), "cannot create a temporary folder", e))?;
    let path = dir.path().join("introduced.onnx");
    // External weights stay where the model's base directory says: write next to nothing, so
    // inline them first.
    let mut proto = cut.proto;
    if let Some(g) = proto.graph.as_mut() {
        let base = model.base_dir();
        for t in &mut g.initializer {
            if crate::model::tensor_proto::external_ref(t)?.is_some() {
                let value = crate::model::tensor_proto::to_tensor(t, Some(&base))?;
                *t = crate::model::tensor_proto::from_tensor(t.tensor_name(), &value);
            }
        }
    }
    std::fs::write(&path, proto.encode_to_vec())
        .map_err(|e| Error::store_io(&path, "cannot write the introduced-error model", e))?;
    let cut_model = Model::load(&path)?;
    let capture: Vec<String> = cut.outputs.iter().map(|(r, _)| r.clone()).collect();
    let opts = RunnerOptions { plan: None, plan_label: None, ..opts.clone() };
    let mut runner = crate::runner::create(kind, &cut_model, &capture, &opts)?;
    let mut out: BTreeMap<String, Introduced> = BTreeMap::new();
    for (it, feed) in inputs.iter().enumerate() {
        let ct = candidate.iteration(it)?;
        let mut feed: Tensors = feed.clone();
        for (name, dt) in &cut.fed {
            let v = ct.view(name).ok_or_else(|| Error::usage(format!("the candidate lacks '{name}'")))?;
            feed.push((name.clone(), widen(&v, *dt)?));
        }
        let result = runner.run(&feed)?;
        for (renamed, original) in &cut.outputs {
            let (Some(r), Some(c)) = (crate::runner::find(&result.tensors, renamed), ct.view(original)) else {
                continue;
            };
            let rref = TensorRef::new(r.dtype(), r.shape(), r.bytes());
            let cref = TensorRef::new(c.dtype, c.shape, c.data);
            let mut t = tol(original);
            t.inf_equal = true;
            let Outcome::Compared { metrics, .. } = metrics::compare(rref, cref, &t, 0) else { continue };
            // Non-finite values the node made: candidate non-finite where the reference node is finite.
            let n = crate::tensor::numel(c.shape).min(r.len());
            let nonfinite = (0..n)
                .filter(|&i| !crate::tensor::element_f64(c.dtype, c.data, i).is_finite() && r.get_f64(i).is_finite())
                .count() as u64;
            let mismatches = metrics.mismatches.saturating_sub(
                // NaN at the same place on both sides is inherited, not introduced.
                metrics.nan_reference.min(metrics.nan_candidate),
            );
            let this =
                Introduced { max_abs: metrics.max_abs, rel_l2: metrics.rel_l2, mismatches, nonfinite, iteration: it };
            let e = out.entry(original.clone()).or_insert(this);
            if this.key().partial_cmp(&e.key()).is_some_and(std::cmp::Ordering::is_gt) {
                *e = this;
            }
        }
    }
    Ok(out)
}
