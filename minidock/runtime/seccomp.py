"""Seccomp: the OCI `linux.seccomp` profile compiled to BPF by libseccomp (through ctypes).

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

import ctypes
import errno as _errno

from minidock import kernel as k
from minidock.errors import MinidockError

try:
    _lib = ctypes.CDLL("libseccomp.so.2", use_errno=True)
except OSError:
    _lib = None

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
FLTATR_CTL_NNP = 3


class ArgCmp(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int), ("datum_a", ctypes.c_uint64),
                ("datum_b", ctypes.c_uint64)]


def action(name: str, errno_ret: int | None = None) -> int:
    if name == "SCMP_ACT_ERRNO":
        return ACT_ERRNO | ((_errno.EPERM if errno_ret is None else errno_ret) & 0xFFFF)
    if name == "SCMP_ACT_TRACE":
        return ACT_TRACE | ((_errno.EPERM if errno_ret is None else errno_ret) & 0xFFFF)
    table = {"SCMP_ACT_KILL": ACT_KILL_THREAD, "SCMP_ACT_KILL_THREAD": ACT_KILL_THREAD,
             "SCMP_ACT_KILL_PROCESS": ACT_KILL_PROCESS, "SCMP_ACT_TRAP": ACT_TRAP,
             "SCMP_ACT_ALLOW": ACT_ALLOW, "SCMP_ACT_LOG": ACT_LOG, "SCMP_ACT_NOTIFY": ACT_NOTIFY}
    if name not in table:
        raise MinidockError(f"seccomp: unknown action {name!r}")
    return table[name]


def _setup():
    _lib.seccomp_init.restype = ctypes.c_void_p
    _lib.seccomp_init.argtypes = [ctypes.c_uint32]
    _lib.seccomp_arch_add.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
    _lib.seccomp_arch_resolve_name.restype = ctypes.c_uint32
    _lib.seccomp_arch_resolve_name.argtypes = [ctypes.c_char_p]
    _lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    _lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint,
                                            ctypes.POINTER(ArgCmp)]
    _lib.seccomp_attr_set.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32]
    _lib.seccomp_load.argtypes = [ctypes.c_void_p]
    _lib.seccomp_release.argtypes = [ctypes.c_void_p]


if _lib is not None:
    _setup()


def _rules(entry: dict, default: int) -> list[tuple[int, list[ArgCmp]]]:
    act = action(entry["action"], entry.get("errnoRet"))
    if act == default:
        return []
    args = entry.get("args") or []
    cmps = [ArgCmp(a["index"], CMP[a["op"]], a.get("value", 0), a.get("valueTwo", 0)) for a in args]
    indexes = [a["index"] for a in args]
    if len(set(indexes)) != len(indexes):  # libseccomp: one comparison per argument and rule
        return [(act, [c]) for c in cmps]
    return [(act, cmps)]


def load(profile: dict) -> None:
    """Compile and install the filter for this process (inherited by everything it execs)."""
    if _lib is None:
        raise MinidockError("the container asks for a seccomp profile, but libseccomp is not installed",
                            "apt-get install libseccomp2")
    default = action(profile.get("defaultAction", "SCMP_ACT_ALLOW"), profile.get("defaultErrnoRet"))
    ctx = _lib.seccomp_init(default)
    if not ctx:
        raise MinidockError("seccomp_init failed")
    try:
        _lib.seccomp_attr_set(ctx, FLTATR_CTL_NNP, 0)
        for arch in profile.get("architectures") or []:
            token = _lib.seccomp_arch_resolve_name(arch.removeprefix("SCMP_ARCH_").lower().encode())
            if token:
                _lib.seccomp_arch_add(ctx, token)  # -EEXIST for the native one: fine
        n_rules = 0
        for entry in profile.get("syscalls") or []:
            for name in entry.get("names") or ([entry["name"]] if entry.get("name") else []):
                nr = _lib.seccomp_syscall_resolve_name(name.encode())
                if nr < 0:
                    continue  # a syscall this kernel/libseccomp does not know
                for act, cmps in _rules(entry, default):
                    arr = (ArgCmp * len(cmps))(*cmps) if cmps else None
                    rc = _lib.seccomp_rule_add_array(ctx, act, nr, len(cmps), arr)
                    if rc == -_errno.EEXIST:
                        continue  # the same rule twice (profiles repeat some): already there
                    if rc < 0:
                        raise MinidockError(f"seccomp: cannot add the rule for {name}: {_errno.errorcode.get(-rc, rc)}")
                    n_rules += 1
        k.tracer.record(k.Step("seccomp", f"load a filter: default {profile.get('defaultAction')}, "
                               f"{n_rules} rules", "limit the system calls the container may make",
                               "(no shell equivalent: libseccomp compiles the profile to BPF, "
                               "seccomp(SECCOMP_SET_MODE_FILTER))"))
        rc = _lib.seccomp_load(ctx)
        if rc < 0:
            raise MinidockError(f"seccomp_load failed: {_errno.errorcode.get(-rc, rc)}")
    finally:
        _lib.seccomp_release(ctx)
