//! Sums of squares, for a global gradient norm (shaders/sum_squares.wgsl):
//! each workgroup sums its block, the host adds the blocks in f64.

use crate::gpu::{grid, Dispatch, GpuContext};
use crate::kernels::WORKGROUP_REDUCE_WGSL;

/// CPU reference: Σ x², in f64.
pub fn sum_squares_cpu(x: &[f32]) -> f64 {
    x.iter().map(|&v| f64::from(v) * f64::from(v)).sum()
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    len: u32,
    offset: u32,
    _pad: [u32; 2],
}

pub struct SumSquaresKernel {
    pipeline: wgpu::ComputePipeline,
}

impl SumSquaresKernel {
    /// Elements one workgroup sums (256 threads × PER in the shader).
    const BLOCK: usize = 256 * 16;

    pub fn new(ctx: &GpuContext) -> Self {
        SumSquaresKernel {
            pipeline: ctx.pipeline("sum_squares", &[WORKGROUP_REDUCE_WGSL, include_str!("../../shaders/sum_squares.wgsl")].concat()),
        }
    }

    /// How many partial sums `len` elements make.
    pub fn partials(len: usize) -> usize {
        len.div_ceil(Self::BLOCK)
    }

    /// Writes [`Self::partials`]`(len)` sums of `x` into `partials` from `offset`.
    pub fn bind(&self, ctx: &GpuContext, x: &wgpu::Buffer, len: usize, partials: &wgpu::Buffer, offset: usize) -> Dispatch {
        let params = Params { len: len as u32, offset: offset as u32, _pad: [0; 2] };
        ctx.dispatch(&self.pipeline, &params, &[x, partials], grid(Self::partials(len)))
    }
}
