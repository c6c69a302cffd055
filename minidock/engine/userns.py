"""User namespaces: `--userns`, `--uidmap`/`--gidmap` (podman's flags) and a remap default (Docker's
`--userns-remap`, here MINIDOCK_USERNS_REMAP: off unless set).

    --uidmap CONTAINER_ID:HOST_ID:AMOUNT   repeatable; without --gidmap the GIDs are mapped alike
    --gidmap CONTAINER_ID:HOST_ID:AMOUNT   (and the other way round)
    --subuidname NAME / --subgidname NAME  podman's: NAME's ranges in /etc/subuid, /etc/subgid
                         (one after the other from ID 0; one name given stands for both)
    --userns host        no user namespace, even where a remap default is set (Docker's opt-out)
    --userns private     a user namespace with the maps given, else the remap default
    --userns auto[:size=N]  podman's: N IDs (65536) from the subordinate ranges of the user
                         `containers` (/etc/subuid, /etc/subgid) that no container here uses
                         (taken under remap/.auto.lock while the record is written)
    --userns keep-id|nomap   refused: podman's rootless-only modes
    MINIDOCK_USERNS_REMAP=default | USER[:GROUP] | C:H:N[,C:H:N...]
                         every container without --userns/--uidmap gets a user namespace: the
                         subordinate ranges of `dockremap` (Docker's default user) or USER, or that
                         map; the maps are kept in the record, so a later start is the same

Root in such a container is an unprivileged host uid (100000 with 0:100000:65536). The records stay
root's (containers/ 0700); what that uid must reach is set up beside them, as Docker's remap root
`/var/lib/docker/<uid>.<gid>/` is, but per container:

    remap/              0711 root        crossable, not listable
    remap/<id>/         0710 root:<gid>  only the container's root group (and root) cross it
    remap/<id>/rootfs                    the overlay mount point; its root dir is the upper dir, owned
                                         by the mapped root
    remap/<id>/m/<n>                     bind sources staged for the runtime (volumes, -v binds,
                                         hostname, hosts, resolv.conf): it binds them from inside the
                                         user namespace, where containers/ and volumes/ cannot be
                                         crossed; unmounted when the container stops

The image's layers stay shared and root-owned: the overlay gets them through an idmapped mount
(mount_setattr(MOUNT_ATTR_IDMAP)), so a file owned by 0 in the layer is owned by the mapped root in
the container (and on the host, seen through the overlay); the idmapped mount is detached as soon as
the overlay holds its own private clone of it. Where the kernel or the filesystem has no idmapped
mounts, the container gets a chowned copy of the merged image instead (containers/<id>/shifted,
podman's fallback; MINIDOCK_USERNS_IDMAP=0 forces it). Writes land in the upper dir owned by mapped
IDs. A new, empty named volume is given to the mapped root (podman's NeedsChown).
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from minidock import paths
from minidock.errors import InvalidArgument, MinidockError
from minidock.util.idmap import MAX_ID, IDMap, parse_map

REMAP_ENV = "MINIDOCK_USERNS_REMAP"
SUBUID, SUBGID = "/etc/subuid", "/etc/subgid"
AUTO_USER = "containers"  # podman's user for --userns=auto
DEFAULT_USER = "dockremap"  # Docker's user for --userns-remap=default


# --- maps ----------------------------------------------------------------------------------------
def check_maps(maps: list[tuple[int, int, int]], what: str) -> None:
    """The kernel's rules, said before anything is made: ranges inside uint32, no overlap inside or
    outside, at most 340 lines, and the container's root mapped."""
    if len(maps) > 340:
        raise InvalidArgument(f"too many {what} mappings: {len(maps)} (the kernel takes at most 340)")
    for i, (c, h, n) in enumerate(maps):
        if n == 0 or c + n - 1 > MAX_ID - 1 or h + n - 1 > MAX_ID - 1:
            raise InvalidArgument(f"invalid {what} mapping {c}:{h}:{n}: the range must hold at least one ID "
                                  f"and end below {MAX_ID}")
        for c2, h2, n2 in maps[:i]:
            if c < c2 + n2 and c2 < c + n or h < h2 + n2 and h2 < h + n:
                raise InvalidArgument(f"the specified UID and/or GID mapping {c}:{h}:{n} conflicts with other "
                                      "mappings: invalid mappings specified",
                                      "Container ranges must not overlap, nor host ranges.")
    if not any(c == 0 for c, _h, _n in maps):
        raise InvalidArgument(f"container ID 0 cannot be mapped to a host ID (no {what} mapping starts at 0)",
                              "The container's root must be mapped: start one range at 0, e.g. 0:100000:65536.")


def _text(maps) -> list[str]:
    return [f"{c}:{h}:{n}" for c, h, n in maps]


def _subids(path: str, names: set[str]) -> list[tuple[int, int]]:
    out = []
    try:
        with open(path) as f:
            for line in f:
                parts = line.strip().split(":")
                if len(parts) == 3 and parts[0] in names and parts[1].isdigit() and parts[2].isdigit():
                    out.append((int(parts[1]), int(parts[2])))
    except OSError:
        pass
    return out


def _names(user: str, db: str) -> set[str]:
    """A user (group) and its numeric ID: /etc/subuid may name either."""
    out = {user}
    try:
        with open(db) as f:
            for line in f:
                p = line.split(":")
                if len(p) > 2 and (p[0] == user or p[2] == user):
                    out |= {p[0], p[2]}
    except OSError:
        pass
    return out


def _from_subids(user: str, group: str, flag: bool = False) -> tuple[list, list]:
    """Docker's NewIdentityMapping: the user's ranges one after the other from container ID 0
    (``flag``: asked for by --subuidname/--subgidname, not by MINIDOCK_USERNS_REMAP)."""
    maps = []
    for path, who, db in ((SUBUID, user, "/etc/passwd"), (SUBGID, group, "/etc/group")):
        ranges = _subids(path, _names(who, db))
        if not ranges:
            hint = (f"Add one: echo {who}:100000:65536 >> {path} (a range no other user has)"
                    + (f", or set {REMAP_ENV}=0:100000:65536" if who == DEFAULT_USER else ""))
            asked = (f"--sub{'uid' if path == SUBUID else 'gid'}name {who}" if flag
                     else f"{REMAP_ENV}={os.environ.get(REMAP_ENV, '')}")
            raise MinidockError(f"no subordinate ranges found for {who!r} in {path} ({asked})", hint)
        start, m = 0, []
        for h, n in ranges:
            m.append((start, h, n))
            start += n
        maps.append(m)
    return maps[0], maps[1]


def remap_default() -> tuple[list, list] | None:
    """The maps MINIDOCK_USERNS_REMAP asks for (None: off, Docker's default)."""
    v = os.environ.get(REMAP_ENV, "").strip()
    if not v:
        return None
    if v.count(":") == 2 or "," in v:
        m = parse_map(v, "--uidmap")
        check_maps(m, "UID")
        return m, m
    user, _, group = v.partition(":")
    if user == "default":
        user = DEFAULT_USER
    return _from_subids(user, group or user)


def _auto(size: int) -> tuple[list, list]:
    """podman's --userns=auto: `size` IDs of `containers`' ranges that no container here maps."""
    from minidock.state import containers

    used = []
    for cid in containers.all_ids():
        try:
            rec = containers.load(cid)
        except Exception:  # noqa: BLE001 - a broken record holds no IDs
            continue
        for key in ("UidMap", "GidMap"):
            for _c, h, n in (parse_map(t, "--uidmap")[0] for t in record_maps(rec).get(key, [])):
                used.append((h, n))
    out = []
    for path in (SUBUID, SUBGID):
        ranges = _subids(path, _names(AUTO_USER, "/etc/passwd" if path == SUBUID else "/etc/group"))
        found = None
        for start, n in ranges:
            h = start
            while h + size <= start + n and found is None:
                clash = next((u for u in used if h < u[0] + u[1] and u[0] < h + size), None)
                if clash is None:
                    found = h
                else:
                    h = clash[0] + clash[1]
        if found is None:
            raise MinidockError("creating container storage: could not find enough available IDs",
                                f"--userns=auto takes {size} IDs from the subordinate ranges of the user "
                                f"{AUTO_USER!r} ({path}); add one, e.g. echo {AUTO_USER}:2147483647:2147483648 "
                                f">> {path}, or give --uidmap")
        out.append([(0, found, size)])
    return out[0], out[1]


def resolve(userns: str | None, uidmap: list[str], gidmap: list[str], *, privileged: bool,
            network: str, pid: str, subuidname: str | None = None, subgidname: str | None = None) -> dict:
    """HostConfig's UsernsMode and IDMappings ({"UidMap": [...], "GidMap": [...]}, podman's inspect
    shape; absent: no user namespace), from the flags and the remap default. Refuses what Docker or
    podman refuse, with their messages."""
    mode = (userns or "").strip()
    kind, _, opts = mode.partition(":")
    if mode in ("keep-id", "nomap") or kind == "keep-id":
        raise InvalidArgument(f"{kind} is only supported in rootless mode",
                              "Map the IDs yourself with --uidmap/--gidmap, e.g. --uidmap 0:100000:65536.")
    if kind == "ns":
        raise InvalidArgument(f"--userns {mode}: joining an existing user namespace is not supported",
                              "Give the maps with --uidmap/--gidmap instead.")
    if kind not in ("", "host", "private", "auto") or (opts and kind != "auto"):
        raise InvalidArgument(f"--userns: invalid USER mode {mode!r}",
                              "Use host, private, auto[:size=N], or give --uidmap/--gidmap.")
    if (uidmap or gidmap or subuidname or subgidname) and kind in ("host", "auto"):
        raise InvalidArgument("--userns and --uidmap/--gidmap/--subuidname/--subgidname are mutually exclusive")
    if (subuidname or subgidname) and (uidmap or gidmap):
        raise InvalidArgument("--uidmap/--gidmap and --subuidname/--subgidname are mutually exclusive")
    uids = [m for t in uidmap for m in parse_map(t, "--uidmap")]
    gids = [m for t in gidmap for m in parse_map(t, "--gidmap")]
    if kind == "host":
        return {"UsernsMode": "host"}
    if uids or gids:
        uids, gids = uids or gids, gids or uids
        check_maps(uids, "UID")
        check_maps(gids, "GID")
    elif subuidname or subgidname:  # podman's: one name stands for both
        uids, gids = _from_subids(subuidname or subgidname, subgidname or subuidname, flag=True)
        check_maps(uids, "UID")
        check_maps(gids, "GID")
    elif kind == "auto":
        size = 65536
        if opts:
            key, _, val = opts.partition("=")
            if key != "size" or not val.isdigit() or not 0 < int(val) <= MAX_ID:
                raise InvalidArgument(f"--userns {mode}: unknown option {opts!r}", "Use auto or auto:size=N.")
            size = int(val)
        uids, gids = _auto(size)
    else:
        default = remap_default()
        if default is None:
            if kind == "private":
                raise InvalidArgument("must provide at least one UID or GID mapping to configure a user namespace",
                                      f"Give --uidmap 0:100000:65536, or set {REMAP_ENV}.")
            return {"UsernsMode": ""}
        uids, gids = default
    if privileged:
        raise InvalidArgument("privileged mode is incompatible with user namespaces.  You must run the "
                              "container in the host namespace when running privileged mode",
                              "Add --userns host (no user namespace) or drop --privileged.")
    if network == "host":
        raise InvalidArgument("cannot share the host's network namespace when user namespaces are enabled",
                              "Add --userns host, or use another network.")
    if pid == "host":
        raise InvalidArgument("cannot share the host PID namespace when user namespaces are enabled",
                              "Add --userns host, or drop --pid host.")
    return {"UsernsMode": kind if kind == "auto" else "",
            "IDMappings": {"UidMap": _text(uids), "GidMap": _text(gids)}}


def auto_allocation(host_config: dict):
    """For --userns=auto: a context in which the range is taken again under a lock and the record
    is written (create_container makes the record inside it), so two concurrent creates never get
    the same IDs. For any other mode: a context that does nothing."""
    import contextlib

    if host_config.get("UsernsMode") != "auto":
        return contextlib.nullcontext()
    from minidock.util import fsutil

    @contextlib.contextmanager
    def held():
        os.makedirs(remap_root(), mode=paths.ROOT_MODE, exist_ok=True)
        with fsutil.flock(remap_root() / ".auto.lock"):
            size = parse_map(host_config["IDMappings"]["UidMap"][0])[0][2]
            uids, gids = _auto(size)
            host_config["IDMappings"] = {"UidMap": _text(uids), "GidMap": _text(gids)}
            yield

    return held()


# --- a container's maps ---------------------------------------------------------------------------
def record_maps(rec: dict) -> dict:
    return (rec.get("HostConfig") or {}).get("IDMappings") or {}


def oci_maps(rec: dict) -> tuple[list[dict], list[dict]] | None:
    """(uidMappings, gidMappings) in the OCI spec's shape, or None: no user namespace."""
    m = IDMap.of(rec)
    if m is None:
        return None
    return tuple([{"containerID": c, "hostID": h, "size": n} for c, h, n in maps] for maps in (m.uids, m.gids))


def root_ids(rec: dict) -> tuple[int, int] | None:
    """The host (uid, gid) of the container's root, or None: no user namespace."""
    m = IDMap.of(rec)
    return m.root() if m else None


def _proc_maps(maps: list[dict]) -> str:
    return "".join(f"{m['containerID']} {m['hostID']} {m['size']}\n" for m in maps)


def apply(spec: dict, rec: dict) -> None:
    """The user namespace and its maps in the OCI spec (the runtime writes them)."""
    maps = oci_maps(rec)
    if not maps:
        return
    linux = spec["linux"]
    linux["namespaces"] = [n for n in linux["namespaces"] if n["type"] != "user"] + [{"type": "user"}]
    linux["uidMappings"], linux["gidMappings"] = maps


# --- the state a remapped container's root must reach -----------------------------------------------
def remap_root() -> Path:
    return paths.root() / "remap"


def remap_dir(cid: str) -> Path:
    return remap_root() / cid


def merged_dir(rec: dict) -> Path:
    """Where the container's rootfs is mounted: remap/<id>/rootfs with a user namespace, else the
    container's own (private) directory."""
    if root_ids(rec):
        return remap_dir(rec["Id"]) / "rootfs"
    from minidock.state import containers

    return containers.cdir(rec["Id"]) / "merged"


def prepare_dirs(rec: dict) -> Path:
    """remap/ (0711) and remap/<id>/ (0710 root:<the container root's gid>); returns the rootfs
    mount point."""
    uid, gid = root_ids(rec)
    top = remap_root()
    try:
        os.mkdir(top, paths.ROOT_MODE)
    except FileExistsError:
        pass
    os.chmod(top, paths.ROOT_MODE)
    d = remap_dir(rec["Id"])
    try:
        os.mkdir(d, 0o700)
    except FileExistsError:
        pass
    from minidock import kernel as k

    k.chown(str(d), 0, gid, why="only the container's root group (and root) may cross it")
    os.chmod(d, 0o710)
    (d / "rootfs").mkdir(exist_ok=True)
    return d / "rootfs"


def remove_dirs(cid: str) -> None:
    paths.remove_tree(remap_dir(cid))


_NO_IDMAP = {errno.EINVAL, errno.EPERM, errno.ENOSYS, errno.EOPNOTSUPP}  # what a kernel or fs without it says
IDMAP_ENV = "MINIDOCK_USERNS_IDMAP"  # "0": always the chowned copy (the fallback, and its test)


def mount_overlay(rec: dict, mounts: list[dict], upper: str, journal) -> None:
    """Mount the overlay (the snapshot's mounts as data) with its lower layers idmapped: one
    idmapped bind of the layers' common parent, attached only while overlayfs takes its clones.
    Where the kernel or the filesystem has no idmapped mounts (overlayfs takes idmapped layers from
    Linux 5.19, tmpfs is idmappable from 6.3), a chowned copy of the image: podman's fallback."""
    from minidock import kernel as k
    from minidock.errors import KernelError

    uid, gid = root_ids(rec)
    k.chown(upper, uid, gid, why="the container's writable layer belongs to its (mapped) root")
    d = Path(upper).parent
    for m in mounts:
        opts = list(m["options"])
        lower_i = next(i for i, o in enumerate(opts) if o.startswith("lowerdir="))
        lowers = opts[lower_i][len("lowerdir="):].split(":")
        if os.environ.get(IDMAP_ENV, "1") != "0":
            try:
                _mount_idmapped_layers(rec, m, opts, lower_i, lowers, d, journal)
                continue
            except KernelError as e:
                if e.errno not in _NO_IDMAP:
                    raise
                k.note(f"no idmapped layers here ({e.message}): a chowned copy of the image instead")
        opts[lower_i] = "lowerdir=" + _shifted_copy(rec, lowers, d, journal)
        k.mount(m["source"], m["destination"], m["type"], 0, ",".join(opts),
                why="the container's root: a copy of the image owned by its root below, its writable layer on top")


def _mount_idmapped_layers(rec: dict, m: dict, opts: list[str], lower_i: int, lowers: list[str], d: Path,
                           journal) -> None:
    from minidock import kernel as k

    maps = oci_maps(rec)
    base = os.path.commonpath(lowers) if len(lowers) > 1 else os.path.dirname(lowers[0])
    view = d / "idmapped"
    view.mkdir(exist_ok=True)
    fd = k.userns_fd(_proc_maps(maps[0]), _proc_maps(maps[1]), why="the maps the image's layers are seen through")
    try:
        journal.record("mount", target=str(view))
        k.mount_idmapped(base, str(view), fd, maps=",".join(record_maps(rec)["UidMap"]),
                         why="the shared, root-owned image layers seen as owned by the container's root")
    finally:
        os.close(fd)
    try:
        opts = list(opts)
        opts[lower_i] = "lowerdir=" + ":".join(str(view / os.path.relpath(x, base)) for x in lowers)
        k.mount(m["source"], m["destination"], m["type"], 0, ",".join(opts),
                why="the container's root: idmapped image layers below, its own writable layer on top")
    finally:
        k.umount(str(view), k.MNT_DETACH, why="overlayfs holds its own clones of the layers")


def _shifted_copy(rec: dict, lowers: list[str], d: Path, journal) -> str:
    """containers/<id>/shifted: the image's files (the layers merged) with every owner moved into
    the container's range; made once per container, private like the rest of its directory."""
    from minidock import kernel as k
    from minidock.volumes.copy import copy_up_tree

    target, done = d / "shifted", d / "shifted.done"
    if done.exists():
        return str(target)
    paths.remove_tree(target)
    target.mkdir(mode=0o755)
    flat = None
    if len(lowers) > 1:  # overlayfs merges them (whiteouts applied); read-only without an upper dir
        flat = d / "flat"
        flat.mkdir(exist_ok=True)
        journal.record("mount", target=str(flat))
        k.mount("overlay", str(flat), "overlay", 0, "lowerdir=" + ":".join(lowers),
                why="the image's layers merged, to copy them for the user namespace")
    try:
        src = str(flat) if flat else lowers[0]
        st = os.lstat(src)
        os.chown(target, st.st_uid, st.st_gid)
        os.chmod(target, stat.S_IMODE(st.st_mode))
        copy_up_tree(src, str(target))
    finally:
        if flat:
            k.umount(str(flat), k.MNT_DETACH, why="copied")
    m = IDMap.of(rec)
    for dirpath, dirnames, filenames in os.walk(target):
        for name in [".", *dirnames, *filenames] if dirpath == str(target) else [*dirnames, *filenames]:
            p = os.path.normpath(os.path.join(dirpath, name))
            st = os.lstat(p)
            uid, gid = m.to_host(st.st_uid, st.st_gid)
            os.lchown(p, uid, gid)
            if not stat.S_ISLNK(st.st_mode) and st.st_mode & 0o6000:
                os.chmod(p, stat.S_IMODE(st.st_mode))  # (chown clears setuid/setgid)
    done.touch()
    return str(target)


def stage_mounts(rec: dict, spec: dict, journal) -> None:
    """Bind every bind mount's source under remap/<id>/m/ (reachable by the mapped root) and point
    the spec there; give new, empty, root-owned volumes and the container's hostname, hosts and
    resolv.conf to the mapped root."""
    from minidock import kernel as k

    uid, gid = root_ids(rec)
    for m in rec.get("Mounts") or []:
        if m.get("Type") == "volume" and m.get("Source"):
            try:
                st = os.stat(m["Source"])
                if (st.st_uid, st.st_gid) == (0, 0) and not os.listdir(m["Source"]):
                    k.chown(m["Source"], uid, gid, why="a new volume belongs to the container's (mapped) root")
            except OSError:
                pass
    from minidock.state import containers

    for name in ("hostname", "hosts", "resolv.conf"):  # the container's root may edit them (Docker's)
        path = containers.cdir(rec["Id"]) / name
        if path.exists():
            k.chown(str(path), uid, gid, why=f"/etc/{name} belongs to the container's (mapped) root")
    staged = remap_dir(rec["Id"]) / "m"
    staged.mkdir(exist_ok=True)
    os.chmod(staged, 0o711)
    for i, m in enumerate(spec.get("mounts") or []):
        if m.get("type") != "bind" and "bind" not in (m.get("options") or []) and \
                "rbind" not in (m.get("options") or []):
            continue
        src = m.get("source") or ""
        if not src.startswith("/"):
            continue
        target = staged / str(i)
        if os.path.isdir(src):
            target.mkdir(exist_ok=True)
        else:
            target.touch(exist_ok=True)
        journal.record("mount", target=str(target))
        k.mount(src, str(target), None, k.MS_BIND | k.MS_REC,
                why="staged where the container's mapped root can reach it: the runtime binds it from "
                    "inside the user namespace")
        m["source"] = str(target)
