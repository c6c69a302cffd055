"""Self-healing containers (issue 11): restart policies, health checks, events, wait, system boot.

Timing checks are tolerances (back-off at least its nominal delay, growing), never speed goals.
"""

import calendar
import json
import os
import signal
import subprocess
import sys
import time

import psutil
import pytest


def _name():
    return f"sh{os.urandom(4).hex()}"


@pytest.fixture
def ctr(md, busybox):
    made = []

    def run(*args, name=None, detach=True):
        name = name or _name()
        r = md("run", *(["-d"] if detach else []), "--name", name, *args)
        made.append(name)
        return name, r

    yield run
    for n in made:
        md("rm", "-f", n)


def _inspect(md, name):
    r = md("inspect", name)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)[0]


def _until(fn, timeout=30.0, every=0.1):
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v:
            return v
        if time.monotonic() > deadline:
            return v
        time.sleep(every)


def _ts(s: str) -> float:
    return calendar.timegm(time.strptime(s[:19], "%Y-%m-%dT%H:%M:%S")) + float("0." + s[20:29])


def _events(md, *filters, since="5m"):
    r = md("events", "--since", since, "--until", "0s", "--format", "{{json .}}",
           *[x for f in filters for x in ("--filter", f)])
    assert r.returncode == 0, r.stderr
    return [json.loads(line) for line in r.stdout.splitlines()]


# --- restart policies -----------------------------------------------------------------------------
def test_on_failure_max_retries_count_logs_and_backoff(md, ctr):
    name, r = ctr("--restart", "on-failure:3", "busybox", "sh", "-c", "echo run; exit 3")
    assert r.returncode == 0, r.stderr
    info = _until(lambda: (lambda i: i if i["State"]["Status"] == "exited" and i["RestartCount"] == 3
                           else None)(_inspect(md, name)))
    assert info, _inspect(md, name)
    assert info["State"]["ExitCode"] == 3 and info["HostConfig"]["RestartPolicy"] == {
        "Name": "on-failure", "MaximumRetryCount": 3}
    time.sleep(0.5)
    assert _inspect(md, name)["RestartCount"] == 3  # and no more
    assert md("logs", name).stdout == "run\n" * 4  # one log, continued by every restart
    evs = _events(md, f"container={name}")
    acts = [e["Action"] for e in evs]
    assert acts == ["create"] + ["start", "die"] * 4, acts
    assert all(e["Actor"]["Attributes"]["exitCode"] == "3" for e in evs if e["Action"] == "die")
    # Docker's back-off: 100 ms, 200 ms, 400 ms between a die and the next start (tolerance: at
    # least the delay, and each longer than the one before; no upper bound on a busy machine)
    t = [e["timeNano"] / 1e9 for e in evs]
    gaps = [t[i + 1] - t[i] for i in range(2, len(t) - 1, 2)]
    assert len(gaps) == 3
    for g, nominal in zip(gaps, (0.1, 0.2, 0.4)):
        assert g >= nominal * 0.95, gaps  # (a lower bound only: a busy machine adds start time)


def test_on_failure_does_not_restart_a_clean_exit(md, ctr):
    name, _ = ctr("--restart", "on-failure", "busybox", "true")
    assert md("wait", name).stdout.strip() == "0"
    time.sleep(0.5)
    i = _inspect(md, name)
    assert i["RestartCount"] == 0 and i["State"]["Status"] == "exited"


def test_always_restarts_keeps_identity_and_stop_ends_the_loop(md, ctr):
    name, r = ctr("--restart", "always", "busybox", "sh", "-c",
                  "echo x >> /count; wc -l < /count; sleep 0.3; exit 1")
    cid = r.stdout.strip()
    info = _until(lambda: (lambda i: i if i["RestartCount"] >= 2 else None)(_inspect(md, name)))
    assert info and info["Id"] == cid and info["Name"] == "/" + name
    # the writable layer is kept: the file grows by one line per run, the log goes on
    lines = _until(lambda: (lambda ls: ls if len(ls) >= 3 else None)(md("logs", name).stdout.split()))
    assert lines and lines[:3] == ["1", "2", "3"], lines
    ps = _until(lambda: "Restarting (1)" in (s := md("ps", "--filter", f"name={name}").stdout) and s)
    assert ps and " ago" in ps
    restarting = _until(lambda: (lambda s: s if s["Restarting"] else None)(_inspect(md, name)["State"]),
                        every=0.02)
    assert restarting and restarting["Running"] is True and restarting["Pid"] == 0
    assert restarting["Status"] == "restarting" and restarting["ExitCode"] == 1
    assert md("stop", "-t", "1", name).returncode == 0
    st = _inspect(md, name)
    assert st["State"]["Status"] == "exited" and not st["State"]["Restarting"]
    count = st["RestartCount"]
    time.sleep(1.5)
    st = _inspect(md, name)
    assert st["State"]["Status"] == "exited" and st["RestartCount"] == count  # no restart after stop
    # start by the user: runs again, and the policy is back in force
    assert md("start", name).returncode == 0
    assert _until(lambda: _inspect(md, name)["RestartCount"] > count)


def test_user_kill_never_restarts(md, ctr):
    for policy in ("always", "unless-stopped", "on-failure"):
        name, _ = ctr("--restart", policy, "busybox", "sleep", "300")
        assert md("kill", name).returncode == 0
        st = _until(lambda n=name: (lambda s: s if s["State"]["Status"] == "exited" else None)(_inspect(md, n)))
        assert st and st["State"]["ExitCode"] == 137
        time.sleep(0.5)
        st = _inspect(md, name)
        assert st["State"]["Status"] == "exited" and st["RestartCount"] == 0, policy


def test_crash_is_restarted_with_a_new_process(md, ctr):
    name, _ = ctr("--restart", "unless-stopped", "busybox", "sleep", "300")
    pid = _inspect(md, name)["State"]["Pid"]
    os.kill(pid, signal.SIGKILL)  # not the user's kill: the container crashed
    st = _until(lambda: (lambda s: s if s["State"]["Running"] and s["State"]["Pid"] not in (0, pid)
                         else None)(_inspect(md, name)))
    assert st and st["RestartCount"] == 1 and st["State"]["Status"] == "running"


def test_rm_force_ends_the_loop_without_leftovers(md, ctr):
    name, r = ctr("--restart", "always", "busybox", "sh", "-c", "exit 2")
    cid = r.stdout.strip()
    assert _until(lambda: _inspect(md, name)["RestartCount"] >= 3)
    assert md("rm", name).returncode != 0  # restarting counts as running
    assert md("rm", "-f", name).returncode == 0
    assert md("inspect", name).returncode != 0
    time.sleep(1)
    assert md("inspect", name).returncode != 0  # nothing brought it back
    leftovers = [p for p in psutil.process_iter(["cmdline"]) if cid in " ".join(p.info["cmdline"] or [])]
    assert leftovers == []


def test_bad_policies_are_refused_and_nothing_is_created(md, busybox):
    before = md("ps", "-aq").stdout
    for args, msg in ((["--restart", "sometimes"], "invalid restart policy 'sometimes'"),
                      (["--restart", "on-failure:-1"], "maximum retry count cannot be negative"),
                      (["--restart", "always:2"], "maximum retry count cannot be used with restart policy 'always'"),
                      (["--rm", "--restart", "always"], "Conflicting options: --restart and --rm"),
                      (["--health-interval", "0.1ms", "--health-cmd", "true"],
                       "Interval in Healthcheck cannot be less than 1ms"),
                      (["--health-cmd", '["SHELL", "true"]'], "Unknown healthcheck type 'SHELL'"),
                      (["--health-timeout", "5"], 'time: missing unit in duration "5"'),
                      (["--no-healthcheck", "--health-cmd", "true"],
                       "--no-healthcheck conflicts with --health-* options"),
                      (["--health-on-failure", "explode", "--health-cmd", "true"], "invalid on failure action")):
        for verb in ("run", "create"):
            r = md(verb, *args, busybox, "true")
            assert r.returncode == 125 and msg in r.stderr, (args, r.stderr)
    assert md("ps", "-aq").stdout == before


def test_update_restart_policy(md, ctr):
    name, _ = ctr("busybox", "sh", "-c", "sleep 0.5; exit 4")
    assert md("update", "--restart", "on-failure:2", name).returncode == 0
    assert _inspect(md, name)["HostConfig"]["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 2}
    st = _until(lambda: (lambda s: s if s["State"]["Status"] == "exited" and s["RestartCount"] == 2
                         else None)(_inspect(md, name)))
    assert st, _inspect(md, name)
    r = md("update", "--restart", "bogus", name)
    assert r.returncode != 0 and "invalid restart policy 'bogus'" in r.stderr


def test_foreground_run_hands_the_restart_to_a_monitor(md, ctr):
    name, r = ctr("--restart", "on-failure:1", "busybox", "sh", "-c", "echo hi; exit 5", detach=False)
    assert r.returncode == 5 and r.stdout == "hi\n"
    st = _until(lambda: (lambda s: s if s["RestartCount"] == 1 and s["State"]["Status"] == "exited"
                         else None)(_inspect(md, name)))
    assert st, _inspect(md, name)
    assert md("logs", name).stdout == "hi\nhi\n"


def test_killed_monitor_is_noticed(md, ctr):
    plain, _ = ctr("busybox", "sleep", "300")
    healing, _ = ctr("--restart", "always", "busybox", "sleep", "300")
    old = {n: _inspect(md, n)["State"] for n in (plain, healing)}
    for n in (plain, healing):
        os.kill(old[n]["MonitorPid"], signal.SIGKILL)
    # the next command notices: plain is recorded exited (its process killed: no orphan),
    # healing is started again under a new monitor
    ps = md("ps", "-a").stdout
    assert plain in ps and healing in ps
    st = _inspect(md, plain)["State"]
    assert st["Status"] == "exited" and st["ExitCode"] == 137 and "supervisor" in st["Error"]
    assert not psutil.pid_exists(old[plain]["Pid"]) or psutil.Process(old[plain]["Pid"]).status() == "zombie"
    info = _until(lambda: (lambda i: i if i["State"]["Status"] == "running" else None)(_inspect(md, healing)))
    assert info and info["RestartCount"] == 1
    assert info["State"]["MonitorPid"] != old[healing]["MonitorPid"]
    assert info["State"]["Pid"] != old[healing]["Pid"]
    assert not psutil.pid_exists(old[healing]["Pid"]) or \
        psutil.Process(old[healing]["Pid"]).status() == "zombie"


def test_many_failures_stay_bounded(md, ctr, md_env):
    """A container failing over and over: back-off bounded restarts, a capped event log, and a
    monitor that does not grow (RSS after 10 restarts vs after 40; back-off cap lowered to 50 ms
    for the test through MINIDOCK_RESTART_MAX_DELAY)."""
    env = {"MINIDOCK_RESTART_MAX_DELAY": "0.05", "MINIDOCK_EVENTS_MAX_BYTES": "65536"}
    name = _name()
    r = md("run", "-d", "--name", name, "--restart", "always", "busybox", "sh", "-c",
           "echo failing; exit 1", env=env)
    assert r.returncode == 0, r.stderr
    root = md_env["MINIDOCK_ROOT"]
    ev = os.path.join(root, "events", "events.log")
    # the session's log may already have rotated (at the default 1 MiB) before this test
    old = os.stat(ev + ".1").st_mtime_ns if os.path.exists(ev + ".1") else None
    try:
        assert _until(lambda: _inspect(md, name)["RestartCount"] >= 10, timeout=60)
        mon = psutil.Process(_inspect(md, name)["State"]["MonitorPid"])
        rss10 = mon.memory_info().rss
        assert _until(lambda: _inspect(md, name)["RestartCount"] >= 40, timeout=120)
        rss40 = mon.memory_info().rss
        assert rss40 - rss10 < 2 * 1024 * 1024, (rss10, rss40)
        assert os.path.getsize(ev) <= 65536
        if os.path.exists(ev + ".1") and os.stat(ev + ".1").st_mtime_ns != old:  # rotated during the test
            assert os.path.getsize(ev + ".1") <= 65536
    finally:
        md("rm", "-f", name)


# --- wait -----------------------------------------------------------------------------------------
def test_wait_conditions(md, ctr, md_env):
    name, _ = ctr("busybox", "sh", "-c", "exit 0")
    assert md("wait", name).stdout.strip() == "0"
    assert md("wait", "--condition", "not-running", name).stdout.strip() == "0"  # already stopped
    cmd = [sys.executable, "-m", "minidock", "wait", "--condition", "next-exit", name]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=md_env)
    time.sleep(1)
    assert p.poll() is None  # a stopped container: waits for its next exit
    md("start", name)
    out, _ = p.communicate(timeout=30)
    assert out.strip() == "0"
    other, _ = ctr("busybox", "sh", "-c", "sleep 1; exit 6")
    p = subprocess.Popen([sys.executable, "-m", "minidock", "wait", "--condition", "removed", other],
                         stdout=subprocess.PIPE, text=True, env=md_env)
    time.sleep(2)
    assert p.poll() is None  # exited, not removed
    md("rm", other)
    out, _ = p.communicate(timeout=30)
    assert out.strip() == "6"
    r = md("wait", "--condition", "sometime", name)
    assert r.returncode != 0


# --- health checks --------------------------------------------------------------------------------
def test_health_transitions_log_ps_and_events(md, ctr):
    name, r = ctr("--health-cmd", "cat /tmp/health", "--health-interval", "300ms", "--health-retries", "2",
                  "--health-start-period", "30s", "busybox", "sh", "-c", "sleep 1; echo ok > /tmp/health; sleep 300")
    assert r.returncode == 0, r.stderr
    info = _inspect(md, name)
    assert info["Config"]["Healthcheck"] == {"Test": ["CMD-SHELL", "cat /tmp/health"],
                                             "Interval": 300_000_000, "Retries": 2,
                                             "StartPeriod": 30_000_000_000}
    assert info["State"]["Health"]["Status"] == "starting"
    assert "(health: starting)" in md("ps", "--filter", f"name={name}").stdout
    assert name in md("ps", "--filter", "health=starting").stdout
    h = _until(lambda: (lambda h: h if h["Status"] == "healthy" else None)(_inspect(md, name)["State"]["Health"]))
    assert h and h["FailingStreak"] == 0 and h["Log"][-1]["Output"] == "ok\n" and h["Log"][-1]["ExitCode"] == 0
    assert set(h["Log"][-1]) == {"Start", "End", "ExitCode", "Output"}
    assert "(healthy)" in md("ps", "--filter", f"name={name}").stdout
    assert name in md("ps", "--filter", "health=healthy").stdout
    assert name not in md("ps", "--filter", "health=unhealthy").stdout
    md("exec", name, "rm", "/tmp/health")
    h = _until(lambda: (lambda h: h if h["Status"] == "unhealthy" else None)(_inspect(md, name)["State"]["Health"]))
    assert h and h["FailingStreak"] >= 2 and h["Log"][-1]["ExitCode"] == 1
    assert "No such file or directory" in h["Log"][-1]["Output"]
    assert len(h["Log"]) <= 5
    assert name in md("ps", "--filter", "health=unhealthy").stdout
    assert "(unhealthy)" in md("ps", "--filter", f"name={name}").stdout
    md("exec", name, "sh", "-c", "echo back > /tmp/health")
    h = _until(lambda: (lambda h: h if h["Status"] == "healthy" else None)(_inspect(md, name)["State"]["Health"]))
    assert h and h["Log"][-1]["Output"] == "back\n"
    acts = [e["Action"] for e in _events(md, f"container={name}", "event=health_status")]
    assert acts == ["health_status: healthy", "health_status: unhealthy", "health_status: healthy"]
    assert md("ps", "--filter", "health=none", "--filter", f"name={name}").stdout.count(name) == 0


def test_hung_probe_is_killed_at_its_timeout(md, ctr):
    marker = f"sleep 3{int.from_bytes(os.urandom(3), 'big'):08d}"  # a unique, valid duration
    name, _ = ctr("--health-cmd", f"{marker}; true", "--health-interval", "200ms", "--health-timeout",
                  "400ms", "--health-retries", "2", "busybox", "sleep", "300")
    h = _until(lambda: (lambda h: h if h["Status"] == "unhealthy" else None)(_inspect(md, name)["State"]["Health"]))
    assert h and h["Log"][-1]["ExitCode"] == -1
    assert h["Log"][-1]["Output"] == "Health check exceeded timeout (400ms)"
    md("stop", "-t", "1", name)
    time.sleep(0.5)
    hung = [p for p in psutil.process_iter(["cmdline"]) if marker in " ".join(p.info["cmdline"] or [])]
    assert hung == []  # the probe's shell and its sleep child: both killed and reaped


def test_cmd_form_and_health_on_failure_restart(md, ctr):
    name, _ = ctr("--health-cmd", '["CMD", "test", "-e", "/tmp/alive"]', "--health-interval", "200ms",
                  "--health-retries", "1", "--health-on-failure", "restart",
                  "busybox", "sh", "-c", "touch /tmp/alive; sleep 1; rm /tmp/alive; sleep 300")
    info = _inspect(md, name)
    assert info["Config"]["Healthcheck"]["Test"] == ["CMD", "test", "-e", "/tmp/alive"]
    st = _until(lambda: (lambda i: i if i["RestartCount"] >= 1 else None)(_inspect(md, name)))
    assert st and st["HostConfig"]["RestartPolicy"]["Name"] == "no"  # restarted by the health action
    # (the count is raised before the restart's start, as Docker does: wait for its event)
    acts = _until(lambda: (lambda a: a if a.count("start") >= 2 else None)(
        [e["Action"] for e in _events(md, f"container={name}")]))
    assert acts and "health_status: unhealthy" in acts


def test_health_on_failure_kill_follows_the_restart_policy(md, ctr):
    name, _ = ctr("--health-cmd", "false", "--health-interval", "200ms", "--health-retries", "1",
                  "--health-on-failure", "kill", "busybox", "sleep", "300")
    st = _until(lambda: (lambda s: s if s["State"]["Status"] == "exited" else None)(_inspect(md, name)))
    assert st and st["State"]["ExitCode"] == 137 and st["RestartCount"] == 0


def test_image_healthcheck_and_no_healthcheck(md, ctr, busybox):
    src, _ = ctr("--health-cmd", "true", "--health-interval", "200ms", "busybox", "sleep", "300")
    tag = f"healthy-{os.urandom(3).hex()}"
    r = md("commit", src, tag)
    assert r.returncode == 0, r.stderr
    try:
        name, _ = ctr(tag, "sleep", "300")
        assert _inspect(md, name)["Config"]["Healthcheck"]["Test"] == ["CMD-SHELL", "true"]
        assert _until(lambda: _inspect(md, name)["State"].get("Health", {}).get("Status") == "healthy")
        off, _ = ctr("--no-healthcheck", tag, "sleep", "300")
        i = _inspect(md, off)
        assert i["Config"]["Healthcheck"] == {"Test": ["NONE"]} and "Health" not in i["State"]
        assert "(health" not in md("ps", "--filter", f"name={off}").stdout
    finally:
        for n in list(md("ps", "-aq", "--filter", f"ancestor={tag}").stdout.split()):
            md("rm", "-f", n)
        md("rmi", "-f", tag)


# --- events ---------------------------------------------------------------------------------------
def test_events_follow_streams_live(md, busybox, md_env):
    name = _name()
    p = subprocess.Popen([sys.executable, "-m", "minidock", "events", "--filter", f"container={name}",
                          "--filter", "type=container", "--format", "{{json .}}"],
                         stdout=subprocess.PIPE, text=True, env=md_env)
    try:
        time.sleep(1.5)
        assert md("run", "--name", name, busybox, "sh", "-c", "exit 2").returncode == 2
        md("rm", name)
        got = []
        while len(got) < 5:
            line = p.stdout.readline()
            if not line:
                break
            got.append(json.loads(line)["Action"])
        assert got == ["create", "attach", "start", "die", "destroy"]  # a foreground run attaches (Docker's)
    finally:
        p.terminate()
        p.wait(10)


def test_events_default_format_and_filters(md, ctr):
    name, r = ctr("busybox", "true")
    md("wait", name)
    out = md("events", "--since", "1m", "--until", "0s", "--filter", f"container={name}").stdout
    first = out.splitlines()[0]
    assert f" container create {r.stdout.strip()} (image=busybox, name={name})" in first
    assert first[:4].isdigit() and first[19] == "."
    assert md("events", "--filter", "bogus=1", "--until", "0s").returncode == 125
    assert "Invalid filter 'bogus'" in md("events", "--filter", "bogus=1", "--until", "0s").stderr


# --- system boot ----------------------------------------------------------------------------------
def test_system_boot_brings_back_the_right_containers(md, ctr):
    """As after a host reboot: every monitor and container process killed, then `system boot`."""
    made = {}
    for key, args in (("always", ["--restart", "always"]), ("unless", ["--restart", "unless-stopped"]),
                      ("onfail", ["--restart", "on-failure:3"]), ("plain", []),
                      ("always_stopped", ["--restart", "always"]),
                      ("unless_stopped", ["--restart", "unless-stopped"])):
        made[key], r = ctr(*args, "busybox", "sleep", "300")
        assert r.returncode == 0, r.stderr
    for key in ("always_stopped", "unless_stopped"):
        assert md("stop", "-t", "0", made[key]).returncode == 0
    old = {k: _inspect(md, n)["State"] for k, n in made.items()}
    for st in old.values():  # the "reboot": monitors first (or they would restart), then containers
        if st.get("MonitorPid"):
            os.kill(st["MonitorPid"], signal.SIGKILL)
    for st in old.values():
        if st.get("Pid"):
            os.kill(st["Pid"], signal.SIGKILL)
    time.sleep(0.3)
    r = md("system", "boot")
    assert r.returncode == 0, r.stderr
    booted = {line.split("\t")[0] for line in r.stdout.splitlines()}
    assert booted == {made[k] for k in ("always", "unless", "onfail", "always_stopped")}, r.stdout
    for key in ("always", "unless", "onfail", "always_stopped"):
        st = _until(lambda n=made[key]: (lambda s: s if s["Status"] == "running" else None)(
            _inspect(md, n)["State"]))
        assert st and st["Pid"] != old[key]["Pid"] and st["MonitorPid"] != old[key].get("MonitorPid"), key
    assert _inspect(md, made["plain"])["State"]["Status"] == "exited"
    assert _inspect(md, made["unless_stopped"])["State"]["Status"] == "exited"
    # a second boot changes nothing
    assert md("system", "boot").stdout == ""


# --- identity on the network -----------------------------------------------------------------------
@pytest.fixture
def bridged(md_env):
    """md() inside a throwaway network namespace, the default bridge as the default network."""
    import uuid

    ns = f"mdheal-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True)
    env = dict(md_env, MINIDOCK_DEFAULT_NETWORK="bridge")

    def run(*args, timeout=60):
        return subprocess.run(["nsenter", f"--net=/run/netns/{ns}", sys.executable, "-m", "minidock",
                               *map(str, args)], capture_output=True, text=True, timeout=timeout, env=env)

    made = []
    run.made = made
    yield run
    for n in made:
        run("rm", "-f", n)
    run("system", "prune", "-f", timeout=120)
    subprocess.run(["ip", "netns", "del", ns], check=True)


def test_restart_keeps_the_network_address(bridged, busybox):
    first, second, later = _name(), _name(), _name()
    bridged.made += [first, second, later]
    assert bridged("run", "-d", "--name", first, busybox, "sleep", "300").returncode == 0
    r = bridged("run", "-d", "--name", second, "--restart", "always", busybox, "sh", "-c",
                "ip -4 -o addr show eth0 | awk '{print $4}'; sleep 1; exit 1")
    assert r.returncode == 0, r.stderr
    assert bridged("rm", "-f", first).returncode == 0  # a lower address is free now
    assert _until(lambda: len(bridged("logs", second).stdout.split()) >= 3)
    addrs = bridged("logs", second).stdout.split()
    assert len(set(addrs)) == 1, addrs  # every restart asked for, and got, its address again
    r = bridged("run", "-d", "--name", later, busybox, "sleep", "300")
    assert r.returncode == 0, r.stderr
    ip_later = bridged("inspect", "-f", "{{.NetworkSettings.IPAddress}}", later).stdout.strip()
    assert ip_later and ip_later + "/" not in addrs[0] + "/"


def test_oom_and_rename_events(md, ctr):
    name, _ = ctr("-m", "16m", "busybox", "sh", "-c", 'x=$(head -c 100000000 /dev/zero | tr "\\0" a)')
    st = _until(lambda: (lambda s: s if s["Status"] == "exited" else None)(_inspect(md, name)["State"]))
    if not (st and st["OOMKilled"]):
        pytest.skip("no memory controller here: the container was not OOM-killed")
    new = name + "x"
    assert md("rename", name, new).returncode == 0
    evs = _events(md, f"container={new}")
    acts = [e["Action"] for e in evs]
    assert acts[-3:] == ["oom", "die", "rename"], acts
    assert evs[-2]["Actor"]["Attributes"]["exitCode"] == "137"
    assert evs[-1]["Actor"]["Attributes"]["oldName"] == "/" + name
    md("rm", "-f", new)
