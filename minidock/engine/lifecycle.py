"""Container lifecycle: create, start (attached or under a monitor), stop, kill, rm, wait.

There is no daemon. Whoever starts a container supervises it until it exits:

* a foreground `run` / `start -a`: the CLI process itself (it holds the terminal);
* a detached one (`run -d`, `start`): a small monitor process forked for it (like podman's
  conmon), which keeps its logs, reaps its PID 1, records the exit code and honours --rm.

The supervisor is a child subreaper, so the container's PID 1 is its child. Its PID is in the
state ("MonitorPid"); a command that finds a container "running" whose supervisor is gone knows
minidock crashed, and cleans up from the journal (see refresh()).

Start, step by step: mount the overlay rootfs -> write /etc/hostname, hosts, resolv.conf ->
resolve volumes -> build config.json -> runtime.create (namespaces, cgroup, pivot_root) ->
network into the new net namespace -> runtime start (exec) -> pump output until exit ->
record exit, OOM flag -> undo the journal (network, cgroup, mount) -> --rm removes the rest.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import time

from minidock import paths
from minidock.engine import attach, bundle
from minidock.errors import Conflict, MinidockError, NotFound
from minidock.state import containers
from minidock.util import now


def _image_layers(rec: dict) -> list[str]:
    from minidock.image.store import ImageStore

    if rec.get("LayerDirs") is not None:  # a build step's container: its layers are no image yet
        return rec["LayerDirs"]
    try:
        img = ImageStore().resolve(rec["Image"])
    except NotFound:
        raise NotFound(f"image {rec['ImageRef']} ({rec['Image'][:19]}) of container "
                       f"{containers.name_of(rec)} is no longer in the store") from None
    return img.layer_dirs()


@contextlib.contextmanager
def rootfs_mounted(ref: str):
    """(record, merged dir): the container's rootfs, mounted for as long as the caller needs it.

    `commit`, `export` and `cp` read a stopped container's files this way; a running container's
    rootfs is already mounted and stays so.
    """
    cid = containers.resolve(ref)
    rec = refresh(cid)
    merged = str(containers.cdir(cid) / "merged")
    mounted_here = False
    if not os.path.ismount(merged):
        bundle.mount_rootfs(rec, _image_layers(rec))
        mounted_here = True
    try:
        yield rec, merged
    finally:
        if mounted_here and not is_running(cid):
            bundle.umount_rootfs(cid)


def _uses_network_package(rec: dict) -> bool:
    mode = rec["HostConfig"].get("NetworkMode") or "none"
    return mode not in ("none", "host")


def _write_etc_files(rec: dict) -> None:
    d = containers.cdir(rec["Id"])
    cfg, hc = rec["Config"], rec["HostConfig"]
    mode = hc.get("NetworkMode") or "none"
    hostname = cfg["Hostname"]
    if mode == "host":
        hostname = os.uname().nodename
        hosts = _read("/etc/hosts")
        resolv = _read("/etc/resolv.conf")
    elif _uses_network_package(rec):
        from minidock import network

        hosts = network.hosts_file(rec)
        resolv = network.resolv_conf(rec, default_resolv_conf(hc.get("Dns"), hc.get("DnsSearch")))
    else:
        hosts = ("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
                 "fe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\n"
                 "ff02::2\tip6-allrouters\n")
        hosts += "".join(f"{ip}\t{name}\n" for name, _, ip in
                         (h.partition(":") for h in hc.get("ExtraHosts") or []))
        resolv = default_resolv_conf(hc.get("Dns"), hc.get("DnsSearch"))
    for name, text in (("hostname", hostname + "\n"), ("hosts", hosts), ("resolv.conf", resolv)):
        tmp = d / (name + ".tmp")
        tmp.write_text(text)
        os.replace(tmp, d / name)


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def default_resolv_conf(dns: list[str] | None, search: list[str] | None) -> str:
    """The host's resolv.conf minus loopback nameservers (unreachable from the container)."""
    lines = []
    if dns:
        lines += [f"nameserver {d}" for d in dns]
    else:
        for line in _read("/etc/resolv.conf").splitlines():
            parts = line.split()
            if parts[:1] == ["nameserver"] and len(parts) > 1 and (
                    parts[1].startswith("127.") or parts[1] == "::1"):
                continue
            if parts and parts[0] in ("nameserver", "search", "options"):
                if search and parts[0] == "search":
                    continue
                lines.append(line)
    if search:
        lines.append("search " + " ".join(search))
    return "\n".join(lines) + "\n"


class Started:
    """A container whose process has been exec'd, with what its supervisor needs."""

    def __init__(self, rec: dict, rt, io: attach.IO, log):
        self.rec, self.rt, self.io, self.log = rec, rt, io, log


def launch(rec: dict, io: attach.IO) -> Started:
    """Everything from a stopped container to a running process (see the module docstring)."""
    from minidock import runtime

    cid = rec["Id"]
    j = containers.journal(cid)
    hc = rec["HostConfig"]
    try:
        if _uses_network_package(rec):
            from minidock import network

            network.check_ports(rec)
        layers = _image_layers(rec)
        rootfs = bundle.mount_rootfs(rec, layers)
        extra_mounts = []
        if hc.get("Binds") or hc.get("Mounts") or hc.get("Tmpfs") or hc.get("VolumesFrom") or \
                rec["Config"].get("Volumes"):
            from minidock import volumes

            extra_mounts = volumes.resolve_mounts(rec, rootfs, j)
        netns = None
        if _uses_network_package(rec):
            from minidock import network

            netns = network.netns_path(rec)
        elif (hc.get("NetworkMode") or "").startswith("container:"):
            netns = _container_netns(hc["NetworkMode"][10:])
        bundle.ensure_workdir(rootfs, rec["Config"].get("WorkingDir") or "/")
        spec = bundle.build_spec(rec, rootfs, extra_mounts, netns)
        rec["Path"], rec["Args"] = spec["process"]["args"][0], spec["process"]["args"][1:]
        rec["GraphDriver"]["Data"]["LowerDir"] = ":".join(reversed(layers))
        _write_etc_files(rec)
        path = bundle.write_bundle(rec, spec)
        from minidock.engine.logs import LogWriter

        log = LogWriter(rec["LogPath"])
        rt = runtime.create(cid, path, stdio=io.stdio, journal=j, spec=spec,
                            no_pivot="chroot" if hc.get("RootfsSwitch") == "chroot" else bool(hc.get("NoPivotRoot")))
        io.console_fd = rt.console_fd
        try:
            if _uses_network_package(rec) and netns is None:
                from minidock import network

                rec["NetworkSettings"] = network.connect(rec, rt.pid, j)
            containers.save(rec)
            containers.update_state(cid, Status="running", Running=True, Paused=False, Pid=rt.pid,
                                    ExitCode=0, Error="", OOMKilled=False, StartedAt=now(),
                                    FinishedAt=containers.ZERO_TIME, MonitorPid=os.getpid(),
                                    MonitorStart=_start_time(os.getpid()))
            rt.start()
        except BaseException:
            rt.kill(signal.SIGKILL) if rt.status() != "stopped" else None
            try:
                rt.wait()
            except Exception:  # noqa: BLE001
                pass
            raise
        io.child_started()
        return Started(rec, rt, io, log)
    except BaseException as e:
        io.child_started()
        _cleanup(cid)
        code = e.exit_code if isinstance(e, MinidockError) else 125
        msg = e.message if isinstance(e, MinidockError) else str(e)
        try:
            # Docker's rule: a container that failed to start stays "created", with the error
            containers.update_state(cid, Status="created", Running=False, Pid=0, ExitCode=code,
                                    Error=msg, MonitorPid=0)
        except (OSError, NotFound):
            pass
        raise


def _container_netns(ref: str) -> str:
    other = containers.full(containers.resolve(ref))
    if not other["State"].get("Running"):
        raise Conflict(f"cannot join network of a non running container: {ref}")
    return f"/proc/{other['State']['Pid']}/ns/net"


def _start_time(pid: int) -> str | None:
    from minidock.runtime.process import _proc_start_time

    return _proc_start_time(pid)


def supervise(st: Started) -> int:
    """Pump output until the container exits; record it; clean up; returns the exit code."""
    from minidock.runtime import exit_code

    oom = {"killed": False}

    def on_exit():
        oom["killed"] = _oom_killed(st.rec)

    status = attach.pump(st.io, st.rt.pid, st.log, on_exit=on_exit)
    code = exit_code(status)
    if st.log:
        st.log.close()
    return finish(st.rec["Id"], code, oom_killed=oom["killed"])


def _oom_killed(rec: dict) -> bool:
    try:
        from minidock.runtime.cgroups import open_cgroup

        return bool(open_cgroup(f"{rec['HostConfig']['CgroupParent']}/{rec['Id']}").oom_killed())
    except Exception:  # noqa: BLE001 - no cgroup support: no OOM information
        return False


def finish(cid: str, code: int, *, oom_killed: bool = False, error: str = "") -> int:
    errors = _cleanup(cid)
    containers.update_state(cid, Status="exited", Running=False, Paused=False, Pid=0, ExitCode=code,
                            OOMKilled=oom_killed, FinishedAt=now(), Error=error or "; ".join(errors),
                            MonitorPid=0)
    rec = containers.load(cid)
    if rec["HostConfig"].get("AutoRemove"):
        remove(cid, force=True, volumes=True)
    return code


def _cleanup(cid: str) -> list[str]:
    """Undo every host resource of this container (network, cgroup, rootfs mount)."""

    from minidock.runtime.process import state_dir

    errors = containers.journal(cid).undo()
    paths.remove_tree(state_dir(cid))
    return errors


# --- starting ------------------------------------------------------------------------------------
def run_attached(rec: dict, *, interactive: bool) -> int:
    io = attach.IO(tty_=bool(rec["Config"].get("Tty")), interactive=interactive, attached=True)
    st = launch(rec, io)
    return supervise(st)


def run_detached(rec: dict, *, interactive: bool = False) -> None:
    """Fork a monitor that starts and supervises the container; return once it has started."""
    r, w = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the monitor
        os.close(r)
        code = 0
        try:
            os.setsid()
            _quiet_stdio(rec["Id"])
            for s in (signal.SIGINT, signal.SIGHUP, signal.SIGTERM, signal.SIGPIPE):
                signal.signal(s, signal.SIG_IGN)
            io = attach.IO(tty_=bool(rec["Config"].get("Tty")), interactive=interactive, attached=False)
            try:
                st = launch(rec, io)
            except Exception as e:  # noqa: BLE001
                if not isinstance(e, MinidockError):
                    e = MinidockError(f"internal error: {type(e).__name__}: {e}")
                os.write(w, json.dumps({"error": e.message, "hint": e.hint, "code": e.exit_code}).encode())
                code = e.exit_code
                if rec["HostConfig"].get("AutoRemove"):
                    remove(rec["Id"], force=True, volumes=True)
                return
            os.write(w, json.dumps({"ok": True}).encode())
            os.close(w)
            supervise(st)
        except BaseException as e:  # noqa: BLE001
            try:
                os.write(w, json.dumps({"error": f"monitor failed: {e}", "code": 125}).encode())
            except OSError:
                pass
            code = 125
        finally:
            os._exit(code)
    os.close(w)
    data = b""
    while True:
        chunk = os.read(r, 65536)
        if not chunk:
            break
        data += chunk
    os.close(r)
    msg = json.loads(data) if data else {"error": "the container's monitor died while starting it", "code": 125}
    if "error" in msg:
        raise MinidockError(msg["error"], msg.get("hint"), exit_code=msg.get("code", 125))


def _quiet_stdio(cid: str) -> None:
    """The monitor's own stdio: /dev/null in, its diagnostics to the container's directory."""
    null = os.open(os.devnull, os.O_RDWR)
    diag = os.open(containers.cdir(cid) / "monitor.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(null, 0)
    os.dup2(diag, 1)
    os.dup2(diag, 2)
    os.close(null)
    os.close(diag)
    sys.stdout = os.fdopen(1, "w", closefd=False)
    sys.stderr = os.fdopen(2, "w", closefd=False)


# --- state checks ----------------------------------------------------------------------------------
def refresh(cid: str) -> dict:
    """The record with State, after making sure a "running" container really still is.

    If its supervisor died (minidock was killed), the container's state is stale: kill what is
    left, undo the journal, and record it as exited (code 137 if we had to kill it).
    """
    rec = containers.full(cid)
    st = rec["State"]
    if not st.get("Running"):
        return rec
    mpid = st.get("MonitorPid")
    if mpid and _start_time(mpid) == st.get("MonitorStart"):
        return rec
    with containers.lock(cid):
        st = containers.load_state(cid)
        if not st.get("Running"):
            return containers.full(cid)
    code = 255
    if st.get("Pid") and _alive(st["Pid"]):
        os.kill(st["Pid"], signal.SIGKILL)
        code = 137
    finish(cid, code, error="the container's supervisor exited unexpectedly")
    return containers.full(cid) if os.path.exists(containers.cdir(cid)) else rec


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


def is_running(cid: str) -> bool:
    try:
        return bool(containers.load_state(cid).get("Running"))
    except (OSError, ValueError):
        return False


# --- stop, kill, wait, rm -------------------------------------------------------------------------
def signal_number(sig: str | int | None, default: int = signal.SIGKILL) -> int:
    if sig is None or sig == "":
        return default
    if isinstance(sig, int) or str(sig).isdigit():
        n = int(sig)
        if not 0 < n < signal.NSIG:
            raise MinidockError(f"Invalid signal: {sig}")
        return n
    name = str(sig).upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    try:
        return int(getattr(signal.Signals, name))
    except AttributeError:
        raise MinidockError(f"Invalid signal: {sig}") from None


def kill(cid: str, sig: int) -> None:
    rec = refresh(cid)
    if not rec["State"].get("Running"):
        raise Conflict(f"Cannot kill container: {containers.name_of(rec)}: "
                       f"container {cid} is not running")
    try:
        os.kill(rec["State"]["Pid"], sig)
    except ProcessLookupError:
        pass


def wait_exit(cid: str, timeout: float | None = None) -> dict | None:
    """Wait until the container is no longer running; its final state, or None on timeout."""
    deadline = None if timeout is None else time.monotonic() + timeout
    delay = 0.01
    while True:
        if not os.path.exists(containers.cdir(cid) / "config.json"):
            return {"ExitCode": -1, "Removed": True}
        rec = refresh(cid)
        if not rec["State"].get("Running"):
            return rec["State"]
        if deadline is not None and time.monotonic() > deadline:
            return None
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


def stop(cid: str, timeout: int | None = None, sig: str | None = None) -> None:
    """Docker's stop: the stop signal, wait up to ``timeout`` s (default 10), then SIGKILL."""
    rec = refresh(cid)
    if not rec["State"].get("Running"):
        return
    signum = signal_number(sig or rec["Config"].get("StopSignal") or "SIGTERM")
    if timeout is None:
        timeout = rec["Config"].get("StopTimeout")
        timeout = 10 if timeout is None else timeout
    pid = rec["State"]["Pid"]
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass
    if timeout < 0:
        wait_exit(cid)
        return
    if wait_exit(cid, timeout) is None:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        wait_exit(cid, 30)


def remove(cid: str, force: bool = False, volumes: bool = False) -> None:
    rec = refresh(cid) if os.path.exists(containers.cdir(cid) / "config.json") else None
    if rec is None:
        raise NotFound(f"No such container: {cid}")
    if rec["State"].get("Running"):
        if not force:
            raise Conflict(f"You cannot remove a running container {cid}. Stop the container "
                           "before attempting removal or force remove")
        try:
            os.kill(rec["State"]["Pid"], signal.SIGKILL)
        except ProcessLookupError:
            pass
        wait_exit(cid, 30)
        if not os.path.exists(containers.cdir(cid)):
            return  # its supervisor removed it (--rm)
    errors = _cleanup(cid)
    if errors:
        raise MinidockError(f"could not remove container {cid}: " + "; ".join(errors))
    if rec.get("Mounts") or rec["HostConfig"].get("Binds"):
        try:
            from minidock import volumes as vol

            vol.release(rec, remove_anonymous=volumes)
        except ImportError:
            pass
    containers.release_name(containers.name_of(rec), cid)
    containers.remove_dir(cid)


def prune() -> list[str]:
    removed = []
    for cid in containers.all_ids():
        try:
            rec = refresh(cid)
        except NotFound:
            continue
        if not rec["State"].get("Running"):
            remove(cid)
            removed.append(cid)
    return removed


def _prune_orphan_cgroups() -> list[str]:
    """Cgroups under our parent whose container record is gone (a crash between create and rm)."""
    from minidock.runtime.cgroups import prune_orphans

    try:
        return prune_orphans(paths.cgroup_parent(), set(containers.all_ids()), str(paths.root()))
    except MinidockError:
        return []


def system_prune(all_: bool = False) -> dict:
    """Stopped containers, leftovers of crashes (mounts, cgroups, links, rules), unused images."""
    out = {"containers": prune(), "images": [], "networks": [], "orphans": []}
    out["orphans"] += _prune_orphan_cgroups()
    try:
        from minidock import network

        if hasattr(network, "prune_orphans"):  # (absent while the package is incomplete)
            out["orphans"] += network.prune_orphans()
        if hasattr(network, "prune"):
            out["networks"] = network.prune()
    except ImportError:
        pass
    if all_:
        try:
            from minidock.image.store import ImageStore

            store = ImageStore()
            if hasattr(store, "prune"):
                out["images"] = store.prune(all_=True)
        except ImportError:
            pass
    return out
