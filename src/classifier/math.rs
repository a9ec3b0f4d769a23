//! Where training's matrix products run: the plain reference (`matmul_cpu`)
//! or the fast GEMM (rten-gemm, every core natively, simd128 in wasm). The
//! rest of the backward pass is element-wise or per-row and always runs on
//! the kernels' plain references; tests/classifier.rs holds `Fast` against
//! `Reference`.

use rten_gemm::{GemmExecutor, GemmInputA, GemmInputB, GemmOptions};
use rten_tensor::NdTensorView;

use crate::kernels::matmul::{column_sums_cpu, matmul_cpu, Epilogue, Layout};
use crate::weights::Linear;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CpuMath {
    Reference,
    Fast,
}

thread_local! {
    static EXECUTOR: GemmExecutor<f32> = GemmExecutor::default();
}

impl CpuMath {
    /// `C[i, j] = Σ_kk A(i, kk)·W(j, kk)`, `[m, n]`, operands read through their layouts.
    pub fn matmul(self, a: &[f32], a_layout: Layout, w: &[f32], w_layout: Layout, (m, n, k): (usize, usize, usize)) -> Vec<f32> {
        match self {
            CpuMath::Reference => matmul_cpu(a, a_layout, w, w_layout, None, (m, n, k), Epilogue::None),
            CpuMath::Fast => {
                let mut c = vec![0.0f32; m * n];
                if m == 0 || n == 0 {
                    return c;
                }
                // the GEMM multiplies A [m, k] by B [k, n] with B(kk, j) = W(j, kk)
                let view = |data, shape, strides| NdTensorView::from_data_with_strides(shape, data, strides);
                let a = view(a, [m, k], [a_layout.row_stride, a_layout.col_stride]).expect("operand A fits its layout");
                let b = view(w, [k, n], [w_layout.col_stride, w_layout.row_stride]).expect("operand W fits its layout");
                EXECUTOR
                    .with(|e| e.gemm(&mut c, GemmInputA::Unpacked(a), GemmInputB::Unpacked(b), GemmOptions::default()))
                    .expect("GEMM shapes agree");
                c
            }
        }
    }

    /// `y = x·Wᵀ + b` over `rows` rows (no activation: training keeps the pre-activation).
    pub fn linear(self, x: &[f32], rows: usize, l: &Linear) -> Vec<f32> {
        let mut y = self.matmul(x, Layout::rows(l.in_dim), &l.weight, Layout::rows(l.in_dim), (rows, l.out_dim, l.in_dim));
        for row in y.chunks_exact_mut(l.out_dim) {
            row.iter_mut().zip(&l.bias).for_each(|(v, b)| *v += b);
        }
        y
    }

    /// The backward pass of [`Self::linear`]: adds dW = dYᵀ·X and db = Σ dY
    /// into `grad`, and returns dX = dY·W when asked.
    pub fn linear_backward(self, x: &[f32], dy: &[f32], rows: usize, l: &Linear, grad: &mut Linear, want_dx: bool) -> Option<Vec<f32>> {
        let (out, inp) = (l.out_dim, l.in_dim);
        let dw = self.matmul(dy, Layout::transposed(out), x, Layout::transposed(inp), (out, inp, rows));
        add(&mut grad.weight, &dw);
        add(&mut grad.bias, &column_sums_cpu(dy, out));
        want_dx.then(|| self.matmul(dy, Layout::rows(out), &l.weight, Layout::transposed(inp), (rows, inp, out)))
    }
}

/// `acc += x`, element by element.
pub fn add(acc: &mut [f32], x: &[f32]) {
    acc.iter_mut().zip(x).for_each(|(a, b)| *a += b);
}
