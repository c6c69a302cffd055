"""Go's time.ParseDuration cases (time_test.go's parseDurationTests and parseDurationErrorTests,
as data), for the one parser every Docker duration goes through."""

import pytest

from minidock.util.goduration import parse_ns

S, MS, US, NS, M, H = 10**9, 10**6, 10**3, 1, 60 * 10**9, 3600 * 10**9

GOOD = [
    ("0", 0), ("5s", 5 * S), ("30s", 30 * S), ("1478s", 1478 * S),
    ("-5s", -5 * S), ("+5s", 5 * S), ("-0", 0), ("+0", 0),
    ("5.0s", 5 * S), ("5.6s", 5 * S + 600 * MS), ("5.s", 5 * S), (".5s", 500 * MS),
    ("1.0s", 1 * S), ("1.00s", 1 * S), ("1.004s", 1 * S + 4 * MS), ("1.0040s", 1 * S + 4 * MS),
    ("100.00100s", 100 * S + 1 * MS),
    ("10ns", 10 * NS), ("11us", 11 * US), ("12µs", 12 * US), ("12μs", 12 * US),
    ("13ms", 13 * MS), ("14s", 14 * S), ("15m", 15 * M), ("16h", 16 * H),
    ("3h30m", 3 * H + 30 * M), ("10.5s4m", 4 * M + 10 * S + 500 * MS),
    ("-2m3.4s", -(2 * M + 3 * S + 400 * MS)), ("1h2m3s4ms5us6ns", H + 2 * M + 3 * S + 4 * MS + 5 * US + 6 * NS),
    ("39h9m14.425s", 39 * H + 9 * M + 14 * S + 425 * MS),
    ("52763797000ns", 52763797000 * NS), ("0.3333333333333333333h", 20 * M),
    ("9007199254740993ns", (1 << 53) + 1), ("9223372036854775807ns", (1 << 63) - 1),
    ("-9223372036854775808ns", -(1 << 63)),
]

BAD = [
    ("", 'time: invalid duration ""'), ("3", 'time: missing unit in duration "3"'),
    ("-", 'time: invalid duration "-"'), ("s", 'time: invalid duration "s"'),
    (".", 'time: invalid duration "."'), ("-.", 'time: invalid duration "-."'),
    (".s", 'time: invalid duration ".s"'), ("+.s", 'time: invalid duration "+.s"'),
    ("1d", 'time: unknown unit "d" in duration "1d"'),
    ("\x85\x85", 'time: invalid duration "\x85\x85"'),
    ("9223372036854775810ns", 'time: invalid duration "9223372036854775810ns"'),
    ("9223372036854775808ns", 'time: invalid duration "9223372036854775808ns"'),
]


@pytest.mark.parametrize("text,want", GOOD)
def test_go_accepts(text, want):
    assert parse_ns(text) == want


@pytest.mark.parametrize("text,msg", BAD)
def test_go_refuses_with_its_message(text, msg):
    with pytest.raises(ValueError) as e:
        parse_ns(text)
    assert str(e.value) == msg


def test_every_caller_goes_through_it():
    from minidock.build import dockerfile
    from minidock.engine import events, ops
    from minidock.errors import InvalidArgument

    assert dockerfile.parse_duration("1m30s") == 90 and events.parse_duration("1m30s") == 90 * S
    assert ops.parse_duration("1m30s") == 90 and ops.parse_duration("3") is None
    with pytest.raises(InvalidArgument, match='unknown unit "d"'):
        events.parse_duration("1d")
    with pytest.raises(dockerfile._Err, match="missing unit"):
        dockerfile.parse_duration("5")
