#!/usr/bin/env python3
"""Summarises benches/vm/compare.sh's runs.jsonl as Markdown: one table with
a row per measure (the workload's wall time, then every "metric" line the
workload printed) and a column per scheduler, each cell the median over the
rounds and its ratio to EEVDF's median; then the BPF time of each
scheduler's struct_ops programs (per run, and per call of each callback)."""
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
names = list(by)

# Which way is better, for the reader: lower for times and latencies,
# higher for throughput and slack; the evidence that a load ran (how many
# samples, how busy the CPUs were) and the CPU time each stressor of the mix
# got (the scheduler's split of the machine) and the idle time during the mix
# (what the other rows are judged beside) are neither.
def better(k):
    if k.endswith("_n") or k in ("busy_pct", "mix_idle_s"):
        return "evidence"
    if k.startswith("mix_") and k.endswith("_cpu_s"):
        return "share"
    return "higher" if k.endswith("_ops") or k.startswith("frames_slack") else "lower"

measures = defaultdict(lambda: defaultdict(list))
for name, rs in by.items():
    for r in rs:
        measures["workload_s"][name].append(r["secs"])
        for k, v in r.get("metrics", {}).items():
            measures[k][name].append(v)

print(f"| measure (better) | " + " | ".join(names) + " |")
print("|---|" + "---|" * len(names))
for k in ["workload_s"] + sorted(m for m in measures if m != "workload_s"):
    base = measures[k].get("eevdf")
    base = statistics.median(base) if base else None
    cells = []
    for n in names:
        vs = measures[k].get(n)
        if not vs:
            cells.append("-")
            continue
        med = statistics.median(vs)
        # A ratio to a negative or zero base (slack can be either) means nothing.
        ratio = f" ({med / base:.2f}x)" if base and base > 0 and n != "eevdf" else ""
        cells.append(f"{med:.3f}{ratio}" if med < 100 else f"{med:.0f}{ratio}")
    print(f"| {k} ({better(k)}) | " + " | ".join(cells) + " |")
print()
print(f"rounds: " + ", ".join(f"{n} {len(by[n])}" for n in names) + "; cells: median (ratio to EEVDF)")
print()
print("BPF time of the scheduler's struct_ops programs (kernel.bpf_stats_enabled):")
for name, rs in by.items():
    progs = defaultdict(lambda: [0, 0])
    for r in rs:
        for p, (t, c) in r["progs"].items():
            progs[p][0] += t
            progs[p][1] += c
    total = sum(t for t, _ in progs.values())
    if not total:
        continue
    calls = sum(c for _, c in progs.values())
    print(f"  {name}: {total / 1e9 / len(rs):.3f} s per run, {total / max(calls, 1) / 1e3:.2f} us per call")
    for p, (t, c) in sorted(progs.items(), key=lambda kv: -kv[1][0]):
        if c:
            print(f"    {p:18} {t / 1e9 / len(rs):8.3f} s/run {c // len(rs):>9} calls/run {t / c / 1e3:8.2f} us/call")
