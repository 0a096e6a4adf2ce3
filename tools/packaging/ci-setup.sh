#!/usr/bin/env bash
# CI: build the Debian package with Debian's tooling and install it on this machine, so
# that tests/packaging/test_package.py checks the installed package (`homenode --version`,
# `systemd-analyze verify` on its unit, its files). About 3-4 minutes, most of it pip
# filling the package's virtual environment.
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v apt-get >/dev/null || { echo "packaging: no apt-get, Debian package not built"; exit 0; }
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -qq --no-install-recommends debhelper dh-virtualenv python3-venv \
  python3-dev build-essential systemd man-db >/dev/null
out=$(mktemp -d)
tools/packaging/build-deb.sh "$out" >"$out/build.log" 2>&1 || { tail -40 "$out/build.log"; exit 1; }
apt-get install -y -qq "$out"/homenode_*.deb >/dev/null
/usr/bin/homenode --version
systemd-analyze verify /lib/systemd/system/homenode.service
rm -rf "$out"
