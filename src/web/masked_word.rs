//! The masked word: BERT's pre-training task in the explorer. Every
//! `[MASK]`'s top words, seen from both sides, and the same model with
//! attention cut to the tokens left, or right, of the mask: what
//! bidirectional training buys, answered by the model itself.

use bertlab::mlm::MaskFill;
use bertlab::protocol::{MaskedWord, Reply, Request};
use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::client;
use crate::loader::LoaderState;

/// The tutorial's model, offered when the loaded one has no masked-word head.
const MASKED_LM: &str = "google-bert/bert-base-uncased";
/// Masks shown at once (each takes a row of three lists).
const SHOWN: usize = 4;
const TOP_K: usize = 5;

#[component]
pub fn MaskedWordPanel(loader: LoaderState) -> impl IntoView {
    let text = RwSignal::new("The man went to the [MASK] to buy a gallon of milk.".to_string());
    let answer: RwSignal<Option<Result<MaskedWord, String>>> = RwSignal::new(None);
    let running = RwSignal::new(false);
    let has_head = move || loader.info.with(|i| i.as_ref().map(|i| i.masked_lm));
    let predict = move || {
        if running.get_untracked() {
            return;
        }
        running.set(true);
        let text = text.get_untracked();
        spawn_local(async move {
            answer.set(Some(match client::call(Request::FillMask { text, top_k: TOP_K }).await {
                Reply::MaskFilled(m) => Ok(m),
                Reply::Failed { message, .. } => Err(message),
                _ => Err("the engine gave an unexpected answer".into()),
            }));
            running.set(false);
        });
    };
    // another model: the last answer was that model's
    Effect::new(move |_| {
        loader.version.track();
        answer.set(None);
    });
    view! {
        <section class="panel masked-word" aria-label="The masked word">
            <h2>"The masked word"</h2>
            {move || match has_head() {
                None => ().into_any(),
                Some(false) => view! {
                    <p class="hint" data-testid="mask-no-head">
                        {loader.info.with(|i| i.as_ref().map(|i| i.identity.name.clone()).unwrap_or_default())}
                        " has no masked-word head (it was not saved as BertForMaskedLM): predicting a masked word needs one."
                    </p>
                    <button type="button" data-testid="load-masked-lm" on:click=move |_| loader.load_source(MASKED_LM.into())>
                        "Load bert-base-uncased from the hub (440 MB)"
                    </button>
                }.into_any(),
                Some(true) => view! {
                    <form class="mask-form" on:submit=move |ev| { ev.prevent_default(); predict(); }>
                        <input type="text" data-testid="mask-text" aria-label="A text with [MASK]" prop:value=move || text.get()
                            on:input=move |ev| text.set(event_target_value(&ev))/>
                        <button type="submit" data-testid="mask-run" disabled=move || running.get()>"Predict"</button>
                    </form>
                    <p class="hint">"Type [MASK] where a word should be. Left only and right only are the same model with attention cut to the tokens on that side of the mask, in every layer."</p>
                    {move || answer.get().map(|a| match a {
                        Err(e) => view! { <p class="status error" role="alert" data-testid="mask-error">{e}</p> }.into_any(),
                        Ok(m) => answers(m).into_any(),
                    })}
                }.into_any(),
            }}
        </section>
    }
}

/// A row a mask: its predictions from both sides, the left and the right.
fn answers(m: MaskedWord) -> impl IntoView {
    let count = m.both.len();
    let rows: Vec<_> = (0..count.min(SHOWN)).map(|i| (m.both[i].clone(), m.left.get(i).cloned(), m.right.get(i).cloned())).collect();
    view! {
        {(count > SHOWN).then(|| view! {
            <p class="notice" data-testid="mask-more">{format!("The first {SHOWN} of {count} masks are shown.")}</p>
        })}
        <div class="mask-answers" data-testid="mask-answers">
            {rows.into_iter().enumerate().map(|(i, (both, left, right))| view! {
                <div class="mask-row">
                    <h3>{format!("[MASK] {} (token {})", i + 1, both.position)}</h3>
                    <div class="mask-sides">
                        {list("both sides", "mask-both", Some(both))}
                        {list("left only", "mask-left", left)}
                        {list("right only", "mask-right", right)}
                    </div>
                </div>
            }).collect_view()}
        </div>
    }
}

/// One side's top words with their probabilities, as bars.
fn list(title: &'static str, testid: &'static str, fill: Option<MaskFill>) -> impl IntoView {
    view! {
        <figure class="mask-side">
            <figcaption>{title}</figcaption>
            <ol data-testid=testid>
                {fill.map(|f| f.predictions.into_iter().map(|p| view! {
                    <li title=p.sequence.clone() data-token=p.token.to_string()>
                        <span class="mask-word">{p.token_str}</span>
                        <span class="mask-bar" style=format!("width: {:.1}%", 100.0 * p.score.clamp(0.0, 1.0))></span>
                        <span class="mask-score">{format!("{:.3}", p.score)}</span>
                    </li>
                }).collect_view())}
            </ol>
        </figure>
    }
}
