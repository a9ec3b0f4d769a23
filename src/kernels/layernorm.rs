//! `LayerNorm(x + residual)` over each row (shaders/layernorm.wgsl).

use crate::gpu::{grid, Dispatch, GpuContext};
use crate::kernels::dropout::{Mask, DROPOUT_WGSL};
use crate::kernels::WORKGROUP_REDUCE_WGSL;
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

/// CPU reference of the backward pass. `input` is what was normalised (`x +
/// residual`), `dy` the gradient of the output; returns the gradient of the
/// input (which flows to `x` and to the residual alike), of gamma and of beta.
pub fn layernorm_backward_cpu(input: &[f32], gamma: &[f32], dy: &[f32], hidden: usize, eps: f32) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let mut dx = vec![0.0; input.len()];
    let mut dgamma = vec![0.0; hidden];
    let mut dbeta = vec![0.0; hidden];
    for r in 0..input.len() / hidden {
        let x = &input[r * hidden..][..hidden];
        let g = &dy[r * hidden..][..hidden];
        let mean = x.iter().sum::<f32>() / hidden as f32;
        let var = x.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / hidden as f32;
        let inv_std = 1.0 / (var + eps).sqrt();
        // dx = inv_std·(dŷ − mean(dŷ) − x̂·mean(dŷ·x̂)), with dŷ = dy·gamma
        let mut mean_dxhat = 0.0;
        let mut mean_dxhat_xhat = 0.0;
        for d in 0..hidden {
            let xhat = (x[d] - mean) * inv_std;
            let dxhat = g[d] * gamma[d];
            mean_dxhat += dxhat / hidden as f32;
            mean_dxhat_xhat += dxhat * xhat / hidden as f32;
            dgamma[d] += g[d] * xhat;
            dbeta[d] += g[d];
        }
        for d in 0..hidden {
            let xhat = (x[d] - mean) * inv_std;
            dx[r * hidden + d] = inv_std * (g[d] * gamma[d] - mean_dxhat - xhat * mean_dxhat_xhat);
        }
    }
    (dx, dgamma, dbeta)
}

/// A row's mean and 1/std, shared by the forward and backward shaders (prepended to both).
const ROWS_WGSL: &str = include_str!("../../shaders/layernorm_rows.wgsl");

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
        LayerNormKernel {
            pipeline: ctx.pipeline("layernorm", &[WORKGROUP_REDUCE_WGSL, ROWS_WGSL, include_str!("../../shaders/layernorm.wgsl")].concat()),
        }
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

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct BackwardParams {
    rows: u32,
    hidden: u32,
    eps: f32,
    has_residual: u32,
    seed: u32,
    p: f32,
    _pad: [u32; 2],
}

/// Where [`LayerNormBackwardKernel`] writes: the gradient of `x + residual`,
/// that gradient through the branch's dropout mask, and `dy·x̂` (whose column
/// sums are gamma's gradient; dy's are beta's).
pub struct LayerNormGradients<'a> {
    pub d_sum: &'a wgpu::Buffer,
    pub d_branch: &'a wgpu::Buffer,
    pub g_xhat: &'a wgpu::Buffer,
}

/// The backward pass of [`LayerNormKernel`] (shaders/layernorm_backward.wgsl);
/// its reference is [`layernorm_backward_cpu`].
pub struct LayerNormBackwardKernel {
    pipeline: wgpu::ComputePipeline,
}

impl LayerNormBackwardKernel {
    pub fn new(ctx: &GpuContext) -> Self {
        let src = [DROPOUT_WGSL, WORKGROUP_REDUCE_WGSL, ROWS_WGSL, include_str!("../../shaders/layernorm_backward.wgsl")].concat();
        LayerNormBackwardKernel { pipeline: ctx.pipeline("layernorm_backward", &src) }
    }

    /// `x` (+ `residual`) is what the forward pass normalised, `dy` the
    /// output's gradient, `branch` the mask `x` went through before the sum.
    #[allow(clippy::too_many_arguments)]
    pub fn bind(
        &self,
        ctx: &GpuContext,
        x: &wgpu::Buffer,
        residual: Option<&wgpu::Buffer>,
        gamma: &wgpu::Buffer,
        dy: &wgpu::Buffer,
        out: LayerNormGradients,
        (rows, hidden, eps): (usize, usize, f32),
        branch: Mask,
    ) -> Dispatch {
        let params = BackwardParams {
            rows: rows as u32,
            hidden: hidden as u32,
            eps,
            has_residual: residual.is_some() as u32,
            seed: branch.seed,
            p: branch.p,
            _pad: [0; 2],
        };
        let residual = residual.unwrap_or(x);
        ctx.dispatch(&self.pipeline, &params, &[x, residual, gamma, dy, out.d_sum, out.d_branch, out.g_xhat], grid(rows))
    }
}
