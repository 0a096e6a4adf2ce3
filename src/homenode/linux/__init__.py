"""The Linux host: reads sysfs, procfs and cgroup v2, acts through affinity, cpusets and
move_pages/migrate_pages.  It observes and acts; every decision comes from the policy.

Modules, one concern each: ``sysfs`` (topology), ``procfs`` (processes), ``cgroup``
(cgroup v2), ``numa_syscalls`` (the one ctypes module), ``discovery`` (which processes and
cgroups are clients), ``clients`` (per-client readings), ``migrate`` (paced page moves),
``host`` (``LinuxHost``), ``config``, ``privileges``, ``advice`` (``homenode place``),
``daemon`` (``homenode run``).
"""
