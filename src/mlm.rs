//! The masked word: BertForMaskedLM's prediction head (`cls.predictions`)
//! and the fill-mask pipeline's answer for every `[MASK]` of a text, with
//! attention free or restricted to one side of the mask.
//!
//! The head runs on the CPU whichever path ran the encoder: it is needed for
//! the masked rows only (a few rows of `hidden × vocab`, a millisecond), so
//! it is the plain reference math, not a kernel of its own.

use crate::config::BertConfig;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::kernels::layernorm::layernorm_cpu;
use crate::kernels::matmul::{linear_cpu, Epilogue};
use crate::outputs::AttentionRequest;
use crate::tokenize::Input;
use crate::weights::{LayerNorm, Linear, Reader};

/// The most predictions a mask may list.
pub const MAX_TOP_K: usize = 100;

/// `cls.predictions`: dense → activation → LayerNorm → decoder (`[vocab, hidden]`) + bias.
pub struct MlmHead {
    transform: Linear,
    act: Epilogue,
    norm: LayerNorm,
    eps: f32,
    decoder: Vec<f32>,
    bias: Vec<f32>,
    vocab: usize,
    /// The decoder is the word embeddings (`save_pretrained` then writes no `decoder.weight`).
    pub tied: bool,
}

impl MlmHead {
    /// The head in a BertForMaskedLM or BertForPreTraining `model.safetensors`;
    /// `None` when the file has none (a BertModel, a classifier).
    pub fn from_safetensors(config: &BertConfig, bytes: &[u8], word_embeddings: &[f32]) -> Result<Option<MlmHead>> {
        let r = Reader::new(bytes)?.at_root();
        if !r.has("cls.predictions.transform.dense.weight") {
            return Ok(None);
        }
        let (h, v) = (config.hidden_size, config.vocab_size);
        let transform = r.linear("cls.predictions.transform.dense", h, h)?;
        let norm = r.layer_norm("cls.predictions.transform.LayerNorm", h)?;
        let bias = r.get(&["cls.predictions.bias", "cls.predictions.decoder.bias"], &[v])?;
        let tied = !r.has("cls.predictions.decoder.weight");
        let decoder = if tied { word_embeddings.to_vec() } else { r.get(&["cls.predictions.decoder.weight"], &[v, h])? };
        let act = config.hidden_act.into();
        Ok(Some(MlmHead { transform, act, norm, eps: config.layer_norm_eps, decoder, bias, vocab: v, tied }))
    }

    /// Logits over the vocabulary, `[rows, vocab]`, of `rows` last hidden states.
    pub fn logits(&self, x: &[f32], rows: usize) -> Vec<f32> {
        let (h, v) = (self.transform.in_dim, self.vocab);
        let t = linear_cpu(x, &self.transform.weight, &self.transform.bias, rows, h, h, self.act);
        let t = layernorm_cpu(&t, None, &self.norm, h, self.eps);
        linear_cpu(&t, &self.decoder, &self.bias, rows, v, h, Epilogue::None)
    }
}

/// What attention may look at when the masked word is predicted: the whole
/// text, or only the tokens on one side of the mask (the mask itself kept).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Sees {
    Both,
    Left,
    Right,
}

impl Sees {
    /// Whether a token at `position` is visible for the mask at `mask`.
    fn keeps(self, position: usize, mask: usize) -> bool {
        match self {
            Sees::Both => true,
            Sees::Left => position <= mask,
            Sees::Right => position >= mask,
        }
    }
}

/// One candidate for a mask, with the pipeline's names.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Prediction {
    pub token: u32,
    pub token_str: String,
    pub score: f32,
    /// The text with this mask filled in (special tokens kept when the text has several masks, as the pipeline).
    pub sequence: String,
}

/// One `[MASK]`'s predictions, best first.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MaskFill {
    /// Its index among the text's tokens.
    pub position: usize,
    pub predictions: Vec<Prediction>,
}

/// The `k` most probable tokens of a row of logits (softmax over the vocabulary), best first.
pub fn top_k(logits: &[f32], k: usize) -> Vec<(u32, f32)> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f64 = logits.iter().map(|&l| f64::from((l - max).exp())).sum();
    let mut order: Vec<u32> = (0..logits.len() as u32).collect();
    // the best first; equal logits by id, so the answer never depends on the sort
    order.sort_by(|&a, &b| logits[b as usize].total_cmp(&logits[a as usize]).then(a.cmp(&b)));
    order.into_iter().take(k).map(|i| (i, (f64::from((logits[i as usize] - max).exp()) / sum) as f32)).collect()
}

/// The top `k` words for every `[MASK]` of `text`, as transformers' fill-mask
/// pipeline computes them: each mask predicted from the same input in one
/// forward (with `Sees::Left` or `Right`, one row a mask, attention limited to
/// that side of it).
pub async fn fill_mask(engine: &mut Engine, text: &str, k: usize, sees: Sees) -> Result<Vec<MaskFill>> {
    if engine.mlm().is_none() {
        return Err(Error::Input(format!(
            "{} has no masked-word head (cls.predictions): load a BertForMaskedLM checkpoint such as bert-base-uncased",
            engine.identity().name
        )));
    }
    if !(1..=MAX_TOP_K).contains(&k) {
        return Err(Error::Input(format!("top-k {k}: choose 1 to {MAX_TOP_K}")));
    }
    let tokenizer = engine.tokenizer()?;
    let mask_id = tokenizer.token_to_id("[MASK]").ok_or_else(|| Error::Tokenizer("the vocabulary has no [MASK] token".into()))?;
    let batch = engine.tokenize(&[Input::Single(text.to_string())], None)?;
    // a cut text would predict from less than was typed (and may lose a mask): refused, as the pipeline does
    if batch.truncated[0] {
        return Err(Error::Input(format!(
            "the text is longer than the model's {} positions: shorten it",
            engine.config.max_position_embeddings
        )));
    }
    let ids: Vec<u32> = batch.input_ids[..batch.len_of(0)].to_vec();
    let masks: Vec<usize> = ids.iter().enumerate().filter(|(_, &id)| id == mask_id).map(|(i, _)| i).collect();
    if masks.is_empty() {
        return Err(Error::Input("type [MASK] where a word should be predicted: the text has none".into()));
    }
    // one row for the whole text, or one a mask with its own view of the text
    let rows: Vec<Option<usize>> = if sees == Sees::Both { vec![None] } else { masks.iter().map(|&m| Some(m)).collect() };
    let mut input = crate::tokenize::Batch::from_rows(rows.iter().map(|_| (ids.clone(), vec![0; ids.len()])).collect(), 0)?;
    for (r, m) in rows.iter().enumerate() {
        if let Some(m) = m {
            for t in 0..ids.len() {
                input.attention_mask[r * input.seq_len + t] = u32::from(sees.keeps(t, *m));
            }
        }
    }
    let out = engine.forward(&input, AttentionRequest::None).await?;
    let hidden: Vec<f32> =
        masks.iter().enumerate().flat_map(|(i, &m)| out.token(if sees == Sees::Both { 0 } else { i }, m).to_vec()).collect();
    let head = engine.mlm().ok_or_else(|| Error::Input("the model's masked-word head is gone".into()))?;
    let logits = head.logits(&hidden, masks.len());
    let tokenizer = engine.tokenizer()?;
    let single = masks.len() == 1;
    let mut fills = Vec::with_capacity(masks.len());
    for (i, &m) in masks.iter().enumerate() {
        let mut predictions = Vec::with_capacity(k);
        for (token, score) in top_k(&logits[i * head.vocab..][..head.vocab], k) {
            let mut filled = ids.clone();
            filled[m] = token;
            predictions.push(Prediction {
                token,
                token_str: tokenizer.decode(&[token], false)?,
                score,
                sequence: tokenizer.decode(&filled, single)?,
            });
        }
        fills.push(MaskFill { position: m, predictions });
    }
    Ok(fills)
}
