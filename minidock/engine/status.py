"""A container's record with a State that is true, cheaply: what `ps`, `inspect` and `logs` read.

`refresh()` is engine.lifecycle.refresh() for the common case -- the container is not running,
or its monitor is alive (one read of /proc/PID/stat) -- without importing the lifecycle module
(signals, attach, events: ~10 ms of a `ps`). A container whose monitor died is handed to
lifecycle.refresh(), which repairs the record (or restarts the container) under its lock.
"""

from __future__ import annotations

from minidock.state import containers
from minidock.util import proc_start_time


def monitor_alive(st: dict) -> bool:
    mpid = st.get("MonitorPid")
    return bool(mpid) and proc_start_time(mpid) == st.get("MonitorStart")


def refresh(cid: str, *, restart: bool = True, state: dict | None = None) -> dict:
    """``state``: the container's state.json, when the caller has just read it."""
    rec = containers.full(cid, state)
    st = rec["State"]
    if not st.get("Running") or monitor_alive(st):
        return rec
    from minidock.engine import lifecycle

    return lifecycle.refresh(cid, restart=restart)
