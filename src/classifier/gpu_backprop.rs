//! [`backprop`](super::backprop) on the GPU: the same forward pass (keeping
//! what the backward pass needs), backward pass and Trainer step, each step
//! of the math one WGSL kernel, in the same order as the CPU code. The
//! parameters, their gradients and AdamW's moments live on the device for a
//! whole run; a batch is one submission (its loss the only readback), a step
//! one more (the gradient norm read back to clip). Dropout draws the same
//! masks as the CPU path, so the two paths compute the same run. Forward
//! Linears run on the inference encoder's kernels (`LinearKernel`: tiled, or
//! few-rows); the backward products on the generic strided one.

use crate::classifier::backprop::{layer_site, shape_of, Dropout};
use crate::classifier::loss::Targets;
use crate::classifier::optimizer::Moments;
use crate::classifier::{ClassifierParams, HeadKind, TensorInfo, TrainLayers};
use crate::config::BertConfig;
use crate::error::{Error, Result};
use crate::gpu::{Dispatch, GpuContext};
use crate::kernels::adamw::{AdamW, AdamWKernel};
use crate::kernels::attention::{AttentionProbsKernel, AttentionShape, AttentionTrainingKernels, ProbsSlot};
use crate::kernels::cls_gradient::ClsGradientKernel;
use crate::kernels::cross_entropy::CrossEntropyKernel;
use crate::kernels::dropout::{DropoutKernel, Mask};
use crate::kernels::embeddings::{EmbeddingTables, EmbeddingsBackwardKernel, EmbeddingsKernel, SegmentBuffers, Segments};
use crate::kernels::layernorm::{LayerNormBackwardKernel, LayerNormGradients, LayerNormKernel};
use crate::kernels::linear::{padded_rows, LinearKernel, XRows};
use crate::kernels::matmul::{ActivationKernel, ColumnSumsKernel, Epilogue, Layout};
use crate::kernels::squared_error::SquaredErrorKernel;
use crate::kernels::sum_squares::SumSquaresKernel;
use crate::tokenize::Batch;

/// Where a tensor sits in [`ClassifierParams::layout`]'s order.
mod index {
    pub const WORD: usize = 0;
    pub const POSITION: usize = 1;
    pub const TOKEN_TYPE: usize = 2;
    pub const EMBEDDINGS_NORM: usize = 3;
    /// Tensors per encoder layer, and their offsets in it (weight; its bias follows).
    const PER_LAYER: usize = 12;
    pub const QKV: usize = 0;
    pub const ATTN_OUT: usize = 2;
    pub const FFN_IN: usize = 4;
    pub const FFN_OUT: usize = 6;
    pub const ATTN_NORM: usize = 8;
    pub const FFN_NORM: usize = 10;

    pub fn layer(l: usize, offset: usize) -> usize {
        5 + PER_LAYER * l + offset
    }

    /// The pooler, after the layers (a sequence head's).
    pub fn pooler(layers: usize) -> usize {
        5 + PER_LAYER * layers
    }

    /// The classifier: the last two tensors.
    pub fn classifier(tensors: usize) -> usize {
        tensors - 2
    }
}

struct Kernels {
    linear: LinearKernel,
    activation: ActivationKernel,
    column_sums: ColumnSumsKernel,
    dropout: DropoutKernel,
    layernorm: LayerNormKernel,
    layernorm_backward: LayerNormBackwardKernel,
    probs: AttentionProbsKernel,
    attention: AttentionTrainingKernels,
    embeddings: EmbeddingsKernel,
    embeddings_backward: EmbeddingsBackwardKernel,
    cls_gradient: ClsGradientKernel,
    cross_entropy: CrossEntropyKernel,
    squared_error: SquaredErrorKernel,
    sum_squares: SumSquaresKernel,
    adamw: AdamWKernel,
}

/// A run's model on the GPU: parameters, gradients and moments, one buffer per tensor.
pub struct GpuTraining {
    ctx: GpuContext,
    k: Kernels,
    config: BertConfig,
    kind: HeadKind,
    outputs: usize,
    layout: Vec<TensorInfo>,
    train: TrainLayers,
    params: Vec<wgpu::Buffer>,
    grads: Vec<wgpu::Buffer>,
    m: Vec<wgpu::Buffer>,
    v: Vec<wgpu::Buffer>,
}

/// One encoder layer's kept activations (see `backprop::LayerTape`).
struct LayerTape {
    x: wgpu::Buffer,
    qkv: wgpu::Buffer,
    probs: wgpu::Buffer,
    ctx: wgpu::Buffer,
    /// attention output after dropout (x1 = LayerNorm(a + x))
    a: wgpu::Buffer,
    x1: wgpu::Buffer,
    inter_pre: wgpu::Buffer,
    inter: wgpu::Buffer,
    /// feed-forward output after dropout (out = LayerNorm(o + x1))
    o: wgpu::Buffer,
}

/// A batch's recorded forward pass.
struct Forward {
    dispatches: Vec<Dispatch>,
    shape: AttentionShape,
    /// The embeddings' sum before their LayerNorm (when they train).
    embeddings: Option<wgpu::Buffer>,
    first_layer: usize,
    layers: Vec<LayerTape>,
    /// The last layer's output (for a token head: after the classifier's dropout, in place).
    out: wgpu::Buffer,
    /// A sequence head's pooler output before its tanh.
    pooled_pre: Option<wgpu::Buffer>,
    /// The classifier's input after its dropout: tanh(pooled) a sequence, or `out` a token.
    features: wgpu::Buffer,
    /// Rows of the logits: sequences or tokens.
    rows: usize,
    logits: wgpu::Buffer,
}

impl GpuTraining {
    /// Uploads `params` and `moments` for a run that trains `train`.
    pub fn new(ctx: GpuContext, params: &ClassifierParams, moments: &Moments, train: TrainLayers) -> Result<Self> {
        let c = &params.bert.config;
        let limit = ctx.limits.max_storage_buffer_binding_size;
        if let Some(t) = params.layout().into_iter().find(|t| t.shape.iter().product::<usize>() as u64 * 4 > limit) {
            let mb = t.shape.iter().product::<usize>() as f64 * 4.0 / 1e6;
            return Err(Error::Input(format!(
                "`{}` ({mb:.0} MB) is past this GPU's {:.0} MB binding limit: train on the CPU path",
                t.name,
                limit as f64 / 1e6
            )));
        }
        let upload = |what: &str, p: &ClassifierParams| p.data().iter().map(|t| ctx.storage_f32(what, t)).collect::<Vec<_>>();
        let k = Kernels {
            linear: LinearKernel::new(&ctx),
            activation: ActivationKernel::new(&ctx),
            column_sums: ColumnSumsKernel::new(&ctx),
            dropout: DropoutKernel::new(&ctx),
            layernorm: LayerNormKernel::new(&ctx),
            layernorm_backward: LayerNormBackwardKernel::new(&ctx),
            probs: AttentionProbsKernel::new(&ctx),
            attention: AttentionTrainingKernels::new(&ctx),
            embeddings: EmbeddingsKernel::new(&ctx),
            embeddings_backward: EmbeddingsBackwardKernel::new(&ctx),
            cls_gradient: ClsGradientKernel::new(&ctx),
            cross_entropy: CrossEntropyKernel::new(&ctx),
            squared_error: SquaredErrorKernel::new(&ctx),
            sum_squares: SumSquaresKernel::new(&ctx),
            adamw: AdamWKernel::new(&ctx),
        };
        let training = GpuTraining {
            k,
            config: c.clone(),
            kind: params.kind,
            outputs: params.outputs(),
            layout: params.layout(),
            train,
            params: upload("parameter", params),
            grads: upload("gradient", &params.zeros_like()),
            m: upload("adam m", &moments.m),
            v: upload("adam v", &moments.v),
            ctx,
        };
        training.ctx.check()?;
        Ok(training)
    }

    fn layers(&self) -> usize {
        self.config.num_hidden_layers
    }

    fn trained(&self) -> impl Iterator<Item = usize> + '_ {
        let layers = self.layers();
        (0..self.layout.len()).filter(move |&i| self.train.trains(self.layout[i].part, layers))
    }

    /// Zeroes the trained tensors' gradients (before a step's batches).
    pub fn zero_gradients(&self) -> Result<()> {
        let bufs: Vec<&wgpu::Buffer> = self.trained().map(|i| &self.grads[i]).collect();
        self.ctx.clear(&bufs)
    }

    /// The batch's mean loss toward `targets` (as `loss::loss_and_dlogits`);
    /// its gradients, scaled by `scale`, are added into the device's.
    /// `entry`: `backprop::frozen_hidden` of the batch when the run trains
    /// the top layers only.
    pub async fn loss_and_gradients(
        &self,
        batch: &Batch,
        targets: &Targets,
        dropout: Option<&Dropout>,
        entry: Option<Vec<f32>>,
        scale: f32,
    ) -> Result<f32> {
        let mut f = self.forward(batch, dropout, entry)?;
        let (ctx, rows) = (&self.ctx, f.rows);
        if targets.rows() != rows {
            return Err(Error::Input(format!("{} targets for {rows} rows of outputs", targets.rows())));
        }
        let counted = targets.counted().max(1);
        let (loss, dlogits) = (ctx.scratch("loss", rows), ctx.scratch("dlogits", rows * self.outputs));
        let scale = scale / counted as f32;
        f.dispatches.push(match targets {
            Targets::Classes(labels) => {
                let labels = ctx.storage_u32("labels", labels);
                self.k.cross_entropy.bind(ctx, &f.logits, &labels, &loss, &dlogits, rows, self.outputs, scale)
            }
            Targets::Values(values) => {
                let values = ctx.storage_f32("targets", values);
                self.k.squared_error.bind(ctx, &f.logits, &values, &loss, &dlogits, rows, scale)
            }
        });
        let dispatches = self.backward(f, batch, &dlogits, dropout);
        let losses = ctx.run(&dispatches, &[(&loss, rows)]).await?.remove(0);
        Ok(losses.iter().sum::<f32>() / counted as f32)
    }

    /// The logits of `batch` in evaluation mode (`[rows, outputs]`: a row a sequence, or a token).
    pub async fn logits(&self, batch: &Batch, entry: Option<Vec<f32>>) -> Result<Vec<f32>> {
        let f = self.forward(batch, None, entry)?;
        Ok(self.ctx.run(&f.dispatches, &[(&f.logits, f.rows * self.outputs)]).await?.remove(0))
    }

    /// A forward Linear on the inference encoder's kernels (tiled, or few-rows);
    /// `x` is an [`Self::input`] buffer.
    fn linear(&self, x: &wgpu::Buffer, rows: usize, at: usize, y: &wgpu::Buffer) -> Dispatch {
        let (out, inp) = (self.layout[at].shape[0], self.layout[at].shape[1]);
        let (w, b) = (&self.params[at], &self.params[at + 1]);
        self.k.linear.bind(&self.ctx, (x, XRows::Dense { held: padded_rows(rows) }), w, b, y, (rows, out, inp), Epilogue::None)
    }

    /// A buffer of `rows` rows that a Linear reads: padded to whole tiles, as the tiled kernel reads them.
    fn input(&self, label: &str, rows: usize, width: usize) -> wgpu::Buffer {
        self.ctx.scratch(label, padded_rows(rows) * width)
    }

    /// Refuses a batch the kernels cannot take: longer than the attention
    /// kernels hold (a row of scores in workgroup memory), or with buffers
    /// past the device's binding limit.
    fn check_batch(&self, batch: &Batch) -> Result<()> {
        let (b, s) = (batch.batch_size, batch.seq_len);
        if s > AttentionProbsKernel::MAX_SEQ {
            return Err(Error::Input(format!("training on the GPU takes up to {} tokens a pair, not {s}", AttentionProbsKernel::MAX_SEQ)));
        }
        let c = &self.config;
        let rows = padded_rows(b * s);
        let largest =
            [b * c.num_attention_heads * s * s, rows * c.intermediate_size, rows * 3 * c.hidden_size].into_iter().max().unwrap_or(0);
        let limit = self.ctx.limits.max_storage_buffer_binding_size;
        if largest as u64 * 4 > limit {
            return Err(Error::Input(format!(
                "a batch of {b} pairs of {s} tokens needs {:.0} MB buffers on the GPU, past its {:.0} MB limit: lower the batch size or max_seq_length",
                largest as f64 * 4.0 / 1e6,
                limit as f64 / 1e6
            )));
        }
        Ok(())
    }

    /// The embeddings' sum, and the hidden states after their LayerNorm and dropout `mask`.
    fn embed(&self, d: &mut Vec<Dispatch>, batch: &Batch, mask: Mask) -> (wgpu::Buffer, wgpu::Buffer) {
        let (ctx, k, c) = (&self.ctx, &self.k, &self.config);
        let (rows, h) = (batch.batch_size * batch.seq_len, c.hidden_size);
        let ids = ctx.storage_u32("input ids", &batch.input_ids);
        let types = ctx.storage_u32("token types", &batch.token_type_ids);
        let sum = ctx.scratch("embeddings", rows * h);
        let tables = EmbeddingTables {
            word: &self.params[index::WORD],
            position: &self.params[index::POSITION],
            token_type: &self.params[index::TOKEN_TYPE],
        };
        d.push(k.embeddings.bind(ctx, &ids, &types, tables, &sum, rows, batch.seq_len, h));
        let x = self.input("hidden", rows, h);
        let norm = (&self.params[index::EMBEDDINGS_NORM], &self.params[index::EMBEDDINGS_NORM + 1]);
        d.push(k.layernorm.bind(ctx, &sum, None, norm, &x, rows, h, c.layer_norm_eps));
        d.push(k.dropout.bind(ctx, &x, rows * h, mask));
        (sum, x)
    }

    /// The attention mask's buffer and the uniform that has the probabilities kernel write every row.
    fn attention_inputs(&self, batch: &Batch) -> (wgpu::Buffer, wgpu::Buffer) {
        let mask = self.ctx.storage_u32("attention mask", &batch.attention_mask);
        let kept = AttentionProbsKernel::kept(&self.ctx);
        self.ctx.queue.write_buffer(&kept, 0, bytemuck::cast_slice(&AttentionProbsKernel::kept_rows(0, batch.batch_size)));
        (mask, kept)
    }

    /// Encoder layer `l` on `x`: its output, and what its backward pass needs.
    fn layer(
        &self,
        d: &mut Vec<Dispatch>,
        l: usize,
        x: wgpu::Buffer,
        (mask, kept): (&wgpu::Buffer, &wgpu::Buffer),
        shape: AttentionShape,
        dropout: Option<&Dropout>,
    ) -> (wgpu::Buffer, LayerTape) {
        let (ctx, k, c) = (&self.ctx, &self.k, &self.config);
        let (b, s, h, i_dim, eps) = (shape.batch, shape.seq, c.hidden_size, c.intermediate_size, c.layer_norm_eps);
        let rows = b * s;
        let base = layer_site(l);
        let site = |offset: u32, p: fn(&Dropout) -> f32| dropout.map_or(Mask::NONE, |d| d.site(base + offset, p(d)));
        let at = |offset| index::layer(l, offset);
        let norm = |offset| (&self.params[at(offset)], &self.params[at(offset) + 1]);
        let t = LayerTape {
            qkv: ctx.scratch("qkv", rows * 3 * h),
            probs: ctx.scratch("probs", b * shape.heads * s * s),
            ctx: self.input("context", rows, h),
            a: ctx.scratch("attention output", rows * h),
            x1: self.input("x1", rows, h),
            inter_pre: ctx.scratch("intermediate", rows * i_dim),
            inter: self.input("activation", rows, i_dim),
            o: ctx.scratch("output", rows * h),
            x,
        };
        let out = self.input("hidden", rows, h);
        d.push(self.linear(&t.x, rows, at(index::QKV), &t.qkv));
        d.push(k.probs.bind(ctx, &t.qkv, mask, ProbsSlot { buffer: &t.probs, layer: 0, layers: 1 }, kept, b, shape));
        d.push(k.attention.context(ctx, &t.qkv, &t.probs, &t.ctx, shape, site(0, |d| d.attention)));
        d.push(self.linear(&t.ctx, rows, at(index::ATTN_OUT), &t.a));
        d.push(k.dropout.bind(ctx, &t.a, rows * h, site(1, |d| d.hidden)));
        d.push(k.layernorm.bind(ctx, &t.a, Some(&t.x), norm(index::ATTN_NORM), &t.x1, rows, h, eps));
        d.push(self.linear(&t.x1, rows, at(index::FFN_IN), &t.inter_pre));
        d.push(k.activation.forward(ctx, &t.inter_pre, &t.inter, rows * i_dim, c.hidden_act.into()));
        d.push(self.linear(&t.inter, rows, at(index::FFN_OUT), &t.o));
        d.push(k.dropout.bind(ctx, &t.o, rows * h, site(2, |d| d.hidden)));
        d.push(k.layernorm.bind(ctx, &t.o, Some(&t.x1), norm(index::FFN_NORM), &out, rows, h, eps));
        (out, t)
    }

    /// `backprop::frozen_hidden` on the device: the hidden states entering
    /// layer `first`, in evaluation mode (`[batch·seq, hidden]`).
    pub async fn frozen_hidden(&self, batch: &Batch, first: usize) -> Result<Vec<f32>> {
        self.check_batch(batch)?;
        let shape = shape_of(&self.config, batch);
        let mut d = Vec::new();
        let (_, mut x) = self.embed(&mut d, batch, Mask::NONE);
        let (mask, kept) = self.attention_inputs(batch);
        for l in 0..first {
            x = self.layer(&mut d, l, x, (&mask, &kept), shape, None).0;
        }
        Ok(self.ctx.run(&d, &[(&x, shape.batch * shape.seq * self.config.hidden_size)]).await?.remove(0))
    }

    fn forward(&self, batch: &Batch, dropout: Option<&Dropout>, entry: Option<Vec<f32>>) -> Result<Forward> {
        self.check_batch(batch)?;
        let (ctx, k, c) = (&self.ctx, &self.k, &self.config);
        let shape = shape_of(c, batch);
        let (b, s, h) = (shape.batch, shape.seq, c.hidden_size);
        let rows = b * s;
        let first_layer = self.train.first_trained_layer(self.layers());
        let mut d = Vec::new();
        let (x, embeddings) = match entry {
            Some(x) => {
                let buf = self.input("hidden", rows, h);
                ctx.queue.write_buffer(&buf, 0, bytemuck::cast_slice(&x));
                (buf, None)
            }
            None if self.train == TrainLayers::All => {
                let (sum, x) = self.embed(&mut d, batch, dropout.map_or(Mask::NONE, |d| d.site(0, d.hidden)));
                (x, Some(sum))
            }
            // the frozen layers run once per pair ([`Self::frozen_hidden`]), cached by the run
            None => return Err(Error::Input("a run of the top layers starts from the frozen layers' outputs".into())),
        };
        let attention = self.attention_inputs(batch);
        let mut x = x;
        let mut layers = Vec::new();
        for l in first_layer..self.layers() {
            let (out, tape) = self.layer(&mut d, l, x, (&attention.0, &attention.1), shape, dropout);
            layers.push(tape);
            x = out;
        }
        let classifier_mask = dropout.map_or(Mask::NONE, |d| d.site(layer_site(self.layers()), d.classifier));

        // the head: each sequence's [CLS] row (a strided read) → pooler → tanh, or every token's
        // hidden state; then dropout → classifier
        let (pooled_pre, features, head_rows) = match self.kind {
            HeadKind::Sequence => {
                let pooler = index::pooler(self.layers());
                let pooled_pre = ctx.scratch("pooled", b * h);
                let (pooler_w, pooler_b) = (&self.params[pooler], &self.params[pooler + 1]);
                d.push(k.linear.bind(ctx, (&x, XRows::Every(s * h)), pooler_w, pooler_b, &pooled_pre, (b, h, h), Epilogue::None));
                let pooled = self.input("pooled", b, h);
                d.push(k.activation.forward(ctx, &pooled_pre, &pooled, b * h, Epilogue::Tanh));
                (Some(pooled_pre), pooled, b)
            }
            // the output itself, dropped out in place (the layers' backward passes do not read it)
            HeadKind::Tokens => (None, x.clone(), rows),
        };
        d.push(k.dropout.bind(ctx, &features, head_rows * h, classifier_mask));
        let logits = ctx.scratch("logits", head_rows * self.outputs);
        d.push(self.linear(&features, head_rows, index::classifier(self.layout.len()), &logits));
        Ok(Forward { dispatches: d, shape, embeddings, first_layer, layers, out: x, pooled_pre, features, rows: head_rows, logits })
    }

    /// Adds a Linear's weight and bias gradients (tensor `at`) from `x` and
    /// `dy` over `rows` rows (`x` read through `x_layout`).
    fn linear_grads(&self, d: &mut Vec<Dispatch>, x: (&wgpu::Buffer, Layout), dy: &wgpu::Buffer, rows: usize, at: usize) {
        let (out, inp) = (self.layout[at].shape[0], self.layout[at].shape[1]);
        // dW += dYᵀ·X, db += Σ dY
        let xt = Layout { row_stride: x.1.col_stride, col_stride: x.1.row_stride };
        d.push(self.k.linear.generic().accumulate(&self.ctx, (dy, Layout::transposed(out)), (x.0, xt), &self.grads[at], (out, inp, rows)));
        d.push(self.k.column_sums.bind(&self.ctx, dy, &self.grads[at + 1], rows, out));
    }

    /// `dx (+)= dY·W` for the Linear `at`.
    fn linear_dx(&self, dy: &wgpu::Buffer, rows: usize, at: usize, dx: &wgpu::Buffer, accumulate: bool) -> Dispatch {
        let (out, inp) = (self.layout[at].shape[0], self.layout[at].shape[1]);
        let (a, w) = ((dy, Layout::rows(out)), (&self.params[at], Layout::transposed(inp)));
        if accumulate {
            self.k.linear.generic().accumulate(&self.ctx, a, w, dx, (rows, inp, out))
        } else {
            self.k.linear.generic().bind(&self.ctx, a, w, None, dx, (rows, inp, out), Epilogue::None)
        }
    }

    /// A LayerNorm's backward: adds gamma's and beta's gradients (tensor
    /// `at`); returns the gradients of its input sum and of the branch.
    #[allow(clippy::too_many_arguments)]
    fn norm_backward(
        &self,
        d: &mut Vec<Dispatch>,
        x: &wgpu::Buffer,
        residual: Option<&wgpu::Buffer>,
        dy: &wgpu::Buffer,
        at: usize,
        rows: usize,
        branch: Mask,
    ) -> (wgpu::Buffer, wgpu::Buffer) {
        let (ctx, h) = (&self.ctx, self.config.hidden_size);
        let (d_sum, d_branch, g_xhat) = (ctx.scratch("d_sum", rows * h), ctx.scratch("d_branch", rows * h), ctx.scratch("dy·x̂", rows * h));
        let out = LayerNormGradients { d_sum: &d_sum, d_branch: &d_branch, g_xhat: &g_xhat };
        d.push(self.k.layernorm_backward.bind(ctx, x, residual, &self.params[at], dy, out, (rows, h, self.config.layer_norm_eps), branch));
        d.push(self.k.column_sums.bind(ctx, &g_xhat, &self.grads[at], rows, h));
        d.push(self.k.column_sums.bind(ctx, dy, &self.grads[at + 1], rows, h));
        (d_sum, d_branch)
    }

    fn backward(&self, mut f: Forward, batch: &Batch, dlogits: &wgpu::Buffer, dropout: Option<&Dropout>) -> Vec<Dispatch> {
        let (ctx, k, c) = (&self.ctx, &self.k, &self.config);
        let shape = f.shape;
        let (b, s, h, i_dim) = (shape.batch, shape.seq, c.hidden_size, c.intermediate_size);
        let rows = b * s;
        let site = |site: u32, p: fn(&Dropout) -> f32| dropout.map_or(Mask::NONE, |d| d.site(site, p(d)));
        let layers = self.layers();
        let classifier = index::classifier(self.layout.len());
        let mut d = std::mem::take(&mut f.dispatches);

        // the head: classifier ← dropout ← (tanh ← pooler ← [CLS] for a sequence head)
        let head_rows = f.rows;
        self.linear_grads(&mut d, (&f.features, Layout::rows(h)), dlogits, head_rows, classifier);
        if f.layers.is_empty() && f.pooled_pre.is_none() {
            return d;
        }
        let d_features = ctx.scratch("d_features", head_rows * h);
        d.push(self.linear_dx(dlogits, head_rows, classifier, &d_features, false));
        d.push(k.dropout.bind(ctx, &d_features, head_rows * h, site(layer_site(layers), |d| d.classifier)));
        let mut dx = match &f.pooled_pre {
            Some(pooled_pre) => {
                let pooler = index::pooler(layers);
                d.push(k.activation.backward(ctx, pooled_pre, &d_features, b * h, Epilogue::Tanh));
                self.linear_grads(&mut d, (&f.out, Layout { row_stride: s * h, col_stride: 1 }), &d_features, b, pooler);
                if f.layers.is_empty() {
                    return d;
                }
                let d_cls = ctx.scratch("d_cls", b * h);
                d.push(self.linear_dx(&d_features, b, pooler, &d_cls, false));
                let dx = ctx.scratch("dx", rows * h);
                d.push(k.cls_gradient.bind(ctx, &d_cls, &dx, (b, s, h)));
                dx
            }
            None => d_features,
        };

        let act: Epilogue = c.hidden_act.into();
        while let Some(t) = f.layers.pop() {
            let l = f.first_layer + f.layers.len();
            let at = |offset| index::layer(l, offset);
            let base = layer_site(l);
            let want_dx = l > 0 || f.embeddings.is_some();
            // out = LayerNorm(dropout(inter·W2ᵀ + b2) + x1)
            let (dx1, d_o) = self.norm_backward(&mut d, &t.o, Some(&t.x1), &dx, at(index::FFN_NORM), rows, site(base + 2, |d| d.hidden));
            self.linear_grads(&mut d, (&t.inter, Layout::rows(i_dim)), &d_o, rows, at(index::FFN_OUT));
            let d_inter = ctx.scratch("d_inter", rows * i_dim);
            d.push(self.linear_dx(&d_o, rows, at(index::FFN_OUT), &d_inter, false));
            d.push(k.activation.backward(ctx, &t.inter_pre, &d_inter, rows * i_dim, act));
            self.linear_grads(&mut d, (&t.x1, Layout::rows(h)), &d_inter, rows, at(index::FFN_IN));
            d.push(self.linear_dx(&d_inter, rows, at(index::FFN_IN), &dx1, true));
            // x1 = LayerNorm(dropout(ctx·Woᵀ + bo) + x)
            let (dx_in, d_a) = self.norm_backward(&mut d, &t.a, Some(&t.x), &dx1, at(index::ATTN_NORM), rows, site(base + 1, |d| d.hidden));
            self.linear_grads(&mut d, (&t.ctx, Layout::rows(h)), &d_a, rows, at(index::ATTN_OUT));
            let d_ctx = ctx.scratch("d_ctx", rows * h);
            d.push(self.linear_dx(&d_a, rows, at(index::ATTN_OUT), &d_ctx, false));
            let (d_scores, dqkv) = (ctx.scratch("d_scores", b * shape.heads * s * s), ctx.scratch("dqkv", rows * 3 * h));
            d.extend(k.attention.backward(ctx, &t.qkv, &t.probs, &d_ctx, &d_scores, &dqkv, shape, site(base, |d| d.attention)));
            self.linear_grads(&mut d, (&t.x, Layout::rows(h)), &dqkv, rows, at(index::QKV));
            if want_dx {
                d.push(self.linear_dx(&dqkv, rows, at(index::QKV), &dx_in, true));
            }
            dx = dx_in;
        }

        // the embeddings: dropout(LayerNorm(word + position + token type))
        if let Some(sum) = &f.embeddings {
            d.push(k.dropout.bind(ctx, &dx, rows * h, site(0, |d| d.hidden)));
            let (d_sum, _) = self.norm_backward(&mut d, sum, None, &dx, index::EMBEDDINGS_NORM, rows, Mask::NONE);
            let segments = Segments::of_batch(&batch.input_ids, &batch.token_type_ids, s);
            for (table, seg) in [index::WORD, index::POSITION, index::TOKEN_TYPE].into_iter().zip(&segments) {
                d.push(k.embeddings_backward.bind(ctx, &SegmentBuffers::new(ctx, seg), &d_sum, &self.grads[table], h));
            }
        }
        d
    }

    /// One optimizer step `t` (from 1), as `optimizer::step`: the trained
    /// gradients' global norm (read back), clipping inside AdamW. Returns the norm.
    pub async fn step(&self, opt: &AdamW, t: u32, max_grad_norm: f32) -> Result<f64> {
        let trained: Vec<usize> = self.trained().collect();
        let counts: Vec<usize> = trained.iter().map(|&i| SumSquaresKernel::partials(self.len(i))).collect();
        let total: usize = counts.iter().sum();
        let partials = self.ctx.storage_f32("norm partials", &vec![0.0; total]);
        let mut d = Vec::new();
        let mut offset = 0;
        for (&i, n) in trained.iter().zip(&counts) {
            d.push(self.k.sum_squares.bind(&self.ctx, &self.grads[i], self.len(i), &partials, offset));
            offset += n;
        }
        let sums = self.ctx.run(&d, &[(&partials, total)]).await?.remove(0);
        let norm = sums.iter().map(|&v| f64::from(v)).sum::<f64>().sqrt();
        let clip = (f64::from(max_grad_norm) / (norm + 1e-6)).min(1.0) as f32;
        let d: Vec<Dispatch> = trained
            .iter()
            .map(|&i| {
                let weight_decay = if self.layout[i].decays() { opt.weight_decay } else { 0.0 };
                let o = AdamW { weight_decay, grad_scale: clip, ..*opt };
                self.k.adamw.bind(&self.ctx, &o, t, &self.grads[i], &self.params[i], &self.m[i], &self.v[i], self.len(i))
            })
            .collect();
        // nothing to read back: the next batch's submission waits behind it
        self.ctx.submit(&d)?;
        Ok(norm)
    }

    fn len(&self, i: usize) -> usize {
        self.layout[i].shape.iter().product()
    }

    /// The tensors of `set` read back, shaped as `like` (the run's model on
    /// the host): in as few readbacks as fit 64 MB each (every readback
    /// waits for the device; one buffer as large as the model may exceed its limit).
    async fn read(&self, set: &[wgpu::Buffer], like: &ClassifierParams) -> Result<ClassifierParams> {
        const GROUP: usize = 16 << 20;
        let mut out = like.clone();
        let mut tensors = out.data_mut().into_iter().zip(set).peekable();
        while tensors.peek().is_some() {
            let mut group = Vec::new();
            let mut floats = 0;
            while let Some((t, _)) = tensors.peek() {
                if !group.is_empty() && floats + t.len() > GROUP {
                    break;
                }
                floats += t.len();
                group.push(tensors.next().expect("peeked"));
            }
            let outputs: Vec<(&wgpu::Buffer, usize)> = group.iter().map(|(t, b)| (*b, t.len())).collect();
            let values = self.ctx.run(&[], &outputs).await?;
            for ((t, _), v) in group.into_iter().zip(values) {
                *t = v;
            }
        }
        Ok(out)
    }

    /// The parameters and moments as they stand on the device (`like`: the run's model on the host).
    pub async fn download(&self, like: &ClassifierParams) -> Result<(ClassifierParams, Moments)> {
        let params = self.read(&self.params, like).await?;
        let moments = Moments { m: self.read(&self.m, like).await?, v: self.read(&self.v, like).await? };
        Ok((params, moments))
    }

    /// The gradients as they stand on the device (for tests).
    pub async fn gradients(&self, like: &ClassifierParams) -> Result<ClassifierParams> {
        self.read(&self.grads, like).await
    }
}

#[cfg(test)]
mod tests {
    use super::index;
    use crate::classifier::{ClassifierParams, HeadKind};
    use crate::config::BertConfig;
    use crate::weights::BertWeights;

    #[test]
    fn the_indices_name_the_layout_s_tensors() {
        let mut c = BertConfig::bert_base();
        (c.vocab_size, c.hidden_size, c.num_attention_heads, c.intermediate_size, c.num_hidden_layers) = (50, 8, 2, 12, 3);
        let layout = ClassifierParams::new(BertWeights::random(&c, 1), HeadKind::Sequence, 2, 3).layout();
        let name = |i: usize| layout[i].name.as_str();
        assert_eq!(name(index::WORD), "bert.embeddings.word_embeddings.weight");
        assert_eq!(name(index::POSITION), "bert.embeddings.position_embeddings.weight");
        assert_eq!(name(index::TOKEN_TYPE), "bert.embeddings.token_type_embeddings.weight");
        assert_eq!(name(index::EMBEDDINGS_NORM), "bert.embeddings.LayerNorm.weight");
        for (offset, what) in [
            (index::QKV, "attention.self.qkv.weight"),
            (index::ATTN_OUT, "attention.output.dense.weight"),
            (index::FFN_IN, "intermediate.dense.weight"),
            (index::FFN_OUT, "output.dense.weight"),
            (index::ATTN_NORM, "attention.output.LayerNorm.weight"),
            (index::FFN_NORM, "output.LayerNorm.weight"),
        ] {
            assert_eq!(name(index::layer(2, offset)), format!("bert.encoder.layer.2.{what}"));
        }
        assert_eq!(name(index::pooler(3)), "bert.pooler.dense.weight");
        assert_eq!(name(index::classifier(layout.len())), "classifier.weight");
        let tokens = ClassifierParams::new(BertWeights::random(&c, 1), HeadKind::Tokens, 5, 3).layout();
        assert_eq!(tokens[index::classifier(tokens.len())].name, "classifier.weight");
        assert_eq!(tokens[index::classifier(tokens.len())].shape, [5, 8]);
    }
}
