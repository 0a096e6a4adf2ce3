"""What the package carries: LICENSE, the bundled unit/config/dashboard (`homenode files`),
a man page generated from the CLI, shell completion; and, where CI installed it, the
Debian package itself."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import click
import pytest

from homenode.cli import _register, cli
from homenode.cli.files import FILES, content
from homenode.cli.manpage import render

ROOT = Path(__file__).resolve().parents[2]
HOMENODE = str(Path(sys.executable).with_name("homenode"))


def test_license_file_and_spdx_string():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert meta["project"]["license"] == "Apache-2.0"          # an SPDX expression
    assert meta["project"]["license-files"] == ["LICENSE"]
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "data/*" in meta["tool"]["setuptools"]["package-data"]["homenode"]


def test_the_repo_paths_are_the_bundled_files():
    """packaging/ and dashboards/ link to the files the wheel carries: one copy each."""
    for repo_path, name in (("packaging/homenode.service", "homenode.service"),
                            ("packaging/homenode.toml", "homenode.toml"),
                            ("dashboards/grafana.json", "grafana.json")):
        assert (ROOT / repo_path).read_text() == content(name), repo_path


def test_files_lists_prints_and_installs(tmp_path):
    out = subprocess.run([HOMENODE, "files"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and all(f.name in out.stdout for f in FILES)
    unit = subprocess.run([HOMENODE, "files", "homenode.service"], capture_output=True,
                          text=True, timeout=60).stdout
    assert "[Service]" in unit and "CapabilityBoundingSet=CAP_SYS_NICE CAP_SYS_PTRACE" in unit
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "homenode.toml").write_text("# mine\n")
    r = subprocess.run([HOMENODE, "files", "--install", "--root", str(tmp_path)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "etc" / "homenode.toml").read_text() == "# mine\n"   # kept
    installed = (tmp_path / "etc/systemd/system/homenode.service").read_text()
    assert f"ExecStart={Path(HOMENODE).resolve()} run --config /etc/homenode.toml" in installed
    assert (tmp_path / "usr/local/share/man/man1/homenode.1").read_text() == render()
    if shutil.which("systemd-analyze"):
        v = subprocess.run(["systemd-analyze", "verify",
                            str(tmp_path / "etc/systemd/system/homenode.service")],
                           capture_output=True, text=True, timeout=120,
                           env={**os.environ, "MANPATH": str(tmp_path / "usr/local/share/man")})
        assert v.returncode == 0, v.stderr


def test_the_man_page_documents_every_command_and_option():
    _register()
    page = render()
    ctx = click.Context(cli, info_name="homenode")
    for name in cli.list_commands(ctx):
        cmd = cli.get_command(ctx, name)
        assert f"\\fBhomenode {name.replace('-', chr(92) + '-')}\\fR" in page, name
        for p in cmd.params:
            if isinstance(p, click.Option) and "--help" not in p.opts:
                assert p.opts[0].replace("-", "\\-") in page, (name, p.opts[0])
    assert render() == page                       # the same bytes every time
    if shutil.which("man"):
        r = subprocess.run(["man", "--warnings", "-l", "-"], input=page, capture_output=True,
                           text=True, timeout=60, env={**os.environ, "MANWIDTH": "80",
                                                       "LC_ALL": "C.UTF-8"})
        assert r.returncode == 0 and r.stderr == "", r.stderr
        assert "EXIT STATUS" in r.stdout


def test_shell_completion_as_documented():
    r = subprocess.run([HOMENODE], capture_output=True, text=True, timeout=60,
                       env={**os.environ, "_HOMENODE_COMPLETE": "bash_source"})
    assert "_homenode_completion" in r.stdout
    r = subprocess.run([HOMENODE], capture_output=True, text=True, timeout=60,
                       env={**os.environ, "_HOMENODE_COMPLETE": "bash_complete",
                            "COMP_WORDS": "homenode sta", "COMP_CWORD": "1"})
    assert "status" in r.stdout


DEB_INSTALLED = shutil.which("dpkg-query") is not None and subprocess.run(
    ["dpkg-query", "-W", "-f=${Status}", "homenode"], capture_output=True,
    text=True).stdout == "install ok installed"


@pytest.mark.skipif(not DEB_INSTALLED, reason="the Debian package is not installed here "
                    "(tools/packaging/ci-setup.sh builds and installs it in CI)")
def test_the_installed_debian_package():
    r = subprocess.run(["/usr/bin/homenode", "--version"], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0 and "homenode, version" in r.stdout
    files = subprocess.run(["dpkg-query", "-L", "homenode"], capture_output=True,
                           text=True).stdout.splitlines()
    for path in ("/lib/systemd/system/homenode.service", "/usr/share/man/man1/homenode.1.gz",
                 "/usr/share/doc/homenode/copyright", "/usr/share/doc/homenode/linux.md.gz",
                 "/usr/share/homenode/homenode.toml", "/usr/share/homenode/grafana.json",
                 "/usr/share/bash-completion/completions/homenode"):
        assert path in files, path
    v = subprocess.run(["systemd-analyze", "verify", "/lib/systemd/system/homenode.service"],
                       capture_output=True, text=True, timeout=120)
    assert v.returncode == 0, v.stdout + v.stderr
    # Installed, not started: a scheduler must not start acting on a host by itself.
    assert "ExecStart=/usr/bin/homenode run" in Path(
        "/lib/systemd/system/homenode.service").read_text()
