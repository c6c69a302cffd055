"""What the other modules share: the kinds this package journals, naming, the network mode.
"""

from __future__ import annotations

import re

from minidock.network import store
from minidock.state import containers

NET_KINDS = {"veth", "nft", "ipam", "port"}


_VETH = re.compile(r"^md([0-9a-f]{10})(\d)$")


LOCALHOST = ("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\n"
             "ff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n")


def _journal(rec: dict):
    return containers.journal(rec["Id"])


def mode(rec: dict) -> str:
    return rec["HostConfig"].get("NetworkMode") or store.DEFAULT


def wanted_networks(rec: dict) -> list[tuple[str, dict]]:
    """The networks to join at start: NetworkMode first (eth0), then `network connect`ed ones."""
    m = mode(rec)
    eps = (rec.get("NetworkingConfig") or {}).get("EndpointsConfig") or {}
    return [(m, eps.get(m) or {})] + [(n, c or {}) for n, c in eps.items() if n != m]


def veth_name(cid: str, index: int) -> str:
    return f"md{cid[:10]}{index}"


def _other(ref: str) -> dict:
    return containers.full(containers.resolve(ref))


