"""Undo handlers for the host resources the engine and runtime journal: mounts and cgroups.

Each is idempotent: undoing something already gone is not an error (a crash can fall between
the journal line and the creation it announces).
"""

from __future__ import annotations

import errno

from minidock import kernel as k
from minidock.errors import KernelError
from minidock.state.journal import register


def undo_mount(entry: dict) -> None:
    try:
        k.umount(entry["target"], k.MNT_DETACH, why="undo a mount recorded in the journal")
    except KernelError as e:
        if e.errno not in (errno.EINVAL, errno.ENOENT):
            raise


def undo_cgroup(entry: dict) -> None:
    from minidock.runtime.cgroups import open_cgroup

    cg = open_cgroup(entry["path"])
    if cg.exists():
        cg.destroy()


register("mount", undo_mount)
register("cgroup", undo_cgroup)
