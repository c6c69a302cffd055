"""Published ports over IPv6: minidock against a private dockerd, the same commands on both.

The dockerd (Debian's 20.10, driven by the docker 28 CLI where installed) runs in a network
namespace of its own with its own data root and socket, IPv6 on its default bridge (`--ipv6
--fixed-cidr-v6`, `--ip6tables`): its docker0, iptables and ip6tables rules live and die in that
namespace; the host's Docker and docker0 are never touched. minidock runs in another throwaway
namespace. Compared: `port`, the PORTS column, `inspect` NetworkSettings.Ports, a real IPv6 TCP
connection through the published port, the per-family conflict message, `network create --ipv6
--subnet ... --subnet fd..` with `--ip6`, and the hosts file.

Differences kept on purpose (docs/networking.md "IPv6"): `-p [::1]:P:C` works on Docker through
docker-proxy and is refused by minidock (no proxy; the kernel cannot NAT IPv6 loopback); Docker
20.10 derives a container's IPv6 address from its MAC, minidock (like Docker 28) counts up.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid

import pytest

from tests.integration.test_network import _runner, in_ns
from tests.netns import make_netns

pytestmark = pytest.mark.noleakcheck  # the private dockerd and its namespace live for the module

V6 = "fd00:d0c:16::/64"


def sh(*cmd, timeout=90, **kw):
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=timeout, **kw)


def _umount_under(prefix: str) -> None:
    with open("/proc/self/mountinfo") as f:
        targets = [line.split()[4] for line in f if line.split()[4].startswith(prefix)]
    for t in sorted(targets, reverse=True):
        subprocess.run(["umount", "-l", t], capture_output=True)


@pytest.fixture(scope="module")
def docker(busybox_tar, tmp_path_factory):
    if shutil.which("dockerd") is None or shutil.which("docker") is None:
        pytest.skip("dockerd is not installed")
    w = tmp_path_factory.mktemp("docker6")
    ns = f"mddock6-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True)
    sock = f"unix://{w}/d.sock"
    log = open(w / "dockerd.log", "w")  # noqa: SIM115
    d = subprocess.Popen(["nsenter", f"--net=/run/netns/{ns}", "dockerd", "--data-root", w / "data",
                          "--exec-root", w / "exec", "-H", sock, "--pidfile", w / "d.pid",
                          "--ipv6", "--fixed-cidr-v6", V6, "--experimental", "--ip6tables"],
                         stdout=log, stderr=log)
    base = ["nsenter", f"--net=/run/netns/{ns}", "docker", "-H", sock]
    try:
        for _ in range(150):
            if sh(*base, "info").returncode == 0:
                break
            time.sleep(0.2)
        else:
            pytest.skip("dockerd did not start here (see its log)")
        assert sh(*base, "import", busybox_tar, "busybox").returncode == 0
        yield base, ns
    finally:
        ids = sh(*base, "ps", "-aq").stdout.split()
        if ids:
            sh(*base, "rm", "-f", *ids)
        sh(*base, "network", "prune", "-f")
        d.terminate()
        d.wait(timeout=30)
        log.close()
        _umount_under(str(w))
        subprocess.run(["ip", "netns", "del", ns], check=True)


@pytest.fixture(scope="module")
def mdns(state_root):
    yield from make_netns("md6cmp", docker_firewall=True, ip_forward="0")


@pytest.fixture
def engines(docker, mdns, md_env, busybox):
    base, dns = docker
    md = _runner(md_env, mdns)

    def dk(*args, **kw):
        return sh(*base, *args, **kw)

    return {"docker": (dk, dns), "minidock": (md, mdns)}


def _get6(netns: str, host: str, port: int) -> str:
    code = ("import urllib.request, sys, time\n"
            "for i in range(50):\n"
            "    try:\n"
            f"        r = urllib.request.urlopen('http://[{host}]:{port}/hostname', timeout=2)\n"
            "        print(r.read().decode()); break\n"
            "    except OSError as e:\n"
            "        time.sleep(0.1); err = e\n"
            "else:\n"
            "    print('ERR', err)\n")
    return in_ns(netns, sys.executable, "-c", code).stdout.strip()


def _gateway6(run, name: str) -> str:
    return run("inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPv6Gateway}}{{end}}", name).stdout.strip()


def test_published_port_listed_and_reached_the_same_way(engines):
    seen = {}
    for engine, (run, netns) in engines.items():
        name = f"web6{os.urandom(3).hex()}"
        r = run("run", "-d", "--name", name, "-p", "18580:80", "busybox", "httpd", "-f", "-p", "80", "-h", "/etc")
        assert r.returncode == 0, (engine, r.stderr)
        try:
            hostname = run("inspect", "-f", "{{.Config.Hostname}}", name).stdout.strip()
            ip6 = run("inspect", "-f", "{{.NetworkSettings.GlobalIPv6Address}}", name).stdout.strip()
            seen[engine] = {
                "port": run("port", name).stdout.splitlines(),
                "port80": run("port", name, "80").stdout.splitlines(),
                "ps": run("ps", "--filter", f"name={name}", "--format", "{{.Ports}}").stdout.strip(),
                "Ports": json.loads(run("inspect", "-f", "{{json .NetworkSettings.Ports}}", name).stdout),
                "hosts line": f"{ip6}\t{hostname}" in run("exec", name, "cat", "/etc/hosts").stdout,
                # a real TCP connection to a host IPv6 address (the bridge's) on the published port
                "via IPv6": _get6(netns, _gateway6(run, name), 18580) == hostname,
            }
        finally:
            run("rm", "-f", name)
    assert seen["minidock"] == seen["docker"], seen
    assert seen["docker"]["port"] == ["80/tcp -> 0.0.0.0:18580", "80/tcp -> [::]:18580"]
    assert seen["docker"]["via IPv6"] and seen["docker"]["hosts line"]


def test_conflicts_and_single_family_bindings_the_same_way(engines):
    seen = {}
    for engine, (run, _) in engines.items():
        a, b = (f"{x}{os.urandom(3).hex()}" for x in ("only6", "only4"))
        try:
            assert run("run", "-d", "--name", a, "-p", "[::]:18581:80", "busybox", "sleep", "60").returncode == 0
            clash = run("run", "--rm", "-p", "18581:80", "busybox", "true")
            v4 = run("run", "-d", "--name", b, "-p", "0.0.0.0:18581:80", "busybox", "sleep", "60")
            seen[engine] = {
                "only6": run("port", a).stdout.strip(),
                "clash": (clash.returncode, "Bind for :::18581 failed: port is already allocated" in clash.stderr),
                "only4": (v4.returncode, run("port", b).stdout.strip()),
            }
        finally:
            run("rm", "-f", a, b)
    assert seen["minidock"] == seen["docker"], seen
    assert seen["docker"]["clash"] == (125, True)


def test_ipv6_user_network_and_ip6_the_same_way(engines):
    seen = {}
    for engine, (run, _) in engines.items():
        net, c = f"v6n{os.urandom(3).hex()}", f"s6{os.urandom(3).hex()}"
        r = run("network", "create", "--ipv6", "--subnet", "10.217.0.0/24", "--subnet", "fd00:217::/64", net)
        assert r.returncode == 0, (engine, r.stderr)
        try:
            assert run("run", "-d", "--name", c, "--network", net, "--ip6", "fd00:217::50", "busybox",
                       "sleep", "60").returncode == 0
            bad = run("run", "--rm", "--network", net, "--ip6", "fd00:218::5", "busybox", "true")
            taken = run("run", "--rm", "--network", net, "--ip6", "fd00:217::50", "busybox", "true")
            seen[engine] = {
                "EnableIPv6": run("network", "inspect", "-f", "{{.EnableIPv6}}", net).stdout.strip(),
                "subnets": [x["Subnet"] for x in json.loads(
                    run("network", "inspect", "-f", "{{json .IPAM.Config}}", net).stdout)],
                "ip6": run("inspect", "-f", f"{{{{.NetworkSettings.Networks.{net}.GlobalIPv6Address}}}}", c
                           ).stdout.strip(),
                "bad": (bad.returncode, "Invalid address fd00:218::5: It does not belong to any of this "
                                        "network's subnets" in bad.stderr),
                "taken": (taken.returncode, "Address already in use" in taken.stderr),
            }
        finally:
            run("rm", "-f", c)
            run("network", "rm", net)
    assert seen["minidock"] == seen["docker"], seen
    assert seen["docker"]["ip6"] == "fd00:217::50"
