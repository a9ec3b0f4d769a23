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
