//! Loading checkpoints: both naming schemes, f16/bf16, and clear errors for
//! files that are corrupt, truncated or disagree with the config.

mod common;

use std::collections::HashMap;

use bertlab::config::BertConfig;
use bertlab::cpu_encoder::forward_cpu;
use bertlab::outputs::torch_format;
use bertlab::tokenize::Input;
use bertlab::weights::BertWeights;
use bertlab::{AttentionRequest, Error, Model, ModelFiles};
use common::{f32s, fixtures, read_json, tiny_dir};
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};

fn tiny_files() -> ModelFiles {
    let read = |n: &str| std::fs::read(tiny_dir().join(n)).ok();
    ModelFiles {
        name: "tiny-bert".into(),
        config_json: read("config.json"),
        model_safetensors: read("model.safetensors"),
        tokenizer_json: None,
        vocab_txt: read("vocab.txt"),
        tokenizer_config_json: read("tokenizer_config.json"),
    }
}

/// The tiny checkpoint's tensors as (name, dtype, shape, f32 values).
fn tiny_tensors() -> Vec<(String, Vec<usize>, Vec<f32>)> {
    let bytes = std::fs::read(tiny_dir().join("model.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    st.tensors()
        .into_iter()
        .map(|(name, t)| {
            assert_eq!(t.dtype(), Dtype::F32);
            let v = t.data().chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect();
            (name, t.shape().to_vec(), v)
        })
        .collect()
}

/// Re-serialises tensors under new names, in `dtype`.
fn serialize(tensors: &[(String, Vec<usize>, Vec<f32>)], dtype: Dtype) -> Vec<u8> {
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .map(|(n, s, v)| {
            let b: Vec<u8> = match dtype {
                Dtype::F32 => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
                Dtype::F16 => v.iter().flat_map(|x| half::f16::from_f32(*x).to_le_bytes()).collect(),
                Dtype::BF16 => v.iter().flat_map(|x| half::bf16::from_f32(*x).to_le_bytes()).collect(),
                _ => unreachable!(),
            };
            (n.clone(), s.clone(), b)
        })
        .collect();
    let views: Vec<(String, TensorView)> =
        bytes.iter().map(|(n, s, b)| (n.clone(), TensorView::new(dtype, s.clone(), b).unwrap())).collect();
    safetensors::serialize(views, None).unwrap()
}

fn load(weights: Vec<u8>) -> Result<Model, Error> {
    Model::from_files(&ModelFiles { model_safetensors: Some(weights), ..tiny_files() })
}

fn hidden_of(model: &Model) -> Vec<f32> {
    let batch = model.tokenizer.encode_batch(&[Input::from("Hello, how are you?")]).unwrap();
    forward_cpu(&model.weights, &batch, AttentionRequest::None).last_hidden_state
}

#[test]
fn bert_for_sequence_classification_names_and_old_layernorm_names_load_the_same() {
    let reference = hidden_of(&Model::from_files(&tiny_files()).unwrap());
    let mut renamed: Vec<_> = tiny_tensors()
        .into_iter()
        .map(|(n, s, v)| {
            let n = n.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta");
            (format!("bert.{n}"), s, v)
        })
        .collect();
    renamed.push(("classifier.weight".into(), vec![2, 32], vec![0.5; 64]));
    renamed.push(("classifier.bias".into(), vec![2], vec![0.0; 2]));
    let model = load(serialize(&renamed, Dtype::F32)).unwrap();
    assert_eq!(hidden_of(&model), reference);
}

#[test]
fn f16_and_bf16_checkpoints_load_as_their_f32_values() {
    let tensors = tiny_tensors();
    let f32_model = Model::from_files(&tiny_files()).unwrap();
    for (dtype, round) in [
        (Dtype::F16, (|x: f32| half::f16::from_f32(x).to_f32()) as fn(f32) -> f32),
        (Dtype::BF16, |x: f32| half::bf16::from_f32(x).to_f32()),
    ] {
        let model = load(serialize(&tensors, dtype)).unwrap();
        let want: Vec<f32> = f32_model.weights.word_embeddings.iter().map(|&x| round(x)).collect();
        assert_eq!(model.weights.word_embeddings, want, "{dtype:?}");
        let want: Vec<f32> = f32_model.weights.layers[1].ffn_in.weight.iter().map(|&x| round(x)).collect();
        assert_eq!(model.weights.layers[1].ffn_in.weight, want, "{dtype:?}");
        // and the model still runs to nearly the same outputs
        let err = common::max_abs_diff(&hidden_of(&model), &hidden_of(&f32_model));
        assert!(err < 0.1 && err > 0.0, "{dtype:?}: {err}");
    }
}

fn weights_error(bytes: Vec<u8>) -> String {
    match load(bytes) {
        Err(e @ Error::Weights(_)) => e.to_string(),
        Err(e) => panic!("expected a weights error, got {e}"),
        Ok(_) => panic!("expected an error"),
    }
}

#[test]
fn truncated_and_corrupt_files_are_reported() {
    let good = std::fs::read(tiny_dir().join("model.safetensors")).unwrap();
    let msg = weights_error(good[..good.len() / 2].to_vec());
    assert!(msg.contains("corrupt or truncated"), "{msg}");
    let msg = weights_error(b"<!DOCTYPE html><html>Not found</html>".to_vec());
    assert!(msg.contains("corrupt or truncated"), "{msg}");
    let msg = weights_error(Vec::new());
    assert!(msg.contains("corrupt or truncated"), "{msg}");
}

#[test]
fn missing_and_misshapen_tensors_are_named() {
    let tensors = tiny_tensors();
    let without: Vec<_> = tensors.iter().filter(|t| t.0 != "encoder.layer.1.output.dense.bias").cloned().collect();
    let msg = weights_error(serialize(&without, Dtype::F32));
    assert!(msg.contains("missing tensor `encoder.layer.1.output.dense.bias`"), "{msg}");

    let bad: Vec<_> = tensors
        .iter()
        .map(|(n, s, v)| if n == "pooler.dense.weight" { (n.clone(), vec![16, 64], v.clone()) } else { (n.clone(), s.clone(), v.clone()) })
        .collect();
    let msg = weights_error(serialize(&bad, Dtype::F32));
    assert!(msg.contains("`pooler.dense.weight` has shape [16, 64]") && msg.contains("[32, 32]"), "{msg}");

    let no_embeddings: Vec<_> = tensors.iter().filter(|t| !t.0.starts_with("embeddings.")).cloned().collect();
    let msg = weights_error(serialize(&no_embeddings, Dtype::F32));
    assert!(msg.contains("no BERT embeddings"), "{msg}");
}

#[test]
fn a_config_that_disagrees_with_the_weights_is_reported() {
    let bytes = std::fs::read(tiny_dir().join("model.safetensors")).unwrap();
    let config = std::fs::read_to_string(tiny_dir().join("config.json")).unwrap();
    let wider = BertConfig::from_json(config.replace("\"hidden_size\": 32", "\"hidden_size\": 64").as_bytes()).unwrap();
    let msg = BertWeights::from_safetensors(&wider, &bytes).unwrap_err().to_string();
    assert!(msg.contains("encoder.layer.0.attention.self.query.weight") && msg.contains("[32, 32]"), "{msg}");
    let fewer = BertConfig::from_json(config.replace("\"num_hidden_layers\": 2", "\"num_hidden_layers\": 1").as_bytes()).unwrap();
    let msg = BertWeights::from_safetensors(&fewer, &bytes).unwrap_err().to_string();
    assert!(msg.contains("more layers"), "{msg}");
    let more = BertConfig::from_json(config.replace("\"num_hidden_layers\": 2", "\"num_hidden_layers\": 3").as_bytes()).unwrap();
    let msg = BertWeights::from_safetensors(&more, &bytes).unwrap_err().to_string();
    assert!(msg.contains("missing tensor `encoder.layer.2."), "{msg}");
}

#[test]
fn a_missing_tokenizer_and_empty_text_are_reported() {
    let files = ModelFiles { vocab_txt: None, ..tiny_files() };
    let msg = Model::from_files(&files).err().unwrap().to_string();
    assert!(msg.contains("neither tokenizer.json nor vocab.txt"), "{msg}");
    let model = Model::from_files(&tiny_files()).unwrap();
    let msg = model.tokenizer.encode_batch(&[Input::from("fine"), Input::from("   ")]).unwrap_err().to_string();
    assert!(msg.contains("text 2 is empty"), "{msg}");
    let msg = model.tokenizer.encode_batch(&[]).unwrap_err().to_string();
    assert!(msg.contains("empty batch"), "{msg}");
}

#[test]
fn bert_base_random_weights_have_the_bert_base_geometry() {
    let c = BertConfig::bert_base();
    let w = BertWeights::random(&c, 3);
    assert_eq!(w.layers.len(), 12);
    assert_eq!(w.word_embeddings.len(), 30522 * 768);
    assert_eq!(w.layers[0].qkv.weight.len(), 3 * 768 * 768);
    let std = (w.layers[0].ffn_in.weight.iter().map(|x| x * x).sum::<f32>() / (3072.0 * 768.0)).sqrt();
    assert!((0.015..0.025).contains(&std), "std {std}");
}

#[test]
fn tensors_print_exactly_as_pytorch_prints_them() {
    let cases = read_json(&fixtures().join("minilm.json"));
    let hello = &cases["hello"];
    let hidden = f32s(&hello["last_hidden_state"]);
    assert_eq!(torch_format(&hidden, &[1, 8, 384]), hello["printed_last_hidden_state"].as_str().unwrap());
    let pooled = f32s(&hello["pooler_output"]);
    assert_eq!(torch_format(&pooled, &[1, 384]), hello["printed_pooler_output"].as_str().unwrap());
    // small tensors are printed whole; tiny magnitudes switch to scientific notation
    assert_eq!(torch_format(&[1.5, -0.25], &[2]), "tensor([ 1.5000, -0.2500])");
    assert_eq!(torch_format(&[1e-5, 2.0], &[2]), "tensor([1.0000e-05, 2.0000e+00])");
}

#[test]
fn unknown_config_fields_do_not_matter_but_types_do() {
    let mut cfg: HashMap<String, serde_json::Value> =
        serde_json::from_slice(&std::fs::read(tiny_dir().join("config.json")).unwrap()).unwrap();
    cfg.insert("hidden_size".into(), serde_json::json!("thirty-two"));
    let files = ModelFiles { config_json: Some(serde_json::to_vec(&cfg).unwrap()), ..tiny_files() };
    let msg = Model::from_files(&files).err().unwrap().to_string();
    assert!(msg.starts_with("config error: config.json is not a valid BERT config"), "{msg}");
}

#[test]
fn fingerprints_tell_weights_apart_and_ignore_where_they_came_from() {
    let a = Model::from_files(&tiny_files()).unwrap();
    let b = Model::from_dir(&tiny_dir()).unwrap();
    let fp = a.weights.fingerprint();
    assert_eq!(fp.len(), 16);
    assert_eq!(fp, b.weights.fingerprint(), "the same files from two places");
    let mut changed = a.weights.clone();
    changed.layers[1].ffn_out.bias[0] += 1e-3;
    assert_ne!(changed.fingerprint(), fp);
    let f16 = load(serialize(&tiny_tensors(), Dtype::F16)).unwrap();
    assert_ne!(f16.weights.fingerprint(), fp, "f16-rounded weights are other weights");
}

#[test]
fn a_checkpoint_without_pooler_weights_has_no_pooler_output() {
    let without: Vec<_> = tiny_tensors().into_iter().filter(|t| !t.0.starts_with("pooler.")).collect();
    let model = load(serialize(&without, Dtype::F32)).unwrap();
    assert!(model.weights.pooler.is_none());
    let batch = model.tokenizer.encode_batch(&[Input::from("Hello, how are you?")]).unwrap();
    let out = forward_cpu(&model.weights, &batch, AttentionRequest::None);
    assert!(out.pooler_output.is_none());
    assert!(out.sentence_embedding(0, &batch.attention_mask, bertlab::Pooling::Pooler, false).is_none());
    // the hidden states are the full model's
    assert_eq!(out.last_hidden_state, hidden_of(&Model::from_files(&tiny_files()).unwrap()));
}
