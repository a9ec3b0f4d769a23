//! Loading a model: the bundled default, a Hugging Face id, a URL, or files
//! picked or dropped; progress bars, cancel, and the cached models.

use bertlab::{BackendChoice, ModelFiles};
use leptos::prelude::*;
use leptos::task::spawn_local;
use web_sys::AbortController;

use bertlab::browser::storage::megabytes;
use bertlab::protocol::{ModelInfo, Reply, Request};

use crate::client;
use crate::fetch::{self, CachedModel, Progress};

/// Where the bundled default model is served, relative to the page.
pub const DEFAULT_MODEL: &str = "models/default/";

#[derive(Clone, Debug, PartialEq)]
pub enum LoadState {
    Idle,
    Loading(String),
    Failed(String),
}

/// A model named by the page's link (`?model=`, `?hub=`) on another origin.
#[derive(Clone, Debug, PartialEq)]
pub struct LinkRequest {
    pub source: String,
    pub origin: String,
}

/// A failed load; whether the model's own files are at fault.
struct Corrupt(bool);

/// Everything the loader shares with the rest of the page.
#[derive(Clone, Copy)]
pub struct LoaderState {
    pub info: RwSignal<Option<ModelInfo>>,
    /// Bumped after every successful load, so the explorer re-runs.
    pub version: RwSignal<u32>,
    pub state: RwSignal<LoadState>,
    pub progress: RwSignal<Vec<Progress>>,
    pub cached: RwSignal<Vec<CachedModel>>,
    pub backend: RwSignal<BackendChoice>,
    /// The last source loaded over the network, for reloading on a backend change.
    pub last_source: RwSignal<Option<String>>,
    /// Something the user should know about the last load (files not cached).
    pub notice: RwSignal<Option<String>>,
    /// A model the page's link asks for from an origin the user has not
    /// chosen: nothing is fetched from it until the user agrees.
    pub link: RwSignal<Option<LinkRequest>>,
    /// The load in flight: a new load cancels it, and its late results are dropped.
    current: StoredValue<(u64, Option<AbortController>), LocalStorage>,
}

impl LoaderState {
    pub fn new() -> Self {
        let backend = match fetch::query_param("backend").as_deref() {
            Some("cpu") => BackendChoice::Cpu,
            Some("gpu") => BackendChoice::Gpu,
            _ => BackendChoice::Auto,
        };
        let info: RwSignal<Option<ModelInfo>> = RwSignal::new(None);
        // helper workers join after the load: the banner says how many threads run now
        client::on_backend(move |model, backend| {
            info.update(|i| {
                if let Some(i) = i.as_mut().filter(|i| i.identity.same_model(&model)) {
                    i.backend = backend;
                }
            })
        });
        LoaderState {
            info,
            version: RwSignal::new(0),
            state: RwSignal::new(LoadState::Idle),
            progress: RwSignal::new(Vec::new()),
            cached: RwSignal::new(Vec::new()),
            backend: RwSignal::new(backend),
            last_source: RwSignal::new(None),
            notice: RwSignal::new(None),
            link: RwSignal::new(None),
            current: StoredValue::new_local((0, None)),
        }
    }

    fn hub(&self) -> String {
        fetch::query_param("hub").unwrap_or_else(|| fetch::DEFAULT_HUB.into())
    }

    /// The model the page opens with: the link's `?model=` when it lives on
    /// this page's origin or the default hub; otherwise the bundled model,
    /// and the link's model waits for the user's word (`link`).
    pub fn load_from_link(self) {
        let Some(source) = fetch::query_param("model") else { return self.load_source(DEFAULT_MODEL.into()) };
        match fetch::foreign_origin(&fetch::folder_url(&source, &self.hub()), fetch::DEFAULT_HUB) {
            Some(origin) => {
                self.link.set(Some(LinkRequest { source, origin }));
                self.load_source(DEFAULT_MODEL.into());
            }
            None => self.load_source(source),
        }
    }

    /// Starts a load, cancelling the one in flight; returns its generation.
    fn begin(self, controller: Option<AbortController>) -> u64 {
        let (gen, previous) = self.current.get_value();
        if let Some(c) = previous {
            c.abort();
        }
        self.current.set_value((gen + 1, controller));
        self.notice.set(None);
        gen + 1
    }

    /// Whether load `gen` is still the latest.
    fn is_current(self, gen: u64) -> bool {
        self.current.get_value().0 == gen
    }

    /// Downloads (or takes from the cache) and loads a model: `source` is a
    /// hub id, a URL, or the default model's folder.
    pub fn load_source(self, source: String) {
        let folder = if source == DEFAULT_MODEL { fetch::resolve(DEFAULT_MODEL) } else { fetch::folder_url(&source, &self.hub()) };
        // an id resolved on another hub than Hugging Face's says where it came from (a URL says it itself)
        let name = match fetch::foreign_origin(&folder, fetch::DEFAULT_HUB) {
            _ if source == DEFAULT_MODEL => "all-MiniLM-L6-v2 (bundled)".to_string(),
            Some(origin) if !source.contains("://") => format!("{source} from {origin}"),
            _ => source.clone(),
        };
        let Ok(controller) = AbortController::new() else { return };
        let signal = controller.signal();
        let gen = self.begin(Some(controller));
        self.last_source.set(Some(source));
        self.state.set(LoadState::Loading(format!("Downloading {name}")));
        self.progress.set(Vec::new());
        let progress = self.progress;
        spawn_local(async move {
            let on_progress = move |p: Progress| {
                if self.is_current(gen) {
                    progress.update(|all| match all.iter_mut().find(|q| q.file == p.file) {
                        Some(q) => *q = p,
                        None => all.push(p),
                    })
                }
            };
            let fetched = fetch::fetch_model(name, &folder, &signal, &on_progress).await;
            if !self.is_current(gen) {
                return;
            }
            match fetched {
                Ok(f) => {
                    if !f.not_cached.is_empty() {
                        self.notice.set(Some(format!("Loaded, but not kept for the next visit: {}", f.not_cached.join("; "))));
                    }
                    // only files that are themselves broken are worth deleting
                    if let Err(Corrupt(true)) = self.load_files(gen, f.files).await {
                        let _ = fetch::delete_cached(&folder).await;
                    }
                }
                Err(e) => {
                    // files that arrived before the failure are no model: the cache does not list half of one
                    let _ = fetch::delete_cached(&folder).await;
                    self.state.set(LoadState::Failed(e));
                }
            }
            self.refresh_cache();
        });
    }

    /// Loads files the user picked or dropped.
    pub fn load_dropped(self, files: Vec<web_sys::File>) {
        let gen = self.begin(None);
        self.state.set(LoadState::Loading("Reading the files".into()));
        spawn_local(async move {
            match fetch::read_dropped(files).await {
                Ok((files, ignored)) => {
                    if !ignored.is_empty() {
                        self.notice.set(Some(format!("Not model files, ignored: {}", ignored.join(", "))));
                    }
                    let _ = self.load_files(gen, files).await;
                }
                Err(e) => self.state.set(LoadState::Failed(e)),
            }
        });
    }

    /// Sends files already in memory to the engine worker to parse and
    /// upload (the model loaded before stays when that fails; a run in
    /// progress pauses, keeping its model).
    async fn load_files(self, gen: u64, files: ModelFiles) -> Result<(), Corrupt> {
        let name = files.name.clone();
        self.state.set(LoadState::Loading(format!("Loading {name} onto the device")));
        let reply = client::call(Request::Load { files, backend: self.backend.get_untracked() }).await;
        if !self.is_current(gen) {
            return Ok(());
        }
        match reply {
            Reply::Loaded(info) => {
                self.info.set(Some(info));
                self.version.update(|v| *v += 1);
                self.state.set(LoadState::Idle);
                Ok(())
            }
            Reply::Failed { message, corrupt_model } => {
                self.state.set(LoadState::Failed(message));
                Err(Corrupt(corrupt_model))
            }
            other => {
                self.state.set(LoadState::Failed(format!("unexpected answer from the engine: {other:?}")));
                Err(Corrupt(false))
            }
        }
    }

    pub fn cancel(self) {
        if let (_, Some(c)) = self.current.get_value() {
            c.abort();
        }
    }

    pub fn refresh_cache(self) {
        spawn_local(async move {
            if let Ok(list) = fetch::cached_models().await {
                self.cached.set(list);
            }
        });
    }
}

fn mb(bytes: u64) -> String {
    megabytes(bytes as f64)
}

#[component]
pub fn ModelPanel(loader: LoaderState) -> impl IntoView {
    let source = RwSignal::new(String::new());
    let load = move || {
        let s = source.get_untracked().trim().to_string();
        if !s.is_empty() {
            loader.load_source(s);
        }
    };
    let on_files = move |files: Vec<web_sys::File>| {
        if !files.is_empty() {
            loader.load_dropped(files);
        }
    };
    let file_list = |list: Option<web_sys::FileList>| -> Vec<web_sys::File> {
        list.map(|l| (0..l.length()).filter_map(|i| l.get(i)).collect()).unwrap_or_default()
    };
    let dragging = RwSignal::new(false);
    let busy = move || matches!(loader.state.get(), LoadState::Loading(_));

    view! {
        <section class="panel model-panel" aria-label="Model">
            <h2>"Model"</h2>
            <div class="model-info" data-testid="model-info">
                {move || match loader.info.get() {
                    Some(i) => format!("{} · {} layers · hidden {} · {} heads · vocab {}", i.identity.name, i.layers, i.hidden, i.heads, i.vocab),
                    None => "no model loaded".to_string(),
                }}
            </div>
            <div class="backend" data-testid="backend">
                {move || loader.info.get().map(|i| format!("Backend: {}", i.backend)).unwrap_or_default()}
            </div>
            <form class="row" on:submit=move |ev: leptos::ev::SubmitEvent| { ev.prevent_default(); load(); }>
                <input
                    type="text"
                    data-testid="model-source"
                    placeholder="bert-base-uncased, org/model, or https://…/folder/"
                    aria-label="Hugging Face model id or URL"
                    prop:value=move || source.get()
                    on:input=move |ev| source.set(event_target_value(&ev))
                />
                <button type="submit" data-testid="load-model" disabled=busy>"Load"</button>
                <button type="button" on:click=move |_| loader.load_source(DEFAULT_MODEL.into()) disabled=busy>"Default"</button>
                <select
                    aria-label="Backend"
                    data-testid="backend-choice"
                    disabled=busy
                    on:change=move |ev| {
                        let choice = match event_target_value(&ev).as_str() {
                            "gpu" => BackendChoice::Gpu,
                            "cpu" => BackendChoice::Cpu,
                            _ => BackendChoice::Auto,
                        };
                        loader.backend.set(choice);
                        if let Some(s) = loader.last_source.get_untracked() { loader.load_source(s); }
                    }
                >
                    <option value="auto" selected=move || loader.backend.get() == BackendChoice::Auto>"auto"</option>
                    <option value="gpu" selected=move || loader.backend.get() == BackendChoice::Gpu>"WebGPU"</option>
                    <option value="cpu" selected=move || loader.backend.get() == BackendChoice::Cpu>"CPU"</option>
                </select>
            </form>
            <label
                class="dropzone"
                class:dragging=move || dragging.get()
                on:dragover=move |ev: leptos::ev::DragEvent| { ev.prevent_default(); dragging.set(true); }
                on:dragleave=move |_| dragging.set(false)
                on:drop=move |ev: leptos::ev::DragEvent| {
                    ev.prevent_default();
                    dragging.set(false);
                    if !busy() {
                        on_files(file_list(ev.data_transfer().and_then(|d| d.files())));
                    }
                }
            >
                "Drop config.json, model.safetensors and tokenizer.json (or vocab.txt) here, or "
                <input
                    type="file"
                    multiple
                    data-testid="model-files"
                    disabled=busy
                    on:change=move |ev| {
                        let input: web_sys::HtmlInputElement = event_target(&ev);
                        on_files(file_list(input.files()));
                    }
                />
            </label>
            <LinkConfirm loader=loader/>
            <StatusLine loader=loader/>
            <ProgressList loader=loader/>
            <CachedList loader=loader/>
        </section>
    }
}

/// The link's model from another origin: the origin in full, and the user's choice.
#[component]
fn LinkConfirm(loader: LoaderState) -> impl IntoView {
    move || {
        loader.link.get().map(|l| {
            let accept = l.source.clone();
            view! {
                <div class="status warning" role="alertdialog" aria-label="Download from another site?" data-testid="link-confirm">
                    <p>"This page's link asks to download the model " <b>{l.source.clone()}</b> " from "
                        <b data-testid="link-origin">{l.origin.clone()}</b>
                        ", a site you have not chosen. Nothing has been fetched from it; the bundled model is loaded meanwhile."</p>
                    <div class="row">
                        <button type="button" data-testid="link-accept"
                            on:click=move |_| { loader.link.set(None); loader.load_source(accept.clone()); }>
                            {format!("Download from {}", l.origin)}
                        </button>
                        <button type="button" data-testid="link-dismiss" on:click=move |_| loader.link.set(None)>"Keep the bundled model"</button>
                    </div>
                </div>
            }
        })
    }
}

#[component]
fn StatusLine(loader: LoaderState) -> impl IntoView {
    view! {
        {move || match loader.state.get() {
            LoadState::Idle => ().into_any(),
            LoadState::Loading(what) => view! {
                <div class="status loading" data-testid="load-status">
                    <span>{what}"…"</span>
                    <button type="button" data-testid="cancel" on:click=move |_| loader.cancel()>"Cancel"</button>
                </div>
            }.into_any(),
            LoadState::Failed(e) => view! {
                <div class="status error" role="alert" data-testid="load-error">{e}</div>
            }.into_any(),
        }}
        {move || loader.notice.get().map(|n| view! { <p class="notice" data-testid="load-notice">{n}</p> })}
    }
}

#[component]
fn ProgressList(loader: LoaderState) -> impl IntoView {
    // open while loading; afterwards folded away, still there to look at
    let loading = move || matches!(loader.state.get(), LoadState::Loading(_));
    view! {
        <details class="downloads" open=loading class:hidden=move || loader.progress.with(Vec::is_empty)>
            <summary>{move || if loading() { "Downloading" } else { "Downloaded files" }}</summary>
            <ul class="progress-list" data-testid="progress">
                <For each=move || loader.progress.get() key=|p| p.file.clone() let:p>
                    <ProgressRow file=p.file.clone() loader=loader/>
                </For>
            </ul>
        </details>
    }
}

#[component]
fn ProgressRow(file: String, loader: LoaderState) -> impl IntoView {
    let f = file.clone();
    let p = Memo::new(move |_| loader.progress.get().into_iter().find(|p| p.file == f));
    view! {
        <li class="progress-row" data-file=file.clone()>
            <span class="file">{file.clone()}</span>
            <progress
                max=move || p.get().and_then(|p| p.total).unwrap_or(0).max(1) as f64
                value=move || p.get().map(|p| p.loaded).unwrap_or(0) as f64
            ></progress>
            <span class="bytes">{move || p.get().map(|p| {
                let total = p.total.map(mb).unwrap_or_else(|| "?".into());
                if p.from_cache {
                    format!("{} (from cache)", mb(p.loaded))
                } else {
                    format!("{} / {} · {}/s", mb(p.loaded), total, mb(p.bytes_per_s as u64))
                }
            })}</span>
        </li>
    }
}

#[component]
fn CachedList(loader: LoaderState) -> impl IntoView {
    loader.refresh_cache();
    view! {
        <details class="cached">
            <summary>{move || format!("Cached models ({})", loader.cached.get().len())}</summary>
            <ul data-testid="cached-models">
                <For each=move || loader.cached.get() key=|m| (m.folder.clone(), m.bytes) let:m>
                    <li>
                        <span class="folder">{m.folder.clone()}</span>
                        " · " {mb(m.bytes)} " · " {m.files.join(", ")}
                        <button type="button" on:click={
                            let folder = m.folder.clone();
                            move |_| {
                                let folder = folder.clone();
                                spawn_local(async move {
                                    if let Err(e) = fetch::delete_cached(&folder).await {
                                        loader.state.set(LoadState::Failed(e));
                                    }
                                    loader.refresh_cache();
                                });
                            }
                        }>"Delete"</button>
                    </li>
                </For>
            </ul>
        </details>
    }
}
