"""Building the container's filesystem view, inside its new mount namespace.

Runs in the container's init before pivot_root. The order, and why:

1. Make every mount private (or what rootfsPropagation says), so nothing we mount or unmount
   here propagates back to the host's mount table.
2. Bind the rootfs onto itself: pivot_root needs the new root to be a mount point.
3. Mount the spec's mounts (proc, sysfs, /dev tmpfs, devpts, mqueue, shm, binds, tmpfs...)
   *under the new root*, refusing destinations that symlink outside of it.
4. Create the device nodes and /dev symlinks Docker gives every container.
5. pivot_root into the new root and detach the old one: unlike chroot, the host's filesystem is
   no longer reachable at all (see docs/labs/02 for the chroot breakout this prevents).
6. Mask and make read-only the /proc and /sys paths that leak host information or control.
"""

from __future__ import annotations

import errno
import os
import stat

from minidock import kernel as k
from minidock.errors import InvalidArgument, KernelError

_MOUNT_FLAGS = {
    "ro": (k.MS_RDONLY, True), "rw": (k.MS_RDONLY, False),
    "nosuid": (k.MS_NOSUID, True), "suid": (k.MS_NOSUID, False),
    "nodev": (k.MS_NODEV, True), "dev": (k.MS_NODEV, False),
    "noexec": (k.MS_NOEXEC, True), "exec": (k.MS_NOEXEC, False),
    "sync": (k.MS_SYNCHRONOUS, True), "async": (k.MS_SYNCHRONOUS, False),
    "dirsync": (k.MS_DIRSYNC, True), "remount": (k.MS_REMOUNT, True),
    "noatime": (k.MS_NOATIME, True), "atime": (k.MS_NOATIME, False),
    "nodiratime": (k.MS_NODIRATIME, True), "diratime": (k.MS_NODIRATIME, False),
    "relatime": (k.MS_RELATIME, True), "norelatime": (k.MS_RELATIME, False),
    "strictatime": (k.MS_STRICTATIME, True), "nostrictatime": (k.MS_STRICTATIME, False),
    "bind": (k.MS_BIND, True), "rbind": (k.MS_BIND | k.MS_REC, True),
    "nosymfollow": (k.MS_NOSYMFOLLOW, True),
}
_PROPAGATION = {
    "private": k.MS_PRIVATE, "rprivate": k.MS_PRIVATE | k.MS_REC,
    "shared": k.MS_SHARED, "rshared": k.MS_SHARED | k.MS_REC,
    "slave": k.MS_SLAVE, "rslave": k.MS_SLAVE | k.MS_REC,
    "unbindable": k.MS_UNBINDABLE, "runbindable": k.MS_UNBINDABLE | k.MS_REC,
}

MOUNT_OPTIONS = sorted([*_MOUNT_FLAGS, *_PROPAGATION])  # what parse_options knows (`features`)

# Docker's default devices: (path, type, major, minor, mode)
DEFAULT_DEVICES = [
    ("/dev/null", "c", 1, 3, 0o666), ("/dev/zero", "c", 1, 5, 0o666),
    ("/dev/full", "c", 1, 7, 0o666), ("/dev/random", "c", 1, 8, 0o666),
    ("/dev/urandom", "c", 1, 9, 0o666), ("/dev/tty", "c", 5, 0, 0o666),
]
DEV_SYMLINKS = [
    ("/proc/self/fd", "/dev/fd"), ("/proc/self/fd/0", "/dev/stdin"),
    ("/proc/self/fd/1", "/dev/stdout"), ("/proc/self/fd/2", "/dev/stderr"),
    ("pts/ptmx", "/dev/ptmx"),
]


def parse_options(options: list[str]) -> tuple[int, int, list[str]]:
    """Split mount(8)-style options into (flags, propagation flags, data options)."""
    flags, prop, data = 0, 0, []
    for opt in options or []:
        if opt in _MOUNT_FLAGS:
            bit, on = _MOUNT_FLAGS[opt]
            flags = flags | bit if on else flags & ~bit
        elif opt in _PROPAGATION:
            prop |= _PROPAGATION[opt]
        elif opt in ("defaults", ""):
            continue
        else:
            data.append(opt)
    return flags, prop, data


def secure_join(root: str, path: str) -> str:
    """Resolve ``path`` inside ``root`` as if root were "/": symlinks cannot escape.

    Each component is resolved in turn; an absolute symlink restarts at ``root``, ``..`` stops
    at ``root``. This is how a malicious image cannot make us mount over the host's /etc
    (the class of CVE-2021-30465, runc's mount-target symlink race, and of CVE-2019-19921).
    """
    parts = [p for p in path.split("/") if p not in ("", ".")]
    resolved: list[str] = []
    hops = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = os.path.join(root, *resolved, part)
        try:
            st = os.lstat(candidate)
        except FileNotFoundError:
            resolved.append(part)
            continue
        if stat.S_ISLNK(st.st_mode):
            hops += 1
            if hops > 40:
                raise InvalidArgument(f"too many levels of symbolic links in {path}")
            target = os.readlink(candidate)
            if target.startswith("/"):
                resolved = []
            parts = [p for p in target.split("/") if p not in ("", ".")] + parts
            continue
        resolved.append(part)
    return os.path.join(root, *resolved)


def _ensure_target(rootfs: str, target: str, source_is_dir: bool) -> None:
    if os.path.lexists(target):
        return
    k.mount_point(rootfs, target, source_is_dir)


def make_private(propagation: str | None) -> None:
    flags = _PROPAGATION.get(propagation or "rprivate", k.MS_PRIVATE | k.MS_REC)
    if not flags & k.MS_REC and propagation in ("private", "slave", "shared"):
        flags |= k.MS_REC  # Docker's "private" means the whole tree
    k.mount(None, "/", None, flags,
            why="so that mounts made for the container never propagate back to the host")


def _parent_mount(path: str) -> tuple[str, bool]:
    """The mount point holding path and whether it is shared (/proc/self/mountinfo)."""
    from minidock.util import mountinfo

    best, shared = "/", False
    real = os.path.realpath(path)
    for m in mountinfo.read():
        mp = m.target
        if (real == mp or real.startswith(mp.rstrip("/") + "/")) and len(mp) >= len(best):
            best, shared = mp, any(o.startswith("shared:") for o in m.optional)
    return best, shared


def bind_rootfs(rootfs: str, private_parent: bool = True) -> None:
    # runc's rootfsParentMountPrivate: with rootfsPropagation "shared" the mount holding the
    # rootfs is shared, and pivot_root refuses a shared parent (EINVAL); the bind below must not
    # propagate anywhere either (not done without a mount namespace of our own: that is the host's)
    parent, shared = _parent_mount(rootfs)
    if shared and private_parent:
        k.mount(None, parent, None, k.MS_PRIVATE,
                why="pivot_root refuses a new root whose parent mount is shared")
    k.mount(rootfs, rootfs, None, k.MS_BIND | k.MS_REC,
            why="pivot_root needs the new root to be a mount point")


def open_target(rootfs: str, dest: str) -> int | None:
    """The mount target, resolved by the kernel inside the rootfs (openat2 RESOLVE_IN_ROOT) and
    held open (O_PATH): mounting onto /proc/self/fd/N then mounts onto that very directory, even
    if a container sharing a volume swaps a path component for a symlink meanwhile (CVE-2021-30465,
    runc's fix). None where openat2 is missing (< 5.6): the path from secure_join is used."""
    rfd = os.open(rootfs, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        return k.openat2(rfd, dest.lstrip("/") or ".", os.O_PATH | os.O_CLOEXEC,
                         k.RESOLVE_IN_ROOT | k.RESOLVE_NO_MAGICLINKS)
    except KernelError as e:
        if e.errno == errno.ENOSYS:
            return None
        raise
    finally:
        os.close(rfd)


def mount_one(rootfs: str, m: dict, cgroup_mounter=None, userns: bool = False) -> None:
    dest = m.get("destination")
    if not dest or not dest.startswith("/"):
        raise InvalidArgument(f"mount destination {dest!r} must be an absolute path")
    target = secure_join(rootfs, dest)
    mtype = m.get("type") or ""
    if mtype == "cgroup":
        _mount_one(rootfs, m, target, dest, cgroup_mounter, userns)
        return
    source_is_dir = True
    if bool(parse_options(m.get("options", []))[0] & k.MS_BIND) or mtype == "bind":
        source = m.get("source") or ""
        if not os.path.exists(source):
            raise InvalidArgument(f"bind mount source path does not exist: {source}")
        source_is_dir = os.path.isdir(source)
    _ensure_target(rootfs, target, source_is_dir)
    fds: list[int] = []

    def held() -> str:
        """A descriptor of what `dest` is now (after a mount: the new mount's root, which later
        remounts and propagation changes must name), as /proc/self/fd/N."""
        fd = open_target(rootfs, dest)
        if fd is None:
            return target
        fds.append(fd)
        return f"/proc/self/fd/{fd}"

    try:
        _mount_one(rootfs, m, held(), dest, cgroup_mounter, userns, held)
    finally:
        for fd in fds:
            os.close(fd)


def _mount_one(rootfs: str, m: dict, target: str, dest: str, cgroup_mounter, userns: bool,
               held=lambda: "") -> None:
    mtype = m.get("type") or ""
    source = m.get("source") or mtype or "none"
    flags, prop, data = parse_options(m.get("options", []))
    is_bind = bool(flags & k.MS_BIND) or mtype == "bind"
    if mtype == "cgroup":
        _ensure_target(rootfs, target, True)
        if cgroup_mounter:
            cgroup_mounter(target, flags)
        return
    if is_bind:
        flags |= k.MS_BIND
        if not os.path.exists(source):
            raise InvalidArgument(f"bind mount source path does not exist: {source}")
        _ensure_target(rootfs, target, os.path.isdir(source))
        k.mount(source, target, None, flags & (k.MS_BIND | k.MS_REC),
                why=f"make host path {source} visible at {dest} in the container")
        target = held() or target
        # a bind mount ignores flags like ro on the first call: remount to apply them
        extra = flags & ~(k.MS_BIND | k.MS_REC)
        if extra:
            if userns:  # the host mount's flags are locked: keep them
                extra |= current_flags(target)
            k.mount(None, target, None, extra | k.MS_BIND | k.MS_REMOUNT,
                    why=f"apply {','.join(k.mount_options(extra))} to the bind mount at {dest}")
    elif mtype == "sysfs" and userns:
        _ensure_target(rootfs, target, True)
        try:
            k.mount(source, target, mtype, flags, ",".join(data) or None, why=_WHY["/sys"])
            target = held() or target
        except KernelError as e:
            if e.errno != errno.EPERM:
                raise
            # sysfs needs a network namespace of our own user namespace (not so when joined):
            # bind the host's, read-only, as runc does
            k.mount("/sys", target, None, k.MS_BIND | k.MS_REC,
                    why="user namespace without its own network namespace: bind the host's /sys")
            target = held() or target
            k.mount(None, target, None, k.MS_BIND | k.MS_REMOUNT | k.MS_RDONLY | current_flags(target),
                    why="/sys read-only")
    else:
        _ensure_target(rootfs, target, True)
        k.mount(source, target, mtype, flags, ",".join(data) or None,
                why=_WHY.get(dest, f"the spec asks for {mtype} at {dest}"))
        target = held() or target
    if prop:
        k.mount(None, target, None, prop, why=f"propagation of {dest} as the spec asks")


_WHY = {
    "/proc": "a proc filesystem of the new PID namespace: ps sees only the container",
    "/dev": "a private /dev: only the devices we create exist in the container",
    "/dev/pts": "a new devpts instance: the container's terminals, not the host's",
    "/sys": "sysfs read-only: the container can look at devices but not reconfigure them",
    "/dev/mqueue": "POSIX message queues of the new IPC namespace",
    "/dev/shm": "a private shared-memory tmpfs (64 MiB, like Docker)",
}


def create_devices(rootfs: str, devices: list[dict] | None, bind: bool = False) -> None:
    """Device nodes in the container's /dev: Docker's defaults plus the spec's.

    In a user namespace mknod is refused (a device node is a key to the host's hardware, only
    the host's root may make one): the host's node is bind-mounted instead, as runc does.
    """
    wanted = {d[0]: d for d in DEFAULT_DEVICES}
    for d in devices or []:
        wanted[d["path"]] = (d["path"], d.get("type", "c"), d.get("major", 0),
                             d.get("minor", 0), d.get("fileMode", 0o666))
    old = k.umask(0, why="device nodes get exactly the mode the spec asks for")
    try:
        for path, typ, major, minor, mode in wanted.values():
            target = secure_join(rootfs, path)
            if os.path.lexists(target):
                os.unlink(target)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            if bind:
                with open(target, "a"):
                    pass
                k.mount(path, target, None, k.MS_BIND,
                        why="user namespace: no mknod there, so bind the host's node instead")
                continue
            kind = stat.S_IFCHR if typ in ("c", "u") else stat.S_IFBLK if typ == "b" else stat.S_IFIFO
            k.mknod(target, kind | mode, major, minor,
                    why="only the devices Docker allows exist in the container's /dev")
        for src, link in DEV_SYMLINKS:
            target = secure_join(rootfs, link)
            if not os.path.lexists(target):
                k.symlink(src, target, why="the standard /dev links (fd, stdin, stdout, stderr, ptmx)")
    finally:
        k.umask(old, why="back to the umask the init had")


def bind_console(rootfs: str, slave_path: str) -> None:
    """Bind the container's pty over /dev/console.

    CVE-2025-52565 (runc): a /dev/console that is a symlink (an image's, or one planted through a
    shared mount) made the bind land on its target, e.g. a /proc file the container could then
    write. The target is resolved inside the rootfs, and whatever is not a plain file there is
    replaced by an empty one right before the mount (made, as runc does, when it is missing);
    only the init runs in the container at that point, so nothing can swap it in between.
    """
    dev = secure_join(rootfs, "/dev")
    target = os.path.join(dev, "console")
    try:
        st = os.lstat(target)
        if not stat.S_ISREG(st.st_mode):
            os.unlink(target)  # a link, a device node, ...: not ours to mount over
    except FileNotFoundError:
        pass
    try:
        os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600))
    except FileExistsError:
        pass
    k.mount(slave_path, target, None, k.MS_BIND,
            why="/dev/console is the container's terminal, as on a real machine")


def pivot(rootfs: str) -> None:
    """pivot_root(".", ".") and detach the old root: no path leads back to the host."""
    k.chdir(rootfs, why="enter the new root before swapping it in")
    k.pivot_root(".", ".", why="the container's rootfs becomes / and the host's root is stacked on it")
    # the old root now sits on top of "."; make it a slave so unmounting it cannot propagate
    k.mount(None, ".", None, k.MS_SLAVE | k.MS_REC,
            why="make the old root a slave, so detaching it cannot touch the host's mounts")
    k.umount(".", k.MNT_DETACH, why="detach the host's root: nothing of it is reachable any more")
    k.chdir("/", why="start at the container's /")


def chroot_into(rootfs: str) -> None:
    """The fallback (--no-pivot): weaker, the old root stays reachable to a privileged process."""
    k.chdir(rootfs, why="enter the new root")
    k.mount(rootfs, "/", None, k.MS_MOVE, why="move the rootfs mount over / (chroot fallback)")
    k.chroot(".", why="chroot fallback: the host's root stays in the mount table (see docs)")
    k.chdir("/", why="start at the container's /")


def chroot_only(rootfs: str) -> None:
    """Lab 02's broken mode (`run --chroot`), and runc's for a spec without a mount namespace:
    a bare chroot(2), nothing moved over /.

    The host's root stays the root of the mount namespace, and chroot changes only how this
    process resolves "/": a process with CAP_SYS_CHROOT chroots into a subdirectory, keeps its
    working directory outside it, climbs with ".." and chroots again at the host's / (the classic
    escape, docs/labs/escape/chroot-escape.c). Never a boundary; here to be broken on purpose.
    """
    k.chdir(rootfs, why="enter the new root")
    k.chroot(".", why="a bare chroot: the host's / is still the mount namespace's root (escapable)")
    k.chdir("/", why="start at the container's /")


def mask_paths(paths: list[str]) -> None:
    """Hide host information: files get /dev/null over them, directories an empty ro tmpfs."""
    for p in paths or []:
        if not os.path.lexists(p):
            continue
        if os.path.isdir(p) and not os.path.islink(p):
            k.mount("tmpfs", p, "tmpfs", k.MS_RDONLY, None,
                    why=f"mask {p}: it would show the host's hardware or kernel internals")
        else:
            k.mount("/dev/null", p, None, k.MS_BIND,
                    why=f"mask {p}: reading it would leak host kernel information")


_ST_TO_MS = ((os.ST_NOSUID, k.MS_NOSUID), (os.ST_NODEV, k.MS_NODEV), (os.ST_NOEXEC, k.MS_NOEXEC),
             (os.ST_NOATIME, k.MS_NOATIME), (os.ST_NODIRATIME, k.MS_NODIRATIME),
             (os.ST_RELATIME, k.MS_RELATIME))


def current_flags(path: str) -> int:
    """The per-mount flags `path`'s mount has now, for a remount that must keep them.

    A bind remount sets the flags it is given and clears the others: without these, making
    /proc/sys read-only would also make it suid/dev/exec again, and in a user namespace the
    kernel refuses (EPERM) to clear flags that the host's mount has ("locked" flags).
    """
    try:
        f = os.statvfs(path).f_flag
    except OSError:
        return 0
    return sum(ms for st, ms in _ST_TO_MS if f & st)


def readonly_paths(paths: list[str]) -> None:
    for p in paths or []:
        if not os.path.lexists(p):
            continue
        k.mount(p, p, None, k.MS_BIND | k.MS_REC, why=f"{p} must not be writable from inside")
        k.mount(None, p, None, k.MS_BIND | k.MS_REMOUNT | k.MS_RDONLY | current_flags(p),
                why=f"make {p} read-only: writing it would change the host kernel")


def readonly_root() -> None:
    k.mount(None, "/", None, k.MS_BIND | k.MS_REMOUNT | k.MS_RDONLY | current_flags("/"),
            why="--read-only: the container's root filesystem cannot be written")
