"""The real backend: ctypes calls into libc and the os module. Each raises OSError (errno set)."""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import resource
import socket
import struct

from minidock.kernel.backend import Backend
from minidock.kernel.constants import (
    BPF_CGROUP_DEVICE,
    BPF_F_ALLOW_MULTI,
    BPF_PROG_ATTACH,
    BPF_PROG_LOAD,
    BPF_PROG_TYPE_CGROUP_DEVICE,
    LINUX_CAPABILITY_VERSION_3,
    SYS_BPF,
    SYS_CAPSET,
    SYS_PIVOT_ROOT,
)


class LibcBackend(Backend):
    """The real thing: ctypes calls into libc. Each raises OSError with errno set."""

    def __init__(self) -> None:
        self.libc = ctypes.CDLL("libc.so.6", use_errno=True)  # find_library would run ldconfig
        self.libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p,
                                    ctypes.c_ulong, ctypes.c_char_p]
        self.libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
        self.libc.syscall.restype = ctypes.c_long
        self.libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong,
                                    ctypes.c_ulong, ctypes.c_ulong]

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
        self._check(self.libc.syscall(SYS_CAPSET, ctypes.byref(hdr), ctypes.byref(data)))

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
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            ifr = struct.pack("16sh22x", name.encode(), 0)
            flags = struct.unpack("16sh22x", fcntl.ioctl(s, 0x8913, ifr))[1]  # SIOCGIFFLAGS
            fcntl.ioctl(s, 0x8914, struct.pack("16sh22x", name.encode(), flags | 1))  # IFF_UP

    def mkdir(self, path: str, mode: int) -> None:
        os.mkdir(path, mode)

    def attach_device_filter(self, cgroup_dir: str, insns: bytes) -> None:
        """bpf(BPF_PROG_LOAD) a cgroup device program, bpf(BPF_PROG_ATTACH) it to the cgroup.

        Once attached, the program lives as long as the cgroup: our fds can be closed.
        """
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
