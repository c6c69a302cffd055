"""Published ports over IPv6 (issue 16), for real, in throwaway network namespaces.

The test namespace stands for the host; a second namespace, joined to it by a veth pair with
IPv6 addresses, stands for another machine on the host's network. Every test runs twice: in a
bare namespace, and behind the firewall dockerd 28 leaves (FORWARD policy DROP in iptables *and*
ip6tables, DOCKER-USER, br_netfilter on for both families: tests/netns.py).

What a Docker 28 user sees for `-p 8080:80` (`0.0.0.0:8080->80/tcp, [::]:8080->80/tcp`), and a
real TCP connection to the host's IPv6 address reaching a busybox httpd in the container, from
the host itself (output hook) and from the other machine (prerouting, then forwarded through
the FORWARD DROP policy); conflicts refused per address family; nothing left after clean-up.
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
import sys
import uuid

import pytest

from tests.integration.test_network import _runner, http_get, in_ns, inspect
from tests.netns import make_netns

HOST6 = "fd00:beef:16::1"  # the host's own IPv6 address (on the veth to the "other machine")
PEER6 = "fd00:beef:16::2"


@pytest.fixture(scope="module", params=["plain", "docker-firewall"])
def ns(state_root, request):
    yield from make_netns("md6", docker_firewall=request.param == "docker-firewall", ip_forward="0")


@pytest.fixture(scope="module")
def peer(ns):
    """Another machine on the host's network: a namespace at PEER6, its default route via HOST6."""
    name = f"md6peer-{uuid.uuid4().hex[:8]}"
    host_end = f"v6p{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        for cmd in (["ip", "-n", ns, "link", "add", host_end, "type", "veth", "peer", "name", "eth0", "netns", name],
                    ["ip", "-n", ns, "addr", "add", f"{HOST6}/64", "dev", host_end, "nodad"],
                    ["ip", "-n", ns, "link", "set", host_end, "up"],
                    ["ip", "-n", name, "link", "set", "lo", "up"],
                    ["ip", "-n", name, "addr", "add", f"{PEER6}/64", "dev", "eth0", "nodad"],
                    ["ip", "-n", name, "link", "set", "eth0", "up"],
                    ["ip", "-n", name, "-6", "route", "add", "default", "via", HOST6]):
            subprocess.run(cmd, check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=True)  # (the veth pair goes with it)


@pytest.fixture
def mdn(md_env, ns):
    return _runner(md_env, ns)


def _url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}/hostname"


def _get(netns: str, url: str) -> tuple[int, str]:
    status, body = http_get(netns, url)
    return status, body.strip()


def _connect_error(netns: str, host: str, port: int) -> str:
    """How a TCP connection attempt ends, from inside ``netns``: "ok", "refused" or "timeout"."""
    code = (f"import socket\ns = socket.socket(socket.AF_INET6)\ns.settimeout(3)\n"
            f"try:\n    s.connect(({host!r}, {port})); print('ok')\n"
            f"except ConnectionRefusedError:\n    print('refused')\nexcept OSError:\n    print('timeout')\n")
    return in_ns(netns, sys.executable, "-c", code).stdout.strip()


def _v6_leftovers(netns: str) -> dict:
    return {"table": in_ns(netns, "nft", "list", "table", "ip6", "minidock").returncode == 0,
            "addrs": [a for a in in_ns(netns, "ip", "-o", "-6", "addr").stdout.splitlines()
                      if "scope global" in a and HOST6 not in a],
            "rules": [r for r in in_ns(netns, "ip6tables-save").stdout.splitlines() if "minidock0" in r or " br-" in r],
            "forwarding": in_ns(netns, "cat", "/proc/sys/net/ipv6/conf/all/forwarding").stdout.strip()}


def test_published_port_answers_over_ipv6(mdn, busybox, ns, peer):
    r = mdn("run", "-d", "--name", "web6", "-p", "18480:80", busybox, "httpd", "-f", "-p", "80", "-h", "/etc")
    assert r.returncode == 0, r.stderr
    try:
        hostname = inspect(mdn, "web6", "{{.Config.Hostname}}")
        # what Docker 28 shows
        assert mdn("port", "web6").stdout.splitlines() == ["80/tcp -> 0.0.0.0:18480", "80/tcp -> [::]:18480"]
        assert "0.0.0.0:18480->80/tcp, [::]:18480->80/tcp" in mdn("ps").stdout
        ports = json.loads(inspect(mdn, "web6", "{{json .NetworkSettings.Ports}}"))
        assert ports == {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "18480"}, {"HostIp": "::", "HostPort": "18480"}]}
        # a dual-stack default bridge: the container's IPv6 address, in the network's ULA subnet
        net = json.loads(mdn("network", "inspect", "bridge").stdout)[0]
        assert net["EnableIPv6"] is True and len(net["IPAM"]["Config"]) == 2
        sub6 = ipaddress.IPv6Network(net["IPAM"]["Config"][1]["Subnet"])
        assert sub6.prefixlen == 64 and sub6.network_address.packed[0] == 0xfd  # RFC 4193 ULA
        ip6 = inspect(mdn, "web6", "{{.NetworkSettings.GlobalIPv6Address}}")
        assert ipaddress.IPv6Address(ip6) in sub6
        assert inspect(mdn, "web6", "{{.NetworkSettings.GlobalIPv6PrefixLen}}") == "64"
        assert inspect(mdn, "web6", "{{.NetworkSettings.IPv6Gateway}}") == net["IPAM"]["Config"][1]["Gateway"]
        assert inspect(mdn, "web6", "{{.NetworkSettings.Networks.bridge.GlobalIPv6Address}}") == ip6
        assert f"{ip6}\t{hostname}" in mdn("exec", "web6", "cat", "/etc/hosts").stdout
        # a real TCP connection to the host's IPv6 address reaches the container's httpd:
        # from the host itself (nat output hook) ...
        assert _get(ns, _url(HOST6, 18480)) == (200, hostname)
        # ... and from another machine (prerouting DNAT, then forwarded: FORWARD DROP in the
        # docker-firewall variant, where minidock's accept rules in ip6tables let it through)
        assert _get(peer, _url(HOST6, 18480)) == (200, hostname)
        # the container's own address, and IPv4 as before
        assert _get(ns, _url(ip6, 80)) == (200, hostname)
        assert _get(ns, "http://127.0.0.1:18480/hostname") == (200, hostname)
        # ::1 cannot be NATed into a bridge: refused at once (a client falls back to 127.0.0.1),
        # never a connection left hanging
        assert _connect_error(ns, "::1", 18480) == "refused"
        # the container reaches out over IPv6 too (masqueraded to the host's address)
        assert mdn("exec", "web6", "ping", "-6", "-c1", "-W3", PEER6).returncode == 0
        elems = in_ns(ns, "nft", "list", "map", "ip6", "minidock", "ports").stdout
        assert f"tcp . 18480 : {ip6} . 80" in elems
    finally:
        mdn("rm", "-f", "web6")
    assert "18480" not in in_ns(ns, "nft", "list", "map", "ip6", "minidock", "ports").stdout


def test_port_conflicts_are_per_address_family(mdn, busybox, ns):
    mdn("run", "-d", "--name", "only6", "-p", "[::]:18481:80", busybox, "sleep", "60", check=True)
    try:
        assert mdn("port", "only6").stdout.strip() == "80/tcp -> [::]:18481"
        # the same port on every address: IPv6 is taken -> Docker's message, nothing made
        before = mdn("ps", "-aq").stdout
        r = mdn("run", "--rm", "-p", "18481:80", busybox, "true")
        assert r.returncode == 125, r.stderr
        assert "Bind for :::18481 failed: port is already allocated" in r.stderr
        assert mdn("ps", "-aq").stdout == before
        # IPv4 only: free
        mdn("run", "-d", "--name", "only4", "-p", "0.0.0.0:18481:80", busybox, "sleep", "60", check=True)
        assert mdn("port", "only4").stdout.strip() == "80/tcp -> 0.0.0.0:18481"
        assert mdn("run", "--rm", "-p", "[::]:18481:80", busybox, "true").returncode == 125
        # a host address publishes on that family only
        mdn("run", "-d", "--name", "lo4", "-p", "127.0.0.1:18482:80", busybox, "sleep", "60", check=True)
        assert mdn("port", "lo4").stdout.strip() == "80/tcp -> 127.0.0.1:18482"
        # ::1 cannot be NATed: a clear error instead of a port that never answers
        r = mdn("run", "--rm", "-p", "[::1]:18483:80", busybox, "true")
        assert r.returncode == 125 and "IPv6 loopback" in r.stderr, r.stderr
        # -P: one random port, the same for IPv4 and IPv6 (as Docker allocates it)
        mdn("run", "-d", "--name", "pall6", "-P", "--expose", "80", busybox, "sleep", "60", check=True)
        lines = mdn("port", "pall6", "80").stdout.split()
        assert len(lines) == 2 and lines[0].startswith("0.0.0.0:") and lines[1].startswith("[::]:")
        assert lines[0].rsplit(":", 1)[1] == lines[1].rsplit(":", 1)[1]
    finally:
        mdn("rm", "-f", "only6", "only4", "lo4", "pall6")


def test_a_host_process_on_the_ipv6_port_is_refused(mdn, busybox, ns):
    code = ("import socket, time\ns = socket.socket(socket.AF_INET6)\n"
            "s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)\ns.bind(('::', 18484))\ns.listen()\n"
            "print('up', flush=True)\ntime.sleep(60)")
    listener = subprocess.Popen(["nsenter", f"--net=/run/netns/{ns}", sys.executable, "-c", code],
                                stdout=subprocess.PIPE, text=True)
    try:
        assert listener.stdout.readline().strip() == "up"
        r = mdn("run", "--rm", "-p", "18484:80", busybox, "true")
        assert r.returncode == 125 and "Bind for :::18484 failed: port is already allocated" in r.stderr
        # its IPv4 twin is free (the listener is IPv6-only)
        r = mdn("run", "--rm", "-p", "0.0.0.0:18484:80", busybox, "true")
        assert r.returncode == 0, r.stderr
    finally:
        listener.kill()
        listener.wait()


def test_user_network_with_ipv6_subnet_and_ip6(mdn, busybox, ns, peer):
    r = mdn("network", "create", "--ipv6", "--subnet", "10.216.0.0/24", "--subnet", "fd00:216::/64", "v6net")
    assert r.returncode == 0, r.stderr
    try:
        cfg = json.loads(mdn("network", "inspect", "-f", "{{json .IPAM.Config}}", "v6net").stdout)
        assert cfg == [{"Subnet": "10.216.0.0/24", "Gateway": "10.216.0.1"},
                       {"Subnet": "fd00:216::/64", "Gateway": "fd00:216::1"}]
        r = mdn("run", "-d", "--name", "s6", "--network", "v6net", "--ip6", "fd00:216::50", "-p", "18485:80",
                busybox, "httpd", "-f", "-p", "80", "-h", "/etc")
        assert r.returncode == 0, r.stderr
        hostname = inspect(mdn, "s6", "{{.Config.Hostname}}")
        assert inspect(mdn, "s6", "{{.NetworkSettings.Networks.v6net.GlobalIPv6Address}}") == "fd00:216::50"
        eps = json.loads(mdn("network", "inspect", "-f", "{{json .Containers}}", "v6net").stdout)
        assert [e["IPv6Address"] for e in eps.values()] == ["fd00:216::50/64"]
        assert _get(peer, _url(HOST6, 18485)) == (200, hostname)
        # a peer knows it by name at both addresses, and reaches it over IPv6
        r = mdn("run", "--rm", "--network", "v6net", busybox, "sh", "-c",
                "grep s6 /etc/hosts; timeout 10 wget -qO- http://[fd00:216::50]/hostname")
        assert r.returncode == 0, r.stderr
        assert "10.216.0.2\ts6" in r.stdout and "fd00:216::50\ts6" in r.stdout and hostname in r.stdout
        # --ip6 outside the subnet, or taken: refused
        r = mdn("run", "--rm", "--network", "v6net", "--ip6", "fd00:217::5", busybox, "true")
        assert r.returncode == 125, r.stderr
        assert "Invalid address fd00:217::5: It does not belong to any of this network's subnets" in r.stderr
        r = mdn("run", "--rm", "--network", "v6net", "--ip6", "fd00:216::50", busybox, "true")
        assert r.returncode == 125 and "Address already in use" in r.stderr
        # a restart keeps the address; `network connect --ip6` plugs a running container in
        mdn("restart", "-t", "0", "s6", check=True)
        assert inspect(mdn, "s6", "{{.NetworkSettings.Networks.v6net.GlobalIPv6Address}}") == "fd00:216::50"
        mdn("run", "-d", "--name", "late6", busybox, "sleep", "60", check=True)
        r = mdn("network", "connect", "--ip6", "fd00:216::60", "v6net", "late6")
        assert r.returncode == 0, r.stderr
        assert "inet6 fd00:216::60/64" in mdn("exec", "late6", "ip", "-6", "addr", "show", "eth1").stdout
        assert mdn("exec", "late6", "ping", "-6", "-c1", "-W3", "fd00:216::50").returncode == 0
    finally:
        mdn("rm", "-f", "s6", "late6")
        mdn("network", "rm", "v6net")


def test_ipv4_only_network(mdn, busybox, ns):
    assert mdn("network", "create", "--ipv6=false", "v4net").returncode == 0
    try:
        assert inspect(mdn, "v4net", "{{.EnableIPv6}}") == "false"
        r = mdn("run", "-d", "--name", "c4", "--network", "v4net", "-p", "18486:80", busybox, "sleep", "60")
        assert r.returncode == 0, r.stderr
        assert mdn("port", "c4").stdout.strip() == "80/tcp -> 0.0.0.0:18486"  # no [::]: no proxy to fake it
        assert inspect(mdn, "c4", "{{.NetworkSettings.Networks.v4net.GlobalIPv6Address}}") == ""
        assert "inet6" not in mdn("exec", "c4", "ip", "-6", "-o", "addr", "show", "scope", "global").stdout
        r = mdn("run", "--rm", "--network", "v4net", "-p", "[::]:18487:80", busybox, "true")
        assert r.returncode == 125 and "has no IPv6 address" in r.stderr
        r = mdn("run", "--rm", "--network", "v4net", "--ip6", "fd00:1::5", busybox, "true")
        assert r.returncode == 125 and "has no IPv6 subnet" in r.stderr
    finally:
        mdn("rm", "-f", "c4")
        mdn("network", "rm", "v4net")


def test_nothing_of_ipv6_left_after_clean_up(mdn, busybox, ns):
    r = mdn("run", "-d", "-p", "18488:80", busybox, "sleep", "60")
    assert r.returncode == 0, r.stderr
    assert _v6_leftovers(ns)["forwarding"] == "1"
    mdn("rm", "-f", r.stdout.strip(), check=True)
    mdn("system", "prune", "-f", check=True)
    assert _v6_leftovers(ns) == {"table": False, "addrs": [], "rules": [], "forwarding": "0"}


def test_no_ipv6_on_a_host_without_it(mdn, busybox, ns, peer):
    """IPv6 disabled on the host (disable_ipv6=1): bridges stay IPv4-only, -p as before.
    (Last in the module: disabling IPv6 drops every IPv6 address, HOST6 is put back after.)"""
    mdn("system", "prune", "-f", check=True)
    in_ns(ns, "sh", "-c", "echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6; "
                          "echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6")
    try:
        r = mdn("run", "-d", "--name", "no6", "-p", "18489:80", busybox, "sleep", "60")
        assert r.returncode == 0, r.stderr
        assert mdn("port", "no6").stdout.strip() == "80/tcp -> 0.0.0.0:18489"
        assert inspect(mdn, "bridge", "{{.EnableIPv6}}") == "false"
        r = mdn("network", "create", "--ipv6", "want6")
        assert r.returncode == 125 and "IPv6 is disabled on this host" in r.stderr
    finally:
        mdn("rm", "-f", "no6")
        mdn("system", "prune", "-f")
        in_ns(ns, "sh", "-c", "echo 0 > /proc/sys/net/ipv6/conf/all/disable_ipv6; "
                              "echo 0 > /proc/sys/net/ipv6/conf/default/disable_ipv6")
        host_end = in_ns(ns, "ip", "-o", "link", "show", "type", "veth").stdout.split(":")[1].strip().split("@")[0]
        in_ns(ns, "ip", "addr", "add", f"{HOST6}/64", "dev", host_end, "nodad")

