"""The ONNX graph: a decoder with a key/value cache, from a GGUF's weights."""

from __future__ import annotations

import os
import time

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

import gguf

from . import CONVERTER_VERSION, log
from .blocks import BLOCK_TYPES, QuantLinear
from .gguf_io import GGUFModel, HParams, layer_weights, rope_inv_freq

OPSET = 17
MS_DOMAIN = "com.microsoft"
# Used instead of -inf for masked attention scores so that a row that is fully
# masked (e.g. a padding query) gives a finite softmax rather than NaN.
MASK_VALUE = float(np.finfo(np.float32).min)


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


def part_dims(p) -> tuple[int, int]:
    """(N, K) of one linear part: a [N, K] array or a QuantLinear."""
    if isinstance(p, QuantLinear):
        return p.d.shape[0], p.d.shape[1] * p.block
    return p.shape[0], p.shape[1]


def lora_delta(g: GraphBuilder, x: str, parts: list, keys: list[str], layer: int, rank: int,
               hint: str, lora_inputs: list) -> str:
    """concat_p(x @ A_p @ B_p) over the parts of one linear, for a LoRA adapter.

    A_p ([K, rank]) and B_p ([rank, N_p], the adapter's alpha / r folded in)
    are float16 graph inputs named `lora.{layer}.{part}.a` / `.b`, each with
    an all-zero initializer of the same name as its default, so a run without
    an adapter adds exact zeros (y + 0 = y: the base model's logits bit for
    bit) and ONNX Runtime's adapters (`.onnx_adapter`) override them per run
    without reloading the model.  Half precision keeps adapter files small;
    the products run in float32.
    """
    deltas = []
    for p, key in zip(parts, keys):
        n, k = part_dims(p)
        a_name, b_name = f"lora.{layer}.{key}.a", f"lora.{layer}.{key}.b"
        for name, shape in ((a_name, [k, rank]), (b_name, [rank, n])):
            g.initializers.append(numpy_helper.from_array(np.zeros(shape, np.float16), name))
            lora_inputs.append((name, shape))
        a = g.op("Cast", [a_name], f"{hint}_{key}_lora_a", to=TensorProto.FLOAT)
        b = g.op("Cast", [b_name], f"{hint}_{key}_lora_b", to=TensorProto.FLOAT)
        deltas.append(g.op("MatMul", [g.op("MatMul", [x, a], f"{hint}_{key}_xa"), b],
                           f"{hint}_{key}_lora"))
    if len(deltas) == 1:
        return deltas[0]
    return g.op("Concat", deltas, f"{hint}_lora", axis=-1)


def build_model(m: GGUFModel, hp: HParams, external_path: str | None,
                weights: str = "fp32", accuracy_level: int = 4,
                kv_cache: str = "concat", lora_rank: int = 0) -> onnx.ModelProto:
    """The decoder graph.  With `lora_rank` > 0 every attention and MLP
    projection also takes a LoRA adapter of that rank (see lora_delta())."""
    g = GraphBuilder(external_path)
    lora_inputs: list = []
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
            parts = [w[k_] for k_ in keys]
            y = linear(g, x_in, parts, p + wname, hint, accuracy_level, loader, labels=keys)
            if lora_rank:
                delta = lora_delta(g, x_in, parts, keys, i, lora_rank, hint, lora_inputs)
                y = g.op("Add", [y, delta], f"{hint}_plus_lora")
            return y

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
    inputs += [vi(name, TensorProto.FLOAT16, shape) for name, shape in lora_inputs]
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
