//! BERT with its task head forward, keeping what the backward pass needs,
//! and backward: the gradient of the task's loss ([`loss`](super::loss))
//! with respect to every trained tensor. Each step calls one kernel's plain CPU reference
//! (or a matrix product of [`CpuMath`]), in the order the math is written.
//!
//! Layers below the first trained one run in evaluation mode (no dropout)
//! and keep nothing, so their outputs can be computed once per pair and
//! cached ([`frozen_hidden`]); a step then starts from them.

use crate::classifier::loss::{loss_and_dlogits, Targets};
use crate::classifier::math::{add, CpuMath};
use crate::classifier::{ClassifierParams, HeadKind, TrainLayers};
use crate::config::BertConfig;
use crate::kernels::attention::AttentionShape;
use crate::kernels::cls_gradient::cls_gradient_cpu;
use crate::kernels::dropout::{dropout_mask_cpu, site_seed, Mask};
use crate::kernels::embeddings::embeddings_cpu;
use crate::kernels::layernorm::{layernorm_backward_cpu, layernorm_cpu};
use crate::kernels::matmul::{activation_backward_cpu, Epilogue};
use crate::tokenize::Batch;
use crate::weights::{EncoderLayer, LayerNorm};

/// Training-mode dropout of one step: masks drawn from (seed, step, site).
#[derive(Debug, Clone, Copy)]
pub struct Dropout {
    pub seed: u64,
    pub step: u32,
    pub hidden: f32,
    pub attention: f32,
    pub classifier: f32,
}

impl Dropout {
    /// The probabilities config.json gives, for step `step` of a run seeded `seed`.
    pub fn training(config: &BertConfig, seed: u64, step: u32) -> Self {
        Dropout {
            seed,
            step,
            hidden: config.hidden_dropout_prob,
            attention: config.attention_probs_dropout_prob,
            classifier: config.classifier_dropout_prob(),
        }
    }

    /// Site `site`'s mask with probability `p`.
    pub fn site(&self, site: u32, p: f32) -> Mask {
        Mask { seed: site_seed(self.seed, self.step, site), p }
    }

    /// The factors of site `site`'s mask, or `None` where nothing is dropped.
    fn mask(&self, site: u32, p: f32, len: usize) -> Option<Vec<f32>> {
        let m = self.site(site, p);
        (p > 0.0).then(|| dropout_mask_cpu(m.seed, p, len))
    }
}

/// Mask sites: the embeddings' is 0, layer `l` has three from `1 + 3l`, the classifier's is last.
pub(crate) fn layer_site(l: usize) -> u32 {
    1 + 3 * l as u32
}

/// `x ⊙ mask`, in place, when there is a mask.
fn apply(x: &mut [f32], mask: &Option<Vec<f32>>) {
    if let Some(m) = mask {
        x.iter_mut().zip(m).for_each(|(v, f)| *v *= f);
    }
}

fn sum(a: &[f32], b: &[f32]) -> Vec<f32> {
    a.iter().zip(b).map(|(x, y)| x + y).collect()
}

/// What one encoder layer's backward pass needs.
struct LayerTape {
    x: Vec<f32>,
    qkv: Vec<f32>,
    probs: Vec<f32>,
    probs_dropout: Option<Vec<f32>>,
    ctx: Vec<f32>,
    attn_dropout: Option<Vec<f32>>,
    /// attention output + x: what the first LayerNorm normalised
    s1: Vec<f32>,
    x1: Vec<f32>,
    inter_pre: Vec<f32>,
    inter: Vec<f32>,
    out_dropout: Option<Vec<f32>>,
    /// feed-forward output + x1: what the second LayerNorm normalised
    s2: Vec<f32>,
}

/// What a sequence head's backward pass needs beyond the classifier's input.
struct PoolerTape {
    cls: Vec<f32>,
    /// the pooler's output before its tanh
    pooled_pre: Vec<f32>,
}

/// A batch's geometry and what its forward pass kept.
pub struct Forward {
    /// `[rows, outputs]`: a row a sequence (sequence head) or a token (token head).
    pub logits: Vec<f32>,
    shape: AttentionShape,
    /// The embeddings before their LayerNorm, and its dropout (when the embeddings train).
    embeddings: Option<(Vec<f32>, Option<Vec<f32>>)>,
    first_layer: usize,
    layers: Vec<LayerTape>,
    /// `Some` for a sequence head.
    pooler: Option<PoolerTape>,
    /// The classifier's input after its dropout: tanh(pooled) a sequence, or the last hidden state a token.
    features: Vec<f32>,
    features_dropout: Option<Vec<f32>>,
}

pub(crate) fn shape_of(c: &BertConfig, batch: &Batch) -> AttentionShape {
    AttentionShape { batch: batch.batch_size, seq: batch.seq_len, heads: c.num_attention_heads, head_dim: c.head_dim() }
}

/// The embeddings' sum before and after their LayerNorm.
fn embed(p: &ClassifierParams, batch: &Batch) -> (Vec<f32>, Vec<f32>) {
    let w = &p.bert;
    let h = w.config.hidden_size;
    let tables = (&w.word_embeddings, &w.position_embeddings, &w.token_type_embeddings);
    let sum = embeddings_cpu(&batch.input_ids, &batch.token_type_ids, batch.seq_len, tables.0, tables.1, tables.2, h);
    let x = layernorm_cpu(&sum, None, &w.embeddings_norm, h, w.config.layer_norm_eps);
    (sum, x)
}

fn layer_forward(
    math: CpuMath,
    layer: &EncoderLayer,
    c: &BertConfig,
    x: Vec<f32>,
    mask: &[u32],
    shape: AttentionShape,
    drop: Option<(&Dropout, u32)>,
) -> (Vec<f32>, LayerTape) {
    let (rows, h, eps) = (shape.batch * shape.seq, c.hidden_size, c.layer_norm_eps);
    let site_mask = |offset: u32, p: f32, len: usize| drop.and_then(|(d, site)| d.mask(site + offset, p, len));
    let attention_p = drop.map_or(0.0, |(d, _)| d.attention);
    let hidden_p = drop.map_or(0.0, |(d, _)| d.hidden);

    let qkv = math.linear(&x, rows, &layer.qkv);
    let probs_dropout = site_mask(0, attention_p, shape.batch * shape.heads * shape.seq * shape.seq);
    let (probs, ctx) = math.attention(&qkv, mask, probs_dropout.as_deref(), shape);
    let mut a = math.linear(&ctx, rows, &layer.attn_out);
    let attn_dropout = site_mask(1, hidden_p, a.len());
    apply(&mut a, &attn_dropout);
    let s1 = sum(&a, &x);
    let x1 = layernorm_cpu(&s1, None, &layer.attn_norm, h, eps);
    let inter_pre = math.linear(&x1, rows, &layer.ffn_in);
    let act: Epilogue = c.hidden_act.into();
    let inter = math.activation(&inter_pre, act);
    let mut o = math.linear(&inter, rows, &layer.ffn_out);
    let out_dropout = site_mask(2, hidden_p, o.len());
    apply(&mut o, &out_dropout);
    let s2 = sum(&o, &x1);
    let out = layernorm_cpu(&s2, None, &layer.ffn_norm, h, eps);
    (out, LayerTape { x, qkv, probs, probs_dropout, ctx, attn_dropout, s1, x1, inter_pre, inter, out_dropout, s2 })
}

/// The hidden states entering layer `first` (`[batch·seq, hidden]`), in
/// evaluation mode: what a run that trains from layer `first` up caches.
pub fn frozen_hidden(math: CpuMath, p: &ClassifierParams, batch: &Batch, first: usize) -> Vec<f32> {
    let shape = shape_of(&p.bert.config, batch);
    let mut x = embed(p, batch).1;
    for layer in &p.bert.layers[..first] {
        x = layer_forward(math, layer, &p.bert.config, x, &batch.attention_mask, shape, None).0;
    }
    x
}

/// Runs the model on `batch`, keeping what [`backward`] needs for `train`.
/// `dropout` is `None` in evaluation. `entry`, when given, is
/// [`frozen_hidden`] of this batch for `train`'s first trained layer.
pub fn forward(
    math: CpuMath,
    p: &ClassifierParams,
    batch: &Batch,
    train: TrainLayers,
    dropout: Option<&Dropout>,
    entry: Option<Vec<f32>>,
) -> Forward {
    let c = &p.bert.config;
    let shape = shape_of(c, batch);
    let (b, s, h) = (shape.batch, shape.seq, c.hidden_size);
    let first_layer = train.first_trained_layer(p.bert.layers.len());
    let (mut x, embeddings) = match entry {
        Some(x) => (x, None),
        None if first_layer == 0 && train == TrainLayers::All => {
            let (sum, mut x) = embed(p, batch);
            let mask = dropout.and_then(|d| d.mask(0, d.hidden, x.len()));
            apply(&mut x, &mask);
            (x, Some((sum, mask)))
        }
        None => (frozen_hidden(math, p, batch, first_layer), None),
    };
    let mut layers = Vec::new();
    for (l, layer) in p.bert.layers.iter().enumerate().skip(first_layer) {
        let (out, tape) = layer_forward(math, layer, c, x, &batch.attention_mask, shape, dropout.map(|d| (d, layer_site(l))));
        layers.push(tape);
        x = out;
    }
    // the head: [CLS] → pooler → tanh (a sequence's), or every token's hidden state; then dropout → classifier
    let (pooler, mut features) = match p.kind {
        HeadKind::Sequence => {
            let cls: Vec<f32> = (0..b).flat_map(|r| x[r * s * h..][..h].iter().copied()).collect();
            let pooled_pre = math.linear(&cls, b, p.pooler());
            let pooled = pooled_pre.iter().map(|v| v.tanh()).collect();
            (Some(PoolerTape { cls, pooled_pre }), pooled)
        }
        HeadKind::Tokens => (None, x),
    };
    let features_dropout = dropout.and_then(|d| d.mask(layer_site(p.bert.layers.len()), d.classifier, features.len()));
    apply(&mut features, &features_dropout);
    let logits = math.linear(&features, features.len() / h, &p.classifier);
    Forward { logits, shape, embeddings, first_layer, layers, pooler, features, features_dropout }
}

/// The backward pass of `y = LayerNorm(dropout(branch) + residual)` given
/// dy: adds the norm's gradients into `grad`, and returns the gradients of the
/// residual and of the branch (before its dropout).
fn residual_norm_backward(
    sum: &[f32],
    norm: &LayerNorm,
    grad: &mut LayerNorm,
    dy: &[f32],
    dropout: &Option<Vec<f32>>,
    h: usize,
    eps: f32,
) -> (Vec<f32>, Vec<f32>) {
    let (d_sum, dgamma, dbeta) = layernorm_backward_cpu(sum, &norm.gamma, dy, h, eps);
    add(&mut grad.gamma, &dgamma);
    add(&mut grad.beta, &dbeta);
    let mut d_branch = d_sum.clone();
    apply(&mut d_branch, dropout);
    (d_sum, d_branch)
}

/// Adds the gradients of the loss whose gradient with respect to the logits
/// is `dlogits` into `grads` (for the tensors `f`'s `train` trains). Each
/// layer's activations are freed once its backward pass is done. Returns,
/// when the embeddings train, the gradient reaching each position's sum of
/// word, position and type rows (`[rows, hidden]`: attributions read it).
pub fn backward(
    math: CpuMath,
    p: &ClassifierParams,
    mut f: Forward,
    batch: &Batch,
    dlogits: &[f32],
    grads: &mut ClassifierParams,
) -> Option<Vec<f32>> {
    let c = &p.bert.config;
    let (shape, h, eps) = (f.shape, c.hidden_size, c.layer_norm_eps);
    let (b, s) = (shape.batch, shape.seq);
    let rows = b * s;

    // the head: classifier ← dropout ← (tanh ← pooler ← [CLS] for a sequence head)
    let want_dx = !f.layers.is_empty();
    let feature_rows = f.features.len() / h;
    let want_features = want_dx || f.pooler.is_some();
    let d_features = math.linear_backward(&f.features, dlogits, feature_rows, &p.classifier, &mut grads.classifier, want_features);
    let mut d_features = d_features.unwrap_or_default();
    apply(&mut d_features, &f.features_dropout);
    let mut dx = match &f.pooler {
        Some(t) => {
            let d_pre = activation_backward_cpu(&t.pooled_pre, &d_features, Epilogue::Tanh);
            let pooler_grad = grads.bert.pooler.as_mut().expect("gradients have the parameters' pooler");
            let d_cls = math.linear_backward(&t.cls, &d_pre, b, p.pooler(), pooler_grad, want_dx).unwrap_or_default();
            if !want_dx {
                return None;
            }
            cls_gradient_cpu(&d_cls, b, s, h)
        }
        None if !want_dx => return None,
        None => d_features,
    };

    let act: Epilogue = c.hidden_act.into();
    while let Some(t) = f.layers.pop() {
        let l = f.first_layer + f.layers.len();
        let (layer, g) = (&p.bert.layers[l], &mut grads.bert.layers[l]);
        let want_dx = l > 0 || f.embeddings.is_some();
        // out = LayerNorm(dropout(inter·W2ᵀ + b2) + x1)
        let (mut dx1, d_o) = residual_norm_backward(&t.s2, &layer.ffn_norm, &mut g.ffn_norm, &dx, &t.out_dropout, h, eps);
        let d_inter = math.linear_backward(&t.inter, &d_o, rows, &layer.ffn_out, &mut g.ffn_out, true).unwrap_or_default();
        let d_inter_pre = math.activation_backward(&t.inter_pre, &d_inter, act);
        let d_x1 = math.linear_backward(&t.x1, &d_inter_pre, rows, &layer.ffn_in, &mut g.ffn_in, true).unwrap_or_default();
        add(&mut dx1, &d_x1);
        // x1 = LayerNorm(dropout(ctx·Woᵀ + bo) + x)
        let (mut dx_in, d_a) = residual_norm_backward(&t.s1, &layer.attn_norm, &mut g.attn_norm, &dx1, &t.attn_dropout, h, eps);
        let d_ctx = math.linear_backward(&t.ctx, &d_a, rows, &layer.attn_out, &mut g.attn_out, true).unwrap_or_default();
        let dqkv = math.attention_backward(&t.qkv, &t.probs, t.probs_dropout.as_deref(), &d_ctx, shape);
        if let Some(d) = math.linear_backward(&t.x, &dqkv, rows, &layer.qkv, &mut g.qkv, want_dx) {
            add(&mut dx_in, &d);
        }
        dx = dx_in;
    }

    // the embeddings: dropout(LayerNorm(word + position + token type))
    if let Some((sum, mask)) = &f.embeddings {
        apply(&mut dx, mask);
        let w = &p.bert;
        let (d_sum, dgamma, dbeta) = layernorm_backward_cpu(sum, &w.embeddings_norm.gamma, &dx, h, eps);
        add(&mut grads.bert.embeddings_norm.gamma, &dgamma);
        add(&mut grads.bert.embeddings_norm.beta, &dbeta);
        let g = &mut grads.bert;
        let tables = (&mut g.word_embeddings, &mut g.position_embeddings, &mut g.token_type_embeddings);
        math.embeddings_backward(batch, &d_sum, tables, h);
        return Some(d_sum);
    }
    None
}

/// The batch's mean loss toward `targets` (a row of the logits each); its
/// gradients are added into `grads`, scaled by `scale` (1 for one batch;
/// 1/n when n micro-batches make a step).
#[allow(clippy::too_many_arguments)]
pub fn loss_and_gradients(
    math: CpuMath,
    p: &ClassifierParams,
    batch: &Batch,
    targets: &Targets,
    train: TrainLayers,
    dropout: Option<&Dropout>,
    entry: Option<Vec<f32>>,
    scale: f32,
    grads: &mut ClassifierParams,
) -> f32 {
    let f = forward(math, p, batch, train, dropout, entry);
    let (loss, dlogits) = loss_and_dlogits(&f.logits, targets, p.outputs(), scale);
    backward(math, p, f, batch, &dlogits, grads);
    loss
}
