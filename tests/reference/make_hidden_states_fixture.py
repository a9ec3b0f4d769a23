#!/usr/bin/env python3
"""Every layer's hidden states (output_hidden_states=True) of the tiny BERT,
for the Rust tests of `Keep { hidden_states: true }` on both paths.

    python3 tests/reference/make_hidden_states_fixture.py

(needs torch and transformers; loads the committed tests/fixtures/tiny-bert)

It writes tests/fixtures/tiny-hidden-states.json: a padded batch of three
sentences and a pair as BertTokenizer makes it (input_ids, token_type_ids,
attention_mask), and `hidden_states`: num_hidden_layers + 1 tensors
[batch, seq, hidden], flattened (the embeddings' output, then each layer's).
"""
import json
import os

import torch
from transformers import BertModel, BertTokenizerFast

HERE = os.path.dirname(os.path.abspath(__file__))
TINY = os.path.join(HERE, "..", "fixtures", "tiny-bert")
OUT = os.path.join(HERE, "..", "fixtures", "tiny-hidden-states.json")


def rounded(t):
    return [float(f"{x:.8g}") for x in t.flatten().tolist()]


def main():
    tokenizer = BertTokenizerFast.from_pretrained(TINY)
    model = BertModel.from_pretrained(TINY).eval()
    first = ["the cat sat on the mat .", "he said it would rain", "we go !", "in his house"]
    second = [None, None, None, "there was a car"]
    # single sentences and a pair, each tokenized alone, padded together
    rows = [tokenizer(a) if b is None else tokenizer(a, b) for a, b in zip(first, second)]
    enc = tokenizer.pad(rows, return_tensors="pt")
    with torch.no_grad():
        out = model(**enc, output_hidden_states=True)
    fixture = {
        "texts": [[a, b] if b else [a] for a, b in zip(first, second)],
        "shape": list(out.last_hidden_state.shape),
        "input_ids": enc["input_ids"].flatten().tolist(),
        "token_type_ids": enc["token_type_ids"].flatten().tolist(),
        "attention_mask": enc["attention_mask"].flatten().tolist(),
        "hidden_states": [rounded(h) for h in out.hidden_states],
    }
    with open(OUT, "w") as f:
        json.dump(fixture, f)
    print(f"wrote {OUT}: {len(out.hidden_states)} tensors of {list(out.last_hidden_state.shape)}")


if __name__ == "__main__":
    main()
