"""The v2 device filter compiler, without root: v1's rule semantics and the program's shape.
That the kernel agrees with `allows` is proven in tests/integration/test_cgroups.py."""

from __future__ import annotations

import struct

from minidock.runtime.cgroups import devicefilter as df
from minidock.runtime.spec import DEFAULT_DEVICE_RULES

DENY_ALL = {"allow": False, "access": "rwm"}


def _insns(prog: bytes) -> list[tuple]:
    return [struct.unpack("<BBhi", prog[i:i + 8]) for i in range(0, len(prog), 8)]


def test_a_new_cgroup_allows_everything_and_a_wildcard_rule_resets():
    assert df.allows([], "b", 8, 0, "r")
    assert not df.allows([DENY_ALL], "c", 1, 3, "r")
    rules = [DENY_ALL, {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
             {"allow": True, "access": "rwm"}]  # allow-all again: earlier rules no longer matter
    assert df.normalize(rules) == (True, [])


def test_dockers_default_rules():
    rules = DEFAULT_DEVICE_RULES
    assert df.allows(rules, "c", 1, 3, "rw")  # /dev/null
    assert df.allows(rules, "c", 136, 7, "rw")  # a pty
    assert df.allows(rules, "b", 8, 0, "m")  # mknod of anything is allowed ...
    assert not df.allows(rules, "b", 8, 0, "r")  # ... opening the host's disk is not
    assert not df.allows(rules, "c", 1, 11, "w")  # /dev/kmsg


def test_access_subsets_and_later_rules_win():
    rules = [DENY_ALL, {"allow": True, "type": "c", "major": 1, "minor": 5, "access": "r"}]
    assert df.allows(rules, "c", 1, 5, "r")
    assert not df.allows(rules, "c", 1, 5, "rw")  # asks for more than the rule gives
    rules = [{"allow": True, "access": "rwm"}, {"allow": False, "type": "c", "major": 1, "minor": -1, "access": "w"}]
    assert df.allows(rules, "c", 1, 5, "r")
    assert not df.allows(rules, "c", 1, 5, "rw")  # any denied bit denies
    assert df.allows(rules, "b", 1, 5, "w")  # other type
    rules = [DENY_ALL, {"allow": True, "type": "a", "major": 1, "minor": 3, "access": "rwm"}]
    assert df.allows(rules, "b", 1, 3, "r") and df.allows(rules, "c", 1, 3, "r")


def test_program_shape():
    prog = _insns(df.program([DENY_ALL, {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"}]))
    assert prog[-2] == (df.MOV32_K, 0, 0, 0) and prog[-1][0] == df.EXIT  # default: deny
    assert len(prog) == 6 + 5 + 2  # prologue, (type, major, minor, allow, exit), default
    for i, (code, _regs, off, _imm) in enumerate(prog):
        if code in (df.JNE_K, df.JNE_X, df.JEQ_K):
            target = i + 1 + off
            assert prog[target - 1][0] == df.EXIT and target < len(prog)  # lands on the next rule
    assert _insns(df.program([]))[-2] == (df.MOV32_K, 0, 0, 1)


def test_describe_for_explain():
    assert df.describe([DENY_ALL, {"allow": True, "type": "c", "major": 1, "minor": -1, "access": "rw"}]) == \
        "deny all; allow c 1:* rw"
