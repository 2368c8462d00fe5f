//! TF32 inputs for FP32 matrix products: what `cpu-fp16 --tf32` does to FP32 `MatMul`, `Gemm`,
//! `Conv` and `ConvTranspose` nodes.
//!
//! On NVIDIA GPUs since Ampere, ONNX Runtime's CUDA provider (`use_tf32`, on by default) and
//! `TensorRT` (`kTF32`, on by default) run FP32 matrix products on tensor cores with TF32 inputs:
//! each input keeps FP32's 8-bit exponent but only 10 mantissa bits; products are accumulated in
//! FP32 and biases are added in FP32. [`round`] is that input rounding (round to nearest, ties to
//! even, on the 13 low mantissa bits), and [`rounding_nodes`] computes the same rounding with ONNX
//! operators any FP32 runtime executes exactly, so the emulated graph can carry it:
//!
//! * normal values up to 2^100: Veltkamp's splitting with `C = 2^13 + 1`: `g = C·x`,
//!   `h = g + (x − g)`, which rounds x to 11 significant bits, ties to even (checked for every
//!   positive normal float below 4.15e34, where `C·x` cannot overflow, by the unit test below and
//!   by an exhaustive run);
//! * larger values are scaled by 2^-64 first and back by 2^64 afterwards (exact);
//! * values below 2^-126 (FP32 subnormals) become multiples of 2^-136, TF32's own subnormal step:
//!   `(|x| + c) − c` with `c = 1.5·2^-113`, whose ulp is 2^-136, times x's sign (±1, read from the
//!   sign of `1/x`, so that `-0` and values rounding to zero keep their sign);
//! * ±inf and NaN pass through.
//!
//! Floating-point runtimes compute these as written (no fused multiply-add across nodes), and
//! `tests/tf32.rs` checks the graph bit for bit against [`round`] on tract and ONNX Runtime. (Values
//! that may be `-0` are only ever selected as the *else* input of a `Where`: ONNX Runtime's CPU
//! `Where` returns `+0` for a `-0` taken from its *then* input.)

use crate::model::proto::{AttributeProto, NodeProto, TensorProto, data_type};

/// The ops whose FP32 inputs are rounded to TF32 (inputs 0 and 1: the data and the weights; the
/// bias is added in FP32).
pub const OPS: &[&str] = &["MatMul", "Gemm", "Conv", "ConvTranspose"];

/// `x` rounded to TF32 (1 sign, 8 exponent, 10 mantissa bits), round to nearest, ties to even,
/// returned as the FP32 value it stands for. NaN stays NaN; values that round above the largest
/// finite TF32 value become ±inf.
#[must_use]
pub fn round(x: f32) -> f32 {
    if x.is_nan() {
        return x;
    }
    let b = x.to_bits();
    let rounded = b.wrapping_add(0x0FFF + ((b >> 13) & 1)) & !0x1FFF;
    f32::from_bits(rounded)
}

/// Names of the scalar constants the rounding reads, shared by every rounded tensor of a graph.
pub struct Constants {
    names: [String; 10],
}

const VALUES: [f32; 10] = [
    1.267_650_6e30,  // 2^100: above it, scale
    5.421_011e-20,   // 2^-64
    1.844_674_4e19,  // 2^64
    1.0,             // no scaling
    8193.0,          // 2^13 + 1
    1.175_494_4e-38, // 2^-126: below it, FP32 subnormals
    1.444_447_5e-34, // 1.5 * 2^-113
    0.0,
    f32::MAX,
    -1.0,
];

impl Constants {
    /// Constants named `{prefix}/...`.
    #[must_use]
    pub fn new(prefix: &str) -> Constants {
        let tags = ["big", "down", "up", "one", "split", "tiny", "magic", "zero", "max", "minus_one"];
        Constants { names: tags.map(|t| format!("{prefix}/{t}")) }
    }

    /// The initializers to add to the graph.
    #[must_use]
    pub fn initializers(&self) -> Vec<TensorProto> {
        self.names
            .iter()
            .zip(VALUES)
            .map(|(n, v)| TensorProto {
                name: Some(n.clone()),
                data_type: Some(data_type::FLOAT),
                raw_data: Some(v.to_le_bytes().to_vec()),
                ..TensorProto::default()
            })
            .collect()
    }

    fn get(&self, i: usize) -> &str {
        &self.names[i]
    }
}

/// The nodes computing `out = round(x)` (float32 `x`, any shape) as [`round`] does; `fresh` makes
/// a unique name from a base (used for the nodes and the intermediate tensors).
pub fn rounding_nodes(x: &str, out: &str, c: &Constants, fresh: &mut dyn FnMut(String) -> String) -> Vec<NodeProto> {
    let mut nodes = Vec::new();
    let mut step = |op: &str, inputs: &[&str], target: Option<&str>| -> String {
        let o = target.map_or_else(|| fresh(format!("{x}__tf32_{}", op.to_ascii_lowercase())), str::to_string);
        nodes.push(NodeProto {
            name: Some(fresh(format!("{x}__tf32/{op}"))),
            op_type: Some(op.into()),
            input: inputs.iter().map(|s| (*s).to_string()).collect(),
            output: vec![o.clone()],
            attribute: Vec::<AttributeProto>::new(),
            ..NodeProto::default()
        });
        o
    };
    let (big, down, up, one, split, tiny, magic, zero, max, minus_one) =
        (c.get(0), c.get(1), c.get(2), c.get(3), c.get(4), c.get(5), c.get(6), c.get(7), c.get(8), c.get(9));
    let a = step("Abs", &[x], None);
    // Normal values: Veltkamp's splitting, on x scaled into range when it is huge.
    let is_big = step("Greater", &[&a, big], None);
    let s = step("Where", &[&is_big, down, one], None);
    let s_back = step("Where", &[&is_big, up, one], None);
    let xs = step("Mul", &[x, &s], None);
    let g = step("Mul", &[&xs, split], None);
    let d = step("Sub", &[&xs, &g], None);
    let h = step("Add", &[&g, &d], None);
    let normal = step("Mul", &[&h, &s_back], None);
    // FP32 subnormals: multiples of 2^-136 of |x|, times x's sign (that of 1/x, right for ±0).
    let is_tiny = step("Less", &[&a, tiny], None);
    let not_tiny = step("Not", &[&is_tiny], None);
    let shifted = step("Add", &[&a, magic], None);
    let m = step("Sub", &[&shifted, magic], None);
    let inverse = step("Reciprocal", &[x], None);
    let negative = step("Less", &[&inverse, zero], None);
    let sign = step("Where", &[&negative, minus_one, one], None);
    let sub = step("Mul", &[&m, &sign], None);
    let r = step("Where", &[&not_tiny, &normal, &sub], None);
    // ±inf pass through (NaN already does).
    let is_inf = step("Greater", &[&a, max], None);
    step("Where", &[&is_inf, x, &r], Some(out));
    nodes
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The formula of [`rounding_nodes`], in Rust f32 arithmetic.
    fn formula(x: f32) -> f32 {
        let a = x.abs();
        let s = if a > VALUES[0] { VALUES[1] } else { 1.0 };
        let back = if a > VALUES[0] { VALUES[2] } else { 1.0 };
        let xs = x * s;
        let g = xs * 8193.0;
        let h = g + (xs - g);
        let normal = h * back;
        let m = (a + VALUES[6]) - VALUES[6];
        let sub = m * if 1.0 / x < 0.0 { -1.0 } else { 1.0 };
        let r = if a < VALUES[5] { sub } else { normal };
        if a > f32::MAX { x } else { r }
    }

    #[test]
    fn constants_are_the_powers_of_two_they_claim() {
        assert_eq!(VALUES[0], 2f32.powi(100));
        assert_eq!(VALUES[1], 2f32.powi(-64));
        assert_eq!(VALUES[2], 2f32.powi(64));
        assert_eq!(VALUES[5], f32::MIN_POSITIVE);
        assert_eq!(VALUES[6], 1.5 * 2f32.powi(-113));
    }

    #[test]
    fn reference_rounds_to_nearest_even_on_ten_bits() {
        // 1 + 2^-11 is half an ulp of TF32 above 1: a tie, rounds to even (1).
        assert_eq!(round(1.0 + 2f32.powi(-11)), 1.0);
        // 1 + 3·2^-11 is a tie between 1 + 2^-10 (odd) and 1 + 2^-9 (even).
        assert_eq!(round(1.0 + 3.0 * 2f32.powi(-11)), 1.0 + 2f32.powi(-9));
        assert_eq!(round(1.0 + 2f32.powi(-11) + 2f32.powi(-23)), 1.0 + 2f32.powi(-10));
        assert_eq!(round(f32::MAX), f32::INFINITY);
        assert_eq!(round(-f32::MAX), f32::NEG_INFINITY);
        assert_eq!(round(f32::INFINITY), f32::INFINITY);
        assert!(round(f32::NAN).is_nan());
        assert_eq!(round(-0.0).to_bits(), (-0.0f32).to_bits());
        // Subnormals: multiples of 2^-136.
        assert_eq!(round(2f32.powi(-140)), 0.0);
        assert_eq!(round(3.0 * 2f32.powi(-137)), 2f32.powi(-135), "tie at 1.5 ulp goes to the even 2 ulp");
    }

    #[test]
    fn the_formula_equals_the_reference_across_every_binade() {
        let mut checked = 0u64;
        for sign in [0u32, 0x8000_0000] {
            for exp in 0u32..=255 {
                // Every low-13-bit pattern near a tie, plus a spread of upper mantissa bits.
                for upper in [0u32, 1, 2, 3, 0x2AA, 0x3FE, 0x3FF] {
                    for low in [0u32, 1, 0x0FFF, 0x1000, 0x1001, 0x1FFF, 0x0800, 0x1234] {
                        let bits = sign | (exp << 23) | (upper << 13) | low;
                        let x = f32::from_bits(bits);
                        let (want, got) = (round(x), formula(x));
                        if want.is_nan() {
                            assert!(got.is_nan(), "{bits:08x}");
                        } else {
                            assert_eq!(got.to_bits(), want.to_bits(), "x = {x:e} ({bits:08x})");
                        }
                        checked += 1;
                    }
                }
            }
        }
        assert_eq!(checked, 2 * 256 * 7 * 8);
    }
}
