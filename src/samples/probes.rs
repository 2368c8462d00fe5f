//! Small models the tests build to probe runtimes rather than to show an FP16 failure: one op each
//! fed NaN, ±inf and ±0 (`tests/nan_semantics.rs`), and an FP32 MLP of wide matrix products for
//! TF32 (`tests/ort_cuda.rs`). `cargo run --example make_samples -- --probes DIR` writes each as
//! `NAME.onnx` with its inputs `NAME.npz`, which `scripts/fidelity --models DIR` runs on a GPU.

use crate::model::proto::{
    AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto, ValueInfoProto, attribute_type,
    data_type,
};
use crate::model::tensor_proto::from_tensor;
use crate::runner::Tensors;
use crate::tensor::Tensor;

const NAN: f32 = f32::NAN;
const INF: f32 = f32::INFINITY;

/// Rows of the main input `x`: ordinary values, a NaN inside a row, +inf, both infinities, signed
/// zeros, and a row that starts with NaN and mixes everything.
pub const X: [[f32; 8]; 6] = [
    [1.5, -2.5, 7.0, 0.25, 3.0, -1.0, 2.0, 0.5],
    [1.5, NAN, 7.0, 0.25, 3.0, -1.0, 2.0, 0.5],
    [1.5, -2.5, INF, 0.25, 3.0, -1.0, 2.0, 0.5],
    [-INF, -2.5, INF, 0.25, 3.0, -1.0, 2.0, 0.5],
    [0.0, -0.0, 0.0, -0.0, -0.0, 0.0, -0.0, 0.0],
    [NAN, INF, -INF, -0.0, 0.0, NAN, -INF, 100.0],
];
/// The second operand `y` of binary ops, the same for every row of `X`.
pub const Y: [f32; 8] = [NAN, 1.0, -INF, -0.0, 0.0, 2.0, INF, NAN];
/// Rows without NaN, for the ops ONNX Runtime's CPU provider gives no stable NaN rule
/// (pooling, `TopK`).
pub const X_NO_NAN: [[f32; 8]; 4] = [
    [1.5, -2.5, 7.0, 0.25, 3.0, -1.0, 2.0, 0.5],
    [1.5, -2.5, INF, 0.25, 3.0, -1.0, 2.0, 0.5],
    [-INF, -2.5, INF, 0.25, 3.0, -1.0, 2.0, -INF],
    [0.0, -0.0, 0.0, -0.0, -0.0, 0.0, -0.0, 0.0],
];

/// One probe model and the inputs it is meant for.
#[derive(Debug, Clone)]
pub struct Probe {
    /// What it computes (`Clip(x, 0, 6)`).
    pub name: &'static str,
    /// The model: inputs `x` (and `y`), output `out`.
    pub model: ModelProto,
    /// Its inputs.
    pub inputs: Tensors,
}

impl Probe {
    /// A file name stem for it (`nan_Clip_x__0__6_`).
    #[must_use]
    pub fn file_stem(&self) -> String {
        let body: String = self.name.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
        if self.model.graph.as_ref().and_then(|g| g.name.as_deref()) == Some("nan") {
            format!("nan_{body}")
        } else {
            body
        }
    }
}

fn attr_i(name: &str, v: i64) -> AttributeProto {
    AttributeProto { name: Some(name.into()), r#type: Some(attribute_type::INT), i: Some(v), ..Default::default() }
}
fn attr_f(name: &str, v: f32) -> AttributeProto {
    AttributeProto { name: Some(name.into()), r#type: Some(attribute_type::FLOAT), f: Some(v), ..Default::default() }
}
fn attr_ints(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(attribute_type::INTS),
        ints: v.to_vec(),
        ..Default::default()
    }
}

fn node(op: &str, inputs: &[&str], outputs: &[&str], attrs: Vec<AttributeProto>) -> NodeProto {
    let mut n = super::builder::node_proto(&format!("{op}_{}", outputs.join("_")), op, inputs, outputs);
    n.attribute = attrs;
    n
}

fn tensor(name: &str, t: Result<Tensor, crate::tensor::TensorError>) -> TensorProto {
    from_tensor(name, &t.unwrap_or_else(|e| panic!("probe tensor {name}: {e}")))
}
fn f32_init(name: &str, v: f32) -> TensorProto {
    tensor(name, Tensor::from_f32(&[], &[v]))
}
fn i64_init(name: &str, v: &[i64]) -> TensorProto {
    tensor(name, Tensor::from_i64(&[v.len()], v))
}

fn model(graph: &str, nodes: Vec<NodeProto>, inputs: Vec<ValueInfoProto>, init: Vec<TensorProto>) -> ModelProto {
    ModelProto {
        ir_version: Some(super::builder::IR_VERSION),
        opset_import: vec![OperatorSetIdProto { domain: Some(String::new()), version: Some(super::builder::OPSET) }],
        producer_name: Some("trtlens-probes".into()),
        graph: Some(GraphProto {
            name: Some(graph.into()),
            node: nodes,
            input: inputs,
            output: vec![ValueInfoProto { name: Some("out".into()), ..Default::default() }],
            initializer: init,
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A NaN/inf probe: `nodes` reading `x` (and `y` when `binary`), fed `X` (or `X_NO_NAN`).
fn nan_probe(name: &'static str, nodes: Vec<NodeProto>, init: Vec<TensorProto>, binary: bool, no_nan: bool) -> Probe {
    let rows: Vec<[f32; 8]> = if no_nan { X_NO_NAN.to_vec() } else { X.to_vec() };
    let n = rows.len();
    let x: Vec<f32> = rows.iter().flatten().copied().collect();
    let mut inputs = vec![("x".to_string(), Tensor::from_f32(&[n, 8], &x).unwrap_or_else(|e| panic!("{e}")))];
    let mut decl = vec![super::builder::value_info("x", data_type::FLOAT, &[n as i64, 8])];
    if binary {
        let y: Vec<f32> = (0..n).flat_map(|_| Y).collect();
        inputs.push(("y".to_string(), Tensor::from_f32(&[n, 8], &y).unwrap_or_else(|e| panic!("{e}"))));
        decl.push(super::builder::value_info("y", data_type::FLOAT, &[n as i64, 8]));
    }
    Probe { name, model: model("nan", nodes, decl, init), inputs }
}

/// One op per probe, fed NaN, ±inf and ±0 (`X`, `Y`): activations, element-wise math, `Clip`,
/// `Max`/`Min`, comparisons, `Where`, reductions, `ArgMax`/`ArgMin`, softmax, normalisation,
/// `MatMul`, casts; pooling and `TopK` on rows without NaN.
#[must_use]
pub fn nan_ops() -> Vec<Probe> {
    let unary = |name: &'static str, op: &str, attrs: Vec<AttributeProto>| {
        nan_probe(name, vec![node(op, &["x"], &["out"], attrs)], vec![], false, false)
    };
    let binary = |op: &'static str| nan_probe(op, vec![node(op, &["x", "y"], &["out"], vec![])], vec![], true, false);
    let mut v = vec![
        unary("Relu", "Relu", vec![]),
        unary("LeakyRelu", "LeakyRelu", vec![attr_f("alpha", 0.1)]),
        unary("Elu", "Elu", vec![]),
        unary("Selu", "Selu", vec![]),
        unary("Celu", "Celu", vec![]),
        unary("HardSigmoid", "HardSigmoid", vec![]),
        unary("HardSwish", "HardSwish", vec![]),
        unary("Sigmoid", "Sigmoid", vec![]),
        unary("Tanh", "Tanh", vec![]),
        unary("Softplus", "Softplus", vec![]),
        unary("Softsign", "Softsign", vec![]),
        unary("Erf", "Erf", vec![]),
        unary("Exp", "Exp", vec![]),
        unary("Log", "Log", vec![]),
        unary("Sqrt", "Sqrt", vec![]),
        unary("Reciprocal", "Reciprocal", vec![]),
        unary("Abs", "Abs", vec![]),
        unary("Neg", "Neg", vec![]),
        unary("Sign", "Sign", vec![]),
        unary("Floor", "Floor", vec![]),
        unary("Ceil", "Ceil", vec![]),
        unary("Round", "Round", vec![]),
        unary("IsNaN", "IsNaN", vec![]),
        unary("IsInf", "IsInf", vec![]),
        unary("Cast to bool", "Cast", vec![attr_i("to", i64::from(data_type::BOOL))]),
        unary("Cast to float16", "Cast", vec![attr_i("to", i64::from(data_type::FLOAT16))]),
        unary("Softmax", "Softmax", vec![attr_i("axis", -1)]),
        unary("LogSoftmax", "LogSoftmax", vec![attr_i("axis", -1)]),
        nan_probe(
            "Clip(x, 0, 6)",
            vec![node("Clip", &["x", "lo", "hi"], &["out"], vec![])],
            vec![f32_init("lo", 0.0), f32_init("hi", 6.0)],
            false,
            false,
        ),
        nan_probe(
            "Clip(x, min=0)",
            vec![node("Clip", &["x", "lo"], &["out"], vec![])],
            vec![f32_init("lo", 0.0)],
            false,
            false,
        ),
        nan_probe(
            "Clip(x, max=1)",
            vec![node("Clip", &["x", "", "hi"], &["out"], vec![])],
            vec![f32_init("hi", 1.0)],
            false,
            false,
        ),
        nan_probe("Clip(x)", vec![node("Clip", &["x"], &["out"], vec![])], vec![], false, false),
        binary("Max"),
        binary("Min"),
        nan_probe(
            "Max(x, 0)",
            vec![node("Max", &["x", "zero"], &["out"], vec![])],
            vec![f32_init("zero", 0.0)],
            false,
            false,
        ),
        nan_probe(
            "Min(0, x)",
            vec![node("Min", &["zero", "x"], &["out"], vec![])],
            vec![f32_init("zero", 0.0)],
            false,
            false,
        ),
        nan_probe(
            "Max(x, y, 0)",
            vec![node("Max", &["x", "y", "zero"], &["out"], vec![])],
            vec![f32_init("zero", 0.0)],
            true,
            false,
        ),
        binary("Sum"),
        binary("Mean"),
        binary("Add"),
        binary("Sub"),
        binary("Mul"),
        binary("Div"),
        binary("Pow"),
        binary("Less"),
        binary("Greater"),
        binary("Equal"),
        binary("LessOrEqual"),
        binary("GreaterOrEqual"),
        nan_probe(
            "PRelu",
            vec![node("PRelu", &["x", "slope"], &["out"], vec![])],
            vec![f32_init("slope", 0.25)],
            false,
            false,
        ),
        nan_probe(
            "Where(x > 0, x, y)",
            vec![
                node("Greater", &["x", "zero"], &["positive"], vec![]),
                node("Where", &["positive", "x", "y"], &["out"], vec![]),
            ],
            vec![f32_init("zero", 0.0)],
            true,
            false,
        ),
        nan_probe(
            "MatMul(x, y^T)",
            vec![node("Transpose", &["y"], &["yt"], vec![]), node("MatMul", &["x", "yt"], &["out"], vec![])],
            vec![],
            true,
            false,
        ),
        nan_probe(
            "ReduceSum",
            vec![node("ReduceSum", &["x", "axes"], &["out"], vec![])],
            vec![i64_init("axes", &[1])],
            false,
            false,
        ),
        unary("ReduceMean", "ReduceMean", vec![attr_ints("axes", &[1])]),
        unary("ReduceL2", "ReduceL2", vec![attr_ints("axes", &[1])]),
        unary("ReduceSumSquare", "ReduceSumSquare", vec![attr_ints("axes", &[1])]),
        unary("ReduceLogSumExp", "ReduceLogSumExp", vec![attr_ints("axes", &[1])]),
        nan_probe(
            "LayerNormalization",
            vec![node("LayerNormalization", &["x", "scale"], &["out"], vec![attr_i("axis", -1)])],
            vec![tensor("scale", Tensor::from_f32(&[8], &[1.0; 8]))],
            false,
            false,
        ),
        unary("ReduceMax", "ReduceMax", vec![attr_ints("axes", &[1])]),
        unary("ReduceMin", "ReduceMin", vec![attr_ints("axes", &[1])]),
        unary("ArgMax", "ArgMax", vec![attr_i("axis", 1)]),
        unary("ArgMin", "ArgMin", vec![attr_i("axis", 1)]),
    ];
    let pooled = |name: &'static str, nodes: Vec<NodeProto>| {
        nan_probe(name, nodes, vec![i64_init("shape3", &[1, 4, 8]), i64_init("k", &[3])], false, true)
    };
    let reshape = || node("Reshape", &["x", "shape3"], &["x3"], vec![]);
    let window = || vec![attr_ints("kernel_shape", &[2]), attr_ints("strides", &[2])];
    v.push(pooled("MaxPool (no NaN)", vec![reshape(), node("MaxPool", &["x3"], &["out"], window())]));
    v.push(pooled("GlobalMaxPool (no NaN)", vec![reshape(), node("GlobalMaxPool", &["x3"], &["out"], vec![])]));
    v.push(pooled("AveragePool (no NaN)", vec![reshape(), node("AveragePool", &["x3"], &["out"], window())]));
    v.push(pooled("TopK (no NaN)", vec![node("TopK", &["x", "k"], &["out", "indices"], vec![attr_i("axis", 1)])]));
    v
}

/// An FP32 MLP of three 256-wide `MatMul`+`Add` layers (`Relu` between), weights and inputs of
/// both signs: FP16-safe, so what a GPU changes in it is TF32 (about 1e-3 relative on each
/// product) and summation order.
#[must_use]
pub fn tf32_mlp() -> Probe {
    const WIDTH: usize = 256;
    let mut rng = super::rng::Rng::new(0x7466_3332);
    let mut init = Vec::new();
    let mut nodes = Vec::new();
    let mut prev = "x".to_string();
    let bound = (3.0f64 / WIDTH as f64).sqrt() as f32;
    for layer in 0..3 {
        let w = format!("mlp.{layer}.weight");
        let b = format!("mlp.{layer}.bias");
        init.push(tensor(&w, Tensor::from_f32(&[WIDTH, WIDTH], &rng.uniform_vec(WIDTH * WIDTH, -bound, bound))));
        init.push(tensor(&b, Tensor::from_f32(&[WIDTH], &rng.uniform_vec(WIDTH, -0.1, 0.1))));
        let mm = format!("/mlp/{layer}/MatMul_output_0");
        let add = if layer == 2 { "out".to_string() } else { format!("/mlp/{layer}/Add_output_0") };
        nodes.push(super::builder::node_proto(&format!("/mlp/{layer}/MatMul"), "MatMul", &[&prev, &w], &[&mm]));
        nodes.push(super::builder::node_proto(&format!("/mlp/{layer}/Add"), "Add", &[&mm, &b], &[&add]));
        prev = add;
        if layer < 2 {
            let act = format!("/mlp/{layer}/Relu_output_0");
            nodes.push(super::builder::node_proto(&format!("/mlp/{layer}/Relu"), "Relu", &[&prev], &[&act]));
            prev = act;
        }
    }
    let x = rng.uniform_vec(8 * WIDTH, -1.0, 1.0);
    Probe {
        name: "tf32_mlp",
        model: model(
            "tf32_mlp",
            nodes,
            vec![super::builder::value_info("x", data_type::FLOAT, &[8, WIDTH as i64])],
            init,
        ),
        inputs: vec![("x".to_string(), Tensor::from_f32(&[8, WIDTH], &x).unwrap_or_else(|e| panic!("{e}")))],
    }
}

/// Every probe: the NaN/inf op table and the TF32 MLP.
#[must_use]
pub fn all() -> Vec<Probe> {
    let mut v = nan_ops();
    v.push(tf32_mlp());
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_build_consistent_graphs_with_unique_file_names() {
        let mut stems = std::collections::HashSet::new();
        for p in all() {
            let g = p.model.graph.as_ref().expect("graph");
            crate::model::graph::Graph::build(g).expect("graph analyses");
            assert!(stems.insert(p.file_stem()), "{} twice", p.file_stem());
            for i in &g.input {
                assert!(
                    crate::runner::find(&p.inputs, i.value_name()).is_some(),
                    "{}: input {}",
                    p.name,
                    i.value_name()
                );
            }
        }
        assert_eq!(tf32_mlp().file_stem(), "tf32_mlp");
        assert!(nan_ops().iter().any(|p| p.file_stem() == "nan_Clip_x__0__6_"));
    }
}
