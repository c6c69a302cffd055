"""The hot commands' spec for the fast parser (cli/fastparse.py), generated from Click's definitions.

    python -m minidock.cli.fastspec          # rewrite minidock/cli/_fastspec.py
    python -m minidock.cli.fastspec --check  # exit 1 if it is out of date (tests/unit/cli/test_fastparse.py)

For each command of HOT: its body in cli/hot.py (the Click callback calls the same function with
the same keywords), whether options may follow arguments, each option's tokens (long and short,
as Click's parser splits them), kind (flag, str, int, bool, choice), whether it repeats, and the
default Click would pass; the arguments' nargs and whether they are required. A parameter the
fast parser cannot mirror exactly (a callback, an envvar, a custom type, nargs > 1, ...) makes
the generator fail: a command is hot only if every one of its parameters is understood.
"""

from __future__ import annotations

import os
import sys

import click

# the hot commands -> their click-free bodies (the Click callback of each calls the same function)
HOT = {
    "ps": "minidock.cli.hot:ps",
    "inspect": "minidock.cli.hot:inspect",
    "logs": "minidock.cli.hot:logs",
    "stop": "minidock.cli.hot:stop",
    "start": "minidock.cli.hot:start",
    "kill": "minidock.cli.hot:kill",
    "rm": "minidock.cli.hot:rm",
    "wait": "minidock.cli.hot:wait",
    "run": "minidock.cli.hot:run",
    "create": "minidock.cli.hot:create",
    "exec": "minidock.cli.hot:exec_",
}

_PATH = os.path.join(os.path.dirname(__file__), "_fastspec.py")
# the modules whose Click definitions the spec mirrors: fastparse compares their checksum with the
# one the spec was made from, and hands every line to Click when they differ (an option added
# without regenerating the spec costs speed, never correctness)
SOURCES = ("app.py", "containers.py", "resources.py", "explain_opt.py")


def checksum(directory: str = os.path.dirname(__file__)) -> int:
    import zlib

    crc = 0
    for name in SOURCES:
        with open(os.path.join(directory, name), "rb") as f:
            crc = zlib.crc32(f.read(), crc)
    return crc


def _kind(p: click.Parameter) -> tuple[str, tuple]:
    t = p.type
    if isinstance(p, click.Option) and p.is_flag:
        if p.secondary_opts or p.count or not (p.flag_value is True or "UNSET" in repr(p.flag_value)):
            raise ValueError(f"{p.name}: only plain on-flags are mirrored")
        return "flag", ()
    if isinstance(t, click.Choice):
        if not all(isinstance(c, str) for c in t.choices):
            raise ValueError(f"{p.name}: non-string choices")
        return "choice", tuple(t.choices)  # (exact matches only: anything else goes to Click)
    if t is click.INT:
        return "int", ()
    if t is click.BOOL:
        return "bool", ()
    if t is click.STRING or t is click.UNPROCESSED:
        return "str", ()
    raise ValueError(f"{p.name}: type {t!r} is not mirrored")


def _defaults(cmd: click.Command) -> dict:
    """What Click passes for every option not given: parsed from the shortest valid command line."""
    argv = ["x" for p in cmd.params if isinstance(p, click.Argument) and p.required]
    return cmd.make_context(cmd.name, argv).params


def spec_of(cmd: click.Command, target: str) -> tuple:
    """(target, interspersed, long opts, short opts, params, arguments) of one command."""
    long_opts: dict[str, int] = {}
    short_opts: dict[str, int] = {}
    params: list[tuple] = []
    args: list[tuple] = []
    ctx = click.Context(cmd)
    helps = set(cmd.get_help_option_names(ctx))
    defaults = _defaults(cmd)
    for p in cmd.get_params(ctx):
        if isinstance(p, click.Option) and set(p.opts) <= helps:
            continue  # the help option: its tokens are unknown here, so Click handles them
        if p.callback is not None or p.envvar or not p.expose_value or p.is_eager or \
                getattr(p, "prompt", None) or getattr(p, "_flag_needs_value", False):
            raise ValueError(f"{cmd.name} {p.name}: not mirrored")
        if isinstance(p, click.Argument):
            if p.nargs not in (1, -1) or _kind(p)[0] != "str" or (args and args[-1][1] == -1):
                raise ValueError(f"{cmd.name} {p.name}: argument shape not mirrored")
            args.append((p.name, p.nargs, bool(p.required)))
            continue
        if p.nargs != 1 or p.required:
            raise ValueError(f"{cmd.name} {p.name}: option shape not mirrored")
        kind, choices = _kind(p)
        idx = len(params)
        params.append((p.name, kind, bool(p.multiple), defaults[p.name], choices))
        for o in p.opts:
            prefix = o[:2] if o.startswith("--") else o[:1]
            (short_opts if len(prefix) == 1 and len(o) - len(prefix) == 1 else long_opts)[o] = idx
    interspersed = cmd.context_settings.get("allow_interspersed_args", cmd.allow_interspersed_args)
    if cmd.context_settings.get("ignore_unknown_options") or cmd.ignore_unknown_options or \
            cmd.context_settings.get("token_normalize_func"):
        raise ValueError(f"{cmd.name}: context settings not mirrored")
    return (target, bool(interspersed), long_opts, short_opts, tuple(params), tuple(args))


def generate() -> str:
    from minidock.cli.app import cli

    lines = ['"""Generated by `python -m minidock.cli.fastspec` from the Click definitions: do not edit."""',
             "", f"SOURCES = {SOURCES!r}", f"CHECKSUM = {checksum()}", "", "SPEC = {"]
    for name, target in HOT.items():
        cmd = cli.get_command(None, name)
        lines.append(f"    {name!r}: {spec_of(cmd, target)!r},")
    lines.append("}")
    return "\n".join(lines) + "\n"


def main() -> int:
    text = generate()
    try:
        with open(_PATH) as f:
            current = f.read()
    except FileNotFoundError:
        current = ""
    if "--check" in sys.argv[1:]:
        if current != text:
            print("minidock/cli/_fastspec.py is out of date: run python -m minidock.cli.fastspec", file=sys.stderr)
            return 1
        return 0
    if current != text:
        with open(_PATH, "w") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
