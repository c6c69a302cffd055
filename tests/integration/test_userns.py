"""User namespaces (issue 16): `--uidmap`/`--gidmap`, `--userns host|private|auto`, the remap
default MINIDOCK_USERNS_REMAP (off unless set).

What a user sees: root in the container is uid 100000 on the host (0:100000:65536); what it writes
in its rootfs and in a new volume is owned by 100000 on the host; the records stay root's and
private (0700), and the mapped root reaches only its own rootfs and the mounts staged for it. The
attacks are made by the mapped root itself: inside a container (with the other container's record
and a root-only host file bound in, which a container without a user namespace reads: the control),
and on the host as uid 100000 (setpriv) with the exact paths handed to it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile

import pytest

MAP = ["--uidmap", "0:100000:65536", "--gidmap", "0:100000:65536"]
AS_MAPPED_ROOT = ["setpriv", "--reuid=100000", "--regid=100000", "--clear-groups", "--", "sh", "-c", 'exec "$0" "$@"']


def _status_ids(pid: int) -> tuple[int, int]:
    with open(f"/proc/{pid}/status") as f:
        lines = dict(line.split(":", 1) for line in f if ":" in line)
    return int(lines["Uid"].split()[0]), int(lines["Gid"].split()[0])


def _host_uid_by_ps(pid: int) -> int:
    return int(subprocess.run(["ps", "-o", "uid=", "-p", str(pid)], capture_output=True, text=True).stdout)


def _inspect(md, name: str) -> dict:
    r = md("inspect", name)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)[0]


def test_remapped_root_is_0_inside_and_100000_on_the_host(md, busybox, detached):
    name, cid = detached(*MAP, busybox, "sh", "-c", "sleep 600")
    r = md("exec", name, "sh", "-c", "id -u; id -g; cat /proc/self/uid_map /proc/self/gid_map")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["0", "0", "0", "100000", "65536", "0", "100000", "65536"]
    rec = _inspect(md, name)
    pid = rec["State"]["Pid"]
    assert _status_ids(pid) == (100000, 100000)
    assert _host_uid_by_ps(pid) == 100000
    assert rec["HostConfig"]["IDMappings"] == {"UidMap": ["0:100000:65536"], "GidMap": ["0:100000:65536"]}
    assert rec["HostConfig"]["UsernsMode"] == ""


def test_gidmap_defaults_to_the_uidmap_and_several_ranges(md, busybox):
    r = md("run", "--rm", "--uidmap", "0:200000:1000", "--uidmap", "1000:300000:64536", busybox,
           "sh", "-c", "cat /proc/self/uid_map /proc/self/gid_map")
    assert r.returncode == 0, r.stderr
    rows = [line.split() for line in r.stdout.splitlines()]
    assert rows == [["0", "200000", "1000"], ["1000", "300000", "64536"]] * 2


def test_files_written_in_the_rootfs_and_a_volume_belong_to_the_mapped_root(md, busybox, detached, state_root):
    vol = f"uv{os.urandom(3).hex()}"
    name, cid = detached(*MAP, "-v", f"{vol}:/data", "-w", "/new/work", busybox, "sh", "-c",
                         "touch /created /data/in-volume && echo x >> /etc/passwd && mkdir /tmp/d && "
                         "touch /tmp/ready; sleep 600")
    try:
        assert _wait(lambda: md("exec", name, "test", "-e", "/tmp/ready").returncode == 0)
        upper = state_root / "containers" / cid / "upper"
        for p in ("created", "etc/passwd", "tmp/d", "new/work"):  # new, copied up, made by the engine
            st = os.lstat(upper / p)
            assert (st.st_uid, st.st_gid) == (100000, 100000), p
        data = json.loads(md("volume", "inspect", vol).stdout)[0]["Mountpoint"]
        assert os.stat(f"{data}/in-volume").st_uid == 100000
        assert os.stat(data).st_uid == 100000  # a new volume is given to the mapped root
        # the image's files (root's in the shared layer) are root's inside, 100000's on the host
        r = md("exec", name, "stat", "-c", "%u:%g", "/bin/busybox", "/", "/etc/hosts", "/etc/resolv.conf")
        assert r.stdout.split() == ["0:0"] * 4, r.stderr
        r = md("exec", name, "sh", "-c", "echo 10.0.0.9 extra >> /etc/hosts && echo edited")
        assert r.stdout.strip() == "edited", r.stderr  # root inside may edit its /etc/hosts, as in Docker
        merged = _inspect(md, name)["GraphDriver"]["Data"]["MergedDir"]
        assert merged.startswith(str(state_root / "remap" / cid))
        assert os.stat(f"{merged}/bin/busybox").st_uid == 100000
        # the layer itself is untouched: still root's, shared with containers without a map
        assert _layer_owners(md, state_root, busybox) == {0}
    finally:
        md("rm", "-f", name)
        md("volume", "rm", vol)


def test_a_volume_filled_from_the_image_belongs_to_the_mapped_root(md, busybox, state_root):
    """Copy-up (the image's /etc into a new volume) through the remapped rootfs: the copies are
    the mapped root's on disk, root's inside, writable by it."""
    vol = f"ue{os.urandom(3).hex()}"
    try:
        r = md("run", "--rm", *MAP, "-v", f"{vol}:/etc", busybox, "sh", "-c",
               "stat -c %u:%g /etc /etc/passwd; touch /etc/x && echo wrote")
        assert r.stdout.split() == ["0:0", "0:0", "wrote"], r.stderr
        data = json.loads(md("volume", "inspect", vol).stdout)[0]["Mountpoint"]
        assert {os.lstat(os.path.join(data, f)).st_uid for f in os.listdir(data)} == {100000}
    finally:
        md("volume", "rm", vol)


def _layer_owners(md, state_root, image: str) -> set[int]:
    """The owners of every file in the image's (shared) layer snapshots."""
    layers = json.loads(md("image", "inspect", image).stdout)[0]["RootFS"]["Layers"]
    return {os.lstat(os.path.join(d, f)).st_uid for layer in layers
            for d, _, fs in os.walk(state_root / "image" / "layers" / "sha256" / layer[7:]) for f in fs}


def _wait(pred, n=200):
    import time

    for _ in range(n):
        if pred():
            return True
        time.sleep(0.05)
    return False


def test_userns_host_and_the_remap_default(md, busybox):
    host_map = "0 0 4294967295"
    r = md("run", "--rm", "--userns", "host", busybox, "cat", "/proc/self/uid_map")
    assert r.returncode == 0 and r.stdout.split() == host_map.split(), r.stderr
    remap = {"MINIDOCK_USERNS_REMAP": "0:300000:65536"}
    r = md("run", "--rm", busybox, "sh", "-c", "cat /proc/self/uid_map; id -u", env=remap)
    assert r.returncode == 0 and r.stdout.split() == ["0", "300000", "65536", "0"], r.stderr
    r = md("run", "--rm", "--userns", "host", busybox, "cat", "/proc/self/uid_map", env=remap)
    assert r.returncode == 0 and r.stdout.split() == host_map.split(), r.stderr
    r = md("run", "--rm", "--userns", "private", "--uidmap", "0:310000:1000", busybox, "cat",
           "/proc/self/uid_map", env=remap)  # flags win over the default
    assert r.stdout.split() == ["0", "310000", "1000"], r.stderr
    # the maps are the record's: a later start without the variable is the same
    name = f"ur{os.urandom(3).hex()}"
    assert md("create", "--name", name, busybox, "cat", "/proc/self/uid_map", env=remap).returncode == 0
    try:
        r = md("start", "-a", name)
        assert r.stdout.split() == ["0", "300000", "65536"], r.stderr
    finally:
        md("rm", "-f", name)
    r = md("info", "--format", "{{json .SecurityOptions}}", env=remap)  # as Docker's info with userns-remap
    assert json.loads(r.stdout) == ["name=seccomp,profile=builtin", "name=userns"], r.stderr
    assert "name=userns" not in md("info", "--format", "{{json .SecurityOptions}}").stdout
    bad = md("run", "--rm", busybox, "true", env={"MINIDOCK_USERNS_REMAP": "nosuchuser"})
    assert bad.returncode == 125 and "no subordinate ranges found for 'nosuchuser'" in bad.stderr


BAD = [
    (["--uidmap", "0:100000"], 'UID setting is malformed expected ["uint32:uint32:uint32"]: ["0:100000"]'),
    (["--gidmap", "0:x:1"], 'GID setting is malformed'),
    (["--uidmap", "0:100000:0"], "the range must hold at least one ID"),
    (["--uidmap", "0:4294967290:10"], "the range must hold at least one ID and end below 4294967295"),
    (["--uidmap", "1:100000:10"], "container ID 0 cannot be mapped to a host ID"),
    (["--uidmap", "0:100000:65536", "--uidmap", "10:300000:5"], "conflicts with other mappings"),
    (["--uidmap", "0:100000:10", "--uidmap", "10:100005:5"], "conflicts with other mappings"),
    (["--uidmap", "0:100000:65536", "--userns", "host"], "are mutually exclusive"),
    (["--subuidname", "nosuchname"], "no subordinate ranges found for 'nosuchname'"),
    (["--subuidname", "x", "--uidmap", "0:1:10"], "are mutually exclusive"),
    (["--userns", "keep-id"], "keep-id is only supported in rootless mode"),
    (["--userns", "nomap"], "nomap is only supported in rootless mode"),
    (["--userns", "bogus"], "--userns: invalid USER mode"),
    (["--userns", "ns:/proc/1/ns/user"], "joining an existing user namespace is not supported"),
    (["--userns", "private"], "must provide at least one UID or GID mapping"),
    ([*MAP, "--privileged"], "privileged mode is incompatible with user namespaces"),
    ([*MAP, "--network", "host"], "cannot share the host's network namespace when user namespaces are enabled"),
    ([*MAP, "--pid", "host"], "cannot share the host PID namespace when user namespaces are enabled"),
]


def test_bad_maps_are_refused_and_nothing_is_lost(md, busybox, detached, state_root):
    name, cid = detached(*MAP, busybox, "sleep", "600")
    before = sorted(os.listdir(state_root / "containers")), sorted(os.listdir(state_root / "remap"))
    for flags, message in BAD:
        for verb in ("run", "create"):
            r = md(verb, *(["--rm"] if verb == "run" else []), *flags, busybox, "true")
            assert r.returncode == 125, (flags, r.stdout, r.stderr)
            assert message in r.stderr, (flags, r.stderr)
            assert "Traceback" not in r.stderr
    assert (sorted(os.listdir(state_root / "containers")), sorted(os.listdir(state_root / "remap"))) == before
    assert md("exec", name, "true").returncode == 0  # the running one is untouched


def test_userns_auto_without_subordinate_ids_is_refused(md, busybox):
    """podman's --userns=auto reads /etc/subuid; without a `containers` entry it is refused (the
    allocation itself is unit-tested with a written subuid file)."""
    with open("/etc/subuid") if os.path.exists("/etc/subuid") else open(os.devnull) as f:
        if any(line.startswith("containers:") for line in f):
            pytest.skip("this host has subordinate IDs for `containers`: not the case tested here")
    r = md("run", "--rm", "--userns", "auto", busybox, "true")
    assert r.returncode == 125 and "could not find enough available IDs" in r.stderr


def test_records_stay_private_and_the_mapped_root_reaches_only_its_rootfs(md, busybox, detached, state_root):
    if not shutil.which("setpriv"):
        pytest.skip("setpriv is needed")
    name, cid = detached(*MAP, busybox, "sleep", "600")
    other, ocid = detached("--uidmap", "0:200000:65536", busybox, "sleep", "600")
    plain, pcid = detached(busybox, "sleep", "600")
    cdir = state_root / "containers"
    for d in (cdir, cdir / cid, cdir / ocid, cdir / pcid):
        assert os.stat(d).st_mode & 0o777 == 0o700, d
        assert os.stat(d).st_uid == 0
    remap = state_root / "remap"
    assert os.stat(remap).st_mode & 0o777 == 0o711
    st = os.stat(remap / cid)
    assert (st.st_mode & 0o777, st.st_uid, st.st_gid) == (0o710, 0, 100000)

    def as_mapped_root(*cmd):
        return subprocess.run([*AS_MAPPED_ROOT, *map(str, cmd)], capture_output=True, text=True, timeout=30)

    # control: what it must reach, it reaches (so the refusals below are the modes' doing)
    assert as_mapped_root("cat", remap / cid / "rootfs" / "etc" / "passwd").returncode == 0
    for path in (cdir / cid / "config.json", cdir / ocid / "config.json", cdir / pcid / "config.json",
                 cdir / cid / "state.json", cdir / cid / "hosts"):
        r = as_mapped_root("cat", path)
        assert r.returncode != 0 and "Permission denied" in r.stderr, (path, r.stdout)
    for d in (cdir, remap, state_root / "volumes", state_root / "image"):
        assert as_mapped_root("ls", d).returncode != 0, d
    # another container's rootfs (another map): not crossable; one without a map: not reachable
    r = as_mapped_root("cat", remap / ocid / "rootfs" / "etc" / "passwd")
    assert r.returncode != 0 and "Permission denied" in r.stderr
    r = as_mapped_root("cat", cdir / pcid / "merged" / "etc" / "passwd")
    assert r.returncode != 0 and "Permission denied" in r.stderr
    # any other host user (nobody) is kept out of the remapped container's rootfs too
    r = subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--", "sh", "-c",
                        'exec "$0" "$@"', "cat", str(remap / cid / "rootfs" / "etc" / "passwd")],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode != 0 and "Permission denied" in r.stderr


def test_attack_the_mapped_root_cannot_read_records_or_host_files_bound_in(md, busybox, detached, state_root):
    """The mapped root has every capability in its namespace; given another container's record
    directory and a root-only host file, it still reads neither. Control: the same command in a
    container without a user namespace reads both."""
    victim, vcid = detached("-e", "SECRET=hunter2", busybox, "sleep", "600")
    secret_dir = tempfile.mkdtemp(prefix="minidock-userns-secret-", dir="/tmp")
    try:
        os.chmod(secret_dir, 0o755)
        secret = os.path.join(secret_dir, "shadow")
        with open(secret, "w") as f:
            f.write("root-only\n")
        os.chmod(secret, 0o600)
        binds = ["-v", f"{state_root / 'containers' / vcid}:/victim:ro", "-v", f"{secret}:/host-secret:ro"]
        script = ("cat /victim/config.json >/dev/null && echo READ-RECORD; cat /host-secret && echo READ-HOST; "
                  "ls /victim >/dev/null && echo LISTED; id -u")
        control = md("run", "--rm", *binds, busybox, "sh", "-c", script)
        assert "READ-RECORD" in control.stdout and "READ-HOST" in control.stdout, control.stderr
        r = md("run", "--rm", *MAP, *binds, busybox, "sh", "-c", script)
        assert r.returncode == 0, r.stderr
        assert "READ-RECORD" not in r.stdout and "READ-HOST" not in r.stdout and "LISTED" not in r.stdout
        assert "root-only" not in r.stdout and "hunter2" not in r.stdout
        assert r.stdout.split()[-1] == "0"  # it was root inside
        assert "Permission denied" in r.stderr
        # nor can it take the files over: chown/chmod of host-root files are refused in its namespace
        r = md("run", "--rm", *MAP, "-v", f"{secret}:/host-secret", busybox, "sh", "-c",
               "chmod 666 /host-secret; chown 0:0 /host-secret; cat /host-secret")
        assert "root-only" not in r.stdout
        assert os.stat(secret).st_mode & 0o777 == 0o600 and os.stat(secret).st_uid == 0
    finally:
        shutil.rmtree(secret_dir, ignore_errors=True)


def test_podman_maps_the_same_way(md, busybox, busybox_tar):
    """Side by side with podman --uidmap on this machine: the same maps, the same ids inside, the
    same host uid for the process."""
    if not shutil.which("podman"):
        pytest.skip("podman is not installed")
    w = tempfile.mkdtemp(prefix="minidock-podman-cmp-", dir="/tmp")
    os.chmod(w, 0o755)
    base = ["podman", "--root", f"{w}/root", "--runroot", f"{w}/run", "--runtime", "runc"]
    ul = ["--ulimit", "nproc=1024:1024", "--ulimit", "nofile=1024:1024"]  # root here lacks CAP_SYS_RESOURCE
    script = "id -u; id -g; cat /proc/self/uid_map /proc/self/gid_map; sleep 600"
    want = ["0", "0", "0", "100000", "65536", "0", "100000", "65536"]
    try:
        assert subprocess.run([*base, "import", str(busybox_tar), "localhost/busybox"],
                              capture_output=True).returncode == 0
        p = subprocess.run([*base, "run", "-d", "--network", "none", *ul, *MAP, "localhost/busybox", "sh", "-c",
                            script], capture_output=True, text=True, timeout=120)
        if p.returncode != 0:
            pytest.skip(f"podman cannot run here: {p.stderr[-300:]}")
        pcid = p.stdout.strip()
        ppid = int(subprocess.run([*base, "inspect", "-f", "{{.State.Pid}}", pcid], capture_output=True,
                                  text=True).stdout)
        podman_ids = _status_ids(ppid)

        def podman_logs():
            return subprocess.run([*base, "logs", pcid], capture_output=True, text=True).stdout

        assert _wait(lambda: len(podman_logs().split()) >= len(want))
        podman_out = podman_logs()
        name = f"pc{os.urandom(3).hex()}"
        assert md("run", "-d", "--name", name, *MAP, busybox, "sh", "-c", script).returncode == 0
        try:
            ours_ids = _status_ids(_inspect(md, name)["State"]["Pid"])
            assert _wait(lambda: len(md("logs", name).stdout.split()) >= len(want))
            ours_out = md("logs", name).stdout
        finally:
            md("rm", "-f", name)
        assert ours_out.split() == podman_out.split() == want
        assert ours_ids == podman_ids == (100000, 100000)
    finally:
        subprocess.run([*base, "rm", "-af"], capture_output=True)
        subprocess.run([*base, "system", "reset", "-f"], capture_output=True)
        subprocess.run(["umount", "-R", w], capture_output=True)
        shutil.rmtree(w, ignore_errors=True)


def test_cp_commit_and_export_translate_owners(md, md_env, busybox, detached, state_root, tmp_path):
    """Docker's rule with userns-remap: what goes in belongs to the container's root (100000 on
    disk), what comes out (cp -a, cp to a tar, export, commit) carries the IDs the container sees."""
    import io
    import tarfile

    name, cid = detached(*MAP, busybox, "sh", "-c", "touch /made; chown 7:8 /made; touch /tmp/ready; sleep 600")
    assert _wait(lambda: md("exec", name, "test", "-e", "/tmp/ready").returncode == 0)
    upper = state_root / "containers" / cid / "upper"
    assert (os.lstat(upper / "made").st_uid, os.lstat(upper / "made").st_gid) == (100007, 100008)
    src = tmp_path / "in.txt"
    src.write_text("x")
    assert md("cp", src, f"{name}:/copied").returncode == 0
    assert os.lstat(upper / "copied").st_uid == 100000
    assert md("exec", name, "stat", "-c", "%u:%g", "/copied").stdout.strip() == "0:0"
    stream = io.BytesIO()
    with tarfile.open(fileobj=stream, mode="w") as tf:
        ti = tarfile.TarInfo("fromtar")
        ti.uid = ti.gid = 5
        tf.addfile(ti, io.BytesIO(b""))
    r = subprocess.run([sys_exe(), "-m", "minidock", "cp", "-a", "-", f"{name}:/tmp"], input=stream.getvalue(),
                       capture_output=True, env=md_env)
    assert r.returncode == 0, r.stderr
    assert os.lstat(upper / "tmp" / "fromtar").st_uid == 100005  # -a: the archive's IDs, as the container's
    r = subprocess.run([sys_exe(), "-m", "minidock", "cp", f"{name}:/made", "-"], capture_output=True, env=md_env)
    member = tarfile.open(fileobj=io.BytesIO(r.stdout)).getmember("made")
    assert (member.uid, member.gid) == (7, 8)
    assert md("cp", "-a", f"{name}:/made", tmp_path / "out").returncode == 0
    assert (os.lstat(tmp_path / "out").st_uid, os.lstat(tmp_path / "out").st_gid) == (7, 8)
    assert md("export", "-o", tmp_path / "x.tar", name).returncode == 0
    owners = {(m.name, m.uid) for m in tarfile.open(tmp_path / "x.tar") if m.name in ("bin/busybox", "made")}
    assert owners == {("bin/busybox", 0), ("made", 7)}
    assert all(m.uid < 65536 for m in tarfile.open(tmp_path / "x.tar"))
    img = f"userns-commit-{os.urandom(3).hex()}"
    assert md("commit", name, img).returncode == 0, "commit"
    try:
        r = md("run", "--rm", img, "stat", "-c", "%u:%g", "/made", "/copied")
        assert r.stdout.split() == ["7:8", "0:0"], r.stderr
    finally:
        md("rmi", img)


def sys_exe() -> str:
    import sys

    return sys.executable


def test_without_idmapped_mounts_a_chowned_copy_of_the_image(md, busybox, state_root):
    """Where the kernel or the state root's filesystem has no idmapped mounts (forced here with
    MINIDOCK_USERNS_IDMAP=0), the container gets a private copy of the image owned by its root,
    as podman does: the same view inside (two layers merged, a whiteout applied), the shared layers
    untouched."""
    base, img, name = (f"u{w}{os.urandom(3).hex()}" for w in ("b", "i", "c"))
    assert md("run", "--name", base, busybox, "sh", "-c", "rm /bin/ls; mkdir /x; touch /x/f; chown 5:6 /x/f"
              ).returncode == 0
    assert md("commit", base, img).returncode == 0
    env = {"MINIDOCK_USERNS_IDMAP": "0"}
    script = ("stat -c %u:%g / /bin/busybox /x/f; test -e /bin/ls || echo no-ls; "
              "echo x >> /etc/passwd && touch /etc/new && echo wrote")
    try:
        r = md("run", "--name", name, *MAP, img, "sh", "-c", script, env=env)
        assert r.returncode == 0, r.stderr
        assert r.stdout.split() == ["0:0", "0:0", "5:6", "no-ls", "wrote"]
        cdir = state_root / "containers" / _inspect(md, name)["Id"]
        assert os.stat(cdir / "shifted" / "bin" / "busybox").st_uid == 100000
        assert os.stat(cdir / "shifted" / "x" / "f").st_uid == 100005
        assert os.stat(cdir / "upper" / "etc" / "new").st_uid == 100000
        assert _layer_owners(md, state_root, img) == {0, 5}  # (5: the committed /x/f)
        r = md("start", "-a", name, env=env)  # a second start reuses the copy
        assert r.stdout.split()[:4] == ["0:0", "0:0", "5:6", "no-ls"], r.stderr
    finally:
        md("rm", "-f", name, base)
        md("rmi", img)
