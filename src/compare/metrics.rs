//! Per-tensor comparison kernel: one reference tensor against one candidate tensor.
//!
//! The kernel works on borrowed little-endian bytes ([`TensorRef`]), so tensors memory-mapped from
//! the run store are compared without copying them. Every element is widened to `f64` (f16, bf16
//! and integers exactly; 64-bit integers beyond 2^53 are rounded for the statistics but compared
//! exactly by [`compare_exact`]) and all arithmetic is done in `f64`. The two sides may have
//! different dtypes (a float16 candidate against a float32 reference is the usual case) but must
//! have the same shape; a shape mismatch (or a byte count that does not fit the shape) gives
//! [`Outcome::Skipped`] and no metrics. Integer and bool pairs are compared exactly
//! ([`compare_exact`]); [`reference_stats`] gives the range and FP16 counts of one tensor alone.
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
//! `d = 2.220446049250313e-16` ([`REL_ZERO_GUARD`], `f64::EPSILON`), Polygraphy's rule: exact zeros
//! are replaced, tiny non-zero references are not. So `rel` is huge (`|c|/2.2e-16`) where the
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
//!   `-inf` when the reference is zero and the error is not. (The sums of squares are plain `f64`
//!   sums: only float64 tensors with values beyond ~1e154 could overflow them.)
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
//! numpy's `percentile(.., 99)` with linear interpolation, both exact (not estimates). They are found
//! by a radix selection on the bit patterns of the absolute errors (non-negative `f64` order like
//! their bits as `u64`; a non-finite pair gets a sentinel key above every finite one, so ranks among
//! the finite pairs are unchanged):
//! * a tensor of at most [`EXACT_COLLECT_MAX`] elements has its keys collected during the main pass
//!   (8 bytes per element, as much as an f32 pair) and `select_nth_unstable` picks the ranks: no
//!   extra pass;
//! * a larger tensor gets a histogram of the keys' top 16 bits during the main pass; one more pass
//!   then collects only the keys of the bucket(s) holding the ranks, or, while such a bucket still
//!   has more than `EXACT_COLLECT_MAX` keys, histograms its next 16 bits instead (at most three
//!   times, since 4·16 = 64 bits pins a single value). Those passes also track the smallest key of
//!   a bucket and its multiplicity, so massive ties (e.g. most errors exactly 0) end the search at
//!   once.
//!
//! Extra memory is therefore bounded whatever the tensor size: at most `8·EXACT_COLLECT_MAX` bytes
//! per searched bucket (four ranks, usually one or two buckets) plus 512 KiB per histogram (one per
//! rayon work split), at the price of one extra read of both tensors for tensors above the limit.
//!
//! # JSON
//! JSON has no infinities or NaN. Every `f64` in [`Metrics`], [`Element`] and [`RangeStats`] goes
//! through [`json_f64`]: finite values are plain numbers, `+inf`, `-inf` and NaN are the strings
//! `"inf"`, `"-inf"` and `"nan"`, so any standard JSON parser reads the file and deserialization
//! round-trips exactly.
//!
//! # Speed
//! Tensors are cut into chunks of [`CHUNK`] elements that rayon processes in parallel. A chunk is
//! decoded block by block into `f64` buffers, each block is reduced by a few short loops written
//! over independent accumulator lanes (so they compile to SSE2 vector code without reassociating any
//! sum), and non-finite pairs are settled by a scalar loop only in blocks that have any. Chunks give
//! partial aggregates (counts, sums, min/max, a top-k list) that are merged in chunk order, so the
//! result does not depend on the number of threads: the sequential and parallel paths give
//! identical bits.

#![allow(
    clippy::inline_always,
    reason = "the per-element kernels are inlined into their AVX2 and portable instantiations on purpose"
)]
// Exact float equality (equal infinities, exact zero) is intended, and `&` on bools keeps the inner
// loop free of branches.
#![allow(clippy::float_cmp, clippy::needless_bitwise_bool)]

use std::fmt;
use std::str::FromStr;

use half::slice::HalfFloatSliceExt;
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
/// Exact median/p99: tensors with at most this many elements keep every error key (8 bytes each)
/// from the main pass; larger ones collect at most this many keys per searched bucket.
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

/// [`json_f64`] for `Option<f64>` fields (`null`/absent is `None`).
pub mod json_f64_opt {
    use serde::{Deserialize, Deserializer, Serializer};

    /// Serialize like `json_f64`, `None` as `null`.
    #[allow(clippy::ref_option)] // serde's `with` hands a reference to the field
    pub fn serialize<S: Serializer>(v: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(x) => super::json_f64::serialize(x, s),
            None => s.serialize_none(),
        }
    }

    /// Read what `serialize` writes.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
        #[derive(Deserialize)]
        struct W(#[serde(with = "super::json_f64")] f64);
        Ok(Option::<W>::deserialize(d)?.map(|w| w.0))
    }
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
    /// Introduced error (`compare::introduced`): largest `|c − r|` between the candidate and the
    /// reference implementation of the producing node run on the candidate's own inputs. Absent when
    /// not computed (saved sides without a model, reports before `trtlens.report/1.1`).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "json_f64_opt")]
    pub introduced_max_abs: Option<f64>,
    /// Introduced error: `‖c − r‖ / ‖r‖` against the node re-run on the candidate's inputs.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "json_f64_opt")]
    pub introduced_rel_l2: Option<f64>,
    /// Introduced error: elements out of tolerance against the node re-run on the candidate's inputs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub introduced_mismatches: Option<u64>,
    /// Introduced error: elements non-finite in the candidate where the node re-run on the
    /// candidate's inputs is finite (the node created them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub introduced_nonfinite: Option<u64>,
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

/// [`compare`] without the exact median and p99 (NaN in the result), in a single pass over the
/// pair: for callers that need the error maxima, sums and counts only (the introduced error).
#[must_use]
pub fn compare_basic(reference: TensorRef<'_>, candidate: TensorRef<'_>, tol: &Tolerance, top_k: usize) -> Outcome {
    if !reference.dtype.is_float() && !candidate.dtype.is_float() {
        return compare_exact(reference, candidate, top_k);
    }
    let p = Params { quantiles: false, ..Params::new(tol, false) };
    compare_impl(reference, candidate, &p, top_k, true)
}

/// Elements that are finite in `reference` and not finite (NaN or ±inf) in `candidate` (0 when the
/// element counts differ).
#[must_use]
pub fn new_nonfinite(reference: TensorRef<'_>, candidate: TensorRef<'_>) -> u64 {
    let n = reference.len();
    if candidate.len() != n || reference.check("reference").is_err() || candidate.check("candidate").is_err() {
        return 0;
    }
    run_chunks(n, true, |start, end| {
        let (mut rb, mut cb) = ([0.0f64; BLOCK], [0.0f64; BLOCK]);
        let mut count = 0u64;
        let mut s = start;
        while s < end {
            let len = BLOCK.min(end - s);
            decode(reference.dtype, reference.data, s, &mut rb[..len]);
            decode(candidate.dtype, candidate.data, s, &mut cb[..len]);
            count += rb[..len].iter().zip(&cb[..len]).map(|(&r, &c)| u64::from(finite(r) & !finite(c))).sum::<u64>();
            s += len;
        }
        count
    })
    .into_iter()
    .sum()
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
        let mut buf = [[0.0f64; LANES]; BLOCK / LANES];
        let mut lanes = RangeLanes::new();
        let mut s = start;
        while s < end {
            let len = BLOCK.min(end - s);
            let groups = len.div_ceil(LANES);
            let flat = buf[..groups].as_flattened_mut();
            decode(data.dtype, data.data, s, &mut flat[..len]);
            flat[len..].fill(f64::NAN);
            lanes.run(&buf[..groups]);
            lanes.unpad(groups * LANES - len);
            s += len;
        }
        lanes.fold()
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
#[allow(clippy::struct_excessive_bools, reason = "independent switches of one kernel call")]
struct Params {
    polygraphy: bool,
    atol: f64,
    rtol: f64,
    inf_equal: bool,
    /// Both sides integer/bool: mismatches counted on exact integer values.
    exact_int: bool,
    /// Selection collect limit (a parameter so tests can force the histogram path).
    collect_max: usize,
    /// Compute the exact median and p99 (else they are NaN and no selection keys are kept).
    quantiles: bool,
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
            quantiles: true,
        }
    }
}

/// Independent accumulator lanes: the inner loops update lane `j` with element `LANES·i + j`, so the
/// compiler keeps each accumulator in SIMD registers (one AVX2 register, or two SSE2 registers on
/// CPUs without AVX2) without reassociating any float sum. The lane count fixes the order of every
/// sum, so both builds of the kernel give the same bits.
const LANES: usize = 4;

/// `if x < m { x } else { m }`: a plain `minpd` (`m` is never NaN where it is used).
#[inline]
fn lo(m: f64, x: f64) -> f64 {
    if x < m { x } else { m }
}

/// `if x > m { x } else { m }`: a plain `maxpd` (`m` is never NaN where it is used; a NaN `x` is
/// ignored).
#[inline]
fn hi(m: f64, x: f64) -> f64 {
    if x > m { x } else { m }
}

/// 1 for true: written as a select, which vectorizes better than `u64::from` here.
#[inline]
#[allow(clippy::bool_to_int_with_if)]
fn count(b: bool) -> u64 {
    if b { 1 } else { 0 }
}

/// 1.0 for true (a count kept in a float register).
#[inline]
fn one(b: bool) -> f64 {
    if b { 1.0 } else { 0.0 }
}

/// `x` is finite. Written as `x − x == 0` (NaN for ±inf and NaN): one `subpd` and one `cmpeqpd`,
/// where `is_finite` becomes a 64-bit integer compare that SSE2 lacks.
#[inline]
#[allow(clippy::eq_op)] // `x - x` is the point: 0 for finite x, NaN otherwise
fn finite(x: f64) -> bool {
    x - x == 0.0
}

/// Both finite.
#[inline]
#[allow(clippy::eq_op)] // as in `finite`
fn both_finite(r: f64, c: f64) -> bool {
    (r - r) + (c - c) == 0.0
}

/// Range accumulator (one side), after the lanes are folded.
#[derive(Debug, Clone, Copy)]
struct RangeAcc {
    nan: u64,
    finite: u64,
    /// `|v| > 65504`, infinities included.
    big: u64,
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
            finite: 0,
            big: 0,
            subnormal: 0,
            underflow: 0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            abs_max: f64::NEG_INFINITY,
        }
    }

    fn merge(&mut self, o: &RangeAcc) {
        self.nan += o.nan;
        self.finite += o.finite;
        self.big += o.big;
        self.subnormal += o.subnormal;
        self.underflow += o.underflow;
        self.min = lo(self.min, o.min);
        self.max = hi(self.max, o.max);
        self.abs_max = hi(self.abs_max, o.abs_max);
    }

    fn finish(&self, total: u64, is_float: bool) -> RangeStats {
        let inf = total - self.finite - self.nan;
        let or_nan = |v: f64| if self.finite > 0 { v } else { f64::NAN };
        let fp16 = |v: u64| if is_float { v } else { 0 };
        RangeStats {
            total,
            min: or_nan(self.min),
            max: or_nan(self.max),
            abs_max: or_nan(self.abs_max),
            nan: self.nan,
            inf,
            // `big` is not counted for the candidate side (`SimLanes::run`): saturate.
            fp16_overflow: fp16(self.big.saturating_sub(inf)),
            fp16_subnormal: fp16(self.subnormal),
            fp16_underflow: fp16(self.underflow),
        }
    }
}

/// Range accumulator lanes (one side).
#[derive(Debug, Clone, Copy)]
struct RangeLanes {
    nan: [u64; LANES],
    finite: [u64; LANES],
    big: [u64; LANES],
    subnormal: [u64; LANES],
    underflow: [u64; LANES],
    min: [f64; LANES],
    max: [f64; LANES],
    abs_max: [f64; LANES],
}

impl RangeLanes {
    fn new() -> RangeLanes {
        RangeLanes {
            nan: [0; LANES],
            finite: [0; LANES],
            big: [0; LANES],
            subnormal: [0; LANES],
            underflow: [0; LANES],
            min: [f64::INFINITY; LANES],
            max: [f64::NEG_INFINITY; LANES],
            abs_max: [f64::NEG_INFINITY; LANES],
        }
    }

    // The loops below take whole lane groups (`main_chunk` pads a block with NaN to a multiple of
    // `LANES`) and keep their accumulators in locals, which is what lets them vectorize.

    #[inline(always)]
    fn run(&mut self, vals: &[[f64; LANES]]) {
        let (mut nan, mut fin, mut big) = (self.nan, self.finite, self.big);
        let (mut subnormal, mut underflow) = (self.subnormal, self.underflow);
        let (mut min, mut max, mut abs_max) = (self.min, self.max, self.abs_max);
        for ch in vals {
            for j in 0..LANES {
                let v = ch[j];
                let a = v.abs();
                let f = finite(v);
                nan[j] += count(v.is_nan());
                fin[j] += count(f);
                min[j] = lo(min[j], if f { v } else { f64::INFINITY });
                max[j] = hi(max[j], if f { v } else { f64::NEG_INFINITY });
                abs_max[j] = hi(abs_max[j], if f { a } else { f64::NEG_INFINITY });
                big[j] += count(a > FP16_MAX);
                let nonzero = a != 0.0;
                subnormal[j] += count(nonzero & (a < FP16_MIN_NORMAL));
                underflow[j] += count(nonzero & (a < FP16_MIN_SUBNORMAL));
            }
        }
        *self = RangeLanes { nan, finite: fin, big, subnormal, underflow, min, max, abs_max };
    }

    /// Removes the NaN padding counted in the last `pad` lanes (added by the caller).
    fn unpad(&mut self, pad: usize) {
        for n in &mut self.nan[LANES - pad..] {
            *n -= 1;
        }
    }

    fn fold(&self) -> RangeAcc {
        let mut acc = RangeAcc::new();
        for j in 0..LANES {
            acc.merge(&RangeAcc {
                nan: self.nan[j],
                finite: self.finite[j],
                big: self.big[j],
                subnormal: self.subnormal[j],
                underflow: self.underflow[j],
                min: self.min[j],
                max: self.max[j],
                abs_max: self.abs_max[j],
            });
        }
        acc
    }
}

/// Error accumulator lanes (finite pairs, mismatches).
#[derive(Debug, Clone, Copy)]
struct ErrLanes {
    // Counts as f64 (exact: a chunk has far fewer than 2^53 elements), so the whole loop stays in
    // float registers.
    finite_pairs: [f64; LANES],
    mismatches: [f64; LANES],
    deviating: [f64; LANES],
    sum_abs: [f64; LANES],
    sum_rel: [f64; LANES],
    max_abs: [f64; LANES],
    max_rel: [f64; LANES],
}

impl ErrLanes {
    fn new() -> ErrLanes {
        ErrLanes {
            finite_pairs: [0.0; LANES],
            mismatches: [0.0; LANES],
            deviating: [0.0; LANES],
            sum_abs: [0.0; LANES],
            sum_rel: [0.0; LANES],
            max_abs: [0.0; LANES],
            max_rel: [0.0; LANES],
        }
    }

    /// Finite pairs only: updates the lanes and writes `|c − r|` to `kb` (NaN for a non-finite
    /// pair). Non-finite pairs are neither counted as mismatches nor ranked here; [`main_chunk`]
    /// settles them in a scalar pass, only for blocks that have any.
    #[inline(always)]
    fn run<const POLYGRAPHY: bool>(
        &mut self,
        atol: f64,
        rtol: f64,
        rb: &[[f64; LANES]],
        cb: &[[f64; LANES]],
        kb: &mut [[f64; LANES]],
    ) {
        let (mut finite_pairs, mut mismatches, mut deviating) = (self.finite_pairs, self.mismatches, self.deviating);
        let (mut sum_abs, mut sum_rel, mut max_abs, mut max_rel) =
            (self.sum_abs, self.sum_rel, self.max_abs, self.max_rel);
        for ((r, c), k) in rb.iter().zip(cb).zip(kb.iter_mut()) {
            for j in 0..LANES {
                let (r, c) = (r[j], c[j]);
                let ar = r.abs();
                let both = both_finite(r, c);
                let abs = (c - r).abs();
                let rel = abs / if ar == 0.0 { REL_ZERO_GUARD } else { ar };
                let abs_f = if both { abs } else { 0.0 };
                let rel_f = if both { rel } else { 0.0 };
                let bad = both & if POLYGRAPHY { (abs > atol) & (rel > rtol) } else { abs > atol + rtol * ar };
                mismatches[j] += one(bad);
                finite_pairs[j] += one(both);
                deviating[j] += one(rel_f > DEVIATION_THRESHOLD);
                sum_abs[j] += abs_f;
                sum_rel[j] += rel_f;
                max_abs[j] = hi(max_abs[j], abs_f);
                max_rel[j] = hi(max_rel[j], rel_f);
                k[j] = if both { abs } else { f64::NAN };
            }
        }
        *self = ErrLanes { finite_pairs, mismatches, deviating, sum_abs, sum_rel, max_abs, max_rel };
    }

    fn finite_pairs(&self) -> u64 {
        self.finite_pairs.iter().sum::<f64>() as u64
    }
}

/// Similarity accumulator lanes (sums of products over finite pairs).
#[derive(Debug, Clone, Copy)]
struct SimLanes {
    dot: [f64; LANES],
    rr: [f64; LANES],
    cc: [f64; LANES],
    dd: [f64; LANES],
}

impl SimLanes {
    fn new() -> SimLanes {
        SimLanes { dot: [0.0; LANES], rr: [0.0; LANES], cc: [0.0; LANES], dd: [0.0; LANES] }
    }

    /// Also accumulates the candidate's range (`run_minmax` of [`RangeLanes`]) in the same loop.
    #[inline(always)]
    fn run(&mut self, rb: &[[f64; LANES]], cb: &[[f64; LANES]], cand: &mut RangeLanes) {
        let (mut dot, mut rr, mut cc, mut dd) = (self.dot, self.rr, self.cc, self.dd);
        let (mut nan, mut fin, mut min, mut max) = (cand.nan, cand.finite, cand.min, cand.max);
        for (r, c) in rb.iter().zip(cb) {
            for j in 0..LANES {
                let (r, c) = (r[j], c[j]);
                let fc = finite(c);
                let both = finite(r) & fc;
                nan[j] += count(c.is_nan());
                fin[j] += count(fc);
                min[j] = lo(min[j], if fc { c } else { f64::INFINITY });
                max[j] = hi(max[j], if fc { c } else { f64::NEG_INFINITY });
                let r = if both { r } else { 0.0 };
                let c = if both { c } else { 0.0 };
                let d = c - r;
                dot[j] += r * c;
                rr[j] += r * r;
                cc[j] += c * c;
                dd[j] += d * d;
            }
        }
        *self = SimLanes { dot, rr, cc, dd };
        (cand.nan, cand.finite, cand.min, cand.max) = (nan, fin, min, max);
    }
}

/// Largest value (lane-wise; NaN values are ignored).
#[inline(always)]
fn block_max(v: &[[f64; LANES]]) -> f64 {
    let mut m = [f64::NEG_INFINITY; LANES];
    for ch in v {
        for j in 0..LANES {
            m[j] = hi(m[j], ch[j]);
        }
    }
    m.iter().fold(f64::NEG_INFINITY, |a, &b| hi(a, b))
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
    sum_abs: f64,
    sum_rel: f64,
    max_abs: f64,
    max_rel: f64,
    dot: f64,
    rr: f64,
    cc: f64,
    dd: f64,
    range_r: RangeAcc,
    range_c: RangeAcc,
    top: TopK,
}

impl Partial {
    fn new(k: usize) -> Partial {
        Partial {
            finite_pairs: 0,
            mismatches: 0,
            deviating: 0,
            sum_abs: 0.0,
            sum_rel: 0.0,
            max_abs: 0.0,
            max_rel: 0.0,
            dot: 0.0,
            rr: 0.0,
            cc: 0.0,
            dd: 0.0,
            range_r: RangeAcc::new(),
            range_c: RangeAcc::new(),
            top: TopK::new(k),
        }
    }

    /// Folds the lanes of one chunk (lane order fixed, so the result is deterministic).
    fn from_lanes(err: &ErrLanes, sim: &SimLanes, range_r: &RangeLanes, range_c: &RangeLanes, top: TopK) -> Partial {
        let mut p = Partial::new(top.k);
        for j in 0..LANES {
            p.finite_pairs += err.finite_pairs[j] as u64;
            p.mismatches += err.mismatches[j] as u64;
            p.deviating += err.deviating[j] as u64;
            p.sum_abs += err.sum_abs[j];
            p.sum_rel += err.sum_rel[j];
            p.max_abs = hi(p.max_abs, err.max_abs[j]);
            p.max_rel = hi(p.max_rel, err.max_rel[j]);
            p.dot += sim.dot[j];
            p.rr += sim.rr[j];
            p.cc += sim.cc[j];
            p.dd += sim.dd[j];
        }
        p.range_r = range_r.fold();
        p.range_c = range_c.fold();
        p.top = top;
        p
    }

    /// Merge a partial of the elements that follow this one's.
    fn merge(&mut self, o: Partial) {
        self.finite_pairs += o.finite_pairs;
        self.mismatches += o.mismatches;
        self.deviating += o.deviating;
        self.sum_abs += o.sum_abs;
        self.sum_rel += o.sum_rel;
        self.max_abs = hi(self.max_abs, o.max_abs);
        self.max_rel = hi(self.max_rel, o.max_rel);
        self.dot += o.dot;
        self.rr += o.rr;
        self.cc += o.cc;
        self.dd += o.dd;
        self.range_r.merge(&o.range_r);
        self.range_c.merge(&o.range_c);
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
    let (parts, first) = main_pass(&pair, p, k, parallel);
    let mut t = Partial::new(k);
    for part in parts {
        t.merge(part);
    }
    let (median_abs, p99_abs) =
        if p.quantiles { abs_quantiles(&pair, p, t.finite_pairs, first, parallel) } else { (f64::NAN, f64::NAN) };
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

/// The selection keys of every element (bits of `|c − r|`; [`SENTINEL`] for a non-finite pair)
/// when the tensor is small enough to hold them all, else the histogram of their top 16 bits.
#[derive(Debug)]
enum FirstStep {
    Keys(Vec<u64>),
    Hist(Vec<u64>),
}

/// Selection key of a non-finite pair (the bits of `f64::NAN`): above every finite error's key.
const SENTINEL: u64 = 0x7FF8_0000_0000_0000;

/// The main pass: per-chunk partial aggregates (in chunk order) and the first selection step.
fn main_pass(pair: &Pair<'_>, p: &Params, k: usize, parallel: bool) -> (Vec<Partial>, FirstStep) {
    let chunks = pair.n.div_ceil(CHUNK);
    if p.quantiles && pair.n <= p.collect_max {
        // Every key, each chunk writing its own part of one buffer (nothing to merge).
        let mut keys = vec![0u64; pair.n];
        let work = |(ci, out): (usize, &mut [u64])| {
            let start = ci * CHUNK;
            main_chunk(pair, p, k, start, start + out.len(), Selection::Keys(out))
        };
        let parts = if parallel && chunks > 1 {
            keys.par_chunks_mut(CHUNK).enumerate().map(work).collect()
        } else {
            keys.chunks_mut(CHUNK).enumerate().map(work).collect()
        };
        return (parts, FirstStep::Keys(keys));
    }
    #[allow(clippy::items_after_statements, reason = "the accumulator of this fold alone")]
    struct Acc {
        parts: Vec<(usize, Partial)>,
        hist: Vec<u64>,
    }
    let fresh = || Acc { parts: Vec::new(), hist: if p.quantiles { vec![0; 1 << RADIX_BITS] } else { Vec::new() } };
    let work = |mut acc: Acc, ci: usize| {
        let start = ci * CHUNK;
        let sel = if p.quantiles { Selection::Hist(&mut acc.hist) } else { Selection::None };
        let part = main_chunk(pair, p, k, start, (start + CHUNK).min(pair.n), sel);
        acc.parts.push((ci, part));
        acc
    };
    let merge = |mut a: Acc, b: Acc| {
        a.parts.extend(b.parts);
        for (x, y) in a.hist.iter_mut().zip(&b.hist) {
            *x += y;
        }
        a
    };
    let acc = if parallel && chunks > 1 {
        (0..chunks).into_par_iter().fold(fresh, work).reduce_with(merge).unwrap_or_else(fresh)
    } else {
        (0..chunks).fold(fresh(), work)
    };
    let mut parts = acc.parts;
    parts.sort_unstable_by_key(|(ci, _)| *ci);
    (parts.into_iter().map(|(_, part)| part).collect(), FirstStep::Hist(acc.hist))
}

/// Where a chunk puts its selection keys: every key (its part of the tensor's key buffer), or the
/// histogram of their top 16 bits.
enum Selection<'a> {
    Keys(&'a mut [u64]),
    Hist(&'a mut Vec<u64>),
    None,
}

/// One chunk of the main pass: the portable build of [`chunk_kernel`], or its AVX2 build when the
/// CPU has AVX2 (the same code and lane order, so the same bits; the wider registers make it about
/// twice as fast).
fn main_chunk(pair: &Pair<'_>, p: &Params, k: usize, start: usize, end: usize, sel: Selection<'_>) -> Partial {
    let args = ChunkArgs { pair, p, k, start, end, sel };
    #[cfg(target_arch = "x86_64")]
    {
        crate::sys::dispatch_avx2(chunk_avx2, chunk_portable, args)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        chunk_portable(args)
    }
}

/// The arguments of [`chunk_kernel`].
struct ChunkArgs<'a> {
    pair: &'a Pair<'a>,
    p: &'a Params,
    k: usize,
    start: usize,
    end: usize,
    sel: Selection<'a>,
}

fn chunk_portable(a: ChunkArgs<'_>) -> Partial {
    chunk_kernel(a.pair, a.p, a.k, a.start, a.end, a.sel)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn chunk_avx2(a: ChunkArgs<'_>) -> Partial {
    chunk_kernel(a.pair, a.p, a.k, a.start, a.end, a.sel)
}

/// One chunk of the main pass. `sel` receives the selection keys or their top-16-bit histogram.
#[inline(always)]
fn chunk_kernel(pair: &Pair<'_>, p: &Params, k: usize, start: usize, end: usize, mut sel: Selection<'_>) -> Partial {
    let mut rb = [[0.0f64; LANES]; BLOCK / LANES];
    let mut cb = [[0.0f64; LANES]; BLOCK / LANES];
    let mut kb = [[0.0f64; LANES]; BLOCK / LANES];
    let (mut err, mut sim, mut range_r, mut range_c) =
        (ErrLanes::new(), SimLanes::new(), RangeLanes::new(), RangeLanes::new());
    let mut top = TopK::new(k);
    let mut non_finite_mismatches = 0u64;
    let mut exact = 0u64;
    let mut s = start;
    while s < end {
        let len = BLOCK.min(end - s);
        let groups = len.div_ceil(LANES);
        let (rg, cg, kg) = (&mut rb[..groups], &mut cb[..groups], &mut kb[..groups]);
        let (r, c) = (rg.as_flattened_mut(), cg.as_flattened_mut());
        decode(pair.r.dtype, pair.r.data, s, &mut r[..len]);
        decode(pair.c.dtype, pair.c.data, s, &mut c[..len]);
        // Pad the last group with NaN: it adds nothing but a NaN count, removed below.
        let pad = groups * LANES - len;
        r[len..].fill(f64::NAN);
        c[len..].fill(f64::NAN);
        // Several short loops over the (L1-resident) block, each with few enough accumulators to
        // stay in registers.
        range_r.run(rg);
        range_r.unpad(pad);
        let before = err.finite_pairs();
        if p.polygraphy {
            err.run::<true>(p.atol, p.rtol, rg, cg, kg);
        } else {
            err.run::<false>(p.atol, p.rtol, rg, cg, kg);
        }
        sim.run(rg, cg, &mut range_c);
        range_c.unpad(pad);
        // Selection keys: the bits of `|c − r|`, NaN's (SENTINEL) for non-finite pairs.
        let keys = &mut kg.as_flattened_mut()[..len];
        match &mut sel {
            Selection::Keys(out) => {
                for (o, x) in out[s - start..s - start + len].iter_mut().zip(keys.iter()) {
                    *o = x.to_bits();
                }
            }
            Selection::Hist(hist) => {
                for x in keys.iter() {
                    hist[(x.to_bits() >> (64 - RADIX_BITS)) as usize] += 1;
                }
            }
            Selection::None => {}
        }
        let (r, c) = (&rg.as_flattened()[..len], &cg.as_flattened()[..len]);
        if err.finite_pairs() - before < len as u64 {
            // Non-finite pairs: mismatch unless equal infinities under `inf_equal`; a mismatching
            // one ranks above every finite error, a matching one as error 0.
            for ((&r, &c), key) in r.iter().zip(c).zip(keys.iter_mut()) {
                if key.is_nan() {
                    let bad = !(p.inf_equal && r == c);
                    non_finite_mismatches += u64::from(bad);
                    *key = if bad { f64::INFINITY } else { 0.0 };
                }
            }
        }
        if p.exact_int {
            exact += exact_mismatches(pair, s, len);
        }
        // Top-k: one cheap max over the block, a scan only when something qualifies (the padding
        // has NaN keys, which `block_max` ignores, and is never scanned).
        if block_max(kg) > top.threshold() {
            for (i, &key) in kg.as_flattened()[..len].iter().enumerate() {
                if key > top.threshold() {
                    top.push(Ranked { key, flat: s + i, reference: r[i], candidate: c[i] });
                }
            }
        }
        s += len;
    }
    let mut part = Partial::from_lanes(&err, &sim, &range_r, &range_c, top);
    part.mismatches = if p.exact_int { exact } else { part.mismatches + non_finite_mismatches };
    part
}

/// Exact mismatch count of `len` integer/bool elements from `start`.
#[inline(always)]
fn exact_mismatches(pair: &Pair<'_>, start: usize, len: usize) -> u64 {
    let mut ri = [0i128; BLOCK];
    let mut ci = [0i128; BLOCK];
    decode_int(pair.r.dtype, pair.r.data, start, &mut ri[..len]);
    decode_int(pair.c.dtype, pair.c.data, start, &mut ci[..len]);
    ri[..len].iter().zip(&ci[..len]).map(|(a, b)| u64::from(a != b)).sum()
}

/// Decodes `out.len()` elements from element `start` into `f64` (bool as 0/1 by truth value).
#[inline(always)]
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
            // Through a typed buffer so `half` converts four at a time (F16C when the CPU has it).
            let mut tmp = [f16::ZERO; BLOCK];
            for (o, b) in out.chunks_mut(BLOCK).zip(bytes.as_chunks::<2>().0.chunks(BLOCK)) {
                let t = &mut tmp[..o.len()];
                for (x, b) in t.iter_mut().zip(b) {
                    *x = f16::from_le_bytes(*b);
                }
                t.convert_to_f64_slice(o);
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
#[inline(always)]
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
    let ref_range = t.range_r.finish(n, pair.r.dtype.is_float());
    let cand_range = t.range_c.finish(n, pair.c.dtype.is_float());
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
        nan_candidate: cand_range.nan,
        inf_reference: ref_range.inf,
        inf_candidate: cand_range.inf,
        reference_min: ref_range.min,
        reference_max: ref_range.max,
        reference_abs_max: ref_range.abs_max,
        candidate_min: cand_range.min,
        candidate_max: cand_range.max,
        fp16_overflow_reference: ref_range.fp16_overflow,
        fp16_subnormal_reference: ref_range.fp16_subnormal,
        fp16_underflow_reference: ref_range.fp16_underflow,
        deviation_ratio_10pct: or_nan(t.deviating as f64 / nf),
        worst: elements.first().cloned(),
        top_k: elements.into_iter().take(top_k).collect(),
        introduced_max_abs: None,
        introduced_rel_l2: None,
        introduced_mismatches: None,
        introduced_nonfinite: None,
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
fn abs_quantiles(pair: &Pair<'_>, p: &Params, finite_pairs: u64, first: FirstStep, parallel: bool) -> (f64, f64) {
    if finite_pairs == 0 {
        return (f64::NAN, f64::NAN);
    }
    let n = finite_pairs;
    let (m_lo, m_hi) = ((n - 1) / 2, n / 2);
    let h = (n - 1) as f64 * 0.99;
    let q_lo = (h.floor() as u64).min(n - 1);
    let q_hi = (q_lo + 1).min(n - 1);
    let t = h - q_lo as f64;
    let v = select_ranks(pair, first, &[m_lo, m_hi, q_lo, q_hi], p.collect_max, parallel);
    let median = if m_lo == m_hi { v[0] } else { f64::midpoint(v[0], v[1]) };
    (median, lerp(v[2], v[3], t))
}

/// numpy's `_lerp` (as used by `percentile` with the linear method).
fn lerp(a: f64, b: f64, t: f64) -> f64 {
    let diff = b - a;
    if t >= 0.5 { b - diff * (1.0 - t) } else { a + diff * t }
}

/// The keys sharing their top `known` bits (`prefix`), `known` in 16, 32, 48 (64: one value).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Bucket {
    prefix: u64,
    known: u32,
}

impl Bucket {
    #[inline]
    fn contains(self, key: u64) -> bool {
        key >> (64 - self.known) == self.prefix
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

/// A rank being searched: it lies in `bucket`, at `rank` among its `count` keys.
#[derive(Debug, Clone, Copy)]
struct Probe {
    bucket: Bucket,
    rank: u64,
    count: u64,
    found: Option<u64>,
}

impl Probe {
    /// Moves into the sub-bucket (next 16 bits) holding the rank, given the bucket's histogram.
    fn descend(&mut self, hist: &[u64]) {
        let mut below = 0u64;
        for (digit, &h) in hist.iter().enumerate() {
            if self.rank < below + h {
                self.bucket = Bucket {
                    prefix: (self.bucket.prefix << RADIX_BITS) | digit as u64,
                    known: self.bucket.known + RADIX_BITS,
                };
                self.rank -= below;
                self.count = h;
                return;
            }
            below += h;
        }
        self.found = Some(f64::NAN.to_bits()); // unreachable: the ranks are below the key count
    }
}

/// The values of the given ranks (0-based, ascending order) among the finite-pair absolute errors,
/// starting from the main pass's first step.
fn select_ranks(pair: &Pair<'_>, first: FirstStep, ranks: &[u64], collect_max: usize, parallel: bool) -> Vec<f64> {
    let mut probes: Vec<Probe> = ranks
        .iter()
        .map(|&rank| Probe { bucket: Bucket { prefix: 0, known: 0 }, rank, count: 0, found: None })
        .collect();
    match first {
        FirstStep::Keys(mut keys) => {
            // Sentinels (non-finite pairs) sort above every finite key, so a rank among the finite
            // pairs is the same rank among all keys.
            let found = select_ascending(&mut keys, ranks);
            for (pr, f) in probes.iter_mut().zip(found) {
                pr.found = Some(f);
            }
        }
        FirstStep::Hist(hist) => {
            for pr in &mut probes {
                pr.descend(&hist);
            }
        }
    }
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
                // Massive ties (e.g. most errors exactly 0) end here.
                pr.found = Some(scan.min);
            } else if scan.collect {
                pr.found = Some(select_ascending(&mut scan.keys, &[pr.rank])[0]);
            } else {
                pr.descend(&scan.hist);
            }
        }
    }
    probes.iter().map(|pr| f64::from_bits(pr.found.unwrap_or(f64::NAN.to_bits()))).collect()
}

/// The keys of the given ranks (ascending): each selection works on what lies above the previous
/// rank only, and a rank right after the previous one is the minimum of that part. `NAN`'s bits
/// for a rank beyond the keys.
fn select_ascending(keys: &mut [u64], ranks: &[u64]) -> Vec<u64> {
    let mut out = Vec::with_capacity(ranks.len());
    // Everything below `from` is at most `last`, everything from `from` on at least `last`.
    let (mut from, mut last): (usize, Option<(usize, u64)>) = (0, None);
    for &rank in ranks {
        let rank = rank as usize;
        let value = match last {
            _ if rank >= keys.len() => f64::NAN.to_bits(),
            Some((r, v)) if r == rank => v,
            Some((r, _)) if r + 1 == rank => {
                let tail = &keys[from..];
                let (mut i, mut v) = (0, tail[0]);
                for (j, &k) in tail.iter().enumerate() {
                    if k < v {
                        (i, v) = (j, k);
                    }
                }
                keys.swap(from, from + i);
                from += 1;
                v
            }
            _ if rank >= from => {
                let v = *keys[from..].select_nth_unstable(rank - from).1;
                from = rank + 1;
                v
            }
            _ => {
                let v = *keys.select_nth_unstable(rank).1;
                from = rank + 1;
                v
            }
        };
        last = Some((rank, value));
        out.push(value);
    }
    out
}

/// One pass over both tensors feeding the selection keys to the scans.
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
            for ((&r, &c), key) in rb[..len].iter().zip(&cb[..len]).zip(&mut kb) {
                *key = if both_finite(r, c) { (c - r).abs().to_bits() } else { SENTINEL };
            }
            for scan in &mut acc {
                scan.add(&kb[..len]);
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

#[cfg(test)]
mod tests {
    use super::*;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    /// splitmix64, for reproducible test data.
    struct Rng(u64);

    impl Rng {
        fn next_u64(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }
        fn unit(&mut self) -> f64 {
            (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    fn f32_bytes(v: &[f32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }
    fn f64_bytes(v: &[f64]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }
    fn f16_bytes(v: &[f32]) -> Vec<u8> {
        v.iter().flat_map(|x| f16::from_f32(*x).to_le_bytes()).collect()
    }
    fn i64_bytes(v: &[i64]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }
    fn i32_bytes(v: &[i32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    fn compared(o: Outcome) -> Result<(Metrics, bool), String> {
        match o {
            Outcome::Compared { metrics, pass } => Ok((metrics, pass)),
            Outcome::Skipped { reason } => Err(format!("unexpectedly skipped: {reason}")),
        }
    }

    /// Compare two f64 vectors of one shape.
    fn cmp64(r: &[f64], c: &[f64], tol: &Tolerance, k: usize) -> Result<(Metrics, bool), String> {
        let shape = [r.len()];
        let (rb, cb) = (f64_bytes(r), f64_bytes(c));
        compared(compare(
            TensorRef::new(DType::Float64, &shape, &rb),
            TensorRef::new(DType::Float64, &shape, &cb),
            tol,
            k,
        ))
    }

    fn close(a: f64, b: f64, rel: f64) -> bool {
        a == b || (a.is_nan() && b.is_nan()) || (a - b).abs() <= rel * a.abs().max(b.abs())
    }

    fn tol(rule: Rule, atol: f64, rtol: f64, inf_equal: bool) -> Tolerance {
        Tolerance { rule, atol, rtol, inf_equal }
    }

    #[test]
    fn rules_table() -> TestResult {
        use Rule::{Allclose as A, Polygraphy as P};
        let (nan, inf) = (f64::NAN, f64::INFINITY);
        #[rustfmt::skip]
        let cases: &[(Rule, f64, f64, bool, f64, f64, bool)] = &[
            // rule, atol, rtol, inf_equal, reference, candidate, mismatch
            (A, 1e-5, 0.0, false, 1.0, 1.0 + 1e-6, false),
            (A, 1e-5, 0.0, false, 1.0, 1.0001, true),
            (A, 0.0, 1e-5, false, 1000.0, 1000.005, false),
            (A, 0.0, 1e-5, false, 1000.0, 1000.02, true),
            // allclose tolerates atol + rtol·|r|, polygraphy only max(atol, rtol·|r|)
            (A, 1e-3, 1e-3, false, 10.0, 10.0105, false),
            (P, 1e-3, 1e-3, false, 10.0, 10.0105, true),
            (P, 1e-3, 1e-3, false, 10.0, 10.0095, false),
            (P, 1e-3, 1e-3, false, 0.1, 0.1009, false),
            (P, 1e-3, 1e-3, false, 0.1, 0.1011, true),
            // zero reference: rel divides by 2.22e-16
            (P, 0.0, 1e-5, false, 0.0, 1e-20, true),
            (P, 0.0, 1e-3, false, 0.0, 1e-20, false),
            (P, 1e-5, 1e-5, false, 0.0, 1e-6, false),
            (A, 0.0, 1.0, false, 0.0, 1e-30, true),
            (A, 1e-5, 1e-5, false, 0.0, 0.0, false),
            (P, 0.0, 0.0, false, 0.0, 0.0, false),
            (P, 0.0, 0.0, false, -0.0, 0.0, false),
            // NaN always mismatches
            (A, 1e9, 1e9, true, nan, nan, true),
            (P, 1e9, 1e9, true, nan, nan, true),
            (A, 1e9, 1e9, true, 1.0, nan, true),
            (P, 1e9, 1e9, true, nan, 1.0, true),
            // infinities
            (A, 1e9, 1e9, false, inf, inf, true),
            (P, 1e9, 1e9, false, -inf, -inf, true),
            (A, 0.0, 0.0, true, inf, inf, false),
            (P, 0.0, 0.0, true, -inf, -inf, false),
            (A, 1e9, 1e9, true, inf, -inf, true),
            (P, 1e9, 1e9, true, inf, 1e300, true),
            (A, 1e300, 1e9, true, 1.0, inf, true),
            (P, 1e300, 1e9, true, -inf, 0.0, true),
        ];
        for &(rule, atol, rtol, inf_equal, r, c, expect) in cases {
            let t = tol(rule, atol, rtol, inf_equal);
            assert_eq!(t.mismatch(r, c), expect, "scalar rule {t:?} r={r} c={c}");
            let (m, pass) = cmp64(&[r], &[c], &t, 1)?;
            assert_eq!(m.mismatches, u64::from(expect), "kernel {t:?} r={r} c={c}");
            assert_eq!(pass, !expect);
        }
        Ok(())
    }

    #[test]
    fn nan_fails_and_is_excluded_from_statistics() -> TestResult {
        let shape = [4];
        let r = f32_bytes(&[1.0, 2.0, f32::NAN, 4.0]);
        let c = f32_bytes(&[1.0, f32::NAN, 3.0, 4.5]);
        let (rt, ct) = (TensorRef::new(DType::Float32, &shape, &r), TensorRef::new(DType::Float32, &shape, &c));
        let (m, pass) = compared(compare(rt, ct, &Tolerance::default(), 4))?;
        assert!(!pass);
        assert_eq!((m.mismatches, m.total), (3, 4));
        assert_eq!((m.nan_reference, m.nan_candidate), (1, 1));
        assert_eq!((m.max_abs, m.mean_abs, m.median_abs), (0.5, 0.25, 0.25));
        assert_eq!(m.reference_max, 4.0);
        assert_eq!(m.candidate_max, 4.5);
        let flats: Vec<usize> = m.top_k.iter().map(|e| e.flat).collect();
        assert_eq!(flats, [1, 2, 3, 0]);
        let worst = m.worst.ok_or("no worst")?;
        assert!(worst.abs.is_nan() && worst.candidate.is_nan());
        // Even with huge tolerances a NaN fails the tensor.
        let (m, pass) = compared(compare(rt, ct, &tol(Rule::Polygraphy, 1e9, 1e9, true), 4))?;
        assert!(!pass);
        assert_eq!(m.mismatches, 2);
        Ok(())
    }

    #[test]
    fn infinities_on_both_sides() -> TestResult {
        let inf = f64::INFINITY;
        let r = [inf, -inf, inf, 1.0, 5.0];
        let c = [inf, -inf, -inf, inf, 5.0];
        let (m, _) = cmp64(&r, &c, &tol(Rule::Allclose, 1e-5, 1e-5, false), 5)?;
        assert_eq!(m.mismatches, 4);
        let (m, pass) = cmp64(&r, &c, &tol(Rule::Allclose, 1e-5, 1e-5, true), 5)?;
        assert!(!pass);
        assert_eq!(m.mismatches, 2);
        assert_eq!((m.inf_reference, m.inf_candidate), (3, 4));
        assert_eq!((m.reference_min, m.reference_max, m.reference_abs_max), (1.0, 5.0, 5.0));
        assert_eq!((m.candidate_min, m.candidate_max), (5.0, 5.0));
        assert_eq!((m.max_abs, m.cosine), (0.0, 1.0));
        let flats: Vec<usize> = m.top_k.iter().map(|e| e.flat).collect();
        assert_eq!(flats, [2, 3, 0, 1, 4]);
        assert_eq!(m.top_k[0].abs, inf);
        assert_eq!(m.top_k[2].abs, 0.0, "equal infinities under inf_equal have error 0");
        Ok(())
    }

    #[test]
    fn zero_tensors_define_cosine_rel_l2_snr() -> TestResult {
        let t = Tolerance::default();
        let (m, pass) = cmp64(&[0.0, 0.0], &[0.0, 0.0], &t, 1)?;
        assert!(pass);
        assert_eq!((m.cosine, m.rel_l2, m.snr_db, m.max_rel), (1.0, 0.0, f64::INFINITY, 0.0));
        let (m, pass) = cmp64(&[0.0, 0.0], &[0.0, 1e-3], &t, 1)?;
        assert!(!pass);
        assert_eq!((m.cosine, m.rel_l2, m.snr_db), (0.0, f64::INFINITY, f64::NEG_INFINITY));
        assert_eq!(m.max_rel, 1e-3 / REL_ZERO_GUARD);
        assert_eq!(m.deviation_ratio_10pct, 0.5);
        let (m, _) = cmp64(&[3.0, 4.0], &[0.0, 0.0], &t, 1)?;
        assert_eq!((m.cosine, m.rel_l2, m.snr_db, m.max_rel), (0.0, 1.0, 0.0, 1.0));
        let (m, _) = cmp64(&[3.0, 0.0], &[-2.0, 0.0], &t, 1)?;
        assert_eq!(m.cosine, -1.0);
        Ok(())
    }

    #[test]
    fn fp16_range_counts() -> TestResult {
        let vals = [70000.0f32, -65504.0, 65520.0, 1e-5, -3e-8, 6.2e-5, 0.0, f32::INFINITY, f32::NAN, 6.0e-8];
        let shape = [vals.len()];
        let bytes = f32_bytes(&vals);
        let s = reference_stats(TensorRef::new(DType::Float32, &shape, &bytes));
        assert_eq!((s.total, s.nan, s.inf), (10, 1, 1));
        assert_eq!((s.min, s.max, s.abs_max), (-65504.0, 70000.0, 70000.0));
        assert_eq!((s.fp16_overflow, s.fp16_subnormal, s.fp16_underflow), (2, 3, 1));
        // The same numbers appear in the metrics.
        let (m, _) = compared(compare(
            TensorRef::new(DType::Float32, &shape, &bytes),
            TensorRef::new(DType::Float32, &shape, &bytes),
            &Tolerance::default(),
            1,
        ))?;
        assert_eq!((m.fp16_overflow_reference, m.fp16_subnormal_reference, m.fp16_underflow_reference), (2, 3, 1));
        assert_eq!((m.reference_min, m.reference_max, m.reference_abs_max), (s.min, s.max, s.abs_max));
        // Integer tensors are never converted to FP16.
        let ints = i64_bytes(&[100_000, 0]);
        let s = reference_stats(TensorRef::new(DType::Int64, &[2], &ints));
        assert_eq!((s.max, s.fp16_overflow), (100_000.0, 0));
        // Empty: NaN ranges.
        let s = reference_stats(TensorRef::new(DType::Float32, &[0], &[]));
        assert!(s.min.is_nan() && s.total == 0);
        Ok(())
    }

    #[test]
    fn f16_candidate_against_f32_reference() -> TestResult {
        let vals = [1.0f32, 0.1, 1000.1, -3.0, 65504.0];
        let shape = [5];
        let (rb, cb) = (f32_bytes(&vals), f16_bytes(&vals));
        let (rt, ct) = (TensorRef::new(DType::Float32, &shape, &rb), TensorRef::new(DType::Float16, &shape, &cb));
        let (m, pass) = compared(compare(rt, ct, &tol(Rule::Allclose, 0.0, 1e-3, false), 5))?;
        assert!(pass);
        let expect_max =
            vals.iter().map(|&v| (f64::from(f16::from_f32(v).to_f32()) - f64::from(v)).abs()).fold(0.0, f64::max);
        assert_eq!(m.max_abs, expect_max);
        assert!(m.max_abs > 0.0);
        let (m, pass) = compared(compare(rt, ct, &tol(Rule::Allclose, 0.0, 1e-5, false), 5))?;
        assert!(!pass);
        assert_eq!(m.mismatches, 2, "0.1 and 1000.1 are not representable in FP16");
        Ok(())
    }

    #[test]
    fn bool_and_integers_compare_exactly() -> TestResult {
        let (rb, cb) = ([1u8, 0, 1, 1], [1u8, 1, 2, 0]); // 2 is "true" too
        let shape = [4];
        let (m, pass) = compared(compare(
            TensorRef::new(DType::Bool, &shape, &rb),
            TensorRef::new(DType::Bool, &shape, &cb),
            &Tolerance::default(),
            2,
        ))?;
        assert!(!pass);
        assert_eq!((m.mismatches, m.max_abs), (2, 1.0));
        assert_eq!(m.top_k.iter().map(|e| e.flat).collect::<Vec<_>>(), [1, 3]);

        // 2^60 and 2^60 + 1 are the same f64 but different integers.
        let shape = [3];
        let (rb, cb) = (i64_bytes(&[1 << 60, 5, -7]), i64_bytes(&[(1 << 60) + 1, 5, -7]));
        let (rt, ct) = (TensorRef::new(DType::Int64, &shape, &rb), TensorRef::new(DType::Int64, &shape, &cb));
        let (m, pass) = compared(compare(rt, ct, &tol(Rule::Allclose, 1e9, 1e9, false), 1))?;
        assert!(!pass, "tolerances do not apply to integers");
        assert_eq!(m.mismatches, 1);
        let (m, _) = compared(compare_exact(rt, ct, 1))?;
        assert_eq!(m.mismatches, 1);

        // int32 candidate against an int64 reference (TensorRT's usual narrowing).
        let ci = i32_bytes(&[1, 5, -8]);
        let (m, pass) = compared(compare(rt, TensorRef::new(DType::Int32, &shape, &ci), &Tolerance::default(), 1))?;
        assert!(!pass);
        assert_eq!(m.mismatches, 2);
        let worst = m.worst.ok_or("no worst")?;
        assert_eq!((worst.flat, worst.abs), (0, 1_152_921_504_606_846_975.0));

        // compare_exact on floats: exact equality, equal infinities match.
        let (m, _) = cmp64(&[1.0, f64::INFINITY], &[1.0, f64::INFINITY], &Tolerance::EXACT, 1)?;
        assert_eq!(m.mismatches, 0);
        let (rb, cb) = (f64_bytes(&[1.0, 2.0]), f64_bytes(&[1.0, 2.0 + 1e-15]));
        let (m, _) = compared(compare_exact(
            TensorRef::new(DType::Float64, &[2], &rb),
            TensorRef::new(DType::Float64, &[2], &cb),
            1,
        ))?;
        assert_eq!(m.mismatches, 1);
        Ok(())
    }

    /// numpy's median and percentile(.., 99) of a sorted vector.
    fn sorted_quantiles(mut v: Vec<f64>) -> (f64, f64) {
        if v.is_empty() {
            return (f64::NAN, f64::NAN);
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 { v[n / 2] } else { f64::midpoint(v[n / 2 - 1], v[n / 2]) };
        let h = (n - 1) as f64 * 0.99;
        let lo = h.floor() as usize;
        let hi = (lo + 1).min(n - 1);
        (median, lerp(v[lo], v[hi], h - lo as f64))
    }

    fn finite_abs(r: &[f32], c: &[f32]) -> Vec<f64> {
        r.iter()
            .zip(c)
            .filter(|(a, b)| a.is_finite() && b.is_finite())
            .map(|(&a, &b)| (f64::from(b) - f64::from(a)).abs())
            .collect()
    }

    /// Random pairs: `zero_frac` of the errors exactly zero, `tie_frac` exactly 0.5, some NaN.
    fn random_pairs(n: usize, seed: u64, zero_frac: f64, tie_frac: f64) -> (Vec<f32>, Vec<f32>) {
        let mut rng = Rng(seed);
        let mut r = Vec::with_capacity(n);
        let mut c = Vec::with_capacity(n);
        for _ in 0..n {
            let v = ((rng.unit() - 0.5) * 10f64.powf(rng.unit() * 6.0 - 3.0)) as f32;
            let u = rng.unit();
            let w = if u < zero_frac {
                v
            } else if u < zero_frac + tie_frac {
                v.round() + 0.5
            } else if u > 0.999 {
                f32::NAN
            } else {
                (f64::from(v) * (1.0 + (rng.unit() - 0.5) * 1e-2)) as f32
            };
            let v = if u < zero_frac + tie_frac { v.round() } else { v };
            r.push(v);
            c.push(w);
        }
        (r, c)
    }

    #[test]
    fn median_and_p99_match_a_sorted_reference() -> TestResult {
        for (n, zero_frac, tie_frac) in [
            (1, 0.0, 0.0),
            (2, 0.0, 0.0),
            (3, 0.0, 0.0),
            (10, 0.5, 0.0),
            (1000, 0.0, 0.0),
            (1001, 0.2, 0.2),
            (70_001, 0.0, 0.0),
            (70_000, 0.6, 0.3),
            (5000, 0.0, 0.95),
        ] {
            let (r, c) = random_pairs(n, n as u64, zero_frac, tie_frac);
            let expect = sorted_quantiles(finite_abs(&r, &c));
            let shape = [n];
            let (rb, cb) = (f32_bytes(&r), f32_bytes(&c));
            let (rt, ct) = (TensorRef::new(DType::Float32, &shape, &rb), TensorRef::new(DType::Float32, &shape, &cb));
            // Default (collect) path, then forced histogram passes with tiny collect limits.
            for collect_max in [EXACT_COLLECT_MAX, 64, 1] {
                let mut p = Params::new(&Tolerance::default(), false);
                p.collect_max = collect_max;
                for parallel in [false, true] {
                    let (m, _) = compared(compare_impl(rt, ct, &p, 1, parallel))?;
                    let got = (m.median_abs, m.p99_abs);
                    assert!(
                        got.0.to_bits() == expect.0.to_bits() && got.1.to_bits() == expect.1.to_bits(),
                        "n={n} zeros={zero_frac} ties={tie_frac} collect_max={collect_max}: {got:?} != {expect:?}"
                    );
                }
            }
        }
        Ok(())
    }

    #[test]
    fn top_k_is_ordered_with_ties_to_the_lower_index() -> TestResult {
        let r = [0.0; 10];
        let c = [0.5, 3.0, 1.0, 3.0, 0.2, 2.0, 0.0, 0.0, 1.0, 0.0];
        let (m, _) = cmp64(&r, &c, &Tolerance::default(), 4)?;
        let got: Vec<(usize, f64)> = m.top_k.iter().map(|e| (e.flat, e.abs)).collect();
        assert_eq!(got, [(1, 3.0), (3, 3.0), (5, 2.0), (2, 1.0)]);
        let (m, _) = cmp64(&r, &c, &Tolerance::default(), 0)?;
        assert!(m.top_k.is_empty());
        assert_eq!(m.worst.map(|w| w.flat), Some(1));
        let (m, _) = cmp64(&r, &c, &Tolerance::default(), 100)?;
        assert_eq!(m.top_k.len(), 10);
        // Ties across chunk boundaries (parallel): the lowest flat index wins.
        let n = 5 * CHUNK + 17;
        let mut c = vec![0.0f64; n];
        for &i in &[4 * CHUNK + 3, CHUNK + 1, 3 * CHUNK, 2] {
            c[i] = 7.0;
        }
        c[3 * CHUNK + 9] = 8.0;
        let (m, _) = cmp64(&vec![0.0; n], &c, &Tolerance::default(), 4)?;
        let got: Vec<usize> = m.top_k.iter().map(|e| e.flat).collect();
        assert_eq!(got, [3 * CHUNK + 9, 2, CHUNK + 1, 3 * CHUNK]);
        Ok(())
    }

    #[test]
    fn worst_has_coordinates_in_a_3d_shape() -> TestResult {
        let shape = [3, 4, 5];
        let r = vec![1.0f32; 60];
        let mut c = r.clone();
        c[2 * 20 + 3 * 5 + 1] = 1.5;
        c[7] = 1.25;
        let (rb, cb) = (f32_bytes(&r), f32_bytes(&c));
        let (m, _) = compared(compare(
            TensorRef::new(DType::Float32, &shape, &rb),
            TensorRef::new(DType::Float32, &shape, &cb),
            &Tolerance::default(),
            2,
        ))?;
        let worst = m.worst.ok_or("no worst")?;
        assert_eq!((worst.index.as_slice(), worst.flat, worst.abs), (&[2, 3, 1][..], 56, 0.5));
        assert_eq!((worst.reference, worst.candidate), (1.0, 1.5));
        assert_eq!(m.top_k[1].index, [0, 1, 2]);
        // A scalar has empty coordinates.
        let (m, _) = compared(compare(
            TensorRef::new(DType::Float32, &[], &rb[..4]),
            TensorRef::new(DType::Float32, &[], &cb[..4]),
            &Tolerance::default(),
            2,
        ))?;
        assert_eq!(m.worst.map(|w| w.index), Some(vec![]));
        Ok(())
    }

    #[test]
    fn parallel_equals_sequential_and_a_naive_loop() -> TestResult {
        let n = 4 * CHUNK + 1234;
        let (mut r, mut c) = random_pairs(n, 7, 0.1, 0.0);
        r[100] = f32::INFINITY;
        c[100] = f32::INFINITY;
        c[CHUNK + 5] = f32::NEG_INFINITY;
        r[3 * CHUNK] = 0.0;
        let shape = [n];
        let (rb, cb) = (f32_bytes(&r), f32_bytes(&c));
        let (rt, ct) = (TensorRef::new(DType::Float32, &shape, &rb), TensorRef::new(DType::Float32, &shape, &cb));
        for t in [tol(Rule::Allclose, 1e-4, 1e-3, true), tol(Rule::Polygraphy, 1e-4, 1e-3, false)] {
            let p = Params::new(&t, false);
            let (seq, _) = compared(compare_impl(rt, ct, &p, 7, false))?;
            let (par, _) = compared(compare_impl(rt, ct, &p, 7, true))?;
            assert_eq!(serde_json::to_string(&seq)?, serde_json::to_string(&par)?);

            // Naive element loop.
            let (mut fin, mut mis, mut nan_c, mut dev) = (0u64, 0u64, 0u64, 0u64);
            let (mut sa, mut sr, mut ma, mut mr, mut dot, mut rr, mut cc, mut dd) =
                (0.0, 0.0, 0.0f64, 0.0f64, 0.0, 0.0, 0.0, 0.0);
            for (&a, &b) in r.iter().zip(&c) {
                let (a, b) = (f64::from(a), f64::from(b));
                mis += u64::from(t.mismatch(a, b));
                nan_c += u64::from(b.is_nan());
                if a.is_finite() && b.is_finite() {
                    let e = (b - a).abs();
                    let rel = relative_error(a, b);
                    fin += 1;
                    sa += e;
                    sr += rel;
                    ma = ma.max(e);
                    mr = mr.max(rel);
                    dev += u64::from(rel > 0.1);
                    dot += a * b;
                    rr += a * a;
                    cc += b * b;
                    dd += e * e;
                }
            }
            let nf = fin as f64;
            assert_eq!((seq.mismatches, seq.nan_candidate, seq.total), (mis, nan_c, n as u64));
            assert_eq!((seq.max_abs, seq.max_rel), (ma, mr));
            assert_eq!(seq.deviation_ratio_10pct, dev as f64 / nf);
            for (got, want, what) in [
                (seq.mean_abs, sa / nf, "mean_abs"),
                (seq.mean_rel, sr / nf, "mean_rel"),
                (seq.cosine, dot / (rr.sqrt() * cc.sqrt()), "cosine"),
                (seq.rel_l2, dd.sqrt() / rr.sqrt(), "rel_l2"),
                (seq.snr_db, 10.0 * (rr / dd).log10(), "snr_db"),
            ] {
                assert!(close(got, want, 1e-10), "{what}: {got} vs {want}");
            }
        }
        Ok(())
    }

    fn read_f32(path: &std::path::Path) -> Result<Vec<u8>, Box<dyn std::error::Error>> {
        Ok(std::fs::read(path)?)
    }

    #[test]
    fn agrees_with_numpy() -> TestResult {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/compare");
        let expected: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json"))?)?;
        let num = |v: &serde_json::Value, key: &str| -> Result<f64, String> {
            v.get(key).and_then(serde_json::Value::as_f64).ok_or_else(|| format!("expected.json: no number '{key}'"))
        };
        let shape: Vec<usize> = serde_json::from_value(expected["shape"].clone())?;
        let (atol, rtol) = (num(&expected, "atol")?, num(&expected, "rtol")?);
        let rb = read_f32(&dir.join("reference.f32.bin"))?;
        let reference = TensorRef::new(DType::Float32, &shape, &rb);

        let er = &expected["reference"];
        let s = reference_stats(reference);
        assert_eq!((s.min, s.max, s.abs_max), (num(er, "min")?, num(er, "max")?, num(er, "abs_max")?));
        assert_eq!(
            (s.fp16_overflow as f64, s.fp16_subnormal as f64, s.fp16_underflow as f64),
            (num(er, "fp16_overflow")?, num(er, "fp16_subnormal")?, num(er, "fp16_underflow")?)
        );

        for (case, file, dtype) in
            [("f32", "candidate.f32.bin", DType::Float32), ("f16", "candidate.f16.bin", DType::Float16)]
        {
            let e = &expected["cases"][case];
            let cb = read_f32(&dir.join(file))?;
            let candidate = TensorRef::new(dtype, &shape, &cb);
            for (rule, key) in [(Rule::Allclose, "allclose_mismatches"), (Rule::Polygraphy, "polygraphy_mismatches")] {
                let (m, pass) = compared(compare(reference, candidate, &tol(rule, atol, rtol, false), 3))?;
                assert_eq!(m.mismatches as f64, num(e, key)?, "{case} {rule}");
                assert!(!pass);
                for (got, field) in [
                    (m.max_abs, "max_abs"),
                    (m.mean_abs, "mean_abs"),
                    (m.median_abs, "median_abs"),
                    (m.p99_abs, "p99_abs"),
                    (m.max_rel, "max_rel"),
                    (m.mean_rel, "mean_rel"),
                    (m.cosine, "cosine"),
                    (m.rel_l2, "rel_l2"),
                    (m.snr_db, "snr_db"),
                    (m.deviation_ratio_10pct, "deviation_ratio_10pct"),
                    (m.candidate_min, "candidate_min"),
                    (m.candidate_max, "candidate_max"),
                    (m.inf_candidate as f64, "inf_candidate"),
                ] {
                    let want = num(e, field)?;
                    assert!(close(got, want, 1e-12), "{case} {field}: {got} vs numpy {want}");
                }
                let worst = m.worst.ok_or("no worst")?;
                assert_eq!(worst.flat as f64, num(e, "worst_flat")?);
                let index: Vec<usize> = serde_json::from_value(e["worst_index"].clone())?;
                assert_eq!(worst.index, index);
            }
        }
        Ok(())
    }

    #[test]
    fn json_writes_non_finite_as_strings_and_round_trips() -> TestResult {
        let (m, _) = cmp64(&[0.0, 0.0], &[0.0, 1e-3], &Tolerance::default(), 2)?;
        let (empty, _) = cmp64(&[f64::NAN], &[1.0], &Tolerance::default(), 2)?;
        for m in [m, empty] {
            let text = serde_json::to_string(&m)?;
            let value: serde_json::Value = serde_json::from_str(&text)?; // a standard parser accepts it
            assert!(value.is_object());
            let back: Metrics = serde_json::from_str(&text)?;
            assert_eq!(serde_json::to_string(&back)?, text);
            for (a, b) in [(back.max_rel, m.max_rel), (back.snr_db, m.snr_db), (back.cosine, m.cosine)] {
                assert_eq!(a.to_bits(), b.to_bits());
            }
        }
        let (m, _) = cmp64(&[0.0, 0.0], &[0.0, 1e-3], &Tolerance::default(), 2)?;
        let v = serde_json::to_value(&m)?;
        assert_eq!((v["snr_db"].as_str(), v["rel_l2"].as_str()), (Some("-inf"), Some("inf")));
        assert_eq!(v["cosine"].as_f64(), Some(0.0));
        let (m, _) = cmp64(&[f64::NAN], &[1.0], &Tolerance::default(), 2)?;
        assert_eq!(serde_json::to_value(&m)?["max_abs"].as_str(), Some("nan"));
        assert_eq!(json_f64::parse("-Infinity"), Some(f64::NEG_INFINITY));
        assert!(json_f64::parse("NaN").is_some_and(f64::is_nan));
        assert_eq!(json_f64::parse("1.5"), Some(1.5));
        // The outcome carries a status tag.
        let o = Outcome::Compared { metrics: m, pass: false };
        let v = serde_json::to_value(&o)?;
        assert_eq!(v["status"].as_str(), Some("compared"));
        assert!(!serde_json::from_value::<Outcome>(v)?.passed());
        let t: Tolerance = serde_json::from_str(r#"{"rule":"polygraphy","atol":0.001,"rtol":0.01}"#)?;
        assert_eq!(t, tol(Rule::Polygraphy, 0.001, 0.01, false));
        assert_eq!("Polygraphy".parse::<Rule>()?, Rule::Polygraphy);
        Ok(())
    }

    #[test]
    fn shape_or_size_mismatch_is_skipped() {
        let b = f32_bytes(&[1.0; 6]);
        let o = compare(
            TensorRef::new(DType::Float32, &[2, 3], &b),
            TensorRef::new(DType::Float16, &[3, 2], &b[..12]),
            &Tolerance::default(),
            1,
        );
        match &o {
            Outcome::Skipped { reason } => {
                assert_eq!(reason, "shape mismatch: reference float32 2x3, candidate float16 3x2");
            }
            Outcome::Compared { .. } => panic!("compared mismatched shapes"),
        }
        assert!(!o.passed() && o.metrics().is_none());
        let o = compare(
            TensorRef::new(DType::Float32, &[2, 3], &b),
            TensorRef::new(DType::Float32, &[2, 3], &b[..20]),
            &Tolerance::default(),
            1,
        );
        assert!(
            matches!(&o, Outcome::Skipped { reason } if reason.contains("candidate") && reason.contains("20 bytes")),
            "{o:?}"
        );
    }

    #[test]
    fn empty_tensor_passes_with_undefined_statistics() -> TestResult {
        let (m, pass) = compared(compare(
            TensorRef::new(DType::Float32, &[0, 3], &[]),
            TensorRef::new(DType::Float16, &[0, 3], &[]),
            &Tolerance::default(),
            3,
        ))?;
        assert!(pass);
        assert_eq!((m.total, m.mismatches, m.mismatch_ratio), (0, 0, 0.0));
        assert!(m.max_abs.is_nan() && m.median_abs.is_nan() && m.cosine.is_nan() && m.reference_min.is_nan());
        assert!(m.worst.is_none() && m.top_k.is_empty());
        Ok(())
    }
}
