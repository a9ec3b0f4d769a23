//! Where training's heavy steps run: on the kernels' plain references, or
//! fast: matrix products on the GEMM (rten-gemm, every core natively,
//! simd128 in wasm), attention as GEMMs per (sequence, head) across the
//! cores (`fast_attention`), activations in chunks across the cores. The
//! rest of the pass is per-row and cheap. tests/classifier.rs holds `Fast` against
//! `Reference`.

use rayon::prelude::*;
use rten_gemm::{GemmExecutor, GemmInputA, GemmInputB, GemmOptions};
use rten_tensor::NdTensorView;

use crate::classifier::fast_attention::{attention_backward_fast, attention_fast};
use crate::fast_cpu::apply_activation;
use crate::kernels::attention::{attention_backward_cpu, attention_context_cpu, attention_probs_cpu, AttentionShape};
use crate::kernels::embeddings::embeddings_backward_cpu;
use crate::kernels::matmul::{activation_backward_cpu, column_sums_cpu, matmul_cpu, Epilogue, Layout};
use crate::tokenize::Batch;
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

/// Elements an activation's chunk holds when spread over the cores.
const CHUNK: usize = 1 << 14;

impl CpuMath {
    /// Attention probabilities `[batch, heads, seq, seq]` and the context made
    /// from them after `dropout` (factors shaped as the probabilities).
    pub fn attention(self, qkv: &[f32], mask: &[u32], dropout: Option<&[f32]>, s: AttentionShape) -> (Vec<f32>, Vec<f32>) {
        match self {
            CpuMath::Reference => {
                let probs = attention_probs_cpu(qkv, mask, s);
                let ctx = match dropout {
                    Some(f) => attention_context_cpu(qkv, &probs.iter().zip(f).map(|(p, f)| p * f).collect::<Vec<_>>(), s),
                    None => attention_context_cpu(qkv, &probs, s),
                };
                (probs, ctx)
            }
            CpuMath::Fast => attention_fast(qkv, mask, dropout, s),
        }
    }

    /// The gradient of `qkv` from the context's (see `attention_backward_cpu`).
    pub fn attention_backward(self, qkv: &[f32], probs: &[f32], dropout: Option<&[f32]>, d_ctx: &[f32], s: AttentionShape) -> Vec<f32> {
        match self {
            CpuMath::Reference => attention_backward_cpu(qkv, probs, dropout, d_ctx, s),
            CpuMath::Fast => attention_backward_fast(qkv, probs, dropout, d_ctx, s),
        }
    }

    /// `act` applied to each pre-activation.
    pub fn activation(self, pre: &[f32], act: Epilogue) -> Vec<f32> {
        match self {
            CpuMath::Reference => pre.iter().map(|&v| act.apply(v)).collect(),
            CpuMath::Fast => {
                // the forward's vectorised epilogues (rten-vecmath)
                let mut y = pre.to_vec();
                apply_activation(act, &mut y);
                y
            }
        }
    }

    /// `dy · act'(pre)`.
    pub fn activation_backward(self, pre: &[f32], dy: &[f32], act: Epilogue) -> Vec<f32> {
        match self {
            CpuMath::Reference => activation_backward_cpu(pre, dy, act),
            CpuMath::Fast => {
                pre.par_chunks(CHUNK).zip(dy.par_chunks(CHUNK)).flat_map_iter(|(p, d)| activation_backward_cpu(p, d, act)).collect()
            }
        }
    }
}

impl CpuMath {
    /// Adds each token's row of `d_out` into the rows of the three embedding
    /// tables' gradients (word, position, token type) it read.
    pub fn embeddings_backward(self, batch: &Batch, d_out: &[f32], (word, position, token_type): EmbeddingGrads, hidden: usize) {
        let (ids, types, seq) = (&batch.input_ids, &batch.token_type_ids, batch.seq_len);
        match self {
            CpuMath::Reference => {
                let sizes = (word.len() / hidden, position.len() / hidden, token_type.len() / hidden);
                let (dw, dp, dt) = embeddings_backward_cpu(ids, types, seq, d_out, sizes, hidden);
                add(word, &dw);
                add(position, &dp);
                add(token_type, &dt);
            }
            CpuMath::Fast => {
                // straight into the rows read: no table-sized temporaries (the word table is most of the model)
                for (t, g) in d_out.chunks_exact(hidden).enumerate() {
                    let rows = [(&mut *word, ids[t] as usize), (&mut *position, t % seq), (&mut *token_type, types[t] as usize)];
                    for (table, row) in rows {
                        add(&mut table[row * hidden..][..hidden], g);
                    }
                }
            }
        }
    }
}

/// The gradients of the word, position and token-type tables.
pub type EmbeddingGrads<'a> = (&'a mut Vec<f32>, &'a mut Vec<f32>, &'a mut Vec<f32>);

/// `acc += x`, element by element.
pub fn add(acc: &mut [f32], x: &[f32]) {
    acc.iter_mut().zip(x).for_each(|(a, b)| *a += b);
}
