"""Container operations Docker has beyond the lifecycle: pause/unpause (the cgroup freezer: v1
`freezer.state`, v2 `cgroup.freeze`), diff (what the upper dir says changed), and the `until=` /
`label=` filters the prune commands share."""

from __future__ import annotations

import os
import re
import stat
import time

from minidock.engine import lifecycle
from minidock.errors import Conflict, InvalidArgument
from minidock.state import containers


def _runtime(rec: dict):
    """The runtime's Container (its cgroup's freezer: pause/resume)."""
    from minidock.runtime import load

    return load(rec["Id"])


def pause(cid: str) -> None:
    rec = lifecycle.refresh(cid)
    st = rec["State"]
    if not st.get("Running"):
        raise Conflict(f"Container {cid} is not running")
    if st.get("Paused"):
        raise Conflict(f"Container {cid} is already paused")
    rt = _runtime(rec)
    rt.pause()
    deadline = time.monotonic() + 10
    while rt.status() != "paused" and time.monotonic() < deadline:  # v1: FREEZING until every task stops
        time.sleep(0.01)
    containers.update_state(cid, Paused=True, Status="paused")  # (takes the record's lock)
    from minidock.engine import events

    events.container_event(rec, "pause")


def unpause(cid: str) -> None:
    rec = lifecycle.refresh(cid)
    if not rec["State"].get("Paused"):
        raise Conflict(f"Container {cid} is not paused")
    _runtime(rec).resume()
    containers.update_state(cid, Paused=False, Status="running")
    from minidock.engine import events

    events.container_event(rec, "unpause")


# --- diff -----------------------------------------------------------------------------------------
def diff(cid: str) -> list[tuple[str, str]]:
    """Docker's `diff`: (kind, path) with kind A (added), C (changed), D (deleted), from the
    overlayfs upper dir against the image's layers. A directory that exists below and holds a
    change is C; an overlay whiteout (char device 0/0) or an opaque directory's hidden entries are
    D. Sorted by path, as Docker prints them."""
    rec = containers.load(cid)
    upper = str(containers.cdir(cid) / "upper")
    lowers = [p for p in (rec.get("GraphDriver", {}).get("Data", {}).get("LowerDir") or "").split(":") if p]
    if not lowers:
        try:
            lowers = list(reversed(lifecycle._image_layers(rec)))
        except Exception:  # noqa: BLE001 - an image removed since: every upper entry is an addition
            lowers = []

    def in_lower(rel: str) -> bool:
        return any(os.path.lexists(os.path.join(lo, rel)) for lo in lowers)

    out: list[tuple[str, str]] = []
    if not os.path.isdir(upper):
        return out
    for dirpath, dirnames, filenames in os.walk(upper):
        rel_dir = os.path.relpath(dirpath, upper)
        for name in sorted(dirnames + filenames):
            full = os.path.join(dirpath, name)
            rel = os.path.normpath(os.path.join(rel_dir, name))
            try:
                st = os.lstat(full)
            except OSError:
                continue
            if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
                out.append(("D", "/" + rel))
                continue
            out.append(("C" if in_lower(rel) else "A", "/" + rel))
            if stat.S_ISDIR(st.st_mode) and _opaque(full):
                for lo in lowers:
                    lower_dir = os.path.join(lo, rel)
                    if os.path.isdir(lower_dir):
                        for hidden in os.listdir(lower_dir):
                            if not os.path.lexists(os.path.join(full, hidden)):
                                out.append(("D", "/" + os.path.join(rel, hidden)))
    # the engine's own files (Docker's init layer) are not changes; nor is a directory that only
    # holds them
    from minidock.engine.hostopts import INIT_FILES

    out = [(k, p) for k, p in out if p not in INIT_FILES]
    init_parents = {os.path.dirname(f) for f in INIT_FILES}
    out = [(k, p) for k, p in out if not (k == "C" and p in init_parents and not any(
        q.startswith(p + "/") for _, q in out))]
    # a changed file makes its parent directories "changed" too (Docker lists them)
    seen = {p for _, p in out}
    for _, p in list(out):
        parent = os.path.dirname(p)
        while parent not in ("/", "") and parent not in seen:
            seen.add(parent)
            out.append(("C", parent))
            parent = os.path.dirname(parent)
    return sorted(set(out), key=lambda kp: kp[1])


def _opaque(path: str) -> bool:
    for attr in ("trusted.overlay.opaque", "user.overlay.opaque"):
        try:
            if os.getxattr(path, attr, follow_symlinks=False) == b"y":
                return True
        except OSError:
            continue
    return False


# --- prune filters --------------------------------------------------------------------------------
def parse_duration(v: str) -> float | None:
    """Go's time.ParseDuration in seconds: `300ms`, `1.5h`, `2h45m`; None if it is not one."""
    from minidock.util import goduration

    try:
        return goduration.parse_seconds(v)
    except ValueError:
        return None


def parse_time(value: str, now: float | None = None) -> float:
    """A point in time as Docker's --since/--until/until= take it: Unix seconds (fraction
    allowed), RFC 3339 (with or without zone and seconds, or a date only), or a duration ago."""
    now = time.time() if now is None else now
    v = value.strip()
    if re.fullmatch(r"\d+(\.\d+)?", v):
        return float(v)
    dur = parse_duration(v)
    if dur is not None:
        return now - dur
    m = re.fullmatch(r"(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(\.\d+)?)?)?"
                     r"(Z|[+-]\d{2}:?\d{2})?", v)
    if not m:
        raise InvalidArgument(f'failed to parse value as time or duration: "{value}"')
    import calendar

    y, mo, d, hh, mi, ss, frac, zone = m.groups()
    fields = (int(y), int(mo), int(d), int(hh or 0), int(mi or 0), int(ss or 0))
    if zone is None and hh is not None:  # Docker: a time without a zone is local time
        t = time.mktime((*fields, 0, 0, -1))
    else:
        t = calendar.timegm((*fields, 0, 0, 0))
        if zone and zone != "Z":
            sign = 1 if zone[0] == "+" else -1
            z = zone[1:].replace(":", "")
            t -= sign * (int(z[:2]) * 3600 + int(z[2:]) * 60)
    return t + (float(frac) if frac else 0.0)


def prune_filter(filters: list[str]):
    """`--filter until=...` and `label=k[=v]` / `label!=k[=v]` -> a test on (created, labels)."""
    until: list[float] = []
    want: list[tuple[str, str | None]] = []
    avoid: list[tuple[str, str | None]] = []
    for f in filters:
        if f.startswith("label!="):
            k, eq, v = f[len("label!="):].partition("=")
            avoid.append((k, v if eq else None))
            continue
        key, eq, val = f.partition("=")
        if not eq:
            raise InvalidArgument(f"bad format of filter (expected name=value): {f}")
        if key == "until":
            until.append(parse_time(val))
        elif key == "label":
            k, eq2, v = val.partition("=")
            want.append((k, v if eq2 else None))
        else:
            raise InvalidArgument(f"invalid filter '{key}'", exit_code=1)

    def test(created: float | None, labels: dict) -> bool:
        labels = labels or {}
        if until and (created is None or not all(created < u for u in until)):
            return False
        for k, v in want:
            if k not in labels or (v is not None and labels[k] != v):
                return False
        for k, v in avoid:
            if k in labels and (v is None or labels[k] == v):
                return False
        return True

    return test
