"""Go's text/template, as Docker's `--format` and `inspect -f` use it: one engine for the whole CLI.

Written from Go's language definition (pkg.go.dev/text/template) and checked against Go's own test
cases (tests/unit/cli/test_gotemplate.py) and against the `docker` CLI's output for the same
templates. What it does:

* actions, pipelines (`a | b c`), parenthesised pipelines, trim markers `{{- -}}`, comments;
* `if`/`else if`/`else`, `range` (with `else`, `$i, $v :=`, `break`, `continue`), `with`/`else`,
  `define`/`template`/`block`;
* variables (`$x := ...`, `$x = ...`, `$`), fields on maps and "structs", `{{.Method arg}}` for
  callables in the data (Docker's `{{.Label "k"}}`);
* Go's builtins: and or not len index slice print printf println html js urlquery eq ne lt le gt
  ge call; Docker's: json join split lower upper title truncate pad;
* Go's printing: maps `map[k:v]` (sorted keys), slices `[a b]`, nil as Go prints it for the type
  Docker declares (`[]`, `map[]`, `<nil>`; `<no value>` for a missing map key), floats in %v form;
* errors worded like Go's: `template: :1: unexpected "}" in operand` (parse) and
  `template: :1:2: executing "" at <.X>: ...` (execution).

Data model: dict = a Go map or struct (a `Struct` is a struct: unknown fields are errors, as for
Docker's ps/images rows), list = slice, None = nil, callables = methods. `docker_format` adds
Docker's `table` directive (tab-aligned columns with a header row) and `json`.
"""

from __future__ import annotations

import json as _jsonlib
import math
import re

from minidock.cli.tabwriter import tabwrite
from minidock.errors import MinidockError

__all__ = ["Template", "TemplateError", "parse", "render", "docker_format", "Struct", "Nil",
           "tabwrite"]


class TemplateError(MinidockError):
    """A template that does not parse (Docker: exit 64) or fails while executing (exit 1)."""


def _parse_error(name: str, line: int, msg: str) -> TemplateError:
    return TemplateError(f"template parsing error: template: {name}:{line}: {msg}", exit_code=64)


class _ExecError(Exception):
    pass


class Struct(dict):
    """A Go struct: a field it does not have is an error (not `<no value>`), as Docker's
    `*formatter.ContainerContext` is for `docker ps --format '{{.Nope}}'`."""

    type_name = "struct"

    def __init__(self, *a, type_name: str | None = None, **kw):
        super().__init__(*a, **kw)
        if type_name:
            self.type_name = type_name


class Nil:
    """A typed Go nil: prints `[]` for a slice, `map[]` for a map, `<nil>` for a pointer."""

    __slots__ = ("kind",)

    def __init__(self, kind: str):
        self.kind = kind

    def __bool__(self):
        return False

    def __eq__(self, other):
        return other is None or isinstance(other, Nil)

    def __hash__(self):
        return 0

    def __repr__(self):
        return f"Nil({self.kind})"


class Func:
    """A field that holds a function (Go's `func` value): not called by `.F`, only by `call`."""

    def __init__(self, fn):
        self.fn = fn

    def __call__(self, *a):
        return self.fn(*a)


MISSING = object()  # a map lookup that found nothing: Go's invalid reflect.Value, "<no value>"

# Docker declares these inspect fields as slices, maps or pointers: a JSON null there prints as Go
# prints that type's nil (`{{.HostConfig.Binds}}` -> `[]`), not `<no value>`.
SLICE_FIELDS = frozenset(
    "Binds Links Dns DnsOptions DnsSearch ExtraHosts GroupAdd CapAdd CapDrop SecurityOpt VolumesFrom "
    "Devices DeviceCgroupRules DeviceRequests Ulimits BlkioWeightDevice BlkioDeviceReadBps "
    "BlkioDeviceWriteBps BlkioDeviceReadIOps BlkioDeviceWriteIOps Mounts MaskedPaths ReadonlyPaths "
    "Env Cmd Entrypoint OnBuild Shell Args Aliases Links DNSNames RepoTags RepoDigests Layers "
    "Log SecondaryIPAddresses SecondaryIPv6Addresses ConsoleSize".split())
MAP_FIELDS = frozenset(
    "Labels Options Sysctls Tmpfs StorageOpt ExposedPorts Volumes Ports Networks DriverOpts Status "
    "Annotations Containers PortBindings Config DriverOpts".split())
PTR_FIELDS = frozenset("Health Healthcheck OomKillDisable PidsLimit Init IPAMConfig Metadata UsageData".split())


def _nil_for(key) -> object:
    if key in SLICE_FIELDS:
        return Nil("slice")
    if key in MAP_FIELDS:
        return Nil("map")
    if key in PTR_FIELDS:
        return Nil("ptr")
    return None


# ---------------------------------------------------------------------------------------------
# lexer
# ---------------------------------------------------------------------------------------------
_SPACE = " \t\r\n"
_KEYWORDS = {"if", "else", "end", "range", "with", "define", "template", "block", "break",
             "continue", "nil", "true", "false"}


class _Tok:
    __slots__ = ("kind", "val", "pos", "line")

    def __init__(self, kind, val, pos, line):
        self.kind, self.val, self.pos, self.line = kind, val, pos, line

    def __repr__(self):
        return f"{self.kind}:{self.val!r}"

    def desc(self) -> str:
        if self.kind == "eof":
            return "EOF"
        if self.kind in ("rdelim",):
            return "}}"
        if self.kind == "ldelim":
            return "{{"
        return self.val


class _Lexer:
    def __init__(self, text: str, name: str):
        self.text, self.name = text, name
        self.toks: list[_Tok] = []
        self.paren = 0

    def err(self, pos: int, msg: str):
        raise _parse_error(self.name, self.text.count("\n", 0, pos) + 1, msg)

    def emit(self, kind, val, pos):
        self.toks.append(_Tok(kind, val, pos, self.text.count("\n", 0, pos) + 1))

    def run(self) -> list[_Tok]:
        t, i, n = self.text, 0, len(self.text)
        while i < n:
            j = t.find("{{", i)
            if j < 0:
                self.emit("text", t[i:], i)
                break
            trim_left = t.startswith("{{- ", j) or t.startswith("{{-\t", j) or t.startswith(
                "{{-\n", j) or t.startswith("{{-\r", j)
            end_text = j
            if trim_left:
                while end_text > i and t[end_text - 1] in _SPACE:
                    end_text -= 1
            if end_text > i:
                self.emit("text", t[i:end_text], i)
            i = j + 2 + (2 if trim_left else 0)
            # a comment: {{/* ... */}}
            k = i
            while trim_left and k < n and t[k] in _SPACE:
                k += 1
            if t.startswith("/*", k):
                e = t.find("*/", k + 2)
                if e < 0:
                    self.err(j, "unclosed comment")
                e += 2
                trim_right = False
                if t.startswith(" -}}", e) or t.startswith("\t-}}", e) or t.startswith("\n-}}", e):
                    trim_right, e = True, e + 4
                elif t.startswith("}}", e):
                    e += 2
                else:
                    self.err(j, "comment ends before closing delimiter")
                i = e
                if trim_right:
                    while i < n and t[i] in _SPACE:
                        i += 1
                continue
            self.emit("ldelim", "{{", j)
            i = self.inside(i)
        self.emit("eof", "", n)
        return self.toks

    def inside(self, i: int) -> int:
        t, n = self.text, len(self.text)
        while True:
            if i >= n:
                self.err(i, "unclosed action")
            c = t[i]
            if c in _SPACE:
                j = i
                while j < n and t[j] in _SPACE:
                    j += 1
                if t.startswith("-}}", j):
                    if self.paren:
                        self.err(j, "unclosed left paren")
                    self.emit("rdelim", "}}", j)
                    j += 3
                    while j < n and t[j] in _SPACE:
                        j += 1
                    return j
                if "\n" in t[i:j] and False:
                    pass
                self.emit("space", t[i:j], i)
                i = j
                continue
            if t.startswith("}}", i):
                if self.paren:
                    self.err(i, "unclosed left paren")
                self.emit("rdelim", "}}", i)
                return i + 2
            if c == "|":
                self.emit("pipe", "|", i)
                i += 1
            elif c == "(":
                self.paren += 1
                self.emit("lparen", "(", i)
                i += 1
            elif c == ")":
                self.paren -= 1
                if self.paren < 0:
                    self.err(i, "unexpected right paren")
                self.emit("rparen", ")", i)
                i += 1
            elif c == ",":
                self.emit("char", ",", i)
                i += 1
            elif t.startswith(":=", i):
                self.emit("declare", ":=", i)
                i += 2
            elif c == "=":
                self.emit("assign", "=", i)
                i += 1
            elif c == '"':
                j = i + 1
                while True:
                    if j >= n or t[j] == "\n":
                        self.err(i, "unterminated quoted string")
                    if t[j] == "\\":
                        j += 2
                        continue
                    if t[j] == '"':
                        break
                    j += 1
                self.emit("string", t[i:j + 1], i)
                i = j + 1
            elif c == "`":
                j = t.find("`", i + 1)
                if j < 0:
                    self.err(i, "unterminated raw quoted string")
                self.emit("rawstring", t[i:j + 1], i)
                i = j + 1
            elif c == "'":
                m = re.compile(r"'(\\.[^']*|[^'\\])'").match(t, i)
                if not m:
                    self.err(i, "unterminated character constant")
                self.emit("charconst", m.group(0), i)
                i = m.end()
            elif c == "$":
                m = re.compile(r"\$\w*").match(t, i)
                self.emit("variable", m.group(0), i)
                i = m.end()
            elif c == ".":
                if i + 1 < n and t[i + 1].isdigit():
                    i = self.number(i)
                    continue
                m = re.compile(r"\.\w+").match(t, i)
                if m:
                    self.emit("field", m.group(0), i)
                    i = m.end()
                else:
                    self.emit("dot", ".", i)
                    i += 1
            elif c in "+-" or c.isdigit():
                i = self.number(i)
            elif c.isalpha() or c == "_":
                m = re.compile(r"\w+").match(t, i)
                w = m.group(0)
                self.emit("keyword" if w in _KEYWORDS else "identifier", w, i)
                i = m.end()
            else:
                self.err(i, f"bad character {_unicode_repr(c)}")
            # a field chain right after an operand: (x).Field, $x.Field
            while i < n and t[i] == "." and (i + 1 < n and (t[i + 1].isalnum() or t[i + 1] == "_")) \
                    and self.toks[-1].kind in ("rparen", "variable", "field", "identifier"):
                m = re.compile(r"\.\w+").match(t, i)
                self.emit("field", m.group(0), i)
                i = m.end()

    def number(self, i: int) -> int:
        m = re.compile(r"[+-]?(0[xX][0-9a-fA-F_]+|0[bB][01_]+|0[oO][0-7_]+|"
                       r"(\d[\d_]*)?\.?\d*([eE][+-]?\d+)?)i?").match(self.text, i)
        s = m.group(0) if m else ""
        if not s or s in "+-" or not any(ch.isdigit() for ch in s):
            self.err(i, f"bad number syntax: {self.text[i:i + 1]!r}".replace("'", '"'))
        end = m.end()
        if not s.endswith("i"):  # a complex constant: 1+2i
            m2 = re.compile(r"[+-](\d[\d_]*)?\.?\d*([eE][+-]?\d+)?i").match(self.text, end)
            if m2:
                s, end = s + m2.group(0), m2.end()
        if end < len(self.text) and (self.text[end].isalnum() or self.text[end] == "_"):
            self.err(i, f'bad number syntax: "{self.text[i:end + 1]}"')
        self.emit("number", s, i)
        return end


def _unicode_repr(c: str) -> str:
    return f"U+{ord(c):04X} '{c}'"


# ---------------------------------------------------------------------------------------------
# parse tree
# ---------------------------------------------------------------------------------------------
class _Node:
    pos = 0
    src = ""


class _Text(_Node):
    def __init__(self, text):
        self.text = text


class _Pipe(_Node):
    def __init__(self, decl, assign, cmds):
        self.decl, self.assign, self.cmds = decl, assign, cmds


class _Action(_Node):
    def __init__(self, pipe):
        self.pipe = pipe


class _Control(_Node):
    def __init__(self, kind, pipe, body, else_, else_pos=0):
        self.kind, self.pipe, self.body, self.else_ = kind, pipe, body, else_


class _TemplateCall(_Node):
    def __init__(self, name, pipe):
        self.name, self.pipe = name, pipe


class _Jump(_Node):
    def __init__(self, kind):
        self.kind = kind


class _Cmd(_Node):
    def __init__(self, args):
        self.args = args


class _Field(_Node):  # .A.B
    def __init__(self, idents):
        self.idents = idents


class _Var(_Node):  # $x.A.B
    def __init__(self, name, idents):
        self.name, self.idents = name, idents


class _Chain(_Node):  # (pipe).A.B
    def __init__(self, node, idents):
        self.node, self.idents = node, idents


class _Ident(_Node):  # function name
    def __init__(self, name):
        self.name = name


class _Const(_Node):
    def __init__(self, value):
        self.value = value


class _Dot(_Node):
    pass


class _NilNode(_Node):
    pass


class _BreakSignal(Exception):
    pass


class _ContinueSignal(Exception):
    pass


class _Parser:
    def __init__(self, text, name, funcs):
        self.text, self.name, self.funcs = text, name, funcs
        self.toks = _Lexer(text, name).run()
        self.i = 0
        self.vars = [["$"]]
        self.range_depth = 0
        self.defines: dict[str, list] = {}

    # tokens
    def peek(self) -> _Tok:
        return self.toks[self.i]

    def next(self) -> _Tok:
        t = self.toks[self.i]
        self.i += 1
        return t

    def next_ns(self) -> _Tok:
        t = self.next()
        while t.kind == "space":
            t = self.next()
        return t

    def peek_ns(self) -> _Tok:
        j = self.i
        while self.toks[j].kind == "space":
            j += 1
        return self.toks[j]

    def err(self, tok: _Tok, msg: str):
        raise _parse_error(self.name, tok.line, msg)

    def unexpected(self, tok: _Tok, context: str):
        if tok.kind == "eof":
            self.err(tok, f"unexpected EOF in {context}")
        desc = tok.desc()
        if tok.kind in ("string", "rawstring", "charconst"):
            self.err(tok, f"unexpected {desc} in {context}")
        self.err(tok, f'unexpected "{desc}" in {context}' if tok.kind not in ("ldelim", "rdelim")
                 else f"unexpected {_delim_desc(tok)} in {context}")

    # structure
    def parse(self):
        body, end = self.list_until(top=True)
        return body

    def list_until(self, top=False):
        """Parse items until {{end}} / {{else}} (returned as the terminator) or EOF."""
        out = []
        while True:
            t = self.peek()
            if t.kind == "eof":
                if not top:
                    self.err(t, "unexpected EOF")
                return out, None
            if t.kind == "text":
                self.next()
                out.append(_Text(t.val))
                continue
            # ldelim
            self.next()
            kw = self.peek_ns()
            if kw.kind == "keyword" and kw.val in ("end", "else"):
                self.next_ns()
                if top:
                    self.err(kw, f"unexpected {{{{{kw.val}}}}}")
                return out, kw
            out.append(self.action())

    def action(self):
        t = self.peek_ns()
        if t.kind == "keyword":
            if t.val in ("if", "range", "with"):
                self.next_ns()
                return self.control(t)
            if t.val in ("template", "block"):
                self.next_ns()
                return self.template_call(t)
            if t.val == "define":
                self.next_ns()
                self.define(t)
                return _Text("")
            if t.val in ("break", "continue"):
                self.next_ns()
                if not self.range_depth:
                    self.err(t, f"{{{{{t.val}}}}} outside {{{{range}}}}")
                r = self.next_ns()
                if r.kind != "rdelim":
                    self.unexpected(r, f"{{{{{t.val}}}}}")
                return _Jump(t.val)
        a = _Action(self.pipeline("command", "rdelim"))
        a.pos, a.src = t.pos, self.text[t.pos:self.toks[self.i - 1].pos].strip()
        return a

    def control(self, kw: _Tok):
        self.vars.append(list(self.vars[-1]))
        pipe = self.pipeline(kw.val, "rdelim")
        if kw.val == "range":
            self.range_depth += 1
        body, term = self.list_until()
        if kw.val == "range":
            self.range_depth -= 1
        else_ = None
        if term.val == "else":
            nxt = self.peek_ns()
            if nxt.kind == "keyword" and nxt.val in ("if", "with") and kw.val in ("if", "with") \
                    and nxt.val == kw.val:
                # {{else if ...}}: an if nested in the else branch, sharing our {{end}}
                self.next_ns()
                self.vars.pop()
                else_ = [self.control(nxt)]
                node = _Control(kw.val, pipe, body, else_)
                node.pos, node.src = kw.pos, kw.val
                return node
            r = self.next_ns()
            if r.kind != "rdelim":
                self.unexpected(r, "else")
            else_, term = self.list_until()
            if term.val == "else":
                self.err(term, "expected end; found {{else}}")
        r = self.next_ns()
        if r.kind != "rdelim":
            self.unexpected(r, "end")
        self.vars.pop()
        node = _Control(kw.val, pipe, body, else_)
        node.pos, node.src = kw.pos, kw.val
        return node

    def template_call(self, kw: _Tok):
        name_tok = self.next_ns()
        if name_tok.kind not in ("string", "rawstring"):
            self.unexpected(name_tok, f"{kw.val} clause")
        name = _unquote(name_tok.val)
        pipe = None
        if self.peek_ns().kind != "rdelim":
            self.vars.append(list(self.vars[-1]))
            pipe = self.pipeline(f"{kw.val} clause", "rdelim")
            self.vars.pop()
        else:
            self.next_ns()
        if kw.val == "block":
            saved = self.vars
            self.vars = [["$"]]
            body, term = self.list_until()
            self.vars = saved
            if term.val != "end":
                self.unexpected(term, "block clause")
            r = self.next_ns()
            if r.kind != "rdelim":
                self.unexpected(r, "end")
            self.defines[name] = body
        node = _TemplateCall(name, pipe)
        node.pos, node.src = kw.pos, f"template {name_tok.val}"
        return node

    def define(self, kw: _Tok):
        name_tok = self.next_ns()
        if name_tok.kind not in ("string", "rawstring"):
            self.unexpected(name_tok, "define clause")
        r = self.next_ns()
        if r.kind != "rdelim":
            self.unexpected(r, "define clause")
        saved = self.vars
        self.vars = [["$"]]
        body, term = self.list_until()
        self.vars = saved
        if term.val != "end":
            self.unexpected(term, "define clause")
        r = self.next_ns()
        if r.kind != "rdelim":
            self.unexpected(r, "end")
        self.defines[_unquote(name_tok.val)] = body

    def pipeline(self, context: str, end: str) -> _Pipe:
        decl: list[str] = []
        assign = False
        start = self.peek_ns()
        # declarations: $x :=, $x = , $i, $v :=
        t = self.peek_ns()
        if t.kind == "variable":
            save = self.i
            self.next_ns()
            nxt = self.peek_ns()
            if nxt.kind in ("declare", "assign"):
                self.next_ns()
                decl = [t.val]
                assign = nxt.kind == "assign"
            elif nxt.kind == "char" and nxt.val == "," and context == "range":
                self.next_ns()
                t2 = self.next_ns()
                if t2.kind != "variable":
                    self.err(t2, "range can only initialize variables")
                d = self.next_ns()
                if d.kind not in ("declare", "assign"):
                    self.unexpected(d, "range")
                decl, assign = [t.val, t2.val], d.kind == "assign"
            else:
                self.i = save
        if assign:
            for v in decl:
                if v not in self.vars[-1]:
                    self.err(t, f"undefined variable: {v}")
        cmds = []
        while True:
            t = self.peek_ns()
            if t.kind == end:
                self.next_ns()
                if not cmds:
                    self.err(t, f"missing value for {context}")
                break
            if t.kind == "eof":
                self.err(t, "unclosed action")
            cmds.append(self.command(end))
            t = self.peek_ns()
            if t.kind == "pipe":
                self.next_ns()  # a trailing `|` before the delimiter is accepted, as Go does
        for v in decl:
            if not assign:
                self.vars[-1].append(v)
        for c in cmds[1:]:
            first = c.args[0]
            if isinstance(first, (_Const, _NilNode, _Dot)) and not isinstance(first, _Ident):
                self.err(start, f"non executable command in pipeline stage {cmds.index(c) + 1}")
        p = _Pipe(decl, assign, cmds)
        p.pos = start.pos
        return p

    def command(self, end: str) -> _Cmd:
        args = []
        start = self.peek_ns()
        while True:
            t = self.peek()
            if t.kind == "space":
                self.next()
                continue
            if t.kind == "pipe" and not args:
                self.err(t, 'unexpected "|" in command')
            if t.kind in (end, "pipe"):
                break
            if t.kind == "rparen" and end == "rparen":
                break
            if t.kind == "eof":
                self.err(t, "unclosed action")
            if args and self.toks[self.i - 1].kind not in ("space",) and t.kind != "field":
                self.err(t, "missing space?")
            args.append(self.operand(t))
        if not args:
            self.err(start, "missing value for command" if start.kind != "pipe" else "missing command")
        c = _Cmd(args)
        c.pos = start.pos
        c.src = " ".join(a.src for a in args)
        return c

    def operand(self, t: _Tok):
        self.next()
        k = t.kind
        if k == "field":
            node = _Field([t.val[1:]])
            while self.peek().kind == "field":
                node.idents.append(self.next().val[1:])
        elif k == "variable":
            if t.val not in self.vars[-1]:
                self.err(t, f"undefined variable \"{t.val}\"")
            node = _Var(t.val, [])
            while self.peek().kind == "field":
                node.idents.append(self.next().val[1:])
        elif k == "dot":
            node = _Dot()
        elif k == "lparen":
            inner = self.pipeline("parenthesized pipeline", "rparen")
            node = inner
            if self.peek().kind == "field":
                idents = []
                while self.peek().kind == "field":
                    idents.append(self.next().val[1:])
                node = _Chain(inner, idents)
        elif k == "identifier":
            if t.val not in self.funcs and t.val not in _BUILTINS:
                self.err(t, f'function "{t.val}" not defined')
            node = _Ident(t.val)
            if self.peek().kind == "field":
                idents = []
                while self.peek().kind == "field":
                    idents.append(self.next().val[1:])
                node = _Chain(node, idents)
        elif k == "keyword" and t.val in ("true", "false"):
            node = _Const(t.val == "true")
        elif k == "keyword" and t.val == "nil":
            node = _NilNode()
        elif k in ("string", "rawstring"):
            node = _Const(_unquote(t.val))
        elif k == "charconst":
            node = _Const(ord(_unquote('"' + t.val[1:-1] + '"')))
        elif k == "number":
            node = _Const(_number(t.val, self, t))
        elif k == "rdelim":
            self.unexpected(t, "operand")
        else:
            self.unexpected(t, "operand")
        node.pos = t.pos
        node.src = self.text[t.pos:self.toks[self.i].pos if self.i < len(self.toks) else len(self.text)].strip()
        return node


def _delim_desc(tok: _Tok) -> str:
    return "{{" if tok.kind == "ldelim" else '"}}"'


def _unquote(s: str) -> str:
    if s.startswith("`"):
        return s[1:-1]
    body = s[1:-1]
    out, i = [], 0
    simple = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'", "a": "\a", "b": "\b",
              "f": "\f", "v": "\v"}
    while i < len(body):
        c = body[i]
        if c != "\\":
            out.append(c)
            i += 1
            continue
        e = body[i + 1]
        if e in simple:
            out.append(simple[e])
            i += 2
        elif e == "x":
            out.append(chr(int(body[i + 2:i + 4], 16)))
            i += 4
        elif e == "u":
            out.append(chr(int(body[i + 2:i + 6], 16)))
            i += 6
        elif e == "U":
            out.append(chr(int(body[i + 2:i + 10], 16)))
            i += 10
        elif e in "01234567":
            out.append(chr(int(body[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(e)
            i += 2
    return "".join(out)


def _number(s: str, parser, tok):
    raw = s.replace("_", "")
    if raw.endswith("i"):
        m = re.fullmatch(r"([+-]?[\d.]+(?:[eE][+-]?\d+)?)([+-][\d.]*(?:[eE][+-]?\d+)?)i", raw)
        if m:
            return complex(float(m.group(1)), float(m.group(2)))
        return complex(0, float(raw[:-1] or 0))
    try:
        if re.fullmatch(r"[+-]?0[xX][0-9a-fA-F]+", raw):
            v = int(raw, 16)
        elif re.fullmatch(r"[+-]?0[bB][01]+", raw):
            v = int(raw, 2)
        elif re.fullmatch(r"[+-]?0[oO]?[0-7]+", raw):
            v = int(raw.replace("o", "").replace("O", ""), 8)
        elif re.fullmatch(r"[+-]?\d+", raw):
            v = int(raw)
        else:
            f = float(raw)
            return int(f) if False else f
    except ValueError:
        parser.err(tok, f'illegal number syntax: "{s}"')
    if not -(1 << 63) <= v < (1 << 63):
        parser.err(tok, f"{s} overflows int")
    return v


# ---------------------------------------------------------------------------------------------
# values: Go's printing, truth and types
# ---------------------------------------------------------------------------------------------
def go_type(v) -> str:
    if v is None or v is MISSING:
        return "<nil>"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float64"
    if isinstance(v, complex):
        return "complex128"
    if isinstance(v, str):
        return "string"
    if isinstance(v, Nil):
        return {"slice": "[]interface {}", "map": "map[string]interface {}"}.get(v.kind, "*struct")
    if isinstance(v, Struct):
        return v.type_name
    if isinstance(v, dict):
        return "map[string]interface {}"
    if isinstance(v, (list, tuple)):
        return "[]string" if v and all(isinstance(x, str) for x in v) else "[]interface {}"
    if callable(v):
        return "func"
    return type(v).__name__


def fmt_float(f: float, verb: str = "g", prec: int = -1) -> str:
    """Go's %v/%g for float64: the shortest repr, exponent form when exp < -4 or >= 21."""
    if math.isnan(f):
        return "NaN"
    if math.isinf(f):
        return "+Inf" if f > 0 else "-Inf"
    if prec >= 0:
        s = f"{f:.{prec}{verb}}"
    else:
        r = repr(f)
        mant, _, exp = r.partition("e")
        digits = mant.replace("-", "").replace(".", "").lstrip("0") or "0"
        e = int(exp) if exp else 0
        # decimal exponent of the leading digit
        if "." in mant:
            ip, _, fp = mant.lstrip("-").partition(".")
            if ip.strip("0"):
                x = len(ip.lstrip("0")) - 1 + e
            else:
                x = -(len(fp) - len(fp.lstrip("0")) + 1) + e
        else:
            x = len(mant.lstrip("-").lstrip("0")) - 1 + e
        digits = digits.rstrip("0") or "0"
        if f == 0:
            return "-0" if math.copysign(1, f) < 0 else "0"
        eprec = 6  # strconv: the shortest form switches to %e at exponent 6
        sign = "-" if f < 0 else ""
        if x < -4 or x >= eprec:
            m = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
            return f"{sign}{m}e{'-' if x < 0 else '+'}{abs(x):02d}"
        if x < 0:
            return f"{sign}0.{'0' * (-x - 1)}{digits}"
        if len(digits) <= x + 1:
            return sign + digits + "0" * (x + 1 - len(digits))
        return sign + digits[:x + 1] + "." + digits[x + 1:]
    if "e" in s:
        m, _, e = s.partition("e")
        s = f"{m}e{e[0]}{int(e[1:]):02d}"
    return s


def _fmt_complex(c: complex) -> str:
    im = fmt_float(c.imag)
    if not im.startswith("-"):
        im = "+" + im
    return f"({fmt_float(c.real)}{im}i)"


def go_str(v, depth: int = 0) -> str:
    """fmt.Sprint(v) as Go prints the value (%v)."""
    if v is MISSING:
        return "<no value>"
    if v is None:
        return "<nil>"
    if isinstance(v, Nil):
        return {"slice": "[]", "map": "map[]"}.get(v.kind, "<nil>")
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return fmt_float(v)
    if isinstance(v, complex):
        return _fmt_complex(v)
    if isinstance(v, str):
        return v
    if isinstance(v, Struct):
        return "{" + " ".join(go_str(x, depth + 1) for x in v.values() if not callable(x)) + "}"
    if isinstance(v, dict):
        items = sorted(v.items(), key=lambda kv: _sort_key(kv[0]))
        return "map[" + " ".join(f"{go_str(k, depth + 1)}:{go_str(_nil_default(k, x), depth + 1)}"
                                 for k, x in items) + "]"
    if isinstance(v, (list, tuple)):
        return "[" + " ".join(go_str(x, depth + 1) for x in v) + "]"
    return str(v)


def _nil_default(key, v):
    if v is None:
        n = _nil_for(key)
        return n if n is not None else None
    return v


def _sort_key(k):
    return (0, k, "") if isinstance(k, (int, float)) else (1, 0, str(k))


def truth(v) -> bool:
    if v is None or v is MISSING or isinstance(v, Nil):
        return False
    if isinstance(v, (bool, int, float, complex, str, list, tuple, dict)):
        return bool(v)
    return True


def _json(v) -> str:
    def conv(x):
        if x is MISSING or isinstance(x, Nil):
            return None
        if isinstance(x, Struct):
            return {str(k): conv(y) for k, y in x.items() if not callable(y)}
        if isinstance(x, dict):  # a Go map: encoding/json sorts its keys
            return {str(k): conv(x[k]) for k in sorted(x, key=str) if not callable(x[k])}
        if isinstance(x, (list, tuple)):
            return [conv(y) for y in x]
        if isinstance(x, float) and x.is_integer() and abs(x) < 1e21:
            return int(x)
        return x

    s = _jsonlib.dumps(conv(v), ensure_ascii=False, separators=(",", ":"))
    return s.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


# ---------------------------------------------------------------------------------------------
# builtins
# ---------------------------------------------------------------------------------------------
def _need_str(fn: str, v, argn: int = 0) -> str:
    if not isinstance(v, str):
        raise _ExecError(f"wrong type for value; expected string; got {go_type(v)}")
    return v


def _need_int(v) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise _ExecError(f"wrong type for value; expected int; got {go_type(v)}")
    return v


def _len(v):
    if isinstance(v, (str, list, tuple, dict)):
        return len(v.encode() if isinstance(v, str) else v)
    if isinstance(v, Nil) and v.kind in ("slice", "map"):
        return 0
    raise _ExecError(f"error calling len: len of type {go_type(v)}" if v is not None and v is not MISSING
                     else "error calling len: len of nil pointer")


def _index_one(item, idx):
    if item is None or item is MISSING or (isinstance(item, Nil) and item.kind == "ptr"):
        raise _ExecError("error calling index: index of untyped nil")
    if isinstance(item, Nil):
        if item.kind == "map":
            return None
        raise _ExecError(f"error calling index: index out of range: {idx}")
    if isinstance(item, dict) and not isinstance(item, Struct):
        if idx is None or idx is MISSING:
            raise _ExecError("error calling index: value is nil; should be of type string")
        if idx in item:
            v = item[idx]
            return MISSING if v is None else v
        return _zero_elem(item)
    if isinstance(item, (list, tuple, str)):
        if isinstance(idx, bool) or not isinstance(idx, int):
            raise _ExecError(f"error calling index: cannot index slice/array with type {go_type(idx)}")
        seq = item.encode() if isinstance(item, str) else item
        if not 0 <= idx < len(seq):
            raise _ExecError(f"error calling index: index out of range: {idx}")
        return seq[idx]
    raise _ExecError(f"error calling index: can't index item of type {go_type(item)}")


def _zero_elem(m: dict):
    """Go's index of a missing key: the element type's zero value. Docker's maps are mostly
    map[string]string (Labels, Options): "" ; a map of numbers gives 0; otherwise <no value>."""
    vals = list(m.values())
    if all(isinstance(v, str) for v in vals):
        return ""
    if all(isinstance(v, int) and not isinstance(v, bool) for v in vals):
        return 0
    if all(isinstance(v, bool) for v in vals):
        return False
    return MISSING


def _index(item, *idxs):
    for i in idxs:
        item = _index_one(item, i)
    return item


def _slice(item, *idxs):
    if isinstance(item, Nil) or item is None:
        raise _ExecError("error calling slice: slice of untyped nil")
    if not isinstance(item, (str, list, tuple)):
        raise _ExecError(f"error calling slice: can't slice item of type {go_type(item)}")
    if len(idxs) > 3 or (len(idxs) == 3 and isinstance(item, str)):
        raise _ExecError(f"error calling slice: too many slice indexes: {len(idxs)}")
    ints = [_need_int(i) for i in idxs]
    n = len(item.encode()) if isinstance(item, str) else len(item)
    lo = ints[0] if ints else 0
    hi = ints[1] if len(ints) > 1 else n
    if not 0 <= lo <= hi <= n:
        raise _ExecError(f"error calling slice: invalid slice index: {lo} > {hi}" if lo > hi
                         else f"error calling slice: index out of range: {hi if hi > n else lo}")
    if isinstance(item, str):
        return item.encode()[lo:hi].decode(errors="replace")
    return list(item[lo:hi])


def _basic_kind(v):
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float"
    if isinstance(v, complex):
        return "complex"
    if isinstance(v, str):
        return "string"
    return None


def _isnil(v) -> bool:
    return v is None or v is MISSING or isinstance(v, Nil)


def _eq(a, *bs):
    if not bs:
        raise _ExecError("error calling eq: missing argument for comparison")
    for x in (a, *bs):
        if isinstance(x, (list, tuple, dict)) and not isinstance(x, Struct):
            raise _ExecError(f"error calling eq: non-comparable type {go_str(x)}: {go_type(x)}")
    ka = _basic_kind(a)
    for b in bs:
        kb = _basic_kind(b)
        if _isnil(a) or _isnil(b):
            if _isnil(a) and _isnil(b):
                return True
            continue
        if ka != kb:
            if ka is not None and kb is not None:
                raise _ExecError("error calling eq: incompatible types for comparison")
            continue
        if a == b:
            return True
    return False


def _fmt_val(v):
    return go_str(v)


def _lt(a, b, name="lt"):
    ka, kb = _basic_kind(a), _basic_kind(b)
    if ka is None or kb is None or ka == "bool" or kb == "bool" or ka == "complex" or kb == "complex":
        raise _ExecError(f"error calling {name}: invalid type for comparison")
    if ka != kb:
        raise _ExecError(f"error calling {name}: incompatible types for comparison")
    return a < b


def _le(a, b):
    return _lt(a, b, "le") or _eq(a, b)


def _gt(a, b):
    return not _le(a, b)


def _ge(a, b):
    return not _lt(a, b, "ge")


def _sprint(args) -> str:
    out = []
    for i, a in enumerate(args):
        if i and not isinstance(a, str) and not isinstance(args[i - 1], str):
            out.append(" ")
        out.append(go_str(a))
    return "".join(out)


def _sprintln(args) -> str:
    return " ".join(go_str(a) for a in args) + "\n"


_VERB_RE = re.compile(r"%([-+# 0]*)(\*|\d+)?(?:\.(\*|\d+)?)?(.)", re.S)


def sprintf(fmt: str, *args) -> str:
    """Go's fmt.Sprintf for the verbs templates use, with Go's %!verb(type=value) for mistakes."""
    out, ai, i = [], 0, 0
    args = list(args)
    while i < len(fmt):
        c = fmt[i]
        if c != "%":
            j = fmt.find("%", i)
            j = len(fmt) if j < 0 else j
            out.append(fmt[i:j])
            i = j
            continue
        m = _VERB_RE.match(fmt, i)
        if not m:
            out.append("%!(NOVERB)")
            break
        i = m.end()
        flags, width, prec, verb = m.group(1), m.group(2), m.group(3), m.group(4)
        if verb == "%":
            out.append("%")
            continue
        if width == "*":
            width = str(args[ai]) if ai < len(args) else "0"
            ai += 1
        if prec == "*":
            prec = str(args[ai]) if ai < len(args) else "0"
            ai += 1
        has_prec = "." in m.group(0)[:-1]
        if ai >= len(args):
            out.append(f"%!{verb}(MISSING)")
            continue
        a = args[ai]
        ai += 1
        s = _fmt_one(a, verb, flags, int(prec or 0) if has_prec else None)
        if s is None:
            s = f"%!{verb}({go_type(a)}={go_str(a)})"
        w = int(width) if width else 0
        if len(s) < w:
            if "-" in flags:
                s = s.ljust(w)
            elif "0" in flags and verb in "dxXobeEfFgG" and not isinstance(a, str):
                neg = s.startswith("-") or s.startswith("+")
                s = (s[0] + s[1:].rjust(w - 1, "0")) if neg else s.rjust(w, "0")
            else:
                s = s.rjust(w)
        out.append(s)
    if ai < len(args):
        out.append("%!(EXTRA " + ", ".join(f"{go_type(a)}={go_str(a)}" for a in args[ai:]) + ")")
    return "".join(out)


def _fmt_one(a, verb, flags, prec):
    plus = "+" in flags
    if verb == "v":
        if "#" in flags and isinstance(a, str):
            return _go_quote(a)
        s = go_str(a)
        return ("+" + s) if plus and isinstance(a, (int, float)) and not isinstance(a, bool) and a >= 0 else s
    if verb == "T":
        return go_type(a)
    if verb == "t":
        return ("true" if a else "false") if isinstance(a, bool) else None
    if verb == "s":
        if isinstance(a, (int, float)) and not isinstance(a, bool):
            return None
        s = go_str(a)
        return s[:prec] if prec is not None else s
    if verb == "q":
        if isinstance(a, str):
            return ("`" + a + "`") if "#" in flags and "`" not in a else _go_quote(a)
        if isinstance(a, int) and not isinstance(a, bool):
            return "'" + _go_quote(chr(a))[1:-1].replace("\\\"", '"') + "'"
        return None
    if verb == "c":
        return chr(a) if isinstance(a, int) and not isinstance(a, bool) else None
    if verb in "dboxX":
        if isinstance(a, bool) or not isinstance(a, int):
            if verb in "xX" and isinstance(a, str):
                h = a.encode().hex()
                return h.upper() if verb == "X" else h
            return None
        base = {"d": "d", "b": "b", "o": "o", "x": "x", "X": "X"}[verb]
        s = format(abs(a), base)
        if "#" in flags and verb in "xX":
            s = ("0x" if verb == "x" else "0X") + s
        if "#" in flags and verb == "o":
            s = "0" + s
        if prec is not None and len(s) < prec:
            s = s.rjust(prec, "0")
        return ("-" if a < 0 else ("+" if plus else "")) + s
    if verb in "eEfFgG":
        if isinstance(a, complex):
            return "(" + _fmt_one(a.real, verb, flags, prec) + _fmt_one(a.imag, verb, "+", prec) + "i)"
        if isinstance(a, bool) or not isinstance(a, (int, float)):
            return None
        if isinstance(a, int):
            return None
        if verb in "gG" and prec is None:
            s = fmt_float(a)
        elif verb in "fF":
            s = f"{a:.{6 if prec is None else prec}f}"
        elif verb in "eE":
            s = fmt_float(a, "e", 6 if prec is None else prec)
        else:
            s = fmt_float(a, "g", prec)
        if verb.isupper():
            s = s.upper()
        return ("+" + s) if plus and a >= 0 else s
    return None


def _go_quote(s: str) -> str:
    from minidock.util.gostrconv import go_quote  # one strconv.Quote for the project

    return go_quote(s)


def _eval_args_str(args) -> str:
    if len(args) == 1 and isinstance(args[0], str):
        return args[0]
    return _sprint(args)


def _html(*args) -> str:
    s = _eval_args_str(args)
    return (s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("'", "&#39;")
            .replace('"', "&#34;").replace("\0", "\uFFFD"))


def _js(*args) -> str:
    s = _eval_args_str(args)
    out = []
    for ch in s:
        o = ord(ch)
        if ch == "\\":
            out.append("\\\\")
        elif ch in "'\"":
            out.append("\\" + ch)
        elif ch in "<>&=":
            out.append(f"\\u{o:04X}")
        elif o < 0x20 or not ch.isprintable():
            out.append(f"\\u{o:04X}")
        else:
            out.append(ch)
    return "".join(out)


def _urlquery(*args) -> str:
    from urllib.parse import quote_plus

    return quote_plus(_eval_args_str(args), safe="-_.~")


def _call(fn, *args):
    if fn is None or fn is MISSING:
        raise _ExecError("error calling call: call of nil")
    if not callable(fn):
        raise _ExecError(f"error calling call: non-function of type {go_type(fn)}")
    return fn(*args)


def _not(v):
    return not truth(v)


# Docker's template functions (github.com/docker/cli/templates)
def _djson(v):
    return _json(v)


def _split(s, sep):
    s, sep = _need_str("split", s), _need_str("split", sep)
    if sep == "":
        return list(s)
    return s.split(sep)


def _join(a, sep):
    sep = _need_str("join", sep)
    if isinstance(a, Nil) or a is None:
        return ""
    if not isinstance(a, (list, tuple)) or not all(isinstance(x, str) for x in a):
        raise _ExecError(f"wrong type for value; expected []string; got {go_type(a)}")
    return sep.join(a)


def _title(s):
    s = _need_str("title", s)
    # strings.Title: upper-case the first letter of each word (word = after a non-letter)
    out, prev = [], " "
    for ch in s:
        boundary = not (prev.isalnum() or prev == "_" or prev == "'") or prev in " "
        out.append(ch.upper() if boundary and ch.isalpha() else ch)
        prev = ch
    return "".join(out)


def _lower(s):
    return _need_str("lower", s).lower()


def _upper(s):
    return _need_str("upper", s).upper()


def _pad(s, prefix, suffix):
    s = _need_str("pad", s)
    if s == "":
        return s
    return " " * _need_int(prefix) + s + " " * _need_int(suffix)


def _truncate(s, n):
    s = _need_str("truncate", s)
    n = _need_int(n)
    b = s.encode()
    if len(b) < n:
        return s
    return b[:n].decode(errors="replace")


_BUILTINS = {
    "and": None, "or": None,  # short-circuit: evaluated by the executor
    "not": _not, "len": _len, "index": _index, "slice": _slice, "print": lambda *a: _sprint(a),
    "println": lambda *a: _sprintln(a), "printf": None, "html": _html, "js": _js,
    "urlquery": _urlquery, "call": _call, "eq": _eq, "ne": lambda a, b: not _eq(a, b),
    "lt": _lt, "le": _le, "gt": _gt, "ge": _ge,
}

DOCKER_FUNCS = {"json": _djson, "split": _split, "join": _join, "title": _title, "lower": _lower,
                "upper": _upper, "pad": _pad, "truncate": _truncate}

# a table header is rendered with the same template: Docker's functions return their argument
HEADER_FUNCS = {"json": lambda v: v, "split": lambda v, _s: v, "join": lambda v, _s: v,
                "title": lambda v: v, "lower": lambda v: v, "upper": lambda v: v,
                "pad": lambda v, _a, _b: v, "truncate": lambda v, _n: v}

_ARITY = {"not": (1, 1), "len": (1, 1), "index": (1, None), "slice": (1, None), "call": (1, None),
          "eq": (1, None), "ne": (2, 2), "lt": (2, 2), "le": (2, 2), "gt": (2, 2), "ge": (2, 2),
          "and": (1, None), "or": (1, None), "printf": (1, None),
          "json": (1, 1), "split": (2, 2), "join": (2, 2), "title": (1, 1), "lower": (1, 1),
          "upper": (1, 1), "pad": (3, 3), "truncate": (2, 2)}


# parameters Go declares as string/int: an invalid (missing) value there is an error
_STRING_PARAMS = {"split": ("string", "string"), "title": ("string",), "lower": ("string",),
                  "upper": ("string",), "pad": ("string", "int", "int"), "truncate": ("string", "int"),
                  "printf": ("string",)}

# ---------------------------------------------------------------------------------------------
# execution
# ---------------------------------------------------------------------------------------------
class Template:
    def __init__(self, text: str, name: str = "", funcs: dict | None = None):
        self.name, self.text = name, text
        self.funcs = dict(DOCKER_FUNCS if funcs is None else funcs)
        p = _Parser(text, name, self.funcs)
        self.root = p.parse()
        self.defines = p.defines

    def execute(self, data, funcs: dict | None = None) -> str:
        ex = _Exec(self, funcs or self.funcs)
        out: list[str] = []
        try:
            ex.walk(self.root, data, [("$", data)], out)
        except _ExecError as e:
            raise TemplateError(f"template: {self.name}:{ex.where()}: {e}", exit_code=1) from None
        except RecursionError:
            raise TemplateError(f"template: {self.name}: exceeded maximum template depth", exit_code=1) from None
        return "".join(out)


class _Exec:
    def __init__(self, tmpl: Template, funcs: dict):
        self.t, self.funcs = tmpl, funcs
        self.node: _Node | None = None

    def where(self) -> str:
        n = self.node
        if n is None:
            return "1"
        text = self.t.text
        line = text.count("\n", 0, n.pos) + 1
        col = n.pos - (text.rfind("\n", 0, n.pos) + 1)
        return f'{line}:{col}: executing "{self.t.name}" at <{n.src}>'

    # statements
    def walk(self, nodes, dot, vars_, out):
        for n in nodes:
            if isinstance(n, _Text):
                out.append(n.text)
            elif isinstance(n, _Action):
                v = self.pipe(n.pipe, dot, vars_)
                if not n.pipe.decl:
                    self.node = n
                    out.append(self.printable(v))
            elif isinstance(n, _Control):
                self.control(n, dot, vars_, out)
            elif isinstance(n, _TemplateCall):
                body = self.t.defines.get(n.name)
                self.node = n
                if body is None:
                    raise _ExecError(f'template: no template "{n.name}" associated with template "{self.t.name}"')
                d = self.pipe(n.pipe, dot, vars_) if n.pipe else None
                self.walk(body, d, [("$", d)], out)
            elif isinstance(n, _Jump):
                raise _BreakSignal() if n.kind == "break" else _ContinueSignal()

    def printable(self, v) -> str:
        if isinstance(v, Func):
            raise _ExecError("can't print value of type func")
        return go_str(v)

    def control(self, n: _Control, dot, vars_, out):
        mark = len(vars_)
        v = self.pipe(n.pipe, dot, vars_)
        try:
            if n.kind == "range":
                self.range(n, v, dot, vars_, out)
                return
            if truth(v):
                self.walk(n.body, v if n.kind == "with" else dot, vars_, out)
            elif n.else_ is not None:
                self.walk(n.else_, dot, vars_, out)
        finally:
            del vars_[mark:]

    def range(self, n: _Control, v, dot, vars_, out):
        if v is None or v is MISSING or isinstance(v, Nil):
            items = []
        elif isinstance(v, dict) and not isinstance(v, Struct):
            items = [(k, v[k]) for k in sorted(v, key=_sort_key)]
        elif isinstance(v, (list, tuple)):
            items = list(enumerate(v))
        elif isinstance(v, int) and not isinstance(v, bool):
            items = [(i, i) for i in range(v)]
        else:
            self.node = n
            raise _ExecError(f"range can't iterate over {go_str(v)}")
        if not items:
            if n.else_ is not None:
                self.walk(n.else_, dot, vars_, out)
            return
        decl = n.pipe.decl
        mark = len(vars_)
        for k, item in items:
            if len(decl) == 1:
                self.setvar(vars_, decl[0], item, n.pipe.assign, mark)
            elif len(decl) == 2:
                self.setvar(vars_, decl[0], k, n.pipe.assign, mark)
                self.setvar(vars_, decl[1], item, n.pipe.assign, mark)
            try:
                self.walk(n.body, item, vars_, out)
            except _BreakSignal:
                break
            except _ContinueSignal:
                continue
            finally:
                if not n.pipe.assign:
                    del vars_[mark:]

    def setvar(self, vars_, name, value, assign, mark):
        if assign:
            for i in range(len(vars_) - 1, -1, -1):
                if vars_[i][0] == name:
                    vars_[i] = (name, value)
                    return
        vars_.append((name, value))

    def pipe(self, p: _Pipe, dot, vars_):
        v = _NOARG
        for c in p.cmds:
            v = self.command(c, dot, vars_, v)
        if len(p.decl) == 1:  # a range with two variables declares them per element
            self.setvar(vars_, p.decl[0], v, p.assign, len(vars_))
        return v

    def command(self, c: _Cmd, dot, vars_, final):
        first = c.args[0]
        self.node = first
        if isinstance(first, _Ident):
            return self.call_func(first, c.args[1:], dot, vars_, final, c)
        if isinstance(first, _Field):
            return self.field_chain(dot, first.idents, c.args[1:], dot, vars_, final, first)
        if isinstance(first, _Chain):
            base = self.arg(first.node, dot, vars_)
            return self.field_chain(base, first.idents, c.args[1:], dot, vars_, final, first)
        if isinstance(first, _Var):
            base = self.lookup_var(first.name, vars_)
            if first.idents:
                return self.field_chain(base, first.idents, c.args[1:], dot, vars_, final, first)
            self.not_a_function(c, final)
            return base
        self.not_a_function(c, final)
        if isinstance(first, _Pipe):
            return self.pipe_value(first, dot, vars_)
        if isinstance(first, _Dot):
            return dot
        if isinstance(first, _NilNode):
            raise _ExecError("nil is not a command")
        return first.value

    def not_a_function(self, c: _Cmd, final):
        if len(c.args) > 1 or final is not _NOARG:
            raise _ExecError(f"can't give argument to non-function {c.args[0].src}")

    def pipe_value(self, p: _Pipe, dot, vars_):
        mark = len(vars_)
        v = self.pipe(p, dot, vars_)
        if not p.decl:
            del vars_[mark:]
        return v

    def lookup_var(self, name, vars_):
        for n, v in reversed(vars_):
            if n == name:
                return v
        raise _ExecError(f"undefined variable: {name}")

    def arg(self, node, dot, vars_):
        self.node = node
        if isinstance(node, _Dot):
            return dot
        if isinstance(node, _NilNode):
            return None
        if isinstance(node, _Const):
            return node.value
        if isinstance(node, _Field):
            return self.field_chain(dot, node.idents, [], dot, vars_, _NOARG, node)
        if isinstance(node, _Var):
            base = self.lookup_var(node.name, vars_)
            return self.field_chain(base, node.idents, [], dot, vars_, _NOARG, node) if node.idents else base
        if isinstance(node, _Chain):
            base = self.arg(node.node, dot, vars_)
            return self.field_chain(base, node.idents, [], dot, vars_, _NOARG, node)
        if isinstance(node, _Pipe):
            return self.pipe_value(node, dot, vars_)
        if isinstance(node, _Ident):
            return self.call_func(node, [], dot, vars_, _NOARG)
        raise _ExecError("can't handle argument")

    def field_chain(self, recv, idents, args, dot, vars_, final, node):
        for i, name in enumerate(idents):
            last = i == len(idents) - 1
            recv = self.field(recv, name, args if last else [], dot, vars_, final if last else _NOARG, node, i)
        return recv

    def field(self, recv, name, args, dot, vars_, final, node, idx):
        self.node = node
        has_args = bool(args) or final is not _NOARG
        if recv is None or recv is MISSING or (isinstance(recv, Nil) and recv.kind == "ptr"):
            if recv is MISSING or recv is None:
                raise _ExecError(f"nil pointer evaluating interface {{}}.{name}")
            raise _ExecError(f"nil pointer evaluating {go_type(recv)}.{name}")
        if isinstance(recv, Nil) and recv.kind == "map":
            return MISSING if not has_args else self._map_args_err(name)
        if isinstance(recv, Struct):
            if name not in recv:
                raise _ExecError(f"can't evaluate field {name} in type {recv.type_name}")
            v = recv[name]
        elif isinstance(recv, dict):
            if has_args:
                self._map_args_err(name)
            if name not in recv:
                return MISSING
            v = recv[name]
            if v is None:
                n = _nil_for(name)
                return n if n is not None else MISSING
            return v
        else:
            raise _ExecError(f"can't evaluate field {name} in type {go_type(recv)}")
        if callable(v) and not isinstance(v, (dict, list, Func)):
            argv = [self.arg(a, dot, vars_) for a in args]
            if final is not _NOARG:
                argv.append(final)
            self.node = node
            try:
                return v(*argv)
            except TypeError:
                raise _ExecError(f"wrong number of args for {name}: got {len(argv)}") from None
        if has_args:
            raise _ExecError(f"{name} has arguments but cannot be invoked as function")
        if v is None:
            n = _nil_for(name)
            return n if n is not None else Nil("ptr")
        return v

    def _map_args_err(self, name):
        raise _ExecError(f"{name} is not a method but has arguments")

    def call_func(self, ident: _Ident, args, dot, vars_, final, cmd=None):
        name = ident.name
        argn = len(args) + (0 if final is _NOARG else 1)
        lo, hi = _ARITY.get(name, (0, None))
        if name in ("and", "or"):
            if argn < 1:
                raise _ExecError(f"wrong number of args for {name}: want at least 1 got 0")
            v = None
            for a in args:
                v = self.arg(a, dot, vars_)
                if truth(v) != (name == "and"):
                    return v
            if final is not _NOARG:
                v = final
            return v
        argv = [self.arg(a, dot, vars_) for a in args]
        if final is not _NOARG:
            argv.append(final)
        self.node = cmd or ident
        if name in self.funcs:
            fn = self.funcs[name]
        else:
            fn = _BUILTINS[name]
        if name in _ARITY and (argn < lo or (hi is not None and argn > hi)):
            want = f"want {lo}" if lo == hi else f"want at least {lo}"
            raise _ExecError(f"wrong number of args for {name}: {want} got {argn}")
        if name == "printf":
            if not isinstance(argv[0], str):
                raise _ExecError(f"wrong type for value; expected string; got {go_type(argv[0])}")
            return sprintf(*argv)
        if name in _STRING_PARAMS:
            for a, want in zip(argv, _STRING_PARAMS[name]):
                if a is MISSING:
                    raise _ExecError(f"invalid value; expected {want}")
        argv = [None if a is MISSING else a for a in argv]
        try:
            return fn(*argv)
        except _ExecError as e:
            msg = str(e)
            if not msg.startswith("error calling") and not msg.startswith("wrong number"):
                msg = f"error calling {name}: {msg}" if name in _BUILTINS else msg
            raise _ExecError(msg) from None
        except TypeError:
            raise _ExecError(f"wrong number of args for {name}: got {argn}") from None


_NOARG = object()


# ---------------------------------------------------------------------------------------------
# public helpers
# ---------------------------------------------------------------------------------------------
def parse(text: str, funcs: dict | None = None, name: str = "") -> Template:
    return Template(text, name, funcs)


def render(text: str, data) -> str:
    """`docker inspect -f TEXT` for one object: the text is used as given (only the list
    formatter turns `\\t`/`\\n` into tabs and newlines)."""
    return parse(text).execute(data)


def docker_format(fmt: str, rows: list, header: dict | None = None, json_rows=None) -> str:
    """Docker's formatter for list commands (ps, images, network ls, ...).

    `fmt` is Docker's --format: "json" (one JSON object per row), "table" or "table TEMPLATE"
    (a header row, then tab-aligned columns), or a template executed once per row. `\\t` and
    `\\n` in the text are turned into tabs and newlines first, as Docker does."""
    if fmt == "json":
        src = json_rows if json_rows is not None else rows
        return "".join(_json(r) + "\n" for r in src)
    is_table = fmt.startswith("table")
    text = fmt[len("table"):] if is_table else fmt
    text = text.strip(" ").replace("\\t", "\t").replace("\\n", "\n")
    tmpl = parse(text)
    body = "".join(tmpl.execute(r) + "\n" for r in rows)
    if not is_table:
        return body
    head = ""
    if header is not None:
        try:
            head = Template(text, "", HEADER_FUNCS).execute(Struct(header, type_name="header"))
        except TemplateError:
            head = ""
    return tabwrite(head + "\n" + body)




def write_listing(fmt: str | None, rows: list, default: str, header: dict) -> None:
    """`network ls`, `volume ls` ...: --format json (each row's plain fields), table (the
    command's default columns when no template is given) or a template, to standard output."""
    import sys

    if fmt == "json":
        sys.stdout.write(docker_format("json", rows, json_rows=[
            {k: r[k] for k in sorted(r) if not callable(r[k])} for r in rows]))
        return
    sys.stdout.write(docker_format(default if not fmt or fmt == "table" else fmt, rows, header))
