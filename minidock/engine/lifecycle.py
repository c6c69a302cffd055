"""Container lifecycle: create, start (attached or under a monitor), stop, kill, rm, wait.

There is no daemon. Whoever starts a container supervises it until it exits:

* a foreground `run` / `start -a`: the CLI process itself (it holds the terminal);
* a detached one (`run -d`, `start`): a monitor process forked for it, which starts it and then
  becomes the lean monitor (engine/monitor.py, `python3 -I -S`, like podman's conmon): it keeps
  the logs, reaps PID 1, serves `attach`, times the health checks and the restart back-off, and
  runs the full engine's phases (engine/monitor_phases.py: the exit with --rm and the restart
  decision, a restart, one health check) as short-lived children. A pod's containers share one.

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
from minidock.engine import events
from minidock.errors import Conflict, InvalidArgument, MinidockError, NotFound
from minidock.state import containers
from minidock.util import fsutil, now, read_text

TYPE_CHECKING = False  # (attach pulls termios, tty and selectors: imported where a container starts)
if TYPE_CHECKING:
    from minidock.engine import attach


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
    if rec["HostConfig"].get("IDMappings"):
        from minidock.engine import userns

        merged = str(userns.merged_dir(rec))
    mounted_here = False
    from minidock.engine import bundle  # (lazy: the kernel layer, not needed by ps/inspect/logs)

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
        hosts = read_text("/etc/hosts")
        resolv = read_text("/etc/resolv.conf")
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
        fsutil.atomic_write(d / name, text)
    from minidock import kernel

    if kernel.tracing():  # files of our own state dir, not kernel calls: shown for the learner
        for name, text in (("hostname", hostname + "\n"), ("hosts", hosts), ("resolv.conf", resolv)):
            kernel.note(f"wrote {d / name} (bound over the container's /etc/{name} below): "
                        + " | ".join(line for line in text.splitlines() if line.strip())[:160])


def default_resolv_conf(dns: list[str] | None, search: list[str] | None) -> str:
    """The host's resolv.conf minus loopback nameservers (unreachable from the container)."""
    lines = []
    if dns:
        lines += [f"nameserver {d}" for d in dns]
    else:
        for line in read_text("/etc/resolv.conf").splitlines():
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
        self.began = time.monotonic()
        self.backoff: Backoff | None = Backoff()
        self.restart_delay: float | None = None
        self.force_restart = False  # --health-on-failure restart


def launch(rec: dict, io: attach.IO, *, user_start: bool = True, monitor_pid: int = 0) -> Started:
    """Everything from a stopped container to a running process (see the module docstring).

    ``user_start``: started by the user (run, start, restart, system boot), which clears the
    "stopped by the user" mark; False for a start by the restart policy. ``monitor_pid``: the
    process that will supervise it (default: this one; a phase of the lean monitor names its
    parent, the monitor)."""
    from minidock import runtime
    from minidock.engine import bundle

    cid = rec["Id"]
    j = containers.journal(cid)
    hc = rec["HostConfig"]
    for name in (EXIT_FILE, CLAIM_FILE, "exit.handed", "exit.taken"):  # (an exit of an earlier run)
        with contextlib.suppress(OSError):
            os.unlink(containers.record_file(cid, name))
    try:
        if _uses_network_package(rec):
            from minidock import network

            network.check_ports(rec)
        layers = _image_layers(rec)
        rootfs = bundle.mount_rootfs(rec, layers)
        from minidock.engine.hostopts import write_init_files

        write_init_files(rootfs, rec)  # /etc/mtab, /run/.containerenv
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
        remap = None
        if hc.get("IDMappings"):
            from minidock.engine import userns as remap
        bundle.ensure_workdir(rootfs, rec["Config"].get("WorkingDir") or "/", remap and remap.root_ids(rec))
        spec = bundle.build_spec(rec, rootfs, extra_mounts, netns)
        rec["Path"], rec["Args"] = spec["process"]["args"][0], spec["process"]["args"][1:]
        rec["GraphDriver"]["Data"]["LowerDir"] = ":".join(reversed(layers))
        _write_etc_files(rec)
        if remap:  # the runtime binds from inside the user namespace: sources it can reach
            remap.stage_mounts(rec, spec, j)
        path = bundle.write_bundle(rec, spec)
        from minidock.engine.logs import LogWriter

        log = LogWriter(rec["LogPath"], hc.get("LogConfig"))
        rt = runtime.create(cid, path, stdio=io.stdio, journal=j, spec=spec,
                            no_pivot="chroot" if hc.get("RootfsSwitch") == "chroot" else bool(hc.get("NoPivotRoot")))
        io.console_fd = rt.console_fd
        try:
            if _uses_network_package(rec) and netns is None:
                from minidock import network

                rec["NetworkSettings"] = network.connect(rec, rt.pid, j)
            containers.save(rec)
            _attachment_events(rec, "connect")
            extra = {"ManuallyStopped": False, "Retries": 0} if user_start else {}
            mpid = monitor_pid or os.getpid()
            if rec["Config"].get("Healthcheck") and _health_enabled(rec):
                extra["Health"] = _fresh_health(cid)
            containers.update_state(cid, Status="running", Running=True, Paused=False, Pid=rt.pid,
                                    Restarting=False, ExitCode=0, Error="", OOMKilled=False,
                                    StartedAt=now(), FinishedAt=containers.ZERO_TIME,
                                    MonitorPid=mpid, MonitorStart=_start_time(mpid),
                                    PidStart=_start_time(rt.pid), **extra)
            rt.start()
            events.container_event(rec, "start")
        except BaseException:
            with contextlib.suppress(MinidockError):  # it may be gone already: keep the first error
                rt.kill(signal.SIGKILL)
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


def _health_enabled(rec: dict) -> bool:
    from minidock.engine import health

    return health.enabled(rec)


def _fresh_health(cid: str) -> dict:
    """Health at a start: "starting", streak 0, the previous probes' log kept (Docker's)."""
    old = containers.load_state(cid).get("Health") or {}
    return {"Status": "starting", "FailingStreak": 0, "Log": old.get("Log") or []}


def _network_events(rec: dict, action: str) -> None:
    """Docker's network connect/disconnect events of a container's networks."""
    for name, ep in ((rec.get("NetworkSettings") or {}).get("Networks") or {}).items():
        events.emit("network", action, ep.get("NetworkID") or name,
                    {"container": rec["Id"], "name": name, "type": ep.get("Driver") or "bridge"})


# the IDs `network ls` shows for the predefined pseudo networks (network.pseudo: sha256 of
# "minidock-<name>"; tests/unit/engine test that they agree), kept here so that a `run --network
# none` does not import the network package or hashlib to name its network in an event
PSEUDO_NETWORK_IDS = {"none": "c9a99d7a434fa20dfbf714fcb1f89491d39817d27581d3cff419b0719c3085cd",
                      "host": "18c11001edba67acc761689d421b595da9d05f52846b7814b6102a270dd819ba"}


def _attachment_events(rec: dict, action: str) -> None:
    """Docker's network connect/disconnect and volume mount/unmount events of a start or an exit
    (Docker also reports the "none" and "host" networks, types null and host)."""
    if _uses_network_package(rec):
        _network_events(rec, action)
    else:
        mode = rec["HostConfig"].get("NetworkMode") or "none"
        if mode in PSEUDO_NETWORK_IDS:
            events.emit("network", action, PSEUDO_NETWORK_IDS[mode],
                        {"container": rec["Id"], "name": mode, "type": "null" if mode == "none" else "host"})
    for m in rec.get("Mounts") or []:
        if m.get("Type") != "volume":
            continue
        if action == "connect":
            events.emit("volume", "mount", m["Name"], {
                "container": rec["Id"], "destination": m["Destination"], "driver": m.get("Driver") or "local",
                "propagation": m.get("Propagation") or "", "read/write": "true" if m.get("RW", True) else "false"})
        else:
            events.emit("volume", "unmount", m["Name"], {"container": rec["Id"], "driver": m.get("Driver") or "local"})


def _container_netns(ref: str) -> str:
    other = containers.full(containers.resolve(ref))
    if not other["State"].get("Running"):
        raise Conflict(f"cannot join network of a non running container: {ref}")
    return f"/proc/{other['State']['Pid']}/ns/net"


def _start_time(pid: int) -> str | None:
    from minidock.util import proc_start_time  # (not runtime.process: `ps` calls this per container)

    return proc_start_time(pid)


def supervise(st: Started) -> int:
    """Pump output until the container exits; record it; clean up; returns the exit code.

    With a restart policy that says "again", the container is left "restarting" and
    ``st.restart_delay`` says when (the caller hands it to a monitor)."""
    code, oom = _pump(st)
    st.restart_delay = finish(st.rec["Id"], code, oom_killed=oom, ran=time.monotonic() - st.began,
                              backoff=st.backoff, forced=st.force_restart)
    return code


def _pump(st: Started) -> tuple[int, bool]:
    from minidock.runtime import exit_code

    oom = {"killed": False}

    def on_exit():
        with contextlib.suppress(Exception):  # no cgroup support: no OOM information
            oom["killed"] = st.rt.oom_killed()

    checker = _health_checker(st)
    try:
        from minidock.engine import attach

        status = attach.pump(st.io, st.rt.pid, st.log, on_exit=on_exit)
    finally:
        if checker is not None:
            checker.stop()
    if st.log:
        st.log.close()
    if checker is not None:
        checker.join(5)
    return exit_code(status), oom["killed"]


def _health_checker(st: Started):
    """Start the health checker of a container with a HEALTHCHECK (a thread of its supervisor)."""
    if not st.rec["Config"].get("Healthcheck"):
        return None
    from minidock.engine import health

    if not health.enabled(st.rec):
        return None
    action = st.rec["Config"].get("HealthcheckOnFailureAction") or "none"
    pid = st.rt.pid

    def on_unhealthy():  # podman's --health-on-failure
        if action == "kill":
            _signal(pid, signal.SIGKILL)
        elif action == "restart":
            st.force_restart = True
            _signal(pid, signal.SIGKILL)
        elif action == "stop":
            import threading

            threading.Thread(target=stop, args=(st.rec["Id"],), daemon=True).start()

    c = health.Checker(st.rec, st.began, on_unhealthy if action != "none" else None)
    c.start()
    return c


def _signal(pid: int, sig: int) -> None:
    if pid > 0:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


# --- restart policies ------------------------------------------------------------------------------
class Backoff:
    """Docker's restart manager delay: 100 ms, doubling per restart up to 1 min, back to 100 ms
    once the container ran 10 s."""

    def __init__(self) -> None:
        self.timeout = 0.0
        try:  # a lower cap for tests and labs (MINIDOCK_RESTART_MAX_DELAY seconds)
            self.max = min(60.0, float(os.environ.get("MINIDOCK_RESTART_MAX_DELAY", 60)))
        except ValueError:
            self.max = 60.0

    def next(self, ran: float) -> float:
        if ran >= 10:
            self.timeout = 0.0
        if self.timeout == 0:
            self.timeout = 0.1
        elif self.timeout < self.max:
            self.timeout *= 2
        self.timeout = min(self.timeout, self.max)
        return self.timeout


def should_restart(policy: dict | None, code: int, *, manually_stopped: bool, count: int) -> bool:
    """Docker's ShouldRestart: never after a stop/kill by the user; always and unless-stopped
    always; on-failure on a non-zero exit while the count is under MaximumRetryCount (0 = no max)."""
    name = (policy or {}).get("Name") or "no"
    if manually_stopped or name == "no":
        return False
    if name in ("always", "unless-stopped"):
        return True
    if name == "on-failure":
        mx = (policy or {}).get("MaximumRetryCount") or 0
        return code != 0 and (mx == 0 or count < mx)
    return False


def finish(cid: str, code: int, *, oom_killed: bool = False, error: str = "", ran: float = 0.0,
           backoff: Backoff | None = None, forced: bool = False) -> float | None:
    """Record an exit: undo the host resources, State exited (or restarting), the events, --rm.

    Returns the delay before the restart the policy asks for (None: no restart). A restart is
    only decided when ``backoff`` is given (a supervisor that will carry it out)."""
    errors = _cleanup(cid)
    try:
        rec = containers.load(cid)
    except NotFound:
        return None
    # the events before the state: whoever waits for the exit (stop, wait) sees "die" logged first
    if oom_killed:
        events.container_event(rec, "oom")
    events.container_event(rec, "die", exitCode=code)
    _attachment_events(rec, "disconnect")
    delay = None
    with containers.lock(cid):
        st = containers.load_state(cid)
        if backoff is not None:
            pending = backoff.next(ran)
            if forced or should_restart(rec["HostConfig"].get("RestartPolicy"), code,
                                        manually_stopped=bool(st.get("ManuallyStopped")),
                                        count=st.get("Retries", 0)):
                delay = pending
        st.update(Running=delay is not None, Restarting=delay is not None, Paused=False, Pid=0,
                  ExitCode=code, OOMKilled=oom_killed, FinishedAt=now(),
                  Error=error or "; ".join(errors),
                  Status="restarting" if delay is not None else "exited")
        if delay is None:
            st["MonitorPid"] = 0
        containers.save_state(cid, st)
    if delay is None and rec["HostConfig"].get("AutoRemove"):
        remove(cid, force=True, volumes=True)
    return delay


def _cleanup(cid: str) -> list[str]:
    """Undo every host resource of this container (network, cgroup, rootfs mount)."""

    from minidock.runtime.process import state_dir

    errors = containers.journal(cid).undo()
    paths.remove_tree(state_dir(cid))
    return errors


def _wait_restart(cid: str, delay: float) -> bool:
    """Sleep out a restart back-off; False if the user stopped or removed the container meanwhile
    (then it is recorded exited). Reads the small state file a few times a second: no CPU."""
    deadline = time.monotonic() + delay
    while True:
        try:
            st = containers.load_state(cid) if os.path.exists(containers.cdir(cid)) else None
        except (OSError, ValueError):
            st = None
        if st is None:
            return False
        if st.get("ManuallyStopped"):
            with containers.lock(cid):
                st = containers.load_state(cid)
                st.update(Running=False, Restarting=False, Status="exited", MonitorPid=0)
                containers.save_state(cid, st)
            return False
        left = deadline - time.monotonic()
        if left <= 0:
            return True
        time.sleep(min(left, 0.2))


def _count_restart(cid: str) -> None:
    with containers.lock(cid):
        st = containers.load_state(cid)
        st["RestartCount"] = st.get("RestartCount", 0) + 1
        st["Retries"] = st.get("Retries", 0) + 1  # on-failure:N; back to 0 at a start by the user
        containers.save_state(cid, st)


# --- starting ------------------------------------------------------------------------------------
def run_attached(rec: dict, *, interactive: bool, streams=("stdout", "stderr")) -> int:
    """A foreground run/start -a: we supervise; if the restart policy restarts the container, a
    monitor takes over (Docker's client also returns at the first exit)."""
    from minidock.engine import attach

    io = attach.IO(tty_=bool(rec["Config"].get("Tty")), interactive=interactive, attached=True)
    io.streams = tuple(streams)  # `run -a stdout`: only the streams asked for
    events.container_event(rec, "attach")  # (Docker's client attaches before it starts)
    st = launch(rec, io)
    code = supervise(st)
    if st.restart_delay is not None:
        run_detached(rec, interactive=False, after=st.restart_delay, backoff=st.backoff)
    return code


def run_detached(rec: dict, *, interactive: bool = False, after: float | None = None,
                 backoff: Backoff | None = None, group: bool = False, join: str | None = None) -> None:
    """Start the container under a monitor of its own; return once it has started.

    A forked child of ours starts the container, then becomes the lean monitor (engine/monitor.py:
    an exec of `python3 -I -S`, the same PID, still the container's parent). ``after``: the
    container is "restarting"; the monitor starts it after this back-off (and we return at once).
    ``group``: the monitor also serves a pod (it listens on containers/<id>/monitor.sock);
    ``join``: ask the monitor of that container (a pod's first) to start and supervise this one
    too, or fork one of our own if it has none any more."""
    if join is not None and after is None and _join_monitor(join, rec, interactive):
        return
    r, w = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the monitor
        os.close(r)
        code = 0
        try:
            from minidock import kernel

            kernel.actor("monitor", "host")
            # (kept across the exec into the lean monitor: the PID 1 of every container it starts
            # later through a phase, the phase's child, is re-parented to it when the phase exits)
            kernel.set_child_subreaper(why="the containers' init processes are re-parented to the monitor")
            os.setsid()
            _quiet_stdio(rec["Id"])
            for s in (signal.SIGINT, signal.SIGHUP, signal.SIGTERM, signal.SIGPIPE):
                signal.signal(s, signal.SIG_IGN)
            code = _monitor(rec, interactive, w, after, backoff or Backoff(), group)
        except BaseException as e:  # noqa: BLE001
            import traceback

            traceback.print_exc()  # into monitor.log
            sys.stderr.flush()
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


def _monitor(rec: dict, interactive: bool, w: int, after: float | None, backoff: Backoff,
             group: bool) -> int:
    """The forked monitor: start the container, report to the CLI, become the lean monitor."""
    cid = rec["Id"]
    listen = _listen(cid) if group else None
    if after is not None:
        containers.update_state(cid, MonitorPid=os.getpid(), MonitorStart=_start_time(os.getpid()))
        _report(w, {"ok": True})
        _exec_monitor([{"cid": cid, "cdir": str(containers.cdir(cid)), "restart_in": after,
                        "backoff": backoff.timeout, "prefer": json.dumps(_addresses(rec))}], [], listen)
    from minidock.engine import attach

    io = attach.IO(tty_=bool(rec["Config"].get("Tty")), interactive=interactive, attached=False)
    io.stdin_fifo = str(containers.cdir(cid) / "stdin")  # for `attach`
    try:
        st = launch(rec, io)
    except Exception as e:  # noqa: BLE001
        if not isinstance(e, MinidockError):
            e = MinidockError(f"internal error: {type(e).__name__}: {e}")
        _report(w, {"error": e.message, "hint": e.hint, "code": e.exit_code})
        if rec["HostConfig"].get("AutoRemove") and os.path.exists(containers.cdir(cid)):
            remove(cid, force=True, volumes=True)
        return e.exit_code
    desc, fds = handover(st, backoff.timeout)
    from minidock import kernel

    kernel.note("the monitor now becomes the lean monitor: exec python3 -I -S minidock/engine/monitor.py "
                "(the same PID, still the container's parent; it keeps the log and the stdio fds "
                f"{' '.join(map(str, fds))})")
    _report(w, {"ok": True})
    _exec_monitor([desc], fds, listen)
    return 0  # (not reached)


def _listen(cid: str) -> tuple[str, int]:
    """A pod monitor's door, bound before the first container is reported started:
    containers/<id>/monitor.sock (reached through /proc/self/fd: a state root's path can pass
    sun_path's 108 bytes), for the root user only."""
    import socket

    d = os.open(containers.cdir(cid), os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        path = f"/proc/self/fd/{d}/monitor.sock"
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o077)
        try:
            s.bind(path)
        finally:
            os.umask(old)
        s.listen(16)
    finally:
        os.close(d)
    return str(containers.cdir(cid)), s.detach()


def _report(w: int, msg: dict) -> None:
    """Tell the CLI waiting in run_detached; a CLI killed meanwhile (EPIPE) changes nothing:
    the monitor carries on with the container."""
    with contextlib.suppress(OSError):
        os.write(w, json.dumps(msg).encode())
    os.close(w)


def handover(st: Started, backoff: float) -> tuple[dict, list[int]]:
    """What the lean monitor needs to supervise a started container, and its fds in this order:
    the pty master or the stdout and stderr pipes, then the write end of a detached -i
    container's stdin pipe."""
    io, rec = st.io, st.rec
    from minidock.engine import attach, health, logs

    if st.log is not None:
        st.log.close()  # (the monitor opens the log itself)
    fds = [io.console_fd] if io.tty else [io.out_r, io.err_r]
    keep = getattr(io, "_keep_open", None)
    if keep is not None:
        fds.append(keep)
    desc = {"cid": rec["Id"], "cdir": str(containers.cdir(rec["Id"])), "pid": st.rt.pid,
            "tty": bool(io.tty), "keep": keep is not None, "fifo": attach.stdin_fifo(io),
            "log": logs.writer_options(rec["LogPath"], rec["HostConfig"].get("LogConfig")),
            "health": health.schedule(rec), "began": st.began, "backoff": backoff}
    return desc, fds


def _exec_monitor(descs: list[dict], fds: list[int], listen: tuple[str, int] | None) -> None:
    """Become the lean monitor (engine/monitor.py), keeping the PID, the children and ``fds``."""
    from minidock.engine import monitor

    for fd in fds + ([listen[1]] if listen else []):
        os.set_inheritable(fd, True)
    for d in descs:
        if "pid" in d:
            d["fds"] = fds
    python = sys.executable or "/usr/bin/python3"
    parent = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # minidock/..
    config = {"engine": python, "path": parent, "containers": descs,
              "listen": listen and listen[0], "listen_fd": listen and listen[1]}
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(python, monitor.boot_command(python, parent) + [json.dumps(config)])


def _join_monitor(first: str, rec: dict, interactive: bool) -> bool:
    """Ask the monitor of container ``first`` (a pod's) to start and supervise ``rec`` too.
    False when it has no monitor listening any more (the caller forks one)."""
    import socket

    try:
        d = os.open(containers.cdir(first), os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except (OSError, NotFound):
        return False
    data = b""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC) as s:
            try:
                s.connect(f"/proc/self/fd/{d}/monitor.sock")
                s.sendall(json.dumps({"launch": rec["Id"], "interactive": interactive}).encode() + b"\n")
                while chunk := s.recv(65536):
                    data += chunk
            except OSError:
                if not data:
                    return False
    finally:
        os.close(d)
    if not data:  # the monitor ended while we asked: did it start the container first?
        return is_running(rec["Id"])
    msg = json.loads(data)
    if "error" in msg:
        raise MinidockError(msg["error"], msg.get("hint"), exit_code=msg.get("code", 125))
    return True


def _addresses(rec: dict) -> dict[str, str]:
    """The container's address on each network (asked for again at a restart)."""
    nets = (rec.get("NetworkSettings") or {}).get("Networks") or {}
    return {name: ep["IPAddress"] for name, ep in nets.items() if ep.get("IPAddress")}


def prefer(rec: dict, addresses: dict[str, str]) -> None:
    """A restart asks for the addresses of the last run (cleared from the record at its exit,
    as Docker shows a stopped container): the network package prefers them when still free."""
    nets = (rec.setdefault("NetworkSettings", {})).setdefault("Networks", {})
    for name, ip in addresses.items():
        if name in nets and not nets[name].get("IPAddress"):
            nets[name] = dict(nets[name], IPAddress=ip)


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
def _monitor_alive(st: dict) -> bool:
    mpid = st.get("MonitorPid")
    return bool(mpid) and _start_time(mpid) == st.get("MonitorStart")


def refresh(cid: str, *, restart: bool = True) -> dict:
    """The record with State, after making sure a "running" container really still is.

    If its supervisor died (minidock was killed, the host rebooted), the container's state is
    stale: kill what is left, undo the journal, and record it as exited (code 137 if we had to
    kill it, 255 if it was already gone) -- or, when its restart policy says so (and ``restart``),
    start it again under a new monitor.
    """
    rec = containers.full(cid)
    st = rec["State"]
    if not st.get("Running") or _monitor_alive(st):
        return rec
    with containers.lock(cid):
        st = containers.load_state(cid)
        if not st.get("Running") or _monitor_alive(st):
            return containers.full(cid)
        # claim the clean-up: concurrent commands now see a live "monitor" (us) and wait
        st.update(MonitorPid=os.getpid(), MonitorStart=_start_time(os.getpid()))
        containers.save_state(cid, st)
    code, error = 255, "the container's supervisor exited unexpectedly"
    pid = st.get("Pid") or 0
    # the PID and its start time: after a reboot the PID may be an unrelated process
    if pid and _alive(pid) and st.get("PidStart") and _start_time(pid) == st.get("PidStart"):
        os.kill(pid, signal.SIGKILL)
        code = 137
    else:
        saved = saved_exit(cid)
        if saved is not None:  # the monitor saw the exit, then died before it was recorded
            code, error = saved, ""
    delay = finish(cid, code, error=error, backoff=Backoff() if restart else None)
    if delay is not None:
        try:
            run_detached(rec, after=delay)  # (rec: as it ran, with its addresses to ask for again)
        except MinidockError:
            pass
    return containers.full(cid) if os.path.exists(containers.cdir(cid) / "config.json") else rec


EXIT_FILE = "monitor.exit"  # the exit code, written by the monitor before its exit phase runs
CLAIM_FILE = "exit.claim"   # `stop` records the exit it waits for (the lean monitor hands it over):
# stop makes exit.claim; the monitor, at PID 1's exit, renames it exit.handed (else runs its exit
# phase); whoever renames exit.handed to exit.taken first records the exit (rename is atomic)


def _claim_exit(cid: str) -> bool:
    """Made by `stop` before its signal: the lean monitor, seeing it when PID 1 exits, saves the
    code and leaves the recording to us instead of starting its exit phase (a new interpreter,
    ~40 ms); it takes it back if we have not recorded it in 30 s."""
    try:
        os.close(os.open(containers.record_file(cid, CLAIM_FILE), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))
        return True
    except OSError:
        return False


def _record_handed_exit(cid: str, code: int) -> None:
    """Record the exit the monitor handed over: the OOM flag, then finish (no restart: stopped)."""
    oom = False
    try:
        from minidock.runtime import load

        oom = load(cid).oom_killed()
    except Exception:  # noqa: BLE001 - no cgroup support, or gone: no OOM information
        pass
    finish(cid, code, oom_killed=oom)
    if os.path.exists(containers.cdir(cid)):
        saved_exit(cid, clear=True)


def saved_exit(cid: str, *, clear: bool = False) -> int | None:
    """The exit code the monitor saw and saved (None: none saved); ``clear`` removes it."""
    path = containers.record_file(cid, EXIT_FILE)
    try:
        with open(path) as f:
            code = int(f.read().strip() or "x")
    except (OSError, ValueError):
        return None
    if clear:
        with contextlib.suppress(OSError):
            os.unlink(path)
    return code


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


def _by_user(cid: str, sig: int | None) -> int:
    """Mark the container stopped by the user (no restart) and send ``sig`` to its process, in
    one step under its lock (a monitor restarting it sees the mark, or we see its new PID)."""
    with containers.lock(cid):
        st = containers.load_state(cid)
        st["ManuallyStopped"] = True
        containers.save_state(cid, st)
        pid = st.get("Pid") or 0
        if sig is not None:
            _signal(pid, sig)
    return pid


def kill(cid: str, sig: int) -> None:
    rec = refresh(cid)
    if not rec["State"].get("Running"):
        raise Conflict(f"Cannot kill container: {containers.name_of(rec)}: "
                       f"container {cid} is not running")
    events.container_event(rec, "kill", signal=sig)
    stop_sig = signal_number(rec["Config"].get("StopSignal") or "SIGTERM")
    if sig in (signal.SIGKILL, stop_sig):  # Docker: these end the restart loop too
        _by_user(cid, sig)
    else:
        _signal(rec["State"].get("Pid") or 0, sig)
    _thaw(rec)


def _thaw(rec: dict) -> None:
    """A paused (frozen) container only receives the signal once thawed, as Docker does."""
    if rec["State"].get("Paused"):
        try:
            from minidock.runtime import load

            load(rec["Id"]).resume()
        except Exception:  # noqa: BLE001 - the cgroup may already be gone with the container
            pass


def wait_exit(cid: str, timeout: float | None = None, *, handed: bool = False) -> dict | None:
    """Wait until the container is no longer running; its final state, or None on timeout.

    ``handed`` (stop, which made the exit claim): record the exit once the monitor has saved it."""
    deadline = None if timeout is None else time.monotonic() + timeout
    delay, polls = 0.002, 0  # every 2 ms for ~0.1 s (`stop` returns as the monitor records the exit), then less often
    while True:
        if not os.path.exists(containers.record_file(cid, "config.json")):
            return {"ExitCode": -1, "Removed": True}
        st = containers.load_state(cid)  # (a poll reads the small state file; the record once at the end)
        if handed and st.get("Running") and not st.get("Restarting"):
            code = saved_exit(cid)
            if code is not None:
                try:  # (the monitor takes it back after 30 s: the rename decides who records)
                    os.rename(containers.record_file(cid, "exit.handed"), containers.record_file(cid, "exit.taken"))
                    mine = True
                except OSError:
                    mine = False
                if mine:
                    _record_handed_exit(cid, code)
                    continue
        if not st.get("Running") or not _monitor_alive(st):
            rec = refresh(cid)
            if not rec["State"].get("Running"):
                return rec["State"]
        if deadline is not None and time.monotonic() > deadline:
            return None
        time.sleep(delay)
        polls += 1
        if polls >= 50:
            delay = min(delay * 1.5, 0.1)


def wait_condition(cid: str, condition: str = "not-running") -> int:
    """Docker's `wait --condition`, returning the exit code:

    * not-running: at once if the container is not running, else at its next exit -- also an
      exit the restart policy follows with a restart (Docker wakes waiters on "restarting" too);
    * next-exit: the next exit from now, even of a stopped container started later;
    * removed: when the container is removed (its last exit code)."""
    if condition not in ("not-running", "next-exit", "removed"):
        raise MinidockError(f"invalid condition: {condition!r}",
                            "Use not-running, next-exit or removed.", exit_code=125)
    first = containers.full(cid)
    last = first["State"]
    mark = (last.get("FinishedAt"), first["RestartCount"])
    delay = 0.01
    while True:
        if not os.path.exists(containers.cdir(cid) / "config.json"):
            return last.get("ExitCode", 0)
        try:
            rec = refresh(cid)
        except NotFound:
            return last.get("ExitCode", 0)
        st = rec["State"]
        if st.get("Running") or st.get("FinishedAt") != containers.ZERO_TIME:
            last = st  # (not the blank state of a container being removed under us)
        # an exit since we started waiting: a new FinishedAt while stopped or restarting, or a
        # restart already done (a poll that came late: the code is then the last one seen)
        exited = rec["RestartCount"] != mark[1] or (
            st.get("FinishedAt") not in (mark[0], containers.ZERO_TIME)
            and (not st.get("Running") or st.get("Restarting")))
        if condition == "not-running" and (not st.get("Running") or exited):
            return st.get("ExitCode", 0)
        if condition == "next-exit" and exited:
            return st.get("ExitCode", 0)
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


def stop(cid: str, timeout: int | None = None, sig: str | None = None) -> None:
    """Docker's stop: the stop signal, wait up to ``timeout`` s (default 10), then SIGKILL.

    A container waiting for a restart just stops restarting (recorded by its monitor)."""
    rec = refresh(cid)
    if not rec["State"].get("Running"):
        return
    signum = signal_number(sig or rec["Config"].get("StopSignal") or "SIGTERM")
    if timeout is None:
        timeout = rec["Config"].get("StopTimeout")
        timeout = 10 if timeout is None else timeout
    if rec["State"].get("Pid"):
        events.container_event(rec, "kill", signal=signum)
    handed = _claim_exit(cid)
    pid = _by_user(cid, signum)
    _thaw(rec)
    if timeout < 0:
        wait_exit(cid, handed=handed)
    elif wait_exit(cid, timeout, handed=handed) is None:
        if pid:
            events.container_event(rec, "kill", signal=int(signal.SIGKILL))
        _signal(containers.load_state(cid).get("Pid") or 0, signal.SIGKILL)
        wait_exit(cid, 30, handed=handed)
    events.container_event(rec, "stop")


def remove(cid: str, force: bool = False, volumes: bool = False) -> None:
    rec = refresh(cid, restart=False) if os.path.exists(containers.cdir(cid) / "config.json") else None
    if rec is None:
        raise NotFound(f"No such container: {cid}")
    if rec["State"].get("Running"):
        if not force:
            if rec["State"].get("Restarting"):
                raise Conflict(f"You cannot remove a restarting container {cid}. Stop the container "
                               "before attempting removal or force remove")
            raise Conflict(f"You cannot remove a running container {cid}. Stop the container "
                           "before attempting removal or force remove")
        if rec["State"].get("Pid"):
            events.container_event(rec, "kill", signal=int(signal.SIGKILL))
        _by_user(cid, signal.SIGKILL)
        _thaw(rec)
        wait_exit(cid, 30)
        if not os.path.exists(containers.cdir(cid)):
            return  # its supervisor removed it (--rm)
    errors = _cleanup(cid)
    if errors:
        raise MinidockError(f"could not remove container {cid}: " + "; ".join(errors))
    gone = []
    if rec.get("Mounts") or rec["HostConfig"].get("Binds"):
        from minidock import volumes as vol

        gone = vol.release(rec, remove_anonymous=volumes)
    containers.release_name(containers.name_of(rec), cid)
    containers.remove_dir(cid)
    events.container_event(rec, "destroy")
    for name in gone:  # after the container's, as Docker's removeMountPoints
        events.emit("volume", "destroy", name, {"driver": "local"})


def boot() -> list[tuple[str, str]]:
    """`system boot`, what an init system runs at boot (dockerd's restore): bring back the
    containers whose policy says so. Those that were running when the host (or their monitor)
    went down are recorded exited and restarted by refresh() as their policy says (always,
    unless-stopped, on-failure); stopped ones come back if `always` (even after a user stop:
    Docker's rule), or `unless-stopped` when the user did not stop them. -> [(name, policy)]."""
    out = []
    for cid in containers.all_ids():
        try:
            before = containers.full(cid)
            rec = refresh(cid)
        except (NotFound, OSError, ValueError):
            continue
        policy = (rec["HostConfig"].get("RestartPolicy") or {}).get("Name") or "no"
        st = rec["State"]
        if st.get("Running"):
            if before["State"].get("Running") and not _monitor_alive(before["State"]):
                out.append((containers.name_of(rec), policy))
            continue
        manual = containers.load_state(cid).get("ManuallyStopped")
        if policy == "always" or (policy == "unless-stopped" and not manual):
            try:
                run_detached(rec, interactive=bool(rec["Config"].get("OpenStdin")))
                out.append((containers.name_of(rec), policy))
            except MinidockError as e:
                out.append((containers.name_of(rec), f"error: {e.message}"))
    return out


def update_restart_policy(cid: str, text: str) -> None:
    """`update --restart`: a new policy, used from the container's next exit on."""
    from minidock.engine.create import parse_restart_policy

    policy = parse_restart_policy(text)
    with containers.lock(cid):
        rec = containers.load(cid)
        if rec["HostConfig"].get("AutoRemove") and policy["Name"] != "no":
            raise InvalidArgument("Restart policy cannot be updated because AutoRemove is enabled "
                                  "for the container")
        rec["HostConfig"]["RestartPolicy"] = policy
        containers.save(rec)
    events.container_event(rec, "update")


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
    from minidock import network

    out["orphans"] += network.prune_orphans()
    out["networks"] = network.prune()
    if all_:
        from minidock.image.store import ImageStore

        out["images"] = ImageStore().prune(all_=True)
    return out
