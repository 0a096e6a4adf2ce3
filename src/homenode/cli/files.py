"""`homenode files`: the systemd unit, the example config and the Grafana dashboard that
the package carries; print one, or install them where a pip-installed homenode needs
them (the Debian package installs them itself)."""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import click

from homenode.cli.group import cli
from homenode.errors import InputError


@dataclass(frozen=True)
class Bundled:
    name: str
    what: str
    target: str          # where --install puts it, under --root
    replace: bool        # an existing file is replaced (else kept, unless --force)


FILES = (
    Bundled("homenode.service", "systemd unit (docs/operations.md, section 7)",
            "etc/systemd/system/homenode.service", True),
    Bundled("homenode.toml", "commented example of /etc/homenode.toml", "etc/homenode.toml",
            False),
    Bundled("grafana.json", "Grafana dashboard for the Prometheus exporter",
            "usr/local/share/homenode/grafana.json", True),
    Bundled("homenode.1", "the man page (generated from the CLI)",
            "usr/local/share/man/man1/homenode.1", True),
)


def content(name: str) -> str:
    if name == "homenode.1":
        from homenode.cli.manpage import render
        return render()
    return resources.files("homenode.data").joinpath(name).read_text()


def unit_for(exe: str) -> str:
    """The unit with ExecStart pointing at this installation's homenode."""
    lines = []
    for line in content("homenode.service").splitlines():
        if line.startswith("ExecStart=/"):
            line = "ExecStart=" + exe + " " + line.split(" ", 1)[1]
        lines.append(line)
    return "\n".join(lines) + "\n"


def this_homenode() -> str:
    exe = Path(sys.argv[0])
    if exe.name == "homenode" and exe.exists():
        return str(exe.resolve())
    return shutil.which("homenode") or str(Path(sys.executable).with_name("homenode"))


@cli.command("files")
@click.argument("name", required=False)
@click.option("--install", is_flag=True, help="Install them all under --root: the unit "
              "(ExecStart pointing at this homenode), /etc/homenode.toml (kept if it "
              "exists), the dashboard and the man page.")
@click.option("--root", type=click.Path(file_okay=False, path_type=Path), default=Path("/"),
              show_default=True, help="With --install: the file system root to install into.")
@click.option("--force", is_flag=True, help="With --install: also replace an existing "
              "/etc/homenode.toml.")
def files_cmd(name: str | None, install: bool, root: Path, force: bool) -> None:
    """List the files the package carries; NAME prints one (e.g. `homenode files
    homenode.service > /etc/systemd/system/homenode.service`)."""
    names = [f.name for f in FILES]
    if name is not None and name not in names:
        raise InputError("NAME", name, f"no such file; choose from {', '.join(names)}")
    if install:
        if name is not None:
            raise InputError("--install", name, "installs every file; give no NAME")
        for f in FILES:
            dest = root / f.target
            if dest.exists() and not (f.replace or force):
                click.echo(f"kept      {dest} (exists; --force replaces it)")
                continue
            dest.parent.mkdir(parents=True, exist_ok=True)
            text = unit_for(this_homenode()) if f.name == "homenode.service" else content(f.name)
            tmp = dest.with_name(f".{dest.name}.tmp")
            tmp.write_text(text)
            os.chmod(tmp, 0o644)
            os.replace(tmp, dest)
            click.echo(f"installed {dest}")
        click.echo("next: systemctl daemon-reload; homenode run --dry-run --once; "
                   "systemctl enable --now homenode")
        return
    if name is not None:
        click.echo(content(name), nl=False)
        return
    for f in FILES:
        click.echo(f"{f.name:<18} {f.what}; --install: /{f.target}")
