//! The encoder output's gradient from the pooler's input gradient
//! (shaders/cls_gradient.wgsl): the pooler reads each sequence's [CLS] row.

use crate::gpu::{grid, Dispatch, GpuContext};

/// CPU reference: `[batch·seq, hidden]`, sequence `r`'s first row `d_cls`'s row `r`, the rest 0.
pub fn cls_gradient_cpu(d_cls: &[f32], batch: usize, seq: usize, hidden: usize) -> Vec<f32> {
    let mut dx = vec![0.0; batch * seq * hidden];
    for r in 0..batch {
        dx[r * seq * hidden..][..hidden].copy_from_slice(&d_cls[r * hidden..][..hidden]);
    }
    dx
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    rows: u32,
    seq: u32,
    hidden: u32,
    _pad: u32,
}

pub struct ClsGradientKernel {
    pipeline: wgpu::ComputePipeline,
}

impl ClsGradientKernel {
    pub fn new(ctx: &GpuContext) -> Self {
        ClsGradientKernel { pipeline: ctx.pipeline("cls_gradient", include_str!("../../shaders/cls_gradient.wgsl")) }
    }

    /// Writes every row of `dx` `[batch·seq, hidden]`.
    pub fn bind(&self, ctx: &GpuContext, d_cls: &wgpu::Buffer, dx: &wgpu::Buffer, (batch, seq, hidden): (usize, usize, usize)) -> Dispatch {
        let params = Params { rows: (batch * seq) as u32, seq: seq as u32, hidden: hidden as u32, _pad: 0 };
        ctx.dispatch(&self.pipeline, &params, &[d_cls, dx], grid((batch * seq * hidden).div_ceil(256)))
    }
}
