//! A fine-tuned model as a Hugging Face folder: `config.json` (the base
//! model's, now `BertForSequenceClassification` or
//! `BertForTokenClassification` with the task's labels),
//! `model.safetensors` under transformers' names, and the tokenizer files.
//! `BertForSequenceClassification.from_pretrained(folder)` loads it, and so
//! do the page and `bertlab embed --model` (as the fine-tuned encoder).

use std::collections::BTreeMap;

use crate::classifier::{ClassifierParams, HeadKind, Labels};
use crate::error::{clipped, quoted, Error, Result};
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

/// What a fine-tuned folder's config.json says its head is (as transformers
/// writes it): the class from `architectures`, the labels from `id2label`
/// (`problem_type` "regression", or one label, is a regression).
pub fn read_head_config(config_json: &[u8]) -> Result<(HeadKind, Labels)> {
    let v: serde_json::Value = serde_json::from_slice(config_json)
        .map_err(|e| Error::Config(format!("config.json is not valid JSON: {}", clipped(&e.to_string()))))?;
    let arch = v["architectures"].as_array().and_then(|a| a.first()).and_then(|a| a.as_str()).unwrap_or("");
    let kind = [HeadKind::Sequence, HeadKind::Tokens].into_iter().find(|k| k.architecture() == arch).ok_or_else(|| {
        Error::Config(format!(
            "config.json's architectures is {}: not a fine-tuned BertForSequenceClassification or BertForTokenClassification",
            quoted(arch)
        ))
    })?;
    let id2label = v["id2label"].as_object();
    let n = id2label.map(|m| m.len()).or_else(|| v["num_labels"].as_u64().map(|n| n as usize)).unwrap_or(2);
    if n == 0 || n > crate::finetune::model_training::MAX_OUTPUTS {
        return Err(Error::Config(format!("config.json has {n} labels")));
    }
    if v["problem_type"].as_str() == Some("regression") || (n == 1 && kind == HeadKind::Sequence) {
        return Ok((kind, Labels::Regression));
    }
    let names = (0..n)
        .map(|i| match id2label.and_then(|m| m.get(&i.to_string())) {
            Some(serde_json::Value::String(s)) => Ok(s.clone()),
            Some(_) => Err(Error::Config(format!("config.json's id2label \"{i}\" is not a name"))),
            None if id2label.is_none() => Ok(format!("LABEL_{i}")),
            None => Err(Error::Config(format!("config.json's id2label has no \"{i}\""))),
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((kind, Labels::Classes(names)))
}
