//! Text → padded batches of token ids.
//!
//! `tokenizer.json` goes through the `tokenizers` crate; a model with only
//! `vocab.txt` gets the BERT WordPiece pipeline built from it. Whatever
//! padding or truncation a tokenizer.json carries is replaced: we truncate to
//! the model's max positions (and say so) and pad per batch. So is its
//! post-processor: every BERT's is `[CLS] A [SEP] (B [SEP])`, and a template
//! naming special tokens it does not define panics inside `tokenizers`.

use std::collections::HashMap;

use tokenizers::decoders::wordpiece::WordPiece as WordPieceDecoder;
use tokenizers::models::wordpiece::WordPiece;
use tokenizers::normalizers::bert::BertNormalizer;
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::processors::bert::BertProcessing;
use tokenizers::utils::truncation::truncate_encodings;
use tokenizers::{AddedToken, Encoding, PostProcessor, Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};

use crate::error::{clipped, Error, Result};

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
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
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

    /// Rows `rows` as a batch of their own, padded as they are here (so each
    /// row computes exactly what it computes in the whole batch).
    pub fn rows(&self, rows: std::ops::Range<usize>) -> Batch {
        let cells = rows.start * self.seq_len..rows.end * self.seq_len;
        Batch {
            batch_size: rows.len(),
            seq_len: self.seq_len,
            input_ids: self.input_ids[cells.clone()].to_vec(),
            token_type_ids: self.token_type_ids[cells.clone()].to_vec(),
            attention_mask: self.attention_mask[cells].to_vec(),
            tokens: self.tokens[rows.clone()].to_vec(),
            truncated: self.truncated[rows].to_vec(),
        }
    }
}

pub struct BertTokenizer {
    inner: Tokenizer,
    /// The model's positions: no text is ever longer.
    model_max_len: usize,
    pad_id: u32,
}

impl BertTokenizer {
    /// From a `tokenizer.json`, ignoring the padding and truncation stored in it.
    pub fn from_tokenizer_json(bytes: &[u8], max_len: usize, pad_id: u32) -> Result<Self> {
        let cannot = |e: &dyn std::fmt::Display| Error::Tokenizer(format!("tokenizer.json cannot be read: {}", clipped(&e.to_string())));
        // tokenizers 0.23 panics (an `expect`) on JSON that breaks off inside a decoder and on a
        // malformed Precompiled normalizer: the syntax is checked first, and Precompiled, which
        // only SentencePiece tokenizers use, is refused
        let json: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| cannot(&e))?;
        if uses_precompiled(&json["normalizer"]) {
            return Err(Error::Tokenizer(
                "tokenizer.json uses a Precompiled (SentencePiece) normalizer: BERT's WordPiece tokenizers do not".into(),
            ));
        }
        let inner = Tokenizer::from_bytes(bytes).map_err(|e| cannot(&e))?;
        Self::configured(inner, max_len, pad_id)
    }

    /// BERT's WordPiece tokenizer from a `vocab.txt` (one token a line, id = line number).
    pub fn from_vocab_txt(vocab: &str, lowercase: bool, max_len: usize, pad_id: u32) -> Result<Self> {
        let vocab: HashMap<String, u32> =
            vocab.lines().enumerate().map(|(i, t)| (t.trim_end_matches('\r').to_string(), i as u32)).collect();
        let id_of = |t: &str| vocab.get(t).copied().ok_or_else(|| Error::Tokenizer(format!("vocab.txt has no {t} token")));
        for special in ["[CLS]", "[SEP]", "[UNK]"] {
            id_of(special)?;
        }
        let model = WordPiece::builder()
            .vocab(vocab.into_iter().collect::<ahash::AHashMap<_, _>>())
            .unk_token("[UNK]".into())
            .continuing_subword_prefix("##".into())
            .max_input_chars_per_word(100)
            .build()
            .map_err(|e| Error::Tokenizer(format!("vocab.txt: {}", clipped(&e.to_string()))))?;
        let mut inner = Tokenizer::new(model);
        inner.with_normalizer(Some(BertNormalizer::new(true, true, None, lowercase))).map_err(|e| Error::Tokenizer(e.to_string()))?;
        inner.with_pre_tokenizer(Some(BertPreTokenizer));
        inner.with_decoder(Some(WordPieceDecoder::default()));
        // as BertTokenizerFast: "[MASK]" typed in a text is the mask token, not "[", "mask", "]"
        let specials: Vec<AddedToken> = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
            .into_iter()
            .filter(|t| inner.token_to_id(t).is_some())
            .map(|t| AddedToken::from(t, true))
            .collect();
        inner.add_special_tokens(specials).map_err(|e| Error::Tokenizer(e.to_string()))?;
        Self::configured(inner, max_len, pad_id)
    }

    /// The id of `token` in the vocabulary.
    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// Ids back to text, as transformers' `decode` (WordPieces joined, spaces before punctuation cleaned up).
    pub fn decode(&self, ids: &[u32], skip_special_tokens: bool) -> Result<String> {
        self.inner.decode(ids, skip_special_tokens).map_err(|e| Error::Tokenizer(clipped(&e.to_string())))
    }

    fn configured(mut inner: Tokenizer, max_len: usize, pad_id: u32) -> Result<Self> {
        // truncation is ours, per call (see `encode_batch_to`); padding is per batch
        inner.with_padding(None);
        inner.with_truncation(None).map_err(|e| Error::Tokenizer(e.to_string()))?;
        let id_of = |t: &str| inner.token_to_id(t).ok_or_else(|| Error::Tokenizer(format!("the vocabulary has no {t} token")));
        let (cls, sep) = (id_of("[CLS]")?, id_of("[SEP]")?);
        inner.with_post_processor(Some(BertProcessing::new(("[SEP]".into(), sep), ("[CLS]".into(), cls))));
        Ok(BertTokenizer { inner, model_max_len: max_len, pad_id })
    }

    /// Tokenizes and pads a batch, truncating to the model's positions.
    pub fn encode_batch(&self, inputs: &[Input]) -> Result<Batch> {
        self.encode_batch_to(inputs, self.model_max_len)
    }

    /// Tokenizes and pads a batch, truncating each row to `max_len` tokens
    /// (never past the model's positions). Pairs are cut longest-first, as
    /// `transformers` does. Empty or blank text is an error naming the row.
    pub fn encode_batch_to(&self, inputs: &[Input], max_len: usize) -> Result<Batch> {
        let max_len = max_len.min(self.model_max_len);
        if max_len < MIN_LEN {
            return Err(Error::Input(format!(
                "a maximum length of {max_len} tokens is too short: at least {MIN_LEN} ([CLS], [SEP] and text)"
            )));
        }
        let mut rows = Vec::with_capacity(inputs.len());
        let mut tokens = Vec::with_capacity(inputs.len());
        let mut truncated = Vec::with_capacity(inputs.len());
        for (i, input) in inputs.iter().enumerate() {
            let (a, b) = match input {
                Input::Single(a) => (a.as_str(), None),
                Input::Pair(a, b) => (a.as_str(), Some(b.as_str())),
            };
            if a.trim().is_empty() || b.is_some_and(|b| b.trim().is_empty()) {
                return Err(Error::Input(format!("text {} is empty", i + 1)));
            }
            let (enc, cut) = self.encode_one(a, b, max_len, i)?;
            truncated.push(cut);
            tokens.push(enc.get_tokens().to_vec());
            rows.push((enc.get_ids().to_vec(), enc.get_type_ids().to_vec()));
        }
        let mut batch = Batch::from_rows(rows, self.pad_id)?;
        batch.tokens = tokens;
        batch.truncated = truncated;
        Ok(batch)
    }

    /// A sentence given as words (CoNLL's): token ids with [CLS] and [SEP],
    /// and the word each token comes from (`None` for the special tokens),
    /// cut to `max_len` tokens (the words past the cut dropped). A sentence
    /// whose words give no token is refused, naming `what`.
    pub fn encode_words(&self, words: &[String], max_len: usize, what: &str) -> Result<(Vec<u32>, Vec<Option<u32>>)> {
        let max_len = max_len.min(self.model_max_len);
        let failed = |e: tokenizers::Error| Error::Tokenizer(format!("cannot tokenize {what}: {}", clipped(&e.to_string())));
        // a word gives at least one token or none: more words than tokens fit cannot count
        let words = &words[..words.len().min(max_len.saturating_mul(4))];
        let enc = self.inner.encode(words, false).map_err(failed)?;
        if enc.is_empty() {
            return Err(Error::Input(format!("{what} has no tokens: its words hold only spaces, control or zero-width characters")));
        }
        let added = self.inner.get_post_processor().map_or(0, |p| p.added_tokens(false));
        let params = TruncationParams {
            direction: TruncationDirection::Right,
            max_length: max_len.saturating_sub(added),
            strategy: TruncationStrategy::LongestFirst,
            stride: 0,
        };
        let (enc, _) = truncate_encodings(enc, None, &params).map_err(failed)?;
        let enc = self.inner.post_process(enc, None, true).map_err(failed)?;
        Ok((enc.get_ids().to_vec(), enc.get_word_ids().to_vec()))
    }

    /// One row (row `i` of the batch, for messages): each text tokenized
    /// alone (after cutting it to a length that holds far more than
    /// `max_len` tokens, so a pasted book costs no more than a page),
    /// truncated, then given [CLS]/[SEP] and type ids. Text that gives no
    /// token at all (only control or zero-width characters, which BERT's
    /// normalizer removes) is an error.
    fn encode_one(&self, a: &str, b: Option<&str>, max_len: usize, i: usize) -> Result<(Encoding, bool)> {
        let failed = |e: tokenizers::Error| Error::Tokenizer(format!("cannot tokenize text {}: {}", i + 1, clipped(&e.to_string())));
        let char_limit = max_len.saturating_mul(CHARS_PER_TOKEN_BOUND).max(1024);
        let (a, clipped_a) = clip_chars(a, char_limit);
        let (b, clipped_b) = b.map_or((None, false), |b| {
            let (b, c) = clip_chars(b, char_limit);
            (Some(b), c)
        });
        let enc_a = self.inner.encode(a, false).map_err(failed)?;
        let enc_b = b.map(|b| self.inner.encode(b, false)).transpose().map_err(failed)?;
        if enc_a.is_empty() || enc_b.as_ref().is_some_and(Encoding::is_empty) {
            return Err(Error::Input(format!("text {} has no tokens: it holds only spaces, control or zero-width characters", i + 1)));
        }
        let before = enc_a.len() + enc_b.as_ref().map_or(0, |e| e.len());
        let added = self.inner.get_post_processor().map_or(0, |p| p.added_tokens(enc_b.is_some()));
        let params = TruncationParams {
            direction: TruncationDirection::Right,
            max_length: max_len.saturating_sub(added),
            strategy: TruncationStrategy::LongestFirst,
            stride: 0,
        };
        let (enc_a, enc_b) = truncate_encodings(enc_a, enc_b, &params).map_err(failed)?;
        let after = enc_a.len() + enc_b.as_ref().map_or(0, |e| e.len());
        let enc = self.inner.post_process(enc_a, enc_b, true).map_err(failed)?;
        Ok((enc, after < before || clipped_a || clipped_b))
    }
}

/// Whether a tokenizer.json normalizer (or one in its sequences, at any depth) is Precompiled.
fn uses_precompiled(normalizer: &serde_json::Value) -> bool {
    match normalizer {
        serde_json::Value::Object(m) => m.get("type").and_then(|t| t.as_str()) == Some("Precompiled") || m.values().any(uses_precompiled),
        serde_json::Value::Array(a) => a.iter().any(uses_precompiled),
        _ => false,
    }
}

/// A bound on the characters one token can take, whitespace around it
/// included, in ordinary text: text is cut to `max_len` times this before
/// tokenizing. (Text that is mostly whitespace may lose tokens to the cut; it
/// is reported as truncated either way.)
/// The shortest maximum length a batch can be truncated to: room for a pair's
/// three special tokens and one token of each text.
pub const MIN_LEN: usize = 5;

const CHARS_PER_TOKEN_BOUND: usize = 32;

/// The first `limit` characters of `text`, and whether it was longer.
fn clip_chars(text: &str, limit: usize) -> (&str, bool) {
    match text.char_indices().nth(limit) {
        Some((at, _)) => (&text[..at], true),
        None => (text, false),
    }
}
