//! A training run over extracted features, advanced one step at a time, with
//! checkpoints that resume it exactly.

use crate::error::{Error, Result};
use crate::finetune::head_io::TrainedHead;
use crate::finetune::progress::{epoch_order, Progress};
use crate::finetune::{evaluate, learning_rate_at, Metrics, TrainConfig};
use crate::gpu::GpuContext;
use crate::head::{check_loss, CpuHead, GpuHead, HeadParams, HeadSpec};
use crate::kernels::adamw::AdamW;
use crate::model::ModelIdentity;
use crate::tensor_file::{TensorReader, TensorWriter};

/// What a run is: its id, the model it reads, its settings and its head.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RunSetup {
    /// Ties a run's checkpoint to its saved features (and to nothing else).
    pub run_id: String,
    pub model: ModelIdentity,
    pub config: TrainConfig,
    pub spec: HeadSpec,
}

/// Where the head trains.
pub enum HeadBackend {
    Cpu(CpuHead),
    Gpu(Box<GpuHead>),
}

impl HeadBackend {
    /// On `gpu` (the encoder's device) when given, else on the CPU.
    pub fn new(spec: HeadSpec, params: HeadParams, gpu: Option<GpuContext>) -> Self {
        match gpu {
            Some(ctx) => HeadBackend::Gpu(Box::new(GpuHead::new(ctx, spec, &params))),
            None => HeadBackend::Cpu(CpuHead::new(spec, params)),
        }
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

    pub async fn predict(&mut self, x: &[f32], rows: usize) -> Result<Vec<f32>> {
        match self {
            HeadBackend::Cpu(c) => Ok(c.predict(x, rows)),
            HeadBackend::Gpu(g) => g.predict(x, rows).await,
        }
    }

    /// Parameters and AdamW's moments.
    pub async fn state(&self) -> Result<(HeadParams, HeadParams, HeadParams)> {
        match self {
            HeadBackend::Cpu(c) => {
                let (m, v) = c.moments();
                Ok((c.params.clone(), m.clone(), v.clone()))
            }
            HeadBackend::Gpu(g) => g.state().await,
        }
    }

    fn restore(&mut self, params: HeadParams, m: HeadParams, v: HeadParams) {
        match self {
            HeadBackend::Cpu(c) => c.set_state(params, m, v),
            HeadBackend::Gpu(g) => g.set_state(&params, &m, &v),
        }
    }
}

/// Class probabilities for `[n, dim]` features, `batch` rows at a time.
pub async fn predict_batched(backend: &mut HeadBackend, x: &[f32], dim: usize, batch: usize) -> Result<Vec<f32>> {
    let mut probs = Vec::new();
    for chunk in x.chunks(batch.max(1) * dim.max(1)) {
        probs.extend(backend.predict(chunk, chunk.len() / dim.max(1)).await?);
    }
    Ok(probs)
}

/// What one call of [`Training::advance`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Step { step: u32, loss: f32, learning_rate: f32 },
    Epoch { epoch: usize, train_loss: f64, metrics: Metrics },
    Done,
}

/// Features and class ids of one split: `x` is `[labels.len(), width]`.
pub struct Split {
    pub x: Vec<f32>,
    pub labels: Vec<u32>,
}

impl Split {
    fn check(&self, what: &str, width: usize, classes: usize) -> Result<()> {
        if self.labels.is_empty() {
            return Err(Error::Input(format!("the {what} split has no pairs")));
        }
        if self.x.len() != self.labels.len() * width {
            return Err(Error::Input(format!(
                "the {what} features are {} values for {} pairs; the head reads {width} per pair",
                self.x.len(),
                self.labels.len()
            )));
        }
        if let Some(i) = self.labels.iter().position(|&y| y as usize >= classes) {
            return Err(Error::Input(format!("{what} example {} has label {}; the head has {classes} classes", i + 1, self.labels[i])));
        }
        Ok(())
    }
}

/// A training run over extracted features, advanced one step at a time.
pub struct Training {
    pub setup: RunSetup,
    pub backend: HeadBackend,
    train: Split,
    eval: Split,
    pub progress: Progress,
    order: Vec<usize>,
    /// The head at the last epoch end (or the start): kept when training fails.
    last_good: HeadParams,
}

/// The training state a checkpoint's metadata holds, beside its tensors.
#[derive(serde::Serialize, serde::Deserialize)]
struct State {
    setup: RunSetup,
    #[serde(flatten)]
    progress: Progress,
}

const STATE_KEY: &str = "bertlab_training";

impl Training {
    pub fn new(setup: RunSetup, backend: HeadBackend, initial: HeadParams, train: Split, eval: Split) -> Result<Self> {
        setup.config.validate()?;
        setup.spec.check_size()?;
        train.check("training", setup.spec.in_dim, setup.spec.classes)?;
        eval.check("validation", setup.spec.in_dim, setup.spec.classes)?;
        let mut t = Training { setup, backend, train, eval, progress: Progress::default(), order: Vec::new(), last_good: initial };
        t.order = epoch_order(t.config().seed, 0, t.train.labels.len());
        Ok(t)
    }

    pub fn config(&self) -> &TrainConfig {
        &self.setup.config
    }

    pub fn steps_per_epoch(&self) -> usize {
        self.train.labels.len().div_ceil(self.config().pairs_per_step())
    }

    pub fn total_steps(&self) -> usize {
        self.config().total_steps(self.train.labels.len())
    }

    pub fn done(&self) -> bool {
        self.progress.epoch >= self.config().num_train_epochs
    }

    /// One training step, or the evaluation at an epoch's end.
    pub async fn advance(&mut self) -> Result<Event> {
        if self.done() {
            return Ok(Event::Done);
        }
        let c = &self.setup.config;
        // a head's step fits in memory whole: accumulating its batches is the same math
        let Some(idx) = self.progress.next_batch(&self.order, c.pairs_per_step()) else {
            return self.end_epoch().await;
        };
        let f = self.setup.spec.in_dim;
        let step = self.progress.step;
        let x: Vec<f32> = idx.iter().flat_map(|&i| self.train.x[i * f..(i + 1) * f].iter().copied()).collect();
        let y: Vec<u32> = idx.iter().map(|&i| self.train.labels[i]).collect();
        let lr = learning_rate_at(step as usize, self.total_steps(), c.warmup_steps, c.learning_rate);
        let opt = AdamW::new(lr, c.weight_decay);
        let taken = idx.len();
        let result = self.backend.step(&x, &y, &opt, step + 1).await.and_then(|l| check_loss(l, step + 1));
        let loss = match result {
            Ok(l) => l,
            Err(e) => return Err(self.fail(e)),
        };
        self.progress.record_step(taken, loss);
        Ok(Event::Step { step: step + 1, loss, learning_rate: lr })
    }

    /// Ends the run on `e`, back on the last good head, so what is exported
    /// or resumed is sane.
    fn fail(&mut self, e: Error) -> Error {
        let zeros = self.last_good.zeros_like();
        self.backend.restore(self.last_good.clone(), zeros.clone(), zeros);
        self.progress.epoch = self.config().num_train_epochs;
        e
    }

    async fn end_epoch(&mut self) -> Result<Event> {
        let metrics = match self.evaluate().await {
            Ok(m) => m,
            Err(e) => return Err(self.fail(e)),
        };
        let head = self.backend.state().await?.0;
        if !head.is_finite() {
            return Err(self.fail(Error::Input(format!(
                "the head's weights became non-finite in epoch {}: the learning rate is too high; training stopped and the last good head was kept",
                self.progress.epoch + 1
            ))));
        }
        let train_loss = self.progress.end_epoch(metrics.clone());
        self.order = epoch_order(self.config().seed, self.progress.epoch, self.train.labels.len());
        self.last_good = head;
        Ok(Event::Epoch { epoch: self.progress.epoch, train_loss, metrics })
    }

    /// Metrics on the validation features.
    pub async fn evaluate(&mut self) -> Result<Metrics> {
        let (dim, batch) = (self.setup.spec.in_dim, self.setup.config.per_device_eval_batch_size);
        let probs = predict_batched(&mut self.backend, &self.eval.x, dim, batch).await?;
        evaluate(&probs, &self.eval.labels, self.setup.spec.classes)
    }

    /// The head as it is now, with the model it reads.
    pub async fn head(&self) -> Result<TrainedHead> {
        let params = self.backend.state().await?.0;
        Ok(TrainedHead { spec: self.setup.spec, params, model: Some(self.setup.model.clone()) })
    }

    /// Everything needed to continue later: parameters, AdamW's moments, the
    /// last good head, and the run's setup and position (in the metadata).
    pub async fn checkpoint(&self) -> Result<Vec<u8>> {
        let (params, m, v) = self.backend.state().await?;
        let mut w = TensorWriter::new();
        for (prefix, p) in [("param", &params), ("adam_m", &m), ("adam_v", &v), ("good", &self.last_good)] {
            for t in p.tensors() {
                w.tensor(format!("{prefix}.{}", t.name), &t.shape, t.data);
            }
        }
        let state = State { setup: self.setup.clone(), progress: self.progress.clone() };
        w.meta(STATE_KEY, serde_json::to_string(&state).map_err(|e| Error::File(e.to_string()))?);
        w.to_bytes()
    }

    /// The setup and step a checkpoint holds, without restoring it.
    pub fn peek(bytes: &[u8]) -> Result<(RunSetup, u32)> {
        let state: State = TensorReader::parse(bytes, "checkpoint")?.json(STATE_KEY)?;
        Ok((state.setup, state.progress.step))
    }

    /// Continues a run from [`Training::checkpoint`] bytes on the same
    /// features; the head trains on `gpu` when given.
    pub async fn resume(bytes: &[u8], gpu: Option<GpuContext>, train: Split, eval: Split) -> Result<Self> {
        let r = TensorReader::parse(bytes, "checkpoint")?;
        let state: State = r.json(STATE_KEY)?;
        // the saved settings before anything is sized by them
        state.setup.config.validate()?;
        state.setup.spec.check_size()?;
        let shapes = state.setup.spec.init(0);
        let read = |prefix: &str| shapes.with_values(|name, shape| r.f32(&format!("{prefix}.{name}"), shape));
        let (params, m, v, good) = (read("param")?, read("adam_m")?, read("adam_v")?, read("good")?);
        let mut backend = HeadBackend::new(state.setup.spec, params.clone(), gpu);
        backend.restore(params, m, v);
        let mut t = Training::new(state.setup, backend, good, train, eval)?;
        if state.progress.position > t.train.labels.len() || state.progress.epoch > t.config().num_train_epochs {
            return Err(r.error("its position is past the end of its data"));
        }
        t.progress = state.progress;
        t.order = epoch_order(t.config().seed, t.progress.epoch, t.train.labels.len());
        Ok(t)
    }
}
