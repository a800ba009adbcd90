#!/usr/bin/env python3
"""What the examples in a HumanEval prompt's docstring say about select's
candidates: an after-the-fact analysis of a results file, not a method.

Each prompt shows a few calls with their results (`f(x) == y`,
`f(x) ➞ y`, `>>> f(x)` then `y`, ...). The receiver has the prompt, so it
could run its candidates on those calls without a bit from the answerer.
This script measures what that would buy, to say whether the rest of the
code gap is in the answerer's judgement or could be closed on the
receiver's side:

- per problem, which candidates pass every visible example and which pass
  the hidden tests (each run in its own python3 in a temporary directory,
  without network (unshare --net), 10 s, 1 GiB of address space);
- "visible filter, 0 bits": the first candidate in the asker's order (the
  greedy draft first) among those that pass the most visible examples
  (not all: a parsed example can be wrong, as `tri(4) = 3` in a
  definition), else the draft;
- "select within the filter": select's own choice where it passes the
  visible examples, else the bounds of any choice among those that do.

The hidden tests are read only to grade; the canonical solution only to
count how often the parsed examples are themselves right (the parser's
error rate), never to filter.

    python3 scripts/visible_examples.py results/humaneval-v4.jsonl OUT.json
"""
import ast
import glob
import gzip
import json
import os
import re
import resource
import subprocess
import sys
import tempfile

SEPARATORS = ["==>", "==", "=>", "➞", "->", "should return", "returns", "="]


def load_humaneval():
    cache = os.environ.get("TENBITS_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "tenbits")
    found = glob.glob(os.path.join(cache, "datasets", "humaneval-*", "HumanEval.jsonl.gz"))
    if not found:
        sys.exit(f"no HumanEval in {cache}/datasets: run python3 scripts/setup.py --all first")
    return {p["task_id"]: p for p in map(json.loads, gzip.open(found[0], "rt"))}


def call_end(text, start):
    """Index just past the parenthesis closing the one at `start`."""
    depth, quote = 0, None
    for i in range(start, len(text)):
        c = text[i]
        if quote:
            if c == quote and text[i - 1] != "\\":
                quote = None
        elif c in "'\"":
            quote = c
        elif c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
            if depth == 0:
                return i + 1
    return None


def literal(text):
    text = text.strip().rstrip(".").strip()
    try:
        return ast.literal_eval(text), True
    except Exception:
        return None, False


def examples(prompt, entry):
    """(call, expected) pairs shown in the docstring, as source text whose
    arguments and results are Python literals."""
    doc = prompt.split('"""', 1)[-1] if '"""' in prompt else prompt.split("'''", 1)[-1]
    lines = doc.splitlines()
    out = []
    for n, line in enumerate(lines):
        for m in re.finditer(re.escape(entry) + r"\s*\(", line):
            end = call_end(line, m.end() - 1)
            if end is None:
                continue
            call = line[m.start():end]
            args, ok = literal("(" + call[call.index("(") + 1:-1] + ",)")
            if not ok:
                continue
            rest = line[end:].strip()
            expected = None
            if not rest and line.lstrip().startswith(">>>"):
                nxt = next((l for l in lines[n + 1:] if l.strip()), "")
                expected = nxt.strip()
            else:
                for sep in SEPARATORS:
                    if rest.startswith(sep):
                        expected = rest[len(sep):]
                        break
            if expected is None:
                continue
            value, ok = literal(expected)
            if ok:
                out.append((call, repr(value)))
    # One of each call.
    seen, unique = set(), []
    for e in out:
        if e[0] not in seen:
            seen.add(e[0])
            unique.append(e)
    return unique


RUNNER = """
import json, math
def same(a, b):
    if isinstance(a, float) or isinstance(b, float):
        try:
            return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9)
        except TypeError:
            return False
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b
passed = 0
for call, expected in EXAMPLES:
    try:
        if same(eval(call), eval(expected)):
            passed += 1
    except Exception:
        pass
print(json.dumps(passed))
"""


def limit():
    resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))


def run(src):
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "t.py")
        with open(path, "w") as f:
            f.write(src)
        try:
            r = subprocess.run(["unshare", "--net", "python3", path], cwd=d, timeout=10,
                               capture_output=True, preexec_fn=limit, text=True)
            return r.returncode, r.stdout
        except subprocess.TimeoutExpired:
            return -1, ""


def visible_passed(program, exs):
    if not exs:
        return 0
    code, out = run(program + "\n\nEXAMPLES = " + repr(exs) + "\n" + RUNNER)
    try:
        return int(out.strip().splitlines()[-1]) if code == 0 else 0
    except (ValueError, IndexError):
        return 0


def hidden_pass(program, p):
    code, _ = run(program + "\n\n" + p["test"] + f"\ncheck({p['entry_point']})\n")
    return code == 0


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: visible_examples.py RESULTS.jsonl OUT.json")
    data = load_humaneval()
    latest = {}
    for line in open(sys.argv[1]):
        if line.strip():
            j = json.loads(line)
            latest[(j["key"]["problem"], j["key"]["method"])] = j["record"]
    rows = {}
    problems = sorted({p for p, m in latest if m == "select"}, key=lambda s: int(s.split("/")[1]))
    for i, prob in enumerate(problems):
        r = latest[(prob, "select")]
        p = data[prob]
        exs = examples(p["prompt"], p["entry_point"])
        canonical = visible_passed(p["prompt"] + p["canonical_solution"], exs)
        cands = r.get("candidates") or []
        vis = [visible_passed(c, exs) for c in cands]
        hid = [hidden_pass(c, p) for c in cands]
        chosen = next((k for k, c in enumerate(cands) if c.strip() == (r.get("extracted") or "").strip()), None)
        rows[prob] = {"examples": len(exs), "canonical_passes": canonical, "visible": vis,
                      "hidden": hid, "chosen": chosen, "select": r["correct"],
                      "small": latest.get((prob, "small"), {}).get("correct"),
                      "large": latest.get((prob, "large"), {}).get("correct")}
        print(f"\r{i + 1}/{len(problems)}", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    tmp = sys.argv[2] + ".tmp"
    json.dump(rows, open(tmp, "w"), indent=0)
    os.replace(tmp, sys.argv[2])

    n = len(rows)
    with_ex = [v for v in rows.values() if v["examples"]]
    right_ex = [v for v in with_ex if v["canonical_passes"] == v["examples"]]
    zero_bit = lo = hi = 0
    for v in rows.values():
        k = v["examples"]
        best = max(v["visible"], default=0)
        survivors = [j for j, s in enumerate(v["visible"]) if k and best and s == best]
        first = survivors[0] if survivors else 0
        zero_bit += bool(v["hidden"]) and v["hidden"][first]
        if not survivors or v["chosen"] in survivors:
            lo += bool(v["select"])
            hi += bool(v["select"])
        else:
            lo += min(v["hidden"][j] for j in survivors)
            hi += max(v["hidden"][j] for j in survivors)
    count = lambda key: sum(bool(v[key]) for v in rows.values())
    print(f"problems {n}; with parsed examples {len(with_ex)} "
          f"(mean {sum(v['examples'] for v in with_ex) / max(len(with_ex), 1):.1f}); "
          f"the canonical solution passes all parsed examples on {len(right_ex)}")
    print(f"small {count('small')}, large {count('large')}, select {count('select')}; "
          f"visible filter, 0 bits: {zero_bit}; select within the filter: {lo} to {hi}")
    print(f"a candidate passes the hidden tests on {sum(any(v['hidden']) for v in rows.values())}; "
          f"select's choice fails the visible examples on "
          f"{sum(1 for v in rows.values() if v['chosen'] is not None and v['visible'][v['chosen']] < max(v['visible'], default=0))}"
          " (fewer visible examples than the best candidate)")


if __name__ == "__main__":
    main()
