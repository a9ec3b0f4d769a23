//! Fine-tuning a head on frozen BERT features, reported like transformers'
//! Trainer: loss per step; loss, accuracy and F1 on validation each epoch.
//!
//! Features are extracted once (the encoder is frozen), then training runs
//! step by step so a caller can pause, resume, checkpoint or stop between steps.

use std::collections::HashMap;

use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::glue::Example;
use crate::gpu::GpuContext;
use crate::head::{check_loss, CpuHead, GpuHead, HeadInput, HeadSpec, Param};
use crate::kernels::adamw::AdamW;
use crate::outputs::Pooling;
use crate::tokenize::Input;
use crate::weights::Rng;

/// The Trainer's hyper-parameters, with its names and defaults.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TrainConfig {
    pub learning_rate: f32,
    pub per_device_train_batch_size: usize,
    pub per_device_eval_batch_size: usize,
    pub num_train_epochs: usize,
    pub weight_decay: f32,
    pub warmup_steps: usize,
    pub max_seq_length: usize,
    pub seed: u64,
    pub head_input: HeadInput,
    /// 0: a Linear head; otherwise the MLP's hidden width.
    pub mlp_hidden: usize,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            learning_rate: 2e-5,
            per_device_train_batch_size: 16,
            per_device_eval_batch_size: 64,
            num_train_epochs: 3,
            weight_decay: 0.01,
            warmup_steps: 0,
            max_seq_length: 128,
            seed: 42,
            head_input: HeadInput::Pooler,
            mlp_hidden: 0,
        }
    }
}

/// transformers' linear schedule with warmup: the learning rate for the
/// update after `step` updates (0-based) out of `total`.
pub fn learning_rate_at(step: usize, total: usize, warmup: usize, base: f32) -> f32 {
    if step < warmup {
        base * step as f32 / warmup.max(1) as f32
    } else {
        base * ((total - step.min(total)) as f32 / (total - warmup).max(1) as f32).max(0.0)
    }
}

/// Validation results; `confusion[true label][predicted]`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Metrics {
    pub loss: f64,
    pub accuracy: f64,
    /// F1 of the positive class (label 1, "paraphrase").
    pub f1: f64,
    pub confusion: [[usize; 2]; 2],
}

/// Metrics of class probabilities `[n, 2]` against labels.
pub fn evaluate(probs: &[f32], labels: &[u8]) -> Metrics {
    let mut confusion = [[0usize; 2]; 2];
    let mut loss = 0.0f64;
    for (i, &y) in labels.iter().enumerate() {
        let p = &probs[i * 2..i * 2 + 2];
        let pred = usize::from(p[1] > p[0]);
        confusion[y as usize][pred] += 1;
        loss -= (p[y as usize].max(1e-12) as f64).ln();
    }
    let tp = confusion[1][1] as f64;
    let (fp, fn_) = (confusion[0][1] as f64, confusion[1][0] as f64);
    let f1 = if tp == 0.0 { 0.0 } else { 2.0 * tp / (2.0 * tp + fp + fn_) };
    let n = labels.len().max(1) as f64;
    Metrics { loss: loss / n, accuracy: (confusion[0][0] + confusion[1][1]) as f64 / n, f1, confusion }
}

/// Encoder features for pairs: `[n, width]`. Pairs are run in batches sorted
/// by length (less padding); `progress(done, total)` after each batch.
pub async fn extract_features(
    engine: &mut Engine,
    examples: &[Example],
    input: HeadInput,
    max_seq_length: usize,
    batch_size: usize,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Vec<f32>> {
    let h = engine.config.hidden_size;
    let width = input.width(h);
    engine.set_max_length(max_seq_length)?;
    // one row per encoder input: the pair, or each sentence alone
    let rows: Vec<Input> = if input == HeadInput::PairFeatures {
        examples.iter().flat_map(|e| [Input::Single(e.sentence1.clone()), Input::Single(e.sentence2.clone())]).collect()
    } else {
        examples.iter().map(|e| Input::Pair(e.sentence1.clone(), e.sentence2.clone())).collect()
    };
    let mut order: Vec<usize> = (0..rows.len()).collect();
    let len = |i: &Input| match i {
        Input::Single(a) => a.len(),
        Input::Pair(a, b) => a.len() + b.len(),
    };
    order.sort_by_key(|&i| len(&rows[i]));
    let pooling = match input {
        HeadInput::Pooler => Pooling::Pooler,
        HeadInput::Cls => Pooling::Cls,
        HeadInput::Mean | HeadInput::PairFeatures => Pooling::Mean,
    };
    let mut vectors = vec![Vec::new(); rows.len()];
    for chunk in order.chunks(batch_size.max(1)) {
        let batch_inputs: Vec<Input> = chunk.iter().map(|&i| rows[i].clone()).collect();
        let (batch, out) = engine.embed(&batch_inputs, false).await?;
        for (b, &i) in chunk.iter().enumerate() {
            vectors[i] = out
                .sentence_embedding(b, &batch.attention_mask, pooling, false)
                .ok_or_else(|| Error::Weights("this checkpoint has no pooler weights: choose another head input".into()))?;
        }
        progress(chunk.len(), rows.len());
    }
    engine.set_max_length(usize::MAX)?;
    let mut features = Vec::with_capacity(examples.len() * width);
    if input == HeadInput::PairFeatures {
        for pair in vectors.chunks(2) {
            let (u, v) = (&pair[0], &pair[1]);
            features.extend_from_slice(u);
            features.extend_from_slice(v);
            features.extend(u.iter().zip(v).map(|(a, b)| (a - b).abs()));
            features.extend(u.iter().zip(v).map(|(a, b)| a * b));
        }
    } else {
        vectors.into_iter().for_each(|v| features.extend(v));
    }
    Ok(features)
}

/// Where the head trains.
pub enum HeadBackend {
    Cpu(CpuHead),
    Gpu(Box<GpuHead>),
}

impl HeadBackend {
    pub async fn new_gpu(spec: HeadSpec, params: &[Param]) -> Result<Self> {
        Ok(HeadBackend::Gpu(Box::new(GpuHead::new(GpuContext::new().await?, spec, params))))
    }

    pub fn describe(&self) -> String {
        match self {
            HeadBackend::Cpu(_) => "CPU".into(),
            HeadBackend::Gpu(g) => format!("GPU: {}", g.context().describe()),
        }
    }

    async fn step(&mut self, x: &[f32], y: &[u32], opt: &AdamW, t: u32) -> Result<f32> {
        match self {
            HeadBackend::Cpu(c) => Ok(c.step(x, y, opt, t)),
            HeadBackend::Gpu(g) => g.step(x, y, opt, t).await,
        }
    }

    pub async fn predict(&self, x: &[f32], rows: usize) -> Result<Vec<f32>> {
        match self {
            HeadBackend::Cpu(c) => Ok(c.predict(x, rows)),
            HeadBackend::Gpu(g) => g.predict(x, rows).await,
        }
    }

    /// Parameters and AdamW moments.
    pub async fn state(&self) -> Result<(Vec<Param>, Vec<Vec<f32>>, Vec<Vec<f32>>)> {
        match self {
            HeadBackend::Cpu(c) => {
                let (m, v) = c.moments();
                Ok((c.params.clone(), m.to_vec(), v.to_vec()))
            }
            HeadBackend::Gpu(g) => g.state().await,
        }
    }

    /// The same backend kind with new parameters and moments.
    fn restore(&mut self, params: Vec<Param>, m: Vec<Vec<f32>>, v: Vec<Vec<f32>>) {
        match self {
            HeadBackend::Cpu(c) => {
                c.params = params;
                c.set_moments(m, v);
            }
            HeadBackend::Gpu(g) => g.set_state(&params, &m, &v),
        }
    }
}

/// What one call of [`Training::advance`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Step { step: u32, loss: f32, learning_rate: f32 },
    Epoch { epoch: usize, train_loss: f64, metrics: Metrics },
    Done,
}

/// A training run over extracted features, advanced one step at a time.
pub struct Training {
    pub config: TrainConfig,
    pub spec: HeadSpec,
    pub backend: HeadBackend,
    train_x: Vec<f32>,
    train_y: Vec<u32>,
    eval_x: Vec<f32>,
    eval_y: Vec<u8>,
    /// Updates done so far.
    pub step: u32,
    pub epoch: usize,
    position: usize,
    order: Vec<usize>,
    epoch_losses: Vec<f32>,
    pub losses: Vec<f32>,
    pub metrics: Vec<Metrics>,
    /// The head at the last epoch end (or the start): kept when training fails.
    last_good: Vec<Param>,
}

impl Training {
    pub fn total_steps(&self) -> usize {
        self.steps_per_epoch() * self.config.num_train_epochs
    }

    pub fn steps_per_epoch(&self) -> usize {
        self.train_y.len().div_ceil(self.config.per_device_train_batch_size)
    }

    #[allow(clippy::too_many_arguments)]
    pub fn new(
        config: TrainConfig,
        spec: HeadSpec,
        backend: HeadBackend,
        initial: Vec<Param>,
        train: (Vec<f32>, Vec<u8>),
        eval: (Vec<f32>, Vec<u8>),
    ) -> Result<Self> {
        if !(config.learning_rate.is_finite() && config.learning_rate > 0.0) {
            return Err(Error::Input(format!("learning rate {} must be a positive number", config.learning_rate)));
        }
        if config.per_device_train_batch_size == 0 || config.per_device_eval_batch_size == 0 || config.num_train_epochs == 0 {
            return Err(Error::Input("batch sizes and epochs must be at least 1".into()));
        }
        let mut t = Training {
            order: Vec::new(),
            spec,
            backend,
            train_y: train.1.iter().map(|&y| y as u32).collect(),
            train_x: train.0,
            eval_x: eval.0,
            eval_y: eval.1,
            step: 0,
            epoch: 0,
            position: 0,
            epoch_losses: Vec::new(),
            losses: Vec::new(),
            metrics: Vec::new(),
            last_good: initial,
            config,
        };
        t.order = t.epoch_order(0);
        Ok(t)
    }

    /// The shuffled order of epoch `e`: a fixed function of the seed.
    fn epoch_order(&self, e: usize) -> Vec<usize> {
        Rng::new(self.config.seed.wrapping_add(1_000_003 * (e as u64 + 1))).permutation(self.train_y.len())
    }

    pub fn done(&self) -> bool {
        self.epoch >= self.config.num_train_epochs
    }

    /// One training step, or the evaluation at an epoch's end.
    pub async fn advance(&mut self) -> Result<Event> {
        if self.done() {
            return Ok(Event::Done);
        }
        if self.position >= self.order.len() {
            return self.end_epoch().await;
        }
        let f = self.spec.in_dim;
        let bs = self.config.per_device_train_batch_size;
        let idx = &self.order[self.position..(self.position + bs).min(self.order.len())];
        let x: Vec<f32> = idx.iter().flat_map(|&i| self.train_x[i * f..(i + 1) * f].iter().copied()).collect();
        let y: Vec<u32> = idx.iter().map(|&i| self.train_y[i]).collect();
        let lr = learning_rate_at(self.step as usize, self.total_steps(), self.config.warmup_steps, self.config.learning_rate);
        let opt = AdamW::new(lr, self.config.weight_decay);
        let result = self.backend.step(&x, &y, &opt, self.step + 1).await.and_then(|l| check_loss(l, self.step + 1));
        let loss = match result {
            Ok(l) => l,
            Err(e) => {
                // back to the last good head, so what is exported or resumed is sane
                let zeros: Vec<Vec<f32>> = self.last_good.iter().map(|p| vec![0.0; p.data.len()]).collect();
                self.backend.restore(self.last_good.clone(), zeros.clone(), zeros);
                self.epoch = self.config.num_train_epochs;
                return Err(e);
            }
        };
        self.position += idx.len();
        self.step += 1;
        self.losses.push(loss);
        self.epoch_losses.push(loss);
        Ok(Event::Step { step: self.step, loss, learning_rate: lr })
    }

    async fn end_epoch(&mut self) -> Result<Event> {
        let metrics = self.evaluate().await?;
        let train_loss = self.epoch_losses.iter().map(|&l| l as f64).sum::<f64>() / self.epoch_losses.len().max(1) as f64;
        self.metrics.push(metrics.clone());
        self.epoch += 1;
        self.position = 0;
        self.epoch_losses.clear();
        self.order = self.epoch_order(self.epoch);
        self.last_good = self.backend.state().await?.0;
        Ok(Event::Epoch { epoch: self.epoch, train_loss, metrics })
    }

    /// Metrics on the validation features.
    pub async fn evaluate(&self) -> Result<Metrics> {
        let probs = predict_batched(&self.backend, &self.eval_x, self.spec.in_dim, self.config.per_device_eval_batch_size).await?;
        Ok(evaluate(&probs, &self.eval_y))
    }

    pub async fn head(&self) -> Result<Vec<Param>> {
        Ok(self.backend.state().await?.0)
    }

    /// Everything needed to continue later: parameters, AdamW moments, the
    /// last good head and the position in the run (safetensors, state in its metadata).
    pub async fn checkpoint(&self) -> Result<Vec<u8>> {
        let (params, m, v) = self.backend.state().await?;
        let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
        let bytes = |d: &[f32]| d.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
        for (i, p) in params.iter().enumerate() {
            tensors.push((format!("param.{}", p.name), p.shape.clone(), bytes(&p.data)));
            tensors.push((format!("adam_m.{}", p.name), p.shape.clone(), bytes(&m[i])));
            tensors.push((format!("adam_v.{}", p.name), p.shape.clone(), bytes(&v[i])));
            tensors.push((format!("good.{}", p.name), p.shape.clone(), bytes(&self.last_good[i].data)));
        }
        let state = serde_json::json!({
            "config": self.config, "spec": self.spec, "step": self.step, "epoch": self.epoch,
            "position": self.position, "epoch_losses": self.epoch_losses, "losses": self.losses, "metrics": self.metrics,
        });
        let meta: HashMap<String, String> = [("bertlab_training".to_string(), state.to_string())].into_iter().collect();
        let views: Vec<(String, TensorView)> =
            tensors.iter().map(|(n, s, b)| (n.clone(), TensorView::new(Dtype::F32, s.clone(), b).unwrap())).collect();
        Ok(safetensors::serialize(views, Some(meta)).unwrap())
    }

    /// Continues a run from [`Training::checkpoint`] bytes on the same features.
    /// `gpu` picks the backend the head trains on.
    pub async fn resume(bytes: &[u8], gpu: bool, train: (Vec<f32>, Vec<u8>), eval: (Vec<f32>, Vec<u8>)) -> Result<Self> {
        let bad = |m: String| Error::Input(format!("checkpoint: {m}"));
        let (_, meta) = SafeTensors::read_metadata(bytes).map_err(|e| bad(format!("corrupt or truncated ({e})")))?;
        let st = SafeTensors::deserialize(bytes).map_err(|e| bad(format!("corrupt or truncated ({e})")))?;
        let state: serde_json::Value = meta
            .metadata()
            .as_ref()
            .and_then(|m| m.get("bertlab_training"))
            .and_then(|s| serde_json::from_str(s).ok())
            .ok_or_else(|| bad("no training state in it".into()))?;
        let config: TrainConfig = state_field(&state, "config")?;
        let spec: HeadSpec = state_field(&state, "spec")?;
        if train.0.len() != train.1.len() * spec.in_dim {
            return Err(bad(format!("it was made for {}-wide features", spec.in_dim)));
        }
        let tensor = |n: &str| -> Result<Vec<f32>> {
            let t = st.tensor(n).map_err(|_| bad(format!("missing {n}")))?;
            Ok(t.data().chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect())
        };
        let mut params = spec.init(0);
        let (mut m, mut v, mut good) = (Vec::new(), Vec::new(), params.clone());
        for (i, p) in params.iter_mut().enumerate() {
            p.data = tensor(&format!("param.{}", p.name))?;
            m.push(tensor(&format!("adam_m.{}", p.name))?);
            v.push(tensor(&format!("adam_v.{}", p.name))?);
            good[i].data = tensor(&format!("good.{}", p.name))?;
        }
        let mut backend = if gpu { HeadBackend::new_gpu(spec, &params).await? } else { HeadBackend::Cpu(CpuHead::new(spec, params.clone())) };
        backend.restore(params, m, v);
        let mut t = Training::new(config, spec, backend, good, train, eval)?;
        t.step = state_field(&state, "step")?;
        t.epoch = state_field(&state, "epoch")?;
        t.position = state_field(&state, "position")?;
        t.epoch_losses = state_field(&state, "epoch_losses")?;
        t.losses = state_field(&state, "losses")?;
        t.metrics = state_field(&state, "metrics")?;
        t.order = t.epoch_order(t.epoch);
        Ok(t)
    }
}

/// One field of a checkpoint's training state.
fn state_field<T: serde::de::DeserializeOwned>(state: &serde_json::Value, key: &str) -> Result<T> {
    let value = state.get(key).cloned().ok_or_else(|| Error::Input(format!("checkpoint: no {key}")))?;
    serde_json::from_value(value).map_err(|e| Error::Input(format!("checkpoint: {key}: {e}")))
}

/// Class probabilities for `[n, dim]` features, `batch` rows at a time.
pub async fn predict_batched(backend: &HeadBackend, x: &[f32], dim: usize, batch: usize) -> Result<Vec<f32>> {
    let mut probs = Vec::new();
    for chunk in x.chunks(batch * dim) {
        probs.extend(backend.predict(chunk, chunk.len() / dim).await?);
    }
    Ok(probs)
}

/// MRPC's labels, as transformers' config spells them.
pub const ID2LABEL: [&str; 2] = ["not_equivalent", "equivalent"];

/// The head as safetensors. A Linear head keeps `BertForSequenceClassification`'s
/// names (`classifier.weight`, `classifier.bias`); its config fields
/// (`num_labels`, `id2label`, `label2id`) and ours (`head_input`, `mlp_hidden`)
/// are in the metadata. `config_json` is the part of config.json to merge
/// into the encoder's for `from_pretrained`.
pub fn export_head(spec: &HeadSpec, params: &[Param]) -> (Vec<u8>, String) {
    let id2label: HashMap<String, &str> = ID2LABEL.iter().enumerate().map(|(i, l)| (i.to_string(), *l)).collect();
    let label2id: HashMap<&str, usize> = ID2LABEL.iter().enumerate().map(|(i, l)| (*l, i)).collect();
    let config = serde_json::json!({
        "architectures": ["BertForSequenceClassification"],
        "num_labels": spec.classes,
        "id2label": id2label,
        "label2id": label2id,
        "problem_type": "single_label_classification",
    });
    let meta: HashMap<String, String> = [
        ("format".to_string(), "pt".to_string()),
        ("num_labels".to_string(), spec.classes.to_string()),
        ("id2label".to_string(), serde_json::to_string(&config["id2label"]).unwrap()),
        ("head_input".to_string(), spec.input.name().to_string()),
        ("mlp_hidden".to_string(), spec.hidden.to_string()),
        ("in_dim".to_string(), spec.in_dim.to_string()),
    ]
    .into_iter()
    .collect();
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> =
        params.iter().map(|p| (p.name.clone(), p.shape.clone(), p.data.iter().flat_map(|v| v.to_le_bytes()).collect())).collect();
    let views: Vec<(String, TensorView)> =
        bytes.iter().map(|(n, s, b)| (n.clone(), TensorView::new(Dtype::F32, s.clone(), b).unwrap())).collect();
    (safetensors::serialize(views, Some(meta)).unwrap(), serde_json::to_string_pretty(&config).unwrap())
}

/// Reads a head written by [`export_head`] (or a `classifier.*` pair from a
/// `BertForSequenceClassification` checkpoint, taken as a pooler head).
pub fn import_head(bytes: &[u8]) -> Result<(HeadSpec, Vec<Param>)> {
    let bad = |m: String| Error::Weights(format!("head file: {m}"));
    let (_, meta) = SafeTensors::read_metadata(bytes).map_err(|e| bad(format!("corrupt or truncated ({e})")))?;
    let st = SafeTensors::deserialize(bytes).map_err(|e| bad(format!("corrupt or truncated ({e})")))?;
    let info = meta.metadata().clone().unwrap_or_default();
    let get = |n: &str| -> Result<(Vec<usize>, Vec<f32>)> {
        let t = st.tensor(n).map_err(|_| bad(format!("missing tensor `{n}`")))?;
        if t.dtype() != Dtype::F32 {
            return Err(bad(format!("`{n}` is {:?}, expected F32", t.dtype())));
        }
        Ok((t.shape().to_vec(), t.data().chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect()))
    };
    let input = info.get("head_input").map_or(Some(HeadInput::Pooler), |s| HeadInput::parse(s)).ok_or_else(|| bad("unknown head_input".into()))?;
    let hidden: usize = info.get("mlp_hidden").and_then(|s| s.parse().ok()).unwrap_or(0);
    let names: Vec<&str> = if hidden == 0 { vec!["classifier"] } else { vec!["head.dense", "head.out"] };
    let mut params = Vec::new();
    for n in names {
        let (ws, w) = get(&format!("{n}.weight"))?;
        let (bs, b) = get(&format!("{n}.bias"))?;
        if ws.len() != 2 || bs != [ws[0]] {
            return Err(bad(format!("`{n}` has shapes {ws:?} and {bs:?}")));
        }
        params.push(Param { name: format!("{n}.weight"), shape: ws, data: w, decay: true });
        params.push(Param { name: format!("{n}.bias"), shape: bs, data: b, decay: false });
    }
    let in_dim = params[0].shape[1];
    let classes = params[params.len() - 2].shape[0];
    if classes != 2 {
        return Err(bad(format!("{classes} labels; MRPC has 2")));
    }
    Ok((HeadSpec { input, in_dim, hidden, classes }, params))
}

/// A logistic regression on the same features, for comparison: scikit-learn's
/// `LogisticRegression(C=c)` objective (mean cross-entropy + ½·||W||²/(c·n),
/// intercept not penalised) on the raw features, minimised full-batch with
/// Adam (400 steps).
pub fn logistic_regression_baseline(train: (&[f32], &[u8]), eval: (&[f32], &[u8]), dim: usize, c: f32) -> Metrics {
    let n = train.1.len();
    let spec = HeadSpec { input: HeadInput::Pooler, in_dim: dim, hidden: 0, classes: 2 };
    let mut head = CpuHead::new(spec, spec.init(0));
    let y: Vec<u32> = train.1.iter().map(|&v| v as u32).collect();
    let lambda = 1.0 / (c * n as f32);
    let opt = AdamW::new(1e-2, 0.0);
    let (mut m, mut v): (Vec<Vec<f32>>, Vec<Vec<f32>>) = head.params.iter().map(|p| (vec![0.0; p.data.len()], vec![0.0; p.data.len()])).unzip();
    for t in 1..=400 {
        let (_, mut grads) = head.gradients(train.0, &y);
        grads[0].iter_mut().zip(&head.params[0].data).for_each(|(g, w)| *g += lambda * w);
        for (i, g) in grads.iter().enumerate() {
            crate::kernels::adamw::adamw_cpu(&opt, t, &mut head.params[i].data, g, &mut m[i], &mut v[i]);
        }
    }
    evaluate(&head.predict(eval.0, eval.1.len()), eval.1)
}
