"""The syscall module's tables and errno translation, and the action log's lines."""

from __future__ import annotations

import errno
import json
import logging

import numpy as np
import pytest
from linux_support import SYS_SPARSE

from homenode.linux.actionlog import ActionLog, format_text
from homenode.linux.host import Result
from homenode.linux.kernel import errors, numa_syscalls, sysfs
from homenode.model import Client, MigratePages, Reason, SetHome, Snapshot
from homenode.ops.logging import JsonFormatter


@pytest.mark.parametrize("err, cls, transient, gone", [
    (errno.ESRCH, errors.ProcessGone, False, True),
    (errno.ENOENT, errors.ProcessGone, False, True),
    (errno.EPERM, errors.AccessDenied, False, False),
    (errno.EACCES, errors.AccessDenied, False, False),
    (errno.EBUSY, errors.Busy, True, False),
    (errno.ENOMEM, errors.OutOfMemory, True, False),
    (errno.EINVAL, errors.InvalidArgument, True, False),
    (errno.ENODEV, errors.InvalidArgument, True, False),
    (errno.EIO, errors.SysError, False, False),
])
def test_errno_becomes_a_clear_exception(err, cls, transient, gone):
    e = errors.from_errno(err, "move_pages")
    assert type(e) is cls and e.errno == err
    assert (e.transient, e.gone) == (transient, gone)
    assert str(e).startswith(f"[Errno {err}] move_pages: {errno.errorcode[err]}")


def test_syscall_numbers():
    assert numa_syscalls.syscall_number("migrate_pages", "x86_64") == 256
    assert numa_syscalls.syscall_number("move_pages", "x86_64") == 279
    assert numa_syscalls.syscall_number("migrate_pages", "aarch64") == 238
    assert numa_syscalls.syscall_number("move_pages", "aarch64") == 239
    with pytest.raises(numa_syscalls.Unsupported):
        numa_syscalls.syscall_number("move_pages", "riscv64")


def test_nodemask_bits_and_maxnode():
    mask, maxnode = numa_syscalls.nodemask([0, 2])
    assert list(mask) == [0b101] and maxnode == 65        # one more than the bits given
    mask, maxnode = numa_syscalls.nodemask([65], words=1)
    assert list(mask) == [0, 2] and maxnode == 129
    with pytest.raises(ValueError):
        numa_syscalls.nodemask([])


def test_move_pages_of_nothing():
    assert numa_syscalls.move_pages(0, np.zeros(0, np.uint64), None).size == 0


def _snap() -> Snapshot:
    topo = sysfs.read_topology(SYS_SPARSE)
    c = Client("pid:42", "vm1", vcpus=2)
    return Snapshot(5.0, topo, (c,), np.array([1]), np.zeros(1), np.zeros(1), np.zeros(1),
                    np.zeros((1, 3), np.int64), topo.mem_pages.copy())


def test_action_lines_name_kernel_node_ids():
    snap = _snap()
    home = SetHome("pid:42", 0, 1, Reason.BALANCE, 48.12, "imbalance 0.5 -> 0.1")
    pages = MigratePages("pid:42", 0, 1, 64000, Reason.MEMORY, 32000.0)
    records: list[logging.LogRecord] = []
    logger = logging.getLogger("test.actions")
    logger.handlers[:] = []
    logger.addHandler(type("H", (logging.Handler,), {"emit": lambda s, r: records.append(r)})())
    logger.setLevel(logging.INFO)
    from homenode.model import Decision
    ActionLog(False, logger).decision(snap, Decision([home, pages]),
                                      [Result(home, True), Result(pages, True, "", 63987)])
    lines = [r.getMessage() for r in records]
    # index 1 is kernel node 2 on this sparse host
    assert lines == [
        "home  client=vm1 id=pid:42 from=0 to=2 reason=balance score=48.120 ok "
        "(imbalance 0.5 -> 0.1)",
        "pages client=vm1 id=pid:42 from=0 to=2 reason=memory score=32000.000 pages=64000 "
        "moved=63987 ok"]
    obj = json.loads(JsonFormatter().format(records[1]))
    assert (obj["kind"], obj["from"], obj["to"], obj["moved"]) == ("pages", 0, 2, 63987)


def test_dry_run_and_failed_lines():
    snap = _snap()
    a = SetHome("pid:42", -1, 2, Reason.INITIAL, 0.5)
    from homenode.linux.actionlog import action_fields
    assert format_text(action_fields(snap, a, Result(a, True, "dry-run"), True)) == \
        "dry-run: home  client=vm1 id=pid:42 from=- to=3 reason=initial score=0.500 ok"
    assert format_text(action_fields(snap, a, Result(a, False, "unmanaged: pinned"), False)) \
        .endswith("failed: unmanaged: pinned")


def test_pages_actions_that_move_nothing_are_logged_once():
    snap = _snap()
    from homenode.model import Decision
    records: list[str] = []
    logger = logging.getLogger("test.actions.quiet")
    logger.handlers[:] = []
    logger.addHandler(type("H", (logging.Handler,),
                           {"emit": lambda s, r: records.append(r.getMessage())})())
    logger.setLevel(logging.INFO)
    log = ActionLog(False, logger)
    stuck = MigratePages("pid:42", 0, 1, 100)
    for _ in range(5):                      # the policy asks every tick; nothing moves
        log.decision(snap, Decision([stuck]), [Result(stuck, True, "", 0)])
    assert len(records) == 1 and records[0].endswith("moved=0 ok [nothing moved; repeats "
                                                      "not logged]")
    home = SetHome("pid:42", 1, 0, Reason.BALANCE, 1.0)
    log.decision(snap, Decision([home, stuck]), [Result(home, True), Result(stuck, True)])
    assert len(records) == 3                # a new home: the next pages line is logged
