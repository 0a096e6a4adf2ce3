"""By hand: ``PYTHONPATH=tools/qemu python -m homenode_qemu [--nodes 4] shell 'cmd' ...``.

Boots one guest, runs the commands (``shell``) or the raw-kernel checks (``kernel``) in it,
and prints what came back.
"""

from __future__ import annotations

import argparse
import json
import sys

from homenode_qemu import assets, four_nodes, run_python, two_nodes


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m homenode_qemu", description=__doc__)
    ap.add_argument("--nodes", type=int, choices=[2, 4], default=2)
    ap.add_argument("--mem-per-node", type=int, default=512, metavar="MIB")
    ap.add_argument("--balancing", action="store_true", help="numa_balancing=enable")
    ap.add_argument("--timeout", type=float, default=300.0)
    ap.add_argument("what", choices=["shell", "kernel"])
    ap.add_argument("cmds", nargs="*")
    a = ap.parse_args(argv)
    why = assets.missing()
    if why:
        print(f"homenode_qemu: {why}", file=sys.stderr)
        return 2
    layout = two_nodes if a.nodes == 2 else four_nodes
    machine = layout(mem_per_node_mib=a.mem_per_node, numa_balancing=a.balancing)
    params = {"cmds": a.cmds} if a.what == "shell" else {
        "worker": str(assets.worker_binary(assets.build_dir()))}
    run = run_python(machine, a.what, params, timeout_s=a.timeout)
    print(f"[{a.nodes} nodes: {run.wall_s:.1f} s wall, program started at uptime "
          f"{run.boot_s} s, share {run.share}]", file=sys.stderr)
    if not run.ok:
        print(run.why(), file=sys.stderr)
        return 1
    if a.what == "shell":
        for c in run.result["commands"]:
            print(f"$ {c['cmd']}   [rc {c['rc']}, {c['s']} s]\n{c['stdout']}{c['stderr']}")
    else:
        print(json.dumps(run.result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
