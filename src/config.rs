//! config.json of a Hugging Face BERT checkpoint.

use serde::Deserialize;

use crate::error::{clipped, quoted, Error, Result};

/// Bounds on config.json's sizes, far above any published BERT (bert-large:
/// hidden 1024, 24 layers, intermediate 4096; mBERT's vocabulary 119 547):
/// a config past them is a corrupt or hostile file, refused before any
/// allocation is sized by it.
pub const MAX_VOCAB: usize = 1 << 20;
pub const MAX_HIDDEN: usize = 1 << 14;
pub const MAX_LAYERS: usize = 256;
pub const MAX_INTERMEDIATE: usize = 1 << 16;
pub const MAX_POSITIONS: usize = 1 << 16;
pub const MAX_TYPE_VOCAB: usize = 1 << 10;
/// Published BERTs use 1e-12 to 1e-5.
pub const MAX_LAYER_NORM_EPS: f32 = 1e-2;

/// The hidden activation of the feed-forward block (`hidden_act`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// `gelu`: the exact one, 0.5·x·(1 + erf(x/√2)).
    Gelu,
    /// `gelu_new`, `gelu_pytorch_tanh`, `gelu_fast`: the tanh approximation.
    GeluTanh,
    Relu,
}

/// The model geometry, with `transformers.BertConfig`'s defaults for fields a
/// config.json leaves out.
#[derive(Debug, Clone, PartialEq)]
pub struct BertConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    pub max_position_embeddings: usize,
    pub type_vocab_size: usize,
    pub layer_norm_eps: f32,
    pub hidden_act: Activation,
    pub pad_token_id: u32,
    /// Dropout after the embeddings and each block's output projections (training only).
    pub hidden_dropout_prob: f32,
    /// Dropout on the attention probabilities (training only).
    pub attention_probs_dropout_prob: f32,
    /// Dropout before a classifier; `None` means `hidden_dropout_prob`.
    pub classifier_dropout: Option<f32>,
}

#[derive(Deserialize)]
struct RawConfig {
    model_type: Option<String>,
    vocab_size: Option<usize>,
    hidden_size: Option<usize>,
    num_hidden_layers: Option<usize>,
    num_attention_heads: Option<usize>,
    intermediate_size: Option<usize>,
    max_position_embeddings: Option<usize>,
    type_vocab_size: Option<usize>,
    layer_norm_eps: Option<f64>,
    hidden_act: Option<String>,
    pad_token_id: Option<u32>,
    position_embedding_type: Option<String>,
    hidden_dropout_prob: Option<f64>,
    attention_probs_dropout_prob: Option<f64>,
    classifier_dropout: Option<f64>,
}

impl BertConfig {
    pub fn from_json(bytes: &[u8]) -> Result<Self> {
        let raw: RawConfig = serde_json::from_slice(bytes)
            .map_err(|e| Error::Config(format!("config.json is not a valid BERT config: {}", clipped(&e.to_string()))))?;
        if let Some(t) = &raw.model_type {
            if t != "bert" {
                return Err(Error::Config(format!("config.json has model_type {}; only \"bert\" is supported", quoted(t))));
            }
        }
        if let Some(p) = &raw.position_embedding_type {
            if p != "absolute" {
                return Err(Error::Config(format!("position_embedding_type {} is not supported (only \"absolute\")", quoted(p))));
            }
        }
        let act = raw.hidden_act.as_deref().unwrap_or("gelu");
        let hidden_act = match act {
            "gelu" => Activation::Gelu,
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Activation::GeluTanh,
            "relu" => Activation::Relu,
            other => return Err(Error::Config(format!("hidden_act {} is not supported", quoted(other)))),
        };
        let c = BertConfig {
            vocab_size: raw.vocab_size.unwrap_or(30522),
            hidden_size: raw.hidden_size.unwrap_or(768),
            num_hidden_layers: raw.num_hidden_layers.unwrap_or(12),
            num_attention_heads: raw.num_attention_heads.unwrap_or(12),
            intermediate_size: raw.intermediate_size.unwrap_or(3072),
            max_position_embeddings: raw.max_position_embeddings.unwrap_or(512),
            type_vocab_size: raw.type_vocab_size.unwrap_or(2),
            layer_norm_eps: raw.layer_norm_eps.unwrap_or(1e-12) as f32,
            hidden_act,
            pad_token_id: raw.pad_token_id.unwrap_or(0),
            hidden_dropout_prob: raw.hidden_dropout_prob.unwrap_or(0.1) as f32,
            attention_probs_dropout_prob: raw.attention_probs_dropout_prob.unwrap_or(0.1) as f32,
            classifier_dropout: raw.classifier_dropout.map(|p| p as f32),
        };
        c.validate()?;
        Ok(c)
    }

    /// Every size within its bound before anything is sized by it (the
    /// weights are then checked against these, tensor by tensor, before any
    /// is converted); eps and dropouts in their ranges.
    fn validate(&self) -> Result<()> {
        for (name, v, max) in [
            ("vocab_size", self.vocab_size, MAX_VOCAB),
            ("hidden_size", self.hidden_size, MAX_HIDDEN),
            ("num_hidden_layers", self.num_hidden_layers, MAX_LAYERS),
            ("num_attention_heads", self.num_attention_heads, MAX_HIDDEN),
            ("intermediate_size", self.intermediate_size, MAX_INTERMEDIATE),
            ("max_position_embeddings", self.max_position_embeddings, MAX_POSITIONS),
            ("type_vocab_size", self.type_vocab_size, MAX_TYPE_VOCAB),
        ] {
            if v == 0 {
                return Err(Error::Config(format!("{name} must be positive")));
            }
            if v > max {
                return Err(Error::Config(format!("{name} = {v} is larger than any BERT this engine runs (at most {max})")));
            }
        }
        if self.pad_token_id as usize >= self.vocab_size {
            return Err(Error::Config(format!(
                "pad_token_id {} is outside the vocabulary (vocab_size {})",
                self.pad_token_id, self.vocab_size
            )));
        }
        // a NaN makes every output NaN; a large one makes every token's vector the same
        if !(self.layer_norm_eps > 0.0 && self.layer_norm_eps <= MAX_LAYER_NORM_EPS) {
            return Err(Error::Config(format!(
                "layer_norm_eps {} must be a positive number no larger than {MAX_LAYER_NORM_EPS}",
                self.layer_norm_eps
            )));
        }
        if !self.hidden_size.is_multiple_of(self.num_attention_heads) {
            return Err(Error::Config(format!(
                "hidden_size {} is not a multiple of num_attention_heads {}",
                self.hidden_size, self.num_attention_heads
            )));
        }
        let dropouts = [
            ("hidden_dropout_prob", Some(self.hidden_dropout_prob)),
            ("attention_probs_dropout_prob", Some(self.attention_probs_dropout_prob)),
            ("classifier_dropout", self.classifier_dropout),
        ];
        for (name, p) in dropouts {
            if let Some(p) = p.filter(|p| !(0.0..1.0).contains(p)) {
                return Err(Error::Config(format!("{name} {p} must be in [0, 1)")));
            }
        }
        Ok(())
    }

    /// The dropout before the classification head.
    pub fn classifier_dropout_prob(&self) -> f32 {
        self.classifier_dropout.unwrap_or(self.hidden_dropout_prob)
    }

    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }

    /// bert-base-uncased's geometry, for benchmarks with random weights.
    pub fn bert_base() -> Self {
        BertConfig {
            vocab_size: 30522,
            hidden_size: 768,
            num_hidden_layers: 12,
            num_attention_heads: 12,
            intermediate_size: 3072,
            max_position_embeddings: 512,
            type_vocab_size: 2,
            layer_norm_eps: 1e-12,
            hidden_act: Activation::Gelu,
            pad_token_id: 0,
            hidden_dropout_prob: 0.1,
            attention_probs_dropout_prob: 0.1,
            classifier_dropout: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_fill_missing_fields() {
        let c = BertConfig::from_json(br#"{"hidden_size": 64, "num_attention_heads": 4}"#).unwrap();
        assert_eq!(c.hidden_size, 64);
        assert_eq!(c.head_dim(), 16);
        assert_eq!(c.num_hidden_layers, 12);
        assert_eq!(c.hidden_act, Activation::Gelu);
    }

    #[test]
    fn rejects_bad_configs_with_a_message() {
        let e = BertConfig::from_json(b"<html>").unwrap_err();
        assert!(e.to_string().contains("config.json"), "{e}");
        let e = BertConfig::from_json(br#"{"hidden_size": 100, "num_attention_heads": 12}"#).unwrap_err();
        assert!(e.to_string().contains("not a multiple"), "{e}");
        let e = BertConfig::from_json(br#"{"hidden_act": "swish"}"#).unwrap_err();
        assert!(e.to_string().contains("swish"), "{e}");
        let e = BertConfig::from_json(br#"{"model_type": "gpt2"}"#).unwrap_err();
        assert!(e.to_string().contains("gpt2"), "{e}");
    }
}
