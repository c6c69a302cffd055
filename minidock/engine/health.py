"""Health checks: one probe (`run_probe`), the container's health state, and the checker loop.

A probe runs through the same path as `minidock exec` (bundle.exec_process_spec +
runtime.exec_process: the container's namespaces, cgroup, capabilities, user), with stdin on
/dev/null and stdout+stderr captured (Docker keeps the first 4096 bytes). A probe still running
at its timeout is killed with its descendants (SIGKILL) and counts as a failure, with Docker's
output "Health check exceeded timeout (30s)" and ExitCode -1. The probe joins the container's
own cgroup, so there is no cgroup to leak; it is our child (we are a subreaper), reaped here.

Docker's rules (moby daemon/health.go), kept here:

* Healthcheck.Test: ["NONE"] (disabled), ["CMD", argv...], ["CMD-SHELL", "command"] (run with
  the image's SHELL, default /bin/sh -c); Interval 30s, Timeout 30s, Retries 3, StartPeriod 0,
  StartInterval 5s by default (nanoseconds in the config, 0 = default);
* the first probe runs one interval after the start (StartInterval during the start period);
* exit 0 = healthy, FailingStreak 0; any other result increments FailingStreak, except while
  "starting" and inside the start period; FailingStreak >= Retries = unhealthy;
* State.Health = {"Status": starting|healthy|unhealthy, "FailingStreak": n, "Log": last 5
  probes [{"Start", "End", "ExitCode", "Output"}]}; each change of Status is a
  "health_status: <status>" event.

`run_probe` is also the liveness/readiness probe runner of minidock.apps. Nothing heavy is
imported: the checker runs inside a container's monitor.
"""

from __future__ import annotations

import os
import select
import signal
import threading
import time

from minidock.engine import events
from minidock.errors import InvalidArgument, MinidockError
from minidock.state import containers
from minidock.util import now

SECOND = 1_000_000_000
DEFAULT_INTERVAL = 30 * SECOND
DEFAULT_TIMEOUT = 30 * SECOND
DEFAULT_START_INTERVAL = 5 * SECOND
DEFAULT_RETRIES = 3
MIN_DURATION = 1_000_000  # 1ms: Docker's containertypes.MinimumDuration
MAX_OUTPUT = 4096
MAX_LOG = 5
ON_FAILURE = ("none", "kill", "restart", "stop")


class ProbeResult(tuple):
    """(exit_code, output, start, end): a NamedTuple without importing typing (~2 ms of every run)."""

    __slots__ = ()

    def __new__(cls, exit_code: int, output: str, start: str, end: str):
        return tuple.__new__(cls, (exit_code, output, start, end))

    exit_code = property(lambda self: self[0])
    output = property(lambda self: self[1])
    start = property(lambda self: self[2])
    end = property(lambda self: self[3])

    def log_entry(self) -> dict:
        return {"Start": self.start, "End": self.end, "ExitCode": self.exit_code,
                "Output": self.output}


def go_duration(ns: int) -> str:
    """Go's time.Duration.String(): 30s, 1m30s, 500ms, 1.5s, 2h0m0s."""
    if ns == 0:
        return "0s"
    sign = "-" if ns < 0 else ""
    ns = abs(ns)
    if ns < SECOND:
        for unit, size in (("ms", 1_000_000), ("µs", 1_000), ("ns", 1)):
            if ns >= size:
                return sign + _frac(ns, size) + unit
    h, rest = divmod(ns, 3600 * SECOND)
    m, rest = divmod(rest, 60 * SECOND)
    out = f"{h}h{m}m" if h else (f"{m}m" if m else "")
    return sign + out + _frac(rest, SECOND) + "s"


def _frac(n: int, unit: int) -> str:
    whole, rest = divmod(n, unit)
    if not rest:
        return str(whole)
    digits = str(rest).rjust(len(str(unit)) - 1, "0").rstrip("0")
    return f"{whole}.{digits}"


# --- configuration -------------------------------------------------------------------------------
def from_flags(*, cmd: str | None, interval: str | None, timeout: str | None,
               retries: int | None, start_period: str | None, start_interval: str | None,
               none: bool, image_check: dict | None) -> dict | None:
    """Docker's --health-* flags over the image's HEALTHCHECK -> Config.Healthcheck (or None).

    Errors are Docker's (client side: negative values, --no-healthcheck with others; daemon
    side: durations under 1ms)."""
    from minidock.engine.events import parse_duration

    durations = {}
    for flag, text in (("--health-interval", interval), ("--health-timeout", timeout),
                       ("--health-start-period", start_period),
                       ("--health-start-interval", start_interval)):
        if text is None:
            continue
        try:
            durations[flag] = parse_duration(text)
        except InvalidArgument as e:
            raise InvalidArgument(f'invalid argument "{text}" for "{flag}" flag: {e.message}') from None
        if durations[flag] < 0:
            raise InvalidArgument(f"{flag} cannot be negative")
    if retries is not None and retries < 0:
        raise InvalidArgument("--health-retries cannot be negative")
    given = cmd is not None or durations or retries is not None
    if none:
        if given:
            raise InvalidArgument("--no-healthcheck conflicts with --health-* options")
        return {"Test": ["NONE"]}
    hc = dict(image_check or {})
    if cmd:
        hc["Test"] = parse_test(cmd)
    for flag, key in (("--health-interval", "Interval"), ("--health-timeout", "Timeout"),
                      ("--health-start-period", "StartPeriod"),
                      ("--health-start-interval", "StartInterval")):
        if flag in durations:
            hc[key] = durations[flag]
    if retries is not None:
        hc["Retries"] = retries
    if not hc:
        return None
    validate(hc)
    return hc


def parse_test(cmd: str) -> list[str]:
    """--health-cmd: a shell command (CMD-SHELL), or (minidock) Docker's JSON exec form
    '["CMD", "curl", "-f", "http://localhost"]' / '["CMD-SHELL", "..."]' / '["NONE"]'."""
    if cmd.lstrip().startswith("["):
        import json

        try:
            test = json.loads(cmd)
        except ValueError:
            raise InvalidArgument(f"invalid health check command {cmd!r}: not a JSON array of strings",
                                  'Use a shell command, or ["CMD", "prog", "arg"...].') from None
        if not isinstance(test, list) or not all(isinstance(x, str) for x in test):
            raise InvalidArgument(f"invalid health check command {cmd!r}: not a JSON array of strings")
        return test
    return ["CMD-SHELL", cmd]


def validate(hc: dict) -> None:
    """The daemon's checks of a Healthcheck (Docker's messages)."""
    test = hc.get("Test") or []
    if test:
        kind = test[0]
        if kind not in ("NONE", "CMD", "CMD-SHELL"):
            raise InvalidArgument(f"Unknown healthcheck type '{kind}' (expected 'CMD')",
                                  'The first element is "CMD", "CMD-SHELL" or "NONE".')
        if kind == "CMD" and len(test) < 2:
            raise InvalidArgument("Healthcheck CMD needs a command: [\"CMD\", \"prog\", \"arg\"...]")
        if kind == "CMD-SHELL" and len(test) != 2:
            raise InvalidArgument("Healthcheck CMD-SHELL needs exactly one command string")
    for key, what in (("Interval", "Interval"), ("Timeout", "Timeout"),
                      ("StartPeriod", "StartPeriod"), ("StartInterval", "StartInterval")):
        v = hc.get(key) or 0
        if v != 0 and v < MIN_DURATION:
            raise InvalidArgument(f"{what} in Healthcheck cannot be less than 1ms")
    if (hc.get("Retries") or 0) < 0:
        raise InvalidArgument("Retries in Healthcheck cannot be negative")


def probe_command(hc: dict | None, shell: list[str] | None = None) -> list[str] | None:
    """The argv a health check runs, or None when there is none (no Test, NONE)."""
    test = (hc or {}).get("Test") or []
    if not test or test[0] == "NONE":
        return None
    if test[0] == "CMD":
        return test[1:] or None
    if test[0] == "CMD-SHELL":
        return list(shell or ["/bin/sh", "-c"]) + [test[1]]
    return None


def enabled(rec: dict) -> bool:
    return probe_command(rec["Config"].get("Healthcheck")) is not None


# --- one probe -----------------------------------------------------------------------------------
def run_probe(cid: str, command: list[str], timeout_ns: int = DEFAULT_TIMEOUT, *,
              user: str | None = None, env: list[str] | None = None,
              exec_events: bool = True) -> ProbeResult:
    """Run ``command`` in the running container ``cid`` like `exec`, kill it at the timeout.

    Returns (exit code, output (first 4096 bytes of stdout+stderr), start, end); a probe that
    could not start is ExitCode -1 with the error as output, one that timed out ExitCode -1 with
    "Health check exceeded timeout (<timeout>)"."""
    from minidock.engine import bundle
    from minidock.runtime import exit_code, load
    from minidock.runtime.process import exec_process

    start = now()
    try:
        rec = containers.full(cid)
        if not rec["State"].get("Running") or rec["State"].get("Restarting") or not rec["State"].get("Pid"):
            raise MinidockError(f"container {cid} is not running")
        rt = load(cid)
        process = bundle.exec_process_spec(rec, rt.spec["process"], command, user=user, env=env)
    except (MinidockError, OSError) as e:
        return ProbeResult(-1, getattr(e, "message", None) or str(e), start, now())
    exec_id = os.urandom(32).hex() if exec_events else ""
    if exec_events:
        text = events.exec_text(command)
        events.container_event(rec, f"exec_create: {text}", execID=exec_id)
        events.container_event(rec, f"exec_start: {text}", execID=exec_id)
    r, w = os.pipe2(os.O_CLOEXEC)
    null = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    pid = 0
    try:
        try:
            p = exec_process(rt, process, stdio=(null, w, w))
            pid = p.pid
            p.start()
        except MinidockError as e:
            if pid:
                _kill_tree(pid)
                _reap(pid)
            return _done(rec, exec_id, ProbeResult(-1, e.message, start, now()))
        finally:
            os.close(w)
            os.close(null)
        out, timed_out = _collect(r, pid, timeout_ns)
        if timed_out:
            _kill_tree(pid)
            _reap(pid)
            return _done(rec, exec_id, ProbeResult(
                -1, f"Health check exceeded timeout ({go_duration(timeout_ns)})", start, now()))
        status = _reap(pid)
        return _done(rec, exec_id, ProbeResult(exit_code(status), out.decode("utf-8", "replace"),
                                               start, now()))
    finally:
        os.close(r)


def _done(rec: dict, exec_id: str, res: ProbeResult) -> ProbeResult:
    if exec_id:
        events.container_event(rec, "exec_die", execID=exec_id, exitCode=res.exit_code)
    return res


def _collect(r: int, pid: int, timeout_ns: int) -> tuple[bytes, bool]:
    """Read the probe's output until it exits and the pipe is drained, or the timeout passes."""
    deadline = time.monotonic() + (timeout_ns or DEFAULT_TIMEOUT) / SECOND
    out = b""
    pidfd = os.pidfd_open(pid)
    exited, open_ = False, True
    try:
        while open_:
            left = deadline - time.monotonic()
            if left <= 0:
                return out, True
            fds = [r] if exited else [r, pidfd]
            # once the probe has exited, a background child of it may still hold the pipe
            ready, _, _ = select.select(fds, [], [], min(left, 0.1) if exited else left)
            if not ready and exited:
                break
            if pidfd in ready:
                exited = True
            if r in ready:
                data = os.read(r, 65536)
                if not data:
                    open_ = False
                elif len(out) < MAX_OUTPUT:
                    out = (out + data)[:MAX_OUTPUT]
        while not exited:  # output closed, process still running
            left = deadline - time.monotonic()
            if left <= 0:
                return out, True
            exited = bool(select.select([pidfd], [], [], left)[0])
        return out, False
    finally:
        os.close(pidfd)


def _descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        try:
            for tid in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{tid}/children") as f:
                    kids = [int(x) for x in f.read().split()]
                out += kids
                todo += kids
        except OSError:
            continue
    return out


def _kill_tree(pid: int) -> None:
    for p in [pid, *_descendants(pid)]:
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _reap(pid: int) -> int:
    try:
        return os.waitpid(pid, 0)[1]
    except ChildProcessError:
        return 0


# --- the health state and the checker ------------------------------------------------------------
def initial() -> dict:
    return {"Status": "starting", "FailingStreak": 0, "Log": []}


def apply(health: dict, res: ProbeResult, *, retries: int, in_start_period: bool) -> dict:
    """Docker's handleProbeResult: the new Health after one probe (a new dict)."""
    h = {"Status": health.get("Status", "starting"), "FailingStreak": health.get("FailingStreak", 0),
         "Log": (list(health.get("Log") or []) + [res.log_entry()])[-MAX_LOG:]}
    if res.exit_code == 0:
        h["FailingStreak"] = 0
        h["Status"] = "healthy"
    elif not (h["Status"] == "starting" and in_start_period):
        h["FailingStreak"] += 1
        if h["FailingStreak"] >= (retries or DEFAULT_RETRIES):
            h["Status"] = "unhealthy"
    return h


class Checker(threading.Thread):
    """Probes a running container as its Healthcheck says; records State.Health; on a change to
    unhealthy calls ``on_unhealthy()`` (podman's --health-on-failure). Stopped with stop()."""

    def __init__(self, rec: dict, started_monotonic: float, on_unhealthy=None):
        super().__init__(daemon=True, name="health")
        hc = rec["Config"].get("Healthcheck") or {}
        self.cid = rec["Id"]
        self.rec = rec
        self.command = probe_command(hc, rec["Config"].get("Shell"))
        self.interval = hc.get("Interval") or DEFAULT_INTERVAL
        self.timeout = hc.get("Timeout") or DEFAULT_TIMEOUT
        self.start_period = hc.get("StartPeriod") or 0
        self.start_interval = hc.get("StartInterval") or DEFAULT_START_INTERVAL
        self.retries = hc.get("Retries") or DEFAULT_RETRIES
        self.started = started_monotonic
        self.on_unhealthy = on_unhealthy
        self._halt = threading.Event()

    def stop(self) -> None:
        self._halt.set()

    def run(self) -> None:
        status = "starting"
        while not self._halt.is_set():
            in_start = (time.monotonic() - self.started) * SECOND < self.start_period
            wait = self.start_interval if (status == "starting" and in_start) else self.interval
            if self._halt.wait(wait / SECOND):
                return
            begin = time.monotonic()
            res = run_probe(self.cid, self.command, self.timeout)
            if self._halt.is_set():
                return  # the container stopped under the probe: not a verdict on its health
            in_start = (begin - self.started) * SECOND < self.start_period
            new = record(self.rec, res, in_start_period=in_start)
            if new is None:
                return
            if new != status:
                status = new
                if status == "unhealthy" and self.on_unhealthy:
                    self.on_unhealthy()


def record(rec: dict, res: ProbeResult, *, in_start_period: bool) -> str | None:
    """A probe's result into State.Health (Docker's rules), with a "health_status" event when
    the status changes. Returns the new status (None: the container no longer runs)."""
    cid = rec["Id"]
    retries = (rec["Config"].get("Healthcheck") or {}).get("Retries") or DEFAULT_RETRIES
    try:
        with containers.lock(cid):
            st = containers.load_state(cid)
            if not st.get("Running") or st.get("Restarting"):
                return None
            before = (st.get("Health") or {}).get("Status") or "starting"
            h = apply(st.get("Health") or initial(), res, retries=retries, in_start_period=in_start_period)
            st["Health"] = h
            containers.save_state(cid, st)
    except OSError:
        return None  # removed
    if h["Status"] != before:
        events.container_event(rec, f"health_status: {h['Status']}")
    return h["Status"]


def check_once(cid: str, *, in_start_period: bool) -> str | None:
    """One health check of a running container, as the lean monitor asks for at each interval
    (its `health` phase): the probe, then record(). None if it no longer runs."""
    try:
        rec = containers.full(cid)
    except (MinidockError, OSError, ValueError):
        return None
    hc = rec["Config"].get("Healthcheck") or {}
    command = probe_command(hc, rec["Config"].get("Shell"))
    if command is None or not rec["State"].get("Running"):
        return None
    res = run_probe(cid, command, hc.get("Timeout") or DEFAULT_TIMEOUT)
    return record(rec, res, in_start_period=in_start_period)


def schedule(rec: dict) -> dict | None:
    """What the lean monitor needs to time a container's checks (ns), or None without any."""
    hc = rec["Config"].get("Healthcheck")
    if not hc or not enabled(rec):
        return None
    return {"interval": hc.get("Interval") or DEFAULT_INTERVAL,
            "start_period": hc.get("StartPeriod") or 0,
            "start_interval": hc.get("StartInterval") or DEFAULT_START_INTERVAL,
            "action": rec["Config"].get("HealthcheckOnFailureAction") or "none"}
