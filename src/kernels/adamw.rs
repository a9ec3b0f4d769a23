//! The AdamW update (shaders/adamw.wgsl), in torch.optim.AdamW's order.

use crate::gpu::{Dispatch, GpuContext};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamW {
    pub lr: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub weight_decay: f32,
    /// What each gradient is multiplied by first: 1, or the clipping
    /// coefficient of `clip_grad_norm_` (scaling inside the update is the
    /// same arithmetic as scaling the gradients before it).
    pub grad_scale: f32,
}

impl AdamW {
    /// transformers' Trainer defaults (betas 0.9/0.999, eps 1e-8).
    pub fn new(lr: f32, weight_decay: f32) -> Self {
        AdamW { lr, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay, grad_scale: 1.0 }
    }

    /// (1 − β1ᵗ, 1 − β2ᵗ) for step `t` (from 1).
    fn bias_corrections(&self, t: u32) -> (f32, f32) {
        (1.0 - self.beta1.powi(t as i32), 1.0 - self.beta2.powi(t as i32))
    }
}

/// CPU reference: one step `t` (from 1) on `param` with its moments `m`, `v`.
pub fn adamw_cpu(opt: &AdamW, t: u32, param: &mut [f32], grad: &[f32], m: &mut [f32], v: &mut [f32]) {
    let (bc1, bc2) = opt.bias_corrections(t);
    for i in 0..param.len() {
        let g = grad[i] * opt.grad_scale;
        let x = param[i] * (1.0 - opt.lr * opt.weight_decay);
        m[i] = opt.beta1 * m[i] + (1.0 - opt.beta1) * g;
        v[i] = opt.beta2 * v[i] + (1.0 - opt.beta2) * g * g;
        let denom = v[i].sqrt() / bc2.sqrt() + opt.eps;
        param[i] = x - (opt.lr / bc1) * m[i] / denom;
    }
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    len: u32,
    lr: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    weight_decay: f32,
    bias_correction1: f32,
    bias_correction2: f32,
    grad_scale: f32,
    _pad: [u32; 3],
}

pub struct AdamWKernel {
    pipeline: wgpu::ComputePipeline,
}

impl AdamWKernel {
    pub fn new(ctx: &GpuContext) -> Self {
        AdamWKernel { pipeline: ctx.pipeline("adamw", include_str!("../../shaders/adamw.wgsl")) }
    }

    /// One step `t` with learning rate `lr` (the schedule's value for this step).
    #[allow(clippy::too_many_arguments)]
    pub fn bind(
        &self,
        ctx: &GpuContext,
        opt: &AdamW,
        t: u32,
        grad: &wgpu::Buffer,
        param: &wgpu::Buffer,
        m: &wgpu::Buffer,
        v: &wgpu::Buffer,
        len: usize,
    ) -> Dispatch {
        ctx.dispatch(&self.pipeline, &Self::params(opt, t, len), &[grad, param, m, v], crate::gpu::grid(len.div_ceil(256)))
    }

    /// Points a recorded step at step `t` with `opt`'s learning rate and decay.
    pub fn update(&self, ctx: &GpuContext, d: &Dispatch, opt: &AdamW, t: u32, len: usize) {
        ctx.update_params(d, &Self::params(opt, t, len));
    }

    fn params(opt: &AdamW, t: u32, len: usize) -> Params {
        let (bc1, bc2) = opt.bias_corrections(t);
        Params {
            len: len as u32,
            lr: opt.lr,
            beta1: opt.beta1,
            beta2: opt.beta2,
            eps: opt.eps,
            weight_decay: opt.weight_decay,
            bias_correction1: bc1,
            bias_correction2: bc2,
            grad_scale: opt.grad_scale,
            _pad: [0; 3],
        }
    }
}
