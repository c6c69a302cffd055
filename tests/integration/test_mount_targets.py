"""Mount targets held open (issue 17, CVE-2021-30465 class): the runtime resolves a mount's
destination inside the rootfs with openat2(RESOLVE_IN_ROOT) and mounts onto /proc/self/fd/N, so a
path component swapped for a symlink between resolution and mount(2) changes nothing. The race is
made deterministic here: the swap happens right between the two steps."""

from __future__ import annotations

import os
import subprocess

import pytest

from minidock import kernel as k
from minidock.errors import KernelError
from minidock.runtime import rootfs as rfs


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "rootfs"
    (root / "vol" / "sub").mkdir(parents=True)
    host = tmp_path / "host-secret-dir"
    host.mkdir()
    (host / "keep").write_text("host\n")
    yield root, host
    subprocess.run(["umount", "-R", str(root / "vol" / "sub")], capture_output=True)
    subprocess.run(["umount", "-R", str(host)], capture_output=True)


def test_a_swap_after_resolution_does_not_redirect_the_mount(tree):
    root, host = tree
    fd = rfs.open_target(str(root), "/vol/sub")
    if fd is None:
        pytest.skip("openat2 is missing (kernel < 5.6): the path-based fallback is racy")
    try:
        # the racing container: /vol/sub becomes a link to a host directory
        os.rename(root / "vol" / "sub", root / "vol" / "sub.old")
        os.symlink(host, root / "vol" / "sub")
        k.mount("tmpfs", f"/proc/self/fd/{fd}", "tmpfs", 0, "size=1m", why="test")
        try:
            assert (host / "keep").read_text() == "host\n"  # the host dir was not covered
            assert os.listdir(root / "vol" / "sub.old") == []  # the tmpfs is where we resolved
            with open("/proc/self/mountinfo") as f:
                assert any(line.split()[4] == str(root / "vol" / "sub.old") for line in f)
        finally:
            subprocess.run(["umount", str(root / "vol" / "sub.old")], check=True)
    finally:
        os.close(fd)


def test_links_resolve_inside_the_rootfs(tree):
    root, host = tree
    os.rmdir(root / "vol" / "sub")
    os.symlink("/../../../" + str(host).lstrip("/"), root / "vol" / "sub")  # absolute + ..: stays inside
    (root / str(host).lstrip("/")).mkdir(parents=True)
    fd = rfs.open_target(str(root), "/vol/sub")
    if fd is None:
        pytest.skip("openat2 is missing (kernel < 5.6)")
    try:
        assert os.readlink(f"/proc/self/fd/{fd}") == str(root / str(host).lstrip("/"))
    finally:
        os.close(fd)


def test_a_missing_target_is_made_inside_even_when_a_component_is_swapped(tree, monkeypatch):
    """Creating a missing mount point: after secure_join resolved /vol/sub/new inside the rootfs, a
    racing container swaps /vol/sub for a link to a host directory. The runtime makes the missing
    directory from a descriptor of the rootfs, never following a link: it fails, and nothing is
    created on the host (before: os.makedirs by path made host-secret-dir/new)."""
    root, host = tree
    target = rfs.secure_join(str(root), "/vol/sub/new")
    os.rename(root / "vol" / "sub", root / "vol" / "sub.old")
    os.symlink(host, root / "vol" / "sub")
    with pytest.raises(KernelError):
        k.mount_point(str(root), target, True, why="test")
    assert sorted(os.listdir(host)) == ["keep"]  # nothing made on the host
    # and a file mount point the same way
    with pytest.raises(KernelError):
        k.mount_point(str(root), str(root / "vol" / "sub" / "file"), False, why="test")
    assert sorted(os.listdir(host)) == ["keep"]


def test_missing_targets_are_made_in_the_rootfs(tree):
    root, _ = tree
    k.mount_point(str(root), str(root / "a" / "b" / "c"), True, why="test")
    k.mount_point(str(root), str(root / "etc" / "x.conf"), False, why="test")
    assert (root / "a" / "b" / "c").is_dir() and (root / "etc" / "x.conf").is_file()
