#!/usr/bin/env python3
"""Unit tests of the converter's GGML block handling (scripts/tenbits_convert; numpy, onnx, gguf only).

    python scripts/test_convert_gguf.py -v        # with the converter's venv python

`cargo test --test converter` runs this with the venv that
`python3 scripts/setup.py` creates (`python3 scripts/setup.py --print-venv`).

What is checked:

* hand-made blocks of every type the converter keeps quantized (Q4_0, Q4_1,
  Q4_K, Q5_0, Q5_1, Q5_K, Q6_K, Q8_0), with expected weights worked out by
  hand from the ggml block layouts and written here as literals; the same
  literals are checked against gguf.quants.dequantize (ggml's reference);
* the converter's decomposition (q, scales, zero points, minimums, and the
  compact float16 x integer scale factors) against gguf.quants.dequantize on
  random blocks, bit for bit;
* a small GGUF holding every type, converted with --weights q4: every
  MatMulNBits / GatherBlockQuantized in the ONNX graph is read back (the
  constant Cast/Mul/Reshape chains that onnxruntime folds at load evaluated
  here with numpy) and must give the GGUF's dequantized weights bit for bit;
  mixed fused groups are split, not dequantized to fp32.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import tempfile
import unittest

import numpy as np
import onnx
from onnx import numpy_helper

import gguf
from gguf import quants as gguf_quants

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_fixtures import tiny_bpe  # noqa: E402
from tenbits_convert.blocks import (  # noqa: E402
    BLOCK_LAYOUT, BLOCK_TYPES, QuantLinear, decompose, k_scales_mins)
from tenbits_convert.convert import convert  # noqa: E402
from tenbits_convert.gguf_io import LINEAR_TENSORS, GGUFModel  # noqa: E402
from tenbits_convert.graph import pack_nibbles  # noqa: E402

T = gguf.GGMLQuantizationType


def f16(x: float) -> bytes:
    return np.float16(x).tobytes()


def block(*pieces) -> np.ndarray:
    """Concatenates bytes / lists of byte values into one uint8 row."""
    out = bytearray()
    for p in pieces:
        out += bytes(p) if not isinstance(p, (bytes, bytearray)) else p
    return np.frombuffer(bytes(out), dtype=np.uint8)[None, :]


def at(arr: bytearray | list, **kw) -> bytearray:
    """A copy of `arr` with some byte positions set: at(zeros, _3=0x5F) sets byte 3."""
    arr = bytearray(arr)
    for k, v in kw.items():
        arr[int(k[1:])] = v
    return arr


# The 12 packed scale/min bytes of a Q4_K / Q5_K super-block holding
# sub-block scales sc = [1, 2, 3, 4, 63, 33, 16, 5] and
# mins m = [0, 1, 2, 63, 7, 40, 17, 9]:
#   bytes 0-3:  sc[j] | (sc[j+4] >> 4) << 6
#   bytes 4-7:  m[j]  | (m[j+4] >> 4) << 6
#   bytes 8-11: (sc[j+4] & 15) | (m[j+4] & 15) << 4
K_SCALES = [0xC1, 0x82, 0x43, 0x04, 0x00, 0x81, 0x42, 0x3F, 0x7F, 0x81, 0x10, 0x95]
K_SC = [1, 2, 3, 4, 63, 33, 16, 5]
K_M = [0, 1, 2, 63, 7, 40, 17, 9]


def hand_blocks() -> dict:
    """type -> (one raw block, {element index: expected weight}, bits, block size)."""
    cases = {}
    # Q8_0: d = 0.5, w = d * q with q int8.
    qs = bytearray(32)
    qs[0], qs[1], qs[2], qs[4] = 0x80, 0xFF, 0x01, 0x7F          # -128, -1, 1, 127
    cases[T.Q8_0] = (block(f16(0.5), qs), {0: -64.0, 1: -0.5, 2: 0.5, 3: 0.0, 4: 63.5}, 8, 32)
    # Q4_0: d = 2, w = d * (q - 8); byte j holds element j (low) and j + 16 (high).
    qs = at(bytearray(16), _0=0x1F, _1=0x80)
    cases[T.Q4_0] = (block(f16(2.0), qs), {0: 14.0, 16: -14.0, 1: -16.0, 17: 0.0, 2: -16.0}, 4, 32)
    # Q4_1: d = 0.25, m = -1, w = d * q + m.
    qs = at(bytearray(16), _0=0x3A)
    cases[T.Q4_1] = (block(f16(0.25), f16(-1.0), qs), {0: 1.5, 16: -0.25, 1: -1.0}, 4, 32)
    # Q5_0: d = 1, w = d * (q - 16); the 5th bit of element e is bit e of qh.
    qh = (1 | 1 << 16 | 1 << 31).to_bytes(4, "little")
    qs = at(bytearray(16), _0=0x21, _15=0xF0)
    cases[T.Q5_0] = (block(f16(1.0), qh, qs),
                     {0: 1.0, 16: 2.0, 1: -16.0, 17: -16.0, 15: -16.0, 31: 15.0}, 8, 32)
    # Q5_1: d = 0.5, m = 2, w = d * q + m.
    qh = (1 << 1).to_bytes(4, "little")
    qs = at(bytearray(16), _1=0x7F)
    cases[T.Q5_1] = (block(f16(0.5), f16(2.0), qh, qs), {1: 17.5, 17: 5.5, 0: 2.0}, 8, 32)
    # Q4_K: d = 1, dmin = 0.5; sub-block j (32 elements): w = d sc_j q - dmin m_j.
    # Sub-block 2i is the low nibbles of bytes 32i..32i+31, 2i+1 their high nibbles.
    qs = at(bytearray(128), _0=0x3A, _33=0x50, _64=0x0C, _101=0xF2)
    cases[T.Q4_K] = (block(f16(1.0), f16(0.5), K_SCALES, qs), {
        0: 10.0,            # sub-block 0, q 10: 1*10 - 0.5*0
        32: 5.5,            # sub-block 1, q 3: 2*3 - 0.5*1
        65: -1.0,           # sub-block 2, q 0: -0.5*2
        97: -11.5,          # sub-block 3, q 5: 4*5 - 0.5*63
        128: 752.5,         # sub-block 4, q 12: 63*12 - 0.5*7
        160: -20.0,         # sub-block 5, q 0: -0.5*40
        197: 23.5,          # sub-block 6, q 2: 16*2 - 0.5*17
        229: 70.5,          # sub-block 7, q 15: 5*15 - 0.5*9
        255: -4.5,          # sub-block 7, q 0
    }, 4, 32)
    # Q5_K: d = 0.5, dmin = 0.25, same scales; the 5th bit of element l of
    # sub-block j is bit j of qh[l].
    qh = at(bytearray(32), _0=0b11, _7=0x80)
    qs = at(bytearray(128), _0=0x3A, _103=0x10)
    cases[T.Q5_K] = (block(f16(0.5), f16(0.25), K_SCALES, qh, qs), {
        0: 13.0,            # sub-block 0, q 10+16: 0.5*1*26
        32: 18.75,          # sub-block 1, q 3+16: 0.5*2*19 - 0.25*1
        231: 40.25,         # sub-block 7, q 1+16: 0.5*5*17 - 0.25*9
        199: -4.25,         # sub-block 6, q 0: -0.25*17
    }, 8, 32)
    # Q6_K: ql[128] qh[64] sc[16] (int8) d; w = d sc_(e // 16) (q - 32).  In each
    # half of 128 elements, element 32k + l has its low 4 bits in
    # ql[l + 32 (k % 2)] (low nibble for k < 2, else high) and its top 2 bits
    # in bits 2k, 2k+1 of qh[l].
    sc = bytes(np.array([1, -2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, -128, 127], np.int8))
    ql = at(bytearray(128), _0=0x5F, _81=0xA3, _96=0xF0)
    qh = at(bytearray(64), _0=0xE4, _49=0x03, _32=0xC0)
    cases[T.Q6_K] = (block(ql, qh, sc, f16(0.125)), {
        0: -2.125,          # q 15, scale 1: 0.125*1*(15-32)
        32: -6.0,           # q 16 (qh bits 2-3 = 1), scale 3
        64: 3.125,          # q 5 + 32, scale 5
        96: 14.0,           # q 0 + 48, scale 7
        16: 0.125 * -2 * -32,   # q 0, scale -2: 8.0
        145: 23.75,         # q 3 + 48, scale 10
        209: -38.5,         # q 10, scale 14
        224: -496.0,        # q 63, scale -128
        240: -508.0,        # q 0, scale 127
    }, 8, 16)
    return cases


class HandMadeBlocks(unittest.TestCase):
    def test_hand_computed_values(self):
        for qtype, (raw, expected, bits, bs) in hand_blocks().items():
            with self.subTest(qtype=qtype.name):
                ql = decompose(raw, qtype)
                w = ql.weight()[0]
                ref = gguf_quants.dequantize(raw[0], qtype).reshape(-1)
                self.assertEqual(w.shape, ref.shape)
                for e, v in expected.items():
                    self.assertEqual(float(ref[e]), v, f"ggml's element {e}")
                    self.assertEqual(float(w[e]), v, f"converter's element {e}")
                self.assertTrue(np.array_equal(w.view(np.uint32), ref.view(np.uint32)))
                self.assertEqual((ql.bits, ql.block), (bits, bs))
                self.assertEqual(ql.q.shape[-1], bs)
                if bits == 8:
                    # every 8-bit type is shifted to MatMulNBits' default zero point
                    self.assertTrue((ql.zp == 128).all())

    def test_k_scale_unpacking(self):
        sc, m = k_scales_mins(np.array(K_SCALES, np.uint8))
        self.assertEqual(sc.tolist(), K_SC)
        self.assertEqual(m.tolist(), K_M)
        # and ggml's own unpacking agrees
        gsc, gm = gguf_quants.Q4_K.get_scale_min(np.array(K_SCALES, np.uint8)[None, :])
        self.assertEqual(gsc[0].tolist(), K_SC)
        self.assertEqual(gm[0].tolist(), K_M)

    def test_stored_values(self):
        cases = hand_blocks()
        # Q6_K stores q + 96 (zero point 128): element 0 has q 15, element 224 q 63
        q = decompose(cases[T.Q6_K][0], T.Q6_K).q.reshape(-1)
        self.assertEqual((int(q[0]), int(q[224]), int(q[240])), (111, 159, 96))
        # Q5_0 stores q + 112: element 31 has q 31, element 1 q 0
        q = decompose(cases[T.Q5_0][0], T.Q5_0).q.reshape(-1)
        self.assertEqual((int(q[31]), int(q[1])), (143, 112))
        # Q4_K keeps q (0..15), centred: zero point 8 and mins 8 d sc - dmin m
        ql = decompose(cases[T.Q4_K][0], T.Q4_K)
        self.assertEqual(int(ql.q[0, 7, 5]), 15)
        self.assertEqual(ql.d[0].tolist(), [float(s) for s in K_SC])
        self.assertEqual(ql.mins[0].tolist(), [8.0 * s - 0.5 * m for s, m in zip(K_SC, K_M)])
        self.assertTrue((ql.zp == 8).all())
        # Q5_K stores q + 112 (q - 16 + 128): element 0 has q 26
        self.assertEqual(int(decompose(cases[T.Q5_K][0], T.Q5_K).q.reshape(-1)[0]), 138)

    def test_centring_falls_back_when_inexact(self):
        # d = 1024, dmin = 2^-10: 8 d sc - dmin m needs more than float32's 24 bits
        raw, expected, _, _ = hand_blocks()[T.Q4_K]
        raw = raw.copy()
        raw[0, 0:2] = np.frombuffer(f16(1024.0), np.uint8)
        raw[0, 2:4] = np.frombuffer(f16(2.0 ** -10), np.uint8)
        ql = decompose(raw, T.Q4_K)
        self.assertEqual(ql.centre, 0)
        self.assertFalse(ql.zp.any())
        ref = gguf_quants.dequantize(raw[0], T.Q4_K).reshape(-1)
        self.assertEqual(float(ref[0]), 10240.0)      # 1024 * 1 * 10 - 0
        # 1024 * 4 * 5 - 63 / 1024 = 20479.9384765625 lies half-way between two
        # float32s; ggml's single rounding gives the even one
        self.assertEqual(float(ref[97]), 20479.9375)
        self.assertEqual(float(ql.weight()[0, 97]), 20479.9375)
        self.assertTrue(np.array_equal(ql.weight()[0].view(np.uint32), ref.view(np.uint32)))
        # and the usual case is centred
        self.assertEqual(decompose(hand_blocks()[T.Q4_K][0], T.Q4_K).centre, 8)

    def test_pack_nibbles_puts_the_first_value_low(self):
        packed = pack_nibbles(np.array([[1, 2, 15, 0, 7]], np.uint8))
        self.assertEqual(packed.tolist(), [[0x21, 0x0F, 0x07]])


def random_blocks(qtype, rows: int, blocks_per_row: int, rng) -> np.ndarray:
    """Random raw blocks with finite float16 fields (uint8 [rows, bytes])."""
    nbytes, _ = BLOCK_LAYOUT[qtype]
    raw = rng.integers(0, 256, (rows, blocks_per_row, nbytes), dtype=np.uint8)
    f16_at = {T.Q4_0: [0], T.Q4_1: [0, 2], T.Q5_0: [0], T.Q5_1: [0, 2], T.Q8_0: [0],
              T.Q4_K: [0, 2], T.Q5_K: [0, 2], T.Q6_K: [208]}[qtype]
    for off in f16_at:
        vals = (rng.standard_normal((rows, blocks_per_row)) * 0.02).astype(np.float16)
        raw[..., off:off + 2] = vals[..., None].view(np.uint8)
    return raw.reshape(rows, -1)


class RandomBlocks(unittest.TestCase):
    def test_decomposition_matches_gguf_dequantize_bit_for_bit(self):
        rng = np.random.default_rng(1234)
        for qtype in BLOCK_TYPES:
            with self.subTest(qtype=qtype.name):
                _, per = BLOCK_LAYOUT[qtype]
                raw = random_blocks(qtype, 16, 1024 // per, rng)
                ql = decompose(raw, qtype)
                ref = gguf_quants.dequantize(raw, qtype).reshape(16, 1024).astype(np.float32)
                w = ql.weight()
                # The same floats (NaN-free; a centred K-quant may give +0.0 where
                # ggml gives -0.0, which no product or sum can tell apart).
                self.assertTrue(np.array_equal(w, ref), f"max diff {np.abs(w - ref).max()}")
                if ql.centre == 0:
                    self.assertTrue(np.array_equal(w.view(np.uint32), ref.view(np.uint32)))
                self.assertEqual(ql.q.dtype, np.uint8)
                self.assertLess(int(ql.q.max()), 1 << ql.bits)
                # the compact factors multiply out to exactly the scales / minimums
                for parts, full, centre in ((ql.d_parts, ql.d, 0),
                                            (ql.min_parts, ql.mins, ql.centre)):
                    if parts is None:
                        continue
                    a, b = parts
                    prod = a.astype(np.float32) if b is None else \
                        a.astype(np.float32) * b.astype(np.float32)
                    prod = prod.reshape(full.shape) + np.float32(centre) * ql.d
                    self.assertTrue(np.array_equal(prod, full))
                self.assertIn(ql.centre, (0, 8 if qtype == T.Q4_K else 16))

    def test_rows_and_concat_keep_the_weight(self):
        rng = np.random.default_rng(5)
        a = decompose(random_blocks(T.Q4_K, 8, 2, rng), T.Q4_K)
        b = decompose(random_blocks(T.Q4_K, 4, 2, rng), T.Q4_K)
        cat = QuantLinear.concat([a, b])
        self.assertTrue(np.array_equal(cat.weight(), np.concatenate([a.weight(), b.weight()])))
        self.assertIsNotNone(cat.d_parts)
        self.assertIsNotNone(cat.min_parts)
        flipped = a.rows(lambda x: x[::-1])
        self.assertTrue(np.array_equal(flipped.weight(), a.weight()[::-1]))
        # Q5_0 + Q8_0 (both 8-bit, block 32) fuse; their float16 scales stay compact
        c = decompose(random_blocks(T.Q5_0, 4, 8, rng), T.Q5_0)
        d = decompose(random_blocks(T.Q8_0, 4, 8, rng), T.Q8_0)
        cat = QuantLinear.concat([c, d])
        self.assertTrue(np.array_equal(cat.weight(), np.concatenate([c.weight(), d.weight()])))
        self.assertIsNotNone(cat.d_parts)


# --------------------------------------------------------------------------
# A converted model holding every type
# --------------------------------------------------------------------------

HIDDEN, FFN, HEADS, KV_HEADS = 256, 512, 4, 2
LAYER_TYPES = [
    # layer 0: a mixed q/k/v group (4-bit + 6-bit), 5-bit o, 5-bit gate + up
    # (different kinds: Q5_K has minimums, Q5_1 too, both 8-bit block 32)
    {"attn_q": T.Q4_K, "attn_k": T.Q4_K, "attn_v": T.Q6_K, "attn_output": T.Q5_0,
     "ffn_gate": T.Q5_K, "ffn_up": T.Q5_1, "ffn_down": T.Q8_0},
    # layer 1: Q4_0 + Q4_1 + Q8_0, a fused 4-bit gate/up with minimums
    {"attn_q": T.Q4_0, "attn_k": T.Q4_1, "attn_v": T.Q8_0, "attn_output": T.Q6_K,
     "ffn_gate": T.Q4_K, "ffn_up": T.Q4_K, "ffn_down": T.Q6_K},
]


def write_all_types_gguf(path: str, rng) -> None:
    tokens, types, merges = tiny_bpe()
    w = gguf.GGUFWriter(path, "qwen2")
    w.add_name("all-types")
    w.add_block_count(len(LAYER_TYPES))
    w.add_context_length(64)
    w.add_embedding_length(HIDDEN)
    w.add_feed_forward_length(FFN)
    w.add_head_count(HEADS)
    w.add_head_count_kv(KV_HEADS)
    w.add_rope_freq_base(10000.0)
    w.add_layer_norm_rms_eps(1e-6)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("qwen2")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    w.add_eos_token_id(2)
    head_dim = HIDDEN // HEADS
    shapes = {"attn_q": (HEADS * head_dim, HIDDEN), "attn_k": (KV_HEADS * head_dim, HIDDEN),
              "attn_v": (KV_HEADS * head_dim, HIDDEN), "attn_output": (HIDDEN, HEADS * head_dim),
              "ffn_gate": (FFN, HIDDEN), "ffn_up": (FFN, HIDDEN), "ffn_down": (HIDDEN, FFN)}

    def add_q(name, rows, cols, qtype):
        _, per = BLOCK_LAYOUT[qtype]
        w.add_tensor(name, random_blocks(qtype, rows, cols // per, rng), raw_dtype=qtype)

    add_q("token_embd.weight", len(tokens), HIDDEN, T.Q4_K)
    for i, layer in enumerate(LAYER_TYPES):
        p = f"blk.{i}."
        w.add_tensor(p + "attn_norm.weight", np.ones(HIDDEN, np.float32))
        w.add_tensor(p + "ffn_norm.weight", np.ones(HIDDEN, np.float32))
        for t in ("attn_q", "attn_k", "attn_v"):
            w.add_tensor(p + t + ".bias", rng.standard_normal(shapes[t][0]).astype(np.float32))
        for t, qtype in layer.items():
            add_q(p + t + ".weight", *shapes[t], qtype)
    w.add_tensor("output_norm.weight", np.ones(HIDDEN, np.float32))
    add_q("output.weight", len(tokens), HIDDEN, T.Q6_K)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


class ConstFolder:
    """Evaluates the constant parts of a graph (what onnxruntime folds at load)."""

    def __init__(self, model: onnx.ModelProto):
        self.inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
        self.producer = {o: n for n in model.graph.node for o in n.output}
        self.consumers: dict[str, list] = {}
        for n in model.graph.node:
            for i in n.input:
                self.consumers.setdefault(i, []).append(n)

    def value(self, name: str) -> np.ndarray:
        if name in self.inits:
            return self.inits[name]
        n = self.producer[name]
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}
        ins = [self.value(i) for i in n.input]
        if n.op_type == "Cast":
            return ins[0].astype(onnx.helper.tensor_dtype_to_np_dtype(attrs["to"]))
        if n.op_type == "Mul":
            return ins[0] * ins[1]
        if n.op_type == "Add":
            return ins[0] + ins[1]
        if n.op_type == "Reshape":
            return ins[0].reshape(ins[1])
        if n.op_type == "Transpose":
            return ins[0].transpose(attrs["perm"])
        if n.op_type == "ConstantOfShape":
            return np.full(ins[0], numpy_helper.to_array(attrs["value"])[0])
        raise AssertionError(f"{n.op_type} is not a constant expression")


def unpack_q(b: np.ndarray, bits: int, n: int, k: int) -> np.ndarray:
    """MatMulNBits' B / GatherBlockQuantized's data -> one value per byte, [n, k]."""
    b = b.reshape(n, -1)
    if bits == 8:
        return b[:, :k]
    return np.stack([b & 0x0F, b >> 4], axis=-1).reshape(n, -1)[:, :k]


def unpack_zp(z: np.ndarray | None, bits: int, n: int, nb: int) -> np.ndarray:
    if z is None:
        return np.full((n, nb), 8 if bits == 4 else 128, np.uint8)
    return unpack_q(z, bits, n, nb)


class ConvertedGraph(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        rng = np.random.default_rng(99)
        cls.tmp = tempfile.TemporaryDirectory()
        path = os.path.join(cls.tmp.name, "all.gguf")
        write_all_types_gguf(path, rng)
        cls.gguf = GGUFModel(path)
        out = os.path.join(cls.tmp.name, "out")
        with contextlib.redirect_stderr(io.StringIO()):  # the converter's progress lines
            convert(path, out, weights="q4", kv_cache="static")
            convert(path, os.path.join(cls.tmp.name, "again"), weights="q4",
                    kv_cache="static")
        cls.model = onnx.load(os.path.join(out, "model.onnx"))
        cls.folder = ConstFolder(cls.model)
        cls.out = out

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def expected(self, weight_name: str) -> np.ndarray:
        """The GGUF weights (rows) a MatMulNBits' qweight initializer stands for."""
        if weight_name == "lm_head":
            return self.gguf.tensor("output.weight")
        layer = int(weight_name.split(".")[2])
        module = weight_name.split(".")[4]
        keys = {"qkv_proj": ["q", "k", "v"], "o_proj": ["o"], "gate_up_proj": ["gate", "up"],
                "down_proj": ["down"]}[module]
        rest = weight_name.split(".")[5:]
        if rest:
            keys = rest[0].split("_")
        return np.concatenate([self.gguf.tensor(f"blk.{layer}.{LINEAR_TENSORS[k]}.weight")
                               for k in keys])

    def test_every_linear_is_bit_exact_matmulnbits(self):
        f = self.folder
        seen = set()
        for n in self.model.graph.node:
            if n.op_type != "MatMulNBits":
                continue
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}
            N, K, bits, bs = attrs["N"], attrs["K"], attrs["bits"], attrs["block_size"]
            self.assertEqual(attrs["accuracy_level"], 4)
            name = n.input[1][:-len(".qweight")]
            q = unpack_q(f.value(n.input[1]), bits, N, K).astype(np.float32)
            scales = f.value(n.input[2]).reshape(N, K // bs)
            zp = unpack_zp(f.value(n.input[3]) if len(n.input) > 3 else None, bits, N, K // bs)
            w = (scales[..., None] * (q.reshape(N, -1, bs) - zp[..., None].astype(np.float32)))
            # a minimum term: Add(y, MatMul(block sums of x, mins_t))
            adds = [c for c in f.consumers.get(n.output[0], []) if c.op_type == "Add"]
            if adds and adds[0].input[1] in f.producer and \
                    f.producer[adds[0].input[1]].op_type == "MatMul":
                mins_t = f.value(f.producer[adds[0].input[1]].input[1])       # [K/bs, N]
                w = w + mins_t.T[..., None]
            w = w.reshape(N, K)
            ref = self.expected(name)
            with self.subTest(weight=name):
                self.assertEqual(ref.shape, (N, K))
                # Equal values (a fused Q4_0 part's "+ 0" minimum may turn ggml's
                # -0.0 into +0.0, which no product or sum can tell apart).
                self.assertTrue(np.array_equal(w, ref), f"max diff {np.abs(w - ref).max()}")
            seen.add(name)
        self.assertEqual(seen, {
            "model.layers.0.self_attn.qkv_proj.q_k", "model.layers.0.self_attn.qkv_proj.v",
            "model.layers.0.self_attn.o_proj", "model.layers.0.mlp.gate_up_proj",
            "model.layers.0.mlp.down_proj",
            "model.layers.1.self_attn.qkv_proj.q_k", "model.layers.1.self_attn.qkv_proj.v",
            "model.layers.1.self_attn.o_proj", "model.layers.1.mlp.gate_up_proj",
            "model.layers.1.mlp.down_proj", "lm_head"})

    def test_block_sizes_and_no_fp32_weights(self):
        kinds = {}
        for n in self.model.graph.node:
            if n.op_type == "MatMulNBits":
                attrs = {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}
                kinds[n.input[1][:-len(".qweight")]] = (attrs["bits"], attrs["block_size"])
        self.assertEqual(kinds["model.layers.0.self_attn.qkv_proj.q_k"], (4, 32))
        self.assertEqual(kinds["model.layers.0.self_attn.qkv_proj.v"], (8, 16))
        self.assertEqual(kinds["model.layers.0.mlp.gate_up_proj"], (8, 32))
        self.assertEqual(kinds["model.layers.1.mlp.gate_up_proj"], (4, 32))
        self.assertEqual(kinds["lm_head"], (8, 16))
        # the only float MatMul weights are the [K/32, N] minimum terms (stored as
        # float32 when a fused group mixes minimum forms, as Q5_K + Q5_1 here)
        for n in self.model.graph.node:
            if n.op_type in ("MatMul", "Gemm"):
                for i in n.input[1:]:
                    if i in self.folder.inits and not i.endswith(".mins_t"):
                        self.fail(f"{n.name} reads an fp32 weight {i}")

    def test_embedding_is_gathered_from_4bit_blocks_bit_exactly(self):
        f = self.folder
        (gbq,) = [n for n in self.model.graph.node if n.op_type == "GatherBlockQuantized"]
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in gbq.attribute}
        self.assertEqual((attrs["bits"], attrs["block_size"]), (4, 32))
        ref = self.gguf.tensor("token_embd.weight")
        vocab, hidden = ref.shape
        nb = hidden // 32
        q = unpack_q(f.value(gbq.input[0]), 4, vocab, hidden).astype(np.float32)
        scales = f.value(gbq.input[2]).reshape(vocab, nb)
        zp = unpack_zp(f.value(gbq.input[3]), 4, vocab, nb).astype(np.float32)
        rows = scales[..., None] * (q.reshape(vocab, nb, 32) - zp[..., None])
        (mins_gather,) = [n for n in self.model.graph.node
                          if n.op_type == "Gather" and n.input[1] == "input_ids"]
        rows = rows + f.value(mins_gather.input[0])[..., None]
        rows = rows.reshape(vocab, hidden)
        self.assertTrue(np.array_equal(rows.view(np.uint32), ref.view(np.uint32)))

    def test_conversion_is_deterministic(self):
        for name in ("model.onnx", "tokenizer.json", "config.json"):
            with open(os.path.join(self.out, name), "rb") as a, \
                    open(os.path.join(self.tmp.name, "again", name), "rb") as b:
                self.assertEqual(a.read(), b.read(), name)


if __name__ == "__main__":
    unittest.main()
