"""The kernel layer: every call is traced with a shell equivalent, and errors name the call."""

import errno
import inspect
import os

import pytest

from minidock import kernel as k
from minidock.errors import KernelError


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
    assert k.Call("mount", {"source": "proc", "target": "/x/proc", "fstype": "proc",
                            "flags": k.MS_NOSUID | k.MS_NOEXEC, "data": None}) in fake.calls
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
    assert fake.ops() == ["unshare", "pivot_root"]


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


def test_errors_name_the_call_and_object(fake):
    fake.fail("mount", errno.EPERM, times=1)
    with pytest.raises(KernelError) as e:
        k.mount("tmpfs", "/nowhere", "tmpfs")
    assert "mount" in str(e.value) and "/nowhere" in str(e.value) and "EPERM" in str(e.value)
    assert e.value.errno == errno.EPERM
    k.mount("tmpfs", "/nowhere", "tmpfs")  # times=1: the next one succeeds
    assert fake.ops() == ["mount", "mount"]


def test_write_file_records_content(fake, trace):
    k.write_file("/sys/fs/cgroup/x/memory.max", "33554432", why="limit memory")
    assert fake.files["/sys/fs/cgroup/x/memory.max"] == "33554432"
    assert "$ echo 33554432 > /sys/fs/cgroup/x/memory.max" in trace()


def test_aliases_shorten_paths(fake, trace):
    k.alias("/var/lib/minidock/containers/abc/merged", "ROOTFS")
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
    assert fake.calls[0].astuple() == ("attach_device_filter", "/sys/fs/cgroup/minidock/c1", df.program(rules))
    assert "13-instruction BPF_PROG_TYPE_CGROUP_DEVICE program (deny all; allow c 1:3 rwm)" in out
    assert "bpftool cgroup attach /sys/fs/cgroup/minidock/c1 device" in out
    assert "$ echo '0 100000 65536' > /proc/42/uid_map" in out


# --- the fake is strict ---------------------------------------------------------------------------
def test_fake_refuses_unknown_operations_and_wrong_arguments(fake):
    with pytest.raises(AttributeError):
        fake.mountt("a", "b")
    with pytest.raises(TypeError):
        fake.mount("only", "two")
    with pytest.raises(AttributeError):
        fake.fail("mountt", errno.EPERM)
    assert fake.calls == []


def test_fake_records_typed_calls(fake):
    k.setns("/proc/42/ns/net", k.CLONE_NEWNET)
    k.write_file("/proc/42/uid_map", "0 1000 1\n")
    setns, write = fake.calls
    assert (setns.op, setns.path, setns.nstype) == ("setns", "/proc/42/ns/net", k.CLONE_NEWNET)
    assert write.data == "0 1000 1\n" and fake.files == {"/proc/42/uid_map": "0 1000 1\n"}
    with pytest.raises(AttributeError):
        setns.target  # noqa: B018


def test_fake_failures_count_down_and_filter(fake):
    fake.fail("write_file", errno.EBUSY, times=2, when=lambda c: c.path.endswith("cgroup.procs"))
    k.write_file("/cg/memory.max", "1")  # not matched: succeeds
    for _ in range(2):
        with pytest.raises(KernelError) as e:
            k.write_file("/cg/cgroup.procs", "1")
        assert e.value.errno == errno.EBUSY
    k.write_file("/cg/cgroup.procs", "1")
    fake.fail("umask", errno.EINVAL, times=None)
    for _ in range(3):
        with pytest.raises(KernelError):
            k.umask(0)


def test_fake_results_can_be_scripted(fake):
    assert k.umask(0) == 0o022
    fake.returns("umask", lambda call: call.mask ^ 0o777)
    assert k.umask(0o022) == 0o755


def test_backends_implement_exactly_the_interface():
    ops = set(k.Backend.__abstractmethods__)
    for cls in (k.LibcBackend, k.FakeBackend):
        assert not cls.__abstractmethods__
        for op in ops:
            want = [p for p in inspect.signature(getattr(k.Backend, op)).parameters]
            assert [p for p in inspect.signature(getattr(cls, op)).parameters] == want, (cls, op)
    with pytest.raises(TypeError):
        k.set_backend(object())



def test_nothing_outside_the_kernel_writes_trace_steps():
    """Steps come from kernel calls only: no module reaches into the tracer to record its own."""
    import pathlib
    import re

    pkg = pathlib.Path(k.__file__).parent.parent
    offenders = [str(p.relative_to(pkg)) for p in pkg.rglob("*.py")
                 if "kernel" not in p.relative_to(pkg).parts[:1]
                 and re.search(r"tracer\.record|\b(k|kernel)\.Step\(|tracer\.steps|tracer\.enabled", p.read_text())]
    assert offenders == []


def test_trace_quote_and_join_are_shlex_s():
    """kernel.trace.quote/join (no re import on the runtime's path) quote as shlex does."""
    import shlex

    from minidock.kernel.trace import join, quote

    samples = ["", "a", "/var/lib/x y", "it's", "a\"b", "$HOME", "é", "a\nb", "-o", "x=1,y=2", "@%+=:,./-_", "*"]
    for s in samples:
        assert quote(s) == shlex.quote(s), s
    assert join(samples) == shlex.join(samples)


def test_mountinfo_unescapes_as_before_and_mounts_are_named_tuples():
    from minidock.util import mountinfo

    line = r"36 35 98:0 /mnt\0401 /mnt\134x\0402 rw,noatime master:1 - ext3 /dev/root\040a rw,errors=continue"
    m = mountinfo.parse(line)[0]
    assert (m.mount_id, m.root, m.target, m.optional, m.fstype, m.source, m.super_options) == \
        (36, "/mnt 1", "/mnt\\x 2", ("master:1",), "ext3", "/dev/root a", "rw,errors=continue")
    assert m == mountinfo.parse(line)[0] and len({m, mountinfo.parse(line)[0]}) == 1
    assert mountinfo.unescape(r"a\\b\01\0401") == "a\\\\b\\01 1"
