"""Resource limits enforced by the kernel, as a user sees them. Runs on this hybrid (v1) host and,
through scripts/vm-test, on a pure cgroup v2 kernel: nothing here knows which driver is used."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest

pytestmark = pytest.mark.cgroup

ALLOC_100MB = 'x=$(head -c 100000000 /dev/zero | tr "\\0" a); echo ${#x}'


def _cg(md, ref):
    from minidock.runtime.cgroups import open_cgroup

    info = json.loads(md("inspect", ref).stdout)[0]
    # inspect shows "" for the engine's default parent, as Docker does; the tests' parent is in the env
    parent = info["HostConfig"]["CgroupParent"] or os.environ.get("MINIDOCK_CGROUP_PARENT", "minidock")
    return open_cgroup(f"{parent}/{info['Id']}"), info


def _inspect(md, ref):
    return json.loads(md("inspect", ref).stdout)[0]


def test_memory_limit_oom_kill_is_137_and_flagged(md, busybox):
    r = md("run", "--name", "oom-pid1", "-m", "32m", busybox, "sh", "-c", ALLOC_100MB)
    assert r.returncode == 137, r.stderr
    st = _inspect(md, "oom-pid1")["State"]
    assert st["OOMKilled"] is True and st["ExitCode"] == 137
    assert md("rm", "oom-pid1").returncode == 0


def test_oom_flag_stays_set_when_a_child_was_killed(md, busybox):
    r = md("run", "--name", "oom-child", "-m", "32m", busybox, "sh", "-c", f"({ALLOC_100MB}); echo survived; exit 3")
    assert r.returncode == 3 and "survived" in r.stdout
    assert _inspect(md, "oom-child")["State"]["OOMKilled"] is True
    # and a container that never hit its limit is not flagged
    assert md("run", "--name", "no-oom", "-m", "32m", busybox, "true").returncode == 0
    assert _inspect(md, "no-oom")["State"]["OOMKilled"] is False
    md("rm", "oom-child", "no-oom")


def test_pids_limit_stops_a_fork_loop(md, busybox):
    r = md("run", "--rm", "--pids-limit", "20", busybox, "sh", "-c",
           "i=0; while [ $i -lt 100 ]; do sleep 30 & i=$((i+1)); echo $i; done")
    started = int(r.stdout.split()[-1])
    assert started == 19  # PID 1 (sh) + 19 sleeps = 20 tasks
    assert "can't fork" in r.stderr


def test_cpus_half_holds_a_busy_loop_near_50_percent(md, busybox):
    cid = md("run", "-d", "--cpus", "0.5", busybox, "sh", "-c", "while :; do :; done").stdout.strip()
    try:
        cg, _ = _cg(md, cid)
        time.sleep(0.5)
        a, t0 = cg.stats()["cpu_usage_ns"], time.monotonic()
        time.sleep(3)
        b, t1 = cg.stats()["cpu_usage_ns"], time.monotonic()
        share = (b - a) / ((t1 - t0) * 1e9)
        assert 0.35 <= share <= 0.65, share
    finally:
        md("rm", "-f", cid)


def test_update_changes_live_limits(md, busybox):
    cid = md("run", "-d", "-m", "32m", busybox, "sleep", "60").stdout.strip()
    try:
        cg, _ = _cg(md, cid)
        assert cg.limits()["memory"] == 32 << 20
        r = md("update", "-m", "64m", "--memory-swap", "128m", "--pids-limit", "50", "--cpus", "1.5", cid)
        assert r.returncode == 0, r.stderr
        lim = cg.limits()
        assert lim["memory"] == 64 << 20 and lim["pids"] == 50
        assert (lim["cpu_quota"], lim["cpu_period"]) == (150000, 100000)
        hc = _inspect(md, cid)["HostConfig"]
        assert hc["Memory"] == 64 << 20 and hc["PidsLimit"] == 50 and hc["NanoCpus"] == 1_500_000_000
        # the container sees the new limit in its own cgroup view
        r = md("exec", cid, "sh", "-c", "cat /sys/fs/cgroup/memory/memory.limit_in_bytes "
               "/sys/fs/cgroup/memory.max 2>/dev/null")
        assert str(64 << 20) in r.stdout
    finally:
        md("rm", "-f", cid)


def test_stats_shows_real_numbers(md, busybox):
    cid = md("run", "-d", "-m", "64m", "--name", "stats1", busybox, "sh", "-c",
             'x=$(head -c 20000000 /dev/zero | tr "\\0" a); sleep 60; true').stdout.strip()
    try:
        time.sleep(1.5)
        r = md("stats", "--no-stream", "--format", "json", "stats1")
        assert r.returncode == 0, r.stderr
        row = json.loads(r.stdout.splitlines()[0])
        assert row["Name"] == "stats1"
        assert row["memory_limit"] == 64 << 20
        assert 10_000_000 < row["memory_usage"] <= 64 << 20
        assert row["pids"] >= 1
        r = md("stats", "--no-stream", "stats1")
        assert "MEM USAGE / LIMIT" in r.stdout and "64MiB" in r.stdout
    finally:
        md("rm", "-f", cid)


def test_container_sees_its_cgroup_as_root(md, busybox):
    r = md("run", "--rm", "-m", "32m", busybox, "cat", "/proc/self/cgroup")
    assert r.returncode == 0
    paths = [line.split(":", 2)[2] for line in r.stdout.splitlines()]
    assert paths and all(p == "/" for p in paths), r.stdout


@pytest.mark.parametrize("flags, message", [
    (["-m", "1m"], "Minimum memory limit allowed is 6MB"),
    (["-m", "lots"], "invalid size"),
    (["-m", "20m", "--memory-swap", "10m"], "Minimum memoryswap limit should be larger than memory limit"),
    (["--cpus", "999"], "Range of CPUs is from 0.01 to"),
    (["--cpus", "0.5", "--cpu-period", "50000"], "Conflicting options: Nano CPUs and CPU Period"),
    (["--cpuset-cpus", "0-999"], "Requested CPUs are not available"),
    (["--blkio-weight", "5"], "Range of blkio weight is from 10 to 1000"),
])
def test_invalid_values_get_dockers_messages(md, busybox, flags, message):
    before = md("ps", "-aq").stdout
    r = md("run", "--rm", *flags, busybox, "true")
    assert r.returncode == 125 and message in r.stderr, r.stderr
    assert md("ps", "-aq").stdout == before  # nothing was created


def test_cgroup_removed_with_container_and_after_a_crash(md, busybox, state_root):
    cid = md("run", "-d", "-m", "32m", busybox, "sleep", "60").stdout.strip()
    cg, info = _cg(md, cid)
    assert cg.exists() and info["State"]["Pid"] in cg.procs()
    # the supervisor dies (kill -9): the next command notices, kills the rest, removes the cgroup
    os.kill(info["State"]["MonitorPid"], signal.SIGKILL)
    time.sleep(0.2)
    assert _inspect(md, cid)["State"]["Running"] is False
    assert not cg.exists()
    assert md("rm", cid).returncode == 0


def test_system_prune_collects_orphan_cgroups(md, busybox):
    from minidock import paths
    from minidock.runtime.cgroups import open_cgroup

    orphan = open_cgroup(f"{paths.cgroup_parent()}/{'f' * 64}")
    orphan.create({"pids": {"limit": 5}})
    # a cgroup whose process does not run on one of our rootfs belongs to someone else
    # (another state root sharing the parent): prune leaves it alone
    foreign = open_cgroup(f"{paths.cgroup_parent()}/{'e' * 64}")
    foreign.create(None)
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        foreign.add_proc(sleeper.pid)
        assert orphan.exists()
        r = md("system", "prune", "-f")
        assert r.returncode == 0 and "f" * 64 in r.stdout and "e" * 64 not in r.stdout
        assert not orphan.exists()
        assert foreign.exists() and sleeper.poll() is None
    finally:
        foreign.destroy()
        sleeper.wait()


def test_device_rules_stop_opening_host_devices(md, busybox):
    # Docker's default rules allow mknod of any node but opening only the standard ones: the
    # device cgroup (v1) or the eBPF device filter (v2) says EPERM. /dev/kmsg opened write-only
    # needs no capability, so only the device rules can refuse it.
    script = "mknod /tmp/kmsg c 1 11 && true > /tmp/kmsg && echo opened; true > /dev/null && echo null-ok"
    r = md("run", "--rm", busybox, "sh", "-c", script)
    assert "null-ok" in r.stdout and "opened" not in r.stdout
    assert "Operation not permitted" in r.stderr
    r = md("run", "--rm", "--privileged", busybox, "sh", "-c", script)  # no device rules at all
    assert "opened" in r.stdout and "null-ok" in r.stdout, r.stderr


RULE_SETS = [
    [{"allow": False, "access": "rwm"}, {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
     {"allow": True, "type": "c", "major": 1, "minor": 5, "access": "r"}],
    [{"allow": True, "access": "rwm"}, {"allow": False, "type": "c", "major": 1, "minor": -1, "access": "w"}],
    [{"allow": False, "access": "rwm"}, {"allow": True, "type": "c", "major": -1, "minor": -1, "access": "m"},
     {"allow": True, "type": "a", "major": 1, "minor": 7, "access": "rw"}],
]


@pytest.mark.parametrize("rules", RULE_SETS)
def test_device_filter_program_agrees_with_the_rules(rules, tmp_path):
    """The compiled eBPF program, attached to a real cgroup2 directory (this hybrid host has one at
    /sys/fs/cgroup/unified), decides each open/mknod as the rules say."""
    from minidock import kernel as k
    from minidock import paths
    from minidock.runtime.cgroups import devicefilter as df
    from minidock.runtime.cgroups import mounts

    v2 = mounts()["v2"]
    if not v2:
        pytest.skip("no cgroup2 mount")
    cg = os.path.join(v2, paths.cgroup_parent(), f"devtest-{os.getpid()}")
    os.makedirs(cg)
    try:
        k.attach_device_filter(cg, df.program(rules))
        probes = [("/dev/null", os.O_RDWR, "c", 1, 3, "rw"), ("/dev/zero", os.O_RDONLY, "c", 1, 5, "r"),
                  ("/dev/zero", os.O_RDWR, "c", 1, 5, "rw"), ("/dev/full", os.O_WRONLY, "c", 1, 7, "w"),
                  ("/dev/full", os.O_RDWR, "c", 1, 7, "rw"), ("/dev/urandom", os.O_RDONLY, "c", 1, 9, "r")]
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # in the cgroup, try each
            out = []
            try:
                with open(os.path.join(cg, "cgroup.procs"), "w") as f:
                    f.write(str(os.getpid()))
                for path, mode, *_ in probes:
                    try:
                        os.close(os.open(path, mode))
                        out.append("1")
                    except PermissionError:
                        out.append("0")
                try:
                    os.mknod(str(tmp_path / "node"), 0o600 | 0o020000, os.makedev(1, 7))
                    out.append("1")
                except PermissionError:
                    out.append("0")
            finally:
                os.write(w, "".join(out).encode())
                os._exit(0)
        os.close(w)
        os.waitpid(pid, 0)
        got = os.read(r, 100).decode()
        os.close(r)
        want = "".join("1" if df.allows(rules, t, mj, mn, acc) else "0" for _, _, t, mj, mn, acc in probes)
        want += "1" if df.allows(rules, "c", 1, 7, "m") else "0"
        assert got == want, df.describe(rules)
    finally:
        os.rmdir(cg)


def test_hugepage_limits_where_the_host_has_them():
    """linux.resources.hugepageLimits (the OCI runtime's): written to hugetlb.<size>.max (v2) or
    .limit_in_bytes (v1) where the controller exists, refused with a reason where it does not."""
    from minidock import paths
    from minidock.runtime.cgroups import CgroupError, controllers, open_cgroup
    from minidock.runtime.cgroups.base import hugepage_sizes

    size = (hugepage_sizes() or ["2MB"])[0]
    cg = open_cgroup(f"{paths.cgroup_parent()}/hugetlb-{os.getpid()}")
    try:
        if "hugetlb" not in controllers():  # this hybrid host: hugetlb is only in the empty cgroup2
            with pytest.raises(CgroupError, match="hugetlb cgroup controller is not available"):
                cg.create({"hugepageLimits": [{"pageSize": size, "limit": 4 << 21}]})
            return
        cg.create({"hugepageLimits": [{"pageSize": size, "limit": 4 << 21}]})
        d = [d for d in cg.dirs() if os.path.exists(os.path.join(d, f"hugetlb.{size}.max"))
             or os.path.exists(os.path.join(d, f"hugetlb.{size}.limit_in_bytes"))][0]
        name = f"hugetlb.{size}.max" if cg.version == 2 else f"hugetlb.{size}.limit_in_bytes"
        with open(os.path.join(d, name)) as f:
            assert int(f.read()) == 4 << 21
        with pytest.raises(CgroupError, match="page size '3MB' is not supported"):
            cg.update({"hugepageLimits": [{"pageSize": "3MB", "limit": 1}]})
    finally:
        cg.destroy()


def test_blkio_weight_written_where_the_kernel_has_the_knob(md, busybox):
    """--blkio-weight: v2 io.weight (converted to 1..10000) or io.bfq.weight, v1 blkio.weight or
    blkio.bfq.weight. Where no such file exists (this host's v1 blkio has neither: no BFQ/CFQ),
    Docker's warning is printed and the container still runs."""
    r = md("run", "-d", "--blkio-weight", "300", busybox, "sleep", "60")
    assert r.returncode == 0, r.stderr
    cid = r.stdout.strip()
    try:
        cg, _ = _cg(md, cid)
        knobs = {}
        for d in cg.dirs():
            for name in ("io.weight", "io.bfq.weight", "blkio.weight", "blkio.bfq.weight"):
                if os.path.exists(os.path.join(d, name)):
                    with open(os.path.join(d, name)) as f:
                        knobs[name] = f.read().split()
        if not knobs:
            assert "Block I/O weight" in r.stderr and "Weight discarded" in r.stderr
            return
        assert "Weight discarded" not in r.stderr
        if "io.bfq.weight" in knobs or "blkio.bfq.weight" in knobs:
            assert "300" in (knobs.get("io.bfq.weight") or knobs["blkio.bfq.weight"])
        elif "io.weight" in knobs:  # "default N": 1 + (300 - 10) * 9999 / 990
            assert knobs["io.weight"][:2] == ["default", str(1 + 290 * 9999 // 990)]
        else:
            assert knobs["blkio.weight"] == ["300"]
    finally:
        md("rm", "-f", cid)


def test_kernel_fork_into_cgroup_makes_the_child_in_the_cgroup2_dir():
    """kernel.fork_into_cgroup (clone3 with CLONE_INTO_CGROUP): the child's /proc/self/cgroup names
    the directory from its start. On this hybrid host the controller-less cgroup2 at
    /sys/fs/cgroup/unified proves the call itself; the v2 VM proves it with every controller."""
    from minidock import kernel as k
    from minidock.runtime.cgroups import mounts

    root = mounts()["v2"]
    if not root:
        pytest.skip("no cgroup2 hierarchy mounted")
    rel = f"{os.environ.get('MINIDOCK_CGROUP_PARENT', 'minidock')}/clone3-{os.getpid()}"
    d = os.path.join(root, rel)
    os.makedirs(d)
    try:
        r, w = os.pipe()
        pid = k.fork_into_cgroup("a probe", d)
        if pid == 0:
            os.close(r)
            with open("/proc/self/cgroup") as f:
                os.write(w, f.read().encode())
            os._exit(0)
        os.close(w)
        with os.fdopen(r) as f:
            lines = f.read().splitlines()
        assert os.waitpid(pid, 0)[1] == 0
        assert f"0::/{rel}" in lines, lines
    finally:
        os.rmdir(d)


def test_the_container_s_first_process_is_born_in_its_cgroup_on_v2(md, busybox):
    """cgroup v2: create makes the intermediate process with clone3(CLONE_INTO_CGROUP) in the
    container's cgroup (no cgroup.procs write, no migration: runc's first such write costs ~10 ms
    here, an RCU grace period). v1 (this hybrid host): a fork, then the pid written to each
    hierarchy's cgroup.procs. Either way the limits hold from the start (the other tests)."""
    from minidock.runtime.cgroups import cgroup_version

    r = md("run", "--rm", "--network", "none", "--explain=json", busybox, "true")
    assert r.returncode == 0, r.stderr
    steps = [json.loads(line) for line in r.stderr.splitlines() if line.startswith('{"n"')]
    clone3 = [s for s in steps if s["op"] == "clone3"]
    procs = [s for s in steps if s["op"] == "write" and "cgroup.procs" in s["detail"]]
    if cgroup_version() == 2:
        assert len(clone3) == 1 and not procs, [s["op"] for s in steps]
        assert "born in" in clone3[0]["detail"] and clone3[0]["shell"].startswith("(")
    else:
        assert procs and not clone3, [s["op"] for s in steps]
