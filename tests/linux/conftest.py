"""The Linux tests' fixtures live in linux_support.py beside the helpers they use."""

from linux_support import clock, proc_copy  # noqa: F401
