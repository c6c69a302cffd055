"""Throwaway network namespaces for the tests that make bridges, veths and nftables rules.

    yield from make_netns("mdtest")                         # a bare namespace, loopback up
    yield from make_netns("mdtest", docker_firewall=True)   # plus what dockerd leaves on a host

Every minidock command of such a test runs as `nsenter --net=/run/netns/NAME python -m minidock
...` (nsenter, not `ip netns exec`: that remounts /sys and hides the cgroup hierarchies). At the
end the session's containers are removed and `system prune -f` (never `--all`: the session's
busybox image is shared by later modules) undoes the networks made inside, then the namespace goes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

# what dockerd (28) leaves on a host: FORWARD policy DROP, a DOCKER-USER chain jumped to first,
# br_netfilter on (bridged traffic goes through iptables) -- in iptables and, as dockerd 28 does
# with its default ip6tables=true, in ip6tables too
DOCKER_FIREWALL = """
for t in iptables ip6tables; do
  $t -w -P FORWARD DROP
  $t -w -N DOCKER-USER
  $t -w -A DOCKER-USER -j RETURN
  $t -w -I FORWARD 1 -j DOCKER-USER
done
echo 1 > /proc/sys/net/bridge/bridge-nf-call-iptables
echo 1 > /proc/sys/net/bridge/bridge-nf-call-ip6tables
"""


def in_ns(name: str) -> list[str]:
    return ["nsenter", f"--net=/run/netns/{name}"]


def make_netns(prefix: str, *, docker_firewall: bool = False, ip_forward: str | None = None):
    """A generator for a fixture: yields the namespace's name, cleans up after."""
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
    if ip_forward is not None:
        subprocess.run([*in_ns(name), "sh", "-c", f"echo {ip_forward} > /proc/sys/net/ipv4/ip_forward"],
                       check=True)
    if docker_firewall:  # (the bridge sysctls exist once br_netfilter is loaded: modprobe, as dockerd does)
        if not os.path.exists("/proc/sys/net/bridge") and shutil.which("modprobe"):
            subprocess.run(["modprobe", "br_netfilter"], capture_output=True)
        if not os.path.exists("/proc/sys/net/bridge"):
            subprocess.run(["ip", "netns", "del", name], check=True)
            pytest.skip("br_netfilter is not loaded and cannot be (modprobe br_netfilter)")
        subprocess.run([*in_ns(name), "sh", "-ec", DOCKER_FIREWALL], check=True)
    try:
        yield name
    finally:
        env = dict(os.environ, PYTHONPATH=str(REPO))
        base = [*in_ns(name), sys.executable, "-m", "minidock"]
        ids = subprocess.run([*base, "ps", "-aq"], capture_output=True, text=True, env=env).stdout.split()
        if ids:
            subprocess.run([*base, "rm", "-f", *ids], capture_output=True, env=env)
        subprocess.run([*base, "system", "prune", "-f"], capture_output=True, env=env, timeout=120)
        subprocess.run(["ip", "netns", "del", name], check=True)
