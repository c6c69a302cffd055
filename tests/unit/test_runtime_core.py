"""Runtime pieces that need no root: option parsing, secure joins, the rootfs sequence."""

import os

import pytest

from minidock import kernel as k
from minidock.runtime import rootfs as rfs
from minidock.runtime import spec as ocispec
from minidock.runtime.init import _exec_error, find_executable


def test_parse_options_splits_flags_propagation_and_data():
    flags, prop, data = rfs.parse_options(["nosuid", "ro", "rprivate", "mode=755", "size=64k"])
    assert flags == k.MS_NOSUID | k.MS_RDONLY
    assert prop == k.MS_PRIVATE | k.MS_REC
    assert data == ["mode=755", "size=64k"]


def test_secure_join_keeps_symlinks_inside(tmp_path):
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    os.symlink("/etc", root / "abs")  # absolute: must resolve inside root
    os.symlink("../../../../..", root / "up")
    assert rfs.secure_join(str(root), "/abs/passwd") == str(root / "etc" / "passwd")
    assert rfs.secure_join(str(root), "/up/etc") == str(root / "etc")
    assert rfs.secure_join(str(root), "/../../x") == str(root / "x")


def test_default_caps_are_dockers():
    assert ocispec.cap_mask(ocispec.DEFAULT_CAPS) == 0xA80425FB


def test_base_spec_has_docker_defaults():
    s = ocispec.base_spec(["true"])
    dests = [m["destination"] for m in s["mounts"]]
    assert dests[:4] == ["/proc", "/dev", "/dev/pts", "/sys"]
    assert "/proc/kcore" in s["linux"]["maskedPaths"]
    assert "/proc/sys" in s["linux"]["readonlyPaths"]
    assert {n["type"] for n in s["linux"]["namespaces"]} == {"pid", "network", "ipc", "uts", "mount", "cgroup"}


def test_rootfs_sequence_with_fake_kernel(tmp_path):
    """Mask and read-only steps issue exactly the mounts Docker uses."""
    f = k.FakeBackend()
    old = k.set_backend(f)
    try:
        target = tmp_path / "kcore"
        target.write_text("")
        d = tmp_path / "acpi"
        d.mkdir()
        rfs.mask_paths([str(target), str(d), str(tmp_path / "absent")])
        rfs.readonly_paths([str(d)])
    finally:
        k.set_backend(old)
    assert [c.astuple() for c in f.calls] == [
        ("mount", "/dev/null", str(target), None, k.MS_BIND, None),
        ("mount", "tmpfs", str(d), "tmpfs", k.MS_RDONLY, None),
        ("mount", str(d), str(d), None, k.MS_BIND | k.MS_REC, None),
        # the remount keeps the flags the mount has (nosuid, nodev, noexec, atime): statvfs
        ("mount", None, str(d), None, k.MS_BIND | k.MS_REMOUNT | k.MS_RDONLY | rfs.current_flags(str(d)), None),
    ]


def test_find_executable_messages(tmp_path):
    from minidock.errors import CommandCannotRun, CommandNotFound

    (tmp_path / "bin").mkdir()
    exe = tmp_path / "bin" / "tool"
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    assert find_executable("tool", [f"PATH={tmp_path}/bin"]) == str(exe)
    with pytest.raises(CommandNotFound, match=r'exec: "nope": executable file not found in \$PATH'):
        find_executable("nope", [f"PATH={tmp_path}/bin"])
    # no PATH in the env: nothing is searched (runc), not even a default PATH ("sh" is in /bin)
    with pytest.raises(CommandNotFound, match=r'exec: "sh": executable file not found in \$PATH'):
        find_executable("sh", ["TERM=xterm"])
    with pytest.raises(CommandCannotRun, match="is a directory"):
        find_executable(str(tmp_path / "bin"), [])
    plain = tmp_path / "plain"
    plain.write_text("x")
    plain.chmod(0o644)
    with pytest.raises(CommandCannotRun, match="permission denied"):
        find_executable(str(plain), [])


def test_bad_interpreter_is_named(tmp_path):
    script = tmp_path / "s.sh"
    script.write_text("#!/bin/bash -e\necho hi\n")
    e = _exec_error("/s.sh", str(script), OSError(2, "No such file or directory"))
    assert e.exit_code == 127
    assert "bad interpreter /bin/bash" in e.message
