"""The image store: content-addressed blobs, unpacked layer snapshots, image records, tags.

Layout under ``paths.images()``::

    blobs/sha256/<hex>          every blob by digest: layer tarballs, configs, manifests
                                (verified on write: a blob whose bytes do not hash to its name is
                                never stored)
    layers/sha256/<hex>/        one read-only snapshot per layer *diff_id* (uncompressed digest),
                                shared by every image and container using it; overlayfs lower dir
                                (OCI whiteouts already turned into overlayfs whiteouts)
    images/<hex>.json           one record per image, by config digest (= image ID):
                                {"Id", "ManifestDigest", "Layers": [{diff_id, digest, mediaType,
                                size}], "RepoDigests", "Size", "Created"}
    repositories.json           tag -> image ID, fully qualified: docker.io/library/busybox:latest
    holds/<who>.json            {"blobs": [...], "layers": [...]}: digests another part keeps
                                alive without an image record (the build cache); gc keeps them
    .lock                       flock: writers take it; readers need none (writes are atomic)
    tmp/                        work in progress; what a kill -9 leaves here is never visible and
                                is swept by the next writer

Every write lands as a temp file or directory that is renamed into place, so a crash at any
point leaves either the old state or the new one. An image record is written only after its
blobs and layers exist, and a tag only after its record: no half-written image is ever visible.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path

from minidock import paths
from minidock.errors import Conflict, InvalidArgument, NotFound
from minidock.image import reference
from minidock.image.content import BadBlob, ContentStore, _hex, check_descriptors, check_digest  # noqa: F401
from minidock.image.snapshots import Snapshots, _rmtree_layer  # noqa: F401
from minidock.util import fsutil, now

# layers, hashlib, tempfile and shutil are imported inside the functions that write: a `run`
# only reads the store, and pays for none of them.

MT_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
MT_OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
MT_OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
MT_DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MT_DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
MT_DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
LAYER_TYPES = {MT_OCI_LAYER, MT_OCI_LAYER_GZIP, MT_OCI_LAYER_ZSTD, MT_DOCKER_LAYER,
               "application/vnd.docker.image.rootfs.diff.tar",
               "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
               "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"}












class Image:
    """An image in the store. (A plain class: dataclasses costs ~4 ms to import, on `run`'s path.)"""

    def __init__(self, store: ImageStore, id: str, record: dict, repo_tags: list[str] | None = None):
        self.store = store
        self.id = id
        self.record = record
        self.repo_tags = [] if repo_tags is None else repo_tags  # familiar: busybox:latest

    def __repr__(self) -> str:
        return f"Image(id={self.id!r}, repo_tags={self.repo_tags!r})"

    @property
    def config(self) -> dict:
        if "_config" not in self.__dict__:
            self.__dict__["_config"] = json.loads(self.store.read_blob(self.id))
        return self.__dict__["_config"]

    @property
    def manifest(self) -> dict:
        return json.loads(self.store.read_blob(self.record["ManifestDigest"]))

    @property
    def diff_ids(self) -> list[str]:
        return [layer["diff_id"] for layer in self.record["Layers"]]

    def layer_dirs(self) -> list[str]:
        """Snapshot dirs, lowest layer first."""
        return [str(self.store.layer_dir(d)) for d in self.diff_ids]

    @property
    def short_id(self) -> str:
        return self.id[7:19]


class ImageStore(ContentStore, Snapshots):
    def __init__(self, root: str | os.PathLike | None = None):
        self.root = Path(root) if root else paths.images()

    # ---- low level ------------------------------------------------------------------------












    # ---- records and tags -------------------------------------------------------------------
    def _write_json(self, path: Path, data) -> None:
        fsutil.atomic_write_json(path, data, indent=1, sort_keys=True)

    def _repos(self) -> dict[str, str]:
        try:
            return json.loads((self.root / "repositories.json").read_text())
        except FileNotFoundError:
            return {}

    def _save_repos(self, repos: dict[str, str]) -> None:
        self._write_json(self.root / "repositories.json", repos)

    def _record_path(self, image_id: str) -> Path:
        return self.root / "images" / (_hex(image_id) + ".json")

    def _load(self, image_id: str, repos: dict[str, str] | None = None) -> Image:
        try:
            rec = json.loads(self._record_path(image_id).read_text())
        except FileNotFoundError:
            raise NotFound(f"No such image: {image_id}") from None
        repos = self._repos() if repos is None else repos
        tags = sorted(reference.parse(r).familiar() for r, i in repos.items() if i == image_id)
        return Image(self, image_id, rec, tags)

    def ids(self) -> list[str]:
        d = self.root / "images"
        if not d.is_dir():
            return []
        return ["sha256:" + p.name[:-5] for p in d.iterdir() if p.name.endswith(".json") and len(p.name) == 69]

    def list(self) -> list[Image]:
        repos = self._repos()
        out = []
        for i in self.ids():
            try:
                out.append(self._load(i, repos))
            except (NotFound, ValueError):
                continue
        return sorted(out, key=lambda im: im.record.get("Created", ""), reverse=True)

    def resolve(self, ref: str) -> Image:
        """By name[:tag], name@digest, or (a unique prefix of) the image ID."""
        repos = self._repos()
        if reference.looks_like_id(ref):
            h = ref[7:] if ref.startswith("sha256:") else ref
            matches = [i for i in self.ids() if i[7:].startswith(h)]
            if len(matches) == 1 and (len(h) >= 4 or ref.startswith("sha256:")):
                return self._load(matches[0], repos)
            if len(matches) > 1 and len(h) >= 4:
                raise InvalidArgument(f"ambiguous image ID prefix {ref!r}: {len(matches)} images match")
        try:
            r = reference.parse(ref)
        except InvalidArgument:
            if reference.looks_like_id(ref):
                raise NotFound(f"No such image: {ref}") from None
            raise
        if r.digest:
            for i in self.ids():
                img = self._load(i, repos)
                if img.record.get("ManifestDigest") == r.digest or \
                        any(d.endswith("@" + r.digest) and d.startswith(r.repository + "@")
                            for d in img.record.get("RepoDigests", [])):
                    return img
            raise NotFound(f"No such image: {r.familiar()}")
        image_id = repos.get(str(r))
        if image_id is None:
            raise NotFound(f"No such image: {r.familiar()}")
        return self._load(image_id, repos)

    def exists(self, ref: str) -> bool:
        try:
            self.resolve(ref)
            return True
        except (NotFound, InvalidArgument):
            return False

    def add_image(self, config: bytes, layers: list[dict], *, manifest: bytes | None = None,
                  tags: list[str] = (), repo_digest: str | None = None) -> Image:
        """Record an image whose layer blobs and snapshots are already stored.

        layers: [{"digest", "diff_id", "mediaType", "size"}] lowest first. Without a manifest,
        an OCI manifest is made. Tags are fully qualified or familiar references.
        """
        try:
            cfg = json.loads(config)
        except ValueError:
            raise BadBlob("the image config is not valid JSON; the image was not stored") from None
        diff_ids = (cfg.get("rootfs") or {}).get("diff_ids") or []
        if diff_ids != [lay["diff_id"] for lay in layers]:
            raise BadBlob("the image config's rootfs.diff_ids do not match its layers; the image was not stored")
        with self.lock():
            for lay in layers:
                if not self.has_layer(lay["diff_id"]) or not self.has_blob(lay["digest"]):
                    raise BadBlob(f"layer {lay['digest']} is missing; the image was not stored")
            config_digest = self.put_blob_bytes(config)
            if manifest is None:
                manifest = json.dumps({
                    "schemaVersion": 2, "mediaType": MT_OCI_MANIFEST,
                    "config": {"mediaType": MT_OCI_CONFIG, "digest": config_digest, "size": len(config)},
                    "layers": [{"mediaType": lay["mediaType"], "digest": lay["digest"], "size": lay["size"]}
                               for lay in layers],
                }, separators=(",", ":")).encode()
            manifest_digest = self.put_blob_bytes(manifest)
            path = self._record_path(config_digest)
            old = json.loads(path.read_text()) if path.exists() else {}
            digests = set(old.get("RepoDigests", []))
            if repo_digest:
                digests.add(repo_digest)
            rec = {
                "Id": config_digest,
                "ManifestDigest": old.get("ManifestDigest") or manifest_digest,
                "Layers": layers,
                "RepoDigests": sorted(digests),
                "Size": sum(lay.get("unpacked", lay["size"]) for lay in layers),
                "Created": cfg.get("created") or now(),
                "Added": old.get("Added") or now(),
            }
            self._write_json(path, rec)
            repos = self._repos()
            for t in tags:
                repos[str(reference.parse(t))] = config_digest
            self._save_repos(repos)
            self.sweep_tmp()
        return self.resolve(config_digest)

    def tag(self, source: str, target: str) -> None:
        img = self.resolve(source)
        r = reference.parse(target)
        if r.digest:
            raise InvalidArgument(f"refusing to create a tag with a digest reference: {target}")
        with self.lock():
            repos = self._repos()
            repos[str(r)] = img.id
            self._save_repos(repos)

    # ---- import ---------------------------------------------------------------------------
    def import_tarball(self, path: str, ref: str | None = None, changes: list[str] = (),
                       message: str = "", platform: str | None = None) -> Image:
        """A rootfs tarball (plain, gzip, zstd, xz) becomes a one-layer OCI image."""
        import shutil

        from minidock.image import layers as L
        from minidock.image.config import apply_changes, new_config

        if ref:
            reference.parse(ref)  # bad name: fail before any work
        cfg_changes = apply_changes({}, list(changes))
        work = self.tmpdir()
        try:
            blob_tmp = os.path.join(work, "layer.tar")
            try:
                src = open(path, "rb") if path != "-" else os.fdopen(os.dup(0), "rb")
            except FileNotFoundError:
                raise NotFound(f"open {path}: no such file or directory",
                               "Give the path of a rootfs tarball (e.g. one made by rootfs/busybox.sh).") from None
            except IsADirectoryError:
                raise InvalidArgument(f"{path} is a directory, not a tarball") from None
            with src, open(blob_tmp, "wb") as out:
                hr = L.HashingReader(L.uncompressed(src))
                shutil.copyfileobj(hr, out, 1 << 20)
            if hr.size == 0:
                raise L.BadLayer(f"{path} is empty, not a tarball")
            diff_id, size = hr.digest, hr.size
            with open(blob_tmp, "rb") as f:
                self.put_blob(f, expected=diff_id)
            try:
                self.unpack_layer(diff_id, diff_id)
            except Exception:
                with self.lock():
                    if not self._blob_used(diff_id):
                        self.blob_path(diff_id).unlink(missing_ok=True)
                raise
        finally:
            shutil.rmtree(work, ignore_errors=True)
        cfg = new_config([diff_id], cfg_changes, created_by="minidock import" + (f" {message}" if message else ""),
                         comment=message or "Imported from " + os.path.basename(path), platform=platform)
        layer = {"digest": diff_id, "diff_id": diff_id, "mediaType": MT_OCI_LAYER, "size": size}
        return self.add_image(json.dumps(cfg, separators=(",", ":")).encode(), [layer],
                              tags=[ref] if ref else [])

    # ---- removal and garbage collection -----------------------------------------------------
    def _containers_using(self) -> dict[str, list[str]]:
        """image ID -> names of containers created from it (running or not)."""
        from minidock.state import containers

        out: dict[str, list[str]] = {}
        for cid in containers.all_ids():
            try:
                rec = containers.load(cid)
            except (NotFound, ValueError, OSError):
                continue
            out.setdefault(rec.get("Image", ""), []).append(rec["Id"])
        return out

    def remove(self, ref: str, force: bool = False, prune_layers: bool = True) -> list[tuple[str, str]]:
        """Docker's rmi: untag, and delete the image when no tag is left. -> [("Untagged"|"Deleted", x)]."""
        img = self.resolve(ref)
        out: list[tuple[str, str]] = []
        by_id = reference.looks_like_id(ref) and not self._is_tag(ref)
        with self.lock():
            repos = self._repos()
            tags = [r for r, i in repos.items() if i == img.id]
            users = self._containers_using().get(img.id, [])
            if not by_id and len(tags) > 1:
                key = str(reference.parse(ref))
                repos.pop(key, None)
                self._save_repos(repos)
                return [("Untagged", reference.parse(ref).familiar())]
            if by_id and len(tags) > 1 and not force:
                raise Conflict(f"conflict: unable to delete {img.short_id} (must be forced) - image is "
                               f"referenced in multiple repositories", "Remove it by name, or use -f.")
            if users and not force:
                what = f"repository reference {ref!r}" if not by_id else img.short_id
                raise Conflict(f"conflict: unable to remove {what} (must force) - container {users[0][:12]} "
                               f"is using its referenced image {img.short_id}",
                               "Remove the container first (minidock rm), or use -f.")
            for t in tags:
                repos.pop(t)
                out.append(("Untagged", reference.parse(t).familiar()))
            self._save_repos(repos)
            for d in img.record.get("RepoDigests", []):
                out.append(("Untagged", d))
            if users:  # forced with containers: Docker keeps the image, untagged (dangling)
                return out
            self._record_path(img.id).unlink(missing_ok=True)
            out.append(("Deleted", img.id))
            if prune_layers:
                out += [("Deleted", d) for d in self.gc()]
        return out

    def _is_tag(self, ref: str) -> bool:
        try:
            return str(reference.parse(ref)) in self._repos()
        except InvalidArgument:
            return False

    def _referenced(self) -> tuple[set[str], set[str]]:
        """(blob digests, layer diff_ids) some image record still uses."""
        blobs, diffs = set(), set()
        for i in self.ids():
            try:
                rec = json.loads(self._record_path(i).read_text())
            except (OSError, ValueError):
                continue
            blobs |= {rec["Id"], rec["ManifestDigest"]}
            blobs |= set(rec.get("ExtraBlobs", []))
            for lay in rec["Layers"]:
                blobs.add(lay["digest"])
                diffs.add(lay["diff_id"])
        holds = self.root / "holds"
        for p in holds.glob("*.json") if holds.is_dir() else []:
            with contextlib.suppress(OSError, ValueError):
                held = json.loads(p.read_text())
                blobs |= set(held.get("blobs", []))
                diffs |= set(held.get("layers", []))
        return blobs, diffs

    def _blob_used(self, digest: str) -> bool:
        return digest in self._referenced()[0]

    def gc(self) -> list[str]:
        """Remove layers and blobs no image uses (call under the lock). -> removed layer diff_ids.

        Blobs younger than a minute are kept: another process may be between storing them and
        writing the image record that will use them (a pull in progress).
        """
        blobs, diffs = self._referenced()
        leased = self._leased()
        blobs |= leased
        diffs |= leased
        removed = []
        young = time.time() - 60
        busy = self._in_progress()
        for p in (self.root / "layers" / "sha256").iterdir():
            d = "sha256:" + p.name
            if d not in diffs and (not busy or p.stat().st_mtime < young):
                _rmtree_layer(p)
                removed.append(d)
        for p in (self.root / "blobs" / "sha256").iterdir():
            d = "sha256:" + p.name
            if d not in blobs and (not busy or p.stat().st_mtime < young):
                p.unlink(missing_ok=True)
        return removed

    def _leased(self) -> set[str]:
        """Digests (blobs and diff_ids) that live pulls/loads hold a lease on (see :meth:`lease`)."""
        out: set[str] = set()
        tmp = self.root / "tmp"
        for entry in tmp.iterdir() if tmp.is_dir() else []:
            pid = entry.name.partition("-")[0]
            if not (pid.isdigit() and os.path.exists(f"/proc/{pid}") and entry.is_dir()):
                continue
            with contextlib.suppress(OSError):
                out |= {"sha256:" + n for n in os.listdir(entry) if len(n) == 64}
        return out

    @contextlib.contextmanager
    def lease(self):
        """A pull or load in progress: what it stores is kept from gc until its image record
        exists, and if it fails, what it added (and nothing else uses) is removed again, so a
        failed pull leaves the store exactly as it was."""
        import shutil

        lease = Lease(self, self.tmpdir())
        try:
            yield lease
        except BaseException:
            lease.rollback()
            raise
        finally:
            shutil.rmtree(lease.dir, ignore_errors=True)

    def _in_progress(self) -> bool:
        """Is another process working in tmp/ (a pull or import between blobs and record)?"""
        tmp = self.root / "tmp"
        for entry in tmp.iterdir() if tmp.is_dir() else []:
            pid = entry.name.partition("-")[0]
            if pid.isdigit() and int(pid) != os.getpid() and os.path.exists(f"/proc/{pid}"):
                return True
        return False

    def prune(self, all_: bool = False) -> list[str]:
        """Dangling images (no tag), or with all_ every image no container uses. -> removed IDs."""
        removed = []
        users = self._containers_using()
        for img in self.list():
            if img.id in users or (img.repo_tags and not all_):
                continue
            with self.lock():
                repos = self._repos()
                for t in [r for r, i in repos.items() if i == img.id]:
                    repos.pop(t)
                self._save_repos(repos)
                self._record_path(img.id).unlink(missing_ok=True)
            removed.append(img.id)
        if removed:
            with self.lock():
                self.gc()
        return removed

    # ---- inspect ----------------------------------------------------------------------------
    def inspect(self, ref: str) -> dict:
        img = self.resolve(ref)
        cfg = img.config
        return {
            "Id": img.id,
            "RepoTags": img.repo_tags,
            "RepoDigests": img.record.get("RepoDigests", []),
            "Parent": "",
            "Comment": (cfg.get("history") or [{}])[-1].get("comment", ""),
            "Created": cfg.get("created", ""),
            "DockerVersion": "",
            "Author": cfg.get("author", ""),
            "Config": cfg.get("config", {}),
            "Architecture": cfg.get("architecture", ""),
            "Variant": cfg.get("variant", ""),
            "Os": cfg.get("os", ""),
            "Size": img.record.get("Size", 0),
            "GraphDriver": {"Name": "overlay2", "Data": {"LowerDir": ":".join(reversed(img.layer_dirs()))}},
            "RootFS": {"Type": "layers", "Layers": img.diff_ids},
            "Metadata": {"LastTagTime": img.record.get("Added", "")},
            "Descriptor": {"mediaType": MT_OCI_MANIFEST, "digest": img.record["ManifestDigest"]},
        }


class Lease:
    """Made by :meth:`ImageStore.lease`: one empty file per held digest in a tmp/<pid>-* dir."""

    def __init__(self, store: ImageStore, d: str):
        self.store, self.dir = store, d
        self.new_blobs: list[str] = []
        self.new_layers: list[str] = []
        self.sizes: dict[str, int] = {}  # diff_id -> uncompressed size, for layers unpacked here

    def hold(self, digest: str) -> None:
        open(os.path.join(self.dir, _hex(digest)), "w").close()

    def put_blob(self, stream, expected: str | None = None, size: int | None = None) -> tuple[str, int]:
        if expected:
            self.hold(expected)
            if self.store.has_blob(expected):
                return expected, self.store.blob_path(expected).stat().st_size
        digest, n = self.store.put_blob(stream, expected, size)
        self.hold(digest)
        if expected is None and digest in self.new_blobs:
            return digest, n
        self.new_blobs.append(digest)
        return digest, n

    def put_blob_bytes(self, data: bytes, expected: str | None = None) -> str:
        import io

        return self.put_blob(io.BytesIO(data), expected)[0]

    def unpack_layer(self, blob_digest: str, diff_id: str | None = None) -> tuple[str, int]:
        if diff_id:
            self.hold(diff_id)
            if self.store.has_layer(diff_id):
                return diff_id, 0
        diff, size = self.store.unpack_layer(blob_digest, diff_id)
        self.hold(diff)
        self.new_layers.append(diff)
        if size:
            self.sizes[diff] = size
        return diff, size

    def unpacked_sizes(self, layers: list[dict]) -> None:
        """Set each layer's "unpacked" size (what `images` shows, as Docker does): measured when
        unpacked here, else known from another image's record, else the blob's size."""
        known: dict[str, int] = {}
        if any(lay["diff_id"] not in self.sizes for lay in layers):
            for i in self.store.ids():
                with contextlib.suppress(OSError, ValueError):
                    rec = json.loads(self.store._record_path(i).read_text())
                    known.update({x["diff_id"]: x["unpacked"] for x in rec["Layers"] if x.get("unpacked")})
        for lay in layers:
            lay["unpacked"] = self.sizes.get(lay["diff_id"]) or known.get(lay["diff_id"]) or lay["size"]

    def rollback(self) -> None:
        """Remove what this lease added that no image record and no other lease uses."""
        with self.store.lock():
            blobs, diffs = self.store._referenced()
            others = self.store._leased() - {"sha256:" + n for n in os.listdir(self.dir) if len(n) == 64}
            for d in self.new_layers:
                if d not in diffs and d not in others:
                    _rmtree_layer(self.store.layer_dir(d))
            for d in self.new_blobs:
                if d not in blobs and d not in others:
                    self.store.blob_path(d).unlink(missing_ok=True)


