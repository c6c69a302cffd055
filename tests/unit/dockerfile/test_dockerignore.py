""".dockerignore: moby/patternmatcher's TestMatches vectors (all of them), the ignore-file reader
and the context walk."""

from __future__ import annotations

import json

import pytest

from minidock.build.dockerignore import Matcher, go_clean, go_dir, parse_dockerignore, read_dockerignore, walk_context
from minidock.errors import InvalidArgument
from tests.unit.dockerfile.corpus import build_corpus, corpus_dir


def _vectors():
    c = corpus_dir()
    if c is None:
        return []
    data = json.loads((c / "build/dockerignore-cases.json").read_text())
    out = [pytest.param([p], t, want, id=f"single-{i}") for i, (p, t, want) in enumerate(data["single"])]
    out += [pytest.param(ps, t, want, id=f"multi-{i}") for i, (ps, t, want) in enumerate(data["multi"])]
    return out


def test_vectors_present():
    data = json.loads(build_corpus("dockerignore-cases.json").read_text())
    assert len(data["single"]) + len(data["multi"]) >= 70


@pytest.mark.parametrize("patterns,path,want", _vectors())
def test_patternmatcher_vectors(patterns, path, want):
    m = Matcher(patterns)
    assert m.matches(path) is want
    # the walk's incremental form gives the same answer (MatchesUsingParentResults)
    parent = go_dir(path)
    info = None
    if parent != ".":
        dirs = parent.split("/")
        for i in range(len(dirs)):
            _, info = m.matches_with_parent("/".join(dirs[:i + 1]), info)
    assert m.matches_with_parent(path, info)[0] is want


@pytest.mark.parametrize("pattern", ["[", "a[", "[]", "a\\", "[z-a]", "!"])
def test_bad_patterns_refused(pattern):
    with pytest.raises(InvalidArgument):
        Matcher([pattern])


def test_go_clean():
    assert go_clean("//a/./b/../c/") == "/a/c"
    assert go_clean("../../x") == "../../x"
    assert go_clean("") == "."
    assert go_clean("/..") == "/"


def test_ignore_file_rules():
    text = "\ufeff# comment\n  \n/abs/path\n  spaced  \n! keep/me\n ./x/../y\n#x\n \\#notcomment\n"
    assert parse_dockerignore(text) == ["abs/path", "spaced", "!keep/me", "y", "\\#notcomment"]
    # a comment must start the line; indented '#' is a pattern
    assert parse_dockerignore(" #x") == ["#x"]


def test_walk_context(tmp_path):
    for f in ["Dockerfile", ".dockerignore", "a.txt", "b.log", "src/main.c", "src/x.log",
              "build/out/bin", "build/keep/me", "docs/sub/readme"]:
        p = tmp_path / f
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(f)
    (tmp_path / ".dockerignore").write_text("*.log\n**/*.log\nbuild\n!build/keep\ndocs\n")
    got = list(walk_context(tmp_path))
    assert got == [".dockerignore", "Dockerfile", "a.txt", "build", "build/keep", "build/keep/me",
                   "src", "src/main.c"]
    assert read_dockerignore(tmp_path)[0] == "*.log"
    # without patterns everything is kept
    (tmp_path / ".dockerignore").unlink()
    assert "docs/sub/readme" in list(walk_context(tmp_path))


def test_dockerfile_can_be_excluded(tmp_path):
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    (tmp_path / ".dockerignore").write_text("Dockerfile\n.dockerignore\n")
    (tmp_path / "f").write_text("x")
    assert list(walk_context(tmp_path)) == ["f"]
