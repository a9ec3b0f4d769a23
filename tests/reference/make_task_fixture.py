#!/usr/bin/env python3
"""PyTorch autograd's gradients for the task heads beyond MRPC's two labels,
for the Rust tests of the model's backward pass on every task kind.

    python3 tests/reference/make_task_fixture.py

(needs torch and transformers; loads the committed tests/fixtures/tiny-bert)

It writes, under tests/fixtures/tiny-tasks/:
  cases.json             per case: the batch as BertTokenizer pads it, the labels,
                         the head's initial weights, the logits and the loss
  <case>.safetensors     d loss / d parameter for every parameter (transformers'
                         names), dropout off (model.eval())
  tokens-model/          the token case's BertForTokenClassification as
                         save_pretrained writes it (its logits are the case's)

The cases:
  three_labels  BertForSequenceClassification, num_labels 3, single sentences
                (single_label_classification: mean cross-entropy)
  regression    BertForSequenceClassification, num_labels 1, sentence pairs with
                float labels (problem_type "regression": mean squared error)
  tokens        BertForTokenClassification, 5 labels, each word's label on its
                first WordPiece and -100 on the rest, on [CLS]/[SEP] and padding
                (as transformers' run_ner aligns them): mean cross-entropy over
                the labelled tokens
"""
import json
import os

import torch
from safetensors.torch import save_file
from transformers import BertForSequenceClassification, BertForTokenClassification, BertTokenizerFast

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "..", "fixtures")
TINY = os.path.join(FIXTURES, "tiny-bert")
OUT = os.path.join(FIXTURES, "tiny-tasks")

SENTENCES = ["the cat sat on the mat .", "he said it would rain", "we go !", "in his house there was a car"]
THREE_LABELS = [2, 0, 1, 2]
PAIRS = [("the cat sat on the mat .", "a cat was on the mat ."), ("he said it would rain", "she did not know"),
         ("we go", "we go !")]
SCORES = [4.2, 0.6, 3.1]
# words with their tags (ids into a 5-label set), some split into several WordPieces
WORDS = [(["johnson", "was", "in", "london", "."], [1, 0, 0, 3, 0]),
         (["the", "unbelievably", "new", "car"], [0, 2, 2, 0]),
         (["we", "go"], [0, 4])]


def rounded(t):
    return [float(f"{x:.8g}") for x in t.flatten().tolist()]


def head_init(model, classifier):
    with torch.no_grad():
        classifier.weight.copy_(0.2 * torch.randn_like(classifier.weight))
        classifier.bias.copy_(0.2 * torch.randn_like(classifier.bias))
    return {"classifier_weight": rounded(classifier.weight.detach()), "classifier_bias": rounded(classifier.bias.detach())}


def run(name, model, enc, labels, case):
    model.eval()  # dropout off: the masks are ours, tested on their own
    out = model(**enc, labels=labels)
    out.loss.backward()
    case.update({
        "input_ids": enc["input_ids"].tolist(),
        "token_type_ids": enc["token_type_ids"].tolist(),
        "attention_mask": enc["attention_mask"].tolist(),
        "labels": labels.tolist(),
        "logits": rounded(out.logits.detach()),
        "loss": out.loss.item(),
        "num_labels": model.config.num_labels,
    })
    grads = {n: p.grad.detach().clone().contiguous() for n, p in model.named_parameters() if p.grad is not None}
    save_file(grads, os.path.join(OUT, f"{name}.safetensors"))
    print(name, "loss", case["loss"])
    return case


def main():
    torch.manual_seed(1)
    torch.set_num_threads(1)
    os.makedirs(OUT, exist_ok=True)
    tok = BertTokenizerFast(os.path.join(TINY, "vocab.txt"), do_lower_case=True)
    cases = {}

    m = BertForSequenceClassification.from_pretrained(TINY, num_labels=3, attn_implementation="eager")
    case = head_init(m, m.classifier)
    cases["three_labels"] = run("three_labels", m, tok(SENTENCES, padding=True, return_tensors="pt"),
                                torch.tensor(THREE_LABELS), case)

    m = BertForSequenceClassification.from_pretrained(TINY, num_labels=1, problem_type="regression",
                                                      attn_implementation="eager")
    case = head_init(m, m.classifier)
    enc = tok([a for a, _ in PAIRS], [b for _, b in PAIRS], padding=True, return_tensors="pt")
    cases["regression"] = run("regression", m, enc, torch.tensor(SCORES), case)

    m = BertForTokenClassification.from_pretrained(TINY, num_labels=5, attn_implementation="eager")
    case = head_init(m, m.classifier)
    enc = tok([w for w, _ in WORDS], is_split_into_words=True, padding=True, return_tensors="pt")
    labels = []
    for i, (_, tags) in enumerate(WORDS):
        previous, row = None, []
        for word in enc.word_ids(i):
            row.append(-100 if word is None or word == previous else tags[word])
            previous = word
        labels.append(row)
    case["words"] = [w for w, _ in WORDS]
    case["tags"] = [t for _, t in WORDS]
    cases["tokens"] = run("tokens", m, enc, torch.tensor(labels), case)
    # the token classifier as transformers saves it: its logits above are what loading it must give
    folder = os.path.join(OUT, "tokens-model")
    m.config.id2label = {i: t for i, t in enumerate(["O", "B-PER", "I-PER", "B-LOC", "I-LOC"])}
    m.config.label2id = {t: i for i, t in m.config.id2label.items()}
    m.save_pretrained(folder)
    tok.save_pretrained(folder)

    with open(os.path.join(OUT, "cases.json"), "w") as f:
        json.dump(cases, f)
    print("wrote", OUT, "with torch", torch.__version__)


if __name__ == "__main__":
    main()
