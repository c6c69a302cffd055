"""`save` and `load`: Docker's archive format and the OCI image layout, both directions.

What `save` writes is what Docker 25+ writes — one tar that is both formats at once:

    oci-layout                  {"imageLayoutVersion": "1.0.0"}
    index.json                  one manifest descriptor per tag (io.containerd.image.name and
                                org.opencontainers.image.ref.name annotations)
    blobs/sha256/<hex>          configs, manifests, and layers as *uncompressed* tars
                                (digest = diff_id), which every docker/podman version can load
    manifest.json               Docker's list: [{"Config", "RepoTags", "Layers"}] pointing into blobs/
    repositories                the legacy {"repo": {"tag": "<top layer>"}} map

`save --format oci` keeps the stored (compressed) layer blobs as they are and writes only the
OCI layout; `-o DIR` (an existing directory, or a path ending in /) writes a directory layout
instead of a tar, as `skopeo copy oci:DIR` reads it.

`load` detects the format: a tar (plain or gzip/xz/zstd) or a directory; manifest.json means
Docker's format (old layouts with <id>/layer.tar and symlinked layers too), otherwise
index.json + oci-layout. Everything goes through a store lease: a blob that does not hash to its
name, a truncated tar, a layer that escapes its root, or an unknown media type fails the whole
load and leaves the store as it was.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tarfile

from minidock.errors import InvalidArgument, MinidockError, NotFound
from minidock.image import layers as L
from minidock.image import reference
from minidock.image.store import (
    LAYER_TYPES,
    MT_DOCKER_MANIFEST,
    MT_OCI_CONFIG,
    MT_OCI_LAYER,
    MT_OCI_LAYER_GZIP,
    MT_OCI_LAYER_ZSTD,
    MT_OCI_MANIFEST,
    BadBlob,
    ImageStore,
    check_descriptors,
    check_digest,
)

MT_OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MT_DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"


class BadArchive(MinidockError):
    pass


def _dumps(obj) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


# ---- save ---------------------------------------------------------------------------------------
class _Writer:
    """Write into a tar stream or a directory, the same names either way."""

    def __init__(self, out: str | None, directory: bool):
        self.dir = out if directory else None
        self.names: set[str] = set()
        if directory:
            os.makedirs(os.path.join(out, "blobs", "sha256"), exist_ok=True)
            self.tf = None
        else:
            f = open(out, "wb") if out and out != "-" else os.fdopen(os.dup(1), "wb")
            self.tf = tarfile.open(fileobj=f, mode="w|", format=tarfile.PAX_FORMAT)
            self._f = f
            for d in ("blobs/", "blobs/sha256/"):
                ti = tarfile.TarInfo(d.rstrip("/"))
                ti.type, ti.mode = tarfile.DIRTYPE, 0o755
                self.tf.addfile(ti)

    def add_bytes(self, name: str, data: bytes) -> None:
        self.add_file(name, io.BytesIO(data), len(data))

    def add_file(self, name: str, f, size: int) -> None:
        if name in self.names:
            return
        self.names.add(name)
        if self.dir:
            path = os.path.join(self.dir, name)
            with open(path + ".tmp", "wb") as out:
                shutil.copyfileobj(f, out, 1 << 20)
            os.replace(path + ".tmp", path)
            return
        ti = tarfile.TarInfo(name)
        ti.size, ti.mode = size, 0o644
        self.tf.addfile(ti, f)

    def close(self) -> None:
        if self.tf is not None:
            self.tf.close()
            self._f.close()


def save(refs: list[str], out: str | None, fmt: str = "docker", store: ImageStore | None = None) -> None:
    store = store or ImageStore()
    if fmt not in ("docker", "oci"):
        raise InvalidArgument(f"unknown format {fmt!r}", "Use --format docker (default) or oci.")
    if not out or out == "-":
        import sys

        if sys.stdout.isatty():
            raise InvalidArgument("cowardly refusing to save to a terminal. Use the -o flag or redirect")
    images = []
    for ref in refs:
        img = store.resolve(ref)  # NotFound before any output is written
        tags = img.repo_tags if reference.looks_like_id(ref) and not store._is_tag(ref) else \
            [reference.parse(ref).familiar()]
        images.append((img, tags))
    directory = bool(out) and (out.endswith("/") or os.path.isdir(out))
    tmp_out = None
    if out and out != "-" and not directory:
        tmp_out = out + ".tmp"
    w = _Writer(tmp_out or out, directory)
    try:
        manifests, index = [], []
        work = store.tmpdir()
        try:
            for img, tags in images:
                layer_names, descs = [], []
                for lay in img.record["Layers"]:
                    if fmt == "oci" or lay["digest"] == lay["diff_id"]:
                        path = store.blob_path(lay["digest"])
                        size = path.stat().st_size
                        with open(path, "rb") as f:
                            w.add_file(f"blobs/sha256/{lay['digest'][7:]}", f, size)
                        mt = lay["mediaType"] if fmt == "oci" else MT_OCI_LAYER
                        descs.append({"mediaType": mt, "digest": lay["digest"], "size": size})
                        layer_names.append(f"blobs/sha256/{lay['digest'][7:]}")
                        continue
                    # docker format: uncompressed layer tars, as docker itself writes them
                    tmp = os.path.join(work, "layer")
                    with open(store.blob_path(lay["digest"]), "rb") as src, open(tmp, "wb") as dst:
                        hr = L.HashingReader(L.uncompressed(src))
                        shutil.copyfileobj(hr, dst, 1 << 20)
                    if hr.digest != lay["diff_id"]:
                        raise BadBlob(f"layer {lay['digest']} does not match its diff_id in the store")
                    with open(tmp, "rb") as f:
                        w.add_file(f"blobs/sha256/{lay['diff_id'][7:]}", f, hr.size)
                    os.unlink(tmp)
                    descs.append({"mediaType": MT_OCI_LAYER, "digest": lay["diff_id"], "size": hr.size})
                    layer_names.append(f"blobs/sha256/{lay['diff_id'][7:]}")
                config = store.read_blob(img.id)
                w.add_bytes(f"blobs/sha256/{img.id[7:]}", config)
                if fmt == "oci" and all(d["digest"] == lay["digest"] for d, lay in zip(descs, img.record["Layers"])):
                    mbytes = store.read_blob(img.record["ManifestDigest"])
                    if json.loads(mbytes).get("mediaType") not in (MT_OCI_MANIFEST, None):
                        mbytes = _oci_manifest(img.id, len(config), descs)
                else:
                    mbytes = _oci_manifest(img.id, len(config), descs)
                import hashlib

                mdigest = "sha256:" + hashlib.sha256(mbytes).hexdigest()
                w.add_bytes(f"blobs/sha256/{mdigest[7:]}", mbytes)
                mdesc = {"mediaType": MT_OCI_MANIFEST, "digest": mdigest, "size": len(mbytes)}
                for t in tags or [None]:
                    d = dict(mdesc)
                    if t:
                        r = reference.parse(t)
                        d["annotations"] = {"io.containerd.image.name": str(r),
                                            "org.opencontainers.image.ref.name": r.tag}
                    index.append(d)
                manifests.append({"Config": f"blobs/sha256/{img.id[7:]}", "RepoTags": tags, "Layers": layer_names})
        finally:
            shutil.rmtree(work, ignore_errors=True)
        w.add_bytes("oci-layout", _dumps({"imageLayoutVersion": "1.0.0"}))
        w.add_bytes("index.json", _dumps({"schemaVersion": 2, "mediaType": MT_OCI_INDEX, "manifests": index}))
        if fmt == "docker":
            w.add_bytes("manifest.json", _dumps(manifests))
            repos: dict[str, dict[str, str]] = {}
            for m in manifests:
                for t in m["RepoTags"]:
                    repo, _, tag = t.rpartition(":")
                    repos.setdefault(repo, {})[tag] = m["Layers"][-1].rsplit("/", 1)[-1] if m["Layers"] else ""
            w.add_bytes("repositories", _dumps(repos))
        w.close()
        if tmp_out:
            os.replace(tmp_out, out)
    except BaseException:
        if tmp_out and os.path.exists(tmp_out):
            os.unlink(tmp_out)
        raise


def _oci_manifest(config_digest: str, config_size: int, descs: list[dict]) -> bytes:
    return _dumps({"schemaVersion": 2, "mediaType": MT_OCI_MANIFEST,
                   "config": {"mediaType": MT_OCI_CONFIG, "digest": config_digest, "size": config_size},
                   "layers": descs})


# ---- load ---------------------------------------------------------------------------------------
class _Source:
    """Random access to the files of an archive: a directory or a seekable uncompressed tar."""

    def __init__(self, path: str, work: str):
        self.dir = path if os.path.isdir(path) else None
        self.members: dict[str, tarfile.TarInfo] = {}
        if self.dir:
            return
        src = open(path, "rb") if path != "-" else os.fdopen(os.dup(0), "rb")
        with src:
            head = src.peek(6)[:6] if hasattr(src, "peek") else b""
            seekable = path != "-" and L.compression_of(head) == "none"
            if seekable:
                self.file = open(path, "rb")
            else:  # compressed or a pipe: decompress into a temp file once
                tmp = os.path.join(work, "archive.tar")
                with open(tmp, "wb") as out:
                    shutil.copyfileobj(L.uncompressed(src), out, 1 << 20)
                self.file = open(tmp, "rb")
        try:
            self.tf = tarfile.open(fileobj=self.file, mode="r:")
            for m in self.tf.getmembers():
                name = os.path.normpath(m.name).lstrip("/")
                self.members[name] = m
        except (tarfile.TarError, EOFError) as e:
            raise BadArchive(f"truncated or invalid tar archive: {e}",
                             "The file is cut short or not an image archive; nothing was loaded.") from None
        # a truncated archive can still list its first members: check the last one is whole
        end = max((m.offset_data + m.size for m in self.members.values()), default=0)
        if os.fstat(self.file.fileno()).st_size < end:
            raise BadArchive("truncated tar archive: it ends inside a file",
                             "The file is truncated; nothing was loaded.")

    def exists(self, name: str) -> bool:
        if self.dir:
            return os.path.isfile(os.path.join(self.dir, name))
        return self._member(name) is not None

    def _member(self, name: str, hops: int = 0):
        m = self.members.get(os.path.normpath(name).lstrip("/"))
        if m is not None and (m.issym() or m.islnk()) and hops < 10:
            target = m.linkname if m.islnk() else os.path.join(os.path.dirname(m.name), m.linkname)
            return self._member(target, hops + 1)
        return m

    def open(self, name: str):
        if self.dir:
            path = os.path.realpath(os.path.join(self.dir, name))
            if not path.startswith(os.path.realpath(self.dir) + "/"):
                raise BadArchive(f"archive entry {name!r} points outside the archive")
            try:
                return open(path, "rb")
            except FileNotFoundError:
                raise BadArchive(f"archive is missing {name}", "The archive is incomplete; nothing was loaded.") \
                    from None
        m = self._member(name)
        if m is None or not m.isfile():
            raise BadArchive(f"archive is missing {name}", "The archive is incomplete; nothing was loaded.")
        if m.sparse is not None:
            return self.tf.extractfile(m)
        return _Range(self.file.name, m.offset_data, m.size)  # its own handle: layers load in parallel

    def read(self, name: str) -> bytes:
        with self.open(name) as f:
            return f.read()

    def json(self, name: str):
        try:
            return json.loads(self.read(name))
        except ValueError:
            raise BadArchive(f"{name} in the archive is not valid JSON") from None

    def close(self) -> None:
        if not self.dir:
            self.tf.close()
            self.file.close()


class _Range(io.RawIOBase):
    """A read-only window [offset, offset+size) of a file, with its own file handle."""

    def __init__(self, path: str, offset: int, size: int):
        self.f = open(path, "rb", buffering=0)
        self.f.seek(offset)
        self.left = size

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        n = min(len(b), self.left)
        if n <= 0:
            return 0
        got = self.f.readinto(memoryview(b)[:n])
        self.left -= got
        return got

    def close(self) -> None:
        self.f.close()
        super().close()


def _parallel(fn, jobs: list[tuple]) -> list:
    """Run fn(*job) for every job on a few threads (hashing, zlib and file I/O release the GIL);
    wait for all before raising the first error, so a rollback never races a worker."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=min(3, max(1, len(jobs)))) as pool:
        futs = [pool.submit(fn, *job) for job in jobs]
        errors = [f.exception() for f in futs if f.exception() is not None]
    if errors:
        raise errors[0]
    return [f.result() for f in futs]


def _mt_of(store: ImageStore, digest: str) -> str:
    with open(store.blob_path(digest), "rb") as f:
        kind = L.compression_of(f.read(6))
    return {"gzip": MT_OCI_LAYER_GZIP, "zstd": MT_OCI_LAYER_ZSTD}.get(kind, MT_OCI_LAYER)


def load(path: str, store: ImageStore | None = None, quiet: bool = False, out=None) -> list[str]:
    """Load images from an archive. -> lines to print ("Loaded image: busybox:latest")."""
    store = store or ImageStore()
    if path != "-" and not os.path.exists(path):
        raise NotFound(f"open {path}: no such file or directory")
    work = store.tmpdir()
    try:
        src = _Source(path, work)
        try:
            with store.lease() as lease:
                if src.exists("manifest.json"):
                    return _load_docker(src, store, lease)
                if src.exists("index.json"):
                    return _load_oci(src, store, lease)
                raise BadArchive("this is not an image archive: no manifest.json (Docker) or index.json (OCI "
                                 "layout) in it", "Give a file written by `save` (docker, podman, skopeo).")
        finally:
            src.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _layer(src: _Source, lease, name: str, diff_id: str, expected: str | None = None,
           size: int | None = None, mt: str | None = None) -> dict:
    with src.open(name) as f:
        digest, n = lease.put_blob(f, expected, size)
    lease.unpack_layer(digest, diff_id)
    mt = mt or _mt_of(lease.store, digest)
    if mt not in LAYER_TYPES:
        raise BadArchive(f"unsupported layer media type {mt!r}", "minidock loads tar, tar+gzip, tar+zstd layers.")
    return {"digest": digest, "diff_id": diff_id, "mediaType": mt, "size": n}


def _load_docker(src: _Source, store: ImageStore, lease) -> list[str]:
    out = []
    entries = src.json("manifest.json")
    if not isinstance(entries, list):
        raise BadArchive("manifest.json is not a list of images")
    for e in entries:
        if not isinstance(e, dict) or not isinstance(e.get("Config"), str) or \
                not all(isinstance(n, str) for n in e.get("Layers") or []):
            raise BadArchive("manifest.json: an entry without a Config file name or with bad Layers")
        config = src.read(e["Config"])
        cname = os.path.basename(e["Config"]).removesuffix(".json")
        if len(cname) == 64:  # docker names the config after its digest: check it
            lease.put_blob_bytes(config, check_digest("sha256:" + cname, "manifest.json"))
        try:
            cfg = json.loads(config)
        except ValueError:
            raise BadArchive(f"{e['Config']} is not valid JSON") from None
        check_descriptors(cfg, e["Config"])
        diff_ids = (cfg.get("rootfs") or {}).get("diff_ids") or []
        if len(diff_ids) != len(e.get("Layers") or []):
            raise BadArchive(f"{e['Config']}: {len(e.get('Layers') or [])} layers for {len(diff_ids)} diff_ids",
                             "The archive is malformed; nothing was loaded.")
        descs = _parallel(_layer, [(src, lease, name, diff) for name, diff in zip(e["Layers"], diff_ids)])
        tags = [t for t in e.get("RepoTags") or []]
        for t in tags:
            reference.parse(t)
        lease.unpacked_sizes(descs)
        img = store.add_image(config, descs, tags=tags)
        out += [f"Loaded image: {t}" for t in tags] or [f"Loaded image ID: {img.id}"]
    return out


def _load_oci(src: _Source, store: ImageStore, lease) -> list[str]:
    from minidock.image.registry import CONFIG_TYPES, INDEX_TYPES, MANIFEST_TYPES, select_platform

    if src.exists("oci-layout"):
        ver = src.json("oci-layout").get("imageLayoutVersion")
        if ver != "1.0.0":
            raise BadArchive(f"unsupported OCI layout version {ver!r}")
    index = check_descriptors(src.json("index.json"), "index.json")
    out = []

    def blob(desc: dict) -> bytes:
        data = src.read(f"blobs/{desc['digest'].replace(':', '/')}")
        lease.put_blob_bytes(data, desc["digest"])  # verified
        return data

    todo = [(d, None) for d in index.get("manifests") or []]
    while todo:
        desc, name = todo.pop(0)
        ann = desc.get("annotations") or {}
        name = ann.get("io.containerd.image.name") or name or ann.get("org.opencontainers.image.ref.name")
        mt = desc.get("mediaType")
        if mt in INDEX_TYPES:
            sub = check_descriptors(json.loads(blob(desc)), f"index {desc['digest'][:19]}")
            todo.append((select_platform(sub, None, "the archive"), name))
            continue
        if mt not in MANIFEST_TYPES:
            raise BadArchive(f"unsupported manifest media type {mt!r} in index.json",
                             "minidock loads Docker schema 2 and OCI image manifests.")
        mbytes = blob(desc)
        man = check_descriptors(json.loads(mbytes), f"manifest {desc['digest'][:19]}")
        if (man.get("config") or {}).get("mediaType") not in CONFIG_TYPES:
            raise BadArchive(f"unsupported config media type {man.get('config', {}).get('mediaType')!r}: "
                             "not a container image")
        config = blob(man["config"])
        cfg = check_descriptors(json.loads(config), f"config {man['config']['digest'][:19]}")
        diff_ids = (cfg.get("rootfs") or {}).get("diff_ids") or []
        lays = man.get("layers") or []
        if len(diff_ids) != len(lays):
            raise BadArchive(f"manifest {desc['digest'][:19]}: {len(lays)} layers for {len(diff_ids)} diff_ids")
        for lay in lays:
            if lay.get("mediaType") not in LAYER_TYPES:
                raise BadArchive(f"unsupported layer media type {lay.get('mediaType')!r}",
                                 "minidock loads tar, tar+gzip and tar+zstd layers.")
        descs = _parallel(_layer, [(src, lease, f"blobs/{lay['digest'].replace(':', '/')}", diff, lay["digest"],
                                    lay.get("size"), lay["mediaType"]) for lay, diff in zip(lays, diff_ids)])
        tags = []
        if name:
            tag = _oci_name(name)
            if tag:
                tags.append(tag)
        keep = mbytes if man.get("mediaType") in (MT_OCI_MANIFEST, MT_DOCKER_MANIFEST, None) else None
        lease.unpacked_sizes(descs)
        img = store.add_image(config, descs, manifest=keep, tags=tags)
        out += [f"Loaded image: {reference.parse(t).familiar()}" for t in tags] or [f"Loaded image ID: {img.id}"]
    return out


def _oci_name(name: str) -> str | None:
    """An annotation's name as a tag: a full reference, or a bare tag (then there is no repository:
    Docker would leave the image untagged, and so do we)."""
    try:
        r = reference.parse(name)
    except InvalidArgument:
        return None
    if "/" not in name and ":" not in name and "." not in name:
        return None  # a bare "latest" is a tag without a repository
    return str(r)
