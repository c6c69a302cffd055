"""What both drivers share: directories, process lists, and a careful destroy."""

from __future__ import annotations

import errno
import os
import time

from minidock import kernel as k
from minidock.errors import KernelError


def read(path: str, default: str = "") -> str:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return default


def read_int(path: str, default: int = 0) -> int:
    v = read(path)
    if v in ("", "max"):
        return default
    try:
        return int(v.split()[0])
    except ValueError:
        return default


def keyed(path: str) -> dict[str, int]:
    """Files of "key value" lines (memory.stat, memory.events, cpu.stat)."""
    out = {}
    for line in read(path).splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].lstrip("-").isdigit():
            out[parts[0]] = int(parts[1])
    return out


def hugepage_sizes() -> list[str]:
    """The huge page sizes this kernel has, named as the hugetlb files name them ("2MB", "1GB")."""
    out = []
    try:
        names = os.listdir("/sys/kernel/mm/hugepages")
    except OSError:
        return out
    for name in sorted(names, key=lambda n: int(n.split("-")[1].rstrip("kB"))):
        kb = int(name.split("-")[1].rstrip("kB"))
        out.append(f"{kb // (1 << 20)}GB" if kb >= 1 << 20 else f"{kb // 1024}MB" if kb >= 1024 else f"{kb}KB")
    return out


def check_hugepage_limits(limits: list[dict], have_controller: bool) -> None:
    from minidock.runtime.cgroups.hierarchy import CgroupError

    if not limits:
        return
    if not have_controller:
        raise CgroupError("hugepageLimits: the hugetlb cgroup controller is not available on this host",
                          "Mount the hugetlb controller (v1) or enable it in cgroup2, or drop hugepageLimits.")
    sizes = hugepage_sizes()
    for lim in limits:
        if lim.get("pageSize") not in sizes:
            raise CgroupError(f"hugepageLimits: page size {lim.get('pageSize')!r} is not supported here",
                              f"This kernel has: {', '.join(sizes) or 'no huge pages'}.")


class Base:
    """A cgroup at `path` (relative to the hierarchy roots), in one or more directories."""

    version = 0

    def __init__(self, path: str):
        self.path = path

    # subclasses: dirs() -> list of absolute dirs (leaf last per hierarchy), _write_resources()
    def dirs(self) -> list[str]:
        raise NotImplementedError

    def exists(self) -> bool:
        return any(os.path.isdir(d) for d in self.dirs())

    def _mkdirs(self, root: str, why: str) -> str:
        """Create every missing level from the hierarchy root down to our leaf."""
        cur = root
        for part in self.path.split("/"):
            cur = os.path.join(cur, part)
            if not os.path.isdir(cur):
                self._mkdirs_one(cur, why)
        return cur

    def _mkdirs_one(self, path: str, why: str) -> None:
        try:
            k.cgroup_mkdir(path, why=why)
        except KernelError as e:
            if e.errno != errno.EEXIST:  # a concurrent create made it: fine
                raise
        self._new_level(path)

    def _new_level(self, path: str) -> None:
        """Hook: initialise a freshly made level (v1 cpuset, v2 subtree_control)."""

    def create(self, resources: dict | None, journal=None) -> None:
        k.alias(self.path, "CGROUP")  # --explain: /sys/fs/cgroup/memory/$CGROUP/...
        if journal is not None:
            journal.record("cgroup", path=self.path)
        self._create()
        if resources:
            self.update(resources)
            if resources.get("devices") is not None:
                self._devices(resources["devices"])  # once: `update` never changes device rules

    def _create(self) -> None:
        raise NotImplementedError

    def _devices(self, rules: list[dict]) -> None:
        raise NotImplementedError

    def procs(self) -> list[int]:
        pids: set[int] = set()
        for d in self.dirs():
            for line in read(os.path.join(d, "cgroup.procs")).split():
                if line.isdigit():
                    pids.add(int(line))
        return sorted(pids)

    def birth_dir(self) -> str | None:
        """The directory a process can be created in (clone3 CLONE_INTO_CGROUP): cgroup v2's leaf;
        None for v1 (its hierarchies take a pid in cgroup.procs, one write each)."""
        return None

    def add_proc(self, pid: int) -> None:
        for d in self.dirs():
            k.write_file(os.path.join(d, "cgroup.procs"), str(pid),
                         why="the container's first process joins its cgroup; its children inherit it")

    def _kill_all(self) -> None:
        for pid in self.procs():
            try:
                os.kill(pid, 9)  # SIGKILL (the signal module imports enum)
            except ProcessLookupError:
                pass

    def destroy(self, timeout: float = 5.0) -> None:
        """Kill what is left and remove the leaf in every hierarchy.

        rmdir fails with EBUSY while the last processes are still exiting: retry, bounded.
        """
        if not self.exists():
            return
        self.thaw()  # frozen processes can't die
        deadline = time.monotonic() + timeout
        delay = 0.005
        while True:
            self._kill_all()
            busy = []
            for d in reversed(self.dirs()):
                if not os.path.isdir(d):
                    continue
                try:
                    k.cgroup_rmdir(d, why="the container is gone; remove its cgroup")
                except KernelError as e:
                    if e.errno == errno.ENOENT:
                        continue
                    if e.errno != errno.EBUSY:
                        raise
                    busy.append(d)
            if not busy:
                return
            if time.monotonic() > deadline:
                raise KernelError("rmdir", busy[0], errno.EBUSY,
                                  hint="Processes are still in the cgroup: see its cgroup.procs.")
            time.sleep(delay)
            delay = min(delay * 2, 0.1)

    # optional in subclasses
    def freeze(self) -> None:
        raise NotImplementedError

    def thaw(self) -> None:
        pass

    def frozen(self) -> bool:
        return False
