//! The gradient through a ReLU (shaders/relu_backward.wgsl), in place.

use crate::gpu::{Dispatch, GpuContext};

/// CPU reference: zeroes `grad` where the ReLU's output `y` is not positive.
pub fn relu_backward_cpu(y: &[f32], grad: &mut [f32]) {
    for (g, &v) in grad.iter_mut().zip(y) {
        if v <= 0.0 {
            *g = 0.0;
        }
    }
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    len: u32,
    _pad: [u32; 3],
}

pub struct ReluBackwardKernel {
    pipeline: wgpu::ComputePipeline,
}

impl ReluBackwardKernel {
    pub fn new(ctx: &GpuContext) -> Self {
        ReluBackwardKernel { pipeline: ctx.pipeline("relu_backward", include_str!("../../shaders/relu_backward.wgsl")) }
    }

    pub fn bind(&self, ctx: &GpuContext, y: &wgpu::Buffer, grad: &wgpu::Buffer, len: usize) -> Dispatch {
        let params = Params { len: len as u32, _pad: [0; 3] };
        ctx.dispatch(&self.pipeline, &params, &[y, grad], crate::gpu::grid(len.div_ceil(256)))
    }
}
