"""The build cache: which step results already exist, and the file-hash fast path.

Layout under ``<state root>/builder/``::

    cache.json        the index: {"steps": {key: entry}, "images": {key: image ID}}
                      a step entry: {"layer": {digest, diff_id, mediaType, size, unpacked} | null,
                      "created": RFC 3339 time of the step's first run, "used": unix time}
    filehash.json     context file -> [size, mtime_ns, inode, ctime_ns, sha256]: a file whose
                      stat is unchanged is not read again (a large context is not re-hashed)
    mounts/<id>/      RUN --mount=type=cache directories, kept between builds
    .lock             flock around read-modify-write of the index

Keys are chained like image parents: a step's key is sha256(parent step's key, what the step
does), so a change invalidates that step and every step after it, nothing before. What each
step puts in its key is listed in docs/build.md ("Cache keys").

The image store must not garbage-collect layers only the cache uses: the index's layers are
written to ``image/holds/builder.json``, which ``ImageStore.gc`` honours.
"""

from __future__ import annotations

import contextlib
import json
import os
import time

from minidock import paths
from minidock.util import fsutil

try:  # the builtin sha256: hashlib's OpenSSL binding costs ~2 ms to import, paid by every build
    from _sha2 import sha256
except ImportError:
    try:
        from _sha256 import sha256
    except ImportError:
        from hashlib import sha256


def root() -> str:
    return str(paths.root() / "builder")


def chain(parent: str, what) -> str:
    """The key of a step: its parent's key and a canonical rendering of its inputs."""
    data = what if isinstance(what, str) else json.dumps(what, sort_keys=True, separators=(",", ":"))
    return sha256(f"{parent}\n{data}".encode()).hexdigest()


class Cache:
    def __init__(self, disabled: bool = False):
        self.dir = root()
        self.disabled = disabled
        self._index: dict | None = None

    # ---- the index ------------------------------------------------------------------------
    @property
    def index(self) -> dict:
        if self._index is None:
            try:
                with open(os.path.join(self.dir, "cache.json")) as f:
                    self._index = json.load(f)
            except (FileNotFoundError, ValueError):
                self._index = {}
            self._index.setdefault("steps", {})
            self._index.setdefault("images", {})
        return self._index

    @contextlib.contextmanager
    def _locked(self):
        os.makedirs(self.dir, exist_ok=True)
        with fsutil.flock(os.path.join(self.dir, ".lock")):
            self._index = None  # re-read under the lock: another build may have written
            yield self.index
            self._write(self.index)

    def _write(self, index: dict) -> None:
        from minidock.image.store import ImageStore

        fsutil.atomic_write_json(os.path.join(self.dir, "cache.json"), index, separators=(",", ":"))
        store = ImageStore()
        holds = store.root / "holds"
        holds.mkdir(parents=True, exist_ok=True)
        layers = [e["layer"] for e in index["steps"].values() if e.get("layer")]
        data = {"blobs": sorted({x["digest"] for x in layers}), "layers": sorted({x["diff_id"] for x in layers})}
        fsutil.atomic_write_json(holds / "builder.json", data)

    def lookup(self, key: str) -> dict | None:
        if self.disabled:
            return None
        return self.index["steps"].get(key)

    def record(self, key: str, layer: dict | None, created: str) -> None:
        with self._locked() as index:
            index["steps"][key] = {"layer": layer, "created": created, "used": int(time.time())}

    def image(self, key: str) -> str | None:
        return None if self.disabled else self.index["images"].get(key)

    def record_image(self, key: str, image_id: str) -> None:
        with self._locked() as index:
            index["images"][key] = image_id

    # ---- prune and df -----------------------------------------------------------------------
    def prune(self) -> dict:
        """Forget every entry and cache mount; the store drops the layers nothing else uses."""
        from minidock.image.store import ImageStore

        if not os.path.isdir(self.dir):
            return {"entries": 0, "size": 0, "reclaimable": 0}  # nothing was ever built here
        store = ImageStore()
        before = self.usage()
        with self._locked() as index:
            index["steps"], index["images"] = {}, {}
        mounts = os.path.join(self.dir, "mounts")
        if os.path.isdir(mounts):
            _rmtree(mounts)
        with contextlib.suppress(OSError):
            os.unlink(os.path.join(self.dir, "filehash.json"))
        if store.root.is_dir():
            with store.lock():
                store.gc()
        return before

    def usage(self) -> dict:
        """{"entries", "size", "reclaimable"}: layers only the cache holds, plus cache mounts."""
        from minidock.image.layers import dir_size
        from minidock.image.store import ImageStore

        store = ImageStore()
        steps = self.index["steps"]
        layers = {e["layer"]["diff_id"]: e["layer"] for e in steps.values() if e.get("layer")}
        used = set()
        if store.root.is_dir():
            for i in store.ids():
                with contextlib.suppress(OSError, ValueError):
                    rec = json.loads(store._record_path(i).read_text())
                    used |= {x["diff_id"] for x in rec["Layers"]}
        size = sum(x.get("unpacked", x["size"]) for d, x in layers.items() if d not in used)
        mounts = os.path.join(self.dir, "mounts")
        msize = dir_size(mounts) if os.path.isdir(mounts) else 0
        nmounts = len(os.listdir(mounts)) if os.path.isdir(mounts) else 0
        return {"entries": len(steps) + nmounts, "size": size + msize, "reclaimable": size + msize}


def _rmtree(path: str) -> None:
    import shutil

    def onerror(fn, p, exc):
        with contextlib.suppress(OSError):
            os.chmod(os.path.dirname(p), 0o700)
            fn(p)

    shutil.rmtree(path, onerror=onerror)


class FileHashes:
    """sha256 of context files, re-read only when their stat changed (the fast path)."""

    def __init__(self):
        self.path = os.path.join(root(), "filehash.json")
        try:
            with open(self.path) as f:
                self.known: dict = json.load(f)
        except (FileNotFoundError, ValueError):
            self.known = {}
        self.dirty = False

    def sha(self, path: str, st: os.stat_result) -> str:
        sig = [st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns]
        old = self.known.get(path)
        if old and old[:4] == sig:
            return old[4]
        h = sha256()
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
        self.known[path] = sig + [h.hexdigest()]
        self.dirty = True
        return h.hexdigest()

    def save(self) -> None:
        if not self.dirty:
            return
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        fsutil.atomic_write_json(self.path, self.known, separators=(",", ":"))
        self.dirty = False
