"""The child side of container creation: the intermediate process and the container's init.

Both run in processes forked from the caller (never Python inside a raw clone()). The protocol
with the parent (minidock/runtime/process.py) is drawn there. The init is a checklist:

    rootfs (mounts, devices, pivot_root, masks) -> hostname -> loopback -> find the command
    -> terminal -> tell parent "ready" -> wait for "start" -> cwd -> rlimits, capabilities,
    user, no_new_privs, seccomp -> stdio -> close fds -> exec

Everything before "ready" happens at `create`, so a bad command, a missing mount source or an
unusable rootfs is reported by `create`, before anything has run.
"""

from __future__ import annotations

import errno
import fcntl
import os
import sys

from minidock import kernel as k
from minidock.errors import CommandCannotRun, CommandNotFound, InvalidArgument, KernelError, MinidockError
from minidock.runtime import hooks, security, sync, trampoline
from minidock.runtime import rootfs as rfs
from minidock.runtime.sync import recv, send, send_error


# --- messages on the sync socket (SOCK_SEQPACKET: one JSON object per message) -----------------
# --- the intermediate process ---------------------------------------------------------------------
def intermediate(ctx) -> None:
    """Joins/creates namespaces, forks the container's PID 1, reports its pid, exits.

    A process cannot move itself into a new PID namespace: unshare(CLONE_NEWPID) only puts its
    *children* there. Hence this middle process: it unshares, forks, and the fork is PID 1.
    """
    code = 1
    try:
        if ctx.spec.get("linux", {}).get("seccomp"):
            # import now: once we join or build the container's mount namespace, the host's
            # Python library is out of reach (exec joins an existing one right below)
            from minidock.runtime import seccomp  # noqa: F401
        if not sync.wait_for(ctx.sock, sync.CGROUP_READY):  # sync 1: we are in the container's cgroup
            os._exit(1)
        k.note(f"in the intermediate process (host PID {os.getpid()})")
        k.actor("intermediate", "host")
        # CVE-2019-5736 class: from here until the container's execve this process (and the init
        # it forks) is the host's Python interpreter inside the container's namespaces; not
        # dumpable, its /proc/PID/exe, fds and memory are closed to the container's processes
        k.set_dumpable(False, why="the container cannot open /proc/PID/exe (the host's interpreter), "
                                  "our fds or memory while we enter it; execve makes the process dumpable again")
        if ctx.join_pid:
            _join(ctx.join_pid)
        # runc's order: a user namespace joined by path first (the others belong to it), then the
        # other namespaces joined by path (while we still have the host's capabilities), then a
        # new user namespace, then the new others, created in (owned by) it
        def order(ns: dict) -> int:
            user, joined = ns.get("type") == "user", bool(ns.get("path"))
            return 0 if user and joined else 1 if joined else 2 if user else 3

        ns_flags = 0
        for ns in sorted(ctx.namespaces, key=order):
            flag = k.NS_FLAGS.get(ns["type"])
            if flag is None:
                raise MinidockError(f"unknown namespace type {ns['type']!r} in config.json")
            if ns.get("path"):
                k.setns(ns["path"], flag, why=f"join the existing {ns['type']} namespace")
                if ns["type"] == "user":
                    _become_ns_root()
            elif ns["type"] == "user":
                _new_userns(ctx)
            else:
                ns_flags |= flag
        if ns_flags:
            k.unshare(ns_flags, why=_NS_WHY)
        # the init talks on the same socket: it waits until "pid" is sent, or its "ready" could
        # overtake it (seen with exec under load: "expected pid, got ready")
        gate_r, gate_w = os.pipe()
        pid = k.fork("the container's init", why="the first child after unshare(CLONE_NEWPID) is PID 1 of the "
                     "new PID namespace")
        if pid == 0:
            os.close(gate_w)
            os.read(gate_r, 1)
            os.close(gate_r)
            container_init(ctx)  # never returns
        os.close(gate_r)
        send(ctx.sock, {"type": sync.PID, "pid": pid})  # sync 2
        os.close(gate_w)  # (EOF opens the gate)
        code = 0
    except BaseException as e:  # noqa: BLE001 - everything must reach the parent
        code = send_error(ctx.sock, e)
    finally:
        os._exit(code)


def _new_userns(ctx) -> None:
    """unshare(CLONE_NEWUSER), have the parent write our uid/gid maps, become root inside."""
    k.unshare(k.CLONE_NEWUSER, why="a user namespace: root in the container is an unprivileged uid on the host")
    # a non-dumpable process's /proc/self files belong to the host's root: dumpable while the
    # parent writes our maps and we read them (runc does the same), not dumpable again after
    k.set_dumpable(True, why="let the parent write our uid/gid maps")
    send(ctx.sock, {"type": sync.USERNS})
    if not sync.wait_for(ctx.sock, sync.USERNS_MAPPED):
        os._exit(1)
    _become_ns_root()
    k.set_dumpable(False, why="closed again to the container's processes until execve")


def _become_ns_root() -> None:
    """In a user namespace we are whatever our host ids map to (unmapped: 65534): become its
    root where 0 is mapped, so the process's own user (often 0) is set from there."""
    for name, setter in (("gid_map", k.setresgid), ("uid_map", k.setresuid)):
        with open(f"/proc/self/{name}") as f:
            if any(line.split()[0] == "0" for line in f if line.strip()):
                setter(0, why=f"become root ({name[:3]} 0) of the user namespace")


_JOIN_ORDER = ("user", "ipc", "uts", "net", "pid", "cgroup", "mnt")  # mount last: it changes our /proc


def _join(pid: int) -> None:
    """exec: join each namespace of the container's PID 1 that differs from ours."""
    fds = {}
    for name in _JOIN_ORDER:
        path = f"/proc/{pid}/ns/{name}"
        try:
            if os.stat(path).st_ino == os.stat(f"/proc/self/ns/{name}").st_ino:
                continue
        except FileNotFoundError:
            continue
        fds[name] = path
    for name, path in fds.items():
        k.setns(path, 0, why=f"exec joins the container's {name} namespace")
        if name == "user":
            _become_ns_root()


_NS_WHY = ("isolation: the container gets its own mount table, hostname, IPC, network stack, "
           "process tree and cgroup view")


# --- the container's init ---------------------------------------------------------------------------
def container_init(ctx) -> None:
    """The container's PID 1: run the checklist; an error travels to the parent; never returns."""
    code = 125
    try:
        checklist(ctx)
    except BaseException as e:  # noqa: BLE001
        code = send_error(ctx.sock, e)
    os._exit(code)


def checklist(ctx) -> None:
    """runc's checklist: rootfs (mounts, devices, pivot_root) -> finalize (sysctls, masked and
    read-only paths) -> hostname, loopback -> ready (sync 3) -> wait for start (sync 4) ->
    privileges (security.apply) -> stdio -> close fds -> signals -> exec. Returns only on the
    fake kernel (execve does not return for real)."""
    k.note("in the container's init: PID 1 of the new PID namespace")
    k.actor("init", "container")
    k.setsid(why="our own session: the caller's terminal signals reach us only if forwarded")
    spec = ctx.spec
    linux = spec.get("linux", {})
    process = spec["process"]
    new_ns = {ns["type"] for ns in ctx.namespaces if not ns.get("path")}
    if linux.get("seccomp"):
        from minidock.runtime import seccomp  # noqa: F401 - import now: no stdlib after pivot_root
    fifo_fd = ctx.exec_fifo_fd  # opened (O_PATH) by the parent: no path to it need be reachable
    if ctx.join_pid:
        new_ns = set()  # exec: everything already exists, we only joined it
    if not ctx.join_pid:  # (runc: the rootfs is set up in a new, a joined, or no mount namespace)
        _setup_rootfs(ctx, spec, linux, mount_ns=any(ns["type"] == "mount" for ns in ctx.namespaces))
    if "uts" in new_ns and spec.get("hostname"):
        k.sethostname(spec["hostname"], why="the container's own hostname (UTS namespace)")
    if "uts" in new_ns and spec.get("domainname"):
        k.setdomainname(spec["domainname"], why="the container's own domain name")
    if "network" in new_ns:
        k.link_up("lo", why="a new network namespace starts with loopback down")
    env = process.get("env") or []  # runc's: no default PATH (engines put one in the spec)
    path = find_executable(process["args"][0], env, process.get("cwd", "/"))
    slave_fd = None
    if process.get("terminal"):
        master, slave_fd = _open_pty()
        send(ctx.sock, {"type": sync.CONSOLE}, [master])
        os.close(master)
    send(ctx.sock, {"type": sync.READY})  # sync 3
    if fifo_fd is not None:
        _wait_fifo(fifo_fd)
    else:
        if not sync.wait_for(ctx.sock, sync.START):  # sync 4
            os._exit(0)  # the creator went away without starting us
    _exec(ctx, spec, process, path, env, slave_fd)


def _setup_rootfs(ctx, spec: dict, linux: dict, mount_ns: bool = True) -> None:
    """Mounts, devices, hooks, the switch of root. Without a mount namespace (runc's behaviour):
    the mounts are made in the caller's namespace (`delete` removes them) and the root is a
    chroot; the host's propagation is left alone, and masked/read-only paths are refused."""
    root = ctx.rootfs
    if mount_ns:
        rfs.make_private(linux.get("rootfsPropagation"))
    elif linux.get("maskedPaths") or linux.get("readonlyPaths"):
        raise InvalidArgument("unable to restrict sys entries without a private MNT namespace",
                              "Add a mount namespace to linux.namespaces, or drop maskedPaths/readonlyPaths.")
    userns = any(ns.get("type") == "user" for ns in ctx.namespaces)
    try:
        rfs.bind_rootfs(root, private_parent=mount_ns)
    except KernelError as e:
        if userns and e.errno == errno.EACCES:
            e.hint = ("In a user namespace the container's root is an unprivileged host uid: it must be "
                      "able to reach the rootfs (every parent directory searchable, e.g. chmod o+x).")
        raise
    cgroupns = any(ns.get("type") == "cgroup" for ns in ctx.namespaces)
    for m in spec.get("mounts", []):
        rfs.mount_one(root, m, cgroup_mounter=lambda t, f: _cgroup_mounter(t, f, cgroupns), userns=userns)
    if any(m.get("destination") == "/dev" for m in spec.get("mounts", [])):
        rfs.create_devices(root, linux.get("devices"), bind=userns)
    _create_hooks(ctx)
    if ctx.no_pivot == "chroot" or not mount_ns:
        rfs.chroot_only(root)
    elif ctx.no_pivot:
        rfs.chroot_into(root)
    else:
        rfs.pivot(root)
    _apply_sysctls(linux)
    rfs.mask_paths(linux.get("maskedPaths"))
    rfs.readonly_paths(linux.get("readonlyPaths"))
    if spec.get("root", {}).get("readonly"):
        rfs.readonly_root()


def _create_hooks(ctx) -> None:
    """The parent runs prestart/createRuntime now (our mounts exist, pivot_root has not happened),
    then we run createContainer in our namespaces; the state comes back for startContainer."""
    if ctx.join_pid or not hooks.wanted_at_create(ctx.spec):
        return
    send(ctx.sock, {"type": sync.HOOKS})
    msg, _ = recv(ctx.sock)
    if not msg or msg.get("type") != sync.HOOKS_DONE:
        os._exit(1)
    ctx.state = msg["state"]
    hooks.run(ctx.spec, "createContainer", ctx.state, fatal=True)


def _apply_sysctls(linux: dict) -> None:
    from minidock.runtime.spec import check_sysctls

    check_sysctls(linux)  # never a host-global key (the engine refuses them earlier, too)
    for key, value in (linux.get("sysctl") or {}).items():
        k.write_file("/proc/sys/" + key.replace(".", "/"), str(value),
                     why=f"sysctl {key} inside the container's namespaces")


def _cgroup_mounter(target: str, flags: int, cgroupns: bool = True) -> None:
    from minidock.runtime.cgroups_mount import mount_cgroupfs

    mount_cgroupfs(target, flags, cgroupns)


_TIOCGPTN = 0x80045430  # <asm-generic/ioctls.h>; Python's termios lacks these two
_TIOCSPTLCK = 0x40045431


def _open_pty() -> tuple[int, int]:
    """A pty from the container's own devpts instance: master goes to the caller."""
    master = os.open("/dev/pts/ptmx", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    fcntl.ioctl(master, _TIOCSPTLCK, b"\0\0\0\0")  # unlockpt
    n = int.from_bytes(fcntl.ioctl(master, _TIOCGPTN, b"\0\0\0\0"), sys.byteorder)  # ptsname
    slave_path = f"/dev/pts/{n}"
    slave = os.open(slave_path, os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        rfs.bind_console("/", slave_path)  # (past pivot_root: the container's / is "/")
    except MinidockError:
        pass
    return master, slave


def _wait_fifo(fifo_fd: int) -> None:
    """`start` (another process) opens the fifo for reading: our open returns, we go on."""
    fd = os.open(f"/proc/self/fd/{fifo_fd}", os.O_WRONLY | os.O_CLOEXEC)
    os.write(fd, b"0")
    os.close(fd)
    os.close(fifo_fd)


def find_executable(name: str, env: list[str], cwd: str = "/") -> str:
    """Resolve the command like exec(3p)'s PATH search, with Docker's error messages."""
    if "/" in name:
        path = name if name.startswith("/") else os.path.join(cwd, name)
        if not os.path.lexists(path):
            raise CommandNotFound(f'exec: "{name}": stat {name}: no such file or directory')
        _check_runnable(name, path)
        return path
    search = ""  # runc's (Go's exec.LookPath): no PATH in the process's env, no search at all
    for e in env:
        if e.startswith("PATH="):
            search = e[5:]
    for d in search.split(":") if search else []:
        p = os.path.join(d or ".", name)
        if os.path.isfile(p) and os.access(p, os.X_OK):
            return p
    raise CommandNotFound(f'exec: "{name}": executable file not found in $PATH')


def _check_runnable(name: str, path: str) -> None:
    if os.path.isdir(path):
        raise CommandCannotRun(f'exec: "{name}": is a directory')
    if not os.access(path, os.X_OK):
        raise CommandCannotRun(f'exec: "{name}": permission denied')


def _exec(ctx, spec: dict, process: dict, path: str, env: list[str], slave_fd: int | None) -> None:
    cwd = process.get("cwd", "/")
    try:
        k.chdir(cwd, why="the container's working directory")
    except MinidockError:
        raise MinidockError(f'chdir to cwd ("{cwd}") set in config.json failed: '
                            "no such file or directory",
                            "Create the directory in the image, or pass an existing one with -w.") from None
    if process.get("oomScoreAdj") is not None:
        k.write_file("/proc/self/oom_score_adj", str(process["oomScoreAdj"]),
                     why="how eagerly the OOM killer picks this container")
    if slave_fd is not None:
        k.set_controlling_tty(slave_fd, why="the pty is the container's controlling terminal (^C, job control)")
        stdio = (slave_fd, slave_fd, slave_fd)
    else:
        stdio = ctx.stdio or (0, 1, 2)
    if ctx.state and (spec.get("hooks") or {}).get("startContainer"):
        hooks.run(spec, "startContainer", dict(ctx.state, status="created"), fatal=True)
    _new_session_keyring(ctx)
    tramp = _trampoline()
    security.apply(process, spec.get("linux", {}).get("seccomp"))
    for i, fd in enumerate(stdio):
        k.dup2(fd, i, why=("the container's " + ("stdin", "stdout", "stderr")[i]))
    extra = set(range(3, 3 + ctx.preserve_fds))
    for fd in extra:
        try:
            k.dup2(fd, fd, why="--preserve-fds: passed on to the container's process")
        except KernelError:
            raise MinidockError(f"--preserve-fds: file descriptor {fd} is not open") from None
    # CVE-2016-9962 (runc: the init's descriptors reached the container) and CVE-2024-21626
    # (runc "Leaky Vessels": a leaked host directory fd became the container's cwd): every
    # descriptor but stdio, --preserve-fds and the ones we still need is closed before exec.
    k.close_fds({0, 1, 2, ctx.sock.fileno(), k.trace_fd(), tramp} | extra,
                why="no host file leaks into the container")
    k.reset_signals(why="the program starts with default signal handling, nothing blocked")
    envd = dict(e.split("=", 1) if "=" in e else (e, "") for e in env)
    if tramp is not None:
        _precheck(process["args"][0], path)
        try:
            k.execve_fd(tramp, ["minidock-exec", path, *process["args"]], envd,
                        why="start the container's program from the sealed trampoline: while the kernel "
                            "loads it, /proc/self/exe is never the host's interpreter (CVE-2019-5736)")
        except MinidockError:
            pass  # execveat refused (a custom seccomp profile?): exec directly, as before
    try:
        k.execve(path, process["args"], envd, why="the container's process replaces the init")
    except KernelError as e:
        raise _exec_error(process["args"][0], path, e) from None


def _trampoline() -> int | None:
    """The sealed memfd holding the exec trampoline (see trampoline.py), or None on other arches."""
    img = trampoline.image()
    if img is None:
        return None
    return k.memfd_sealed("minidock-exec", img, why="the container's program is started by this sealed "
                                                    "copy, not by the host's interpreter")


def _precheck(name: str, path: str) -> None:
    """What execve would refuse, refused here with Docker's messages (the trampoline can only
    exit 126/127): not a program nor a script, a missing interpreter, or one under /proc (the
    `#!/proc/self/exe` trick)."""
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError as e:
        raise _exec_error(name, path, e) from None
    if head.startswith(b"#!"):
        interp = _interpreter(path) or ""
        real = os.path.realpath(interp) if interp else ""
        if interp.startswith("/proc/") or real.startswith("/proc/") or os.path.realpath(interp) == "/proc/self/exe":
            raise CommandCannotRun(f'exec: "{name}": bad interpreter {interp}: refused',
                                   "A script's interpreter may not be a /proc path (the runtime's own binary).")
        if not interp or not os.path.exists(interp):
            raise _exec_error(name, path, OSError(errno.ENOENT, "No such file or directory"))
    elif head != b"\x7fELF":
        raise _exec_error(name, path, OSError(errno.ENOEXEC, "Exec format error"))


def _new_session_keyring(ctx) -> None:
    """A fresh session keyring for the container's process (runc's `_ses.<id>`): the caller's
    session keyring (and, through it, the host user's keys) is no longer the one it searches.
    Before seccomp, which forbids keyctl."""
    cid = (ctx.state or {}).get("id") or ((ctx.spec.get("annotations") or {}).get("org.minidock.name")) or ""
    try:
        k.join_session_keyring(f"_ses.{cid}" if cid else "_ses",
                               why="the container must not see the caller's session keyring")
    except MinidockError as e:
        if getattr(e, "errno", None) != errno.ENOSYS:
            raise  # (ENOSYS: a kernel built without keys has none to hide; runc's rule too)


def _exec_error(name: str, path: str, e: OSError | KernelError) -> MinidockError:
    if e.errno == errno.ENOENT:
        interp = _interpreter(path)
        if interp:
            return CommandNotFound(f'exec: "{name}": bad interpreter {interp}: no such file or directory',
                                   f"The script's first line names {interp}, which the image lacks.")
        return CommandNotFound(f'exec: "{name}": no such file or directory')
    if e.errno in (errno.EACCES, errno.EPERM):
        return CommandCannotRun(f'exec: "{name}": permission denied')
    if e.errno == errno.ENOEXEC:
        return CommandCannotRun(f'exec: "{name}": exec format error',
                                "The file is not a program for this machine, nor a script with #!.")
    return CommandCannotRun(f'exec: "{name}": {os.strerror(e.errno)}')


def _interpreter(path: str) -> str | None:
    try:
        with open(path, "rb") as f:
            head = f.read(256)
    except OSError:
        return None
    if head.startswith(b"#!"):
        line = head[2:].split(b"\n", 1)[0].strip().split()
        return line[0].decode(errors="replace") if line else None
    return None
