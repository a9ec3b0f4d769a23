//! BERT with a task head as one trainable whole, every tensor under
//! transformers' name: `BertForSequenceClassification` (its pooler, dropout
//! and a Linear: N labels, or one number for regression) or
//! `BertForTokenClassification` (dropout and a Linear on every token).
//!
//! [`backprop`] runs it forward keeping what the backward pass needs, and
//! back; [`math`] is where its matrix products run (the plain reference or
//! the fast GEMM); [`gpu_backprop`] is the same on the GPU's kernels;
//! [`optimizer`] is the Trainer's AdamW; [`export`] writes a
//! folder `from_pretrained` loads.

pub mod backprop;
pub mod cost;
pub mod export;
mod fast_attention;
pub mod gpu_backprop;
pub mod loss;
pub mod math;
pub mod optimizer;

use crate::error::{Error, Result};
use crate::rng::Rng;
use crate::tensor_file::TensorReader;
use crate::weights::{BertWeights, Linear};

/// The head on top of BERT, as transformers' classes shape it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum HeadKind {
    /// `BertForSequenceClassification`: [CLS] → pooler (tanh) → dropout → Linear; one row of outputs a sequence.
    Sequence,
    /// `BertForTokenClassification`: dropout → Linear on every token; one row a token, no pooler.
    Tokens,
}

impl HeadKind {
    /// transformers' class name (config.json's `architectures`).
    pub fn architecture(self) -> &'static str {
        match self {
            HeadKind::Sequence => "BertForSequenceClassification",
            HeadKind::Tokens => "BertForTokenClassification",
        }
    }
}

/// What a head's outputs mean, as config.json says it: named classes
/// (`id2label`, in id order), or one number (`problem_type` "regression").
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Labels {
    Classes(Vec<String>),
    Regression,
}

impl Labels {
    /// GLUE MRPC's two classes.
    pub fn mrpc() -> Self {
        Labels::Classes(vec!["not_equivalent".into(), "equivalent".into()])
    }

    /// The head's outputs (`num_labels`).
    pub fn outputs(&self) -> usize {
        match self {
            Labels::Classes(names) => names.len(),
            Labels::Regression => 1,
        }
    }

    /// The class names (a regression has none).
    pub fn names(&self) -> &[String] {
        match self {
            Labels::Classes(names) => names,
            Labels::Regression => &[],
        }
    }

    /// transformers' `problem_type`.
    pub fn problem_type(&self) -> &'static str {
        match self {
            Labels::Classes(_) => "single_label_classification",
            Labels::Regression => "regression",
        }
    }
}

/// Which part of the model a tensor belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Embeddings,
    Layer(usize),
    Pooler,
    Classifier,
}

/// What a run trains; the rest stays as loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum TrainLayers {
    /// Every tensor, embeddings included.
    All,
    /// The top `k` encoder layers, the pooler and the classifier. `Top(0)`
    /// is a head alone, trained on frozen features (`finetune::training`).
    Top(usize),
}

impl TrainLayers {
    /// `all` or a number of top layers.
    pub fn parse(s: &str, layers: usize) -> Result<Self> {
        if s == "all" {
            return Ok(TrainLayers::All);
        }
        match s.parse::<usize>() {
            Ok(k) if k <= layers => Ok(TrainLayers::Top(k)),
            Ok(k) => Err(Error::Input(format!("--train-layers {k}: the model has only {layers} layers"))),
            Err(_) => Err(Error::Input(format!("--train-layers {s:?}: give `all` or a number of top layers (0 for the head only)"))),
        }
    }

    /// The first encoder layer that trains (`layers` when none does).
    pub fn first_trained_layer(self, layers: usize) -> usize {
        match self {
            TrainLayers::All => 0,
            TrainLayers::Top(k) => layers - k.min(layers),
        }
    }

    pub fn trains(self, part: Part, layers: usize) -> bool {
        match (self, part) {
            (TrainLayers::All, _) | (_, Part::Pooler | Part::Classifier) => true,
            (TrainLayers::Top(_), Part::Embeddings) => false,
            (_, Part::Layer(l)) => l >= self.first_trained_layer(layers),
        }
    }

    /// What trains, in words (the page's choices, the CLI's first line, a saved run).
    pub fn describe(self) -> String {
        match self {
            TrainLayers::Top(0) => "a head on frozen features".into(),
            TrainLayers::Top(1) => "the top layer and the head".into(),
            TrainLayers::Top(k) => format!("the top {k} layers and the head"),
            TrainLayers::All => "the whole model".into(),
        }
    }
}

/// The model's parameters; the same shape holds their gradients and AdamW's moments.
#[derive(Debug, Clone)]
pub struct ClassifierParams {
    /// BERT; with its pooler for a sequence head, without for a token head.
    pub bert: BertWeights,
    pub kind: HeadKind,
    /// `classifier`: `[outputs, hidden]` (the labels, or 1 for regression).
    pub classifier: Linear,
}

/// One tensor's place in the model.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorInfo {
    /// transformers' name, except that a layer's query, key and value are one
    /// stacked `…attention.self.qkv` tensor (split again on export).
    pub name: String,
    pub part: Part,
    pub shape: Vec<usize>,
}

impl TensorInfo {
    /// Whether the Trainer decays it: not biases, not LayerNorm weights.
    pub fn decays(&self) -> bool {
        !self.name.ends_with(".bias") && !self.name.contains("LayerNorm")
    }
}

fn random_linear(rng: &mut Rng, out_dim: usize, in_dim: usize) -> Linear {
    // transformers' initializer_range
    Linear { weight: rng.normal(out_dim * in_dim, 0.02), bias: vec![0.0; out_dim], in_dim, out_dim }
}

impl ClassifierParams {
    /// BERT's weights with a new `kind` head of `outputs` outputs (and, for a
    /// sequence head, a new pooler where the checkpoint has none; a token
    /// head has none, as `BertForTokenClassification`), initialised as
    /// transformers does, from `seed`.
    pub fn new(mut bert: BertWeights, kind: HeadKind, outputs: usize, seed: u64) -> Self {
        let h = bert.config.hidden_size;
        let mut rng = Rng::new(seed);
        let classifier = random_linear(&mut rng, outputs, h);
        match kind {
            HeadKind::Sequence => _ = bert.pooler.get_or_insert_with(|| random_linear(&mut rng, h, h)),
            HeadKind::Tokens => bert.pooler = None,
        }
        ClassifierParams { bert, kind, classifier }
    }

    /// A fine-tuned model read back: BERT's weights and the `classifier.*`
    /// tensors of the same `model.safetensors` (as [`export`] writes them, and
    /// transformers' `save_pretrained`), its outputs read from their shape.
    pub fn from_checkpoint(mut bert: BertWeights, kind: HeadKind, model_safetensors: &[u8]) -> Result<Self> {
        let h = bert.config.hidden_size;
        match kind {
            HeadKind::Sequence if bert.pooler.is_none() => {
                return Err(Error::Weights(
                    "this checkpoint has no pooler weights, so it is not a fine-tuned BertForSequenceClassification".into(),
                ))
            }
            HeadKind::Sequence => {}
            HeadKind::Tokens => bert.pooler = None,
        }
        let r = TensorReader::parse(model_safetensors, "model.safetensors")?;
        if !r.has("classifier.weight") {
            return Err(Error::Weights(format!(
                "model.safetensors has no `classifier.weight`: it is not a {} checkpoint (give --head for a head file)",
                kind.architecture()
            )));
        }
        let (shape, weight) = r.f32_with_shape("classifier.weight")?;
        let outputs = match shape[..] {
            [n, inp] if inp == h && n > 0 => n,
            _ => return Err(Error::Weights(format!("`classifier.weight` has shape {shape:?}; expected [labels, {h}]"))),
        };
        let classifier = Linear { weight, bias: r.f32("classifier.bias", &[outputs])?, in_dim: h, out_dim: outputs };
        Ok(ClassifierParams { bert, kind, classifier })
    }

    /// The head's outputs: its labels, or 1 for regression.
    pub fn outputs(&self) -> usize {
        self.classifier.out_dim
    }

    /// A sequence head's pooler.
    pub fn pooler(&self) -> &Linear {
        self.bert.pooler.as_ref().expect("a sequence head's BERT has a pooler (ClassifierParams::new)")
    }

    /// Every tensor's name, part and shape, in the order of [`Self::data`].
    pub fn layout(&self) -> Vec<TensorInfo> {
        let c = &self.bert.config;
        let (h, i) = (c.hidden_size, c.intermediate_size);
        let t = |name: String, part: Part, shape: &[usize]| TensorInfo { name, part, shape: shape.to_vec() };
        let e = "bert.embeddings";
        let mut v = vec![
            t(format!("{e}.word_embeddings.weight"), Part::Embeddings, &[c.vocab_size, h]),
            t(format!("{e}.position_embeddings.weight"), Part::Embeddings, &[c.max_position_embeddings, h]),
            t(format!("{e}.token_type_embeddings.weight"), Part::Embeddings, &[c.type_vocab_size, h]),
            t(format!("{e}.LayerNorm.weight"), Part::Embeddings, &[h]),
            t(format!("{e}.LayerNorm.bias"), Part::Embeddings, &[h]),
        ];
        for l in 0..self.bert.layers.len() {
            let p = format!("bert.encoder.layer.{l}");
            let part = Part::Layer(l);
            for (name, out, inp) in
                [("attention.self.qkv", 3 * h, h), ("attention.output.dense", h, h), ("intermediate.dense", i, h), ("output.dense", h, i)]
            {
                v.push(t(format!("{p}.{name}.weight"), part, &[out, inp]));
                v.push(t(format!("{p}.{name}.bias"), part, &[out]));
            }
            for name in ["attention.output.LayerNorm", "output.LayerNorm"] {
                v.push(t(format!("{p}.{name}.weight"), part, &[h]));
                v.push(t(format!("{p}.{name}.bias"), part, &[h]));
            }
        }
        if self.bert.pooler.is_some() {
            v.push(t("bert.pooler.dense.weight".into(), Part::Pooler, &[h, h]));
            v.push(t("bert.pooler.dense.bias".into(), Part::Pooler, &[h]));
        }
        let n = self.outputs();
        v.push(t("classifier.weight".into(), Part::Classifier, &[n, h]));
        v.push(t("classifier.bias".into(), Part::Classifier, &[n]));
        v
    }

    /// Every tensor's values, in the order of [`Self::layout`].
    pub fn data(&self) -> Vec<&Vec<f32>> {
        let b = &self.bert;
        let mut v =
            vec![&b.word_embeddings, &b.position_embeddings, &b.token_type_embeddings, &b.embeddings_norm.gamma, &b.embeddings_norm.beta];
        for l in &b.layers {
            for lin in [&l.qkv, &l.attn_out, &l.ffn_in, &l.ffn_out] {
                v.extend([&lin.weight, &lin.bias]);
            }
            for n in [&l.attn_norm, &l.ffn_norm] {
                v.extend([&n.gamma, &n.beta]);
            }
        }
        if let Some(p) = &b.pooler {
            v.extend([&p.weight, &p.bias]);
        }
        v.extend([&self.classifier.weight, &self.classifier.bias]);
        v
    }

    /// [`Self::data`], writable.
    pub fn data_mut(&mut self) -> Vec<&mut Vec<f32>> {
        let b = &mut self.bert;
        let mut v = vec![
            &mut b.word_embeddings,
            &mut b.position_embeddings,
            &mut b.token_type_embeddings,
            &mut b.embeddings_norm.gamma,
            &mut b.embeddings_norm.beta,
        ];
        for l in &mut b.layers {
            for lin in [&mut l.qkv, &mut l.attn_out, &mut l.ffn_in, &mut l.ffn_out] {
                v.extend([&mut lin.weight, &mut lin.bias]);
            }
            for n in [&mut l.attn_norm, &mut l.ffn_norm] {
                v.extend([&mut n.gamma, &mut n.beta]);
            }
        }
        if let Some(p) = &mut b.pooler {
            v.extend([&mut p.weight, &mut p.bias]);
        }
        v.extend([&mut self.classifier.weight, &mut self.classifier.bias]);
        v
    }

    /// The same shapes, all zeros (gradients, moments).
    pub fn zeros_like(&self) -> Self {
        let mut z = self.clone();
        z.data_mut().into_iter().for_each(|t| t.fill(0.0));
        z
    }

    /// The same shapes with values from `get(tensor, its current values)` (a checkpoint's tensors).
    pub fn with_values(&self, mut get: impl FnMut(&TensorInfo, &[f32]) -> Result<Vec<f32>>) -> Result<Self> {
        let mut out = self.clone();
        for (info, t) in self.layout().iter().zip(out.data_mut()) {
            *t = get(info, t)?;
        }
        Ok(out)
    }

    pub fn is_finite(&self) -> bool {
        self.data().iter().all(|t| t.iter().all(|v| v.is_finite()))
    }

    /// How many values the model has, and how many of them `train` trains.
    pub fn counts(&self, train: TrainLayers) -> (usize, usize) {
        let layers = self.bert.layers.len();
        self.layout().iter().fold((0, 0), |(all, trained), t| {
            let n: usize = t.shape.iter().product();
            (all + n, trained + if train.trains(t.part, layers) { n } else { 0 })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::BertConfig;

    #[test]
    fn layout_and_data_agree_and_decay_follows_the_trainer() {
        let mut c = BertConfig::bert_base();
        (c.vocab_size, c.hidden_size, c.num_attention_heads, c.intermediate_size, c.num_hidden_layers) = (50, 8, 2, 12, 2);
        let p = ClassifierParams::new(BertWeights::random(&c, 1), HeadKind::Sequence, 2, 3);
        let layout = p.layout();
        assert_eq!(layout.len(), p.data().len());
        for (info, t) in layout.iter().zip(p.data()) {
            assert_eq!(info.shape.iter().product::<usize>(), t.len(), "{}", info.name);
        }
        let no_decay: Vec<_> = layout.iter().filter(|t| !t.decays()).map(|t| t.name.as_str()).collect();
        assert!(no_decay.contains(&"bert.embeddings.LayerNorm.weight") && no_decay.contains(&"classifier.bias"));
        assert!(layout.iter().any(|t| t.name == "bert.embeddings.word_embeddings.weight" && t.decays()));
        let (all, top1) = (p.counts(TrainLayers::All), p.counts(TrainLayers::Top(1)));
        assert_eq!(all.0, all.1);
        assert!(top1.1 < all.1 && top1.1 > p.counts(TrainLayers::Top(0)).1);
    }

    #[test]
    fn train_layers_parse_and_refuse_by_name() {
        assert_eq!(TrainLayers::parse("all", 6).unwrap(), TrainLayers::All);
        assert_eq!(TrainLayers::parse("2", 6).unwrap(), TrainLayers::Top(2));
        assert!(TrainLayers::parse("7", 6).unwrap_err().to_string().contains("only 6 layers"));
        assert!(TrainLayers::parse("top", 6).unwrap_err().to_string().contains("--train-layers"));
        assert!(TrainLayers::Top(2).trains(Part::Layer(4), 6) && !TrainLayers::Top(2).trains(Part::Layer(3), 6));
        assert!(!TrainLayers::Top(2).trains(Part::Embeddings, 6) && TrainLayers::Top(0).trains(Part::Classifier, 6));
    }
}
