//! Every WGSL kernel against its CPU reference, on odd shapes (not multiples
//! of the tile sizes, sequence length 1, padding masks), on whatever adapter
//! wgpu finds (Mesa's lavapipe in CI).

mod common;

use bertlab::gpu::{Dispatch, GpuContext};
use bertlab::kernels::attention::{attention_cpu, AttentionProbsKernel, AttentionShape, FlashAttentionKernel, ProbsSlot};
use bertlab::kernels::embeddings::{embeddings_cpu, EmbeddingTables, EmbeddingsKernel};
use bertlab::kernels::layernorm::{layernorm_cpu, LayerNormKernel};
use bertlab::kernels::linear::{LinearKernel, LinearPath, XRows};
use bertlab::kernels::matmul::{linear_cpu, matmul_cpu, Epilogue, Layout, MatmulKernel};
use bertlab::weights::LayerNorm;
use common::{assert_close, gpu, values};

fn run(ctx: &GpuContext, d: Dispatch, outputs: &[(&wgpu::Buffer, usize)]) -> Vec<Vec<f32>> {
    pollster::block_on(ctx.run(&[d], outputs)).unwrap()
}

#[test]
fn matmul_matches_cpu_on_odd_shapes_and_every_epilogue() {
    let ctx = gpu();
    let kernel = MatmulKernel::new(&ctx);
    let shapes = [(1, 1, 1), (3, 5, 7), (65, 67, 33), (130, 77, 200), (17, 300, 129), (64, 64, 16)];
    let epilogues = [Epilogue::None, Epilogue::Gelu, Epilogue::GeluTanh, Epilogue::Relu, Epilogue::Tanh];
    for (i, &(m, n, k)) in shapes.iter().enumerate() {
        for (j, &act) in epilogues.iter().enumerate() {
            let seed = (i * 10 + j) as u32;
            let x = values(m * k, seed, 1.0);
            let w = values(n * k, seed + 100, 0.5);
            let b = values(n, seed + 200, 0.5);
            let want = linear_cpu(&x, &w, &b, m, n, k, act);
            let (xb, wb, bb) = (ctx.storage_f32("x", &x), ctx.storage_f32("w", &w), ctx.storage_f32("b", &b));
            let y = ctx.scratch("y", m * n);
            let d = kernel.bind(&ctx, (&xb, Layout::rows(k)), (&wb, Layout::rows(k)), Some(&bb), &y, (m, n, k), act);
            let got = run(&ctx, d, &[(&y, m * n)]).remove(0);
            assert_close(&format!("matmul {m}×{n}×{k} {act:?}"), &got, &want, 1e-4 * (k as f32).sqrt());
        }
    }
}

#[test]
fn matmul_reads_strided_rows() {
    // The pooler reads the [CLS] row of each sequence: rows s·h apart.
    let ctx = gpu();
    let kernel = MatmulKernel::new(&ctx);
    let (batch, seq, h, n) = (3, 5, 19, 23);
    let hidden = values(batch * seq * h, 7, 1.0);
    let w = values(n * h, 8, 0.5);
    let b = values(n, 9, 0.5);
    let cls: Vec<f32> = (0..batch).flat_map(|r| hidden[r * seq * h..][..h].to_vec()).collect();
    let want = linear_cpu(&cls, &w, &b, batch, n, h, Epilogue::Tanh);
    let (xb, wb, bb) = (ctx.storage_f32("x", &hidden), ctx.storage_f32("w", &w), ctx.storage_f32("b", &b));
    let y = ctx.scratch("y", batch * n);
    let cls = Layout { row_stride: seq * h, col_stride: 1 };
    let d = kernel.bind(&ctx, (&xb, cls), (&wb, Layout::rows(h)), Some(&bb), &y, (batch, n, h), Epilogue::Tanh);
    assert_close("strided matmul", &run(&ctx, d, &[(&y, batch * n)])[0], &want, 1e-5);
}

#[test]
fn matmul_computes_the_backward_products_through_transposed_layouts() {
    // dW = dYᵀ·X and dX = dY·W for a Linear with odd sizes, without a bias
    let ctx = gpu();
    let kernel = MatmulKernel::new(&ctx);
    let (rows, n, k) = (37, 5, 70);
    let dy = values(rows * n, 11, 1.0);
    let x = values(rows * k, 12, 1.0);
    let w = values(n * k, 13, 1.0);
    let (dyb, xb, wb) = (ctx.storage_f32("dy", &dy), ctx.storage_f32("x", &x), ctx.storage_f32("w", &w));
    // dW[j, kk] = Σ_r dY[r, j]·X[r, kk]: A = dYᵀ, "W" = Xᵀ
    let want_dw = matmul_cpu(&dy, Layout::transposed(n), &x, Layout::transposed(k), None, (n, k, rows), Epilogue::None);
    let naive: Vec<f32> = (0..n * k).map(|i| (0..rows).map(|r| dy[r * n + i / k] * x[r * k + i % k]).sum()).collect();
    assert_close("cpu dW", &want_dw, &naive, 1e-4);
    let dw = ctx.scratch("dw", n * k);
    let d = kernel.bind(&ctx, (&dyb, Layout::transposed(n)), (&xb, Layout::transposed(k)), None, &dw, (n, k, rows), Epilogue::None);
    assert_close("dW", &run(&ctx, d, &[(&dw, n * k)])[0], &want_dw, 1e-4);
    // dX[r, kk] = Σ_j dY[r, j]·W[j, kk]: "W" = Wᵀ
    let want_dx = matmul_cpu(&dy, Layout::rows(n), &w, Layout::transposed(k), None, (rows, k, n), Epilogue::None);
    let naive: Vec<f32> = (0..rows * k).map(|i| (0..n).map(|j| dy[(i / k) * n + j] * w[j * k + i % k]).sum()).collect();
    assert_close("cpu dX", &want_dx, &naive, 1e-4);
    let dx = ctx.scratch("dx", rows * k);
    let d = kernel.bind(&ctx, (&dyb, Layout::rows(n)), (&wb, Layout::transposed(k)), None, &dx, (rows, k, n), Epilogue::None);
    assert_close("dX", &run(&ctx, d, &[(&dx, rows * k)])[0], &want_dx, 1e-4);
}

#[test]
fn layernorm_matches_cpu_with_and_without_residual() {
    let ctx = gpu();
    let kernel = LayerNormKernel::new(&ctx);
    // widths below, at and above the 256-thread workgroup; 70000 rows fold the grid into 2-D
    for (i, &(rows, h)) in [(1, 1), (7, 5), (3, 33), (5, 300), (2, 1000), (70000, 3)].iter().enumerate() {
        for residual in [false, true] {
            let seed = i as u32 * 2 + residual as u32;
            // a large mean on purpose: the two-pass variance must cope with it
            // (not on 3-wide rows, where some rows' variance is near 0 and any
            // rounding of the mean is amplified by 1/std, on CPU and GPU alike)
            let offset = if h > 3 { 30.0 } else { 0.0 };
            let x: Vec<f32> = values(rows * h, seed, 2.0).iter().map(|v| v + offset).collect();
            let r = values(rows * h, seed + 50, 1.0);
            let norm = LayerNorm { gamma: values(h, seed + 60, 1.0), beta: values(h, seed + 70, 1.0) };
            let want = layernorm_cpu(&x, residual.then_some(&r[..]), &norm, h, 1e-12);
            let (xb, rb) = (ctx.storage_f32("x", &x), ctx.storage_f32("r", &r));
            let (gb, bb) = (ctx.storage_f32("g", &norm.gamma), ctx.storage_f32("b", &norm.beta));
            let out = ctx.scratch("out", rows * h);
            let d = kernel.bind(&ctx, &xb, residual.then_some(&rb), (&gb, &bb), &out, rows, h, 1e-12);
            let got = run(&ctx, d, &[(&out, rows * h)]).remove(0);
            assert_close(&format!("layernorm {rows}×{h} residual={residual}"), &got, &want, 1e-4);
        }
    }
}

#[test]
fn embeddings_match_cpu() {
    let ctx = gpu();
    let kernel = EmbeddingsKernel::new(&ctx);
    for &(batch, seq, h) in &[(1, 1, 1), (3, 5, 7), (2, 13, 130)] {
        let (vocab, positions, types) = (11, 17, 2);
        let ids: Vec<u32> = (0..batch * seq).map(|t| (t * 7 % vocab) as u32).collect();
        let tt: Vec<u32> = (0..batch * seq).map(|t| ((t % seq) > seq / 2) as u32).collect();
        let (word, pos, typ) = (values(vocab * h, 1, 1.0), values(positions * h, 2, 1.0), values(types * h, 3, 1.0));
        let want = embeddings_cpu(&ids, &tt, seq, &word, &pos, &typ, h);
        let (ib, tb) = (ctx.storage_u32("ids", &ids), ctx.storage_u32("tt", &tt));
        let (wb, pb, yb) = (ctx.storage_f32("w", &word), ctx.storage_f32("p", &pos), ctx.storage_f32("t", &typ));
        let out = ctx.scratch("out", batch * seq * h);
        let tables = EmbeddingTables { word: &wb, position: &pb, token_type: &yb };
        let d = kernel.bind(&ctx, &ib, &tb, tables, &out, batch * seq, seq, h);
        let got = run(&ctx, d, &[(&out, batch * seq * h)]).remove(0);
        assert_close(&format!("embeddings {batch}×{seq}×{h}"), &got, &want, 1e-6);
    }
}

/// (batch, seq, heads, head_dim, real tokens per row): one token, odd sizes,
/// padding, a sequence past the flash kernel's 64-query blocks, 512 tokens.
/// Head sizes are multiples of 4 (the flash kernel reads vec4 rows; the
/// encoder refuses other models up front), odd multiples included.
const ATTENTION_CASES: [(usize, usize, usize, usize, &[usize]); 6] = [
    (1, 1, 1, 4, &[1]),
    (2, 7, 3, 12, &[7, 4]),
    (3, 9, 2, 64, &[1, 9, 5]),
    (1, 200, 2, 20, &[131]),
    (2, 130, 4, 32, &[130, 3]),
    (1, 512, 1, 8, &[512]),
];

type AttentionCase = (usize, usize, usize, usize, &'static [usize]);

fn attention_case(i: usize, (batch, seq, heads, head_dim, lens): AttentionCase) -> (AttentionShape, Vec<f32>, Vec<u32>) {
    let s = AttentionShape { batch, seq, heads, head_dim };
    let qkv = values(batch * seq * 3 * s.hidden(), i as u32, 2.0);
    let mask: Vec<u32> = (0..batch * seq).map(|t| ((t % seq) < lens[t / seq]) as u32).collect();
    (s, qkv, mask)
}

#[test]
fn flash_attention_matches_cpu_with_padding_masks() {
    let ctx = gpu();
    let kernel = FlashAttentionKernel::new();
    for (i, &case) in ATTENTION_CASES.iter().enumerate() {
        let (s, qkv, mask) = attention_case(i, case);
        let (want_ctx, _) = attention_cpu(&qkv, &mask, s);
        let (qb, mb) = (ctx.storage_f32("qkv", &qkv), ctx.storage_u32("mask", &mask));
        let out = ctx.scratch("ctx", s.batch * s.seq * s.hidden());
        let d = kernel.bind(&ctx, &qb, &mb, &out, s).unwrap();
        let got = run(&ctx, d, &[(&out, want_ctx.len())]).remove(0);
        assert_close(&format!("flash attention b{} s{} h{} d{}", s.batch, s.seq, s.heads, s.head_dim), &got, &want_ctx, 2e-5);
    }
    let odd = AttentionShape { batch: 1, seq: 3, heads: 1, head_dim: 5 };
    let (qb, mb) = (ctx.storage_f32("qkv", &[0.0; 45]), ctx.storage_u32("mask", &[1; 3]));
    let err = kernel.bind(&ctx, &qb, &mb, &ctx.scratch("ctx", 15), odd).err().expect("head size 5 refused");
    assert!(err.to_string().contains("multiple of 4"), "{err}");
}

#[test]
fn attention_probabilities_match_cpu_for_the_rows_kept() {
    let ctx = gpu();
    let kernel = AttentionProbsKernel::new(&ctx);
    let kept = AttentionProbsKernel::kept(&ctx);
    for (i, &case) in ATTENTION_CASES.iter().enumerate() {
        let (s, qkv, mask) = attention_case(i, case);
        let (seq, heads) = (s.seq, s.heads);
        let (_, want) = attention_cpu(&qkv, &mask, s);
        let (qb, mb) = (ctx.storage_f32("qkv", &qkv), ctx.storage_u32("mask", &mask));
        // the last row (the only one when there is one), in the middle of three layers
        let (first, count, layers) = (s.batch - 1, 1, 3);
        let per = heads * seq * seq;
        let probs = ctx.storage_f32("probs", &vec![-1.0; count * layers * per]);
        ctx.queue.write_buffer(&kept, 0, bytemuck::cast_slice(&AttentionProbsKernel::kept_rows(first, count)));
        let slot = ProbsSlot { buffer: &probs, layer: 1, layers };
        let d = kernel.bind(&ctx, &qb, &mb, slot, &kept, count, s);
        let got = run(&ctx, d, &[(&probs, count * layers * per)]).remove(0);
        let what = format!("attention b{} s{seq} h{heads} d{}", s.batch, s.head_dim);
        for l in 0..layers {
            let slice = &got[l * per..][..per];
            if l != 1 {
                assert!(slice.iter().all(|&v| v == -1.0), "{what}: layer {l} was written");
                continue;
            }
            assert_close(&format!("{what} probabilities"), slice, &want[first * per..][..per], 1e-6);
            let real = case.4[first];
            for p in slice.chunks(seq) {
                assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-5, "{what}: a row does not sum to 1");
                assert!(p[real..].iter().all(|&v| v == 0.0), "{what}: a padded key has probability > 0");
            }
        }
    }
}

/// Every path of the linear kernel (few rows at each size, 64×64 tiles, the
/// generic fallback) and every epilogue against the CPU reference; x's buffer
/// holds padded rows as the encoder's do.
#[test]
fn linear_kernels_match_cpu_on_every_path() {
    let ctx = gpu();
    let kernel = LinearKernel::new(&ctx);
    let epilogues = [Epilogue::None, Epilogue::Gelu, Epilogue::GeluTanh, Epilogue::Relu, Epilogue::Tanh];
    // (m, n, k, x rows in the buffer, the path it must take)
    let cases = [
        (1, 33, 4, 1, LinearPath::Rows(1)),
        (2, 70, 12, 2, LinearPath::Rows(2)),
        (3, 5, 36, 3, LinearPath::Rows(4)),
        (7, 129, 64, 7, LinearPath::Rows(8)),
        (16, 96, 384, 16, LinearPath::Rows(16)),
        (17, 65, 16, 64, LinearPath::Tiled),
        (130, 200, 48, 192, LinearPath::Tiled),
        (64, 64, 160, 64, LinearPath::Tiled),
        (20, 30, 17, 64, LinearPath::Generic),
        (40, 30, 32, 40, LinearPath::Generic),
        (5, 9, 7, 5, LinearPath::Generic),
    ];
    for (i, &(m, n, k, x_rows, path)) in cases.iter().enumerate() {
        assert_eq!(LinearPath::choose(m, k, x_rows), path, "{m}×{n}×{k} with {x_rows} rows");
        for (j, &act) in epilogues.iter().enumerate() {
            let seed = (i * 10 + j) as u32;
            let mut x = values(x_rows * k, seed, 1.0);
            x[m * k..].fill(f32::NAN); // padding rows must not leak into y
            let w = values(n * k, seed + 100, 0.5);
            let b = values(n, seed + 200, 0.5);
            let want = linear_cpu(&x[..m * k], &w, &b, m, n, k, act);
            let (xb, wb, bb) = (ctx.storage_f32("x", &x), ctx.storage_f32("w", &w), ctx.storage_f32("b", &b));
            let y = ctx.scratch("y", x_rows.max(m) * n);
            let d = kernel.bind(&ctx, (&xb, XRows::Dense { held: x_rows }), &wb, &bb, &y, (m, n, k), act);
            let got = run(&ctx, d, &[(&y, m * n)]).remove(0);
            assert_close(&format!("linear {path:?} {m}×{n}×{k} {act:?}"), &got, &want, 1e-4 * (k as f32).sqrt());
        }
    }
}

/// Rows of x read at a stride (the pooler's [CLS] rows, `s·h` apart): the
/// few-rows kernel where the stride and k are multiples of 4 (past 16 rows,
/// in blocks of 16, the last one partial), the generic kernel otherwise; the
/// values between the rows read never leak.
#[test]
fn strided_rows_linear_matches_cpu() {
    let ctx = gpu();
    let kernel = LinearKernel::new(&ctx);
    // (m, n, k, stride, the kernel it must take)
    let cases = [
        (1, 33, 4, 4, "linear_rows"),
        (3, 70, 12, 12 * 5, "linear_rows"),
        (8, 129, 64, 64 * 7, "linear_rows"),
        (16, 96, 384, 384 * 3, "linear_rows"),
        (20, 30, 16, 48, "linear_rows"),
        (33, 70, 12, 12 * 5, "linear_rows"),
        (64, 40, 16, 32, "linear_rows"),
        (5, 9, 8, 10, "matmul"),
        (20, 30, 6, 8, "matmul"),
    ];
    for (i, &(m, n, k, stride, path)) in cases.iter().enumerate() {
        for (j, &act) in [Epilogue::None, Epilogue::Tanh].iter().enumerate() {
            let seed = (i * 10 + j) as u32;
            // the rows read hold values; everything between them is NaN
            let mut x = vec![f32::NAN; (m - 1) * stride + k];
            let rows = values(m * k, seed, 1.0);
            for r in 0..m {
                x[r * stride..r * stride + k].copy_from_slice(&rows[r * k..][..k]);
            }
            let w = values(n * k, seed + 100, 0.5);
            let b = values(n, seed + 200, 0.5);
            let want = linear_cpu(&rows, &w, &b, m, n, k, act);
            let (xb, wb, bb) = (ctx.storage_f32("x", &x), ctx.storage_f32("w", &w), ctx.storage_f32("b", &b));
            let y = ctx.scratch("y", m * n);
            let d = kernel.bind(&ctx, (&xb, XRows::Every(stride)), &wb, &bb, &y, (m, n, k), act);
            assert_eq!(d.label(), path, "{m}×{n}×{k}, stride {stride}");
            let got = run(&ctx, d, &[(&y, m * n)]).remove(0);
            assert_close(&format!("strided linear {m}×{n}×{k}, stride {stride}, {act:?}"), &got, &want, 1e-4 * (k as f32).sqrt());
        }
    }
}

/// The activations alone, at a tolerance that tells GELU (erf) from its tanh
/// approximation (they differ by up to ~5e-4): a 1-wide product x·1 + 0
/// leaves only the epilogue to compare.
#[test]
fn matmul_epilogues_match_their_definitions_closely() {
    // the references against known values (PyTorch: F.gelu, F.gelu(approximate="tanh"))
    let cases = [
        (Epilogue::Gelu, 1.0f32, 0.841_344_7),
        (Epilogue::GeluTanh, 1.0, 0.841_192),
        (Epilogue::Gelu, -2.5, -0.015_524_179),
        (Epilogue::GeluTanh, -2.5, -0.015_084_296),
    ];
    for (act, x, want) in cases {
        assert!((act.apply(x) - want).abs() < 2e-6, "{act:?}({x}) = {} not {want}", act.apply(x));
    }
    let ctx = gpu();
    let kernel = MatmulKernel::new(&ctx);
    let n = 1201;
    let x: Vec<f32> = (0..n).map(|i| -6.0 + 12.0 * i as f32 / (n - 1) as f32).collect();
    let (xb, one, zero) = (ctx.storage_f32("x", &x), ctx.storage_f32("w", &[1.0]), ctx.storage_f32("b", &[0.0]));
    let mut largest_gap = 0.0f32;
    for act in [Epilogue::Gelu, Epilogue::GeluTanh, Epilogue::Relu, Epilogue::Tanh] {
        let want: Vec<f32> = x.iter().map(|&v| act.apply(v)).collect();
        let y = ctx.scratch("y", n);
        let d = kernel.bind(&ctx, (&xb, Layout::rows(1)), (&one, Layout::rows(1)), Some(&zero), &y, (n, 1, 1), act);
        let got = run(&ctx, d, &[(&y, n)]).remove(0);
        assert_close(&format!("{act:?} on the GPU"), &got, &want, 2e-6);
        if act == Epilogue::Gelu {
            largest_gap = x.iter().map(|&v| (Epilogue::Gelu.apply(v) - Epilogue::GeluTanh.apply(v)).abs()).fold(0.0, f32::max);
        }
    }
    assert!(largest_gap > 1e-4, "the two GELUs must differ by more than the tolerance: {largest_gap}");
}
