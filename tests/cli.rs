//! The `bertlab` binary as a user runs it.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{assert_close, f32s, fixtures, minilm_dir, read_json, tiny_dir};
use serde_json::Value;

fn bertlab(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bertlab"))
        .args(args)
        // Mesa's WSI complains on stderr when this is unset; keep stderr ours.
        .env("XDG_RUNTIME_DIR", std::env::temp_dir())
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A copy of the tiny model with `edit` applied, in a fresh temp folder.
fn tiny_copy(name: &str, edit: impl FnOnce(&Path)) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("bertlab-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for f in ["config.json", "model.safetensors", "vocab.txt", "tokenizer_config.json"] {
        std::fs::copy(tiny_dir().join(f), dir.join(f)).unwrap();
    }
    edit(&dir);
    dir
}

/// Fails with exit code 1 and one line on stderr that contains `expect`.
#[track_caller]
fn assert_one_line_error(o: &Output, expect: &str) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(1), "stderr: {err}");
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "not one line: {err}");
    assert!(err.starts_with("error: ") && err.contains(expect), "{err:?} lacks {expect:?}");
}

#[test]
fn embed_prints_tokens_shape_and_a_pytorch_style_summary() {
    let o = bertlab(&["embed", "Hello, how are you?", "--backend", "cpu"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains(r#"tokens (8): ["[CLS]", "hello", ",", "how", "are", "you", "?", "[SEP]"]"#), "{out}");
    assert!(out.contains("last_hidden_state: torch.Size([1, 8, 384])"), "{out}");
    assert!(out.contains("tensor([[[-0.0406, -0.0248,  0.1411,  ..., -0.1443, -0.2807, -0.1596],"), "{out}");
    assert!(out.contains("pooler_output: torch.Size([1, 384])"), "{out}");
    assert!(out.contains("backend: CPU"), "{out}");
}

fn embed_json(args: &[&str]) -> Value {
    let o = bertlab(args);
    assert!(o.status.success(), "{}", stderr(&o));
    serde_json::from_str(&stdout(&o)).unwrap()
}

fn flat(v: &Value) -> Vec<f32> {
    let mut out = Vec::new();
    fn walk(v: &Value, out: &mut Vec<f32>) {
        match v {
            Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            x => out.push(x.as_f64().unwrap() as f32),
        }
    }
    walk(v, &mut out);
    out
}

#[test]
fn embed_json_equals_pytorch_on_both_backends() {
    let want = read_json(&fixtures().join("minilm.json"));
    let hello = &want["hello"];
    for backend in ["cpu", "gpu"] {
        let j = embed_json(&["embed", "Hello, how are you?", "--json", "--backend", backend]);
        assert_eq!(j["shape"], serde_json::json!([1, 8, 384]));
        assert_eq!(j["inputs"][0]["input_ids"], hello["input_ids"][0]);
        assert_close(backend, &flat(&j["last_hidden_state"]), &f32s(&hello["last_hidden_state"]), 1e-4);
        assert_close(backend, &flat(&j["pooler_output"]), &f32s(&hello["pooler_output"]), 1e-4);
        assert_close(backend, &flat(&j["sentence_embeddings"]["mean"]), &f32s(&hello["mean_pooled"]), 1e-4);
        assert!(j["backend"].as_str().unwrap().starts_with(if backend == "cpu" { "CPU" } else { "GPU" }));
    }
}

#[test]
fn pairs_and_sentences_batch_together_with_attentions() {
    let want = read_json(&fixtures().join("minilm.json"));
    let j = embed_json(&[
        "embed",
        "Hello, how are you?",
        "--pair",
        "The cat sits on the mat.",
        "A cat is sitting on a mat.",
        "--json",
        "--attentions",
        "--normalize",
        "--backend",
        "cpu",
    ]);
    let pair = &j["inputs"][1];
    assert_eq!(pair["input_ids"], want["pair"]["input_ids"][0]);
    assert_eq!(pair["token_type_ids"], want["pair"]["token_type_ids"][0]);
    // the shorter row is padded to the pair's 18 tokens and masked
    assert_eq!(j["shape"], serde_json::json!([2, 18, 384]));
    assert_eq!(j["inputs"][0]["attention_mask"].as_array().unwrap().iter().filter(|m| m == &1).count(), 8);
    let emb = flat(&j["sentence_embeddings"]["mean"]);
    let norm: f32 = emb[..384].iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!((norm - 1.0).abs() < 1e-5);
    // [batch][layer][head][query][key]: every row of every head sums to 1
    let att = &j["attentions"];
    assert_eq!(att.as_array().unwrap().len(), 2);
    assert_eq!(att[0].as_array().unwrap().len(), 6);
    for row in att[1][5][11].as_array().unwrap() {
        let s: f32 = flat(row).iter().sum();
        assert!((s - 1.0).abs() < 1e-5);
    }
}

#[test]
fn a_model_with_only_vocab_txt_works_through_model() {
    let dir = tiny_dir();
    let o = bertlab(&["embed", "hello world", "--model", dir.to_str().unwrap(), "--backend", "cpu"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let shape = out.lines().find(|l| l.starts_with("last_hidden_state: torch.Size([1, ")).unwrap();
    assert!(shape.ends_with(", 32])"), "{out}");
}

#[test]
fn bad_input_gives_one_line_errors_and_a_failing_exit_code() {
    let dir = tiny_copy("truncated", |d| {
        let b = std::fs::read(d.join("model.safetensors")).unwrap();
        std::fs::write(d.join("model.safetensors"), &b[..b.len() - 1000]).unwrap();
    });
    assert_one_line_error(&bertlab(&["embed", "hi", "--model", dir.to_str().unwrap()]), "corrupt or truncated");

    let dir = tiny_copy("corrupt", |d| std::fs::write(d.join("model.safetensors"), b"\xff\xff\xff\xff\xff\xff\xff\xffjunk").unwrap());
    assert_one_line_error(&bertlab(&["embed", "hi", "--model", dir.to_str().unwrap()]), "corrupt or truncated");

    let dir = tiny_copy("config", |d| {
        let c = std::fs::read_to_string(d.join("config.json")).unwrap();
        std::fs::write(d.join("config.json"), c.replace("\"intermediate_size\": 37", "\"intermediate_size\": 64")).unwrap();
    });
    assert_one_line_error(&bertlab(&["embed", "hi", "--model", dir.to_str().unwrap()]), "intermediate.dense.weight");

    let dir = tiny_copy("no-tokenizer", |d| std::fs::remove_file(d.join("vocab.txt")).unwrap());
    assert_one_line_error(&bertlab(&["embed", "hi", "--model", dir.to_str().unwrap()]), "neither tokenizer.json nor vocab.txt");

    let dir = tiny_copy("html-config", |d| std::fs::write(d.join("config.json"), "<html>oops</html>").unwrap());
    assert_one_line_error(&bertlab(&["embed", "hi", "--model", dir.to_str().unwrap()]), "config.json is not a valid BERT config");

    assert_one_line_error(&bertlab(&["embed", "", "--model", tiny_dir().to_str().unwrap()]), "text 1 is empty");
    assert_one_line_error(&bertlab(&["embed"]), "no text given");
    assert_one_line_error(&bertlab(&["embed", "hi", "--model", "/nonexistent/model"]), "does not exist");
}

/// Issue 24's findings on the command line: files that are not regular
/// (a FIFO hung the read, /dev/zero read 2 GB), echoed input, output bounds.
#[test]
fn files_that_are_not_regular_are_refused_and_echoes_are_cut() {
    let dir = tiny_copy("fifo", |d| {
        std::fs::remove_file(d.join("config.json")).unwrap();
        assert!(Command::new("mkfifo").arg(d.join("config.json")).status().unwrap().success());
    });
    assert_one_line_error(&bertlab(&["embed", "hi", "--model", dir.to_str().unwrap()]), "config.json is not a regular file");
    let head = fixtures().join("tiny-head/head.safetensors");
    let (model, head) = (tiny_dir(), head.to_str().unwrap().to_string());
    let o = bertlab(&["finetune", "--eval-only", "--model", model.to_str().unwrap(), "--head", &head, "--data", "/dev/zero", "--no-cache"]);
    assert_one_line_error(&o, "/dev/zero is not a regular file");

    let dir = tiny_copy("long-act", |d| {
        let c = std::fs::read_to_string(d.join("config.json")).unwrap();
        let act = "y".repeat(10 << 20);
        std::fs::write(d.join("config.json"), c.replace("\"hidden_act\": \"gelu\"", &format!("\"hidden_act\": \"{act}\""))).unwrap();
    });
    let o = bertlab(&["embed", "hi", "--model", dir.to_str().unwrap()]);
    assert_one_line_error(&o, "hidden_act \"yyyy");
    assert!(stderr(&o).len() < 300, "{} bytes of error", stderr(&o).len());
}

#[test]
fn bench_settings_without_bound_are_refused() {
    for (flag, value, want) in [
        ("--batches", "0", "--batches 0"),
        ("--batches", "100000", "--batches 100000"),
        ("--seqs", "0", "--seqs 0"),
        ("--seqs", "100000", "--seqs 100000"),
        ("--matmul-tokens", "100000000", "--matmul-tokens 100000000"),
        ("--min-seconds", "inf", "--min-seconds inf"),
        ("--min-seconds", "NaN", "--min-seconds NaN"),
    ] {
        assert_one_line_error(&bertlab(&["bench", "--backends", "cpu", "--models", "bert-base", flag, value]), want);
    }
}

#[test]
fn many_texts_print_no_giant_matrix_and_a_closed_pipe_ends_quietly() {
    let texts: Vec<String> = (0..40).map(|i| format!("sentence number {i}")).collect();
    let tiny = tiny_dir();
    let mut args = vec!["embed", "--model", tiny.to_str().unwrap(), "--backend", "cpu"];
    args.extend(texts.iter().map(String::as_str));
    let o = bertlab(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("40 sentences make a 40 × 40 matrix, not printed here"), "{out}");
    assert!(out.lines().count() < 300, "{} lines", out.lines().count());
    // `bertlab embed … | head -c 10`: stdout closes early; println! used to panic on the broken pipe
    let cmd = format!(
        "'{}' embed --model '{}' --backend cpu {} | head -c 10",
        env!("CARGO_BIN_EXE_bertlab"),
        tiny_dir().display(),
        "'one text' ".repeat(40)
    );
    let o = Command::new("sh").arg("-c").arg(cmd).env("XDG_RUNTIME_DIR", std::env::temp_dir()).output().unwrap();
    assert_eq!(o.stdout.len(), 10);
    assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));
}

#[test]
fn bench_prints_its_tables() {
    let model = minilm_dir();
    let o = bertlab(&[
        "bench",
        "--models",
        "minilm",
        "--batches",
        "1,2",
        "--seqs",
        "8",
        "--backends",
        "gpu,cpu",
        "--matmul-tokens",
        "33",
        "--min-seconds",
        "0",
        "--model-dir",
        model.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let rows: Vec<&str> = out.lines().filter(|l| l.starts_with("| all-MiniLM-L6-v2 |")).collect();
    assert_eq!(rows.len(), 4, "{out}"); // 2 backends × 2 batch sizes
    assert!(rows.iter().any(|r| r.contains("| CPU") && r.contains("| 2 × 8 |")), "{out}");
    assert_eq!(out.lines().filter(|l| l.contains("× 768 |") || l.contains("× 3072 |")).count(), 8, "{out}");
}

#[test]
fn fill_mask_explain_and_hidden_states_from_the_command_line() {
    // fill-mask --json: the pipeline's names and values (tests/fixtures/tiny-mlm/cases.json)
    let mlm = fixtures().join("tiny-mlm");
    let case = &read_json(&mlm.join("cases.json"))["cases"][0];
    let o = bertlab(&["fill-mask", "--model", mlm.to_str().unwrap(), "--backend", "cpu", "--json", case["text"].as_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let got: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let (g, w) = (&got["masks"][0]["predictions"][0], &case["masks"][0]["predictions"][0]);
    assert_eq!((&g["token"], &g["token_str"], &g["sequence"]), (&w["token"], &w["token_str"], &w["sequence"]));
    // explain --json: integrated gradients of the fixture classifier, as tests/explain.rs checks them in full
    let explain = fixtures().join("tiny-explain");
    let case = &read_json(&explain.join("cases.json"))["cases"][2];
    let o = bertlab(&["explain", "--model", explain.to_str().unwrap(), "--json", case["texts"][0].as_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let got: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(got["target"], case["target"]);
    assert_close("explain attributions", &f32s(&got["attributions"]), &f32s(&case["integrated_gradients"]), 1e-3);
    // a model that is no classifier: one line
    let o = bertlab(&["explain", "--model", tiny_dir().to_str().unwrap(), "a text"]);
    assert!(!o.status.success() && stderr(&o).trim().lines().count() == 1, "{}", stderr(&o));
    // embed --hidden-states --json: the embeddings' output and each layer's, the last equal to last_hidden_state
    let o = bertlab(&["embed", "--model", tiny_dir().to_str().unwrap(), "--backend", "cpu", "--hidden-states", "--json", "a b c"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let got: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let states = got["hidden_states"].as_array().unwrap();
    assert_eq!(states.len(), 3);
    assert_eq!(states[2], got["last_hidden_state"]);
    // compare --json: the CKA per layer and attention moved per head, as tests/compare.rs checks them on both paths
    let dir = fixtures().join("tiny-compare");
    let (base, tuned, data) = (tiny_dir(), dir.join("tuned"), dir.join("data.tsv"));
    let args = ["compare", "--model", base.to_str().unwrap(), "--against", tuned.to_str().unwrap(), "--backend", "cpu"];
    let o = bertlab(&[&args[..], &["--data", data.to_str().unwrap(), "--json"]].concat());
    assert!(o.status.success(), "{}", stderr(&o));
    let (got, want) = (serde_json::from_str::<Value>(&stdout(&o)).unwrap(), read_json(&dir.join("expected.json")));
    assert_close(
        "compare CKA",
        &flat(&got["layers"].as_array().unwrap().iter().map(|l| l["cka"].clone()).collect()),
        &flat(&want["layers"].as_array().unwrap().iter().map(|l| l["cka"].clone()).collect()),
        1e-4,
    );
    assert_close("compare heads", &flat(&got["heads"]), &flat(&want["heads"]), 1e-4);
    // a data file that is missing: one line
    let o = bertlab(&[&args[..], &["--data", "no-such.tsv"]].concat());
    assert!(!o.status.success() && stderr(&o).trim().lines().count() == 1, "{}", stderr(&o));
}
