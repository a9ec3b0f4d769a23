//! Attributions against PyTorch autograd (tests/reference/make_explain_fixture.py):
//! grad × input and integrated gradients of a tiny 3-label classifier saved by
//! save_pretrained, single sentences and a pair.

mod common;

use bertlab::classifier::export::read_head_config;
use bertlab::classifier::ClassifierParams;
use bertlab::explain::{explain, Method};
use bertlab::{Input, Model};
use common::{f32s, fixtures, read_json};

fn model() -> (ClassifierParams, bertlab::classifier::Labels, Model) {
    let dir = fixtures().join("tiny-explain");
    let (kind, labels) = read_head_config(&std::fs::read(dir.join("config.json")).unwrap()).unwrap();
    let model = Model::from_dir(&dir).unwrap();
    let params =
        ClassifierParams::from_checkpoint(model.weights.clone(), kind, &std::fs::read(dir.join("model.safetensors")).unwrap()).unwrap();
    (params, labels, model)
}

/// Within 1e-3 of the largest |attribution| (the measure).
fn assert_relative(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}");
    let scale = want.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1e-12);
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= 1e-3 * scale, "{what}[{i}]: {g} vs {w} (largest {scale})");
    }
}

#[test]
fn attributions_equal_pytorch_autograd_and_integrated_gradients_are_complete() {
    let (params, labels, model) = model();
    for case in read_json(&fixtures().join("tiny-explain/cases.json"))["cases"].as_array().unwrap() {
        let texts: Vec<String> = case["texts"].as_array().unwrap().iter().map(|t| t.as_str().unwrap().to_string()).collect();
        let input = match texts.as_slice() {
            [a] => Input::Single(a.clone()),
            [a, b] => Input::Pair(a.clone(), b.clone()),
            other => panic!("{other:?}"),
        };
        let what = texts.join(" / ");
        let g = explain(&params, &labels, &model.tokenizer, &input, Method::GradXInput, None).unwrap();
        let tokens: Vec<String> = case["tokens"].as_array().unwrap().iter().map(|t| t.as_str().unwrap().to_string()).collect();
        assert_eq!(g.tokens, tokens, "{what}");
        common::assert_close(&format!("{what} logits"), &g.logits, &f32s(&case["logits"]), 1e-4);
        assert_eq!(g.target, case["target"].as_u64().unwrap() as usize, "{what}: the predicted class");
        assert_eq!(g.label, labels.names()[g.target]);
        assert_relative(&format!("{what} grad × input"), &g.attributions, &f32s(&case["grad_x_input"]));
        let steps = case["steps"].as_u64().unwrap() as usize;
        let ig = explain(&params, &labels, &model.tokenizer, &input, Method::IntegratedGradients { steps }, None).unwrap();
        assert_relative(&format!("{what} integrated gradients"), &ig.attributions, &f32s(&case["integrated_gradients"]));
        let gap = ig.f_x_minus_f_baseline.unwrap();
        assert!((gap - case["f_x_minus_f_baseline"].as_f64().unwrap() as f32).abs() < 1e-4, "{what}: f(x) - f(0) = {gap}");
        // completeness: the attributions add up to f(x) − f(baseline), to the Riemann sum's error
        let sum: f32 = ig.attributions.iter().sum();
        assert!((sum - gap).abs() <= 0.02 * gap.abs().max(0.5), "{what}: Σ {sum} vs {gap}");
    }
}

#[test]
fn a_chosen_class_is_explained_and_bad_requests_are_one_line() {
    let (params, labels, model) = model();
    let input = Input::Single("the cat sat on the mat .".into());
    let e = explain(&params, &labels, &model.tokenizer, &input, Method::GradXInput, Some(1)).unwrap();
    assert_eq!((e.target, e.label.as_str()), (1, "neutral"));
    let err = |m: Method, t: Option<usize>| explain(&params, &labels, &model.tokenizer, &input, m, t).unwrap_err().to_string();
    assert!(err(Method::GradXInput, Some(3)).contains("target class 3: the classifier has 3 classes"));
    assert!(err(Method::IntegratedGradients { steps: 0 }, None).contains("0 integration steps"));
}
