"""Root-free tests on the kernel layer's recording fake: the order of the security-critical steps,
the container init's checklist, network.connect, layer unpacking with whiteouts.

Each test runs real minidock code with kernel.FakeBackend in place: the calls are recorded, the
host is not touched, and failures can be injected where the kernel would refuse.
"""

from __future__ import annotations

import errno
import io
import os
import socket
import tarfile

import pytest

from minidock import kernel as k
from minidock.errors import KernelError
from minidock.runtime import security


def _prctl(call) -> str:
    names = {k.PR_CAPBSET_DROP: "capbset_drop", k.PR_SET_KEEPCAPS: "keepcaps",
             k.PR_SET_NO_NEW_PRIVS: "no_new_privs", k.PR_CAP_AMBIENT: "ambient"}
    return names.get(call.option, f"prctl {call.option}")


def _steps(fake) -> list[str]:
    """The calls, prctl spelled out, runs of the same step folded."""
    out: list[str] = []
    for c in fake.calls:
        name = _prctl(c) if c.op == "prctl" else c.op
        if not out or out[-1] != name:
            out.append(name)
    return out


PROCESS = {
    "rlimits": [{"type": "RLIMIT_NOFILE", "soft": 1024, "hard": 1024},
                {"type": "RLIMIT_NPROC", "soft": 512, "hard": 512}],
    "user": {"uid": 1000, "gid": 1000, "additionalGids": [10, 20]},
    "capabilities": {"bounding": ["CAP_CHOWN", "CAP_KILL"], "effective": ["CAP_CHOWN"],
                     "permitted": ["CAP_CHOWN"], "inheritable": [], "ambient": ["CAP_CHOWN"]},
    "noNewPrivileges": True,
}
PROFILE = {"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_X86_64"],
           "syscalls": [{"names": ["read", "write", "exit_group"], "action": "SCMP_ACT_ALLOW"}]}


# --- security.apply ------------------------------------------------------------------------------
def test_security_order_rlimits_ids_caps_nnp_seccomp(fake):
    """capabilities(7), runc: rlimits while privileged -> bounding set -> groups, gid, uid (keepcaps
    around the uid change) -> capset, ambient -> no_new_privs -> seccomp, last."""
    security.apply(PROCESS, PROFILE)
    assert _steps(fake) == ["setrlimit", "capbset_drop", "setgroups", "setresgid", "keepcaps",
                            "setresuid", "keepcaps", "capset", "ambient", "no_new_privs",
                            "seccomp_prepare", "seccomp_load"]
    assert [(c.res, c.soft, c.hard) for c in fake.of("setrlimit")] == [(7, 1024, 1024), (6, 512, 512)]
    assert fake.of("setgroups")[0].gids == [10, 20]
    assert fake.of("setresgid")[0].gid == 1000 and fake.of("setresuid")[0].uid == 1000
    keepcaps = [c.a2 for c in fake.of("prctl") if c.option == k.PR_SET_KEEPCAPS]
    assert keepcaps == [1, 0]
    assert fake.of("capset")[0].effective == 1 << 0  # CAP_CHOWN
    dropped = {c.a2 for c in fake.of("prctl") if c.option == k.PR_CAPBSET_DROP}
    assert 0 not in dropped and 5 not in dropped and 21 in dropped  # CAP_SYS_ADMIN (21) is gone
    load = fake.of("seccomp_load")[0]
    assert load.default_action == 0x00050000 | errno.EPERM
    assert [r[0] for r in load.rules] == ["read", "write", "exit_group"]


def test_without_no_new_privs_seccomp_goes_first_while_privileged(fake):
    """Without no_new_privs only CAP_SYS_ADMIN may load a filter: before anything is dropped."""
    security.apply(dict(PROCESS, noNewPrivileges=False), PROFILE)
    steps = _steps(fake)
    assert steps.index("seccomp_load") < steps.index("capbset_drop") < steps.index("setresuid")
    assert "no_new_privs" not in steps


def test_a_refused_uid_change_stops_before_capabilities_and_seccomp(fake):
    fake.fail("setresuid", errno.EPERM)
    with pytest.raises(KernelError) as e:
        security.apply(PROCESS, PROFILE)
    assert e.value.call == "setresuid" and e.value.errno == errno.EPERM
    assert _steps(fake)[-1] == "setresuid"
    assert not fake.of("capset") and not fake.of("seccomp_load")


def test_root_keeps_its_ids(fake):
    security.apply({"user": {"uid": 0, "gid": 0}}, None)
    assert fake.ops() == ["setgroups"]


# --- the container's init ------------------------------------------------------------------------
def _spec(rootfs, **extra) -> dict:
    from minidock.runtime import spec as ocispec

    s = ocispec.base_spec(["/bin/sh", "-c", "true"])
    s["mounts"] = [m for m in s["mounts"] if m["destination"] != "/sys/fs/cgroup"]
    s["root"] = {"path": str(rootfs), "readonly": True}
    s["hostname"] = "box"
    s["process"]["cwd"] = "/"
    s.update(extra)
    return s


def _in_order(seq: list[str], wanted: list[str]) -> bool:
    """``wanted`` appears in ``seq`` in this order (other steps may come between)."""
    it = iter(seq)
    return all(any(x == w for x in it) for w in wanted)


def _init(tmp_path, fake, spec, **ctxargs):
    from minidock.runtime import init, process, sync

    parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    ctx = process._Ctx(sock=child, spec=spec, rootfs=str(tmp_path / "rootfs"),
                       namespaces=[{"type": t} for t in ("pid", "mount", "uts", "ipc", "network")],
                       stdio=None, **ctxargs)
    sync.send(parent, {"type": sync.START})  # sync 4, already waiting
    try:
        init.checklist(ctx)
        return [sync.recv(parent)[0]["type"]]
    finally:
        parent.close()
        child.close()


def test_init_checklist_order(tmp_path, fake):
    """runc's checklist: rootfs (mounts, devices, pivot_root) -> finalize (masks, read-only) ->
    hostname -> ready -> seccomp/caps/user -> stdio -> close fds -> signals -> exec."""
    (tmp_path / "rootfs").mkdir()
    (tmp_path / "kcore").write_text("")  # (paths "after pivot_root": on the fake, still the host's)
    (tmp_path / "sysrq").mkdir()
    spec = _spec(tmp_path / "rootfs")
    spec["linux"]["maskedPaths"] = [str(tmp_path / "kcore"), str(tmp_path / "absent")]
    spec["linux"]["readonlyPaths"] = [str(tmp_path / "sysrq")]
    sent = _init(tmp_path, fake, spec)
    assert sent == ["ready"]
    names = fake.ops()
    order = ["setsid", "mount", "mknod", "pivot_root", "umount2", "mount", "sethostname", "link_up",
             "chdir", "setgroups", "capset", "prctl", "dup2", "close_fds", "reset_signals", "execve"]
    assert _in_order(names, order), names
    assert names[-1] == "execve"
    # the rootfs steps: private /, the rootfs bound on itself, then the spec's mounts in order
    mounts = fake.of("mount")
    assert (mounts[0].target, mounts[0].flags) == ("/", k.MS_REC | k.MS_PRIVATE)
    assert mounts[1].source == mounts[1].target == str(tmp_path / "rootfs")
    root = str(tmp_path / "rootfs")
    spec_targets = [m.target[len(root):] for m in mounts if m.target.startswith(root + "/")]
    want = [m["destination"] for m in spec["mounts"]]
    assert [t for t in spec_targets if t in want][:len(want)] == want
    # pivot_root: enter the new root, swap, old root made slave and detached, cd /
    i = names.index("pivot_root")
    assert names[i - 1] == "chdir" and fake.calls[i - 1].path == root
    assert names[i + 1:i + 4] == ["mount", "umount2", "chdir"]
    assert fake.calls[i + 1].flags == k.MS_SLAVE | k.MS_REC and fake.of("umount2")[0].flags == k.MNT_DETACH
    # masked and read-only paths after pivot_root, the read-only root last of the mounts
    after = [c for c in fake.calls[names.index("umount2"):] if c.op == "mount"]
    assert [(c.source, c.target) for c in after][:3] == [
        ("/dev/null", str(tmp_path / "kcore")),  # masked
        (str(tmp_path / "sysrq"), str(tmp_path / "sysrq")), (None, str(tmp_path / "sysrq"))]  # read-only
    assert after[-1].target == "/" and after[-1].flags & k.MS_RDONLY
    # the process: cwd, no leaked fds, default signals, exec of the resolved path
    assert fake.of("execve")[0].path == "/bin/sh" and fake.of("execve")[0].argv == ["/bin/sh", "-c", "true"]
    assert fake.of("close_fds")[0].keep >= {0, 1, 2}
    assert [c.fd2 for c in fake.of("dup2")] == [0, 1, 2]


def test_init_a_refused_mount_stops_the_checklist(tmp_path, fake):
    (tmp_path / "rootfs").mkdir()
    fake.fail("mount", errno.EPERM, when=lambda c: c.fstype == "proc")
    with pytest.raises(KernelError) as e:
        _init(tmp_path, fake, _spec(tmp_path / "rootfs"))
    assert e.value.call == "mount" and "proc" in str(e.value)
    assert "pivot_root" not in fake.ops() and "execve" not in fake.ops()


# --- network.connect ------------------------------------------------------------------------------
class _Links:
    """A kernel's link table, as much as network.connect asks of it: links exist once made."""

    def __init__(self):
        self.names = ["lo"]

    def __call__(self, call):
        from minidock.network import netlink as nl

        attrs = nl.parse_attrs(call.body[nl._IFINFO.size:]) if call.mtype in (16, 18) else {}
        name = attrs.get(nl.IFLA_IFNAME, b"").rstrip(b"\0").decode()
        if call.mtype == nl.RTM_NEWLINK and name and name not in self.names:
            self.names.append(name)
            if b"veth" in call.body:
                self.names.append("eth0")
        if call.mtype != nl.RTM_GETLINK or call.flags & nl.NLM_F_DUMP == nl.NLM_F_DUMP:
            return []
        if name not in self.names:
            raise OSError(errno.ENODEV, "no such device")
        return [(nl.RTM_NEWLINK, nl._IFINFO.pack(0, 0, 1 + self.names.index(name), 0, 0))]


def test_network_connect_steps(tmp_path, monkeypatch, fake):
    """Bridge (made, addressed, up, NATed), a veth born with its peer in the container's netns,
    then inside that netns: lo up, the address, eth0 up, the default route; back home last."""
    monkeypatch.setenv("MINIDOCK_ROOT", str(tmp_path))
    monkeypatch.setenv("MINIDOCK_NAT", "nft")
    from minidock import network
    from minidock.network import netlink as nl
    from minidock.network import store
    from minidock.state import containers

    monkeypatch.setattr(store, "host_routes", lambda exclude: [])
    fake.returns("netlink_request", _Links())
    cid = "c" * 64
    containers.cdir(cid).mkdir(parents=True)
    rec = {"Id": cid, "Name": "/web", "Config": {}, "HostConfig": {"NetworkMode": "bridge"},
           "State": {}}
    settings = network.connect(rec, os.getpid(), containers.journal(cid))
    ip = settings["Networks"]["bridge"]["IPAddress"]
    assert ip.startswith("172.30.") and settings["SandboxKey"] == f"/proc/{os.getpid()}/ns/net"

    changes = [(c.op, c.mtype) if c.op == "netlink_request" else (c.op,) for c in fake.calls
               if c.op != "netlink_request" or c.mtype != nl.RTM_GETLINK]
    want = [("netlink_open",),
            ("netlink_request", nl.RTM_NEWLINK),  # the bridge
            ("netlink_request", nl.RTM_NEWADDR),  # its gateway address
            ("netlink_request", nl.RTM_NEWLINK),  # up
            ("run_tool",),  # minidock's nft table / the network's elements
            ("write_file",),  # route_localnet
            ("netlink_request", nl.RTM_NEWLINK),  # the veth pair, peer in the netns
            ("netlink_request", nl.RTM_SETLINK),  # hairpin
            ("netlink_request", nl.RTM_NEWLINK),  # host end up
            ("netlink_close",),
            ("setns",), ("netlink_open",), ("setns",),  # a socket inside the container's netns
            ("netlink_request", nl.RTM_NEWLINK),  # lo up
            ("netlink_request", nl.RTM_NEWADDR),  # eth0's address
            ("netlink_request", nl.RTM_NEWLINK),  # eth0 up
            ("netlink_request", nl.RTM_NEWROUTE),  # default route
            ("netlink_close",)]
    assert _in_order(changes, want), changes
    enter, back = fake.of("setns")
    assert enter.path == f"/proc/{os.getpid()}/ns/net" and back.path.startswith("/proc/self/fd/")
    nft = " ".join(c.input or "" for c in fake.of("run_tool"))
    assert "add element ip minidock subnets { 172.30.0.0/16 }" in nft
    veth = [c for c in fake.of("netlink_request") if c.mtype == nl.RTM_NEWLINK and b"veth" in c.body][0]
    assert b"eth0" in veth.body and b"md" in veth.body
    kinds = [e["kind"] for e in containers.journal(cid).entries()]
    assert kinds[:2] == ["ipam", "veth"]  # journaled before they exist


def test_network_connect_a_refused_veth_is_an_error_naming_it(tmp_path, monkeypatch, fake):
    monkeypatch.setenv("MINIDOCK_ROOT", str(tmp_path))
    monkeypatch.setenv("MINIDOCK_NAT", "nft")
    from minidock import network
    from minidock.network import netlink as nl
    from minidock.network import store
    from minidock.state import containers

    monkeypatch.setattr(store, "host_routes", lambda exclude: [])
    fake.returns("netlink_request", _Links())
    fake.fail("netlink_request", errno.EEXIST, when=lambda c: c.mtype == nl.RTM_NEWLINK and b"veth" in c.body)
    cid = "d" * 64
    containers.cdir(cid).mkdir(parents=True)
    rec = {"Id": cid, "Name": "/web", "Config": {}, "HostConfig": {"NetworkMode": "bridge"}, "State": {}}
    with pytest.raises(KernelError) as e:
        network.connect(rec, os.getpid(), containers.journal(cid))
    assert e.value.call == "netlink" and "add veth md" in str(e.value) and e.value.errno == errno.EEXIST
    assert "setns" not in fake.ops()
    assert [e["kind"] for e in containers.journal(cid).entries()] == ["ipam", "veth"]  # undo knows


# --- layer unpacking with whiteouts ------------------------------------------------------------------
def _layer(entries) -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, kind in entries:
            ti = tarfile.TarInfo(name)
            ti.uid, ti.gid = os.getuid(), os.getgid()
            ti.mtime = 1
            if kind == "dir":
                ti.type, ti.mode = tarfile.DIRTYPE, 0o755
                tf.addfile(ti)
            else:
                data = b"x"
                ti.size, ti.mode = len(data), 0o644
                tf.addfile(ti, io.BytesIO(data))
    buf.seek(0)
    return buf


def test_whiteouts_become_overlay_whiteouts(tmp_path, fake):
    from minidock.image import layers

    dest = tmp_path / "layer"
    dest.mkdir()
    stream = _layer([("etc", "dir"), ("etc/.wh.passwd", "file"), ("opt", "dir"),
                     ("opt/.wh..wh..opq", "file"), ("opt/new", "file"), ("keep", "file")])
    layers.unpack(stream, str(dest))
    assert [(c.path, c.mode & 0o170000, c.device) for c in fake.of("mknod")] == \
        [(str(dest / "etc" / "passwd"), 0o020000, os.makedev(0, 0))]  # char 0:0
    assert [(c.path, c.name, c.value) for c in fake.of("setxattr")] == \
        [(str(dest / "opt"), "trusted.overlay.opaque", b"y")]
    assert (dest / "opt" / "new").read_bytes() == b"x" and (dest / "keep").exists()
    assert not (dest / "etc" / ".wh.passwd").exists() and not (dest / "opt" / ".wh..wh..opq").exists()


def test_a_refused_whiteout_fails_the_unpack(tmp_path, fake):
    from minidock.image import layers

    dest = tmp_path / "layer"
    dest.mkdir()
    fake.fail("mknod", errno.EPERM)
    with pytest.raises(KernelError):
        layers.unpack(_layer([("etc", "dir"), ("etc/.wh.passwd", "file")]), str(dest))


# --- the protocol and the runtime's Container ---------------------------------------------------------
def test_protocol_names_are_shared_and_checked():
    from minidock.runtime import init, process, sync

    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        with pytest.raises(ValueError):
            sync.send(a, {"type": "redy"})  # a typo is refused, not sent
        sync.send(a, {"type": sync.PID, "pid": 42})
        assert sync.expect(b, sync.PID)["pid"] == 42
        sync.send(a, {"type": sync.READY})
        with pytest.raises(Exception, match="expected pid, got ready"):
            sync.expect(b, sync.PID)
        sync.send_error(a, KernelError("mount", "proc on /proc", errno.EPERM))
        with pytest.raises(Exception, match="mount proc on /proc"):
            sync.expect(b, sync.READY)
    finally:
        a.close()
        b.close()
    # both sides use the module's names: no bare message strings left in them
    import inspect
    import re

    for mod in (init, process):
        src = inspect.getsource(mod)
        bare = [m for m in sync.MESSAGES
                if re.search(rf'"type":\s*"{m}"|get\("type"\)\s*[!=]=\s*"{m}"', src)]
        assert bare == [], (mod.__name__, bare)


def test_features_come_from_the_tables_in_use(capsys):
    import json

    from minidock.cli.runtime_cli import main
    from minidock.runtime import hooks, seccomp
    from minidock.runtime import rootfs as rfs

    with pytest.raises(SystemExit) as e:
        main(["features"])
    assert e.value.code == 0
    f = json.loads(capsys.readouterr().out)
    assert f["linux"]["namespaces"] == sorted(k.NS_FLAGS) and {"user", "time"} <= set(f["linux"]["namespaces"])
    assert f["hooks"] == list(hooks.SUPPORTED)
    assert set(f["mountOptions"]) == set(rfs.MOUNT_OPTIONS) and "rbind" in f["mountOptions"]
    assert f["linux"]["seccomp"]["actions"] == seccomp.ACTIONS
    for a in f["linux"]["seccomp"]["actions"]:
        seccomp.action(a)  # each one the code really knows
    assert "SCMP_ARCH_X32" in f["linux"]["seccomp"]["archs"]


def test_runtime_container_drives_its_cgroup(monkeypatch):
    from minidock.runtime import cgroups, process

    calls = []

    class CG:
        def __getattr__(self, name):
            return lambda *a: calls.append((name, *a)) or {"exists": True, "procs": [7], "stats": {"x": 1},
                                                         "oom_killed": True}.get(name)

    monkeypatch.setattr(cgroups, "open_cgroup", lambda path: calls.append(("open", path)) or CG())
    c = process.Container(id="c1", bundle="/b", spec={}, root="/r", cgroup_path="minidock/c1")
    c.pause()
    c.resume()
    c.update({"memory": {"limit": 1}})
    assert c.stats() == {"x": 1} and c.oom_killed() is True and c.procs() == [7]
    assert [x for x in calls if x[0] != "open"] == [
        ("freeze",), ("thaw",), ("update", {"memory": {"limit": 1}}), ("stats",), ("oom_killed",),
        ("exists",), ("procs",)]
    assert {x for x in calls if x[0] == "open"} == {("open", "minidock/c1")}
    with pytest.raises(cgroups.CgroupError):
        process.Container(id="c2", bundle="/b", spec={}, root="/r").pause()


def test_commit_pauses_a_running_container_while_reading_its_changes(monkeypatch):
    from minidock import runtime
    from minidock.engine import commit

    log = []

    class RT:
        def status(self):
            return "running"

        def pause(self):
            log.append("pause")

        def resume(self):
            log.append("resume")

    monkeypatch.setattr(runtime, "load", lambda cid: RT())
    running = {"State": {"Running": True, "Paused": False}}
    with commit._paused("c1", running, True):
        log.append("read")
    assert log == ["pause", "read", "resume"]
    log.clear()
    with pytest.raises(RuntimeError), commit._paused("c1", running, True):
        raise RuntimeError("a failed read still resumes it")
    assert log == ["pause", "resume"]
    log.clear()
    for rec, pause in ((running, False), ({"State": {"Running": False}}, True),
                       ({"State": {"Running": True, "Paused": True}}, True)):
        with commit._paused("c1", rec, pause):
            log.append("read")
    assert log == ["read"] * 3  # -p=false, stopped, already paused: left alone


def test_snapshot_prepare_returns_the_mounts_as_data_and_the_engine_mounts_them(tmp_path, monkeypatch, fake):
    from minidock.engine import bundle
    from minidock.image import snapshots
    from minidock.state import containers

    m = snapshots.prepare(["/l/base", "/l/mid", "/l/top"], "/c/upper", "/c/work", "/c/merged")
    assert m == [{"type": "overlay", "source": "overlay", "destination": "/c/merged",
                  "options": ["lowerdir=/l/top:/l/mid:/l/base", "upperdir=/c/upper", "workdir=/c/work"]}]
    monkeypatch.setenv("MINIDOCK_ROOT", str(tmp_path))
    cid = "e" * 64
    containers.cdir(cid).mkdir(parents=True)
    merged = bundle.mount_rootfs({"Id": cid}, ["/l/base", "/l/top"])
    (call,) = fake.of("mount")
    assert (call.source, call.target, call.fstype) == ("overlay", merged, "overlay")
    assert call.data.startswith("lowerdir=/l/top:/l/base,upperdir=")
    assert [e["kind"] for e in containers.journal(cid).entries()] == ["mount"]  # journaled first
