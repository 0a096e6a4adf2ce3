"""homenode: an ESXi-style NUMA scheduler for Linux hosts, and a simulated NUMA host.

Layers (see docs/architecture.md):
  model   - pure data: topology, clients, snapshots, actions
  policy  - pure decisions: snapshot in, actions out
  sim     - a simulated NUMA host (snapshot/apply)
  linux   - the real Linux host (snapshot/apply)
  loop    - the one control loop both hosts run under
"""

__version__ = "0.1.0"
