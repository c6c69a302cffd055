"""Engine logic without root: options, users, env, journal, logs, names, templates."""

import json

import pytest

from minidock.engine import bundle, create, logs
from minidock.errors import InvalidArgument, MinidockError
from minidock.state import journal, names


def test_ports_parse_like_docker():
    assert create._ports(["8080:80", "127.0.0.1:53:53/udp", "9000"]) == {
        "80/tcp": [{"HostIp": "", "HostPort": "8080"}],
        "53/udp": [{"HostIp": "127.0.0.1", "HostPort": "53"}],
        "9000/tcp": [{"HostIp": "", "HostPort": ""}],
    }
    with pytest.raises(InvalidArgument):
        create._ports(["99999:80"])
    with pytest.raises(InvalidArgument):
        create._ports(["80/xyz"])


def test_mount_flag_parsing():
    m = create._mount_spec("type=bind,source=/a,target=/b,readonly")
    assert m == {"Type": "bind", "Source": "/a", "Target": "/b", "ReadOnly": True}
    with pytest.raises(InvalidArgument, match="target is required"):
        create._mount_spec("type=bind,source=/a")
    with pytest.raises(InvalidArgument, match="unexpected key"):
        create._mount_spec("type=bind,target=/a,bogus=1")


def test_ulimits_and_env_files(tmp_path):
    assert create.parse_ulimits(["nofile=1024:2048"]) == [{"Name": "nofile", "Soft": 1024, "Hard": 2048}]
    with pytest.raises(InvalidArgument):
        create.parse_ulimits(["nofile=10:5"])
    f = tmp_path / "env"
    f.write_text("# comment\nA=1\n\nB=two words\n")
    assert create.parse_env_file(str(f)) == ["A=1", "B=two words"]
    with pytest.raises(InvalidArgument, match="no such file"):
        create.parse_env_file(str(tmp_path / "missing"))


def test_env_merge_later_wins():
    assert bundle.merge_env(["PATH=/bin", "A=1"], ["A=2", "B=3"]) == ["PATH=/bin", "A=2", "B=3"]


def test_passthrough_env(monkeypatch):
    monkeypatch.setenv("FROM_HOST", "yes")
    monkeypatch.delenv("NOT_SET", raising=False)
    assert create._expand_env(["FROM_HOST", "NOT_SET", "X=1"]) == ["FROM_HOST=yes", "X=1"]


@pytest.fixture
def rootfs(tmp_path):
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/sh\nwww-data:x:33:33::/var/www:/bin/false\n")
    (tmp_path / "etc/group").write_text("root:x:0:\nwheel:x:10:root\nwww-data:x:33:\nstaff:x:50:www-data\n")
    return str(tmp_path)


def test_resolve_user(rootfs):
    assert bundle.resolve_user(rootfs, "") == {"uid": 0, "gid": 0, "additionalGids": [0, 10], "home": "/root"}
    u = bundle.resolve_user(rootfs, "www-data")
    assert (u["uid"], u["gid"], u["additionalGids"], u["home"]) == (33, 33, [33, 50], "/var/www")
    assert bundle.resolve_user(rootfs, "1234:50")["uid"] == 1234
    assert bundle.resolve_user(rootfs, "1234:50")["gid"] == 50
    with pytest.raises(MinidockError, match="unable to find user nobody"):
        bundle.resolve_user(rootfs, "nobody")
    with pytest.raises(MinidockError, match="unable to find group nogroup"):
        bundle.resolve_user(rootfs, "root:nogroup")


def test_capabilities_add_drop():
    caps = bundle.capabilities({"CapAdd": ["net_admin"], "CapDrop": ["CHOWN"]})
    assert "CAP_NET_ADMIN" in caps and "CAP_CHOWN" not in caps
    assert bundle.capabilities({"CapDrop": ["ALL"], "CapAdd": ["KILL"]}) == ["CAP_KILL"]
    with pytest.raises(InvalidArgument):
        bundle.capabilities({"CapAdd": ["NOT_A_CAP"]})


def test_journal_undo_reverse_and_keep_failures(tmp_path):
    done = []
    journal.register("t-ok", lambda e: done.append(e["n"]))

    def fail(e):
        raise OSError("busy")

    journal.register("t-fail", fail)
    j = journal.Journal(tmp_path / "journal")
    j.record("t-ok", n=1)
    j.record("t-fail", n=2)
    j.record("t-ok", n=3)
    with open(tmp_path / "journal", "a") as f:
        f.write('{"kind": "t-ok", "n"')  # a torn line after a crash
    errors = j.undo()
    assert done == [3, 1]
    assert len(errors) == 1 and "busy" in errors[0]
    assert [e["n"] for e in j.entries()] == [2]


def test_logs_json_file_roundtrip(tmp_path):
    p = tmp_path / "ctr.log"
    w = logs.LogWriter(str(p))
    w.write("stdout", b"one\ntw")
    w.write("stderr", b"err\n")
    w.write("stdout", b"o\nthree")
    w.close()
    lines = [json.loads(line) for line in p.read_text().splitlines()]
    assert [(x["stream"], x["log"]) for x in lines] == [
        ("stdout", "one\n"), ("stderr", "err\n"), ("stdout", "two\n"), ("stdout", "three")]
    assert list(logs.read(str(p), tail=1)) == [("stdout", "three")]
    assert all(x["time"].endswith("Z") for x in lines)


def test_names():
    assert len(names.new_id()) == 64
    n = names.random_name(set())
    assert "_" in n
    with pytest.raises(InvalidArgument):
        names.check_name("bad name!")
    assert names.check_name("/web") == "web"


def test_format_template():
    from minidock.cli.containers import format_template

    obj = {"State": {"Pid": 42, "Running": True}, "Config": {"Labels": {"a": "b"}}}
    assert format_template("{{.State.Pid}} {{.State.Running}}", obj) == "42 true"
    assert format_template('{{index .Config.Labels "a"}}', obj) == "b"
    assert format_template("{{json .Config.Labels}}", obj) == '{"a":"b"}'


def test_rlimits_never_above_host_hard(monkeypatch):
    """Docker's nofile 1048576 and the user's --ulimit, clipped to the host's hard limits (setrlimit
    would fail with EPERM above them); unlimited host limits clip nothing. The host is faked."""
    import resource

    host = {resource.RLIMIT_NOFILE: (1024, 4096), resource.RLIMIT_NPROC: (100, 200)}
    monkeypatch.setattr(bundle.resource, "getrlimit", lambda r: host.get(r, (-1, resource.RLIM_INFINITY)))

    def lims(ulimits):
        return {r["type"]: (r["soft"], r["hard"]) for r in bundle.host_rlimits(ulimits)}

    assert lims(None) == {"RLIMIT_NOFILE": (4096, 4096)}
    got = lims([{"Name": "nproc", "Soft": 150, "Hard": 500}, {"Name": "core", "Soft": 7, "Hard": 9}])
    assert got["RLIMIT_NPROC"] == (150, 200) and got["RLIMIT_CORE"] == (7, 9)  # core: host unlimited
    host[resource.RLIMIT_NOFILE] = (1024, resource.RLIM_INFINITY)
    assert lims(None) == {"RLIMIT_NOFILE": (1048576, 1048576)}
