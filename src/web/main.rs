//! The Bert Lab page: Leptos (client-side rendered), built by trunk.
//! The view talks to the engine only through `client` (the engine runs in a
//! worker, `src/worker/`).

#[cfg(target_arch = "wasm32")]
mod app;
#[cfg(target_arch = "wasm32")]
mod bench;
#[cfg(target_arch = "wasm32")]
mod chart;
#[cfg(target_arch = "wasm32")]
mod client;
#[cfg(target_arch = "wasm32")]
mod explorer;
#[cfg(target_arch = "wasm32")]
mod fetch;
#[cfg(target_arch = "wasm32")]
mod finetune;
#[cfg(target_arch = "wasm32")]
mod heatmap;
#[cfg(target_arch = "wasm32")]
mod loader;
#[cfg(target_arch = "wasm32")]
mod masked_word;
#[cfg(target_arch = "wasm32")]
mod word_in_context;

#[cfg(target_arch = "wasm32")]
fn main() {
    console_error_panic_hook::set_once();
    // the engine worker compiles its wasm while the page fetches the model
    client::start_worker();
    if fetch::query_param("bench").is_some() {
        leptos::mount::mount_to_body(bench::BenchPage);
    } else {
        leptos::mount::mount_to_body(app::App);
    }
}

#[cfg(not(target_arch = "wasm32"))]
fn main() {
    eprintln!("bertlab-web is the browser app: build it with `trunk build` (see README.md)");
    std::process::exit(2);
}
