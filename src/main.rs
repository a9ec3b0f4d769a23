//! `bertlab`: the engine on the command line (embed, bench).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use bertlab::outputs::torch_format;
use bertlab::{BackendChoice, Batch, Engine, Input, Model, Outputs, Pooling};

mod bench;
mod finetune_cli;

#[derive(Parser)]
#[command(name = "bertlab", version, about = "BERT on our own WGSL kernels: embed text, benchmark the engine")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum BackendArg {
    Auto,
    Gpu,
    Cpu,
}

impl From<BackendArg> for BackendChoice {
    fn from(b: BackendArg) -> Self {
        match b {
            BackendArg::Auto => BackendChoice::Auto,
            BackendArg::Gpu => BackendChoice::Gpu,
            BackendArg::Cpu => BackendChoice::Cpu,
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Run BERT over sentences (batched into one forward pass) and print its outputs.
    Embed {
        /// Sentences, each its own row of the batch.
        texts: Vec<String>,
        /// A sentence pair (token type ids 0 then 1); may be repeated.
        #[arg(long, num_args = 2, value_names = ["A", "B"], action = clap::ArgAction::Append)]
        pair: Vec<String>,
        /// A folder with config.json, model.safetensors and tokenizer.json or vocab.txt.
        #[arg(long, default_value_os_t = default_model_dir())]
        model: PathBuf,
        #[arg(long, value_enum, default_value_t = BackendArg::Auto)]
        backend: BackendArg,
        /// Print every output in full as JSON.
        #[arg(long)]
        json: bool,
        /// Also compute the attention probabilities of every layer (in --json).
        #[arg(long)]
        attentions: bool,
        /// L2-normalise the sentence embeddings.
        #[arg(long)]
        normalize: bool,
    },
    /// Print a table of encoder and matmul throughput on the GPU and the CPU path.
    Bench(bench::BenchArgs),
    /// Train a classification head on frozen BERT features (GLUE MRPC), or score a saved one.
    Finetune(finetune_cli::FinetuneArgs),
}

/// The bundled default model, fetched by the set-up script.
pub fn default_model_dir() -> PathBuf {
    std::env::var_os("BERTLAB_MODEL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models/all-MiniLM-L6-v2"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Embed { texts, pair, model, backend, json, attentions, normalize } => {
            let mut inputs: Vec<Input> = texts.into_iter().map(Input::Single).collect();
            inputs.extend(pair.chunks(2).map(|p| Input::Pair(p[0].clone(), p[1].clone())));
            embed(&model, inputs, backend.into(), json, attentions, normalize)
        }
        Command::Bench(args) => bench::run(args),
        Command::Finetune(args) => finetune_cli::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn embed(
    dir: &std::path::Path,
    inputs: Vec<Input>,
    backend: BackendChoice,
    json: bool,
    attentions: bool,
    normalize: bool,
) -> Result<(), String> {
    if inputs.is_empty() {
        return Err("no text given: bertlab embed \"some text\" [--pair A B]".into());
    }
    let model = Model::from_dir(dir).map_err(|e| e.to_string())?;
    // Tokenize before opening a device: bad text fails fast.
    let batch = model.tokenizer.encode_batch(&inputs).map_err(|e| e.to_string())?;
    let mut engine = pollster::block_on(Engine::new(model, backend)).map_err(|e| e.to_string())?;
    let start = web_time::Instant::now();
    let out = pollster::block_on(engine.forward(&batch, attentions)).map_err(|e| e.to_string())?;
    let ms = start.elapsed().as_secs_f64() * 1e3;
    if json {
        println!("{}", to_json(dir, &engine, &inputs, &batch, &out, normalize, ms));
        return Ok(());
    }
    let c = &engine.config;
    println!(
        "model: {} ({} layers, hidden {}, {} heads)",
        dir.display(),
        c.num_hidden_layers,
        c.hidden_size,
        c.num_attention_heads
    );
    println!("backend: {}", engine.backend_description);
    for (i, input) in inputs.iter().enumerate() {
        match input {
            Input::Single(t) => println!("text {}: {t:?}", i + 1),
            Input::Pair(a, b) => println!("pair {}: {a:?} / {b:?}", i + 1),
        }
        let toks: Vec<String> = batch.tokens[i].iter().map(|t| format!("{t:?}")).collect();
        println!("  tokens ({}): [{}]", toks.len(), toks.join(", "));
        if batch.truncated[i] {
            println!("  note: truncated to the model's {} positions", c.max_position_embeddings);
        }
    }
    let (b, s, h) = (out.batch, out.seq, out.hidden);
    println!("last_hidden_state: torch.Size([{b}, {s}, {h}])");
    println!("{}", torch_format(&out.last_hidden_state, &[b, s, h]));
    match &out.pooler_output {
        Some(p) => {
            println!("pooler_output: torch.Size([{b}, {h}])");
            println!("{}", torch_format(p, &[b, h]));
        }
        None => println!("pooler_output: none (the checkpoint has no pooler weights)"),
    }
    if b > 1 {
        let emb: Vec<Vec<f32>> = (0..b)
            .map(|r| out.sentence_embedding(r, &batch.attention_mask, Pooling::Mean, true).unwrap())
            .collect();
        println!("cosine similarity of the mean-pooled embeddings:");
        for (i, u) in emb.iter().enumerate() {
            let row: Vec<String> =
                emb.iter().map(|v| format!("{:6.3}", u.iter().zip(v).map(|(a, b)| a * b).sum::<f32>())).collect();
            println!("  {:>3}  {}", i + 1, row.join(" "));
        }
    }
    println!("forward: {ms:.1} ms");
    Ok(())
}

fn nested(data: &[f32], inner: usize) -> Vec<&[f32]> {
    data.chunks(inner).collect()
}

fn to_json(
    dir: &std::path::Path,
    engine: &Engine,
    inputs: &[Input],
    batch: &Batch,
    out: &Outputs,
    normalize: bool,
    ms: f64,
) -> String {
    let (b, s, h) = (out.batch, out.seq, out.hidden);
    let rows: Vec<serde_json::Value> = inputs
        .iter()
        .enumerate()
        .map(|(i, input)| {
            let ids = &batch.input_ids[i * s..(i + 1) * s];
            let (text, pair) = match input {
                Input::Single(t) => (t.clone(), None),
                Input::Pair(a, p) => (a.clone(), Some(p.clone())),
            };
            serde_json::json!({
                "text": text,
                "pair": pair,
                "tokens": batch.tokens[i],
                "input_ids": ids,
                "token_type_ids": &batch.token_type_ids[i * s..(i + 1) * s],
                "attention_mask": &batch.attention_mask[i * s..(i + 1) * s],
                "truncated": batch.truncated[i],
            })
        })
        .collect();
    let hidden: Vec<Vec<&[f32]>> = nested(&out.last_hidden_state, s * h).into_iter().map(|r| nested(r, h)).collect();
    let pooled = |p: Pooling| -> Option<Vec<Vec<f32>>> {
        (0..b).map(|r| out.sentence_embedding(r, &batch.attention_mask, p, normalize)).collect()
    };
    let attentions = out.attentions.as_ref().map(|a| {
        // [batch][layer][head][query][key]
        (0..b)
            .map(|r| {
                (0..a.layers)
                    .map(|l| (0..a.heads).map(|hd| nested(out.attention(r, l, hd).unwrap(), s)).collect::<Vec<_>>())
                    .collect::<Vec<_>>()
            })
            .collect::<Vec<_>>()
    });
    serde_json::json!({
        "model": dir.display().to_string(),
        "backend": engine.backend_description,
        "forward_ms": ms,
        "inputs": rows,
        "shape": [b, s, h],
        "last_hidden_state": hidden,
        "pooler_output": out.pooler_output.as_ref().map(|p| nested(p, h)),
        "sentence_embeddings": {
            "normalized": normalize,
            "mean": pooled(Pooling::Mean),
            "cls": pooled(Pooling::Cls),
        },
        "attentions": attentions,
    })
    .to_string()
}
