"""Seccomp: Docker's default profile (data: seccomp_default.json), Docker's profile format turned
into the OCI `linux.seccomp` object (:func:`to_oci`), and the OCI object compiled to BPF by
libseccomp (through the kernel layer, :func:`load`).

Docker's format adds to the OCI one an ``archMap`` (the native architecture and the ones its
binaries may also use: x86 and x32 on x86_64) and, per rule, ``includes``/``excludes`` by
architecture, by capability and by minimum kernel. As Docker does, a rule is kept only if the
container's *bounding* set has every capability it includes and none it excludes — so
``--cap-add SYS_ADMIN`` also opens unshare, mount, setns... and ``--cap-add SYS_PTRACE`` ptrace.
What no rule allows fails with EPERM (``defaultErrnoRet``); clone3 fails with ENOSYS so that
libcs fall back to clone, whose flags the profile can inspect.

Like runc (which Docker drives), syscalls *newer* than the newest one the profile names fail
with ENOSYS rather than EPERM, so that programs fall back to an older call instead of failing:
a second, native-only filter returns ENOSYS for numbers above the profile's highest (the kernel
picks, among equal actions, the most recently installed filter's answer).

    {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1, "architectures": ["SCMP_ARCH_X86_64"],
     "syscalls": [{"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
                  {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
                   "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]}]}

The library is opened when this module is imported — before pivot_root, after which the host's
/usr/lib is gone. As runc does, unknown syscall names are skipped (profiles list syscalls of
newer kernels), rules whose action equals the default are dropped (libseccomp refuses them), and
no_new_privs is left to the spec's `noNewPrivileges`.
"""

from __future__ import annotations

import errno as _errno
import os

from minidock import kernel as k
from minidock.errors import KernelError, MinidockError

# libseccomp is opened now, at import — the init imports this module before pivot_root, after
# which the host's /usr/lib is gone (the kernel layer keeps the handle)
_HAVE_LIB = k.seccomp_prepare()

ACT_KILL_PROCESS = 0x80000000
ACT_KILL_THREAD = 0x00000000
ACT_TRAP = 0x00030000
ACT_ERRNO = 0x00050000
ACT_TRACE = 0x7FF00000
ACT_LOG = 0x7FFC0000
ACT_ALLOW = 0x7FFF0000
ACT_NOTIFY = 0x7FC00000
CMP = {"SCMP_CMP_NE": 1, "SCMP_CMP_LT": 2, "SCMP_CMP_LE": 3, "SCMP_CMP_EQ": 4, "SCMP_CMP_GE": 5,
       "SCMP_CMP_GT": 6, "SCMP_CMP_MASKED_EQ": 7}


def action(name: str, errno_ret: int | None = None) -> int:
    if name == "SCMP_ACT_ERRNO":
        return ACT_ERRNO | ((_errno.EPERM if errno_ret is None else errno_ret) & 0xFFFF)
    if name == "SCMP_ACT_TRACE":
        return ACT_TRACE | ((_errno.EPERM if errno_ret is None else errno_ret) & 0xFFFF)
    if name not in _ACTIONS:
        raise MinidockError(f"seccomp: unknown action {name!r}")
    return _ACTIONS[name]


_ACTIONS = {"SCMP_ACT_KILL": ACT_KILL_THREAD, "SCMP_ACT_KILL_THREAD": ACT_KILL_THREAD,
            "SCMP_ACT_KILL_PROCESS": ACT_KILL_PROCESS, "SCMP_ACT_TRAP": ACT_TRAP,
            "SCMP_ACT_ALLOW": ACT_ALLOW, "SCMP_ACT_LOG": ACT_LOG, "SCMP_ACT_NOTIFY": ACT_NOTIFY}
ACTIONS = sorted([*_ACTIONS, "SCMP_ACT_ERRNO", "SCMP_ACT_TRACE"])  # what action() knows (`features`)


def _rules(entry: dict, default: int) -> list[tuple[int, list[tuple[int, int, int, int]]]]:
    act = action(entry["action"], entry.get("errnoRet"))
    if act == default:
        return []  # (libseccomp refuses a rule whose action is the default)
    args = entry.get("args") or []
    cmps = [(a["index"], CMP[a["op"]], a.get("value", 0), a.get("valueTwo", 0)) for a in args]
    indexes = [a["index"] for a in args]
    if len(set(indexes)) != len(indexes):  # libseccomp: one comparison per argument and rule
        return [(act, [c]) for c in cmps]
    return [(act, cmps)]


def available() -> bool:
    """libseccomp is there and the kernel filters (a `Seccomp:` line in /proc/self/status)."""
    if not _HAVE_LIB:
        return False
    try:
        with open("/proc/self/status") as f:
            return any(line.startswith("Seccomp:") for line in f)
    except OSError:
        return False


# ---- Docker's profile format -> OCI --------------------------------------------------------------
_GO_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "armv6l": "arm", "i686": "386",
            "i386": "386", "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64",
            "mips64": "mips64", "loongarch64": "loong64"}
_SCMP_ARCH = {"amd64": "SCMP_ARCH_X86_64", "arm64": "SCMP_ARCH_AARCH64", "arm": "SCMP_ARCH_ARM",
              "386": "SCMP_ARCH_X86", "ppc64le": "SCMP_ARCH_PPC64LE", "s390x": "SCMP_ARCH_S390X",
              "riscv64": "SCMP_ARCH_RISCV64", "mips64": "SCMP_ARCH_MIPS64", "loong64": "SCMP_ARCH_LOONGARCH64"}


def go_arch() -> str:
    m = os.uname().machine  # (platform.machine(), without importing platform: ~1 ms of every run)
    return _GO_ARCH.get(m, m)


def _kernel() -> tuple[int, int]:
    try:
        major, minor = os.uname().release.split(".")[:2]  # (platform.release())
        return int(major), int("".join(c for c in minor if c.isdigit()) or 0)
    except ValueError:
        return (0, 0)


def default_profile() -> dict:
    """Docker's default profile (moby/profiles seccomp/default.json, see the file's comment)."""
    import json
    import os

    with open(os.path.join(os.path.dirname(__file__), "seccomp_default.json")) as f:
        return json.load(f)


def to_oci(profile: dict, bounding: list[str], arch: str | None = None,
           kernel: tuple[int, int] | None = None) -> dict:
    """Docker's profile format -> the OCI `linux.seccomp` object for a container whose bounding
    capability set is `bounding` (Docker's setupSeccomp, rule by rule). A profile already in the
    OCI shape (``architectures`` and no includes/excludes) passes through unchanged."""
    arch = arch or go_arch()
    kernel = kernel or _kernel()
    caps = set(bounding)
    if profile.get("archMap") and profile.get("architectures"):
        raise MinidockError("seccomp profile: 'architectures' and 'archMap' cannot both be given")
    out: dict = {"defaultAction": profile.get("defaultAction") or "SCMP_ACT_ERRNO"}
    if "defaultErrnoRet" in profile:
        out["defaultErrnoRet"] = profile["defaultErrnoRet"]
    native = _SCMP_ARCH.get(arch)
    if profile.get("archMap"):
        for a in profile["archMap"]:
            if a.get("architecture") == native:
                out["architectures"] = [native, *(a.get("subArchitectures") or [])]
    elif profile.get("architectures"):
        out["architectures"] = list(profile["architectures"])
    for key in ("flags", "listenerPath", "listenerMetadata"):
        if profile.get(key):
            out[key] = profile[key]
    rules = []
    for call in profile.get("syscalls") or []:
        if call.get("name") and call.get("names"):
            raise MinidockError("seccomp profile: a rule has both 'name' and 'names'")
        inc, exc = call.get("includes") or {}, call.get("excludes") or {}
        if exc.get("arches") and arch in exc["arches"]:
            continue
        if inc.get("arches") and arch not in inc["arches"]:
            continue
        if exc.get("caps") and caps & set(exc["caps"]):
            continue
        if inc.get("caps") and not set(inc["caps"]) <= caps:
            continue
        if inc.get("minKernel"):
            want = tuple(int(x) for x in str(inc["minKernel"]).split(".")[:2])
            if kernel < want:
                continue
        rule = {"names": list(call.get("names") or [call["name"]]), "action": call["action"]}
        for key in ("errnoRet", "args"):
            if call.get(key) is not None and call.get(key) != []:
                rule[key] = call[key]
        rules.append(rule)
    out["syscalls"] = rules
    return out


def load_profile_file(path: str) -> dict:
    """A `--security-opt seccomp=PROFILE.json` file (Docker's format or OCI's), checked now so
    that a bad file is a clear error at create time, not a failed start."""
    import json

    try:
        with open(path) as f:
            data = json.load(f)
    except OSError as e:
        raise MinidockError(f"opening seccomp profile ({path}) failed: {e.strerror}",
                            "Give the path of a JSON seccomp profile, or seccomp=unconfined.") from None
    except ValueError as e:
        raise MinidockError(f"decoding seccomp profile failed: {path}: {e}") from None
    if not isinstance(data, dict) or not isinstance(data.get("syscalls", []), list):
        raise MinidockError(f"decoding seccomp profile failed: {path}: not a seccomp profile object")
    try:
        action(data.get("defaultAction") or "SCMP_ACT_ERRNO")
        for call in data.get("syscalls") or []:
            action(call["action"])
            for a in call.get("args") or []:
                if a.get("op") not in CMP:
                    raise MinidockError(f"seccomp: unknown comparison {a.get('op')!r}")
    except (KeyError, TypeError, AttributeError):
        raise MinidockError(f"decoding seccomp profile failed: {path}: a rule without an action") from None
    return data


def compile_rules(profile: dict) -> tuple[int, list]:
    """(default action, [(syscall, action, [(arg, op, a, b)])]) of an OCI seccomp object."""
    default = action(profile.get("defaultAction", "SCMP_ACT_ALLOW"), profile.get("defaultErrnoRet"))
    rules = []
    for entry in profile.get("syscalls") or []:
        for name in entry.get("names") or ([entry["name"]] if entry.get("name") else []):
            rules += [(name, act, cmps) for act, cmps in _rules(entry, default)]
    return default, rules


def load(profile: dict) -> None:
    """Compile and install the filter for this process (inherited by everything it execs)."""
    if not _HAVE_LIB:
        raise MinidockError("the container asks for a seccomp profile, but libseccomp is not installed",
                            "apt-get install libseccomp2")
    default, rules = compile_rules(profile)
    try:
        k.seccomp_load(default, profile.get("architectures") or [], rules,
                       detail=f"default {profile.get('defaultAction')}, {len(rules)} rules; syscalls newer "
                              "than the profile: ENOSYS", enosys_newer=True,
                       why="limit the system calls the container may make")
    except KernelError as e:
        raise MinidockError(f"cannot load the seccomp profile: {e}") from None
