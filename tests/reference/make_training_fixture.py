#!/usr/bin/env python3
"""PyTorch autograd's view of one fine-tuning step of the whole model, for the
Rust tests of the encoder's backward pass and the Trainer's optimizer.

    python3 tests/reference/make_training_fixture.py

(needs torch and transformers; loads the committed tests/fixtures/tiny-bert)

It writes, under tests/fixtures/tiny-train/:
  case.json           three sentence pairs as BertTokenizer pads them, labels,
                      the classifier's initial weights, the logits and loss,
                      the Trainer's settings of the optimizer steps below, and
                      the loss before each step
  grads.safetensors   d loss / d parameter for every parameter of
                      BertForSequenceClassification (transformers' names),
                      dropout off (model.eval()), mean cross-entropy
  after.safetensors   every parameter after three steps on the same batch of
                      the Trainer's optimizer: AdamW with no weight decay on
                      biases and LayerNorm weights, the linear schedule with
                      warmup, gradients clipped to a global norm of 1.0
"""
import json
import os

import torch
from safetensors.torch import save_file
from transformers import BertForSequenceClassification, BertTokenizer, get_linear_schedule_with_warmup
from transformers.trainer_pt_utils import get_parameter_names

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "..", "fixtures")
TINY = os.path.join(FIXTURES, "tiny-bert")
OUT = os.path.join(FIXTURES, "tiny-train")

PAIRS = [
    ("the cat sat on the mat .", "a cat was on the mat ."),
    ("he said it would rain", "she did not know what to do about the new car"),
    ("we go", "we go !"),
]
LABELS = [1, 0, 1]
SETTINGS = {"learning_rate": 1e-3, "weight_decay": 0.01, "warmup_steps": 1, "total_steps": 4, "steps": 3,
            "max_grad_norm": 1.0}


def rounded(t):
    return [float(f"{x:.8g}") for x in t.flatten().tolist()]


def main():
    torch.manual_seed(1)
    torch.set_num_threads(1)
    model = BertForSequenceClassification.from_pretrained(TINY, num_labels=2, attn_implementation="eager")
    with torch.no_grad():
        model.classifier.weight.copy_(0.2 * torch.randn_like(model.classifier.weight))
        model.classifier.bias.copy_(0.2 * torch.randn_like(model.classifier.bias))
    model.eval()  # dropout off: the masks are ours, tested on their own
    tok = BertTokenizer(os.path.join(TINY, "vocab.txt"), do_lower_case=True)
    enc = tok([a for a, _ in PAIRS], [b for _, b in PAIRS], padding=True, return_tensors="pt")
    labels = torch.tensor(LABELS)
    case = {
        "input_ids": enc["input_ids"].tolist(),
        "token_type_ids": enc["token_type_ids"].tolist(),
        "attention_mask": enc["attention_mask"].tolist(),
        "labels": LABELS,
        "classifier_weight": rounded(model.classifier.weight.detach()),
        "classifier_bias": rounded(model.classifier.bias.detach()),
    }

    out = model(**enc, labels=labels)
    out.loss.backward()
    case["logits"] = rounded(out.logits.detach())
    case["loss"] = out.loss.item()
    grads = {n: p.grad.detach().clone().contiguous() for n, p in model.named_parameters()}
    save_file(grads, os.path.join(OUT, "grads.safetensors"))

    # The Trainer's optimizer (Trainer.create_optimizer) and schedule.
    decay = [n for n in get_parameter_names(model, [torch.nn.LayerNorm]) if "bias" not in n]
    groups = [
        {"params": [p for n, p in model.named_parameters() if n in decay], "weight_decay": SETTINGS["weight_decay"]},
        {"params": [p for n, p in model.named_parameters() if n not in decay], "weight_decay": 0.0},
    ]
    opt = torch.optim.AdamW(groups, lr=SETTINGS["learning_rate"], betas=(0.9, 0.999), eps=1e-8)
    sched = get_linear_schedule_with_warmup(opt, SETTINGS["warmup_steps"], SETTINGS["total_steps"])
    model.zero_grad()
    losses = []
    for _ in range(SETTINGS["steps"]):
        loss = model(**enc, labels=labels).loss
        loss.backward()
        losses.append(loss.item())
        torch.nn.utils.clip_grad_norm_(model.parameters(), SETTINGS["max_grad_norm"])
        opt.step()
        sched.step()
        model.zero_grad()
    case["settings"] = SETTINGS
    case["step_losses"] = losses
    save_file({n: p.detach().clone().contiguous() for n, p in model.named_parameters()}, os.path.join(OUT, "after.safetensors"))
    with open(os.path.join(OUT, "case.json"), "w") as f:
        json.dump(case, f)
    print("wrote", OUT, "with torch", torch.__version__, "loss", case["loss"], "losses", losses)


if __name__ == "__main__":
    main()
