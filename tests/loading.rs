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
use common::{f32s, fixtures, read_json, serialize, tiny_dir, tiny_files, tiny_tensors};
use safetensors::Dtype;

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
    assert!(msg.contains("fewer layers") && msg.contains("`encoder.layer.2.attention.self.query.weight`"), "{msg}");
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
    // every value counts, not a strided sample of each tensor (the old fingerprint took 4096 of
    // each and missed this one: stale cached features and saved heads were reused on other weights)
    let mut one_value = a.weights.clone();
    assert!(one_value.word_embeddings.len() > 4096);
    one_value.word_embeddings[1] += 1e-3;
    assert_ne!(one_value.fingerprint(), fp);
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

/// config.json with `edit` applied to its fields, as the tiny model's files.
fn with_config(edit: impl FnOnce(&mut serde_json::Map<String, serde_json::Value>)) -> ModelFiles {
    let mut cfg: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&std::fs::read(tiny_dir().join("config.json")).unwrap()).unwrap();
    edit(&mut cfg);
    ModelFiles { config_json: Some(serde_json::to_vec(&cfg).unwrap()), ..tiny_files() }
}

fn load_error(files: &ModelFiles) -> String {
    Model::from_files(files).err().expect("the files should be refused").to_string()
}

/// Issue 24: a size field past any BERT aborted on `Vec::with_capacity`; each is
/// refused by name before anything is sized by it, and a layer count the
/// file does not hold is said before any layer is converted.
#[test]
fn config_sizes_past_any_bert_are_refused_before_anything_is_sized_by_them() {
    for field in [
        "vocab_size",
        "hidden_size",
        "num_hidden_layers",
        "num_attention_heads",
        "intermediate_size",
        "max_position_embeddings",
        "type_vocab_size",
    ] {
        for huge in [1u64 << 40, u64::MAX] {
            let msg = load_error(&with_config(|c| {
                c.insert(field.into(), huge.into());
            }));
            assert!(msg.starts_with("config error") && msg.contains(field), "{field} = {huge}: {msg}");
        }
    }
    let msg = load_error(&with_config(|c| {
        c.insert("num_hidden_layers".into(), 200.into());
    }));
    assert!(msg.contains("fewer layers than config.json's num_hidden_layers = 200"), "{msg}");
}

#[test]
fn pad_token_id_and_layer_norm_eps_outside_their_ranges_are_refused() {
    // pad_token_id past the vocabulary panicked in CPU layer training
    let msg = load_error(&with_config(|c| {
        c.insert("pad_token_id".into(), 100_000.into());
    }));
    assert!(msg.contains("pad_token_id 100000 is outside the vocabulary"), "{msg}");
    // 1e30 made every token's vector the same; 1e400 (inf), 0 and negatives are no epsilon either
    for eps in ["1e30", "1e400", "0", "-1e-12"] {
        let files = with_config(|c| {
            c.insert("layer_norm_eps".into(), serde_json::from_str(eps).unwrap_or(serde_json::json!(f64::MAX)));
        });
        let msg = load_error(&files);
        assert!(msg.contains("layer_norm_eps"), "{eps}: {msg}");
    }
}

/// NaN or ±inf weights were loaded and printed NaN outputs as a result.
#[test]
fn non_finite_weights_are_named_and_a_forward_that_overflows_says_so() {
    for (bad, shown) in [(f32::NAN, "NaN"), (f32::INFINITY, "inf"), (f32::NEG_INFINITY, "-inf")] {
        let tensors: Vec<_> = tiny_tensors()
            .into_iter()
            .map(|(n, s, mut v)| {
                if n == "encoder.layer.1.output.dense.weight" {
                    v[7] = bad;
                }
                (n, s, v)
            })
            .collect();
        let msg = weights_error(serialize(&tensors, Dtype::F32));
        assert!(msg.contains(&format!("`encoder.layer.1.output.dense.weight` holds {shown} at index 7")), "{msg}");
    }
    // finite weights whose products overflow float32: the forward says so instead of printing inf or NaN
    let tensors: Vec<_> = tiny_tensors()
        .into_iter()
        .map(|(n, s, v)| {
            let scale = n.ends_with("intermediate.dense.weight") || n.ends_with("output.dense.weight");
            if scale {
                (n, s, v.iter().map(|x| x * 1e37).collect())
            } else {
                (n, s, v)
            }
        })
        .collect();
    let model = load(serialize(&tensors, Dtype::F32)).unwrap();
    let mut engine = pollster::block_on(bertlab::Engine::new(model, bertlab::BackendChoice::Cpu)).unwrap();
    let e = pollster::block_on(engine.embed(&[Input::from("Hello, how are you?")], bertlab::EmbedOptions::default())).unwrap_err();
    assert!(e.to_string().contains("not a finite number"), "{e}");
}

/// A 10 MB string in config.json was echoed whole into the error line.
#[test]
fn input_echoed_into_a_message_is_cut() {
    let huge = "x".repeat(10 << 20);
    for field in ["hidden_act", "model_type", "position_embedding_type"] {
        let msg = load_error(&with_config(|c| {
            c.insert(field.into(), huge.clone().into());
        }));
        assert!(msg.contains(field) && msg.len() < 300, "{field}: {} bytes", msg.len());
        assert!(msg.contains("(10485760 bytes)"), "{}", &msg[..msg.len().min(300)]);
    }
    // a parser's message that quotes the input is cut too
    let msg = load_error(&with_config(|c| {
        c.insert("vocab_size".into(), huge.clone().into());
    }));
    assert!(msg.len() < 400, "{} bytes", msg.len());
}

/// Text of only control or zero-width characters passed the emptiness check and embedded as `[CLS] [SEP]`.
#[test]
fn text_of_only_control_or_zero_width_characters_is_refused() {
    let model = Model::from_files(&tiny_files()).unwrap();
    for text in ["\u{200b}\u{200b}", "\u{0007}\u{0008}", "\u{feff}", "\u{200b} \u{0001}"] {
        let e = model.tokenizer.encode_batch(&[Input::from("fine"), Input::from(text)]).unwrap_err();
        assert!(e.to_string().contains("text 2 has no tokens"), "{text:?}: {e}");
        let pair = Input::Pair("fine".into(), text.into());
        assert!(model.tokenizer.encode_batch(&[pair]).is_err(), "{text:?} as the pair's second text");
    }
}

/// tokenizers 0.23 panics on some tokenizer.json files (found by tests/fuzz.rs):
/// JSON broken off inside the decoder, a malformed Precompiled normalizer, a
/// template naming a special token it does not define. Each is a message, or
/// (the template, which BERT's own post-processor replaces) simply works.
#[test]
fn tokenizer_json_files_that_panic_tokenizers_are_refused_or_repaired() {
    let files = |json: Vec<u8>| ModelFiles { tokenizer_json: Some(json), ..tiny_files() };
    let good = common::tiny_tokenizer_json();
    let text = serde_json::to_string(&good).unwrap();
    let cut = text.find("\"decoder\"").unwrap() + 30;
    let msg = load_error(&files(text.as_bytes()[..cut].to_vec()));
    assert!(msg.contains("tokenizer.json cannot be read"), "{msg}");

    let mut precompiled = good.clone();
    precompiled["normalizer"] =
        serde_json::json!({"type": "Sequence", "normalizers": [{"type": "Precompiled", "precompiled_charsmap": 5}]});
    let msg = load_error(&files(serde_json::to_vec(&precompiled).unwrap()));
    assert!(msg.contains("Precompiled"), "{msg}");

    let mut template = good.clone();
    template["post_processor"]["special_tokens"].as_object_mut().unwrap().remove("[SEP]");
    let model = Model::from_files(&files(serde_json::to_vec(&template).unwrap())).unwrap();
    let batch = model.tokenizer.encode_batch(&[Input::Pair("the cat".into(), "sat".into())]).unwrap();
    let reference =
        Model::from_files(&tiny_files()).unwrap().tokenizer.encode_batch(&[Input::Pair("the cat".into(), "sat".into())]).unwrap();
    assert_eq!(batch, reference, "BERT's [CLS] A [SEP] B [SEP], as vocab.txt gives it");
}
