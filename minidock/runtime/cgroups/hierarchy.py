"""Which cgroup hierarchies this host has, and which driver (v1 or v2) they call for."""

from __future__ import annotations

import os

from minidock.errors import MinidockError
from minidock.util import mountinfo


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
    v2, v1, extra = None, {}, []
    # only the cgroup lines are parsed: a busy host has hundreds of other mounts (~0.3 ms per
    # runtime call, ~40 Mount objects per container running)
    text = "\n".join(line for line in text.splitlines() if " - cgroup" in line)
    for mnt in mountinfo.parse(text):
        fstype, target = mnt.fstype, mnt.target
        # controller-less hierarchies: named v1 ones (name=systemd) and a hybrid host's cgroup2.
        # The v1 driver puts the container there too (runc does): a process left in the host's
        # cgroup of such a hierarchy makes it the root of the container's cgroup namespace, and
        # a fresh mount then shows the host's tree from there
        if (fstype == "cgroup" and any(o.startswith("name=") for o in mnt.super_options.split(","))) or \
                (fstype == "cgroup2" and target != "/sys/fs/cgroup"):
            extra.append(target)
        if fstype == "cgroup2":
            # /sys/fs/cgroup itself wins over a hybrid host's /sys/fs/cgroup/unified
            if v2 is None or target == "/sys/fs/cgroup":
                v2 = target
        elif fstype == "cgroup":
            for opt in mnt.super_options.split(","):
                if opt in _NOT_CONTROLLERS or "=" in opt:
                    continue
                v1.setdefault(opt, target)
    return {"v2": v2, "v1": v1, "controllerless": list(dict.fromkeys(extra))}


_cache: dict = {}  # (not functools.lru_cache: functools and collections cost ~1 ms per runtime start)


def mounts() -> dict:
    if "mounts" not in _cache:
        with open("/proc/self/mountinfo") as f:
            _cache["mounts"] = parse_mountinfo(f.read())
    return _cache["mounts"]


def layout() -> dict:
    """What this host's probe found (the hierarchies and the driver's version), for a container's
    state.json: `minidock-runtime start`, `state`, `kill` and `delete` then open the container's
    cgroup without reading /proc/self/mountinfo (~3 ms on a host with a few hundred mounts)."""
    return {"version": cgroup_version(), "mounts": mounts()}


def seed(recorded: dict | None) -> None:
    """Take a layout() recorded at create as this process's probe (unless it probed already)."""
    if recorded and recorded.get("version") in (1, 2) and isinstance(recorded.get("mounts"), dict):
        _cache.setdefault("mounts", recorded["mounts"])
        _cache.setdefault("version", recorded["version"])


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


def cgroup_version() -> int:
    """2 on a unified host (cgroup2 at /sys/fs/cgroup with controllers), 1 where the v1
    hierarchies hold the controllers (hybrid hosts like Debian 10 or this development VM)."""
    if "version" in _cache:
        return _cache["version"]
    v = probe(mounts(), _v2_controllers)
    if v:
        _cache["version"] = v
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
