"""COPY and ADD into a build step's mounted rootfs, with Docker's rules.

* destination: relative to WORKDIR; ending in `/` (or an existing directory) means "into";
  missing parent directories are created (0755, owned by --chown's user or root);
* a directory source copies its *contents*; a file keeps its permission bits and mtime;
  symlinks are copied as symlinks; every path inside the rootfs is resolved with
  runtime.rootfs.secure_join, so a symlink in the image cannot send a write to the host;
* owner: --chown's user/group (names from the rootfs' /etc/passwd and /etc/group), else
  0:0 for context files, the source's owner for --from copies and tar members;
* --chmod sets the mode of every file and directory copied;
* ADD: a local tar (plain, gzip, bzip2, xz, zstd) is extracted into the destination; a URL is
  downloaded (mode 0600, mtime from Last-Modified), with a clear error when unreachable.
"""

from __future__ import annotations

import os
import shutil
import stat

from minidock.errors import MinidockError
from minidock.runtime.rootfs import secure_join


class CopyError(MinidockError):
    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message, hint, exit_code=1)


def owner(rootfs: str, spec: str) -> tuple[int, int]:
    """--chown USER[:GROUP] (names or numbers) -> (uid, gid), looked up in the rootfs."""
    from minidock.engine.bundle import _read_db

    user, _, group = spec.partition(":")
    uid = gid = None
    if user.isdigit():
        uid = int(user)
    for e in _read_db(rootfs, "passwd"):
        if len(e) >= 4 and (e[0] == user or (user.isdigit() and e[2] == user)):
            uid, gid = int(e[2]), int(e[3])
            break
    if uid is None:
        raise CopyError(f"unable to convert uid/gid chown string to host mapping: can't find uid for user {user}: "
                        "no such user: " + user)
    if group:
        gid = int(group) if group.isdigit() else None
        for e in _read_db(rootfs, "group"):
            if len(e) >= 3 and e[0] == group:
                gid = int(e[2])
                break
        if gid is None:
            raise CopyError(f"unable to convert uid/gid chown string to host mapping: can't find gid for group "
                            f"{group}: no such group: {group}")
    elif gid is None:
        gid = uid
    return uid, gid


def is_archive(path: str) -> bool:
    import tarfile

    from minidock.image.layers import compression_of

    try:
        with open(path, "rb") as f:
            head = f.read(512)
    except OSError:
        return False
    if compression_of(head) != "none":
        try:
            from minidock.image.layers import uncompressed

            with open(path, "rb") as f:
                data = uncompressed(f).read(512)
        except Exception:  # noqa: BLE001 - not an archive we can read: copy it as a file
            return False
        return len(data) >= 262 and data[257:262] == b"ustar" or _v7(data)
    return tarfile.is_tarfile(path) and (len(head) >= 262 and head[257:262] == b"ustar" or _v7(head))


def _v7(block: bytes) -> bool:
    if len(block) < 512:
        return False
    try:
        chk = int(block[148:156].split(b"\0")[0].strip() or b"-1", 8)
    except ValueError:
        return False
    return chk == sum(block[:148]) + 256 + sum(block[156:512])


def fetch(url: str, workdir: str, checksum: str | None = None) -> tuple[str, str]:
    """Download an ADD URL into workdir -> (path, sha256). The file name is kept aside."""
    import hashlib
    import urllib.error
    import urllib.request

    path = os.path.join(workdir, "download")
    h = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=30) as r, open(path, "wb") as out:
            while chunk := r.read(1 << 20):
                h.update(chunk)
                out.write(chunk)
            lm = r.headers.get("Last-Modified")
    except urllib.error.HTTPError as e:
        raise CopyError(f"failed to load cache key: invalid response status {e.code}",
                        f"ADD {url}: the server answered {e.code} {e.reason}.") from None
    except (urllib.error.URLError, OSError, ValueError) as e:
        reason = getattr(e, "reason", e)
        raise CopyError(f"failed to load cache key: Get \"{url}\": {reason}",
                        "ADD fetches URLs at build time: check the address and that it is reachable.") from None
    digest = "sha256:" + h.hexdigest()
    if checksum and checksum != digest:
        raise CopyError(f"digest mismatch for {url}: expected {checksum}, got {digest}")
    if lm:
        import email.utils

        t = email.utils.parsedate_to_datetime(lm).timestamp()
        os.utime(path, (t, t))
    with open(path + ".name", "w") as f:
        from urllib.parse import urlparse

        f.write(os.path.basename(urlparse(url).path.rstrip("/")) or "download")
    return path, digest


class Copier:
    def __init__(self, rootfs: str, *, owner: tuple[int, int] | None = None, mode: int | None = None):
        self.rootfs, self.owner, self.mode = rootfs, owner, mode

    def host(self, path: str) -> str:
        return secure_join(self.rootfs, path)

    def mkdirs(self, path: str) -> str:
        """mkdir -p inside the rootfs; new dirs 0755 owned by the --chown user (or root)."""
        cur = "/"
        for comp in [c for c in path.split("/") if c]:
            cur = os.path.join(cur, comp)
            h = self.host(cur)
            if os.path.isdir(h):
                continue
            if os.path.lexists(h):
                raise CopyError(f"cannot copy to {path}: {cur} exists and is not a directory")
            os.mkdir(h)
            os.chmod(h, 0o755)
            uid, gid = self.owner or (0, 0)
            os.lchown(h, uid, gid)
        return self.host(path)

    def _target(self, dest: str, name: str, is_dir_src: bool) -> str:
        """Where a source named `name` goes (the trailing-slash rules)."""
        if is_dir_src:
            return dest.rstrip("/") or "/"
        if dest.endswith("/") or os.path.isdir(self.host(dest)):
            return os.path.join(dest, name)
        return dest

    def _place(self, src: str, st: os.stat_result, dst_path: str, keep_owner: bool) -> None:
        """Copy one entry to `dst_path` (a container path); its parent exists."""
        h = self.host(os.path.dirname(dst_path))
        h = os.path.join(h, os.path.basename(dst_path))
        uid, gid = self.owner if self.owner else ((st.st_uid, st.st_gid) if keep_owner else (0, 0))
        mode = stat.S_IMODE(st.st_mode)
        if stat.S_ISDIR(st.st_mode):
            if os.path.lexists(h) and not os.path.isdir(h) or os.path.islink(h):
                os.unlink(h)
            if not os.path.isdir(h):
                os.mkdir(h)
            os.chmod(h, self.mode if self.mode is not None else mode)
            os.lchown(h, uid, gid)
            return
        if os.path.isdir(h) and not os.path.islink(h):
            raise CopyError(f"cannot copy to non-directory: {dst_path} is a directory")
        if os.path.lexists(h):
            os.unlink(h)
        if stat.S_ISLNK(st.st_mode):
            os.symlink(os.readlink(src), h)
            os.lchown(h, uid, gid)
            os.utime(h, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)
            return
        if stat.S_ISREG(st.st_mode):
            shutil.copyfile(src, h, follow_symlinks=False)
        elif stat.S_ISFIFO(st.st_mode) or stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
            os.mknod(h, st.st_mode, st.st_rdev)
        else:
            return  # sockets are not copied
        os.chown(h, uid, gid)
        os.chmod(h, self.mode if self.mode is not None else mode)
        os.utime(h, ns=(st.st_atime_ns, st.st_mtime_ns))

    def copy(self, tree, rel: str, dest: str, *, extract: bool, keep_owner: bool) -> None:
        """Copy `rel` of a context.Tree to `dest` (a container path)."""
        src = os.path.join(tree.root, rel)
        st = os.lstat(src)
        is_dir = stat.S_ISDIR(st.st_mode)
        if extract and stat.S_ISREG(st.st_mode) and is_archive(src):
            return self.extract(src, dest)
        target = self._target(dest, os.path.basename(rel) or "/", is_dir)
        self.mkdirs(os.path.dirname(target.rstrip("/")) or "/")
        dirs = []
        for r, est in tree.walk(rel):
            sub = (r[len(rel):].lstrip("/") if rel else r) if r != rel else ""
            path = os.path.join(target, sub) if sub else target
            if path.rstrip("/") in ("", "/"):
                if not stat.S_ISDIR(est.st_mode):
                    raise CopyError("cannot copy a file to /")
                continue  # the rootfs root keeps its own metadata
            if not sub and is_dir:
                self.mkdirs(path)  # the destination dir: created if missing, never given the source dir's
                continue           # metadata (BuildKit copies a directory's *contents*)
            parent = os.path.dirname(path.rstrip("/"))
            if not os.path.isdir(self.host(parent)):
                self.mkdirs(parent)  # under a directory .dockerignore excluded but a !pattern brought back
            self._place(os.path.join(tree.root, r), est, path.rstrip("/"), keep_owner)
            if stat.S_ISDIR(est.st_mode):
                dirs.append((path, est))
        for path, est in reversed(dirs):
            os.utime(self.host(path), ns=(est.st_atime_ns, est.st_mtime_ns))

    def extract(self, archive: str, dest: str) -> None:
        """ADD's auto-extraction: the archive's tree merged into dest (owners from the tar)."""
        import tempfile

        from minidock.build.context import Tree
        from minidock.image import layers as L

        self.mkdirs(dest)
        tmp = tempfile.mkdtemp(prefix="add-", dir=os.path.dirname(os.path.dirname(self.rootfs)))
        try:
            with open(archive, "rb") as f:
                try:
                    L.unpack(L.uncompressed(f), tmp)
                except L.BadLayer as e:
                    raise CopyError(f"ADD: cannot extract {os.path.basename(archive)}: {e.message}") from None
            self.copy(Tree(tmp), "", dest.rstrip("/") + "/", extract=False, keep_owner=True)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def write_file(self, name: str, content: str, dest: str) -> None:
        """COPY <<EOF /dest: a heredoc becomes a file (0644 unless --chmod)."""
        target = dest + name if dest.endswith("/") else dest
        self.mkdirs(os.path.dirname(target) or "/")
        h = self.host(target)
        if os.path.lexists(h) and not os.path.isdir(h):
            os.unlink(h)
        with open(h, "w") as f:
            f.write(content)
        os.chmod(h, self.mode if self.mode is not None else 0o644)
        uid, gid = self.owner or (0, 0)
        os.chown(h, uid, gid)

    def copy_url(self, url: str, path: str, dest: str) -> None:
        with open(path + ".name") as f:
            name = f.read()
        target = dest + name if dest.endswith("/") else dest
        self.mkdirs(os.path.dirname(target) or "/")
        h = self.host(target)
        if os.path.lexists(h) and not os.path.isdir(h):
            os.unlink(h)
        shutil.copyfile(path, h)
        os.chmod(h, self.mode if self.mode is not None else 0o600)
        uid, gid = self.owner or (0, 0)
        os.chown(h, uid, gid)
        st = os.stat(path)
        os.utime(h, ns=(st.st_atime_ns, st.st_mtime_ns))
        os.unlink(path + ".name")
