//! The sample graphs themselves, one function per `samples/*.onnx` file.
//!
//! Every model has static shapes and a float32 input that trtlens fills with uniform random values in
//! `[0, 1)` by default; the weights are chosen so that each designed FP16 failure shows for *any* such
//! input, not only for a lucky one. The magnitudes quoted in the comments are for those inputs.

use super::builder::{Attr, GraphBuilder};
use crate::model::proto::{ModelProto, data_type};
use crate::model::tensor_proto::from_tensor;
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

/// A `Constant` node `name` writing `out` (the way `torch.onnx` exports Python scalars and shapes).
fn constant_node(b: &mut GraphBuilder, name: &str, out: &str, value: &Tensor) -> String {
    let shape: Vec<i64> = value.shape().iter().map(|&d| d as i64).collect();
    let dtype = value.dtype().onnx();
    let t = Attr::Tensor(Box::new(from_tensor("", value)));
    b.node_typed("Constant", name, &[], &[(out, dtype, &shape)], &[("value", t)])
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
    constant_node(&mut b, "/bert/Constant", "/bert/Constant_output_0", &i64_tensor(&[1], &[1]));
    b.node_typed(
        "Unsqueeze",
        "/bert/Unsqueeze",
        &["attention_mask", "/bert/Constant_output_0"],
        &[("/bert/Unsqueeze_output_0", i64t, &[1, 1, SEQ as i64])],
        &[],
    );
    constant_node(&mut b, "/bert/Constant_1", "/bert/Constant_1_output_0", &i64_tensor(&[1], &[2]));
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
    constant_node(&mut b, "/bert/Constant_2", "/bert/Constant_2_output_0", &f32_tensor(&[], &[1.0]));
    b.node(
        "Sub",
        "/bert/Sub",
        &["/bert/Constant_2_output_0", "/bert/Cast_output_0"],
        &[("/bert/Sub_output_0", &m_shape)],
        &[],
    );
    constant_node(&mut b, "/bert/Constant_3", "/bert/Constant_3_output_0", &f32_tensor(&[], &[f32::MIN]));
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
    constant_node(
        &mut b,
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
    constant_node(
        &mut b,
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
    constant_node(
        &mut b,
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
