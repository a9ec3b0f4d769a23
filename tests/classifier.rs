//! Fine-tuning the whole `BertForSequenceClassification`: gradients of every
//! parameter and three Trainer optimizer steps against PyTorch's (fixture
//! from tests/reference/make_training_fixture.py, dropout off), the fast
//! matrix products against the plain reference, dropout's backward against
//! finite differences, top-k runs against the whole model's gradients, and
//! the exported folder read back; the GPU path (`gpu_backprop`) against
//! PyTorch's gradients and steps and against the CPU path with dropout.

mod common;

use bertlab::classifier::backprop::{forward, frozen_hidden, loss_and_gradients, Dropout};
use bertlab::classifier::export::{export_folder, hf_tensors};
use bertlab::classifier::gpu_backprop::GpuTraining;
use bertlab::classifier::loss::Targets;
use bertlab::classifier::math::CpuMath;
use bertlab::classifier::optimizer::{step, Moments, MAX_GRAD_NORM};
use bertlab::classifier::{ClassifierParams, HeadKind, Labels, TrainLayers};
use bertlab::finetune::encoded::Encoded;
use bertlab::finetune::model_training::ModelTraining;
use bertlab::finetune::training::Event;
use bertlab::finetune::{learning_rate_at, TrainConfig};
use bertlab::kernels::adamw::AdamW;
use bertlab::kernels::cross_entropy::IGNORE_INDEX;
use bertlab::kernels::matmul::Layout;
use bertlab::task::{Builtin, Source};
use bertlab::tensor_file::TensorReader;
use bertlab::tokenize::Batch;
use bertlab::Model;
use common::{assert_close, f32s, fixtures, gpu, max_abs_diff, read_json, tiny_dir, values};
use pollster::block_on;
use serde_json::Value;

struct Case {
    params: ClassifierParams,
    batch: Batch,
    labels: Targets,
    json: Value,
}

/// MRPC's case: three pairs through `BertForSequenceClassification` (tests/fixtures/tiny-train).
fn case() -> Case {
    task_case(read_json(&fixtures().join("tiny-train/case.json")), HeadKind::Sequence)
}

/// A fixture case's batch, labels and head (`kind`, with its outputs and PyTorch's initial values).
fn task_case(json: Value, kind: HeadKind) -> Case {
    let model = Model::from_dir(&tiny_dir()).unwrap();
    let outputs = json["classifier_bias"].as_array().unwrap().len();
    let mut params = ClassifierParams::new(model.weights, kind, outputs, 0);
    params.classifier.weight = f32s(&json["classifier_weight"]);
    params.classifier.bias = f32s(&json["classifier_bias"]);
    let rows = (0..json["input_ids"].as_array().unwrap().len())
        .map(|r| {
            let row = |key: &str| -> Vec<u32> { json[key][r].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect() };
            let len = row("attention_mask").iter().filter(|&&m| m == 1).count();
            (row("input_ids")[..len].to_vec(), row("token_type_ids")[..len].to_vec())
        })
        .collect();
    let batch = Batch::from_rows(rows, 0).unwrap();
    // class ids (PyTorch's -100 is our IGNORE_INDEX; token labels come a row of the batch each), or numbers
    let flat: Vec<&Value> =
        json["labels"].as_array().unwrap().iter().flat_map(|v| v.as_array().map_or(vec![v], |r| r.iter().collect())).collect();
    let labels = match outputs {
        1 => Targets::Values(flat.iter().map(|v| v.as_f64().unwrap() as f32).collect()),
        _ => Targets::Classes(flat.iter().map(|v| v.as_i64().unwrap()).map(|y| if y == -100 { IGNORE_INDEX } else { y as u32 }).collect()),
    };
    Case { params, batch, labels, json }
}

fn gradients(c: &Case, math: CpuMath, train: TrainLayers, dropout: Option<&Dropout>) -> (f32, ClassifierParams) {
    let mut grads = c.params.zeros_like();
    let loss = loss_and_gradients(math, &c.params, &c.batch, &c.labels, train, dropout, None, 1.0, &mut grads);
    (loss, grads)
}

/// Each tensor against the same-named one of a PyTorch safetensors file,
/// within `tol` of its largest value, or within `abs_tol(name)` where given.
fn assert_matches_file(what: &str, p: &ClassifierParams, file: &str, tol: f32, abs_tol: impl Fn(&str) -> Option<f32>) {
    let bytes = std::fs::read(fixtures().join(file)).unwrap();
    let want = TensorReader::parse(&bytes, "fixture").unwrap();
    let ours = hf_tensors(p);
    assert_eq!(ours.len(), want.names().len(), "{what}: tensor count");
    for (name, shape, got) in ours {
        let w = want.f32(&name, &shape).unwrap();
        let scale = w.iter().fold(1e-3f32, |m, v| m.max(v.abs()));
        let bound = abs_tol(&name).unwrap_or(tol * scale);
        let err = max_abs_diff(got, &w);
        assert!(err <= bound, "{what} `{name}`: max abs error {err:e}, allowed {bound:e} (largest value {scale:e})");
    }
}

#[test]
fn logits_loss_and_every_gradient_equal_pytorch_autograd() {
    let c = case();
    let f = forward(CpuMath::Reference, &c.params, &c.batch, TrainLayers::All, None, None);
    assert_close("logits", &f.logits, &f32s(&c.json["logits"]), 1e-5);
    let (loss, grads) = gradients(&c, CpuMath::Reference, TrainLayers::All, None);
    assert!((loss - c.json["loss"].as_f64().unwrap() as f32).abs() < 1e-5, "loss {loss}");
    assert_matches_file("gradient", &grads, "tiny-train/grads.safetensors", 1e-4, |_| None);
}

/// N labels, regression and token classification (tests/fixtures/tiny-tasks,
/// made by tests/reference/make_task_fixture.py): logits, loss and every
/// gradient equal PyTorch autograd's, -100 tokens included, on the plain
/// references, the fast CPU math and the GPU.
#[test]
fn every_task_head_s_logits_loss_and_gradients_equal_pytorch_autograd() {
    let cases = read_json(&fixtures().join("tiny-tasks/cases.json"));
    for (name, kind) in [("three_labels", HeadKind::Sequence), ("regression", HeadKind::Sequence), ("tokens", HeadKind::Tokens)] {
        let c = task_case(cases[name].clone(), kind);
        assert_eq!(c.params.outputs(), cases[name]["num_labels"].as_u64().unwrap() as usize);
        let want_loss = cases[name]["loss"].as_f64().unwrap() as f32;
        let file = format!("tiny-tasks/{name}.safetensors");
        // a key bias's gradient is zero in exact arithmetic (softmax ignores a shift shared by
        // every key): both sides hold rounding noise there, held to 1e-5 of the largest gradient
        let bytes = std::fs::read(fixtures().join(&file)).unwrap();
        let fixture = TensorReader::parse(&bytes, "fixture").unwrap();
        let largest = fixture.names().iter().flat_map(|n| fixture.f32_with_shape(n).unwrap().1).fold(0.0f32, |m, v| m.max(v.abs()));
        let key_bias = |n: &str| n.ends_with("key.bias").then_some(1e-5 * largest);
        for math in [CpuMath::Reference, CpuMath::Fast] {
            let f = forward(math, &c.params, &c.batch, TrainLayers::All, None, None);
            assert_close(&format!("{name} logits ({math:?})"), &f.logits, &f32s(&c.json["logits"]), 1e-5);
            let (loss, grads) = gradients(&c, math, TrainLayers::All, None);
            assert!((loss - want_loss).abs() < 1e-5, "{name} ({math:?}): loss {loss}, PyTorch {want_loss}");
            assert_matches_file(&format!("{name} gradient ({math:?})"), &grads, &file, 1e-4, key_bias);
        }
        let g = GpuTraining::new(gpu(), &c.params, &Moments::new(&c.params), TrainLayers::All).unwrap();
        let logits = block_on(g.logits(&c.batch, None)).unwrap();
        assert_close(&format!("{name} GPU logits"), &logits, &f32s(&c.json["logits"]), 1e-5);
        let (loss, grads) = gpu_gradients(&c, TrainLayers::All, None);
        assert!((loss - want_loss).abs() < 1e-5, "{name} GPU loss {loss}, PyTorch {want_loss}");
        assert_matches_file(&format!("{name} GPU gradient"), &grads, &file, 1e-4, key_bias);
    }
}

/// A token head's top-k run and its dropout: the GPU draws the CPU's masks, so the two agree.
#[test]
fn a_token_head_trains_its_top_layers_with_dropout_alike_on_cpu_and_gpu() {
    let cases = read_json(&fixtures().join("tiny-tasks/cases.json"));
    let c = task_case(cases["tokens"].clone(), HeadKind::Tokens);
    let d = Dropout { hidden: 0.2, attention: 0.2, classifier: 0.2, ..Dropout::training(&c.params.bert.config, 5, 1) };
    for train in [TrainLayers::All, TrainLayers::Top(1)] {
        let first = train.first_trained_layer(c.params.bert.layers.len());
        let entry = (train != TrainLayers::All).then(|| frozen_hidden(CpuMath::Reference, &c.params, &c.batch, first));
        let mut want = c.params.zeros_like();
        let l = loss_and_gradients(CpuMath::Reference, &c.params, &c.batch, &c.labels, train, Some(&d), entry, 1.0, &mut want);
        let (gl, got) = gpu_gradients(&c, train, Some(&d));
        assert!((l - gl).abs() < 1e-5, "{train:?}: loss {l} CPU, {gl} GPU");
        for ((info, a), b) in c.params.layout().iter().zip(got.data()).zip(want.data()) {
            let scale = b.iter().fold(1e-3f32, |m, v| m.max(v.abs()));
            assert_close(&format!("{train:?} {}", info.name), a, b, 1e-4 * scale);
        }
    }
}

#[test]
fn three_trainer_steps_equal_pytorch_parameters() {
    let c = case();
    let s = &c.json["settings"];
    let (lr, total, warmup, steps) = (
        s["learning_rate"].as_f64().unwrap() as f32,
        s["total_steps"].as_u64().unwrap() as usize,
        s["warmup_steps"].as_u64().unwrap() as usize,
        s["steps"].as_u64().unwrap() as usize,
    );
    assert_eq!(s["max_grad_norm"].as_f64().unwrap() as f32, MAX_GRAD_NORM);
    let mut params = c.params.clone();
    let mut moments = Moments::new(&params);
    let mut norms = Vec::new();
    for t in 0..steps {
        let mut grads = params.zeros_like();
        let loss = loss_and_gradients(CpuMath::Reference, &params, &c.batch, &c.labels, TrainLayers::All, None, None, 1.0, &mut grads);
        let want = c.json["step_losses"][t].as_f64().unwrap() as f32;
        assert!((loss - want).abs() < 1e-5, "step {t}: loss {loss}, PyTorch {want}");
        let opt = AdamW::new(learning_rate_at(t, total, warmup, lr), s["weight_decay"].as_f64().unwrap() as f32);
        norms.push(step(&mut params, &grads, &mut moments, TrainLayers::All, &opt, t as u32 + 1, MAX_GRAD_NORM));
    }
    assert!(norms[0] > 1.0, "the fixture's gradients should need clipping (norm {})", norms[0]);
    // A key bias's gradient is zero in exact arithmetic (softmax ignores a
    // shift shared by every key), so both sides hold rounding noise there,
    // which Adam's normalisation turns into steps of up to ±lr each.
    let key_bias = |name: &str| name.ends_with("key.bias").then_some(2.0 * lr * steps as f32);
    assert_matches_file("parameter after 3 steps", &params, "tiny-train/after.safetensors", 2e-5, key_bias);
}

#[test]
fn fast_products_equal_the_reference_on_odd_shapes_and_whole_gradients() {
    for &(m, n, k) in &[(1, 1, 1), (1, 7, 5), (13, 9, 31), (33, 65, 17), (128, 96, 37)] {
        let a = values(m * k, 1, 1.0);
        let w = values(n * k, 2, 1.0);
        for (al, wl) in [
            (Layout::rows(k), Layout::rows(k)),
            (Layout::transposed(m), Layout::rows(k)),
            (Layout::rows(k), Layout::transposed(n)),
            (Layout::transposed(m), Layout::transposed(n)),
        ] {
            let want = CpuMath::Reference.matmul(&a, al, &w, wl, (m, n, k));
            let got = CpuMath::Fast.matmul(&a, al, &w, wl, (m, n, k));
            assert_close(&format!("{m}×{n}×{k} {al:?} {wl:?}"), &got, &want, 1e-5);
        }
    }
    let c = case();
    let d = Dropout::training(&c.params.bert.config, 7, 3);
    let (want_loss, want) = gradients(&c, CpuMath::Reference, TrainLayers::All, Some(&d));
    let (loss, got) = gradients(&c, CpuMath::Fast, TrainLayers::All, Some(&d));
    assert!((loss - want_loss).abs() < 1e-5);
    for ((info, g), w) in c.params.layout().iter().zip(got.data()).zip(want.data()) {
        assert_close(&info.name, g, w, 1e-5);
    }
}

#[test]
fn fast_attention_equals_the_reference_forward_and_backward_on_odd_shapes() {
    use bertlab::kernels::attention::AttentionShape;
    use bertlab::kernels::dropout::dropout_mask_cpu;
    for (i, &(batch, seq, heads, head_dim)) in [(1, 1, 1, 4), (2, 7, 3, 5), (3, 17, 2, 8), (1, 33, 4, 3)].iter().enumerate() {
        let s = AttentionShape { batch, seq, heads, head_dim };
        let qkv = values(batch * seq * 3 * s.hidden(), i as u32, 2.0);
        // each sequence has its own length; the first is always a real token
        let mask: Vec<u32> = (0..batch * seq).map(|t| u32::from(t % seq < seq - (t / seq) % seq.max(1) / 2)).collect();
        let d_ctx = values(batch * seq * s.hidden(), 10 + i as u32, 1.0);
        let factors = dropout_mask_cpu(7 + i as u32, 0.3, batch * heads * seq * seq);
        for dropout in [None, Some(factors.as_slice())] {
            let (want_p, want_c) = CpuMath::Reference.attention(&qkv, &mask, dropout, s);
            let (got_p, got_c) = CpuMath::Fast.attention(&qkv, &mask, dropout, s);
            assert_close(&format!("probabilities {s:?}"), &got_p, &want_p, 1e-6);
            assert_close(&format!("context {s:?}"), &got_c, &want_c, 1e-5);
            let want = CpuMath::Reference.attention_backward(&qkv, &want_p, dropout, &d_ctx, s);
            let got = CpuMath::Fast.attention_backward(&qkv, &want_p, dropout, &d_ctx, s);
            assert_close(&format!("dqkv {s:?}"), &got, &want, 1e-5);
        }
    }
}

#[test]
fn gradients_with_dropout_are_the_derivative_of_the_dropped_out_loss() {
    let c = case();
    let d = Dropout { hidden: 0.3, attention: 0.3, classifier: 0.3, ..Dropout::training(&c.params.bert.config, 11, 2) };
    let (_, grads) = gradients(&c, CpuMath::Reference, TrainLayers::All, Some(&d));
    let layout = c.params.layout();
    let loss_at = |p: &ClassifierParams| {
        let f = forward(CpuMath::Reference, p, &c.batch, TrainLayers::All, Some(&d), None);
        f64::from(bertlab::classifier::loss::loss_and_dlogits(&f.logits, &c.labels, p.outputs(), 1.0).0)
    };
    // the largest gradient of a few tensors across the model, by central differences
    let mut checked = 0;
    for name in [
        "bert.embeddings.LayerNorm.weight",
        "bert.encoder.layer.0.attention.self.qkv.weight",
        "bert.encoder.layer.1.output.dense.weight",
        "bert.pooler.dense.bias",
    ] {
        let t = layout.iter().position(|i| i.name == name).unwrap();
        let g = grads.data()[t];
        let i = (0..g.len()).max_by(|&a, &b| g[a].abs().total_cmp(&g[b].abs())).unwrap();
        let eps = 1e-2f32;
        let mut plus = c.params.clone();
        plus.data_mut()[t][i] += eps;
        let mut minus = c.params.clone();
        minus.data_mut()[t][i] -= eps;
        let numeric = ((loss_at(&plus) - loss_at(&minus)) / (2.0 * f64::from(eps))) as f32;
        assert!((numeric - g[i]).abs() <= 2e-3 + 0.03 * g[i].abs(), "{name}[{i}]: analytic {}, numeric {numeric}", g[i]);
        checked += 1;
    }
    assert_eq!(checked, 4);
}

#[test]
fn top_k_runs_train_only_their_layers_and_agree_with_the_whole_model() {
    let c = case();
    let (_, all) = gradients(&c, CpuMath::Reference, TrainLayers::All, None);
    let (_, top) = gradients(&c, CpuMath::Reference, TrainLayers::Top(1), None);
    let layers = c.params.bert.layers.len();
    for ((info, t), a) in c.params.layout().iter().zip(top.data()).zip(all.data()) {
        if TrainLayers::Top(1).trains(info.part, layers) {
            assert_close(&info.name, t, a, 1e-6);
        } else {
            assert!(t.iter().all(|&v| v == 0.0), "{} is frozen but got a gradient", info.name);
        }
    }
    // starting from cached frozen states is the same step
    let entry = frozen_hidden(CpuMath::Reference, &c.params, &c.batch, 1);
    let d = Dropout::training(&c.params.bert.config, 5, 1);
    let mut from_cache = c.params.zeros_like();
    loss_and_gradients(CpuMath::Fast, &c.params, &c.batch, &c.labels, TrainLayers::Top(1), Some(&d), Some(entry), 1.0, &mut from_cache);
    let (_, direct) = gradients(&c, CpuMath::Fast, TrainLayers::Top(1), Some(&d));
    for (a, b) in from_cache.data().iter().zip(direct.data()) {
        assert_close("top-1 gradient from cached states", a, b, 1e-6);
    }
}

#[test]
fn an_exported_folder_loads_back_as_the_fine_tuned_encoder() {
    let c = case();
    let mut params = c.params.clone();
    // a changed model, so the check cannot pass on the base weights
    params.bert.layers[1].ffn_out.bias.iter_mut().for_each(|v| *v += 0.5);
    let dir = tiny_dir();
    let config = std::fs::read(dir.join("config.json")).unwrap();
    let vocab = std::fs::read(dir.join("vocab.txt")).unwrap();
    let files = export_folder(&params, &Labels::mrpc(), &config, &[("vocab.txt", &vocab)]).unwrap();
    let out = std::env::temp_dir().join(format!("bertlab-export-{}", std::process::id()));
    std::fs::create_dir_all(&out).unwrap();
    for (name, bytes) in &files {
        std::fs::write(out.join(name), bytes).unwrap();
    }
    let cfg: Value = serde_json::from_slice(&files[0].1).unwrap();
    assert_eq!(cfg["architectures"][0], "BertForSequenceClassification");
    assert_eq!(cfg["id2label"]["1"], "equivalent");
    let loaded = Model::from_dir(&out).unwrap();
    assert_eq!(loaded.weights.layers[1].ffn_out.bias, params.bert.layers[1].ffn_out.bias);
    assert_eq!(loaded.weights.layers[0].qkv.weight, params.bert.layers[0].qkv.weight);
    let reader_bytes = std::fs::read(out.join("model.safetensors")).unwrap();
    let r = TensorReader::parse(&reader_bytes, "export").unwrap();
    assert_eq!(r.f32("classifier.weight", &[2, 32]).unwrap(), params.classifier.weight);
    std::fs::remove_dir_all(&out).unwrap();
}

/// The first `n` MRPC pairs of a split of tests/fixtures/glue-tiny, tokenized.
fn glue_pairs(model: &Model, file: &str, n: usize) -> Encoded {
    let text = std::fs::read_to_string(fixtures().join("glue-tiny").join(file)).unwrap();
    let src: Source = Builtin::Mrpc.source();
    let (mut examples, _) = bertlab::task::read_split(&src, &text, &Builtin::Mrpc.labels(), file).unwrap();
    examples.truncate(n);
    Encoded::encode(&model.tokenizer, &examples, 128).unwrap()
}

/// A run paused after some steps, checkpointed and resumed goes on exactly
/// as a run that never stopped; a checkpoint resumes on its own model only.
#[test]
fn a_model_run_resumes_from_its_checkpoint_exactly() {
    let model = Model::from_dir(&tiny_dir()).unwrap();
    let identity = bertlab::ModelIdentity::of("tiny", &model.weights);
    for layers in [TrainLayers::All, TrainLayers::Top(1)] {
        let config = TrainConfig {
            learning_rate: 1e-3,
            num_train_epochs: 2,
            per_device_train_batch_size: 8,
            train_layers: layers,
            ..Default::default()
        };
        let start = || {
            let params = ClassifierParams::new(model.weights.clone(), HeadKind::Sequence, 2, config.seed);
            let (train, dev) = (glue_pairs(&model, "train.tsv", 40), glue_pairs(&model, "dev.tsv", 16));
            ModelTraining::new("run-1".into(), identity.clone(), params, Labels::mrpc(), config.clone(), CpuMath::Fast, train, dev).unwrap()
        };
        let finish = |t: &mut ModelTraining| {
            while !matches!(block_on(t.advance()).unwrap(), Event::Done) {}
        };
        let mut whole = start();
        finish(&mut whole);
        assert_eq!(whole.progress.losses.len(), 10);

        let mut first = start();
        for _ in 0..7 {
            block_on(first.advance()).unwrap(); // 5 steps, the first epoch's evaluation, 1 step
        }
        let bytes = block_on(first.checkpoint()).unwrap();
        assert_eq!(ModelTraining::peek(&bytes).unwrap(), ("run-1".to_string(), 6));
        let resume = |base| {
            ModelTraining::resume(
                &bytes,
                "tiny",
                base,
                CpuMath::Fast,
                glue_pairs(&model, "train.tsv", 40),
                glue_pairs(&model, "dev.tsv", 16),
            )
        };
        let mut resumed = resume(model.weights.clone()).unwrap();
        finish(&mut resumed);
        assert_eq!(resumed.progress, whole.progress, "{layers:?}");
        let (got, want) = (block_on(resumed.params()).unwrap().clone(), block_on(whole.params()).unwrap());
        for (a, b) in got.data().into_iter().zip(want.data()) {
            assert_eq!(a, b, "{layers:?}: parameters after resuming");
        }
        let other = bertlab::weights::BertWeights::random(&model.config, 9);
        let e = resume(other).err().unwrap().to_string();
        assert!(e.contains("this run was made with tiny"), "{e}");
        // damaged saved pairs are refused, not read out of the tables
        let mut bad = glue_pairs(&model, "train.tsv", 40);
        bad.rows[3].0[1] = model.config.vocab_size as u32;
        let e = ModelTraining::resume(&bytes, "tiny", model.weights.clone(), CpuMath::Fast, bad, glue_pairs(&model, "dev.tsv", 16));
        assert!(e.err().unwrap().to_string().contains("training example 4 has token ids this model cannot read"));
    }
}

/// A run on the GPU follows the CPU run (the same batches and dropout masks;
/// only rounding differs), and a GPU run checkpointed mid-epoch and resumed
/// on the GPU goes on exactly as one that never stopped.
#[test]
fn a_gpu_run_follows_the_cpu_run_and_resumes_exactly() {
    let model = Model::from_dir(&tiny_dir()).unwrap();
    let identity = bertlab::ModelIdentity::of("tiny", &model.weights);
    let config = TrainConfig { learning_rate: 1e-3, num_train_epochs: 2, per_device_train_batch_size: 8, ..Default::default() };
    assert_eq!(config.train_layers, TrainLayers::Top(0), "the default trains a head; this test sets what trains");
    for layers in [TrainLayers::All, TrainLayers::Top(1)] {
        let config = TrainConfig { train_layers: layers, ..config.clone() };
        let start = |gpu_run: bool| {
            let params = ClassifierParams::new(model.weights.clone(), HeadKind::Sequence, 2, config.seed);
            let (train, dev) = (glue_pairs(&model, "train.tsv", 40), glue_pairs(&model, "dev.tsv", 16));
            let t = ModelTraining::new("run-g".into(), identity.clone(), params, Labels::mrpc(), config.clone(), CpuMath::Fast, train, dev)
                .unwrap();
            if gpu_run {
                t.on_gpu(gpu()).unwrap()
            } else {
                t
            }
        };
        let finish = |t: &mut ModelTraining| while !matches!(block_on(t.advance()).unwrap(), Event::Done) {};
        let (mut cpu, mut on_gpu) = (start(false), start(true));
        assert!(on_gpu.on_device() && !cpu.on_device());
        finish(&mut cpu);
        finish(&mut on_gpu);
        assert_eq!(on_gpu.progress.losses.len(), 10);
        for (step, (a, b)) in on_gpu.progress.losses.iter().zip(&cpu.progress.losses).enumerate() {
            assert!((a - b).abs() < 1e-3, "{layers:?} step {step}: GPU loss {a}, CPU {b}");
        }
        for (a, b) in on_gpu.progress.metrics.iter().zip(&cpu.progress.metrics) {
            assert!((a.loss - b.loss).abs() < 1e-3, "{layers:?}: GPU eval loss {}, CPU {}", a.loss, b.loss);
        }
        let (gpu_params, cpu_params) = (block_on(on_gpu.params()).unwrap().clone(), block_on(cpu.params()).unwrap());
        let moved = max_abs_diff(
            &gpu_params.classifier.weight,
            &ClassifierParams::new(model.weights.clone(), HeadKind::Sequence, 2, config.seed).classifier.weight,
        );
        assert!(moved > 1e-3, "{layers:?}: the GPU run did not train (moved {moved})");
        for ((info, a), b) in gpu_params.layout().iter().zip(gpu_params.data()).zip(cpu_params.data()) {
            let err = max_abs_diff(a, b);
            // ten Adam steps of lr 1e-3: rounding differences move a value by a few lr at most
            assert!(err < 5e-3, "{layers:?} `{}`: GPU and CPU runs differ by {err:e}", info.name);
        }

        let mut first = start(true);
        for _ in 0..7 {
            block_on(first.advance()).unwrap();
        }
        let bytes = block_on(first.checkpoint()).unwrap();
        let (train, dev) = (glue_pairs(&model, "train.tsv", 40), glue_pairs(&model, "dev.tsv", 16));
        let mut resumed =
            ModelTraining::resume(&bytes, "tiny", model.weights.clone(), CpuMath::Fast, train, dev).unwrap().on_gpu(gpu()).unwrap();
        finish(&mut resumed);
        assert_eq!(resumed.progress, on_gpu.progress, "{layers:?}: a resumed GPU run");
        assert_eq!(block_on(resumed.params()).unwrap().data(), gpu_params.data(), "{layers:?}: parameters after resuming on the GPU");
    }
}

/// Two batches of 8 accumulated into a step give the step one batch of 16
/// gives (dropout off, so both see the same masks: none).
#[test]
fn accumulated_batches_make_the_same_step_as_one_batch() {
    let mut model = Model::from_dir(&tiny_dir()).unwrap();
    let c = &mut model.weights.config;
    (c.hidden_dropout_prob, c.attention_probs_dropout_prob) = (0.0, 0.0);
    let identity = bertlab::ModelIdentity::of("tiny", &model.weights);
    let run = |batch: usize, accumulate: usize| {
        let config = TrainConfig {
            learning_rate: 1e-3,
            num_train_epochs: 1,
            per_device_train_batch_size: batch,
            gradient_accumulation_steps: accumulate,
            train_layers: TrainLayers::All,
            ..Default::default()
        };
        let params = ClassifierParams::new(model.weights.clone(), HeadKind::Sequence, 2, config.seed);
        let (train, dev) = (glue_pairs(&model, "train.tsv", 40), glue_pairs(&model, "dev.tsv", 8));
        let mut t = ModelTraining::new("acc".into(), identity.clone(), params, Labels::mrpc(), config, CpuMath::Fast, train, dev).unwrap();
        assert_eq!(t.total_steps(), 3);
        while !matches!(block_on(t.advance()).unwrap(), Event::Done) {}
        t
    };
    let (mut one, mut two) = (run(16, 1), run(8, 2));
    for (a, b) in one.progress.losses.iter().zip(&two.progress.losses) {
        assert!((a - b).abs() < 1e-5, "step losses {a} and {b}");
    }
    let (one_p, two_p) = (block_on(one.params()).unwrap().clone(), block_on(two.params()).unwrap());
    for ((info, a), b) in one_p.layout().iter().zip(one_p.data()).zip(two_p.data()) {
        if info.name.ends_with("qkv.bias") {
            // the key bias's gradient is rounding noise that Adam scales up to lr a step (see above)
            let third = a.len() / 3;
            for (part, tol) in [(0, 5e-5), (1, 2.0 * 1e-3 * 3.0), (2, 5e-5)] {
                assert_close(&info.name, &a[part * third..][..third], &b[part * third..][..third], tol);
            }
        } else {
            // summed in another order: Adam's division by √v turns that into a few 1e-6
            assert_close(&info.name, a, b, 5e-5);
        }
    }
}

fn gpu_gradients(c: &Case, train: TrainLayers, dropout: Option<&Dropout>) -> (f32, ClassifierParams) {
    let g = GpuTraining::new(gpu(), &c.params, &Moments::new(&c.params), train).unwrap();
    g.zero_gradients().unwrap();
    let layers = c.params.bert.layers.len();
    let first = train.first_trained_layer(layers);
    let entry = (train != TrainLayers::All).then(|| frozen_hidden(CpuMath::Reference, &c.params, &c.batch, first));
    if let Some(want) = &entry {
        let got = pollster::block_on(g.frozen_hidden(&c.batch, first)).unwrap();
        assert_close(&format!("GPU frozen states below layer {first}"), &got, want, 1e-5);
    }
    let loss = pollster::block_on(g.loss_and_gradients(&c.batch, &c.labels, dropout, entry, 1.0)).unwrap();
    (loss, pollster::block_on(g.gradients(&c.params)).unwrap())
}

#[test]
fn gpu_logits_loss_and_every_gradient_equal_pytorch_autograd() {
    let c = case();
    let g = GpuTraining::new(gpu(), &c.params, &Moments::new(&c.params), TrainLayers::All).unwrap();
    let logits = pollster::block_on(g.logits(&c.batch, None)).unwrap();
    assert_close("GPU logits", &logits, &f32s(&c.json["logits"]), 1e-5);
    let (loss, grads) = gpu_gradients(&c, TrainLayers::All, None);
    assert!((loss - c.json["loss"].as_f64().unwrap() as f32).abs() < 1e-5, "GPU loss {loss}");
    assert_matches_file("GPU gradient", &grads, "tiny-train/grads.safetensors", 1e-4, |_| None);
}

#[test]
fn gpu_gradients_with_dropout_and_top_k_equal_the_cpu_path() {
    let c = case();
    let d = Dropout::training(&c.params.bert.config, 7, 3);
    assert!(d.hidden > 0.0 && d.attention > 0.0, "the tiny model's config has dropout");
    for train in [TrainLayers::All, TrainLayers::Top(1), TrainLayers::Top(0)] {
        let (want_loss, want) = gradients(&c, CpuMath::Reference, train, Some(&d));
        let (loss, got) = gpu_gradients(&c, train, Some(&d));
        assert!((loss - want_loss).abs() < 1e-5, "{train:?}: GPU loss {loss}, CPU {want_loss}");
        let layers = c.params.bert.layers.len();
        for ((info, g), w) in c.params.layout().iter().zip(got.data()).zip(want.data()) {
            let scale = w.iter().fold(1e-3f32, |m, v| m.max(v.abs()));
            let err = max_abs_diff(g, w);
            assert!(err <= 1e-4 * scale, "{train:?} `{}`: GPU vs CPU gradient error {err:e} (largest {scale:e})", info.name);
            if !train.trains(info.part, layers) {
                assert!(g.iter().all(|&v| v == 0.0), "{train:?}: frozen `{}` got a gradient", info.name);
            }
        }
    }
}

#[test]
fn three_gpu_trainer_steps_equal_pytorch_parameters() {
    let c = case();
    let s = &c.json["settings"];
    let lr = s["learning_rate"].as_f64().unwrap() as f32;
    let (total, warmup) = (s["total_steps"].as_u64().unwrap() as usize, s["warmup_steps"].as_u64().unwrap() as usize);
    let steps = s["steps"].as_u64().unwrap() as usize;
    let g = GpuTraining::new(gpu(), &c.params, &Moments::new(&c.params), TrainLayers::All).unwrap();
    for t in 0..steps {
        g.zero_gradients().unwrap();
        let loss = pollster::block_on(g.loss_and_gradients(&c.batch, &c.labels, None, None, 1.0)).unwrap();
        let want = c.json["step_losses"][t].as_f64().unwrap() as f32;
        assert!((loss - want).abs() < 1e-5, "GPU step {t}: loss {loss}, PyTorch {want}");
        let opt = AdamW::new(learning_rate_at(t, total, warmup, lr), s["weight_decay"].as_f64().unwrap() as f32);
        let norm = pollster::block_on(g.step(&opt, t as u32 + 1, MAX_GRAD_NORM)).unwrap();
        assert!(t > 0 || norm > 1.0, "the first step's gradients need clipping (norm {norm})");
    }
    let (params, _) = pollster::block_on(g.download(&c.params)).unwrap();
    let key_bias = |name: &str| name.ends_with("key.bias").then_some(2.0 * lr * steps as f32);
    assert_matches_file("GPU parameter after 3 steps", &params, "tiny-train/after.safetensors", 2e-5, key_bias);
}

#[test]
fn the_gpu_path_refuses_models_and_batches_past_its_binding_limit() {
    let c = case();
    let moments = Moments::new(&c.params);
    let mut small = gpu();
    small.limit_bindings(1024);
    let e = GpuTraining::new(small, &c.params, &moments, TrainLayers::All).err().expect("a model past the limit is refused").to_string();
    assert!(e.contains("word_embeddings") && e.contains("binding limit: train on the CPU path"), "{e}");
    // room for the tiny model's largest tensor (1505 × 32 floats), not for 40 pairs of 40 tokens' attention probabilities
    let mut ctx = gpu();
    ctx.limit_bindings(200_000);
    let g = GpuTraining::new(ctx, &c.params, &moments, TrainLayers::All).unwrap();
    let big = Batch::from_rows((0..40).map(|_| (vec![5u32; 40], vec![0u32; 40])).collect(), 0).unwrap();
    let e = block_on(g.loss_and_gradients(&big, &Targets::Classes(vec![0; 40]), None, None, 1.0))
        .expect_err("a batch past the limit is refused")
        .to_string();
    assert!(e.contains("a batch of 40 pairs of 40 tokens") && e.contains("lower the batch size"), "{e}");
    let loss = block_on(g.loss_and_gradients(&c.batch, &c.labels, None, None, 1.0)).unwrap();
    assert!(loss.is_finite(), "the fixture's batch still trains");
}
