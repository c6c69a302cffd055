"""--userns/--uidmap/--gidmap and the remap default, without root: the flags' rules and messages,
podman's --userns=auto allocation, the ID translation of cp/commit/export, and the remapped rootfs
mount on the kernel layer's fake (idmapped layers, upper owned by the mapped root, staged binds)."""

from __future__ import annotations

import pytest

from minidock.engine import userns
from minidock.errors import InvalidArgument, MinidockError
from minidock.util.idmap import IDMap, parse_map


def resolve(userns_mode=None, uidmap=(), gidmap=(), privileged=False, network="none", pid=""):
    return userns.resolve(userns_mode, list(uidmap), list(gidmap), privileged=privileged, network=network, pid=pid)


@pytest.fixture(autouse=True)
def no_remap(monkeypatch):
    monkeypatch.delenv("MINIDOCK_USERNS_REMAP", raising=False)


def test_off_by_default_and_host():
    assert resolve() == {"UsernsMode": ""}
    assert resolve("host") == {"UsernsMode": "host"}


def test_uidmap_alone_maps_gids_alike_and_the_other_way_round():
    assert resolve(uidmap=["0:100000:65536"])["IDMappings"] == {"UidMap": ["0:100000:65536"],
                                                                 "GidMap": ["0:100000:65536"]}
    assert resolve(gidmap=["0:5000:10"])["IDMappings"]["UidMap"] == ["0:5000:10"]
    got = resolve(uidmap=["0:100000:1000", "1000:300000:5"], gidmap=["0:200000:65536"])["IDMappings"]
    assert got == {"UidMap": ["0:100000:1000", "1000:300000:5"], "GidMap": ["0:200000:65536"]}


@pytest.mark.parametrize("flags,message", [
    ({"uidmap": ["0:100000"]}, 'UID setting is malformed expected ["uint32:uint32:uint32"]: ["0:100000"]'),
    ({"gidmap": ["a:b:c"]}, "GID setting is malformed"),
    ({"uidmap": ["0:-1:5"]}, "malformed"),
    ({"uidmap": ["0:4294967296:1"]}, "malformed"),
    ({"uidmap": ["0:4294967290:10"]}, "end below 4294967295"),
    ({"uidmap": ["0:1:0"]}, "at least one ID"),
    ({"uidmap": ["5:100000:10"]}, "container ID 0 cannot be mapped to a host ID"),
    ({"uidmap": ["0:100000:65536", "10:300000:5"]}, "conflicts with other mappings"),
    ({"uidmap": ["0:100000:10", "10:100009:5"]}, "conflicts with other mappings"),
    ({"uidmap": ["0:1:1"], "userns_mode": "host"}, "mutually exclusive"),
    ({"uidmap": ["0:1:1"], "userns_mode": "auto"}, "mutually exclusive"),
    ({"userns_mode": "keep-id"}, "keep-id is only supported in rootless mode"),
    ({"userns_mode": "keep-id:uid=5"}, "keep-id is only supported in rootless mode"),
    ({"userns_mode": "nomap"}, "nomap is only supported in rootless mode"),
    ({"userns_mode": "ns:/proc/1/ns/user"}, "not supported"),
    ({"userns_mode": "container:x"}, "invalid USER mode"),
    ({"userns_mode": "host:x"}, "invalid USER mode"),
    ({"userns_mode": "private"}, "must provide at least one UID or GID mapping"),
    ({"uidmap": ["0:1:10"], "privileged": True}, "privileged mode is incompatible with user namespaces"),
    ({"uidmap": ["0:1:10"], "network": "host"}, "cannot share the host's network namespace"),
    ({"uidmap": ["0:1:10"], "pid": "host"}, "cannot share the host PID namespace"),
])
def test_refused_with_docker_and_podman_messages(flags, message):
    with pytest.raises(InvalidArgument) as e:
        resolve(**flags)
    assert message in e.value.message
    assert e.value.exit_code == 125


def test_the_host_modes_stay_allowed_without_a_user_namespace():
    assert resolve("host", privileged=True, network="host", pid="host") == {"UsernsMode": "host"}
    assert resolve(privileged=True, network="host", pid="host") == {"UsernsMode": ""}


def test_remap_default_a_map_or_subordinate_ranges(monkeypatch, tmp_path):
    monkeypatch.setenv("MINIDOCK_USERNS_REMAP", "0:300000:65536")
    assert resolve()["IDMappings"]["UidMap"] == ["0:300000:65536"]
    assert resolve("host") == {"UsernsMode": "host"}  # Docker's opt-out
    assert resolve(uidmap=["0:5:5"])["IDMappings"]["UidMap"] == ["0:5:5"]  # the flags win
    with pytest.raises(InvalidArgument, match="privileged mode"):
        resolve(privileged=True)  # as Docker with userns-remap: --userns host is needed
    sub = tmp_path / "subuid"
    sub.write_text("alice:100000:65536\ndockremap:231072:65536\ndockremap:400000:10\n")
    monkeypatch.setattr(userns, "SUBUID", str(sub))
    monkeypatch.setattr(userns, "SUBGID", str(sub))
    monkeypatch.setenv("MINIDOCK_USERNS_REMAP", "default")
    # Docker's NewIdentityMapping: the ranges one after the other
    assert resolve()["IDMappings"]["UidMap"] == ["0:231072:65536", "65536:400000:10"]
    monkeypatch.setenv("MINIDOCK_USERNS_REMAP", "alice")
    assert resolve()["IDMappings"] == {"UidMap": ["0:100000:65536"], "GidMap": ["0:100000:65536"]}
    monkeypatch.setenv("MINIDOCK_USERNS_REMAP", "bob")
    with pytest.raises(MinidockError, match="no subordinate ranges found for 'bob'"):
        resolve()
    monkeypatch.delenv("MINIDOCK_USERNS_REMAP")
    # podman's --subuidname/--subgidname: the same lookup, one name standing for both
    got = userns.resolve(None, [], [], privileged=False, network="none", pid="", subuidname="alice")
    assert got["IDMappings"] == {"UidMap": ["0:100000:65536"], "GidMap": ["0:100000:65536"]}
    got = userns.resolve(None, [], [], privileged=False, network="none", pid="", subuidname="alice",
                         subgidname="dockremap")
    assert got["IDMappings"]["GidMap"] == ["0:231072:65536", "65536:400000:10"]
    with pytest.raises(MinidockError, match=r"no subordinate ranges found for 'bob' in .* \(--subuidname bob\)"):
        userns.resolve(None, [], [], privileged=False, network="none", pid="", subuidname="bob")
    for extra in ({"uidmap": ["0:1:10"]}, {"userns_mode": "host"}):
        with pytest.raises(InvalidArgument, match="mutually exclusive"):
            userns.resolve(extra.get("userns_mode"), extra.get("uidmap", []), [], privileged=False,
                           network="none", pid="", subuidname="alice")


def test_auto_takes_ranges_no_container_uses(monkeypatch, tmp_path):
    from minidock.state import containers

    sub = tmp_path / "subuid"
    sub.write_text("containers:1000000:150000\n")
    monkeypatch.setattr(userns, "SUBUID", str(sub))
    monkeypatch.setattr(userns, "SUBGID", str(sub))
    records = []
    monkeypatch.setattr(containers, "all_ids", lambda: [str(i) for i in range(len(records))])
    monkeypatch.setattr(containers, "load", lambda cid: records[int(cid)])
    first = resolve("auto")
    assert first == {"UsernsMode": "auto", "IDMappings": {"UidMap": ["0:1000000:65536"],
                                                          "GidMap": ["0:1000000:65536"]}}
    records.append({"HostConfig": first})
    assert resolve("auto")["IDMappings"]["UidMap"] == ["0:1065536:65536"]
    assert resolve("auto:size=1000")["IDMappings"]["UidMap"] == ["0:1065536:1000"]
    records.append({"HostConfig": resolve("auto")})
    with pytest.raises(MinidockError, match="could not find enough available IDs"):
        resolve("auto")  # 150000 - 2 x 65536 left: less than 65536
    with pytest.raises(InvalidArgument):
        resolve("auto:bogus=1")


def test_auto_ranges_are_taken_again_under_a_lock_when_the_record_is_made(monkeypatch, tmp_path):
    """Two creates that resolved --userns=auto at the same time (the same tentative range) end
    with different ranges: each takes its range again, under a lock, as its record is written."""
    from minidock.state import containers

    monkeypatch.setenv("MINIDOCK_ROOT", str(tmp_path / "root"))
    sub = tmp_path / "subuid"
    sub.write_text("containers:1000000:200000\n")
    monkeypatch.setattr(userns, "SUBUID", str(sub))
    monkeypatch.setattr(userns, "SUBGID", str(sub))
    records = []
    monkeypatch.setattr(containers, "all_ids", lambda: [str(i) for i in range(len(records))])
    monkeypatch.setattr(containers, "load", lambda cid: records[int(cid)])
    first, second = resolve("auto:size=1000"), resolve("auto:size=1000")
    assert first == second  # both saw the same free range
    for hc in (first, second):
        with userns.auto_allocation(hc):
            records.append({"HostConfig": hc})  # (create_container writes the record here)
    assert first["IDMappings"]["UidMap"] == ["0:1000000:1000"]
    assert second["IDMappings"]["UidMap"] == ["0:1001000:1000"]
    assert (tmp_path / "root" / "remap" / ".auto.lock").exists()
    plain = {"UsernsMode": "", "IDMappings": {"UidMap": ["0:5:5"], "GidMap": ["0:5:5"]}}
    with userns.auto_allocation(plain):
        pass
    assert plain["IDMappings"]["UidMap"] == ["0:5:5"]  # other modes: untouched


def test_id_translation_both_ways():
    m = IDMap(parse_map("0:100000:1000,1000:300000:10"), parse_map("0:200000:65536"))
    assert m.root() == (100000, 200000)
    assert m.to_host(1005, 7) == (300005, 200007)
    assert m.to_host(5000, 70000) == (-1, -1)  # unmapped: chown leaves it
    assert m.to_container(100999, 265535) == (999, 65535)
    assert m.to_container(0, 0) == (65534, 65534)  # host root shows as the overflow ID
    assert IDMap.of({"HostConfig": {}}) is None


def test_remapped_rootfs_idmapped_layers_and_staged_binds(tmp_path, monkeypatch, fake):
    from minidock.engine import bundle
    from minidock.state import containers

    monkeypatch.setenv("MINIDOCK_ROOT", str(tmp_path))
    cid = "f" * 64
    containers.cdir(cid).mkdir(parents=True)
    rec = {"Id": cid, "HostConfig": resolve(uidmap=["0:100000:65536"])}
    layers = [str(tmp_path / "image/layers/sha256/aa"), str(tmp_path / "image/layers/sha256/bb")]
    merged = bundle.mount_rootfs(rec, layers)
    assert merged == str(tmp_path / "remap" / cid / "rootfs")
    assert fake.ops() == ["chown", "chown", "userns_fd", "mount_idmapped", "mount", "umount2"]
    own_dir, own_upper, _, idm, ovl, umount = fake.calls
    assert (own_dir.path, own_dir.uid, own_dir.gid) == (str(tmp_path / "remap" / cid), 0, 100000)
    assert (own_upper.path, own_upper.uid, own_upper.gid) == (str(containers.cdir(cid) / "upper"), 100000, 100000)
    assert fake.of("userns_fd")[0].uid_map == "0 100000 65536\n"
    view = str(containers.cdir(cid) / "idmapped")
    assert (idm.source, idm.target) == (str(tmp_path / "image/layers/sha256"), view)
    assert ovl.data.startswith(f"lowerdir={view}/bb:{view}/aa,upperdir=")
    assert ovl.target == merged and umount.target == view  # detached once overlayfs holds its clones
    assert oct((tmp_path / "remap").stat().st_mode & 0o777) == "0o711"
    assert oct((tmp_path / "remap" / cid).stat().st_mode & 0o777) == "0o710"
    fake.calls.clear()
    src = tmp_path / "hosts"
    src.write_text("x")
    spec = {"mounts": [{"destination": "/proc", "type": "proc", "source": "proc"},
                       {"destination": "/etc/hosts", "type": "bind", "source": str(src), "options": ["rbind"]}]}
    userns.stage_mounts(rec, spec, containers.journal(cid))
    (mount,) = fake.of("mount")
    staged = str(tmp_path / "remap" / cid / "m" / "1")
    assert (mount.source, mount.target) == (str(src), staged) and spec["mounts"][1]["source"] == staged
    assert spec["mounts"][0]["source"] == "proc"
    kinds = [e["kind"] for e in containers.journal(cid).entries()]
    assert kinds == ["mount", "mount", "mount"]  # rootfs, the idmapped view, the staged bind: journaled first


def test_the_spec_gets_a_user_namespace_with_the_maps():
    spec = {"linux": {"namespaces": [{"type": "pid"}, {"type": "mount"}]}}
    userns.apply(spec, {"HostConfig": resolve(uidmap=["0:100000:65536"], gidmap=["0:200000:65536"])})
    assert {"type": "user"} in spec["linux"]["namespaces"]
    assert spec["linux"]["uidMappings"] == [{"containerID": 0, "hostID": 100000, "size": 65536}]
    assert spec["linux"]["gidMappings"] == [{"containerID": 0, "hostID": 200000, "size": 65536}]


def test_without_idmapped_mounts_a_chowned_copy_else_a_clear_error(tmp_path, monkeypatch, fake):
    import errno

    from minidock.engine import bundle
    from minidock.errors import KernelError
    from minidock.state import containers

    monkeypatch.setenv("MINIDOCK_ROOT", str(tmp_path))
    cid = "a" * 64
    containers.cdir(cid).mkdir(parents=True)
    rec = {"Id": cid, "HostConfig": resolve(uidmap=["0:100000:65536"])}
    layer = str(tmp_path / "image/layers/sha256/aa")
    copies = []
    monkeypatch.setattr(userns, "_shifted_copy", lambda rec, lowers, d, j: copies.append(lowers) or "/shifted")
    fake.fail("mount_idmapped", errno.EINVAL)  # what a filesystem without FS_ALLOW_IDMAP answers
    bundle.mount_rootfs(rec, [layer])
    assert copies == [[layer]]
    (ovl,) = fake.of("mount")
    assert ovl.data.startswith("lowerdir=/shifted,upperdir=")
    # any other failure is said as it is, with the kernel requirement, and nothing is mounted
    cid2 = "b" * 64
    containers.cdir(cid2).mkdir(parents=True)
    fake.calls.clear()
    fake.fail("mount_idmapped", errno.EIO)
    with pytest.raises(KernelError) as e:
        bundle.mount_rootfs({"Id": cid2, "HostConfig": rec["HostConfig"]}, [layer])
    assert "Idmapped mounts need Linux 5.12+" in e.value.hint
    assert "mount" not in fake.ops() and copies == [[layer]]


def test_the_state_root_lock_down_keeps_remap_crossable_and_the_rest_private(tmp_path, monkeypatch):
    from minidock import paths

    monkeypatch.setenv("MINIDOCK_ROOT", str(tmp_path))
    for d in ("remap", "containers", "volumes", "run"):
        (tmp_path / d).mkdir(mode=0o755)
    paths.ensure_private()
    modes = {d: oct((tmp_path / d).stat().st_mode & 0o777) for d in ("remap", "containers", "volumes", "run")}
    assert modes == {"remap": "0o711", "containers": "0o700", "volumes": "0o700", "run": "0o711"}
