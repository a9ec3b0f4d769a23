//! `bertlab finetune --train-layers all|N`: BERT itself fine-tuned with the
//! classifier on the CPU path or the GPU, reported as the head runs are,
//! written out as a Hugging Face folder.

use bertlab::classifier::export::export_folder;
use bertlab::classifier::math::CpuMath;
use bertlab::classifier::{ClassifierParams, HeadKind, Labels};
use bertlab::disk::read_bounded;
use bertlab::fast_cpu::FastCpuEncoder;
use bertlab::finetune::model_training::{evaluate_model, ModelTraining, Pairs, MRPC_CLASSES};
use bertlab::finetune::training::Event;
use bertlab::finetune::TrainConfig;
use bertlab::gpu::GpuContext;
use bertlab::model::max_file_bytes;
use bertlab::{Model, ModelIdentity};

use crate::destination::Destination;
use crate::finetune::{metrics_json, print_scores, print_summary, read_tsv, report, FinetuneArgs};
use crate::{status_line, BackendArg};

pub fn run(a: &FinetuneArgs, config: TrainConfig, model: Model, out: Option<Destination>) -> Result<(), String> {
    let layers = config.train_layers;
    let mut train = read_tsv(&a.data.join("train.tsv"))?;
    let dev = read_tsv(&a.data.join("dev.tsv"))?;
    if let Some(n) = a.train_limit {
        train.examples.truncate(n.max(1));
    }
    let encode =
        |d: &bertlab::glue::Dataset| Pairs::encode(&model.tokenizer, &d.examples, config.max_seq_length).map_err(|e| e.to_string());
    let (train_pairs, dev_pairs) = (encode(&train)?, encode(&dev)?);
    let identity = ModelIdentity::of(&model.name, &model.weights);
    let params = ClassifierParams::new(model.weights, HeadKind::Sequence, MRPC_CLASSES, config.seed);
    let (all, trained) = params.counts(layers);
    let gpu = training_device(a.backend)?;
    if !a.json {
        let on = match &gpu {
            Some(ctx) => format!("on {}", ctx.describe()),
            None => format!("on the CPU ({} threads)", FastCpuEncoder::threads()),
        };
        println!("fine-tuning {} of {}: {trained} of {all} parameters, {on}", layers.describe(), model.name);
        println!(
            "train: {} pairs ({} positive), validation: {} pairs ({} positive)",
            train.examples.len(),
            train.positives(),
            dev.examples.len(),
            dev.positives()
        );
    }
    let mut t =
        ModelTraining::new("cli".into(), identity, params, config, CpuMath::Fast, train_pairs, dev_pairs).map_err(|e| e.to_string())?;
    if let Some(ctx) = gpu {
        t = t.on_gpu(ctx).map_err(|e| e.to_string())?;
    }
    let (steps_per_epoch, total) = (t.steps_per_epoch(), t.total_steps());
    let start = web_time::Instant::now();
    // time in training steps alone (evaluation excluded), for pairs/s as PyTorch's Trainer counts them
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
                    write_folder(out, &a.model, pollster::block_on(t.params()).map_err(|e| e.to_string())?)?;
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
    let majority = dev.majority_accuracy();
    let pairs_per_second = (train.examples.len() * t.config.num_train_epochs) as f64 / step_seconds.max(1e-9);
    let total_seconds = start.elapsed().as_secs_f64();
    if a.json {
        let speed =
            serde_json::json!({"train_seconds": step_seconds, "total_seconds": total_seconds, "pairs_per_second": pairs_per_second});
        println!("{}", serde_json::json!({"final": metrics_json(&last), "majority_class_accuracy": majority, "speed": speed}));
    } else {
        status_line::end();
        print_summary(&last, majority, "this model");
        println!("{pairs_per_second:.1} training pairs/s ({step_seconds:.0} s of steps, {total_seconds:.0} s with evaluation)");
    }
    if let Some(out) = &out {
        write_folder(out, &a.model, pollster::block_on(t.params()).map_err(|e| e.to_string())?)?;
        if !a.json {
            println!("wrote {} (BertForSequenceClassification.from_pretrained loads it)", out.path().display());
        }
    }
    Ok(())
}

/// `--eval-only` with a fine-tuned folder as `--model`: its classifier on `--data` (one TSV file).
pub fn eval_only(a: &FinetuneArgs, config: TrainConfig, model: Model) -> Result<(), String> {
    let bytes = read_bounded(&a.model.join("model.safetensors"), max_file_bytes("model.safetensors")).map_err(|e| e.to_string())?;
    let params = ClassifierParams::from_checkpoint(model.weights, HeadKind::Sequence, &bytes).map_err(|e| e.to_string())?;
    let data = read_tsv(&a.data)?;
    let pairs = Pairs::encode(&model.tokenizer, &data.examples, config.max_seq_length).map_err(|e| e.to_string())?;
    let m =
        pollster::block_on(evaluate_model(&params, CpuMath::Fast, pairs, config.per_device_eval_batch_size)).map_err(|e| e.to_string())?;
    print_scores(a, data.examples.len(), &m);
    Ok(())
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
fn write_folder(out: &Destination, base: &std::path::Path, p: &ClassifierParams) -> Result<(), String> {
    let read = |name: &str| read_bounded(&base.join(name), max_file_bytes(name)).map_err(|e| e.to_string());
    let config = read("config.json")?;
    let tokenizer: Vec<(&str, Vec<u8>)> = ["tokenizer.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json"]
        .into_iter()
        .filter(|n| base.join(n).is_file())
        .map(|n| read(n).map(|b| (n, b)))
        .collect::<Result<_, _>>()?;
    let borrowed: Vec<(&str, &[u8])> = tokenizer.iter().map(|(n, b)| (*n, b.as_slice())).collect();
    out.write_folder(export_folder(p, &Labels::mrpc(), &config, &borrowed).map_err(|e| e.to_string())?)
}
