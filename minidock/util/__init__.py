"""Small helpers every layer may use (no minidock imports beyond errors and paths).

    now()          the one clock for records: RFC 3339 UTC with nanoseconds, like Docker's
    human_size()   Docker's size units (powers of 1000, 3 significant digits)
    proc_start_time(pid)  tells a live process from a recycled PID (None once gone or a zombie)
    read_text(path)       a small file's text, "" when it cannot be read (/proc, /etc files)
"""

from __future__ import annotations

import os
import time

# the engine's version where the engine needs it (the layers may not import the root package; the
# metadata lookup costs ~10 ms); tests/unit/test_version.py keeps it equal to minidock.__version__
# and pyproject.toml's
VERSION = "0.1.0"


def now() -> str:
    """The current time as Docker writes it in records: 2026-11-26T13:34:35.123456789Z."""
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e9):09d}Z"


def human_size(n: float) -> str:
    """Docker's units: powers of 1000, 3 significant digits (4.26MB)."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.3g}{unit}" if unit != "B" else f"{int(n)}B"
        n /= 1000
    return f"{n}B"


def proc_start_time(pid: int) -> str | None:
    """Field 22 of /proc/PID/stat: tells a live process from a recycled PID.

    None for a process that is gone or a zombie (dead, waiting for a parent that may never reap
    it: some hosts' PID 1 does not). Here, not in the runtime, so that `ps` and
    `minidock-runtime state` check liveness without importing the runtime's process module.
    """
    try:  # (plain system calls: `ps` reads one per running container)
        fd = os.open(f"/proc/{pid}/stat", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        data = os.read(fd, 4096).decode(errors="replace")
    except OSError:
        return None
    finally:
        os.close(fd)
    fields = data.rsplit(")", 1)[1].split()
    return None if fields[0] in ("Z", "X") else fields[19]


def read_text(path: str) -> str:
    """A small file's text, or "" when it is missing or unreadable (a /proc file of a process that
    just left, the host's /etc/hosts)."""
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""
