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
