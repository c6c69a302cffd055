"""The path a kubelet takes: containerd's CRI plugin drives minidock-runtime (RuntimeClass handler
`minidock`), with runc (handler `runc`) as the reference on the same steps.

A private containerd 1.6 (its own root, state, socket and CNI config under the module's temp
dir) runs inside a throwaway network namespace with Docker's firewall (FORWARD policy DROP,
br_netfilter); `restrict_oom_score_adj = true` because root here lacks CAP_SYS_RESOURCE (the
sandbox asks for -998). The sandbox ("pause") image is busybox built offline and imported with
`ctr -n k8s.io images import`. We speak CRI (runtime.v1) with the `container-runtime-interface-api`
stubs over grpcio, and the streaming exec over the Kubernetes WebSocket protocol (v4.channel.k8s.io).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import urlparse

import pytest

from tests.conftest import umount_under

pytestmark = pytest.mark.noleakcheck  # containerd and its shims live for the module; the fixture cleans up

REPO = Path(__file__).resolve().parents[2]
HANDLERS = ["runc", "minidock"]
MiB = 1024 * 1024

cri = pytest.importorskip("cri_api.v1.api_pb2", reason="pip install container-runtime-interface-api (test extra)")
cri_grpc = pytest.importorskip("cri_api.v1.api_pb2_grpc")
grpc = pytest.importorskip("grpc", reason="pip install grpcio (test extra)")


def sh(*cmd, timeout=120, check=False, **kw):
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=timeout, check=check, **kw)


CONFIG = """\
version = 2
root = "{w}/root"
state = "{w}/state"
oom_score = 0
[grpc]
  address = "{w}/c.sock"
[ttrpc]
  address = "{w}/c.sock.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "{w}/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{pause}"
  restrict_oom_score_adj = true
  disable_apparmor = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    default_runtime_name = "runc"
    snapshotter = "overlayfs"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        Root = "{w}/runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.minidock]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.minidock.options]
        BinaryName = "{runtime}"
        Root = "{w}/minidock"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.minidock-systemd]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.minidock-systemd.options]
        BinaryName = "{runtime}"
        Root = "{w}/minidock"
        SystemdCgroup = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{w}/cni"
    max_conf_num = 1
"""


class CRI:
    """A private containerd with the CRI plugin, and a CRI client on its socket."""

    def __init__(self, w: Path, netns: str, subnet: str):
        self.w, self.netns, self.subnet = w, netns, subnet
        self.channel = grpc.insecure_channel(f"unix://{w}/c.sock")
        self.rt = cri_grpc.RuntimeServiceStub(self.channel)
        self.cgroup_parent = f"/{os.environ['MINIDOCK_CGROUP_PARENT']}/cri-{w.name[-8:]}"

    def call(self, method: str, req, timeout: float = 90):
        return getattr(self.rt, method)(req, timeout=timeout)

    def in_netns(self, *cmd, **kw):
        return sh("nsenter", f"--net=/run/netns/{self.netns}", *cmd, **kw)

    # --- sandboxes and containers ---
    def run_pod(self, handler: str, name: str, host_network: bool = True, cgroup_parent: str | None = None):
        mode = cri.NODE if host_network else cri.POD
        cfg = cri.PodSandboxConfig(
            metadata=cri.PodSandboxMetadata(name=name, uid=uuid.uuid4().hex, namespace="default", attempt=0),
            hostname="" if host_network else name, log_directory=str(self.w / "logs" / name),
            linux=cri.LinuxPodSandboxConfig(
                cgroup_parent=self.cgroup_parent if cgroup_parent is None else cgroup_parent,
                security_context=cri.LinuxSandboxSecurityContext(
                    namespace_options=cri.NamespaceOption(network=mode, pid=cri.CONTAINER, ipc=cri.POD))))
        os.makedirs(cfg.log_directory, exist_ok=True)
        r = self.call("RunPodSandbox", cri.RunPodSandboxRequest(config=cfg, runtime_handler=handler))
        return r.pod_sandbox_id, cfg

    def create(self, pod_id: str, pod_cfg, name: str, args: list[str], image: str = "mdcri-busybox:latest",
               memory: int = 0, cpu_quota: int = 0, envs: dict | None = None):
        res = cri.LinuxContainerResources(memory_limit_in_bytes=memory, cpu_period=100000 if cpu_quota else 0,
                                          cpu_quota=cpu_quota)
        cfg = cri.ContainerConfig(
            metadata=cri.ContainerMetadata(name=name), image=cri.ImageSpec(image=f"docker.io/library/{image}"),
            command=args[:1], args=args[1:], log_path=f"{name}.log",
            envs=[cri.KeyValue(key=k, value=v) for k, v in (envs or {}).items()],
            linux=cri.LinuxContainerConfig(resources=res, security_context=cri.LinuxContainerSecurityContext(
                namespace_options=pod_cfg.linux.security_context.namespace_options)))
        return self.call("CreateContainer", cri.CreateContainerRequest(
            pod_sandbox_id=pod_id, config=cfg, sandbox_config=pod_cfg)).container_id

    def start(self, cid: str):
        self.call("StartContainer", cri.StartContainerRequest(container_id=cid))

    def status(self, cid: str):
        return self.call("ContainerStatus", cri.ContainerStatusRequest(container_id=cid)).status

    def pod_status(self, pod_id: str):
        return self.call("PodSandboxStatus", cri.PodSandboxStatusRequest(pod_sandbox_id=pod_id)).status

    def exec_sync(self, cid: str, *cmd: str, timeout: int = 30):
        r = self.call("ExecSync", cri.ExecSyncRequest(container_id=cid, cmd=list(cmd), timeout=timeout),
                      timeout=timeout + 30)
        return r.exit_code, r.stdout.decode(), r.stderr.decode()

    def containers(self, pod_id: str) -> dict[str, str]:
        r = self.call("ListContainers", cri.ListContainersRequest(filter=cri.ContainerFilter(pod_sandbox_id=pod_id)))
        return {c.id: cri.ContainerState.Name(c.state) for c in r.containers}

    def pods(self) -> dict[str, str]:
        return {p.id: cri.PodSandboxState.Name(p.state)
                for p in self.call("ListPodSandbox", cri.ListPodSandboxRequest()).items}

    def wait_exited(self, cid: str, timeout: float = 60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            st = self.status(cid)
            if st.state == cri.CONTAINER_EXITED:
                return st
            time.sleep(0.2)
        raise AssertionError(f"container {cid} did not exit: {self.status(cid)}")

    def teardown_pod(self, pod_id: str) -> None:
        try:
            self.call("StopPodSandbox", cri.StopPodSandboxRequest(pod_sandbox_id=pod_id))
            self.call("RemovePodSandbox", cri.RemovePodSandboxRequest(pod_sandbox_id=pod_id))
        except grpc.RpcError:
            pass


# ---- the streaming exec: Kubernetes' WebSocket protocol, channel byte first ---------------------
def _connect_in_netns(netns: str, host: str, port: int, timeout: float) -> socket.socket:
    """A TCP connection made from inside a network namespace: setns(2) in a helper thread (it
    changes only the calling thread), the socket keeps the namespace it was made in."""
    import ctypes
    import threading

    out: dict = {}

    def run():
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            fd = os.open(f"/run/netns/{netns}", os.O_RDONLY)
            try:
                if libc.setns(fd, 0x40000000) != 0:  # CLONE_NEWNET
                    raise OSError(ctypes.get_errno(), "setns")
            finally:
                os.close(fd)
            out["sock"] = socket.create_connection((host, port), timeout=timeout)
        except OSError as e:
            out["error"] = e

    t = threading.Thread(target=run)
    t.start()
    t.join()
    if "error" in out:
        raise out["error"]
    return out["sock"]


def stream_exec(netns: str, url: str, stdin: bytes = b"", timeout: float = 60) -> tuple[bytes, bytes, dict]:
    """Connect to the URL that Exec returned (containerd's stream server, in its netns), speak
    v4.channel.k8s.io: frames carry a channel byte (0 stdin, 1 stdout, 2 stderr, 3 status)."""
    u = urlparse(url)
    s = _connect_in_netns(netns, u.hostname, u.port, timeout)
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall((f"GET {u.path}?{u.query} HTTP/1.1\r\nHost: {u.netloc}\r\nUpgrade: websocket\r\n"
               f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
               f"Sec-WebSocket-Protocol: v4.channel.k8s.io\r\nOrigin: http://{u.netloc}\r\n\r\n").encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(4096)
        assert chunk, f"no WebSocket upgrade: {buf!r}"
        buf += chunk
    head, buf = buf.split(b"\r\n\r\n", 1)
    assert b" 101 " in head.split(b"\r\n")[0], head

    def send(opcode: int, payload: bytes) -> None:
        mask = os.urandom(4)
        n = len(payload)
        hdr = bytes([0x80 | opcode])
        hdr += bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + struct.pack(">H", n)
        s.sendall(hdr + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))

    def read(n: int) -> bytes:
        nonlocal buf
        while len(buf) < n:
            chunk = s.recv(65536)
            if not chunk:
                raise EOFError
            buf += chunk
        out, buf = buf[:n], buf[n:]
        return out

    if stdin:
        send(2, b"\x00" + stdin)
    out = {1: b"", 2: b"", 3: b""}
    try:
        while True:
            b0, b1 = read(2)
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack(">H", read(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", read(8))[0]
            payload = read(n)
            opcode = b0 & 0x0F
            if opcode == 8:  # close
                break
            if opcode in (1, 2) and payload:
                out[payload[0]] = out.get(payload[0], b"") + payload[1:]
    except EOFError:
        pass
    finally:
        s.close()
    return out[1], out[2], json.loads(out[3] or b"{}")


# ---- the fixture -----------------------------------------------------------------------------------
def _image_tar(busybox_tar: Path, out: Path, ref: str, *changes: str) -> None:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    md = [sys.executable, "-m", "minidock"]
    args = [a for c in changes for a in ("--change", c)]
    sh(*md, "import", busybox_tar, ref, *args, env=env, check=True)
    sh(*md, "save", "-o", out, ref, env=env, check=True)
    sh(*md, "rmi", ref, env=env)


@pytest.fixture(scope="module")
def cri_node(busybox_tar, state_root, tmp_path_factory):
    for tool in ("containerd", "ctr", "runc"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (apt-get install containerd runc)")
    if not Path("/usr/lib/cni/bridge").exists():
        pytest.skip("containernetworking-plugins is not installed (/usr/lib/cni/bridge)")
    tag = uuid.uuid4().hex[:6]
    w = Path(f"/tmp/mdcri-{tag}")  # short: unix socket paths are limited to 108 bytes
    w.mkdir(mode=0o755)
    wrapper = w / "minidock-runtime"  # the worktree's code, as a binary the shim can exec
    wrapper.write_text(f"#!/bin/sh\nPYTHONPATH={REPO} exec {sys.executable} -m minidock.cli.runtime_cli \"$@\"\n")
    wrapper.chmod(0o755)
    subnet = f"10.{200 + int(tag[:2], 16) % 50}.{int(tag[2:4], 16)}"
    (w / "cni").mkdir()
    (w / "cni" / "10-mdcri.conflist").write_text(json.dumps({
        "cniVersion": "0.4.0", "name": f"mdcri-{tag}",
        "plugins": [
            {"type": "bridge", "bridge": f"mdcri{tag}", "isGateway": True, "ipMasq": False,
             "ipam": {"type": "host-local", "dataDir": str(w / "ipam"),
                      "ranges": [[{"subnet": f"{subnet}.0/24", "gateway": f"{subnet}.1"}]]}},
            {"type": "firewall", "backend": "iptables"},  # accepts pod traffic past FORWARD DROP
        ]}))
    pause = "docker.io/library/mdcri-pause:latest"
    (w / "config.toml").write_text(CONFIG.format(w=w, pause=pause, runtime=wrapper))
    netns = f"mdcri-{tag}"
    sh("ip", "netns", "add", netns, check=True)
    try:
        yield from _start_node(w, netns, subnet, busybox_tar)
    finally:
        sh("ip", "netns", "del", netns)
        umount_under(str(w))
        shutil.rmtree(w, ignore_errors=True)


def _start_node(w: Path, netns: str, subnet: str, busybox_tar: Path):
    # Docker's firewall, as on users' machines: FORWARD policy DROP, bridged traffic through iptables
    if shutil.which("modprobe"):
        sh("modprobe", "br_netfilter")
    sh("ip", "netns", "exec", netns, "iptables", "-P", "FORWARD", "DROP")
    sh("ip", "netns", "exec", netns, "ip", "link", "set", "lo", "up")
    log = open(w / "containerd.log", "w")
    # nsenter --net, not `ip netns exec`: that one remounts /sys and hides the cgroup mounts
    d = subprocess.Popen(["nsenter", f"--net=/run/netns/{netns}", "containerd", "--config", w / "config.toml"],
                         stdout=log, stderr=log, stdin=subprocess.DEVNULL)
    node = CRI(w, netns, subnet)
    try:
        ctr = ["ctr", "-a", w / "c.sock", "-n", "k8s.io"]
        for _ in range(150):
            if sh(*ctr, "version").returncode == 0:
                break
            time.sleep(0.2)
        else:
            pytest.fail(f"containerd did not start: {(w / 'containerd.log').read_text()[-2000:]}")
        # the images: busybox with a PATH; the sandbox image without one (absolute command)
        _image_tar(busybox_tar, w / "bb.tar", "mdcri-busybox:latest", "ENV PATH=/usr/sbin:/usr/bin:/sbin:/bin",
                   'CMD ["sh"]')
        _image_tar(busybox_tar, w / "pause.tar", "mdcri-pause:latest", 'CMD ["/bin/sleep", "999999"]')
        _image_tar(busybox_tar, w / "nopath.tar", "mdcri-nopath:latest", 'CMD ["sh"]')
        for t in ("bb.tar", "pause.tar", "nopath.tar"):
            r = sh(*ctr, "images", "import", w / t)
            assert r.returncode == 0, r.stderr
        node.call("Version", cri.VersionRequest())
        yield node
    finally:
        for pod in node.pods() if d.poll() is None else []:
            node.teardown_pod(pod)
        d.terminate()
        try:
            d.wait(timeout=30)
        except subprocess.TimeoutExpired:
            d.kill()
        # the shims we caused (they outlive containerd by design)
        for p in Path("/proc").iterdir():
            if p.name.isdigit():
                try:
                    if f"{w}/c.sock".encode() in (p / "cmdline").read_bytes():
                        os.kill(int(p.name), 9)
                except (OSError, ProcessLookupError):
                    pass


# ---- helpers for the steps --------------------------------------------------------------------------
LIMITS = ("if [ -f /sys/fs/cgroup/cgroup.controllers ]; then cat /sys/fs/cgroup/memory.max; "
          "cut -d' ' -f1 /sys/fs/cgroup/cpu.max; "
          "else cat /sys/fs/cgroup/memory/memory.limit_in_bytes; cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us; fi")


def _limits(node: CRI, cid: str) -> list[str]:
    code, out, err = node.exec_sync(cid, "sh", "-c", LIMITS)
    assert code == 0, err
    return out.split()


def _ns(node: CRI, cid: str, kind: str) -> str:
    code, out, err = node.exec_sync(cid, "readlink", f"/proc/self/ns/{kind}")
    assert code == 0, err
    return out.strip()


@pytest.mark.parametrize("handler", HANDLERS)
def test_pod_lifecycle_host_network(cri_node, handler):
    """The twelve steps with a host-network pod; runc is the reference."""
    node = cri_node
    pod, pod_cfg = node.run_pod(handler, f"hostnet-{handler}")
    try:
        assert node.pods()[pod] == "SANDBOX_READY"
        assert node.pod_status(pod).runtime_handler == handler
        # two containers: a ticker that ignores SIGTERM, a waiter that exits 0 on SIGTERM
        c1 = node.create(pod, pod_cfg, "ticker", ["sh", "-c", "trap '' TERM; i=0; while :; do echo tick $i; "
                                                             "i=$((i+1)); sleep 1; done"],
                         memory=64 * MiB, cpu_quota=50000)
        c2 = node.create(pod, pod_cfg, "waiter", ["sh", "-c", "trap 'echo bye; exit 0' TERM; "
                                                             "while :; do sleep 1; done"])
        assert node.containers(pod) == {c1: "CONTAINER_CREATED", c2: "CONTAINER_CREATED"}
        node.start(c1)
        node.start(c2)
        assert node.containers(pod) == {c1: "CONTAINER_RUNNING", c2: "CONTAINER_RUNNING"}
        st = node.status(c1)
        assert st.state == cri.CONTAINER_RUNNING and st.started_at > 0 and st.log_path.endswith("ticker.log")

        # the pod's network and IPC namespaces are shared; PID is per container
        assert _ns(node, c1, "net") == _ns(node, c2, "net") == node.in_netns(
            "readlink", "/proc/self/ns/net").stdout.strip()  # host network = containerd's (throwaway) netns
        assert _ns(node, c1, "ipc") == _ns(node, c2, "ipc")
        assert _ns(node, c1, "pid") != _ns(node, c2, "pid")

        # ExecSync: output, stderr and exit code
        assert node.exec_sync(c2, "sh", "-c", "echo out; echo err >&2; exit 3") == (3, "out\n", "err\n")

        # streaming Exec (stdin, stdout, stderr, exit status)
        url = node.call("Exec", cri.ExecRequest(container_id=c2, cmd=["sh", "-c", "read x; echo got $x; "
                                                                      "echo oops >&2; exit 5"],
                                                stdin=True, stdout=True, stderr=True)).url
        out, err, status = stream_exec(node.netns, url, stdin=b"hello\n")
        assert (out, err) == (b"got hello\n", b"oops\n")
        assert status.get("status") == "Failure" and status["details"]["causes"][0]["message"] == "5", status

        # the limits the container was created with, seen from inside, then updated
        assert _limits(node, c1) == [str(64 * MiB), "50000"]
        node.call("UpdateContainerResources", cri.UpdateContainerResourcesRequest(
            container_id=c1, linux=cri.LinuxContainerResources(memory_limit_in_bytes=96 * MiB, cpu_period=100000,
                                                                 cpu_quota=20000)))
        assert _limits(node, c1) == [str(96 * MiB), "20000"]
        assert node.status(c1).resources.linux.memory_limit_in_bytes == 96 * MiB

        # ReopenContainerLog: rotate the file, new lines land in a new file
        log = Path(st.log_path)
        deadline = time.monotonic() + 30
        while "tick" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert " stdout F tick 0" in log.read_text()
        log.rename(log.with_suffix(".1"))
        node.call("ReopenContainerLog", cri.ReopenContainerLogRequest(container_id=c1))
        while not (log.exists() and "tick" in log.read_text()) and time.monotonic() < deadline + 30:
            time.sleep(0.2)
        assert "tick" in log.read_text()

        # StopContainer with a grace period: the waiter leaves on SIGTERM (0), the ticker is killed (137)
        node.call("StopContainer", cri.StopContainerRequest(container_id=c2, timeout=10))
        st2 = node.status(c2)
        assert (st2.state, st2.exit_code) == (cri.CONTAINER_EXITED, 0)
        t0 = time.monotonic()
        node.call("StopContainer", cri.StopContainerRequest(container_id=c1, timeout=2))
        assert time.monotonic() - t0 >= 2  # it waited for the grace period, then killed
        st1 = node.status(c1)
        assert (st1.state, st1.exit_code) == (cri.CONTAINER_EXITED, 137)
        assert node.containers(pod) == {c1: "CONTAINER_EXITED", c2: "CONTAINER_EXITED"}
        # stopping an exited container again is fine (runtime kill answers "container not running")
        node.call("StopContainer", cri.StopContainerRequest(container_id=c1, timeout=1))

        node.call("RemoveContainer", cri.RemoveContainerRequest(container_id=c2))
        assert node.containers(pod) == {c1: "CONTAINER_EXITED"}
        node.call("StopPodSandbox", cri.StopPodSandboxRequest(pod_sandbox_id=pod))
        assert node.pods()[pod] == "SANDBOX_NOTREADY"
        node.call("RemovePodSandbox", cri.RemovePodSandboxRequest(pod_sandbox_id=pod))
        assert pod not in node.pods()
        assert node.containers(pod) == {}
    finally:
        node.teardown_pod(pod)


@pytest.mark.parametrize("handler", HANDLERS)
def test_oom_killed(cri_node, handler):
    node = cri_node
    pod, pod_cfg = node.run_pod(handler, f"oom-{handler}")
    try:
        # dd's 128 MiB buffer is written in full by the read from /dev/zero: over the 32 MiB limit
        c = node.create(pod, pod_cfg, "hog", ["dd", "if=/dev/zero", "of=/dev/null", "bs=128M", "count=1"],
                        memory=32 * MiB)
        node.start(c)
        st = node.wait_exited(c)
        # the shim reports the OOM event and the exit separately; containerd sets the reason from
        # whichever comes, so give the OOM event a moment if the exit won the race
        deadline = time.monotonic() + 15
        while st.reason != "OOMKilled" and time.monotonic() < deadline:
            time.sleep(0.2)
            st = node.status(c)
        assert (st.exit_code, st.reason) == (137, "OOMKilled")
        assert node.containers(pod) == {c: "CONTAINER_EXITED"}
    finally:
        node.teardown_pod(pod)


@pytest.mark.parametrize("handler", HANDLERS)
def test_image_without_path(cri_node, handler):
    """An image whose config has no PATH: containerd puts its default PATH in the spec, so a bare
    command is found by both runtimes (without any PATH in the spec both refuse it:
    test_oci_runtime.py::test_no_path_in_env_like_runc)."""
    node = cri_node
    pod, pod_cfg = node.run_pod(handler, f"nopath-{handler}")
    try:
        c = node.create(pod, pod_cfg, "bare", ["sh", "-c", "echo $PATH; exit 4"], image="mdcri-nopath:latest")
        node.start(c)
        st = node.wait_exited(c)
        assert st.exit_code == 4
        assert "stdout F /usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" in Path(st.log_path).read_text()
    finally:
        node.teardown_pod(pod)


@pytest.mark.parametrize("handler", HANDLERS)
def test_pod_network_bridge(cri_node, handler):
    """A pod network from containernetworking-plugins (bridge + host-local + firewall) in the
    throwaway namespace: both containers see the pod's address, the node reaches a server in it
    through Docker's FORWARD DROP firewall."""
    node = cri_node
    pod, pod_cfg = node.run_pod(handler, f"podnet-{handler}", host_network=False)
    try:
        ip = node.pod_status(pod).network.ip
        assert ip.startswith(node.subnet + "."), ip
        web = node.create(pod, pod_cfg, "web", ["sh", "-c", "mkdir -p /www; echo hello-from-pod > /www/index.html; "
                                                           "exec httpd -f -p 8080 -h /www"])
        side = node.create(pod, pod_cfg, "side", ["sleep", "3600"])
        node.start(web)
        node.start(side)
        for c in (web, side):
            code, out, _ = node.exec_sync(c, "ip", "-4", "-o", "addr", "show", "eth0")
            assert code == 0 and f" {ip}/24 " in out
        assert _ns(node, web, "net") == _ns(node, side, "net") != node.in_netns(
            "readlink", "/proc/self/ns/net").stdout.strip()
        for _ in range(50):  # the server is up once it answers
            r = node.in_netns("timeout", "5", "busybox", "wget", "-q", "-O", "-", f"http://{ip}:8080/")
            if r.returncode == 0:
                break
            time.sleep(0.2)
        assert r.stdout == "hello-from-pod\n", r.stderr
        code, out, _ = node.exec_sync(side, "timeout", "5", "wget", "-q", "-O", "-", "http://127.0.0.1:8080/")
        assert (code, out) == (0, "hello-from-pod\n")  # the sidecar shares the pod's loopback
        for c in (web, side):
            node.call("StopContainer", cri.StopContainerRequest(container_id=c, timeout=2))
        node.call("StopPodSandbox", cri.StopPodSandboxRequest(pod_sandbox_id=pod))
        node.call("RemovePodSandbox", cri.RemovePodSandboxRequest(pod_sandbox_id=pod))
        assert pod not in node.pods()
    finally:
        node.teardown_pod(pod)


def test_systemd_cgroup_driver_minidock(cri_node):
    """Handler `minidock-systemd` (SystemdCgroup = true: the shim passes --systemd-cgroup, and for
    a `.slice` parent containerd gives cgroupsPath as slice:prefix:name). minidock-runtime does not
    talk to systemd: it maps the path to the cgroupfs path slice/prefix-name.scope and applies the
    limits there. (runc, the reference, needs a running systemd, which this machine lacks.) The
    slice is `minidock.slice` at the hierarchies' root: removed again at the end."""
    node = cri_node
    pod, pod_cfg = node.run_pod("minidock-systemd", "sysd", cgroup_parent="minidock.slice")
    try:
        c = node.create(pod, pod_cfg, "c", ["sleep", "3600"], memory=48 * MiB)
        node.start(c)
        assert _limits(node, c)[0] == str(48 * MiB)
        cgs = [json.loads(p.read_text())["cgroup"] for p in (node.w / "minidock").rglob("state.json")]
        assert f"minidock.slice:cri-containerd:{c}" in cgs, cgs
        code, out, _ = node.exec_sync(c, "cat", "/proc/self/cgroup")
        assert f"/minidock.slice/cri-containerd-{c}.scope" in out
    finally:
        node.teardown_pod(pod)
        for mp in _cgroup_mounts():
            d = Path(mp, "minidock.slice")
            for sub in sorted(d.rglob("*"), key=lambda p: len(str(p)), reverse=True) if d.is_dir() else []:
                if sub.is_dir():
                    sub.rmdir()
            if d.is_dir():
                d.rmdir()


def _cgroup_mounts() -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [ln.split()[4] for ln in f if ln.split()[ln.split().index("-") + 1] in ("cgroup", "cgroup2")]
