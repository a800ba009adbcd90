"""Whether any of select's candidates passes HumanEval's hidden tests:
the bound on what choosing among them can reach. Not part of the method
(its answerer never runs tests); an after-the-fact analysis of a results
file. Each check runs in its own python3 in a temporary directory, without
network (unshare --net), 10 s, 1 GiB of address space.

    python3 scripts/select_candidates_pass.py results/humaneval-v4.jsonl OUT.json
"""
import gzip, json, subprocess, sys, tempfile, os, resource, glob
if len(sys.argv) != 3:
    sys.exit("usage: select_candidates_pass.py RESULTS.jsonl OUT.json")
data = {}
# The copy scripts/setup.py fetched, in the cache it uses.
cache = os.environ.get("TENBITS_CACHE") or os.path.join(
    os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "tenbits")
found = glob.glob(os.path.join(cache, "datasets", "humaneval-*", "HumanEval.jsonl.gz"))
if not found:
    sys.exit(f"no HumanEval in {cache}/datasets: run python3 scripts/setup.py --all first")
for l in gzip.open(found[0], "rt"):
    p = json.loads(l); data[p["task_id"]] = p
def limit():
    resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
def passes(prog, p):
    src = prog + "\n\n" + p["test"] + f"\ncheck({p['entry_point']})\n"
    with tempfile.TemporaryDirectory() as d:
        f = os.path.join(d, "t.py"); open(f, "w").write(src)
        try:
            r = subprocess.run(["unshare", "--net", "python3", f], cwd=d, timeout=10,
                               capture_output=True, preexec_fn=limit)
            return r.returncode == 0
        except subprocess.TimeoutExpired:
            return False
recs = [json.loads(l) for l in open(sys.argv[1])]
latest = {}
for r in recs:
    k = r["key"]
    latest[(k["problem"], k["method"])] = r["record"]
out = {}
for (prob, m), r in sorted(latest.items(), key=lambda x: int(x[0][0].split("/")[1])):
    if m != "select" or not r.get("candidates"):
        continue
    ok = [passes(c, data[prob]) for c in r["candidates"]]
    out[prob] = {"any": any(ok), "n_pass": sum(ok), "n": len(ok), "select": r["correct"],
                 "small": latest.get((prob, "small"), {}).get("correct"),
                 "large": latest.get((prob, "large"), {}).get("correct")}
json.dump(out, open(sys.argv[2], "w"), indent=0)
n = len(out)
print(f"problems {n}; a passing candidate on {sum(v['any'] for v in out.values())}; "
      f"select right {sum(v['select'] for v in out.values())}; "
      f"large right {sum(bool(v['large']) for v in out.values())}; "
      f"large right and a passing candidate {sum(bool(v['large']) and v['any'] for v in out.values())}; "
      f"passing candidates but select wrong {sum(v['any'] and not v['select'] for v in out.values())}; "
      f"mean share of candidates passing {sum(v['n_pass']/v['n'] for v in out.values())/max(n,1):.3f}")
