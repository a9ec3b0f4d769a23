//! `bertlab finetune`: the fine-tuning of the page, natively.

use std::path::{Path, PathBuf};

use bertlab::classifier::TrainLayers;
use bertlab::finetune::baseline::logistic_regression_baseline;
use bertlab::finetune::features::extract_features;
use bertlab::finetune::head_io::TrainedHead;
use bertlab::finetune::training::{predict_batched, Event, HeadBackend, RunSetup, Split, Training};
use bertlab::finetune::{evaluate, Metrics, TrainConfig, HEAD_LEARNING_RATE};
use bertlab::glue::Dataset;
use bertlab::head::{HeadInput, HeadSpec};
use bertlab::{Engine, Model};

use crate::destination::Destination;
use crate::feature_cache::{Entry, FeatureCache};
use crate::status_line;

#[derive(clap::Args)]
pub struct FinetuneArgs {
    /// The GLUE task (only MRPC's sentence pairs for now).
    #[arg(long, default_value = "mrpc")]
    pub(crate) task: String,
    /// A folder with train.tsv and dev.tsv; with --eval-only, one TSV file.
    #[arg(long)]
    pub(crate) data: PathBuf,
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
    /// Use only the first N training pairs (quick runs).
    #[arg(long)]
    pub(crate) train_limit: Option<usize>,
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

pub(crate) fn metrics_json(m: &Metrics) -> serde_json::Value {
    serde_json::json!({"eval_loss": m.loss, "eval_accuracy": m.accuracy, "eval_f1": m.f1, "confusion_matrix": m.confusion})
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
                println!("{line}");
            }
        }
        Event::Epoch { epoch, train_loss, metrics } => {
            if json {
                let mut line = metrics_json(metrics);
                line["epoch"] = serde_json::json!(*epoch as f64);
                line["train_loss"] = serde_json::json!(train_loss);
                println!("{line}");
            } else {
                println!(
                    "{{'eval_loss': {:.4}, 'eval_accuracy': {:.4}, 'eval_f1': {:.4}, 'epoch': {epoch}.0, 'train_loss': {train_loss:.4}}}",
                    metrics.loss, metrics.accuracy, metrics.f1
                );
            }
        }
    }
}

/// `--eval-only`'s answer: the metrics of `pairs` pairs of `--data`.
pub(crate) fn print_scores(a: &FinetuneArgs, pairs: usize, m: &Metrics) {
    if a.json {
        println!("{}", metrics_json(m));
    } else {
        println!("{}: {pairs} pairs; accuracy {:.4}, F1 {:.4}, loss {:.4}", a.data.display(), m.accuracy, m.f1, m.loss);
        print_confusion(m);
    }
}

/// The end of a run in words: its last epoch's confusion matrix beside the
/// majority baseline, for `what` ("this head", "this model").
pub(crate) fn print_summary(last: &Metrics, majority: f64, what: &str) {
    print_confusion(last);
    println!("majority-class baseline on validation: accuracy {majority:.4} (always \"equivalent\")");
    println!("{what} on validation: accuracy {:.4}, F1 {:.4}", last.accuracy, last.f1);
}

fn print_confusion(m: &Metrics) {
    let c = m.confusion;
    println!("confusion matrix (rows: true label, columns: predicted)");
    println!("             pred 0  pred 1");
    println!("  label 0  {:>7} {:>7}", c[0][0], c[0][1]);
    println!("  label 1  {:>7} {:>7}", c[1][0], c[1][1]);
}

pub fn run(a: FinetuneArgs) -> Result<(), String> {
    if a.task != "mrpc" {
        return Err(format!("unknown task {:?}: only mrpc is supported", a.task));
    }
    let input =
        HeadInput::parse(&a.head_input).ok_or_else(|| format!("unknown head input {:?} (pooler, cls, mean, pair)", a.head_input))?;
    // settings first: a typo fails before the model loads
    let layers =
        if a.eval_only { TrainLayers::Top(0) } else { TrainLayers::parse(&a.train_layers, usize::MAX).map_err(|e| e.to_string())? };
    let head_only = layers == TrainLayers::Top(0);
    if !head_only && (input != HeadInput::Pooler || a.mlp_hidden != 0 || a.baseline) {
        return Err(format!(
            "--train-layers {} fine-tunes BertForSequenceClassification (pooler → dropout → Linear): --head-input, --mlp-hidden and --baseline are for --train-layers 0",
            a.train_layers
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
        return crate::finetune_model::eval_only(&a, config, model);
    }
    if head_only {
        return run_head(&a, config, model, out);
    }
    TrainLayers::parse(&a.train_layers, model.config.num_hidden_layers).map_err(|e| e.to_string())?;
    crate::finetune_model::run(&a, config, model, out)
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
    let mut train = read_tsv(&a.data.join("train.tsv"))?;
    let dev = read_tsv(&a.data.join("dev.tsv"))?;
    if let Some(n) = a.train_limit {
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
                let mut j = metrics_json(m);
                j["C"] = serde_json::json!(c);
                j
            })
            .collect();
        println!("{}", serde_json::json!({"final": metrics_json(&last), "majority_class_accuracy": majority, "logistic_regression": lr}));
    } else {
        print_summary(&last, majority, "this head");
        for (c, b) in &baselines {
            println!("logistic regression (C={c}) on the same features: accuracy {:.4}, F1 {:.4}", b.accuracy, b.f1);
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
    let data = read_tsv(&a.data)?;
    let config = a.config(head.spec.input, TrainLayers::Top(0));
    let x = features(engine, cache, &data, &config, a.json)?;
    let mut backend = HeadBackend::new(head.spec, head.params, None);
    let probs =
        pollster::block_on(predict_batched(&mut backend, &x, head.spec.in_dim, a.per_device_eval_batch_size)).map_err(|e| e.to_string())?;
    let m = evaluate(&probs, &data.labels()).map_err(|e| e.to_string())?;
    print_scores(a, data.examples.len(), &m);
    Ok(())
}
