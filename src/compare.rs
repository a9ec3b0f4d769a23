//! What fine-tuning changed: the base model and the fine-tuned one run on the
//! same examples; per layer, how alike their representations stay (linear
//! CKA of the mean-pooled `hidden_states[l]`); per head, how far attention
//! moved; and each model's map of the examples.
//!
//! Memory: a batch of [`BATCH`] examples keeps every layer's states and
//! attentions of both models at a time; what stays is one mean-pooled vector
//! per example, layer and model, and the CKA's `n × n` Gram matrices, so
//! `n` is capped at [`MAX_EXAMPLES`].

use crate::analysis::{linear_cka, pca_2d, Pca};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::outputs::{mean_of_tokens, AttentionRequest, Keep, Outputs};
use crate::tokenize::{Batch, Input};

/// Examples a forward pass: each keeps all of both models' layers and attentions.
const BATCH: usize = 8;
/// The most examples compared.
pub const MAX_EXAMPLES: usize = 2000;

/// One of `hidden_states` compared.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LayerSimilarity {
    /// 0 the embeddings' output, `l` layer l's.
    pub layer: usize,
    /// Linear CKA of the two models' mean-pooled states: 1 unchanged up to a
    /// rotation and scale; `None` where either has no variance.
    pub cka: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Comparison {
    pub examples: usize,
    pub layers: Vec<LayerSimilarity>,
    /// `[layer][head]`: the mean over the examples' real tokens of the total
    /// variation ½ Σ_j |A_ij − A'_ij| between the two models' attention rows
    /// (0 the same distribution, 1 disjoint ones).
    pub heads: Vec<Vec<f64>>,
    /// The last layer's mean-pooled states on their first two principal
    /// components, each model's own.
    pub base_map: Pca,
    pub tuned_map: Pca,
}

/// Compares `tuned` with `base` on `inputs` (tokenized by `base`, cut to `max_len`).
pub async fn compare(base: &mut Engine, tuned: &mut Engine, inputs: &[Input], max_len: Option<usize>) -> Result<Comparison> {
    let shape = |e: &Engine| (e.config.num_hidden_layers, e.config.num_attention_heads, e.config.hidden_size, e.config.vocab_size);
    if shape(base) != shape(tuned) {
        let (b, t) = (shape(base), shape(tuned));
        return Err(Error::Input(format!(
            "the models differ in shape (layers, heads, hidden, vocabulary: {b:?} vs {t:?}): compare a model with the one it was fine-tuned from"
        )));
    }
    if !(2..=MAX_EXAMPLES).contains(&inputs.len()) {
        return Err(Error::Input(format!("{} examples: compare 2 to {MAX_EXAMPLES}", inputs.len())));
    }
    let (layers, heads, _, _) = shape(base);
    // [model][layer][example]
    let mut pooled = vec![vec![Vec::with_capacity(inputs.len()); layers + 1]; 2];
    let mut moved = vec![vec![0.0f64; heads]; layers];
    let keep = Keep { attentions: AttentionRequest::All, hidden_states: true };
    for chunk in inputs.chunks(BATCH) {
        let batch = base.tokenize(chunk, max_len)?;
        let outs = [base.forward(&batch, keep).await?, tuned.forward(&batch, keep).await?];
        for (m, out) in outs.iter().enumerate() {
            let states = out.hidden_states.as_ref().ok_or_else(|| Error::Input("the forward pass kept no hidden states".into()))?;
            for (l, s) in states.iter().enumerate() {
                (0..batch.batch_size)
                    .for_each(|r| pooled[m][l].push(mean_of_tokens(s, batch.seq_len, out.hidden, r, &batch.attention_mask)));
            }
        }
        for r in 0..batch.batch_size {
            for (l, row) in moved.iter_mut().enumerate() {
                for (h, total) in row.iter_mut().enumerate() {
                    *total += attention_moved(&outs, &batch, r, l, h)?;
                }
            }
        }
    }
    let n = inputs.len() as f64;
    moved.iter_mut().flatten().for_each(|m| *m /= n);
    let layers_cka = (0..=layers).map(|l| LayerSimilarity { layer: l, cka: linear_cka(&pooled[0][l], &pooled[1][l]) }).collect();
    Ok(Comparison {
        examples: inputs.len(),
        layers: layers_cka,
        heads: moved,
        base_map: pca_2d(&pooled[0][layers]),
        tuned_map: pca_2d(&pooled[1][layers]),
    })
}

/// Row `r`'s mean over its real query tokens of ½ Σ_j |A_ij − A'_ij| at `layer`, `head`.
fn attention_moved(outs: &[Outputs; 2], batch: &Batch, r: usize, layer: usize, head: usize) -> Result<f64> {
    let missing = || Error::Input("the forward pass kept no attentions".into());
    let a = outs[0].attention(r, layer, head).ok_or_else(missing)?;
    let b = outs[1].attention(r, layer, head).ok_or_else(missing)?;
    let s = batch.seq_len;
    let real: Vec<usize> = (0..s).filter(|&i| batch.attention_mask[r * s + i] != 0).collect();
    let tv = |i: usize| 0.5 * (0..s).map(|j| (a[i * s + j] - b[i * s + j]).abs() as f64).sum::<f64>();
    Ok(real.iter().map(|&i| tv(i)).sum::<f64>() / real.len().max(1) as f64)
}
