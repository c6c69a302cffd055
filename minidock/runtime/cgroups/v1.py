"""The cgroup v1 driver: one directory per controller hierarchy.

On a v1 (or hybrid) host each controller lives in its own hierarchy (/sys/fs/cgroup/memory,
/sys/fs/cgroup/cpu, ... or combined ones like cpu,cpuacct). A container's cgroup is the same
relative path in each hierarchy we use, and its first process is written into every one.

Pitfalls handled here:
* cpuset: a new cgroup starts with empty cpuset.cpus/mems, and adding a process then fails with
  ENOSPC; every level we create copies its parent's values.
* memory: memory.memsw.limit_in_bytes (memory+swap) must never be below memory.limit_in_bytes,
  so the order of the two writes depends on whether the limit grows or shrinks.
* OOM: memory.oom_control's `oom_kill` counter (kernel >= 4.13) counts kills in this cgroup.
"""

from __future__ import annotations

import os

from minidock import kernel as k
from minidock.runtime.cgroups.base import Base, check_hugepage_limits, keyed, read, read_int
from minidock.runtime.cgroups.hierarchy import CgroupError, mounts

THROTTLES = {"throttleReadBpsDevice": "read_bps_device", "throttleWriteBpsDevice": "write_bps_device",
             "throttleReadIOPSDevice": "read_iops_device", "throttleWriteIOPSDevice": "write_iops_device"}
CONTROLLERS = ("memory", "cpu", "cpuacct", "cpuset", "pids", "blkio", "freezer", "devices", "hugetlb", "net_cls",
               "net_prio")


class CgroupV1(Base):
    version = 1

    def __init__(self, path: str):
        super().__init__(path)
        self.roots = {}  # controller -> hierarchy root, one entry per distinct hierarchy
        seen = set()
        for c in CONTROLLERS:
            root = mounts()["v1"].get(c)
            if root:
                self.roots[c] = root
                seen.add(root)
        # name=systemd and a hybrid host's unified cgroup2: no limits there, but the container
        # must not sit at the host's root of them (its cgroup namespace would start there)
        for root in mounts().get("controllerless", []):
            if root not in seen and os.access(root, os.W_OK):
                self.roots["hierarchy:" + root] = root

    def dir(self, controller: str) -> str | None:
        root = self.roots.get(controller)
        return os.path.join(root, self.path) if root else None

    def dirs(self) -> list[str]:
        out = []
        for root in dict.fromkeys(self.roots.values()):
            out.append(os.path.join(root, self.path))
        return out

    def _create(self) -> None:
        for root in dict.fromkeys(self.roots.values()):
            self._mkdirs(root, why="a cgroup per hierarchy for the container: the kernel enforces its limits")

    def _new_level(self, path: str) -> None:
        if os.path.exists(os.path.join(path, "cpuset.cpus")):
            parent = os.path.dirname(path)
            for f in ("cpuset.cpus", "cpuset.mems"):
                if not read(os.path.join(path, f)):
                    k.write_file(os.path.join(path, f), read(os.path.join(parent, f)),
                                 why="a new v1 cpuset is empty: inherit the parent's CPUs and memory nodes")

    def _w(self, controller: str, name: str, value, why: str) -> None:
        d = self.dir(controller)
        if d is None:
            return
        k.write_file(os.path.join(d, name), str(value), why=why)

    def update(self, r: dict) -> None:
        mem = r.get("memory") or {}
        if "limit" in mem or "swap" in mem:
            self._memory(mem.get("limit"), mem.get("swap"))
        if mem.get("disableOOMKiller"):
            self._w("memory", "memory.oom_control", 1,
                    "--oom-kill-disable: tasks over the limit wait instead of being OOM-killed")
        if mem.get("reservation") is not None:
            self._w("memory", "memory.soft_limit_in_bytes", mem["reservation"],
                    "--memory-reservation: a soft limit, enforced when memory is short")
        if mem.get("swappiness") is not None and 0 <= mem["swappiness"] <= 100:  # (runc: -1 = unset)
            self._w("memory", "memory.swappiness", mem["swappiness"],
                    "--memory-swappiness: how eagerly this cgroup's anonymous pages are swapped")
        if mem.get("disableOOMKiller"):
            self._w("memory", "memory.oom_control", 1,
                    "--oom-kill-disable: tasks over the limit wait instead of being killed")
        cpu = r.get("cpu") or {}
        if cpu.get("shares"):
            self._w("cpu", "cpu.shares", cpu["shares"], "--cpu-shares: relative CPU weight under contention")
        if cpu.get("period"):
            self._w("cpu", "cpu.cfs_period_us", cpu["period"], "the CFS scheduling period")
        if cpu.get("quota") is not None:
            self._w("cpu", "cpu.cfs_quota_us", cpu["quota"] if cpu["quota"] > 0 else -1,
                    "--cpus/--cpu-quota: CPU time allowed per period")
        if cpu.get("cpus"):
            self._w("cpuset", "cpuset.cpus", cpu["cpus"], "--cpuset-cpus: the CPUs it may run on")
        if cpu.get("mems"):
            self._w("cpuset", "cpuset.mems", cpu["mems"], "--cpuset-mems: the memory nodes it may use")
        pids = r.get("pids") or {}
        if "limit" in pids:
            lim = pids["limit"]
            self._w("pids", "pids.max", "max" if lim is None or lim <= 0 else lim,
                    "--pids-limit: fork() fails with EAGAIN beyond this many tasks")
        bio = r.get("blockIO") or {}
        if bio.get("weight"):
            d = self.dir("blkio")
            for name in ("blkio.weight", "blkio.bfq.weight"):
                if d and os.path.exists(os.path.join(d, name)):
                    self._w("blkio", name, bio["weight"], "--blkio-weight: relative block IO weight")
                    break
        self._blkio_devices(bio)
        net = r.get("network") or {}
        if net.get("classID") is not None:
            self._need("net_cls", "network.classID")
            self._w("net_cls", "net_cls.classid", net["classID"], "network.classID: tags the container's packets")
        for prio in net.get("priorities") or []:
            self._need("net_prio", "network.priorities")
            self._w("net_prio", "net_prio.ifpriomap", f"{prio['name']} {prio['priority']}",
                    "network.priorities: the priority of the container's traffic on an interface")
        check_hugepage_limits(r.get("hugepageLimits"), self.dir("hugetlb") is not None)
        for lim in r.get("hugepageLimits") or []:
            self._w("hugetlb", f"hugetlb.{lim['pageSize']}.limit_in_bytes", lim["limit"],
                    "hugepageLimits: huge pages this container may use")

    def _need(self, controller: str, what: str) -> None:
        """A setting whose controller this host lacks is refused (runc: "container could not join
        or create cgroup"), never silently dropped."""
        if self.dir(controller) is None:
            raise CgroupError(f"cannot set {what}: the {controller} cgroup controller is not mounted on this host",
                              "Remove the setting, or mount the controller's v1 hierarchy.")

    def _blkio_devices(self, bio: dict) -> None:
        """Per-device weights and throttles (blkio.throttle.*, blkio[.bfq].weight_device). Leaf
        weights left with the CFQ scheduler: where blkio.leaf_weight is missing they are refused, as
        runc fails on them."""
        d = self.dir("blkio")
        leaf = bio.get("leafWeight") or any(w.get("leafWeight") for w in bio.get("weightDevice") or [])
        if leaf:
            if not d or not os.path.exists(os.path.join(d, "blkio.leaf_weight")):
                raise CgroupError("cannot set blockIO leafWeight: this kernel has no blkio.leaf_weight "
                                  "(leaf weights went with the CFQ I/O scheduler)", "Remove leafWeight.")
            if bio.get("leafWeight"):
                self._w("blkio", "blkio.leaf_weight", bio["leafWeight"], "blockIO.leafWeight")
        for wd in bio.get("weightDevice") or []:
            dev = f"{wd['major']}:{wd['minor']}"
            if wd.get("weight"):
                name = next((n for n in ("blkio.weight_device", "blkio.bfq.weight_device")
                             if d and os.path.exists(os.path.join(d, n))), None)
                if name is None:
                    raise CgroupError("cannot set blockIO weightDevice: no blkio.weight_device on this kernel")
                self._w("blkio", name, f"{dev} {wd['weight']}", "--blkio-weight-device: weight on one device")
            if wd.get("leafWeight"):
                self._w("blkio", "blkio.leaf_weight_device", f"{dev} {wd['leafWeight']}", "blockIO leaf weight")
        for key, name in THROTTLES.items():
            for t in bio.get(key) or []:
                self._need("blkio", f"blockIO.{key}")
                self._w("blkio", f"blkio.throttle.{name}", f"{t['major']}:{t['minor']} {t['rate']}",
                        f"--device-{name.replace('_device', '').replace('_', '-')}: a throttle on one device")

    def _memory(self, limit, swap) -> None:
        d = self.dir("memory")
        if d is None:
            return
        has_swap = os.path.exists(os.path.join(d, "memory.memsw.limit_in_bytes"))
        lim = limit if limit and limit > 0 else -1
        sw = swap if swap and swap > 0 else -1
        cur_memsw = read_int(os.path.join(d, "memory.memsw.limit_in_bytes"), -1) if has_swap else -1
        why = "-m/--memory: the OOM killer acts in this cgroup beyond it"
        # memsw must stay >= limit at every moment: raise memsw first when growing
        if has_swap and swap is not None and (sw == -1 or (cur_memsw != -1 and sw > cur_memsw)):
            self._w("memory", "memory.memsw.limit_in_bytes", sw, "--memory-swap: memory plus swap")
            swap = None
        if limit is not None:
            self._w("memory", "memory.limit_in_bytes", lim, why)
        if has_swap and swap is not None:
            self._w("memory", "memory.memsw.limit_in_bytes", sw, "--memory-swap: memory plus swap")

    def _devices(self, rules: list[dict]) -> None:
        for rule in rules:
            self._device_rule(rule)

    def _device_rule(self, rule: dict) -> None:
        kind = rule.get("type", "a")
        major = "*" if rule.get("major") in (None, -1) else rule["major"]
        minor = "*" if rule.get("minor") in (None, -1) else rule["minor"]
        spec = f"{kind} {major}:{minor} {rule.get('access', 'rwm')}"
        if kind == "a" and major == "*" and minor == "*":
            spec = "a"
        self._w("devices", "devices.allow" if rule.get("allow") else "devices.deny", spec,
                "the device cgroup: which device nodes the container may open")

    def oom_killed(self) -> bool:
        d = self.dir("memory")
        return bool(d and keyed(os.path.join(d, "memory.oom_control")).get("oom_kill", 0) > 0)

    def stats(self) -> dict:
        mem = self.dir("memory") or ""
        mstat = keyed(os.path.join(mem, "memory.stat"))
        usage = read_int(os.path.join(mem, "memory.usage_in_bytes"))
        limit = read_int(os.path.join(mem, "memory.limit_in_bytes"))
        if limit >= 1 << 62:
            limit = 0
        blk = {"read": 0, "write": 0}
        for line in read(os.path.join(self.dir("blkio") or "", "blkio.throttle.io_service_bytes")).splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[1] in ("Read", "Write"):
                blk[parts[1].lower()] += int(parts[2])
        return {
            "cpu_usage_ns": read_int(os.path.join(self.dir("cpuacct") or "", "cpuacct.usage")),
            "memory_usage": usage,
            "memory_cache": mstat.get("total_inactive_file", mstat.get("inactive_file", 0)),
            "memory_limit": limit,
            "pids_current": read_int(os.path.join(self.dir("pids") or "", "pids.current")),
            "pids_limit": read_int(os.path.join(self.dir("pids") or "", "pids.max")),
            "blkio_read": blk["read"], "blkio_write": blk["write"],
        }

    def limits(self) -> dict:
        cpu = self.dir("cpu") or ""
        return {"memory": read_int(os.path.join(self.dir("memory") or "", "memory.limit_in_bytes")),
                "cpu_quota": read_int(os.path.join(cpu, "cpu.cfs_quota_us")),
                "cpu_period": read_int(os.path.join(cpu, "cpu.cfs_period_us")),
                "pids": read_int(os.path.join(self.dir("pids") or "", "pids.max"))}

    def freeze(self) -> None:
        self._w("freezer", "freezer.state", "FROZEN", "pause: the freezer stops every task of the container")

    def thaw(self) -> None:
        d = self.dir("freezer")
        if d and read(os.path.join(d, "freezer.state")) not in ("", "THAWED"):
            self._w("freezer", "freezer.state", "THAWED", "resume the container's tasks")

    def frozen(self) -> bool:
        d = self.dir("freezer")
        return bool(d) and read(os.path.join(d, "freezer.state")) == "FROZEN"
