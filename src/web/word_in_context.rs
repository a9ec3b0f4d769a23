//! A word in context: click a token, and see its vector layer by layer
//! against the same word in the other sentences ("bank" of a river and of
//! money part in the upper layers), and its nearest tokens at the chosen layer.

use bertlab::analysis::{TokenAt, WordInContext};
use bertlab::protocol::{Exploration, Reply, Request};
use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::client;

const W: f64 = 440.0;
const H: f64 = 190.0;
const LEFT: f64 = 40.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 10.0;
const BOTTOM: f64 = 30.0;
/// Lines drawn at once (the rest are said).
const LINES: usize = 8;

#[component]
pub fn WordInContextPanel(ok: Memo<Option<Exploration>>, word: RwSignal<Option<TokenAt>>) -> impl IntoView {
    let answer: RwSignal<Option<Result<WordInContext, String>>> = RwSignal::new(None);
    let generation = StoredValue::new(0u64);
    // a new run (sentences, layer, model) or another token: ask again; only the latest answer is kept
    Effect::new(move |_| {
        let (Some(r), Some(at)) = (ok.get(), word.get()) else {
            answer.set(None);
            return;
        };
        if at.sentence >= r.sentences.len() || at.token >= r.sentences[at.sentence].len() {
            word.set(None);
            return;
        }
        let gen = generation.get_value() + 1;
        generation.set_value(gen);
        let texts = r.sentences.iter().map(|s| s.text.clone()).collect();
        let layer = (r.layer < r.layers).then_some(r.layer);
        spawn_local(async move {
            let a = match client::call(Request::WordInContext { texts, at, layer }).await {
                Reply::WordInContext(w) => Ok(w),
                Reply::Failed { message, .. } => Err(message),
                _ => Err("the engine gave an unexpected answer".into()),
            };
            if generation.get_value() == gen {
                answer.set(Some(a));
            }
        });
    });
    view! {
        <section class="panel" aria-label="A word in context">
            <h2>"A word in context"</h2>
            {move || match answer.get() {
                None => view! { <p class="hint">"Click a token above to follow it through the layers."</p> }.into_any(),
                Some(Err(e)) => view! { <p class="status error" role="alert" data-testid="context-error">{e}</p> }.into_any(),
                Some(Ok(w)) => shown(w, ok.get().map(|r| r.sentences.iter().map(|s| s.text.clone()).collect()).unwrap_or_default()).into_any(),
            }}
        </section>
    }
}

fn shown(w: WordInContext, texts: Vec<String>) -> impl IntoView {
    let title = format!("“{}” in sentence {}", w.word, w.at.sentence + 1);
    let layers = w.occurrences.first().map_or(0, |o| o.1.len().saturating_sub(1));
    let lo = w.occurrences.iter().flat_map(|o| o.1.iter().copied()).fold(0.0f32, f32::min).min(0.0) as f64;
    let x = move |l: usize| LEFT + (W - LEFT - RIGHT) * l as f64 / layers.max(1) as f64;
    let y = move |v: f64| TOP + (H - TOP - BOTTOM) * (1.0 - (v - lo) / (1.0 - lo).max(1e-6));
    let more = w.occurrences.len().saturating_sub(LINES);
    let short = |i: usize| texts.get(i).map(|t| t.chars().take(28).collect::<String>()).unwrap_or_default();
    view! {
        <h3 data-testid="context-word">{title}</h3>
        {if w.occurrences.is_empty() {
            view! {
                <p class="hint" data-testid="context-alone">{format!(
                    "“{}” occurs nowhere else in these sentences: type it into another sentence (in another sense) to compare.", w.word
                )}</p>
            }.into_any()
        } else {
            view! {
                <svg class="context-chart" viewBox=format!("0 0 {W} {H}") role="img" data-testid="context-chart"
                    aria-label=format!("cosine similarity of “{}” to its other occurrences at each layer", w.word)>
                    <g class="grid">
                        {[lo, (lo + 1.0) / 2.0, 1.0].into_iter().map(|v| view! {
                            <line x1=LEFT x2=W - RIGHT y1=y(v) y2=y(v)/>
                            <text class="tick" x=LEFT - 4.0 y=y(v) + 4.0 text-anchor="end">{format!("{v:.1}")}</text>
                        }).collect_view()}
                        {(0..=layers).map(|l| view! {
                            <text class="tick" x=x(l) y=H - BOTTOM + 14.0 text-anchor="middle">{l.to_string()}</text>
                        }).collect_view()}
                        <text class="axis-title" x=(LEFT + W - RIGHT) / 2.0 y=H - 2.0 text-anchor="middle">"layer (0: the embeddings)"</text>
                    </g>
                    {w.occurrences.iter().take(LINES).enumerate().map(|(i, (at, sims))| {
                        let points: Vec<String> = sims.iter().enumerate().map(|(l, &v)| format!("{:.1},{:.1}", x(l), y(v as f64))).collect();
                        view! {
                            <polyline class=format!("context-line s{}", i % 8) points=points.join(" ") data-testid="context-line"
                                data-values=serde_json::to_string(sims).unwrap_or_default() data-sentence=at.sentence.to_string()>
                                <title>{format!("sentence {}, token {}", at.sentence + 1, at.token)}</title>
                            </polyline>
                        }
                    }).collect_view()}
                </svg>
                <ul class="legend">
                    {w.occurrences.iter().take(LINES).enumerate().map(|(i, (at, sims))| view! {
                        <li><span class=format!("key s{}", i % 8)></span>{format!(
                            "{}. {}… (layer 0: {:.2}, last: {:.2})", at.sentence + 1, short(at.sentence),
                            sims.first().copied().unwrap_or(0.0), sims.last().copied().unwrap_or(0.0)
                        )}</li>
                    }).collect_view()}
                </ul>
                {(more > 0).then(|| view! { <p class="notice">{format!("{more} more occurrences are not drawn.")}</p> })}
            }.into_any()
        }}
        <p>{format!("Nearest tokens at layer {}:", w.layer)}</p>
        <ol class="context-nearest" data-testid="context-nearest">
            {w.nearest.iter().map(|(at, token, sim)| view! {
                <li>{format!("{sim:.3} {token} ({}. {}…)", at.sentence + 1, short(at.sentence))}</li>
            }).collect_view()}
        </ol>
    }
}
