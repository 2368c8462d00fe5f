//! TF32 rounding in the emulated graph (`cpu-fp16 --tf32`): the ONNX formulation
//! (`trtlens::precision::tf32::rounding_nodes`) computes exactly `tf32::round` (round to nearest
//! even on the 13 low mantissa bits) on tract and on ONNX Runtime, over every binade of both signs,
//! ties on both sides, subnormals, the largest values (which round to inf), ±inf and NaN; and the
//! emulation rounds exactly the FP32 inputs of FP32 matrix products.
#![cfg(feature = "tract")]

mod common;

use prost::Message;
use trtlens::model::Model;
use trtlens::model::proto::{GraphProto, ModelProto, OperatorSetIdProto, ValueInfoProto, data_type};
use trtlens::precision::tf32;
use trtlens::runner::{RunnerKind, RunnerOptions};
use trtlens::samples::builder::value_info;
use trtlens::tensor::Tensor;

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// Edge values and a sweep of every binade: for each sign and exponent, mantissas at and around
/// the rounding ties, the largest and smallest, and pseudo-random ones.
fn values() -> Vec<f32> {
    let mut bits: Vec<u32> = Vec::new();
    let mut state = 0x2545_F491_u32;
    for sign in [0u32, 0x8000_0000] {
        for exp in 0u32..=255 {
            for upper in [0u32, 1, 2, 0x155, 0x2AA, 0x3FE, 0x3FF] {
                for low in [0u32, 1, 0x0FFF, 0x1000, 0x1001, 0x1FFF, 0x0800, 0x17FF] {
                    bits.push(sign | (exp << 23) | (upper << 13) | low);
                }
            }
            for _ in 0..64 {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                bits.push(sign | (exp << 23) | (state & 0x7F_FFFF));
            }
        }
    }
    let mut v: Vec<f32> = bits.into_iter().map(f32::from_bits).collect();
    v.extend([0.0, -0.0, f32::MIN_POSITIVE, -f32::MIN_POSITIVE, f32::MAX, f32::MIN, f32::EPSILON, 1.0, -1.0]);
    v
}

fn rounding_model(dir: &std::path::Path, n: usize) -> Result<Model, Box<dyn std::error::Error>> {
    let constants = tf32::Constants::new("c");
    let mut k = 0;
    let nodes = tf32::rounding_nodes("x", "y", &constants, &mut |base| {
        k += 1;
        format!("{base}_{k}")
    });
    let proto = ModelProto {
        ir_version: Some(8),
        opset_import: vec![OperatorSetIdProto { domain: Some(String::new()), version: Some(17) }],
        graph: Some(GraphProto {
            name: Some("tf32".into()),
            node: nodes,
            input: vec![value_info("x", data_type::FLOAT, &[n as i64])],
            output: vec![ValueInfoProto { name: Some("y".into()), ..Default::default() }],
            initializer: constants.initializers(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let path = dir.join("tf32.onnx");
    std::fs::write(&path, proto.encode_to_vec())?;
    Ok(Model::load(&path)?)
}

fn check(runner: RunnerKind, model: &Model, x: &[f32]) -> TestResult {
    let mut r = trtlens::runner::create(runner, model, &["y".to_string()], &RunnerOptions::default())?;
    let out = r.run(&vec![("x".to_string(), Tensor::from_f32(&[x.len()], x)?)])?;
    let y = trtlens::runner::find(&out.tensors, "y").ok_or("no output")?.to_f32_vec();
    let mut wrong = Vec::new();
    for (a, b) in x.iter().zip(&y) {
        let want = tf32::round(*a);
        let ok = if want.is_nan() { b.is_nan() } else { want.to_bits() == b.to_bits() };
        if !ok {
            wrong.push(format!("{a:e} ({:08x}): want {want:e} got {b:e}", a.to_bits()));
        }
    }
    assert!(
        wrong.is_empty(),
        "{}: {} of {} differ, e.g. {:?}",
        runner.name(),
        wrong.len(),
        x.len(),
        &wrong[..wrong.len().min(5)]
    );
    Ok(())
}

#[test]
fn the_onnx_rounding_is_bit_exact_on_tract() -> TestResult {
    let x = values();
    let dir = tempfile::tempdir()?;
    let model = rounding_model(dir.path(), x.len())?;
    check(RunnerKind::Tract, &model, &x)
}

#[cfg(feature = "onnxruntime")]
#[test]
fn the_onnx_rounding_is_bit_exact_on_onnx_runtime() -> TestResult {
    if let Err(e) = trtlens::runner::ort::load(None) {
        assert!(!common::in_ci(), "onnxruntime is required in CI: {e}");
        println!("skipped: onnxruntime not installed ({e})");
        return Ok(());
    }
    let x = values();
    let dir = tempfile::tempdir()?;
    let model = rounding_model(dir.path(), x.len())?;
    check(RunnerKind::Onnxruntime, &model, &x)
}

/// In the emulated graph, FP32 MatMul/Gemm/Conv inputs (data and weights) are read through one
/// rounding each; biases, FP16 nodes and other ops are not touched.
#[test]
fn the_emulation_rounds_exactly_the_fp32_inputs_of_matrix_products() -> TestResult {
    use trtlens::precision::emulate::{Emulation, emulate_with};
    use trtlens::precision::{Plan, Precision, convert};
    let model = Model::load(&common::sample("cnn_bn_relu"))?;
    let fp32 = convert(&model, &Plan::uniform(Precision::Fp32))?;
    let g = emulate_with(&fp32, Emulation { tf32: true }).graph.ok_or("graph")?;
    let rounded: Vec<&str> = g
        .node
        .iter()
        .filter(|n| n.op() == "Where" && n.output[0].ends_with("__tf32"))
        .map(|n| n.output[0].as_str())
        .collect();
    for n in g.node.iter().filter(|n| tf32::OPS.contains(&n.op())) {
        let (data, weight) = (&n.input[0], &n.input[1]);
        assert!(data.ends_with("__tf32") && weight.ends_with("__tf32"), "{}: {:?}", n.node_name(), n.input);
        if let Some(bias) = n.input.get(2) {
            assert!(!bias.ends_with("__tf32"), "{}: the bias is added in FP32", n.node_name());
        }
    }
    // Conv x2 and Gemm: 3 data inputs and 3 weights, each rounded once.
    assert_eq!(rounded.len(), 6, "{rounded:?}");
    // All-FP16: nothing to round (FP16 values are TF32 values).
    let fp16 = convert(&model, &Plan::uniform(Precision::Fp16))?;
    let g16 = emulate_with(&fp16, Emulation { tf32: true }).graph.ok_or("graph")?;
    assert!(!g16.node.iter().any(|n| n.output.iter().any(|o| o.contains("__tf32"))));
    Ok(())
}
