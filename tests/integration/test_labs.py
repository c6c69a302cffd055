"""Lab sheets run as written, `lab check` passes what the sheet does and fails what it does not,
and groups sharing a machine do not disturb each other.

Every sheet runs in a sandbox of its own (state root, cgroup parent, bridge, subnet) inside a
throwaway network namespace: the bridges, veths and nftables rules the labs make never touch the
host's network.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading

import pytest

from minidock.labs import checks, sandbox, verify
from tests.netns import make_netns

LABS = checks.catalog()


def _make_netns(state_root, docker_firewall=False):
    yield from make_netns("mdlab", docker_firewall=docker_firewall)


@pytest.fixture(scope="module")
def netns(state_root):
    yield from _make_netns(state_root)


@pytest.fixture(scope="module")
def docker_netns(state_root):
    yield from _make_netns(state_root, docker_firewall=True)


@pytest.fixture
def labs_home(state_root, monkeypatch):
    monkeypatch.setenv("MINIDOCK_LABS_HOME", str(state_root / "labs"))
    return state_root / "labs"


def _in_ns(netns):
    return ["nsenter", f"--net=/run/netns/{netns}"]


def _lab_cli(netns, group, *args, timeout=300):
    env = dict(os.environ, PYTHONPATH=str(checks.labs_dir().parents[1]))
    return subprocess.run([*_in_ns(netns), sys.executable, "-m", "minidock", "lab", *args, "--group", group],
                          capture_output=True, text=True, env=env, timeout=timeout)


IN_VM = bool(os.environ.get("MINIDOCK_IN_VM"))


@pytest.fixture(autouse=True)
def _vm_network(monkeypatch):
    """The cgroup v2 VM (scripts/vm-test) loads no bridge, veth or nftables modules: its sheets run
    with --network none by default, and the networking lab is proven on this host only."""
    if IN_VM:
        monkeypatch.setenv("MINIDOCK_LAB_NETWORK", "none")


def _needs(lab):
    if lab.number == 2 and not (shutil.which("cc") or shutil.which("gcc")):
        pytest.skip("lab 02 builds its escape program with a C compiler: none here")
    if IN_VM and lab.number == 6:
        pytest.skip("the v2 VM has no bridge/veth/nftables modules: lab 06 runs on the host only")


@pytest.mark.parametrize("lab", LABS, ids=[lab.slug for lab in LABS])
def test_sheet_runs_as_written(lab, netns, labs_home, busybox):
    """Every console block of the sheet, run in order; each output matches the sheet's."""
    _needs(lab)
    group = sandbox.Group(f"sheet-{lab.number:02d}")
    results, report, _ = verify(lab, group, wrap=_in_ns(netns))
    assert results, f"{lab.sheet.name} has no console block to run"
    assert all(r.ok for r in results), f"{lab.sheet.name} drifted from the tool:\n{report}"
    assert not (labs_home / group.name).exists()  # verify resets the sandbox afterwards


def test_lab06_runs_on_a_host_with_dockers_firewall(docker_netns, labs_home, busybox):
    """Docker sets FORWARD DROP and loads br_netfilter: lab 06 must still work there."""
    results, report, _ = verify(checks.find(6), sandbox.Group("sheet-06-docker"), wrap=_in_ns(docker_netns))
    assert all(r.ok for r in results), f"lab 06 behind Docker's firewall:\n{report}"


@pytest.mark.parametrize("lab", [lab for lab in LABS if checks.load(lab)], ids=lambda lab: lab.slug)
def test_check_fails_when_nothing_was_done(lab, netns, labs_home, busybox):
    """The failing attempt: a fresh group that did nothing fails every check, with a reason."""
    group = f"empty-{lab.number:02d}"
    try:
        r = _lab_cli(netns, group, "check", str(lab.number))
        assert r.returncode == 1, r.stdout + r.stderr
        n = len(checks.load(lab))
        assert f"0 passed, {n} failed" in r.stdout, r.stdout
        assert r.stdout.count("FAIL  ") == n and "hint:" in r.stdout
    finally:
        _lab_cli(netns, group, "reset")


def test_lab02_check_tells_a_wrong_mode_apart(netns, labs_home, busybox):
    """A wrong attempt, not just an empty one: the 'pivot' step run with --chroot fails."""
    _needs(checks.find(2))
    g = sandbox.Group("wrong-02")
    try:
        assert _lab_cli(netns, g.name, "start", "2").returncode == 0
        esc = g.root / "files" / "chroot-escape"
        env = g.env()
        subprocess.run([*_in_ns(netns), sys.executable, "-m", "minidock", "run", "--name", "esc-pivot", "--chroot",
                        "-v", f"{esc}:/escape:ro", "busybox", "/escape", "/bin/true"], env=env,
                       capture_output=True, timeout=60)
        r = _lab_cli(netns, g.name, "check", "2", "pivot")
        assert r.returncode == 1 and "not started with the pivot_root mode" in r.stdout, r.stdout
    finally:
        _lab_cli(netns, g.name, "reset")


def test_two_groups_run_labs_05_and_06_at_once(netns, labs_home, busybox):
    """Two groups on one machine at the same time: both sheets pass, neither sees the other."""
    labs = {5: checks.find(5), 6: checks.find(6)}
    out: dict[int, tuple] = {}

    def go(n):
        out[n] = verify(labs[n], sandbox.Group(f"team-{n}"), wrap=_in_ns(netns))

    threads = [threading.Thread(target=go, args=(n,)) for n in labs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=900)
    for n, (results, report, _) in out.items():
        assert all(r.ok for r in results), f"lab {n} in a shared machine:\n{report}"
    assert set(out) == {5, 6}


def test_groups_are_isolated_and_reset_removes_only_one(netns, labs_home, busybox):
    a, b = sandbox.Group("iso-a"), sandbox.Group("iso-b")
    try:
        for g in (a, b):
            assert _lab_cli(netns, g.name, "start", "1").returncode == 0
            r = subprocess.run([*_in_ns(netns), sys.executable, "-m", "minidock", "run", "-d", "--name", "mine",
                                "busybox", "sleep", "600"], env=g.env(), capture_output=True, text=True, timeout=60)
            assert r.returncode == 0, r.stderr
        assert a.subnet() != b.subnet() and a.bridge != b.bridge and a.port() != b.port()

        def names(g):
            return subprocess.run([*_in_ns(netns), sys.executable, "-m", "minidock", "ps", "-a", "--format",
                                   "{{.ID}}"], env=g.env(), capture_output=True, text=True).stdout.split()

        ida, idb = names(a), names(b)
        assert len(ida) == 1 and len(idb) == 1 and ida != idb  # each sees only its own `mine`
        r = _lab_cli(netns, a.name, "reset")
        assert r.returncode == 0 and "1 container(s)" in r.stdout, r.stdout
        assert not a.root.exists()
        assert names(b) == idb  # b's container is untouched
    finally:
        _lab_cli(netns, a.name, "reset")
        _lab_cli(netns, b.name, "reset")


@pytest.mark.parametrize("lab", LABS, ids=[lab.slug for lab in LABS])
def test_every_lab_has_answers_apart_from_its_sheet(lab):
    assert lab.answers.exists(), f"{lab.answers} is missing"
    assert "## Questions" in lab.sheet.read_text()


def test_diagram_svgs_are_well_formed_and_drawn_from_the_container(netns, md_env, busybox, tmp_path):
    import xml.etree.ElementTree as ET

    env = dict(md_env)
    env.pop("MINIDOCK_DEFAULT_NETWORK", None)

    def md(*args):
        return subprocess.run([*_in_ns(netns), sys.executable, "-m", "minidock", *args], capture_output=True,
                              text=True, env=env, timeout=60)

    assert md("run", "-d", "--name", "kdraw", "-m", "32m", "busybox", "sleep", "600").returncode == 0
    try:
        r = md("diagram", "kdraw", "--svg", str(tmp_path))
        assert r.returncode == 0, r.stderr
        cid = md("inspect", "-f", "{{.Id}}", "kdraw").stdout.strip()
        for view in ("namespaces", "overlay", "cgroup", "network"):
            svg = (tmp_path / f"kdraw-{view}.svg").read_text()
            root = ET.fromstring(svg)
            assert root.tag.endswith("svg")
        assert cid[:12] in (tmp_path / "kdraw-cgroup.svg").read_text()
        assert "minidock0" in (tmp_path / "kdraw-network.svg").read_text()
    finally:
        md("rm", "-f", "kdraw")


def test_lab_cli_list_hint_solution():
    env = dict(os.environ, PYTHONPATH=str(checks.labs_dir().parents[1]))
    r = subprocess.run([sys.executable, "-m", "minidock", "lab", "list"], capture_output=True, text=True, env=env)
    assert r.returncode == 0 and "pivot_root versus chroot" in r.stdout
    r = subprocess.run([sys.executable, "-m", "minidock", "lab", "hint", "5"], capture_output=True, text=True, env=env)
    assert "oom:" in r.stdout and "hint:" in r.stdout
    r = subprocess.run([sys.executable, "-m", "minidock", "lab", "solution", "2"], capture_output=True, text=True,
                       env=env)
    assert r.returncode == 0 and "CAP_SYS_CHROOT" in r.stdout
    r = subprocess.run([sys.executable, "-m", "minidock", "lab", "check", "99"], capture_output=True, text=True,
                       env=env)
    assert r.returncode == 125 and "no lab 99" in r.stderr


def test_inspect_kernel_reads_the_live_kernel(netns, md_env, busybox):
    """inspect --kernel: namespaces vs the host's, decoded caps, cgroup counters, masks, veth, nft."""
    env = dict(md_env)
    env.pop("MINIDOCK_DEFAULT_NETWORK", None)

    def md(*args):
        return subprocess.run([*_in_ns(netns), sys.executable, "-m", "minidock", *args], capture_output=True,
                              text=True, env=env, timeout=60)

    r = md("run", "-d", "--name", "kview", "-m", "64m", "--cap-drop", "net_raw", "-p", "18181:80", "busybox",
           "sleep", "600")
    assert r.returncode == 0, r.stderr
    try:
        r = md("inspect", "--kernel", "-f", "json", "kview")
        assert r.returncode == 0, r.stderr
        k = json.loads(r.stdout)
        own = {n["type"] for n in k["Namespaces"] if n["own"]}
        assert {"mnt", "pid", "uts", "ipc", "net", "cgroup"} <= own and "user" not in own
        caps = k["Process"]["capabilities"]["CapEff"]
        assert caps["hex"] == "00000000a80405fb" and "NET_RAW" not in caps["names"] and "CHOWN" in caps["names"]
        assert k["Process"]["no_new_privs"] is True
        assert k["Cgroup"]["counters"]["memory_limit"] == 64 * 1024 * 1024
        assert k["Cgroup"]["counters"]["pids_current"] >= 1
        masked = {m["path"]: m["in_force"] for m in k["Mounts"]["masked"]}
        assert masked["/proc/keys"] is True
        assert all(m["propagation"] != "shared" for m in k["Mounts"]["mounts"])
        eth0 = [i for i in k["Network"]["interfaces"] if i["name"] == "eth0"]
        assert eth0 and eth0[0]["addresses"]
        assert k["Network"]["host_veths"] and k["Network"]["host_veths"][0]["bridge"] == "minidock0"
        # the DNAT elements of both families (the namespace has IPv6: a dual-stack bridge)
        assert sum("18181" in json.dumps(e) for e in k["Network"]["ports"]) == 2, k["Network"]["ports"]
        assert k["IdMaps"]["uid_map"] and k["IdMaps"]["uid_map"][0].split() == ["0", "0", "4294967295"]
        pics = {}
        for view in ("namespaces", "overlay", "cgroup", "network"):
            r = md("diagram", "kview", "--view", view)
            assert r.returncode == 0, r.stderr
            pics[view] = r.stdout
        assert "mnt:[" in pics["namespaces"] and "own" in pics["namespaces"]
        assert "upper" in pics["overlay"] and "image/layers/sha256/" in pics["overlay"]
        assert "memory_limit = 67108864" in pics["cgroup"]
        assert "bridge minidock0" in pics["network"] and "tcp 18181 -> " in pics["network"]
        text = md("inspect", "--kernel", "kview").stdout
        assert "CapEff 00000000a80405fb" in text and "on bridge minidock0" in text
        r = md("create", "--name", "kview2", "busybox", "true")
        r = md("inspect", "--kernel", "kview2")
        assert r.returncode != 0 and "not running" in r.stderr
    finally:
        md("rm", "-f", "kview", "kview2")


@pytest.mark.skipif(not (shutil.which("cc") or shutil.which("gcc")), reason="replay compiles its helper: no C compiler")
@pytest.mark.parametrize("network", ["none", "bridge"])
def test_replay_matches_the_real_container(network, netns, md_env, busybox, tmp_path):
    """A container rebuilt by the replay script (overlay, cgroup, unshare, mounts, pivot_root,
    own veth and bridge, capabilities, exec) matches the real one, and cleans up after itself."""
    env = dict(md_env)
    env.pop("MINIDOCK_DEFAULT_NETWORK", None)

    def md(*args, timeout=120):
        return subprocess.run([*_in_ns(netns), sys.executable, "-m", "minidock", *args], capture_output=True,
                              text=True, env=env, timeout=timeout)

    name = f"rp-{network}"
    r = md("run", "-d", "--name", name, "--network", network, "-m", "48m", "--pids-limit", "30",
           "--cap-drop", "chown", "busybox", "sleep", "600")
    assert r.returncode == 0, r.stderr
    try:
        r = md("replay", name, "--check")
        assert r.returncode in (0, 1), r.stderr
        bad = [line for line in r.stdout.splitlines() if line.startswith("! ")]
        assert bad == [], r.stdout  # seccomp too: the same BPF programs, loaded by the helper
        for item in ("own namespaces", "CapBnd", "no_new_privs", "mounts", "masked paths", "cgroup memory_limit",
                     "cgroup pids_limit", "interfaces"):
            assert f"  {item}" in r.stdout, r.stdout
        assert "50331648" in r.stdout and "00000000a80425fa" in r.stdout
        # the script, run by hand: the command runs inside, and nothing is left behind
        script = tmp_path / "replay.sh"
        assert md("replay", name, "-o", str(script)).returncode == 0
        out = subprocess.run([*_in_ns(netns), "bash", str(script), "sh", "-c",
                              "hostname; cat /proc/self/cgroup | head -1; ls /dev/.replay-exec 2>&1; "
                              "ip -o -4 addr show eth0 | wc -l"], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        lines = out.stdout.split("\n")
        assert lines[0] == md("inspect", "-f", "{{.Config.Hostname}}", name).stdout.strip()
        assert lines[1].endswith(":/") and "No such file" in lines[2]
        assert lines[3] == ("1" if network == "bridge" else "0")
        assert "minidock-replay" not in open("/proc/self/mountinfo").read()
    finally:
        md("rm", "-f", name)


def test_lab08_solution_passes_every_check(netns, labs_home, busybox):
    """The exercise's passing attempt: the finished runtime (answers/08-myruntime.py) builds a
    container whose trace has the engine's steps in the engine's order."""
    g = sandbox.Group("solved-08")
    try:
        assert _lab_cli(netns, g.name, "start", "8").returncode == 0
        solution = checks.labs_dir() / "answers" / "08-myruntime.py"
        env = dict(os.environ, PYTHONPATH=str(checks.labs_dir().parents[1]), MINIDOCK_LAB08_PROGRAM=str(solution))
        r = subprocess.run([*_in_ns(netns), sys.executable, "-m", "minidock", "lab", "check", "8", "--group", g.name],
                           capture_output=True, text=True, env=env, timeout=120)
        assert r.returncode == 0 and "4 passed, 0 failed" in r.stdout, r.stdout + r.stderr
    finally:
        _lab_cli(netns, g.name, "reset")


def test_explain_json_and_the_runtime_explains_too(md, busybox, busybox_tar, tmp_path):
    """--explain=json: one object a line (steps with who/where, aliases, actor changes);
    minidock-runtime --explain traces create/start like run does."""
    r = md("run", "--rm", "--network", "none", "--explain=json", busybox, "echo", "--explain=json")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "--explain=json"  # the container's own argument is left alone
    objs = [json.loads(line) for line in r.stderr.splitlines() if line.startswith("{")]
    steps = [o for o in objs if "op" in o]
    assert [s["n"] for s in steps] == list(range(1, len(steps) + 1))
    ops = [s["op"] for s in steps]
    for op in ("mount", "fork", "unshare", "pivot_root", "sethostname", "capset", "execveat"):
        assert op in ops, op
    inside = {s["op"] for s in steps if s["where"] == "container"}
    assert "pivot_root" in inside and "unshare" not in inside
    assert any("alias" in o and o["alias"] == "ROOTFS" for o in objs)
    assert all(s["who"] and s["shell"] is not None for s in steps)
    # the runtime, driven as an engine would
    import tarfile

    bundle = tmp_path / "b"
    (bundle / "rootfs").mkdir(parents=True)
    with tarfile.open(busybox_tar) as t:
        t.extractall(bundle / "rootfs")
    runtime = [sys.executable, "-c", "import sys; from minidock.cli.runtime_cli import main; "
               "sys.argv[0] = 'minidock-runtime'; main()"]
    env = dict(os.environ, PYTHONPATH=str(checks.labs_dir().parents[1]))
    subprocess.run([*runtime, "spec"], cwd=bundle, check=True, env=env)
    spec = json.loads((bundle / "config.json").read_text())
    spec["process"].update(terminal=False, args=["true"])
    (bundle / "config.json").write_text(json.dumps(spec))
    r = subprocess.run([*runtime, "--root", str(tmp_path / "rt"), "--explain=json", "run", "-b", str(bundle),
                        f"explain-{os.getpid()}"], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0, r.stderr
    objs = [json.loads(line) for line in r.stderr.splitlines() if line.startswith("{")]
    assert {"actor": "minidock-runtime", "where": "host"} in objs
    assert "pivot_root" in [o.get("op") for o in objs]


def test_every_explain_shell_line_is_a_command(md, busybox):
    """The `$ ` lines of --explain, in order, make a shell script that parses, whose variables are
    defined above their use, and holds no placeholder ('...'): each is a command as printed."""
    import re

    r = md("run", "--rm", "--network", "none", "-m", "32m", "--explain", busybox, "true")
    assert r.returncode == 0, r.stderr
    lines = [re.sub(r"^\s+\$ ", "", x) for x in r.stderr.splitlines() if re.match(r"^\s+\$ ", x)]
    assert len(lines) > 60
    script = "\n".join(lines) + "\n"
    p = subprocess.run(["bash", "-n"], input=script, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert not [x for x in lines if "..." in x]
    defined = set()
    for x in lines:
        m = re.match(r"^([A-Z][A-Z0-9_]*)=", x)
        used = set(re.findall(r"\$([A-Z][A-Z0-9_]*)", x))
        assert used <= defined, f"{x!r} uses {used - defined} before it is defined"
        if m:
            defined.add(m.group(1))
    assert {"ROOTFS", "CTR", "CGROUP"} <= defined
    for must in ("unshare --mount --cgroup --uts --ipc --pid --net --fork sh", "pivot_root . .",
                 "prlimit --pid $$ --nofile=", 'capsh --caps="cap_chown,', "setpriv --no-new-privs sh"):
        assert any(must in x for x in lines), must
