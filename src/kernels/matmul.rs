//! `y = act(x · Wᵀ + b)`: every Linear of BERT (shaders/matmul.wgsl).

use crate::config::Activation;
use crate::gpu::{Dispatch, GpuContext};

/// What is applied to each output after the bias.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Epilogue {
    None,
    Gelu,
    GeluTanh,
    Relu,
    Tanh,
}

impl Epilogue {
    pub fn apply(self, x: f32) -> f32 {
        match self {
            Epilogue::None => x,
            Epilogue::Gelu => 0.5 * x * (1.0 + libm::erff(x * std::f32::consts::FRAC_1_SQRT_2)),
            Epilogue::GeluTanh => {
                let c = (2.0f32 / std::f32::consts::PI).sqrt();
                0.5 * x * (1.0 + (c * (x + 0.044715 * x * x * x)).tanh())
            }
            Epilogue::Relu => x.max(0.0),
            Epilogue::Tanh => x.tanh(),
        }
    }

    fn code(self) -> u32 {
        match self {
            Epilogue::None => 0,
            Epilogue::Gelu => 1,
            Epilogue::GeluTanh => 2,
            Epilogue::Relu => 3,
            Epilogue::Tanh => 4,
        }
    }
}

impl From<Activation> for Epilogue {
    fn from(a: Activation) -> Self {
        match a {
            Activation::Gelu => Epilogue::Gelu,
            Activation::GeluTanh => Epilogue::GeluTanh,
            Activation::Relu => Epilogue::Relu,
        }
    }
}

/// CPU reference: `x` is `[rows, k]`, `w` is `[n, k]` (PyTorch's Linear
/// layout), `bias` is `[n]`; returns `[rows, n]`.
pub fn linear_cpu(x: &[f32], w: &[f32], bias: &[f32], rows: usize, n: usize, k: usize, act: Epilogue) -> Vec<f32> {
    assert_eq!(x.len(), rows * k);
    assert_eq!(w.len(), n * k);
    assert_eq!(bias.len(), n);
    let mut y = vec![0.0; rows * n];
    for r in 0..rows {
        let x_row = &x[r * k..(r + 1) * k];
        for o in 0..n {
            let w_row = &w[o * k..(o + 1) * k];
            y[r * n + o] = act.apply(dot(x_row, w_row) + bias[o]);
        }
    }
    y
}

/// A dot product in eight independent lanes, so the compiler can vectorise it.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 8];
    let (a8, a_rest) = a.split_at(a.len() - a.len() % 8);
    let (b8, b_rest) = b.split_at(a8.len());
    for (ca, cb) in a8.chunks_exact(8).zip(b8.chunks_exact(8)) {
        for l in 0..8 {
            lanes[l] += ca[l] * cb[l];
        }
    }
    let tail: f32 = a_rest.iter().zip(b_rest).map(|(x, y)| x * y).sum();
    lanes.iter().sum::<f32>() + tail
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    m: u32,
    n: u32,
    k: u32,
    lda: u32,
    act: u32,
    _pad: [u32; 3],
}

/// Where the rows of `x` are: `rows` rows, `row_stride` values apart (equal to
/// `k` for a dense matrix; larger to pick every sequence's first token).
pub struct Rows {
    pub rows: usize,
    pub row_stride: usize,
}

pub struct MatmulKernel {
    pipeline: wgpu::ComputePipeline,
}

impl MatmulKernel {
    const TILE: usize = 64;

    pub fn new(ctx: &GpuContext) -> Self {
        MatmulKernel { pipeline: ctx.pipeline("matmul", include_str!("../../shaders/matmul.wgsl")) }
    }

    #[allow(clippy::too_many_arguments)]
    pub fn bind(
        &self,
        ctx: &GpuContext,
        x: &wgpu::Buffer,
        rows: Rows,
        w: &wgpu::Buffer,
        bias: &wgpu::Buffer,
        y: &wgpu::Buffer,
        n: usize,
        k: usize,
        act: Epilogue,
    ) -> Dispatch {
        let params = Params {
            m: rows.rows as u32,
            n: n as u32,
            k: k as u32,
            lda: rows.row_stride as u32,
            act: act.code(),
            _pad: [0; 3],
        };
        let groups = [n.div_ceil(Self::TILE) as u32, rows.rows.div_ceil(Self::TILE) as u32, 1];
        ctx.dispatch(&self.pipeline, &params, &[x, w, bias, y], groups)
    }
}
