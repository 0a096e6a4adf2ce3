"""Scrape the Prometheus exporter over HTTP and parse what it serves."""

from __future__ import annotations

import json
import re
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from homenode.errors import InputError
from homenode.model import Reason
from homenode.ops.exporter import parse_addr, start_exporter

DASHBOARD = Path(__file__).resolve().parents[2] / "dashboards" / "grafana.json"


@pytest.fixture(scope="module")
def scraped(shift_state):
    exporter = start_exporter(shift_state.status, "127.0.0.1:0")
    try:
        with urllib.request.urlopen(exporter.url, timeout=10) as r:
            assert r.status == 200
            assert r.headers["Content-Type"].startswith("text/plain")
            text = r.read().decode()
    finally:
        exporter.close()
    samples: dict[str, list] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            samples.setdefault(s.name, []).append(s)
    return samples


def _one(samples, name, **labels):
    hits = [s for s in samples[name] if all(s.labels.get(k) == v for k, v in labels.items())]
    assert len(hits) == 1, (name, labels, hits)
    return hits[0].value


def test_node_series(scraped, shift_state):
    doc = shift_state.status.status()
    for n in doc["nodes"]:
        node = str(n["id"])
        assert _one(scraped, "homenode_node_load_ratio", node=node) == pytest.approx(n["load"])
        assert _one(scraped, "homenode_node_free_memory_bytes", node=node) == \
            pytest.approx(n["free_mib"] * 2**20)
        assert _one(scraped, "homenode_node_memory_bytes", node=node) == \
            pytest.approx(n["mem_mib"] * 2**20)
    assert len(scraped["homenode_node_load_ratio"]) == len(doc["nodes"]) == 2


def test_client_series(scraped, shift_state):
    doc = shift_state.status.status()
    assert len(scraped["homenode_client_locality_ratio"]) == len(doc["clients"]) == 16
    for c in doc["clients"]:
        assert _one(scraped, "homenode_client_locality_ratio", client=c["id"]) == \
            pytest.approx(c["locality"])
        assert _one(scraped, "homenode_client_home_node", client=c["id"]) == c["home_id"]
        assert _one(scraped, "homenode_client_remote_memory_bytes", client=c["id"]) == \
            pytest.approx(c["remote_mib"] * 2**20)
        for reason, n in c["nmig_by_reason"].items():
            assert _one(scraped, "homenode_client_home_changes_total", client=c["id"],
                        reason=reason) == n


def test_counters_and_tick_histogram(scraped, shift_state):
    run = shift_state.run
    reasons = {s.labels["reason"]: s.value for s in scraped["homenode_home_changes_total"]}
    assert set(reasons) == {str(r) for r in Reason if r is not Reason.INITIAL}
    assert {k: v for k, v in reasons.items() if v} == dict(run.by_reason)
    assert _one(scraped, "homenode_pages_migrated_total") == run.pages_requested
    assert _one(scraped, "homenode_ticks_total") == len(run.samples)
    buckets = scraped["homenode_tick_duration_seconds_bucket"]
    assert buckets[-1].labels["le"] == "+Inf"
    assert buckets[-1].value == _one(scraped, "homenode_tick_duration_seconds_count") \
        == len(run.samples)
    assert [b.value for b in buckets] == sorted(b.value for b in buckets)
    assert _one(scraped, "homenode_tick_duration_seconds_sum") > 0
    info = scraped["homenode_build_info"][0].labels
    assert info["policy"] == "esxi" and info["scenario"] == "shift"


def test_the_dashboard_uses_only_served_series(scraped):
    dash = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    exprs += [v["definition"] for v in dash["templating"]["list"] if "definition" in v]
    used = {m for e in exprs for m in re.findall(r"\bhomenode_[a-z_]+", e)}
    assert used, "the dashboard queries homenode series"
    assert used <= set(scraped), used - set(scraped)
    for wanted in ("homenode_node_load_ratio", "homenode_node_free_memory_bytes",
                   "homenode_client_locality_ratio", "homenode_client_home_node",
                   "homenode_home_changes_total", "homenode_pages_migrated_total",
                   "homenode_tick_duration_seconds_bucket"):
        assert wanted in used
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    assert all(p["gridPos"]["x"] + p["gridPos"]["w"] <= 24 for p in dash["panels"])


@pytest.mark.parametrize(("text", "expected"), [
    ("127.0.0.1:9851", ("127.0.0.1", 9851)), ("localhost:0", ("127.0.0.1", 0)),
    (":9851", ("127.0.0.1", 9851)), ("[::1]:9851", ("::1", 9851)),
])
def test_parse_addr(text, expected):
    assert parse_addr(text) == expected


@pytest.mark.parametrize(("text", "fragment"), [
    ("0.0.0.0:9851", "must be a loopback address"), ("10.1.2.3:80", "loopback"),
    ("9851", "expected HOST:PORT"), ("127.0.0.1:99999", "expected HOST:PORT"),
    ("example.com:80", "expected a loopback IP"),
])
def test_bad_addresses_are_one_line_errors(text, fragment):
    with pytest.raises(InputError, match=fragment) as e:
        parse_addr(text)
    assert str(e.value).startswith(f"--metrics = {text!r}")


def test_ipv6_loopback_serves(shift_state):
    try:
        exporter = start_exporter(shift_state.status, "[::1]:0")
    except Exception as e:   # a host with IPv6 disabled
        pytest.skip(f"no IPv6 loopback here: {e}")
    try:
        with urllib.request.urlopen(exporter.url, timeout=10) as r:
            assert b"homenode_node_load_ratio" in r.read()
    finally:
        exporter.close()
