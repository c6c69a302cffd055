"""The parent side of container creation: an OCI bundle in, an isolated process out.

The protocol, over one SOCK_SEQPACKET socketpair (one JSON message per packet; the child end is
close-on-exec, so a successful exec shows up as EOF). The message names and send/recv/expect live
in sync.py; :func:`handshake` is the parent's half, shared by create and exec:

    parent (caller)                 intermediate (host PID ns)         init (PID 1 of the container)
    ───────────────                 ──────────────────────────         ─────────────────────────────
    create cgroup, fork ─────────►  wait
    put intermediate in cgroup
    "cgroup-ready" (sync 1) ──────► setns to namespaces given by path
                                    [new user ns: unshare it,
    write uid_map/gid_map ◄──────── "userns"
    "userns-mapped" ──────────────► become root in it]
                                    unshare the new namespaces
                                    fork ─────────────────────────────► mounts, devices
    ◄──────────── "pid" N (sync 2)  exit                                [hooks: "hooks"; the parent
    reap intermediate                                                    runs prestart, createRuntime,
    ◄──────────────────────────────────────────────────────────────────  answers "hooks-done" + state;
                                                                         createContainer hooks]
                                                                        pivot_root, masks, hostname,
                                                                        lo up, find command
                                                                        [pty: "console" + master fd]
    (caller: network into N's netns)  ◄──────────────────────────────── "ready" (sync 3)
    state.json: created
    start(): "start" (sync 4) ─────────────────────────────────────────► cwd, [startContainer hooks],
                                                                        rlimits, caps, user,
                                                                        no_new_privs, seccomp, exec
    ◄──────────────────────────────────────────────────── EOF = exec'd, or "error" (126/127)

Any step can answer "error" instead: the parent kills what exists, removes the cgroup and the
state, and raises the child's error with its exit code. Errors are never lost in a child.

The cgroup is joined by the intermediate *before* it forks, so no process of the container ever
exists outside its limits ("so no children can escape", as runc puts it), and before the cgroup
namespace is unshared, so the container sees its own cgroup as "/".

`create` with exec_fifo=True is the OCI CLI's split create/start: the init blocks opening a fifo
in the state directory until `start` (another process) opens it for reading, as runc does. The
init gets an O_PATH descriptor of it from us and re-opens it through /proc/self/fd, so it needs no
path to our state directory (in a user namespace its root could not walk one).
"""

from __future__ import annotations

import errno
import os
import time
from _socket import AF_UNIX, SOCK_SEQPACKET
from _socket import socketpair as _socketpair  # (socket.py imports enum and selectors: ~2 ms)

from minidock import kernel as k
from minidock import paths
from minidock.errors import Conflict, KernelError, MinidockError
from minidock.runtime import hooks, sync
from minidock.runtime import init as child
from minidock.runtime import spec as ocispec
from minidock.runtime.container import (  # noqa: F401 - process.py's names, as before the split
    SIGKILL,
    Container,
    _kill,
    _proc_start_time,
    _umount_rootfs,
    exit_code,
    load,
    state_dir,
)


class _Ctx:
    """What the forked children need (they inherit it through fork). (A plain class: dataclasses
    costs ~5 ms to import, in every `minidock-runtime create`.)"""

    def __init__(self, sock, spec: dict, rootfs: str, namespaces: list[dict], stdio: tuple[int, int, int] | None,
                 exec_fifo_fd: int | None = None, no_pivot: bool | str = False, join_pid: int = 0,
                 state: dict | None = None, preserve_fds: int = 0):
        self.sock = sock  # the child's end of the protocol socketpair
        self.spec = spec
        self.rootfs = rootfs
        self.namespaces = namespaces
        self.stdio = stdio
        self.exec_fifo_fd = exec_fifo_fd  # create/start split: the init writes to it once started
        self.no_pivot = no_pivot  # True: move the rootfs over / and chroot; "chroot": a bare chroot
        self.join_pid = join_pid  # exec: join this process's namespaces instead of making new ones
        self.state = state  # the OCI state, for hooks the init runs
        self.preserve_fds = preserve_fds  # --preserve-fds N: fds 3..3+N-1 pass into the process


def create(cid: str, bundle: str, *, root: str | None = None, stdio: tuple[int, int, int] | None = None,
           exec_fifo: bool = False, no_pivot: bool = False, journal=None, spec: dict | None = None,
           preserve_fds: int = 0) -> Container:
    """Create the container: everything up to (not including) the exec of its process.

    Returns with the init waiting for start(). ``stdio`` are the fds that become the process's
    0, 1, 2 (default: ours). With ``spec["process"]["terminal"]``, ``console_fd`` is the pty
    master, received from the init.
    """
    bundle = os.path.abspath(bundle)
    spec = spec or ocispec.load(bundle)
    hooks.check(spec)
    userns = _user_mappings(spec)
    rootfs = ocispec.rootfs_path(spec, bundle)
    c = Container(id=cid, bundle=bundle, spec=spec, root=root or str(paths.run_root() / "runtime"),
                  created=time.strftime("%Y-%m-%dT%H:%M:%S.000000000Z", time.gmtime()))
    try:
        os.makedirs(os.path.dirname(c.dir), exist_ok=True)
        os.mkdir(c.dir, 0o700)
    except FileExistsError:
        raise Conflict(f"container with id {cid} already exists") from None
    fifo = None
    if exec_fifo:
        fifo = os.path.join(c.dir, "exec.fifo")
        k.mkfifo(fifo, 0o600, why="`start` opens it for writing: the init waits on it before exec")
        if userns is not None:  # the init opens it as the namespace's root: an unprivileged host uid
            os.chmod(c.dir, 0o711)
            k.chown(fifo, _host_id(userns[0], 0), _host_id(userns[1], 0),
                    why="the init opens the fifo as the user namespace's root")
    parent_sock, child_sock = _socketpair(AF_UNIX, SOCK_SEQPACKET)
    ctx = _Ctx(sock=child_sock, spec=spec, rootfs=rootfs, namespaces=ocispec.namespaces(spec),
               stdio=stdio, no_pivot=no_pivot, preserve_fds=preserve_fds)
    if fifo:
        # the init re-opens it through /proc/self/fd (as runc does): in a user namespace its root
        # could not walk the path to our state directory
        ctx.exec_fifo_fd = os.open(fifo, os.O_PATH | os.O_CLOEXEC)
    cg = None
    pid1 = 0
    try:
        cg = _make_cgroup(c, spec, journal)
        k.set_child_subreaper(why="the container's init is re-parented to us, so we can reap it")
        pid1, born_in_cgroup = _fork_intermediate(cg)
        if pid1 == 0:
            parent_sock.close()
            child.intermediate(ctx)  # never returns
        child_sock.close()
        if ctx.exec_fifo_fd is not None:
            os.close(ctx.exec_fifo_fd)
            ctx.exec_fifo_fd = None
        def on_pid(pid: int) -> None:
            nonlocal pid1
            c.pid, pid1 = pid, 0
            c.init_start = _proc_start_time(pid)

        def on_hooks() -> dict:  # the init's mounts are ready, pivot_root is next
            c.save()
            state = dict(c.state(), status="creating")
            for name in ("prestart", "createRuntime"):  # runc's order
                hooks.run(spec, name, state, fatal=True)
            return state

        c.console_fd = handshake(parent_sock, pid1, cgroup=None if born_in_cgroup else cg, userns=userns,
                                 on_pid=on_pid,
                                 on_hooks=on_hooks)
        c.sock = None if exec_fifo else parent_sock
        c.save()
        if exec_fifo:
            parent_sock.close()
        return c
    except BaseException:
        if pid1:
            _kill(pid1, SIGKILL)
            _reap(pid1)
        if c.pid:
            _kill(c.pid, SIGKILL)
            _reap(c.pid)
        parent_sock.close()
        if cg is not None:
            try:
                cg.destroy()
            except MinidockError:
                pass
        paths.remove_tree(c.dir)
        raise


def _fork_intermediate(cg) -> tuple[int, bool]:
    """Fork the intermediate: on cgroup v2 born in the container's cgroup (clone3 with
    CLONE_INTO_CGROUP: no pid written to cgroup.procs, no migration, whose first write waits for an
    RCU grace period, ~10 ms), else a plain fork that handshake() then moves. (pid, born in it?)"""
    what = "the intermediate process"
    why = ("it unshares the namespaces (a process cannot move itself into a new PID namespace: its "
           "child will be PID 1)")
    birth = cg.birth_dir() if cg is not None else None
    if birth:
        try:
            return k.fork_into_cgroup(what, birth, why=why + "; born in the container's cgroup, as its "
                                      "children will be"), True
        except KernelError as e:
            if e.errno not in (errno.ENOSYS, errno.EINVAL, errno.E2BIG, errno.EPERM):
                raise  # (a kernel before 5.7, or seccomp'd clone3: fork and migrate instead)
    return k.fork(what, why="it joins the cgroup, then " + why[3:]), False


def _user_mappings(spec: dict) -> tuple[list[dict], list[dict]] | None:
    """The uid/gid mappings of a new user namespace (None without one)."""
    linux = spec.get("linux", {})
    new = any(ns.get("type") == "user" and not ns.get("path") for ns in linux.get("namespaces") or [])
    if not new:
        if linux.get("uidMappings") or linux.get("gidMappings"):
            raise MinidockError("config.json has uid/gid mappings but no new user namespace",
                                'Add {"type": "user"} to linux.namespaces, or remove the mappings.')
        return None
    if not linux.get("uidMappings") or not linux.get("gidMappings"):
        raise MinidockError("user namespaces enabled, but no uid or gid mappings found",
                            "Give linux.uidMappings and linux.gidMappings (containerID, hostID, size).")
    return linux["uidMappings"], linux["gidMappings"]


def _host_id(maps: list[dict], cid: int) -> int:
    """The host id that container id `cid` maps to (-1: unmapped, chown leaves it)."""
    for m in maps:
        if int(m["containerID"]) <= cid < int(m["containerID"]) + int(m["size"]):
            return int(m["hostID"]) + cid - int(m["containerID"])
    return -1


def _write_mappings(pid: int, uids: list[dict], gids: list[dict]) -> None:
    """The parent (root in the host's user namespace) maps the child's new user namespace."""
    for name, maps in (("uid_map", uids), ("gid_map", gids)):
        text = "".join(f"{int(m['containerID'])} {int(m['hostID'])} {int(m['size'])}\n" for m in maps)
        k.write_file(f"/proc/{pid}/{name}", text,
                     why=f"user namespace: container {name[:3]}s map to unprivileged host {name[:3]}s "
                         "(root inside is nobody outside)",
                     hint="Check the mappings in config.json: ranges must not overlap.")


def _with_device_allowances(linux: dict) -> dict:
    """The spec's device rules plus, as runc adds them, access to the nodes the runtime itself
    creates in /dev (the defaults and linux.devices): a "deny all" rule must not stop mknod."""
    from minidock.runtime.rootfs import DEFAULT_DEVICES

    res = dict(linux.get("resources") or {})
    if res.get("devices") is None:
        return res
    nodes = [(typ, major, minor) for _, typ, major, minor, _ in DEFAULT_DEVICES]
    nodes += [(d.get("type", "c"), d.get("major", 0), d.get("minor", 0)) for d in linux.get("devices") or []]
    extra = [{"allow": True, "type": typ if typ in ("c", "b") else "c", "major": major, "minor": minor,
              "access": "rwm"} for typ, major, minor in nodes]
    extra += [{"allow": True, "type": "c", "major": 136, "minor": -1, "access": "rwm"},
              {"allow": True, "type": "c", "major": 5, "minor": 2, "access": "rwm"}]

    def key(r):
        return (r.get("allow"), r.get("type"), r.get("major"), r.get("minor"), r.get("access"))

    seen = {key(r) for r in res["devices"]}
    res["devices"] = list(res["devices"])
    for r in extra:  # each rule once: the spec's own defaults often include these already
        if key(r) not in seen:
            seen.add(key(r))
            res["devices"].append(r)
    return res


def _make_cgroup(c: Container, spec: dict, journal):
    from minidock.runtime.cgroups import open_cgroup

    linux = spec.get("linux", {})
    c.cgroup_path = linux.get("cgroupsPath") or f"{paths.cgroup_parent()}/{c.id}"
    cg = open_cgroup(c.cgroup_path)
    cg.create(_with_device_allowances(linux), journal=journal)
    return cg


def handshake(sock, intermediate_pid: int, *, cgroup=None, userns=None,
              on_pid=None, on_hooks=None) -> int | None:
    """The parent's half of the protocol (sync.py), shared by create and exec.

    Puts the intermediate in ``cgroup`` (before it may fork: no process escapes the limits),
    maps a new user namespace, learns the init's pid (``on_pid``, after the intermediate is
    reaped), runs the create hooks when the init asks (``on_hooks`` returns the state for it),
    and returns at READY with the console's master fd (or None).
    """
    if cgroup is not None:
        cgroup.add_proc(intermediate_pid)
    sync.send(sock, {"type": sync.CGROUP_READY})  # sync 1
    msg, _ = sync.recv(sock)
    if userns is not None and msg and msg.get("type") == sync.USERNS:
        _write_mappings(intermediate_pid, *userns)
        sync.send(sock, {"type": sync.USERNS_MAPPED})
        msg, _ = sync.recv(sock)
    pid = sync.check(msg, sync.PID)["pid"]  # sync 2
    _reap(intermediate_pid)
    if on_pid:
        on_pid(pid)
    console = None
    while True:
        msg, fds = sync.recv(sock, want_fds=1)
        if msg and msg.get("type") == sync.CONSOLE:
            console = fds[0]
            continue
        if msg and msg.get("type") == sync.HOOKS and on_hooks:
            sync.send(sock, {"type": sync.HOOKS_DONE, "state": on_hooks()})
            continue
        sync.check(msg, sync.READY)  # sync 3
        return console


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass


class ExecProcess:
    """A process started in a running container's namespaces and cgroup."""

    def __init__(self, pid: int, sock, console_fd: int | None = None):
        self.pid, self.sock, self.console_fd = pid, sock, console_fd

    def start(self) -> None:
        sync.send(self.sock, {"type": sync.START})  # sync 4
        msg, _ = sync.recv(self.sock)
        self.sock.close()
        self.sock = None
        if msg and msg.get("type") == sync.ERROR:
            raise MinidockError(msg["message"], msg.get("hint"), exit_code=msg["exit_code"])

    def wait(self) -> int:
        _, status = os.waitpid(self.pid, 0)
        return exit_code(status)


def exec_process(c: Container, process: dict, *, stdio: tuple[int, int, int] | None = None,
                 preserve_fds: int = 0) -> ExecProcess:
    """Like create+start for an extra process: same namespaces, cgroup and security settings.

    The process spec is the container's, with the caller's args/env/cwd/user/terminal.
    """
    if c.status() not in ("running", "created", "paused"):
        raise Conflict(f"container {c.id} is not running")
    spec = dict(c.spec)
    spec["process"] = process
    parent_sock, child_sock = _socketpair(AF_UNIX, SOCK_SEQPACKET)
    ctx = _Ctx(sock=child_sock, spec=spec, rootfs="/", namespaces=[], stdio=stdio, join_pid=c.pid,
               preserve_fds=preserve_fds)
    k.set_child_subreaper(why="the exec'd process is re-parented to us, so we can reap it")
    pid1 = k.fork("the intermediate process of exec", why="it joins the container's namespaces, then forks "
                  "the process that runs the command")
    if pid1 == 0:
        parent_sock.close()
        child.intermediate(ctx)
    child_sock.close()
    p = ExecProcess(pid=0, sock=parent_sock)
    try:
        def on_pid(pid: int) -> None:
            nonlocal pid1
            p.pid, pid1 = pid, 0

        p.console_fd = handshake(parent_sock, pid1, cgroup=c.cgroup() if c.cgroup_path else None,
                                 on_pid=on_pid)
        return p
    except BaseException:
        for pid in (pid1, p.pid):
            if pid:
                _kill(pid, SIGKILL)
                _reap(pid)
        parent_sock.close()
        raise
