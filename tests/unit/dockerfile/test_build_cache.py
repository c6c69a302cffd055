"""The build cache's pieces without root: chained keys, the context checksum (content, not
mtimes), the stat fast path, source resolution (Go's filepath.Match, escapes, .dockerignore and
Docker's walker rule for excluded directories)."""

from __future__ import annotations

import os

import pytest

from minidock.build import cache as C
from minidock.build.context import SourceError, Tree, go_match_regex


@pytest.fixture
def root(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIDOCK_ROOT", str(tmp_path / "state"))
    return tmp_path


def make(d, files: dict[str, str]):
    for name, text in files.items():
        p = d / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return d


def test_keys_chain_and_differ():
    a = C.chain("p", {"op": "RUN", "argv": ["sh", "-c", "x"]})
    assert a == C.chain("p", {"argv": ["sh", "-c", "x"], "op": "RUN"})  # canonical: key order does not matter
    assert a != C.chain("q", {"op": "RUN", "argv": ["sh", "-c", "x"]})  # another parent
    assert a != C.chain("p", {"op": "RUN", "argv": ["sh", "-c", "y"]})
    assert len(a) == 64


def test_checksum_is_content_not_mtime(root):
    ctx = make(root / "ctx", {"a.txt": "A", "d/b.txt": "B"})
    t = Tree(str(ctx), hashes=C.FileHashes())
    one = t.checksum(["a.txt", "d"])
    os.utime(ctx / "a.txt", (1, 1))
    assert t.checksum(["a.txt", "d"]) == one
    (ctx / "d/b.txt").write_text("B2")
    two = t.checksum(["a.txt", "d"])
    assert two != one
    assert t.checksum(["a.txt"]) == Tree(str(ctx)).checksum(["a.txt"])  # with or without the fast path
    os.chmod(ctx / "a.txt", 0o600)
    assert t.checksum(["a.txt", "d"]) != two  # permission bits are content of a COPY


def test_fast_path_reads_a_file_only_when_its_stat_changed(root, monkeypatch):
    ctx = make(root / "ctx", {"big.bin": "x" * 1000})
    h = C.FileHashes()
    t = Tree(str(ctx), hashes=h)
    t.checksum(["big.bin"])
    h.save()
    reads = []
    real_open = open

    def spy(path, *a, **kw):
        if str(path).endswith("big.bin"):
            reads.append(path)
        return real_open(path, *a, **kw)

    monkeypatch.setattr("builtins.open", spy)
    t2 = Tree(str(ctx), hashes=C.FileHashes())  # a new build: the remembered hashes from disk
    t2.checksum(["big.bin"])
    assert reads == []
    (ctx / "big.bin").write_text("y" * 1000)  # same size, new content: mtime/ctime change
    t2.checksum(["big.bin"])
    assert len(reads) == 1


def test_resolve_globs_escapes_and_missing(root):
    ctx = make(root / "ctx", {"a.txt": "", "b.txt": "", "c.md": "", "n?pe/f": "", "nope/f": "", "[x]/f": ""})
    t = Tree(str(ctx))
    assert t.resolve("*.txt") == ["a.txt", "b.txt"]
    assert t.resolve("./../a.txt") == ["a.txt"]  # cannot climb out of the context
    assert t.resolve("nomatch*") == []  # BuildKit: a wildcard may match nothing
    assert t.resolve("n\\?pe/f") == ["n?pe/f"]
    assert t.resolve("n?pe/f") == ["n?pe/f", "nope/f"]
    assert t.resolve("[[]x]/f") == ["[x]/f"]
    with pytest.raises(SourceError, match='"/missing.txt": not found'):
        t.resolve("missing.txt")
    assert go_match_regex("[^a-c]?").match("dz") and not go_match_regex("[^a-c]?").match("bz")


def test_dockerignore_excludes_and_the_walker_rule(root):
    ctx = make(root / "ctx", {"keep": "", "secret": "", "logs/a.log": "", "logs/keep.log": "",
                              "deep/x/y/f": "", "deep/x/z/g": ""})
    t = Tree(str(ctx), ["secret", "logs", "!logs/keep.log", "deep/x", "!**/y"])
    with pytest.raises(SourceError):
        t.resolve("secret")
    walked = [r for r, _ in t.walk("")]
    assert "keep" in walked and "secret" not in walked
    # an exception naming a path under the excluded dir brings it back ...
    assert "logs/keep.log" in walked and "logs/a.log" not in walked
    # ... one that does not start with the dir (`!**/y`) does not: Docker's walker skips the dir
    assert not any(r.startswith("deep/x/") for r in walked)
