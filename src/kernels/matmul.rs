//! The generic strided matmul (shaders/matmul.wgsl): `y = act(A · Wᵀ + b)`
//! with both operands read through (row, column) strides, so a Linear's
//! backward products are the same kernel; the encoder's forward Linears
//! take the faster `linear` kernels where they can.

use crate::config::Activation;
use crate::gpu::{Dispatch, GpuContext};

/// What is applied to each output after the bias.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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

    /// d act(x) / dx at the pre-activation `x`.
    pub fn derivative(self, x: f32) -> f32 {
        match self {
            Epilogue::None => 1.0,
            Epilogue::Gelu => {
                // Φ(x) + x·φ(x)
                let cdf = 0.5 * (1.0 + libm::erff(x * std::f32::consts::FRAC_1_SQRT_2));
                let pdf = (-0.5 * x * x).exp() / (2.0 * std::f32::consts::PI).sqrt();
                cdf + x * pdf
            }
            Epilogue::GeluTanh => {
                let c = (2.0f32 / std::f32::consts::PI).sqrt();
                let t = (c * (x + 0.044715 * x * x * x)).tanh();
                0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * c * (1.0 + 3.0 * 0.044715 * x * x)
            }
            Epilogue::Relu => f32::from(u8::from(x > 0.0)),
            Epilogue::Tanh => 1.0 - x.tanh() * x.tanh(),
        }
    }

    pub(crate) fn code(self) -> u32 {
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

/// How a matrix operand lies in memory: element (i, kk) is at
/// `i·row_stride + kk·col_stride`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    pub row_stride: usize,
    pub col_stride: usize,
}

impl Layout {
    /// A row-major matrix with `cols` columns.
    pub fn rows(cols: usize) -> Self {
        Layout { row_stride: cols, col_stride: 1 }
    }

    /// The transpose of a row-major matrix with `cols` columns.
    pub fn transposed(cols: usize) -> Self {
        Layout { row_stride: 1, col_stride: cols }
    }
}

/// CPU reference: `C[i, j] = act(Σ_kk A(i, kk)·W(j, kk) + bias[j])` for
/// `i < m, j < n`, operands read through their layouts; returns `[m, n]`.
pub fn matmul_cpu(
    a: &[f32],
    a_layout: Layout,
    w: &[f32],
    w_layout: Layout,
    bias: Option<&[f32]>,
    (m, n, k): (usize, usize, usize),
    act: Epilogue,
) -> Vec<f32> {
    let mut y = vec![0.0; m * n];
    for i in 0..m {
        for j in 0..n {
            let mut sum = 0.0f32;
            for kk in 0..k {
                sum += a[i * a_layout.row_stride + kk * a_layout.col_stride] * w[j * w_layout.row_stride + kk * w_layout.col_stride];
            }
            y[i * n + j] = act.apply(sum + bias.map_or(0.0, |b| b[j]));
        }
    }
    y
}

/// A Linear on dense rows: `x` is `[rows, k]`, `w` is `[n, k]`, `bias` `[n]`.
pub fn linear_cpu(x: &[f32], w: &[f32], bias: &[f32], rows: usize, n: usize, k: usize, act: Epilogue) -> Vec<f32> {
    assert_eq!(x.len(), rows * k);
    assert_eq!(w.len(), n * k);
    matmul_cpu(x, Layout::rows(k), w, Layout::rows(k), Some(bias), (rows, n, k), act)
}

/// CPU reference of an epilogue's backward: `dx = dy · act'(pre)`.
pub fn activation_backward_cpu(pre: &[f32], dy: &[f32], act: Epilogue) -> Vec<f32> {
    pre.iter().zip(dy).map(|(&x, &g)| g * act.derivative(x)).collect()
}

/// CPU reference of a bias's gradient: the column sums of `dy` `[rows, n]`.
pub fn column_sums_cpu(dy: &[f32], n: usize) -> Vec<f32> {
    let mut sums = vec![0.0; n];
    for row in dy.chunks_exact(n) {
        for j in 0..n {
            sums[j] += row[j];
        }
    }
    sums
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    m: u32,
    n: u32,
    k: u32,
    act: u32,
    a_rs: u32,
    a_cs: u32,
    w_rs: u32,
    w_cs: u32,
    has_bias: u32,
    accumulate: u32,
    _pad: [u32; 2],
}

/// The epilogues' WGSL, prepended to every matmul kernel.
pub const ACTIVATION_WGSL: &str = include_str!("../../shaders/activation.wgsl");

/// One operand: its buffer and layout.
pub type Operand<'a> = (&'a wgpu::Buffer, Layout);

pub struct MatmulKernel {
    pipeline: wgpu::ComputePipeline,
}

impl MatmulKernel {
    const TILE: usize = 64;

    pub fn new(ctx: &GpuContext) -> Self {
        MatmulKernel { pipeline: ctx.pipeline("matmul", &[ACTIVATION_WGSL, include_str!("../../shaders/matmul.wgsl")].concat()) }
    }

    /// `y = act(A·Wᵀ + bias)` with `y` `[m, n]`. Without a bias, `y` itself
    /// fills the unused binding.
    #[allow(clippy::too_many_arguments)]
    pub fn bind(
        &self,
        ctx: &GpuContext,
        a: Operand,
        w: Operand,
        bias: Option<&wgpu::Buffer>,
        y: &wgpu::Buffer,
        mnk: (usize, usize, usize),
        act: Epilogue,
    ) -> Dispatch {
        self.bind_with(ctx, a, w, bias, y, mnk, act, false)
    }

    /// `y += A·Wᵀ`: how the backward pass adds a product into a gradient.
    pub fn accumulate(&self, ctx: &GpuContext, a: Operand, w: Operand, y: &wgpu::Buffer, mnk: (usize, usize, usize)) -> Dispatch {
        self.bind_with(ctx, a, w, None, y, mnk, Epilogue::None, true)
    }

    #[allow(clippy::too_many_arguments)]
    fn bind_with(
        &self,
        ctx: &GpuContext,
        a: Operand,
        w: Operand,
        bias: Option<&wgpu::Buffer>,
        y: &wgpu::Buffer,
        (m, n, k): (usize, usize, usize),
        act: Epilogue,
        accumulate: bool,
    ) -> Dispatch {
        let params = Params {
            m: m as u32,
            n: n as u32,
            k: k as u32,
            act: act.code(),
            a_rs: a.1.row_stride as u32,
            a_cs: a.1.col_stride as u32,
            w_rs: w.1.row_stride as u32,
            w_cs: w.1.col_stride as u32,
            has_bias: bias.is_some() as u32,
            accumulate: accumulate as u32,
            _pad: [0; 2],
        };
        let groups = [n.div_ceil(Self::TILE) as u32, m.div_ceil(Self::TILE) as u32, 1];
        // an unused bias binding still needs a buffer that is not written here
        let bias = bias.unwrap_or(w.0);
        ctx.dispatch(&self.pipeline, &params, &[a.0, w.0, bias, y], groups)
    }
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct MapParams {
    len: u32,
    act: u32,
    backward: u32,
    _pad: u32,
}

/// An activation on its own (shaders/activation_map.wgsl), for training,
/// which keeps the pre-activation: forward as [`Epilogue::apply`], backward
/// as [`activation_backward_cpu`].
pub struct ActivationKernel {
    pipeline: wgpu::ComputePipeline,
}

impl ActivationKernel {
    pub fn new(ctx: &GpuContext) -> Self {
        ActivationKernel {
            pipeline: ctx.pipeline("activation_map", &[ACTIVATION_WGSL, include_str!("../../shaders/activation_map.wgsl")].concat()),
        }
    }

    /// `out = act(pre)`.
    pub fn forward(&self, ctx: &GpuContext, pre: &wgpu::Buffer, out: &wgpu::Buffer, len: usize, act: Epilogue) -> Dispatch {
        self.bind(ctx, pre, out, len, act, false)
    }

    /// `grad ⊙= act'(pre)`, in place: `grad` holds dy and becomes dx.
    pub fn backward(&self, ctx: &GpuContext, pre: &wgpu::Buffer, grad: &wgpu::Buffer, len: usize, act: Epilogue) -> Dispatch {
        self.bind(ctx, pre, grad, len, act, true)
    }

    fn bind(&self, ctx: &GpuContext, x: &wgpu::Buffer, out: &wgpu::Buffer, len: usize, act: Epilogue, backward: bool) -> Dispatch {
        let params = MapParams { len: len as u32, act: act.code(), backward: backward as u32, _pad: 0 };
        ctx.dispatch(&self.pipeline, &params, &[x, out], crate::gpu::grid(len.div_ceil(256)))
    }
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct SumsParams {
    rows: u32,
    n: u32,
    _pad: [u32; 2],
}

/// `sums += column_sums_cpu(x)` (shaders/column_sums.wgsl): a bias's gradient.
pub struct ColumnSumsKernel {
    pipeline: wgpu::ComputePipeline,
}

impl ColumnSumsKernel {
    pub fn new(ctx: &GpuContext) -> Self {
        ColumnSumsKernel { pipeline: ctx.pipeline("column_sums", include_str!("../../shaders/column_sums.wgsl")) }
    }

    /// Adds the column sums of `x` `[rows, n]` into `sums` `[n]`.
    pub fn bind(&self, ctx: &GpuContext, x: &wgpu::Buffer, sums: &wgpu::Buffer, rows: usize, n: usize) -> Dispatch {
        let params = SumsParams { rows: rows as u32, n: n as u32, _pad: [0; 2] };
        ctx.dispatch(&self.pipeline, &params, &[x, sums], crate::gpu::grid(n.div_ceil(16)))
    }
}
