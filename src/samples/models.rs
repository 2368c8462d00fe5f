//! The sample graphs themselves, one function per `samples/*.onnx` file.
//!
//! Every model has one float32 input that trtlens fills with uniform random values in `[0, 1)` by
//! default; the weights are chosen so that each designed FP16 failure shows for *any* such input, not
//! only for a lucky one. The magnitudes quoted in the comments are for those inputs. All shapes are
//! static except in [`yolo_symbolic`], whose input is `batch x 3 x height x width` like a `PyTorch`
//! export with dynamic axes.

use super::builder::{Attr, Dim, GraphBuilder};
use crate::model::proto::{ModelProto, data_type};
use crate::tensor::Tensor;

/// `mlp_overflow.onnx`: `features[1,64] → MatMul+Add+Relu (256 hidden) → MatMul+Add → logits[1,10]`.
///
/// Eight "outlier" hidden units have first-layer weights in `[2000, 6000]`, so their pre-activations
/// are about 1.2e5–1.7e5 (FP16 max is 65504) and overflow to `inf` in FP16 at `mlp/fc1/MatMul`. Their
/// second-layer weights are tiny (|w| ≤ 1e-5), so the FP32 logits stay within about ±5; in FP16
/// the `inf`s reach the logits as `inf`/`NaN`.
#[must_use]
pub fn mlp_overflow() -> ModelProto {
    const IN: usize = 64;
    const HIDDEN: usize = 256;
    const OUT: usize = 10;
    const OUTLIERS: [usize; 8] = [17, 42, 96, 133, 160, 201, 230, 251];
    let mut b = GraphBuilder::new("mlp_overflow", 0x6D6C_7031);
    b.input("features", data_type::FLOAT, &[1, IN as i64]);

    let mut w1 = b.rng().uniform_vec(IN * HIDDEN, -0.15, 0.15);
    for row in 0..IN {
        for &c in &OUTLIERS {
            w1[row * HIDDEN + c] = b.rng().uniform(2000.0, 6000.0);
        }
    }
    b.constant("mlp.fc1.weight", &[IN, HIDDEN], &w1);
    b.weight("mlp.fc1.bias", &[HIDDEN], -0.1, 0.1);
    let mut w2 = b.rng().uniform_vec(HIDDEN * OUT, -0.1, 0.1);
    for &r in &OUTLIERS {
        for col in 0..OUT {
            w2[r * OUT + col] = b.rng().uniform(-1e-5, 1e-5);
        }
    }
    b.constant("mlp.fc2.weight", &[HIDDEN, OUT], &w2);
    b.weight("mlp.fc2.bias", &[OUT], -0.1, 0.1);

    let h = [1, HIDDEN as i64];
    let o = [1, OUT as i64];
    b.node("MatMul", "mlp/fc1/MatMul", &["features", "mlp.fc1.weight"], &[("mlp/fc1/matmul_out", &h)], &[]);
    b.node("Add", "mlp/fc1/Add", &["mlp/fc1/matmul_out", "mlp.fc1.bias"], &[("mlp/fc1/preact", &h)], &[]);
    b.node("Relu", "mlp/act/Relu", &["mlp/fc1/preact"], &[("mlp/hidden", &h)], &[]);
    b.node("MatMul", "mlp/fc2/MatMul", &["mlp/hidden", "mlp.fc2.weight"], &[("mlp/fc2/matmul_out", &o)], &[]);
    b.node("Add", "mlp/fc2/Add", &["mlp/fc2/matmul_out", "mlp.fc2.bias"], &[("logits", &o)], &[]);
    b.output("logits");
    b.build(super::MLP_OVERFLOW_DOC)
}

/// `softmax_naive.onnx`: `features[1,32] → MatMul+Add → logits[1,16] → Exp / ReduceSum / Div`.
///
/// Class 5 has a bias of 13 and positive weights, so its logit is about 14.4–15.2 for every input;
/// `exp(15) ≈ 3.3e6` is far above FP16's 65504 (`exp(11.09) ≈ 65504`), so `softmax/Exp` gives
/// `inf`, the sum is `inf` and `softmax/Div` gives `NaN` (inf/inf) and zeros.
#[must_use]
pub fn softmax_naive() -> ModelProto {
    const IN: usize = 32;
    const CLASSES: usize = 16;
    const HOT: usize = 5;
    let mut b = GraphBuilder::new("softmax_naive", 0x736F_6674);
    b.input("features", data_type::FLOAT, &[1, IN as i64]);

    let mut w = b.rng().uniform_vec(IN * CLASSES, -0.25, 0.25);
    for row in 0..IN {
        w[row * CLASSES + HOT] = b.rng().uniform(0.0, 0.2);
    }
    b.constant("head.weight", &[IN, CLASSES], &w);
    let mut bias = b.rng().uniform_vec(CLASSES, 0.0, 4.0);
    bias[HOT] = 13.0;
    b.constant("head.bias", &[CLASSES], &bias);
    b.constant_i64("softmax.axes", &[1], &[-1]);

    let l = [1, CLASSES as i64];
    b.node("MatMul", "head/MatMul", &["features", "head.weight"], &[("head/matmul_out", &l)], &[]);
    b.node("Add", "head/Add", &["head/matmul_out", "head.bias"], &[("logits", &l)], &[]);
    b.node("Exp", "softmax/Exp", &["logits"], &[("softmax/exp", &l)], &[]);
    b.node(
        "ReduceSum",
        "softmax/ReduceSum",
        &["softmax/exp", "softmax.axes"],
        &[("softmax/sum", &[1, 1])],
        &[("keepdims", Attr::Int(1))],
    );
    b.node("Div", "softmax/Div", &["softmax/exp", "softmax/sum"], &[("probs", &l)], &[]);
    b.output("probs");
    b.build(super::SOFTMAX_NAIVE_DOC)
}

/// A layer norm over the last axis written out op by op (what older exporters produce):
/// `ReduceMean, Sub, Pow(2), ReduceMean, Add(eps), Sqrt, Div, Mul(gamma), Add(beta)`. Node names
/// are `ln/<step>/<Op>`, tensor names `ln/<value>`. Returns the output name (`out`).
fn layernorm(b: &mut GraphBuilder, x: &str, shape: &[i64], eps: f32, out: &str) -> String {
    let width = shape.last().copied().unwrap_or(1) as usize;
    let mut reduced = shape.to_vec();
    if let Some(last) = reduced.last_mut() {
        *last = 1;
    }
    let axes = [("axes", Attr::Ints(vec![-1])), ("keepdims", Attr::Int(1))];
    b.constant("ln.pow_exponent", &[], &[2.0]);
    b.constant("ln.eps", &[], &[eps]);
    b.weight("ln.gamma", &[width], 0.8, 1.2);
    b.weight("ln.beta", &[width], -0.1, 0.1);
    b.node("ReduceMean", "ln/mean/ReduceMean", &[x], &[("ln/mean", &reduced)], &axes);
    b.node("Sub", "ln/center/Sub", &[x, "ln/mean"], &[("ln/centered", shape)], &[]);
    b.node("Pow", "ln/square/Pow", &["ln/centered", "ln.pow_exponent"], &[("ln/squared", shape)], &[]);
    b.node("ReduceMean", "ln/var/ReduceMean", &["ln/squared"], &[("ln/var", &reduced)], &axes);
    b.node("Add", "ln/add_eps/Add", &["ln/var", "ln.eps"], &[("ln/var_eps", &reduced)], &[]);
    b.node("Sqrt", "ln/std/Sqrt", &["ln/var_eps"], &[("ln/std", &reduced)], &[]);
    b.node("Div", "ln/normalize/Div", &["ln/centered", "ln/std"], &[("ln/normalized", shape)], &[]);
    b.node("Mul", "ln/gamma/Mul", &["ln/normalized", "ln.gamma"], &[("ln/scaled", shape)], &[]);
    b.node("Add", "ln/beta/Add", &["ln/scaled", "ln.beta"], &[(out, shape)], &[])
}

/// `layernorm_overflow.onnx`: `x[1,16,64] → MatMul+Add (proj) → LayerNorm (written out)`.
///
/// Two outlier channels of the projection (weights in `[12, 28]` and `[-20, -8]`) sit at +465…+840
/// and −320…−575 while the others stay within ±3, so the squared deviations from the row mean
/// (`ln/squared`) are 1e5–7e5 in every row and overflow FP16 at `ln/square/Pow`. The variance becomes `inf` and every
/// normalised value collapses to 0 (the output to `beta`), although each input to the norm is
/// comfortably inside FP16 range.
#[must_use]
pub fn layernorm_overflow() -> ModelProto {
    const SEQ: usize = 16;
    const D: usize = 64;
    let mut b = GraphBuilder::new("layernorm_overflow", 0x6C6E_6F76);
    let shape = [1, SEQ as i64, D as i64];
    b.input("x", data_type::FLOAT, &shape);
    let mut w = b.rng().uniform_vec(D * D, -0.25, 0.25);
    for row in 0..D {
        w[row * D + 7] = b.rng().uniform(12.0, 28.0);
        w[row * D + 40] = b.rng().uniform(-20.0, -8.0);
    }
    b.constant("proj.weight", &[D, D], &w);
    b.weight("proj.bias", &[D], -0.1, 0.1);
    b.node("MatMul", "proj/MatMul", &["x", "proj.weight"], &[("proj/matmul_out", &shape)], &[]);
    b.node("Add", "proj/Add", &["proj/matmul_out", "proj.bias"], &[("hidden", &shape)], &[]);
    let out = layernorm(&mut b, "hidden", &shape, 1e-5, "output");
    b.output(&out);
    b.build(super::LAYERNORM_OVERFLOW_DOC)
}

/// `layernorm_eps_underflow.onnx`: `x[1,16,64] → Mul(1e-4) → LayerNorm (written out, eps = 1e-12)`.
///
/// After the pre-scale the rows lie in `[0, 1e-4)`: the squared deviations are below 4e-9 and
/// the variance about 6e-10…1e-9, under half of FP16's smallest subnormal (5.96e-8), so `ln/square/Pow`
/// flushes to 0 in FP16. The eps meant to keep the denominator positive is 1e-12, which is itself 0
/// in FP16 (`--out-of-range ieee`, the policy this sample documents), so `ln/std` is 0 and
/// `ln/normalize/Div` returns ±inf / NaN. In FP32 the output is an ordinary normalised row (|y| < 3).
/// The default `saturate` stores eps as 5.96e-8: no inf/NaN, but the output is still wrong.
#[must_use]
pub fn layernorm_eps_underflow() -> ModelProto {
    const SEQ: usize = 16;
    const D: usize = 64;
    let mut b = GraphBuilder::new("layernorm_eps_underflow", 0x6570_7375);
    let shape = [1, SEQ as i64, D as i64];
    b.input("x", data_type::FLOAT, &shape);
    b.constant("prescale.factor", &[], &[1e-4]);
    b.node("Mul", "prescale/Mul", &["x", "prescale.factor"], &[("x_scaled", &shape)], &[]);
    let out = layernorm(&mut b, "x_scaled", &shape, 1e-12, "output");
    b.output(&out);
    b.build(super::LAYERNORM_EPS_UNDERFLOW_DOC)
}

/// `Conv` + `BatchNormalization` + `Relu`, with Kaiming-uniform weights and mild BN statistics.
#[allow(clippy::too_many_arguments)]
fn conv_bn_relu(
    b: &mut GraphBuilder,
    block: &str,
    x: &str,
    cin: usize,
    cout: usize,
    stride: i64,
    out_hw: i64,
    out: &str,
) -> String {
    let fan_in = (cin * 9) as f64;
    let bound = (6.0 / fan_in).sqrt() as f32;
    let w = b.weight(&format!("{block}.conv.weight"), &[cout, cin, 3, 3], -bound, bound);
    let bias = b.weight(&format!("{block}.conv.bias"), &[cout], -0.1, 0.1);
    let scale = b.weight(&format!("{block}.bn.weight"), &[cout], 0.8, 1.2);
    let shift = b.weight(&format!("{block}.bn.bias"), &[cout], -0.1, 0.1);
    let mean = b.weight(&format!("{block}.bn.running_mean"), &[cout], -0.2, 0.2);
    let var = b.weight(&format!("{block}.bn.running_var"), &[cout], 0.5, 1.5);
    let shape = [1, cout as i64, out_hw, out_hw];
    let conv_out = format!("features/{block}/conv_out");
    let bn_out = format!("features/{block}/bn_out");
    b.node(
        "Conv",
        &format!("features/{block}/Conv"),
        &[x, &w, &bias],
        &[(&conv_out, &shape)],
        &[
            ("kernel_shape", Attr::Ints(vec![3, 3])),
            ("pads", Attr::Ints(vec![1, 1, 1, 1])),
            ("strides", Attr::Ints(vec![stride, stride])),
            ("dilations", Attr::Ints(vec![1, 1])),
            ("group", Attr::Int(1)),
        ],
    );
    b.node(
        "BatchNormalization",
        &format!("features/{block}/BatchNormalization"),
        &[&conv_out, &scale, &shift, &mean, &var],
        &[(&bn_out, &shape)],
        &[("epsilon", Attr::Float(1e-5)), ("momentum", Attr::Float(0.9))],
    );
    b.node("Relu", &format!("features/{block}/Relu"), &[&bn_out], &[(out, &shape)], &[])
}

/// `cnn_bn_relu.onnx`: a small healthy CNN, `image[1,3,32,32] → (Conv+BN+Relu)×2 → GlobalAveragePool →
/// Flatten → Gemm → logits[1,10]`. Activations stay within a few units; FP16 is fine.
#[must_use]
pub fn cnn_bn_relu() -> ModelProto {
    let mut b = GraphBuilder::new("cnn_bn_relu", 0x636E_6E31);
    b.input("image", data_type::FLOAT, &[1, 3, 32, 32]);
    conv_bn_relu(&mut b, "block1", "image", 3, 8, 1, 32, "features/block1/out");
    conv_bn_relu(&mut b, "block2", "features/block1/out", 8, 16, 2, 16, "features/block2/out");
    b.node(
        "GlobalAveragePool",
        "pool/GlobalAveragePool",
        &["features/block2/out"],
        &[("pool/avg", &[1, 16, 1, 1])],
        &[],
    );
    b.node("Flatten", "pool/Flatten", &["pool/avg"], &[("pool/flat", &[1, 16])], &[("axis", Attr::Int(1))]);
    let bound = (1.0f64 / 16.0).sqrt() as f32;
    b.weight("classifier.weight", &[10, 16], -bound, bound);
    b.weight("classifier.bias", &[10], -bound, bound);
    b.node(
        "Gemm",
        "classifier/Gemm",
        &["pool/flat", "classifier.weight", "classifier.bias"],
        &[("logits", &[1, 10])],
        &[("alpha", Attr::Float(1.0)), ("beta", Attr::Float(1.0)), ("transB", Attr::Int(1))],
    );
    b.output("logits");
    b.build(super::CNN_BN_RELU_DOC)
}

/// Input `x[1,seq,d]`, Q/K/V projections, `Q·Kᵀ × 1/√d` as `attn/scores_scaled`. Returns the
/// projection weights' bound (for the output projection).
fn attention_scores(b: &mut GraphBuilder, seq: usize, d: usize) -> f32 {
    let x_shape = [1, seq as i64, d as i64];
    let s_shape = [1, seq as i64, seq as i64];
    b.input("x", data_type::FLOAT, &x_shape);
    let bound = (3.0f64 / d as f64).sqrt() as f32;
    for p in ["q", "k", "v"] {
        let w = b.weight(&format!("attn.{p}_proj.weight"), &[d, d], -bound, bound);
        b.node("MatMul", &format!("attn/{p}_proj/MatMul"), &["x", &w], &[(&format!("attn/{p}"), &x_shape)], &[]);
    }
    b.node(
        "Transpose",
        "attn/k_transpose/Transpose",
        &["attn/k"],
        &[("attn/k_t", &[1, d as i64, seq as i64])],
        &[("perm", Attr::Ints(vec![0, 2, 1]))],
    );
    b.node("MatMul", "attn/scores/MatMul", &["attn/q", "attn/k_t"], &[("attn/scores", &s_shape)], &[]);
    b.constant("attn.scale", &[], &[1.0 / (d as f32).sqrt()]);
    b.node("Mul", "attn/scale/Mul", &["attn/scores", "attn.scale"], &[("attn/scores_scaled", &s_shape)], &[]);
    bound
}

/// Softmax over `attn/scores_masked` and the context `probs · V` as `attn/context`.
fn attention_context(b: &mut GraphBuilder, seq: usize, d: usize) {
    let s_shape = [1, seq as i64, seq as i64];
    b.node(
        "Softmax",
        "attn/softmax/Softmax",
        &["attn/scores_masked"],
        &[("attn/probs", &s_shape)],
        &[("axis", Attr::Int(-1))],
    );
    b.node(
        "MatMul",
        "attn/context/MatMul",
        &["attn/probs", "attn/v"],
        &[("attn/context", &[1, seq as i64, d as i64])],
        &[],
    );
}

/// `attention_mask.onnx`: one causal self-attention head, `x[1,8,16]`, d = 16.
///
/// The causal mask is a constant `[8,8]` initializer with −1e9 above the diagonal. −1e9 is outside
/// FP16 range: the default `--out-of-range saturate` stores −65504, `ieee` −inf (so
/// `attn/scores_masked` is about −65504 or −inf above the diagonal). Either is the intended
/// saturation: `exp(−65504)` and `exp(−inf)` are 0 exactly as `exp(−1e9)` is 0 in FP32, and every
/// row keeps its diagonal, so the softmax and everything after it agree with FP32 to FP16 precision.
#[must_use]
pub fn attention_mask() -> ModelProto {
    const SEQ: usize = 8;
    const D: usize = 16;
    let mut b = GraphBuilder::new("attention_mask", 0x6174_746E);
    let x_shape = [1, SEQ as i64, D as i64];
    let s_shape = [1, SEQ as i64, SEQ as i64];
    let bound = attention_scores(&mut b, SEQ, D);
    let mask: Vec<f32> = (0..SEQ * SEQ).map(|i| if i % SEQ > i / SEQ { -1e9 } else { 0.0 }).collect();
    b.constant("attn.causal_mask", &[SEQ, SEQ], &mask);
    b.node(
        "Add",
        "attn/mask/Add",
        &["attn/scores_scaled", "attn.causal_mask"],
        &[("attn/scores_masked", &s_shape)],
        &[],
    );
    attention_context(&mut b, SEQ, D);
    b.weight("attn.out_proj.weight", &[D, D], -bound, bound);
    b.weight("attn.out_proj.bias", &[D], -0.1, 0.1);
    b.node(
        "MatMul",
        "attn/out_proj/MatMul",
        &["attn/context", "attn.out_proj.weight"],
        &[("attn/out_proj/matmul_out", &x_shape)],
        &[],
    );
    b.node(
        "Add",
        "attn/out_proj/Add",
        &["attn/out_proj/matmul_out", "attn.out_proj.bias"],
        &[("output", &x_shape)],
        &[],
    );
    b.output("output");
    b.build(super::ATTENTION_MASK_DOC)
}

/// `regression_overflow.onnx`: `features[1,32] → Gemm+Relu (64 hidden) → Gemm → targets[1,4]`.
///
/// A regression head trained on unnormalised targets (think prices in dollars): the output biases
/// are 1.25e5, 2e4, 3e3 and 9e4, so `targets` 0 and 3 lie around 1.25e5 and 9e4 for every input and
/// overflow to `inf` when `head/fc2/Gemm` stores its output in FP16. Nothing downstream reads the
/// tensor, so keeping that one Gemm FP32 is the whole fix. The bias 1.25e5 is itself beyond FP16:
/// documented under `--out-of-range ieee` (+inf); the default `saturate` stores 65504, so target 0
/// comes out near 65200 (wrong, but not always inf), and `keep-fp32` keeps the Gemm FP32.
#[must_use]
pub fn regression_overflow() -> ModelProto {
    const IN: usize = 32;
    const HIDDEN: usize = 64;
    const OUT: usize = 4;
    let mut b = GraphBuilder::new("regression_overflow", 0x7265_6772);
    b.input("features", data_type::FLOAT, &[1, IN as i64]);
    b.weight("head.fc1.weight", &[IN, HIDDEN], -0.3, 0.3);
    b.weight("head.fc1.bias", &[HIDDEN], 0.0, 0.5);
    b.weight("head.fc2.weight", &[HIDDEN, OUT], -500.0, 500.0);
    b.constant("head.fc2.bias", &[OUT], &[1.25e5, 2.0e4, 3.0e3, 9.0e4]);
    let h = [1, HIDDEN as i64];
    b.node("Gemm", "head/fc1/Gemm", &["features", "head.fc1.weight", "head.fc1.bias"], &[("head/fc1/out", &h)], &[]);
    b.node("Relu", "head/act/Relu", &["head/fc1/out"], &[("head/hidden", &h)], &[]);
    b.node(
        "Gemm",
        "head/fc2/Gemm",
        &["head/hidden", "head.fc2.weight", "head.fc2.bias"],
        &[("targets", &[1, OUT as i64])],
        &[],
    );
    b.output("targets");
    b.build(super::REGRESSION_OVERFLOW_DOC)
}

/// `mask_fill_nan.onnx`: one self-attention head, `x[1,8,16]`, with a padding mask turned into an
/// additive bias the old Transformers way: `(1 − mask) × −1e9`.
///
/// Rounded as IEEE does (`--out-of-range ieee`, the policy this sample documents) the constant −1e9
/// is −inf in FP16, and `0 × −inf` is NaN, so `attn/mask/Mul` writes NaN for every real token (and
/// −inf for the 3 padded ones); the NaNs reach every score, probability and output. The default
/// `saturate` stores −65504 instead: no NaN, and the output matches FP32.
/// With that Mul in FP32 the bias is exactly 0 / −1e9, and its FP16 cast for the Add (0 / −inf) is
/// harmless: `exp(−inf) = 0` and every row keeps 5 real tokens. Compare with `attention_mask`,
/// where the same −1e9 is added directly and saturates benignly.
#[must_use]
pub fn mask_fill_nan() -> ModelProto {
    const SEQ: usize = 8;
    const D: usize = 16;
    const PADDED: usize = 3;
    let mut b = GraphBuilder::new("mask_fill_nan", 0x6E61_6E6D);
    let x_shape = [1, SEQ as i64, D as i64];
    let s_shape = [1, SEQ as i64, SEQ as i64];
    let m_shape = [1, 1, SEQ as i64];
    let bound = attention_scores(&mut b, SEQ, D);
    let mask: Vec<f32> = (0..SEQ).map(|i| if i < SEQ - PADDED { 1.0 } else { 0.0 }).collect();
    b.constant("attn.padding_mask", &[1, 1, SEQ], &mask);
    b.constant("attn.one", &[], &[1.0]);
    b.constant("attn.mask_fill", &[], &[-1e9]);
    b.node("Sub", "attn/mask/Sub", &["attn.one", "attn.padding_mask"], &[("attn/mask_inverted", &m_shape)], &[]);
    b.node("Mul", "attn/mask/Mul", &["attn/mask_inverted", "attn.mask_fill"], &[("attn/mask_bias", &m_shape)], &[]);
    b.node("Add", "attn/mask/Add", &["attn/scores_scaled", "attn/mask_bias"], &[("attn/scores_masked", &s_shape)], &[]);
    attention_context(&mut b, SEQ, D);
    b.weight("attn.out_proj.weight", &[D, D], -bound, bound);
    b.node("MatMul", "attn/out_proj/MatMul", &["attn/context", "attn.out_proj.weight"], &[("output", &x_shape)], &[]);
    b.output("output");
    b.build(super::MASK_FILL_NAN_DOC)
}

/// An ultralytics `Conv` block after `BatchNorm` fusion: `/model.N/conv/Conv` (3x3 or 1x1, bias) and
/// `SiLU` exported as `Sigmoid` + `Mul`. Returns the block's output (`/model.N/act/Mul_output_0`).
fn yolo_conv(b: &mut GraphBuilder, n: usize, x: &str, cin: usize, cout: usize, k: usize, dims: &[Dim]) -> String {
    let fan_in = (cin * k * k) as f64;
    let bound = (6.0 / fan_in).sqrt() as f32;
    let w = b.weight(&format!("model.{n}.conv.weight"), &[cout, cin, k, k], -bound, bound);
    let bias = b.weight(&format!("model.{n}.conv.bias"), &[cout], -0.1, 0.1);
    let stride = if k == 3 { 2 } else { 1 };
    let pad = (k / 2) as i64;
    let f = data_type::FLOAT;
    let conv = b.node_dims(
        "Conv",
        &format!("/model.{n}/conv/Conv"),
        &[x, &w, &bias],
        &[(&format!("/model.{n}/conv/Conv_output_0"), f, dims)],
        &[
            ("dilations", Attr::Ints(vec![1, 1])),
            ("group", Attr::Int(1)),
            ("kernel_shape", Attr::Ints(vec![k as i64, k as i64])),
            ("pads", Attr::Ints(vec![pad, pad, pad, pad])),
            ("strides", Attr::Ints(vec![stride, stride])),
        ],
    );
    let sig = b.node_dims(
        "Sigmoid",
        &format!("/model.{n}/act/Sigmoid"),
        &[&conv],
        &[(&format!("/model.{n}/act/Sigmoid_output_0"), f, dims)],
        &[],
    );
    b.node_dims(
        "Mul",
        &format!("/model.{n}/act/Mul"),
        &[&conv, &sig],
        &[(&format!("/model.{n}/act/Mul_output_0"), f, dims)],
        &[],
    )
}

/// `yolo_symbolic.onnx`: a miniature YOLO-style detector as `PyTorch` exports it with
/// `dynamic_axes={'images': {0: 'batch', 2: 'height', 3: 'width'}, 'output0': {0: 'batch', 2: 'anchors'}}`.
///
/// `images[batch,3,height,width] → Conv(s2)+SiLU → Conv(s2)+SiLU → Resize back to the first block's size
/// (sizes = Concat(Shape(x)[0:2], Shape(skip)[2:4]), the `F.interpolate(x, size=skip.shape[2:])`
/// pattern) → Concat with the skip → 1x1 Conv to 6 channels (4 box + 2 class) → Reshape to
/// `[batch, 6, -1]` with the batch read by Shape → Gather → Unsqueeze → Concat → Sigmoid → output0`.
/// Every intermediate `value_info` carries symbolic dims (`batch`, and sizes derived from `height` and
/// `width` written as ONNX Runtime's symbolic shape inference writes them), so nothing is static. FP16 is
/// fine: activations stay within a few units.
#[must_use]
pub fn yolo_symbolic() -> ModelProto {
    const H1: &str = "floor(height/2 - 1/2) + 1";
    const W1: &str = "floor(width/2 - 1/2) + 1";
    const H2: &str = "floor(floor(height/2 - 1/2)/2) + 1";
    const W2: &str = "floor(floor(width/2 - 1/2)/2) + 1";
    const ANCHORS: &str = "(floor(height/2 - 1/2) + 1)*(floor(width/2 - 1/2) + 1)";
    let (batch, i64t, f) = (Dim::Param("batch"), data_type::INT64, data_type::FLOAT);
    let mut b = GraphBuilder::new("main_graph", 0x796F_6C6F);
    b.input_dims("images", f, &[batch, Dim::Fixed(3), Dim::Param("height"), Dim::Param("width")]);
    let d1 = [batch, Dim::Fixed(8), Dim::Param(H1), Dim::Param(W1)];
    let x0 = yolo_conv(&mut b, 0, "images", 3, 8, 3, &d1);
    let d2 = [batch, Dim::Fixed(16), Dim::Param(H2), Dim::Param(W2)];
    let x1 = yolo_conv(&mut b, 1, &x0, 8, 16, 3, &d2);

    // Upsample x1 to the size of x0: sizes computed from the two shapes.
    let four = [Dim::Fixed(4)];
    let two = [Dim::Fixed(2)];
    let shape = b.node_dims("Shape", "/model.2/Shape", &[&x1], &[("/model.2/Shape_output_0", i64t, &four)], &[]);
    let s0 = b.constant_node("/model.2/Constant", "/model.2/Constant_output_0", &i64_tensor(&[1], &[0]));
    let s2 = b.constant_node("/model.2/Constant_1", "/model.2/Constant_1_output_0", &i64_tensor(&[1], &[2]));
    let s4 = b.constant_node("/model.2/Constant_2", "/model.2/Constant_2_output_0", &i64_tensor(&[1], &[4]));
    let nc =
        b.node_dims("Slice", "/model.2/Slice", &[&shape, &s0, &s2], &[("/model.2/Slice_output_0", i64t, &two)], &[]);
    let skip_shape =
        b.node_dims("Shape", "/model.2/Shape_1", &[&x0], &[("/model.2/Shape_1_output_0", i64t, &four)], &[]);
    let hw = b.node_dims(
        "Slice",
        "/model.2/Slice_1",
        &[&skip_shape, &s2, &s4],
        &[("/model.2/Slice_1_output_0", i64t, &two)],
        &[],
    );
    let sizes = b.node_dims(
        "Concat",
        "/model.2/Concat",
        &[&nc, &hw],
        &[("/model.2/Concat_output_0", i64t, &four)],
        &[("axis", Attr::Int(0))],
    );
    let up_dims = [batch, Dim::Fixed(16), Dim::Param(H1), Dim::Param(W1)];
    let up = b.node_dims(
        "Resize",
        "/model.2/Resize",
        &[&x1, "", "", &sizes],
        &[("/model.2/Resize_output_0", f, &up_dims)],
        &[
            ("coordinate_transformation_mode", Attr::String("asymmetric".into())),
            ("cubic_coeff_a", Attr::Float(-0.75)),
            ("mode", Attr::String("nearest".into())),
            ("nearest_mode", Attr::String("floor".into())),
        ],
    );
    let cat_dims = [batch, Dim::Fixed(24), Dim::Param(H1), Dim::Param(W1)];
    let cat = b.node_dims(
        "Concat",
        "/model.3/Concat",
        &[&up, &x0],
        &[("/model.3/Concat_output_0", f, &cat_dims)],
        &[("axis", Attr::Int(1))],
    );

    // Detect head: 1x1 conv to 4 box + 2 class channels, then view(batch, 6, -1).
    let bound = (6.0f64 / 24.0).sqrt() as f32;
    let w = b.weight("model.4.conv.weight", &[6, 24, 1, 1], -bound, bound);
    let bias = b.weight("model.4.conv.bias", &[6], -0.1, 0.1);
    let head_dims = [batch, Dim::Fixed(6), Dim::Param(H1), Dim::Param(W1)];
    let head = b.node_dims(
        "Conv",
        "/model.4/conv/Conv",
        &[&cat, &w, &bias],
        &[("/model.4/conv/Conv_output_0", f, &head_dims)],
        &[
            ("dilations", Attr::Ints(vec![1, 1])),
            ("group", Attr::Int(1)),
            ("kernel_shape", Attr::Ints(vec![1, 1])),
            ("pads", Attr::Ints(vec![0, 0, 0, 0])),
            ("strides", Attr::Ints(vec![1, 1])),
        ],
    );
    let hshape = b.node_dims("Shape", "/model.5/Shape", &[&head], &[("/model.5/Shape_output_0", i64t, &four)], &[]);
    let zero = b.constant_node("/model.5/Constant", "/model.5/Constant_output_0", &i64_tensor(&[], &[0]));
    let n = b.node_dims(
        "Gather",
        "/model.5/Gather",
        &[&hshape, &zero],
        &[("/model.5/Gather_output_0", i64t, &[])],
        &[("axis", Attr::Int(0))],
    );
    let axes = b.constant_node("/model.5/Constant_1", "/model.5/Constant_1_output_0", &i64_tensor(&[1], &[0]));
    let n1 = b.node_dims(
        "Unsqueeze",
        "/model.5/Unsqueeze",
        &[&n, &axes],
        &[("/model.5/Unsqueeze_output_0", i64t, &[Dim::Fixed(1)])],
        &[],
    );
    let rest = b.constant_node("/model.5/Constant_2", "/model.5/Constant_2_output_0", &i64_tensor(&[2], &[6, -1]));
    let target = b.node_dims(
        "Concat",
        "/model.5/Concat",
        &[&n1, &rest],
        &[("/model.5/Concat_output_0", i64t, &[Dim::Fixed(3)])],
        &[("axis", Attr::Int(0))],
    );
    let flat_dims = [batch, Dim::Fixed(6), Dim::Param(ANCHORS)];
    let flat = b.node_dims(
        "Reshape",
        "/model.5/Reshape",
        &[&head, &target],
        &[("/model.5/Reshape_output_0", f, &flat_dims)],
        &[("allowzero", Attr::Int(0))],
    );
    let out_dims = [batch, Dim::Fixed(6), Dim::Param("anchors")];
    b.node_dims("Sigmoid", "/model.5/Sigmoid", &[&flat], &[("output0", f, &out_dims)], &[]);
    b.output("output0");
    b.build(super::YOLO_SYMBOLIC_DOC)
}

/// `tf2onnx_names.onnx`: a Keras embedding head converted by tf2onnx: tensors are named
/// `<node name>:0` (`model/dense/Relu:0`), weights `.../ReadVariableOp:0`, the `ReduceSum` axes a
/// generated `const_axes__9`.
///
/// `input_1[1,32] → Dense(64)+ReLU → tf.math.square (Mul) → tf.math.reduce_sum → tf.math.sqrt →
/// truediv`: an L2 normalisation written out. The `ReLU` outputs sit at 65–75 (bias 66–74), so each
/// square (< 5600) fits FP16 but their sum over 64 units is about 3.1e5, above 65504:
/// `model/tf.math.reduce_sum/Sum` overflows to inf in FP16, its reader `Sqrt` gives inf and the
/// division turns every output into 0 instead of about 0.125.
#[must_use]
pub fn tf2onnx_names() -> ModelProto {
    const IN: usize = 32;
    const UNITS: usize = 64;
    let mut b = GraphBuilder::new("tf2onnx", 0x7466_326F);
    b.input("input_1", data_type::FLOAT, &[1, IN as i64]);
    b.weight("model/dense/MatMul/ReadVariableOp:0", &[IN, UNITS], -0.1, 0.1);
    b.weight("model/dense/BiasAdd/ReadVariableOp:0", &[UNITS], 66.0, 74.0);
    b.constant_i64("const_axes__9", &[1], &[-1]);
    let h = [1, UNITS as i64];
    b.node(
        "MatMul",
        "model/dense/MatMul",
        &["input_1", "model/dense/MatMul/ReadVariableOp:0"],
        &[("model/dense/MatMul:0", &h)],
        &[],
    );
    b.node(
        "Add",
        "model/dense/BiasAdd",
        &["model/dense/MatMul:0", "model/dense/BiasAdd/ReadVariableOp:0"],
        &[("model/dense/BiasAdd:0", &h)],
        &[],
    );
    b.node("Relu", "model/dense/Relu", &["model/dense/BiasAdd:0"], &[("model/dense/Relu:0", &h)], &[]);
    b.node(
        "Mul",
        "model/tf.math.square/Square",
        &["model/dense/Relu:0", "model/dense/Relu:0"],
        &[("model/tf.math.square/Square:0", &h)],
        &[],
    );
    b.node(
        "ReduceSum",
        "model/tf.math.reduce_sum/Sum",
        &["model/tf.math.square/Square:0", "const_axes__9"],
        &[("model/tf.math.reduce_sum/Sum:0", &[1, 1])],
        &[("keepdims", Attr::Int(1))],
    );
    b.node(
        "Sqrt",
        "model/tf.math.sqrt/Sqrt",
        &["model/tf.math.reduce_sum/Sum:0"],
        &[("model/tf.math.sqrt/Sqrt:0", &[1, 1])],
        &[],
    );
    b.node(
        "Div",
        "model/tf.math.truediv/truediv",
        &["model/dense/Relu:0", "model/tf.math.sqrt/Sqrt:0"],
        &[("tf.math.truediv", &h)],
        &[],
    );
    b.output("tf.math.truediv");
    b.build(super::TF2ONNX_NAMES_DOC)
}

/// `vad_if_branches.onnx`: a voice-activity detector shaped like Silero VAD's multi-rate export,
/// `input[1,512] + sr → If(sr == 8000) → logit → Sigmoid → output[1,1]`.
///
/// The whole network sits in the branches of `/If`, chosen by the sample rate input `sr`: the
/// `then_branch` is the 8 kHz model (`/_model_8k/...`: one STFT convolution over a whole
/// 256-sample frame, the shapes of that frame declared in its `value_info`, as a trace at 8 kHz
/// records them), the `else_branch` the 16 kHz model (`/_model/...`: STFT convolution, encoder
/// convolution, and a decoder that squeezes the batch axis in a nested `/_model/decoder/If` when it
/// is 1, the way Silero's decoder does; the two inner branches have different ranks). Any `sr`
/// other than 8000, including trtlens' default random integers (0 or 1) and 16000, takes the
/// 16 kHz branch, which fits the declared 512 samples. ONNX Runtime runs only the branch taken
/// (it merges the conflicting declared shapes leniently); tract analyses both branches for these
/// shapes and fails on the 8 kHz one (`Impossible to unify Val(256) with Val(512)`) unless trtlens
/// inlines the branch the inputs select.
#[must_use]
pub fn vad_if_branches() -> ModelProto {
    const N: i64 = 512;
    const N_8K: i64 = 256;
    const BINS: usize = 16;
    const WIN: usize = 64;
    const HOP: i64 = 32;
    const CH: usize = 8;
    const FRAMES: i64 = (N - WIN as i64) / HOP + 1;
    let mut b = GraphBuilder::new("vad_if_branches", 0x7661_6469);
    b.input("input", data_type::FLOAT, &[1, N]);
    b.input("sr", data_type::INT64, &[]);
    // Weights live in the main graph and are read from inside the branches (outer scope), as in
    // exports of models with several sub-networks.
    b.weight("_model.stft.forward_basis_buffer", &[BINS, 1, WIN], -0.3, 0.3);
    b.weight("_model.encoder.0.reparam_conv.weight", &[CH, BINS, 3], -0.25, 0.25);
    b.weight("_model.encoder.0.reparam_conv.bias", &[CH], -0.1, 0.1);
    b.weight("_model.decoder.weight", &[CH, 1], -0.5, 0.5);
    b.weight("_model.decoder.bias", &[1], -0.1, 0.1);
    b.weight("_model_8k.stft.forward_basis_buffer", &[CH, 1, N_8K as usize], -0.1, 0.1);
    b.weight("_model_8k.decoder.weight", &[CH, 1], -0.5, 0.5);
    b.constant_node("/Constant", "/Constant_output_0", &i64_tensor(&[], &[8000]));
    b.node_typed("Equal", "/Equal", &["sr", "/Constant_output_0"], &[("/Equal_output_0", data_type::BOOL, &[])], &[]);

    // then_branch: the 8 kHz network; its value_info holds the shapes of the 256-sample frame it was
    // traced with.
    let mut k8 = b.body("torch_jit_8k");
    k8.constant_node("/_model_8k/Constant", "/_model_8k/Constant_output_0", &i64_tensor(&[1], &[1]));
    k8.node(
        "Unsqueeze",
        "/_model_8k/Unsqueeze",
        &["input", "/_model_8k/Constant_output_0"],
        &[("/_model_8k/Unsqueeze_output_0", &[1, 1, N_8K])],
        &[],
    );
    k8.node(
        "Conv",
        "/_model_8k/stft/Conv",
        &["/_model_8k/Unsqueeze_output_0", "_model_8k.stft.forward_basis_buffer"],
        &[("/_model_8k/stft/Conv_output_0", &[1, CH as i64, 1])],
        &[("kernel_shape", Attr::Ints(vec![N_8K])), ("strides", Attr::Ints(vec![N_8K]))],
    );
    // One 256-sample frame gives one STFT frame; average over frames (any length works, but the
    // declared shapes say 1 frame of 256 samples).
    k8.node(
        "ReduceMean",
        "/_model_8k/ReduceMean",
        &["/_model_8k/stft/Conv_output_0"],
        &[("/_model_8k/ReduceMean_output_0", &[1, CH as i64])],
        &[("axes", Attr::Ints(vec![-1])), ("keepdims", Attr::Int(0))],
    );
    k8.node(
        "Relu",
        "/_model_8k/encoder/Relu",
        &["/_model_8k/ReduceMean_output_0"],
        &[("/_model_8k/encoder/Relu_output_0", &[1, CH as i64])],
        &[],
    );
    k8.node(
        "MatMul",
        "/_model_8k/decoder/MatMul",
        &["/_model_8k/encoder/Relu_output_0", "_model_8k.decoder.weight"],
        &[("/_model_8k/decoder/MatMul_output_0", &[1, 1])],
        &[],
    );
    k8.output("/_model_8k/decoder/MatMul_output_0");

    // else_branch: the 16 kHz network for 512-sample frames.
    let mut k16 = b.body("torch_jit_16k");
    let frames = [1, CH as i64, FRAMES];
    k16.constant_node("/_model/Constant", "/_model/Constant_output_0", &i64_tensor(&[1], &[1]));
    k16.node(
        "Unsqueeze",
        "/_model/Unsqueeze",
        &["input", "/_model/Constant_output_0"],
        &[("/_model/Unsqueeze_output_0", &[1, 1, N])],
        &[],
    );
    k16.node(
        "Conv",
        "/_model/stft/Conv",
        &["/_model/Unsqueeze_output_0", "_model.stft.forward_basis_buffer"],
        &[("/_model/stft/Conv_output_0", &[1, BINS as i64, FRAMES])],
        &[("kernel_shape", Attr::Ints(vec![WIN as i64])), ("strides", Attr::Ints(vec![HOP]))],
    );
    k16.node(
        "Conv",
        "/_model/encoder/0/reparam_conv/Conv",
        &["/_model/stft/Conv_output_0", "_model.encoder.0.reparam_conv.weight", "_model.encoder.0.reparam_conv.bias"],
        &[("/_model/encoder/0/reparam_conv/Conv_output_0", &frames)],
        &[("kernel_shape", Attr::Ints(vec![3])), ("pads", Attr::Ints(vec![1, 1]))],
    );
    k16.node(
        "Relu",
        "/_model/encoder/0/activation/Relu",
        &["/_model/encoder/0/reparam_conv/Conv_output_0"],
        &[("/_model/encoder/0/activation/Relu_output_0", &frames)],
        &[],
    );
    // Silero's decoder: `x.squeeze(0)` when the batch is 1, written by the exporter as an If on
    // the runtime shape.
    k16.node_typed(
        "Shape",
        "/_model/decoder/Shape",
        &["/_model/encoder/0/activation/Relu_output_0"],
        &[("/_model/decoder/Shape_output_0", data_type::INT64, &[3])],
        &[],
    );
    k16.constant_node("/_model/decoder/Constant", "/_model/decoder/Constant_output_0", &i64_tensor(&[], &[0]));
    k16.node_typed(
        "Gather",
        "/_model/decoder/Gather",
        &["/_model/decoder/Shape_output_0", "/_model/decoder/Constant_output_0"],
        &[("/_model/decoder/Gather_output_0", data_type::INT64, &[])],
        &[("axis", Attr::Int(0))],
    );
    k16.constant_node("/_model/decoder/Constant_1", "/_model/decoder/Constant_1_output_0", &i64_tensor(&[], &[1]));
    k16.node_typed(
        "Equal",
        "/_model/decoder/Equal",
        &["/_model/decoder/Gather_output_0", "/_model/decoder/Constant_1_output_0"],
        &[("/_model/decoder/Equal_output_0", data_type::BOOL, &[])],
        &[],
    );
    let mut squeeze = k16.body("torch_jit_squeeze");
    squeeze.constant_node("/_model/decoder/Constant_2", "/_model/decoder/Constant_2_output_0", &i64_tensor(&[1], &[0]));
    squeeze.node(
        "Squeeze",
        "/_model/decoder/Squeeze",
        &["/_model/encoder/0/activation/Relu_output_0", "/_model/decoder/Constant_2_output_0"],
        &[("/_model/decoder/Squeeze_output_0", &[CH as i64, FRAMES])],
        &[],
    );
    squeeze.output("/_model/decoder/Squeeze_output_0");
    let mut keep = k16.body("torch_jit_keep");
    keep.node(
        "Identity",
        "/_model/decoder/Identity",
        &["/_model/encoder/0/activation/Relu_output_0"],
        &[("/_model/decoder/Identity_output_0", &frames)],
        &[],
    );
    keep.output("/_model/decoder/Identity_output_0");
    k16.if_node(
        "/_model/decoder/If",
        "/_model/decoder/Equal_output_0",
        squeeze,
        keep,
        &[("/_model/decoder/If_output_0", &[CH as i64, FRAMES])],
    );
    k16.node(
        "ReduceMean",
        "/_model/decoder/ReduceMean",
        &["/_model/decoder/If_output_0"],
        &[("/_model/decoder/ReduceMean_output_0", &[CH as i64])],
        &[("axes", Attr::Ints(vec![-1])), ("keepdims", Attr::Int(0))],
    );
    k16.node(
        "MatMul",
        "/_model/decoder/MatMul",
        &["/_model/decoder/ReduceMean_output_0", "_model.decoder.weight"],
        &[("/_model/decoder/MatMul_output_0", &[1])],
        &[],
    );
    k16.node(
        "Add",
        "/_model/decoder/Add",
        &["/_model/decoder/MatMul_output_0", "_model.decoder.bias"],
        &[("/_model/decoder/Add_output_0", &[1])],
        &[],
    );
    k16.constant_node("/_model/Constant_1", "/_model/Constant_1_output_0", &i64_tensor(&[1], &[0]));
    k16.node(
        "Unsqueeze",
        "/_model/Unsqueeze_1",
        &["/_model/decoder/Add_output_0", "/_model/Constant_1_output_0"],
        &[("/_model/Unsqueeze_1_output_0", &[1, 1])],
        &[],
    );
    k16.output("/_model/Unsqueeze_1_output_0");

    b.if_node("/If", "/Equal_output_0", k8, k16, &[("/If_output_0", &[1, 1])]);
    b.node("Sigmoid", "/Sigmoid", &["/If_output_0"], &[("output", &[1, 1])], &[]);
    b.output("output");
    b.build(super::VAD_IF_BRANCHES_DOC)
}

fn f32_tensor(shape: &[usize], values: &[f32]) -> Tensor {
    Tensor::from_f32(shape, values).unwrap_or_else(|e| panic!("sample tensor {shape:?}: {e}"))
}

fn i64_tensor(shape: &[usize], values: &[i64]) -> Tensor {
    Tensor::from_i64(shape, values).unwrap_or_else(|e| panic!("sample tensor {shape:?}: {e}"))
}

/// `attention_mask_f32min.onnx`: the first self-attention of a BERT encoder as `torch.onnx.export`
/// writes it for a Hugging Face model: `hidden_states[1,8,16]`, 2 heads of 8, node and tensor
/// names in the exporter's `/bert/encoder/layer.0/attention/self/...` style, `Linear` layers as
/// `MatMul` with an `onnx::MatMul_N` weight plus `Add` with the named bias.
///
/// The padding mask (5 real tokens, 3 padded; an int64 initializer standing in for the
/// `attention_mask` input) becomes the additive bias of `get_extended_attention_mask`:
/// `mask[:, None, None, :]` (two `Unsqueeze`), `.to(float32)` (`Cast`), then
/// `(1.0 - mask) * torch.finfo(float32).min` (`Sub` and `Mul` with `Constant`s 1.0 and
/// −3.4028235e38), added to the scaled scores before the `Softmax`.
///
/// FP16 cannot hold −3.4028235e38. Rounded as IEEE does (`--out-of-range ieee`) it is −inf, and
/// `0 × −inf = NaN` for every real token: `/bert/Mul` writes NaN, and every score, probability and
/// output is NaN (in ONNX Runtime too). Saturated to −65504 (the default, what `TensorRT` does
/// with weights) the bias is 0 / −65504, `exp(−65504 − max)` is 0 like `exp(−3.4e38)`, and the
/// output matches FP32 to half precision.
#[must_use]
pub fn attention_mask_f32min() -> ModelProto {
    const SEQ: usize = 8;
    const HIDDEN: usize = 16;
    const HEADS: usize = 2;
    const HEAD: usize = HIDDEN / HEADS;
    const PADDED: usize = 3;
    let mut b = GraphBuilder::new("main_graph", 0x6633_326D);
    let h_shape = [1, SEQ as i64, HIDDEN as i64];
    let split = [1, SEQ as i64, HEADS as i64, HEAD as i64];
    let heads = [1, HEADS as i64, SEQ as i64, HEAD as i64];
    let scores = [1, HEADS as i64, SEQ as i64, SEQ as i64];
    let m_shape = [1, 1, 1, SEQ as i64];
    b.input("hidden_states", data_type::FLOAT, &h_shape);

    // The extended attention mask.
    let mask: Vec<i64> = (0..SEQ).map(|i| i64::from(i < SEQ - PADDED)).collect();
    b.constant_i64("attention_mask", &[1, SEQ], &mask);
    let i64t = data_type::INT64;
    b.constant_node("/bert/Constant", "/bert/Constant_output_0", &i64_tensor(&[1], &[1]));
    b.node_typed(
        "Unsqueeze",
        "/bert/Unsqueeze",
        &["attention_mask", "/bert/Constant_output_0"],
        &[("/bert/Unsqueeze_output_0", i64t, &[1, 1, SEQ as i64])],
        &[],
    );
    b.constant_node("/bert/Constant_1", "/bert/Constant_1_output_0", &i64_tensor(&[1], &[2]));
    b.node_typed(
        "Unsqueeze",
        "/bert/Unsqueeze_1",
        &["/bert/Unsqueeze_output_0", "/bert/Constant_1_output_0"],
        &[("/bert/Unsqueeze_1_output_0", i64t, &m_shape)],
        &[],
    );
    b.node(
        "Cast",
        "/bert/Cast",
        &["/bert/Unsqueeze_1_output_0"],
        &[("/bert/Cast_output_0", &m_shape)],
        &[("to", Attr::Int(i64::from(data_type::FLOAT)))],
    );
    b.constant_node("/bert/Constant_2", "/bert/Constant_2_output_0", &f32_tensor(&[], &[1.0]));
    b.node(
        "Sub",
        "/bert/Sub",
        &["/bert/Constant_2_output_0", "/bert/Cast_output_0"],
        &[("/bert/Sub_output_0", &m_shape)],
        &[],
    );
    b.constant_node("/bert/Constant_3", "/bert/Constant_3_output_0", &f32_tensor(&[], &[f32::MIN]));
    b.node(
        "Mul",
        "/bert/Mul",
        &["/bert/Sub_output_0", "/bert/Constant_3_output_0"],
        &[("/bert/Mul_output_0", &m_shape)],
        &[],
    );

    // Self-attention.
    let p = "/bert/encoder/layer.0/attention/self";
    let bound = (3.0f64 / HIDDEN as f64).sqrt() as f32;
    b.constant_node(
        &format!("{p}/Constant"),
        &format!("{p}/Constant_output_0"),
        &i64_tensor(&[4], &[1, SEQ as i64, HEADS as i64, HEAD as i64]),
    );
    let mut projected = Vec::new();
    for (k, (proj, weight)) in [("query", 301), ("key", 302), ("value", 303)].into_iter().enumerate() {
        let w = b.weight(&format!("onnx::MatMul_{weight}"), &[HIDDEN, HIDDEN], -bound, bound);
        let bias = b.weight(&format!("bert.encoder.layer.0.attention.self.{proj}.bias"), &[HIDDEN], -0.1, 0.1);
        let mm = b.node(
            "MatMul",
            &format!("{p}/{proj}/MatMul"),
            &["hidden_states", &w],
            &[(&format!("{p}/{proj}/MatMul_output_0"), &h_shape)],
            &[],
        );
        let add = b.node(
            "Add",
            &format!("{p}/{proj}/Add"),
            &[&bias, &mm],
            &[(&format!("{p}/{proj}/Add_output_0"), &h_shape)],
            &[],
        );
        let suffix = if k == 0 { String::new() } else { format!("_{k}") };
        let reshaped = b.node(
            "Reshape",
            &format!("{p}/Reshape{suffix}"),
            &[&add, &format!("{p}/Constant_output_0")],
            &[(&format!("{p}/Reshape{suffix}_output_0"), &split)],
            &[],
        );
        // Keys go straight to [batch, heads, head, seq] (`transpose_for_scores` then `transpose(-1, -2)`).
        let (perm, shape) = if proj == "key" {
            (vec![0, 2, 3, 1], [1, HEADS as i64, HEAD as i64, SEQ as i64])
        } else {
            (vec![0, 2, 1, 3], heads)
        };
        projected.push(b.node(
            "Transpose",
            &format!("{p}/Transpose{suffix}"),
            &[&reshaped],
            &[(&format!("{p}/Transpose{suffix}_output_0"), &shape)],
            &[("perm", Attr::Ints(perm))],
        ));
    }
    let (q, k, v) = (&projected[0], &projected[1], &projected[2]);
    b.node("MatMul", &format!("{p}/MatMul"), &[q, k], &[(&format!("{p}/MatMul_output_0"), &scores)], &[]);
    b.constant_node(
        &format!("{p}/Constant_1"),
        &format!("{p}/Constant_1_output_0"),
        &f32_tensor(&[], &[(HEAD as f32).sqrt()]),
    );
    b.node(
        "Div",
        &format!("{p}/Div"),
        &[&format!("{p}/MatMul_output_0"), &format!("{p}/Constant_1_output_0")],
        &[(&format!("{p}/Div_output_0"), &scores)],
        &[],
    );
    b.node(
        "Add",
        &format!("{p}/Add"),
        &[&format!("{p}/Div_output_0"), "/bert/Mul_output_0"],
        &[(&format!("{p}/Add_output_0"), &scores)],
        &[],
    );
    b.node(
        "Softmax",
        &format!("{p}/Softmax"),
        &[&format!("{p}/Add_output_0")],
        &[(&format!("{p}/Softmax_output_0"), &scores)],
        &[("axis", Attr::Int(-1))],
    );
    b.node(
        "MatMul",
        &format!("{p}/MatMul_1"),
        &[&format!("{p}/Softmax_output_0"), v],
        &[(&format!("{p}/MatMul_1_output_0"), &heads)],
        &[],
    );
    b.node(
        "Transpose",
        &format!("{p}/Transpose_3"),
        &[&format!("{p}/MatMul_1_output_0")],
        &[(&format!("{p}/Transpose_3_output_0"), &split)],
        &[("perm", Attr::Ints(vec![0, 2, 1, 3]))],
    );
    b.constant_node(
        &format!("{p}/Constant_2"),
        &format!("{p}/Constant_2_output_0"),
        &i64_tensor(&[3], &[1, SEQ as i64, HIDDEN as i64]),
    );
    b.node(
        "Reshape",
        &format!("{p}/Reshape_3"),
        &[&format!("{p}/Transpose_3_output_0"), &format!("{p}/Constant_2_output_0")],
        &[(&format!("{p}/Reshape_3_output_0"), &h_shape)],
        &[],
    );

    // The attention output projection.
    let o = "/bert/encoder/layer.0/attention/output/dense";
    b.weight("onnx::MatMul_304", &[HIDDEN, HIDDEN], -bound, bound);
    b.weight("bert.encoder.layer.0.attention.output.dense.bias", &[HIDDEN], -0.1, 0.1);
    b.node(
        "MatMul",
        &format!("{o}/MatMul"),
        &[&format!("{p}/Reshape_3_output_0"), "onnx::MatMul_304"],
        &[(&format!("{o}/MatMul_output_0"), &h_shape)],
        &[],
    );
    b.node(
        "Add",
        &format!("{o}/Add"),
        &["bert.encoder.layer.0.attention.output.dense.bias", &format!("{o}/MatMul_output_0")],
        &[("attention_output", &h_shape)],
        &[],
    );
    b.output("attention_output");
    b.build(super::ATTENTION_MASK_F32MIN_DOC)
}

/// `clip_nan_guard.onnx`: an audio front end's overload guard as `torch.onnx.export` writes it
/// (`/frontend/...`, `/guard/...` names, scalars as `Constant` nodes, `torch.clamp` as `Clip` with
/// `Constant` bounds): `power = (features * 600) ** 2`, `reference = 4 * power.mean()`,
/// `overshoot = clamp(power / reference - 1, 0, 1)`, `limited = features * (1 - overshoot)`.
///
/// In FP32 the power is at most 3.6e5 and its mean about 1.2e5, so `power / reference` stays
/// below 0.75: the guard never triggers, `overshoot` is 0 everywhere and `limited` equals the
/// input. In FP16 the power overflows for every feature above 0.427 (`/frontend/Pow`), the mean and
/// the reference are inf, and `inf / inf` is NaN: the NaN reaches the `Clip`. ONNX Runtime (CPU
/// and CUDA) keeps it, so `limited` is NaN there; an emulation whose `Clip` maps NaN to its lower
/// bound would report 0 overshoot and `limited` equal to FP32, calling the broken layer healthy.
#[must_use]
pub fn clip_nan_guard() -> ModelProto {
    const FRAMES: i64 = 16;
    const BINS: i64 = 64;
    let shape = [1, FRAMES, BINS];
    let scalar: [i64; 0] = [];
    let mut b = GraphBuilder::new("main_graph", 0x636C_6970);
    b.input("features", data_type::FLOAT, &shape);
    let c = |b: &mut GraphBuilder, scope: &str, k: &str, v: f32| -> String {
        let node = format!("/{scope}/Constant{k}");
        let out = format!("{node}_output_0");
        b.constant_node(&node, &out, &f32_tensor(&[], &[v]))
    };
    let gain = c(&mut b, "frontend", "", 600.0);
    b.node("Mul", "/frontend/Mul", &["features", &gain], &[("/frontend/Mul_output_0", &shape)], &[]);
    let two = c(&mut b, "frontend", "_1", 2.0);
    b.node("Pow", "/frontend/Pow", &["/frontend/Mul_output_0", &two], &[("/frontend/Pow_output_0", &shape)], &[]);
    b.node(
        "ReduceMean",
        "/guard/ReduceMean",
        &["/frontend/Pow_output_0"],
        &[("/guard/ReduceMean_output_0", &scalar)],
        &[("keepdims", Attr::Int(0))],
    );
    let headroom = c(&mut b, "guard", "", 4.0);
    b.node("Mul", "/guard/Mul", &["/guard/ReduceMean_output_0", &headroom], &[("/guard/Mul_output_0", &scalar)], &[]);
    b.node(
        "Div",
        "/guard/Div",
        &["/frontend/Pow_output_0", "/guard/Mul_output_0"],
        &[("/guard/Div_output_0", &shape)],
        &[],
    );
    let one = c(&mut b, "guard", "_1", 1.0);
    b.node("Sub", "/guard/Sub", &["/guard/Div_output_0", &one], &[("/guard/Sub_output_0", &shape)], &[]);
    let lo = c(&mut b, "guard", "_2", 0.0);
    let hi = c(&mut b, "guard", "_3", 1.0);
    b.node("Clip", "/guard/Clip", &["/guard/Sub_output_0", &lo, &hi], &[("/guard/Clip_output_0", &shape)], &[]);
    let one_b = c(&mut b, "guard", "_4", 1.0);
    b.node("Sub", "/guard/Sub_1", &[&one_b, "/guard/Clip_output_0"], &[("/guard/Sub_1_output_0", &shape)], &[]);
    b.node("Mul", "/guard/Mul_1", &["features", "/guard/Sub_1_output_0"], &[("limited", &shape)], &[]);
    b.output("limited");
    b.build(super::CLIP_NAN_GUARD_DOC)
}

/// A `torch.onnx`-style `Gemm` (`nn.Linear` on a 2-D input: weight `[out, in]`, `transB = 1`) named
/// `/{scope}/Gemm` writing `/{scope}/Gemm_output_0`. Returns the output name.
fn linear(b: &mut GraphBuilder, scope: &str, x: &str, sizes: (usize, usize), w: (f32, f32), bias: &[f32]) -> String {
    let (cin, cout) = sizes;
    let dotted = scope.replace('/', ".");
    let weight = b.weight(&format!("{dotted}.weight"), &[cout, cin], w.0, w.1);
    let bias_name = b.constant(&format!("{dotted}.bias"), &[cout], bias);
    let out = format!("/{scope}/Gemm_output_0");
    b.node(
        "Gemm",
        &format!("/{scope}/Gemm"),
        &[x, &weight, &bias_name],
        &[(&out, &[1, cout as i64])],
        &[("alpha", Attr::Float(1.0)), ("beta", Attr::Float(1.0)), ("transB", Attr::Int(1))],
    )
}

/// `multitask_heads.onnx`: a multi-task MLP as `torch.onnx.export` writes it (`/trunk/fc1/Gemm`,
/// `/trunk/fc1/Gemm_output_0`, weights `trunk.fc1.weight`): a shared trunk (two `Linear`+`ReLU`
/// with a residual `Add`, then a `LayerNorm` written out as `ReduceMean, Sub, Pow, ReduceMean, Add,
/// Sqrt, Div, Mul, Add`) feeding four heads, three of which overflow FP16 independently:
///
/// * `price` (unnormalised regression targets, like `regression_overflow`): `/heads/price/fc2/Gemm`
///   writes about 9e4, a graph output, so that `Gemm` alone is the fix;
/// * `class_probs` (softmax written out, like `softmax_naive`): one logit near 14.8, so
///   `/heads/cls/Exp` overflows and the fix is the island `Exp, ReduceSum, Div`;
/// * `embedding` (L2 normalisation written out, like `tf2onnx_names`): squares of about 70 summed
///   over 64 units reach 3.1e5 at `/heads/embed/ReduceSum`; the fix is `ReduceSum` and its reader
///   `Sqrt`;
/// * `aux` (`Linear` + `Sigmoid`) is healthy.
///
/// The trunk stays within a few units. It is the search benchmark's model with k = 3 culprits.
#[must_use]
pub fn multitask_heads() -> ModelProto {
    const IN: usize = 32;
    const H: usize = 64;
    let mut b = GraphBuilder::new("multitask_heads", 0x6D74_6B68);
    b.input("features", data_type::FLOAT, &[1, IN as i64]);
    let h = [1, H as i64];
    let r = [1, 1];
    // Trunk.
    let bias1 = b.rng().uniform_vec(H, 0.0, 0.2);
    let fc1 = linear(&mut b, "trunk/fc1", "features", (IN, H), (-0.25, 0.25), &bias1);
    b.node("Relu", "/trunk/act1/Relu", &[&fc1], &[("/trunk/act1/Relu_output_0", &h)], &[]);
    let bias2 = b.rng().uniform_vec(H, -0.1, 0.1);
    let fc2 = linear(&mut b, "trunk/fc2", "/trunk/act1/Relu_output_0", (H, H), (-0.15, 0.15), &bias2);
    b.node("Add", "/trunk/Add", &["/trunk/act1/Relu_output_0", &fc2], &[("/trunk/Add_output_0", &h)], &[]);
    b.node("Relu", "/trunk/act2/Relu", &["/trunk/Add_output_0"], &[("/trunk/act2/Relu_output_0", &h)], &[]);
    let axes = [("axes", Attr::Ints(vec![-1])), ("keepdims", Attr::Int(1))];
    let x = "/trunk/act2/Relu_output_0";
    b.node("ReduceMean", "/trunk/norm/ReduceMean", &[x], &[("/trunk/norm/ReduceMean_output_0", &r)], &axes);
    b.node("Sub", "/trunk/norm/Sub", &[x, "/trunk/norm/ReduceMean_output_0"], &[("/trunk/norm/Sub_output_0", &h)], &[]);
    b.constant_node("/trunk/norm/Constant", "/trunk/norm/Constant_output_0", &f32_tensor(&[], &[2.0]));
    b.node(
        "Pow",
        "/trunk/norm/Pow",
        &["/trunk/norm/Sub_output_0", "/trunk/norm/Constant_output_0"],
        &[("/trunk/norm/Pow_output_0", &h)],
        &[],
    );
    b.node(
        "ReduceMean",
        "/trunk/norm/ReduceMean_1",
        &["/trunk/norm/Pow_output_0"],
        &[("/trunk/norm/ReduceMean_1_output_0", &r)],
        &axes,
    );
    b.constant_node("/trunk/norm/Constant_1", "/trunk/norm/Constant_1_output_0", &f32_tensor(&[], &[1e-5]));
    b.node(
        "Add",
        "/trunk/norm/Add",
        &["/trunk/norm/ReduceMean_1_output_0", "/trunk/norm/Constant_1_output_0"],
        &[("/trunk/norm/Add_output_0", &r)],
        &[],
    );
    b.node("Sqrt", "/trunk/norm/Sqrt", &["/trunk/norm/Add_output_0"], &[("/trunk/norm/Sqrt_output_0", &r)], &[]);
    b.node(
        "Div",
        "/trunk/norm/Div",
        &["/trunk/norm/Sub_output_0", "/trunk/norm/Sqrt_output_0"],
        &[("/trunk/norm/Div_output_0", &h)],
        &[],
    );
    b.weight("trunk.norm.weight", &[H], 0.9, 1.1);
    b.weight("trunk.norm.bias", &[H], -0.05, 0.05);
    b.node(
        "Mul",
        "/trunk/norm/Mul",
        &["/trunk/norm/Div_output_0", "trunk.norm.weight"],
        &[("/trunk/norm/Mul_output_0", &h)],
        &[],
    );
    b.node(
        "Add",
        "/trunk/norm/Add_1",
        &["/trunk/norm/Mul_output_0", "trunk.norm.bias"],
        &[("/trunk/norm/Add_1_output_0", &h)],
        &[],
    );
    let z = "/trunk/norm/Add_1_output_0";
    // Price head: overflows at its last Gemm, a graph output.
    let pb = b.rng().uniform_vec(32, 2.0, 3.0);
    let p1 = linear(&mut b, "heads/price/fc1", z, (H, 32), (-0.05, 0.05), &pb);
    b.node("Relu", "/heads/price/act/Relu", &[&p1], &[("/heads/price/act/Relu_output_0", &[1, 32])], &[]);
    let weight = b.weight("heads.price.fc2.weight", &[2, 32], 600.0, 800.0);
    let bias = b.constant("heads.price.fc2.bias", &[2], &[3.0e4, 3.5e4]);
    b.node(
        "Gemm",
        "/heads/price/fc2/Gemm",
        &["/heads/price/act/Relu_output_0", &weight, &bias],
        &[("price", &[1, 2])],
        &[("alpha", Attr::Float(1.0)), ("beta", Attr::Float(1.0)), ("transB", Attr::Int(1))],
    );
    // Classification head: softmax written out without the max subtraction.
    let mut cb = b.rng().uniform_vec(16, 0.0, 2.0);
    cb[5] = 14.8;
    let logits = linear(&mut b, "heads/cls", z, (H, 16), (-0.02, 0.02), &cb);
    let c = [1, 16];
    b.node("Exp", "/heads/cls/Exp", &[&logits], &[("/heads/cls/Exp_output_0", &c)], &[]);
    b.constant_i64("onnx::ReduceSum_61", &[1], &[-1]);
    b.node(
        "ReduceSum",
        "/heads/cls/ReduceSum",
        &["/heads/cls/Exp_output_0", "onnx::ReduceSum_61"],
        &[("/heads/cls/ReduceSum_output_0", &r)],
        &[("keepdims", Attr::Int(1))],
    );
    b.node(
        "Div",
        "/heads/cls/Div",
        &["/heads/cls/Exp_output_0", "/heads/cls/ReduceSum_output_0"],
        &[("class_probs", &c)],
        &[],
    );
    // Embedding head: L2 normalisation written out.
    let eb = b.rng().uniform_vec(H, 66.0, 74.0);
    let e = linear(&mut b, "heads/embed", z, (H, H), (-0.02, 0.02), &eb);
    b.node("Relu", "/heads/embed/Relu", &[&e], &[("/heads/embed/Relu_output_0", &h)], &[]);
    b.node(
        "Mul",
        "/heads/embed/Mul",
        &["/heads/embed/Relu_output_0", "/heads/embed/Relu_output_0"],
        &[("/heads/embed/Mul_output_0", &h)],
        &[],
    );
    b.constant_i64("onnx::ReduceSum_72", &[1], &[-1]);
    b.node(
        "ReduceSum",
        "/heads/embed/ReduceSum",
        &["/heads/embed/Mul_output_0", "onnx::ReduceSum_72"],
        &[("/heads/embed/ReduceSum_output_0", &r)],
        &[("keepdims", Attr::Int(1))],
    );
    b.node(
        "Sqrt",
        "/heads/embed/Sqrt",
        &["/heads/embed/ReduceSum_output_0"],
        &[("/heads/embed/Sqrt_output_0", &r)],
        &[],
    );
    b.node(
        "Div",
        "/heads/embed/Div",
        &["/heads/embed/Relu_output_0", "/heads/embed/Sqrt_output_0"],
        &[("embedding", &h)],
        &[],
    );
    // Auxiliary head: healthy.
    let ab = b.rng().uniform_vec(4, -0.5, 0.5);
    let a = linear(&mut b, "heads/aux", z, (H, 4), (-0.2, 0.2), &ab);
    b.node("Sigmoid", "/heads/aux/Sigmoid", &[&a], &[("aux", &[1, 4])], &[]);
    for o in ["price", "class_probs", "embedding", "aux"] {
        b.output(o);
    }
    b.build(super::MULTITASK_HEADS_DOC)
}
