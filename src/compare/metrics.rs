//! Per-tensor comparison kernel: one reference tensor against one candidate tensor.
//!
//! The kernel works on borrowed little-endian bytes ([`TensorRef`]), so tensors memory-mapped from
//! the run store are compared without copying them. Every element is widened to `f64` (f16, bf16
//! and integers exactly; 64-bit integers beyond 2^53 are rounded for the statistics but compared
//! exactly by [`compare_exact`]) and all arithmetic is done in `f64`. The two sides may have
//! different dtypes (a float16 candidate against a float32 reference is the usual case) but must
//! have the same shape; a shape mismatch (or a byte count that does not fit the shape) gives
//! [`Outcome::Skipped`] and no metrics.
//!
//! # Mismatch rules ([`Tolerance`])
//! For an element with reference `r` and candidate `c`, both finite:
//! * [`Rule::Allclose`] (default, numpy's `isclose(c, r)`): mismatch when `|c − r| > atol + rtol·|r|`.
//! * [`Rule::Polygraphy`] (Polygraphy's `elemwise` check): mismatch only when `|c − r| > atol` **and**
//!   `rel > rtol`, with `rel` as below. This is stricter than `Allclose`: it fails when the error
//!   exceeds `max(atol, rtol·|r|)`, `Allclose` only when it exceeds their sum.
//!
//! When either side is not finite: NaN on either side always mismatches (so any NaN fails the
//! tensor); equal infinities on both sides mismatch unless `inf_equal`; an infinity against a finite
//! value or against the opposite infinity always mismatches.
//!
//! # Relative error and the zero guard
//! `rel = |c − r| / d` with `d = |r|`, except that an exact zero reference uses
//! `d = `[`REL_ZERO_GUARD`]` = 2.220446049250313e-16` (`f64::EPSILON`), Polygraphy's rule: exact
//! zeros are replaced, tiny non-zero references are not. So `rel` is huge (`|c|/2.2e-16`) where the
//! reference is zero and the candidate is not, and `0` where both are zero. The same `rel` is used by
//! the Polygraphy rule, `max_rel`/`mean_rel` and `deviation_ratio_10pct` (so at `r == 0` an element
//! counts as deviating when `|c| > 2.2e-17`, in practice whenever `c != 0`).
//!
//! # Statistics ([`Metrics`])
//! * Error statistics (`max/mean/median/p99_abs`, `max/mean_rel`, `deviation_ratio_10pct`) and the
//!   similarity measures (`cosine`, `rel_l2`, `snr_db`) are computed over the *finite pairs* (elements
//!   where both sides are finite); non-finite elements are reported by the NaN/Inf counts and by the
//!   mismatch count. When there is no finite pair (empty tensor, all NaN) these statistics are NaN.
//! * `cosine = Σrc / (‖r‖·‖c‖)` clamped to `[-1, 1]`; two zero vectors give `1.0`, a zero vector
//!   against a non-zero one gives `0.0`.
//! * `rel_l2 = ‖c − r‖ / ‖r‖`; `0` when both norms are zero, `+inf` when only `‖r‖` is zero.
//! * `snr_db = 10·log10(Σr² / Σ(c − r)²)`; `+inf` when the error is zero (also for two zero tensors),
//!   `-inf` when the reference is zero and the error is not.
//! * `mismatch_ratio = mismatches / total` over all elements (0 for an empty tensor).
//! * Ranges (`reference_min`, ..., `candidate_max`) are over the finite values of each side (NaN when
//!   a side has none). The FP16 range counts are over finite reference values and are 0 for
//!   non-float references: `fp16_overflow_reference` counts `|r| > 65504` (note FP16 rounding sends
//!   only `|r| ≥ 65520` to inf), `fp16_subnormal_reference` counts non-zero `|r| < 2^-14` and
//!   includes `fp16_underflow_reference`, which counts non-zero `|r| < 2^-24` (values below 2^-25
//!   flush to zero, those in `[2^-25, 2^-24)` round up to the smallest subnormal).
//! * `worst` and `top_k` rank elements by their error: finite pairs by `|c − r|`, non-finite
//!   mismatching elements above every finite error, non-finite matching elements (equal infinities
//!   with `inf_equal`) as error 0. Ties go to the lower flat index. With no error at all they are
//!   simply the first elements. `worst` is `None` only for an empty tensor.
//!
//! # Median and p99 (exact, bounded memory)
//! `median_abs` is numpy's `median` (mean of the two middle values for an even count) and `p99_abs`
//! numpy's `percentile(.., 99)` with linear interpolation, both exact. The order statistics are found
//! by a radix selection on the bit patterns of the absolute errors (non-negative `f64` sort like their
//! bits as `u64`): when a tensor has at most [`EXACT_COLLECT_MAX`] finite pairs their errors are
//! collected (8 bytes each) and `select_nth_unstable` picks the ranks; for larger tensors a pass
//! histograms the top 16 bits, and the next pass collects only the elements of the bucket holding each
//! rank (or refines by the next 16 bits while that bucket is still larger than the limit, at most
//! four times in all, since 4·16 = 64). A pass also tracks the smallest key of each bucket and how
//! often it occurs, so massive ties (e.g. most errors exactly zero) end the search at once. Extra
//! memory is thus at most `8·EXACT_COLLECT_MAX` bytes per rank (four ranks) plus 512 KiB per
//! histogram, whatever the tensor size; the price is one extra read of both tensors (two for large
//! tensors, rarely more).
//!
//! # JSON
//! JSON has no infinities or NaN. Every `f64` in [`Metrics`], [`Element`] and [`RangeStats`] goes
//! through [`json_f64`]: finite values are plain numbers, `+inf`, `-inf` and NaN are the strings
//! `"inf"`, `"-inf"` and `"nan"`, so any standard JSON parser reads the file and deserialization
//! round-trips exactly.
//!
//! # Speed
//! Tensors are cut into chunks of [`CHUNK`] elements that rayon processes in parallel; each chunk is
//! decoded into `f64` blocks and reduced by one branch-light loop into a partial aggregate (counts,
//! sums, min/max, a top-k list). The partials are merged in chunk order, so the result does not depend
//! on the number of threads (the sequential and parallel paths give identical bits).

// Exact float equality (equal infinities, exact zero) is intended, and `&` on bools keeps the inner
// loop free of branches.
#![allow(clippy::float_cmp, clippy::needless_bitwise_bool)]

use std::fmt;
use std::str::FromStr;

use half::{bf16, f16};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::tensor::{DType, Tensor, numel, shape_string};

/// Divisor of the relative error where the reference is exactly zero (Polygraphy's 2.22e-16).
pub const REL_ZERO_GUARD: f64 = f64::EPSILON;
/// Largest finite FP16 value.
pub const FP16_MAX: f64 = 65504.0;
/// Smallest positive normal FP16 value, 2^-14.
pub const FP16_MIN_NORMAL: f64 = 1.0 / 16_384.0;
/// Smallest positive subnormal FP16 value, 2^-24.
pub const FP16_MIN_SUBNORMAL: f64 = 1.0 / 16_777_216.0;
/// Relative error above which an element counts in `deviation_ratio_10pct`.
pub const DEVIATION_THRESHOLD: f64 = 0.1;
/// Default number of worst elements kept in `top_k`.
pub const DEFAULT_TOP_K: usize = 5;
/// Largest number of errors the median/p99 selection collects into memory at once (8 bytes each).
pub const EXACT_COLLECT_MAX: usize = 1 << 20;
/// Elements per parallel work item.
pub const CHUNK: usize = 1 << 16;

/// Elements decoded at a time (stack buffers).
const BLOCK: usize = 1024;
/// Bits resolved by one histogram pass of the selection.
const RADIX_BITS: u32 = 16;

// ---------------------------------------------------------------------------------------------
// Public types
// ---------------------------------------------------------------------------------------------

/// Borrowed view of a tensor: dtype, shape and little-endian row-major bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TensorRef<'a> {
    /// Element type.
    pub dtype: DType,
    /// Shape (empty for a scalar).
    pub shape: &'a [usize],
    /// Little-endian element bytes, `numel(shape) * dtype.size()` of them.
    pub data: &'a [u8],
}

impl<'a> TensorRef<'a> {
    /// A view of the given parts (sizes are checked by the comparison, not here).
    #[must_use]
    pub fn new(dtype: DType, shape: &'a [usize], data: &'a [u8]) -> TensorRef<'a> {
        TensorRef { dtype, shape, data }
    }

    /// Number of elements the shape holds.
    #[must_use]
    pub fn len(&self) -> usize {
        numel(self.shape)
    }

    /// True when the shape holds no element.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Checks that the byte count fits the shape; the message names the side.
    pub fn check(&self, side: &str) -> Result<(), String> {
        let expected = self.len().checked_mul(self.dtype.size());
        if expected == Some(self.data.len()) {
            Ok(())
        } else {
            Err(format!(
                "{side} is a {} tensor of shape {} needing {} bytes, but holds {} bytes",
                self.dtype,
                shape_string(self.shape),
                expected.map_or_else(|| "too many".to_string(), |e| e.to_string()),
                self.data.len()
            ))
        }
    }
}

impl<'a> From<&'a Tensor> for TensorRef<'a> {
    fn from(t: &'a Tensor) -> TensorRef<'a> {
        TensorRef { dtype: t.dtype(), shape: t.shape(), data: t.bytes() }
    }
}

/// How a finite element pair is judged (non-finite pairs: see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Rule {
    /// numpy `isclose(c, r)`: mismatch when `|c − r| > atol + rtol·|r|`.
    #[default]
    Allclose,
    /// Polygraphy `elemwise`: mismatch when `|c − r| > atol` and `rel > rtol`.
    Polygraphy,
}

impl Rule {
    /// Name used on the command line and in JSON.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Rule::Allclose => "allclose",
            Rule::Polygraphy => "polygraphy",
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Rule {
    type Err = String;

    fn from_str(s: &str) -> Result<Rule, String> {
        match s.to_ascii_lowercase().as_str() {
            "allclose" | "numpy" => Ok(Rule::Allclose),
            "polygraphy" | "elemwise" => Ok(Rule::Polygraphy),
            _ => Err(format!("unknown tolerance rule '{s}' (expected 'allclose' or 'polygraphy')")),
        }
    }
}

/// Element-wise tolerance.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Tolerance {
    /// How `atol` and `rtol` combine.
    pub rule: Rule,
    /// Absolute tolerance.
    pub atol: f64,
    /// Relative tolerance (relative to the reference).
    pub rtol: f64,
    /// Whether equal infinities on both sides match.
    #[serde(default)]
    pub inf_equal: bool,
}

impl Default for Tolerance {
    /// `Allclose` with Polygraphy's defaults `atol = rtol = 1e-5`, infinities never equal.
    fn default() -> Tolerance {
        Tolerance { rule: Rule::Allclose, atol: 1e-5, rtol: 1e-5, inf_equal: false }
    }
}

impl Tolerance {
    /// Exact equality (`atol = rtol = 0`, equal infinities match, NaN never does).
    pub const EXACT: Tolerance = Tolerance { rule: Rule::Allclose, atol: 0.0, rtol: 0.0, inf_equal: true };

    /// Whether one element pair mismatches: the scalar definition the kernel implements.
    #[must_use]
    pub fn mismatch(&self, reference: f64, candidate: f64) -> bool {
        if reference.is_finite() && candidate.is_finite() {
            let abs = (candidate - reference).abs();
            match self.rule {
                Rule::Allclose => abs > self.atol + self.rtol * reference.abs(),
                Rule::Polygraphy => abs > self.atol && relative_error(reference, candidate) > self.rtol,
            }
        } else {
            !(self.inf_equal && reference == candidate)
        }
    }
}

/// `|c − r| / |r|`, with [`REL_ZERO_GUARD`] in place of an exact zero `|r|`.
#[must_use]
pub fn relative_error(reference: f64, candidate: f64) -> f64 {
    (candidate - reference).abs() / zero_guard(reference.abs())
}

#[inline]
fn zero_guard(abs_reference: f64) -> f64 {
    if abs_reference == 0.0 { REL_ZERO_GUARD } else { abs_reference }
}

/// Serde helpers writing non-finite `f64` as the strings `"inf"`, `"-inf"`, `"nan"`.
///
/// Use as `#[serde(with = "json_f64")]`. Reading also accepts `"Infinity"`, `"+inf"`, `"NaN"` (any
/// case), numbers written as strings, and `null` (as NaN).
pub mod json_f64 {
    use std::fmt;

    use serde::de::{self, Visitor};
    use serde::{Deserializer, Serializer};

    /// Writes a finite value as a number, otherwise as `"inf"`, `"-inf"` or `"nan"`.
    pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        if v.is_finite() {
            s.serialize_f64(*v)
        } else if v.is_nan() {
            s.serialize_str("nan")
        } else if *v > 0.0 {
            s.serialize_str("inf")
        } else {
            s.serialize_str("-inf")
        }
    }

    /// Reads what [`serialize`] writes.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        d.deserialize_any(F64Visitor)
    }

    /// Parses the string forms.
    #[must_use]
    pub fn parse(s: &str) -> Option<f64> {
        match s.trim().to_ascii_lowercase().as_str() {
            "inf" | "+inf" | "infinity" | "+infinity" => Some(f64::INFINITY),
            "-inf" | "-infinity" => Some(f64::NEG_INFINITY),
            "nan" | "+nan" | "-nan" => Some(f64::NAN),
            other => other.parse().ok(),
        }
    }

    struct F64Visitor;

    impl Visitor<'_> for F64Visitor {
        type Value = f64;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a number or one of \"inf\", \"-inf\", \"nan\"")
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<f64, E> {
            Ok(v)
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<f64, E> {
            Ok(v as f64)
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<f64, E> {
            Ok(v as f64)
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<f64, E> {
            parse(v).ok_or_else(|| E::invalid_value(de::Unexpected::Str(v), &self))
        }
        fn visit_unit<E: de::Error>(self) -> Result<f64, E> {
            Ok(f64::NAN)
        }
        fn visit_none<E: de::Error>(self) -> Result<f64, E> {
            Ok(f64::NAN)
        }
    }
}

/// One element of interest (the worst one, or one of the top k).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Element {
    /// Coordinates (row-major; empty for a scalar).
    pub index: Vec<usize>,
    /// Flat (row-major) index.
    pub flat: usize,
    /// Reference value (widened to `f64`).
    #[serde(with = "json_f64")]
    pub reference: f64,
    /// Candidate value (widened to `f64`).
    #[serde(with = "json_f64")]
    pub candidate: f64,
    /// `|c − r|` (0 for equal infinities under `inf_equal`; NaN/inf for other non-finite pairs).
    #[serde(with = "json_f64")]
    pub abs: f64,
}

/// Everything measured about one tensor pair. Field names are a public JSON interface; see the
/// module docs for the exact definitions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// Largest `|c − r|` over finite pairs.
    #[serde(with = "json_f64")]
    pub max_abs: f64,
    /// Mean `|c − r|` over finite pairs.
    #[serde(with = "json_f64")]
    pub mean_abs: f64,
    /// Median `|c − r|` over finite pairs (exact).
    #[serde(with = "json_f64")]
    pub median_abs: f64,
    /// 99th percentile of `|c − r|` over finite pairs (exact, linear interpolation).
    #[serde(with = "json_f64")]
    pub p99_abs: f64,
    /// Largest relative error over finite pairs.
    #[serde(with = "json_f64")]
    pub max_rel: f64,
    /// Mean relative error over finite pairs.
    #[serde(with = "json_f64")]
    pub mean_rel: f64,
    /// Elements failing the tolerance (NaN and non-finite mismatches included).
    pub mismatches: u64,
    /// Elements compared.
    pub total: u64,
    /// `mismatches / total` (0 for an empty tensor).
    #[serde(with = "json_f64")]
    pub mismatch_ratio: f64,
    /// Cosine similarity over finite pairs.
    #[serde(with = "json_f64")]
    pub cosine: f64,
    /// `‖c − r‖ / ‖r‖` over finite pairs.
    #[serde(with = "json_f64")]
    pub rel_l2: f64,
    /// `10·log10(Σr² / Σ(c − r)²)` over finite pairs.
    #[serde(with = "json_f64")]
    pub snr_db: f64,
    /// NaN elements in the reference.
    pub nan_reference: u64,
    /// NaN elements in the candidate.
    pub nan_candidate: u64,
    /// Infinite elements in the reference.
    pub inf_reference: u64,
    /// Infinite elements in the candidate.
    pub inf_candidate: u64,
    /// Smallest finite reference value.
    #[serde(with = "json_f64")]
    pub reference_min: f64,
    /// Largest finite reference value.
    #[serde(with = "json_f64")]
    pub reference_max: f64,
    /// Largest finite `|r|`.
    #[serde(with = "json_f64")]
    pub reference_abs_max: f64,
    /// Smallest finite candidate value.
    #[serde(with = "json_f64")]
    pub candidate_min: f64,
    /// Largest finite candidate value.
    #[serde(with = "json_f64")]
    pub candidate_max: f64,
    /// Finite reference values with `|r| > 65504`.
    pub fp16_overflow_reference: u64,
    /// Non-zero reference values with `|r| < 2^-14` (FP16 subnormal range; includes underflow).
    pub fp16_subnormal_reference: u64,
    /// Non-zero reference values with `|r| < 2^-24` (below the smallest FP16 subnormal).
    pub fp16_underflow_reference: u64,
    /// Fraction of finite pairs with relative error above 0.1.
    #[serde(with = "json_f64")]
    pub deviation_ratio_10pct: f64,
    /// The worst element (`None` only for an empty tensor).
    pub worst: Option<Element>,
    /// The k worst elements, worst first.
    pub top_k: Vec<Element>,
}

/// The verdict on one tensor pair.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "lowercase")]
#[allow(clippy::large_enum_variant)] // one per tensor; boxing would only add an allocation
pub enum Outcome {
    /// Compared; `pass` is `mismatches == 0` (any NaN is a mismatch, so any NaN fails).
    Compared {
        /// The measurements.
        metrics: Metrics,
        /// True when no element mismatched.
        pass: bool,
    },
    /// Not compared (shape mismatch or inconsistent data size).
    Skipped {
        /// Why, naming both shapes/dtypes.
        reason: String,
    },
}

impl Outcome {
    /// True for a comparison without mismatches (false when skipped).
    #[must_use]
    pub fn passed(&self) -> bool {
        matches!(self, Outcome::Compared { pass: true, .. })
    }

    /// The metrics, if compared.
    #[must_use]
    pub fn metrics(&self) -> Option<&Metrics> {
        match self {
            Outcome::Compared { metrics, .. } => Some(metrics),
            Outcome::Skipped { .. } => None,
        }
    }
}

/// Value range of one tensor, with the FP16 range counts (no candidate needed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RangeStats {
    /// Elements examined.
    pub total: u64,
    /// Smallest finite value (NaN when there is none).
    #[serde(with = "json_f64")]
    pub min: f64,
    /// Largest finite value (NaN when there is none).
    #[serde(with = "json_f64")]
    pub max: f64,
    /// Largest finite `|v|` (NaN when there is none).
    #[serde(with = "json_f64")]
    pub abs_max: f64,
    /// NaN elements.
    pub nan: u64,
    /// Infinite elements.
    pub inf: u64,
    /// Finite `|v| > 65504` (0 for non-float tensors).
    pub fp16_overflow: u64,
    /// Non-zero `|v| < 2^-14` (0 for non-float tensors; includes `fp16_underflow`).
    pub fp16_subnormal: u64,
    /// Non-zero `|v| < 2^-24` (0 for non-float tensors).
    pub fp16_underflow: u64,
}

// ---------------------------------------------------------------------------------------------
// Entry points
// ---------------------------------------------------------------------------------------------

/// Compares a candidate tensor with a reference tensor under `tol`, keeping the `top_k` worst
/// elements. Pairs where neither side is a float type go to [`compare_exact`].
#[must_use]
pub fn compare(reference: TensorRef<'_>, candidate: TensorRef<'_>, tol: &Tolerance, top_k: usize) -> Outcome {
    if !reference.dtype.is_float() && !candidate.dtype.is_float() {
        return compare_exact(reference, candidate, top_k);
    }
    compare_impl(reference, candidate, &Params::new(tol, false), top_k, true)
}

/// Exact comparison, for integer and bool tensors: an element mismatches when the values differ
/// (integers compared exactly, whatever their width; bools by truth value). If a side is a float
/// type the values are compared as `f64` with [`Tolerance::EXACT`]. The statistics are filled from
/// the values widened to `f64`.
#[must_use]
pub fn compare_exact(reference: TensorRef<'_>, candidate: TensorRef<'_>, top_k: usize) -> Outcome {
    let exact_int = !reference.dtype.is_float() && !candidate.dtype.is_float();
    compare_impl(reference, candidate, &Params::new(&Tolerance::EXACT, exact_int), top_k, true)
}

/// Range statistics of one tensor. Counts the whole elements present in `data` (the shape is not
/// used, so a short buffer gives statistics of what it holds).
#[must_use]
pub fn reference_stats(data: TensorRef<'_>) -> RangeStats {
    let n = data.data.len() / data.dtype.size();
    let parts = run_chunks(n, true, |start, end| {
        let mut buf = [0.0f64; BLOCK];
        let mut acc = RangeAcc::new();
        let mut s = start;
        while s < end {
            let len = BLOCK.min(end - s);
            decode(data.dtype, data.data, s, &mut buf[..len]);
            let mut local = acc;
            for &v in &buf[..len] {
                local.push(v);
            }
            acc = local;
            s += len;
        }
        acc
    });
    let mut acc = RangeAcc::new();
    for p in parts {
        acc.merge(&p);
    }
    acc.finish(n as u64, data.dtype.is_float())
}

// ---------------------------------------------------------------------------------------------
// Kernel
// ---------------------------------------------------------------------------------------------

/// Loop-invariant parameters of one comparison.
#[derive(Debug, Clone, Copy)]
struct Params {
    polygraphy: bool,
    atol: f64,
    rtol: f64,
    inf_equal: bool,
    /// Both sides integer/bool: mismatches counted on exact integer values.
    exact_int: bool,
    /// Selection collect limit (a parameter so tests can force the histogram path).
    collect_max: usize,
}

impl Params {
    fn new(tol: &Tolerance, exact_int: bool) -> Params {
        Params {
            polygraphy: tol.rule == Rule::Polygraphy,
            atol: tol.atol,
            rtol: tol.rtol,
            inf_equal: tol.inf_equal,
            exact_int,
            collect_max: EXACT_COLLECT_MAX,
        }
    }
}

/// Range accumulator (one side).
#[derive(Debug, Clone, Copy)]
struct RangeAcc {
    nan: u64,
    inf: u64,
    overflow: u64,
    subnormal: u64,
    underflow: u64,
    min: f64,
    max: f64,
    abs_max: f64,
}

impl RangeAcc {
    fn new() -> RangeAcc {
        RangeAcc {
            nan: 0,
            inf: 0,
            overflow: 0,
            subnormal: 0,
            underflow: 0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            abs_max: f64::NEG_INFINITY,
        }
    }

    #[inline]
    fn push(&mut self, v: f64) {
        let finite = v.is_finite();
        let a = v.abs();
        self.nan += u64::from(v.is_nan());
        self.inf += u64::from(v.is_infinite());
        self.min = self.min.min(if finite { v } else { f64::INFINITY });
        self.max = self.max.max(if finite { v } else { f64::NEG_INFINITY });
        self.abs_max = self.abs_max.max(if finite { a } else { f64::NEG_INFINITY });
        self.overflow += u64::from(finite & (a > FP16_MAX));
        let nonzero = a != 0.0;
        self.subnormal += u64::from(nonzero & (a < FP16_MIN_NORMAL));
        self.underflow += u64::from(nonzero & (a < FP16_MIN_SUBNORMAL));
    }

    fn merge(&mut self, o: &RangeAcc) {
        self.nan += o.nan;
        self.inf += o.inf;
        self.overflow += o.overflow;
        self.subnormal += o.subnormal;
        self.underflow += o.underflow;
        self.min = self.min.min(o.min);
        self.max = self.max.max(o.max);
        self.abs_max = self.abs_max.max(o.abs_max);
    }

    fn finish(&self, total: u64, is_float: bool) -> RangeStats {
        let any_finite = total > self.nan + self.inf;
        let or_nan = |v: f64| if any_finite { v } else { f64::NAN };
        let fp16 = |v: u64| if is_float { v } else { 0 };
        RangeStats {
            total,
            min: or_nan(self.min),
            max: or_nan(self.max),
            abs_max: or_nan(self.abs_max),
            nan: self.nan,
            inf: self.inf,
            fp16_overflow: fp16(self.overflow),
            fp16_subnormal: fp16(self.subnormal),
            fp16_underflow: fp16(self.underflow),
        }
    }
}

/// A ranked element before coordinates are attached.
#[derive(Debug, Clone, Copy)]
struct Ranked {
    key: f64,
    flat: usize,
    reference: f64,
    candidate: f64,
}

/// The k largest keys, worst first, ties by lower flat index. Elements must be pushed in flat order
/// (and partial lists merged in chunk order) for the tie rule to hold.
#[derive(Debug, Clone)]
struct TopK {
    k: usize,
    items: Vec<Ranked>,
}

impl TopK {
    fn new(k: usize) -> TopK {
        TopK { k, items: Vec::with_capacity(k.min(64)) }
    }

    /// Keys above this are taken.
    #[inline]
    fn threshold(&self) -> f64 {
        if self.k == 0 {
            f64::INFINITY
        } else if self.items.len() < self.k {
            f64::NEG_INFINITY
        } else {
            self.items.last().map_or(f64::NEG_INFINITY, |w| w.key)
        }
    }

    fn push(&mut self, w: Ranked) {
        if w.key <= self.threshold() {
            return;
        }
        let pos = self.items.partition_point(|x| x.key >= w.key);
        self.items.insert(pos, w);
        self.items.truncate(self.k);
    }

    fn merge(&mut self, later: TopK) {
        for w in later.items {
            self.push(w);
        }
    }
}

/// Partial aggregate of a range of elements.
#[derive(Debug, Clone)]
struct Partial {
    finite_pairs: u64,
    mismatches: u64,
    deviating: u64,
    nan_c: u64,
    inf_c: u64,
    sum_abs: f64,
    sum_rel: f64,
    max_abs: f64,
    max_rel: f64,
    dot: f64,
    rr: f64,
    cc: f64,
    dd: f64,
    c_min: f64,
    c_max: f64,
    range: RangeAcc,
    top: TopK,
}

impl Partial {
    fn new(k: usize) -> Partial {
        Partial {
            finite_pairs: 0,
            mismatches: 0,
            deviating: 0,
            nan_c: 0,
            inf_c: 0,
            sum_abs: 0.0,
            sum_rel: 0.0,
            max_abs: 0.0,
            max_rel: 0.0,
            dot: 0.0,
            rr: 0.0,
            cc: 0.0,
            dd: 0.0,
            c_min: f64::INFINITY,
            c_max: f64::NEG_INFINITY,
            range: RangeAcc::new(),
            top: TopK::new(k),
        }
    }

    /// Merge a partial of the elements that follow this one's.
    fn merge(&mut self, o: Partial) {
        self.finite_pairs += o.finite_pairs;
        self.mismatches += o.mismatches;
        self.deviating += o.deviating;
        self.nan_c += o.nan_c;
        self.inf_c += o.inf_c;
        self.sum_abs += o.sum_abs;
        self.sum_rel += o.sum_rel;
        self.max_abs = self.max_abs.max(o.max_abs);
        self.max_rel = self.max_rel.max(o.max_rel);
        self.dot += o.dot;
        self.rr += o.rr;
        self.cc += o.cc;
        self.dd += o.dd;
        self.c_min = self.c_min.min(o.c_min);
        self.c_max = self.c_max.max(o.c_max);
        self.range.merge(&o.range);
        self.top.merge(o.top);
    }
}

/// The two sides, validated (same element count, sizes checked).
#[derive(Debug, Clone, Copy)]
struct Pair<'a> {
    r: TensorRef<'a>,
    c: TensorRef<'a>,
    n: usize,
}

fn compare_impl(
    reference: TensorRef<'_>,
    candidate: TensorRef<'_>,
    p: &Params,
    top_k: usize,
    parallel: bool,
) -> Outcome {
    if reference.shape != candidate.shape {
        return Outcome::Skipped {
            reason: format!(
                "shape mismatch: reference {} {}, candidate {} {}",
                reference.dtype,
                shape_string(reference.shape),
                candidate.dtype,
                shape_string(candidate.shape)
            ),
        };
    }
    if let Err(e) = reference.check("reference").and_then(|()| candidate.check("candidate")) {
        return Outcome::Skipped { reason: e };
    }
    let pair = Pair { r: reference, c: candidate, n: reference.len() };
    let k = top_k.max(1);
    let parts = run_chunks(pair.n, parallel, |start, end| main_chunk(&pair, p, k, start, end));
    let mut t = Partial::new(k);
    for part in parts {
        t.merge(part);
    }
    let (median_abs, p99_abs) = abs_quantiles(&pair, p, t.finite_pairs, parallel);
    let metrics = finish(&pair, &t, median_abs, p99_abs, top_k);
    let pass = metrics.mismatches == 0;
    Outcome::Compared { metrics, pass }
}

/// Runs `f(start, end)` over consecutive chunks, in parallel or not, results in chunk order.
fn run_chunks<T: Send>(n: usize, parallel: bool, f: impl Fn(usize, usize) -> T + Sync) -> Vec<T> {
    let chunks = n.div_ceil(CHUNK);
    let one = |ci: usize| {
        let start = ci * CHUNK;
        f(start, (start + CHUNK).min(n))
    };
    if parallel && chunks > 1 { (0..chunks).into_par_iter().map(one).collect() } else { (0..chunks).map(one).collect() }
}

fn main_chunk(pair: &Pair<'_>, p: &Params, k: usize, start: usize, end: usize) -> Partial {
    let mut rb = [0.0f64; BLOCK];
    let mut cb = [0.0f64; BLOCK];
    let mut kb = [0.0f64; BLOCK];
    let mut acc = Partial::new(k);
    let mut s = start;
    while s < end {
        let len = BLOCK.min(end - s);
        let (rb, cb, kb) = (&mut rb[..len], &mut cb[..len], &mut kb[..len]);
        decode(pair.r.dtype, pair.r.data, s, rb);
        decode(pair.c.dtype, pair.c.data, s, cb);
        let mis =
            if p.polygraphy { block::<true>(p, rb, cb, kb, &mut acc) } else { block::<false>(p, rb, cb, kb, &mut acc) };
        acc.mismatches += if p.exact_int { exact_mismatches(pair, s, len) } else { mis };
        // Top-k: one cheap max over the block, a scan only when something qualifies.
        let block_max = kb.iter().fold(f64::NEG_INFINITY, |m, &x| m.max(x));
        if block_max > acc.top.threshold() {
            for (i, &key) in kb.iter().enumerate() {
                if key > acc.top.threshold() {
                    acc.top.push(Ranked { key, flat: s + i, reference: rb[i], candidate: cb[i] });
                }
            }
        }
        s += len;
    }
    acc
}

/// The inner loop over one decoded block: returns the (tolerance) mismatch count, adds everything
/// else to `acc`, and writes each element's ranking key to `kb`.
#[inline]
fn block<const POLYGRAPHY: bool>(p: &Params, rb: &[f64], cb: &[f64], kb: &mut [f64], acc: &mut Partial) -> u64 {
    let (atol, rtol, inf_equal) = (p.atol, p.rtol, p.inf_equal);
    let (mut finite_pairs, mut mis, mut deviating, mut nan_c, mut inf_c) = (0u64, 0u64, 0u64, 0u64, 0u64);
    let (mut sum_abs, mut sum_rel, mut max_abs, mut max_rel) = (0.0f64, 0.0f64, 0.0f64, 0.0f64);
    let (mut dot, mut rr, mut cc, mut dd) = (0.0f64, 0.0f64, 0.0f64, 0.0f64);
    let (mut c_min, mut c_max) = (acc.c_min, acc.c_max);
    let mut range = acc.range;
    for ((&r, &c), key) in rb.iter().zip(cb).zip(kb.iter_mut()) {
        let r_fin = r.is_finite();
        let c_fin = c.is_finite();
        let both = r_fin & c_fin;
        let ar = r.abs();
        let abs = (c - r).abs();
        let rel = abs / zero_guard(ar);
        let bad_finite = if POLYGRAPHY { (abs > atol) & (rel > rtol) } else { abs > atol + rtol * ar };
        let bad = if both { bad_finite } else { !(inf_equal & (r == c)) };
        mis += u64::from(bad);
        finite_pairs += u64::from(both);
        let abs_f = if both { abs } else { 0.0 };
        let rel_f = if both { rel } else { 0.0 };
        sum_abs += abs_f;
        sum_rel += rel_f;
        max_abs = max_abs.max(abs_f);
        max_rel = max_rel.max(rel_f);
        deviating += u64::from(both & (rel > DEVIATION_THRESHOLD));
        let r_f = if both { r } else { 0.0 };
        let c_f = if both { c } else { 0.0 };
        dot += r_f * c_f;
        rr += r_f * r_f;
        cc += c_f * c_f;
        dd += abs_f * abs_f;
        nan_c += u64::from(c.is_nan());
        inf_c += u64::from(c.is_infinite());
        c_min = c_min.min(if c_fin { c } else { f64::INFINITY });
        c_max = c_max.max(if c_fin { c } else { f64::NEG_INFINITY });
        range.push(r);
        *key = if both {
            abs
        } else if bad {
            f64::INFINITY
        } else {
            0.0
        };
    }
    acc.finite_pairs += finite_pairs;
    acc.deviating += deviating;
    acc.nan_c += nan_c;
    acc.inf_c += inf_c;
    acc.sum_abs += sum_abs;
    acc.sum_rel += sum_rel;
    acc.max_abs = acc.max_abs.max(max_abs);
    acc.max_rel = acc.max_rel.max(max_rel);
    acc.dot += dot;
    acc.rr += rr;
    acc.cc += cc;
    acc.dd += dd;
    acc.c_min = c_min;
    acc.c_max = c_max;
    acc.range = range;
    mis
}

/// Exact mismatch count of `len` integer/bool elements from `start`.
fn exact_mismatches(pair: &Pair<'_>, start: usize, len: usize) -> u64 {
    let mut ri = [0i128; BLOCK];
    let mut ci = [0i128; BLOCK];
    decode_int(pair.r.dtype, pair.r.data, start, &mut ri[..len]);
    decode_int(pair.c.dtype, pair.c.data, start, &mut ci[..len]);
    ri[..len].iter().zip(&ci[..len]).map(|(a, b)| u64::from(a != b)).sum()
}

/// Decodes `out.len()` elements from element `start` into `f64` (bool as 0/1 by truth value).
fn decode(dtype: DType, data: &[u8], start: usize, out: &mut [f64]) {
    let size = dtype.size();
    let bytes = &data[start * size..(start + out.len()) * size];
    match dtype {
        DType::Float32 => {
            for (o, b) in out.iter_mut().zip(bytes.as_chunks::<4>().0) {
                *o = f64::from(f32::from_le_bytes(*b));
            }
        }
        DType::Float64 => {
            for (o, b) in out.iter_mut().zip(bytes.as_chunks::<8>().0) {
                *o = f64::from_le_bytes(*b);
            }
        }
        DType::Float16 => {
            for (o, b) in out.iter_mut().zip(bytes.as_chunks::<2>().0) {
                *o = f16::from_le_bytes(*b).to_f64();
            }
        }
        DType::Bfloat16 => {
            for (o, b) in out.iter_mut().zip(bytes.as_chunks::<2>().0) {
                *o = bf16::from_le_bytes(*b).to_f64();
            }
        }
        DType::Int8 => {
            for (o, &b) in out.iter_mut().zip(bytes) {
                *o = f64::from(b.cast_signed());
            }
        }
        DType::Uint8 => {
            for (o, &b) in out.iter_mut().zip(bytes) {
                *o = f64::from(b);
            }
        }
        DType::Bool => {
            for (o, &b) in out.iter_mut().zip(bytes) {
                *o = f64::from(u8::from(b != 0));
            }
        }
        DType::Int16 => {
            for (o, b) in out.iter_mut().zip(bytes.as_chunks::<2>().0) {
                *o = f64::from(i16::from_le_bytes(*b));
            }
        }
        DType::Uint16 => {
            for (o, b) in out.iter_mut().zip(bytes.as_chunks::<2>().0) {
                *o = f64::from(u16::from_le_bytes(*b));
            }
        }
        DType::Int32 => {
            for (o, b) in out.iter_mut().zip(bytes.as_chunks::<4>().0) {
                *o = f64::from(i32::from_le_bytes(*b));
            }
        }
        DType::Uint32 => {
            for (o, b) in out.iter_mut().zip(bytes.as_chunks::<4>().0) {
                *o = f64::from(u32::from_le_bytes(*b));
            }
        }
        DType::Int64 => {
            for (o, b) in out.iter_mut().zip(bytes.as_chunks::<8>().0) {
                *o = i64::from_le_bytes(*b) as f64;
            }
        }
        DType::Uint64 => {
            for (o, b) in out.iter_mut().zip(bytes.as_chunks::<8>().0) {
                *o = u64::from_le_bytes(*b) as f64;
            }
        }
    }
}

/// Decodes integer/bool elements exactly (floats are truncated; not used for them).
fn decode_int(dtype: DType, data: &[u8], start: usize, out: &mut [i128]) {
    let size = dtype.size();
    let bytes = &data[start * size..(start + out.len()) * size];
    match dtype {
        DType::Int8 => out.iter_mut().zip(bytes).for_each(|(o, &b)| *o = i128::from(b.cast_signed())),
        DType::Uint8 => out.iter_mut().zip(bytes).for_each(|(o, &b)| *o = i128::from(b)),
        DType::Bool => out.iter_mut().zip(bytes).for_each(|(o, &b)| *o = i128::from(b != 0)),
        DType::Int16 => {
            out.iter_mut().zip(bytes.as_chunks::<2>().0).for_each(|(o, b)| *o = i128::from(i16::from_le_bytes(*b)));
        }
        DType::Uint16 => {
            out.iter_mut().zip(bytes.as_chunks::<2>().0).for_each(|(o, b)| *o = i128::from(u16::from_le_bytes(*b)));
        }
        DType::Int32 => {
            out.iter_mut().zip(bytes.as_chunks::<4>().0).for_each(|(o, b)| *o = i128::from(i32::from_le_bytes(*b)));
        }
        DType::Uint32 => {
            out.iter_mut().zip(bytes.as_chunks::<4>().0).for_each(|(o, b)| *o = i128::from(u32::from_le_bytes(*b)));
        }
        DType::Int64 => {
            out.iter_mut().zip(bytes.as_chunks::<8>().0).for_each(|(o, b)| *o = i128::from(i64::from_le_bytes(*b)));
        }
        DType::Uint64 => {
            out.iter_mut().zip(bytes.as_chunks::<8>().0).for_each(|(o, b)| *o = i128::from(u64::from_le_bytes(*b)));
        }
        DType::Float32 | DType::Float64 | DType::Float16 | DType::Bfloat16 => {
            let mut buf = [0.0f64; BLOCK];
            for (offset, o) in out.chunks_mut(BLOCK).enumerate() {
                let b = &mut buf[..o.len()];
                decode(dtype, data, start + offset * BLOCK, b);
                o.iter_mut().zip(b.iter()).for_each(|(o, &v)| *o = v as i128);
            }
        }
    }
}

fn finish(pair: &Pair<'_>, t: &Partial, median_abs: f64, p99_abs: f64, top_k: usize) -> Metrics {
    let n = pair.n as u64;
    let none = t.finite_pairs == 0;
    let nf = t.finite_pairs as f64;
    let or_nan = |v: f64| if none { f64::NAN } else { v };
    let ref_range = t.range.finish(n, pair.r.dtype.is_float());
    let any_c = n > t.nan_c + t.inf_c;
    let c_or_nan = |v: f64| if any_c { v } else { f64::NAN };
    let (nr, nc) = (t.rr.sqrt(), t.cc.sqrt());
    let cosine = if nr == 0.0 && nc == 0.0 {
        1.0
    } else if nr == 0.0 || nc == 0.0 {
        0.0
    } else {
        (t.dot / (nr * nc)).clamp(-1.0, 1.0)
    };
    let rel_l2 = if t.rr == 0.0 { if t.dd == 0.0 { 0.0 } else { f64::INFINITY } } else { t.dd.sqrt() / nr };
    let snr_db = if t.dd == 0.0 { f64::INFINITY } else { 10.0 * (t.rr / t.dd).log10() };
    let elements: Vec<Element> = t
        .top
        .items
        .iter()
        .map(|w| Element {
            index: unravel(w.flat, pair.r.shape),
            flat: w.flat,
            reference: w.reference,
            candidate: w.candidate,
            // key 0 covers exact matches and equal infinities under `inf_equal`.
            abs: if w.key == 0.0 { 0.0 } else { (w.candidate - w.reference).abs() },
        })
        .collect();
    Metrics {
        max_abs: or_nan(t.max_abs),
        mean_abs: or_nan(t.sum_abs / nf),
        median_abs,
        p99_abs,
        max_rel: or_nan(t.max_rel),
        mean_rel: or_nan(t.sum_rel / nf),
        mismatches: t.mismatches,
        total: n,
        mismatch_ratio: if n == 0 { 0.0 } else { t.mismatches as f64 / n as f64 },
        cosine: or_nan(cosine),
        rel_l2: or_nan(rel_l2),
        snr_db: or_nan(snr_db),
        nan_reference: ref_range.nan,
        nan_candidate: t.nan_c,
        inf_reference: ref_range.inf,
        inf_candidate: t.inf_c,
        reference_min: ref_range.min,
        reference_max: ref_range.max,
        reference_abs_max: ref_range.abs_max,
        candidate_min: c_or_nan(t.c_min),
        candidate_max: c_or_nan(t.c_max),
        fp16_overflow_reference: ref_range.fp16_overflow,
        fp16_subnormal_reference: ref_range.fp16_subnormal,
        fp16_underflow_reference: ref_range.fp16_underflow,
        deviation_ratio_10pct: or_nan(t.deviating as f64 / nf),
        worst: elements.first().cloned(),
        top_k: elements.into_iter().take(top_k).collect(),
    }
}

/// Row-major coordinates of a flat index.
fn unravel(mut flat: usize, shape: &[usize]) -> Vec<usize> {
    let mut index = vec![0; shape.len()];
    for (i, &d) in index.iter_mut().zip(shape).rev() {
        if d > 0 {
            *i = flat % d;
            flat /= d;
        }
    }
    index
}

// ---------------------------------------------------------------------------------------------
// Exact median / p99 by radix selection
// ---------------------------------------------------------------------------------------------

/// numpy's `median` and `percentile(.., 99)` of the finite-pair absolute errors.
fn abs_quantiles(pair: &Pair<'_>, p: &Params, finite_pairs: u64, parallel: bool) -> (f64, f64) {
    if finite_pairs == 0 {
        return (f64::NAN, f64::NAN);
    }
    let n = finite_pairs;
    let (m_lo, m_hi) = ((n - 1) / 2, n / 2);
    let h = (n - 1) as f64 * 0.99;
    let q_lo = (h.floor() as u64).min(n - 1);
    let q_hi = (q_lo + 1).min(n - 1);
    let t = h - q_lo as f64;
    let v = select_ranks(pair, n, &[m_lo, m_hi, q_lo, q_hi], p.collect_max, parallel);
    let median = if m_lo == m_hi { v[0] } else { f64::midpoint(v[0], v[1]) };
    (median, lerp(v[2], v[3], t))
}

/// numpy's `_lerp` (as used by `percentile` with the linear method).
fn lerp(a: f64, b: f64, t: f64) -> f64 {
    let diff = b - a;
    if t >= 0.5 { b - diff * (1.0 - t) } else { a + diff * t }
}

/// A set of keys sharing their top `known` bits (`prefix`); `known == 0` is every key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Bucket {
    prefix: u64,
    known: u32,
}

impl Bucket {
    #[inline]
    fn contains(self, key: u64) -> bool {
        self.known == 0 || key >> (64 - self.known) == self.prefix
    }

    #[inline]
    fn digit(self, key: u64) -> usize {
        ((key >> (64 - self.known - RADIX_BITS)) & ((1 << RADIX_BITS) - 1)) as usize
    }
}

/// What one selection pass gathers for one bucket.
#[derive(Debug, Clone)]
struct BucketScan {
    bucket: Bucket,
    collect: bool,
    hist: Vec<u64>,
    keys: Vec<u64>,
    min: u64,
    n_min: u64,
}

impl BucketScan {
    fn new(bucket: Bucket, collect: bool) -> BucketScan {
        let hist = if collect { Vec::new() } else { vec![0; 1 << RADIX_BITS] };
        BucketScan { bucket, collect, hist, keys: Vec::new(), min: u64::MAX, n_min: 0 }
    }

    fn add(&mut self, keys: &[u64]) {
        let b = self.bucket;
        for &key in keys {
            if !b.contains(key) {
                continue;
            }
            if key < self.min {
                self.min = key;
                self.n_min = 1;
            } else if key == self.min {
                self.n_min += 1;
            }
            if self.collect {
                self.keys.push(key);
            } else {
                self.hist[b.digit(key)] += 1;
            }
        }
    }

    fn merge(&mut self, o: &BucketScan) {
        for (a, b) in self.hist.iter_mut().zip(&o.hist) {
            *a += b;
        }
        self.keys.extend_from_slice(&o.keys);
        if o.min < self.min {
            self.min = o.min;
            self.n_min = o.n_min;
        } else if o.min == self.min {
            self.n_min += o.n_min;
        }
    }
}

/// The values of the given ranks (0-based, ascending order) among the `keys` finite-pair absolute
/// errors.
fn select_ranks(pair: &Pair<'_>, keys: u64, ranks: &[u64], collect_max: usize, parallel: bool) -> Vec<f64> {
    #[derive(Debug, Clone, Copy)]
    struct Probe {
        bucket: Bucket,
        rank: u64,
        count: u64,
        found: Option<u64>,
    }
    let mut probes: Vec<Probe> = ranks
        .iter()
        .map(|&rank| Probe { bucket: Bucket { prefix: 0, known: 0 }, rank, count: keys, found: None })
        .collect();
    loop {
        for pr in &mut probes {
            if pr.found.is_none() && pr.bucket.known >= 64 {
                pr.found = Some(pr.bucket.prefix);
            }
        }
        let mut scans: Vec<BucketScan> = Vec::new();
        for pr in probes.iter().filter(|pr| pr.found.is_none()) {
            if !scans.iter().any(|s| s.bucket == pr.bucket) {
                scans.push(BucketScan::new(pr.bucket, pr.count <= collect_max as u64));
            }
        }
        if scans.is_empty() {
            break;
        }
        let mut scans = scan_pass(pair, &scans, parallel);
        for pr in probes.iter_mut().filter(|pr| pr.found.is_none()) {
            let Some(scan) = scans.iter_mut().find(|s| s.bucket == pr.bucket) else {
                pr.found = Some(f64::NAN.to_bits());
                continue;
            };
            if pr.rank < scan.n_min {
                pr.found = Some(scan.min);
            } else if scan.collect {
                pr.found = Some(match scan.keys.get(pr.rank as usize) {
                    Some(_) => *scan.keys.select_nth_unstable(pr.rank as usize).1,
                    None => f64::NAN.to_bits(),
                });
            } else {
                let mut below = 0u64;
                let mut next = None;
                for (digit, &h) in scan.hist.iter().enumerate() {
                    if pr.rank < below + h {
                        next = Some((digit as u64, h));
                        break;
                    }
                    below += h;
                }
                match next {
                    Some((digit, h)) => {
                        pr.bucket = Bucket {
                            prefix: (pr.bucket.prefix << RADIX_BITS) | digit,
                            known: pr.bucket.known + RADIX_BITS,
                        };
                        pr.rank -= below;
                        pr.count = h;
                    }
                    None => pr.found = Some(f64::NAN.to_bits()),
                }
            }
        }
    }
    probes.iter().map(|pr| f64::from_bits(pr.found.unwrap_or(f64::NAN.to_bits()))).collect()
}

/// One pass over both tensors feeding the keys (bits of `|c − r|` of finite pairs) to the scans.
fn scan_pass(pair: &Pair<'_>, scans: &[BucketScan], parallel: bool) -> Vec<BucketScan> {
    let chunks = pair.n.div_ceil(CHUNK);
    let fresh = || scans.iter().map(|s| BucketScan::new(s.bucket, s.collect)).collect::<Vec<_>>();
    let work = |mut acc: Vec<BucketScan>, ci: usize| {
        let start = ci * CHUNK;
        let end = (start + CHUNK).min(pair.n);
        let mut rb = [0.0f64; BLOCK];
        let mut cb = [0.0f64; BLOCK];
        let mut kb = [0u64; BLOCK];
        let mut s = start;
        while s < end {
            let len = BLOCK.min(end - s);
            decode(pair.r.dtype, pair.r.data, s, &mut rb[..len]);
            decode(pair.c.dtype, pair.c.data, s, &mut cb[..len]);
            let mut m = 0;
            for (&r, &c) in rb[..len].iter().zip(&cb[..len]) {
                kb[m] = (c - r).abs().to_bits();
                m += usize::from(r.is_finite() & c.is_finite());
            }
            for scan in &mut acc {
                scan.add(&kb[..m]);
            }
            s += len;
        }
        acc
    };
    let merge = |mut a: Vec<BucketScan>, b: Vec<BucketScan>| {
        for (x, y) in a.iter_mut().zip(&b) {
            x.merge(y);
        }
        a
    };
    if parallel && chunks > 1 {
        (0..chunks).into_par_iter().with_min_len(4).fold(fresh, work).reduce_with(merge).unwrap_or_else(fresh)
    } else {
        (0..chunks).fold(fresh(), work)
    }
}
