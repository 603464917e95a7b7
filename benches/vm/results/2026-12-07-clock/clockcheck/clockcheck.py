import json, sys, os
d = sys.argv[1]
for n in ['anchor', 'old', 'broken', 'anchor2']:
    try:
        s0 = open(f'{d}/{n}.stat0').read().split(); s1 = open(f'{d}/{n}.stat1').read().split()
        u0 = float(open(f'{d}/{n}.up0').read()); u1 = float(open(f'{d}/{n}.up1').read())
    except OSError as e:
        print(n, 'missing', e); continue
    idle = (int(s1[4]) + int(s1[5]) - int(s0[4]) - int(s0[5])) / 100.0
    busy = 1 - idle / ((u1 - u0) * 8)
    L = [json.loads(l) for l in open(f'{d}/{n}.jsonl')][:-1]
    ins = [l for l in L if 4 <= l['t'] <= 14]
    rates = []
    for a, b in zip(ins, ins[1:]):
        dt = b['t'] - a['t']
        rates.append(sum(y['run_ns'] - x['run_ns'] for x, y in zip(a['domains'], b['domains'])) / 1e9 / dt / 8)
    f, l = ins[0], ins[-1]
    tot = sum(y['run_ns'] - x['run_ns'] for x, y in zip(f['domains'], l['domains'])) / 1e9 / (l['t'] - f['t']) / 8
    utils = [sum(x['util'] * len(x['cpus']) for x in a['domains']) / 8 for a in ins]
    print(f"{n}: /proc/stat busy {busy:.3f}; charged run_ns {tot:.3f} per CPU-second over {l['t']-f['t']:.1f} s; "
          f"per interval {min(rates):.3f}-{max(rates):.3f}; daemon util {min(utils):.3f}-{max(utils):.3f}")
