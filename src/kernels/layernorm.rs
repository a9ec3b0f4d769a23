//! `LayerNorm(x + residual)` over each row (shaders/layernorm.wgsl).

use crate::gpu::{grid, Dispatch, GpuContext};
use crate::weights::LayerNorm;

/// CPU reference: normalises each `hidden`-wide row of `x + residual`
/// (biased variance, as PyTorch) and applies gamma and beta.
pub fn layernorm_cpu(x: &[f32], residual: Option<&[f32]>, norm: &LayerNorm, hidden: usize, eps: f32) -> Vec<f32> {
    let mut out = vec![0.0; x.len()];
    let mut row = vec![0.0f32; hidden];
    for (r, dst) in out.chunks_exact_mut(hidden).enumerate() {
        for d in 0..hidden {
            row[d] = x[r * hidden + d] + residual.map_or(0.0, |res| res[r * hidden + d]);
        }
        let mean = row.iter().sum::<f32>() / hidden as f32;
        let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / hidden as f32;
        let inv_std = 1.0 / (var + eps).sqrt();
        for d in 0..hidden {
            dst[d] = (row[d] - mean) * inv_std * norm.gamma[d] + norm.beta[d];
        }
    }
    out
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    rows: u32,
    hidden: u32,
    eps: f32,
    has_residual: u32,
}

pub struct LayerNormKernel {
    pipeline: wgpu::ComputePipeline,
}

impl LayerNormKernel {
    pub fn new(ctx: &GpuContext) -> Self {
        LayerNormKernel { pipeline: ctx.pipeline("layernorm", include_str!("../../shaders/layernorm.wgsl")) }
    }

    /// `gamma_beta` are the norm's two weight buffers.
    #[allow(clippy::too_many_arguments)]
    pub fn bind(
        &self,
        ctx: &GpuContext,
        x: &wgpu::Buffer,
        residual: Option<&wgpu::Buffer>,
        gamma_beta: (&wgpu::Buffer, &wgpu::Buffer),
        out: &wgpu::Buffer,
        rows: usize,
        hidden: usize,
        eps: f32,
    ) -> Dispatch {
        let params = Params { rows: rows as u32, hidden: hidden as u32, eps, has_residual: residual.is_some() as u32 };
        // Without a residual the binding still needs a buffer; x is read-only there too.
        let residual = residual.unwrap_or(x);
        ctx.dispatch(&self.pipeline, &params, &[x, residual, gamma_beta.0, gamma_beta.1, out], grid(rows))
    }
}
