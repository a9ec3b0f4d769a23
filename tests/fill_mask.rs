//! The masked word on both paths against transformers' fill-mask pipeline
//! (tests/reference/make_mlm_fixture.py: a tiny BertForMaskedLM saved by
//! save_pretrained, its decoder tied to the word embeddings), and what a
//! user gets for bad input.

mod common;

use bertlab::mlm::{fill_mask, top_k, MaskFill, Sees};
use bertlab::{BackendChoice, Engine, Model, ModelFiles};
use common::{fixtures, read_json, serialize};
use serde_json::Value;

fn mlm_files() -> ModelFiles {
    let read = |n: &str| std::fs::read(fixtures().join("tiny-mlm").join(n)).ok();
    ModelFiles {
        name: "tiny-mlm".into(),
        config_json: read("config.json"),
        model_safetensors: read("model.safetensors"),
        tokenizer_json: None,
        vocab_txt: read("vocab.txt"),
        tokenizer_config_json: read("tokenizer_config.json"),
    }
}

fn engine(files: &ModelFiles, backend: BackendChoice) -> Engine {
    pollster::block_on(Engine::new(Model::from_files(files).unwrap(), backend)).unwrap()
}

/// Our top 5 against the fixture's: the same tokens in the same order, scores within 1e-5.
fn check(what: &str, got: &MaskFill, want: &[Value], with_text: bool) {
    assert_eq!(got.predictions.len(), want.len(), "{what}");
    for (g, w) in got.predictions.iter().zip(want) {
        assert_eq!(g.token, w["token"].as_u64().unwrap() as u32, "{what}: {got:?}");
        let score = w["score"].as_f64().unwrap() as f32;
        assert!((g.score - score).abs() <= 1e-5, "{what}: score {} vs {score}", g.score);
        if with_text {
            assert_eq!(g.token_str, w["token_str"].as_str().unwrap(), "{what}");
            assert_eq!(g.sequence, w["sequence"].as_str().unwrap(), "{what}");
        }
    }
}

#[test]
fn fill_mask_equals_the_pipeline_on_both_paths_and_each_side_equals_a_restricted_attention_mask() {
    let fixture = read_json(&fixtures().join("tiny-mlm/cases.json"));
    let files = mlm_files();
    let model = Model::from_files(&files).unwrap();
    assert!(model.mlm.as_ref().unwrap().tied, "save_pretrained writes no decoder.weight: the head reads the word embeddings");
    for backend in [BackendChoice::Cpu, BackendChoice::Gpu] {
        let mut e = engine(&files, backend);
        for case in fixture["cases"].as_array().unwrap() {
            let text = case["text"].as_str().unwrap();
            let masks = pollster::block_on(fill_mask(&mut e, text, 5, Sees::Both)).unwrap();
            let want = case["masks"].as_array().unwrap();
            assert_eq!(masks.len(), want.len(), "{text}");
            for (m, w) in masks.iter().zip(want) {
                assert_eq!(m.position, w["position"].as_u64().unwrap() as usize, "{text}");
                check(&format!("{backend:?} {text}"), m, w["predictions"].as_array().unwrap(), true);
            }
            for (sees, key) in [(Sees::Left, "left"), (Sees::Right, "right")] {
                let first = &pollster::block_on(fill_mask(&mut e, text, 5, sees)).unwrap()[0];
                check(&format!("{backend:?} {text} {key}"), first, case[key].as_array().unwrap(), false);
            }
        }
    }
}

#[test]
fn top_k_is_a_softmax_ordered_best_first_with_ties_by_id() {
    let got = top_k(&[0.0, 2.0, 1.0, 2.0], 3);
    let z = 1.0 + 2.0 * 2f32.exp() + 1f32.exp();
    assert_eq!(got.iter().map(|p| p.0).collect::<Vec<_>>(), vec![1, 3, 2]);
    assert!((got[0].1 - 2f32.exp() / z).abs() < 1e-6 && (got[2].1 - 1f32.exp() / z).abs() < 1e-6);
}

#[test]
fn bad_input_is_one_line_naming_what_is_wrong() {
    let files = mlm_files();
    let mut e = engine(&files, BackendChoice::Cpu);
    let err = |e: &mut Engine, text: &str, k: usize| pollster::block_on(fill_mask(e, text, k, Sees::Both)).unwrap_err().to_string();
    assert!(err(&mut e, "no mask here", 5).contains("type [MASK]"));
    assert!(err(&mut e, "a [MASK]", 0).contains("top-k 0"));
    // past the model's 40 positions (the mask would be cut off)
    let long = format!("{} [MASK]", "word ".repeat(60));
    assert!(err(&mut e, &long, 5).contains("longer than the model's 40 positions"));
    // a model without the head says so, naming the model
    let mut plain = engine(&common::tiny_files(), BackendChoice::Cpu);
    let no_head = err(&mut plain, "a [MASK]", 5);
    assert!(no_head.contains("tiny-bert has no masked-word head"), "{no_head}");
    // a head whose shape disagrees with config.json names its tensor
    let mut bad = files.clone();
    let st = safetensors::SafeTensors::deserialize(files.model_safetensors.as_ref().unwrap()).unwrap();
    let tensors: Vec<(String, Vec<usize>, Vec<f32>)> = st
        .tensors()
        .into_iter()
        .map(|(name, t)| {
            let v: Vec<f32> = t.data().chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect();
            if name == "cls.predictions.bias" {
                (name, vec![7], v[..7].to_vec())
            } else {
                (name, t.shape().to_vec(), v)
            }
        })
        .collect();
    bad.model_safetensors = Some(serialize(&tensors, safetensors::Dtype::F32));
    let e = Model::from_files(&bad).err().unwrap().to_string();
    assert!(e.contains("cls.predictions.bias") && !e.contains('\n'), "{e}");
    // a vocabulary without [MASK]
    let mut no_mask = files.clone();
    no_mask.vocab_txt = Some(String::from_utf8(files.vocab_txt.clone().unwrap()).unwrap().replace("[MASK]", "[MASQUE]").into_bytes());
    let mut e = engine(&no_mask, BackendChoice::Cpu);
    assert!(err(&mut e, "a [MASK]", 5).contains("no [MASK] token"));
}
