#!/usr/bin/env python3
"""Loads a folder `bertlab finetune --out` wrote with transformers and scores it
on a GLUE-layout TSV, to compare with `bertlab finetune --eval-only --model
FOLDER --data TSV --json` (the same loss, accuracy and F1).

    python3 tests/reference/check_export.py FOLDER TSV [--max-length 128]
"""
import argparse
import json

import torch
from transformers import AutoTokenizer, BertForSequenceClassification


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("folder")
    ap.add_argument("tsv")
    ap.add_argument("--max-length", type=int, default=128)
    args = ap.parse_args()
    model = BertForSequenceClassification.from_pretrained(args.folder, attn_implementation="eager").eval()
    tok = AutoTokenizer.from_pretrained(args.folder)
    lines = open(args.tsv, encoding="utf-8-sig").read().splitlines()[1:]
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
