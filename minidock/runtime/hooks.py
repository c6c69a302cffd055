"""OCI hooks: programs the runtime runs at points of a container's life, with the container's
state JSON on their stdin (how engines set up networks, GPUs, logging...).

    prestart, createRuntime  during `create`, once the container's mounts exist and before
                             pivot_root, run by the runtime (in the runtime's namespaces)
    createContainer          right after them, run by the container's init in the container's
                             namespaces, the path still resolving in the runtime's filesystem
    startContainer           at `start`, in the container, just before its process is executed
    poststart                after `start`; a failure is a warning
    poststop                 after `delete`; a failure is a warning

A failing prestart/createRuntime/createContainer hook fails `create`, a failing startContainer
hook fails `start` (runc's order and rules). The init runs its hooks with fork/execve only (kernel.spawn):
past pivot_root, the host's Python library is out of reach.
"""

from __future__ import annotations

import os
import sys
import time

from minidock import kernel as k
from minidock.errors import KernelError, MinidockError
from minidock.util import jsonfast

SUPPORTED = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop")
AT_CREATE = ("prestart", "createRuntime", "createContainer", "startContainer")  # need the init's sync


def check(spec: dict) -> None:
    for name in (spec.get("hooks") or {}):
        if name not in SUPPORTED and spec["hooks"][name]:
            raise MinidockError(f"hooks: unknown hook kind {name!r} in config.json",
                                f"The OCI runtime spec knows: {', '.join(SUPPORTED)}.")


def wanted_at_create(spec: dict) -> bool:
    return any((spec.get("hooks") or {}).get(n) for n in AT_CREATE)


def run(spec: dict, name: str, state: dict, *, fatal: bool) -> None:
    """Run the spec's `name` hooks in order; a failure raises (fatal) or warns."""
    for hook in (spec.get("hooks") or {}).get(name) or []:
        err = _run_one(hook, state)
        if err:
            msg = f"{name} hook {hook['path']} failed: {err}"
            if fatal:
                raise MinidockError(msg)
            print(f"minidock-runtime: warning: {msg}", file=sys.stderr)


def _run_one(hook: dict, state: dict) -> str | None:
    """fork + execve, the state on a pipe to its stdin, its output kept in a memfd for the error.

    (Not subprocess: the init runs hooks past pivot_root, where the host's Python library is out
    of reach, and `run` without hooks should not pay for the import.)
    """
    r, w = os.pipe()
    out = os.memfd_create("hook-output", os.MFD_CLOEXEC)
    try:
        pid = k.spawn(hook["path"], hook.get("args") or [hook["path"]],
                      dict(e.partition("=")[::2] for e in hook.get("env") or []), r, out,
                      why="an OCI hook, the container's state on its stdin")
    except KernelError as e:
        os.close(r)
        os.close(w)
        os.close(out)
        return f"fork: {os.strerror(e.errno)}"
    os.close(r)
    try:
        os.write(w, jsonfast.dumps(state).encode())
    except BrokenPipeError:
        pass  # a hook that does not read its stdin
    os.close(w)
    deadline = time.monotonic() + hook["timeout"] if hook.get("timeout") else None
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if deadline and time.monotonic() > deadline:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            os.close(out)
            return f"timed out after {hook['timeout']}s"
        time.sleep(0.002)
    code = os.waitstatus_to_exitcode(status)
    os.lseek(out, 0, os.SEEK_SET)
    text = os.read(out, 4096).decode(errors="replace").strip()
    os.close(out)
    if code == 0:
        return None
    return f"exit status {code}" + (f": {text}" if text else "")
