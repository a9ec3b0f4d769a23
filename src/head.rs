//! A classification head on frozen BERT features, and its training step:
//! forward, softmax cross-entropy, backward and AdamW, on the CPU (the
//! reference, written out step by step) or on the GPU (the same steps as
//! WGSL kernels, one submission per step).

use crate::error::{Error, Result};
use crate::gpu::{Dispatch, GpuContext};
use crate::kernels::adamw::{adamw_cpu, AdamW, AdamWKernel};
use crate::kernels::cross_entropy::{cross_entropy_cpu, CrossEntropyKernel};
use crate::kernels::matmul::{matmul_cpu, Epilogue, Layout, MatmulKernel};
use crate::kernels::relu_backward::{relu_backward_cpu, ReluBackwardKernel};

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
    pub fn name(self) -> &'static str {
        match self {
            HeadInput::Pooler => "pooler",
            HeadInput::Cls => "cls",
            HeadInput::Mean => "mean",
            HeadInput::PairFeatures => "pair",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [HeadInput::Pooler, HeadInput::Cls, HeadInput::Mean, HeadInput::PairFeatures].into_iter().find(|h| h.name() == s)
    }

    /// Feature width for an encoder of width `hidden`.
    pub fn width(self, hidden: usize) -> usize {
        if self == HeadInput::PairFeatures { 4 * hidden } else { hidden }
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

/// One trainable tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct Param {
    pub name: String,
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
    /// Weight decay applies (not to biases, as in transformers' Trainer).
    pub decay: bool,
}

impl HeadSpec {
    /// The layers as (weight name, out, in): one for a Linear, two for the MLP.
    fn layers(&self) -> Vec<(&'static str, usize, usize)> {
        if self.hidden == 0 {
            vec![("classifier", self.classes, self.in_dim)]
        } else {
            vec![("head.dense", self.hidden, self.in_dim), ("head.out", self.classes, self.hidden)]
        }
    }

    /// Weights N(0, 0.02) from `seed` (transformers' initializer_range), biases 0.
    pub fn init(&self, seed: u64) -> Vec<Param> {
        let mut rng = crate::weights::Rng::new(seed);
        self.layers()
            .into_iter()
            .flat_map(|(name, out, inp)| {
                [
                    Param { name: format!("{name}.weight"), shape: vec![out, inp], data: rng.normal(out * inp, 0.02), decay: true },
                    Param { name: format!("{name}.bias"), shape: vec![out], data: vec![0.0; out], decay: false },
                ]
            })
            .collect()
    }
}

/// The CPU reference of a training step and of prediction.
pub struct CpuHead {
    pub spec: HeadSpec,
    pub params: Vec<Param>,
    m: Vec<Vec<f32>>,
    v: Vec<Vec<f32>>,
}

impl CpuHead {
    pub fn new(spec: HeadSpec, params: Vec<Param>) -> Self {
        let zeros: Vec<Vec<f32>> = params.iter().map(|p| vec![0.0; p.data.len()]).collect();
        CpuHead { spec, params, m: zeros.clone(), v: zeros }
    }

    /// Logits `[rows, classes]` and, for the MLP, the hidden activations.
    fn forward(&self, x: &[f32], rows: usize) -> (Vec<f32>, Option<Vec<f32>>) {
        let s = &self.spec;
        let p = &self.params;
        if s.hidden == 0 {
            let logits = matmul_cpu(x, Layout::rows(s.in_dim), &p[0].data, Layout::rows(s.in_dim), Some(&p[1].data), (rows, s.classes, s.in_dim), Epilogue::None);
            return (logits, None);
        }
        let h = matmul_cpu(x, Layout::rows(s.in_dim), &p[0].data, Layout::rows(s.in_dim), Some(&p[1].data), (rows, s.hidden, s.in_dim), Epilogue::Relu);
        let logits = matmul_cpu(&h, Layout::rows(s.hidden), &p[2].data, Layout::rows(s.hidden), Some(&p[3].data), (rows, s.classes, s.hidden), Epilogue::None);
        (logits, Some(h))
    }

    /// Class probabilities `[rows, classes]`.
    pub fn predict(&self, x: &[f32], rows: usize) -> Vec<f32> {
        let (logits, _) = self.forward(x, rows);
        softmax_rows(&logits, self.spec.classes)
    }

    /// Gradients of the mean cross-entropy of a batch, in `params` order, and the loss.
    pub fn gradients(&self, x: &[f32], labels: &[u32]) -> (f32, Vec<Vec<f32>>) {
        let s = &self.spec;
        let rows = labels.len();
        let (logits, hidden) = self.forward(x, rows);
        let (loss, dlogits) = cross_entropy_cpu(&logits, labels, s.classes, 1.0 / rows as f32);
        let ones = vec![1.0f32; rows];
        // dW = dYᵀ·X, db = 1ᵀ·dY, dX = dY·W
        let dw = |dy: &[f32], n: usize, inp: &[f32], k: usize| {
            matmul_cpu(dy, Layout::transposed(n), inp, Layout::transposed(k), None, (n, k, rows), Epilogue::None)
        };
        let db = |dy: &[f32], n: usize| matmul_cpu(&ones, Layout::rows(rows), dy, Layout::transposed(n), None, (1, n, rows), Epilogue::None);
        let grads = match hidden {
            None => vec![dw(&dlogits, s.classes, x, s.in_dim), db(&dlogits, s.classes)],
            Some(h) => {
                let mut dh = matmul_cpu(&dlogits, Layout::rows(s.classes), &self.params[2].data, Layout::transposed(s.hidden), None, (rows, s.hidden, s.classes), Epilogue::None);
                relu_backward_cpu(&h, &mut dh);
                vec![dw(&dh, s.hidden, x, s.in_dim), db(&dh, s.hidden), dw(&dlogits, s.classes, &h, s.hidden), db(&dlogits, s.classes)]
            }
        };
        (loss.iter().sum::<f32>() / rows as f32, grads)
    }

    /// One AdamW step `t` (from 1) on a batch; returns the batch's mean loss.
    pub fn step(&mut self, x: &[f32], labels: &[u32], opt: &AdamW, t: u32) -> f32 {
        let (loss, grads) = self.gradients(x, labels);
        for (i, g) in grads.iter().enumerate() {
            let o = AdamW { weight_decay: if self.params[i].decay { opt.weight_decay } else { 0.0 }, ..*opt };
            adamw_cpu(&o, t, &mut self.params[i].data, g, &mut self.m[i], &mut self.v[i]);
        }
        loss
    }

    pub fn moments(&self) -> (&[Vec<f32>], &[Vec<f32>]) {
        (&self.m, &self.v)
    }

    pub fn set_moments(&mut self, m: Vec<Vec<f32>>, v: Vec<Vec<f32>>) {
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

/// The same step on the GPU: parameters, gradients and moments live in GPU
/// buffers; a step uploads the batch, records forward, loss, backward and
/// AdamW into one submission, and reads back only the losses.
pub struct GpuHead {
    pub spec: HeadSpec,
    ctx: GpuContext,
    matmul: MatmulKernel,
    cross_entropy: CrossEntropyKernel,
    relu_backward: ReluBackwardKernel,
    adamw: AdamWKernel,
    meta: Vec<(String, Vec<usize>, bool)>,
    params: Vec<wgpu::Buffer>,
    grads: Vec<wgpu::Buffer>,
    m: Vec<wgpu::Buffer>,
    v: Vec<wgpu::Buffer>,
}

impl GpuHead {
    pub fn new(ctx: GpuContext, spec: HeadSpec, params: &[Param]) -> Self {
        let buf = |label: &str, d: &[f32]| ctx.storage_f32(label, d);
        GpuHead {
            spec,
            matmul: MatmulKernel::new(&ctx),
            cross_entropy: CrossEntropyKernel::new(&ctx),
            relu_backward: ReluBackwardKernel::new(&ctx),
            adamw: AdamWKernel::new(&ctx),
            meta: params.iter().map(|p| (p.name.clone(), p.shape.clone(), p.decay)).collect(),
            params: params.iter().map(|p| buf(&p.name, &p.data)).collect(),
            grads: params.iter().map(|p| ctx.scratch("grad", p.data.len())).collect(),
            m: params.iter().map(|p| buf("m", &vec![0.0; p.data.len()])).collect(),
            v: params.iter().map(|p| buf("v", &vec![0.0; p.data.len()])).collect(),
            ctx,
        }
    }

    pub fn context(&self) -> &GpuContext {
        &self.ctx
    }

    /// Forward dispatches for `rows` rows of `x`: logits, and the MLP's hidden activations.
    fn forward(&self, x: &wgpu::Buffer, rows: usize, d: &mut Vec<Dispatch>) -> (wgpu::Buffer, Option<wgpu::Buffer>) {
        let s = &self.spec;
        let ctx = &self.ctx;
        let p = &self.params;
        let logits = ctx.scratch("logits", rows * s.classes);
        if s.hidden == 0 {
            d.push(self.matmul.linear(ctx, x, rows, &p[0], &p[1], &logits, (s.classes, s.in_dim), Epilogue::None));
            return (logits, None);
        }
        let h = ctx.scratch("hidden", rows * s.hidden);
        d.push(self.matmul.linear(ctx, x, rows, &p[0], &p[1], &h, (s.hidden, s.in_dim), Epilogue::Relu));
        d.push(self.matmul.linear(ctx, &h, rows, &p[2], &p[3], &logits, (s.classes, s.hidden), Epilogue::None));
        (logits, Some(h))
    }

    pub async fn predict(&self, x: &[f32], rows: usize) -> Result<Vec<f32>> {
        let xb = self.ctx.storage_f32("x", x);
        let mut d = Vec::new();
        let (logits, _) = self.forward(&xb, rows, &mut d);
        let out = self.ctx.run(&d, &[(&logits, rows * self.spec.classes)]).await?;
        Ok(softmax_rows(&out[0], self.spec.classes))
    }

    /// One AdamW step `t` on a batch; returns the batch's mean loss.
    pub async fn step(&mut self, x: &[f32], labels: &[u32], opt: &AdamW, t: u32) -> Result<f32> {
        let s = self.spec;
        let ctx = &self.ctx;
        let rows = labels.len();
        let xb = ctx.storage_f32("x", x);
        let yb = ctx.storage_u32("labels", labels);
        let ones = ctx.storage_f32("ones", &vec![1.0; rows]);
        let mut d = Vec::new();
        let (logits, hidden) = self.forward(&xb, rows, &mut d);
        let loss = ctx.scratch("loss", rows);
        let dlogits = ctx.scratch("dlogits", rows * s.classes);
        d.push(self.cross_entropy.bind(ctx, &logits, &yb, &loss, &dlogits, rows, s.classes, 1.0 / rows as f32));
        let g = &self.grads;
        // dW = dYᵀ·X, db = 1ᵀ·dY, dX = dY·W
        let backward = |dy: &wgpu::Buffer, n: usize, inp: &wgpu::Buffer, k: usize, gw: &wgpu::Buffer, gb: &wgpu::Buffer| {
            [
                self.matmul.bind(ctx, (dy, Layout::transposed(n)), (inp, Layout::transposed(k)), None, gw, (n, k, rows), Epilogue::None),
                self.matmul.bind(ctx, (&ones, Layout::rows(rows)), (dy, Layout::transposed(n)), None, gb, (1, n, rows), Epilogue::None),
            ]
        };
        match &hidden {
            None => d.extend(backward(&dlogits, s.classes, &xb, s.in_dim, &g[0], &g[1])),
            Some(h) => {
                d.extend(backward(&dlogits, s.classes, h, s.hidden, &g[2], &g[3]));
                let dh = ctx.scratch("dhidden", rows * s.hidden);
                let w2t = (&self.params[2], Layout::transposed(s.hidden));
                d.push(self.matmul.bind(ctx, (&dlogits, Layout::rows(s.classes)), w2t, None, &dh, (rows, s.hidden, s.classes), Epilogue::None));
                d.push(self.relu_backward.bind(ctx, h, &dh, rows * s.hidden));
                d.extend(backward(&dh, s.hidden, &xb, s.in_dim, &g[0], &g[1]));
            }
        }
        for (i, (_, shape, decay)) in self.meta.iter().enumerate() {
            let o = AdamW { weight_decay: if *decay { opt.weight_decay } else { 0.0 }, ..*opt };
            let len = shape.iter().product();
            d.push(self.adamw.bind(ctx, &o, t, &self.grads[i], &self.params[i], &self.m[i], &self.v[i], len));
        }
        let out = ctx.run(&d, &[(&loss, rows)]).await?;
        Ok(out[0].iter().sum::<f32>() / rows as f32)
    }

    /// Reads the parameters (and moments) back.
    pub async fn state(&self) -> Result<(Vec<Param>, Vec<Vec<f32>>, Vec<Vec<f32>>)> {
        let n = self.meta.len();
        let mut outs: Vec<(&wgpu::Buffer, usize)> = Vec::new();
        for bufs in [&self.params, &self.m, &self.v] {
            for (i, b) in bufs.iter().enumerate() {
                outs.push((b, self.meta[i].1.iter().product()));
            }
        }
        let mut all = self.ctx.run(&[], &outs).await?.into_iter();
        let params = self
            .meta
            .iter()
            .map(|(name, shape, decay)| Param { name: name.clone(), shape: shape.clone(), data: all.next().unwrap(), decay: *decay })
            .collect();
        let m = (0..n).map(|_| all.next().unwrap()).collect();
        let v = (0..n).map(|_| all.next().unwrap()).collect();
        Ok((params, m, v))
    }

    /// Writes parameters and moments (restoring a good head, resuming a checkpoint).
    pub fn set_state(&self, params: &[Param], m: &[Vec<f32>], v: &[Vec<f32>]) {
        let q = &self.ctx.queue;
        for i in 0..self.meta.len() {
            q.write_buffer(&self.params[i], 0, bytemuck::cast_slice(&params[i].data));
            q.write_buffer(&self.m[i], 0, bytemuck::cast_slice(&m[i]));
            q.write_buffer(&self.v[i], 0, bytemuck::cast_slice(&v[i]));
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
