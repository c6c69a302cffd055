"""Docker's resource flags -> OCI resources -> cgroup knobs, without root."""

import pytest

from minidock.engine.resources import parse_flags, ram_in_bytes, to_oci
from minidock.errors import InvalidArgument
from minidock.runtime.cgroups import CgroupError, normalize, parse_cpuset
from minidock.runtime.cgroups.v2 import shares_to_weight


@pytest.mark.parametrize("text, n", [("64m", 64 << 20), ("1g", 1 << 30), ("1.5g", 3 << 29), ("512k", 512 << 10),
                                     ("100", 100), ("2GiB", 2 << 30), ("10mb", 10 << 20), ("-1", -1)])
def test_ram_in_bytes(text, n):
    assert ram_in_bytes(text) == n


def test_flags_to_oci_like_docker():
    hc = parse_flags(memory="64m", cpus="0.5", cpu_shares=512, pids_limit=20, cpuset_cpus="0")
    assert hc == {"Memory": 64 << 20, "NanoCpus": 500_000_000, "CpuShares": 512, "PidsLimit": 20,
                  "CpusetCpus": "0"}
    r = to_oci(hc)
    assert r["memory"] == {"limit": 64 << 20, "swap": 128 << 20}  # Docker: swap defaults to the memory
    assert r["cpu"] == {"period": 100000, "quota": 50000, "shares": 512, "cpus": "0"}
    assert r["pids"] == {"limit": 20}


def test_unlimited_values():
    r = to_oci(parse_flags(memory="64m", memory_swap="-1", pids_limit=-1))
    assert r["memory"]["swap"] == -1 and r["pids"] == {"limit": -1}


def test_shares_to_weight_matches_runc():
    assert shares_to_weight(2) == 1
    assert shares_to_weight(1024) == 39
    assert shares_to_weight(262144) == 10000


def test_messages():
    with pytest.raises(InvalidArgument, match="You should always set the Memory limit"):
        parse_flags(memory_swap="1g")
    with pytest.raises(InvalidArgument, match="CPU cfs quota can not be less than 1ms"):
        parse_flags(cpu_quota=10)


def test_cgroup_paths():
    assert normalize("minidock/abc") == "minidock/abc"
    assert normalize("/a/b/") == "a/b"
    assert normalize("system.slice:docker:abc") == "system.slice/docker-abc.scope"
    with pytest.raises(CgroupError):
        normalize("../..")
    assert parse_cpuset("0-2,5") == {0, 1, 2, 5}
