"""The daemon's logging: the systemd journal, JSON lines on stderr, or plain text.

* ``journal``: one datagram per record on journald's native socket
  (https://systemd.io/JOURNAL_NATIVE_PROTOCOL/), with PRIORITY, SYSLOG_IDENTIFIER, the
  code location and every ``extra=`` field as an upper-case journal field, so that
  ``journalctl HOMENODE_CLIENT=web01`` finds one client's actions.  A record the socket
  refuses (journald restarting, an entry too large) goes to stderr instead: logging
  never blocks or kills the control loop.
* ``json``: one JSON object per line on stderr: ts, level, logger, msg, and the extras.
* ``text``: ``LEVEL logger: msg key=value ...`` for a terminal.
* ``auto`` (the default): journal when stderr *is* the journal (systemd sets
  ``$JOURNAL_STREAM`` to stderr's device:inode, see systemd.exec(5)), text otherwise --
  a terminal, a pipe or a file alike, so that what an operator sees does not change with
  ``| less``.  JSON only when asked for.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import struct
import sys
from typing import Any, TextIO

from homenode.errors import InputError

JOURNAL_SOCKET = "/run/systemd/journal/socket"
IDENTIFIER = "homenode"
MODES = ("auto", "journal", "json", "text")
LEVELS = ("debug", "info", "warning", "error")
FIELD_PREFIX = "HOMENODE_"
# Attributes every LogRecord has; anything else came through ``extra=``.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message",
                                                                        "asctime"}
_PRIORITY = {logging.CRITICAL: 2, logging.ERROR: 3, logging.WARNING: 4, logging.INFO: 6,
             logging.DEBUG: 7}


def extras(record: logging.LogRecord) -> dict[str, Any]:
    """The ``extra=`` fields; a dict-valued extra (``extra={"action": {...}}``, as the
    daemon's action log passes) is spread into its own fields."""
    out: dict[str, Any] = {}
    for k, v in vars(record).items():
        if k in _STANDARD:
            continue
        if isinstance(v, dict):
            out.update((str(kk), vv) for kk, vv in v.items())
        else:
            out[k] = v
    return out


def _plain(v: Any) -> Any:
    return v if isinstance(v, str | int | float | bool) or v is None else str(v)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        obj: dict[str, Any] = {
            "ts": round(record.created, 6), "level": record.levelname.lower(),
            "logger": record.name, "msg": record.getMessage()}
        obj.update({k: _plain(v) for k, v in extras(record).items()})
        if record.exc_info:
            obj["exc"] = self.formatException(record.exc_info)
        return json.dumps(obj, ensure_ascii=False, allow_nan=False, default=str)


class TextFormatter(logging.Formatter):
    """``LEVEL logger: message key=value ...``.  A dict-valued extra (the action log's
    ``extra={"action": {...}}``) is left out: its message already reads the same, and
    the fields are there for the journal and JSON."""

    def format(self, record: logging.LogRecord) -> str:
        kv = " ".join(f"{k}={v}" for k, v in vars(record).items()
                      if k not in _STANDARD and not isinstance(v, dict))
        line = f"{record.levelname} {record.name}: {record.getMessage()}"
        return f"{line} {kv}" if kv else line


def journal_fields(record: logging.LogRecord, message: str) -> bytes:
    """One journal entry in the native protocol's wire format."""
    fields: list[tuple[str, str]] = [
        ("MESSAGE", message),
        ("PRIORITY", str(_PRIORITY.get(record.levelno, 6 if record.levelno < 30 else 3))),
        ("SYSLOG_IDENTIFIER", IDENTIFIER), ("LOGGER", record.name),
        ("CODE_FILE", record.pathname or ""), ("CODE_LINE", str(record.lineno)),
        ("CODE_FUNC", record.funcName or "")]
    fields += [(journal_key(k), str(_plain(v))) for k, v in extras(record).items()]
    out = bytearray()
    for key, value in fields:
        data = value.encode("utf-8", "replace")
        if b"\n" in data:
            # A value with a newline: the key, a newline, the length as a little-endian
            # 64-bit integer, the data, a newline.
            out += key.encode() + b"\n" + struct.pack("<Q", len(data)) + data + b"\n"
        else:
            out += key.encode() + b"=" + data + b"\n"
    return bytes(out)


def journal_key(name: str) -> str:
    """A journal field name: upper case, [A-Z0-9_], not starting with _ or a digit."""
    key = "".join(ch if ch.isascii() and ch.isalnum() else "_" for ch in name.upper())
    return FIELD_PREFIX + key.lstrip("_")


class JournalHandler(logging.Handler):
    def __init__(self, path: str = JOURNAL_SOCKET, fallback: TextIO | None = None):
        super().__init__()
        self.path = path
        self.fallback = fallback or sys.stderr
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.setblocking(False)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = self.format(record)
            self.sock.sendto(journal_fields(record, message), self.path)
        except OSError:
            try:
                self.fallback.write(TextFormatter().format(record) + "\n")
                self.fallback.flush()
            except (OSError, ValueError):
                pass
        except Exception:   # a bad extra must not kill the loop: logging's own policy
            self.handleError(record)

    def close(self) -> None:
        self.sock.close()
        super().close()


def stderr_is_journal(stream: TextIO | None = None) -> bool:
    """True when stderr is connected to the journal ($JOURNAL_STREAM = dev:inode)."""
    value = os.environ.get("JOURNAL_STREAM", "")
    dev, _, ino = value.partition(":")
    if not (dev.isdigit() and ino.isdigit()):
        return False
    try:
        st = os.fstat((stream or sys.stderr).fileno())
    except (OSError, ValueError, AttributeError):
        return False
    return st.st_dev == int(dev) and st.st_ino == int(ino)


def choose_mode(mode: str, stream: TextIO | None = None) -> str:
    if mode not in MODES:
        raise InputError("--log", mode, f"choose from {', '.join(MODES)}")
    if mode != "auto":
        return mode
    stream = stream or sys.stderr
    if stderr_is_journal(stream) and os.path.exists(JOURNAL_SOCKET):
        return "journal"
    return "text"


def setup_logging(mode: str = "auto", level: int | str = logging.INFO,
                  stream: TextIO | None = None, journal_path: str = JOURNAL_SOCKET
                  ) -> logging.Handler:
    """Configure the ``homenode`` logger tree; returns the handler it installed."""
    stream = stream or sys.stderr
    chosen = choose_mode(mode, stream)
    handler: logging.Handler
    if chosen == "journal":
        handler = JournalHandler(journal_path, fallback=stream)
    else:
        handler = logging.StreamHandler(stream)
        handler.setFormatter(JsonFormatter() if chosen == "json" else TextFormatter())
    logger = logging.getLogger("homenode")
    for old in list(logger.handlers):
        logger.removeHandler(old)
        old.close()
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
    return handler


def action_fields(action: Any, ok: bool = True) -> dict[str, Any]:
    """The ``extra=`` fields of one action's log line: client, from, to, reason, score."""
    return {"client": action.client, "src": action.src, "dst": action.dst,
            "reason": str(action.reason), "score": round(float(action.score), 4),
            "pages": getattr(action, "pages", 0), "ok": ok}
