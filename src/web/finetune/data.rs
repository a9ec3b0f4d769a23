//! The Fine-tune page's data: a built-in task (GLUE MRPC, SST-2, CoNLL-2003:
//! the copy bundled next to the page, or the hub's through its datasets
//! server) or the user's own files (a TSV, CSV or JSON lines table with a
//! column picker, or CoNLL `word … TAG` lines), and what each split holds
//! before a run: counts per label, the majority baseline, examples, and
//! anything that was skipped or looks wrong.

use bertlab::classifier::Labels;
use bertlab::task::table::{Format, Table};
use bertlab::task::{read, Builtin, Columns, Examples, Source, Target, TaskData, TaskKind, TextExample, WordsExample};
use leptos::prelude::*;
use leptos::task::spawn_local;

use super::state::{Choice, Data, Picked};
use super::Ft;
use crate::fetch;

/// A built-in task in words, for the task choice and the data's source.
fn title(b: Builtin) -> &'static str {
    match b {
        Builtin::Mrpc => "GLUE MRPC (paraphrase pairs)",
        Builtin::Sst2 => "GLUE SST-2 (sentiment)",
        Builtin::Conll2003 => "CoNLL-2003 (named entities)",
    }
}

/// The hub's dataset, config and validation split name of a built-in task.
fn hub_dataset(b: Builtin) -> ((&'static str, &'static str), &'static str) {
    match b {
        Builtin::Mrpc => (("nyu-mll/glue", "mrpc"), "validation"),
        Builtin::Sst2 => (("nyu-mll/glue", "sst2"), "validation"),
        Builtin::Conll2003 => (("eriktks/conll2003", "conll2003"), "validation"),
    }
}

/// A built-in task's copy bundled next to the page (set-up copies it there), if there is one.
pub fn load_bundled(ft: Ft, b: Builtin) {
    ft.data.set(None);
    ft.data_error.set(None);
    spawn_local(async move {
        let [train, dev] = b.files();
        let path = |f: &str| format!("data/{}/{f}", b.name());
        let texts = (fetch::fetch_text(&path(train)).await, fetch::fetch_text(&path(dev)).await);
        if ft.choice.get_untracked() != Choice::Builtin(b) {
            return;
        }
        match texts {
            (Some(t), Some(d)) => {
                let src = b.source();
                match read(b.name(), (&src, &t), (&src, &d), Some(b.labels())) {
                    Ok(task) => ft.data.set(Some(Data { source: format!("{} (bundled)", title(b)), task })),
                    Err(e) => ft.data_error.set(Some(e.to_string())),
                }
            }
            _ => {
                ft.data_error.set(Some(format!("No {} copy next to the page: fetch it from the hub, or choose your own files.", title(b))))
            }
        }
    });
}

/// Hugging Face's datasets server, unless the page's link says `?datasets=`.
const DEFAULT_DATASETS: &str = "https://datasets-server.huggingface.co";

/// Where "Fetch … from the hub" goes, and the origin to name on the button
/// when the link chose one the user did not (the click is their consent).
fn datasets_server() -> (String, Option<String>) {
    let base = fetch::query_param("datasets").unwrap_or_else(|| DEFAULT_DATASETS.into());
    let foreign = fetch::foreign_origin(&base, DEFAULT_DATASETS);
    (base, foreign)
}

/// A hub row as a task's example.
fn example_of(b: Builtin, row: &serde_json::Value) -> Option<Result<TextExample, WordsExample>> {
    let text = |k: &str| row[k].as_str().map(str::to_string);
    let class = |k: &str| row[k].as_u64().map(|c| c as u32);
    match b {
        Builtin::Mrpc => {
            Some(Ok(TextExample { text: text("sentence1")?, pair: Some(text("sentence2")?), target: Target::Class(class("label")?) }))
        }
        Builtin::Sst2 => Some(Ok(TextExample { text: text("sentence")?, pair: None, target: Target::Class(class("label")?) })),
        Builtin::Conll2003 => {
            let words = row["tokens"].as_array()?.iter().map(|w| w.as_str().map(str::to_string)).collect::<Option<Vec<_>>>()?;
            let tags = row["ner_tags"].as_array()?.iter().map(|t| t.as_u64().map(|t| t as u32)).collect::<Option<Vec<_>>>()?;
            Some(Err(WordsExample { words, tags }))
        }
    }
}

/// A built-in task's training and validation splits from the hub.
fn fetch_from_hub(ft: Ft, b: Builtin) {
    let (base, foreign) = datasets_server();
    let progress = ft.hub_progress;
    spawn_local(async move {
        let (dataset, validation) = hub_dataset(b);
        let report = move |split: &'static str| move |done: usize, total: usize| progress.set(format!("{split}: {done}/{total} examples"));
        let split = |rows: Vec<serde_json::Value>| -> Result<Examples, String> {
            let mut texts = Vec::new();
            let mut words = Vec::new();
            for (i, r) in rows.iter().enumerate() {
                match example_of(b, r) {
                    Some(Ok(t)) => texts.push(t),
                    Some(Err(w)) => words.push(w),
                    None => return Err(format!("row {i} of the hub's {} is not in its usual shape", b.name())),
                }
            }
            Ok(if words.is_empty() { Examples::Texts(texts) } else { Examples::Words(words) })
        };
        let result = async {
            let train = split(fetch::hub_rows(&base, dataset, "train", &report("train")).await?)?;
            let dev = split(fetch::hub_rows(&base, dataset, validation, &report("validation")).await?)?;
            TaskData::from_examples(b.name(), b.labels(), train, dev).map_err(|e| e.to_string())
        }
        .await;
        if ft.choice.get_untracked() != Choice::Builtin(b) {
            return;
        }
        match result {
            Ok(task) => {
                ft.data_error.set(None);
                let source = match foreign {
                    Some(origin) => format!("{} (from {origin})", title(b)),
                    None => format!("{} (Hugging Face hub)", title(b)),
                };
                ft.data.set(Some(Data { source, task }));
            }
            Err(e) => ft.data_error.set(Some(e)),
        }
    });
}

/// How a picked file is read: a table by its extension, else CoNLL lines.
fn source_of(name: &str, columns: &Columns) -> Source {
    match Format::of_name(name) {
        Some(f) => Source::Table(f, columns.clone()),
        None => Source::Conll,
    }
}

/// The user's two files, read as the chosen columns say.
fn read_files(ft: Ft) {
    let (Some(train), Some(dev)) = ft.files.get() else { return };
    let columns = ft.columns.get();
    let task = read("your files", (&source_of(&train.name, &columns), &train.text), (&source_of(&dev.name, &columns), &dev.text), None);
    match task {
        Ok(task) => {
            ft.data_error.set(None);
            ft.data.set(Some(Data { source: format!("{} + {}", train.name, dev.name), task }));
        }
        Err(e) => {
            ft.data.set(None);
            ft.data_error.set(Some(e.to_string()));
        }
    }
}

/// A split's summary line: examples (or sentences) and each label's share.
fn describe(d: &TaskData, split: &Examples) -> String {
    let s = d.summary(split);
    let total: usize = s.counts.iter().map(|c| c.1).sum();
    let shares: Vec<String> = s.counts.iter().map(|(n, c)| format!("{n} {c} ({:.1}%)", 100.0 * *c as f64 / total.max(1) as f64)).collect();
    match d.task.kind {
        TaskKind::Words => format!("{} sentences; labelled words: {}", s.examples, shares.join(", ")),
        _ if shares.is_empty() => format!("{} examples; the targets are numbers", s.examples),
        _ => format!("{} examples; {}", s.examples, shares.join(", ")),
    }
}

#[component]
pub fn DataPanel(ft: Ft) -> impl IntoView {
    let hub_progress = ft.hub_progress;
    // the bundled copy of a built-in task when it is chosen; the files (and their columns) when they change
    Effect::new(move |_| match ft.choice.get() {
        Choice::Builtin(b) => load_bundled(ft, b),
        Choice::Files => {
            ft.data.set(None);
            ft.data_error.set(None);
        }
    });
    Effect::new(move |_| {
        ft.files.track();
        ft.columns.track();
        if ft.choice.get_untracked() == Choice::Files {
            read_files(ft);
        }
    });
    let pick = move |ev: leptos::ev::Event, dev: bool| {
        let input: web_sys::HtmlInputElement = event_target(&ev);
        let Some(file) = input.files().and_then(|l| l.get(0)) else { return };
        spawn_local(async move {
            let name = file.name();
            if file.size() > bertlab::task::MAX_DATA_BYTES as f64 {
                return ft.data_error.set(Some(format!("{name} is {} bytes: more than a data file may hold", file.size())));
            }
            let text = match wasm_bindgen_futures::JsFuture::from(file.text()).await {
                Ok(t) => t.as_string().unwrap_or_default(),
                Err(_) => return ft.data_error.set(Some(format!("cannot read {name}"))),
            };
            ft.choice.set(Choice::Files);
            ft.files.update(|f| if dev { f.1 = Some(Picked { name, text }) } else { f.0 = Some(Picked { name, text }) });
            if ft.files.with_untracked(|f| f.1.is_none()) {
                ft.data_error.set(Some("now choose the validation file".into()));
            }
        });
    };
    // a table's columns, for the pickers
    let table_columns = Memo::new(move |_| {
        ft.files.with(|(train, _)| {
            let t = train.as_ref()?;
            let f = Format::of_name(&t.name)?;
            Table::parse(&t.text, f).ok().map(|table| table.columns)
        })
    });
    let column_picker = move |role: &'static str, label: &'static str| {
        view! {
            <label class="param">{label}
                <select data-testid=format!("{role}-column") on:change=move |ev| {
                    let v = event_target_value(&ev);
                    let v = (!v.is_empty()).then_some(v);
                    ft.columns.update(|c| match role { "text" => c.text = v, "pair" => c.pair = v, _ => c.label = v });
                }>
                    <option value="">"(found by name)"</option>
                    {move || table_columns.get().unwrap_or_default().into_iter().map(|c| view! { <option value=c.clone()>{c.clone()}</option> }).collect_view()}
                </select>
            </label>
        }
    };
    let builtin = move || match ft.choice.get() {
        Choice::Builtin(b) => Some(b),
        Choice::Files => None,
    };
    view! {
        <section class="panel" aria-label="Data">
            <h2>"Data"</h2>
            <label class="param">"task"
                <select data-testid="task" on:change=move |ev| {
                    let v = event_target_value(&ev);
                    ft.choice.set(Builtin::parse(&v).map_or(Choice::Files, Choice::Builtin));
                }>
                    {Builtin::ALL.map(|b| view! { <option value=b.name() selected=move || ft.choice.get() == Choice::Builtin(b)>{title(b)}</option> }).into_iter().collect_view()}
                    <option value="files" selected=move || ft.choice.get() == Choice::Files>"your own files (a table, or CoNLL word … TAG lines)"</option>
                </select>
            </label>
            {move || ft.data.get().map(|d| {
                let t = &d.task;
                let labels = match &t.task.labels {
                    Labels::Classes(n) => format!("{} labels: {}", n.len(), n.join(", ")),
                    Labels::Regression => "a number each (regression)".into(),
                };
                let shape = match t.task.kind {
                    TaskKind::Texts { pair: true } => "sentence pairs",
                    TaskKind::Texts { pair: false } => "single sentences",
                    TaskKind::Words => "words tagged one by one",
                };
                let baseline = t.summary(&t.eval).majority_accuracy;
                let examples = t.summary(&t.train).first;
                view! {
                    <p data-testid="data-summary"><b>{d.source.clone()}</b>{format!(" · {shape}, {labels}")}</p>
                    <ul class="data-stats">
                        <li data-testid="train-stats">"train: "{describe(t, &t.train)}</li>
                        <li data-testid="dev-stats">"validation: "{describe(t, &t.eval)}
                            {baseline.map(|b| format!(" · majority-class baseline {:.1}% accuracy", 100.0 * b))}</li>
                    </ul>
                    {(!t.notes.is_empty()).then(|| view! {
                        <details class="notice" data-testid="skipped"><summary>{format!("{} notes on the data (rows skipped, rare labels)", t.notes.len())}</summary>
                            <ul>{t.notes.iter().map(|s| view! { <li>{s.clone()}</li> }).collect_view()}</ul>
                        </details>
                    })}
                    <ul class="examples" data-testid="examples">{examples.into_iter().map(|e| view! { <li>{e}</li> }).collect_view()}</ul>
                }
            })}
            {move || ft.data_error.get().map(|e| view! { <div class="status error" role="alert" data-testid="data-error">{e}</div> })}
            {move || builtin().map(|b| view! {
                <div class="row">
                    <button type="button" data-testid="fetch-hub" on:click=move |_| fetch_from_hub(ft, b)>{match datasets_server().1 {
                        Some(origin) => format!("Fetch {} from {origin} (this page's link chose it)", title(b)),
                        None => format!("Fetch {} from the Hugging Face hub", title(b)),
                    }}</button>
                    <span data-testid="fetch-progress">{move || hub_progress.get()}</span>
                </div>
            })}
            <div class="row">
                <label>"Training file "<input type="file" accept=".tsv,.csv,.jsonl,.json,.txt,.conll" data-testid="train-file" on:change=move |ev| pick(ev, false)/></label>
                <label>"Validation file "<input type="file" accept=".tsv,.csv,.jsonl,.json,.txt,.conll" data-testid="dev-file" on:change=move |ev| pick(ev, true)/></label>
            </div>
            {move || table_columns.get().filter(|_| ft.choice.get() == Choice::Files).map(|_| view! {
                <div class="row columns" data-testid="column-picker">
                    {column_picker("text", "text column")}
                    {column_picker("pair", "second text column")}
                    {column_picker("label", "label column")}
                </div>
            })}
        </section>
    }
}
