"""Copying trees without ever following a symlink: symlinks are copied as symlinks.

Used by the copy-up of image content into a new volume and by `cp` out of a container. Ownership,
modes and times are kept (we run as root: the container's files keep the container's owners).
"""

from __future__ import annotations

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
