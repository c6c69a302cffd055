"""The backend interface: every operation the kernel layer may ask of the kernel.

:class:`Backend` is the whole list. :class:`~minidock.kernel.libc.LibcBackend` carries it out
(ctypes into libc, the os module); :class:`~minidock.kernel.fake.FakeBackend` records it for unit
tests. A backend method does one thing and raises ``OSError`` (errno set) when the kernel says
no; tracing, EINTR retries and ``KernelError`` wrapping happen once, in :mod:`.calls`.

Adding a kernel operation: an abstract method here, its implementation in libc.py, a traced
wrapper in calls.py. The fake picks it up from this class by itself.
"""

from __future__ import annotations

import abc


class Backend(abc.ABC):
    # --- namespaces and mounts
    @abc.abstractmethod
    def unshare(self, flags: int) -> None: ...

    @abc.abstractmethod
    def setns(self, path: str, nstype: int) -> None:
        """Open ``path`` (a /proc/PID/ns/* file) and join its namespace."""

    @abc.abstractmethod
    def mount(self, source: str | None, target: str, fstype: str | None, flags: int,
              data: str | None) -> None: ...

    @abc.abstractmethod
    def umount2(self, target: str, flags: int) -> None: ...

    @abc.abstractmethod
    def pivot_root(self, new_root: str, put_old: str) -> None: ...

    @abc.abstractmethod
    def chroot(self, path: str) -> None: ...

    @abc.abstractmethod
    def chdir(self, path: str) -> None: ...

    @abc.abstractmethod
    def sethostname(self, name: str) -> None: ...

    @abc.abstractmethod
    def setdomainname(self, name: str) -> None: ...

    # --- files the kernel gives meaning to
    @abc.abstractmethod
    def mknod(self, path: str, mode: int, device: int) -> None: ...

    @abc.abstractmethod
    def write_file(self, path: str, data: str) -> None:
        """Write a kernel file: a cgroup knob, /proc/PID/uid_map, a sysctl."""

    @abc.abstractmethod
    def mkdir(self, path: str, mode: int) -> None: ...

    @abc.abstractmethod
    def rmdir(self, path: str) -> None: ...

    @abc.abstractmethod
    def umask(self, mask: int) -> int:
        """Set the umask; return the previous one."""

    # --- credentials and privileges
    @abc.abstractmethod
    def prctl(self, option: int, a2: int = 0, a3: int = 0, a4: int = 0, a5: int = 0) -> int: ...

    @abc.abstractmethod
    def capset(self, effective: int, permitted: int, inheritable: int) -> None: ...

    @abc.abstractmethod
    def setgroups(self, gids: list[int]) -> None: ...

    @abc.abstractmethod
    def setresgid(self, gid: int) -> None: ...

    @abc.abstractmethod
    def setresuid(self, uid: int) -> None: ...

    @abc.abstractmethod
    def setrlimit(self, res: int, soft: int, hard: int) -> None: ...

    # --- cgroups, network
    @abc.abstractmethod
    def attach_device_filter(self, cgroup_dir: str, insns: bytes) -> None: ...

    @abc.abstractmethod
    def link_up(self, name: str) -> None: ...


_backend: Backend | None = None


def backend() -> Backend:
    """The backend in use: libc unless a test swapped in a fake."""
    global _backend
    if _backend is None:
        from minidock.kernel.libc import LibcBackend

        _backend = LibcBackend()
    return _backend


def set_backend(b: Backend | None) -> Backend | None:
    """Swap the backend (tests); returns the previous one. ``None`` goes back to libc."""
    global _backend
    if b is not None and not isinstance(b, Backend):
        raise TypeError(f"{type(b).__name__} is not a minidock.kernel.Backend")
    old, _backend = _backend, b
    return old
