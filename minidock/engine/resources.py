"""Docker's resource flags -> the OCI spec's linux.resources (and Docker's HostConfig fields).

    -m 64m --memory-swap 128m --memory-reservation 32m --cpus 0.5 --cpu-shares 512
    --cpu-period 100000 --cpu-quota 50000 --cpuset-cpus 0-1 --cpuset-mems 0 --pids-limit 20
    --blkio-weight 500

Values and messages follow Docker's (docker/cli opts and the daemon's verifyContainerResources).
"""

from __future__ import annotations

import os
import re

from minidock.errors import InvalidArgument

_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}
MIN_MEMORY = 6 * 1024 * 1024


def ram_in_bytes(value: str | int | None, flag: str = "--memory") -> int | None:
    """Docker's RAMInBytes: 64m, 1g, 1.5GiB, 1024 (bytes); -1 means unlimited."""
    if value is None or value == "":
        return None
    if isinstance(value, int):
        return value
    v = str(value).strip()
    if v == "-1":
        return -1
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([kmgtpb]?)(?:i?b)?", v.lower())
    if not m:
        raise InvalidArgument(f"invalid argument {value!r} for \"{flag}\" flag: invalid size: {value!r}",
                              "Use a number with an optional unit: b, k, m, g (e.g. 64m, 1.5g).")
    return int(float(m.group(1)) * _UNITS[m.group(2)])


def host_cpus() -> set[int]:
    try:
        return set(os.sched_getaffinity(0))
    except OSError:
        return set(range(os.cpu_count() or 1))


def _cpuset(value: str | None, what: str) -> str | None:
    if not value:
        return None
    from minidock.runtime.cgroups import parse_cpuset

    try:
        wanted = parse_cpuset(value)
    except ValueError:
        raise InvalidArgument(f"Invalid value {value} for {what}") from None
    if what == "cpuset-cpus":
        avail = host_cpus()
        if not wanted <= avail:
            have = ",".join(str(c) for c in sorted(avail))
            raise InvalidArgument(f"Requested CPUs are not available - requested {value}, available: {have}")
    return value


def parse_flags(memory=None, memory_swap=None, memory_reservation=None, cpus=None, cpu_shares=None,
                cpu_period=None, cpu_quota=None, cpuset_cpus=None, cpuset_mems=None, pids_limit=None,
                blkio_weight=None, current: dict | None = None) -> dict:
    """Validate the flags -> Docker's HostConfig fields (only the ones given)."""
    hc: dict = {}
    cur = current or {}
    mem = ram_in_bytes(memory, "--memory")
    swap = ram_in_bytes(memory_swap, "--memory-swap")
    resv = ram_in_bytes(memory_reservation, "--memory-reservation")
    if mem is not None:
        if 0 < mem < MIN_MEMORY:
            raise InvalidArgument("Minimum memory limit allowed is 6MB")
        hc["Memory"] = max(mem, 0)
    if swap is not None:
        eff_mem = hc.get("Memory", cur.get("Memory", 0))
        if swap > 0 and not eff_mem:
            raise InvalidArgument("You should always set the Memory limit when using Memoryswap limit, see usage")
        if swap > 0 and swap < eff_mem:
            raise InvalidArgument("Minimum memoryswap limit should be larger than memory limit, see usage")
        hc["MemorySwap"] = swap
    if resv is not None:
        if 0 < resv < MIN_MEMORY:
            raise InvalidArgument("Minimum memory reservation allowed is 6MB")
        eff_mem = hc.get("Memory", cur.get("Memory", 0))
        if eff_mem and resv > eff_mem:
            raise InvalidArgument("Minimum memory limit can not be less than memory reservation limit, see usage")
        hc["MemoryReservation"] = resv
    if cpus is not None:
        try:
            n = float(cpus)
        except ValueError:
            raise InvalidArgument(f"invalid argument {cpus!r} for \"--cpus\" flag: failed to parse "
                                  f"{cpus!r} as a decimal number") from None
        ncpu = len(host_cpus())
        if n != 0 and not 0.01 <= n <= ncpu:
            raise InvalidArgument(f"Range of CPUs is from 0.01 to {ncpu}.00, as there are only {ncpu} CPUs available")
        if cpu_period or cpu_quota:
            raise InvalidArgument("Conflicting options: Nano CPUs and CPU Period cannot both be set"
                                  if cpu_period else
                                  "Conflicting options: Nano CPUs and CPU Quota cannot both be set")
        hc["NanoCpus"] = int(round(n * 1e9))
    if cpu_shares is not None:
        if cpu_shares < 0:
            raise InvalidArgument("shares: invalid argument: must be a positive number")
        hc["CpuShares"] = cpu_shares
    if cpu_period is not None:
        if cpu_period and not 1000 <= cpu_period <= 1000000:
            raise InvalidArgument("CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s "
                                  "(i.e. 1000000)")
        hc["CpuPeriod"] = cpu_period
    if cpu_quota is not None:
        if 0 < cpu_quota < 1000:
            raise InvalidArgument("CPU cfs quota can not be less than 1ms (i.e. 1000)")
        hc["CpuQuota"] = cpu_quota
    if cpuset_cpus is not None:
        hc["CpusetCpus"] = _cpuset(cpuset_cpus, "cpuset-cpus") or ""
    if cpuset_mems is not None:
        hc["CpusetMems"] = _cpuset(cpuset_mems, "cpuset-mems") or ""
    if pids_limit is not None:
        hc["PidsLimit"] = pids_limit if pids_limit > 0 else 0
    if blkio_weight is not None:
        if blkio_weight and not 10 <= blkio_weight <= 1000:
            raise InvalidArgument("Range of blkio weight is from 10 to 1000")
        hc["BlkioWeight"] = blkio_weight
    return hc


def to_oci(hc: dict) -> dict:
    """HostConfig resource fields -> OCI linux.resources (as runc's libcontainer converts them)."""
    r: dict = {}
    mem: dict = {}
    if "Memory" in hc:
        mem["limit"] = hc["Memory"] or -1
        # Docker: with a memory limit and no --memory-swap, swap may equal the memory (total 2x)
        if hc["Memory"] and not hc.get("MemorySwap"):
            mem["swap"] = hc["Memory"] * 2
    if "MemorySwap" in hc and hc["MemorySwap"]:
        mem["swap"] = hc["MemorySwap"]
    if "MemoryReservation" in hc:
        mem["reservation"] = hc["MemoryReservation"]
    if mem:
        r["memory"] = mem
    cpu: dict = {}
    if hc.get("NanoCpus"):
        cpu["period"] = 100000
        cpu["quota"] = hc["NanoCpus"] * 100000 // 1_000_000_000
    elif "NanoCpus" in hc:
        cpu["quota"] = -1
    if hc.get("CpuShares"):
        cpu["shares"] = hc["CpuShares"]
    if hc.get("CpuPeriod"):
        cpu["period"] = hc["CpuPeriod"]
    if "CpuQuota" in hc:
        cpu["quota"] = hc["CpuQuota"] or -1
    if hc.get("CpusetCpus"):
        cpu["cpus"] = hc["CpusetCpus"]
    if hc.get("CpusetMems"):
        cpu["mems"] = hc["CpusetMems"]
    if cpu:
        r["cpu"] = cpu
    if "PidsLimit" in hc:
        r["pids"] = {"limit": hc["PidsLimit"] or -1}
    if hc.get("BlkioWeight"):
        r["blockIO"] = {"weight": hc["BlkioWeight"]}
    return r


def resources_from_flags(**flags) -> dict:
    return to_oci(parse_flags(**flags))


def host_config_fields(**flags) -> dict:
    return parse_flags(**flags)


# (HostConfig fields, controller needed, Docker's warning when the kernel lacks it)
_NEEDS = (
    (("Memory", "MemoryReservation"), "memory", "Your kernel does not support memory limit capabilities or the "
     "cgroup is not mounted. Limitation discarded."),
    (("MemorySwap",), "swap", "Your kernel does not support swap limit capabilities or the cgroup is not "
     "mounted. Memory limited without swap."),
    (("NanoCpus", "CpuPeriod", "CpuQuota"), "cpu", "Your kernel does not support CPU CFS scheduler. "
     "CPU cfs period/quota discarded."),
    (("CpuShares",), "cpu", "Your kernel does not support CPU shares or the cgroup is not mounted. "
     "Shares discarded."),
    (("CpusetCpus", "CpusetMems"), "cpuset", "Your kernel does not support cpuset or the cgroup is not "
     "mounted. Cpuset discarded."),
    (("PidsLimit",), "pids", "Your kernel does not support PIDs limit capabilities or the cgroup is not "
     "mounted. PIDs limit discarded."),
)


def _has_knob(root: str, names: tuple[str, ...]) -> bool:
    """BFQ's weight files exist only in non-root cgroups: look at the root and its children."""
    dirs = [root]
    try:
        dirs += [e.path for e in os.scandir(root) if e.is_dir()][:8]
    except OSError:
        pass
    return any(os.path.exists(os.path.join(d, n)) for d in dirs for n in names)


def warnings(hc: dict) -> list[str]:
    """Docker prints these and carries on (the kernel lacks the knob: it would do nothing)."""
    from minidock.runtime.cgroups import cgroup_version, controllers, mounts

    try:
        have = controllers()
        version = cgroup_version()
    except Exception:  # noqa: BLE001 - no cgroups at all: the runtime says so when it starts
        return []
    out = [msg for fields, ctrl, msg in _NEEDS
           if any(hc.get(f) and hc.get(f) != -1 for f in fields) and ctrl not in have
           and not (ctrl == "swap" and version == 2)]  # v2: memory.swap.max is checked per cgroup
    if hc.get("BlkioWeight"):
        if version == 1:
            d = mounts()["v1"].get("blkio")
            ok = bool(d) and _has_knob(d, ("blkio.weight", "blkio.bfq.weight"))
        else:
            ok = "io" in have
        if not ok:
            out.append("Your kernel does not support Block I/O weight or the cgroup is not mounted. "
                       "Weight discarded.")
    return out
