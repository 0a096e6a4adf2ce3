"""bench/kernel_compare.py's arithmetic, without a guest: medians and ranges over runs,
the table cells, py-spy's top frames, and bad arguments refused in one line."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import kernel_compare as kc

BASE = {"time_to_95_s": 3.0, "time_to_95_balanced_s": 4.0, "final_local": 0.99,
        "node_busy": [0.5, 0.5], "workers_per_node": [1, 1], "pages_migrated": 100,
        "pages_needed_for_final_placement": 100, "migrated_ratio": 1.0,
        "numa_hint_faults": 0, "balancer_cpu_s": 1.0, "cpu_us_per_page": 10.0,
        "workers_sys_s": 0.1, "tick_gap_max_s": 0.6, "tick_gap_p99_s": 0.55,
        "balancer_ready_s": 5.0, "numpy_import_s": 2.0}


def test_a_run_that_never_settled_counts_as_the_longest():
    runs = [dict(BASE), dict(BASE, time_to_95_s=5.0, balancer_cpu_s=2.0),
            dict(BASE, time_to_95_s=None, balancer_cpu_s=3.0)]
    m = kc.median_of(runs)
    assert m["time_to_95_s"] == 5.0 and m["time_to_95_s_range"] == [3.0, None]
    assert m["balancer_cpu_s"] == 2.0 and m["balancer_cpu_s_range"] == [1.0, 3.0]
    assert m["workers_per_node"] == [1, 1]
    cells = kc.row("homenode", m)
    assert cells[1] == "5.0 (3.0-never)" and cells[10] == "2.00 (1.00-3.00)"
    assert len(cells) == len(kc.TABLE)


def test_mostly_unsettled_runs_give_never():
    m = kc.median_of([dict(BASE, time_to_95_s=None), dict(BASE, time_to_95_s=None),
                      dict(BASE)])
    assert m["time_to_95_s"] is None and kc.row("x", m)[1].startswith("never")


def test_top_frames_are_self_samples_per_function():
    raw = "thread;main;f (a.py:1);g (a.py:2) 30\nthread;main;f (a.py:1) 10\nbad line\n"
    assert kc.top_frames(raw, 2) == [" 75.0 %  g (a.py:2)", " 25.0 %  f (a.py:1)"]


@pytest.mark.parametrize("argv", [["--repeat", "0"], ["--set", "page_mig_slice"]])
def test_bad_arguments_are_one_line_and_exit_2(argv, capsys):
    assert kc.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("kernel_compare: ")
