"""Interop with podman and skopeo (skipped with a reason when missing): images they wrote —
multi-layer, with deleted files and an opaque dir in a later layer — load into minidock and run
with the same file tree; images minidock saved or pushed load and run in podman.

podman runs with a private storage root, runc, cgroupfs, no network, and explicit ulimits
(its defaults exceed this host's hard limits and runc then fails with EPERM)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from fixtures_registry import Registry, have_registry  # noqa: E402

from tests.dockerd import PrivateDockerd  # noqa: E402

# the tree of everything the image provides (the engines' own mount targets and /etc/ differ)
TREE = ("find / -xdev \\( -path /proc -o -path /sys -o -path /dev -o -path /run -o -path /etc "
        "-o -path /.dockerenv \\) -prune -o -print | sort; "
        "ls /etc | grep -v -e hostname -e hosts -e resolv.conf -e mtab; cat /data/file")
UL = ["--ulimit", "nproc=1024:1024", "--ulimit", "nofile=1024:1024"]


def _need(tool: str) -> None:
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} is not installed")


@pytest.fixture(scope="module")
def podman():
    _need("podman")
    d = tempfile.mkdtemp(prefix="minidock-podman-")
    base = ["podman", "--root", f"{d}/root", "--runroot", f"{d}/run", "--cgroup-manager", "cgroupfs",
            "--events-backend", "none"]
    if shutil.which("runc"):
        base += ["--runtime", "runc"]

    def run(*args, check=True, **kw):
        r = subprocess.run(base + list(map(str, args)), capture_output=True, text=True, timeout=180, **kw)
        if check:
            assert r.returncode == 0, f"podman {args}: {r.stderr}"
        return r

    probe = run("info", check=False)
    if probe.returncode != 0:
        shutil.rmtree(d, ignore_errors=True)
        pytest.skip(f"podman does not work here: {probe.stderr.strip()[:200]}")
    yield run
    run("rm", "-af", check=False)
    run("rmi", "-af", check=False)
    subprocess.run(["umount", "-R", f"{d}/root/overlay"], capture_output=True)
    shutil.rmtree(d, ignore_errors=True)


def _prun(podman, image, script):
    return podman("run", "--rm", "--network", "none", *UL, image, "sh", "-c", script)


@pytest.fixture(scope="module")
def md_saved(busybox, state_root):
    """A minidock image with a deleted file and an opaque dir, committed in two steps."""
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))

    def md(*a):
        return subprocess.run([sys.executable, "-m", "minidock", *a], capture_output=True, text=True, env=env)

    r = md("run", "--name", "iop1", busybox, "sh", "-c", "mkdir -p /data/old; echo payload > /data/file; "
           "echo o > /data/old/x; rm /bin/ls")
    assert r.returncode == 0, r.stderr
    assert md("commit", "iop1", "iop:1").returncode == 0
    md("rm", "iop1")
    r = md("run", "--name", "iop2", "iop:1", "sh", "-c", "rm -rf /data/old; mkdir /data/old; echo n > /data/old/y")
    assert r.returncode == 0, r.stderr
    assert md("commit", "iop2", "iop:2").returncode == 0
    md("rm", "iop2")
    return "iop:2"


@pytest.fixture(scope="module")
def podman_made(podman, busybox_tar):
    """A podman image: import, then two commits (deleted files, an opaque dir)."""
    podman("import", busybox_tar, "localhost/pbase:1")
    podman("run", "--name", "p1", "--network", "none", *UL, "localhost/pbase:1", "sh", "-c",
           "mkdir -p /data/old; echo payload > /data/file; echo o > /data/old/x; rm /bin/ls /bin/cat2 2>/dev/null; "
           "rm /bin/ls 2>/dev/null; true")
    podman("commit", "-q", "p1", "localhost/pmade:1")
    podman("rm", "p1")
    podman("run", "--name", "p2", "--network", "none", *UL, "localhost/pmade:1", "sh", "-c",
           "rm -rf /data/old; mkdir /data/old; echo n > /data/old/y; rm /bin/vi")
    podman("commit", "-q", "p2", "localhost/pmade:2")
    podman("rm", "p2")
    return "localhost/pmade:2"


def _md_tree(md, image, env=None):
    r = md("run", "--rm", image, "sh", "-c", TREE, env=env)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_podman_runs_what_minidock_saved(md, md_saved, podman, tmp_path):
    out = tmp_path / "md.tar"
    assert md("save", "-o", out, md_saved).returncode == 0
    r = podman("load", "-i", out)
    assert "iop:2" in r.stdout + r.stderr
    ptree = _prun(podman, "docker.io/library/iop:2", TREE).stdout
    assert ptree == _md_tree(md, md_saved)
    assert "/data/old/y" in ptree and "/data/old/x" not in ptree and "/bin/ls" not in ptree.split()


@pytest.mark.parametrize("fmt", ["docker-archive", "oci-archive"])
def test_minidock_runs_what_podman_saved(md, podman, podman_made, tmp_path, fmt):
    out = tmp_path / "p.tar"
    podman("save", "--format", fmt, "-o", out, podman_made)
    r = md("load", "-i", out)
    assert r.returncode == 0, r.stderr
    ptree = _prun(podman, podman_made, TREE).stdout
    assert "/data/old/y" in ptree and "/data/old/x" not in ptree and "/bin/vi" not in ptree.split()
    if fmt == "docker-archive":
        assert f"Loaded image: {podman_made}" in r.stdout
        ref = podman_made
    else:  # podman's oci-archive names only the tag: Docker leaves such an image untagged too
        ref = r.stdout.strip().split()[-1]
    assert _md_tree(md, ref) == ptree
    md("rmi", "-f", ref)


def test_skopeo_oci_layout_dir_loads(md, podman, podman_made, tmp_path):
    _need("skopeo")
    arch = tmp_path / "p.tar"
    podman("save", "--format", "docker-archive", "-o", arch, podman_made)
    layout = tmp_path / "layout"
    r = subprocess.run(["skopeo", "copy", "-q", f"docker-archive:{arch}", f"oci:{layout}:localhost/skopeo:1"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    r = md("load", "-i", layout)
    assert r.returncode == 0, r.stderr
    assert "Loaded image: localhost/skopeo:1" in r.stdout
    assert _md_tree(md, "localhost/skopeo:1") == _prun(podman, podman_made, TREE).stdout
    md("rmi", "localhost/skopeo:1")


@pytest.fixture(scope="module")
def registry():
    if not have_registry():
        pytest.skip("docker-registry is not installed")
    d = tempfile.mkdtemp(prefix="minidock-iop-registry-")
    reg = Registry(d)
    reg.start()
    yield reg
    reg.stop()
    shutil.rmtree(d, ignore_errors=True)


def test_registry_both_ways_with_skopeo_and_podman(md, md_saved, podman, podman_made, registry, tmp_path):
    _need("skopeo")
    # skopeo pushes (gzip layers, Docker schema 2), minidock pulls and runs
    arch = tmp_path / "p.tar"
    podman("save", "--format", "docker-archive", "-o", arch, podman_made)
    r = subprocess.run(["skopeo", "copy", "-q", "--dest-tls-verify=false", f"docker-archive:{arch}",
                        f"docker://{registry.addr}/iop/fromskopeo:1"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    r = md("pull", f"{registry.addr}/iop/fromskopeo:1")
    assert r.returncode == 0, r.stderr
    assert _md_tree(md, f"{registry.addr}/iop/fromskopeo:1") == _prun(podman, podman_made, TREE).stdout
    # minidock pushes, podman pulls and runs it
    ref = f"{registry.addr}/iop/frommd:1"
    assert md("tag", md_saved, ref).returncode == 0
    r = md("push", ref)
    assert r.returncode == 0, r.stderr
    podman("pull", "-q", "--tls-verify=false", ref)
    assert _prun(podman, ref, TREE).stdout == _md_tree(md, md_saved)
    r = subprocess.run(["skopeo", "inspect", "--tls-verify=false", f"docker://{ref}"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    md("rmi", ref, f"{registry.addr}/iop/fromskopeo:1")


@pytest.fixture(scope="module")
def docker():
    """A private dockerd (tests/dockerd.py: own root, socket and network namespace)."""
    _need("dockerd")
    _need("docker")
    d = PrivateDockerd()
    why = d.start(tries=150)
    if why:
        pytest.skip(why)
    try:
        yield lambda *args, check=True: d(*args, check=check)
    finally:
        d.stop()


def test_docker_both_ways(md, md_saved, docker, tmp_path):
    out = tmp_path / "md.tar"
    assert md("save", "-o", out, md_saved).returncode == 0
    docker("load", "-i", out)
    dtree = docker("run", "--rm", "--network", "none", md_saved, "sh", "-c", TREE).stdout
    assert dtree == _md_tree(md, md_saved)
    # docker commits a change of its own and saves; minidock loads it and sees the same tree
    docker("run", "--name", "d1", "--network", "none", md_saved, "sh", "-c",
           "rm -rf /data/old; mkdir /data/old; echo d > /data/old/z; rm /bin/vi")
    docker("commit", "d1", "fromdocker:1")
    docker("rm", "d1")
    back = tmp_path / "d.tar"
    docker("save", "-o", back, "fromdocker:1")
    r = md("load", "-i", back)
    assert r.returncode == 0, r.stderr
    assert "Loaded image: fromdocker:1" in r.stdout
    dtree = docker("run", "--rm", "--network", "none", "fromdocker:1", "sh", "-c", TREE).stdout
    assert "/data/old/z" in dtree and "/data/old/y" not in dtree and "/bin/vi" not in dtree.split()
    assert _md_tree(md, "fromdocker:1") == dtree
    md("rmi", "fromdocker:1")
