//! Trained heads as files: `BertForSequenceClassification`'s names for a
//! Linear head, with the model the head was trained on in the metadata.

use std::collections::BTreeMap;

use crate::error::{Error, Result};
use crate::head::{HeadInput, HeadParams, HeadSpec};
use crate::model::ModelIdentity;
use crate::tensor_file::{TensorReader, TensorWriter};

/// MRPC's labels, as transformers' config spells them.
pub const ID2LABEL: [&str; 2] = ["not_equivalent", "equivalent"];

/// A head and the model whose features it reads (`None` for a classifier
/// taken from a file that does not say).
#[derive(Debug, Clone, PartialEq)]
pub struct TrainedHead {
    pub spec: HeadSpec,
    pub params: HeadParams,
    pub model: Option<ModelIdentity>,
}

impl TrainedHead {
    /// Fails with a one-line message unless this head can read `loaded`'s
    /// features: the same width, and the same weights when the head knows them.
    pub fn check_model(&self, loaded: &ModelIdentity) -> Result<()> {
        if let Some(m) = &self.model {
            m.check_loaded("this head", loaded)?;
        }
        let width = self.spec.input.width(loaded.hidden_size);
        if self.spec.in_dim != width {
            return Err(Error::Input(format!("this head reads {} features; the loaded model {loaded} gives {width}", self.spec.in_dim)));
        }
        Ok(())
    }

    /// The head as safetensors, and the fields to merge into the encoder's
    /// config.json for `from_pretrained`. A Linear head keeps
    /// `BertForSequenceClassification`'s names (`classifier.weight`,
    /// `classifier.bias`); its config fields (`num_labels`, `id2label`) and ours
    /// (`head_input`, `mlp_hidden`, the model) are in the metadata.
    pub fn export(&self) -> Result<(Vec<u8>, String)> {
        let id2label: BTreeMap<String, &str> = ID2LABEL.iter().enumerate().map(|(i, l)| (i.to_string(), *l)).collect();
        let label2id: BTreeMap<&str, usize> = ID2LABEL.iter().enumerate().map(|(i, l)| (*l, i)).collect();
        let config = serde_json::json!({
            "architectures": ["BertForSequenceClassification"],
            "num_labels": self.spec.classes,
            "id2label": id2label,
            "label2id": label2id,
            "problem_type": "single_label_classification",
        });
        let mut w = TensorWriter::new();
        for t in self.params.tensors() {
            w.tensor(t.name, &t.shape, t.data);
        }
        w.meta("format", "pt")
            .meta("num_labels", self.spec.classes.to_string())
            .meta("id2label", config["id2label"].to_string())
            .meta("head_input", self.spec.input.name())
            .meta("mlp_hidden", self.spec.hidden.to_string())
            .meta("in_dim", self.spec.in_dim.to_string());
        if let Some(m) = &self.model {
            w.meta("model_name", m.name.clone())
                .meta("model_hidden_size", m.hidden_size.to_string())
                .meta("model_fingerprint", m.fingerprint.clone());
        }
        let config = serde_json::to_string_pretty(&config).map_err(|e| Error::File(e.to_string()))?;
        Ok((w.to_bytes()?, config))
    }

    /// Reads a head written by [`TrainedHead::export`] (or the `classifier.*`
    /// pair of a `BertForSequenceClassification` checkpoint, as a pooler head).
    pub fn import(bytes: &[u8]) -> Result<Self> {
        let r = TensorReader::parse(bytes, "head file")?;
        let input = match r.meta("head_input") {
            None => HeadInput::Pooler,
            Some(s) => HeadInput::parse(s).ok_or_else(|| r.error(format!("unknown head_input {s:?}")))?,
        };
        let hidden = match r.meta("mlp_hidden") {
            None => 0,
            Some(_) => r.parse_meta("mlp_hidden")?,
        };
        let first = if hidden == 0 { "classifier" } else { "head.dense" };
        let (shape, _) = r.f32_with_shape(&format!("{first}.weight"))?;
        let [_, in_dim] = shape[..] else {
            return Err(r.error(format!("`{first}.weight` has shape {shape:?}, expected [out, in]")));
        };
        let spec = HeadSpec { input, in_dim, hidden, classes: ID2LABEL.len() };
        spec.check_size()?;
        let params = spec.init(0).with_values(|name, shape| r.f32(name, shape))?;
        let model = match r.meta("model_fingerprint") {
            None => None,
            Some(fingerprint) => Some(ModelIdentity {
                name: r.require("model_name")?.to_string(),
                hidden_size: r.parse_meta("model_hidden_size")?,
                fingerprint: fingerprint.to_string(),
            }),
        };
        Ok(TrainedHead { spec, params, model })
    }
}
