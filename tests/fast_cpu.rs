//! The fast CPU backend against the plain CPU reference, piece by piece and
//! whole, on odd shapes (one row, sizes that are not multiples of 4 or of any
//! kernel tile, sequence length 1, padding masks). Natively, and as wasm with
//! `simd128` (the page's CPU path) under Node: `.ci/test` runs
//! `cargo test --target wasm32-unknown-unknown --test fast_cpu` with
//! wasm-bindgen-test-runner.

mod common;

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use bertlab::cpu_encoder::forward_cpu;
use bertlab::fast_cpu::{attention_fast, layernorm_fast, FastCpuEncoder, PackedLinear};
use bertlab::kernels::attention::{attention_cpu, AttentionShape};
use bertlab::kernels::layernorm::layernorm_cpu;
use bertlab::kernels::matmul::{linear_cpu, Epilogue};
use bertlab::weights::{LayerNorm, Linear};
use bertlab::{AttentionRequest, Input, Model, ModelFiles};
use common::{assert_close, values};

#[test]
fn packed_linear_matches_the_reference_on_odd_shapes_and_every_epilogue() {
    let shapes = [(1, 1, 1), (3, 5, 7), (1, 1152, 384), (65, 67, 33), (17, 300, 129), (130, 77, 200), (64, 64, 16), (2, 3, 1537)];
    let epilogues = [Epilogue::None, Epilogue::Gelu, Epilogue::GeluTanh, Epilogue::Relu, Epilogue::Tanh];
    for (i, &(m, n, k)) in shapes.iter().enumerate() {
        for (j, &act) in epilogues.iter().enumerate() {
            let seed = (i * 10 + j) as u32;
            let lin = Linear { weight: values(n * k, seed + 100, 0.5), bias: values(n, seed + 200, 0.5), in_dim: k, out_dim: n };
            let x = values(m * k, seed, 1.0);
            let want = linear_cpu(&x, &lin.weight, &lin.bias, m, n, k, act);
            let got = PackedLinear::new(&lin, act).forward(&x, m);
            assert_close(&format!("linear {m}×{n}×{k} {act:?}"), &got, &want, 2e-6 * (k as f32).sqrt().max(4.0));
        }
    }
}

#[test]
fn the_activations_match_the_reference_closely() {
    // 1-wide products leave only the epilogue: it must tell GELU from GELU-tanh
    let n = 2001;
    let x: Vec<f32> = (0..n).map(|i| -8.0 + 16.0 * i as f32 / (n - 1) as f32).collect();
    let one = Linear { weight: vec![1.0], bias: vec![0.0], in_dim: 1, out_dim: 1 };
    for act in [Epilogue::Gelu, Epilogue::GeluTanh, Epilogue::Tanh, Epilogue::Relu] {
        let got = PackedLinear::new(&one, act).forward(&x, n);
        let want: Vec<f32> = x.iter().map(|&v| act.apply(v)).collect();
        assert_close(&format!("{act:?}"), &got, &want, 2e-6);
    }
}

#[test]
fn layernorm_matches_the_reference() {
    for (i, &(rows, h)) in [(1, 1), (7, 5), (3, 33), (5, 300), (2, 1000), (300, 3)].iter().enumerate() {
        for residual in [false, true] {
            let seed = i as u32 * 2 + residual as u32;
            let offset = if h > 3 { 30.0 } else { 0.0 };
            let x: Vec<f32> = values(rows * h, seed, 2.0).iter().map(|v| v + offset).collect();
            let r = values(rows * h, seed + 50, 1.0);
            let norm = LayerNorm { gamma: values(h, seed + 60, 1.0), beta: values(h, seed + 70, 1.0) };
            let want = layernorm_cpu(&x, residual.then_some(&r[..]), &norm, h, 1e-12);
            let mut got = x.clone();
            layernorm_fast(&mut got, residual.then_some(&r[..]), &norm, h, 1e-12);
            assert_close(&format!("layernorm {rows}×{h} residual={residual}"), &got, &want, 1e-5);
        }
    }
}

#[test]
fn attention_matches_the_reference_with_padding_and_keeps_only_the_rows_asked() {
    // (batch, seq, heads, head_dim, real tokens per row)
    let cases: [(usize, usize, usize, usize, &[usize]); 5] =
        [(1, 1, 1, 1, &[1]), (2, 7, 3, 5, &[7, 4]), (3, 9, 2, 64, &[1, 9, 5]), (1, 200, 2, 17, &[131]), (2, 130, 12, 32, &[130, 3])];
    for (i, &(batch, seq, heads, head_dim, lens)) in cases.iter().enumerate() {
        let s = AttentionShape { batch, seq, heads, head_dim };
        let qkv = values(batch * seq * 3 * s.hidden(), i as u32, 2.0);
        let mask: Vec<u32> = (0..batch * seq).map(|t| ((t % seq) < lens[t / seq]) as u32).collect();
        let (want_ctx, want_probs) = attention_cpu(&qkv, &mask, s);
        let what = format!("attention b{batch} s{seq} h{heads} d{head_dim}");
        assert_close(&format!("{what} context"), &attention_fast(&qkv, &mask, s, None), &want_ctx, 1e-5);
        // the last row's probabilities, as layer 1 of 2
        let row = batch - 1;
        let per = heads * seq * seq;
        let mut probs = vec![-1.0f32; 2 * per];
        let ctx = attention_fast(&qkv, &mask, s, Some((&mut probs, row..row + 1, 1, 2)));
        assert_close(&format!("{what} context with probabilities"), &ctx, &want_ctx, 1e-5);
        assert!(probs[..per].iter().all(|&v| v == -1.0), "{what}: layer 0's slot was written");
        assert_close(&format!("{what} probabilities"), &probs[per..], &want_probs[row * per..][..per], 1e-6);
    }
}

#[test]
fn the_whole_forward_matches_the_reference() {
    // the tiny model's files built in, so the wasm build (no file system) runs it too
    let files = ModelFiles {
        name: "tiny-bert".into(),
        config_json: Some(include_bytes!("fixtures/tiny-bert/config.json").to_vec()),
        model_safetensors: Some(include_bytes!("fixtures/tiny-bert/model.safetensors").to_vec()),
        vocab_txt: Some(include_bytes!("fixtures/tiny-bert/vocab.txt").to_vec()),
        tokenizer_config_json: Some(include_bytes!("fixtures/tiny-bert/tokenizer_config.json").to_vec()),
        ..Default::default()
    };
    let model = Model::from_files(&files).unwrap();
    let fast = FastCpuEncoder::new(&model.weights);
    let texts = ["Hello, how are you?", "Hi", "The quick brown fox jumps over the lazy dog, twice over."];
    let mut inputs: Vec<Input> = texts.iter().map(|&t| Input::from(t)).collect();
    inputs.push(Input::Pair("A cat sat.".into(), "It sat on the mat.".into()));
    let batch = model.tokenizer.encode_batch(&inputs).unwrap();
    for request in [AttentionRequest::None, AttentionRequest::All, AttentionRequest::Row(1)] {
        let want = forward_cpu(&model.weights, &batch, request);
        let got = fast.forward(&batch, request);
        assert_close(&format!("last_hidden_state {request:?}"), &got.last_hidden_state, &want.last_hidden_state, 1e-5);
        assert_close("pooler_output", got.pooler_output.as_ref().unwrap(), want.pooler_output.as_ref().unwrap(), 1e-5);
        match (&got.attentions, &want.attentions) {
            (Some(g), Some(w)) => {
                assert_eq!(g.rows, w.rows);
                assert_close("attentions", &g.probs, &w.probs, 1e-6);
            }
            (None, None) => {}
            _ => panic!("{request:?}: attentions kept on one side only"),
        }
    }
}
