"""Files under the state root: one atomic write, one lock.

    atomic_write(path, data)        a temp file beside ``path``, then rename(2) over it: a reader
                                    (or a crash) sees the old content or the new, never half
    atomic_write_json(path, obj)    the same for JSON (json.dumps's arguments pass through)
    with flock(path): ...           an exclusive flock(2) on ``path`` (made if missing); the
                                    kernel drops it if the holder dies, so no stale lock files

(Ordinary file I/O on our own state: not a kernel call, see ARCHITECTURE.md.)
"""

from __future__ import annotations

import fcntl
import os

from minidock.util import jsonfast  # (not json, nor contextlib: the runtime's short processes write here)


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
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def atomic_write_json(path: str | os.PathLike, obj, *, mode: int = 0o666, **dumps) -> None:
    atomic_write(path, jsonfast.dumps(obj, **dumps), mode)


class flock:  # noqa: N801 - used as a function: `with flock(path):`
    """Hold flock(2) on ``path`` for the block (exclusive unless ``shared``)."""

    def __init__(self, path: str | os.PathLike, *, shared: bool = False):
        self.path, self.shared, self.fd = path, shared, -1

    def __enter__(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH if self.shared else fcntl.LOCK_EX)
        except BaseException:
            os.close(fd)
            raise
        self.fd = fd

    def __exit__(self, *exc) -> None:
        os.close(self.fd)
