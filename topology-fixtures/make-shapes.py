#!/usr/bin/env python3
"""Writes the synthetic "shape" fixtures: machines users run that the test VM
cannot be made to look like (many CCDs, hybrid cores, a 3D V-Cache part, a
56-core LLC...). Each fixture is generated from a short description of its
cores and caches, so every file hwloc reads agrees with every other one.

Run from anywhere:  python3 topology-fixtures/make-shapes.py
It builds each fixture's sys/ tree (with the hybrid fixtures'
sys/devices/cpu_core, cpu_atom) in a temporary folder, packs it into
NAME/sys.tar.xz (fixture_tar.py) and rewrites NAME/SOURCE.txt;
expected*.json and the README paragraphs are written by hand and left alone.

The file set and formats are those of the captured fixtures (see
2node-4llc-smt): masks as the kernel's "%*pb" over nr_cpu_ids bits, lists as
"%*pbl", cpu0 without an `online` file (x86 cannot offline it), an empty
`cpu/offline`. What differs from QEMU's captures is on purpose: L1/L2 are
shared by SMT siblings, cache `id`s number the cache instances, and
`cluster_cpus` is the L2 sharing set, as on real x86 hardware. A machine
made with `old_kernel=True` gets the smaller file set of the kernels such
machines ran (2.6.2x: no core_cpus, package_cpus, die_* or cluster_* files,
no cache id, no cpu/offline or kernel_max, masks printed over NR_CPUS bits).
"""

import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fixture_tar import pack  # noqa: E402
from sysfs_format import fmt_list, fmt_mask  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
SYS = "sys/devices/system"


class Cache:
    """One cache instance: level, type, size in KiB, ways, and its CPUs."""

    def __init__(self, level, ctype, size_k, ways, cpus):
        self.level, self.type, self.size_k, self.ways = level, ctype, size_k, ways
        self.cpus = set(cpus)
        self.id = None  # numbered per level once all caches exist


class Core:
    """One core: its threads (Linux CPU ids), package, node and caches."""

    def __init__(self, threads, package, node, core_id):
        self.threads, self.package, self.node, self.core_id = threads, package, node, core_id
        self.caches = []  # index0.. in the kernel's order: L1d, L1i, L2, L3
        self.cluster = None  # set of CPUs sharing the cluster (L2 on x86)
        self.cluster_id = None


class Machine:
    def __init__(self, name, arch="x86", old_kernel=False, mask_bits=None):
        self.name, self.arch, self.old = name, arch, old_kernel
        self.mask_bits = mask_bits  # None: nr_cpu_ids (max CPU + 1)
        self.cores = []
        self.node_mem_kb = {}
        self.distances = None  # list of rows, in node order
        self.extra = {}  # path under the fixture root -> content
        self.capacity = {}  # cpu -> cpu_capacity (arm64)
        self.freq = {}  # cpu -> (cpuinfo_max_freq, base_frequency) in kHz

    def cpus(self):
        return sorted(t for c in self.cores for t in c.threads)

    def write(self, source):
        dst = os.path.join(HERE, self.name)
        os.makedirs(dst, exist_ok=True)
        tree = tempfile.mkdtemp(prefix=f"shape-{self.name}-")
        try:
            self.write_tree(tree)
            pack(self.name, tree)
        finally:
            shutil.rmtree(tree)
        with open(os.path.join(dst, "SOURCE.txt"), "w") as f:
            f.write(f"Synthetic: made by make-shapes.py ({self.name}).\n{source}")

    def write_tree(self, dst):
        cpus = self.cpus()
        nbits = self.mask_bits or max(cpus) + 1  # nr_cpu_ids: every CPU here is possible
        mask = lambda s: fmt_mask(s, nbits) + "\n"
        lst = lambda s: fmt_list(s) + "\n"

        def put(rel, text):
            p = os.path.join(dst, rel)
            os.makedirs(os.path.dirname(p), exist_ok=True)
            with open(p, "w") as f:
                f.write(text)

        cpu_dir = f"{SYS}/cpu"
        for f in ("online", "possible", "present"):
            put(f"{cpu_dir}/{f}", lst(cpus))
        if not self.old:
            put(f"{cpu_dir}/offline", "\n")
            put(f"{cpu_dir}/kernel_max", "8191\n" if self.arch == "x86" else "4095\n")

        # Cache ids: instances of one level numbered in order of first CPU.
        by_level = {}
        for core in self.cores:
            for cache in core.caches:
                by_level.setdefault((cache.level, cache.type), {})[id(cache)] = cache
        for caches in by_level.values():
            for i, cache in enumerate(sorted(caches.values(), key=lambda c: min(c.cpus))):
                cache.id = i

        for core in self.cores:
            pkg = {t for c in self.cores if c.package == core.package for t in c.threads}
            for t in core.threads:
                d = f"{cpu_dir}/cpu{t}"
                if t != 0:
                    put(f"{d}/online", "1\n")
                if t in self.capacity:
                    put(f"{d}/cpu_capacity", f"{self.capacity[t]}\n")
                if t in self.freq:
                    # Only hwloc reads these (its CPU kinds, for lstopo
                    # --cpukinds); scx_rebal takes core types from the PMUs.
                    put(f"{d}/cpufreq/cpuinfo_max_freq", f"{self.freq[t][0]}\n")
                    put(f"{d}/cpufreq/base_frequency", f"{self.freq[t][1]}\n")
                topo = {
                    "core_id": f"{core.core_id}\n",
                    "physical_package_id": f"{core.package}\n",
                    "core_cpus": mask(core.threads),
                    "core_cpus_list": lst(core.threads),
                    "thread_siblings": mask(core.threads),
                    "thread_siblings_list": lst(core.threads),
                    "core_siblings": mask(pkg),
                    "core_siblings_list": lst(pkg),
                    "package_cpus": mask(pkg),
                    "package_cpus_list": lst(pkg),
                    "cluster_cpus": mask(core.cluster),
                    "cluster_cpus_list": lst(core.cluster),
                    "cluster_id": f"{core.cluster_id}\n",
                }
                if self.old:
                    for f in ("core_cpus", "core_cpus_list", "package_cpus", "package_cpus_list",
                              "cluster_cpus", "cluster_cpus_list", "cluster_id"):
                        del topo[f]
                elif self.arch == "x86":
                    # die_* exist on x86 only; one die per package here.
                    topo.update({"die_id": "0\n", "die_cpus": mask(pkg),
                                 "die_cpus_list": lst(pkg)})
                for f, v in topo.items():
                    put(f"{d}/topology/{f}", v)
                for i, c in enumerate(core.caches):
                    line = 64
                    files = {
                        "level": f"{c.level}\n",
                        "type": f"{c.type}\n",
                        "size": f"{c.size_k}K\n",
                        "coherency_line_size": f"{line}\n",
                        "ways_of_associativity": f"{c.ways}\n",
                        "number_of_sets": f"{c.size_k * 1024 // (c.ways * line)}\n",
                        "shared_cpu_map": mask(c.cpus),
                        "shared_cpu_list": lst(c.cpus),
                    }
                    if self.arch == "x86":
                        files["physical_line_partition"] = "1\n"
                        if not self.old:
                            files["id"] = f"{c.id}\n"
                    for f, v in files.items():
                        put(f"{d}/cache/index{i}/{f}", v)

        nodes = sorted({c.node for c in self.cores})
        node_dir = f"{SYS}/node"
        for f in ("online", "possible", "has_cpu") + (("has_normal_memory",) if self.old else ()):
            put(f"{node_dir}/{f}", lst(nodes))
        for i, n in enumerate(nodes):
            ncpus = {t for c in self.cores if c.node == n for t in c.threads}
            put(f"{node_dir}/node{n}/cpumap", mask(ncpus))
            put(f"{node_dir}/node{n}/cpulist", lst(ncpus))
            row = self.distances[i] if self.distances else [10]
            put(f"{node_dir}/node{n}/distance", " ".join(map(str, row)) + "\n")
            put(f"{node_dir}/node{n}/meminfo", meminfo(n, self.node_mem_kb[n]))
        for rel, text in self.extra.items():
            put(rel, text)


def meminfo(n, total_kb):
    free = total_kb * 9 // 10
    rows = [("MemTotal", total_kb), ("MemFree", free), ("MemUsed", total_kb - free)]
    rows += [(k, 0) for k in ("SwapCached", "Active", "Inactive", "Active(anon)",
                              "Inactive(anon)", "Active(file)", "Inactive(file)",
                              "Unevictable", "Mlocked", "Dirty", "Writeback", "FilePages",
                              "Mapped", "AnonPages", "Shmem", "KernelStack", "PageTables",
                              "SecPageTables", "NFS_Unstable", "Bounce", "WritebackTmp",
                              "KReclaimable", "Slab", "SReclaimable", "SUnreclaim")]
    out = "".join(f"Node {n} {k + ':':<16}{v:>11} kB\n" for k, v in rows)
    for k in ("HugePages_Total", "HugePages_Free", "HugePages_Surp"):
        out += f"Node {n} {k + ':':<16}{0:>6}\n"
    return out


def x86_smt_machine(m, packages, cores_per_pkg, llc_cores, l1d, l1i, l2, l3_of, nodes_of,
                    threads=2):
    """Cores numbered socket by socket (CPU = global core index), SMT
    sibling k of core i at CPU i + k * total cores, as Linux numbers AMD and
    Intel servers. l3_of(pkg, llc index) gives (size KiB, ways); l3_of =
    None: no L3 at all (the L2 is the last level)."""
    total = packages * cores_per_pkg
    l3s = {}
    for p in range(packages):
        for c in range(cores_per_pkg):
            g = p * cores_per_pkg + c
            th = [g + k * total for k in range(threads)]
            core = Core(th, p, nodes_of(p), c)
            core.cluster, core.cluster_id = set(th), g  # x86 cluster = L2 = this core
            core.caches = [Cache(1, "Data", *l1d, th), Cache(1, "Instruction", *l1i, th),
                           Cache(2, "Unified", *l2, th)]
            if l3_of is not None:
                key = (p, c // llc_cores)
                if key not in l3s:
                    size, ways = l3_of(*key)
                    l3s[key] = Cache(3, "Unified", size, ways, [])
                l3s[key].cpus.update(th)
                core.caches.append(l3s[key])
            m.cores.append(core)
    return m


# --- 2 x AMD EPYC 7513 (Zen 3): 2 sockets = 2 nodes, 4 CCDs x 8 cores each ---
m = x86_smt_machine(Machine("2node-8llc-epyc7513"), packages=2, cores_per_pkg=32, llc_cores=8,
                    l1d=(32, 8), l1i=(32, 8), l2=(512, 8), l3_of=lambda p, i: (32768, 16),
                    nodes_of=lambda p: p)
m.node_mem_kb = {0: 263846712, 1: 264208396}
m.distances = [[10, 32], [32, 10]]
m.write("""Models a dual-socket AMD EPYC 7513 server (Zen 3, 32 cores / 64 threads per
socket, NPS1 so one NUMA node per socket, 4 CCDs of 8 cores each with its own
32 MB L3). Linux numbering: cores 0-31 on socket 0, 32-63 on socket 1; the SMT
sibling of CPU N is CPU N+64. L1/L2 per core, shared by its two threads.
Expected layout: node0 = L3 {0-7,64-71} {8-15,72-79} {16-23,80-87} {24-31,88-95},
node1 = L3 {32-39,96-103} {40-47,104-111} {48-55,112-119} {56-63,120-127}.
""")

# --- AMD EPYC 7742 (Zen 2): 1 socket, 16 CCXs of 4 cores ---------------------
m = x86_smt_machine(Machine("1node-16llc-epyc7742"), packages=1, cores_per_pkg=64,
                    llc_cores=4, l1d=(32, 8), l1i=(32, 8), l2=(512, 8),
                    l3_of=lambda p, i: (16384, 16), nodes_of=lambda p: 0)
m.node_mem_kb = {0: 527950660}
m.write("""Models one AMD EPYC 7742 (Zen 2, 64 cores / 128 threads, NPS1: one node),
whose 8 CCDs each hold two CCXs of 4 cores with their own 16 MB L3: 16 L3s.
Linux numbering: cores 0-63, the SMT sibling of CPU N is CPU N+64.
Expected layout: L3 k = cores 4k..4k+3 and CPUs 4k+64..4k+67, k = 0..15.
""")

# --- AMD Ryzen 9 7950X3D: 2 CCDs, CCD0 with 3D V-Cache ----------------------
m = x86_smt_machine(Machine("1node-2llc-7950x3d"), packages=1, cores_per_pkg=16, llc_cores=8,
                    l1d=(32, 8), l1i=(32, 8), l2=(1024, 8),
                    l3_of=lambda p, i: (98304, 16) if i == 0 else (32768, 16),
                    nodes_of=lambda p: 0)
m.node_mem_kb = {0: 65536000}
m.write("""Models an AMD Ryzen 9 7950X3D (Zen 4, 16 cores / 32 threads, one node):
CCD0 (cores 0-7) carries 3D V-Cache, 96 MB of L3; CCD1 (cores 8-15) has 32 MB.
Linux numbering: cores 0-15, the SMT sibling of CPU N is CPU N+16.
Expected layout: L3 96 MB {0-7,16-23}, L3 32 MB {8-15,24-31}.
""")

# --- 4-core / 8-thread laptop, one L3 (Intel i7-1165G7 style) ----------------
m = x86_smt_machine(Machine("1node-1llc-4c8t"), packages=1, cores_per_pkg=4, llc_cores=4,
                    l1d=(48, 12), l1i=(32, 8), l2=(1280, 20),
                    l3_of=lambda p, i: (12288, 12), nodes_of=lambda p: 0)
m.node_mem_kb = {0: 16131568}
m.write("""Models an Intel Core i7-1165G7 laptop (Tiger Lake, 4 cores / 8 threads, one
12 MB L3, one node). Linux numbering: the SMT sibling of CPU N is CPU N+4.
Expected layout: one L3 {0-7}.
""")

# --- Intel Xeon Platinum 8480+: 56 cores / 112 threads on one L3 ------------
m = x86_smt_machine(Machine("1node-1llc-xeon8480"), packages=1, cores_per_pkg=56,
                    llc_cores=56, l1d=(48, 12), l1i=(32, 8), l2=(2048, 16),
                    l3_of=lambda p, i: (107520, 15), nodes_of=lambda p: 0)
m.node_mem_kb = {0: 527950660}
m.write("""Models one Intel Xeon Platinum 8480+ socket (Sapphire Rapids, 56 cores / 112
threads, SNC off: one node, one 105 MB L3 for all). Linux numbering: cores 0-55,
the SMT sibling of CPU N is CPU N+56. L2 (2 MB) per core.
Expected layout: one L3 {0-111}.
""")

# --- Intel Core i7-12700H: 6 P-cores with SMT + 8 E-cores, one L3 ------------
m = Machine("hybrid-i7-12700h")
l3 = Cache(3, "Unified", 24576, 12, range(20))
for i in range(6):  # P-cores: threads 2i, 2i+1 (Linux numbers P siblings adjacent)
    th = [2 * i, 2 * i + 1]
    core = Core(th, 0, 0, 4 * i)
    core.cluster, core.cluster_id = set(th), 8 * i
    core.caches = [Cache(1, "Data", 48, 12, th), Cache(1, "Instruction", 32, 8, th),
                   Cache(2, "Unified", 1280, 10, th), l3]
    m.cores.append(core)
for k in range(2):  # E-cores: CPUs 12-15 and 16-19, each four sharing one 2 MB L2
    cl = list(range(12 + 4 * k, 16 + 4 * k))
    l2 = Cache(2, "Unified", 2048, 16, cl)
    for j, t in enumerate(cl):
        core = Core([t], 0, 0, 24 + 4 * k + j)
        core.cluster, core.cluster_id = set(cl), 48 + 8 * k
        core.caches = [Cache(1, "Data", 32, 8, [t]), Cache(1, "Instruction", 64, 8, [t]),
                       l2, l3]
        m.cores.append(core)
m.node_mem_kb = {0: 32602240}
m.extra = {"sys/devices/cpu_core/cpus": "0-11\n", "sys/devices/cpu_atom/cpus": "12-19\n"}
m.freq = {t: (4700000, 2300000) if t < 12 else (3500000, 1700000) for t in range(20)}
m.write("""Models an Intel Core i7-12700H laptop (Alder Lake): 6 P-cores with SMT
(CPUs 0-11, siblings 2i and 2i+1, 1.25 MB L2 each), 8 E-cores without SMT
(CPUs 12-19) in two clusters of 4 sharing a 2 MB L2 (cluster_cpus = the L2),
one 24 MB L3 for all 20 CPUs, one node. The core types are where Linux puts
them on hybrid Intel parts: sys/devices/cpu_core/cpus = 0-11 and
sys/devices/cpu_atom/cpus = 12-19 (the hybrid PMUs' CPU lists). cpufreq
cpuinfo_max_freq / base_frequency (P 4.7 / 2.3 GHz, E 3.5 / 1.7 GHz) are there
for hwloc's CPU kinds only.
Expected layout: one L3 {0-19} holding P {0-11} and E {12-15} {16-19} (L2s).
""")

# --- Rockchip RK3588 (arm64 DynamIQ): 4 x A55 + 4 x A76 on one L3 -------------
m = Machine("hybrid-rk3588", arch="arm64")
l3 = Cache(3, "Unified", 3072, 12, range(8))
for t in range(8):
    little = t < 4
    cluster = list(range(0, 4)) if little else ([4, 5] if t < 6 else [6, 7])
    core = Core([t], 0, 0, t if little else (t - 4) % 2)
    core.cluster, core.cluster_id = set(cluster), 0 if little else (1 if t < 6 else 2)
    l1 = 32 if little else 64
    core.caches = [Cache(1, "Data", l1, 4, [t]), Cache(1, "Instruction", l1, 4, [t]),
                   Cache(2, "Unified", 128 if little else 512, 4 if little else 8, [t]), l3]
    m.capacity[t] = 414 if little else 1024
    m.cores.append(core)
m.node_mem_kb = {0: 16110248}
m.write("""Models a Rockchip RK3588 board (arm64, device tree): 4 Cortex-A55 (CPUs 0-3,
one cpu-map cluster) and 4 Cortex-A76 (CPUs 4-5 and 6-7, two clusters), each core
with its own L2, one 3 MB DSU L3 for all 8. No SMT, no die_* files (x86 only),
no cache id (device tree). Core types only as cpuN/cpu_capacity: 414 for the
A55s, 1024 for the A76s.
Expected layout: one L3 {0-7} holding little {0-3} and big {4-7}.
""")

# --- 8 x dual-core AMD Opteron 865 (K8): 8 sockets = 8 nodes, no shared cache -
# Each core has its own 1 MB L2 and there is no L3: no cache is shared by two
# CPUs anywhere. The kernel of its day: old file set, masks over NR_CPUS = 32.
m = x86_smt_machine(Machine("8node-nocache-opteron", old_kernel=True, mask_bits=32),
                    packages=8, cores_per_pkg=2, llc_cores=2, l1d=(64, 2), l1i=(64, 2),
                    l2=(1024, 16), l3_of=None, nodes_of=lambda p: p, threads=1)
m.node_mem_kb = {n: 8388608 for n in range(8)}
m.distances = [[10 if i == j else 20 for j in range(8)] for i in range(8)]
m.write("""Models an 8-socket server of dual-core AMD Opteron 865 (K8, 2005): one NUMA
node per socket, 2 cores per socket without SMT, each core with its own 64 KB
L1d/L1i and 1 MB L2, no L3, so no cache is shared by any two CPUs. Files as a
2.6.2x kernel shows them: topology/ has only core_id, physical_package_id,
core_siblings(_list) and thread_siblings(_list); caches have no id; masks are
printed over NR_CPUS = 32 bits; no cpu/offline or kernel_max; node/ has
has_normal_memory. SLIT distances 10 local, 20 remote (as such firmware reported).
Expected layout: CPUs 2n and 2n+1 on node n, n = 0..7; every L2 holds one CPU.
""")

print("ok")
