"""The build-conformance harness itself (no root, no docker): the case table, the skip
reasons, the image summary of a Docker archive (layers, whiteouts, hardlinks) and the diff."""

from __future__ import annotations

import hashlib
import io
import json
import sys
import tarfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "conformance" / "build"))
import harness as H  # noqa: E402


def test_case_table():
    cases = H.load_cases()
    assert len(cases) == 187 + len(H.EXTRA_CASES)
    names = {c.name for c in cases}
    assert set(H.CI_SAMPLE) <= names
    if H.corpus_dir() is None:
        pytest.skip("corpus absent")
    runnable = [c for c in cases if not c.skip]
    assert len(runnable) >= 80
    by = {c.name: c for c in cases}
    assert "centos" in by["shell test"].skip
    assert "withoutDocker" in by["mount"].skip
    assert by["environment"].should_fail_at == 12 and by["environment"].skip is None
    assert by["build-arg overrides header arg for FROM"].build_args
    assert all(c.skip for c in cases if c.raw.get("tweakContextDir") and "dockerignore" not in c.raw["tweakContextDir"]
               and c.name not in H.TWEAKS)
    assert not by["dockerignore-exclude-plain-dot"].skip and not by["setuid-file-in-context"].skip


def _layer(entries):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        for name, kind, data in entries:
            ti = tarfile.TarInfo(name)
            if kind == "dir":
                ti.type, ti.mode = tarfile.DIRTYPE, 0o755
                t.addfile(ti)
            elif kind == "sym":
                ti.type, ti.linkname = tarfile.SYMTYPE, data
                t.addfile(ti)
            elif kind == "hard":
                ti.type, ti.linkname = tarfile.LNKTYPE, data
                t.addfile(ti)
            else:
                ti.size, ti.mode, ti.uid = len(data), 0o644, 7
                t.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def _archive(path, layers, config):
    with tarfile.open(path, "w") as t:
        def add(name, data):
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            t.addfile(ti, io.BytesIO(data))
        add("c.json", json.dumps({"config": config}).encode())
        for i, ly in enumerate(layers):
            add(f"{i}/layer.tar", ly)
        names = [f"{i}/layer.tar" for i in range(len(layers))]
        add("manifest.json", json.dumps([{"Config": "c.json", "Layers": names}]).encode())


def test_summary_applies_layers_and_whiteouts(tmp_path):
    l1 = _layer([("a", "dir", None), ("a/x", "file", b"x"), ("a/y", "file", b"y"), ("o", "dir", None),
                 ("o/old", "file", b"1"), ("gone", "file", b"g"), ("l", "sym", "a/x")])
    l2 = _layer([("a/.wh.y", "file", b""), ("o/.wh..wh..opq", "file", b""), ("o/new", "file", b"2"),
                 (".wh.gone", "file", b""), ("h", "hard", "a/x")])
    _archive(tmp_path / "i.tar", [l1, l2], {"Env": ["B=2", "A=1"], "Cmd": ["sh"]})
    conf, files = H.summarize_archive(tmp_path / "i.tar")
    assert conf["Env"] == ["A=1", "B=2"] and conf["Cmd"] == ["sh"] and conf["Labels"] == {}
    assert sorted(files) == ["a", "a/x", "h", "l", "o", "o/new"]
    assert files["h"]["sha256"] == hashlib.sha256(b"x").hexdigest() == files["a/x"]["sha256"]
    assert files["l"] == {"type": "symlink", "target": "a/x", "mode": "0o644", "uid": 0, "gid": 0}


def test_compare_reports_every_kind_of_difference(tmp_path):
    _archive(tmp_path / "d.tar", [_layer([("f", "file", b"1"), ("etc", "dir", None), ("etc/hosts", "file", b"")])],
             {"Cmd": ["sh"], "User": "1"})
    _archive(tmp_path / "m.tar", [_layer([("f", "file", b"2"), ("g", "file", b"")])], {"Cmd": ["sh"]})
    diffs = H.compare(H.summarize_archive(tmp_path / "d.tar"), H.summarize_archive(tmp_path / "m.tar"))
    text = "\n".join(diffs)
    assert "config User: docker='1' minidock=''" in text
    assert "/f: sha256" in text and "/g: only in minidock" in text and "/etc: missing" in text
    assert "etc/hosts" not in text           # an empty RUN mount stub is left out
    assert H.compare(H.summarize_archive(tmp_path / "d.tar"), H.summarize_archive(tmp_path / "d.tar")) == []


def test_failing_line():
    text = "FROM busybox\nRUN true\nRUN false\n"
    assert H.failing_line("ERROR: Dockerfile:3: x", text) == 3
    assert H.failing_line("dockerfile parse error line 7: unknown instruction", text) == 7
    assert H.failing_line("------\n > [2/2] RUN false:\n------\nexecutor failed", text) == 3
    assert H.failing_line("something else", text) is None
    # the last step header of a progress view (minidock's and BuildKit's plain output)
    out = "#1 [stage-0 1/3] FROM busybox\n#1 DONE 0.0s\n#2 [stage-0 2/3] RUN true\n#3 [stage-0 3/3] RUN false\nexit 1\n"
    assert H.failing_line(out, text) == 3
