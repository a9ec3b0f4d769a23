//! Masked multi-head self-attention (shaders/attention.wgsl).

use crate::gpu::{Dispatch, GpuContext};

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
    let (seq, dh, hidden) = (s.seq, s.head_dim, s.hidden());
    let scale = 1.0 / (dh as f32).sqrt();
    let mut ctx = vec![0.0; s.batch * seq * hidden];
    let mut probs = vec![0.0; s.batch * s.heads * seq * seq];
    let row = |b: usize, t: usize| &qkv[(b * seq + t) * 3 * hidden..][..3 * hidden];
    for b in 0..s.batch {
        for h in 0..s.heads {
            for i in 0..seq {
                let q = &row(b, i)[h * dh..][..dh];
                let p = &mut probs[((b * s.heads + h) * seq + i) * seq..][..seq];
                // scores of the real keys, then a softmax over them
                let mut max = f32::NEG_INFINITY;
                for j in 0..seq {
                    if mask[b * seq + j] != 0 {
                        let k = &row(b, j)[hidden + h * dh..][..dh];
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
                // the context: probabilities times values
                let out = &mut ctx[(b * seq + i) * hidden + h * dh..][..dh];
                for j in 0..seq {
                    let v = &row(b, j)[2 * hidden + h * dh..][..dh];
                    for d in 0..dh {
                        out[d] += p[j] * v[d];
                    }
                }
            }
        }
    }
    (ctx, probs)
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    seq: u32,
    heads: u32,
    head_dim: u32,
    hidden: u32,
    scale: f32,
    write_probs: u32,
    layer: u32,
    layers: u32,
}

/// Where the kernel writes probabilities: `[count, layers, heads, seq, seq]`
/// at `layer`, for the batch rows `first .. first + count` that the `kept`
/// uniform ([`AttentionKernel::kept`]) names when the work runs.
pub struct ProbsSlot<'a> {
    pub buffer: &'a wgpu::Buffer,
    pub layer: usize,
    pub layers: usize,
}

pub struct AttentionKernel {
    pipeline: wgpu::ComputePipeline,
}

impl AttentionKernel {
    /// The longest sequence the kernel keeps in workgroup memory (MAX_SEQ in the shader).
    pub const MAX_SEQ: usize = 512;

    pub fn new(ctx: &GpuContext) -> Self {
        AttentionKernel { pipeline: ctx.pipeline("attention", include_str!("../../shaders/attention.wgsl")) }
    }

    /// The uniform naming the rows whose probabilities are written; its
    /// contents are [`AttentionKernel::kept_rows`].
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

    /// `probs`: where to write the probabilities, or `None` (then `dummy`, any
    /// small buffer, fills the binding). `kept`: see [`ProbsSlot`].
    pub fn bind(
        &self,
        ctx: &GpuContext,
        qkv: &wgpu::Buffer,
        mask: &wgpu::Buffer,
        out: &wgpu::Buffer,
        probs: Option<ProbsSlot>,
        (dummy, kept): (&wgpu::Buffer, &wgpu::Buffer),
        s: AttentionShape,
    ) -> Dispatch {
        debug_assert!(s.seq <= Self::MAX_SEQ, "the encoder refuses longer sequences");
        let params = Params {
            seq: s.seq as u32,
            heads: s.heads as u32,
            head_dim: s.head_dim as u32,
            hidden: s.hidden() as u32,
            scale: 1.0 / (s.head_dim as f32).sqrt(),
            write_probs: probs.is_some() as u32,
            layer: probs.as_ref().map_or(0, |p| p.layer as u32),
            layers: probs.as_ref().map_or(1, |p| p.layers as u32),
        };
        let probs_buf = probs.as_ref().map_or(dummy, |p| p.buffer);
        ctx.dispatch(&self.pipeline, &params, &[qkv, mask, out, probs_buf, kept], [s.seq as u32, s.heads as u32, s.batch as u32])
    }
}
