#!/usr/bin/env python3
"""Train a LoRA adapter for a converted model and export it as `.onnx_adapter`.

A developer tool, not part of the user set-up: it needs PyTorch, peft and
transformers (`pip install torch peft transformers gguf onnxruntime onnx`
into a virtual environment; PyTorch from PyPI is about 3 GB and runs on the
CPU here).

    python scripts/train_adapter.py --name python-code \\
        --gguf SmolLM2-135M-Instruct.Q4_1.gguf --model-dir ~/.cache/tenbits/models/smollm2-135m-... \\
        --train 'DIR/**/*.py' --heldout 'OTHER/*.py' --out adapters/

What it does, in order:
1. loads the GGUF with transformers (which dequantizes every tensor to the
   values the ONNX graph computes with: d (q - zp) + m), so the adapter is
   trained on the weights that are run;
2. tokenizes with the converted model's own `tokenizer.json`, so training
   and coding see the same tokens;
3. checks that the PyTorch model and the ONNX graph agree on a sample
   (their logits differ only by the graph's int8-activation kernels);
4. trains a LoRA with peft (default: the published recipe, r 16, alpha 32,
   dropout 0.05, on all attention and MLP projections) on packed sequences
   of `--seq` tokens, for `--steps` steps or `--minutes` minutes;
5. measures held-out bits per byte before and after (each held-out file
   from its own start, as `tenbits compress` codes it);
6. exports A ([in, r]) and B ([r, out], alpha / r folded in) in float16
   under the graph's input names (`lora.{layer}.{proj}.a` / `.b`, see
   scripts/tenbits_convert/graph.py), checks the ONNX graph with the adapter
   against PyTorch with it, and writes `NAME.onnx_adapter` and a card
   `NAME.md` (data, steps, held-out bits/byte before and after, sha256).

The run is reproducible from its seed on one machine (PyTorch on CPU with a
fixed thread count).
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import json
import math
import os
import random
import sys
import time

PROJECTIONS = {  # graph part name -> Hugging Face module
    "q": "self_attn.q_proj", "k": "self_attn.k_proj", "v": "self_attn.v_proj",
    "o": "self_attn.o_proj", "gate": "mlp.gate_proj", "up": "mlp.up_proj",
    "down": "mlp.down_proj",
}


def log(msg: str) -> None:
    print(f"[train_adapter {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def files_of(patterns: list[str], exclude: list[str]) -> list[str]:
    out = []
    for p in patterns:
        out += sorted(glob.glob(os.path.expanduser(p), recursive=True))
    ex = {os.path.realpath(os.path.expanduser(e)) for e in exclude}
    seen, files = set(), []
    for f in out:
        r = os.path.realpath(f)
        if os.path.isfile(f) and r not in ex and r not in seen:
            seen.add(r)
            files.append(f)
    return files


def read_docs(files: list[str], max_bytes: int) -> list[bytes]:
    docs, total = [], 0
    for f in files:
        with open(f, "rb") as fh:
            data = fh.read()
        if not data.strip():
            continue
        docs.append(data)
        total += len(data)
        if max_bytes and total >= max_bytes:
            break
    return docs


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--name", required=True, help="adapter name (file stem and card title)")
    ap.add_argument("--domain", default="", help="one line on the domain, for the card")
    ap.add_argument("--gguf", required=True, help="the model's GGUF (the set-up's source file)")
    ap.add_argument("--model-dir", required=True,
                    help="the converted model (tokenizer.json, model.onnx, model-lora.onnx)")
    ap.add_argument("--train", nargs="+", required=True, help="training files (globs, ** ok)")
    ap.add_argument("--heldout", nargs="+", required=True, help="held-out files (globs)")
    ap.add_argument("--exclude", nargs="*", default=[], help="files never to read")
    ap.add_argument("--out", default="adapters", help="output directory (default adapters/)")
    ap.add_argument("--rank", type=int, default=16)
    ap.add_argument("--alpha", type=float, default=32)
    ap.add_argument("--dropout", type=float, default=0.05)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--seq", type=int, default=256, help="tokens per training sequence")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--minutes", type=float, default=0, help="stop after this long (0: no limit)")
    ap.add_argument("--max-train-bytes", type=int, default=4_000_000)
    ap.add_argument("--max-heldout-bytes", type=int, default=200_000)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=True,
                    help="bfloat16 autocast for the forward pass (default on; weights stay fp32)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    import numpy as np
    import torch
    import tokenizers
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(args.seed)
    random.seed(args.seed)
    torch.set_num_threads(args.threads)
    t_start = time.time()

    cfg = json.load(open(os.path.join(args.model_dir, "config.json")))
    graph_rank = cfg.get("lora_rank", 0)
    if graph_rank < args.rank:
        log(f"error: {args.model_dir} has LoRA inputs of rank {graph_rank}; convert it with "
            f"--lora-rank {args.rank} or more (scripts/setup.py does for adapters' models)")
        return 1
    tok = tokenizers.Tokenizer.from_file(os.path.join(args.model_dir, "tokenizer.json"))

    train_files = files_of(args.train, args.exclude + args.heldout)
    held_files = files_of(args.heldout, args.exclude)
    overlap = {os.path.realpath(f) for f in train_files} & {os.path.realpath(f) for f in held_files}
    if overlap:
        log(f"error: {len(overlap)} files are in both the training and held-out sets")
        return 1
    train_docs = read_docs(train_files, args.max_train_bytes)
    held_docs = read_docs(held_files, args.max_heldout_bytes)
    if not train_docs or not held_docs:
        log("error: no training or no held-out text found")
        return 1
    log(f"train: {len(train_docs)} files, {sum(map(len, train_docs)):,} bytes; "
        f"held out: {len(held_docs)} files, {sum(map(len, held_docs)):,} bytes")

    def encode(data: bytes) -> list[int]:
        return tok.encode(data.decode("utf-8", errors="replace"), add_special_tokens=False).ids

    stream = []
    for d in train_docs:
        stream += encode(d) + encode(b"\n\n")
    seqs = [stream[i:i + args.seq] for i in range(0, len(stream) - args.seq, args.seq)]
    log(f"{len(stream):,} training tokens in {len(seqs)} sequences of {args.seq}")

    gdir, gfile = os.path.split(os.path.abspath(args.gguf))
    model = AutoModelForCausalLM.from_pretrained(gdir, gguf_file=gfile, dtype=torch.float32)
    model.eval()

    # The PyTorch model must be the graph's model: compare logits on a sample.
    import onnxruntime as ort
    ort.set_default_logger_severity(3)
    sample = encode(held_docs[0])[:48]

    def onnx_logits(graph: str, adapter_path: str | None = None) -> np.ndarray:
        sess = ort.InferenceSession(os.path.join(args.model_dir, graph),
                                    providers=["CPUExecutionProvider"])
        n = len(sample)
        feeds = {"input_ids": np.array([sample], np.int64),
                 "attention_mask": np.ones((1, n), np.int64),
                 "position_ids": np.arange(n, dtype=np.int64)[None]}
        for i in sess.get_inputs():
            if i.name.startswith("past_key_values"):
                shp = [1 if s == "batch" else 0 if isinstance(s, str) else s for s in i.shape]
                feeds[i.name] = np.zeros(shp, np.float32)
        ro = None
        if adapter_path:
            ad = ort.LoraAdapter()
            ad.Load(adapter_path)
            ro = ort.RunOptions()
            ro.add_active_adapter(ad)
        return sess.run(["logits"], feeds, ro)[0][0]

    with torch.no_grad():
        ref = model(torch.tensor([sample])).logits[0].numpy()
    # Mean, not max: at accuracy level 4 the graph quantizes activations to
    # int8, which moves single logits by up to ~3 (mean ~0.4 on SmolLM2; a
    # level-0 graph agrees to 2e-4), while a wrong layout moves them all.
    diff = float(np.abs(ref - onnx_logits("model.onnx")).mean())
    log(f"PyTorch vs ONNX logits on {len(sample)} tokens: mean |diff| {diff:.3f}")
    if diff > 1.0:
        log("error: the PyTorch model does not match the converted graph")
        return 1

    def heldout_bits_per_byte(m) -> float:
        m.eval()
        bits, nbytes = 0.0, 0
        with torch.no_grad():
            for d in held_docs:
                ids = encode(d)
                nbytes += len(d)
                for s in range(0, len(ids), 1024):
                    chunk = ids[s:s + 1024]
                    if len(chunk) < 2:
                        continue
                    x = torch.tensor([chunk])
                    logits = m(x).logits[0, :-1].float()
                    nll = torch.nn.functional.cross_entropy(logits, x[0, 1:], reduction="sum")
                    bits += float(nll) / math.log(2)
        return bits / nbytes

    before = heldout_bits_per_byte(model)
    log(f"held-out bits/byte before: {before:.4f}")

    lcfg = LoraConfig(r=args.rank, lora_alpha=args.alpha, lora_dropout=args.dropout,
                      target_modules=[v.split(".")[-1] for v in PROJECTIONS.values()],
                      bias="none", task_type="CAUSAL_LM")
    model = get_peft_model(model, lcfg)
    params = [p for p in model.parameters() if p.requires_grad]
    log(f"trainable parameters: {sum(p.numel() for p in params):,}")
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.0)
    warmup = max(1, args.steps // 20)

    def lr_at(step: int) -> float:
        if step < warmup:
            return args.lr * (step + 1) / warmup
        return args.lr * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, args.steps - warmup)))

    order = list(range(len(seqs)))
    random.shuffle(order)
    steps_done, losses = 0, []
    model.train()
    t_train = time.time()
    for step in range(args.steps):
        if args.minutes and time.time() - t_train > args.minutes * 60:
            log(f"time limit: stopping after {step} steps")
            break
        batch = [seqs[order[(step * args.batch + j) % len(order)]] for j in range(args.batch)]
        x = torch.tensor(batch)
        for group in opt.param_groups:
            group["lr"] = lr_at(step)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
            logits = model(x).logits[:, :-1]
        loss = torch.nn.functional.cross_entropy(logits.float().reshape(-1, logits.shape[-1]),
                                                 x[:, 1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss))
        steps_done = step + 1
        if step % 10 == 0 or step == args.steps - 1:
            el = time.time() - t_train
            eta = el / steps_done * (args.steps - steps_done)
            log(f"step {steps_done}/{args.steps} loss {sum(losses[-10:]) / len(losses[-10:]):.3f} "
                f"({el / 60:.1f} min, ETA {eta / 60:.1f} min)")
    train_minutes = (time.time() - t_train) / 60

    after = heldout_bits_per_byte(model)
    log(f"held-out bits/byte after: {after:.4f} (before {before:.4f})")

    # Export under the graph's names, alpha / r folded into B, padded to the
    # graph's rank with zeros (zero rows and columns add exact zeros).
    params_out = {}
    base = model.base_model.model
    scale = args.alpha / args.rank
    for i, layer in enumerate(base.model.layers):
        for part, path in PROJECTIONS.items():
            mod = layer.get_submodule(path)
            a = mod.lora_A["default"].weight.detach().float().numpy().T          # [in, r]
            b = mod.lora_B["default"].weight.detach().float().numpy().T * scale  # [r, out]
            a_full = np.zeros((a.shape[0], graph_rank), np.float32)
            b_full = np.zeros((graph_rank, b.shape[1]), np.float32)
            a_full[:, :args.rank] = a
            b_full[:args.rank] = b
            params_out[f"lora.{i}.{part}.a"] = a_full.astype(np.float16)
            params_out[f"lora.{i}.{part}.b"] = b_full.astype(np.float16)
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, f"{args.name}.onnx_adapter")
    tmp = path + ".tmp"
    fmt = ort.AdapterFormat()
    fmt.set_adapter_version(1)
    fmt.set_model_version(1)
    fmt.set_parameters({k: ort.OrtValue.ortvalue_from_numpy(v) for k, v in params_out.items()})
    fmt.export_adapter(tmp)
    os.replace(tmp, path)
    digest = hashlib.sha256(open(path, "rb").read()).hexdigest()

    model.eval()
    with torch.no_grad():
        ref = model(torch.tensor([sample])).logits[0].numpy()
    adapted = onnx_logits("model-lora.onnx", path)
    diff_adapter = float(np.abs(ref - adapted).mean())
    moved = float(np.abs(adapted - onnx_logits("model-lora.onnx")).mean())
    log(f"with the adapter: PyTorch vs ONNX mean |diff| {diff_adapter:.3f} "
        f"(the adapter moves the ONNX logits by {moved:.3f} on average)")
    if diff_adapter > 1.0 or moved == 0.0:
        log("error: the exported adapter does not reproduce the trained one in the graph")
        return 1

    size = os.path.getsize(path)
    card = f"""# Adapter `{args.name}`

{args.domain}

| | |
|---|---|
| model | `{cfg.get('name')}` (GGUF sha256 `{cfg.get('source_gguf_sha256')}`) |
| file | `{args.name}.onnx_adapter`, {size:,} bytes, sha256 `{digest}` |
| LoRA | rank {args.rank} (graph rank {graph_rank}), alpha {args.alpha:g}, dropout {args.dropout:g}, on {', '.join(PROJECTIONS.values())}; float16 |
| training data | {len(train_docs)} files, {sum(map(len, train_docs)):,} bytes, {len(stream):,} tokens |
| held-out data | {len(held_docs)} files, {sum(map(len, held_docs)):,} bytes (no file in both sets) |
| training | {steps_done} steps of {args.batch} x {args.seq} tokens, AdamW lr {args.lr:g} (warm-up, cosine), {'bf16 autocast' if args.bf16 else 'fp32'}, seed {args.seed}, {args.threads} threads, {train_minutes:.1f} min |
| held-out bits/byte (PyTorch, fp32, 1024-token chunks) | before {before:.4f}, after {after:.4f} ({after / before:.3f}x) |
| PyTorch vs ONNX logits (mean abs diff) | base {diff:.3f}, with adapter {diff_adapter:.3f} |

Training files (patterns): `{' '.join(args.train)}`
Held-out files (patterns): `{' '.join(args.heldout)}`
{('Excluded: `' + ' '.join(args.exclude) + '`') if args.exclude else ''}

Command: `python scripts/train_adapter.py {' '.join(sys.argv[1:])}`
"""
    with open(os.path.join(args.out, f"{args.name}.md"), "w") as f:
        f.write(card)
    log(f"wrote {path} ({size:,} bytes, sha256 {digest[:16]}) and its card in "
        f"{(time.time() - t_start) / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
