"""A container from the runtime's point of view: its state (run/runtime/<id>/state.json), the OCI
state and status, and what can be done to it once created: start, kill, wait, delete, and its
cgroup's verbs (pause, resume, update, stats, oom_killed, procs). `load` reads one back.

The parent side of creating one (and of exec) is process.py.
"""

from __future__ import annotations

import os
import time

from minidock import kernel as k
from minidock import paths
from minidock.errors import Conflict, MinidockError, NotFound
from minidock.runtime import spec as ocispec
from minidock.util import fsutil, jsonfast
from minidock.util import proc_start_time as _proc_start_time

# What `minidock-runtime start`/`kill`/`delete` import, each in its own short process (an engine
# runs three per container): no dataclasses, json, signal, socket or pathlib here (~10 ms of
# imports together, against ~6 ms of interpreter); hooks, sync and the cgroup drivers come
# where used.
SIGKILL, SIGTERM = 9, 15


def state_dir(cid: str, root: str | None = None) -> str:
    return os.path.join(root or _default_root(), cid)


def _default_root() -> str:
    return str(paths.run_root() / "runtime")


class Container:
    """A created (maybe running) container, from this runtime's point of view."""

    def __init__(self, id: str, bundle: str, spec: dict, root: str, pid: int = 0, sock=None,
                 console_fd: int | None = None, cgroup_path: str = "", created: str = "",
                 annotations: dict | None = None, init_start: str | None = None, started: bool = False,
                 cgroup_layout: dict | None = None):
        self.id = id
        self.bundle = bundle
        self.spec = spec
        self.root = root  # the runtime state root (paths.run_root()/runtime unless --root)
        self.pid = pid
        self.sock = sock  # the parent's end of the protocol socket (create without the exec fifo)
        self.console_fd = console_fd
        self.cgroup_path = cgroup_path
        self.created = created
        self.annotations = {} if annotations is None else annotations
        self.init_start = init_start
        self.started = started
        self.cgroup_layout = cgroup_layout  # the host's cgroup hierarchies as probed at create

    def __repr__(self) -> str:
        return f"Container(id={self.id!r}, bundle={self.bundle!r}, pid={self.pid}, cgroup_path={self.cgroup_path!r})"

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
        if self.cgroup_path:
            if self.cgroup_layout is None:
                from minidock.runtime.cgroups import hierarchy

                self.cgroup_layout = hierarchy.layout()
            data["cgroup_layout"] = self.cgroup_layout
        os.makedirs(self.dir, exist_ok=True)
        fsutil.atomic_write_json(os.path.join(self.dir, "state.json"), data)

    # --- lifecycle ------------------------------------------------------------------------------
    def start(self) -> None:
        """Let the init exec the process; raise its error if the exec fails (126/127)."""
        if self.sock is None:
            self._start_fifo()
            return
        from minidock.runtime import sync

        sync.send(self.sock, {"type": sync.START})  # sync 4
        self.started = True
        self.save()
        msg, _ = sync.recv(self.sock)
        self.sock.close()
        self.sock = None
        if msg and msg.get("type") == sync.ERROR:
            raise MinidockError(msg["message"], msg.get("hint"), exit_code=msg["exit_code"])
        self._hooks("poststart")

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
        self._hooks("poststart")

    def _hooks(self, name: str, state: dict | None = None) -> None:
        """Run the spec's hooks of one kind (non-fatal: poststart, poststop), if it has any."""
        if (self.spec.get("hooks") or {}).get(name):
            from minidock.runtime import hooks

            hooks.run(self.spec, name, state or self.state(), fatal=False)

    def kill(self, sig: int = SIGTERM, all_procs: bool = False) -> None:
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
            self.kill(SIGKILL, all_procs=True)
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
        self._hooks("poststop", state)


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
            data = jsonfast.loads(f.read())
    except FileNotFoundError:
        raise NotFound(f"container {cid} does not exist") from None
    spec = data.get("spec")
    if spec is None:  # a state written before the spec was kept
        with open(os.path.join(data["bundle"], "config.json")) as f:
            spec = jsonfast.loads(f.read())
    layout = data.get("cgroup_layout")
    if layout:
        from minidock.runtime.cgroups import hierarchy

        hierarchy.seed(layout)  # (no mountinfo read to open the cgroup)
    return Container(id=cid, bundle=data["bundle"], spec=spec, root=root or _default_root(),
                     pid=data["pid"], cgroup_path=data.get("cgroup", ""), created=data.get("created", ""),
                     init_start=data.get("init_start"), started=data.get("started", False), cgroup_layout=layout)
