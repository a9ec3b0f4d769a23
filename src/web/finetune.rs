//! The Fine-tune page: MRPC (or the user's TSV), the Trainer's
//! hyper-parameters, feature extraction with progress, training with a live
//! loss curve and per-epoch validation, pause/resume (also across a reload),
//! "Try it", and export/import of the head.

use std::collections::HashMap;

use bertlab::finetune::{Event, Metrics, TrainConfig};
use bertlab::glue::Dataset;
use bertlab::head::HeadInput;
use leptos::prelude::*;
use leptos::task::spawn_local;
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};

use crate::fetch;
use crate::loader::LoaderState;
use crate::service::{self, Features};

#[derive(Clone, Debug, PartialEq)]
enum Status {
    Idle,
    Encoding { split: &'static str, done: usize, total: usize, per_s: f64 },
    Training,
    Paused,
    Stopped,
    Done,
    Failed(String),
}

#[derive(Clone, Debug, PartialEq)]
struct Data {
    source: String,
    train: Dataset,
    dev: Dataset,
}

/// The page's state, shared by its components.
#[derive(Clone, Copy)]
struct Ft {
    data: RwSignal<Option<Data>>,
    data_error: RwSignal<Option<String>>,
    /// Rows fetched so far from the hub's datasets server.
    hub_progress: RwSignal<String>,
    config: RwSignal<TrainConfig>,
    train_limit: RwSignal<usize>,
    status: RwSignal<Status>,
    losses: RwSignal<Vec<f32>>,
    epochs: RwSignal<Vec<Metrics>>,
    device: RwSignal<String>,
    saved: RwSignal<Option<String>>,
    pause: StoredValue<bool>,
    stop: StoredValue<bool>,
    /// Encoded splits by (model, input, max length, split) — a second run starts training at once.
    feature_cache: StoredValue<HashMap<String, Vec<f32>>>,
}

const CHECKPOINT: &str = "checkpoint.safetensors";
const FEATURES: &str = "features.safetensors";

fn encode_features(f: &Features, dim: usize) -> Vec<u8> {
    let as_f32 = |y: &[u8]| y.iter().map(|&v| v as f32).collect::<Vec<f32>>();
    let parts = [
        ("train_x", f.train.0.clone(), vec![f.train.1.len(), dim]),
        ("train_y", as_f32(&f.train.1), vec![f.train.1.len()]),
        ("eval_x", f.eval.0.clone(), vec![f.eval.1.len(), dim]),
        ("eval_y", as_f32(&f.eval.1), vec![f.eval.1.len()]),
    ];
    let bytes: Vec<(&str, Vec<usize>, Vec<u8>)> =
        parts.iter().map(|(n, d, s)| (*n, s.clone(), d.iter().flat_map(|v| v.to_le_bytes()).collect())).collect();
    let views: Vec<(&str, TensorView)> = bytes.iter().map(|(n, s, b)| (*n, TensorView::new(Dtype::F32, s.clone(), b).unwrap())).collect();
    safetensors::serialize(views, None).unwrap_or_default()
}

fn decode_features(bytes: &[u8]) -> Option<Features> {
    let st = SafeTensors::deserialize(bytes).ok()?;
    let get = |n: &str| -> Option<Vec<f32>> {
        Some(st.tensor(n).ok()?.data().chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect())
    };
    let labels = |v: Vec<f32>| v.into_iter().map(|x| x as u8).collect::<Vec<u8>>();
    Some(Features { train: (get("train_x")?, labels(get("train_y")?)), eval: (get("eval_x")?, labels(get("eval_y")?)) })
}

impl Ft {
    fn new() -> Self {
        Ft {
            data: RwSignal::new(None),
            data_error: RwSignal::new(None),
            hub_progress: RwSignal::new(String::new()),
            config: RwSignal::new(TrainConfig::default()),
            train_limit: RwSignal::new(0),
            status: RwSignal::new(Status::Idle),
            losses: RwSignal::new(Vec::new()),
            epochs: RwSignal::new(Vec::new()),
            device: RwSignal::new(String::new()),
            saved: RwSignal::new(None),
            pause: StoredValue::new(false),
            stop: StoredValue::new(false),
            feature_cache: StoredValue::new(HashMap::new()),
        }
    }

    fn busy(&self) -> bool {
        matches!(self.status.get(), Status::Encoding { .. } | Status::Training)
    }

    /// Encodes one split in chunks, yielding to the page between them.
    async fn encode(self, key: String, split: &'static str, d: &Dataset, limit: usize) -> Result<Vec<f32>, String> {
        if let Some(f) = self.feature_cache.with_value(|c| c.get(&key).cloned()) {
            return Ok(f);
        }
        let c = self.config.get_untracked();
        let examples = &d.examples[..limit.min(d.examples.len())];
        let start = web_time::Instant::now();
        let mut out = Vec::new();
        let chunk = c.per_device_eval_batch_size.max(1);
        for (i, part) in examples.chunks(chunk).enumerate() {
            if self.stop.get_value() {
                return Err("stopped".into());
            }
            out.extend(service::extract(part, c.head_input, c.max_seq_length, chunk, &mut |_, _| {}).await?);
            let done = (i * chunk + part.len()).min(examples.len());
            let per_s = done as f64 / start.elapsed().as_secs_f64().max(1e-3);
            self.status.set(Status::Encoding { split, done, total: examples.len(), per_s });
            fetch::yield_now().await;
        }
        self.feature_cache.update_value(|c| {
            c.insert(key, out.clone());
        });
        Ok(out)
    }

    fn start(self, model: String) {
        let Some(data) = self.data.get_untracked() else { return };
        self.pause.set_value(false);
        self.stop.set_value(false);
        self.losses.set(Vec::new());
        self.epochs.set(Vec::new());
        spawn_local(async move {
            let c = self.config.get_untracked();
            let limit = match self.train_limit.get_untracked() { 0 => usize::MAX, n => n };
            let key = |split: &str, n: usize| format!("{model}|{:?}|{}|{}|{split}|{n}", c.head_input, c.max_seq_length, data.source);
            let result = async {
                let train_x = self.encode(key("train", limit), "train", &data.train, limit).await?;
                let dev_x = self.encode(key("dev", usize::MAX), "validation", &data.dev, usize::MAX).await?;
                let n = limit.min(data.train.examples.len());
                let f = Features { train: (train_x, data.train.labels()[..n].to_vec()), eval: (dev_x, data.dev.labels()) };
                let dim = c.head_input.width(service::hidden_size().await?);
                fetch::store_local(FEATURES, &encode_features(&f, dim)).await?;
                service::start(c.clone(), f).await
            }
            .await;
            match result {
                Ok(device) => {
                    self.device.set(device);
                    self.run().await
                }
                Err(e) => self.status.set(if e == "stopped" { Status::Stopped } else { Status::Failed(e) }),
            }
        });
    }

    async fn save(self) {
        if let Ok(bytes) = service::checkpoint().await {
            if fetch::store_local(CHECKPOINT, &bytes).await.is_ok() {
                if let Ok((step, total)) = service::progress().await {
                    self.saved.set(Some(format!("saved at step {step} of {total}")));
                }
            }
        }
    }

    /// Trains until done, paused, stopped or failed.
    async fn run(self) {
        self.status.set(Status::Training);
        let mut since_yield = 0;
        loop {
            if self.stop.get_value() {
                let _ = service::use_trained_head().await;
                fetch::delete_local(CHECKPOINT).await;
                self.saved.set(None);
                self.status.set(Status::Stopped);
                return;
            }
            if self.pause.get_value() {
                self.save().await;
                self.status.set(Status::Paused);
                return;
            }
            match service::advance().await {
                Ok(Event::Step { loss, .. }) => self.losses.update(|l| l.push(loss)),
                Ok(Event::Epoch { metrics, .. }) => {
                    self.epochs.update(|e| e.push(metrics));
                    self.save().await;
                }
                Ok(Event::Done) => {
                    let _ = service::use_trained_head().await;
                    self.save().await;
                    self.status.set(Status::Done);
                    return;
                }
                Err(e) => {
                    // the run keeps its last good head
                    let _ = service::use_trained_head().await;
                    self.status.set(Status::Failed(e));
                    return;
                }
            }
            since_yield += 1;
            if since_yield >= 5 {
                since_yield = 0;
                fetch::yield_now().await;
            }
        }
    }

    fn resume_saved(self) {
        spawn_local(async move {
            let (Some(ckpt), Some(feats)) = (fetch::load_local(CHECKPOINT).await, fetch::load_local(FEATURES).await) else {
                self.status.set(Status::Failed("no saved run".into()));
                return;
            };
            let Some(f) = decode_features(&feats) else {
                self.status.set(Status::Failed("the saved features are unreadable".into()));
                return;
            };
            match service::resume(&ckpt, f).await {
                Ok((config, losses, metrics, device)) => {
                    self.config.set(config);
                    self.losses.set(losses);
                    self.epochs.set(metrics);
                    self.device.set(device);
                    self.pause.set_value(false);
                    self.stop.set_value(false);
                    self.run().await;
                }
                Err(e) => self.status.set(Status::Failed(e)),
            }
        });
    }
}

#[component]
pub fn FinetunePage(loader: LoaderState) -> impl IntoView {
    let ft = Ft::new();
    // MRPC as served next to the page (set-up copies it there), if it is
    spawn_local(async move {
        match (fetch::fetch_text("data/mrpc/train.tsv").await, fetch::fetch_text("data/mrpc/dev.tsv").await) {
            (Some(t), Some(d)) => match (Dataset::parse(&t), Dataset::parse(&d)) {
                (Ok(train), Ok(dev)) => ft.data.set(Some(Data { source: "GLUE MRPC (bundled)".into(), train, dev })),
                (Err(e), _) | (_, Err(e)) => ft.data_error.set(Some(e.to_string())),
            },
            _ => ft.data_error.set(Some("No MRPC copy next to the page: choose a train and a validation TSV.".into())),
        }
        if fetch::load_local(CHECKPOINT).await.is_some() {
            ft.saved.set(Some("a run was saved in this browser".into()));
        }
    });
    view! {
        <div class="finetune">
            <DataPanel ft=ft/>
            <ParamsPanel ft=ft/>
            <Controls ft=ft loader=loader/>
            <ResultsPanel ft=ft/>
            <TryIt ft=ft/>
        </div>
    }
}

/// The hub's GLUE MRPC train and validation splits.
fn fetch_from_hub(ft: Ft) {
    let base = fetch::query_param("datasets").unwrap_or_else(|| "https://datasets-server.huggingface.co".into());
    let progress = ft.hub_progress;
    spawn_local(async move {
        let report = move |split: &'static str| move |done: usize, total: usize| progress.set(format!("{split}: {done}/{total} pairs"));
        let train = fetch::fetch_glue_mrpc(&base, "train", &report("train")).await;
        let dev = match train {
            Ok(_) => fetch::fetch_glue_mrpc(&base, "validation", &report("validation")).await,
            Err(ref e) => Err(e.clone()),
        };
        match (train, dev) {
            (Ok(train), Ok(dev)) => {
                ft.data_error.set(None);
                ft.data.set(Some(Data { source: "GLUE MRPC (Hugging Face hub)".into(), train, dev }));
            }
            (Err(e), _) | (_, Err(e)) => ft.data_error.set(Some(e)),
        }
    });
}

#[component]
fn DataPanel(ft: Ft) -> impl IntoView {
    let hub_progress = ft.hub_progress;
    let train_file = RwSignal::new(None::<(String, String)>);
    let pick = move |ev: leptos::ev::Event, dev: bool| {
        let input: web_sys::HtmlInputElement = event_target(&ev);
        let Some(file) = input.files().and_then(|l| l.get(0)) else { return };
        spawn_local(async move {
            let name = file.name();
            let text = match wasm_bindgen_futures::JsFuture::from(file.text()).await {
                Ok(t) => t.as_string().unwrap_or_default(),
                Err(_) => return ft.data_error.set(Some(format!("cannot read {name}"))),
            };
            if !dev {
                train_file.set(Some((name, text)));
                return;
            }
            let Some((train_name, train_text)) = train_file.get_untracked() else {
                return ft.data_error.set(Some("choose the training TSV first".into()));
            };
            match (Dataset::parse(&train_text), Dataset::parse(&text)) {
                (Ok(train), Ok(dev)) => {
                    ft.data_error.set(None);
                    ft.data.set(Some(Data { source: format!("{train_name} + {name}"), train, dev }));
                }
                (Err(e), _) => ft.data_error.set(Some(format!("{train_name}: {e}"))),
                (_, Err(e)) => ft.data_error.set(Some(format!("{name}: {e}"))),
            }
        });
    };
    view! {
        <section class="panel" aria-label="Data">
            <h2>"Data"</h2>
            {move || ft.data.get().map(|d| view! {
                <p data-testid="data-summary"><b>{d.source.clone()}</b></p>
                <ul class="data-stats">
                    <li data-testid="train-stats">"train: "{service::describe(&d.train)}</li>
                    <li data-testid="dev-stats">"validation: "{service::describe(&d.dev)}
                        {format!(" · majority-class baseline {:.1}% accuracy", 100.0 * d.dev.majority_accuracy())}</li>
                </ul>
                {(!d.train.skipped.is_empty() || !d.dev.skipped.is_empty()).then(|| view! {
                    <details class="notice" data-testid="skipped"><summary>{format!("{} malformed rows skipped", d.train.skipped.len() + d.dev.skipped.len())}</summary>
                        <ul>{d.train.skipped.iter().map(|s| view! { <li>"train "{s.clone()}</li> }).chain(d.dev.skipped.iter().map(|s| view! { <li>"validation "{s.clone()}</li> })).collect_view()}</ul>
                    </details>
                })}
                <table class="examples">
                    <thead><tr><th>"label"</th><th>"sentence 1"</th><th>"sentence 2"</th></tr></thead>
                    <tbody>{d.train.examples.iter().take(3).map(|e| view! {
                        <tr><td>{e.label}</td><td>{e.sentence1.clone()}</td><td>{e.sentence2.clone()}</td></tr>
                    }).collect_view()}</tbody>
                </table>
            })}
            {move || ft.data_error.get().map(|e| view! { <div class="status error" role="alert" data-testid="data-error">{e}</div> })}
            <div class="row">
                <button type="button" data-testid="fetch-mrpc" on:click=move |_| fetch_from_hub(ft)>"Fetch GLUE MRPC from the Hugging Face hub"</button>
                <span data-testid="fetch-progress">{move || hub_progress.get()}</span>
            </div>
            <div class="row">
                <label>"Train TSV "<input type="file" accept=".tsv,.txt" data-testid="train-tsv" on:change=move |ev| pick(ev, false)/></label>
                <label>"Validation TSV "<input type="file" accept=".tsv,.txt" data-testid="dev-tsv" on:change=move |ev| pick(ev, true)/></label>
            </div>
        </section>
    }
}

#[component]
fn ParamsPanel(ft: Ft) -> impl IntoView {
    let c = ft.config;
    let num = move |label: &'static str, id: &'static str, get: fn(&TrainConfig) -> String, set: fn(&mut TrainConfig, &str)| {
        view! {
            <label class="param">{label}
                <input type="text" inputmode="decimal" data-testid=id prop:value=move || get(&c.get())
                    on:change=move |ev| { let v = event_target_value(&ev); c.update(|c| set(c, v.trim())) }/>
            </label>
        }
    };
    view! {
        <section class="panel" aria-label="Hyper-parameters">
            <h2>"Hyper-parameters "<small>"(transformers' Trainer names and defaults)"</small></h2>
            <div class="params">
                {num("learning_rate", "lr", |c| c.learning_rate.to_string(), |c, v| if let Ok(x) = v.parse() { c.learning_rate = x })}
                {num("per_device_train_batch_size", "train-bs", |c| c.per_device_train_batch_size.to_string(), |c, v| if let Ok(x) = v.parse() { c.per_device_train_batch_size = x })}
                {num("per_device_eval_batch_size", "eval-bs", |c| c.per_device_eval_batch_size.to_string(), |c, v| if let Ok(x) = v.parse() { c.per_device_eval_batch_size = x })}
                {num("num_train_epochs", "epochs", |c| c.num_train_epochs.to_string(), |c, v| if let Ok(x) = v.parse() { c.num_train_epochs = x })}
                {num("weight_decay", "wd", |c| c.weight_decay.to_string(), |c, v| if let Ok(x) = v.parse() { c.weight_decay = x })}
                {num("warmup_steps", "warmup", |c| c.warmup_steps.to_string(), |c, v| if let Ok(x) = v.parse() { c.warmup_steps = x })}
                {num("max_seq_length", "max-len", |c| c.max_seq_length.to_string(), |c, v| if let Ok(x) = v.parse() { c.max_seq_length = x })}
                {num("seed", "seed", |c| c.seed.to_string(), |c, v| if let Ok(x) = v.parse() { c.seed = x })}
                <label class="param">"head input"
                    <select data-testid="head-input" on:change=move |ev| { let v = event_target_value(&ev); c.update(|c| if let Some(h) = HeadInput::parse(&v) { c.head_input = h }) }>
                        <option value="pooler">"pooler output (BertForSequenceClassification)"</option>
                        <option value="cls">"[CLS] hidden state"</option>
                        <option value="mean">"mean of the pair's tokens"</option>
                        <option value="pair">"pair features [u, v, |u−v|, u·v]"</option>
                    </select>
                </label>
                {num("head: 0 = Linear, N = MLP width", "mlp", |c| c.mlp_hidden.to_string(), |c, v| if let Ok(x) = v.parse() { c.mlp_hidden = x })}
                <label class="param">"train on the first N pairs (0 = all)"
                    <input type="text" inputmode="numeric" data-testid="train-limit" prop:value=move || ft.train_limit.get().to_string()
                        on:change=move |ev| ft.train_limit.set(event_target_value(&ev).trim().parse().unwrap_or(0))/>
                </label>
            </div>
            <p class="hint">"The encoder stays frozen: only the head trains. The Trainer's learning rate (2e-5) is meant for the whole model; a head alone learns faster with about 1e-3."</p>
        </section>
    }
}

#[component]
fn Controls(ft: Ft, loader: LoaderState) -> impl IntoView {
    let model = move || loader.info.get().map(|i| format!("{}#{}", i.name, loader.version.get()));
    let ready = move || model().is_some() && ft.data.get().is_some() && !ft.busy();
    view! {
        <section class="panel controls" aria-label="Training">
            <div class="row">
                <button type="button" data-testid="start" disabled=move || !ready()
                    on:click=move |_| if let Some(m) = model() { ft.start(m) }>"Start"</button>
                <button type="button" data-testid="pause" disabled=move || ft.status.get() != Status::Training
                    on:click=move |_| ft.pause.set_value(true)>"Pause"</button>
                <button type="button" data-testid="resume" disabled=move || ft.status.get() != Status::Paused
                    on:click=move |_| { ft.pause.set_value(false); spawn_local(async move { ft.run().await }) }>"Resume"</button>
                <button type="button" data-testid="stop" disabled=move || !ft.busy() && ft.status.get() != Status::Paused
                    on:click=move |_| {
                        ft.stop.set_value(true);
                        if ft.status.get_untracked() == Status::Paused { spawn_local(async move { ft.run().await }) }
                    }>"Stop"</button>
                {move || ft.saved.get().map(|s| view! {
                    <span class="saved">{s}" "
                        <button type="button" data-testid="resume-saved" disabled=move || !(model().is_some() && !ft.busy())
                            on:click=move |_| ft.resume_saved()>"Resume saved run"</button>
                    </span>
                })}
            </div>
            <div data-testid="train-status" class="status">{move || match ft.status.get() {
                Status::Idle => "Ready.".to_string(),
                Status::Encoding { split, done, total, per_s } => format!(
                    "Encoding {split} pairs: {done}/{total} · {per_s:.1} pairs/s · {:.0} s left", (total - done) as f64 / per_s.max(1e-9)),
                Status::Training => format!("Training on {}…", ft.device.get()),
                Status::Paused => "Paused.".into(),
                Status::Stopped => "Stopped.".into(),
                Status::Done => "Done.".into(),
                Status::Failed(e) => format!("Stopped: {e}"),
            }}</div>
            {move || match ft.status.get() {
                Status::Encoding { done, total, .. } => view! { <progress data-testid="encode-progress" max=total.max(1) as f64 value=done as f64></progress> }.into_any(),
                _ => ().into_any(),
            }}
        </section>
    }
}

#[component]
fn ResultsPanel(ft: Ft) -> impl IntoView {
    let (w, h) = (600.0f32, 180.0f32);
    let curve = move || {
        let l = ft.losses.get();
        if l.len() < 2 {
            return String::new();
        }
        let max = l.iter().copied().fold(0.0f32, f32::max).max(1e-6);
        l.iter().enumerate().map(|(i, v)| format!("{:.1},{:.1}", i as f32 / (l.len() - 1) as f32 * w, h - v / max * (h - 10.0))).collect::<Vec<_>>().join(" ")
    };
    let import = move |ev: leptos::ev::Event| {
        let input: web_sys::HtmlInputElement = event_target(&ev);
        let Some(file) = input.files().and_then(|l| l.get(0)) else { return };
        spawn_local(async move {
            let bytes = match wasm_bindgen_futures::JsFuture::from(file.array_buffer()).await {
                Ok(b) => js_sys::Uint8Array::new(&b).to_vec(),
                Err(_) => return ft.status.set(Status::Failed("cannot read the head file".into())),
            };
            match service::import(&bytes).await {
                Ok(what) => ft.device.set(format!("imported: {what}")),
                Err(e) => ft.status.set(Status::Failed(e)),
            }
        });
    };
    view! {
        <section class="panel" aria-label="Training results">
            <h2>"Loss "<small data-testid="loss-count">{move || format!("({} steps)", ft.losses.get().len())}</small></h2>
            <svg class="loss" viewBox=format!("0 0 {w} {h}") preserveAspectRatio="none" data-testid="loss-curve" role="img" aria-label="training loss per step"
                data-losses=move || serde_json::to_string(&ft.losses.get()).unwrap_or_default()>
                <polyline points=curve vector-effect="non-scaling-stroke" fill="none" stroke="currentColor" stroke-width="1.5"/>
            </svg>
            <table class="metrics" data-testid="epoch-metrics">
                <thead><tr><th>"epoch"</th><th>"eval_loss"</th><th>"eval_accuracy"</th><th>"eval_f1"</th><th>"confusion [[TN, FP], [FN, TP]]"</th></tr></thead>
                <tbody>
                    {move || ft.epochs.get().into_iter().enumerate().map(|(i, m)| view! {
                        <tr data-accuracy=m.accuracy.to_string()>
                            <td>{i + 1}</td><td>{format!("{:.4}", m.loss)}</td><td>{format!("{:.4}", m.accuracy)}</td>
                            <td>{format!("{:.4}", m.f1)}</td><td>{format!("{:?}", m.confusion)}</td>
                        </tr>
                    }).collect_view()}
                    {move || ft.data.get().map(|d| view! {
                        <tr class="baseline"><td>"baseline"</td><td></td><td>{format!("{:.4}", d.dev.majority_accuracy())}</td><td colspan="2">"always the majority class"</td></tr>
                    })}
                </tbody>
            </table>
            <div class="row">
                <button type="button" data-testid="export" disabled=move || ft.losses.get().is_empty() on:click=move |_| spawn_local(async move {
                    match service::export().await {
                        Ok((bytes, config)) => {
                            let _ = fetch::download("head.safetensors", &bytes, "application/octet-stream");
                            let _ = fetch::download("head.config.json", config.as_bytes(), "application/json");
                        }
                        Err(e) => ft.status.set(Status::Failed(e)),
                    }
                })>"Export head (safetensors)"</button>
                <label>"Import head "<input type="file" accept=".safetensors" data-testid="import-head" on:change=import/></label>
            </div>
        </section>
    }
}

#[component]
fn TryIt(ft: Ft) -> impl IntoView {
    let a = RwSignal::new("The company posted a profit of $5 million.".to_string());
    let b = RwSignal::new("The firm reported earnings of five million dollars.".to_string());
    let answer = RwSignal::new(String::new());
    let ask = move || {
        let max_len = ft.config.get_untracked().max_seq_length;
        spawn_local(async move {
            answer.set(match service::paraphrase_probability(a.get_untracked(), b.get_untracked(), max_len).await {
                Ok(p) => format!("P(paraphrase) = {p:.3}"),
                Err(e) => e,
            });
        });
    };
    view! {
        <section class="panel" aria-label="Try it">
            <h2>"Try it"</h2>
            <input type="text" data-testid="try-a" prop:value=move || a.get() on:input=move |ev| a.set(event_target_value(&ev))/>
            <input type="text" data-testid="try-b" prop:value=move || b.get() on:input=move |ev| b.set(event_target_value(&ev))/>
            <div class="row"><button type="button" data-testid="try" on:click=move |_| ask()>"Paraphrase?"</button>
            <span data-testid="try-answer">{move || answer.get()}</span></div>
        </section>
    }
}
