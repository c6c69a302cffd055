"""Snapshots as containerd's snapshotters give them: ``prepare`` *returns* the mounts as data (OCI
mount objects); the caller mounts them. The image store stays ignorant of mounting, and this is
testable without root.

    prepare(layer_dirs, upper, work, target) -> [{"type": "overlay", "source": "overlay",
                                                  "destination": target, "options": [...]}]

``layer_dirs`` lowest first (as Image.layer_dirs() gives them); overlayfs lists the top one first.
"""

from __future__ import annotations

import os
from pathlib import Path

from minidock.image.content import _hex


def prepare(layer_dirs: list[str], upper: str, work: str, target: str) -> list[dict]:
    """The mounts that make ``target`` the writable view of the layers (``upper`` takes writes)."""
    if not layer_dirs:
        raise ValueError("a snapshot needs at least one layer")
    lower = ":".join(reversed([str(d) for d in layer_dirs]))
    return [{"type": "overlay", "source": "overlay", "destination": str(target),
             "options": [f"lowerdir={lower}", f"upperdir={upper}", f"workdir={work}"]}]


class Snapshots:
    """Unpacked layers (one read-only snapshot per diff_id), shared by images and containers.

    What a container's root is made of is :func:`minidock.image.snapshots.prepare`'s answer: mounts
    as data."""

    def layer_dir(self, diff_id: str) -> Path:
        return self.root / "layers" / "sha256" / _hex(diff_id)

    def has_layer(self, diff_id: str) -> bool:
        return self.layer_dir(diff_id).is_dir()

    def unpack_layer(self, blob_digest: str, diff_id: str | None = None) -> tuple[str, int]:
        """Unpack a stored layer blob into its snapshot dir (once), verifying its diff_id.

        Returns (diff_id, uncompressed size). Safe to race: the loser's copy is discarded.
        """
        import shutil

        from minidock.image import layers as L

        if diff_id and self.has_layer(diff_id):
            return diff_id, 0
        work = self.tmpdir()
        try:
            dest = os.path.join(work, "diff")
            os.mkdir(dest, 0o755)
            with open(self.blob_path(blob_digest), "rb") as raw:
                hr = L.HashingReader(L.uncompressed(raw))
                L.unpack(hr, dest)
                while hr.read(1 << 20):  # tar padding after the end-of-archive marker counts too
                    pass
            if diff_id and hr.digest != diff_id:
                raise L.BadLayer(f"layer {blob_digest[:19]} does not match its diff_id: expected {diff_id}, "
                                 f"got {hr.digest}", "The image config lies about its layers; nothing was stored.")
            diff_id = hr.digest
            try:
                os.rename(dest, self.layer_dir(diff_id))
            except OSError:
                if not self.has_layer(diff_id):
                    raise
            return diff_id, hr.size
        finally:
            shutil.rmtree(work, ignore_errors=True)


def _rmtree_layer(p: Path) -> None:
    """Layers hold root-owned, read-only dirs: make them writable and remove."""
    import shutil

    def onerror(fn, path, exc):
        try:
            os.chmod(os.path.dirname(path), 0o700)
            fn(path)
        except OSError:
            pass

    shutil.rmtree(p, onerror=onerror)
