"""The monitor: the long-lived process that supervises detached containers (podman's conmon).

It runs as `python3 -I -S` (no site-packages, no user environment) and imports builtin modules
only (os, sys, time, select, errno, _json, _signal, _socket; zlib at a compressed rotation):
~3 MiB PSS per container instead of the ~12 MiB of the forked `minidock run` process it
replaces (issue 13, docs/BENCHMARKS.md). It does what must be done while a container runs:

* it is the parent (a child subreaper) of each container's PID 1 and reaps it: the exit status;
* it copies the container's output into its log (json-file, local, none: Docker's format and
  rotation, one write per line, nothing dropped), and `attach`'s input from the stdin FIFO;
* it schedules the health checks and carries out --health-on-failure;
* it sleeps out the restart back-off, watching for a `stop` or `rm` meanwhile.

The rest is the full engine's, run as short-lived children with the engine's interpreter
(minidock/engine/monitor_phases.py), as conmon runs podman's "exit command":

* ``exit``: the OOM flag, then lifecycle.finish (the journal undo, State, the events, --rm and
  the restart decision with Docker's back-off);
* ``restart`` and ``launch``: the container created and started again through the runtime; its
  stdio come back over a socket (SCM_RIGHTS) and its PID 1, the child's child, is re-parented to
  this process when the child exits;
* ``health``: one probe, State.Health and its event; ``stop``: --health-on-failure=stop.

The monitor of a container is the forked CLI process itself, exec'd into this program once the
container runs (the same PID: it stays its PID 1's parent, and MonitorPid stays valid). One
monitor serves a whole pod (as containerd's shim v2 serves a sandbox): the first container's
listens on ``containers/<first>/monitor.sock``, where lifecycle.run_detached(join=...) asks it to
launch the pod's other containers. It exits when it has nothing left to supervise.

Nothing here may import more than the builtins above: tests/unit/engine/test_monitor_lean.py
reads the imports, and an integration test reads the running monitor's own module list.
"""

import _json
import _signal
import _socket
import errno
import os
import select
import sys
import time

ALLOWED_IMPORTS = ("_json", "_signal", "_socket", "errno", "os", "select", "sys", "time", "zlib")
HELPER_SOCKET_FD = 3  # where a phase finds the socket it reports on
_IN = select.POLLIN | select.POLLHUP | select.POLLERR
_DRAIN = 0.2  # after PID 1's exit: the output is complete when no byte came for this long
_HANDED = 30.0  # an exit handed to a waiting `stop` (exit.claim): recorded by it within this, else by us


# --- JSON without the json package (its import pulls re and friends: ~1.5 MiB) -------------------
class _Decoder:
    """What _json's C scanner reads from a json.JSONDecoder."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}.__getitem__


_scanner = []


def loads(text):
    if not _scanner:
        _scanner.append(_json.make_scanner(_Decoder()))
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    text = text.strip()
    try:
        obj, end = _scanner[0](text, 0)
    except StopIteration:
        raise ValueError("not JSON") from None
    if end != len(text):
        raise ValueError("extra data after JSON")
    return obj


def now():
    """The time as Docker writes it (as util.now, which this process does not import)."""
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e9):09d}Z"


# --- the log ---------------------------------------------------------------------------------------
class LogFile:
    """Docker's json-file lines, rotated at ``max_size`` into ``max_file`` files (gzip'ed with
    ``compress``); driver "none" keeps nothing. Lines are written whole, one write(2) each, so a
    reader never sees half a line and a rotation never splits or drops one. The options come
    parsed from logs.writer_options (the engine side, which validates them as Docker does)."""

    def __init__(self, path, driver="json-file", max_size=0, max_file=1, compress=False):
        self.path = path
        self.driver = driver
        self.max_size = max_size
        self.max_file = max_file
        self.compress = compress
        self.fd = None
        self.size = 0
        if driver != "none":
            self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
            self.size = os.fstat(self.fd).st_size
        self.partial = {"stdout": b"", "stderr": b""}

    def write(self, stream, data):
        buf = self.partial[stream] + data
        *lines, rest = buf.split(b"\n")
        for line in lines:
            self._append(self._entry(stream, line + b"\n"))
        if len(rest) > 16384:  # a very long line without newline: flush it anyway, like Docker
            self._append(self._entry(stream, rest))
            rest = b""
        self.partial[stream] = rest

    @staticmethod
    def _entry(stream, data):
        # json.dumps({"log", "stream", "time"}, separators=(",", ":")): Docker's bytes on disk
        return ('{"log":' + _json.encode_basestring_ascii(data.decode("utf-8", "replace"))
                + ',"stream":"' + stream + '","time":"' + now() + '"}\n').encode()

    def _append(self, data):
        if self.fd is None:
            return
        os.write(self.fd, data)
        self.size += len(data)
        if self.max_size and self.size >= self.max_size:  # Docker's rule: rotate once the file is full
            self._rotate()

    def _rotate(self):
        """ctr.log -> ctr.log.1[.gz] -> ... (max_file files in all; the oldest dropped)."""
        os.close(self.fd)
        keep = self.max_file - 1
        if keep <= 0:
            os.unlink(self.path)
        else:
            for i in range(keep, 0, -1):
                for sfx in (".gz", ""):
                    src = f"{self.path}.{i}{sfx}"
                    if os.path.exists(src):
                        if i == keep:
                            os.unlink(src)
                        else:
                            os.replace(src, f"{self.path}.{i + 1}{sfx}")
            if self.compress:
                self._gzip(self.path, self.path + ".1.gz")
                os.unlink(self.path)
            else:
                os.replace(self.path, self.path + ".1")
        self.fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        self.size = 0

    @staticmethod
    def _gzip(src, dst):
        import zlib  # (only at a compressed rotation)

        z = zlib.compressobj(9, zlib.DEFLATED, 31)  # wbits 31: a gzip stream, as gzip.open reads
        tmp = dst + ".tmp"
        fin = os.open(src, os.O_RDONLY | os.O_CLOEXEC)
        fout = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            while chunk := os.read(fin, 1 << 20):
                _write_all(fout, z.compress(chunk))
            _write_all(fout, z.flush())
        finally:
            os.close(fin)
            os.close(fout)
        os.replace(tmp, dst)

    def close(self):
        for stream, rest in self.partial.items():
            if rest:
                self._append(self._entry(stream, rest))
        self.partial = {"stdout": b"", "stderr": b""}
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def _write_all(fd, data):
    while data:
        try:
            data = data[os.write(fd, data):]
        except BlockingIOError:
            select.select([], [fd], [], 0.05)


def exit_code(status):
    """waitpid status -> Docker's exit code (as runtime.exit_code)."""
    return 128 + os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)


# --- one supervised container ----------------------------------------------------------------------
class Ctr:
    """A container this monitor supervises: running, exiting (its exit phase runs) or waiting
    for a restart."""

    def __init__(self, desc):
        self.cid = desc["cid"]
        self.cdir = desc["cdir"]
        self.backoff = desc.get("backoff") or 0.0
        self.gen = 0
        self.pid = 0
        self.sources = {}
        self.fifo = []
        self.keep = None
        self.console = None
        self.log = None
        self.status = None
        self.phase = "waiting"
        self.restart_at = 0.0
        self.prefer = desc.get("prefer") or "{}"
        self.forced = False
        self.health = None
        self.health_status = "starting"
        self.next_probe = None
        self.probe_pid = 0
        self.exit_tries = 0
        if "pid" in desc:
            self.adopt(desc)
        else:
            self.restart_at = time.monotonic() + (desc.get("restart_in") or 0.0)

    def adopt(self, desc):
        """A started container: its PID 1, its stdio (fds in the order of handover()), its log."""
        self.gen += 1
        self.pid = desc["pid"]
        self.began = desc["began"]
        self.backoff = desc.get("backoff", self.backoff)
        self.phase = "running"
        self.status = None
        self.forced = False
        self.exit_tries = 0
        fds = list(desc["fds"])
        for fd in fds:
            os.set_inheritable(fd, False)  # (inherited across our exec: the phases must not hold them)
            os.set_blocking(fd, False)
        if desc["tty"]:
            self.console = fds.pop(0)
            self.sources = {self.console: "stdout"}
        else:
            self.sources = {fds.pop(0): "stdout", fds.pop(0): "stderr"}
        if desc.get("keep"):
            self.keep = fds.pop(0)
            os.set_blocking(self.keep, True)
        self.fifo = _open_fifo(desc.get("fifo"))
        self.log = LogFile(**desc["log"])
        self.health = desc.get("health")
        self.health_status = "starting"
        self.next_probe = None
        if self.health:
            self.next_probe = self.began + self._probe_wait(self.began) / 1e9
        self.last_output = time.monotonic()

    def _probe_wait(self, at):
        """Docker's: StartInterval while starting inside the start period, else Interval (ns)."""
        h = self.health
        in_start = (at - self.began) * 1e9 < h["start_period"]
        return h["start_interval"] if self.health_status == "starting" and in_start else h["interval"]

    def in_start_period(self, at):
        return (at - self.began) * 1e9 < self.health["start_period"]

    def close_io(self):
        for fd in list(self.sources) + self.fifo + ([self.keep] if self.keep is not None else []):
            try:
                os.close(fd)
            except OSError:
                pass
        self.sources, self.fifo, self.keep, self.console = {}, [], None, None
        if self.log is not None:
            self.log.close()
            self.log = None


def _open_fifo(path):
    """`attach` writes a detached -i container's input into this FIFO (made by the engine): its
    read end, and a writer of our own so that a client going away is no EOF."""
    if not path:
        return []
    try:
        r = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        w = os.open(path, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return []
    return [r, w]


# --- the monitor ----------------------------------------------------------------------------------
class Monitor:
    def __init__(self, config):
        self.engine = config["engine"]  # the full engine's interpreter, for the phases
        self.path = config["path"]  # the directory holding the minidock package
        self.ctrs = {}
        self.helpers = {}  # pid -> [kind, cid, socket, gen, client]
        self.clients = {}  # fd -> [socket, bytes read]
        self.listener = None
        self.listen_path = None
        self.poll = select.poll()
        self.fds = {}  # fd -> (kind, object)
        self.wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        _signal.signal(_signal.SIGCHLD, _noop)
        _signal.set_wakeup_fd(wake_w)
        self._watch(self.wake_r, "wake", None)
        for desc in config["containers"]:
            self._add(Ctr(desc))
        if config.get("listen"):
            self._listen(config["listen"], config["listen_fd"])

    # fds
    def _watch(self, fd, kind, obj):
        self.fds[fd] = (kind, obj)
        self.poll.register(fd, _IN)

    def _unwatch(self, fd):
        if self.fds.pop(fd, None) is not None:
            self.poll.unregister(fd)

    def _add(self, c):
        old = self.ctrs.get(c.cid)
        if old is not None:
            self._drop(old)
        self.ctrs[c.cid] = c
        self._watch_ctr(c)

    def _watch_ctr(self, c):
        for fd in c.sources:
            self._watch(fd, "out", c)
        if c.fifo:
            self._watch(c.fifo[0], "fifo", c)

    def _drop(self, c):
        for fd in list(c.sources) + c.fifo:
            self._unwatch(fd)
        c.close_io()
        if self.ctrs.get(c.cid) is c:
            del self.ctrs[c.cid]

    # the pod's door
    def _listen(self, cdir, fd):
        """The pod's door: a listening socket the engine bound at cdir/monitor.sock before it
        reported the first container started (so the next `run_detached(join=)` finds it)."""
        s = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM, 0, fd)
        os.set_inheritable(fd, False)
        s.setblocking(False)
        self.listener = s
        self.listen_dir = os.open(cdir, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            self.listen_ino = os.stat(f"/proc/self/fd/{self.listen_dir}/monitor.sock").st_ino
        except OSError:
            self.listen_ino = None
        self._watch(s.fileno(), "listen", s)

    def _close_listener(self):
        if self.listener is None:
            return
        path = f"/proc/self/fd/{self.listen_dir}/monitor.sock"
        try:
            if os.stat(path).st_ino == self.listen_ino:
                os.unlink(path)
        except OSError:
            pass
        self._unwatch(self.listener.fileno())
        self.listener.close()
        os.close(self.listen_dir)
        self.listener = None

    def _accept(self):
        try:
            fd, _ = self.listener._accept()  # (accept4 with SOCK_CLOEXEC)
        except OSError:
            return
        conn = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM, 0, fd)
        cred = conn.getsockopt(_socket.SOL_SOCKET, _socket.SO_PEERCRED, 12)
        uid = int.from_bytes(cred[4:8], sys.byteorder)
        if uid not in (0, os.geteuid()):
            conn.close()
            return
        conn.setblocking(False)
        self.clients[conn.fileno()] = [conn, b""]
        self._watch(conn.fileno(), "client", conn)

    def _client(self, conn):
        entry = self.clients[conn.fileno()]
        try:
            data = conn.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        entry[1] += data
        if data and b"\n" not in entry[1]:
            return
        self._unwatch(conn.fileno())
        del self.clients[conn.fileno()]
        try:
            req = loads(entry[1])
            cid = req["launch"]
        except (ValueError, KeyError, TypeError):
            conn.close()
            return
        if cid in self.ctrs:
            _reply(conn, b'{"error": "container is already supervised", "code": 125}\n')
            return
        self._spawn("launch", cid, [cid, "1" if req.get("interactive") else "0"], client=conn)

    # the phases (full engine, short-lived children)
    def _spawn(self, kind, cid, args, client=None):
        mine, theirs = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_SEQPACKET)
        boot = (f"import sys; sys.path[:0] = [{self.path!r}]; from minidock.engine.monitor_phases import main; "
                "sys.exit(main())")
        try:
            pid = os.posix_spawn(self.engine, [self.engine, "-c", boot, kind] + list(args), os.environ,
                                 file_actions=[(os.POSIX_SPAWN_DUP2, theirs.fileno(), HELPER_SOCKET_FD)])
        except OSError as e:
            _say(f"cannot start the {kind} phase of {cid[:12]}: {e}")
            mine.close()
            theirs.close()
            return 0
        theirs.close()
        c = self.ctrs.get(cid)
        self.helpers[pid] = [kind, cid, mine, c.gen if c else 0, client]
        self._watch(mine.fileno(), "helper", pid)
        return pid

    def _helper_message(self, pid):
        kind, cid, sock, gen, client = self.helpers[pid]
        msg, fds = {}, []
        try:
            data, anc, _, _ = sock.recvmsg(1 << 16, _socket.CMSG_SPACE(16 * 4), _socket.MSG_CMSG_CLOEXEC)
            for level, typ, raw in anc:
                if level == _socket.SOL_SOCKET and typ == _socket.SCM_RIGHTS:
                    fds += [int.from_bytes(raw[i:i + 4], sys.byteorder) for i in range(0, len(raw) - 3, 4)]
            if data:
                msg = loads(data)
        except (OSError, ValueError) as e:
            _say(f"the {kind} phase of {cid[:12]}: {e}")
        self._unwatch(sock.fileno())
        sock.close()
        self.helpers[pid][2] = None
        self._phase_done(kind, cid, gen, client, msg, fds, data_ok=bool(msg))

    def _phase_done(self, kind, cid, gen, client, msg, fds, data_ok):
        c = self.ctrs.get(cid)
        if kind in ("launch", "restart"):
            if "pid" in msg and fds:
                msg["fds"] = fds
                if c is None:
                    c = Ctr(msg)
                    self._add(c)
                else:
                    c.adopt(msg)
                    self._watch_ctr(c)
                if client is not None:
                    _reply(client, b'{"ok": true}\n')
                return
            for fd in fds:
                os.close(fd)
            if client is not None:
                _reply(client, _encode_error(msg) if msg.get("error") else
                       b'{"error": "the container\'s monitor could not start it", "code": 125}\n')
            if c is not None and kind == "restart":
                self._drop(c)  # (the phase recorded why: stopped meanwhile, or the error)
        elif kind == "exit":
            if c is None or c.phase != "exiting":
                return
            if not data_ok:
                c.exit_tries += 1
                if c.exit_tries < 3:  # the exit must be recorded: try again
                    c.restart_at = time.monotonic() + 1.0
                    c.phase = "exit-retry"
                    return
                _say(f"gave up recording the exit of {cid[:12]}")
                self._drop(c)
            elif msg.get("restart") is not None:
                c.phase = "waiting"
                c.backoff = msg.get("backoff", c.backoff)
                c.prefer = msg.get("prefer") or "{}"
                c.restart_at = time.monotonic() + msg["restart"]
            else:
                self._drop(c)
        elif kind == "health":
            if c is None or c.gen != gen or c.phase != "running":
                return
            c.probe_pid = 0
            status = msg.get("status")
            if status is None:
                c.next_probe = None  # (removed, or no longer running)
                return
            before, c.health_status = c.health_status, status
            c.next_probe = time.monotonic() + c._probe_wait(time.monotonic()) / 1e9
            if status == "unhealthy" and before != "unhealthy":
                self._on_unhealthy(c)

    def _on_unhealthy(self, c):
        """podman's --health-on-failure."""
        action = c.health.get("action") or "none"
        if action in ("kill", "restart"):
            c.forced = action == "restart"
            _kill(c.pid, _signal.SIGKILL)
        elif action == "stop":
            self._spawn("stop", c.cid, [c.cid])

    # the container's side
    def _output(self, c, fd):
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return
        except OSError as e:
            if e.errno != errno.EIO:  # EIO: the pty's last slave closed
                _say(f"reading the output of {c.cid[:12]}: {e}")
            data = b""
        if not data:
            self._unwatch(fd)
            del c.sources[fd]
            os.close(fd)
            if fd == c.console:
                c.console = None
            return
        c.last_output = time.monotonic()
        try:
            c.log.write(c.sources[fd], data)
        except OSError as e:  # (a full disk: said, and the loop goes on)
            _say(f"writing the log of {c.cid[:12]}: {e}")

    def _input(self, c, fd):
        try:
            data = os.read(fd, 65536)
        except (BlockingIOError, InterruptedError):
            return
        target = c.console if c.console is not None else c.keep
        if data and target is not None:
            try:
                _write_all(target, data)
            except OSError:
                pass

    def _reap(self):
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            h = self.helpers.get(pid)
            if h is not None:
                if h[2] is not None:  # exited before we read its message: read what it left
                    self._helper_message(pid)
                del self.helpers[pid]
                continue
            for c in self.ctrs.values():
                if c.pid == pid and c.phase == "running":
                    c.status = status
                    c.phase = "draining"
                    c.last_output = time.monotonic()
                    if c.probe_pid:  # the container is gone under the probe: no verdict
                        _kill(c.probe_pid, _signal.SIGKILL)
                        c.probe_pid = 0
                    break

    def _timers(self):
        t = time.monotonic()
        wait = 3600.0
        for c in list(self.ctrs.values()):
            if c.phase == "draining":
                if not c.sources or t - c.last_output >= _DRAIN:
                    self._exited(c)
                    if c.phase == "handed":  # (poll the state next: no fd will wake us)
                        wait = min(wait, 0.005)
                else:
                    wait = min(wait, c.last_output + _DRAIN - t)
            elif c.phase == "running" and c.next_probe is not None and not c.probe_pid:
                if t >= c.next_probe:
                    c.probe_pid = self._spawn("health", c.cid, [c.cid, "1" if c.in_start_period(t) else "0"])
                    c.next_probe = None if not c.probe_pid else c.next_probe
                else:
                    wait = min(wait, c.next_probe - t)
            elif c.phase == "handed":  # `stop` records the exit; we let the container go once it has
                st = _state(c.cdir)
                if st is None or (st and not st.get("Running")):
                    self._drop(c)
                elif t >= c.restart_at:  # the stopper is gone: record it ourselves (if it has not taken it)
                    try:
                        os.rename(c.cdir + "/exit.handed", c.cdir + "/exit.taken")
                        c.phase = "exiting"
                        self._spawn_exit(c)
                    except OSError:
                        c.restart_at = t + _HANDED
                else:
                    wait = min(wait, 0.005)
            elif c.phase == "exit-retry":
                if t >= c.restart_at:
                    c.phase = "exiting"
                    self._spawn_exit(c)
                else:
                    wait = min(wait, c.restart_at - t)
            elif c.phase == "waiting":
                # the back-off: a stop or rm meanwhile ends it at once (the phase records it)
                st = _state(c.cdir)
                if st is None:
                    self._drop(c)
                    continue
                if t >= c.restart_at or st.get("ManuallyStopped"):
                    c.phase = "restarting"
                    if not self._spawn("restart", c.cid, [c.cid, repr(c.backoff), c.prefer]):
                        self._drop(c)
                else:
                    wait = min(wait, c.restart_at - t, 0.2)
        return max(wait, 0.0)

    def _exited(self, c):
        for fd in list(c.sources) + c.fifo:
            self._unwatch(fd)
        c.close_io()
        c.phase = "exiting"
        c.code = exit_code(c.status)
        c.ran = time.monotonic() - c.began
        _save_exit(c.cdir, c.code)  # (should we die before the exit phase records it: refresh reads it)
        try:  # a `stop` is waiting for this exit with the engine loaded: it records it (no new interpreter)
            os.rename(c.cdir + "/exit.claim", c.cdir + "/exit.handed")
        except OSError:
            self._spawn_exit(c)
            return
        c.phase = "handed"
        c.restart_at = time.monotonic() + _HANDED

    def _spawn_exit(self, c):
        if not self._spawn("exit", c.cid, [c.cid, str(c.code), repr(c.ran), repr(c.backoff),
                                           "1" if c.forced else "0"]):
            self._drop(c)

    def _guarded(self, fn, *args):
        """One step of the loop: whatever goes wrong in it is logged, and the other containers
        stay supervised (a monitor that dies takes nothing with it either: `refresh` notices,
        with the exit code saved in monitor.exit)."""
        try:
            return fn(*args)
        except Exception as e:  # noqa: BLE001
            _say(f"{getattr(fn, '__name__', fn)}: {type(e).__name__}: {e}")
            return None

    def _event(self, fd):
        kind, obj = self.fds.get(fd, (None, None))
        if kind == "wake":
            try:
                os.read(fd, 512)
            except BlockingIOError:
                pass
        elif kind == "out":
            self._output(obj, fd)
        elif kind == "fifo":
            self._input(obj, fd)
        elif kind == "helper":
            if self.helpers[obj][2] is not None:
                self._helper_message(obj)
        elif kind == "listen":
            self._accept()
        elif kind == "client":
            self._client(obj)

    def run(self):
        self._reap()  # (a PID 1 that exited before this program started is a zombie child already)
        while self.ctrs or self.helpers or self.clients:
            timeout = self._guarded(self._timers)
            if not (self.ctrs or self.helpers or self.clients):
                break
            for fd, _ in self.poll.poll(int((0.2 if timeout is None else timeout) * 1000) + 1):
                self._guarded(self._event, fd)
            self._guarded(self._reap)
        self._close_listener()
        return 0


def _state(cdir):
    try:
        with open(cdir + "/state.json", "rb") as f:
            return loads(f.read())
    except (OSError, ValueError):
        return None if not os.path.exists(cdir + "/config.json") else {}


def _save_exit(cdir, code):
    """containers/<id>/monitor.exit (lifecycle.EXIT_FILE): the exit code, atomically."""
    tmp = f"{cdir}/monitor.exit.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, b"%d\n" % code)
        finally:
            os.close(fd)
        os.replace(tmp, f"{cdir}/monitor.exit")
    except OSError as e:
        _say(f"cannot save the exit code {code}: {e}")


def _reply(conn, data):
    try:
        conn.setblocking(True)
        conn.sendall(data)
    except OSError:
        pass  # the client went away (killed): the container runs all the same
    conn.close()


def _encode_error(msg):
    """The phase's error, as it came (re-encoded by hand: no json.dumps here)."""
    parts = ['"error": ' + _json.encode_basestring_ascii(str(msg.get("error"))),
             f'"code": {int(msg.get("code") or 125)}']
    if msg.get("hint"):
        parts.append('"hint": ' + _json.encode_basestring_ascii(str(msg["hint"])))
    return ("{" + ", ".join(parts) + "}\n").encode()


def _kill(pid, sig):
    if pid > 0:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def _noop(*_):
    pass


def _say(text):
    """A line in the monitor's diagnostics (its stderr: containers/<id>/monitor.log)."""
    try:
        os.write(2, f"{now()} monitor {os.getpid()}: {text}\n".encode())
    except OSError:
        pass


def boot_command(python, package_parent):
    """The argv that starts this program (the config JSON is appended)."""
    return [python, "-I", "-S", "-c",
            f"import sys; sys.path[:0] = [{package_parent!r}]; from minidock.engine.monitor import main; "
            "sys.exit(main())"]


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    config = loads(argv[0])
    _say("supervising {} (modules: {})".format(
        ", ".join(d["cid"][:12] for d in config["containers"]) or "a pod",
        " ".join(sorted(m for m in sys.modules if not m.startswith("encodings.")))))
    return Monitor(config).run()
