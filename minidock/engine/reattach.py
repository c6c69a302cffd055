"""`attach`: join a running (detached) container's stdio from another process.

There is no daemon to hold the streams, so attach uses what the container's monitor already has:

* output: the monitor writes every line of the container's output to its log (json-file); the
  attached process follows the log from its end, stdout to stdout and stderr to stderr;
* input (`-i` containers): the monitor reads a FIFO, `containers/<id>/stdin`, and copies what
  arrives to the container's stdin (its pipe, or its pty master); the attached process writes its
  own stdin there, watching for the detach keys (default ctrl-p ctrl-q);
* signals (`--sig-proxy`, default on, off for a TTY as Docker does): SIGINT, SIGTERM, ... received
  by the attached process are sent to the container's PID 1.

It ends when the container exits (with its exit code) or on the detach keys ("read escape
sequence"). Limit: output is line-buffered by the log, so a prompt without a newline appears
with the next line.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import sys
import termios
import time
import tty

from minidock.engine import lifecycle
from minidock.errors import Conflict, InvalidArgument
from minidock.state import containers

DEFAULT_DETACH_KEYS = "ctrl-p,ctrl-q"


def parse_detach_keys(spec: str) -> bytes:
    """Docker's --detach-keys: comma-separated `ctrl-<x>` or single characters."""
    out = bytearray()
    for part in spec.split(","):
        p = part.strip()
        if len(p) == 1:
            out.append(ord(p))
        elif p.lower().startswith("ctrl-") and len(p) == 6:
            c = p[5].lower()
            if "a" <= c <= "z":
                out.append(ord(c) - ord("a") + 1)
            elif c in "@[\\]^_":
                out.append({"@": 0, "[": 27, "\\": 28, "]": 29, "^": 30, "_": 31}[c])
            else:
                raise InvalidArgument(f"Invalid detach keys ({spec}) provided")
        else:
            raise InvalidArgument(f"Invalid detach keys ({spec}) provided")
    if not out:
        raise InvalidArgument(f"Invalid detach keys ({spec}) provided")
    return bytes(out)


def stdin_fifo(cid: str) -> str:
    return str(containers.cdir(cid) / "stdin")


def attach(cid: str, *, no_stdin: bool = False, sig_proxy: bool = True,
           detach_keys: str | None = None, streams=("stdout", "stderr")) -> int:
    rec = lifecycle.refresh(cid)
    st = rec["State"]
    if not st.get("Running"):
        raise Conflict("You cannot attach to a stopped container, start it first", exit_code=1)
    if st.get("Paused"):
        raise Conflict("You cannot attach to a paused container, unpause it first", exit_code=1)
    keys = parse_detach_keys(detach_keys or DEFAULT_DETACH_KEYS)
    from minidock.engine import events

    events.container_event(rec, "attach")
    is_tty = bool(rec["Config"].get("Tty"))
    use_stdin = bool(rec["Config"].get("OpenStdin")) and not no_stdin
    pid = st["Pid"]
    log_path = rec["LogPath"]

    fifo = None
    if use_stdin:
        try:
            fifo = os.open(stdin_fifo(cid), os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:
            fifo = None  # a monitor without the FIFO (started before it existed): output only

    old = {}
    if sig_proxy and not is_tty:
        def forward(signum, _frame):
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass

        for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1,
                  signal.SIGUSR2):
            old[s] = signal.signal(s, forward)
    saved_tty = None
    if fifo is not None and is_tty and os.isatty(0):
        saved_tty = termios.tcgetattr(0)
        tty.setraw(0)
    sel = selectors.DefaultSelector()
    if fifo is not None:
        os.set_blocking(0, False)
        sel.register(0, selectors.EVENT_READ)
    matched = 0
    detached = False
    try:
        with open(log_path, "rb") as first:
            log = first
            log.seek(0, os.SEEK_END)
            ino = os.fstat(log.fileno()).st_ino
            buf = b""
            while True:
                chunk = log.read()
                if not chunk:
                    try:
                        if os.stat(log_path).st_ino != ino:  # the log was rotated: follow the new file
                            log = open(log_path, "rb")  # noqa: SIM115 - closed with the process
                            ino = os.fstat(log.fileno()).st_ino
                            continue
                    except FileNotFoundError:
                        pass
                if chunk:
                    buf += chunk
                    *lines, buf = buf.split(b"\n")
                    for line in lines:
                        _emit(line, streams)
                if not lifecycle.is_running(cid) and not chunk:
                    time.sleep(0.05)
                    rest = log.read()
                    for line in (buf + rest).split(b"\n"):
                        _emit(line, streams)
                    break
                for _key, _ in sel.select(timeout=0.05):
                    try:
                        data = os.read(0, 4096)
                    except BlockingIOError:
                        continue
                    if not data:
                        sel.unregister(0)
                        continue
                    out = bytearray()
                    for b in data:
                        if b == keys[matched]:
                            matched += 1
                            if matched == len(keys):
                                detached = True
                                break
                            continue
                        if matched:
                            out += keys[:matched]
                            matched = 0
                        out.append(b)
                    if out:
                        _write(fifo, bytes(out))
                    if detached:
                        break
                if detached:
                    break
                if not sel.get_map():
                    time.sleep(0.05)
    finally:
        if saved_tty is not None:
            termios.tcsetattr(0, termios.TCSADRAIN, saved_tty)
        for s, h in old.items():
            signal.signal(s, h)
        if fifo is not None:
            os.close(fifo)
            os.set_blocking(0, True)
        sel.close()
    if detached:
        sys.stderr.write("read escape sequence\n")
        return 0
    final = containers.load_state(cid) if os.path.exists(containers.cdir(cid)) else {"ExitCode": 0}
    return int(final.get("ExitCode", 0))


def _emit(line: bytes, streams) -> None:
    if not line.strip():
        return
    try:
        entry = json.loads(line)
    except ValueError:
        return
    stream = entry.get("stream", "stdout")
    if stream not in streams:
        return
    out = sys.stdout if stream == "stdout" else sys.stderr
    out.write(entry.get("log", ""))
    out.flush()


def _write(fd: int, data: bytes) -> None:
    while data:
        try:
            n = os.write(fd, data)
            data = data[n:]
        except BlockingIOError:
            time.sleep(0.01)
