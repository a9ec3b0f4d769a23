#!/usr/bin/env python3
"""Per-token attributions of a tiny 3-label BertForSequenceClassification by
PyTorch autograd, for the Rust tests of `bertlab explain`.

    python3 tests/reference/make_explain_fixture.py

(needs torch and transformers; loads the committed tests/fixtures/tiny-bert)

The definitions (issue 21): e_i = token i's row of the word embeddings (before
the position and type embeddings and the LayerNorm); f = the target class's
logit, evaluation mode.
  grad × input:          a_i = sum_d e_id * df/de_id
  integrated gradients:  a_i = sum_d e_id * (1/m) sum_{k=1..m} df/de_id at all word rows scaled by k/m
                         (zero baseline; position and type embeddings unchanged), m = 50

It writes tests/fixtures/tiny-explain/: the classifier as save_pretrained
writes it (id2label names), vocab.txt, and cases.json: per text (one a pair)
the tokens, the logits, the target (the predicted class), and both methods'
attributions; IG's f(x) - f(baseline) for the completeness check.
"""
import json
import os
import shutil

import torch
from transformers import BertForSequenceClassification, BertTokenizerFast

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "..", "fixtures")
TINY = os.path.join(FIXTURES, "tiny-bert")
OUT = os.path.join(FIXTURES, "tiny-explain")
TEXTS = [["the cat sat on the mat ."], ["he said it would rain", "she did not know"], ["we go !"]]
STEPS = 50


def logit(model, enc, embeds, target):
    out = model(inputs_embeds=embeds, token_type_ids=enc["token_type_ids"], attention_mask=enc["attention_mask"])
    return out.logits[0, target]


def main():
    torch.manual_seed(0)
    labels = {0: "negative", 1: "neutral", 2: "positive"}
    model = BertForSequenceClassification.from_pretrained(TINY, num_labels=3, id2label=labels,
                                                          label2id={v: k for k, v in labels.items()})
    with torch.no_grad():
        model.classifier.weight.copy_(0.5 * torch.randn_like(model.classifier.weight))
        model.classifier.bias.copy_(0.1 * torch.randn_like(model.classifier.bias))
    model.eval()
    os.makedirs(OUT, exist_ok=True)
    model.save_pretrained(OUT)
    for f in ["vocab.txt", "tokenizer_config.json"]:
        shutil.copy(os.path.join(TINY, f), os.path.join(OUT, f))
    tokenizer = BertTokenizerFast.from_pretrained(OUT)
    table = model.bert.embeddings.word_embeddings.weight
    cases = []
    for texts in TEXTS:
        enc = tokenizer(*texts, return_tensors="pt")
        e = table[enc["input_ids"][0]].detach().unsqueeze(0)
        with torch.no_grad():
            logits = model(**enc).logits[0]
        target = int(logits.argmax())
        x = e.clone().requires_grad_(True)
        logit(model, enc, x, target).backward()
        grad_x_input = (e * x.grad).sum(-1)[0]
        total = torch.zeros_like(e)
        for k in range(1, STEPS + 1):
            xk = (e * k / STEPS).clone().requires_grad_(True)
            logit(model, enc, xk, target).backward()
            total += xk.grad
        ig = (e * total / STEPS).sum(-1)[0]
        with torch.no_grad():
            gap = float(logit(model, enc, e, target) - logit(model, enc, torch.zeros_like(e), target))
        cases.append({
            "texts": texts,
            "tokens": tokenizer.convert_ids_to_tokens(enc["input_ids"][0]),
            "logits": logits.tolist(),
            "target": target,
            "grad_x_input": grad_x_input.tolist(),
            "integrated_gradients": ig.tolist(),
            "steps": STEPS,
            "f_x_minus_f_baseline": gap,
        })
    with open(os.path.join(OUT, "cases.json"), "w") as f:
        json.dump({"cases": cases}, f, indent=1)
    print(f"wrote {OUT}: {len(cases)} cases; IG sums vs gaps:",
          [(round(sum(c["integrated_gradients"]), 4), round(c["f_x_minus_f_baseline"], 4)) for c in cases])


if __name__ == "__main__":
    main()
