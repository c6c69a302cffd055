"""minidock.util.jsonfast as the runtime uses it (compact dumps, indent, bytes) gives the
json package's bytes and values, and its errors."""

from __future__ import annotations

import json
import pathlib

import pytest

from minidock.util import jsonfast

REPO = pathlib.Path(__file__).resolve().parents[2]
SAMPLES = [
    {}, [], "", 0, -1.5, 1e100, True, None, [[]], [{}], {"a": {}},
    {"ociVersion": "1.2.0", "id": "c1", "status": "created", "pid": 42, "annotations": {}},
    {"a": [1, 2.5, None, True, False, {"b": "é \u2028 \"q\" \\ \n \x00 \U0001f600"}], "c": [], "d": {"e": [[1], []]}},
    json.loads((REPO / "minidock" / "runtime" / "seccomp_default.json").read_text()),
]


@pytest.mark.parametrize("obj", SAMPLES)
def test_dumps_is_json_dumps(obj):
    assert jsonfast.dumps(obj) == json.dumps(obj)
    for indent in (0, 2, 4):
        assert jsonfast.dumps(obj, indent=indent) == json.dumps(obj, indent=indent)
    assert jsonfast.dumps(obj, sort_keys=True) == json.dumps(obj, sort_keys=True)  # (json itself does that)


@pytest.mark.parametrize("obj", SAMPLES)
def test_loads_is_json_loads(obj):
    for text in (json.dumps(obj), " \n" + json.dumps(obj, indent=2) + "\n\t ", json.dumps(obj).encode()):
        assert jsonfast.loads(text) == json.loads(text)


def test_special_floats_and_non_string_keys_as_json():
    assert jsonfast.dumps([float("inf"), float("-inf")]) == "[Infinity, -Infinity]"
    assert jsonfast.dumps({1: "a", None: 2}, indent=2) == json.dumps({1: "a", None: 2}, indent=2)
    assert jsonfast.loads("[NaN, Infinity]")[1] == float("inf")


@pytest.mark.parametrize("bad", ["", "{", "[1,]", "1 2", "\ufeff{}", "{'a': 1}", "nul"])
def test_invalid_input_raises_json_s_own_error(bad):
    with pytest.raises(json.JSONDecodeError) as ours:
        jsonfast.loads(bad)
    with pytest.raises(json.JSONDecodeError) as theirs:
        json.loads(bad)
    assert str(ours.value) == str(theirs.value)


def test_unserializable_is_a_type_error():
    with pytest.raises(TypeError, match="not JSON serializable"):
        jsonfast.dumps({"a": object()})
    with pytest.raises(TypeError, match="not JSON serializable"):
        jsonfast.dumps({"a": object()}, indent=2)
