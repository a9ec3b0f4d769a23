//! What fine-tuning changed against PyTorch + numpy
//! (tests/reference/make_compare_fixture.py: tiny-bert, and tiny-bert
//! fine-tuned a few AdamW steps as a BertForSequenceClassification), on both
//! paths, and what a user gets for models that do not match.

mod common;

use bertlab::compare::compare;
use bertlab::task::{read_file, table::Format, Columns, Source};
use bertlab::{BackendChoice, Engine, Input, Model};
use common::{fixtures, read_json, tiny_dir};

fn engine(dir: &std::path::Path, backend: BackendChoice) -> Engine {
    pollster::block_on(Engine::new(Model::from_dir(dir).unwrap(), backend)).unwrap()
}

fn inputs() -> Vec<Input> {
    let text = std::fs::read_to_string(fixtures().join("tiny-compare/data.tsv")).unwrap();
    let (examples, _, _) = read_file(&Source::Table(Format::Tsv, Columns::default()), &text, "data").unwrap();
    examples.inputs()
}

#[test]
fn cka_per_layer_and_attention_moved_per_head_equal_numpys() {
    let want = read_json(&fixtures().join("tiny-compare/expected.json"));
    let inputs = inputs();
    assert_eq!(inputs.len(), want["examples"].as_u64().unwrap() as usize);
    for backend in [BackendChoice::Cpu, BackendChoice::Gpu] {
        let mut base = engine(&tiny_dir(), backend);
        let mut tuned = engine(&fixtures().join("tiny-compare/tuned"), backend);
        let c = pollster::block_on(compare(&mut base, &mut tuned, &inputs, None)).unwrap();
        let what = base.backend().to_string();
        assert_eq!(c.examples, inputs.len());
        let layers = want["layers"].as_array().unwrap();
        assert_eq!(c.layers.len(), layers.len(), "{what}");
        for (got, w) in c.layers.iter().zip(layers) {
            let cka = w["cka"].as_f64().unwrap();
            assert!((got.cka.unwrap() - cka).abs() < 1e-4, "{what}: layer {} CKA {:?} vs {cka}", got.layer, got.cka);
        }
        // fine-tuning moved the upper layers: the fixture's CKA falls below 0.5 there
        assert!(c.layers[2].cka.unwrap() < 0.5, "{what}");
        for (l, (got, w)) in c.heads.iter().zip(want["heads"].as_array().unwrap()).enumerate() {
            for (h, (g, w)) in got.iter().zip(w.as_array().unwrap()).enumerate() {
                let w = w.as_f64().unwrap();
                assert!((g - w).abs() < 1e-4, "{what}: layer {l} head {h} moved {g} vs {w}");
            }
        }
        assert_eq!((c.base_map.coords.len(), c.tuned_map.coords.len()), (inputs.len(), inputs.len()));
    }
}

#[test]
fn a_model_compared_with_itself_is_unchanged() {
    let inputs = inputs();
    let mut base = engine(&tiny_dir(), BackendChoice::Cpu);
    let mut same = engine(&tiny_dir(), BackendChoice::Cpu);
    let c = pollster::block_on(compare(&mut base, &mut same, &inputs, None)).unwrap();
    for l in &c.layers {
        assert!((l.cka.unwrap() - 1.0).abs() < 1e-9, "layer {}: {:?}", l.layer, l.cka);
    }
    assert!(c.heads.iter().flatten().all(|&m| m == 0.0), "{:?}", c.heads);
}

#[test]
fn models_of_different_shapes_and_too_few_examples_are_refused_in_one_line() {
    let inputs = inputs();
    let mut tiny = engine(&tiny_dir(), BackendChoice::Cpu);
    // tiny-bert cut to its first layer
    let Model { mut weights, tokenizer, .. } = Model::from_dir(&tiny_dir()).unwrap();
    weights.layers.truncate(1);
    weights.config.num_hidden_layers = 1;
    let mut cut = pollster::block_on(Engine::with_weights("cut", weights, Some(tokenizer), BackendChoice::Cpu)).unwrap();
    let e = pollster::block_on(compare(&mut tiny, &mut cut, &inputs, None)).unwrap_err().to_string();
    assert!(e.contains("differ in shape") && !e.contains('\n'), "{e}");
    let mut same = engine(&tiny_dir(), BackendChoice::Cpu);
    let e = pollster::block_on(compare(&mut tiny, &mut same, &inputs[..1], None)).unwrap_err().to_string();
    assert!(e.contains("1 examples: compare 2 to"), "{e}");
}
