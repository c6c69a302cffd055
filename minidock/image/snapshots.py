"""Snapshots as containerd's snapshotters give them: ``prepare`` *returns* the mounts as data (OCI
mount objects); the caller mounts them. The image store stays ignorant of mounting, and this is
testable without root.

    prepare(layer_dirs, upper, work, target) -> [{"type": "overlay", "source": "overlay",
                                                  "destination": target, "options": [...]}]

``layer_dirs`` lowest first (as Image.layer_dirs() gives them); overlayfs lists the top one first.
"""

from __future__ import annotations


def prepare(layer_dirs: list[str], upper: str, work: str, target: str) -> list[dict]:
    """The mounts that make ``target`` the writable view of the layers (``upper`` takes writes)."""
    if not layer_dirs:
        raise ValueError("a snapshot needs at least one layer")
    lower = ":".join(reversed([str(d) for d in layer_dirs]))
    return [{"type": "overlay", "source": "overlay", "destination": str(target),
             "options": [f"lowerdir={lower}", f"upperdir={upper}", f"workdir={work}"]}]
