"""What homenode itself set, kept across a crash: the daemon's state file.

Without it, a restarted daemon finds the CPU affinities its killed predecessor set and
cannot tell them from an operator's pin: those clients would start unmanaged, and the
originals to put back on exit would be lost.  So the daemon records, per client it
changed, the (PID, start time) or cgroup, the CPUs it set, the masks or ``cpuset.cpus``
text from before its first change, and the home node; a restart adopts a record only
when the process is the same one and its affinity is still one homenode set
(homenode.linux.adopt).

- Written atomically (a temporary file renamed over the old one), never while a dry run.
- Write-ahead: before a batch of home changes the file already names the new CPUs as
  ``pending``, so a kill between the system calls and the next write is still adopted.
- Only written when its content changes; a tick without home changes writes nothing.
- Tied to one boot (``/proc/sys/kernel/random/boot_id``): start times count from boot.
- One daemon at a time: an exclusive ``flock`` on ``<file>.lock`` for the daemon's life
  (the kernel drops it when the daemon dies, SIGKILL included).  A second daemon keeps
  no state and says so.

The default file is ``daemon.json`` next to ``homenode place``'s state
(``/run/homenode/`` as root, ``$HOMENODE_STATE_DIR`` when set); ``daemon.state_file``
in the config overrides it, ``"off"`` disables it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from homenode.linux.kernel.sysfs import format_cpulist, parse_cpulist

log = logging.getLogger("homenode.linux")

STATE_VERSION = 1
STATE_NAME = "daemon.json"
BOOT_ID = "/proc/sys/kernel/random/boot_id"


def default_path() -> Path:
    from homenode.linux.advice import default_state_path
    return default_state_path().with_name(STATE_NAME)


def boot_id(path: str = BOOT_ID) -> str:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return ""


Cpus = frozenset[int]


@dataclass
class ProcRecord:
    """One process whose affinity homenode changed."""

    pid: int
    start: int
    set_cpus: Cpus | None            # the CPUs homenode set (None: none yet)
    pending: Cpus | None = None      # being set when the record was written
    orig_mask: Cpus | None = None    # the main thread's mask before homenode's change
    orig_masks: dict[int, Cpus] = field(default_factory=dict)   # other threads' (tid)
    home: int | None = None          # kernel node id
    home_since: float = 0.0          # wall clock (time.time())
    part: int | None = None          # a VM slice: its guest node (homenode.linux.vmslice)

    @property
    def key(self) -> tuple[int, ...]:
        return (self.pid, self.start) if self.part is None else \
            (self.pid, self.start, self.part)


@dataclass
class CgroupRecord:
    """One cgroup whose ``cpuset.cpus`` (or members' affinity) homenode changed."""

    rel: str
    set_cpus: Cpus | None
    pending: Cpus | None = None
    orig_cpus_text: str | None = None
    home: int | None = None
    home_since: float = 0.0
    members: list[ProcRecord] = field(default_factory=list)   # affinity fallback


@dataclass
class Saved:
    procs: dict[tuple[int, ...], ProcRecord] = field(default_factory=dict)
    cgroups: dict[str, CgroupRecord] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.procs) + len(self.cgroups)


# --- (de)serialising -----------------------------------------------------------------------

def _cpus_out(c: Cpus | None) -> str | None:
    return None if c is None else format_cpulist(c)


def _cpus_in(v: Any) -> Cpus | None:
    if v is None:
        return None
    if not isinstance(v, str):
        raise TypeError(f"expected a CPU list, got {v!r}")
    return frozenset(parse_cpulist(v))


def _int(v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise TypeError(f"expected an integer, got {v!r}")
    return v


def _opt_int(v: Any) -> int | None:
    return None if v is None else _int(v)


def _float(v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise TypeError(f"expected a number, got {v!r}")
    return float(v)


def _proc_out(r: ProcRecord) -> dict[str, Any]:
    return {"pid": r.pid, "start": r.start, "set_cpus": _cpus_out(r.set_cpus),
            "pending": _cpus_out(r.pending), "orig_mask": _cpus_out(r.orig_mask),
            "orig_masks": {str(t): format_cpulist(m) for t, m in sorted(r.orig_masks.items())},
            "home": r.home, "home_since": round(r.home_since, 3), "part": r.part}


def _proc_in(d: Any) -> ProcRecord:
    if not isinstance(d, dict):
        raise TypeError("expected an object")
    masks = d.get("orig_masks") or {}
    if not isinstance(masks, dict):
        raise TypeError("orig_masks: expected an object")
    return ProcRecord(_int(d["pid"]), _int(d["start"]), _cpus_in(d.get("set_cpus")),
                      _cpus_in(d.get("pending")), _cpus_in(d.get("orig_mask")),
                      {int(t): _cpus_in(m) or frozenset() for t, m in masks.items()},
                      _opt_int(d.get("home")), _float(d.get("home_since", 0.0)),
                      _opt_int(d.get("part")))


def _cgroup_out(r: CgroupRecord) -> dict[str, Any]:
    return {"rel": r.rel, "set_cpus": _cpus_out(r.set_cpus), "pending": _cpus_out(r.pending),
            "orig_cpus_text": r.orig_cpus_text, "home": r.home,
            "home_since": round(r.home_since, 3), "members": [_proc_out(m) for m in r.members]}


def _cgroup_in(d: Any) -> CgroupRecord:
    if not isinstance(d, dict):
        raise TypeError("expected an object")
    rel, text, members = d["rel"], d.get("orig_cpus_text"), d.get("members") or []
    if not isinstance(rel, str) or not (text is None or isinstance(text, str)) or \
            not isinstance(members, list):
        raise TypeError("bad cgroup record")
    return CgroupRecord(rel, _cpus_in(d.get("set_cpus")), _cpus_in(d.get("pending")), text,
                        _opt_int(d.get("home")), _float(d.get("home_since", 0.0)),
                        [_proc_in(m) for m in members])


def dumps(saved: Saved, boot: str) -> str:
    return json.dumps({"version": STATE_VERSION, "boot_id": boot,
                       "procs": [_proc_out(r) for _, r in sorted(saved.procs.items())],
                       "cgroups": [_cgroup_out(r) for _, r in sorted(saved.cgroups.items())]},
                      separators=(",", ":"))


def loads(text: str | bytes, boot: str) -> Saved:
    """The records in ``text``; ValueError (one line) if it is not a state file of this
    boot.  Never any other exception, whatever the text (fuzzed)."""
    try:
        doc = json.loads(text)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise ValueError("not JSON") from None
    if not isinstance(doc, dict) or doc.get("version") != STATE_VERSION:
        raise ValueError(f"not a version {STATE_VERSION} state file")
    if doc.get("boot_id") != boot:
        raise ValueError("written before the last boot")
    procs, cgroups = doc.get("procs", []), doc.get("cgroups", [])
    if not isinstance(procs, list) or not isinstance(cgroups, list):
        raise ValueError("procs and cgroups must be lists")
    try:
        out = Saved({r.key: r for r in map(_proc_in, procs)},
                    {r.rel: r for r in map(_cgroup_in, cgroups)})
    except (KeyError, TypeError, ValueError, OverflowError) as e:
        raise ValueError(f"bad record: {e}") from None
    return out


# --- the file -------------------------------------------------------------------------------

class StateFile:
    """The state file of one daemon: lock, load once, save when the content changes."""

    def __init__(self, path: Path | str, boot: str | None = None):
        self.path = Path(path)
        self.boot = boot_id() if boot is None else boot
        self._lock_fd: int | None = None
        self._last = ""
        self.writes = 0

    def lock(self) -> bool:
        """Take the daemon's exclusive lock; False when another homenode holds it."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(self.path.with_name(self.path.name + ".lock"),
                         os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as e:
            log.warning("state file %s: %s; keeping no state", self.path, e.strerror or e)
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            log.warning("state file %s: another homenode holds its lock; this one keeps "
                        "no state", self.path)
            return False
        self._lock_fd = fd
        return True

    def unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def load(self) -> Saved:
        """The previous daemon's records; a missing, damaged or older-boot file is empty."""
        try:
            text = self.path.read_bytes()
        except FileNotFoundError:
            return Saved()
        except OSError as e:
            log.warning("state file %s: cannot read it (%s); starting without it", self.path,
                        e.strerror or e)
            return Saved()
        try:
            saved = loads(text, self.boot)
        except ValueError as e:
            log.warning("state file %s: %s; starting without it", self.path, e)
            return Saved()
        self._last = dumps(saved, self.boot)
        return saved

    def save(self, saved: Saved) -> bool:
        """Write ``saved`` atomically if it differs from what is on disk; True if written.

        A failed write is logged and retried at the next change: the daemon goes on (a
        crash before the next good write loses only the adoption of the newest homes)."""
        text = dumps(saved, self.boot)
        if text == self._last:
            return False
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
            try:
                data = text.encode()
                while data:
                    data = data[os.write(fd, data):]
            finally:
                os.close(fd)
            os.replace(tmp, self.path)
        except OSError as e:
            with contextlib.suppress(OSError):
                tmp.unlink()
            log.warning("state file %s: cannot write it (%s)", self.path, e.strerror or e)
            return False
        self._last = text
        self.writes += 1
        return True
