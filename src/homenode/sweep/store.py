"""The sweep directory: one JSON record per finished case, keyed by its content hash.

    DIR/sweep.json              the spec's name, source and case keys (of the last run)
    DIR/spec.toml               the spec's text
    DIR/cases/ab/abcdef...json  one record per case, written (atomically) as it completes
    DIR/results.parquet, results.csv, timings.csv, report.html   (see ``table``, ``report``)

A record is written once, by the driver, when its result arrives; resume skips every key
with an ``ok`` record, so a finished case never runs twice, while a failed one is tried
again.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from homenode.errors import InputError
from homenode.report import write_atomic

SWEEP_JSON = "sweep.json"
SPEC_TOML = "spec.toml"
CASES = "cases"


class Store:
    def __init__(self, root: Path):
        self.root = Path(root)

    def path(self, key: str) -> Path:
        return self.root / CASES / key[:2] / f"{key}.json"

    def exists(self) -> bool:
        return (self.root / SWEEP_JSON).is_file() or (self.root / CASES).is_dir()

    def begin(self, name: str, source: str, text: str, keys: list[str]) -> None:
        (self.root / CASES).mkdir(parents=True, exist_ok=True)
        write_atomic(self.root / SPEC_TOML, text)
        write_atomic(self.root / SWEEP_JSON, json.dumps(
            {"spec": name, "source": source, "cases": keys}, indent=1) + "\n")

    def put(self, record: dict[str, Any]) -> None:
        p = self.path(record["key"])
        p.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(p, json.dumps(record, sort_keys=True) + "\n")

    def get(self, key: str) -> dict[str, Any] | None:
        p = self.path(key)
        try:
            return json.loads(p.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return None          # a torn or foreign file: the case runs again

    def keys(self) -> list[str]:
        """The case keys of the last sweep run in this directory."""
        try:
            doc = json.loads((self.root / SWEEP_JSON).read_text())
        except FileNotFoundError:
            raise InputError("DIR", str(self.root), "no sweep here (no sweep.json)") from None
        except (OSError, ValueError) as e:
            raise InputError("DIR", str(self.root), f"unreadable sweep.json: {e}") from None
        return list(doc.get("cases", []))

    def records(self, keys: list[str]) -> list[dict[str, Any]]:
        return [r for r in (self.get(k) for k in keys) if r is not None]
