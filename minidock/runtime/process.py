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

import json
import os
import signal
import socket
import time
from dataclasses import dataclass, field

from minidock import kernel as k
from minidock import paths
from minidock.errors import Conflict, MinidockError, NotFound
from minidock.runtime import hooks, sync
from minidock.runtime import init as child
from minidock.runtime import spec as ocispec
from minidock.util import fsutil
from minidock.util import proc_start_time as _proc_start_time


@dataclass
class _Ctx:
    """What the forked children need (they inherit it through fork)."""

    sock: socket.socket
    spec: dict
    rootfs: str
    namespaces: list[dict]
    stdio: tuple[int, int, int] | None
    exec_fifo_fd: int | None = None  # create/start split: the init writes to it once started
    no_pivot: bool | str = False  # True: move the rootfs over / and chroot; "chroot": a bare chroot
    join_pid: int = 0  # exec: join this process's namespaces instead of making new ones
    state: dict | None = None  # the OCI state, for hooks the init runs
    preserve_fds: int = 0  # --preserve-fds N: fds 3..3+N-1 pass into the process


def state_dir(cid: str, root: str | None = None) -> str:
    return os.path.join(root or str(paths.run_root() / "runtime"), cid)


@dataclass
class Container:
    """A created (maybe running) container, from this runtime's point of view."""

    id: str
    bundle: str
    spec: dict
    root: str  # the runtime state root (paths.run_root()/runtime unless --root)
    pid: int = 0
    sock: socket.socket | None = None
    console_fd: int | None = None
    cgroup_path: str = ""
    created: str = ""
    annotations: dict = field(default_factory=dict)
    init_start: str | None = None
    started: bool = False

    # --- state ----------------------------------------------------------------------------------
    @property
    def dir(self) -> str:
        return state_dir(self.id, self.root)

    def status(self) -> str:
        if self.pid and _proc_start_time(self.pid) == self.init_start and self.init_start:
            try:
                with open(f"/proc/{self.pid}/stat") as f:
                    if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                        return "stopped"
            except OSError:
                return "stopped"
            if self._frozen():
                return "paused"
            return "running" if self.started else "created"
        return "stopped"

    def _frozen(self) -> bool:
        try:
            return bool(getattr(self.cgroup(), "frozen", lambda: False)())
        except Exception:  # noqa: BLE001 - no cgroup, no freezer: not paused
            return False

    # --- the container's cgroup -------------------------------------------------------------------
    def cgroup(self):
        """The container's cgroup (v1 or v2 driver); CgroupError where it has none."""
        from minidock.runtime.cgroups import CgroupError, open_cgroup

        if not self.cgroup_path:
            raise CgroupError(f"container {self.id} has no cgroup")
        return open_cgroup(self.cgroup_path)

    def pause(self) -> None:
        """Freeze every process of the container (the cgroup freezer)."""
        self.cgroup().freeze()

    def resume(self) -> None:
        self.cgroup().thaw()

    def update(self, resources: dict) -> None:
        """New OCI linux.resources limits for the running container."""
        self.cgroup().update(resources)

    def stats(self) -> dict:
        return self.cgroup().stats()

    def oom_killed(self) -> bool:
        return bool(self.cgroup().oom_killed())

    def procs(self) -> list[int]:
        """Every process in the container's cgroup (none once the cgroup is gone)."""
        cg = self.cgroup()
        return cg.procs() if cg.exists() else []

    def state(self) -> dict:
        """The OCI state, exactly the spec's fields (plus nothing else)."""
        st = self.status()
        return {"ociVersion": self.spec.get("ociVersion", ocispec.OCI_VERSION), "id": self.id,
                "status": st, "pid": self.pid if st != "stopped" else 0, "bundle": self.bundle,
                "annotations": self.spec.get("annotations", {})}

    def save(self) -> None:
        data = {"id": self.id, "bundle": self.bundle, "pid": self.pid, "created": self.created,
                "cgroup": self.cgroup_path, "init_start": self.init_start, "started": self.started,
                "rootfs": ocispec.rootfs_path(self.spec, self.bundle),
                "spec": self.spec}  # the config as created: later edits of config.json change nothing (OCI)
        os.makedirs(self.dir, exist_ok=True)
        fsutil.atomic_write_json(os.path.join(self.dir, "state.json"), data)

    # --- lifecycle ------------------------------------------------------------------------------
    def start(self) -> None:
        """Let the init exec the process; raise its error if the exec fails (126/127)."""
        if self.sock is None:
            self._start_fifo()
            return
        sync.send(self.sock, {"type": sync.START})  # sync 4
        self.started = True
        self.save()
        msg, _ = sync.recv(self.sock)
        self.sock.close()
        self.sock = None
        if msg and msg.get("type") == sync.ERROR:
            raise MinidockError(msg["message"], msg.get("hint"), exit_code=msg["exit_code"])
        hooks.run(self.spec, "poststart", self.state(), fatal=False)

    def _start_fifo(self) -> None:
        fifo = os.path.join(self.dir, "exec.fifo")
        if self.status() != "created":
            raise Conflict(f"cannot start a container that is {self.status()}")
        try:
            fd = os.open(fifo, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise Conflict("cannot start an already running container") from None
        try:
            os.read(fd, 1)
        finally:
            os.close(fd)
        os.unlink(fifo)
        self.started = True
        self.save()
        hooks.run(self.spec, "poststart", self.state(), fatal=False)

    def kill(self, sig: int = signal.SIGTERM, all_procs: bool = False) -> None:
        """runc's semantics: with all_procs, every process left in the cgroup (none is fine, even
        once stopped); otherwise the init, and a stopped container is the error "container not
        running" (the exact words containerd's shim takes for "already stopped")."""
        if all_procs and self.cgroup_path:
            for p in self.procs():
                _kill(p, sig)
            return
        if self.status() == "stopped":
            raise Conflict("container not running")
        _kill(self.pid, sig)

    def wait(self) -> int:
        """Reap the init (we are its parent or subreaper) and return Docker's exit code."""
        while True:
            try:
                _, status = os.waitpid(self.pid, 0)
                break
            except ChildProcessError:
                return self._wait_foreign()
            except InterruptedError:
                continue
        return exit_code(status)

    def _wait_foreign(self) -> int:
        while self.status() != "stopped":
            time.sleep(0.05)
        return -1

    def delete(self, force: bool = False) -> None:
        """Remove the cgroup and the state; with force, kill a running container first."""
        st = self.status()
        if st != "stopped":
            if not force:
                raise Conflict(f"cannot delete container {self.id} that is not stopped: {st}",
                               "Stop it first, or use --force.")
            self.kill(signal.SIGKILL, all_procs=True)
            for _ in range(100):
                if self.status() == "stopped":
                    break
                time.sleep(0.02)
        if self.cgroup_path:
            self.cgroup().destroy()
        if not any(ns.get("type") == "mount" for ns in self.spec.get("linux", {}).get("namespaces", [])):
            _umount_rootfs(ocispec.rootfs_path(self.spec, self.bundle))
        state = self.state()
        paths.remove_tree(self.dir)
        hooks.run(self.spec, "poststop", state, fatal=False)


def _umount_rootfs(rootfs: str) -> None:
    """A container without a mount namespace made its mounts in ours (runc's way): take them
    away with it, deepest first."""
    from minidock.util import mountinfo

    real = os.path.realpath(rootfs)
    mps = [m.target for m in mountinfo.read()]
    for mp in sorted({m for m in mps if m == real or m.startswith(real + "/")}, key=len, reverse=True):
        try:
            k.umount(mp, k.MNT_DETACH, why="a container without a mount namespace left this mount in ours")
        except MinidockError:
            pass


def _kill(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def exit_code(status: int) -> int:
    """waitpid status -> Docker's convention: the code, or 128+N for a fatal signal N."""
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


def load(cid: str, root: str | None = None) -> Container:
    d = state_dir(cid, root)
    try:
        with open(os.path.join(d, "state.json")) as f:
            data = json.load(f)
    except FileNotFoundError:
        raise NotFound(f"container {cid} does not exist") from None
    spec = data.get("spec")
    if spec is None:  # a state written before the spec was kept
        with open(os.path.join(data["bundle"], "config.json")) as f:
            spec = json.load(f)
    return Container(id=cid, bundle=data["bundle"], spec=spec, root=root or str(paths.run_root() / "runtime"),
                     pid=data["pid"], cgroup_path=data.get("cgroup", ""), created=data.get("created", ""),
                     init_start=data.get("init_start"), started=data.get("started", False))


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
    parent_sock, child_sock = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
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
        pid1 = k.fork("the intermediate process", why="it joins the cgroup, then unshares the namespaces "
                      "(a process cannot move itself into a new PID namespace: its child will be PID 1)")
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

        c.console_fd = handshake(parent_sock, pid1, cgroup=cg, userns=userns, on_pid=on_pid,
                                 on_hooks=on_hooks)
        c.sock = None if exec_fifo else parent_sock
        c.save()
        if exec_fifo:
            parent_sock.close()
        return c
    except BaseException:
        if pid1:
            _kill(pid1, signal.SIGKILL)
            _reap(pid1)
        if c.pid:
            _kill(c.pid, signal.SIGKILL)
            _reap(c.pid)
        parent_sock.close()
        if cg is not None:
            try:
                cg.destroy()
            except MinidockError:
                pass
        paths.remove_tree(c.dir)
        raise


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


def handshake(sock: socket.socket, intermediate_pid: int, *, cgroup=None, userns=None,
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


@dataclass
class ExecProcess:
    """A process started in a running container's namespaces and cgroup."""

    pid: int
    sock: socket.socket | None
    console_fd: int | None = None

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
    parent_sock, child_sock = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
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
                _kill(pid, signal.SIGKILL)
                _reap(pid)
        parent_sock.close()
        raise
