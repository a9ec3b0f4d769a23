//! The loss a task trains on and its gradient with respect to the logits,
//! as transformers computes each problem type: the mean cross-entropy over
//! the labelled rows (single-label classification of sequences or tokens;
//! [`IGNORE_INDEX`], transformers' -100, counts for nothing), or the mean
//! squared error of one output (regression).

use crate::kernels::cross_entropy::{cross_entropy_cpu, IGNORE_INDEX};
use crate::kernels::squared_error::squared_error_cpu;

/// What a batch's output rows (one a sequence, or one a token) are trained toward.
#[derive(Debug, Clone, PartialEq)]
pub enum Targets {
    /// A class index a row, or [`IGNORE_INDEX`].
    Classes(Vec<u32>),
    /// A number a row (the single output of a regression head).
    Values(Vec<f32>),
}

impl Targets {
    pub fn rows(&self) -> usize {
        match self {
            Targets::Classes(c) => c.len(),
            Targets::Values(v) => v.len(),
        }
    }

    /// The rows whose loss counts: the mean's denominator.
    pub fn counted(&self) -> usize {
        match self {
            Targets::Classes(c) => c.iter().filter(|&&y| y != IGNORE_INDEX).count(),
            Targets::Values(v) => v.len(),
        }
    }
}

/// The mean loss of `logits` (`[rows, outputs]`) and its gradient scaled by
/// `scale` (1 for one batch; 1/n when n micro-batches make a step). A batch
/// with no labelled row (every token -100) has loss 0 and no gradient, where
/// PyTorch's mean over nothing gives NaN.
pub fn loss_and_dlogits(logits: &[f32], targets: &Targets, outputs: usize, scale: f32) -> (f32, Vec<f32>) {
    let counted = targets.counted().max(1) as f32;
    let losses = match targets {
        Targets::Classes(labels) => cross_entropy_cpu(logits, labels, outputs, scale / counted),
        Targets::Values(values) => squared_error_cpu(logits, values, scale / counted),
    };
    (losses.0.iter().sum::<f32>() / counted, losses.1)
}
