"""CPU sets as the kernel prints them in sysfs, for the fixture generators
(make-synthetic.sh, make-shapes.py): lists ("%*pbl", e.g. 0-3,8) and masks
("%*pb" over nr_cpu_ids bits: 32-bit hex chunks joined by commas, the
leading chunk only as wide as the bits it holds)."""


def parse_list(s):
    out = set()
    for part in s.strip().split(","):
        if not part:
            continue
        a, _, b = part.partition("-")
        out.update(range(int(a), int(b or a) + 1))
    return out


def fmt_list(cpus):
    cpus, parts, i = sorted(cpus), [], 0
    while i < len(cpus):
        j = i
        while j + 1 < len(cpus) and cpus[j + 1] == cpus[j] + 1:
            j += 1
        parts.append(str(cpus[i]) if i == j else f"{cpus[i]}-{cpus[j]}")
        i = j + 1
    return ",".join(parts)


def parse_mask(s):
    v = int(s.strip().replace(",", ""), 16)
    return {i for i in range(v.bit_length()) if v >> i & 1}


def fmt_mask(cpus, nbits):
    v = sum(1 << c for c in cpus)
    chunks = []
    for lo in range(0, nbits, 32):
        width = min(32, nbits - lo)
        chunks.append(f"{(v >> lo) & ((1 << width) - 1):0{(width + 3) // 4}x}")
    return ",".join(reversed(chunks))
