"""The Dockerfile parser beyond BuildKit's corpus: heredocs, directives, stages and ARG scoping,
flags and mounts, and the errors (file, line, instruction) for what BuildKit refuses."""

from __future__ import annotations

import re

import pytest

from minidock.build import dockerfile as D


def _one(text, i=-1):
    return D.parse(text).instructions[i]


# ---- heredocs ------------------------------------------------------------------------------------
def test_run_heredoc():
    df = D.parse("FROM busybox\nRUN <<EOF\necho $HOME\n  two\nEOF\nRUN true\n")
    run = df.stages[0].instructions[0]
    assert run.cmd == "run" and run.args == ["<<EOF"] and not run.json
    assert run.heredocs == [D.Heredoc(name="EOF", content="echo $HOME\n  two\n", expand=True, chomp=False)]
    assert (run.line, run.end_line) == (2, 5)
    assert df.stages[0].instructions[1].line == 6


def test_several_heredocs_quoting_and_chomp():
    text = 'FROM x\nCOPY <<-"A" <<B /dst/\n\t\tone $X\n\tA\ntwo\nB\n'
    cp = _one(text)
    a, b = cp.heredocs
    assert (a.name, a.expand, a.chomp, a.content, a.text) == ("A", False, True, "\t\tone $X\n", "one $X\n")
    assert (b.name, b.expand, b.chomp, b.content) == ("B", True, False, "two\n")
    paths, docs, dest = D.copy_sources(cp)
    assert paths == [] and [d.name for d in docs] == ["A", "B"] and dest == "/dst/"
    assert docs[0].text == "one $X\n"


def test_heredoc_with_command_and_fd():
    run = _one("FROM x\nRUN python3 <<'PY' > /out\nprint(1)\nPY\n")
    assert run.heredocs[0].name == "PY" and run.heredocs[0].expand is False
    run = _one("FROM x\nRUN cat 3<<EOF\nz\nEOF\n")
    assert run.heredocs[0].fd == 3


def test_heredoc_not_in_json_or_other_instructions():
    cmd = _one('FROM x\nCMD ["sh", "-c", "cat <<EOF"]\n')
    assert cmd.heredocs == [] and cmd.json
    assert _one("FROM x\nENV A=<<EOF\n").heredocs == []


def test_heredoc_errors():
    with pytest.raises(D.DockerfileSyntaxError, match=r"Dockerfile:2: unterminated heredoc"):
        D.parse("FROM x\nRUN <<EOF\nnever closed\n")
    with pytest.raises(D.DockerfileSyntaxError, match="COPY cannot accept a heredoc as a destination"):
        D.parse("FROM x\nCOPY a <<EOF\nz\nEOF\n")


def test_onbuild_keeps_trigger_and_heredoc():
    ob = _one("FROM x\nONBUILD RUN --network=none <<EOF\necho hi\nEOF\n")
    assert ob.args == ["RUN --network=none <<EOF"] and ob.sub.cmd == "run"
    assert ob.sub.flags == ["--network=none"] and ob.heredocs[0].content == "echo hi\n"
    assert D.dump(ob) == '(onbuild (run ["--network=none"] "<<EOF"))'
    for bad, msg in (("ONBUILD ONBUILD RUN x", "Chaining ONBUILD"), ("ONBUILD FROM x", "FROM isn't allowed"),
                     ("ONBUILD MAINTAINER me", "MAINTAINER isn't allowed")):
        with pytest.raises(D.DockerfileSyntaxError, match=msg):
            D.parse("FROM x\n" + bad + "\n")


# ---- directives, escapes, continuations ----------------------------------------------------------
def test_directives():
    df = D.parse("# syntax=docker/dockerfile:1\n# escape=`\n\nFROM x\nRUN a `\n  b\n")
    assert df.directives == {"syntax": "docker/dockerfile:1", "escape": "`"} and df.escape == "`"
    assert df.instructions[-1].args == ["a   b"]
    # after a comment or an instruction a directive is an ordinary comment
    df = D.parse("# hello\n# escape=`\nFROM x\n")
    assert df.escape == "\\" and df.directives == {}
    with pytest.raises(D.DockerfileSyntaxError, match="only one escape parser directive"):
        D.parse("# escape=`\n# escape=\\\nFROM x\n")
    with pytest.raises(D.DockerfileSyntaxError, match="invalid escape token"):
        D.parse("# escape=x\nFROM x\n")


def test_bom_crlf_and_comment_inside_continuation():
    df = D.parse("\ufeffFROM x\r\nRUN a \\\r\n# comment\r\n\r\n  b\r\n")
    assert [i.args for i in df.instructions] == [["x"], ["a   b"]]
    assert df.warnings and "Empty continuation line" in df.warnings[0]


# ---- refusals ------------------------------------------------------------------------------------
@pytest.mark.parametrize("text,msg", [
    ("FROM x\nFORM y\n", r"^Dockerfile:2: unknown instruction: FORM \(did you mean FROM\?\)"),
    ("FROM x\nfrob y\n", r"unknown instruction: frob \(did you mean from\?\)"),
    ("FROM x\nBOGUS y\n", r"unknown instruction: BOGUS\n"),
    ("FROM x\nCOPY --chmown=1 a b\n", r"unknown flag: --chmown \(did you mean chown\?\)"),
    ("FROM x\nCOPY --from a b\n", "missing a value on flag: --from"),
    ("FROM x\nCOPY --link=maybe a b\n", "expecting boolean value for flag --link, not: maybe"),
    ("FROM x\nCOPY --from=a --from=b a b\n", "duplicate flag specified: --from"),
    ("FROM x\nCOPY onlyone\n", "COPY requires at least two arguments"),
    ("FROM x\nENV --foo=1 A=b\n", "unknown flag: --foo"),
    ("FROM x\nWORKDIR\n", "WORKDIR requires exactly one argument"),
    ("FROM x\nUSER\n", "USER requires exactly one argument"),
    ("FROM x\nEXPOSE\n", "EXPOSE requires at least one argument"),
    ("FROM x\nSHELL sh -c\n", "SHELL requires the arguments to be in JSON form"),
    ("FROM x\nHEALTHCHECK CONNECT TCP 7000\n", r'Unknown type "CONNECT" in HEALTHCHECK \(try CMD\)'),
    ("FROM x\nHEALTHCHECK NONE x\n", "HEALTHCHECK NONE takes no arguments"),
    ("FROM x\nHEALTHCHECK CMD\n", "Missing command after HEALTHCHECK CMD"),
    ("FROM x\nHEALTHCHECK --interval=1us CMD x\n", 'Interval "interval" cannot be less than 1ms'),
    ("FROM x\nHEALTHCHECK --retries=-1 CMD x\n", r"--retries cannot be negative \(-1\)"),
    ("FROM x\nENV =x\n", "ENV names can not be blank"),
    ("FROM x\nLABEL a=b c\n", "Syntax error - can't find = in \"c\""),
    ("FROM x\nARG =x\n", "ARG names can not be blank"),
    ("FROM x AS 9a\n", "invalid name for build stage"),
    ("FROM x y\n", "FROM requires either one or three arguments"),
    ("FROM a AS one\nFROM b AS ONE\n", 'duplicate stage name "one"'),
    ("ARG A\nRUN x\n", "no build stage in current context"),
    ("ARG A\n", "dockerfile contains no stages to build"),
    ("FROM x\nRUN --mount=type=cahce,target=/c x\n", r'unsupported mount type "cahce" \(did you mean cache\?\)'),
    ("FROM x\nRUN --mount=type=bind,target=/c,uid=1 x\n", 'uid not allowed for "bind" type mounts'),
    ("FROM x\nRUN --mount=type=cache,from=$X,target=/c x\n", "doesn't support variable expansion"),
    ("FROM x\nRUN --network=bridge x\n", 'invalid network mode "bridge"'),
    ("FROM x\nRUN --security=privileged x\n", 'security "privileged" is not valid'),
    ("FROM x\nRUN --device=vendor.com/gpu=all x\n", "RUN --device is not supported by minidock"),
    ("FROM x\nCMD [\"a\", 1]\n", "arrays must be comprised of strings only"),
    ("FROM x AS a\nFROM x\nARG S=a\nCOPY --from=$S /f /f\n", "variable expansion is not supported for --from"),
    ("FROM x AS a\nFROM x\nCOPY --from=${S:-a} /f /f\n", "variable expansion is not supported for --from"),
    ("FROM x\nVOLUME [\"\"]\n", "VOLUME specified can not be an empty string"),
])
def test_refused_like_buildkit(text, msg):
    with pytest.raises(D.DockerfileSyntaxError, match=msg) as e:
        D.parse(text)
    assert str(e.value).startswith("Dockerfile:")


def test_error_names_file_line_and_instruction():
    with pytest.raises(D.DockerfileSyntaxError) as e:
        D.parse("FROM x\nRUN a \\\n  b\nCOPY --bogus a b\n", filename="app/Dockerfile.dev")
    err = e.value
    assert (err.filename, err.line, err.instruction) == ("app/Dockerfile.dev", 4, "COPY")
    assert str(err).splitlines() == ["app/Dockerfile.dev:4: unknown flag: --bogus",
                                     "    4 | >>> COPY --bogus a b"]
    assert err.exit_code == 125


def test_workdir_keeps_spaces():
    assert _one("FROM x\nWORKDIR /a b\n").args == ["/a b"]


def test_flags_not_checked_where_buildkit_does_not():
    # BuildKit never parses flags of ARG, STOPSIGNAL and HEALTHCHECK NONE
    D.parse("ARG --x=1 A\nFROM x\nSTOPSIGNAL --y SIGTERM\nHEALTHCHECK --z NONE\n")


# ---- flags and mounts ----------------------------------------------------------------------------
def test_parse_flags_values():
    cp = _one("FROM x\nCOPY --from=build --chown=1:2 --link --exclude=a --exclude=b s d\n")
    assert cp.options() == {"from": "build", "chown": "1:2", "link": True, "exclude": ["a", "b"]}
    assert D.parse_flags(_one('FROM x\nRUN --mount="type=cache,target=/x" --network=none true\n')) == {
        "mount": ["type=cache,target=/x"], "network": "none"}
    assert _one("FROM --platform=$BUILDPLATFORM x AS b\n", 0).flags == ["--platform=$BUILDPLATFORM"]


def test_parse_mount():
    m = D.parse_mount("type=cache,target=/root/.cache,id=pip,sharing=locked,mode=0755,uid=1", lambda v: v)
    assert (m.type, m.target, m.id, m.sharing, m.mode, m.uid, m.readonly) == (
        "cache", "/root/.cache", "pip", "locked", 0o755, 1, False)
    m = D.parse_mount("target=/src,from=build,source=/out", lambda v: v)
    assert (m.type, m.from_, m.source, m.readonly) == ("bind", "build", "/out", True)
    m = D.parse_mount("type=bind,target=/src,rw", lambda v: v)
    assert m.readonly is False
    m = D.parse_mount("type=tmpfs,target=/t,size=64m", lambda v: v)
    assert m.size == 64 << 20
    env = {"T": "/cache"}
    m = D.parse_mount("type=cache,target=$T", lambda v: D.expand(v, env))
    assert m.target == "/cache"


# ---- stages and ARG scoping ----------------------------------------------------------------------
DF = """\
ARG BASE=busybox
ARG TAG
ARG BOTH=${BASE}:${TAG:-latest}
FROM ${BASE}:${TAG:-1.36} AS Build
ARG TAG
ARG BASE
ARG LOCAL=in-$BASE
RUN echo $TAG
FROM --platform=$BUILDPLATFORM scratch
COPY --from=build /a /b
"""


def test_stages_and_global_args():
    df = D.parse(DF)
    assert [a.arg_pairs for a in df.global_args] == [[("BASE", "busybox")], [("TAG", None)],
                                                     [("BOTH", "${BASE}:${TAG:-latest}")]]
    b, s = df.stages
    assert (b.name, b.base, b.index, b.platform) == ("build", "${BASE}:${TAG:-1.36}", 0, None)
    assert (s.name, s.base, s.index, s.platform) == (None, "scratch", 1, "$BUILDPLATFORM")
    assert [i.cmd for i in b.instructions] == ["arg", "arg", "arg", "run"]
    assert df.stage("build") is b and df.stage(1) is s and df.stage("BUILD") is b

    g = D.global_scope(df)
    assert g["BASE"] == "busybox" and "TAG" not in g and g["BOTH"] == "busybox:latest"
    assert D.expand(b.base, g) == "busybox:1.36"
    assert D.expand(s.platform, g) == g["BUILDPLATFORM"] == g["TARGETPLATFORM"]
    g = D.global_scope(df, {"TAG": "1.35", "TARGETARCH": "arm64"})
    assert D.expand(b.base, g) == "busybox:1.35" and g["BOTH"] == "busybox:1.35" and g["TARGETARCH"] == "arm64"

    # inside the stage: build-arg > default (expanded with the stage's variables) > global value
    env: dict[str, str] = {}
    for inst in b.instructions[:3]:
        for k, default in inst.arg_pairs:
            v = D.resolve_stage_arg(k, default, {"TAG": "x"}, g, env)
            if v is not None:
                env[k] = v
    assert env == {"TAG": "x", "BASE": "busybox", "LOCAL": "in-busybox"}
    assert D.resolve_stage_arg("NOPE", None, {}, g, {}) is None


def test_platform_args_for_this_host():
    p = D.platform_args()
    assert p["TARGETOS"] == p["BUILDOS"] == "linux"
    assert p["TARGETPLATFORM"].startswith("linux/" + p["TARGETARCH"])
    assert p["TARGETSTAGE"] == "default"
    assert "HTTP_PROXY" in D.PROXY_ARGS and "no_proxy" in D.PROXY_ARGS


def test_env_label_forms():
    env = _one('FROM x\nENV A=1 B="two words" C=a\\ b\n')
    assert env.pairs == [("A", "1"), ("B", '"two words"'), ("C", "a\\ b")]
    assert [(k, D.expand(v, {})) for k, v in env.pairs] == [("A", "1"), ("B", "two words"), ("C", "a b")]
    old = _one("FROM x\nENV PATH /usr/bin:$PATH\n")
    assert old.legacy_kv and old.pairs == [("PATH", "/usr/bin:$PATH")]
    assert D.expand_words(_one("FROM x\nEXPOSE $P 53/udp\n").args[0], {"P": "80 443"}) == ["80", "443"]


def test_go_quote():
    assert D.go_quote('a"b\\c\n\x00é\u2028') == '"a\\"b\\\\c\\n\\x00é\\u2028"'


def test_parse_duration():
    assert D.parse_duration("1m30s") == 90 and D.parse_duration("1.5h") == 5400
    assert D.parse_duration("0") == 0 and D.parse_duration("300ms") == pytest.approx(0.3)
    for bad in ("", "5", "x", "5x"):
        with pytest.raises(D._Err):
            D.parse_duration(bad)


# ---- BuildKit's heredoc parser cases (parser_heredoc_test.go TestParseExtractsHeredoc, as data) --
HEREDOC_DOCKERFILE = """
FROM alpine:3.6

ENV NAME=me

RUN ls

USER <<INVALID
INVALID

RUN <<EMPTY
EMPTY

RUN 3<<EMPTY2
EMPTY2

RUN "<<NOHEREDOC"

RUN <<INDENT
\tfoo
\tbar
INDENT

RUN <<-UNINDENT
\tbaz
\tquux
UNINDENT

RUN <<-UNINDENT2
\tbaz
\tquux
\tUNINDENT2

RUN <<-EXPAND
\texpand $NAME
EXPAND

RUN <<-'NOEXPAND'
\tdon't expand $NAME
NOEXPAND

RUN <<COPY
echo hello world
echo foo bar
COPY

RUN <<COMMENT
# internal comment
echo hello world
echo foo bar # trailing comment
COMMENT

RUN --mount=type=cache,target=/foo <<MOUNT
echo hello
MOUNT

COPY <<FILE1 <<FILE2 /dest
content 1
FILE1
content 2
FILE2

COPY <<EOF /quotes
"foo"
'bar'
EOF

COPY <<X <<Y /dest
Y
X
X
Y

RUN <<COMPLEX python3
print('hello world')
COMPLEX

COPY <<file.txt /dest
hello world
file.txt

RUN <<eo'f'
echo foo
eof

RUN <<eo\\'f
echo foo
eo'f

RUN <<'e'o\\'f
echo foo
eo'f

RUN <<'one two'
echo bar
one two

RUN <<$EOF
$EOF

RUN <<  EOF
EOF

RUN <<  EOF  > foo
EOF
\t"""

# (name, content, expand, chomp, fd) per instruction after FROM; None: no heredocs
HEREDOC_WANT = [
    None, None, None, None,
    [("EMPTY", "", True, False, 0)],
    [("EMPTY2", "", True, False, 3)],
    None,
    [("INDENT", "\tfoo\n\tbar\n", True, False, 0)],
    [("UNINDENT", "\tbaz\n\tquux\n", True, True, 0)],
    [("UNINDENT2", "\tbaz\n\tquux\n", True, True, 0)],
    [("EXPAND", "\texpand $NAME\n", True, True, 0)],
    [("NOEXPAND", "\tdon't expand $NAME\n", False, True, 0)],
    [("COPY", "echo hello world\necho foo bar\n", True, False, 0)],
    [("COMMENT", "# internal comment\necho hello world\necho foo bar # trailing comment\n", True, False, 0)],
    [("MOUNT", "echo hello\n", True, False, 0)],
    [("FILE1", "content 1\n", True, False, 0), ("FILE2", "content 2\n", True, False, 0)],
    [("EOF", "\"foo\"\n'bar'\n", True, False, 0)],
    [("X", "Y\n", True, False, 0), ("Y", "X\n", True, False, 0)],
    [("COMPLEX", "print('hello world')\n", True, False, 0)],
    [("file.txt", "hello world\n", True, False, 0)],
    [("eof", "echo foo\n", False, False, 0)],
    [("eo'f", "echo foo\n", True, False, 0)],
    [("eo'f", "echo foo\n", False, False, 0)],
    [("one two", "echo bar\n", False, False, 0)],
    [("$EOF", "", True, False, 0)],
    [("EOF", "", True, False, 0)],
    [("EOF", "", True, False, 0)],
]


def test_buildkit_heredoc_cases():
    insts = D.parse_ast(HEREDOC_DOCKERFILE)[0]
    assert len(insts) == len(HEREDOC_WANT) + 1
    for inst, want in zip(insts[1:], HEREDOC_WANT):
        got = [(h.name, h.content, h.expand, h.chomp, h.fd) for h in inst.heredocs] or None
        assert got == want, f"line {inst.line}: {inst.original}"


def test_json_forms_take_no_heredocs():
    text = 'FROM alpine:3.6\nRUN ["whoami"]\nRUN ["cat", "<<EOF"]\nCOPY ["<<EOF", "/dest"]\n'
    assert all(not i.heredocs for i in D.parse_ast(text)[0])


# ---- BuildKit's instruction checks (instructions/parse_test.go), one instruction each -----------
def _check_one(text):
    D.check_instruction(D.parse_ast(text)[0][0])


@pytest.mark.parametrize("cmd", ["MAINTAINER", "WORKDIR", "USER", "STOPSIGNAL"])
def test_exactly_one_argument(cmd):
    with pytest.raises(D.DockerfileSyntaxError, match=f"^Dockerfile:1: {cmd} requires exactly one argument"):
        _check_one(cmd)


@pytest.mark.parametrize("cmd", ["ENV", "LABEL", "ONBUILD", "HEALTHCHECK", "EXPOSE", "VOLUME"])
def test_at_least_one_argument(cmd):
    with pytest.raises(D.DockerfileSyntaxError, match=f"^Dockerfile:1: {cmd} requires at least one argument"):
        _check_one(cmd)


@pytest.mark.parametrize("cmd", ["ADD", "COPY"])
def test_no_destination(cmd):
    with pytest.raises(D.DockerfileSyntaxError, match=f"{cmd} requires at least two arguments, but only one "
                                                      "was provided. Destination could not be determined"):
        _check_one(cmd + " arg1")


@pytest.mark.parametrize("text,msg", [
    ("COPY\t\n\t\tquux \\\n      bar", "COPY requires at least two arguments"),
    ("ONBUILD FROM scratch", "FROM isn't allowed as an ONBUILD trigger"),
    ("MAINTAINER --boo joe@example.com", "unknown flag: --boo"),
    ("ONBUILD ONBUILD RUN touch foobar", "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"),
    ("FOO bar", "unknown instruction: FOO"),
    ("foo bar", "unknown instruction: foo"),
])
def test_buildkit_error_cases(text, msg):
    with pytest.raises(D.DockerfileSyntaxError, match=re.escape(msg)):
        _check_one(text)


def test_healthcheck_intervals():
    _check_one("HEALTHCHECK --interval=0ms CMD x")
    _check_one("HEALTHCHECK --interval=1ms CMD x")
    with pytest.raises(D.DockerfileSyntaxError, match="cannot be less than 1ms"):
        _check_one("HEALTHCHECK --interval=50ns CMD x")


def test_records():
    a, b = D.Instruction("run", ["x"]), D.Instruction(cmd="run", args=["x"])
    assert a == b and a.flags == [] and a.flags is not b.flags
    a.flags.append("--network=none")
    assert a != b and b.flags == []
    assert "Instruction(cmd='run'" in repr(a)
    with pytest.raises(TypeError):
        D.Heredoc()
    with pytest.raises(TypeError):
        D.Heredoc("EOF", bogus=1)
    m = D.Mount()
    assert (m.type, m.readonly, m.uid) == ("bind", False, None)


def test_line_length_limit():
    ok = "FROM x\nRUN echo " + "a" * (65536 - len("RUN echo ") - 1) + "\n"
    D.parse(ok)
    with pytest.raises(D.DockerfileSyntaxError, match="^Dockerfile:2: dockerfile line greater than max allowed size"):
        D.parse("FROM x\nRUN echo " + "a" * 65536 + "\n")


def test_onbuild_expression_keeps_heredocs():
    ob = _one("FROM x\n  onbuild RUN cat <<EOF > /f\nline $X\nEOF\n")
    expr = D.onbuild_expression(ob)
    assert expr == "RUN cat <<EOF > /f\nline $X\nEOF"
    # the child build parses it back to the same instruction and heredoc
    again = D.parse_ast(expr)[0][0]
    assert again.cmd == "run" and again.heredocs[0].content == "line $X\n"
    assert D.onbuild_expression(_one("FROM x\nONBUILD COPY . /src\n")) == "COPY . /src"
