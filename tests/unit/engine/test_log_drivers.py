"""Logging drivers without root: rotation by size keeps every line whole and in order, compressed
rotated files, the file count, local's defaults, none, option validation, --since/--until."""

import json
import os

import pytest

from minidock.engine import logs
from minidock.errors import InvalidArgument, MinidockError


def _write(path, config, n, width=40):
    w = logs.LogWriter(str(path), config)
    for i in range(n):
        w.write("stdout" if i % 3 else "stderr", f"line {i:05d} {'x' * width}\n".encode())
    w.close()


@pytest.mark.parametrize("compress", ["true", "false"])
def test_rotation_never_loses_or_splits_a_line(tmp_path, compress):
    path = tmp_path / "ctr.log"
    cfg = logs.log_config("json-file", ["max-size=2k", "max-file=50", f"compress={compress}"])
    _write(path, cfg, 600)
    texts = [t for _, t in logs.read(str(path))]
    assert texts == [f"line {i:05d} {'x' * 40}\n" for i in range(600)]
    rotated = logs.files(str(path))[:-1]
    assert len(rotated) > 5 and all(p.endswith(".gz") == (compress == "true") for p in rotated)
    for p in logs.files(str(path)):
        if not p.endswith(".gz"):
            assert os.path.getsize(p) < 2048 + 200  # full at max-size, plus at most the last whole line
            for line in open(p):
                json.loads(line)  # whole JSON lines only


def test_max_file_keeps_that_many_files_newest_lines(tmp_path):
    path = tmp_path / "ctr.log"
    _write(path, logs.log_config("json-file", ["max-size=1k", "max-file=3"]), 300)
    assert len(logs.files(str(path))) == 3
    texts = [t for _, t in logs.read(str(path))]
    assert texts[-1].startswith("line 00299") and not texts[0].startswith("line 00000")
    nums = [int(t.split()[1]) for t in texts]
    assert nums == list(range(nums[0], 300))  # contiguous: nothing dropped in between


def test_local_defaults_and_none(tmp_path):
    cfg = logs.log_config("local", [])
    w = logs.LogWriter(str(tmp_path / "l.log"), cfg)
    assert (w.max_size, w.max_file, w.compress) == (20 << 20, 5, True)
    w.close()
    w = logs.LogWriter(str(tmp_path / "n.log"), logs.log_config("none", []))
    w.write("stdout", b"hi\n")
    w.close()
    assert not (tmp_path / "n.log").exists()


def test_log_config_validation():
    with pytest.raises(MinidockError, match="no log driver named 'syslog'"):
        logs.log_config("syslog", [])
    with pytest.raises(InvalidArgument, match="unknown log opt 'bogus'"):
        logs.log_config("json-file", ["bogus=1"])
    with pytest.raises(InvalidArgument, match="max-file cannot be less than 1"):
        logs.log_config("json-file", ["max-size=1m", "max-file=0"])
    with pytest.raises(InvalidArgument):
        logs.log_config("json-file", ["max-size=lots"])
    assert logs.log_config(None, []) == {"Type": "json-file", "Config": {}}


def test_since_until_select_by_line_time(tmp_path):
    path = tmp_path / "ctr.log"
    with open(path, "w") as f:
        for i, t in enumerate(["2024-01-01T00:00:00.5Z", "2024-01-01T01:00:00Z", "2024-01-01T02:00:00.000000001Z"]):
            f.write(json.dumps({"log": f"{i}\n", "stream": "stdout", "time": t}) + "\n")
    from minidock.engine.ops import parse_time

    got = lambda **kw: [t for _, t in logs.read(str(path), **kw)]  # noqa: E731
    assert got(since=parse_time("2024-01-01T00:30:00Z")) == ["1\n", "2\n"]
    assert got(until=parse_time("2024-01-01T01:00:00Z")) == ["0\n", "1\n"]
    assert got(since=parse_time("1704067200"), until=parse_time("1704067200.6")) == ["0\n"]
    assert got(since=parse_time("2024-01-01T00:30:00Z"), tail=1) == ["2\n"]
