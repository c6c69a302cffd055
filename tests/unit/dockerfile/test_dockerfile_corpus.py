"""BuildKit's own parser cases: every testfiles/ case dumps to its `result`, instruction by
instruction; every testfiles-negative/ case is refused."""

from __future__ import annotations

import pytest

from minidock.build import dockerfile as dfmod
from tests.unit.dockerfile.corpus import build_corpus, corpus_dir

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


# ---- field by field: the reference dump read back into (cmd, flags, args) ----------------------
_ESC = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "\\": "\\", '"': '"', "'": "'"}


def _go_string(s: str, i: int) -> tuple[str, int]:
    """Go's strconv.Unquote of the string literal starting at s[i] == '"'; (value, next index)."""
    assert s[i] == '"'
    i += 1
    out = bytearray()
    while s[i] != '"':
        c = s[i]
        if c != "\\":
            out += c.encode()
            i += 1
            continue
        e = s[i + 1]
        if e in _ESC:
            out += _ESC[e].encode()
            i += 2
        elif e == "x":
            out.append(int(s[i + 2:i + 4], 16))
            i += 4
        elif e in "uU":
            n = 4 if e == "u" else 8
            out += chr(int(s[i + 2:i + 2 + n], 16)).encode()
            i += 2 + n
        else:  # octal
            out.append(int(s[i + 1:i + 4], 8))
            i += 4
    return out.decode("utf-8", "surrogateescape"), i + 1


def _sexp(s: str, i: int = 0):
    """(cmd ["flag" ...] "arg" ... (sub ...)) -> (cmd, flags, [args or nested tuples]), next index."""
    assert s[i] == "("
    i += 1
    j = i
    while j < len(s) and s[j] not in " )":
        j += 1
    cmd, i = s[i:j], j
    flags, args = [], []
    while True:
        while s[i] == " ":
            i += 1
        if s[i] == ")":
            return (cmd, flags, args), i + 1
        if s[i] == "[":
            i += 1
            while s[i] != "]":
                if s[i] == " ":
                    i += 1
                    continue
                v, i = _go_string(s, i)
                flags.append(v)
            i += 1
        elif s[i] == "(":
            sub, i = _sexp(s, i)
            args.append(sub)
        else:
            v, i = _go_string(s, i)
            args.append(v)


def _fields(inst):
    if inst.cmd == "onbuild" and inst.sub is not None:
        return inst.cmd, inst.flags, [_fields(inst.sub)]
    if inst.cmd in ("env", "label"):
        sep = "" if inst.legacy_kv else "="
        return inst.cmd, inst.flags, [x for k, v in inst.pairs for x in (k, v, sep)]
    return inst.cmd, inst.flags, list(inst.args)


@pytest.mark.parametrize("case", _POS)
def test_fields_match_reference(case):
    d = build_corpus("buildkit-parser") / "testfiles" / case
    insts, _, _, _ = dfmod.parse_ast((d / "Dockerfile").read_bytes())
    want = [_sexp(line)[0] for line in (d / "result").read_text().splitlines()]
    assert len(insts) == len(want)
    for inst, (cmd, flags, args) in zip(insts, want):
        got = _fields(inst)
        assert got[0] == cmd, f"line {inst.line}: instruction"
        assert got[1] == flags, f"line {inst.line}: flags"
        assert got[2] == args, f"line {inst.line}: arguments"
