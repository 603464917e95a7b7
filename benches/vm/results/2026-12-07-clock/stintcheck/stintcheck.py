import json, sys
d = sys.argv[1]
for n in ['a1', 'old1', 'broken', 'a2', 'old2', 'a3']:
    try:
        num = lambda f: float(open(f'{d}/{n}.{f}').read().split()[0])
        up0, up1, k0, k1, start = num('up0'), num('up1'), num('sched0'), num('sched1'), num('start')
    except (OSError, IndexError, ValueError) as e:
        print(n, 'missing', e); continue
    def ct(f):
        r = {}
        for l in open(f'{d}/{n}.{f}'):
            x = l.split(); r[x[0]] = (int(x[1]), int(x[2]))
        return r
    c0, c1 = ct('cpu0'), ct('cpu1')
    idle = sum(c1[k][1] - c0[k][1] for k in c0) / 100.0
    busy = 1 - idle / ((up1 - up0) * len(c0))
    L = [json.loads(l) for l in open(f'{d}/{n}.stats.jsonl')][:-1]
    ins = [l for l in L if up0 + 1.5 <= start + l['t'] <= up1]
    f, l = ins[0], ins[-1]
    span = l['t'] - f['t']
    rn = lambda x: sum(dd['run_ns'] for dd in x['domains'])
    charged = (rn(l) - rn(f)) / span
    kernel = (k1 - k0) / (up1 - up0)
    print(f"{n}: busy {busy:.3f} charged {charged/1e9:.3f} kernel {kernel/1e9:.3f} ratio {charged/kernel:.4f} span {span:.1f}")
