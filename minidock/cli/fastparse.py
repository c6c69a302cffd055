"""Parse a hot command line as Click would, without importing Click (see cli/main.py).

The rules are Click's parser's (click/parser.py), for the parameters the spec holds
(cli/_fastspec.py, generated from the Click definitions by cli/fastspec.py): `--long`,
`--long=value`, `-s value`, `-svalue`, clusters of short flags (`-it`, `-itd`, a value-taking
one last: `-ep=1`), `--` ends the options, options after arguments only where the command allows
it. parse() returns None for anything else -- an unknown option, a missing value or argument, a
flag given a value, a value Click would convert differently, `-h`/`--help`, `--explain` -- and
the caller hands the command line to Click, which prints its own message and exit code. So does
a spec older than the Click definitions it mirrors (a checksum of their sources).
"""

from __future__ import annotations

_TRUE = frozenset(("1", "true", "t", "yes", "y", "on"))
_FALSE = frozenset(("0", "false", "f", "no", "n", "off"))
_GO_TO_CLICK = object()


VERSION = "minidock.cli.hot:version"  # `minidock --version`: Click's eager option, before the group's checks


def parse(args: list[str]):
    """(target "module:function", keyword arguments, --root value or None), or None for Click."""
    if args == ["--version"]:
        return VERSION, {}, None
    i, n, root = 0, len(args), None
    while i < n and args[i][:1] == "-":  # the group's own options: only --root is mirrored
        a = args[i]
        if a == "--root" and i + 1 < n:
            root, i = args[i + 1], i + 2
        elif a.startswith("--root="):
            root, i = a[7:], i + 1
        else:
            return None
    if i >= n:
        return None
    from minidock.cli._fastspec import SPEC

    spec = SPEC.get(args[i])
    if spec is None or not _current():
        return None
    for a in args:  # (the group skips its root check when these are anywhere: Click's business)
        if a in ("-h", "--help") or a.startswith("--explain"):
            return None
    params = _parse_command(spec, args[i + 1:])
    if params is None:
        return None
    return spec[0], params, root


def _current() -> bool:
    """The Click definitions are the ones the spec was generated from (a checksum of their
    sources, ~0.1 ms): otherwise Click parses."""
    import zlib

    from minidock.cli import _fastspec

    d = __file__.rpartition("/")[0]
    crc = 0
    try:
        for name in _fastspec.SOURCES:
            with open(f"{d}/{name}", "rb") as f:
                crc = zlib.crc32(f.read(), crc)
    except OSError:
        return False
    return crc == _fastspec.CHECKSUM


def _parse_command(spec, tokens: list[str]):
    _target, interspersed, long_opts, short_opts, params, arguments = spec
    given: dict[int, object] = {}
    largs: list[str] = []
    j, n = 0, len(tokens)
    while j < n:
        a = tokens[j]
        j += 1
        if a == "--":
            largs.extend(tokens[j:])
            break
        if a[:1] != "-" or len(a) == 1:
            if interspersed:
                largs.append(a)
                continue
            largs.extend(tokens[j - 1:])
            break
        opt, eq, value = a.partition("=")
        k = long_opts.get(opt)
        if k is not None:
            if params[k][1] == "flag":
                if eq:
                    return None  # "Option '--rm' does not take a value."
                _store(given, params[k], k, True)
                continue
            if not eq:
                if j >= n:
                    return None
                value = tokens[j]
                j += 1
            _store(given, params[k], k, value)
            continue
        if a[:2] == "--":
            return None  # no such option
        c = 1
        while c < len(a):  # a cluster of short options
            k = short_opts.get("-" + a[c])
            c += 1
            if k is None:
                return None
            if params[k][1] == "flag":
                _store(given, params[k], k, True)
                continue
            if c < len(a):
                value = a[c:]
            elif j < n:
                value = tokens[j]
                j += 1
            else:
                return None
            _store(given, params[k], k, value)
            break
    out: dict[str, object] = {}
    for k, (name, kind, multiple, default, choices) in enumerate(params):
        if k not in given:
            out[name] = default
            continue
        v = given[k]
        if multiple:
            conv = tuple(_convert(kind, x, choices) for x in v)
            if _GO_TO_CLICK in conv:
                return None
        else:
            conv = _convert(kind, v, choices)
            if conv is _GO_TO_CLICK:
                return None
        out[name] = conv
    # the arguments: nargs 1 each, the last may take the rest (nargs -1)
    pos = 0
    for name, nargs, required in arguments:
        if nargs == 1:
            if pos >= len(largs):
                return None  # missing (Click says which)
            out[name] = largs[pos]
            pos += 1
        else:
            rest = tuple(largs[pos:])
            if required and not rest:
                return None
            out[name] = rest
            pos = len(largs)
    if pos != len(largs):
        return None  # "Got unexpected extra argument"
    return out


def _store(given: dict, param, k: int, value) -> None:
    if param[2]:  # multiple
        given.setdefault(k, []).append(value)
    else:
        given[k] = value


def _convert(kind: str, v, choices):
    if kind == "str" or kind == "flag":
        return v
    if kind == "int":
        try:
            return int(v)
        except ValueError:
            return _GO_TO_CLICK
    if kind == "bool":
        s = v.strip().lower()
        return True if s in _TRUE else False if s in _FALSE else _GO_TO_CLICK
    if kind == "choice":
        return v if v in choices else _GO_TO_CLICK
    return _GO_TO_CLICK
