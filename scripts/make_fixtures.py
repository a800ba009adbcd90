#!/usr/bin/env python3
"""Test fixtures: a tiny random-weight model, converted like a real one.

    python scripts/make_fixtures.py OUT_DIR [--seed 0] [--tiny-arch llama|qwen2]
                                    [--keep-gguf PATH] [conversion options]

builds a small random-weight GGUF in a temporary file with gguf's own
``GGUFWriter`` (two quantized tensor formats included) and runs the very
same conversion on it (``tenbits_convert.convert``, with the options of
scripts/convert_gguf.py); this is how ``tests/fixtures/tiny`` and
``tests/fixtures/tiny-optimum`` are produced:

    python scripts/make_fixtures.py tests/fixtures/tiny --weights q4 --kv-cache static --lora-rank 4
    python scripts/make_fixtures.py tests/fixtures/tiny-optimum

(``scripts/convert_gguf.py --tiny OUT_DIR ...`` runs this too.)
scripts/test_convert_gguf.py uses its tiny BPE vocabulary.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile

import numpy as np

import gguf
from gguf import quants as gguf_quants

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tenbits_convert import ConversionError, log  # noqa: E402
from tenbits_convert.convert import add_conversion_options, convert  # noqa: E402
from tenbits_convert.gguf_io import SUPPORTED_ARCHS  # noqa: E402
from tenbits_convert.tokenizer import bytes_to_unicode  # noqa: E402

_TINY_TEXT = (
    "the quick brown fox jumps over the lazy dog. the cat sat on the mat and the dog "
    "ate the food. there is a house in the town where they live with their mother and "
    "father. this is the thing that he said to her: it is what it is, and that is that. "
    "in the beginning there was nothing, then there were stars and then there was light. "
    "we want to compress text with language models and send it over the network."
)


def tiny_bpe(n_merges: int = 100) -> tuple[list[str], list[int], list[str]]:
    """A small byte-level BPE vocabulary learnt from _TINY_TEXT (deterministic)."""
    b2u = bytes_to_unicode()
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tokens = specials + [b2u[b] for b in range(256)]
    # Words as GPT-2 pre-tokenizes them: a leading space belongs to the word.
    words: dict[tuple[str, ...], int] = {}
    for j, w in enumerate(_TINY_TEXT.split(" ")):
        word = tuple(b2u[b] for b in ((" " if j else "") + w).encode())
        words[word] = words.get(word, 0) + 1
    merges = []
    for _ in range(n_merges):
        pairs: dict[tuple[str, str], int] = {}
        for word, c in words.items():
            for a, b in zip(word, word[1:]):
                pairs[(a, b)] = pairs.get((a, b), 0) + c
        if not pairs:
            break
        (a, b), _count = min(pairs.items(), key=lambda kv: (-kv[1], kv[0]))
        merges.append(f"{a} {b}")
        tokens.append(a + b)
        new_words = {}
        for word, c in words.items():
            out, j = [], 0
            while j < len(word):
                if j + 1 < len(word) and word[j] == a and word[j + 1] == b:
                    out.append(a + b)
                    j += 2
                else:
                    out.append(word[j])
                    j += 1
            new_words[tuple(out)] = new_words.get(tuple(out), 0) + c
        words = new_words
    types = [3] * len(specials) + [1] * (len(tokens) - len(specials))
    return tokens, types, merges


def write_tiny_gguf(path: str, seed: int = 0, arch: str = "llama") -> None:
    """A 2-layer random model with a tiny BPE tokenizer, as a GGUF file.

    arch "llama": tied embeddings, no biases (like SmolLM2).  arch "qwen2":
    q/k/v biases, a separate output.weight and the qwen2 pre-tokenizer, to
    exercise those code paths.
    """
    rng = np.random.default_rng(seed)
    tokens, types, merges = tiny_bpe()
    n_layers, hidden, n_heads, n_kv, ffn, ctx = 2, 64, 4, 2, 128, 256
    head_dim = hidden // n_heads
    vocab = len(tokens)

    w = gguf.GGUFWriter(path, arch)
    w.add_name("tenbits-tiny-random")
    w.add_block_count(n_layers)
    w.add_context_length(ctx)
    w.add_embedding_length(hidden)
    w.add_feed_forward_length(ffn)
    w.add_head_count(n_heads)
    w.add_head_count_kv(n_kv)
    w.add_rope_dimension_count(head_dim)
    w.add_rope_freq_base(10000.0)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_vocab_size(vocab)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("smollm" if arch == "llama" else "qwen2")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_pad_token_id(2)
    w.add_add_bos_token(False)
    w.add_chat_template("{% for message in messages %}{{'<|im_start|>' + message['role'] + "
                        "'\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"
                        "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")

    Q8, Q41 = gguf.GGMLQuantizationType.Q8_0, gguf.GGMLQuantizationType.Q4_1

    def add(name, shape, std, qtype=None, mean=0.0):
        arr = (mean + std * rng.standard_normal(shape)).astype(np.float32)
        if qtype is None:
            w.add_tensor(name, arr)
        else:
            w.add_tensor(name, gguf_quants.quantize(arr, qtype), raw_dtype=qtype)

    add("token_embd.weight", (vocab, hidden), 0.5, Q8)
    for i in range(n_layers):
        p = f"blk.{i}."
        add(p + "attn_norm.weight", (hidden,), 0.1, mean=1.0)
        add(p + "attn_q.weight", (n_heads * head_dim, hidden), 0.3, Q41)
        add(p + "attn_k.weight", (n_kv * head_dim, hidden), 0.3, Q41)
        add(p + "attn_v.weight", (n_kv * head_dim, hidden), 0.2, Q8)
        if arch == "qwen2":
            add(p + "attn_q.bias", (n_heads * head_dim,), 0.2)
            add(p + "attn_k.bias", (n_kv * head_dim,), 0.2)
            add(p + "attn_v.bias", (n_kv * head_dim,), 0.2)
        add(p + "attn_output.weight", (hidden, n_heads * head_dim), 0.1, Q41)
        add(p + "ffn_norm.weight", (hidden,), 0.1, mean=1.0)
        add(p + "ffn_gate.weight", (ffn, hidden), 0.2, Q41)
        add(p + "ffn_up.weight", (ffn, hidden), 0.2, Q8)
        add(p + "ffn_down.weight", (hidden, ffn), 0.1)
    add("output_norm.weight", (hidden,), 0.1, mean=1.0)
    if arch == "qwen2":
        add("output.weight", (vocab, hidden), 0.5, Q8)

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out_dir", metavar="OUT_DIR")
    ap.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    ap.add_argument("--tiny-arch", choices=SUPPORTED_ARCHS, default="llama",
                    help="architecture of the tiny model (default llama)")
    ap.add_argument("--keep-gguf", metavar="PATH", help="also keep the generated GGUF at PATH")
    add_conversion_options(ap)
    args = ap.parse_args(argv)
    try:
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "tiny.gguf")
            write_tiny_gguf(path, args.seed, args.tiny_arch)
            if args.keep_gguf:
                shutil.copyfile(path, args.keep_gguf)
            convert(path, args.out_dir, args.external_data, args.weights,
                    args.accuracy_level, args.kv_cache, args.lora_rank)
    except ConversionError as e:
        log(f"error: {e}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
