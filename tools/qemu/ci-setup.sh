#!/usr/bin/env bash
# ci-setup.sh - install what the QEMU multi-node tests need (run as root by .ci/run).
#
#  - qemu-system-x86 and busybox-static from Debian (installed);
#  - a stock Debian kernel: `apt-get download linux-image-<ver>-amd64`, unpacked (not installed)
#    under $HOMENODE_QEMU_CACHE/kernel/<ver>/, keeping only boot/ and the module folders that the
#    guest's initramfs may need (virtio, 9p, fs);
#  - numad's .deb, unpacked (not installed) under $HOMENODE_QEMU_CACHE/numad/, for
#    bench/kernel_compare.py.
# Idempotent: whatever is already there is kept.  Without root or apt-get it only says what is
# missing, and the QEMU tests then skip with that reason.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
CACHE=${HOMENODE_QEMU_CACHE:-$REPO/.qemu-cache}
log() { echo "[qemu ci-setup] $*" >&2; }
# Another engineer or CI step may hold the dpkg lock for a while: wait instead of failing.
APT=(apt-get -q -y -o DPkg::Lock::Timeout=600 --no-install-recommends)

if ! command -v apt-get >/dev/null || [ "$(id -u)" != 0 ]; then
  log "not root or no apt-get: skipping (the QEMU tests skip with the reason)"; exit 0
fi
export DEBIAN_FRONTEND=noninteractive

need=()
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
[ -x /bin/busybox ] && ! ldd /bin/busybox >/dev/null 2>&1 || need+=(busybox-static)
if [ ${#need[@]} -gt 0 ]; then
  log "installing ${need[*]}"
  "${APT[@]}" install "${need[@]}" >/dev/null
fi

mkdir -p "$CACHE/kernel" "$CACHE/dl"
if ! ls "$CACHE"/kernel/*/boot/vmlinuz-* >/dev/null 2>&1; then
  pkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
  [ -n "$pkg" ] || { log "no linux-image-*-amd64 package known to apt (apt-get update?)"; exit 1; }
  kver=${pkg#linux-image-}
  log "downloading $pkg (unpacked, not installed)"
  # apt's _apt user must be able to write the download folder, else it warns and runs as root
  chmod 0777 "$CACHE/dl"
  (cd "$CACHE/dl" && apt-get -q download "$pkg" >/dev/null)
  root="$CACHE/kernel/$kver.tmp"; rm -rf "$root"; mkdir -p "$root"
  # boot/ (vmlinuz, config) and the module folders the initramfs draws from: ~40 MB of ~400 MB
  dpkg-deb --fsys-tarfile "$CACHE/dl/${pkg}"_*.deb | tar -x -C "$root" --wildcards './boot/*' \
    '*/modules/*/kernel/drivers/virtio/*' '*/modules/*/kernel/net/9p/*' '*/modules/*/kernel/fs/*' \
    '*/modules/*/modules.builtin'
  mv "$root" "$CACHE/kernel/$kver"
  rm -f "$CACHE/dl/${pkg}"_*.deb
fi

if [ ! -x "$CACHE/numad/usr/bin/numad" ]; then
  log "downloading numad (unpacked, not installed)"
  chmod 0777 "$CACHE/dl"
  (cd "$CACHE/dl" && apt-get -q download numad >/dev/null)
  rm -rf "$CACHE/numad.tmp"; mkdir -p "$CACHE/numad.tmp"
  dpkg-deb -x "$CACHE"/dl/numad_*.deb "$CACHE/numad.tmp"
  mv "$CACHE/numad.tmp" "$CACHE/numad"; rm -f "$CACHE"/dl/numad_*.deb
fi
log "ready: $(ls "$CACHE"/kernel/*/boot/vmlinuz-* | head -1), numad $(ls "$CACHE"/numad/usr/bin/numad)"
