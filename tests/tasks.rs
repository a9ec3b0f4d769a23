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
