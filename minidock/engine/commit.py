"""`export` (a container's whole filesystem as a tar) and `commit` (its changes as a new layer).

export: the merged overlay view is what the container sees, so we tar that. A stopped
container's overlay is mounted for the duration (journaled, as `cp` does) and unmounted again.

commit: the container's overlay *upper* dir holds exactly its changes, in overlayfs' own
notation, which we translate back into OCI's:

    character device 0:0 named X          -> an empty file .wh.X      (X was deleted)
    dir with xattr trusted.overlay.opaque -> the dir plus .wh..wh..opq (its lower contents hidden)
    trusted.overlay.* xattrs              -> dropped (overlayfs bookkeeping)

(With redirect_dir or metacopy enabled, upper dirs can refer to lower files; minidock mounts
without them — the kernel default — so the upper dir is always self-contained.)
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import stat
import tarfile

from minidock.engine import lifecycle
from minidock.errors import MinidockError
from minidock.image.store import MT_OCI_LAYER, ImageStore
from minidock.util import now

MOUNT_TARGETS = {"etc/hostname", "etc/hosts", "etc/resolv.conf", ".dockerenv", "run/.containerenv"}


def _tarinfo(tf: tarfile.TarFile, path: str, arcname: str, idmap=None) -> tarfile.TarInfo | None:
    ti = tf.gettarinfo(path, arcname)
    if ti is None:  # sockets
        return None
    if idmap is not None:  # a user namespace's files: the owners the container sees
        ti.uid, ti.gid = idmap.to_container(ti.uid, ti.gid)
    ti.uname = ti.gname = ""  # names would be the host's, not the container's
    xattrs = {}
    try:
        for k in os.listxattr(path, follow_symlinks=False):
            if k.startswith("trusted.overlay.") or not k.startswith(("user.", "security.capability", "trusted.")):
                continue
            v = os.getxattr(path, k, follow_symlinks=False)
            xattrs["SCHILY.xattr." + k] = v.decode("utf-8", "surrogateescape")
    except OSError:
        pass
    if xattrs:
        ti.pax_headers = {**ti.pax_headers, **xattrs}
    return ti


def _add(tf: tarfile.TarFile, path: str, arcname: str, idmap=None) -> None:
    ti = _tarinfo(tf, path, arcname, idmap)
    if ti is None:
        return
    if ti.isreg():
        with open(path, "rb") as f:
            tf.addfile(ti, f)
    else:
        tf.addfile(ti)


def tar_tree(root: str, out, *, whiteouts: bool, idmap=None) -> None:
    """Write the tree under `root` as a tar stream to the binary file `out`.

    whiteouts=True: `root` is an overlay upper dir; its whiteouts become OCI whiteouts.
    idmap (util.idmap.IDMap): a remapped container's tree, owners written as the container sees
    them (a layer committed from it is root's, as Docker's is)."""
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tf:
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            rel_dir = os.path.relpath(dirpath, root)
            prefix = "" if rel_dir == "." else rel_dir + "/"
            if whiteouts and prefix:
                with contextlib.suppress(OSError):
                    if os.getxattr(dirpath, "trusted.overlay.opaque", follow_symlinks=False) == b"y":
                        ti = tarfile.TarInfo(prefix + ".wh..wh..opq")
                        tf.addfile(ti)
            for name in sorted(filenames) + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
                path = os.path.join(dirpath, name)
                st = os.lstat(path)
                if whiteouts and prefix + name in MOUNT_TARGETS and stat.S_ISREG(st.st_mode) and st.st_size == 0:
                    continue  # an empty mount target the engine made, not a change (Docker's init layer)
                if whiteouts and stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
                    ti = tarfile.TarInfo(prefix + ".wh." + name)
                    ti.mtime = int(st.st_mtime)
                    tf.addfile(ti)
                    continue
                _add(tf, path, prefix + name, idmap)
            for d in list(dirnames):
                path = os.path.join(dirpath, d)
                if os.path.islink(path):
                    dirnames.remove(d)  # added above as a symlink; never followed
                    continue
                _add(tf, path, prefix + d, idmap)


def export(ref: str, out_path: str | None) -> None:
    """Docker's export: the container's filesystem as a tar, to a file or stdout."""
    import sys

    if not out_path or out_path == "-":
        if sys.stdout.isatty():
            raise MinidockError("cowardly refusing to save to a terminal. Use the -o flag or redirect")
    from minidock.util.idmap import IDMap

    with lifecycle.rootfs_mounted(ref) as (rec, merged):
        idmap = IDMap.of(rec)
        if out_path and out_path != "-":
            tmp = out_path + ".tmp"
            try:
                with open(tmp, "wb") as f:
                    tar_tree(merged, f, whiteouts=False, idmap=idmap)
                os.replace(tmp, out_path)
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
        else:
            with os.fdopen(os.dup(1), "wb") as f:
                tar_tree(merged, f, whiteouts=False, idmap=idmap)


CONFIG_KEYS = ("User", "ExposedPorts", "Env", "Cmd", "Entrypoint", "WorkingDir", "Labels", "Volumes",
               "StopSignal", "OnBuild", "Healthcheck", "Shell")


def commit(ref: str, target: str | None = None, *, changes: list[str] = (), message: str = "",
           author: str = "", store: ImageStore | None = None, pause: bool = True):
    """Docker's commit: a new image = the container's image + one layer of its changes.

    A running container is paused (the cgroup freezer) while its upper dir is read, as Docker
    does by default (``pause=False``: `commit -p=false`, read while it writes)."""
    from minidock.image import reference
    from minidock.image.config import apply_changes
    from minidock.state import containers
    from minidock.util.idmap import IDMap

    store = store or ImageStore()
    if target:
        r = reference.parse(target)
        if r.digest:
            raise MinidockError(f"refusing to create a tag with a digest reference: {target}")
    cid = containers.resolve(ref)
    rec = containers.load(cid)
    base = store.resolve(rec["Image"])
    upper = str(containers.cdir(cid) / "upper")
    if not os.path.isdir(upper):
        os.makedirs(upper, exist_ok=True)  # never started: no changes yet
    with store.lease() as lease:
        work = store.tmpdir()
        try:
            tmp = os.path.join(work, "layer.tar")
            with _paused(cid, rec, pause), open(tmp, "wb") as f:
                tar_tree(upper, f, whiteouts=True, idmap=IDMap.of(rec))
            with open(tmp, "rb") as f:
                digest, size = lease.put_blob(f)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        diff_id, _ = lease.unpack_layer(digest, digest)
        cfg = json.loads(json.dumps(base.config))
        ccfg = dict(cfg.get("config") or {})
        for k in CONFIG_KEYS:
            if k in rec.get("Config", {}) and rec["Config"][k] not in (None, ""):
                ccfg[k] = rec["Config"][k]
        cfg["config"] = apply_changes(ccfg, list(changes))
        created = now()
        cfg["created"] = created
        if author:
            cfg["author"] = author
        cfg.setdefault("rootfs", {"type": "layers", "diff_ids": []})["diff_ids"] = base.diff_ids + [diff_id]
        cmd = " ".join((rec.get("Path") and [rec["Path"]] or []) + list(rec.get("Args") or []))
        hist = {"created": created, "created_by": cmd or "minidock commit"}
        if message:
            hist["comment"] = message
        if author:
            hist["author"] = author
        cfg["history"] = list(cfg.get("history") or []) + [hist]
        layers = [dict(lay) for lay in base.record["Layers"]] + [
            {"digest": digest, "diff_id": diff_id, "mediaType": MT_OCI_LAYER, "size": size, "unpacked": size}]
        img = store.add_image(json.dumps(cfg, separators=(",", ":")).encode(), layers,
                              tags=[target] if target else [])
    from minidock.engine import events

    events.container_event(rec, "commit", comment=message or "", imageID=img.id)
    return img


@contextlib.contextmanager
def _paused(cid: str, rec: dict, pause: bool):
    """Freeze a running, not already paused container for the duration (its files hold still)."""
    st = rec.get("State") or {}
    if not pause or not st.get("Running") or st.get("Paused"):
        yield
        return
    from minidock.runtime import load

    rt = load(cid)
    if rt.status() != "running":
        yield
        return
    rt.pause()
    try:
        yield
    finally:
        rt.resume()
