"""What `minidock-runtime` runs for create, start, kill and delete, and how it reports errors, shared by
the click CLI (runtime_cli.py) and the click-free entry point (runtime_fast.py)."""

from __future__ import annotations

import os
import sys
import time

from minidock.errors import MinidockError


class Ctx:
    """The global options, and the engine's log (--log, --log-format) that errors go to."""

    def __init__(self, root: str, log: str | None, log_format: str, debug: bool, systemd: bool):
        self.root, self.log, self.log_format, self.debug, self.systemd = root, log, log_format, debug, systemd

    def write_log(self, level: str, msg: str) -> None:
        if not self.log:
            return
        import json

        t = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        line = json.dumps({"level": level, "msg": msg, "time": t}) if self.log_format == "json" \
            else f'time="{t}" level={level} msg="{msg}"'
        try:
            with open(self.log, "a") as f:
                f.write(line + "\n")
        except OSError:
            pass


def fail(ctx: Ctx, msg: str):
    """An error as the engine reads it: a log line, `minidock-runtime: msg` on stderr, exit 1."""
    ctx.write_log("error", msg)
    sys.stdout.flush()
    sys.stderr.write(f"minidock-runtime: {msg}\n")
    sys.stderr.flush()
    sys.exit(1)


def error_text(e: BaseException) -> str:
    if isinstance(e, MinidockError):
        return e.message + (f" ({e.hint})" if e.hint else "")
    return f"internal error: {type(e).__name__}: {e}"


def _load(root: str, cid: str):
    from minidock.runtime import load

    return load(cid, root)


def do_start(root: str, cid: str) -> None:
    """Start a created container (its process execs)."""
    c = _load(root, cid)
    st = c.status()
    if st != "created":
        raise MinidockError("cannot start a container that has stopped" if st == "stopped"
                            else f"cannot start a container that is {st}")
    c.start()


def do_kill(root: str, cid: str, sig: str, all_: bool) -> None:
    _load(root, cid).kill(parse_signal(sig), all_procs=all_)


def do_delete(root: str, cid: str, force: bool) -> None:
    from minidock.errors import NotFound

    try:
        c = _load(root, cid)
    except NotFound:
        if force:
            return
        raise
    c.delete(force=force)


def parse_signal(value: str) -> int:
    v = value.upper()
    if v.isdigit():
        return int(v)
    name = v if v.startswith("SIG") else "SIG" + v
    try:
        import signal  # (here: it imports enum, ~3 ms of every `state`)

        return int(getattr(signal.Signals, name))
    except AttributeError:
        raise MinidockError(f"unknown signal {value!r}") from None


def _write_pid_file(path: str | None, pid: int) -> None:
    if path:
        from minidock.util import fsutil

        fsutil.atomic_write(path, str(pid))


def _send_console(socket_path: str, fd: int) -> None:
    """runc's console-socket protocol: the pty master goes to the engine with SCM_RIGHTS."""
    import socket

    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.connect(socket_path)
        socket.send_fds(s, [b"/dev/ptmx"], [fd])
    os.close(fd)


def _create(ctx: Ctx, cid: str, bundle: str, console_socket: str | None, pid_file: str | None,
            no_pivot: bool, preserve_fds: int, fifo: bool = True):
    from minidock.runtime import create
    from minidock.runtime import spec as ocispec

    spec = ocispec.load(os.path.abspath(bundle))
    terminal = bool(spec.get("process", {}).get("terminal"))
    if terminal and not console_socket:
        raise MinidockError("cannot allocate tty if runc will detach without setting console socket")
    c = create(cid, bundle, root=ctx.root, stdio=(0, 1, 2), exec_fifo=fifo, no_pivot=no_pivot, spec=spec,
               preserve_fds=preserve_fds)
    if terminal and c.console_fd is not None:
        _send_console(console_socket, c.console_fd)
    _write_pid_file(pid_file, c.pid)
    return c
