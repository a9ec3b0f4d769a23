//! `bertlab finetune --train-layers all|N`: BERT itself fine-tuned with its
//! task head on the CPU path or the GPU, reported as the Trainer reports
//! it, written out as a Hugging Face folder; and `--eval-only` of such a
//! folder (ours, or any transformers-fine-tuned one).

use std::path::Path;

use bertlab::classifier::export::{export_folder, read_head_config};
use bertlab::classifier::math::CpuMath;
use bertlab::classifier::{ClassifierParams, Labels};
use bertlab::disk::read_bounded;
use bertlab::fast_cpu::FastCpuEncoder;
use bertlab::finetune::encoded::Encoded;
use bertlab::finetune::model_training::{predict_model, ModelTraining, Predictions};
use bertlab::finetune::training::Event;
use bertlab::finetune::TrainConfig;
use bertlab::gpu::GpuContext;
use bertlab::model::max_file_bytes;
use bertlab::task::{Examples, Summary, Target, Task, TaskData, TaskKind};
use bertlab::tokenize::BertTokenizer;
use bertlab::{Model, ModelIdentity};

use crate::destination::Destination;
use crate::finetune::{print_metrics, report, FinetuneArgs, TaskChoice};
use crate::{status_line, BackendArg};

/// The task and a split's summary in words.
fn describe(task: &Task, what: &str, s: &Summary) {
    let shape = match task.kind {
        TaskKind::Texts { pair: true } => "sentence pairs",
        TaskKind::Texts { pair: false } => "single sentences",
        TaskKind::Words => "words tagged",
    };
    if what == "train" {
        match &task.labels {
            Labels::Classes(names) => println!("task: {} ({shape}, {} labels: {})", task.name, names.len(), names.join(", ")),
            Labels::Regression => println!("task: {} ({shape}, a number each: regression)", task.name),
        }
    }
    let total: usize = s.counts.iter().map(|c| c.1).sum();
    let counts: Vec<String> = s.counts.iter().map(|(n, c)| format!("{n} {c} ({:.1}%)", 100.0 * *c as f64 / total.max(1) as f64)).collect();
    let unit = if task.kind == TaskKind::Words { "sentences; labelled words:" } else { "examples;" };
    println!("{what}: {} {unit} {}", s.examples, if counts.is_empty() { "targets are numbers".into() } else { counts.join(", ") });
    if let Some(m) = s.majority_accuracy {
        println!("  majority-class baseline: accuracy {m:.4}");
    }
    for e in &s.first {
        println!("  e.g. {e}");
    }
}

pub fn run(a: &FinetuneArgs, data: TaskData, config: TrainConfig, model: Model, out: Option<Destination>) -> Result<(), String> {
    let layers = config.train_layers;
    let predictions_out = a.write_predictions.as_ref().map(|p| Destination::prepare(p, &a.model, a.overwrite_output_dir)).transpose()?;
    let encode = |e: &Examples| Encoded::encode(&model.tokenizer, e, config.max_seq_length).map_err(|e| e.to_string());
    let (train, eval) = (encode(&data.train)?, encode(&data.eval)?);
    let identity = ModelIdentity::of(&model.name, &model.weights);
    let task = &data.task;
    let params = ClassifierParams::new(model.weights, task.head(), task.labels.outputs(), config.seed);
    let (all, trained) = params.counts(layers);
    let gpu = training_device(a.backend)?;
    let eval_summary = data.summary(&data.eval);
    if !a.json {
        let on = match &gpu {
            Some(ctx) => format!("on {}", ctx.describe()),
            None => format!("on the CPU ({} threads)", FastCpuEncoder::threads()),
        };
        println!(
            "fine-tuning {} of {} as {}: {trained} of {all} parameters, {on}",
            layers.describe(),
            model.name,
            task.head().architecture()
        );
        describe(task, "train", &data.summary(&data.train));
        describe(task, "validation", &eval_summary);
    }
    let mut t = ModelTraining::new("cli".into(), identity, params, task.labels.clone(), config, CpuMath::Fast, train, eval)
        .map_err(|e| e.to_string())?;
    if let Some(ctx) = gpu {
        t = t.on_gpu(ctx).map_err(|e| e.to_string())?;
    }
    let (steps_per_epoch, total) = (t.steps_per_epoch(), t.total_steps());
    let start = web_time::Instant::now();
    // time in training steps alone (evaluation excluded), for samples/s as the Trainer counts them
    let mut step_seconds = 0.0;
    loop {
        let before = web_time::Instant::now();
        let event = pollster::block_on(t.advance());
        if matches!(event, Ok(Event::Step { .. })) {
            step_seconds += before.elapsed().as_secs_f64();
        }
        match event {
            Err(e) => {
                if let Some(out) = &out {
                    write_folder(out, &a.model, pollster::block_on(t.params()).map_err(|e| e.to_string())?, &task.labels)?;
                    status_line::end();
                    eprintln!("wrote the last good model to {}", out.path().display());
                }
                return Err(e.to_string());
            }
            Ok(Event::Done) => break,
            Ok(event) => {
                if let (Event::Step { step, .. }, false) = (&event, a.json) {
                    let rate = f64::from(*step) / step_seconds.max(1e-9);
                    let left = (total - *step as usize) as f64 / rate;
                    status_line::show(&format!("step {step}/{total}, {rate:.2} steps/s, {:.0} min left", left / 60.0));
                }
                report(&event, steps_per_epoch, a.json);
            }
        }
    }
    let last = t.progress.metrics.last().cloned().ok_or("the run ended without an epoch")?;
    let samples_per_second = (data.train.len() * t.config.num_train_epochs) as f64 / step_seconds.max(1e-9);
    let total_seconds = start.elapsed().as_secs_f64();
    if a.json {
        let speed = serde_json::json!({"train_seconds": step_seconds, "total_seconds": total_seconds});
        let fin = serde_json::json!({
            "final": last.trainer_json(),
            "majority_class_accuracy": eval_summary.majority_accuracy,
            "train_samples_per_second": samples_per_second,
            "speed": speed,
        });
        println!("{fin}");
    } else {
        status_line::end();
        print_metrics(&last, task.label_names());
        if let Some(m) = eval_summary.majority_accuracy {
            println!("majority-class baseline on validation: accuracy {m:.4}");
        }
        println!("{samples_per_second:.1} training examples/s ({step_seconds:.0} s of steps, {total_seconds:.0} s with evaluation)");
    }
    if let Some(p) = &predictions_out {
        let predictions = pollster::block_on(t.predict_eval()).map_err(|e| e.to_string())?;
        let text = predictions_text(&data.eval, &predictions, task, &model.tokenizer, t.config.max_seq_length)?;
        p.write_file(text.as_bytes(), &[])?;
    }
    if let Some(out) = &out {
        write_folder(out, &a.model, pollster::block_on(t.params()).map_err(|e| e.to_string())?, &task.labels)?;
        if !a.json {
            println!("wrote {} ({}.from_pretrained loads it)", out.path().display(), task.head().architecture());
        }
    }
    Ok(())
}

/// `--eval-only` with a fine-tuned folder as `--model` (ours, or any
/// transformers-fine-tuned `BertFor{Sequence,Token}Classification`): its
/// head on `--data` (one file of the task).
pub fn eval_only(a: &FinetuneArgs, choice: TaskChoice, config: TrainConfig, model: Model) -> Result<(), String> {
    let read = |name: &str| read_bounded(&a.model.join(name), max_file_bytes(name)).map_err(|e| e.to_string());
    let (kind, labels) = read_head_config(&read("config.json")?).map_err(|e| e.to_string())?;
    let params = ClassifierParams::from_checkpoint(model.weights, kind, &read("model.safetensors")?).map_err(|e| e.to_string())?;
    if labels.outputs() != params.outputs() {
        return Err(format!("config.json names {} labels; the classifier has {} outputs", labels.outputs(), params.outputs()));
    }
    let path = a.data.as_ref().ok_or("--eval-only needs --data FILE")?;
    let text = bertlab::disk::read_text(path, bertlab::disk::MAX_DATA_BYTES).map_err(|e| e.to_string())?;
    let (mut examples, notes) = bertlab::task::read_split(&choice.source(a, path)?, &text, &labels, "data").map_err(|e| e.to_string())?;
    for n in notes {
        eprintln!("warning: {n}");
    }
    if let Some(n) = a.max_eval_samples {
        examples.truncate(n.max(1));
    }
    let data = Encoded::encode(&model.tokenizer, &examples, config.max_seq_length).map_err(|e| e.to_string())?;
    let targets = data.targets.clone();
    let predictions =
        pollster::block_on(predict_model(&params, CpuMath::Fast, data, config.per_device_eval_batch_size)).map_err(|e| e.to_string())?;
    let m = predictions.score(&targets, &labels).map_err(|e| e.to_string())?;
    if let Some(p) = &a.write_predictions {
        let task = Task { name: a.task.clone(), kind: task_kind(&examples), labels: labels.clone() };
        let text = predictions_text(&examples, &predictions, &task, &model.tokenizer, config.max_seq_length)?;
        Destination::prepare(p, &a.model, a.overwrite_output_dir)?.write_file(text.as_bytes(), &[])?;
    }
    if a.json {
        println!("{}", m.trainer_json());
    } else {
        println!("{}: {} examples, {}", path.display(), examples.len(), kind.architecture());
        print_metrics(&m, labels.names());
    }
    Ok(())
}

fn task_kind(e: &Examples) -> TaskKind {
    match e {
        Examples::Texts(x) => TaskKind::Texts { pair: x.iter().any(|e| e.pair.is_some()) },
        Examples::Words(_) => TaskKind::Words,
    }
}

/// `--write-predictions`' text: `gold<TAB>predicted` an example (label names,
/// or numbers for a regression); for tags, `word gold predicted` a word (the
/// prediction of its first WordPiece; words cut off by max_seq_length are
/// left out, as the Trainer scores them), a blank line between sentences.
fn predictions_text(
    examples: &Examples,
    p: &Predictions,
    task: &Task,
    tokenizer: &BertTokenizer,
    max_len: usize,
) -> Result<String, String> {
    let names = task.label_names();
    let name = |c: u32| names.get(c as usize).cloned().unwrap_or_else(|| c.to_string());
    let mut out = String::new();
    match examples {
        Examples::Texts(e) => {
            for (x, logits) in e.iter().zip(&p.logits) {
                let predicted = match task.labels {
                    Labels::Regression => format!("{}", logits[0]),
                    Labels::Classes(_) => name(p.classes_of(logits)[0]),
                };
                let gold = match x.target {
                    Target::Class(c) => name(c),
                    Target::Value(v) => format!("{v}"),
                };
                out.push_str(&format!("{gold}\t{predicted}\n"));
            }
        }
        Examples::Words(e) => {
            for (i, (x, logits)) in e.iter().zip(&p.logits).enumerate() {
                let (_, words) = tokenizer.encode_words(&x.words, max_len, &format!("sentence {}", i + 1)).map_err(|e| e.to_string())?;
                let classes = p.classes_of(logits);
                for (w, (word, &gold)) in x.words.iter().zip(&x.tags).enumerate() {
                    if let Some(t) = words.iter().position(|&id| id == Some(w as u32)) {
                        out.push_str(&format!("{word} {} {}\n", name(gold), name(classes[t])));
                    }
                }
                out.push('\n');
            }
        }
    }
    Ok(out)
}

/// Where a layer run's steps run: `gpu` on any adapter, `auto` on a
/// hardware GPU (a software one is slower than the CPU path), `cpu` never.
fn training_device(backend: BackendArg) -> Result<Option<GpuContext>, String> {
    match backend {
        BackendArg::Cpu => Ok(None),
        BackendArg::Gpu => pollster::block_on(GpuContext::new()).map(Some).map_err(|e| e.to_string()),
        BackendArg::Auto => Ok(pollster::block_on(GpuContext::new()).ok().filter(|ctx| !ctx.is_software())),
    }
}

/// The fine-tuned model as a Hugging Face folder, with the base model's config and tokenizer files.
fn write_folder(out: &Destination, base: &Path, p: &ClassifierParams, labels: &Labels) -> Result<(), String> {
    let read = |name: &str| read_bounded(&base.join(name), max_file_bytes(name)).map_err(|e| e.to_string());
    let config = read("config.json")?;
    let tokenizer: Vec<(&str, Vec<u8>)> = ["tokenizer.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json"]
        .into_iter()
        .filter(|n| base.join(n).is_file())
        .map(|n| read(n).map(|b| (n, b)))
        .collect::<Result<_, _>>()?;
    let borrowed: Vec<(&str, &[u8])> = tokenizer.iter().map(|(n, b)| (*n, b.as_slice())).collect();
    out.write_folder(export_folder(p, labels, &config, &borrowed).map_err(|e| e.to_string())?)
}
