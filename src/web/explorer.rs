//! The sentence explorer: the editable sentence list and the views of what
//! BERT makes of them. Every view reads an `Exploration`; none calls the engine.

use bertlab::analysis::{nearest, pca_2d, TokenAt};
use bertlab::charts::{heatmap_values, nice_ticks, outlier_dims, HeatmapRange};
use bertlab::outputs::torch_format;
use bertlab::Pooling;
use leptos::prelude::*;

use crate::heatmap::{self, css_color, Scale};
use crate::word_in_context::WordInContextPanel;
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
pub fn SentenceList(sentences: RwSignal<Vec<Sentence>>, selected: RwSignal<usize>) -> impl IntoView {
    // the views number the non-empty sentences; this is a field's place among them
    let view_index = move |id: u32| {
        sentences.with(|all| {
            let at = all.iter().position(|x| x.id == id)?;
            (!all[at].text.trim().is_empty()).then(|| all[..at].iter().filter(|x| !x.text.trim().is_empty()).count())
        })
    };
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
                    <li class:selected=move || view_index(s.id) == Some(selected.get())>
                        <input
                            type="text"
                            id=format!("sentence-{}", s.id)
                            data-testid="sentence"
                            aria-label=move || match view_index(s.id) { Some(i) => format!("Sentence {}", i + 1), None => "New sentence".into() }
                            on:focus=move |_| if let Some(i) = view_index(s.id) { selected.set(i) }
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
pub fn Results(
    result: RwSignal<Option<Result<Exploration, String>>>,
    running: RwSignal<bool>,
    selected: RwSignal<usize>,
    /// Whose hidden states the views show (`None`: the last layer's).
    layer: RwSignal<Option<usize>>,
    /// What the page is waiting for before a first result, if anything (the model loading).
    #[prop(into)]
    waiting: Signal<Option<String>>,
) -> impl IntoView {
    let ok = Memo::new(move |_| result.get().and_then(|r| r.ok()));
    // the token "a word in context" follows
    let word: RwSignal<Option<TokenAt>> = RwSignal::new(None);
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
                None => match waiting.get() {
                    Some(w) => view! { <p class="hint" data-testid="waiting">{w}</p> }.into_any(),
                    None => view! { <p class="hint">"Type a sentence to see BERT's view of it."</p> }.into_any(),
                },
                Some(Ok(_)) => ().into_any(),
            }}
            <Show when=move || ok.get().is_some()>
                {move || ok.get().filter(|r| r.left_out > 0).map(|r| view! {
                    <p class="notice" data-testid="left-out">{format!("Showing the first {MAX_SENTENCES} sentences; {} more are not run.", r.left_out)}</p>
                })}
                <RunHeader ok=ok selected=selected running=running layer=layer/>
                {move || ok.get().and_then(|r| r.layer_note).map(|n| view! { <p class="notice" data-testid="layer-note">{n}</p> })}
                <div class="views" class:stale=move || running.get()>
                    <TokensPanel ok=ok current=current word=word/>
                    <WordInContextPanel ok=ok word=word/>
                    <HiddenStatePanel ok=ok current=current/>
                    <EmbeddingsPanel ok=ok selected=selected/>
                    <MapPanel ok=ok selected=selected/>
                    <AttentionPanel ok=ok current=current/>
                </div>
            </Show>
        </div>
    }
}

#[component]
fn RunHeader(
    ok: Memo<Option<Exploration>>,
    selected: RwSignal<usize>,
    running: RwSignal<bool>,
    layer: RwSignal<Option<usize>>,
) -> impl IntoView {
    let layers = move || ok.get().map_or(0, |r| r.layers);
    let shown = move || layer.get().unwrap_or_else(layers).min(layers());
    let pick = move |ev| {
        let l: usize = event_target_value(&ev).parse().unwrap_or(0);
        layer.set((l < layers()).then_some(l));
    };
    view! {
        <div class="run-header">
            <label class="layer-pick">
                "Layer "
                <input type="range" min="0" max=move || layers().to_string() step="1" data-testid="hidden-layer"
                    aria-valuetext=move || layer_name(shown(), layers())
                    prop:value=move || shown().to_string() on:input=pick/>
                <span data-testid="hidden-layer-name">{move || layer_name(shown(), layers())}</span>
            </label>
            <span data-testid="timing">{move || ok.get().map(|r| format!("forward pass: {:.1} ms on {}", r.forward_ms, r.backend))}</span>
            <span class="running" data-testid="running" role="status">{move || running.get().then_some("running…")}</span>
            <label>
                "Selected sentence "
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
fn TokensPanel(ok: Memo<Option<Exploration>>, current: Memo<Option<SentenceView>>, word: RwSignal<Option<TokenAt>>) -> impl IntoView {
    let sentence = move || ok.get().map_or(0, |r| r.selected);
    view! {
        <section class="panel" aria-label="Tokens">
            <h2>"Tokens"</h2>
            {move || current.get().map(|s| view! {
                {s.truncated.then(|| view! {
                    <p class="notice" data-testid="truncated">{format!("This text was truncated to {} tokens, the model's maximum.", s.len())}</p>
                })}
                <div class="chips" data-testid="tokens">
                    {s.tokens.iter().zip(&s.ids).enumerate().map(|(i, (t, id))| {
                        let class = if t.starts_with("[") && t.ends_with("]") { "chip special" } else if t.starts_with("##") { "chip piece" } else { "chip" };
                        let at = move || TokenAt { sentence: sentence(), token: i };
                        view! {
                            <button type="button" class=class title=format!("id {id}: follow it through the layers") data-id=id.to_string()
                                aria-pressed=move || (word.get() == Some(at())).to_string() on:click=move |_| word.set(Some(at()))>{t.clone()}</button>
                        }
                    }).collect_view()}
                </div>
            })}
        </section>
    }
}

/// Row labels beside a heatmap `height` pixels tall (its grid cell's when
/// `None`): one per token, as tall as its row.
fn token_rows(tokens: &[String], height: Option<usize>) -> impl IntoView {
    let height = height.map(|h| format!("; height: {h}px")).unwrap_or_default();
    view! {
        <ol class="row-labels" aria-hidden="true" style=format!("grid-template-rows: repeat({}, 1fr){height}", tokens.len().max(1))>
            {tokens.iter().map(|t| view! { <li title=t.clone()>{t.clone()}</li> }).collect_view()}
        </ol>
    }
}

#[component]
fn HiddenStatePanel(ok: Memo<Option<Exploration>>, current: Memo<Option<SentenceView>>) -> impl IntoView {
    let title = move || ok.get().map_or_else(|| "last_hidden_state".to_string(), |r| state_name(r.layer, r.layers));
    let canvas = NodeRef::<leptos::html::Canvas>::new();
    let range = RwSignal::new(HeatmapRange::Clipped);
    let hidden = move || current.get().map(|s| s.hidden_state.len() / s.len().max(1)).unwrap_or(0);
    // the values as drawn (−1..1) and the |x| that ±1 stands for
    let scaled = Memo::new(move |_| {
        let s = current.get()?;
        let h = s.hidden_state.len() / s.len().max(1);
        Some(heatmap_values(&s.hidden_state, s.len(), h, range.get()))
    });
    Effect::new(move |_| {
        if let (Some(c), Some(s), Some((v, _))) = (canvas.get(), current.get(), scaled.get()) {
            heatmap::draw(&c, s.len(), v.len() / s.len().max(1), &v, Scale::Diverging { max: 1.0 });
        }
    });
    let height = move || current.get().map_or(0, |s| (s.len() * 14).clamp(60, 420));
    let hover = RwSignal::new(String::new());
    // a readout belongs to the sentence it was read from
    Effect::new(move |_| {
        current.track();
        hover.set(String::new());
    });
    let outliers = move || {
        let s = current.get()?;
        let (_, limit) = scaled.get()?;
        let h = s.hidden_state.len() / s.len().max(1);
        let found = outlier_dims(&s.hidden_state, s.len(), h, limit?, 5);
        (!found.is_empty()).then(|| {
            let named: Vec<String> = found.iter().map(|(d, v, r)| format!("dim {d} ({v:+.2} at {})", s.tokens[*r])).collect();
            format!("Beyond the colour scale: {}.", named.join(", "))
        })
    };
    view! {
        <section class="panel" aria-label="hidden states">
            <h2><span data-testid="hidden-title">{title}</span>" "<code data-testid="hidden-shape">{move || current.get().map(|s| format!("[1, {}, {}]", s.len(), hidden()))}</code></h2>
            <div class="row controls-row">
                <label>"Colour scale "
                    <select data-testid="hidden-range" on:change=move |ev| range.set(match event_target_value(&ev).as_str() {
                        "full" => HeatmapRange::Full, "dim" => HeatmapRange::PerDimension, _ => HeatmapRange::Clipped })>
                        <option value="clip">"±99th percentile of |x| (outliers saturate)"</option>
                        <option value="full">"±largest |x|"</option>
                        <option value="dim">"each dimension by its largest |x|"</option>
                    </select>
                </label>
                {move || scaled.get().map(|(_, max)| {
                    let labels = match max {
                        Some(m) => [format!("{:.2}", -m), "0".into(), format!("{m:.2}")],
                        None => ["−max".into(), "0".into(), "+max of each dim".into()],
                    };
                    heatmap::colour_bar(Scale::Diverging { max: 1.0 }, labels, "hidden-colour-bar")
                })}
            </div>
            <div class="heatmap-frame">
                {move || current.get().map(|s| token_rows(&s.tokens, Some(height())))}
                <div class="heatmap-body">
                    <canvas class="heatmap wide" node_ref=canvas data-testid="hidden-heatmap"
                        aria-label="hidden states heatmap: rows are tokens, columns are dimensions"
                        style=move || format!("height: {}px", height())
                        on:mousemove=move |ev| if let Some(s) = current.get_untracked() {
                            let h = s.hidden_state.len() / s.len();
                            if let Some((r, c)) = heatmap::cell_at(&ev, s.len(), h) {
                                hover.set(format!("{} · dim {c}: {:.4}", s.tokens[r], s.hidden_state[r * h + c]));
                            }
                        }></canvas>
                    <div class="dim-axis" aria-hidden="true">
                        {move || {
                            let h = hidden();
                            nice_ticks(0.0, h.saturating_sub(1) as f64, 6).into_iter().map(|t| view! {
                                <span style=format!("left: {:.2}%", (t + 0.5) / h.max(1) as f64 * 100.0)>{t as usize}</span>
                            }).collect_view()
                        }}
                    </div>
                    <div class="axis-title">"dimension"</div>
                </div>
            </div>
            <div class="hover" data-testid="hidden-hover">{move || hover.get()}</div>
            <p class="notice subtle" data-testid="outliers">{outliers}</p>
            <pre class="tensor" data-testid="torch-summary">{move || current.get().map(|s| torch_format(&s.hidden_state, &[1, s.len(), s.hidden_state.len() / s.len()]))}</pre>
            <details>
                <summary>"All values (JSON)"</summary>
                <textarea readonly rows="6" data-testid="values-json" aria-label="All values as JSON">{move || current.get().zip(ok.get()).map(|(s, r)| values_json(&s, r.layer, r.layers))}</textarea>
            </details>
        </section>
    }
}

/// The selected sentence's values; its states under transformers' name for the layer shown.
fn values_json(s: &SentenceView, layer: usize, layers: usize) -> String {
    let mut v = serde_json::json!({
        "text": s.text,
        "tokens": s.tokens,
        "input_ids": s.ids,
        "layer": layer,
        "shape": [1, s.len(), s.hidden_state.len() / s.len()],
        "pooler_output": s.pooler,
        "mean_pooled": s.mean,
    });
    v[state_name(layer, layers)] = serde_json::json!(s.hidden_state);
    v.to_string()
}

/// How the layer slider names a layer.
fn layer_name(layer: usize, layers: usize) -> String {
    match layer {
        0 => format!("0 of {layers}: the embeddings"),
        l if l == layers => format!("{l} of {layers}: the last"),
        l => format!("{l} of {layers}"),
    }
}

/// The states' name in transformers: the last layer's is `last_hidden_state`.
fn state_name(layer: usize, layers: usize) -> String {
    if layer == layers {
        "last_hidden_state".into()
    } else {
        format!("hidden_states[{layer}]")
    }
}

/// A sentence's label in a narrow place: its number and first words.
fn short(i: usize, text: &str) -> String {
    let cut: String = text.chars().take(18).collect();
    format!("{}. {}{}", i + 1, cut, if text.chars().count() > 18 { "…" } else { "" })
}

#[component]
fn EmbeddingsPanel(ok: Memo<Option<Exploration>>, selected: RwSignal<usize>) -> impl IntoView {
    let pooling = RwSignal::new(Pooling::Mean);
    let sim = Memo::new(move |_| ok.get().and_then(|r| r.similarity(pooling.get())));
    view! {
        <section class="panel" aria-label="Sentence embeddings">
            <h2>"Sentence embeddings"</h2>
            <div class="row controls-row">
                <label>"Pooling "
                    <select data-testid="pooling" on:change=move |ev| pooling.set(match event_target_value(&ev).as_str() {
                        "cls" => Pooling::Cls, "pooler" => Pooling::Pooler, _ => Pooling::Mean })>
                        <option value="mean">"mean of tokens"</option>
                        <option value="cls">"[CLS] hidden state"</option>
                        <option value="pooler">"pooler output"</option>
                    </select>
                </label>
                {heatmap::colour_bar(Scale::Diverging { max: 1.0 }, ["−1".into(), "0".into(), "1".into()], "similarity-colour-bar")}
                <span class="hint">"cosine similarity; click a row to select its sentence"</span>
            </div>
            {move || match (ok.get(), sim.get()) {
                (Some(r), Some(m)) => {
                    let n = r.sentences.len();
                    view! {
                        <div class="scroll-x">
                        <table class="similarity" data-testid="similarity">
                            <thead><tr><th></th>{(0..n).map(|j| view! { <th scope="col" title=r.sentences[j].text.clone()>{(j + 1).to_string()}</th> }).collect_view()}</tr></thead>
                            <tbody>
                                {(0..n).map(|i| view! {
                                    <tr class:selected=move || selected.get() == i data-testid="similarity-row" on:click=move |_| selected.set(i)>
                                        <th scope="row" title=r.sentences[i].text.clone()>{short(i, &r.sentences[i].text)}</th>
                                        {(0..n).map(|j| {
                                            let v = m[i * n + j];
                                            view! { <td data-value=v.to_string() style=format!("background:{}", css_color(v, Scale::Diverging { max: 1.0 }))>{format!("{v:.2}")}</td> }
                                        }).collect_view()}
                                    </tr>
                                }).collect_view()}
                            </tbody>
                        </table>
                        </div>
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

fn is_special(token: &str) -> bool {
    (token.starts_with('[') && token.ends_with(']')) || token.chars().all(|c| c.is_ascii_punctuation())
}

#[component]
fn MapPanel(ok: Memo<Option<Exploration>>, selected: RwSignal<usize>) -> impl IntoView {
    let tokens = RwSignal::new(false);
    let hide_special = RwSignal::new(true);
    // zoom around the centre, 1 = everything fits
    let zoom = RwSignal::new(1.0f32);
    let hover = RwSignal::new(String::new());
    // (label, sentence index, x, y) and the variance each axis explains
    let points = Memo::new(move |_| {
        let r = ok.get()?;
        let (labels, vectors): (Vec<(String, usize)>, Vec<Vec<f32>>) = if tokens.get() {
            let hide = hide_special.get();
            r.sentences
                .iter()
                .enumerate()
                .flat_map(|(i, s)| {
                    let h = r.hidden;
                    s.tokens
                        .iter()
                        .enumerate()
                        .filter(move |(_, tok)| !(hide && is_special(tok)))
                        .map(move |(t, tok)| ((tok.clone(), i), s.hidden_state[t * h..(t + 1) * h].to_vec()))
                })
                .unzip()
        } else {
            r.sentences.iter().enumerate().map(|(i, s)| ((format!("{}. {}", i + 1, s.text), i), s.mean.clone())).unzip()
        };
        let pca = pca_2d(&vectors);
        Some((labels.into_iter().zip(pca.coords).map(|((l, i), [x, y])| (l, i, x, y)).collect::<Vec<_>>(), pca.explained))
    });
    let (w, h, pad) = (640.0f32, 360.0f32, 44.0f32);
    view! {
        <section class="panel" aria-label="Map">
            <h2>"Map "<small>"(PCA of the embeddings)"</small></h2>
            <div class="row controls-row">
                <label><input type="checkbox" data-testid="map-tokens" on:change=move |ev| tokens.set(event_target_checked(&ev))/>" tokens instead of sentences"</label>
                <label class:hidden=move || !tokens.get()><input type="checkbox" data-testid="map-hide-special" prop:checked=move || hide_special.get()
                    on:change=move |ev| hide_special.set(event_target_checked(&ev))/>" hide [CLS], [SEP] and punctuation"</label>
                <button type="button" aria-label="Zoom in" on:click=move |_| zoom.update(|z| *z = (*z * 1.5).min(20.0))>"+"</button>
                <button type="button" aria-label="Zoom out" on:click=move |_| zoom.update(|z| *z = (*z / 1.5).max(1.0))>"−"</button>
            </div>
            <svg class="map" viewBox=format!("0 0 {w} {h}") role="img" aria-label="2-D map of the sentences (PCA); click a point to select its sentence" data-testid="map"
                on:wheel=move |ev: leptos::ev::WheelEvent| { ev.prevent_default(); zoom.update(|z| *z = (*z * if ev.delta_y() < 0.0 { 1.2 } else { 1.0 / 1.2 }).clamp(1.0, 20.0)) }>
                {move || points.get().map(|(pts, explained)| {
                    let (minx, maxx) = pts.iter().fold((f32::MAX, f32::MIN), |(a, b), p| (a.min(p.2), b.max(p.2)));
                    let (miny, maxy) = pts.iter().fold((f32::MAX, f32::MIN), |(a, b), p| (a.min(p.3), b.max(p.3)));
                    let (cx, cy, z) = ((minx + maxx) / 2.0, (miny + maxy) / 2.0, zoom.get());
                    let sx = move |x: f32| w / 2.0 + (x - cx) / (maxx - minx).max(1e-9) * (w - 2.0 * pad) * z;
                    let sy = move |y: f32| h / 2.0 - (y - cy) / (maxy - miny).max(1e-9) * (h - 2.0 * pad) * z;
                    let many = pts.len() > 24;
                    view! {
                        <line class="axis" x1=pad y1=h - pad / 2.0 x2=w - pad y2=h - pad / 2.0/>
                        <line class="axis" x1=pad / 2.0 y1=pad x2=pad / 2.0 y2=h - pad/>
                        <text class="axis-title" x=w / 2.0 y=h - 6.0 text-anchor="middle">{format!("PC 1 ({:.0}% of variance)", 100.0 * explained[0])}</text>
                        <text class="axis-title" transform=format!("translate(14 {}) rotate(-90)", h / 2.0) text-anchor="middle">{format!("PC 2 ({:.0}%)", 100.0 * explained[1])}</text>
                        {pts.into_iter().map(|(label, i, x, y)| {
                            let short: String = label.chars().take(28).collect();
                            let right = sx(x) > w * 0.6;
                            let full = label.clone();
                            view! {
                                <g class=format!("point s{}", i % 8) class:selected=move || selected.get() == i data-testid="map-point"
                                    on:click=move |_| selected.set(i) on:mouseenter=move |_| hover.set(full.clone())>
                                    <circle cx=sx(x) cy=sy(y) r="5"><title>{label.clone()}</title></circle>
                                    // with many points only the selected sentence's are labelled; hover names the rest
                                    <text class:faded=move || many && selected.get() != i x=if right { sx(x) - 7.0 } else { sx(x) + 7.0 } y=sy(y) + 4.0
                                        text-anchor=if right { "end" } else { "start" }>{short}</text>
                                </g>
                            }
                        }).collect_view()}
                    }
                })}
            </svg>
            <div class="legend" data-testid="map-legend">
                {move || ok.get().map(|r| r.sentences.iter().enumerate().map(|(i, s)| view! {
                    <button type="button" class=format!("key point s{}", i % 8) class:selected=move || selected.get() == i
                        title=s.text.clone() on:click=move |_| selected.set(i)>{short(i, &s.text)}</button>
                }).collect_view())}
            </div>
            <div class="hover">{move || hover.get()}</div>
        </section>
    }
}

/// The attention view's head: one of them, or their average.
#[derive(Clone, Copy, Debug, PartialEq)]
enum HeadChoice {
    One(usize),
    Average,
}

/// One small attention map of the overview (BertViz's model view): click to open it.
#[component]
fn Thumbnail(
    current: Memo<Option<SentenceView>>,
    l: usize,
    k: usize,
    heads: usize,
    layer: RwSignal<usize>,
    head: RwSignal<HeadChoice>,
) -> impl IntoView {
    let canvas = NodeRef::<leptos::html::Canvas>::new();
    Effect::new(move |_| {
        if let (Some(c), Some(s)) = (canvas.get(), current.get()) {
            if let Some(m) = s.attention(l, k, heads) {
                heatmap::draw(&c, s.len(), s.len(), m, Scale::Sequential { max: 1.0 });
            }
        }
    });
    view! {
        <button type="button" class="thumb" class:selected=move || layer.get() == l && head.get() == HeadChoice::One(k)
            aria-label=format!("layer {} head {}", l + 1, k + 1) title=format!("layer {} head {}", l + 1, k + 1)
            on:click=move |_| { layer.set(l); head.set(HeadChoice::One(k)) }>
            <canvas class="heatmap" node_ref=canvas></canvas>
        </button>
    }
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
    Effect::new(move |_| {
        current.track();
        layer.track();
        head.track();
        hover.set(String::new());
    });
    view! {
        <section class="panel" aria-label="Attention">
            <h2>"Attention "<small>"(selected sentence)"</small></h2>
            <div class="row controls-row">
                <label>"Layer "
                    <select data-testid="layer" on:change=move |ev| layer.set(event_target_value(&ev).parse().unwrap_or(0))>
                        {move || (0..dims.get().0).map(|l| view! { <option value=l.to_string() selected=move || layer.get() == l>{l + 1}</option> }).collect_view()}
                    </select>
                </label>
                <label>" Head "
                    <select data-testid="head" on:change=move |ev| head.set(match event_target_value(&ev).parse() {
                        Ok(h) => HeadChoice::One(h),
                        Err(_) => HeadChoice::Average,
                    })>
                        {move || {
                            let heads = dims.get().1;
                            (0..heads).map(|h| view! { <option value=h.to_string() selected=move || head.get() == HeadChoice::One(h)>{h + 1}</option> }).collect_view()
                        }}
                        <option value="average" selected=move || head.get() == HeadChoice::Average>"average of heads"</option>
                    </select>
                </label>
                {heatmap::colour_bar(Scale::Sequential { max: 1.0 }, ["0".into(), "0.5".into(), "1".into()], "attention-colour-bar")}
            </div>
            {move || current.get().map(|s| {
                let n = s.len();
                let cell = (448 / n.max(1)).clamp(6, 28);
                view! {
                    <div class="scroll-x">
                    <div class="attention-frame" style=format!("--cells: {n}; --cell: {cell}px")>
                        <div class="col-labels" aria-hidden="true">{s.tokens.iter().map(|t| view! { <span title=t.clone()>{t.clone()}</span> }).collect_view()}</div>
                        {token_rows(&s.tokens, None)}
                        <canvas class="heatmap attention" node_ref=canvas data-testid="attention"
                            aria-label="attention heatmap: row i is how much token i attends to each token"
                            data-values=move || matrix.get().map(|m| serde_json::to_string(&m).unwrap_or_default())
                            on:mousemove=move |ev| if let (Some(s), Some(m)) = (current.get_untracked(), matrix.get_untracked()) {
                                if let Some((r, c)) = heatmap::cell_at(&ev, s.len(), s.len()) {
                                    hover.set(format!("{} → {}: {:.3}", s.tokens[r], s.tokens[c], m[r * s.len() + c]));
                                }
                            }></canvas>
                    </div>
                    </div>
                }
            })}
            <div class="hover" data-testid="attention-hover">{move || hover.get()}</div>
            <p class="hint">"Row i: how much token i attends to each token (each row sums to 1)."</p>
            <details open>
                <summary>"Every layer and head (click one to open it)"</summary>
                <div class="thumbs" data-testid="attention-overview" style=move || format!("grid-template-columns: 3rem repeat({}, 1fr)", dims.get().1.max(1))>
                    {move || {
                        let (layers, heads) = dims.get();
                        (0..layers).map(|l| view! {
                            <span class="thumb-label">{format!("L{}", l + 1)}</span>
                            {(0..heads).map(|k| view! { <Thumbnail current=current l=l k=k heads=heads layer=layer head=head/> }).collect_view()}
                        }).collect_view()
                    }}
                </div>
            </details>
        </section>
    }
}
