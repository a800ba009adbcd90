"""GGUF reading: metadata, tensors, hyper-parameters and layer weights in Hugging
Face layout (shared with scripts/reference_forward.py)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

import gguf
from gguf import quants as gguf_quants

from . import ConversionError
from .blocks import BLOCK_TYPES, QuantLinear, decompose

SUPPORTED_ARCHS = ("llama", "qwen2")

_MISSING = object()


class GGUFModel:
    """Thin wrapper over gguf.GGUFReader: metadata access and fp32 tensors."""

    def __init__(self, path: str):
        self.path = path
        try:
            self.reader = gguf.GGUFReader(path)
        except Exception as e:  # noqa: BLE001 - re-raised with context
            raise ConversionError(f"cannot read GGUF file {path}: {e}") from e
        self.tensors = {t.name: t for t in self.reader.tensors}
        self.arch = self.get("general.architecture")

    def get(self, key: str, default=_MISSING):
        field = self.reader.fields.get(key)
        if field is None:
            if default is _MISSING:
                raise ConversionError(f"GGUF metadata key {key!r} is missing")
            return default
        return field.contents()

    def arch_get(self, suffix: str, default=_MISSING):
        return self.get(f"{self.arch}.{suffix}", default)

    def has_tensor(self, name: str) -> bool:
        return name in self.tensors

    def tensor(self, name: str) -> np.ndarray:
        """Tensor `name` dequantized to float32, in numpy/PyTorch order.

        GGUF lists dimensions fastest-first (ne0 = row length), so a linear
        weight of shape [n_in, n_out] in GGUF is [n_out, n_in] here, exactly
        like the Hugging Face nn.Linear weight it came from.
        """
        t = self.tensors.get(name)
        if t is None:
            raise ConversionError(f"tensor {name!r} is missing from the GGUF file")
        qtype = gguf.GGMLQuantizationType(t.tensor_type)
        try:
            data = gguf_quants.dequantize(t.data, qtype)
        except NotImplementedError as e:
            raise ConversionError(
                f"tensor {name!r} uses GGML type {qtype.name}, which this converter "
                f"cannot dequantize ({e})") from e
        shape = tuple(int(d) for d in reversed(t.shape.tolist()))
        return np.ascontiguousarray(data.reshape(shape), dtype=np.float32)

    def quant_type(self, name: str) -> "gguf.GGMLQuantizationType":
        t = self.tensors.get(name)
        if t is None:
            raise ConversionError(f"tensor {name!r} is missing from the GGUF file")
        return gguf.GGMLQuantizationType(t.tensor_type)

    def blocks(self, name: str) -> "QuantLinear":
        """A quantized matrix as its raw blocks (no dequantization), see decompose()."""
        t = self.tensors[name]
        n_out, n_in = (int(d) for d in reversed(t.shape.tolist()))
        return decompose(np.asarray(t.data, dtype=np.uint8).reshape(n_out, -1),
                         self.quant_type(name), name)

    def tensor_types(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for t in self.reader.tensors:
            n = gguf.GGMLQuantizationType(t.tensor_type).name
            counts[n] = counts.get(n, 0) + 1
        return dict(sorted(counts.items()))


@dataclass
class HParams:
    arch: str
    n_layers: int
    hidden: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    ffn: int
    vocab: int
    context_length: int
    rope_theta: float
    rms_eps: float
    tied: bool
    has_qkv_bias: bool

    @staticmethod
    def from_gguf(m: GGUFModel) -> "HParams":
        if m.arch not in SUPPORTED_ARCHS:
            raise ConversionError(
                f"unsupported architecture {m.arch!r}; supported: {', '.join(SUPPORTED_ARCHS)}")
        n_heads = int(m.arch_get("attention.head_count"))
        hidden = int(m.arch_get("embedding_length"))
        n_kv = int(m.arch_get("attention.head_count_kv", n_heads))
        head_dim = int(m.arch_get("attention.key_length", hidden // n_heads))
        if int(m.arch_get("attention.value_length", head_dim)) != head_dim:
            raise ConversionError("different key and value head sizes are not supported")
        rope_dim = int(m.arch_get("rope.dimension_count", head_dim))
        if rope_dim != head_dim:
            raise ConversionError(
                f"partial rotary embeddings (rope dim {rope_dim} != head dim {head_dim}) "
                "are not supported")
        if n_heads % n_kv:
            raise ConversionError(f"{n_heads} query heads is not a multiple of {n_kv} KV heads")
        scaling = m.arch_get("rope.scaling.type", "none")
        if scaling not in ("none", "linear"):
            raise ConversionError(f"RoPE scaling type {scaling!r} is not supported")
        if not m.has_tensor("token_embd.weight"):
            raise ConversionError("tensor 'token_embd.weight' is missing from the GGUF file")
        vocab = int(m.tensors["token_embd.weight"].shape[1])  # GGUF shape is [hidden, vocab]
        meta_vocab = m.arch_get("vocab_size", None)
        if meta_vocab is not None and int(meta_vocab) != vocab:
            raise ConversionError(
                f"{m.arch}.vocab_size={meta_vocab} but token_embd has {vocab} rows")
        return HParams(
            arch=m.arch,
            n_layers=int(m.arch_get("block_count")),
            hidden=hidden,
            n_heads=n_heads,
            n_kv_heads=n_kv,
            head_dim=head_dim,
            ffn=int(m.arch_get("feed_forward_length")),
            vocab=vocab,
            context_length=int(m.arch_get("context_length")),
            rope_theta=float(m.arch_get("rope.freq_base", 10000.0)),
            rms_eps=float(m.arch_get("attention.layer_norm_rms_epsilon")),
            tied=not m.has_tensor("output.weight"),
            has_qkv_bias=m.has_tensor("blk.0.attn_q.bias"),
        )


def rope_inv_freq(m: GGUFModel, hp: HParams) -> np.ndarray:
    """inv_freq[i] = 1 / theta^(2i/d), with the GGUF's frequency adjustments.

    Computed in float64 and rounded once to float32.  Llama-3 style models
    carry per-frequency divisors in `rope_freqs.weight` (llama.cpp divides the
    rotation frequency by them); linear RoPE scaling divides all frequencies.
    """
    d = hp.head_dim
    inv = 1.0 / (hp.rope_theta ** (np.arange(0, d, 2, dtype=np.float64) / d))
    if m.has_tensor("rope_freqs.weight"):
        inv = inv / m.tensor("rope_freqs.weight").astype(np.float64)
    if m.arch_get("rope.scaling.type", "none") == "linear":
        inv = inv / float(m.arch_get("rope.scaling.factor"))
    return inv.astype(np.float32)


def unpermute_qk(w: np.ndarray, n_head: int) -> np.ndarray:
    """Undo llama.cpp's q/k row permutation for arch "llama".

    convert_hf_to_gguf.py reorders the rows of each head of q_proj/k_proj
    (and their biases) with
        w.reshape(n_head, 2, d // n_head // 2, *rest).swapaxes(1, 2).reshape(w.shape)
    so that llama.cpp's interleaved ("GPT-J", adjacent pairs) RoPE computes
    the same thing as Hugging Face's rotate_half RoPE (pairs i, i + d/2).
    Swapping back restores the Hugging Face row order, after which the
    standard rotate_half RoPE is correct.
    """
    # Forward: view rows as (head, 2, d/2) and swap -> (head, d/2, 2).
    # Inverse: view rows as (head, d/2, 2) and swap back -> (head, 2, d/2).
    half = w.shape[0] // n_head // 2
    return np.ascontiguousarray(
        w.reshape(n_head, half, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape))


LINEAR_TENSORS = {"q": "attn_q", "k": "attn_k", "v": "attn_v", "o": "attn_output",
                  "gate": "ffn_gate", "up": "ffn_up", "down": "ffn_down"}


def layer_weights(m: GGUFModel, hp: HParams, i: int, weights: str = "fp32") -> dict:
    """Layer `i`'s weights in Hugging Face layout ([out, in] for linears).

    With weights="q4", linears of a type in BLOCK_TYPES come back as
    QuantLinear blocks, everything else as float32 arrays.
    """
    p = f"blk.{i}."
    if weights == "q4":
        w = {"attn_norm": m.tensor(p + "attn_norm.weight"),
             "ffn_norm": m.tensor(p + "ffn_norm.weight")}
        for key, tname in LINEAR_TENSORS.items():
            name = p + tname + ".weight"
            w[key] = m.blocks(name) if m.quant_type(name) in BLOCK_TYPES else m.tensor(name)
        for name in ("q", "k", "v"):
            if m.has_tensor(p + f"attn_{name}.bias"):
                w[name + "_bias"] = m.tensor(p + f"attn_{name}.bias")
        if hp.arch == "llama":
            for name, heads in (("q", hp.n_heads), ("k", hp.n_kv_heads)):
                if isinstance(w[name], QuantLinear):
                    w[name] = w[name].rows(lambda a, h=heads: unpermute_qk(a, h))
                else:
                    w[name] = unpermute_qk(w[name], heads)
                if name + "_bias" in w:
                    w[name + "_bias"] = unpermute_qk(w[name + "_bias"], heads)
        return w
    w = {
        "attn_norm": m.tensor(p + "attn_norm.weight"),
        "q": m.tensor(p + "attn_q.weight"),
        "k": m.tensor(p + "attn_k.weight"),
        "v": m.tensor(p + "attn_v.weight"),
        "o": m.tensor(p + "attn_output.weight"),
        "ffn_norm": m.tensor(p + "ffn_norm.weight"),
        "gate": m.tensor(p + "ffn_gate.weight"),
        "up": m.tensor(p + "ffn_up.weight"),
        "down": m.tensor(p + "ffn_down.weight"),
    }
    for name in ("q", "k", "v"):
        if m.has_tensor(p + f"attn_{name}.bias"):
            w[name + "_bias"] = m.tensor(p + f"attn_{name}.bias")
    if hp.arch == "llama":
        # qwen2 (and other NEOX-RoPE archs) are stored unpermuted.
        for name, heads in (("q", hp.n_heads), ("k", hp.n_kv_heads)):
            w[name] = unpermute_qk(w[name], heads)
            if name + "_bias" in w:
                w[name + "_bias"] = unpermute_qk(w[name + "_bias"], heads)
    return w


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
