"""Control groups: one interface, two drivers, chosen by probing the host.

    cg = open_cgroup("minidock/<id>")    # v2 if /sys/fs/cgroup is cgroup2, else v1 hierarchies
    cg.create(oci_resources, journal=j)   # journaled before mkdir; limits written
    cg.add_proc(pid)                      # before the namespaces are unshared (cgroupns root = here)
    cg.update(oci_resources); cg.stats(); cg.oom_killed(); cg.procs(); cg.freeze(); cg.thaw()
    cg.destroy()                          # kill what is left, rmdir with a bounded retry on EBUSY

The rest of minidock never knows which driver is in use. The input is the OCI runtime spec's
`linux.resources` (memory.limit/reservation/swap, cpu.shares/quota/period/cpus/mems, pids.limit,
blockIO.weight); the engine converts Docker's flags into it (minidock/engine/resources.py).

Every mkdir, rmdir and knob write goes through minidock.kernel, so `--explain` shows
`echo 33554432 > /sys/fs/cgroup/memory/minidock/<id>/memory.limit_in_bytes` and the like.
"""

from __future__ import annotations

import os

from minidock.runtime.cgroups.hierarchy import (  # noqa: F401 - the package's interface
    CgroupError,
    cgroup_version,
    controllers,
    mounts,
    normalize,
    parse_mountinfo,
    probe,
)


def open_cgroup(path: str):
    if cgroup_version() == 2:
        from minidock.runtime.cgroups.v2 import CgroupV2

        return CgroupV2(normalize(path))
    from minidock.runtime.cgroups.v1 import CgroupV1

    return CgroupV1(normalize(path))


def driver_name() -> str:
    return f"cgroupfs (v{cgroup_version()})"


def prune_orphans(parent: str, keep: set[str], state_root: str | None = None) -> list[str]:
    """Remove container cgroups under `parent` whose id is not in `keep` (crash leftovers).

    Two state roots may share a parent (the default `minidock`): a cgroup whose processes run
    on another state root's rootfs belongs to a live container of that root, not to a crash of
    ours, and is left alone (see _runs_elsewhere).
    """
    removed = []
    m = mounts()
    roots = [m["v2"]] if cgroup_version() == 2 else sorted(set(m["v1"].values()))
    names: set[str] = set()
    for root in roots:
        d = os.path.join(root, normalize(parent))
        if os.path.isdir(d):
            names |= {e.name for e in os.scandir(d) if e.is_dir() and len(e.name) == 64}
    for name in sorted(names - keep):
        cg = open_cgroup(f"{parent}/{name}")
        if state_root and _runs_elsewhere(cg.procs(), os.path.join(state_root, "containers", name)):
            continue
        cg.destroy()
        removed.append(f"cgroup {parent}/{name}")
    return removed


def _runs_elsewhere(pids: list[int], cdir: str) -> bool:
    """True when a process of the cgroup does not run on the rootfs of our container dir `cdir`.

    /proc/PID/root reads "/" for a pivoted container, but the process's own mountinfo still
    names its overlay's upperdir (<state root>/containers/<id>/upper).
    """
    for pid in pids:
        try:
            with open(f"/proc/{pid}/mountinfo") as f:
                if cdir.rstrip("/") + "/" not in f.read():
                    return True
        except OSError:
            continue  # gone already
    return False


def parse_cpuset(spec: str) -> set[int]:
    out: set[int] = set()
    for part in spec.replace("\n", "").split(","):
        if not part:
            continue
        a, _, b = part.partition("-")
        if not a.isdigit() or (b and not b.isdigit()):
            raise ValueError(part)
        out |= set(range(int(a), int(b or a) + 1))
    return out
