#!/usr/bin/env python3
"""Loads a folder `bertlab finetune --out` wrote with transformers and scores it,
to compare with `bertlab finetune --eval-only --model FOLDER --data FILE --json`
(the same loss and scores): a BertForSequenceClassification on a GLUE-layout
pair TSV (loss, accuracy, F1), a BertForTokenClassification on CoNLL
`word … TAG` lines (loss over first WordPieces, seqeval's precision, recall, F1).

    python3 tests/reference/check_export.py FOLDER FILE [--max-length 128]
"""
import argparse
import json

import torch
from transformers import AutoConfig, AutoTokenizer, BertForSequenceClassification, BertForTokenClassification


def tokens(args):
    """The token classifier on CoNLL lines, as run_ner evaluates it."""
    from seqeval.metrics import accuracy_score, f1_score, precision_score, recall_score
    model = BertForTokenClassification.from_pretrained(args.folder, attn_implementation="eager").eval()
    tok = AutoTokenizer.from_pretrained(args.folder)
    sentences, words, tags = [], [], []
    for line in open(args.file, encoding="utf-8-sig").read().splitlines() + [""]:
        f = line.split()
        if not f:
            if words:
                sentences.append((words, tags))
            words, tags = [], []
        elif len(f) > 1:
            words.append(f[0])
            tags.append(f[-1])
    label2id = model.config.label2id
    gold, pred, nll, counted = [], [], 0.0, 0
    with torch.inference_mode():
        for w, t in sentences:
            enc = tok(w, is_split_into_words=True, truncation=True, return_tensors="pt",
                      max_length=min(args.max_length, model.config.max_position_embeddings))
            logp = model(**enc).logits[0].log_softmax(-1)
            previous, g, p = None, [], []
            for i, word in enumerate(enc.word_ids(0)):
                if word is not None and word != previous:
                    y = label2id[t[word]]
                    nll -= float(logp[i, y])
                    counted += 1
                    g.append(t[word])
                    p.append(model.config.id2label[int(logp[i].argmax())])
                previous = word
            gold.append(g)
            pred.append(p)
    print(json.dumps({"eval_loss": nll / max(1, counted), "eval_precision": precision_score(gold, pred),
                      "eval_recall": recall_score(gold, pred), "eval_f1": f1_score(gold, pred),
                      "eval_accuracy": accuracy_score(gold, pred), "architectures": model.config.architectures}))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("folder")
    ap.add_argument("file")
    ap.add_argument("--max-length", type=int, default=128)
    args = ap.parse_args()
    if AutoConfig.from_pretrained(args.folder).architectures == ["BertForTokenClassification"]:
        return tokens(args)
    model = BertForSequenceClassification.from_pretrained(args.folder, attn_implementation="eager").eval()
    tok = AutoTokenizer.from_pretrained(args.folder)
    lines = open(args.file, encoding="utf-8-sig").read().splitlines()[1:]
    rows = [l.split("\t") for l in lines if l.strip()]
    labels = torch.tensor([int(r[0]) for r in rows])
    probs = []
    with torch.inference_mode():
        for i in range(0, len(rows), 64):
            chunk = rows[i:i + 64]
            enc = tok([r[3] for r in chunk], [r[4] for r in chunk], padding=True, truncation=True,
                      max_length=min(args.max_length, model.config.max_position_embeddings), return_tensors="pt")
            probs.append(model(**enc).logits.softmax(-1))
    p = torch.cat(probs)
    pred = p.argmax(-1)
    tp = int(((pred == 1) & (labels == 1)).sum())
    fp = int(((pred == 1) & (labels == 0)).sum())
    fn = int(((pred == 0) & (labels == 1)).sum())
    loss = float(-p[torch.arange(len(labels)), labels].clamp_min(1e-12).log().mean())
    print(json.dumps({"eval_loss": loss, "eval_accuracy": float((pred == labels).float().mean()),
                      "eval_f1": 2 * tp / max(1, 2 * tp + fp + fn), "architectures": model.config.architectures,
                      "id2label": model.config.id2label}))


if __name__ == "__main__":
    main()
