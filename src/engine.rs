//! The one API the CLI and the web page call: text in, tensors out, on the
//! GPU or the CPU. Async because the browser can only read GPU buffers
//! asynchronously; natively `pollster::block_on` drives it.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;

use web_time::Instant;

use crate::config::BertConfig;
use crate::error::{Error, Result};
use crate::fast_cpu::FastCpuEncoder;
use crate::gpu::GpuContext;
use crate::gpu_encoder::GpuEncoder;
use crate::mlm::MlmHead;
use crate::model::{Model, ModelIdentity};
use crate::outputs::{AttentionRequest, Keep, Outputs};
use crate::tokenize::{Batch, BertTokenizer, Input};
use crate::weights::BertWeights;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum BackendChoice {
    /// A hardware GPU when there is one; with only a software adapter, the
    /// faster of it and the CPU path, measured. The CPU path when the GPU
    /// path cannot start.
    Auto,
    Gpu,
    Cpu,
}

/// Which backend runs and why; `Display` words it for people.
#[derive(Debug, Clone, PartialEq)]
pub enum BackendInfo {
    Gpu { adapter: String, why: GpuReason },
    Cpu { why: CpuReason },
}

#[derive(Debug, Clone, PartialEq)]
pub enum GpuReason {
    Asked,
    Hardware,
    /// `auto` timed a probe batch on a software adapter and on the CPU path.
    FasterThanCpu {
        gpu_ms: f64,
        cpu_ms: f64,
    },
    /// Re-created after the device was lost.
    Recreated,
}

#[derive(Debug, Clone, PartialEq)]
pub enum CpuReason {
    Asked,
    /// No GPU to use (no WebGPU, no adapter): the message says which.
    NoGpu(String),
    /// `auto` found a GPU but could not run on it.
    GpuFailed(String),
    FasterThanSoftware {
        adapter: String,
        cpu_ms: f64,
        gpu_ms: f64,
    },
}

impl fmt::Display for BackendInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BackendInfo::Gpu { adapter, why } => match why {
                GpuReason::Asked | GpuReason::Hardware => write!(f, "GPU: {adapter}"),
                GpuReason::FasterThanCpu { gpu_ms, cpu_ms } => {
                    write!(f, "GPU: {adapter} (auto: {gpu_ms:.0} ms vs {cpu_ms:.0} ms on the CPU path for a 2×16 probe)")
                }
                GpuReason::Recreated => write!(f, "GPU: {adapter} (device re-created)"),
            },
            BackendInfo::Cpu { why } => match why {
                CpuReason::Asked => write!(f, "CPU (asked for)"),
                CpuReason::NoGpu(m) => write!(f, "CPU ({m})"),
                CpuReason::GpuFailed(m) => write!(f, "CPU (the GPU path could not start: {m})"),
                CpuReason::FasterThanSoftware { adapter, cpu_ms, gpu_ms } => {
                    write!(f, "CPU (auto: faster than the software adapter {adapter}, {cpu_ms:.0} ms vs {gpu_ms:.0} ms for a 2×16 probe)")
                }
            },
        }
    }
}

/// Per-call options of [`Engine::embed`].
#[derive(Debug, Clone, Copy, Default)]
pub struct EmbedOptions {
    /// Truncate each row to this many tokens (`None`: the model's positions).
    pub max_len: Option<usize>,
    pub attentions: AttentionRequest,
}

enum Backend {
    /// The weights stay on the host to upload again after a lost device.
    Gpu(Box<GpuEncoder>, Box<BertWeights>),
    Cpu(Box<FastCpuEncoder>),
}

/// A forward started elsewhere; it yields that part's outputs.
pub type PartForward = Pin<Box<dyn Future<Output = Result<Outputs>>>>;

/// Other threads that each hold a model on the CPU path (the tab's helper
/// workers; natively rayon spreads the work instead): a CPU forward splits
/// its rows between them and itself.
pub trait ForwardHelpers {
    /// How many helpers hold `model` now.
    fn ready(&self, model: &ModelIdentity) -> usize;
    /// Starts `batch` on helper `i` (of those [`ForwardHelpers::ready`]
    /// counts) before returning; a helper that fails or holds another model
    /// by then answers an error, and its rows run here instead.
    fn start(&self, i: usize, model: &ModelIdentity, batch: Batch, attentions: AttentionRequest) -> PartForward;
}

pub struct Engine {
    pub config: BertConfig,
    identity: ModelIdentity,
    tokenizer: Option<BertTokenizer>,
    backend: Backend,
    info: BackendInfo,
    helpers: Option<Rc<dyn ForwardHelpers>>,
    mlm: Option<MlmHead>,
}

impl Engine {
    pub async fn new(model: Model, choice: BackendChoice) -> Result<Self> {
        let mut engine = Self::with_weights(&model.name, model.weights, Some(model.tokenizer), choice).await?;
        engine.mlm = model.mlm;
        Ok(engine)
    }

    /// An engine without a tokenizer (benchmarks with random weights feed ids).
    pub async fn with_weights(name: &str, weights: BertWeights, tokenizer: Option<BertTokenizer>, choice: BackendChoice) -> Result<Self> {
        let gpu = match choice {
            BackendChoice::Cpu => Err(Error::Gpu("not asked for".into())),
            _ => GpuContext::new().await,
        };
        Self::with_context(name, weights, tokenizer, gpu, choice).await
    }

    /// An engine on a given GPU context (or the error opening one gave).
    pub async fn with_context(
        name: &str,
        weights: BertWeights,
        tokenizer: Option<BertTokenizer>,
        gpu: Result<GpuContext>,
        choice: BackendChoice,
    ) -> Result<Self> {
        let identity = ModelIdentity::of(name, &weights);
        let config = weights.config.clone();
        let (backend, info) = match choice {
            BackendChoice::Cpu => (Backend::Cpu(Box::new(FastCpuEncoder::new(&weights))), BackendInfo::Cpu { why: CpuReason::Asked }),
            BackendChoice::Gpu => {
                let gpu = GpuEncoder::new(gpu?, &weights)?;
                let adapter = gpu.context().describe();
                (Backend::Gpu(Box::new(gpu), Box::new(weights)), BackendInfo::Gpu { adapter, why: GpuReason::Asked })
            }
            BackendChoice::Auto => Self::auto(gpu, weights).await,
        };
        Ok(Engine { config, identity, tokenizer, backend, info, helpers: None, mlm: None })
    }

    /// `auto`: a hardware GPU; on a software adapter the faster of it and the
    /// CPU path; the CPU path whenever the GPU path cannot start.
    async fn auto(gpu: Result<GpuContext>, weights: BertWeights) -> (Backend, BackendInfo) {
        let cpu = |why, weights: &BertWeights| (Backend::Cpu(Box::new(FastCpuEncoder::new(weights))), BackendInfo::Cpu { why });
        let ctx = match gpu {
            Ok(ctx) => ctx,
            Err(e) => return cpu(CpuReason::NoGpu(e.message().to_string()), &weights),
        };
        let software = ctx.is_software();
        let adapter = ctx.describe();
        let mut gpu = match GpuEncoder::new(ctx, &weights) {
            Ok(g) => g,
            Err(e) => return cpu(CpuReason::GpuFailed(e.message().to_string()), &weights),
        };
        if !software {
            return (Backend::Gpu(Box::new(gpu), Box::new(weights)), BackendInfo::Gpu { adapter, why: GpuReason::Hardware });
        }
        let fast = FastCpuEncoder::new(&weights);
        match Self::time_probe(&mut gpu, &fast, &weights.config).await {
            Err(e) => (Backend::Cpu(Box::new(fast)), BackendInfo::Cpu { why: CpuReason::GpuFailed(e.message().to_string()) }),
            Ok((gpu_ms, cpu_ms)) if gpu_ms < cpu_ms => (
                Backend::Gpu(Box::new(gpu), Box::new(weights)),
                BackendInfo::Gpu { adapter, why: GpuReason::FasterThanCpu { gpu_ms, cpu_ms } },
            ),
            Ok((gpu_ms, cpu_ms)) => {
                (Backend::Cpu(Box::new(fast)), BackendInfo::Cpu { why: CpuReason::FasterThanSoftware { adapter, cpu_ms, gpu_ms } })
            }
        }
    }

    /// One forward of a typical short batch (2 × 16 tokens of ids inside the
    /// vocabulary) on the GPU and on the CPU path, in ms.
    async fn time_probe(gpu: &mut GpuEncoder, cpu: &FastCpuEncoder, c: &BertConfig) -> Result<(f64, f64)> {
        let len = 16.min(c.max_position_embeddings);
        let ids = (0..len).map(|i| ((i * 37 + 1) % c.vocab_size) as u32).collect();
        let probe = Batch::from_rows(vec![(ids, vec![0; len]); 2], c.pad_token_id)?;
        validate(c, &probe)?;
        gpu.forward(&probe, AttentionRequest::None).await?; // compiles the pipelines
        let t = Instant::now();
        gpu.forward(&probe, AttentionRequest::None).await?;
        let gpu_ms = t.elapsed().as_secs_f64() * 1e3;
        cpu.forward(&probe, AttentionRequest::None); // first use: buffers, threads
        let t = Instant::now();
        cpu.forward(&probe, AttentionRequest::None);
        Ok((gpu_ms, t.elapsed().as_secs_f64() * 1e3))
    }

    /// After a lost device: opens a new one and uploads the weights again.
    /// A CPU engine has nothing to recover.
    pub async fn recover_gpu(&mut self) -> Result<()> {
        if let Backend::Gpu(gpu, weights) = &mut self.backend {
            **gpu = GpuEncoder::new(GpuContext::new().await?, weights)?;
            self.info = BackendInfo::Gpu { adapter: gpu.context().describe(), why: GpuReason::Recreated };
        }
        Ok(())
    }

    pub fn identity(&self) -> &ModelIdentity {
        &self.identity
    }

    pub fn backend(&self) -> &BackendInfo {
        &self.info
    }

    /// Lets CPU forwards split their rows with `helpers`.
    pub fn set_helpers(&mut self, helpers: Rc<dyn ForwardHelpers>) {
        self.helpers = Some(helpers);
    }

    /// Takes the helpers away (forwards run on this thread alone until they are set again).
    pub fn take_helpers(&mut self) -> Option<Rc<dyn ForwardHelpers>> {
        self.helpers.take()
    }

    /// The threads a CPU forward runs on now (rayon's natively, plus the
    /// helpers holding this model); `None` on the GPU.
    pub fn cpu_threads(&self) -> Option<usize> {
        let helpers = self.helpers.as_ref().map_or(0, |h| h.ready(&self.identity));
        matches!(self.backend, Backend::Cpu(_)).then(|| FastCpuEncoder::threads() + helpers)
    }

    /// The backend in words, with the threads of the CPU path.
    pub fn describe_backend(&self) -> String {
        match self.cpu_threads() {
            Some(1) => format!("{} · 1 thread", self.info),
            Some(n) => format!("{} · {n} threads", self.info),
            None => self.info.to_string(),
        }
    }

    /// The GPU device, when the GPU path runs.
    pub fn gpu_context(&self) -> Option<&GpuContext> {
        match &self.backend {
            Backend::Gpu(gpu, _) => Some(gpu.context()),
            Backend::Cpu(_) => None,
        }
    }

    pub fn is_gpu(&self) -> bool {
        matches!(self.backend, Backend::Gpu(..))
    }

    /// The masked-word head, when the model has one.
    pub fn mlm(&self) -> Option<&MlmHead> {
        self.mlm.as_ref()
    }

    pub fn tokenizer(&self) -> Result<&BertTokenizer> {
        self.tokenizer.as_ref().ok_or_else(|| Error::Tokenizer("this engine has no tokenizer".into()))
    }

    pub fn tokenize(&self, inputs: &[Input], max_len: Option<usize>) -> Result<Batch> {
        let t = self.tokenizer()?;
        match max_len {
            Some(n) => t.encode_batch_to(inputs, n),
            None => t.encode_batch(inputs),
        }
    }

    /// Tokenizes and runs a batch of sentences or pairs in one forward pass.
    pub async fn embed(&mut self, inputs: &[Input], options: EmbedOptions) -> Result<(Batch, Outputs)> {
        let batch = self.tokenize(inputs, options.max_len)?;
        let out = self.forward(&batch, options.attentions).await?;
        Ok((batch, out))
    }

    /// One forward pass; an output that is not finite (weights that
    /// overflow float32) is an error, never a result.
    pub async fn forward(&mut self, batch: &Batch, keep: impl Into<Keep>) -> Result<Outputs> {
        let out = self.forward_unchecked(batch, keep.into()).await?;
        let finite = |v: &[f32]| v.iter().all(|x| x.is_finite());
        if !finite(&out.last_hidden_state) || !out.pooler_output.as_deref().is_none_or(finite) {
            return Err(Error::Weights(
                "the model's forward pass gave a value that is not a finite number: its weights overflow float32".into(),
            ));
        }
        Ok(out)
    }

    async fn forward_unchecked(&mut self, batch: &Batch, keep: Keep) -> Result<Outputs> {
        validate(&self.config, batch)?;
        let attentions = keep.attentions;
        if let AttentionRequest::Row(r) = attentions {
            if r >= batch.batch_size {
                return Err(Error::Input(format!("attentions asked for row {r} of a batch of {}", batch.batch_size)));
            }
        }
        match &mut self.backend {
            Backend::Cpu(cpu) => match self.helpers.as_ref().map(|h| (h, h.ready(&self.identity))) {
                // every layer's states stay here: helpers send back the last layer's
                Some((helpers, ready)) if ready > 0 && batch.batch_size > 1 && !keep.hidden_states => {
                    split_forward(cpu, helpers.as_ref(), ready, &self.identity, batch, attentions).await
                }
                _ => Ok(cpu.forward(batch, keep)),
            },
            Backend::Gpu(gpu, _) => gpu.forward(batch, keep).await,
        }
    }

    /// One GPU forward with each kernel timed by the device: (kernel, ms)
    /// per dispatch, in order; `None` where the adapter has no timestamp queries.
    pub async fn profile(&mut self, batch: &Batch) -> Result<Option<Vec<(std::sync::Arc<str>, f64)>>> {
        validate(&self.config, batch)?;
        match &mut self.backend {
            Backend::Gpu(gpu, _) => gpu.profile(batch).await,
            Backend::Cpu(_) => Err(Error::Input("profiles time the GPU's kernels: run on the GPU backend".into())),
        }
    }
}

/// Row chunks of a batch as even as they come, at most `parts`, none empty.
fn row_parts(rows: usize, parts: usize) -> Vec<std::ops::Range<usize>> {
    let parts = parts.clamp(1, rows.max(1));
    (0..parts).map(|p| p * rows / parts..(p + 1) * rows / parts).collect()
}

/// One forward with its rows split between this thread and the `ready`
/// helpers: the helpers' parts are sent first, this thread runs the first
/// part meanwhile, and a part a helper could not run runs here after.
async fn split_forward(
    cpu: &FastCpuEncoder,
    helpers: &dyn ForwardHelpers,
    ready: usize,
    model: &ModelIdentity,
    batch: &Batch,
    attentions: AttentionRequest,
) -> Result<Outputs> {
    let parts = row_parts(batch.batch_size, 1 + ready);
    let started: Vec<PartForward> = parts[1..]
        .iter()
        .enumerate()
        .map(|(i, rows)| helpers.start(i, model, batch.rows(rows.clone()), attentions.within(rows.clone())))
        .collect();
    let run_here = |rows: &std::ops::Range<usize>| cpu.forward(&batch.rows(rows.clone()), attentions.within(rows.clone()));
    let mut outputs = vec![run_here(&parts[0])];
    for (rows, part) in parts[1..].iter().zip(started) {
        outputs.push(match part.await {
            Ok(out) if (out.batch, out.seq, out.hidden) == (rows.len(), batch.seq_len, cpu.hidden()) => out,
            _ => run_here(rows),
        });
    }
    Outputs::concat(outputs).ok_or_else(|| Error::Input("empty batch".into()))
}

/// Ids out of the tables' range would read garbage on the GPU and panic on the CPU.
fn validate(c: &BertConfig, b: &Batch) -> Result<()> {
    if b.seq_len > c.max_position_embeddings {
        return Err(Error::Input(format!("{} tokens exceed the model's {} positions", b.seq_len, c.max_position_embeddings)));
    }
    if let Some(id) = b.input_ids.iter().find(|&&i| i as usize >= c.vocab_size) {
        return Err(Error::Input(format!("token id {id} is outside the vocabulary of {}", c.vocab_size)));
    }
    if let Some(t) = b.token_type_ids.iter().find(|&&t| t as usize >= c.type_vocab_size) {
        return Err(Error::Input(format!("token type {t} is outside the model's {} types", c.type_vocab_size)));
    }
    Ok(())
}
