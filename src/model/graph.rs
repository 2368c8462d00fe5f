//! The analysed graph: nodes in topological order, tensors with producer/consumer links, declared
//! dtypes and shapes, initializers vs activations, and the tensors hidden inside If/Loop/Scan bodies.
//!
//! The graph only describes the model; run results are never stored in it but keyed by tensor name
//! in side tables (the run store), so the same graph serves every runner.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Serialize;

use super::proto::{GraphProto, NodeProto, TypeProto, ValueInfoProto, tensor_shape_proto::dimension, type_proto};
use crate::error::{Error, Result};

/// One dimension of a declared shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Dim {
    /// A fixed size.
    Fixed(i64),
    /// A named dynamic dimension (`batch`, `seq_len`).
    Param(String),
    /// A dimension with neither a value nor a name.
    Unknown,
}

impl std::fmt::Display for Dim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Dim::Fixed(v) => write!(f, "{v}"),
            Dim::Param(p) => f.write_str(p),
            Dim::Unknown => f.write_str("?"),
        }
    }
}

/// `1x3xHxW` style text for a declared shape.
#[must_use]
pub fn dims_string(dims: &[Dim]) -> String {
    if dims.is_empty() {
        return "scalar".into();
    }
    dims.iter().map(ToString::to_string).collect::<Vec<_>>().join("x")
}

/// The declared type of a value.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct ValueType {
    /// ONNX element type number (None when undeclared or not a tensor).
    pub elem_type: Option<i32>,
    /// Declared shape (None when the rank is unknown).
    pub shape: Option<Vec<Dim>>,
    /// `tensor`, `sequence`, `map`, `optional`, `sparse_tensor`, or empty when undeclared.
    pub kind: &'static str,
}

impl ValueType {
    /// From a `TypeProto`.
    #[must_use]
    pub fn from_proto(t: Option<&TypeProto>) -> ValueType {
        let Some(v) = t.and_then(|t| t.value.as_ref()) else { return ValueType::default() };
        match v {
            type_proto::Value::TensorType(tt) => ValueType {
                elem_type: tt.elem_type,
                shape: tt.shape.as_ref().map(|s| {
                    s.dim
                        .iter()
                        .map(|d| match &d.value {
                            Some(dimension::Value::DimValue(v)) => Dim::Fixed(*v),
                            Some(dimension::Value::DimParam(p)) => Dim::Param(p.clone()),
                            None => Dim::Unknown,
                        })
                        .collect()
                }),
                kind: "tensor",
            },
            type_proto::Value::SequenceType(_) => ValueType { kind: "sequence", ..ValueType::default() },
            type_proto::Value::MapType(_) => ValueType { kind: "map", ..ValueType::default() },
            type_proto::Value::OptionalType(_) => ValueType { kind: "optional", ..ValueType::default() },
            type_proto::Value::SparseTensorType(s) => {
                ValueType { elem_type: s.elem_type, kind: "sparse_tensor", ..ValueType::default() }
            }
        }
    }

    fn from_value_info(v: &ValueInfoProto) -> ValueType {
        ValueType::from_proto(v.r#type.as_ref())
    }
}

/// What a tensor is in the graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TensorKind {
    /// A graph input that is not an initializer: data the user feeds.
    Input,
    /// A weight (initializer), including initializers that are also listed as inputs.
    Initializer,
    /// Produced by a node of the main graph.
    Activation,
}

/// A tensor of the main graph.
#[derive(Debug, Clone, Serialize)]
pub struct TensorInfo {
    /// ONNX name.
    pub name: String,
    /// Input, initializer or activation.
    pub kind: TensorKind,
    /// Declared type and shape, when the model states one (inputs, outputs, `value_info`, initializers).
    pub ty: ValueType,
    /// Index into [`Graph::nodes`] of the producing node.
    pub producer: Option<usize>,
    /// Indices into [`Graph::nodes`] of consuming nodes (each once), in topological order.
    pub consumers: Vec<usize>,
    /// True when this tensor is a graph output.
    pub is_output: bool,
}

/// A node of the main graph.
#[derive(Debug, Clone, Serialize)]
pub struct Node {
    /// Node name; ONNX allows it to be empty, in which case [`Node::display_name`] synthesises one.
    pub name: String,
    /// Operator type.
    pub op_type: String,
    /// Operator domain ("" for the default ONNX domain).
    pub domain: String,
    /// Input tensor names ("" for an omitted optional input).
    pub inputs: Vec<String>,
    /// Output tensor names ("" for an omitted optional output).
    pub outputs: Vec<String>,
    /// Position of the node in the model file's node list.
    pub proto_index: usize,
    /// Attribute names holding subgraphs (If `then_branch`/`else_branch`, Loop/Scan `body`).
    pub subgraph_attrs: Vec<String>,
    /// Outer-scope tensors the node's subgraphs read implicitly.
    pub implicit_inputs: Vec<String>,
}

impl Node {
    /// True for a default-domain `Constant` node.
    #[must_use]
    pub fn is_constant(&self) -> bool {
        self.op_type == "Constant" && (self.domain.is_empty() || self.domain == "ai.onnx")
    }

    /// The node name, or `<op_type>#<proto_index>` when the model leaves it empty.
    #[must_use]
    pub fn display_name(&self) -> String {
        if self.name.is_empty() { format!("{}#{}", self.op_type, self.proto_index) } else { self.name.clone() }
    }
}

/// A tensor that lives inside a subgraph body: not observable from outside the control-flow node.
#[derive(Debug, Clone, Serialize)]
pub struct SubgraphTensor {
    /// Name inside the body.
    pub name: String,
    /// Index into [`Graph::nodes`] of the control-flow node that owns the body.
    pub owner: usize,
    /// `attr` or `attr/inner_node/attr` path of the body.
    pub body: String,
}

/// The analysed main graph.
#[derive(Debug, Clone, Serialize)]
pub struct Graph {
    /// Nodes in topological order (stable: the file order wherever it is already valid).
    pub nodes: Vec<Node>,
    /// Every tensor of the main graph, by name.
    pub tensors: BTreeMap<String, TensorInfo>,
    /// Data inputs (graph inputs that are not initializers), in declaration order.
    pub inputs: Vec<String>,
    /// Graph outputs in declaration order.
    pub outputs: Vec<String>,
    /// Tensors produced inside If/Loop/Scan bodies.
    pub subgraph_tensors: Vec<SubgraphTensor>,
}

impl Graph {
    /// Analyse a `GraphProto`.
    pub fn build(g: &GraphProto) -> Result<Graph> {
        let initializer_names: HashSet<&str> = g
            .initializer
            .iter()
            .map(super::proto::TensorProto::tensor_name)
            .chain(
                g.sparse_initializer
                    .iter()
                    .filter_map(|s| s.values.as_ref().map(super::proto::TensorProto::tensor_name)),
            )
            .collect();

        let mut declared: HashMap<&str, ValueType> = HashMap::new();
        for v in g.value_info.iter().chain(&g.input).chain(&g.output) {
            declared.insert(v.value_name(), ValueType::from_value_info(v));
        }

        let mut tensors: BTreeMap<String, TensorInfo> = BTreeMap::new();
        let add = |name: &str, kind: TensorKind, ty: ValueType, tensors: &mut BTreeMap<String, TensorInfo>| {
            tensors.insert(
                name.to_string(),
                TensorInfo { name: name.to_string(), kind, ty, producer: None, consumers: vec![], is_output: false },
            );
        };
        for init in &g.initializer {
            let ty = ValueType {
                elem_type: init.data_type,
                shape: Some(init.dims.iter().map(|&d| Dim::Fixed(d)).collect()),
                kind: "tensor",
            };
            add(init.tensor_name(), TensorKind::Initializer, ty, &mut tensors);
        }
        for s in &g.sparse_initializer {
            if let Some(v) = &s.values {
                let ty = ValueType {
                    elem_type: v.data_type,
                    shape: Some(s.dims.iter().map(|&d| Dim::Fixed(d)).collect()),
                    kind: "sparse_tensor",
                };
                add(v.tensor_name(), TensorKind::Initializer, ty, &mut tensors);
            }
        }
        let mut inputs = Vec::new();
        for v in &g.input {
            let name = v.value_name();
            if initializer_names.contains(name) {
                continue;
            }
            if tensors.contains_key(name) {
                return Err(Error::input(format!("graph input '{name}' is declared twice")));
            }
            add(name, TensorKind::Input, ValueType::from_value_info(v), &mut tensors);
            inputs.push(name.to_string());
        }

        // Nodes (file order), their subgraph outer references.
        let mut raw_nodes: Vec<Node> = Vec::with_capacity(g.node.len());
        let mut subgraph_tensors = Vec::new();
        for (i, n) in g.node.iter().enumerate() {
            let mut subgraph_attrs = Vec::new();
            let mut implicit = Vec::new();
            for a in &n.attribute {
                let attr = a.name.clone().unwrap_or_default();
                let bodies: Vec<&GraphProto> = a.g.iter().chain(a.graphs.iter()).collect();
                for body in bodies {
                    subgraph_attrs.push(attr.clone());
                    let mut inner = Vec::new();
                    collect_outer_refs(body, &mut implicit, &mut inner, &attr);
                    subgraph_tensors.extend(inner.into_iter().map(|(name, path)| SubgraphTensor {
                        name,
                        owner: i,
                        body: path,
                    }));
                }
            }
            implicit.retain(|n| !n.is_empty());
            implicit.sort();
            implicit.dedup();
            raw_nodes.push(Node {
                name: n.node_name().to_string(),
                op_type: n.op().to_string(),
                domain: n.domain.clone().unwrap_or_default(),
                inputs: n.input.clone(),
                outputs: n.output.clone(),
                proto_index: i,
                subgraph_attrs,
                implicit_inputs: implicit,
            });
        }

        // Producers (by raw index), duplicate checks.
        let mut producer_raw: HashMap<&str, usize> = HashMap::new();
        for (i, n) in raw_nodes.iter().enumerate() {
            for o in n.outputs.iter().filter(|o| !o.is_empty()) {
                if let Some(k) = tensors.get(o.as_str()) {
                    let what = if k.kind == TensorKind::Input { "a graph input" } else { "an initializer" };
                    return Err(Error::input(format!(
                        "tensor '{o}' is produced by node '{}' but is also {what}",
                        n.display_name()
                    )));
                }
                if let Some(&prev) = producer_raw.get(o.as_str()) {
                    return Err(Error::input(format!(
                        "tensor '{o}' is produced twice (nodes '{}' and '{}')",
                        raw_nodes[prev].display_name(),
                        n.display_name()
                    )));
                }
                producer_raw.insert(o.as_str(), i);
            }
        }

        let order = topo_order(&raw_nodes, &producer_raw)?;
        let mut nodes: Vec<Node> = order.iter().map(|&i| raw_nodes[i].clone()).collect();
        let mut new_index = vec![0usize; raw_nodes.len()];
        for (new, &old) in order.iter().enumerate() {
            new_index[old] = new;
        }
        for s in &mut subgraph_tensors {
            s.owner = new_index[s.owner];
        }

        for (i, n) in nodes.iter().enumerate() {
            for o in n.outputs.iter().filter(|o| !o.is_empty()) {
                let ty = declared.get(o.as_str()).cloned().unwrap_or_default();
                tensors.insert(
                    o.clone(),
                    TensorInfo {
                        name: o.clone(),
                        kind: TensorKind::Activation,
                        ty,
                        producer: Some(i),
                        consumers: vec![],
                        is_output: false,
                    },
                );
            }
        }
        for (i, n) in nodes.iter_mut().enumerate() {
            let mut seen = HashSet::new();
            for inp in n.inputs.iter().chain(&n.implicit_inputs).filter(|s| !s.is_empty()) {
                if !seen.insert(inp.clone()) {
                    continue;
                }
                match tensors.get_mut(inp) {
                    Some(t) => t.consumers.push(i),
                    None => {
                        return Err(Error::input(format!(
                            "node '{}' ({}) reads tensor '{inp}', which no node, input or initializer provides",
                            n.display_name(),
                            n.op_type
                        )));
                    }
                }
            }
        }
        let mut outputs = Vec::new();
        for o in &g.output {
            let name = o.value_name();
            match tensors.get_mut(name) {
                Some(t) => t.is_output = true,
                None => {
                    return Err(Error::input(format!("graph output '{name}' is not produced by any node or input")));
                }
            }
            outputs.push(name.to_string());
        }
        Ok(Graph { nodes, tensors, inputs, outputs, subgraph_tensors })
    }

    /// The tensors a run captures, in topological order: every output of every node except
    /// `Constant` nodes, whose outputs are model data rather than computation (the same set
    /// Polygraphy's `--onnx-outputs mark all` captures; `TensorRT` cannot mark them either).
    #[must_use]
    pub fn captured(&self) -> Vec<&str> {
        self.nodes
            .iter()
            .filter(|n| !n.is_constant())
            .flat_map(|n| n.outputs.iter().filter(|o| !o.is_empty()).map(String::as_str))
            .collect()
    }

    /// Look up a tensor.
    #[must_use]
    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.tensors.get(name)
    }

    /// The node that produces `tensor`, if any.
    #[must_use]
    pub fn producer(&self, tensor: &str) -> Option<&Node> {
        self.tensors.get(tensor).and_then(|t| t.producer).map(|i| &self.nodes[i])
    }
}

/// Names a body reads from outside it (recursively through nested bodies), and the tensors it
/// produces inside (with their body path).
fn collect_outer_refs(body: &GraphProto, outer: &mut Vec<String>, inner: &mut Vec<(String, String)>, path: &str) {
    let mut local: HashSet<String> = HashSet::new();
    for v in &body.input {
        local.insert(v.value_name().to_string());
    }
    for t in &body.initializer {
        local.insert(t.tensor_name().to_string());
    }
    for n in &body.node {
        for o in &n.output {
            local.insert(o.clone());
        }
    }
    for n in &body.node {
        for o in n.output.iter().filter(|o| !o.is_empty()) {
            inner.push((o.clone(), path.to_string()));
        }
        let mut reads: Vec<String> = n.input.clone();
        for a in &n.attribute {
            for g in a.g.iter().chain(a.graphs.iter()) {
                let mut nested = Vec::new();
                let nested_path = format!("{path}/{}/{}", node_label(n), a.name.as_deref().unwrap_or(""));
                collect_outer_refs(g, &mut nested, inner, &nested_path);
                reads.extend(nested);
            }
        }
        for r in reads {
            if !r.is_empty() && !local.contains(&r) {
                outer.push(r);
            }
        }
    }
    for o in &body.output {
        let n = o.value_name();
        if !local.contains(n) {
            outer.push(n.to_string());
        }
    }
}

fn node_label(n: &NodeProto) -> String {
    if n.node_name().is_empty() { n.op().to_string() } else { n.node_name().to_string() }
}

/// Kahn's algorithm, choosing the lowest file index among ready nodes so that an already-sorted
/// file keeps its order.
fn topo_order(nodes: &[Node], producer: &HashMap<&str, usize>) -> Result<Vec<usize>> {
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;
    let mut indegree = vec![0usize; nodes.len()];
    let mut dependents: Vec<Vec<usize>> = vec![vec![]; nodes.len()];
    for (i, n) in nodes.iter().enumerate() {
        let mut deps: Vec<usize> = n
            .inputs
            .iter()
            .chain(&n.implicit_inputs)
            .filter(|s| !s.is_empty())
            .filter_map(|s| producer.get(s.as_str()).copied())
            .collect();
        deps.sort_unstable();
        deps.dedup();
        for d in deps {
            if d == i {
                return Err(Error::input(format!("node '{}' reads its own output", n.display_name())));
            }
            indegree[i] += 1;
            dependents[d].push(i);
        }
    }
    let mut ready: BinaryHeap<Reverse<usize>> = (0..nodes.len()).filter(|&i| indegree[i] == 0).map(Reverse).collect();
    let mut order = Vec::with_capacity(nodes.len());
    while let Some(Reverse(i)) = ready.pop() {
        order.push(i);
        for &d in &dependents[i] {
            indegree[d] -= 1;
            if indegree[d] == 0 {
                ready.push(Reverse(d));
            }
        }
    }
    if order.len() != nodes.len() {
        let stuck: Vec<String> =
            (0..nodes.len()).filter(|&i| indegree[i] > 0).take(5).map(|i| nodes[i].display_name()).collect();
        return Err(Error::input(format!("the graph has a cycle (nodes involved include: {})", stuck.join(", "))));
    }
    Ok(order)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::proto::ValueInfoProto;

    use crate::samples::builder::node_proto as node;
    fn vi(name: &str) -> ValueInfoProto {
        ValueInfoProto { name: Some(name.into()), ..Default::default() }
    }

    #[test]
    fn sorts_out_of_order_nodes_stably() -> Result<()> {
        let g = GraphProto {
            node: vec![
                node("b", "Relu", &["t1"], &["y"]),
                node("a", "Neg", &["x"], &["t1"]),
                node("c", "Neg", &["x"], &["z"]),
            ],
            input: vec![vi("x")],
            output: vec![vi("y"), vi("z")],
            ..Default::default()
        };
        let graph = Graph::build(&g)?;
        let names: Vec<_> = graph.nodes.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["a", "b", "c"]);
        assert_eq!(graph.captured(), ["t1", "y", "z"]);
        assert_eq!(graph.tensor("x").map(|t| t.consumers.clone()), Some(vec![0, 2]));
        assert!(graph.tensor("y").is_some_and(|t| t.is_output));
        Ok(())
    }

    #[test]
    fn cycles_and_dangling_inputs_are_errors() {
        let cyc = GraphProto {
            node: vec![node("a", "Neg", &["t2"], &["t1"]), node("b", "Neg", &["t1"], &["t2"])],
            ..Default::default()
        };
        assert!(Graph::build(&cyc).is_err_and(|e| e.to_string().contains("cycle")));
        let dangling = GraphProto { node: vec![node("a", "Neg", &["nope"], &["t1"])], ..Default::default() };
        assert!(Graph::build(&dangling).is_err_and(|e| e.to_string().contains("'nope'")));
    }
}
