//! `y = act(x · Wᵀ + b)` on a weight packed once for the GEMM kernel.

use rayon::prelude::*;
use rten_gemm::{BiasVector, GemmExecutor, GemmInputA, GemmInputB, GemmOptions, PackedBMatrix};
use rten_simd::SimdUnaryOp;
use rten_tensor::NdTensorView;
use rten_vecmath::{ApproxGelu, Gelu, Tanh};

use crate::kernels::matmul::Epilogue;
use crate::weights::Linear;

/// A Linear whose weight is packed for the GEMM kernel this CPU has.
pub struct PackedLinear {
    weight: PackedBMatrix<f32>,
    bias: Vec<f32>,
    n: usize,
    k: usize,
    act: Epilogue,
}

/// Chunks of the output the activation runs over (in parallel natively).
const ACT_CHUNK: usize = 1 << 14;

thread_local! {
    /// The GEMM executor for the best kernel this CPU has (it is not `Send`:
    /// one per thread, all choosing the same kernel, so packed weights fit any).
    static EXECUTOR: GemmExecutor<f32> = GemmExecutor::default();
}

pub(super) fn with_executor<R>(f: impl FnOnce(&GemmExecutor<f32>) -> R) -> R {
    EXECUTOR.with(f)
}

impl PackedLinear {
    pub fn new(l: &Linear, act: Epilogue) -> Self {
        // W is [out, in]; the GEMM multiplies by Wᵀ, a transposed view of it
        let wt = NdTensorView::from_data([l.out_dim, l.in_dim], l.weight.as_slice()).transposed();
        PackedLinear { weight: with_executor(|e| e.prepack_b(wt)), bias: l.bias.clone(), n: l.out_dim, k: l.in_dim, act }
    }

    /// `rows` rows of `x` (`[rows, k]`) → `[rows, n]`.
    pub fn forward(&self, x: &[f32], rows: usize) -> Vec<f32> {
        let mut y = vec![0.0f32; rows * self.n];
        if rows == 0 {
            return y;
        }
        let a = NdTensorView::from_data([rows, self.k], x);
        let opts = GemmOptions { bias: Some(BiasVector::Row(&self.bias)), ..Default::default() };
        // shapes come from the weights themselves: a mismatch is a bug in this module
        with_executor(|e| e.gemm(&mut y, GemmInputA::Unpacked(a), GemmInputB::Packed(&self.weight), opts)).expect("GEMM shapes agree");
        apply(self.act, &mut y);
        y
    }
}

/// The epilogue in place, vectorised.
pub fn apply(act: Epilogue, y: &mut [f32]) {
    match act {
        Epilogue::None => {}
        Epilogue::Gelu => y.par_chunks_mut(ACT_CHUNK).for_each(|c| Gelu {}.map_mut(c)),
        Epilogue::GeluTanh => y.par_chunks_mut(ACT_CHUNK).for_each(|c| ApproxGelu {}.map_mut(c)),
        Epilogue::Tanh => y.par_chunks_mut(ACT_CHUNK).for_each(|c| Tanh {}.map_mut(c)),
        Epilogue::Relu => y.par_iter_mut().for_each(|v| *v = v.max(0.0)),
    }
}
