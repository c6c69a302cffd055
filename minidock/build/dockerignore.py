""".dockerignore: Docker's pattern rules (moby/patternmatcher and moby/patternmatcher/ignorefile).

* Each line is a pattern; lines starting with `#` are comments; blank lines are skipped;
  patterns are trimmed, cleaned like Go's filepath.Clean, a leading `/` is dropped.
* `*` matches within one path element, `?` one character (never `/`), `[a-z]` / `[^a-z]`
  classes, `\\` escapes; `**` matches any number of directories (also none); a pattern ending in
  `**` matches everything below.
* A pattern matching a directory excludes everything below it. `!pattern` re-includes; the
  last matching pattern wins.
* With BuildKit (the reference here) the Dockerfile and .dockerignore are ordinary context
  files: `COPY . /` copies them unless .dockerignore excludes them; the Dockerfile is read
  whether or not it is excluded.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

from minidock.errors import InvalidArgument

_ESCAPE = set(".+()|{}$")


def go_clean(p: str) -> str:
    """Go's path.Clean (slash-separated)."""
    if p == "":
        return "."
    rooted = p.startswith("/")
    out: list[str] = []
    for part in p.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if out and out[-1] != "..":
                out.pop()
            elif not rooted:
                out.append("..")
            continue
        out.append(part)
    s = "/".join(out)
    if rooted:
        return "/" + s
    return s or "."


def go_dir(p: str) -> str:
    i = p.rfind("/")
    return go_clean(p[:i + 1])


def _check_syntax(pattern: str) -> None:
    """Go's filepath.Match error cases: unclosed or empty classes, bad ranges, dangling `\\`."""
    bad = InvalidArgument(f"syntax error in pattern: {pattern!r}",
                          "fix the pattern in .dockerignore (see filepath.Match syntax)")
    i, n = 0, len(pattern)
    while i < n:
        ch = pattern[i]
        if ch == "\\":
            if i + 1 >= n:
                raise bad
            i += 2
            continue
        if ch == "[":
            i += 1
            if i < n and pattern[i] == "^":
                i += 1
            first = True
            while True:
                if i >= n:
                    raise bad
                if pattern[i] == "]" and not first:
                    i += 1
                    break
                first = False
                lo, i = _class_char(pattern, i, bad)
                if i < n and pattern[i] == "-":
                    hi, i = _class_char(pattern, i + 1, bad)
                    if hi < lo:
                        raise bad
            continue
        i += 1


def _class_char(p: str, i: int, bad: Exception) -> tuple[str, int]:
    if i >= len(p) or p[i] in "-]":
        raise bad
    if p[i] == "\\":
        if i + 1 >= len(p):
            raise bad
        return p[i + 1], i + 2
    return p[i], i + 1


class _Pattern:
    __slots__ = ("cleaned", "dirs", "exclusion", "kind", "regex")

    def __init__(self, p: str, exclusion: bool) -> None:
        self.cleaned = p
        self.exclusion = exclusion
        self.dirs = p.split("/")
        self.kind, self.regex = self._compile()

    def _compile(self):
        reg = ["^"]
        kind = "exact"
        p = self.cleaned
        i, n = 0, len(p)
        first = True
        while i < n:
            ch = p[i]
            i += 1
            if ch == "*":
                if i < n and p[i] == "*":
                    i += 1
                    if i < n and p[i] == "/":
                        i += 1
                    if i >= n:
                        if kind == "exact":
                            kind = "prefix"
                        else:
                            reg.append(".*")
                            kind = "regexp"
                    else:
                        reg.append("(.*/)?")
                        kind = "regexp"
                    if first:
                        kind = "suffix"
                else:
                    reg.append("[^/]*")
                    kind = "regexp"
            elif ch == "?":
                reg.append("[^/]")
                kind = "regexp"
            elif ch in _ESCAPE:
                reg.append("\\" + ch)
            elif ch == "\\":
                if i < n:
                    reg.append(re.escape(p[i]))
                    i += 1
                    kind = "regexp"
                else:
                    reg.append("\\\\")
            elif ch in "[]":
                reg.append(ch)
                kind = "regexp"
            else:
                reg.append(ch)
            first = False
        if kind == "regexp":
            return kind, re.compile("".join(reg) + r"\Z", re.S)
        return kind, None

    def match(self, path: str) -> bool:
        if self.kind == "exact":
            return path == self.cleaned
        if self.kind == "prefix":
            return path.startswith(self.cleaned[:-2])
        if self.kind == "suffix":
            suffix = self.cleaned[2:]
            if path.endswith(suffix):
                return True
            return suffix[:1] == "/" and path == suffix[1:]
        return self.regex.match(path) is not None


class Matcher:
    """Docker's PatternMatcher; `matches(path)` is MatchesOrParentMatches."""

    def __init__(self, patterns: list[str]) -> None:
        self.patterns: list[_Pattern] = []
        self.exclusions = False
        for p in patterns:
            p = p.strip()
            if not p:
                continue
            p = go_clean(p)
            excl = False
            if p[0] == "!":
                if len(p) == 1:
                    raise InvalidArgument('illegal exclusion pattern: "!"',
                                          "fix the pattern in .dockerignore")
                excl, p = True, p[1:]
                self.exclusions = True
            _check_syntax(p)
            self.patterns.append(_Pattern(p, excl))

    def matches(self, path: str) -> bool:
        """True when `path` (slash-separated, relative to the context) is excluded."""
        matched = False
        parent = go_dir(path)
        parent_dirs = parent.split("/")
        for pat in self.patterns:
            if pat.exclusion != matched:
                continue
            m = pat.match(path)
            if not m and parent != ".":
                for i in range(len(parent_dirs)):
                    if pat.match("/".join(parent_dirs[:i + 1])):
                        m = True
                        break
            if m:
                matched = not pat.exclusion
        return matched

    def matches_with_parent(self, path: str, parent_info: list[bool] | None) -> tuple[bool, list[bool]]:
        """MatchesUsingParentResults: the same answer, reusing the parent directory's results."""
        matched = False
        info = [False] * len(self.patterns)
        for i, pat in enumerate(self.patterns):
            m = parent_info[i] if parent_info else False
            if not m:
                if pat.exclusion != matched:
                    continue
                m = pat.match(path)
                if not m and not parent_info:
                    parent = go_dir(path)
                    if parent != ".":
                        dirs = parent.split("/")
                        m = any(pat.match("/".join(dirs[:j + 1])) for j in range(len(dirs)))
            info[i] = m
            if m:
                matched = not pat.exclusion
        return matched, info


def parse_dockerignore(text: str | bytes) -> list[str]:
    """The patterns of a .dockerignore file (ignorefile.ReadAll)."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "surrogateescape")
    out = []
    for n, line in enumerate(text.split("\n")):
        line = line.removesuffix("\r")
        if n == 0:
            line = line.removeprefix("\ufeff")
        if line.startswith("#"):
            continue
        line = line.strip()
        if not line:
            continue
        invert = line[0] == "!"
        if invert:
            line = line[1:].strip()
        if line:
            line = go_clean(line)
            if len(line) > 1 and line[0] == "/":
                line = line[1:]
        out.append("!" + line if invert else line)
    return out


def read_dockerignore(context_dir: str | os.PathLike) -> list[str]:
    """Patterns from <context>/.dockerignore ([] when there is none)."""
    p = Path(context_dir) / ".dockerignore"
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        return []
    return parse_dockerignore(data)


def walk_context(context_dir: str | os.PathLike, matcher: Matcher | None = None) -> Iterator[str]:
    """Relative slash-separated paths of the context that a build sees, in lexical order (a
    directory before its contents). Excluded directories are not entered unless a `!` pattern
    may re-include something below them; such a directory is listed only when something below
    it is kept. Symlinks are listed, never followed."""
    root = os.fspath(context_dir)
    if matcher is None:
        matcher = Matcher(read_dockerignore(root))
    if not matcher.patterns:
        matcher = None

    pending: list[str] = []   # excluded directories entered, listed once something below is kept

    def walk(rel: str, parent_info) -> Iterator[str]:
        try:
            entries = sorted(os.scandir(os.path.join(root, rel) if rel else root), key=lambda e: e.name)
        except (FileNotFoundError, NotADirectoryError):
            return
        for e in entries:
            path = f"{rel}/{e.name}" if rel else e.name
            is_dir = e.is_dir(follow_symlinks=False)
            if matcher is None:
                excluded, info = False, None
            else:
                excluded, info = matcher.matches_with_parent(path, parent_info)
            if excluded:
                if is_dir and matcher.exclusions:
                    pending.append(path)
                    yield from walk(path, info)
                    if pending and pending[-1] == path:
                        pending.pop()
                continue
            yield from pending
            pending.clear()
            yield path
            if is_dir:
                yield from walk(path, info)

    yield from walk("", None)
