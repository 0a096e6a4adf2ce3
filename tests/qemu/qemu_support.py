"""Helpers of the QEMU tests that are not fixtures."""

from __future__ import annotations


def linux_backend_missing() -> str | None:
    """Why `homenode run` cannot be used yet (the Linux backend is its own issue)."""
    try:
        import homenode.linux.kernel.numa_syscalls  # noqa: F401
    except ImportError as e:
        return f"homenode.linux not usable: {e}"
    from click.testing import CliRunner

    from homenode.cli import _register, cli
    _register()
    if "run" not in cli.commands:
        return "`homenode run` is not registered yet (src/homenode/cli/linux.py)"
    if CliRunner().invoke(cli, ["run", "--help"]).exit_code != 0:
        return "`homenode run --help` fails"
    return None
