//! Backend choice and the GPU path's limits: `auto` on a software adapter,
//! its fallback to the CPU path, batches split past the binding limit,
//! sequences the GPU attention kernel refuses, and CPU forwards split between
//! helpers (the tab's helper workers).

mod common;

use bertlab::config::BertConfig;
use std::cell::Cell;
use std::rc::Rc;

use bertlab::engine::{BackendInfo, CpuReason, ForwardHelpers, GpuReason, PartForward};
use bertlab::fast_cpu::FastCpuEncoder;
use bertlab::gpu::ShaderChecks;
use bertlab::weights::BertWeights;
use bertlab::{AttentionRequest, BackendChoice, Batch, EmbedOptions, Engine, Input, Keep, Model, ModelIdentity};
use common::{assert_close, gpu, tiny_dir};

#[test]
fn auto_probes_only_ids_inside_a_small_vocabulary() {
    // a vocabulary of 50: the old probe's ids 1000..1015 would index past the tables
    let mut c = BertConfig::from_json(br#"{"hidden_size": 16, "num_attention_heads": 2, "intermediate_size": 20, "num_hidden_layers": 1}"#)
        .unwrap();
    c.vocab_size = 50;
    c.max_position_embeddings = 12;
    let ctx = gpu();
    let software = ctx.is_software();
    let engine = pollster::block_on(Engine::with_context("small", BertWeights::random(&c, 1), None, Ok(ctx), BackendChoice::Auto)).unwrap();
    match engine.backend() {
        // a software adapter (lavapipe, CI's): auto timed both on the probe and says which won
        BackendInfo::Gpu { why: GpuReason::FasterThanCpu { .. }, .. } | BackendInfo::Cpu { why: CpuReason::FasterThanSoftware { .. } }
            if software =>
        {
            assert!(engine.backend().to_string().contains("2×16 probe"))
        }
        // a hardware GPU is taken without a probe
        BackendInfo::Gpu { why: GpuReason::Hardware, .. } if !software => {}
        other => panic!("auto on a {} adapter: {other:?}", if software { "software" } else { "hardware" }),
    }
}

#[test]
fn auto_falls_back_to_the_cpu_path_when_the_gpu_path_cannot_start() {
    let model = Model::from_dir(&tiny_dir()).unwrap();
    let mut ctx = gpu();
    ctx.limit_bindings(1024); // the word embeddings alone are 188 KiB
    let mut engine = pollster::block_on(Engine::with_context(
        &model.name,
        model.weights.clone(),
        Some(model.tokenizer),
        Ok(ctx.clone()),
        BackendChoice::Auto,
    ))
    .unwrap();
    match engine.backend() {
        BackendInfo::Cpu { why: CpuReason::GpuFailed(m) } => assert!(m.contains("storage binding limit"), "{m}"),
        other => panic!("expected the CPU path after the GPU failed: {other:?}"),
    }
    assert!(engine.backend().to_string().starts_with("CPU (the GPU path could not start: "));
    assert!(pollster::block_on(engine.embed(&[Input::from("still works")], EmbedOptions::default())).is_ok());
    // asked for the GPU explicitly, the same is an error
    let model = Model::from_dir(&tiny_dir()).unwrap();
    let e = pollster::block_on(Engine::with_context("tiny", model.weights, None, Ok(ctx), BackendChoice::Gpu)).err().unwrap();
    assert!(e.to_string().contains("storage binding limit"), "{e}");
    // and without any adapter auto says why it runs on the CPU
    let model = Model::from_dir(&tiny_dir()).unwrap();
    let no_gpu = Err(bertlab::Error::Gpu("no GPU adapter: none found".into()));
    let engine = pollster::block_on(Engine::with_context("tiny", model.weights, None, no_gpu, BackendChoice::Auto)).unwrap();
    assert_eq!(engine.backend().to_string(), "CPU (no GPU adapter: none found)");
}

#[test]
fn a_batch_past_the_binding_limit_is_split_and_gives_the_same_outputs() {
    let model = Model::from_dir(&tiny_dir()).unwrap();
    let c = model.config.clone();
    let long = "the time of day and the place where we are ".repeat(6);
    let inputs: Vec<Input> = (0..5).map(|i| Input::Single(format!("{} {long}", i))).collect();
    let batch = model.tokenizer.encode_batch(&inputs).unwrap();
    assert_eq!(batch.seq_len, c.max_position_embeddings);
    let weights = model.weights.clone();
    let mut whole = pollster::block_on(Engine::with_context("tiny", weights.clone(), None, Ok(gpu()), BackendChoice::Gpu)).unwrap();
    let mut ctx = gpu();
    // room for the largest weight, and for 3 rows of every layer's attentions
    let per_row = c.num_hidden_layers * c.num_attention_heads * batch.seq_len * batch.seq_len * 4;
    let limit = (c.vocab_size * c.hidden_size * 4).max(3 * per_row + 1);
    assert!(limit / per_row < 5, "the limit must force a split");
    ctx.limit_bindings(limit as u64);
    let mut split = pollster::block_on(Engine::with_context("tiny", weights.clone(), None, Ok(ctx), BackendChoice::Gpu)).unwrap();
    let mut cpu = pollster::block_on(Engine::with_weights("tiny", weights, None, BackendChoice::Cpu)).unwrap();
    for request in [AttentionRequest::All, AttentionRequest::Row(3), AttentionRequest::None] {
        let a = pollster::block_on(whole.forward(&batch, request)).unwrap();
        let b = pollster::block_on(split.forward(&batch, request)).unwrap();
        let r = pollster::block_on(cpu.forward(&batch, request)).unwrap();
        assert_eq!(a.last_hidden_state, b.last_hidden_state, "{request:?}");
        assert_eq!(a.pooler_output, b.pooler_output);
        assert_eq!(a.attentions, b.attentions, "{request:?}");
        assert_close("split GPU vs CPU", &b.last_hidden_state, &r.last_hidden_state, 1e-4);
        assert_eq!(b.attentions.as_ref().map(|x| x.rows.clone()), r.attentions.as_ref().map(|x| x.rows.clone()));
    }
    // every layer's states with the attentions: the parts' layers join in order
    let all = Keep { attentions: AttentionRequest::All, hidden_states: true };
    let (a, b) = (pollster::block_on(whole.forward(&batch, all)).unwrap(), pollster::block_on(split.forward(&batch, all)).unwrap());
    assert_eq!(a.hidden_states, b.hidden_states);
    assert_eq!(b.hidden_states.as_ref().and_then(|s| s.last()), Some(&b.last_hidden_state));
}

#[test]
fn more_than_512_tokens_run_on_the_gpu_path_but_their_attention_probabilities_are_refused() {
    let mut c =
        BertConfig::from_json(br#"{"hidden_size": 8, "num_attention_heads": 2, "intermediate_size": 8, "num_hidden_layers": 1}"#).unwrap();
    c.vocab_size = 30;
    c.max_position_embeddings = 600;
    let w = BertWeights::random(&c, 2);
    let batch = Batch::from_rows(vec![((0..520).map(|i| (i % 30) as u32).collect(), vec![0; 520])], 0).unwrap();
    let mut g = pollster::block_on(Engine::with_context("long", w.clone(), None, Ok(gpu()), BackendChoice::Gpu)).unwrap();
    let mut cpu = pollster::block_on(Engine::with_weights("long", w, None, BackendChoice::Cpu)).unwrap();
    // the flash kernel takes any length
    let on_gpu = pollster::block_on(g.forward(&batch, AttentionRequest::None)).unwrap();
    let on_cpu = pollster::block_on(cpu.forward(&batch, AttentionRequest::None)).unwrap();
    assert_eq!(on_gpu.seq, 520);
    assert_close("520 tokens, GPU vs CPU", &on_gpu.last_hidden_state, &on_cpu.last_hidden_state, 1e-4);
    // the probabilities kernel holds a row of scores in workgroup memory
    let e = pollster::block_on(g.forward(&batch, AttentionRequest::All)).err().unwrap().to_string();
    assert!(e.contains("attention probabilities of 520 tokens exceed the GPU kernel's 512 (use the CPU backend for them)"), "{e}");
    let out = pollster::block_on(cpu.forward(&batch, AttentionRequest::All)).unwrap();
    assert!(out.attentions.is_some());
}

/// Helpers in this thread: each runs its part at once on its own encoder of
/// `held`'s weights; helper `failing` answers an error.
struct LocalHelpers {
    held: ModelIdentity,
    encoders: Vec<FastCpuEncoder>,
    failing: Option<usize>,
    rows_run: Cell<usize>,
}

impl ForwardHelpers for LocalHelpers {
    fn ready(&self, model: &ModelIdentity) -> usize {
        if model.same_model(&self.held) {
            self.encoders.len()
        } else {
            0
        }
    }

    fn start(&self, i: usize, _: &ModelIdentity, batch: Batch, attentions: AttentionRequest) -> PartForward {
        let out = if self.failing == Some(i) {
            Err(bertlab::Error::Input("this helper stopped".into()))
        } else {
            self.rows_run.set(self.rows_run.get() + batch.batch_size);
            Ok(self.encoders[i].forward(&batch, attentions))
        };
        Box::pin(async move { out })
    }
}

#[test]
fn a_cpu_forward_split_between_helpers_equals_the_whole_forward() {
    let model = Model::from_dir(&tiny_dir()).unwrap();
    // five rows of different lengths (padding inside every part)
    let inputs: Vec<Input> = ["a", "the time of day", "b c", "where we are and what we do here", "x y z w"].map(Input::from).to_vec();
    let batch = model.tokenizer.encode_batch(&inputs).unwrap();
    let w = model.weights.clone();
    let mut whole = pollster::block_on(Engine::with_weights("tiny", w.clone(), None, BackendChoice::Cpu)).unwrap();
    let identity = whole.identity().clone();
    let other = ModelIdentity { fingerprint: "another model".into(), ..identity.clone() };
    for (helpers, held, failing, runs_elsewhere) in
        [(1, &identity, None, 3), (2, &identity, None, 4), (4, &identity, None, 4), (2, &identity, Some(0), 2), (2, &other, None, 0)]
    {
        let local = Rc::new(LocalHelpers {
            held: held.clone(),
            encoders: (0..helpers).map(|_| FastCpuEncoder::new(&w)).collect(),
            failing,
            rows_run: Cell::new(0),
        });
        let mut split = pollster::block_on(Engine::with_weights("tiny", w.clone(), None, BackendChoice::Cpu)).unwrap();
        split.set_helpers(local.clone());
        let threads = FastCpuEncoder::threads() + if held.same_model(&identity) { helpers } else { 0 };
        assert_eq!(split.cpu_threads(), Some(threads));
        assert!(split.describe_backend().ends_with(&format!("· {threads} thread{}", if threads == 1 { "" } else { "s" })));
        for request in
            [AttentionRequest::None, AttentionRequest::Row(0), AttentionRequest::Row(3), AttentionRequest::Row(4), AttentionRequest::All]
        {
            local.rows_run.set(0);
            let a = pollster::block_on(whole.forward(&batch, request)).unwrap();
            let b = pollster::block_on(split.forward(&batch, request)).unwrap();
            let what = format!("{helpers} helpers (failing {failing:?}), {request:?}");
            assert_eq!((b.batch, b.seq, b.hidden), (a.batch, a.seq, a.hidden), "{what}");
            assert_close(&what, &b.last_hidden_state, &a.last_hidden_state, 1e-5);
            assert_close(&what, b.pooler_output.as_deref().unwrap(), a.pooler_output.as_deref().unwrap(), 1e-5);
            assert_eq!(b.attentions.as_ref().map(|x| x.rows.clone()), a.attentions.as_ref().map(|x| x.rows.clone()), "{what}");
            if let (Some(x), Some(y)) = (&a.attentions, &b.attentions) {
                assert_close(&what, &y.probs, &x.probs, 1e-5);
            }
            assert_eq!(local.rows_run.get(), runs_elsewhere, "rows the helpers ran: {what}");
        }
    }
    // one row runs where it is
    let one = model.tokenizer.encode_batch(&[Input::from("alone")]).unwrap();
    let local = Rc::new(LocalHelpers { held: identity, encoders: vec![FastCpuEncoder::new(&w)], failing: None, rows_run: Cell::new(0) });
    let mut split = pollster::block_on(Engine::with_weights("tiny", w, None, BackendChoice::Cpu)).unwrap();
    split.set_helpers(local.clone());
    pollster::block_on(split.forward(&one, AttentionRequest::All)).unwrap();
    assert_eq!(local.rows_run.get(), 0);
}

#[test]
fn a_gpu_profile_times_every_dispatch_of_one_forward() {
    let model = Model::from_dir(&tiny_dir()).unwrap();
    let layers = model.config.num_hidden_layers;
    let batch = model.tokenizer.encode_batch(&[Input::from("a short one"), Input::from("and a longer second sentence")]).unwrap();
    let mut gpu = pollster::block_on(Engine::with_context("tiny", model.weights.clone(), None, Ok(gpu()), BackendChoice::Gpu)).unwrap();
    // lavapipe has timestamp queries
    let kernels = pollster::block_on(gpu.profile(&batch)).unwrap().expect("lavapipe writes timestamps");
    let count = |name: &str| kernels.iter().filter(|(k, _)| &**k == name).count();
    assert_eq!(count("embeddings"), 1);
    // the embeddings' layer norm and two per layer
    assert_eq!(count("layernorm"), 1 + 2 * layers);
    assert_eq!(count("attention_flash"), layers);
    // four Linears per layer, on whichever path their shape takes, and the pooler
    assert_eq!(kernels.len(), 1 + (1 + 2 * layers) + layers + 4 * layers + 1, "{kernels:?}");
    assert!(kernels.iter().all(|(_, ms)| ms.is_finite() && *ms >= 0.0), "{kernels:?}");
    assert!(kernels.iter().map(|(_, ms)| ms).sum::<f64>() > 0.0);
    // the profiled forward leaves the engine as it was: the next forward equals the CPU path's
    let mut cpu = pollster::block_on(Engine::with_weights("tiny", model.weights, None, BackendChoice::Cpu)).unwrap();
    let g = pollster::block_on(gpu.forward(&batch, AttentionRequest::None)).unwrap();
    let c = pollster::block_on(cpu.forward(&batch, AttentionRequest::None)).unwrap();
    assert_close("after a profile, GPU vs CPU", &g.last_hidden_state, &c.last_hidden_state, 1e-4);
    // the CPU path has no kernels to time
    let e = pollster::block_on(cpu.profile(&batch)).err().unwrap().to_string();
    assert!(e.contains("run on the GPU backend"), "{e}");
}

#[test]
fn shaders_without_wgpus_runtime_checks_compute_the_same_outputs() {
    // what `bertlab bench --shader-checks` measures: the same kernels, made without each check
    let model = Model::from_dir(&tiny_dir()).unwrap();
    let batch = model.tokenizer.encode_batch(&[Input::from("a short one"), Input::from("and a longer second sentence")]).unwrap();
    let mut cpu = pollster::block_on(Engine::with_weights("tiny", model.weights.clone(), None, BackendChoice::Cpu)).unwrap();
    let want = pollster::block_on(cpu.forward(&batch, AttentionRequest::All)).unwrap();
    for checks in ShaderChecks::ALL {
        let mut ctx = gpu();
        // SAFETY: the kernels' indexing is held in bounds by tests/kernels.rs
        unsafe { ctx.set_shader_checks(checks) };
        let mut engine =
            pollster::block_on(Engine::with_context("tiny", model.weights.clone(), None, Ok(ctx), BackendChoice::Gpu)).unwrap();
        let got = pollster::block_on(engine.forward(&batch, AttentionRequest::All)).unwrap();
        assert_close(&format!("{checks:?}: last_hidden_state"), &got.last_hidden_state, &want.last_hidden_state, 1e-4);
        assert_close(&format!("{checks:?}: attentions"), &got.attentions.unwrap().probs, &want.attentions.as_ref().unwrap().probs, 1e-5);
    }
}
