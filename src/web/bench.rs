//! `?bench` (or `?bench=cpu`, `?bench=gpu`): the page's own engine on a fixed
//! grid (1×8, 8×32, 32×128) on the CPU path (one thread, then every thread)
//! and on WebGPU, with page open → first embedding, six short
//! sentences through the explorer's path, and the longest main-thread task
//! while the worker computes. Prints a table and JSON; `tests/browser/bench.mjs`
//! drives it headless.

use bertlab::protocol::{Reply, Request};
use bertlab::BackendChoice;
use leptos::prelude::*;
use leptos::task::spawn_local;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

use crate::client;
use crate::explorer::examples;
use crate::fetch;
use crate::loader::DEFAULT_MODEL;

/// The grid, as (batch, seq).
const GRID: [(usize, usize); 3] = [(1, 8), (8, 32), (32, 128)];

#[derive(Clone, Debug, serde::Serialize)]
struct Row {
    backend: String,
    batch: usize,
    seq: usize,
    ms: f64,
}

#[derive(Clone, Debug, Default, serde::Serialize)]
struct Results {
    /// Since page open: the page's wasm running, the model's bytes in the page, the engine loaded, the first embedding.
    page_started_ms: f64,
    model_bytes_ms: Option<f64>,
    engine_loaded_ms: Option<f64>,
    first_embedding_ms: Option<f64>,
    model_from_cache: bool,
    explore_six_ms: Option<f64>,
    longest_main_thread_task_ms: f64,
    rows: Vec<Row>,
    errors: Vec<String>,
    user_agent: String,
}

fn now() -> f64 {
    web_sys::window().and_then(|w| w.performance()).map_or(0.0, |p| p.now())
}

/// Watches main-thread tasks over 50 ms (the Long Tasks API); the longest so far.
fn watch_long_tasks(longest: RwSignal<f64>) {
    let callback = Closure::<dyn Fn(js_sys::Object)>::new(move |list: js_sys::Object| {
        let entries = js_sys::Reflect::get(&list, &"getEntries".into())
            .ok()
            .and_then(|f| f.dyn_into::<js_sys::Function>().ok())
            .and_then(|f| f.call0(&list).ok())
            .map(|v| js_sys::Array::from(&v))
            .unwrap_or_default();
        for e in entries.iter() {
            let d = js_sys::Reflect::get(&e, &"duration".into()).ok().and_then(|d| d.as_f64()).unwrap_or(0.0);
            longest.update(|l| *l = l.max(d));
        }
    });
    let Ok(observer) = web_sys::PerformanceObserver::new(callback.as_ref().unchecked_ref()) else { return };
    let options = web_sys::PerformanceObserverInit::new(&js_sys::Array::of1(&"longtask".into()));
    observer.observe(&options);
    callback.forget();
}

async fn run(out: RwSignal<Option<Results>>, longest: RwSignal<f64>) {
    let mut r = Results {
        page_started_ms: now(),
        user_agent: web_sys::window().and_then(|w| w.navigator().user_agent().ok()).unwrap_or_default(),
        ..Default::default()
    };
    let Ok(controller) = web_sys::AbortController::new() else { return };
    r.model_from_cache = fetch::cached_models().await.is_ok_and(|c| c.iter().any(|m| m.folder.ends_with(DEFAULT_MODEL)));
    let files = match fetch::fetch_model("all-MiniLM-L6-v2 (bundled)".into(), &fetch::resolve(DEFAULT_MODEL), &controller.signal(), &|_| {})
        .await
    {
        Ok(f) => {
            r.model_bytes_ms = Some(now());
            f.files
        }
        Err(e) => {
            r.errors.push(e);
            return out.set(Some(r));
        }
    };
    let has_webgpu =
        bertlab::browser::global("navigator").is_some_and(|n| js_sys::Reflect::get(&n, &"gpu".into()).is_ok_and(|g| !g.is_undefined()));
    // ?bench=cpu or ?bench=gpu measures one backend; anything else both (WebGPU where there is one)
    let which = fetch::query_param("bench").unwrap_or_default();
    let mut backends = Vec::new();
    if which != "gpu" {
        backends.push(BackendChoice::Cpu);
    }
    if which != "cpu" && has_webgpu {
        backends.push(BackendChoice::Gpu);
    }
    for backend in backends {
        match client::call(Request::Load { files: files.clone(), backend }).await {
            Reply::Loaded(_) if backend == BackendChoice::Cpu => r.engine_loaded_ms = Some(now()),
            Reply::Loaded(_) => {}
            other => {
                r.errors.push(format!("{backend:?}: {other:?}"));
                continue;
            }
        }
        if backend == BackendChoice::Cpu {
            let texts = vec!["Hello, how are you?".to_string()];
            if let Reply::Explored(_) = client::call(Request::Explore { texts, selected: 0, layer: None }).await {
                r.first_embedding_ms = Some(now());
            }
        }
        // main-thread tasks count from here: while the worker computes (the model's bytes are copied before)
        longest.set(0.0);
        // (the engine's timings wait for its helper workers to join); the CPU path on one thread, then on all
        let threads: &[bool] = if backend == BackendChoice::Cpu { &[true, false] } else { &[false] };
        for &one_thread in threads {
            for (batch, seq) in GRID {
                match client::call(Request::Bench { batch, seq, min_ms: 1000.0, one_thread }).await {
                    Reply::Benched { ms, backend } => r.rows.push(Row { backend, batch, seq, ms }),
                    other => r.errors.push(format!("{backend:?} {batch}×{seq}: {other:?}")),
                }
            }
        }
        if backend == BackendChoice::Cpu {
            // an edit in the explorer, every thread running
            let six: Vec<String> = examples().into_iter().map(|s| s.text).collect();
            let t = now();
            if let Reply::Explored(_) = client::call(Request::Explore { texts: six, selected: 0, layer: None }).await {
                r.explore_six_ms = Some(now() - t);
            }
        }
        r.longest_main_thread_task_ms = r.longest_main_thread_task_ms.max(longest.get_untracked());
    }
    out.set(Some(r));
}

#[component]
pub fn BenchPage() -> impl IntoView {
    let out = RwSignal::new(None::<Results>);
    let longest = RwSignal::new(0.0f64);
    watch_long_tasks(longest);
    spawn_local(run(out, longest));
    view! {
        <main class="bench">
            <h1>"Bert Lab benchmark"</h1>
            {move || match out.get() {
                None => view! { <p data-testid="bench-status">"Running… (the grid takes a minute or two on the CPU path)"</p> }.into_any(),
                Some(r) => {
                    let mut table = String::from("| backend | batch × seq | ms / batch |\n|---|---|---|\n");
                    for row in &r.rows {
                        table.push_str(&format!("| {} | {} × {} | {:.2} |\n", row.backend, row.batch, row.seq, row.ms));
                    }
                    table.push_str(&format!(
                        "\npage open → first embedding (CPU path{}): {} ms (the page's wasm ran at {:.0} ms, the model's bytes were in the page at {} ms, the engine loaded at {} ms)\nsix short sentences, explorer request (CPU path): {} ms\nlongest main-thread task while the engine worked: {:.0} ms\n",
                        if r.model_from_cache { ", model from the cache" } else { "" },
                        r.first_embedding_ms.map_or("–".into(), |v| format!("{v:.0}")),
                        r.page_started_ms,
                        r.model_bytes_ms.map_or("–".into(), |v| format!("{v:.0}")),
                        r.engine_loaded_ms.map_or("–".into(), |v| format!("{v:.0}")),
                        r.explore_six_ms.map_or("–".into(), |v| format!("{v:.1}")),
                        r.longest_main_thread_task_ms,
                    ));
                    view! {
                        <pre data-testid="bench-table">{table}</pre>
                        <pre data-testid="bench-json">{serde_json::to_string(&r).unwrap_or_default()}</pre>
                    }.into_any()
                }
            }}
        </main>
    }
}
