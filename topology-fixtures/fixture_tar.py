#!/usr/bin/env python3
"""Each fixture's sysfs tree is stored as one tarball, NAME/sys.tar.xz
(members sys/devices/...), so the repository tracks one data file per
machine rather than thousands. This module packs a tree into that tarball
and unpacks it again; the generators (make-shapes.py, make-synthetic.sh)
use it, and so can a person adding a captured fixture:

    python3 topology-fixtures/fixture_tar.py pack NAME TREE    # TREE holds sys/
    python3 topology-fixtures/fixture_tar.py unpack NAME DEST  # DEST/sys/...

Packing is deterministic (sorted members, owner root, mtime 0, fixed xz
preset): the same tree gives the same bytes, so regenerating a fixture that
did not change leaves git with nothing to commit. File contents are kept
byte for byte (a trailing NUL stays a trailing NUL).
"""

import io
import lzma
import os
import sys
import tarfile

HERE = os.path.dirname(os.path.abspath(__file__))
TARBALL = "sys.tar.xz"


def tarball(name):
    return os.path.join(HERE, name, TARBALL)


def pack(name, tree):
    """Write tree/sys (every file and folder under it) to NAME/sys.tar.xz."""
    top = os.path.join(tree, "sys")
    if not os.path.isdir(top):
        raise SystemExit(f"fixture_tar: {top} is not a folder")
    paths = []
    for dirpath, dirs, files in os.walk(top):
        dirs.sort()
        rel = os.path.relpath(dirpath, tree)
        paths.append((rel, None))
        for f in sorted(files):
            paths.append((os.path.join(rel, f), os.path.join(dirpath, f)))
    paths.sort()
    out = tarball(name)
    os.makedirs(os.path.dirname(out), exist_ok=True)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for rel, src in paths:
            info = tarfile.TarInfo(rel)
            info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "root", "root"
            if src is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            else:
                with open(src, "rb") as f:
                    data = f.read()
                info.size, info.mode = len(data), 0o444
                tar.addfile(info, io.BytesIO(data))
    data = lzma.compress(buf.getvalue(), preset=9 | lzma.PRESET_EXTREME)
    with open(out, "wb") as f:
        f.write(data)
    return out


def unpack(name, dest):
    """Extract NAME/sys.tar.xz into dest (giving dest/sys/...)."""
    os.makedirs(dest, exist_ok=True)
    with tarfile.open(tarball(name), "r:xz") as tar:
        for m in tar.getmembers():
            if not (m.isdir() or m.isfile()) or m.name.startswith("/") or ".." in m.name.split("/"):
                raise SystemExit(f"fixture_tar: unexpected member {m.name!r} in {name}")
        if hasattr(tarfile, "data_filter"):
            tar.extractall(dest, filter="data")
        else:
            tar.extractall(dest)
    # Written read-only to look like sysfs; the generators rewrite files.
    for dirpath, _, files in os.walk(dest):
        for f in files:
            os.chmod(os.path.join(dirpath, f), 0o644)


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[1] not in ("pack", "unpack"):
        raise SystemExit(__doc__)
    cmd, name, path = sys.argv[1:]
    if cmd == "pack":
        print(pack(name, path))
    else:
        unpack(name, path)
