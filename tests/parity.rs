//! End to end against PyTorch + transformers (tests/reference/make_fixtures.py):
//! token ids equal, last_hidden_state / pooler_output / attentions within
//! 1e-4, on the GPU path and on the CPU path.

mod common;

use bertlab::{BackendChoice, Engine, Input, Model, Outputs, Pooling};
use common::{assert_close, f32s, fixtures, minilm_dir, read_json, tiny_dir, u32s_2d};
use serde_json::Value;

const TOL: f32 = 1e-4;

fn engine(dir: &std::path::Path, backend: BackendChoice) -> Engine {
    let model = Model::from_dir(dir).unwrap();
    pollster::block_on(Engine::new(model, backend)).unwrap()
}

fn inputs_of(case: &Value) -> Vec<Input> {
    let texts = case["texts"].as_array().unwrap().iter().map(|t| t.as_str().unwrap().to_string());
    match case.get("pairs") {
        Some(p) => texts.zip(p.as_array().unwrap()).map(|(a, b)| Input::Pair(a, b.as_str().unwrap().into())).collect(),
        None => texts.map(Input::Single).collect(),
    }
}

/// Tokenizes and runs one fixture case; checks ids and every stored output.
fn check_case(engine: &mut Engine, name: &str, case: &Value) {
    let what = format!("{name} on {}", engine.backend_description);
    let (batch, out) = pollster::block_on(engine.embed(&inputs_of(case), case.get("attentions").is_some())).unwrap();
    assert_eq!(batch.input_ids, u32s_2d(&case["input_ids"]), "{what}: input_ids");
    assert_eq!(batch.token_type_ids, u32s_2d(&case["token_type_ids"]), "{what}: token_type_ids");
    assert_eq!(batch.attention_mask, u32s_2d(&case["attention_mask"]), "{what}: attention_mask");
    if let Some(tokens) = case.get("tokens") {
        let want: Vec<String> = tokens.as_array().unwrap().iter().map(|t| t.as_str().unwrap().into()).collect();
        assert_eq!(batch.tokens[0], want, "{what}: tokens");
    }
    let shape: Vec<usize> = case["shape"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as usize).collect();
    assert_eq!([out.batch, out.seq, out.hidden], [shape[0], shape[1], shape[2]], "{what}: shape");
    if let Some(full) = case.get("last_hidden_state") {
        assert_close(&format!("{what}: last_hidden_state"), &out.last_hidden_state, &f32s(full), TOL);
    } else {
        let rows: Vec<usize> = case["rows"].as_array().unwrap().iter().map(|r| r.as_u64().unwrap() as usize).collect();
        let out = &out;
        let got: Vec<f32> = (0..out.batch).flat_map(|b| rows.iter().flat_map(move |&t| out.token(b, t).to_vec())).collect();
        assert_close(&format!("{what}: last_hidden_state rows"), &got, &f32s(&case["last_hidden_state_rows"]), TOL);
    }
    assert_close(&format!("{what}: pooler_output"), out.pooler_output.as_ref().unwrap(), &f32s(&case["pooler_output"]), TOL);
    let mean: Vec<f32> = (0..out.batch)
        .flat_map(|b| out.sentence_embedding(b, &batch.attention_mask, Pooling::Mean, false).unwrap())
        .collect();
    assert_close(&format!("{what}: mean-pooled"), &mean, &f32s(&case["mean_pooled"]), TOL);
    if let Some(att) = case.get("attentions") {
        assert_close(&format!("{what}: attentions"), &out.attentions.as_ref().unwrap().probs, &f32s(att), TOL);
    }
}

fn check_all(dir: &std::path::Path, fixture: &str, backend: BackendChoice) {
    let mut engine = engine(dir, backend);
    let cases = read_json(&fixtures().join(fixture));
    for (name, case) in cases.as_object().unwrap() {
        check_case(&mut engine, name, case);
    }
}

#[test]
fn tiny_bert_matches_pytorch_on_cpu() {
    check_all(&tiny_dir(), "tiny-bert.json", BackendChoice::Cpu);
}

#[test]
fn tiny_bert_matches_pytorch_on_gpu() {
    check_all(&tiny_dir(), "tiny-bert.json", BackendChoice::Gpu);
}

#[test]
fn default_model_matches_pytorch_on_cpu() {
    check_all(&minilm_dir(), "minilm.json", BackendChoice::Cpu);
}

#[test]
fn default_model_matches_pytorch_on_gpu() {
    check_all(&minilm_dir(), "minilm.json", BackendChoice::Gpu);
}

/// A padded batch gives each row what it gets alone (PyTorch's outputs
/// for it alone), on both paths: the padding mask works.
#[test]
fn padded_batch_of_the_default_model_matches_single_sentences() {
    let cases = read_json(&fixtures().join("minilm.json"));
    // sentences of different lengths and a pair, in one batch
    let names = ["hello", "accents", "emoji", "pair"];
    let inputs: Vec<Input> = names.iter().map(|n| inputs_of(&cases[n]).remove(0)).collect();
    for backend in [BackendChoice::Cpu, BackendChoice::Gpu] {
        let mut engine = engine(&minilm_dir(), backend);
        let (batch, out): (_, Outputs) = pollster::block_on(engine.embed(&inputs, false)).unwrap();
        for (b, name) in names.iter().enumerate() {
            let case = &cases[name];
            let n = batch.len_of(b);
            assert_eq!(n, case["shape"][1].as_u64().unwrap() as usize);
            let got: Vec<f32> = (0..n).flat_map(|t| out.token(b, t).to_vec()).collect();
            let what = format!("{name} in a padded batch on {}", engine.backend_description);
            assert_close(&what, &got, &f32s(&case["last_hidden_state"]), TOL);
            assert_close(&what, &out.pooler_output.as_ref().unwrap()[b * 384..][..384], &f32s(&case["pooler_output"]), TOL);
        }
    }
}

#[test]
fn long_text_is_truncated_to_the_models_positions_and_says_so() {
    let cases = read_json(&fixtures().join("minilm.json"));
    let model = Model::from_dir(&minilm_dir()).unwrap();
    let batch = model.tokenizer.encode_batch(&inputs_of(&cases["long"])).unwrap();
    assert_eq!(batch.seq_len, 512);
    assert!(batch.truncated[0]);
    let short = model.tokenizer.encode_batch(&inputs_of(&cases["hello"])).unwrap();
    assert!(!short.truncated[0]);
    // the tokenizer.json's own fixed padding to 128 is not applied
    assert_eq!(short.seq_len, 8);
}
