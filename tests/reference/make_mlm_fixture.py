#!/usr/bin/env python3
"""transformers' fill-mask pipeline on a tiny BertForMaskedLM, for the Rust
tests of masked-word prediction.

    python3 tests/reference/make_mlm_fixture.py

(needs torch and transformers; loads the committed tests/fixtures/tiny-bert)

It writes, under tests/fixtures/tiny-mlm/:
  model.safetensors, config.json  a BertForMaskedLM as save_pretrained writes it:
                                  tiny-bert's encoder, a random prediction head
                                  (transform dense, activation, LayerNorm, bias) and
                                  the decoder tied to the word embeddings (so
                                  `cls.predictions.decoder.weight` is absent)
  vocab.txt, tokenizer_config.json  tiny-bert's
  cases.json                      per text: the pipeline's top 5 for every [MASK]
                                  (token id, token_str, score, sequence), and for
                                  the first [MASK] the top 5 when attention may
                                  only look left of it, or right of it (every
                                  layer's keys masked, the mask's own position kept)
"""
import json
import os
import shutil

import torch
from transformers import BertConfig, BertForMaskedLM, BertModel, BertTokenizerFast, pipeline

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "..", "fixtures")
TINY = os.path.join(FIXTURES, "tiny-bert")
OUT = os.path.join(FIXTURES, "tiny-mlm")

TEXTS = ["the cat sat on the [MASK] .", "[MASK] said it would [MASK] today", "we go [MASK] !",
         "in his house there was a [MASK] and a car ."]
TOP_K = 5


def restricted(model, enc, position, side):
    """The first mask's top k with attention restricted to one side of it."""
    mask = enc["attention_mask"].clone()
    n = mask.shape[1]
    keep = torch.zeros(n, dtype=mask.dtype)
    if side == "left":
        keep[: position + 1] = 1
    else:
        keep[position:] = 1
    mask = mask * keep
    with torch.no_grad():
        logits = model(input_ids=enc["input_ids"], token_type_ids=enc["token_type_ids"], attention_mask=mask).logits
    probs = logits[0, position].softmax(-1)
    top = probs.topk(TOP_K)
    return [{"token": int(i), "score": float(p)} for p, i in zip(top.values, top.indices)]


def main():
    torch.manual_seed(0)
    config = BertConfig.from_pretrained(TINY)
    config.architectures = ["BertForMaskedLM"]
    model = BertForMaskedLM(config)
    model.bert.load_state_dict(BertModel.from_pretrained(TINY, add_pooling_layer=False).state_dict(), strict=False)
    head = model.cls.predictions
    with torch.no_grad():
        # a head that prefers some words over others (random init predicts almost uniformly)
        head.transform.dense.weight.copy_(0.3 * torch.randn_like(head.transform.dense.weight))
        head.transform.dense.bias.copy_(0.1 * torch.randn_like(head.transform.dense.bias))
        head.transform.LayerNorm.weight.copy_(4.0 + torch.randn_like(head.transform.LayerNorm.weight))
        head.transform.LayerNorm.bias.copy_(0.1 * torch.randn_like(head.transform.LayerNorm.bias))
        head.bias.copy_(0.2 * torch.randn_like(head.bias))
    model.eval()
    os.makedirs(OUT, exist_ok=True)
    model.save_pretrained(OUT)
    for f in ["vocab.txt", "tokenizer_config.json"]:
        shutil.copy(os.path.join(TINY, f), os.path.join(OUT, f))

    tokenizer = BertTokenizerFast.from_pretrained(OUT)
    saved = BertForMaskedLM.from_pretrained(OUT).eval()
    fill = pipeline("fill-mask", model=saved, tokenizer=tokenizer, top_k=TOP_K)
    cases = []
    for text in TEXTS:
        enc = tokenizer(text, return_tensors="pt")
        ids = enc["input_ids"][0].tolist()
        positions = [i for i, t in enumerate(ids) if t == tokenizer.mask_token_id]
        out = fill(text)
        if len(positions) == 1:
            out = [out]
        masks = [{"position": p, "predictions": [
            {"token": r["token"], "token_str": r["token_str"], "score": r["score"], "sequence": r["sequence"]} for r in preds]}
            for p, preds in zip(positions, out)]
        first = positions[0]
        cases.append({"text": text, "input_ids": ids, "masks": masks,
                      "left": restricted(saved, enc, first, "left"), "right": restricted(saved, enc, first, "right")})
    with open(os.path.join(OUT, "cases.json"), "w") as f:
        json.dump({"top_k": TOP_K, "cases": cases}, f, indent=1)
    print(f"wrote {OUT}: {len(cases)} texts")


if __name__ == "__main__":
    main()
