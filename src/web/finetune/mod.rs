//! The Fine-tune page: MRPC (or the user's TSV), what trains (a head on
//! frozen features, BERT's top layers, or the whole model) with each
//! choice's time and memory, the Trainer's hyper-parameters, a run with
//! encoding progress, a live loss curve and per-epoch validation,
//! pause/resume (also across a reload, from the saved runs), "Try it", and
//! export (a head, or a Hugging Face folder) and import of a head.

mod data;
mod state;

use bertlab::classifier::cost::{forward_units, training_bytes};
use bertlab::classifier::TrainLayers;
use bertlab::finetune::{majority_metrics, Metrics, Scores, TrainConfig};
use bertlab::head::HeadInput;
use leptos::prelude::*;
use leptos::task::spawn_local;

use bertlab::browser::storage::megabytes;
use bertlab::protocol::{PauseReason, Prediction, Reply, Request, RunEnd, SplitName};
use bertlab::task::TaskKind;

use crate::chart::LossChart;
use crate::client;
use crate::fetch;
use crate::loader::LoaderState;
use data::DataPanel;
pub use state::Ft;
use state::{SaveState, Status};

#[component]
pub fn FinetunePage(loader: LoaderState, #[prop(into)] active: Signal<bool>) -> impl IntoView {
    let ft = Ft::new();
    ft.listen();
    ft.refresh_runs();
    // the speed behind the estimate: measured once per loaded model, when the tab is first open on it
    let measured = StoredValue::new(0u32);
    Effect::new(move |_| {
        let positions = loader.info.with(|i| i.as_ref().map(|i| i.max_positions));
        let version = loader.version.get();
        if let (true, Some(positions)) = (active.get(), positions) {
            if version > 0 && measured.get_value() != version && !ft.status.with_untracked(Status::busy) {
                measured.set_value(version);
                ft.measure_speed(positions);
            }
        }
    });
    view! {
        <div class="finetune">
            <DataPanel ft=ft/>
            <ParamsPanel ft=ft loader=loader/>
            <Controls ft=ft loader=loader/>
            <SavedRuns ft=ft loader=loader/>
            <ResultsPanel ft=ft/>
            <TryIt ft=ft/>
        </div>
    }
}

/// One hyper-parameter field: its Trainer name, how it reads from the
/// config, and how text sets it (or why it cannot).
struct Field {
    name: &'static str,
    id: &'static str,
    get: fn(&TrainConfig) -> String,
    set: fn(&mut TrainConfig, &str) -> Result<(), String>,
}

fn parse<T: std::str::FromStr>(v: &str, what: &str) -> Result<T, String> {
    v.parse().map_err(|_| what.to_string())
}

/// A finite number inside `range` (its name says which ends are open).
fn real(v: &str, example: &str, range: (&str, fn(f32) -> bool)) -> Result<f32, String> {
    let x: f32 = parse(v, &format!("a number, e.g. {example}"))?;
    if x.is_finite() && (range.1)(x) {
        Ok(x)
    } else {
        Err(format!("a number in {}", range.0))
    }
}

fn count(v: &str, min: usize, max: usize) -> Result<usize, String> {
    let n: usize = parse(v, "a whole number")?;
    if (min..=max).contains(&n) {
        Ok(n)
    } else {
        Err(format!("between {min} and {max}"))
    }
}

const FIELDS: [Field; 10] = [
    Field {
        name: "learning_rate",
        id: "lr",
        get: |c| c.learning_rate.to_string(),
        set: |c, v| real(v, "1e-3", ("(0, 1]", |x| x > 0.0 && x <= 1.0)).map(|x| c.learning_rate = x),
    },
    Field {
        name: "per_device_train_batch_size",
        id: "train-bs",
        get: |c| c.per_device_train_batch_size.to_string(),
        set: |c, v| count(v, 1, 4096).map(|n| c.per_device_train_batch_size = n),
    },
    Field {
        name: "gradient_accumulation_steps",
        id: "accumulate",
        get: |c| c.gradient_accumulation_steps.to_string(),
        set: |c, v| count(v, 1, 1024).map(|n| c.gradient_accumulation_steps = n),
    },
    Field {
        name: "per_device_eval_batch_size",
        id: "eval-bs",
        get: |c| c.per_device_eval_batch_size.to_string(),
        set: |c, v| count(v, 1, 4096).map(|n| c.per_device_eval_batch_size = n),
    },
    Field {
        name: "num_train_epochs",
        id: "epochs",
        get: |c| c.num_train_epochs.to_string(),
        set: |c, v| count(v, 1, 1000).map(|n| c.num_train_epochs = n),
    },
    Field {
        name: "weight_decay",
        id: "wd",
        get: |c| c.weight_decay.to_string(),
        set: |c, v| real(v, "0.01", ("[0, 1]", |x| (0.0..=1.0).contains(&x))).map(|x| c.weight_decay = x),
    },
    Field {
        name: "warmup_steps",
        id: "warmup",
        get: |c| c.warmup_steps.to_string(),
        set: |c, v| count(v, 0, 1_000_000).map(|n| c.warmup_steps = n),
    },
    Field {
        name: "max_seq_length",
        id: "max-len",
        get: |c| c.max_seq_length.to_string(),
        set: |c, v| count(v, bertlab::tokenize::MIN_LEN, 512).map(|n| c.max_seq_length = n),
    },
    Field { name: "seed", id: "seed", get: |c| c.seed.to_string(), set: |c, v| parse(v, "a whole number").map(|n| c.seed = n) },
    Field {
        name: "head: 0 = Linear, N = MLP width",
        id: "mlp",
        get: |c| c.mlp_hidden.to_string(),
        set: |c, v| count(v, 0, 4096).map(|n| c.mlp_hidden = n),
    },
];

/// The memory a run may hold in a tab: wasm32 addresses 4 GB, the rest of the page needs room.
const TAB_MEMORY: f64 = 3e9;

/// Seconds as people read them.
fn duration(s: f64) -> String {
    match s {
        s if s < 90.0 => format!("{s:.0} s"),
        s if s < 5400.0 => format!("{:.0} min", s / 60.0),
        s => format!("{:.1} h", s / 3600.0),
    }
}

/// A run's time at the measured speed (`ms` per pair forward), or nothing before it is measured.
fn run_time(ft: Ft, t: TrainLayers, layers: usize) -> Option<String> {
    let d = ft.data.get()?;
    let ms = ft.speed.with(|s| s.as_ref().map(|s| if t == TrainLayers::Top(0) { s.all_threads_ms } else { s.one_thread_ms }))?;
    let limit = match ft.train_limit.get() {
        0 => usize::MAX,
        n => n,
    };
    let c = ft.config.get();
    let units = forward_units(t, layers, d.task.train.len().min(limit), d.task.eval.len(), c.num_train_epochs);
    Some(duration(units * ms / 1e3))
}

#[component]
fn ParamsPanel(ft: Ft, loader: LoaderState) -> impl IntoView {
    let c = ft.config;
    let layers = Memo::new(move |_| loader.info.with(|i| i.as_ref().map_or(6, |i| i.layers)));
    // What each loaded model suggests: the whole model on a GPU; on the CPU
    // path the top 2 layers (a whole-model run there takes hours), which for
    // a model of 2 layers or fewer is the whole model.
    let on_gpu = Memo::new(move |_| loader.info.with(|i| i.as_ref().map(|i| i.on_gpu)));
    Effect::new(move |_| {
        let (l, gpu) = (layers.get(), on_gpu.get());
        if gpu.is_none() {
            return;
        }
        let suggested = if gpu == Some(true) || l <= 2 { TrainLayers::All } else { TrainLayers::Top(2) };
        if c.get_untracked().trains_layers() {
            ft.set_train_layers(suggested);
        }
    });
    // a head on frozen features learns sentence pairs of two classes (MRPC's); other tasks train layers
    let head_fits = Memo::new(move |_| {
        ft.data.with(|d| {
            d.as_ref().is_none_or(|d| d.task.task.kind == TaskKind::Texts { pair: true } && d.task.task.labels.names().len() == 2)
        })
    });
    Effect::new(move |_| {
        if !head_fits.get() && !c.get_untracked().trains_layers() {
            let l = layers.get_untracked();
            ft.set_train_layers(if on_gpu.get_untracked() == Some(true) || l <= 2 { TrainLayers::All } else { TrainLayers::Top(2) });
        }
    });
    let choices = move || {
        let l = layers.get();
        let head = head_fits.get().then_some(TrainLayers::Top(0));
        head.into_iter().chain((1..l).map(TrainLayers::Top)).chain([TrainLayers::All]).collect::<Vec<_>>()
    };
    let value = |t: TrainLayers| match t {
        TrainLayers::All => "all".to_string(),
        TrainLayers::Top(k) => k.to_string(),
    };
    let field = move |i: usize| {
        let f = &FIELDS[i];
        let error = Memo::new(move |_| ft.invalid.with(|m| m.get(FIELDS[i].id).cloned()));
        let message_id = format!("{}-error", f.id);
        view! {
            <label class="param">{f.name}
                <input type="text" inputmode="decimal" data-testid=f.id aria-describedby=message_id.clone()
                    aria-invalid=move || error.get().is_some().to_string()
                    // BERT's layers train BertForSequenceClassification's Linear head
                    disabled=move || FIELDS[i].id == "mlp" && c.get().trains_layers()
                    prop:value=move || (FIELDS[i].get)(&c.get())
                    on:input=move |ev| {
                        let v = event_target_value(&ev);
                        let mut next = c.get_untracked();
                        match (FIELDS[i].set)(&mut next, v.trim()) {
                            Ok(()) => {
                                ft.invalid.update(|m| { m.remove(FIELDS[i].id); });
                                c.set(next);
                            }
                            Err(e) => ft.invalid.update(|m| { m.insert(FIELDS[i].id, e); }),
                        }
                    }/>
                <span class="field-error" id=message_id role="alert" data-testid=format!("{}-error", f.id)>
                    {move || error.get().map(|e| format!("{}: {e}", FIELDS[i].name))}
                </span>
            </label>
        }
    };
    view! {
        <section class="panel" aria-label="Hyper-parameters">
            <h2>"Hyper-parameters "<small>"(transformers' Trainer names)"</small></h2>
            <div class="params">
                <label class="param what-trains">"what trains"
                    <select data-testid="train-layers" on:change=move |ev| {
                        if let Ok(t) = TrainLayers::parse(&event_target_value(&ev), layers.get_untracked()) { ft.set_train_layers(t) }
                    }>
                        {move || choices().into_iter().map(|t| view! {
                            <option value=value(t) selected=move || c.get().train_layers == t>
                                {move || format!("{}{}", t.describe(), run_time(ft, t, layers.get()).map(|d| format!(" · ≈ {d}")).unwrap_or_default())}
                            </option>
                        }).collect_view()}
                    </select>
                </label>
                {(0..FIELDS.len()).map(field).collect_view()}
                <label class="param">"head input"
                    <select data-testid="head-input" disabled=move || c.get().trains_layers() on:change=move |ev| { let v = event_target_value(&ev); c.update(|c| if let Some(h) = HeadInput::parse(&v) { c.head_input = h }) }>
                        {HeadInput::ALL.map(|h| view! {
                            <option value=h.name() selected=move || c.get().head_input == h>{match h {
                                HeadInput::Pooler => "pooler output (BertForSequenceClassification)",
                                HeadInput::Cls => "[CLS] hidden state",
                                HeadInput::Mean => "mean of the pair's tokens",
                                HeadInput::PairFeatures => "pair features [u, v, |u−v|, u·v]",
                            }}</option>
                        }).into_iter().collect_view()}
                    </select>
                </label>
                <label class="param">"train on the first N examples (0 = all)"
                    <input type="text" inputmode="numeric" data-testid="train-limit" prop:value=move || ft.train_limit.get().to_string()
                        aria-invalid=move || ft.invalid.with(|m| m.contains_key("train-limit")).to_string()
                        on:input=move |ev| match event_target_value(&ev).trim().parse() {
                            Ok(n) => { ft.invalid.update(|m| { m.remove("train-limit"); }); ft.train_limit.set(n) }
                            Err(_) => ft.invalid.update(|m| { m.insert("train-limit", "a whole number".into()); }),
                        }/>
                    <span class="field-error" role="alert">{move || ft.invalid.with(|m| m.get("train-limit").map(|e| format!("train limit: {e}")))}</span>
                </label>
            </div>
            <p class="hint">{move || if c.get().trains_layers() {
                "BERT's layers train with the task's head (BertForSequenceClassification: pooler → dropout → Linear; BertForTokenClassification: dropout → Linear on every token), dropout from config.json, the Trainer's AdamW (no decay on biases and LayerNorm weights), gradients clipped to norm 1 and the linear schedule: the Trainer's 2e-5 is the learning rate to start from. On this tab's CPU path every layer costs minutes per epoch; the top two are the suggested start."
            } else {
                "The encoder stays frozen: only the head trains, so the default learning rate is 1e-3 (the Trainer's 2e-5 is meant for the whole model and leaves a head at the majority class)."
            }}</p>
            <Estimate ft=ft loader=loader/>
        </section>
    }
}

/// What Start will do and about how long it takes, before it is pressed:
/// the pairs a head encodes once, or the steps and memory of a run that
/// trains BERT's layers, at the speed the engine just measured.
#[component]
fn Estimate(ft: Ft, loader: LoaderState) -> impl IntoView {
    view! {
        <p class="estimate" data-testid="estimate">{move || {
            let d = ft.data.get()?;
            let limit = match ft.train_limit.get() { 0 => usize::MAX, n => n };
            let pairs = d.task.train.len().min(limit) + d.task.eval.len();
            let c = ft.config.get();
            if c.trains_layers() {
                let info = loader.info.get()?;
                let steps = c.total_steps(d.task.train.len().min(limit));
                let config = bertlab::config::BertConfig {
                    vocab_size: info.vocab, hidden_size: info.hidden, num_hidden_layers: info.layers, num_attention_heads: info.heads,
                    max_position_embeddings: info.max_positions, intermediate_size: info.intermediate, ..bertlab::config::BertConfig::bert_base()
                };
                let memory = training_bytes(&config, c.train_layers, c.per_device_train_batch_size, c.max_seq_length.min(128));
                let backend = if info.on_gpu { "this tab's GPU" } else { "this tab's CPU path" };
                let time = run_time(ft, c.train_layers, info.layers).map(|t| format!(" ≈ {t} on {backend}")).unwrap_or_default();
                // a tab's WebAssembly memory ends at 4 GB, and the page and the explorer need some of it
                let too_big = if memory > TAB_MEMORY {
                    " That is more than a tab holds: lower per_device_train_batch_size and raise gradient_accumulation_steps (the same steps, one smaller batch in memory at a time)."
                } else {
                    ""
                };
                return Some(format!(
                    "Start trains {} for {steps} steps{time}, evaluating {} validation pairs each epoch; the run holds about {:.0} MB (weights, gradients, AdamW's moments, activations).{too_big}",
                    c.train_layers.describe(), d.task.eval.len(), memory / 1e6
                ));
            }
            // one forward per pair, or two when each sentence is encoded alone
            // the encoder's rows, as features.rs makes them (only pair features encode each sentence alone)
            let forwards = pairs * c.head_input.rows_per_pair();
            let steps = c.total_steps(d.task.train.len().min(limit));
            let speed = ft.speed.get().map(|speed| {
                let s = forwards as f64 * speed.all_threads_ms / 1e3;
                format!(" ≈ {} on {}", if s < 90.0 { format!("{s:.0} s") } else { format!("{:.0} min", s / 60.0) }, speed.backend)
            }).unwrap_or_default();
            Some(format!("Start first encodes {pairs} pairs once ({forwards} forward passes{speed}), then trains the head for {steps} steps (seconds)."))
        }}</p>
    }
}

#[component]
fn Controls(ft: Ft, loader: LoaderState) -> impl IntoView {
    let ready = move || loader.info.get().is_some() && ft.data.get().is_some() && !ft.busy() && ft.invalid.with(|m| m.is_empty());
    let paused_here = move || matches!(ft.status.get(), Status::Paused(_)) && ft.paused_in_memory.get();
    view! {
        <section class="panel controls" aria-label="Training">
            <div class="row">
                <button type="button" data-testid="start" disabled=move || !ready() on:click=move |_| ft.start()>"Start"</button>
                <button type="button" data-testid="pause" disabled=move || ft.status.get() != Status::Training
                    on:click=move |_| ft.pause()>"Pause"</button>
                <button type="button" data-testid="resume" disabled=move || !paused_here() on:click=move |_| ft.resume()>"Resume"</button>
                <button type="button" data-testid="stop" disabled=move || !ft.busy() && !paused_here()
                    on:click=move |_| ft.stop()>"Stop"</button>
            </div>
            <div data-testid="train-status" class="status">{move || match ft.status.get() {
                Status::Idle => "Ready.".to_string(),
                Status::Encoding { split, done, total, per_s } => format!(
                    "Encoding {} pairs: {done}/{total} · {per_s:.1} pairs/s · {:.0} s left",
                    match split { SplitName::Train => "train", SplitName::Validation => "validation" },
                    (total - done) as f64 / per_s.max(1e-9)),
                Status::Training => {
                    let total = ft.run.with(|r| r.as_ref().map_or(0, |r| r.total_steps));
                    let speed = ft.steps_per_s.get().map(|r| {
                        let left = total.saturating_sub(ft.losses.with(Vec::len)) as f64 / r.max(1e-9);
                        format!(" · {r:.2} steps/s · {} left", duration(left))
                    });
                    format!("Training on {}…{}", ft.device.get(), speed.unwrap_or_default())
                }
                Status::Paused(PauseReason::Asked) => "Paused.".into(),
                Status::Paused(PauseReason::ModelChanged) => format!(
                    "Paused: another model was loaded. The run is saved; load {} again and resume it from the saved runs.",
                    ft.run.get().map(|r| r.model.name).unwrap_or_default()),
                Status::Stopped(None) => "Stopped.".into(),
                Status::Stopped(Some(why)) => format!("Stopped: {why}."),
                Status::Done => "Done.".into(),
                Status::Failed(e) => format!("Stopped: {e}"),
            }}</div>
            {move || match ft.status.get() {
                Status::Encoding { done, total, .. } => view! { <progress data-testid="encode-progress" max=total.max(1) as f64 value=done as f64></progress> }.into_any(),
                _ => ().into_any(),
            }}
            {move || ft.save_state.get().map(|s| match s {
                SaveState::Saved { step, total } => view! { <p class="saved" data-testid="save-state">{format!("Saved in this browser at step {step} of {total}.")}</p> }.into_any(),
                SaveState::NotSaved(e) => view! { <p class="status error" role="alert" data-testid="save-state">{format!("Not saved: {e}")}</p> }.into_any(),
            })}
            {move || ft.message.get().map(|m| view! { <p class="notice" role="status" data-testid="run-message">{m}</p> })}
        </section>
    }
}

/// When a saved run was made, in the reader's own time zone.
fn local_time(ms: f64) -> String {
    js_sys::Date::new(&wasm_bindgen::JsValue::from_f64(ms)).to_locale_string("default", &wasm_bindgen::JsValue::UNDEFINED).into()
}

#[component]
fn SavedRuns(ft: Ft, loader: LoaderState) -> impl IntoView {
    let loaded = move || loader.info.get().map(|i| i.identity);
    view! {
        <section class="panel" aria-label="Saved runs">
            <h2>"Saved runs "<small data-testid="storage">{move || ft.storage.get().map(|e| format!(
                "(browser storage: {} used of {}{})", megabytes(e.used), megabytes(e.quota), if e.persisted { ", kept under pressure" } else { "" }))}</small></h2>
            {move || ft.saved_runs.get().is_empty().then(|| view! { <p class="hint">"Runs are saved here at every epoch and on Pause."</p> })}
            <ul class="runs" data-testid="saved-runs">
                <For each=move || ft.saved_runs.get() key=|r| (r.id.clone(), r.step, r.ended) let:r>
                    <li data-testid="saved-run" data-run-id=r.id.clone()>
                        <span>{format!(
                            "{} · {} · {} · lr {} · {} · step {} of {}{}",
                            local_time(r.created_ms), r.model.name,
                            if r.config.trains_layers() { r.config.train_layers.describe() } else {
                                format!("{} head on {}", if r.config.mlp_hidden == 0 { "Linear" } else { "MLP" }, r.config.head_input.name())
                            },
                            r.config.learning_rate, r.data, r.step, r.total_steps,
                            r.best_score.map(|a| format!(" · best {} {:.1}%", r.score_name, 100.0 * a)).unwrap_or_default(),
                        )}</span>
                        " "
                        <span class="run-end">{match r.ended {
                            None => "resumable",
                            Some(RunEnd::Done) => "done",
                            Some(RunEnd::Stopped) => "stopped",
                            Some(RunEnd::Failed) => "failed",
                        }}</span>
                        " "
                        {
                            let (id, other_model) = (r.id.clone(), r.model.clone());
                            let resumable = r.resumable();
                            view! {
                                <button type="button" data-testid="resume-run"
                                    title=move || loaded().filter(|m| !m.same_model(&other_model)).map(|_| format!("needs {} loaded", other_model.name)).unwrap_or_default()
                                    disabled=move || !resumable || ft.busy()
                                    on:click=move |_| ft.resume_saved(id.clone())>"Resume"</button>
                            }
                        }
                        {
                            let id = r.id.clone();
                            view! { <button type="button" data-testid="delete-run" disabled=move || ft.busy() on:click=move |_| ft.delete_saved(id.clone())>"Delete"</button> }
                        }
                    </li>
                </For>
            </ul>
        </section>
    }
}

/// A confusion matrix as a labelled 2×2 grid.
fn confusion_grid(m: &Metrics, names: &[String]) -> impl IntoView {
    m.confusion().filter(|c| c.len() == names.len()).cloned().map(|c| {
        let short = |n: &String| n.chars().take(12).collect::<String>();
        view! {
            <table class="confusion" data-confusion=serde_json::to_string(&c).unwrap_or_default()>
                <tr><th></th>{names.iter().map(|n| view! { <th scope="col">{format!("pred. {}", short(n))}</th> }).collect_view()}</tr>
                {names.iter().zip(&c).map(|(n, row)| view! {
                    <tr><th scope="row">{short(n)}</th>{row.iter().map(|v| view! { <td>{*v}</td> }).collect_view()}</tr>
                }).collect_view()}
            </table>
        }
    })
}

/// A tag task's scores by entity type.
fn entity_table(m: &Metrics) -> impl IntoView {
    match &m.scores {
        Scores::Entities { types, .. } => Some(view! {
            <table class="confusion entities" data-testid="entity-table">
                <tr><th></th><th scope="col">"P"</th><th scope="col">"R"</th><th scope="col">"F1"</th><th scope="col">"n"</th></tr>
                {types.iter().map(|t| view! {
                    <tr><th scope="row">{t.kind.clone()}</th><td>{format!("{:.3}", t.precision)}</td><td>{format!("{:.3}", t.recall)}</td>
                        <td>{format!("{:.3}", t.f1)}</td><td>{t.support}</td></tr>
                }).collect_view()}
            </table>
        }),
        _ => None,
    }
}

/// The second score a row shows: F1 (two classes, entities) or Pearson's correlation.
fn second_score(m: &Metrics) -> Option<(&'static str, f64)> {
    match &m.scores {
        Scores::Regression { pearson, .. } => Some(("Pearson", *pearson)),
        _ => m.f1().map(|f| ("F1", f)),
    }
}

/// What the epochs so far say about the run, when it is bad news: a model
/// that predicts one class, or no epoch above the baseline.
fn verdict(epochs: &[Metrics], baseline: &Metrics, names: &[String]) -> Option<String> {
    let last = epochs.last()?;
    if let Some(class) = last.single_class() {
        let name = names.get(class).cloned().unwrap_or_else(|| class.to_string());
        return Some(format!(
            "The model predicts \"{name}\" for every validation example: it has learned nothing beyond the majority class. Try a larger learning rate (about 1e-3 for a head), more epochs or another head input."
        ));
    }
    let (what, base) = baseline.headline();
    let best = epochs.iter().map(|m| m.headline().1).fold(f64::NEG_INFINITY, f64::max);
    (best <= base).then(|| format!("No epoch beats the majority baseline ({:.1}% {what}) yet: best {:.1}%.", 100.0 * base, 100.0 * best))
}

#[component]
fn ResultsPanel(ft: Ft) -> impl IntoView {
    let baseline = Memo::new(move |_| majority_metrics(&ft.data.get()?.task));
    let names = Memo::new(move |_| ft.data.with(|d| d.as_ref().map(|d| d.task.task.labels.names().to_vec()).unwrap_or_default()));
    let best = Memo::new(move |_| {
        ft.epochs.with(|e| e.iter().enumerate().max_by(|a, b| a.1.headline().1.total_cmp(&b.1.headline().1)).map(|(i, _)| i))
    });
    let steps_per_epoch =
        Signal::derive(move || ft.run.with(|r| r.as_ref().map_or(0, |r| r.total_steps / r.config.num_train_epochs.max(1))));
    let total_steps = Signal::derive(move || ft.run.with(|r| r.as_ref().map_or(0, |r| r.total_steps)));
    let imported = RwSignal::new(None::<Result<String, String>>);
    let import = move |ev: leptos::ev::Event| {
        let input: web_sys::HtmlInputElement = event_target(&ev);
        let Some(file) = input.files().and_then(|l| l.get(0)) else { return };
        spawn_local(async move {
            let bytes = match wasm_bindgen_futures::JsFuture::from(file.array_buffer()).await {
                Ok(b) => js_sys::Uint8Array::new(&b).to_vec(),
                Err(_) => return imported.set(Some(Err("cannot read the head file".into()))),
            };
            imported.set(Some(match client::call(Request::ImportHead { bytes }).await {
                Reply::HeadImported(what) => Ok(what),
                Reply::Failed { message, .. } => Err(message),
                other => Err(format!("unexpected answer from the engine: {other:?}")),
            }));
        });
    };
    let export_error = RwSignal::new(None::<String>);
    view! {
        <section class="panel" aria-label="Training results">
            <h2>"Training "<small data-testid="loss-count">{move || format!("({} steps)", ft.losses.get().len())}</small></h2>
            <LossChart losses=ft.losses epochs=ft.epochs steps_per_epoch=steps_per_epoch total_steps=total_steps baseline=baseline/>
            {move || baseline.get().and_then(|b| ft.epochs.with(|e| verdict(e, &b, &names.get()))).map(|v| view! {
                <p class="status warning" role="status" data-testid="verdict">{v}</p>
            })}
            <div class="metrics-wrap">
            <table class="metrics" data-testid="epoch-metrics">
                <thead><tr><th>"epoch"</th><th>"eval_loss"</th>
                    <th>{move || ft.epochs.with(|e| e.first().map(|m| m.headline().0)).unwrap_or("score")}</th>
                    <th>{move || ft.epochs.with(|e| e.first().and_then(second_score).map(|s| s.0)).unwrap_or("")}</th>
                    <th>"by class (rows: true label) or by entity type"</th></tr></thead>
                <tbody>
                    {move || ft.epochs.get().into_iter().enumerate().map(|(i, m)| {
                        let is_best = best.get() == Some(i);
                        view! {
                            <tr class:best=is_best data-accuracy=m.headline().1.to_string() data-confusion=serde_json::to_string(&m.confusion()).unwrap_or_default()>
                                <td>{i + 1}{is_best.then_some(" ★ best")}</td><td>{format!("{:.4}", m.loss)}</td><td>{format!("{:.4}", m.headline().1)}</td>
                                <td>{second_score(&m).map(|s| format!("{:.4}", s.1))}</td><td>{confusion_grid(&m, &names.get())}{entity_table(&m)}</td>
                            </tr>
                        }
                    }).collect_view()}
                    {move || baseline.get().map(|b| view! {
                        <tr class="baseline" data-testid="baseline-row" title="always the training set's majority class, with its class frequencies as probabilities">
                            <td>"majority baseline"</td><td>{format!("{:.4}", b.loss)}</td><td>{format!("{:.4}", b.headline().1)}</td>
                            <td>{second_score(&b).map(|s| format!("{:.4}", s.1))}</td><td>{confusion_grid(&b, &names.get())}{entity_table(&b)}</td>
                        </tr>
                    })}
                </tbody>
            </table>
            </div>
            <div class="row">
                <button type="button" data-testid="export" disabled=move || ft.losses.get().is_empty() || ft.busy() on:click=move |_| spawn_local(async move {
                    let result = match client::call(Request::Export).await {
                        Reply::HeadExported { bytes, config } => fetch::download("head.safetensors", &bytes, "application/octet-stream")
                            .and_then(|_| fetch::download("head.config.json", config.as_bytes(), "application/json")),
                        // a Hugging Face folder: its files, one download each, to put in one folder
                        Reply::ModelExported { files } => files.iter().try_for_each(|f| fetch::download(&f.name, &f.bytes, "application/octet-stream")),
                        Reply::Failed { message, .. } => Err(message),
                        other => Err(format!("unexpected answer from the engine: {other:?}")),
                    };
                    export_error.set(result.err());
                })>{move || if ft.run.with(|r| r.as_ref().is_some_and(|r| r.config.trains_layers())) {
                    "Export model (Hugging Face folder: config.json, model.safetensors, tokenizer)"
                } else {
                    "Export head (safetensors)"
                }}</button>
                <label>"Import head "<input type="file" accept=".safetensors" data-testid="import-head" on:change=import/></label>
            </div>
            {move || export_error.get().map(|e| view! { <p class="status error" role="alert">{e}</p> })}
            {move || imported.get().map(|r| match r {
                Ok(what) => view! { <p class="saved" data-testid="import-result">{format!("Imported: {what}. Try it uses it now.")}</p> }.into_any(),
                Err(e) => view! { <p class="status error" role="alert" data-testid="import-result">{e}</p> }.into_any(),
            })}
        </section>
    }
}

/// The colour class of an entity type (a legend entry each).
fn entity_class(kind: &str) -> &'static str {
    match kind {
        "PER" => "ent ent-per",
        "ORG" => "ent ent-org",
        "LOC" => "ent ent-loc",
        "MISC" => "ent ent-misc",
        _ => "ent ent-other",
    }
}

/// A tagged sentence: each entity's words in its type's colour, a legend of the types.
fn tagged_view(words: Vec<String>, entities: Vec<(String, usize, usize)>) -> impl IntoView {
    let mut parts = Vec::new();
    let mut w = 0;
    for (kind, first, last) in &entities {
        if *first > w {
            parts.push((None, words[w..*first].join(" ")));
        }
        parts.push((Some(kind.clone()), words[*first..=*last].join(" ")));
        w = last + 1;
    }
    if w < words.len() {
        parts.push((None, words[w..].join(" ")));
    }
    let mut kinds: Vec<String> = entities.iter().map(|e| e.0.clone()).collect();
    kinds.sort();
    kinds.dedup();
    view! {
        <p class="tagged" data-testid="try-entities">{parts.into_iter().map(|(kind, text)| match kind {
            Some(k) => view! { <mark class=entity_class(&k) data-entity=k.clone() title=k.clone()>{text}</mark>" " }.into_any(),
            None => view! { <span>{text}" "</span> }.into_any(),
        }).collect_view()}</p>
        <p class="legend" data-testid="try-legend">{if kinds.is_empty() { "no entity found".to_string() } else { String::new() }}
            {kinds.into_iter().map(|k| view! { <mark class=entity_class(&k)>{k.clone()}</mark>" " }).collect_view()}</p>
    }
}

#[component]
fn TryIt(ft: Ft) -> impl IntoView {
    let a = RwSignal::new("The company posted a profit of $5 million.".to_string());
    let b = RwSignal::new("The firm reported earnings of five million dollars.".to_string());
    let answer = RwSignal::new(None::<Result<Prediction, String>>);
    // what the data asks: a pair, a single text, or words to tag
    let kind = Memo::new(move |_| ft.data.with(|d| d.as_ref().map(|d| d.task.task.kind)));
    // an answer belongs to the model and text that gave it: a new run or an edit makes it stale
    Effect::new(move |_| {
        ft.run.with(|r| r.as_ref().map(|r| r.id.clone()));
        a.track();
        b.track();
        answer.set(None);
    });
    let ask = move || {
        let max_len = ft.config.get_untracked().max_seq_length;
        let pair = matches!(kind.get_untracked(), Some(TaskKind::Texts { pair: true }) | None).then(|| b.get_untracked());
        spawn_local(async move {
            answer.set(Some(match client::call(Request::Predict { text: a.get_untracked(), pair, max_len }).await {
                Reply::Predicted(p) => Ok(p),
                Reply::Failed { message, .. } => Err(message),
                other => Err(format!("unexpected answer from the engine: {other:?}")),
            }));
        });
    };
    view! {
        <section class="panel" aria-label="Try it">
            <h2>"Try it"</h2>
            <input type="text" data-testid="try-a" aria-label="Text" prop:value=move || a.get() on:input=move |ev| a.set(event_target_value(&ev))/>
            <input type="text" data-testid="try-b" aria-label="Second text" class:hidden=move || !matches!(kind.get(), Some(TaskKind::Texts { pair: true }) | None)
                prop:value=move || b.get() on:input=move |ev| b.set(event_target_value(&ev))/>
            <div class="row"><button type="button" data-testid="try" on:click=move |_| ask()>{move || match kind.get() {
                Some(TaskKind::Words) => "Tag the words",
                _ => "Predict",
            }}</button>
            <span data-testid="try-answer">{move || answer.get().map(|r| match r {
                Ok(Prediction::Classes(p)) => {
                    let best = p.iter().cloned().fold((String::new(), -1.0f32), |b, x| if x.1 > b.1 { x } else { b });
                    let all: Vec<String> = p.iter().map(|(n, q)| format!("P({n}) = {q:.3}")).collect();
                    format!("{} · {}", best.0, all.join(", "))
                }
                Ok(Prediction::Value(v)) => format!("{v:.4}"),
                Ok(Prediction::Tags { tags, .. }) => format!("{} tagged words", tags.iter().filter(|t| t.is_some()).count()),
                Err(e) => e,
            })}</span></div>
            {move || match answer.get() {
                Some(Ok(Prediction::Tags { words, entities, .. })) => Some(tagged_view(words, entities)),
                _ => None,
            }}
        </section>
    }
}
