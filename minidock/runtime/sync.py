"""The creation protocol's messages, named once for both sides, and how they travel.

One SOCK_SEQPACKET socketpair, one JSON object per packet ({"type": NAME, ...}), file descriptors
as SCM_RIGHTS. The numbered sync points are labelled with the same number on both sides (the
parent in process.py, the intermediate and the init in init.py), as crun does:

    sync 1  parent -> intermediate   CGROUP_READY   the intermediate is in the container's cgroup
            intermediate -> parent   USERNS         [a new user namespace exists: write its maps]
            parent -> intermediate   USERNS_MAPPED
    sync 2  intermediate -> parent   PID {pid}      the container's PID 1 (the init waits until
                                                    this is on the socket before it says anything)
            init -> parent           HOOKS          [mounts ready: run prestart, createRuntime]
            parent -> init           HOOKS_DONE {state}
            init -> parent           CONSOLE + fd   [terminal: the pty's master]
    sync 3  init -> parent           READY          everything but the exec is done
    sync 4  parent -> init           START          exec now (or: the exec fifo is opened)
            init -> parent           ERROR {message, hint, exit_code} at any step; EOF = exec'd

Errors are never lost in a child: whatever it raises becomes an ERROR message.
"""

from __future__ import annotations

import sys
from _socket import CMSG_LEN, SCM_RIGHTS, SOL_SOCKET
from _socket import socket as _Socket  # (socket.py imports enum and selectors: ~2 ms per runtime start)

from minidock.errors import MinidockError
from minidock.util import jsonfast

CGROUP_READY = "cgroup-ready"  # sync 1
USERNS = "userns"
USERNS_MAPPED = "userns-mapped"
PID = "pid"  # sync 2
HOOKS = "hooks"
HOOKS_DONE = "hooks-done"
CONSOLE = "console"
READY = "ready"  # sync 3
START = "start"  # sync 4
ERROR = "error"

MESSAGES = (CGROUP_READY, USERNS, USERNS_MAPPED, PID, HOOKS, HOOKS_DONE, CONSOLE, READY, START, ERROR)


def send(sock: _Socket, msg: dict, fds: list[int] | None = None) -> None:
    if msg.get("type") not in MESSAGES:
        raise ValueError(f"not a protocol message: {msg.get('type')!r}")
    data = jsonfast.dumps(msg).encode()
    if fds:  # as socket.send_fds
        sock.sendmsg([data], [(SOL_SOCKET, SCM_RIGHTS, b"".join(fd.to_bytes(4, sys.byteorder) for fd in fds))])
    else:
        sock.send(data)


def recv(sock: _Socket, want_fds: int = 0) -> tuple[dict | None, list[int]]:
    """One message (None at EOF) and any file descriptors that came with it."""
    fds: list[int] = []
    if want_fds:  # as socket.recv_fds
        data, ancdata, _flags, _addr = sock.recvmsg(65536, CMSG_LEN(want_fds * 4))
        for level, kind, cdata in ancdata:
            if level == SOL_SOCKET and kind == SCM_RIGHTS:
                fds += [int.from_bytes(cdata[i:i + 4], sys.byteorder, signed=True)
                        for i in range(0, len(cdata) - len(cdata) % 4, 4)]
    else:
        data = sock.recv(65536)
    if not data:
        return None, fds
    return jsonfast.loads(data), fds


def send_error(sock: _Socket, e: BaseException) -> int:
    """Report an error to the parent; returns the exit code the child should use."""
    if isinstance(e, MinidockError):
        msg = {"type": ERROR, "message": e.message, "hint": e.hint, "exit_code": e.exit_code}
    else:
        text = f"{type(e).__name__}: {e}"  # (no imports here: we may be past pivot_root)
        msg = {"type": ERROR, "message": f"container init failed: {text}", "hint": None,
               "exit_code": 125}
    try:
        send(sock, msg)
    except OSError:
        print(f"minidock: {msg['message']}", file=sys.stderr)
    return msg["exit_code"]


def check(msg: dict | None, kind: str) -> dict:
    """The parent's reading of a message: ``kind``, or the child's error raised, or a clear error."""
    if msg is None:
        raise MinidockError("container init exited unexpectedly during create",
                            "Run with --explain to see the last step it took.")
    if msg.get("type") == ERROR:
        raise MinidockError(msg["message"], msg.get("hint"), exit_code=msg.get("exit_code", 125))
    if msg.get("type") != kind:
        raise MinidockError(f"container init protocol error: expected {kind}, got {msg.get('type')}")
    return msg


def expect(sock: _Socket, kind: str) -> dict:
    msg, _ = recv(sock)
    return check(msg, kind)


def wait_for(sock: _Socket, kind: str) -> bool:
    """The child's reading: True if the next message is ``kind`` (False: EOF or anything else)."""
    msg, _ = recv(sock)
    return bool(msg) and msg.get("type") == kind
