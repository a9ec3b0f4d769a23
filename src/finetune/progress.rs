//! Where a run stands, whatever it trains: updates done, the epoch, the
//! position in the epoch's shuffled order, and the losses and metrics so
//! far. Saved with a run's checkpoint (its fields are the checkpoint's).

use crate::finetune::Metrics;
use crate::rng::Rng;

#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Progress {
    /// Updates done so far.
    pub step: u32,
    pub epoch: usize,
    pub position: usize,
    pub epoch_losses: Vec<f32>,
    pub losses: Vec<f32>,
    pub metrics: Vec<Metrics>,
}

/// The shuffled order of epoch `e` over `n` examples: a fixed function of the seed.
pub fn epoch_order(seed: u64, e: usize, n: usize) -> Vec<usize> {
    Rng::new(seed.wrapping_add(1_000_003 * (e as u64 + 1))).permutation(n)
}

impl Progress {
    /// The examples of the next step (at most `batch` of them), or `None` at the end of an epoch.
    pub fn next_batch<'a>(&self, order: &'a [usize], batch: usize) -> Option<&'a [usize]> {
        (self.position < order.len()).then(|| &order[self.position..(self.position + batch).min(order.len())])
    }

    /// A step over `taken` examples with mean loss `loss` is done.
    pub fn record_step(&mut self, taken: usize, loss: f32) {
        self.position += taken;
        self.step += 1;
        self.losses.push(loss);
        self.epoch_losses.push(loss);
    }

    /// An epoch ended with `metrics` on validation; returns its mean training loss.
    pub fn end_epoch(&mut self, metrics: Metrics) -> f64 {
        let train_loss = self.epoch_losses.iter().map(|&l| l as f64).sum::<f64>() / self.epoch_losses.len().max(1) as f64;
        self.metrics.push(metrics);
        self.epoch += 1;
        self.position = 0;
        self.epoch_losses.clear();
        train_loss
    }
}
