"""The real backend: ctypes calls into libc and the os module. Each raises OSError (errno set)."""

from __future__ import annotations

import errno
import fcntl
import os
import resource
import struct
import termios

from minidock.kernel.backend import Backend
from minidock.kernel.constants import (
    AT_EMPTY_PATH,
    BPF_CGROUP_DEVICE,
    BPF_F_ALLOW_MULTI,
    BPF_PROG_ATTACH,
    BPF_PROG_LOAD,
    BPF_PROG_TYPE_CGROUP_DEVICE,
    CLONE_INTO_CGROUP,
    CLONE_NEWUSER,
    KEYCTL_JOIN_SESSION_KEYRING,
    LINUX_CAPABILITY_VERSION_3,
    MOUNT_ATTR_IDMAP,
    MOVE_MOUNT_F_EMPTY_PATH,
    NLM_F_ACK,
    NLM_F_MULTI,
    NLM_F_REQUEST,
    NLMSG_DONE,
    NLMSG_ERROR,
    OPEN_TREE_CLONE,
    SIGCHLD,
    SYS_BPF,
    SYS_CAPSET,
    SYS_CLONE3,
    SYS_KEYCTL,
    SYS_MOUNT_SETATTR,
    SYS_MOVE_MOUNT,
    SYS_OPEN_TREE,
    SYS_OPENAT2,
    SYS_PIVOT_ROOT,
)

# the ctypes module, imported with libc on first use: callers that only rmdir, mkdir or write
# cgroup files (`minidock-runtime delete`) skip its ~1.5 ms
ctypes = None


class LibcBackend(Backend):
    """The real thing: ctypes calls into libc. Each raises OSError with errno set."""

    def __init__(self) -> None:
        self._libc = None
        self._netlink: dict[int, list] = {}  # handle -> [socket, last sequence number]
        self._seccomp = None
        self._pysyscall = None  # syscall(2) called with the GIL held (clone3)

    @property
    def libc(self):
        global ctypes
        if self._libc is None:
            import ctypes as c

            ctypes = c
            lib = c.CDLL("libc.so.6", use_errno=True)  # find_library would run ldconfig
            lib.mount.argtypes = [c.c_char_p, c.c_char_p, c.c_char_p, c.c_ulong, c.c_char_p]
            lib.umount2.argtypes = [c.c_char_p, c.c_int]
            lib.syscall.restype = c.c_long
            lib.prctl.argtypes = [c.c_int, c.c_ulong, c.c_ulong, c.c_ulong, c.c_ulong]
            self._libc = lib
        return self._libc

    def _check(self, ret: int) -> int:
        if ret == -1:
            e = ctypes.get_errno()
            raise OSError(e, os.strerror(e))
        return ret

    def _retry(self, fn, *args) -> int:
        while True:
            ret = fn(*args)
            if ret == -1 and ctypes.get_errno() == errno.EINTR:
                continue
            return self._check(ret)

    def unshare(self, flags: int) -> None:
        self._retry(self.libc.unshare, flags)

    def setns(self, path: str, nstype: int) -> None:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            self._retry(self.libc.setns, fd, nstype)
        finally:
            os.close(fd)

    def mount(self, source, target, fstype, flags, data) -> None:
        def enc(s):
            return (s.encode() if isinstance(s, str) else s)
        self._retry(self.libc.mount, enc(source), enc(target), enc(fstype), flags, enc(data))

    def umount2(self, target: str, flags: int) -> None:
        self._retry(self.libc.umount2, target.encode(), flags)

    def pivot_root(self, new_root: str, put_old: str) -> None:
        self._retry(self.libc.syscall, SYS_PIVOT_ROOT, new_root.encode(), put_old.encode())

    def sethostname(self, name: str) -> None:
        b = name.encode()
        self._retry(self.libc.sethostname, b, len(b))

    def setdomainname(self, name: str) -> None:
        b = name.encode()
        self._retry(self.libc.setdomainname, b, len(b))

    def prctl(self, option: int, a2: int = 0, a3: int = 0, a4: int = 0, a5: int = 0) -> int:
        return self._retry(self.libc.prctl, option, a2, a3, a4, a5)

    def capset(self, effective: int, permitted: int, inheritable: int) -> None:
        libc = self.libc  # (ctypes too)
        class Header(ctypes.Structure):
            _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

        class Data(ctypes.Structure):
            _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                        ("inheritable", ctypes.c_uint32)]

        hdr = Header(LINUX_CAPABILITY_VERSION_3, 0)
        data = (Data * 2)()
        for i, shift in ((0, 0), (1, 32)):
            data[i].effective = (effective >> shift) & 0xFFFFFFFF
            data[i].permitted = (permitted >> shift) & 0xFFFFFFFF
            data[i].inheritable = (inheritable >> shift) & 0xFFFFFFFF
        self._check(libc.syscall(SYS_CAPSET, ctypes.byref(hdr), ctypes.byref(data)))

    # plain os-module calls, routed through the backend so that fakes see them too
    def chdir(self, path: str) -> None:
        os.chdir(path)

    def chroot(self, path: str) -> None:
        os.chroot(path)

    def mknod(self, path: str, mode: int, device: int) -> None:
        os.mknod(path, mode, device)

    def setgroups(self, gids: list[int]) -> None:
        os.setgroups(gids)

    def setresgid(self, gid: int) -> None:
        os.setresgid(gid, gid, gid)

    def setresuid(self, uid: int) -> None:
        os.setresuid(uid, uid, uid)

    def umask(self, mask: int) -> int:
        return os.umask(mask)

    def setrlimit(self, res: int, soft: int, hard: int) -> None:
        resource.setrlimit(res, (soft, hard))

    def write_file(self, path: str, data: str) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(fd, data.encode())
        finally:
            os.close(fd)

    def rmdir(self, path: str) -> None:
        os.rmdir(path)

    def link_up(self, name: str) -> None:
        import _socket  # (not socket.py: it imports enum and selectors, ~2 ms of every container start)

        s = _socket.socket(_socket.AF_INET, _socket.SOCK_DGRAM)
        try:
            ifr = struct.pack("16sh22x", name.encode(), 0)
            flags = struct.unpack("16sh22x", fcntl.ioctl(s, 0x8913, ifr))[1]  # SIOCGIFFLAGS
            fcntl.ioctl(s, 0x8914, struct.pack("16sh22x", name.encode(), flags | 1))  # IFF_UP
        finally:
            s.close()

    def mkdir(self, path: str, mode: int) -> None:
        os.mkdir(path, mode)

    def attach_device_filter(self, cgroup_dir: str, insns: bytes) -> None:
        """bpf(BPF_PROG_LOAD) a cgroup device program, bpf(BPF_PROG_ATTACH) it to the cgroup.

        Once attached, the program lives as long as the cgroup: our fds can be closed.
        """
        self.libc  # noqa: B018 - loads ctypes
        code = ctypes.create_string_buffer(insns, len(insns))
        lic = ctypes.create_string_buffer(b"Apache")
        log = ctypes.create_string_buffer(65536)
        attr = ctypes.create_string_buffer(128)  # union bpf_attr, the PROG_LOAD part
        struct.pack_into("<IIQQIIQ", attr, 0, BPF_PROG_TYPE_CGROUP_DEVICE, len(insns) // 8,
                         ctypes.addressof(code), ctypes.addressof(lic), 1, len(log), ctypes.addressof(log))
        struct.pack_into("16s", attr, 48, b"minidock_dev")
        try:
            prog = self._retry(self.libc.syscall, SYS_BPF, BPF_PROG_LOAD, attr, 128)
        except OSError as e:
            verifier = log.value.decode(errors="replace").strip().splitlines()[-3:]
            raise OSError(e.errno, f"{e.strerror} (verifier: {' | '.join(verifier)})") from None
        try:
            cg = os.open(cgroup_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                attach = ctypes.create_string_buffer(32)
                struct.pack_into("<IIII", attach, 0, cg, prog, BPF_CGROUP_DEVICE, BPF_F_ALLOW_MULTI)
                self._retry(self.libc.syscall, SYS_BPF, BPF_PROG_ATTACH, attach, 32)
            finally:
                os.close(cg)
        finally:
            os.close(prog)

    # --- netlink
    def netlink_open(self) -> int:
        import socket

        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, 0)  # NETLINK_ROUTE
        sock.bind((0, 0))
        self._netlink[sock.fileno()] = [sock, 0]
        return sock.fileno()

    def netlink_request(self, handle: int, mtype: int, flags: int, body: bytes) -> list[tuple[int, bytes]]:
        entry = self._netlink[handle]
        sock = entry[0]
        entry[1] += 1
        seq = entry[1]
        sock.send(struct.pack("=IHHII", 16 + len(body), mtype, flags | NLM_F_REQUEST, seq, 0) + body)
        out = []
        while True:
            data = sock.recv(1 << 16)
            off = 0
            while off + 16 <= len(data):
                length, rtype, rflags, rseq, _ = struct.unpack_from("=IHHII", data, off)
                payload = data[off + 16:off + length]
                off += (length + 3) & ~3
                if rseq != seq:
                    continue
                if rtype == NLMSG_ERROR:
                    err = -struct.unpack_from("=i", payload)[0]
                    if err:
                        raise OSError(err, os.strerror(err))
                    return out
                if rtype == NLMSG_DONE:
                    return out
                out.append((rtype, payload))
                if not rflags & NLM_F_MULTI and not flags & NLM_F_ACK:
                    return out

    def netlink_close(self, handle: int) -> None:
        entry = self._netlink.pop(handle, None)
        if entry:
            entry[0].close()

    def run_tool(self, argv: list[str], input: str | None) -> tuple[int, str, str]:
        import subprocess

        r = subprocess.run(argv, input=input, capture_output=True, text=True)
        return r.returncode, r.stdout, r.stderr

    def memfd_sealed(self, name: str, data: bytes) -> int:
        fd = os.memfd_create(name, os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            fcntl.fcntl(fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_SEAL | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW
                        | fcntl.F_SEAL_WRITE)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def execve_fd(self, fd: int, argv: list[str], env: dict[str, str]) -> None:
        os.execve(fd, argv, env)  # fexecve: execveat(fd, "", AT_EMPTY_PATH)

    def join_session_keyring(self, name: str) -> int:
        return self._retry(self.libc.syscall, SYS_KEYCTL, KEYCTL_JOIN_SESSION_KEYRING, name.encode())

    # --- seccomp
    def _libseccomp(self):
        """libseccomp, opened once (before pivot_root: the host's /usr/lib is gone after)."""
        if self._seccomp is None:
            from minidock.kernel import seccomp_lib

            self._seccomp = seccomp_lib.open_library()
        return self._seccomp

    def seccomp_prepare(self) -> bool:
        return self._libseccomp() is not None

    def seccomp_load(self, default_action: int, architectures: list[str],
                     rules: list[tuple[str, int, list[tuple[int, int, int, int]]]],
                     enosys_newer: bool = False) -> int:
        from minidock.kernel import seccomp_lib

        return seccomp_lib.load(self._libseccomp(), default_action, architectures, rules, enosys_newer)

    # --- the last steps before exec
    def setsid(self) -> None:
        os.setsid()

    def set_controlling_tty(self, fd: int) -> None:
        fcntl.ioctl(fd, termios.TIOCSCTTY, 0)

    def dup2(self, fd: int, fd2: int) -> None:
        if fd == fd2:
            os.set_inheritable(fd, True)
        else:
            os.dup2(fd, fd2)

    def close_fds(self, keep: set[int]) -> None:
        for name in os.listdir("/proc/self/fd"):
            fd = int(name)
            if fd in keep:
                continue
            try:
                os.close(fd)
            except OSError:
                pass

    def reset_signals(self) -> None:
        import _signal as signal  # (signal.py wraps it in enums: enum costs ~2.5 ms in the init)

        for sig in range(1, signal.NSIG):
            try:
                if signal.getsignal(sig) not in (signal.SIG_DFL, None):
                    signal.signal(sig, signal.SIG_DFL)
            except (OSError, ValueError):
                pass
        signal.pthread_sigmask(signal.SIG_SETMASK, [])

    def execve(self, path: str, argv: list[str], env: dict[str, str]) -> None:
        os.execve(path, argv, env)

    def fork(self) -> int:
        return os.fork()

    def fork_into_cgroup(self, cgroup_dir: str) -> int:
        # what os.fork() does around fork(2) (the import lock, at-fork hooks, the thread state),
        # around a raw clone3 made with the GIL held (PyDLL): the child returns here as a Python
        # process like os.fork's child
        self.libc  # noqa: B018 - loads ctypes
        if self._pysyscall is None:
            self._pysyscall = ctypes.PyDLL("libc.so.6", use_errno=True).syscall
            self._pysyscall.restype = ctypes.c_long
        fd = os.open(cgroup_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            # struct clone_args (CLONE_ARGS_SIZE_VER2): flags, pidfd, child_tid, parent_tid,
            # exit_signal, stack, stack_size, tls, set_tid, set_tid_size, cgroup
            args = ctypes.create_string_buffer(struct.pack("=11Q", CLONE_INTO_CGROUP, 0, 0, 0, SIGCHLD,
                                                           0, 0, 0, 0, 0, fd), 88)
            api = ctypes.pythonapi
            api.PyOS_BeforeFork()
            pid = self._pysyscall(SYS_CLONE3, args, 88)
            if pid == 0:
                api.PyOS_AfterFork_Child()
                return 0
            err = ctypes.get_errno()
            api.PyOS_AfterFork_Parent()
            if pid < 0:
                raise OSError(err, os.strerror(err))
            return pid
        finally:
            os.close(fd)

    def symlink(self, src: str, path: str) -> None:
        os.symlink(src, path)

    def make_mount_point(self, root: str, rel: str, is_dir: bool) -> None:
        parts = [p for p in rel.split("/") if p not in ("", ".")]
        if ".." in parts:
            raise OSError(errno.EINVAL, f"'..' in a mount point: {rel}")
        fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            for i, name in enumerate(parts):
                if i == len(parts) - 1 and not is_dir:
                    try:
                        os.close(os.open(name, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC,
                                         0o644, dir_fd=fd))
                    except FileExistsError:
                        pass
                    return
                try:
                    os.mkdir(name, 0o755, dir_fd=fd)
                except FileExistsError:
                    pass
                # O_NOFOLLOW | O_DIRECTORY: a link planted here, even one made a moment ago, fails
                nfd = os.open(name, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
                os.close(fd)
                fd = nfd
        finally:
            os.close(fd)

    def spawn(self, path: str, argv: list[str], env: dict[str, str], stdin: int, stdout: int) -> int:
        pid = os.fork()
        if pid == 0:
            try:
                os.dup2(stdin, 0)
                os.dup2(stdout, 1)
                os.dup2(stdout, 2)
                os.execve(path, argv, env)
            except OSError as e:
                os.write(2, f"exec: {e.strerror}".encode())
            finally:
                os._exit(127)
        return pid

    # --- files with kernel meaning
    def mkfifo(self, path: str, mode: int) -> None:
        os.mkfifo(path, mode)

    def chown(self, path: str, uid: int, gid: int) -> None:
        os.chown(path, uid, gid)

    def setxattr(self, path: str, name: str, value: bytes) -> None:
        os.setxattr(path, name, value, follow_symlinks=False)

    def openat2(self, dirfd: int, path: str, flags: int, resolve: int) -> int:
        libc = self.libc  # (ctypes too)
        class OpenHow(ctypes.Structure):
            _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]

        how = OpenHow(flags, 0, resolve)
        return self._retry(libc.syscall, SYS_OPENAT2, dirfd, path.encode() or b".",
                           ctypes.byref(how), ctypes.sizeof(how))

    def userns_fd(self, uid_map: str, gid_map: str) -> int:
        go_r, go_w = os.pipe()
        ready_r, ready_w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the holder: unshare, say so, wait until the parent has opened the namespace
            try:
                os.close(go_w)
                os.close(ready_r)
                if self.libc.unshare(CLONE_NEWUSER) == -1:
                    os._exit(1)
                os.write(ready_w, b"u")
                os.read(go_r, 1)
            finally:
                os._exit(0)
        os.close(go_r)
        os.close(ready_w)
        try:
            if os.read(ready_r, 1) != b"u":
                raise OSError(errno.EPERM, "unshare(CLONE_NEWUSER) failed in the holder process")
            for name, text in (("uid_map", uid_map), ("gid_map", gid_map)):
                fd = os.open(f"/proc/{pid}/{name}", os.O_WRONLY | os.O_CLOEXEC)
                try:
                    os.write(fd, text.encode())
                finally:
                    os.close(fd)
            return os.open(f"/proc/{pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
        finally:
            os.close(go_w)
            os.close(ready_r)
            os.waitpid(pid, 0)

    def mount_idmapped(self, source: str, target: str, userns_fd: int) -> None:
        self.libc  # noqa: B018 - loads ctypes
        class MountAttr(ctypes.Structure):
            _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                        ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]

        tree = self._check(self.libc.syscall(SYS_OPEN_TREE, -100, source.encode(),
                                             OPEN_TREE_CLONE | os.O_CLOEXEC))
        try:
            attr = MountAttr(MOUNT_ATTR_IDMAP, 0, 0, userns_fd)
            self._check(self.libc.syscall(SYS_MOUNT_SETATTR, tree, b"", AT_EMPTY_PATH,
                                          ctypes.byref(attr), ctypes.sizeof(attr)))
            self._check(self.libc.syscall(SYS_MOVE_MOUNT, tree, b"", -100, target.encode(),
                                          MOVE_MOUNT_F_EMPTY_PATH))
        finally:
            os.close(tree)
