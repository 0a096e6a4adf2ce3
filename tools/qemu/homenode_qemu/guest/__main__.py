"""Guest entry point: run one scenario, always leave a result.json behind."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from homenode_qemu.guest import SCENARIOS, load
from homenode_qemu.guest.result import run_and_write


def main(argv: list[str]) -> int:
    name, params_path, result_path = argv
    t0 = time.monotonic()
    params = json.loads(Path(params_path).read_text())
    uptime = float(Path("/proc/uptime").read_text().split()[0])
    result: dict = {"scenario": name, "python_start_uptime_s": uptime}

    def run() -> dict:
        if name not in SCENARIOS:
            raise KeyError(f"unknown scenario {name!r}; known: {sorted(SCENARIOS)}")
        return load(name)(params)

    return run_and_write(run, result, result_path, started=t0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
