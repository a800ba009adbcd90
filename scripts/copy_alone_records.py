#!/usr/bin/env python3
"""Copy the `small` and `large` records of one results file into another
whose settings differ only in what those two methods never read.

`small` (the small model's greedy draft) and `large` (the large model's own
greedy solution) do not depend on the answerer's view or on the bit budget,
but their results are keyed by every setting, so an oracle run
(`--view reference`) would recompute them. Copying them under the target
settings saves that time and makes the oracle's small/large rows the same
answers as the honest run's.

usage: copy_alone_records.py FROM.jsonl TO.jsonl --set view=Reference [--where bits=10]
"""
import argparse
import json
import os
import re
import sys

# Settings that neither method reads; anything else must match exactly.
FREE = {"view", "bits", "sees_answer", "checks_claims", "select"}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("source")
    ap.add_argument("target")
    ap.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                    help="a setting to change in the copied keys (only %s)" % sorted(FREE))
    ap.add_argument("--where", action="append", default=[], metavar="NAME=VALUE",
                    help="copy only records whose settings hold NAME=VALUE")
    args = ap.parse_args()
    changes = dict(s.split("=", 1) for s in args.set)
    bad = set(changes) - FREE
    if bad:
        sys.exit(f"cannot change {sorted(bad)}: small and large depend on them")

    def rewrite(settings):
        for name, value in changes.items():
            settings, n = re.subn(rf"\b{name}=\S+", f"{name}={value}", settings)
            if n != 1:
                sys.exit(f"setting {name} not found once in {settings!r}")
        return settings

    have = set()
    if os.path.exists(args.target):
        for line in open(args.target):
            if line.strip():
                k = json.loads(line)["key"]
                have.add(json.dumps(k, sort_keys=True))
    copied = 0
    with open(args.target, "a") as out:
        for line in open(args.source):
            if not line.strip():
                continue
            j = json.loads(line)
            k = j["key"]
            if k["method"] not in ("small", "large"):
                continue
            if any(w not in k["settings"].split() for w in args.where):
                continue
            k["settings"] = rewrite(k["settings"])
            sig = json.dumps(k, sort_keys=True)
            if sig in have:
                continue
            have.add(sig)
            out.write(json.dumps({"key": k, "record": j["record"]}, separators=(",", ":")) + "\n")
            copied += 1
    print(f"copied {copied} records into {args.target}")


if __name__ == "__main__":
    main()
