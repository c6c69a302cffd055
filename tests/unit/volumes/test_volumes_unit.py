"""Volume logic without root: -v parsing, the mounts a container gets, the store, copy-up, cp rules."""

from __future__ import annotations

import os

import pytest

from minidock.errors import Conflict, InvalidArgument, NotFound


@pytest.fixture
def root(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIDOCK_ROOT", str(tmp_path / "state"))
    return tmp_path


def test_volume_flag_forms():
    from minidock.volumes import parse_volume_flag as p

    assert p("data:/d")["Type"] == "volume" and p("data:/d")["Source"] == "data"
    m = p("/host:/c:ro,rshared")
    assert (m["Type"], m["Source"], m["Target"], m["ReadOnly"]) == ("bind", "/host", "/c", True)
    assert m["BindOptions"] == {"Propagation": "rshared"}
    anon = p("/only")
    assert anon["Type"] == "volume" and anon["Source"] == "" and anon["Target"] == "/only"
    assert p("v1:/x:nocopy")["VolumeOptions"] == {"NoCopy": True}
    with pytest.raises(InvalidArgument, match="mount path must be absolute"):
        p("data:relative")
    with pytest.raises(InvalidArgument, match="invalid mode: bogus"):
        p("data:/d:bogus")
    with pytest.raises(InvalidArgument, match="includes invalid characters"):
        p("a b:/d")
    with pytest.raises(InvalidArgument, match="invalid volume specification"):
        p("a:b:c:d")


def _rec(**hc):
    base = {"Binds": [], "Mounts": [], "Tmpfs": {}, "VolumesFrom": []}
    base.update(hc)
    return {"Id": "c" * 64, "Config": {"Volumes": None}, "HostConfig": base, "Mounts": []}


def test_resolve_mounts_builds_oci_mounts_and_docker_mounts(root):
    from minidock import volumes

    rootfs = root / "rootfs"
    (rootfs / "srv" / "www").mkdir(parents=True)
    (rootfs / "srv" / "www" / "index.html").write_text("hi")
    os.symlink("index.html", rootfs / "srv" / "www" / "link")
    rec = _rec(Binds=["web:/srv/www", f"{root}/newdir:/h:ro"], Tmpfs={"/t": "size=1m"},
               Mounts=[{"Type": "tmpfs", "Target": "/m", "TmpfsOptions": {"Mode": 0o1777}}])
    rec["Config"]["Volumes"] = {"/anon": {}}
    oci = volumes.resolve_mounts(rec, str(rootfs))
    by_dest = {m["destination"]: m for m in oci}
    assert set(by_dest) == {"/srv/www", "/h", "/t", "/m", "/anon"}
    assert by_dest["/h"]["options"] == ["rbind", "rprivate", "ro"] and (root / "newdir").is_dir()
    assert by_dest["/t"]["options"] == ["nosuid", "nodev", "noexec", "size=1m"]
    assert "mode=1777" in by_dest["/m"]["options"]
    data = by_dest["/srv/www"]["source"]
    assert open(os.path.join(data, "index.html")).read() == "hi"  # copy-up
    assert os.readlink(os.path.join(data, "link")) == "index.html"
    shown = {m["Destination"]: m for m in rec["Mounts"]}
    assert shown["/srv/www"]["Name"] == "web" and shown["/h"]["RW"] is False
    anon = shown["/anon"]["Name"]
    assert len(anon) == 64
    # a second start reuses the anonymous volume; copy-up only into an empty volume
    (rootfs / "srv" / "www" / "index.html").write_text("changed")
    volumes.resolve_mounts(rec, str(rootfs))
    assert {m["Destination"]: m for m in rec["Mounts"]}["/anon"]["Name"] == anon
    assert open(os.path.join(data, "index.html")).read() == "hi"


def test_mount_bind_source_must_exist(root):
    from minidock import volumes

    rec = _rec(Mounts=[{"Type": "bind", "Source": str(root / "nope"), "Target": "/x"}])
    with pytest.raises(InvalidArgument, match="bind source path does not exist"):
        volumes.resolve_mounts(rec, str(root))


def test_volume_store_create_is_idempotent_and_rm_checks_use(root, monkeypatch):
    from minidock import volumes

    meta, created = volumes.create("v1", {"a": "b"})
    assert created and meta["Labels"] == {"a": "b"} and os.path.isdir(meta["Mountpoint"])
    again, created = volumes.create("v1")
    assert not created and again == meta
    monkeypatch.setattr(volumes, "users", lambda name, exclude=None: ["abc"])
    with pytest.raises(Conflict, match=r"remove v1: volume is in use - \[abc\]"):
        volumes.remove("v1")
    monkeypatch.setattr(volumes, "users", lambda name, exclude=None: [])
    volumes.remove("v1")
    with pytest.raises(NotFound, match="no such volume"):
        volumes.inspect("v1")


def test_prune_takes_anonymous_volumes_unless_all(root):
    from minidock import volumes

    volumes.create("named")
    anon, _ = volumes.create(None)
    assert volumes.prune() == [anon["Name"]]
    assert volumes.names() == ["named"]
    assert volumes.prune(all_=True) == ["named"]


def test_cp_argument_split():
    from minidock.volumes.cp import split_arg

    assert split_arg("web:/etc/hosts") == ("web", "/etc/hosts")
    assert split_arg("/abs/a:b") == (None, "/abs/a:b")
    assert split_arg("./rel:x") == (None, "./rel:x")
    assert split_arg("plain") == (None, "plain")


def test_cp_opens_stay_inside_the_root_and_follow_mounts(tmp_path):
    from minidock.volumes.cp import Container

    merged = tmp_path / "merged"
    (merged / "etc").mkdir(parents=True)
    (merged / "etc" / "passwd").write_text("container")
    os.symlink("/", merged / "escape")
    os.symlink("../../../..", merged / "up")
    os.symlink("/etc/passwd", merged / "pw")
    vol = tmp_path / "vol"
    vol.mkdir()
    (vol / "x").write_text("in the volume")
    c = Container({"Mounts": [{"Type": "volume", "Destination": "/data", "Source": str(vol)}]}, str(merged))
    try:
        for path in ("/escape/etc/passwd", "/up/etc/passwd", "/pw", "/../../etc/passwd"):
            root, rel = c.locate(path)
            fd = root.open(rel, os.O_RDONLY)
            with os.fdopen(fd) as f:
                assert f.read() == "container", path
        root, rel = c.locate("/data/x")
        assert (root.path, rel) == (str(vol), "/x")
        assert c.stat("/data/x").st_size == len("in the volume")
        assert c.stat("/nonexistent") is None
    finally:
        c.close()


def test_cp_places_like_docker():
    import stat as st_

    from minidock.volumes.cp import _place

    d = os.stat("/")
    f = os.stat("/etc/hostname") if os.path.exists("/etc/hostname") else os.stat(__file__)
    assert st_.S_ISREG(f.st_mode)
    names = lambda: ["a", "b"]  # noqa: E731
    assert _place(True, "src", "/dst", d, d, names) == [("", "/dst/src")]  # into an existing dir
    assert _place(True, "src/.", "/dst", d, d, names) == [("a", "/dst/a"), ("b", "/dst/b")]
    assert _place(True, "src", "/new", None, d, names) == [("", "/new")]  # created as the copy
    assert _place(False, "f", "/dst/", d, d, names) == [("", "/dst/f")]
    assert _place(False, "f", "/g", None, d, names) == [("", "/g")]
    with pytest.raises(NotFound, match="destination directory /nope/ does not exist"):
        _place(False, "f", "/nope/", None, d, names)
    with pytest.raises(InvalidArgument, match="cannot copy a directory to a file"):
        _place(True, "src", "/file", f, d, names)
    with pytest.raises(NotFound, match="no such directory"):
        _place(True, "src", "/a/b", None, None, names)
