//! Shared by the integration tests: the GPU, the fixtures, comparisons.
#![allow(dead_code)] // each test binary uses its own subset

use std::path::{Path, PathBuf};

#[cfg(not(target_arch = "wasm32"))]
use bertlab::gpu::GpuContext;
use serde_json::Value;

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn fixtures() -> PathBuf {
    root().join("tests/fixtures")
}

pub fn tiny_dir() -> PathBuf {
    fixtures().join("tiny-bert")
}

/// The default model, fetched by `.ci/setup`; its absence is a failure, not a skip.
pub fn minilm_dir() -> PathBuf {
    let dir = root().join("models/all-MiniLM-L6-v2");
    assert!(
        dir.join("model.safetensors").exists(),
        "the default model is missing: run `bash .ci/setup` (it fetches it into {})",
        dir.display()
    );
    dir
}

pub fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// A GPU context; without an adapter this fails (install Mesa's lavapipe: `.ci/setup`).
#[cfg(not(target_arch = "wasm32"))]
pub fn gpu() -> GpuContext {
    pollster::block_on(GpuContext::new())
        .unwrap_or_else(|e| panic!("{e}: GPU tests need an adapter; `bash .ci/setup` installs Mesa's lavapipe"))
}

pub fn f32s(v: &Value) -> Vec<f32> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect()
}

pub fn u32s_2d(v: &Value) -> Vec<u32> {
    v.as_array().unwrap().iter().flat_map(|r| r.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32)).collect()
}

pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "lengths differ");
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

#[track_caller]
pub fn assert_close(what: &str, got: &[f32], want: &[f32], tol: f32) {
    let err = max_abs_diff(got, want);
    assert!(err <= tol, "{what}: max abs error {err:e} > {tol:e}");
    assert!(got.iter().all(|v| v.is_finite()), "{what}: non-finite values");
}

/// Deterministic pseudo-random values in [-scale, scale].
pub fn values(n: usize, seed: u32, scale: f32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(2654435761).wrapping_add(12345);
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            (s as f32 / u32::MAX as f32 * 2.0 - 1.0) * scale
        })
        .collect()
}

/// The tiny model's files as the page and the CLI hand them over.
pub fn tiny_files() -> bertlab::ModelFiles {
    let read = |n: &str| std::fs::read(tiny_dir().join(n)).ok();
    bertlab::ModelFiles {
        name: "tiny-bert".into(),
        config_json: read("config.json"),
        model_safetensors: read("model.safetensors"),
        tokenizer_json: None,
        vocab_txt: read("vocab.txt"),
        tokenizer_config_json: read("tokenizer_config.json"),
    }
}

/// The tiny checkpoint's tensors as (name, dtype, shape, f32 values).
pub fn tiny_tensors() -> Vec<(String, Vec<usize>, Vec<f32>)> {
    let bytes = std::fs::read(tiny_dir().join("model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    st.tensors()
        .into_iter()
        .map(|(name, t)| {
            assert_eq!(t.dtype(), safetensors::Dtype::F32);
            let v = t.data().chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect();
            (name, t.shape().to_vec(), v)
        })
        .collect()
}

/// Re-serialises tensors under new names, in `dtype`.
pub fn serialize(tensors: &[(String, Vec<usize>, Vec<f32>)], dtype: safetensors::Dtype) -> Vec<u8> {
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .map(|(n, s, v)| {
            let b: Vec<u8> = match dtype {
                safetensors::Dtype::F32 => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
                safetensors::Dtype::F16 => v.iter().flat_map(|x| half::f16::from_f32(*x).to_le_bytes()).collect(),
                safetensors::Dtype::BF16 => v.iter().flat_map(|x| half::bf16::from_f32(*x).to_le_bytes()).collect(),
                _ => unreachable!(),
            };
            (n.clone(), s.clone(), b)
        })
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView)> =
        bytes.iter().map(|(n, s, b)| (n.clone(), safetensors::tensor::TensorView::new(dtype, s.clone(), b).unwrap())).collect();
    safetensors::serialize(views, None).unwrap()
}

/// A tokenizer.json for the tiny model's vocab.txt, laid out as transformers'
/// BertTokenizerFast saves one (all-MiniLM-L6-v2's, with this vocabulary).
pub fn tiny_tokenizer_json() -> Value {
    let vocab_txt = String::from_utf8(tiny_files().vocab_txt.unwrap()).unwrap();
    let vocab: serde_json::Map<String, Value> = vocab_txt.lines().enumerate().map(|(i, t)| (t.to_string(), i.into())).collect();
    let id = |t: &str| vocab[t].clone();
    let special = |t: &str| serde_json::json!({"id": id(t), "special": true, "content": t, "single_word": false, "lstrip": false, "rstrip": false, "normalized": false});
    let token = |t: &str, type_id: u32| serde_json::json!({"SpecialToken": {"id": t, "type_id": type_id}});
    let seq = |s: &str, type_id: u32| serde_json::json!({"Sequence": {"id": s, "type_id": type_id}});
    let added: Vec<Value> = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"].map(special).into();
    serde_json::json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": {"type": "BertNormalizer", "clean_text": true, "handle_chinese_chars": true, "strip_accents": null, "lowercase": true},
        "pre_tokenizer": {"type": "BertPreTokenizer"},
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [token("[CLS]", 0), seq("A", 0), token("[SEP]", 0)],
            "pair": [token("[CLS]", 0), seq("A", 0), token("[SEP]", 0), seq("B", 1), token("[SEP]", 1)],
            "special_tokens": {
                "[CLS]": {"id": "[CLS]", "ids": [id("[CLS]")], "tokens": ["[CLS]"]},
                "[SEP]": {"id": "[SEP]", "ids": [id("[SEP]")], "tokens": ["[SEP]"]}
            }
        },
        "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": true},
        "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##", "max_input_chars_per_word": 100, "vocab": vocab}
    })
}

/// A safetensors file with its header JSON passed through `edit` (shapes,
/// dtypes, offsets, `__metadata__`), padded to 8 bytes as safetensors writes it.
pub fn with_header(bytes: &[u8], edit: impl FnOnce(&mut Value)) -> Vec<u8> {
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let mut header: Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    edit(&mut header);
    let mut json = serde_json::to_vec(&header).unwrap();
    while !json.len().is_multiple_of(8) {
        json.push(b' ');
    }
    [&(json.len() as u64).to_le_bytes()[..], &json, &bytes[8 + n..]].concat()
}
