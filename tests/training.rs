//! The training kernels and the head: each GPU kernel against its CPU
//! reference, gradients against finite differences, AdamW against PyTorch's
//! numbers, and whole training runs (deterministic, GPU = CPU, NaN handling,
//! settings refused, checkpoints, export and import with the model's identity).

mod common;

use bertlab::finetune::head_io::TrainedHead;
use bertlab::finetune::training::{Event, HeadBackend, RunSetup, Split, Training};
use bertlab::finetune::{evaluate, learning_rate_at, Metrics, Scores, TrainConfig};
use bertlab::gpu::GpuContext;
use bertlab::head::{CpuHead, GpuHead, HeadInput, HeadParams, HeadSpec};
use bertlab::kernels::adamw::{adamw_cpu, AdamW, AdamWKernel};
use bertlab::kernels::cross_entropy::{cross_entropy_cpu, CrossEntropyKernel, IGNORE_INDEX};
use bertlab::kernels::relu_backward::{relu_backward_cpu, ReluBackwardKernel};
use bertlab::kernels::squared_error::{squared_error_cpu, SquaredErrorKernel};
use bertlab::protocol::{decode, encode, FromWorker, RunEvent};
use bertlab::task::metrics::EntityScores;
use bertlab::ModelIdentity;
use common::{assert_close, f32s, fixtures, gpu, read_json, values};

fn run(ctx: &GpuContext, d: bertlab::gpu::Dispatch, outputs: &[(&wgpu::Buffer, usize)]) -> Vec<Vec<f32>> {
    pollster::block_on(ctx.run(&[d], outputs)).unwrap()
}

#[test]
fn cross_entropy_matches_cpu_and_finite_differences() {
    let ctx = gpu();
    let kernel = CrossEntropyKernel::new(&ctx);
    for (i, &(rows, classes)) in [(1, 2), (37, 2), (300, 5), (65, 3)].iter().enumerate() {
        let logits = values(rows * classes, i as u32, 4.0);
        // every fourth row unlabelled (transformers' -100): loss 0, gradient 0
        let labels: Vec<u32> = (0..rows).map(|r| if r % 4 == 3 { IGNORE_INDEX } else { (r * 7 % classes) as u32 }).collect();
        let labelled = labels.iter().filter(|&&y| y != IGNORE_INDEX).count();
        let scale = 1.0 / labelled as f32;
        let (want_loss, want_grad) = cross_entropy_cpu(&logits, &labels, classes, scale);
        let (lb, yb) = (ctx.storage_f32("logits", &logits), ctx.storage_u32("labels", &labels));
        let (loss, grad) = (ctx.scratch("loss", rows), ctx.scratch("grad", rows * classes));
        let d = kernel.bind(&ctx, &lb, &yb, &loss, &grad, rows, classes, scale);
        let got = run(&ctx, d, &[(&loss, rows), (&grad, rows * classes)]);
        assert_close("cross-entropy loss", &got[0], &want_loss, 1e-5);
        assert_close("cross-entropy gradient", &got[1], &want_grad, 1e-6);
        // the gradient is the derivative of the mean loss
        let mean = |z: &[f32]| cross_entropy_cpu(z, &labels, classes, scale).0.iter().map(|&v| v as f64).sum::<f64>() / labelled as f64;
        for (r, &y) in labels.iter().enumerate().filter(|(_, &y)| y == IGNORE_INDEX) {
            assert_eq!((want_loss[r], &want_grad[r * classes..][..classes]), (0.0, &vec![0.0; classes][..]), "row {r} ({y})");
        }
        for j in [0, rows * classes / 2, rows * classes - 1] {
            let (mut up, mut down) = (logits.clone(), logits.clone());
            up[j] += 1e-2;
            down[j] -= 1e-2;
            let numeric = (mean(&up) - mean(&down)) / 2e-2;
            assert!((numeric - want_grad[j] as f64).abs() < 1e-4, "d loss / d logit {j}: {numeric} vs {}", want_grad[j]);
        }
    }
}

#[test]
fn squared_error_matches_cpu_and_finite_differences() {
    let ctx = gpu();
    let kernel = SquaredErrorKernel::new(&ctx);
    for (i, rows) in [1, 37, 300].into_iter().enumerate() {
        let (output, target) = (values(rows, i as u32, 4.0), values(rows, 50 + i as u32, 4.0));
        let scale = 1.0 / rows as f32;
        let (want_loss, want_grad) = squared_error_cpu(&output, &target, scale);
        let (ob, tb) = (ctx.storage_f32("output", &output), ctx.storage_f32("target", &target));
        let (loss, grad) = (ctx.scratch("loss", rows), ctx.scratch("grad", rows));
        let got = run(&ctx, kernel.bind(&ctx, &ob, &tb, &loss, &grad, rows, scale), &[(&loss, rows), (&grad, rows)]);
        assert_close("squared error", &got[0], &want_loss, 1e-5);
        assert_close("squared error gradient", &got[1], &want_grad, 1e-6);
        let mean = |y: &[f32]| squared_error_cpu(y, &target, scale).0.iter().map(|&v| v as f64).sum::<f64>() / rows as f64;
        for j in [0, rows / 2, rows - 1] {
            let (mut up, mut down) = (output.clone(), output.clone());
            up[j] += 1e-2;
            down[j] -= 1e-2;
            let numeric = (mean(&up) - mean(&down)) / 2e-2;
            assert!((numeric - want_grad[j] as f64).abs() < 1e-3, "d loss / d output {j}: {numeric} vs {}", want_grad[j]);
        }
    }
}

#[test]
fn relu_backward_matches_cpu() {
    let ctx = gpu();
    let kernel = ReluBackwardKernel::new(&ctx);
    for (i, &len) in [1usize, 255, 257, 70_001].iter().enumerate() {
        let y: Vec<f32> = values(len, i as u32, 1.0).into_iter().map(|v| v.max(0.0)).collect();
        let g = values(len, 100 + i as u32, 1.0);
        let mut want = g.clone();
        relu_backward_cpu(&y, &mut want);
        let (yb, gb) = (ctx.storage_f32("y", &y), ctx.storage_f32("g", &g));
        let got = run(&ctx, kernel.bind(&ctx, &yb, &gb, len), &[(&gb, len)]).remove(0);
        assert_eq!(got, want, "relu backward, {len} values");
    }
}

#[test]
fn adamw_equals_pytorch_for_three_steps_on_cpu_and_gpu() {
    let r = read_json(&fixtures().join("adamw.json"));
    let wd = r["weight_decay"].as_f64().unwrap() as f32;
    let ctx = gpu();
    let kernel = AdamWKernel::new(&ctx);
    // (initial, decay, grad key, result key)
    for (init, decay, gk, pk) in [(f32s(&r["w0"]), wd, "grad_w", "w"), (f32s(&r["b0"]), 0.0, "grad_b", "b")] {
        let n = init.len();
        let (mut p, mut m, mut v) = (init.clone(), vec![0.0; n], vec![0.0; n]);
        let (pb, mb, vb) = (ctx.storage_f32("p", &init), ctx.storage_f32("m", &m), ctx.storage_f32("v", &v));
        for (t, step) in r["steps"].as_array().unwrap().iter().enumerate() {
            let opt = AdamW::new(step["lr"].as_f64().unwrap() as f32, decay);
            let grad = f32s(&step[gk]);
            adamw_cpu(&opt, t as u32 + 1, &mut p, &grad, &mut m, &mut v);
            assert_close(&format!("CPU AdamW step {} ({pk})", t + 1), &p, &f32s(&step[pk]), 1e-6);
            let gb = ctx.storage_f32("g", &grad);
            let got = run(&ctx, kernel.bind(&ctx, &opt, t as u32 + 1, &gb, &pb, &mb, &vb, n), &[(&pb, n)]).remove(0);
            assert_close(&format!("GPU AdamW step {} ({pk})", t + 1), &got, &f32s(&step[pk]), 1e-6);
        }
    }
}

fn toy(rows: usize, dim: usize, seed: u32) -> Split {
    // labels follow a direction in feature space, so there is something to learn
    let x = values(rows * dim, seed, 1.0);
    let labels = (0..rows).map(|r| u32::from(x[r * dim..(r + 1) * dim].iter().take(3).sum::<f32>() > 0.0)).collect();
    Split { x, labels }
}

/// Every tensor of a head, mutable, weights and biases in layer order.
fn tensors_mut(p: &mut HeadParams) -> Vec<&mut Vec<f32>> {
    p.layers.iter_mut().flat_map(|l| [&mut l.weight, &mut l.bias]).collect()
}

/// The head's gradients against central differences of its loss, for every parameter tensor.
#[test]
fn head_gradients_match_finite_differences() {
    for hidden in [0, 7] {
        let spec = HeadSpec { input: HeadInput::Pooler, in_dim: 6, hidden, classes: 2 };
        let mut params = spec.init(3);
        // larger weights than the init, so the ReLU has both sides in play
        for t in tensors_mut(&mut params) {
            t.iter_mut().enumerate().for_each(|(i, v)| *v = *v * 20.0 + 0.05 * (i % 3) as f32);
        }
        let data = toy(9, 6, 1);
        let y = data.labels.clone();
        let (_, grads) = CpuHead::new(spec, params.clone()).gradients(&data.x, &y);
        for (ti, t) in grads.tensors().iter().enumerate() {
            for (j, &g) in t.data.iter().enumerate() {
                let loss_with = |delta: f32| {
                    let mut p = params.clone();
                    tensors_mut(&mut p)[ti][j] += delta;
                    CpuHead::new(spec, p).gradients(&data.x, &y).0 as f64
                };
                let numeric = (loss_with(1e-3) - loss_with(-1e-3)) / 2e-3;
                assert!((numeric - g as f64).abs() < 2e-3, "hidden {hidden}, {} [{j}]: {numeric} vs {g}", t.name);
            }
        }
    }
}

#[test]
fn gpu_head_steps_equal_cpu_head_steps() {
    for hidden in [0, 33] {
        let spec = HeadSpec { input: HeadInput::PairFeatures, in_dim: 70, hidden, classes: 2 };
        let params = spec.init(5);
        let mut cpu = CpuHead::new(spec, params.clone());
        let mut g = GpuHead::new(gpu(), spec, &params);
        let data = toy(45, 70, 2);
        let y = data.labels.clone();
        let opt = AdamW::new(1e-2, 0.01);
        for t in 1..=6 {
            let rows = if t % 3 == 0 { 13 } else { 16 }; // a short last batch, replayed plans in between
            let (xs, ys) = (&data.x[..rows * 70], &y[..rows]);
            let lc = cpu.step(xs, ys, &opt, t);
            let lg = pollster::block_on(g.step(xs, ys, &opt, t)).unwrap();
            assert!((lc - lg).abs() < 1e-5, "step {t}: loss {lc} vs {lg}");
        }
        let (gp, _, _) = pollster::block_on(g.state()).unwrap();
        for (a, b) in gp.tensors().iter().zip(cpu.params.tensors()) {
            assert_close(&format!("hidden {hidden}: {}", a.name), a.data, b.data, 1e-5);
        }
        let pc = cpu.predict(&data.x, 45);
        let pg = pollster::block_on(g.predict(&data.x, 45)).unwrap();
        assert_close("predictions", &pg, &pc, 1e-5);
    }
}

fn identity(name: &str, hidden: usize, fingerprint: &str) -> ModelIdentity {
    ModelIdentity { name: name.into(), hidden_size: hidden, fingerprint: fingerprint.into() }
}

fn training(config: TrainConfig, gpu_backend: bool) -> Training {
    let spec = HeadSpec { input: HeadInput::Pooler, in_dim: 12, hidden: config.mlp_hidden, classes: 2 };
    let initial = spec.init(config.seed);
    let backend = HeadBackend::new(spec, initial.clone(), gpu_backend.then(gpu));
    let setup = RunSetup { run_id: "test".into(), model: identity("toy", 12, "00aa"), config, spec };
    Training::new(setup, backend, initial, toy(150, 12, 3), toy(60, 12, 4)).unwrap()
}

fn run_all(t: &mut Training) -> (Vec<f32>, HeadParams) {
    while pollster::block_on(t.advance()).unwrap() != Event::Done {}
    (t.progress.losses.clone(), pollster::block_on(t.head()).unwrap().params)
}

#[test]
fn training_is_deterministic_learns_and_agrees_between_cpu_and_gpu() {
    let config = TrainConfig { learning_rate: 5e-2, num_train_epochs: 4, warmup_steps: 3, ..Default::default() };
    let (l1, p1) = run_all(&mut training(config.clone(), false));
    let mut t2 = training(config.clone(), false);
    let (l2, p2) = run_all(&mut t2);
    assert_eq!(l1, l2, "CPU runs with one seed differ");
    assert_eq!(p1, p2);
    assert_eq!(l1.len(), 4 * 150usize.div_ceil(16));
    // it learns: the last epoch's loss is well below the first's, validation beats chance
    let first: f32 = l1[..10].iter().sum::<f32>() / 10.0;
    let last: f32 = l1[l1.len() - 10..].iter().sum::<f32>() / 10.0;
    assert!(last < 0.7 * first, "loss {first} → {last}");
    assert!(t2.progress.metrics.last().unwrap().headline().1 > 0.8, "{:?}", t2.progress.metrics);
    // the GPU path follows the CPU path
    let (lg, pg) = run_all(&mut training(config, true));
    assert_close("losses GPU vs CPU", &lg, &l1, 1e-4);
    for (a, b) in pg.tensors().iter().zip(p1.tensors()) {
        assert_close(&a.name, a.data, b.data, 1e-4);
    }
}

#[test]
fn a_diverging_run_stops_with_a_message_and_keeps_the_last_good_head() {
    for gpu_backend in [false, true] {
        let config = TrainConfig { learning_rate: 1e3, num_train_epochs: 10, ..Default::default() };
        let mut t = training(config, gpu_backend);
        let mut err = None;
        for _ in 0..1000 {
            match pollster::block_on(t.advance()) {
                Err(e) => {
                    err = Some(e.to_string());
                    break;
                }
                Ok(Event::Done) => break,
                Ok(_) => {}
            }
        }
        // lr·weight_decay = 10: every step multiplies the weights by −9, so they overflow
        let err = err.expect("a learning rate of 1e3 must end in a non-finite loss");
        assert!(err.contains("learning rate is too high"), "{err}");
        let head = pollster::block_on(t.head()).unwrap();
        assert!(head.params.is_finite(), "the kept head is not finite");
        assert!(t.done());
    }
}

#[test]
fn settings_no_run_can_use_are_refused_by_name() {
    let spec = HeadSpec { input: HeadInput::Pooler, in_dim: 12, hidden: 0, classes: 2 };
    let try_config = |config: TrainConfig| {
        let setup = RunSetup { run_id: "x".into(), model: identity("toy", 12, "00"), config, spec };
        let backend = HeadBackend::new(spec, spec.init(0), None);
        Training::new(setup, backend, spec.init(0), toy(10, 12, 1), toy(10, 12, 2)).err().map(|e| e.to_string())
    };
    let d = TrainConfig::default;
    for (config, want) in [
        (TrainConfig { learning_rate: f32::NAN, ..d() }, "learning_rate NaN must be a positive number"),
        (TrainConfig { learning_rate: 0.0, ..d() }, "learning_rate 0 must be a positive number"),
        (TrainConfig { learning_rate: -1.0, ..d() }, "learning_rate -1 must be a positive number"),
        (TrainConfig { weight_decay: f32::NAN, ..d() }, "weight_decay NaN must be a number ≥ 0"),
        (TrainConfig { weight_decay: -0.5, ..d() }, "weight_decay -0.5 must be a number ≥ 0"),
        (TrainConfig { per_device_train_batch_size: 0, ..d() }, "per_device_train_batch_size must be at least 1"),
        (TrainConfig { per_device_eval_batch_size: 0, ..d() }, "per_device_eval_batch_size must be at least 1"),
        (TrainConfig { num_train_epochs: 0, ..d() }, "num_train_epochs must be at least 1"),
        (TrainConfig { max_seq_length: 3, ..d() }, "max_seq_length 3 must be at least 5"),
        // batch × accumulation overflowed to 0 and divided by it (issue 24)
        (
            TrainConfig { per_device_train_batch_size: usize::MAX, gradient_accumulation_steps: 2, ..d() },
            "per_device_train_batch_size 18446744073709551615 is more than this engine runs",
        ),
        (TrainConfig { gradient_accumulation_steps: 1 << 40, ..d() }, "gradient_accumulation_steps 1099511627776 is more"),
        (TrainConfig { num_train_epochs: usize::MAX, ..d() }, "num_train_epochs 18446744073709551615 is more"),
    ] {
        let e = try_config(config).expect(want);
        assert!(e.contains(want), "{e} / {want}");
    }
    assert_eq!(try_config(d()), None);
    // a head too large to allocate is refused, not aborted on
    let huge = HeadSpec { hidden: 100_000_000, ..spec };
    let e = huge.check_size().unwrap_err().to_string();
    assert!(e.contains("too large"), "{e}");
    // features that do not fit the head
    let setup = RunSetup { run_id: "x".into(), model: identity("toy", 12, "00"), config: d(), spec };
    let e = Training::new(setup, HeadBackend::new(spec, spec.init(0), None), spec.init(0), toy(10, 11, 1), toy(10, 12, 2)).err().unwrap();
    assert!(e.to_string().contains("the head reads 12 per pair"), "{e}");
}

#[test]
fn the_schedule_warms_up_then_decays_linearly_to_zero() {
    assert_eq!(learning_rate_at(0, 100, 10, 1.0), 0.0);
    assert_eq!(learning_rate_at(5, 100, 10, 1.0), 0.5);
    assert_eq!(learning_rate_at(10, 100, 10, 1.0), 1.0);
    assert_eq!(learning_rate_at(55, 100, 10, 1.0), 0.5);
    assert_eq!(learning_rate_at(0, 100, 0, 2e-5), 2e-5);
    assert_eq!(learning_rate_at(100, 100, 0, 1.0), 0.0);
    // warmup longer than the run (it underflowed `total - warmup`)
    assert_eq!(learning_rate_at(50, 10, 100, 1.0), 0.5);
    assert_eq!(learning_rate_at(150, 10, 100, 1.0), 0.0);
}

#[test]
fn metrics_count_like_sklearn_and_refuse_nan() {
    // probs [p0, p1]; predictions 1, 0, 1, 1, 0 against labels 1, 1, 0, 1, 0
    let probs = [0.2, 0.8, 0.7, 0.3, 0.4, 0.6, 0.1, 0.9, 0.6, 0.4];
    let m = evaluate(&probs, &[1, 1, 0, 1, 0], 2).unwrap();
    assert_eq!(
        m.scores,
        Scores::Classes { accuracy: 0.6, f1: Some(2.0 * 2.0 / (2.0 * 2.0 + 1.0 + 1.0)), confusion: Some(vec![vec![1, 1], vec![1, 2]]) }
    );
    // a NaN probability is an error, not a vote for class 0
    let nan = [0.2, 0.8, f32::NAN, f32::NAN];
    let e = evaluate(&nan, &[1, 0], 2).unwrap_err().to_string();
    assert!(e.contains("non-finite probability for validation example 2"), "{e}");
    assert!(evaluate(&probs[..4], &[1, 2], 2).unwrap_err().to_string().contains("label 2"));
    // three classes: accuracy, no binary F1
    let m = evaluate(&[0.1, 0.2, 0.7, 0.5, 0.3, 0.2], &[2, 1], 3).unwrap();
    assert_eq!(m.scores, Scores::Classes { accuracy: 0.5, f1: None, confusion: Some(vec![vec![0; 3], vec![1, 0, 0], vec![0, 0, 1]]) });
    // metrics saved by a run before N labels still read
    let old: Metrics = serde_json::from_str(r#"{"loss": 0.5, "accuracy": 0.75, "f1": 0.8, "confusion": [[1, 2], [3, 4]]}"#).unwrap();
    assert_eq!(old.scores, Scores::Classes { accuracy: 0.75, f1: Some(0.8), confusion: Some(vec![vec![1, 2], vec![3, 4]]) });
    let now: Metrics = serde_json::from_str(&serde_json::to_string(&m).unwrap()).unwrap();
    assert_eq!(now, m);
}

#[test]
fn every_tasks_metrics_cross_between_the_engine_worker_and_the_page() {
    // the worker's messages are postcard, which cannot read what only a self-describing format can
    // (an epoch's metrics were dropped on the page, and its run never seemed to end)
    let entity = |kind: &str| EntityScores { kind: kind.into(), precision: 0.5, recall: 0.25, f1: 1.0 / 3.0, support: 4 };
    for scores in [
        Scores::Classes { accuracy: 0.5, f1: None, confusion: Some(vec![vec![0, 1, 2], vec![3, 4, 5], vec![6, 7, 8]]) },
        Scores::Classes { accuracy: 0.75, f1: Some(0.8), confusion: None },
        Scores::Regression { pearson: 0.9, spearman: -0.1 },
        Scores::Entities { all: entity(""), accuracy: 0.9, types: vec![entity("LOC"), entity("PER")] },
    ] {
        let metrics = Metrics { loss: 0.25, scores };
        let event = FromWorker::Run(RunEvent::Epoch { metrics: metrics.clone() });
        match decode::<FromWorker>(&encode(&event).unwrap()).unwrap() {
            FromWorker::Run(RunEvent::Epoch { metrics: back }) => assert_eq!(back, metrics),
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn heads_export_and_import_with_bert_for_sequence_classification_names_and_their_model() {
    let model = identity("tiny/bert", 8, "0123456789abcdef");
    for (input, hidden) in [(HeadInput::Pooler, 0), (HeadInput::PairFeatures, 16)] {
        let spec = HeadSpec { input, in_dim: input.width(8), hidden, classes: 2 };
        let head = TrainedHead { spec, params: spec.init(9), model: Some(model.clone()) };
        let (bytes, config) = head.export().unwrap();
        let back = TrainedHead::import(&bytes).unwrap();
        assert_eq!(back, head);
        let cfg: serde_json::Value = serde_json::from_str(&config).unwrap();
        assert_eq!(cfg["num_labels"], 2);
        assert_eq!(cfg["id2label"]["1"], "equivalent");
        if hidden == 0 {
            let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
            let mut names = st.names();
            names.sort();
            assert_eq!(names, ["classifier.bias", "classifier.weight"]);
            assert_eq!(st.tensor("classifier.weight").unwrap().shape(), [2, 8]);
        }
        // it runs on its model, wherever that was loaded from, and refuses another
        back.check_model(&identity("a copy elsewhere", 8, "0123456789abcdef")).unwrap();
        let e = back.check_model(&identity("other/bert", 8, "ffffffffffffffff")).unwrap_err().to_string();
        assert!(e.contains("this head was made with tiny/bert (hidden 8, weights 01234567); the loaded model is other/bert"), "{e}");
    }
    // a classifier without our metadata: its width must fit
    let spec = HeadSpec { input: HeadInput::Pooler, in_dim: 8, hidden: 0, classes: 2 };
    let anonymous = TrainedHead { spec, params: spec.init(1), model: None };
    anonymous.check_model(&identity("any", 8, "aa")).unwrap();
    let e = anonymous.check_model(&identity("wide", 16, "bb")).unwrap_err().to_string();
    assert!(e.contains("this head reads 8 features; the loaded model wide (hidden 16, weights bb) gives 16"), "{e}");
    let e = TrainedHead::import(b"not a head").unwrap_err().to_string();
    assert!(e.contains("corrupt or truncated"), "{e}");
}

#[test]
fn a_run_resumed_from_a_checkpoint_continues_exactly() {
    let config = TrainConfig { learning_rate: 5e-2, num_train_epochs: 3, mlp_hidden: 9, ..Default::default() };
    let (full_losses, full_head) = run_all(&mut training(config.clone(), false));
    // stop part-way through the second epoch, save, resume on another backend object
    let mut t = training(config, false);
    let first_epoch = 150usize.div_ceil(16);
    while t.progress.losses.len() < first_epoch + 4 {
        pollster::block_on(t.advance()).unwrap();
    }
    let bytes = pollster::block_on(t.checkpoint()).unwrap();
    let (setup, step) = Training::peek(&bytes).unwrap();
    assert_eq!((setup.run_id.as_str(), step as usize), ("test", first_epoch + 4));
    assert_eq!(setup.model, t.setup.model);
    drop(t);
    let mut resumed = pollster::block_on(Training::resume(&bytes, None, toy(150, 12, 3), toy(60, 12, 4))).unwrap();
    let (losses, head) = run_all(&mut resumed);
    assert_eq!(losses, full_losses);
    assert_eq!(head, full_head);
    assert_eq!(resumed.progress.metrics.len(), 3);
    // on other data than it was made with, it refuses
    let e = pollster::block_on(Training::resume(&bytes, None, toy(150, 7, 3), toy(60, 12, 4))).err().unwrap().to_string();
    assert!(e.contains("the head reads 12 per pair"), "{e}");
    let e = pollster::block_on(Training::resume(b"junk", None, toy(1, 12, 3), toy(1, 12, 4))).err().unwrap().to_string();
    assert!(e.contains("corrupt or truncated"), "{e}");
    // a saved run whose head is too large to allocate: refused before anything is sized by it
    // (resume made the head's initial weights first, and aborted)
    let huge = edit_metadata(&bytes, |state| state.replace("\"hidden\":9", "\"hidden\":10000000000000"));
    let e = pollster::block_on(Training::resume(&huge, None, toy(150, 12, 3), toy(60, 12, 4))).err().unwrap().to_string();
    assert!(e.contains("too large"), "{e}");
    let no_classes = edit_metadata(&bytes, |state| state.replace("\"classes\":2", "\"classes\":0"));
    let e = pollster::block_on(Training::resume(&no_classes, None, toy(150, 12, 3), toy(60, 12, 4))).err().unwrap().to_string();
    assert!(e.contains("0 classes"), "{e}");
}

/// A safetensors file with each metadata value passed through `edit`.
fn edit_metadata(bytes: &[u8], edit: impl Fn(&str) -> String) -> Vec<u8> {
    common::with_header(bytes, |header| {
        for v in header["__metadata__"].as_object_mut().unwrap().values_mut() {
            *v = edit(v.as_str().unwrap()).into();
        }
    })
}

/// The baseline row: always the training set's majority class. On MRPC-like
/// labels (two thirds positive) it scores the positive share, F1 2p/(1+p),
/// and the loss of the prior; a run whose head predicts one class is flagged.
#[test]
fn the_majority_baseline_scores_what_always_paraphrase_scores() {
    let train: Vec<u32> = (0..300).map(|i| u32::from(i % 3 != 0)).collect();
    let dev: Vec<u32> = (0..90).map(|i| u32::from(i % 3 != 2)).collect();
    let m = bertlab::finetune::majority_baseline(&train, &dev, 2).unwrap();
    let p = 2.0 / 3.0;
    assert!((m.headline().1 - p).abs() < 1e-9, "{m:?}");
    assert!((m.f1().unwrap() - 2.0 * p / (1.0 + p)).abs() < 1e-6, "{m:?}");
    let entropy = -(p * (p as f32).ln() as f64 + (1.0 - p) * ((1.0 - p) as f32).ln() as f64);
    assert!((m.loss - entropy).abs() < 1e-4, "{} vs {entropy}", m.loss);
    assert_eq!(m.predicted(), Some(vec![0, 90]));
    assert_eq!(m.single_class(), Some(1));
    let mixed = bertlab::finetune::evaluate(&[0.9, 0.1, 0.2, 0.8], &[0, 1], 2).unwrap();
    assert_eq!(mixed.single_class(), None);
    assert!(bertlab::finetune::majority_baseline(&[], &dev, 2).is_err());
}
