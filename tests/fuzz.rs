//! Fuzzing in `cargo test` (issue 24): a seeded mutation loop, not
//! cargo-fuzz (which needs a nightly toolchain and a coverage-instrumented
//! build CI does not have). Each target starts from a valid file of the tiny
//! model (its corpus), applies mutations drawn from a fixed seed per case
//! (byte flips, truncation, insertion, and structure-aware edits of the
//! JSON: size fields at their edges, wrong types, huge strings), and runs
//! what a user's load or resume runs. Every case must end in `Ok` with
//! finite outputs or in an `Err` whose message is one line; a panic, or a
//! non-finite output, fails the test with the case's seed, which replays it
//! alone (`FUZZ_CASE=target:seed`); `FUZZ_SCALE=N` runs N times the cases. An abort (allocation failure) kills the
//! binary and fails it too. Crashes found are kept as named regression
//! cases in `REGRESSIONS` below. The case counts keep the whole file to
//! well under a minute in CI.

mod common;

use std::panic::{catch_unwind, AssertUnwindSafe};

use bertlab::classifier::math::CpuMath;
use bertlab::classifier::{ClassifierParams, HeadKind, TrainLayers};
use bertlab::finetune::encoded::Encoded;
use bertlab::finetune::model_training::ModelTraining;
use bertlab::finetune::training::{HeadBackend, RunSetup, Split, Training};
use bertlab::finetune::TrainConfig;
use bertlab::head::{HeadInput, HeadSpec};
use bertlab::task::Builtin;
use bertlab::{BackendChoice, EmbedOptions, Engine, Input, Model, ModelFiles, ModelIdentity};
use common::{fixtures, tiny_files, tiny_tokenizer_json, with_header};
use serde_json::Value;

/// splitmix64: the cases' randomness, reproducible from a seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Values that break parsers and allocators: sizes at their edges, wrong types, a long string.
fn edge_value(rng: &mut Rng) -> Value {
    let huge = "z".repeat(100_000);
    let values: [Value; 17] = [
        0.into(),
        1.into(),
        (-1).into(),
        3.into(),
        1000.into(),
        (1u64 << 31).into(),
        (1u64 << 40).into(),
        u64::MAX.into(),
        (-1e308).into(),
        1e-300.into(),
        0.5.into(),
        "gelu".into(),
        huge.into(),
        Value::Null,
        true.into(),
        Value::Array(vec![1.into(), 2.into()]),
        serde_json::json!({"a": 1}),
    ];
    rng.pick(&values).clone()
}

/// Byte-level damage: flips, a truncation, an insertion.
fn mutate_bytes(rng: &mut Rng, bytes: &mut Vec<u8>, region: std::ops::Range<usize>) {
    if region.is_empty() {
        return;
    }
    for _ in 0..1 + rng.below(4) {
        match rng.below(4) {
            0 => {
                let at = region.start + rng.below(region.len());
                if at < bytes.len() {
                    bytes[at] ^= 1 << rng.below(8);
                }
            }
            1 => {
                let at = region.start + rng.below(region.len());
                if at < bytes.len() {
                    bytes[at] = *rng.pick(&[0u8, 0xff, b'"', b'9', b'-', b'{', b']', 0x7f, 0x80]);
                }
            }
            2 => {
                let at = (region.start + rng.below(region.len())).min(bytes.len());
                bytes.truncate(at);
            }
            _ => {
                let at = (region.start + rng.below(region.len())).min(bytes.len());
                let junk: Vec<u8> = (0..1 + rng.below(16)).map(|_| rng.next() as u8).collect();
                bytes.splice(at..at, junk);
            }
        }
    }
}

/// Structure-aware edits of a JSON value: a field (at any depth) set to an edge value or removed.
fn mutate_json(rng: &mut Rng, v: &mut Value) {
    for _ in 0..1 + rng.below(3) {
        let depth = rng.below(4);
        edit_within(rng, v, depth);
    }
}

/// Goes down `depth` levels through containers (as far as there are), then edits one entry there.
fn edit_within(rng: &mut Rng, node: &mut Value, depth: usize) {
    let containers: Vec<usize> = match &*node {
        Value::Object(m) => m.values().enumerate().filter(|(_, c)| c.is_object() || c.is_array()).map(|(i, _)| i).collect(),
        Value::Array(a) => a.iter().enumerate().filter(|(_, c)| c.is_object() || c.is_array()).map(|(i, _)| i).collect(),
        _ => Vec::new(),
    };
    if depth > 0 && !containers.is_empty() {
        let i = *rng.pick(&containers);
        let child = match node {
            Value::Object(m) => m.values_mut().nth(i),
            Value::Array(a) => a.get_mut(i),
            _ => None,
        };
        return edit_within(rng, child.unwrap(), depth - 1);
    }
    match node {
        Value::Object(m) if !m.is_empty() => {
            let k = m.keys().nth(rng.below(m.len())).cloned().unwrap();
            if rng.below(5) == 0 {
                m.remove(&k);
            } else {
                m.insert(k, edge_value(rng));
            }
        }
        Value::Array(a) if !a.is_empty() => {
            let i = rng.below(a.len());
            a[i] = edge_value(rng);
        }
        other => *other = edge_value(rng),
    }
}

/// What a user's load runs: parse, check, and (when that succeeds) a forward
/// pass on the CPU path with a sentence and a pair. The outputs must be finite.
fn load_and_run(files: &ModelFiles) -> Result<(), String> {
    let model = Model::from_files(files).map_err(|e| e.to_string())?;
    let mut engine = pollster::block_on(Engine::new(model, BackendChoice::Cpu)).map_err(|e| e.to_string())?;
    let inputs = [Input::from("Hello, how are you?"), Input::Pair("the cat".into(), "sat on the mat".into())];
    let (_, out) = pollster::block_on(engine.embed(&inputs, EmbedOptions::default())).map_err(|e| e.to_string())?;
    let finite = out.last_hidden_state.iter().chain(out.pooler_output.iter().flatten()).all(|v| v.is_finite());
    if finite {
        Ok(())
    } else {
        Err("NON-FINITE OUTPUT".into())
    }
}

/// The safetensors header's byte range (after the 8-byte length), when it parses.
fn header_range(bytes: &[u8]) -> std::ops::Range<usize> {
    let n = bytes.get(..8).map_or(0, |b| u64::from_le_bytes(b.try_into().unwrap()) as usize);
    8..(8 + n).min(bytes.len())
}

/// A safetensors file with its header JSON mutated (shapes, dtypes, offsets, metadata).
fn mutate_safetensors_header(rng: &mut Rng, bytes: &[u8]) -> Vec<u8> {
    let mut b = with_header(bytes, |header| mutate_json(rng, header));
    if rng.below(8) == 0 {
        // a length prefix that lies
        let lie = (rng.next() >> rng.below(64)).to_le_bytes();
        b[..8].copy_from_slice(&lie);
    }
    b
}

/// One case of `target` from `seed`: the mutated input and what running it gave.
fn run_case(target: &str, seed: u64, corpus: &Corpus) -> Result<(), String> {
    let mut rng = Rng(seed.wrapping_mul(0x2545_f491_4f6c_dd1d) ^ target.len() as u64);
    let base = tiny_files();
    match target {
        "config" => {
            let mut files = base.clone();
            let bytes = files.config_json.as_mut().unwrap();
            if rng.below(4) == 0 {
                let len = bytes.len();
                mutate_bytes(&mut rng, bytes, 0..len);
            } else {
                let mut v: Value = serde_json::from_slice(bytes).unwrap();
                mutate_json(&mut rng, &mut v);
                *bytes = serde_json::to_vec(&v).unwrap();
            }
            load_and_run(&files)
        }
        "vocab" => {
            let mut files = base.clone();
            let text = String::from_utf8(files.vocab_txt.take().unwrap()).unwrap();
            let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
            for _ in 0..1 + rng.below(3) {
                let i = rng.below(lines.len());
                match rng.below(5) {
                    0 => {
                        lines.remove(i);
                    }
                    1 => lines[i] = "[CLS]".into(),
                    2 => lines[i] = "x".repeat(1 + rng.below(5000)),
                    3 => lines.truncate(i),
                    _ => lines[i] = String::from_utf8_lossy(&rng.next().to_le_bytes()).into_owned(),
                }
            }
            let mut bytes = lines.join("\n").into_bytes();
            if rng.below(4) == 0 {
                let len = bytes.len();
                mutate_bytes(&mut rng, &mut bytes, 0..len);
            }
            files.vocab_txt = Some(bytes);
            load_and_run(&files)
        }
        "tokenizer_json" => {
            let mut files = base.clone();
            let mut v = corpus.tokenizer_json.clone();
            mutate_json(&mut rng, &mut v);
            let mut bytes = serde_json::to_vec(&v).unwrap();
            if rng.below(4) == 0 {
                let len = bytes.len();
                mutate_bytes(&mut rng, &mut bytes, 0..len);
            }
            files.tokenizer_json = Some(bytes);
            load_and_run(&files)
        }
        "safetensors" => {
            let mut files = base.clone();
            let bytes = files.model_safetensors.take().unwrap();
            let mutated = match rng.below(3) {
                0 => mutate_safetensors_header(&mut rng, &bytes),
                1 => {
                    let mut b = bytes.clone();
                    let h = header_range(&b);
                    mutate_bytes(&mut rng, &mut b, h);
                    b
                }
                _ => {
                    // values: NaN, infinities and huge numbers among the data
                    let mut b = bytes.clone();
                    let data = header_range(&b).end..b.len();
                    for _ in 0..1 + rng.below(3) {
                        let at = data.start + 4 * rng.below(data.len() / 4);
                        let v = *rng.pick(&[f32::NAN, f32::INFINITY, -f32::INFINITY, 3e38, -3e38, 1e-45]);
                        b[at..at + 4].copy_from_slice(&v.to_le_bytes());
                    }
                    b
                }
            };
            files.model_safetensors = Some(mutated);
            load_and_run(&files)
        }
        "head_run" => {
            let bytes = mutate_checkpoint(&mut rng, &corpus.head_checkpoint);
            let split = |n: usize| Split { x: vec![0.25; n * 32], labels: (0..n).map(|i| (i % 2) as u32).collect() };
            match pollster::block_on(Training::resume(&bytes, None, split(20), split(8))) {
                Err(e) => Err(e.to_string()),
                Ok(mut t) => {
                    for _ in 0..3 {
                        pollster::block_on(t.advance()).map_err(|e| e.to_string())?;
                    }
                    Ok(())
                }
            }
        }
        "model_run" => {
            let bytes = mutate_checkpoint(&mut rng, &corpus.model_checkpoint);
            let model = Model::from_files(&base).unwrap();
            let (train, eval) = (corpus.pairs.clone(), corpus.pairs.clone());
            match ModelTraining::resume(&bytes, "tiny-bert", model.weights, CpuMath::Reference, train, eval) {
                Err(e) => Err(e.to_string()),
                Ok(mut t) => {
                    pollster::block_on(t.advance()).map_err(|e| e.to_string())?;
                    Ok(())
                }
            }
        }
        other => panic!("no fuzz target {other}"),
    }
}

/// A checkpoint (our safetensors with a JSON state in its metadata) with its
/// state, its header or its bytes damaged.
fn mutate_checkpoint(rng: &mut Rng, bytes: &[u8]) -> Vec<u8> {
    match rng.below(3) {
        0 => {
            // the state JSON inside the metadata, structure-aware
            with_header(bytes, |header| {
                for v in header["__metadata__"].as_object_mut().unwrap().values_mut() {
                    if let Ok(mut state) = serde_json::from_str::<Value>(v.as_str().unwrap()) {
                        mutate_json(rng, &mut state);
                        *v = state.to_string().into();
                    }
                }
            })
        }
        1 => mutate_safetensors_header(rng, bytes),
        _ => {
            let mut b = bytes.to_vec();
            let len = b.len();
            mutate_bytes(rng, &mut b, 0..len);
            b
        }
    }
}

/// The valid files each target starts from.
struct Corpus {
    tokenizer_json: Value,
    head_checkpoint: Vec<u8>,
    model_checkpoint: Vec<u8>,
    pairs: Encoded,
}

fn corpus() -> Corpus {
    let tokenizer_json = tiny_tokenizer_json();
    let model = Model::from_files(&tiny_files()).unwrap();
    let identity = ModelIdentity::of("tiny-bert", &model.weights);

    let spec = HeadSpec { input: HeadInput::Pooler, in_dim: 32, hidden: 5, classes: 2 };
    let config = TrainConfig { per_device_train_batch_size: 4, learning_rate: 1e-3, ..Default::default() };
    let setup = RunSetup { run_id: "fuzz".into(), model: identity.clone(), config, spec };
    let split = |n: usize| Split { x: vec![0.25; n * 32], labels: (0..n).map(|i| (i % 2) as u32).collect() };
    let mut head = Training::new(setup, HeadBackend::new(spec, spec.init(1), None), spec.init(1), split(20), split(8)).unwrap();
    pollster::block_on(head.advance()).unwrap();
    let head_checkpoint = pollster::block_on(head.checkpoint()).unwrap();

    let text = std::fs::read_to_string(fixtures().join("glue-tiny/train.tsv")).unwrap();
    let (mut examples, _) = bertlab::task::read_split(&Builtin::Mrpc.source(), &text, &Builtin::Mrpc.labels(), "train.tsv").unwrap();
    examples.truncate(8);
    let pairs = Encoded::encode(&model.tokenizer, &examples, 32).unwrap();
    let config = TrainConfig { per_device_train_batch_size: 4, train_layers: TrainLayers::All, ..Default::default() };
    let params = ClassifierParams::new(model.weights, HeadKind::Sequence, 2, 1);
    let labels = Builtin::Mrpc.labels();
    let mut run =
        ModelTraining::new("fuzz".into(), identity, params, labels, config, CpuMath::Reference, pairs.clone(), pairs.clone()).unwrap();
    pollster::block_on(run.advance()).unwrap();
    let model_checkpoint = pollster::block_on(run.checkpoint()).unwrap();
    // the corpus itself loads and runs: every case starts one mutation from working
    let files = ModelFiles { tokenizer_json: Some(serde_json::to_vec(&tokenizer_json).unwrap()), ..tiny_files() };
    load_and_run(&files).unwrap();
    Corpus { tokenizer_json, head_checkpoint, model_checkpoint, pairs }
}

/// Cases per target: enough to reach every mutation kind many times, small enough for CI.
const TARGETS: [(&str, u64); 6] =
    [("config", 2000), ("vocab", 500), ("tokenizer_json", 400), ("safetensors", 2000), ("head_run", 1000), ("model_run", 300)];

/// Crashes the loop found, kept as cases of their own (target, seed, what it was).
const REGRESSIONS: &[(&str, u64, &str)] = &[
    ("tokenizer_json", 398, "tokenizers' decoder `expect(\"Helper\")` on JSON broken off inside the decoder: a panic"),
    ("tokenizer_json", 1946, "a TemplateProcessing naming a special token it does not define: a panic on encoding"),
    ("tokenizer_json", 2866, "the same, another template"),
    ("tokenizer_json", 3390, "the same, another template"),
];

/// Runs one case: what went wrong with it, if anything did, and whether it ran to the end.
fn check(target: &str, seed: u64, corpus: &Corpus) -> (Option<String>, bool) {
    match catch_unwind(AssertUnwindSafe(|| run_case(target, seed, corpus))) {
        Err(panic) => {
            let msg = panic.downcast_ref::<String>().cloned().or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()));
            (Some(format!("{target}:{seed} panicked: {}", msg.unwrap_or_default())), false)
        }
        Ok(Err(e)) if e.contains("NON-FINITE") => (Some(format!("{target}:{seed} printed a non-finite output")), false),
        Ok(Err(e)) if e.contains('\n') || e.len() > 600 => {
            (Some(format!("{target}:{seed}: a message of {} bytes / several lines: {}", e.len(), &e[..e.len().min(200)])), false)
        }
        Ok(Err(_)) => (None, false),
        Ok(Ok(())) => (None, true),
    }
}

#[test]
fn mutated_model_files_and_saved_runs_never_panic_nor_print_non_finite_values() {
    let corpus = corpus();
    // a panic inside a case is caught and reported with its seed; keep the log to that
    // (a replayed case keeps the default hook: its backtrace shows where)
    if std::env::var("FUZZ_CASE").is_err() {
        std::panic::set_hook(Box::new(|_| {}));
    }
    let scale: u64 = std::env::var("FUZZ_SCALE").ok().and_then(|s| s.parse().ok()).unwrap_or(1);
    let cases: Vec<(String, u64)> = match std::env::var("FUZZ_CASE") {
        Ok(one) => {
            let (t, s) = one.split_once(':').expect("FUZZ_CASE=target:seed");
            vec![(t.to_string(), s.parse().unwrap())]
        }
        // FUZZ_SCALE=10 runs ten times the cases (a longer hunt than CI's)
        Err(_) => TARGETS
            .iter()
            .flat_map(|&(t, n)| (0..n * scale).map(move |s| (t.to_string(), s)))
            .chain(REGRESSIONS.iter().map(|&(t, s, _)| (t.to_string(), s)))
            .collect(),
    };
    let mut failures = Vec::new();
    // per target: cases that loaded (or resumed) and ran, cases refused with a message
    let mut tally: std::collections::BTreeMap<&str, (usize, usize)> = Default::default();
    for (t, s) in &cases {
        let (failure, ran) = check(t, *s, &corpus);
        failures.extend(failure);
        let entry = tally.entry(t.as_str()).or_default();
        if ran {
            entry.0 += 1
        } else {
            entry.1 += 1
        }
    }
    if std::env::var("FUZZ_CASE").is_err() {
        let _ = std::panic::take_hook();
    }
    for (t, (ran, refused)) in &tally {
        println!("fuzz {t}: {ran} ran, {refused} refused with a message");
    }
    assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), cases.len(), failures.join("\n"));
}
