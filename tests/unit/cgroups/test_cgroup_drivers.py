"""The v1 and v2 drivers against a fake cgroupfs in a temp dir, without root.

The fake behaves like the kernel where the drivers depend on it: mkdir fills a new cgroup with
its knob files (v1 cpuset files start EMPTY; v2 cgroup.controllers = the parent's
subtree_control), writes go only to files that exist, "+memory" lines add to subtree_control,
rmdir can answer EBUSY. What the real kernel does with the values is proven by
tests/integration/test_cgroups.py, on this v1 host and in the v2 VM (scripts/vm-test).
"""

from __future__ import annotations

import errno
import os
import shutil

import pytest

from minidock import kernel as k
from minidock.errors import KernelError
from minidock.runtime import cgroups
from minidock.runtime.cgroups import hierarchy, parse_mountinfo, probe, v1, v2

HYBRID = """\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw,nsdelegate
"""
COMBINED = """\
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime shared:9 - cgroup cgroup rw,cpu,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime shared:10 - cgroup cgroup rw,clone_children,cpuset
"""
UNIFIED = "30 23 0:26 / /sys/fs/cgroup rw,nosuid shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n"


def test_mountinfo_hybrid_separate_and_combined_hierarchies():
    m = parse_mountinfo(HYBRID)
    assert m["v2"] == "/sys/fs/cgroup/unified"
    assert "/sys/fs/cgroup/unified" in m["controllerless"]  # the v1 driver puts containers there too
    assert m["v1"] == {"cpu": "/sys/fs/cgroup/cpu", "cpuacct": "/sys/fs/cgroup/cpuacct",
                       "memory": "/sys/fs/cgroup/memory", "pids": "/sys/fs/cgroup/pids"}
    m = parse_mountinfo(COMBINED)
    assert m["v1"] == {"cpu": "/sys/fs/cgroup/cpu,cpuacct", "cpuacct": "/sys/fs/cgroup/cpu,cpuacct",
                       "cpuset": "/sys/fs/cgroup/cpuset"}
    assert parse_mountinfo(UNIFIED) == {"v2": "/sys/fs/cgroup", "v1": {}, "controllerless": []}


def test_probe_picks_the_version_that_holds_the_controllers():
    hybrid = parse_mountinfo(HYBRID)
    assert probe(hybrid, lambda root: set()) == 1  # this host: unified has no controllers
    assert probe(hybrid, lambda root: {"memory", "pids", "cpu"}) == 2  # controllers moved to v2
    assert probe(parse_mountinfo(UNIFIED), lambda root: {"memory", "pids"}) == 2
    assert probe({"v2": None, "v1": {}}, lambda root: set()) == 0


# --- a fake cgroupfs ------------------------------------------------------------------------------
V1_FILES = {
    "memory": {"memory.limit_in_bytes": "9223372036854771712", "memory.memsw.limit_in_bytes": "9223372036854771712",
               "memory.soft_limit_in_bytes": "9223372036854771712", "memory.usage_in_bytes": "0",
               "memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 0", "memory.stat": "",
               "memory.swappiness": "60"},
    "blkio": {"blkio.bfq.weight": "100", "blkio.bfq.weight_device": "", "blkio.throttle.io_service_bytes": "",
              **{f"blkio.throttle.{n}_device": "" for n in ("read_bps", "write_bps", "read_iops", "write_iops")}},
    "cpu": {"cpu.shares": "1024", "cpu.cfs_period_us": "100000", "cpu.cfs_quota_us": "-1"},
    "cpuacct": {"cpuacct.usage": "0"},
    "cpuset": {"cpuset.cpus": "", "cpuset.mems": ""},
    "pids": {"pids.max": "max", "pids.current": "0"},
    "freezer": {"freezer.state": "THAWED"},
}
V2_FILES = {"memory.max": "max", "memory.swap.max": "max", "memory.low": "0", "memory.current": "0",
            "memory.events": "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0", "memory.stat": "",
            "cpu.max": "max 100000", "cpu.weight": "100", "cpu.stat": "usage_usec 0",
            "pids.max": "max", "pids.current": "0", "io.weight": "default 100", "io.max": "", "cgroup.freeze": "0"}


class FakeCgroupfs(k.FakeBackend):
    """The kernel's recording fake, with write_file/mkdir/rmdir carried out over a temp dir tree."""

    def __init__(self, version: int):
        super().__init__()
        self.version = version
        self.busy: dict[str, int] = {}  # path -> how many rmdirs answer EBUSY first

    def _fill(self, path: str) -> None:
        open(os.path.join(path, "cgroup.procs"), "w").close()
        if self.version == 2:
            parent = os.path.dirname(path)
            with open(os.path.join(parent, "cgroup.subtree_control")) as f:
                enabled = f.read().split()
            files = {"cgroup.controllers": " ".join(enabled), "cgroup.subtree_control": ""}
            files.update({n: v for n, v in V2_FILES.items() if n.split(".")[0] in enabled + ["cgroup"]})
        else:
            files = V1_FILES[os.path.basename(self.root_of(path))]
        for name, value in files.items():
            with open(os.path.join(path, name), "w") as f:
                f.write(value)

    def root_of(self, path: str) -> str:
        while not os.path.exists(os.path.join(path, ".root")):
            path = os.path.dirname(path)
        return path

    def mkdir(self, path: str, mode: int) -> None:
        super().mkdir(path, mode)
        os.mkdir(path, mode)
        self._fill(path)

    def rmdir(self, path: str) -> None:
        super().rmdir(path)
        if self.busy.get(path):
            self.busy[path] -= 1
            raise OSError(errno.EBUSY, "busy")
        shutil.rmtree(path)

    def write_file(self, path: str, data: str) -> None:
        super().write_file(path, data)
        if not os.path.exists(path):
            raise OSError(errno.ENOENT, "no such knob")
        if path.endswith("cgroup.subtree_control"):
            have = open(os.path.join(os.path.dirname(path), "cgroup.controllers")).read().split()
            on = open(path).read().split()
            for word in data.split():
                if word[1:] not in have:
                    raise OSError(errno.ENOENT, "controller not available")
                on = [c for c in on if c != word[1:]] + ([word[1:]] if word[0] == "+" else [])
            data = " ".join(on)
        elif path.endswith("cgroup.procs"):
            data = open(path).read() + data + "\n"
        with open(path, "w") as f:
            f.write(data)

    def writes(self, suffix: str = "") -> list[tuple[str, str]]:
        return [(c.path, c.data) for c in self.of("write_file") if c.path.endswith(suffix)]


@pytest.fixture
def fake(tmp_path, monkeypatch, request):
    version = request.param
    fs = FakeCgroupfs(version)
    if version == 2:
        root = tmp_path / "unified"
        root.mkdir()
        (root / ".root").touch()
        (root / "cgroup.controllers").write_text("cpuset cpu io memory hugetlb pids rdma")
        (root / "cgroup.subtree_control").write_text("")
        (root / "cgroup.procs").write_text("1\n")
        m = {"v2": str(root), "v1": {}}
    else:
        m = {"v2": None, "v1": {}}
        for c in V1_FILES:
            d = tmp_path / c
            d.mkdir()
            (d / ".root").touch()
            for name, value in V1_FILES[c].items():
                (d / name).write_text(value)
            m["v1"][c] = str(d)
        (tmp_path / "cpuset" / "cpuset.cpus").write_text("0-1")
        (tmp_path / "cpuset" / "cpuset.mems").write_text("0")
    for mod in (cgroups, hierarchy, v1, v2):
        monkeypatch.setattr(mod, "mounts", lambda m=m: m)
        if hasattr(mod, "cgroup_version"):
            monkeypatch.setattr(mod, "cgroup_version", lambda: version)
    old = k.set_backend(fs)
    fs.m = m
    yield fs
    k.set_backend(old)


def read(path) -> str:
    with open(path) as f:
        return f.read().strip()


class Journal:
    def __init__(self, fs):
        self.fs = fs
        self.entries = []

    def record(self, kind, **data):
        self.entries.append((kind, data, len(self.fs.calls)))


@pytest.mark.parametrize("fake", [1], indirect=True)
def test_v1_create_copies_cpuset_and_writes_limits_in_each_hierarchy(fake):
    cg = cgroups.open_cgroup("minidock/test/abc")
    j = Journal(fake)
    cg.create({"memory": {"limit": 32 << 20, "swap": 64 << 20}, "cpu": {"quota": 50000, "period": 100000},
               "pids": {"limit": 20}}, journal=j)
    assert j.entries == [("cgroup", {"path": "minidock/test/abc"}, 0)]  # journaled before any mkdir
    mem = os.path.join(fake.m["v1"]["memory"], "minidock/test/abc")
    assert read(f"{mem}/memory.limit_in_bytes") == str(32 << 20)
    assert read(f"{mem}/memory.memsw.limit_in_bytes") == str(64 << 20)
    cpu = os.path.join(fake.m["v1"]["cpu"], "minidock/test/abc")
    assert (read(f"{cpu}/cpu.cfs_quota_us"), read(f"{cpu}/cpu.cfs_period_us")) == ("50000", "100000")
    assert read(os.path.join(fake.m["v1"]["pids"], "minidock/test/abc/pids.max")) == "20"
    for level in ("minidock", "minidock/test", "minidock/test/abc"):  # every new level inherits
        d = os.path.join(fake.m["v1"]["cpuset"], level)
        assert (read(f"{d}/cpuset.cpus"), read(f"{d}/cpuset.mems")) == ("0-1", "0")
    cg.add_proc(4242)
    assert all("4242" in read(f"{d}/cgroup.procs") for d in cg.dirs())
    assert cg.procs() == [4242] and len(cg.dirs()) == len(V1_FILES)


@pytest.mark.parametrize("fake", [1], indirect=True)
def test_v1_memsw_never_below_the_limit(fake):
    cg = cgroups.open_cgroup("minidock/m")
    cg.create({"memory": {"limit": 64 << 20, "swap": 128 << 20}})
    fake.calls.clear()
    cg.update({"memory": {"limit": 16 << 20, "swap": 32 << 20}})  # shrink: the limit first
    assert [os.path.basename(p) for p, _ in fake.writes()] == ["memory.limit_in_bytes",
                                                               "memory.memsw.limit_in_bytes"]
    fake.calls.clear()
    cg.update({"memory": {"limit": 256 << 20, "swap": 512 << 20}})  # grow: memsw first
    assert [os.path.basename(p) for p, _ in fake.writes()] == ["memory.memsw.limit_in_bytes",
                                                               "memory.limit_in_bytes"]
    assert cg.limits()["memory"] == 256 << 20


@pytest.mark.parametrize("fake", [1], indirect=True)
def test_v1_oom_stats_freeze(fake):
    cg = cgroups.open_cgroup("minidock/o")
    cg.create(None)
    mem = os.path.join(fake.m["v1"]["memory"], "minidock/o")
    assert cg.oom_killed() is False
    with open(f"{mem}/memory.oom_control", "w") as f:
        f.write("oom_kill_disable 0\nunder_oom 0\noom_kill 1\n")
    assert cg.oom_killed() is True
    with open(f"{mem}/memory.usage_in_bytes", "w") as f:
        f.write("12345678")
    st = cg.stats()
    assert st["memory_usage"] == 12345678 and st["memory_limit"] == 0  # "unlimited" reads as 0
    cg.freeze()
    assert cg.frozen()
    cg.thaw()
    assert not cg.frozen()


@pytest.mark.parametrize("fake", [2], indirect=True)
def test_v2_enables_controllers_down_to_the_parent_never_in_the_leaf(fake):
    cg = cgroups.open_cgroup("minidock/test/abc")
    cg.create({"memory": {"limit": 32 << 20}})
    root = fake.m["v2"]
    for level in ("", "minidock", "minidock/test"):
        assert {"memory", "pids", "cpu", "io", "cpuset"} <= set(read(f"{root}/{level}/cgroup.subtree_control").split())
    assert read(f"{root}/minidock/test/abc/cgroup.subtree_control") == ""  # the leaf holds the processes
    assert read(f"{root}/minidock/test/abc/memory.max") == str(32 << 20)
    # a parent that exists without controllers (made by hand, or by an older version) is fixed
    with open(f"{root}/minidock/test/cgroup.subtree_control", "w") as f:
        f.write("")
    cgroups.open_cgroup("minidock/test/def").create({"pids": {"limit": 7}})
    assert read(f"{root}/minidock/test/def/pids.max") == "7"


@pytest.mark.parametrize("fake", [2], indirect=True)
def test_v2_conversions_like_runc(fake):
    cg = cgroups.open_cgroup("minidock/c")
    cg.create({"memory": {"limit": 64 << 20, "swap": 192 << 20, "reservation": 32 << 20},
               "cpu": {"shares": 512, "quota": 50000, "period": 100000}, "pids": {"limit": -1},
               "blockIO": {"weight": 500}})
    leaf = os.path.join(fake.m["v2"], "minidock/c")
    assert read(f"{leaf}/memory.swap.max") == str(128 << 20)  # memory+swap minus memory
    assert read(f"{leaf}/memory.low") == str(32 << 20)
    assert read(f"{leaf}/cpu.weight") == str(1 + (512 - 2) * 9999 // 262142)
    assert read(f"{leaf}/cpu.max") == "50000 100000"
    assert read(f"{leaf}/pids.max") == "max"
    assert read(f"{leaf}/io.weight") == f"default {1 + (500 - 10) * 9999 // 990}"
    cg.update({"cpu": {"period": 200000}})  # update --cpu-period keeps the quota
    assert read(f"{leaf}/cpu.max") == "50000 200000"
    cg.update({"cpu": {"quota": -1}})
    assert read(f"{leaf}/cpu.max") == "max 200000"
    cg.update({"memory": {"limit": 64 << 20, "swap": -1}})
    assert read(f"{leaf}/memory.swap.max") == "max"


@pytest.mark.parametrize("fake", [2], indirect=True)
def test_v2_oom_kill_not_oom(fake):
    cg = cgroups.open_cgroup("minidock/o")
    cg.create(None)
    events = os.path.join(fake.m["v2"], "minidock/o/memory.events")
    with open(events, "w") as f:
        f.write("low 0\nhigh 0\nmax 12\noom 1\noom_kill 0\n")  # the limit was hit, nobody was killed
    assert cg.oom_killed() is False
    with open(events, "w") as f:
        f.write("low 0\nhigh 0\nmax 12\noom 1\noom_kill 1\n")
    assert cg.oom_killed() is True


@pytest.mark.parametrize("fake", [1, 2], indirect=True)
def test_destroy_retries_ebusy_then_gives_up(fake, monkeypatch):
    cg = cgroups.open_cgroup("minidock/busy")
    cg.create(None)
    leaf = cg.dirs()[-1]
    fake.busy[leaf] = 2  # the last processes are still exiting
    cg.destroy()
    assert not cg.exists()
    assert len([c for c in fake.of("rmdir") if c.path == leaf]) == 3
    cg.create(None)
    fake.busy[cg.dirs()[-1]] = 10 ** 6
    with pytest.raises(KernelError) as e:
        cg.destroy(timeout=0.05)
    assert e.value.errno == errno.EBUSY
    fake.busy.clear()
    cg.destroy()
    cg.destroy()  # idempotent: the journal's undo may run twice


@pytest.mark.parametrize("fake", [1, 2], indirect=True)
def test_explain_shows_the_shell_equivalent(fake):
    k.tracer.enabled, k.tracer.steps, k.tracer.aliases = True, [], {}
    try:
        cgroups.open_cgroup("minidock/x").create({"memory": {"limit": 33554432}})
        shells = [s.shell for s in k.tracer.steps]
    finally:
        k.tracer.enabled, k.tracer.steps, k.tracer.aliases = False, [], {}
    knob = "memory.max" if fake.version == 2 else "memory.limit_in_bytes"
    assert any(s.startswith("echo 33554432 > ") and s.endswith(f"$CGROUP/{knob}") for s in shells), shells
    assert any(s.startswith("mkdir ") for s in shells)


@pytest.mark.parametrize("fake", [1], indirect=True)
def test_v1_oci_memory_blkio_network_like_runc(fake):
    """swappiness, disableOOMKiller, per-device weights and throttles are written; what this
    kernel cannot hold (leaf weights without CFQ, net_cls without its hierarchy) is refused."""
    cg = cgroups.open_cgroup("minidock/b")
    cg.create({"memory": {"swappiness": 10, "disableOOMKiller": True},
               "blockIO": {"weightDevice": [{"major": 8, "minor": 0, "weight": 500}],
                           "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1048576}],
                           "throttleWriteIOPSDevice": [{"major": 8, "minor": 16, "rate": 100}]}})
    mem = os.path.join(fake.m["v1"]["memory"], "minidock/b")
    assert (read(f"{mem}/memory.swappiness"), read(f"{mem}/memory.oom_control")) == ("10", "1")
    blk = os.path.join(fake.m["v1"]["blkio"], "minidock/b")
    assert read(f"{blk}/blkio.bfq.weight_device") == "8:0 500"
    assert read(f"{blk}/blkio.throttle.read_bps_device") == "8:0 1048576"
    assert read(f"{blk}/blkio.throttle.write_iops_device") == "8:16 100"
    fake.calls.clear()
    with pytest.raises(cgroups.CgroupError, match="leaf_weight"):
        cg.update({"blockIO": {"leafWeight": 300}})
    with pytest.raises(cgroups.CgroupError, match="net_cls cgroup controller is not mounted"):
        cg.update({"network": {"classID": 1048577}})
    assert fake.writes() == []  # refused before anything was written


@pytest.mark.parametrize("fake", [2], indirect=True)
def test_v2_blkio_throttles_in_io_max(fake):
    cg = cgroups.open_cgroup("minidock/t")
    cg.create({"blockIO": {"throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1048576}],
                           "throttleWriteIOPSDevice": [{"major": 8, "minor": 0, "rate": 100}]}})
    assert [d for p, d in fake.writes("io.max")] == ["8:0 rbps=1048576", "8:0 wiops=100"]


def test_a_recorded_layout_spares_the_mountinfo_probe(tmp_path, monkeypatch):
    """state.json keeps the probe's result (hierarchy.layout()) from create; load() seeds it, so
    `minidock-runtime start`/`state`/`delete` open the cgroup without reading /proc/self/mountinfo."""
    import json

    from minidock.runtime import container
    from minidock.runtime.cgroups import hierarchy

    layout = {"version": 1, "mounts": {"v2": None, "v1": {"freezer": str(tmp_path / "freezer")},
                                       "controllerless": []}}
    (tmp_path / "freezer" / "p" / "c1").mkdir(parents=True)
    (tmp_path / "freezer" / "p" / "c1" / "freezer.state").write_text("FROZEN\n")
    (tmp_path / "r" / "c1").mkdir(parents=True)
    (tmp_path / "r" / "c1" / "state.json").write_text(json.dumps(
        {"id": "c1", "bundle": "/b", "pid": 0, "cgroup": "p/c1", "spec": {}, "cgroup_layout": layout}))
    monkeypatch.setattr(hierarchy, "_cache", {})
    monkeypatch.setattr("builtins.open", _no_mountinfo(open))
    c = container.load("c1", str(tmp_path / "r"))
    assert c.cgroup_layout == layout and hierarchy.mounts() == layout["mounts"] and hierarchy.cgroup_version() == 1
    assert c.cgroup().frozen()
    hierarchy.seed({"version": 2, "mounts": {}})  # a process that probed already keeps its own
    assert hierarchy.cgroup_version() == 1


def _no_mountinfo(real_open):
    def guarded(path, *a, **kw):
        assert "mountinfo" not in str(path), "read mountinfo"
        return real_open(path, *a, **kw)
    return guarded
