//! The BERT forward pass on the GPU: weights uploaded once, and for each
//! batch shape a plan — activation buffers plus every dispatch already bound —
//! recorded into a single submission and replayed while the shape repeats.

use std::collections::HashMap;
use std::sync::Arc;

use crate::config::BertConfig;
use crate::error::{Error, Result};
use crate::gpu::{Dispatch, GpuContext};
use crate::kernels::attention::{AttentionProbsKernel, AttentionShape, FlashAttentionKernel, ProbsSlot};
use crate::kernels::embeddings::{EmbeddingTables, EmbeddingsKernel};
use crate::kernels::layernorm::LayerNormKernel;
use crate::kernels::linear::{padded_rows, LinearKernel, XRows};
use crate::kernels::matmul::Epilogue;
use crate::outputs::{AttentionRequest, Attentions, Keep, Outputs};
use crate::tokenize::Batch;
use crate::weights::{BertWeights, LayerNorm, Linear};

struct GpuLinear {
    w: wgpu::Buffer,
    b: wgpu::Buffer,
    n: usize,
    k: usize,
}

struct GpuLayer {
    qkv: GpuLinear,
    attn_out: GpuLinear,
    attn_norm: (wgpu::Buffer, wgpu::Buffer),
    ffn_in: GpuLinear,
    ffn_out: GpuLinear,
    ffn_norm: (wgpu::Buffer, wgpu::Buffer),
}

struct GpuWeights {
    word: wgpu::Buffer,
    position: wgpu::Buffer,
    token_type: wgpu::Buffer,
    embeddings_norm: (wgpu::Buffer, wgpu::Buffer),
    layers: Vec<GpuLayer>,
    pooler: Option<GpuLinear>,
}

/// The bound dispatches and buffers for one `(rows, seq, attention rows kept)` shape.
struct Plan {
    input_ids: wgpu::Buffer,
    token_type_ids: wgpu::Buffer,
    mask: wgpu::Buffer,
    /// Every layer's output (the embeddings' first), when all are kept; else the last alone.
    states: Vec<wgpu::Buffer>,
    pooled: Option<wgpu::Buffer>,
    probs: Option<wgpu::Buffer>,
    dispatches: Vec<Dispatch>,
}

/// Activation buffers of one plan.
struct Activations {
    x1: wgpu::Buffer,
    tmp: wgpu::Buffer,
    qkv: wgpu::Buffer,
    ctx: wgpu::Buffer,
    inter: wgpu::Buffer,
}

pub struct GpuEncoder {
    ctx: GpuContext,
    config: BertConfig,
    linear: LinearKernel,
    layernorm: LayerNormKernel,
    embeddings: EmbeddingsKernel,
    attention: AttentionProbsKernel,
    flash: FlashAttentionKernel,
    weights: GpuWeights,
    /// By (rows, sequence length, rows whose attentions are kept, all layers kept).
    plans: HashMap<(usize, usize, usize, bool), Plan>,
    /// Which rows' attention probabilities the next submission writes.
    kept: wgpu::Buffer,
}

/// How many plans (batch shapes) stay cached before the cache is cleared.
const MAX_PLANS: usize = 8;

impl GpuEncoder {
    pub fn new(ctx: GpuContext, w: &BertWeights) -> Result<Self> {
        let limit = ctx.limits.max_storage_buffer_binding_size as usize;
        let c = &w.config;
        let largest = (c.vocab_size * c.hidden_size * 4).max(c.intermediate_size * c.hidden_size * 4);
        if largest > limit {
            return Err(Error::Gpu(format!(
                "the largest weight ({:.1} MiB) exceeds {}'s storage binding limit of {:.1} MiB",
                largest as f64 / 1048576.0,
                ctx.info.name,
                limit as f64 / 1048576.0
            )));
        }
        let head_dim = c.hidden_size / c.num_attention_heads.max(1);
        if !FlashAttentionKernel::supports(head_dim) {
            return Err(Error::Gpu(format!("the GPU attention kernel needs a head size that is a multiple of 4, not {head_dim}")));
        }
        let up = |label: &str, v: &[f32]| ctx.storage_f32(label, v);
        let linear = |l: &Linear| GpuLinear { w: up("w", &l.weight), b: up("b", &l.bias), n: l.out_dim, k: l.in_dim };
        let norm = |n: &LayerNorm| (up("gamma", &n.gamma), up("beta", &n.beta));
        let weights = GpuWeights {
            word: up("word_embeddings", &w.word_embeddings),
            position: up("position_embeddings", &w.position_embeddings),
            token_type: up("token_type_embeddings", &w.token_type_embeddings),
            embeddings_norm: norm(&w.embeddings_norm),
            layers: w
                .layers
                .iter()
                .map(|l| GpuLayer {
                    qkv: linear(&l.qkv),
                    attn_out: linear(&l.attn_out),
                    attn_norm: norm(&l.attn_norm),
                    ffn_in: linear(&l.ffn_in),
                    ffn_out: linear(&l.ffn_out),
                    ffn_norm: norm(&l.ffn_norm),
                })
                .collect(),
            pooler: w.pooler.as_ref().map(linear),
        };
        Ok(GpuEncoder {
            linear: LinearKernel::new(&ctx),
            layernorm: LayerNormKernel::new(&ctx),
            embeddings: EmbeddingsKernel::new(&ctx),
            attention: AttentionProbsKernel::new(&ctx),
            flash: FlashAttentionKernel::new(),
            kept: AttentionProbsKernel::kept(&ctx),
            config: c.clone(),
            weights,
            plans: HashMap::new(),
            ctx,
        })
    }

    pub fn context(&self) -> &GpuContext {
        &self.ctx
    }

    /// The most rows of `seq` tokens one submission can take without any
    /// buffer passing the adapter's binding limit.
    fn max_rows(&self, seq: usize, keep: Keep) -> usize {
        let c = &self.config;
        let limit = self.ctx.limits.max_storage_buffer_binding_size.min(self.ctx.limits.max_buffer_size) as usize;
        let widest = (3 * c.hidden_size).max(c.intermediate_size);
        let probs_per_row =
            if keep.attentions == AttentionRequest::All { c.num_hidden_layers * c.num_attention_heads * seq * seq * 4 } else { 0 };
        // every layer's states are read back together, through one staging buffer
        let states_per_row = if keep.hidden_states { (c.num_hidden_layers + 1) * seq * c.hidden_size * 4 } else { 0 };
        // activations are allocated in whole 64-row tiles of tokens
        let fits =
            |rows: usize| padded_rows(rows * seq) * widest * 4 <= limit && rows * probs_per_row <= limit && rows * states_per_row <= limit;
        let mut rows = limit / (seq * widest * 4).max(probs_per_row).max(states_per_row).max(1);
        while rows > 0 && !fits(rows) {
            rows -= 1;
        }
        rows
    }

    /// Runs the encoder over a (validated) batch, in as many submissions as
    /// the adapter's limits require (one for any ordinary batch).
    pub async fn forward(&mut self, batch: &Batch, keep: impl Into<Keep>) -> Result<Outputs> {
        let keep = keep.into();
        let Keep { attentions, hidden_states } = keep;
        let s = batch.seq_len;
        if s > AttentionProbsKernel::MAX_SEQ && attentions != AttentionRequest::None {
            return Err(Error::Input(format!(
                "attention probabilities of {s} tokens exceed the GPU kernel's {} (use the CPU backend for them)",
                AttentionProbsKernel::MAX_SEQ
            )));
        }
        let max_rows = self.max_rows(s, keep);
        if max_rows == 0 {
            return Err(Error::Gpu(format!("a single sequence of {s} tokens does not fit this adapter's buffer limits")));
        }
        let kept = attentions.rows(batch.batch_size);
        let mut parts = Vec::new();
        let mut start = 0;
        while start < batch.batch_size {
            let rows = max_rows.min(batch.batch_size - start);
            // the kept rows that fall in this part, counted from its start
            let local = kept.as_ref().map(|k| k.start.max(start) - start..k.end.min(start + rows).saturating_sub(start));
            let local = local.filter(|r| !r.is_empty());
            parts.push(self.forward_rows(batch, start, rows, local, hidden_states).await?);
            start += rows;
        }
        Outputs::concat(parts).ok_or_else(|| Error::Input("empty batch".into()))
    }

    /// One forward of a batch that fits in one submission, each kernel timed
    /// in a pass of its own: (kernel, ms) per dispatch, in order; `None`
    /// where the adapter has no timestamp queries.
    pub async fn profile(&mut self, batch: &Batch) -> Result<Option<Vec<(Arc<str>, f64)>>> {
        if self.max_rows(batch.seq_len, Keep::default()) < batch.batch_size {
            return Err(Error::Input("profile a batch that fits in one submission on this adapter".into()));
        }
        let key = self.prepare(batch, 0, batch.batch_size, None, false)?;
        self.ctx.profile(&self.plans[&key].dispatches).await
    }

    async fn forward_rows(
        &mut self,
        batch: &Batch,
        start: usize,
        rows: usize,
        kept: Option<std::ops::Range<usize>>,
        all_layers: bool,
    ) -> Result<Outputs> {
        let (s, h) = (batch.seq_len, self.config.hidden_size);
        let kept_count = kept.as_ref().map_or(0, |k| k.len());
        let key = self.prepare(batch, start, rows, kept.clone(), all_layers)?;
        let plan = &self.plans[&key];
        let (l, nh) = (self.config.num_hidden_layers, self.config.num_attention_heads);
        // the states in order: the last is last_hidden_state
        let mut outputs: Vec<_> = plan.states.iter().map(|b| (b, rows * s * h)).collect();
        if let Some(p) = &plan.pooled {
            outputs.push((p, rows * h));
        }
        if let Some(p) = &plan.probs {
            outputs.push((p, kept_count * l * nh * s * s));
        }
        let mut read = self.ctx.run(&plan.dispatches, &outputs).await?.into_iter();
        let mut next = || read.next().ok_or_else(|| Error::Gpu("a readback is missing".into()));
        let mut states = (0..plan.states.len()).map(|_| next()).collect::<Result<Vec<_>>>()?;
        // the last layer's states are both outputs only when every layer is kept
        let last = if all_layers { states.last().cloned() } else { states.pop() };
        let last_hidden_state = last.ok_or_else(|| Error::Gpu("a readback is missing".into()))?;
        let hidden_states = all_layers.then_some(states);
        let pooler_output = plan.pooled.as_ref().map(|_| next()).transpose()?;
        let attentions = match (&plan.probs, kept) {
            (Some(_), Some(rows)) => Some(Attentions { rows, layers: l, heads: nh, probs: next()? }),
            _ => None,
        };
        Ok(Outputs { batch: rows, seq: s, hidden: h, last_hidden_state, pooler_output, attentions, hidden_states })
    }

    /// Readies the plan for `rows` rows from `start` (built on first use of
    /// its shape) with those rows' ids, types, mask and kept rows; its key.
    fn prepare(
        &mut self,
        batch: &Batch,
        start: usize,
        rows: usize,
        kept: Option<std::ops::Range<usize>>,
        all_layers: bool,
    ) -> Result<(usize, usize, usize, bool)> {
        let s = batch.seq_len;
        let kept_count = kept.as_ref().map_or(0, |k| k.len());
        let key = (rows, s, kept_count, all_layers);
        if !self.plans.contains_key(&key) {
            if self.plans.len() >= MAX_PLANS {
                self.plans.clear();
            }
            let plan = self.build_plan(rows, s, kept_count, all_layers)?;
            self.plans.insert(key, plan);
        }
        let plan = &self.plans[&key];
        let span = start * s..(start + rows) * s;
        let q = &self.ctx.queue;
        q.write_buffer(&plan.input_ids, 0, bytemuck::cast_slice(&batch.input_ids[span.clone()]));
        q.write_buffer(&plan.token_type_ids, 0, bytemuck::cast_slice(&batch.token_type_ids[span.clone()]));
        q.write_buffer(&plan.mask, 0, bytemuck::cast_slice(&batch.attention_mask[span]));
        let first = kept.as_ref().map_or(0, |k| k.start);
        q.write_buffer(&self.kept, 0, bytemuck::cast_slice(&AttentionProbsKernel::kept_rows(first, kept_count)));
        Ok(key)
    }

    fn build_plan(&self, rows: usize, s: usize, kept_count: usize, all_layers: bool) -> Result<Plan> {
        let ctx = &self.ctx;
        let c = &self.config;
        let (h, t) = (c.hidden_size, rows * s);
        let eps = c.layer_norm_eps;
        // whole 64-row tiles, so the tiled Linear kernel loads without row checks (the rest stays zero)
        let tp = padded_rows(t);
        let a = Activations {
            x1: ctx.scratch("x1", tp * h),
            tmp: ctx.scratch("tmp", tp * h),
            qkv: ctx.scratch("qkv", tp * 3 * h),
            ctx: ctx.scratch("ctx", tp * h),
            inter: ctx.scratch("inter", tp * c.intermediate_size),
        };
        let input_ids = ctx.scratch("input_ids", t);
        let token_type_ids = ctx.scratch("token_type_ids", t);
        let mask = ctx.scratch("mask", t);
        let probs = (kept_count > 0).then(|| ctx.scratch("attentions", kept_count * c.num_hidden_layers * c.num_attention_heads * s * s));
        let w = &self.weights;
        let dense = |x: &wgpu::Buffer, lin: &GpuLinear, y: &wgpu::Buffer, act: Epilogue| {
            self.linear.bind(ctx, (x, XRows::Dense { held: tp }), &lin.w, &lin.b, y, (t, lin.n, lin.k), act)
        };
        let norm = |x: &wgpu::Buffer, res: Option<&wgpu::Buffer>, n: &(wgpu::Buffer, wgpu::Buffer), out: &wgpu::Buffer| {
            self.layernorm.bind(ctx, x, res, (&n.0, &n.1), out, t, h, eps)
        };
        let shape = AttentionShape { batch: rows, seq: s, heads: c.num_attention_heads, head_dim: c.head_dim() };

        let mut d = Vec::with_capacity(2 + 7 * w.layers.len() + 1);
        let tables = EmbeddingTables { word: &w.word, position: &w.position, token_type: &w.token_type };
        d.push(self.embeddings.bind(ctx, &input_ids, &token_type_ids, tables, &a.tmp, t, s, h));
        // one buffer the layers update in place, or one a layer when every layer's output is kept
        let states: Vec<wgpu::Buffer> = (0..if all_layers { w.layers.len() + 1 } else { 1 }).map(|_| ctx.scratch("x", tp * h)).collect();
        let state = |i: usize| &states[i.min(states.len() - 1)];
        d.push(norm(&a.tmp, None, &w.embeddings_norm, state(0)));
        for (l, layer) in w.layers.iter().enumerate() {
            d.push(dense(state(l), &layer.qkv, &a.qkv, Epilogue::None));
            d.push(self.flash.bind(ctx, &a.qkv, &mask, &a.ctx, shape)?);
            // the probabilities of the rows someone looks at
            if let Some(buffer) = &probs {
                let slot = ProbsSlot { buffer, layer: l, layers: c.num_hidden_layers };
                d.push(self.attention.bind(ctx, &a.qkv, &mask, slot, &self.kept, kept_count, shape));
            }
            d.push(dense(&a.ctx, &layer.attn_out, &a.tmp, Epilogue::None));
            d.push(norm(&a.tmp, Some(state(l)), &layer.attn_norm, &a.x1));
            d.push(dense(&a.x1, &layer.ffn_in, &a.inter, c.hidden_act.into()));
            d.push(dense(&a.inter, &layer.ffn_out, &a.tmp, Epilogue::None));
            d.push(norm(&a.tmp, Some(&a.x1), &layer.ffn_norm, state(l + 1)));
        }
        let pooled = w.pooler.as_ref().map(|p| {
            let out = ctx.scratch("pooled", rows * h);
            // The [CLS] rows are every s·h values apart: no gather needed.
            d.push(self.linear.bind(ctx, (state(w.layers.len()), XRows::Every(s * h)), &p.w, &p.b, &out, (rows, h, h), Epilogue::Tanh));
            out
        });
        Ok(Plan { input_ids, token_type_ids, mask, states, pooled, probs, dispatches: d })
    }
}
