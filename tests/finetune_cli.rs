//! `bertlab finetune` end to end on the tiny model and slices of MRPC (fast),
//! including the bad inputs the issue lists.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{root, tiny_dir};
use serde_json::Value;

fn bertlab(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bertlab")).args(args).env("XDG_RUNTIME_DIR", std::env::temp_dir()).output().unwrap()
}

/// A folder with the first `train` and `dev` rows of MRPC (header kept), or given texts.
fn data_dir(name: &str, train: &str, dev: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("bertlab-ft-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("train.tsv"), train).unwrap();
    std::fs::write(dir.join("dev.tsv"), dev).unwrap();
    dir
}

fn mrpc_head(file: &str, rows: usize) -> String {
    let text = std::fs::read_to_string(root().join("data/mrpc").join(file)).expect("data/mrpc is copied by .ci/setup");
    text.lines().take(rows + 1).collect::<Vec<_>>().join("\n")
}

fn json_lines(o: &Output) -> Vec<Value> {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn tiny() -> String {
    tiny_dir().to_str().unwrap().to_string()
}

#[test]
fn trains_reports_each_epoch_exports_and_scores_the_head_again() {
    let dir = data_dir("ok", &mrpc_head("train.tsv", 96), &mrpc_head("dev.tsv", 40));
    let out = dir.join("head.safetensors");
    let args = ["finetune", "--model", &tiny(), "--data", dir.to_str().unwrap(), "--out", out.to_str().unwrap(),
        "--learning-rate", "1e-3", "--num-train-epochs", "2", "--json", "--backend", "cpu"];
    let lines = json_lines(&bertlab(&args));
    let steps: Vec<&Value> = lines.iter().filter(|l| l.get("step").is_some()).collect();
    assert_eq!(steps.len(), 2 * 96 / 16);
    let epochs: Vec<&Value> = lines.iter().filter(|l| l.get("eval_accuracy").is_some()).collect();
    assert_eq!(epochs.len(), 2);
    assert_eq!(epochs[1]["epoch"], 2.0);
    let fin = lines.last().unwrap();
    let majority = fin["majority_class_accuracy"].as_f64().unwrap();
    assert!(majority >= 0.5 && majority <= 1.0, "{majority}");
    let acc = fin["final"]["eval_accuracy"].as_f64().unwrap();

    // the exported head loads as BertForSequenceClassification's classifier
    let cfg: Value = serde_json::from_slice(&std::fs::read(out.with_extension("config.json")).unwrap()).unwrap();
    assert_eq!(cfg["num_labels"], 2);
    assert_eq!(cfg["id2label"]["0"], "not_equivalent");

    // scoring it again on the same TSV gives the same numbers
    let dev = dir.join("dev.tsv");
    let again = json_lines(&bertlab(&["finetune", "--eval-only", "--head", out.to_str().unwrap(), "--data", dev.to_str().unwrap(),
        "--model", &tiny(), "--json", "--backend", "cpu"]));
    assert_eq!(again[0]["eval_accuracy"].as_f64().unwrap(), acc);
    assert_eq!(again[0]["confusion_matrix"], fin["final"]["confusion_matrix"]);
}

fn error_of(o: &Output) -> String {
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    err.lines().last().unwrap_or_default().to_string()
}

fn finetune(dir: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["finetune", "--model", Box::leak(tiny().into_boxed_str()), "--data", dir.to_str().unwrap(), "--backend", "cpu"];
    args.extend_from_slice(extra);
    bertlab(&args)
}

#[test]
fn bad_data_and_settings_give_clear_messages() {
    let good = mrpc_head("dev.tsv", 20);
    let dir = data_dir("empty", "", &good);
    assert!(error_of(&finetune(&dir, &[])).contains("train.tsv: input error: the TSV file is empty"));

    let three = "a\tb\tc\n1\t2\t3\n";
    let dir = data_dir("three", three, &good);
    assert!(error_of(&finetune(&dir, &[])).contains("has 3 columns; a GLUE pair TSV has 5"));

    let labels = "Quality\t#1 ID\t#2 ID\t#1 String\t#2 String\n2\t1\t2\ta b\tc d\nyes\t1\t2\te\tf\n";
    let dir = data_dir("labels", labels, &good);
    let e = error_of(&finetune(&dir, &[]));
    assert!(e.contains("no usable rows") && e.contains("line 2: label \"2\" is not 0 or 1"), "{e}");

    // some bad rows among good ones: skipped with a warning naming the line
    let mixed = format!("{}\n1\t7\t8\tonly four columns\n", mrpc_head("train.tsv", 16));
    let dir = data_dir("mixed", &mixed, &good);
    let o = finetune(&dir, &["--num-train-epochs", "1", "--json"]);
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("skipped line 18: 4 columns instead of 5"));

    // a learning rate of 1e3 diverges: a clear stop, and the last good head is still written
    let dir = data_dir("nan", &mrpc_head("train.tsv", 32), &good);
    let out = dir.join("head.safetensors");
    let e = error_of(&finetune(&dir, &["--learning-rate", "1e3", "--num-train-epochs", "40", "--out", out.to_str().unwrap()]));
    assert!(e.contains("learning rate is too high"), "{e}");
    let head = std::fs::read(&out).unwrap();
    let st = safetensors::SafeTensors::deserialize(&head).unwrap();
    let w = st.tensor("classifier.weight").unwrap();
    assert!(w.data().chunks_exact(4).all(|b| f32::from_le_bytes(b.try_into().unwrap()).is_finite()));

    let e = error_of(&finetune(&dir, &["--learning-rate=-1"]));
    assert!(e.contains("learning rate -1 must be a positive number"), "{e}");
    let e = error_of(&finetune(&dir, &["--head-input", "cls2"]));
    assert!(e.contains("unknown head input"), "{e}");
}
