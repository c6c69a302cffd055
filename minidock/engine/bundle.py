"""From an image and `run` flags to an OCI bundle: the container's root filesystem and config.json.

The rootfs is an overlay mount in the container's directory: the image's layers (read-only,
shared) below, the container's own upper dir on top. It is mounted when the container starts and
unmounted when it stops, each journaled first so a crash leaves nothing behind that
`system prune` cannot find.
"""

from __future__ import annotations

import os
import resource

from minidock import kernel as k
from minidock.engine import secopts
from minidock.errors import InvalidArgument, MinidockError
from minidock.runtime import rootfs as rfs
from minidock.runtime import spec as ocispec
from minidock.state import containers

INIT_PATH = "/sbin/docker-init"


# --- the overlay rootfs ---------------------------------------------------------------------------
def mount_rootfs(rec: dict, layer_dirs: list[str]) -> str:
    d = containers.cdir(rec["Id"])
    upper, work, merged = d / "upper", d / "work", d / "merged"
    remapped = bool((rec.get("HostConfig") or {}).get("IDMappings"))
    if remapped:
        from minidock.engine import userns
  # the mapped root must reach it: beside the records, not among them (userns.py)
        merged = userns.prepare_dirs(rec)
    for p in (upper, work, merged):
        p.mkdir(exist_ok=True)
    if os.path.ismount(merged):
        return str(merged)
    k.alias(str(merged), "ROOTFS")
    k.alias(str(d), "CTR")
    from minidock.image import snapshots

    j = containers.journal(rec["Id"])
    j.record("mount", target=str(merged))
    mounts = snapshots.prepare(layer_dirs, str(upper), str(work), str(merged))  # mounts as data
    if remapped:
        userns.mount_overlay(rec, mounts, str(upper), j)
        return str(merged)
    for m in mounts:
        k.mount(m["source"], m["destination"], m["type"], 0, ",".join(m["options"]),
                why="the container's root: image layers read-only below, its own writable layer on top")
    return str(merged)


def umount_rootfs(cid: str) -> list[str]:
    return containers.journal(cid).undo(kinds={"mount"})


# --- users and groups from the container's /etc -----------------------------------------------------
def _read_db(rootfs: str, name: str) -> list[list[str]]:
    try:
        with open(rfs.secure_join(rootfs, f"/etc/{name}")) as f:
            return [line.rstrip("\n").split(":") for line in f if line.strip() and not line.startswith("#")]
    except OSError:
        return []


def resolve_user(rootfs: str, spec_user: str, group_add: list[str] | None = None) -> dict:
    """Docker's -u rules: user[:group], names looked up in the container's /etc/passwd, /etc/group.

    Returns {"uid", "gid", "additionalGids", "home"}.
    """
    user, _, group = (spec_user or "").partition(":")
    passwd, groups = _read_db(rootfs, "passwd"), _read_db(rootfs, "group")
    uid, gid, home, uname = 0, 0, "/", "root"
    if user:
        entry = next((e for e in passwd if len(e) >= 7 and (e[0] == user or (user.isdigit() and e[2] == user))),
                     None)
        if entry:
            uname, uid, gid, home = entry[0], int(entry[2]), int(entry[3]), entry[5]
        elif user.isdigit():
            uid, uname = int(user), ""
        else:
            raise MinidockError(f"unable to find user {user}: no matching entries in passwd file")
    else:
        entry = next((e for e in passwd if len(e) >= 7 and e[2] == "0"), None)
        if entry:
            home = entry[5]
    if group:
        gentry = next((e for e in groups if len(e) >= 3 and (e[0] == group or (group.isdigit() and e[2] == group))),
                      None)
        if gentry:
            gid = int(gentry[2])
        elif group.isdigit():
            gid = int(group)
        else:
            raise MinidockError(f"unable to find group {group}: no matching entries in group file")
    extra = []
    if uname and not group:
        extra = [int(e[2]) for e in groups if len(e) >= 4 and uname in e[3].split(",")]
    for g in group_add or []:
        if g.isdigit():
            extra.append(int(g))
        else:
            gentry = next((e for e in groups if e and e[0] == g), None)
            if not gentry:
                raise MinidockError(f"unable to find group {g}: no matching entries in group file")
            extra.append(int(gentry[2]))
    extra = sorted({g for g in extra if g != gid} | ({gid} if extra else set()))
    return {"uid": uid, "gid": gid, "additionalGids": extra, "home": home}


# --- the spec ---------------------------------------------------------------------------------------
def merge_env(*envs: list[str]) -> list[str]:
    out: dict[str, str] = {}
    for env in envs:
        for e in env or []:
            key, sep, value = e.partition("=")
            if not sep:
                continue
            out[key] = value
    return [f"{k_}={v}" for k_, v in out.items()]


def exec_process_spec(rec: dict, base: dict, command: list[str], *, tty: bool = False,
                      env: list[str] | None = None, user: str | None = None,
                      workdir: str | None = None, privileged: bool = False) -> dict:
    """The OCI process of a command run in a running container (`exec`, health probes): the
    container's process (``base``) with the caller's args, terminal, env, cwd, user, caps."""
    process = dict(base)
    process["args"] = command
    process["terminal"] = tty
    process["env"] = merge_env(base.get("env", []), env or [])
    if workdir:
        process["cwd"] = workdir
    if user is not None:
        u = resolve_user(f"/proc/{rec['State']['Pid']}/root", user)
        process["user"] = {"uid": u["uid"], "gid": u["gid"], "additionalGids": u["additionalGids"]}
    if privileged:
        caps = list(ocispec.CAPABILITIES)
        process["capabilities"] = {"bounding": caps, "effective": caps, "permitted": caps}
    return process


def host_rlimits(ulimits: list[dict] | None) -> list[dict]:
    """Docker's rlimits, never above the host's hard limits (setrlimit would fail with EPERM)."""
    wanted = {"RLIMIT_NOFILE": (1048576, 1048576)}
    for u in ulimits or []:
        wanted["RLIMIT_" + u["Name"].upper()] = (u["Soft"], u["Hard"])
    out = []
    for name, (soft, hard) in wanted.items():
        num = ocispec.RLIMITS.get(name)
        if num is None:
            raise InvalidArgument(f"invalid ulimit type: {name[7:].lower()}")
        _, host_hard = resource.getrlimit(num)
        if host_hard != resource.RLIM_INFINITY:
            hard = min(hard, host_hard) if hard >= 0 else host_hard
            soft = min(soft, hard) if soft >= 0 else hard
        out.append({"type": name, "soft": soft, "hard": hard})
    return out


def command(rec: dict) -> list[str]:
    cfg = rec["Config"]
    entry = cfg.get("Entrypoint")
    cmd = cfg.get("Cmd")
    args = list(entry or []) + list(cmd or [])
    if not args:
        raise MinidockError("no command specified",
                            "The image has no CMD or ENTRYPOINT: give the command after the image name.")
    return args


def _bounding() -> list[str]:
    """The capabilities this process may still grant (a host's root can lack some: this
    development VM's root has no CAP_SYS_RESOURCE, and capset would fail with EPERM)."""
    try:
        with open("/proc/self/status") as f:
            bnd = next(int(line.split()[1], 16) for line in f if line.startswith("CapBnd:"))
    except (OSError, StopIteration):
        return list(ocispec.CAPABILITIES)
    return [c for i, c in enumerate(ocispec.CAPABILITIES) if bnd >> i & 1]


def capabilities(host_config: dict) -> list[str]:
    if host_config.get("Privileged"):
        return _bounding()
    caps = list(ocispec.DEFAULT_CAPS)
    adds = [ocispec.normalize_cap(c) for c in host_config.get("CapAdd") or []]
    drops = [ocispec.normalize_cap(c) for c in host_config.get("CapDrop") or []]
    if "ALL" in drops:
        caps = []
    caps = [c for c in caps if c not in drops]
    if "ALL" in adds:
        caps = _bounding()
    else:
        caps += [c for c in adds if c not in caps]
    return caps


def init_binary() -> str:
    for p in ("/usr/bin/docker-init", "/usr/bin/tini-static", "/usr/sbin/tini-static", "/sbin/tini-static"):
        if os.path.exists(p):
            return p
    import shutil

    found = shutil.which("tini-static")
    if found:
        return found
    raise MinidockError("--init needs a static init binary, and none was found",
                        "Install one: apt-get install tini (it ships /usr/bin/tini-static).")


def _seccomp_ok() -> bool:
    """The default profile needs seccomp in the kernel and libseccomp (Docker, too, runs without
    its default profile where the kernel lacks seccomp; an explicit profile then fails clearly)."""
    from minidock.runtime import seccomp

    return seccomp.available()


def build_spec(rec: dict, rootfs: str, mounts_extra: list[dict], netns_path: str | None) -> dict:
    cfg, hc = rec["Config"], rec["HostConfig"]
    user = resolve_user(rootfs, cfg.get("User", ""), hc.get("GroupAdd"))
    args = command(rec)
    env = merge_env(["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                    [f"HOSTNAME={cfg['Hostname']}"], ["TERM=xterm"] if cfg.get("Tty") else [],
                    cfg.get("Env"))
    if not any(e.startswith("HOME=") for e in env):
        env.append(f"HOME={user['home'] or '/'}")
    spec = ocispec.base_spec(args, rootfs=rootfs, terminal=bool(cfg.get("Tty")))
    caps = capabilities(hc)
    sec = secopts.parse(hc.get("SecurityOpt") or [])
    nnp = sec.no_new_privileges if sec.no_new_privileges is not None else not hc.get("Privileged")
    cwd = cfg.get("WorkingDir") or "/"
    spec["process"].update({
        "user": {"uid": user["uid"], "gid": user["gid"], "additionalGids": user["additionalGids"]},
        "env": env,
        "cwd": cwd,
        "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
        "rlimits": host_rlimits(hc.get("Ulimits")),
        "noNewPrivileges": nnp,
    })
    if sec.apparmor and sec.apparmor != "unconfined":
        spec["process"]["apparmorProfile"] = sec.apparmor
    label = secopts.selinux_label(sec)
    if label:
        spec["process"]["selinuxLabel"] = label
    if hc.get("OomScoreAdj"):
        spec["process"]["oomScoreAdj"] = hc["OomScoreAdj"]
    spec["root"] = {"path": rootfs, "readonly": bool(hc.get("ReadonlyRootfs"))}
    spec["hostname"] = cfg["Hostname"]
    if cfg.get("Domainname"):
        spec["domainname"] = cfg["Domainname"]
    d = containers.cdir(rec["Id"])
    etc = [{"destination": f"/etc/{n}", "type": "bind", "source": str(d / n),
            "options": ["rbind", "rprivate"]} for n in ("resolv.conf", "hostname", "hosts")]
    spec["mounts"] = ocispec.default_mounts() + etc + mounts_extra
    if hc.get("Init"):
        spec["mounts"].append({"destination": INIT_PATH, "type": "bind", "source": init_binary(),
                               "options": ["bind", "ro"]})
        spec["process"]["args"] = [INIT_PATH, "--", *args]
    linux = spec["linux"]
    mode = hc.get("NetworkMode") or "none"
    nss = [{"type": t} for t in ("pid", "ipc", "uts", "mount", "cgroup")]
    if mode == "host":
        nss = [n for n in nss if n["type"] != "uts"]
        spec.pop("hostname", None)
    elif netns_path:
        nss.append({"type": "network", "path": netns_path})
    else:
        nss.append({"type": "network"})
    linux["namespaces"] = nss
    if hc.get("Privileged") or sec.systempaths_unconfined:
        linux["maskedPaths"], linux["readonlyPaths"] = [], []
    if not hc.get("Privileged") and sec.seccomp != "unconfined" and (sec.seccomp_profile() or _seccomp_ok()):
        # Docker's default profile (or the one given), for this container's capabilities;
        # --privileged and seccomp=unconfined run without a filter, as in Docker
        from minidock.runtime import seccomp

        linux["seccomp"] = seccomp.to_oci(sec.seccomp_profile() or seccomp.default_profile(), caps)
    linux["cgroupsPath"] = f"{hc['CgroupParent']}/{rec['Id']}"
    linux["resources"] = dict(hc.get("Resources") or {})
    if not hc.get("Privileged"):
        linux["resources"]["devices"] = ocispec.DEFAULT_DEVICE_RULES
    if hc.get("Sysctls"):
        linux["sysctl"] = dict(hc["Sysctls"])
    from minidock.engine import hostopts

    hostopts.apply(spec, rec)  # --pid/--ipc/--uts/--cgroupns, devices, --shm-size, --oom-kill-disable
    if hc.get("IDMappings"):
        from minidock.engine import userns

        userns.apply(spec, rec)  # --uidmap/--gidmap or the remap default: a user namespace
    spec["annotations"] = {"org.minidock.name": containers.name_of(rec)}
    return spec


def ensure_workdir(rootfs: str, cwd: str, owner: tuple[int, int] | None = None) -> None:
    """Docker creates a missing working directory (owned by root, mode 755; by the mapped root
    in a user namespace)."""
    target = rfs.secure_join(rootfs, cwd)
    if not os.path.isdir(target):
        try:
            made = []
            p = target
            while not os.path.exists(p) and len(p) > len(rootfs):
                made.append(p)
                p = os.path.dirname(p)
            os.makedirs(target, mode=0o755, exist_ok=True)
            for p in made if owner else []:
                os.lchown(p, *owner)
        except OSError as e:
            raise MinidockError(f"cannot create working directory {cwd}: {e.strerror}") from None


def write_bundle(rec: dict, spec: dict) -> str:
    bundle = containers.cdir(rec["Id"]) / "bundle"
    bundle.mkdir(exist_ok=True)
    ocispec.save(spec, str(bundle))
    return str(bundle)
