//! A small seeded random number generator: benchmark weights, head
//! initialisation, shuffling. Reproducible on every target.

/// xorshift64*: reproducible, dependency-free; plenty for benchmark weights,
/// head initialisation and shuffling.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// N(0, std²) by Box–Muller.
    pub fn normal(&mut self, n: usize, std: f32) -> Vec<f32> {
        (0..n)
            .map(|_| {
                let u1 = (self.next_unit() as f64).max(1e-12);
                let u2 = self.next_unit() as f64;
                ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32 * std
            })
            .collect()
    }

    /// A uniformly random permutation of 0..n (Fisher–Yates).
    pub fn permutation(&mut self, n: usize) -> Vec<usize> {
        let mut p: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            let j = ((self.next_unit() as f64) * (i + 1) as f64) as usize;
            p.swap(i, j.min(i));
        }
        p
    }

    fn next_unit(&mut self) -> f32 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40) as f32 / (1u64 << 24) as f32
    }

    /// Sum of four uniforms: roughly normal, std ≈ 0.02 like BERT's init.
    pub(crate) fn values(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| (0..4).map(|_| self.next_unit() - 0.5).sum::<f32>() * 0.035).collect()
    }
}
