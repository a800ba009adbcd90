"""GGML quantized blocks -> MatMulNBits blocks (see decompose() for each type's layout)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

import gguf

from . import ConversionError

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
