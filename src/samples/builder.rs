//! A small ONNX graph builder over the `prost` types of [`crate::model::proto`].
//!
//! It is made for the hand-written sample models: static or symbolic shapes (see [`Dim`]), named
//! nodes, and a declared type (`value_info`) for every tensor a node produces, because `TensorRT`'s parser and trtlens' own reports
//! read declared types. Mistakes in a sample (a duplicate name, a node reading a tensor nobody
//! produces, an output that does not exist) are programming errors and panic with a message.
//!
//! ```
//! use trtlens::model::proto::data_type;
//! use trtlens::samples::builder::{Attr, GraphBuilder};
//!
//! let mut b = GraphBuilder::new("tiny", 1);
//! b.input("x", data_type::FLOAT, &[1, 4]);
//! b.weight("w", &[4, 2], -1.0, 1.0);
//! b.node("MatMul", "tiny/MatMul", &["x", "w"], &[("y", &[1, 2])], &[]);
//! b.node("Softmax", "tiny/Softmax", &["y"], &[("probs", &[1, 2])], &[("axis", Attr::Int(-1))]);
//! b.output("probs");
//! let model = b.build("a tiny model");
//! assert_eq!(model.graph.as_ref().map(|g| g.node.len()), Some(2));
//! ```

use std::collections::{BTreeMap, BTreeSet};

use super::rng::Rng;
use crate::model::proto::{
    AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto, TensorShapeProto, TypeProto,
    ValueInfoProto, attribute_type, data_type, tensor_shape_proto, type_proto,
};
use crate::model::tensor_proto::from_tensor;
use crate::tensor::Tensor;

/// IR version of the sample models (ONNX 1.10+, read by every current `TensorRT`).
pub const IR_VERSION: i64 = 8;
/// Default-domain opset of the sample models.
pub const OPSET: i64 = 17;
/// `producer_name` of the sample models.
pub const PRODUCER: &str = "trtlens-samples";

/// A node attribute value.
#[derive(Debug, Clone, PartialEq)]
pub enum Attr {
    /// `INT`.
    Int(i64),
    /// `INTS`.
    Ints(Vec<i64>),
    /// `FLOAT`.
    Float(f32),
    /// `FLOATS`.
    Floats(Vec<f32>),
    /// `STRING` (UTF-8).
    String(String),
    /// `TENSOR`.
    Tensor(Box<TensorProto>),
    /// `GRAPH` (a control-flow body: `If`'s `then_branch`/`else_branch`).
    Graph(Box<GraphProto>),
}

impl Attr {
    /// The attribute as a proto named `name`.
    #[must_use]
    pub fn to_proto(&self, name: &str) -> AttributeProto {
        let mut a = AttributeProto { name: Some(name.to_string()), ..AttributeProto::default() };
        match self {
            Attr::Int(v) => {
                a.r#type = Some(attribute_type::INT);
                a.i = Some(*v);
            }
            Attr::Ints(v) => {
                a.r#type = Some(attribute_type::INTS);
                a.ints.clone_from(v);
            }
            Attr::Float(v) => {
                a.r#type = Some(attribute_type::FLOAT);
                a.f = Some(*v);
            }
            Attr::Floats(v) => {
                a.r#type = Some(attribute_type::FLOATS);
                a.floats.clone_from(v);
            }
            Attr::String(v) => {
                a.r#type = Some(attribute_type::STRING);
                a.s = Some(v.as_bytes().to_vec());
            }
            Attr::Tensor(t) => {
                a.r#type = Some(attribute_type::TENSOR);
                a.t = Some(t.as_ref().clone());
            }
            Attr::Graph(g) => {
                a.r#type = Some(attribute_type::GRAPH);
                a.g = Some(g.as_ref().clone());
            }
        }
        a
    }
}

/// A `NodeProto` named `name` of op type `op` with these inputs and outputs and no attributes
/// (for graphs built by hand, including deliberately broken ones the builder would refuse).
#[must_use]
pub fn node_proto(name: &str, op: &str, inputs: &[&str], outputs: &[&str]) -> NodeProto {
    NodeProto {
        name: Some(name.to_string()),
        op_type: Some(op.to_string()),
        input: inputs.iter().map(ToString::to_string).collect(),
        output: outputs.iter().map(ToString::to_string).collect(),
        ..NodeProto::default()
    }
}

/// One dimension of a declared shape: a size, or a symbolic name (`dim_param`) as exporters write
/// for dynamic axes (`batch`, `height`) and for sizes derived from them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dim<'a> {
    /// A fixed size (`dim_value`).
    Fixed(i64),
    /// A symbolic size (`dim_param`).
    Param(&'a str),
}

/// A `ValueInfoProto` for a tensor of element type `dtype` and static shape `shape`.
#[must_use]
pub fn value_info(name: &str, dtype: i32, shape: &[i64]) -> ValueInfoProto {
    let dims: Vec<Dim> = shape.iter().map(|&d| Dim::Fixed(d)).collect();
    value_info_dims(name, dtype, &dims)
}

/// A `ValueInfoProto` for a tensor of element type `dtype` whose dimensions may be symbolic.
#[must_use]
pub fn value_info_dims(name: &str, dtype: i32, dims: &[Dim]) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|d| tensor_shape_proto::Dimension {
            value: Some(match *d {
                Dim::Fixed(v) => tensor_shape_proto::dimension::Value::DimValue(v),
                Dim::Param(p) => tensor_shape_proto::dimension::Value::DimParam(p.to_string()),
            }),
            denotation: None,
        })
        .collect();
    ValueInfoProto {
        name: Some(name.to_string()),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: Some(dtype),
                shape: Some(TensorShapeProto { dim }),
            })),
            denotation: None,
        }),
        ..ValueInfoProto::default()
    }
}

/// Builds one `ModelProto` (IR [`IR_VERSION`], opset [`OPSET`], producer [`PRODUCER`]).
#[derive(Debug, Clone)]
pub struct GraphBuilder {
    name: String,
    rng: Rng,
    nodes: Vec<NodeProto>,
    inputs: Vec<ValueInfoProto>,
    initializers: Vec<TensorProto>,
    /// Declared types of node outputs, in creation order.
    values: Vec<ValueInfoProto>,
    outputs: Vec<String>,
    /// Every tensor name (inputs, initializers, node outputs).
    tensors: BTreeSet<String>,
    node_names: BTreeSet<String>,
    /// Where each node output is declared in `values`.
    value_index: BTreeMap<String, usize>,
    /// For a body ([`GraphBuilder::body`]): the names of the enclosing scopes, readable here.
    outer: BTreeSet<String>,
}

impl GraphBuilder {
    /// An empty graph named `name`; `seed` starts the weight generator.
    #[must_use]
    pub fn new(name: &str, seed: u64) -> GraphBuilder {
        GraphBuilder {
            name: name.to_string(),
            rng: Rng::new(seed),
            nodes: Vec::new(),
            inputs: Vec::new(),
            initializers: Vec::new(),
            values: Vec::new(),
            outputs: Vec::new(),
            tensors: BTreeSet::new(),
            node_names: BTreeSet::new(),
            value_index: BTreeMap::new(),
            outer: BTreeSet::new(),
        }
    }

    /// A builder for a control-flow body of this graph (an `If` branch): it reads every tensor defined
    /// so far in the enclosing graph (outer scope), and the names it defines are new to both scopes,
    /// as ONNX requires. Finish it with [`GraphBuilder::if_node`].
    #[must_use]
    pub fn body(&self, name: &str) -> GraphBuilder {
        GraphBuilder {
            name: name.to_string(),
            tensors: self.tensors.clone(),
            node_names: self.node_names.clone(),
            outer: self.tensors.clone(),
            ..GraphBuilder::new(name, 0)
        }
    }

    /// Add an `If` node choosing between two bodies made with [`GraphBuilder::body`]; each body's
    /// declared outputs ([`GraphBuilder::output`]) become the node's float32 `outputs`, in order.
    /// The names the bodies define stay reserved in this graph. Returns the first output's name.
    pub fn if_node(
        &mut self,
        name: &str,
        cond: &str,
        then_branch: GraphBuilder,
        else_branch: GraphBuilder,
        outputs: &[(&str, &[i64])],
    ) -> String {
        for body in [&then_branch, &else_branch] {
            assert_eq!(
                body.outputs.len(),
                outputs.len(),
                "graph '{}': body '{}' of If '{name}' has {} outputs, the node {}",
                self.name,
                body.name,
                body.outputs.len(),
                outputs.len()
            );
            let own: Vec<&String> = body.tensors.difference(&body.outer).collect();
            for t in own {
                self.claim_tensor(t);
            }
            self.node_names.extend(body.node_names.iter().cloned());
        }
        let attrs = [
            ("then_branch", Attr::Graph(Box::new(then_branch.build_body()))),
            ("else_branch", Attr::Graph(Box::new(else_branch.build_body()))),
        ];
        self.node("If", name, &[cond], outputs, &attrs)
    }

    /// The body as a `GraphProto`: no inputs, its outputs, value infos and initializers.
    fn build_body(self) -> GraphProto {
        assert!(!self.outputs.is_empty(), "body '{}' has no outputs", self.name);
        let output: Vec<ValueInfoProto> =
            self.outputs.iter().map(|o| self.values[self.value_index[o]].clone()).collect();
        let value_info: Vec<ValueInfoProto> =
            self.values.into_iter().filter(|v| !self.outputs.iter().any(|o| Some(o) == v.name.as_ref())).collect();
        GraphProto {
            node: self.nodes,
            name: Some(self.name),
            initializer: self.initializers,
            output,
            value_info,
            ..GraphProto::default()
        }
    }

    /// The weight generator, for weights that need a custom layout.
    pub fn rng(&mut self) -> &mut Rng {
        &mut self.rng
    }

    fn claim_tensor(&mut self, name: &str) {
        assert!(!name.is_empty(), "graph '{}': empty tensor name", self.name);
        assert!(self.tensors.insert(name.to_string()), "graph '{}': tensor '{name}' defined twice", self.name);
    }

    /// Declare a graph input of element type `dtype` (a [`data_type`] constant) and static shape.
    pub fn input(&mut self, name: &str, dtype: i32, shape: &[i64]) -> String {
        self.claim_tensor(name);
        self.inputs.push(value_info(name, dtype, shape));
        name.to_string()
    }

    /// Declare a graph input whose dimensions may be symbolic (`batch x 3 x height x width`).
    pub fn input_dims(&mut self, name: &str, dtype: i32, dims: &[Dim]) -> String {
        self.claim_tensor(name);
        self.inputs.push(value_info_dims(name, dtype, dims));
        name.to_string()
    }

    /// Add an initializer.
    pub fn initializer(&mut self, name: &str, tensor: &Tensor) -> String {
        self.claim_tensor(name);
        self.initializers.push(from_tensor(name, tensor));
        name.to_string()
    }

    /// Add a float32 initializer from explicit values (row-major).
    pub fn constant(&mut self, name: &str, shape: &[usize], values: &[f32]) -> String {
        let t = Tensor::from_f32(shape, values)
            .unwrap_or_else(|e| panic!("graph '{}': initializer '{name}': {e}", self.name));
        self.initializer(name, &t)
    }

    /// Add an int64 initializer from explicit values (shapes, axes).
    pub fn constant_i64(&mut self, name: &str, shape: &[usize], values: &[i64]) -> String {
        let t = Tensor::from_i64(shape, values)
            .unwrap_or_else(|e| panic!("graph '{}': initializer '{name}': {e}", self.name));
        self.initializer(name, &t)
    }

    /// Add a float32 initializer of values drawn uniformly from `[lo, hi]` by the seeded generator.
    pub fn weight(&mut self, name: &str, shape: &[usize], lo: f32, hi: f32) -> String {
        let n = shape.iter().product();
        let values = self.rng.uniform_vec(n, lo, hi);
        self.constant(name, shape, &values)
    }

    /// Add a node whose outputs are float32 tensors of the given static shapes. Returns the first
    /// output's name.
    pub fn node(
        &mut self,
        op: &str,
        name: &str,
        inputs: &[&str],
        outputs: &[(&str, &[i64])],
        attrs: &[(&str, Attr)],
    ) -> String {
        let typed: Vec<(&str, i32, &[i64])> = outputs.iter().map(|&(n, s)| (n, data_type::FLOAT, s)).collect();
        self.node_typed(op, name, inputs, &typed, attrs)
    }

    /// Add a node with outputs of any element type (`(name, dtype, shape)`). Returns the first
    /// output's name.
    pub fn node_typed(
        &mut self,
        op: &str,
        name: &str,
        inputs: &[&str],
        outputs: &[(&str, i32, &[i64])],
        attrs: &[(&str, Attr)],
    ) -> String {
        let dims: Vec<Vec<Dim>> = outputs.iter().map(|o| o.2.iter().map(|&d| Dim::Fixed(d)).collect()).collect();
        let outputs: Vec<(&str, i32, &[Dim])> =
            outputs.iter().zip(&dims).map(|(&(n, dtype, _), d)| (n, dtype, d.as_slice())).collect();
        self.node_dims(op, name, inputs, &outputs, attrs)
    }

    /// Add a node whose outputs (`(name, dtype, dims)`) may have symbolic dimensions. Returns the
    /// first output's name.
    pub fn node_dims(
        &mut self,
        op: &str,
        name: &str,
        inputs: &[&str],
        outputs: &[(&str, i32, &[Dim])],
        attrs: &[(&str, Attr)],
    ) -> String {
        assert!(!name.is_empty(), "graph '{}': a {op} node without a name", self.name);
        assert!(self.node_names.insert(name.to_string()), "graph '{}': node name '{name}' used twice", self.name);
        for i in inputs.iter().filter(|i| !i.is_empty()) {
            assert!(
                self.tensors.contains(*i),
                "graph '{}': node '{name}' reads '{i}', which is not defined before it",
                self.name
            );
        }
        for &(o, dtype, dims) in outputs {
            self.claim_tensor(o);
            self.value_index.insert(o.to_string(), self.values.len());
            self.values.push(value_info_dims(o, dtype, dims));
        }
        let names: Vec<&str> = outputs.iter().map(|o| o.0).collect();
        self.nodes.push(NodeProto {
            attribute: attrs.iter().map(|(n, a)| a.to_proto(n)).collect(),
            ..node_proto(name, op, inputs, &names)
        });
        outputs.first().map(|o| o.0.to_string()).unwrap_or_default()
    }

    /// Add a `Constant` node `name` writing `out` with `value` (how exporters write scalars, shapes
    /// and axes). Returns `out`.
    pub fn constant_node(&mut self, name: &str, out: &str, value: &Tensor) -> String {
        let shape: Vec<i64> = value.shape().iter().map(|&d| d as i64).collect();
        let t = Attr::Tensor(Box::new(crate::model::tensor_proto::from_tensor("", value)));
        self.node_typed("Constant", name, &[], &[(out, value.dtype().onnx(), &shape)], &[("value", t)])
    }

    /// Make a node output a graph output (its declared type moves from `value_info` to `output`).
    pub fn output(&mut self, name: &str) {
        assert!(self.value_index.contains_key(name), "graph '{}': output '{name}' is not a node output", self.name);
        assert!(!self.outputs.iter().any(|o| o == name), "graph '{}': output '{name}' declared twice", self.name);
        self.outputs.push(name.to_string());
    }

    /// The finished model; `doc` becomes the model's `doc_string`.
    #[must_use]
    pub fn build(self, doc: &str) -> ModelProto {
        assert!(!self.outputs.is_empty(), "graph '{}' has no outputs", self.name);
        let output: Vec<ValueInfoProto> =
            self.outputs.iter().map(|o| self.values[self.value_index[o]].clone()).collect();
        let value_info: Vec<ValueInfoProto> =
            self.values.into_iter().filter(|v| !self.outputs.iter().any(|o| Some(o) == v.name.as_ref())).collect();
        let graph = GraphProto {
            node: self.nodes,
            name: Some(self.name),
            initializer: self.initializers,
            input: self.inputs,
            output,
            value_info,
            ..GraphProto::default()
        };
        ModelProto {
            ir_version: Some(IR_VERSION),
            opset_import: vec![OperatorSetIdProto { domain: Some(String::new()), version: Some(OPSET) }],
            producer_name: Some(PRODUCER.to_string()),
            doc_string: Some(doc.to_string()),
            graph: Some(graph),
            ..ModelProto::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> GraphBuilder {
        let mut b = GraphBuilder::new("t", 3);
        b.input("x", data_type::FLOAT, &[1, 2]);
        b.weight("w", &[2, 2], -1.0, 1.0);
        b.node("MatMul", "t/MatMul", &["x", "w"], &[("h", &[1, 2])], &[]);
        b.node("Relu", "t/Relu", &["h"], &[("y", &[1, 2])], &[]);
        b
    }

    #[test]
    fn outputs_move_out_of_value_info() {
        let mut b = tiny();
        b.output("y");
        let m = b.build("doc");
        let g = m.graph.expect("graph");
        assert_eq!(g.output.len(), 1);
        assert_eq!(g.output[0].value_name(), "y");
        assert_eq!(g.value_info.iter().map(ValueInfoProto::value_name).collect::<Vec<_>>(), vec!["h"]);
        assert_eq!(m.ir_version, Some(IR_VERSION));
        assert_eq!(m.opset_import[0].version, Some(OPSET));
    }

    #[test]
    #[should_panic(expected = "used twice")]
    fn duplicate_node_names_panic() {
        let mut b = tiny();
        b.node("Relu", "t/Relu", &["y"], &[("z", &[1, 2])], &[]);
    }

    #[test]
    #[should_panic(expected = "not defined before")]
    fn undefined_inputs_panic() {
        let mut b = tiny();
        b.node("Relu", "t/Relu2", &["nope"], &[("z", &[1, 2])], &[]);
    }

    #[test]
    fn attributes_carry_their_type() {
        let a = Attr::Ints(vec![1, 2]).to_proto("pads");
        assert_eq!(a.r#type, Some(attribute_type::INTS));
        assert_eq!(a.ints, vec![1, 2]);
        let s = Attr::String("NOTSET".into()).to_proto("auto_pad");
        assert_eq!(s.s.as_deref(), Some(&b"NOTSET"[..]));
        let f = Attr::Floats(vec![0.5]).to_proto("scales");
        assert_eq!(f.r#type, Some(attribute_type::FLOATS));
    }
}
