"""`cp`: files between the host and a container (running or stopped), Docker's path rules.

The container's root is its overlay mount (mounted for the copy if the container is stopped);
paths under one of its volumes or bind mounts go to that mount's source instead, since those are
not visible in the overlay from the host.

No symlink tricks: every container path is resolved with runtime.rootfs.secure_join, which
treats the container's root as "/" (an absolute link restarts there, ".." stops there), and each
entry copied *into* the container is resolved again on its own, so a link planted in the
container cannot send a write to the host. Files are opened with O_NOFOLLOW. (A process inside a
running container racing the copy could still swap a directory for a link between the resolve
and the open: openat2(RESOLVE_IN_ROOT) would close that window; see docs/networking.md.)
"""

from __future__ import annotations

import contextlib
import os
import stat

from minidock.errors import InvalidArgument, NotFound
from minidock.runtime.rootfs import secure_join
from minidock.volumes.copy import copy_entry, copy_tree


def split_arg(arg: str) -> tuple[str | None, str]:
    """"ctr:/path" -> ("ctr", "/path"); a local path (absolute, ./, or no colon) -> (None, path)."""
    if arg.startswith(("/", ".")) or ":" not in arg:
        return None, arg
    ref, _, path = arg.partition(":")
    return ref, path


@contextlib.contextmanager
def container_root(ref: str):
    """(record, merged dir) with the rootfs mounted for as long as the copy takes."""
    from minidock.engine import bundle, containers, lifecycle

    cid = containers.resolve(ref)
    rec = lifecycle.refresh(cid)
    merged = rec["GraphDriver"]["Data"]["MergedDir"]
    mounted_here = False
    if not os.path.ismount(merged):
        bundle.mount_rootfs(rec, lifecycle._image_layers(rec))
        mounted_here = True
    try:
        yield rec, merged
    finally:
        if mounted_here and not lifecycle.is_running(cid):
            bundle.umount_rootfs(cid)


class Resolver:
    """Container path -> host path, through the container's mounts, never out of its root."""

    def __init__(self, rec: dict, merged: str):
        self.merged = merged
        self.mounts = sorted(((m["Destination"], m["Source"]) for m in rec.get("Mounts") or []
                              if m.get("Type") in ("bind", "volume") and m.get("Source")),
                             key=lambda x: -len(x[0]))

    def host(self, path: str) -> str:
        norm = os.path.normpath("/" + path)
        resolved = secure_join(self.merged, norm)
        rel = "/" + os.path.relpath(resolved, self.merged) if resolved != self.merged else "/"
        for dest, src in self.mounts:
            if rel == dest or rel.startswith(dest.rstrip("/") + "/"):
                return secure_join(src, rel[len(dest):])
        return resolved


def _contents_only(path: str) -> bool:
    return path.endswith("/.") or path == "."


def copy_out(ref: str, cpath: str, dest: str) -> None:
    with container_root(ref) as (rec, merged):
        r = Resolver(rec, merged)
        src = r.host(cpath)
        if not os.path.lexists(src):
            raise NotFound(f"Could not find the file {cpath} in container {ref}")
        _place(src, os.path.isdir(src) and not os.path.islink(src), cpath, dest,
               exists=os.path.exists, is_dir=os.path.isdir, host_of=lambda p: p, copy=copy_tree)


def copy_in(src: str, ref: str, cpath: str) -> None:
    if not os.path.lexists(src):
        raise NotFound(f"lstat {src}: no such file or directory")
    with container_root(ref) as (rec, merged):
        r = Resolver(rec, merged)
        src_is_dir = os.path.isdir(src) and not os.path.islink(src)

        def copy(s: str, container_dest: str) -> None:
            _copy_into(r, s, container_dest)

        _place(src, src_is_dir, src, cpath, exists=lambda p: os.path.exists(r.host(p)),
               is_dir=lambda p: os.path.isdir(r.host(p)), host_of=r.host, copy=copy)


def _place(src: str, src_is_dir: bool, src_arg: str, dest: str, *, exists, is_dir, host_of, copy) -> None:
    """Docker's rules for where SRC lands at DEST (same on both sides)."""
    if src_is_dir:
        if exists(dest):
            if not is_dir(dest):
                raise InvalidArgument(f"cannot copy a directory to a file: {dest}")
            if _contents_only(src_arg):
                for name in os.listdir(src):
                    copy(os.path.join(src, name), os.path.join(dest, name))
                return
            copy(src, os.path.join(dest, os.path.basename(os.path.normpath(src_arg))))
            return
        _parent_must_exist(dest, exists, is_dir)
        copy(src, dest)
        return
    if exists(dest) and is_dir(dest):
        copy(src, os.path.join(dest, os.path.basename(src_arg.rstrip("/"))))
        return
    if dest.endswith("/"):
        raise NotFound(f"destination directory {dest} does not exist")
    _parent_must_exist(dest, exists, is_dir)
    copy(src, dest)


def _parent_must_exist(dest: str, exists, is_dir) -> None:
    parent = os.path.dirname(os.path.normpath(dest)) or "."
    if not (exists(parent) and is_dir(parent)):
        raise NotFound(f"no such directory: {parent}")


def _copy_into(r: Resolver, src: str, cdest: str) -> None:
    """Copy a host entry (recursively) to a container path, resolving each target on its own."""
    target = r.host(cdest)
    st = os.lstat(src)
    if stat.S_ISREG(st.st_mode):
        if os.path.isdir(target) and not os.path.islink(target):
            raise InvalidArgument(f"cannot overwrite directory {cdest} with a file")
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            with open(src, "rb") as f:
                while chunk := f.read(1 << 20):
                    os.write(fd, chunk)
            os.fchmod(fd, stat.S_IMODE(st.st_mode))
        finally:
            os.close(fd)
        os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)
        return
    if stat.S_ISDIR(st.st_mode):
        if os.path.lexists(target) and not os.path.isdir(target):
            raise InvalidArgument(f"cannot overwrite non-directory {cdest} with a directory")
        os.makedirs(target, exist_ok=True)
        os.chmod(target, stat.S_IMODE(st.st_mode))
        for name in os.listdir(src):
            _copy_into(r, os.path.join(src, name), os.path.join(cdest, name))
        return
    if os.path.lexists(target) and not os.path.isdir(target):
        os.unlink(target)
    copy_entry(src, target)  # a symlink is copied as a link: its target is never followed by us


def cp(src: str, dst: str) -> None:
    sref, spath = split_arg(src)
    dref, dpath = split_arg(dst)
    if sref and dref:
        raise InvalidArgument("copying between containers is not supported")
    if not sref and not dref:
        raise InvalidArgument("must specify at least one container source")
    if sref:
        copy_out(sref, spath, dpath)
    else:
        copy_in(spath, dref, dpath)
