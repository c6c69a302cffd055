"""The image store as a user sees it: import, layers with whiteouts under overlayfs, rmi rules,
and bad inputs that leave the store exactly as it was."""

from __future__ import annotations

import gzip
import io
import json
import os
import shutil
import stat
import subprocess
import tarfile

import pytest


def _tar(entries: list[tuple]) -> bytes:
    """entries: (name, kind, data_or_target[, mode]) with kind file|dir|sym|link."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, kind, data, *rest in entries:
            ti = tarfile.TarInfo(name)
            ti.mode = rest[0] if rest else (0o755 if kind == "dir" else 0o644)
            if kind == "file":
                ti.size = len(data)
                tf.addfile(ti, io.BytesIO(data))
                continue
            ti.type = {"dir": tarfile.DIRTYPE, "sym": tarfile.SYMTYPE, "link": tarfile.LNKTYPE}[kind]
            if kind in ("sym", "link"):
                ti.linkname = data
            tf.addfile(ti)
    return buf.getvalue()


def _store_listing(root) -> list[str]:
    img = root / "image"
    out = []
    for d in ("blobs", "layers", "images"):
        base = img / d
        if base.is_dir():
            out += sorted(str(p.relative_to(img)) for p in base.rglob("*"))
    repos = img / "repositories.json"
    out.append(repos.read_text() if repos.exists() else "")
    return out


@pytest.fixture
def store(state_root):
    from minidock.image.store import ImageStore

    return ImageStore()


def _compress(raw: bytes, how: str | None) -> tuple[bytes, str]:
    from minidock.image.store import MT_OCI_LAYER, MT_OCI_LAYER_GZIP, MT_OCI_LAYER_ZSTD

    if how == "gzip":
        return gzip.compress(raw), MT_OCI_LAYER_GZIP
    if how == "zstd":
        out = subprocess.run(["zstd", "-q", "-c"], input=raw, capture_output=True, check=True).stdout
        return out, MT_OCI_LAYER_ZSTD
    return raw, MT_OCI_LAYER


def _add_layers(store, layers: list[bytes], tag: str, compress: str | list | None = "gzip"):
    """A multi-layer image through the store's own write path (as pull/load use it)."""
    from minidock.image.config import new_config

    descs = []
    for i, raw in enumerate(layers):
        blob, media_type = _compress(raw, compress[i] if isinstance(compress, list) else compress)
        digest, size = store.put_blob(io.BytesIO(blob))
        diff_id, _ = store.unpack_layer(digest)
        descs.append({"digest": digest, "diff_id": diff_id, "size": size, "mediaType": media_type})
    cfg = new_config([d["diff_id"] for d in descs], {"Cmd": ["sh"]}, created_by="test")
    return store.add_image(json.dumps(cfg).encode(), descs, tags=[tag])


def test_whiteouts_hide_lower_files_in_the_container(md, busybox, busybox_tar, store):
    base = busybox_tar.read_bytes()
    upper1 = _tar([("data", "dir", None), ("data/keep", "file", b"k"), ("data/gone", "file", b"g"),
                   ("old", "dir", None), ("old/a", "file", b"a"), ("top", "file", b"t"),
                   ("hard", "link", "data/keep")])  # a hardlink names a file of its own layer
    upper2 = _tar([("data/.wh.gone", "file", b""), ("old/.wh..wh..opq", "file", b""),
                   ("old/b", "file", b"b"), (".wh.top", "file", b"")])
    _add_layers(store, [base, upper1, upper2], "layered:1")
    r = md("run", "--rm", "layered:1", "sh", "-c", "ls /data; ls /old; ls /top 2>&1; cat /hard")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["keep", "b", "ls:", "/top:", "No", "such", "file", "or", "directory", "k"]
    # the layer snapshot holds an overlayfs whiteout: a 0:0 character device
    img = store.resolve("layered:1")
    st = os.lstat(os.path.join(img.layer_dirs()[2], "top"))
    assert (os.major(st.st_rdev), os.minor(st.st_rdev)) == (0, 0)
    assert os.getxattr(os.path.join(img.layer_dirs()[2], "old"), "trusted.overlay.opaque") == b"y"
    assert md("rmi", "layered:1").returncode == 0


@pytest.mark.skipif(shutil.which("zstd") is None, reason="zstd is not installed (install.sh installs it)")
def test_zstd_and_uncompressed_layers(md, busybox, busybox_tar, store):
    """Layers compressed with zstd (OCI's tar+zstd) and plain tar unpack like gzip ones: the
    diff_id is the digest of the uncompressed tar whatever the compression."""
    import hashlib

    base = busybox_tar.read_bytes()
    z = _tar([("z", "dir", None), ("z/file", "file", b"from a zstd layer\n")])
    plain = _tar([("p", "file", b"from a plain layer\n")])
    image = _add_layers(store, [base, z, plain], "zstd:1", compress=["gzip", "zstd", None])
    img = store.resolve("zstd:1")
    assert img.config["rootfs"]["diff_ids"][1:] == ["sha256:" + hashlib.sha256(t).hexdigest() for t in (z, plain)]
    r = md("run", "--rm", "zstd:1", "cat", "/z/file", "/p")
    assert r.returncode == 0 and r.stdout == "from a zstd layer\nfrom a plain layer\n", r.stderr
    assert image and md("rmi", "zstd:1").returncode == 0


def test_shared_layers_kept_while_used(md, busybox, busybox_tar, store, state_root):
    # an image of its own (one tag, whatever other tests tagged busybox as), sharing busybox's layer
    _add_layers(store, [busybox_tar.read_bytes(), _tar([("own", "file", b"x")])], "shared:1")
    img = store.resolve("shared:1")
    assert md("tag", "shared:1", "second:1").returncode == 0
    r = md("rmi", "second:1")
    assert r.stdout.strip() == "Untagged: second:1"
    assert all(os.path.isdir(d) for d in img.layer_dirs())
    # an image a container uses is refused without -f
    cid = md("create", "shared:1", "true").stdout.strip()
    r = md("rmi", img.id)
    assert r.returncode == 1 and "is using its referenced image" in r.stderr
    assert md("rm", cid).returncode == 0
    assert md("rmi", "shared:1").returncode == 0
    assert all(os.path.isdir(d) for d in store.resolve(busybox).layer_dirs())  # shared layer kept


@pytest.mark.parametrize("case", ["traversal", "symlink-escape", "hardlink-outside", "truncated",
                                  "not-a-tar", "corrupt-gzip"])
def test_bad_tarballs_leave_the_store_unchanged(md, busybox, state_root, tmp_path, case):
    before = _store_listing(state_root)
    good = _tar([("a", "file", os.urandom(20000))])
    data = {
        "traversal": _tar([("../../etc/evil", "file", b"x")]),
        "symlink-escape": _tar([("l", "sym", "/etc"), ("l/evil", "file", b"x")]),
        "hardlink-outside": _tar([("h", "link", "../../etc/passwd")]),
        "truncated": good[:15000],
        "not-a-tar": b"hello, I am not a tarball\n" * 100,
        "corrupt-gzip": gzip.compress(good)[:12000],
    }[case]
    path = tmp_path / "bad.tar"
    path.write_bytes(data)
    r = md("import", path, "bad:1")
    assert r.returncode == 125
    assert r.stderr.startswith("minidock: Error: ") and "Traceback" not in r.stderr
    assert _store_listing(state_root) == before
    assert not os.path.exists("/etc/evil")


def test_blob_with_a_lying_digest_is_never_stored(store, state_root):
    from minidock.image.store import BadBlob

    before = _store_listing(state_root)
    with pytest.raises(BadBlob, match="digest mismatch"):
        store.put_blob(io.BytesIO(b"payload"), expected="sha256:" + "0" * 64)
    assert _store_listing(state_root) == before


def test_import_errors_are_clear(md, busybox, tmp_path):
    r = md("import", tmp_path / "missing.tar", "x")
    assert r.returncode == 125 and "no such file or directory" in r.stderr
    r = md("import", tmp_path, "x")
    assert r.returncode == 125 and "is a directory" in r.stderr
    r = md("run", "--rm", "Bad:Name")
    assert r.returncode == 125 and "invalid reference format" in r.stderr
    r = md("import", "--change", "RUN x", tmp_path / "missing.tar", "x")
    assert r.returncode == 125 and "not a valid change command" in r.stderr


def test_unpack_keeps_owners_modes_mtimes_devices_links_and_xattrs(store):
    """What a layer's tar says about each entry survives into the snapshot, as docker/podman keep
    it: owner, mode bits (setuid included), mtime, device nodes, fifos, symlinks, hardlinks,
    xattrs (PAX SCHILY.xattr)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        def add(name, kind, **kw):
            ti = tarfile.TarInfo(name)
            ti.type, ti.mtime, ti.mode = kind, 1_000_000_000, 0o644
            data = kw.pop("data", None)
            for k, v in kw.items():
                setattr(ti, k, v)
            if data is not None:
                ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data) if data is not None else None)

        add("bin", tarfile.DIRTYPE, mode=0o755, mtime=1_100_000_000)
        add("bin/su", tarfile.REGTYPE, data=b"#!/bin/sh\n", mode=0o4755, uid=1234, gid=5678)
        add("bin/su-link", tarfile.LNKTYPE, linkname="bin/su")
        add("bin/sh", tarfile.SYMTYPE, linkname="su", uid=1234, gid=5678)
        add("null", tarfile.CHRTYPE, devmajor=1, devminor=3, mode=0o666)
        add("sda", tarfile.BLKTYPE, devmajor=8, devminor=0, mode=0o660)
        add("pipe", tarfile.FIFOTYPE, mode=0o600)
        add("caps", tarfile.REGTYPE, data=b"x", pax_headers={"SCHILY.xattr.user.minidock": "yes"})
    digest, _ = store.put_blob(io.BytesIO(buf.getvalue()))
    diff_id, _ = store.unpack_layer(digest)
    d = store.layer_dir(diff_id)
    st = os.lstat(os.path.join(d, "bin/su"))
    assert (st.st_uid, st.st_gid, st.st_mode & 0o7777, int(st.st_mtime)) == (1234, 5678, 0o4755, 1_000_000_000)
    assert os.lstat(os.path.join(d, "bin/su-link")).st_ino == st.st_ino  # a hardlink, not a copy
    assert os.readlink(os.path.join(d, "bin/sh")) == "su"
    assert os.lstat(os.path.join(d, "bin/sh")).st_uid == 1234  # lchown: the link itself
    assert int(os.lstat(os.path.join(d, "bin")).st_mtime) == 1_100_000_000  # set after its children
    for name, kind, dev in (("null", stat.S_IFCHR, (1, 3)), ("sda", stat.S_IFBLK, (8, 0))):
        st = os.lstat(os.path.join(d, name))
        assert stat.S_IFMT(st.st_mode) == kind and (os.major(st.st_rdev), os.minor(st.st_rdev)) == dev
    assert stat.S_ISFIFO(os.lstat(os.path.join(d, "pipe")).st_mode)
    assert os.getxattr(os.path.join(d, "caps"), "user.minidock") == b"yes"
