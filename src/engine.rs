//! The one API the CLI and the web page call: text in, tensors out, on the
//! GPU or the CPU. Async because the browser can only read GPU buffers
//! asynchronously; natively `pollster::block_on` drives it.

use web_time::Instant;

use crate::config::BertConfig;
use crate::cpu_encoder::forward_cpu;
use crate::error::{Error, Result};
use crate::gpu::GpuContext;
use crate::gpu_encoder::GpuEncoder;
use crate::model::Model;
use crate::outputs::Outputs;
use crate::tokenize::{Batch, BertTokenizer, Input};
use crate::weights::BertWeights;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendChoice {
    /// A hardware GPU when there is one; with only a software adapter, the
    /// faster of it and the CPU path, measured.
    Auto,
    Gpu,
    Cpu,
}

enum Backend {
    Gpu(Box<GpuEncoder>),
    Cpu,
}

pub struct Engine {
    pub config: BertConfig,
    weights: BertWeights,
    tokenizer: Option<BertTokenizer>,
    backend: Backend,
    /// Which backend runs and why, for people to read.
    pub backend_description: String,
}

impl Engine {
    pub async fn new(model: Model, choice: BackendChoice) -> Result<Self> {
        Self::with_weights(model.weights, Some(model.tokenizer), choice).await
    }

    /// An engine without a tokenizer (benchmarks with random weights feed ids).
    pub async fn with_weights(weights: BertWeights, tokenizer: Option<BertTokenizer>, choice: BackendChoice) -> Result<Self> {
        let config = weights.config.clone();
        let (backend, backend_description) = match choice {
            BackendChoice::Cpu => (Backend::Cpu, "CPU (asked for)".to_string()),
            BackendChoice::Gpu => {
                let gpu = GpuEncoder::new(GpuContext::new().await?, &weights)?;
                let d = format!("GPU: {}", gpu.context().describe());
                (Backend::Gpu(Box::new(gpu)), d)
            }
            BackendChoice::Auto => match GpuContext::new().await {
                Err(e) => (Backend::Cpu, format!("CPU ({e})")),
                Ok(ctx) if !ctx.is_software() => {
                    let d = format!("GPU: {}", ctx.describe());
                    (Backend::Gpu(Box::new(GpuEncoder::new(ctx, &weights)?)), d)
                }
                Ok(ctx) => Self::faster_of_software_and_cpu(ctx, &weights).await?,
            },
        };
        Ok(Engine { config, weights, tokenizer, backend, backend_description })
    }

    /// Times one forward of a typical short batch on a software adapter and on
    /// the CPU path, and keeps the faster.
    async fn faster_of_software_and_cpu(ctx: GpuContext, weights: &BertWeights) -> Result<(Backend, String)> {
        let name = ctx.describe();
        let mut gpu = GpuEncoder::new(ctx, weights)?;
        let probe = Batch::from_rows(vec![((0..16).map(|i| 1000 + i).collect(), vec![0; 16]); 2], 0)?;
        gpu.forward(&probe, false).await?; // compiles the pipelines
        let t = Instant::now();
        gpu.forward(&probe, false).await?;
        let gpu_ms = t.elapsed().as_secs_f64() * 1e3;
        let t = Instant::now();
        forward_cpu(weights, &probe, false);
        let cpu_ms = t.elapsed().as_secs_f64() * 1e3;
        Ok(if gpu_ms < cpu_ms {
            let d = format!("GPU: {name} (auto: {gpu_ms:.0} ms vs {cpu_ms:.0} ms on the CPU path for a 2×16 probe)");
            (Backend::Gpu(Box::new(gpu)), d)
        } else {
            let d = format!("CPU (auto: faster than the software adapter {name}, {cpu_ms:.0} ms vs {gpu_ms:.0} ms for a 2×16 probe)");
            (Backend::Cpu, d)
        })
    }

    /// After a lost device: opens a new one and uploads the weights again.
    /// A CPU engine has nothing to recover.
    pub async fn recover_gpu(&mut self) -> Result<()> {
        if let Backend::Gpu(_) = self.backend {
            let gpu = GpuEncoder::new(GpuContext::new().await?, &self.weights)?;
            self.backend_description = format!("GPU: {} (device re-created)", gpu.context().describe());
            self.backend = Backend::Gpu(Box::new(gpu));
        }
        Ok(())
    }

    /// The GPU device, when the GPU path runs.
    pub fn gpu_context(&self) -> Option<&GpuContext> {
        match &self.backend {
            Backend::Gpu(gpu) => Some(gpu.context()),
            Backend::Cpu => None,
        }
    }

    pub fn is_gpu(&self) -> bool {
        matches!(self.backend, Backend::Gpu(_))
    }

    pub fn tokenizer(&self) -> Result<&BertTokenizer> {
        self.tokenizer.as_ref().ok_or_else(|| Error::Tokenizer("this engine has no tokenizer".into()))
    }

    /// Truncate texts to `max_len` tokens from now on (`usize::MAX`: the model's maximum).
    pub fn set_max_length(&mut self, max_len: usize) -> Result<()> {
        self.tokenizer
            .as_mut()
            .ok_or_else(|| Error::Tokenizer("this engine has no tokenizer".into()))?
            .set_max_len(max_len)
    }

    pub fn tokenize(&self, inputs: &[Input]) -> Result<Batch> {
        self.tokenizer()?.encode_batch(inputs)
    }

    /// Tokenizes and runs a batch of sentences or pairs in one forward pass.
    pub async fn embed(&mut self, inputs: &[Input], want_attentions: bool) -> Result<(Batch, Outputs)> {
        let batch = self.tokenize(inputs)?;
        let out = self.forward(&batch, want_attentions).await?;
        Ok((batch, out))
    }

    pub async fn forward(&mut self, batch: &Batch, want_attentions: bool) -> Result<Outputs> {
        self.validate(batch)?;
        match &mut self.backend {
            Backend::Cpu => Ok(forward_cpu(&self.weights, batch, want_attentions)),
            Backend::Gpu(gpu) => gpu.forward(batch, want_attentions).await,
        }
    }

    /// Ids out of the tables' range would read garbage on the GPU and panic on the CPU.
    fn validate(&self, b: &Batch) -> Result<()> {
        let c = &self.config;
        if b.seq_len > c.max_position_embeddings {
            return Err(Error::Input(format!(
                "{} tokens exceed the model's {} positions",
                b.seq_len, c.max_position_embeddings
            )));
        }
        if let Some(id) = b.input_ids.iter().find(|&&i| i as usize >= c.vocab_size) {
            return Err(Error::Input(format!("token id {id} is outside the vocabulary of {}", c.vocab_size)));
        }
        if let Some(t) = b.token_type_ids.iter().find(|&&t| t as usize >= c.type_vocab_size) {
            return Err(Error::Input(format!("token type {t} is outside the model's {} types", c.type_vocab_size)));
        }
        Ok(())
    }
}
