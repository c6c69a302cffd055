"""Bridge networking, for real, inside a throwaway network namespace made for this module.

Every minidock command here runs as `nsenter --net=/run/netns/<ns> python -m minidock ...`
(nsenter, not `ip netns exec`: the latter remounts /sys and hides the cgroup hierarchies). The
HTTP clients run in the same namespace. Nothing reaches the host's links, routes or rules; the
namespace and all in it are deleted at the end, whatever happened.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.netns import make_netns


@pytest.fixture(scope="module", params=["plain", "docker-firewall"])
def netns(state_root, request):
    """Every test here runs twice: in a bare namespace, and behind the firewall Docker leaves on a
    host (FORWARD policy DROP, a DOCKER-USER chain jumped to first, br_netfilter on)."""
    yield from _make_netns(docker_firewall=request.param == "docker-firewall")


def _make_netns(docker_firewall: bool = False):
    # a new namespace inherits the host's ip_forward; start from 0 to see minidock set and restore it
    yield from make_netns("mdtest", docker_firewall=docker_firewall, ip_forward="0")


@pytest.fixture
def mdn(md_env, netns):
    return _runner(md_env, netns)


def _runner(md_env, netns, **extra_env):
    """Like md(), inside the test namespace, with the bridge as the default network."""

    def run(*args, check=False, timeout=60):
        env = dict(md_env, MINIDOCK_DEFAULT_NETWORK="bridge", **extra_env)
        return subprocess.run(["nsenter", f"--net=/run/netns/{netns}", sys.executable, "-m", "minidock",
                               *map(str, args)], capture_output=True, text=True, timeout=timeout, env=env,
                              check=check)

    return run


def in_ns(netns, *cmd) -> subprocess.CompletedProcess:
    return subprocess.run(["nsenter", f"--net=/run/netns/{netns}", *cmd], capture_output=True, text=True,
                          timeout=30)


def http_get(netns, url) -> tuple[int, str]:
    code = (f"import urllib.request, urllib.error, sys\n"
            f"for i in range(50):\n"
            f"    try:\n"
            f"        r = urllib.request.urlopen({url!r}, timeout=2)\n"
            f"        print(r.status); print(r.read().decode()); break\n"
            f"    except urllib.error.HTTPError as e:\n"
            f"        print(e.code); break\n"
            f"    except OSError as e:\n"
            f"        import time; time.sleep(0.1); err = e\n"
            f"else:\n"
            f"    print(0); print(err)\n")
    r = in_ns(netns, sys.executable, "-c", code)
    status, _, body = r.stdout.partition("\n")
    return int(status or 0), body


def links(netns) -> list[str]:
    out = in_ns(netns, "ip", "-o", "link").stdout
    return [line.split(":")[1].strip().split("@")[0] for line in out.splitlines()]


def veths(netns) -> list[str]:
    """Our veths in the namespace, after giving the kernel a moment: a container's namespace is
    destroyed asynchronously after its last process exits, and its veth pair with it."""
    for _ in range(50):
        found = [n for n in links(netns) if n.startswith("md") and n != "minidock0"]
        if not found:
            break
        time.sleep(0.1)
    return found


def inspect(mdn, ref, fmt):
    return mdn("inspect", "-f", fmt, ref, check=True).stdout.strip()


def test_network_none_has_only_loopback(mdn, busybox):
    r = mdn("run", "--rm", "--network", "none", busybox, "ip", "-o", "link")
    assert r.returncode == 0, r.stderr
    names = [line.split(":")[1].strip() for line in r.stdout.splitlines()]
    assert names == ["lo"]


def test_unknown_network_is_refused_before_creating_anything(mdn, busybox):
    before = mdn("ps", "-aq").stdout
    r = mdn("run", "--rm", "--network", "nosuch", busybox, "true")
    assert r.returncode == 125 and "network nosuch not found" in r.stderr
    assert mdn("ps", "-aq").stdout == before
    r = mdn("network", "create", "bridge")
    assert r.returncode == 125 and "network with name bridge already exists" in r.stderr
    r = mdn("network", "rm", "bridge")
    assert "bridge is a pre-defined network and cannot be removed" in r.stderr


def test_default_bridge_gives_address_route_and_cleans_up(mdn, busybox, netns):
    r = mdn("run", "--rm", busybox, "sh", "-c", "ip -o -4 addr show eth0; ip route; cat /etc/hosts; hostname")
    assert r.returncode == 0, r.stderr
    assert " eth0    inet 172." in r.stdout or "eth0" in r.stdout and "inet 172." in r.stdout
    assert "default via 172." in r.stdout
    hostname = r.stdout.split()[-1]
    assert f"\t{hostname}" in r.stdout  # its own address and name in /etc/hosts
    assert "minidock0" in links(netns)
    assert veths(netns) == []  # the veth went with it


def test_user_network_resolves_names_and_aliases(mdn, busybox, netns):
    assert mdn("network", "create", "appnet").returncode == 0
    try:
        srv = mdn("run", "-d", "--name", "srv", "--network", "appnet", "--network-alias", "web", busybox,
                  "httpd", "-f", "-p", "80", "-h", "/etc")
        assert srv.returncode == 0, srv.stderr
        for host in ("srv", "web"):
            r = mdn("run", "--rm", "--network", "appnet", busybox, "wget", "-qO-", f"http://{host}/hostname")
            assert r.returncode == 0, r.stderr
            assert r.stdout.strip() == inspect(mdn, "srv", "{{.Config.Hostname}}")
        # a container started later is in the hosts file of the one already running
        late = mdn("run", "-d", "--name", "late", "--network", "appnet", busybox, "sleep", "60")
        assert late.returncode == 0, late.stderr
        hosts = mdn("exec", "srv", "cat", "/etc/hosts").stdout
        ip = inspect(mdn, "late", "{{.NetworkSettings.Networks.appnet.IPAddress}}")
        assert f"{ip}\tlate" in hosts
        r = mdn("exec", "srv", "ping", "-c", "1", "-W", "2", "late")
        assert r.returncode == 0, r.stdout + r.stderr
        # a network with containers cannot go
        r = mdn("network", "rm", "appnet")
        assert r.returncode != 0 and "has active endpoints" in r.stderr
        mdn("rm", "-f", "late", check=True)
        assert "late" not in mdn("exec", "srv", "cat", "/etc/hosts").stdout
    finally:
        mdn("rm", "-f", "srv", "late")
    assert mdn("network", "rm", "appnet").returncode == 0
    assert not [n for n in links(netns) if n.startswith("br-")]


def test_network_connect_and_disconnect_a_running_container(mdn, busybox):
    assert mdn("network", "create", "side").returncode == 0
    try:
        mdn("run", "-d", "--name", "c1", busybox, "sleep", "60", check=True)
        mdn("run", "-d", "--name", "c2", "--network", "side", busybox, "sleep", "60", check=True)
        assert mdn("exec", "c1", "ping", "-c1", "-W1", "c2").returncode != 0  # not on the same network
        r = mdn("network", "connect", "--alias", "one", "side", "c1")
        assert r.returncode == 0, r.stderr
        assert "eth1" in mdn("exec", "c1", "ip", "-o", "link").stdout
        for name in ("c2", "c1"):  # each sees the other, and itself, by name
            other = {"c1": "c2", "c2": "c1"}[name]
            r = mdn("exec", name, "ping", "-c1", "-W2", other)
            assert r.returncode == 0, r.stdout + r.stderr
        assert mdn("exec", "c2", "ping", "-c1", "-W2", "one").returncode == 0  # the alias
        r = mdn("network", "disconnect", "side", "c1")
        assert r.returncode == 0, r.stderr
        assert "eth1" not in mdn("exec", "c1", "ip", "-o", "link").stdout
        hosts = mdn("exec", "c2", "cat", "/etc/hosts").stdout  # (a name, not a substring: IDs are hex)
        assert not any("c1" in line.split()[1:] for line in hosts.splitlines()), hosts
        assert mdn("network", "inspect", "-f", "{{json .Containers}}", "side").stdout.count('"Name"') == 1
    finally:
        mdn("rm", "-f", "c1", "c2")
        mdn("network", "rm", "side")


def test_published_port_answers_from_the_host(mdn, busybox, netns):
    r = mdn("run", "-d", "--name", "pub", "-p", "18080:80", busybox, "httpd", "-f", "-p", "80", "-h", "/etc")
    assert r.returncode == 0, r.stderr
    try:
        hostname = inspect(mdn, "pub", "{{.Config.Hostname}}")
        status, body = http_get(netns, "http://127.0.0.1:18080/hostname")
        assert (status, body.strip()) == (200, hostname)
        ip = inspect(mdn, "pub", "{{.NetworkSettings.IPAddress}}")
        status, body = http_get(netns, f"http://{ip}:80/hostname")
        assert (status, body.strip()) == (200, hostname)
        # hairpin: another container, and the container itself, through the published port
        gw = inspect(mdn, "pub", "{{.NetworkSettings.Gateway}}")
        r = mdn("run", "--rm", busybox, "wget", "-qO-", f"http://{gw}:18080/hostname")
        assert (r.returncode, r.stdout.strip()) == (0, hostname), r.stderr
        r = mdn("exec", "pub", "wget", "-qO-", f"http://{gw}:18080/hostname")
        assert (r.returncode, r.stdout.strip()) == (0, hostname), r.stderr
        # IPv4 and IPv6, as Docker 28 shows them (the namespace has IPv6: dual-stack bridge)
        assert mdn("port", "pub").stdout.strip() == "80/tcp -> 0.0.0.0:18080\n80/tcp -> [::]:18080"
        assert mdn("port", "pub", "80").stdout.strip() == "0.0.0.0:18080\n[::]:18080"
        assert "0.0.0.0:18080->80/tcp, [::]:18080->80/tcp" in mdn("ps").stdout
        # the same host port again: a clear error before the container starts
        r = mdn("run", "--rm", "-p", "18080:80", busybox, "true")
        assert r.returncode == 125
        assert "Bind for 0.0.0.0:18080 failed: port is already allocated" in r.stderr
        mdn("stop", "-t", "0", "pub", check=True)  # a stopped container shows no address or ports
        assert inspect(mdn, "pub", "{{.NetworkSettings.IPAddress}}|{{json .NetworkSettings.Ports}}") == "|{}"
        assert "18080" not in mdn("ps", "-a").stdout
    finally:
        mdn("rm", "-f", "pub")
    assert in_ns(netns, "nft", "list", "map", "ip", "minidock", "ports").stdout.count("18080") == 0


def test_publish_all_uses_random_ports_for_exposed_ones(mdn, busybox, netns):
    r = mdn("run", "-d", "--name", "pall", "-P", "--expose", "80", busybox, "httpd", "-f", "-p", "80", "-h", "/etc")
    assert r.returncode == 0, r.stderr
    try:
        line = mdn("port", "pall", "80/tcp").stdout.strip()
        port = int(line.rsplit(":", 1)[1])
        assert port >= 1024
        status, _ = http_get(netns, f"http://127.0.0.1:{port}/hostname")
        assert status == 200
    finally:
        mdn("rm", "-f", "pall")


def test_concurrent_runs_never_share_an_address(mdn, busybox):
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda i: mdn("run", "-d", busybox, "sleep", "60"), range(4)))
    ids = [r.stdout.strip() for r in results if r.returncode == 0]
    try:
        assert len(ids) == 4, [r.stderr for r in results]
        ips = [inspect(mdn, cid, "{{.NetworkSettings.IPAddress}}") for cid in ids]
        macs = [inspect(mdn, cid, "{{.NetworkSettings.MacAddress}}") for cid in ids]
        assert len(set(ips)) == 4 and all(ips), ips
        assert len(set(macs)) == 4
    finally:
        mdn("rm", "-f", *ids)


def test_container_network_mode_shares_the_namespace(mdn, busybox):
    r = mdn("run", "-d", "--name", "owner", busybox, "httpd", "-f", "-p", "80", "-h", "/etc")
    assert r.returncode == 0, r.stderr
    try:
        r = mdn("run", "--rm", "--network", "container:owner", busybox, "wget", "-qO-", "http://127.0.0.1/hostname")
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip() == inspect(mdn, "owner", "{{.Config.Hostname}}")
    finally:
        mdn("rm", "-f", "owner")


def test_add_host_dns_and_static_ip(mdn, busybox):
    assert mdn("network", "create", "--subnet", "10.123.0.0/24", "fixed").returncode == 0
    try:
        r = mdn("run", "--rm", "--network", "fixed", "--ip", "10.123.0.50", "--add-host", "db:10.1.2.3",
                "--add-host", "gw:host-gateway", "--dns", "10.9.9.9", busybox,
                "sh", "-c", "ip -o -4 addr show eth0; cat /etc/hosts /etc/resolv.conf")
        assert r.returncode == 0, r.stderr
        assert "inet 10.123.0.50/24" in r.stdout
        assert "10.1.2.3\tdb" in r.stdout and "10.123.0.1\tgw" in r.stdout
        assert "nameserver 10.9.9.9" in r.stdout
        r = mdn("run", "--rm", "--ip", "172.30.9.9", busybox, "true")
        assert r.returncode == 125 and "user configured subnets" in r.stderr
    finally:
        mdn("network", "rm", "fixed")


def test_nothing_left_after_system_prune(mdn, busybox, netns):
    mdn("system", "prune", "-f", check=True)
    assert in_ns(netns, "cat", "/proc/sys/net/ipv4/ip_forward").stdout.strip() == "0"
    r = mdn("run", "-d", "-p", "18081:80", busybox, "sleep", "60")
    assert r.returncode == 0, r.stderr
    cid = r.stdout.strip()
    assert in_ns(netns, "cat", "/proc/sys/net/ipv4/ip_forward").stdout.strip() == "1"  # outbound NAT needs it
    # simulate a crash: kill the monitor and the container, leaving links and rules behind
    state = json.loads(mdn("inspect", cid).stdout)[0]["State"]
    os.kill(state["MonitorPid"], 9)
    os.kill(state["Pid"], 9)
    time.sleep(0.3)
    r = mdn("system", "prune", "-f")
    assert r.returncode == 0, r.stderr
    assert veths(netns) == []
    assert links(netns) == ["lo"]
    assert in_ns(netns, "ip", "-o", "-4", "addr").stdout.count("inet ") == 1  # 127.0.0.1 only
    assert in_ns(netns, "ip", "-o", "-6", "addr").stdout.count("inet6 ") == 1  # ::1 only
    assert in_ns(netns, "ip", "route").stdout.strip() == ""
    assert in_ns(netns, "ip", "-6", "route").stdout.strip() == ""
    # (the docker-firewall variant has the host's iptables-nft table: only minidock's must be gone)
    assert set(in_ns(netns, "nft", "list", "tables").stdout.split("\n")) <= {"", "table ip filter", "table ip6 filter"}
    assert "-i minidock0" not in in_ns(netns, "iptables-save").stdout  # accept rules gone too
    assert "-i minidock0" not in in_ns(netns, "ip6tables-save").stdout
    assert in_ns(netns, "cat", "/proc/sys/net/ipv4/ip_forward").stdout.strip() == "0"  # restored
    assert in_ns(netns, "cat", "/proc/sys/net/ipv6/conf/all/forwarding").stdout.strip() == "0"


@pytest.fixture
def iptables_netns(state_root, netns):
    # (after the module's namespace: its state is cleaned by then, one network namespace at a time)
    yield from _make_netns()


def test_iptables_fallback_publishes_and_cleans_up(md_env, busybox, iptables_netns):
    ns = iptables_netns
    mdi = _runner(md_env, ns, MINIDOCK_NAT="iptables")
    mdi("system", "prune", "-f")
    r = mdi("run", "-d", "--name", "ipt", "-p", "18082:80", busybox, "httpd", "-f", "-p", "80", "-h", "/etc")
    assert r.returncode == 0, r.stderr
    try:
        rules = in_ns(ns, "iptables", "-t", "nat", "-S", "MINIDOCK-DNAT").stdout
        assert "--dport 18082" in rules and in_ns(ns, "nft", "list", "tables").stdout.count("minidock") == 0
        status, body = http_get(ns, "http://127.0.0.1:18082/hostname")
        assert (status, body.strip()) == (200, inspect(mdi, "ipt", "{{.Config.Hostname}}"))
    finally:
        mdi("rm", "-f", "ipt")
    assert "--dport 18082" not in in_ns(ns, "iptables", "-t", "nat", "-S", "MINIDOCK-DNAT").stdout
    assert mdi("system", "prune", "-f").returncode == 0
    assert "MINIDOCK" not in in_ns(ns, "iptables-save").stdout


def test_a_port_a_host_process_listens_on_is_refused(mdn, busybox, netns):
    """Not only minidock's own reservations: a host service on the port would be hijacked by the
    DNAT rule, so it is a clear error before anything is created (Docker's proxy fails the same)."""
    listener = subprocess.Popen(["nsenter", f"--net=/run/netns/{netns}", sys.executable, "-c",
                                 "import socket, time\ns = socket.socket()\ns.bind(('0.0.0.0', 18082))\n"
                                 "s.listen()\nprint('up', flush=True)\ntime.sleep(60)"],
                                stdout=subprocess.PIPE, text=True)
    try:
        assert listener.stdout.readline().strip() == "up"
        before = links(netns)
        r = mdn("run", "--rm", "-p", "18082:80", busybox, "true")
        assert r.returncode == 125 and "Bind for 0.0.0.0:18082 failed: port is already allocated" in r.stderr
        assert links(netns) == before and mdn("ps", "-aq").stdout == ""
    finally:
        listener.kill()
        listener.wait()
