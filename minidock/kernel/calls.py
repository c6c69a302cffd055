"""The traced calls: what the rest of minidock uses to reach the kernel.

Each function records a :class:`~minidock.kernel.trace.Step` (what, why, the shell equivalent)
and asks the backend; an ``OSError`` from the backend becomes a :class:`KernelError` naming the
call, the object and the errno.
"""

from __future__ import annotations

import errno
import os

from minidock.errors import KernelError
from minidock.kernel.backend import Backend
from minidock.kernel.constants import (
    CAPABILITIES,
    CLONE_NEWPID,
    MNT_DETACH,
    MS_BIND,
    MS_MOVE,
    MS_NAMES,
    MS_PRIVATE,
    MS_REC,
    MS_REMOUNT,
    MS_SHARED,
    MS_SLAVE,
    MS_UNBINDABLE,
    NS_FLAGS,
    PR_CAP_AMBIENT,
    PR_CAP_AMBIENT_RAISE,
    PR_CAPBSET_DROP,
    PR_SET_CHILD_SUBREAPER,
    PR_SET_DUMPABLE,
    PR_SET_KEEPCAPS,
    PR_SET_NO_NEW_PRIVS,
    PR_SET_PDEATHSIG,
    UNSHARE_OPTS,
)
from minidock.kernel.trace import join as _join
from minidock.kernel.trace import quote as _quote
from minidock.kernel.trace import trace

# --- the backend in use ------------------------------------------------------------------------
_backend: Backend | None = None


def backend() -> Backend:
    """The backend in use: libc unless a test swapped in a fake."""
    global _backend
    if _backend is None:
        from minidock.kernel.libc import LibcBackend  # (here: ctypes is not every caller's cost)

        _backend = LibcBackend()
    return _backend


def set_backend(b: Backend | None) -> Backend | None:
    """Swap the backend (tests); returns the previous one. ``None`` goes back to libc."""
    global _backend
    if b is not None and not isinstance(b, Backend):
        raise TypeError(f"{type(b).__name__} is not a minidock.kernel.Backend")
    old, _backend = _backend, b
    return old


# --- the calls ---------------------------------------------------------------------------------
def _do(call: str, obj: str, fn, *args, hint: str | None = None):
    try:
        return fn(*args)
    except OSError as e:
        raise KernelError(call, obj, e.errno or errno.EIO, hint) from None


# --- the calls ----------------------------------------------------------------------------------
def ns_names(flags: int) -> list[str]:
    return [n for n, f in NS_FLAGS.items() if flags & f]


def unshare(flags: int, *, why: str = "") -> None:
    opts = " ".join(o for f, o in UNSHARE_OPTS.items() if flags & f)
    trace("unshare", "new " + ", ".join(ns_names(flags)) + " namespace(s)", why,
          f"unshare {opts}" + (" --fork" if flags & CLONE_NEWPID else "") + " sh")
    _do("unshare", ",".join(ns_names(flags)), backend().unshare, flags)


def setns(path: str, nstype: int = 0, *, why: str = "") -> None:
    """Join the namespace behind ``path`` (e.g. /proc/PID/ns/net)."""
    opt = _nsenter_opt(path, nstype)
    trace("setns", path, why, f"nsenter --{opt}={path} sh" if opt else
          f"(a namespace held open as a descriptor: nsenter takes it by path, e.g. {path})")
    _do("setns", path, backend().setns, path, nstype)


def _nsenter_opt(path: str, nstype: int = 0) -> str:
    """nsenter's option for the namespace at path (by its name, else by nstype); "" if unknown."""
    by_name = {"mnt": "mount", "net": "net", "uts": "uts", "ipc": "ipc", "pid": "pid",
               "cgroup": "cgroup", "user": "user", "time": "time"}
    base = os.path.basename(path)
    if base in by_name:
        return by_name[base]
    names = ns_names(nstype)
    return {"mount": "mount", "network": "net"}.get(names[0], names[0]) if len(names) == 1 else ""


def mount_options(flags: int) -> list[str]:
    return [name for bit, name in MS_NAMES if flags & bit]


def mount(source: str | None, target: str, fstype: str | None = None, flags: int = 0,
          data: str | None = None, *, why: str = "") -> None:
    opts = mount_options(flags)
    if data:
        opts.append(data)
    if flags & MS_BIND:
        detail = f"bind {source} on {target}" + (" (recursive)" if flags & MS_REC else "")
        rb = "rbind" if flags & MS_REC else "bind"
        shell = f"mount --{rb} {_quote(str(source))} {_quote(target)}"
        if flags & MS_REMOUNT:
            ro = ",".join(o for o in opts if o != "remount")
            detail = f"remount bind {target} {ro}"
            shell = f"mount -o remount,bind,{ro} {_quote(target)}"
    elif flags & (MS_PRIVATE | MS_SLAVE | MS_SHARED | MS_UNBINDABLE):
        kind = ("private" if flags & MS_PRIVATE else "slave" if flags & MS_SLAVE
                else "shared" if flags & MS_SHARED else "unbindable")
        rec = "r" if flags & MS_REC else ""
        detail = f"make {target} {kind}" + (" (recursive)" if rec else "")
        shell = f"mount --make-{rec}{kind} {_quote(target)}"
    elif flags & MS_MOVE:
        detail = f"move {source} to {target}"
        shell = f"mount --move {_quote(str(source))} {_quote(target)}"
    elif flags & MS_REMOUNT:
        ro = ",".join(o for o in opts if o != "remount")
        detail = f"remount {target} {ro}"
        shell = f"mount -o remount,{ro} {_quote(target)}"
    else:
        detail = f"{fstype} on {target}" + (f" ({','.join(opts)})" if opts else "")
        o = f" -o {_quote(','.join(opts))}" if opts else ""
        shell = f"mount -t {fstype}{o} {_quote(str(source))} {_quote(target)}"
    trace("mount", detail, why, shell)
    _do("mount", f"{fstype or ''} {source} on {target}".strip(), backend().mount,
        source, target, fstype, flags, data)


def umount(target: str, flags: int = 0, *, why: str = "") -> None:
    lazy = " -l" if flags & MNT_DETACH else ""
    trace("umount", target, why, f"umount{lazy} {_quote(target)}")
    _do("umount2", target, backend().umount2, target, flags)


def _before_leaving_the_host() -> None:
    """Past pivot_root or chroot the host's Python library is out of reach: import now what the
    stdlib imports lazily on the way to a program (os.execvp's os.get_exec_path imports warnings;
    the runtime's own path search does not, but a lab's runtime calls os.execvp; link_up, which
    brings lo up in the init past pivot_root, imports _socket)."""
    import _socket  # noqa: F401
    import warnings  # noqa: F401


def pivot_root(new_root: str, put_old: str, *, why: str = "") -> None:
    _before_leaving_the_host()
    trace("pivot_root", f"new root {new_root}, old root to {put_old}", why,
           f"pivot_root {_quote(new_root)} {_quote(put_old)}")
    _do("pivot_root", new_root, backend().pivot_root, new_root, put_old)


def chroot(path: str, *, why: str = "") -> None:
    _before_leaving_the_host()
    trace("chroot", path, why, f"chroot {_quote(path)}")
    _do("chroot", path, backend().chroot, path)


def chdir(path: str, *, why: str = "") -> None:
    trace("chdir", path, why, f"cd {_quote(path)}")
    _do("chdir", path, backend().chdir, path)


def sethostname(name: str, *, why: str = "") -> None:
    trace("sethostname", name, why, f"hostname {_quote(name)}")
    _do("sethostname", name, backend().sethostname, name)


def setdomainname(name: str, *, why: str = "") -> None:
    trace("setdomainname", name, why, f"domainname {_quote(name)}")
    _do("setdomainname", name, backend().setdomainname, name)


def mknod(path: str, mode: int, major: int, minor: int, *, why: str = "") -> None:
    import stat

    kind = "c" if stat.S_ISCHR(mode) else "b" if stat.S_ISBLK(mode) else "p"
    trace("mknod", f"{path} ({kind} {major}:{minor})", why,
           f"mknod -m {oct(mode & 0o7777)[2:]} {path} {kind} {major} {minor}")
    _do("mknod", path, backend().mknod, path, mode, os.makedev(major, minor))


def prctl(option: int, a2: int = 0, *, what: str, why: str = "", shell: str = "") -> int:
    trace("prctl", what, why, shell)
    return _do("prctl", what, backend().prctl, option, a2)


def set_no_new_privs(*, why: str = "") -> None:
    prctl(PR_SET_NO_NEW_PRIVS, 1, what="PR_SET_NO_NEW_PRIVS", why=why,
          shell="setpriv --no-new-privs sh")


def set_dumpable(on: bool, *, why: str = "") -> None:
    """PR_SET_DUMPABLE: a non-dumpable process's /proc/PID/exe, fds, mem and environ are closed to
    processes without CAP_SYS_PTRACE (the CVE-2019-5736 class); execve makes it dumpable again."""
    prctl(PR_SET_DUMPABLE, 1 if on else 0, what=f"PR_SET_DUMPABLE {1 if on else 0}", why=why)


def memfd_sealed(name: str, data: bytes, *, why: str = "") -> int:
    """An in-memory, sealed (unchangeable) file holding data; returns its close-on-exec fd."""
    trace("memfd_create", f"{name} ({len(data)} bytes), sealed: no write, grow, shrink", why,
          "(no shell equivalent: memfd_create + fcntl(F_ADD_SEALS))")
    return _do("memfd_create", name, backend().memfd_sealed, name, bytes(data))


def execve_fd(fd: int, argv: list[str], env: dict[str, str], *, why: str = "") -> None:
    """execveat(fd, "", AT_EMPTY_PATH): replace this process with the program in a descriptor."""
    trace("execveat", _join(argv), why, _join(argv))
    _do("execveat", f"fd {fd}", backend().execve_fd, fd, list(argv), dict(env))


def join_session_keyring(name: str, *, why: str = "") -> int:
    """A new (anonymous, named) session keyring for this process and what it execs: the caller's
    session keyring, and the keys in it, are out of reach (runc does the same)."""
    trace("keyctl", f"KEYCTL_JOIN_SESSION_KEYRING {name}", why, f"keyctl session {name}")
    return _do("keyctl", f"KEYCTL_JOIN_SESSION_KEYRING {name}", backend().join_session_keyring, name)


def set_child_subreaper(*, why: str = "") -> None:
    prctl(PR_SET_CHILD_SUBREAPER, 1, what="PR_SET_CHILD_SUBREAPER", why=why)


def set_pdeathsig(sig: int, *, why: str = "") -> None:
    prctl(PR_SET_PDEATHSIG, sig, what=f"PR_SET_PDEATHSIG {sig}", why=why)


def capbset_drop(caps: list[int], names: list[str], *, why: str = "") -> None:
    """Drop capabilities from the bounding set, so no later exec can regain them."""
    trace("prctl", f"PR_CAPBSET_DROP {len(caps)} capabilities: {', '.join(names)}", why,
           "capsh --drop=" + ",".join(n.lower() for n in names) + " --")
    for c, n in zip(caps, names, strict=False):
        _do("prctl", f"PR_CAPBSET_DROP {n}", backend().prctl, PR_CAPBSET_DROP, c)


def ambient_raise(caps: list[int], names: list[str], *, why: str = "") -> None:
    if not caps:
        return
    trace("prctl", "PR_CAP_AMBIENT raise " + ", ".join(names), why,
           "capsh --addamb=" + ",".join(n.lower() for n in names))
    for c, n in zip(caps, names, strict=False):
        _do("prctl", f"PR_CAP_AMBIENT_RAISE {n}", backend().prctl, PR_CAP_AMBIENT,
            PR_CAP_AMBIENT_RAISE, c)


def capset(effective: int, permitted: int, inheritable: int, *, why: str = "") -> None:
    trace("capset", f"effective={effective:016x} permitted={permitted:016x} "
           f"inheritable={inheritable:016x}", why, _capsh_caps(effective, permitted, inheritable))
    _do("capset", "current process", backend().capset, effective, permitted, inheritable)


def _capsh_caps(effective: int, permitted: int, inheritable: int) -> str:
    """capsh's --caps text for these three sets (cap_from_text: "cap_a,cap_b+ep cap_c+i")."""
    def names(mask):
        return ",".join(n.lower() for i, n in enumerate(CAPABILITIES) if mask >> i & 1)

    parts = []
    if effective == permitted and permitted:
        parts.append(f"{names(permitted)}+ep")
    else:
        parts += [f"{names(permitted)}+p"] if permitted else []
        parts += [f"{names(effective)}+e"] if effective else []
    if inheritable:
        parts.append(f"{names(inheritable)}+i")
    return f'capsh --caps="{" ".join(parts) or "="}" --'


def set_keepcaps(on: bool) -> None:
    _do("prctl", "PR_SET_KEEPCAPS", backend().prctl, PR_SET_KEEPCAPS, 1 if on else 0)


def setgroups(gids: list[int], *, why: str = "") -> None:
    trace("setgroups", ",".join(map(str, gids)) or "(none)", why,
           f"setpriv --groups={','.join(map(str, gids))}" if gids else "setpriv --clear-groups")
    _do("setgroups", str(gids), backend().setgroups, gids)


def setresgid(gid: int, *, why: str = "") -> None:
    trace("setresgid", str(gid), why, f"setpriv --regid={gid}")
    _do("setresgid", str(gid), backend().setresgid, gid)


def setresuid(uid: int, *, why: str = "") -> None:
    trace("setresuid", str(uid), why, f"setpriv --reuid={uid}")
    _do("setresuid", str(uid), backend().setresuid, uid)


def umask(mask: int, *, why: str = "") -> int:
    """Set the process's umask; returns the previous one."""
    trace("umask", f"{mask:04o}", why, f"umask {mask:04o}")
    return _do("umask", f"{mask:04o}", backend().umask, mask)


def setrlimit(resource_id: int, name: str, soft: int, hard: int, *, why: str = "") -> None:
    opt = name.removeprefix("RLIMIT_").lower()
    trace("setrlimit", f"{name} soft={soft} hard={hard}", why, f"prlimit --pid $$ --{opt}={soft}:{hard}")
    _do("setrlimit", name, backend().setrlimit, resource_id, soft, hard)


def write_file(path: str, data: str, *, why: str = "", hint: str | None = None) -> None:
    """Write a kernel file: a cgroup knob, /proc/self/uid_map, a sysctl."""
    trace("write", f"{data.strip()!r} > {path}", why, f"echo {_quote(data.strip())} > {path}")
    _do("write", path, backend().write_file, path, data, hint=hint)


def mount_point(rootfs: str, target: str, is_dir: bool, *, why: str = "") -> None:
    """Create a missing mount point (and its missing parents) inside the rootfs: a directory, or an
    empty file for a file bind mount. Made from a descriptor of the rootfs, component by component,
    never following a link (CVE-2021-30465 class: a racing container swapping a component for a
    symlink to a host directory makes this fail instead of creating on the host)."""
    q = _quote
    rel = os.path.relpath(target, rootfs)
    if rel.startswith(".."):
        raise KernelError("mkdir", target, errno.EINVAL, "a mount point outside the rootfs")
    parent = target if is_dir else os.path.dirname(target)
    trace("mkdir" if is_dir else "touch", target, why or "a mount needs a mount point",
          f"mkdir -p {q(target)}" if is_dir else f"mkdir -p {q(parent)} && touch {q(target)}")
    _do("mkdir" if is_dir else "touch", target, backend().make_mount_point, rootfs, rel, is_dir)


def symlink(src: str, path: str, *, why: str = "") -> None:
    trace("symlink", f"{path} -> {src}", why, f"ln -s {_quote(src)} {_quote(path)}")
    _do("symlink", path, backend().symlink, src, path)


def cgroup_mkdir(path: str, *, why: str = "") -> None:
    trace("mkdir", path, why, f"mkdir {_quote(path)}")
    _do("mkdir", path, backend().mkdir, path, 0o755)


def attach_device_filter(cgroup_dir: str, insns: bytes, *, rules: str = "", why: str = "") -> None:
    """cgroup v2 device rules: load an eBPF program and attach it to the cgroup."""
    trace("bpf", f"load a {len(insns) // 8}-instruction BPF_PROG_TYPE_CGROUP_DEVICE program ({rules}), "
           f"attach it to {cgroup_dir}", why,
           f"bpftool prog load devices.o /sys/fs/bpf/md type cgroup/dev && "
           f"bpftool cgroup attach {_quote(cgroup_dir)} device pinned /sys/fs/bpf/md multi")
    _do("bpf", cgroup_dir, backend().attach_device_filter, cgroup_dir, insns,
        hint="The kernel needs CONFIG_BPF_SYSCALL and CONFIG_CGROUP_BPF for cgroup v2 device rules.")


def cgroup_rmdir(path: str, *, why: str = "") -> None:
    trace("rmdir", path, why, f"rmdir {_quote(path)}")
    _do("rmdir", path, backend().rmdir, path)


def link_up(name: str, *, why: str = "") -> None:
    trace("ioctl", f"SIOCSIFFLAGS {name} up", why, f"ip link set {name} up")
    _do("ioctl SIOCSIFFLAGS", name, backend().link_up, name)


# --- netlink (rtnetlink messages: links, addresses, routes) -------------------------------------
def netlink_open() -> int:
    """An rtnetlink socket in the caller's network namespace (see network/netlink.py)."""
    return _do("socket", "AF_NETLINK NETLINK_ROUTE", backend().netlink_open)


def netlink(handle: int, mtype: int, flags: int, body: bytes, *, what: str, detail: str | None = None,
            why: str = "", shell: str = "") -> list[tuple[int, bytes]]:
    """One rtnetlink request; traced when it changes something (``why`` given)."""
    if why:
        trace("netlink", detail or what, why, shell)
    return _do("netlink", what, backend().netlink_request, handle, mtype, flags, body)


def netlink_close(handle: int) -> None:
    backend().netlink_close(handle)


# --- host tools (nft, iptables) ------------------------------------------------------------------
class ToolResult(tuple):
    """(returncode, stdout, stderr) with those names (a NamedTuple, without importing typing)."""

    __slots__ = ()

    def __new__(cls, returncode: int, stdout: str, stderr: str):
        return tuple.__new__(cls, (returncode, stdout, stderr))

    returncode = property(lambda self: self[0])
    stdout = property(lambda self: self[1])
    stderr = property(lambda self: self[2])


def run_tool(argv: list[str], *, input: str | None = None, why: str = "", op: str | None = None,
             detail: str | None = None, shell: str | None = None) -> ToolResult:
    """Run nft/iptables to completion; traced when it changes something (``why`` given)."""
    name = op or os.path.basename(argv[0])
    if why:
        trace(name, detail if detail is not None else _join(argv[1:]), why,
              shell if shell is not None else _join(argv))
    return ToolResult(*_do(name, _join(argv[1:]), backend().run_tool, list(argv), input))


# --- seccomp ---------------------------------------------------------------------------------------
def seccomp_prepare() -> bool:
    """Open libseccomp while the host's libraries are still reachable; False if it is missing."""
    return _do("dlopen", "libseccomp.so.2", backend().seccomp_prepare)


def seccomp_load(default_action: int, architectures: list[str],
                 rules: list[tuple[str, int, list[tuple[int, int, int, int]]]], *, detail: str,
                 why: str = "", enosys_newer: bool = False) -> int:
    """Install a seccomp filter (libseccomp compiles the rules to BPF); returns the rules added.
    enosys_newer: syscalls newer than every one named fail with ENOSYS, not the default (runc)."""
    trace("seccomp", detail, why, "(no shell equivalent: libseccomp compiles the profile to BPF, "
          "seccomp(SECCOMP_SET_MODE_FILTER))")
    return _do("seccomp", detail, backend().seccomp_load, default_action, list(architectures), rules,
               enosys_newer)


# --- the last steps of the container's init ----------------------------------------------------------
def setsid(*, why: str = "") -> None:
    trace("setsid", "a new session, this process its leader", why, "setsid")
    _do("setsid", "current process", backend().setsid)


def set_controlling_tty(fd: int, *, why: str = "") -> None:
    trace("ioctl", f"TIOCSCTTY fd {fd}", why, "setsid --ctty")
    _do("ioctl TIOCSCTTY", f"fd {fd}", backend().set_controlling_tty, fd)


def dup2(fd: int, fd2: int, *, why: str = "") -> None:
    trace("dup2", f"fd {fd} -> {fd2}" if fd != fd2 else f"fd {fd} kept across exec", why,
          f"exec {fd2}>&{fd}" if fd != fd2 else "")
    _do("dup2", f"{fd} -> {fd2}", backend().dup2, fd, fd2)


def close_fds(keep: set[int], *, why: str = "") -> None:
    kept = sorted(f for f in keep if f is not None)
    trace("close", f"every descriptor but {', '.join(map(str, kept))}", why, "")
    _do("close", "inherited descriptors", backend().close_fds, set(kept))


def reset_signals(*, why: str = "") -> None:
    trace("sigaction", "every signal handler to SIG_DFL, the signal mask empty", why, "")
    _do("sigaction", "all signals", backend().reset_signals)


def execve(path: str, argv: list[str], env: dict[str, str], *, why: str = "") -> None:
    """Replace this process with ``path`` (raises KernelError when the kernel refuses)."""
    trace("execve", _join([path, *argv[1:]]), why, _join(argv))
    _do("execve", path, backend().execve, path, list(argv), dict(env))


def fork(what: str, *, why: str = "") -> int:
    """fork(2) a process of the container's making (the intermediate, the init, a monitor): the
    step is recorded by the parent, before the fork. 0 in the child, the child's pid in the parent."""
    trace("fork", what, why, "(no shell equivalent of its own: every command a shell runs is a forked "
          "child; `unshare --fork` forks after unsharing)")
    return _do("fork", what, backend().fork)


def fork_into_cgroup(what: str, cgroup_dir: str, *, why: str = "") -> int:
    """clone3(CLONE_INTO_CGROUP): fork a process that is born in the cgroup v2 directory
    ``cgroup_dir`` -- no write of its pid to cgroup.procs afterwards, no migration (whose first
    write waits for an RCU grace period, ~10 ms). Raises KernelError(ENOSYS/EINVAL/E2BIG) on a
    kernel older than 5.7: the caller forks and writes cgroup.procs instead."""
    trace("clone3", f"{what}, born in {cgroup_dir}", why,
          f"(no shell equivalent: the child of clone3(CLONE_INTO_CGROUP) starts in the cgroup; by hand: "
          f"echo $$ > {_quote(cgroup_dir + '/cgroup.procs')}, then start the process from that shell)")
    return _do("clone3", cgroup_dir, backend().fork_into_cgroup, cgroup_dir)


def spawn(path: str, argv: list[str], env: dict[str, str], stdin: int, stdout: int, *,
          why: str = "") -> int:
    """fork + execve a helper (an OCI hook), stdin and stdout/stderr given; returns its pid."""
    trace("fork+execve", _join([path, *argv[1:]]), why, _join(argv))
    return _do("fork+execve", path, backend().spawn, path, list(argv), dict(env), stdin, stdout)


# --- files with kernel meaning ---------------------------------------------------------------------
def mkfifo(path: str, mode: int = 0o600, *, why: str = "") -> None:
    trace("mkfifo", path, why, f"mkfifo -m {mode:o} {_quote(path)}")
    _do("mkfifo", path, backend().mkfifo, path, mode)


def chown(path: str, uid: int, gid: int, *, why: str = "") -> None:
    trace("chown", f"{path} to {uid}:{gid}", why, f"chown -h {uid}:{gid} {_quote(path)}")
    _do("chown", path, backend().chown, path, uid, gid)


def setxattr(path: str, name: str, value: bytes, *, why: str = "") -> None:
    trace("setxattr", f"{name}={value.decode(errors='replace')} on {path}", why,
          f"setfattr -h -n {name} -v {_quote(value.decode(errors='replace'))} {_quote(path)}")
    _do("setxattr", f"{name} on {path}", backend().setxattr, path, name, value)


def openat2(dirfd: int, path: str, flags: int, resolve: int) -> int:
    """openat2(2) (no trace: it opens, it changes nothing); raises KernelError, ENOSYS before 5.6."""
    return _do("openat2", path or ".", backend().openat2, dirfd, path, flags, resolve)


def userns_fd(uid_map: str, gid_map: str, *, why: str = "") -> int:
    """A held user namespace with these maps (for idmapped mounts); the caller closes it."""
    trace("unshare", f"a user namespace to describe an idmapping: uid_map {uid_map.strip()!r}, "
          f"gid_map {gid_map.strip()!r}", why, "unshare --user sleep infinity & "
          "(then write /proc/$!/uid_map and gid_map, open /proc/$!/ns/user)")
    return _do("unshare(CLONE_NEWUSER)", "an idmapping holder", backend().userns_fd, uid_map, gid_map)


def mount_idmapped(source: str, target: str, userns_fd: int, *, maps: str = "", why: str = "") -> None:
    trace("mount", f"idmapped bind {source} on {target}" + (f" ({maps})" if maps else ""), why,
          f"mount --bind -o X-mount.idmap={_quote(maps or '...')} {_quote(source)} {_quote(target)}")
    _do("open_tree/mount_setattr(MOUNT_ATTR_IDMAP)/move_mount", f"{source} on {target}",
        backend().mount_idmapped, source, target, userns_fd,
        hint="Idmapped mounts need Linux 5.12+ and a filesystem that supports them (ext4, xfs, btrfs; "
             "tmpfs from 6.3), and overlayfs takes them as layers from 5.19.")


def is_root() -> bool:
    return os.geteuid() == 0


__all__ = [n for n, v in list(globals().items())
           if not n.startswith("_") and callable(v) and getattr(v, "__module__", "") == __name__]
