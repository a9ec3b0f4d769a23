//! Tasks beyond MRPC: their scores against sklearn's, scipy's and seqeval's
//! (tests/fixtures/metrics.json, made by tests/reference/make_metrics_fixture.py).

mod common;

use bertlab::task::metrics::{classification, entity_scores, pearson, spearman};
use common::{fixtures, read_json};
use serde_json::Value;

fn numbers(v: &Value) -> Vec<f64> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()
}

#[test]
fn scores_equal_sklearn_scipy_and_seqeval() {
    let f = read_json(&fixtures().join("metrics.json"));
    let close = |what: &str, a: f64, b: &Value| assert!((a - b.as_f64().unwrap()).abs() < 1e-12, "{what}: {a} vs {b}");

    let c = &f["classification"];
    let ids = |v: &Value| v.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect::<Vec<_>>();
    let (acc, f1, _) = classification(&ids(&c["pred"]), &ids(&c["gold"]), 2);
    close("accuracy", acc, &c["accuracy"]);
    close("F1", f1.unwrap(), &c["f1"]);

    let r = &f["regression"];
    let (x, y) = (numbers(&r["x"]), numbers(&r["y"]));
    close("Pearson", pearson(&x, &y), &r["pearson"]);
    close("Spearman (ties)", spearman(&x, &y), &r["spearman"]);

    let e = &f["entities"];
    let tags = |v: &Value| -> Vec<Vec<String>> {
        v.as_array().unwrap().iter().map(|s| s.as_array().unwrap().iter().map(|t| t.as_str().unwrap().to_string()).collect()).collect()
    };
    let (gold, pred) = (tags(&e["gold"]), tags(&e["pred"]));
    let sentences: Vec<(Vec<&str>, Vec<&str>)> =
        pred.iter().zip(&gold).map(|(p, g)| (p.iter().map(String::as_str).collect(), g.iter().map(String::as_str).collect())).collect();
    let (all, accuracy, per_type) = entity_scores(&sentences);
    close("entity precision", all.precision, &e["precision"]);
    close("entity recall", all.recall, &e["recall"]);
    close("entity F1", all.f1, &e["f1"]);
    close("word accuracy", accuracy, &e["accuracy"]);
    assert_eq!(per_type.len(), 4);
    for row in per_type {
        let want = &e["per_type"][&row.kind];
        close(&format!("{} F1", row.kind), row.f1, &want["f1-score"]);
        close(&format!("{} precision", row.kind), row.precision, &want["precision"]);
        assert_eq!(row.support as f64, want["support"].as_f64().unwrap(), "{} support", row.kind);
    }
}

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use bertlab::classifier::backprop::forward;
use bertlab::classifier::export::read_head_config;
use bertlab::classifier::math::CpuMath;
use bertlab::classifier::{ClassifierParams, HeadKind, Labels, TrainLayers};
use bertlab::tokenize::Batch;
use common::{assert_close, f32s, tiny_dir};

fn bertlab(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bertlab")).args(args).env("XDG_RUNTIME_DIR", std::env::temp_dir()).output().unwrap()
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("bertlab-tasks-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn json_lines(o: &Output) -> Vec<Value> {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn error_of(o: &Output) -> String {
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    err.lines().last().unwrap_or_default().to_string()
}

/// Words of the tiny vocabulary, and a sentence of `n` of them from `seed`.
const WORDS: [&str; 12] = ["the", "of", "and", "in", "to", "was", "he", "is", "as", "for", "on", "with"];

fn sentence(seed: usize, n: usize) -> Vec<&'static str> {
    (0..n).map(|k| WORDS[(seed * 7 + k * 5 + seed / 3) % WORDS.len()]).collect()
}

/// Fine-tunes the tiny model on `task` with the files given; the JSON lines.
fn finetune(dir: &Path, args: &[&str]) -> Vec<Value> {
    let tiny = tiny_dir();
    let base = ["finetune", "--model", tiny.to_str().unwrap(), "--backend", "cpu", "--learning-rate", "2e-3", "--json"];
    json_lines(&bertlab(&[&base[..], args, &["--data", dir.to_str().unwrap()]].concat()))
}

/// A table of single sentences with three string labels (the label depends on a word, so it can be learned).
#[test]
fn a_three_label_table_trains_exports_id2label_and_scores_again() {
    let dir = scratch("three");
    let label = |s: &[&str]| {
        if s.contains(&"he") {
            "person"
        } else if s.contains(&"in") {
            "place"
        } else {
            "other"
        }
    };
    let rows = |from: usize, n: usize| -> String {
        let mut t = String::from("text,label\n");
        for i in from..from + n {
            let s = sentence(i, 3 + i % 5);
            t += &format!("\"{}\",{}\n", s.join(" "), label(&s));
        }
        t
    };
    std::fs::write(dir.join("train.csv"), rows(0, 96)).unwrap();
    std::fs::write(dir.join("dev.csv"), rows(200, 30)).unwrap();
    let out = dir.join("model");
    let preds = dir.join("predictions.tsv");
    let lines = finetune(
        &dir,
        &["--task", "classify", "--num-train-epochs", "3", "--out", out.to_str().unwrap(), "--write-predictions", preds.to_str().unwrap()],
    );
    let epochs: Vec<&Value> = lines.iter().filter(|l| l.get("train_loss").is_some()).collect();
    assert_eq!(epochs.len(), 3);
    let loss = |e: usize| epochs[e]["train_loss"].as_f64().unwrap();
    assert!(loss(2) < loss(0), "the training loss falls: {} then {}", loss(0), loss(2));
    let fin = lines.last().unwrap();
    assert!(fin["final"]["eval_accuracy"].as_f64().is_some() && fin["final"].get("eval_f1").is_none(), "{fin}");
    assert!(fin["train_samples_per_second"].as_f64().unwrap() > 0.0);
    // id2label in sorted order, as run_glue makes it from string labels
    let cfg: Value = serde_json::from_slice(&std::fs::read(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(cfg["architectures"][0], "BertForSequenceClassification");
    assert_eq!(
        (cfg["num_labels"].as_u64(), &cfg["id2label"]["0"], &cfg["id2label"]["2"]),
        (Some(3), &Value::from("other"), &Value::from("place"))
    );
    assert_eq!(cfg["label2id"]["person"], 1);
    // scored again from the folder: the same numbers
    let dev = dir.join("dev.csv");
    let again = json_lines(&bertlab(&[
        "finetune",
        "--task",
        "classify",
        "--eval-only",
        "--model",
        out.to_str().unwrap(),
        "--data",
        dev.to_str().unwrap(),
        "--json",
    ]));
    assert_eq!(again[0]["eval_accuracy"], fin["final"]["eval_accuracy"]);
    assert!((again[0]["eval_loss"].as_f64().unwrap() - fin["final"]["eval_loss"].as_f64().unwrap()).abs() < 1e-9);
    let written = std::fs::read_to_string(&preds).unwrap();
    assert_eq!(written.lines().count(), 30);
    let correct = written.lines().filter(|l| l.split_once('\t').is_some_and(|(g, p)| g == p)).count();
    assert_eq!(correct as f64 / 30.0, fin["final"]["eval_accuracy"].as_f64().unwrap(), "the predictions file agrees with the accuracy");
}

/// Numbers that are not all integers make a regression: MSE, Pearson and Spearman, problem_type "regression".
#[test]
fn a_regression_table_reports_pearson_and_spearman_and_exports_a_regression_head() {
    let dir = scratch("regression");
    let rows = |from: usize, n: usize| -> String {
        (from..from + n)
            .map(|i| {
                let (a, b) = (sentence(i, 4), sentence(i + 1, 3));
                let score = a.iter().filter(|w| b.contains(w)).count() as f64 + 0.5;
                format!("{}\n", serde_json::json!({"sentence1": a.join(" "), "sentence2": b.join(" "), "label": score}))
            })
            .collect()
    };
    std::fs::write(dir.join("train.jsonl"), rows(0, 64)).unwrap();
    std::fs::write(dir.join("validation.jsonl"), rows(100, 24)).unwrap();
    let out = dir.join("model");
    let lines = finetune(&dir, &["--task", "classify", "--num-train-epochs", "2", "--out", out.to_str().unwrap()]);
    let fin = &lines.last().unwrap()["final"];
    for key in ["eval_loss", "eval_pearson", "eval_spearmanr"] {
        assert!(fin[key].as_f64().is_some_and(f64::is_finite), "{key}: {fin}");
    }
    let cfg: Value = serde_json::from_slice(&std::fs::read(out.join("config.json")).unwrap()).unwrap();
    assert_eq!((cfg["problem_type"].as_str(), cfg["num_labels"].as_u64()), (Some("regression"), Some(1)));
    let (kind, labels) = read_head_config(&std::fs::read(out.join("config.json")).unwrap()).unwrap();
    assert_eq!((kind, labels), (HeadKind::Sequence, Labels::Regression));
}

/// CoNLL lines: a token classifier (no pooler) whose entity F1 is seqeval's,
/// exported as BertForTokenClassification, predictions written a word a line.
#[test]
fn tokens_train_a_token_classifier_and_write_a_prediction_a_word() {
    let dir = scratch("tokens");
    let tag = |w: &str| match w {
        "he" => "B-PER",
        "in" => "B-LOC",
        "on" => "I-LOC",
        _ => "O",
    };
    let conll = |from: usize, n: usize| -> String {
        (from..from + n).map(|i| sentence(i, 3 + i % 6).iter().map(|w| format!("{w} NN {}\n", tag(w))).collect::<String>() + "\n").collect()
    };
    std::fs::write(dir.join("train.txt"), conll(0, 80)).unwrap();
    std::fs::write(dir.join("dev.txt"), conll(300, 20)).unwrap();
    let out = dir.join("model");
    let preds = dir.join("predictions.txt");
    let lines = finetune(
        &dir,
        &["--task", "tokens", "--num-train-epochs", "3", "--out", out.to_str().unwrap(), "--write-predictions", preds.to_str().unwrap()],
    );
    let fin = &lines.last().unwrap()["final"];
    for key in ["eval_precision", "eval_recall", "eval_f1", "eval_accuracy"] {
        assert!(fin[key].as_f64().is_some(), "{key}: {fin}");
    }
    assert!(fin["eval_PER"]["f1"].as_f64().is_some(), "a row per entity type: {fin}");
    let cfg: Value = serde_json::from_slice(&std::fs::read(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(cfg["architectures"][0], "BertForTokenClassification");
    assert_eq!(cfg["id2label"]["0"], "B-LOC", "tags sorted, as run_ner makes them");
    let st = std::fs::read(out.join("model.safetensors")).unwrap();
    let names = safetensors::SafeTensors::deserialize(&st).unwrap().names().into_iter().map(String::from).collect::<Vec<_>>();
    assert!(names.contains(&"classifier.weight".into()) && !names.iter().any(|n| n.contains("pooler")), "{names:?}");
    // a word a line: word, gold tag, predicted tag; a blank line between the 20 sentences
    let written = std::fs::read_to_string(&preds).unwrap();
    assert_eq!(written.split("\n\n").filter(|s| !s.trim().is_empty()).count(), 20);
    for l in written.lines().filter(|l| !l.is_empty()) {
        let f: Vec<&str> = l.split(' ').collect();
        assert_eq!(f.len(), 3, "{l:?}");
        assert_eq!(f[1], tag(f[0]), "{l:?}");
    }
    let dev = dir.join("dev.txt");
    let again = json_lines(&bertlab(&[
        "finetune",
        "--task",
        "tokens",
        "--eval-only",
        "--model",
        out.to_str().unwrap(),
        "--data",
        dev.to_str().unwrap(),
        "--json",
    ]));
    assert_eq!(again[0]["eval_f1"], fin["eval_f1"]);
}

/// A BertForTokenClassification folder as transformers' save_pretrained
/// writes it (tests/fixtures/tiny-tasks/tokens-model) loads with its labels
/// and gives PyTorch's logits.
#[test]
fn a_transformers_token_classifier_folder_loads_with_its_labels_and_logits() {
    let dir = fixtures().join("tiny-tasks/tokens-model");
    let case = &read_json(&fixtures().join("tiny-tasks/cases.json"))["tokens"];
    let (kind, labels) = read_head_config(&std::fs::read(dir.join("config.json")).unwrap()).unwrap();
    assert_eq!(kind, HeadKind::Tokens);
    assert_eq!(labels, Labels::Classes(["O", "B-PER", "I-PER", "B-LOC", "I-LOC"].map(String::from).to_vec()));
    let model = bertlab::Model::from_dir(&dir).unwrap();
    let params = ClassifierParams::from_checkpoint(model.weights, kind, &std::fs::read(dir.join("model.safetensors")).unwrap()).unwrap();
    let row = |key: &str, r: usize| -> Vec<u32> { case[key][r].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect() };
    let rows = (0..3).map(|r| {
        let len = row("attention_mask", r).iter().filter(|&&m| m == 1).count();
        (row("input_ids", r)[..len].to_vec(), row("token_type_ids", r)[..len].to_vec())
    });
    let batch = Batch::from_rows(rows.collect(), 0).unwrap();
    let f = forward(CpuMath::Reference, &params, &batch, TrainLayers::All, None, None);
    assert_close("token logits vs BertForTokenClassification", &f.logits, &f32s(&case["logits"]), 1e-5);
    // and the words of a sentence tokenize as transformers aligned them
    let words: Vec<String> = case["words"][0].as_array().unwrap().iter().map(|w| w.as_str().unwrap().to_string()).collect();
    let (ids, _) = model.tokenizer.encode_words(&words, 128, "sentence 1").unwrap();
    assert_eq!(ids, row("input_ids", 0));
}

#[test]
fn task_data_that_cannot_be_used_is_said_in_one_line() {
    let dir = scratch("bad");
    std::fs::write(dir.join("train.csv"), "text,label\na b,x\n").unwrap();
    std::fs::write(dir.join("dev.csv"), "text,label\nc,y\n").unwrap();
    let tiny = tiny_dir();
    let run = |extra: &[&str]| {
        error_of(&bertlab(
            &[&["finetune", "--model", tiny.to_str().unwrap(), "--backend", "cpu", "--data", dir.to_str().unwrap()][..], extra].concat(),
        ))
    };
    assert!(run(&["--task", "classify"]).contains("validation file line 2: label \"y\" is not one of the task's labels (\"x\")"));
    assert!(run(&["--task", "classify", "--label-column", "stars"]).contains("no column \"stars\""));
    assert!(run(&["--task", "sst3"]).contains("unknown task \"sst3\""));
    assert!(run(&["--task", "sst2", "--train-layers", "0"]).contains("trains MRPC only"));
    assert!(run(&["--task", "tokens"]).contains("holds no training and validation files for --task tokens"));
    std::fs::write(dir.join("train.txt"), "lonely\n").unwrap();
    std::fs::write(dir.join("dev.txt"), "he B-PER\n").unwrap();
    assert!(run(&["--task", "tokens"]).contains("training file: the file has no tagged sentences"));
}
