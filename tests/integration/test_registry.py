"""pull and push against the real OCI Distribution registry (Debian's docker-registry) on
127.0.0.1: round trips, layers that are already there, manifest lists and platforms, basic auth,
the Bearer token flow, and registries that lie (corrupt blobs, manifests whose digest lies,
media types we do not know) — each a clear error with the store unchanged."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from fixtures_registry import (  # noqa: E402
    PASSWORD,
    USER,
    Registry,
    get_manifest,
    have_registry,
    put_manifest,
    store_listing,
)

pytestmark = pytest.mark.skipif(not have_registry(), reason="docker-registry is not installed")


@pytest.fixture(scope="module")
def workdir():
    d = tempfile.mkdtemp(prefix="minidock-registry-")
    yield Path(d)
    shutil.rmtree(d, ignore_errors=True)


def _registry(workdir: Path, name: str, auth: str | None):
    d = workdir / name
    d.mkdir()
    reg = Registry(str(d), auth)
    reg.start()
    return reg


@pytest.fixture(scope="module")
def registry(workdir):
    reg = _registry(workdir, "anon", None)
    yield reg
    reg.stop()


@pytest.fixture
def other_root(tmp_path):
    """A second, empty state root: a pull there proves nothing came from the first store."""
    d = tmp_path / "root2"
    d.mkdir()
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def layered(request, busybox, state_root):
    """A two-layer image made by commit: the second layer deletes /bin/ls and /etc/group
    (whiteouts), makes /data opaque over nothing, and adds a file."""
    md_env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    import subprocess

    def md(*a):
        return subprocess.run([sys.executable, "-m", "minidock", *a], capture_output=True, text=True, env=md_env)

    r = md("run", "--name", "reg-layered", busybox, "sh", "-c",
           "rm /bin/ls /etc/group; mkdir /data; echo payload > /data/file; head -c 300000 /dev/urandom > /data/rnd")
    assert r.returncode == 0, r.stderr
    r = md("commit", "reg-layered", "reglayered:1")
    assert r.returncode == 0, r.stderr
    md("rm", "reg-layered")
    return "reglayered:1"


def _tree(md, image, env=None) -> str:
    r = md("run", "--rm", image, "sh", "-c", "find / -xdev \\( -path /proc -o -path /sys -o -path /dev \\) -prune "
           "-o -print | sort; cat /data/file", env=env)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_push_pull_round_trip_into_an_empty_store(md, busybox, layered, registry, other_root):
    for src, dst in ((busybox, f"{registry.addr}/lib/busybox:1"), (layered, f"{registry.addr}/lib/layered:1")):
        assert md("tag", src, dst).returncode == 0
        r = md("push", dst)
        assert r.returncode == 0, r.stderr
        assert "digest: sha256:" in r.stdout and "Pushed" in r.stdout
    env = {"MINIDOCK_ROOT": str(other_root)}
    r = md("pull", f"{registry.addr}/lib/layered:1", env=env)
    assert r.returncode == 0, r.stderr
    assert "Pull complete" in r.stdout and f"Status: Downloaded newer image for {registry.addr}/lib/layered:1" \
        in r.stdout
    assert r.stdout.strip().splitlines()[-1] == f"{registry.addr}/lib/layered:1"
    # the pulled image runs with the same file tree, whiteouts included
    assert _tree(md, f"{registry.addr}/lib/layered:1", env) == _tree(md, layered)
    out = md("run", "--rm", f"{registry.addr}/lib/layered:1", "sh", "-c", "ls /bin/ls; cat /etc/group", env=env)
    assert "No such file" in out.stderr and out.returncode != 0
    # the base layer is shared: pulling busybox now finds it already there
    r = md("pull", f"{registry.addr}/lib/busybox:1", env=env)
    assert r.returncode == 0, r.stderr
    assert "Already exists" in r.stdout and "Pull complete" not in r.stdout
    # a second pull: nothing to do
    r = md("pull", "-q", f"{registry.addr}/lib/busybox:1", env=env)
    assert r.returncode == 0 and r.stdout.strip() == f"{registry.addr}/lib/busybox:1"
    digests = md("images", "--digests", env=env).stdout
    assert "sha256:" in digests and "lib/busybox" in digests
    # by digest (the repo digest the pull recorded)
    import json

    r = md("image", "inspect", "--format", "{{json .RepoDigests}}", f"{registry.addr}/lib/busybox:1", env=env)
    rd = json.loads(r.stdout)[0]
    assert md("rmi", f"{registry.addr}/lib/busybox:1", env=env).returncode == 0
    r = md("pull", rd, env=env)
    assert r.returncode == 0, r.stderr
    assert md("run", "--rm", rd, "true", env=env).returncode == 0
    # pushing to another repository of the same registry mounts the blobs instead of uploading
    assert md("tag", rd, f"{registry.addr}/other/copy:1", env=env).returncode == 0
    r = md("push", f"{registry.addr}/other/copy:1", env=env)
    assert r.returncode == 0, r.stderr
    assert "Mounted from lib/busybox" in r.stdout and "Pushed" not in r.stdout
    # a platform the single-platform image is not
    r = md("pull", "--platform", "linux/s390x", f"{registry.addr}/lib/busybox:1", env=env)
    assert r.returncode == 125 and "does not match the specified platform" in r.stderr


def test_chunked_push(md, busybox, registry, other_root):
    """Blobs above MINIDOCK_PUSH_CHUNK_SIZE go up as PATCH chunks; the registry reassembles and
    verifies them, and the pull gets the same image back."""
    ref = f"{registry.addr}/lib/chunked:1"
    r = md("run", "--name", "chunky", busybox, "sh", "-c", "head -c 200000 /dev/urandom > /rnd; md5sum /rnd > /sum")
    assert r.returncode == 0, r.stderr
    assert md("commit", "chunky", ref).returncode == 0
    md("rm", "chunky")
    r = md("push", ref, env={"MINIDOCK_PUSH_CHUNK_SIZE": "65536"})
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("Pushed") >= 2  # at least the new layer (4 chunks) and the config
    env = {"MINIDOCK_ROOT": str(other_root)}
    assert md("pull", "-q", ref, env=env).returncode == 0
    r = md("run", "--rm", ref, "md5sum", "-c", "/sum", env=env)
    assert r.returncode == 0 and "OK" in r.stdout


def test_run_pulls_a_missing_image(md, busybox, registry, other_root):
    ref = f"{registry.addr}/lib/runpull:1"
    assert md("tag", busybox, ref).returncode == 0
    assert md("push", "-q", ref).returncode == 0
    # Docker's push event (distribution.Push): the reference pushed, its repository as the name
    r = md("events", "--since", "60s", "--until", "0s", "--filter", "type=image", "--filter", "event=push",
           "--format", "{{.Actor.ID}} {{.Actor.Attributes.name}}")
    assert r.stdout.splitlines()[-1:] == [f"{ref} {registry.addr}/lib/runpull"], r.stdout
    env = {"MINIDOCK_ROOT": str(other_root)}
    r = md("run", "--rm", "--pull", "never", ref, "true", env=env)
    assert r.returncode == 125 and f"No such image: {ref}" in r.stderr and "Pull complete" not in r.stderr
    r = md("run", "--rm", ref, "echo", "pulled-and-ran", env=env)
    assert r.returncode == 0, r.stderr
    assert f"Unable to find image '{ref}' locally" in r.stderr
    assert "Pull complete" in r.stderr
    assert r.stdout.strip() == "pulled-and-ran"
    r = md("run", "--rm", ref, "true", env=env)  # --pull missing (the default): here now, no pull
    assert r.returncode == 0 and r.stderr == ""
    r = md("run", "--rm", "--pull", "always", ref, "true", env=env)  # asks the registry again
    assert r.returncode == 0 and "Image is up to date" in r.stderr + r.stdout, r.stderr


def test_manifest_list_picks_the_platform(md, busybox, layered, registry, other_root):
    from minidock.image.config import host_platform

    os_, arch = host_platform()
    other = "arm64" if arch != "arm64" else "amd64"
    for src, tag in ((busybox, "host"), (layered, "other")):
        md("tag", src, f"{registry.addr}/lib/multi:{tag}")
        assert md("push", "-q", f"{registry.addr}/lib/multi:{tag}").returncode == 0
    descs = []
    import hashlib
    import urllib.request

    for tag, a in (("host", arch), ("other", other)):
        m = get_manifest(registry.addr, "lib/multi", tag)
        req = urllib.request.Request(f"http://{registry.addr}/v2/lib/multi/manifests/{tag}",
                                     headers={"Accept": m["mediaType"]})
        raw = urllib.request.urlopen(req).read()
        descs.append({"mediaType": m["mediaType"], "digest": "sha256:" + hashlib.sha256(raw).hexdigest(),
                      "size": len(raw), "platform": {"os": os_, "architecture": a}})
    put_manifest(registry.addr, "lib/multi", "list", {"schemaVersion": 2, "mediaType":
                 "application/vnd.oci.image.index.v1+json", "manifests": descs},
                 "application/vnd.oci.image.index.v1+json")
    env = {"MINIDOCK_ROOT": str(other_root)}
    r = md("pull", f"{registry.addr}/lib/multi:list", env=env)
    assert r.returncode == 0, r.stderr
    r = md("run", "--rm", f"{registry.addr}/lib/multi:list", "ls", "/data", env=env)
    assert r.returncode != 0  # the host's entry: busybox, without /data
    r = md("pull", "--platform", f"linux/{other}", f"{registry.addr}/lib/multi:list", env=env)
    assert r.returncode == 0, r.stderr
    r = md("run", "--rm", f"{registry.addr}/lib/multi:list", "cat", "/data/file", env=env)
    assert r.stdout.strip() == "payload"
    before = store_listing(other_root)
    r = md("pull", "--platform", "linux/s390x", f"{registry.addr}/lib/multi:list", env=env)
    assert r.returncode == 125
    assert "no matching manifest for linux/s390x" in r.stderr and "--platform" in r.stderr
    assert store_listing(other_root) == before


# ---- registries that lie ---------------------------------------------------------------------------
def _fresh_image(md, busybox, registry, name: str) -> tuple[str, dict]:
    """Push an image with a layer of its own, then drop it locally. -> (ref, its manifest)."""
    r = md("run", "--name", f"mk-{name}", busybox, "sh", "-c", f"head -c 5000 /dev/urandom > /{name}")
    assert r.returncode == 0, r.stderr
    ref = f"{registry.addr}/bad/{name}:1"
    assert md("commit", f"mk-{name}", ref).returncode == 0
    md("rm", f"mk-{name}")
    assert md("push", "-q", ref).returncode == 0
    assert md("rmi", ref).returncode == 0
    return ref, get_manifest(registry.addr, f"bad/{name}", "1")


def _flip(path: str) -> None:
    data = bytearray(Path(path).read_bytes())
    data[len(data) // 2] ^= 0xFF
    Path(path).write_bytes(bytes(data))


def test_corrupt_blob_is_refused_and_nothing_is_stored(md, busybox, registry, state_root):
    ref, man = _fresh_image(md, busybox, registry, "corrupt")
    _flip(registry.blob_file(man["layers"][-1]["digest"]))
    before = store_listing(state_root)
    r = md("pull", ref)
    assert r.returncode == 125
    assert "digest mismatch" in r.stderr and man["layers"][-1]["digest"] in r.stderr
    assert store_listing(state_root) == before


def test_manifest_whose_digest_lies(md, busybox, registry, state_root):
    ref, man = _fresh_image(md, busybox, registry, "liar")
    import hashlib
    import urllib.request

    req = urllib.request.Request(f"http://{registry.addr}/v2/bad/liar/manifests/1",
                                 headers={"Accept": man["mediaType"]})
    digest = "sha256:" + hashlib.sha256(urllib.request.urlopen(req).read()).hexdigest()
    path = registry.blob_file(digest)
    Path(path).write_bytes(Path(path).read_bytes().replace(b'"schemaVersion"', b'"schemaVersion" '))
    before = store_listing(state_root)
    for what in (ref, f"{registry.addr}/bad/liar@{digest}"):
        r = md("pull", what)
        assert r.returncode == 125, r.stdout
        assert "manifest digest mismatch" in r.stderr
        assert len([ln for ln in r.stderr.splitlines() if ln.startswith("minidock: Error")]) == 1
        assert store_listing(state_root) == before


def test_unknown_media_types_are_refused(md, busybox, registry, state_root):
    ref, man = _fresh_image(md, busybox, registry, "weird")
    art = dict(man, config=dict(man["config"], mediaType="application/vnd.example.thing.config.v1+json"))
    put_manifest(registry.addr, "bad/weird", "artifact", art, man["mediaType"])
    lay = dict(man, layers=[dict(x, mediaType="application/vnd.example.layer.v1.tar+lz4") for x in man["layers"]])
    put_manifest(registry.addr, "bad/weird", "lz4", lay, man["mediaType"])
    before = store_listing(state_root)
    r = md("pull", f"{registry.addr}/bad/weird:artifact")
    assert r.returncode == 125 and "unsupported config media type" in r.stderr and "not a container image" in r.stderr
    r = md("pull", f"{registry.addr}/bad/weird:lz4")
    assert r.returncode == 125 and "unsupported layer media type" in r.stderr
    assert store_listing(state_root) == before
    r = md("pull", f"{registry.addr}/bad/weird:nosuchtag")
    assert r.returncode == 125 and "not found" in r.stderr


# ---- authentication -----------------------------------------------------------------------------------
@pytest.mark.parametrize("auth", ["htpasswd", "token"])
def test_login_push_pull_with_auth(md, busybox, workdir, other_root, tmp_path, auth):
    reg = _registry(workdir, auth, auth)
    try:
        creds = {"MINIDOCK_AUTH_CONFIG": str(tmp_path / "auth.json"), "DOCKER_CONFIG": str(tmp_path / "docker")}
        ref = f"{reg.addr}/priv/busybox:1"
        assert md("tag", busybox, ref).returncode == 0
        r = md("push", ref, env=creds)
        assert r.returncode == 125 and "unauthorized" in r.stderr and f"minidock login {reg.addr}" in r.stderr
        r = md("login", "-u", USER, "--password-stdin", reg.addr, input="wrong\n", env=creds)
        assert r.returncode == 125 and "unauthorized" in r.stderr
        assert not (tmp_path / "auth.json").exists()
        r = md("login", "-u", USER, "--password-stdin", reg.addr, input=PASSWORD + "\n", env=creds)
        assert r.returncode == 0 and "Login Succeeded" in r.stdout, r.stderr
        assert oct((tmp_path / "auth.json").stat().st_mode & 0o777) == "0o600"
        r = md("push", ref, env=creds)
        assert r.returncode == 0, r.stderr
        env2 = dict(creds, MINIDOCK_ROOT=str(other_root))
        r = md("pull", ref, env=env2)
        assert r.returncode == 0, r.stderr
        assert md("run", "--rm", ref, "true", env=env2).returncode == 0
        if auth == "token":
            assert any(q["auth"] and "repository:priv/busybox:pull,push" in q["query"].get("scope", [])
                       for q in reg.issuer.requests)
        # logout: anonymous again, and refused
        r = md("logout", reg.addr, env=creds)
        assert r.returncode == 0 and "Removing login credentials" in r.stdout
        md("rmi", ref, env=env2)
        r = md("pull", ref, env=env2)
        assert r.returncode == 125 and ("unauthorized" in r.stderr or "denied" in r.stderr), r.stderr
        # credentials from an existing Docker config work too
        import base64
        import json

        (tmp_path / "docker").mkdir()
        (tmp_path / "docker" / "config.json").write_text(json.dumps({"auths": {reg.addr: {
            "auth": base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()}}}))
        r = md("pull", "-q", ref, env=env2)
        assert r.returncode == 0, r.stderr
    finally:
        reg.stop()


# ---- concurrency and crashes --------------------------------------------------------------------------
def _blobs_verify(root: Path) -> None:
    import hashlib

    blobs = root / "image" / "blobs" / "sha256"
    if not blobs.is_dir():
        return  # killed before the store made its first blob: nothing to verify
    for p in blobs.iterdir():
        if p.is_file() and len(p.name) == 64:
            assert hashlib.sha256(p.read_bytes()).hexdigest() == p.name, p


def _pull_proc(md_env, root: Path, ref: str):
    import subprocess

    env = dict(md_env, MINIDOCK_ROOT=str(root))
    return subprocess.Popen([sys.executable, "-m", "minidock", "pull", "-q", ref], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_concurrent_pulls_into_one_store(md, md_env, busybox, layered, registry, other_root):
    """Three `pull`s of the same image at once, into one store (the writers' flock): all succeed,
    the image is there once, every blob matches its digest, and it runs."""
    ref = f"{registry.addr}/lib/conc:1"
    assert md("tag", layered, ref).returncode == 0
    assert md("push", "-q", ref).returncode == 0
    procs = [_pull_proc(md_env, other_root, ref) for _ in range(3)]
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    env = {"MINIDOCK_ROOT": str(other_root)}
    assert md("images", "-q", env=env).stdout.split() == [md("images", "-q", ref, env=env).stdout.strip()]
    _blobs_verify(other_root)
    assert _tree(md, ref, env) == _tree(md, layered)


def test_kill_9_during_pull_never_shows_a_half_image(md, md_env, busybox, registry, tmp_path):
    """pull killed with SIGKILL at several points: the image is either complete (listed and runs)
    or not there at all; the next pull completes it."""
    import signal
    import time

    r = md("run", "--name", "mk-big", busybox, "sh", "-c",
           "head -c 30000000 /dev/urandom > /big1; head -c 20000000 /dev/urandom > /big2")
    assert r.returncode == 0, r.stderr
    ref = f"{registry.addr}/lib/big:1"
    assert md("commit", "mk-big", ref).returncode == 0
    md("rm", "mk-big")
    assert md("push", "-q", ref).returncode == 0
    assert md("rmi", ref).returncode == 0
    outcomes = set()
    for i, delay in enumerate((0.15, 0.35, 0.6, 0.9, 1.3)):
        root = tmp_path / f"root{i}"
        root.mkdir()
        env = {"MINIDOCK_ROOT": str(root)}
        p = _pull_proc(md_env, root, ref)
        time.sleep(delay)
        p.send_signal(signal.SIGKILL)
        p.wait()
        listed = md("images", "-q", ref, env=env).stdout.strip()
        outcomes.add(bool(listed))
        if listed:  # visible means complete
            r = md("run", "--rm", ref, "sh", "-c", "wc -c < /big1", env=env)
            assert r.returncode == 0 and r.stdout.strip() == "30000000", r.stderr
        else:
            r = md("run", "--rm", "--pull", "never", ref, "true", env=env)
            assert r.returncode == 125 and "No such image" in r.stderr
        _blobs_verify(root)
        r = md("pull", "-q", ref, env=env)  # the next pull finishes the job
        assert r.returncode == 0, r.stderr
        r = md("run", "--rm", ref, "sh", "-c", "wc -c < /big1; wc -c < /big2", env=env)
        assert r.stdout.split() == ["30000000", "20000000"], r.stderr
    assert False in outcomes, "no kill landed before the pull finished: the test proved nothing"
