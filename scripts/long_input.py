#!/usr/bin/env python3
"""Writes a long text for memory runs: random words of a sample, in lines.

    python3 scripts/long_input.py MEGABYTES OUT [--seed N] [--sample FILE]

The words come from examples/data/sample.txt (by default), drawn with a
seeded generator, so the same arguments give the same bytes.
"""
import argparse
import random


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("megabytes", type=float)
    ap.add_argument("out")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sample", default="examples/data/sample.txt")
    args = ap.parse_args()
    words = open(args.sample, encoding="utf-8").read().split()
    rng = random.Random(args.seed)
    target = int(args.megabytes * 1_000_000)
    written = 0
    with open(args.out, "w", encoding="utf-8") as f:
        while written < target:
            line = " ".join(rng.choice(words) for _ in range(rng.randint(4, 16))) + "\n"
            line = line[: target - written]
            f.write(line)
            written += len(line.encode("utf-8"))


if __name__ == "__main__":
    main()
