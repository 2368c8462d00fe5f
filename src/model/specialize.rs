//! Control-flow specialization: inline the branch each `If` takes for the inputs of a run.
//!
//! Voice-activity and streaming models put their whole network in the branches of an `If` chosen by
//! an input (a sample rate, a "first chunk" flag) or by an input's shape. Tensors inside a branch are
//! not observable from outside the node, and a runtime that analyses both branches (tract) fails on
//! the branch that will not run. When the condition has the same value in every iteration of a run,
//! trtlens replaces the `If` by the nodes of the branch it takes, so every inner tensor becomes a
//! normal tensor of the main graph: captured, compared and toggleable on every runner, and seen the
//! same way by `TensorRT`, whose ONNX parser inlines an `If` with a constant condition too.
//!
//! * [`decide`] finds each condition's value: a constant (an initializer or `Constant` node), a
//!   graph input read from the iterations, or else the condition's *cone* (the nodes computing it from
//!   inputs and initializers) extracted as a small model and run by tract on every iteration (ONNX
//!   Runtime when tract cannot). An `If` is specialized only when every iteration gives the same
//!   value. Nested `If`s become top-level when their parent is inlined, so [`decide`] repeats until
//!   nothing changes; an `If` whose condition depends on an `If` that stays is left alone.
//! * [`apply`] replays recorded decisions on a model (in their order, no evaluation): `compare` uses
//!   it to see the graph the runs were made from.
//!
//! How a branch is inlined ([`apply`]):
//! * The branch's nodes replace the `If` node where it stood; its initializers, sparse
//!   initializers, `value_info` and quantization annotations move to the main graph.
//! * Outputs keep the `If`'s names: the branch node producing output `i` writes the `If`'s output `i`
//!   instead of its own name (what `TensorRT` does when it inlines: the tensor carries the outer
//!   name). When a branch output is not produced by one of its own nodes (it passes an outer tensor
//!   or an initializer through, or two outputs are the same tensor) an `Identity` node named
//!   `<if>/<branch>/Identity` writes the `If` output instead.
//! * A branch name (tensor or node) that is already used anywhere else in the model gets the first
//!   free `_2`, `_3`... suffix, deterministically; reads inside nested bodies follow the renames.
//! * The `If`'s condition and the nodes computing it stay in the graph (they are real tensors of the
//!   model), they just have no reader any more.
//!
//! `Loop` and `Scan` bodies are never inlined: their tensors stay uncaptured and runs list them.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use prost::Message;
use serde::{Deserialize, Serialize};

use super::Model;
use super::graph::{Graph, TensorKind};
use super::proto::{GraphProto, ModelProto, NodeProto, TensorProto, TypeProto, ValueInfoProto, data_type, type_proto};
use super::tensor_proto;
use crate::error::{Error, Result};
use crate::runner::{self, RunnerKind, RunnerOptions, Tensors};
use crate::tensor::Tensor;

/// The `If` attribute holding the branch taken when the condition is true.
pub const THEN_BRANCH: &str = "then_branch";
/// The `If` attribute holding the branch taken when the condition is false.
pub const ELSE_BRANCH: &str = "else_branch";

/// An `If` node that was replaced by one of its branches (recorded in run manifests and reports).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Specialized {
    /// The `If` node (its name, or `If#<index>` when the model leaves it empty), in the graph as it
    /// was when this decision was applied (decisions are applied in order).
    pub node: String,
    /// The condition tensor.
    pub condition: String,
    /// The condition's value (the same in every iteration).
    pub value: bool,
    /// The branch inlined: `then_branch` or `else_branch`.
    pub branch: String,
    /// The graph inputs the condition is computed from (empty for a constant condition).
    #[serde(default)]
    pub inputs: Vec<String>,
}

/// An `If` node left as it is, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotSpecialized {
    /// The `If` node (empty when specialization failed as a whole).
    pub node: String,
    /// Its condition tensor.
    pub condition: String,
    /// Why it stays (the condition differs between iterations, could not be evaluated, ...).
    pub reason: String,
}

impl std::fmt::Display for Specialized {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "If '{}': {} = {} → {} inlined", self.node, self.condition, self.value, self.branch)
    }
}

impl std::fmt::Display for NotSpecialized {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.node.is_empty() {
            return write!(f, "{}", self.reason);
        }
        write!(f, "If '{}' not specialized: {}", self.node, self.reason)
    }
}

/// What [`decide`] found.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// The `If`s inlined, in the order they were applied.
    pub specialized: Vec<Specialized>,
    /// The `If`s left in place, with the reason.
    pub kept: Vec<NotSpecialized>,
    /// The specialized model (`None` when nothing was inlined).
    pub proto: Option<ModelProto>,
}

/// Display name of a node at `index` of its graph (as [`super::graph::Node::display_name`]).
fn display_name(n: &NodeProto, index: usize) -> String {
    if n.node_name().is_empty() { format!("{}#{index}", n.op()) } else { n.node_name().to_string() }
}

fn is_default_domain(n: &NodeProto) -> bool {
    matches!(n.domain.as_deref(), None | Some("" | "ai.onnx"))
}

/// True for a default-domain `If` node.
fn is_if(n: &NodeProto) -> bool {
    n.op() == "If" && is_default_domain(n)
}

fn graph_of(proto: &ModelProto) -> Result<&GraphProto> {
    proto.graph.as_ref().ok_or_else(|| Error::usage("the model has no graph"))
}

/// Decide which `If` nodes the `iterations` (every data input of the model, per iteration) fix, and
/// inline them, repeating for nested `If`s until nothing changes. Conditions computed from inputs
/// are evaluated with tract (ONNX Runtime, found through `opts.ort_lib`, when tract cannot).
pub fn decide(model: &Model, iterations: &[Tensors], opts: &RunnerOptions) -> Result<Outcome> {
    let mut out = Outcome::default();
    if !graph_of(&model.proto)?.node.iter().any(is_if) {
        return Ok(out);
    }
    let base = model.base_dir();
    let mut proto = model.proto.clone();
    // Ifs already given up on, by their first output (unique in the graph, stable across rounds).
    let mut given_up: HashSet<String> = HashSet::new();
    // Once nothing else can be decided, conditions computed through an If that stays are evaluated
    // with that If in their cone (the runners execute it).
    let mut through_ifs = false;
    loop {
        let g = graph_of(&proto)?;
        let graph = Graph::build(g).map_err(|e| Error::model(&model.path, e.to_string()))?;
        let pending: Vec<usize> = (0..graph.nodes.len())
            .filter(|&i| {
                let n = &g.node[graph.nodes[i].proto_index];
                is_if(n) && n.output.first().is_some_and(|o| !given_up.contains(o))
            })
            .collect();
        if pending.is_empty() {
            break;
        }
        // Conditions whose cone holds another undecided If wait for it.
        let mut ready: Vec<(usize, Cone, Option<String>)> = Vec::new();
        let mut waiting = false;
        for &i in &pending {
            let node = &graph.nodes[i];
            let Some(cond) = node.inputs.first().filter(|c| !c.is_empty()) else {
                let n = NotSpecialized {
                    node: node.display_name(),
                    condition: String::new(),
                    reason: "it has no condition input".into(),
                };
                given_up.insert(node.outputs.first().cloned().unwrap_or_default());
                out.kept.push(n);
                continue;
            };
            let cone = Cone::of(&graph, cond);
            let is_if_node = |c: usize| {
                let n = &graph.nodes[c];
                n.op_type == "If" && matches!(n.domain.as_str(), "" | "ai.onnx")
            };
            match cone.nodes.iter().find(|&&c| is_if_node(c)) {
                Some(_) if !through_ifs => waiting = true,
                Some(&blocker) => ready.push((i, cone, Some(graph.nodes[blocker].display_name()))),
                None => ready.push((i, cone, None)),
            }
        }
        let values = evaluate(&base, &proto, &graph, &ready, iterations, opts)?;
        let mut round: Vec<(String, Specialized)> = Vec::new();
        for ((i, cone, blocker), value) in ready.iter().zip(values) {
            let node = &graph.nodes[*i];
            let cond = node.inputs[0].clone();
            let first_output = node.outputs.first().cloned().unwrap_or_default();
            let verdict = value.and_then(|v| same_in_every_iteration(&cond, &v));
            match verdict {
                Ok(v) => round.push((
                    first_output,
                    Specialized {
                        node: node.display_name(),
                        condition: cond,
                        value: v,
                        branch: if v { THEN_BRANCH } else { ELSE_BRANCH }.to_string(),
                        inputs: cone.inputs.clone(),
                    },
                )),
                Err(reason) => {
                    let reason = match blocker {
                        Some(b) => format!(
                            "its condition is computed through If '{b}', which was not specialized, and {reason}"
                        ),
                        None => reason,
                    };
                    given_up.insert(first_output);
                    out.kept.push(NotSpecialized { node: node.display_name(), condition: cond, reason });
                }
            }
        }
        if round.is_empty() {
            through_ifs = waiting;
            continue;
        }
        through_ifs = false;
        // Apply this round in topological order; names are taken as each If is inlined.
        let g = proto.graph.as_mut().ok_or_else(|| Error::usage("the model has no graph"))?;
        for (first_output, mut s) in round {
            let idx = g
                .node
                .iter()
                .position(|n| is_if(n) && n.output.first() == Some(&first_output))
                .ok_or_else(|| Error::model(&model.path, format!("If '{}' vanished while specializing", s.node)))?;
            s.node = display_name(&g.node[idx], idx);
            // `inline` checks the node before changing anything: on an error the If stays as it is.
            match inline(g, idx, &s.branch) {
                Ok(()) => out.specialized.push(s),
                Err(reason) => {
                    given_up.insert(first_output);
                    out.kept.push(NotSpecialized { node: s.node, condition: s.condition, reason });
                }
            }
        }
    }
    if !out.specialized.is_empty() {
        out.proto = Some(proto);
    }
    Ok(out)
}

/// The value of a condition if it is the same in every iteration, else why not.
fn same_in_every_iteration(cond: &str, values: &[bool]) -> std::result::Result<bool, String> {
    let Some(&first) = values.first() else {
        return Err("there are no iterations to evaluate its condition on".into());
    };
    if values.iter().all(|&v| v == first) {
        return Ok(first);
    }
    let t: Vec<usize> = (0..values.len()).filter(|&i| values[i]).collect();
    let f: Vec<usize> = (0..values.len()).filter(|&i| !values[i]).collect();
    let list = |v: &[usize]| {
        let mut s: Vec<String> = v.iter().take(5).map(ToString::to_string).collect();
        if v.len() > 5 {
            s.push("...".into());
        }
        s.join(", ")
    };
    Err(format!(
        "its condition '{cond}' differs between iterations (true in iteration {}, false in iteration {}): \
         each iteration takes its own branch",
        list(&t),
        list(&f)
    ))
}

/// The nodes computing a tensor, and the graph inputs they read.
#[derive(Debug, Clone, Default)]
struct Cone {
    /// Indices into [`Graph::nodes`], in topological order.
    nodes: Vec<usize>,
    /// Data inputs read, in the graph's declaration order.
    inputs: Vec<String>,
    /// Initializers read.
    initializers: Vec<String>,
}

impl Cone {
    fn of(graph: &Graph, tensor: &str) -> Cone {
        let mut seen: HashSet<String> = HashSet::new();
        let mut nodes: HashSet<usize> = HashSet::new();
        let mut stack = vec![tensor.to_string()];
        let mut inputs = HashSet::new();
        let mut initializers = Vec::new();
        while let Some(t) = stack.pop() {
            if t.is_empty() || !seen.insert(t.clone()) {
                continue;
            }
            let Some(info) = graph.tensor(&t) else { continue };
            match (info.kind, info.producer) {
                (TensorKind::Input, _) => {
                    inputs.insert(t);
                }
                (TensorKind::Initializer, _) => initializers.push(t),
                (TensorKind::Activation, Some(p)) => {
                    if nodes.insert(p) {
                        let n = &graph.nodes[p];
                        stack.extend(n.inputs.iter().chain(&n.implicit_inputs).cloned());
                    }
                }
                (TensorKind::Activation, None) => {}
            }
        }
        let mut nodes: Vec<usize> = nodes.into_iter().collect();
        nodes.sort_unstable();
        initializers.sort();
        Cone { nodes, inputs: graph.inputs.iter().filter(|i| inputs.contains(*i)).cloned().collect(), initializers }
    }
}

/// The value of every `ready` condition in every iteration (or why it could not be found).
fn evaluate(
    base: &Path,
    proto: &ModelProto,
    graph: &Graph,
    ready: &[(usize, Cone, Option<String>)],
    iterations: &[Tensors],
    opts: &RunnerOptions,
) -> Result<Vec<std::result::Result<Vec<bool>, String>>> {
    let g = graph_of(proto)?;
    let mut results: Vec<Option<std::result::Result<Vec<bool>, String>>> = vec![None; ready.len()];
    let mut computed: Vec<usize> = Vec::new();
    for (k, (i, _, _)) in ready.iter().enumerate() {
        let cond = &graph.nodes[*i].inputs[0];
        if let Some(v) = known_value(base, g, graph, cond, iterations) {
            results[k] = Some(v);
        } else {
            computed.push(k);
        }
    }
    if !computed.is_empty() {
        // All conditions of the round in one cone model; when that fails, each on its own, so one
        // condition a runner cannot compute does not take the others down with it.
        let mut batches = vec![computed.clone()];
        loop {
            let mut failed = Vec::new();
            for batch in &batches {
                let values = eval_batch(base, proto, g, graph, ready, batch, iterations, opts);
                for (j, &k) in batch.iter().enumerate() {
                    results[k] = Some(match &values {
                        Ok(per_cond) => Ok(per_cond[j].clone()),
                        Err(e) => Err(format!("its condition could not be evaluated ({e})")),
                    });
                }
                if values.is_err() && batch.len() > 1 {
                    failed.extend(batch.iter().map(|&k| vec![k]));
                }
            }
            if failed.is_empty() {
                break;
            }
            batches = failed;
        }
    }
    Ok(results.into_iter().map(|r| r.unwrap_or_else(|| Err("not evaluated".into()))).collect())
}

/// The values of the conditions of `ready[k]` for `k` in `batch`, from one cone model.
#[allow(clippy::too_many_arguments)]
fn eval_batch(
    base: &Path,
    proto: &ModelProto,
    g: &GraphProto,
    graph: &Graph,
    ready: &[(usize, Cone, Option<String>)],
    batch: &[usize],
    iterations: &[Tensors],
    opts: &RunnerOptions,
) -> std::result::Result<Vec<Vec<bool>>, String> {
    let conds: Vec<String> = batch.iter().map(|&k| graph.nodes[ready[k].0].inputs[0].clone()).collect();
    let mut nodes: Vec<usize> = batch.iter().flat_map(|&k| ready[k].1.nodes.iter().copied()).collect();
    nodes.sort_unstable();
    nodes.dedup();
    let mut inits: Vec<String> = batch.iter().flat_map(|&k| ready[k].1.initializers.iter().cloned()).collect();
    inits.sort();
    inits.dedup();
    let inputs: Vec<String> =
        graph.inputs.iter().filter(|n| batch.iter().any(|&k| ready[k].1.inputs.contains(n))).cloned().collect();
    let sub = cone_model(proto, g, graph, &nodes, &inputs, &inits, &conds, base).map_err(|e| e.to_string())?;
    run_cone(&sub, &inputs, &conds, iterations, opts)
}

/// The value of a condition that needs no evaluation: an initializer, a `Constant` node's `value`,
/// or a graph input (read from each iteration).
fn known_value(
    base: &Path,
    g: &GraphProto,
    graph: &Graph,
    cond: &str,
    iterations: &[Tensors],
) -> Option<std::result::Result<Vec<bool>, String>> {
    let info = graph.tensor(cond)?;
    let constant = |t: Option<&TensorProto>| -> Option<std::result::Result<Vec<bool>, String>> {
        let v = tensor_proto::to_tensor(t?, Some(base)).map_err(|e| e.to_string()).and_then(|t| truth(cond, &t));
        Some(v.map(|b| vec![b; iterations.len().max(1)]))
    };
    match info.kind {
        TensorKind::Initializer => constant(g.initializer.iter().find(|t| t.tensor_name() == cond)),
        TensorKind::Input => Some(
            iterations
                .iter()
                .map(|feed| {
                    runner::find(feed, cond)
                        .ok_or_else(|| format!("no value for input '{cond}'"))
                        .and_then(|t| truth(cond, t))
                })
                .collect(),
        ),
        TensorKind::Activation => {
            let p = &graph.nodes[info.producer?];
            if !p.is_constant() {
                return None;
            }
            constant(g.node[p.proto_index].attr("value").and_then(|a| a.t.as_ref()))
        }
    }
}

/// The truth value of a condition tensor (`If` wants exactly one element).
fn truth(cond: &str, t: &Tensor) -> std::result::Result<bool, String> {
    if t.len() != 1 {
        return Err(format!("condition '{cond}' has {} elements; If needs exactly one", t.len()));
    }
    Ok(t.get_f64(0) != 0.0)
}

/// The cone of the conditions as a model of its own: the cone's nodes, the inputs and initializers
/// they read (external data inlined), the conditions as outputs.
#[allow(clippy::too_many_arguments)]
fn cone_model(
    proto: &ModelProto,
    g: &GraphProto,
    graph: &Graph,
    nodes: &[usize],
    inputs: &[String],
    initializers: &[String],
    conds: &[String],
    base: &Path,
) -> Result<ModelProto> {
    let mut initializer = Vec::new();
    for t in g.initializer.iter().filter(|t| initializers.iter().any(|n| n == t.tensor_name())) {
        if tensor_proto::external_ref(t)?.is_some() {
            let value = tensor_proto::to_tensor(t, Some(base))?;
            initializer.push(tensor_proto::from_tensor(t.tensor_name(), &value));
        } else {
            initializer.push(t.clone());
        }
    }
    let sparse_initializer = g
        .sparse_initializer
        .iter()
        .filter(|s| s.values.as_ref().is_some_and(|v| initializers.iter().any(|n| n == v.tensor_name())))
        .cloned()
        .collect();
    let declared = |name: &str| {
        g.value_info.iter().chain(&g.output).find(|v| v.value_name() == name).and_then(|v| v.r#type.clone())
    };
    let output = conds
        .iter()
        .map(|c| ValueInfoProto {
            name: Some(c.clone()),
            r#type: declared(c).or_else(|| Some(bool_type())),
            ..ValueInfoProto::default()
        })
        .collect();
    let sub = GraphProto {
        node: nodes.iter().map(|&i| g.node[graph.nodes[i].proto_index].clone()).collect(),
        name: Some("trtlens_condition_cone".into()),
        initializer,
        sparse_initializer,
        input: g.input.iter().filter(|v| inputs.iter().any(|n| n == v.value_name())).cloned().collect(),
        output,
        ..GraphProto::default()
    };
    Ok(ModelProto {
        ir_version: proto.ir_version,
        producer_name: Some("trtlens-specialize".into()),
        opset_import: proto.opset_import.clone(),
        functions: proto.functions.clone(),
        graph: Some(sub),
        ..ModelProto::default()
    })
}

fn bool_type() -> TypeProto {
    TypeProto {
        value: Some(type_proto::Value::TensorType(type_proto::Tensor {
            elem_type: Some(data_type::BOOL),
            shape: None,
        })),
        denotation: None,
    }
}

/// Run the cone model on every iteration (once when it reads no input): per condition, its value
/// in each iteration. tract first, ONNX Runtime when tract cannot.
fn run_cone(
    sub: &ModelProto,
    inputs: &[String],
    conds: &[String],
    iterations: &[Tensors],
    opts: &RunnerOptions,
) -> std::result::Result<Vec<Vec<bool>>, String> {
    let dir = tempfile::Builder::new()
        .prefix("trtlens-specialize-")
        .tempdir()
        .map_err(|e| format!("cannot create a temporary folder: {e}"))?;
    let path = dir.path().join("condition.onnx");
    std::fs::write(&path, sub.encode_to_vec()).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    let m = Model::load(&path).map_err(|e| e.to_string())?;
    let feeds: Vec<Tensors> = if inputs.is_empty() {
        vec![Vec::new()]
    } else {
        iterations
            .iter()
            .map(|it| it.iter().filter(|(n, _)| inputs.contains(n)).cloned().collect::<Tensors>())
            .collect()
    };
    let mut errors = Vec::new();
    for kind in [RunnerKind::Tract, RunnerKind::Onnxruntime] {
        match run_feeds(kind, &m, conds, &feeds, opts) {
            Ok(mut per_cond) => {
                if inputs.is_empty() {
                    for v in &mut per_cond {
                        *v = vec![v[0]; iterations.len().max(1)];
                    }
                }
                return Ok(per_cond);
            }
            Err(e) => errors.push(format!("{}: {e}", kind.name())),
        }
    }
    Err(errors.join("; "))
}

fn run_feeds(
    kind: RunnerKind,
    m: &Model,
    conds: &[String],
    feeds: &[Tensors],
    opts: &RunnerOptions,
) -> std::result::Result<Vec<Vec<bool>>, String> {
    let opts = RunnerOptions { ort_lib: opts.ort_lib.clone(), ..RunnerOptions::default() };
    let mut r = runner::create(kind, m, conds, &opts).map_err(|e| e.to_string())?;
    let mut per_cond = vec![Vec::with_capacity(feeds.len()); conds.len()];
    for feed in feeds {
        let out = r.run(feed).map_err(|e| e.to_string())?;
        for (j, c) in conds.iter().enumerate() {
            let t = runner::find(&out.tensors, c).ok_or_else(|| format!("no value came back for '{c}'"))?;
            per_cond[j].push(truth(c, t)?);
        }
    }
    Ok(per_cond)
}

/// Replay `decisions` on a model, in order (no evaluation): each names an `If` by node and condition
/// in the graph as the earlier decisions left it.
pub fn apply(proto: &ModelProto, decisions: &[Specialized]) -> Result<ModelProto> {
    let mut out = proto.clone();
    let g = out.graph.as_mut().ok_or_else(|| Error::usage("the model has no graph"))?;
    for d in decisions {
        let idx = g
            .node
            .iter()
            .enumerate()
            .position(|(i, n)| is_if(n) && n.input.first() == Some(&d.condition) && display_name(n, i) == d.node)
            .ok_or_else(|| {
                Error::usage(format!(
                    "the run specialized If '{}' (condition '{}'), which this model does not have: was it made from another model?",
                    d.node, d.condition
                ))
            })?;
        if d.branch != THEN_BRANCH && d.branch != ELSE_BRANCH {
            return Err(Error::usage(format!("If '{}': unknown branch '{}'", d.node, d.branch)));
        }
        inline(g, idx, &d.branch).map_err(Error::usage)?;
    }
    Ok(out)
}

/// `model` with `decisions` applied, analysed in memory (same path, so external data still
/// resolves). The model itself when there is nothing to apply.
pub fn apply_to(model: &Model, decisions: &[Specialized]) -> Result<Model> {
    if decisions.is_empty() {
        return Ok(model.clone());
    }
    let proto = apply(&model.proto, decisions)?;
    analysed(model, proto)
}

/// A specialized proto as a [`Model`] that keeps the original's path, file hash and size (its
/// identity), with the specialized graph.
fn analysed(model: &Model, proto: ModelProto) -> Result<Model> {
    let g = graph_of(&proto)?;
    let graph = Graph::build(g).map_err(|e| Error::model(&model.path, format!("after specialization: {e}")))?;
    Ok(Model { path: model.path.clone(), proto, graph, sha256: model.sha256.clone(), file_bytes: model.file_bytes })
}

/// Write a specialized proto into `dir` and load it: what runners that read a model file need.
/// External initializers are inlined, so the file stands alone, and symbolic dimensions of
/// `value_info` entries become unknown: the runner infers every intermediate shape from the concrete
/// inputs (tract treats a symbol such as `batch`, which moved out of a branch, as a value other than
/// the input's 1).
pub fn materialize(model: &Model, mut proto: ModelProto, dir: &Path) -> Result<Model> {
    use super::proto::tensor_shape_proto::dimension;
    let base = model.base_dir();
    if let Some(g) = proto.graph.as_mut() {
        for t in &mut g.initializer {
            if tensor_proto::external_ref(t)?.is_some() {
                let value = tensor_proto::to_tensor(t, Some(&base))?;
                *t = tensor_proto::from_tensor(t.tensor_name(), &value);
            }
        }
        for v in &mut g.value_info {
            if let Some(TypeProto { value: Some(type_proto::Value::TensorType(tt)), .. }) = v.r#type.as_mut()
                && let Some(shape) = tt.shape.as_mut()
            {
                for d in &mut shape.dim {
                    if matches!(d.value, Some(dimension::Value::DimParam(_))) {
                        d.value = None;
                    }
                }
            }
        }
    }
    let stem = model.path.file_stem().map_or_else(|| "model".into(), |s| s.to_string_lossy().into_owned());
    let path = dir.join(format!("{stem}.specialized.onnx"));
    std::fs::write(&path, proto.encode_to_vec())
        .map_err(|e| Error::store_io(&path, "cannot write the specialized model", e))?;
    Model::load(&path)
}

/// Every tensor and node name used in a graph (bodies included), skipping node `skip`.
#[derive(Default)]
struct Taken {
    tensors: HashSet<String>,
    nodes: HashSet<String>,
}

impl Taken {
    fn add_graph(&mut self, g: &GraphProto, skip: Option<usize>) {
        let vi = g.input.iter().chain(&g.output).chain(&g.value_info).map(|v| v.value_name().to_string());
        self.tensors.extend(vi);
        self.tensors.extend(g.initializer.iter().map(|t| t.tensor_name().to_string()));
        self.tensors
            .extend(g.sparse_initializer.iter().filter_map(|s| s.values.as_ref()).map(|t| t.tensor_name().to_string()));
        for (i, n) in g.node.iter().enumerate() {
            if Some(i) == skip {
                continue;
            }
            if !n.node_name().is_empty() {
                self.nodes.insert(n.node_name().to_string());
            }
            self.tensors.extend(n.input.iter().chain(&n.output).filter(|s| !s.is_empty()).cloned());
            for a in &n.attribute {
                for body in a.g.iter().chain(&a.graphs) {
                    self.add_graph(body, None);
                }
            }
        }
    }

    fn fresh(set: &mut HashSet<String>, base: &str) -> String {
        let mut k = 2;
        loop {
            let c = format!("{base}_{k}");
            if set.insert(c.clone()) {
                return c;
            }
            k += 1;
        }
    }
}

/// Replace the `If` node at `idx` of `g` by its `branch` (see the module docs).
fn inline(g: &mut GraphProto, idx: usize, branch: &str) -> std::result::Result<(), String> {
    let node = g.node[idx].clone();
    let label = display_name(&node, idx);
    let mut body =
        node.attr(branch).and_then(|a| a.g.clone()).ok_or_else(|| format!("If '{label}' has no {branch} graph"))?;
    if !body.input.is_empty() {
        return Err(format!("If '{label}': its {branch} declares inputs, which If branches cannot have"));
    }
    if body.output.len() != node.output.len() {
        return Err(format!("If '{label}' has {} outputs but its {branch} {}", node.output.len(), body.output.len()));
    }
    let mut outside = Taken::default();
    outside.add_graph(g, Some(idx));
    let mut taken = Taken::default();
    taken.add_graph(g, None);

    // What the branch defines at its top level.
    let produced: HashSet<String> =
        body.node.iter().flat_map(|n| n.output.iter()).filter(|o| !o.is_empty()).cloned().collect();
    let mut defs: Vec<String> = body.initializer.iter().map(|t| t.tensor_name().to_string()).collect();
    defs.extend(body.sparse_initializer.iter().filter_map(|s| s.values.as_ref()).map(|t| t.tensor_name().to_string()));
    defs.extend(body.node.iter().flat_map(|n| n.output.iter()).filter(|o| !o.is_empty()).cloned());

    let mut map: HashMap<String, String> = HashMap::new();
    let mut identities: Vec<(String, String)> = Vec::new();
    for (i, out) in node.output.iter().enumerate() {
        if out.is_empty() {
            continue;
        }
        let b = body.output[i].value_name().to_string();
        if produced.contains(&b) && !map.contains_key(&b) {
            map.insert(b, out.clone());
        } else {
            identities.push((b, out.clone()));
        }
    }
    for d in &defs {
        if !map.contains_key(d) && outside.tensors.contains(d) {
            map.insert(d.clone(), Taken::fresh(&mut taken.tensors, d));
        }
    }
    let rename = |s: &mut String| {
        if let Some(r) = map.get(s.as_str()) {
            s.clone_from(r);
        }
    };
    let no_shadow = HashSet::new();
    for n in &mut body.node {
        n.input.iter_mut().for_each(rename);
        n.output.iter_mut().for_each(rename);
        for a in &mut n.attribute {
            for nested in a.g.iter_mut().chain(a.graphs.iter_mut()) {
                crate::precision::names::rename_outer_reads(nested, &map, &no_shadow);
            }
        }
        if !n.node_name().is_empty() && outside.nodes.contains(n.node_name()) {
            n.name = Some(Taken::fresh(&mut taken.nodes, n.node_name()));
        }
    }
    for t in &mut body.initializer {
        if let Some(name) = t.name.as_mut() {
            rename(name);
        }
    }
    for s in &mut body.sparse_initializer {
        if let Some(name) = s.values.as_mut().and_then(|v| v.name.as_mut()) {
            rename(name);
        }
    }
    for v in body.value_info.iter_mut().chain(body.output.iter_mut()) {
        if let Some(name) = v.name.as_mut() {
            rename(name);
        }
    }
    for q in &mut body.quantization_annotation {
        if let Some(name) = q.tensor_name.as_mut() {
            rename(name);
        }
    }
    for (src, out) in &identities {
        let src = map.get(src).unwrap_or(src).clone();
        let name = format!("{label}/{branch}/Identity");
        let name = super::unique_name(&mut taken.nodes, &name);
        body.node.push(NodeProto {
            input: vec![src],
            output: vec![out.clone()],
            name: Some(name),
            op_type: Some("Identity".into()),
            ..NodeProto::default()
        });
    }

    // Declared types: the main graph's own declarations win.
    let mut declared: HashSet<String> =
        g.value_info.iter().chain(&g.input).chain(&g.output).map(|v| v.value_name().to_string()).collect();
    for v in body.value_info {
        if declared.insert(v.value_name().to_string()) {
            g.value_info.push(v);
        }
    }
    for (i, out) in node.output.iter().enumerate() {
        if out.is_empty() {
            continue;
        }
        if declared.insert(out.clone()) && body.output[i].r#type.is_some() {
            g.value_info.push(ValueInfoProto { name: Some(out.clone()), ..body.output[i].clone() });
        }
    }
    g.initializer.extend(body.initializer);
    g.sparse_initializer.extend(body.sparse_initializer);
    g.quantization_annotation.extend(body.quantization_annotation);
    g.node.splice(idx..=idx, body.node);
    Ok(())
}

/// A top-level control-flow node as `trtlens info` describes it.
#[derive(Debug, Clone, Serialize)]
pub struct ControlFlow {
    /// Node name.
    pub node: String,
    /// `If`, `Loop` or `Scan`.
    pub op_type: String,
    /// For an `If`: the condition tensor.
    pub condition: Option<String>,
    /// For an `If`: the graph inputs its condition is computed from (empty: a constant).
    pub selected_by: Vec<String>,
    /// For an `If` with a constant condition stored in the model: its value.
    pub constant: Option<bool>,
    /// Tensors inside its bodies.
    pub inner_tensors: usize,
}

/// The top-level control-flow nodes of a model: for an `If`, whether its condition is a constant
/// or computed from inputs (input-selected: `run` inlines the branch the inputs pick).
#[must_use]
pub fn control_flow(model: &Model) -> Vec<ControlFlow> {
    let g = model.graph_proto();
    let graph = &model.graph;
    let base = model.base_dir();
    graph
        .nodes
        .iter()
        .enumerate()
        .filter(|(_, n)| !n.subgraph_attrs.is_empty())
        .map(|(i, n)| {
            let inner_tensors = graph.subgraph_tensors.iter().filter(|s| s.owner == i).count();
            let mut cf = ControlFlow {
                node: n.display_name(),
                op_type: n.op_type.clone(),
                condition: None,
                selected_by: Vec::new(),
                constant: None,
                inner_tensors,
            };
            if n.op_type == "If"
                && n.domain.is_empty()
                && let Some(cond) = n.inputs.first()
            {
                cf.selected_by = Cone::of(graph, cond).inputs;
                if cf.selected_by.is_empty() {
                    cf.constant = known_value(&base, g, graph, cond, &[])
                        .and_then(std::result::Result::ok)
                        .and_then(|v| v.first().copied());
                }
                cf.condition = Some(cond.clone());
            }
            cf
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::proto::{AttributeProto, OperatorSetIdProto};
    use crate::samples::builder::{Attr, node_proto, value_info};

    type TestResult = std::result::Result<(), Box<dyn std::error::Error>>;

    fn body(name: &str, nodes: Vec<NodeProto>, outputs: &[&str]) -> GraphProto {
        GraphProto {
            node: nodes,
            name: Some(name.into()),
            output: outputs.iter().map(|o| value_info(o, data_type::FLOAT, &[2])).collect(),
            ..GraphProto::default()
        }
    }

    fn if_node(name: &str, cond: &str, then: GraphProto, els: GraphProto, outputs: &[&str]) -> NodeProto {
        NodeProto {
            attribute: vec![
                Attr::Graph(Box::new(then)).to_proto(THEN_BRANCH),
                Attr::Graph(Box::new(els)).to_proto(ELSE_BRANCH),
            ],
            ..node_proto(name, "If", &[cond], outputs)
        }
    }

    fn bool_const(name: &str, out: &str, v: bool) -> NodeProto {
        let t = Tensor::from_bool(&[], &[v]).expect("bool");
        NodeProto {
            attribute: vec![Attr::Tensor(Box::new(tensor_proto::from_tensor("", &t))).to_proto("value")],
            ..node_proto(name, "Constant", &[], &[out])
        }
    }

    /// `x[2]` float and `flag` bool inputs, the given nodes, outputs.
    fn model(nodes: Vec<NodeProto>, initializer: Vec<TensorProto>, outputs: &[&str]) -> Model {
        let g = GraphProto {
            node: nodes,
            name: Some("t".into()),
            initializer,
            input: vec![value_info("x", data_type::FLOAT, &[2]), value_info("flag", data_type::BOOL, &[])],
            output: outputs.iter().map(|o| value_info(o, data_type::FLOAT, &[2])).collect(),
            ..GraphProto::default()
        };
        let proto = ModelProto {
            ir_version: Some(8),
            opset_import: vec![OperatorSetIdProto { domain: Some(String::new()), version: Some(17) }],
            graph: Some(g),
            ..ModelProto::default()
        };
        let bytes = proto.encode_to_vec();
        Model::from_bytes(Path::new("t.onnx"), &bytes).expect("model")
    }

    fn feed(x: [f32; 2], flag: bool) -> Tensors {
        vec![
            ("x".into(), Tensor::from_f32(&[2], &x).expect("x")),
            ("flag".into(), Tensor::from_bool(&[], &[flag]).expect("flag")),
        ]
    }

    /// Run a specialized proto on tract and return the named tensors.
    fn run(
        m: &Model,
        proto: ModelProto,
        f: &Tensors,
        names: &[&str],
    ) -> std::result::Result<Tensors, Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let spec = materialize(m, proto, dir.path())?;
        let capture: Vec<String> = names.iter().map(ToString::to_string).collect();
        let mut r = runner::create(RunnerKind::Tract, &spec, &capture, &RunnerOptions::default())?;
        Ok(r.run(f)?.tensors)
    }

    fn values(ts: &Tensors, name: &str) -> Vec<f64> {
        runner::find(ts, name).map(Tensor::to_f64_vec).unwrap_or_default()
    }

    /// `y = If(flag) { Relu(x) } else { Neg(x) }`.
    fn flag_if() -> Model {
        let then = body("then", vec![node_proto("then/Relu", "Relu", &["x"], &["then/relu"])], &["then/relu"]);
        let els = body("else", vec![node_proto("else/Neg", "Neg", &["x"], &["else/neg"])], &["else/neg"]);
        model(vec![if_node("sel/If", "flag", then, els, &["y"])], vec![], &["y"])
    }

    #[test]
    fn an_input_condition_fixed_for_the_run_inlines_its_branch() -> TestResult {
        let m = flag_if();
        let iterations = [feed([1.0, -2.0], false), feed([3.0, 4.0], false)];
        let out = decide(&m, &iterations, &RunnerOptions::default())?;
        assert!(out.kept.is_empty(), "{:?}", out.kept);
        assert_eq!(
            out.specialized,
            [Specialized {
                node: "sel/If".into(),
                condition: "flag".into(),
                value: false,
                branch: ELSE_BRANCH.into(),
                inputs: vec!["flag".into()],
            }]
        );
        let proto = out.proto.ok_or("specialized")?;
        let g = proto.graph.as_ref().ok_or("graph")?;
        // The branch node writes the If's output name; nothing else is left of the If.
        assert_eq!(g.node.len(), 1);
        assert_eq!((g.node[0].op(), g.node[0].output.clone()), ("Neg", vec!["y".to_string()]));
        assert_eq!(values(&run(&m, proto.clone(), &iterations[0], &["y"])?, "y"), [-1.0, 2.0]);
        // Replaying the decisions gives the same model.
        assert_eq!(apply(&m.proto, &out.specialized)?, proto);
        Ok(())
    }

    #[test]
    fn a_condition_that_differs_between_iterations_is_kept_with_the_reason() -> TestResult {
        let m = flag_if();
        let out = decide(&m, &[feed([1.0, 2.0], true), feed([1.0, 2.0], false)], &RunnerOptions::default())?;
        assert!(out.specialized.is_empty() && out.proto.is_none());
        assert_eq!(out.kept.len(), 1);
        assert_eq!(out.kept[0].node, "sel/If");
        assert!(out.kept[0].reason.contains("differs between iterations"), "{}", out.kept[0].reason);
        assert!(out.kept[0].reason.contains("true in iteration 0, false in iteration 1"), "{}", out.kept[0].reason);
        Ok(())
    }

    #[test]
    fn constant_conditions_need_no_inputs() -> TestResult {
        // An initializer condition and a Constant node condition, folded through a Not.
        let c = tensor_proto::from_tensor("c", &Tensor::from_bool(&[], &[true])?);
        let a = if_node(
            "a/If",
            "c",
            body("a_then", vec![node_proto("a/Relu", "Relu", &["x"], &["a/relu"])], &["a/relu"]),
            body("a_else", vec![node_proto("a/Neg", "Neg", &["x"], &["a/neg"])], &["a/neg"]),
            &["ya"],
        );
        let b = if_node(
            "b/If",
            "b/not",
            body("b_then", vec![node_proto("b/Relu", "Relu", &["x"], &["b/relu"])], &["b/relu"]),
            body("b_else", vec![node_proto("b/Neg", "Neg", &["x"], &["b/neg"])], &["b/neg"]),
            &["yb"],
        );
        let m = model(
            vec![bool_const("b/Constant", "b/c", true), node_proto("b/Not", "Not", &["b/c"], &["b/not"]), a, b],
            vec![c],
            &["ya", "yb"],
        );
        let info = control_flow(&m);
        assert_eq!(info.len(), 2);
        assert!(info.iter().all(|i| i.selected_by.is_empty()), "constant conditions read no input");
        assert_eq!(info[0].constant, Some(true), "an initializer's value is known without running");
        let out = decide(&m, &[], &RunnerOptions::default())?;
        let got: Vec<(&str, bool, &str)> =
            out.specialized.iter().map(|s| (s.node.as_str(), s.value, s.branch.as_str())).collect();
        assert_eq!(got, [("a/If", true, THEN_BRANCH), ("b/If", false, ELSE_BRANCH)]);
        let ts = run(&m, out.proto.ok_or("specialized")?, &feed([1.0, -2.0], true), &["ya", "yb"])?;
        assert_eq!((values(&ts, "ya"), values(&ts, "yb")), (vec![1.0, 0.0], vec![-1.0, 2.0]));
        Ok(())
    }

    #[test]
    fn nested_ifs_are_inlined_to_a_fixed_point() -> TestResult {
        // outer If(flag): then { inner If(Constant true) { Relu } else { Neg } → Abs }, else { Neg }.
        let inner = if_node(
            "inner/If",
            "inner/c",
            body("i_then", vec![node_proto("inner/Relu", "Relu", &["x"], &["inner/relu"])], &["inner/relu"]),
            body("i_else", vec![node_proto("inner/Neg", "Neg", &["x"], &["inner/neg"])], &["inner/neg"]),
            &["inner/y"],
        );
        let then = body(
            "o_then",
            vec![
                bool_const("inner/Constant", "inner/c", true),
                inner,
                node_proto("outer/Abs", "Abs", &["inner/y"], &["outer/abs"]),
            ],
            &["outer/abs"],
        );
        let els = body("o_else", vec![node_proto("outer/Neg", "Neg", &["x"], &["outer/neg"])], &["outer/neg"]);
        let m = model(vec![if_node("outer/If", "flag", then, els, &["y"])], vec![], &["y"]);
        let f = feed([1.5, -2.0], true);
        let out = decide(&m, std::slice::from_ref(&f), &RunnerOptions::default())?;
        let nodes: Vec<&str> = out.specialized.iter().map(|s| s.node.as_str()).collect();
        assert_eq!(nodes, ["outer/If", "inner/If"], "parent first, then the If it contained");
        let proto = out.proto.ok_or("specialized")?;
        let g = proto.graph.as_ref().ok_or("graph")?;
        assert!(!g.node.iter().any(is_if), "no If is left");
        let ts = run(&m, proto.clone(), &f, &["inner/y", "y"])?;
        assert_eq!((values(&ts, "inner/y"), values(&ts, "y")), (vec![1.5, 0.0], vec![1.5, 0.0]));
        assert_eq!(apply(&m.proto, &out.specialized)?, proto);
        Ok(())
    }

    #[test]
    fn names_taken_outside_get_a_suffix_and_nested_reads_follow() -> TestResult {
        // The main graph already has tensor "t" and node "n"; the branch defines both again, keeps an
        // initializer "w" whose name is taken too, passes x straight through as a second output, and
        // holds an If that reads its "t" from the outer scope.
        let keep_inner = if_node(
            "deep/If",
            "flag",
            body("d_then", vec![node_proto("deep/Add", "Add", &["t", "w"], &["deep/add"])], &["deep/add"]),
            body("d_else", vec![node_proto("deep/Sub", "Sub", &["t", "w"], &["deep/sub"])], &["deep/sub"]),
            &["deep/y"],
        );
        let mut then = body("then", vec![node_proto("n", "Relu", &["x"], &["t"]), keep_inner], &["deep/y", "x"]);
        then.initializer.push(tensor_proto::from_tensor("w", &Tensor::from_f32(&[2], &[10.0, 20.0])?));
        then.value_info.push(value_info("t", data_type::FLOAT, &[2]));
        let els = body(
            "else",
            vec![node_proto("e/Neg", "Neg", &["x"], &["e/neg"]), node_proto("e/Neg2", "Neg", &["x"], &["e/neg2"])],
            &["e/neg", "e/neg2"],
        );
        let w = tensor_proto::from_tensor("w", &Tensor::from_f32(&[2], &[1.0, 1.0])?);
        let nodes = vec![
            node_proto("n", "Neg", &["x"], &["t"]),
            node_proto("m", "Add", &["t", "w"], &["z"]),
            if_node("sel/If", "c", then, els, &["y", "y2"]),
        ];
        let c = tensor_proto::from_tensor("c", &Tensor::from_bool(&[], &[true])?);
        let m = model(nodes, vec![w, c], &["z", "y", "y2"]);
        // Only the constant If is decided: the inner one depends on the iterations, which differ.
        let iterations = [feed([1.0, -2.0], true), feed([1.0, -2.0], false)];
        let out = decide(&m, &iterations, &RunnerOptions::default())?;
        assert_eq!(out.specialized.len(), 1);
        assert_eq!(out.kept.iter().map(|k| k.node.as_str()).collect::<Vec<_>>(), ["deep/If"]);
        let proto = out.proto.ok_or("specialized")?;
        let g = proto.graph.as_ref().ok_or("graph")?;
        let names: Vec<(&str, &str, Vec<String>)> =
            g.node.iter().map(|n| (n.node_name(), n.op(), n.output.clone())).collect();
        assert_eq!(
            names,
            [
                ("n", "Neg", vec!["t".to_string()]),
                ("m", "Add", vec!["z".to_string()]),
                ("n_2", "Relu", vec!["t_2".to_string()]),
                ("deep/If", "If", vec!["y".to_string()]),
                ("sel/If/then_branch/Identity", "Identity", vec!["y2".to_string()]),
            ]
        );
        assert_eq!(g.node[4].input, ["x"]);
        let moved: Vec<&str> = g.initializer.iter().map(TensorProto::tensor_name).collect();
        assert_eq!(moved, ["w", "c", "w_2"]);
        assert!(g.value_info.iter().any(|v| v.value_name() == "t_2"), "the branch's value_info moves and is renamed");
        // The kept If's bodies read the renamed outer tensors.
        let deep = &g.node[3];
        let reads: Vec<String> = deep
            .attribute
            .iter()
            .flat_map(|a: &AttributeProto| a.g.iter())
            .flat_map(|b| b.node[0].input.clone())
            .collect();
        assert_eq!(reads, ["t_2", "w_2", "t_2", "w_2"]);
        let ts = run(&m, proto, &iterations[0], &["t", "z", "y", "y2"])?;
        assert_eq!(values(&ts, "t"), [-1.0, 2.0]);
        assert_eq!(values(&ts, "z"), [0.0, 3.0]);
        assert_eq!(values(&ts, "y"), [11.0, 20.0], "relu(x) + the branch's own w");
        assert_eq!(values(&ts, "y2"), [1.0, -2.0]);
        Ok(())
    }

    #[test]
    fn conditions_computed_through_a_kept_if_are_evaluated_with_it() -> TestResult {
        // A = If(flag) { Relu(x) } else { Neg(x) } differs between iterations and stays. B's condition,
        // "A's output has 2 elements", is true whatever A does; C's, "sum(A) > 0", is not.
        let a = if_node(
            "a/If",
            "flag",
            body("a_then", vec![node_proto("a/Relu", "Relu", &["x"], &["a/relu"])], &["a/relu"]),
            body("a_else", vec![node_proto("a/Neg", "Neg", &["x"], &["a/neg"])], &["a/neg"]),
            &["a"],
        );
        let branch = |p: &str| {
            (
                body(
                    &format!("{p}_then"),
                    vec![node_proto(&format!("{p}/Abs"), "Abs", &["x"], &[&format!("{p}/abs")])],
                    &[&format!("{p}/abs")],
                ),
                body(
                    &format!("{p}_else"),
                    vec![node_proto(&format!("{p}/Neg"), "Neg", &["x"], &[&format!("{p}/neg")])],
                    &[&format!("{p}/neg")],
                ),
            )
        };
        let (bt, be) = branch("b");
        let (ct, ce) = branch("c");
        let inits = vec![
            tensor_proto::from_tensor("zero_i", &Tensor::from_i64(&[], &[0])?),
            tensor_proto::from_tensor("two", &Tensor::from_i64(&[], &[2])?),
            tensor_proto::from_tensor("zero_f", &Tensor::from_f32(&[], &[0.0])?),
        ];
        let nodes = vec![
            a,
            node_proto("b/Shape", "Shape", &["a"], &["b/shape"]),
            node_proto("b/Gather", "Gather", &["b/shape", "zero_i"], &["b/len"]),
            node_proto("b/Equal", "Equal", &["b/len", "two"], &["b/cond"]),
            if_node("b/If", "b/cond", bt, be, &["yb"]),
            node_proto("c/ReduceSum", "ReduceSum", &["a"], &["c/sum"]),
            node_proto("c/Greater", "Greater", &["c/sum", "zero_f"], &["c/cond"]),
            if_node("c/If", "c/cond", ct, ce, &["yc"]),
        ];
        let m = model(nodes, inits, &["a", "yb", "yc"]);
        let out = decide(&m, &[feed([2.0, -1.0], true), feed([2.0, -1.0], false)], &RunnerOptions::default())?;
        assert_eq!(out.specialized.iter().map(|s| (s.node.as_str(), s.value)).collect::<Vec<_>>(), [("b/If", true)]);
        assert_eq!(out.specialized[0].inputs, ["x", "flag"], "the cone reads both inputs through a/If");
        let kept: Vec<(&str, &str)> = out.kept.iter().map(|k| (k.node.as_str(), k.reason.as_str())).collect();
        assert_eq!(kept.len(), 2, "{kept:?}");
        assert!(kept[0].0 == "a/If" && kept[0].1.contains("differs"), "{kept:?}");
        assert!(kept[1].0 == "c/If" && kept[1].1.contains("computed through If 'a/If'"), "{kept:?}");
        assert!(kept[1].1.contains("differs between iterations"), "{kept:?}");
        Ok(())
    }

    #[test]
    fn replaying_on_another_model_is_an_error() {
        let m = flag_if();
        let d = Specialized {
            node: "other/If".into(),
            condition: "flag".into(),
            value: true,
            branch: THEN_BRANCH.into(),
            inputs: vec![],
        };
        assert!(apply(&m.proto, &[d]).is_err_and(|e| e.to_string().contains("another model")));
    }
}
