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

import os

from minidock import kernel as k


def host_cgroup_mounts() -> list[tuple[str, str, str]]:
    """(mount point name, fstype, super options) for each cgroup mount of the host."""
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            parts = line.split()
            sep = parts.index("-")
            fstype, superopts = parts[sep + 1], parts[sep + 3]
            if fstype in ("cgroup", "cgroup2"):
                out.append((parts[4], fstype, superopts))
    return out


def mount_cgroupfs(target: str, flags: int) -> None:
    mounts = host_cgroup_mounts()
    if any(mp == "/sys/fs/cgroup" and t == "cgroup2" for mp, t, _ in mounts):
        k.mount("cgroup", target, "cgroup2", flags,
                why="the container's own cgroup tree (cgroup namespace: its cgroup is the root)")
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
        k.mount(named[0] if named else "cgroup", sub, fstype, flags, data,
                why=f"cgroup v1 hierarchy {name}, seen from the container's cgroup namespace")
    k.mount(None, target, None, k.MS_REMOUNT | k.MS_RDONLY | k.MS_NOSUID | k.MS_NODEV | k.MS_NOEXEC,
            why="the cgroup tree is read-only in the container")
