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
use super::source::{IterationTensors, Side};
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
    use half::slice::HalfFloatSliceExt as _;
    if v.dtype == to {
        return v.to_tensor();
    }
    let t = match (v.dtype, to) {
        (DType::Float16, DType::Float32) => {
            let h: Vec<half::f16> = v.data.chunks_exact(2).map(|b| half::f16::from_le_bytes([b[0], b[1]])).collect();
            let mut f = vec![0.0f32; h.len()];
            h.convert_to_f32_slice(&mut f);
            Tensor::from_f32(v.shape, &f)
        }
        (_, DType::Float32 | DType::Float64 | DType::Float16) => {
            let n = crate::tensor::numel(v.shape);
            let values: Vec<f64> = (0..n).map(|i| crate::tensor::element_f64(v.dtype, v.data, i)).collect();
            match to {
                DType::Float32 => Tensor::from_f32(v.shape, &values.iter().map(|&x| x as f32).collect::<Vec<_>>()),
                DType::Float64 => Tensor::from_f64(v.shape, &values),
                _ => Tensor::from_f16(v.shape, &values.iter().map(|&x| half::f16::from_f64(x)).collect::<Vec<_>>()),
            }
        }
        (_, other) => return Err(Error::usage(format!("cannot feed a cut input as {}", other.name()))),
    };
    t.map_err(|e| Error::input(e.to_string()))
}

/// Bytes of cut inputs fed plus node outputs compared that one run of the cut graph may hold: the
/// graph is run in consecutive pieces of at most this much (one piece when it all fits), so the
/// introduced error of a model with gigabytes of activations needs memory for a piece, not for
/// every captured tensor twice. A piece's runner is made once and serves every iteration.
pub const PIECE_BYTES: usize = 256 << 20;

/// One piece of the cut graph: its nodes (with the nodes outside it that compute the integer and
/// uncaptured inputs it reads), the cut inputs it reads and the outputs it compares.
struct Piece {
    nodes: Vec<usize>,
    fed: Vec<(String, DType)>,
    outputs: Vec<(String, String)>,
}

/// Split the cut graph into pieces of at most `budget` bytes (`size` gives the bytes of a fed input
/// or a compared output; a single node above the budget is a piece of its own).
fn pieces(
    graph: &crate::model::proto::GraphProto,
    cut: &Cut,
    size: &dyn Fn(&str) -> usize,
    budget: usize,
) -> Vec<Piece> {
    let producer: HashMap<&str, usize> = graph
        .node
        .iter()
        .enumerate()
        .flat_map(|(i, n)| n.output.iter().filter(|o| !o.is_empty()).map(move |o| (o.as_str(), i)))
        .collect();
    let fed: HashMap<&str, DType> = cut.fed.iter().map(|(n, d)| (n.as_str(), *d)).collect();
    let compared: HashMap<&str, &str> = cut.outputs.iter().map(|(r, o)| (r.as_str(), o.as_str())).collect();
    let is_constant = |i: usize| graph.node[i].op_type.as_deref() == Some("Constant");
    // Consecutive runs of non-Constant nodes within the budget.
    let mut groups: Vec<Vec<usize>> = vec![Vec::new()];
    let (mut used, mut seen_fed) = (0usize, HashSet::new());
    for (i, n) in graph.node.iter().enumerate().filter(|(i, _)| !is_constant(*i)) {
        let new_fed: Vec<&str> =
            n.input.iter().map(String::as_str).filter(|x| fed.contains_key(x) && !seen_fed.contains(x)).collect();
        let cost: usize = new_fed.iter().map(|x| size(x)).sum::<usize>()
            + n.output.iter().filter_map(|o| compared.get(o.as_str())).map(|o| size(o)).sum::<usize>();
        let current = groups.last_mut().expect("one group");
        if !current.is_empty() && used + cost > budget {
            groups.push(Vec::new());
            seen_fed.clear();
            seen_fed.extend(n.input.iter().map(String::as_str).filter(|x| fed.contains_key(x)));
            used = n.input.iter().filter(|x| fed.contains_key(x.as_str())).map(|x| size(x)).sum::<usize>()
                + n.output.iter().filter_map(|o| compared.get(o.as_str())).map(|o| size(o)).sum::<usize>();
        } else {
            used += cost;
            seen_fed.extend(new_fed);
        }
        groups.last_mut().expect("one group").push(i);
    }
    groups
        .into_iter()
        .filter(|g| !g.is_empty())
        .map(|own| {
            let own_set: HashSet<usize> = own.iter().copied().collect();
            // The producers of every input that is not cut (computed again inside the piece).
            let mut needed: HashSet<usize> = own_set.clone();
            let mut stack = own.clone();
            while let Some(i) = stack.pop() {
                for input in &graph.node[i].input {
                    if fed.contains_key(input.as_str()) {
                        continue;
                    }
                    if let Some(&p) = producer.get(input.as_str())
                        && needed.insert(p)
                    {
                        stack.push(p);
                    }
                }
            }
            let mut nodes: Vec<usize> = needed.into_iter().collect();
            nodes.sort_unstable();
            let mut fed_here = Vec::new();
            let mut fed_seen = HashSet::new();
            for &i in &nodes {
                for input in &graph.node[i].input {
                    if let Some(&d) = fed.get(input.as_str())
                        && fed_seen.insert(input.as_str())
                    {
                        fed_here.push((input.clone(), d));
                    }
                }
            }
            let outputs = own
                .iter()
                .flat_map(|&i| graph.node[i].output.iter())
                .filter_map(|o| compared.get(o.as_str()).map(|orig| (o.clone(), (*orig).to_string())))
                .collect();
            Piece { nodes, fed: fed_here, outputs }
        })
        .collect()
}

/// The model of one piece: its nodes, the initializers and graph inputs they read, the cut inputs
/// it is fed, and its compared outputs.
fn piece_model(
    template: &crate::model::proto::ModelProto,
    graph: &crate::model::proto::GraphProto,
    piece: &Piece,
) -> crate::model::proto::ModelProto {
    let mut read: HashSet<&str> = HashSet::new();
    for &i in &piece.nodes {
        read.extend(graph.node[i].input.iter().map(String::as_str));
    }
    let fed: HashSet<&str> = piece.fed.iter().map(|(n, _)| n.as_str()).collect();
    let outputs: HashSet<&str> = piece.outputs.iter().map(|(r, _)| r.as_str()).collect();
    let g = crate::model::proto::GraphProto {
        node: piece.nodes.iter().map(|&i| graph.node[i].clone()).collect(),
        initializer: graph.initializer.iter().filter(|t| read.contains(t.tensor_name())).cloned().collect(),
        input: graph
            .input
            .iter()
            .filter(|v| read.contains(v.value_name()) || fed.contains(v.value_name()))
            .cloned()
            .collect(),
        output: graph.output.iter().filter(|v| outputs.contains(v.value_name())).cloned().collect(),
        ..graph_shell(graph)
    };
    crate::model::proto::ModelProto { graph: Some(g), ..template.clone() }
}

/// A graph's name and documentation without its contents.
fn graph_shell(graph: &crate::model::proto::GraphProto) -> crate::model::proto::GraphProto {
    crate::model::proto::GraphProto {
        name: graph.name.clone(),
        doc_string: graph.doc_string.clone(),
        ..crate::model::proto::GraphProto::default()
    }
}

/// The introduced error of every float node output the candidate captured, keyed by tensor name.
///
/// `model` is the graph the runs were made from (control flow specialized); `inputs` are the graph
/// inputs of every iteration (from a run directory); `kind` is the reference implementation
/// (`tract` or `onnxruntime`). The cut graph runs in pieces of at most [`PIECE_BYTES`]; each output
/// is compared as the runner hands it over, and the candidate's tensors are read one at a time.
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
    let mut cut = cut_model(model, &cand, &refd)?;
    // External weights are inlined: the pieces are written next to nothing.
    let mut graph = cut.proto.graph.take().unwrap_or_default();
    let base = model.base_dir();
    for t in &mut graph.initializer {
        if crate::model::tensor_proto::external_ref(t)?.is_some() {
            let value = crate::model::tensor_proto::to_tensor(t, Some(&base))?;
            *t = crate::model::tensor_proto::from_tensor(t.tensor_name(), &value);
        }
    }
    let template = crate::model::proto::ModelProto { graph: None, ..cut.proto.clone() };
    // Sizes from the candidate's first iteration (the dtype a cut input is fed in, or the
    // reference dtype of an output).
    let first = candidate.iteration(0)?;
    let originals: HashMap<&str, &str> = cut.outputs.iter().map(|(r, o)| (r.as_str(), o.as_str())).collect();
    let size = |name: &str| -> usize {
        let original = originals.get(name).copied().unwrap_or(name);
        let numel = first.meta(original).map_or(0, |(_, shape)| crate::tensor::numel(shape));
        let dtype = cut
            .fed
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, d)| *d)
            .or_else(|| refd.get(original).copied())
            .unwrap_or(DType::Float32);
        numel * dtype.size()
    };
    let pieces = pieces(&graph, &cut, &size, PIECE_BYTES);
    drop(first);
    let dir = tempfile::Builder::new()
        .prefix("trtlens-introduced-")
        .tempdir()
        .map_err(|e| Error::store_io(std::env::temp_dir(), "cannot create a temporary folder", e))?;
    let opts = RunnerOptions { plan: None, plan_label: None, ..opts.clone() };
    let mut out: BTreeMap<String, Introduced> = BTreeMap::new();
    for (ix, piece) in pieces.iter().enumerate() {
        if piece.outputs.is_empty() {
            continue;
        }
        let path = dir.path().join(format!("introduced_{ix:03}.onnx"));
        std::fs::write(&path, piece_model(&template, &graph, piece).encode_to_vec())
            .map_err(|e| Error::store_io(&path, "cannot write the introduced-error model", e))?;
        let piece_model = Model::load(&path)?;
        let capture: Vec<String> = piece.outputs.iter().map(|(r, _)| r.clone()).collect();
        let mut runner = crate::runner::create(kind, &piece_model, &capture, &opts)?;
        for (it, feed) in inputs.iter().enumerate() {
            let ct = candidate.iteration(it)?;
            let mut feed: Tensors =
                feed.iter().filter(|(n, _)| piece_model.graph.inputs.contains(n)).cloned().collect();
            for (name, dt) in &piece.fed {
                let v = ct.get(name)?.ok_or_else(|| Error::usage(format!("the candidate lacks '{name}'")))?;
                feed.push((name.clone(), widen(&v.view(), *dt)?));
                drop(v);
                ct.release(name);
            }
            let mut sink =
                Sink { ct: &ct, originals: &originals, tol, iteration: it, out: &mut out, specs: HashMap::new() };
            runner.run_streamed(&feed, &mut sink)?;
        }
    }
    Ok(out)
}

/// Compares each output of a cut-graph run with the candidate's tensor as the runner hands it over.
struct Sink<'a, 'b> {
    ct: &'a IterationTensors<'b>,
    originals: &'a HashMap<&'a str, &'a str>,
    tol: &'a dyn Fn(&str) -> Tolerance,
    iteration: usize,
    out: &'a mut BTreeMap<String, Introduced>,
    specs: HashMap<String, (DType, Vec<usize>)>,
}

impl crate::runner::TensorSink for Sink<'_, '_> {
    fn begin(&mut self, specs: &[crate::runner::TensorSpec]) -> Result<()> {
        self.specs = specs.iter().map(|(n, d, s)| (n.clone(), (*d, s.clone()))).collect();
        Ok(())
    }

    fn put(&mut self, name: &str, data: &[u8]) -> Result<()> {
        let (Some(&original), Some((dtype, shape))) = (self.originals.get(name), self.specs.get(name)) else {
            return Ok(());
        };
        let Some(cd) = self.ct.get(original)? else { return Ok(()) };
        let c = cd.view();
        let rref = TensorRef::new(*dtype, shape, data);
        let cref = TensorRef::new(c.dtype, c.shape, c.data);
        let mut t = (self.tol)(original);
        t.inf_equal = true;
        let outcome = metrics::compare_basic(rref, cref, &t, 0);
        let nonfinite = metrics::new_nonfinite(rref, cref);
        drop(cd);
        self.ct.release(original);
        let Outcome::Compared { metrics, .. } = outcome else { return Ok(()) };
        // NaN at the same place on both sides is inherited, not introduced.
        let mismatches = metrics.mismatches.saturating_sub(metrics.nan_reference.min(metrics.nan_candidate));
        let this = Introduced {
            max_abs: metrics.max_abs,
            rel_l2: metrics.rel_l2,
            mismatches,
            nonfinite,
            iteration: self.iteration,
        };
        let e = self.out.entry(original.to_string()).or_insert(this);
        if this.key().partial_cmp(&e.key()).is_some_and(std::cmp::Ordering::is_gt) {
            *e = this;
        }
        Ok(())
    }
}
