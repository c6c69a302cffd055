"""BuildKit's shell-lexer cases (data from moby/buildkit) against minidock's lexer, plus the
mandatory-variable, pattern and escape-token cases of lex_test.go."""

from __future__ import annotations

from pathlib import Path

import pytest

from minidock.build.shell import Lexer, ShellWordError, expand, expand_words

DATA = Path(__file__).parent / "data"
ENV = {"PWD": "/home", "SHELL": "bash", "KOREAN": "한국어", "NULL": ""}


def _env_cases():
    for n, line in enumerate((DATA / "buildkit-envVarTest").read_text().splitlines(), 1):
        if line.startswith("#") or not line.strip():
            continue
        plat, src, want = (x.strip() for x in line.split("|"))
        if plat in ("A", "U"):
            yield pytest.param(src, want, id=f"L{n}")


@pytest.mark.parametrize("src,want", list(_env_cases()))
def test_env_var_cases(src, want):
    if want == "error":
        with pytest.raises(ShellWordError):
            expand(src, ENV)
    else:
        assert expand(src, ENV) == want


def _word_cases():
    env: dict[str, str] = {}
    for n, line in enumerate((DATA / "buildkit-wordsTest").read_text().splitlines(), 1):
        if line.startswith("#"):
            continue
        if line.startswith("ENV "):
            k, _, v = line[3:].lstrip(" ").partition("=")
            env[k] = v
            continue
        src, want = line.split("|")
        yield pytest.param(src.strip(), want.lstrip(" ").split(","), dict(env), id=f"L{n}")


@pytest.mark.parametrize("src,want,env", list(_word_cases()))
def test_words_cases(src, want, env):
    try:
        got = expand_words(src, env)
    except ShellWordError:
        got = ["error"]
    assert got == want


def test_case_count():
    assert len(list(_env_cases())) > 200 and len(list(_word_cases())) > 20


def test_mandatory_variables():
    for word in ("${VAR:?message here$ARG}", "${VAR?message here$ARG}"):
        assert expand(word, {"VAR": "plain", "ARG": "x"}) == "plain"
        with pytest.raises(ShellWordError, match="message herex"):
            expand(word, {"ARG": "x"})
    with pytest.raises(ShellWordError, match="VAR: message herex"):
        expand("${VAR:?message here$ARG}", {"VAR": "", "ARG": "x"})
    assert expand("${VAR?message here$ARG}", {"VAR": "", "ARG": "x"}) == ""
    with pytest.raises(ShellWordError, match="is not allowed to be unset"):
        expand("${VAR?}", {})


@pytest.mark.parametrize("word,want", [
    ("${v#*/}", "b/c.tar.gz"), ("${v##*/}", "c.tar.gz"), ("${v%.*}", "a/b/c.tar"),
    ("${v%%.*}", "a/b/c"), ("${v/b/X}", "a/X/c.tar.gz"), ("${v//./_}", "a/b/c_tar_gz"),
    ("${v#\\*}", "a/b/c.tar.gz"), ("${u#x}", ""),
])
def test_patterns(word, want):
    assert expand(word, {"v": "a/b/c.tar.gz"}) == want


def test_colon_pattern_modifiers_refused():
    with pytest.raises(ShellWordError, match="unsupported modifier"):
        expand("${v:#a}", {"v": "abc"})


def test_backtick_escape_token():
    assert expand("a`$b", {"b": "x"}, escape="`") == "a$b"
    assert expand("C:\\path", {}, escape="`") == "C:\\path"
    assert expand('"`"x"', {}, escape="`") == '"x'


def test_skip_unset_keeps_references():
    lx = Lexer("\\", skip_unset=True, raw_quotes=True)
    assert lx.process("a $X ${Y:-z} $Z", {"Z": "1"})[0] == "a $X ${Y:-z} 1"
