"""Extract buildah's conformance case table (tests/conformance/conformance_test.go,
`internalTestCases`) into cases.json: name, Dockerfile (file or inline contents), context dir,
expected failure line, build args, and the markers the harness needs to decide what can run
here (Go callbacks that tweak the context, buildah-only features).

    python3 tests/conformance/build/extract_cases.py conformance_test.go > tests/conformance/build/cases.json

The table is Go source; this reads only the literal forms it uses (strings, raw strings,
strings.Join of string lists, ints, bools, []string, map[string]string) and records anything
else as {"go": "<expression text>"}.
"""

from __future__ import annotations

import json
import re
import sys


def _skip_string(s: str, i: int) -> int:
    q = s[i]
    i += 1
    if q == "`":
        return s.index("`", i) + 1
    while s[i] != q:
        i += 2 if s[i] == "\\" else 1
    return i + 1


def _blocks(s: str, start: int) -> list[str]:
    """Top-level {...} blocks of the slice literal starting at s[start] == '{'."""
    out, depth, i, begin = [], 0, start, None
    while i < len(s):
        c = s[i]
        if c in "\"`'":
            i = _skip_string(s, i)
            continue
        if s.startswith("//", i):
            i = s.index("\n", i)
            continue
        if c == "{":
            depth += 1
            if depth == 2:
                begin = i
        elif c == "}":
            if depth == 2:
                out.append(s[begin + 1:i])
            depth -= 1
            if depth == 0:
                return out
        i += 1
    raise ValueError("unterminated table")


def _fields(body: str) -> list[tuple[str, str]]:
    out, depth, i, start = [], 0, 0, 0
    parts = []
    while i < len(body):
        c = body[i]
        if c in "\"`'":
            i = _skip_string(body, i)
            continue
        if body.startswith("//", i):
            j = body.index("\n", i)
            body = body[:i] + " " * (j - i) + body[j:]
            i = j
            continue
        if c in "{([":
            depth += 1
        elif c in "})]":
            depth -= 1
        elif c == "," and depth == 0:
            parts.append(body[start:i])
            start = i + 1
        i += 1
    parts.append(body[start:])
    for p in parts:
        p = p.strip()
        m = re.match(r"(\w+)\s*:\s*(.*)\Z", p, re.S)
        if m:
            out.append((m.group(1), m.group(2).strip()))
    return out


def _go_string(tok: str) -> str:
    if tok.startswith("`"):
        return tok[1:-1]
    return json.loads(re.sub(r"\\x([0-9a-fA-F]{2})", r"\\u00\1", tok))


_STR = r'"(?:[^"\\]|\\.)*"|`[^`]*`'


def _strings(text: str) -> list[str]:
    out = []
    for m in re.finditer(rf"fmt\.Sprintf\(({_STR}),\s*syscall\.S_ISUID\)|({_STR})", text, re.S):
        if m.group(1):
            out.append(_go_string(m.group(1)).replace("%o", "4000"))
        else:
            out.append(_go_string(m.group(2)))
    return out


def _value(v: str):
    if re.fullmatch(_STR, v, re.S):
        return _go_string(v)
    if re.fullmatch(r"-?\d+", v):
        return int(v)
    if v in ("true", "false"):
        return v == "true"
    m = re.fullmatch(r"strings\.Join\(\[\]string\{(.*)\},\s*(" + _STR + r")\)", v, re.S)
    if m:
        return _go_string(m.group(2)).join(_strings(m.group(1)))
    m = re.fullmatch(r"\[\]string\{(.*)\}", v, re.S)
    if m and "+" not in m.group(1):
        return _strings(m.group(1))
    m = re.fullmatch(r"map\[string\]string\{(.*)\}", v, re.S)
    if m:
        vals = _strings(m.group(1))
        return dict(zip(vals[::2], vals[1::2]))
    if v.startswith("func("):
        # the one context tweak that is pure data: writing a .dockerignore
        m = re.search(r"dockerignore := \[\]byte\((.*?)\)\s*"
                      r"if err := os\.WriteFile\(filepath\.Join\(contextDir, \"\.dockerignore\"\), dockerignore, "
                      r"(0o\d+)\)", v, re.S)
        if m and v.count("os.WriteFile") == 1:
            text = _value(m.group(1))
            if isinstance(text, str):
                return {"go": "func", "dockerignore": text, "mode": m.group(2)}
        return {"go": "func"}
    return {"go": v}


def extract(src: str) -> list[dict]:
    start = src.index("{", src.index("var internalTestCases = []testCase{") + len("var internalTestCases = []testCase"))
    cases = []
    for body in _blocks(src, start):
        cases.append({k: _value(v) for k, v in _fields(body)})
    return cases


if __name__ == "__main__":
    cases = extract(open(sys.argv[1]).read())
    json.dump({"source": "containers/buildah@5b1b18eebdc249bf445fe58b6f3d82fa91f35cf7 "
                         "tests/conformance/conformance_test.go (Apache-2.0)",
               "cases": cases}, sys.stdout, indent=1, ensure_ascii=False)
    sys.stdout.write("\n")
