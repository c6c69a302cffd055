"""The fast front (cli/main.py, cli/fastparse.py) parses the hot commands exactly as Click does.

For a corpus of command lines -- written out, and generated from each hot command's own options
(clusters, `=` values, `--`, repeats, unknown options, missing values) -- either the fast parser
hands the line to Click, or it produces exactly the keywords Click's callback passes on to the
same function in cli/hot.py. Lines Click rejects are always handed to Click (its message, its
exit code). The spec it reads is the one generated from the Click definitions today.
"""

from __future__ import annotations

import inspect as pyinspect
import json
import random
import time

import click
import pytest

from minidock.cli import fastparse, fastspec, hot
from minidock.cli.app import cli

HOT = sorted(fastspec.HOT)


def test_spec_is_generated_from_the_click_definitions():
    with open(fastspec._PATH) as f:
        assert f.read() == fastspec.generate(), "run: python -m minidock.cli.fastspec"


def _click(name: str, rest: list[str], monkeypatch):
    """What Click passes to cli/hot.py for `minidock NAME REST...`: the keywords, or None if
    Click rejects the line (a usage error, or --help)."""
    target = fastspec.HOT[name].partition(":")[2]
    real = getattr(hot, target)
    got = {}

    def record(*a, **kw):
        bound = pyinspect.signature(real).bind(*a, **kw).arguments
        for k, v in bound.items():
            if pyinspect.signature(real).parameters[k].kind is pyinspect.Parameter.VAR_KEYWORD:
                got.update(v)
            else:
                got[k] = v
        return 0

    monkeypatch.setattr(hot, target, record)
    cmd = cli.get_command(None, name)
    try:
        cmd.main(args=list(rest), prog_name=name, standalone_mode=False)
    except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort):
        return None
    finally:
        monkeypatch.setattr(hot, target, real)
    return got


def _check(name, rest, monkeypatch, *, expect_fast=None):
    want = _click(name, rest, monkeypatch)
    hit = fastparse.parse([name, *rest])
    if want is None:
        assert hit is None, f"Click rejects {rest!r}, the fast parser accepted it: {hit!r}"
        return
    if hit is None:
        assert not expect_fast, f"the fast parser handed {rest!r} to Click"
        return
    target, params, root = hit
    assert target == fastspec.HOT[name] and root is None
    assert params == want, rest
    assert {k: type(v) for k, v in params.items()} == {k: type(v) for k, v in want.items()}, rest


WRITTEN = [
    ("ps", []), ("ps", ["-a"]), ("ps", ["-aq"]), ("ps", ["-a", "-q", "--no-trunc"]), ("ps", ["-n", "3"]),
    ("ps", ["-n3"]), ("ps", ["-n=3"]), ("ps", ["--last", "-1"]), ("ps", ["--last=x"]), ("ps", ["-s"]),
    ("ps", ["--format", "{{.ID}}"]), ("ps", ["--format={{.Names}}\t{{.Status}}"]), ("ps", ["--format", "json"]),
    ("ps", ["-f", "name=a", "--filter", "status=running", "-fid=1"]), ("ps", ["extra"]), ("ps", ["--nope"]),
    ("ps", ["-az"]), ("ps", ["--all=1"]), ("ps", ["-n"]), ("ps", ["--", "-a"]), ("ps", ["-h"]), ("ps", ["--help"]),
    ("inspect", ["c1"]), ("inspect", ["c1", "c2", "-f", "{{.Id}}"]), ("inspect", ["-s", "--type", "container", "c"]),
    ("inspect", ["--type", "bogus", "c"]), ("inspect", ["--type=image", "c"]), ("inspect", []),
    ("inspect", ["--format", "{{json .State}}", "--", "-c"]), ("inspect", ["--kernel", "c"]),
    ("logs", ["c"]), ("logs", ["-f", "c"]), ("logs", ["-n", "5", "-t", "c"]), ("logs", ["--tail=all", "c"]),
    ("logs", ["--since", "1m", "--until", "2026-01-01T00:00:00Z", "c"]), ("logs", ["c", "d"]), ("logs", []),
    ("logs", ["-ft", "c"]), ("logs", ["-tn2", "c"]), ("logs", ["--details", "c"]),
    ("stop", ["c"]), ("stop", ["-t", "0", "c", "d"]), ("stop", ["--time=5", "-s", "KILL", "c"]),
    ("stop", ["-t", "x", "c"]), ("stop", ["-t0", "c"]), ("stop", []), ("stop", ["c", "-t", "1"]),
    ("start", ["c"]), ("start", ["-ai", "c"]), ("start", ["-a", "c", "d"]),
    ("kill", ["c"]), ("kill", ["-s", "TERM", "c"]), ("kill", ["--signal=9", "c"]), ("kill", ["-sHUP", "c"]),
    ("rm", ["c"]), ("rm", ["-f", "c"]), ("rm", ["-fv", "c", "d"]), ("rm", ["--force", "--volumes", "c"]),
    ("wait", ["c"]), ("wait", ["--condition", "removed", "c"]), ("wait", ["--condition=bogus", "c"]),
    ("run", ["busybox"]), ("run", ["--rm", "--network", "none", "busybox", "true"]),
    ("run", ["-it", "--rm", "busybox", "sh"]),
    ("run", ["-d", "--name", "web", "-p", "8080:80", "busybox", "httpd", "-f"]),
    ("run", ["--rm", "busybox", "ls", "-l", "--", "-x"]), ("run", ["-e", "A=1", "-eB=2", "--env=C=3", "busybox"]),
    ("run", ["-e=A", "busybox"]), ("run", ["-m", "64m", "--cpus", "0.5", "--pids-limit", "10", "busybox"]),
    ("run", ["--pids-limit", "ten", "busybox"]), ("run", ["--oom-score-adj", "-5", "busybox"]),
    ("run", ["--pull", "never", "busybox"]), ("run", ["--pull", "sometimes", "busybox"]),
    ("run", ["-a", "stdout", "-a", "stderr", "busybox"]), ("run", ["-a", "STDOUT", "busybox"]),
    ("run", ["--sig-proxy=false", "busybox"]), ("run", ["--sig-proxy", "no", "busybox"]),
    ("run", ["--sig-proxy=maybe", "busybox"]), ("run", ["--explain", "--rm", "busybox", "true"]),
    ("run", ["--explain=json", "busybox"]), ("run", ["--rm", "busybox", "echo", "--explain"]),
    ("run", ["-h", "myhost", "busybox"]), ("run", ["--help"]), ("run", []), ("run", ["--rm"]),
    ("run", ["-itd", "busybox"]), ("run", ["-itw/tmp", "busybox"]), ("run", ["-dP", "busybox"]),
    ("run", ["--name"]), ("run", ["--rm=true", "busybox"]), ("run", ["--", "busybox", "-x"]),
    ("run", ["-v", "/a:/b", "--mount", "type=tmpfs,dst=/t", "--tmpfs", "/run", "busybox"]),
    ("run", ["--restart", "on-failure:3", "--health-cmd", "true", "--health-retries", "2", "busybox"]),
    ("create", ["busybox"]), ("create", ["--name", "x", "busybox", "sleep", "1"]), ("create", ["-d", "busybox"]),
    ("exec", ["c", "ls"]), ("exec", ["-it", "c", "sh"]), ("exec", ["-e", "A=1", "-u", "0", "-w", "/", "c", "env"]),
    ("exec", ["c"]), ("exec", ["c", "ls", "-l", "--", "-a"]), ("exec", ["--privileged", "-d", "c", "sleep", "1"]),
]


@pytest.mark.parametrize("name,rest", WRITTEN, ids=[" ".join([n, *r]) for n, r in WRITTEN])
def test_written_command_lines(name, rest, monkeypatch):
    _check(name, rest, monkeypatch)


def _random_line(rng: random.Random, name: str) -> list[str]:
    from minidock.cli._fastspec import SPEC

    _target, _inter, long_opts, short_opts, params, arguments = SPEC[name]
    values = ["0", "5", "-1", "x", "a=b", "", "--", "-", "none", "always", "stdout", "true", "KILL", "{{.ID}}"]
    words = ["busybox", "c1", "sh", "-c", "echo hi", "-x", "--name"]
    out: list[str] = []
    for _ in range(rng.randint(0, 6)):
        r = rng.random()
        if r < 0.3 and long_opts:
            opt = rng.choice(sorted(long_opts))
            takes = params[long_opts[opt]][1] != "flag"
            if takes and rng.random() < 0.5:
                out.append(f"{opt}={rng.choice(values)}")
            else:
                out.append(opt)
                if takes and rng.random() < 0.9:
                    out.append(rng.choice(values))
        elif r < 0.55 and short_opts:
            k = rng.randint(1, 3)
            cluster = "-" + "".join(rng.choice(sorted(short_opts))[1] for _ in range(k))
            if rng.random() < 0.3:
                cluster += rng.choice(values)
            out.append(cluster)
            if rng.random() < 0.5:
                out.append(rng.choice(values))
        elif r < 0.62:
            out.append(rng.choice(["--", "--nope", "-Z", "--nope=1", "-"]))
        else:
            out.append(rng.choice(words))
    if rng.random() < 0.8:  # the arguments, mostly as many as the command takes
        for _name, nargs, _required in arguments:
            out += [rng.choice(words[:3])] if nargs == 1 else rng.sample(words, rng.randint(0, 3))
    return out


@pytest.mark.parametrize("name", HOT)
def test_generated_command_lines(name, monkeypatch):
    rng = random.Random(f"fastparse-{name}")
    fast = 0
    for _ in range(400):
        rest = _random_line(rng, name)
        _check(name, rest, monkeypatch)
        fast += fastparse.parse([name, *rest]) is not None
    assert fast > 40, "the corpus should exercise the fast path, not only Click"


def test_version_is_what_clicks_version_option_prints():
    import subprocess
    import sys

    assert fastparse.parse(["--version"]) == (fastparse.VERSION, {}, None)
    assert fastparse.parse(["--version", "ps"]) is None
    fast = subprocess.run([sys.executable, "-m", "minidock", "--version"], capture_output=True, text=True)
    click_ = subprocess.run([sys.executable, "-c", "import sys; from minidock.cli import app; app.main(sys.argv[1:])",
                             "--version"], capture_output=True, text=True)
    assert (fast.returncode, fast.stdout, fast.stderr) == (click_.returncode, click_.stdout, click_.stderr)
    assert fast.stdout.startswith("minidock, version ")


def test_group_options():
    assert fastparse.parse(["--root", "/tmp/r", "ps", "-a"])[2] == "/tmp/r"
    assert fastparse.parse(["--root=/tmp/r", "ps"])[2] == "/tmp/r"
    assert fastparse.parse(["--root"]) is None
    for args in (["--version", "x"], ["-h"], ["--help"], [], ["--", "ps"], ["images"], ["network", "ls"],
                 ["--root", "x"], ["-x", "ps"], ["ps", "-a", "--help"]):
        assert fastparse.parse(args) is None, args


# --- the click-free helpers the read paths use -------------------------------------------------
def test_jsonfast_equals_json():
    from minidock.util import jsonfast

    objs = [{"Id": "a" * 64, "State": {"Running": True, "Pid": 12, "ExitCode": 0, "StartedAt": "2026-11-26T13:34:35Z"},
             "Config": {"Env": ["A=1", "é"], "Labels": {}, "Cmd": None, "x": 1.5, "big": 10**30}, "Args": []},
            [], {}, "x\n\u2028\ud800", 1e-7, -0.0, [1, [2, [3, {}]]], True, None]
    for o in objs:
        s = json.dumps(o)
        assert jsonfast.loads(s) == json.loads(s)
        assert jsonfast.loads("  " + s + "\n") == json.loads(s)
        for ind in (2, 4):
            assert jsonfast.dumps_indented(o, ind) == json.dumps(o, indent=ind)
    for odd in ({1: 2}, [float("nan")], (1, 2), {"a": {3}} if False else {"a": (1,)}):
        assert jsonfast.dumps_indented(odd, 4) == json.dumps(odd, indent=4)
    for bad in ("", "[1,", "{} x", "nan", "{'a': 1}"):
        with pytest.raises(json.JSONDecodeError) as fast:
            jsonfast.loads(bad)
        with pytest.raises(json.JSONDecodeError) as slow:
            json.loads(bad)
        assert str(fast.value) == str(slow.value)


def test_parse_time_without_strptime():
    from minidock.cli import views

    rng = random.Random(1)
    for _ in range(5000):
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(rng.randint(-10**9, 5 * 10**9)))
        ts += rng.choice(["", "Z", ".123456789Z", ".5", ".", ".x", ".12\u0663Z", "+01:00"])
        assert views.parse_time(ts) == views._parse_time_slow(ts), ts
    for ts in ("", "x", None, "0001-01-01T00:00:00Z", "2026-02-29T00:00:00Z", "2024-02-29T23:59:60Z",
               "2026-13-01T00:00:00Z", "2026-1-01T00:00:00Z", "2026-01-01T00:00:0\u0663Z"):
        assert views.parse_time(ts) == views._parse_time_slow(ts), ts


def test_name_check_without_re():
    from minidock.state import containers, names

    rng = random.Random(2)
    for _ in range(20000):
        ref = "".join(rng.choice("ab.-_Z9/\n é") for _ in range(rng.randint(0, 5)))
        assert bool(names.NAME_RE.match(ref)) == containers._is_name(ref), repr(ref)


def test_default_ps_table_is_the_templates_output():
    from minidock.cli import gotemplate, views

    zero = "0001-01-01T00:00:00Z"
    recs = []
    for i, (path, args, st) in enumerate([
        ("sleep", ["1000"], {"Status": "running", "Running": True, "StartedAt": "2026-11-26T13:00:00.5Z"}),
        ("", [], {"Status": "created", "FinishedAt": zero}),
        ("sh", ["-c", 'echo "quoted" \\ and a long line'], {"Status": "exited", "ExitCode": 3,
                                                             "FinishedAt": "2026-11-25T13:00:00Z"}),
        ("ünïcode", ["\t"], {"Status": "running", "Running": True, "Paused": True,
                             "StartedAt": "2026-11-26T13:00:00Z"}),
    ]):
        recs.append({"Id": f"{i:x}" * 64, "Created": f"2026-11-2{i}T10:00:00.123Z", "Path": path, "Args": args,
                     "Name": f"/n{i}", "Image": "sha256:" + "ab" * 32, "ImageRef": "busybox" if i % 2 else "",
                     "Config": {"Cmd": ["sh"], "Entrypoint": None, "Labels": {"a": "b"}},
                     "HostConfig": {"NetworkMode": "none"}, "State": st,
                     "NetworkSettings": {"Ports": {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}],
                                                   "53/udp": None}}})
    for trunc in (True, False):
        want = gotemplate.docker_format(views.PS_DEFAULT_TABLE, [views.ps_row(r, trunc=trunc) for r in recs],
                                        views.ps_header())
        assert views.ps_default_table(recs, trunc=trunc) == want


def test_install_sh_writes_the_console_scripts_pyproject_declares():
    """install.sh replaces pip's console scripts (whose `import re` costs ~4 ms a start) with
    plain ones: for the same entry points."""
    import pathlib
    import re

    repo = pathlib.Path(__file__).resolve().parents[3]
    section = (repo / "pyproject.toml").read_text().split("[project.scripts]\n", 1)[1].split("\n\n", 1)[0]
    scripts = dict(re.findall(r'^(\S+) = "([^"]+)"$', section, re.M))
    line = next(ln for ln in (repo / "install.sh").read_text().splitlines() if ln.startswith("for entry in "))
    written = dict(e.split() for e in re.findall(r'"([^"]+)"', line))
    # minidock-runtime: scripts/runtime-launcher (python3 -I -S), run by install.sh
    assert "scripts/runtime-launcher .venv/bin/minidock-runtime" in (repo / "install.sh").read_text()
    assert "from minidock.cli.runtime_fast import main" in (repo / "scripts" / "runtime-launcher").read_text()
    written["minidock-runtime"] = "minidock.cli.runtime_fast"
    assert {k: f"{v}:main" for k, v in written.items()} == scripts


def test_a_stale_spec_hands_every_line_to_click(monkeypatch):
    """An option added to the Click definitions without regenerating the spec: the checksum of
    their sources differs, and Click parses (slower, never wrong)."""
    from minidock.cli import _fastspec

    assert fastparse.parse(["ps", "-a"]) is not None
    monkeypatch.setattr(_fastspec, "CHECKSUM", _fastspec.CHECKSUM + 1)
    assert fastparse.parse(["ps", "-a"]) is None


def test_record_reads_with_plain_system_calls(tmp_path, monkeypatch):
    """containers' reader (os.read, not a file object) returns whole records of any size, and
    util.proc_start_time the same field as the text it replaced."""
    import os

    from minidock.state import containers
    from minidock.util import proc_start_time

    for size in (0, 10, 1 << 16, (1 << 16) + 1, 300_000):
        p = tmp_path / f"r{size}"
        p.write_text("x" * size)
        assert containers._read(str(p)) == "x" * size
    with open(f"/proc/{os.getpid()}/stat") as f:
        assert proc_start_time(os.getpid()) == f.read().rsplit(")", 1)[1].split()[19]
    assert proc_start_time(2 ** 22 + 1) is None


def test_ps_skips_records_without_reading_what_it_does_not_show(tmp_path, monkeypatch, capsys):
    """`ps` (running only) reads a stopped container's state.json, not its record; a directory
    that has no record yet is skipped, as before."""
    from minidock.state import containers

    monkeypatch.setenv("MINIDOCK_ROOT", str(tmp_path))
    cdir = tmp_path / "containers"
    stopped, half = "a" * 64, "b" * 64
    (cdir / stopped).mkdir(parents=True)
    (cdir / stopped / "state.json").write_text(json.dumps(containers.initial_state()))
    (cdir / stopped / "config.json").write_text("not json: never read")
    (cdir / half).mkdir()
    assert sorted(containers.all_ids(complete=False)) == [stopped, half]
    assert containers.all_ids() == [stopped]
    hot.ps(False, False, False, -1, False, False, (), None)
    assert capsys.readouterr().out == "CONTAINER ID   IMAGE     COMMAND   CREATED   STATUS    PORTS     NAMES\n"
