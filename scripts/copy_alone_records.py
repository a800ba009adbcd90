#!/usr/bin/env python3
"""Copy the records of methods that do not read some settings from one
results file into another whose settings differ only in those.

`small` (the small model's greedy draft) and `large` (the large model's own
greedy solution) do not depend on the answerer's view, the bit budget or
select's settings; `blc` (the small model asking and answering itself)
does not depend on select's settings or the visible filter. Their results
are keyed by every setting, so an oracle run (`--view reference`) or a
filtered run (`--visible-filter`) would recompute them. Copying them under
the target settings saves that time and makes the target's rows the same
answers as the source's.

usage: copy_alone_records.py FROM.jsonl TO.jsonl --set view=Reference [--where bits=10]
       [--methods small,large,blc]
"""
import argparse
import json
import os
import re
import sys

# Per method, the settings it never reads; anything else must match exactly.
FREE = {
    "small": {"view", "bits", "sees_answer", "checks_claims", "select", "visible_filter",
              "yes_threshold"},
    "large": {"view", "bits", "sees_answer", "checks_claims", "select", "visible_filter",
              "yes_threshold"},
    "blc": {"select", "visible_filter"},
}
# Settings a key names only when set (at its end): `--set` adds them.
ONLY_WHEN_SET = {"visible_filter", "yes_threshold"}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("source")
    ap.add_argument("target")
    ap.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                    help="a setting to change in the copied keys")
    ap.add_argument("--where", action="append", default=[], metavar="NAME=VALUE",
                    help="copy only records whose settings hold NAME=VALUE")
    ap.add_argument("--methods", default="small,large",
                    help="methods to copy, of %s" % sorted(FREE))
    args = ap.parse_args()
    changes = dict(s.split("=", 1) for s in args.set)
    methods = args.methods.split(",")
    for m in methods:
        if m not in FREE:
            sys.exit(f"cannot copy {m}: only {sorted(FREE)}")
        bad = set(changes) - FREE[m]
        if bad:
            sys.exit(f"cannot change {sorted(bad)}: {m} depends on them")

    def rewrite(settings):
        for name, value in changes.items():
            settings, n = re.subn(rf"\b{name}=\S+", f"{name}={value}", settings)
            if n == 0 and name in ONLY_WHEN_SET:
                settings, n = f"{settings} {name}={value}", 1
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
            if k["method"] not in methods:
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
