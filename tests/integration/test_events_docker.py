"""minidock's events against Docker's: the same container lifecycles on a private dockerd and on
minidock, `events --format '{{json .}}'` of both compared field by field (IDs, exec IDs and
times normalized: times must be integers with time == timeNano // 10**9).

The dockerd runs inside a network namespace of its own (with --bridge=none it would delete the
host's docker0), with its own data root, exec root and socket; no iptables. Besides the container
lifecycles: image events (tag, save, untag, load), volume events (create, mount, unmount, destroy)
and a foreground run's attach with the "none" network's connect/disconnect (type null).
"""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest

from tests.dockerd import with_busybox

pytestmark = pytest.mark.noleakcheck  # the private dockerd lives for the module


def sh(*cmd, timeout=90, **kw):
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=timeout, **kw)


def _events(cli, t0: int, t1: int, env, *filters: str) -> list[dict]:
    """The engine's events between two time_ns() marks (the end rounded up to the next second)."""
    args = [a for f in filters for a in ("--filter", f)]
    r = sh(*cli, "events", "--since", f"{t0 // 10**9}.{t0 % 10**9:09d}", "--until", f"{t1 // 10**9 + 1}",
           *args, "--format", "{{json .}}", env=env)
    assert r.returncode == 0, r.stderr
    return [json.loads(line) for line in r.stdout.splitlines()]


@pytest.fixture(scope="module")
def docker(busybox_tar, tmp_path_factory):
    yield from with_busybox(tmp_path_factory.mktemp("dockerev"), busybox_tar)


@pytest.fixture
def minidock(md, busybox):
    import sys

    return [sys.executable, "-m", "minidock"]


def _until(fn, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if fn():
            return True
        time.sleep(0.1)
    return False


def _state(cli, name, env):
    return sh(*cli, "inspect", "-f", "{{.RestartCount}} {{.State.Status}}", name, env=env).stdout.split()


def _health(cli, name, env):
    return sh(*cli, "inspect", "-f", "{{.State.Health.Status}}", name, env=env).stdout.strip()


def _lifecycles(cli, tag, env) -> tuple[list[dict], dict]:
    """The same sequence on one engine; its container events and the names used."""
    names = {k: f"ev{tag}{k}{os.urandom(3).hex()}" for k in ("a", "b", "c")}
    t0 = time.time_ns()
    # a: a crashing container with on-failure:1 (start, die, start, die), then removed
    a = names["a"]
    assert sh(*cli, "create", "--name", a, "--network", "none", "--restart", "on-failure:1", "busybox",
              "sh", "-c", "sleep 0.5; exit 3", env=env).returncode == 0
    assert sh(*cli, "start", a, env=env).returncode == 0
    assert _until(lambda: _state(cli, a, env) == ["1", "exited"]), _state(cli, a, env)
    assert sh(*cli, "rm", a, env=env).returncode == 0
    # b: exec, a signal, stop (SIGTERM ignored by sleep as PID 1: SIGKILL after 1 s), restart, rm -f
    b = names["b"]
    assert sh(*cli, "run", "-d", "--name", b, "--network", "none", "busybox", "sleep", "300",
              env=env).returncode == 0
    assert sh(*cli, "exec", b, "true", env=env).returncode == 0
    assert sh(*cli, "kill", "-s", "USR1", b, env=env).returncode == 0
    time.sleep(0.3)
    assert sh(*cli, "stop", "-t", "1", b, env=env).returncode == 0
    assert sh(*cli, "restart", "-t", "1", b, env=env).returncode == 0
    assert sh(*cli, "rm", "-f", b, env=env).returncode == 0
    # c: a health check turning healthy, then removed while running
    c = names["c"]
    assert sh(*cli, "run", "-d", "--name", c, "--network", "none", "--health-cmd", "true",
              "--health-interval", "300ms", "busybox", "sleep", "300", env=env).returncode == 0
    assert _until(lambda: _health(cli, c, env) == "healthy")
    assert sh(*cli, "rm", "-f", c, env=env).returncode == 0
    t1 = time.time_ns()
    ours = set(names.values())
    evs = _events(cli, t0, t1, env, "type=container")
    return [e for e in evs if e["Actor"]["Attributes"].get("name") in ours], names


def _normalize(evs: list[dict], names: dict) -> list[dict]:
    back = {v: k for k, v in names.items()}
    ids: dict[str, str] = {}
    execs: dict[str, str] = {}
    out = []
    for e in evs:
        assert isinstance(e["time"], int) and isinstance(e["timeNano"], int)
        assert e["time"] == e["timeNano"] // 10**9
        e = json.loads(json.dumps(e))
        cid = e["Actor"]["ID"]
        ids.setdefault(cid, "<" + back[e["Actor"]["Attributes"]["name"]] + ">")
        e["id"] = e["Actor"]["ID"] = ids[cid]
        attrs = e["Actor"]["Attributes"]
        attrs["name"] = back[attrs["name"]]
        if "execID" in attrs:
            attrs["execID"] = execs.setdefault(attrs["execID"], f"<exec{len(execs)}>")
        e["time"] = e["timeNano"] = 0
        out.append(e)
    return out


def _split_probes(evs: list[dict]) -> tuple[list[dict], list[dict]]:
    """Health probes (exec events of container c) are timing-dependent in number: apart."""
    probes = [e for e in evs if e["Action"].startswith("exec_") and e["Actor"]["ID"] == "<c>"]
    rest = [e for e in evs if e not in probes]
    return rest, probes


def test_lifecycle_events_match_dockers(docker, minidock, md_env):
    denv = {k: v for k, v in os.environ.items() if not k.startswith("MINIDOCK")}
    d_evs, d_names = _lifecycles(docker, "d", denv)
    m_evs, m_names = _lifecycles(minidock, "m", md_env)
    d_rest, d_probes = _split_probes(_normalize(d_evs, d_names))
    m_rest, m_probes = _split_probes(_normalize(m_evs, m_names))
    # every key, in Docker's order, every value (after normalizing IDs and times)
    assert [list(e) for e in m_rest] == [list(e) for e in d_rest]
    seq = [(e["Actor"]["ID"], e["Action"]) for e in m_rest], [(e["Actor"]["ID"], e["Action"]) for e in d_rest]
    assert seq[0] == seq[1], "\n".join(map(str, seq))
    for d, m in zip(d_rest, m_rest):
        assert m == d, (d, m)
    # the probes: exec_create/exec_start/exec_die triples of "/bin/sh -c true", as Docker's
    assert d_probes and m_probes
    for d, m in zip(d_probes[:3], m_probes[:3]):
        assert m == d, (d, m)


def _image_events(cli, tag, env, tmp) -> list[tuple]:
    """tag, save, rmi (untag), load on one engine -> its image events, IDs normalized."""
    name = f"evimg{tag}{os.urandom(3).hex()}:x"
    t0 = time.time_ns()
    for args in (("tag", "busybox", name), ("save", "-o", tmp / f"{tag}.tar", name), ("rmi", name),
                 ("load", "-i", tmp / f"{tag}.tar")):
        r = sh(*cli, *args, env=env)
        assert r.returncode == 0, (args, r.stderr)
    img = sh(*cli, "image", "inspect", "-f", "{{.Id}}", name, env=env).stdout.strip()
    sh(*cli, "rmi", name, env=env)
    t1 = time.time_ns()
    out = []
    for e in _events(cli, t0, t1, env, "type=image"):
        norm = {img: "<img>", name: "<name>"}
        attrs = {k: norm.get(v, v) for k, v in e["Actor"]["Attributes"].items()}
        out.append((e["Type"], e["Action"], norm.get(e["Actor"]["ID"], e["Actor"]["ID"]), attrs))
    return out


def test_image_events_match_dockers(docker, minidock, md_env, tmp_path):
    denv = {k: v for k, v in os.environ.items() if not k.startswith("MINIDOCK")}
    d = _image_events(docker, "d", denv, tmp_path)
    m = _image_events(minidock, "m", md_env, tmp_path)
    assert [a for _, a, _, _ in d][:5] == ["tag", "save", "untag", "load", "untag"]  # Docker's, as measured
    assert m == d


def _volume_events(cli, tag, env, actions) -> list[tuple]:
    """A container with a named and an anonymous volume, created, removed with -v -> its volume
    events (only ``actions``), names normalized."""
    vol, name = f"evvol{tag}{os.urandom(3).hex()}", f"evvc{tag}{os.urandom(3).hex()}"
    t0 = time.time_ns()
    r = sh(*cli, "create", "--name", name, "--network", "none", "-v", f"{vol}:/data", "-v", "/anon", "busybox",
           "true", env=env)
    assert r.returncode == 0, r.stderr
    assert vol in sh(*cli, "volume", "ls", "-q", env=env).stdout.split()  # made with the container
    anon = sh(*cli, "inspect", "-f", '{{range .Mounts}}{{if eq .Destination "/anon"}}{{.Name}}{{end}}{{end}}',
              name, env=env).stdout.strip()
    assert len(anon) == 64, anon
    for args in (("start", "-a", name), ("rm", "-v", name), ("volume", "rm", vol)):
        assert sh(*cli, *args, env=env).returncode == 0, args
    t1 = time.time_ns()
    out = []
    for e in _events(cli, t0, t1, env, "type=volume"):
        if e["Action"] in actions:
            norm = {vol: "<vol>", anon: "<anon>"}
            attrs = {k: norm.get(v, "<c>" if k == "container" else v) for k, v in e["Actor"]["Attributes"].items()}
            out.append((e["Action"], norm.get(e["Actor"]["ID"], e["Actor"]["ID"]), attrs))
    return out


def test_volume_events_match_dockers(docker, minidock, md_env):
    denv = {k: v for k, v in os.environ.items() if not k.startswith("MINIDOCK")}
    actions = {"create", "destroy", "mount", "unmount"}
    d = _volume_events(docker, "d", denv, actions)
    m = _volume_events(minidock, "m", md_env, actions)
    assert sorted(a for a, _, _ in d) == ["create", "create", "destroy", "destroy", "mount", "mount", "unmount",
                                          "unmount"], d
    assert sorted(m, key=str) == sorted(d, key=str)


def _attach_events(cli, tag, env) -> list[tuple]:
    """A foreground run and a start -a on --network none: container and network events in order."""
    name = f"evat{tag}{os.urandom(3).hex()}"
    t0 = time.time_ns()
    assert sh(*cli, "run", "--name", name, "--network", "none", "busybox", "true", env=env).returncode == 0
    assert sh(*cli, "start", "-a", name, env=env).returncode == 0
    cid = sh(*cli, "inspect", "-f", "{{.Id}}", name, env=env).stdout.strip()
    net = sh(*cli, "network", "inspect", "-f", "{{.Id}}", "none", env=env).stdout.strip()
    assert sh(*cli, "rm", name, env=env).returncode == 0
    t1 = time.time_ns()
    norm = {cid: "<c>", net: "<none>", name: "<name>"}
    out = []
    for e in _events(cli, t0, t1, env):
        if norm.get(e["Actor"]["ID"]) is None:
            continue
        attrs = {k: norm.get(v, v) for k, v in e["Actor"]["Attributes"].items()}
        out.append((e["Type"], e["Action"], norm[e["Actor"]["ID"]], attrs))
    return out


def test_attach_and_none_network_events_match_dockers(docker, minidock, md_env):
    denv = {k: v for k, v in os.environ.items() if not k.startswith("MINIDOCK")}
    d = _attach_events(docker, "d", denv)
    m = _attach_events(minidock, "m", md_env)
    assert [a for _, a, _, _ in d][:6] == ["create", "attach", "connect", "start", "die", "disconnect"], d
    assert m == d
