"""Files under the state root: one atomic write, one lock.

    atomic_write(path, data)        a temp file beside ``path``, then rename(2) over it: a reader
                                    (or a crash) sees the old content or the new, never half
    atomic_write_json(path, obj)    the same for JSON (json.dumps's arguments pass through)
    with flock(path): ...           an exclusive flock(2) on ``path`` (made if missing); the
                                    kernel drops it if the holder dies, so no stale lock files

(Ordinary file I/O on our own state: not a kernel call, see ARCHITECTURE.md.)
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os


def atomic_write(path: str | os.PathLike, data: bytes | str, mode: int = 0o666) -> None:
    """Replace ``path`` with ``data`` atomically (``mode`` before the umask, as open(2) takes it)."""
    path = os.fspath(path)
    tmp = f"{path}.tmp{os.getpid()}"  # one per process: two writers never share a temp file
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def atomic_write_json(path: str | os.PathLike, obj, *, mode: int = 0o666, **dumps) -> None:
    atomic_write(path, json.dumps(obj, **dumps), mode)


@contextlib.contextmanager
def flock(path: str | os.PathLike, *, shared: bool = False):
    """Hold flock(2) on ``path`` for the block (exclusive unless ``shared``)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
