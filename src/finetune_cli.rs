//! `bertlab finetune`: the fine-tuning of the page, natively.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use bertlab::finetune::{
    evaluate, export_head, extract_features, import_head, logistic_regression_baseline, predict_batched, Event, HeadBackend,
    Metrics, TrainConfig, Training,
};
use bertlab::glue::Dataset;
use bertlab::head::{CpuHead, HeadInput, HeadSpec};
use bertlab::{Engine, Model};

#[derive(clap::Args)]
pub struct FinetuneArgs {
    /// The GLUE task (only MRPC's sentence pairs for now).
    #[arg(long, default_value = "mrpc")]
    task: String,
    /// A folder with train.tsv and dev.tsv; with --eval-only, one TSV file.
    #[arg(long)]
    data: PathBuf,
    /// Where to write the trained head (safetensors; a .config.json beside it).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Score a saved head (--head) on --data instead of training.
    #[arg(long)]
    eval_only: bool,
    #[arg(long)]
    head: Option<PathBuf>,
    #[arg(long, default_value_t = 2e-5)]
    learning_rate: f32,
    #[arg(long, default_value_t = 16)]
    per_device_train_batch_size: usize,
    #[arg(long, default_value_t = 64)]
    per_device_eval_batch_size: usize,
    #[arg(long, default_value_t = 3)]
    num_train_epochs: usize,
    #[arg(long, default_value_t = 0.01)]
    weight_decay: f32,
    #[arg(long, default_value_t = 0)]
    warmup_steps: usize,
    #[arg(long, default_value_t = 128)]
    max_seq_length: usize,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// What the head reads: pooler, cls, mean, or pair ([u, v, |u−v|, u·v] of the sentences alone).
    #[arg(long, default_value = "pooler")]
    head_input: String,
    /// 0 for a Linear head; otherwise an MLP with this hidden width.
    #[arg(long, default_value_t = 0)]
    mlp_hidden: usize,
    /// Use only the first N training pairs (quick runs).
    #[arg(long)]
    train_limit: Option<usize>,
    /// Also fit a logistic regression on the same features and print it.
    #[arg(long)]
    baseline: bool,
    #[arg(long, value_enum, default_value_t = super::BackendArg::Auto)]
    backend: super::BackendArg,
    #[arg(long, default_value_os_t = super::default_model_dir())]
    model: PathBuf,
    /// Machine-readable output: one JSON object per line.
    #[arg(long)]
    json: bool,
}

fn read_tsv(path: &Path) -> Result<Dataset, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let d = Dataset::parse(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    for s in &d.skipped {
        eprintln!("warning: {}: skipped {s}", path.display());
    }
    Ok(d)
}

/// Features of a dataset, cached under target/ by model, data and settings.
fn features(engine: &mut Engine, model: &Path, data: &Dataset, input: HeadInput, max_len: usize, batch: usize, quiet: bool) -> Result<Vec<f32>, String> {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (model.canonicalize().unwrap_or(model.to_path_buf()), input.name(), max_len).hash(&mut h);
    std::fs::metadata(model.join("model.safetensors")).map(|m| m.len()).unwrap_or(0).hash(&mut h);
    for e in &data.examples {
        (&e.sentence1, &e.sentence2).hash(&mut h);
    }
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bertlab-cache");
    let file = dir.join(format!("features-{:016x}.f32", h.finish()));
    if let Ok(bytes) = std::fs::read(&file) {
        return Ok(bytes.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect());
    }
    let start = web_time::Instant::now();
    let mut done = 0;
    let mut progress = |n: usize, total: usize| {
        done += n;
        if !quiet {
            let secs = start.elapsed().as_secs_f64();
            let rate = done as f64 / secs.max(1e-9);
            eprint!("\rencoding: {done}/{total} inputs, {rate:.0}/s, {:.0} s left   ", (total - done) as f64 / rate.max(1e-9));
        }
    };
    let f = pollster::block_on(extract_features(engine, &data.examples, input, max_len, batch, &mut progress)).map_err(|e| e.to_string())?;
    if !quiet {
        eprintln!();
    }
    let _ = std::fs::create_dir_all(&dir);
    let _ = std::fs::write(&file, f.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>());
    Ok(f)
}

fn metrics_json(m: &Metrics) -> serde_json::Value {
    serde_json::json!({"eval_loss": m.loss, "eval_accuracy": m.accuracy, "eval_f1": m.f1, "confusion_matrix": m.confusion})
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
    let model = Model::from_dir(&a.model).map_err(|e| e.to_string())?;
    let mut engine = pollster::block_on(Engine::new(model, a.backend.into())).map_err(|e| e.to_string())?;
    if a.eval_only {
        return eval_only(&a, &mut engine);
    }
    let input = HeadInput::parse(&a.head_input).ok_or_else(|| format!("unknown head input {:?} (pooler, cls, mean, pair)", a.head_input))?;
    let mut train = read_tsv(&a.data.join("train.tsv"))?;
    let dev = read_tsv(&a.data.join("dev.tsv"))?;
    if let Some(n) = a.train_limit {
        train.examples.truncate(n);
    }
    let config = TrainConfig {
        learning_rate: a.learning_rate,
        per_device_train_batch_size: a.per_device_train_batch_size,
        per_device_eval_batch_size: a.per_device_eval_batch_size,
        num_train_epochs: a.num_train_epochs,
        weight_decay: a.weight_decay,
        warmup_steps: a.warmup_steps,
        max_seq_length: a.max_seq_length,
        seed: a.seed,
        head_input: input,
        mlp_hidden: a.mlp_hidden,
    };
    let quiet = a.json;
    let batch = a.per_device_eval_batch_size;
    let train_x = features(&mut engine, &a.model, &train, input, a.max_seq_length, batch, quiet)?;
    let dev_x = features(&mut engine, &a.model, &dev, input, a.max_seq_length, batch, quiet)?;
    let spec = HeadSpec { input, in_dim: input.width(engine.config.hidden_size), hidden: a.mlp_hidden, classes: 2 };
    let initial = spec.init(a.seed);
    let backend = if engine.is_gpu() {
        pollster::block_on(HeadBackend::new_gpu(spec, &initial)).map_err(|e| e.to_string())?
    } else {
        HeadBackend::Cpu(CpuHead::new(spec, initial.clone()))
    };
    let emit = |v: serde_json::Value| println!("{v}");
    if !a.json {
        println!("encoder: {}", engine.backend_description);
        println!("head: {} on {}, {} features", if a.mlp_hidden == 0 { "Linear".to_string() } else { format!("MLP ({} hidden)", a.mlp_hidden) }, backend.describe(), spec.in_dim);
        println!("train: {} pairs ({} positive), validation: {} pairs ({} positive)", train.examples.len(), train.positives(), dev.examples.len(), dev.positives());
    }
    let mut t = Training::new(config, spec, backend, initial, (train_x.clone(), train.labels()), (dev_x.clone(), dev.labels()))
        .map_err(|e| e.to_string())?;
    let steps_per_epoch = t.steps_per_epoch();
    loop {
        let event = pollster::block_on(t.advance());
        match event {
            Err(e) => {
                if let Some(out) = &a.out {
                    let head = pollster::block_on(t.head()).map_err(|e| e.to_string())?;
                    write_head(out, &spec, &head)?;
                    eprintln!("wrote the last good head to {}", out.display());
                }
                return Err(e.to_string());
            }
            Ok(Event::Done) => break,
            Ok(Event::Step { step, loss, learning_rate }) => {
                let epoch = step as f64 / steps_per_epoch as f64;
                let line = serde_json::json!({"loss": loss, "learning_rate": learning_rate, "epoch": (epoch * 100.0).round() / 100.0, "step": step});
                if a.json {
                    emit(line);
                } else if step % 50 == 0 {
                    println!("{line}");
                }
            }
            Ok(Event::Epoch { epoch, train_loss, metrics }) => {
                let mut line = metrics_json(&metrics);
                line["epoch"] = serde_json::json!(epoch as f64);
                line["train_loss"] = serde_json::json!(train_loss);
                if a.json {
                    emit(line);
                } else {
                    println!("{{'eval_loss': {:.4}, 'eval_accuracy': {:.4}, 'eval_f1': {:.4}, 'epoch': {epoch}.0, 'train_loss': {train_loss:.4}}}", metrics.loss, metrics.accuracy, metrics.f1);
                }
            }
        }
    }
    let last = t.metrics.last().cloned().expect("at least one epoch");
    let majority = dev.majority_accuracy();
    let baselines: Vec<(f32, Metrics)> = if a.baseline {
        [1.0, 0.1, 0.01]
            .into_iter()
            .map(|c| (c, logistic_regression_baseline((&train_x, &train.labels()), (&dev_x, &dev.labels()), spec.in_dim, c)))
            .collect()
    } else {
        Vec::new()
    };
    if a.json {
        emit(serde_json::json!({
            "final": metrics_json(&last),
            "majority_class_accuracy": majority,
            "logistic_regression": baselines.iter().map(|(c, m)| { let mut j = metrics_json(m); j["C"] = serde_json::json!(c); j }).collect::<Vec<_>>(),
        }));
    } else {
        print_confusion(&last);
        println!("majority-class baseline on validation: accuracy {majority:.4} (always \"equivalent\")");
        println!("this head on validation: accuracy {:.4}, F1 {:.4}", last.accuracy, last.f1);
        for (c, b) in &baselines {
            println!("logistic regression (C={c}) on the same features: accuracy {:.4}, F1 {:.4}", b.accuracy, b.f1);
        }
    }
    if let Some(out) = &a.out {
        let head = pollster::block_on(t.head()).map_err(|e| e.to_string())?;
        write_head(out, &spec, &head)?;
        if !a.json {
            println!("wrote {}", out.display());
        }
    }
    Ok(())
}

fn write_head(out: &Path, spec: &HeadSpec, head: &[bertlab::head::Param]) -> Result<(), String> {
    let (bytes, config) = export_head(spec, head);
    std::fs::write(out, bytes).map_err(|e| format!("cannot write {}: {e}", out.display()))?;
    let cfg = out.with_extension("config.json");
    std::fs::write(&cfg, config).map_err(|e| format!("cannot write {}: {e}", cfg.display()))
}

fn eval_only(a: &FinetuneArgs, engine: &mut Engine) -> Result<(), String> {
    let path = a.head.as_ref().ok_or("--eval-only needs --head HEAD.safetensors")?;
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let (spec, params) = import_head(&bytes).map_err(|e| e.to_string())?;
    if spec.in_dim != spec.input.width(engine.config.hidden_size) {
        return Err(format!("the head reads {} features; this model gives {}", spec.in_dim, spec.input.width(engine.config.hidden_size)));
    }
    let data = read_tsv(&a.data)?;
    let x = features(engine, &a.model, &data, spec.input, a.max_seq_length, a.per_device_eval_batch_size, a.json)?;
    let backend = HeadBackend::Cpu(CpuHead::new(spec, params));
    let probs = pollster::block_on(predict_batched(&backend, &x, spec.in_dim, a.per_device_eval_batch_size)).map_err(|e| e.to_string())?;
    let m = evaluate(&probs, &data.labels());
    if a.json {
        println!("{}", metrics_json(&m));
    } else {
        println!("{}: {} pairs; accuracy {:.4}, F1 {:.4}, loss {:.4}", a.data.display(), data.examples.len(), m.accuracy, m.f1, m.loss);
        print_confusion(&m);
    }
    Ok(())
}
