"""The lean monitor (engine/monitor.py) and the per-pod monitor, against real containers.

The monitor's leanness is checked on the live process, so it cannot silently regress: its own
list of modules (written once to monitor.log), its command line (`-I -S`) and its memory map (no
C extension from site-packages: psutil's, click's speedups).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import psutil

HEAVY = ("click", "psutil", "json", "re", "minidock.runtime", "minidock.kernel", "minidock.state",
         "minidock.engine.lifecycle", "threading", "subprocess", "socket", "selectors", "signal")


def _until(fn, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = fn()
        if v:
            return v
        time.sleep(0.1)
    return fn()


def _state(state_root, cid):
    return json.load(open(state_root / "containers" / cid / "state.json"))


def _modules(state_root, cid, pid):
    """The modules the monitor reports having loaded (its first line, once it has started)."""
    path = state_root / "containers" / cid / "monitor.log"
    lines = _until(lambda: [line for line in path.read_text().splitlines()
                            if f"monitor {pid}: supervising" in line], timeout=10)
    assert lines, path.read_text()
    return set(lines[-1].split("(modules: ", 1)[1].rstrip(")").split())


def test_the_monitor_is_lean(md, busybox, detached, state_root):
    name, cid = detached(busybox, "sleep", "60")
    st = _state(state_root, cid)
    pid = st["MonitorPid"]
    proc = psutil.Process(pid)
    cmd = proc.cmdline()
    assert cmd[1:3] == ["-I", "-S"] and "minidock.engine.monitor" in cmd[4], cmd
    assert st["Pid"] in [c.pid for c in proc.children()]  # the container's PID 1 is its child
    mods = _modules(state_root, cid, pid)
    assert "minidock.engine.monitor" in mods
    assert not [m for m in mods if m in HEAVY or m.split(".")[0] in ("click", "psutil")], mods
    assert not [m for m in mods if m.startswith("minidock.") and m not in (
        "minidock.engine", "minidock.engine.monitor")], mods
    maps = open(f"/proc/{pid}/maps").read()
    assert "site-packages" not in maps and "_psutil" not in maps
    rollup = open(f"/proc/{pid}/smaps_rollup").read()
    assert "Pss:" in rollup


def test_logs_exit_code_and_streams(md, busybox, state_root):
    name = f"t{os.urandom(4).hex()}"
    r = md("run", "-d", "--name", name, busybox, "sh", "-c",
           "echo out; echo err >&2; printf 'no newline'; exit 3")
    assert r.returncode == 0, r.stderr
    try:
        assert md("wait", name).stdout.strip() == "3"
        r = md("logs", name)
        assert r.stdout == "out\nno newline" and r.stderr == "err\n"
        lines = [json.loads(x) for x in open(md("inspect", "-f", "{{.LogPath}}", name).stdout.strip())]
        assert [(x["stream"], x["log"]) for x in lines] == [
            ("stdout", "out\n"), ("stderr", "err\n"), ("stdout", "no newline")]
        assert all(x["time"].endswith("Z") and len(x["time"]) == 30 for x in lines)
    finally:
        md("rm", "-f", name)


def test_log_rotation_keeps_every_line(md, busybox):
    name = f"t{os.urandom(4).hex()}"
    r = md("run", "-d", "--name", name, "--log-opt", "max-size=2k", "--log-opt", "max-file=3",
           "--log-opt", "compress=true", busybox, "sh", "-c",
           "i=0; while [ $i -lt 200 ]; do echo line-$i; i=$((i+1)); done")
    assert r.returncode == 0, r.stderr
    try:
        assert md("wait", name).stdout.strip() == "0"
        out = md("logs", name).stdout.split()
        # 3 files of ~2 KiB keep the newest lines, in order, none cut
        assert out and out == [f"line-{i}" for i in range(200 - len(out), 200)], out
        logpath = md("inspect", "-f", "{{.LogPath}}", name).stdout.strip()
        assert os.path.exists(logpath + ".1.gz")
    finally:
        md("rm", "-f", name)


def test_attach_input_reaches_the_container(md, md_env, busybox, detached):
    name, cid = detached("-i", busybox, "sh", "-c", "read x; echo got-$x")
    p = subprocess.run([sys.executable, "-m", "minidock", "attach", name], input="hello\n",
                       capture_output=True, text=True, env=md_env, timeout=30)
    assert "got-hello" in p.stdout + md("logs", name).stdout
    assert md("wait", name).stdout.strip() == "0"


def test_restart_back_off_and_stop_while_waiting(md, busybox, state_root):
    name = f"t{os.urandom(4).hex()}"
    env = {"MINIDOCK_RESTART_MAX_DELAY": "0.2"}
    r = md("run", "-d", "--name", name, "--restart", "on-failure:3", busybox, "sh", "-c",
           "echo run; exit 7", env=env)
    assert r.returncode == 0, r.stderr
    try:
        info = _until(lambda: (lambda i: i if i["RestartCount"] == 3 and not i["State"]["Running"]
                               else None)(json.loads(md("inspect", name).stdout)[0]))
        assert info and info["State"]["ExitCode"] == 7, info
        assert md("logs", name).stdout == "run\n" * 4
        # a long back-off (always, cap 60 s after a few runs): stop ends the wait at once
        r = md("run", "-d", "--name", name + "-w", "--restart", "always", busybox, "sh", "-c", "exit 1")
        assert r.returncode == 0
        assert _until(lambda: json.loads(md("inspect", name + "-w").stdout)[0]["RestartCount"] >= 2)
        t = time.monotonic()
        assert md("stop", name + "-w", timeout=60).returncode == 0
        st = json.loads(md("inspect", name + "-w").stdout)[0]["State"]
        assert st["Status"] == "exited" and not st["Running"]
        assert time.monotonic() - t < 30
    finally:
        md("rm", "-f", name, name + "-w")


def test_health_checks_run_from_the_monitor(md, busybox, detached, state_root):
    name, cid = detached("--health-cmd", "test -e /tmp/ok", "--health-interval", "0.3s",
                         "--health-retries", "1", "--health-on-failure", "kill", busybox,
                         "sh", "-c", "touch /tmp/ok; sleep 2; rm /tmp/ok; sleep 60")
    assert _until(lambda: json.loads(md("inspect", name).stdout)[0]["State"].get("Health", {})
                  .get("Status") == "healthy")
    mpid = _state(state_root, cid)["MonitorPid"]
    # unhealthy -> killed by the monitor (--health-on-failure kill): 137
    st = _until(lambda: (lambda s: s if not s["Running"] else None)(
        json.loads(md("inspect", name).stdout)[0]["State"]), timeout=60)
    assert st and st["ExitCode"] == 137 and st["Health"]["Status"] == "unhealthy", st
    # the monitor leaves once the exit phase has answered
    assert _until(lambda: not psutil.pid_exists(mpid) or psutil.Process(mpid).status() == "zombie")


def _engine(md_env, code):
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=md_env, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_one_monitor_per_pod(md, md_env, busybox, state_root):
    """A pod's containers share one monitor (run_detached group=/join=), each with its own log,
    exit code and restart; the monitor leaves with the last of them."""
    names = [f"t{os.urandom(4).hex()}" for _ in range(3)]
    ids = []
    for n, cmd in zip(names, (["sleep", "60"], ["sh", "-c", "echo second; sleep 60"],
                              ["sh", "-c", "echo third; exit 4"])):
        r = md("create", "--name", n, "--restart", "on-failure:1" if n == names[2] else "no", busybox, *cmd)
        assert r.returncode == 0, r.stderr
        ids.append(r.stdout.strip())
    try:
        _engine(md_env, "from minidock.engine import lifecycle\n"
                        "from minidock.state import containers as c\n"
                        f"ids = {ids!r}\n"
                        "lifecycle.run_detached(c.load(ids[0]), group=True)\n"
                        "for i in ids[1:]:\n"
                        "    lifecycle.run_detached(c.load(i), join=ids[0])\n")
        st = [_state(state_root, i) for i in ids]
        mon = st[0]["MonitorPid"]
        assert st[1]["MonitorPid"] == mon and st[1]["Running"], st
        assert psutil.Process(mon).cmdline()[1:3] == ["-I", "-S"]
        # the third fails, is restarted once by the pod's monitor, and stays exited with its code
        info = _until(lambda: (lambda i: i if i["RestartCount"] == 1 and not i["State"]["Running"]
                               else None)(json.loads(md("inspect", names[2]).stdout)[0]))
        assert info and info["State"]["ExitCode"] == 4
        assert md("logs", names[2]).stdout == "third\nthird\n"
        assert md("logs", names[1]).stdout == "second\n"
        children = {c.pid for c in psutil.Process(mon).children()}
        assert {st[0]["Pid"], st[1]["Pid"]} <= children
        mods = _modules(state_root, ids[0], mon)
        assert not [m for m in mods if m in HEAVY], mods
        # one container killed: its exit is recorded, the other still runs under the same monitor
        os.kill(st[1]["Pid"], signal.SIGKILL)
        assert md("wait", names[1]).stdout.strip() == "137"
        assert _state(state_root, ids[0])["Running"] and psutil.pid_exists(mon)
        md("rm", "-f", names[0])
        assert _until(lambda: not psutil.pid_exists(mon) or psutil.Process(mon).status() == "zombie")
    finally:
        md("rm", "-f", *names)


def test_pod_member_joins_own_monitor_when_the_pods_is_gone(md, md_env, busybox, state_root):
    a = md("create", busybox, "true").stdout.strip()
    b = md("create", busybox, "sleep", "60").stdout.strip()
    try:
        _engine(md_env, "from minidock.engine import lifecycle\n"
                        "from minidock.state import containers as c\n"
                        f"lifecycle.run_detached(c.load({a!r}), group=True)\n")
        assert md("wait", a).stdout.strip() == "0"
        _until(lambda: not os.path.exists(state_root / "containers" / a / "monitor.sock"))
        _engine(md_env, "from minidock.engine import lifecycle\n"
                        "from minidock.state import containers as c\n"
                        f"lifecycle.run_detached(c.load({b!r}), join={a!r})\n")
        st = _state(state_root, b)
        assert st["Running"] and st["MonitorPid"] and psutil.pid_exists(st["MonitorPid"])
    finally:
        md("rm", "-f", a, b)


def test_exit_code_saved_by_a_monitor_that_died(md, busybox, detached, state_root):
    """The monitor saves the exit code (monitor.exit) before its exit phase records it: if it dies
    in between, the next command records that code, not 255; a recorded exit leaves no file."""
    name, cid = detached(busybox, "sleep", "60")
    st = _state(state_root, cid)
    os.kill(st["MonitorPid"], signal.SIGSTOP)  # (it cannot see the exit: we play its part)
    os.kill(st["Pid"], signal.SIGKILL)
    (state_root / "containers" / cid / "monitor.exit").write_text("42\n")  # (what it had seen)
    os.kill(st["MonitorPid"], signal.SIGKILL)
    assert _until(lambda: not psutil.pid_exists(st["MonitorPid"]) or
                  psutil.Process(st["MonitorPid"]).status() == "zombie")
    info = json.loads(md("inspect", name).stdout)[0]["State"]
    assert info["Status"] == "exited" and info["ExitCode"] == 42 and info["Error"] == "", info
    other, ocid = detached(busybox, "sh", "-c", "exit 9")
    assert md("wait", other).stdout.strip() == "9"
    assert _until(lambda: not (state_root / "containers" / ocid / "monitor.exit").exists())


def test_cli_killed_at_any_point_of_run_d(md, md_env, busybox, state_root):
    """`run -d` killed with SIGKILL at several points: the container is then either not started
    ("created") or running under a live lean monitor with its logs kept, never half-supervised;
    rm -f leaves nothing (the leak check)."""
    for i, delay in enumerate((0.05, 0.15, 0.3, 0.5, 0.8, 1.2)):
        _kill_run_d(md, md_env, busybox, state_root, f"up-{i}", delay)


def _kill_run_d(md, md_env, busybox, state_root, word, delay):
    name = f"t{os.urandom(4).hex()}"
    p = subprocess.Popen([sys.executable, "-m", "minidock", "run", "-d", "--name", name, busybox,
                          "sh", "-c", f"echo {word}; sleep 60"], env=md_env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(delay)
    p.kill()
    p.wait()
    try:
        r = md("inspect", name)
        if r.returncode != 0:
            return  # killed before the container was created

        def settled():  # a monitor forked before the kill goes on (with the CLI's command line
            # until its exec): until it has started the container, or given up
            for proc in psutil.process_iter(["cmdline", "status"]):
                if name in (proc.info["cmdline"] or []) and proc.info["status"] != psutil.STATUS_ZOMBIE:
                    return None
            return json.loads(md("inspect", name).stdout)[0]["State"]

        st = _until(settled, timeout=20)
        assert st, md("inspect", name).stdout
        if st["Running"]:
            mon = psutil.Process(st["MonitorPid"])
            assert _until(lambda: mon.cmdline()[1:3] == ["-I", "-S"]), mon.cmdline()
            assert _until(lambda: md("logs", name).stdout == f"{word}\n"), md("logs", name).stdout
        else:
            assert st["Status"] == "created", st
    finally:
        md("rm", "-f", name)


def test_stop_records_the_exit_the_monitor_hands_over(md, busybox, detached, state_root):
    """stop makes exit.claim; the lean monitor, at PID 1's exit, hands the exit to it (exit.handed)
    instead of starting its exit phase, and stop records it (exit.taken): exited with the code,
    die before stop in the events, the container's cgroup gone, the monitor leaves."""
    name, cid = detached(busybox, "sh", "-c", 'trap "exit 3" TERM; sleep 300 & wait')
    mpid = _state(state_root, cid)["MonitorPid"]
    assert md("stop", name).returncode == 0
    cdir = state_root / "containers" / cid
    assert (cdir / "exit.taken").exists() and not (cdir / "exit.handed").exists()
    st = _state(state_root, cid)
    assert (st["Status"], st["ExitCode"], st["Running"], st["Pid"]) == ("exited", 3, False, 0), st
    assert not (cdir / "monitor.exit").exists()
    assert _until(lambda: not psutil.pid_exists(mpid) or psutil.Process(mpid).status() == "zombie")
    evs = md("events", "--since", "30s", "--until", "0s", "--filter", f"container={cid}",
             "--format", "{{.Action}}").stdout.split()
    assert evs[-3:] == ["kill", "die", "stop"], evs
    # a later start clears the hand-over files; a stop without a waiting stopper still works
    assert md("start", name).returncode == 0
    assert not (cdir / "exit.taken").exists()
    assert md("kill", "-s", "TERM", name).returncode == 0
    assert _until(lambda: _state(state_root, cid)["Status"] == "exited")
    assert not (cdir / "exit.taken").exists()  # recorded by the monitor's own exit phase
