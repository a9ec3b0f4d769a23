//! The sentence explorer: the editable sentence list and the views of what
//! BERT makes of them. Every view reads an `Exploration`; none calls the engine.

use bertlab::analysis::{nearest, pca_2d};
use bertlab::outputs::torch_format;
use bertlab::Pooling;
use leptos::prelude::*;

use crate::heatmap::{self, css_color, Scale};
use bertlab::protocol::{Exploration, SentenceView, MAX_SENTENCES};

#[derive(Clone, Debug, PartialEq)]
pub struct Sentence {
    pub id: u32,
    pub text: String,
}

pub fn examples() -> Vec<Sentence> {
    [
        "Hello, how are you?",
        "The bank raised interest rates again.",
        "We sat on the river bank and watched the boats.",
        "A man is playing a guitar on stage.",
        "Someone performs music with a guitar.",
        "Der Hund schläft im Garten.",
    ]
    .iter()
    .enumerate()
    .map(|(i, t)| Sentence { id: i as u32, text: t.to_string() })
    .collect()
}

/// The longest text a sentence field keeps: far more than any model's 512
/// tokens, and small enough that a pasted book leaves the page responsive.
pub const MAX_CHARS: usize = 20_000;

/// `text` cut to [`MAX_CHARS`] characters, and whether it was longer.
fn capped(text: String) -> (String, bool) {
    match text.char_indices().nth(MAX_CHARS) {
        Some((at, _)) => (text[..at].to_string(), true),
        None => (text, false),
    }
}

#[component]
pub fn SentenceList(sentences: RwSignal<Vec<Sentence>>) -> impl IntoView {
    let next_id = StoredValue::new(1000u32);
    let notice = RwSignal::new(None::<String>);
    let set_text = move |id: u32, field: web_sys::HtmlInputElement| {
        let (text, cut) = capped(field.value());
        if cut {
            field.set_value(&text);
            notice.set(Some(format!("A sentence was cut to its first {MAX_CHARS} characters (the model reads at most 512 tokens).")));
        }
        sentences.update(|all| {
            if let Some(x) = all.iter_mut().find(|x| x.id == id) {
                x.text = text
            }
        });
    };
    // a pasted list (several lines) becomes one sentence per line, below the field
    let paste_lines = move |id: u32, text: String, field: web_sys::HtmlInputElement| {
        let lines: Vec<String> = text.lines().map(str::trim).filter(|l| !l.is_empty()).map(|l| capped(l.to_string()).0).collect();
        let Some((first, rest)) = lines.split_first() else { return };
        field.set_value(first);
        let first_id = next_id.get_value();
        next_id.set_value(first_id + rest.len() as u32);
        sentences.update(|all| {
            let Some(at) = all.iter().position(|x| x.id == id) else { return };
            all[at].text = first.clone();
            for (i, line) in rest.iter().enumerate() {
                all.insert(at + 1 + i, Sentence { id: first_id + i as u32, text: line.clone() });
            }
        });
        let n = sentences.with_untracked(|s| s.len());
        if n > MAX_SENTENCES {
            notice.set(Some(format!("{n} sentences: the views show the first {MAX_SENTENCES}.")));
        }
    };
    let add_after = move |after: Option<u32>| {
        let id = next_id.get_value();
        next_id.set_value(id + 1);
        sentences.update(|s| {
            let at = after.and_then(|a| s.iter().position(|x| x.id == a)).map_or(s.len(), |p| p + 1);
            s.insert(at, Sentence { id, text: String::new() });
        });
        // focus the new field once it is rendered
        request_animation_frame(move || {
            if let Some(el) = document().get_element_by_id(&format!("sentence-{id}")) {
                let _ = wasm_bindgen::JsCast::unchecked_into::<web_sys::HtmlElement>(el).focus();
            }
        });
    };
    view! {
        <section class="panel sentences" aria-label="Sentences">
            <h2>"Sentences"</h2>
            <ol>
                <For each=move || sentences.get() key=|s| s.id let:s>
                    <li>
                        <input
                            type="text"
                            id=format!("sentence-{}", s.id)
                            data-testid="sentence"
                            aria-label="Sentence"
                            placeholder="Type a sentence…"
                            prop:value=s.text.clone()
                            on:input=move |ev| set_text(s.id, event_target(&ev))
                            on:paste=move |ev: leptos::ev::ClipboardEvent| {
                                let text = ev.clipboard_data().and_then(|d| d.get_data("text/plain").ok()).unwrap_or_default();
                                if text.contains('\n') {
                                    ev.prevent_default();
                                    paste_lines(s.id, text, event_target(&ev));
                                }
                            }
                            on:keydown=move |ev: leptos::ev::KeyboardEvent| if ev.key() == "Enter" { add_after(Some(s.id)) }
                        />
                        <button type="button" class="remove" aria-label="Remove sentence" title="Remove"
                            on:click=move |_| sentences.update(|all| all.retain(|x| x.id != s.id))>"×"</button>
                    </li>
                </For>
            </ol>
            <button type="button" data-testid="add-sentence" on:click=move |_| add_after(None)>"+ Add sentence"</button>
            {move || notice.get().map(|n| view! { <p class="notice" data-testid="sentences-notice">{n}</p> })}
            <p class="hint">"Enter adds a sentence below; pasting several lines adds one sentence per line; empty lines are ignored."</p>
        </section>
    }
}

/// All result views, for the explorer's latest run.
#[component]
pub fn Results(result: RwSignal<Option<Result<Exploration, String>>>, running: RwSignal<bool>, selected: RwSignal<usize>) -> impl IntoView {
    let ok = Memo::new(move |_| result.get().and_then(|r| r.ok()));
    let current = Memo::new(move |_| ok.get().and_then(|r| r.sentences.get(r.selected).cloned()));
    Effect::new(move |_| {
        if let Some(r) = ok.get() {
            if selected.get_untracked() >= r.sentences.len() {
                selected.set(0);
            }
        }
    });
    view! {
        <div class="results" aria-busy=move || running.get().to_string()>
            {move || match result.get() {
                Some(Err(e)) => view! { <div class="status error" role="alert" data-testid="run-error">{e}</div> }.into_any(),
                None => view! { <p class="hint">"Type a sentence to see BERT's view of it."</p> }.into_any(),
                Some(Ok(_)) => ().into_any(),
            }}
            <Show when=move || ok.get().is_some()>
                {move || ok.get().filter(|r| r.left_out > 0).map(|r| view! {
                    <p class="notice" data-testid="left-out">{format!("Showing the first {MAX_SENTENCES} sentences; {} more are not run.", r.left_out)}</p>
                })}
                <RunHeader ok=ok selected=selected/>
                <TokensPanel current=current/>
                <HiddenStatePanel current=current/>
                <EmbeddingsPanel ok=ok selected=selected/>
                <MapPanel ok=ok/>
                <AttentionPanel ok=ok current=current/>
            </Show>
        </div>
    }
}

#[component]
fn RunHeader(ok: Memo<Option<Exploration>>, selected: RwSignal<usize>) -> impl IntoView {
    view! {
        <div class="run-header">
            <span data-testid="timing">{move || ok.get().map(|r| format!("forward pass: {:.1} ms on {}", r.forward_ms, r.backend))}</span>
            <label>
                "Sentence "
                <select data-testid="selected-sentence" on:change=move |ev| selected.set(event_target_value(&ev).parse().unwrap_or(0))>
                    {move || ok.get().map(|r| r.sentences.iter().enumerate().map(|(i, s)| {
                        view! { <option value=i.to_string() selected=move || selected.get() == i>{format!("{}. {}", i + 1, s.text)}</option> }
                    }).collect_view())}
                </select>
            </label>
        </div>
    }
}

#[component]
fn TokensPanel(current: Memo<Option<SentenceView>>) -> impl IntoView {
    view! {
        <section class="panel" aria-label="Tokens">
            <h2>"Tokens"</h2>
            {move || current.get().map(|s| view! {
                {s.truncated.then(|| view! {
                    <p class="notice" data-testid="truncated">{format!("This text was truncated to {} tokens, the model's maximum.", s.len())}</p>
                })}
                <div class="chips" data-testid="tokens">
                    {s.tokens.iter().zip(&s.ids).map(|(t, id)| {
                        let class = if t.starts_with("[") && t.ends_with("]") { "chip special" } else if t.starts_with("##") { "chip piece" } else { "chip" };
                        view! { <span class=class title=format!("id {id}") data-id=id.to_string()>{t.clone()}</span> }
                    }).collect_view()}
                </div>
            })}
        </section>
    }
}

#[component]
fn HiddenStatePanel(current: Memo<Option<SentenceView>>) -> impl IntoView {
    let canvas = NodeRef::<leptos::html::Canvas>::new();
    let hidden = move || current.get().map(|s| s.hidden_state.len() / s.len().max(1)).unwrap_or(0);
    Effect::new(move |_| {
        if let (Some(c), Some(s)) = (canvas.get(), current.get()) {
            let h = s.hidden_state.len() / s.len();
            let max = s.hidden_state.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            heatmap::draw(&c, s.len(), h, &s.hidden_state, Scale::Diverging { max });
        }
    });
    let hover = RwSignal::new(String::new());
    view! {
        <section class="panel" aria-label="last_hidden_state">
            <h2>"last_hidden_state "<code data-testid="hidden-shape">{move || current.get().map(|s| format!("[1, {}, {}]", s.len(), hidden()))}</code></h2>
            <canvas class="heatmap wide" node_ref=canvas data-testid="hidden-heatmap"
                on:mousemove=move |ev| if let Some(s) = current.get_untracked() {
                    let h = s.hidden_state.len() / s.len();
                    if let Some((r, c)) = heatmap::cell_at(&ev, s.len(), h) {
                        hover.set(format!("{} · dim {c}: {:.4}", s.tokens[r], s.hidden_state[r * h + c]));
                    }
                }></canvas>
            <div class="hover">{move || hover.get()}</div>
            <pre class="tensor" data-testid="torch-summary">{move || current.get().map(|s| torch_format(&s.hidden_state, &[1, s.len(), s.hidden_state.len() / s.len()]))}</pre>
            <details>
                <summary>"All values (JSON)"</summary>
                <textarea readonly rows="6" data-testid="values-json">{move || current.get().map(|s| values_json(&s))}</textarea>
            </details>
        </section>
    }
}

fn values_json(s: &SentenceView) -> String {
    serde_json::json!({
        "text": s.text,
        "tokens": s.tokens,
        "input_ids": s.ids,
        "shape": [1, s.len(), s.hidden_state.len() / s.len()],
        "last_hidden_state": s.hidden_state,
        "pooler_output": s.pooler,
        "mean_pooled": s.mean,
    })
    .to_string()
}

#[component]
fn EmbeddingsPanel(ok: Memo<Option<Exploration>>, selected: RwSignal<usize>) -> impl IntoView {
    let pooling = RwSignal::new(Pooling::Mean);
    let sim = Memo::new(move |_| ok.get().and_then(|r| r.similarity(pooling.get())));
    view! {
        <section class="panel" aria-label="Sentence embeddings">
            <h2>"Sentence embeddings"</h2>
            <label>"Pooling "
                <select data-testid="pooling" on:change=move |ev| pooling.set(match event_target_value(&ev).as_str() {
                    "cls" => Pooling::Cls, "pooler" => Pooling::Pooler, _ => Pooling::Mean })>
                    <option value="mean">"mean of tokens"</option>
                    <option value="cls">"[CLS] hidden state"</option>
                    <option value="pooler">"pooler output"</option>
                </select>
            </label>
            {move || match (ok.get(), sim.get()) {
                (Some(r), Some(m)) => {
                    let n = r.sentences.len();
                    view! {
                        <table class="similarity" data-testid="similarity">
                            <thead><tr><th></th>{(1..=n).map(|j| view! { <th>{j}</th> }).collect_view()}</tr></thead>
                            <tbody>
                                {(0..n).map(|i| view! {
                                    <tr>
                                        <th title=r.sentences[i].text.clone()>{i + 1}</th>
                                        {(0..n).map(|j| {
                                            let v = m[i * n + j];
                                            view! { <td data-value=v.to_string() style=format!("background:{}", css_color(v, Scale::Diverging { max: 1.0 }))>{format!("{v:.2}")}</td> }
                                        }).collect_view()}
                                    </tr>
                                }).collect_view()}
                            </tbody>
                        </table>
                        <h3>"Nearest to sentence " {selected.get() + 1}</h3>
                        <ol class="neighbours" data-testid="neighbours">
                            {nearest(&m, n, selected.get().min(n - 1)).into_iter().map(|(j, v)| view! {
                                <li><span class="score">{format!("{v:.3}")}</span>" "{r.sentences[j].text.clone()}</li>
                            }).collect_view()}
                        </ol>
                    }.into_any()
                }
                (Some(_), None) => view! { <p class="hint">"This checkpoint has no pooler weights."</p> }.into_any(),
                _ => ().into_any(),
            }}
        </section>
    }
}

#[component]
fn MapPanel(ok: Memo<Option<Exploration>>) -> impl IntoView {
    let tokens = RwSignal::new(false);
    // (label, sentence index, x, y)
    let points = Memo::new(move |_| {
        let r = ok.get()?;
        let (labels, vectors): (Vec<(String, usize)>, Vec<Vec<f32>>) = if tokens.get() {
            r.sentences
                .iter()
                .enumerate()
                .flat_map(|(i, s)| {
                    let h = r.hidden;
                    s.tokens.iter().enumerate().map(move |(t, tok)| ((tok.clone(), i), s.hidden_state[t * h..(t + 1) * h].to_vec()))
                })
                .unzip()
        } else {
            r.sentences.iter().enumerate().map(|(i, s)| ((format!("{}. {}", i + 1, s.text), i), s.mean.clone())).unzip()
        };
        let xy = pca_2d(&vectors);
        Some(labels.into_iter().zip(xy).map(|((l, i), [x, y])| (l, i, x, y)).collect::<Vec<_>>())
    });
    let (w, h, pad) = (640.0f32, 360.0f32, 40.0f32);
    view! {
        <section class="panel" aria-label="Map">
            <h2>"Map "<small>"(PCA of the embeddings)"</small></h2>
            <label><input type="checkbox" data-testid="map-tokens" on:change=move |ev| tokens.set(event_target_checked(&ev))/>" tokens instead of sentences"</label>
            <svg class="map" viewBox=format!("0 0 {w} {h}") role="img" aria-label="2-D map" data-testid="map">
                {move || points.get().map(|pts| {
                    let (minx, maxx) = pts.iter().fold((f32::MAX, f32::MIN), |(a, b), p| (a.min(p.2), b.max(p.2)));
                    let (miny, maxy) = pts.iter().fold((f32::MAX, f32::MIN), |(a, b), p| (a.min(p.3), b.max(p.3)));
                    let sx = move |x: f32| pad + (x - minx) / (maxx - minx).max(1e-9) * (w - 2.0 * pad);
                    let sy = move |y: f32| h - pad - (y - miny) / (maxy - miny).max(1e-9) * (h - 2.0 * pad);
                    pts.into_iter().map(|(label, i, x, y)| {
                        let short: String = label.chars().take(28).collect();
                        // labels on the right half grow leftwards, so they stay inside the map
                        let right = sx(x) > w * 0.6;
                        view! {
                            <g class=format!("point s{}", i % 8)>
                                <circle cx=sx(x) cy=sy(y) r="5"><title>{label.clone()}</title></circle>
                                <text x=if right { sx(x) - 7.0 } else { sx(x) + 7.0 } y=sy(y) + 4.0
                                    text-anchor=if right { "end" } else { "start" }>{short}</text>
                            </g>
                        }
                    }).collect_view()
                })}
            </svg>
        </section>
    }
}

/// The attention view's head: one of them, or their average.
#[derive(Clone, Copy, Debug, PartialEq)]
enum HeadChoice {
    One(usize),
    Average,
}

#[component]
fn AttentionPanel(ok: Memo<Option<Exploration>>, current: Memo<Option<SentenceView>>) -> impl IntoView {
    let layer = RwSignal::new(0usize);
    let head = RwSignal::new(HeadChoice::One(0));
    let dims = Memo::new(move |_| ok.get().map(|r| (r.layers, r.heads)).unwrap_or((0, 0)));
    let matrix = Memo::new(move |_| {
        let s = current.get()?;
        let (layers, heads) = dims.get();
        let l = layer.get().min(layers.saturating_sub(1));
        let n = s.len();
        match head.get() {
            HeadChoice::Average => {
                let mut avg = vec![0.0f32; n * n];
                for k in 0..heads {
                    avg.iter_mut().zip(s.attention(l, k, heads)?).for_each(|(a, v)| *a += v / heads as f32);
                }
                Some(avg)
            }
            HeadChoice::One(hd) => s.attention(l, hd.min(heads.saturating_sub(1)), heads).map(<[f32]>::to_vec),
        }
    });
    let canvas = NodeRef::<leptos::html::Canvas>::new();
    Effect::new(move |_| {
        if let (Some(c), Some(m), Some(s)) = (canvas.get(), matrix.get(), current.get()) {
            heatmap::draw(&c, s.len(), s.len(), &m, Scale::Sequential { max: 1.0 });
        }
    });
    let hover = RwSignal::new(String::new());
    view! {
        <section class="panel" aria-label="Attention">
            <h2>"Attention"</h2>
            <label>"Layer "
                <select data-testid="layer" on:change=move |ev| layer.set(event_target_value(&ev).parse().unwrap_or(0))>
                    {move || (0..dims.get().0).map(|l| view! { <option value=l.to_string()>{l + 1}</option> }).collect_view()}
                </select>
            </label>
            <label>" Head "
                <select data-testid="head" on:change=move |ev| head.set(match event_target_value(&ev).parse() {
                    Ok(h) => HeadChoice::One(h),
                    Err(_) => HeadChoice::Average,
                })>
                    {move || {
                        let heads = dims.get().1;
                        (0..heads).map(|h| view! { <option value=h.to_string()>{h + 1}</option> }).collect_view()
                    }}
                    <option value="average">"average of heads"</option>
                </select>
            </label>
            <div class="attention-grid">
                <canvas class="heatmap square" node_ref=canvas data-testid="attention"
                    data-values=move || matrix.get().map(|m| serde_json::to_string(&m).unwrap_or_default())
                    on:mousemove=move |ev| if let (Some(s), Some(m)) = (current.get_untracked(), matrix.get_untracked()) {
                        if let Some((r, c)) = heatmap::cell_at(&ev, s.len(), s.len()) {
                            hover.set(format!("{} → {}: {:.3}", s.tokens[r], s.tokens[c], m[r * s.len() + c]));
                        }
                    }></canvas>
                <ol class="axis" aria-label="Tokens (rows attend to columns)">
                    {move || current.get().map(|s| s.tokens.into_iter().map(|t| view! { <li>{t}</li> }).collect_view())}
                </ol>
            </div>
            <div class="hover">{move || hover.get()}</div>
            <p class="hint">"Row i: how much token i attends to each token (each row sums to 1)."</p>
        </section>
    }
}
