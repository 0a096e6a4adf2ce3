"""The Linux host: reads sysfs, procfs and cgroup v2, acts through affinity, cpusets and
move_pages/migrate_pages.  It observes and acts; every decision comes from the policy.

Three layers:

- ``kernel/``: every reader and parser of /proc, /sys and cgroup files, the ctypes
  syscalls, the one errno boundary (``kernel.files``) and the fault-injection seam;
- ``kinds/``: one module per client kind (process, cgroup, vNUMA slice of a VM) behind
  one interface -- set home, restore, migrate, record, adopt -- taking an I/O context;
- the daemon: ``config`` (and ``grouprules``, the group schema), ``host`` (``LinuxHost``,
  wiring ``snapshot()``/``apply()`` to the kinds), ``state``, ``guard``, ``actionlog``,
  ``privileges``, ``advice`` (``homenode place``) and ``daemon`` (``homenode run``).
"""
