"""Docker-compatible verbs and output (issue 16): ps/images/inspect formats and filters, pause,
diff, attach, run -a, prune --filter. The side-by-side comparison with Docker is in
tests/conformance/."""

import json
import os
import subprocess
import sys
import time

import pytest


def _wait_for(pred, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return False


def test_ps_formats_filters_and_label_method(md, busybox, detached):
    name, cid = detached("-l", "tier=web", "-l", "x=1", busybox, "sleep", "60")
    other, _ = detached(busybox, "sleep", "60", name=name + "x")
    r = md("ps", "--filter", f"name=^/{name}$", "--format", '{{.Names}} {{.Label "tier"}} {{.Labels}}')
    assert r.returncode == 0, r.stderr
    assert r.stdout == f"{name} web tier=web,x=1\n"
    r = md("ps", "--filter", f"name={name}", "-q")
    assert len(r.stdout.split()) == 2
    rows = [json.loads(line) for line in md("ps", "--format", "json", "--filter", "label=tier").stdout.splitlines()]
    assert [r["Names"] for r in rows] == [name]
    assert {"Labels", "Mounts", "Networks", "LocalVolumes", "Size", "State", "Status"} <= set(rows[0])
    out = md("ps", "--format", "table {{.ID}}\\t{{upper .Names}}", "--filter", "label=tier").stdout
    assert out.splitlines() == ["CONTAINER ID   NAMES", f"{cid[:12]}   {name.upper()}"]
    assert md("ps", "-n", "1", "-q").stdout.strip() == md("ps", "-l", "-q").stdout.strip()
    assert "(virtual " in md("ps", "-s", "--filter", f"name=^/{name}$").stdout
    bad = md("ps", "--format", "{{.Names")
    assert bad.returncode == 64 and "template: :1: unclosed action" in bad.stderr
    bad = md("ps", "--format", "{{.Nope}}")
    assert bad.returncode == 1 and "can't evaluate field Nope" in bad.stderr
    assert md("ps", "--filter", "bogus=1").returncode == 1


def test_inspect_hostconfig_defaults_and_size(md, busybox, detached):
    name, _ = detached(busybox, "sh", "-c", "echo hi > /f; sleep 60")
    r = md("inspect", "-f", "{{.HostConfig.Memory}} {{.HostConfig.ShmSize}} {{json .HostConfig.CapAdd}} "
           "{{.HostConfig.RestartPolicy.Name}} {{.HostConfig.PidsLimit}}", name)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "0 67108864 null no <nil>\n"
    assert _wait_for(lambda: int(md("inspect", "--size", "-f", "{{.SizeRw}}", name).stdout) > 0)
    r = md("inspect", "-f", "{{.SizeRootFs}}", "--size", name)
    assert int(r.stdout) > 1_000_000


def test_images_reference_globs_list_only_matching_tags(md, busybox):
    tags = ["cmp-repo:1", "cmp-repo:2", "cmp-other/cmp-repo:1"]
    for t in tags:
        assert md("tag", busybox, t).returncode == 0
    try:
        r = md("images", "cmp-repo", "--format", "{{.Repository}}:{{.Tag}}")
        assert sorted(r.stdout.split()) == ["cmp-repo:1", "cmp-repo:2"]
        r = md("images", "--filter", "reference=cmp-repo:1", "--format", "{{.Repository}}:{{.Tag}}")
        assert r.stdout.split() == ["cmp-repo:1"]
        r = md("images", "--filter", "reference=*/cmp-repo", "--format", "{{.Repository}}:{{.Tag}}")
        assert r.stdout.split() == ["cmp-other/cmp-repo:1"]
        # `images REPO -q | xargs rmi` removes only what matched: the ID is still tagged elsewhere
        assert md("images", "cmp-repo", "-q").stdout.strip() == md("images", busybox, "-q").stdout.strip()
    finally:
        for t in tags:
            md("rmi", t)


def test_pause_unpause_freezes_the_container(md, busybox, detached):
    name, _ = detached(busybox, "sh", "-c", "i=0; while :; do i=$((i+1)); echo $i > /n; sleep 0.05; done")
    assert md("pause", name).stdout == f"{name}\n"
    assert md("ps", "--filter", f"name=^/{name}$", "--format", "{{.State}} {{.Status}}").stdout.startswith(
        "paused Up ")
    r = md("pause", name)
    assert r.returncode == 1 and "is already paused" in r.stderr
    r = md("exec", name, "true")
    assert r.returncode != 0 and "paused" in r.stderr
    assert md("unpause", name).returncode == 0
    first = md("exec", name, "cat", "/n").stdout
    assert _wait_for(lambda: md("exec", name, "cat", "/n").stdout != first)
    r = md("unpause", name)
    assert r.returncode == 1 and "is not paused" in r.stderr
    md("pause", name)
    assert md("rm", "-f", name).returncode == 0  # a frozen container is thawed to die


def test_diff_lists_added_changed_deleted(md, busybox, detached):
    name, _ = detached(busybox, "sh", "-c", "rm /bin/ls; mkdir /newdir; echo x > /newdir/f; "
                                            "echo y >> /etc/passwd; sleep 60")
    assert _wait_for(lambda: "A /newdir/f" in md("diff", name).stdout)
    lines = md("diff", name).stdout.splitlines()
    for want in ("C /bin", "D /bin/ls", "C /etc", "C /etc/passwd", "A /newdir", "A /newdir/f"):
        assert want in lines
    assert lines == sorted(lines, key=lambda s: s[2:])


def test_attach_streams_input_detaches_and_returns_exit_code(md, md_env, busybox, detached):
    name, _ = detached("-i", busybox, "sh", "-c",
                       'while read l; do [ "$l" = quit ] && exit 7; echo "got $l"; done')
    # the detach keys leave it running
    r = md("attach", name, input="one\n\x10\x11")
    assert r.returncode == 0 and "read escape sequence" in r.stderr
    assert "running" in md("inspect", "-f", "{{.State.Status}}", name).stdout
    r = md("attach", "--detach-keys", "ctrl-x", name, input="two\nquit\n")
    assert r.returncode == 7, r.stderr
    assert "got two" in r.stdout
    r = md("attach", name)
    assert r.returncode == 1 and "start it first" in r.stderr
    assert md("attach", "--detach-keys", "bogus-key", name).returncode != 0


def test_run_attach_selected_streams(md, busybox):
    r = md("run", "--rm", "-a", "stdout", busybox, "sh", "-c", "echo out; echo err >&2")
    assert (r.stdout, r.stderr) == ("out\n", "")
    r = md("run", "--rm", "-a", "stderr", busybox, "sh", "-c", "echo out; echo err >&2")
    assert (r.stdout, r.stderr) == ("", "err\n")
    assert md("run", "-d", "-a", "stdout", busybox, "true").returncode == 125


def test_sig_proxy_false_leaves_the_container_running(md_env, busybox, md):
    name = f"sp{os.urandom(3).hex()}"
    p = subprocess.Popen([sys.executable, "-m", "minidock", "run", "--name", name, "--sig-proxy=false", busybox,
                          "sleep", "60"], env=md_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert _wait_for(lambda: md("inspect", "-f", "{{.State.Running}}", name).stdout.strip() == "true")
        time.sleep(0.3)
        p.send_signal(2)
        p.wait(timeout=20)
        assert md("inspect", "-f", "{{.State.Running}}", name).stdout.strip() == "true"
    finally:
        p.kill()
        md("rm", "-f", name)


def test_prune_filters(md, busybox):
    old = md("create", "--label", "keep=yes", busybox, "true").stdout.strip()
    new = md("create", busybox, "true").stdout.strip()
    try:
        r = md("container", "prune", "-f", "--filter", "until=1h")
        assert old not in r.stdout and new not in r.stdout
        r = md("container", "prune", "-f", "--filter", "label!=keep")
        assert new in r.stdout and old not in r.stdout
        r = md("container", "prune", "-f", "--filter", "label=keep=yes")
        assert old in r.stdout
        assert md("container", "prune", "-f", "--filter", "nope=1").returncode == 1
    finally:
        md("rm", "-f", old, new)
    assert md("volume", "create", "--label", "k=v", "cmpvol").returncode == 0
    try:
        r = md("volume", "prune", "-f", "--filter", "label=k=other", "--filter", "all=true")
        assert "cmpvol" not in r.stdout
        r = md("volume", "prune", "-f", "--filter", "label=k=v", "--filter", "all=true")
        assert "cmpvol" in r.stdout
    finally:
        md("volume", "rm", "cmpvol")


# --- run/create flags --------------------------------------------------------------------------
def test_sysctl_outside_the_containers_namespaces_is_refused_and_the_host_untouched(md, busybox):
    """The attack: `--sysctl kernel.panic=...` would be written to the host's /proc/sys (kernel.panic
    is not namespaced). Refused before anything runs; the host's value stays."""
    before = open("/proc/sys/kernel/panic").read()
    for flag in ("kernel.panic=5", "vm.swappiness=1", "kernel.hostname=x", "fs.file-max=10"):
        r = md("run", "--rm", "--sysctl", flag, busybox, "true")
        assert r.returncode == 125 and "is not allowed" in r.stderr, (flag, r.stderr)
    assert open("/proc/sys/kernel/panic").read() == before
    r = md("run", "--rm", "--network", "host", "--sysctl", "net.ipv4.ip_forward=0", busybox, "true")
    assert r.returncode == 125 and "hosts network namespace" in r.stderr
    r = md("run", "--rm", "--network", "none", "--sysctl", "kernel.shmmax=123456",
           "--sysctl", "net.ipv4.ip_unprivileged_port_start=80", busybox, "sh", "-c",
           "cat /proc/sys/kernel/shmmax /proc/sys/net/ipv4/ip_unprivileged_port_start")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["123456", "80"]


def test_the_runtime_refuses_host_sysctls_too(tmp_path):
    from minidock.errors import InvalidArgument
    from minidock.runtime.spec import check_sysctls

    with pytest.raises(InvalidArgument, match="not in a separate kernel namespace"):
        check_sysctls({"namespaces": [{"type": "ipc"}, {"type": "uts"}], "sysctl": {"kernel.panic": "1"}})
    with pytest.raises(InvalidArgument, match="hosts ipc namespace"):
        check_sysctls({"namespaces": [], "sysctl": {"kernel.shmmax": "1"}})
    check_sysctls({"namespaces": [{"type": "ipc"}, {"type": "network"}],
                   "sysctl": {"kernel.shmmax": "1", "net.core.somaxconn": "5"}})


def test_gpus_and_negative_oom_score_adj_are_refused_clearly(md, busybox):
    r = md("run", "--rm", "--gpus", "all", busybox, "true")
    assert r.returncode == 125 and "[[gpu]]" in r.stderr and "--device" in r.stderr
    r = md("run", "--rm", "--oom-score-adj", "-5", busybox, "true")
    assert r.returncode == 125 and "CAP_SYS_RESOURCE" in r.stderr
    r = md("run", "--rm", "--oom-score-adj", "1001", busybox, "true")
    assert r.returncode == 125 and "range for oom score adj" in r.stderr
    r = md("run", "--rm", "--network", "none", "--oom-score-adj", "500", busybox, "cat", "/proc/self/oom_score_adj")
    assert r.stdout.strip() == "500"


def test_namespace_sharing_flags(md, busybox, detached):
    r = md("run", "--rm", "--network", "none", "--pid", "host", busybox, "sh", "-c", "ls /proc | grep -c '^[0-9]'")
    assert int(r.stdout) > 20
    r = md("run", "--rm", "--network", "none", "--uts", "host", busybox, "hostname")
    assert r.stdout.strip() == os.uname().nodename
    donor, _ = detached("--ipc", "shareable", "--network", "none", busybox, "sleep", "60")
    private, _ = detached("--network", "none", busybox, "sleep", "60")
    ns = md("exec", donor, "readlink", "/proc/self/ns/ipc").stdout
    r = md("run", "--rm", "--network", "none", "--ipc", f"container:{donor}", "--pid", f"container:{donor}",
           busybox, "sh", "-c", "readlink /proc/self/ns/ipc; ps -o comm | grep -c sleep")
    assert r.stdout.split() == [ns.strip(), "1"], r.stderr
    r = md("run", "--rm", "--ipc", f"container:{private}", busybox, "true")
    assert r.returncode == 125 and "non-shareable IPC" in r.stderr
    for flag, bad in (("--pid", "bogus"), ("--uts", "container:x"), ("--cgroupns", "x"), ("--ipc", "nope")):
        r = md("run", "--rm", flag, bad, busybox, "true")
        assert r.returncode == 125 and "invalid" in r.stderr
    r = md("run", "--rm", "--network", "none", "--cgroupns", "host", busybox, "cat", "/proc/self/cgroup")
    assert "/" + os.environ.get("MINIDOCK_CGROUP_PARENT", "minidock") in r.stdout or "minidock" in r.stdout


def test_devices_shm_ulimits_cidfile_platform(md, busybox, tmp_path):
    r = md("run", "--rm", "--network", "none", "--device", "/dev/fuse:/dev/myfuse:r", busybox,
           "ls", "-l", "/dev/myfuse")
    assert r.returncode == 0 and "10, 229" in r.stdout, r.stderr
    r = md("run", "--rm", "--network", "none", "--device-cgroup-rule", "c 10:229 rwm", busybox, "true")
    assert r.returncode == 0, r.stderr
    assert md("run", "--rm", "--device-cgroup-rule", "x 1:3 rwm", busybox, "true").returncode == 125
    few = md("run", "--rm", "--network", "none", busybox, "ls", "/dev").stdout.split()
    many = md("run", "--rm", "--network", "none", "--privileged", busybox, "ls", "/dev").stdout.split()
    assert "fuse" not in few and "fuse" in many and len(many) > len(few)
    r = md("run", "--rm", "--network", "none", "--shm-size", "16m", busybox, "df", "-k", "/dev/shm")
    assert r.stdout.split()[-5] == "16384", r.stdout
    r = md("run", "--rm", "--network", "none", "--ulimit", "nproc=100:200", "--ulimit", "core=-1",
           busybox, "sh", "-c", "ulimit -u; ulimit -c")
    assert r.stdout.split() == ["100", "unlimited"]
    r = md("run", "--rm", "--ulimit", "bogus=1", busybox, "true")
    assert r.returncode == 125 and "invalid ulimit type: bogus" in r.stderr
    cid = tmp_path / "cid"
    r = md("create", "--cidfile", cid, busybox, "true")
    try:
        assert cid.read_text() == r.stdout.strip()
        r2 = md("create", "--cidfile", cid, busybox, "true")
        assert r2.returncode == 125 and "Container ID file found" in r2.stderr
    finally:
        md("rm", r.stdout.strip())
    native = {"x86_64": "amd64", "aarch64": "arm64"}.get(os.uname().machine, os.uname().machine)
    r = md("run", "--rm", "--platform", "linux/s390x", busybox, "true")
    assert r.returncode == 125 and "does not match the specified platform" in r.stderr
    assert md("run", "--rm", "--network", "none", "--platform", f"linux/{native}", busybox, "true").returncode == 0


def test_oom_kill_disable(md, busybox):
    from minidock.runtime.cgroups import cgroup_version

    r = md("run", "--rm", "--network", "none", "-m", "64m", "--oom-kill-disable", busybox, "cat",
           "/sys/fs/cgroup/memory/memory.oom_control")
    if cgroup_version() == 2:
        assert "does not support OomKillDisable" in r.stderr
    else:
        assert "oom_kill_disable 1" in r.stdout, r.stderr


def test_log_drivers_and_logs_since_until(md, busybox):
    name = f"lg{os.urandom(3).hex()}"
    r = md("run", "--name", name, "--network", "none", "--log-opt", "max-size=1k", "--log-opt", "max-file=3",
           "--log-opt", "compress=true", busybox, "sh", "-c",
           'i=0; while [ $i -lt 300 ]; do echo "line $i"; i=$((i+1)); done')
    try:
        assert r.returncode == 0, r.stderr
        out = md("logs", name).stdout.splitlines()
        assert out[-1] == "line 299" and len(out) < 300
        nums = [int(x.split()[1]) for x in out]
        assert nums == list(range(nums[0], 300))
        assert md("logs", "--since", "1h", name).stdout.splitlines() == out
        assert md("logs", "--until", "2000-01-01T00:00:00Z", name).stdout == ""
        assert md("logs", "--since", "2999-01-01", name).stdout == ""
        assert md("logs", "--since", "nonsense", name).returncode != 0
        assert md("inspect", "-f", "{{.HostConfig.LogConfig.Type}} {{index .HostConfig.LogConfig.Config "
                  '"max-file"}}', name).stdout == "json-file 3\n"
    finally:
        md("rm", name)
    r = md("run", "--name", name, "--network", "none", "--log-driver", "none", busybox, "echo", "hi")
    try:
        assert r.stdout == "hi\n"
        r = md("logs", name)
        assert r.returncode == 1 and "does not support reading" in r.stderr
    finally:
        md("rm", name)
    r = md("run", "--rm", "--log-driver", "syslog", busybox, "true")
    assert r.returncode == 125 and "no log driver named 'syslog'" in r.stderr


# --- cp, container environment, exec errors -------------------------------------------------------
def test_cp_tar_streams_ownership_and_follow_link(md, md_env, busybox, detached, tmp_path):
    import tarfile

    name, _ = detached("--network", "none", busybox, "sh", "-c",
                       "mkdir -p /d/sub; echo hi > /d/f; echo deep > /d/sub/g; ln -s f /d/link; "
                       "chown 123:456 /d/f; ln -s /d /dl; sleep 60")
    assert _wait_for(lambda: md("exec", name, "test", "-L", "/dl").returncode == 0)
    p = subprocess.run([sys.executable, "-m", "minidock", "cp", f"{name}:/d", "-"], env=md_env,
                       capture_output=True, timeout=60)
    assert p.returncode == 0, p.stderr
    tar = tarfile.open(fileobj=__import__("io").BytesIO(p.stdout))
    members = {m.name: m for m in tar.getmembers()}
    assert set(members) == {"d", "d/f", "d/link", "d/sub", "d/sub/g"}
    assert (members["d/f"].uid, members["d/f"].gid) == (123, 456) and members["d/link"].linkname == "f"
    # to the host: owned by the caller; -a keeps the container's owners
    md("cp", f"{name}:/d", tmp_path / "plain", check=True)
    assert os.stat(tmp_path / "plain" / "f").st_uid == os.getuid()
    md("cp", "-a", f"{name}:/d", tmp_path / "arch", check=True)
    assert (os.stat(tmp_path / "arch" / "f").st_uid, os.stat(tmp_path / "arch" / "f").st_gid) == (123, 456)
    # -L follows a link at SRC_PATH, without it the link itself is copied
    md("cp", f"{name}:/dl", tmp_path / "link", check=True)
    md("cp", "-L", f"{name}:/dl", tmp_path / "followed", check=True)
    assert os.path.islink(tmp_path / "link") and os.path.isdir(tmp_path / "followed")
    # a tar stream in: owners from the archive with -a, the container's root without
    src = tmp_path / "src"
    (src / "x").mkdir(parents=True)
    (src / "x" / "a").write_text("a")
    os.chown(src / "x" / "a", 7, 8)
    data = subprocess.run(["tar", "cf", "-", "-C", str(src), "x"], capture_output=True, check=True).stdout
    r = subprocess.run([sys.executable, "-m", "minidock", "cp", "-", f"{name}:/tmp"], input=data, env=md_env,
                       capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert md("exec", name, "stat", "-c", "%u:%g %s", "/tmp/x/a").stdout == "0:0 1\n"
    r = subprocess.run([sys.executable, "-m", "minidock", "cp", "-a", "-", f"{name}:/root"], input=data,
                       env=md_env, capture_output=True, timeout=60)
    assert md("exec", name, "stat", "-c", "%u:%g", "/root/x/a").stdout == "7:8\n"


def test_cp_tar_stream_cannot_escape(md, md_env, busybox, detached, tmp_path):
    import io
    import tarfile

    name, _ = detached("--network", "none", busybox, "sleep", "60")
    marker = f"cp-tar-escape-{os.getpid()}"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        link = tarfile.TarInfo("up")
        link.type, link.linkname = tarfile.SYMTYPE, "/tmp"
        t.addfile(link)
        f = tarfile.TarInfo(f"up/{marker}")
        f.size = 1
        t.addfile(f, io.BytesIO(b"x"))
        bad = tarfile.TarInfo(f"../../{marker}")
        bad.size = 1
        t.addfile(bad, io.BytesIO(b"x"))
    r = subprocess.run([sys.executable, "-m", "minidock", "cp", "-", f"{name}:/root"], input=buf.getvalue(),
                       env=md_env, capture_output=True, timeout=60)
    assert r.returncode != 0 and b"leaves the destination" in r.stderr
    assert not os.path.exists(f"/tmp/{marker}") and not os.path.exists(f"/{marker}")
    assert md("exec", name, "cat", f"/tmp/{marker}").stdout == "x"  # the link resolved inside


def test_container_marker_mtab_and_exec_errors(md, busybox, detached):
    name, cid = detached("--network", "none", busybox, "sleep", "60")
    r = md("exec", name, "cat", "/run/.containerenv")
    assert f'id="{cid}"' in r.stdout and f'name="{name}"' in r.stdout and 'engine="minidock-' in r.stdout
    assert md("exec", name, "readlink", "/etc/mtab").stdout == "/proc/mounts\n"
    assert md("diff", name).stdout == ""  # the engine's own files are not changes
    r = md("exec", name, "nosuch")
    assert r.returncode == 126  # docker exec: 126 (docker run: 127)
    assert ('OCI runtime exec failed: exec failed: unable to start container process: exec: "nosuch": '
            "executable file not found in $PATH: unknown") in r.stderr
    assert md("exec", name, "/etc").returncode == 126
