//! The page: the model panel, the sentences, and the results, wired so that
//! editing sentences re-runs the model (debounced).

use std::time::Duration;

use leptos::prelude::*;
use leptos::task::spawn_local;

use bertlab::protocol::{Reply, Request};

use crate::client;
use crate::explorer::{examples, Results, SentenceList};
use crate::fetch;
use crate::finetune::FinetunePage;
use crate::loader::{LoadState, LoaderState, ModelPanel};
use crate::masked_word::MaskedWordPanel;

const DEBOUNCE: Duration = Duration::from_millis(250);

#[component]
pub fn App() -> impl IntoView {
    let loader = LoaderState::new();
    let sentences = RwSignal::new(examples());
    // the sentence whose attentions are computed and shown
    let selected = RwSignal::new(0usize);
    // whose hidden states the views show (None: the last layer's)
    let layer: RwSignal<Option<usize>> = RwSignal::new(None);
    // another model has other layers: back to its last
    Effect::new(move |_| {
        loader.version.track();
        layer.set(None);
    });
    let result = RwSignal::new(None);
    let running = RwSignal::new(false);
    let generation = StoredValue::new(0u64);

    // Re-run whenever the sentences or the model change; only the latest run's result is kept.
    Effect::new(move |_| {
        let texts: Vec<String> = sentences.get().iter().map(|s| s.text.trim().to_string()).filter(|t| !t.is_empty()).collect();
        let chosen = selected.get();
        // helper workers joining change the backend: run again, so the timing line and the header agree
        loader.info.track();
        let chosen_layer = layer.get();
        if loader.version.get() == 0 {
            return;
        }
        let gen = generation.get_value() + 1;
        generation.set_value(gen);
        if texts.is_empty() {
            result.set(None);
            return;
        }
        set_timeout(
            move || {
                if generation.get_value() != gen {
                    return;
                }
                spawn_local(async move {
                    running.set(true);
                    let r = match client::call(Request::Explore { texts, selected: chosen, layer: chosen_layer }).await {
                        Reply::Explored(e) => Ok(e),
                        Reply::Failed { message, .. } => Err(message),
                        other => Err(format!("unexpected answer from the engine: {other:?}")),
                    };
                    if generation.get_value() == gen {
                        result.set(Some(r));
                    }
                    running.set(false);
                });
            },
            DEBOUNCE,
        );
    });

    loader.load_from_link();

    let tab = RwSignal::new(if fetch::query_param("tab").as_deref() == Some("finetune") { 1 } else { 0 });
    // what the explorer waits for before its first result
    let waiting = Signal::derive(move || match loader.state.get() {
        LoadState::Loading(what) => Some(format!("{what}… the views appear once the model has run on the sentences.")),
        LoadState::Failed(_) if loader.info.with(Option::is_none) => Some("No model loaded: load one in the Model panel.".into()),
        _ if loader.info.with(Option::is_none) => Some("Loading the model…".into()),
        _ => None,
    });
    let tablist = move |ev: leptos::ev::KeyboardEvent| {
        let next = match ev.key().as_str() {
            "ArrowRight" | "ArrowLeft" => 1 - tab.get_untracked(),
            "Home" => 0,
            "End" => 1,
            _ => return,
        };
        ev.prevent_default();
        tab.set(next);
        let id = if next == 0 { "tab-explore" } else { "tab-finetune" };
        if let Some(el) = document().get_element_by_id(id) {
            let _ = wasm_bindgen::JsCast::unchecked_into::<web_sys::HtmlElement>(el).focus();
        }
    };
    view! {
        <header>
            <h1>"Bert Lab"</h1>
            <p class="tagline" data-testid="tagline">{move || match loader.info.get() {
                Some(i) => format!("BERT in your browser tab · {}", i.backend),
                None => "BERT in your browser tab".to_string(),
            }}</p>
            <nav role="tablist" aria-label="Pages" on:keydown=tablist>
                <button type="button" role="tab" id="tab-explore" data-testid="tab-explore" aria-controls="page-explore"
                    tabindex=move || if tab.get() == 0 { "0" } else { "-1" }
                    aria-selected=move || (tab.get() == 0).to_string() on:click=move |_| tab.set(0)>"Explore"</button>
                <button type="button" role="tab" id="tab-finetune" data-testid="tab-finetune" aria-controls="page-finetune"
                    tabindex=move || if tab.get() == 1 { "0" } else { "-1" }
                    aria-selected=move || (tab.get() == 1).to_string() on:click=move |_| tab.set(1)>"Fine-tune"</button>
            </nav>
        </header>
        <main>
            <aside>
                <ModelPanel loader=loader/>
                <div class:hidden=move || tab.get() != 0><SentenceList sentences=sentences selected=selected/></div>
            </aside>
            <div id="page-explore" role="tabpanel" aria-labelledby="tab-explore" class:hidden=move || tab.get() != 0>
                <Results result=result running=running selected=selected layer=layer waiting=waiting/>
                <MaskedWordPanel loader=loader/>
            </div>
            <div id="page-finetune" role="tabpanel" aria-labelledby="tab-finetune" class:hidden=move || tab.get() != 1>
                <FinetunePage loader=loader active=Signal::derive(move || tab.get() == 1)/>
            </div>
        </main>
    }
}
