"""JSON through the C accelerator alone: the json package's bytes, without its import cost.

``import json`` costs ~4.5 ms here (json.decoder imports re, and re imports enum); the
runtime's short-lived processes (`minidock-runtime start`/`delete`/`state`, ~6 ms of interpreter
each) read and write a few small JSON files, so on their path that is most of their own work.
This module drives ``_json`` (the C scanner and encoder the json package uses itself) directly:

    loads(text)                  as json.loads (invalid input: json.loads's own JSONDecodeError)
    dumps(obj)                   as json.dumps(obj)  (", " and ": ", ASCII, no sorting)
    dumps(obj, indent=2)         as json.dumps(obj, indent=2)
    dumps(obj, **other)          json.dumps itself (imported then)

tests/unit/test_ljson.py holds the outputs equal to the json package's.
"""

from __future__ import annotations

from _json import encode_basestring_ascii as _str
from _json import make_encoder as _make_encoder
from _json import make_scanner as _make_scanner

_WS = " \t\n\r"


class _Ctx:  # what the C scanner reads from a json.JSONDecoder
    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int

    @staticmethod
    def parse_constant(name):
        return {"-Infinity": float("-inf"), "Infinity": float("inf"), "NaN": float("nan")}[name]


_scan = _make_scanner(_Ctx())


def _default(o):
    raise TypeError(f"Object of type {o.__class__.__name__} is not JSON serializable")


# markers=None: no circular check (json.dumps checks; a cycle here would recurse until RecursionError)
_encode = _make_encoder(None, _default, _str, None, ": ", ", ", False, False, True)


def loads(s: str | bytes):
    if isinstance(s, (bytes, bytearray)):
        s = s.decode()
    try:
        if s.startswith("\ufeff"):
            raise ValueError
        start = len(s) - len(s.lstrip(_WS))
        obj, end = _scan(s, start)
        if s[end:].strip(_WS):
            raise ValueError
        return obj
    except (StopIteration, ValueError, KeyError):
        import json  # the json package's exact error (or, should this module be wrong, its answer)

        return json.loads(s)


def dumps(obj, *, indent: int | None = None, **kwargs) -> str:
    if kwargs or (indent is not None and not isinstance(indent, int)):
        import json

        return json.dumps(obj, indent=indent, **kwargs)
    if indent is None:
        return "".join(_encode(obj, 0))
    try:
        return _pretty(obj, " " * indent, "\n")
    except _NotPlain:
        import json

        return json.dumps(obj, indent=indent)


class _NotPlain(Exception):
    pass


def _pretty(o, ind: str, nl: str) -> str:
    if type(o) is dict and o:
        inner = nl + ind
        parts = []
        for k, v in o.items():
            if type(k) is not str:
                raise _NotPlain
            parts.append(inner + _str(k) + ": " + _pretty(v, ind, inner))
        return "{" + ",".join(parts) + nl + "}"
    if type(o) in (list, tuple) and o:
        inner = nl + ind
        return "[" + ",".join(inner + _pretty(v, ind, inner) for v in o) + nl + "]"
    if type(o) in (dict, list, tuple, str, int, bool, float) or o is None:
        return "".join(_encode(o, 0))
    raise _NotPlain
