//! Softmax cross-entropy, loss and gradient in one pass (shaders/cross_entropy.wgsl).

use crate::gpu::{Dispatch, GpuContext};

/// A row whose label is this counts for nothing (transformers' -100: the
/// WordPieces after a word's first, special tokens, padding).
pub const IGNORE_INDEX: u32 = u32::MAX;

/// CPU reference. `logits` is `[rows, classes]`; returns the loss of each row
/// and `dlogits = (softmax − onehot)·scale` (scale 1/labelled rows for the
/// mean loss); a row labelled [`IGNORE_INDEX`] has loss 0 and gradient 0.
pub fn cross_entropy_cpu(logits: &[f32], labels: &[u32], classes: usize, scale: f32) -> (Vec<f32>, Vec<f32>) {
    let rows = labels.len();
    let mut loss = vec![0.0; rows];
    let mut grad = vec![0.0; rows * classes];
    for r in 0..rows {
        if labels[r] == IGNORE_INDEX {
            continue;
        }
        let z = &logits[r * classes..][..classes];
        let max = z.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let log_sum = z.iter().map(|v| (v - max).exp()).sum::<f32>().ln() + max;
        let y = labels[r] as usize;
        loss[r] = log_sum - z[y];
        for c in 0..classes {
            let p = (z[c] - log_sum).exp();
            grad[r * classes + c] = (p - if c == y { 1.0 } else { 0.0 }) * scale;
        }
    }
    (loss, grad)
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    rows: u32,
    classes: u32,
    scale: f32,
    _pad: u32,
}

pub struct CrossEntropyKernel {
    pipeline: wgpu::ComputePipeline,
}

impl CrossEntropyKernel {
    pub fn new(ctx: &GpuContext) -> Self {
        CrossEntropyKernel { pipeline: ctx.pipeline("cross_entropy", include_str!("../../shaders/cross_entropy.wgsl")) }
    }

    #[allow(clippy::too_many_arguments)]
    pub fn bind(
        &self,
        ctx: &GpuContext,
        logits: &wgpu::Buffer,
        labels: &wgpu::Buffer,
        loss: &wgpu::Buffer,
        dlogits: &wgpu::Buffer,
        rows: usize,
        classes: usize,
        scale: f32,
    ) -> Dispatch {
        let params = Params { rows: rows as u32, classes: classes as u32, scale, _pad: 0 };
        ctx.dispatch(&self.pipeline, &params, &[logits, labels, loss, dlogits], [rows.div_ceil(64) as u32, 1, 1])
    }
}
