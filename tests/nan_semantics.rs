//! NaN, ±inf and ±0 through every op the samples, the ONNX node tests and common exports use, on
//! both CPU runners: tract (with trtlens' NaN/infinity rewrite, `src/runner/ieee.rs`) and ONNX
//! Runtime. A table of cases, each a one-node (or two-node) model fed rows holding NaN, ±inf, ±0
//! and ordinary values; every case requires tract's result to equal ONNX Runtime's (NaN equal to
//! NaN, infinities by sign, ±0 equal, approximated functions within 1e-6 + 1e-5·|x| on finite
//! values). The same table run on tract *without* the rewrite shows what the rewrite fixes: it
//! must differ from ONNX Runtime on exactly the cases marked `fixed`.
//!
//! ONNX Runtime's CPU max-reductions and `ArgMax`/`ArgMin` have no stable NaN rule (they return NaN
//! or the index of a NaN only when it is the first element scanned, and can return an unrelated
//! element otherwise). For them trtlens follows NumPy (NaN wins); the test requires tract to equal
//! NumPy's rule on every row and ONNX Runtime on the rows where ONNX Runtime follows it (no NaN, or
//! NaN first), and prints the rows where ONNX Runtime does not. `MaxPool`, `GlobalMaxPool`, `TopK`
//! and `Hardmax` are fed rows without NaN for the same reason.
//!
//! Also here: the `clip_nan_guard` sample, where a NaN reaches a `Clip`: `cpu-fp16` reports it as
//! ONNX Runtime (and the GPU) do, and without the rewrite it would call the broken layer healthy.
#![cfg(all(feature = "tract", feature = "onnxruntime"))]

mod common;

use std::fmt::Write as _;
use std::path::Path;

use prost::Message;
use trtlens::model::Model;
use trtlens::model::proto::{
    AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto, ValueInfoProto, attribute_type,
    data_type,
};
use trtlens::runner::tract::TractRunner;
use trtlens::runner::{Runner, RunnerKind, RunnerOptions, Tensors};
use trtlens::samples::builder::value_info;
use trtlens::tensor::{DType, Tensor};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const NAN: f32 = f32::NAN;
const INF: f32 = f32::INFINITY;

/// Rows of the main input: ordinary values, a NaN inside a row, +inf, both infinities, signed
/// zeros, and a row that starts with NaN and mixes everything.
const X: [[f32; 8]; 6] = [
    [1.5, -2.5, 7.0, 0.25, 3.0, -1.0, 2.0, 0.5],
    [1.5, NAN, 7.0, 0.25, 3.0, -1.0, 2.0, 0.5],
    [1.5, -2.5, INF, 0.25, 3.0, -1.0, 2.0, 0.5],
    [-INF, -2.5, INF, 0.25, 3.0, -1.0, 2.0, 0.5],
    [0.0, -0.0, 0.0, -0.0, -0.0, 0.0, -0.0, 0.0],
    [NAN, INF, -INF, -0.0, 0.0, NAN, -INF, 100.0],
];
/// The second operand of binary ops: NaN, infinities and signed zeros against every row of `X`.
const Y: [f32; 8] = [NAN, 1.0, -INF, -0.0, 0.0, 2.0, INF, NAN];
/// Rows without NaN (for the ops ONNX Runtime itself gives no stable NaN rule).
const X_NO_NAN: [[f32; 8]; 4] = [
    [1.5, -2.5, 7.0, 0.25, 3.0, -1.0, 2.0, 0.5],
    [1.5, -2.5, INF, 0.25, 3.0, -1.0, 2.0, 0.5],
    [-INF, -2.5, INF, 0.25, 3.0, -1.0, 2.0, -INF],
    [0.0, -0.0, 0.0, -0.0, -0.0, 0.0, -0.0, 0.0],
];

/// How ONNX Runtime's result is used.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Rule {
    /// tract must equal ONNX Runtime on every row.
    Ort,
    /// tract must equal NumPy's NaN rule on every row, and ONNX Runtime on the rows where it
    /// follows that rule (no NaN, or NaN first); the other rows are printed.
    NumpyAlongRows,
}

struct Case {
    name: &'static str,
    nodes: Vec<NodeProto>,
    inits: Vec<TensorProto>,
    /// Feeds `y` too.
    binary: bool,
    /// Rows of `X_NO_NAN` instead of `X`.
    no_nan: bool,
    /// Finite values may differ by an approximation (exp, tanh, erf...).
    approx: bool,
    /// tract alone differs from ONNX Runtime here; the rewrite fixes it.
    fixed: bool,
    rule: Rule,
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
    let mut n = trtlens::samples::builder::node_proto(&format!("{op}_{}", outputs.join("_")), op, inputs, outputs);
    n.attribute = attrs;
    n
}

fn f32_init(name: &str, v: f32) -> TensorProto {
    trtlens::model::tensor_proto::from_tensor(name, &Tensor::from_f32(&[], &[v]).expect("scalar"))
}
fn i64_init(name: &str, v: &[i64]) -> TensorProto {
    trtlens::model::tensor_proto::from_tensor(name, &Tensor::from_i64(&[v.len()], v).expect("vector"))
}

/// The table.
fn cases() -> Vec<Case> {
    let unary = |name: &'static str, op: &str, attrs: Vec<AttributeProto>, approx: bool, fixed: bool| Case {
        name,
        nodes: vec![node(op, &["x"], &["out"], attrs)],
        inits: vec![],
        binary: false,
        no_nan: false,
        approx,
        fixed,
        rule: Rule::Ort,
    };
    let binary = |op: &'static str, fixed: bool| Case {
        name: op,
        nodes: vec![node(op, &["x", "y"], &["out"], vec![])],
        inits: vec![],
        binary: true,
        no_nan: false,
        approx: false,
        fixed,
        rule: Rule::Ort,
    };
    let with = |name: &'static str, nodes: Vec<NodeProto>, inits: Vec<TensorProto>, fixed: bool| Case {
        name,
        nodes,
        inits,
        binary: false,
        no_nan: false,
        approx: false,
        fixed,
        rule: Rule::Ort,
    };
    let mut v = vec![
        unary("Relu", "Relu", vec![], false, true),
        unary("LeakyRelu", "LeakyRelu", vec![attr_f("alpha", 0.1)], false, false),
        unary("Elu", "Elu", vec![], false, false),
        unary("Selu", "Selu", vec![], true, false),
        unary("Celu", "Celu", vec![], false, true),
        unary("HardSigmoid", "HardSigmoid", vec![], false, true),
        unary("HardSwish", "HardSwish", vec![], true, false),
        unary("Sigmoid", "Sigmoid", vec![], true, true),
        unary("Tanh", "Tanh", vec![], true, true),
        unary("Softplus", "Softplus", vec![], true, true),
        unary("Softsign", "Softsign", vec![], false, false),
        unary("Erf", "Erf", vec![], true, false),
        unary("Exp", "Exp", vec![], true, false),
        unary("Log", "Log", vec![], false, false),
        unary("Sqrt", "Sqrt", vec![], false, false),
        unary("Reciprocal", "Reciprocal", vec![], false, false),
        unary("Abs", "Abs", vec![], false, false),
        unary("Neg", "Neg", vec![], false, false),
        unary("Sign", "Sign", vec![], false, false),
        unary("Floor", "Floor", vec![], false, false),
        unary("Ceil", "Ceil", vec![], false, false),
        unary("Round", "Round", vec![], false, false),
        unary("IsNaN", "IsNaN", vec![], false, false),
        unary("IsInf", "IsInf", vec![], false, false),
        unary("Cast to bool", "Cast", vec![attr_i("to", i64::from(data_type::BOOL))], false, false),
        unary("Cast to float16", "Cast", vec![attr_i("to", i64::from(data_type::FLOAT16))], false, false),
        unary("Softmax", "Softmax", vec![attr_i("axis", -1)], true, false),
        unary("LogSoftmax", "LogSoftmax", vec![attr_i("axis", -1)], true, false),
        with(
            "Clip(x, 0, 6)",
            vec![node("Clip", &["x", "lo", "hi"], &["out"], vec![])],
            vec![f32_init("lo", 0.0), f32_init("hi", 6.0)],
            true,
        ),
        with("Clip(x, min=0)", vec![node("Clip", &["x", "lo"], &["out"], vec![])], vec![f32_init("lo", 0.0)], true),
        with("Clip(x, max=1)", vec![node("Clip", &["x", "", "hi"], &["out"], vec![])], vec![f32_init("hi", 1.0)], true),
        with("Clip(x)", vec![node("Clip", &["x"], &["out"], vec![])], vec![], true),
        binary("Max", true),
        binary("Min", true),
        with("Max(x, 0)", vec![node("Max", &["x", "zero"], &["out"], vec![])], vec![f32_init("zero", 0.0)], true),
        with("Min(0, x)", vec![node("Min", &["zero", "x"], &["out"], vec![])], vec![f32_init("zero", 0.0)], true),
        Case {
            name: "Max(x, y, 0)",
            nodes: vec![node("Max", &["x", "y", "zero"], &["out"], vec![])],
            inits: vec![f32_init("zero", 0.0)],
            binary: true,
            no_nan: false,
            approx: false,
            fixed: true,
            rule: Rule::Ort,
        },
        binary("Sum", false),
        binary("Mean", false),
        binary("Add", false),
        binary("Sub", false),
        binary("Mul", false),
        binary("Div", false),
        binary("Pow", false),
        binary("Less", false),
        binary("Greater", false),
        binary("Equal", false),
        binary("LessOrEqual", false),
        binary("GreaterOrEqual", false),
        Case {
            name: "PRelu",
            nodes: vec![node("PRelu", &["x", "slope"], &["out"], vec![])],
            inits: vec![f32_init("slope", 0.25)],
            binary: false,
            no_nan: false,
            approx: false,
            fixed: false,
            rule: Rule::Ort,
        },
        Case {
            name: "Where(x > 0, x, y)",
            nodes: vec![
                node("Greater", &["x", "zero"], &["positive"], vec![]),
                node("Where", &["positive", "x", "y"], &["out"], vec![]),
            ],
            inits: vec![f32_init("zero", 0.0)],
            binary: true,
            no_nan: false,
            approx: false,
            fixed: false,
            rule: Rule::Ort,
        },
        Case {
            name: "MatMul(x, yᵀ)",
            nodes: vec![node("Transpose", &["y"], &["yt"], vec![]), node("MatMul", &["x", "yt"], &["out"], vec![])],
            inits: vec![],
            binary: true,
            no_nan: false,
            approx: false,
            fixed: false,
            rule: Rule::Ort,
        },
        with(
            "ReduceSum",
            vec![node("ReduceSum", &["x", "axes"], &["out"], vec![])],
            vec![i64_init("axes", &[1])],
            false,
        ),
        unary("ReduceMean", "ReduceMean", vec![attr_ints("axes", &[1])], false, false),
        unary("ReduceL2", "ReduceL2", vec![attr_ints("axes", &[1])], false, false),
        unary("ReduceSumSquare", "ReduceSumSquare", vec![attr_ints("axes", &[1])], false, false),
        unary("ReduceLogSumExp", "ReduceLogSumExp", vec![attr_ints("axes", &[1])], true, false),
        Case {
            name: "LayerNormalization",
            nodes: vec![node("LayerNormalization", &["x", "scale"], &["out"], vec![attr_i("axis", -1)])],
            inits: vec![trtlens::model::tensor_proto::from_tensor(
                "scale",
                &Tensor::from_f32(&[8], &[1.0; 8]).expect("scale"),
            )],
            binary: false,
            no_nan: false,
            approx: true,
            fixed: false,
            rule: Rule::Ort,
        },
    ];
    for (op, fixed) in [("ReduceMax", true), ("ReduceMin", true), ("ArgMax", true), ("ArgMin", true)] {
        let attrs = if op.starts_with("Arg") { vec![attr_i("axis", 1)] } else { vec![attr_ints("axes", &[1])] };
        v.push(Case {
            name: op,
            nodes: vec![node(op, &["x"], &["out"], attrs)],
            inits: vec![],
            binary: false,
            no_nan: false,
            approx: false,
            fixed,
            rule: Rule::NumpyAlongRows,
        });
    }
    let pooled = |name: &'static str, nodes: Vec<NodeProto>| Case {
        name,
        nodes,
        inits: vec![i64_init("shape3", &[1, 4, 8]), i64_init("k", &[3])],
        binary: false,
        no_nan: true,
        approx: false,
        fixed: false,
        rule: Rule::Ort,
    };
    let reshape = node("Reshape", &["x", "shape3"], &["x3"], vec![]);
    v.push(pooled(
        "MaxPool (no NaN)",
        vec![
            reshape.clone(),
            node("MaxPool", &["x3"], &["out"], vec![attr_ints("kernel_shape", &[2]), attr_ints("strides", &[2])]),
        ],
    ));
    v.push(pooled("GlobalMaxPool (no NaN)", vec![reshape.clone(), node("GlobalMaxPool", &["x3"], &["out"], vec![])]));
    v.push(pooled(
        "AveragePool (no NaN)",
        vec![
            reshape,
            node("AveragePool", &["x3"], &["out"], vec![attr_ints("kernel_shape", &[2]), attr_ints("strides", &[2])]),
        ],
    ));
    v.push(pooled("TopK (no NaN)", vec![node("TopK", &["x", "k"], &["out", "indices"], vec![attr_i("axis", 1)])]));
    v
}

fn model_file(dir: &Path, case: &Case, rows: usize) -> Result<Model, Box<dyn std::error::Error>> {
    let mut inputs = vec![value_info("x", data_type::FLOAT, &[rows as i64, 8])];
    if case.binary {
        inputs.push(value_info("y", data_type::FLOAT, &[rows as i64, 8]));
    }
    let proto = ModelProto {
        ir_version: Some(8),
        opset_import: vec![OperatorSetIdProto { domain: Some(String::new()), version: Some(17) }],
        producer_name: Some("trtlens-tests".into()),
        graph: Some(GraphProto {
            name: Some("nan".into()),
            node: case.nodes.clone(),
            input: inputs,
            output: vec![ValueInfoProto { name: Some("out".into()), ..Default::default() }],
            initializer: case.inits.clone(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let file: String = case.name.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
    let path = dir.join(format!("{file}.onnx"));
    std::fs::write(&path, proto.encode_to_vec())?;
    Ok(Model::load(&path)?)
}

fn feed(case: &Case) -> Result<(Tensors, usize), Box<dyn std::error::Error>> {
    let rows: Vec<[f32; 8]> = if case.no_nan { X_NO_NAN.to_vec() } else { X.to_vec() };
    let x: Vec<f32> = rows.iter().flatten().copied().collect();
    let mut t = vec![("x".to_string(), Tensor::from_f32(&[rows.len(), 8], &x)?)];
    if case.binary {
        let y: Vec<f32> = (0..rows.len()).flat_map(|_| Y).collect();
        t.push(("y".to_string(), Tensor::from_f32(&[rows.len(), 8], &y)?));
    }
    Ok((t, rows.len()))
}

fn output(r: &mut dyn Runner, inputs: &Tensors) -> Result<Tensor, Box<dyn std::error::Error>> {
    let out = r.run(inputs)?;
    Ok(trtlens::runner::find(&out.tensors, "out").cloned().ok_or("no output")?)
}

/// The same value under the table's rule: NaN = NaN, infinities by sign, ±0 equal; finite values
/// within 1e-6 + 1e-5·|b| when `approx`.
fn same(a: f64, b: f64, approx: bool) -> bool {
    if a.is_nan() || b.is_nan() {
        return a.is_nan() && b.is_nan();
    }
    if a.is_infinite() || b.is_infinite() {
        return a == b;
    }
    a == b || approx && (a - b).abs() <= 1e-6 + 1e-5 * b.abs()
}

/// Rows (of `out`, as it comes back) where `a` and `b` differ.
fn differing_rows(a: &Tensor, b: &Tensor, approx: bool) -> Vec<usize> {
    if a.shape() != b.shape() || a.dtype() != b.dtype() {
        return vec![usize::MAX];
    }
    let (va, vb) = (a.to_f64_vec(), b.to_f64_vec());
    let rows = a.shape().first().copied().unwrap_or(1).max(1);
    let per = va.len() / rows;
    let mut out: Vec<usize> = (0..va.len()).filter(|&i| !same(va[i], vb[i], approx)).map(|i| i / per.max(1)).collect();
    out.dedup();
    out
}

fn show(t: &Tensor, row: usize) -> String {
    let v = t.to_f64_vec();
    let rows = t.shape().first().copied().unwrap_or(1).max(1);
    let per = v.len() / rows;
    let cells: Vec<String> = v[row * per..(row + 1) * per].iter().map(|x| format!("{x}")).collect();
    format!("[{}]", cells.join(", "))
}

/// NumPy's rule along axis 1 of `X`: `max`/`min` return NaN when the row holds one, `argmax`/
/// `argmin` the index of the first NaN.
fn numpy_along_rows(op: &str) -> Result<Tensor, Box<dyn std::error::Error>> {
    let mut vals = Vec::new();
    let mut idx = Vec::new();
    for row in X {
        let first_nan = row.iter().position(|v| v.is_nan());
        let pick = |better: fn(f32, f32) -> bool| -> usize {
            let mut best = 0;
            for (i, &v) in row.iter().enumerate() {
                if better(v, row[best]) {
                    best = i;
                }
            }
            best
        };
        let k = first_nan.unwrap_or_else(|| if op.ends_with("Max") { pick(|a, b| a > b) } else { pick(|a, b| a < b) });
        vals.push(row[k]);
        idx.push(k as i64);
    }
    Ok(if op.starts_with("Arg") { Tensor::from_i64(&[6, 1], &idx)? } else { Tensor::from_f32(&[6, 1], &vals)? })
}

fn ort_available() -> bool {
    match trtlens::runner::ort::load(None) {
        Ok(_) => true,
        Err(e) => {
            assert!(!common::in_ci(), "onnxruntime is required in CI but cannot be loaded: {e}");
            println!("skipped: onnxruntime not installed ({e})");
            false
        }
    }
}

#[test]
fn nan_inf_and_signed_zero_agree_with_onnx_runtime_op_by_op() -> TestResult {
    if !ort_available() {
        return Ok(());
    }
    let dir = tempfile::tempdir()?;
    let mut table = String::from("| op | tract alone | tract in trtlens | ONNX Runtime CPU |\n|---|---|---|---|\n");
    let mut failures = Vec::new();
    let mut fixed_seen = Vec::new();
    for case in cases() {
        let (inputs, rows) = feed(&case)?;
        let model = model_file(dir.path(), &case, rows)?;
        let capture = vec!["out".to_string()];
        let mut ort = trtlens::runner::create(RunnerKind::Onnxruntime, &model, &capture, &RunnerOptions::default())?;
        let mut tract = trtlens::runner::create(RunnerKind::Tract, &model, &capture, &RunnerOptions::default())?;
        let mut alone = TractRunner::without_ieee_fixes(&model, &capture);
        let (o, t, a) =
            (output(ort.as_mut(), &inputs)?, output(tract.as_mut(), &inputs)?, output(&mut alone, &inputs)?);
        let (ort_says, ours, theirs) = match case.rule {
            Rule::Ort => {
                let d = differing_rows(&t, &o, case.approx);
                if !d.is_empty() {
                    failures.push(format!(
                        "{}: tract differs from ONNX Runtime on rows {d:?}: tract {} ONNX Runtime {}",
                        case.name,
                        show(&t, d[0].min(rows - 1)),
                        show(&o, d[0].min(rows - 1))
                    ));
                }
                let alone_differs = !differing_rows(&a, &o, case.approx).is_empty();
                (
                    "reference".to_string(),
                    if d.is_empty() { "same" } else { "DIFFERENT" },
                    if alone_differs { "differs" } else { "same" },
                )
            }
            Rule::NumpyAlongRows => {
                let numpy = numpy_along_rows(case.name)?;
                let d = differing_rows(&t, &numpy, false);
                if !d.is_empty() {
                    failures.push(format!("{}: tract does not follow NumPy's NaN rule on rows {d:?}", case.name));
                }
                // ONNX Runtime follows it on rows without NaN and with the NaN first.
                let stable: Vec<usize> =
                    (0..rows).filter(|&r| X[r].iter().position(|v| v.is_nan()).is_none_or(|p| p == 0)).collect();
                let ort_off = differing_rows(&o, &numpy, false);
                if let Some(r) = ort_off.iter().find(|r| stable.contains(r)) {
                    failures.push(format!(
                        "{}: ONNX Runtime {} differs from tract {} on row {r}, where it follows NumPy",
                        case.name,
                        show(&o, *r),
                        show(&t, *r)
                    ));
                }
                let quirks: Vec<String> = ort_off.iter().map(|&r| format!("row {r}: {}", show(&o, r))).collect();
                println!("{}: ONNX Runtime CPU without a stable NaN rule: {}", case.name, quirks.join("; "));
                let alone_differs = !differing_rows(&a, &o, false).iter().all(|r| !stable.contains(r));
                (
                    format!("NaN only when first ({})", quirks.join("; ")),
                    if d.is_empty() { "same (NumPy)" } else { "DIFFERENT" },
                    if alone_differs { "differs" } else { "same" },
                )
            }
        };
        if (theirs == "differs") != case.fixed {
            failures.push(format!(
                "{}: tract alone {} ONNX Runtime, the table says it {}",
                case.name,
                if theirs == "differs" { "differs from" } else { "agrees with" },
                if case.fixed { "needs the rewrite" } else { "does not" }
            ));
        }
        if case.fixed {
            fixed_seen.push(case.name);
            if let Some(r) = differing_rows(&a, &o, case.approx).first().filter(|r| **r != usize::MAX) {
                println!("{}: tract alone row {r} {} vs ONNX Runtime {}", case.name, show(&a, *r), show(&o, *r));
            }
        }
        let _ = writeln!(table, "| {} | {theirs} | {ours} | {ort_says} |", case.name);
    }
    println!("{table}");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(fixed_seen.len() >= 15, "the rewrite fixes {fixed_seen:?}");
    Ok(())
}

/// Without the rewrite, tract's `Relu` and `Clip` turn NaN into 0 and `Max` picks the other
/// operand: a direct look at what the rewrite corrects.
#[test]
fn tract_alone_turns_nan_into_numbers() -> TestResult {
    let dir = tempfile::tempdir()?;
    let case = cases().into_iter().find(|c| c.name == "Clip(x, 0, 6)").ok_or("case")?;
    let (inputs, rows) = feed(&case)?;
    let model = model_file(dir.path(), &case, rows)?;
    let capture = vec!["out".to_string()];
    let alone = output(&mut TractRunner::without_ieee_fixes(&model, &capture), &inputs)?;
    let mut fixed = TractRunner::new(&model, &capture)?;
    assert_eq!(fixed.ieee_fixes(), ["Clip_out"]);
    let fixed = output(&mut fixed, &inputs)?;
    // Row 1 holds a NaN at index 1.
    assert_eq!(alone.to_f64_vec()[8 + 1], 0.0, "tract's own Clip maps NaN to its lower bound");
    assert!(fixed.to_f64_vec()[8 + 1].is_nan(), "the rewritten Clip keeps the NaN");
    Ok(())
}

/// The `clip_nan_guard` sample: the NaN that FP16 overflow creates reaches a `Clip`. `cpu-fp16`
/// reports it (NaN at the Clip and in the output, verdict fail), as ONNX Runtime does on the
/// converted model; without the rewrite the emulation would report no overshoot and pass.
#[test]
fn a_nan_reaching_a_clip_is_reported_by_cpu_fp16() -> TestResult {
    use trtlens::precision::{Plan, Precision};
    use trtlens::runner::cpu_fp16::CpuFp16Runner;
    let path = common::sample("clip_nan_guard");
    let model = Model::load(&path)?;
    let capture = trtlens::run::capture_list(&model);
    let x: Vec<f32> = (0..16 * 64).map(|i| ((i * 37) % 100) as f32 / 100.0).collect();
    let inputs = vec![("features".to_string(), Tensor::from_f32(&[1, 16, 64], &x)?)];
    let value = |tensors: &Tensors, name: &str| -> Vec<f64> {
        trtlens::runner::find(tensors, name).map(Tensor::to_f64_vec).unwrap_or_default()
    };
    let opts = RunnerOptions { plan: Some(Plan::uniform(Precision::Fp16)), ..RunnerOptions::default() };

    let emu = CpuFp16Runner::new(&model, &capture, &opts)?.run(&inputs)?.tensors;
    let clip = value(&emu, "/guard/Clip_output_0");
    let nan_at = |v: &[f64]| v.iter().filter(|x| x.is_nan()).count();
    assert!(nan_at(&clip) > 0, "cpu-fp16 keeps the NaN at the Clip");
    assert_eq!(nan_at(&value(&emu, "limited")), nan_at(&clip), "and in the output");

    let blind = CpuFp16Runner::without_ieee_fixes(&model, &capture, &opts)?.run(&inputs)?.tensors;
    assert_eq!(nan_at(&value(&blind, "/guard/Clip_output_0")), 0, "tract's own Clip hides the NaN");
    let fp32: Vec<f64> = x.iter().map(|v| f64::from(*v)).collect();
    let limited = value(&blind, "limited");
    assert!(
        limited.iter().zip(&fp32).all(|(a, b)| (a - b).abs() <= 1e-2 + 1e-2 * b.abs()),
        "without the rewrite the output passes at FP16 tolerances: a broken layer called healthy"
    );

    // ONNX Runtime running the same emulated graph (FP32 compute, FP16 storage) keeps the NaN too.
    // (Its CPU provider on the converted model itself computes the FP16 chain in FP32 and never
    // overflows: that is why cpu-fp16 emulates instead.)
    if ort_available() {
        let emulator = CpuFp16Runner::new(&model, &capture, &opts)?;
        let emulated = Model::load(&emulator.emulated_path)?;
        let names = vec!["/guard/Clip_output_0".to_string()];
        let mut ort = trtlens::runner::create(RunnerKind::Onnxruntime, &emulated, &names, &RunnerOptions::default())?;
        let out = ort.run(&inputs)?.tensors;
        let t = trtlens::runner::find(&out, "/guard/Clip_output_0").ok_or("clip")?;
        assert_eq!(t.dtype(), DType::Float16);
        let theirs: Vec<bool> = t.to_f64_vec().iter().map(|v| v.is_nan()).collect();
        let ours: Vec<bool> = clip.iter().map(|v| v.is_nan()).collect();
        assert_eq!(theirs, ours, "the same elements are NaN in ONNX Runtime");
    }
    Ok(())
}
