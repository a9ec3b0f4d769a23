//! Squared error, loss and gradient in one pass (shaders/squared_error.wgsl):
//! the regression loss (one output per row, as transformers' `MSELoss`).

use crate::gpu::{Dispatch, GpuContext};

/// CPU reference: the loss of each row, `(output − target)²`, and
/// `doutput = 2·(output − target)·scale` (scale 1/rows for the mean loss).
pub fn squared_error_cpu(output: &[f32], target: &[f32], scale: f32) -> (Vec<f32>, Vec<f32>) {
    output.iter().zip(target).map(|(y, t)| ((y - t) * (y - t), 2.0 * (y - t) * scale)).unzip()
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    rows: u32,
    scale: f32,
    _pad: [u32; 2],
}

pub struct SquaredErrorKernel {
    pipeline: wgpu::ComputePipeline,
}

impl SquaredErrorKernel {
    pub fn new(ctx: &GpuContext) -> Self {
        SquaredErrorKernel { pipeline: ctx.pipeline("squared_error", include_str!("../../shaders/squared_error.wgsl")) }
    }

    pub fn bind(
        &self,
        ctx: &GpuContext,
        output: &wgpu::Buffer,
        target: &wgpu::Buffer,
        loss: &wgpu::Buffer,
        doutput: &wgpu::Buffer,
        rows: usize,
        scale: f32,
    ) -> Dispatch {
        let params = Params { rows: rows as u32, scale, _pad: [0; 2] };
        ctx.dispatch(&self.pipeline, &params, &[output, target, loss, doutput], [rows.div_ceil(64) as u32, 1, 1])
    }
}
