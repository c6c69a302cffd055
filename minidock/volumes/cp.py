"""`cp`: files between the host and a container (running or stopped), Docker's path rules.

The container's root is its overlay mount (mounted for the copy if the container is stopped);
paths under one of its volumes or bind mounts go to that mount's source instead, since those are
not visible in the overlay from the host.

No symlink tricks, no races (CVE-2018-15664: `docker cp` resolved a path, then a container
process swapped a directory for a symlink to / before the copy): every container path is opened
with openat2(RESOLVE_IN_ROOT) relative to a descriptor of the container's root (or of the
volume's), so the kernel resolves it as if that root were "/" (an absolute link restarts there,
".." stops there) at the very moment of the open; then everything below is created, read and
walked relative to directory descriptors with O_NOFOLLOW. A process inside a running container
swapping a directory for a link while we copy can at worst redirect us elsewhere *inside* the
container. Links are copied as links, never followed. (Kernels without openat2 (< 5.6) fall back to resolving with
runtime.rootfs.secure_join, which leaves that race open.)
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat

from minidock import kernel as k
from minidock.errors import InvalidArgument, KernelError, NotFound
from minidock.runtime.rootfs import secure_join

_NOFOLLOW = os.O_NOFOLLOW | os.O_CLOEXEC


def _openat2(dirfd: int, path: str, flags: int) -> int:
    """openat2 through the kernel layer (RESOLVE_IN_ROOT: symlinks resolve inside dirfd)."""
    while True:
        try:
            return k.openat2(dirfd, path, flags | os.O_CLOEXEC, k.RESOLVE_IN_ROOT | k.RESOLVE_NO_MAGICLINKS)
        except KernelError as e:
            if e.errno not in (errno.EINTR, errno.EAGAIN):
                raise OSError(e.errno, os.strerror(e.errno), path) from None


class Root:
    """A directory tree seen as "/": the container's rootfs, or one of its volumes."""

    def __init__(self, path: str):
        self.path = path
        self.fd = os.open(path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)

    def close(self) -> None:
        os.close(self.fd)

    def open(self, rel: str, flags: int) -> int:
        """Open ``rel`` resolved inside this root (symlinks included), never outside of it."""
        rel = rel.strip("/") or "."
        try:
            return _openat2(self.fd, rel, flags)
        except OSError as e:
            if e.errno != errno.ENOSYS:
                raise
        return os.open(secure_join(self.path, rel), flags | os.O_CLOEXEC)  # old kernel: see docstring

    def lstat(self, rel: str) -> os.stat_result | None:
        try:
            fd = self.open(rel, os.O_PATH | os.O_NOFOLLOW)
        except FileNotFoundError:
            return None
        try:
            return os.fstat(fd)
        finally:
            os.close(fd)

    def stat(self, rel: str) -> os.stat_result | None:
        try:
            fd = self.open(rel, os.O_PATH)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as e:
            if e.errno == errno.ELOOP:
                return None
            raise
        try:
            return os.fstat(fd)
        finally:
            os.close(fd)


class Container:
    """A container's files: path -> (Root, path inside it), through its volumes and binds."""

    def __init__(self, rec: dict, merged: str):
        from minidock.util.idmap import IDMap

        self.roots = {"/": Root(merged)}
        self.idmap = IDMap.of(rec)  # a user namespace: owners translated both ways (Docker's rule)
        self.mounts = sorted(((m["Destination"], m["Source"]) for m in rec.get("Mounts") or []
                              if m.get("Type") in ("bind", "volume") and m.get("Source")
                              and os.path.isdir(m["Source"])), key=lambda x: -len(x[0]))

    def close(self) -> None:
        for r in self.roots.values():
            r.close()

    def locate(self, path: str) -> tuple[Root, str]:
        norm = _abs(path)
        for dest, src in self.mounts:
            if norm == dest or norm.startswith(dest.rstrip("/") + "/"):
                if dest not in self.roots:
                    self.roots[dest] = Root(src)
                return self.roots[dest], norm[len(dest):] or "/"
        return self.roots["/"], norm

    def stat(self, path: str) -> os.stat_result | None:
        root, rel = self.locate(path)
        return root.stat(rel)

    def host_ids(self, uid: int, gid: int) -> tuple[int, int]:
        """Owners as the container means them -> as they are on disk."""
        return self.idmap.to_host(uid, gid) if self.idmap else (uid, gid)

    def ctr_ids(self, uid: int, gid: int) -> tuple[int, int]:
        """Owners on disk -> as the container sees them."""
        return self.idmap.to_container(uid, gid) if self.idmap else (uid, gid)


def _abs(path: str) -> str:
    return os.path.normpath("/" + path.lstrip("/"))  # (normpath keeps a leading "//")


def split_arg(arg: str) -> tuple[str | None, str]:
    """"ctr:/path" -> ("ctr", "/path"); a local path (absolute, ./, or no colon) -> (None, path)."""
    if arg.startswith(("/", ".")) or ":" not in arg:
        return None, arg
    ref, _, path = arg.partition(":")
    return ref, path


@contextlib.contextmanager
def container_files(ref: str, rootfs_mounted):
    """The container's files, its rootfs mounted for as long as the copy takes.

    ``rootfs_mounted(ref)`` is the engine's context manager yielding (record, merged dir)
    (engine.lifecycle.rootfs_mounted): this package reads containers, it does not start them.
    """
    with rootfs_mounted(ref) as (rec, merged):
        c = Container(rec, merged)
        try:
            yield c
        finally:
            c.close()


def _contents_only(path: str) -> bool:
    return path.endswith("/.") or path == "."


def _is_dir(st: os.stat_result | None) -> bool:
    return st is not None and stat.S_ISDIR(st.st_mode)


def _place(src_is_dir: bool, src_arg: str, dest: str, dest_st, parent_st, names) -> list[tuple[str, str]]:
    """Docker's rules for where SRC lands at DEST -> [(source name or "", destination path)].

    ``dest_st``/``parent_st`` are the stat results of DEST and its parent (None: missing);
    ``names()`` lists SRC's entries (for `SRC/.`). A "" source means SRC itself.
    """
    base = os.path.basename(os.path.normpath(src_arg))
    if src_is_dir:
        if dest_st is not None:
            if not _is_dir(dest_st):
                raise InvalidArgument(f"cannot copy a directory to a file: {dest}")
            if _contents_only(src_arg):
                return [(n, os.path.join(dest, n)) for n in names()]
            return [("", os.path.join(dest, base))]
        if not _is_dir(parent_st):
            raise NotFound(f"no such directory: {os.path.dirname(os.path.normpath(dest))}")
        return [("", dest)]
    if _is_dir(dest_st):
        return [("", os.path.join(dest, base))]
    if dest.endswith("/"):
        raise NotFound(f"destination directory {dest} does not exist")
    if not _is_dir(parent_st):
        raise NotFound(f"no such directory: {os.path.dirname(os.path.normpath(dest)) or '.'}")
    return [("", dest)]


def _host_stat(path: str):
    try:
        return os.stat(path)
    except OSError:
        return None


# --- into the container ---------------------------------------------------------------------------
def copy_in(src: str, ref: str, cpath: str, *, rootfs_mounted, archive: bool = False,
            follow: bool = False) -> None:
    """Host -> container. Docker's ownership: the copies belong to the container's root (0:0),
    or keep the host's uid/gid with -a; -L copies what a source symlink points to."""
    try:
        src_st = os.stat(src) if follow or not os.path.islink(src) else os.lstat(src)
    except FileNotFoundError:
        raise NotFound(f"lstat {src}: no such file or directory") from None
    with container_files(ref, rootfs_mounted) as c:
        parent = os.path.dirname(_abs(cpath))
        plan = _place(stat.S_ISDIR(src_st.st_mode), src, cpath, c.stat(cpath), c.stat(parent),
                      lambda: os.listdir(src))
        for name, cdest in plan:
            if name or not follow or not os.path.islink(src):
                _put(c, os.path.join(src, name) if name else src, cdest, archive=archive)
            else:
                _put(c, os.path.realpath(src), cdest, archive=archive)


def _own(c: Container, pfd: int, name: str, st: os.stat_result, archive: bool) -> None:
    uid, gid = c.host_ids(*((st.st_uid, st.st_gid) if archive else (0, 0)))
    os.chown(name, uid, gid, dir_fd=pfd, follow_symlinks=False)


def _put(c: Container, src: str, cdest: str, archive: bool = False) -> None:
    """Copy a host entry (recursively) to a container path; every open is relative and in-root."""
    root, rel = c.locate(cdest)
    parent, name = os.path.split(rel.rstrip("/"))
    if not name:
        raise InvalidArgument(f"cannot copy onto the root of {cdest}")
    st = os.lstat(src)
    pfd = root.open(parent, os.O_PATH | os.O_DIRECTORY)
    try:
        if stat.S_ISDIR(st.st_mode):
            _put_dir(root, pfd, name, rel, st, cdest)
            _own(c, pfd, name, st, archive)
            for child in sorted(os.listdir(src)):
                _put(c, os.path.join(src, child), cdest.rstrip("/") + "/" + child, archive=archive)
        elif stat.S_ISREG(st.st_mode):
            _put_file(pfd, name, src, st, cdest)
            _own(c, pfd, name, st, archive)
        elif stat.S_ISLNK(st.st_mode):
            _replace(pfd, name, cdest)
            os.symlink(os.readlink(src), name, dir_fd=pfd)  # a link is copied as a link
            _own(c, pfd, name, st, archive)
        else:
            raise InvalidArgument(f"cannot copy special file {src} into a container")
    finally:
        os.close(pfd)


def _replace(pfd: int, name: str, cdest: str) -> None:
    """Make room for a new non-directory entry: remove a file or link in the way."""
    try:
        old = os.stat(name, dir_fd=pfd, follow_symlinks=False)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(old.st_mode):
        raise InvalidArgument(f"cannot overwrite directory {cdest} with a non-directory")
    os.unlink(name, dir_fd=pfd)


def _put_file(pfd: int, name: str, src: str, st: os.stat_result, cdest: str) -> None:
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | _NOFOLLOW
    try:
        fd = os.open(name, flags, 0o600, dir_fd=pfd)
    except IsADirectoryError:
        raise InvalidArgument(f"cannot overwrite directory {cdest} with a non-directory") from None
    except OSError as e:
        if e.errno != errno.ELOOP:
            raise
        os.unlink(name, dir_fd=pfd)  # a symlink in the way is replaced, never followed
        fd = os.open(name, flags, 0o600, dir_fd=pfd)
    try:
        with open(src, "rb") as f:
            while chunk := f.read(1 << 20):
                os.write(fd, chunk)
        os.fchmod(fd, stat.S_IMODE(st.st_mode))
        os.utime(fd, ns=(st.st_atime_ns, st.st_mtime_ns))
    finally:
        os.close(fd)


def _put_dir(root: Root, pfd: int, name: str, rel: str, st: os.stat_result, cdest: str) -> None:
    try:
        os.mkdir(name, 0o700, dir_fd=pfd)
    except FileExistsError:
        pass
    try:
        dfd = root.open(rel, os.O_RDONLY | os.O_DIRECTORY)  # (an in-root link to a dir is fine)
    except NotADirectoryError:
        raise InvalidArgument(f"cannot overwrite non-directory {cdest} with a directory") from None
    try:
        os.fchmod(dfd, stat.S_IMODE(st.st_mode))
    finally:
        os.close(dfd)


# --- out of the container ------------------------------------------------------------------------
def copy_out(ref: str, cpath: str, dest: str, *, rootfs_mounted, archive: bool = False,
             follow_link: bool = False) -> None:
    """Container -> host. The copies belong to the caller (as Docker's client extracts them),
    or keep the container's uid/gid with -a; -L follows a symlink at SRC_PATH."""
    with container_files(ref, rootfs_mounted) as c:
        root, rel = c.locate(cpath)
        follow = _contents_only(cpath) or cpath.endswith("/") or follow_link
        st = root.stat(rel) if follow else root.lstat(rel)
        if st is None:
            raise NotFound(f"Could not find the file {cpath} in container {ref}")
        parent = os.path.dirname(os.path.normpath(dest)) or "."
        plan = _place(stat.S_ISDIR(st.st_mode), cpath, dest, _host_stat(dest), _host_stat(parent),
                      lambda: _names(root, rel))
        owner = None if archive else (os.getuid(), os.getgid())
        for name, hdest in plan:
            cp = os.path.join(_abs(cpath), name) if name else _abs(cpath)
            _get(c, cp, hdest, follow=follow and not name, owner=owner)


def _names(root: Root, rel: str) -> list[str]:
    fd = root.open(rel, os.O_RDONLY | os.O_DIRECTORY)
    try:
        return sorted(os.listdir(fd))
    finally:
        os.close(fd)


def _get(c: Container, cpath: str, hdest: str, *, follow: bool = False, owner=None) -> None:
    """Copy a container entry (recursively) to a host path, reading through in-root descriptors."""
    root, rel = c.locate(cpath)
    fd = root.open(rel, os.O_PATH | (0 if follow else os.O_NOFOLLOW))
    try:
        st = os.fstat(fd)
        if stat.S_ISLNK(st.st_mode):
            if os.path.lexists(hdest) and not os.path.isdir(hdest):
                os.unlink(hdest)
            os.symlink(os.readlink("", dir_fd=fd), hdest)
            os.lchown(hdest, *(owner or c.ctr_ids(st.st_uid, st.st_gid)))
            return
        if stat.S_ISREG(st.st_mode):
            with os.fdopen(root.open(rel, os.O_RDONLY | (0 if follow else os.O_NOFOLLOW)), "rb") as f, \
                    open(hdest, "wb") as out:
                while chunk := f.read(1 << 20):
                    out.write(chunk)
        elif stat.S_ISDIR(st.st_mode):
            os.makedirs(hdest, exist_ok=True)
            for name in _names(root, rel):
                _get(c, cpath.rstrip("/") + "/" + name, os.path.join(hdest, name), owner=owner)
        elif not _special(st, hdest):
            return
        os.chown(hdest, *(owner or c.ctr_ids(st.st_uid, st.st_gid)))
        os.chmod(hdest, stat.S_IMODE(st.st_mode))
        os.utime(hdest, ns=(st.st_atime_ns, st.st_mtime_ns))
    finally:
        os.close(fd)


def _special(st: os.stat_result, hdest: str) -> bool:
    """A FIFO or device node; False for a socket (skipped, as tar does)."""
    if stat.S_ISFIFO(st.st_mode):
        os.mkfifo(hdest)
    elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
        os.mknod(hdest, st.st_mode, st.st_rdev)
    else:
        return False
    return True


def cp(src: str, dst: str, *, rootfs_mounted, archive: bool = False, follow_link: bool = False) -> None:
    """Docker's cp; ``rootfs_mounted`` is engine.lifecycle.rootfs_mounted (see container_files).
    `-` as SRC reads a tar stream from stdin; `-` as DEST writes one to stdout."""
    import sys

    sref, spath = split_arg(src)
    dref, dpath = split_arg(dst)
    if src == "-" and dst == "-":
        raise InvalidArgument("must specify at least one container source")
    if dst == "-":
        if not sref:
            raise InvalidArgument("must specify at least one container source")
        tar_out(sref, spath, sys.stdout.buffer, rootfs_mounted=rootfs_mounted, follow_link=follow_link)
        return
    if src == "-":
        if not dref:
            raise InvalidArgument("must specify at least one container source")
        tar_in(sys.stdin.buffer, dref, dpath, rootfs_mounted=rootfs_mounted, archive=archive)
        return
    if sref and dref:
        raise InvalidArgument("copying between containers is not supported")
    if not sref and not dref:
        raise InvalidArgument("must specify at least one container source")
    try:
        if sref:
            copy_out(sref, spath, dpath, rootfs_mounted=rootfs_mounted, archive=archive, follow_link=follow_link)
        else:
            copy_in(spath, dref, dpath, rootfs_mounted=rootfs_mounted, archive=archive, follow=follow_link)
    except PermissionError as e:
        raise KernelError("cp", e.filename or dst, e.errno) from None


# --- tar streams ----------------------------------------------------------------------------------
def tar_out(ref: str, cpath: str, out, *, rootfs_mounted, follow_link: bool = False) -> None:
    """`cp CTR:PATH -`: a tar of PATH (named by its base name, as Docker does) on ``out``, read
    through in-root descriptors; owners numeric, links as links."""
    import tarfile

    with container_files(ref, rootfs_mounted) as c:
        root, rel = c.locate(cpath)
        follow = follow_link or cpath.endswith("/") or _contents_only(cpath)
        st = root.stat(rel) if follow else root.lstat(rel)
        if st is None:
            raise NotFound(f"Could not find the file {cpath} in container {ref}")
        base = os.path.basename(os.path.normpath(_abs(cpath))) or "."
        with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
            if _contents_only(cpath):
                _tar_add(tar, c, _abs(cpath), ".", follow=True)
            else:
                _tar_add(tar, c, _abs(cpath), base, follow=follow)
    out.flush()


def _tar_add(tar, c: Container, cpath: str, name: str, *, follow: bool = False) -> None:
    import tarfile

    root, rel = c.locate(cpath)
    fd = root.open(rel, os.O_PATH | (0 if follow else os.O_NOFOLLOW))
    try:
        st = os.fstat(fd)
        ti = tarfile.TarInfo(name)
        ti.uid, ti.gid = c.ctr_ids(st.st_uid, st.st_gid)
        ti.mode, ti.mtime = stat.S_IMODE(st.st_mode), int(st.st_mtime)
        if stat.S_ISLNK(st.st_mode):
            ti.type, ti.linkname = tarfile.SYMTYPE, os.readlink("", dir_fd=fd)
            tar.addfile(ti)
        elif stat.S_ISREG(st.st_mode):
            ti.size = st.st_size
            with os.fdopen(root.open(rel, os.O_RDONLY | (0 if follow else os.O_NOFOLLOW)), "rb") as f:
                tar.addfile(ti, f)
        elif stat.S_ISDIR(st.st_mode):
            ti.type = tarfile.DIRTYPE
            tar.addfile(ti)
            for child in _names(root, rel):
                _tar_add(tar, c, cpath.rstrip("/") + "/" + child, f"{name}/{child}" if name != "." else child)
        elif stat.S_ISFIFO(st.st_mode):
            ti.type = tarfile.FIFOTYPE
            tar.addfile(ti)
        elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
            ti.type = tarfile.CHRTYPE if stat.S_ISCHR(st.st_mode) else tarfile.BLKTYPE
            ti.devmajor, ti.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
            tar.addfile(ti)
    finally:
        os.close(fd)


def tar_in(stream, ref: str, cdir: str, *, rootfs_mounted, archive: bool = False) -> None:
    """`cp - CTR:DIR`: extract a tar stream into DIR (a directory that exists, as Docker
    requires). Every entry is created relative to in-root descriptors: a name with `..`, an
    absolute name or a symlink in the archive cannot lead the extraction outside the container.
    Owners: the archive's with -a, else the container's root."""
    import tarfile

    with container_files(ref, rootfs_mounted) as c:
        if not _is_dir(c.stat(cdir)):
            raise NotFound(f"Could not find the file {cdir} in container {ref}"
                           if c.stat(cdir) is None else f"extraction point is not a directory: {cdir}")
        with tarfile.open(fileobj=stream, mode="r|*") as tar:
            for m in tar:
                name = os.path.normpath(m.name.lstrip("/"))
                if name in (".", "") and m.isdir():
                    continue
                if name.startswith("..") or "/../" in f"/{name}/":
                    raise InvalidArgument(f"invalid archive entry {m.name!r}: it leaves the destination")
                target = _abs(cdir.rstrip("/") + "/" + name)
                root, rel = c.locate(target)
                parent, leaf = os.path.split(rel.rstrip("/"))
                _mkdirs(root, parent)
                pfd = root.open(parent, os.O_PATH | os.O_DIRECTORY)
                try:
                    _tar_entry(tar, m, root, pfd, leaf, rel, target)
                    uid, gid = c.host_ids(*((m.uid, m.gid) if archive else (0, 0)))
                    os.chown(leaf, uid, gid, dir_fd=pfd, follow_symlinks=False)
                    if not m.issym():
                        fd = os.open(leaf, os.O_PATH | _NOFOLLOW, dir_fd=pfd)
                        try:
                            os.chmod(f"/proc/self/fd/{fd}", m.mode & 0o7777)
                        finally:
                            os.close(fd)
                finally:
                    os.close(pfd)


def _mkdirs(root: Root, rel: str) -> None:
    parts = [p for p in rel.strip("/").split("/") if p]
    cur = ""
    for p in parts:
        pfd = root.open(cur, os.O_PATH | os.O_DIRECTORY)
        try:
            try:
                os.mkdir(p, 0o755, dir_fd=pfd)
            except FileExistsError:
                pass
        finally:
            os.close(pfd)
        cur = f"{cur}/{p}"


def _tar_entry(tar, m, root: Root, pfd: int, leaf: str, rel: str, target: str) -> None:
    if m.isdir():
        try:
            os.mkdir(leaf, 0o755, dir_fd=pfd)
        except FileExistsError:
            if not _is_dir(root.lstat(rel)):
                raise InvalidArgument(f"cannot overwrite non-directory {target} with a directory") from None
        return
    _replace(pfd, leaf, target)
    if m.issym():
        os.symlink(m.linkname, leaf, dir_fd=pfd)
    elif m.isfile() or m.islnk():
        src = tar.extractfile(m)
        fd = os.open(leaf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | _NOFOLLOW, 0o600, dir_fd=pfd)
        try:
            while src is not None and (chunk := src.read(1 << 20)):
                os.write(fd, chunk)
        finally:
            os.close(fd)
    elif m.isfifo():
        os.mkfifo(leaf, 0o600, dir_fd=pfd)
    elif m.ischr() or m.isblk():
        kind = stat.S_IFCHR if m.ischr() else stat.S_IFBLK
        os.mknod(leaf, kind | 0o600, os.makedev(m.devmajor, m.devminor), dir_fd=pfd)
