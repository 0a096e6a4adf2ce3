"""`homenode manpage`: homenode(1) in roff, generated from the CLI itself, so every
command and option the program has is in the page and nothing else is."""

from __future__ import annotations

import datetime as _dt
import re

import click

from homenode import __version__
from homenode.cli.group import cli, load_all

SEE_ALSO = ("numactl(8)", "numastat(8)", "numad(8)", "systemd.exec(5)")
# The page's date is the release's, not today's: the same version gives the same bytes.
RELEASE_DATE = _dt.date(2026, 12, 1)


def _esc(text: str) -> str:
    """Text for roff: backslashes and hyphens escaped, no line starting with . or '."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return re.sub(r"^([.'])", r"\\&\1", text, flags=re.M)


def _para(text: str) -> str:
    return "\n".join(_esc(" ".join(p.split())) for p in text.split("\n\n") if p.strip())


def _command(name: str, cmd: click.Command, ctx: click.Context) -> list[str]:
    sub = click.Context(cmd, info_name=name, parent=ctx)
    usage = " ".join(cmd.collect_usage_pieces(sub))
    out = [".TP", f"\\fBhomenode {_esc(name)}\\fR {_esc(usage)}",
           _para(cmd.help or cmd.short_help or "").replace("\n", "\n.br\n")]
    for p in cmd.get_params(sub):
        rec = p.get_help_record(sub) if isinstance(p, click.Option) else None
        if rec is None or "--help" in p.opts:
            continue
        opts, help_text = rec
        out += [".RS", ".TP", f"\\fB{_esc(opts)}\\fR", _esc(" ".join(help_text.split())),
                ".RE"]
    return out


def render() -> str:
    load_all()
    ctx = click.Context(cli, info_name="homenode")
    lines = [
        f'.TH HOMENODE 1 "{RELEASE_DATE.isoformat()}" "homenode {__version__}" '
        '"User Commands"',
        ".SH NAME", "homenode \\- an ESXi\\-style NUMA scheduler for Linux hosts, and a NUMA "
        "host simulator",
        ".SH SYNOPSIS", "\\fBhomenode\\fR \\fICOMMAND\\fR [\\fIOPTIONS\\fR] [\\fIARGS\\fR]",
        ".br", "\\fBhomenode\\fR \\fB\\-\\-version\\fR | \\fB\\-\\-help\\fR",
        ".SH DESCRIPTION",
        _para("homenode gives every managed NUMA client (a VM, a vNUMA slice of a wide VM, "
              "a process or a cgroup) a home node: its threads run on that node's CPUs and "
              "its memory is allocated and migrated there. It places new clients, rebalances "
              "every 2 s, and migrates pages at a paced rate. The same policy runs on a "
              "simulated NUMA host, where it is measured against static placement, numad, "
              "automatic NUMA balancing and an optimal bound."),
        ".SH COMMANDS"]
    for name in sorted(cli.list_commands(ctx)):
        cmd = cli.get_command(ctx, name)
        if cmd is not None and not cmd.hidden:
            lines += _command(name, cmd, ctx)
    lines += [
        ".SH EXIT STATUS",
        ".TP", "0", "Success.",
        ".TP", "1", _esc("simulate --check: an [expect] entry was missed."),
        ".TP", "2", _esc("Bad input: one line on stderr names the field and the value; "
                         "nothing was written or applied."),
        ".TP", "3", _esc("place: the VM does not fit (the reason is on stderr; with "
                         "--numad-compat nothing is printed)."),
        ".TP", "130", "Interrupted.",
        ".SH FILES",
        ".TP", "/etc/homenode.toml", _esc("The daemon's configuration (homenode files "
                                          "homenode.toml prints the commented example)."),
        ".TP", "/run/homenode/status.sock", _esc("The status API of the daemon run as root."),
        ".TP", "/run/homenode/place.json", _esc("Recent recommendations of homenode place."),
        ".SH ENVIRONMENT",
        ".TP", "HOMENODE_SOCKET", "The status API socket.",
        ".TP", "HOMENODE_TRACES_DIR", "Where the bitbrains and planetlab traces are.",
        ".TP", "_HOMENODE_COMPLETE",
        _esc("Shell completion: eval \"$(_HOMENODE_COMPLETE=bash_source homenode)\" "
             "(zsh_source, fish_source for those shells)."),
        ".SH SEE ALSO",
        ", ".join(f"\\fB{_esc(s.split('(')[0])}\\fR({s.split('(')[1]}" for s in SEE_ALSO),
        ".br", _esc("docs/linux.md and docs/operations.md of the source tree; in the "
                    "Debian package, /usr/share/doc/homenode/."),
    ]
    return "\n".join(lines) + "\n"


@cli.command("manpage")
def manpage_cmd() -> None:
    """Print homenode(1) in roff (man -l - reads it), generated from this CLI."""
    click.echo(render(), nl=False)
