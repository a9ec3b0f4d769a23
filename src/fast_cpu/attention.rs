//! Masked multi-head self-attention, one (sequence, head) block at a time:
//! scores = Q·Kᵀ/√d (a GEMM on strided views of the QKV rows), a softmax over
//! the real keys, then P·V. A block's probabilities are kept only for the rows
//! asked for.

use std::ops::Range;

use rayon::prelude::*;
use rten_gemm::{GemmInputA, GemmInputB, GemmOptions};
use rten_simd::SimdOp;
use rten_tensor::NdTensorView;
use rten_vecmath::Softmax;

use super::linear::with_executor;
use crate::kernels::attention::AttentionShape;

/// Where one layer's kept probabilities go: `[rows, layers, heads, seq, seq]`
/// (`probs`), for the batch rows `rows`, at `layer` of `layers`.
pub type ProbsSlot<'a> = (&'a mut [f32], Range<usize>, usize, usize);

/// The same as `attention_cpu`: `qkv` is `[batch·seq, 3·hidden]`, `mask`
/// `[batch·seq]`; returns the context `[batch·seq, hidden]`.
pub fn attention_fast(qkv: &[f32], mask: &[u32], s: AttentionShape, probs: Option<ProbsSlot>) -> Vec<f32> {
    let (seq, dh, hidden, heads) = (s.seq, s.head_dim, s.hidden(), s.heads);
    let stride = 3 * hidden;
    let scale = 1.0 / (dh as f32).sqrt();
    let kept = probs.as_ref().map(|p| p.1.clone());
    // strided views into the QKV rows; the shapes are this function's own, so they fit
    let view = |offset: usize, shape: [usize; 2], strides: [usize; 2]| {
        NdTensorView::from_data_with_strides(shape, &qkv[offset..], strides).expect("a view inside the QKV rows")
    };
    let blocks: Vec<(Vec<f32>, Option<Vec<f32>>)> = (0..s.batch * heads)
        .into_par_iter()
        .map(|bh| {
            let (b, h) = (bh / heads, bh % heads);
            let base = b * seq * stride + h * dh;
            let q = view(base, [seq, dh], [stride, 1]);
            let k_t = view(base + hidden, [dh, seq], [1, stride]);
            let v = view(base + 2 * hidden, [seq, dh], [stride, 1]);
            let mut scores = vec![0.0f32; seq * seq];
            let opts = GemmOptions { alpha: scale, ..Default::default() };
            with_executor(|e| e.gemm(&mut scores, GemmInputA::Unpacked(q), GemmInputB::Unpacked(k_t), opts)).expect("GEMM shapes agree");
            let real = &mask[b * seq..][..seq];
            for row in scores.chunks_mut(seq) {
                for (x, &m) in row.iter_mut().zip(real) {
                    if m == 0 {
                        *x = f32::NEG_INFINITY;
                    }
                }
                Softmax::new_mut(row).dispatch();
            }
            let mut out = vec![0.0f32; seq * dh];
            let p = NdTensorView::from_data([seq, seq], scores.as_slice());
            with_executor(|e| e.gemm(&mut out, GemmInputA::Unpacked(p), GemmInputB::Unpacked(v), GemmOptions::default()))
                .expect("GEMM shapes agree");
            let keep = kept.as_ref().is_some_and(|r| r.contains(&b));
            (out, keep.then_some(scores))
        })
        .collect();
    let mut ctx = vec![0.0f32; s.batch * seq * hidden];
    for (bh, (out, _)) in blocks.iter().enumerate() {
        let (b, h) = (bh / heads, bh % heads);
        for (t, row) in out.chunks(dh).enumerate() {
            ctx[(b * seq + t) * hidden + h * dh..][..dh].copy_from_slice(row);
        }
    }
    if let Some((all, rows, layer, layers)) = probs {
        let per = seq * seq;
        for (bh, (_, p)) in blocks.iter().enumerate() {
            if let Some(p) = p {
                let (b, h) = (bh / heads, bh % heads);
                all[(((b - rows.start) * layers + layer) * heads + h) * per..][..per].copy_from_slice(p);
            }
        }
    }
    ctx
}
