"""libseccomp through ctypes: compile a filter from rules and install it (used by LibcBackend).

The library is opened once, before pivot_root (the host's /usr/lib is out of reach after it):
the init calls kernel.seccomp_prepare() while it still sees the host's filesystem. As runc does,
syscall names this kernel/libseccomp does not know are skipped (profiles list syscalls of newer
kernels) and a rule given twice is fine; no_new_privs is left to the spec (FLTATR_CTL_NNP off).
"""

from __future__ import annotations

import ctypes
import errno
import os

FLTATR_ACT_BADARCH = 2
FLTATR_CTL_NNP = 3
ACT_ALLOW = 0x7FFF0000
ACT_ERRNO = 0x00050000
NATIVE_LAST = 511  # x86_64: 512-547 are x32 compat numbers; no native syscall lives above yet


class ArgCmp(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int), ("datum_a", ctypes.c_uint64),
                ("datum_b", ctypes.c_uint64)]


def open_library():
    """The libseccomp handle, or None where it is not installed."""
    try:
        lib = ctypes.CDLL("libseccomp.so.2", use_errno=True)
    except OSError:
        return None
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_arch_add.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
    lib.seccomp_arch_resolve_name.restype = ctypes.c_uint32
    lib.seccomp_arch_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint,
                                           ctypes.POINTER(ArgCmp)]
    lib.seccomp_attr_set.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32]
    lib.seccomp_load.argtypes = [ctypes.c_void_p]
    lib.seccomp_release.argtypes = [ctypes.c_void_p]
    return lib


def load(lib, default_action: int, architectures: list[str],
         rules: list[tuple[str, int, list[tuple[int, int, int, int]]]], enosys_newer: bool = False,
         install=None) -> int:
    """Build the filter and seccomp_load() it; OSError names the failing step's errno.
    enosys_newer: then a second filter (see _enosys_stub). install(ctx) -> rc replaces
    seccomp_load (export_bpf writes the program instead of loading it)."""
    if lib is None:
        raise OSError(errno.ENOSYS, "libseccomp is not installed (apt-get install libseccomp2)")
    install = install or lib.seccomp_load
    ctx = lib.seccomp_init(default_action)
    if not ctx:
        raise OSError(errno.EINVAL, "seccomp_init failed")
    try:
        lib.seccomp_attr_set(ctx, FLTATR_CTL_NNP, 0)
        for arch in architectures:
            token = lib.seccomp_arch_resolve_name(arch.removeprefix("SCMP_ARCH_").lower().encode())
            if token:
                lib.seccomp_arch_add(ctx, token)  # -EEXIST for the native one: fine
        added = 0
        highest = 0
        for name, action, cmps in rules:
            nr = lib.seccomp_syscall_resolve_name(name.encode())
            if nr < 0:
                continue  # a syscall this kernel/libseccomp does not know
            highest = max(highest, nr)
            arr = (ArgCmp * len(cmps))(*(ArgCmp(*c) for c in cmps)) if cmps else None
            rc = lib.seccomp_rule_add_array(ctx, action, nr, len(cmps), arr)
            if rc == -errno.EEXIST:
                continue  # the same rule twice (profiles repeat some): already there
            if rc < 0:
                raise OSError(-rc, f"cannot add the rule for {name}: {os.strerror(-rc)}")
            added += 1
        rc = install(ctx)
        if rc < 0:
            raise OSError(-rc, f"seccomp_load: {os.strerror(-rc)}")
    finally:
        lib.seccomp_release(ctx)
    if enosys_newer and highest and default_action != ACT_ALLOW:
        _enosys_stub(lib, highest, install)
    return added


def export_bpf(lib, default_action: int, architectures: list[str],
               rules: list[tuple[str, int, list[tuple[int, int, int, int]]]],
               enosys_newer: bool = False) -> list[bytes]:
    """The BPF programs load() would install, in installation order (for `minidock replay`, whose
    helper loads them with seccomp(2)); nothing is installed here."""
    import tempfile

    progs: list[bytes] = []

    def install(ctx) -> int:
        with tempfile.TemporaryFile() as f:
            rc = lib.seccomp_export_bpf(ctx, f.fileno())
            f.seek(0)
            progs.append(f.read())
        return rc

    lib.seccomp_export_bpf.argtypes = [ctypes.c_void_p, ctypes.c_int]
    load(lib, default_action, architectures, rules, enosys_newer, install=install)
    return progs


def _enosys_stub(lib, highest: int, install=None) -> None:
    """runc's rule: a syscall *newer* than every one the profile names fails with ENOSYS rather
    than the default EPERM, so that programs fall back to an older call. A second filter, native
    architecture only, default allow (other architectures too: the first filter decides for
    them); among equal actions the kernel takes the most recently installed filter's answer."""
    ctx = lib.seccomp_init(ACT_ALLOW)
    if not ctx:
        raise OSError(errno.EINVAL, "seccomp_init failed")
    try:
        lib.seccomp_attr_set(ctx, FLTATR_CTL_NNP, 0)
        lib.seccomp_attr_set(ctx, FLTATR_ACT_BADARCH, ACT_ALLOW)
        for nr in range(highest + 1, NATIVE_LAST + 1):
            lib.seccomp_rule_add_array(ctx, ACT_ERRNO | errno.ENOSYS, nr, 0, None)
        rc = (install or lib.seccomp_load)(ctx)
        if rc < 0:
            raise OSError(-rc, f"seccomp_load (ENOSYS filter): {os.strerror(-rc)}")
    finally:
        lib.seccomp_release(ctx)
