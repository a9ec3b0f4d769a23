#!/usr/bin/env python3
"""Every layer's hidden states (output_hidden_states=True) of the tiny BERT,
for the Rust tests of `Keep { hidden_states: true }` on both paths.

    python3 tests/reference/make_hidden_states_fixture.py

(needs torch and transformers; loads the committed tests/fixtures/tiny-bert)

It writes tests/fixtures/tiny-hidden-states.json: a padded batch of three
sentences and a pair as BertTokenizer makes it (input_ids, token_type_ids,
attention_mask), and `hidden_states`: num_hidden_layers + 1 tensors
[batch, seq, hidden], flattened (the embeddings' output, then each layer's).
With the default model set up (models/all-MiniLM-L6-v2), also
tests/fixtures/minilm-bank.json: the cosine similarity at every layer of
"bank" in two of the page's example sentences (money, a river), for the
browser test of "a word in context".
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
    bank()


def bank():
    minilm = os.path.join(HERE, "..", "..", "models", "all-MiniLM-L6-v2")
    if not os.path.isdir(minilm):
        print("no models/all-MiniLM-L6-v2: minilm-bank.json not written")
        return
    tokenizer = BertTokenizerFast.from_pretrained(minilm)
    model = BertModel.from_pretrained(minilm).eval()
    texts = ["The bank raised interest rates again.", "We sat on the river bank and watched the boats."]
    states = []
    for text in texts:
        enc = tokenizer(text, return_tensors="pt")
        at = tokenizer.convert_ids_to_tokens(enc["input_ids"][0]).index("bank")
        with torch.no_grad():
            states.append([h[0, at] for h in model(**enc, output_hidden_states=True).hidden_states])
    sims = [float(torch.cosine_similarity(a, b, dim=0)) for a, b in zip(*states)]
    with open(os.path.join(HERE, "..", "fixtures", "minilm-bank.json"), "w") as f:
        json.dump({"texts": texts, "word": "bank", "similarity_by_layer": sims}, f, indent=1)
    print("wrote minilm-bank.json:", [round(s, 3) for s in sims])


if __name__ == "__main__":
    main()
