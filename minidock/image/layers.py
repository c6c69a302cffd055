"""Layer tarballs: decompression, digests, and safe unpacking into overlayfs snapshot dirs.

A layer is a tar stream (gzip, zstd, or plain). Unpacking turns OCI/Docker whiteouts into what
overlayfs understands, so the directory can be used directly as an overlay lower dir:

    .wh.<name>        -> a character device 0:0 named <name>   (overlayfs whiteout)
    .wh..wh..opq      -> xattr trusted.overlay.opaque="y" on the directory (opaque dir)

Entries that would land outside the layer — absolute paths, `..`, a path through a symlink, a
hardlink to outside — are refused with :class:`BadLayer`; the caller unpacks into a temporary
directory and throws it away, so a refused layer leaves nothing behind.

Unpacking uses plain os calls (it is file creation in our own state directory, not a change to
the process's kernel state, so it does not go through minidock.kernel).
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import stat
import subprocess
import tarfile
import zlib

from minidock import kernel as k
from minidock.errors import KernelError, MinidockError

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
XZ_MAGIC = b"\xfd7zXZ\x00"
BZIP2_MAGIC = b"BZh"

WHITEOUT_PREFIX = ".wh."
OPAQUE = ".wh..wh..opq"


class BadLayer(MinidockError):
    pass


def compression_of(head: bytes) -> str:
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    if head.startswith(ZSTD_MAGIC):
        return "zstd"
    if head.startswith(XZ_MAGIC):
        return "xz"
    if head.startswith(BZIP2_MAGIC):
        return "bzip2"
    return "none"


class _Decompressor(io.RawIOBase):
    """A readable stream of the uncompressed bytes of `raw` (whatever its compression)."""

    def __init__(self, raw):
        self.raw = raw
        head = raw.read(6)
        self.kind = compression_of(head)
        self._proc = None
        if self.kind == "gzip":
            self._z = zlib.decompressobj(16 + zlib.MAX_WBITS)
            self._pending = self._z.decompress(head)
        elif self.kind in ("zstd", "xz", "bzip2"):
            # streaming through the command-line tool keeps us free of extra Python packages
            tool = {"zstd": ["zstd", "-dc"], "xz": ["xz", "-dc"], "bzip2": ["bzip2", "-dc"]}[self.kind]
            if shutil.which(tool[0]) is None:
                raise BadLayer(f"cannot decompress a {self.kind} layer: `{tool[0]}` is not installed",
                               f"Install it: apt-get install {tool[0]}")
            self._proc = subprocess.Popen(tool, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
            import threading

            def feed():
                try:
                    self._proc.stdin.write(head)
                    shutil.copyfileobj(raw, self._proc.stdin, 1 << 20)
                except (BrokenPipeError, ValueError):
                    pass
                finally:
                    try:
                        self._proc.stdin.close()
                    except OSError:
                        pass

            self._feeder = threading.Thread(target=feed, daemon=True)
            self._feeder.start()
            self._pending = b""
        else:
            self._pending = head
        self._eof = False

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        n = len(b)
        while len(self._pending) < n and not self._eof:
            if self._proc is not None:
                chunk = self._proc.stdout.read1(1 << 20)
                if not chunk:
                    self._eof = True
                    if self._proc.wait() != 0:
                        raise BadLayer(f"corrupt {self.kind} layer: the decompressor failed")
                self._pending += chunk
                continue
            chunk = self.raw.read(1 << 20)
            if not chunk:
                self._eof = True
                if self.kind == "gzip":
                    self._pending += self._z.flush()
                    if not self._z.eof:
                        raise BadLayer("truncated gzip layer: the stream ends before its end marker")
                break
            self._pending += self._z.decompress(chunk) if self.kind == "gzip" else chunk
        out = self._pending[:n]
        self._pending = self._pending[n:]
        b[:len(out)] = out
        return len(out)


class HashingReader(io.RawIOBase):
    """Pass bytes through while computing their sha256 and size."""

    def __init__(self, raw):
        self.raw = raw
        self.h = hashlib.sha256()
        self.size = 0

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        data = self.raw.read(len(b))
        self.h.update(data)
        self.size += len(data)
        b[:len(data)] = data
        return len(data)

    @property
    def digest(self) -> str:
        return "sha256:" + self.h.hexdigest()


def uncompressed(raw) -> io.BufferedReader:
    return io.BufferedReader(_Decompressor(raw), 1 << 20)


def _clean(name: str) -> str | None:
    """A member name relative to the layer root, or None for the root itself; refuse escapes."""
    if name.startswith("/"):
        raise BadLayer(f"layer entry {name!r} has an absolute path", "The layer tarball is malformed or malicious.")
    parts = []
    for p in name.split("/"):
        if p in ("", "."):
            continue
        if p == "..":
            raise BadLayer(f"layer entry {name!r} points outside the layer (..)",
                           "The layer tarball is malformed or malicious.")
        parts.append(p)
    return "/".join(parts) or None


def _parent_ok(dest: str, rel: str) -> str:
    """Create missing parent dirs of `rel`, refusing any parent that is a symlink (escape)."""
    cur = dest
    for comp in rel.split("/")[:-1]:
        cur = os.path.join(cur, comp)
        try:
            st = os.lstat(cur)
        except FileNotFoundError:
            os.mkdir(cur, 0o755)
            continue
        if stat.S_ISLNK(st.st_mode):
            raise BadLayer(f"layer entry {rel!r} goes through the symlink {cur[len(dest):]!r}",
                           "The layer tarball is malformed or malicious.")
        if not stat.S_ISDIR(st.st_mode):
            os.unlink(cur)
            os.mkdir(cur, 0o755)
    return cur


def _remove(path: str) -> None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(path)
    else:
        os.unlink(path)


class _EndTracker(io.RawIOBase):
    """Where the last non-zero byte was: a tar must end with zero blocks after its last member
    (tarfile in stream mode treats a truncated header like the end of the archive)."""

    def __init__(self, raw):
        self.raw, self.size, self.last_nonzero = raw, 0, -1

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        data = self.raw.read(len(b))
        stripped = len(data.rstrip(b"\0"))
        if stripped:
            self.last_nonzero = self.size + stripped - 1
        self.size += len(data)
        b[:len(data)] = data
        return len(data)


def unpack(stream, dest: str) -> None:
    """Unpack an uncompressed tar stream into the (existing, empty) directory dest."""
    dir_times: list[tuple[str, tarfile.TarInfo]] = []
    stream = _EndTracker(stream)
    try:
        tf = tarfile.open(fileobj=io.BufferedReader(stream, 1 << 20), mode="r|")
    except tarfile.TarError as e:
        raise BadLayer(f"not a tar archive: {e}") from None
    try:
        for m in tf:
            rel = _clean(m.name)
            if rel is None:
                if m.isdir():
                    os.chmod(dest, m.mode & 0o7777)
                    dir_times.append((dest, m))
                continue
            _parent_ok(dest, rel)
            target = os.path.join(dest, rel)
            base = os.path.basename(rel)
            if base == OPAQUE:
                k.setxattr(os.path.dirname(target), "trusted.overlay.opaque", b"y",
                           why="an opaque dir: overlayfs hides the lower layers' contents")
                continue
            if base.startswith(WHITEOUT_PREFIX):
                hidden = os.path.join(os.path.dirname(target), base[len(WHITEOUT_PREFIX):])
                _remove(hidden)
                k.mknod(hidden, stat.S_IFCHR | 0o600, 0, 0, why="a whiteout: overlayfs hides the lower file")
                continue
            _extract(tf, m, dest, target)
            if m.isdir():
                dir_times.append((target, m))
    except tarfile.TarError as e:
        raise BadLayer(f"corrupt or truncated layer tarball: {e}") from None
    except EOFError:
        raise BadLayer("truncated layer tarball: unexpected end of data") from None
    finally:
        end = tf.offset
        tf.close()
    while stream.read(1 << 20):
        pass
    if stream.last_nonzero >= end or stream.size < end + 512:
        raise BadLayer("truncated or corrupt layer tarball: it does not end with tar's end-of-archive blocks")
    for path, m in reversed(dir_times):
        os.utime(path, (m.mtime, m.mtime), follow_symlinks=False)


def _extract(tf: tarfile.TarFile, m: tarfile.TarInfo, dest: str, target: str) -> None:
    if m.isdir():
        try:
            st = os.lstat(target)
            if not stat.S_ISDIR(st.st_mode):
                _remove(target)
                os.mkdir(target, 0o700)
        except FileNotFoundError:
            os.mkdir(target, 0o700)
    else:
        _remove(target)
        if m.isreg():
            src = tf.extractfile(m)
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            with os.fdopen(fd, "wb") as f:
                shutil.copyfileobj(src, f, 1 << 20)
                if f.tell() != m.size:
                    raise BadLayer(f"truncated layer tarball: {m.name!r} is cut short")
        elif m.issym():
            os.symlink(m.linkname, target)
        elif m.islnk():
            src_rel = _clean(m.linkname)
            if src_rel is None:
                raise BadLayer(f"layer entry {m.name!r} is a hardlink to the layer root")
            src = os.path.join(_parent_ok(dest, src_rel), os.path.basename(src_rel))
            if not os.path.lexists(src):
                raise BadLayer(f"layer entry {m.name!r} is a hardlink to {m.linkname!r}, which is not in the layer")
            os.link(src, target, follow_symlinks=False)
            return  # a hardlink shares the inode: metadata is the target's
        elif m.ischr() or m.isblk():
            kind = stat.S_IFCHR if m.ischr() else stat.S_IFBLK
            k.mknod(target, kind | 0o600, m.devmajor, m.devminor, why="a device node of the layer")
        elif m.isfifo():
            os.mkfifo(target, 0o600)
        else:
            return  # sockets and unknown types are skipped, as Docker does
    os.lchown(target, m.uid, m.gid)
    if not m.issym():
        os.chmod(target, m.mode & 0o7777)
    for key, val in (m.pax_headers or {}).items():
        if key.startswith("SCHILY.xattr."):
            try:
                k.setxattr(target, key[13:], val.encode("utf-8", "surrogateescape"), why="an xattr of the layer")
            except KernelError:
                pass  # e.g. security.* xattrs the filesystem refuses
    if not m.isdir():
        os.utime(target, (m.mtime, m.mtime), follow_symlinks=False)


def dir_size(path: str) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(root, f)).st_size
            except OSError:
                pass
    return total
