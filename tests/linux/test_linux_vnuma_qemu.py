"""A VM with guest NUMA, managed by `homenode run` on a real two-node kernel (QEMU).

Inside a two-node guest (tools/qemu, docs/qemu.md) a nested QEMU is started with two
guest nodes of 32 MiB (``prealloc=on``), one vCPU each, stopped with ``-S``.  It starts
bound to CPU 0, so every page of both backends is first-touched on node 0, and is then
unbound (``taskset -a``), so homenode sees it free.  `homenode run` must make it two
clients, home each on its own node (the policy places the slices as a set), move each
slice's vCPU thread there and only it, and move each backend's pages to its slice's
home node -- and no page of the other backend.
"""

from __future__ import annotations

import re
import sys

import pytest

from homenode_qemu import assets, run_python, two_nodes

pytestmark = [pytest.mark.qemu, pytest.mark.slow]
PAGES_32M = 32 << 20 >> 12

GUEST_TOML = """
[daemon]
interval = "0.5s"
scan_interval = "0.5s"
numa_maps_interval = "1s"
log_format = "text"
[processes]
auto = false
vms = true
[settings]
rebalance_period = 0.5
min_residence = 2.0
page_mig_delay = 0.5
page_mig_rate_max = 65536
"""

NESTED = ("qemu-system-x86_64 -name guest=nested,debug-threads=on -S -machine pc "
          "-accel tcg -nodefaults -no-user-config -display none -monitor none -serial none "
          "-m 64M -smp 2,sockets=2 "
          "-object memory-backend-ram,id=ram-node0,size=32M,prealloc=on "
          "-numa node,nodeid=0,cpus=0,memdev=ram-node0 "
          "-object memory-backend-ram,id=ram-node1,size=32M,prealloc=on "
          "-numa node,nodeid=1,cpus=1,memdev=ram-node1")


def script(python: str) -> str:
    return f"""
set -e
cat > /tmp/guest.toml <<'EOF'
{GUEST_TOML}
EOF
taskset -c 0 {NESTED} > /tmp/share/nested.log 2>&1 &
Q=$!
for i in $(seq 1200); do
  [ "$(cat /proc/$Q/task/*/comm 2>/dev/null | grep -c '^CPU ')" -ge 2 ] && break; sleep 0.1
done
taskset -a -p -c 0-1 $Q > /dev/null
echo "qemu $Q"
cat /proc/$Q/maps > /tmp/share/maps
cat /proc/$Q/numa_maps > /tmp/share/numa_maps.before
{python} -m homenode run --config /tmp/guest.toml --duration 60 --out /tmp/share/out \
  2> /tmp/share/homenode.log &
H=$!
for i in $(seq 900); do
  grep -q 'pages .*client=nested/' /tmp/share/homenode.log 2>/dev/null && break; sleep 0.1
done
sleep 15
cat /proc/$Q/numa_maps > /tmp/share/numa_maps.after
for t in /proc/$Q/task/*; do
  echo "$(basename $t)|$(cat $t/comm)|$(grep Cpus_allowed_list $t/status | cut -f2)"
done > /tmp/share/threads
kill -TERM $H; wait $H || true
kill $Q
"""


def node_pages(numa_maps: str, start: int) -> dict[int, int]:
    for line in numa_maps.splitlines():
        if int(line.split()[0], 16) == start:
            return {int(n): int(c) for n, c in re.findall(r"\bN(\d+)=(\d+)", line)}
    return {}


@pytest.fixture(scope="module")
def run():
    why = assets.missing()
    if why:
        pytest.skip(f"QEMU guest unavailable: {why}")
    r = run_python(two_nodes(), "shell", {"cmds": [script(sys.executable)], "timeout_s": 280},
                   timeout_s=360)
    assert r.ok and r.result is not None, r.why()
    cmd = r.result["commands"][0]
    assert cmd["rc"] == 0, f"{cmd['stdout']}\n{cmd['stderr']}\n{r.why()}"
    return r


def test_each_guest_node_is_homed_with_its_own_memory(run):
    share = run.share
    log = (share / "homenode.log").read_text()
    homes = dict(re.findall(r"home\s+client=nested/(\d) .* to=(\d) reason=initial", log))
    assert sorted(homes) == ["0", "1"], log[-3000:]
    assert homes["0"] != homes["1"]           # one slice per node: the set placement
    threads = [t.split("|") for t in (share / "threads").read_text().splitlines()]
    for _, comm, cpus in threads:
        m = re.match(r"CPU (\d)/TCG", comm)
        if m:                                  # node N of the guest has CPU N
            assert cpus == homes[m.group(1)], threads
        else:
            assert cpus == "0-1", threads      # QEMU's other threads: left alone
    # which mapping is which backend: as homenode found them (creation order)
    from homenode.linux import guestmem, qemu
    from homenode.linux.kernel import procfs
    layout = qemu.parse_guest_numa(NESTED.split())
    assert layout is not None
    ranges = guestmem.resolve(layout, procfs.parse_maps((share / "maps").read_text()))
    before = (share / "numa_maps.before").read_text()
    after = (share / "numa_maps.after").read_text()
    for k in ("0", "1"):
        (start, _), = ranges[f"ram-node{k}"]
        assert node_pages(before, start) == {0: PAGES_32M}     # first touched on node 0
        home = int(homes[k])
        got = node_pages(after, start)
        assert got.get(home, 0) == PAGES_32M, (k, home, got, log[-3000:])
