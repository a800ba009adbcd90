"""The conversion driver (``convert``) and its command line."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time

import numpy as np

from . import CONVERTER_VERSION, ConversionError, log
from .gguf_io import GGUFModel, HParams, sha256_file
from .graph import OPSET, build_model
from .rows import ROWS_GRAPH_NAME, derive as derive_rows
from .tokenizer import build_tokenizer

# protobuf cannot serialize messages over 2 GiB; stay well below it.
EXTERNAL_DATA_THRESHOLD = 1800 * 1024 * 1024
EXTERNAL_DATA_NAME = "model.onnx.data"
LORA_GRAPH_NAME = "model-lora.onnx"


def convert(gguf_path: str, out_dir: str, external_data: str = "auto",
            weights: str = "fp32", accuracy_level: int = 4, kv_cache: str = "concat",
            lora_rank: int = 0) -> None:
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

    if lora_rank and use_external:
        raise ConversionError("--lora-rank needs a model small enough for one file "
                              "(no external data); it would duplicate the weights")
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
        if lora_rank:
            # The same graph with LoRA inputs (zero by default) beside the
            # base one, which stays byte for byte what it was: runs without
            # an adapter keep the base graph's speed.
            log(f"writing model-lora.onnx (rank {lora_rank})")
            model = build_model(m, hp, None, weights, accuracy_level, kv_cache, lora_rank)
            with open(os.path.join(tmp, LORA_GRAPH_NAME), "wb") as f:
                f.write(model.SerializeToString(deterministic=True))
            del model

        # Logits only at the rows asked for, for generation and scoring.
        derive_rows(tmp, quiet=True)

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
            **({"lora_rank": lora_rank, "lora_graph": LORA_GRAPH_NAME} if lora_rank else {}),
            **tok_info,
        }
        with open(os.path.join(tmp, "config.json"), "w", encoding="utf-8") as f:
            json.dump(config, f, ensure_ascii=False, indent=2, sort_keys=True)
            f.write("\n")

        os.makedirs(out_dir, exist_ok=True)
        names = ["model.onnx", ROWS_GRAPH_NAME, "tokenizer.json", "config.json"]
        if lora_rank:
            names.insert(1, LORA_GRAPH_NAME)
        elif os.path.exists(os.path.join(out_dir, LORA_GRAPH_NAME)):
            os.remove(os.path.join(out_dir, LORA_GRAPH_NAME))
        if use_external:
            names.insert(0, EXTERNAL_DATA_NAME)
        elif os.path.exists(os.path.join(out_dir, EXTERNAL_DATA_NAME)):
            os.remove(os.path.join(out_dir, EXTERNAL_DATA_NAME))  # stale from an older run
        for name in names:
            os.replace(os.path.join(tmp, name), os.path.join(out_dir, name))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log(f"wrote {out_dir} in {time.time() - t_start:.1f}s")


def add_conversion_options(ap: argparse.ArgumentParser) -> None:
    """The options of convert(), for this command line and scripts/make_fixtures.py."""
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
    ap.add_argument("--lora-rank", type=int, default=0, metavar="R",
                    help="also write model-lora.onnx: the same graph with a rank-R LoRA input "
                         "pair (float16, zero by default) on every attention and MLP projection, "
                         "for ONNX Runtime adapters (.onnx_adapter); default 0: none")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description="Convert a GGUF language model into the ONNX + tokenizer layout tenbits "
                    "loads (see the tenbits_convert package's docstring).")
    ap.add_argument("gguf_path", metavar="GGUF_PATH")
    ap.add_argument("out_dir", metavar="OUT_DIR")
    add_conversion_options(ap)
    args = ap.parse_args(argv)
    try:
        convert(args.gguf_path, args.out_dir, args.external_data, args.weights,
                args.accuracy_level, args.kv_cache, args.lora_rank)
    except ConversionError as e:
        log(f"error: {e}")
        return 1
    return 0
