"""The template engine against Go's own text/template test cases (ported as data from
src/text/template/exec_test.go; a Python dict stands for Go's test struct `T`, Struct for a
struct, callables for its methods) and Docker's functions against the `docker` CLI."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from minidock.cli import gotemplate as gt


def _method2(a, b):
    return f"Method2: {a} {b}"


U = gt.Struct({"V": "v", "TrueFalse": lambda b: "true" if b else ""}, type_name="*template.U")
T = gt.Struct(type_name="*template.T")
T.update({
    "True": True, "I": 17, "U16": 16, "X": "x", "FloatZero": 0.0, "ComplexZero": 0j,
    "U": U, "SI": [3, 4, 5], "SIEmpty": gt.Nil("slice"), "SB": [True, False],
    "MSI": {"one": 1, "two": 2, "three": 3}, "MSIone": {"one": 1}, "MSIEmpty": {},
    "MXI": {"one": 1}, "SMSI": [{"one": 1, "two": 2}, {"eleven": 11, "twelve": 12}],
    "Empty0": None, "Empty1": 3, "Empty2": "empty2", "Empty3": [7, 8],
    "Empty4": gt.Struct({"V": "UinEmpty"}), "PI": 23, "PS": "a string", "PSI": [21, 22, 23],
    "NIL": gt.Nil("ptr"),
    "Method0": lambda: "M0", "Method1": lambda a: a, "Method2": _method2,
    "Method3": lambda v: f"Method3: {gt.go_str(v)}",
    "MAdd": lambda a, b: [x + a for x in b], "GetU": lambda: U,
    "BinaryFunc": gt.Func(lambda a, b: f"[{a}={b}]"),
    "VariadicFunc": gt.Func(lambda *s: "<" + "+".join(s) + ">"),
    "Copy": lambda: T,
})


def _add(*a):
    return sum(a)


FUNCS = {**gt.DOCKER_FUNCS, "add": _add, "echo": lambda a: a,
         "makemap": lambda *a: dict(zip(a[::2], a[1::2])), "mapOfThree": lambda: {"three": 3},
         "oneArg": lambda a: "oneArg=" + a, "twoArgs": lambda a, b: "twoArgs=" + a + b,
         "typeOf": gt.go_type, "zeroArgs": lambda: "zeroArgs",
         "count": lambda n: list("abcdefghijklmnop"[:n])}

# (name, template, output, data, ok) — Go's execTests where they apply to JSON-shaped data
GO_CASES = [
    ("empty", "", "", None, True),
    ("text", "some text", "some text", None, True),
    ("nil action", "{{nil}}", "", None, False),
    ("ideal int", "{{typeOf 3}}", "int", 0, True),
    ("ideal float", "{{typeOf 1.0}}", "float64", 0, True),
    ("ideal exp float", "{{typeOf 1e1}}", "float64", 0, True),
    ("ideal complex", "{{typeOf 1i}}", "complex128", 0, True),
    (".X", "-{{.X}}-", "-x-", T, True),
    (".U.V", "-{{.U.V}}-", "-v-", T, True),
    ("map .one", "{{.MSI.one}}", "1", T, True),
    ("map .two", "{{.MSI.two}}", "2", T, True),
    ("map .NO", "{{.MSI.NO}}", "<no value>", T, True),
    ("map .one interface", "{{.MXI.one}}", "1", T, True),
    ("map .WRONG args", "{{.MSI.one 1}}", "", T, False),
    ("dot int", "<{{.}}>", "<13>", 13, True),
    ("dot float", "<{{.}}>", "<15.1>", 15.1, True),
    ("dot bool", "<{{.}}>", "<true>", True, True),
    ("dot complex", "<{{.}}>", "<(16.2-17i)>", 16.2 - 17j, True),
    ("dot string", "<{{.}}>", "<hello>", "hello", True),
    ("dot slice", "<{{.}}>", "<[-1 -2 -3]>", [-1, -2, -3], True),
    ("dot map", "<{{.}}>", "<map[two:22]>", {"two": 22}, True),
    ("$ int", "{{$}}", "123", 123, True),
    ("$.I", "{{$.I}}", "17", T, True),
    ("$.U.V", "{{$.U.V}}", "v", T, True),
    ("declare in action", "{{$x := $.U.V}}{{$x}}", "v", T, True),
    ("simple assignment", "{{$x := 2}}{{$x = 3}}{{$x}}", "3", T, True),
    ("nested assignment", "{{$x := 2}}{{if true}}{{$x = 3}}{{end}}{{$x}}", "3", T, True),
    ("nested assignment changes the last declaration",
     "{{$x := 1}}{{if true}}{{$x := 2}}{{if true}}{{$x = 3}}{{end}}{{end}}{{$x}}", "1", T, True),
    ("*int", "{{.PI}}", "23", T, True),
    ("*[]int", "{{.PSI}}", "[21 22 23]", T, True),
    ("*[]int[1]", "{{index .PSI 1}}", "22", T, True),
    ("NIL", "{{.NIL}}", "<nil>", T, True),
    ("empty nil", "{{.Empty0}}", "<nil>", T, True),
    ("empty with int", "{{.Empty1}}", "3", T, True),
    ("empty with string", "{{.Empty2}}", "empty2", T, True),
    ("empty with slice", "{{.Empty3}}", "[7 8]", T, True),
    ("empty with struct", "{{.Empty4}}", "{UinEmpty}", T, True),
    ("empty with struct, field", "{{.Empty4.V}}", "UinEmpty", T, True),
    (".Method0", "-{{.Method0}}-", "-M0-", T, True),
    (".Method1(1234)", "-{{.Method1 1234}}-", "-1234-", T, True),
    (".Method1(.I)", "-{{.Method1 .I}}-", "-17-", T, True),
    (".Method2(3, .X)", "-{{.Method2 3 .X}}-", "-Method2: 3 x-", T, True),
    (".Method2(.U16, `str`)", "-{{.Method2 .U16 `str`}}-", "-Method2: 16 str-", T, True),
    (".Method2(.U16, $x)", "{{if $x := .X}}-{{.Method2 .U16 $x}}{{end}}-", "-Method2: 16 x-", T, True),
    (".Method3(nil constant)", "-{{.Method3 nil}}-", "-Method3: <nil>-", T, True),
    ("method on var", "{{if $x := .}}-{{$x.Method2 .U16 $x.X}}{{end}}-", "-Method2: 16 x-", T, True),
    ("method on chained var",
     "{{range .MSIone}}{{if $.U.TrueFalse $.True}}{{$.U.TrueFalse $.True}}{{else}}WRONG{{end}}{{end}}",
     "true", T, True),
    ("chained method",
     "{{range .MSIone}}{{if $.GetU.TrueFalse $.True}}{{$.U.TrueFalse $.True}}{{else}}WRONG{{end}}{{end}}",
     "true", T, True),
    ("chained method on variable", "{{with $x := .}}{{with .SI}}{{$.GetU.TrueFalse $.True}}{{end}}{{end}}",
     "true", T, True),
    (".BinaryFunc", "{{call .BinaryFunc `1` `2`}}", "[1=2]", T, True),
    (".VariadicFunc0", "{{call .VariadicFunc}}", "<>", T, True),
    (".VariadicFunc2", "{{call .VariadicFunc `he` `llo`}}", "<he+llo>", T, True),
    ("call nil", "{{call nil}}", "", T, False),
    ("pipeline", "-{{.Method0 | .Method2 .U16}}-", "-Method2: 16 M0-", T, True),
    ("pipeline func", "-{{call .VariadicFunc `llo` | call .VariadicFunc `he` }}-", "-<he+<llo>>-", T, True),
    ("parens in pipeline", "{{printf `%d %d %d` (1) (2 | add 3) (add 4 (add 5 6))}}", "1 5 15", T, True),
    ("parens: $ in paren", "{{($).X}}", "x", T, True),
    ("parens: $.GetU in paren", "{{($.GetU).V}}", "v", T, True),
    ("parens: $ in paren in pipe", "{{($ | echo).X}}", "x", T, True),
    ("parens: spaces and args", '{{(makemap "up" "down" "left" "right").left}}', "right", T, True),
    ("if true", "{{if true}}TRUE{{end}}", "TRUE", T, True),
    ("if false", "{{if false}}TRUE{{else}}FALSE{{end}}", "FALSE", T, True),
    ("if nil", "{{if nil}}TRUE{{end}}", "", T, False),
    ("if 1", "{{if 1}}NON-ZERO{{else}}ZERO{{end}}", "NON-ZERO", T, True),
    ("if 0", "{{if 0}}NON-ZERO{{else}}ZERO{{end}}", "ZERO", T, True),
    ("if 1.5", "{{if 1.5}}NON-ZERO{{else}}ZERO{{end}}", "NON-ZERO", T, True),
    ("if 0.0", "{{if .FloatZero}}NON-ZERO{{else}}ZERO{{end}}", "ZERO", T, True),
    ("if 1.5i", "{{if 1.5i}}NON-ZERO{{else}}ZERO{{end}}", "NON-ZERO", T, True),
    ("if 0.0i", "{{if .ComplexZero}}NON-ZERO{{else}}ZERO{{end}}", "ZERO", T, True),
    ("if emptystring", "{{if ``}}NON-EMPTY{{else}}EMPTY{{end}}", "EMPTY", T, True),
    ("if string", "{{if `notempty`}}NON-EMPTY{{else}}EMPTY{{end}}", "NON-EMPTY", T, True),
    ("if emptyslice", "{{if .SIEmpty}}NON-EMPTY{{else}}EMPTY{{end}}", "EMPTY", T, True),
    ("if slice", "{{if .SI}}NON-EMPTY{{else}}EMPTY{{end}}", "NON-EMPTY", T, True),
    ("if emptymap", "{{if .MSIEmpty}}NON-EMPTY{{else}}EMPTY{{end}}", "EMPTY", T, True),
    ("if map", "{{if .MSI}}NON-EMPTY{{else}}EMPTY{{end}}", "NON-EMPTY", T, True),
    ("if map unset", "{{if .MXI.none}}NON-ZERO{{else}}ZERO{{end}}", "ZERO", T, True),
    ("if map not unset", "{{if not .MXI.none}}ZERO{{else}}NON-ZERO{{end}}", "ZERO", T, True),
    ("if $x with $y int", "{{if $x := true}}{{with $y := .I}}{{$x}},{{$y}}{{end}}{{end}}", "true,17", T, True),
    ("if $x with $x int", "{{if $x := true}}{{with $x := .I}}{{$x}},{{end}}{{$x}}{{end}}", "17,true", T, True),
    ("if else if", "{{if false}}FALSE{{else if true}}TRUE{{end}}", "TRUE", T, True),
    ("if else chain", "{{if eq 1 3}}1{{else if eq 2 3}}2{{else if eq 3 3}}3{{end}}", "3", T, True),
    ("print", '{{print "hello, print"}}', "hello, print", T, True),
    ("print 123", "{{print 1 2 3}}", "1 2 3", T, True),
    ("print nil", "{{print nil}}", "<nil>", T, True),
    ("println", "{{println 1 2 3}}", "1 2 3\n", T, True),
    ("printf int", '{{printf "%04x" 127}}', "007f", T, True),
    ("printf float", '{{printf "%g" 3.5}}', "3.5", T, True),
    ("printf complex", '{{printf "%g" 1+7i}}', "(1+7i)", T, True),
    ("printf string", '{{printf "%s" "hello"}}', "hello", T, True),
    ("printf function", '{{printf "%#q" zeroArgs}}', "`zeroArgs`", T, True),
    ("printf field", '{{printf "%s" .U.V}}', "v", T, True),
    ("printf method", '{{printf "%s" .Method0}}', "M0", T, True),
    ("printf dot", '{{with .I}}{{printf "%d" .}}{{end}}', "17", T, True),
    ("printf var", '{{with $x := .I}}{{printf "%d" $x}}{{end}}', "17", T, True),
    ("printf lots", '{{printf "%d %s %g %s" 127 "hello" 7-3i .Method0}}', "127 hello (7-3i) M0", T, True),
    ("html", '{{html "<script>alert(\\"XSS\\");</script>"}}',
     "&lt;script&gt;alert(&#34;XSS&#34;);&lt;/script&gt;", None, True),
    ("html pipeline", '{{printf "<script>alert(\\"XSS\\");</script>" | html}}',
     "&lt;script&gt;alert(&#34;XSS&#34;);&lt;/script&gt;", None, True),
    ("html", "{{html .PS}}", "a string", T, True),
    ("js", "{{js .}}", "It\\'d be nice.", "It'd be nice.", True),
    ("urlquery", '{{"http://www.example.org/"|urlquery}}', "http%3A%2F%2Fwww.example.org%2F", None, True),
    ("not", "{{not true}} {{not false}}", "false true", None, True),
    ("and", "{{and false 0}} {{and 1 0}} {{and 0 true}} {{and 1 1}}", "false 0 0 1", None, True),
    ("or", "{{or 0 0}} {{or 1 0}} {{or 0 true}} {{or 1 1}}", "0 1 true 1", None, True),
    ("or short-circuit", "{{or 0 1 (index nil 0)}}", "1", None, True),
    ("and short-circuit", "{{and 1 0 (index nil 0)}}", "0", None, True),
    ("boolean if", "{{if and true 1 `hi`}}TRUE{{else}}FALSE{{end}}", "TRUE", T, True),
    ("boolean if not", "{{if and true 1 `hi` | not}}TRUE{{else}}FALSE{{end}}", "FALSE", None, True),
    ("slice[0]", "{{index .SI 0}}", "3", T, True),
    ("slice[1]", "{{index .SI 1}}", "4", T, True),
    ("slice[HUGE]", "{{index .SI 10}}", "", T, False),
    ("slice[WRONG]", "{{index .SI `hello`}}", "", T, False),
    ("slice[nil]", "{{index .SI nil}}", "", T, False),
    ("map[one]", "{{index .MSI `one`}}", "1", T, True),
    ("map[two]", "{{index .MSI `two`}}", "2", T, True),
    ("map[NO]", "{{index .MSI `XXX`}}", "0", T, True),
    ("map[nil]", "{{index .MSI nil}}", "", T, False),
    ("map[``]", "{{index .MSI ``}}", "0", T, True),
    ("double index", "{{index .SMSI 1 `eleven`}}", "11", T, True),
    ("nil[1]", "{{index nil 1}}", "", T, False),
    ("slice[:]", "{{slice .SI}}", "[3 4 5]", T, True),
    ("slice[1:]", "{{slice .SI 1}}", "[4 5]", T, True),
    ("slice[1:2]", "{{slice .SI 1 2}}", "[4]", T, True),
    ("slice[-1:]", "{{slice .SI -1}}", "", T, False),
    ("slice[1:-2]", "{{slice .SI 1 -2}}", "", T, False),
    ("out of range", "{{slice .SI 4 5}}", "", T, False),
    ("string[:]", "{{slice .X}}", "x", T, True),
    ("string[1:]", "{{slice .X 1}}", "", T, True),
    ("string[0:1]", "{{slice .X 0 1}}", "x", T, True),
    ("string[:][:]", "{{slice .X 0 1 2}}", "", T, False),
    ("slice", "{{len .SI}}", "3", T, True),
    ("map", "{{len .MSI }}", "3", T, True),
    ("len of int", "{{len 3}}", "", T, False),
    ("len of nothing", "{{len .Empty0}}", "", T, False),
    ("with true", "{{with true}}{{.}}{{end}}", "true", T, True),
    ("with false", "{{with false}}{{.}}{{else}}FALSE{{end}}", "FALSE", T, True),
    ("with 1", "{{with 1}}{{.}}{{else}}ZERO{{end}}", "1", T, True),
    ("with 0", "{{with 0}}{{.}}{{else}}ZERO{{end}}", "ZERO", T, True),
    ("with 1.5", "{{with 1.5}}{{.}}{{else}}ZERO{{end}}", "1.5", T, True),
    ("with 0.0", "{{with .FloatZero}}{{.}}{{else}}ZERO{{end}}", "ZERO", T, True),
    ("with 1.5i", "{{with 1.5i}}{{.}}{{else}}ZERO{{end}}", "(0+1.5i)", T, True),
    ("with emptystring", "{{with ``}}{{.}}{{else}}EMPTY{{end}}", "EMPTY", T, True),
    ("with string", "{{with `notempty`}}{{.}}{{else}}EMPTY{{end}}", "notempty", T, True),
    ("with emptyslice", "{{with .SIEmpty}}{{.}}{{else}}EMPTY{{end}}", "EMPTY", T, True),
    ("with slice", "{{with .SI}}{{.}}{{else}}EMPTY{{end}}", "[3 4 5]", T, True),
    ("with emptymap", "{{with .MSIEmpty}}{{.}}{{else}}EMPTY{{end}}", "EMPTY", T, True),
    ("with map", "{{with .MSIone}}{{.}}{{else}}EMPTY{{end}}", "map[one:1]", T, True),
    ("with empty interface, struct field", "{{with .Empty4}}{{.V}}{{end}}", "UinEmpty", T, True),
    ("with $x int", "{{with $x := .I}}{{$x}}{{end}}", "17", T, True),
    ("with $x struct.U.V", "{{with $x := $}}{{$x.U.V}}{{end}}", "v", T, True),
    ("with variable and action", "{{with $x := $}}{{$y := $.U.V}}{{$y}}{{end}}", "v", T, True),
    ("range []int", "{{range .SI}}-{{.}}-{{end}}", "-3--4--5-", T, True),
    ("range empty no else", "{{range .SIEmpty}}-{{.}}-{{end}}", "", T, True),
    ("range []int else", "{{range .SI}}-{{.}}-{{else}}EMPTY{{end}}", "-3--4--5-", T, True),
    ("range empty else", "{{range .SIEmpty}}-{{.}}-{{else}}EMPTY{{end}}", "EMPTY", T, True),
    ("range []int break else", "{{range .SI}}-{{.}}-{{break}}NOTREACHED{{else}}EMPTY{{end}}", "-3-", T, True),
    ("range []int continue else",
     "{{range .SI}}-{{.}}-{{continue}}NOTREACHED{{else}}EMPTY{{end}}", "-3--4--5-", T, True),
    ("range []bool", "{{range .SB}}-{{.}}-{{end}}", "-true--false-", T, True),
    ("range []int method", "{{range .SI | .MAdd .I}}-{{.}}-{{end}}", "-20--21--22-", T, True),
    ("range map", "{{range .MSI}}-{{.}}-{{end}}", "-1--3--2-", T, True),
    ("range empty map no else", "{{range .MSIEmpty}}-{{.}}-{{end}}", "", T, True),
    ("range map else", "{{range .MSI}}-{{.}}-{{else}}EMPTY{{end}}", "-1--3--2-", T, True),
    ("range empty map else", "{{range .MSIEmpty}}-{{.}}-{{else}}EMPTY{{end}}", "EMPTY", T, True),
    ("range empty interface", "{{range .Empty3}}-{{.}}-{{else}}EMPTY{{end}}", "-7--8-", T, True),
    ("range empty nil", "{{range .Empty0}}-{{.}}-{{end}}", "", T, True),
    ("range $x SI", "{{range $x := .SI}}<{{$x}}>{{end}}", "<3><4><5>", T, True),
    ("range $x $y SI", "{{range $x, $y := .SI}}<{{$x}}={{$y}}>{{end}}", "<0=3><1=4><2=5>", T, True),
    ("range $x MSIone", "{{range $x := .MSIone}}<{{$x}}>{{end}}", "<1>", T, True),
    ("range $x $y MSIone", "{{range $x, $y := .MSIone}}<{{$x}}={{$y}}>{{end}}", "<one=1>", T, True),
    ("range $x PSI", "{{range $x := .PSI}}<{{$x}}>{{end}}", "<21><22><23>", T, True),
    ("declare in range", "{{range $x := .PSI}}<{{$foo:=$x}}{{$x}}>{{end}}", "<21><22><23>", T, True),
    ("range count", "{{range $i, $x := count 5}}[{{$i}}]{{$x}}{{end}}", "[0]a[1]b[2]c[3]d[4]e", T, True),
    ("range nil count", "{{range $i, $x := count 0}}{{else}}empty{{end}}", "empty", T, True),
    ("or as if true", '{{or .SI "slice is empty"}}', "[3 4 5]", T, True),
    ("or as if false", '{{or .SIEmpty "slice is empty"}}', "slice is empty", T, True),
    ("bug0", "{{range .MSIone}}{{if $.Method1 .}}X{{end}}{{end}}", "X", T, True),
    ("bug3", "{{with $}}{{.Method0}}{{end}}", "M0", T, True),
    ("bug4", "{{if .Empty0}}non-nil{{else}}nil{{end}}", "nil", T, True),
    ("bug7a", "{{3 2}}", "", T, False),
    ("bug7b", "{{$x := 1}}{{$x 2}}", "", T, False),
    ("bug7c", "{{$x := 1}}{{3 | $x}}", "", T, False),
    ("bug9", "{{.cause}}", "neglect", {"cause": "neglect"}, True),
    ("bug10", "{{mapOfThree.three}}-{{(mapOfThree).three}}", "3-3", 0, True),
    ("bug12xe", "{{printf `%T` 0xef}}", "int", T, True),
    ("bug12XE", "{{printf `%T` 0XEE}}", "int", T, True),
    ("bug13", "{{print (.Copy).I}}", "17", T, True),
    ("bug14a", "{{(nil).True}}", "", T, False),
    ("bug14b", "{{$x := nil}}{{$x.anything}}", "", T, False),
    ("bug14c", '{{$x := (1.0)}}{{$y := ("hello")}}{{$x.anything}}{{$y.true}}', "", T, False),
    ("bug16g", '{{"aaa" |twoArgs "bbb"}}', "twoArgs=bbbaaa", T, True),
    ("bug16i", '{{"aaa"|oneArg}}', "oneArg=aaa", T, True),
    ("bug16j", '{{1+2i|printf "%v"}}', "(1+2i)", T, True),
    ("bug16k", '{{"aaa"|printf }}', "aaa", T, True),
    # comparisons (Go's cmpTests)
    ("eq true true", "{{eq true true}}", "true", None, True),
    ("eq 1.5 1.5", "{{eq 1.5 1.5}}", "true", None, True),
    ("eq multi", "{{eq 3 4 5 6 3}}", "true", None, True),
    ("eq multi false", "{{eq 3 4 5 6 7}}", "false", None, True),
    ('eq "xy" `xy`', '{{eq "xy" `xy`}}', "true", None, True),
    ("ne 1 2", "{{ne 1 2}}", "true", None, True),
    ("lt 1.5 2.5", "{{lt 1.5 2.5}}", "true", None, True),
    ("lt xy xz", '{{lt "xy" "xz"}}', "true", None, True),
    ("le 2 2", "{{le 2 2}}", "true", None, True),
    ("gt 2 1", "{{gt 2 1}}", "true", None, True),
    ("ge 1 2", "{{ge 1 2}}", "false", None, True),
    ("eq int string", '{{eq 1 "a"}}', "", None, False),
    ("lt bool", "{{lt true true}}", "", None, False),
    ("eq slice", "{{eq .SI .SI}}", "", T, False),
    ("eq nil-valued missing key", '{{eq .MSI.none "x"}}', "false", T, True),
    # trim markers and comments (Go's parse tests, executed)
    ("trim left", "x \r\n\t{{- 3}}", "x3", None, True),
    ("trim right", "{{3 -}}\n\n\ty", "3y", None, True),
    ("trim both", "x \n{{- 3 -}}\n y", "x3y", None, True),
    ("comment", "a{{/* hi */}}b", "ab", None, True),
    ("comment trim", "a  {{- /* hi */ -}}  b", "ab", None, True),
    ("define/template", '{{define "T1"}}ONE{{end}}{{template "T1"}}-{{template "T1" .}}', "ONE-ONE", None, True),
    ("block", '{{block "inner" .}}[{{.}}]{{end}}', "[7]", 7, True),
    ("template with dot", '{{define "x"}}<{{.}}>{{end}}{{range .SI}}{{template "x" .}}{{end}}', "<3><4><5>", T, True),
    ("char constant", "{{'a'}} {{printf `%c` 'b'}}", "97 b", None, True),
    ("negative", "{{-3}} {{+4}} {{1e3}}", "-3 4 1000", None, True),
    ("raw string", "{{`a\\nb`}}", "a\\nb", None, True),
    ("escapes", '{{"a\\tb\\u00e9"}}', "a\tb\u00e9", None, True),
]


@pytest.mark.parametrize("name,text,want,data,ok", GO_CASES, ids=[c[0] for c in GO_CASES])
def test_go_exec_cases(name, text, want, data, ok):
    tmpl = gt.Template(text, name, FUNCS)
    if ok:
        assert tmpl.execute(data) == want
    else:
        with pytest.raises(gt.TemplateError):
            tmpl.execute(data)


# Go's parse tests that must fail, with Go's messages
PARSE_ERRORS = [
    ("{{.X", "template: :1: unclosed action"),
    ("{{if}}", "template: :1: missing value for if"),
    ("{{end}}", "template: :1: unexpected {{end}}"),
    ("{{else}}", "template: :1: unexpected {{else}}"),
    ("{{nosuch 1}}", 'template: :1: function "nosuch" not defined'),
    ("{{range .X}}", "template: :1: unexpected EOF"),
    ("{{break}}", "template: :1: {{break}} outside {{range}}"),
    ("{{$x}}", 'template: :1: undefined variable "$x"'),
    ("{{.X}", "template: :1: bad character U+007D '}'"),
    ("a\n{{| .X}}", 'template: :2: unexpected "|" in command'),
    ("{{.X | | upper}}", 'template: :1: unexpected "|" in command'),
    ("{{if 1}}{{else}}{{else}}{{end}}", "template: :1: expected end; found {{else}}"),
    ('{{define "a"}}', "template: :1: unexpected EOF"),
    ("{{(3}}", "template: :1: unclosed left paren"),
    ("{{3)}}", "template: :1: unexpected right paren"),
    ('{{"x}}', "template: :1: unterminated quoted string"),
    ("{{/* x }}", "template: :1: unclosed comment"),
    ("{{.X | 3}}", "template: :1: non executable command in pipeline stage 2"),
    ("{{}}", "template: :1: missing value for command"),
]


@pytest.mark.parametrize("text,msg", PARSE_ERRORS)
def test_parse_errors_like_go(text, msg):
    with pytest.raises(gt.TemplateError) as e:
        gt.parse(text)
    assert e.value.message == "template parsing error: " + msg
    assert e.value.exit_code == 64


def test_exec_error_names_line_column_and_node():
    with pytest.raises(gt.TemplateError) as e:
        gt.parse("{{.Nope}}").execute(gt.Struct({"ID": "x"}, type_name="*formatter.ContainerContext"))
    assert e.value.message == ('template: :1:2: executing "" at <.Nope>: '
                               "can't evaluate field Nope in type *formatter.ContainerContext")
    with pytest.raises(gt.TemplateError) as e:
        gt.parse("x\n {{index .A 5}}").execute({"A": [1]})
    assert e.value.message.startswith('template: :2:3: executing "" at <index .A 5>: error calling index: '
                                      "index out of range: 5")


def test_docker_shaped_data():
    rec = {"State": {"Pid": 42, "Running": True, "Health": None},
           "HostConfig": {"Binds": None, "Memory": 0, "Tmpfs": None},
           "Config": {"Labels": {"a": "b"}, "Env": ["A=1", "B=2"]}}
    r = gt.render
    assert r("{{.State.Pid}} {{.State.Running}}", rec) == "42 true"
    assert r("{{.HostConfig.Binds}} {{.HostConfig.Tmpfs}} {{.State.Health}} {{.Nope}}", rec) == \
        "[] map[] <nil> <no value>"
    assert r('{{index .Config.Labels "a"}}|{{index .Config.Labels "zz"}}|{{.Config.Labels.zz}}', rec) == \
        "b||<no value>"
    assert r("{{json .Config.Labels}} {{json .HostConfig.Binds}}", rec) == '{"a":"b"} null'
    assert r('{{range $i, $e := .Config.Env}}{{if $i}},{{end}}{{$e}}{{end}}', rec) == "A=1,B=2"
    assert r('{{range $k, $v := .Config.Labels}}{{$k}}={{$v}}{{end}}', rec) == "a=b"
    assert r("{{len .Config.Env}} {{join .Config.Env \";\"}}", rec) == "2 A=1;B=2"
    assert r("{{with .State.Health}}{{.Status}}{{else}}none{{end}}", rec) == "none"
    assert r("{{.HostConfig.Memory}} {{printf \"%.1f\" 1.25}}", rec) == "0 1.2"


def test_floats_print_like_go():
    assert gt.go_str(1073741824.0) == "1.073741824e+09"
    assert gt.go_str(15.1) == "15.1"
    assert gt.go_str(0.00001) == "1e-05"
    assert gt.go_str(100.0) == "100"
    assert gt.go_str(123456.0) == "123456"
    assert gt.go_str(1234567.0) == "1.234567e+06"


def test_table_format_aligns_like_tabwriter():
    rows = [gt.Struct({"ID": "abc", "Names": "web"}), gt.Struct({"ID": "abcdef012345", "Names": "db"})]
    out = gt.docker_format("table {{.ID}}\\t{{.Names}}", rows, {"ID": "CONTAINER ID", "Names": "NAMES"})
    assert out == ("CONTAINER ID   NAMES\n"
                   "abc            web\n"
                   "abcdef012345   db\n")
    assert gt.docker_format("{{.ID}}-{{upper .Names}}", rows) == "abc-WEB\nabcdef012345-DB\n"
    assert gt.docker_format("table", [], {"ID": "X"}) == "\n"
    assert gt.docker_format("json", [{"a": 1}]) == '{"a":1}\n'


# Docker's own functions, checked against the docker CLI: `docker version --format` executes the
# template over its client data without a daemon (the daemon error goes to stderr).
DOCKER_TEMPLATES = [
    '{{upper "abc"}}|{{lower "ABC"}}|{{title "hello wide world"}}',
    '{{join (split "a,b,c" ",") "-"}}|{{split "a b" " "}}|{{len (split "" ",")}}',
    '{{truncate "abcdef" 3}}|{{truncate "ab" 3}}|{{pad "x" 1 2}}|{{pad "" 1 2}}',
    '{{json "x"}}|{{json 3}}|{{json (split "a,b" ",")}}|{{json "<&>"}}',
    '{{printf "%v %d %s %q %5.2f|%-4s|%x" true 3 "s" "q" 3.14159 "ab" 255}}',
    '{{ 3 | printf "%d-%s" "x" }}|{{printf "%d"}}|{{printf "%d" 1 2}}',
    '{{println "a" 1}}x{{print "a" 1 2 "b"}}',
    '{{"<a href=\'x\'>"|html}} {{js "<\'>\\\\"}} {{urlquery "a b&c/é"}}',
    '{{$x := 1}}{{$x = 2}}{{$x}}{{range $i, $e := split "a,b" ","}}{{$i}}={{$e}};{{else}}none{{end}}',
    '{{if eq .Client.Os "linux"}}L{{else if true}}X{{end}}{{with .Client.Os}}{{.}}{{end}}',
    '{{len "abc"}} {{slice "abcdef" 1 3}} {{index "abc" 1}} {{not 0}} {{and 1 2}} {{or 0 ""}}',
    '{{- /* c */ -}}  {{"t" -}}  x',
    '{{.Client.Os | }}{{.Client.Os | printf "%s-%s" "a"}}',
    '{{.Client.Nope}}',
    'table {{.Client.Os}}\\t{{.Client.Arch}}',
]


@pytest.mark.skipif(not shutil.which("docker"), reason="docker CLI not installed")
@pytest.mark.parametrize("text", DOCKER_TEMPLATES)
def test_docker_functions_match_docker_cli(text):
    env = dict(os.environ, DOCKER_HOST="unix:///nonexistent.sock", DOCKER_CONFIG="/nonexistent")
    p = subprocess.run(["docker", "version", "--format", text], capture_output=True, text=True, env=env)
    want = p.stdout
    data = gt.Struct({"Client": gt.Struct({"Os": "linux", "Arch": "amd64"})})
    try:
        got = gt.parse(text).execute(data) + "\n"
    except gt.TemplateError:
        got = "\n"  # docker prints an empty line when execution fails
    assert got == want


def test_parse_errors_match_docker_cli():
    if not shutil.which("docker"):
        pytest.skip("docker CLI not installed")
    env = dict(os.environ, DOCKER_HOST="unix:///nonexistent.sock", DOCKER_CONFIG="/nonexistent")
    for text, _ in PARSE_ERRORS:
        p = subprocess.run(["docker", "version", "--format", text], capture_output=True, text=True, env=env)
        with pytest.raises(gt.TemplateError) as e:
            gt.parse(text, name="version")
        assert p.stderr.strip() == e.value.message, text
        assert p.returncode == e.value.exit_code == 64
