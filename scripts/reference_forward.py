#!/usr/bin/env python3
"""Independent pure-numpy forward pass of a GGUF model, for checking the ONNX export.

Usage
-----
    python scripts/reference_forward.py MODEL.gguf [--prompt TEXT | --ids 1,2,3] [--out FILE]

It shares only the GGUF reading / dequantization helpers with the
converter (tenbits_convert.gguf_io).  Everything else is written
differently on purpose:

* computation is in float64, one sequence, no KV cache;
* for arch "llama" the q/k weights are used exactly as stored in the GGUF
  (llama.cpp's permuted row order) together with llama.cpp's interleaved
  RoPE (rotating adjacent pairs 2i, 2i+1), whereas the converter un-permutes
  and uses Hugging Face's rotate_half; agreement of the two checks the
  un-permutation.  For "qwen2" it uses NEOX RoPE (pairs i, i + d/2);
* the prompt is tokenized by a small pure-Python byte-level BPE (the GPT-2,
  Qwen2 or Llama 3 split regex approximated with Python's `re`, exact for
  ASCII; digits split for StarCoder-family pre-tokenizers; NFC for Qwen2),
  not by the `tokenizers` library;
* weights come from gguf.quants.dequantize (ggml's reference), not from the
  converter's block decomposition.

The result (prompt ids, the top-10 logits at the last position and the logits
of a few fixed ids) is printed and, with --out, written as JSON; this is how
tests/fixtures/smollm2_reference_logits.json and
tests/fixtures/reference/<model>.json (for tests/models_reference.rs) are made:

    python scripts/reference_forward.py GGUF --prompt $'def add(a, b):\\n    return' \\
        --out tests/fixtures/reference/NAME.json
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import unicodedata

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tenbits_convert.gguf_io import GGUFModel, HParams, sha256_file  # noqa: E402
from tenbits_convert.tokenizer import bytes_to_unicode  # noqa: E402


# ---------------------------------------------------------------- tokenizer

# GPT-2's pre-tokenizer regex with \p{L} ~ [^\W\d_] and \p{N} ~ \d, which is
# exact for ASCII text.
_GPT2_RE = re.compile(r"'s|'t|'re|'ve|'m|'ll|'d| ?[^\W\d_]+| ?\d+| ?(?:[^\s\w]|_)+|\s+(?!\S)|\s+")
# Qwen2's (and, with up to 3 digits together, Llama 3's) split regex, the
# same approximation: [^\r\n\p{L}\p{N}] ~ (?:[^\r\n\w]|_), [^\s\p{L}\p{N}] ~ (?:[^\s\w]|_).
_QWEN2_RE = re.compile(r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|(?:[^\r\n\w]|_)?[^\W\d_]+|\d"
                       r"| ?(?:[^\s\w]|_)+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
_LLAMA3_RE = re.compile(r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|(?:[^\r\n\w]|_)?[^\W\d_]+|\d{1,3}"
                        r"| ?(?:[^\s\w]|_)+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")


def bpe_encode(m: GGUFModel, text: str) -> list[int]:
    tokens = list(m.get("tokenizer.ggml.tokens"))
    vocab = {t: i for i, t in enumerate(tokens)}
    ranks = {tuple(mg.split(" ")): r for r, mg in enumerate(m.get("tokenizer.ggml.merges"))}
    pre = m.get("tokenizer.ggml.pre", "default")
    if pre in ("smollm", "starcoder", "refact"):
        pieces = [p for chunk in re.split(r"(\d)", text) if chunk
                  for p in _GPT2_RE.findall(chunk)]
    elif pre in ("default", "gpt2"):
        pieces = _GPT2_RE.findall(text)
    elif pre == "qwen2":
        pieces = _QWEN2_RE.findall(unicodedata.normalize("NFC", text))
    elif pre in ("llama-bpe", "llama3"):
        pieces = _LLAMA3_RE.findall(text)
    else:
        raise SystemExit(f"reference tokenizer does not handle pre-tokenizer {pre!r}; use --ids")
    b2u = bytes_to_unicode()
    ids = []
    for piece in pieces:
        word = [b2u[b] for b in piece.encode("utf-8")]
        while len(word) > 1:
            best = min(range(len(word) - 1),
                       key=lambda j: ranks.get((word[j], word[j + 1]), float("inf")))
            if (word[best], word[best + 1]) not in ranks:
                break
            word = word[:best] + [word[best] + word[best + 1]] + word[best + 2:]
        ids.extend(vocab[w] for w in word)
    if m.get("tokenizer.ggml.add_bos_token", False):
        ids.insert(0, int(m.get("tokenizer.ggml.bos_token_id")))
    return ids


# ---------------------------------------------------------------- forward

def rms_norm(x: np.ndarray, w: np.ndarray, eps: float) -> np.ndarray:
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w


def rope(x: np.ndarray, pos: np.ndarray, theta: float, interleaved: bool,
         inv_freq_div: np.ndarray | None) -> np.ndarray:
    """x: [seq, heads, d].  interleaved: llama.cpp NORM mode (pairs 2i, 2i+1)."""
    d = x.shape[-1]
    freq = theta ** (-np.arange(0, d, 2, dtype=np.float64) / d)
    if inv_freq_div is not None:
        freq = freq / inv_freq_div
    ang = pos[:, None, None] * freq[None, None, :]           # [seq, 1, d/2]
    c, s = np.cos(ang), np.sin(ang)
    if interleaved:
        a, b = x[..., 0::2], x[..., 1::2]
        out = np.empty_like(x)
        out[..., 0::2] = a * c - b * s
        out[..., 1::2] = a * s + b * c
        return out
    a, b = x[..., : d // 2], x[..., d // 2:]
    return np.concatenate([a * c - b * s, a * s + b * c], axis=-1)


def forward(m: GGUFModel, ids: list[int]) -> np.ndarray:
    """Logits [seq, vocab] (float64) for one sequence starting at position 0."""
    hp = HParams.from_gguf(m)
    if m.get(f"{hp.arch}.rope.scaling.type", "none") != "none":
        raise SystemExit("reference forward does not implement RoPE scaling")
    T = lambda name: m.tensor(name).astype(np.float64)  # noqa: E731
    opt = lambda name: T(name) if m.has_tensor(name) else 0.0  # noqa: E731
    H, KV, D = hp.n_heads, hp.n_kv_heads, hp.head_dim
    interleaved = hp.arch == "llama"
    freq_div = T("rope_freqs.weight") if m.has_tensor("rope_freqs.weight") else None
    n = len(ids)
    pos = np.arange(n, dtype=np.float64)
    emb = T("token_embd.weight")
    x = emb[np.array(ids)]
    causal = np.triu(np.full((n, n), -np.inf), k=1)
    for i in range(hp.n_layers):
        p = f"blk.{i}."
        h = rms_norm(x, T(p + "attn_norm.weight"), hp.rms_eps)
        q = (h @ T(p + "attn_q.weight").T + opt(p + "attn_q.bias")).reshape(n, H, D)
        k = (h @ T(p + "attn_k.weight").T + opt(p + "attn_k.bias")).reshape(n, KV, D)
        v = (h @ T(p + "attn_v.weight").T + opt(p + "attn_v.bias")).reshape(n, KV, D)
        q = rope(q, pos, hp.rope_theta, interleaved, freq_div)
        k = rope(k, pos, hp.rope_theta, interleaved, freq_div)
        out = np.empty((n, H, D))
        for head in range(H):
            kv = head // (H // KV)
            s = q[:, head] @ k[:, kv].T / np.sqrt(D) + causal
            s = np.exp(s - s.max(axis=-1, keepdims=True))
            out[:, head] = (s / s.sum(axis=-1, keepdims=True)) @ v[:, kv]
        x = x + out.reshape(n, H * D) @ T(p + "attn_output.weight").T
        h = rms_norm(x, T(p + "ffn_norm.weight"), hp.rms_eps)
        g = h @ T(p + "ffn_gate.weight").T
        u = h @ T(p + "ffn_up.weight").T
        x = x + (g / (1.0 + np.exp(-g)) * u) @ T(p + "ffn_down.weight").T
        print(f"layer {i + 1}/{hp.n_layers}", file=sys.stderr, flush=True)
    x = rms_norm(x, T("output_norm.weight"), hp.rms_eps)
    head_w = T("output.weight") if m.has_tensor("output.weight") else emb
    return x @ head_w.T


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("gguf")
    ap.add_argument("--prompt", default="The capital of France is")
    ap.add_argument("--ids", help="comma-separated token ids (instead of --prompt)")
    ap.add_argument("--fixed-ids", default="0,1,2,100,1000",
                    help="ids whose last-position logits are always recorded")
    ap.add_argument("--out", help="write the JSON result here")
    args = ap.parse_args()

    m = GGUFModel(args.gguf)
    tokens = list(m.get("tokenizer.ggml.tokens"))
    ids = [int(t) for t in args.ids.split(",")] if args.ids else bpe_encode(m, args.prompt)
    logits = forward(m, ids)[-1]
    top = np.argsort(-logits, kind="stable")[:10]
    fixed = [int(t) for t in args.fixed_ids.split(",") if t and int(t) < len(logits)]
    fixed.append(int(top[0]))
    result = {
        "gguf_sha256": sha256_file(args.gguf),
        "prompt": None if args.ids else args.prompt,
        "input_ids": ids,
        "input_tokens": [tokens[i] for i in ids],
        "position": len(ids) - 1,
        "top10": [{"id": int(t), "token": tokens[t], "logit": round(float(logits[t]), 5)}
                  for t in top],
        "fixed_logits": {str(t): round(float(logits[t]), 5) for t in sorted(set(fixed))},
        "logit_mean": round(float(logits.mean()), 5),
        "logit_std": round(float(logits.std()), 5),
        "note": "float64 numpy reference (scripts/reference_forward.py); fp32 ONNX logits "
                "agree within ~1e-2, int8-activation (--weights q4) graphs within the "
                "tolerances of tests/models_reference.rs",
    }
    text = json.dumps(result, indent=2, ensure_ascii=False, sort_keys=True) + "\n"
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
