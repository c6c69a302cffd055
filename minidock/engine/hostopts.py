"""run/create flags that choose what a container shares with the host or another container, and
the device and limit flags: validated as Docker validates them, then applied to the OCI spec.

    --pid host|container:X      no PID namespace, or X's       (HostConfig.PidMode)
    --ipc host|container:X|shareable|private|none              (IpcMode; joining needs a shareable donor)
    --uts host                  the host's hostname            (UTSMode)
    --cgroupns host|private     the host's cgroup namespace or a new one (CgroupnsMode)
    --device HOST[:CONTAINER[:rwm]], --device-cgroup-rule 'c 1:3 rwm', --privileged (every host
    device), --shm-size, --oom-kill-disable, --oom-score-adj, --ulimit, --sysctl (only the keys a
    container's own namespaces hold: the IPC ones, fs.mqueue.*, net.* with its own network, and
    kernel.domainname; anything else would be written on the host), --gpus (refused)
"""

from __future__ import annotations

import os
import re
import stat

from minidock.errors import Conflict, InvalidArgument, MinidockError
from minidock.state import containers

IPC_SYSCTLS = {"kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall",
               "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced"}
ULIMITS = ("core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice", "nofile", "nproc",
           "rss", "rtprio", "rttime", "sigpending", "stack")


# --- validation at create ---------------------------------------------------------------------
def check_mode(flag: str, value: str | None, allowed: tuple[str, ...], container_ok: bool) -> str:
    v = value or ""
    if v in allowed or (container_ok and v.startswith("container:") and len(v) > 10):
        return v
    what = {"--pid": "PID", "--uts": "UTS", "--cgroupns": "CGROUP", "--ipc": "IPC"}[flag]
    raise InvalidArgument(f"{flag}: invalid {what} mode")


def check_sysctls(sysctls: dict, host_config: dict) -> None:
    """Docker's allow-list, then runc's namespace rules (a key the container's namespaces do not
    hold is the host's: refused before anything is written)."""
    net = host_config.get("NetworkMode") or ""
    ipc = host_config.get("IpcMode") or ""
    uts = host_config.get("UTSMode") or ""
    for key, value in sysctls.items():
        allowed = key in IPC_SYSCTLS or key.startswith(("net.", "fs.mqueue.")) or key == "kernel.domainname"
        if not allowed:
            raise InvalidArgument(f"invalid argument \"{key}={value}\" for \"--sysctl\" flag: "
                                  f"sysctl '{key}={value}' is not allowed",
                                  "Only namespaced sysctls can be set for a container: kernel.msg*, "
                                  "kernel.sem, kernel.shm*, fs.mqueue.* and net.*.")
        if key.startswith("net.") and (net == "host" or net.startswith("container:")):
            raise InvalidArgument(f"sysctl \"{key}\" is not allowed in the hosts network namespace"
                                  if net == "host" else
                                  f"sysctl \"{key}\" cannot be set with --network {net}: it is that "
                                  "container's network namespace")
        if (key in IPC_SYSCTLS or key.startswith("fs.mqueue.")) and ipc == "host":
            raise InvalidArgument(f"sysctl \"{key}\" is not allowed in the hosts ipc namespace")
        if key == "kernel.domainname" and uts == "host":
            raise InvalidArgument(f"sysctl \"{key}\" is not allowed in the hosts uts namespace")


def parse_ulimits(items: list[str]) -> list[dict]:
    """--ulimit NAME=SOFT[:HARD] for every rlimit Docker knows; -1 for no limit."""
    out = []
    for u in items:
        name, sep, val = u.partition("=")
        if not sep or not val:
            raise InvalidArgument(f'invalid argument "{u}" for "--ulimit" flag: invalid ulimit argument: {u}')
        if name not in ULIMITS:
            raise InvalidArgument(f'invalid argument "{u}" for "--ulimit" flag: invalid ulimit type: {name}')
        soft, colon, hard = val.partition(":")
        try:
            s = _limit(soft)
            h = _limit(hard) if colon else s
        except ValueError:
            raise InvalidArgument(f'invalid argument "{u}" for "--ulimit" flag: '
                                  f"invalid ulimit argument: {u}") from None
        if h != -1 and (s == -1 or s > h):
            raise InvalidArgument(f'invalid argument "{u}" for "--ulimit" flag: ulimit soft limit must be '
                                  f"less than or equal to hard limit: {s} > {h}")
        out = [x for x in out if x["Name"] != name] + [{"Name": name, "Hard": h, "Soft": s}]
    return out


def _limit(text: str) -> int:
    v = int(text)  # go-units: integers only ("unlimited" is refused, -1 means no limit)
    if v < -1:
        raise ValueError(text)
    return v


def parse_size(text: str, flag: str) -> int:
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([bkmgtp]?)i?b?", text.strip().lower())
    if not m:
        raise InvalidArgument(f'invalid argument "{text}" for "{flag}" flag: invalid size: \'{text}\'')
    return int(float(m.group(1)) * 1024 ** "bkmgtp".index(m.group(2) or "b"))


def parse_device(spec: str) -> dict:
    """--device HOST[:CONTAINER][:PERMS] -> Docker's DeviceMapping."""
    parts = spec.split(":")
    perms = "rwm"
    if len(parts) > 1 and re.fullmatch(r"[rwm]{1,3}", parts[-1]) and len(set(parts[-1])) == len(parts[-1]):
        perms = parts.pop()
    if len(parts) > 2 or not parts[0]:
        raise InvalidArgument(f"invalid device specification: {spec}")
    host = parts[0]
    inner = parts[1] if len(parts) == 2 and parts[1] else host
    if not inner.startswith("/"):
        raise InvalidArgument(f"invalid device specification: {spec}")
    return {"PathOnHost": host, "PathInContainer": inner, "CgroupPermissions": perms}


def parse_cgroup_rule(rule: str) -> dict:
    m = re.fullmatch(r"([abc]) (\d+|\*):(\d+|\*) ([rwm]{1,3})", rule.strip())
    if not m:
        raise InvalidArgument(f'invalid argument "{rule}" for "--device-cgroup-rule" flag: '
                              f"invalid device cgroup format '{rule}'")
    t, major, minor, access = m.groups()
    return {"allow": True, "type": t, "major": None if major == "*" else int(major),
            "minor": None if minor == "*" else int(minor), "access": access}


def refuse_gpus(value: str | None) -> None:
    if value:
        raise MinidockError('could not select device driver "" with capabilities: [[gpu]]',
                            "minidock has no GPU support (no NVIDIA container toolkit or CDI devices): "
                            "pass the device nodes with --device instead, e.g. --device /dev/dri.")


def can_lower_oom_score() -> bool:
    """CAP_SYS_RESOURCE in our effective set (bit 24): needed to set a negative oom_score_adj."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("CapEff:"):
                    return bool(int(line.split()[1], 16) >> 24 & 1)
    except OSError:
        pass
    return False


def check_oom_score_adj(value: int) -> None:
    if not -1000 <= value <= 1000:
        raise InvalidArgument(f"Invalid value {value}, range for oom score adj is [-1000, 1000]")


# --- applying to the spec -------------------------------------------------------------------------
def _running_pid(ref: str, what: str) -> tuple[dict, int]:
    rec = containers.full(containers.resolve(ref))
    if not rec["State"].get("Running"):
        raise Conflict(f"cannot join {what} of a non running container: {ref}")
    return rec, rec["State"]["Pid"]


def _device_nodes(path: str) -> list[tuple[str, os.stat_result]]:
    try:
        st = os.stat(path)
    except OSError as e:
        raise MinidockError(f"error gathering device information while adding custom device \"{path}\": "
                            f"{e.strerror.lower()}") from None
    if stat.S_ISDIR(st.st_mode):
        out = []
        for dirpath, _dirs, files in os.walk(path):
            for f in files:
                p = os.path.join(dirpath, f)
                try:
                    s = os.stat(p)
                except OSError:
                    continue
                if stat.S_ISCHR(s.st_mode) or stat.S_ISBLK(s.st_mode):
                    out.append((p, s))
        return out
    if not (stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)):
        raise MinidockError(f"error gathering device information while adding custom device \"{path}\": "
                            "not a device node")
    return [(path, st)]


def _oci_device(host: str, inner: str, st: os.stat_result) -> dict:
    return {"path": inner, "type": "b" if stat.S_ISBLK(st.st_mode) else "c",
            "major": os.major(st.st_rdev), "minor": os.minor(st.st_rdev),
            "fileMode": stat.S_IMODE(st.st_mode), "uid": st.st_uid, "gid": st.st_gid}


# what Docker skips when --privileged copies the host's /dev
_SKIP_DEV = ("/dev/pts", "/dev/shm", "/dev/mqueue", "/dev/console", "/dev/ptmx", "/dev/fd", "/dev/core")


def host_devices() -> list[dict]:
    out = []
    for dirpath, dirs, files in os.walk("/dev"):
        dirs[:] = [d for d in dirs if os.path.join(dirpath, d) not in _SKIP_DEV]
        for f in files:
            p = os.path.join(dirpath, f)
            if p in _SKIP_DEV:
                continue
            try:
                st = os.lstat(p)
            except OSError:
                continue
            if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                out.append(_oci_device(p, p, st))
    return out


def apply(spec: dict, rec: dict) -> None:
    """The namespaces, devices, /dev/shm size and OOM settings this container's flags ask for."""
    hc = rec["HostConfig"]
    linux = spec["linux"]
    nss = linux["namespaces"]

    def replace(kind: str, path: str | None, drop: bool = False) -> None:
        nss[:] = [n for n in nss if n["type"] != kind]
        if not drop:
            nss.append({"type": kind, **({"path": path} if path else {})})

    pid_mode = hc.get("PidMode") or ""
    if pid_mode == "host":
        replace("pid", None, drop=True)
    elif pid_mode.startswith("container:"):
        _, pid = _running_pid(pid_mode[10:], "PID namespace")
        replace("pid", f"/proc/{pid}/ns/pid")
    ipc_mode = hc.get("IpcMode") or ""
    shm = next((m for m in spec["mounts"] if m["destination"] == "/dev/shm"), None)
    if ipc_mode == "host":
        replace("ipc", None, drop=True)
        if shm is not None:
            shm.update({"type": "bind", "source": "/dev/shm", "options": ["rbind", "nosuid", "noexec", "nodev"]})
    elif ipc_mode.startswith("container:"):
        donor, pid = _running_pid(ipc_mode[10:], "IPC namespace")
        if (donor["HostConfig"].get("IpcMode") or "private") not in ("shareable", "host"):
            raise Conflict(f"cannot join IPC of container {ipc_mode[10:]}: non-shareable IPC "
                           "(hint: use IpcMode:shareable for the donor container)")
        replace("ipc", f"/proc/{pid}/ns/ipc")  # SysV IPC and message queues are shared; /dev/shm is
        # the joiner's own tmpfs (Docker binds the donor's: a mount of another mount namespace
        # cannot be bound here without a host-side shm mount, which minidock does not make)
    elif ipc_mode == "none" and shm is not None:
        spec["mounts"].remove(shm)
    if hc.get("ShmSize") and shm is not None and shm.get("type") == "tmpfs":
        shm["options"] = [o for o in shm["options"] if not o.startswith("size=")] + \
            [f"size={hc['ShmSize'] // 1024}k"]
    if hc.get("UTSMode") == "host":
        replace("uts", None, drop=True)
        spec.pop("hostname", None)
        spec.pop("domainname", None)
    if hc.get("CgroupnsMode") == "host":
        replace("cgroup", None, drop=True)
    # devices
    devices = list(linux.get("devices") or [])
    rules = linux.setdefault("resources", {}).get("devices")
    if hc.get("Privileged"):
        have = {d["path"] for d in devices}
        devices += [d for d in host_devices() if d["path"] not in have]
    extra_rules = []
    for mapping in hc.get("Devices") or []:
        host, inner = mapping["PathOnHost"], mapping["PathInContainer"]
        for path, st in _device_nodes(host):
            target = inner if path == host else os.path.join(inner, os.path.relpath(path, host))
            dev = _oci_device(path, target, st)
            devices = [d for d in devices if d["path"] != target] + [dev]
            extra_rules.append({"allow": True, "type": dev["type"], "major": dev["major"],
                                "minor": dev["minor"], "access": mapping.get("CgroupPermissions") or "rwm"})
    extra_rules += [dict(r) for r in hc.get("DeviceCgroupRules") or []]
    if devices:
        linux["devices"] = devices
    if rules is not None and extra_rules:
        linux["resources"]["devices"] = list(rules) + extra_rules
    if hc.get("OomKillDisable"):
        linux["resources"].setdefault("memory", {})["disableOOMKiller"] = True


def write_cidfile(path: str, cid: str) -> None:
    """--cidfile: the new container's ID, refusing to overwrite (Docker's rule)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        raise InvalidArgument(f"Container ID file found, make sure the other container isn't running "
                              f"or delete {path}") from None
    except OSError as e:
        raise InvalidArgument(f"failed to create the container ID file: {e.strerror}") from None
    with os.fdopen(fd, "w") as f:
        f.write(cid)


def check_platform(platform: str | None, image_config: dict, ref: str) -> None:
    """--platform os/arch[/variant] against the local image (Docker 28's check)."""
    if not platform:
        return
    parts = platform.lower().split("/")
    if len(parts) < 2 or parts[0] != "linux":
        raise InvalidArgument(f'"{platform}": unknown operating system or architecture: invalid argument')
    want_arch = {"x86_64": "amd64", "x86-64": "amd64", "aarch64": "arm64"}.get(parts[1], parts[1])
    have_os = image_config.get("os") or "linux"
    have_arch = image_config.get("architecture") or want_arch
    variant = image_config.get("variant")
    have = f"{have_os}/{have_arch}" + (f"/{variant}" if variant else "")
    if have_os != parts[0] or have_arch != want_arch or (len(parts) > 2 and variant and variant != parts[2]):
        raise Conflict(f"image with reference {ref} was found but its platform ({have}) does not match "
                       f"the specified platform ({platform})")


# --- files the engine puts in every container (Docker's "init layer") ---------------------------
INIT_FILES = ("/etc/mtab", "/run/.containerenv")


def write_init_files(rootfs: str, rec: dict) -> None:
    """/etc/mtab -> /proc/mounts (as Docker's init layer makes it) where the image has none, and
    /run/.containerenv: minidock's marker that a process runs in a container (podman writes the
    same file; Docker's is /.dockerenv), with the engine, the container's name and ID and its
    image. Both are created through in-root descriptors: an image's symlinks cannot redirect them
    to the host. `diff` does not list them."""
    # (util.VERSION, not importlib.metadata: that import and its search of sys.path cost ~10 ms
    # per `run` and ~1 MiB in every container's monitor, which is the forked `run`)
    from minidock.util import VERSION as __version__
    from minidock.volumes.cp import Root

    root = Root(rootfs)
    owner = None
    if rec["HostConfig"].get("IDMappings"):  # what we make belongs to the container's (mapped) root
        from minidock.engine import userns

        owner = userns.root_ids(rec)
    try:
        etc = root.open("etc", os.O_PATH | os.O_DIRECTORY)
        try:
            try:
                os.stat("mtab", dir_fd=etc, follow_symlinks=False)
            except FileNotFoundError:
                os.symlink("/proc/mounts", "mtab", dir_fd=etc)
                if owner:
                    os.chown("mtab", *owner, dir_fd=etc, follow_symlinks=False)
        finally:
            os.close(etc)
    except OSError:
        pass  # an image without /etc (scratch): nothing to point from
    try:
        try:
            run = root.open("run", os.O_PATH | os.O_DIRECTORY)
        except FileNotFoundError:
            top = root.open("", os.O_PATH | os.O_DIRECTORY)
            try:
                os.mkdir("run", 0o755, dir_fd=top)
                if owner:
                    os.chown("run", *owner, dir_fd=top, follow_symlinks=False)
            finally:
                os.close(top)
            run = root.open("run", os.O_PATH | os.O_DIRECTORY)
        try:
            body = (f'engine="minidock-{__version__}"\nname="{containers.name_of(rec)}"\nid="{rec["Id"]}"\n'
                    f'image="{rec.get("ImageRef", "")}"\nimageid="{rec.get("Image", "").removeprefix("sha256:")}"\n'
                    f'rootless=0\n')
            try:
                os.unlink(".containerenv", dir_fd=run)
            except FileNotFoundError:
                pass
            fd = os.open(".containerenv", os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o444, dir_fd=run)
            try:
                os.write(fd, body.encode())
                if owner:
                    os.fchown(fd, *owner)
            finally:
                os.close(fd)
        finally:
            os.close(run)
    except OSError:
        pass
    finally:
        root.close()
