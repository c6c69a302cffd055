"""The OCI runtime spec (config.json): defaults as Docker sets them, and small helpers.

The runtime takes nothing but a bundle: a directory with config.json and a root filesystem. The
engine builds the spec from an image config and the `run` flags (minidock/engine/bundle.py);
other engines (podman, containerd) hand us their own.
"""

from __future__ import annotations

import os

from minidock.errors import InvalidArgument
from minidock.kernel.constants import CAPABILITIES  # noqa: F401 (re-exported: ocispec.CAPABILITIES)
from minidock.runtime.defaults import DEFAULT_MASKED_PATHS, DEFAULT_READONLY_PATHS  # noqa: F401 (re-exported)
from minidock.util import fsutil, jsonfast

OCI_VERSION = "1.2.0"

CAP_NUMBERS = {name: i for i, name in enumerate(CAPABILITIES)}

# Docker's default set (moby oci/caps/defaults.go): CapEff 00000000a80425fb
DEFAULT_CAPS = [
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
]

DEFAULT_ENV_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

RLIMITS = {
    "RLIMIT_CPU": 0, "RLIMIT_FSIZE": 1, "RLIMIT_DATA": 2, "RLIMIT_STACK": 3, "RLIMIT_CORE": 4,
    "RLIMIT_RSS": 5, "RLIMIT_NPROC": 6, "RLIMIT_NOFILE": 7, "RLIMIT_MEMLOCK": 8, "RLIMIT_AS": 9,
    "RLIMIT_LOCKS": 10, "RLIMIT_SIGPENDING": 11, "RLIMIT_MSGQUEUE": 12, "RLIMIT_NICE": 13,
    "RLIMIT_RTPRIO": 14, "RLIMIT_RTTIME": 15,
}


def cap_mask(names: list[str]) -> int:
    mask = 0
    for n in names:
        num = CAP_NUMBERS.get(n.upper() if n.upper().startswith("CAP_") else "CAP_" + n.upper())
        if num is None:
            continue  # unknown to this kernel table: runc warns and skips too
        mask |= 1 << num
    return mask


def normalize_cap(name: str) -> str:
    """Docker accepts "net_admin", "NET_ADMIN" and "CAP_NET_ADMIN"; "ALL" is special."""
    n = name.strip().upper()
    if n == "ALL":
        return n
    if not n.startswith("CAP_"):
        n = "CAP_" + n
    if n not in CAP_NUMBERS:
        raise InvalidArgument(f"invalid capability: {name!r}",
                              "See capabilities(7) for the names, e.g. NET_ADMIN, SYS_PTRACE.")
    return n


# Docker's default device cgroup rules: nothing but the standard nodes (and mknod of any, which
# alone opens nothing). Without them, CAP_MKNOD would let a container make /dev/sda and read the
# host's disk. Enforced through the v1 devices controller; v2 needs an eBPF program (not yet).
DEFAULT_DEVICE_RULES = [
    {"allow": False, "access": "rwm"},
    {"allow": True, "type": "c", "access": "m"},
    {"allow": True, "type": "b", "access": "m"},
    *({"allow": True, "type": "c", "major": ma, "minor": mi, "access": "rwm"} for ma, mi in (
        (1, 3), (1, 5), (1, 7), (1, 8), (1, 9), (5, 0), (5, 1), (5, 2), (136, -1), (10, 200))),
]


def default_mounts() -> list[dict]:
    """The mounts every Docker container gets (before volumes and the etc files)."""
    return [
        {"destination": "/proc", "type": "proc", "source": "proc",
         "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs",
         "options": ["nosuid", "noexec", "nodev", "ro"]},
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
         "options": ["ro", "nosuid", "noexec", "nodev"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
         "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
         "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
    ]


def base_spec(args: list[str], rootfs: str = "rootfs", terminal: bool = False) -> dict:
    """A complete Linux spec with Docker's defaults (like `runc spec`, but Docker-flavoured)."""
    caps = list(DEFAULT_CAPS)
    return {
        "ociVersion": OCI_VERSION,
        "process": {
            "terminal": terminal,
            "user": {"uid": 0, "gid": 0},
            "args": args,
            "env": [DEFAULT_ENV_PATH, "TERM=xterm"],
            "cwd": "/",
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": True,
        },
        "root": {"path": rootfs, "readonly": False},
        "hostname": "minidock",
        "mounts": default_mounts(),
        "linux": {
            "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount", "cgroup")],
            "maskedPaths": list(DEFAULT_MASKED_PATHS),
            "readonlyPaths": list(DEFAULT_READONLY_PATHS),
            "rootfsPropagation": "private",
            "resources": {},
        },
    }


def load(bundle: str) -> dict:
    path = os.path.join(bundle, "config.json")
    try:
        with open(path) as f:
            spec = jsonfast.loads(f.read())
    except FileNotFoundError:
        raise InvalidArgument(f"bundle {bundle}: config.json not found",
                              "A bundle is a directory with config.json and a root filesystem.") from None
    except ValueError as e:
        raise InvalidArgument(f"{path}: not valid JSON: {e}") from None
    validate(spec, bundle)
    return spec


def validate(spec: dict, bundle: str = ".") -> None:
    proc = spec.get("process")
    if not isinstance(proc, dict) or not proc.get("args"):
        raise InvalidArgument("config.json: process.args must name the command to run")
    root = spec.get("root", {}).get("path")
    if not root:
        raise InvalidArgument("config.json: root.path is required")
    rootfs = root if os.path.isabs(root) else os.path.join(bundle, root)
    if not os.path.isdir(rootfs):
        raise InvalidArgument(f"rootfs {rootfs} does not exist or is not a directory")
    if not proc.get("cwd", "/").startswith("/"):
        raise InvalidArgument("config.json: process.cwd must be an absolute path")
    check_sysctls(spec.get("linux") or {})


IPC_SYSCTLS = frozenset({"kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall",
                         "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced"})


def check_sysctls(linux: dict) -> None:
    """runc's rule: a sysctl is written only if the container's own namespace holds it (IPC keys
    and fs.mqueue.* with a new IPC namespace, net.* with a new network namespace,
    kernel.domainname with a new UTS one). Anything else is the host's, and refused."""
    kinds = {n.get("type"): n.get("path") for n in linux.get("namespaces") or []}
    for key in linux.get("sysctl") or {}:
        if key in IPC_SYSCTLS or key.startswith("fs.mqueue."):
            if "ipc" in kinds:
                continue
            raise InvalidArgument(f'sysctl "{key}" is not allowed in the hosts ipc namespace')
        if key.startswith("net."):
            if "network" in kinds:
                continue
            raise InvalidArgument(f'sysctl "{key}" is not allowed in the hosts network namespace')
        if key == "kernel.domainname" and "uts" in kinds:
            continue
        if key == "kernel.hostname" and "uts" in kinds:
            raise InvalidArgument(f'sysctl "{key}" is not allowed as it conflicts with the OCI "hostname" field')
        raise InvalidArgument(f'sysctl "{key}" is not in a separate kernel namespace')


def rootfs_path(spec: dict, bundle: str) -> str:
    root = spec["root"]["path"]
    return os.path.realpath(root if os.path.isabs(root) else os.path.join(bundle, root))


def namespaces(spec: dict) -> list[dict]:
    return spec.get("linux", {}).get("namespaces", [])


def save(spec: dict, bundle: str) -> None:
    fsutil.atomic_write_json(os.path.join(bundle, "config.json"), spec, indent=2)
