"""The kernel layer: every call is traced with a shell equivalent, and errors name the call."""

import os

import pytest

from minidock import kernel as k
from minidock.errors import KernelError


@pytest.fixture
def fake():
    f = k.FakeBackend()
    old = k.set_backend(f)
    yield f
    k.set_backend(old)


@pytest.fixture
def trace():
    r, w = os.pipe()
    k.explain_to(w)
    yield lambda: (os.close(w), os.read(r, 1 << 20).decode())[1]
    k.explain_to(None)
    os.close(r)


def test_mount_is_recorded_with_shell_equivalent(fake, trace):
    k.mount("proc", "/x/proc", "proc", k.MS_NOSUID | k.MS_NOEXEC, why="a proc for the pid ns")
    k.mount("/src", "/dst", None, k.MS_BIND | k.MS_REC)
    k.mount(None, "/", None, k.MS_PRIVATE | k.MS_REC)
    out = trace()
    assert ("mount", "proc", "/x/proc", "proc", k.MS_NOSUID | k.MS_NOEXEC, None) in fake.calls
    assert "$ mount -t proc -o nosuid,noexec proc /x/proc" in out
    assert "why: a proc for the pid ns" in out
    assert "$ mount --rbind /src /dst" in out
    assert "$ mount --make-rprivate /" in out


def test_unshare_and_pivot_root_traces(fake, trace):
    k.unshare(k.CLONE_NEWNS | k.CLONE_NEWPID | k.CLONE_NEWUTS)
    k.pivot_root(".", ".")
    out = trace()
    assert "unshare --mount --uts --pid" in out
    assert "$ pivot_root . ." in out
    assert [c[0] for c in fake.calls] == ["unshare", "pivot_root"]


def test_step_numbers_continue_across_fork(fake, trace):
    k.sethostname("a")
    pid = os.fork()
    if pid == 0:
        k.sethostname("b")
        os._exit(0)
    os.waitpid(pid, 0)
    k.sethostname("c")
    out = trace()
    assert "[explain  1]" in out and "[explain  2]" in out and "[explain  3]" in out


def test_errors_name_the_call_and_object():
    class Failing:
        def mount(self, *a):
            raise OSError(1, "Operation not permitted")

    old = k.set_backend(Failing())
    try:
        with pytest.raises(KernelError) as e:
            k.mount("tmpfs", "/nowhere", "tmpfs")
    finally:
        k.set_backend(old)
    assert "mount" in str(e.value) and "/nowhere" in str(e.value) and "EPERM" in str(e.value)


def test_write_file_records_content(fake, trace):
    k.write_file("/sys/fs/cgroup/x/memory.max", "33554432", why="limit memory")
    assert fake.files["/sys/fs/cgroup/x/memory.max"] == "33554432"
    assert "$ echo 33554432 > /sys/fs/cgroup/x/memory.max" in trace()


def test_aliases_shorten_paths(fake, trace):
    k.tracer.alias("/var/lib/minidock/containers/abc/merged", "ROOTFS")
    k.mount("proc", "/var/lib/minidock/containers/abc/merged/proc", "proc")
    out = trace()
    k.tracer.aliases.clear()
    assert "-- ROOTFS=/var/lib/minidock/containers/abc/merged" in out
    assert "mount -t proc proc $ROOTFS/proc" in out


def test_device_filter_and_uid_map_are_explained(fake, trace):
    from minidock.runtime.cgroups import devicefilter as df

    rules = [{"allow": False, "access": "rwm"}, {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"}]
    k.attach_device_filter("/sys/fs/cgroup/minidock/c1", df.program(rules), rules=df.describe(rules),
                           why="v2 device rules")
    k.write_file("/proc/42/uid_map", "0 100000 65536\n", why="user namespace mapping")
    out = trace()
    assert fake.calls[0] == ("attach_device_filter", "/sys/fs/cgroup/minidock/c1", df.program(rules))
    assert "13-instruction BPF_PROG_TYPE_CGROUP_DEVICE program (deny all; allow c 1:3 rwm)" in out
    assert "bpftool cgroup attach /sys/fs/cgroup/minidock/c1 device" in out
    assert "$ echo '0 100000 65536' > /proc/42/uid_map" in out
