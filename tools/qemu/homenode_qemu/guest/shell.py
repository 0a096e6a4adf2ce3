"""Scenario "shell": run commands in the guest, record their output, exit status and time.

For looking around a guest by hand (``python -m homenode_qemu shell CMD ...``) and for
measuring start-up costs under emulation.
"""

from __future__ import annotations

import subprocess
import time
from typing import Any

CMD_TIMEOUT_S = 120.0


def run(params: dict[str, Any]) -> dict[str, Any]:
    out = []
    for cmd in params.get("cmds", []):
        t0 = time.monotonic()
        try:
            p = subprocess.run(cmd, shell=True, capture_output=True, text=True,
                               timeout=params.get("timeout_s", CMD_TIMEOUT_S))
            rc, stdout, stderr = p.returncode, p.stdout, p.stderr
        except subprocess.TimeoutExpired as e:
            rc, stdout, stderr = None, str(e.stdout or ""), "timeout"
        out.append({"cmd": cmd, "rc": rc, "s": round(time.monotonic() - t0, 3),
                    "stdout": stdout[-20000:], "stderr": stderr[-5000:]})
    return {"commands": out}
