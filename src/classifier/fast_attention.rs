//! Training's attention on the GEMM, one (sequence, head) at a time across
//! the cores: the scores, the context and all four products of the backward
//! pass are matrix products read straight out of `qkv` through strided
//! layouts (row stride 3·hidden), with the softmax and its backward per row
//! between them. The same math as `attention_{probs,context,backward}_cpu`,
//! held to them by tests/classifier.rs.

use rayon::prelude::*;

use crate::classifier::math::CpuMath;
use crate::kernels::attention::AttentionShape;
use crate::kernels::matmul::Layout;

/// Rows of `qkv` (`[batch·seq, 3·hidden]`) or of a `[batch·seq, hidden]` tensor, as operand layouts.
fn strided(row_stride: usize) -> Layout {
    Layout { row_stride, col_stride: 1 }
}

/// A `[rows, cols]` matrix read transposed.
fn transposed_rows(row_stride: usize) -> Layout {
    Layout { row_stride: 1, col_stride: row_stride }
}

/// Where sequence `b`, head `h`, part `part` (0 q, 1 k, 2 v) starts in `qkv`.
fn offset(s: AttentionShape, b: usize, h: usize, part: usize) -> usize {
    b * s.seq * 3 * s.hidden() + part * s.hidden() + h * s.head_dim
}

/// Probabilities `[batch, heads, seq, seq]` and the context `[batch·seq, hidden]` made from them after `dropout`.
pub fn attention_fast(qkv: &[f32], mask: &[u32], dropout: Option<&[f32]>, s: AttentionShape) -> (Vec<f32>, Vec<f32>) {
    let (seq, dh, hidden) = (s.seq, s.head_dim, s.hidden());
    let scale = 1.0 / (dh as f32).sqrt();
    let per = seq * seq;
    let parts: Vec<(Vec<f32>, Vec<f32>)> = (0..s.batch * s.heads)
        .into_par_iter()
        .map(|bh| {
            let (b, h) = (bh / s.heads, bh % s.heads);
            let (q, k, v) = (&qkv[offset(s, b, h, 0)..], &qkv[offset(s, b, h, 1)..], &qkv[offset(s, b, h, 2)..]);
            // scores S = Q·Kᵀ, then a softmax over the real keys of each row
            let mut p = CpuMath::Fast.matmul(q, strided(3 * hidden), k, strided(3 * hidden), (seq, seq, dh));
            let real = &mask[b * seq..][..seq];
            for row in p.chunks_exact_mut(seq) {
                let max = row.iter().zip(real).filter(|(_, &m)| m != 0).fold(f32::NEG_INFINITY, |m, (x, _)| m.max(x * scale));
                let mut sum = 0.0;
                for (x, &m) in row.iter_mut().zip(real) {
                    *x = if m != 0 { (*x * scale - max).exp() } else { 0.0 };
                    sum += *x;
                }
                row.iter_mut().for_each(|x| *x /= sum);
            }
            let used: Vec<f32> = match dropout {
                Some(f) => p.iter().zip(&f[bh * per..][..per]).map(|(x, f)| x * f).collect(),
                None => p.clone(),
            };
            // context C = P'·V, with V(j, d) read as W(d, j)
            let ctx = CpuMath::Fast.matmul(&used, Layout::rows(seq), v, transposed_rows(3 * hidden), (seq, dh, seq));
            (p, ctx)
        })
        .collect();
    let mut probs = Vec::with_capacity(s.batch * s.heads * per);
    let mut ctx = vec![0.0f32; s.batch * seq * hidden];
    for (bh, (p, c)) in parts.into_iter().enumerate() {
        let (b, h) = (bh / s.heads, bh % s.heads);
        probs.extend(p);
        for (i, row) in c.chunks_exact(dh).enumerate() {
            ctx[(b * seq + i) * hidden + h * dh..][..dh].copy_from_slice(row);
        }
    }
    (probs, ctx)
}

/// The gradient of `qkv` from the context's.
pub fn attention_backward_fast(qkv: &[f32], probs: &[f32], dropout: Option<&[f32]>, d_ctx: &[f32], s: AttentionShape) -> Vec<f32> {
    let (seq, dh, hidden) = (s.seq, s.head_dim, s.hidden());
    let scale = 1.0 / (dh as f32).sqrt();
    let per = seq * seq;
    let parts: Vec<[Vec<f32>; 3]> = (0..s.batch * s.heads)
        .into_par_iter()
        .map(|bh| {
            let (b, h) = (bh / s.heads, bh % s.heads);
            let (q, k, v) = (&qkv[offset(s, b, h, 0)..], &qkv[offset(s, b, h, 1)..], &qkv[offset(s, b, h, 2)..]);
            let dc = &d_ctx[b * seq * hidden + h * dh..];
            let p = &probs[bh * per..][..per];
            let factors = dropout.map(|f| &f[bh * per..][..per]);
            let used: Vec<f32> = match factors {
                Some(f) => p.iter().zip(f).map(|(x, f)| x * f).collect(),
                None => p.to_vec(),
            };
            // dV = P'ᵀ·dC and dP' = dC·Vᵀ, then back through dropout
            let dv = CpuMath::Fast.matmul(&used, Layout::transposed(seq), dc, transposed_rows(hidden), (seq, dh, seq));
            let mut dp = CpuMath::Fast.matmul(dc, strided(hidden), v, strided(3 * hidden), (seq, seq, dh));
            if let Some(f) = factors {
                dp.iter_mut().zip(f).for_each(|(x, f)| *x *= f);
            }
            // through the softmax: dS = P ⊙ (dP − Σ P⊙dP), times the scores' scale
            for (dp_row, p_row) in dp.chunks_exact_mut(seq).zip(p.chunks_exact(seq)) {
                let dot: f32 = p_row.iter().zip(dp_row.iter()).map(|(a, b)| a * b).sum();
                dp_row.iter_mut().zip(p_row).for_each(|(x, p)| *x = p * (*x - dot) * scale);
            }
            // dQ = dS·K and dK = dSᵀ·Q
            let dq = CpuMath::Fast.matmul(&dp, Layout::rows(seq), k, transposed_rows(3 * hidden), (seq, dh, seq));
            let dk = CpuMath::Fast.matmul(&dp, Layout::transposed(seq), q, transposed_rows(3 * hidden), (seq, dh, seq));
            [dq, dk, dv]
        })
        .collect();
    let mut dqkv = vec![0.0f32; qkv.len()];
    for (bh, grads) in parts.into_iter().enumerate() {
        let (b, h) = (bh / s.heads, bh % s.heads);
        for (part, g) in grads.iter().enumerate() {
            for (i, row) in g.chunks_exact(dh).enumerate() {
                dqkv[(b * seq + i) * 3 * hidden + part * hidden + h * dh..][..dh].copy_from_slice(row);
            }
        }
    }
    dqkv
}
