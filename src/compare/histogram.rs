//! Distribution of the absolute error `|c − r|` of one tensor pair, in decade (log10) bins.
//!
//! Used by the inspector's detail pane: a tensor whose errors sit in one decade near FP16's rounding
//! step looks very different from one with a long tail or a block of non-finite values. Exact zeros
//! and non-finite pairs get their own counts instead of a bin.

use serde::{Deserialize, Serialize};

use crate::tensor::{DType, element_f64};

/// Lowest decade: errors below `10^LOWEST_DECADE` are counted in the first bin.
pub const LOWEST_DECADE: i32 = -10;
/// Highest decade: errors at or above `10^HIGHEST_DECADE` are counted in the last bin.
pub const HIGHEST_DECADE: i32 = 6;

/// Counts of `|c − r|` per decade.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorHistogram {
    /// `bins[i]` counts errors in `[10^(LOWEST_DECADE+i), 10^(LOWEST_DECADE+i+1))`; the first bin also
    /// holds smaller non-zero errors, the last one larger finite errors.
    pub bins: Vec<u64>,
    /// Pairs that are exactly equal.
    pub zero: u64,
    /// Pairs where either side is NaN or infinite (equal infinities included).
    pub nonfinite: u64,
}

impl ErrorHistogram {
    /// Decade exponent of bin `i` (its lower edge is `10^exp`).
    #[must_use]
    pub fn decade(i: usize) -> i32 {
        LOWEST_DECADE + i as i32
    }

    /// Every pair counted.
    #[must_use]
    pub fn total(&self) -> u64 {
        self.bins.iter().sum::<u64>() + self.zero + self.nonfinite
    }
}

/// Histogram of `|c − r|` over two equally long raw tensors of (possibly different) float or
/// integer dtypes. Returns `None` when the lengths differ.
#[must_use]
pub fn abs_error_histogram(
    ref_dtype: DType,
    reference: &[u8],
    cand_dtype: DType,
    candidate: &[u8],
) -> Option<ErrorHistogram> {
    let n = reference.len() / ref_dtype.size().max(1);
    if candidate.len() / cand_dtype.size().max(1) != n {
        return None;
    }
    let mut h = ErrorHistogram { bins: vec![0; (HIGHEST_DECADE - LOWEST_DECADE + 1) as usize], zero: 0, nonfinite: 0 };
    let last = h.bins.len() - 1;
    for i in 0..n {
        let r = element_f64(ref_dtype, reference, i);
        let c = element_f64(cand_dtype, candidate, i);
        if !(r.is_finite() && c.is_finite()) {
            h.nonfinite += 1;
            continue;
        }
        let e = (c - r).abs();
        if e == 0.0 {
            h.zero += 1;
            continue;
        }
        let d = e.log10().floor() as i64 - i64::from(LOWEST_DECADE);
        h.bins[d.clamp(0, last as i64) as usize] += 1;
    }
    Some(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(v: &[f32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    #[test]
    fn bins_by_decade_with_zero_and_nonfinite_apart() {
        let r = bytes(&[1.0, 1.0, 1.0, 1.0, 1.0, f32::NAN, 0.0, 5.0]);
        let c = bytes(&[1.0, 1.5, 1.002, 1e9, f32::INFINITY, 1.0, 1e-30, 5.0]);
        let h = abs_error_histogram(DType::Float32, &r, DType::Float32, &c).expect("same length");
        assert_eq!((h.zero, h.nonfinite, h.total()), (2, 2, 8));
        let at = |exp: i32| h.bins[(exp - LOWEST_DECADE) as usize];
        assert_eq!(at(-1), 1, "0.5 is in [0.1, 1)");
        assert_eq!(at(-3), 1, "0.002 is in [1e-3, 1e-2)");
        assert_eq!(at(HIGHEST_DECADE), 1, "1e9 is clamped into the last bin");
        assert_eq!(at(LOWEST_DECADE), 1, "1e-30 is clamped into the first bin");
    }

    #[test]
    fn length_mismatch_is_none() {
        assert!(abs_error_histogram(DType::Float32, &bytes(&[1.0]), DType::Float32, &bytes(&[1.0, 2.0])).is_none());
    }
}
