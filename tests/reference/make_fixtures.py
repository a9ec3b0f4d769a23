#!/usr/bin/env python3
"""Writes the PyTorch + transformers reference outputs the Rust tests compare to.

    python3 tests/reference/make_fixtures.py [--model-dir models/all-MiniLM-L6-v2]

(needs torch and transformers; no hub access: everything loads from local files)

It writes, under tests/fixtures/:
  tiny-bert/   a small random BERT made here with a fixed seed (config.json,
               model.safetensors, vocab.txt, tokenizer_config.json) - committed
  tiny-bert.json        its outputs on a padded batch, a batch of sentence
                        pairs and a truncated text, with attentions
  adamw.json            torch.optim.AdamW's parameters after three steps
  minilm.json           the default model's outputs on "Hello, how are you?"
                        and harder strings (accents, CJK, emoji, 600 tokens)
  tokenization.json     token ids of transformers' tokenizers where our
                        tokenization makes choices: do_lower_case false, and
                        sentence pairs truncated longest-first
  tiny-head/logits.json the logits of BertForSequenceClassification built by
                        from_pretrained from tiny-bert plus the head that
                        `bertlab finetune` exported (tiny-head/head.safetensors,
                        head.config.json; made by the command in README.md)
"""
import argparse
import json
import os

import torch
from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification, BertModel, BertTokenizer

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "..", "fixtures")


def rounded(t):
    return [float(f"{x:.8g}") for x in t.flatten().tolist()]


def run(model, tok, texts, pairs=None, max_length=None, attentions=False):
    if pairs is None:
        enc = tok(texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    else:
        enc = tok(texts, pairs, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    with torch.inference_mode():
        out = model(**enc, output_attentions=attentions)
    return enc, out


def make_tiny(real_vocab_path):
    """A 2-layer BERT with odd sizes and every parameter random (biases and
    layer norms too, so none of them can be silently ignored)."""
    torch.manual_seed(0)
    real = [l.rstrip("\n") for l in open(real_vocab_path, encoding="utf-8")]
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    # single characters and the most frequent words of bert-base-uncased's vocab
    rest = [t for t in real if not t.startswith("[") and t not in specials][:1500]
    vocab = specials + rest
    out = os.path.join(FIXTURES, "tiny-bert")
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "vocab.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(vocab) + "\n")
    with open(os.path.join(out, "tokenizer_config.json"), "w") as f:
        json.dump({"do_lower_case": True, "tokenizer_class": "BertTokenizer"}, f)
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=4, intermediate_size=37, max_position_embeddings=40,
                        type_vocab_size=2, hidden_act="gelu", attn_implementation="eager")
    model = BertModel(config).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "LayerNorm.weight" in name:
                p.copy_(1.0 + 0.2 * torch.randn_like(p))
            else:
                p.copy_(0.2 * torch.randn_like(p))
    model.save_pretrained(out, safe_serialization=True)
    tok = BertTokenizer(os.path.join(out, "vocab.txt"), do_lower_case=True)
    return model, tok


def tiny_cases(model, tok):
    cases = {}
    texts = ["Hello, how are you?", "The quick brown fox jumps over the lazy dog.", "Hi"]
    enc, out = run(model, tok, texts, attentions=True)
    cases["padded_batch"] = dict(texts=texts, **dump(enc, out, attentions=True))
    a = ["The cat sat on the mat.", "Is it raining?"]
    b = ["A cat was sitting on a mat.", "It is not raining today, I think."]
    enc, out = run(model, tok, a, pairs=b, attentions=True)
    cases["pairs"] = dict(texts=a, pairs=b, **dump(enc, out, attentions=True))
    long = " ".join(["the time of day and the place where we are"] * 8)
    enc, out = run(model, tok, [long], max_length=model.config.max_position_embeddings)
    cases["truncated"] = dict(texts=[long], **dump(enc, out))
    return cases


def dump(enc, out, attentions=False, rows=None):
    d = {
        "input_ids": enc["input_ids"].tolist(),
        "token_type_ids": enc["token_type_ids"].tolist(),
        "attention_mask": enc["attention_mask"].tolist(),
        "shape": list(out.last_hidden_state.shape),
        "pooler_output": rounded(out.pooler_output),
    }
    h = out.last_hidden_state
    if rows is None:
        d["last_hidden_state"] = rounded(h)
    else:
        d["rows"] = rows
        d["last_hidden_state_rows"] = rounded(h[:, rows, :])
    mask = enc["attention_mask"].unsqueeze(-1).float()
    d["mean_pooled"] = rounded((h * mask).sum(1) / mask.sum(1))
    if attentions:
        d["attentions"] = rounded(torch.stack(out.attentions, dim=1))  # [batch, layers, heads, s, s]
    return d


def minilm_cases(model_dir):
    tok = BertTokenizer.from_pretrained(model_dir)
    model = BertModel.from_pretrained(model_dir, attn_implementation="eager").eval()
    strings = {
        "hello": "Hello, how are you?",
        "accents": "Café déjà vu: a naïve façade in São Paulo, Zürich and Kraków.",
        "cjk": "我爱自然语言处理。東京は日本の首都です。한국어도 있어요.",
        "emoji": "I love 🍕 and 🎉 with my family 👩‍👩‍👧!! :-)",
        "long": " ".join(
            f"Sentence {i} talks about tokenizers, embeddings and attention heads in BERT."
            for i in range(60)
        ),
    }
    cases = {}
    for key, text in strings.items():
        enc, out = run(model, tok, [text])
        s = enc["input_ids"].shape[1]
        rows = None if s <= 24 else [0, 1, 2, 3, s // 2, s - 3, s - 2, s - 1]
        cases[key] = dict(texts=[text], tokens=tok.convert_ids_to_tokens(enc["input_ids"][0]),
                          **dump(enc, out, rows=rows))
    # what print() shows, for the CLI's PyTorch-style summary
    enc, out = run(model, tok, [strings["hello"]])
    cases["hello"]["printed_last_hidden_state"] = str(out.last_hidden_state)
    cases["hello"]["printed_pooler_output"] = str(out.pooler_output)
    a, b = "The cat sits on the mat.", "A cat is sitting on a mat."
    enc, out = run(model, tok, [a], pairs=[b])
    cases["pair"] = dict(texts=[a], pairs=[b], **dump(enc, out))
    return cases


def tokenization_cases(model_dir):
    """Where tokenization makes choices: casing kept, and pairs cut longest-first."""
    tiny_vocab = os.path.join(FIXTURES, "tiny-bert", "vocab.txt")
    cased = BertTokenizer(tiny_vocab, do_lower_case=False)
    text = "Hello World, HOW are you? the time Of day"
    cases = {"cased": {"text": text, "input_ids": cased(text)["input_ids"],
                       "tokens": cased.convert_ids_to_tokens(cased(text)["input_ids"])}}
    fast = AutoTokenizer.from_pretrained(model_dir)  # what transformers gives for this model (tokenizer.json)
    pairs = [
        ("A short one.", "A much longer second sentence that has to lose most of its many words here."),
        ("The first sentence is the long one this time, with plenty of words to spare.", "Short."),
        ("Both sentences are of the same length here.", "Both sentences are equally long, you see."),
        ("One two three four five six seven eight", "nine ten eleven twelve thirteen fourteen fifteen"),
    ]
    rows = []
    for max_length in (9, 12, 16):
        for a, b in pairs:
            enc = fast(a, b, truncation=True, max_length=max_length)
            rows.append({"a": a, "b": b, "max_length": max_length, "input_ids": enc["input_ids"],
                         "token_type_ids": enc["token_type_ids"]})
    cases["pairs_longest_first"] = rows
    return cases


def tiny_head_logits():
    """BertForSequenceClassification from tiny-bert and our exported head,
    merged the way README.md says, on the first validation pairs of glue-tiny."""
    import shutil
    import tempfile
    from safetensors.torch import load_file, save_file
    head_dir = os.path.join(FIXTURES, "tiny-head")
    tiny = os.path.join(FIXTURES, "tiny-bert")
    folder = tempfile.mkdtemp()
    config = json.load(open(os.path.join(tiny, "config.json")))
    config.update(json.load(open(os.path.join(head_dir, "head.config.json"))))
    json.dump(config, open(os.path.join(folder, "config.json"), "w"))
    for f in ("vocab.txt", "tokenizer_config.json"):
        shutil.copy(os.path.join(tiny, f), folder)
    tensors = {f"bert.{k}": v for k, v in load_file(os.path.join(tiny, "model.safetensors")).items()}
    tensors.update(load_file(os.path.join(head_dir, "head.safetensors")))
    save_file(tensors, os.path.join(folder, "model.safetensors"))
    model = BertForSequenceClassification.from_pretrained(folder, attn_implementation="eager").eval()
    tok = BertTokenizer.from_pretrained(folder)
    lines = open(os.path.join(FIXTURES, "glue-tiny", "dev.tsv"), encoding="utf-8-sig").read().splitlines()[1:9]
    a = [l.split("\t")[3] for l in lines]
    b = [l.split("\t")[4] for l in lines]
    enc = tok(a, b, padding=True, truncation=True, max_length=128, return_tensors="pt")
    with torch.inference_mode():
        logits = model(**enc).logits
    shutil.rmtree(folder)
    return {"sentence1": a, "sentence2": b, "input_ids": enc["input_ids"].tolist(), "logits": rounded(logits),
            "id2label": model.config.id2label}


def adamw_reference():
    """torch.optim.AdamW on two tensors (a weight with decay, a bias without),
    three steps with fixed gradients, as the Trainer groups them."""
    g = torch.Generator().manual_seed(7)
    w = torch.randn(3, 5, generator=g)
    b = torch.randn(3, generator=g)
    grads = [(torch.randn(3, 5, generator=g), torch.randn(3, generator=g)) for _ in range(3)]
    pw, pb = w.clone().requires_grad_(), b.clone().requires_grad_()
    lrs = [1e-2, 5e-3, 2.5e-3]  # a schedule: each step's learning rate
    opt = torch.optim.AdamW([{"params": [pw], "weight_decay": 0.01}, {"params": [pb], "weight_decay": 0.0}],
                            lr=lrs[0], betas=(0.9, 0.999), eps=1e-8)
    steps = []
    for (gw, gb), lr in zip(grads, lrs):
        for group in opt.param_groups:
            group["lr"] = lr
        pw.grad, pb.grad = gw.clone(), gb.clone()
        opt.step()
        steps.append({"lr": lr, "grad_w": rounded(gw), "grad_b": rounded(gb),
                      "w": rounded(pw.detach()), "b": rounded(pb.detach())})
    return {"w0": rounded(w), "b0": rounded(b), "weight_decay": 0.01, "steps": steps}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model-dir", default=os.path.join(HERE, "..", "..", "models", "all-MiniLM-L6-v2"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    model, tok = make_tiny(os.path.join(args.model_dir, "vocab.txt"))
    with open(os.path.join(FIXTURES, "tiny-bert.json"), "w") as f:
        json.dump(tiny_cases(model, tok), f)
    with open(os.path.join(FIXTURES, "adamw.json"), "w") as f:
        json.dump(adamw_reference(), f)
    with open(os.path.join(FIXTURES, "minilm.json"), "w") as f:
        json.dump(minilm_cases(args.model_dir), f)
    with open(os.path.join(FIXTURES, "tokenization.json"), "w") as f:
        json.dump(tokenization_cases(args.model_dir), f)
    with open(os.path.join(FIXTURES, "tiny-head", "logits.json"), "w") as f:
        json.dump(tiny_head_logits(), f)
    print("wrote", FIXTURES, "with torch", torch.__version__)


if __name__ == "__main__":
    main()
