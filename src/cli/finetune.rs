//! `bertlab finetune`: the fine-tuning of the page, natively: any task
//! (`--task`, transformers' `run_glue` and `run_ner` names), BERT itself or
//! a head on frozen features (MRPC).

use std::path::{Path, PathBuf};

use bertlab::classifier::TrainLayers;
use bertlab::finetune::baseline::logistic_regression_baseline;
use bertlab::finetune::features::extract_features;
use bertlab::finetune::head_io::TrainedHead;
use bertlab::finetune::training::{predict_batched, Event, HeadBackend, RunSetup, Split, Training};
use bertlab::finetune::{evaluate, Metrics, Scores, TrainConfig, HEAD_LEARNING_RATE};
use bertlab::glue::Dataset;
use bertlab::head::{HeadInput, HeadSpec};
use bertlab::task::table::Format;
use bertlab::task::{Builtin, Columns, Source, TaskData};
use bertlab::{Engine, Model};

use crate::destination::Destination;
use crate::feature_cache::{Entry, FeatureCache};
use crate::status_line;

#[derive(clap::Args)]
pub struct FinetuneArgs {
    /// mrpc, sst2 or conll2003 (the built-in datasets' files), classify (a
    /// table of texts and labels: TSV, CSV or JSON lines; numbers that are
    /// not all integers make a regression) or tokens (CoNLL `word … TAG` lines).
    #[arg(long, default_value = "mrpc")]
    pub(crate) task: String,
    /// A folder with the task's training and validation files (mrpc, sst2:
    /// train.tsv and dev.tsv; conll2003: train.txt and dev.txt; classify and
    /// tokens: train.* and dev.* or validation.*); with --eval-only, one file.
    #[arg(long)]
    pub(crate) data: Option<PathBuf>,
    /// The training file (instead of --data's).
    #[arg(long)]
    pub(crate) train_file: Option<PathBuf>,
    /// The validation file (instead of --data's).
    #[arg(long)]
    pub(crate) validation_file: Option<PathBuf>,
    /// The column of a table holding the text (default: sentence, sentence1, text, …).
    #[arg(long)]
    pub(crate) text_column: Option<String>,
    /// The column holding the second text of a pair (default: sentence2, … when present).
    #[arg(long)]
    pub(crate) text_pair_column: Option<String>,
    /// The column holding the label (default: label, labels, score, …).
    #[arg(long)]
    pub(crate) label_column: Option<String>,
    /// Use only the first N training examples.
    #[arg(long, alias = "train-limit")]
    pub(crate) max_train_samples: Option<usize>,
    /// Use only the first N validation examples.
    #[arg(long)]
    pub(crate) max_eval_samples: Option<usize>,
    /// Write each validation example's prediction: `gold<TAB>predicted` a line;
    /// for tokens `word gold predicted` a line, a blank line between sentences.
    #[arg(long)]
    pub(crate) write_predictions: Option<PathBuf>,
    /// Where to write the result: a Hugging Face folder (config.json,
    /// model.safetensors, tokenizer files) when layers train; with
    /// --train-layers 0 the head (safetensors; a .config.json beside it).
    #[arg(long)]
    pub(crate) out: Option<PathBuf>,
    /// Replace --out when it already holds something (refused otherwise).
    #[arg(long)]
    pub(crate) overwrite_output_dir: bool,
    /// Score a saved head (--head) on --data instead of training.
    #[arg(long)]
    pub(crate) eval_only: bool,
    #[arg(long)]
    pub(crate) head: Option<PathBuf>,
    /// What trains: `all` (the whole model, as the Trainer does), N (the top N
    /// encoder layers, the pooler and the classifier), or 0 (a head on frozen
    /// features; --head-input and --mlp-hidden choose it).
    #[arg(long, default_value = "all")]
    pub(crate) train_layers: String,
    /// Default: 2e-5 (the Trainer's) when layers train, 1e-3 for a head alone.
    #[arg(long)]
    pub(crate) learning_rate: Option<f32>,
    #[arg(long, default_value_t = 16)]
    pub(crate) per_device_train_batch_size: usize,
    /// Batches per optimizer step (memory holds one batch's activations).
    #[arg(long, default_value_t = 1)]
    pub(crate) gradient_accumulation_steps: usize,
    #[arg(long, default_value_t = 64)]
    pub(crate) per_device_eval_batch_size: usize,
    #[arg(long, default_value_t = 3)]
    pub(crate) num_train_epochs: usize,
    #[arg(long, default_value_t = 0.01)]
    pub(crate) weight_decay: f32,
    #[arg(long, default_value_t = 0)]
    pub(crate) warmup_steps: usize,
    #[arg(long, default_value_t = 128)]
    pub(crate) max_seq_length: usize,
    #[arg(long, default_value_t = 42)]
    pub(crate) seed: u64,
    /// What the head reads: pooler, cls, mean, or pair ([u, v, |u−v|, u·v] of the sentences alone).
    #[arg(long, default_value = "pooler")]
    pub(crate) head_input: String,
    /// 0 for a Linear head; otherwise an MLP with this hidden width.
    #[arg(long, default_value_t = 0)]
    pub(crate) mlp_hidden: usize,
    /// Also fit a logistic regression on the same features and print it.
    #[arg(long)]
    pub(crate) baseline: bool,
    #[arg(long, value_enum, default_value_t = super::BackendArg::Auto)]
    pub(crate) backend: super::BackendArg,
    #[arg(long, default_value_os_t = super::default_model_dir())]
    pub(crate) model: PathBuf,
    /// Where encoded features are cached (default: $BERTLAB_CACHE_DIR, else ~/.cache/bertlab).
    #[arg(long)]
    pub(crate) cache_dir: Option<PathBuf>,
    /// Encode every time; read and write no cache.
    #[arg(long)]
    pub(crate) no_cache: bool,
    /// Machine-readable output: one JSON object per line.
    #[arg(long)]
    pub(crate) json: bool,
}

impl FinetuneArgs {
    fn config(&self, head_input: HeadInput, train_layers: TrainLayers) -> TrainConfig {
        let default_lr = if train_layers == TrainLayers::Top(0) { HEAD_LEARNING_RATE } else { TrainConfig::default().learning_rate };
        TrainConfig {
            learning_rate: self.learning_rate.unwrap_or(default_lr),
            per_device_train_batch_size: self.per_device_train_batch_size,
            gradient_accumulation_steps: self.gradient_accumulation_steps,
            per_device_eval_batch_size: self.per_device_eval_batch_size,
            num_train_epochs: self.num_train_epochs,
            weight_decay: self.weight_decay,
            warmup_steps: self.warmup_steps,
            max_seq_length: self.max_seq_length,
            seed: self.seed,
            head_input,
            mlp_hidden: self.mlp_hidden,
            train_layers,
        }
    }
}

pub(crate) fn read_tsv(path: &Path) -> Result<Dataset, String> {
    let text = bertlab::disk::read_text(path, bertlab::disk::MAX_DATA_BYTES).map_err(|e| e.to_string())?;
    let d = Dataset::parse(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    if !d.has_header {
        eprintln!("note: {} has no header row; line 1 is read as data", path.display());
    }
    for s in &d.skipped {
        eprintln!("warning: {}: skipped {s}", path.display());
    }
    Ok(d)
}

/// A dataset's features: from the cache when a valid entry holds them, else encoded (and cached).
fn features(engine: &mut Engine, cache: &FeatureCache, data: &Dataset, config: &TrainConfig, quiet: bool) -> Result<Vec<f32>, String> {
    let entry = Entry { model: engine.identity(), data, input: config.head_input, max_len: config.max_seq_length };
    if let Some(f) = cache.load(&entry) {
        return Ok(f);
    }
    let start = web_time::Instant::now();
    let mut done = 0;
    let mut progress = |n: usize, total: usize| {
        done += n;
        if !quiet {
            let rate = done as f64 / start.elapsed().as_secs_f64().max(1e-9);
            status_line::show(&format!(
                "encoding: {done}/{total} inputs, {rate:.0}/s, {:.0} s left",
                (total - done) as f64 / rate.max(1e-9)
            ));
        }
    };
    let (input, max_len, batch) = (config.head_input, config.max_seq_length, config.per_device_eval_batch_size);
    let f =
        pollster::block_on(extract_features(engine, &data.examples, input, max_len, batch, &mut progress)).map_err(|e| e.to_string())?;
    status_line::end();
    let entry = Entry { model: engine.identity(), data, input, max_len };
    if let Err(e) = cache.store(&entry, &f) {
        eprintln!("warning: {e}");
    }
    Ok(f)
}

/// A metrics line as the Trainer logs it: `{'eval_loss': 0.5, 'eval_accuracy': 0.8, 'epoch': 1.0}`.
fn trainer_line(fields: &serde_json::Value) -> String {
    let parts: Vec<String> = fields
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| v.as_f64().map(|x| format!("'{k}': {}", if k == "epoch" { format!("{x:.1}") } else { format!("{x:.4}") })))
        .collect();
    format!("{{{}}}", parts.join(", "))
}

/// A step or an epoch, printed as the Trainer logs them (every 50 steps unless `json`).
pub(crate) fn report(event: &Event, steps_per_epoch: usize, json: bool) {
    match event {
        Event::Done => {}
        Event::Step { step, loss, learning_rate } => {
            let epoch = *step as f64 / steps_per_epoch as f64;
            let line =
                serde_json::json!({"loss": loss, "learning_rate": learning_rate, "epoch": (epoch * 100.0).round() / 100.0, "step": step});
            if json || step % 50 == 0 {
                status_line::end();
                println!("{line}");
            }
        }
        Event::Epoch { epoch, train_loss, metrics } => {
            let mut line = metrics.trainer_json();
            line["epoch"] = serde_json::json!(*epoch as f64);
            line["train_loss"] = serde_json::json!(train_loss);
            status_line::end();
            if json {
                println!("{line}");
            } else {
                println!("{}", trainer_line(&line));
            }
        }
    }
}

/// The scores in words: the Trainer's line, a confusion matrix with the
/// label names, and an entity table by type.
pub(crate) fn print_metrics(m: &Metrics, names: &[String]) {
    println!("{}", trainer_line(&m.trainer_json()));
    match &m.scores {
        Scores::Classes { confusion: Some(c), .. } => {
            let width = names.iter().map(|n| n.chars().count()).max().unwrap_or(1).clamp(7, 24);
            println!("confusion matrix (rows: true label, columns: predicted)");
            println!("  {:width$}  {}", "", names.iter().map(|n| format!("{n:>width$}")).collect::<Vec<_>>().join(" "));
            for (name, row) in names.iter().zip(c) {
                println!("  {name:>width$}  {}", row.iter().map(|v| format!("{v:>width$}")).collect::<Vec<_>>().join(" "));
            }
        }
        Scores::Entities { types, .. } => {
            println!("  {:<8} {:>9} {:>9} {:>9} {:>8}", "entity", "precision", "recall", "F1", "number");
            for t in types {
                println!("  {:<8} {:>9.4} {:>9.4} {:>9.4} {:>8}", t.kind, t.precision, t.recall, t.f1, t.support);
            }
        }
        _ => {}
    }
}

/// What `--task` names.
#[derive(Clone, Copy, PartialEq)]
pub(crate) enum TaskChoice {
    Builtin(Builtin),
    /// A table of texts (TSV, CSV, JSON lines).
    Classify,
    /// CoNLL `word … TAG` lines.
    Tokens,
}

impl TaskChoice {
    fn parse(s: &str) -> Result<Self, String> {
        match s {
            "classify" => Ok(TaskChoice::Classify),
            "tokens" => Ok(TaskChoice::Tokens),
            _ => Builtin::parse(s)
                .map(TaskChoice::Builtin)
                .ok_or_else(|| format!("unknown task {}: mrpc, sst2, conll2003, classify or tokens", bertlab::error::quoted(s))),
        }
    }

    /// How a file of this task is read.
    pub(crate) fn source(self, a: &FinetuneArgs, file: &Path) -> Result<Source, String> {
        match self {
            TaskChoice::Builtin(b) => Ok(b.source()),
            TaskChoice::Tokens => Ok(Source::Conll),
            TaskChoice::Classify => {
                let name = file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                let format = Format::of_name(&name)
                    .ok_or_else(|| format!("{}: name the file .tsv, .csv or .jsonl so its format is known", file.display()))?;
                Ok(Source::Table(
                    format,
                    Columns { text: a.text_column.clone(), pair: a.text_pair_column.clone(), label: a.label_column.clone() },
                ))
            }
        }
    }

    /// The task's name in messages and saved runs.
    fn name(self) -> &'static str {
        match self {
            TaskChoice::Builtin(b) => b.name(),
            TaskChoice::Classify => "classify",
            TaskChoice::Tokens => "tokens",
        }
    }
}

/// The training and validation files: given, or found in `--data`.
fn task_files(a: &FinetuneArgs, choice: TaskChoice) -> Result<(PathBuf, PathBuf), String> {
    if let (Some(t), Some(v)) = (&a.train_file, &a.validation_file) {
        return Ok((t.clone(), v.clone()));
    }
    let dir = a.data.as_ref().ok_or("give --data DIR, or --train-file and --validation-file")?;
    let find = |stems: &[&str], exts: &[&str]| -> Option<PathBuf> {
        stems.iter().flat_map(|s| exts.iter().map(move |e| dir.join(format!("{s}.{e}")))).find(|p| p.is_file())
    };
    let (train, eval) = match choice {
        TaskChoice::Builtin(b) => (Some(dir.join(b.files()[0])), Some(dir.join(b.files()[1]))),
        TaskChoice::Classify => {
            (find(&["train"], &["tsv", "csv", "jsonl", "json"]), find(&["dev", "validation"], &["tsv", "csv", "jsonl", "json"]))
        }
        TaskChoice::Tokens => (find(&["train"], &["txt", "conll"]), find(&["dev", "validation"], &["txt", "conll"])),
    };
    let missing = || {
        format!("{} holds no training and validation files for --task {} (train.* and dev.* or validation.*)", dir.display(), choice.name())
    };
    Ok((a.train_file.clone().or(train).ok_or_else(missing)?, a.validation_file.clone().or(eval).ok_or_else(missing)?))
}

/// The task's data, as `--task`, `--data` (or the two files) and the column flags say.
fn read_task(a: &FinetuneArgs, choice: TaskChoice) -> Result<TaskData, String> {
    let (train_path, eval_path) = task_files(a, choice)?;
    let read = |p: &Path| bertlab::disk::read_text(p, bertlab::disk::MAX_DATA_BYTES).map_err(|e| e.to_string());
    let (train_src, eval_src) = (choice.source(a, &train_path)?, choice.source(a, &eval_path)?);
    let labels = match choice {
        TaskChoice::Builtin(b) => Some(b.labels()),
        _ => None,
    };
    let mut data = bertlab::task::read(choice.name(), (&train_src, &read(&train_path)?), (&eval_src, &read(&eval_path)?), labels)
        .map_err(|e| e.to_string())?;
    if let Some(n) = a.max_train_samples {
        data.train.truncate(n.max(1));
    }
    if let Some(n) = a.max_eval_samples {
        data.eval.truncate(n.max(1));
    }
    for note in &data.notes {
        eprintln!("warning: {note}");
    }
    Ok(data)
}

pub fn run(a: FinetuneArgs) -> Result<(), String> {
    let choice = TaskChoice::parse(&a.task)?;
    let input =
        HeadInput::parse(&a.head_input).ok_or_else(|| format!("unknown head input {:?} (pooler, cls, mean, pair)", a.head_input))?;
    // settings first: a typo fails before the model loads
    let layers =
        if a.eval_only { TrainLayers::Top(0) } else { TrainLayers::parse(&a.train_layers, usize::MAX).map_err(|e| e.to_string())? };
    let head_only = layers == TrainLayers::Top(0);
    if !head_only && (input != HeadInput::Pooler || a.mlp_hidden != 0 || a.baseline) {
        return Err(format!(
            "--train-layers {} fine-tunes the model with its task head: --head-input, --mlp-hidden and --baseline are for --train-layers 0",
            a.train_layers
        ));
    }
    let mrpc = choice == TaskChoice::Builtin(Builtin::Mrpc);
    if head_only && !a.eval_only && !mrpc {
        return Err(format!(
            "--train-layers 0 (a head on frozen features) trains MRPC only: fine-tune the model's layers for --task {}",
            a.task
        ));
    }
    let config = a.config(input, layers);
    config.validate().map_err(|e| e.to_string())?;
    // --out before the model and the data: a destination that cannot be used fails before any work
    let out = match (&a.out, a.eval_only) {
        (Some(out), false) => Some(Destination::prepare(out, &a.model, a.overwrite_output_dir)?),
        _ => None,
    };
    let model = Model::from_dir(&a.model).map_err(|e| e.to_string())?;
    if a.eval_only && a.head.is_none() {
        return crate::finetune_model::eval_only(&a, choice, config, model);
    }
    if head_only {
        return run_head(&a, config, model, out);
    }
    TrainLayers::parse(&a.train_layers, model.config.num_hidden_layers).map_err(|e| e.to_string())?;
    let data = read_task(&a, choice)?;
    crate::finetune_model::run(&a, data, config, model, out)
}

/// MRPC's label names, for a head's tables.
fn mrpc_names() -> Vec<String> {
    Builtin::Mrpc.labels().names().to_vec()
}

/// `--data`, which the MRPC head runs read.
fn data_dir(a: &FinetuneArgs) -> Result<&Path, String> {
    a.data.as_deref().ok_or_else(|| "give --data".to_string())
}

fn run_head(a: &FinetuneArgs, config: TrainConfig, model: Model, out: Option<Destination>) -> Result<(), String> {
    let input = config.head_input;
    let cache = FeatureCache::new(a.cache_dir.clone(), !a.no_cache);
    let spec = HeadSpec { input, in_dim: input.width(model.config.hidden_size), hidden: a.mlp_hidden, classes: 2 };
    spec.check_size().map_err(|e| e.to_string())?;
    let mut engine = pollster::block_on(Engine::new(model, a.backend.into())).map_err(|e| e.to_string())?;
    if a.eval_only {
        return eval_only(a, &mut engine, &cache);
    }
    let mut train = read_tsv(&data_dir(a)?.join("train.tsv"))?;
    let dev = read_tsv(&data_dir(a)?.join("dev.tsv"))?;
    if let Some(n) = a.max_train_samples {
        train.examples.truncate(n.max(1));
    }
    let quiet = a.json;
    let train_x = features(&mut engine, &cache, &train, &config, quiet)?;
    let dev_x = features(&mut engine, &cache, &dev, &config, quiet)?;
    let initial = spec.init(a.seed);
    let backend = HeadBackend::new(spec, initial.clone(), engine.gpu_context().cloned());
    if !a.json {
        println!("encoder: {}", engine.backend());
        let kind = if a.mlp_hidden == 0 { "Linear".to_string() } else { format!("MLP ({} hidden)", a.mlp_hidden) };
        println!("head: {kind} on {}, {} features", backend.describe(), spec.in_dim);
        println!(
            "train: {} pairs ({} positive), validation: {} pairs ({} positive)",
            train.examples.len(),
            train.positives(),
            dev.examples.len(),
            dev.positives()
        );
    }
    let setup = RunSetup { run_id: "cli".into(), model: engine.identity().clone(), config, spec };
    let mut t = Training::new(
        setup,
        backend,
        initial,
        Split { x: train_x.clone(), labels: train.labels() },
        Split { x: dev_x.clone(), labels: dev.labels() },
    )
    .map_err(|e| e.to_string())?;
    let steps_per_epoch = t.steps_per_epoch();
    loop {
        match pollster::block_on(t.advance()) {
            Err(e) => {
                if let Some(out) = &out {
                    write_head(out, &pollster::block_on(t.head()).map_err(|e| e.to_string())?)?;
                    eprintln!("wrote the last good head to {}", out.path().display());
                }
                return Err(e.to_string());
            }
            Ok(Event::Done) => break,
            Ok(event) => report(&event, steps_per_epoch, a.json),
        }
    }
    let last = t.progress.metrics.last().cloned().ok_or("the run ended without an epoch")?;
    let majority = dev.majority_accuracy();
    let mut baselines = Vec::new();
    if a.baseline {
        for c in [1.0, 0.1, 0.01] {
            let m = logistic_regression_baseline((&train_x, &train.labels()), (&dev_x, &dev.labels()), spec.in_dim, c)
                .map_err(|e| e.to_string())?;
            baselines.push((c, m));
        }
    }
    if a.json {
        let lr: Vec<serde_json::Value> = baselines
            .iter()
            .map(|(c, m)| {
                let mut j = m.trainer_json();
                j["C"] = serde_json::json!(c);
                j
            })
            .collect();
        println!("{}", serde_json::json!({"final": last.trainer_json(), "majority_class_accuracy": majority, "logistic_regression": lr}));
    } else {
        print_metrics(&last, &mrpc_names());
        println!("majority-class baseline on validation: accuracy {majority:.4}");
        for (c, b) in &baselines {
            println!("logistic regression (C={c}) on the same features: {}", trainer_line(&b.trainer_json()));
        }
    }
    if let Some(out) = &out {
        write_head(out, &pollster::block_on(t.head()).map_err(|e| e.to_string())?)?;
        if !a.json {
            println!("wrote {}", out.path().display());
        }
    }
    Ok(())
}

/// The head's safetensors as `--out`, its config.json fields beside it (`HEAD.config.json`).
fn write_head(out: &Destination, head: &TrainedHead) -> Result<(), String> {
    let (bytes, config) = head.export().map_err(|e| e.to_string())?;
    out.write_file(&bytes, &[("config.json", config.into_bytes())])
}

fn eval_only(a: &FinetuneArgs, engine: &mut Engine, cache: &FeatureCache) -> Result<(), String> {
    let path = a.head.as_ref().ok_or("--eval-only needs --head HEAD.safetensors, or a fine-tuned model folder as --model")?;
    let bytes = bertlab::disk::read_bounded(path, bertlab::model::max_file_bytes("model.safetensors")).map_err(|e| e.to_string())?;
    let head = TrainedHead::import(&bytes).map_err(|e| e.to_string())?;
    head.check_model(engine.identity()).map_err(|e| e.to_string())?;
    let data = read_tsv(data_dir(a)?)?;
    let config = a.config(head.spec.input, TrainLayers::Top(0));
    let x = features(engine, cache, &data, &config, a.json)?;
    let mut backend = HeadBackend::new(head.spec, head.params, None);
    let probs =
        pollster::block_on(predict_batched(&mut backend, &x, head.spec.in_dim, a.per_device_eval_batch_size)).map_err(|e| e.to_string())?;
    let m = evaluate(&probs, &data.labels(), 2).map_err(|e| e.to_string())?;
    if a.json {
        println!("{}", m.trainer_json());
    } else {
        println!("{}: {} examples", data_dir(a)?.display(), data.examples.len());
        print_metrics(&m, &mrpc_names());
    }
    Ok(())
}
