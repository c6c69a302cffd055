"""Privileges of the container process, applied last, just before exec.

The order matters (runc's and the kernel's rules, capabilities(7)):

1. rlimits, while we still have CAP_SYS_RESOURCE to raise them;
2. drop capabilities from the *bounding* set: needs CAP_SETPCAP, which we still have as root;
   from then on no exec (not even of a setuid binary) can regain them;
3. change groups, gid, then uid, with PR_SET_KEEPCAPS so the permitted set survives the uid change;
4. set the effective, permitted and inheritable sets with capset, then raise ambient ones;
5. no_new_privs, then seccomp (a non-privileged process may only load a filter with no_new_privs).
"""

from __future__ import annotations

from minidock import kernel as k
from minidock.runtime.spec import CAP_NUMBERS, CAPABILITIES, RLIMITS, cap_mask


def apply_rlimits(rlimits: list[dict]) -> None:
    for r in rlimits or []:
        num = RLIMITS.get(r["type"])
        if num is None:
            continue
        k.setrlimit(num, r["type"], int(r["soft"]), int(r["hard"]),
                    why="the spec's resource limit for the container's processes")


def drop_bounding(bounding: list[str]) -> None:
    keep = cap_mask(bounding)
    last = _last_cap()
    drop = [n for n in CAPABILITIES[: last + 1] if not keep & (1 << CAP_NUMBERS[n])]
    if drop:
        k.capbset_drop([CAP_NUMBERS[n] for n in drop], [n[4:] for n in drop],
                       why="capabilities outside the container's set can never be regained")


def _last_cap() -> int:
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            return int(f.read())
    except OSError:
        return len(CAPABILITIES) - 1


def set_user(uid: int, gid: int, additional: list[int]) -> None:
    k.setgroups(sorted(set(additional)), why="supplementary groups of the container's user")
    if gid != 0:
        k.setresgid(gid, why="the container's group")
    if uid != 0:
        k.set_keepcaps(True)
        k.setresuid(uid, why="the container's user: root no more")
        k.set_keepcaps(False)


def set_capabilities(caps: dict) -> None:
    eff = cap_mask(caps.get("effective", []))
    perm = cap_mask(caps.get("permitted", []))
    inh = cap_mask(caps.get("inheritable", []))
    k.capset(eff, perm, inh, why="the container's capabilities: Docker's default set unless changed")
    amb = [n for n in caps.get("ambient", []) if n in CAP_NUMBERS]
    k.ambient_raise([CAP_NUMBERS[n] for n in amb], [n[4:] for n in amb],
                    why="ambient capabilities survive exec for a non-root user")


def apply_lsm(process: dict) -> None:
    """AppArmor profile / SELinux label for the next execve (runc's change-on-exec): the engine
    asks for them only where the host has that LSM enabled."""
    if process.get("apparmorProfile"):
        import os

        attr = "/proc/self/attr/apparmor/exec"
        k.write_file(attr if os.path.exists(attr) else "/proc/self/attr/exec",
                     f"exec {process['apparmorProfile']}", why="the container's AppArmor profile, from its execve on")
    if process.get("selinuxLabel"):
        k.write_file("/proc/self/attr/exec", process["selinuxLabel"],
                     why="the container's SELinux process label, from its execve on")


def apply(process: dict, seccomp: dict | None) -> None:
    """Steps 1-5 above, for the OCI `process` object."""
    apply_lsm(process)
    apply_rlimits(process.get("rlimits", []))
    early = bool(seccomp) and not process.get("noNewPrivileges")
    if early:
        # without no_new_privs only CAP_SYS_ADMIN may install a filter: do it while we still have
        # it (runc's order too; the profile must then allow the calls below, as real ones do)
        from minidock.runtime import seccomp as sc

        sc.load(seccomp)
    caps = process.get("capabilities")
    if caps is not None:
        drop_bounding(caps.get("bounding", []))
    user = process.get("user", {})
    set_user(int(user.get("uid", 0)), int(user.get("gid", 0)), user.get("additionalGids", []))
    if caps is not None:
        set_capabilities(caps)
    if process.get("noNewPrivileges"):
        k.set_no_new_privs(why="no exec can gain privileges (setuid bits and file caps are ignored)")
    if seccomp and not early:
        from minidock.runtime import seccomp as sc

        sc.load(seccomp)
