"""Volumes, bind and tmpfs mounts, and cp, against real containers (--network none: no links)."""

from __future__ import annotations

import os

import pytest


@pytest.fixture
def vol(md):
    made = []

    def make(name):
        assert md("volume", "create", name).returncode == 0
        made.append(name)
        return name

    yield make
    for n in made:
        md("volume", "rm", "-f", n)


def test_a_volume_keeps_data_across_containers(md, busybox, vol):
    v = vol("keep")
    r = md("run", "--rm", "-v", f"{v}:/data", busybox, "sh", "-c", "echo persisted > /data/f")
    assert r.returncode == 0, r.stderr
    r = md("run", "--rm", "-v", f"{v}:/data", busybox, "cat", "/data/f")
    assert (r.returncode, r.stdout) == (0, "persisted\n")
    assert md("volume", "inspect", "-f", "{{.Name}} {{.Driver}}", v).stdout.strip() == f"{v} local"


def test_read_only_mounts_are_read_only(md, busybox, vol, tmp_path):
    v = vol("ro")
    (tmp_path / "f").write_text("host")
    for flag in (f"{v}:/data:ro", f"{tmp_path}:/data:ro"):
        r = md("run", "--rm", "-v", flag, busybox, "sh", "-c", "touch /data/new")
        assert r.returncode != 0 and "Read-only file system" in r.stderr, (flag, r.stderr)
    r = md("run", "--rm", "--mount", f"type=bind,source={tmp_path},target=/h,readonly", busybox,
           "sh", "-c", "cat /h/f; touch /h/x")
    assert r.stdout == "host" and "Read-only file system" in r.stderr
    assert not (tmp_path / "new").exists() and not (tmp_path / "x").exists()


def test_bind_mount_writes_reach_the_host_and_tmpfs_is_tmpfs(md, busybox, tmp_path):
    r = md("run", "--rm", "-v", f"{tmp_path}/made:/w", "--tmpfs", "/scratch:size=1m", busybox,
           "sh", "-c", "echo out > /w/file; grep ' /scratch ' /proc/mounts")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "made" / "file").read_text() == "out\n"  # -v created the missing host dir
    assert "tmpfs /scratch tmpfs" in r.stdout and "size=1024k" in r.stdout and "noexec" in r.stdout
    r = md("run", "--rm", "--mount", f"type=bind,source={tmp_path}/absent,target=/x", busybox, "true")
    assert r.returncode == 125 and "bind source path does not exist" in r.stderr


def test_volume_in_use_cannot_be_removed(md, busybox, vol):
    v = vol("busy")
    cid = md("create", "-v", f"{v}:/data", busybox, "true").stdout.strip()
    r = md("volume", "rm", v)
    assert r.returncode == 1 and f"remove {v}: volume is in use - [{cid}]" in r.stderr
    md("rm", cid, check=True)
    assert md("volume", "rm", v).returncode == 0
    assert v not in md("volume", "ls", "-q").stdout.split()


def test_anonymous_volume_copy_up_and_rm_v(md, busybox):
    cid = md("create", "-v", "/etc", busybox, "cat", "/etc/passwd").stdout.strip()
    r = md("start", "-a", cid)
    assert r.returncode == 0 and "root:" in r.stdout  # the image's /etc was copied into the new volume
    import json

    names = {m.get("Name") for m in json.loads(md("inspect", "-f", "{{json .Mounts}}", cid).stdout)}
    # by name, not by substring: a volume another test left, called e.g. "data", is in every "/_data" path
    anon = [v for v in md("volume", "ls", "-q").stdout.split() if v in names]
    assert len(anon) == 1
    r = md("start", "-a", cid)  # a second start reuses it
    assert r.returncode == 0
    assert anon[0] in md("volume", "ls", "-q").stdout.split()
    md("rm", "-v", cid, check=True)
    assert anon[0] not in md("volume", "ls", "-q").stdout.split()


def test_volumes_from(md, busybox, vol):
    v = vol("shared")
    src = md("create", "--name", "vsrc", "-v", f"{v}:/shared", busybox, "sh", "-c", "echo s > /shared/x")
    assert src.returncode == 0
    try:
        assert md("start", "-a", "vsrc").returncode == 0
        r = md("run", "--rm", "--volumes-from", "vsrc:ro", busybox, "sh", "-c", "cat /shared/x; touch /shared/y")
        assert r.stdout == "s\n" and "Read-only file system" in r.stderr
    finally:
        md("rm", "vsrc")


def _tree(root):
    out = {}
    for d, dirs, files in os.walk(root):
        for n in dirs + files:
            p = os.path.join(d, n)
            rel = os.path.relpath(p, root)
            if os.path.islink(p):
                out[rel] = ("link", os.readlink(p))
            elif os.path.isdir(p):
                out[rel] = ("dir", oct(os.stat(p).st_mode & 0o777))
            else:
                out[rel] = ("file", open(p, "rb").read(), oct(os.stat(p).st_mode & 0o777))
    return out


def test_cp_round_trips_a_tree_stopped_and_running(md, busybox, tmp_path):
    src = tmp_path / "src"
    (src / "sub" / "deeper").mkdir(parents=True)
    (src / "a.txt").write_text("alpha")
    (src / "sub" / "run.sh").write_text("#!/bin/sh\necho hi\n")
    os.chmod(src / "sub" / "run.sh", 0o755)
    (src / "sub" / "deeper" / "bin").write_bytes(bytes(range(256)) * 10)
    os.symlink("../a.txt", src / "sub" / "link")
    cid = md("create", "--name", "cpbox", busybox, "sleep", "60").stdout.strip()
    try:
        assert md("cp", str(src), "cpbox:/srv").returncode == 0  # stopped: /srv is created as the copy
        r = md("cp", "cpbox:/srv", str(tmp_path / "back"))
        assert r.returncode == 0, r.stderr
        assert _tree(tmp_path / "back") == _tree(src)
        md("start", "cpbox", check=True)
        r = md("exec", "cpbox", "sh", "/srv/sub/run.sh")
        assert r.stdout == "hi\n"
        md("exec", "cpbox", "sh", "-c", "mkdir /made; echo inside > /made/f", check=True)
        r = md("cp", "cpbox:/made/.", str(tmp_path / "out2"))  # running, contents of a directory
        assert r.returncode == 0, r.stderr
        assert (tmp_path / "out2" / "f").read_text() == "inside\n"
        r = md("cp", "cpbox:/nonexistent", str(tmp_path))
        assert r.returncode == 125 and "Could not find the file /nonexistent in container cpbox" in r.stderr
    finally:
        md("rm", "-f", cid)


def test_cp_reaches_volumes_of_a_running_container(md, busybox, vol, tmp_path):
    v = vol("cpvol")
    cid = md("run", "-d", "-v", f"{v}:/data", busybox, "sleep", "60").stdout.strip()
    try:
        (tmp_path / "in.txt").write_text("via cp")
        assert md("cp", str(tmp_path / "in.txt"), f"{cid}:/data/").returncode == 0
        assert md("exec", cid, "cat", "/data/in.txt").stdout == "via cp"  # seen inside: it is in the volume
        md("exec", cid, "sh", "-c", "echo made inside > /data/out.txt", check=True)
        r = md("cp", f"{cid}:/data/out.txt", str(tmp_path / "out.txt"))
        assert r.returncode == 0, r.stderr
        assert (tmp_path / "out.txt").read_text() == "made inside\n"
    finally:
        md("rm", "-f", cid)


def test_cp_cannot_be_tricked_into_writing_outside_the_container(md, busybox, tmp_path):
    marker = f"minidock-cp-escape-{os.getpid()}"
    cid = md("run", "-d", busybox, "sh", "-c", "ln -s /etc /evil; ln -s / /up; sleep 60").stdout.strip()
    try:
        src = tmp_path / marker
        src.write_text("x")
        for dest in (f"{cid}:/evil/", f"{cid}:/up/etc/", f"{cid}:/../../../../etc/", f"{cid}:/evil/{marker}"):
            r = md("cp", str(src), dest)
            assert r.returncode == 0, r.stderr
            assert not os.path.exists(f"/etc/{marker}")
        r = md("exec", cid, "cat", f"/etc/{marker}")
        assert r.stdout == "x"
        # reading: a link to the host's /etc/shadow is copied as a link, and its target is the
        # container's file when followed with a trailing /. (never the host's)
        md("exec", cid, "ln", "-s", "/etc/shadow", "/shadowlink", check=True)
        assert md("cp", f"{cid}:/shadowlink", str(tmp_path / "sl")).returncode == 0
        assert os.readlink(tmp_path / "sl") == "/etc/shadow"
    finally:
        md("rm", "-f", cid)
        if os.path.exists(f"/etc/{marker}"):
            os.unlink(f"/etc/{marker}")


def test_cp_between_two_containers_is_refused(md):
    r = md("cp", "a:/x", "b:/y")
    assert r.returncode == 125 and "copying between containers is not supported" in r.stderr
