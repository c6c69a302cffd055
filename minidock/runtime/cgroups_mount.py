"""Mounting /sys/fs/cgroup inside the container.

The container is in its own cgroup namespace, so a fresh cgroup mount shows the container's
cgroup as the root: it sees its own limits and nothing of the host's tree.

* cgroup v2: one `cgroup2` mount.
* cgroup v1 (and hybrid hosts like this one): a tmpfs with one `cgroup` mount per v1 hierarchy the
  host has, named as on the host (memory, cpu, pids, cpu,cpuacct, ...), then the tmpfs read-only
  (as runc does it: a hybrid host's controller-less cgroup2 mount is left out).
The hierarchies are read from /proc/self/mountinfo *before* pivot_root, while the host's mount
table copy is still visible.
"""

from __future__ import annotations

import errno
import os

from minidock import kernel as k
from minidock.errors import KernelError
from minidock.util import mountinfo


def host_cgroup_mounts() -> list[tuple[str, str, str]]:
    """(mount point name, fstype, super options) for each cgroup mount of the host."""
    return [(m.target, m.fstype, m.super_options) for m in mountinfo.read()
            if m.fstype in ("cgroup", "cgroup2")]


def own_cgroups() -> dict[str, str]:
    """/proc/self/cgroup as {"cpu,cpuacct": path, "name=systemd": path, "": v2 path}."""
    out = {}
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, ctrls, path = line.rstrip("\n").split(":", 2)
            out[ctrls] = path
    return out


def _mount_or_bind(source: str, target: str, fstype: str, flags: int, data, mp: str, superopts: str,
                   why: str, cgroupns: bool = True) -> None:
    """Mount a fresh cgroupfs; without a cgroup namespace (a fresh mount would show the host's
    root cgroup: no limits), or where the kernel refuses (EPERM: a user namespace without a cgroup
    namespace of its own, e.g. podman on v1), bind the container's own cgroup directory from the
    host's hierarchy instead, as runc does."""
    if cgroupns:
        try:
            k.mount(source, target, fstype, flags, data, why=why)
            return
        except KernelError as e:
            if e.errno != errno.EPERM:
                raise
    if fstype == "cgroup2":
        key = ""
    else:
        key = ",".join(o for o in superopts.split(",") if o not in ("rw", "ro") and "=" not in o or
                       o.startswith("name="))
    mine = own_cgroups()
    rel = next((p for c, p in mine.items() if set(c.split(",")) == set(key.split(","))), "/")
    k.mount(os.path.join(mp, rel.lstrip("/")), target, None, k.MS_BIND | k.MS_REC,
            why="no cgroup namespace, or no cgroup mount allowed here (user namespace): bind the "
                "container's own cgroup")
    from minidock.runtime.rootfs import current_flags

    k.mount(None, target, None, k.MS_BIND | k.MS_REMOUNT | (flags & ~(k.MS_BIND | k.MS_REC)) | current_flags(target),
            why="the bound cgroup directory with the spec's flags")


def mount_cgroupfs(target: str, flags: int, cgroupns: bool = True) -> None:
    """cgroupns: the container has a cgroup namespace (new or joined); without one, each
    hierarchy is the container's own cgroup directory bound from the host (runc on v1: CRI)."""
    mounts = host_cgroup_mounts()
    if any(mp == "/sys/fs/cgroup" and t == "cgroup2" for mp, t, _ in mounts):
        _mount_or_bind("cgroup", target, "cgroup2", flags, None, "/sys/fs/cgroup", "",
                       why="the container's own cgroup tree (cgroup namespace: its cgroup is the root)",
                       cgroupns=cgroupns)
        return
    k.mount("tmpfs", target, "tmpfs", k.MS_NOSUID | k.MS_NODEV | k.MS_NOEXEC, "mode=755",
            why="cgroup v1: a directory to hold one mount per controller hierarchy")
    for mp, fstype, superopts in mounts:
        if not mp.startswith("/sys/fs/cgroup/"):
            continue
        name = mp[len("/sys/fs/cgroup/"):]
        if "/" in name or fstype == "cgroup2":
            continue  # (a hybrid host's controller-less unified mount: runc leaves it out too)
        sub = os.path.join(target, name)
        os.makedirs(sub, exist_ok=True)
        opts = [o for o in superopts.split(",") if o not in ("rw", "ro")]
        data = ",".join(opts) if fstype == "cgroup" else None
        named = [o[5:] for o in opts if o.startswith("name=")]
        _mount_or_bind(named[0] if named else "cgroup", sub, fstype, flags, data, mp, superopts,
                       why=f"cgroup v1 hierarchy {name}, seen from the container's cgroup namespace",
                       cgroupns=cgroupns)
    k.mount(None, target, None, k.MS_REMOUNT | k.MS_RDONLY | k.MS_NOSUID | k.MS_NODEV | k.MS_NOEXEC,
            why="the cgroup tree is read-only in the container")
