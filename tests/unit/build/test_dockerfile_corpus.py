"""BuildKit's own parser cases: every testfiles/ case dumps to its `result`, instruction by
instruction; every testfiles-negative/ case is refused."""

from __future__ import annotations

import pytest

from minidock.build import dockerfile as dfmod
from tests.unit.build.corpus import build_corpus, corpus_dir

_C = corpus_dir()
_POS = sorted(p.name for p in (_C / "build/buildkit-parser/testfiles").iterdir()) if _C else []
_NEG = sorted(p.name for p in (_C / "build/buildkit-parser/testfiles-negative").iterdir()) if _C else []


def test_corpus_present():
    root = build_corpus("buildkit-parser")
    assert len(list((root / "testfiles").iterdir())) >= 30
    assert len(list((root / "testfiles-negative").iterdir())) >= 4


@pytest.mark.parametrize("case", _POS)
def test_parses_to_reference_dump(case):
    d = build_corpus("buildkit-parser") / "testfiles" / case
    insts, _, _, _ = dfmod.parse_ast((d / "Dockerfile").read_bytes())
    want = (d / "result").read_text().splitlines()
    got = [dfmod.dump(i) for i in insts]
    for n, (g, w) in enumerate(zip(got, want)):
        assert g == w, f"{case}: instruction {n + 1} (line {insts[n].line})"
    assert len(got) == len(want)


@pytest.mark.parametrize("case", _NEG)
def test_negative_case_refused(case):
    d = build_corpus("buildkit-parser") / "testfiles-negative" / case
    with pytest.raises(dfmod.DockerfileSyntaxError):
        dfmod.parse_ast((d / "Dockerfile").read_bytes())
    with pytest.raises(dfmod.DockerfileSyntaxError):
        dfmod.parse((d / "Dockerfile").read_bytes())
