//! A classification head on frozen BERT features, and its training step:
//! forward, softmax cross-entropy, backward and AdamW, on the CPU (the
//! reference, written out step by step) or on the GPU (the same steps as
//! WGSL kernels, one submission per step, on the encoder's device).

use std::collections::HashMap;

use crate::error::{Error, Result};
use crate::gpu::{Dispatch, GpuContext};
use crate::kernels::adamw::{adamw_cpu, AdamW, AdamWKernel};
use crate::kernels::cross_entropy::{cross_entropy_cpu, CrossEntropyKernel};
use crate::kernels::linear::{padded_rows, LinearKernel, XRows};
use crate::kernels::matmul::{matmul_cpu, Epilogue, Layout};
use crate::kernels::relu_backward::{relu_backward_cpu, ReluBackwardKernel};
use crate::rng::Rng;

/// What the head reads from the encoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HeadInput {
    /// The pair as one sequence; its pooler output (what `BertForSequenceClassification` uses).
    Pooler,
    /// The pair as one sequence; its [CLS] hidden state.
    Cls,
    /// The pair as one sequence; the mean of its token states.
    Mean,
    /// Each sentence alone, mean-pooled to u and v; then [u, v, |u−v|, u·v].
    #[serde(rename = "pair")]
    PairFeatures,
}

impl HeadInput {
    pub const ALL: [HeadInput; 4] = [HeadInput::Pooler, HeadInput::Cls, HeadInput::Mean, HeadInput::PairFeatures];

    pub fn name(self) -> &'static str {
        match self {
            HeadInput::Pooler => "pooler",
            HeadInput::Cls => "cls",
            HeadInput::Mean => "mean",
            HeadInput::PairFeatures => "pair",
        }
    }

    /// Encoder rows a pair takes: each sentence alone for pair features, else the pair as one.
    pub fn rows_per_pair(self) -> usize {
        if self == HeadInput::PairFeatures {
            2
        } else {
            1
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|h| h.name() == s)
    }

    /// Feature width for an encoder of width `hidden`.
    pub fn width(self, hidden: usize) -> usize {
        if self == HeadInput::PairFeatures {
            4 * hidden
        } else {
            hidden
        }
    }
}

/// The head's shape: `hidden == 0` is a Linear (`classifier.*`, as
/// `BertForSequenceClassification`); otherwise Linear → ReLU → Linear.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HeadSpec {
    pub input: HeadInput,
    pub in_dim: usize,
    pub hidden: usize,
    pub classes: usize,
}

/// The most parameters a head may have (256 MB of f32): more is a typo, and
/// would abort on the allocation instead of saying so.
pub const MAX_HEAD_PARAMS: usize = 1 << 26;

impl HeadSpec {
    /// The Linears as (name, out, in): one for a Linear head, two for the MLP.
    fn shapes(&self) -> Vec<(&'static str, usize, usize)> {
        if self.hidden == 0 {
            vec![("classifier", self.classes, self.in_dim)]
        } else {
            vec![("head.dense", self.hidden, self.in_dim), ("head.out", self.classes, self.hidden)]
        }
    }

    pub fn param_count(&self) -> usize {
        self.shapes().iter().map(|(_, o, i)| o.saturating_mul(*i).saturating_add(*o)).fold(0, usize::saturating_add)
    }

    /// Refuses heads without inputs or classes, and heads too large to allocate.
    pub fn check_size(&self) -> Result<()> {
        if self.in_dim == 0 || self.classes == 0 {
            return Err(Error::Input(format!("a head needs inputs and classes: {} inputs, {} classes", self.in_dim, self.classes)));
        }
        let n = self.param_count();
        if n > MAX_HEAD_PARAMS {
            return Err(Error::Input(format!(
                "a head with {n} parameters ({:.1} GB) is too large: at most {MAX_HEAD_PARAMS} (use a smaller MLP width)",
                n as f64 * 4.0 / 1e9
            )));
        }
        Ok(())
    }

    /// Weights N(0, 0.02) from `seed` (transformers' initializer_range), biases 0.
    pub fn init(&self, seed: u64) -> HeadParams {
        let mut rng = Rng::new(seed);
        let layers = self
            .shapes()
            .into_iter()
            .map(|(name, out, inp)| LinearParams { name, out, inp, weight: rng.normal(out * inp, 0.02), bias: vec![0.0; out] })
            .collect();
        HeadParams { layers }
    }
}

/// One Linear of the head: `weight` `[out, inp]`, `bias` `[out]`.
#[derive(Debug, Clone, PartialEq)]
pub struct LinearParams {
    /// transformers' module name: `classifier`, `head.dense`, `head.out`.
    pub name: &'static str,
    pub out: usize,
    pub inp: usize,
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
}

/// The head's Linears in order (a ReLU between two). The same shape holds
/// gradients and AdamW's moments.
#[derive(Debug, Clone, PartialEq)]
pub struct HeadParams {
    pub layers: Vec<LinearParams>,
}

/// One tensor of a head, as files name it.
pub struct NamedTensor<'a> {
    pub name: String,
    pub shape: Vec<usize>,
    pub data: &'a [f32],
}

impl HeadParams {
    pub fn zeros_like(&self) -> HeadParams {
        let layers =
            self.layers.iter().map(|l| LinearParams { weight: vec![0.0; l.weight.len()], bias: vec![0.0; l.out], ..l.clone() }).collect();
        HeadParams { layers }
    }

    /// `{name}.weight` and `{name}.bias` of every Linear.
    pub fn tensors(&self) -> Vec<NamedTensor<'_>> {
        self.layers
            .iter()
            .flat_map(|l| {
                [
                    NamedTensor { name: format!("{}.weight", l.name), shape: vec![l.out, l.inp], data: &l.weight },
                    NamedTensor { name: format!("{}.bias", l.name), shape: vec![l.out], data: &l.bias },
                ]
            })
            .collect()
    }

    /// The same shapes, with values looked up by tensor name.
    pub fn with_values(&self, mut get: impl FnMut(&str, &[usize]) -> Result<Vec<f32>>) -> Result<HeadParams> {
        let mut layers = Vec::with_capacity(self.layers.len());
        for l in &self.layers {
            let weight = get(&format!("{}.weight", l.name), &[l.out, l.inp])?;
            let bias = get(&format!("{}.bias", l.name), &[l.out])?;
            layers.push(LinearParams { weight, bias, ..l.clone() });
        }
        Ok(HeadParams { layers })
    }

    pub fn is_finite(&self) -> bool {
        self.layers.iter().all(|l| l.weight.iter().chain(&l.bias).all(|v| v.is_finite()))
    }
}

/// AdamW on every tensor: weight decay on weights, none on biases (as the Trainer does).
fn adamw_head(opt: &AdamW, t: u32, p: &mut HeadParams, g: &HeadParams, m: &mut HeadParams, v: &mut HeadParams) {
    let no_decay = AdamW { weight_decay: 0.0, ..*opt };
    for (((p, g), m), v) in p.layers.iter_mut().zip(&g.layers).zip(&mut m.layers).zip(&mut v.layers) {
        adamw_cpu(opt, t, &mut p.weight, &g.weight, &mut m.weight, &mut v.weight);
        adamw_cpu(&no_decay, t, &mut p.bias, &g.bias, &mut m.bias, &mut v.bias);
    }
}

/// The CPU reference of a training step and of prediction.
pub struct CpuHead {
    pub spec: HeadSpec,
    pub params: HeadParams,
    m: HeadParams,
    v: HeadParams,
}

impl CpuHead {
    pub fn new(spec: HeadSpec, params: HeadParams) -> Self {
        let zeros = params.zeros_like();
        CpuHead { spec, params, m: zeros.clone(), v: zeros }
    }

    /// Logits `[rows, classes]`, and each Linear's input (the last one's is what backward needs).
    fn forward(&self, x: &[f32], rows: usize) -> (Vec<f32>, Vec<Vec<f32>>) {
        let mut inputs = vec![x.to_vec()];
        let last = self.params.layers.len() - 1;
        for (i, l) in self.params.layers.iter().enumerate() {
            let act = if i < last { Epilogue::Relu } else { Epilogue::None };
            let y = matmul_cpu(&inputs[i], Layout::rows(l.inp), &l.weight, Layout::rows(l.inp), Some(&l.bias), (rows, l.out, l.inp), act);
            inputs.push(y);
        }
        let logits = inputs.pop().unwrap_or_default();
        (logits, inputs)
    }

    /// Class probabilities `[rows, classes]`.
    pub fn predict(&self, x: &[f32], rows: usize) -> Vec<f32> {
        softmax_rows(&self.forward(x, rows).0, self.spec.classes)
    }

    /// The batch's mean cross-entropy and its gradients.
    pub fn gradients(&self, x: &[f32], labels: &[u32]) -> (f32, HeadParams) {
        let rows = labels.len();
        let (logits, inputs) = self.forward(x, rows);
        let (loss, mut dy) = cross_entropy_cpu(&logits, labels, self.spec.classes, 1.0 / rows as f32);
        let ones = vec![1.0f32; rows];
        let mut grads = self.params.zeros_like();
        for (i, l) in self.params.layers.iter().enumerate().rev() {
            // dW = dYᵀ·X, db = 1ᵀ·dY, dX = dY·W (then through the ReLU that made X)
            let g = &mut grads.layers[i];
            g.weight = matmul_cpu(
                &dy,
                Layout::transposed(l.out),
                &inputs[i],
                Layout::transposed(l.inp),
                None,
                (l.out, l.inp, rows),
                Epilogue::None,
            );
            g.bias = matmul_cpu(&ones, Layout::rows(rows), &dy, Layout::transposed(l.out), None, (1, l.out, rows), Epilogue::None);
            if i > 0 {
                let mut dx =
                    matmul_cpu(&dy, Layout::rows(l.out), &l.weight, Layout::transposed(l.inp), None, (rows, l.inp, l.out), Epilogue::None);
                relu_backward_cpu(&inputs[i], &mut dx);
                dy = dx;
            }
        }
        (loss.iter().sum::<f32>() / rows as f32, grads)
    }

    /// One AdamW step `t` (from 1) on a batch; returns the batch's mean loss.
    pub fn step(&mut self, x: &[f32], labels: &[u32], opt: &AdamW, t: u32) -> f32 {
        let (loss, grads) = self.gradients(x, labels);
        adamw_head(opt, t, &mut self.params, &grads, &mut self.m, &mut self.v);
        loss
    }

    /// AdamW's first and second moments.
    pub fn moments(&self) -> (&HeadParams, &HeadParams) {
        (&self.m, &self.v)
    }

    pub fn set_state(&mut self, params: HeadParams, m: HeadParams, v: HeadParams) {
        self.params = params;
        self.m = m;
        self.v = v;
    }
}

pub fn softmax_rows(logits: &[f32], classes: usize) -> Vec<f32> {
    logits
        .chunks(classes)
        .flat_map(|z| {
            let max = z.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let e: Vec<f32> = z.iter().map(|v| (v - max).exp()).collect();
            let sum: f32 = e.iter().sum();
            e.into_iter().map(move |v| v / sum)
        })
        .collect()
}

/// One Linear's buffers on the GPU: parameters, gradients, moments.
struct GpuLinear {
    out: usize,
    inp: usize,
    w: wgpu::Buffer,
    b: wgpu::Buffer,
    gw: wgpu::Buffer,
    gb: wgpu::Buffer,
    mw: wgpu::Buffer,
    mb: wgpu::Buffer,
    vw: wgpu::Buffer,
    vb: wgpu::Buffer,
}

/// A step's buffers and recorded dispatches for one batch size: built once,
/// replayed every step (only the batch, the labels and AdamW's step change).
struct StepPlan {
    x: wgpu::Buffer,
    labels: wgpu::Buffer,
    loss: wgpu::Buffer,
    dispatches: Vec<Dispatch>,
    /// The AdamW dispatches' positions in `dispatches`, with their tensor
    /// length and whether weight decay applies.
    adamw: Vec<(usize, usize, bool)>,
}

/// A prediction's buffers for one batch size.
struct PredictPlan {
    x: wgpu::Buffer,
    logits: wgpu::Buffer,
    dispatches: Vec<Dispatch>,
}

/// The same step on the GPU: parameters, gradients and moments live in GPU
/// buffers; a step uploads the batch, replays forward, loss, backward and
/// AdamW in one submission, and reads back only the losses.
pub struct GpuHead {
    pub spec: HeadSpec,
    ctx: GpuContext,
    linear: LinearKernel,
    cross_entropy: CrossEntropyKernel,
    relu_backward: ReluBackwardKernel,
    adamw: AdamWKernel,
    names: Vec<&'static str>,
    layers: Vec<GpuLinear>,
    steps: HashMap<usize, StepPlan>,
    predictions: HashMap<usize, PredictPlan>,
}

/// Batch sizes whose plans stay cached (a run uses two: full and last batch).
const MAX_PLANS: usize = 4;

impl GpuHead {
    pub fn new(ctx: GpuContext, spec: HeadSpec, params: &HeadParams) -> Self {
        let layers = params
            .layers
            .iter()
            .map(|l| {
                let zeros = |n: usize| ctx.storage_f32("moment", &vec![0.0; n]);
                GpuLinear {
                    out: l.out,
                    inp: l.inp,
                    w: ctx.storage_f32(l.name, &l.weight),
                    b: ctx.storage_f32(l.name, &l.bias),
                    gw: ctx.scratch("grad", l.weight.len()),
                    gb: ctx.scratch("grad", l.out),
                    mw: zeros(l.weight.len()),
                    mb: zeros(l.out),
                    vw: zeros(l.weight.len()),
                    vb: zeros(l.out),
                }
            })
            .collect();
        GpuHead {
            spec,
            linear: LinearKernel::new(&ctx),
            cross_entropy: CrossEntropyKernel::new(&ctx),
            relu_backward: ReluBackwardKernel::new(&ctx),
            adamw: AdamWKernel::new(&ctx),
            names: params.layers.iter().map(|l| l.name).collect(),
            layers,
            steps: HashMap::new(),
            predictions: HashMap::new(),
            ctx,
        }
    }

    pub fn context(&self) -> &GpuContext {
        &self.ctx
    }

    /// Forward dispatches for `rows` rows of `x` (allocated to [`padded_rows`]):
    /// the logits, and each Linear's input buffer.
    fn forward(&self, x: &wgpu::Buffer, rows: usize, d: &mut Vec<Dispatch>) -> (wgpu::Buffer, Vec<wgpu::Buffer>) {
        let ctx = &self.ctx;
        let padded = padded_rows(rows);
        let mut inputs = vec![x.clone()];
        let last = self.layers.len() - 1;
        for (i, l) in self.layers.iter().enumerate() {
            let act = if i < last { Epilogue::Relu } else { Epilogue::None };
            let y = ctx.scratch("activations", padded * l.out);
            d.push(self.linear.bind(ctx, (&inputs[i], XRows::Dense { held: padded }), &l.w, &l.b, &y, (rows, l.out, l.inp), act));
            inputs.push(y);
        }
        let logits = inputs.pop().unwrap_or_else(|| x.clone());
        (logits, inputs)
    }

    fn step_plan(&self, rows: usize) -> StepPlan {
        let ctx = &self.ctx;
        let classes = self.spec.classes;
        let x = ctx.scratch("x", padded_rows(rows) * self.spec.in_dim);
        let labels = ctx.scratch("labels", rows);
        let ones = ctx.storage_f32("ones", &vec![1.0; rows]);
        let mut d = Vec::new();
        let (logits, inputs) = self.forward(&x, rows, &mut d);
        let loss = ctx.scratch("loss", rows);
        let mut dy = ctx.scratch("dlogits", rows * classes);
        d.push(self.cross_entropy.bind(ctx, &logits, &labels, &loss, &dy, rows, classes, 1.0 / rows as f32));
        for (i, l) in self.layers.iter().enumerate().rev() {
            // dW = dYᵀ·X, db = 1ᵀ·dY, dX = dY·W (then through the ReLU that made X)
            let (dyt, xt) = ((&dy, Layout::transposed(l.out)), (&inputs[i], Layout::transposed(l.inp)));
            d.push(self.linear.generic().bind(ctx, dyt, xt, None, &l.gw, (l.out, l.inp, rows), Epilogue::None));
            d.push(self.linear.generic().bind(ctx, (&ones, Layout::rows(rows)), dyt, None, &l.gb, (1, l.out, rows), Epilogue::None));
            if i > 0 {
                let dx = ctx.scratch("dx", rows * l.inp);
                let wt = (&l.w, Layout::transposed(l.inp));
                d.push(self.linear.generic().bind(ctx, (&dy, Layout::rows(l.out)), wt, None, &dx, (rows, l.inp, l.out), Epilogue::None));
                d.push(self.relu_backward.bind(ctx, &inputs[i], &dx, rows * l.inp));
                dy = dx;
            }
        }
        let mut adamw = Vec::new();
        let placeholder = AdamW::new(0.0, 0.0);
        for l in &self.layers {
            for (g, p, m, v, len, decay) in [(&l.gw, &l.w, &l.mw, &l.vw, l.out * l.inp, true), (&l.gb, &l.b, &l.mb, &l.vb, l.out, false)] {
                adamw.push((d.len(), len, decay));
                d.push(self.adamw.bind(ctx, &placeholder, 1, g, p, m, v, len));
            }
        }
        StepPlan { x, labels, loss, dispatches: d, adamw }
    }

    fn predict_plan(&self, rows: usize) -> PredictPlan {
        let x = self.ctx.scratch("x", padded_rows(rows) * self.spec.in_dim);
        let mut dispatches = Vec::new();
        let (logits, _) = self.forward(&x, rows, &mut dispatches);
        PredictPlan { x, logits, dispatches }
    }

    pub async fn predict(&mut self, x: &[f32], rows: usize) -> Result<Vec<f32>> {
        if !self.predictions.contains_key(&rows) {
            if self.predictions.len() >= MAX_PLANS {
                self.predictions.clear();
            }
            let plan = self.predict_plan(rows);
            self.predictions.insert(rows, plan);
        }
        let plan = &self.predictions[&rows];
        self.ctx.queue.write_buffer(&plan.x, 0, bytemuck::cast_slice(x));
        let out = self.ctx.run(&plan.dispatches, &[(&plan.logits, rows * self.spec.classes)]).await?;
        Ok(softmax_rows(&out[0], self.spec.classes))
    }

    /// One AdamW step `t` on a batch; returns the batch's mean loss.
    pub async fn step(&mut self, x: &[f32], labels: &[u32], opt: &AdamW, t: u32) -> Result<f32> {
        let rows = labels.len();
        if !self.steps.contains_key(&rows) {
            if self.steps.len() >= MAX_PLANS {
                self.steps.clear();
            }
            let plan = self.step_plan(rows);
            self.steps.insert(rows, plan);
        }
        let plan = &self.steps[&rows];
        let q = &self.ctx.queue;
        q.write_buffer(&plan.x, 0, bytemuck::cast_slice(x));
        q.write_buffer(&plan.labels, 0, bytemuck::cast_slice(labels));
        for &(at, len, decay) in &plan.adamw {
            let o = AdamW { weight_decay: if decay { opt.weight_decay } else { 0.0 }, ..*opt };
            self.adamw.update(&self.ctx, &plan.dispatches[at], &o, t, len);
        }
        let out = self.ctx.run(&plan.dispatches, &[(&plan.loss, rows)]).await?;
        Ok(out[0].iter().sum::<f32>() / rows as f32)
    }

    /// Reads the parameters and AdamW's moments back.
    pub async fn state(&self) -> Result<(HeadParams, HeadParams, HeadParams)> {
        let mut outs: Vec<(&wgpu::Buffer, usize)> = Vec::new();
        for l in &self.layers {
            for (w, b) in [(&l.w, &l.b), (&l.mw, &l.mb), (&l.vw, &l.vb)] {
                outs.push((w, l.out * l.inp));
                outs.push((b, l.out));
            }
        }
        let mut all = self.ctx.run(&[], &outs).await?.into_iter();
        let (mut p, mut m, mut v) = (Vec::new(), Vec::new(), Vec::new());
        for (l, &name) in self.layers.iter().zip(&self.names) {
            for dst in [&mut p, &mut m, &mut v] {
                let (weight, bias) = (all.next().unwrap_or_default(), all.next().unwrap_or_default());
                dst.push(LinearParams { name, out: l.out, inp: l.inp, weight, bias });
            }
        }
        Ok((HeadParams { layers: p }, HeadParams { layers: m }, HeadParams { layers: v }))
    }

    /// Writes parameters and moments (restoring a good head, resuming a checkpoint).
    pub fn set_state(&self, params: &HeadParams, m: &HeadParams, v: &HeadParams) {
        let q = &self.ctx.queue;
        for (i, l) in self.layers.iter().enumerate() {
            for (src, (w, b)) in [(params, (&l.w, &l.b)), (m, (&l.mw, &l.mb)), (v, (&l.vw, &l.vb))] {
                q.write_buffer(w, 0, bytemuck::cast_slice(&src.layers[i].weight));
                q.write_buffer(b, 0, bytemuck::cast_slice(&src.layers[i].bias));
            }
        }
    }
}

/// Checks a non-finite loss: training must stop and keep the last good head.
pub fn check_loss(loss: f32, step: u32) -> Result<f32> {
    if loss.is_finite() {
        Ok(loss)
    } else {
        Err(Error::Input(format!(
            "the loss became {loss} at step {step}: the learning rate is too high; training stopped and the last good head was kept"
        )))
    }
}
