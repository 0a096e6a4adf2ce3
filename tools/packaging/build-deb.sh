#!/usr/bin/env bash
# Build the Debian package from this checkout with Debian's own tooling
# (dpkg-buildpackage, debhelper, dh-virtualenv): packaging/debian/ becomes the source
# tree's debian/. The .deb lands in OUT (default: dist/).
# Build dependencies: apt-get install debhelper dh-virtualenv python3-venv python3-dev
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
out=${1:-$root/dist}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
src="$work/homenode"
mkdir -p "$src" "$out"
# The tracked files (and new ones not ignored), as a clean clone would have them.
git -C "$root" ls-files -z --cached --others --exclude-standard |
  (cd "$root" && tar --null -T - -cf -) | tar -C "$src" -xf -
cp -r "$src/packaging/debian" "$src/debian"
(cd "$src" && dpkg-buildpackage -us -uc -b)
mv "$work"/homenode_*.deb "$out"/
ls "$out"/homenode_*.deb
