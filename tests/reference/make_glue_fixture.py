#!/usr/bin/env python3
"""Writes tests/fixtures/glue-tiny/{train,dev}.tsv: synthetic sentence pairs in
GLUE MRPC's layout (BOM, header, TAB-separated, ids), so the tests and the
page's browser tests need no copy of MRPC. Standard library only:

    python3 tests/reference/make_glue_fixture.py

A positive pair says the same thing twice (the second sentence reorders and
swaps a word for its partner); a negative pair joins two unrelated sentences.
240 train pairs (160 positive), 60 validation pairs (41 positive): about
MRPC's 68% majority class.
"""
import os
import random

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "fixtures", "glue-tiny")

SUBJECTS = ["the company", "the city", "the team", "the school", "the market", "the family", "the government",
            "the club", "the house", "the church", "the state", "the group", "the people", "the man", "the woman"]
VERBS = [("said", "stated"), ("found", "discovered"), ("made", "produced"), ("got", "received"),
         ("began", "started"), ("left", "departed"), ("showed", "revealed"), ("took", "seized")]
OBJECTS = ["a new plan", "the first game", "the last day", "a large part", "the main road", "the old name",
           "a small area", "the high water", "the next year", "a great deal", "the best time", "the same place"]
TIMES = ["on monday", "last week", "in the morning", "this year", "at night", "after the war", "before the end"]


def sentence(rng):
    s, (v, w), o, t = rng.choice(SUBJECTS), rng.choice(VERBS), rng.choice(OBJECTS), rng.choice(TIMES)
    return (s, v, w, o, t)


def say(parts, swap):
    s, v, w, o, t = parts
    return f"{s} {w} {o} {t} ." if swap else f"{t} , {s} {v} {o} ."


def pairs(rng, n, positives):
    labels = [1] * positives + [0] * (n - positives)
    rng.shuffle(labels)
    rows = []
    for i, label in enumerate(labels):
        a = sentence(rng)
        b = a if label else sentence(rng)
        rows.append(f"{label}\t{100000 + 2 * i}\t{100001 + 2 * i}\t{say(a, False).capitalize()}\t{say(b, True).capitalize()}")
    return rows


def main():
    rng = random.Random(7)
    os.makedirs(OUT, exist_ok=True)
    for name, n, pos in [("train.tsv", 240, 160), ("dev.tsv", 60, 41)]:
        with open(os.path.join(OUT, name), "w", encoding="utf-8", newline="") as f:
            f.write("\ufeffQuality\t#1 ID\t#2 ID\t#1 String\t#2 String\n")
            f.write("\n".join(pairs(rng, n, pos)) + "\n")


if __name__ == "__main__":
    main()
