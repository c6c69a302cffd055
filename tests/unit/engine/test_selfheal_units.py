"""Self-healing logic without root: the event log, restart policies, health-check rules."""

import json
import os
import threading
import time

import pytest

from minidock.engine import create, events, health, lifecycle
from minidock.errors import InvalidArgument


@pytest.fixture
def root(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIDOCK_ROOT", str(tmp_path))
    return tmp_path


# --- events --------------------------------------------------------------------------------------
def test_event_shape_is_dockers(root):
    rec = {"Id": "a" * 64, "Name": "/web", "Config": {"Image": "busybox", "Labels": {"tier": "x"}}}
    m = events.container_event(rec, "die", exitCode=3)
    assert list(m) == ["status", "id", "from", "Type", "Action", "Actor", "scope", "time", "timeNano"]
    assert m["status"] == m["Action"] == "die" and m["id"] == m["Actor"]["ID"] == "a" * 64
    assert m["from"] == "busybox" and m["scope"] == "local"
    assert m["Actor"]["Attributes"] == {"tier": "x", "image": "busybox", "name": "web", "exitCode": "3"}
    assert m["time"] == m["timeNano"] // 10**9
    n = events.emit("network", "connect", "n" * 64, {"container": "a" * 64, "name": "br", "type": "bridge"})
    assert "status" not in n and "id" not in n and n["Type"] == "network"
    i = events.emit("image", "tag", "sha256:" + "b" * 64, {"name": "busybox:v1"})
    assert list(i)[:2] == ["status", "id"] and "from" not in i
    lines = open(events.log_path()).read().splitlines()
    assert len(lines) == 3 and json.loads(lines[0]) == m
    assert lines[0].startswith('{"status":"die","id":')  # compact, like Go's encoder


def test_event_log_is_bounded_and_rotated(root, monkeypatch):
    monkeypatch.setenv("MINIDOCK_EVENTS_MAX_BYTES", "4096")
    for i in range(500):
        events.emit("volume", "create", f"v{i}", {"driver": "local"})
    cur, old = events.log_path(), events.log_path() + ".1"
    assert os.path.getsize(cur) <= 4096 and os.path.getsize(old) <= 4096
    ids = [m["Actor"]["ID"] for m in events.history()]
    assert ids[-1] == "v499" and len(ids) < 500  # the oldest ones went
    assert ids == [f"v{i}" for i in range(500 - len(ids), 500)]  # in order, nothing lost in between


def test_follow_reads_only_new_lines_across_rotation(root, monkeypatch):
    monkeypatch.setenv("MINIDOCK_EVENTS_MAX_BYTES", "4096")
    events.emit("volume", "create", "before", {})
    got, done = [], threading.Event()

    def reader():
        for m in events.follow(None, None, {"type": ["volume"]}, poll=0.01, stop=done.is_set):
            got.append(m["Actor"]["ID"])

    t = threading.Thread(target=reader)
    t.start()
    time.sleep(0.2)
    for i in range(100):  # ~7 rotations, at most two between two looks of the reader
        events.emit("volume", "create", f"v{i}", {})
        events.emit("network", "create", f"n{i}", {})
        if i % 5 == 4:
            time.sleep(0.05)
    deadline = time.monotonic() + 10
    while len(got) < 100 and time.monotonic() < deadline:
        time.sleep(0.05)
    done.set()
    t.join(5)
    assert got == [f"v{i}" for i in range(100)]


def test_since_until_and_filters(root):
    t0 = time.time_ns()
    events.emit("container", "start", "c1", {"name": "one", "image": "busybox"})
    events.emit("container", "health_status: healthy", "c1", {"name": "one", "image": "busybox"})
    events.emit("container", "start", "c2", {"name": "two", "image": "alpine"})
    t1 = time.time_ns()
    got = list(events.follow(t0, t1, {"container": ["one"]}))
    assert [m["Action"] for m in got] == ["start", "health_status: healthy"]
    got = list(events.follow(t0, t1, {"event": ["health_status"]}))
    assert len(got) == 1
    got = list(events.follow(t0, t1, {"event": ["start"], "image": ["alpine"]}))
    assert [m["Actor"]["ID"] for m in got] == ["c2"]
    assert list(events.follow(t1 + 1, t1 + 2, {})) == []


def test_time_and_duration_parsing():
    assert events.parse_duration("1m30s") == 90 * 10**9
    assert events.parse_duration("0.1ms") == 100_000
    assert events.parse_duration("1h") == 3600 * 10**9
    with pytest.raises(InvalidArgument, match='time: invalid duration "abc"'):
        events.parse_duration("abc")
    with pytest.raises(InvalidArgument):
        events.parse_duration("10")
    now = 2_000_000_000 * 10**9
    assert events.parse_time("10m", now) == now - 600 * 10**9
    assert events.parse_time("1700000000.5") == 1_700_000_000_500_000_000
    assert events.parse_time("2023-11-14T22:13:20Z") == 1_700_000_000 * 10**9
    assert events.parse_time("2023-11-14T23:13:20+01:00") == 1_700_000_000 * 10**9
    with pytest.raises(InvalidArgument):
        events.parse_time("yesterday")


# --- restart policies -----------------------------------------------------------------------------
def test_restart_policy_parsing_like_docker():
    assert create.parse_restart_policy(None) == {"Name": "no", "MaximumRetryCount": 0}
    assert create.parse_restart_policy("on-failure:5") == {"Name": "on-failure", "MaximumRetryCount": 5}
    assert create.parse_restart_policy("always")["Name"] == "always"
    for bad, msg in (("sometimes", "invalid restart policy 'sometimes'"),
                     ("on-failure:-1", "maximum retry count cannot be negative"),
                     ("on-failure:x", "maximum retry count must be an integer"),
                     ("always:3", "maximum retry count cannot be used with restart policy 'always'"),
                     ("a:b:c", "invalid restart policy format")):
        with pytest.raises(InvalidArgument) as e:
            create.parse_restart_policy(bad)
        assert e.value.message == msg


def test_backoff_doubles_caps_and_resets():
    b = lifecycle.Backoff()
    delays = [b.next(0.01) for _ in range(12)]
    assert delays[:5] == [0.1, 0.2, 0.4, 0.8, 1.6]
    assert delays[-1] == 60.0 and max(delays) == 60.0
    assert b.next(10.5) == 0.1  # ran 10 s: back to the start


def test_should_restart_rules():
    sr = lifecycle.should_restart
    always = {"Name": "always"}
    assert sr(always, 0, manually_stopped=False, count=100)
    assert not sr(always, 1, manually_stopped=True, count=0)
    assert sr({"Name": "unless-stopped"}, 0, manually_stopped=False, count=0)
    assert not sr({"Name": "no"}, 1, manually_stopped=False, count=0)
    of = {"Name": "on-failure", "MaximumRetryCount": 2}
    assert not sr(of, 0, manually_stopped=False, count=0)
    assert sr(of, 1, manually_stopped=False, count=1)
    assert not sr(of, 1, manually_stopped=False, count=2)
    assert sr({"Name": "on-failure", "MaximumRetryCount": 0}, 1, manually_stopped=False, count=999)


# --- health checks --------------------------------------------------------------------------------
def test_health_flags_and_messages():
    hc = health.from_flags(cmd="curl -f x", interval="1s", timeout="500ms", retries=2, start_period="3s",
                           start_interval=None, none=False, image_check=None)
    assert hc == {"Test": ["CMD-SHELL", "curl -f x"], "Interval": 10**9, "Timeout": 500_000_000,
                  "StartPeriod": 3 * 10**9, "Retries": 2}
    img = {"Test": ["CMD", "true"], "Interval": 5 * 10**9}
    assert health.from_flags(cmd=None, interval=None, timeout="2s", retries=None, start_period=None,
                             start_interval=None, none=False, image_check=img) == {
        "Test": ["CMD", "true"], "Interval": 5 * 10**9, "Timeout": 2 * 10**9}
    kw = dict(cmd=None, interval=None, timeout=None, retries=None, start_period=None,
              start_interval=None, none=False, image_check=None)
    assert health.from_flags(**kw) is None
    assert health.from_flags(**{**kw, "cmd": "true", "start_interval": "250ms"}) == {
        "Test": ["CMD-SHELL", "true"], "StartInterval": 250_000_000}
    assert health.from_flags(**{**kw, "none": True}) == {"Test": ["NONE"]}
    for change, msg in (({"interval": "0.1ms"}, "Interval in Healthcheck cannot be less than 1ms"),
                        ({"timeout": "-1s"}, "--health-timeout cannot be negative"),
                        ({"retries": -1}, "--health-retries cannot be negative"),
                        ({"interval": "abc"}, 'invalid argument "abc" for "--health-interval" flag: '
                                              'time: invalid duration "abc"'),
                        ({"none": True, "cmd": "true"}, "--no-healthcheck conflicts with --health-* options"),
                        ({"cmd": '["SHELL", "true"]'}, "Unknown healthcheck type 'SHELL' (expected 'CMD')")):
        with pytest.raises(InvalidArgument) as e:
            health.from_flags(**{**kw, **change})
        assert e.value.message == msg


def test_probe_command_forms():
    assert health.probe_command({"Test": ["CMD", "a", "b"]}) == ["a", "b"]
    assert health.probe_command({"Test": ["CMD-SHELL", "a b"]}) == ["/bin/sh", "-c", "a b"]
    assert health.probe_command({"Test": ["CMD-SHELL", "a"]}, ["/bin/ash", "-eo"]) == ["/bin/ash", "-eo", "a"]
    assert health.probe_command({"Test": ["NONE"]}) is None
    assert health.probe_command(None) is None


def test_health_state_machine_is_dockers():
    ok = health.ProbeResult(0, "ok", "s", "e")
    bad = health.ProbeResult(1, "bad", "s", "e")
    h = health.initial()
    h = health.apply(h, bad, retries=2, in_start_period=True)
    assert h["Status"] == "starting" and h["FailingStreak"] == 0  # start period: not counted
    h = health.apply(h, bad, retries=2, in_start_period=False)
    assert (h["Status"], h["FailingStreak"]) == ("starting", 1)
    h = health.apply(h, bad, retries=2, in_start_period=False)
    assert (h["Status"], h["FailingStreak"]) == ("unhealthy", 2)
    h = health.apply(h, ok, retries=2, in_start_period=False)
    assert (h["Status"], h["FailingStreak"]) == ("healthy", 0)
    for _ in range(6):
        h = health.apply(h, bad, retries=2, in_start_period=True)  # start period only while starting
    assert h["Status"] == "unhealthy" and len(h["Log"]) == 5
    assert h["Log"][-1] == {"Start": "s", "End": "e", "ExitCode": 1, "Output": "bad"}


def test_go_duration():
    assert [health.go_duration(n) for n in (30 * 10**9, 300_000_000, 1_500_000_000, 90 * 10**9,
                                             7200 * 10**9, 1_000_000)] == \
        ["30s", "300ms", "1.5s", "1m30s", "2h0m0s", "1ms"]


def test_checker_waits_start_interval_during_the_start_period(monkeypatch):
    """The first probes come every StartInterval while starting inside StartPeriod, then Interval."""
    rec = {"Id": "c" * 64, "Name": "/x", "Config": {"Image": "busybox", "Healthcheck": {
        "Test": ["CMD", "true"], "Interval": 10 * 10**9, "StartInterval": 10_000_000,
        "StartPeriod": 60 * 10**9}}}
    calls = []

    def probe(cid, command, timeout):
        calls.append(time.monotonic())
        return health.ProbeResult(1, "", "s", "e")  # failing: stays "starting" in the start period

    monkeypatch.setattr(health, "run_probe", probe)
    monkeypatch.setattr(health.containers, "lock", lambda cid: __import__("contextlib").nullcontext())
    monkeypatch.setattr(health.containers, "load_state", lambda cid: {"Running": True})
    monkeypatch.setattr(health.containers, "save_state", lambda cid, st: None)
    c = health.Checker(rec, time.monotonic())
    c.start()
    time.sleep(0.5)
    c.stop()
    c.join(5)
    assert len(calls) >= 5  # every 10 ms, not every 10 s
