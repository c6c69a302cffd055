"""Copying trees without ever following a symlink: symlinks are copied as symlinks.

Used by the copy-up of image content into a new volume and by `cp` out of a container. Ownership,
modes and times are kept (we run as root: the container's files keep the container's owners).
"""

from __future__ import annotations

import errno
import os
import shutil
import stat


def copy_entry(src: str, dst: str) -> None:
    """One file, symlink, directory (not its content) or special file, metadata included."""
    st = os.lstat(src)
    if stat.S_ISLNK(st.st_mode):
        if os.path.lexists(dst) and not os.path.isdir(dst):
            os.unlink(dst)
        os.symlink(os.readlink(src), dst)
    elif stat.S_ISDIR(st.st_mode):
        os.makedirs(dst, exist_ok=True)
    elif stat.S_ISREG(st.st_mode):
        if os.path.islink(dst):
            os.unlink(dst)
        shutil.copyfile(src, dst, follow_symlinks=False)
    elif stat.S_ISFIFO(st.st_mode):
        os.mkfifo(dst)
    else:
        os.mknod(dst, st.st_mode, st.st_rdev)
    try:
        os.lchown(dst, st.st_uid, st.st_gid)
    except PermissionError:
        pass
    if not stat.S_ISLNK(st.st_mode):
        os.chmod(dst, stat.S_IMODE(st.st_mode))
        os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns))


def copy_tree_contents(src: str, dst: str) -> None:
    """Everything under ``src`` into the existing directory ``dst``."""
    for name in os.listdir(src):
        copy_tree(os.path.join(src, name), os.path.join(dst, name))


def copy_tree(src: str, dst: str) -> None:
    """``src`` (any type) to ``dst``; directories recursively, never through a symlink."""
    copy_entry(src, dst)
    if os.path.isdir(src) and not os.path.islink(src):
        for name in os.listdir(src):
            copy_tree(os.path.join(src, name), os.path.join(dst, name))
        st = os.lstat(src)
        os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns))


# ---- copy-up into a volume: descriptors only ---------------------------------------------------------
_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def copy_up_tree(src: str, dst: str) -> None:
    """Docker's volume copy-up (the image's content at the mount point into a new volume), done
    with descriptors only: every entry is created relative to an open directory of the volume with
    O_NOFOLLOW/O_EXCL, directories are entered by descriptor, modes and owners are set on
    descriptors. A container sharing the volume that plants a symlink (`etc -> /host/dir`) while
    the copy runs cannot make it write, chmod or chown anything outside the volume: the entry is
    skipped instead (issue 17; Docker follows such links)."""
    sfd = os.open(src, _DIR)
    try:
        dfd = os.open(dst, _DIR)
        try:
            _copy_dir_at(sfd, dfd)
        finally:
            os.close(dfd)
    finally:
        os.close(sfd)


def _meta_fd(fd: int, st: os.stat_result) -> None:
    path = f"/proc/self/fd/{fd}"  # the object the descriptor holds (O_PATH ones too), never a name
    try:
        os.chown(path, st.st_uid, st.st_gid)
    except PermissionError:
        pass
    os.chmod(path, stat.S_IMODE(st.st_mode))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def _copy_dir_at(sfd: int, dfd: int) -> None:
    for name in os.listdir(sfd):
        st = os.stat(name, dir_fd=sfd, follow_symlinks=False)
        mode = st.st_mode
        try:
            if stat.S_ISDIR(mode):
                try:
                    os.mkdir(name, 0o700, dir_fd=dfd)
                except FileExistsError:
                    pass
                cs = os.open(name, _DIR, dir_fd=sfd)
                try:
                    cd = os.open(name, _DIR, dir_fd=dfd)  # ELOOP/ENOTDIR: something else took the name
                    try:
                        _copy_dir_at(cs, cd)
                        _meta_fd(cd, st)
                    finally:
                        os.close(cd)
                finally:
                    os.close(cs)
            elif stat.S_ISREG(mode):
                fi = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=sfd)
                try:
                    fo = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                                 dir_fd=dfd)
                    try:
                        while os.sendfile(fo, fi, None, 1 << 20):
                            pass
                        _meta_fd(fo, st)
                    finally:
                        os.close(fo)
                finally:
                    os.close(fi)
            elif stat.S_ISLNK(mode):
                os.symlink(os.readlink(name, dir_fd=sfd), name, dir_fd=dfd)
                try:
                    os.chown(name, st.st_uid, st.st_gid, dir_fd=dfd, follow_symlinks=False)
                except PermissionError:
                    pass
            else:
                if stat.S_ISFIFO(mode):
                    os.mkfifo(name, 0o600, dir_fd=dfd)
                else:
                    os.mknod(name, stat.S_IFMT(mode) | 0o600, st.st_rdev, dir_fd=dfd)
                fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dfd)
                try:
                    if stat.S_IFMT(os.fstat(fd).st_mode) == stat.S_IFMT(mode):  # still what we made
                        _meta_fd(fd, st)
                finally:
                    os.close(fd)
        except OSError as e:
            if e.errno in (errno.EEXIST, errno.ELOOP, errno.ENOTDIR):
                continue  # the name was taken meanwhile (by a container sharing the volume): leave it
            raise
