"""What a guest boot needs, found or built once under the cache folder.

``tools/qemu/ci-setup.sh`` installs QEMU and busybox-static and unpacks a stock Debian
kernel (and numad) under the cache; everything else is derived here, lazily and cached:

* ``vmlinux-<ver>``: the ELF kernel pulled out of the xz-compressed bzImage, booted via
  PVH, which skips the in-guest decompression (3-6 s per boot under TCG);
* ``initramfs-<ver>.cpio``: busybox, the virtio/9p modules with their dependencies and
  the ``init`` script of :mod:`homenode_qemu.initramfs`;
* ``hn-worker``: the memory worker (``worker.c``) compiled with the host's gcc.

``missing()`` says in one line why a guest cannot be booted here, for tests to skip with.
"""

from __future__ import annotations

import lzma
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent.parent
WORKER_SRC = HERE.parent / "worker.c"
QEMU = "qemu-system-x86_64"
BUSYBOX = Path("/bin/busybox")
XZ_MAGIC = b"\xfd7zXZ\x00"


def cache_dir() -> Path:
    """``$HOMENODE_QEMU_CACHE`` or ``<repo>/.qemu-cache`` (git-ignored)."""
    return Path(os.environ.get("HOMENODE_QEMU_CACHE", REPO / ".qemu-cache")).resolve()


@dataclass(frozen=True)
class Kernel:
    version: str
    root: Path          # the unpacked package: boot/ and lib/modules/<version>/ below it

    @property
    def vmlinuz(self) -> Path:
        return self.root / "boot" / f"vmlinuz-{self.version}"

    @property
    def config(self) -> Path:
        return self.root / "boot" / f"config-{self.version}"

    @property
    def moddir(self) -> Path:
        for base in ("lib", "usr/lib"):
            d = self.root / base / "modules" / self.version
            if d.is_dir():
                return d
        return self.root / "lib" / "modules" / self.version

    def has_config(self, option: str) -> bool:
        try:
            return f"\n{option}=y\n" in "\n" + self.config.read_text()
        except OSError:
            return False


def find_kernel(cache: Path | None = None) -> Kernel | None:
    """The newest kernel unpacked by ci-setup.sh, or None."""
    found = []
    for vmlinuz in (cache or cache_dir()).glob("kernel/*/boot/vmlinuz-*"):
        version = vmlinuz.name.removeprefix("vmlinuz-")
        found.append(Kernel(version, vmlinuz.parent.parent))
    found.sort(key=lambda k: [int(x) if x.isdigit() else x for x in re.split(r"(\d+)", k.version)])
    return found[-1] if found else None


def numad_binary(cache: Path | None = None) -> Path | None:
    path = (cache or cache_dir()) / "numad" / "usr" / "bin" / "numad"
    return path if os.access(path, os.X_OK) else None


def busybox_is_static() -> bool:
    """The initramfs has no libc: only a static busybox runs there."""
    if not BUSYBOX.is_file():
        return False
    with BUSYBOX.open("rb") as f:
        head = f.read(1 << 16)
    # A dynamic ELF names its interpreter (ld-linux) near the start of the file.
    return b"ld-linux" not in head


def missing(cache: Path | None = None) -> str | None:
    """Why no guest can be booted here (one line), or None when everything is present."""
    if shutil.which(QEMU) is None:
        return f"{QEMU} not installed (run tools/qemu/ci-setup.sh as root)"
    if not busybox_is_static():
        return "busybox-static not installed (run tools/qemu/ci-setup.sh as root)"
    kernel = find_kernel(cache)
    if kernel is None:
        return f"no Debian kernel unpacked under {cache or cache_dir()}/kernel (run " \
               "tools/qemu/ci-setup.sh as root)"
    if not kernel.has_config("CONFIG_NUMA"):
        return f"kernel {kernel.version} was built without CONFIG_NUMA"
    if shutil.which("gcc") is None:
        return "gcc not installed (the memory worker is compiled at test time)"
    return None


def boot_image(kernel: Kernel, build: Path) -> Path:
    """The ELF vmlinux for a PVH boot when the kernel supports it, else the bzImage."""
    if not kernel.has_config("CONFIG_PVH"):
        return kernel.vmlinuz
    out = build / f"vmlinux-{kernel.version}"
    if out.is_file() and out.stat().st_size > 0:
        return out
    data = kernel.vmlinuz.read_bytes()
    start = data.find(XZ_MAGIC)
    if start < 0:
        return kernel.vmlinuz
    elf = lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(data[start:])
    if elf[:4] != b"\x7fELF":
        return kernel.vmlinuz
    _write_atomic(out, elf)
    return out


def worker_binary(build: Path) -> Path:
    """``hn-worker`` compiled from worker.c (rebuilt when the source is newer)."""
    out = build / "hn-worker"
    if out.is_file() and out.stat().st_mtime >= WORKER_SRC.stat().st_mtime:
        return out
    build.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(f".tmp{os.getpid()}")
    subprocess.run(["gcc", "-O2", "-Wall", "-o", str(tmp), str(WORKER_SRC)], check=True,
                   capture_output=True, text=True)
    tmp.replace(out)
    return out


def build_dir(cache: Path | None = None) -> Path:
    d = (cache or cache_dir()) / "build"
    d.mkdir(parents=True, exist_ok=True)
    return d


def _write_atomic(path: Path, data: bytes) -> None:
    # Two test processes may build the same file at once: never let one read half of it.
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + f".tmp{os.getpid()}")
    tmp.write_bytes(data)
    tmp.replace(path)
