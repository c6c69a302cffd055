"""The lean monitor (engine/monitor.py) stays lean: builtins only, checked on its source and on a
fresh `python3 -I -S` that imports it; its log writer and JSON reader match the json module's."""

from __future__ import annotations

import ast
import gzip
import json
import os
import pathlib
import subprocess
import sys

from minidock.engine import monitor

SRC = pathlib.Path(monitor.__file__)
# what `import os` and the interpreter's start-up load anyway, plus the builtins monitor.py names
BASELINE = {"__main__", "_abc", "_codecs", "_collections_abc", "_frozen_importlib",
            "_frozen_importlib_external", "_imp", "_io", "_signal", "_stat", "_thread", "_warnings",
            "_weakref", "abc", "builtins", "codecs", "encodings", "genericpath", "io", "marshal",
            "os", "os.path", "posix", "posixpath", "stat", "sys", "time", "zipimport",
            "minidock", "minidock.engine", "minidock.engine.monitor"}


def test_monitor_imports_only_builtins():
    found = set()
    for node in ast.walk(ast.parse(SRC.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            found.add(node.module or "")
    assert found <= set(monitor.ALLOWED_IMPORTS), found - set(monitor.ALLOWED_IMPORTS)


def test_monitor_starts_with_builtins_only():
    boot = monitor.boot_command(sys.executable, str(SRC.parents[2]))
    code = boot[-1].replace("sys.exit(main())", "print(' '.join(sorted(sys.modules)))")
    out = subprocess.run(boot[:-1] + [code], capture_output=True, text=True, check=True).stdout.split()
    extra = {m for m in out if not m.startswith("encodings.")} - BASELINE - set(monitor.ALLOWED_IMPORTS)
    assert not extra, extra
    # and the package's __init__ files stay light: none pulls anything in
    assert "minidock.engine.monitor" in out and "json" not in out and "re" not in out


def test_log_lines_are_dockers_bytes(tmp_path):
    path = str(tmp_path / "ctr.log")
    log = monitor.LogFile(path)
    log.write("stdout", b"h\xc3\xa9llo\n\"quoted\"\tand\\ more\npart")
    log.write("stderr", b"\xff bad utf-8\n")
    log.write("stdout", b"ial\n")
    log.close()
    lines = open(path).read().splitlines()
    entries = [json.loads(x) for x in lines]
    assert [(e["stream"], e["log"]) for e in entries] == [
        ("stdout", "héllo\n"), ("stdout", "\"quoted\"\tand\\ more\n"), ("stderr", "\ufffd bad utf-8\n"),
        ("stdout", "partial\n")]
    for line, e in zip(lines, entries):  # what json.dumps writes, byte for byte
        assert line == json.dumps(e, separators=(",", ":"))


def test_rotation_compressed_keeps_whole_lines(tmp_path):
    path = str(tmp_path / "ctr.log")
    log = monitor.LogFile(path, max_size=300, max_file=3, compress=True)
    for i in range(40):
        log.write("stdout", f"line {i}\n".encode())
    log.close()
    assert os.path.exists(path + ".1.gz") and os.path.exists(path + ".2.gz")
    assert not os.path.exists(path + ".3.gz")
    text = gzip.open(path + ".2.gz", "rt").read() + gzip.open(path + ".1.gz", "rt").read() + open(path).read()
    got = [json.loads(x)["log"] for x in text.splitlines()]
    first = int(got[0].split()[1])
    assert got == [f"line {i}\n" for i in range(first, 40)]


def test_loads_matches_json():
    for doc in ('{"a": [1, 2.5, true, false, null], "b": {"c": "\\u00e9\\n"}}', ' [] ', '"x"', "3"):
        assert monitor.loads(doc) == json.loads(doc)
    for bad in ("", "{", "[1] 2"):
        try:
            monitor.loads(bad)
        except ValueError:
            continue
        raise AssertionError(bad)
