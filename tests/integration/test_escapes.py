"""Escapes through the runtime (issue 17), each mounted as the attack and passing only if blocked.

* Keyrings: the container searched the caller's session keyring (no new session keyring was made
  for it). Here the caller joins a session keyring of its own, puts a secret in it and starts a
  container *without* seccomp (so only the keyring defence is tested): the secret must not be
  found. With the default profile keyctl/add_key/request_key are refused outright.
* CVE-2019-5736 class: while `exec` enters a container, the entering process is the host's
  Python interpreter. A process in the container (1) opens /proc/PID/exe of it, or (2) has it
  run a script whose first line is `#!/proc/self/exe` (the kernel then runs the host's
  interpreter inside the container), keeps the descriptor, and writes the binary through
  /proc/self/fd/N once no process runs it any more. Done here against a DISPOSABLE COPY of the
  interpreter (minidock run from the copy for the `exec`), never the real one: the copy must be
  unchanged and the container must never have held a descriptor of it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time

import pytest

from tests.conftest import REPO
from tests.integration.test_seccomp import probe  # noqa: F401 - the static syscall probe fixture

KEY_HELPER = """
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
assert libc.syscall(250, 1, b"minidock-test-session") > 0           # KEYCTL_JOIN_SESSION_KEYRING
kid = libc.syscall(248, b"user", b"minidock-test-secret", b"s3cret", 6, ctypes.c_int(-3))  # add_key @s
assert kid > 0, ctypes.get_errno()
assert libc.syscall(249, b"user", b"minidock-test-secret", None, 0) == kid  # request_key: we see it
os.execvp(sys.argv[1], sys.argv[1:])
"""


def _in_own_session(md_env, *argv) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", KEY_HELPER, sys.executable, "-m", "minidock", *argv],
                          capture_output=True, text=True, env=md_env, timeout=60)


def test_container_gets_a_fresh_session_keyring(md_env, busybox, probe):  # noqa: F811
    r = _in_own_session(md_env, "run", "--rm", "--security-opt", "seccomp=unconfined",
                        "-v", f"{probe}:/probe:ro", busybox, "/probe", "request_key")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "request_key ENOKEY"  # before: "request_key OK" (the caller's key)
    r = _in_own_session(md_env, "run", "--rm", "-v", f"{probe}:/probe:ro", busybox, "/probe", "request_key")
    assert r.stdout.strip() == "request_key EPERM"  # and the default profile refuses keyctl calls
    cid = subprocess.run([sys.executable, "-m", "minidock", "run", "-d", "--security-opt", "seccomp=unconfined",
                          "-v", f"{probe}:/probe:ro", busybox, "sleep", "60"], capture_output=True, text=True,
                         env=md_env, check=True).stdout.strip()
    try:
        r = _in_own_session(md_env, "exec", cid, "/probe", "request_key")
        assert r.stdout.strip() == "request_key ENOKEY", r.stderr  # exec too
    finally:
        subprocess.run([sys.executable, "-m", "minidock", "rm", "-f", cid], capture_output=True, env=md_env)


# ---- CVE-2019-5736 ---------------------------------------------------------------------------------
WATCHER = r"""
exec 2>/dev/null
tag=%s
while [ ! -e /stop ]; do
  for d in /proc/[0-9]*; do
    [ "$d" = /proc/$$ ] && continue
    command exec 3<"$d/exe" 2>/dev/null || continue  # (`command`: a failed redirection must not end the shell)
    case "$(readlink /proc/self/fd/3)" in
      *"$tag"*)
        echo "GOT $(readlink /proc/self/fd/3)"
        j=0
        while [ $j -lt 100 ]; do
          if (echo '#!/bin/sh' > /proc/self/fd/3) 2>/dev/null; then echo WROTE; exit 0; fi
          j=$((j+1)); sleep 0.1
        done ;;
    esac
    exec 3<&-
  done
done
echo watcher-done
"""


@pytest.fixture
def disposable_python():
    """A copy of the interpreter binary, runnable with the same library and packages."""
    d = tempfile.mkdtemp(prefix="md5736-", dir="/tmp")
    os.chmod(d, 0o755)
    copy = os.path.join(d, "python3")
    shutil.copy2(os.path.realpath(sys.executable), copy)
    env = dict(os.environ, PYTHONHOME=sys.base_prefix,
               PYTHONPATH=os.pathsep.join([str(REPO)] + [p for p in sys.path if "-packages" in p]))
    r = subprocess.run([copy, "-c", "import minidock.cli.main, click, psutil"], capture_output=True, text=True,
                       env=env)
    if r.returncode != 0:
        shutil.rmtree(d)
        pytest.skip(f"a copy of the interpreter does not start here: {r.stderr[-200:]}")
    yield copy, env
    shutil.rmtree(d, ignore_errors=True)


def _digest(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def test_exec_never_exposes_the_runtime_binary(md, busybox, disposable_python):
    copy, env = disposable_python
    before = _digest(copy)
    tag = os.path.basename(os.path.dirname(copy))
    cid = md("run", "-d", busybox, "sh", "-c", WATCHER % tag, check=True).stdout.strip()
    try:
        md("exec", cid, "sh", "-c", "printf '#!/proc/self/exe\\n' > /evil && chmod +x /evil", check=True)

        def exec_with_copy(*args):
            return subprocess.run([copy, "-m", "minidock", "exec", cid, *args], capture_output=True, text=True,
                                  env=env, timeout=60)

        # (2) the container's script names /proc/self/exe as its interpreter
        for _ in range(3):
            r = exec_with_copy("/evil")
            assert r.returncode != 0
            assert "bad interpreter /proc/self/exe" in r.stderr, r.stderr
        # (1) race the window between joining the container and execve, many times
        for _ in range(15):
            assert exec_with_copy("true").returncode == 0
        time.sleep(2)  # the watcher's write attempts run for a while after the last exec
        md("exec", cid, "touch", "/stop")
        md("wait", cid, timeout=30)
    finally:
        logs = md("logs", cid).stdout
        md("rm", "-f", cid)
    assert "GOT" not in logs and "WROTE" not in logs, logs
    assert _digest(copy) == before, "the runtime's binary was written from inside the container"


# ---- the cgroup escape (CVE-2022-0492 preconditions) ------------------------------------------------
@pytest.fixture(scope="module")
def cgroup_probe(tmp_path_factory):
    if not shutil.which("gcc"):
        pytest.skip("gcc is needed to build the static probe (install.sh --test installs it)")
    out = tmp_path_factory.mktemp("cgprobe") / "esc"
    r = subprocess.run(["gcc", "-static", "-O1", "-o", out, REPO / "tests" / "probes" / "cgroup_escape.c"],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot build a static probe here: {r.stderr[-300:]}")
    return out


def test_container_never_sits_at_a_hierarchy_root(md, busybox, cgroup_probe):
    """Issue 17: the container was at the host's root of name=systemd and of the hybrid cgroup2,
    so userns + cgroupns + a fresh mount showed (and, with release_agent, could use) the host's
    tree. Now the container has its own cgroup in every hierarchy, controller-less ones too."""
    cid = md("run", "-d", busybox, "sleep", "60", check=True).stdout.strip()
    try:
        pid = int(md("inspect", "-f", "{{.State.Pid}}", cid).stdout)
        with open(f"/proc/{pid}/cgroup") as f:
            paths = {line.split(":", 2)[1]: line.rstrip("\n").split(":", 2)[2] for line in f}
        assert all(p.endswith(cid) for p in paths.values()), paths  # name=systemd and 0:: included
    finally:
        md("rm", "-f", cid)
    # the attack itself, with the filter off (the default profile refuses its first step)
    r = md("run", "--rm", "--security-opt", "seccomp=unconfined", "-v", f"{cgroup_probe}:/esc:ro", busybox, "/esc")
    assert r.stdout.startswith("ns OK"), r.stdout + r.stderr
    assert " dir " not in r.stdout, r.stdout  # before: "cgroup none,name=systemd dir minidock", ...
    r = md("run", "--rm", "-v", f"{cgroup_probe}:/esc:ro", busybox, "/esc")
    assert r.stdout.strip() == "ns EPERM"
