//! `bertlab finetune` end to end on the tiny model and the committed GLUE-layout
//! fixture (fast), with the bad inputs and settings the issues list, and the
//! feature cache (keyed by content, written atomically, checked on read).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{fixtures, tiny_dir};
use serde_json::Value;

fn bertlab(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bertlab")).args(args).env("XDG_RUNTIME_DIR", std::env::temp_dir()).output().unwrap()
}

/// A fresh folder of this test's own (data, cache, outputs).
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("bertlab-ft-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A data folder with the given train.tsv and dev.tsv texts.
fn data_dir(name: &str, train: &str, dev: &str) -> PathBuf {
    let dir = scratch(name).join("data");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("train.tsv"), train).unwrap();
    std::fs::write(dir.join("dev.tsv"), dev).unwrap();
    dir
}

/// The first `rows` rows of the committed fixture's split (header kept).
fn glue_head(file: &str, rows: usize) -> String {
    let text = std::fs::read_to_string(fixtures().join("glue-tiny").join(file)).unwrap();
    text.lines().take(rows + 1).collect::<Vec<_>>().join("\n")
}

fn json_lines(o: &Output) -> Vec<Value> {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn tiny() -> String {
    tiny_dir().to_str().unwrap().to_string()
}

/// `finetune` of a head (`--train-layers 0`) on the tiny model, the CPU path
/// and a cache folder of its own; `extra` may override any of it.
fn finetune(data: &Path, cache: &Path, extra: &[&str]) -> Output {
    let (t, d, c) = (tiny(), data.to_str().unwrap().to_string(), cache.to_str().unwrap().to_string());
    let mut args = vec!["finetune", "--model", &t, "--data", &d, "--cache-dir", &c];
    if !extra.contains(&"--backend") {
        args.extend(["--backend", "cpu"]);
    }
    if !extra.contains(&"--train-layers") {
        args.extend(["--train-layers", "0"]);
    }
    args.extend_from_slice(extra);
    bertlab(&args)
}

fn error_of(o: &Output) -> String {
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    err.lines().last().unwrap_or_default().to_string()
}

#[test]
fn trains_reports_each_epoch_exports_and_scores_the_head_again() {
    let root = scratch("ok");
    let data = data_dir("ok-data", &glue_head("train.tsv", 96), &glue_head("dev.tsv", 40));
    let out = root.join("head.safetensors");
    let o = finetune(
        &data,
        &root.join("cache"),
        &["--out", out.to_str().unwrap(), "--learning-rate", "1e-3", "--num-train-epochs", "2", "--json"],
    );
    let lines = json_lines(&o);
    let steps: Vec<&Value> = lines.iter().filter(|l| l.get("step").is_some()).collect();
    assert_eq!(steps.len(), 2 * 96 / 16);
    let epochs: Vec<&Value> = lines.iter().filter(|l| l.get("eval_accuracy").is_some()).collect();
    assert_eq!(epochs.len(), 2);
    assert_eq!(epochs[1]["epoch"], 2.0);
    let fin = lines.last().unwrap();
    // the fixture's first 40 validation rows: count the positives the same way
    let dev = std::fs::read_to_string(data.join("dev.tsv")).unwrap();
    let positives = dev.lines().skip(1).filter(|l| l.starts_with('1')).count() as f64;
    let majority = positives.max(40.0 - positives) / 40.0;
    assert_eq!(fin["majority_class_accuracy"].as_f64().unwrap(), majority);
    let confusion = &fin["final"]["confusion_matrix"];
    let cell = |i: usize, j: usize| confusion[i][j].as_u64().unwrap() as f64;
    assert_eq!(cell(0, 0) + cell(0, 1) + cell(1, 0) + cell(1, 1), 40.0);
    assert_eq!(cell(1, 0) + cell(1, 1), positives);
    let acc = fin["final"]["eval_accuracy"].as_f64().unwrap();
    assert_eq!(acc, (cell(0, 0) + cell(1, 1)) / 40.0);

    // the exported head loads as BertForSequenceClassification's classifier
    let cfg: Value = serde_json::from_slice(&std::fs::read(out.with_extension("config.json")).unwrap()).unwrap();
    assert_eq!(cfg["num_labels"], 2);
    assert_eq!(cfg["id2label"]["0"], "not_equivalent");

    // scoring it again, encoding afresh (no cache), gives the same numbers
    let dev = data.join("dev.tsv");
    let args = [
        "finetune",
        "--eval-only",
        "--head",
        out.to_str().unwrap(),
        "--data",
        dev.to_str().unwrap(),
        "--model",
        &tiny(),
        "--json",
        "--backend",
        "cpu",
        "--no-cache",
    ];
    let again = json_lines(&bertlab(&args));
    assert_eq!(again[0]["eval_accuracy"].as_f64().unwrap(), acc);
    assert_eq!(again[0]["confusion_matrix"], fin["final"]["confusion_matrix"]);
    assert_eq!(again[0]["eval_loss"], fin["final"]["eval_loss"]);
}

/// `--train-layers all` and `1`: BERT itself fine-tuned, written as a
/// Hugging Face folder that `embed` and `--eval-only` read back.
#[test]
fn encoder_layers_fine_tune_and_export_a_folder_that_loads_again() {
    let root = scratch("model");
    let data = data_dir("model-data", &glue_head("train.tsv", 96), &glue_head("dev.tsv", 40));
    let base = bertlab::Model::from_dir(&tiny_dir()).unwrap().weights;
    // the whole model and the top layer on the CPU path, the whole model on the GPU
    for (layers, backend) in [("all", "cpu"), ("1", "cpu"), ("all", "gpu")] {
        let out = root.join(format!("model-{layers}-{backend}"));
        let o = finetune(
            &data,
            &root.join("cache"),
            &[
                "--train-layers",
                layers,
                "--backend",
                backend,
                "--out",
                out.to_str().unwrap(),
                "--learning-rate",
                "1e-3",
                "--num-train-epochs",
                "2",
                "--json",
            ],
        );
        let lines = json_lines(&o);
        assert_eq!(lines.iter().filter(|l| l.get("step").is_some()).count(), 2 * 96 / 16, "{layers}");
        let epochs: Vec<&Value> = lines.iter().filter(|l| l.get("train_loss").is_some()).collect();
        let loss = |e: usize| epochs[e]["train_loss"].as_f64().unwrap();
        assert!(loss(1) < loss(0), "--train-layers {layers}: the training loss should fall: {} then {}", loss(0), loss(1));
        let fin = &lines.last().unwrap()["final"];

        let cfg: Value = serde_json::from_slice(&std::fs::read(out.join("config.json")).unwrap()).unwrap();
        assert_eq!(cfg["architectures"][0], "BertForSequenceClassification");
        assert_eq!(cfg["hidden_size"], 32, "the base model's config is kept");
        assert!(out.join("vocab.txt").is_file());
        let tuned = bertlab::Model::from_dir(&out).unwrap().weights;
        assert_ne!(tuned.layers[1].ffn_out.weight, base.layers[1].ffn_out.weight, "{layers}: the top layer trained");
        let frozen = tuned.layers[0].qkv.weight == base.layers[0].qkv.weight && tuned.word_embeddings == base.word_embeddings;
        assert_eq!(frozen, layers == "1", "--train-layers {layers}: the layers below stay as loaded exactly when they are frozen");

        // the folder scores the same again, and embeds
        let dev = data.join("dev.tsv");
        let again =
            json_lines(&bertlab(&["finetune", "--eval-only", "--model", out.to_str().unwrap(), "--data", dev.to_str().unwrap(), "--json"]));
        // scored on the CPU path again: the same numbers, to rounding when the run evaluated on the GPU
        let (a, b) = (again[0]["eval_loss"].as_f64().unwrap(), fin["eval_loss"].as_f64().unwrap());
        assert!((a - b).abs() <= if backend == "gpu" { 1e-5 } else { 0.0 }, "{layers} on {backend}: eval loss {a} again, {b} in the run");
        assert_eq!(again[0]["confusion_matrix"], fin["confusion_matrix"]);
        let e = bertlab(&["embed", "--model", out.to_str().unwrap(), "--backend", "cpu", "the cat sat"]);
        assert!(e.status.success(), "{}", String::from_utf8_lossy(&e.stderr));
    }
    let model_dir = root.join("model-all-cpu");
    for (args, want) in [
        (&["--train-layers", "3"][..], "--train-layers 3: the model has only 2 layers"),
        (&["--train-layers", "top"], "give `all` or a number"),
        (&["--train-layers", "all", "--head-input", "cls"], "--head-input, --mlp-hidden and --baseline are for --train-layers 0"),
    ] {
        let e = error_of(&finetune(&data, &root.join("cache"), args));
        assert!(e.contains(want), "{args:?}: {e}");
    }
    let e = error_of(&bertlab(&["finetune", "--eval-only", "--model", &tiny(), "--data", data.join("dev.tsv").to_str().unwrap()]));
    assert!(e.contains("config.json's architectures is \"BertModel\": not a fine-tuned"), "{e}");
    assert!(model_dir.is_dir());
}

#[test]
fn bad_data_and_settings_give_clear_messages() {
    let cache = scratch("bad").join("cache");
    let good = glue_head("dev.tsv", 20);
    let dir = data_dir("empty", "", &good);
    assert!(error_of(&finetune(&dir, &cache, &[])).contains("train.tsv: input error: the TSV file is empty"));

    let three = "a\tb\tc\n1\t2\t3\n";
    let dir = data_dir("three", three, &good);
    assert!(error_of(&finetune(&dir, &cache, &[])).contains("has 3 columns; a GLUE pair TSV has 5"));

    let labels = "Quality\t#1 ID\t#2 ID\t#1 String\t#2 String\n2\t1\t2\ta b\tc d\nyes\t1\t2\te\tf\n";
    let dir = data_dir("labels", labels, &good);
    let e = error_of(&finetune(&dir, &cache, &[]));
    assert!(e.contains("no usable rows") && e.contains("line 2: label \"2\" is not 0 or 1"), "{e}");

    // some bad rows among good ones: skipped with a warning naming the line
    let mixed = format!("{}\n1\t7\t8\tonly four columns\n", glue_head("train.tsv", 16));
    let dir = data_dir("mixed", &mixed, &good);
    let o = finetune(&dir, &cache, &["--num-train-epochs", "1", "--json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("skipped line 18: 4 columns instead of 5"));

    // a learning rate of 1e3 diverges: a clear stop, and the last good head is still written
    let dir = data_dir("nan", &glue_head("train.tsv", 32), &good);
    let out = dir.join("head.safetensors");
    let e = error_of(&finetune(&dir, &cache, &["--learning-rate", "1e3", "--num-train-epochs", "40", "--out", out.to_str().unwrap()]));
    assert!(e.contains("learning rate is too high"), "{e}");
    let head = std::fs::read(&out).unwrap();
    let st = safetensors::SafeTensors::deserialize(&head).unwrap();
    let w = st.tensor("classifier.weight").unwrap();
    assert!(w.data().chunks_exact(4).all(|b| f32::from_le_bytes(b.try_into().unwrap()).is_finite()));

    for (args, want) in [
        (&["--learning-rate=-1"][..], "learning_rate -1 must be a positive number"),
        (&["--learning-rate", "NaN"], "learning_rate NaN must be a positive number"),
        (&["--weight-decay=-0.1"], "weight_decay -0.1 must be a number ≥ 0"),
        (&["--weight-decay", "nan"], "weight_decay NaN must be a number ≥ 0"),
        (&["--num-train-epochs", "0"], "num_train_epochs must be at least 1"),
        (&["--per-device-train-batch-size", "0"], "per_device_train_batch_size must be at least 1"),
        (&["--per-device-eval-batch-size", "0"], "per_device_eval_batch_size must be at least 1"),
        (&["--max-seq-length", "2"], "max_seq_length 2 must be at least 5"),
        (&["--mlp-hidden", "100000000"], "is too large"),
        (&["--head-input", "cls2"], "unknown head input"),
    ] {
        let e = error_of(&finetune(&dir, &cache, args));
        assert!(e.contains(want), "{args:?}: {e}");
    }
}

/// `--out` loses nothing (issue 24): a non-empty destination is refused
/// unless --overwrite-output-dir, the base model's folder always; the result
/// replaces the folder whole (no stale file from before survives); a
/// destination that cannot be written fails before the first step.
#[test]
fn out_never_overwrites_by_surprise_and_is_checked_before_training() {
    let root = scratch("out");
    let cache = root.join("cache");
    let data = data_dir("out-data", &glue_head("train.tsv", 32), &glue_head("dev.tsv", 16));
    let layers = |out: &Path, extra: &[&str]| {
        let o = out.to_str().unwrap().to_string();
        let args = [&["--train-layers", "all", "--num-train-epochs", "1", "--json", "--out", &o][..], extra].concat();
        finetune(&data, &cache, &args)
    };
    // an existing folder with a stale tokenizer.json (it would win over the export's vocab.txt on load)
    let out = root.join("model");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("tokenizer.json"), "{ stale }").unwrap();
    let e = error_of(&layers(&out, &[]));
    assert!(e.contains("already exists and is not empty: pass --overwrite-output-dir"), "{e}");
    assert_eq!(std::fs::read_to_string(out.join("tokenizer.json")).unwrap(), "{ stale }", "a refusal touches nothing");
    json_lines(&layers(&out, &["--overwrite-output-dir"]));
    assert!(!out.join("tokenizer.json").exists(), "the stale file went with the old folder");
    let mut names: Vec<String> = std::fs::read_dir(&out).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    names.sort();
    assert_eq!(names, ["config.json", "model.safetensors", "tokenizer_config.json", "vocab.txt"]);
    bertlab::Model::from_dir(&out).unwrap();
    let siblings: Vec<_> = std::fs::read_dir(&root).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(siblings.iter().all(|n| !n.to_string_lossy().contains("partial")), "nothing staged is left: {siblings:?}");

    // the model being trained, or a folder holding it, is never an output, flag or not
    let model = root.join("base");
    std::fs::create_dir_all(&model).unwrap();
    for f in ["config.json", "model.safetensors", "vocab.txt", "tokenizer_config.json"] {
        std::fs::copy(tiny_dir().join(f), model.join(f)).unwrap();
    }
    let before = std::fs::read(model.join("model.safetensors")).unwrap();
    for out in [model.clone(), root.clone()] {
        let (m, d, o) = (model.to_str().unwrap(), data.to_str().unwrap(), out.to_str().unwrap());
        let e = error_of(&bertlab(&["finetune", "--model", m, "--data", d, "--out", o, "--overwrite-output-dir", "--no-cache"]));
        assert!(e.contains("is (or holds) the model being trained"), "{e}");
    }
    assert_eq!(std::fs::read(model.join("model.safetensors")).unwrap(), before);

    // an unwritable destination fails before any step (it failed after training)
    let o = layers(Path::new("/proc/bertlab-out"), &[]);
    let e = error_of(&o);
    assert!(e.contains("cannot write beside --out /proc/bertlab-out"), "{e}");
    assert!(o.stdout.is_empty(), "no step ran: {}", String::from_utf8_lossy(&o.stdout));

    // a head file: refused when it exists, replaced with the flag
    let head = root.join("head.safetensors");
    std::fs::write(&head, "old").unwrap();
    let h = head.to_str().unwrap();
    let e = error_of(&finetune(&data, &cache, &["--num-train-epochs", "1", "--out", h]));
    assert!(e.contains("already exists"), "{e}");
    json_lines(&finetune(&data, &cache, &["--num-train-epochs", "1", "--json", "--out", h, "--overwrite-output-dir"]));
    safetensors::SafeTensors::deserialize(&std::fs::read(&head).unwrap()).unwrap();
}

/// An error after progress lines (`\r`-rewritten) starts a line of its own,
/// and settings whose product overflowed are refused by name.
#[test]
fn errors_start_their_own_line_and_overflowing_settings_are_refused() {
    let root = scratch("line");
    let data = data_dir("line-data", &glue_head("train.tsv", 64), &glue_head("dev.tsv", 16));
    let o = finetune(&data, &root.join("cache"), &["--train-layers", "all", "--learning-rate", "1e30", "--num-train-epochs", "3"]);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("\rstep 1/"), "progress was shown: {err:?}");
    let line = err.split('\n').find(|l| l.contains("error:")).unwrap();
    assert!(line.starts_with("error: "), "the error shares a line with the progress: {line:?}");

    let e = error_of(&finetune(
        &data,
        &root.join("cache"),
        &["--per-device-train-batch-size", "18446744073709551615", "--gradient-accumulation-steps", "2"],
    ));
    assert!(e.contains("per_device_train_batch_size 18446744073709551615 is more than this engine runs"), "{e}");
}

/// The cache holds features by content: a second run reads them (and gives
/// the same numbers), another model or other texts miss, and a broken file
/// is recomputed, not trusted.
#[test]
fn the_feature_cache_is_keyed_by_content_and_checked_on_read() {
    let root = scratch("cache");
    let cache = root.join("cache");
    let data = data_dir("cache-data", &glue_head("train.tsv", 48), &glue_head("dev.tsv", 24));
    let run = |extra: &[&str]| json_lines(&finetune(&data, &cache, &[&["--num-train-epochs", "1", "--json"][..], extra].concat()));
    let files = || -> Vec<PathBuf> {
        let mut f: Vec<PathBuf> = std::fs::read_dir(cache.join("features")).unwrap().map(|e| e.unwrap().path()).collect();
        f.sort();
        f
    };
    let first = run(&[]);
    let cached = files();
    assert_eq!(cached.len(), 2, "train and dev features: {cached:?}");
    assert!(cached.iter().all(|p| p.extension().unwrap() == "safetensors"), "no temporary file left: {cached:?}");
    let modified: Vec<_> = cached.iter().map(|p| std::fs::metadata(p).unwrap().modified().unwrap()).collect();
    assert_eq!(run(&[]).last(), first.last(), "a run from the cache gives the same numbers");
    let again: Vec<_> = cached.iter().map(|p| std::fs::metadata(p).unwrap().modified().unwrap()).collect();
    assert_eq!(modified, again, "the second run read the cache instead of writing it");

    // other settings and other texts are other entries
    run(&["--max-seq-length", "16"]);
    assert_eq!(files().len(), 4);
    std::fs::write(data.join("dev.tsv"), glue_head("dev.tsv", 23)).unwrap();
    run(&[]);
    assert_eq!(files().len(), 5);
    std::fs::write(data.join("dev.tsv"), glue_head("dev.tsv", 24)).unwrap();

    // a file cut short (a Ctrl-C with a non-atomic writer) or overwritten is recomputed
    for f in &cached {
        let bytes = std::fs::read(f).unwrap();
        std::fs::write(f, &bytes[..bytes.len() / 2]).unwrap();
    }
    assert_eq!(run(&[]).last(), first.last());
    for f in &cached {
        assert!(safetensors::SafeTensors::deserialize(&std::fs::read(f).unwrap()).is_ok(), "{} was rewritten", f.display());
    }
    // another file's content under this key: the key in its metadata disagrees
    let bytes = std::fs::read(&cached[0]).unwrap();
    std::fs::write(&cached[1], &bytes).unwrap();
    assert_eq!(run(&[]).last(), first.last());

    // --no-cache writes nothing
    let other = root.join("other-cache");
    let o = bertlab(&[
        "finetune",
        "--model",
        &tiny(),
        "--data",
        data.to_str().unwrap(),
        "--backend",
        "cpu",
        "--num-train-epochs",
        "1",
        "--json",
        "--train-layers",
        "0",
        "--no-cache",
        "--cache-dir",
        other.to_str().unwrap(),
    ]);
    assert!(o.status.success());
    assert!(!other.exists());
}
