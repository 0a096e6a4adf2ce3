"""Prometheus exporter: the status model as metric families, collected at scrape time.

Nothing is updated per tick: a scrape asks the ``StatusRecorder`` for its current view
and turns it into families, so the control loop pays nothing for the exporter and a
scrape always sees one consistent sample.  The series are listed in docs/operations.md
and drawn by dashboards/grafana.json.

The exporter listens on a loopback address only: the metrics carry process and VM
names and the endpoint has no authentication.  Put a proxy in front to expose it.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
from collections.abc import Iterator
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from homenode.errors import HomenodeError, InputError
from homenode.model import Reason
from homenode.ops.api import SHUTDOWN_POLL_S
from homenode.ops.status import StatusRecorder
from homenode.units import MIB

DEFAULT_METRICS_ADDR = "127.0.0.1:9851"
PREFIX = "homenode"


def parse_addr(text: str, field: str = "--metrics") -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:PORT`` for IPv6, ``:PORT`` for 127.0.0.1) on loopback."""
    host, sep, port_s = text.rpartition(":")
    if not sep or not port_s.isdigit() or int(port_s) > 65535:
        raise InputError(field, text, "expected HOST:PORT such as 127.0.0.1:9851")
    host = host.strip("[]") or "127.0.0.1"
    if host == "localhost":
        host = "127.0.0.1"
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise InputError(field, text, "expected a loopback IP address such as "
                         "127.0.0.1 or [::1]") from None
    if not ip.is_loopback:
        raise InputError(field, text, "must be a loopback address: the metrics are not "
                         "authenticated (put a proxy in front to expose them)")
    return host, int(port_s)


class StatusCollector(Collector):
    """Metric families built from one ``StatusRecorder.status()`` view."""

    def __init__(self, recorder: StatusRecorder):
        self.recorder = recorder

    def collect(self) -> Iterator[Metric]:
        doc = self.recorder.status()
        info = InfoMetricFamily(f"{PREFIX}_build", "What is being scheduled, and by which "
                                "homenode.")
        info.add_metric([], {"version": doc["homenode"], "source": doc["source"],
                             "policy": doc["policy"], "scenario": doc["scenario"]})
        yield info
        yield from self._loop(doc)
        yield from self._nodes(doc)
        yield from self._clients(doc)

    def _loop(self, doc: dict[str, Any]) -> Iterator[Metric]:
        yield CounterMetricFamily(f"{PREFIX}_ticks", "Control-loop ticks sampled.",
                                  value=doc["ticks"])
        buckets, _count, total = self.recorder.tick_histogram()
        yield HistogramMetricFamily(
            f"{PREFIX}_tick_duration_seconds", "Wall time of one tick: snapshot, decide, "
            "apply (in the simulator, also advancing the simulated host).",
            buckets=[(_le(b), n) for b, n in buckets], sum_value=total)
        if doc["time"] is not None:
            yield GaugeMetricFamily(f"{PREFIX}_clock_seconds", "The control loop's clock "
                                    "(simulated seconds in a simulation).", value=doc["time"])
        reasons = CounterMetricFamily(f"{PREFIX}_home_changes", "Home-node changes by "
                                      "reason (initial placements not included).",
                                      labels=["reason"])
        by = doc["home_changes_by_reason"]
        # Every reason is exported from the start, so rate() has a zero to start from.
        for r in Reason:
            if r is not Reason.INITIAL:
                reasons.add_metric([str(r)], by.get(str(r), 0))
        yield reasons
        yield CounterMetricFamily(f"{PREFIX}_placements", "Initial placements of new "
                                  "clients.", value=doc["placements"])
        yield CounterMetricFamily(f"{PREFIX}_pages_migrated", "4 KiB pages granted to "
                                  "accepted page-migration actions.",
                                  value=doc["pages_migrated"])
        if doc["imbalance"] is not None:
            yield GaugeMetricFamily(f"{PREFIX}_imbalance_ratio", "Max minus min node load "
                                    "(entitled CPU / cores).", value=doc["imbalance"])

    def _nodes(self, doc: dict[str, Any]) -> Iterator[Metric]:
        fams = {
            "load": GaugeMetricFamily(f"{PREFIX}_node_load_ratio", "Entitled CPU of the "
                                      "clients homed on the node over its cores.",
                                      labels=["node"]),
            "cpu_used": GaugeMetricFamily(f"{PREFIX}_node_cpu_used_ratio", "CPU received by "
                                          "the node's clients over its cores.",
                                          labels=["node"]),
            "cores": GaugeMetricFamily(f"{PREFIX}_node_cores", "Physical cores of the node.",
                                       labels=["node"]),
            "mem": GaugeMetricFamily(f"{PREFIX}_node_memory_bytes", "Memory of the node.",
                                     labels=["node"]),
            "free": GaugeMetricFamily(f"{PREFIX}_node_free_memory_bytes", "Free memory of "
                                      "the node.", labels=["node"]),
            "clients": GaugeMetricFamily(f"{PREFIX}_node_clients", "Clients homed on the "
                                         "node.", labels=["node"]),
        }
        for n in doc["nodes"]:
            lab = [str(n["id"])]
            fams["load"].add_metric(lab, n["load"] or 0.0)
            fams["cpu_used"].add_metric(lab, n["cpu_used"] or 0.0)
            fams["cores"].add_metric(lab, n["cores"])
            fams["mem"].add_metric(lab, n["mem_mib"] * MIB)
            fams["free"].add_metric(lab, n["free_mib"] * MIB)
            fams["clients"].add_metric(lab, n["clients"])
        yield from fams.values()

    def _clients(self, doc: dict[str, Any]) -> Iterator[Metric]:
        lab = ["client", "name"]
        g = {
            "locality": GaugeMetricFamily(f"{PREFIX}_client_locality_ratio", "Fraction of "
                                          "the client's resident memory on its home node.",
                                          labels=lab),
            "home": GaugeMetricFamily(f"{PREFIX}_client_home_node", "The client's home node "
                                      "(kernel node id; -1 while unplaced).", labels=lab),
            "local": GaugeMetricFamily(f"{PREFIX}_client_local_memory_bytes", "Resident "
                                       "memory on the home node.", labels=lab),
            "remote": GaugeMetricFamily(f"{PREFIX}_client_remote_memory_bytes", "Resident "
                                        "memory on other nodes.", labels=lab),
            "demand": GaugeMetricFamily(f"{PREFIX}_client_cpu_demand_cores", "CPU the "
                                        "client wants.", labels=lab),
            "received": GaugeMetricFamily(f"{PREFIX}_client_cpu_received_cores", "CPU the "
                                          "client got.", labels=lab),
        }
        moves = CounterMetricFamily(f"{PREFIX}_client_home_changes", "The client's home "
                                    "changes by reason.", labels=[*lab, "reason"])
        pages = CounterMetricFamily(f"{PREFIX}_client_pages_migrated", "4 KiB pages granted "
                                    "to the client's page migrations.", labels=lab)
        for c in doc["clients"]:
            ll = [c["id"], c["name"]]
            g["locality"].add_metric(ll, c["locality"] if c["locality"] is not None else 1.0)
            g["home"].add_metric(ll, -1 if c["home_id"] is None else c["home_id"])
            g["local"].add_metric(ll, c["local_mib"] * MIB)
            g["remote"].add_metric(ll, c["remote_mib"] * MIB)
            g["demand"].add_metric(ll, c["cpu_demand"] or 0.0)
            g["received"].add_metric(ll, c["cpu_received"] or 0.0)
            for reason, n in c["nmig_by_reason"].items():
                moves.add_metric([*ll, reason], n)
            pages.add_metric(ll, c["pages_migrated"])
        yield from g.values()
        yield moves
        yield pages


def _le(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(float(bound))


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes are not worth a log line each."""


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _ThreadingServer6(_ThreadingServer):
    address_family = socket.AF_INET6


class Exporter:
    """The HTTP endpoint (``/metrics``) serving one recorder; ``close()`` stops it."""

    def __init__(self, recorder: StatusRecorder, addr: str = DEFAULT_METRICS_ADDR):
        host, port = parse_addr(addr)
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(StatusCollector(recorder))
        cls = _ThreadingServer6 if ":" in host else _ThreadingServer
        try:
            self._httpd = make_server(host, port, make_wsgi_app(self.registry), cls,
                                      handler_class=_QuietHandler)
        except OSError as e:
            raise HomenodeError(f"--metrics {addr}: cannot listen: {e.strerror or e}") from None
        self.host = host
        self.port = int(self._httpd.server_address[1])
        self._thread = threading.Thread(target=self._httpd.serve_forever,
                                        args=(SHUTDOWN_POLL_S,), name="homenode-exporter",
                                        daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()


def start_exporter(recorder: StatusRecorder, addr: str = DEFAULT_METRICS_ADDR) -> Exporter:
    """Serve ``recorder``'s metrics at ``http://ADDR/metrics`` from a background thread."""
    return Exporter(recorder, addr)
