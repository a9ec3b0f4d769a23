//! A fine-tuned model as a Hugging Face folder: `config.json` (the base
//! model's, now `BertForSequenceClassification` or
//! `BertForTokenClassification` with the task's labels),
//! `model.safetensors` under transformers' names, and the tokenizer files.
//! `BertForSequenceClassification.from_pretrained(folder)` loads it, and so
//! do the page and `bertlab embed --model` (as the fine-tuned encoder).

use std::collections::BTreeMap;

use crate::classifier::{ClassifierParams, Labels};
use crate::error::{clipped, Error, Result};
use crate::tensor_file::TensorWriter;

/// Every tensor under transformers' name, a layer's stacked qkv split back
/// into `query`, `key` and `value` (row blocks of it, so no copies).
pub fn hf_tensors(p: &ClassifierParams) -> Vec<(String, Vec<usize>, &[f32])> {
    let mut out = Vec::new();
    for (info, data) in p.layout().into_iter().zip(p.data()) {
        match info.name.strip_suffix(".qkv.weight").or_else(|| info.name.strip_suffix(".qkv.bias")) {
            Some(prefix) => {
                let kind = if info.name.ends_with("weight") { "weight" } else { "bias" };
                let mut shape = info.shape.clone();
                shape[0] /= 3;
                let len = data.len() / 3;
                for (i, part) in ["query", "key", "value"].into_iter().enumerate() {
                    out.push((format!("{prefix}.{part}.{kind}"), shape.clone(), &data[i * len..][..len]));
                }
            }
            None => out.push((info.name, info.shape, data.as_slice())),
        }
    }
    out
}

/// The folder's files as (name, bytes): `config.json` from the base model's
/// `config_json` with the head's fields (`labels` names its outputs),
/// `model.safetensors`, and `tokenizer_files` as they are.
pub fn export_folder(
    p: &ClassifierParams,
    labels: &Labels,
    config_json: &[u8],
    tokenizer_files: &[(&str, &[u8])],
) -> Result<Vec<(String, Vec<u8>)>> {
    if labels.outputs() != p.outputs() {
        return Err(Error::Input(format!("{} labels for a head of {} outputs", labels.outputs(), p.outputs())));
    }
    let mut config: serde_json::Value = serde_json::from_slice(config_json)
        .map_err(|e| Error::Config(format!("config.json is not valid JSON: {}", clipped(&e.to_string()))))?;
    let fields = config.as_object_mut().ok_or_else(|| Error::Config("config.json is not a JSON object".into()))?;
    // transformers' own names for a regression head's one output
    let names = match labels {
        Labels::Classes(names) => names.clone(),
        Labels::Regression => vec!["LABEL_0".into()],
    };
    let id2label: BTreeMap<String, &str> = names.iter().enumerate().map(|(i, l)| (i.to_string(), l.as_str())).collect();
    let label2id: BTreeMap<&str, usize> = names.iter().enumerate().map(|(i, l)| (l.as_str(), i)).collect();
    fields.insert("architectures".into(), serde_json::json!([p.kind.architecture()]));
    fields.insert("num_labels".into(), p.outputs().into());
    fields.insert("id2label".into(), serde_json::json!(id2label));
    fields.insert("label2id".into(), serde_json::json!(label2id));
    fields.insert("problem_type".into(), labels.problem_type().into());
    let config = serde_json::to_vec_pretty(&config).map_err(|e| Error::File(e.to_string()))?;

    let mut w = TensorWriter::new();
    for (name, shape, data) in hf_tensors(p) {
        w.tensor(name, &shape, data);
    }
    w.meta("format", "pt");
    let mut files = vec![("config.json".to_string(), config), ("model.safetensors".to_string(), w.to_bytes()?)];
    files.extend(tokenizer_files.iter().map(|(n, b)| (n.to_string(), b.to_vec())));
    Ok(files)
}
