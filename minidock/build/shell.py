"""Docker's shell-word lexer: variable expansion, quotes and escapes as BuildKit does them.

A port (our own code) of the rules in BuildKit's `frontend/dockerfile/shell/lex.go`:

* `$V`, `${V}`, `${V:-w}` `${V-w}` (default), `${V:+w}` `${V+w}` (alternative),
  `${V:?msg}` `${V?msg}` (required), `${V#p}` `${V##p}` `${V%p}` `${V%%p}` (trim a shell
  pattern), `${V/p/r}` `${V//p/r}` (replace); `$1`..`$999`, `$@ $* $# $? $- $$ $! $0` expand
  to "" (never set in a Dockerfile).
* single quotes keep everything literally; double quotes keep everything except `$` and the
  escape token, which escapes only `"`, `$` and itself there; outside quotes the escape token
  escapes any character (and is dropped at the end of the word).
* word splitting (for EXPOSE and the heredoc scanner) happens after expansion, on whitespace
  that came from unquoted text or from an unquoted `$` expansion.

Options mirror the reference lexer's: `raw_quotes` keeps the quote characters, `raw_escapes`
keeps the escape tokens, `skip_unset` leaves `$UNSET` references untouched (used to find
heredoc markers), `skip_quotes` treats quotes as ordinary characters.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from minidock.errors import InvalidArgument
from minidock.util.gostrconv import go_quote

_SPECIAL_PARAMS = set("@*#?-$!0")


class ShellWordError(InvalidArgument):
    """A word could not be expanded (unterminated quote, bad substitution, ${V:?msg})."""


def _is_space(ch: str) -> bool:
    # Go's unicode.IsSpace
    return ch in "\t\n\v\f\r \x85\xa0" or (ch > "\xff" and ch.isspace())


class _Words:
    """Collects words as the reference lexer splits them."""

    def __init__(self) -> None:
        self.buf: list[str] = []
        self.words: list[str] = []
        self.in_word = False

    def add_char(self, ch: str) -> None:
        if _is_space(ch):
            if self.in_word and self.buf:
                self.words.append("".join(self.buf))
                self.buf = []
                self.in_word = False
        else:
            self.add_raw_char(ch)

    def add_raw_char(self, ch: str) -> None:
        self.buf.append(ch)
        self.in_word = True

    def add_string(self, s: str) -> None:
        for ch in s:
            self.add_char(ch)

    def add_raw_string(self, s: str) -> None:
        self.buf.append(s)
        self.in_word = True

    def get(self) -> list[str]:
        if self.buf:
            self.words.append("".join(self.buf))
            self.buf = []
            self.in_word = False
        return self.words


class Lexer:
    """One lexer configuration; `process()` returns (the expanded word, its split words)."""

    def __init__(self, escape: str = "\\", *, raw_quotes: bool = False, raw_escapes: bool = False,
                 skip_unset: bool = False, skip_quotes: bool = False) -> None:
        self.escape = escape
        self.raw_quotes = raw_quotes
        self.raw_escapes = raw_escapes
        self.skip_unset = skip_unset
        self.skip_quotes = skip_quotes

    # ---- public -------------------------------------------------------------------------------
    def process(self, word: str, env: Mapping[str, str] | None) -> tuple[str, list[str]]:
        self._s = word
        self._pos = 0
        self._env = env or {}
        self._raw_esc = self.raw_escapes
        self.matched: set[str] = set()
        self.unmatched: set[str] = set()
        try:
            return self._stop_on(None, self.raw_escapes)
        except ShellWordError as e:
            raise ShellWordError(f"failed to process {go_quote(word)}: {e.message}") from None

    # ---- scanner ------------------------------------------------------------------------------
    def _peek(self) -> str | None:
        return self._s[self._pos] if self._pos < len(self._s) else None

    def _next(self) -> str | None:
        if self._pos < len(self._s):
            ch = self._s[self._pos]
            self._pos += 1
            return ch
        self._pos = len(self._s) + 1  # like text/scanner: stays at EOF
        return None

    def _get(self, name: str) -> tuple[str, bool]:
        if name in self._env:
            self.matched.add(name)
            v = self._env[name]
            return ("" if v is None else v), True
        self.unmatched.add(name)
        return "", False

    def _stop_on(self, stop: str | None, raw_escapes: bool) -> tuple[str, list[str]]:
        saved = self._raw_esc
        self._raw_esc = raw_escapes
        try:
            result: list[str] = []
            words = _Words()
            while self._peek() is not None:
                ch = self._peek()
                if stop is not None and ch == stop:
                    self._next()
                    return "".join(result), words.get()
                if ch == "$" or ch == "<" or (not self.skip_quotes and ch in "'\""):
                    if ch == "$":
                        tmp = self._dollar()
                    elif ch == "<":
                        tmp = self._possible_heredoc()
                    elif ch == "'":
                        tmp = self._single_quote()
                    else:
                        tmp = self._double_quote()
                    result.append(tmp)
                    if ch == "$":
                        words.add_string(tmp)
                    else:
                        words.add_raw_string(tmp)
                    continue
                ch = self._next()
                if ch == self.escape:
                    if self._raw_esc:
                        words.add_raw_char(ch)
                        result.append(ch)
                    ch = self._next()
                    if ch is None:
                        break
                    words.add_raw_char(ch)
                else:
                    words.add_char(ch)
                result.append(ch)
            if stop is not None:
                raise ShellWordError(f"unexpected end of statement while looking for matching {stop}")
            return "".join(result), words.get()
        finally:
            self._raw_esc = saved

    def _single_quote(self) -> str:
        out = []
        ch = self._next()
        if self.raw_quotes:
            out.append(ch)
        while True:
            ch = self._next()
            if ch is None:
                raise ShellWordError("unexpected end of statement while looking for matching single-quote")
            if ch == "'":
                if self.raw_quotes:
                    out.append(ch)
                return "".join(out)
            out.append(ch)

    def _double_quote(self) -> str:
        out = []
        ch = self._next()
        if self.raw_quotes:
            out.append(ch)
        while True:
            p = self._peek()
            if p is None:
                raise ShellWordError("unexpected end of statement while looking for matching double-quote")
            if p == '"':
                ch = self._next()
                if self.raw_quotes:
                    out.append(ch)
                return "".join(out)
            if p == "$":
                out.append(self._dollar())
                continue
            ch = self._next()
            if ch == self.escape:
                if self._raw_esc:
                    out.append(ch)
                q = self._peek()
                if q is None:
                    continue  # an escape at the end of the word is dropped
                if q in ('"', "$", self.escape):
                    ch = self._next()
            out.append(ch)

    def _name(self) -> str:
        name: list[str] = []
        while self._peek() is not None:
            ch = self._peek()
            if not name and ch.isdecimal():
                while self._peek() is not None and self._peek().isdecimal():
                    name.append(self._next())
                return "".join(name)
            if not name and ch in _SPECIAL_PARAMS:
                return self._next()
            if not (ch.isalpha() or ch.isdecimal() or ch == "_"):
                break
            name.append(self._next())
        return "".join(name)

    def _dollar(self) -> str:
        self._next()
        if self._peek() != "{":
            name = self._name()
            if name == "":
                return "$"
            value, found = self._get(name)
            if not found and self.skip_unset:
                return "$" + name
            return value
        self._next()
        p = self._peek()
        if p is None:
            raise ShellWordError("syntax error: missing '}'")
        if p in "{}:":
            raise ShellWordError("syntax error: bad substitution")
        name = self._name()
        ch = self._next()
        chs = ch or ""
        null_is_unset = False
        if ch == "}":
            value, found = self._get(name)
            if not found and self.skip_unset:
                return "${" + name + "}"
            return value
        if ch == ":":
            null_is_unset = True
            ch = self._next()
            chs += ch or ""
            mod = ch
        elif ch in ("+", "-", "?", "#", "%"):
            mod = ch
        elif ch == "/":
            return self._replace(name)
        else:
            raise ShellWordError(f"unsupported modifier ({chs}) in substitution")
        raw = mod in ("#", "%")
        if null_is_unset and raw:
            raise ShellWordError(f"unsupported modifier ({chs}) in substitution")
        try:
            word, _ = self._stop_on("}", raw)
        except ShellWordError:
            if self._peek() is None:
                raise ShellWordError("syntax error: missing '}'") from None
            raise
        value, found = self._get(name)
        if self.skip_unset and not found:
            return "${" + name + chs + word + "}"
        empty = not found or (null_is_unset and value == "")
        if mod == "-":
            return word if empty else value
        if mod == "+":
            return "" if empty else word
        if mod == "?":
            if not found:
                raise ShellWordError(f"{name}: {word or 'is not allowed to be unset'}")
            if null_is_unset and value == "":
                raise ShellWordError(f"{name}: {word or 'is not allowed to be empty'}")
            return value
        if mod in ("#", "%"):
            greedy = False
            if word[:1] == mod:
                greedy, word = True, word[1:]
            if mod == "%":
                return _trim_suffix(word, value, greedy)
            return _trim_prefix(word, value, greedy)
        raise ShellWordError(f"unsupported modifier ({chs}) in substitution")

    def _replace(self, name: str) -> str:
        replace_all = self._peek() == "/"
        if replace_all:
            self._next()
        try:
            pattern, _ = self._stop_on("/", True)
        except ShellWordError:
            if self._peek() is None:
                raise ShellWordError("syntax error: missing '/' in ${}") from None
            raise
        try:
            replacement, _ = self._stop_on("}", True)
        except ShellWordError:
            if self._peek() is None:
                raise ShellWordError("syntax error: missing '}'") from None
            raise
        value, found = self._get(name)
        if self.skip_unset and not found:
            return "${" + f"{name}/{pattern}/{replacement}" + "}"
        rx = _pattern_regex(pattern, greedy=True, anchored=False)
        if replace_all:
            return rx.sub(lambda _m: replacement, value)
        m = rx.search(value)
        if m:
            value = value[:m.start()] + replacement + value[m.end():]
        return value

    def _possible_heredoc(self) -> str:
        self._next()
        if self._peek() != "<":
            return "<"
        self._next()
        space = []
        while self._peek() is not None and self._peek() in "\t\r ":
            space.append(self._next())
        return "<<" + "".join(space)


def _pattern_regex(pattern: str, greedy: bool, anchored: bool) -> re.Pattern:
    """A shell wildcard pattern (`*`, `?`, `\\` escapes; no brackets) as a regular expression."""
    out = ["^"] if anchored else []
    star = ".*" if greedy else ".*?"
    i, n = 0, len(pattern)
    while i < n:
        tok = pattern[i]
        i += 1
        if tok == "*":
            out.append(star)
            continue
        if tok == "?":
            out.append(".")
            continue
        if tok == "\\":
            nxt = pattern[i] if i < n else None
            if nxt in ("}", "/"):
                continue
            if nxt not in ("*", "?", "\\"):
                raise ShellWordError(f"invalid pattern ({pattern}) in substitution: invalid escape '\\{nxt or ''}'")
            out.append("\\" + nxt)
            i += 1
            continue
        out.append(re.escape(tok))
    return re.compile("".join(out), re.S)


def _trim_prefix(pattern: str, value: str, greedy: bool) -> str:
    m = _pattern_regex(pattern, greedy, anchored=True).search(value)
    return value[m.end():] if m else value


def _reverse_pattern(pattern: str) -> str:
    toks = []
    i = 0
    while i < len(pattern):
        if pattern[i] == "\\" and i != len(pattern) - 1:
            toks.append(pattern[i:i + 2])
            i += 2
        else:
            toks.append(pattern[i])
            i += 1
    return "".join(reversed(toks))


def _trim_suffix(pattern: str, value: str, greedy: bool) -> str:
    return _trim_prefix(_reverse_pattern(pattern), value[::-1], greedy)[::-1]


def expand(word: str, env: Mapping[str, str] | None, escape: str = "\\") -> str:
    """One word with its variables expanded and its quotes and escapes removed (ProcessWord)."""
    return Lexer(escape).process(word, env)[0]


def expand_words(word: str, env: Mapping[str, str] | None, escape: str = "\\") -> list[str]:
    """The words of `word` after expansion, split where BuildKit splits them (ProcessWords)."""
    return Lexer(escape).process(word, env)[1]
