"""Volumes and the container's extra mounts: -v, --mount, --tmpfs, --volumes-from, image VOLUMEs.

    volumes/<name>/_data        the data, bind-mounted into containers
    volumes/<name>/meta.json    Docker's `volume inspect` record (+ whether it is anonymous)

Docker's rules, kept here:

* ``-v name:/path`` is a named volume (created on first use), ``-v /host:/path`` a bind mount
  (a missing host directory is created, as Docker does for -v; ``--mount type=bind`` refuses it),
  ``-v /path`` and an image's ``VOLUME /path`` are anonymous volumes (a random 64-hex name),
  removed by ``rm -v`` / ``run --rm``.
* A new, empty volume is filled with what the image has at its mount point (copy-up: ownership,
  modes and symlinks kept), unless ``volume-nocopy``.
* A volume used by any container (running or not) cannot be removed.
* Anonymous volumes are reused when the same container starts again.

Volumes are plain directories in our state root, so nothing here is a host resource to journal:
the OCI mounts we return are made by the runtime inside the container's own mount namespace and
vanish with it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re

from minidock import paths
from minidock.errors import Conflict, InvalidArgument, NotFound
from minidock.util import fsutil

_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
_PROPAGATION = ("private", "rprivate", "shared", "rshared", "slave", "rslave")


# --- the volume store -------------------------------------------------------------------------------
def vdir(name: str):
    """A volume's dir; the name is checked before it becomes a path (no `/`, no `..`)."""
    return paths.volumes() / check_name(name)


def check_name(name: str) -> str:
    if not _NAME.match(name):
        raise InvalidArgument(f'create {name}: "{name}" includes invalid characters for a local volume name, '
                              'only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host '
                              "directory, use absolute path")
    return name


def create(name: str | None = None, labels: dict | None = None, *, anonymous: bool = False,
           options: dict | None = None) -> tuple[dict, bool]:
    """(record, created): an existing volume of that name is returned as is (Docker's rule)."""
    from minidock.util import now

    if name is None:
        name, anonymous = os.urandom(32).hex(), True
    check_name(name)
    d = vdir(name)
    paths.volumes().mkdir(parents=True, exist_ok=True)
    try:
        d.mkdir(mode=0o701)
        created = True
    except FileExistsError:
        created = False
        meta = _meta(name)
        if meta:
            return meta, False
    (d / "_data").mkdir(mode=0o755, exist_ok=True)
    meta = {"CreatedAt": now(), "Driver": "local", "Labels": labels or {}, "Mountpoint": str(d / "_data"),
            "Name": name, "Options": options or {}, "Scope": "local"}
    if anonymous:
        meta["Labels"] = {**meta["Labels"], "com.docker.volume.anonymous": ""}
    fsutil.atomic_write_json(d / "meta.json", meta)
    return meta, created


def _meta(name: str) -> dict | None:
    try:
        return json.loads((vdir(name) / "meta.json").read_text())
    except (FileNotFoundError, NotADirectoryError, ValueError):
        return None


def is_anonymous(meta: dict) -> bool:
    return "com.docker.volume.anonymous" in (meta.get("Labels") or {})


def names() -> list[str]:
    d = paths.volumes()
    return sorted(n for n in os.listdir(d) if _NAME.match(n) and _meta(n)) if d.is_dir() else []


def inspect(name: str) -> dict:
    meta = _meta(name) if _NAME.match(name or "") else None
    if not meta:
        raise NotFound(f"get {name}: no such volume")
    return meta


def listing() -> list[dict]:
    return [m for m in (_meta(n) for n in names()) if m]


def users(name: str, exclude: str | None = None) -> list[str]:
    """IDs of the containers (any state) whose mounts or flags name this volume."""
    from minidock.state import containers

    out = []
    for cid in containers.all_ids():
        if cid == exclude:
            continue
        try:
            rec = containers.load(cid)
        except (NotFound, OSError, ValueError):
            continue
        if name in volume_names(rec):
            out.append(cid)
    return out


def volume_names(rec: dict) -> set[str]:
    hc = rec.get("HostConfig") or {}
    found = {m.get("Name") for m in rec.get("Mounts") or [] if m.get("Type") == "volume"}
    for b in hc.get("Binds") or []:
        src = b.split(":")[0]
        if ":" in b and not src.startswith("/"):
            found.add(src)
    found |= {m.get("Source") for m in hc.get("Mounts") or [] if m.get("Type") == "volume"}
    return {n for n in found if n}


def remove(name: str, force: bool = False) -> None:
    inspect(name)
    used = users(name)
    if used:
        raise Conflict(f"remove {name}: volume is in use - [{', '.join(used)}]")
    paths.remove_tree(vdir(name))


def prune(all_: bool = False) -> list[str]:
    """Unused anonymous volumes (Docker >= 23), or every unused volume with ``all_``."""
    from minidock.state import containers

    used: set[str] = set()
    for cid in containers.all_ids():
        with contextlib.suppress(NotFound, OSError, ValueError):
            used |= volume_names(containers.load(cid))
    removed = []
    for meta in listing():
        if meta["Name"] in used or not (all_ or is_anonymous(meta)):
            continue
        paths.remove_tree(vdir(meta["Name"]))
        removed.append(meta["Name"])
    return removed


def release(rec: dict, remove_anonymous: bool) -> list[str]:
    """On `rm`: with -v, the container's anonymous volumes go too (if nobody else uses them).
    -> the names of the volumes removed."""
    removed: list[str] = []
    if not remove_anonymous:
        return removed
    for m in rec.get("Mounts") or []:
        if m.get("Type") != "volume":
            continue
        meta = _meta(m.get("Name", ""))
        if meta and is_anonymous(meta) and not users(meta["Name"], exclude=rec["Id"]):
            paths.remove_tree(vdir(meta["Name"]))
            removed.append(meta["Name"])
    return removed


# --- parsing -v and friends into one list of mounts -------------------------------------------------
def parse_volume_flag(spec: str) -> dict:
    """-v SRC:DST[:OPTS] | -v DST -> a Docker Mount dict (Type, Source, Target, ReadOnly, ...)."""
    parts = spec.split(":")
    if len(parts) == 1:
        src, dst, opts = "", parts[0], ""
    elif len(parts) == 2:
        src, dst, opts = parts[0], parts[1], ""
    elif len(parts) == 3:
        src, dst, opts = parts
    else:
        raise InvalidArgument(f"invalid volume specification: '{spec}'")
    if not dst.startswith("/"):
        raise InvalidArgument(f"invalid volume specification: '{spec}': invalid mount config for type "
                              f"\"volume\": invalid mount path: '{dst}' mount path must be absolute")
    if not src and len(parts) > 1:
        raise InvalidArgument(f"invalid volume specification: '{spec}'")
    m = {"Type": "bind" if src.startswith("/") else "volume", "Source": src, "Target": dst,
         "ReadOnly": False, "Mode": opts, "CreateSource": True}
    for o in filter(None, opts.split(",")):
        if o in ("ro", "rw"):
            m["ReadOnly"] = o == "ro"
        elif o in _PROPAGATION:
            m["BindOptions"] = {"Propagation": o}
        elif o == "nocopy":
            m["VolumeOptions"] = {"NoCopy": True}
        elif o in ("z", "Z", "consistent", "cached", "delegated"):
            continue
        else:
            raise InvalidArgument(f"invalid mode: {o}")
    if m["Type"] == "volume" and src:
        check_name(src)
    return m


def _wanted_mounts(rec: dict) -> list[dict]:
    """Every mount the container asks for, as Docker Mount dicts, later ones winning per target."""
    from minidock.state import containers

    hc, cfg = rec["HostConfig"], rec["Config"]
    wanted: dict[str, dict] = {}
    for ref in hc.get("VolumesFrom") or []:
        name, _, mode = ref.partition(":")
        other = containers.load(containers.resolve(name))
        for m in other.get("Mounts") or []:
            if m.get("Type") == "tmpfs":
                continue
            ro = (not m.get("RW", True)) if mode not in ("ro", "rw") else mode == "ro"
            wanted[m["Destination"]] = {"Type": m["Type"], "Source": m.get("Name") or m["Source"],
                                        "Target": m["Destination"], "ReadOnly": ro,
                                        "VolumeOptions": {"NoCopy": True}}
    for spec in hc.get("Binds") or []:
        m = parse_volume_flag(spec)
        wanted[os.path.normpath(m["Target"])] = m
    for m in hc.get("Mounts") or []:
        wanted[os.path.normpath(m["Target"])] = dict(m)
    for target, opts in (hc.get("Tmpfs") or {}).items():
        wanted[os.path.normpath(target)] = {"Type": "tmpfs", "Target": target, "Options": opts}
    for target in cfg.get("Volumes") or {}:
        wanted.setdefault(os.path.normpath(target), {"Type": "volume", "Source": "", "Target": target})
    return sorted(wanted.values(), key=lambda m: os.path.normpath(m["Target"]).count("/"))


def _shown(m: dict, target: str, source: str = "", name: str = "") -> dict:
    """Docker's `Mounts` entry (inspect) of one wanted mount."""
    if m["Type"] == "tmpfs":
        return {"Type": "tmpfs", "Source": "", "Destination": target, "Mode": "", "RW": True, "Propagation": ""}
    ro = bool(m.get("ReadOnly"))
    if m["Type"] == "bind":
        prop = (m.get("BindOptions") or {}).get("Propagation") or "rprivate"
        return {"Type": "bind", "Source": source, "Destination": target, "Mode": m.get("Mode", ""),
                "RW": not ro, "Propagation": prop}
    return {"Type": "volume", "Name": name, "Source": source, "Destination": target, "Driver": "local",
            "Mode": m.get("Mode", "z") or "z", "RW": not ro, "Propagation": ""}


def create_for_container(rec: dict) -> list[str]:
    """Docker makes a container's volumes when the container is created, not at its first start:
    named ones that do not exist yet, anonymous ones under fresh names (`volume ls` shows them
    after `create`, and `inspect` shows the container's Mounts). Records ``rec["Mounts"]``, whose
    names resolve_mounts reuses at every start. -> the names of the volumes made."""
    made, shown = [], []
    for m in _wanted_mounts(rec):
        target = os.path.normpath(m["Target"])
        if m["Type"] == "volume":
            meta, created = create(m.get("Source") or None)
            if created:
                made.append(meta["Name"])
            shown.append(_shown(m, target, meta["Mountpoint"], meta["Name"]))
        elif m["Type"] == "bind":  # checked now (--mount's missing source fails `create`, as Docker's)
            shown.append(_shown(m, target, _bind_source(m, make=False)))
        else:
            shown.append(_shown(m, target))
    rec["Mounts"] = shown
    return made


def resolve_mounts(rec: dict, rootfs: str, journal=None) -> list[dict]:
    """The OCI mounts for the container; records Docker's `Mounts` in ``rec``."""
    previous = {m["Destination"]: m for m in rec.get("Mounts") or []}
    oci, shown = [], []
    for m in _wanted_mounts(rec):
        target = os.path.normpath(m["Target"])
        if m["Type"] == "tmpfs":
            oci.append(_tmpfs(m, target))
            shown.append(_shown(m, target))
            continue
        ro = bool(m.get("ReadOnly"))
        prop = (m.get("BindOptions") or {}).get("Propagation") or "rprivate"
        if m["Type"] == "bind":
            source = _bind_source(m)
            shown.append(_shown(m, target, source))
        else:
            name = m.get("Source") or (previous.get(target) or {}).get("Name") or None
            meta, created = create(name)
            source = meta["Mountpoint"]
            if not (m.get("VolumeOptions") or {}).get("NoCopy"):
                copy_up(rootfs, target, source)
            shown.append(_shown(m, target, source, meta["Name"]))
        opts = ["rbind", prop] + (["ro"] if ro else [])
        oci.append({"destination": target, "type": "bind", "source": source, "options": opts})
    rec["Mounts"] = shown
    return oci


def _bind_source(m: dict, make: bool = True) -> str:
    """The checked host path of a bind mount; -v's missing source is made (at start, as Docker)."""
    src = m.get("Source") or ""
    if not src.startswith("/"):
        raise InvalidArgument(f"invalid mount config for type \"bind\": invalid mount path: '{src}' "
                              "mount path must be absolute")
    src = os.path.normpath(src)
    if not os.path.exists(src):
        if not m.get("CreateSource"):
            raise InvalidArgument(f"invalid mount config for type \"bind\": bind source path does not exist: {src}")
        if make:
            os.makedirs(src, mode=0o755, exist_ok=True)  # -v creates it, like Docker
    return src


def _tmpfs(m: dict, target: str) -> dict:
    opts = ["nosuid", "nodev", "noexec"]
    if "Options" in m:
        opts += [o for o in (m["Options"] or "").split(",") if o]
    else:
        t = m.get("TmpfsOptions") or {}
        if t.get("SizeBytes"):
            opts.append(f"size={t['SizeBytes']}")
        if t.get("Mode"):
            opts.append(f"mode={t['Mode']:o}")
        if m.get("ReadOnly"):
            opts.append("ro")
    return {"destination": target, "type": "tmpfs", "source": "tmpfs", "options": opts}


def copy_up(rootfs: str, target: str, data: str) -> None:
    """Docker's copy-up: an empty volume gets the image's content at its mount point."""
    from minidock.runtime.rootfs import secure_join

    if os.listdir(data):
        return
    src = secure_join(rootfs, target)
    if not os.path.isdir(src) or os.path.islink(src):
        return
    st = os.stat(src)
    os.chown(data, st.st_uid, st.st_gid)
    os.chmod(data, st.st_mode & 0o7777)
    from minidock.volumes.copy import copy_up_tree

    copy_up_tree(src, data)
