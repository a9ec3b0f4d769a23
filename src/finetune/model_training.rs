//! A run that fine-tunes BERT itself (the whole model, or its top layers)
//! with its task head, as the Trainer does: shuffled batches of tokenized
//! examples padded per batch, dropout from config.json, gradients clipped to
//! norm 1, AdamW with the linear schedule, evaluation each epoch. It runs on
//! the CPU ([`CpuMath`]) or, after [`ModelTraining::on_gpu`], on the GPU
//! ([`GpuTraining`]: the model stays on the device, the host copy is brought
//! up to date at each epoch's end and for a checkpoint), and advances one
//! step per call, like the head's [`crate::finetune::training::Training`].
//!
//! Layers below the first trained one are frozen: their outputs for a pair
//! are computed once (evaluation mode, no dropout) and kept, so a top-k step
//! costs the top k layers only.

use crate::classifier::backprop::{forward, frozen_hidden, loss_and_gradients, Dropout};
use crate::classifier::gpu_backprop::GpuTraining;
use crate::classifier::math::CpuMath;
use crate::classifier::optimizer::{step, zero_trained, Moments, MAX_GRAD_NORM};
use crate::classifier::{ClassifierParams, HeadKind, Labels, TrainLayers};
use crate::error::{Error, Result};
use crate::finetune::encoded::{Encoded, RowTargets};
use crate::finetune::progress::{epoch_order, Progress};
use crate::finetune::training::Event;
use crate::finetune::{evaluate, evaluate_values, learning_rate_at, Metrics, Scores, TrainConfig};
use crate::gpu::GpuContext;
use crate::head::{check_loss, softmax_rows};
use crate::kernels::adamw::AdamW;
use crate::kernels::cross_entropy::IGNORE_INDEX;
use crate::model::ModelIdentity;
use crate::task::metrics::entity_scores;
use crate::tensor_file::{TensorReader, TensorWriter};
use crate::tokenize::Batch;
use crate::weights::BertWeights;

/// The run state a checkpoint's metadata holds, beside its tensors.
#[derive(serde::Serialize, serde::Deserialize)]
struct State {
    run_id: String,
    model: ModelIdentity,
    /// What the head's outputs mean (runs saved before tasks: MRPC's).
    #[serde(default = "Labels::mrpc")]
    labels: Labels,
    #[serde(default = "sequence_head")]
    head: HeadKind,
    config: TrainConfig,
    #[serde(flatten)]
    progress: Progress,
}

const STATE_KEY: &str = "bertlab_model_training";

fn sequence_head() -> HeadKind {
    HeadKind::Sequence
}

/// One split's examples and, for top-k runs, the frozen layers' output of each (`[len, hidden]`).
struct Split {
    data: Encoded,
    frozen: Vec<Option<Vec<f32>>>,
}

impl Split {
    fn new(data: Encoded) -> Self {
        Split { frozen: vec![None; data.len()], data }
    }
}

/// The padded batch of examples `idx` of `split`, and where it enters the
/// trained layers: their frozen states (computed now for the examples that
/// lack them), or `None` when the embeddings train.
async fn prepare_batch(
    p: &ClassifierParams,
    on: Evaluation<'_>,
    train: TrainLayers,
    split: &mut Split,
    idx: &[usize],
) -> Result<(Batch, Option<Vec<f32>>)> {
    let pad = p.bert.config.pad_token_id;
    let batch = Batch::from_rows(idx.iter().map(|&i| split.data.rows[i].clone()).collect(), pad)?;
    if train == TrainLayers::All {
        return Ok((batch, None));
    }
    let h = p.bert.config.hidden_size;
    let missing: Vec<usize> = idx.iter().copied().filter(|&i| split.frozen[i].is_none()).collect();
    if !missing.is_empty() {
        let m = Batch::from_rows(missing.iter().map(|&i| split.data.rows[i].clone()).collect(), pad)?;
        let first = train.first_trained_layer(p.bert.layers.len());
        let x = match on.gpu {
            Some(g) => g.frozen_hidden(&m, first).await?,
            None => frozen_hidden(on.math, p, &m, first),
        };
        for (r, &i) in missing.iter().enumerate() {
            split.frozen[i] = Some(x[r * m.seq_len * h..][..m.len_of(r) * h].to_vec());
        }
    }
    let mut entry = vec![0.0f32; batch.batch_size * batch.seq_len * h];
    for (r, &i) in idx.iter().enumerate() {
        let states = split.frozen[i].as_deref().unwrap_or_default();
        entry[r * batch.seq_len * h..][..states.len()].copy_from_slice(states);
    }
    Ok((batch, Some(entry)))
}

pub struct ModelTraining {
    /// Ties a run's checkpoint to its saved data (and to nothing else).
    pub run_id: String,
    /// The model it started from (frozen tensors are read from it on resume).
    pub model: ModelIdentity,
    pub config: TrainConfig,
    pub train_layers: TrainLayers,
    /// What the head's outputs mean.
    pub labels: Labels,
    math: CpuMath,
    params: ClassifierParams,
    moments: Moments,
    train: Split,
    eval: Split,
    pub progress: Progress,
    order: Vec<usize>,
    /// The model at the last epoch end (or the start): kept when training fails.
    last_good: ClassifierParams,
    /// Where steps run; on a GPU, `params` and `moments` hold the device's
    /// values as of the last [`ModelTraining::sync`].
    stepper: Stepper,
}

/// Where a run's steps run.
enum Stepper {
    /// With the gradients, kept between steps (zeroed, not reallocated: 4 bytes a weight).
    Cpu { grads: Box<ClassifierParams> },
    /// The model, its gradients and moments on the device (no host gradients).
    Gpu(Box<GpuTraining>),
}

impl Stepper {
    fn gpu(&self) -> Option<&GpuTraining> {
        match self {
            Stepper::Gpu(g) => Some(g),
            Stepper::Cpu { .. } => None,
        }
    }
}

impl ModelTraining {
    /// A run from `params` (the loaded model, `model`, with a new head whose outputs `labels` names).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        run_id: String,
        model: ModelIdentity,
        params: ClassifierParams,
        labels: Labels,
        config: TrainConfig,
        math: CpuMath,
        train: Encoded,
        eval: Encoded,
    ) -> Result<Self> {
        config.validate()?;
        let train_layers = config.train_layers;
        if !config.trains_layers() {
            return Err(Error::Input("a head alone trains on frozen features (finetune::training), not here".into()));
        }
        if labels.outputs() != params.outputs() {
            return Err(Error::Input(format!("{} labels for a head of {} outputs", labels.outputs(), params.outputs())));
        }
        train.check("training", &params.bert.config, params.outputs())?;
        eval.check("validation", &params.bert.config, params.outputs())?;
        let order = epoch_order(config.seed, 0, train.len());
        Ok(ModelTraining {
            run_id,
            model,
            moments: Moments::new(&params),
            stepper: Stepper::Cpu { grads: Box::new(params.zeros_like()) },
            last_good: params.clone(),
            params,
            config,
            train_layers,
            labels,
            math,
            train: Split::new(train),
            eval: Split::new(eval),
            progress: Progress::default(),
            order,
        })
    }

    /// Moves the run's steps (and evaluation) onto `ctx`'s device.
    pub fn on_gpu(mut self, ctx: GpuContext) -> Result<Self> {
        self.stepper = Stepper::Gpu(Box::new(GpuTraining::new(ctx, &self.params, &self.moments, self.train_layers)?));
        Ok(self)
    }

    pub fn on_device(&self) -> bool {
        self.stepper.gpu().is_some()
    }

    /// Brings the host's parameters and moments up to the device's.
    async fn sync(&mut self) -> Result<()> {
        if let Some(g) = self.stepper.gpu() {
            (self.params, self.moments) = g.download(&self.params).await?;
        }
        Ok(())
    }

    /// The model as it stands.
    pub async fn params(&mut self) -> Result<&ClassifierParams> {
        self.sync().await?;
        Ok(&self.params)
    }

    pub fn steps_per_epoch(&self) -> usize {
        self.train.data.len().div_ceil(self.config.pairs_per_step())
    }

    pub fn total_steps(&self) -> usize {
        self.config.total_steps(self.train.data.len())
    }

    pub fn done(&self) -> bool {
        self.progress.epoch >= self.config.num_train_epochs
    }

    /// One training step, or the evaluation at an epoch's end.
    pub async fn advance(&mut self) -> Result<Event> {
        if self.done() {
            return Ok(Event::Done);
        }
        let Some(idx) = self.progress.next_batch(&self.order, self.config.pairs_per_step()).map(<[usize]>::to_vec) else {
            return self.end_epoch().await;
        };
        let t = self.progress.step;
        // one batch in memory at a time; each adds its share of the step's mean loss and gradients
        match &mut self.stepper {
            Stepper::Gpu(g) => g.zero_gradients()?,
            Stepper::Cpu { grads } => zero_trained(grads, self.train_layers),
        }
        let mut loss = 0.0;
        for (part, chunk) in idx.chunks(self.config.per_device_train_batch_size.max(1)).enumerate() {
            let on = Evaluation { math: self.math, gpu: self.stepper.gpu() };
            let (batch, entry) = prepare_batch(&self.params, on, self.train_layers, &mut self.train, chunk).await?;
            let labels = self.train.data.batch_targets(chunk, batch.seq_len);
            let share = chunk.len() as f32 / idx.len() as f32;
            // dropout masks are drawn per batch of the run (the n-th batch, across steps)
            let nth = t as usize * self.config.gradient_accumulation_steps.max(1) + part;
            let dropout = Dropout::training(&self.params.bert.config, self.config.seed, nth as u32);
            let l = match &mut self.stepper {
                Stepper::Gpu(g) => g.loss_and_gradients(&batch, &labels, Some(&dropout), entry, share).await?,
                Stepper::Cpu { grads } => {
                    loss_and_gradients(self.math, &self.params, &batch, &labels, self.train_layers, Some(&dropout), entry, share, grads)
                }
            };
            loss += l * share;
        }
        let loss = match check_loss(loss, t + 1) {
            Ok(l) => l,
            Err(e) => return Err(self.fail(e)),
        };
        let lr = learning_rate_at(t as usize, self.total_steps(), self.config.warmup_steps, self.config.learning_rate);
        let opt = AdamW::new(lr, self.config.weight_decay);
        match &self.stepper {
            Stepper::Gpu(g) => {
                g.step(&opt, t + 1, MAX_GRAD_NORM).await?;
            }
            Stepper::Cpu { grads } => {
                step(&mut self.params, grads, &mut self.moments, self.train_layers, &opt, t + 1, MAX_GRAD_NORM);
            }
        }
        self.progress.record_step(idx.len(), loss);
        Ok(Event::Step { step: t + 1, loss, learning_rate: lr })
    }

    /// Ends the run on `e`, back on the last good model.
    fn fail(&mut self, e: Error) -> Error {
        self.params = self.last_good.clone();
        self.moments = Moments::new(&self.params);
        // the run is over; the device's copy is what failed
        if self.on_device() {
            self.stepper = Stepper::Cpu { grads: Box::new(self.params.zeros_like()) };
        }
        self.progress.epoch = self.config.num_train_epochs;
        e
    }

    async fn end_epoch(&mut self) -> Result<Event> {
        if let Err(e) = self.sync().await {
            return Err(self.fail(e));
        }
        let metrics = match self.evaluate().await {
            Ok(m) => m,
            Err(e) => return Err(self.fail(e)),
        };
        if !self.params.is_finite() {
            let epoch = self.progress.epoch + 1;
            return Err(self.fail(Error::Input(format!(
                "the weights became non-finite in epoch {epoch}: the learning rate is too high; training stopped and the last good model was kept"
            ))));
        }
        let train_loss = self.progress.end_epoch(metrics.clone());
        self.order = epoch_order(self.config.seed, self.progress.epoch, self.train.data.len());
        self.last_good = self.params.clone();
        Ok(Event::Epoch { epoch: self.progress.epoch, train_loss, metrics })
    }

    /// Everything needed to continue later: the trained tensors and their
    /// AdamW moments, and the run's setup and position (in the metadata).
    /// Frozen tensors are left out: they are the loaded model's.
    pub async fn checkpoint(&mut self) -> Result<Vec<u8>> {
        self.sync().await?;
        let layers = self.params.bert.layers.len();
        let mut w = TensorWriter::new();
        let layout = self.params.layout();
        let tensors = self.params.data().into_iter().zip(self.moments.m.data()).zip(self.moments.v.data());
        for (info, ((p, m), v)) in layout.iter().zip(tensors) {
            if self.train_layers.trains(info.part, layers) {
                for (prefix, t) in [("param", p), ("adam_m", m), ("adam_v", v)] {
                    w.tensor(format!("{prefix}.{}", info.name), &info.shape, t);
                }
            }
        }
        let state = State {
            run_id: self.run_id.clone(),
            model: self.model.clone(),
            labels: self.labels.clone(),
            head: self.params.kind,
            config: self.config.clone(),
            progress: self.progress.clone(),
        };
        w.meta(STATE_KEY, serde_json::to_string(&state).map_err(|e| Error::File(e.to_string()))?);
        w.to_bytes()
    }

    /// The run id and step a checkpoint holds, without restoring it.
    pub fn peek(bytes: &[u8]) -> Result<(String, u32)> {
        let state: State = TensorReader::parse(bytes, "checkpoint")?.json(STATE_KEY)?;
        Ok((state.run_id, state.progress.step))
    }

    /// Continues a run from [`ModelTraining::checkpoint`] bytes, on the model
    /// it started from (`base`, checked by fingerprint) and its own examples.
    pub fn resume(bytes: &[u8], name: &str, base: BertWeights, math: CpuMath, train: Encoded, eval: Encoded) -> Result<Self> {
        let r = TensorReader::parse(bytes, "checkpoint")?;
        let state: State = r.json(STATE_KEY)?;
        state.config.validate()?;
        state.model.check_loaded("this run", &ModelIdentity::of(name, &base))?;
        if !(1..=MAX_OUTPUTS).contains(&state.labels.outputs()) {
            return Err(r.error(format!("its head has {} outputs", state.labels.outputs())));
        }
        let params = ClassifierParams::new(base, state.head, state.labels.outputs(), state.config.seed);
        let layers = params.bert.layers.len();
        let train_layers = state.config.train_layers;
        let read = |prefix: &str, from: &ClassifierParams| {
            from.with_values(|info, current| {
                if train_layers.trains(info.part, layers) {
                    r.f32(&format!("{prefix}.{}", info.name), &info.shape)
                } else {
                    Ok(current.to_vec())
                }
            })
        };
        let zeros = params.zeros_like();
        let (params, m, v) = (read("param", &params)?, read("adam_m", &zeros)?, read("adam_v", &zeros)?);
        let mut t = ModelTraining::new(state.run_id, state.model, params, state.labels, state.config, math, train, eval)?;
        if state.progress.position > t.train.data.len() || state.progress.epoch > t.config.num_train_epochs {
            return Err(r.error("its position is past the end of its data"));
        }
        t.moments = Moments { m, v };
        t.progress = state.progress;
        t.order = epoch_order(t.config.seed, t.progress.epoch, t.train.data.len());
        Ok(t)
    }

    /// The model's outputs on the validation examples (evaluation mode).
    pub async fn predict_eval(&mut self) -> Result<Predictions> {
        let on = Evaluation { math: self.math, gpu: self.stepper.gpu() };
        predict(&self.params, on, self.train_layers, &mut self.eval, self.config.per_device_eval_batch_size).await
    }

    /// Metrics on the validation examples (evaluation mode).
    pub async fn evaluate(&mut self) -> Result<Metrics> {
        self.predict_eval().await?.score(&self.eval.data.targets, &self.labels)
    }
}

/// The most outputs a head may have (a saved run's, checked before anything is sized by it).
pub const MAX_OUTPUTS: usize = 1 << 16;

/// Where the frozen layers' outputs and evaluation's logits are computed: the GPU when the run is there.
#[derive(Clone, Copy)]
struct Evaluation<'a> {
    math: CpuMath,
    gpu: Option<&'a GpuTraining>,
}

/// What a model gives on a split in evaluation mode: each example's logits,
/// `outputs` a row (one row a sequence, or one a token of it).
#[derive(Debug, Clone, PartialEq)]
pub struct Predictions {
    pub logits: Vec<Vec<f32>>,
    pub outputs: usize,
}

impl Predictions {
    /// Each example's predicted class (or, for a token head, each token's), by argmax.
    pub fn classes(&self) -> Vec<Vec<u32>> {
        self.logits.iter().map(|l| self.classes_of(l)).collect()
    }

    /// One example's predicted class a row of its logits (the first of equal maxima, as argmax).
    pub fn classes_of(&self, logits: &[f32]) -> Vec<u32> {
        let argmax = |row: &[f32]| row.iter().enumerate().fold(0, |best, (c, &v)| if v > row[best] { c } else { best }) as u32;
        logits.chunks(self.outputs.max(1)).map(argmax).collect()
    }

    /// The task's metrics against `targets`; `labels` names the classes (entity types for tags).
    pub fn score(&self, targets: &RowTargets, labels: &Labels) -> Result<Metrics> {
        let classes = self.outputs;
        match targets {
            RowTargets::Classes(gold) => {
                let probs: Vec<f32> = self.logits.iter().flat_map(|l| softmax_rows(l, classes)).collect();
                evaluate(&probs, gold, classes)
            }
            RowTargets::Values(wanted) => evaluate_values(&self.logits.iter().map(|l| l[0]).collect::<Vec<_>>(), wanted),
            RowTargets::Tokens(gold) => {
                let names = match labels {
                    Labels::Classes(n) if n.len() == classes => n,
                    _ => return Err(Error::Input("a token head's labels are tag names, one an output".into())),
                };
                let predicted = self.classes();
                let (mut loss, mut counted) = (0.0f64, 0usize);
                let mut sentences = Vec::with_capacity(gold.len());
                for ((logits, labels), pred) in self.logits.iter().zip(gold).zip(&predicted) {
                    let probs = softmax_rows(logits, classes);
                    let (mut p, mut g) = (Vec::new(), Vec::new());
                    for (t, &y) in labels.iter().enumerate().filter(|(_, &y)| y != IGNORE_INDEX) {
                        let py = probs[t * classes + y as usize];
                        if !py.is_finite() {
                            return Err(Error::Input("the model gave a non-finite probability for a validation token".into()));
                        }
                        loss -= f64::from(py.max(1e-12)).ln();
                        counted += 1;
                        p.push(names[pred[t] as usize].as_str());
                        g.push(names[y as usize].as_str());
                    }
                    sentences.push((p, g));
                }
                let (all, accuracy, types) = entity_scores(&sentences);
                Ok(Metrics { loss: loss / counted.max(1) as f64, scores: Scores::Entities { all, accuracy, types } })
            }
        }
    }
}

/// A split's logits in evaluation mode, in batches of `batch` sorted by
/// length (less padding); a token head's rows cut to each example's tokens.
async fn predict(p: &ClassifierParams, on: Evaluation<'_>, train: TrainLayers, split: &mut Split, batch: usize) -> Result<Predictions> {
    let n = split.data.len();
    let outputs = p.outputs();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by_key(|&i| split.data.rows[i].0.len());
    let mut logits = vec![Vec::new(); n];
    for chunk in order.chunks(batch.max(1)) {
        let (b, entry) = prepare_batch(p, on, train, split, chunk).await?;
        let l = match on.gpu {
            Some(g) => g.logits(&b, entry).await?,
            None => forward(on.math, p, &b, train, None, entry).logits,
        };
        for (r, &i) in chunk.iter().enumerate() {
            logits[i] = match p.kind {
                HeadKind::Sequence => l[r * outputs..][..outputs].to_vec(),
                HeadKind::Tokens => l[r * b.seq_len * outputs..][..split.data.rows[i].0.len() * outputs].to_vec(),
            };
        }
    }
    Ok(Predictions { logits, outputs })
}

/// A fine-tuned model's predictions on `data` (evaluation mode).
pub async fn predict_model(p: &ClassifierParams, math: CpuMath, data: Encoded, batch: usize) -> Result<Predictions> {
    data.check("evaluation", &p.bert.config, p.outputs())?;
    let mut split = Split::new(data);
    predict(p, Evaluation { math, gpu: None }, TrainLayers::All, &mut split, batch).await
}
