"""Container logs, in Docker's json-file format: one JSON object per line.

    {"log": "hello\\n", "stream": "stdout", "time": "2026-11-25T03:40:00.123456789Z"}

The supervisor of a container (the monitor of a detached one, or the `run` process of a
foreground one) appends; `minidock logs` reads, with --tail, -t and -f.
"""

from __future__ import annotations

import json
import os
import sys
import time

from minidock.util import now


class LogWriter:
    def __init__(self, path: str):
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        self.partial = {"stdout": b"", "stderr": b""}

    def write(self, stream: str, data: bytes) -> None:
        buf = self.partial[stream] + data
        *lines, rest = buf.split(b"\n")
        out = []
        for line in lines:
            out.append(self._entry(stream, line + b"\n"))
        if len(rest) > 16384:  # a very long line without newline: flush it anyway, like Docker
            out.append(self._entry(stream, rest))
            rest = b""
        self.partial[stream] = rest
        if out:
            os.write(self.fd, "".join(out).encode())

    def _entry(self, stream: str, data: bytes) -> str:
        return json.dumps({"log": data.decode("utf-8", "replace"), "stream": stream, "time": now()}) + "\n"

    def close(self) -> None:
        for stream, rest in self.partial.items():
            if rest:
                os.write(self.fd, self._entry(stream, rest).encode())
        self.partial = {"stdout": b"", "stderr": b""}
        os.close(self.fd)


def _format(entry: dict, timestamps: bool) -> str:
    return (entry["time"] + " " if timestamps else "") + entry["log"]


def read(path: str, *, tail: int | None = None, timestamps: bool = False, since: float | None = None):
    """Yield (stream, text) of the stored lines (the last ``tail`` if given)."""
    try:
        with open(path) as f:
            lines = f.readlines()
    except FileNotFoundError:
        return
    if tail is not None:
        lines = lines[-tail:] if tail > 0 else []
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        yield entry["stream"], _format(entry, timestamps)


def follow(path: str, is_running, *, tail: int | None = None, timestamps: bool = False) -> None:
    """`logs -f`: print what is there, then new lines until the container stops."""
    def emit(stream: str, text: str) -> None:
        out = sys.stdout if stream == "stdout" else sys.stderr
        out.write(text)
        out.flush()

    for stream, text in read(path, tail=tail, timestamps=timestamps):
        emit(stream, text)
    try:
        f = open(path)  # noqa: SIM115 - kept open while following
    except FileNotFoundError:
        return
    with f:
        f.seek(0, os.SEEK_END)
        buf = ""
        idle_checks = 0
        while True:
            chunk = f.readline()
            if chunk:
                buf += chunk
                if buf.endswith("\n"):
                    try:
                        entry = json.loads(buf)
                        emit(entry["stream"], _format(entry, timestamps))
                    except ValueError:
                        pass
                    buf = ""
                continue
            if not is_running():
                idle_checks += 1
                if idle_checks > 2:  # drained what the supervisor wrote before it recorded the exit
                    return
            time.sleep(0.05)
