"""The guest's initramfs: static busybox, the virtio/9p modules, and ``init``.

``init`` mounts the host's / read-only over 9p (tag ``hostroot``), a writable 9p share (tag
``share``) at /tmp/share inside it, fresh proc/sys/dev/cgroup2 and tmpfs scratch folders,
then chroots into the host's tree and runs ``/tmp/share/run.sh``, which the host wrote for
this one boot.  One initramfs therefore serves every run; it is rebuilt only when this file
or the kernel changes.
"""

from __future__ import annotations

import hashlib
import io
import lzma
import re
from pathlib import Path

from homenode_qemu.assets import BUSYBOX, Kernel, _write_atomic

# virtio_pci gives the 9p transport its PCI device; 9pnet_virtio and 9p the file system.
ROOT_MODULES = ("virtio_pci", "9pnet_virtio", "9p")

# Printed on the serial console: the host parses these lines (and nothing else there).
MARK = "HOMENODE_GUEST"

INIT = f"""#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc; mount -t sysfs sysfs /sys; mount -t devtmpfs devtmpfs /dev
for m in $(cat /modules.order); do
  insmod /lib/modules/$m.ko || echo "{MARK}: insmod $m failed"
done
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=512000,cache=loose hostroot /mnt \\
  || {{ echo "{MARK}: 9p mount of the host root failed"; poweroff -f; }}
# A writable /tmp for the guest, in which the host's own /tmp folders stay visible at
# their paths (a checkout or virtualenv under /tmp must still be found there).
mkdir -p /hosttmp && mount -o bind /mnt/tmp /hosttmp
mount -t tmpfs -o mode=1777 tmpfs /mnt/tmp
for d in /hosttmp/*; do
  n=${{d#/hosttmp/}}
  [ -d "$d" ] && [ "$n" != share ] && mkdir -p "/mnt/tmp/$n" && mount -o bind "$d" "/mnt/tmp/$n"
done
mkdir -p /mnt/tmp/share
mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 share /mnt/tmp/share \\
  || {{ echo "{MARK}: 9p mount of the share failed"; poweroff -f; }}
mount -t proc proc /mnt/proc; mount -t sysfs sysfs /mnt/sys; mount -t devtmpfs devtmpfs /mnt/dev
mount -t cgroup2 cgroup2 /mnt/sys/fs/cgroup
# daemons (numad) write pid files and logs: give them scratch space over the read-only tree
mount -t tmpfs tmpfs /mnt/run; mount -t tmpfs tmpfs /mnt/var/log
mkdir -p /mnt/dev/shm && mount -t tmpfs tmpfs /mnt/dev/shm
echo "{MARK}: up $(cut -d' ' -f1 /proc/uptime)"
chroot /mnt /bin/sh /tmp/share/run.sh
echo "{MARK}: rc=$?"
sync; umount /mnt/tmp/share
poweroff -f
"""


def build(kernel: Kernel, build_dir: Path) -> Path:
    """The initramfs for ``kernel``, built once per (kernel, busybox, init) combination."""
    key = hashlib.sha256(INIT.encode() + kernel.version.encode()
                         + str(BUSYBOX.stat().st_mtime_ns).encode()).hexdigest()[:12]
    out = build_dir / f"initramfs-{kernel.version}-{key}.cpio"
    if out.is_file():
        return out
    order, blobs = _modules(kernel)
    files: list[tuple[str, int, bytes]] = [
        ("bin/busybox", 0o755, BUSYBOX.read_bytes()),
        ("init", 0o755, INIT.encode()),
        ("modules.order", 0o644, "".join(m + "\n" for m in order).encode()),
    ]
    files += [(f"lib/modules/{m}.ko", 0o644, blobs[m]) for m in order]
    dirs = ["bin", "dev", "proc", "sys", "mnt", "lib", "lib/modules"]
    _write_atomic(out, _cpio(dirs, files))
    return out


def _modules(kernel: Kernel) -> tuple[list[str], dict[str, bytes]]:
    """ROOT_MODULES and their dependencies, dependencies first (insmod has no resolver)."""
    index = {_norm(p.name.split(".ko")[0]): p for p in kernel.moddir.rglob("*.ko*")}
    order: list[str] = []
    blobs: dict[str, bytes] = {}

    def add(name: str) -> None:
        name = _norm(name)
        if name in blobs or name not in index:
            return      # seen already, or built into the kernel (no .ko to load)
        data = _read_module(index[name])
        blobs[name] = data
        m = re.search(rb"\x00depends=([^\x00]*)\x00", b"\x00" + data)
        for dep in filter(None, (m.group(1).decode() if m else "").split(",")):
            add(dep)
        order.append(name)

    for name in ROOT_MODULES:
        add(name)
    missing = [m for m in ROOT_MODULES if _norm(m) not in blobs]
    builtin = _builtin(kernel)
    if any(m not in builtin for m in missing):
        raise FileNotFoundError(f"modules {missing} not found under {kernel.moddir}")
    return order, blobs


def _builtin(kernel: Kernel) -> set[str]:
    try:
        text = (kernel.moddir / "modules.builtin").read_text()
    except OSError:
        return set()
    return {_norm(Path(line).name.split(".ko")[0]) for line in text.split()}


def _norm(name: str) -> str:
    return name.replace("-", "_")


def _read_module(path: Path) -> bytes:
    data = path.read_bytes()
    if path.name.endswith(".xz"):
        return lzma.decompress(data)
    if path.name.endswith(".zst"):
        # Python's stdlib has no zstd before 3.14; Debian 12's kernels ship plain .ko files.
        raise ValueError(f"{path}: zstd-compressed modules are not supported")
    return data


def _cpio(dirs: list[str], files: list[tuple[str, int, bytes]]) -> bytes:
    """A newc-format cpio archive (what the kernel unpacks into its rootfs)."""
    buf = io.BytesIO()
    ino = 1

    def entry(name: str, mode: int, data: bytes) -> None:
        nonlocal ino
        raw = name.encode() + b"\x00"
        fields = [ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(raw), 0]
        buf.write(b"070701" + b"".join(b"%08X" % v for v in fields) + raw)
        buf.write(b"\x00" * (-buf.tell() % 4))      # header + name end on a 4-byte boundary
        buf.write(data)
        buf.write(b"\x00" * (-buf.tell() % 4))      # and so does the data
        ino += 1

    for d in dirs:
        entry(d, 0o040755, b"")
    for name, perm, data in files:
        entry(name, 0o100000 | perm, data)
    entry("TRAILER!!!", 0, b"")
    return buf.getvalue()

