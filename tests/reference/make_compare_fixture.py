#!/usr/bin/env python3
"""What fine-tuning changed, by PyTorch and numpy, for the Rust test of
`bertlab compare`.

    python3 tests/reference/make_compare_fixture.py

(needs torch, transformers and numpy; loads the committed tests/fixtures/tiny-bert)

It fine-tunes tiny-bert as a 2-label BertForSequenceClassification for a few
AdamW steps on a 12-row table (deterministic), and writes tests/fixtures/tiny-compare/:
the tuned folder (save_pretrained + vocab), data.tsv (sentence, label), and
expected.json: per hidden_states[l] the linear CKA (Kornblith et al. 2019) of
the two models' mean-pooled states over the rows, computed in numpy as
||Yc^T Xc||_F^2 / (||Xc^T Xc||_F ||Yc^T Yc||_F) of column-centred X, Y; per
layer and head the mean over rows and real query tokens of the total variation
0.5 * sum_j |A_ij - A'_ij| of the two models' attention rows.
"""
import json
import os
import shutil

import numpy as np
import torch
from transformers import BertForSequenceClassification, BertModel, BertTokenizerFast

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "..", "fixtures")
TINY = os.path.join(FIXTURES, "tiny-bert")
OUT = os.path.join(FIXTURES, "tiny-compare")
ROWS = [
    ("the cat sat on the mat .", 1), ("he said it would rain", 0), ("we go !", 1),
    ("she did not know what to say", 0), ("the company posted a profit", 1), ("it was a bad day", 0),
    ("they walked along the river bank", 1), ("no one came to the party", 0), ("a good film with a great cast", 1),
    ("the rain did not stop", 0), ("he likes the new house", 1), ("nothing worked as planned", 0),
]


def mean_pooled(states, mask):
    m = mask.unsqueeze(-1).float()
    return [((s * m).sum(1) / m.sum(1)).numpy().astype(np.float64) for s in states]


def cka(x, y):
    x = x - x.mean(0)
    y = y - y.mean(0)
    return float(np.linalg.norm(y.T @ x) ** 2 / (np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y)))


def main():
    torch.manual_seed(0)
    tokenizer = BertTokenizerFast.from_pretrained(TINY)
    tuned = BertForSequenceClassification.from_pretrained(TINY, num_labels=2)
    enc = tokenizer([r[0] for r in ROWS], padding=True, return_tensors="pt")
    labels = torch.tensor([r[1] for r in ROWS])
    opt = torch.optim.AdamW(tuned.parameters(), lr=3e-3)
    tuned.train()
    for _ in range(15):
        opt.zero_grad()
        tuned(**enc, labels=labels).loss.backward()
        opt.step()
    tuned.eval()
    os.makedirs(OUT, exist_ok=True)
    tuned.save_pretrained(os.path.join(OUT, "tuned"))
    for f in ["vocab.txt", "tokenizer_config.json"]:
        shutil.copy(os.path.join(TINY, f), os.path.join(OUT, "tuned", f))
    with open(os.path.join(OUT, "data.tsv"), "w") as f:
        f.write("sentence\tlabel\n")
        f.writelines(f"{t}\t{y}\n" for t, y in ROWS)

    base = BertModel.from_pretrained(TINY, attn_implementation="eager").eval()
    tuned_bert = BertModel.from_pretrained(os.path.join(OUT, "tuned"), attn_implementation="eager").eval()
    with torch.no_grad():
        a = base(**enc, output_hidden_states=True, output_attentions=True)
        b = tuned_bert(**enc, output_hidden_states=True, output_attentions=True)
    mask = enc["attention_mask"]
    xs, ys = mean_pooled(a.hidden_states, mask), mean_pooled(b.hidden_states, mask)
    layers = [{"layer": l, "cka": cka(x, y)} for l, (x, y) in enumerate(zip(xs, ys))]
    heads = []
    real = mask.bool()
    for pa, pb in zip(a.attentions, b.attentions):
        tv = 0.5 * (pa - pb).abs().sum(-1)  # [rows, heads, seq]
        per_row = [(tv[r][:, real[r]]).mean(-1) for r in range(len(ROWS))]  # each [heads]
        heads.append(torch.stack(per_row).mean(0).tolist())
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump({"examples": len(ROWS), "layers": layers, "heads": heads}, f, indent=1)
    print(json.dumps(layers), heads)


if __name__ == "__main__":
    main()
