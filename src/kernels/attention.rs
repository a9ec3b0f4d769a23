//! Masked multi-head self-attention (shaders/attention.wgsl).

use std::cell::RefCell;
use std::collections::HashMap;

use crate::gpu::{grid, Dispatch, GpuContext};
use crate::kernels::dropout::{Mask, DROPOUT_WGSL};
use crate::kernels::WORKGROUP_REDUCE_WGSL;

/// The shape of one attention call.
#[derive(Debug, Clone, Copy)]
pub struct AttentionShape {
    pub batch: usize,
    pub seq: usize,
    pub heads: usize,
    pub head_dim: usize,
}

impl AttentionShape {
    pub fn hidden(&self) -> usize {
        self.heads * self.head_dim
    }
}

/// CPU reference. `qkv` is `[batch·seq, 3·hidden]` (each row `[q | k | v]`),
/// `mask` is `[batch·seq]` (1 = real token). Returns the context
/// `[batch·seq, hidden]` and the probabilities `[batch, heads, seq, seq]`.
/// Masked keys get probability 0, as with PyTorch's additive `finfo.min` mask.
pub fn attention_cpu(qkv: &[f32], mask: &[u32], s: AttentionShape) -> (Vec<f32>, Vec<f32>) {
    let probs = attention_probs_cpu(qkv, mask, s);
    (attention_context_cpu(qkv, &probs, s), probs)
}

/// The (qkv row, column) where head `h`'s part `part` (0 q, 1 k, 2 v) of token `t` of sequence `b` starts.
fn at(s: AttentionShape, b: usize, t: usize, part: usize, h: usize) -> usize {
    (b * s.seq + t) * 3 * s.hidden() + part * s.hidden() + h * s.head_dim
}

/// softmax(q·kᵀ/√d) over the real keys: `[batch, heads, seq, seq]`.
pub fn attention_probs_cpu(qkv: &[f32], mask: &[u32], s: AttentionShape) -> Vec<f32> {
    let (seq, dh) = (s.seq, s.head_dim);
    let scale = 1.0 / (dh as f32).sqrt();
    let mut probs = vec![0.0; s.batch * s.heads * seq * seq];
    for b in 0..s.batch {
        for h in 0..s.heads {
            for i in 0..seq {
                let q = &qkv[at(s, b, i, 0, h)..][..dh];
                let p = &mut probs[((b * s.heads + h) * seq + i) * seq..][..seq];
                // scores of the real keys, then a softmax over them
                let mut max = f32::NEG_INFINITY;
                for j in 0..seq {
                    if mask[b * seq + j] != 0 {
                        let k = &qkv[at(s, b, j, 1, h)..][..dh];
                        p[j] = q.iter().zip(k).map(|(a, b)| a * b).sum::<f32>() * scale;
                        max = max.max(p[j]);
                    }
                }
                let mut sum = 0.0;
                for j in 0..seq {
                    p[j] = if mask[b * seq + j] != 0 { (p[j] - max).exp() } else { 0.0 };
                    sum += p[j];
                }
                p.iter_mut().for_each(|v| *v /= sum);
            }
        }
    }
    probs
}

/// The context: each head's probabilities times its values, `[batch·seq, hidden]`.
pub fn attention_context_cpu(qkv: &[f32], probs: &[f32], s: AttentionShape) -> Vec<f32> {
    let (seq, dh, hidden) = (s.seq, s.head_dim, s.hidden());
    let mut ctx = vec![0.0; s.batch * seq * hidden];
    for b in 0..s.batch {
        for h in 0..s.heads {
            for i in 0..seq {
                let p = &probs[((b * s.heads + h) * seq + i) * seq..][..seq];
                let out = &mut ctx[(b * seq + i) * hidden + h * dh..][..dh];
                for j in 0..seq {
                    let v = &qkv[at(s, b, j, 2, h)..][..dh];
                    for d in 0..dh {
                        out[d] += p[j] * v[d];
                    }
                }
            }
        }
    }
    ctx
}

/// CPU reference of the backward pass. `probs` are the softmax's outputs;
/// `dropout` the factor dropout multiplied each by (0 where dropped), when
/// the context was made from dropped-out probabilities. Returns `dqkv`,
/// shaped as `qkv`. Masked keys have probability 0, so they get no gradient.
pub fn attention_backward_cpu(qkv: &[f32], probs: &[f32], dropout: Option<&[f32]>, d_ctx: &[f32], s: AttentionShape) -> Vec<f32> {
    let (seq, dh, hidden) = (s.seq, s.head_dim, s.hidden());
    let scale = 1.0 / (dh as f32).sqrt();
    let mut dqkv = vec![0.0; qkv.len()];
    let mut dp = vec![0.0f32; seq];
    for b in 0..s.batch {
        for h in 0..s.heads {
            for i in 0..seq {
                let row = ((b * s.heads + h) * seq + i) * seq;
                let dc = &d_ctx[(b * seq + i) * hidden + h * dh..][..dh];
                // through ctx = P'·V with P' = P ⊙ dropout: dV += P'ᵀ·dctx, dP = (dctx·Vᵀ) ⊙ dropout
                for j in 0..seq {
                    let factor = dropout.map_or(1.0, |f| f[row + j]);
                    let v = at(s, b, j, 2, h);
                    let mut dot = 0.0;
                    for d in 0..dh {
                        dot += dc[d] * qkv[v + d];
                        dqkv[v + d] += probs[row + j] * factor * dc[d];
                    }
                    dp[j] = dot * factor;
                }
                // through the softmax: dS = P ⊙ (dP − Σ P⊙dP)
                let p = &probs[row..][..seq];
                let dot: f32 = p.iter().zip(&dp).map(|(a, b)| a * b).sum();
                // through S = q·kᵀ·scale
                let q = at(s, b, i, 0, h);
                for j in 0..seq {
                    let ds = p[j] * (dp[j] - dot) * scale;
                    let k = at(s, b, j, 1, h);
                    for d in 0..dh {
                        dqkv[q + d] += ds * qkv[k + d];
                        dqkv[k + d] += ds * qkv[q + d];
                    }
                }
            }
        }
    }
    dqkv
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    seq: u32,
    heads: u32,
    head_dim: u32,
    hidden: u32,
    scale: f32,
    layer: u32,
    layers: u32,
    _pad: u32,
}

/// Where the kernel writes probabilities: `[count, layers, heads, seq, seq]`
/// at `layer`, for the batch rows `first .. first + count` that the `kept`
/// uniform ([`AttentionProbsKernel::kept`]) names when the work runs.
pub struct ProbsSlot<'a> {
    pub buffer: &'a wgpu::Buffer,
    pub layer: usize,
    pub layers: usize,
}

/// Attention probabilities (shaders/attention.wgsl), for the few rows someone
/// looks at; [`FlashAttentionKernel`] computes every row's context.
pub struct AttentionProbsKernel {
    pipeline: wgpu::ComputePipeline,
}

impl AttentionProbsKernel {
    /// The longest sequence the kernel keeps in workgroup memory (MAX_SEQ in the shader).
    pub const MAX_SEQ: usize = 512;

    pub fn new(ctx: &GpuContext) -> Self {
        AttentionProbsKernel {
            pipeline: ctx.pipeline("attention", &[WORKGROUP_REDUCE_WGSL, include_str!("../../shaders/attention.wgsl")].concat()),
        }
    }

    /// The uniform naming the rows whose probabilities are written; its
    /// contents are [`AttentionProbsKernel::kept_rows`].
    pub fn kept(ctx: &GpuContext) -> wgpu::Buffer {
        ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("attention rows kept"),
            size: 16,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        })
    }

    /// The bytes of `kept` for the rows `first .. first + count`.
    pub fn kept_rows(first: usize, count: usize) -> [u32; 4] {
        [first as u32, count as u32, 0, 0]
    }

    /// Probabilities of `count` batch rows (from the `kept` uniform's
    /// `first`), of a batch shaped `s`.
    pub fn bind(
        &self,
        ctx: &GpuContext,
        qkv: &wgpu::Buffer,
        mask: &wgpu::Buffer,
        probs: ProbsSlot,
        kept: &wgpu::Buffer,
        count: usize,
        s: AttentionShape,
    ) -> Dispatch {
        debug_assert!(s.seq <= Self::MAX_SEQ, "the encoder refuses longer sequences");
        let params = Params {
            seq: s.seq as u32,
            heads: s.heads as u32,
            head_dim: s.head_dim as u32,
            hidden: s.hidden() as u32,
            scale: 1.0 / (s.head_dim as f32).sqrt(),
            layer: probs.layer as u32,
            layers: probs.layers as u32,
            _pad: 0,
        };
        ctx.dispatch(&self.pipeline, &params, &[qkv, mask, probs.buffer, kept], [s.seq as u32, s.heads as u32, count as u32])
    }
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct FlashParams {
    seq: u32,
    hidden4: u32,
    scale: f32,
    _pad: u32,
}

/// Attention without the score matrix (shaders/attention_flash.wgsl): blocks
/// of 64 queries, keys and values streamed through workgroup memory with an
/// online softmax; any sequence length, head sizes that are multiples of 4
/// (every published BERT's; rows are read as vec4).
pub struct FlashAttentionKernel {
    /// Pipelines by head size, made on first use.
    pipelines: RefCell<HashMap<usize, wgpu::ComputePipeline>>,
}

impl FlashAttentionKernel {
    pub fn new() -> Self {
        FlashAttentionKernel { pipelines: RefCell::new(HashMap::new()) }
    }

    pub fn supports(head_dim: usize) -> bool {
        head_dim > 0 && head_dim.is_multiple_of(4)
    }

    /// Keys per chunk: 8 KiB of keys and values in workgroup memory (WebGPU guarantees 16).
    fn chunk(head_dim: usize) -> usize {
        (1024 / head_dim.max(1)).clamp(1, 32)
    }

    fn pipeline(&self, ctx: &GpuContext, head_dim: usize) -> crate::error::Result<wgpu::ComputePipeline> {
        if let Some(p) = self.pipelines.borrow().get(&head_dim) {
            return Ok(p.clone());
        }
        let src = include_str!("../../shaders/attention_flash.wgsl");
        let text = crate::wgsl::expand(src, &[("V4", head_dim / 4), ("CHUNK", Self::chunk(head_dim))])?;
        let p = ctx.pipeline("attention_flash", &text);
        self.pipelines.borrow_mut().insert(head_dim, p.clone());
        Ok(p)
    }

    pub fn bind(
        &self,
        ctx: &GpuContext,
        qkv: &wgpu::Buffer,
        mask: &wgpu::Buffer,
        out: &wgpu::Buffer,
        s: AttentionShape,
    ) -> crate::error::Result<Dispatch> {
        if !Self::supports(s.head_dim) {
            return Err(crate::error::Error::Gpu(format!(
                "the GPU attention kernel needs a head size that is a multiple of 4, not {}",
                s.head_dim
            )));
        }
        let params = FlashParams { seq: s.seq as u32, hidden4: (s.hidden() / 4) as u32, scale: 1.0 / (s.head_dim as f32).sqrt(), _pad: 0 };
        let groups = [s.seq.div_ceil(64) as u32, s.heads as u32, s.batch as u32];
        Ok(ctx.dispatch(&self.pipeline(ctx, s.head_dim)?, &params, &[qkv, mask, out], groups))
    }
}

impl Default for FlashAttentionKernel {
    fn default() -> Self {
        Self::new()
    }
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct ByElementParams {
    rows: u32,
    seq: u32,
    heads: u32,
    head_dim: u32,
    seed: u32,
    p: f32,
    _pad: [u32; 2],
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct ByQueryParams {
    seq: u32,
    heads: u32,
    head_dim: u32,
    scale: f32,
    seed: u32,
    p: f32,
    _pad: [u32; 2],
}

/// Training's attention: the context from kept probabilities through their
/// dropout (shaders/attention_context.wgsl; reference
/// [`attention_context_cpu`] on the dropped-out probabilities), and the
/// backward pass (shaders/attention_backward_query.wgsl, then
/// attention_backward_key.wgsl; reference [`attention_backward_cpu`]).
/// The probabilities come from [`AttentionProbsKernel`] for every row.
pub struct AttentionTrainingKernels {
    context: wgpu::ComputePipeline,
    by_query: wgpu::ComputePipeline,
    by_key: wgpu::ComputePipeline,
}

impl AttentionTrainingKernels {
    pub fn new(ctx: &GpuContext) -> Self {
        let with_hash = |src: &str| [DROPOUT_WGSL, src].concat();
        let by_query = [DROPOUT_WGSL, WORKGROUP_REDUCE_WGSL, include_str!("../../shaders/attention_backward_query.wgsl")].concat();
        AttentionTrainingKernels {
            context: ctx.pipeline("attention_context", &with_hash(include_str!("../../shaders/attention_context.wgsl"))),
            by_query: ctx.pipeline("attention_backward_query", &by_query),
            by_key: ctx.pipeline("attention_backward_key", &with_hash(include_str!("../../shaders/attention_backward_key.wgsl"))),
        }
    }

    fn elementwise(s: AttentionShape, mask: Mask) -> ByElementParams {
        ByElementParams {
            rows: (s.batch * s.seq) as u32,
            seq: s.seq as u32,
            heads: s.heads as u32,
            head_dim: s.head_dim as u32,
            seed: mask.seed,
            p: mask.p,
            _pad: [0; 2],
        }
    }

    /// `ctx` `[batch·seq, hidden]` from `probs` `[batch, heads, seq, seq]` through `mask`.
    pub fn context(
        &self,
        ctx: &GpuContext,
        qkv: &wgpu::Buffer,
        probs: &wgpu::Buffer,
        out: &wgpu::Buffer,
        s: AttentionShape,
        mask: Mask,
    ) -> Dispatch {
        let len = s.batch * s.seq * s.hidden();
        ctx.dispatch(&self.context, &Self::elementwise(s, mask), &[qkv, probs, out], grid(len.div_ceil(64)))
    }

    /// `dqkv` from `d_ctx`; `d_scores` `[batch, heads, seq, seq]` is scratch.
    #[allow(clippy::too_many_arguments)]
    pub fn backward(
        &self,
        ctx: &GpuContext,
        qkv: &wgpu::Buffer,
        probs: &wgpu::Buffer,
        d_ctx: &wgpu::Buffer,
        d_scores: &wgpu::Buffer,
        dqkv: &wgpu::Buffer,
        s: AttentionShape,
        mask: Mask,
    ) -> [Dispatch; 2] {
        debug_assert!(s.seq <= AttentionProbsKernel::MAX_SEQ, "the query kernel keeps a row of scores in workgroup memory");
        let by_query = ByQueryParams {
            seq: s.seq as u32,
            heads: s.heads as u32,
            head_dim: s.head_dim as u32,
            scale: 1.0 / (s.head_dim as f32).sqrt(),
            seed: mask.seed,
            p: mask.p,
            _pad: [0; 2],
        };
        let len = s.batch * s.seq * s.hidden();
        [
            ctx.dispatch(&self.by_query, &by_query, &[qkv, probs, d_ctx, d_scores, dqkv], [s.seq as u32, s.heads as u32, s.batch as u32]),
            ctx.dispatch(&self.by_key, &Self::elementwise(s, mask), &[qkv, probs, d_ctx, d_scores, dqkv], grid(len.div_ceil(64))),
        ]
    }
}
