"""Network attacks of issue 17, each mounted for real and passing only when blocked; and minidock
next to Docker's firewall. Everything runs in throwaway network namespaces (see test_network.py),
once bare and once behind Docker's firewall (FORWARD policy DROP, DOCKER-USER, br_netfilter).

* CVE-2020-8558 class: route_localnet=1 on the bridge lets a packet for 127.0.0.1 that arrives
  from a container be delivered to the host. The attacker here is the container's network
  namespace (its routes, with root of the host only to set the route the crafted frame needs):
  a host service bound to 127.0.0.1 must stay unreachable, while published ports used from the
  host's loopback keep working.
* Isolation: two user networks cannot talk (Docker's DOCKER-ISOLATION), a published port stays
  reachable from both.
* FORWARD DROP: accept rules for minidock's bridges are added (in DOCKER-USER), journaled in
  host.json and removed with the bridge.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.integration.test_network import _make_netns, _runner, http_get, in_ns, inspect


@pytest.fixture(scope="module", params=["plain", "docker-firewall"])
def ns(state_root, request):
    yield from _make_netns(docker_firewall=request.param == "docker-firewall")


@pytest.fixture
def mdn(md_env, ns):
    return _runner(md_env, ns)


LISTENER = ("import socket, sys\n"
            "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
            "s.bind(('127.0.0.1', int(sys.argv[1])))\n"
            "print('up', flush=True)\n"
            "s.settimeout(8)\n"
            "try:\n"
            "    print('REACHED', s.recvfrom(100), flush=True)\n"
            "except OSError:\n"
            "    print('nothing', flush=True)\n")

# the container's side: a frame for 127.0.0.1 sent to the gateway's MAC (routes of the container's
# own namespace; a container with CAP_NET_RAW can forge the same frame on a packet socket)
ATTACK = """
set -e
ip route del local 127.0.0.1 dev lo table local 2>/dev/null || true
ip route del local 127.0.0.0/8 dev lo table local 2>/dev/null || true
echo 1 > /proc/sys/net/ipv4/conf/eth0/route_localnet
ip route replace 127.0.0.1/32 via {gw} dev eth0 onlink
for i in 1 2 3; do
  {py} -c "import socket; socket.socket(2, 2).sendto(b'from the container', ('127.0.0.1', {port}))"
done
"""


def test_host_loopback_service_unreachable_from_a_container(mdn, ns, busybox):
    """CVE-2020-8558: a UDP service bound to the host's 127.0.0.1 receives nothing."""
    port = 18090
    listener = subprocess.Popen(["nsenter", f"--net=/run/netns/{ns}", sys.executable, "-c", LISTENER, str(port)],
                                stdout=subprocess.PIPE, text=True)
    try:
        assert listener.stdout.readline().strip() == "up"
        r = mdn("run", "-d", "--name", "evil", busybox, "sleep", "60")
        assert r.returncode == 0, r.stderr
        pid = json.loads(mdn("inspect", "evil").stdout)[0]["State"]["Pid"]
        gw = inspect(mdn, "evil", "{{.NetworkSettings.Gateway}}")
        # route_localnet is on for the bridge (loopback publishes need it) ...
        br = in_ns(ns, "cat", "/proc/sys/net/ipv4/conf/minidock0/route_localnet").stdout.strip()
        assert br == "1"
        # ... and the crafted packets from the container's namespace are dropped anyway
        r = subprocess.run(["nsenter", f"--net=/proc/{pid}/ns/net", "sh", "-c",
                            ATTACK.format(gw=gw, port=port, py=sys.executable)],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stderr
        out = listener.communicate(timeout=20)[0]
        assert "nothing" in out and "REACHED" not in out, out
    finally:
        mdn("rm", "-f", "evil")
        listener.kill()
        listener.wait()


def test_loopback_publish_still_works(mdn, ns, busybox):
    r = mdn("run", "-d", "--name", "lpub", "-p", "127.0.0.1:18091:80", busybox, "httpd", "-f", "-p", "80",
            "-h", "/etc")
    assert r.returncode == 0, r.stderr
    try:
        status, body = http_get(ns, "http://127.0.0.1:18091/hostname")
        assert (status, body.strip()) == (200, inspect(mdn, "lpub", "{{.Config.Hostname}}"))
    finally:
        mdn("rm", "-f", "lpub")


def test_user_networks_are_isolated_from_each_other(mdn, ns, busybox):
    for n in ("isoa", "isob"):
        assert mdn("network", "create", n).returncode == 0
    try:
        mdn("run", "-d", "--name", "ia", "--network", "isoa", busybox, "sleep", "60", check=True)
        mdn("run", "-d", "--name", "ib", "--network", "isob", "-p", "18092:80", busybox,
            "httpd", "-f", "-p", "80", "-h", "/etc", check=True)
        mdn("run", "-d", "--name", "ib2", "--network", "isob", busybox, "sleep", "60", check=True)
        ib = inspect(mdn, "ib", "{{.NetworkSettings.Networks.isob.IPAddress}}")
        ia = inspect(mdn, "ia", "{{.NetworkSettings.Networks.isoa.IPAddress}}")
        # within one network: works (through FORWARD when br_netfilter is on)
        r = mdn("exec", "ib2", "timeout", "10", "wget", "-qO-", f"http://{ib}/hostname")
        assert r.returncode == 0, r.stderr
        # across networks, both ways: blocked
        r = mdn("exec", "ia", "timeout", "10", "wget", "-T", "3", "-qO-", f"http://{ib}/hostname")
        assert r.returncode != 0, r.stdout
        assert mdn("exec", "ib2", "ping", "-c1", "-W2", ia).returncode != 0
        assert mdn("exec", "ia", "ping", "-c1", "-W2", ib).returncode != 0
        # a published port stays reachable from the other network (through the host's address)
        gw = inspect(mdn, "ia", "{{.NetworkSettings.Networks.isoa.Gateway}}")
        r = mdn("exec", "ia", "timeout", "10", "wget", "-qO-", f"http://{gw}:18092/hostname")
        assert (r.returncode, r.stdout.strip()) == (0, inspect(mdn, "ib", "{{.Config.Hostname}}")), r.stderr
    finally:
        mdn("rm", "-f", "ia", "ib", "ib2")
        mdn("network", "rm", "isoa", "isob")


def test_forward_drop_gets_journaled_accept_rules(mdn, ns, busybox, state_root):
    policy = in_ns(ns, "iptables", "-S", "FORWARD").stdout.splitlines()[0]
    assert mdn("network", "create", "fwd").returncode == 0
    try:
        mdn("run", "--rm", "--network", "fwd", busybox, "true", check=True)
        br = "br-" + json.loads(mdn("network", "inspect", "fwd").stdout)[0]["Id"][:12]
        host = json.loads((state_root / "networks" / "host.json").read_text())
        user = in_ns(ns, "iptables", "-S", "DOCKER-USER").stdout
        user6 = in_ns(ns, "ip6tables", "-S", "DOCKER-USER").stdout  # (dockerd 28: ip6tables DROP too)
        if policy == "-P FORWARD DROP":
            for rules in (user, user6):  # the bridge is dual-stack: both families get the two rules
                assert f"-A DOCKER-USER -i {br} -j ACCEPT" in rules
                assert f"-A DOCKER-USER -o {br} -m conntrack --ctstate RELATED,ESTABLISHED,DNAT -j ACCEPT" in rules
            assert [(e[0], e[2:]) for e in host["host_rules"][br]] == [
                ("DOCKER-USER", []), ("DOCKER-USER", []), ("DOCKER-USER", ["ip6"]), ("DOCKER-USER", ["ip6"])]
        else:  # nothing of the host's is touched when forwarding is accepted anyway
            assert "host_rules" not in host
            assert in_ns(ns, "iptables-save").stdout.count(br) == 0
            assert in_ns(ns, "ip6tables-save").stdout.count(br) == 0
        doctor = mdn("doctor").stdout
        assert f"iptables FORWARD policy: {policy.split()[2]}" in doctor and "br_netfilter:" in doctor
        assert f"ip6tables FORWARD policy: {policy.split()[2]}" in doctor
    finally:
        mdn("network", "rm", "fwd")
    assert br not in in_ns(ns, "iptables-save").stdout
    assert br not in in_ns(ns, "ip6tables-save").stdout
    host = state_root / "networks" / "host.json"
    assert br not in (json.loads(host.read_text()).get("host_rules") or {} if host.exists() else {})
