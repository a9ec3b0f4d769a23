//! `bertlab`: the engine on the command line (embed, fill-mask, explain, compare, finetune, bench).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use bertlab::explain::Method;
use bertlab::mlm::Sees;
use bertlab::{AttentionRequest, BackendChoice, Input, Keep};

mod bench;
mod compare;
mod destination;
mod embed;
mod explain;
mod feature_cache;
mod fill_mask;
mod finetune;
mod finetune_model;

#[derive(Parser)]
#[command(name = "bertlab", version, about = "BERT on our own WGSL kernels: embed text, fine-tune it on a task, benchmark the engine")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
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

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SeesArg {
    Both,
    Left,
    Right,
}

impl From<SeesArg> for Sees {
    fn from(s: SeesArg) -> Self {
        match s {
            SeesArg::Both => Sees::Both,
            SeesArg::Left => Sees::Left,
            SeesArg::Right => Sees::Right,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MethodArg {
    GradXInput,
    IntegratedGradients,
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
        /// Also keep every layer's hidden states, as output_hidden_states=True (in --json: "hidden_states",
        /// num_hidden_layers + 1 tensors shaped like last_hidden_state, the last equal to it).
        #[arg(long)]
        hidden_states: bool,
        /// L2-normalise the sentence embeddings.
        #[arg(long)]
        normalize: bool,
    },
    /// Predict the word behind every [MASK] of a text (a BertForMaskedLM checkpoint), as transformers' fill-mask pipeline.
    FillMask {
        /// The text, with [MASK] where a word should be predicted.
        text: String,
        /// A BertForMaskedLM (or BertForPreTraining) folder: config.json, model.safetensors, vocab.txt or tokenizer.json.
        #[arg(long, default_value_os_t = default_model_dir())]
        model: PathBuf,
        /// Predictions per mask.
        #[arg(long, default_value_t = 5)]
        top_k: usize,
        /// What attention may look at: the whole text, or only one side of each mask.
        #[arg(long, value_enum, default_value_t = SeesArg::Both)]
        sees: SeesArg,
        #[arg(long, value_enum, default_value_t = BackendArg::Auto)]
        backend: BackendArg,
        /// Print {"masks": [{"position", "predictions": [{"token", "token_str", "score", "sequence"}]}]}.
        #[arg(long)]
        json: bool,
    },
    /// Each token's share of a fine-tuned classifier's prediction (a BertForSequenceClassification folder).
    Explain {
        /// The text (and, for a pair, the second text).
        text: String,
        text_pair: Option<String>,
        #[arg(long)]
        model: PathBuf,
        #[arg(long, value_enum, default_value_t = MethodArg::IntegratedGradients)]
        method: MethodArg,
        /// Integrated gradients' steps (each a forward and a backward pass).
        #[arg(long, default_value_t = 50)]
        steps: usize,
        /// The class to explain (default: the predicted one).
        #[arg(long)]
        target: Option<usize>,
        /// Print {"target", "label", "logits", "tokens", "attributions", "f_x_minus_f_baseline"}.
        #[arg(long)]
        json: bool,
    },
    /// What fine-tuning changed: per layer the linear CKA of the two models' mean-pooled hidden states, per head how far attention moved.
    Compare {
        /// The model before fine-tuning.
        #[arg(long, default_value_os_t = default_model_dir())]
        model: PathBuf,
        /// The fine-tuned folder (its BERT is compared; a classifier's head is not used).
        #[arg(long)]
        against: PathBuf,
        /// Labelled examples: a .tsv, .csv or .jsonl table (columns found by their usual names) or CoNLL lines (any other name).
        #[arg(long)]
        data: PathBuf,
        #[arg(long)]
        text_column: Option<String>,
        #[arg(long)]
        text_pair_column: Option<String>,
        #[arg(long)]
        label_column: Option<String>,
        /// The first N examples (at most 2000).
        #[arg(long, default_value_t = 500)]
        max_samples: usize,
        #[arg(long, default_value_t = 128)]
        max_seq_length: usize,
        #[arg(long, value_enum, default_value_t = BackendArg::Auto)]
        backend: BackendArg,
        /// Print {"examples", "layers": [{"layer", "cka"}], "heads": [[…]], "base_map", "tuned_map"}.
        #[arg(long)]
        json: bool,
    },
    /// Print a table of encoder and matmul throughput on the GPU and the CPU path.
    Bench(bench::BenchArgs),
    /// Fine-tune BERT on a task (MRPC, SST-2, CoNLL-2003, your own table or CoNLL file) as transformers' Trainer does, or score a fine-tuned model.
    Finetune(Box<finetune::FinetuneArgs>),
}

/// The bundled default model, fetched by the set-up script.
pub fn default_model_dir() -> PathBuf {
    std::env::var_os("BERTLAB_MODEL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models/all-MiniLM-L6-v2"))
}

/// A progress line on stderr, rewritten in place (`\r`): ended with a
/// newline before anything else is printed there, so an error never lands
/// on the same line.
pub mod status_line {
    use std::sync::atomic::{AtomicBool, Ordering};

    static OPEN: AtomicBool = AtomicBool::new(false);

    pub fn show(line: &str) {
        eprint!("\r{line}   ");
        OPEN.store(true, Ordering::Relaxed);
    }

    /// Ends the progress line: before a result, or anything on stderr.
    pub fn end() {
        if OPEN.swap(false, Ordering::Relaxed) {
            eprintln!();
        }
    }
}

fn main() -> ExitCode {
    // `bertlab embed … | head` closes our stdout: end quietly, as other tools do, not with a panic
    #[cfg(unix)]
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Embed { texts, pair, model, backend, json, attentions, hidden_states, normalize } => {
            let mut inputs: Vec<Input> = texts.into_iter().map(Input::Single).collect();
            inputs.extend(pair.chunks(2).map(|p| Input::Pair(p[0].clone(), p[1].clone())));
            let attentions = if attentions { AttentionRequest::All } else { AttentionRequest::None };
            embed::run(&model, inputs, backend.into(), json, Keep { attentions, hidden_states }, normalize)
        }
        Command::FillMask { text, model, top_k, sees, backend, json } => {
            fill_mask::run(&model, &text, top_k, sees.into(), backend.into(), json)
        }
        Command::Explain { text, text_pair, model, method, steps, target, json } => {
            let input = match text_pair {
                Some(b) => Input::Pair(text, b),
                None => Input::Single(text),
            };
            let method = match method {
                MethodArg::GradXInput => Method::GradXInput,
                MethodArg::IntegratedGradients => Method::IntegratedGradients { steps },
            };
            explain::run(&model, input, method, target, json)
        }
        Command::Compare {
            model,
            against,
            data,
            text_column,
            text_pair_column,
            label_column,
            max_samples,
            max_seq_length,
            backend,
            json,
        } => {
            let columns = bertlab::task::Columns { text: text_column, pair: text_pair_column, label: label_column };
            let data = compare::Data { path: data, columns, max_samples, max_seq_length };
            compare::run(&model, &against, &data, backend.into(), json)
        }
        Command::Bench(args) => bench::run(args),
        Command::Finetune(args) => finetune::run(*args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            status_line::end();
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
