#!/usr/bin/env python3
"""Summarises benches/vm/compare.sh's runs.jsonl: per scheduler, the median
workload time and its ratio to EEVDF's, the medians of the metrics the
workload printed (e.g. latency percentiles), and the BPF time of its
struct_ops programs (total per run, and per call of each callback)."""
import json
import statistics
import sys
from collections import defaultdict

runs = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
by = defaultdict(list)
for r in runs:
    if "error" in r:
        print(f"{r['sched']} round {r['round']}: {r['error']}")
        continue
    by[r["sched"]].append(r)

base = statistics.median(r["secs"] for r in by["eevdf"]) if by.get("eevdf") else None
print(f"{'scheduler':10} {'runs':>4} {'median s':>9} {'vs EEVDF':>8} {'BPF s/run':>10} {'BPF us/call':>11}")
for name, rs in by.items():
    secs = statistics.median(r["secs"] for r in rs)
    bpf = [sum(v[0] for v in r["progs"].values()) / 1e9 for r in rs]
    calls = [sum(v[1] for v in r["progs"].values()) for r in rs]
    per = sum(bpf) * 1e6 / max(sum(calls), 1)
    ratio = f"{secs / base:.2f}" if base else "-"
    print(f"{name:10} {len(rs):>4} {secs:>9.2f} {ratio:>8} {statistics.median(bpf):>10.3f} {per:>11.2f}")
    progs = defaultdict(lambda: [0, 0])
    for r in rs:
        for p, (t, c) in r["progs"].items():
            progs[p][0] += t
            progs[p][1] += c
    metrics = defaultdict(list)
    for r in rs:
        for k, v in r.get("metrics", {}).items():
            metrics[k].append(v)
    for k, vs in sorted(metrics.items()):
        base_m = [v for r in by.get("eevdf", []) for kk, v in r.get("metrics", {}).items() if kk == k]
        vs_base = ""
        if base_m and statistics.median(base_m):
            vs_base = f"  ({statistics.median(vs) / statistics.median(base_m):.2f} x EEVDF)"
        print(f"    metric {k:11} median {statistics.median(vs):10.3f}  runs {vs}{vs_base}")
    for p, (t, c) in sorted(progs.items(), key=lambda kv: -kv[1][0]):
        if c:
            print(f"    {p:18} {t / 1e9 / len(rs):8.3f} s/run {c // len(rs):>9} calls/run {t / c / 1e3:8.2f} us/call")
