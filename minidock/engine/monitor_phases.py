"""The full engine's part in supervising a detached container: the phases the lean monitor
(engine/monitor.py) runs as short-lived children, with the engine's interpreter.

    python -c '...monitor_phases.main()' <phase> <args...>     (fd 3: a socket to the monitor)

* ``exit CID CODE RAN BACKOFF FORCED``: the OOM flag, then lifecycle.finish (undo the journal,
  State, the events, --rm; with Docker's back-off, the restart decision) -> {"restart": delay,
  "backoff": s, "prefer": addresses} or {"done": true};
* ``restart CID BACKOFF PREFER``: unless stopped or removed meanwhile, count the restart and
  launch the container again; ``launch CID INTERACTIVE``: a pod's next container. Both answer
  with lifecycle.handover()'s description and pass the container's stdio fds with SCM_RIGHTS;
  the container's PID 1 is our child (a subreaper's), re-parented to the monitor when we exit;
* ``health CID IN_START_PERIOD``: one probe and its record -> {"status": ...};
* ``stop CID``: --health-on-failure=stop.

Errors are answered as {"error", "hint", "code"}; tracebacks go to our stderr, the monitor's
log (containers/<id>/monitor.log).
"""

from __future__ import annotations

import _socket  # (socket.py and array: ~3 ms of every phase's start, for one sendmsg)
import json
import os
import signal
import sys

from minidock.engine import attach, lifecycle
from minidock.engine.monitor import HELPER_SOCKET_FD
from minidock.errors import MinidockError, NotFound
from minidock.state import containers


def _exit(cid: str, code: str, ran: str, backoff: str, forced: str) -> dict:
    oom = False
    try:
        from minidock.runtime import load

        oom = load(cid).oom_killed()
    except Exception:  # noqa: BLE001 - no cgroup support, or gone: no OOM information
        pass
    try:
        addresses = lifecycle._addresses(containers.load(cid))  # (as it ran: finish clears them)
    except NotFound:
        return {"done": True}
    b = lifecycle.Backoff()
    b.timeout = float(backoff)
    delay = lifecycle.finish(cid, int(code), oom_killed=oom, ran=float(ran), backoff=b,
                             forced=forced == "1")
    if os.path.exists(containers.cdir(cid)):  # (recorded: the monitor's copy is no longer needed)
        lifecycle.saved_exit(cid, clear=True)
    if delay is None:
        return {"done": True}
    return {"restart": delay, "backoff": b.timeout, "prefer": json.dumps(addresses)}


def _restart(cid: str, backoff: str, addresses: str):
    if not lifecycle._wait_restart(cid, 0):  # stopped or removed during the back-off
        return {"gone": True}
    lifecycle._count_restart(cid)
    try:
        rec = containers.load(cid)  # `update --restart` may have changed the policy
    except NotFound:
        return {"gone": True}
    lifecycle.prefer(rec, json.loads(addresses or "{}"))
    return _launch(rec, bool(rec["Config"].get("OpenStdin")), user_start=False, backoff=float(backoff))


def _launch_new(cid: str, interactive: str):
    try:
        rec = containers.load(cid)
    except NotFound as e:
        return {"error": e.message, "code": e.exit_code}
    return _launch(rec, interactive == "1", user_start=True, backoff=lifecycle.Backoff().timeout)


def _launch(rec: dict, interactive: bool, *, user_start: bool, backoff: float):
    cid = rec["Id"]
    io = attach.IO(tty_=bool(rec["Config"].get("Tty")), interactive=interactive, attached=False)
    io.stdin_fifo = str(containers.cdir(cid) / "stdin")
    try:
        st = lifecycle.launch(rec, io, user_start=user_start, monitor_pid=os.getppid())
    except Exception as e:  # noqa: BLE001
        if not isinstance(e, MinidockError):
            e = MinidockError(f"internal error: {type(e).__name__}: {e}")
        if not user_start:  # a restart that failed: Docker records the error and gives up
            with containers.lock(cid):
                s = containers.load_state(cid)
                s.update(Status="exited", Running=False, Restarting=False, Pid=0,
                         MonitorPid=0, Error=e.message, ExitCode=e.exit_code)
                containers.save_state(cid, s)
        if rec["HostConfig"].get("AutoRemove") and os.path.exists(containers.cdir(cid)):
            lifecycle.remove(cid, force=True, volumes=True)
        return {"error": e.message, "hint": e.hint, "code": e.exit_code}
    if not user_start and containers.load_state(cid).get("ManuallyStopped"):
        lifecycle._signal(st.rt.pid, signal.SIGKILL)  # stopped or removed while we restarted it
    return lifecycle.handover(st, backoff)


def _health(cid: str, in_start: str) -> dict:
    from minidock.engine import health

    return {"status": health.check_once(cid, in_start_period=in_start == "1")}


def _stop(cid: str) -> dict:
    lifecycle.stop(cid)
    return {"done": True}


PHASES = {"exit": _exit, "restart": _restart, "launch": _launch_new, "health": _health, "stop": _stop}


def main(argv: list[str] | None = None) -> int:
    kind, *args = sys.argv[1:] if argv is None else argv
    sock = _socket.socket(fileno=HELPER_SOCKET_FD)
    fds: list[int] = []
    try:
        out = PHASES[kind](*args)
        if isinstance(out, tuple):
            out, fds = out
    except BaseException as e:  # noqa: BLE001 - reported to the monitor, traced to its log
        import traceback

        traceback.print_exc()
        out = ({"error": e.message, "hint": e.hint, "code": e.exit_code} if isinstance(e, MinidockError)
               else {"error": f"{kind}: {type(e).__name__}: {e}", "code": 125})
    sys.stderr.flush()
    anc = [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, b"".join(fd.to_bytes(4, sys.byteorder) for fd in fds))] \
        if fds else []
    try:
        sock.sendmsg([json.dumps(out).encode()], anc)
    except OSError:
        return 1
    return 0
