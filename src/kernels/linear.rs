//! `y = act(x · Wᵀ + b)` on dense rows, the way BERT's Linears run on the GPU:
//! a 64×64-tiled kernel (shaders/linear_tiled.wgsl) for many rows, a
//! few-rows kernel (shaders/linear_rows.wgsl) for up to 16 (and for rows
//! read at a stride, in blocks of 16), and the generic strided kernel
//! (`MatmulKernel`) for what neither takes (k not a multiple of 16 or 4, x
//! not padded to whole tiles). The CPU reference is `matmul::linear_cpu`.

use std::cell::RefCell;
use std::collections::HashMap;

use crate::gpu::{Dispatch, GpuContext};
use crate::kernels::matmul::{Epilogue, Layout, MatmulKernel, ACTIVATION_WGSL};
use crate::wgsl;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    m: u32,
    n: u32,
    k4: u32,
    /// x's row stride in vec4s (the few-rows kernel; dense rows: k4).
    x_stride4: u32,
}

/// How the rows of a Linear's input lie in their buffer.
#[derive(Clone, Copy, Debug)]
pub enum XRows {
    /// One after another, the buffer holding `held` rows (≥ m; whole 64-row
    /// tiles let the tiled kernel load without row checks).
    Dense { held: usize },
    /// Each this many values apart (the [CLS] rows of a batch, for the pooler).
    Every(usize),
}

/// Which kernel a shape gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LinearPath {
    Tiled,
    /// The few-rows kernel, this many rows per workgroup.
    Rows(usize),
    Generic,
}

/// Rows of x the tiled kernel reads: buffers of x hold this many.
pub fn padded_rows(m: usize) -> usize {
    m.div_ceil(TILE) * TILE
}

const TILE: usize = 64;
const ROW_VARIANTS: [usize; 5] = [1, 2, 4, 8, 16];

impl LinearPath {
    /// The kernel for `m × n × k` when x's buffer holds `x_rows` rows.
    pub fn choose(m: usize, k: usize, x_rows: usize) -> LinearPath {
        match ROW_VARIANTS.iter().find(|&&r| m <= r) {
            Some(&r) if k.is_multiple_of(4) => LinearPath::Rows(r),
            _ if k.is_multiple_of(16) && x_rows >= padded_rows(m) => LinearPath::Tiled,
            _ => LinearPath::Generic,
        }
    }

    /// The kernel for rows read `stride` values apart (the tiled kernel reads dense rows only):
    /// the few-rows kernel, in blocks of 16 rows past 16 (on an H200 the generic kernel took
    /// 1.2 ms for the pooler's 32 × 384 × 384, 40% of a MiniLM 32 × 8 forward).
    pub fn choose_strided(m: usize, k: usize, stride: usize) -> LinearPath {
        match ROW_VARIANTS.iter().find(|&&r| m <= r) {
            _ if !k.is_multiple_of(4) || !stride.is_multiple_of(4) => LinearPath::Generic,
            Some(&r) => LinearPath::Rows(r),
            None => LinearPath::Rows(ROW_VARIANTS[ROW_VARIANTS.len() - 1]),
        }
    }
}

pub struct LinearKernel {
    generic: MatmulKernel,
    /// Pipelines by (path, epilogue), made on first use.
    pipelines: RefCell<HashMap<(LinearPath, Epilogue), wgpu::ComputePipeline>>,
}

impl LinearKernel {
    pub fn new(ctx: &GpuContext) -> Self {
        LinearKernel { generic: MatmulKernel::new(ctx), pipelines: RefCell::new(HashMap::new()) }
    }

    /// The generic strided kernel it falls back on (for other layouts, e.g. strided rows).
    pub fn generic(&self) -> &MatmulKernel {
        &self.generic
    }

    /// The pipeline of a specialised path (`None` for the generic one).
    fn pipeline(&self, ctx: &GpuContext, path: LinearPath, act: Epilogue) -> Option<wgpu::ComputePipeline> {
        if let Some(p) = self.pipelines.borrow().get(&(path, act)) {
            return Some(p.clone());
        }
        let (label, src, rows) = match path {
            LinearPath::Tiled => ("linear_tiled", include_str!("../../shaders/linear_tiled.wgsl"), 0),
            LinearPath::Rows(r) => ("linear_rows", include_str!("../../shaders/linear_rows.wgsl"), r),
            LinearPath::Generic => return None,
        };
        // the templates are ours, not input: tests/kernels.rs expands and runs every variant
        let text = wgsl::expand(&[ACTIVATION_WGSL, src].concat(), &[("ACT", act.code() as usize), ("ROWS", rows)])
            .expect("linear templates expand");
        let p = ctx.pipeline(label, &text);
        self.pipelines.borrow_mut().insert((path, act), p.clone());
        Some(p)
    }

    /// `y [m, n] = act(x [m, k] · Wᵀ + bias)`, x's rows lying as `x.1` says.
    pub fn bind(
        &self,
        ctx: &GpuContext,
        x: (&wgpu::Buffer, XRows),
        w: &wgpu::Buffer,
        bias: &wgpu::Buffer,
        y: &wgpu::Buffer,
        (m, n, k): (usize, usize, usize),
        act: Epilogue,
    ) -> Dispatch {
        let (path, stride) = match x.1 {
            XRows::Dense { held } => (LinearPath::choose(m, k, held), k),
            XRows::Every(stride) => (LinearPath::choose_strided(m, k, stride), stride),
        };
        let Some(pipeline) = self.pipeline(ctx, path, act) else {
            let rows = Layout { row_stride: stride, col_stride: 1 };
            return self.generic.bind(ctx, (x.0, rows), (w, Layout::rows(k)), Some(bias), y, (m, n, k), act);
        };
        let params = Params { m: m as u32, n: n as u32, k4: (k / 4) as u32, x_stride4: (stride / 4) as u32 };
        let groups = match path {
            LinearPath::Rows(r) => [n.div_ceil(32) as u32, m.div_ceil(r) as u32, 1],
            _ => [n.div_ceil(TILE) as u32, m.div_ceil(TILE) as u32, 1],
        };
        ctx.dispatch(&pipeline, &params, &[x.0, w, bias, y], groups)
    }
}
