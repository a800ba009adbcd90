"""Convert a GGUF language model into the ONNX + tokenizer layout tenbits loads.

Usage
-----
    python scripts/convert_gguf.py MODEL.gguf OUT_DIR [--external-data auto|always|never]
                                   [--weights fp32|q4] [--accuracy-level 4|0|1]
                                   [--kv-cache concat|static]
    (or, from scripts/, python -m tenbits_convert MODEL.gguf OUT_DIR ...)

Modules: ``gguf_io`` (GGUF reading, hyper-parameters, layer weights in
Hugging Face layout; shared with scripts/reference_forward.py), ``blocks``
(GGML quantized blocks -> MatMulNBits blocks), ``graph`` (the ONNX graph),
``tokenizer`` (tokenizer.json from the GGUF's metadata) and ``convert``
(the driver and its command line).  Test fixtures come from
scripts/make_fixtures.py.

It writes into OUT_DIR:

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

scripts/make_fixtures.py builds a small random-weight llama GGUF in a
temporary file with gguf's own ``GGUFWriter`` (two quantized tensor formats
included) and runs the very same conversion on it; this is how
``tests/fixtures/tiny`` and ``tests/fixtures/tiny-optimum`` are produced
(``scripts/convert_gguf.py --tiny OUT_DIR ...`` does the same):

    python scripts/make_fixtures.py tests/fixtures/tiny --weights q4 --kv-cache static
    python scripts/make_fixtures.py tests/fixtures/tiny-optimum

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
CONVERTER_VERSION (below) is read from the registry, ``[converter] version``
in crates/inference/models.toml, the one place it is defined: setup.py and the
Rust registry key every converted model's cache directory on it and on the
model's ``convert_args``, and it is written into config.json and model.onnx.
**Bump it whenever the converter's output changes** (any byte of model.onnx,
model.onnx.data, tokenizer.json or config.json, for any input), or stale
conversions stay in use.  Changes that leave the output identical (comments,
refactoring) must not bump it, so that nobody reconverts for nothing.
``model-rows.onnx`` is the exception that proves the rule: it is a pure
function of model.onnx (see rows.py), so set-up derives it for conversions
that lack it instead of converting again.
"""

from __future__ import annotations

import os
import sys
import tomllib

REGISTRY = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, os.pardir,
                        "crates", "inference", "models.toml")
with open(REGISTRY, "rb") as _f:
    # Bump it there whenever the output changes (see "Versioning" above).
    CONVERTER_VERSION = int(tomllib.load(_f)["converter"]["version"])


class ConversionError(Exception):
    """A problem with the input model that the converter cannot handle."""


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)
