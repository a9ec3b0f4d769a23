//! Layer norm with the residual add fused in, row by row over the cores.

use rayon::prelude::*;

use crate::weights::LayerNorm;

/// `x ← LayerNorm(x + residual)` over rows of width `h` (two-pass mean and
/// variance, like the reference, so large means cost no precision).
pub fn layernorm_fast(x: &mut [f32], residual: Option<&[f32]>, norm: &LayerNorm, h: usize, eps: f32) {
    let (gamma, beta) = (&norm.gamma[..h], &norm.beta[..h]);
    x.par_chunks_mut(h).enumerate().for_each(|(r, row)| {
        if let Some(res) = residual {
            for (v, a) in row.iter_mut().zip(&res[r * h..][..h]) {
                *v += a;
            }
        }
        let mean = row.iter().sum::<f32>() / h as f32;
        let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / h as f32;
        let inv = 1.0 / (var + eps).sqrt();
        for ((v, g), b) in row.iter_mut().zip(gamma).zip(beta) {
            *v = (*v - mean) * inv * g + b;
        }
    });
}
