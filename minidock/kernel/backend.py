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

    @abc.abstractmethod
    def netlink_open(self) -> int:
        """An rtnetlink socket bound in the caller's network namespace; returns its handle."""

    @abc.abstractmethod
    def netlink_request(self, handle: int, mtype: int, flags: int, body: bytes) -> list[tuple[int, bytes]]:
        """Send one message; return the replies (type, payload); OSError(err) on an NLMSG_ERROR."""

    @abc.abstractmethod
    def netlink_close(self, handle: int) -> None: ...

    @abc.abstractmethod
    def run_tool(self, argv: list[str], input: str | None) -> tuple[int, str, str]:
        """Run a host tool (nft, iptables) to completion: (exit status, stdout, stderr)."""

    # --- the container's last steps
    @abc.abstractmethod
    def memfd_sealed(self, name: str, data: bytes) -> int:
        """memfd_create + write + F_ADD_SEALS (seal, shrink, grow, write): a read-only in-memory
        file nobody can change; returns its descriptor (close-on-exec)."""

    @abc.abstractmethod
    def execve_fd(self, fd: int, argv: list[str], env: dict[str, str]) -> None:
        """execveat(fd, "", AT_EMPTY_PATH): run the program the descriptor holds."""

    @abc.abstractmethod
    def join_session_keyring(self, name: str) -> int:
        """keyctl(KEYCTL_JOIN_SESSION_KEYRING, name): a new session keyring; returns its serial."""

    @abc.abstractmethod
    def seccomp_prepare(self) -> bool:
        """Open libseccomp now (before pivot_root); False where it is not installed."""

    @abc.abstractmethod
    def seccomp_load(self, default_action: int, architectures: list[str],
                     rules: list[tuple[str, int, list[tuple[int, int, int, int]]]],
                     enosys_newer: bool = False) -> int:
        """Compile (libseccomp) and install a filter; rules are (syscall, action, [(arg, op, a, b)]).
        With enosys_newer, a second native-only filter answers ENOSYS for syscall numbers above
        the highest the rules name (runc's rule: programs then fall back to older calls).

        Returns how many rules went in (syscalls this kernel does not know are skipped)."""

    @abc.abstractmethod
    def setsid(self) -> None: ...

    @abc.abstractmethod
    def set_controlling_tty(self, fd: int) -> None:
        """ioctl(fd, TIOCSCTTY): the terminal becomes the session's controlling terminal."""

    @abc.abstractmethod
    def dup2(self, fd: int, fd2: int) -> None:
        """fd2 becomes a copy of fd, inherited across exec (fd == fd2: just made inheritable)."""

    @abc.abstractmethod
    def close_fds(self, keep: set[int]) -> None:
        """Close every open descriptor but ``keep`` (their close-on-exec flags stay as they are)."""

    @abc.abstractmethod
    def reset_signals(self) -> None:
        """Every handler back to SIG_DFL, the signal mask empty: what a new program expects."""

    @abc.abstractmethod
    def execve(self, path: str, argv: list[str], env: dict[str, str]) -> None: ...

    @abc.abstractmethod
    def symlink(self, src: str, path: str) -> None: ...

    @abc.abstractmethod
    def make_mount_point(self, root: str, rel: str, is_dir: bool) -> None:
        """Create root/rel and its missing parents with *at() calls from a descriptor of root,
        never following a symbolic link (a component swapped for one fails: ENOTDIR/ELOOP)."""

    @abc.abstractmethod
    def fork(self) -> int:
        """fork(2): 0 in the child, the child's pid in the parent."""

    @abc.abstractmethod
    def fork_into_cgroup(self, cgroup_dir: str) -> int:
        """clone3(CLONE_INTO_CGROUP): a fork whose child is born in the cgroup v2 directory
        ``cgroup_dir`` (no migration afterwards). 0 in the child, its pid in the parent."""

    @abc.abstractmethod
    def spawn(self, path: str, argv: list[str], env: dict[str, str], stdin: int, stdout: int) -> int:
        """fork + execve (no subprocess: usable past pivot_root); stdout gets stderr too; the pid."""

    # --- files with kernel meaning
    @abc.abstractmethod
    def mkfifo(self, path: str, mode: int) -> None: ...

    @abc.abstractmethod
    def chown(self, path: str, uid: int, gid: int) -> None: ...

    @abc.abstractmethod
    def setxattr(self, path: str, name: str, value: bytes) -> None:
        """Set an extended attribute on ``path`` itself (a link is not followed)."""

    @abc.abstractmethod
    def openat2(self, dirfd: int, path: str, flags: int, resolve: int) -> int:
        """openat2(2) with RESOLVE_* flags; returns the new descriptor."""

    # --- user namespaces for idmapped mounts
    @abc.abstractmethod
    def userns_fd(self, uid_map: str, gid_map: str) -> int:
        """A descriptor of a new user namespace with these maps (/proc/PID/uid_map lines), held by
        nothing else: a child unshares it, we write its maps, open it, and reap the child."""

    @abc.abstractmethod
    def mount_idmapped(self, source: str, target: str, userns_fd: int) -> None:
        """Bind ``source`` (not recursive) on ``target``, its owners seen through ``userns_fd``'s
        maps: open_tree(OPEN_TREE_CLONE), mount_setattr(MOUNT_ATTR_IDMAP), move_mount."""
