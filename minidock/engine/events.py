"""The event log: what happened to containers, images, networks and volumes, in Docker's shape.

There is no daemon to broadcast events, so whichever process causes one (the CLI for `create`,
`rm`, `pull`; a container's monitor for `die`, `restart`, `health_status`) appends it, as one
JSON line, to a per-host log under the state root:

    events/events.log       the current file (append-only, O_APPEND + flock per line)
    events/events.log.1     the previous one; rotated when the current one passes MAX_BYTES

so the log is bounded at about 2 x MAX_BYTES (env MINIDOCK_EVENTS_MAX_BYTES, default 1 MiB,
~4,000 events). Each line is exactly what `docker events --format '{{json .}}'` prints:

    {"status":"start","id":"<64 hex>","from":"busybox","Type":"container","Action":"start",
     "Actor":{"ID":"<64 hex>","Attributes":{"image":"busybox","name":"web"}},
     "scope":"local","time":1764164400,"timeNano":1764164400123456789}

(status/id/from are Docker's deprecated fields, filled for container events; status/id for
image events.) `follow()` keeps the file open and reads only what was appended since (a stat
per poll; a rotation is noticed by the inode change), never the whole log again.

Emitting never fails the operation that caused the event: a full disk loses the event only.
This module imports nothing heavy (the monitor uses it).
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Iterator

from minidock import paths

DEFAULT_MAX_BYTES = 1 << 20


def log_dir() -> str:
    return os.path.join(paths.root_str(), "events")  # (no pathlib: `stop` and `rm` append here)


def log_path() -> str:
    return os.path.join(log_dir(), "events.log")


def max_bytes() -> int:
    try:
        return max(4096, int(os.environ.get("MINIDOCK_EVENTS_MAX_BYTES", DEFAULT_MAX_BYTES)))
    except ValueError:
        return DEFAULT_MAX_BYTES


def message(type_: str, action: str, actor_id: str, attributes: dict | None = None,
            *, time_ns: int | None = None, scope: str = "local") -> dict:
    """One event in the field order of Docker's events.Message."""
    t = time.time_ns() if time_ns is None else time_ns
    attrs = {k: str(v) for k, v in (attributes or {}).items()}
    msg: dict = {}
    if type_ == "container":
        msg = {"status": action, "id": actor_id, "from": attrs.get("image", "")}
        if not msg["from"]:
            del msg["from"]
    elif type_ == "image":
        msg = {"status": action, "id": actor_id}
    msg.update({"Type": type_, "Action": action, "Actor": {"ID": actor_id, "Attributes": attrs},
                "scope": scope, "time": t // 1_000_000_000, "timeNano": t})
    return msg


def container_attributes(rec: dict, **extra) -> dict:
    """Docker's attributes of a container event: its labels, then image and name, then extras."""
    attrs = dict((rec.get("Config") or {}).get("Labels") or {})
    image = (rec.get("Config") or {}).get("Image") or rec.get("ImageRef")
    if image:
        attrs["image"] = image
    attrs["name"] = (rec.get("Name") or "").lstrip("/")
    attrs.update({k: str(v) for k, v in extra.items()})
    return attrs


def emit(type_: str, action: str, actor_id: str, attributes: dict | None = None,
         *, scope: str = "local") -> dict:
    """Append one event to the host's log; returns it (also when it could not be written)."""
    msg = message(type_, action, actor_id, attributes, scope=scope)
    line = (json.dumps(msg, separators=(",", ":")) + "\n").encode()
    try:
        _append(line)
    except OSError:
        pass
    return msg


def container_event(rec: dict, action: str, **extra) -> dict:
    return emit("container", action, rec["Id"], container_attributes(rec, **extra))


def exec_text(command: list[str]) -> str:
    """What follows "exec_create: " in Docker's action: the program, a space, the arguments
    (so `exec c true` is "exec_create: true " with its trailing space, as dockerd prints it)."""
    return (command[0] if command else "") + " " + " ".join(command[1:])


def _append(line: bytes) -> None:
    path = log_path()
    for _ in range(3):
        try:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except FileNotFoundError:
            os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            st = os.fstat(fd)
            try:
                if os.stat(path).st_ino != st.st_ino:
                    continue  # rotated while we waited for the lock: write to the new file
            except FileNotFoundError:
                continue
            if st.st_size and st.st_size + len(line) > max_bytes():
                os.replace(path, path + ".1")  # the oldest half goes; readers follow by inode
                continue
            os.write(fd, line)
            return
        finally:
            os.close(fd)


# --- reading -------------------------------------------------------------------------------------
def _lines(path: str) -> Iterator[dict]:
    try:
        f = open(path, "rb")  # noqa: SIM115
    except FileNotFoundError:
        return
    with f:
        for raw in f:
            if raw.endswith(b"\n"):
                try:
                    yield json.loads(raw)
                except ValueError:
                    continue


def history() -> Iterator[dict]:
    """Every stored event, oldest first."""
    path = log_path()
    yield from _lines(path + ".1")
    yield from _lines(path)


def matches(msg: dict, filters: dict[str, list[str]]) -> bool:
    """Docker's event filters: values of one key are ORed, different keys ANDed."""
    attrs = msg.get("Actor", {}).get("Attributes", {})
    actor = msg.get("Actor", {}).get("ID", "")
    typ = msg.get("Type", "")
    for key, vals in filters.items():
        if key == "type":
            ok = typ in vals
        elif key == "event":
            action = msg.get("Action", "")
            ok = any(action == v or action.split(":")[0] == v for v in vals)
        elif key in ("container", "network", "volume", "image", "plugin", "daemon", "node",
                     "service", "secret", "config"):
            if key == "image" and typ == "container":
                ok = any(attrs.get("image") == v or attrs.get("image", "").split(":")[0] == v
                         for v in vals)
            elif key == "image" and typ == "image":
                ok = any(actor == v or actor.startswith(v) or attrs.get("name") == v for v in vals)
            else:
                ok = typ == key and any(actor == v or (len(v) >= 1 and actor.startswith(v))
                                        or attrs.get("name") == v for v in vals)
        elif key == "label":
            ok = any(_label_match(attrs, v) for v in vals)
        elif key == "scope":
            ok = msg.get("scope") in vals
        else:
            ok = True
        if not ok:
            return False
    return True


def _label_match(attrs: dict, val: str) -> bool:
    k, sep, v = val.partition("=")
    return k in attrs and (not sep or attrs[k] == v)


def follow(since_ns: int | None, until_ns: int | None, filters: dict[str, list[str]],
           *, poll: float = 0.1, stop=None) -> Iterator[dict]:
    """Stored events from ``since_ns`` (none if None), then live ones until ``until_ns``.

    Live events are read from the open file from where we were: new bytes only. ``stop`` (a
    callable) ends the stream early (tests)."""
    path = log_path()
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
    f = os.fdopen(fd, "rb")
    with f:
        if since_ns is not None:
            yield from (m for m in _lines(path + ".1") if _in_range(m, since_ns, until_ns)
                        and matches(m, filters))
        else:
            f.seek(0, os.SEEK_END)
        buf = b""
        while True:
            chunk = f.readline()
            if chunk:
                buf += chunk
                if not buf.endswith(b"\n"):
                    continue
                try:
                    m = json.loads(buf)
                except ValueError:
                    m = None
                buf = b""
                if m is None:
                    continue
                if until_ns is not None and m["timeNano"] > until_ns:
                    return
                if (since_ns is None or m["timeNano"] >= since_ns) and matches(m, filters):
                    yield m
                continue
            if until_ns is not None and time.time_ns() > until_ns:
                return
            if stop is not None and stop():
                return
            try:
                ino = os.fstat(f.fileno()).st_ino
                if os.stat(path).st_ino != ino:
                    f.close()  # rotated: what we had is drained, continue in the new file
                    try:
                        if os.stat(path + ".1").st_ino != ino:
                            # rotated twice since we looked: the file in between is .1 now
                            for m in _lines(path + ".1"):
                                if _in_range(m, since_ns, until_ns) and matches(m, filters):
                                    yield m
                    except FileNotFoundError:
                        pass
                    f = open(path, "rb")  # noqa: SIM115
                    continue
            except FileNotFoundError:
                pass
            time.sleep(poll)


def _in_range(m: dict, since_ns: int | None, until_ns: int | None) -> bool:
    t = m.get("timeNano", 0)
    return (since_ns is None or t >= since_ns) and (until_ns is None or t <= until_ns)


def parse_time(text: str, now_ns: int | None = None) -> int:
    """Docker's --since/--until: a Unix timestamp (with fraction), an RFC 3339 date, a date
    (2006-01-02), or a duration relative to now (10m, 1h30m)."""
    from minidock.errors import InvalidArgument

    now_ns = time.time_ns() if now_ns is None else now_ns
    s = text.strip()
    try:
        if s.replace(".", "", 1).isdigit():
            sec, _, frac = s.partition(".")
            return int(sec) * 1_000_000_000 + int((frac + "000000000")[:9])
        return now_ns - parse_duration(s)
    except InvalidArgument:
        pass
    import calendar
    import re

    m = re.fullmatch(r"(\d{4}-\d{2}-\d{2})(?:[T ](\d{2}:\d{2}(?::\d{2})?)(\.\d+)?)?"
                     r"(Z|[+-]\d{2}:?\d{2})?", s)
    if not m:
        raise InvalidArgument(f"failed to parse value as time or duration: {text!r}")
    date, clock, frac, tz = m.groups()
    clock = clock or "00:00:00"
    if clock.count(":") == 1:
        clock += ":00"
    tm = time.strptime(f"{date}T{clock}", "%Y-%m-%dT%H:%M:%S")
    if tz is None:
        secs = int(time.mktime(tm))  # Docker: local time when no zone is given
    else:
        secs = calendar.timegm(tm)
        if tz != "Z":
            sign = -1 if tz[0] == "+" else 1
            hh, mm = int(tz[1:3]), int(tz[-2:])
            secs += sign * (hh * 3600 + mm * 60)
    return secs * 1_000_000_000 + int(((frac or ".")[1:] + "000000000")[:9])


def parse_duration(text: str) -> int:
    """Go's time.ParseDuration -> nanoseconds (InvalidArgument with Go's message otherwise)."""
    from minidock.errors import InvalidArgument
    from minidock.util import goduration

    try:
        return goduration.parse_ns(text)
    except ValueError as e:
        raise InvalidArgument(str(e)) from None
