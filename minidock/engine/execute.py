"""`exec` and `top`: another process in a running container, and the list of its processes.

exec joins all of the container's namespaces and its cgroup (the runtime's exec_process), with
the container's capabilities and no_new_privs; -u, -w and -e change user, directory and env.
"""

from __future__ import annotations

import os
import time

from minidock.engine import attach, bundle, lifecycle
from minidock.errors import Conflict, MinidockError
from minidock.state import containers


def _running(cid: str) -> dict:
    rec = lifecycle.refresh(cid)
    if not rec["State"].get("Running"):
        raise Conflict(f"container {cid} is not running")
    if rec["State"].get("Paused"):
        raise Conflict(f"container {cid} is paused, unpause the container before exec")
    return rec


def prepare(cid: str, command: list[str], *, tty: bool = False, env: list[str] | None = None,
            user: str | None = None, workdir: str | None = None, privileged: bool = False):
    """The running container, its runtime handle and the process spec of a command to run in it
    (bundle.exec_process_spec: the one spec of `exec` and of health-check probes)."""
    from minidock.engine.create import _expand_env
    from minidock.runtime import load

    rec = _running(cid)
    rt = load(cid)
    process = bundle.exec_process_spec(rec, rt.spec["process"], command, tty=tty,
                                       env=_expand_env(env or []), user=user, workdir=workdir,
                                       privileged=privileged)
    return rec, rt, process


def _exec_event(rec: dict, command: list[str], tty: bool) -> str:
    """Docker's exec_create and exec_start events ("exec_start: sh -c ...")."""
    from minidock.engine import events

    exec_id = os.urandom(32).hex()
    text = events.exec_text(command)
    events.container_event(rec, f"exec_create: {text}", execID=exec_id)
    events.container_event(rec, f"exec_start: {text}", execID=exec_id)
    return exec_id


def exec_in(cid: str, command: list[str], *, interactive: bool, tty: bool, detach: bool,
            env: list[str], user: str | None, workdir: str | None, privileged: bool) -> int:
    rec, rt, process = prepare(cid, command, tty=tty, env=env, user=user, workdir=workdir,
                               privileged=privileged)
    exec_id = _exec_event(rec, command, tty)
    io = attach.IO(tty_=tty, interactive=interactive, attached=not detach)
    if detach:
        io.stdio = (os.open(os.devnull, os.O_RDWR),) * 3
    from minidock.runtime.process import exec_process

    try:
        p = exec_process(rt, process, stdio=io.stdio)
        io.console_fd = p.console_fd
        p.start()
    except MinidockError as e:
        if e.exit_code not in (126, 127) or not e.message.startswith("exec: "):
            raise
        # Docker 28's words for an exec that cannot start, and its exit code: 126 for both (a
        # missing binary is 127 for `run`, 126 for `exec`)
        raise MinidockError(f"OCI runtime exec failed: exec failed: unable to start container process: "
                            f"{e.message}: unknown", e.hint, exit_code=126) from None
    finally:
        io.child_started()
    if detach:
        return 0
    from minidock.runtime import exit_code

    code = exit_code(attach.pump(io, p.pid, None))
    from minidock.engine import events

    events.container_event(rec, "exec_die", execID=exec_id, exitCode=code)
    return code


def processes(cid: str) -> list[dict]:
    """The container's processes: host PID, PID inside the container, user, command."""
    import psutil

    rec = _running(cid)
    pids = _cgroup_pids(rec) or _ns_pids(rec["State"]["Pid"])
    rows = []
    for pid in sorted(pids):
        try:
            p = psutil.Process(pid)
            with p.oneshot():
                cpid = _ns_pid(pid)
                t = p.cpu_times()
                rows.append({"user": p.username() if p.uids().real == 0 else str(p.uids().real),
                             "pid": pid, "ppid": p.ppid(), "cpid": cpid,
                             "stime": time.strftime("%H:%M", time.localtime(p.create_time())),
                             "time": time.strftime("%H:%M:%S", time.gmtime(t.user + t.system)),
                             "cmd": " ".join(p.cmdline()) or p.name()})
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return rows


def _cgroup_pids(rec: dict) -> list[int]:
    try:
        from minidock.runtime import load

        return load(rec["Id"]).procs()
    except Exception:  # noqa: BLE001 - fall back to walking the PID namespace
        return []


def _ns_pids(init_pid: int) -> list[int]:
    target = os.stat(f"/proc/{init_pid}/ns/pid").st_ino
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if os.stat(f"/proc/{name}/ns/pid").st_ino == target:
                    out.append(int(name))
            except OSError:
                continue
    return out


def _ns_pid(pid: int) -> int:
    """The PID as the container sees it: the last NSpid entry of /proc/PID/status."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("NSpid:"):
                return int(line.split()[-1])
    return pid


__all__ = ["exec_in", "processes", "containers"]
