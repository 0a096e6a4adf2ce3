"""Code that runs inside the guest (``python -m homenode_qemu.guest SCENARIO PARAMS RESULT``).

Each scenario is a function ``params -> result`` registered in :data:`SCENARIOS`; the
result is written as JSON for the host.  Scenario modules import lazily, so a scenario that
needs the Linux backend does not stop the others from running.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

# scenario name -> "module:function" under homenode_qemu.guest
SCENARIOS: dict[str, str] = {
    "kernel": "kernel:run",
    "shell": "shell:run",
    "workload": "workload:run",
    "churn": "churn:run",
}


def load(name: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    module, _, func = SCENARIOS[name].partition(":")
    return getattr(importlib.import_module(f"homenode_qemu.guest.{module}"), func)
