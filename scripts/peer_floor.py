#!/usr/bin/env python3
"""The least a llama.cpp sliding-window coder could write, for comparison.

The issue's peer (llama-zip) codes text with llama.cpp and the same
SmolLM2-135M GGUF, with a 2,048-token context that slides when full. It is
not on PyPI, so it cannot be installed here; this script measures the floor
of any such coder instead: the model's own cross-entropy under llama.cpp
over the same sliding window, summed in bits and rounded up to bytes per
file. A real coder writes at least this (plus its coder's overhead and any
header).

Usage, with llama-cpp-python installed (for example in a venv):

    python3 scripts/peer_floor.py --gguf SmolLM2-135M-Instruct.Q4_1.gguf FILE...

Prints a Markdown row per file and a total. `--keep` is how many tokens of
a full window stay as context for the next one.

llama-cpp-python 0.3.16, built from its sdist on an AVX2 machine, returned
wrong logits for Q4_1 when one batch held 32 tokens or more (about 5.5
bits per token instead of 1.9 on the same text); batches of up to 31 agreed
with token-by-token evaluation. So batches are small by default, and the
script checks batched against one-token evaluation before it measures.
In that build small batches ran at about 2-3 tokens per second.
"""

import argparse
import math
import os
import sys
import time

import numpy as np


def log_softmax(rows):
    rows = rows.astype(np.float64)
    m = rows.max(axis=1, keepdims=True)
    return rows - m - np.log(np.exp(rows - m).sum(axis=1, keepdims=True))


def mean_bits(llm, tokens, one_at_a_time):
    """Mean bits per token of `tokens[1:]` given the tokens before them."""
    llm.reset()
    if one_at_a_time:
        for t in tokens:
            llm.eval([t])
    else:
        llm.eval(tokens)
    logp = log_softmax(np.array(llm.scores[: len(tokens) - 1]))
    return -np.mean([logp[i, tokens[i + 1]] for i in range(len(tokens) - 1)]) / math.log(2)


def check_batches(llm, tokens):
    """Refuses a llama.cpp whose batched logits code the text differently."""
    probe = tokens[:64]
    batched = mean_bits(llm, probe, one_at_a_time=False)
    single = mean_bits(llm, probe, one_at_a_time=True)
    if abs(batched - single) > 0.02 * single:
        sys.exit(
            f"error: batched evaluation costs {batched:.3f} bits/token, one token at a time "
            f"{single:.3f}; use a smaller --n-batch"
        )


def file_bits(llm, tokens, window, keep):
    """Bits of `tokens` under the model, the context sliding at `window`."""
    bits = math.log2(llm.n_vocab())  # the first token has no context
    start, coded = 0, 1  # first token of the window; tokens already counted
    while coded < len(tokens):
        end = min(start + window, len(tokens))
        llm.reset()
        llm.eval(tokens[start:end])
        logp = log_softmax(np.array(llm.scores[: end - start - 1]))
        # Row i predicts tokens[start + i + 1]; count only tokens not yet coded.
        for i in range(coded - start - 1, end - start - 1):
            bits -= logp[i, tokens[start + i + 1]] / math.log(2)
        coded = end
        start = end - keep
    return bits


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--gguf", required=True, help="the GGUF model file")
    ap.add_argument("--window", type=int, default=2048, help="context tokens")
    ap.add_argument("--keep", type=int, default=1024, help="tokens kept when the window slides")
    ap.add_argument("--n-batch", type=int, default=16, help="tokens per llama.cpp batch")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("files", nargs="+")
    args = ap.parse_args()
    if not 0 < args.keep < args.window:
        sys.exit("error: --keep must be between 0 and --window")

    from llama_cpp import Llama

    llm = Llama(
        model_path=args.gguf,
        n_ctx=args.window,
        n_batch=args.n_batch,
        logits_all=True,
        n_threads=args.threads,
        verbose=False,
    )
    name = os.path.basename(args.gguf)
    print(f"llama.cpp cross-entropy of {name}, window {args.window}, keep {args.keep}\n")
    print("| file | bytes | tokens | floor bytes | bits/byte | seconds |")
    print("|---|---:|---:|---:|---:|---:|")
    total_in = total_out = 0
    for path in args.files:
        data = open(path, "rb").read()
        tokens = llm.tokenize(data, add_bos=False, special=False)
        if total_in == 0:
            check_batches(llm, tokens)
        t0 = time.time()
        out = math.ceil(file_bits(llm, tokens, args.window, args.keep) / 8)
        total_in += len(data)
        total_out += out
        print(
            f"| {os.path.basename(path)} | {len(data)} | {len(tokens)} | {out} | "
            f"{8 * out / len(data):.3f} | {time.time() - t0:.1f} |",
            flush=True,
        )
    print(f"| **total** | {total_in} | | {total_out} | {8 * total_out / total_in:.3f} | |")


if __name__ == "__main__":
    main()
