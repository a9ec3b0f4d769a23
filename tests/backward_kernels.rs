//! The training kernels (forward pieces training needs, and every backward
//! pass) against their CPU references on odd shapes: one row, widths that
//! are not multiples of 4 or of a workgroup, sequence lengths 1 … 512,
//! padding, dropout masks; on whatever adapter wgpu finds (lavapipe in CI).

mod common;

use bertlab::gpu::{Dispatch, GpuContext};
use bertlab::kernels::adamw::{adamw_cpu, AdamW, AdamWKernel};
use bertlab::kernels::attention::{
    attention_backward_cpu, attention_context_cpu, attention_probs_cpu, AttentionProbsKernel, AttentionShape, AttentionTrainingKernels,
    ProbsSlot,
};
use bertlab::kernels::cls_gradient::{cls_gradient_cpu, ClsGradientKernel};
use bertlab::kernels::dropout::{dropout_mask_cpu, site_seed, DropoutKernel, Mask};
use bertlab::kernels::embeddings::{embeddings_backward_cpu, EmbeddingsBackwardKernel, SegmentBuffers, Segments};
use bertlab::kernels::layernorm::{layernorm_backward_cpu, LayerNormBackwardKernel, LayerNormGradients};
use bertlab::kernels::matmul::{
    activation_backward_cpu, column_sums_cpu, matmul_cpu, ActivationKernel, ColumnSumsKernel, Epilogue, Layout, MatmulKernel,
};
use bertlab::kernels::sum_squares::{sum_squares_cpu, SumSquaresKernel};
use common::{assert_close, gpu, values};

fn run(ctx: &GpuContext, d: Vec<Dispatch>, outputs: &[(&wgpu::Buffer, usize)]) -> Vec<Vec<f32>> {
    pollster::block_on(ctx.run(&d, outputs)).unwrap()
}

fn mul(a: &[f32], b: &[f32]) -> Vec<f32> {
    a.iter().zip(b).map(|(x, y)| x * y).collect()
}

fn add(a: &[f32], b: &[f32]) -> Vec<f32> {
    a.iter().zip(b).map(|(x, y)| x + y).collect()
}

#[test]
fn dropout_draws_the_cpu_masks() {
    let ctx = gpu();
    let kernel = DropoutKernel::new(&ctx);
    for (len, p) in [(1, 0.5), (1000, 0.1), (70_001, 0.3), (257, 0.0)] {
        let x = values(len, len as u32, 1.0);
        let mask = Mask { seed: site_seed(42, 3, 7), p };
        let buf = ctx.storage_f32("x", &x);
        let got = run(&ctx, vec![kernel.bind(&ctx, &buf, len, mask)], &[(&buf, len)]).remove(0);
        // the same factors, exactly: dropped where the CPU drops, scaled the same
        assert_eq!(got, mul(&x, &dropout_mask_cpu(mask.seed, p, len)), "dropout {len} p {p}");
    }
}

#[test]
fn activations_and_their_backward_passes_match_cpu() {
    let ctx = gpu();
    let kernel = ActivationKernel::new(&ctx);
    for (i, act) in [Epilogue::Gelu, Epilogue::GeluTanh, Epilogue::Relu, Epilogue::Tanh, Epilogue::None].into_iter().enumerate() {
        for len in [1, 1027] {
            let pre = values(len, i as u32 * 10 + len as u32, 4.0);
            let dy = values(len, i as u32 * 10 + 5, 1.0);
            let (pb, out, grad) = (ctx.storage_f32("pre", &pre), ctx.scratch("out", len), ctx.storage_f32("dy", &dy));
            let d = vec![kernel.forward(&ctx, &pb, &out, len, act), kernel.backward(&ctx, &pb, &grad, len, act)];
            let got = run(&ctx, d, &[(&out, len), (&grad, len)]);
            let forward: Vec<f32> = pre.iter().map(|&v| act.apply(v)).collect();
            assert_close(&format!("{act:?} forward {len}"), &got[0], &forward, 2e-6);
            assert_close(&format!("{act:?} backward {len}"), &got[1], &activation_backward_cpu(&pre, &dy, act), 2e-6);
        }
    }
}

#[test]
fn column_sums_add_into_the_gradient() {
    let ctx = gpu();
    let kernel = ColumnSumsKernel::new(&ctx);
    for (rows, n) in [(1, 1), (3, 7), (130, 65), (4096, 3), (70000, 1), (33, 70000)] {
        let x = values(rows * n, (rows + n) as u32, 1.0);
        let before = values(n, 9, 1.0);
        let (xb, sums) = (ctx.storage_f32("x", &x), ctx.storage_f32("sums", &before));
        let got = run(&ctx, vec![kernel.bind(&ctx, &xb, &sums, rows, n)], &[(&sums, n)]).remove(0);
        let want = add(&before, &column_sums_cpu(&x, n));
        // the lanes add in another order than the reference: f32 rounding of sums up to ~100
        let tol = 1e-5 * want.iter().fold(1.0f32, |m, v| m.max(v.abs()));
        assert_close(&format!("column sums {rows}×{n}"), &got, &want, tol);
    }
}

#[test]
fn matmul_accumulates_products_into_a_gradient() {
    let ctx = gpu();
    let kernel = MatmulKernel::new(&ctx);
    // dW += dYᵀ·X with both operands read transposed, k (the rows) not a multiple of 16
    for (rows, out, inp) in [(1, 1, 1), (37, 5, 67), (130, 66, 3)] {
        let dy = values(rows * out, rows as u32, 1.0);
        let x = values(rows * inp, out as u32, 1.0);
        let before = values(out * inp, 3, 1.0);
        let (db, xb, w) = (ctx.storage_f32("dy", &dy), ctx.storage_f32("x", &x), ctx.storage_f32("dw", &before));
        let d = kernel.accumulate(&ctx, (&db, Layout::transposed(out)), (&xb, Layout::transposed(inp)), &w, (out, inp, rows));
        let got = run(&ctx, vec![d], &[(&w, out * inp)]).remove(0);
        let product = matmul_cpu(&dy, Layout::transposed(out), &x, Layout::transposed(inp), None, (out, inp, rows), Epilogue::None);
        assert_close(&format!("dW += dYᵀX {rows}×{out}×{inp}"), &got, &add(&before, &product), 1e-4);
    }
}

#[test]
fn layernorm_backward_matches_cpu_through_residuals_and_dropout() {
    let ctx = gpu();
    let kernel = LayerNormBackwardKernel::new(&ctx);
    for (i, &(rows, h)) in [(1, 1), (7, 5), (3, 33), (5, 300), (2, 1000), (70000, 3)].iter().enumerate() {
        for residual in [false, true] {
            let seed = i as u32 * 2 + residual as u32;
            let x = values(rows * h, seed, 2.0);
            let r = values(rows * h, seed + 50, 1.0);
            let gamma = values(h, seed + 60, 1.0);
            let dy = values(rows * h, seed + 70, 1.0);
            let mask = if residual { Mask { seed: site_seed(1, 2, seed), p: 0.25 } } else { Mask::NONE };
            let input = if residual { add(&x, &r) } else { x.clone() };
            let (want_dx, want_dgamma, want_dbeta) = layernorm_backward_cpu(&input, &gamma, &dy, h, 1e-12);
            let bufs = [&x, &r, &gamma, &dy].map(|v| ctx.storage_f32("in", v));
            let outs = [0; 3].map(|_| ctx.scratch("out", rows * h));
            let (dgamma, dbeta) = (ctx.storage_f32("dgamma", &vec![0.0; h]), ctx.storage_f32("dbeta", &vec![0.0; h]));
            let grads = LayerNormGradients { d_sum: &outs[0], d_branch: &outs[1], g_xhat: &outs[2] };
            let sums = ColumnSumsKernel::new(&ctx);
            let d = vec![
                kernel.bind(&ctx, &bufs[0], residual.then_some(&bufs[1]), &bufs[2], &bufs[3], grads, (rows, h, 1e-12), mask),
                sums.bind(&ctx, &outs[2], &dgamma, rows, h),
                sums.bind(&ctx, &bufs[3], &dbeta, rows, h),
            ];
            let got = run(&ctx, d, &[(&outs[0], rows * h), (&outs[1], rows * h), (&dgamma, h), (&dbeta, h)]);
            let what = format!("layernorm backward {rows}×{h} residual={residual}");
            // relative to the largest gradient, plus a few roundings of dy·gamma amplified by the row's
            // 1/std: a 1-wide row has 1/std = 1/√eps = 10⁶, and a GPU that fuses dy·gamma − mean into
            // one multiply-add (the H200 does, lavapipe does not) leaves 10⁶ × that rounding
            let amplified = (0..rows)
                .map(|r| {
                    let s = &input[r * h..][..h];
                    let mean = s.iter().sum::<f32>() / h as f32;
                    let inv_std = 1.0 / (s.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / h as f32 + 1e-12).sqrt();
                    let dxhat = (0..h).map(|d| (dy[r * h + d] * gamma[d]).abs()).fold(0.0f32, f32::max);
                    4.0 * f32::EPSILON * inv_std * dxhat
                })
                .fold(0.0f32, f32::max);
            let tol = 1e-5 * want_dx.iter().fold(1.0f32, |m, v| m.max(v.abs())) + amplified;
            assert_close(&format!("{what} d_sum"), &got[0], &want_dx, tol);
            let want_branch = mul(&want_dx, &dropout_mask_cpu(mask.seed, mask.p, rows * h));
            assert_close(&format!("{what} d_branch"), &got[1], &want_branch, 2.0 * tol);
            assert_close(&format!("{what} dgamma"), &got[2], &want_dgamma, 1e-5 * rows as f32 + 1e-4);
            assert_close(&format!("{what} dbeta"), &got[3], &want_dbeta, 1e-5 * rows as f32 + 1e-4);
        }
    }
}

/// (batch, seq, heads, head_dim, real tokens per sequence)
const CASES: &[(usize, usize, usize, usize, &[usize])] =
    &[(1, 1, 1, 1, &[1]), (2, 7, 3, 5, &[7, 4]), (3, 17, 2, 3, &[17, 1, 9]), (1, 130, 4, 8, &[100]), (1, 512, 1, 4, &[512])];

#[test]
fn attention_context_and_backward_match_cpu_with_padding_and_dropout() {
    let ctx = gpu();
    let probs_kernel = AttentionProbsKernel::new(&ctx);
    let kept = AttentionProbsKernel::kept(&ctx);
    let kernels = AttentionTrainingKernels::new(&ctx);
    for (i, &(batch, seq, heads, head_dim, lens)) in CASES.iter().enumerate() {
        let s = AttentionShape { batch, seq, heads, head_dim };
        let (rows, hidden) = (batch * seq, s.hidden());
        let qkv = values(rows * 3 * hidden, i as u32, 2.0);
        let d_ctx = values(rows * hidden, i as u32 + 20, 1.0);
        let mask: Vec<u32> = (0..rows).map(|t| ((t % seq) < lens[t / seq]) as u32).collect();
        for p in [0.0, 0.2] {
            let drop = Mask { seed: site_seed(7, i as u32, 1), p };
            let factors = dropout_mask_cpu(drop.seed, p, batch * heads * seq * seq);
            let probs = attention_probs_cpu(&qkv, &mask, s);
            let want_ctx = attention_context_cpu(&qkv, &mul(&probs, &factors), s);
            let want_dqkv = attention_backward_cpu(&qkv, &probs, (p > 0.0).then_some(&factors[..]), &d_ctx, s);

            let (qb, mb, db) = (ctx.storage_f32("qkv", &qkv), ctx.storage_u32("mask", &mask), ctx.storage_f32("d_ctx", &d_ctx));
            let pb = ctx.scratch("probs", probs.len());
            let (cb, scores, dqkv) = (ctx.scratch("ctx", rows * hidden), ctx.scratch("ds", probs.len()), ctx.scratch("dqkv", qkv.len()));
            ctx.queue.write_buffer(&kept, 0, bytemuck::cast_slice(&AttentionProbsKernel::kept_rows(0, batch)));
            let mut d = vec![
                probs_kernel.bind(&ctx, &qb, &mb, ProbsSlot { buffer: &pb, layer: 0, layers: 1 }, &kept, batch, s),
                kernels.context(&ctx, &qb, &pb, &cb, s, drop),
            ];
            d.extend(kernels.backward(&ctx, &qb, &pb, &db, &scores, &dqkv, s, drop));
            let got = run(&ctx, d, &[(&cb, rows * hidden), (&dqkv, qkv.len())]);
            let what = format!("attention b{batch} s{seq} h{heads} d{head_dim} p{p}");
            assert_close(&format!("{what} context"), &got[0], &want_ctx, 1e-5);
            assert_close(&format!("{what} dqkv"), &got[1], &want_dqkv, 1e-4);
        }
    }
}

#[test]
fn embeddings_backward_sums_each_row_in_token_order() {
    let ctx = gpu();
    let kernel = EmbeddingsBackwardKernel::new(&ctx);
    // repeated ids (the sums), one token, a row nobody reads, hidden 1 and 70
    for (tokens, seq, hidden, vocab) in [(1, 1, 1, 3), (12, 4, 70, 5), (300, 100, 3, 40)] {
        let ids: Vec<u32> = (0..tokens).map(|t| ((t * 7 + t / 3) % (vocab - 1)) as u32).collect();
        let types: Vec<u32> = (0..tokens).map(|t| ((t % seq) >= seq / 2) as u32).collect();
        let d_out = values(tokens * hidden, tokens as u32, 1.0);
        let (want_w, want_p, want_t) = embeddings_backward_cpu(&ids, &types, seq, &d_out, (vocab, seq, 2), hidden);
        let segments = Segments::of_batch(&ids, &types, seq);
        let db = ctx.storage_f32("d_out", &d_out);
        let tables = [vocab, seq, 2].map(|n| ctx.storage_f32("table grad", &vec![0.0; n * hidden]));
        let segment_buffers = segments.each_ref().map(|s| SegmentBuffers::new(&ctx, s));
        let d = (0..3).map(|k| kernel.bind(&ctx, &segment_buffers[k], &db, &tables[k], hidden)).collect();
        let got = run(&ctx, d, &[(&tables[0], vocab * hidden), (&tables[1], seq * hidden), (&tables[2], 2 * hidden)]);
        // the same additions in the same order: equal, not merely close
        assert_eq!(got[0], want_w, "word embeddings {tokens}×{hidden}");
        assert_eq!(got[1], want_p, "position embeddings {tokens}×{hidden}");
        assert_eq!(got[2], want_t, "token type embeddings {tokens}×{hidden}");
    }
}

#[test]
fn cls_gradient_fills_each_sequences_first_row() {
    let ctx = gpu();
    let kernel = ClsGradientKernel::new(&ctx);
    for (batch, seq, hidden) in [(1, 1, 1), (3, 5, 7), (2, 130, 33)] {
        let d_cls = values(batch * hidden, seq as u32, 1.0);
        // stale values in dx must be overwritten
        let dx = ctx.storage_f32("dx", &vec![9.0; batch * seq * hidden]);
        let d = vec![kernel.bind(&ctx, &ctx.storage_f32("d_cls", &d_cls), &dx, (batch, seq, hidden))];
        let got = run(&ctx, d, &[(&dx, batch * seq * hidden)]).remove(0);
        assert_eq!(got, cls_gradient_cpu(&d_cls, batch, seq, hidden), "cls gradient {batch}×{seq}×{hidden}");
    }
}

#[test]
fn sums_of_squares_add_up_to_the_norm() {
    let ctx = gpu();
    let kernel = SumSquaresKernel::new(&ctx);
    let tensors: Vec<Vec<f32>> = [1, 4095, 4096, 4097, 300_001].iter().map(|&n| values(n, n as u32, 1.0)).collect();
    let total: usize = tensors.iter().map(|t| SumSquaresKernel::partials(t.len())).sum();
    let partials = ctx.storage_f32("partials", &vec![0.0; total]);
    let bufs: Vec<wgpu::Buffer> = tensors.iter().map(|t| ctx.storage_f32("x", t)).collect();
    let mut offset = 0;
    let mut d = Vec::new();
    for (t, b) in tensors.iter().zip(&bufs) {
        d.push(kernel.bind(&ctx, b, t.len(), &partials, offset));
        offset += SumSquaresKernel::partials(t.len());
    }
    let got: f64 = run(&ctx, d, &[(&partials, total)]).remove(0).iter().map(|&v| f64::from(v)).sum();
    let want: f64 = tensors.iter().map(|t| sum_squares_cpu(t)).sum();
    assert!((got - want).abs() <= 1e-5 * want, "sum of squares {got} vs {want}");
}

#[test]
fn adamw_scales_gradients_as_clipping_does() {
    let ctx = gpu();
    let kernel = AdamWKernel::new(&ctx);
    let len = 1001;
    let (p0, g) = (values(len, 1, 1.0), values(len, 2, 3.0));
    let opt = AdamW { grad_scale: 0.37, ..AdamW::new(2e-3, 0.01) };
    let (mut p, mut m, mut v) = (p0.clone(), vec![0.0; len], vec![0.0; len]);
    // the CPU path clips by scaling inside the update too; its plain form is
    // the update on pre-scaled gradients
    let scaled: Vec<f32> = g.iter().map(|x| x * 0.37).collect();
    adamw_cpu(&AdamW { grad_scale: 1.0, ..opt }, 2, &mut p, &scaled, &mut m, &mut v);
    let bufs = [&g, &p0, &vec![0.0; len], &vec![0.0; len]].map(|x| ctx.storage_f32("t", x));
    let d = vec![kernel.bind(&ctx, &opt, 2, &bufs[0], &bufs[1], &bufs[2], &bufs[3], len)];
    let got = run(&ctx, d, &[(&bufs[1], len), (&bufs[2], len), (&bufs[3], len)]);
    assert_close("adamw parameters", &got[0], &p, 1e-6);
    assert_close("adamw m", &got[1], &m, 1e-7);
    assert_close("adamw v", &got[2], &v, 1e-7);
}
