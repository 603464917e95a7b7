import json, sys, math, collections
d=collections.defaultdict(lambda: collections.defaultdict(list))
for l in open(sys.argv[1]):
    r=json.loads(l); m=r.get('metrics',{})
    for k,v in m.items():
        key = 'hb' if k.startswith('hb') else 'pl' if k.startswith('pl') and k[2:].isdigit() else 'cs' if (k.startswith('cs') and k[2:].isdigit()) else k
        d[r['sched']][key].append(v)
    d[r['sched']]['bpf_s'].append(sum(v[0] for v in r.get('progs',{}).values())/1e9)
def gm(x): return math.exp(sum(math.log(max(v,1e-9)) for v in x)/len(x)) if x else float('nan')
def med(x): x=sorted(x); return x[len(x)//2] if x else float('nan')
base=d.get('eevdf')
for s,m in d.items():
    out=[s]
    for k in sorted(m):
        g=gm(m[k]); r=(g/gm(base[k])) if base and k in base and gm(base[k])>0 else float('nan')
        out.append(f"{k}: gm {g:.3f} med {med(m[k]):.3f} n={len(m[k])} ({r:.2f}x)")
    print(" | ".join(out))
