//! Per-operator knowledge for the Cast rewrite: the ONNX type constraints of every default-domain
//! operator (generated from the `onnx` package into `onnx_ops.txt` by `gen_ops_table.py`), the few
//! rules the constraints cannot express, and element-type inference over the main graph.
//!
//! The constraints answer the two questions the rewrite asks of a node: which inputs share a type
//! variable with the outputs (data, cast together) and which do not (shapes, indices, axes, masks:
//! never cast), and whether a type variable admits `float16` at the model's opset.

use std::collections::HashMap;
use std::sync::OnceLock;

use crate::model::graph::{Graph, TensorKind};
use crate::model::proto::{GraphProto, NodeProto, data_type, type_proto};

/// The generated table.
const TABLE: &str = include_str!("onnx_ops.txt");

/// The type of a formal parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FormalType {
    /// A type variable (`T`).
    Var(String),
    /// A fixed tensor element type (`tensor(int64)`).
    Fixed(i32),
    /// A fixed non-tensor type (sequence, optional, map).
    NonTensor,
}

/// One formal input or output.
#[derive(Debug, Clone)]
pub(crate) struct Formal {
    pub ty: FormalType,
    pub variadic: bool,
}

/// What a type variable admits.
#[derive(Debug, Clone, Default)]
pub(crate) struct VarInfo {
    pub float16: bool,
    /// Only sequences/optionals/maps.
    pub non_tensor: bool,
    /// The single tensor type allowed, when there is exactly one.
    pub single: Option<i32>,
}

/// One operator version.
#[derive(Debug, Clone)]
pub(crate) struct Schema {
    pub since: i64,
    pub inputs: Vec<Formal>,
    pub outputs: Vec<Formal>,
    pub vars: HashMap<String, VarInfo>,
}

impl Schema {
    fn formal(list: &[Formal], i: usize) -> Option<&Formal> {
        list.get(i).or_else(|| list.last().filter(|f| f.variadic))
    }

    /// The formal parameter of input slot `i` (variadic tails repeat the last one).
    pub fn input(&self, i: usize) -> Option<&Formal> {
        Schema::formal(&self.inputs, i)
    }

    /// The formal parameter of output slot `i`.
    pub fn output(&self, i: usize) -> Option<&Formal> {
        Schema::formal(&self.outputs, i)
    }

    /// True when a type variable appears among the outputs.
    pub fn var_in_outputs(&self, var: &str) -> bool {
        self.outputs.iter().any(|f| f.ty == FormalType::Var(var.to_string()))
    }

    /// True when some formal parameter can only be a sequence, optional or map.
    pub fn has_non_tensor(&self) -> bool {
        self.inputs.iter().chain(&self.outputs).any(|f| match &f.ty {
            FormalType::NonTensor => true,
            FormalType::Var(v) => self.vars.get(v).is_some_and(|i| i.non_tensor),
            FormalType::Fixed(_) => false,
        })
    }
}

/// ONNX element type of a `tensor(...)` spelling.
fn elem_type(name: &str) -> i32 {
    use data_type as d;
    match name {
        "float" => d::FLOAT,
        "uint8" => d::UINT8,
        "int8" => d::INT8,
        "uint16" => d::UINT16,
        "int16" => d::INT16,
        "int32" => d::INT32,
        "int64" => d::INT64,
        "string" => d::STRING,
        "bool" => d::BOOL,
        "float16" => d::FLOAT16,
        "double" => d::DOUBLE,
        "uint32" => d::UINT32,
        "uint64" => d::UINT64,
        "complex64" => d::COMPLEX64,
        "complex128" => d::COMPLEX128,
        "bfloat16" => d::BFLOAT16,
        "float8e4m3fn" => d::FLOAT8E4M3FN,
        "float8e4m3fnuz" => d::FLOAT8E4M3FNUZ,
        "float8e5m2" => d::FLOAT8E5M2,
        "float8e5m2fnuz" => d::FLOAT8E5M2FNUZ,
        "uint4" => d::UINT4,
        "int4" => d::INT4,
        "float4e2m1" => d::FLOAT4E2M1,
        _ => d::UNDEFINED,
    }
}

fn parse_formals(s: &str) -> Vec<Formal> {
    if s == "-" {
        return Vec::new();
    }
    s.split(',')
        .map(|f| {
            let variadic = f.ends_with('*');
            let f = f.trim_end_matches(['*', '?']);
            let ty = match f.strip_prefix('=') {
                Some("~") => FormalType::NonTensor,
                Some(t) => FormalType::Fixed(elem_type(t)),
                None => FormalType::Var(f.to_string()),
            };
            Formal { ty, variadic }
        })
        .collect()
}

/// `OP SINCE INPUTS -> OUTPUTS ; VAR:FLAGS ...`
fn parse_line(line: &str) -> Option<(String, Schema)> {
    let (sig, cons) = line.split_once(" ; ").map_or((line, ""), |(a, b)| (a, b));
    let mut parts = sig.split_whitespace();
    let op = parts.next()?.to_string();
    let since = parts.next()?.parse().ok()?;
    let inputs = parse_formals(parts.next()?);
    if parts.next()? != "->" {
        return None;
    }
    let outputs = parse_formals(parts.next()?);
    let vars = cons
        .split_whitespace()
        .filter_map(|c| {
            let (name, flags) = c.split_once(':')?;
            let info = match flags.strip_prefix('=') {
                Some(t) => VarInfo { float16: t == "float16", single: Some(elem_type(t)), ..VarInfo::default() },
                None => VarInfo { float16: flags.contains('h'), non_tensor: flags == "~", single: None },
            };
            Some((name.to_string(), info))
        })
        .collect();
    Some((op, Schema { since, inputs, outputs, vars }))
}

fn table() -> &'static HashMap<String, Vec<Schema>> {
    static TABLE_CELL: OnceLock<HashMap<String, Vec<Schema>>> = OnceLock::new();
    TABLE_CELL.get_or_init(|| {
        let mut map: HashMap<String, Vec<Schema>> = HashMap::new();
        for line in TABLE.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
            if let Some((op, s)) = parse_line(line) {
                map.entry(op).or_default().push(s);
            }
        }
        for v in map.values_mut() {
            v.sort_by_key(|s| s.since);
        }
        map
    })
}

/// True for the default ONNX domain.
pub(crate) fn default_domain(domain: &str) -> bool {
    domain.is_empty() || domain == "ai.onnx"
}

/// The schema of `op` in force at `opset` (default domain only).
pub(crate) fn schema(op: &str, domain: &str, opset: i64) -> Option<&'static Schema> {
    if !default_domain(domain) {
        return None;
    }
    table().get(op)?.iter().rev().find(|s| s.since <= opset)
}

/// Ops whose float output type is set by an attribute (`to`, `dtype`, `value`, `output_datatype`):
/// the plan cannot change it, the node stays as written.
pub(crate) fn attribute_typed(op: &str) -> bool {
    matches!(
        op,
        "Cast"
            | "ConstantOfShape"
            | "EyeLike"
            | "RandomNormal"
            | "RandomUniform"
            | "RandomNormalLike"
            | "RandomUniformLike"
            | "Multinomial"
            | "Bernoulli"
            | "MelWeightMatrix"
            | "HannWindow"
            | "HammingWindow"
            | "BlackmanWindow"
    )
}

/// Float inputs that are parameters rather than data and keep their type when the node runs in
/// FP16 (only consulted for type variables that do not reach an output): Resize `roi`, Dropout
/// `ratio`, `OneHot` `depth`, the `QLinearMatMul` scales.
pub(crate) fn keep_input(op: &str, index: usize) -> bool {
    matches!((op, index), ("Resize" | "Dropout" | "OneHot", 1) | ("QLinearMatMul", 1 | 4 | 6))
}

/// Ops whose schema admits float16 but whose ONNX function body (what runtimes without a native
/// kernel, and ONNX's own checker, expand them to) builds float32 constants, so it does not
/// type-check in float16.
pub(crate) fn float32_function_body(op: &str) -> bool {
    op == "MeanVarianceNormalization"
}

/// Ops on optionals: their tensor type variables are tied to optional types the table cannot follow.
pub(crate) fn optional_op(op: &str) -> bool {
    op.starts_with("Optional")
}

/// Inputs read for their shape or converted by the node itself: any element type will do, so the
/// tensor is read in whatever precision it is available (no Cast is inserted for them).
pub(crate) fn any_input(op: &str, index: usize) -> bool {
    matches!((op, index), ("Cast" | "CastLike" | "Shape" | "Size", 0))
}

/// Element type of a `TypeProto` that is a tensor.
pub(crate) fn tensor_elem(t: Option<&crate::model::proto::TypeProto>) -> Option<i32> {
    match t?.value.as_ref()? {
        type_proto::Value::TensorType(tt) => tt.elem_type.filter(|&e| e != data_type::UNDEFINED),
        _ => None,
    }
}

/// Element type of an `INT` attribute.
fn int_attr(n: &NodeProto, name: &str) -> Option<i32> {
    n.attr(name).and_then(|a| a.i).map(|i| i as i32)
}

/// The element type of the value a `Constant` node holds.
pub(crate) fn constant_type(n: &NodeProto) -> Option<i32> {
    for a in &n.attribute {
        match a.name.as_deref() {
            Some("value") => return a.t.as_ref().and_then(|t| t.data_type),
            Some("value_float" | "value_floats") => return Some(data_type::FLOAT),
            Some("value_int" | "value_ints") => return Some(data_type::INT64),
            Some("value_string" | "value_strings") => return Some(data_type::STRING),
            Some("sparse_value") => return a.sparse_tensor.as_ref().and_then(|s| s.values.as_ref()?.data_type),
            _ => {}
        }
    }
    None
}

/// Output types an attribute decides, for ops whose output variable no input binds.
fn attribute_output_type(n: &NodeProto, first_input: Option<i32>) -> Option<i32> {
    match n.op() {
        "Cast" => int_attr(n, "to"),
        "Constant" => constant_type(n),
        "ConstantOfShape" => {
            Some(n.attr("value").and_then(|a| a.t.as_ref()).and_then(|t| t.data_type).unwrap_or(data_type::FLOAT))
        }
        "RandomNormal" | "RandomUniform" => Some(int_attr(n, "dtype").unwrap_or(data_type::FLOAT)),
        "EyeLike" | "RandomNormalLike" | "RandomUniformLike" | "Bernoulli" => int_attr(n, "dtype").or(first_input),
        "Multinomial" => Some(int_attr(n, "dtype").unwrap_or(data_type::INT32)),
        "MelWeightMatrix" | "HannWindow" | "HammingWindow" | "BlackmanWindow" => {
            Some(int_attr(n, "output_datatype").unwrap_or(data_type::FLOAT))
        }
        _ => None,
    }
}

/// Output `i` of a control-flow node as its body declares it.
fn body_output_type(n: &NodeProto, i: usize) -> Option<i32> {
    let body = |name: &str| n.attr(name).and_then(|a| a.g.as_ref());
    let (g, k): (Option<&GraphProto>, usize) = match n.op() {
        "If" => (body("then_branch"), i),
        "Loop" => (body("body"), i + 1),
        "Scan" => (body("body"), i),
        _ => (None, 0),
    };
    tensor_elem(g?.output.get(k)?.r#type.as_ref())
}

/// The type variables a node binds from its known input types (plus single-type variables).
pub(crate) fn bindings(s: &Schema, inputs: &[String], types: &HashMap<String, i32>) -> HashMap<String, i32> {
    let mut b: HashMap<String, i32> = HashMap::new();
    for (i, name) in inputs.iter().enumerate().filter(|(_, n)| !n.is_empty()) {
        if let (Some(Formal { ty: FormalType::Var(v), .. }), Some(&t)) = (s.input(i), types.get(name)) {
            b.entry(v.clone()).or_insert(t);
        }
    }
    for (v, info) in &s.vars {
        if let Some(t) = info.single {
            b.entry(v.clone()).or_insert(t);
        }
    }
    b
}

/// Element types of the main graph's tensors: declared for inputs and initializers, inferred
/// from the operator constraints for node outputs (falling back to attributes, `value_info` and
/// control-flow bodies). Tensors missing from the map are of unknown or non-tensor type.
pub(crate) fn infer_types(g: &GraphProto, graph: &Graph, opset: i64) -> HashMap<String, i32> {
    let mut types: HashMap<String, i32> = HashMap::new();
    for t in graph.tensors.values() {
        if t.kind != TensorKind::Activation
            && t.ty.kind == "tensor"
            && let Some(e) = t.ty.elem_type.filter(|&e| e != data_type::UNDEFINED)
        {
            types.insert(t.name.clone(), e);
        }
    }
    for node in &graph.nodes {
        let proto = &g.node[node.proto_index];
        let schema = schema(&node.op_type, &node.domain, opset);
        let bound = schema.map(|s| bindings(s, &node.inputs, &types)).unwrap_or_default();
        let first_input = node.inputs.first().and_then(|n| types.get(n)).copied();
        for (i, out) in node.outputs.iter().enumerate().filter(|(_, o)| !o.is_empty()) {
            let from_schema = schema.and_then(|s| s.output(i)).and_then(|f| match &f.ty {
                FormalType::Var(v) => bound.get(v).copied(),
                FormalType::Fixed(t) => Some(*t),
                FormalType::NonTensor => None,
            });
            let declared = graph.tensor(out).filter(|t| t.ty.kind == "tensor").and_then(|t| t.ty.elem_type);
            let t = from_schema
                .or_else(|| attribute_output_type(proto, first_input))
                .or(declared)
                .or_else(|| body_output_type(proto, i))
                .filter(|&t| t != data_type::UNDEFINED);
            if let Some(t) = t {
                types.insert(out.clone(), t);
            }
        }
    }
    types
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_parses_and_answers() {
        let add = schema("Add", "", 17).expect("Add");
        assert_eq!(add.since, 14);
        assert!(add.vars["T"].float16);
        let range = schema("Range", "", 17).expect("Range");
        assert!(!range.vars["T"].float16, "Range does not admit float16");
        let resize = schema("Resize", "", 13).expect("Resize");
        assert_eq!(resize.input(2).map(|f| f.ty.clone()), Some(FormalType::Fixed(data_type::FLOAT)));
        let concat = schema("Concat", "", 13).expect("Concat");
        assert!(concat.input(5).is_some(), "variadic tail repeats");
        assert!(schema("SequenceAt", "", 17).is_some_and(Schema::has_non_tensor));
        assert!(schema("Identity", "", 17).is_some_and(|s| !s.has_non_tensor()));
        assert!(schema("Add", "com.microsoft", 17).is_none());
        assert!(table().len() > 150);
    }
}
