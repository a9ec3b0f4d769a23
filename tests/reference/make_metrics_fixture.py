#!/usr/bin/env python3
"""The metrics of transformers' examples on fixed random inputs, for the Rust
tests of src/task/metrics.rs: sklearn's accuracy and F1, scipy's Pearson and
Spearman (ties included), seqeval's entity-level scores (default mode, with
malformed IOB2: I- after O, type changes inside a chunk).

    python3 tests/reference/make_metrics_fixture.py   # needs scikit-learn, scipy, seqeval

writes tests/fixtures/metrics.json.
"""
import json
import os
import random

from scipy.stats import pearsonr, spearmanr
from seqeval.metrics import classification_report, accuracy_score as seq_accuracy, f1_score, precision_score, recall_score
from sklearn.metrics import accuracy_score, f1_score as sk_f1

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "metrics.json")
TAGS = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC"]


def main():
    rng = random.Random(7)
    gold = [rng.randrange(2) for _ in range(200)]
    pred = [g if rng.random() < 0.7 else 1 - g for g in gold]
    classification = {"gold": gold, "pred": pred, "accuracy": float(accuracy_score(gold, pred)), "f1": float(sk_f1(gold, pred))}

    x = [round(rng.uniform(0, 5), 1) for _ in range(150)]  # rounded: ties
    y = [round(v + rng.gauss(0, 1.5), 1) for v in x]
    regression = {"x": x, "y": y, "pearson": float(pearsonr(x, y)[0]), "spearman": float(spearmanr(x, y)[0])}

    sentences_gold, sentences_pred = [], []
    for _ in range(60):
        n = rng.randrange(1, 15)
        g = [rng.choice(TAGS) for _ in range(n)]
        p = [t if rng.random() < 0.75 else rng.choice(TAGS) for t in g]
        sentences_gold.append(g)
        sentences_pred.append(p)
    report = classification_report(sentences_gold, sentences_pred, output_dict=True, zero_division=0)
    entities = {
        "gold": sentences_gold, "pred": sentences_pred,
        "precision": float(precision_score(sentences_gold, sentences_pred)),
        "recall": float(recall_score(sentences_gold, sentences_pred)),
        "f1": float(f1_score(sentences_gold, sentences_pred)), "accuracy": float(seq_accuracy(sentences_gold, sentences_pred)),
        "per_type": {k: {m: float(x) for m, x in v.items()} for k, v in report.items() if k in ("PER", "ORG", "LOC", "MISC")},
    }
    with open(OUT, "w") as f:
        json.dump({"classification": classification, "regression": regression, "entities": entities}, f)
    print("wrote", OUT)


if __name__ == "__main__":
    main()
