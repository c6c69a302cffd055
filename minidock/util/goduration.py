"""Go's time.ParseDuration, once, for every place Docker takes a duration.

`HEALTHCHECK --interval=30s`, `--health-timeout`, `events --since 10m`, `logs --since 1h30m`,
`prune --filter until=24h` all go through Go's parser in Docker, so they all accept and refuse the
same strings with the same messages: an optional sign, then one or more decimal numbers (with an
optional fraction), each followed by a unit (ns, us, µs, μs, ms, s, m, h); a bare "0" is allowed.
"""

from __future__ import annotations

_UNITS = {"ns": 1, "us": 1_000, "\u00b5s": 1_000, "\u03bcs": 1_000, "ms": 1_000_000,
          "s": 1_000_000_000, "m": 60_000_000_000, "h": 3_600_000_000_000}
_MAX = 1 << 63


def _q(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def parse_ns(text: str) -> int:
    """The duration in nanoseconds, or ValueError with Go's message (`time: invalid duration "x"`,
    `time: missing unit in duration "5"`, `time: unknown unit "x" in duration "5x"`)."""
    s, neg = text, False
    if s[:1] in ("-", "+"):
        neg, s = s[0] == "-", s[1:]
    if s == "0":
        return 0
    if not s:
        raise ValueError(f"time: invalid duration {_q(text)}")
    total = 0
    while s:
        i = 0
        while i < len(s) and s[i].isascii() and s[i].isdigit():
            i += 1
        whole, s = s[:i], s[i:]
        frac = ""
        if s[:1] == ".":
            j = 1
            while j < len(s) and s[j].isascii() and s[j].isdigit():
                j += 1
            frac, s = s[1:j], s[j:]
        if not whole and not frac:  # no digits at all: ".s", "x", "1h.m"
            raise ValueError(f"time: invalid duration {_q(text)}")
        i = 0
        while i < len(s) and s[i] != "." and not (s[i].isascii() and s[i].isdigit()):
            i += 1
        if i == 0:
            raise ValueError(f"time: missing unit in duration {_q(text)}")
        unit, s = s[:i], s[i:]
        if unit not in _UNITS:
            raise ValueError(f"time: unknown unit {_q(unit)} in duration {_q(text)}")
        scale = _UNITS[unit]
        v = int(whole or "0")
        if v > _MAX // scale:
            raise ValueError(f"time: invalid duration {_q(text)}")
        v *= scale
        if frac:  # as Go: the digits that fit in an int64, then a float64 product
            f, div = 0, 1.0
            for c in frac:
                if f > (_MAX - 1) // 10:
                    break
                f, div = f * 10 + int(c), div * 10
            v += int(float(f) * (scale / div))
        total += v
        if total > _MAX - (0 if neg else 1):
            raise ValueError(f"time: invalid duration {_q(text)}")
    return -total if neg else total


def parse_seconds(text: str) -> float:
    """The same, in seconds."""
    return parse_ns(text) / 1e9
