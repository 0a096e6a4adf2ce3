"""The kernel layer: everything that reads or changes the kernel's state, and nothing
that decides.

One module per thing the kernel offers: ``files`` (the one reader and writer of kernel
files, where errno becomes a typed error), ``errors`` (those types), ``faults`` (the
fault-injection seam every call passes), ``procfs`` / ``procmaps`` (/proc), ``sysfs``
(topology), ``cgroup`` (cgroup v2), ``numa_syscalls`` (the one ctypes module) and
``identity`` (a pidfd held on the process an action is for).  Parsers take text, readers
take a root directory, so tests run on fixture trees.
"""
