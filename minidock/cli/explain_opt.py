"""`--explain[=json]`: one flag that also takes an optional value, as Docker-style CLIs need.

Click cannot tell `--explain IMAGE` (a flag, then an argument) from `--explain VALUE`, so only
the `=` form carries a value: before Click parses, `rewrite()` turns `--explain=json` into the
flag plus a hidden `--explain-format json`. It looks only at the options of the command (using
the command's own parameter list to skip option values), never at the container's command line
after the first argument (`minidock run busybox echo --explain=json` echoes it).
"""

from __future__ import annotations

import click

FORMATS = ("text", "json")


def options(help_text: str):
    """The two options: `--explain` (a flag) and the hidden `--explain-format`."""
    def deco(f):
        f = click.option("--explain-format", type=click.Choice(FORMATS), default="text", hidden=True)(f)
        return click.option("--explain", is_flag=True, help=help_text + " --explain=json: one JSON object a line.")(f)
    return deco


def _takes_value(cmd: click.Command, token: str) -> bool:
    name = token.split("=", 1)[0]
    for p in cmd.params:
        if isinstance(p, click.Option) and (name in p.opts or name in p.secondary_opts):
            return not p.is_flag and not p.count and "=" not in token
    return False


def rewrite(cmd: click.Command, args: list[str]) -> list[str]:
    """`args` are the tokens given to `cmd` (its options, then its arguments)."""
    out, i = [], 0
    while i < len(args):
        a = args[i]
        if a == "--" or not a.startswith("-") or a == "-":
            return out + args[i:]  # the first argument: the rest is not ours to touch
        if a.startswith("--explain="):
            fmt = a.split("=", 1)[1]
            if fmt not in FORMATS:
                raise click.BadParameter(f"use --explain or --explain=json, not {a}")
            out += ["--explain", "--explain-format", fmt]
        else:
            out.append(a)
            if _takes_value(cmd, a) and i + 1 < len(args):
                out.append(args[i + 1])
                i += 1
        i += 1
    return out
