"""What homenode itself set, kept across a crash: the daemon's state file.

Without it, a restarted daemon finds the CPU affinities its killed predecessor set and
cannot tell them from an operator's pin: those clients would start unmanaged, and the
originals to put back on exit would be lost.  So the daemon records, per client it
changed, the (PID, start time) or cgroup, the CPUs it set, the masks or ``cpuset.cpus``
text from before its first change, and the home node; a restart adopts a record only
when the process is the same one and its affinity is still one homenode set
(homenode.linux.adopt).  Each client kind writes and reads its own section of the file
(``procs``, ``cgroups``: its record type and codec live in its module in
homenode.linux.kinds); this module holds the file itself.

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
from pathlib import Path
from typing import Any

from homenode.linux.kinds import SECTIONS

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


class Saved:
    """The records of a state file: section (one per client kind that keeps records,
    homenode.linux.kinds.SECTIONS) -> key -> record."""

    def __init__(self, sections: dict[str, dict[Any, Any]] | None = None):
        self.sections: dict[str, dict[Any, Any]] = dict(sections or {})

    def section(self, name: str) -> dict[Any, Any]:
        return self.sections.setdefault(name, {})

    def __len__(self) -> int:
        return sum(len(s) for s in self.sections.values())

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Saved):
            return NotImplemented
        return {k: v for k, v in self.sections.items() if v} == \
            {k: v for k, v in other.sections.items() if v}

    def __repr__(self) -> str:
        return f"Saved({self.sections!r})"


# --- (de)serialising -----------------------------------------------------------------------

def dumps(saved: Saved, boot: str) -> str:
    doc: dict[str, Any] = {"version": STATE_VERSION, "boot_id": boot}
    for name, kind in SECTIONS.items():
        doc[name] = [kind.dump(r) for _, r in sorted(saved.sections.get(name, {}).items())]
    return json.dumps(doc, separators=(",", ":"))


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
    lists = {name: doc.get(name, []) for name in SECTIONS}
    if not all(isinstance(v, list) for v in lists.values()):
        raise ValueError(f"{' and '.join(SECTIONS)} must be lists")
    try:
        out = Saved({name: {kind.key(r): r for r in map(kind.load, lists[name])}
                     for name, kind in SECTIONS.items()})
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
