"""Shared fixtures.

* Every test runs against an isolated state root (never /var/lib/minidock) and its own cgroup
  parent under `minidock/`.
* Root integration tests get a leak check: a test that leaves mounts, cgroups, links, network
  namespaces or processes behind fails.
* `md(...)` runs the real CLI in a subprocess, as a user would.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
IS_ROOT = os.geteuid() == 0


def pytest_collection_modifyitems(config, items):
    skip_root = pytest.mark.skip(reason="needs root (integration test)")
    for item in items:
        if "integration" in item.path.parts:
            item.add_marker(pytest.mark.root)
            if not IS_ROOT:
                item.add_marker(skip_root)


# ---- isolated state ---------------------------------------------------------------------------
@pytest.fixture(scope="session")
def state_root():
    """A session-wide state root (images are imported once), removed at the end."""
    d = Path(tempfile.mkdtemp(prefix="minidock-test-"))
    os.chmod(d, 0o755)
    old = {k: os.environ.get(k) for k in ("MINIDOCK_ROOT", "MINIDOCK_CGROUP_PARENT", "MINIDOCK_DEFAULT_NETWORK")}
    os.environ["MINIDOCK_ROOT"] = str(d)
    # containers of tests run in the host's network namespace: no bridge there (network tests
    # run in a namespace of their own and ask for the bridge explicitly)
    os.environ["MINIDOCK_DEFAULT_NETWORK"] = "none"
    os.environ["MINIDOCK_CGROUP_PARENT"] = f"minidock/test-{uuid.uuid4().hex[:8]}"
    yield d
    if IS_ROOT:
        subprocess.run([sys.executable, "-m", "minidock", "system", "prune", "--all", "--force"],
                       capture_output=True, timeout=120)
        _remove_cgroup_parent(os.environ["MINIDOCK_CGROUP_PARENT"])
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    umount_under(str(d))
    shutil.rmtree(d, ignore_errors=True)


def umount_under(prefix: str) -> None:
    for target in sorted(_mounts_under(prefix), reverse=True):
        subprocess.run(["umount", "-l", target], capture_output=True)


def _mounts_under(prefix: str) -> list[str]:
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            target = line.split()[4]
            if target.startswith(prefix):
                out.append(target)
    return out


def _remove_cgroup_parent(parent: str) -> None:
    for base in _cgroup_bases():
        p = Path(base, parent)
        if p.is_dir():
            for sub in sorted(p.rglob("*"), key=lambda x: len(str(x)), reverse=True):
                if sub.is_dir():
                    try:
                        sub.rmdir()
                    except OSError:
                        pass
            # then the empty levels above it, up to `minidock` (kept while anything else uses it)
            while p != Path(base):
                try:
                    p.rmdir()
                except OSError:
                    break
                p = p.parent


def _cgroup_bases() -> list[str]:
    bases = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            parts = line.split()
            fstype = parts[parts.index("-") + 1]
            if fstype in ("cgroup", "cgroup2"):
                bases.append(parts[4])
    return bases


@pytest.fixture
def md_env(state_root):
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


@pytest.fixture
def md(md_env):
    """Run the minidock CLI: md("run", "--rm", "busybox", "true") -> CompletedProcess."""

    def run(*args, input=None, check=False, timeout=60, env=None):
        e = dict(md_env)
        if env:
            e.update(env)
        return subprocess.run([sys.executable, "-m", "minidock", *map(str, args)],
                              input=input, capture_output=True, text=True, timeout=timeout,
                              env=e, check=check)

    return run


# ---- the busybox image --------------------------------------------------------------------------
@pytest.fixture(scope="session")
def busybox_tar(tmp_path_factory):
    out = tmp_path_factory.mktemp("rootfs") / "busybox.tar"
    subprocess.run(["sh", str(REPO / "rootfs" / "busybox.sh"), str(out)], check=True,
                   capture_output=True)
    return out


@pytest.fixture(scope="session")
def busybox(state_root, busybox_tar):
    """The busybox image, imported once into the session's store. Returns its name."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    r = subprocess.run([sys.executable, "-m", "minidock", "import", str(busybox_tar),
                        "busybox:latest", "--change", 'CMD ["sh"]'], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    return "busybox"


@pytest.fixture
def detached(md, busybox):
    """Start detached containers (`start(*run_args, name=None)` -> (name, id)); removed after."""
    made = []

    def start(*args, name=None):
        name = name or f"t{os.urandom(4).hex()}"
        r = md("run", "-d", "--name", name, *args)
        assert r.returncode == 0, r.stderr
        made.append(name)
        return name, r.stdout.strip()

    yield start
    for n in made:
        md("rm", "-f", n)


# ---- the leak check -----------------------------------------------------------------------------
def _snapshot(state_root: str) -> dict[str, set]:
    """What a test could leak, scoped to this session (other minidock users on the host, e.g. a
    second test run, are not our leaks): mounts and processes that name our state root or carry
    it in their environment, cgroups under our cgroup parent, links and named netns (global)."""
    mounts = {line.split()[4] for line in open("/proc/self/mountinfo") if state_root in line}
    cgroups = set()
    parent = os.environ.get("MINIDOCK_CGROUP_PARENT", "minidock")
    for base in _cgroup_bases():
        top = Path(base, parent)
        if top.is_dir():
            # os.walk, not rglob: a cgroup removed while we walk is not an error
            cgroups |= {os.path.join(d, n) for d, dirs, _ in os.walk(top) for n in dirs}
    links = set(os.listdir("/sys/class/net"))
    netns = set(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else set()
    procs = set()
    import psutil

    me = os.getpid()
    marker = f"MINIDOCK_ROOT={state_root}".encode()
    for p in psutil.process_iter(["pid", "cmdline", "status"]):
        if p.info["pid"] == me or p.info["status"] == psutil.STATUS_ZOMBIE:
            continue
        try:
            cmd = " ".join(p.info["cmdline"] or [])
            with open(f"/proc/{p.info['pid']}/environ", "rb") as f:
                env = f.read().split(b"\0")
            with open(f"/proc/{p.info['pid']}/cgroup") as f:
                in_our_cgroup = f"/{parent}/" in f.read()
        except (OSError, psutil.Error):
            continue
        if state_root in cmd or marker in env or in_our_cgroup:
            procs.add(f"{p.info['pid']} {cmd[:120]}")
    return {"mounts": mounts, "cgroups": cgroups, "links": links, "netns": netns, "procs": procs}


@pytest.fixture(autouse=True)
def leak_check(request):
    if not IS_ROOT or "integration" not in request.node.path.parts:
        yield
        return
    if request.node.get_closest_marker("noleakcheck"):
        yield
        return
    root = os.environ.get("MINIDOCK_ROOT", "/nonexistent")
    before = _snapshot(root)
    yield
    import time

    leaked: dict[str, set] = {}
    for _ in range(30):  # processes and cgroups can take a moment to go away
        after = _snapshot(root)
        leaked = {k: after[k] - before[k] for k in after if after[k] - before[k]}
        gone = _host_links_gone(before["links"], after["links"])
        if gone:
            leaked["links deleted"] = gone
        if not leaked:
            break
        time.sleep(0.1)
    if leaked:
        pytest.fail(f"test leaked host resources: {leaked}")


_SESSION_LINKS = set(os.listdir("/sys/class/net"))


def _host_links_gone(before: set[str], after: set[str]) -> set[str]:
    """The host's own links (there when the session started: docker0, eth0, ...) that a test
    deleted — a private dockerd started with --bridge=none outside its own netns deletes docker0.
    Links of minidock, podman and tests (minidock0, md*, br-*, veth*, cni*, podman*, *test*) come
    and go with other runs on the same host."""
    import re

    transient = re.compile(r"^(md|br-|veth|cni)|minidock|podman|test")
    return {n for n in (before & _SESSION_LINKS) - after if not transient.search(n)}
