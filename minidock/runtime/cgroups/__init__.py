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
from functools import lru_cache

from minidock.errors import MinidockError


class CgroupError(MinidockError):
    pass


# v1 super options that are not controllers (mount flags of the cgroup filesystem itself)
_NOT_CONTROLLERS = {"rw", "ro", "xattr", "noprefix", "clone_children", "cpuset_v2_mode", "none"}


def parse_mountinfo(text: str) -> dict:
    """{"v2": mountpoint or None, "v1": {controller: mountpoint}} from mountinfo text.

    v1 controllers come from the super options ("rw,cpu,cpuacct" for a combined mount), so
    separate and combined hierarchies look the same to the drivers. Named hierarchies
    (name=systemd) hold no controller and are ignored.
    """
    v2, v1 = None, {}
    for line in text.splitlines():
        left, _, right = line.partition(" - ")
        fields, rfields = left.split(), right.split()
        if len(fields) < 5 or len(rfields) < 3:
            continue
        fstype, target = rfields[0], fields[4].replace("\\040", " ")
        if fstype == "cgroup2":
            # /sys/fs/cgroup itself wins over a hybrid host's /sys/fs/cgroup/unified
            if v2 is None or target == "/sys/fs/cgroup":
                v2 = target
        elif fstype == "cgroup":
            for opt in rfields[2].split(","):
                if opt in _NOT_CONTROLLERS or "=" in opt:
                    continue
                v1.setdefault(opt, target)
    return {"v2": v2, "v1": v1}


@lru_cache(maxsize=1)
def mounts() -> dict:
    with open("/proc/self/mountinfo") as f:
        return parse_mountinfo(f.read())


def probe(m: dict, v2_controllers) -> int:
    """Which driver: 2 when cgroup2 holds the controllers, 1 when the v1 hierarchies do.

    A hybrid host mounts a controller-less cgroup2 at /sys/fs/cgroup/unified next to the v1
    hierarchies: limits written there would do nothing, so v1 wins unless the unified mount
    really has the memory and pids controllers.
    """
    if m["v2"] and (not m["v1"] or v2_controllers(m["v2"]) >= {"memory", "pids"}):
        return 2
    if m["v1"]:
        return 1
    return 0


@lru_cache(maxsize=1)
def cgroup_version() -> int:
    """2 on a unified host (cgroup2 at /sys/fs/cgroup with controllers), 1 where the v1
    hierarchies hold the controllers (hybrid hosts like Debian 10 or this development VM)."""
    v = probe(mounts(), _v2_controllers)
    if v:
        return v
    raise CgroupError("no cgroup filesystem is mounted",
                      "Mount cgroup2 at /sys/fs/cgroup (mount -t cgroup2 none /sys/fs/cgroup).")


def _v2_controllers(root: str) -> set[str]:
    try:
        with open(os.path.join(root, "cgroup.controllers")) as f:
            return set(f.read().split())
    except OSError:
        return set()


def controllers() -> set[str]:
    """The controllers containers can use here ("swap" too where memory+swap is accounted)."""
    m = mounts()
    if cgroup_version() == 2:
        return _v2_controllers(m["v2"])
    out = set(m["v1"])
    mem = m["v1"].get("memory")
    if mem and os.path.exists(os.path.join(mem, "memory.memsw.limit_in_bytes")):
        out.add("swap")
    return out


def normalize(path: str) -> str:
    """cgroupsPath -> a path relative to the hierarchy root.

    Accepts "a/b", "/a/b" and runc's systemd form "slice:prefix:name" (mapped to a plain path
    "slice/prefix-name.scope"; minidock does not talk to systemd).
    """
    if ":" in path and "/" not in path:
        slice_, prefix, name = (path.split(":") + ["", ""])[:3]
        path = f"{slice_ or 'system.slice'}/{prefix + '-' if prefix else ''}{name}.scope"
    path = os.path.normpath("/" + path).lstrip("/")
    if not path or path.startswith(".."):
        raise CgroupError(f"invalid cgroup path {path!r}")
    return path


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
