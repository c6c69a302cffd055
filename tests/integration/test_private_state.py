"""State and store private (issue 17, CVE-2021-41091 class): another host user can neither list
nor reach what minidock keeps. Before: state root and image store 0755, volume dirs enterable;
host user `nobody` ran a setuid-root file from an image layer and one a container dropped into a
named volume. The attacks here are made by `nobody` (setpriv), with the exact paths handed to it,
and pass only if they are refused.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tarfile

import pytest

from tests.conftest import REPO

EUID_SRC = '#include <stdio.h>\n#include <unistd.h>\nint main(void){printf("euid=%d\\n", geteuid());return 0;}\n'
# (through sh: setpriv itself still holds root's capabilities when it execs its argument, so the
# path lookup must be made by a process that is nobody through and through)
NOBODY = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--", "sh", "-c", 'exec "$0" "$@"']


@pytest.fixture(scope="module")
def euid_probe(tmp_path_factory):
    """A static program that prints its effective uid: run setuid-root, it says euid=0."""
    if not shutil.which("gcc") or not shutil.which("setpriv"):
        pytest.skip("gcc and setpriv are needed (install.sh --test)")
    d = tmp_path_factory.mktemp("euid")
    (d / "euid.c").write_text(EUID_SRC)
    r = subprocess.run(["gcc", "-static", "-O1", "-o", d / "euid", d / "euid.c"], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot build a static program: {r.stderr[-200:]}")
    os.chmod(d, 0o755)
    return d / "euid"


def as_nobody(*cmd) -> subprocess.CompletedProcess:
    return subprocess.run([*NOBODY, *map(str, cmd)], capture_output=True, text=True, timeout=30)


def test_the_probe_works_when_reachable(euid_probe):
    """Control: the same setuid-root program, somewhere nobody can reach, gives euid=0 — so the
    tests below fail if the store lets nobody through."""
    import tempfile

    d = tempfile.mkdtemp(prefix="minidock-suid-", dir="/tmp")
    try:
        os.chmod(d, 0o755)
        shutil.copy(euid_probe, f"{d}/suid")
        os.chmod(f"{d}/suid", 0o4755)
        if "nosuid" in _mount_opts(d):
            pytest.skip("/tmp is mounted nosuid: the control cannot run")
        r = as_nobody(f"{d}/suid")
        assert r.stdout.strip() == "euid=0", r.stderr
    finally:
        shutil.rmtree(d)


def _mount_opts(path: str) -> str:
    r = subprocess.run(["findmnt", "-n", "-o", "OPTIONS", "-T", path], capture_output=True, text=True)
    return r.stdout


def test_setuid_file_in_an_image_layer_is_unreachable(md, euid_probe, state_root, tmp_path):
    tar = tmp_path / "suid.tar"
    with tarfile.open(tar, "w") as tf:
        data = euid_probe.read_bytes()
        info = tarfile.TarInfo("suid")
        info.size, info.mode, info.uid, info.gid = len(data), 0o4755, 0, 0
        tf.addfile(info, io.BytesIO(data))
    r = md("import", tar, "suidimg:1")
    assert r.returncode == 0, r.stderr
    try:
        layer = json.loads(md("image", "inspect", "suidimg:1").stdout)[0]["RootFS"]["Layers"][0]
        path = state_root / "image" / "layers" / "sha256" / layer[7:] / "suid"
        assert os.stat(path).st_mode & 0o4000  # the setuid bit is kept (layers must stay faithful)
        r = as_nobody(path)
        assert "euid=0" not in r.stdout and r.returncode != 0
        assert "Permission denied" in r.stderr
    finally:
        md("rmi", "suidimg:1")


def test_setuid_file_a_container_drops_in_a_volume_is_unreachable(md, busybox, euid_probe, state_root):
    r = md("run", "--rm", "-v", "dropvol:/data", "-v", f"{euid_probe}:/p:ro", busybox, "sh", "-c",
           "cp /p /data/suid && chmod 4755 /data/suid")
    assert r.returncode == 0, r.stderr
    try:
        path = state_root / "volumes" / "dropvol" / "_data" / "suid"
        assert os.stat(path).st_mode & 0o4000
        r = as_nobody(path)
        assert "euid=0" not in r.stdout and r.returncode != 0
        assert "Permission denied" in r.stderr
    finally:
        md("volume", "rm", "dropvol")


def test_nobody_cannot_list_names_or_read_records(md, busybox, state_root):
    cid = md("create", "--name", "secretname", busybox, "true", check=True).stdout.strip()
    try:
        assert (os.stat(state_root).st_mode & 0o777) == 0o711
        for d in ("", "containers", "image", "volumes", "networks", "image/images"):
            r = as_nobody("ls", state_root / d)
            assert r.returncode != 0 and "secretname" not in r.stdout and cid not in r.stdout, d
        r = as_nobody("cat", state_root / "containers" / cid / "config.json")
        assert r.returncode != 0 and "Permission denied" in r.stderr
    finally:
        md("rm", cid)


def test_non_root_gets_one_clear_line(md_env, state_root):
    env = dict(md_env, PYTHONPATH=str(REPO))
    probe = subprocess.run([*NOBODY, sys.executable, "-c", "import minidock"], capture_output=True, env=env)
    if probe.returncode != 0:
        pytest.skip("the user nobody cannot run this Python")
    for args in (["ps"], ["images"], ["run", "--rm", "busybox", "true"]):
        r = subprocess.run([*NOBODY, sys.executable, "-m", "minidock", *args], capture_output=True, text=True,
                           env=env, timeout=30)
        assert r.returncode == 125, r.stderr
        assert r.stderr.splitlines()[0] == "minidock: Error: minidock needs root: run it with sudo"
        assert "Traceback" not in r.stderr and "PermissionError" not in r.stderr
    r = subprocess.run([*NOBODY, sys.executable, "-m", "minidock", "version"], capture_output=True, text=True,
                       env=env, timeout=30)
    assert r.returncode == 0 and "minidock version" in r.stdout
