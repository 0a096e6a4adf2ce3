"""The QEMU harness's host-side parts, without booting anything (fast, no QEMU needed)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
import tomllib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from homenode_qemu import analysis, initramfs, vm
from homenode_qemu.guest import balancers
from homenode_qemu.machine import four_nodes, two_nodes

# --- machine layouts ------------------------------------------------------------------------

def test_two_node_distances_are_10_21():
    assert two_nodes().distance == ((10, 21), (21, 10))


def test_four_nodes_are_two_sockets_10_12_32():
    d = four_nodes().distance
    assert [d[0][j] for j in range(4)] == [10, 12, 32, 32]
    assert [d[3][j] for j in range(4)] == [32, 32, 12, 10]
    assert all(d[i][j] == d[j][i] for i in range(4) for j in range(4))


def test_qemu_argv_has_one_memdev_per_node_and_every_distance(tmp_path):
    m = four_nodes(mem_per_node_mib=256, cpus_per_node=2)
    argv = m.qemu_argv(tmp_path / "k", tmp_path / "i", tmp_path)
    numa = [argv[i + 1] for i, a in enumerate(argv) if a == "-numa"]
    assert [a for a in numa if a.startswith("node")] == [
        f"node,nodeid={i},cpus={2 * i}-{2 * i + 1},memdev=m{i}" for i in range(4)]
    assert len([a for a in numa if a.startswith("dist")]) == 12     # 4 x 3 ordered pairs
    assert "dist,src=0,dst=2,val=32" in numa and "dist,src=2,dst=3,val=12" in numa
    assert argv[argv.index("-smp") + 1] == "8" and argv[argv.index("-m") + 1] == "1024M"
    assert argv[argv.index("-accel") + 1].startswith("tcg")


def test_kernel_balancing_is_off_unless_asked_for():
    assert "numa_balancing=disable" in two_nodes().cmdline()
    assert "numa_balancing=enable" in two_nodes(numa_balancing=True).cmdline()


def test_distance_matrix_must_match_node_count():
    from homenode_qemu.machine import Machine
    with pytest.raises(ValueError):
        Machine(3, ((10, 20), (20, 10)))


# --- initramfs (newc cpio) --------------------------------------------------------------------

def _read_newc(data: bytes) -> dict[str, tuple[int, bytes]]:
    """An independent newc reader: name -> (mode, data)."""
    out, pos = {}, 0
    while True:
        assert data[pos:pos + 6] == b"070701", pos
        f = [int(data[pos + 6 + 8 * i: pos + 14 + 8 * i], 16) for i in range(13)]
        mode, size, namesize = f[1], f[6], f[11]
        name = data[pos + 110: pos + 110 + namesize - 1].decode()
        pos = (pos + 110 + namesize + 3) & ~3
        body = data[pos: pos + size]
        pos = (pos + size + 3) & ~3
        if name == "TRAILER!!!":
            return out
        out[name] = (mode, body)


@given(st.dictionaries(st.from_regex(r"[a-z][a-z0-9_.]{0,20}", fullmatch=True),
                       st.binary(max_size=300), max_size=8))
def test_cpio_round_trips_names_modes_and_data(files):
    blob = initramfs._cpio(["d"], [(f"d/{n}", 0o644, b) for n, b in files.items()])
    got = _read_newc(blob)
    assert got["d"][0] == 0o040755
    for n, b in files.items():
        assert got[f"d/{n}"] == (0o100644, b)


@pytest.mark.skipif(shutil.which("cpio") is None and not os.path.exists("/bin/busybox"),
                    reason="no cpio or busybox to cross-check with")
def test_cpio_is_read_by_a_real_cpio(tmp_path):
    blob = initramfs._cpio(["bin"], [("bin/x", 0o755, b"#!/bin/sh\necho hi\n"),
                                     ("init", 0o700, b"abc")])
    cpio = ["cpio"] if shutil.which("cpio") else ["/bin/busybox", "cpio"]
    subprocess.run([*cpio, "-i", "-d"], input=blob, cwd=tmp_path, check=True,
                   capture_output=True)
    assert (tmp_path / "bin/x").read_bytes() == b"#!/bin/sh\necho hi\n"
    assert (tmp_path / "init").read_bytes() == b"abc"
    assert os.stat(tmp_path / "bin/x").st_mode & 0o777 == 0o755


def test_init_script_runs_the_share_script_and_powers_off():
    assert "chroot /mnt /bin/sh /tmp/share/run.sh" in initramfs.INIT
    assert initramfs.INIT.rstrip().endswith("poweroff -f")
    assert "ro," in initramfs.INIT.split("hostroot")[0]       # the host's / is read-only


# --- run.sh and console markers -------------------------------------------------------------

def test_run_script_bounds_the_program_and_reports_its_status():
    text = vm._run_script(["/usr/bin/python3", "-c", "print('a b')"], 50, {"X": "1 2"})
    assert "timeout -k 5 50 /usr/bin/python3 -c 'print('\"'\"'a b'\"'\"')'" in text
    assert "export X='1 2'" in text
    assert f'echo "{initramfs.MARK}: rc=$rc"' in text


def test_console_markers_first_one_wins():
    text = f"noise\n{initramfs.MARK}: start 3.5\n{initramfs.MARK}: rc=7\n{initramfs.MARK}: rc=0\n"
    assert vm._marker(text, "start", float) == 3.5
    assert vm._marker(text, "rc", int) == 7
    assert vm._marker("nothing", "rc", int) is None


# --- homenode's config as TOML ----------------------------------------------------------------

@given(st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), max_size=30),
       st.integers(-10**6, 10**6), st.booleans(),
       st.floats(allow_nan=False, allow_infinity=False, width=32))
def test_to_toml_round_trips(s, i, b, f):
    doc = {"t": {"s": s, "i": i, "b": b, "f": f, "l": [s, "x"]}}
    assert tomllib.loads(balancers.to_toml(doc)) == doc


# --- analysis ---------------------------------------------------------------------------------

CPU_NODE = {0: 0, 1: 1}


def _s(t, workers, busy=None, vm_=None):
    return {"t": t, "w": {str(p): {"cpu": c, "pages": {str(n): v for n, v in pg.items()},
                                   "tag": tag} for p, (c, pg, tag) in workers.items()},
            "busy": busy or {"0": 0, "1": 0}, "vm": vm_ or {}}


def test_locality_is_pages_on_the_node_it_runs_on():
    s = _s(0, {1: (1, {0: 25, 1: 75}, "m")})
    assert analysis.locality(s["w"]["1"], CPU_NODE) == 0.75
    assert analysis.locality({"cpu": 0, "pages": {}}, CPU_NODE) == 0.0


def test_time_to_local_ignores_a_flicker_and_needs_the_hold():
    good = {1: (0, {0: 100}, "m"), 2: (1, {1: 96, 0: 4}, "m")}
    bad = {1: (0, {0: 100}, "m"), 2: (1, {1: 50, 0: 50}, "m")}
    # t=1 is local but breaks at t=1.5 (a flicker); from t=2 it holds past HOLD_S=2 s
    samples = [_s(0, bad), _s(1, good), _s(1.5, bad), _s(2, good), _s(3, good), _s(4.5, good)]
    assert analysis.time_to_local(samples, CPU_NODE) == 2.0
    # the run ends before the hold has passed: not reached
    assert analysis.time_to_local(samples[:5], CPU_NODE) is None


def test_time_to_local_balanced_needs_the_workers_spread():
    both_on_0 = {1: (0, {0: 100}, "m"), 2: (0, {0: 100}, "m")}
    spread = {1: (0, {0: 100}, "m"), 2: (1, {1: 100}, "m")}
    samples = [_s(0, both_on_0), _s(1, both_on_0), _s(2, spread), _s(3, spread),
               _s(5, spread)]
    assert analysis.time_to_local(samples, CPU_NODE) == 0       # all local from the start
    assert analysis.time_to_local(samples, CPU_NODE, balanced_nodes=2) == 2


def test_time_to_local_only_counts_tagged_workers():
    s = [_s(t, {1: (0, {0: 100}, "m"), 2: (1, {0: 100}, "hog")}) for t in (0, 1, 2, 3)]
    assert analysis.time_to_local(s, CPU_NODE, tags=["m"]) == 0
    assert analysis.time_to_local(s, CPU_NODE) is None
    assert analysis.final_local(s, CPU_NODE) == 0.0
    assert analysis.final_local(s, CPU_NODE, tags=["m"]) == 1.0


def test_workers_per_node():
    s = _s(0, {1: (0, {}, "m"), 2: (0, {}, "m"), 3: (1, {}, "m"), 4: (1, {}, "hog")})
    assert analysis.workers_per_node(s, CPU_NODE, 2) == [2, 2]
    assert analysis.workers_per_node(s, CPU_NODE, 2, tags=["m"]) == [2, 1]


def test_node_busy_over_the_last_window():
    # node 0 busy all the time (100 jiffies/s), node 1 half of it; 10 s run, 5 s window
    samples = [_s(t, {}, {"0": 100 * t, "1": 50 * t}) for t in range(11)]
    busy = analysis.node_busy(samples, {"0": [0], "1": [1]})
    assert busy == [1.0, 0.5]
    assert analysis.imbalance(busy) == 0.5
    assert analysis.node_busy(samples[:1], {"0": [0], "1": [1]}) is None


def test_migration_rate_fits_the_steady_middle():
    # 1000 pages; 100 pages/s arrive on node 1 from t=2 (the delay) until all are there
    def pages(t):
        moved = min(1000, max(0, int(100 * (t - 2))))
        return {0: 1000 - moved, 1: moved}
    samples = [_s(t / 2, {7: (1, pages(t / 2), "m")}) for t in range(30)]
    assert analysis.migration_rate(samples, "7", 1) == pytest.approx(100, rel=0.01)
    assert analysis.migration_rate(samples[:5], "7", 1) is None


def test_pages_to_move_is_against_where_each_worker_ended():
    samples = [_s(0, {1: (0, {0: 100}, "m"), 2: (0, {0: 80, 1: 20}, "m")}),
               _s(1, {1: (0, {0: 100}, "m"), 2: (1, {1: 100}, "m"), 3: (1, {0: 10}, "m")}),
               _s(2, {1: (1, {1: 100}, "m"), 2: (1, {1: 100}, "m"), 3: (0, {0: 10}, "m")})]
    # worker 1 ended on node 1 (100 pages to move), worker 2 on node 1 (80), worker 3
    # arrived later on node 0 and ended there (0)
    assert analysis.pages_to_move(samples, CPU_NODE) == 180


def test_vm_delta():
    s = [_s(0, {}, vm_={"pgmigrate_success": 10}), _s(1, {}, vm_={"pgmigrate_success": 25})]
    assert analysis.vm_delta(s, "pgmigrate_success") == 15
    assert analysis.vm_delta([], "x") == 0


# --- the worker -------------------------------------------------------------------------------

def _report(path):
    import json
    for _ in range(500):
        try:
            rep = json.loads(path.read_text())
            if rep["phase"] != "touching":
                return rep
        except (OSError, ValueError):
            pass
        time.sleep(0.01)
    raise AssertionError("worker wrote no report")


def test_worker_runs_clean(worker_bin, tmp_path):
    rep = tmp_path / "r.json"
    p = subprocess.run([worker_bin, "--mib", "4", "--seconds", "0.5", "--report", str(rep),
                        "--tag", "t"], capture_output=True, timeout=30)
    assert p.returncode == 0, p.stderr
    r = _report(rep)
    assert r["phase"] == "done" and r["errors"] == 0 and r["passes"] >= 1 and r["tag"] == "t"


def test_worker_detects_a_corrupted_page(worker_bin, tmp_path):
    """Overwrite one page of a stopped worker through /proc/PID/mem: it must notice."""
    rep = tmp_path / "r.json"
    proc = subprocess.Popen([worker_bin, "--mib", "2", "--report", str(rep), "--report-ms", "10"])
    try:
        r = _report(rep)
        os.kill(proc.pid, signal.SIGSTOP)
        try:
            with open(f"/proc/{proc.pid}/mem", "r+b", buffering=0) as mem:
                mem.seek(r["addr"] + 7 * 4096 + 123)
                mem.write(b"\xa5" * 16)
        except PermissionError:
            pytest.skip("no ptrace access to write /proc/PID/mem here")
        finally:
            os.kill(proc.pid, signal.SIGCONT)
        time.sleep(0.3)                 # several passes over 512 pages
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 3
        final = _report(rep)
        assert final["errors"] >= 1 and final["first_error_page"] == 7
    finally:
        proc.kill()
        proc.wait()


def test_worker_counts_a_stop_as_a_stall_but_not_its_own_work(worker_bin, tmp_path):
    rep = tmp_path / "r.json"
    proc = subprocess.Popen([worker_bin, "--mib", "2", "--report", str(rep), "--report-ms", "10"])
    try:
        _report(rep)
        os.kill(proc.pid, signal.SIGSTOP)
        time.sleep(1.5)                 # > STALL_MS (1 s) without running
        os.kill(proc.pid, signal.SIGCONT)
        time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
        final = _report(rep)
        assert final["stalls"] == 1 and final["max_wait_ms"] >= 1000, final
        assert final["errors"] == 0
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.parametrize("args", [[], ["--mib", "0"], ["--mib", "1", "--touch-cpus", "x"],
                                  ["--mib", "1", "--bogus", "1"],
                                  ["--mib", "1", "--touch-node", "99"]])
def test_worker_refuses_bad_usage(worker_bin, args):
    assert subprocess.run([worker_bin, *args], capture_output=True, timeout=10).returncode == 2


def test_time_to_local_with_workers_waits_for_the_late_ones_to_be_local():
    """The mixed workload: a worker arriving after the others were local must be local
    too before the time counts."""
    early = {1: (0, {0: 100}, "m")}
    late_remote = {1: (0, {0: 100}, "m"), 2: (1, {0: 100}, "m")}
    late_local = {1: (0, {0: 100}, "m"), 2: (1, {1: 100}, "m")}
    samples = [_s(0, early), _s(1, early), _s(2, early), _s(3, late_remote),
               _s(4, late_local), _s(5, late_local), _s(7, late_local)]
    assert analysis.time_to_local(samples, CPU_NODE) == 0
    every = analysis.tagged(samples[-1], ["m"])
    assert analysis.time_to_local(samples, CPU_NODE, workers=every) == 4
