//! Dropout from a counter-based hash: whether element `i` of a mask is kept
//! depends only on (seed, i), so the CPU and GPU paths draw the same masks and
//! a backward pass recomputes a mask instead of storing it.

use crate::gpu::{grid, Dispatch, GpuContext};

/// The hash and the factor in WGSL (shaders/dropout_hash.wgsl), prepended to
/// every kernel that draws a mask.
pub const DROPOUT_WGSL: &str = include_str!("../../shaders/dropout_hash.wgsl");

/// A 32-bit integer hash with good avalanche (Chris Wellons' "lowbias32"):
/// plain u32 arithmetic, the same in Rust and WGSL.
pub fn hash32(mut x: u32) -> u32 {
    x ^= x >> 16;
    x = x.wrapping_mul(0x7feb_352d);
    x ^= x >> 15;
    x = x.wrapping_mul(0x846c_a68b);
    x ^= x >> 16;
    x
}

/// The seed of one dropout site at one step of a run: distinct sites and
/// steps get unrelated masks.
pub fn site_seed(run_seed: u64, step: u32, site: u32) -> u32 {
    hash32(hash32(hash32(run_seed as u32 ^ hash32((run_seed >> 32) as u32)) ^ step) ^ site)
}

/// Dropout with probability `p`: the factor element `i` is multiplied by,
/// 0 (dropped) or 1/(1 − p) (kept), as `torch.nn.Dropout` scales in training.
pub fn dropout_factor(seed: u32, i: u32, p: f32) -> f32 {
    // 24 uniform bits: exact in f32
    let u = (hash32(seed ^ hash32(i)) >> 8) as f32 / (1u32 << 24) as f32;
    if u < p {
        0.0
    } else {
        1.0 / (1.0 - p)
    }
}

/// CPU reference: the factors of a mask of `len` elements.
pub fn dropout_mask_cpu(seed: u32, p: f32, len: usize) -> Vec<f32> {
    (0..len).map(|i| dropout_factor(seed, i as u32, p)).collect()
}

/// One dropout site's mask: its seed (from [`site_seed`]) and probability.
/// `p` = 0 draws no mask (every factor is 1).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Mask {
    pub seed: u32,
    pub p: f32,
}

impl Mask {
    pub const NONE: Mask = Mask { seed: 0, p: 0.0 };
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    len: u32,
    seed: u32,
    p: f32,
    _pad: u32,
}

/// `x ⊙= dropout_mask_cpu(mask)`, in place (shaders/dropout.wgsl).
pub struct DropoutKernel {
    pipeline: wgpu::ComputePipeline,
}

impl DropoutKernel {
    pub fn new(ctx: &GpuContext) -> Self {
        DropoutKernel { pipeline: ctx.pipeline("dropout", &[DROPOUT_WGSL, include_str!("../../shaders/dropout.wgsl")].concat()) }
    }

    pub fn bind(&self, ctx: &GpuContext, x: &wgpu::Buffer, len: usize, mask: Mask) -> Dispatch {
        let params = Params { len: len as u32, seed: mask.seed, p: mask.p, _pad: 0 };
        ctx.dispatch(&self.pipeline, &params, &[x], grid(len.div_ceil(256)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_drop_the_asked_share_and_keep_the_mean() {
        for p in [0.1f32, 0.5] {
            let m = dropout_mask_cpu(site_seed(42, 7, 3), p, 100_000);
            let dropped = m.iter().filter(|&&f| f == 0.0).count() as f32 / m.len() as f32;
            assert!((dropped - p).abs() < 0.01, "p {p}: dropped {dropped}");
            let mean = m.iter().sum::<f32>() / m.len() as f32;
            assert!((mean - 1.0).abs() < 0.02, "p {p}: mean factor {mean}");
        }
    }

    #[test]
    fn sites_and_steps_draw_different_masks_and_a_seed_the_same_one() {
        let a = dropout_mask_cpu(site_seed(42, 1, 0), 0.5, 256);
        assert_eq!(a, dropout_mask_cpu(site_seed(42, 1, 0), 0.5, 256));
        for other in [site_seed(42, 2, 0), site_seed(42, 1, 1), site_seed(43, 1, 0)] {
            let b = dropout_mask_cpu(other, 0.5, 256);
            let same = a.iter().zip(&b).filter(|(x, y)| x == y).count();
            assert!(same < 160, "{same} of 256 factors agree");
        }
    }
}
