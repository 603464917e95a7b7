#!/usr/bin/env python3
# Runs inside the guest: argv[1] = fixture root. Reads each wanted sysfs file
# (read(), like `cat src > dst`) and writes it under ROOT/sys/devices/system.
import os, sys, glob, subprocess, time
t0 = time.time()
out = sys.argv[1]
S = "/sys/devices/system"
def grab(src):
    if not os.path.isfile(src): return
    try:
        with open(src, "rb") as f: data = f.read()
    except OSError:
        return
    dst = os.path.join(out, src.lstrip("/"))
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    with open(dst, "wb") as f: f.write(data)
for f in ("online", "possible", "present", "offline", "kernel_max"):
    grab(f"{S}/cpu/{f}")
for d in sorted(glob.glob(f"{S}/cpu/cpu[0-9]*")):
    grab(f"{d}/online")
    for f in glob.glob(f"{d}/topology/*"): grab(f)
    for f in glob.glob(f"{d}/cache/index*/*"):
        if os.path.basename(f) != "uevent": grab(f)
if os.path.isdir(f"{S}/node"):
    for f in ("online", "possible", "has_cpu"): grab(f"{S}/node/{f}")
    for d in glob.glob(f"{S}/node/node[0-9]*"):
        for f in ("cpumap", "cpulist", "meminfo", "distance"): grab(f"{d}/{f}")
with open(os.path.join(out, "lscpu.txt"), "w") as f:
    subprocess.run(["lscpu", "-e"], stdout=f, stderr=subprocess.STDOUT)
with open(os.path.join(out, "capture-time.txt"), "w") as f:
    f.write(f"{time.time()-t0:.1f}s uptime={open('/proc/uptime').read()}")
