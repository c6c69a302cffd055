"""Content: blobs addressed by digest, verified before they are visible (a write becomes a blob
only once its bytes hash to its name), and the store's writers' lock and work area.
"""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path

from minidock.errors import MinidockError, NotFound
from minidock.util import fsutil

_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_OTHER_DIGEST = re.compile(r"(sha384:[0-9a-f]{96}|sha512:[0-9a-f]{128})")


class BadBlob(MinidockError):
    pass


def check_digest(digest, what: str = "a descriptor") -> str:
    """A digest as it enters (manifest, index, archive, OCI layout, registry answer): exactly
    ``sha256:`` + 64 lowercase hex digits, or it is refused before it is joined into any path.
    (sha384/sha512 are valid OCI digests that minidock does not store: refused as unsupported.)"""
    if isinstance(digest, str) and _DIGEST.fullmatch(digest):
        return digest
    if isinstance(digest, str) and _OTHER_DIGEST.fullmatch(digest):
        raise BadBlob(f"unsupported digest algorithm in {what}: {digest.split(':')[0]}",
                      "minidock stores sha256 content only; nothing was stored.")
    shown = repr(digest)[:90]
    raise BadBlob(f"invalid digest in {what}: {shown}",
                  "A digest is sha256: followed by 64 lowercase hex digits; the image is malformed or "
                  "forged, nothing was stored.")


def check_descriptors(doc: dict, what: str) -> dict:
    """Every digest a manifest, an index or an image config names, checked before any is used."""
    if not isinstance(doc, dict):
        raise BadBlob(f"{what} is not a JSON object")
    for d in doc.get("manifests") or []:
        check_digest((d or {}).get("digest") if isinstance(d, dict) else d, what)
    if "config" in doc and isinstance(doc["config"], dict) and "digest" in doc["config"]:
        check_digest(doc["config"]["digest"], what)
    for lay in doc.get("layers") or []:
        check_digest(lay.get("digest") if isinstance(lay, dict) else lay, what)
    rootfs = doc.get("rootfs")
    if isinstance(rootfs, dict):
        for d in rootfs.get("diff_ids") or []:
            check_digest(d, what)
    return doc


def _hex(digest: str) -> str:
    return check_digest(digest, "the image store")[7:]


class ContentStore:
    """Blobs under ``self.root`` (the ImageStore mixes this in)."""

    def _ensure(self) -> None:
        for d in ("blobs/sha256", "layers/sha256", "images", "tmp"):
            (self.root / d).mkdir(parents=True, exist_ok=True)

    @contextlib.contextmanager
    def lock(self):
        """The writers' lock (flock is released by the kernel if we die)."""
        self._ensure()
        with fsutil.flock(self.root / ".lock"):
            yield

    def tmpdir(self) -> str:
        import tempfile

        self._ensure()
        return tempfile.mkdtemp(prefix=f"{os.getpid()}-", dir=self.root / "tmp")

    def sweep_tmp(self) -> None:
        """Remove work left by dead processes (called under the lock)."""
        import shutil

        tmp = self.root / "tmp"
        if not tmp.is_dir():
            return
        for entry in tmp.iterdir():
            pid = entry.name.partition("-")[0]
            if pid.isdigit() and os.path.exists(f"/proc/{pid}") and int(pid) != os.getpid():
                continue
            if int(pid or 0) == os.getpid():
                continue
            shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink(missing_ok=True)

    def blob_path(self, digest: str) -> Path:
        return self.root / "blobs" / "sha256" / _hex(digest)

    def has_blob(self, digest: str) -> bool:
        return self.blob_path(digest).exists()

    def read_blob(self, digest: str) -> bytes:
        try:
            return self.blob_path(digest).read_bytes()
        except FileNotFoundError:
            raise NotFound(f"blob {digest} is missing from the image store",
                           "The store is damaged: remove the image and pull or load it again.") from None

    def put_blob(self, stream, expected: str | None = None, size: int | None = None) -> tuple[str, int]:
        """Store a blob from a readable stream; verify it against `expected` before it is visible."""
        import hashlib
        import tempfile

        self._ensure()
        fd, tmp = tempfile.mkstemp(prefix=f"{os.getpid()}-", dir=self.root / "tmp")
        h, n = hashlib.sha256(), 0
        try:
            with os.fdopen(fd, "wb") as f:
                while True:
                    chunk = stream.read(1 << 20)
                    if not chunk:
                        break
                    h.update(chunk)
                    n += len(chunk)
                    f.write(chunk)
            digest = "sha256:" + h.hexdigest()
            if expected and digest != expected:
                raise BadBlob(f"digest mismatch: expected {expected}, got {digest}",
                              "The data is corrupt or was tampered with; nothing was stored.")
            if size is not None and n != size:
                raise BadBlob(f"size mismatch for {digest}: expected {size} bytes, got {n}")
            os.replace(tmp, self.blob_path(digest))
            tmp = None
            return digest, n
        finally:
            if tmp:
                os.unlink(tmp)

    def put_blob_bytes(self, data: bytes, expected: str | None = None) -> str:
        import io

        return self.put_blob(io.BytesIO(data), expected)[0]
