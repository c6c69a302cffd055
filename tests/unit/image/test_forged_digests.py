"""Forged digests are refused where they enter, before anything is joined into a path.

The attack (issue 17): a digest is ``sha256:`` + 64 characters that are not hex but ``../`` and
a host path. The old check looked at the prefix and the length only, and the store opened a lease
file at ``tmp/<lease>/<64 chars>`` — `load` truncated a host file. Each test plants such a digest
in one place (an archive's config, a Docker archive's manifest.json, an OCI layout's index.json,
a nested index, a registry's manifest and index) and passes only if the load/pull is refused with
the victim file intact and nothing written outside the store.
"""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import os
import shutil
import tarfile
import tempfile
import threading

import pytest

from minidock.errors import MinidockError
from minidock.image import archive, registry
from minidock.image.store import ImageStore, check_descriptors, check_digest

MT_INDEX = "application/vnd.oci.image.index.v1+json"
MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_LAYER = "application/vnd.oci.image.layer.v1.tar"


@pytest.fixture
def victim():
    """A host file outside every store, and the forged digest that points at it."""
    d = tempfile.mkdtemp(prefix="v", dir="/tmp")
    path = os.path.join(d, "secret")
    with open(path, "w") as f:
        f.write("host data\n")
    rel = path.lstrip("/")
    prefix = "../" * 12  # deeper than any store under /tmp
    fill = 64 - len(prefix) - len(rel)
    assert fill >= 0, path
    forged = "sha256:" + prefix + "/" * fill + rel
    assert len(forged) == 71
    yield path, forged
    shutil.rmtree(d)


def _intact(path: str) -> None:
    with open(path) as f:
        assert f.read() == "host data\n", "the forged digest reached a host file"
    assert os.listdir(os.path.dirname(path)) == ["secret"], "something was written outside the store"


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _layer() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        info = tarfile.TarInfo("hello")
        info.size = 3
        tf.addfile(info, io.BytesIO(b"hi\n"))
    return buf.getvalue()


def _tar(path: str, files: dict[str, bytes]) -> None:
    with tarfile.open(path, "w") as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))


def _store(tmp_path) -> ImageStore:
    return ImageStore(tmp_path / "store")


def test_digest_shape():
    good = "sha256:" + "a" * 64
    assert check_digest(good) == good
    for bad in ["sha256:" + "A" * 64, "sha256:" + "a" * 63, "sha256:" + "a" * 65, "sha256:" + "../" * 21 + "a",
                "md5:" + "a" * 32, "sha256:" + "a" * 63 + "\n", None, 42, ""]:
        with pytest.raises(MinidockError):
            check_digest(bad)
    with pytest.raises(MinidockError, match="unsupported digest algorithm"):
        check_digest("sha512:" + "b" * 128)
    with pytest.raises(MinidockError):
        check_descriptors({"layers": [{"digest": "sha256:" + "g" * 64}]}, "m")


def test_store_paths_refuse_a_forged_digest(tmp_path, victim):
    path, forged = victim
    store = _store(tmp_path)
    for fn in (store.blob_path, store.layer_dir, store.has_blob, store._record_path):
        with pytest.raises(MinidockError):
            fn(forged)
    with store.lease() as lease, pytest.raises(MinidockError):
        lease.hold(forged)
    _intact(path)


def test_docker_archive_with_a_forged_diff_id(tmp_path, victim):
    path, forged = victim
    layer = _layer()
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "rootfs": {"type": "layers", "diff_ids": [forged]}}).encode()
    cname = _sha(config)[7:] + ".json"
    manifest = json.dumps([{"Config": cname, "RepoTags": ["forged:latest"], "Layers": ["l/layer.tar"]}]).encode()
    arc = str(tmp_path / "a.tar")
    _tar(arc, {"manifest.json": manifest, cname: config, "l/layer.tar": layer})
    store = _store(tmp_path)
    with pytest.raises(MinidockError, match="invalid digest"):
        archive.load(arc, store)
    _intact(path)
    assert store.ids() == []


def test_docker_archive_manifest_json_with_a_forged_config_name(tmp_path, victim):
    path, _ = victim
    config = b'{"rootfs": {"type": "layers", "diff_ids": []}}'
    # a 64-character config name that is not hex (the digest it implies is forged)
    cname = "x" * 60 + ".." + "ab" + ".json"
    manifest = json.dumps([{"Config": cname, "RepoTags": ["forged:latest"], "Layers": []}]).encode()
    arc = str(tmp_path / "a.tar")
    _tar(arc, {"manifest.json": manifest, cname: config})
    store = _store(tmp_path)
    with pytest.raises(MinidockError, match="invalid digest"):
        archive.load(arc, store)
    # a Layers entry that leaves a directory archive
    d = tmp_path / "dir"
    d.mkdir()
    (d / "manifest.json").write_text(json.dumps([{"Config": "c.json", "Layers": [path]}]))
    (d / "c.json").write_text(json.dumps({"rootfs": {"diff_ids": [_sha(b"x")]}}))
    with pytest.raises(MinidockError):
        archive.load(str(d), store)
    _intact(path)
    assert store.ids() == []


def _oci_layout(dirpath: str, index: dict, blobs: list[bytes]) -> None:
    os.makedirs(os.path.join(dirpath, "blobs", "sha256"))
    with open(os.path.join(dirpath, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)
    with open(os.path.join(dirpath, "index.json"), "w") as f:
        json.dump(index, f)
    for b in blobs:
        with open(os.path.join(dirpath, "blobs", "sha256", _sha(b)[7:]), "wb") as f:
            f.write(b)


def test_oci_layout_with_a_forged_manifest_digest(tmp_path, victim):
    path, forged = victim
    lay = str(tmp_path / "oci")
    _oci_layout(lay, {"schemaVersion": 2, "manifests": [{"mediaType": MT_MANIFEST, "digest": forged,
                                                          "size": 10}]}, [])
    store = _store(tmp_path)
    with pytest.raises(MinidockError, match="invalid digest"):
        archive.load(lay, store)
    _intact(path)


def test_oci_layout_with_a_forged_layer_digest_in_a_tar(tmp_path, victim):
    path, forged = victim
    layer = _layer()
    config = json.dumps({"rootfs": {"type": "layers", "diff_ids": [_sha(layer)]}}).encode()
    man = json.dumps({"schemaVersion": 2, "mediaType": MT_MANIFEST,
                      "config": {"mediaType": MT_CONFIG, "digest": _sha(config), "size": len(config)},
                      "layers": [{"mediaType": MT_LAYER, "digest": forged, "size": len(layer)}]}).encode()
    index = {"schemaVersion": 2, "manifests": [{"mediaType": MT_MANIFEST, "digest": _sha(man), "size": len(man)}]}
    files = {"oci-layout": b'{"imageLayoutVersion": "1.0.0"}', "index.json": json.dumps(index).encode()}
    for b in (config, man):
        files["blobs/sha256/" + _sha(b)[7:]] = b
    files["blobs/" + forged.replace(":", "/")] = layer
    arc = str(tmp_path / "oci.tar")
    _tar(arc, files)
    store = _store(tmp_path)
    with pytest.raises(MinidockError, match="invalid digest"):
        archive.load(arc, store)
    _intact(path)
    assert store.ids() == []


def test_oci_layout_with_a_forged_digest_in_a_nested_index(tmp_path, victim):
    path, forged = victim
    sub = json.dumps({"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": [
        {"mediaType": MT_MANIFEST, "digest": forged, "size": 1,
         "platform": {"os": "linux", "architecture": "amd64"}}]}).encode()
    lay = str(tmp_path / "oci")
    _oci_layout(lay, {"schemaVersion": 2, "manifests": [{"mediaType": MT_INDEX, "digest": _sha(sub),
                                                          "size": len(sub)}]}, [sub])
    store = _store(tmp_path)
    with pytest.raises(MinidockError, match="invalid digest"):
        archive.load(lay, store)
    _intact(path)


class _Forger:
    """A registry on 127.0.0.1 that answers with the documents given (path -> bytes)."""

    def __init__(self, docs: dict[str, tuple[bytes, str]]):
        docs_ = docs

        class H(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                if self.path == "/v2/":
                    body, mt = b"{}", "application/json"
                elif self.path in docs_:
                    body, mt = docs_[self.path]
                else:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", mt)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_HEAD = do_GET

        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.addr = f"127.0.0.1:{self.srv.server_address[1]}"
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def close(self):
        self.srv.shutdown()
        self.srv.server_close()


@pytest.mark.parametrize("where", ["layer", "config", "index"])
def test_registry_with_forged_digests(tmp_path, victim, where):
    path, forged = victim
    layer = _layer()
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "rootfs": {"type": "layers", "diff_ids": [_sha(layer)]}}).encode()
    man = {"schemaVersion": 2, "mediaType": MT_MANIFEST,
           "config": {"mediaType": MT_CONFIG, "digest": forged if where == "config" else _sha(config),
                      "size": len(config)},
           "layers": [{"mediaType": MT_LAYER, "digest": forged if where == "layer" else _sha(layer),
                       "size": len(layer)}]}
    docs = {"/v2/x/manifests/latest": (json.dumps(man).encode(), MT_MANIFEST),
            f"/v2/x/blobs/{_sha(config)}": (config, "application/octet-stream"),
            f"/v2/x/blobs/{_sha(layer)}": (layer, "application/octet-stream")}
    if where == "index":
        idx = {"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": [
            {"mediaType": MT_MANIFEST, "digest": forged, "size": 10,
             "platform": {"os": "linux", "architecture": "amd64"}}]}
        docs["/v2/x/manifests/latest"] = (json.dumps(idx).encode(), MT_INDEX)
    reg = _Forger(docs)
    store = _store(tmp_path)
    try:
        with pytest.raises(MinidockError, match="invalid digest"):
            registry.pull(f"{reg.addr}/x:latest", quiet=True, store=store)
    finally:
        reg.close()
    _intact(path)
    assert store.ids() == []
