"""The Dockerfile language as BuildKit parses it (pure Python, no root, no heavy imports).

Two layers, like BuildKit's `parser` and `instructions` packages:

* `parse_ast(text)` reads lines into instructions exactly as BuildKit's parser does: parser
  directives (`# syntax=` accepted and ignored, `# escape=`, `# check=`), comments, line
  continuations (blank and comment lines inside them are skipped), JSON and shell forms,
  `--flags`, heredocs (`RUN <<EOF`, `COPY <<-"EOF" /f`, several per line). Unknown instructions
  are kept here (BuildKit's parser keeps them too); `dump()` prints BuildKit's AST dump format,
  which the corpus tests compare with the reference parser's `result` files.
* `parse(text)` adds BuildKit's instruction checks (argument counts, allowed flags and their
  values, stage names, HEALTHCHECK options, `--mount` specs, unknown instructions with a
  "did you mean" hint) and groups instructions into stages; global ARGs are the ARGs before
  the first FROM. Every refusal is a `DockerfileSyntaxError` naming the file, the line and
  the instruction, before anything is built.

Variables are not expanded by the parser; the builder expands them with `expand()` /
`expand_words()` in the instructions listed in `EXPANDED` (where Docker expands them), with
the scope that `global_scope()` and `resolve_stage_arg()` give.
"""

from __future__ import annotations

import json as _json
import os
import re
from collections.abc import Mapping

from minidock.build.shell import Lexer, ShellWordError, expand, expand_words  # noqa: F401 (re-exported)
from minidock.errors import InvalidArgument
from minidock.util import goduration
from minidock.util.gostrconv import go_quote

__all__ = [
    "DockerfileSyntaxError", "Heredoc", "Instruction", "Stage", "Dockerfile", "parse", "parse_ast",
    "dump", "expand", "expand_words", "parse_flags", "parse_mount", "Mount", "platform_args",
    "global_scope", "resolve_stage_arg", "PROXY_ARGS", "EXPANDED", "go_quote", "parse_duration",
    "copy_sources", "check_instruction", "onbuild_expression",
]

INSTRUCTIONS = ("add", "arg", "cmd", "copy", "entrypoint", "env", "expose", "from", "healthcheck",
                "label", "maintainer", "onbuild", "run", "shell", "stopsignal", "user", "volume",
                "workdir")

# Instructions whose arguments Docker expands with the build-time variables (docs: "Environment
# replacement"); EXPOSE splits the result into words. RUN, CMD, ENTRYPOINT, SHELL and HEALTHCHECK
# are left to the shell in the container; ONBUILD triggers are expanded in the child build.
EXPANDED = frozenset({"add", "copy", "env", "expose", "from", "label", "stopsignal", "user",
                      "volume", "workdir", "arg"})

# Predefined ARGs usable without an ARG line (given with --build-arg) and left out of the cache
# key and the image history, like Docker's.
PROXY_ARGS = ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY", "ftp_proxy",
              "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy")

_GO_SPACE = "\t\n\v\f\r \x85\xa0"
_WS_RE = re.compile(r"[\t\v\f\r ]+")
_DIRECTIVE_RE = re.compile(r"^([a-zA-Z][a-zA-Z0-9]*)[\t\n\f\r ]*=[\t\n\f\r ]*(.+?)[\t\n\f\r ]*\Z", re.S)
_HEREDOC_RE = re.compile(r"^([0-9]*)<<(-?)[\t\n\f\r ]*([^<]*)\Z", re.S)
_STAGE_NAME_RE = re.compile(r"^[a-z][a-z0-9-_.]*\Z")


def _is_space(ch: str) -> bool:
    return ch in _GO_SPACE or (ch > "\xff" and ch.isspace())


def _lstrip(s: str) -> str:
    i = 0
    while i < len(s) and _is_space(s[i]):
        i += 1
    return s[i:]


def _strip(s: str) -> str:
    s = _lstrip(s)
    j = len(s)
    while j > 0 and _is_space(s[j - 1]):
        j -= 1
    return s[:j]


# ---- errors --------------------------------------------------------------------------------------
class DockerfileSyntaxError(InvalidArgument):
    """A Dockerfile BuildKit would refuse: names the file, the line and the instruction."""

    def __init__(self, msg: str, filename: str = "Dockerfile", line: int = 0, end_line: int = 0,
                 source: list[str] | None = None, instruction: str | None = None):
        self.reason, self.filename, self.line = msg, filename, line
        self.end_line = max(end_line, line)
        self.instruction = instruction
        hint = None
        if source and line > 0:
            shown = source[line - 1:self.end_line]
            hint = "\n".join(f" {line + i:>4} | >>> {t.rstrip()}" for i, t in enumerate(shown))
        where = f"{filename}:{line}" if line > 0 else filename
        super().__init__(f"{where}: {msg}", hint)


class _Err(Exception):
    """An error without a location yet (the parser adds it)."""


# ---- data ----------------------------------------------------------------------------------------
class _Record:
    """A plain record (like a dataclass, without the cost of generating one per class at import:
    a cached rebuild parses the Dockerfile on every run). `_fields`: (name, default) pairs; a
    list default is copied per instance."""

    _fields: tuple = ()

    def __init__(self, *args, **kw):
        if len(args) > len(self._fields):
            raise TypeError(f"{type(self).__name__}: too many arguments")
        for i, (name, default) in enumerate(self._fields):
            if i < len(args):
                v = args[i]
            elif name in kw:
                v = kw.pop(name)
            elif default is _REQUIRED:
                raise TypeError(f"{type(self).__name__}: missing {name}")
            else:
                v = list(default) if isinstance(default, list) else default
            setattr(self, name, v)
        if kw:
            raise TypeError(f"{type(self).__name__}: unknown field(s) {', '.join(kw)}")

    def _values(self) -> tuple:
        return tuple(getattr(self, n) for n, _ in self._fields)

    def __eq__(self, other):
        return type(other) is type(self) and self._values() == other._values()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(" + ", ".join(f"{n}={getattr(self, n)!r}" for n, _ in self._fields) + ")"


_REQUIRED = object()
class Heredoc(_Record):
    # name: str
    # content: str = ""
    # expand: bool = True
    # chomp: bool = False
    # fd: int = 0
    _fields = (("name", _REQUIRED), ("content", ""), ("expand", True), ("chomp", False), ("fd", 0),)

    @property
    def text(self) -> str:
        """The content as the builder uses it: leading tabs removed for `<<-`."""
        return re.sub(r"(?m)^\t+", "", self.content) if self.chomp else self.content


class Instruction(_Record):
    # cmd: str                      # lower-case keyword
    # args: list[str]               # see module docstring of each form; ENV/LABEL: [k1, v1, k2, v2]
    # json: bool = False            # exec (JSON) form
    # flags: list[str] = []
    # heredocs: list[Heredoc] = []
    # line: int = 0
    # end_line: int = 0
    # original: str = ""            # the logical line (continuations joined) as BuildKit keeps it
    # keyword: str = ""             # the keyword as written (case kept)
    # legacy_kv: bool = False       # ENV/LABEL written `ENV key value` (no `=`)
    # sub: Instruction | None = None  # ONBUILD's trigger
    # known: bool = True
    _fields = (
        ("cmd", _REQUIRED), ("args", _REQUIRED), ("json", False), ("flags", []), ("heredocs", []), ("line", 0),
        ("end_line", 0), ("original", ""), ("keyword", ""), ("legacy_kv", False), ("sub", None),
        ("known", True),
    )

    # ARG: [(name, default or None)]
    @property
    def arg_pairs(self) -> list[tuple[str, str | None]]:
        out: list[tuple[str, str | None]] = []
        for w in self.args:
            k, eq, v = w.partition("=")
            out.append((k, v if eq else None))
        return out

    # ENV/LABEL: [(key, value)] unexpanded
    @property
    def pairs(self) -> list[tuple[str, str]]:
        return [(self.args[i], self.args[i + 1]) for i in range(0, len(self.args) - 1, 2)]

    def options(self) -> dict:
        """The flag values (validated against the instruction's allowed flags)."""
        return parse_flags(self)


class Stage(_Record):
    # name: str | None
    # base: str                     # unexpanded: expand with global_scope() (FROM sees global ARGs)
    # platform: str | None
    # index: int
    # instructions: list[Instruction] = []
    # from_inst: Instruction | None = None
    _fields = (
        ("name", _REQUIRED), ("base", _REQUIRED), ("platform", _REQUIRED), ("index", _REQUIRED),
        ("instructions", []), ("from_inst", None),
    )


class Dockerfile(_Record):
    # directives: dict[str, str]
    # escape: str
    # instructions: list[Instruction]
    # global_args: list[Instruction]
    # stages: list[Stage]
    # warnings: list[str] = []
    _fields = (
        ("directives", _REQUIRED), ("escape", _REQUIRED), ("instructions", _REQUIRED),
        ("global_args", _REQUIRED), ("stages", _REQUIRED), ("warnings", []),
    )

    def stage(self, name_or_index: str | int) -> Stage:
        if isinstance(name_or_index, int) or (isinstance(name_or_index, str) and name_or_index.isdigit()):
            return self.stages[int(name_or_index)]
        for st in self.stages:
            if st.name == name_or_index.lower():
                return st
        raise KeyError(name_or_index)


def dump(inst: Instruction) -> str:
    """One instruction in BuildKit's AST dump format: `(copy ["--from=a"] "src" "dst")`."""
    parts = [inst.keyword.lower() if inst.keyword else inst.cmd]
    if inst.flags:
        parts.append(" [" + " ".join(go_quote(f) for f in inst.flags) + "]")
    if inst.cmd == "onbuild" and inst.sub is not None:
        parts.append(" " + dump(inst.sub))
    elif inst.cmd in ("env", "label") and inst.known:
        sep = "" if inst.legacy_kv else "="
        for k, v in inst.pairs:
            parts.append(" " + go_quote(k) + " " + go_quote(v) + " " + go_quote(sep))
    elif not inst.known:
        parts.append(' ""')          # BuildKit's parser keeps an empty node for these
    else:
        for a in inst.args:
            parts.append(" " + go_quote(a))
    return "(" + "".join(parts).strip() + ")"


# ---- directives and line handling ----------------------------------------------------------------
class _Directives:
    def __init__(self) -> None:
        self.values: dict[str, str] = {}
        self.done = False
        self.set_escape("\\")

    def set_escape(self, tok: str) -> None:
        if tok not in ("`", "\\"):
            raise _Err(f"invalid escape token '{tok}' does not match ` or \\")
        self.escape = tok
        e = re.escape(tok)
        self.cont_re = re.compile(rf"([^{e}]){e}[ \t]*\Z|^{e}[ \t]*\Z", re.S)

    def possible(self, line: str) -> bool:
        if self.done:
            return False
        if not line.startswith("#"):
            self.done = True
            return False
        m = _DIRECTIVE_RE.match(_lstrip(line[1:]))
        if not m or m.group(1).lower() not in ("syntax", "escape", "check"):
            self.done = True
            return False
        k = m.group(1).lower()
        if k in self.values:
            raise _Err(f"only one {k} parser directive can be used")
        self.values[k] = m.group(2)
        if k == "escape":
            self.set_escape(m.group(2))
        return True

    def trim_continuation(self, line: str) -> tuple[str, bool]:
        m = self.cont_re.search(line)
        if m:
            return line[:m.start()] + (m.group(1) or ""), False
        return line, True


def _is_comment(line: str) -> bool:
    return _lstrip(line).startswith("#")


def _process_line(d: _Directives, token: str, strip_left: bool) -> str:
    token = token.rstrip("\r\n")
    if strip_left:
        token = _lstrip(token)
    d.possible(token)
    return "" if _is_comment(token) else token


# ---- word splitting used by the line parsers -----------------------------------------------------
def _parse_words(rest: str, escape: str) -> list[str]:
    """Words of an ENV/LABEL/ARG line, quotes and escapes kept (BuildKit's parseWords)."""
    words: list[str] = []
    buf: list[str] = []
    phase = 0  # 0 spaces, 1 word, 2 quote
    quote = ""
    blank_ok = False
    n = len(rest)
    pos = 0
    while pos <= n:
        ch = rest[pos] if pos < n else ""
        if phase == 0:
            if pos == n:
                break
            if _is_space(ch):
                pos += 1
                continue
            phase = 1
        if phase in (1, 2) and pos == n:
            if blank_ok or buf:
                words.append("".join(buf))
            break
        if phase == 1:
            if _is_space(ch):
                phase = 0
                if blank_ok or buf:
                    words.append("".join(buf))
                buf, blank_ok = [], False
                pos += 1
                continue
            if ch in "'\"":
                quote, blank_ok, phase = ch, True, 2
            if ch == escape:
                if pos + 1 == n:
                    pos += 1
                    continue
                buf.append(ch)
                pos += 1
                ch = rest[pos]
            buf.append(ch)
            pos += 1
            continue
        # phase 2: in quotes
        if ch == quote:
            phase = 1
        if ch == escape and quote != "'":
            if pos + 1 == n:
                phase = 1
                pos += 1
                continue
            pos += 1
            buf.append(ch)
            ch = rest[pos]
        buf.append(ch)
        pos += 1
    return words


def _extract_flags(line: str, escape: str) -> tuple[str, list[str]]:
    """Leading `--flag` words (quotes and escapes removed) and the rest of the line."""
    words: list[str] = []
    buf: list[str] = []
    phase = 0
    quote = ""
    blank_ok = False
    n = len(line)
    pos = 0
    while pos <= n:
        ch = line[pos] if pos < n else ""
        if phase == 0:
            if pos == n:
                break
            if _is_space(ch):
                pos += 1
                continue
            if ch != "-" or pos + 1 == n or line[pos + 1] != "-":
                return line[pos:], words
            phase = 1
        if phase in (1, 2) and pos == n:
            w = "".join(buf)
            if w != "--" and (blank_ok or w):
                words.append(w)
            break
        if phase == 1:
            if _is_space(ch):
                w = "".join(buf)
                phase = 0
                if w == "--":
                    return line[pos:], words
                if blank_ok or w:
                    words.append(w)
                buf, blank_ok = [], False
                pos += 1
                continue
            if ch in "'\"":
                quote, blank_ok, phase = ch, True, 2
                pos += 1
                continue
            if ch == escape:
                if pos + 1 == n:
                    pos += 1
                    continue
                pos += 1
                ch = line[pos]
            buf.append(ch)
            pos += 1
            continue
        if ch == quote:
            phase = 1
            pos += 1
            continue
        if ch == escape:
            if pos + 1 == n:
                phase = 1
                pos += 1
                continue
            pos += 1
            ch = line[pos]
        buf.append(ch)
        pos += 1
    return "", words


def _split_ws(rest: str) -> list[str]:
    if rest == "":
        return []
    return _WS_RE.split(rest)


class _NotJSON(Exception):
    pass


def _parse_json(rest: str) -> list[str]:
    rest = _lstrip(rest)
    if not rest.startswith("["):
        raise _NotJSON()
    try:
        val = _json.loads(rest)
    except ValueError:
        raise _NotJSON() from None
    if not isinstance(val, list):
        raise _NotJSON()
    if any(not isinstance(v, str) for v in val):
        raise _Err("when using JSON array syntax, arrays must be comprised of strings only")
    return val


def _maybe_json(rest: str) -> tuple[list[str], bool]:
    if rest == "":
        return [], False
    try:
        return _parse_json(rest), True
    except _NotJSON:
        return [rest], False


def _maybe_json_list(rest: str) -> tuple[list[str], bool]:
    try:
        return _parse_json(rest), True
    except _NotJSON:
        return _split_ws(rest), False


def _name_val(inst: Instruction, rest: str, key: str, escape: str) -> None:
    words = _parse_words(rest, escape)
    if not words:
        inst.args = []
        return
    if "=" not in words[0]:
        parts = _WS_RE.split(rest, maxsplit=1)
        if len(parts) < 2:
            raise _Err(f"{key} must have two arguments")
        inst.args, inst.legacy_kv = [parts[0], parts[1]], True
        return
    args = []
    for w in words:
        if "=" not in w:
            raise _Err(f"Syntax error - can't find = in {go_quote(w)}. Must be of the form: name=value")
        k, _, v = w.partition("=")
        args += [k, v]
    inst.args = args


def _node_from_line(line: str, d: _Directives) -> Instruction:
    cmdline = _WS_RE.split(_strip(line), maxsplit=1)
    keyword = cmdline[0]
    flags: list[str] = []
    rest = ""
    if len(cmdline) == 2:
        rest, flags = _extract_flags(cmdline[1], d.escape)
    rest = _strip(rest)
    cmd = keyword.lower()
    inst = Instruction(cmd=cmd, args=[], flags=flags, original=line, keyword=keyword)
    if cmd in ("add", "copy", "volume"):
        inst.args, inst.json = _maybe_json_list(rest)
    elif cmd in ("cmd", "entrypoint", "run", "shell"):
        inst.args, inst.json = _maybe_json(rest)
    elif cmd in ("env", "label"):
        _name_val(inst, rest, "ENV" if cmd == "env" else "LABEL", d.escape)
    elif cmd == "arg":
        inst.args = _parse_words(rest, d.escape)
    elif cmd in ("expose", "from"):
        inst.args = _split_ws(rest)
    elif cmd == "healthcheck":
        sep = 0
        while sep < len(rest) and not _is_space(rest[sep]):
            sep += 1
        nxt = sep
        while nxt < len(rest) and _is_space(rest[nxt]):
            nxt += 1
        if sep:
            more, inst.json = _maybe_json(rest[nxt:])
            inst.args = [rest[:sep]] + more
    elif cmd in ("maintainer", "stopsignal", "user", "workdir"):
        inst.args = [rest] if rest else []
    elif cmd == "onbuild":
        if rest:
            inst.sub = _node_from_line(rest, d)
            inst.args = [rest]
    else:
        inst.known = False
    return inst


def _can_contain_heredoc(inst: Instruction) -> bool:
    node = inst.sub if (inst.cmd == "onbuild" and inst.sub is not None) else inst
    return node.cmd in ("add", "copy", "run") and not node.json


def parse_heredoc_marker(word: str) -> Heredoc | None:
    """The heredoc a word like `<<EOF`, `<<-"EOF"` or `3<<EOF` opens, or None (ParseHeredoc)."""
    m = _HEREDOC_RE.match(word)
    if not m:
        return None
    rest = m.group(3)
    if not rest:
        return None
    words = Lexer("\\", skip_unset=True).process(rest, {})[1]
    if len(words) != 1:
        return None
    raw = Lexer("\\", skip_unset=True, raw_quotes=True).process(rest, {})[1]
    if len(raw) != len(words):
        raise _Err(f"internal lexing of heredoc produced inconsistent results: {rest}")
    q = words[0].count("'") + words[0].count('"')
    rq = raw[0].count("'") + raw[0].count('"')
    return Heredoc(name=words[0], expand=q == rq, chomp=m.group(2) == "-",
                   fd=int(m.group(1)) if m.group(1) else 0)


def _heredocs_from_line(line: str) -> list[Heredoc]:
    try:
        words = Lexer("\\", raw_quotes=True, raw_escapes=True, skip_unset=True).process(line, {})[1]
    except ShellWordError:
        return []
    docs = []
    for w in words:
        try:
            h = parse_heredoc_marker(w)
        except ShellWordError as e:
            raise _Err(e.message) from None
        if h is not None:
            docs.append(h)
    return docs


def _split_lines(text: str) -> list[str]:
    lines = text.split("\n")
    out = [ln + "\n" for ln in lines[:-1]]
    if lines[-1]:
        out.append(lines[-1])
    return out


def parse_ast(text: str | bytes, filename: str = "Dockerfile"
              ) -> tuple[list[Instruction], dict[str, str], str, list[str]]:
    """BuildKit's parser: (instructions, directives, escape token, warnings). Refuses only what
    BuildKit's parser refuses (no instructions, bad JSON arrays, `ENV key`, bad directives,
    unterminated heredocs)."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "surrogateescape")
    src = _split_lines(text)
    for n, ln in enumerate(src, 1):
        # BuildKit reads lines with a bufio.Scanner: 64 KiB per line, newline included
        if len(ln) > 16384 and len(ln.encode("utf-8", "surrogateescape")) > 65536:
            raise DockerfileSyntaxError("dockerfile line greater than max allowed size of 65535", filename, n)
    d = _Directives()
    out: list[Instruction] = []
    warnings: list[str] = []
    i = 0
    n = len(src)

    def fail(msg: str, start: int, end: int = 0, inst: str | None = None):
        raise DockerfileSyntaxError(msg, filename, start, end, src, inst)

    while i < n:
        raw = src[i]
        if i == 0 and raw.startswith("\ufeff"):
            raw = raw[1:]
        try:
            line = _process_line(d, raw, True)
        except _Err as e:
            fail(str(e), i + 1)
        i += 1
        start = i
        line, eol = d.trim_continuation(line)
        if eol and not line:
            continue
        buf = [line]
        empty_cont = False
        while not eol and i < n:
            nxt = src[i]
            try:
                b = _process_line(d, nxt, False)
            except _Err as e:
                fail(str(e), i + 1)
            i += 1
            if _is_comment(nxt):
                continue
            if not _lstrip(b.rstrip("\r\n")):
                empty_cont = True
                continue
            b, eol = d.trim_continuation(b)
            buf.append(b)
        logical = "".join(buf)
        if empty_cont:
            warnings.append(f"{filename}:{i}: Empty continuation line found in: {logical}")
        try:
            inst = _node_from_line(logical, d)
        except _Err as e:
            fail(str(e), start, i, _strip(logical).split(" ")[0].upper())
        if _can_contain_heredoc(inst) and "<<" in logical:
            try:
                docs = _heredocs_from_line(logical)
            except _Err as e:
                fail(str(e), start, i)
            for h in docs:
                content = []
                done = False
                while i < n:
                    r = src[i]
                    i += 1
                    cand = r.rstrip("\r\n")
                    if h.chomp:
                        cand = cand.lstrip("\t")
                    if cand == h.name:
                        done = True
                        break
                    content.append(r)
                if not done:
                    fail("unterminated heredoc", start, i, inst.keyword.upper())
                h.content = "".join(content)
                inst.heredocs.append(h)
            if inst.sub is not None:
                inst.sub.heredocs = inst.heredocs
        inst.line, inst.end_line = start, i
        if inst.sub is not None:
            inst.sub.line, inst.sub.end_line = start, i
        out.append(inst)
    if not out:
        raise DockerfileSyntaxError("file with no instructions", filename, 0, 0, src)
    return out, dict(d.values), d.escape, warnings


# ---- instruction checks (BuildKit's instructions package) ----------------------------------------
_B, _S, _L = "bool", "string", "strings"
FLAGS: dict[str, dict[str, str]] = {
    "add": {"chown": _S, "chmod": _S, "link": _B, "keep-git-dir": _B, "checksum": _S, "unpack": _B,
            "exclude": _L},
    "copy": {"chown": _S, "from": _S, "chmod": _S, "link": _B, "exclude": _L, "parents": _B},
    "from": {"platform": _S},
    "run": {"device": _L, "mount": _L, "network": _S, "security": _S},
    "healthcheck": {"interval": _S, "timeout": _S, "start-period": _S, "start-interval": _S,
                    "retries": _S},
}


def _levenshtein(a: str, b: str) -> int:
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def suggest(val: str, options, case_sensitive: bool) -> str | None:
    """BuildKit's suggest.Search: the closest option within distance 2, in the value's case."""
    v = val if case_sensitive else val.lower()
    best, mind = None, 3
    for opt in sorted(options):
        o = opt if case_sensitive else opt.lower()
        if v == o:
            return None
        dist = _levenshtein(v, o)
        if dist < mind:
            mind = dist
            if case_sensitive:
                best = o
            elif val == val.lower():
                best = o.lower()
            elif val == val.upper():
                best = o.upper()
            else:
                best = o
    return best


def _with_suggestion(msg: str, val: str, options, case_sensitive: bool) -> str:
    s = suggest(val, options, case_sensitive)
    return f"{msg} (did you mean {s}?)" if s else msg


def parse_flags(inst: Instruction, allowed: Mapping[str, str] | None = None) -> dict:
    """The instruction's flags checked like BuildKit's BFlags: {name: value}; bool flags give
    True/False, string flags a str, repeatable flags (`--mount`, `--exclude`) a list. Flags not
    given are absent. `allowed` maps flag name -> "bool" | "string" | "strings" (default: the
    instruction's own flags)."""
    if allowed is None:
        allowed = FLAGS.get(inst.cmd, {})
    used: dict = {}
    for a in inst.flags:
        if a == "--":
            break
        if not a.startswith("--"):
            raise _Err(f"arg should start with -- : {a}")
        name, eq, value = a.partition("=")
        key = name[2:]
        typ = allowed.get(key)
        if typ is None:
            raise _Err(_with_suggestion(f"unknown flag: {name}", key, list(allowed), True))
        if key in used and typ != _L:
            raise _Err(f"duplicate flag specified: {name}")
        if typ == _B:
            if eq and value == "":
                raise _Err(f"missing a value on flag: {name}")
            if value.lower() in ("true", ""):
                used[key] = True
            elif value.lower() == "false":
                used[key] = False
            else:
                raise _Err(f"expecting boolean value for flag {name}, not: {value}")
        elif typ == _S:
            if not eq:
                raise _Err(f"missing a value on flag: {name}")
            used[key] = value
        else:
            if not eq:
                raise _Err(f"missing a value on flag: {name}")
            used.setdefault(key, []).append(value)
    return used


def parse_duration(s: str) -> float:
    """Go's time.ParseDuration, in seconds (HEALTHCHECK's flags)."""
    try:
        return goduration.parse_seconds(s)
    except ValueError as e:
        raise _Err(str(e)) from None


class Mount(_Record):
    # type: str = "bind"
    # from_: str = ""
    # source: str = ""
    # target: str = ""
    # readonly: bool = False
    # size: int = 0
    # id: str = ""
    # sharing: str = ""
    # required: bool = False
    # env: str | None = None
    # mode: int | None = None
    # uid: int | None = None
    # gid: int | None = None
    _fields = (
        ("type", "bind"), ("from_", ""), ("source", ""), ("target", ""), ("readonly", False), ("size", 0),
        ("id", ""), ("sharing", ""), ("required", False), ("env", None), ("mode", None), ("uid", None),
        ("gid", None),
    )


_MOUNT_KEYS = ["type", "from", "source", "target", "readonly", "id", "sharing", "required", "size",
               "mode", "uid", "gid", "src", "dst", "destination", "ro", "rw", "readwrite", "env"]


def _parse_bool(v: str) -> bool:
    if v in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if v in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    raise ValueError(v)


def _ram_bytes(v: str) -> int:
    m = re.match(r"^([0-9]+(?:\.[0-9]+)?) ?([kKmMgGtTpP])?[iI]?[bB]?\Z", v)
    if not m:
        raise ValueError(v)
    mult = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}
    return int(float(m.group(1)) * mult[(m.group(2) or "").lower()])


def _csv_fields(val: str) -> list[str]:
    import csv
    try:
        rows = list(csv.reader([val], strict=True))
    except csv.Error as e:
        raise _Err(f"failed to parse csv mounts: {e}") from None
    return rows[0] if rows else []


def parse_mount(value: str, expander=None) -> Mount:
    """One `RUN --mount=` value checked like BuildKit (type=bind|cache|tmpfs|secret|ssh). Without
    `expander` only the checks BuildKit makes at parse time are made; the builder passes a
    function expanding each value with the stage's variables."""
    m = Mount()
    ro_auto = True
    for fld in _csv_fields(value):
        key, eq, val = fld.partition("=")
        key = key.lower()
        if not eq:
            if expander is None:
                continue
            if key in ("readonly", "ro"):
                m.readonly, ro_auto = True, False
                continue
            if key in ("readwrite", "rw"):
                m.readonly, ro_auto = False, False
                continue
            if key == "required":
                if m.type in ("secret", "ssh"):
                    m.required = True
                    continue
                raise _Err(f"unexpected key '{key}' for mount type '{m.type}'")
            raise _Err(f"invalid field '{fld}' must be a key=value pair")
        if expander is not None:
            val = expander(val)
        elif key == "from":
            i = val.find("$")
            if i != -1 and i != len(val) - 1:
                raise _Err(f"'{key}' doesn't support variable expansion, define alias stage instead")
        else:
            continue
        try:
            if key == "type":
                t = val.lower()
                if t not in ("bind", "cache", "tmpfs", "secret", "ssh"):
                    raise _Err(_with_suggestion(f"unsupported mount type {go_quote(val)}", val,
                                                ["bind", "cache", "tmpfs", "secret", "ssh"], True))
                m.type = t
            elif key == "from":
                m.from_ = val
            elif key in ("source", "src"):
                m.source = val
            elif key in ("target", "dst", "destination"):
                m.target = val
            elif key in ("readonly", "ro"):
                m.readonly, ro_auto = _parse_bool(val), False
            elif key in ("readwrite", "rw"):
                m.readonly, ro_auto = not _parse_bool(val), False
            elif key == "required":
                if m.type not in ("secret", "ssh"):
                    raise _Err(f"unexpected key '{key}' for mount type '{m.type}'")
                m.required = _parse_bool(val)
            elif key == "size":
                if m.type != "tmpfs":
                    raise _Err(f"unexpected key '{key}' for mount type '{m.type}'")
                m.size = _ram_bytes(val)
            elif key == "id":
                m.id = val
            elif key == "sharing":
                if val.lower() not in ("shared", "private", "locked"):
                    raise _Err(_with_suggestion(f"unsupported sharing value {go_quote(val)}", val,
                                                ["shared", "private", "locked"], True))
                m.sharing = val.lower()
            elif key == "mode":
                try:
                    m.mode = int(val, 8)
                except ValueError:
                    raise _Err(f"invalid value {val} for mode") from None
            elif key in ("uid", "gid"):
                try:
                    n = int(val, 10)
                    if n < 0 or n >= 1 << 32:
                        raise ValueError
                except ValueError:
                    raise _Err(f"invalid value {val} for {key}") from None
                setattr(m, key, n)
            elif key == "env":
                m.env = val
            else:
                raise _Err(_with_suggestion(f"unexpected key '{key}' in '{fld}'", key, _MOUNT_KEYS, True))
        except ValueError:
            raise _Err(f"invalid value for {key}: {val}") from None
    if m.type not in ("secret", "ssh", "cache"):
        for k in ("mode", "uid", "gid"):
            if getattr(m, k) is not None:
                raise _Err(f'{k} not allowed for "{m.type}" type mounts')
    if ro_auto:
        m.readonly = m.type not in ("cache", "tmpfs")
    if m.type == "secret":
        if m.from_:
            raise _Err("secret mount should not have a from")
        if m.sharing:
            raise _Err("secret mount should not define sharing")
        if not m.source and not m.target and not m.id:
            raise _Err("invalid secret mount. one of source, target required")
        if m.source and m.id:
            raise _Err("both source and id can't be set")
    if m.sharing and m.type != "cache":
        raise _Err(f"invalid cache sharing set for {m.type} mount")
    return m


def onbuild_expression(inst: Instruction) -> str:
    """The trigger an ONBUILD stores in the image config, as BuildKit writes it: the line without
    its ONBUILD keyword, then each heredoc's body and terminator (so the child build can parse it
    back with its heredocs)."""
    expr = re.sub(r"(?i)^\s*ONBUILD\s*", "", inst.original, count=1)
    for h in inst.heredocs:
        expr += "\n" + h.content + h.name
    return expr


def copy_sources(inst: Instruction) -> tuple[list[str], list[Heredoc], str]:
    """COPY/ADD: (source paths, inline heredoc sources, destination), all unexpanded."""
    srcs, dest = inst.args[:-1], inst.args[-1]
    by_name = {h.name: h for h in inst.heredocs}
    paths, docs = [], []
    for s in srcs:
        h = parse_heredoc_marker(s)
        if h is not None:
            src = by_name.get(h.name, Heredoc(h.name))
            docs.append(Heredoc(name=h.name, content=src.content, expand=h.expand, chomp=h.chomp, fd=h.fd))
        else:
            paths.append(s)
    return paths, docs, dest


def _check(inst: Instruction, escape: str = "\\") -> None:
    """BuildKit's instructions.ParseInstruction checks, in its order."""
    c, a = inst.cmd, inst.args
    up = c.upper()
    if c in ("env", "label"):
        parse_flags(inst)
        if not a:
            raise _Err(f"{up} requires at least one argument")
        if any(k == "" for k, _ in inst.pairs):
            raise _Err(f"{up} names can not be blank")
    elif c in ("maintainer", "workdir", "user"):
        if len(a) != 1:
            raise _Err(f"{up} requires exactly one argument")
        parse_flags(inst)
    elif c in ("add", "copy"):
        if len(a) < 2:
            raise _Err(f"{up} requires at least two arguments, but only one was provided. "
                       "Destination could not be determined")
        opts = parse_flags(inst)
        if parse_heredoc_marker(a[-1]) is not None:
            raise _Err(f"{up} cannot accept a heredoc as a destination")
        frm = opts.get("from")
        if frm and expand(frm, {}, escape) != frm:
            raise _Err("variable expansion is not supported for --from, define a new stage with FROM using "
                       "ARG from global scope as a workaround")
    elif c == "from":
        if len(a) == 3 and a[1].lower() == "as":
            if not _STAGE_NAME_RE.match(a[2].lower()):
                raise _Err(f"invalid name for build stage: {go_quote(a[2])}, name can't start with a "
                           "number or contain symbols")
        elif len(a) != 1:
            raise _Err("FROM requires either one or three arguments")
        parse_flags(inst)
    elif c == "onbuild":
        if not a:
            raise _Err("ONBUILD requires at least one argument")
        parse_flags(inst, {})
        trig = inst.sub.keyword.upper() if inst.sub else ""
        if trig == "ONBUILD":
            raise _Err("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
        if trig in ("MAINTAINER", "FROM"):
            raise _Err(f"{trig} isn't allowed as an ONBUILD trigger")
    elif c == "run":
        opts = parse_flags(inst)
        for mv in opts.get("mount", []):
            # values with variables are checked again once expanded (by the builder)
            parse_mount(mv, None if "$" in mv else (lambda v: v))
        if opts.get("device"):
            # BuildKit hands these to CDI; minidock has no CDI devices to give
            raise _Err(f"RUN --device is not supported by minidock (CDI device {go_quote(opts['device'][0])})")
        net = opts.get("network", "default")
        if net not in ("default", "none", "host"):
            raise _Err(f"invalid network mode {go_quote(net)}")
        sec = opts.get("security", "sandbox")
        if sec not in ("insecure", "sandbox"):
            raise _Err(f"security {go_quote(sec)} is not valid")
    elif c in ("cmd", "entrypoint"):
        parse_flags(inst)
    elif c == "healthcheck":
        if not a:
            raise _Err("HEALTHCHECK requires at least one argument")
        typ = a[0].upper()
        if typ == "NONE":
            if len(a) > 1:
                raise _Err("HEALTHCHECK NONE takes no arguments")
            return
        opts = parse_flags(inst)
        if typ != "CMD":
            raise _Err(f'Unknown type "{typ}" in HEALTHCHECK (try CMD)')
        if not a[1:]:
            raise _Err("Missing command after HEALTHCHECK CMD")
        for k in ("interval", "timeout", "start-period", "start-interval"):
            v = opts.get(k, "")
            if v:
                d = parse_duration(v)
                if d != 0 and d < 0.001:
                    raise _Err(f'Interval "{k}" cannot be less than 1ms')
        r = opts.get("retries", "")
        if r:
            if not re.match(r"^[+-]?[0-9]+\Z", r):
                raise _Err(f'strconv.ParseInt: parsing "{r}": invalid syntax')
            if int(r) < 0:
                raise _Err(f"--retries cannot be negative ({int(r)})")
    elif c == "expose":
        if not a:
            raise _Err("EXPOSE requires at least one argument")
        parse_flags(inst)
    elif c == "volume":
        if not a:
            raise _Err("VOLUME requires at least one argument")
        parse_flags(inst)
        if any(_strip(v) == "" for v in a):
            raise _Err("VOLUME specified can not be an empty string")
    elif c == "stopsignal":
        if len(a) != 1:
            raise _Err("STOPSIGNAL requires exactly one argument")
    elif c == "arg":
        if not a:
            raise _Err("ARG requires at least one argument")
        if any(k == "" for k, _ in inst.arg_pairs):
            raise _Err("ARG names can not be blank")
    elif c == "shell":
        parse_flags(inst)
        if not a:
            raise _Err("SHELL requires at least one argument")
        if not inst.json:
            raise _Err("SHELL requires the arguments to be in JSON form")
    else:
        raise _Err(_with_suggestion(f"unknown instruction: {inst.keyword}", inst.keyword,
                                    [x.upper() for x in INSTRUCTIONS], False))


def check_instruction(inst: Instruction, filename: str = "Dockerfile", source: list[str] | None = None,
                      escape: str = "\\") -> None:
    """One instruction checked like BuildKit's ParseInstruction (e.g. an ONBUILD trigger when a
    child build runs it); raises DockerfileSyntaxError."""
    try:
        _check(inst, escape)
    except (_Err, ShellWordError) as e:
        msg = e.message if isinstance(e, ShellWordError) else str(e)
        raise DockerfileSyntaxError(msg, filename, inst.line, inst.end_line, source,
                                    inst.keyword.upper()) from None


def parse(text: str | bytes, filename: str = "Dockerfile") -> Dockerfile:
    """The whole Dockerfile checked like BuildKit checks it before building anything."""
    insts, directives, escape, warnings = parse_ast(text, filename)
    src = _split_lines(text.decode("utf-8", "surrogateescape") if isinstance(text, bytes) else text)
    global_args: list[Instruction] = []
    stages: list[Stage] = []
    for inst in insts:
        check_instruction(inst, filename, src, escape)
        if inst.cmd == "from":
            a = inst.args
            opts = parse_flags(inst)
            stages.append(Stage(name=a[2].lower() if len(a) == 3 else None, base=a[0],
                                platform=opts.get("platform") or None, index=len(stages),
                                from_inst=inst))
        elif not stages:
            if inst.cmd == "arg":
                global_args.append(inst)
                continue
            raise DockerfileSyntaxError("no build stage in current context", filename, inst.line,
                                        inst.end_line, src, inst.keyword.upper())
        else:
            stages[-1].instructions.append(inst)
    if not stages:
        raise DockerfileSyntaxError("dockerfile contains no stages to build", filename, 0, 0, src)
    seen: dict[str, Stage] = {}
    for st in stages:
        if st.name is not None:
            if st.name in seen:
                fi = st.from_inst
                raise DockerfileSyntaxError(f"duplicate stage name {go_quote(st.name)}", filename,
                                            fi.line, fi.end_line, src, "FROM")
            seen[st.name] = st
    return Dockerfile(directives=directives, escape=escape, instructions=insts,
                      global_args=global_args, stages=stages, warnings=warnings)


# ---- ARG scoping ---------------------------------------------------------------------------------
_ARCH = {"x86_64": ("amd64", ""), "amd64": ("amd64", ""), "aarch64": ("arm64", ""),
         "arm64": ("arm64", ""), "armv7l": ("arm", "v7"), "armv6l": ("arm", "v6"),
         "i386": ("386", ""), "i686": ("386", ""), "ppc64le": ("ppc64le", ""),
         "s390x": ("s390x", ""), "riscv64": ("riscv64", "")}


def host_platform() -> tuple[str, str, str]:
    """(os, architecture, variant) of this machine in OCI terms."""
    arch, variant = _ARCH.get(os.uname().machine, (os.uname().machine, ""))
    return "linux", arch, variant


def platform_args(target: str | None = None) -> dict[str, str]:
    """The automatic platform ARGs (BUILDPLATFORM, TARGETARCH, ...) for a build on this host,
    and TARGETSTAGE (the target stage's name, "default" when the last stage has none)."""
    os_, arch, var = host_platform()
    plat = f"{os_}/{arch}" + (f"/{var}" if var else "")
    vals = {"BUILDPLATFORM": plat, "BUILDOS": os_, "BUILDOSVERSION": "", "BUILDARCH": arch,
            "BUILDVARIANT": var, "TARGETPLATFORM": plat, "TARGETOS": os_, "TARGETOSVERSION": "",
            "TARGETARCH": arch, "TARGETVARIANT": var, "TARGETSTAGE": target or "default"}
    return vals


def global_scope(df: Dockerfile, build_args: Mapping[str, str] | None = None,
                 target: str | None = None) -> dict[str, str]:
    """Variables visible in FROM lines (and inherited by `ARG NAME` inside a stage): the platform
    ARGs (overridable with --build-arg), then the ARGs before the first FROM, each expanded with
    what precedes it; a --build-arg value wins over the default; an ARG without value and without
    --build-arg stays undefined."""
    build_args = dict(build_args or {})
    if target is None and df.stages:
        target = df.stages[-1].name
    env = {k: build_args.get(k, v) for k, v in platform_args(target).items()}
    for inst in df.global_args:
        for k, default in inst.arg_pairs:
            if k in build_args:
                env[k] = build_args[k]
            elif default is not None:
                env[k] = _expand_at(inst, default, env, df.escape)
    return env


def resolve_stage_arg(key: str, default: str | None, build_args: Mapping[str, str],
                      global_env: Mapping[str, str], stage_env: Mapping[str, str],
                      escape: str = "\\") -> str | None:
    """The value an `ARG key[=default]` line inside a stage gives (None: declared, no value):
    --build-arg first, else the default expanded with the stage's variables so far, else the
    value of the global ARG of that name."""
    if key in build_args:
        return build_args[key]
    if default is not None:
        return expand(default, stage_env, escape)
    if key in global_env:
        return global_env[key]
    return None


def _expand_at(inst: Instruction, word: str, env: Mapping[str, str], escape: str) -> str:
    try:
        return expand(word, env, escape)
    except ShellWordError as e:
        raise DockerfileSyntaxError(e.message, "Dockerfile", inst.line, inst.end_line, None,
                                    inst.keyword.upper()) from None
