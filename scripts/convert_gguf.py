#!/usr/bin/env python3
"""Convert a GGUF language model into the ONNX + tokenizer layout tenbits loads.

Usage
-----
    python scripts/convert_gguf.py MODEL.gguf OUT_DIR [--external-data auto|always|never]
                                   [--weights fp32|q4] [--accuracy-level 4|0|1]
    python scripts/convert_gguf.py --tiny OUT_DIR [--seed 0] [--keep-gguf PATH] [--weights ...]

The first form writes into OUT_DIR:

* ``model.onnx``       fp32 decoder with KV cache (Hugging Face optimum
                        "decoder-with-past" layout, see below); weights are the
                        dequantized GGUF tensors, stored as initializers.  When
                        the weights exceed ~1.8 GB (protobuf's 2 GB limit) they
                        go to ``model.onnx.data`` next to it (external data).
* ``tokenizer.json``   Hugging Face ``tokenizers`` file (byte-level BPE) built
                        from the GGUF tokenizer metadata.
* ``config.json``      hyper-parameters, special token ids, chat template and
                        the sha256 of the source GGUF.

``--weights q4`` keeps every weight the GGUF stores quantized in its own
blocks, with its own values (no requantization: the effective weights equal
gguf.quants.dequantize's, bit for bit), as onnxruntime's contrib op
``com.microsoft.MatMulNBits`` (see decompose() for each type's layout):

* 4 bits, block 32: Q4_0 (w = d (q - 8), the default zero point), Q4_1
  (w = d q + m) and Q4_K (per 32-element sub-block w = d sc q - dmin m,
  Q4_1's form with scale d sc and minimum -dmin m; the 12 packed 6-bit
  scales/minimums are unpacked as ggml's get_scale_min_k4).  A minimum is
  not a float zero point (onnxruntime's CPU kernel would then never prepack
  B and would dequantize the whole matrix with a naive loop on every call,
  ~50x slower), but a small fp32 MatMul of per-block sums of the input with
  the minimums, as llama.cpp does.  K-quants are "centred": zero point 8
  and minimum m + 8 d sc (Q5_1 / Q5_K: 16), the same weights exactly
  (checked per tensor), which cut Qwen2.5-Coder-1.5B's largest logit error
  at accuracy level 4 (below) from 0.19 to 0.06.
* 8 bits: Q5_0 (w = d (q - 16)), Q5_1, Q5_K and Q8_0 in blocks of 32, and
  Q6_K (w = d sc (q - 32), 16 sub-blocks of 16 with int8 scales) in blocks
  of 16: every value fits a byte, shifted to the default zero point 128.
  8-bit MatMulNBits at accuracy level 4 has packed kernels for block sizes
  16 and 32 in onnxruntime 1.31 (on a 2-core AVX2 CPU, per weight: at batch
  1 about 2x slower than 4 bits and 3x faster than a fp32 MatMul; at batch
  8 about as fast as fp32, at under a third of its memory).
* The scales (and minimums) of Q5_x / Q6_K / Q8_0 / K-quants are stored as
  the GGUF has them, float16 super-block scales times small integers, and
  multiplied out to float32 by onnxruntime's constant folding at load time
  (exact: a float16 times an integer below 2^7), so the file stays close to
  the GGUF's size.  Q4_0 / Q4_1 keep float32 scales in the file (SmolLM2's
  converted model is unchanged byte for byte).

Fused q/k/v and gate/up stay one MatMulNBits when their parts share bits
and block size; otherwise (e.g. 4-bit q/k with a 6-bit v) each run of
parts of one kind gets its own MatMulNBits and the results are
concatenated.  Only unsupported types (Q2_K, Q3_K, IQ*, F16, ...) fall
back to fp32.  With accuracy level 4 (the default: int8-quantized
activations, the fast CPU kernels) the LM head is quantized the same way;
level 0/1 computes in fp32 (4-bit) or dequantizes 8-bit weights to fp32
(whose CompFp32 path has no packed kernel), within ~1e-4 of the fp32 model
but no faster on x86.  A quantized token embedding is never expanded: its
rows are gathered from the blocks with ``com.microsoft.GatherBlockQuantized``
(bit-exact d (q - zp)), a minimum gathered separately and added per block;
a tied embedding is stored once and read by the head too.  config.json
records ``"weights"`` (and the accuracy level).  The ``--weights fp32``
output is unchanged.  ``scripts/test_convert_gguf.py`` checks every type's
decomposition against hand-computed blocks and gguf.quants.dequantize, and
reads the weights back out of a converted graph.

``--tiny`` builds a small random-weight llama GGUF in a temporary file with
gguf's own ``GGUFWriter`` (two quantized tensor formats included) and runs the
very same conversion on it; this is how ``tests/fixtures/tiny`` and
``tests/fixtures/tiny-optimum`` are produced:

    python scripts/convert_gguf.py --tiny tests/fixtures/tiny --weights q4 --kv-cache static
    python scripts/convert_gguf.py --tiny tests/fixtures/tiny-optimum

ONNX contract (the Rust side relies on it exactly)
--------------------------------------------------
inputs   input_ids       int64 [batch, seq]
         attention_mask  int64 [batch, past_seq + seq]   (1 attend, 0 padding)
         position_ids    int64 [batch, seq]
         past_key_values.{i}.key / .value  float32 [batch, n_kv_heads, past_seq, head_dim]
outputs  logits          float32 [batch, seq, vocab]
         present.{i}.key / .value  float32 [batch, n_kv_heads, past_seq + seq, head_dim]
Keys are cached after RoPE, as Hugging Face does.  With ``--weights fp32`` only
default-domain ops of opset 17 are used, so any onnxruntime build runs it;
``--weights q4`` also imports com.microsoft version 1 (onnxruntime only).

Only numpy, onnx and gguf are needed (see scripts/requirements-convert.txt).
The output is deterministic: converting the same GGUF twice gives
byte-identical files.

Versioning
----------
CONVERTER_VERSION is read from the registry, ``[converter] version`` in
crates/inference/models.toml, the one place it is defined: setup.py and the
Rust registry key every converted model's cache directory on it and on the
model's ``convert_args``, and it is written into config.json and model.onnx.
**Bump it whenever the converter's output changes** (any byte of model.onnx,
model.onnx.data, tokenizer.json or config.json, for any input), or stale
conversions stay in use.  Changes that leave the output identical (comments,
refactoring) must not bump it, so that nobody reconverts for nothing.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
import tomllib
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

import gguf
from gguf import quants as gguf_quants

OPSET = 17
MS_DOMAIN = "com.microsoft"
REGISTRY = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "crates",
                        "inference", "models.toml")
with open(REGISTRY, "rb") as _f:
    # Bump it there whenever the output changes (see "Versioning" above).
    CONVERTER_VERSION = int(tomllib.load(_f)["converter"]["version"])
# Used instead of -inf for masked attention scores so that a row that is fully
# masked (e.g. a padding query) gives a finite softmax rather than NaN.
MASK_VALUE = float(np.finfo(np.float32).min)
# protobuf cannot serialize messages over 2 GiB; stay well below it.
EXTERNAL_DATA_THRESHOLD = 1800 * 1024 * 1024
EXTERNAL_DATA_NAME = "model.onnx.data"

SUPPORTED_ARCHS = ("llama", "qwen2")


class ConversionError(Exception):
    """A problem with the input model that the converter cannot handle."""


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# GGUF reading (shared with scripts/reference_forward.py)
# --------------------------------------------------------------------------

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


# --------------------------------------------------------------------------
# GGML blocks -> MatMulNBits blocks
# --------------------------------------------------------------------------

_T = gguf.GGMLQuantizationType
QK_K = 256  # elements per K-quant super-block


@dataclass
class QuantLinear:
    """A [N, K] linear weight in blocks of `block` (32 or 16) elements along K.

    w[n, block*b + j] = d[n, b] * (q[n, b, j] - zp[n, b]) + (mins[n, b] if mins is not None)

    q holds one unsigned value per byte (0..15 for 4 bits, 0..255 for 8 bits);
    every product above is exact in float32, so w equals what ggml (and
    gguf.quants.dequantize) computes, bit for bit.  `d_parts` / `min_parts`,
    when set, give d / mins as an exact product a * b of a float16 array and
    an int8/uint8 array (b may be None: d = a), broadcast over
    [N, K/256, 1] x [N, K/256, 256/block] for K-quants: the compact form that
    is stored in the file and multiplied out when onnxruntime loads it.  With
    `centre` c, mins = a * b + c * d (see decompose()).
    """
    qtype: "gguf.GGMLQuantizationType"
    bits: int
    q: np.ndarray      # uint8 [N, K/block, block]
    d: np.ndarray      # float32 [N, K/block]
    mins: np.ndarray | None  # float32 [N, K/block] or None
    zp: np.ndarray     # uint8 [N, K/block]
    block: int = 32
    d_parts: tuple | None = None
    min_parts: tuple | None = None
    centre: int = 0

    def rows(self, perm) -> "QuantLinear":
        """The same weight with its rows (output features) reordered by `perm`."""
        def parts(pr):
            return None if pr is None else tuple(None if a is None else perm(a) for a in pr)
        return QuantLinear(self.qtype, self.bits, perm(self.q), perm(self.d),
                           None if self.mins is None else perm(self.mins), perm(self.zp),
                           self.block, parts(self.d_parts), parts(self.min_parts), self.centre)

    def weight(self) -> np.ndarray:
        """The float32 [N, K] weight the blocks stand for (tests and fallbacks)."""
        w = self.d[..., None] * (self.q.astype(np.float32) - self.zp[..., None].astype(np.float32))
        if self.mins is not None:
            w = w + self.mins[..., None]
        return w.reshape(w.shape[0], -1)

    @staticmethod
    def concat(parts: list["QuantLinear"]) -> "QuantLinear":
        """Stack along N (output features); blocks run along K, so this is exact."""
        bits = {p.bits for p in parts}
        assert len(bits) == 1 and len({p.block for p in parts}) == 1
        mins = None
        if any(p.mins is not None for p in parts):
            mins = np.concatenate([p.mins if p.mins is not None else np.zeros_like(p.d)
                                   for p in parts], axis=0)

        def cat_parts(attr):
            prs = [getattr(p, attr) for p in parts]
            if any(pr is None for pr in prs) or len({tuple(a is None for a in pr) for pr in prs}) != 1 \
                    or len({tuple(a.shape[1:] for a in pr if a is not None) for pr in prs}) != 1 \
                    or len({tuple(a.dtype for a in pr if a is not None) for pr in prs}) != 1:
                return None
            return tuple(None if prs[0][j] is None else np.concatenate([pr[j] for pr in prs])
                         for j in range(len(prs[0])))
        return QuantLinear(parts[0].qtype, bits.pop(), np.concatenate([p.q for p in parts]),
                           np.concatenate([p.d for p in parts]), mins,
                           np.concatenate([p.zp for p in parts]), parts[0].block,
                           cat_parts("d_parts"), cat_parts("min_parts") if mins is not None
                           and all(p.mins is not None for p in parts)
                           and len({p.centre for p in parts}) == 1 else None,
                           parts[0].centre)


# Bytes per block and elements per block of the types decompose() handles.
BLOCK_LAYOUT = {_T.Q4_0: (18, 32), _T.Q4_1: (20, 32), _T.Q5_0: (22, 32), _T.Q5_1: (24, 32),
                _T.Q8_0: (34, 32), _T.Q4_K: (144, QK_K), _T.Q5_K: (176, QK_K),
                _T.Q6_K: (210, QK_K)}
BLOCK_TYPES = tuple(BLOCK_LAYOUT)


def _f16(raw: np.ndarray, at: int) -> np.ndarray:
    """The float16 at byte offset `at` of every block: [N, blocks]."""
    return np.ascontiguousarray(raw[..., at:at + 2]).view(np.float16)[..., 0]


def k_scales_mins(s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Q4_K / Q5_K: the 12 packed bytes -> 8 six-bit scales and 8 six-bit mins.

    As ggml's get_scale_min_k4: for sub-block j < 4, scale = s[j] & 63 and
    min = s[j + 4] & 63; for j >= 4 the low 4 bits come from s[j + 4] (scale:
    low nibble, min: high nibble) and the top 2 bits from the top bits of
    s[j - 4] (scale) and s[j] (min).
    """
    s = s.astype(np.uint8)
    a, b, c = s[..., 0:4], s[..., 4:8], s[..., 8:12]
    sc = np.concatenate([a & 63, (c & 0x0F) | ((a >> 6) << 4)], axis=-1)
    mn = np.concatenate([b & 63, (c >> 4) | ((b >> 6) << 4)], axis=-1)
    return sc, mn


def _centred(ql: QuantLinear, centre: int) -> QuantLinear:
    """w = d q + m as w = d (q - c) + (m + c d), when m + c d is exact in float32.

    The same weights, but MatMulNBits then multiplies the int8 activations
    by d (q - c), centred on zero, instead of d q, all of one sign: at
    accuracy level 4 that about halves the error (the "+ m" term is computed
    from the unquantized input).  ggml computes w = fl(d q + m) with d q and m
    exact; d (q - c) is exact too, so with m + c d exact the sum rounds to the
    same float: still bit-exact.  (Always the case in the models tried; a
    tensor where it is not keeps c = 0.)
    """
    c = ql.mins + np.float32(centre) * ql.d
    if not np.array_equal(c.astype(np.float64),
                          ql.mins.astype(np.float64) + centre * ql.d.astype(np.float64)):
        return ql
    if ql.bits == 4:
        zp = np.full_like(ql.zp, centre)                # 8: MatMulNBits' default
        q = ql.q
    else:
        zp = ql.zp                                      # 128, with q stored - centre
        q = ql.q - np.uint8(centre)
    return QuantLinear(ql.qtype, ql.bits, q, ql.d, c, zp, ql.block, ql.d_parts, ql.min_parts,
                       centre)


def decompose(raw: np.ndarray, qtype: "gguf.GGMLQuantizationType", name: str = "tensor"
              ) -> QuantLinear:
    """Raw GGML blocks of a [N, K] matrix (uint8 [N, bytes per row]) -> QuantLinear.

    GGUF stores a [n_out, n_in] linear weight row by row, each row as blocks
    along n_in: exactly the [N, K/block, block] layout of MatMulNBits' B.

    * Q4_0  w = d (q - 8)                   4 bits, block 32, zero point 8
    * Q4_1  w = d q + m                     4 bits, block 32, zero point 0, mins m
    * Q4_K  w = (d sc_j) q - dmin m_j       4 bits, block 32 (8 sub-blocks of a
                                            256 super-block): Q4_1's form per
                                            sub-block, centred (see _centred):
                                            zero point 8, mins 8 d sc_j - dmin m_j
    * Q5_0  w = d (q - 16)                  8 bits, block 32, stored q + 112, zp 128
    * Q5_1  w = d q + m                     8 bits, block 32, stored q + 112, zp 128,
                                            mins m + 16 d (centred)
    * Q5_K  w = (d sc_j) q - dmin m_j       8 bits, block 32, stored q + 112, zp 128,
                                            mins 16 d sc_j - dmin m_j (centred)
    * Q6_K  w = (d sc_j) (q - 32)           8 bits, block 16 (16 sub-blocks, int8
                                            scales), stored q + 96, zp 128
    * Q8_0  w = d q, q int8                 8 bits, block 32, stored q + 128, zp 128

    Every 8-bit type is shifted to zero point 128, MatMulNBits' default, so no
    zero-point tensor is needed.
    """
    if qtype not in BLOCK_LAYOUT:
        raise ConversionError(f"tensor {name!r}: {qtype.name} blocks are not supported")
    nbytes, per = BLOCK_LAYOUT[qtype]
    n_out = raw.shape[0]
    if raw.shape[1] % nbytes:
        raise ConversionError(f"tensor {name!r}: row of {raw.shape[1]} bytes is not whole "
                              f"{qtype.name} blocks")
    raw = np.asarray(raw, dtype=np.uint8).reshape(n_out, -1, nbytes)
    nsb = raw.shape[1]  # blocks (super-blocks for K-quants) per row

    def full(nb, v):
        return np.full((n_out, nb), v, np.uint8)

    if qtype in (_T.Q4_0, _T.Q4_1, _T.Q8_0):
        # The original Q4_0 / Q4_1 / Q8_0 forms, kept exactly (float32 scales
        # in the file): SmolLM2's converted model must stay byte-identical.
        d = _f16(raw, 0).astype(np.float32)
        if qtype == _T.Q8_0:
            # w = d * q, q int8; stored as q + 128 with zero point 128.
            q = (np.ascontiguousarray(raw[..., 2:34]).view(np.int8).astype(np.int16) + 128)
            return QuantLinear(qtype, 8, q.astype(np.uint8), d, None, full(nsb, 128),
                               d_parts=(_f16(raw, 0), None))
        if qtype == _T.Q4_1:
            mins = _f16(raw, 2).astype(np.float32)
            qs = raw[..., 4:20]
            zp = 0  # w = d*q + m: the "+ m" is a separate (exact) term, see linear()
        else:
            mins, qs, zp = None, raw[..., 2:18], 8  # w = d * (q - 8)
        # ggml packs element j in the low nibble and j + 16 in the high nibble
        # of byte j; unpack to one value per byte in element order.
        q = np.concatenate([qs & 0x0F, qs >> 4], axis=-1)
        return QuantLinear(qtype, 4, q, d, mins, full(nsb, zp))

    if qtype in (_T.Q5_0, _T.Q5_1):
        d16 = _f16(raw, 0)
        off = 2 if qtype == _T.Q5_0 else 4
        qh = np.ascontiguousarray(raw[..., off:off + 4]).view("<u4")          # [N, nb, 1]
        qs = raw[..., off + 4:off + 20]
        # Low 4 bits: element j in the low nibble of byte j, j + 16 in its high
        # nibble; the 5th bit of element e is bit e of the little-endian qh.
        high = ((qh >> np.arange(32, dtype=np.uint32)) & 1).astype(np.uint8)  # [N, nb, 32]
        q = np.concatenate([qs & 0x0F, qs >> 4], axis=-1) | (high << 4)
        if qtype == _T.Q5_0:
            return QuantLinear(qtype, 8, q + np.uint8(112), d16.astype(np.float32), None,
                               full(nsb, 128), d_parts=(d16, None))
        m16 = _f16(raw, 2)
        return _centred(QuantLinear(qtype, 8, q + np.uint8(128), d16.astype(np.float32),
                                    m16.astype(np.float32), full(nsb, 128), d_parts=(d16, None),
                                    min_parts=(m16, None)), 16)

    if qtype in (_T.Q4_K, _T.Q5_K):
        d16, dmin16 = _f16(raw, 0)[..., None], _f16(raw, 2)[..., None]     # [N, ns, 1]
        sc, mn = k_scales_mins(raw[..., 4:16])                              # [N, ns, 8]
        if qtype == _T.Q4_K:
            qs = raw[..., 16:144].reshape(n_out, nsb, 4, 32)
            # 64 elements per 32 bytes: sub-block 2i in the low nibbles of
            # bytes 32i..32i+31, sub-block 2i+1 in their high nibbles.
            q = np.stack([qs & 0x0F, qs >> 4], axis=3).reshape(n_out, nsb * 8, 32)
            bits, zp = 4, 0
        else:
            qh = raw[..., 16:48]                                            # [N, ns, 32]
            qs = raw[..., 48:176].reshape(n_out, nsb, 4, 32)
            low = np.stack([qs & 0x0F, qs >> 4], axis=3).reshape(n_out, nsb, 8, 32)
            # The 5th bit of element l of sub-block j is bit j of qh[l].
            high = (qh[:, :, None, :] >> np.arange(8, dtype=np.uint8)[None, None, :, None]) & 1
            q = ((low | (high << 4)) + np.uint8(128)).reshape(n_out, nsb * 8, 32)
            bits, zp = 8, 128
        d = (d16.astype(np.float32) * sc.astype(np.float32)).reshape(n_out, -1)
        mins = -(dmin16.astype(np.float32) * mn.astype(np.float32)).reshape(n_out, -1)
        return _centred(QuantLinear(qtype, bits, q, d, mins, full(nsb * 8, zp), 32,
                                    d_parts=(d16, sc), min_parts=(-dmin16, mn)),
                        8 if qtype == _T.Q4_K else 16)

    # Q6_K: ql[128] qh[64] scales[16] (int8) d (f16), 16 sub-blocks of 16.
    ql = raw[..., 0:128].reshape(n_out, nsb, 2, 2, 32)     # [half, ql offset 0/32, l]
    qh = raw[..., 128:192].reshape(n_out, nsb, 2, 1, 32)   # [half, -, l]
    sc = np.ascontiguousarray(raw[..., 192:208]).view(np.int8)             # [N, ns, 16]
    d16 = _f16(raw, 208)[..., None]                                        # [N, ns, 1]
    # In each half of 128 elements, element 32k + l (k = 0..3) takes its low
    # 4 bits from ql[l + 32 (k % 2)] (low nibble for k < 2, high for k >= 2)
    # and its top 2 bits from bits 2k, 2k+1 of qh[l].
    low = np.concatenate([ql & 0x0F, ql >> 4], axis=3)                     # [N, ns, 2, 4, 32]
    high = (qh >> (2 * np.arange(4, dtype=np.uint8))[None, None, None, :, None]) & 3
    q = ((low | (high << 4)) + np.uint8(96)).reshape(n_out, nsb * 16, 16)
    d = (d16.astype(np.float32) * sc.astype(np.float32)).reshape(n_out, -1)
    return QuantLinear(qtype, 8, q, d, None, full(nsb * 16, 128), 16, d_parts=(d16, sc))


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


# --------------------------------------------------------------------------
# ONNX graph construction
# --------------------------------------------------------------------------

class GraphBuilder:
    """Collects nodes and initializers with deterministic names.

    With `external_path` set, each weight is appended to that file as soon as
    it is added (so a large model is never held in memory twice) and the
    initializer only records its offset.
    """

    def __init__(self, external_path: str | None = None):
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._count = 0
        self._external = open(external_path, "wb") if external_path else None
        self._external_name = os.path.basename(external_path) if external_path else None

    def close(self) -> None:
        if self._external:
            self._external.close()

    def _fresh(self, hint: str) -> str:
        self._count += 1
        return f"{hint}_{self._count}"

    def weight(self, name: str, arr: np.ndarray) -> str:
        arr = np.ascontiguousarray(arr)
        if self._external is not None and arr.nbytes >= 1024:
            # Align each tensor to 64 bytes so runtimes can map it directly.
            pad = (-self._external.tell()) % 64
            self._external.write(b"\0" * pad)
            offset = self._external.tell()
            self._external.write(arr.tobytes())
            t = TensorProto()
            t.name = name
            t.data_type = helper.np_dtype_to_tensor_dtype(arr.dtype)
            t.dims.extend(arr.shape)
            t.data_location = TensorProto.EXTERNAL
            for k, v in (("location", self._external_name), ("offset", str(offset)),
                         ("length", str(arr.nbytes))):
                e = t.external_data.add()
                e.key, e.value = k, v
        else:
            t = numpy_helper.from_array(arr, name)
        self.initializers.append(t)
        return name

    def const(self, values, dtype, hint: str = "const") -> str:
        return self.weight(self._fresh(hint), np.array(values, dtype=dtype))

    def op(self, op_type: str, inputs: list[str], hint: str | None = None,
           n_out: int = 1, outputs: list[str] | None = None, **attrs):
        if outputs is None:
            base = self._fresh(hint or op_type.lower())
            outputs = [base] if n_out == 1 else [f"{base}_{j}" for j in range(n_out)]
        self.nodes.append(helper.make_node(op_type, inputs, outputs,
                                           name=f"{op_type}_{len(self.nodes)}", **attrs))
        return outputs[0] if len(outputs) == 1 else outputs


def rms_norm(g: GraphBuilder, x: str, weight: str, eps: str, two: str, hint: str) -> str:
    # Pow/ReduceMean/Add/Sqrt/Div/Mul is the pattern onnxruntime fuses into
    # its SimplifiedLayerNormalization kernel; everything stays in fp32.
    sq = g.op("Pow", [x, two], f"{hint}_sq")
    ms = g.op("ReduceMean", [sq], f"{hint}_ms", axes=[-1], keepdims=1)
    rms = g.op("Sqrt", [g.op("Add", [ms, eps], f"{hint}_mseps")], f"{hint}_rms")
    return g.op("Mul", [g.op("Div", [x, rms], f"{hint}_normed"), weight], f"{hint}_out")


def apply_rope(g: GraphBuilder, x: str, cos: str, sin_signed: str, half: str, hint: str) -> str:
    """x * cos + rotate_half(x) * sin, with rotate_half(x) = concat(-x2, x1).

    The minus sign is folded into `sin_signed` = concat(-sin, sin) (computed
    once per forward pass), so here only the halves are swapped.
    """
    x1, x2 = g.op("Split", [x, half], f"{hint}_half", n_out=2, axis=-1)
    swapped = g.op("Concat", [x2, x1], f"{hint}_swap", axis=-1)
    return g.op("Add", [g.op("Mul", [x, cos], f"{hint}_cos"),
                        g.op("Mul", [swapped, sin_signed], f"{hint}_sin")], f"{hint}_rope")


def pack_nibbles(q: np.ndarray) -> np.ndarray:
    """uint8 values 0..15, pairs along the last axis -> one byte (first in the low nibble),
    the packing MatMulNBits uses for its B and zero_points inputs."""
    if q.shape[-1] % 2:
        q = np.concatenate([q, np.zeros(q.shape[:-1] + (1,), np.uint8)], axis=-1)
    return np.ascontiguousarray((q[..., 0::2] | (q[..., 1::2] << 4)).astype(np.uint8))


def folded(g: GraphBuilder, name: str, parts: tuple, shape: list[int], hint: str) -> str:
    """The float32 tensor a * b (reshaped to `shape`) from a QuantLinear's d_parts or
    min_parts: a float16 array and an int8/uint8 array (or None), stored as they
    are and multiplied out by onnxruntime's constant folding when it loads the
    model, before MatMulNBits packs its weights.  The product of a float16 and
    an integer below 2^7 is exact in float32, so this is the ggml value."""
    a, b = parts
    x = g.op("Cast", [g.weight(name + ".f16", a)], f"{hint}_a", to=TensorProto.FLOAT)
    if b is not None:
        x = g.op("Mul", [x, g.op("Cast", [g.weight(name + ".int", b)], f"{hint}_b",
                                 to=TensorProto.FLOAT)], f"{hint}_ab")
    return g.op("Reshape", [x, g.const(shape, np.int64)], hint)


def folded_mins(g: GraphBuilder, name: str, ql: QuantLinear, scales: str, shape: list[int],
                hint: str) -> str:
    """A QuantLinear's minimums from min_parts (plus centre * scales), folded at load."""
    mins = folded(g, name, ql.min_parts, shape, hint)
    if ql.centre:
        centred = g.op("Mul", [scales, g.const(float(ql.centre), np.float32)], f"{hint}_cd")
        mins = g.op("Add", [mins, centred], f"{hint}_centred")
    return mins


def zeros_u8(g: GraphBuilder, shape: list[int], hint: str) -> str:
    """A uint8 zero tensor made at load time (ConstantOfShape is folded too)."""
    return g.op("ConstantOfShape", [g.const(shape, np.int64)], hint,
                value=helper.make_tensor("value", TensorProto.UINT8, [1], [0]))


def quant_key(p, accuracy_level: int):
    """Parts with the same key can share one MatMulNBits; None means fp32."""
    if not isinstance(p, QuantLinear) or (p.bits == 8 and accuracy_level != 4):
        return None  # 8-bit CompFp32 has no packed kernel: dequantized per call
    return (p.bits, p.block)


def linear(g: GraphBuilder, x: str, parts: list, name: str, hint: str,
           accuracy_level: int, loader, qweight: str | None = None,
           scales: str | None = None, labels: list[str] | None = None) -> str:
    """x @ concat(parts, N).T as one MatMul (or com.microsoft.MatMulNBits).

    `parts` are [N_i, K] float32 arrays or QuantLinear blocks.  When every part
    is a QuantLinear of the same bits and block size (8-bit ones only with
    accuracy_level 4) the weight stays quantized:

        y = MatMulNBits(x, q, d, zp)                       (sum_k x_k d (q_k - zp))
          + ReduceSum(x in blocks) @ mins                  (Q4_1 / K-quants' "+ m" term)

    MatMulNBits also accepts float zero points (zp = -m/d would fold the
    minimum in), but onnxruntime's CPU kernel then never prepacks B and
    dequantizes the whole matrix with a naive loop on every call (~50x slower
    than the packed kernels), so the minimum is applied as a separate, small
    fp32 MatMul over per-block sums of x, as llama.cpp does.  Parts of
    different kinds (e.g. 4-bit q/k with a 6-bit v) get one MatMul(NBits)
    each, joined by a Concat; fp32 parts (unsupported types) come from
    `loader(i)`.
    """
    keys = [quant_key(p, accuracy_level) for p in parts]
    if len(set(keys)) > 1:
        labels = labels or [str(j) for j in range(len(parts))]
        outs, j = [], 0
        while j < len(parts):
            e = j
            while e < len(parts) and keys[e] == keys[j]:
                e += 1
            sub = "_".join(labels[j:e])
            outs.append(linear(g, x, parts[j:e], f"{name}.{sub}", f"{hint}_{sub}",
                               accuracy_level, lambda i, off=j: loader(off + i)))
            j = e
        return g.op("Concat", outs, f"{hint}_cat", axis=-1)
    if keys[0] is None:
        w = np.concatenate([p if isinstance(p, np.ndarray) else loader(j)
                            for j, p in enumerate(parts)], axis=0)
        return g.op("MatMul", [x, g.weight(name + ".weight_t", np.ascontiguousarray(w.T))], hint)
    ql = QuantLinear.concat(parts)
    n, nb = ql.d.shape
    bs = ql.block
    k = nb * bs
    if ql.bits == 4:
        b = pack_nibbles(ql.q)                       # [N, K/bs, bs/2]
        zp = pack_nibbles(ql.zp)                     # [N, ceil(K/bs / 2)]
        default_zp = 8
    else:
        b, zp, default_zp = np.ascontiguousarray(ql.q), np.ascontiguousarray(ql.zp), 128
    # qweight/scales: already-added tensors holding the same values (a tied,
    # quantized embedding), reshaped to [N, K/bs, blob] by the caller.
    qweight = qweight or g.weight(name + ".qweight", b)
    if scales is None:
        scales = (folded(g, name + ".scales", ql.d_parts, [n, nb], f"{hint}_scales")
                  if ql.d_parts is not None else g.weight(name + ".scales", ql.d))
    inputs = [x, qweight, scales]
    if not (ql.zp == default_zp).all():
        if ql.d_parts is not None and not ql.zp.any():
            inputs.append(zeros_u8(g, list(zp.shape), f"{hint}_zp"))
        else:
            inputs.append(g.weight(name + ".qzeros", zp))
    y = g.op("MatMulNBits", inputs, hint, domain=MS_DOMAIN, K=k, N=n, bits=ql.bits,
             block_size=bs, accuracy_level=accuracy_level)
    if ql.mins is not None:
        blocks = g.op("Reshape", [x, g.const([0, 0, nb, bs], np.int64)], f"{hint}_blocks")
        sums = g.op("ReduceSum", [blocks, g.const([-1], np.int64)], f"{hint}_blocksum",
                    keepdims=0)                                                  # [B,S,K/bs]
        if ql.min_parts is not None:
            mins_t = g.op("Transpose", [folded_mins(g, name + ".mins", ql, scales, [n, nb],
                                                    f"{hint}_mins")], f"{hint}_mins_t", perm=[1, 0])
        else:
            mins_t = g.weight(name + ".mins_t", np.ascontiguousarray(ql.mins.T))
        offs = g.op("MatMul", [sums, mins_t], f"{hint}_min")
        y = g.op("Add", [y, offs], f"{hint}_q41")
    return y


def quantized_embedding(g: GraphBuilder, eq: QuantLinear, hp: HParams, share: bool
                        ) -> tuple[str, str | None, str | None]:
    """Token embeddings gathered from quantized rows with GatherBlockQuantized.

    The rows stay in their GGML blocks (bit-exact d * (q - zp)); a minimum
    (Q4_1, Q4_K, ...) is gathered separately and added per block.  Returns the
    embeddings and, with `share` (tied embeddings), the same weight reshaped
    as MatMulNBits' B and its scales, for the LM head.
    """
    nb, bs = eq.d.shape[1], eq.block
    data = eq.q if eq.bits == 8 else pack_nibbles(eq.q)
    blob = data.shape[-1]
    qw = g.weight("model.embed_tokens.qweight", np.ascontiguousarray(data.reshape(hp.vocab, -1)))
    scales = (folded(g, "model.embed_tokens.scales", eq.d_parts, [hp.vocab, nb], "embed_scales")
              if eq.d_parts is not None else g.weight("model.embed_tokens.scales", eq.d))
    inputs = [qw, "input_ids", scales]
    default_zp = 8 if eq.bits == 4 else 128
    if not (eq.zp == default_zp).all():
        zp = pack_nibbles(eq.zp) if eq.bits == 4 else eq.zp
        inputs.append(zeros_u8(g, list(zp.shape), "embed_zp") if not eq.zp.any()
                      else g.weight("model.embed_tokens.qzeros", np.ascontiguousarray(zp)))
    x = g.op("GatherBlockQuantized", inputs, "embeds", domain=MS_DOMAIN, gather_axis=0,
             quantize_axis=1, block_size=bs, bits=eq.bits)
    if eq.mins is not None:
        mins = (folded_mins(g, "model.embed_tokens.mins", eq, scales, [hp.vocab, nb], "embed_mins")
                if eq.min_parts is not None else g.weight("model.embed_tokens.mins", eq.mins))
        row_mins = g.op("Unsqueeze", [g.op("Gather", [mins, "input_ids"], "embed_row_mins",
                                           axis=0), g.const([-1], np.int64)], "embed_row_mins4")
        blocks = g.op("Reshape", [x, g.const([0, 0, nb, bs], np.int64)], "embed_blocks")
        x = g.op("Reshape", [g.op("Add", [blocks, row_mins], "embed_plus_mins"),
                             g.const([0, 0, hp.hidden], np.int64)], "embeds_min")
    if not share:
        return x, None, None
    return x, g.op("Reshape", [qw, g.const([hp.vocab, nb, blob], np.int64)], "embed_q3"), scales


def build_model(m: GGUFModel, hp: HParams, external_path: str | None,
                weights: str = "fp32", accuracy_level: int = 4,
                kv_cache: str = "concat") -> onnx.ModelProto:
    g = GraphBuilder(external_path)
    D, H, KV = hp.head_dim, hp.n_heads, hp.n_kv_heads
    R = H // KV  # query heads per KV head

    f32, i64 = np.float32, np.int64
    two = g.const(2.0, f32, "two")
    eps = g.const(hp.rms_eps, f32, "rms_eps")
    one_i = g.const(1, i64, "one")
    zero_i = g.const(0, i64, "zero")

    # ---- attention mask: causal within the new tokens + padding mask --------
    # query t (0..seq-1) sits at absolute index past+t and may attend to key j
    # iff j <= past+t and attention_mask[b, j] == 1.
    seq = g.op("Gather", [g.op("Shape", ["input_ids"]), one_i], "seq_len", axis=0)
    total = g.op("Gather", [g.op("Shape", ["attention_mask"]), one_i], "total_len", axis=0)
    past = g.op("Sub", [total, seq], "past_len")
    q_idx = g.op("Range", [past, total, one_i], "q_idx")
    k_idx = g.op("Range", [zero_i, total, one_i], "k_idx")
    causal = g.op("LessOrEqual", [g.op("Unsqueeze", [k_idx, g.const([0], i64)]),
                                  g.op("Unsqueeze", [q_idx, g.const([1], i64)])], "causal")
    pad = g.op("Cast", [g.op("Unsqueeze", ["attention_mask", g.const([1, 2], i64)])],
               "pad_ok", to=TensorProto.BOOL)                                   # [B,1,1,T]
    allowed = g.op("And", [causal, pad], "allowed")                              # [B,1,S,T]
    mask = g.op("Where", [allowed, g.const(0.0, f32), g.const(MASK_VALUE, f32, "mask_value")],
                "mask_bias")
    # Attention runs on [B, KV, R*S, .]: the R query heads sharing a KV head
    # (and the S new tokens) form the rows of one GEMM per (batch, KV head),
    # so each cached key/value is read once per step, not once per query
    # head.  Row r*S + s uses the mask row of token s, hence the Tile.
    mask4 = g.op("Tile", [mask, g.const([1, 1, R, 1], i64)], "mask_bias_rows")  # [B,1,R*S,T]

    # ---- rotary embedding tables from position_ids ---------------------------
    inv_freq = g.weight("rope_inv_freq", rope_inv_freq(m, hp))
    pos = g.op("Cast", ["position_ids"], "pos_f", to=TensorProto.FLOAT)
    freqs = g.op("Mul", [g.op("Unsqueeze", [pos, g.const([2], i64)]), inv_freq], "freqs")
    emb = g.op("Concat", [freqs, freqs], "rope_emb", axis=-1)                    # [B,S,D]
    cos = g.op("Cos", [emb], "rope_cos")
    sin = g.op("Sin", [freqs], "rope_sin_half")
    sin_signed = g.op("Concat", [g.op("Neg", [sin]), sin], "rope_sin_signed", axis=-1)
    cos_q = g.op("Unsqueeze", [cos, g.const([1, 2], i64)], "cos_q")              # [B,1,1,S,D]
    sin_q = g.op("Unsqueeze", [sin_signed, g.const([1, 2], i64)], "sin_q")
    cos_k = g.op("Unsqueeze", [cos, g.const([1], i64)], "cos_k")                 # [B,1,S,D]
    sin_k = g.op("Unsqueeze", [sin_signed, g.const([1], i64)], "sin_k")
    half = g.const([D // 2, D // 2], i64, "rope_split")

    qkv_split = g.const([H * D, KV * D, KV * D], i64, "qkv_split")
    gu_split = g.const([hp.ffn, hp.ffn], i64, "gate_up_split")
    q_shape = g.const([0, 0, KV, R, D], i64, "q_shape")
    kv_shape = g.const([0, 0, KV, D], i64, "kv_shape")
    attn_shape = g.const([0, 0, H * D], i64, "attn_shape")
    scale = g.const(1.0 / np.sqrt(D), f32, "attn_scale")
    rows_shape = g.const([0, 0, -1, D], i64, "rows_shape")
    heads5_shape = g.const([0, 0, R, -1, D], i64, "heads5_shape")

    # ---- embeddings -------------------------------------------------------
    # With weights="q4" and accuracy_level 4, a quantized LM head runs as
    # MatMulNBits (8-bit CompFp32 has no packed kernel, and 4-bit CompFp32 is
    # slower than fp32 here).  A quantized embedding stays in its blocks, read
    # by GatherBlockQuantized (bit-exact); when tied, the head reads the same
    # blocks.
    head_q = None
    head_name = "token_embd.weight" if hp.tied else "output.weight"
    if weights == "q4" and accuracy_level == 4 and m.quant_type(head_name) in BLOCK_TYPES:
        head_q = m.blocks(head_name)
    embed = embed_q = embed_scales = None
    if hp.tied and head_q is not None and head_q.qtype == gguf.GGMLQuantizationType.Q8_0:
        # (SmolLM2's form, kept byte for byte.)
        nb = head_q.d.shape[1]
        embed_q = g.weight("model.embed_tokens.qweight",
                           np.ascontiguousarray(head_q.q.reshape(hp.vocab, nb * 32)))
        embed_scales = g.weight("model.embed_tokens.scales", head_q.d)
        x = g.op("GatherBlockQuantized", [embed_q, "input_ids", embed_scales], "embeds",
                 domain=MS_DOMAIN, gather_axis=0, quantize_axis=1, block_size=32, bits=8)
        # MatMulNBits wants B as [N, K/32, 32]; onnxruntime folds this Reshape
        # of an initializer at load time, so the packed kernel still applies.
        embed_q = g.op("Reshape", [embed_q, g.const([hp.vocab, nb, 32], i64)], "embed_q3")
    elif weights == "q4" and m.quant_type("token_embd.weight") in BLOCK_TYPES and \
            not (hp.tied and head_q is None):
        share = hp.tied and head_q is not None
        eq = head_q if share else m.blocks("token_embd.weight")
        x, embed_q, embed_scales = quantized_embedding(g, eq, hp, share)
        del eq
    else:
        embed = g.weight("model.embed_tokens.weight", m.tensor("token_embd.weight"))
        x = g.op("Gather", [embed, "input_ids"], "embeds", axis=0)

    t0 = time.time()
    for i in range(hp.n_layers):
        w = layer_weights(m, hp, i, weights)
        p = f"model.layers.{i}."

        def lin(x_in, keys, wname, hint):
            def loader(j):  # float32 fallback for a part, same values as weights=fp32
                return layer_weights(m, hp, i)[keys[j]]
            return linear(g, x_in, [w[k_] for k_ in keys], p + wname, hint, accuracy_level,
                          loader, labels=keys)

        h = rms_norm(g, x, g.weight(p + "input_layernorm.weight", w["attn_norm"]), eps, two,
                     f"l{i}_ln1")
        # q, k and v (and gate/up) share one MatMul each: fewer, larger GEMMs
        # are noticeably faster for single-token decode.
        qkv = lin(h, ["q", "k", "v"], "self_attn.qkv_proj", f"l{i}_qkv")
        if hp.has_qkv_bias:
            bias = np.concatenate([w.get(n + "_bias", np.zeros(s, np.float32)) for n, s in
                                   (("q", H * D), ("k", KV * D), ("v", KV * D))])
            qkv = g.op("Add", [qkv, g.weight(p + "self_attn.qkv_proj.bias", bias)], f"l{i}_qkvb")
        q, k, v = g.op("Split", [qkv, qkv_split], f"l{i}_qkv_split", n_out=3, axis=-1)

        # Grouped-query attention: instead of materializing repeated K/V heads,
        # queries are grouped as [B, KV, R, S, D] and K/V broadcast over R
        # ([B, KV, 1, T, D]).  Query head h = kv*R + r uses KV head kv, the same
        # assignment as Hugging Face's repeat_kv.
        q = g.op("Transpose", [g.op("Reshape", [q, q_shape], f"l{i}_q5")], f"l{i}_qt",
                 perm=[0, 2, 3, 1, 4])                                           # [B,KV,R,S,D]
        k = g.op("Transpose", [g.op("Reshape", [k, kv_shape], f"l{i}_k4")], f"l{i}_kt",
                 perm=[0, 2, 1, 3])                                              # [B,KV,S,D]
        v = g.op("Transpose", [g.op("Reshape", [v, kv_shape], f"l{i}_v4")], f"l{i}_vt",
                 perm=[0, 2, 1, 3])
        q = apply_rope(g, q, cos_q, sin_q, half, f"l{i}_q")
        k = apply_rope(g, k, cos_k, sin_k, half, f"l{i}_k")
        q = g.op("Mul", [q, scale], f"l{i}_qscaled")
        q = g.op("Reshape", [q, rows_shape], f"l{i}_qrows")                     # [B,KV,R*S,D]

        if kv_cache == "concat":
            k_all = g.op("Concat", [f"past_key_values.{i}.key", k],
                         outputs=[f"present.{i}.key"], axis=2)
            v_all = g.op("Concat", [f"past_key_values.{i}.value", v],
                         outputs=[f"present.{i}.value"], axis=2)
            kt = g.op("Transpose", [k_all], f"l{i}_kt_all", perm=[0, 1, 3, 2])  # [B,KV,D,T]
            scores = g.op("Add", [g.op("MatMul", [q, kt], f"l{i}_qk"), mask4], f"l{i}_scores")
            probs = g.op("Softmax", [scores], f"l{i}_probs", axis=-1)
            attn = g.op("MatMul", [probs, v_all], f"l{i}_attn")                  # [B,KV,R*S,D]
        else:
            # Static cache: past_key_values.* are the caller's fixed buffers of
            # `capacity` slots, read in place; nothing concatenates them.  The
            # scores over the buffer and over the new tokens are computed
            # separately and joined (a small [.., R*S, capacity + S] tensor),
            # and the new tokens' keys/values are returned alone.
            g.op("Identity", [k], outputs=[f"present.{i}.key"])
            g.op("Identity", [v], outputs=[f"present.{i}.value"])
            pkt = g.op("Transpose", [f"past_key_values.{i}.key"], f"l{i}_pkt", perm=[0, 1, 3, 2])
            nkt = g.op("Transpose", [k], f"l{i}_nkt", perm=[0, 1, 3, 2])
            scores = g.op("Concat", [g.op("MatMul", [q, pkt], f"l{i}_qk_past"),
                                     g.op("MatMul", [q, nkt], f"l{i}_qk_new")],
                          f"l{i}_qk", axis=-1)
            scores = g.op("Add", [scores, mask4], f"l{i}_scores")
            probs = g.op("Softmax", [scores], f"l{i}_probs", axis=-1)
            cap = g.op("Gather", [g.op("Shape", [f"past_key_values.{i}.key"]),
                                  g.const(2, i64)], f"l{i}_cap", axis=0)
            flat = g.const([-1], i64)
            split = g.op("Concat", [g.op("Reshape", [cap, flat]), g.op("Reshape", [seq, flat])],
                         f"l{i}_psplit", axis=0)
            p_past, p_new = g.op("Split", [probs, split], f"l{i}_probs_split", n_out=2,
                                 axis=-1)
            attn = g.op("Add", [g.op("MatMul", [p_past, f"past_key_values.{i}.value"],
                                     f"l{i}_attn_past"),
                                g.op("MatMul", [p_new, v], f"l{i}_attn_new")],
                        f"l{i}_attn")                                            # [B,KV,R*S,D]
        attn = g.op("Reshape", [attn, heads5_shape], f"l{i}_attn5")              # [B,KV,R,S,D]
        attn = g.op("Reshape", [g.op("Transpose", [attn], f"l{i}_attn_t", perm=[0, 3, 1, 2, 4]),
                                attn_shape], f"l{i}_attn_flat")                  # [B,S,H*D]
        o = lin(attn, ["o"], "self_attn.o_proj", f"l{i}_o")
        x = g.op("Add", [x, o], f"l{i}_resid1")

        h = rms_norm(g, x, g.weight(p + "post_attention_layernorm.weight", w["ffn_norm"]), eps,
                     two, f"l{i}_ln2")
        gu = lin(h, ["gate", "up"], "mlp.gate_up_proj", f"l{i}_gu")
        gate, up = g.op("Split", [gu, gu_split], f"l{i}_gu_split", n_out=2, axis=-1)
        act = g.op("Mul", [g.op("Mul", [gate, g.op("Sigmoid", [gate], f"l{i}_sig")], f"l{i}_silu"),
                           up], f"l{i}_act")
        down = lin(act, ["down"], "mlp.down_proj", f"l{i}_down")
        x = g.op("Add", [x, down], f"l{i}_resid2")
        log(f"layer {i + 1}/{hp.n_layers} converted ({time.time() - t0:.1f}s)")

    x = rms_norm(g, x, g.weight("model.norm.weight", m.tensor("output_norm.weight")), eps, two,
                 "final_ln")
    if head_q is not None:
        # LM head as MatMulNBits (4 or 8 bits, as the layers' linears).
        linear(g, x, [head_q], "lm_head", "logits_q", accuracy_level, None, embed_q,
               embed_scales)
        g.nodes[-1].output[0] = "logits"
    elif hp.tied:
        # The tied embedding is stored once.  Gemm(transB=1) reads it as the
        # [hidden, vocab] LM head without a transposed copy in the file; Gemm
        # wants 2-D input, hence the reshapes around it.
        flat = g.op("Reshape", [x, g.const([-1, hp.hidden], i64)], "final_flat")
        logits2d = g.op("Gemm", [flat, embed], "logits_2d", transB=1)
        out_shape = g.op("Concat", [g.op("Slice", [g.op("Shape", ["input_ids"]),
                                                   g.const([0], i64), g.const([2], i64)]),
                                    g.const([hp.vocab], i64)], "logits_shape", axis=0)
        g.op("Reshape", [logits2d, out_shape], outputs=["logits"])
    else:
        head = m.tensor("output.weight")
        g.op("MatMul", [x, g.weight("lm_head.weight_t", np.ascontiguousarray(head.T))],
             outputs=["logits"])
    g.close()

    def vi(name, elem, dims):
        return helper.make_tensor_value_info(name, elem, dims)

    inputs = [vi("input_ids", TensorProto.INT64, ["batch", "seq"]),
              vi("attention_mask", TensorProto.INT64, ["batch", "total_seq"]),
              vi("position_ids", TensorProto.INT64, ["batch", "seq"])]
    outputs = [vi("logits", TensorProto.FLOAT, ["batch", "seq", hp.vocab])]
    for i in range(hp.n_layers):
        for kind in ("key", "value"):
            if kv_cache == "concat":
                inputs.append(vi(f"past_key_values.{i}.{kind}", TensorProto.FLOAT,
                                 ["batch", KV, "past_seq", D]))
                outputs.append(vi(f"present.{i}.{kind}", TensorProto.FLOAT,
                                  ["batch", KV, "total_seq", D]))
            else:
                inputs.append(vi(f"past_key_values.{i}.{kind}", TensorProto.FLOAT,
                                 ["batch", KV, "capacity", D]))
                outputs.append(vi(f"present.{i}.{kind}", TensorProto.FLOAT,
                                  ["batch", KV, "seq", D]))
    graph = helper.make_graph(g.nodes, "tenbits_decoder", inputs, outputs, g.initializers)
    opsets = [helper.make_opsetid("", OPSET)]
    if any(n.domain == MS_DOMAIN for n in g.nodes):
        opsets.append(helper.make_opsetid(MS_DOMAIN, 1))
    model = helper.make_model(graph, opset_imports=opsets,
                              producer_name="tenbits-convert_gguf",
                              producer_version=str(CONVERTER_VERSION))
    # ir_version 8 is what onnx 1.12+ / every onnxruntime >= 1.14 reads for opset 17.
    model.ir_version = 8
    return model


# --------------------------------------------------------------------------
# Tokenizer
# --------------------------------------------------------------------------

# Pre-tokenizers of the Hugging Face originals, keyed by tokenizer.ggml.pre.
_QWEN2_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
                r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
_LLAMA3_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
                 r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")


def _byte_level(use_regex: bool) -> dict:
    return {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
            "use_regex": use_regex}


def _split_then_bytes(regex: str) -> dict:
    return {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": regex}, "behavior": "Isolated", "invert": False},
        _byte_level(False)]}


def pretokenizer_for(pre: str) -> tuple[dict | None, dict]:
    """(normalizer, pre_tokenizer) for a `tokenizer.ggml.pre` value."""
    if pre in ("smollm", "starcoder", "refact"):
        # StarCoder-family tokenizers: each digit on its own, then GPT-2 regex.
        return None, {"type": "Sequence", "pretokenizers": [
            {"type": "Digits", "individual_digits": True}, _byte_level(True)]}
    if pre in ("default", "gpt2"):
        return None, _byte_level(True)
    if pre == "qwen2":
        return {"type": "NFC"}, _split_then_bytes(_QWEN2_REGEX)
    if pre in ("llama-bpe", "llama3"):
        return None, _split_then_bytes(_LLAMA3_REGEX)
    raise ConversionError(
        f"unsupported pre-tokenizer tokenizer.ggml.pre={pre!r}; known: smollm, starcoder, "
        "refact, default, gpt2, qwen2, llama-bpe")


def build_tokenizer(m: GGUFModel) -> tuple[dict, dict]:
    """Returns (tokenizer.json content, special-token info for config.json)."""
    model_type = m.get("tokenizer.ggml.model")
    if model_type != "gpt2":
        raise ConversionError(
            f"unsupported tokenizer model tokenizer.ggml.model={model_type!r}; only byte-level "
            "BPE ('gpt2') is supported")
    tokens = list(m.get("tokenizer.ggml.tokens"))
    merges = list(m.get("tokenizer.ggml.merges"))
    types = [int(t) for t in m.get("tokenizer.ggml.token_type", [1] * len(tokens))]
    pre = m.get("tokenizer.ggml.pre", "default")
    normalizer, pre_tokenizer = pretokenizer_for(pre)

    vocab: dict[str, int] = {}
    for i, tok in enumerate(tokens):
        if tok in vocab:
            raise ConversionError(f"duplicate token {tok!r} at ids {vocab[tok]} and {i}")
        vocab[tok] = i

    added = []
    for i, (tok, ty) in enumerate(zip(tokens, types)):
        # GGUF token types: 1 normal, 2 unknown, 3 control, 4 user-defined,
        # 5 unused, 6 byte.  Control tokens are special; user-defined ones are
        # matched verbatim but are not special.
        if ty in (3, 4):
            added.append({"id": i, "content": tok, "single_word": False, "lstrip": False,
                          "rstrip": False, "normalized": False, "special": ty == 3})

    def opt_id(key):
        v = m.get(key, None)
        return None if v is None else int(v)

    bos, eos = opt_id("tokenizer.ggml.bos_token_id"), opt_id("tokenizer.ggml.eos_token_id")
    add_bos = bool(m.get("tokenizer.ggml.add_bos_token", False))
    add_eos = bool(m.get("tokenizer.ggml.add_eos_token", False))

    if add_bos or add_eos:
        single = ([{"SpecialToken": {"id": tokens[bos], "type_id": 0}}] if add_bos else []) + \
            [{"Sequence": {"id": "A", "type_id": 0}}] + \
            ([{"SpecialToken": {"id": tokens[eos], "type_id": 0}}] if add_eos else [])
        specials = {}
        for flag, tid in ((add_bos, bos), (add_eos, eos)):
            if flag:
                specials[tokens[tid]] = {"id": tokens[tid], "ids": [tid], "tokens": [tokens[tid]]}
        post_processor = {"type": "TemplateProcessing", "single": single,
                          "pair": single + [{"Sequence": {"id": "B", "type_id": 1}}],
                          "special_tokens": specials}
    else:
        post_processor = {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False,
                          "use_regex": True}

    tok_json = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": normalizer,
        "pre_tokenizer": pre_tokenizer,
        "post_processor": post_processor,
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True,
                    "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None,
                  "continuing_subword_prefix": None, "end_of_word_suffix": None,
                  "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                  "vocab": vocab, "merges": merges},
    }
    info = {"bos_token_id": bos, "eos_token_id": eos,
            "pad_token_id": opt_id("tokenizer.ggml.padding_token_id"),
            "add_bos_token": add_bos, "add_eos_token": add_eos, "pre_tokenizer": pre}
    return tok_json, info


# --------------------------------------------------------------------------
# Conversion driver
# --------------------------------------------------------------------------

def convert(gguf_path: str, out_dir: str, external_data: str = "auto",
            weights: str = "fp32", accuracy_level: int = 4, kv_cache: str = "concat") -> None:
    t_start = time.time()
    log(f"reading {gguf_path}")
    m = GGUFModel(gguf_path)
    hp = HParams.from_gguf(m)
    log(f"architecture {hp.arch}: {hp.n_layers} layers, hidden {hp.hidden}, heads {hp.n_heads}/"
        f"{hp.n_kv_heads} (head dim {hp.head_dim}), ffn {hp.ffn}, vocab {hp.vocab}, "
        f"tensor types {m.tensor_types()}")
    tok_json, tok_info = build_tokenizer(m)  # fail early on tokenizer problems

    fp32_bytes = 4 * sum(int(t.n_elements) for t in m.reader.tensors)
    use_external = external_data == "always" or (
        external_data == "auto" and fp32_bytes > EXTERNAL_DATA_THRESHOLD)

    out_dir = os.path.abspath(out_dir)
    parent = os.path.dirname(out_dir)
    os.makedirs(parent, exist_ok=True)
    # Everything is written to a scratch directory next to OUT_DIR and moved
    # into place only once complete, so a failure leaves no partial files.
    tmp = tempfile.mkdtemp(prefix=".convert_gguf-", dir=parent)
    try:
        model = build_model(m, hp, os.path.join(tmp, EXTERNAL_DATA_NAME) if use_external
                            else None, weights, accuracy_level, kv_cache)
        log("writing model.onnx" + (f" + {EXTERNAL_DATA_NAME}" if use_external else ""))
        with open(os.path.join(tmp, "model.onnx"), "wb") as f:
            f.write(model.SerializeToString(deterministic=True))
        del model

        with open(os.path.join(tmp, "tokenizer.json"), "w", encoding="utf-8") as f:
            # Insertion order (vocab by id) is already deterministic; keeping it
            # makes the file read like a Hugging Face original.
            json.dump(tok_json, f, ensure_ascii=False, indent=None, separators=(",", ":"))

        chat_template = m.get("tokenizer.chat_template", None)
        config = {
            "name": m.get("general.name", os.path.splitext(os.path.basename(gguf_path))[0]),
            "architecture": hp.arch,
            "num_layers": hp.n_layers,
            "hidden_size": hp.hidden,
            "num_heads": hp.n_heads,
            "num_kv_heads": hp.n_kv_heads,
            "head_dim": hp.head_dim,
            "intermediate_size": hp.ffn,
            "vocab_size": hp.vocab,
            "context_length": hp.context_length,
            # GGUF stores these as float32; write the shortest decimal that
            # round-trips to the same float32 (1e-05, not 9.9999997e-06).
            "rope_theta": float(str(np.float32(hp.rope_theta))),
            "rms_eps": float(str(np.float32(hp.rms_eps))),
            "tied_embeddings": hp.tied,
            "chat_template": chat_template,
            "source_gguf_sha256": sha256_file(gguf_path),
            "source_tensor_types": m.tensor_types(),
            "onnx_opset": OPSET,
            "external_data": use_external,
            "converter_version": CONVERTER_VERSION,
            "weights": weights,
            "kv_cache": kv_cache,
            **({"matmulnbits_accuracy_level": accuracy_level} if weights == "q4" else {}),
            **tok_info,
        }
        with open(os.path.join(tmp, "config.json"), "w", encoding="utf-8") as f:
            json.dump(config, f, ensure_ascii=False, indent=2, sort_keys=True)
            f.write("\n")

        os.makedirs(out_dir, exist_ok=True)
        names = ["model.onnx", "tokenizer.json", "config.json"]
        if use_external:
            names.insert(0, EXTERNAL_DATA_NAME)
        elif os.path.exists(os.path.join(out_dir, EXTERNAL_DATA_NAME)):
            os.remove(os.path.join(out_dir, EXTERNAL_DATA_NAME))  # stale from an older run
        for name in names:
            os.replace(os.path.join(tmp, name), os.path.join(out_dir, name))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log(f"wrote {out_dir} in {time.time() - t_start:.1f}s")


# --------------------------------------------------------------------------
# Tiny random model for unit tests
# --------------------------------------------------------------------------

_TINY_TEXT = (
    "the quick brown fox jumps over the lazy dog. the cat sat on the mat and the dog "
    "ate the food. there is a house in the town where they live with their mother and "
    "father. this is the thing that he said to her: it is what it is, and that is that. "
    "in the beginning there was nothing, then there were stars and then there was light. "
    "we want to compress text with language models and send it over the network."
)


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable unicode character map."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


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
    ap.add_argument("inputs", nargs="+", metavar="ARG",
                    help="GGUF_PATH OUT_DIR, or just OUT_DIR with --tiny")
    ap.add_argument("--tiny", action="store_true",
                    help="build a tiny random-weight model for tests instead")
    ap.add_argument("--seed", type=int, default=0, help="random seed for --tiny (default 0)")
    ap.add_argument("--tiny-arch", choices=SUPPORTED_ARCHS, default="llama",
                    help="architecture of the --tiny model (default llama)")
    ap.add_argument("--keep-gguf", metavar="PATH",
                    help="with --tiny: also keep the generated GGUF at PATH")
    ap.add_argument("--external-data", choices=("auto", "always", "never"), default="auto",
                    help="store weights in model.onnx.data (auto: only when over ~1.8 GB)")
    ap.add_argument("--weights", choices=("fp32", "q4"), default="fp32",
                    help="fp32: dequantize every weight (default); q4: keep quantized linears "
                         "(Q4_0/Q4_1/Q4_K as 4-bit, Q5_0/Q5_1/Q5_K/Q6_K/Q8_0 as 8-bit; with "
                         "--accuracy-level 4 also the LM head) as com.microsoft.MatMulNBits and "
                         "the embedding as GatherBlockQuantized")
    ap.add_argument("--accuracy-level", type=int, choices=(0, 1, 4), default=4,
                    help="MatMulNBits accuracy_level for --weights q4 (4: int8 activations, "
                         "the fast CPU kernels; 0/1: fp32 compute; default 4)")
    ap.add_argument("--kv-cache", choices=("concat", "static"), default="concat",
                    help="concat: Hugging Face optimum's layout, present = past + new (default); "
                         "static: past inputs are fixed caller-owned buffers of `capacity` slots "
                         "(attention_mask marks used ones) and present returns only the new "
                         "tokens, so no step copies the cache")
    args = ap.parse_args(argv)
    try:
        if args.tiny:
            if len(args.inputs) != 1:
                ap.error("--tiny takes exactly one argument, OUT_DIR")
            with tempfile.TemporaryDirectory() as d:
                path = os.path.join(d, "tiny.gguf")
                write_tiny_gguf(path, args.seed, args.tiny_arch)
                if args.keep_gguf:
                    shutil.copyfile(path, args.keep_gguf)
                convert(path, args.inputs[0], args.external_data, args.weights,
                        args.accuracy_level, args.kv_cache)
        else:
            if len(args.inputs) != 2:
                ap.error("expected GGUF_PATH OUT_DIR")
            convert(args.inputs[0], args.inputs[1], args.external_data, args.weights,
                    args.accuracy_level, args.kv_cache)
    except ConversionError as e:
        log(f"error: {e}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
