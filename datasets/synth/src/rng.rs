//! Seeded randomness with a fixed meaning on every machine.
//!
//! ChaCha8 seeded through `seed_from_u64` is documented by `rand` as portable
//! and value-stable. The conversions to floats below use only exact integer
//! to float steps and the pure-Rust `libm`, so a seed gives the same numbers
//! everywhere, independent of `rand`'s own distribution code.

use rand::rngs::ChaCha8Rng;
use rand::{Rng, SeedableRng};

/// Independent random streams drawn from one track seed.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Stream {
    /// Track-level choices: key, progression, patterns.
    Track = 1,
    /// Per-note choices: velocities, timing jitter, variations.
    Notes = 2,
    /// Per-sample noise inside drum voices and oscillator start phases.
    Voices = 3,
    /// The background noise floor.
    Background = 4,
    /// Dataset planning.
    Plan = 5,
}

/// A seeded generator with the few draws the synthesiser needs.
#[derive(Debug)]
pub(crate) struct Rand(ChaCha8Rng);

impl Rand {
    /// The generator for `stream` of `seed`.
    pub(crate) fn new(seed: u64, stream: Stream) -> Self {
        let mixed = seed ^ (stream as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        Rand(ChaCha8Rng::seed_from_u64(mixed))
    }

    /// Uniform in `[0, 1)` with 53 random bits.
    pub(crate) fn unit(&mut self) -> f64 {
        (self.0.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in `[lo, hi)`.
    pub(crate) fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }

    /// True with probability `p`.
    pub(crate) fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// Uniform index in `0..n` (`n > 0`).
    pub(crate) fn index(&mut self, n: usize) -> usize {
        ((self.unit() * n as f64) as usize).min(n - 1)
    }

    /// One element of a non-empty slice.
    pub(crate) fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.index(items.len())]
    }

    /// Standard normal draw (Box-Muller).
    pub(crate) fn gauss(&mut self) -> f64 {
        let u1 = 1.0 - self.unit(); // (0, 1]
        let u2 = self.unit();
        libm::sqrt(-2.0 * libm::log(u1)) * libm::cos(std::f64::consts::TAU * u2)
    }

    /// Uniform white noise in `[-1, 1)`, cheap enough for every sample.
    pub(crate) fn noise(&mut self) -> f32 {
        (self.0.next_u32() >> 8) as f32 * (2.0 / (1u32 << 24) as f32) - 1.0
    }

    /// A fresh 32-bit value, e.g. a random oscillator phase.
    pub(crate) fn next_u32(&mut self) -> u32 {
        self.0.next_u32()
    }

    /// A fresh 64-bit value, e.g. a child seed.
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_reproducible_and_distinct() {
        let a: Vec<u64> = (0..4)
            .map({
                let mut r = Rand::new(7, Stream::Track);
                move |_| r.next_u64()
            })
            .collect();
        let b: Vec<u64> = (0..4)
            .map({
                let mut r = Rand::new(7, Stream::Track);
                move |_| r.next_u64()
            })
            .collect();
        let c: Vec<u64> = (0..4)
            .map({
                let mut r = Rand::new(7, Stream::Notes);
                move |_| r.next_u64()
            })
            .collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn draws_stay_in_range() {
        let mut r = Rand::new(1, Stream::Voices);
        for _ in 0..10_000 {
            let u = r.unit();
            assert!((0.0..1.0).contains(&u));
            let n = r.noise();
            assert!((-1.0..1.0).contains(&n));
            assert!(r.index(3) < 3);
            assert!(r.gauss().is_finite());
        }
    }
}
