"""save/load (Docker's archive and the OCI layout, files, directories, stdin/stdout), export,
commit (whiteouts and opaque dirs from the upper dir), and archives that are bad in every way we
know — each a clear one-line error with the store unchanged."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from fixtures_registry import store_listing  # noqa: E402

TREE = ("find / -xdev \\( -path /proc -o -path /sys -o -path /dev \\) -prune -o -print | sort; "
        "cat /data/file 2>&1; ls /etc")


@pytest.fixture(scope="module")
def committed(busybox, state_root):
    """commit of a container that deleted files, replaced /etc wholesale (an opaque dir) and
    added some: a two-layer image."""
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))

    def md(*a):
        return subprocess.run([sys.executable, "-m", "minidock", *a], capture_output=True, text=True, env=env)

    r = md("run", "--name", "img-commit", busybox, "sh", "-c",
           "rm /bin/ls; mkdir -p /data /opq; echo payload > /data/file; echo x > /opq/old; "
           "ln /data/file /data/hard; ln -s file /data/sym")
    assert r.returncode == 0, r.stderr
    r = md("commit", "-c", "ENV COMMITTED=yes", "-m", "a message", "img-commit", "committed:1")
    assert r.returncode == 0, r.stderr
    md("rm", "img-commit")
    # a third layer with an opaque dir: /opq replaced wholesale
    r = md("run", "--name", "img-commit2", "committed:1", "sh", "-c", "rm -rf /opq; mkdir /opq; echo n > /opq/new")
    assert r.returncode == 0, r.stderr
    assert md("commit", "img-commit2", "committed:2").returncode == 0
    md("rm", "img-commit2")
    return "committed:2"


def _tree(md, image) -> str:
    r = md("run", "--rm", image, "sh", "-c", TREE)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_commit_makes_whiteouts_and_opaque_dirs(md, committed, tmp_path):
    r = md("run", "--rm", committed, "sh", "-c", "ls /bin/ls 2>&1; ls /opq; cat /data/hard; readlink /data/sym; "
           "echo $COMMITTED")
    assert r.stdout.split() == ["ls:", "/bin/ls:", "No", "such", "file", "or", "directory", "new", "payload",
                                "file", "yes"]
    hist = md("history", "--no-trunc", committed).stdout
    assert "a message" in hist and "rm -rf /opq" in hist
    # the layers, in OCI notation, as `save` writes them
    out = tmp_path / "c.tar"
    assert md("save", "-o", out, committed).returncode == 0
    with tarfile.open(out) as tf:
        man = json.load(tf.extractfile("manifest.json"))[0]
        names = []
        for lay in man["Layers"]:
            names.append(tarfile.open(fileobj=tf.extractfile(lay)).getnames())
    assert len(names) == 3
    assert "bin/.wh.ls" in names[1] and "data/file" in names[1]
    assert "opq/.wh..wh..opq" in names[2] and "opq/new" in names[2]


def test_save_load_docker_archive_round_trip(md, busybox, committed, tmp_path):
    before = _tree(md, committed)
    out = tmp_path / "two.tar"
    r = md("save", "-o", out, busybox, committed)
    assert r.returncode == 0, r.stderr
    with tarfile.open(out) as tf:
        names = set(tf.getnames())
        assert {"manifest.json", "index.json", "oci-layout", "repositories"} <= names
        man = json.load(tf.extractfile("manifest.json"))
    assert [m["RepoTags"] for m in man] == [["busybox:latest"], [committed]]
    assert md("rmi", committed).returncode == 0
    r = md("load", "-i", out)
    assert r.returncode == 0, r.stderr
    assert f"Loaded image: {committed}" in r.stdout and "Loaded image: busybox:latest" in r.stdout
    assert _tree(md, committed) == before


def test_save_to_stdout_load_from_stdin_gzip(md, committed, md_env):
    save = subprocess.run([sys.executable, "-m", "minidock", "save", committed], capture_output=True, env=md_env)
    assert save.returncode == 0, save.stderr
    before = _tree(md, committed)
    assert md("rmi", committed).returncode == 0
    load = subprocess.run([sys.executable, "-m", "minidock", "load"], input=gzip.compress(save.stdout, 1),
                          capture_output=True, env=md_env)
    assert load.returncode == 0, load.stderr
    assert _tree(md, committed) == before


def test_oci_layout_directory_round_trip(md, committed, tmp_path):
    d = tmp_path / "layout"
    d.mkdir()
    r = md("save", "--format", "oci", "-o", d, committed)
    assert r.returncode == 0, r.stderr
    index = json.loads((d / "index.json").read_text())
    assert index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"] == "2"
    assert not (d / "manifest.json").exists()
    before = _tree(md, committed)
    assert md("rmi", committed).returncode == 0
    r = md("load", "-i", d)
    assert r.returncode == 0, r.stderr
    assert _tree(md, committed) == before


def test_export_then_import_gives_the_same_tree(md, committed, tmp_path):
    r = md("create", "--name", "img-export", committed)
    assert r.returncode == 0, r.stderr
    try:
        out = tmp_path / "fs.tar"
        r = md("export", "-o", out, "img-export")
        assert r.returncode == 0, r.stderr
        with tarfile.open(out) as tf:
            names = tf.getnames()
        assert "data/file" in names and "bin/ls" not in names and not any(".wh." in n for n in names)
        assert md("import", out, "exported:1").returncode == 0
        assert _tree(md, "exported:1") == _tree(md, committed)
    finally:
        md("rm", "-f", "img-export")
        md("rmi", "exported:1")


# ---- bad archives ------------------------------------------------------------------------------------
def _tar(entries: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, data in entries.items():
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def _docker_archive(layer: bytes, *, config_name: str | None = None) -> bytes:
    diff = "sha256:" + hashlib.sha256(layer).hexdigest()
    cfg = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                      "rootfs": {"type": "layers", "diff_ids": [diff]}}).encode()
    cname = config_name or hashlib.sha256(cfg).hexdigest()
    return _tar({f"{cname}.json": cfg, "l1/layer.tar": layer,
                 "manifest.json": json.dumps([{"Config": f"{cname}.json", "RepoTags": ["bad:1"],
                                               "Layers": ["l1/layer.tar"]}]).encode()})


def _oci_archive(layer: bytes, *, manifest_type="application/vnd.oci.image.manifest.v1+json",
                 layer_digest: str | None = None) -> bytes:
    diff = "sha256:" + hashlib.sha256(layer).hexdigest()
    cfg = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                      "rootfs": {"type": "layers", "diff_ids": [diff]}}).encode()
    cd = "sha256:" + hashlib.sha256(cfg).hexdigest()
    man = json.dumps({"schemaVersion": 2, "mediaType": manifest_type,
                      "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd,
                                 "size": len(cfg)},
                      "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                                  "digest": layer_digest or diff, "size": len(layer)}]}).encode()
    md_ = "sha256:" + hashlib.sha256(man).hexdigest()
    index = {"schemaVersion": 2, "manifests": [{"mediaType": manifest_type, "digest": md_, "size": len(man),
                                                "annotations": {"io.containerd.image.name": "badoci:1"}}]}
    return _tar({"oci-layout": b'{"imageLayoutVersion":"1.0.0"}', "index.json": json.dumps(index).encode(),
                 f"blobs/sha256/{cd[7:]}": cfg, f"blobs/sha256/{md_[7:]}": man,
                 f"blobs/sha256/{(layer_digest or diff)[7:]}": layer})


def _good_layer() -> bytes:
    return _tar({"hello": b"world\n", "sub/file": b"x"})


def _bad_cases(busybox_tar: Path) -> dict[str, tuple[bytes, str]]:
    good = _good_layer()
    full = _docker_archive(_tar({"bin/x": os.urandom(20000)}))
    evil = _tar({"../../evil": b"pwned"})
    flipped = bytearray(good)
    flipped[600] ^= 0xFF  # inside "hello"'s data: the layer no longer matches its digest
    return {
        "truncated tarball": (full[: len(full) // 2], "truncated"),
        "path traversal layer": (_docker_archive(evil), "points outside the layer"),
        "corrupted blob": (_oci_archive(bytes(flipped), layer_digest="sha256:" + hashlib.sha256(good).hexdigest()),
                           "digest mismatch"),
        "config whose name lies": (_docker_archive(good, config_name="0" * 64), "digest mismatch"),
        "unknown media type": (_oci_archive(good, manifest_type="application/vnd.example.manifest.v9+json"),
                               "unsupported manifest media type"),
        "not an image archive": (_tar({"hello": b"x"}), "not an image archive"),
        "not a tar at all": (os.urandom(3000), "invalid tar archive"),
    }


@pytest.mark.parametrize("case", ["truncated tarball", "path traversal layer", "corrupted blob",
                                  "config whose name lies", "unknown media type", "not an image archive",
                                  "not a tar at all"])
def test_bad_archive_is_refused_and_the_store_is_unchanged(md, busybox, busybox_tar, state_root, tmp_path, case):
    data, expect = _bad_cases(busybox_tar)[case]
    f = tmp_path / "bad.tar"
    f.write_bytes(data)
    before = store_listing(state_root)
    r = md("load", "-i", f)
    assert r.returncode == 125, (r.stdout, r.stderr)
    errs = [ln for ln in r.stderr.splitlines() if ln.startswith("minidock: Error")]
    assert len(errs) == 1 and expect in errs[0], r.stderr
    assert "Traceback" not in r.stderr
    assert store_listing(state_root) == before
    assert not list((state_root / "image" / "tmp").iterdir())


def test_good_handmade_archives_load(md, busybox, tmp_path):
    """The control for the bad cases above: the same builders, untampered, load and run."""
    for name, data, ref in (("d.tar", _docker_archive(_good_layer()), "bad:1"),
                            ("o.tar", _oci_archive(_good_layer()), "badoci:1")):
        f = tmp_path / name
        f.write_bytes(data)
        r = md("load", "-i", f)
        assert r.returncode == 0, r.stderr
        assert f"Loaded image: {ref}" in r.stdout
        assert md("rmi", ref).returncode == 0


def test_gc_spares_what_a_live_lease_holds(md, busybox, tmp_path, state_root):
    """A pull in progress (a lease in this process) keeps its blobs even when they are old and no
    image uses them yet; once the lease is gone, the next gc removes them."""
    from minidock.image.store import ImageStore

    store = ImageStore()
    tiny = tmp_path / "tiny.tar"
    tiny.write_bytes(_tar({"f": b"tiny"}))

    def churn():  # an rmi that deletes an image runs gc
        assert md("import", tiny, "churn:1").returncode == 0
        assert md("rmi", "churn:1").returncode == 0

    with store.lease() as lease:
        digest, _ = lease.put_blob(io.BytesIO(os.urandom(1000)))
        os.utime(store.blob_path(digest), (1, 1))
        churn()
        assert store.has_blob(digest)
    churn()
    assert not store.has_blob(digest)


def test_commit_leaves_out_the_engines_mount_targets(md, busybox, busybox_tar, tmp_path):
    """An image without /etc/hosts etc.: the engine creates empty mount targets in the upper dir;
    commit leaves them out (Docker's init layer), but keeps real changes next to them."""
    src = tarfile.open(busybox_tar)
    out = tmp_path / "nohosts.tar"
    with tarfile.open(out, "w") as tf:
        for m in src.getmembers():
            if m.name.lstrip("./") not in ("etc/hosts", "etc/hostname", "etc/resolv.conf"):
                tf.addfile(m, src.extractfile(m) if m.isfile() else None)
    assert md("import", out, "nohosts:1").returncode == 0
    try:
        r = md("run", "--name", "nohosts", "nohosts:1", "sh", "-c", "test -e /etc/hosts && echo changed > /etc/motd")
        assert r.returncode == 0, r.stderr
        assert md("commit", "nohosts", "nohosts:2").returncode == 0
        save = tmp_path / "s.tar"
        assert md("save", "-o", save, "nohosts:2").returncode == 0
        with tarfile.open(save) as tf:
            top = json.load(tf.extractfile("manifest.json"))[0]["Layers"][-1]
            names = tarfile.open(fileobj=tf.extractfile(top)).getnames()
        assert "etc/motd" in names
        assert not {"etc/hosts", "etc/hostname", "etc/resolv.conf"} & set(names)
    finally:
        md("rm", "-f", "nohosts")
        md("rmi", "nohosts:2", "nohosts:1")


def test_commit_of_a_running_container_pauses_it_only_meanwhile(md, busybox):
    """Docker's commit -p (default true) freezes a running container while its changes are read;
    -p=false reads while it runs. Either way it runs on, unpaused, afterwards."""
    cid = md("run", "-d", busybox, "sh", "-c", "echo x > /made; sleep 60").stdout.strip()
    try:
        for flag in ([], ["--pause=false"]):
            r = md("commit", *flag, cid)
            assert r.returncode == 0 and r.stdout.startswith("sha256:"), r.stderr
            st = json.loads(md("inspect", cid).stdout)[0]["State"]
            assert st["Running"] and not st["Paused"] and st["Status"] == "running"
            md("rmi", r.stdout.strip())
        assert md("exec", cid, "true").returncode == 0  # not frozen
        r = md("commit", "--pause=maybe", cid)
        assert r.returncode != 0
    finally:
        md("rm", "-f", cid)
