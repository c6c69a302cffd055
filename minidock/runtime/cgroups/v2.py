"""The cgroup v2 driver: one unified hierarchy.

Rules that trip runtimes, and what we do:
* Controllers must be enabled in every ancestor's cgroup.subtree_control, from the root down to
  our parent ("+cpu +memory +pids ..."), before the leaf can use them.
* "No internal processes": a cgroup with controllers enabled for its children cannot hold
  processes itself. The `minidock` parents never hold any; each container is a leaf.
* OOM: memory.events has `oom` (the limit was hit) and `oom_kill` (a process was killed):
  only oom_kill means the OOM killer acted. It counts kills of any process in the cgroup,
  so the flag stays set when a child, not PID 1, was the victim.
* --cpu-shares has no v2 file: cpu.weight = 1 + ((shares - 2) * 9999) / 262142 (runc's and
  crun's conversion), and memory+swap becomes memory.swap.max = swap - memory.
"""

from __future__ import annotations

import os

from minidock import kernel as k
from minidock.runtime.cgroups.base import Base, check_hugepage_limits, keyed, read, read_int
from minidock.runtime.cgroups.hierarchy import mounts

WANTED = ("cpuset", "cpu", "io", "memory", "pids", "hugetlb")


def shares_to_weight(shares: int) -> int:
    if shares == 0:
        return 0
    return 1 + ((shares - 2) * 9999) // 262142


class CgroupV2(Base):
    version = 2

    def __init__(self, path: str):
        super().__init__(path)
        self.root = mounts()["v2"]
        self.leaf = os.path.join(self.root, path)

    def dirs(self) -> list[str]:
        return [self.leaf]

    def birth_dir(self) -> str | None:
        return self.leaf

    def _create(self) -> None:
        self._mkdirs(self.root, why="the container's own cgroup (a leaf: v2 allows no internal processes)")

    def _devices(self, rules: list[dict]) -> None:
        from minidock.runtime.cgroups import devicefilter

        k.attach_device_filter(self.leaf, devicefilter.program(rules), rules=devicefilter.describe(rules),
                               why="v2 has no devices.allow: an eBPF program decides each device "
                                   "open/mknod (the container cannot read the host's disks)")

    def _mkdirs(self, root: str, why: str) -> str:
        """Enable the controllers at every level from the root down to our parent (an existing
        parent made by an older minidock, or by hand, may lack some), each before its child."""
        self._enable(root)
        cur = root
        for part in self.path.split("/")[:-1]:
            cur = os.path.join(cur, part)
            if not os.path.isdir(cur):
                super()._mkdirs_one(cur, why="a parent for minidock's containers (never holds processes)")
            self._enable(cur)
        return super()._mkdirs(root, why)

    def _enable(self, path: str) -> None:
        """Delegate the controllers we use to the children of `path`."""
        have = set(read(os.path.join(path, "cgroup.controllers")).split())
        on = set(read(os.path.join(path, "cgroup.subtree_control")).split())
        want = [c for c in WANTED if c in have and c not in on]
        if want:
            k.write_file(os.path.join(path, "cgroup.subtree_control"), " ".join("+" + c for c in want),
                         why="enable these controllers for the cgroups below")

    def _w(self, name: str, value, why: str) -> None:
        if os.path.exists(os.path.join(self.leaf, name)):
            k.write_file(os.path.join(self.leaf, name), str(value), why=why)

    def update(self, r: dict) -> None:
        mem = r.get("memory") or {}
        limit = mem.get("limit")
        if limit is not None:
            self._w("memory.max", limit if limit > 0 else "max",
                    "-m/--memory: the OOM killer acts in this cgroup beyond it")
        if mem.get("swap") is not None:
            swap = mem["swap"]
            if swap <= 0:
                val = "max"
            else:
                cur = limit if limit is not None else read_int(os.path.join(self.leaf, "memory.max"), 0)
                val = max(swap - cur, 0) if cur else "max"
            self._w("memory.swap.max", val, "--memory-swap (memory+swap) minus --memory: the swap allowed")
        if mem.get("reservation") is not None:
            self._w("memory.low", mem["reservation"] or 0, "--memory-reservation: memory protected from reclaim")
        cpu = r.get("cpu") or {}
        if cpu.get("shares"):
            self._w("cpu.weight", shares_to_weight(cpu["shares"]), "--cpu-shares converted to a v2 weight")
        if cpu.get("quota") is not None or cpu.get("period"):
            # one file holds both: keep the current half that was not given (update --cpu-period)
            cur_q, _, cur_p = read(os.path.join(self.leaf, "cpu.max"), "max 100000").partition(" ")
            quota = cpu["quota"] if cpu.get("quota") is not None else (-1 if cur_q == "max" else int(cur_q))
            period = cpu.get("period") or int(cur_p or 100000)
            self._w("cpu.max", f"{quota if quota and quota > 0 else 'max'} {period}",
                    "--cpus/--cpu-quota: CPU time (us) allowed per period")
        if cpu.get("cpus"):
            self._w("cpuset.cpus", cpu["cpus"], "--cpuset-cpus: the CPUs it may run on")
        if cpu.get("mems"):
            self._w("cpuset.mems", cpu["mems"], "--cpuset-mems: the memory nodes it may use")
        pids = r.get("pids") or {}
        if "limit" in pids:
            lim = pids["limit"]
            self._w("pids.max", "max" if lim is None or lim <= 0 else lim,
                    "--pids-limit: fork() fails with EAGAIN beyond this many tasks")
        bio = r.get("blockIO") or {}
        if bio.get("weight"):
            if os.path.exists(os.path.join(self.leaf, "io.bfq.weight")):
                self._w("io.bfq.weight", bio["weight"], "--blkio-weight (BFQ scheduler)")
            else:  # io.weight is 1..10000; blkio weight 10..1000
                self._w("io.weight", f"default {1 + (bio['weight'] - 10) * 9999 // 990}",
                        "--blkio-weight converted to io.weight")
        for wd in bio.get("weightDevice") or []:  # (leaf weights have no v2 file: ignored, as runc)
            if wd.get("weight") and os.path.exists(os.path.join(self.leaf, "io.bfq.weight")):
                self._w("io.bfq.weight", f"{wd['major']}:{wd['minor']} {wd['weight']}",
                        "--blkio-weight-device (BFQ scheduler)")
        for key, word in (("throttleReadBpsDevice", "rbps"), ("throttleWriteBpsDevice", "wbps"),
                          ("throttleReadIOPSDevice", "riops"), ("throttleWriteIOPSDevice", "wiops")):
            for t in bio.get(key) or []:
                self._w("io.max", f"{t['major']}:{t['minor']} {word}={t['rate']}",
                        f"blockIO.{key}: a throttle on one device")

        check_hugepage_limits(r.get("hugepageLimits"),
                              "hugetlb" in read(os.path.join(self.leaf, "cgroup.controllers")).split())
        for lim in r.get("hugepageLimits") or []:
            self._w(f"hugetlb.{lim['pageSize']}.max", lim["limit"], "hugepageLimits: huge pages this container may use")

    def oom_killed(self) -> bool:
        return keyed(os.path.join(self.leaf, "memory.events")).get("oom_kill", 0) > 0

    def stats(self) -> dict:
        cpu = keyed(os.path.join(self.leaf, "cpu.stat"))
        mstat = keyed(os.path.join(self.leaf, "memory.stat"))
        rd = wr = 0
        for line in read(os.path.join(self.leaf, "io.stat")).splitlines():
            for kv in line.split()[1:]:
                key, _, v = kv.partition("=")
                if key == "rbytes":
                    rd += int(v)
                elif key == "wbytes":
                    wr += int(v)
        return {
            "cpu_usage_ns": cpu.get("usage_usec", 0) * 1000,
            "memory_usage": read_int(os.path.join(self.leaf, "memory.current")),
            "memory_cache": mstat.get("inactive_file", 0),
            "memory_limit": read_int(os.path.join(self.leaf, "memory.max")),
            "pids_current": read_int(os.path.join(self.leaf, "pids.current")),
            "pids_limit": read_int(os.path.join(self.leaf, "pids.max")),
            "blkio_read": rd, "blkio_write": wr,
        }

    def limits(self) -> dict:
        q, _, p = read(os.path.join(self.leaf, "cpu.max"), "max 100000").partition(" ")
        return {"memory": read_int(os.path.join(self.leaf, "memory.max")),
                "cpu_quota": -1 if q == "max" else int(q), "cpu_period": int(p or 100000),
                "pids": read_int(os.path.join(self.leaf, "pids.max"))}

    def _kill_all(self) -> None:
        if os.path.exists(os.path.join(self.leaf, "cgroup.kill")):
            try:
                k.write_file(os.path.join(self.leaf, "cgroup.kill"), "1",
                             why="kill every process left in the container's cgroup")
                return
            except Exception:  # noqa: BLE001 - fall back to signalling each pid
                pass
        super()._kill_all()

    def freeze(self) -> None:
        self._w("cgroup.freeze", "1", "pause: freeze every task of the container")

    def thaw(self) -> None:
        if read(os.path.join(self.leaf, "cgroup.freeze")) == "1":
            self._w("cgroup.freeze", "0", "resume the container's tasks")

    def frozen(self) -> bool:
        return read(os.path.join(self.leaf, "cgroup.freeze")) == "1"
