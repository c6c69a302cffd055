"""The layering of ARCHITECTURE.md, enforced over every import (function-level ones included).

    cli -> {build, apps, labs} -> engine -> {image, network, volumes} -> {runtime, state}
        -> kernel -> base (errors, paths, util)

A package may import only the packages its row in LAYERS names (and itself); inside a package the
modules' imports form no cycle. The table below is the one ARCHITECTURE.md shows: a change to
either must change both (test_architecture_md_states_the_same_table).
"""

from __future__ import annotations

import ast
import collections
import pathlib
import re

import pytest

PKG = pathlib.Path(__file__).resolve().parents[2] / "minidock"

BASE = {"errors", "paths", "util"}
LAYERS: dict[str, set[str]] = {
    # base: shared by all, importing only each other
    "errors": set(),
    "paths": {"errors"},
    "util": {"errors", "paths"},
    # the door to the kernel
    "kernel": BASE,
    # an OCI bundle in, an isolated process out
    "runtime": {"kernel"} | BASE,
    # records of containers, their names, the journal of host resources
    "state": BASE,
    # the engine's services
    "image": {"runtime", "kernel", "state"} | BASE,
    "network": {"runtime", "kernel", "state"} | BASE,
    "volumes": {"runtime", "kernel", "state"} | BASE,
    "engine": {"image", "network", "volumes", "runtime", "kernel", "state"} | BASE,
    # capabilities above the engine
    "build": {"engine", "image", "network", "volumes", "runtime", "kernel", "state"} | BASE,
    "apps": {"engine", "image", "network", "volumes", "runtime", "kernel", "state"} | BASE,
    "labs": {"engine", "image", "network", "volumes", "runtime", "kernel", "state"} | BASE,
    # the command line
    "cli": {"build", "apps", "labs", "engine", "image", "network", "volumes", "runtime", "kernel",
            "state"} | BASE,
    # `python -m minidock`
    "__main__": {"cli"},
    "": set(),  # minidock/__init__.py
}


def module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(PKG.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, pathlib.Path]:
    return {module_name(p): p for p in PKG.rglob("*.py")}


def imports(path: pathlib.Path, name: str, known: set[str]) -> list[tuple[str, int]]:
    """Every minidock module ``path`` imports, anywhere in it (functions too), with line numbers."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno) for a in node.names if a.name.split(".")[0] == "minidock"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "minidock":
                continue
            for a in node.names:  # `from minidock.x import y`: y may be a module
                sub = f"{target}.{a.name}"
                out.append((sub if sub in known else target, node.lineno))
    return out


def top(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def graph() -> dict[str, list[tuple[str, int]]]:
    mods = modules()
    return {m: imports(p, m, set(mods)) for m, p in mods.items()}


def test_every_top_level_package_has_a_row():
    missing = sorted({top(m) for m in modules()} - set(LAYERS))
    assert not missing, f"add {missing} to LAYERS (and to ARCHITECTURE.md)"


def test_no_import_goes_against_the_layers():
    bad = []
    for m, targets in graph().items():
        for t, line in targets:
            a, b = top(m), top(t)
            if a != b and b not in LAYERS.get(a, set()):
                bad.append(f"{m}:{line} imports {t} ({a} -> {b} is not allowed)")
    assert not bad, "\n".join(bad)


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in list(edges):
        if v not in index:
            visit(v)
    return out


# Cycles being removed by work in flight, each with the reason; the test fails when one is gone
# (so the entry is dropped) or when any other cycle appears.
KNOWN_CYCLES: list[list[str]] = []


@pytest.mark.parametrize("whole", [False, True], ids=["inside-packages", "whole-tree"])
def test_no_import_cycles(whole):
    """No cycle among modules: a package's __init__ counts as a module like the others."""
    edges: dict[str, set[str]] = collections.defaultdict(set)
    for m, targets in graph().items():
        for t, _ in targets:
            if t == m:
                continue
            if whole or top(m) == top(t):
                edges[m].add(t)
    assert sorted(_cycles(edges)) == sorted(KNOWN_CYCLES)


def test_the_cycle_finder_finds_cycles():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_architecture_md_states_the_same_table():
    """ARCHITECTURE.md's "Allowed imports" table lists exactly LAYERS."""
    text = (PKG.parent / "ARCHITECTURE.md").read_text()
    section = text.split("## Allowed imports", 1)[1].split("\n## ", 1)[0]
    table = {}
    for line in section.splitlines():
        m = re.match(r"\|\s*`([\w_]*)`\s*\|\s*(.*?)\s*\|$", line)
        if m:
            table[m.group(1)] = set(re.findall(r"`(\w+)`", m.group(2)))
    assert table == {k: v for k, v in LAYERS.items() if k}


def test_one_atomic_write_and_one_flock(tmp_path):
    """util.fsutil: the old content or the new, never half; no temp file left behind on failure;
    and the modules that write records under the state root use it (no hand-rolled copies)."""
    import json
    import os

    from minidock.util import fsutil

    p = tmp_path / "rec.json"
    fsutil.atomic_write_json(p, {"a": 1})
    assert json.loads(p.read_text()) == {"a": 1}

    class Boom:
        def __str__(self):
            raise RuntimeError

    with pytest.raises(TypeError):
        fsutil.atomic_write_json(p, {"a": Boom()})
    assert json.loads(p.read_text()) == {"a": 1} and sorted(os.listdir(tmp_path)) == ["rec.json"]
    fsutil.atomic_write(tmp_path / "secret", "x", 0o600)
    assert (tmp_path / "secret").stat().st_mode & 0o777 == 0o600
    with fsutil.flock(tmp_path / ".lock"):
        pid = os.fork()
        if pid == 0:  # another process cannot take it meanwhile
            import fcntl

            fd = os.open(tmp_path / ".lock", os.O_RDWR)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                os._exit(1)
            except BlockingIOError:
                os._exit(0)
        assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
    for mod in ("state/containers.py", "state/journal.py", "network/store.py", "image/store.py", "image/content.py",
                "image/auth.py", "runtime/spec.py", "runtime/process.py", "volumes/__init__.py"):
        src = (PKG / mod).read_text()
        assert "fcntl.flock(" not in src, mod
        # (image/content.py renames a blob into place itself: streamed and verified before it is visible)
        assert src.count("os.replace(") == (mod == "image/content.py"), mod
