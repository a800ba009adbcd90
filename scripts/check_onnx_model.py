#!/usr/bin/env python3
"""Sanity checks for a converted model directory (needs onnxruntime and tokenizers,
which the converter itself does not).

Usage: python scripts/check_onnx_model.py MODEL_DIR [REFERENCE_LOGITS.json] [--bench] [--det]

Prints: the prompt's token ids, a 5-token greedy continuation using the KV
cache, max |diff| between whole-prompt prefill and token-by-token / chunked
decoding, batch-of-2 left/right padding checks, the max |diff| against a
reference_forward.py JSON, (--bench) decode ms/step at batch 1, 8 and 32
with past length 256 and 2 intra-op threads, and (--det) whether a fixed
sequence of one-token decode steps at batch 1 and 8 gives bit-identical logits
across runs and between intra_op_num_threads 1 and 2 (the compressor needs
both).
"""
import json, sys, time
import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

d = sys.argv[1]
ref_path = next((a for a in sys.argv[2:] if not a.startswith('--')), None)
cfg = json.load(open(f"{d}/config.json"))
tok = Tokenizer.from_file(f"{d}/tokenizer.json")
L, KV, D = cfg["num_layers"], cfg["num_kv_heads"], cfg["head_dim"]

so = ort.SessionOptions()
so.intra_op_num_threads = 2
so.inter_op_num_threads = 1
t = time.time()
sess = ort.InferenceSession(f"{d}/model.onnx", so, providers=["CPUExecutionProvider"])
print(f"session load {time.time()-t:.2f}s (weights: {cfg.get('weights', 'fp32')}"
      f"{', accuracy_level %s' % cfg['matmulnbits_accuracy_level'] if 'matmulnbits_accuracy_level' in cfg else ''})")
out_names = [o.name for o in sess.get_outputs()]


def empty_past(b, n=0):
    return {f"past_key_values.{i}.{k}": np.zeros((b, KV, n, D), np.float32)
            for i in range(L) for k in ("key", "value")}


def run(ids, mask, pos, past):
    feeds = {"input_ids": ids, "attention_mask": mask, "position_ids": pos, **past}
    outs = sess.run(None, feeds)
    res = dict(zip(out_names, outs))
    new_past = {f"past_key_values.{i}.{k}": res[f"present.{i}.{k}"] for i in range(L) for k in ("key", "value")}
    return res["logits"], new_past


prompt = "The capital of France is"
enc = tok.encode(prompt)
ids = enc.ids
print("ids", ids, enc.tokens, "decode:", repr(tok.decode(ids)))
n = len(ids)
a = np.array([ids], np.int64)
logits_prefill, past = run(a, np.ones((1, n), np.int64), np.arange(n)[None].astype(np.int64), empty_past(1))
# greedy 5 tokens with cache
gen = []
nxt = int(logits_prefill[0, -1].argmax())
cur_past, cur_len = past, n
for step in range(5):
    gen.append(nxt)
    lg, cur_past = run(np.array([[nxt]], np.int64), np.ones((1, cur_len + 1), np.int64),
                       np.array([[cur_len]], np.int64), cur_past)
    cur_len += 1
    nxt = int(lg[0, -1].argmax())
print("greedy continuation:", repr(tok.decode(gen)), gen)

# token-by-token vs prefill
p = empty_past(1)
step_logits = []
for j in range(n):
    lg, p = run(np.array([[ids[j]]], np.int64), np.ones((1, j + 1), np.int64), np.array([[j]], np.int64), p)
    step_logits.append(lg[0, 0])
step_logits = np.stack(step_logits)
print("prefill vs one-at-a-time max abs diff:", float(np.abs(step_logits - logits_prefill[0]).max()))
# chunked: prefill 3 then 2
lg1, p1 = run(a[:, :3], np.ones((1, 3), np.int64), np.arange(3)[None].astype(np.int64), empty_past(1))
lg2, _ = run(a[:, 3:], np.ones((1, n), np.int64), np.arange(3, n)[None].astype(np.int64), p1)
print("prefill vs chunked(3+rest) max abs diff:", float(np.abs(np.concatenate([lg1, lg2], 1) - logits_prefill).max()))

# batch 2 with padding
other = tok.encode("Hello, my name is John and I like").ids
m = max(n, len(other))
for side in ("left", "right"):
    pad_id = 2
    B_ids = np.full((2, m), pad_id, np.int64)
    mask = np.zeros((2, m), np.int64)
    pos = np.zeros((2, m), np.int64)
    for r, seq in enumerate([ids, other]):
        k = len(seq)
        sl = slice(m - k, m) if side == "left" else slice(0, k)
        B_ids[r, sl] = seq
        mask[r, sl] = 1
        pos[r, sl] = np.arange(k)
    lg, pp = run(B_ids, mask, pos, empty_past(2))
    sl = slice(m - n, m) if side == "left" else slice(0, n)
    diff = float(np.abs(lg[0, sl] - logits_prefill[0]).max())
    print(f"batch2 {side}-padding: row0 max abs diff vs unpadded = {diff:.3g}, nan={np.isnan(lg).any()}")
    # one decode step on padded batch
    if side == "left":
        nxt_b = lg[:, -1].argmax(-1).astype(np.int64)[:, None]
        mask2 = np.concatenate([mask, np.ones((2, 1), np.int64)], 1)
        pos2 = np.array([[n], [len(other)]], np.int64)
        lg2b, _ = run(nxt_b, mask2, pos2, pp)
        lg_single, _ = run(np.array([[gen[0]]], np.int64), np.ones((1, n + 1), np.int64), np.array([[n]], np.int64), past)
        print(f"  left-padded decode step row0 diff vs unpadded = {float(np.abs(lg2b[0,0]-lg_single[0,0]).max()):.3g}")

if ref_path:
    ref = json.load(open(ref_path))
    assert ref["input_ids"] == ids, (ref["input_ids"], ids)
    last = logits_prefill[0, -1].astype(np.float64)
    ref_top = [e["id"] for e in ref["top10"]]
    ort_top = list(np.argsort(-last, kind="stable")[:10])
    diffs = [abs(last[e["id"]] - e["logit"]) for e in ref["top10"]]
    diffs += [abs(last[int(k)] - v) for k, v in ref["fixed_logits"].items()]
    print("reference top10 ids:", ref_top)
    print("ORT top10 ids      :", [int(x) for x in ort_top])
    print("max abs diff ORT vs numpy reference (top10 + fixed):", max(diffs))

# timing
def bench(b, past_len, steps=20):
    pst = {k: np.random.default_rng(0).standard_normal((b, KV, past_len, D)).astype(np.float32) * 0.1 for k in empty_past(1)}
    idsb = np.full((b, 1), 100, np.int64)
    mask = np.ones((b, past_len + 1), np.int64)
    pos = np.full((b, 1), past_len, np.int64)
    feeds = {"input_ids": idsb, "attention_mask": mask, "position_ids": pos, **pst}
    for _ in range(3):
        sess.run(None, feeds)
    t = time.perf_counter()
    for _ in range(steps):
        sess.run(None, feeds)
    return (time.perf_counter() - t) / steps * 1000

if "--bench" in sys.argv:
    for b in (1, 8, 32):
        print(f"decode batch {b}, past 256: {bench(b, 256, 20 if b == 1 else 5):.1f} ms/step (intra_op=2)")


def decode_steps(session, b, n_steps=6, past_len=20):
    rng = np.random.default_rng(7)
    pst = {k: (rng.standard_normal((b, KV, past_len, D)) * 0.5).astype(np.float32) for k in empty_past(1)}
    names = [o.name for o in session.get_outputs()]
    cur = rng.integers(0, cfg["vocab_size"], (b, 1)).astype(np.int64)
    outs = []
    for s_ in range(n_steps):
        T = past_len + s_ + 1
        r = dict(zip(names, session.run(None, {"input_ids": cur, "attention_mask": np.ones((b, T), np.int64),
                                               "position_ids": np.full((b, 1), T - 1, np.int64), **pst})))
        outs.append(r["logits"])
        pst = {k: r[k.replace("past_key_values", "present")] for k in pst}
        cur = r["logits"][:, -1].argmax(-1)[:, None].astype(np.int64)
    return np.stack(outs)


if "--det" in sys.argv:
    sessions = {}
    for th in (1, 2):
        o = ort.SessionOptions()
        o.intra_op_num_threads = th
        o.inter_op_num_threads = 1
        sessions[th] = ort.InferenceSession(f"{d}/model.onnx", o, providers=["CPUExecutionProvider"])
    for b in (1, 8):
        r1, r1b = decode_steps(sessions[1], b), decode_steps(sessions[1], b)
        r2, r2b = decode_steps(sessions[2], b), decode_steps(sessions[2], b)
        print(f"determinism batch {b}: reruns identical={np.array_equal(r1, r1b) and np.array_equal(r2, r2b)}, "
              f"threads 1 vs 2 identical={np.array_equal(r1, r2)} (max diff {float(np.abs(r1 - r2).max()):.3g})")
