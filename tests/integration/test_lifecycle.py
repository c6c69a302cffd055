"""Detached containers, their monitor, logs, exec, stop/kill/start/restart, ps/inspect/rename."""

import json
import os
import signal
import time

import psutil
import pytest


def _inspect(md, name):
    r = md("inspect", name)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)[0]


def test_detached_logs_and_ps(md, busybox, detached):
    name, cid = detached(busybox, "sh", "-c", "echo out; echo err >&2; sleep 30")
    assert len(cid) == 64
    time.sleep(0.3)
    ps = md("ps").stdout
    assert name in ps and cid[:12] in ps and "Up " in ps
    r = md("logs", name)
    assert r.stdout == "out\n" and r.stderr == "err\n"
    r = md("logs", "-t", name)
    assert r.stdout.endswith(" out\n") and r.stdout[:4].isdigit() and r.stderr.endswith(" err\n")
    r = md("logs", "--tail", "1", name)
    assert len((r.stdout + r.stderr).splitlines()) == 1
    info = _inspect(md, cid[:8])  # a unique prefix works
    assert info["State"]["Running"] is True and info["State"]["Pid"] > 0
    assert info["Name"] == "/" + name and info["Id"] == cid
    assert md("inspect", "-f", "{{.State.Status}}", name).stdout.strip() == "running"


def test_logs_follow_ends_when_container_exits(md, busybox, detached):
    name, _ = detached(busybox, "sh", "-c", "for i in 1 2 3; do echo line$i; sleep 0.2; done")
    r = md("logs", "-f", name, timeout=20)
    assert r.stdout.split() == ["line1", "line2", "line3"]


def test_exec_joins_namespaces(md, busybox, detached):
    name, _ = detached("--hostname", "inside", busybox, "sleep", "30")
    r = md("exec", name, "sh", "-c", "hostname; ps -o pid,comm | grep -c sleep; echo $$")
    assert r.returncode == 0, r.stderr
    host, sleeps, pid = r.stdout.split()
    assert host == "inside" and sleeps == "1" and pid != "1"
    assert md("exec", name, "sh", "-c", "exit 5").returncode == 5
    r = md("exec", name, "nope")  # Docker 28: exec of a missing binary is 126 (run stays 127)
    assert r.returncode == 126 and "executable file not found" in r.stderr, r.stderr
    r = md("exec", "-u", "nobody", "-w", "/tmp", "-e", "X=1", name, "sh", "-c", "id -u; pwd; echo $X")
    assert r.stdout.split() == ["65534", "/tmp", "1"]
    r = md("exec", "-i", name, "cat", input="via stdin\n")
    assert r.stdout == "via stdin\n"


def test_exec_in_stopped_container_fails(md, busybox):
    md("create", "--name", "not-started", busybox, "true")
    r = md("exec", "not-started", "true")
    assert r.returncode == 125 and "is not running" in r.stderr
    md("rm", "not-started")


def test_stop_times_out_to_sigkill(md, busybox, detached):
    name, _ = detached(busybox, "sh", "-c", "trap '' TERM; while :; do sleep 0.1; done")
    t0 = time.monotonic()
    assert md("stop", "-t", "1", name).returncode == 0
    assert 0.9 < time.monotonic() - t0 < 8
    info = _inspect(md, name)
    assert info["State"]["Status"] == "exited" and info["State"]["ExitCode"] == 137


def test_stop_signal_respected(md, busybox, detached):
    name, _ = detached("--stop-signal", "USR1", busybox, "sh", "-c",
                       "trap 'echo got usr1; exit 3' USR1; while :; do sleep 0.1; done")
    time.sleep(0.3)
    md("stop", name)
    assert md("logs", name).stdout == "got usr1\n"
    assert _inspect(md, name)["State"]["ExitCode"] == 3


def test_start_restart_wait(md, busybox):
    cid = md("create", "--name", "lifecycle", busybox, "sh", "-c", "echo run; exit 4").stdout.strip()
    assert len(cid) == 64
    assert "Created" in md("ps", "-a").stdout
    assert md("start", "-a", "lifecycle").returncode == 4
    assert md("start", "lifecycle").returncode == 0
    assert md("wait", "lifecycle").stdout.strip() == "4"
    assert md("logs", "lifecycle").stdout == "run\nrun\n"
    assert md("restart", "lifecycle").returncode == 0
    md("wait", "lifecycle")
    assert md("logs", "lifecycle").stdout.count("run") == 3
    md("rm", "lifecycle")


def test_names_conflict_rename_and_prune(md, busybox, detached):
    name, cid = detached(busybox, "sleep", "30")
    r = md("run", "-d", "--name", name, busybox, "true")
    assert r.returncode == 125 and "is already in use" in r.stderr
    assert md("rename", name, name + "-new").returncode == 0
    assert md("inspect", "-f", "{{.Name}}", cid).stdout.strip() == f"/{name}-new"
    md("rename", name + "-new", name)
    assert md("rm", name).returncode == 1  # running: refused
    md("create", "--name", "prunable", busybox, "true")
    r = md("container", "prune", "-f")
    assert r.returncode == 0
    assert "prunable" not in md("ps", "-a").stdout and name in md("ps").stdout


def test_top_lists_host_and_container_pids(md, busybox, detached):
    name, _ = detached(busybox, "sh", "-c", "sleep 30 & sleep 31; true")
    time.sleep(0.3)
    r = md("top", name)
    assert r.returncode == 0, r.stderr
    rows = [line.split() for line in r.stdout.splitlines()[1:]]
    assert {row[3] for row in rows} >= {"1"}
    host_pids = {int(row[1]) for row in rows}
    assert all(psutil.pid_exists(p) for p in host_pids) and len(rows) == 3


def test_crashed_monitor_is_cleaned_up(md, busybox, detached, state_root):
    name, cid = detached(busybox, "sleep", "60")
    st = json.load(open(state_root / "containers" / cid / "state.json"))
    os.kill(st["MonitorPid"], signal.SIGKILL)
    time.sleep(0.2)
    info = _inspect(md, name)  # the next command notices and cleans up
    assert info["State"]["Running"] is False
    assert info["State"]["ExitCode"] == 137
    assert not psutil.pid_exists(st["Pid"]) or psutil.Process(st["Pid"]).status() == "zombie"
    assert not os.path.ismount(state_root / "containers" / cid / "merged")


def test_rm_force_running(md, busybox, detached, state_root):
    name, cid = detached(busybox, "sleep", "60")
    assert md("rm", "-f", name).returncode == 0
    assert not (state_root / "containers" / cid).exists()
    assert md("inspect", name).returncode == 1


def test_detached_rm_removes_after_exit(md, busybox, state_root):
    cid = md("run", "-d", "--rm", busybox, "true").stdout.strip()
    for _ in range(100):
        if not (state_root / "containers" / cid).exists():
            break
        time.sleep(0.05)
    assert not (state_root / "containers" / cid).exists()


def test_pty_session(md_env, busybox):
    pexpect = pytest.importorskip("pexpect")
    import sys

    child = pexpect.spawn(sys.executable, ["-m", "minidock", "run", "-it", "--rm", busybox, "sh"],
                          env=md_env, dimensions=(30, 100), timeout=10)
    child.expect("# ")
    child.sendline("tty; stty size")
    child.expect("/dev/pts/0")
    child.expect("30 100")
    child.setwinsize(40, 120)
    child.sendline("stty size")
    child.expect("40 120")
    child.expect("# ")
    child.sendline("sleep 30")
    child.expect("sleep 30\r\n")
    time.sleep(0.5)  # the shell has left line editing and runs sleep in the foreground
    child.sendcontrol("c")  # a byte for the container's terminal, not a signal to minidock
    child.expect("# ")
    child.sendline("exit 3")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 3


def test_signal_forwarded_to_foreground_container(md_env, busybox):
    import subprocess
    import sys

    p = subprocess.Popen([sys.executable, "-m", "minidock", "run", "--rm", busybox, "sh", "-c",
                          "trap 'echo got int; exit 9' INT; echo ready; while :; do sleep 0.1; done"],
                         env=md_env, stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline() == "ready\n"
    p.send_signal(signal.SIGINT)
    out, _ = p.communicate(timeout=10)
    assert out == "got int\n" and p.returncode == 9
