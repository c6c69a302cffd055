"""minidock-runtime on OCI bundles, side by side with runc on the same bundle where the result is
observable (state JSON, exit codes, hostname, capabilities, rlimits, mounts, seccomp)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
RUNC = shutil.which("runc")


def _ours(root: Path) -> list[str]:
    return [sys.executable, "-m", "minidock.cli.runtime_cli", "--root", str(root)]


def _runc(root: Path) -> list[str]:
    return [RUNC, "--root", str(root)]


@pytest.fixture(scope="module")
def rootfs(busybox_tar, tmp_path_factory):
    d = tmp_path_factory.mktemp("oci") / "rootfs"
    d.mkdir()
    with tarfile.open(busybox_tar) as tf:
        tf.extractall(d, numeric_owner=True)  # noqa: S202 - our own recipe's tarball
    return d


@pytest.fixture
def bundle(rootfs, tmp_path, state_root):
    """A bundle whose config.json is `minidock-runtime spec`, made non-interactive."""
    b = tmp_path / "bundle"
    b.mkdir()
    (b / "rootfs").symlink_to(rootfs)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    subprocess.run([sys.executable, "-m", "minidock.cli.runtime_cli", "spec", "--bundle", str(b)], check=True, env=env)
    spec = json.loads((b / "config.json").read_text())
    spec["process"]["terminal"] = False
    spec["root"]["path"] = str(rootfs)
    spec["linux"]["cgroupsPath"] = f"{os.environ['MINIDOCK_CGROUP_PARENT']}/oci-{tmp_path.name[-12:]}"

    def write(args=None, **changes):
        s = json.loads(json.dumps(spec))
        if args:
            s["process"]["args"] = args
        for k, v in changes.items():
            s[k] = v
        (b / "config.json").write_text(json.dumps(s))
        return s

    write.path = b
    write.spec = spec
    return write


def rt(cmd, *args, timeout=30, **kw):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([*cmd, *map(str, args)], capture_output=True, text=True, timeout=timeout, env=env, **kw)


def rt_detached(cmd, *args):
    """create / run -d: the container keeps the stdio it was given, so give it none of our pipes."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([*cmd, *map(str, args)], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL, timeout=30, env=env)


def test_run_exit_codes_and_output_like_runc(bundle, tmp_path):
    bundle(["sh", "-c", "echo out; echo err >&2; hostname; exit 7"])
    r = rt(_ours(tmp_path / "s"), "run", "-b", bundle.path, "c1")
    assert (r.returncode, r.stdout, r.stderr) == (7, "out\nminidock\n", "err\n")
    if RUNC:
        r2 = rt(_runc(tmp_path / "r"), "run", "-b", bundle.path, "c1")
        assert (r2.returncode, r2.stdout, r2.stderr) == (r.returncode, r.stdout, r.stderr)


def test_lifecycle_and_state_json(bundle, tmp_path):
    bundle(["sleep", "30"])
    ours = _ours(tmp_path / "s")
    assert rt_detached(ours, "create", "-b", bundle.path, "--pid-file", tmp_path / "pid", "c2").returncode == 0
    st = json.loads(rt(ours, "state", "c2").stdout)
    assert st["status"] == "created" and st["id"] == "c2" and st["bundle"] == str(bundle.path)
    assert st["pid"] == int((tmp_path / "pid").read_text()) > 0
    assert {"ociVersion", "id", "status", "pid", "bundle"} <= set(st)
    assert rt(ours, "start", "c2").returncode == 0
    assert json.loads(rt(ours, "state", "c2").stdout)["status"] == "running"
    assert "c2" in rt(ours, "list", "-q").stdout
    assert str(st["pid"]) in rt(ours, "ps", "--format", "json", "c2").stdout
    r = rt(ours, "delete", "c2")
    assert r.returncode == 1 and "not stopped" in r.stderr
    assert rt(ours, "pause", "c2").returncode == 0
    assert json.loads(rt(ours, "state", "c2").stdout)["status"] == "paused"
    assert rt(ours, "resume", "c2").returncode == 0
    assert rt(ours, "kill", "c2", "KILL").returncode == 0
    for _ in range(50):
        if json.loads(rt(ours, "state", "c2").stdout)["status"] == "stopped":
            break
        time.sleep(0.05)
    assert json.loads(rt(ours, "state", "c2").stdout)["status"] == "stopped"
    assert rt(ours, "delete", "c2").returncode == 0
    r = rt(ours, "state", "c2")
    assert r.returncode == 1 and "does not exist" in r.stderr
    if RUNC:  # the same sequence of statuses with runc
        rc = _runc(tmp_path / "r")
        rt_detached(rc, "create", "-b", bundle.path, "c2")
        assert json.loads(rt(rc, "state", "c2").stdout)["status"] == "created"
        rt(rc, "start", "c2")
        assert json.loads(rt(rc, "state", "c2").stdout)["status"] == "running"
        rt(rc, "delete", "-f", "c2")


def test_exec_into_running_container(bundle, tmp_path):
    bundle(["sleep", "30"])
    ours = _ours(tmp_path / "s")
    assert rt_detached(ours, "run", "-d", "-b", bundle.path, "c3").returncode == 0
    try:
        r = rt(ours, "exec", "c3", "sh", "-c", "echo $$ $(cat /proc/1/cmdline | tr '\\0' ' ')")
        assert r.returncode == 0 and r.stdout.split()[1:] == ["sleep", "30"]
        proc = tmp_path / "process.json"
        proc.write_text(json.dumps({**bundle.spec["process"], "args": ["sh", "-c", "exit 4"]}))
        assert rt(ours, "exec", "--process", proc, "c3").returncode == 4
    finally:
        rt(ours, "delete", "-f", "c3")


def _status_of(bundle, tmp_path, cmd_factory, script):
    bundle(["sh", "-c", script])
    return rt(cmd_factory(tmp_path / cmd_factory.__name__), "run", "-b", bundle.path, "c4").stdout


@pytest.mark.skipif(RUNC is None, reason="runc is not installed")
def test_capabilities_rlimits_mounts_match_runc(bundle, tmp_path):
    script = ("grep -E '^Cap(Eff|Bnd|Prm)' /proc/self/status; ulimit -n; "
              "awk '{print $5, $9}' /proc/self/mountinfo | sort")
    ours = _status_of(bundle, tmp_path, _ours, script)
    theirs = _status_of(bundle, tmp_path, _runc, script)
    assert ours.splitlines()[:4] == theirs.splitlines()[:4]  # caps and RLIMIT_NOFILE
    assert set(ours.splitlines()[4:]) == set(theirs.splitlines()[4:])  # the same mount targets and types


def test_seccomp_profile_is_enforced(bundle, tmp_path):
    spec = bundle(["sh", "-c", "mkdir /dev/shm/d && echo made; chmod 700 /dev/shm && echo chmod"])
    spec["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
                                "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO",
                                              "errnoRet": 1}]}
    (bundle.path / "config.json").write_text(json.dumps(spec))
    r = rt(_ours(tmp_path / "s"), "run", "-b", bundle.path, "c5")
    assert "made" not in r.stdout and "chmod" in r.stdout
    assert "Operation not permitted" in r.stderr


def test_errors_reach_the_engines_log(bundle, tmp_path):
    log = tmp_path / "log.json"
    r = rt([*_ours(tmp_path / "s"), "--log", str(log), "--log-format", "json"], "start", "nosuch")
    assert r.returncode == 1
    entry = json.loads(log.read_text().splitlines()[-1])
    assert entry["level"] == "error" and "nosuch" in entry["msg"]


def test_console_socket_receives_the_pty(bundle, tmp_path):
    import socket

    spec = bundle(["sh", "-c", "tty; stty size"])
    spec["process"]["terminal"] = True
    spec["process"]["consoleSize"] = {"height": 30, "width": 100}
    (bundle.path / "config.json").write_text(json.dumps(spec))
    sock_path = str(tmp_path / "console.sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(sock_path)
    srv.listen(1)
    ours = _ours(tmp_path / "s")
    try:
        p = subprocess.Popen([*ours, "create", "-b", bundle.path, "--console-socket", sock_path, "c6"],
                             env=dict(os.environ, PYTHONPATH=str(REPO)))
        conn, _ = srv.accept()
        _, fds, _, _ = socket.recv_fds(conn, 1024, 1)
        assert p.wait(timeout=30) == 0 and len(fds) == 1
        master = fds[0]
        assert rt(ours, "start", "c6").returncode == 0
        out = b""
        deadline = time.time() + 10
        while time.time() < deadline and b"\n" not in out.split(b"/dev/pts/0", 1)[-1]:
            try:
                out += os.read(master, 1024)
            except OSError:
                break
        assert b"/dev/pts/0" in out
    finally:
        srv.close()
        rt(ours, "kill", "c6", "KILL")
        time.sleep(0.2)
        rt(ours, "delete", "-f", "c6")


def test_kill_by_signal_name_and_number(bundle, tmp_path):
    bundle(["sh", "-c", "trap 'exit 42' USR1; while :; do sleep 0.1; done"])
    ours = _ours(tmp_path / "s")
    p = subprocess.Popen([*ours, "run", "-b", bundle.path, "c7"], env=dict(os.environ, PYTHONPATH=str(REPO)))
    for _ in range(100):
        st = rt(ours, "state", "c7")
        if st.returncode == 0 and json.loads(st.stdout)["status"] == "running":
            break
        time.sleep(0.05)
    time.sleep(0.2)
    assert rt(ours, "kill", "c7", str(int(signal.SIGUSR1))).returncode == 0
    assert p.wait(timeout=20) == 42


def test_hooks_order_and_state_on_stdin_like_runc(bundle, tmp_path):
    log = tmp_path / "hooks.log"
    hook = tmp_path / "hook.sh"
    hook.write_text(f"#!/bin/sh\nstate=$(cat)\necho \"$1 $(echo \"$state\" | grep -o '\"status\": *\"[a-z]*\"' "
                    f"| tr -d ' \"' )\" >> {log}\n")
    hook.chmod(0o755)
    spec = bundle(["true"])
    spec["hooks"] = {name: [{"path": str(hook), "args": ["hook.sh", name]}]
                     for name in ("createRuntime", "prestart", "createContainer", "startContainer",
                                  "poststart", "poststop")}
    # startContainer's path resolves inside the container: the same directory, bind-mounted
    spec["mounts"].append({"destination": str(tmp_path), "type": "bind", "source": str(tmp_path),
                           "options": ["rbind", "rw"]})
    (bundle.path / "config.json").write_text(json.dumps(spec))

    def sequence(cmd):
        log.write_text("")
        assert rt_detached(cmd, "create", "-b", bundle.path, "h1").returncode == 0
        assert rt(cmd, "start", "h1").returncode == 0
        time.sleep(0.3)
        assert rt(cmd, "delete", "-f", "h1").returncode == 0
        return log.read_text().split("\n")

    ours = [line for line in sequence(_ours(tmp_path / "s")) if line]
    names = [line.split()[0] for line in ours]
    # startContainer (the init, after `start` opened the exec fifo) and poststart (`start` itself)
    # run concurrently, in runc as here
    assert names[:3] == ["prestart", "createRuntime", "createContainer"] and names[-1] == "poststop"
    assert sorted(names[3:5]) == ["poststart", "startContainer"]
    assert ours[0].endswith("status:creating") and ours[-1].endswith("status:stopped")
    if RUNC:
        theirs = [line for line in sequence(_runc(tmp_path / "r")) if line]
        # (runc reports poststart's state as "created"; we say "running": the process has started)
        assert sorted(names) == sorted(line.split()[0] for line in theirs) and ours[:3] == theirs[:3], theirs


@pytest.mark.parametrize("kind", ["createContainer", "startContainer"])
def test_a_failing_in_container_hook_fails_the_container(bundle, tmp_path, kind):
    hook = tmp_path / "fail.sh"
    hook.write_text("#!/bin/sh\ncat >/dev/null\nexit 3\n")
    hook.chmod(0o755)
    spec = bundle(["echo", "ran"])
    spec["hooks"] = {kind: [{"path": str(hook)}]}
    spec["mounts"].append({"destination": str(tmp_path), "type": "bind", "source": str(tmp_path),
                           "options": ["rbind", "ro"]})
    (bundle.path / "config.json").write_text(json.dumps(spec))
    for cmd in [_ours(tmp_path / "s")] + ([_runc(tmp_path / "r")] if RUNC else []):
        r = rt(cmd, "run", "-b", bundle.path, "hf")
        assert r.returncode != 0 and "ran" not in r.stdout, (cmd[0], r.stdout, r.stderr)
        rt(cmd, "delete", "-f", "hf")
    r = rt(_ours(tmp_path / "s"), "run", "-b", bundle.path, "hf")
    assert f"{kind} hook {hook} failed: exit status 3" in r.stderr


def test_preserve_fds_passes_extra_descriptors_like_runc(bundle, tmp_path):
    secret = tmp_path / "fd3.txt"
    secret.write_text("through fd 3\n")
    bundle(["sh", "-c", "cat <&3; ls /proc/self/fd | wc -l"])
    outs = []
    for cmd in [_ours(tmp_path / "s")] + ([_runc(tmp_path / "r")] if RUNC else []):
        line = " ".join(map(str, cmd)) + f" run --preserve-fds 1 -b {bundle.path} pf 3<{secret}"
        r = rt(["sh", "-c", line])
        assert r.returncode == 0, r.stderr
        outs.append(r.stdout)
    assert outs[0].startswith("through fd 3\n")
    assert len(set(outs)) == 1, outs  # the same descriptors inside (0-3, plus ls's own)


USERNS = {"uidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}],
          "gidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}]}


@pytest.fixture
def userns_bundle(bundle, rootfs, tmp_path):
    """`bundle` with its rootfs where uid 100000 can reach it (pytest's tmp dirs are 0700)."""
    import tempfile

    top = Path(tempfile.mkdtemp(prefix="minidock-userns-", dir="/tmp"))
    top.chmod(0o755)
    shutil.copytree(rootfs, top / "rootfs", symlinks=True)

    def write(args):
        spec = bundle(args)
        spec["root"]["path"] = str(top / "rootfs")
        spec["linux"]["namespaces"].append({"type": "user"})
        spec["linux"].update(json.loads(json.dumps(USERNS)))
        (bundle.path / "config.json").write_text(json.dumps(spec))
        return spec

    write.path = bundle.path
    yield write
    shutil.rmtree(top)


def test_user_namespace_root_inside_is_unprivileged_outside_like_runc(userns_bundle, tmp_path):
    script = ("id; cat /proc/self/uid_map /proc/self/gid_map; ls -ln /etc/passwd | cut -c1-30; "
              "hostname; grep ^Cap /proc/self/status")
    userns_bundle(["sh", "-c", script])
    outs = []
    for cmd in [_ours(tmp_path / "s")] + ([_runc(tmp_path / "r")] if RUNC else []):
        r = rt(cmd, "run", "-b", userns_bundle.path, "un1")
        assert r.returncode == 0, (cmd[0], r.stderr)
        outs.append(r.stdout)
    lines = outs[0].splitlines()
    assert lines[0].startswith("uid=0(root) gid=0(root)")
    assert lines[1].split() == ["0", "100000", "65536"] == lines[2].split()
    assert "65534    65534" in lines[3]  # the host's root owns the image: nobody in here
    if RUNC:
        assert outs[0] == outs[1]


def test_user_namespace_host_view_and_exec(userns_bundle, tmp_path):
    userns_bundle(["sleep", "30"])
    ours = _ours(tmp_path / "s")
    assert rt_detached(ours, "run", "-d", "-b", userns_bundle.path, "un2").returncode == 0
    try:
        pid = json.loads(rt(ours, "state", "un2").stdout)["pid"]
        with open(f"/proc/{pid}/status") as f:
            status = f.read()
        assert "Uid:\t100000\t100000\t100000\t100000" in status  # root inside, uid 100000 outside
        assert os.readlink(f"/proc/{pid}/ns/user") != os.readlink("/proc/self/ns/user")
        r = rt(ours, "exec", "un2", "sh", "-c", "id -u; cat /proc/self/uid_map")
        assert r.returncode == 0 and r.stdout.split() == ["0", "0", "100000", "65536"], r.stderr
    finally:
        rt(ours, "delete", "-f", "un2")


def test_user_namespace_without_mappings_is_refused(bundle, tmp_path):
    spec = bundle(["true"])
    spec["linux"]["namespaces"].append({"type": "user"})
    (bundle.path / "config.json").write_text(json.dumps(spec))
    r = rt(_ours(tmp_path / "s"), "run", "-b", bundle.path, "un3")
    assert r.returncode != 0 and "no uid or gid mappings found" in r.stderr


def test_user_namespace_with_a_joined_network_namespace_like_runc(userns_bundle, tmp_path):
    """A new user namespace but a network namespace joined by path (owned by the host's user
    namespace): joined before the user namespace is made, and sysfs, which the kernel then
    refuses to mount, is bound from the host read-only, as newer runc does (Debian's runc 1.1
    fails here: "mount sysfs ... operation not permitted")."""
    name = f"mdtest-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        spec = userns_bundle(["sh", "-c", "ls /sys/class/net | sort; cat /sys/class/net/lo/operstate; "
                                          "grep ' /sys ' /proc/self/mountinfo | grep -o ' ro,'"])
        for ns in spec["linux"]["namespaces"]:
            if ns["type"] == "network":
                ns["path"] = f"/run/netns/{name}"
        (userns_bundle.path / "config.json").write_text(json.dumps(spec))
        r = rt(_ours(tmp_path / "s"), "run", "-b", userns_bundle.path, "un4")
        assert r.returncode == 0, r.stderr
        assert "lo\n" in r.stdout and " ro," in r.stdout
    finally:
        subprocess.run(["ip", "netns", "delete", name])


def test_exec_preserve_fds(bundle, tmp_path):
    secret = tmp_path / "fd3.txt"
    secret.write_text("exec got fd 3\n")
    bundle(["sleep", "30"])
    ours = _ours(tmp_path / "s")
    assert rt_detached(ours, "run", "-d", "-b", bundle.path, "pe").returncode == 0
    try:
        line = " ".join(map(str, ours)) + f" exec --preserve-fds 1 pe cat /proc/self/fd/3 3<{secret}"
        r = rt(["sh", "-c", line])
        assert (r.returncode, r.stdout) == (0, "exec got fd 3\n"), r.stderr
        r = rt(["sh", "-c", " ".join(map(str, ours)) + f" exec pe cat /proc/self/fd/3 3<{secret}"])
        assert r.returncode != 0  # without the flag, fd 3 stays outside
    finally:
        rt(ours, "delete", "-f", "pe")


def _runtimes(tmp_path):
    out = [("minidock", _ours(tmp_path / "s"))]
    if RUNC:
        out.append(("runc", _runc(tmp_path / "r")))
    return out


def test_kill_after_exit_answers_like_runc(bundle, tmp_path):
    """containerd's shim takes "container not running" as "already stopped" (StopContainer,
    StopPodSandbox); `kill --all` of an exited container is no error (runc's answers)."""
    bundle(["true"])
    seen = {}
    for name, cmd in _runtimes(tmp_path):
        assert rt_detached(cmd, "run", "-d", "-b", bundle.path, "k1").returncode == 0
        for _ in range(100):
            if json.loads(rt(cmd, "state", "k1").stdout)["status"] == "stopped":
                break
            time.sleep(0.05)
        r = rt(cmd, "kill", "k1", "KILL")
        r_all = rt(cmd, "kill", "--all", "k1", "KILL")
        seen[name] = (r.returncode, "container not running" in r.stderr, r_all.returncode)
        assert rt(cmd, "delete", "k1").returncode == 0
    assert seen["minidock"] == (1, True, 0)
    assert len(set(seen.values())) == 1, seen


def test_no_path_in_env_like_runc(bundle, tmp_path):
    """Without PATH in process.env a bare command is not searched for (runc: Go's exec.LookPath
    with an empty PATH); an absolute one runs."""
    spec = bundle(["sleep", "0"])
    spec["process"]["env"] = ["TERM=xterm"]
    (bundle.path / "config.json").write_text(json.dumps(spec))
    for name, cmd in _runtimes(tmp_path):
        r = rt(cmd, "run", "-b", bundle.path, "p1")
        assert r.returncode != 0 and 'exec: \\"sleep\\": executable file not found in $PATH' in \
            r.stderr.replace('"sleep"', '\\"sleep\\"'), (name, r.stderr)
        rt(cmd, "delete", "-f", "p1")
    spec["process"]["args"] = ["/bin/sleep", "0"]
    (bundle.path / "config.json").write_text(json.dumps(spec))
    for name, cmd in _runtimes(tmp_path):
        r = rt(cmd, "run", "-b", bundle.path, "p2")
        assert r.returncode == 0, (name, r.stderr)


def test_config_edits_after_create_change_nothing(bundle, tmp_path):
    """OCI: updates to config.json after create MUST NOT affect the container (the runtime keeps
    the config it created the container with)."""
    bundle(["sleep", "0"])
    for name, cmd in _runtimes(tmp_path):
        assert rt_detached(cmd, "create", "-b", bundle.path, "u1").returncode == 0
        (bundle.path / "config.json").write_text(json.dumps({"ociVersion": "1.0.0"}))
        r = rt(cmd, "start", "u1")
        assert r.returncode == 0, (name, r.stderr)
        assert json.loads(rt(cmd, "state", "u1").stdout)["id"] == "u1"
        rt(cmd, "delete", "-f", "u1")
        bundle(["sleep", "0"])


def _mounts_under(prefix: str) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f if line.split()[4].startswith(prefix)]


def test_without_a_mount_namespace_like_runc(bundle, tmp_path):
    """No mount namespace in the spec: runc sets the rootfs up in the caller's namespace and
    chroots; minidock does the same, and its `delete` takes those mounts away again. Masked or
    read-only paths need a mount namespace: both refuse them with runc's words."""
    spec = bundle(["sh", "-c", "test -d /proc/self && echo in-rootfs"])
    spec["linux"]["namespaces"] = [ns for ns in spec["linux"]["namespaces"] if ns["type"] not in ("mount", "cgroup")]
    rootfs = spec["root"]["path"]
    for name, cmd in _runtimes(tmp_path):
        s = dict(spec, linux={**spec["linux"], "maskedPaths": [], "readonlyPaths": []})
        (bundle.path / "config.json").write_text(json.dumps(s))
        try:
            r = rt(cmd, "run", "-b", bundle.path, "n1")
            assert (r.returncode, r.stdout) == (0, "in-rootfs\n"), (name, r.stderr)
            if name == "minidock":
                assert _mounts_under(rootfs) == []  # run = create, start, wait, delete
            (bundle.path / "config.json").write_text(json.dumps(spec))
            r = rt(cmd, "run", "-b", bundle.path, "n2")
            assert r.returncode != 0 and "unable to restrict sys entries without a private MNT namespace" in r.stderr
        finally:
            rt(cmd, "delete", "-f", "n1")
            rt(cmd, "delete", "-f", "n2")
            for m in sorted(_mounts_under(rootfs), reverse=True):  # runc leaves its mounts behind
                subprocess.run(["umount", "-l", m], capture_output=True)


def test_state_fast_path_prints_what_the_click_cli_prints(bundle, tmp_path):
    """`minidock-runtime state` (minidock/cli/runtime_fast.py, no click) against the click CLI's
    `state`: the same stdout, stderr, exit code and --log lines for a created, running, paused and
    stopped container and for a missing one; and the fast path really skips click and process.py."""
    bundle(["sleep", "30"])
    root = tmp_path / "s"
    ours = _ours(root)
    fast = [sys.executable, "-m", "minidock.cli.runtime_fast", "--root", str(root)]

    def same(cid, expect_status):
        logs = []
        results = []
        for i, cmd in enumerate((fast, ours)):
            log = tmp_path / f"log{i}"
            log.unlink(missing_ok=True)
            r = rt(cmd[:-2], "--log", log, "--log-format", "json", "--root", root, "state", cid)
            results.append((r.returncode, r.stdout, r.stderr))
            logs.append([json.loads(line)["msg"] for line in log.read_text().splitlines()] if log.exists() else [])
        assert results[0] == results[1] and logs[0] == logs[1]
        if expect_status is None:
            assert results[0][0] == 1 and "does not exist" in results[0][2] and logs[0]
            return
        assert results[0][0] == 0 and json.loads(results[0][1])["status"] == expect_status
        probe = ("import sys; from minidock.cli import runtime_fast as f; "
                 f"out = f._state({str(root)!r}, {cid!r}); sys.stdout.write(out); "
                 "assert 'click' not in sys.modules and 'minidock.runtime.process' not in sys.modules")
        r = rt([sys.executable, "-c", probe])
        assert r.returncode == 0 and r.stdout == results[1][1], r.stderr

    assert rt_detached(ours, "create", "-b", bundle.path, "c3").returncode == 0
    same("c3", "created")
    assert rt(fast, "start", "c3").returncode == 0  # not `state`: handed to the click CLI
    same("c3", "running")
    assert rt(ours, "pause", "c3").returncode == 0
    same("c3", "paused")
    assert rt(ours, "resume", "c3").returncode == 0
    assert rt(ours, "kill", "c3", "KILL").returncode == 0
    for _ in range(100):
        if json.loads(rt(fast, "state", "c3").stdout)["status"] == "stopped":
            break
        time.sleep(0.05)
    same("c3", "stopped")
    assert rt(fast, "delete", "c3").returncode == 0
    same("c3", None)
    same("no-such", None)
    r = rt(fast, "state", "--bogus", "c3")  # an unusual flag: the click CLI's usage error
    assert r.returncode != 0 and "--bogus" in r.stderr


def test_start_kill_delete_fast_path_errors_match_the_click_cli(bundle, tmp_path):
    """create/start/kill/delete without click (runtime_fast.main) against the click CLI: the same
    exit code, stderr and --log line for each refusal, and the fast path imports no click."""
    bundle(["sleep", "30"])
    root = tmp_path / "s"
    fast = [sys.executable, "-m", "minidock.cli.runtime_fast"]
    full = [sys.executable, "-m", "minidock.cli.runtime_cli"]

    def both(*args):
        out = []
        for i, cmd in enumerate((fast, full)):
            log = tmp_path / f"log{i}"
            log.unlink(missing_ok=True)
            r = rt(cmd, "--root", root, "--log", log, *args)
            out.append((r.returncode, r.stdout, r.stderr, log.read_text().split("msg=", 1)[-1] if log.exists() else ""))
        assert out[0] == out[1], args
        return out[0]

    code, _, err, _ = both("create", "--bundle", tmp_path / "nosuch", "c4")
    assert code == 1 and err and not (root / "c4").exists()
    assert rt_detached(fast, "--root", root, "create", "-b", bundle.path, "--pid-file", tmp_path / "pid",
                       "c4").returncode == 0
    st = json.loads(rt(fast, "--root", root, "state", "c4").stdout)
    assert st["status"] == "created" and st["pid"] == int((tmp_path / "pid").read_text())
    code, _, err, _ = both("create", f"--bundle={bundle.path}", "c4")
    assert code == 1 and "exists" in err
    assert rt(fast, "--root", root, "start", "c4").returncode == 0
    code, _, err, log = both("start", "c4")
    assert code == 1 and "cannot start a container that is running" in err and "cannot start" in log
    code, _, err, _ = both("delete", "c4")
    assert code == 1 and "not stopped" in err
    code, _, err, _ = both("kill", "c4", "NOSUCHSIG")
    assert code == 1 and "unknown signal" in err
    probe = ("import sys; from minidock.cli import runtime_fast as f; sys.argv = ['minidock-runtime', '--root', "
             f"{str(root)!r}, 'kill', 'c4', '0']\ntry:\n    f.main()\nexcept SystemExit as e:\n"
             "    assert 'click' not in sys.modules, 'click imported'\n    raise")
    assert rt([sys.executable, "-c", probe]).returncode == 0
    assert rt(fast, "--root", root, "kill", "c4", "KILL").returncode == 0
    for _ in range(100):
        if json.loads(rt(fast, "--root", root, "state", "c4").stdout)["status"] == "stopped":
            break
        time.sleep(0.05)
    code, _, err, _ = both("kill", "c4")
    assert code == 1 and "container not running" in err
    code, _, err, _ = both("start", "c4")
    assert code == 1 and "cannot start a container that has stopped" in err
    assert rt(fast, "--root", root, "delete", "c4").returncode == 0
    for args in (("start", "c4"), ("kill", "c4"), ("delete", "c4")):
        code, _, err, _ = both(*args)
        assert code == 1 and "does not exist" in err
    assert both("delete", "-f", "c4")[0] == 0


def test_launcher_runs_the_cycle_lean_and_falls_back_to_click(bundle, tmp_path):
    """install.sh's minidock-runtime (scripts/runtime-launcher: python3 -I -S, no pip template):
    create, state, start and delete work; start, state and delete import none of the modules that
    made each call cost ~10 ms more (re/enum, json, dataclasses, pathlib, typing, socket, ctypes,
    click); and a command line the fast path does not take still reaches the click CLI (site is
    loaded for it)."""
    launcher = tmp_path / "minidock-runtime"
    subprocess.run([str(REPO / "scripts" / "runtime-launcher"), str(launcher)], check=True,
                   env=dict(os.environ, PY=sys.executable))
    assert launcher.read_text().startswith(f"#!{sys.executable} -IS\n")
    root = tmp_path / "s"
    bundle(["sleep", "30"])
    cmd = [str(launcher), "--root", str(root)]
    heavy = ["re", "enum", "json", "dataclasses", "pathlib", "typing", "socket", "click", "inspect"]

    def lean(*args, also=()):
        """runtime_fast.main(args) in a `python3 -I -S` process; the heavy modules it imported."""
        probe = (f"import os, sys; sys.path.insert(0, {str(REPO)!r}); from minidock.cli import runtime_fast as f\n"
                 "os._exit = sys.exit  # (`state` leaves with os._exit)\n"
                 f"try:\n    f.main({['--root', str(root), *args]!r})\nexcept SystemExit as e:\n"
                 f"    sys.stdout.flush(); bad = [m for m in {heavy + list(also)!r} if m in sys.modules]\n"
                 "    print('code', e.code, 'heavy', bad, file=sys.stderr)\n")
        r = subprocess.run([sys.executable, "-IS", "-c", probe], capture_output=True, text=True, timeout=30)
        assert r.stderr.strip().endswith("heavy []") and "code 0" in r.stderr, (args, r.stderr)
        return r.stdout

    assert rt_detached(cmd, "create", "-b", bundle.path, "l1").returncode == 0
    assert json.loads(lean("state", "l1"))["status"] == "created"
    lean("start", "l1", also=["ctypes"])
    r = rt(cmd, "state", "l1")
    assert r.returncode == 0 and json.loads(r.stdout)["status"] == "running", r.stderr
    lean("delete", "-f", "l1")
    assert not (root / "l1").exists()
    assert rt_detached(cmd, "create", "-b", bundle.path, "l2").returncode == 0  # through the launcher itself
    assert rt(cmd, "start", "l2").returncode == 0
    assert rt(cmd, "delete", "-f", "l2").returncode == 0 and not (root / "l2").exists()
    r = rt([str(launcher), "--version"])  # the click CLI's option: site.main() first, then click
    assert r.returncode == 0 and "minidock-runtime" in r.stdout, r.stderr
    r = rt([*cmd, "list"])
    assert r.returncode == 0 and "ID" in r.stdout, r.stderr
