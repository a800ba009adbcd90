"""Calibrate the answerer's yes threshold on the tuning split and apply it to
the reporting split: an after-the-fact analysis of `probe` records (the
answerer alone on "Is the answer X?" with the gold X and a wrong X, on the
problems it solves alone). The bit is a function of the recorded P(yes)
alone, so the accuracy at another threshold is exact for those records (a
rerun on another machine or batch may write other drafts and P(yes); rerun
with `--yes-threshold` to measure it afresh).

    python3 scripts/probe_threshold.py --tune T1.jsonl [T2.jsonl ...] \
        --report R1.jsonl [R2.jsonl ...]

The threshold is the one right on the most pooled tuning claims; among
equals, the middle of the widest such run of thresholds (0.05 steps).
"""
import argparse, json, math

GRID = [round(i / 20, 2) for i in range(1, 20)]


def claims(path):
    """(P(yes), truth) of the probe claims on problems `large` solves, from
    records keyed at the default settings (no --check-claims)."""
    large, probe = {}, {}
    for line in open(path):
        r = json.loads(line)
        k = r["key"]
        if k["method"] not in ("large", "probe") or "checks_claims=false" not in k["settings"]:
            continue
        (large if k["method"] == "large" else probe)[k["problem"]] = r["record"]
    out = []
    for problem, record in probe.items():
        if large.get(problem, {}).get("correct"):
            out += [(c["p_yes"], c["truth"]) for c in record["probe"]]
    return out


def right(cs, t):
    return sum((p >= t) == truth for p, truth in cs)


def wilson(k, n, z=1.96):
    if n == 0:
        return (math.nan, math.nan)
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return (c - h, c + h)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tune", nargs="+", required=True)
    ap.add_argument("--report", nargs="+", required=True)
    a = ap.parse_args()
    pooled = [c for f in a.tune for c in claims(f)]
    if not pooled:
        raise SystemExit("no probe claims on solved problems in the tuning files")
    scores = [right(pooled, t) for t in GRID]
    best = max(scores)
    # The widest run of thresholds at the best score; its middle.
    runs, start = [], None
    for i, s in enumerate(scores + [None]):
        if s == best and start is None:
            start = i
        elif s != best and start is not None:
            runs.append((start, i - 1))
            start = None
    lo, hi = max(runs, key=lambda r: r[1] - r[0])
    t = GRID[(lo + hi) // 2]
    print(f"tuning: {len(pooled)} claims from {len(a.tune)} file(s); right at 0.5: "
          f"{right(pooled, 0.5)}; best {best} on thresholds {GRID[lo]}–{GRID[hi]}; chosen {t}")
    print()
    print("| reporting file | claims | right at 0.5 | right at the chosen threshold |")
    print("|---|---:|---:|---:|")
    for f in a.report:
        cs = claims(f)
        n = len(cs)
        cells = []
        for th in (0.5, t):
            k = right(cs, th)
            lo_, hi_ = wilson(k, n)
            cells.append(f"{100 * k / max(n, 1):.1f}% ({100 * lo_:.1f}–{100 * hi_:.1f})")
        print(f"| {f} | {n} | {cells[0]} | {cells[1]} |")


if __name__ == "__main__":
    main()
