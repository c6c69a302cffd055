"""Container logs: Docker's logging drivers json-file, local and none.

json-file (the default) is Docker's format, one JSON object per line:

    {"log": "hello\\n", "stream": "stdout", "time": "2026-11-25T03:40:00.123456789Z"}

`local` keeps the same lines (Docker's local driver stores protobuf records; minidock keeps one
format) with Docker's local defaults: rotated at 20 MB, 5 files, compressed. `none` stores
nothing (`logs` then says so, as Docker does).

--log-opt max-size=10m max-file=3 compress=true: once a line has brought the file to max-size,
the file is rotated (ctr.log -> ctr.log.1[.gz] -> ... up to max-file files in all), as Docker's
json-file does; lines are written whole, one write each, so a rotation never splits or drops
the line being written. `logs` reads the rotated files oldest first, and `logs -f` follows across rotations.

The supervisor of a container (the monitor of a detached one, or the `run` process of a
foreground one) appends; `minidock logs` reads, with --tail, -t, -f, --since and --until.
"""

from __future__ import annotations

import os
import sys
import time

from minidock.errors import InvalidArgument, MinidockError
from minidock.util import jsonfast

DRIVERS = ("json-file", "local", "none")
_OPTS = {"json-file": {"max-size", "max-file", "compress", "labels", "labels-regex", "env", "env-regex",
                       "tag", "mode", "max-buffer-size"},
         "local": {"max-size", "max-file", "compress", "mode", "max-buffer-size"},
         "none": {"mode", "max-buffer-size"}}
_LOCAL_DEFAULTS = {"max-size": "20m", "max-file": "5", "compress": "true"}


def _size(text: str) -> int:
    import re  # (gzip, json and re are imported where used: `logs` and `run` start without them)

    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([kmg]?)b?", text.strip().lower())
    if not m:
        raise InvalidArgument(f"invalid value for max-size: {text}")
    return int(float(m.group(1)) * 1024 ** " kmg".index(m.group(2) or " "))


def log_config(driver: str | None, opts: list[str]) -> dict:
    """--log-driver and --log-opt -> HostConfig.LogConfig, validated as Docker validates them."""
    driver = driver or "json-file"
    if driver not in DRIVERS:
        raise MinidockError(f"failed to create task for container: failed to initialize logging driver: "
                            f"logger: no log driver named '{driver}' is registered",
                            "minidock has the json-file, local and none drivers.")
    config: dict[str, str] = {}
    for o in opts:
        k, eq, v = o.partition("=")
        if not eq:
            raise InvalidArgument(f"invalid key value pair format in logging opts: {o}")
        if k not in _OPTS[driver]:
            raise InvalidArgument(f"unknown log opt '{k}' for {driver} log driver")
        config[k] = v
    if "max-size" in config:
        if _size(config["max-size"]) <= 0 and driver == "local":
            raise InvalidArgument("max-size must be a positive number")
    if "max-file" in config:
        try:
            n = int(config["max-file"])
        except ValueError:
            raise InvalidArgument(f"invalid value for max-file: {config['max-file']}") from None
        if n < 1:
            raise InvalidArgument("max-file cannot be less than 1")
        if n > 1 and "max-size" not in config and driver == "json-file":
            raise InvalidArgument("max-file can only be used with max-size")  # Docker: needs a size
    if "compress" in config:
        if config["compress"].lower() not in ("true", "false", "1", "0"):
            raise InvalidArgument(f"error reading compress log option: {config['compress']}")
    return {"Type": driver, "Config": config}


def writer_options(path: str, config: dict | None = None) -> dict:
    """HostConfig.LogConfig -> the writer's parsed options (monitor.LogFile's arguments)."""
    config = config or {"Type": "json-file", "Config": {}}
    driver = config.get("Type") or "json-file"
    opts = dict(_LOCAL_DEFAULTS) if driver == "local" else {}
    opts.update(config.get("Config") or {})
    return {"path": path, "driver": driver,
            "max_size": _size(opts["max-size"]) if opts.get("max-size") else 0,
            "max_file": int(opts.get("max-file") or 1),
            "compress": str(opts.get("compress", "false")).lower() in ("true", "1")}


def LogWriter(path: str, config: dict | None = None):  # noqa: N802 - the writer's old name
    """The writer of a container's log: the lean monitor's (a detached container's monitor
    writes with it; so does a foreground `run`)."""
    from minidock.engine.monitor import LogFile

    return LogFile(**writer_options(path, config))


def files(path: str) -> list[str]:
    """The log and its rotated files, oldest first."""
    out = []
    i = 1
    while True:
        found = next((f"{path}.{i}{sfx}" for sfx in ("", ".gz") if os.path.exists(f"{path}.{i}{sfx}")), None)
        if not found:
            break
        out.append(found)
        i += 1
    return list(reversed(out)) + [path]


def _lines(path: str) -> list[str]:
    out = []
    for p in files(path):
        try:
            if p.endswith(".gz"):
                import gzip

                with gzip.open(p, "rt") as f:
                    out += f.readlines()
            else:
                with open(p) as f:
                    out += f.readlines()
        except FileNotFoundError:
            continue
    return out


def entry_time(entry: dict) -> float:
    """A log line's RFC 3339 nanosecond time -> Unix seconds."""
    import calendar
    import re

    t = entry.get("time", "")
    try:
        base = calendar.timegm(time.strptime(t[:19], "%Y-%m-%dT%H:%M:%S"))
    except ValueError:
        return 0.0
    m = re.match(r"\.(\d+)", t[19:])
    return base + (float("0." + m.group(1)) if m else 0.0)


def _format(entry: dict, timestamps: bool) -> str:
    return (entry["time"] + " " if timestamps else "") + entry["log"]


def read(path: str, *, tail: int | None = None, timestamps: bool = False, since: float | None = None,
         until: float | None = None):
    """Yield (stream, text) of the stored lines, rotated files included (--since/--until in Unix
    seconds select by the line's time; then the last ``tail``)."""
    entries = []
    for line in _lines(path):
        try:
            entry = jsonfast.loads(line)
        except ValueError:
            continue
        if since is not None or until is not None:
            t = entry_time(entry)
            if (since is not None and t < since) or (until is not None and t > until):
                continue
        entries.append(entry)
    if tail is not None:
        entries = entries[-tail:] if tail > 0 else []
    for entry in entries:
        yield entry["stream"], _format(entry, timestamps)


def follow(path: str, is_running, *, tail: int | None = None, timestamps: bool = False,
           since: float | None = None, until: float | None = None) -> None:
    """`logs -f`: print what is there, then new lines until the container stops (or --until),
    reopening the file when the writer rotates it."""
    def emit(stream: str, text: str) -> None:
        out = sys.stdout if stream == "stdout" else sys.stderr
        out.write(text)
        out.flush()

    for stream, text in read(path, tail=tail, timestamps=timestamps, since=since, until=until):
        emit(stream, text)
    try:
        f = open(path)  # noqa: SIM115 - kept open while following
    except FileNotFoundError:
        return
    try:
        f.seek(0, os.SEEK_END)
        ino = os.fstat(f.fileno()).st_ino
        buf = ""
        idle_checks = 0
        while True:
            if until is not None and time.time() > until:
                return
            chunk = f.readline()
            if chunk:
                buf += chunk
                if buf.endswith("\n"):
                    try:
                        entry = jsonfast.loads(buf)
                        if until is None or entry_time(entry) <= until:
                            emit(entry["stream"], _format(entry, timestamps))
                    except ValueError:
                        pass
                    buf = ""
                continue
            try:
                if os.stat(path).st_ino != ino:  # rotated: the rest is in the new file
                    f.close()
                    f = open(path)  # noqa: SIM115
                    ino = os.fstat(f.fileno()).st_ino
                    continue
            except FileNotFoundError:
                pass
            if not is_running():
                idle_checks += 1
                if idle_checks > 2:  # drained what the supervisor wrote before it recorded the exit
                    return
            time.sleep(0.05)
    finally:
        f.close()
