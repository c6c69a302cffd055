"""Time/duration parsing as Docker's filters and logs take them, prune filters, detach keys."""

import pytest

from minidock.engine import ops, reattach
from minidock.errors import InvalidArgument

NOW = 1_700_000_000.0


@pytest.mark.parametrize("text,want", [
    ("1700000000", 1_700_000_000.0),
    ("1699999999.5", 1_699_999_999.5),
    ("10m", NOW - 600),
    ("1h30m", NOW - 5400),
    ("1.5h", NOW - 5400),
    ("300ms", NOW - 0.3),
    ("2023-11-14T22:13:20Z", 1_700_000_000.0),
    ("2023-11-14T23:13:20+01:00", 1_700_000_000.0),
    ("2023-11-14", 1_699_920_000.0),
])
def test_parse_time(text, want):
    assert ops.parse_time(text, now=NOW) == pytest.approx(want)


def test_parse_time_refuses_garbage():
    with pytest.raises(InvalidArgument, match="failed to parse value as time or duration"):
        ops.parse_time("yesterday")


def test_prune_filter():
    f = ops.prune_filter(["until=2023-11-14T22:13:20Z", "label=a"])
    assert f(NOW - 1, {"a": "x"}) and not f(NOW + 1, {"a": "x"}) and not f(NOW - 1, {})
    f = ops.prune_filter(["label!=keep=yes"])
    assert f(None, {"keep": "no"}) and not f(None, {"keep": "yes"}) and f(None, {})
    with pytest.raises(InvalidArgument):
        ops.prune_filter(["dangling=true"])


def test_detach_keys():
    assert reattach.parse_detach_keys("ctrl-p,ctrl-q") == b"\x10\x11"
    assert reattach.parse_detach_keys("ctrl-@,a,ctrl-[") == b"\x00a\x1b"
    for bad in ("", "ctrl-", "ctrl-pp", "shift-a"):
        with pytest.raises(InvalidArgument, match="Invalid detach keys"):
            reattach.parse_detach_keys(bad)
