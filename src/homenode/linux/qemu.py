"""A QEMU VM's guest NUMA topology, read from its command line.

What is read (QEMU's and libvirt's spellings; libvirt writes ``-object`` and ``-device``
as JSON since 7.x and one ``cpus=`` key per range of a node's vCPUs):

- ``-numa node,nodeid=N,cpus=A-B[,cpus=C],memdev=ID``: guest node N, its vCPUs (QEMU's
  ``cpu_index``, the ``n`` of the vCPU thread name ``CPU n/KVM``) and its memory backend;
- ``-numa cpu,node-id=N,socket-id=S[,die-id=,cluster-id=,module-id=,core-id=,thread-id=]``:
  the vCPUs with those topology ids go to node N (x86 numbering of ``-smp``);
- ``-object memory-backend-{ram,memfd,file},id=ID,size=SIZE[,mem-path=P][,share=on]``
  (keyval or JSON);
- ``-device pc-dimm|nvdimm|virtio-mem-pci,memdev=ID,node=N``: hotplug memory of node N;
- ``-smp N[,sockets=,dies=,clusters=,modules=,cores=,threads=,maxcpus=]``.

vCPUs no ``-numa`` option names go to node ``socket % nodes`` (QEMU's x86 default, which
it warns about).  Nodes without ``memdev`` (the legacy ``mem=`` split, refused by QEMU
5.1+ machine types) are not supported: such a VM stays one client.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field

from homenode.linux.kernel.errors import ParseError
from homenode.linux.kernel.sysfs import parse_cpulist

# Backends whose memory is a host mapping homenode can find and move.
BACKEND_KINDS = {"memory-backend-ram": "ram", "memory-backend-memfd": "memfd",
                 "memory-backend-file": "file"}
# Memory devices that add a backend's memory to a guest node.
MEMORY_DEVICES = ("pc-dimm", "nvdimm", "virtio-mem-pci", "virtio-mem")
_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*([kKmMgGtTpPeE]?)[bB]?$")
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50,
          "e": 1 << 60}
# -numa cpu topology keys, innermost level first (x86: thread, core, module, die, socket).
_LEVELS = ("thread-id", "core-id", "module-id", "die-id", "socket-id")


@dataclass(frozen=True)
class Backend:
    """One ``-object memory-backend-*``; ``order`` is its place among them (QEMU creates
    and maps them in command-line order)."""

    id: str
    kind: str               # "ram", "memfd" or "file"
    size: int               # bytes
    order: int
    mem_path: str = ""
    share: bool = False


@dataclass(frozen=True)
class GuestNode:
    id: int
    vcpus: frozenset[int]           # QEMU cpu_index values
    backends: tuple[str, ...]       # its memdev first, then hotplug memory


@dataclass(frozen=True)
class GuestLayout:
    nodes: tuple[GuestNode, ...]
    backends: dict[str, Backend] = field(default_factory=dict)

    def mem_bytes(self, node: GuestNode) -> int:
        return sum(self.backends[b].size for b in node.backends)

    def node_of_vcpu(self) -> dict[int, int]:
        return {v: n.id for n in self.nodes for v in n.vcpus}


@dataclass(frozen=True)
class Smp:
    cpus: int = 1
    maxcpus: int = 1
    sockets: int = 1
    dies: int = 1
    modules: int = 1
    cores: int = 1
    threads: int = 1

    def ids(self, index: int) -> dict[str, int]:
        """The topology ids of vCPU ``index`` (x86 order: threads innermost)."""
        out = {}
        for key, n in zip(_LEVELS[:-1], (self.threads, self.cores, self.modules, self.dies),
                          strict=True):
            out[key] = index % n
            index //= n
        out["socket-id"] = index
        return out


# --- option syntax ------------------------------------------------------------------------

def options(argv: list[str], name: str) -> list[str]:
    """Every value of ``-name VALUE`` (or ``--name VALUE``), in order."""
    out = []
    for i, a in enumerate(argv[:-1]):
        if a in (f"-{name}", f"--{name}"):
            out.append(argv[i + 1])
    return out


def keyval(value: str, implied: str) -> dict[str, list[str]]:
    """QEMU's ``first,key=val,...`` (``,,`` is a literal comma; a bare first value is the
    ``implied`` key); every key keeps all its values (``cpus=0-1,cpus=4``)."""
    out: dict[str, list[str]] = {}
    parts = [p.replace("\0", ",") for p in value.replace(",,", "\0").split(",")]
    for i, p in enumerate(parts):
        k, sep, v = p.partition("=")
        if not sep:
            if i == 0 and p:
                out.setdefault(implied, []).append(p)
            continue
        out.setdefault(k, []).append(v)
    return out


def structured(value: str, implied: str) -> dict[str, list[str]]:
    """An option value as keyval or (libvirt) JSON, values as strings."""
    if value.lstrip().startswith("{"):
        try:
            raw = json.loads(value)
        except ValueError:
            return {}
        if not isinstance(raw, dict):
            return {}
        return {k: [_json_str(v)] for k, v in raw.items() if not isinstance(v, dict)}
    return keyval(value, implied)


def _json_str(v: object) -> str:
    if isinstance(v, bool):
        return "on" if v else "off"
    if isinstance(v, list):
        return ",".join(str(x) for x in v)
    return str(v)


def _one(d: dict[str, list[str]], key: str, default: str = "") -> str:
    v = d.get(key)
    return v[-1] if v else default


def _flag(value: str) -> bool:
    return value.lower() in ("on", "yes", "true", "y")


def parse_size(text: str, default_unit: str = "") -> int:
    """QEMU sizes: ``64M``, ``2G``, ``1.5G``, ``1048576`` (a plain number in
    ``default_unit``: bytes for objects, MiB for ``-m``)."""
    m = _SIZE.match(text.strip())
    if not m:
        raise ValueError(f"bad size {text!r}")
    unit = m.group(2).lower() or default_unit.lower()
    return int(float(m.group(1)) * _UNITS[unit])


def _int(text: str) -> int:
    try:
        return int(text, 0)
    except ValueError:
        return -1


# --- the parts ----------------------------------------------------------------------------

def parse_smp(argv: list[str]) -> Smp:
    """``-smp``, missing counts filled as QEMU 6.2+ machine types do (cores preferred)."""
    values = options(argv, "smp")
    if not values:
        return Smp()
    d = keyval(values[-1], "cpus")
    n = {k: max(0, _int(_one(d, k, "0"))) for k in
         ("cpus", "maxcpus", "sockets", "dies", "clusters", "modules", "cores", "threads")}
    dies = n["dies"] or 1
    modules = (n["modules"] or 1) * (n["clusters"] or 1)
    sockets, cores, threads = n["sockets"], n["cores"], n["threads"]
    cpus, maxcpus = n["cpus"], n["maxcpus"]
    if cpus == 0 and maxcpus == 0:
        sockets, cores, threads = sockets or 1, cores or 1, threads or 1
        maxcpus = sockets * dies * modules * cores * threads
    else:
        maxcpus = maxcpus or cpus
        if cores == 0:
            sockets, threads = sockets or 1, threads or 1
            cores = max(1, maxcpus // (sockets * dies * modules * threads))
        elif sockets == 0:
            threads = threads or 1
            sockets = max(1, maxcpus // (dies * modules * cores * threads))
        if threads == 0:
            threads = max(1, maxcpus // (sockets * dies * modules * cores))
    return Smp(cpus or maxcpus, maxcpus, sockets, dies, modules, cores, threads)


def parse_backends(argv: list[str]) -> dict[str, Backend]:
    out: dict[str, Backend] = {}
    for value in options(argv, "object"):
        d = structured(value, "qom-type")
        kind = BACKEND_KINDS.get(_one(d, "qom-type"))
        ident = _one(d, "id")
        if kind is None or not ident:
            continue
        try:
            size = parse_size(_one(d, "size", "0"))
        except ValueError:
            continue
        share = _flag(_one(d, "share", "on" if kind == "memfd" else "off"))
        out[ident] = Backend(ident, kind, size, len(out),
                             os.path.normpath(_one(d, "mem-path")) if _one(d, "mem-path")
                             else "", share)
    return out


def parse_guest_numa(argv: list[str]) -> GuestLayout | None:
    """The guest's NUMA nodes, or None when it has fewer than two or they have no
    ``memdev`` (nothing to split: the VM stays one client)."""
    backends = parse_backends(argv)
    smp = parse_smp(argv)
    nodes: dict[int, tuple[set[int], list[str]]] = {}
    cpu_rules: list[tuple[int, dict[str, int]]] = []
    for value in options(argv, "numa"):
        d = keyval(value, "type")
        kind = _one(d, "type", "node")
        if kind == "node":
            nid = _int(_one(d, "nodeid", str(len(nodes))))
            cpus: set[int] = set()
            for spec in d.get("cpus", []):
                try:
                    cpus |= set(parse_cpulist(spec))
                except ParseError:
                    return None
            memdev = _one(d, "memdev")
            nodes[nid] = (cpus, [memdev] if memdev else [])
        elif kind == "cpu":
            ids = {k: _int(_one(d, k)) for k in (*_LEVELS, "cluster-id") if k in d}
            if "cluster-id" in ids:
                ids["module-id"] = ids.pop("cluster-id")
            cpu_rules.append((_int(_one(d, "node-id", "-1")), ids))
    if len(nodes) < 2 or any(not mem for _, mem in nodes.values()):
        return None
    if any(m not in backends for _, mem in nodes.values() for m in mem):
        return None
    for nid, ids in cpu_rules:
        if nid in nodes:
            nodes[nid][0].update(i for i in range(smp.maxcpus)
                                 if all(smp.ids(i)[k] == v for k, v in ids.items()))
    for value in options(argv, "device"):
        d = structured(value, "driver")
        memdev = _one(d, "memdev")
        if _one(d, "driver") in MEMORY_DEVICES and memdev in backends:
            nid = _int(_one(d, "node", "0"))
            if nid in nodes:
                nodes[nid][1].append(memdev)
    _default_nodes(nodes, smp)
    return GuestLayout(tuple(GuestNode(nid, frozenset(c), tuple(m))
                             for nid, (c, m) in sorted(nodes.items())), backends)


def _default_nodes(nodes: dict[int, tuple[set[int], list[str]]], smp: Smp) -> None:
    """vCPUs that no option placed go to node ``socket % nodes`` (QEMU x86's default)."""
    placed = {c for cpus, _ in nodes.values() for c in cpus}
    ids = sorted(nodes)
    for i in range(smp.maxcpus):
        if i not in placed:
            nodes[ids[smp.ids(i)["socket-id"] % len(ids)]][0].add(i)
