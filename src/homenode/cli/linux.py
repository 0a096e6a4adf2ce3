"""`homenode run`, `homenode topology`, `homenode place`: the Linux host commands."""

from __future__ import annotations

import json
import signal
import sys
import threading
import time
from pathlib import Path

import click
import numpy as np

from homenode.cli.group import cli
from homenode.cli.params import Count, Duration, InputFile, Size
from homenode.errors import InputError
from homenode.inputs import MAX_VCPUS, check_out_dir, check_socket_path
from homenode.model import Topology
from homenode.units import MIB, PAGE_SIZE

MAX_SAMPLE = 60.0   # s: `place` answers a VM about to start; a longer sample is a typo

EXIT_DOES_NOT_FIT = 3     # `homenode place`: documented in docs/linux.md for libvirt


def _require_linux() -> None:
    if not sys.platform.startswith("linux"):
        raise InputError("platform", sys.platform, "homenode's host commands need Linux")


@cli.command("run")
@click.option("--config", "config_path", type=InputFile(),
              default=None, help="TOML config (default: /etc/homenode.toml if present).")
@click.option("--dry-run", is_flag=True, help="Log every action it would take; change "
              "nothing.")
@click.option("--interval", type=Duration(), default=None, metavar="DURATION",
              help="Control tick, e.g. 2s or 500ms (default: the config's, 2s).")
@click.option("--duration", type=Duration(positive=True), default=None, metavar="DURATION",
              help="Stop after this long (default: run until SIGTERM/SIGINT).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Write the simulator's files (timeseries.csv, summary.json, ...) here "
              "on exit.")
@click.option("--once", is_flag=True, help="One tick, then exit.")
@click.option("--no-plots", is_flag=True, help="With --out: skip the PNG plots.")
@click.option("--log-format", type=click.Choice(["auto", "journal", "json", "text"]),
              default=None, help="Log to the journal, as JSON lines or text on stderr "
              "(default: the config's daemon.log_format, auto: the journal under systemd, "
              "else text, on a terminal and through a pipe alike).")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]),
              default="info", show_default=True, help="Least severe level logged.")
@click.option("--socket", "socket_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Status API socket for `homenode top` and `explain` "
              "(default: /run/homenode/status.sock as root).")
@click.option("--no-api", is_flag=True, help="Serve no status API.")
@click.option("--metrics", "metrics_addr", default=None, metavar="HOST:PORT",
              help="Serve Prometheus metrics there (loopback only; default: off).")
def run_cmd(config_path: Path | None, dry_run: bool, interval: float | None,
            duration: float | None, out: Path | None, once: bool, no_plots: bool,
            log_format: str | None, log_level: str, socket_path: Path | None, no_api: bool,
            metrics_addr: str | None) -> None:
    """Run the NUMA scheduler on this host (the simulator's control loop, for real)."""
    from homenode.linux import config, daemon
    from homenode.ops.api import serve_status
    from homenode.ops.control import Control, ControlledHost, config_loader
    from homenode.ops.logging import setup_logging
    from homenode.ops.status import StatusRecorder, TimedHost

    _require_linux()
    cfg = config.load(config_path)
    seconds = duration
    cfg = cfg.with_overrides(dry_run=dry_run, interval=interval)
    # Checked before the first tick: a run must not fail only after its whole --duration.
    if out is not None:
        check_out_dir(out, "--out")
    if socket_path is not None and not (once or no_api):
        check_socket_path(socket_path, "--socket")
    setup_logging(log_format or cfg.daemon.log_format, level=log_level.upper())
    stop = threading.Event()
    control = Control(config_loader(config_path))
    previous = {s: signal.signal(s, lambda *_: stop.set())
                for s in (signal.SIGTERM, signal.SIGINT)}
    previous[signal.SIGHUP] = signal.signal(signal.SIGHUP, lambda *_: control.reload())
    status = StatusRecorder(source="daemon", policy=cfg.daemon.policy, settings=cfg.settings)
    server = exporter = None
    try:
        # Bind both before the first tick: a bad address or a live daemon on the socket
        # is refused before anything is changed.
        if metrics_addr:
            from homenode.ops.exporter import start_exporter  # only when asked
            exporter = start_exporter(status, metrics_addr)
        if not (once or no_api):
            server = serve_status(status, socket_path, control=control)
        daemon.run(cfg, duration=seconds or 0.0, once=once, out=out, plots=not no_plots,
                   stop=stop, recorders=[status],
                   wrap_host=lambda host: TimedHost(ControlledHost(host, control), status))
    finally:
        if server is not None:
            server.close()
        if exporter is not None:
            exporter.close()
        for s, h in previous.items():
            signal.signal(s, h)


@cli.command("topology")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def topology_cmd(as_json: bool) -> None:
    """Nodes, CPUs, cores, memory and distances (like numactl -H)."""
    from homenode.linux.kernel.sysfs import TopologyReader

    _require_linux()
    state = TopologyReader("/sys").read()
    click.echo(format_topology(state.topology, state.free_pages, as_json))


def format_topology(topo: Topology, free_pages: np.ndarray, as_json: bool = False) -> str:
    """numactl -H's layout (kernel node ids), or JSON."""
    size = [int(m) * PAGE_SIZE // MIB for m in topo.mem_pages]
    free = [int(f) * PAGE_SIZE // MIB for f in free_pages]
    if as_json:
        return json.dumps({
            "nodes": [{"id": nid, "cpus": list(topo.cpus[i]), "cores": float(topo.cores[i]),
                       "size_mb": size[i], "free_mb": free[i]}
                      for i, nid in enumerate(topo.node_ids)],
            "distances": topo.distance.tolist()}, indent=2)
    from homenode.linux.kernel.sysfs import format_cpulist
    ids = topo.node_ids
    lines = [f"available: {topo.n} nodes ({format_cpulist(ids)})"]
    for i, nid in enumerate(ids):
        lines += [f"node {nid} cpus:" + "".join(f" {c}" for c in topo.cpus[i]),
                  f"node {nid} cores: {topo.cores[i]:g}",
                  f"node {nid} size: {size[i]} MB", f"node {nid} free: {free[i]} MB"]
    lines.append("node distances:")
    lines.append("node " + "".join(f"{nid:>4}" for nid in ids))
    for i, nid in enumerate(ids):
        lines.append(f"{nid:>3}: " + "".join(f"{int(d):>4}" for d in topo.distance[i]))
    return "\n".join(lines)


@cli.command("place")
@click.option("--vcpus", type=Count(1, MAX_VCPUS), required=True,
              help="vCPUs of the new VM.")
@click.option("--memory", type=Size(lo=1), required=True, metavar="SIZE",
              help="Its memory, e.g. 8GiB (a plain number is bytes).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--numad-compat", is_flag=True, help="Print only the nodeset, as "
              "`numad -w NCPUS:MB` does (for libvirt placement='auto').")
@click.option("--config", "config_path", type=InputFile(),
              default=None, help="Policy and settings from this config.")
@click.option("--state", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="State file of recent recommendations.")
@click.option("--window", type=Duration(), default="120s", show_default=True,
              metavar="DURATION", help="How long a recommendation counts against its nodes.")
@click.option("--sample", type=Duration(hi=MAX_SAMPLE), default="0.5s", show_default=True,
              metavar="DURATION", help="CPU load sampling time (0 = ignore current CPU load).")
@click.option("--prefer-ht", is_flag=True, help="Size by hardware threads "
              "(numa.vcpu.preferHT).")
@click.option("--max-vcpus-per-node", type=Count(0, MAX_VCPUS), default=0, show_default=True,
              help="numa.vcpu.maxPerVirtualNode (0: a node's cores).")
@click.option("--what-if", is_flag=True, help="Answer without recording the answer in the "
              "state file: later calls do not count this VM.")
def place_cmd(vcpus: int, memory: int, as_json: bool, numad_compat: bool,
              config_path: Path | None, state: Path | None, window: float, sample: float,
              prefer_ht: bool, max_vcpus_per_node: int, what_if: bool) -> None:
    """Recommend the home node(s) for a VM about to start.

    Exit status: 0 it fits; 3 it does not fit (a node would get more vCPUs than it has
    CPUs, or more memory than it has free; the reason is on stderr, and with
    --numad-compat nothing is printed, so libvirt refuses to start the VM); 2 bad input.
    """
    from homenode.linux import advice, config
    from homenode.linux.kernel.sysfs import TopologyReader

    _require_linux()
    mem, win, samp = memory, window, sample
    cfg = config.load(config_path)
    node_state = TopologyReader("/sys").read()
    topo = node_state.topology
    busy = advice.busy_cores(topo, "/proc", samp)
    now = time.time()
    with advice.locked_state(state or advice.default_state_path(), win, now) as recent:
        adv = advice.recommend(topo, node_state.free_pages, busy, recent, vcpus, mem,
                               cfg.daemon.policy, cfg.settings, prefer_ht=prefer_ht,
                               max_vcpus_per_node=max_vcpus_per_node)
        # Only a VM that will start counts against its nodes.
        if adv.fits and not what_if:
            recent.append(advice.Recommendation(now, vcpus, mem, adv.nodes))
    if numad_compat:
        if adv.fits:
            click.echo(adv.nodeset)
    elif as_json:
        click.echo(json.dumps({"nodes": list(adv.nodes), "nodeset": adv.nodeset,
                               "vcpus": vcpus, "memory_bytes": mem,
                               "memory": advice.format_size(mem), "fits": adv.fits,
                               "problems": list(adv.problems), "recorded": adv.fits
                               and not what_if,
                               "score": round(adv.score, 4), "detail": adv.detail,
                               "slices": [{"node": x.node, "vcpus": x.vcpus,
                                           "memory_bytes": x.mem_bytes}
                                          for x in adv.slices]}))
    else:
        extra = f" (+ nodes {', '.join(map(str, adv.nodes[1:]))})" if len(adv.nodes) > 1 else ""
        what = f"{vcpus} vCPUs, {advice.format_size(mem)}"
        detail = adv.detail if len(adv.slices) > 1 else what
        click.echo(f"node {adv.nodes[0]}{extra} (score {adv.score:.3f}): {detail}"
                   f"{'  [what-if: not recorded]' if what_if else ''}")
    if not adv.fits:
        click.echo(f"homenode: does not fit: {'; '.join(adv.problems)}", err=True)
        sys.exit(EXIT_DOES_NOT_FIT)
