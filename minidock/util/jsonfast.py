"""json.loads, json.dumps and json.dumps(indent=N) for the read paths (`ps`, `inspect`) and the
runtime's short processes (`minidock-runtime start`/`delete`/`state`, the create protocol's
messages, state.json), without `import json`.

`import json` costs ~5 ms of every start here (json.decoder and json.encoder import `re`, which
imports enum): a third of what `docker ps` takes in all. The C scanner and string encoder that
json itself uses are in `_json`; this module drives them the way json's default decoder and
encoder do, so the results are the same objects and the same bytes (tests/unit/cli/
test_fastparse.py compares them). Anything unusual (a decoding error, a type JSON has no
literal for) is handed to the json module itself, for its exact result or error.
"""

from __future__ import annotations

import _json

_CONSTANTS = {"-Infinity": float("-inf"), "Infinity": float("inf"), "NaN": float("nan")}


class _Decoder:  # the attributes json.JSONDecoder hands to the C scanner
    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = _CONSTANTS.__getitem__


_scan = _json.make_scanner(_Decoder())
_WS = " \t\n\r"


def loads(s: str | bytes):
    """json.loads(s) for a str (or UTF-8 bytes)."""
    if not isinstance(s, str):
        try:
            s = s.decode()
        except UnicodeDecodeError:
            import json

            return json.loads(s)  # (UTF-16/32 detection, or its error)
    start = 0 if s[:1] not in _WS else len(s) - len(s.lstrip(_WS))  # ("" is in any string)
    try:
        obj, end = _scan(s, start)
    except StopIteration:
        obj, end = None, -1
    if end < 0 or s[end:].strip(_WS):
        import json

        return json.loads(s)  # its error, with its message
    return obj


def load(f):
    return loads(f.read())


def _unserializable(o):
    raise TypeError(f"Object of type {o.__class__.__name__} is not JSON serializable")


# json's own C encoder with json.dumps's defaults (", " and ": ", ensure_ascii, allow_nan); markers=None:
# no circular check (json.dumps checks; minidock's data has no cycles)
_compact = _json.make_encoder(None, _unserializable, _json.encode_basestring_ascii, None, ": ", ", ",
                              False, False, True)


def dumps(obj, **kwargs) -> str:
    """json.dumps(obj); with any keyword (indent=N: dumps_indented) as json.dumps does it."""
    if kwargs:
        if set(kwargs) == {"indent"} and type(kwargs["indent"]) is int:
            return dumps_indented(obj, kwargs["indent"])
        import json

        return json.dumps(obj, **kwargs)
    return "".join(_compact(obj, 0))


def dumps_indented(obj, indent: int) -> str:
    """json.dumps(obj, indent=indent) (ensure_ascii, ", " and ": " separators, insertion order)."""
    out: list[str] = []
    try:
        _encode(obj, out, "\n", " " * indent)
    except _Unusual:
        import json

        return json.dumps(obj, indent=indent)
    return "".join(out)


class _Unusual(Exception):
    pass


_quote = _json.encode_basestring_ascii


def _encode(o, out: list, nl: str, step: str) -> None:
    if isinstance(o, str):
        out.append(_quote(o))
    elif o is None:
        out.append("null")
    elif o is True:
        out.append("true")
    elif o is False:
        out.append("false")
    elif type(o) is int:
        out.append(int.__repr__(o))
    elif type(o) is float and o == o and o not in (float("inf"), float("-inf")):
        out.append(float.__repr__(o))
    elif isinstance(o, (list, tuple)) and type(o) in (list, tuple):
        if not o:
            out.append("[]")
            return
        inner = nl + step
        out.append("[")
        first = True
        for v in o:
            out.append(inner if first else "," + inner)
            first = False
            _encode(v, out, inner, step)
        out.append(nl + "]")
    elif type(o) is dict:
        if not o:
            out.append("{}")
            return
        inner = nl + step
        out.append("{")
        first = True
        for k, v in o.items():
            if not isinstance(k, str):
                raise _Unusual
            out.append(inner if first else "," + inner)
            first = False
            out.append(_quote(k))
            out.append(": ")
            _encode(v, out, inner, step)
        out.append(nl + "}")
    else:
        raise _Unusual  # subclasses, NaN, sets, ...: json's own rules
