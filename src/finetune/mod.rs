//! Fine-tuning a head on frozen BERT features, reported like transformers'
//! Trainer: loss per step; loss, accuracy and F1 on validation each epoch.
//!
//! Features are extracted once (the encoder is frozen, [`features`]), then a
//! [`training::Training`] runs step by step so a caller can pause, resume,
//! checkpoint or stop between steps. [`head_io`] writes and reads trained
//! heads; [`baseline`] fits the logistic regression they are compared with.

pub mod baseline;
pub mod features;
pub mod head_io;
pub mod model_training;
pub mod progress;
pub mod training;

use crate::classifier::TrainLayers;
use crate::error::{Error, Result};
use crate::head::HeadInput;
use crate::tokenize::MIN_LEN;

/// The default learning rate of a head alone on frozen features: the
/// Trainer's 2e-5 is made for whole-model fine-tuning, and a head learns
/// nothing with it in three epochs.
pub const HEAD_LEARNING_RATE: f32 = 1e-3;

/// Bounds on the settings that size memory or count steps: a batch's
/// activations are held at once (1024 pairs of 128 tokens of bert-base
/// already take gigabytes), and steps × epochs must not overflow.
pub const MAX_BATCH: usize = 1024;
pub const MAX_ACCUMULATION: usize = 1024;
pub const MAX_EPOCHS: usize = 1000;

/// The Trainer's hyper-parameters, with its names and defaults.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TrainConfig {
    pub learning_rate: f32,
    pub per_device_train_batch_size: usize,
    /// Batches whose gradients make one optimizer step (the Trainer's
    /// name): a step sees `per_device_train_batch_size` × this many pairs
    /// while memory holds one batch's activations.
    #[serde(default = "one")]
    pub gradient_accumulation_steps: usize,
    pub per_device_eval_batch_size: usize,
    pub num_train_epochs: usize,
    pub weight_decay: f32,
    pub warmup_steps: usize,
    pub max_seq_length: usize,
    pub seed: u64,
    pub head_input: HeadInput,
    /// 0: a Linear head; otherwise the MLP's hidden width.
    pub mlp_hidden: usize,
    /// What trains: `Top(0)` is a head on frozen features (the default, and
    /// what runs saved before this setting existed did); otherwise BERT's
    /// layers with the classifier.
    #[serde(default = "head_only")]
    pub train_layers: TrainLayers,
}

fn one() -> usize {
    1
}

fn head_only() -> TrainLayers {
    TrainLayers::Top(0)
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            learning_rate: 2e-5,
            per_device_train_batch_size: 16,
            gradient_accumulation_steps: 1,
            per_device_eval_batch_size: 64,
            num_train_epochs: 3,
            weight_decay: 0.01,
            warmup_steps: 0,
            max_seq_length: 128,
            seed: 42,
            head_input: HeadInput::Pooler,
            mlp_hidden: 0,
            train_layers: head_only(),
        }
    }
}

impl TrainConfig {
    /// Pairs per optimizer step (both factors are bounded by `validate`).
    pub fn pairs_per_step(&self) -> usize {
        self.per_device_train_batch_size.clamp(1, MAX_BATCH) * self.gradient_accumulation_steps.clamp(1, MAX_ACCUMULATION)
    }

    /// Optimizer steps of a run over `pairs` training pairs.
    pub fn total_steps(&self, pairs: usize) -> usize {
        pairs.div_ceil(self.pairs_per_step()) * self.num_train_epochs
    }

    /// Whether BERT's layers train (else a head on frozen features).
    pub fn trains_layers(&self) -> bool {
        self.train_layers != TrainLayers::Top(0)
    }

    /// Refuses settings no run can use, with the setting's name.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Input(m));
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return bad(format!("learning_rate {} must be a positive number", self.learning_rate));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return bad(format!("weight_decay {} must be a number ≥ 0", self.weight_decay));
        }
        for (name, v, max) in [
            ("per_device_train_batch_size", self.per_device_train_batch_size, MAX_BATCH),
            ("gradient_accumulation_steps", self.gradient_accumulation_steps, MAX_ACCUMULATION),
            ("per_device_eval_batch_size", self.per_device_eval_batch_size, MAX_BATCH),
            ("num_train_epochs", self.num_train_epochs, MAX_EPOCHS),
        ] {
            if v == 0 {
                return bad(format!("{name} must be at least 1"));
            }
            if v > max {
                return bad(format!("{name} {v} is more than this engine runs (at most {max})"));
            }
        }
        if self.trains_layers() && (self.head_input != HeadInput::Pooler || self.mlp_hidden != 0) {
            return bad("fine-tuning BERT's layers trains BertForSequenceClassification's own head (pooler → Linear): choose the pooler input and a Linear head".into());
        }
        if self.max_seq_length < MIN_LEN {
            return bad(format!("max_seq_length {} must be at least {MIN_LEN}", self.max_seq_length));
        }
        Ok(())
    }
}

/// transformers' linear schedule with warmup: the learning rate for the
/// update after `step` updates (0-based) out of `total`.
pub fn learning_rate_at(step: usize, total: usize, warmup: usize, base: f32) -> f32 {
    if step < warmup {
        base * step as f32 / warmup.max(1) as f32
    } else {
        // warmup past the run's end leaves nothing to decay over
        base * (total.saturating_sub(step) as f32 / total.saturating_sub(warmup).max(1) as f32).max(0.0)
    }
}

/// Validation results; `confusion[true label][predicted]`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Metrics {
    pub loss: f64,
    pub accuracy: f64,
    /// F1 of the positive class (label 1, "paraphrase").
    pub f1: f64,
    pub confusion: [[usize; 2]; 2],
}

impl Metrics {
    /// How many pairs were predicted as each class.
    pub fn predicted(&self) -> [usize; 2] {
        let c = self.confusion;
        [c[0][0] + c[1][0], c[0][1] + c[1][1]]
    }

    /// The class every pair was predicted as, when it was always the same one.
    pub fn single_class(&self) -> Option<usize> {
        match self.predicted() {
            [0, n] if n > 0 => Some(1),
            [n, 0] if n > 0 => Some(0),
            _ => None,
        }
    }
}

/// What a model that learned nothing scores: always the training set's
/// majority class, with the training set's class frequencies as its
/// probabilities (so its loss is the labels' entropy under that prior).
pub fn majority_baseline(train_labels: &[u8], eval_labels: &[u8]) -> Result<Metrics> {
    if train_labels.is_empty() {
        return Err(Error::Input("no training labels for a baseline".into()));
    }
    let positive = train_labels.iter().filter(|&&l| l == 1).count() as f32 / train_labels.len() as f32;
    // clamped so a one-class training set still gives a finite loss
    let p = positive.clamp(1e-6, 1.0 - 1e-6);
    let probs: Vec<f32> = eval_labels.iter().flat_map(|_| [1.0 - p, p]).collect();
    evaluate(&probs, eval_labels)
}

/// Metrics of class probabilities `[n, 2]` against 0/1 labels. A probability
/// that is not a number is an error, never a silent vote for class 0.
pub fn evaluate(probs: &[f32], labels: &[u8]) -> Result<Metrics> {
    if probs.len() != labels.len() * 2 {
        return Err(Error::Input(format!("{} probabilities for {} labels", probs.len(), labels.len())));
    }
    let mut confusion = [[0usize; 2]; 2];
    let mut loss = 0.0f64;
    for (i, &y) in labels.iter().enumerate() {
        let p = &probs[i * 2..i * 2 + 2];
        if !p.iter().all(|v| v.is_finite()) {
            return Err(Error::Input(format!("the head gave a non-finite probability for validation pair {}", i + 1)));
        }
        let y = usize::from(y);
        if y > 1 {
            return Err(Error::Input(format!("validation pair {} has label {y}; MRPC's are 0 and 1", i + 1)));
        }
        confusion[y][usize::from(p[1] > p[0])] += 1;
        loss -= (p[y].max(1e-12) as f64).ln();
    }
    let tp = confusion[1][1] as f64;
    let (fp, fn_) = (confusion[0][1] as f64, confusion[1][0] as f64);
    let f1 = if tp == 0.0 { 0.0 } else { 2.0 * tp / (2.0 * tp + fp + fn_) };
    let n = labels.len().max(1) as f64;
    Ok(Metrics { loss: loss / n, accuracy: (confusion[0][0] + confusion[1][1]) as f64 / n, f1, confusion })
}
