"""Other engines drive minidock-runtime as their OCI runtime: podman (conmon), Docker (dockerd
with --add-runtime, through containerd's shim) and containerd's `ctr`. Each engine runs with a
private root, state and socket, without touching the host's networks (`--network none`,
dockerd without bridge or iptables), and is stopped and cleaned up at the end. A missing engine
is a skip with the reason."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import umount_under
from tests.dockerd import with_busybox

pytestmark = pytest.mark.noleakcheck  # the engines' own daemons and mounts live for the module

REPO = Path(__file__).resolve().parents[2]
RUNTIME = str(Path(sys.executable).parent / "minidock-runtime")
UL = ["--ulimit", "nproc=1024:1024", "--ulimit", "nofile=1024:1024"]  # this host's root lacks CAP_SYS_RESOURCE


def _need(tool: str):
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} is not installed")
    if not os.path.exists(RUNTIME):
        pytest.skip(f"{RUNTIME} missing: pip install -e . creates it")


def sh(*cmd, timeout=90, check=False, **kw):
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=timeout, check=check, **kw)


# ---- podman ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def podman(busybox_tar, tmp_path_factory):
    _need("podman")
    w = tmp_path_factory.mktemp("podman")
    base = ["podman", "--root", w / "root", "--runroot", w / "run", "--runtime", RUNTIME]
    r = sh(*base, "import", busybox_tar, "localhost/busybox")
    assert r.returncode == 0, r.stderr
    yield base
    sh(*base, "rm", "-af")
    sh(*base, "system", "reset", "-f")
    umount_under(str(w))


def test_podman_run_exec_stop(podman):
    r = sh(*podman, "run", "--rm", "--network", "none", *UL, "localhost/busybox", "sh", "-c", "echo hi; exit 3")
    assert (r.returncode, r.stdout) == (3, "hi\n"), r.stderr
    cid = sh(*podman, "run", "-d", "--network", "none", *UL, "localhost/busybox", "sleep", "300").stdout.strip()
    try:
        r = sh(*podman, "exec", cid, "sh", "-c", "echo exec-ok; cat /proc/1/cmdline")
        assert r.returncode == 0 and r.stdout.startswith("exec-ok\nsleep"), r.stderr
        t0 = time.monotonic()
        assert sh(*podman, "stop", "-t", "1", cid).returncode == 0
        assert time.monotonic() - t0 < 15
        assert "Exited (137)" in sh(*podman, "ps", "-a").stdout
    finally:
        sh(*podman, "rm", "-f", cid)


def test_podman_interactive_session(podman):
    pexpect = pytest.importorskip("pexpect")
    child = pexpect.spawn(str(podman[0]), [str(a) for a in podman[1:]] + [
        "run", "-it", "--rm", "--network", "none", *UL, "localhost/busybox", "sh"], timeout=60)
    child.expect("# ")
    child.sendline("tty; echo $((6*7))")
    child.expect("/dev/pts/0")
    child.expect("42")
    child.sendline("exit 5")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 5


# ---- docker --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def docker(busybox_tar, tmp_path_factory):
    """A private dockerd (tests/dockerd.py) that knows minidock-runtime as the runtime `minidock`."""
    _need("dockerd")
    yield from with_busybox(tmp_path_factory.mktemp("docker"), busybox_tar,
                            args=("--add-runtime", f"minidock={RUNTIME}"))


def test_docker_run_exec_stop_with_runtime(docker):
    r = sh(*docker, "run", "--rm", "--runtime", "minidock", "--network", "none", "busybox", "sh", "-c",
           "echo hi; exit 3")
    assert (r.returncode, r.stdout) == (3, "hi\n"), r.stderr
    cid = sh(*docker, "run", "-d", "--runtime", "minidock", "--network", "none", "busybox", "sleep",
             "300").stdout.strip()
    try:
        assert sh(*docker, "inspect", "-f", "{{.HostConfig.Runtime}}", cid).stdout.strip() == "minidock"
        r = sh(*docker, "exec", cid, "sh", "-c", "echo exec-ok")
        assert r.stdout == "exec-ok\n", r.stderr
        assert sh(*docker, "stop", "-t", "1", cid).returncode == 0
        assert sh(*docker, "inspect", "-f", "{{.State.ExitCode}}", cid).stdout.strip() == "137"
    finally:
        sh(*docker, "rm", "-f", cid)


# ---- containerd ----------------------------------------------------------------------------------
def test_containerd_ctr_run_with_runc_binary(busybox_tar, tmp_path, state_root):
    _need("containerd")
    _need("ctr")
    sock = tmp_path / "c.sock"
    log = open(tmp_path / "containerd.log", "w")
    d = subprocess.Popen(["unshare", "--net", "--", "containerd", "--root", tmp_path / "root",
                          "--state", tmp_path / "state",
                          "--address", sock], stdout=log, stderr=log)
    ctr = ["ctr", "-a", sock]
    try:
        for _ in range(100):
            if sh(*ctr, "version").returncode == 0:
                break
            time.sleep(0.1)
        env = dict(os.environ, PYTHONPATH=str(REPO))
        archive = tmp_path / "bb.tar"
        sh(sys.executable, "-m", "minidock", "import", busybox_tar, "ctrbox:latest", env=env, check=True)
        sh(sys.executable, "-m", "minidock", "save", "-o", archive, "ctrbox:latest", env=env, check=True)
        assert sh(*ctr, "images", "import", archive).returncode == 0
        r = sh(*ctr, "run", "--rm", "--runc-binary", RUNTIME, "docker.io/library/ctrbox:latest", "t1",
               "sh", "-c", "echo hi-from-ctr; hostname")
        assert r.returncode == 0 and r.stdout.startswith("hi-from-ctr\n"), r.stderr
        sh(sys.executable, "-m", "minidock", "rmi", "ctrbox:latest", env=env)
    finally:
        d.terminate()
        d.wait(timeout=30)
        umount_under(str(tmp_path))


def test_podman_user_namespace(busybox_tar):
    """podman --uidmap: a user namespace (root inside = uid 100000 outside), podman chowns the
    image for it; on this v1 host without a cgroup namespace the cgroup dirs are bound in."""
    import tempfile

    _need("podman")
    w = Path(tempfile.mkdtemp(prefix="minidock-podman-userns-", dir="/tmp"))
    w.chmod(0o755)  # the mapped root must reach the rootfs (pytest's tmp dirs are 0700)
    base = ["podman", "--root", w / "root", "--runroot", w / "run", "--runtime", RUNTIME]
    try:
        assert sh(*base, "import", busybox_tar, "localhost/busybox").returncode == 0
        r = sh(*base, "run", "--rm", "--network", "none", *UL, "--uidmap", "0:100000:65536",
               "--gidmap", "0:100000:65536", "localhost/busybox", "sh", "-c",
               "id -u; cat /proc/self/uid_map; echo x > /tmp/x && echo write-ok; ls /sys/fs/cgroup | wc -l")
        assert r.returncode == 0, r.stderr
        out = r.stdout.split()
        assert out[:5] == ["0", "0", "100000", "65536", "write-ok"] and int(out[5]) > 0
    finally:
        sh(*base, "rm", "-af")
        sh(*base, "system", "reset", "-f")
        umount_under(str(w))
        shutil.rmtree(w, ignore_errors=True)
