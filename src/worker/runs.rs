//! Fine-tuning runs in the engine worker: one at a time (enforced here, not
//! by the page's buttons), each owning the engine it started on from its first encoded
//! pair to its last step. The run drives itself and reports [`RunEvent`]s;
//! the page only asks it to start, pause, stop or resume. Loading another
//! model pauses a training run (saved, to resume when that model is back) and
//! stops one that is still encoding. A run trains a head on encoded features
//! (MRPC's pairs, on the engine's device) or BERT's layers with the task's
//! head (on the engine's GPU, or the CPU path; from the loaded model's weights).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

use bertlab::browser::yield_now;
use bertlab::classifier::math::CpuMath;
use bertlab::classifier::{ClassifierParams, Labels};
use bertlab::finetune::encoded::Encoded;
use bertlab::finetune::features::extract_features;
use bertlab::finetune::model_training::ModelTraining;
use bertlab::finetune::progress::Progress;
use bertlab::finetune::training::{Event, HeadBackend, RunSetup, Split, Training};
use bertlab::finetune::TrainConfig;
use bertlab::glue::Example;
use bertlab::head::HeadSpec;
use bertlab::protocol::{PauseReason, RunEnd, RunEvent, RunRecord, RunRequest, SplitName};
use bertlab::task::{Examples, Target, Task, TaskKind};
use bertlab::tokenize::BertTokenizer;
use bertlab::{Model, ModelFiles};
use wasm_bindgen_futures::spawn_local;

use crate::engine_service::{self, SharedEngine, TunedModel};
use crate::run_store::{self, RunData};

pub type Sink = Rc<dyn Fn(RunEvent)>;

/// What a run trains.
enum Trainer {
    Head(Box<Training>),
    /// With the files and tokenizer of the model it started from (to export, and to tokenize "Try it").
    Model(Box<ModelTraining>, Rc<ModelFiles>, Rc<BertTokenizer>),
}

impl Trainer {
    fn progress(&self) -> &Progress {
        match self {
            Trainer::Head(t) => &t.progress,
            Trainer::Model(t, ..) => &t.progress,
        }
    }

    fn total_steps(&self) -> usize {
        match self {
            Trainer::Head(t) => t.total_steps(),
            Trainer::Model(t, ..) => t.total_steps(),
        }
    }

    fn describe(&self) -> String {
        match self {
            Trainer::Head(t) => t.backend.describe(),
            Trainer::Model(t, ..) => format!("{}: {}", if t.on_device() { "GPU" } else { "CPU" }, t.train_layers.describe()),
        }
    }

    async fn advance(&mut self) -> bertlab::Result<Event> {
        match self {
            Trainer::Head(t) => t.advance().await,
            Trainer::Model(t, ..) => t.advance().await,
        }
    }

    async fn checkpoint(&mut self) -> bertlab::Result<Vec<u8>> {
        match self {
            Trainer::Head(t) => t.checkpoint().await,
            Trainer::Model(t, ..) => t.checkpoint().await,
        }
    }

    /// Makes what was trained so far the one "Try it" and Export use.
    async fn publish(&mut self) {
        match self {
            Trainer::Head(t) => {
                if let Ok(head) = t.head().await {
                    engine_service::set_head(head);
                }
            }
            Trainer::Model(t, files, tokenizer) => {
                let labels = t.labels.clone();
                if let Ok(params) = t.params().await {
                    let (params, files, tokenizer) = (params.clone(), files.clone(), tokenizer.clone());
                    engine_service::set_model(TunedModel { params, labels, files, tokenizer });
                }
            }
        }
    }
}

/// The running run's controls.
#[derive(Default)]
struct Controls {
    pause: Cell<Option<PauseReason>>,
    stop: Cell<bool>,
}

/// A run between a pause and its resume, still in memory.
struct Paused {
    training: Trainer,
    stored: Stored,
    engine: SharedEngine,
    /// Its last checkpoint made it to storage (so it can be let go).
    saved: bool,
}

thread_local! {
    static ACTIVE: RefCell<Option<Rc<Controls>>> = const { RefCell::new(None) };
    static PAUSED: RefCell<Option<Paused>> = const { RefCell::new(None) };
    /// Encoded splits by model, input, length, data and split: a second run trains at once.
    static FEATURES: RefCell<HashMap<String, Vec<f32>>> = RefCell::new(HashMap::new());
}

/// Why a head on frozen features refuses a task.
const HEAD_TASKS: &str = "a head on frozen features learns sentence pairs of two classes (MRPC's): fine-tune BERT's layers for this task";

/// A task's examples as MRPC pairs, when they are pairs of two classes.
fn mrpc_pairs(e: &Examples) -> Option<Vec<Example>> {
    let Examples::Texts(e) = e else { return None };
    e.iter()
        .map(|x| match (&x.pair, x.target) {
            (Some(p), Target::Class(y @ (0 | 1))) => Some(Example { label: y as u8, sentence1: x.text.clone(), sentence2: p.clone() }),
            _ => None,
        })
        .collect()
}

/// The score a task's runs are judged by, as `Metrics::headline` names it.
fn score_name(task: &Task) -> &'static str {
    match (task.kind, &task.labels) {
        (TaskKind::Words, _) => "entity F1",
        (_, Labels::Regression) => "Spearman",
        _ => "accuracy",
    }
}

/// Whether a run holds the slot (encoding or training).
pub fn busy() -> bool {
    ACTIVE.with(|a| a.borrow().is_some())
}

/// Claims the one run slot.
fn claim() -> Result<Rc<Controls>, String> {
    ACTIVE.with(|a| {
        let mut a = a.borrow_mut();
        if a.is_some() {
            return Err("a run is already in progress: pause or stop it first".into());
        }
        let c = Rc::new(Controls::default());
        *a = Some(c.clone());
        Ok(c)
    })
}

fn release() {
    ACTIVE.with(|a| *a.borrow_mut() = None);
}

pub fn pause() {
    ACTIVE.with(|a| a.borrow().as_ref().map(|c| c.pause.set(Some(PauseReason::Asked))));
}

/// Stops the running run, or ends the paused one.
pub fn stop(sink: Sink) {
    if busy() {
        ACTIVE.with(|a| a.borrow().as_ref().map(|c| c.stop.set(true)));
    } else if let Some(p) = PAUSED.with(|p| p.borrow_mut().take()) {
        spawn_local(async move {
            finish(p.training, p.stored, RunEnd::Stopped, &sink).await;
            sink(RunEvent::Stopped(None));
        });
    }
}

/// Called when another model is loaded: a running run pauses (or stops, if
/// still encoding); a paused one that is saved is let go with its engine.
pub fn model_changed() {
    ACTIVE.with(|a| a.borrow().as_ref().map(|c| c.pause.set(Some(PauseReason::ModelChanged))));
    PAUSED.with(|p| {
        let mut p = p.borrow_mut();
        if p.as_ref().is_some_and(|p| p.saved) {
            *p = None;
        }
    });
}

/// Encodes one split in chunks, yielding to the page between them.
async fn encode(
    engine: &SharedEngine,
    controls: &Controls,
    key: String,
    split: SplitName,
    examples: &[Example],
    c: &TrainConfig,
    sink: &Sink,
) -> Result<Vec<f32>, RunEvent> {
    if let Some(f) = FEATURES.with(|f| f.borrow().get(&key).cloned()) {
        return Ok(f);
    }
    let start = web_time::Instant::now();
    let chunk = c.per_device_eval_batch_size.max(1);
    let mut out = Vec::new();
    let mut done = 0;
    for part in examples.chunks(chunk) {
        if controls.stop.get() {
            return Err(RunEvent::Stopped(None));
        }
        if controls.pause.get() == Some(PauseReason::ModelChanged) {
            return Err(RunEvent::Stopped(Some("another model was loaded while the run was encoding its data".into())));
        }
        let mut engine = engine.lock().await;
        let f = extract_features(&mut engine, part, c.head_input, c.max_seq_length, chunk, &mut |_, _| {}).await;
        out.extend(f.map_err(|e| RunEvent::Failed(e.to_string()))?);
        drop(engine);
        done += part.len();
        let per_s = done as f64 / start.elapsed().as_secs_f64().max(1e-3);
        sink(RunEvent::Encoding { split, done, total: examples.len(), per_s });
        yield_now().await;
    }
    FEATURES.with(|f| f.borrow_mut().insert(key, out.clone()));
    Ok(out)
}

/// Encodes the data on the loaded engine and trains. Refused while another run is in progress.
pub fn start(req: RunRequest, sink: Sink) -> Result<(), String> {
    let engine = engine_service::engine()?;
    req.config.validate().map_err(|e| e.to_string())?;
    let controls = claim()?;
    // a new run replaces a paused one in memory (it stays saved)
    PAUSED.with(|p| *p.borrow_mut() = None);
    spawn_local(async move {
        match prepare(&engine, &controls, req, &sink).await {
            Ok((training, record)) => run(training, record, engine, controls, sink).await,
            Err(event) => {
                release();
                sink(event);
            }
        }
    });
    Ok(())
}

/// A run's record, and why the run cannot be saved, if its start could not
/// be (its features did not fit): then no later checkpoint is written either,
/// so storage never holds half a run.
struct Stored {
    record: RunRecord,
    refused: Option<String>,
}

/// Sets a run up and saves it as a new run: a head's data encoded first, or
/// the pairs tokenized for a run that trains BERT's layers.
async fn prepare(engine: &SharedEngine, controls: &Controls, req: RunRequest, sink: &Sink) -> Result<(Trainer, Stored), RunEvent> {
    let c = req.config.clone();
    let (identity, gpu) = {
        let e = engine.lock().await;
        (e.identity().clone(), e.gpu_context().cloned())
    };
    let failed = |e: bertlab::Error| RunEvent::Failed(e.to_string());
    let task = &req.task;
    // BERT's layers start from the loaded model's weights (parsed again from its files: the engine keeps them packed)
    let base = if c.trains_layers() {
        let files = engine_service::loaded().map_err(RunEvent::Failed)?.1;
        let model = Model::from_files(&files).map_err(failed)?;
        Some((ClassifierParams::new(model.weights, task.head(), task.labels.outputs(), c.seed), files, Rc::new(model.tokenizer)))
    } else {
        None
    };
    let (data, checkpoint_bytes) = match &base {
        Some((params, _, tokenizer)) => {
            let encode = |e: &Examples| Encoded::encode(tokenizer, e, c.max_seq_length).map_err(failed);
            let (train, eval) = (encode(&req.train)?, encode(&req.dev)?);
            // a checkpoint holds each trained value three times (value and two moments)
            (RunData::Encoded { train, eval }, params.counts(c.train_layers).1 as f64 * 12.0)
        }
        None => {
            // a head on frozen features learns sentence pairs of two classes (MRPC's)
            let pairs = |e: &Examples| mrpc_pairs(e).ok_or_else(|| RunEvent::Failed(HEAD_TASKS.into()));
            let (train_pairs, dev_pairs) = (pairs(&req.train)?, pairs(&req.dev)?);
            let labels = |e: &[Example]| e.iter().map(|x| u32::from(x.label)).collect::<Vec<u32>>();
            let key = |split: &str, n: usize| {
                format!("{}|{:?}|{}|{}|{split}|{n}", identity.fingerprint, c.head_input, c.max_seq_length, req.data)
            };
            let train_x = encode(engine, controls, key("train", train_pairs.len()), SplitName::Train, &train_pairs, &c, sink).await?;
            let dev_x = encode(engine, controls, key("dev", dev_pairs.len()), SplitName::Validation, &dev_pairs, &c, sink).await?;
            let train = Split { x: train_x, labels: labels(&train_pairs) };
            (RunData::Features { train, eval: Split { x: dev_x, labels: labels(&dev_pairs) } }, 0.0)
        }
    };
    let record = RunRecord {
        id: run_store::new_id(),
        created_ms: js_sys::Date::now(),
        model: identity.clone(),
        config: c.clone(),
        data: req.data,
        train_pairs: req.train.len(),
        step: 0,
        total_steps: c.total_steps(req.train.len()),
        best_score: None,
        score_name: score_name(task).into(),
        ended: None,
    };
    let refused = run_store::save_new(&record, &data, checkpoint_bytes).await.err();
    let trainer = match (data, base) {
        (RunData::Encoded { train, eval }, Some((params, files, tokenizer))) => {
            let labels = task.labels.clone();
            let mut t = ModelTraining::new(record.id.clone(), identity, params, labels, c, CpuMath::Fast, train, eval).map_err(failed)?;
            // on the engine's GPU when it has one (the whole model trains there in minutes, not hours)
            if let Some(ctx) = gpu {
                t = t.on_gpu(ctx).map_err(failed)?;
            }
            Trainer::Model(Box::new(t), files, tokenizer)
        }
        (RunData::Features { train, eval }, _) => {
            let spec = HeadSpec { input: c.head_input, in_dim: c.head_input.width(identity.hidden_size), hidden: c.mlp_hidden, classes: 2 };
            let initial = spec.init(c.seed);
            let setup = RunSetup { run_id: record.id.clone(), model: identity, config: c, spec };
            let backend = HeadBackend::new(spec, initial.clone(), gpu);
            Trainer::Head(Box::new(Training::new(setup, backend, initial, train, eval).map_err(failed)?))
        }
        (RunData::Encoded { .. }, None) => return Err(RunEvent::Failed("a run of BERT's layers without its model".into())),
    };
    Ok((trainer, Stored { record, refused }))
}

/// Continues the run paused in memory.
pub fn resume(sink: Sink) -> Result<(), String> {
    let controls = claim()?;
    let Some(p) = PAUSED.with(|p| p.borrow_mut().take()) else {
        release();
        return Err("no paused run".into());
    };
    spawn_local(run(p.training, p.stored, p.engine, controls, sink));
    Ok(())
}

/// Continues a saved run (after a reload), on the loaded model, which must be the run's.
pub fn resume_saved(id: String, sink: Sink) -> Result<(), String> {
    let engine = engine_service::engine()?;
    let controls = claim()?;
    PAUSED.with(|p| *p.borrow_mut() = None);
    spawn_local(async move {
        let resumed = async {
            let (record, data, checkpoint) = run_store::load(&id).await?;
            let (identity, gpu) = {
                let e = engine.lock().await;
                (e.identity().clone(), e.gpu_context().cloned())
            };
            record.model.check_loaded("this run", &identity).map_err(|e| e.message().to_string())?;
            let t = match data {
                RunData::Features { train, eval } => {
                    Trainer::Head(Box::new(Training::resume(&checkpoint, gpu, train, eval).await.map_err(|e| e.to_string())?))
                }
                RunData::Encoded { train, eval } => {
                    let files = engine_service::loaded()?.1;
                    let base = Model::from_files(&files).map_err(|e| e.to_string())?;
                    let mut t = ModelTraining::resume(&checkpoint, &identity.name, base.weights, CpuMath::Fast, train, eval)
                        .map_err(|e| e.to_string())?;
                    if let Some(ctx) = gpu {
                        t = t.on_gpu(ctx).map_err(|e| e.to_string())?;
                    }
                    Trainer::Model(Box::new(t), files, Rc::new(base.tokenizer))
                }
            };
            Ok::<_, String>((t, record))
        };
        match resumed.await {
            Ok((t, record)) => run(t, Stored { record, refused: None }, engine, controls, sink).await,
            Err(e) => {
                release();
                sink(RunEvent::Failed(e));
            }
        }
    });
    Ok(())
}

/// Saves the checkpoint and the record, and says how that went.
async fn save(training: &mut Trainer, stored: &mut Stored, sink: &Sink) -> bool {
    if let Some(why) = &stored.refused {
        sink(RunEvent::NotSaved(why.clone()));
        return false;
    }
    let record = &mut stored.record;
    record.step = training.progress().step;
    record.best_score = training.progress().metrics.iter().map(|m| m.headline().1).reduce(f64::max);
    let saved = match training.checkpoint().await {
        Ok(bytes) => run_store::save_checkpoint(record, &bytes).await,
        Err(e) => Err(e.to_string()),
    };
    match saved {
        Ok(()) => {
            sink(RunEvent::Saved { step: training.progress().step, total: training.total_steps() });
            true
        }
        Err(e) => {
            sink(RunEvent::NotSaved(e));
            false
        }
    }
}

/// Ends a run: what it trained becomes what "Try it" and Export use, its record says how it ended.
async fn finish(mut training: Trainer, mut stored: Stored, end: RunEnd, sink: &Sink) {
    training.publish().await;
    stored.record.ended = Some(end);
    save(&mut training, &mut stored, sink).await;
}

/// Trains until done, paused, stopped or failed, saving at every epoch's end.
async fn run(mut training: Trainer, mut stored: Stored, engine: SharedEngine, controls: Rc<Controls>, sink: Sink) {
    let device = training.describe();
    sink(RunEvent::Training {
        record: Box::new(stored.record.clone()),
        device,
        losses: training.progress().losses.clone(),
        metrics: training.progress().metrics.clone(),
    });
    // the worker also answers the explorer: let its requests in every few milliseconds
    // (a head's steps take microseconds, a step of BERT's layers seconds)
    let mut last_yield = web_time::Instant::now();
    let mut losses = Vec::new();
    // the steps' losses go out with the next yield or before any other event
    let flush = |losses: &mut Vec<f32>| {
        if !losses.is_empty() {
            sink(RunEvent::Steps { losses: std::mem::take(losses) });
        }
    };
    let end = loop {
        if controls.stop.get() {
            break RunEvent::Stopped(None);
        }
        if let Some(reason) = controls.pause.get() {
            flush(&mut losses);
            let saved = save(&mut training, &mut stored, &sink).await;
            training.publish().await;
            // a model change lets a saved run go (its engine with it); otherwise it waits in memory
            let in_memory = !(reason == PauseReason::ModelChanged && saved);
            if in_memory {
                PAUSED.with(|p| *p.borrow_mut() = Some(Paused { training, stored, engine, saved }));
            }
            release();
            sink(RunEvent::Paused { why: reason, in_memory });
            return;
        }
        match training.advance().await {
            Ok(Event::Step { loss, .. }) => losses.push(loss),
            Ok(Event::Epoch { metrics, .. }) => {
                flush(&mut losses);
                sink(RunEvent::Epoch { metrics });
                save(&mut training, &mut stored, &sink).await;
            }
            Ok(Event::Done) => break RunEvent::Done,
            Err(e) => break RunEvent::Failed(e.to_string()),
        }
        if last_yield.elapsed().as_millis() >= 20 {
            flush(&mut losses);
            yield_now().await;
            last_yield = web_time::Instant::now();
        }
    };
    flush(&mut losses);
    let how = match end {
        RunEvent::Done => RunEnd::Done,
        RunEvent::Stopped(_) => RunEnd::Stopped,
        _ => RunEnd::Failed,
    };
    finish(training, stored, how, &sink).await;
    drop(engine);
    release();
    sink(end);
}
