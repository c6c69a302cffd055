"""The build context: which files a COPY/ADD may see, and the checksum of what it copies.

A source is looked up the way BuildKit does: relative to the context root (a leading `/` or `..`
cannot climb out of it), with Go's `filepath.Match` wildcards, minus what `.dockerignore`
excludes (the Dockerfile and .dockerignore are excluded from nothing but COPY can still be
refused them). A missing or excluded source fails with BuildKit's message.

The checksum of a source set hashes, per file in sorted order: its path, type, permission bits,
link target and the sha256 of its content — never mtimes or owners — so touching a file does not
invalidate the cache but changing a byte does. Contents come from :class:`cache.FileHashes`: a
file whose stat (size, mtime, inode, ctime) is unchanged since the last build is not read again.
"""

from __future__ import annotations

import os
import stat

from minidock.build.cache import sha256
from minidock.errors import MinidockError

WILDCARDS = set("*?[")


def _has_wildcard(part: str) -> bool:
    """Does a path component hold an unescaped `*`, `?` or `[` (Go's filepath.Match syntax)?"""
    i = 0
    while i < len(part):
        if part[i] == "\\":
            i += 2
            continue
        if part[i] in WILDCARDS:
            return True
        i += 1
    return False


def _unescape(part: str) -> str:
    if "\\" not in part:
        return part
    import re

    return re.sub(r"\\(.)", r"\1", part)


def go_match_regex(pattern: str):
    """Go's filepath.Match for one path component as a regex: `*`, `?`, `[...]`/`[^...]`
    classes (with ranges), and `\\` escaping the next character."""
    import re

    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
        elif c == "*":
            out.append("[^/]*")
            i += 1
        elif c == "?":
            out.append("[^/]")
            i += 1
        elif c == "[":
            j, cls = i + 1, ""
            if j < len(pattern) and pattern[j] == "^":
                cls, j = "^", j + 1
            first = True
            while j < len(pattern) and (pattern[j] != "]" or first):
                ch = pattern[j]
                if ch == "\\" and j + 1 < len(pattern):
                    cls += re.escape(pattern[j + 1])
                    j += 2
                elif ch == "-" and not first:
                    cls += "-"
                    j += 1
                else:
                    cls += re.escape(ch)
                    j += 1
                first = False
            if j >= len(pattern):
                raise SourceError(f"syntax error in pattern: {pattern}")
            out.append(f"[{cls}]")
            i = j + 1
        else:
            out.append(re.escape(c))
            i += 1
    return re.compile("".join(out) + r"\Z", re.S)


class SourceError(MinidockError):
    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message, hint, exit_code=1)


def not_found(path: str) -> SourceError:
    return SourceError(f'failed to compute cache key: failed to calculate checksum of ref: "/{path}": not found',
                       "The path is missing from the build context, or .dockerignore excludes it.")


class Tree:
    """A directory tree COPY reads from: the context, or a stage's/image's mounted rootfs."""

    def __init__(self, root: str, patterns: list[str] | None = None, hashes=None):
        self.root = os.path.realpath(root)
        self.patterns = [p for p in (patterns or []) if p.strip() and not p.strip().startswith("#")]
        self.matcher = None
        if self.patterns:
            from minidock.build.dockerignore import Matcher

            self.matcher = Matcher(self.patterns)
        self.negations = []
        if any(p.strip().startswith("!") for p in self.patterns):
            from minidock.build.dockerignore import go_clean

            self.negations = [go_clean(p.strip()[1:].strip()) for p in self.patterns if p.strip().startswith("!")]
        self.hashes = hashes

    def excluded(self, rel: str) -> bool:
        return bool(self.matcher) and rel not in ("", ".") and self.matcher.matches(rel)

    def clean(self, src: str) -> str:
        """A source as a path relative to the root (Docker: `/x`, `./x` and `../x` are all x)."""
        rel = os.path.normpath("/" + src).lstrip("/")
        return "" if rel in (".", "") else rel

    def resolve(self, src: str) -> list[str]:
        """Relative paths a source names. A plain path must exist (and not be excluded); a
        wildcard may match nothing (BuildKit copies nothing then)."""
        rel = self.clean(src)
        if any(_has_wildcard(p) for p in rel.split("/")):
            parts = rel.split("/")
            found = [""]
            for i, part in enumerate(parts):
                nxt = []
                for base in found:
                    d = os.path.join(self.root, base)
                    if _has_wildcard(part):
                        rx = go_match_regex(part)
                        try:
                            names = sorted(os.listdir(d))
                        except (NotADirectoryError, FileNotFoundError):
                            continue
                        nxt += [os.path.join(base, n) for n in names if rx.match(n)]
                    elif os.path.lexists(os.path.join(d, _unescape(part))):
                        nxt.append(os.path.join(base, _unescape(part)))
                found = list(dict.fromkeys(f for f in nxt if not self.excluded(f)))
                if i < len(parts) - 1:
                    found = [f for f in found if os.path.isdir(os.path.join(self.root, f))]
            return found
        rel = "/".join(_unescape(p) for p in rel.split("/"))
        if not os.path.lexists(os.path.join(self.root, rel)) or self.excluded(rel):
            raise not_found(rel)
        return [rel]

    def walk(self, rel: str):
        """(relative path, lstat) of `rel` and everything under it that is not excluded."""
        top = os.path.join(self.root, rel)
        st = os.lstat(top)
        yield rel, st
        if not stat.S_ISDIR(st.st_mode):
            return
        stack = [rel]
        while stack:
            d = stack.pop()
            try:
                entries = sorted(os.scandir(os.path.join(self.root, d)), key=lambda e: e.name)
            except OSError:
                continue
            for e in entries:
                r = os.path.join(d, e.name) if d else e.name
                if self.excluded(r):
                    if e.is_dir(follow_symlinks=False) and self._may_reinclude(r):
                        stack.append(r)  # an exception (!pattern) may bring something back
                    continue
                est = e.stat(follow_symlinks=False)
                yield r, est
                if stat.S_ISDIR(est.st_mode):
                    stack.append(r)

    def _may_reinclude(self, d: str) -> bool:
        """Docker's walker descends into an excluded directory only when an exception pattern
        starts with that directory's path (`!a/b/keep` for `a/b`); `!**/x` does not count."""
        return any((n + "/").startswith(d + "/") for n in self.negations)

    def checksum(self, rels: list[str]) -> str:
        """Content checksum of these sources (see the module docstring)."""
        h = sha256()
        for rel in rels:
            h.update(f"@{rel}\n".encode())
            for r, st in self.walk(rel):
                mode = st.st_mode
                line = f"{r}\0{stat.S_IFMT(mode):o}\0{stat.S_IMODE(mode):o}\0"
                if stat.S_ISREG(mode):
                    p = os.path.join(self.root, r)
                    line += self.hashes.sha(p, st) if self.hashes else _sha(p)
                elif stat.S_ISLNK(mode):
                    line += os.readlink(os.path.join(self.root, r))
                h.update(line.encode("utf-8", "surrogateescape") + b"\n")
        return h.hexdigest()


def _sha(path: str) -> str:
    h = sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()
