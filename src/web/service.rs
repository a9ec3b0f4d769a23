//! The page's one door to the engine: load a model, run the explorer's
//! sentences. It owns the engine (not `Send`, so it lives in a thread-local;
//! the page is single-threaded) and turns outputs into plain view data.

use std::cell::RefCell;
use std::rc::Rc;

use bertlab::analysis::cosine_matrix;
use bertlab::{BackendChoice, Engine, Error, Input, Model, ModelFiles, Pooling};
use futures_util::lock::Mutex;

thread_local! {
    static ENGINE: RefCell<Option<Rc<Mutex<Engine>>>> = const { RefCell::new(None) };
}

/// What the page shows about the loaded model.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelInfo {
    pub name: String,
    pub layers: usize,
    pub hidden: usize,
    pub heads: usize,
    pub vocab: usize,
    pub max_positions: usize,
    pub backend: String,
}

/// Parses, checks and uploads a model; replaces the current one on success
/// (a failed load keeps the model that was there).
pub async fn load(name: String, files: ModelFiles, backend: BackendChoice) -> Result<ModelInfo, String> {
    let model = Model::from_files(&files).map_err(|e| e.to_string())?;
    let engine = Engine::new(model, backend).await.map_err(|e| e.to_string())?;
    let c = &engine.config;
    let info = ModelInfo {
        name,
        layers: c.num_hidden_layers,
        hidden: c.hidden_size,
        heads: c.num_attention_heads,
        vocab: c.vocab_size,
        max_positions: c.max_position_embeddings,
        backend: describe_backend(&engine),
    };
    ENGINE.with(|e| *e.borrow_mut() = Some(Rc::new(Mutex::new(engine))));
    Ok(info)
}

fn describe_backend(engine: &Engine) -> String {
    let d = &engine.backend_description;
    if d.contains("WebGPU is not available") {
        "CPU (WebGPU not available in this browser)".into()
    } else {
        d.clone()
    }
}

/// One sentence as the explorer shows it (padding removed).
#[derive(Clone, Debug, PartialEq)]
pub struct SentenceView {
    pub text: String,
    pub tokens: Vec<String>,
    pub ids: Vec<u32>,
    pub truncated: bool,
    /// `[tokens, hidden]`
    pub hidden_state: Vec<f32>,
    pub pooler: Option<Vec<f32>>,
    pub cls: Vec<f32>,
    pub mean: Vec<f32>,
    /// `[layers, heads, tokens, tokens]`
    pub attentions: Vec<f32>,
}

impl SentenceView {
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    pub fn embedding(&self, pooling: Pooling) -> Option<&Vec<f32>> {
        match pooling {
            Pooling::Cls => Some(&self.cls),
            Pooling::Mean => Some(&self.mean),
            Pooling::Pooler => self.pooler.as_ref(),
        }
    }

    /// The `tokens × tokens` probabilities of one layer and head.
    pub fn attention(&self, layer: usize, head: usize, heads: usize) -> &[f32] {
        let n = self.len() * self.len();
        &self.attentions[(layer * heads + head) * n..][..n]
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Exploration {
    pub sentences: Vec<SentenceView>,
    pub hidden: usize,
    pub layers: usize,
    pub heads: usize,
    pub forward_ms: f64,
    pub backend: String,
    pub max_positions: usize,
}

impl Exploration {
    pub fn similarity(&self, pooling: Pooling) -> Option<Vec<f32>> {
        let v: Option<Vec<Vec<f32>>> = self.sentences.iter().map(|s| s.embedding(pooling).cloned()).collect();
        v.map(|v| cosine_matrix(&v))
    }
}

/// Runs the non-empty sentences as one batch, with attentions. A lost GPU
/// device is re-created once and the batch retried.
pub async fn explore(texts: Vec<String>) -> Result<Exploration, String> {
    let engine = ENGINE.with(|e| e.borrow().clone()).ok_or("no model is loaded yet")?;
    let mut engine = engine.lock().await;
    let inputs: Vec<Input> = texts.iter().map(|t| Input::Single(t.clone())).collect();
    let start = web_time::Instant::now();
    let (batch, out) = match engine.embed(&inputs, true).await {
        Err(Error::DeviceLost(_)) => {
            engine.recover_gpu().await.map_err(|e| e.to_string())?;
            engine.embed(&inputs, true).await
        }
        other => other,
    }
    .map_err(|e| e.to_string())?;
    let forward_ms = start.elapsed().as_secs_f64() * 1e3;
    let c = &engine.config;
    let (h, s, layers, heads) = (c.hidden_size, batch.seq_len, c.num_hidden_layers, c.num_attention_heads);
    let sentences = texts
        .into_iter()
        .enumerate()
        .map(|(b, text)| {
            let n = batch.len_of(b);
            let mut attentions = Vec::with_capacity(layers * heads * n * n);
            for l in 0..layers {
                for hd in 0..heads {
                    let full = out.attention(b, l, hd).expect("asked for attentions");
                    for i in 0..n {
                        attentions.extend_from_slice(&full[i * s..i * s + n]);
                    }
                }
            }
            SentenceView {
                text,
                tokens: batch.tokens[b].clone(),
                ids: batch.input_ids[b * s..b * s + n].to_vec(),
                truncated: batch.truncated[b],
                hidden_state: out.last_hidden_state[b * s * h..(b * s + n) * h].to_vec(),
                pooler: out.sentence_embedding(b, &batch.attention_mask, Pooling::Pooler, false),
                cls: out.sentence_embedding(b, &batch.attention_mask, Pooling::Cls, false).unwrap(),
                mean: out.sentence_embedding(b, &batch.attention_mask, Pooling::Mean, false).unwrap(),
                attentions,
            }
        })
        .collect();
    Ok(Exploration {
        sentences,
        hidden: h,
        layers,
        heads,
        forward_ms,
        backend: describe_backend(&engine),
        max_positions: c.max_position_embeddings,
    })
}

// ---- fine-tuning -------------------------------------------------------

use bertlab::finetune::{self, Event, HeadBackend, Metrics, TrainConfig, Training};
use bertlab::glue::{Dataset, Example};
use bertlab::head::{CpuHead, HeadInput, HeadSpec, Param};

thread_local! {
    static TRAINING: RefCell<Option<Rc<Mutex<Training>>>> = const { RefCell::new(None) };
    /// The head "Try it" uses: the one training, or one imported.
    static HEAD: RefCell<Option<Rc<(HeadSpec, HeadBackend)>>> = const { RefCell::new(None) };
}

/// Features and labels of both splits, as training needs them.
pub struct Features {
    pub train: (Vec<f32>, Vec<u8>),
    pub eval: (Vec<f32>, Vec<u8>),
}

async fn engine() -> Result<Rc<Mutex<Engine>>, String> {
    ENGINE.with(|e| e.borrow().clone()).ok_or_else(|| "no model is loaded yet".to_string())
}

/// Encodes the pairs of one split; `progress(done, total)` after each batch.
pub async fn extract(examples: &[Example], input: HeadInput, max_len: usize, batch: usize, progress: &mut dyn FnMut(usize, usize)) -> Result<Vec<f32>, String> {
    let engine = engine().await?;
    let mut engine = engine.lock().await;
    finetune::extract_features(&mut engine, examples, input, max_len, batch, progress).await.map_err(|e| e.to_string())
}

pub async fn hidden_size() -> Result<usize, String> {
    Ok(engine().await?.lock().await.config.hidden_size)
}

async fn head_on_engine_device(spec: HeadSpec, params: &[Param]) -> Result<HeadBackend, String> {
    let gpu = engine().await?.lock().await.is_gpu();
    if gpu {
        HeadBackend::new_gpu(spec, params).await.map_err(|e| e.to_string())
    } else {
        Ok(HeadBackend::Cpu(CpuHead::new(spec, params.to_vec())))
    }
}

/// Starts a run on the device the encoder uses; returns where the head trains.
pub async fn start(config: TrainConfig, f: Features) -> Result<String, String> {
    let h = hidden_size().await?;
    let spec = HeadSpec { input: config.head_input, in_dim: config.head_input.width(h), hidden: config.mlp_hidden, classes: 2 };
    let initial = spec.init(config.seed);
    let backend = head_on_engine_device(spec, &initial).await?;
    let where_ = backend.describe();
    let t = Training::new(config, spec, backend, initial, f.train, f.eval).map_err(|e| e.to_string())?;
    TRAINING.with(|s| *s.borrow_mut() = Some(Rc::new(Mutex::new(t))));
    Ok(where_)
}

/// Continues a saved run (the checkpoint and features from the browser's storage).
pub async fn resume(checkpoint: &[u8], f: Features) -> Result<(TrainConfig, Vec<f32>, Vec<Metrics>, String), String> {
    let gpu = engine().await?.lock().await.is_gpu();
    let t = Training::resume(checkpoint, gpu, f.train, f.eval).await.map_err(|e| e.to_string())?;
    let out = (t.config.clone(), t.losses.clone(), t.metrics.clone(), t.backend.describe());
    TRAINING.with(|s| *s.borrow_mut() = Some(Rc::new(Mutex::new(t))));
    Ok(out)
}

fn training() -> Result<Rc<Mutex<Training>>, String> {
    TRAINING.with(|t| t.borrow().clone()).ok_or_else(|| "no training run".to_string())
}

pub async fn advance() -> Result<Event, String> {
    let t = training()?;
    let mut t = t.lock().await;
    t.advance().await.map_err(|e| e.to_string())
}

pub async fn progress() -> Result<(u32, usize), String> {
    let t = training()?;
    let t = t.lock().await;
    Ok((t.step, t.total_steps()))
}

pub async fn checkpoint() -> Result<Vec<u8>, String> {
    training()?.lock().await.checkpoint().await.map_err(|e| e.to_string())
}

/// The trained head as safetensors and its config.json fields.
pub async fn export() -> Result<(Vec<u8>, String), String> {
    let t = training()?;
    let t = t.lock().await;
    let head = t.head().await.map_err(|e| e.to_string())?;
    Ok(finetune::export_head(&t.spec, &head))
}

/// Makes the run's current head the one "Try it" uses.
pub async fn use_trained_head() -> Result<(), String> {
    let t = training()?;
    let t = t.lock().await;
    let head = t.head().await.map_err(|e| e.to_string())?;
    let spec = t.spec;
    drop(t);
    let backend = HeadBackend::Cpu(CpuHead::new(spec, head));
    HEAD.with(|h| *h.borrow_mut() = Some(Rc::new((spec, backend))));
    Ok(())
}

/// Loads a head file for "Try it"; says what it reads.
pub async fn import(bytes: &[u8]) -> Result<String, String> {
    let (spec, params) = finetune::import_head(bytes).map_err(|e| e.to_string())?;
    let h = hidden_size().await?;
    if spec.in_dim != spec.input.width(h) {
        return Err(format!("this head reads {} features; the loaded model gives {}", spec.in_dim, spec.input.width(h)));
    }
    let backend = head_on_engine_device(spec, &params).await?;
    HEAD.with(|hd| *hd.borrow_mut() = Some(Rc::new((spec, backend))));
    Ok(format!("{} head on {} features", if spec.hidden == 0 { "Linear" } else { "MLP" }, spec.input.name()))
}

/// P(paraphrase) for one pair, with the current head.
pub async fn paraphrase_probability(a: String, b: String, max_len: usize) -> Result<f32, String> {
    let head = HEAD.with(|h| h.borrow().clone()).ok_or("train or import a head first")?;
    let (spec, backend) = (&head.0, &head.1);
    let example = [Example { label: 0, sentence1: a, sentence2: b }];
    let x = extract(&example, spec.input, max_len, 1, &mut |_, _| {}).await?;
    let p = backend.predict(&x, 1).await.map_err(|e| e.to_string())?;
    Ok(p[1])
}

/// Both splits' sizes, for the data panel.
pub fn describe(d: &Dataset) -> String {
    let p = d.positives();
    format!("{} pairs, {} paraphrases ({:.1}%), {} not", d.examples.len(), p, 100.0 * p as f64 / d.examples.len() as f64, d.examples.len() - p)
}
