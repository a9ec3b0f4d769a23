//! Word + position + token-type embeddings (shaders/embeddings.wgsl).

use crate::gpu::{grid, Dispatch, GpuContext};

/// CPU reference: for each token of a `[batch, seq]` batch, the sum of its
/// word, position (0..seq in every row) and token-type embedding rows.
pub fn embeddings_cpu(
    input_ids: &[u32],
    token_type_ids: &[u32],
    seq: usize,
    word: &[f32],
    position: &[f32],
    token_type: &[f32],
    hidden: usize,
) -> Vec<f32> {
    let mut out = vec![0.0; input_ids.len() * hidden];
    for (t, dst) in out.chunks_exact_mut(hidden).enumerate() {
        let w = &word[input_ids[t] as usize * hidden..][..hidden];
        let p = &position[(t % seq) * hidden..][..hidden];
        let tt = &token_type[token_type_ids[t] as usize * hidden..][..hidden];
        for d in 0..hidden {
            dst[d] = w[d] + p[d] + tt[d];
        }
    }
    out
}

/// CPU reference of the backward pass: each token's gradient `d_out` row is
/// added to its word, position and token-type rows, in token order (a fixed
/// order, so the sums are the same every run). Returns the three tables'
/// gradients, shaped as the tables (`vocab`, `positions`, `types` rows).
pub fn embeddings_backward_cpu(
    input_ids: &[u32],
    token_type_ids: &[u32],
    seq: usize,
    d_out: &[f32],
    (vocab, positions, types): (usize, usize, usize),
    hidden: usize,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let mut word = vec![0.0; vocab * hidden];
    let mut position = vec![0.0; positions * hidden];
    let mut token_type = vec![0.0; types * hidden];
    for (t, g) in d_out.chunks_exact(hidden).enumerate() {
        let (w, p, tt) = (input_ids[t] as usize, t % seq, token_type_ids[t] as usize);
        for d in 0..hidden {
            word[w * hidden + d] += g[d];
            position[p * hidden + d] += g[d];
            token_type[tt * hidden + d] += g[d];
        }
    }
    (word, position, token_type)
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    tokens: u32,
    seq: u32,
    hidden: u32,
    _pad: u32,
}

/// The three embedding tables on the GPU.
pub struct EmbeddingTables<'a> {
    pub word: &'a wgpu::Buffer,
    pub position: &'a wgpu::Buffer,
    pub token_type: &'a wgpu::Buffer,
}

pub struct EmbeddingsKernel {
    pipeline: wgpu::ComputePipeline,
}

impl EmbeddingsKernel {
    pub fn new(ctx: &GpuContext) -> Self {
        EmbeddingsKernel { pipeline: ctx.pipeline("embeddings", include_str!("../../shaders/embeddings.wgsl")) }
    }

    #[allow(clippy::too_many_arguments)]
    pub fn bind(
        &self,
        ctx: &GpuContext,
        input_ids: &wgpu::Buffer,
        token_type_ids: &wgpu::Buffer,
        tables: EmbeddingTables,
        out: &wgpu::Buffer,
        tokens: usize,
        seq: usize,
        hidden: usize,
    ) -> Dispatch {
        let params = Params { tokens: tokens as u32, seq: seq as u32, hidden: hidden as u32, _pad: 0 };
        ctx.dispatch(
            &self.pipeline,
            &params,
            &[input_ids, token_type_ids, tables.word, tables.position, tables.token_type, out],
            grid(tokens),
        )
    }
}

/// A batch's tokens grouped by the table row they read, for
/// [`EmbeddingsBackwardKernel`]: `order` lists token indices sorted stably by
/// row (so each group keeps token order), group `s` is
/// `order[starts[s]..starts[s + 1]]` and reads row `rows[s]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segments {
    pub order: Vec<u32>,
    pub starts: Vec<u32>,
    pub rows: Vec<u32>,
}

impl Segments {
    /// Groups token `t` under `row_of[t]`.
    pub fn of(row_of: &[u32]) -> Self {
        let mut order: Vec<u32> = (0..row_of.len() as u32).collect();
        order.sort_by_key(|&t| row_of[t as usize]);
        let (mut starts, mut rows) = (Vec::new(), Vec::new());
        for (k, &t) in order.iter().enumerate() {
            let row = row_of[t as usize];
            if rows.last() != Some(&row) {
                starts.push(k as u32);
                rows.push(row);
            }
        }
        starts.push(order.len() as u32);
        Segments { order, starts, rows }
    }

    /// The batch's three groupings: by word id, by position (`t mod seq`), by token type.
    pub fn of_batch(input_ids: &[u32], token_type_ids: &[u32], seq: usize) -> [Segments; 3] {
        let positions: Vec<u32> = (0..input_ids.len()).map(|t| (t % seq) as u32).collect();
        [Segments::of(input_ids), Segments::of(&positions), Segments::of(token_type_ids)]
    }
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct BackwardParams {
    segments: u32,
    hidden: u32,
    _pad: [u32; 2],
}

/// The segments of one table on the GPU.
pub struct SegmentBuffers {
    order: wgpu::Buffer,
    starts: wgpu::Buffer,
    rows: wgpu::Buffer,
    count: usize,
}

impl SegmentBuffers {
    pub fn new(ctx: &GpuContext, s: &Segments) -> Self {
        SegmentBuffers {
            order: ctx.storage_u32("segment order", &s.order),
            starts: ctx.storage_u32("segment starts", &s.starts),
            rows: ctx.storage_u32("segment rows", &s.rows),
            count: s.rows.len(),
        }
    }
}

/// One table's part of [`embeddings_backward_cpu`] (shaders/embeddings_backward.wgsl):
/// each token's gradient row added into the row it read, in token order, no atomics.
pub struct EmbeddingsBackwardKernel {
    pipeline: wgpu::ComputePipeline,
}

impl EmbeddingsBackwardKernel {
    pub fn new(ctx: &GpuContext) -> Self {
        EmbeddingsBackwardKernel { pipeline: ctx.pipeline("embeddings_backward", include_str!("../../shaders/embeddings_backward.wgsl")) }
    }

    /// Adds `d_out` `[tokens, hidden]`'s rows into `table_grad` by `segments`.
    pub fn bind(
        &self,
        ctx: &GpuContext,
        segments: &SegmentBuffers,
        d_out: &wgpu::Buffer,
        table_grad: &wgpu::Buffer,
        hidden: usize,
    ) -> Dispatch {
        let params = BackwardParams { segments: segments.count as u32, hidden: hidden as u32, _pad: [0; 2] };
        ctx.dispatch(&self.pipeline, &params, &[&segments.order, &segments.starts, &segments.rows, d_out, table_grad], grid(segments.count))
    }
}
