//! A tiny seeded random generator (splitmix64) for sample weights.
//!
//! The sample files must be byte-for-byte reproducible on every machine, so the generator uses only
//! integer operations and exactly rounded IEEE arithmetic (`+`, `-`, `*`), never `ln`/`cos`/`exp`
//! whose last bit may differ between C libraries.

/// splitmix64 (Steele, Lea and Flood, 2014): a 64-bit state, a Weyl step and a mixing function.
#[derive(Debug, Clone)]
pub struct Rng {
    state: u64,
}

impl Rng {
    /// A generator started from `seed`.
    #[must_use]
    pub fn new(seed: u64) -> Rng {
        Rng { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniform `f64` in `[0, 1)` with 53 random bits.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// A uniform `f32` in `[lo, hi]` (computed in `f64`, then rounded once).
    pub fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        let (lo, hi) = (f64::from(lo), f64::from(hi));
        (lo + (hi - lo) * self.unit()) as f32
    }

    /// `n` uniform values in `[lo, hi]`.
    pub fn uniform_vec(&mut self, n: usize, lo: f32, hi: f32) -> Vec<f32> {
        (0..n).map(|_| self.uniform(lo, hi)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix64_reference_values() {
        // First outputs of splitmix64 seeded with 1234567 (reference C implementation).
        let mut r = Rng::new(1_234_567);
        assert_eq!(r.next_u64(), 6_457_827_717_110_365_317);
        assert_eq!(r.next_u64(), 3_203_168_211_198_807_973);
    }

    #[test]
    fn uniform_stays_in_range() {
        let mut r = Rng::new(7);
        for _ in 0..10_000 {
            let u = r.unit();
            assert!((0.0..1.0).contains(&u));
            let v = r.uniform(-2.0, 3.0);
            assert!((-2.0..=3.0).contains(&v));
        }
    }
}
