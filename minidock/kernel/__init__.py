"""The kernel layer: the ONLY way minidock talks to the kernel.

Every namespace, mount, pivot_root, capability change, cgroup or /proc write goes through a
function here. Each call:

* is recorded as a :class:`Step` (what was asked, why, and the shell command a learner could type
  to do the same thing) when tracing is on — this is what ``minidock run --explain`` prints;
* raises :class:`minidock.errors.KernelError` naming the call, the object and the errno;
* is carried out by a *backend*: :class:`LibcBackend` (ctypes into libc) for real, or
  :class:`FakeBackend` in unit tests, which records the calls and touches nothing.

Keep this module small and boring: no policy lives here, only the calls and their explanations.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import resource
import shlex
import socket
import struct
import sys
from dataclasses import dataclass, field

from minidock.errors import KernelError

# --- constants (from <sched.h>, <sys/mount.h>, <linux/prctl.h>) --------------------------------
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
CLONE_NEWTIME = 0x00000080

NS_FLAGS = {
    "mount": CLONE_NEWNS,
    "cgroup": CLONE_NEWCGROUP,
    "uts": CLONE_NEWUTS,
    "ipc": CLONE_NEWIPC,
    "user": CLONE_NEWUSER,
    "pid": CLONE_NEWPID,
    "network": CLONE_NEWNET,
    "time": CLONE_NEWTIME,
}
# the /proc/PID/ns/<name> file of each OCI namespace type
NS_PROC_NAMES = {
    "mount": "mnt",
    "cgroup": "cgroup",
    "uts": "uts",
    "ipc": "ipc",
    "user": "user",
    "pid": "pid",
    "network": "net",
    "time": "time",
}
_UNSHARE_OPTS = {
    CLONE_NEWNS: "--mount",
    CLONE_NEWCGROUP: "--cgroup",
    CLONE_NEWUTS: "--uts",
    CLONE_NEWIPC: "--ipc",
    CLONE_NEWUSER: "--user",
    CLONE_NEWPID: "--pid",
    CLONE_NEWNET: "--net",
    CLONE_NEWTIME: "--time",
}

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_SYNCHRONOUS = 16
MS_REMOUNT = 32
MS_MANDLOCK = 64
MS_DIRSYNC = 128
MS_NOSYMFOLLOW = 256
MS_NOATIME = 1024
MS_NODIRATIME = 2048
MS_BIND = 4096
MS_MOVE = 8192
MS_REC = 16384
MS_SILENT = 32768
MS_UNBINDABLE = 1 << 17
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20
MS_RELATIME = 1 << 21
MS_STRICTATIME = 1 << 24
MNT_DETACH = 2
MNT_FORCE = 1

PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_KEEPCAPS = 8
PR_SET_NAME = 15
PR_CAPBSET_READ = 23
PR_CAPBSET_DROP = 24
PR_SET_SECUREBITS = 28
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2
PR_CAP_AMBIENT_CLEAR_ALL = 4

SYS_PIVOT_ROOT = 155  # x86_64
SYS_CAPGET = 125
SYS_CAPSET = 126
SYS_BPF = 321
BPF_PROG_LOAD, BPF_PROG_ATTACH = 5, 8
BPF_PROG_TYPE_CGROUP_DEVICE, BPF_CGROUP_DEVICE, BPF_F_ALLOW_MULTI = 15, 6, 2
_LINUX_CAPABILITY_VERSION_3 = 0x20080522

_MS_NAMES = [
    (MS_RDONLY, "ro"), (MS_NOSUID, "nosuid"), (MS_NODEV, "nodev"), (MS_NOEXEC, "noexec"),
    (MS_SYNCHRONOUS, "sync"), (MS_REMOUNT, "remount"), (MS_DIRSYNC, "dirsync"),
    (MS_NOATIME, "noatime"), (MS_NODIRATIME, "nodiratime"), (MS_RELATIME, "relatime"),
    (MS_STRICTATIME, "strictatime"), (MS_NOSYMFOLLOW, "nosymfollow"),
]


# --- the trace ----------------------------------------------------------------------------------
@dataclass
class Step:
    """One thing the kernel was asked to do."""

    op: str  # the syscall or file write, e.g. "mount", "unshare", "write"
    detail: str  # what exactly, e.g. "overlay on /var/lib/.../merged"
    why: str = ""  # the reason, in a learner's words
    shell: str = ""  # the equivalent shell command

    def render(self) -> str:
        line = f"{self.op:<12} {self.detail}"
        if self.why:
            line += f"\n{'':12}   why: {self.why}"
        if self.shell:
            line += f"\n{'':12}   $ {self.shell}"
        return line


@dataclass
class Tracer:
    """Collects steps; when ``fd`` is set, also writes each one there at once.

    Writing at once matters: the steps of a container's init happen in a forked child, and they
    must appear in order with the parent's, before the container's own output.
    """

    enabled: bool = False
    fd: int | None = None
    steps: list[Step] = field(default_factory=list)
    count: int = 0
    aliases: dict[str, str] = field(default_factory=dict)

    shared: object = None  # an anonymous shared mmap: the step counter survives fork()

    def _next(self) -> int:
        if self.shared is None:
            return self.count + 1
        n = int.from_bytes(self.shared[:4], "little") + 1
        self.shared[:4] = n.to_bytes(4, "little")
        return n

    def alias(self, path: str, name: str) -> None:
        """Print ``path`` as $name from now on (long state paths drown the lesson)."""
        if self.enabled and path not in self.aliases:
            self.aliases[path] = name
            if self.fd is not None:
                try:
                    os.write(self.fd, f"-- {name}={path}\n".encode())
                except OSError:
                    pass

    def _short(self, text: str) -> str:
        for path, name in sorted(self.aliases.items(), key=lambda kv: -len(kv[0])):
            text = text.replace(path, "$" + name)
        return text

    def record(self, step: Step) -> None:
        if not self.enabled:
            return
        if self.aliases:
            step = Step(step.op, self._short(step.detail), self._short(step.why), self._short(step.shell))
        self.steps.append(step)
        self.count = self._next()
        if self.fd is not None:
            text = f"[explain {self.count:>2}] {step.render()}\n"
            try:
                os.write(self.fd, text.encode())
            except OSError:
                pass

    def note(self, text: str) -> None:
        """A heading between steps (e.g. "in the container's init, PID 1")."""
        if self.enabled and self.fd is not None:
            try:
                os.write(self.fd, f"-- {text}\n".encode())
            except OSError:
                pass


tracer = Tracer()


def explain_to(fd: int | None) -> None:
    """Turn tracing on (writing to ``fd``) or off (``None``)."""
    import mmap

    tracer.enabled = fd is not None
    tracer.fd = os.dup(fd) if fd is not None else None
    tracer.shared = mmap.mmap(-1, 4) if fd is not None else None
    if tracer.fd is not None:
        os.set_inheritable(tracer.fd, False)


def _trace(op: str, detail: str, why: str, shell: str) -> None:
    if tracer.enabled:
        tracer.record(Step(op, detail, why, shell))


# --- backends -----------------------------------------------------------------------------------
class LibcBackend:
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

    def setns(self, fd: int, nstype: int) -> None:
        self._retry(self.libc.setns, fd, nstype)

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

        hdr = Header(_LINUX_CAPABILITY_VERSION_3, 0)
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

    def umask(self, mask: int) -> None:
        os.umask(mask)

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


class FakeBackend:
    """Records every call as (name, args) and does nothing: for unit tests without root."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []
        self.files: dict[str, str] = {}

    def __getattr__(self, name):
        def call(*args):
            self.calls.append((name, *args))
            if name == "write_file":
                self.files[args[0]] = args[1]
            if name == "prctl":
                return 0
            return None

        return call


_backend = None


def backend():
    global _backend
    if _backend is None:
        _backend = LibcBackend()
    return _backend


def set_backend(b) -> object:
    """Swap the backend (tests); returns the previous one."""
    global _backend
    old, _backend = _backend, b
    return old


def _do(call: str, obj: str, fn, *args, hint: str | None = None):
    try:
        return fn(*args)
    except OSError as e:
        raise KernelError(call, obj, e.errno or errno.EIO, hint) from None


# --- the calls ----------------------------------------------------------------------------------
def ns_names(flags: int) -> list[str]:
    return [n for n, f in NS_FLAGS.items() if flags & f]


def unshare(flags: int, *, why: str = "") -> None:
    opts = " ".join(o for f, o in _UNSHARE_OPTS.items() if flags & f)
    _trace("unshare", "new " + ", ".join(ns_names(flags)) + " namespace(s)", why, f"unshare {opts}")
    _do("unshare", ",".join(ns_names(flags)), backend().unshare, flags)


def setns(path: str, nstype: int = 0, *, why: str = "") -> None:
    """Join the namespace behind ``path`` (e.g. /proc/PID/ns/net)."""
    _trace("setns", path, why, f"nsenter --{_nsenter_opt(path)}={path}")
    fd = _do("open", path, os.open, path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        _do("setns", path, backend().setns, fd, nstype)
    finally:
        os.close(fd)


def _nsenter_opt(path: str) -> str:
    base = os.path.basename(path)
    return {"mnt": "mount", "net": "net", "uts": "uts", "ipc": "ipc", "pid": "pid",
            "cgroup": "cgroup", "user": "user", "time": "time"}.get(base, "target")


def mount_options(flags: int) -> list[str]:
    return [name for bit, name in _MS_NAMES if flags & bit]


def mount(source: str | None, target: str, fstype: str | None = None, flags: int = 0,
          data: str | None = None, *, why: str = "") -> None:
    opts = mount_options(flags)
    if data:
        opts.append(data)
    if flags & MS_BIND:
        detail = f"bind {source} on {target}" + (" (recursive)" if flags & MS_REC else "")
        rb = "rbind" if flags & MS_REC else "bind"
        shell = f"mount --{rb} {shlex.quote(str(source))} {shlex.quote(target)}"
        if flags & MS_REMOUNT:
            ro = ",".join(o for o in opts if o != "remount")
            detail = f"remount bind {target} {ro}"
            shell = f"mount -o remount,bind,{ro} {shlex.quote(target)}"
    elif flags & (MS_PRIVATE | MS_SLAVE | MS_SHARED | MS_UNBINDABLE):
        kind = ("private" if flags & MS_PRIVATE else "slave" if flags & MS_SLAVE
                else "shared" if flags & MS_SHARED else "unbindable")
        rec = "r" if flags & MS_REC else ""
        detail = f"make {target} {kind}" + (" (recursive)" if rec else "")
        shell = f"mount --make-{rec}{kind} {shlex.quote(target)}"
    elif flags & MS_MOVE:
        detail = f"move {source} to {target}"
        shell = f"mount --move {shlex.quote(str(source))} {shlex.quote(target)}"
    elif flags & MS_REMOUNT:
        ro = ",".join(o for o in opts if o != "remount")
        detail = f"remount {target} {ro}"
        shell = f"mount -o remount,{ro} {shlex.quote(target)}"
    else:
        detail = f"{fstype} on {target}" + (f" ({','.join(opts)})" if opts else "")
        o = f" -o {shlex.quote(','.join(opts))}" if opts else ""
        shell = f"mount -t {fstype}{o} {shlex.quote(str(source))} {shlex.quote(target)}"
    _trace("mount", detail, why, shell)
    _do("mount", f"{fstype or ''} {source} on {target}".strip(), backend().mount,
        source, target, fstype, flags, data)


def umount(target: str, flags: int = 0, *, why: str = "") -> None:
    lazy = " -l" if flags & MNT_DETACH else ""
    _trace("umount", target, why, f"umount{lazy} {shlex.quote(target)}")
    _do("umount2", target, backend().umount2, target, flags)


def pivot_root(new_root: str, put_old: str, *, why: str = "") -> None:
    _trace("pivot_root", f"new root {new_root}, old root to {put_old}", why,
           f"pivot_root {shlex.quote(new_root)} {shlex.quote(put_old)}")
    _do("pivot_root", new_root, backend().pivot_root, new_root, put_old)


def chroot(path: str, *, why: str = "") -> None:
    _trace("chroot", path, why, f"chroot {shlex.quote(path)}")
    _do("chroot", path, backend().chroot, path)


def chdir(path: str, *, why: str = "") -> None:
    _trace("chdir", path, why, f"cd {shlex.quote(path)}")
    _do("chdir", path, backend().chdir, path)


def sethostname(name: str, *, why: str = "") -> None:
    _trace("sethostname", name, why, f"hostname {shlex.quote(name)}")
    _do("sethostname", name, backend().sethostname, name)


def setdomainname(name: str, *, why: str = "") -> None:
    _trace("setdomainname", name, why, f"domainname {shlex.quote(name)}")
    _do("setdomainname", name, backend().setdomainname, name)


def mknod(path: str, mode: int, major: int, minor: int, *, why: str = "") -> None:
    import stat

    kind = "c" if stat.S_ISCHR(mode) else "b" if stat.S_ISBLK(mode) else "p"
    _trace("mknod", f"{path} ({kind} {major}:{minor})", why,
           f"mknod -m {oct(mode & 0o7777)[2:]} {path} {kind} {major} {minor}")
    _do("mknod", path, backend().mknod, path, mode, os.makedev(major, minor))


def prctl(option: int, a2: int = 0, *, what: str, why: str = "", shell: str = "") -> int:
    _trace("prctl", what, why, shell)
    return _do("prctl", what, backend().prctl, option, a2)


def set_no_new_privs(*, why: str = "") -> None:
    prctl(PR_SET_NO_NEW_PRIVS, 1, what="PR_SET_NO_NEW_PRIVS", why=why,
          shell="setpriv --no-new-privs ...")


def set_child_subreaper(*, why: str = "") -> None:
    prctl(PR_SET_CHILD_SUBREAPER, 1, what="PR_SET_CHILD_SUBREAPER", why=why)


def set_pdeathsig(sig: int, *, why: str = "") -> None:
    prctl(PR_SET_PDEATHSIG, sig, what=f"PR_SET_PDEATHSIG {sig}", why=why)


def capbset_drop(caps: list[int], names: list[str], *, why: str = "") -> None:
    """Drop capabilities from the bounding set, so no later exec can regain them."""
    _trace("prctl", f"PR_CAPBSET_DROP {len(caps)} capabilities: {', '.join(names)}", why,
           "capsh --drop=" + ",".join(n.lower() for n in names) + " --")
    for c, n in zip(caps, names, strict=False):
        _do("prctl", f"PR_CAPBSET_DROP {n}", backend().prctl, PR_CAPBSET_DROP, c)


def ambient_raise(caps: list[int], names: list[str], *, why: str = "") -> None:
    if not caps:
        return
    _trace("prctl", "PR_CAP_AMBIENT raise " + ", ".join(names), why,
           "capsh --addamb=" + ",".join(n.lower() for n in names))
    for c, n in zip(caps, names, strict=False):
        _do("prctl", f"PR_CAP_AMBIENT_RAISE {n}", backend().prctl, PR_CAP_AMBIENT,
            PR_CAP_AMBIENT_RAISE, c)


def capset(effective: int, permitted: int, inheritable: int, *, why: str = "") -> None:
    _trace("capset", f"effective={effective:016x} permitted={permitted:016x} "
           f"inheritable={inheritable:016x}", why, f"capsh --caps=... (CapEff {effective:016x})")
    _do("capset", "current process", backend().capset, effective, permitted, inheritable)


def set_keepcaps(on: bool) -> None:
    _do("prctl", "PR_SET_KEEPCAPS", backend().prctl, PR_SET_KEEPCAPS, 1 if on else 0)


def setgroups(gids: list[int], *, why: str = "") -> None:
    _trace("setgroups", ",".join(map(str, gids)) or "(none)", why,
           f"setpriv --groups={','.join(map(str, gids))}" if gids else "setpriv --clear-groups")
    _do("setgroups", str(gids), backend().setgroups, gids)


def setresgid(gid: int, *, why: str = "") -> None:
    _trace("setresgid", str(gid), why, f"setpriv --regid={gid}")
    _do("setresgid", str(gid), backend().setresgid, gid)


def setresuid(uid: int, *, why: str = "") -> None:
    _trace("setresuid", str(uid), why, f"setpriv --reuid={uid}")
    _do("setresuid", str(uid), backend().setresuid, uid)


def umask(mask: int) -> None:
    backend().umask(mask)


def setrlimit(resource_id: int, name: str, soft: int, hard: int, *, why: str = "") -> None:
    opt = name.removeprefix("RLIMIT_").lower()
    _trace("setrlimit", f"{name} soft={soft} hard={hard}", why, f"prlimit --{opt}={soft}:{hard}")
    _do("setrlimit", name, backend().setrlimit, resource_id, soft, hard)


def write_file(path: str, data: str, *, why: str = "", hint: str | None = None) -> None:
    """Write a kernel file: a cgroup knob, /proc/self/uid_map, a sysctl."""
    _trace("write", f"{data.strip()!r} > {path}", why, f"echo {shlex.quote(data.strip())} > {path}")
    _do("write", path, backend().write_file, path, data, hint=hint)


def cgroup_mkdir(path: str, *, why: str = "") -> None:
    _trace("mkdir", path, why, f"mkdir {shlex.quote(path)}")
    _do("mkdir", path, backend().mkdir, path, 0o755)


def attach_device_filter(cgroup_dir: str, insns: bytes, *, rules: str = "", why: str = "") -> None:
    """cgroup v2 device rules: load an eBPF program and attach it to the cgroup."""
    _trace("bpf", f"load a {len(insns) // 8}-instruction BPF_PROG_TYPE_CGROUP_DEVICE program ({rules}), "
           f"attach it to {cgroup_dir}", why,
           f"bpftool prog load devices.o /sys/fs/bpf/md type cgroup/dev && "
           f"bpftool cgroup attach {shlex.quote(cgroup_dir)} device pinned /sys/fs/bpf/md multi")
    _do("bpf", cgroup_dir, backend().attach_device_filter, cgroup_dir, insns,
        hint="The kernel needs CONFIG_BPF_SYSCALL and CONFIG_CGROUP_BPF for cgroup v2 device rules.")


def cgroup_rmdir(path: str, *, why: str = "") -> None:
    _trace("rmdir", path, why, f"rmdir {shlex.quote(path)}")
    _do("rmdir", path, backend().rmdir, path)


def link_up(name: str, *, why: str = "") -> None:
    _trace("ioctl", f"SIOCSIFFLAGS {name} up", why, f"ip link set {name} up")
    _do("ioctl SIOCSIFFLAGS", name, backend().link_up, name)


def note(text: str) -> None:
    tracer.note(text)


def is_root() -> bool:
    return os.geteuid() == 0


__all__ = [name for name in dir(sys.modules[__name__]) if not name.startswith("_")]
