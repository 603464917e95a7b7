#!/bin/sh
# Re-creates the synthetic fixtures made by editing captured ones: sparse-ids,
# offline-cpus, no-numa, no-cpu-online and nul-terminated, from 2node-4llc-smt,
# 2node-2llc and 3node-6llc. Run from anywhere:
#   sh topology-fixtures/make-synthetic.sh
# Each source's sys.tar.xz is unpacked into a temporary folder, edited there
# and packed into the new fixture's sys.tar.xz (fixture_tar.py); SOURCE.txt is
# rewritten too. README paragraphs and expected*.json are kept as they are.
set -eu
cd "$(dirname "$0")"
PYTHONPATH=. exec python3 - <<'PY'
import os, re, shutil, tempfile

SYS = "sys/devices/system"

from fixture_tar import pack, unpack
from sysfs_format import fmt_list, fmt_mask, parse_list, parse_mask

MASKS = {"core_cpus", "core_siblings", "die_cpus", "package_cpus",
         "thread_siblings", "cluster_cpus", "book_siblings", "drawer_siblings",
         "shared_cpu_map", "cpumap"}
LISTS = {"shared_cpu_list", "cpulist"}
WORK = tempfile.mkdtemp(prefix="make-synthetic-")

def cpuset_files(root):
    """(path, kind) of every file under root/sys holding a CPU set."""
    base = os.path.join(root, SYS)
    for dirpath, _, files in os.walk(base):
        for f in files:
            p = os.path.join(dirpath, f)
            rel = os.path.relpath(p, base)
            if rel in ("cpu/online", "cpu/possible", "cpu/present", "cpu/offline"):
                yield p, "list"
            elif f in MASKS:
                yield p, "mask"
            elif f in LISTS or (f.endswith("_list") and "/topology/" in p):
                yield p, "list"

def rewrite(root, fn, nbits, skip=lambda p: False):
    """Apply fn(set)->set to every CPU set file, keeping its format."""
    for p, kind in cpuset_files(root):
        if skip(p):
            continue
        s = open(p).read()
        cpus = parse_list(s) if kind == "list" else parse_mask(s)
        new = fn(cpus)
        open(p, "w").write((fmt_list(new) if kind == "list" else fmt_mask(new, nbits)) + "\n")

def fresh(src, dst):
    """A work tree for dst holding the sys/ of fixture src (or of a work
    tree already made for src in this run)."""
    tree = os.path.join(WORK, dst)
    if os.path.isdir(os.path.join(WORK, src)):
        shutil.copytree(os.path.join(WORK, src), tree)
    else:
        unpack(src, tree)
    return tree

def done(dst, tree, text):
    pack(dst, tree)
    open(os.path.join(dst, "SOURCE.txt"), "w").write(text)

# --- sparse-ids: 2node-4llc-smt with cpu i renamed to NEW[i] ---------------
NEW = [0, 1, 4, 5, 8, 9, 12, 13]
src, dst = "2node-4llc-smt", "sparse-ids"
tree = fresh(src, dst)
cpu = os.path.join(tree, SYS, "cpu")
for i in range(len(NEW)):
    os.rename(os.path.join(cpu, f"cpu{i}"), os.path.join(cpu, f"tmp{i}"))
for i, n in enumerate(NEW):
    os.rename(os.path.join(cpu, f"tmp{i}"), os.path.join(cpu, f"cpu{n}"))
# nr_cpu_ids becomes max id + 1 = 14, so masks are 4 hex digits wide.
rewrite(tree, lambda s: {NEW[c] for c in s}, max(NEW) + 1)
done(dst, tree, f"""Synthetic: made by make-synthetic.sh from {src}.
CPU i of {src} renamed to {NEW}[i] (cpuN directories, every
mask and list: cpu/online, possible, present, topology/*, cache/index*/shared_cpu_*,
node/nodeN/cpumap and cpulist). Masks are printed over nr_cpu_ids = {max(NEW) + 1} bits.
Expected layout: node0 = 0,1,4,5 (L3 0,1 and L3 4,5), node1 = 8,9,12,13 (L3 8,9 and L3 12,13).
""")

# --- offline-cpus: 2node-4llc-smt with CPUs 3 and 6 offline ------------------
OFF = {3, 6}
src, dst = "2node-4llc-smt", "offline-cpus"
tree = fresh(src, dst)
cpu = os.path.join(tree, SYS, "cpu")
for c in sorted(OFF):
    for sub in ("topology", "cache"):       # the kernel removes both on offline
        shutil.rmtree(os.path.join(cpu, f"cpu{c}", sub))
    open(os.path.join(cpu, f"cpu{c}", "online"), "w").write("0\n")
online = parse_list(open(os.path.join(cpu, "online")).read()) - OFF
def drop_offline(s):
    return s - OFF
# cpu/online, topology/* and node cpumap/cpulist lose the offline CPUs;
# possible/present keep them, and so do the remaining CPUs' cache
# shared_cpu_map/list: in the real capture (6.12, QEMU's AMD-style cacheinfo)
# cpu2's L3 still read 2-3 and cpu7's 6-7 after cpu3 and cpu6 went offline.
keep = ("/cpu/possible", "/cpu/present", "/shared_cpu_map", "/shared_cpu_list")
rewrite(tree, drop_offline, 8, skip=lambda p: p.endswith(keep))
open(os.path.join(cpu, "offline"), "w").write(fmt_list(OFF) + "\n")
done(dst, tree, f"""Synthetic: made by make-synthetic.sh from {src}.
CPUs {fmt_list(OFF)} offline, as the 6.12 kernel shows it (checked against a real
capture after `echo 0 > /sys/devices/system/cpu/cpu{{3,6}}/online` in the same VM shape):
cpu/online = {fmt_list(online)}, cpu/offline = {fmt_list(OFF)}, possible/present unchanged,
cpuN/online = 0 and no topology/ or cache/ for the offline CPUs, the offline CPUs dropped
from every topology/* sibling mask and list and from node cpumap/cpulist, but still
listed in the remaining CPUs' cache shared_cpu_map/list (cpu2 L3 = 2-3, cpu7 L3 = 6-7),
as the real kernel left them. Only node meminfo differs from that real capture.
""")

# --- no-cpu-online: offline-cpus without the CPU-wide lists -------------------
src, dst = "offline-cpus", "no-cpu-online"
tree = fresh(src, dst)
for f in ("online", "offline", "possible", "present"):
    os.remove(os.path.join(tree, SYS, "cpu", f))
done(dst, tree, f"""Synthetic: made by make-synthetic.sh from {src} (itself made from 2node-4llc-smt)
by deleting sys/devices/system/cpu/{{online,offline,possible,present}}, as in snapshots
of kernels before 2.6.26 or captures that missed them. What is left says which CPUs
are online: the cpuN folders, each cpuN/online (cpu3 and cpu6 read 0, cpu0 has none:
x86 cannot offline it) and the topology/ folders of the online CPUs only. hwloc
derives the online set from exactly these; the expected domains are those of
{src}: node0 {{0,1}}, {{2}}; node1 {{4,5}}, {{7}}.
""")

# --- no-numa: 2node-2llc without sys/devices/system/node ----------------------
src, dst = "2node-2llc", "no-numa"
tree = fresh(src, dst)
shutil.rmtree(os.path.join(tree, SYS, "node"))
done(dst, tree, f"""Synthetic: made by make-synthetic.sh from {src} by removing
sys/devices/system/node entirely (as on a kernel without CONFIG_NUMA).
CPU topology as in {src}: L3 0-3 and L3 4-7.
""")

# --- nul-terminated: 3node-6llc with a NUL after every file's newline ----------
src, dst = "3node-6llc", "nul-terminated"
tree = fresh(src, dst)
n = 0
for dirpath, _, files in os.walk(os.path.join(tree, "sys")):
    for f in files:
        p = os.path.join(dirpath, f)
        data = open(p, "rb").read()
        assert data.endswith(b"\n") and b"\0" not in data, p
        open(p, "wb").write(data + b"\0")
        n += 1
done(dst, tree, f"""Synthetic: made by make-synthetic.sh from {src}: every one of its {n} files
gets a NUL byte after its final newline (node/online reads "0-2\\n\\0", each cpumap
"..\\n\\0", each distance "10 20 20\\n\\0"), as several real machines' snapshots show
in node/online, possible, has_cpu and has_normal_memory (and one arm64 snapshot in
every node cpumap and cpulist). Everything else as in {src}; so are the domains.
""")

shutil.rmtree(WORK)
print("ok: sparse-ids offline-cpus no-cpu-online no-numa nul-terminated")
PY
