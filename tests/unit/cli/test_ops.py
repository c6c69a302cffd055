"""Time/duration parsing as Docker's filters and logs take them, prune filters, detach keys."""

import pytest

from minidock.engine import ops, reattach
from minidock.errors import InvalidArgument

NOW = 1_700_000_000.0


@pytest.mark.parametrize("text,want", [
    ("1700000000", 1_700_000_000.0),
    ("1699999999.5", 1_699_999_999.5),
    ("10m", NOW - 600),
    ("1h30m", NOW - 5400),
    ("1.5h", NOW - 5400),
    ("300ms", NOW - 0.3),
    ("2023-11-14T22:13:20Z", 1_700_000_000.0),
    ("2023-11-14T23:13:20+01:00", 1_700_000_000.0),
    ("2023-11-14", 1_699_920_000.0),
])
def test_parse_time(text, want):
    assert ops.parse_time(text, now=NOW) == pytest.approx(want)


def test_parse_time_refuses_garbage():
    with pytest.raises(InvalidArgument, match="failed to parse value as time or duration"):
        ops.parse_time("yesterday")


def test_prune_filter():
    f = ops.prune_filter(["until=2023-11-14T22:13:20Z", "label=a"])
    assert f(NOW - 1, {"a": "x"}) and not f(NOW + 1, {"a": "x"}) and not f(NOW - 1, {})
    f = ops.prune_filter(["label!=keep=yes"])
    assert f(None, {"keep": "no"}) and not f(None, {"keep": "yes"}) and f(None, {})
    with pytest.raises(InvalidArgument):
        ops.prune_filter(["dangling=true"])


def test_detach_keys():
    assert reattach.parse_detach_keys("ctrl-p,ctrl-q") == b"\x10\x11"
    assert reattach.parse_detach_keys("ctrl-@,a,ctrl-[") == b"\x00a\x1b"
    for bad in ("", "ctrl-", "ctrl-pp", "shift-a"):
        with pytest.raises(InvalidArgument, match="Invalid detach keys"):
            reattach.parse_detach_keys(bad)


def test_hostopts_parsing():
    from minidock.engine import hostopts as ho

    assert ho.parse_device("/dev/fuse") == {"PathOnHost": "/dev/fuse", "PathInContainer": "/dev/fuse",
                                            "CgroupPermissions": "rwm"}
    assert ho.parse_device("/dev/sda:/dev/xvda:r")["PathInContainer"] == "/dev/xvda"
    assert ho.parse_device("/dev/sda:r")["CgroupPermissions"] == "r"
    assert ho.parse_cgroup_rule("c 1:* rw") == {"allow": True, "type": "c", "major": 1, "minor": None,
                                                "access": "rw"}
    for bad in ("x 1:3 rwm", "c 1 rwm", "c 1:3 rwx"):
        with pytest.raises(InvalidArgument, match="invalid device cgroup format"):
            ho.parse_cgroup_rule(bad)
    assert ho.parse_size("64m", "--shm-size") == 64 << 20 and ho.parse_size("1g", "--shm-size") == 1 << 30
    with pytest.raises(InvalidArgument, match="invalid size: 'x'"):
        ho.parse_size("x", "--shm-size")
    assert ho.parse_ulimits(["nofile=10:20", "core=-1", "nofile=5"]) == [
        {"Name": "core", "Hard": -1, "Soft": -1}, {"Name": "nofile", "Hard": 5, "Soft": 5}]
    for bad, msg in (("foo=1", "invalid ulimit type: foo"), ("nofile=2:1", "soft limit must be less"),
                     ("nofile", "invalid ulimit argument"), ("nofile=x", "invalid ulimit argument"),
                     ("core=unlimited", "invalid ulimit argument")):
        with pytest.raises(InvalidArgument, match=msg):
            ho.parse_ulimits([bad])
    ho.check_sysctls({"net.ipv4.ip_forward": "1", "kernel.shmmax": "1", "fs.mqueue.msg_max": "1"},
                     {"NetworkMode": "bridge"})
    for key in ("kernel.panic", "vm.swappiness", "kernel.hostname", "fs.file-max", "kernel.core_pattern"):
        with pytest.raises(InvalidArgument, match="is not allowed"):
            ho.check_sysctls({key: "1"}, {})
    with pytest.raises(InvalidArgument, match="hosts network namespace"):
        ho.check_sysctls({"net.core.somaxconn": "1"}, {"NetworkMode": "host"})
    with pytest.raises(InvalidArgument, match="invalid PID mode"):
        ho.check_mode("--pid", "bogus", ("", "host"), True)
    assert ho.check_mode("--pid", "container:x", ("", "host"), True) == "container:x"
