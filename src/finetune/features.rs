//! Encoder features of sentence pairs, for a head on a frozen encoder.

use crate::engine::{EmbedOptions, Engine};
use crate::error::{Error, Result};
use crate::glue::Example;
use crate::head::HeadInput;
use crate::outputs::Pooling;
use crate::tokenize::Input;

/// Features of `examples`: `[n, input.width(hidden)]`. Pairs are run in
/// batches sorted by length (less padding), each text truncated to
/// `max_seq_length` tokens; `progress(done, total)` after each batch.
pub async fn extract_features(
    engine: &mut Engine,
    examples: &[Example],
    input: HeadInput,
    max_seq_length: usize,
    batch_size: usize,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Vec<f32>> {
    // one row per encoder input: the pair, or each sentence alone
    let rows: Vec<Input> = if input == HeadInput::PairFeatures {
        examples.iter().flat_map(|e| [Input::Single(e.sentence1.clone()), Input::Single(e.sentence2.clone())]).collect()
    } else {
        examples.iter().map(|e| Input::Pair(e.sentence1.clone(), e.sentence2.clone())).collect()
    };
    let mut order: Vec<usize> = (0..rows.len()).collect();
    let len = |i: &Input| match i {
        Input::Single(a) => a.len(),
        Input::Pair(a, b) => a.len() + b.len(),
    };
    order.sort_by_key(|&i| len(&rows[i]));
    let pooling = match input {
        HeadInput::Pooler => Pooling::Pooler,
        HeadInput::Cls => Pooling::Cls,
        HeadInput::Mean | HeadInput::PairFeatures => Pooling::Mean,
    };
    let options = EmbedOptions { max_len: Some(max_seq_length), ..Default::default() };
    let mut vectors = vec![Vec::new(); rows.len()];
    for chunk in order.chunks(batch_size.max(1)) {
        let batch_inputs: Vec<Input> = chunk.iter().map(|&i| rows[i].clone()).collect();
        let (batch, out) = engine.embed(&batch_inputs, options).await?;
        for (b, &i) in chunk.iter().enumerate() {
            vectors[i] = out
                .sentence_embedding(b, &batch.attention_mask, pooling, false)
                .ok_or_else(|| Error::Weights("this checkpoint has no pooler weights: choose another head input".into()))?;
        }
        progress(chunk.len(), rows.len());
    }
    let mut features = Vec::with_capacity(examples.len() * input.width(engine.config.hidden_size));
    if input == HeadInput::PairFeatures {
        for pair in vectors.chunks(2) {
            let (u, v) = (&pair[0], &pair[1]);
            features.extend_from_slice(u);
            features.extend_from_slice(v);
            features.extend(u.iter().zip(v).map(|(a, b)| (a - b).abs()));
            features.extend(u.iter().zip(v).map(|(a, b)| a * b));
        }
    } else {
        vectors.into_iter().for_each(|v| features.extend(v));
    }
    Ok(features)
}
