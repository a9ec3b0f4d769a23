//! The engine the worker holds: load a model, run the explorer's sentences,
//! answer "Try it", export what was trained. It owns the loaded engine (not
//! `Send`, so it lives in a thread-local; the worker is one thread), the
//! loaded model's files (what a run fine-tuning BERT's layers starts from and
//! exports with), and turns outputs into plain view data. Fine-tuning runs
//! take their own handle on the engine (`runs`), so loading another model
//! never changes what a run computes.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use bertlab::analysis::{self, TokenAt, WordInContext};
use bertlab::classifier::backprop::forward;
use bertlab::classifier::export::export_folder;
use bertlab::classifier::math::CpuMath;
use bertlab::classifier::{ClassifierParams, HeadKind, Labels, TrainLayers};
use bertlab::finetune::features::extract_features;
use bertlab::finetune::head_io::TrainedHead;
use bertlab::finetune::training::HeadBackend;
use bertlab::glue::Example;
use bertlab::head::softmax_rows;
use bertlab::mlm::{self, Sees};
use bertlab::protocol::{
    Exploration, ExportedFile, MaskedWord, ModelInfo, Prediction, Reply, SentenceView, MAX_LAYER_FLOATS, MAX_SENTENCES,
};
use bertlab::task::words_of;
use bertlab::tokenize::BertTokenizer;
use bertlab::{AttentionRequest, BackendChoice, Engine, Error, Input, Keep, Model, ModelFiles, ModelIdentity, Outputs, Pooling};
use futures_util::future::{FutureExt, LocalBoxFuture, Shared};
use futures_util::lock::Mutex;

use crate::helpers;

/// The loaded engine, shared with the run that uses it.
pub type SharedEngine = Rc<Mutex<Engine>>;

/// A fine-tuned model with its task head, with what it needs to tokenize
/// and to be exported (its labels, its base model's files).
pub struct TunedModel {
    pub params: ClassifierParams,
    pub labels: Labels,
    pub files: Rc<ModelFiles>,
    pub tokenizer: Rc<BertTokenizer>,
}

/// What "Try it" and Export use: the last run's head or model, or an imported head.
#[derive(Clone)]
enum Trained {
    Head(TrainedHead),
    Model(Rc<TunedModel>),
}

/// The loaded model's helper workers: started on the engine's first use
/// after the load (so they never slow the first embedding on a machine with
/// few cores); `joined` is done once they have joined it (or failed to).
struct PendingHelpers {
    joined: Shared<LocalBoxFuture<'static, ()>>,
    started: Cell<bool>,
}

thread_local! {
    static ENGINE: RefCell<Option<(SharedEngine, Rc<ModelFiles>)>> = const { RefCell::new(None) };
    static HELPERS: RefCell<Option<Rc<PendingHelpers>>> = const { RefCell::new(None) };
    static TRAINED: RefCell<Option<Trained>> = const { RefCell::new(None) };
}

/// The loaded engine, if any (its helper workers start now if they have not).
pub fn engine() -> Result<SharedEngine, String> {
    joining_helpers();
    loaded().map(|(e, _)| e)
}

/// Starts the loaded model's helper workers if they have not started; done when they have joined.
fn joining_helpers() -> Option<Shared<LocalBoxFuture<'static, ()>>> {
    let helpers = HELPERS.with(|h| h.borrow().clone())?;
    if !helpers.started.replace(true) {
        wasm_bindgen_futures::spawn_local(helpers.joined.clone());
    }
    Some(helpers.joined.clone())
}

/// The loaded engine and the files it was loaded from.
pub fn loaded() -> Result<(SharedEngine, Rc<ModelFiles>), String> {
    ENGINE.with(|e| e.borrow().clone()).ok_or_else(|| "no model is loaded yet".to_string())
}

/// Parses, checks and uploads a model; replaces the current one on success
/// (a failed load keeps the model that was there). The error keeps its
/// kind: only a corrupt model is worth deleting from the cache.
///
/// On the CPU path, helper workers load the model too, from the engine's
/// first use on, and join its forwards when ready; `on_backend` then hears
/// the backend's new words.
pub async fn load(
    files: ModelFiles,
    backend: BackendChoice,
    on_backend: impl Fn(ModelIdentity, String) + 'static,
) -> Result<ModelInfo, Error> {
    let model = Model::from_files(&files)?;
    let engine = Engine::new(model, backend).await?;
    let on_cpu = engine.cpu_threads().is_some();
    let info = model_info(&engine);
    let engine = Rc::new(Mutex::new(engine));
    // the weights' bytes are kept for runs that fine-tune BERT itself; the rest is small
    let files = Rc::new(files);
    let helpers = on_cpu.then(|| {
        let (engine, files) = (engine.clone(), files.clone());
        let joined = async move {
            if let Some(h) = helpers::start(&files).await {
                let mut engine = engine.lock().await;
                engine.set_helpers(h);
                on_backend(engine.identity().clone(), engine.describe_backend());
            }
        };
        Rc::new(PendingHelpers { joined: joined.boxed_local().shared(), started: Cell::new(false) })
    });
    ENGINE.with(|e| *e.borrow_mut() = Some((engine, files)));
    HELPERS.with(|h| *h.borrow_mut() = helpers);
    Ok(info)
}

/// What the page shows about a loaded model.
pub fn model_info(engine: &Engine) -> ModelInfo {
    let c = &engine.config;
    ModelInfo {
        identity: engine.identity().clone(),
        layers: c.num_hidden_layers,
        hidden: c.hidden_size,
        heads: c.num_attention_heads,
        intermediate: c.intermediate_size,
        vocab: c.vocab_size,
        max_positions: c.max_position_embeddings,
        backend: engine.describe_backend(),
        on_gpu: engine.gpu_context().is_some(),
        masked_lm: engine.mlm().is_some(),
    }
}

/// Runs the first [`MAX_SENTENCES`] sentences as one batch, with the
/// attentions of `selected` only, the views on `layer`'s hidden states (the
/// last's when `None`). A lost GPU device is re-created once and the batch retried.
pub async fn explore(mut texts: Vec<String>, selected: usize, layer: Option<usize>) -> Result<Exploration, String> {
    let engine = engine()?;
    let mut engine = engine.lock().await;
    let left_out = texts.len().saturating_sub(MAX_SENTENCES);
    texts.truncate(MAX_SENTENCES);
    let selected = selected.min(texts.len().saturating_sub(1));
    let inputs: Vec<Input> = texts.iter().map(|t| Input::Single(t.clone())).collect();
    let batch = engine.tokenize(&inputs, None).map_err(|e| e.to_string())?;
    let (h, layers) = (engine.config.hidden_size, engine.config.num_hidden_layers);
    // an earlier layer keeps every layer's states of the batch for a moment: bounded
    let asked = layer.unwrap_or(layers).min(layers);
    let floats = (layers + 1) * batch.batch_size * batch.seq_len * h;
    let (layer, layer_note) = if asked < layers && floats > MAX_LAYER_FLOATS {
        let mb = |f: usize| (f * 4) >> 20;
        let why = format!(
            "Layer {asked} is not shown: every layer of these sentences would take {} MB (at most {}); fewer or shorter sentences show it.",
            mb(floats),
            mb(MAX_LAYER_FLOATS)
        );
        (layers, Some(why))
    } else {
        (asked, None)
    };
    let keep = Keep { attentions: AttentionRequest::Row(selected), hidden_states: layer < layers };
    let start = web_time::Instant::now();
    let out = match engine.forward(&batch, keep).await {
        Err(Error::DeviceLost(_)) => {
            engine.recover_gpu().await.map_err(|e| e.to_string())?;
            engine.forward(&batch, keep).await
        }
        other => other,
    }
    .map_err(|e| e.to_string())?;
    let forward_ms = start.elapsed().as_secs_f64() * 1e3;
    // the views read the chosen layer as they read the last (the pooler is the last layer's alone)
    let out = match out.hidden_states {
        Some(mut states) if layer < states.len() => {
            Outputs { last_hidden_state: states.swap_remove(layer), pooler_output: None, hidden_states: None, ..out }
        }
        _ => out,
    };
    let c = &engine.config;
    let (s, heads) = (batch.seq_len, c.num_attention_heads);
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
        backend: engine.describe_backend(),
        max_positions: c.max_position_embeddings,
        layer,
        layer_note,
    })
}

/// Times forwards of `batch × seq` ids (as `bertlab bench` makes them, no
/// padding) after one warm-up, for at least `min_ms`, with every thread the
/// engine will have or (`one_thread`) on its own: ms per forward, and the backend.
pub async fn bench(batch: usize, seq: usize, min_ms: f64, one_thread: bool) -> Result<(f64, String), String> {
    if let Some(joined) = joining_helpers() {
        joined.await;
    }
    let engine = engine()?;
    let mut engine = engine.lock().await;
    let vocab = engine.config.vocab_size;
    let rows = (0..batch).map(|r| ((0..seq).map(|t| ((1000 + 7 * t + r) % vocab) as u32).collect(), vec![0; seq])).collect();
    let batch = bertlab::Batch::from_rows(rows, engine.config.pad_token_id).map_err(|e| e.to_string())?;
    let helpers = if one_thread { engine.take_helpers() } else { None };
    let timed = async {
        engine.forward(&batch, AttentionRequest::None).await.map_err(|e| e.to_string())?;
        let start = web_time::Instant::now();
        let mut runs = 0;
        while runs == 0 || start.elapsed().as_secs_f64() * 1e3 < min_ms {
            engine.forward(&batch, AttentionRequest::None).await.map_err(|e| e.to_string())?;
            runs += 1;
        }
        Ok::<_, String>((start.elapsed().as_secs_f64() * 1e3 / runs as f64, engine.describe_backend()))
    }
    .await;
    if let Some(h) = helpers {
        engine.set_helpers(h);
    }
    timed
}

/// Makes `head` the one "Try it" and Export use.
pub fn set_head(head: TrainedHead) {
    TRAINED.with(|h| *h.borrow_mut() = Some(Trained::Head(head)));
}

/// Makes a fine-tuned model the one "Try it" and Export use.
pub fn set_model(model: TunedModel) {
    TRAINED.with(|h| *h.borrow_mut() = Some(Trained::Model(Rc::new(model))));
}

/// What was trained, as files: a head (safetensors and the config.json
/// fields to merge), or a fine-tuned model's Hugging Face folder.
pub fn export() -> Result<Reply, String> {
    match TRAINED.with(|t| t.borrow().clone()).ok_or("nothing trained yet")? {
        Trained::Head(head) => head.export().map(|(bytes, config)| Reply::HeadExported { bytes, config }).map_err(|e| e.to_string()),
        Trained::Model(m) => {
            let f = &m.files;
            let tokenizer: Vec<(&str, &[u8])> =
                [("tokenizer.json", &f.tokenizer_json), ("vocab.txt", &f.vocab_txt), ("tokenizer_config.json", &f.tokenizer_config_json)]
                    .into_iter()
                    .filter_map(|(n, b)| b.as_deref().map(|b| (n, b)))
                    .collect();
            let config = f.config_json.as_deref().ok_or("the model's config.json is missing")?;
            let files = export_folder(&m.params, &m.labels, config, &tokenizer).map_err(|e| e.to_string())?;
            Ok(Reply::ModelExported { files: files.into_iter().map(|(name, bytes)| ExportedFile { name, bytes }).collect() })
        }
    }
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

/// "Try it": a fine-tuned model alone on a text (or a pair), as its task
/// reads it; or a head on the loaded model's features of a pair (refused,
/// with both models named, when the head was trained on another).
/// A token of the explorer's sentences across every layer: its similarity to
/// the same token elsewhere at each, and its nearest tokens at `layer`.
pub async fn word_in_context(mut texts: Vec<String>, at: TokenAt, layer: Option<usize>) -> Result<WordInContext, String> {
    let engine = engine()?;
    let mut engine = engine.lock().await;
    texts.truncate(MAX_SENTENCES);
    let inputs: Vec<Input> = texts.iter().map(|t| Input::Single(t.clone())).collect();
    let batch = engine.tokenize(&inputs, None).map_err(|e| e.to_string())?;
    let (h, layers) = (engine.config.hidden_size, engine.config.num_hidden_layers);
    let floats = (layers + 1) * batch.batch_size * batch.seq_len * h;
    if floats > MAX_LAYER_FLOATS {
        return Err(format!(
            "every layer of these sentences would take {} MB (at most {}): fewer or shorter sentences",
            (floats * 4) >> 20,
            (MAX_LAYER_FLOATS * 4) >> 20
        ));
    }
    let keep = Keep { attentions: AttentionRequest::None, hidden_states: true };
    let out = engine.forward(&batch, keep).await.map_err(|e| e.to_string())?;
    let states = out.hidden_states.ok_or("the forward kept no layers")?;
    let layer = layer.unwrap_or(layers).min(layers);
    analysis::word_in_context(&states, batch.seq_len, h, &batch.tokens, at, layer, NEAREST)
        .ok_or_else(|| "that token is no longer among the sentences".to_string())
}

/// How many nearest tokens "a word in context" lists.
const NEAREST: usize = 10;

/// Every `[MASK]`'s top `top_k`, with attention free, then limited to the left, then to the right.
pub async fn fill_mask(text: String, top_k: usize) -> Result<MaskedWord, String> {
    let engine = engine()?;
    let mut engine = engine.lock().await;
    let e = &mut *engine;
    let both = mlm::fill_mask(e, &text, top_k, Sees::Both).await.map_err(|e| e.to_string())?;
    let left = mlm::fill_mask(e, &text, top_k, Sees::Left).await.map_err(|e| e.to_string())?;
    let right = mlm::fill_mask(e, &text, top_k, Sees::Right).await.map_err(|e| e.to_string())?;
    Ok(MaskedWord { both, left, right })
}

pub async fn predict(text: String, pair: Option<String>, max_len: usize) -> Result<Prediction, String> {
    let head = match TRAINED.with(|t| t.borrow().clone()).ok_or("train or import a head first")? {
        Trained::Head(head) => head,
        Trained::Model(m) => return predict_with(&m, text, pair, max_len),
    };
    let pair = pair.ok_or("this head reads sentence pairs: give a second sentence")?;
    let engine = engine()?;
    let mut engine = engine.lock().await;
    head.check_model(engine.identity()).map_err(|e| e.to_string())?;
    let example = [Example { label: 0, sentence1: text, sentence2: pair }];
    let x = extract_features(&mut engine, &example, head.spec.input, max_len, 1, &mut |_, _| {}).await.map_err(|e| e.to_string())?;
    let mut backend = HeadBackend::new(head.spec, head.params, None);
    let p = backend.predict(&x, 1).await.map_err(|e| e.to_string())?;
    Ok(Prediction::Classes(Labels::mrpc().names().iter().cloned().zip(p).collect()))
}

fn predict_with(m: &TunedModel, text: String, pair: Option<String>, max_len: usize) -> Result<Prediction, String> {
    let logits = |batch: &bertlab::Batch| forward(CpuMath::Fast, &m.params, batch, TrainLayers::All, None, None).logits;
    if m.params.kind == HeadKind::Tokens {
        let words = words_of(&text);
        let (ids, word_ids) = m.tokenizer.encode_words(&words, max_len, "the text").map_err(|e| e.to_string())?;
        let batch = bertlab::Batch::from_rows(vec![(ids.clone(), vec![0; ids.len()])], m.params.bert.config.pad_token_id)
            .map_err(|e| e.to_string())?;
        let l = logits(&batch);
        let names = m.labels.names();
        let classes = m.params.outputs();
        // each word's tag: its first WordPiece's argmax
        let tags: Vec<Option<String>> = (0..words.len())
            .map(|w| {
                let t = word_ids.iter().position(|&id| id == Some(w as u32))?;
                let row = &l[t * classes..][..classes];
                let best = row.iter().enumerate().fold(0, |b, (c, &v)| if v > row[b] { c } else { b });
                names.get(best).cloned()
            })
            .collect();
        let tagged: Vec<&str> = tags.iter().map(|t| t.as_deref().unwrap_or("O")).collect();
        let entities = bertlab::task::metrics::entities(&tagged);
        return Ok(Prediction::Tags { words, tags, entities });
    }
    let input = match pair {
        Some(p) if !p.trim().is_empty() => Input::Pair(text, p),
        _ => Input::Single(text),
    };
    let batch = m.tokenizer.encode_batch_to(&[input], max_len).map_err(|e| e.to_string())?;
    let l = logits(&batch);
    Ok(match &m.labels {
        Labels::Regression => Prediction::Value(l[0]),
        Labels::Classes(names) => Prediction::Classes(names.iter().cloned().zip(softmax_rows(&l, names.len())).collect()),
    })
}
