//! End to end against PyTorch + transformers (tests/reference/make_fixtures.py):
//! token ids equal, last_hidden_state / pooler_output / attentions within
//! 1e-4, on the GPU path and on the CPU path.

mod common;

use bertlab::cpu_encoder::forward_cpu;
use bertlab::{AttentionRequest, BackendChoice, EmbedOptions, Engine, Input, Keep, Model, Outputs, Pooling};
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
    let what = format!("{name} on {}", engine.backend());
    let attentions = if case.get("attentions").is_some() { AttentionRequest::All } else { AttentionRequest::None };
    let (batch, out) = pollster::block_on(engine.embed(&inputs_of(case), EmbedOptions { attentions, ..Default::default() })).unwrap();
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
    let mean: Vec<f32> =
        (0..out.batch).flat_map(|b| out.sentence_embedding(b, &batch.attention_mask, Pooling::Mean, false).unwrap()).collect();
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
        let (batch, out): (_, Outputs) = pollster::block_on(engine.embed(&inputs, EmbedOptions::default())).unwrap();
        for (b, name) in names.iter().enumerate() {
            let case = &cases[name];
            let n = batch.len_of(b);
            assert_eq!(n, case["shape"][1].as_u64().unwrap() as usize);
            let got: Vec<f32> = (0..n).flat_map(|t| out.token(b, t).to_vec()).collect();
            let what = format!("{name} in a padded batch on {}", engine.backend());
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

/// The explorer asks for one row's attentions: they equal that row's slice
/// of every row's, on both paths, and no other row's are kept.
#[test]
fn attentions_of_one_row_equal_that_rows_slice_of_all() {
    let cases = read_json(&fixtures().join("tiny-bert.json"));
    let inputs = inputs_of(&cases["padded_batch"]);
    for backend in [BackendChoice::Cpu, BackendChoice::Gpu] {
        let mut engine = engine(&tiny_dir(), backend);
        let all = EmbedOptions { attentions: AttentionRequest::All, ..Default::default() };
        let (_, full) = pollster::block_on(engine.embed(&inputs, all)).unwrap();
        let row = inputs.len() - 1;
        let one = EmbedOptions { attentions: AttentionRequest::Row(row), ..Default::default() };
        let (_, single) = pollster::block_on(engine.embed(&inputs, one)).unwrap();
        let a = single.attentions.as_ref().unwrap();
        assert_eq!(a.rows, row..row + 1);
        assert_eq!(a.probs.len(), a.layers * a.heads * full.seq * full.seq);
        for l in 0..a.layers {
            for h in 0..a.heads {
                assert_eq!(single.attention(row, l, h), full.attention(row, l, h), "{} layer {l} head {h}", engine.backend());
            }
        }
        assert!(single.attention(0, 0, 0).is_none());
        assert_eq!(single.last_hidden_state, full.last_hidden_state);
        let e = pollster::block_on(engine.embed(&inputs, EmbedOptions { attentions: AttentionRequest::Row(99), ..Default::default() }));
        assert!(e.err().unwrap().to_string().contains("row 99"));
    }
}

/// `max_len` is a per-call option: a truncated call leaves the next one whole.
#[test]
fn max_length_applies_to_one_call_only() {
    let mut engine = engine(&tiny_dir(), BackendChoice::Cpu);
    let text = [Input::from("the time of day and the place where we are now")];
    let short = EmbedOptions { max_len: Some(6), ..Default::default() };
    let (b, _) = pollster::block_on(engine.embed(&text, short)).unwrap();
    assert_eq!((b.seq_len, b.truncated[0]), (6, true));
    // a failing call in between (an empty text) changes nothing either
    assert!(pollster::block_on(engine.embed(&[Input::from(" ")], short)).is_err());
    let (b, _) = pollster::block_on(engine.embed(&text, EmbedOptions::default())).unwrap();
    assert!(b.seq_len > 6 && !b.truncated[0]);
    let e = pollster::block_on(engine.embed(&text, EmbedOptions { max_len: Some(2), ..Default::default() })).err().unwrap();
    assert!(e.to_string().contains("too short"), "{e}");
}

/// Where tokenization makes choices, it makes transformers' (tests/fixtures/tokenization.json).
#[test]
fn casing_and_pair_truncation_follow_transformers() {
    let cases = read_json(&fixtures().join("tokenization.json"));
    // vocab.txt with do_lower_case: false keeps the case (so "Hello" is not "hello")
    let read = |n: &str| std::fs::read(tiny_dir().join(n)).ok();
    let files = bertlab::ModelFiles {
        name: "tiny cased".into(),
        config_json: read("config.json"),
        model_safetensors: read("model.safetensors"),
        vocab_txt: read("vocab.txt"),
        tokenizer_config_json: Some(br#"{"do_lower_case": false}"#.to_vec()),
        tokenizer_json: None,
    };
    let cased = Model::from_files(&files).unwrap();
    let c = &cases["cased"];
    let b = cased.tokenizer.encode_batch(&[Input::Single(c["text"].as_str().unwrap().into())]).unwrap();
    let want: Vec<u32> = c["input_ids"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
    assert_eq!(b.input_ids, want);
    let lowered =
        Model::from_dir(&tiny_dir()).unwrap().tokenizer.encode_batch(&[Input::Single(c["text"].as_str().unwrap().into())]).unwrap();
    assert_ne!(lowered.input_ids, want, "the cased text must tokenize differently when lowercased");
    // pairs cut longest-first to max_length, as the model's own tokenizer.json does in transformers
    let model = Model::from_dir(&minilm_dir()).unwrap();
    for case in cases["pairs_longest_first"].as_array().unwrap() {
        let (a, b) = (case["a"].as_str().unwrap(), case["b"].as_str().unwrap());
        let max = case["max_length"].as_u64().unwrap() as usize;
        let batch = model.tokenizer.encode_batch_to(&[Input::Pair(a.into(), b.into())], max).unwrap();
        let ids = |k: &str| -> Vec<u32> { case[k].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect() };
        assert_eq!(batch.input_ids, ids("input_ids"), "{a:?} / {b:?} at {max}");
        assert_eq!(batch.token_type_ids, ids("token_type_ids"), "{a:?} / {b:?} at {max}");
        assert_eq!(batch.truncated[0], batch.seq_len == max, "{a:?} / {b:?} at {max}");
    }
}

/// The head `bertlab finetune` exported (tests/fixtures/tiny-head), merged into
/// tiny-bert as README.md says, gives the same logits in transformers'
/// `BertForSequenceClassification` as here.
#[test]
fn an_exported_head_gives_transformers_logits() {
    use bertlab::finetune::features::extract_features;
    use bertlab::finetune::head_io::TrainedHead;
    use bertlab::glue::Example;
    use bertlab::kernels::matmul::{linear_cpu, Epilogue};
    let r = read_json(&fixtures().join("tiny-head/logits.json"));
    let head = TrainedHead::import(&std::fs::read(fixtures().join("tiny-head/head.safetensors")).unwrap()).unwrap();
    let mut engine = engine(&tiny_dir(), BackendChoice::Cpu);
    head.check_model(engine.identity()).unwrap();
    let examples: Vec<Example> = r["sentence1"]
        .as_array()
        .unwrap()
        .iter()
        .zip(r["sentence2"].as_array().unwrap())
        .map(|(a, b)| Example { label: 0, sentence1: a.as_str().unwrap().into(), sentence2: b.as_str().unwrap().into() })
        .collect();
    let x = pollster::block_on(extract_features(&mut engine, &examples, head.spec.input, 128, 8, &mut |_, _| {})).unwrap();
    let l = &head.params.layers[0];
    let logits = linear_cpu(&x, &l.weight, &l.bias, examples.len(), l.out, l.inp, Epilogue::None);
    assert_close("logits vs BertForSequenceClassification", &logits, &f32s(&r["logits"]), TOL);
    assert_eq!(r["id2label"]["1"], "equivalent");
}

#[test]
fn every_layers_hidden_states_equal_pytorch_on_both_paths_and_the_reference() {
    // tests/reference/make_hidden_states_fixture.py: output_hidden_states=True on a padded batch with a pair
    let f = read_json(&fixtures().join("tiny-hidden-states.json"));
    let inputs: Vec<Input> = f["texts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| match t.as_array().unwrap().as_slice() {
            [a] => Input::Single(a.as_str().unwrap().into()),
            [a, b] => Input::Pair(a.as_str().unwrap().into(), b.as_str().unwrap().into()),
            other => panic!("{other:?}"),
        })
        .collect();
    let want: Vec<Vec<f32>> = f["hidden_states"].as_array().unwrap().iter().map(f32s).collect();
    let keep = Keep { attentions: AttentionRequest::None, hidden_states: true };
    let model = Model::from_dir(&tiny_dir()).unwrap();
    let batch = model.tokenizer.encode_batch(&inputs).unwrap();
    assert_eq!(batch.input_ids, f["input_ids"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect::<Vec<_>>());
    let reference = forward_cpu(&model.weights, &batch, keep);
    for backend in [BackendChoice::Cpu, BackendChoice::Gpu] {
        let mut e = engine(&tiny_dir(), backend);
        let out = pollster::block_on(e.forward(&batch, keep)).unwrap();
        let states = out.hidden_states.as_ref().expect("hidden states were asked for");
        assert_eq!(states.len(), want.len(), "the embeddings' output, then each layer's");
        for (l, (got, want)) in states.iter().zip(&want).enumerate() {
            assert_close(&format!("{backend:?} hidden_states[{l}]"), got, want, TOL);
            assert_close(&format!("{backend:?} vs the reference, layer {l}"), got, &reference.hidden_states.as_ref().unwrap()[l], TOL);
        }
        assert_eq!(states.last().unwrap(), &out.last_hidden_state, "the last is last_hidden_state");
        // not asked: not kept
        assert!(pollster::block_on(e.forward(&batch, AttentionRequest::None)).unwrap().hidden_states.is_none());
    }
    // rows run in parts and joined keep every layer's rows in order
    let parts = vec![forward_cpu(&model.weights, &batch.rows(0..1), keep), forward_cpu(&model.weights, &batch.rows(1..4), keep)];
    let joined = Outputs::concat(parts).unwrap();
    for (l, got) in joined.hidden_states.unwrap().iter().enumerate() {
        assert_close(&format!("joined layer {l}"), got, &reference.hidden_states.as_ref().unwrap()[l], TOL);
    }
}

#[test]
fn a_word_in_context_follows_its_vectors_through_every_layer() {
    use bertlab::analysis::{word_in_context, TokenAt};
    // "bank" twice (a river's, a lender's), "the" four times
    let texts = ["the bank raised its rates", "we sat on the river bank", "the the"];
    let model = Model::from_dir(&tiny_dir()).unwrap();
    let inputs: Vec<Input> = texts.iter().map(|t| Input::Single(t.to_string())).collect();
    let batch = model.tokenizer.encode_batch(&inputs).unwrap();
    let out = forward_cpu(&model.weights, &batch, Keep { attentions: AttentionRequest::None, hidden_states: true });
    let states = out.hidden_states.as_ref().unwrap();
    let (s, h) = (batch.seq_len, out.hidden);
    let the = TokenAt { sentence: 0, token: 1 };
    assert_eq!(batch.tokens[0][1], "the");
    let w = word_in_context(states, s, h, &batch.tokens, the, 2, 5).unwrap();
    assert_eq!(w.word, "the");
    let others: Vec<TokenAt> = w.occurrences.iter().map(|o| o.0).collect();
    let want: Vec<TokenAt> = (0..texts.len())
        .flat_map(|b| batch.tokens[b].iter().enumerate().filter(|(_, t)| *t == "the").map(move |(t, _)| TokenAt { sentence: b, token: t }))
        .filter(|&at| at != the)
        .collect();
    assert_eq!(others, want, "every other \"the\", in order");
    // each similarity is the cosine of the two rows at that layer
    let row = |l: usize, at: TokenAt| &states[l][(at.sentence * s + at.token) * h..][..h];
    for (at, sims) in &w.occurrences {
        assert_eq!(sims.len(), states.len());
        for (l, &sim) in sims.iter().enumerate() {
            let (a, b) = (row(l, the), row(l, *at));
            let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
            let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
            assert!((sim - dot / (norm(a) * norm(b))).abs() < 1e-5);
        }
    }
    // the nearest at layer 2: five, best first, no special token, not itself
    assert_eq!(w.nearest.len(), 5);
    assert!(w.nearest.windows(2).all(|p| p[0].2 >= p[1].2));
    assert!(w.nearest.iter().all(|(at, t, _)| *at != the && !t.starts_with('[')));
    // out of range: nothing, not a panic
    assert!(word_in_context(states, s, h, &batch.tokens, TokenAt { sentence: 9, token: 0 }, 2, 5).is_none());
    assert!(word_in_context(states, s, h, &batch.tokens, the, 3, 5).is_none());
}
