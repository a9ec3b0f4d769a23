//! What a run will cost, shown before Start: time in forward passes of the
//! whole model (the page multiplies by the speed it measured) and memory.

use crate::classifier::TrainLayers;
use crate::config::BertConfig;

/// A training step's backward pass costs about twice its forward (two
/// matrix products per product of the forward).
const BACKWARD: f64 = 2.0;

/// The work of a run, in forward passes of one pair through the whole model:
/// a head encodes every pair once; a run of the top `k` layers encodes the
/// frozen layers once, then each epoch runs the `k` layers forward and
/// backward over the training pairs and forward over the validation pairs.
pub fn forward_units(train: TrainLayers, layers: usize, train_pairs: usize, eval_pairs: usize, epochs: usize) -> f64 {
    let (n, m, e) = (train_pairs as f64, eval_pairs as f64, epochs as f64);
    let share = match train {
        TrainLayers::Top(0) => return n + m,
        TrainLayers::Top(k) => k.min(layers) as f64 / layers.max(1) as f64,
        TrainLayers::All => 1.0,
    };
    (n + m) * (1.0 - share) + e * (n * (1.0 + BACKWARD) + m) * share
}

/// Bytes a run of `train` holds at its peak: every weight, the gradients and
/// AdamW's two moments of the trained ones, and the activations one step of
/// `batch` pairs of `seq` tokens keeps for its backward pass (a head run
/// holds the model and its features only, counted as the weights).
pub fn training_bytes(c: &BertConfig, train: TrainLayers, batch: usize, seq: usize) -> f64 {
    let (h, i, l) = (c.hidden_size as f64, c.intermediate_size as f64, c.num_hidden_layers as f64);
    let per_layer = 4.0 * h * h + 2.0 * h * i + 9.0 * h + i;
    let embeddings = (c.vocab_size + c.max_position_embeddings + c.type_vocab_size) as f64 * h + 2.0 * h;
    let head = h * h + h + 2.0 * h + 2.0;
    let all = embeddings + l * per_layer + head;
    let (trained, layers_trained) = match train {
        TrainLayers::Top(0) => return all * 4.0,
        TrainLayers::Top(k) => {
            let k = k.min(c.num_hidden_layers) as f64;
            (k * per_layer + head, k)
        }
        TrainLayers::All => (all, l),
    };
    // per layer and token: qkv, context, two sums, two norms, the FFN's pre- and post-activation, dropout masks
    let tokens = (batch * seq) as f64;
    let per_token = 3.0 * h + h + 4.0 * h + 2.0 * i + 2.0 * h;
    let attention = batch as f64 * c.num_attention_heads as f64 * (seq * seq) as f64 * 2.0;
    let activations = layers_trained * (tokens * per_token + attention);
    4.0 * (all + 3.0 * trained + activations)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_head_costs_one_pass_and_more_layers_cost_more() {
        let units = |t| forward_units(t, 6, 3668, 408, 3);
        assert_eq!(units(TrainLayers::Top(0)), 4076.0);
        assert!(units(TrainLayers::Top(0)) < units(TrainLayers::Top(2)));
        assert!(units(TrainLayers::Top(2)) < units(TrainLayers::All));
        assert_eq!(units(TrainLayers::All), 3.0 * (3668.0 * 3.0 + 408.0));
        let base = BertConfig::bert_base();
        let mb = |t| training_bytes(&base, t, 16, 128) / 1e6;
        // bert-base: 110M weights ≈ 438 MB; all of it with gradients and moments ≈ 1.75 GB and activations
        assert!((430.0..450.0).contains(&mb(TrainLayers::Top(0))), "{}", mb(TrainLayers::Top(0)));
        assert!(mb(TrainLayers::All) > 1750.0 && mb(TrainLayers::All) < 5000.0, "{}", mb(TrainLayers::All));
        assert!(mb(TrainLayers::Top(2)) < mb(TrainLayers::All));
    }
}
