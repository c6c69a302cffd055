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
hook fails `start` (runc's order and rules). The init runs its hooks with os.fork/os.execve only:
past pivot_root, the host's Python library is out of reach.
"""

from __future__ import annotations

import json
import os
import sys
import time

from minidock.errors import MinidockError

SUPPORTED = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop")
AT_CREATE = ("prestart", "createRuntime", "createContainer", "startContainer")  # need the init's sync


def check(spec: dict) -> None:
    for name in (spec.get("hooks") or {}):
        if name not in SUPPORTED and spec["hooks"][name]:
            raise MinidockError(f"hooks: unknown hook kind {name!r} in config.json",
                                f"The OCI runtime spec knows: {', '.join(SUPPORTED)}.")


def wanted_at_create(spec: dict) -> bool:
    return any((spec.get("hooks") or {}).get(n) for n in AT_CREATE)


def run_inline(spec: dict, name: str, state: dict) -> None:
    """Run hooks from the container's init: fork + execve, the state on a pipe to its stdin."""
    for hook in (spec.get("hooks") or {}).get(name) or []:
        env = [e for e in hook.get("env") or []]
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                os.dup2(r, 0)
                os.close(w)
                os.execve(hook["path"], hook.get("args") or [hook["path"]],
                          dict(e.partition("=")[::2] for e in env))
            finally:
                os._exit(127)
        os.close(r)
        try:
            os.write(w, json.dumps(state).encode())
        except BrokenPipeError:
            pass
        os.close(w)
        deadline = time.monotonic() + hook["timeout"] if hook.get("timeout") else None
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            if deadline and time.monotonic() > deadline:
                os.kill(pid, 9)
                os.waitpid(pid, 0)
                raise MinidockError(f"{name} hook {hook['path']} failed: timed out after {hook['timeout']}s")
            time.sleep(0.005)
        if os.waitstatus_to_exitcode(status) != 0:
            raise MinidockError(f"{name} hook {hook['path']} failed: exit status "
                                f"{os.waitstatus_to_exitcode(status)}")


def run(spec: dict, name: str, state: dict, *, fatal: bool) -> None:
    for hook in (spec.get("hooks") or {}).get(name) or []:
        import subprocess  # (here: `run` without hooks should not pay for the import)

        args = hook.get("args") or [hook["path"]]
        env = dict(e.partition("=")[::2] for e in hook.get("env") or [])
        try:
            r = subprocess.run(args, executable=hook["path"], input=json.dumps(state), text=True,
                               env=env, capture_output=True, timeout=hook.get("timeout"))
            err = None if r.returncode == 0 else f"exit status {r.returncode}: {r.stderr.strip()}"
        except (OSError, subprocess.TimeoutExpired) as e:
            err = str(e)
        if err:
            msg = f"{name} hook {hook['path']} failed: {err}"
            if fatal:
                raise MinidockError(msg)
            print(f"minidock-runtime: warning: {msg}", file=sys.stderr)
