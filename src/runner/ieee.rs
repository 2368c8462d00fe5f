//! NaN and infinity semantics of the embedded runtime, aligned with ONNX Runtime.
//!
//! tract computes several ops with `f32::max`/`f32::min` or with clamped approximations, which turn
//! a NaN into a finite number: `Relu(NaN) = 0`, `Clip(NaN, 0, 6) = 0`, `Max(NaN, 1) = 1`,
//! `Sigmoid(NaN) = 4.5e-7`, `ReduceMax([NaN, inf]) = inf`. ONNX Runtime (CPU and CUDA) keeps the
//! NaN, and an emulation that turns NaN into a finite number can call a broken layer healthy. So
//! before tract sees a model, [`rewrite`] replaces each such node by the node itself plus a few
//! ops tract computes exactly (`IsNaN`, `IsInf`, `Where`, `Sign`, `Cast`), writing the same
//! output name:
//!
//! | op | tract alone | after the rewrite (= ONNX Runtime) |
//! |---|---|---|
//! | `Relu`, `Clip`, `HardSigmoid`, `Celu` | NaN → a finite value (0, the bound, 1) | NaN stays NaN |
//! | `Clip` without `min`/`max` | ±inf stay | ±inf clip to the type's lowest/max, the ONNX defaults |
//! | `Max`, `Min` (any number of inputs) | the non-NaN operand | NaN when any operand is NaN |
//! | `Sigmoid`, `Tanh` | NaN → ±0.9999994 or 4.5e-7; ±inf → 0.9999995 / 4.5e-7 | NaN stays; `Sigmoid(±inf)` = 1 / 0, `Tanh(±inf)` = ±1 |
//! | `Softplus` | inf above x ≈ 88 (`exp` overflows) | x (from x > 20, where `softplus(x)` rounds to x) |
//! | `ReduceMax`, `ReduceMin` | NaN ignored | NaN when any reduced element is NaN |
//! | `ArgMax`, `ArgMin` | NaN ignored | the index of the first NaN (`NumPy`'s rule) |
//!
//! Every fix needs the input's element type to be known float32 or float16 (from the model's
//! declarations or its type inference): `Max` of two `int64` shape values is left alone. Where
//! ONNX Runtime's CPU provider itself has no stable NaN rule (its max-reductions, `ArgMax`,
//! `MaxPool`/`GlobalMaxPool`, `TopK` and `Hardmax` return NaN or ignore it depending on where the
//! NaN sits), trtlens follows `NumPy`'s rule for the reductions and leaves the pooling, `TopK` and
//! `Hardmax` to tract; `tests/nan_semantics.rs` shows every case.

use std::collections::{HashMap, HashSet};

use crate::model::proto::{AttributeProto, GraphProto, ModelProto, NodeProto, TensorProto, attribute_type, data_type};

/// The ops [`rewrite`] corrects.
pub const OPS: &[&str] = &[
    "Relu",
    "Clip",
    "HardSigmoid",
    "Celu",
    "Max",
    "Min",
    "Sigmoid",
    "Tanh",
    "Softplus",
    "ReduceMax",
    "ReduceMin",
    "ArgMax",
    "ArgMin",
];

/// The element types the rewrite handles: float32 and float16 (tract's `IsNaN` does not type-check
/// on float64, and tract has no bfloat16).
fn is_float(t: Option<&i32>) -> bool {
    matches!(t, Some(&(data_type::FLOAT | data_type::FLOAT16)))
}

/// A scalar constant of element type `elem` (FLOAT, FLOAT16 or DOUBLE).
fn scalar(name: &str, elem: i32, v: f64) -> Option<TensorProto> {
    let raw = match elem {
        data_type::FLOAT => (v as f32).to_le_bytes().to_vec(),
        data_type::FLOAT16 => half::f16::from_f64(v).to_le_bytes().to_vec(),
        data_type::DOUBLE => v.to_le_bytes().to_vec(),
        _ => return None,
    };
    Some(TensorProto {
        name: Some(name.to_string()),
        data_type: Some(elem),
        raw_data: Some(raw),
        ..TensorProto::default()
    })
}

/// The largest finite value of a float element type.
fn type_max(elem: i32) -> Option<f64> {
    match elem {
        data_type::FLOAT => Some(f64::from(f32::MAX)),
        data_type::FLOAT16 => Some(65504.0),
        data_type::DOUBLE => Some(f64::MAX),
        _ => None,
    }
}

fn int_attr(name: &str, v: i64) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(attribute_type::INT),
        i: Some(v),
        ..AttributeProto::default()
    }
}

fn ints_attr(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(attribute_type::INTS),
        ints: v.to_vec(),
        ..AttributeProto::default()
    }
}

/// Emits the replacement nodes of one graph, with fresh names.
struct Emitter<'a> {
    taken: &'a mut HashSet<String>,
    nodes: Vec<NodeProto>,
    initializers: Vec<TensorProto>,
    /// The node being replaced (its name prefixes the new nodes).
    label: String,
    /// Its first output (prefixes the new tensors).
    out: String,
}

impl Emitter<'_> {
    fn fresh(&mut self, base: &str) -> String {
        let mut name = base.to_string();
        let mut k = 2;
        while !self.taken.insert(name.clone()) {
            name = format!("{base}_{k}");
            k += 1;
        }
        name
    }

    /// A new tensor name for `tag`.
    fn tensor(&mut self, tag: &str) -> String {
        let base = format!("{}__ieee_{tag}", self.out);
        self.fresh(&base)
    }

    /// Add a node computing `op(inputs)` into a new tensor (or into `output` when given).
    fn node(&mut self, op: &str, inputs: &[&str], output: Option<&str>, attrs: Vec<AttributeProto>) -> String {
        let out = match output {
            Some(o) => o.to_string(),
            None => self.tensor(&op.to_ascii_lowercase()),
        };
        let name = self.fresh(&format!("{}/ieee_{}", self.label, op.to_ascii_lowercase()));
        self.nodes.push(NodeProto {
            name: Some(name),
            op_type: Some(op.into()),
            input: inputs.iter().map(|s| (*s).to_string()).collect(),
            output: vec![out.clone()],
            attribute: attrs,
            ..NodeProto::default()
        });
        out
    }

    fn constant(&mut self, tag: &str, elem: i32, v: f64) -> Option<String> {
        let name = self.tensor(tag);
        self.initializers.push(scalar(&name, elem, v)?);
        Some(name)
    }

    fn constant_i64(&mut self, tag: &str, v: &[i64]) -> String {
        let name = self.tensor(tag);
        self.initializers.push(TensorProto {
            name: Some(name.clone()),
            data_type: Some(data_type::INT64),
            dims: vec![v.len() as i64],
            int64_data: v.to_vec(),
            ..TensorProto::default()
        });
        name
    }
}

/// Rewrite every node of [`OPS`] in `model` (main graph and control-flow bodies) so that tract
/// computes it with ONNX Runtime's NaN and infinity semantics (module docs). `types` are the
/// element types known for the main graph's tensors; bodies use their own declarations. Returns
/// the names of the nodes rewritten.
pub fn rewrite<S: std::hash::BuildHasher>(
    model: &mut ModelProto,
    types: &HashMap<String, i32, S>,
    opset: i64,
) -> Vec<String> {
    let Some(g) = model.graph.as_mut() else { return Vec::new() };
    let mut taken = HashSet::new();
    collect_names(g, &mut taken);
    let mut done = Vec::new();
    let types: HashMap<String, i32> = types.iter().map(|(k, v)| (k.clone(), *v)).collect();
    rewrite_graph(g, &types, opset, &mut taken, &mut done);
    done
}

fn collect_names(g: &GraphProto, taken: &mut HashSet<String>) {
    taken.extend(g.input.iter().chain(&g.output).chain(&g.value_info).map(|v| v.value_name().to_string()));
    taken.extend(g.initializer.iter().map(|t| t.tensor_name().to_string()));
    for n in &g.node {
        taken.insert(n.node_name().to_string());
        taken.extend(n.input.iter().chain(&n.output).cloned());
        for a in &n.attribute {
            for b in a.g.iter().chain(&a.graphs) {
                collect_names(b, taken);
            }
        }
    }
}

/// Declared element types of a body graph (its inputs, value infos, outputs and initializers).
fn declared(g: &GraphProto) -> HashMap<String, i32> {
    let mut t = HashMap::new();
    for v in g.input.iter().chain(&g.value_info).chain(&g.output) {
        if let Some(e) = crate::precision::tensor_elem(v.r#type.as_ref()) {
            t.insert(v.value_name().to_string(), e);
        }
    }
    for i in &g.initializer {
        if let Some(e) = i.data_type {
            t.insert(i.tensor_name().to_string(), e);
        }
    }
    t
}

fn rewrite_graph(
    g: &mut GraphProto,
    types: &HashMap<String, i32>,
    opset: i64,
    taken: &mut HashSet<String>,
    done: &mut Vec<String>,
) {
    let mut nodes = Vec::with_capacity(g.node.len());
    let mut initializers = Vec::new();
    for mut n in std::mem::take(&mut g.node) {
        for a in &mut n.attribute {
            for body in a.g.iter_mut().chain(a.graphs.iter_mut()) {
                let mut inner = declared(body);
                for (k, v) in types {
                    inner.entry(k.clone()).or_insert(*v);
                }
                rewrite_graph(body, &inner, opset, taken, done);
            }
        }
        let label = if n.node_name().is_empty() { n.op().to_string() } else { n.node_name().to_string() };
        let Some(out) = n.output.first().filter(|o| !o.is_empty()).cloned() else {
            nodes.push(n);
            continue;
        };
        let mut e = Emitter { taken, nodes: Vec::new(), initializers: Vec::new(), label: label.clone(), out };
        if fix(&mut e, &n, types, opset) {
            done.push(label);
            nodes.extend(e.nodes);
            initializers.extend(e.initializers);
        } else {
            nodes.push(n);
        }
    }
    g.node = nodes;
    g.initializer.extend(initializers);
}

/// Emit the replacement of `n` into `e` (the node itself, renamed, plus the fix-up); false when
/// `n` needs none (another op, a non-float input, an unknown type).
fn fix(e: &mut Emitter<'_>, n: &NodeProto, types: &HashMap<String, i32>, opset: i64) -> bool {
    let op = n.op();
    let default_domain = matches!(n.domain.as_deref(), None | Some("" | "ai.onnx"));
    if !OPS.contains(&op) || !default_domain {
        return false;
    }
    let Some(x) = n.input.first().filter(|x| !x.is_empty()).cloned() else { return false };
    let elem = types.get(&x).copied();
    if !is_float(elem.as_ref()) {
        return false;
    }
    let elem = elem.unwrap_or(data_type::FLOAT);
    // Ops whose only output is the one fixed.
    if n.output.len() != 1 {
        return false;
    }
    let y = n.output[0].clone();
    // The original node, writing a new tensor.
    let mut raw_node = n.clone();
    let raw = e.tensor("raw");
    raw_node.output = vec![raw.clone()];
    match op {
        "Relu" | "HardSigmoid" | "Celu" | "Clip" => {
            if op == "Clip" && !fill_clip_bounds(e, &mut raw_node, elem, opset) {
                return false;
            }
            e.nodes.push(raw_node);
            let isnan = e.node("IsNaN", &[&x], None, vec![]);
            e.node("Where", &[&isnan, &x, &raw], Some(&y), vec![]);
        }
        "Max" | "Min" => {
            let inputs: Vec<String> = n.input.iter().filter(|i| !i.is_empty()).cloned().collect();
            if inputs.len() < 2 || !inputs.iter().all(|i| is_float(types.get(i))) {
                return false;
            }
            e.nodes.push(raw_node);
            let mut acc = raw;
            for (k, i) in inputs.iter().enumerate().rev() {
                let isnan = e.node("IsNaN", &[i], None, vec![]);
                let target = if k == 0 { Some(y.as_str()) } else { None };
                acc = e.node("Where", &[&isnan, i, &acc], target, vec![]);
            }
        }
        "Sigmoid" | "Tanh" => {
            e.nodes.push(raw_node);
            let isnan = e.node("IsNaN", &[&x], None, vec![]);
            let kept = e.node("Where", &[&isnan, &x, &raw], None, vec![]);
            let isinf = e.node("IsInf", &[&x], None, vec![]);
            let sign = e.node("Sign", &[&x], None, vec![]);
            // Sigmoid(+inf) = 1, Sigmoid(-inf) = 0: Relu(Sign(x)); Tanh(±inf) = Sign(x).
            let at_inf = if op == "Sigmoid" { e.node("Relu", &[&sign], None, vec![]) } else { sign };
            e.node("Where", &[&isinf, &at_inf, &kept], Some(&y), vec![]);
        }
        "Softplus" => {
            let threshold = if elem == data_type::DOUBLE { 40.0 } else { 20.0 };
            let Some(t) = e.constant("threshold", elem, threshold) else { return false };
            e.nodes.push(raw_node);
            let large = e.node("Greater", &[&x, &t], None, vec![]);
            e.node("Where", &[&large, &x, &raw], Some(&y), vec![]);
        }
        "ReduceMax" | "ReduceMin" => {
            e.nodes.push(raw_node);
            let isnan = e.node("IsNaN", &[&x], None, vec![]);
            let mask = e.node("Cast", &[&isnan], None, vec![int_attr("to", i64::from(data_type::FLOAT))]);
            // The same reduction (axes, keepdims) of the NaN mask: 1 where any element is NaN.
            let mut any_node = n.clone();
            any_node.op_type = Some("ReduceMax".into());
            any_node.input[0].clone_from(&mask);
            let anyf = e.tensor("any_nan");
            any_node.output = vec![anyf.clone()];
            any_node.name = Some(e.fresh(&format!("{}/ieee_any_nan", e.label)));
            e.nodes.push(any_node);
            let any = e.node("Cast", &[&anyf], None, vec![int_attr("to", i64::from(data_type::BOOL))]);
            // A NaN of the output's type and shape: (r - r) / (r - r).
            let zero = e.node("Sub", &[&raw, &raw], None, vec![]);
            let nan = e.node("Div", &[&zero, &zero], None, vec![]);
            e.node("Where", &[&any, &nan, &raw], Some(&y), vec![]);
        }
        "ArgMax" | "ArgMin" => {
            let axis = n.attr("axis").and_then(|a| a.i).unwrap_or(0);
            let keepdims = n.attr("keepdims").and_then(|a| a.i).unwrap_or(1);
            e.nodes.push(raw_node);
            let isnan = e.node("IsNaN", &[&x], None, vec![]);
            let mask = e.node("Cast", &[&isnan], None, vec![int_attr("to", i64::from(data_type::FLOAT))]);
            // The first NaN: the first maximum of the mask (same axis, keepdims, select_last_index).
            let mut first = n.clone();
            first.op_type = Some("ArgMax".into());
            first.input = vec![mask.clone()];
            let idx = e.tensor("first_nan");
            first.output = vec![idx.clone()];
            first.name = Some(e.fresh(&format!("{}/ieee_first_nan", e.label)));
            e.nodes.push(first);
            let anyf = if opset >= 18 {
                let axes = e.constant_i64("axes", &[axis]);
                e.node("ReduceMax", &[&mask, &axes], None, vec![int_attr("keepdims", keepdims)])
            } else {
                e.node("ReduceMax", &[&mask], None, vec![ints_attr("axes", &[axis]), int_attr("keepdims", keepdims)])
            };
            let any = e.node("Cast", &[&anyf], None, vec![int_attr("to", i64::from(data_type::BOOL))]);
            e.node("Where", &[&any, &idx, &raw], Some(&y), vec![]);
        }
        _ => return false,
    }
    true
}

/// Give a `Clip` explicit bounds where the model leaves them out: the ONNX defaults (the type's
/// lowest and largest value, which ONNX Runtime applies and tract does not: it keeps ±inf).
/// False when a bound is missing and the type has no known limit.
fn fill_clip_bounds(e: &mut Emitter<'_>, n: &mut NodeProto, elem: i32, opset: i64) -> bool {
    let Some(max) = type_max(elem) else {
        // No known limit: only a Clip that names both bounds can be fixed.
        return if opset < 11 {
            n.attr("min").is_some() && n.attr("max").is_some()
        } else {
            n.input.len() >= 3 && n.input[1..3].iter().all(|i| !i.is_empty())
        };
    };
    if opset < 11 {
        // Clip-6: bounds are attributes, default ±3.4028234663852886e38.
        for (name, v) in [("min", -f32::MAX), ("max", f32::MAX)] {
            if n.attr(name).is_none() {
                n.attribute.push(AttributeProto {
                    name: Some(name.into()),
                    r#type: Some(attribute_type::FLOAT),
                    f: Some(v),
                    ..AttributeProto::default()
                });
            }
        }
        return true;
    }
    n.input.resize(3, String::new());
    for (i, (tag, v)) in [(1, ("lowest", -max)), (2, ("max", max))] {
        if n.input[i].is_empty() {
            match e.constant(tag, elem, v) {
                Some(c) => n.input[i] = c,
                None => return false,
            }
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::samples::builder::node_proto;

    fn graph(nodes: Vec<NodeProto>) -> ModelProto {
        ModelProto { graph: Some(GraphProto { node: nodes, ..GraphProto::default() }), ..ModelProto::default() }
    }

    #[test]
    fn only_float_inputs_of_known_type_are_rewritten() {
        let mut m = graph(vec![
            node_proto("relu", "Relu", &["x"], &["y"]),
            node_proto("max_shapes", "Max", &["a", "b"], &["c"]),
            node_proto("relu_unknown", "Relu", &["u"], &["v"]),
        ]);
        let types: HashMap<String, i32> = [
            ("x".to_string(), data_type::FLOAT),
            ("a".to_string(), data_type::INT64),
            ("b".to_string(), data_type::INT64),
        ]
        .into();
        let done = rewrite(&mut m, &types, 17);
        assert_eq!(done, ["relu"]);
        let g = m.graph.unwrap_or_default();
        let writers: Vec<&str> =
            g.node.iter().filter(|n| n.output.iter().any(|o| o == "y")).map(NodeProto::op).collect();
        assert_eq!(writers, ["Where"], "the original output name is written by the fix-up");
        assert!(g.node.iter().any(|n| n.node_name() == "relu" && n.output == ["y__ieee_raw"]));
        assert!(g.node.iter().any(|n| n.node_name() == "max_shapes" && n.output == ["c"]));
    }

    #[test]
    fn clip_bounds_default_to_the_type_limits() {
        let mut m = graph(vec![node_proto("clip", "Clip", &["x", "lo"], &["y"])]);
        let types: HashMap<String, i32> = [("x".to_string(), data_type::FLOAT)].into();
        rewrite(&mut m, &types, 17);
        let g = m.graph.unwrap_or_default();
        let clip = g.node.iter().find(|n| n.op() == "Clip").expect("clip");
        assert_eq!(clip.input.len(), 3);
        let max = g.initializer.iter().find(|t| t.tensor_name() == clip.input[2]).expect("max bound");
        assert_eq!(max.raw_data.as_deref(), Some(&f32::MAX.to_le_bytes()[..]));
    }
}
