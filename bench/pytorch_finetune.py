#!/usr/bin/env python3
"""PyTorch's reference for `bertlab finetune --task T --train-layers all|N`:
the same run through transformers' Trainer, on the same files, on the CPU
(or with --cuda on the GPU, fp32 with TF32 off, for bench/gpu.sh).

    python3 bench/pytorch_finetune.py --model-dir models/all-MiniLM-L6-v2 \
        --data data/mrpc [--task mrpc|sst2|conll2003] [--train-layers all|N] \
        [--learning-rate 2e-5] [--seed 42] [--epochs 3] [--max-steps N] \
        [--max-train-samples N] [--threads 2] [--cuda]

The tutorial's settings: BertForSequenceClassification (MRPC's pairs, SST-2's
sentences; the hub's label names) or BertForTokenClassification (CoNLL-2003,
tags on each word's first WordPiece and -100 on the rest, as run_ner;
DataCollatorForTokenClassification), truncation to 128 and padding per
batch, batch 16/64, 3 epochs, weight decay 0.01, linear schedule, no warmup,
max_grad_norm 1.0, evaluation each epoch: accuracy (and F1 for MRPC), or
seqeval's entity precision, recall and F1. With --train-layers N only the
top N encoder layers and the head train (requires_grad off for the rest, as
in our runs). Prints one JSON line per epoch and a last line with the final
metrics and training samples per second. --max-steps stops early (speed).
"""
import argparse
import json
import os
import time

import numpy as np
import torch
from transformers import (AutoTokenizer, BertForSequenceClassification, BertForTokenClassification,
                          DataCollatorForTokenClassification, DataCollatorWithPadding, Trainer, TrainerCallback,
                          TrainingArguments)

CONLL_TAGS = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC"]


def read_tsv(path):
    rows = [l.rstrip("\n").split("\t") for l in open(path, encoding="utf-8-sig")][1:]
    return [(int(r[0]), r[3], r[4]) for r in rows if len(r) == 5]


def read_sst2(path):
    rows = [l.rstrip("\n").split("\t") for l in open(path, encoding="utf-8-sig")][1:]
    return [(int(r[1]), r[0].strip(), None) for r in rows if len(r) == 2]


def read_conll(path):
    sentences, words, tags = [], [], []
    for line in open(path, encoding="utf-8-sig").read().splitlines() + [""]:
        f = line.split()
        if not f or f[0] == "-DOCSTART-":
            if words:
                sentences.append((words, tags))
            words, tags = [], []
        elif len(f) > 1:
            words.append(f[0])
            tags.append(CONLL_TAGS.index(f[-1]))
    return sentences


def entity_metrics(eval_pred):
    from seqeval.metrics import accuracy_score, f1_score, precision_score, recall_score
    logits, labels = eval_pred
    pred = logits.argmax(-1)
    gold_tags = [[CONLL_TAGS[y] for y in row if y != -100] for row in labels]
    pred_tags = [[CONLL_TAGS[p] for p, y in zip(prow, row) if y != -100] for prow, row in zip(pred, labels)]
    return {"precision": precision_score(gold_tags, pred_tags), "recall": recall_score(gold_tags, pred_tags),
            "f1": f1_score(gold_tags, pred_tags), "accuracy": accuracy_score(gold_tags, pred_tags)}


def metrics(eval_pred):
    logits, labels = eval_pred
    pred = logits.argmax(-1)
    tp = int(((pred == 1) & (labels == 1)).sum())
    fp = int(((pred == 1) & (labels == 0)).sum())
    fn = int(((pred == 0) & (labels == 1)).sum())
    return {"accuracy": float((pred == labels).mean()), "f1": 2 * tp / max(1, 2 * tp + fp + fn)}


class Log(TrainerCallback):
    def on_evaluate(self, args, state, control, metrics=None, **kw):
        print(json.dumps({k: v for k, v in metrics.items()} | {"epoch": state.epoch}), flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model-dir", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--train-layers", default="all")
    ap.add_argument("--learning-rate", type=float, default=2e-5)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--epochs", type=float, default=3)
    ap.add_argument("--max-steps", type=int, default=-1)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--out", default="/tmp/bertlab-pytorch-finetune")
    ap.add_argument("--cuda", action="store_true")
    ap.add_argument("--task", default="mrpc", choices=["mrpc", "sst2", "conll2003"])
    ap.add_argument("--max-train-samples", type=int, default=0)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.cuda:
        if not torch.cuda.is_available():
            raise SystemExit("PyTorch CUDA is not available here")
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    tok = AutoTokenizer.from_pretrained(args.model_dir)
    if args.task == "conll2003":
        model = BertForTokenClassification.from_pretrained(
            args.model_dir, num_labels=len(CONLL_TAGS), attn_implementation="eager",
            id2label=dict(enumerate(CONLL_TAGS)), label2id={t: i for i, t in enumerate(CONLL_TAGS)})
    else:
        model = BertForSequenceClassification.from_pretrained(args.model_dir, num_labels=2, attn_implementation="eager")
    if args.train_layers != "all":
        k = int(args.train_layers)
        first = model.config.num_hidden_layers - k
        for name, p in model.named_parameters():
            layer = name.split("encoder.layer.")[1].split(".")[0] if "encoder.layer." in name else None
            p.requires_grad = name.startswith(("bert.pooler", "classifier")) or (layer is not None and int(layer) >= first)

    def encode(rows):
        firsts = [a for _, a, _ in rows]
        seconds = None if rows[0][2] is None else [b for _, _, b in rows]
        enc = tok(firsts, seconds, truncation=True, max_length=min(128, model.config.max_position_embeddings))
        return [{"input_ids": i, "token_type_ids": t, "attention_mask": m, "labels": y}
                for i, t, m, (y, _, _) in zip(enc["input_ids"], enc["token_type_ids"], enc["attention_mask"], rows)]

    def encode_words(sentences):
        out = []
        for words, tags in sentences:
            enc = tok(words, is_split_into_words=True, truncation=True, max_length=min(128, model.config.max_position_embeddings))
            previous, labels = None, []
            for w in enc.word_ids():
                labels.append(-100 if w is None or w == previous else tags[w])
                previous = w
            out.append({"input_ids": enc["input_ids"], "token_type_ids": enc["token_type_ids"],
                        "attention_mask": enc["attention_mask"], "labels": labels})
        return out

    if args.task == "conll2003":
        train = encode_words(read_conll(os.path.join(args.data, "train.txt")))
        dev = encode_words(read_conll(os.path.join(args.data, "dev.txt")))
        collator, compute = DataCollatorForTokenClassification(tok), entity_metrics
    else:
        read = read_tsv if args.task == "mrpc" else read_sst2
        train = encode(read(os.path.join(args.data, "train.tsv")))
        dev = encode(read(os.path.join(args.data, "dev.tsv")))
        collator, compute = DataCollatorWithPadding(tok), metrics
    if args.max_train_samples:
        train = train[:args.max_train_samples]
    targs = TrainingArguments(
        output_dir=args.out, learning_rate=args.learning_rate, per_device_train_batch_size=16,
        per_device_eval_batch_size=64, num_train_epochs=args.epochs, max_steps=args.max_steps, weight_decay=0.01,
        eval_strategy="epoch" if args.max_steps < 0 else "no", save_strategy="no", logging_strategy="no",
        seed=args.seed, report_to=[], use_cpu=not args.cuda, dataloader_num_workers=0, disable_tqdm=True)
    trainer = Trainer(model=model, args=targs, train_dataset=train, eval_dataset=dev,
                      data_collator=collator, compute_metrics=compute, callbacks=[Log()])
    start = time.perf_counter()
    out = trainer.train()
    seconds = time.perf_counter() - start
    final = trainer.evaluate() if args.max_steps < 0 else {}
    steps = out.global_step
    print(json.dumps({"final": final, "train_layers": args.train_layers, "learning_rate": args.learning_rate,
                      "seed": args.seed, "steps": steps, "seconds": seconds, "torch": torch.__version__,
                      "threads": torch.get_num_threads(), "task": args.task,
                      "train_samples_per_second": min(steps * 16, len(train) * args.epochs) / seconds,
                      "pairs_per_second": steps * 16 / seconds}), flush=True)


if __name__ == "__main__":
    main()
