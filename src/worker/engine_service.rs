//! The engine the worker holds: load a model, run the explorer's sentences,
//! answer "Try it". It owns the loaded engine (not `Send`, so it lives in a
//! thread-local; the worker is one thread) and turns outputs into plain view
//! data. Fine-tuning runs take their own handle on the engine (`runs`), so
//! loading another model never changes what a run computes.

use std::cell::RefCell;
use std::rc::Rc;

use bertlab::finetune::features::extract_features;
use bertlab::finetune::head_io::TrainedHead;
use bertlab::finetune::training::HeadBackend;
use bertlab::glue::Example;
use bertlab::protocol::{Exploration, ModelInfo, SentenceView, MAX_SENTENCES};
use bertlab::{AttentionRequest, BackendChoice, EmbedOptions, Engine, Error, Input, Model, ModelFiles, Pooling};
use futures_util::lock::Mutex;

/// The loaded engine, shared with the run that uses it.
pub type SharedEngine = Rc<Mutex<Engine>>;

thread_local! {
    static ENGINE: RefCell<Option<SharedEngine>> = const { RefCell::new(None) };
    /// The head "Try it" uses: the last run's, or one imported.
    static HEAD: RefCell<Option<TrainedHead>> = const { RefCell::new(None) };
}

/// The loaded engine, if any.
pub fn engine() -> Result<SharedEngine, String> {
    ENGINE.with(|e| e.borrow().clone()).ok_or_else(|| "no model is loaded yet".to_string())
}

/// Parses, checks and uploads a model; replaces the current one on success
/// (a failed load keeps the model that was there). The error keeps its
/// kind: only a corrupt model is worth deleting from the cache.
pub async fn load(files: ModelFiles, backend: BackendChoice) -> Result<ModelInfo, Error> {
    let model = Model::from_files(&files)?;
    let engine = Engine::new(model, backend).await?;
    let c = &engine.config;
    let info = ModelInfo {
        identity: engine.identity().clone(),
        layers: c.num_hidden_layers,
        hidden: c.hidden_size,
        heads: c.num_attention_heads,
        vocab: c.vocab_size,
        max_positions: c.max_position_embeddings,
        backend: engine.backend().to_string(),
    };
    ENGINE.with(|e| *e.borrow_mut() = Some(Rc::new(Mutex::new(engine))));
    Ok(info)
}

/// Runs the first [`MAX_SENTENCES`] sentences as one batch, with the
/// attentions of `selected` only. A lost GPU device is re-created once and
/// the batch retried.
pub async fn explore(mut texts: Vec<String>, selected: usize) -> Result<Exploration, String> {
    let engine = engine()?;
    let mut engine = engine.lock().await;
    let left_out = texts.len().saturating_sub(MAX_SENTENCES);
    texts.truncate(MAX_SENTENCES);
    let selected = selected.min(texts.len().saturating_sub(1));
    let inputs: Vec<Input> = texts.iter().map(|t| Input::Single(t.clone())).collect();
    let options = EmbedOptions { attentions: AttentionRequest::Row(selected), ..Default::default() };
    let start = web_time::Instant::now();
    let (batch, out) = match engine.embed(&inputs, options).await {
        Err(Error::DeviceLost(_)) => {
            engine.recover_gpu().await.map_err(|e| e.to_string())?;
            engine.embed(&inputs, options).await
        }
        other => other,
    }
    .map_err(|e| e.to_string())?;
    let forward_ms = start.elapsed().as_secs_f64() * 1e3;
    let c = &engine.config;
    let (h, s, layers, heads) = (c.hidden_size, batch.seq_len, c.num_hidden_layers, c.num_attention_heads);
    let embedding = |b: usize, p: Pooling| out.sentence_embedding(b, &batch.attention_mask, p, false);
    let sentences = texts
        .into_iter()
        .enumerate()
        .map(|(b, text)| {
            let n = batch.len_of(b);
            // this row's kept attentions, padding cut off: [layers, heads, n, n]
            let attentions = out.attention(b, 0, 0).is_some().then(|| {
                let mut a = Vec::with_capacity(layers * heads * n * n);
                for l in 0..layers {
                    for hd in 0..heads {
                        if let Some(full) = out.attention(b, l, hd) {
                            full.chunks(s).take(n).for_each(|row| a.extend_from_slice(&row[..n]));
                        }
                    }
                }
                a
            });
            SentenceView {
                text,
                tokens: batch.tokens[b].clone(),
                ids: batch.input_ids[b * s..b * s + n].to_vec(),
                truncated: batch.truncated[b],
                hidden_state: out.last_hidden_state[b * s * h..(b * s + n) * h].to_vec(),
                pooler: embedding(b, Pooling::Pooler),
                cls: embedding(b, Pooling::Cls).unwrap_or_default(),
                mean: embedding(b, Pooling::Mean).unwrap_or_default(),
                attentions,
            }
        })
        .collect();
    Ok(Exploration {
        sentences,
        selected,
        left_out,
        hidden: h,
        layers,
        heads,
        forward_ms,
        backend: engine.backend().to_string(),
        max_positions: c.max_position_embeddings,
    })
}

/// Times forwards of `batch × seq` ids (as `bertlab bench` makes them, no
/// padding) after one warm-up, for at least `min_ms`: ms per forward.
pub async fn bench(batch: usize, seq: usize, min_ms: f64) -> Result<(f64, String), String> {
    let engine = engine()?;
    let mut engine = engine.lock().await;
    let vocab = engine.config.vocab_size;
    let rows = (0..batch).map(|r| ((0..seq).map(|t| ((1000 + 7 * t + r) % vocab) as u32).collect(), vec![0; seq])).collect();
    let batch = bertlab::Batch::from_rows(rows, engine.config.pad_token_id).map_err(|e| e.to_string())?;
    engine.forward(&batch, AttentionRequest::None).await.map_err(|e| e.to_string())?;
    let start = web_time::Instant::now();
    let mut runs = 0;
    while runs == 0 || start.elapsed().as_secs_f64() * 1e3 < min_ms {
        engine.forward(&batch, AttentionRequest::None).await.map_err(|e| e.to_string())?;
        runs += 1;
    }
    Ok((start.elapsed().as_secs_f64() * 1e3 / runs as f64, engine.backend().to_string()))
}

/// Makes `head` the one "Try it" uses.
pub fn set_head(head: TrainedHead) {
    HEAD.with(|h| *h.borrow_mut() = Some(head));
}

/// The current head as files: safetensors and the config.json fields.
pub fn export_head() -> Result<(Vec<u8>, String), String> {
    let head = HEAD.with(|h| h.borrow().clone()).ok_or("no trained head yet")?;
    head.export().map_err(|e| e.to_string())
}

/// Loads a head file for "Try it", if it reads the loaded model's features;
/// says what it is.
pub async fn import_head(bytes: &[u8]) -> Result<String, String> {
    let head = TrainedHead::import(bytes).map_err(|e| e.to_string())?;
    head.check_model(engine()?.lock().await.identity()).map_err(|e| e.to_string())?;
    let what = format!(
        "{} head on {} features{}",
        if head.spec.hidden == 0 { "Linear" } else { "MLP" },
        head.spec.input.name(),
        head.model.as_ref().map(|m| format!(", trained on {}", m.name)).unwrap_or_default()
    );
    set_head(head);
    Ok(what)
}

/// P(paraphrase) for one pair, with the current head on the loaded model
/// (refused, with both models named, when the head was trained on another).
pub async fn paraphrase_probability(a: String, b: String, max_len: usize) -> Result<f32, String> {
    let head = HEAD.with(|h| h.borrow().clone()).ok_or("train or import a head first")?;
    let engine = engine()?;
    let mut engine = engine.lock().await;
    head.check_model(engine.identity()).map_err(|e| e.to_string())?;
    let example = [Example { label: 0, sentence1: a, sentence2: b }];
    let x = extract_features(&mut engine, &example, head.spec.input, max_len, 1, &mut |_, _| {}).await.map_err(|e| e.to_string())?;
    let mut backend = HeadBackend::new(head.spec, head.params, None);
    let p = backend.predict(&x, 1).await.map_err(|e| e.to_string())?;
    Ok(p[1])
}
