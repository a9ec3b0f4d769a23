#!/usr/bin/env python3
"""PyTorch's times on the shapes `bertlab bench` measures, for one table with ours.

    python3 bench/pytorch.py --device cpu|cuda --models minilm,bert-base \
        --batches 1,32 --seqs 8,128 [--threads N] [--min-seconds 1] [--model-dir DIR]

Prints one JSON object per line: {"model", "device", "batch", "seq", "ms", "torch", "threads"}.
The same ids as `bertlab bench` (1000 + 7·t + r, no padding), fp32, eval mode,
transformers' default attention (SDPA), as users get it,
inference_mode; on CUDA with TF32 off (true fp32) and synchronised timings. bert-base
has random weights (BertConfig's geometry), as in `bertlab bench`. Exits 3 with a
one-line message when torch (or the device) is missing, so callers can say so.
"""
import argparse
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--models", default="minilm,bert-base")
    ap.add_argument("--batches", default="1,8,32")
    ap.add_argument("--seqs", default="8,128")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--min-seconds", type=float, default=1.0)
    ap.add_argument("--model-dir", default=os.path.join(HERE, "..", "models", "all-MiniLM-L6-v2"))
    a = ap.parse_args()
    try:
        import torch
        from transformers import BertConfig, BertModel
    except ImportError as e:
        print(f"PyTorch is not available here ({e})", file=sys.stderr)
        sys.exit(3)
    if a.device == "cuda" and not torch.cuda.is_available():
        print("PyTorch CUDA is not available here (no CUDA device or a CPU-only torch)", file=sys.stderr)
        sys.exit(3)
    if a.threads:
        torch.set_num_threads(a.threads)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    dev = torch.device(a.device)
    for name in a.models.split(","):
        if name == "minilm":
            model = BertModel.from_pretrained(a.model_dir)
        elif name == "bert-base":
            torch.manual_seed(1)
            model = BertModel(BertConfig())
        else:
            print(f"unknown model geometry {name!r} (minilm, bert-base)", file=sys.stderr)
            sys.exit(2)
        model = model.eval().to(dev)
        for s in map(int, a.seqs.split(",")):
            for b in map(int, a.batches.split(",")):
                ids = torch.tensor([[1000 + 7 * t + r for t in range(s)] for r in range(b)], device=dev)
                mask = torch.ones_like(ids)
                sync = torch.cuda.synchronize if a.device == "cuda" else (lambda: None)
                with torch.inference_mode():
                    model(input_ids=ids, attention_mask=mask)
                    sync()
                    runs, start = 0, time.perf_counter()
                    while runs == 0 or time.perf_counter() - start < a.min_seconds:
                        model(input_ids=ids, attention_mask=mask)
                        runs += 1
                    sync()
                ms = (time.perf_counter() - start) * 1e3 / runs
                print(json.dumps({"model": name, "device": a.device, "batch": b, "seq": s, "ms": ms,
                                  "torch": torch.__version__, "threads": torch.get_num_threads()}), flush=True)


if __name__ == "__main__":
    main()
