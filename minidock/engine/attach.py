"""Moving bytes between a container and a terminal or log, and waiting for its PID 1.

One loop serves a foreground `run`, `start -a`, `exec` and the monitor of a detached container:

* non-tty: the container's stdout and stderr are pipes; we copy them to our stdout/stderr
  (when attached) and to the log; stdin, with -i, is our own fd 0 passed straight through.
* tty: the container has a pty from its own devpts; we hold the master, put our terminal in raw
  mode (so ^C is a byte for the container, as with Docker), copy both ways, and resize the pty on
  SIGWINCH.
* signals we receive (SIGINT, SIGTERM, SIGHUP, ...) are forwarded to the container's PID 1.
* SIGCHLD wakes the loop through a self-pipe; it ends when PID 1 has exited and its output is
  drained.
"""

from __future__ import annotations

import errno
import fcntl
import os
import selectors
import signal
import struct
import sys
import termios
import tty

from minidock.errors import MinidockError

FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1,
             signal.SIGUSR2)


class IO:
    """The container-side file descriptors of one process, made before it is created."""

    def __init__(self, *, tty_: bool, interactive: bool, attached: bool):
        self.tty = tty_
        self.interactive = interactive
        self.attached = attached
        self.out_r = self.err_r = None
        self._child_fds: list[int] = []
        self.stdio: tuple[int, int, int] | None = None
        self.console_fd: int | None = None
        if tty_:
            return  # the pty master comes from the container's init
        devnull = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        self._child_fds.append(devnull)
        if interactive and attached:
            stdin = 0
        elif interactive:
            r, w = os.pipe()  # detached -i: stdin stays open (never EOF), like Docker's
            self._keep_open = w
            self._child_fds.append(r)
            stdin = r
        else:
            stdin = devnull
        self.out_r, out_w = os.pipe()
        self.err_r, err_w = os.pipe()
        self._child_fds += [out_w, err_w]
        self.stdio = (stdin, out_w, err_w)

    def child_started(self) -> None:
        """Close our copies of the container's ends, so EOF arrives when it exits."""
        for fd in self._child_fds:
            try:
                os.close(fd)
            except OSError:
                pass
        self._child_fds = []


def _winsize(fd: int) -> bytes | None:
    try:
        return fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8)
    except OSError:
        return None


def set_winsize(master: int, src: int = 0) -> None:
    ws = _winsize(src)
    if ws and struct.unpack("HHHH", ws)[:2] != (0, 0):
        try:
            fcntl.ioctl(master, termios.TIOCSWINSZ, ws)
        except OSError:
            pass


def pump(io: IO, pid: int, log=None, *, on_exit=None) -> int:
    """Copy output (and input) until ``pid`` exits and its output is drained; returns its status.

    ``pid`` must be our child (we are a subreaper, so the container's init is re-parented to us).
    """
    sel = selectors.DefaultSelector()
    wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    old_wakeup = signal.set_wakeup_fd(wake_w)
    old_handlers = {}

    def forward(signum, _frame):
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass

    old_handlers[signal.SIGCHLD] = signal.signal(signal.SIGCHLD, lambda *_: None)
    if io.attached:
        for s in FORWARDED:
            old_handlers[s] = signal.signal(s, forward)
    saved_tty = None
    sources: dict[int, str] = {}
    if io.tty:
        master = io.console_fd
        os.set_blocking(master, False)
        sources[master] = "stdout"
        if io.attached:
            set_winsize(master)
            old_handlers[signal.SIGWINCH] = signal.signal(signal.SIGWINCH, lambda *_: set_winsize(master))
            if io.interactive and os.isatty(0):
                saved_tty = termios.tcgetattr(0)
                tty.setraw(0)
            if io.interactive:
                sel.register(0, selectors.EVENT_READ, "stdin")
    else:
        for fd, name in ((io.out_r, "stdout"), (io.err_r, "stderr")):
            os.set_blocking(fd, False)
            sources[fd] = name
    for fd, name in sources.items():
        sel.register(fd, selectors.EVENT_READ, name)
    sel.register(wake_r, selectors.EVENT_READ, "wake")
    fifo_fds = _open_stdin_fifo(io)  # `attach` writes a detached -i container's input here
    if fifo_fds:
        sel.register(fifo_fds[0], selectors.EVENT_READ, "fifo")
    status = None
    out = {"stdout": sys.stdout.buffer, "stderr": sys.stderr.buffer}
    try:
        while True:
            if status is None:
                try:
                    wpid, st = os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    wpid, st = pid, 0
                if wpid == pid:
                    status = st
                    if on_exit:
                        on_exit()
            if status is not None and not sources:
                break
            events = sel.select(timeout=0.5 if status is None else 0.2)
            if not events and status is not None:
                # PID 1 is gone, and with it the whole PID namespace: no writer is left
                for fd in list(sources):
                    sel.unregister(fd)
                    os.close(fd)
                sources.clear()
                continue
            for key, _ in events:
                what = key.data
                if what == "wake":
                    try:
                        os.read(wake_r, 512)
                    except BlockingIOError:
                        pass
                    continue
                if what == "fifo":
                    try:
                        data = os.read(key.fd, 65536)
                    except BlockingIOError:
                        continue
                    target = io.console_fd if io.tty else getattr(io, "_keep_open", None)
                    if data and target is not None:
                        try:
                            _write_all(target, data)
                        except OSError:
                            pass
                    continue
                if what == "stdin":
                    try:
                        data = os.read(0, 65536)
                    except OSError:
                        data = b""
                    if not data:
                        sel.unregister(0)
                        continue
                    _write_all(io.console_fd, data)
                    continue
                fd = key.fd
                try:
                    data = os.read(fd, 65536)
                except BlockingIOError:
                    continue
                except OSError as e:
                    if e.errno != errno.EIO:  # EIO: the pty's last slave closed
                        raise
                    data = b""
                if not data:
                    sel.unregister(fd)
                    sources.pop(fd, None)
                    os.close(fd)
                    continue
                if log is not None:
                    log.write(what, data)
                if io.attached and what in getattr(io, "streams", ("stdout", "stderr")):
                    stream = out[what]
                    stream.write(data)
                    stream.flush()
    finally:
        if saved_tty is not None:
            termios.tcsetattr(0, termios.TCSADRAIN, saved_tty)
        for s, h in old_handlers.items():
            signal.signal(s, h)
        signal.set_wakeup_fd(old_wakeup)
        for fd in fifo_fds:
            os.close(fd)
        os.close(wake_r)
        os.close(wake_w)
        sel.close()
    return status


def stdin_fifo(io: IO) -> str | None:
    """The FIFO `minidock attach` writes a detached -i container's input to (made here if
    missing), or None when this container takes no input that way."""
    path = getattr(io, "stdin_fifo", None)
    if not path or io.attached or not io.interactive:
        return None
    try:
        if not os.path.exists(path):
            from minidock import kernel

            kernel.mkfifo(path, 0o600, why="attach: a running container's input from `minidock attach`")
    except (OSError, MinidockError):
        return None
    return path


def _open_stdin_fifo(io: IO) -> list[int]:
    """The FIFO's read end, and a writer of our own so that a client going away is not an EOF;
    [] when this container takes no input."""
    path = stdin_fifo(io)
    if path is None:
        return []
    try:
        r = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        w = os.open(path, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return []
    return [r, w]


def _write_all(fd: int, data: bytes) -> None:
    while data:
        try:
            n = os.write(fd, data)
            data = data[n:]
        except BlockingIOError:
            selectors.DefaultSelector().select(0.01)
