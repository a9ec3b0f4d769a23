//! Fine-tuning runs, reported like transformers' Trainer: the loss per step,
//! the task's scores on validation each epoch ([`Metrics`]).
//!
//! [`model_training::ModelTraining`] trains BERT's layers with the task's
//! head on [`encoded`] examples; [`training::Training`] a head on frozen
//! features extracted once ([`features`]). Both advance step by step so a
//! caller can pause, resume, checkpoint or stop between steps. [`head_io`]
//! writes and reads trained heads; [`baseline`] fits the logistic regression
//! they are compared with.

pub mod baseline;
pub mod encoded;
pub mod features;
pub mod head_io;
pub mod model_training;
pub mod progress;
pub mod training;

use crate::classifier::TrainLayers;
use crate::error::{Error, Result};
use crate::head::HeadInput;
use crate::task::metrics::{self, EntityScores};
use crate::task::{Examples, Target, TaskData};
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

/// Validation results: the loss and the task's scores.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Metrics {
    pub loss: f64,
    pub scores: Scores,
}

/// A task's scores, as transformers' examples report them (task::metrics).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Scores {
    /// Accuracy; F1 of class 1 for two classes; `confusion[true][predicted]` up to 20 classes.
    Classes {
        accuracy: f64,
        f1: Option<f64>,
        confusion: Option<Vec<Vec<usize>>>,
    },
    Regression {
        pearson: f64,
        spearman: f64,
    },
    /// seqeval's micro-averaged scores, the word accuracy, and a row per entity type.
    Entities {
        all: EntityScores,
        accuracy: f64,
        types: Vec<EntityScores>,
    },
}

/// Metrics as saved now (the fields of [`Metrics`]).
#[derive(serde::Deserialize)]
#[serde(rename = "Metrics")]
struct MetricsNow {
    loss: f64,
    scores: Scores,
}

/// Metrics as saved now, or as runs saved before N-label tasks wrote them (MRPC's two classes).
#[derive(serde::Deserialize)]
#[serde(untagged)]
enum MetricsRecord {
    Now(MetricsNow),
    Mrpc { loss: f64, accuracy: f64, f1: f64, confusion: [[usize; 2]; 2] },
}

/// Saved JSON (run records, checkpoints' metadata, metrics.json) may hold
/// the old layout; the page's binary messages (postcard, which cannot read
/// an untagged enum) only ever carry the new one.
impl<'de> serde::Deserialize<'de> for Metrics {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let now = |MetricsNow { loss, scores }| Metrics { loss, scores };
        if !d.is_human_readable() {
            return MetricsNow::deserialize(d).map(now);
        }
        Ok(match MetricsRecord::deserialize(d)? {
            MetricsRecord::Now(m) => now(m),
            MetricsRecord::Mrpc { loss, accuracy, f1, confusion } => {
                let confusion = Some(confusion.iter().map(|r| r.to_vec()).collect());
                Metrics { loss, scores: Scores::Classes { accuracy, f1: Some(f1), confusion } }
            }
        })
    }
}

impl Metrics {
    /// The score a run is judged and charted by, with its name: accuracy,
    /// Spearman's correlation (regression), or entity F1 (tags).
    pub fn headline(&self) -> (&'static str, f64) {
        match &self.scores {
            Scores::Classes { accuracy, .. } => ("accuracy", *accuracy),
            Scores::Regression { spearman, .. } => ("Spearman", *spearman),
            Scores::Entities { all, .. } => ("entity F1", all.f1),
        }
    }

    /// F1 where the task has one: of class 1 for two classes, of entities for tags.
    pub fn f1(&self) -> Option<f64> {
        match &self.scores {
            Scores::Classes { f1, .. } => *f1,
            Scores::Entities { all, .. } => Some(all.f1),
            Scores::Regression { .. } => None,
        }
    }

    /// `[true][predicted]` counts (classification of up to 20 classes).
    pub fn confusion(&self) -> Option<&Vec<Vec<usize>>> {
        match &self.scores {
            Scores::Classes { confusion, .. } => confusion.as_ref(),
            _ => None,
        }
    }

    /// How many examples were predicted as each class (classification).
    pub fn predicted(&self) -> Option<Vec<usize>> {
        match &self.scores {
            Scores::Classes { confusion: Some(c), .. } => Some((0..c.len()).map(|p| c.iter().map(|row| row[p]).sum()).collect()),
            _ => None,
        }
    }

    /// The class every example was predicted as, when it was always the same one.
    pub fn single_class(&self) -> Option<usize> {
        let predicted = self.predicted()?;
        let mut used = predicted.iter().enumerate().filter(|(_, &n)| n > 0);
        match (used.next(), used.next()) {
            (Some((c, _)), None) => Some(c),
            _ => None,
        }
    }

    /// The Trainer's names: `eval_loss`, `eval_accuracy`, `eval_f1`,
    /// `eval_precision`, `eval_recall`, `eval_pearson`, `eval_spearmanr`.
    pub fn trainer_json(&self) -> serde_json::Value {
        let mut j = serde_json::json!({"eval_loss": self.loss});
        match &self.scores {
            Scores::Classes { accuracy, f1, confusion } => {
                j["eval_accuracy"] = (*accuracy).into();
                if let Some(f1) = f1 {
                    j["eval_f1"] = (*f1).into();
                }
                if let Some(c) = confusion {
                    j["confusion_matrix"] = serde_json::json!(c);
                }
            }
            Scores::Regression { pearson, spearman } => {
                j["eval_pearson"] = (*pearson).into();
                j["eval_spearmanr"] = (*spearman).into();
            }
            Scores::Entities { all, accuracy, types } => {
                j["eval_precision"] = all.precision.into();
                j["eval_recall"] = all.recall.into();
                j["eval_f1"] = all.f1.into();
                j["eval_accuracy"] = (*accuracy).into();
                for t in types {
                    j[format!("eval_{}", t.kind)] =
                        serde_json::json!({"precision": t.precision, "recall": t.recall, "f1": t.f1, "number": t.support});
                }
            }
        }
        j
    }
}

/// What a model that learned nothing scores: always the training set's
/// majority class, with the training set's class frequencies as its
/// probabilities (so its loss is the labels' entropy under that prior).
pub fn majority_baseline(train_labels: &[u32], eval_labels: &[u32], classes: usize) -> Result<Metrics> {
    if train_labels.is_empty() || classes == 0 {
        return Err(Error::Input("no training labels for a baseline".into()));
    }
    let mut counts = vec![0usize; classes];
    for &y in train_labels {
        if let Some(n) = counts.get_mut(y as usize) {
            *n += 1;
        }
    }
    // clamped so a class absent from training still gives a finite loss
    let prior: Vec<f32> = counts.iter().map(|&n| (n as f32 / train_labels.len() as f32).max(1e-6)).collect();
    let probs: Vec<f32> = eval_labels.iter().flat_map(|_| prior.iter().copied()).collect();
    evaluate(&probs, eval_labels, classes)
}

/// What always answering the training data's most frequent class scores on
/// validation, as the task scores it (for tags: every word the most frequent
/// tag, usually `O`, so no entity at all); `None` for a regression.
pub fn majority_metrics(data: &TaskData) -> Option<Metrics> {
    let names = data.task.labels.names();
    let classes = names.len();
    let counts = data.train.class_counts(classes);
    let majority = counts.iter().enumerate().max_by_key(|(_, &n)| n)?.0 as u32;
    match &data.eval {
        Examples::Texts(e) => {
            let train_ids: Vec<u32> = data.train.class_ids();
            let eval_ids: Vec<u32> = e.iter().filter_map(|x| if let Target::Class(c) = x.target { Some(c) } else { None }).collect();
            (eval_ids.len() == e.len()).then(|| majority_baseline(&train_ids, &eval_ids, classes).ok()).flatten()
        }
        Examples::Words(e) => {
            let sentences: Vec<(Vec<&str>, Vec<&str>)> = e
                .iter()
                .map(|x| {
                    (vec![names[majority as usize].as_str(); x.tags.len()], x.tags.iter().map(|&t| names[t as usize].as_str()).collect())
                })
                .collect();
            let (all, accuracy, types) = metrics::entity_scores(&sentences);
            let total: usize = counts.iter().sum();
            // the prior's loss: the tags' entropy under the training frequencies
            let loss = -e.iter().flat_map(|x| &x.tags).map(|&t| (counts[t as usize].max(1) as f64 / total.max(1) as f64).ln()).sum::<f64>()
                / e.iter().map(|x| x.tags.len()).sum::<usize>().max(1) as f64;
            Some(Metrics { loss, scores: Scores::Entities { all, accuracy, types } })
        }
    }
}

/// Metrics of class probabilities `[n, classes]` against class ids. A
/// probability that is not a number is an error, never a silent vote.
pub fn evaluate(probs: &[f32], labels: &[u32], classes: usize) -> Result<Metrics> {
    if probs.len() != labels.len() * classes || classes == 0 {
        return Err(Error::Input(format!("{} probabilities for {} labels of {classes} classes", probs.len(), labels.len())));
    }
    let mut predicted = Vec::with_capacity(labels.len());
    let mut loss = 0.0f64;
    for (i, (&y, p)) in labels.iter().zip(probs.chunks(classes)).enumerate() {
        if !p.iter().all(|v| v.is_finite()) {
            return Err(Error::Input(format!("the model gave a non-finite probability for validation example {}", i + 1)));
        }
        let Some(&py) = p.get(y as usize) else {
            return Err(Error::Input(format!("validation example {} has label {y}; the task has {classes} classes", i + 1)));
        };
        // the first of equal maxima, as argmax does
        predicted.push(p.iter().enumerate().fold(0, |best, (c, &v)| if v > p[best] { c } else { best }) as u32);
        loss -= (py.max(1e-12) as f64).ln();
    }
    let (accuracy, f1, confusion) = metrics::classification(&predicted, labels, classes);
    Ok(Metrics { loss: loss / labels.len().max(1) as f64, scores: Scores::Classes { accuracy, f1, confusion } })
}

/// Metrics of a regression's predictions: the mean squared error as the loss, Pearson and Spearman.
pub fn evaluate_values(predicted: &[f32], wanted: &[f32]) -> Result<Metrics> {
    if predicted.len() != wanted.len() || wanted.is_empty() {
        return Err(Error::Input(format!("{} predictions for {} targets", predicted.len(), wanted.len())));
    }
    if let Some(i) = predicted.iter().position(|v| !v.is_finite()) {
        return Err(Error::Input(format!("the model gave a non-finite prediction for validation example {}", i + 1)));
    }
    let (x, y): (Vec<f64>, Vec<f64>) = predicted.iter().zip(wanted).map(|(&p, &w)| (f64::from(p), f64::from(w))).unzip();
    let loss = x.iter().zip(&y).map(|(p, w)| (p - w) * (p - w)).sum::<f64>() / x.len() as f64;
    Ok(Metrics { loss, scores: Scores::Regression { pearson: metrics::pearson(&x, &y), spearman: metrics::spearman(&x, &y) } })
}
