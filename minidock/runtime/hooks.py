"""OCI hooks: programs the runtime runs at points of a container's life, with the container's
state JSON on their stdin (how engines set up networks, GPUs, logging...).

    prestart, createRuntime  after the container is created, before its process starts
                             (in the runtime's namespaces); a failure fails `create`
    poststart                after `start`; a failure is a warning
    poststop                 after `delete`; a failure is a warning

createContainer and startContainer (run *inside* the container's namespaces) are not supported
yet: a spec that has them is refused at create, so nothing silently skips them.
"""

from __future__ import annotations

import json
import sys

from minidock.errors import MinidockError

SUPPORTED = ("createRuntime", "prestart", "poststart", "poststop")


def check(spec: dict) -> None:
    for name in (spec.get("hooks") or {}):
        if name not in SUPPORTED and spec["hooks"][name]:
            raise MinidockError(f"hooks: {name} hooks are not supported by minidock-runtime yet",
                                f"Supported: {', '.join(SUPPORTED)}.")


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
