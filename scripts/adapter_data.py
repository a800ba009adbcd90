#!/usr/bin/env python3
"""Training and held-out text for the shipped adapters (see adapters/*.md).

    python scripts/adapter_data.py prose OUT_DIR [--corpus ../shared/data/corpus]
    python scripts/adapter_data.py answers OUT_DIR results/*.jsonl

`prose` downloads the Debian packages jargon-text and fortunes with
`apt-get download` (from the Debian archive, the only network access), and
writes OUT_DIR/train (the first 90% of each source, in 20 KB files) and
OUT_DIR/heldout (90–95%). Lines that also occur in the shared corpus samples
(which are taken from the last 5% of the same packages) are removed from the
training text, so nothing measured there was trained on.

`answers` collects the large model's replies (`large` records) from
`tenbits eval` results files and splits them by problem: a problem whose
id hashes to 0 mod 5 is held out, whole, with every reply to it; the rest
train. One file per reply.
"""

from __future__ import annotations

import argparse
import glob
import gzip
import hashlib
import json
import os
import subprocess
import sys
import tempfile


def shared_lines(corpus: str) -> set[str]:
    lines = set()
    for f in glob.glob(os.path.join(corpus, "*")):
        with open(f, errors="replace") as fh:
            lines |= {ln.strip() for ln in fh if len(ln.strip()) > 20}
    return lines


def write_split(name: str, text: str, out: str, shared: set[str]) -> None:
    cut, end = int(len(text) * 0.9), int(len(text) * 0.95)
    train = "\n".join(ln for ln in text[:cut].split("\n") if ln.strip() not in shared)
    for i in range(0, len(train), 20000):
        with open(os.path.join(out, "train", f"{name}-{i // 20000:04d}.txt"), "w") as f:
            f.write(train[i:i + 20000])
    held = text[cut:end]
    for i in range(0, min(len(held), 100000), 10000):
        with open(os.path.join(out, "heldout", f"{name}-{i // 10000:02d}.txt"), "w") as f:
            f.write(held[i:i + 10000])
    print(f"{name}: {len(text):,} bytes; {len(train):,} to train", file=sys.stderr)


def prose(out: str, corpus: str) -> None:
    shared = shared_lines(corpus)
    for d in ("train", "heldout"):
        os.makedirs(os.path.join(out, d), exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["apt-get", "download", "jargon-text", "fortunes"], cwd=tmp, check=True)
        for deb in glob.glob(os.path.join(tmp, "*.deb")):
            subprocess.run(["dpkg-deb", "-x", deb, os.path.join(tmp, "x")], check=True)
        x = os.path.join(tmp, "x", "usr", "share")
        with gzip.open(os.path.join(x, "doc", "jargon-text", "jargon.txt.gz"), "rt",
                       errors="replace") as f:
            write_split("jargon", f.read(), out, shared)
        fortunes = ""
        for f in sorted(glob.glob(os.path.join(x, "games", "fortunes", "*"))):
            base = os.path.basename(f)
            if "." in base or os.path.islink(f) or "off" in f:
                continue
            with open(f, errors="replace") as fh:
                fortunes += fh.read()
        write_split("fortunes", fortunes, out, shared)


def answers(out: str, results: list[str]) -> None:
    for d in ("train", "heldout"):
        os.makedirs(os.path.join(out, d), exist_ok=True)
    seen, counts = set(), {"train": 0, "heldout": 0}
    for path in results:
        with open(path) as fh:
            for line in fh:
                r = json.loads(line)
                key, rec = r["key"], r["record"]
                if key["method"] != "large" or not rec.get("reply", "").strip():
                    continue
                problem = f"{key['benchmark']}::{key['problem']}"
                if problem in seen:
                    continue
                seen.add(problem)
                h = hashlib.sha256(problem.encode()).digest()
                part = "heldout" if h[0] % 5 == 0 else "train"
                name = hashlib.sha256(problem.encode()).hexdigest()[:16]
                with open(os.path.join(out, part, f"{name}.txt"), "w") as f:
                    f.write(rec["reply"])
                counts[part] += 1
    print(f"answers: {counts['train']} to train, {counts['heldout']} held out", file=sys.stderr)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="what", required=True)
    p = sub.add_parser("prose", help="English prose from Debian packages")
    p.add_argument("out")
    p.add_argument("--corpus", default=os.path.join(os.path.dirname(__file__), "..", "..",
                                                    "shared", "data", "corpus"))
    a = sub.add_parser("answers", help="model-written answers from tenbits eval results")
    a.add_argument("out")
    a.add_argument("results", nargs="+")
    args = ap.parse_args(argv)
    if args.what == "prose":
        prose(args.out, args.corpus)
    else:
        answers(args.out, args.results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
