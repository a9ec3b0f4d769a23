//! Text → padded batches of token ids.
//!
//! `tokenizer.json` goes through the `tokenizers` crate; a model with only
//! `vocab.txt` gets the BERT WordPiece pipeline built from it. Whatever
//! padding or truncation a tokenizer.json carries is replaced: we truncate to
//! the model's max positions (and say so) and pad per batch.

use std::collections::HashMap;

use tokenizers::decoders::wordpiece::WordPiece as WordPieceDecoder;
use tokenizers::models::wordpiece::WordPiece;
use tokenizers::normalizers::bert::BertNormalizer;
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::processors::bert::BertProcessing;
use tokenizers::{EncodeInput, Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};

use crate::error::{Error, Result};

/// One row of a batch: a sentence, or a sentence pair (token type ids 0 then 1).
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    Single(String),
    Pair(String, String),
}

impl From<&str> for Input {
    fn from(s: &str) -> Self {
        Input::Single(s.to_string())
    }
}

/// Token ids for a batch, padded to its longest row.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    pub batch_size: usize,
    pub seq_len: usize,
    /// `[batch_size, seq_len]` row-major, padded with the config's pad id.
    pub input_ids: Vec<u32>,
    pub token_type_ids: Vec<u32>,
    /// 1 for real tokens, 0 for padding.
    pub attention_mask: Vec<u32>,
    /// The WordPiece strings of each row, without padding.
    pub tokens: Vec<Vec<String>>,
    /// Whether a row was cut to the model's max positions.
    pub truncated: Vec<bool>,
}

impl Batch {
    /// Pads rows of (ids, type ids) into a batch. Used by the tokenizer and by
    /// benchmarks and tests that make ids directly.
    pub fn from_rows(rows: Vec<(Vec<u32>, Vec<u32>)>, pad_id: u32) -> Result<Self> {
        if rows.is_empty() {
            return Err(Error::Input("empty batch: give at least one sentence".into()));
        }
        let seq_len = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
        if seq_len == 0 {
            return Err(Error::Input("every row of the batch is empty".into()));
        }
        let b = rows.len();
        let mut batch = Batch {
            batch_size: b,
            seq_len,
            input_ids: vec![pad_id; b * seq_len],
            token_type_ids: vec![0; b * seq_len],
            attention_mask: vec![0; b * seq_len],
            tokens: vec![Vec::new(); b],
            truncated: vec![false; b],
        };
        for (r, (ids, types)) in rows.into_iter().enumerate() {
            let base = r * seq_len;
            batch.input_ids[base..base + ids.len()].copy_from_slice(&ids);
            batch.token_type_ids[base..base + types.len()].copy_from_slice(&types);
            batch.attention_mask[base..base + ids.len()].fill(1);
        }
        Ok(batch)
    }

    /// Number of real (unpadded) tokens in row `r`.
    pub fn len_of(&self, r: usize) -> usize {
        self.attention_mask[r * self.seq_len..(r + 1) * self.seq_len].iter().filter(|&&m| m == 1).count()
    }
}

pub struct BertTokenizer {
    inner: Tokenizer,
    max_len: usize,
    /// The model's positions: no text is ever longer.
    model_max_len: usize,
    pad_id: u32,
}

impl BertTokenizer {
    /// From a `tokenizer.json`, ignoring the padding and truncation stored in it.
    pub fn from_tokenizer_json(bytes: &[u8], max_len: usize, pad_id: u32) -> Result<Self> {
        let inner = Tokenizer::from_bytes(bytes)
            .map_err(|e| Error::Tokenizer(format!("tokenizer.json cannot be read: {e}")))?;
        Self::configured(inner, max_len, pad_id)
    }

    /// BERT's WordPiece tokenizer from a `vocab.txt` (one token a line, id = line number).
    pub fn from_vocab_txt(vocab: &str, lowercase: bool, max_len: usize, pad_id: u32) -> Result<Self> {
        let vocab: HashMap<String, u32> =
            vocab.lines().enumerate().map(|(i, t)| (t.trim_end_matches('\r').to_string(), i as u32)).collect();
        let id_of = |t: &str| {
            vocab.get(t).copied().ok_or_else(|| Error::Tokenizer(format!("vocab.txt has no {t} token")))
        };
        let (cls, sep) = (id_of("[CLS]")?, id_of("[SEP]")?);
        id_of("[UNK]")?;
        let model = WordPiece::builder()
            .vocab(vocab.into_iter().collect::<ahash::AHashMap<_, _>>())
            .unk_token("[UNK]".into())
            .continuing_subword_prefix("##".into())
            .max_input_chars_per_word(100)
            .build()
            .map_err(|e| Error::Tokenizer(format!("vocab.txt: {e}")))?;
        let mut inner = Tokenizer::new(model);
        inner
            .with_normalizer(Some(BertNormalizer::new(true, true, None, lowercase)))
            .map_err(|e| Error::Tokenizer(e.to_string()))?;
        inner.with_pre_tokenizer(Some(BertPreTokenizer));
        inner.with_post_processor(Some(BertProcessing::new(("[SEP]".into(), sep), ("[CLS]".into(), cls))));
        inner.with_decoder(Some(WordPieceDecoder::default()));
        Self::configured(inner, max_len, pad_id)
    }

    fn configured(mut inner: Tokenizer, max_len: usize, pad_id: u32) -> Result<Self> {
        inner.with_padding(None);
        let mut t = BertTokenizer { inner, max_len, model_max_len: max_len, pad_id };
        t.set_max_len(max_len)?;
        Ok(t)
    }

    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// Truncates longer texts to `max_len` tokens (never past the model's
    /// positions; `usize::MAX` means the model's maximum). Pairs are cut
    /// longest-first, as `transformers` does.
    pub fn set_max_len(&mut self, max_len: usize) -> Result<()> {
        let max_len = max_len.min(self.model_max_len);
        self.inner
            .with_truncation(Some(TruncationParams {
                direction: TruncationDirection::Right,
                max_length: max_len,
                strategy: TruncationStrategy::LongestFirst,
                stride: 0,
            }))
            .map_err(|e| Error::Tokenizer(format!("cannot set truncation to {max_len}: {e}")))?;
        self.max_len = max_len;
        Ok(())
    }

    /// Tokenizes and pads a batch. Empty or blank text is an error naming the row.
    pub fn encode_batch(&self, inputs: &[Input]) -> Result<Batch> {
        let mut rows = Vec::with_capacity(inputs.len());
        let mut tokens = Vec::with_capacity(inputs.len());
        let mut truncated = Vec::with_capacity(inputs.len());
        for (i, input) in inputs.iter().enumerate() {
            let blank = match input {
                Input::Single(a) => a.trim().is_empty(),
                Input::Pair(a, b) => a.trim().is_empty() || b.trim().is_empty(),
            };
            if blank {
                return Err(Error::Input(format!("text {} is empty", i + 1)));
            }
            let enc_input: EncodeInput = match input {
                Input::Single(a) => a.as_str().into(),
                Input::Pair(a, b) => (a.as_str(), b.as_str()).into(),
            };
            let enc = self
                .inner
                .encode(enc_input, true)
                .map_err(|e| Error::Tokenizer(format!("cannot tokenize text {}: {e}", i + 1)))?;
            truncated.push(!enc.get_overflowing().is_empty());
            tokens.push(enc.get_tokens().to_vec());
            rows.push((enc.get_ids().to_vec(), enc.get_type_ids().to_vec()));
        }
        let mut batch = Batch::from_rows(rows, self.pad_id)?;
        batch.tokens = tokens;
        batch.truncated = truncated;
        Ok(batch)
    }
}
