"""Network records and IP address management, under one file lock.

    networks/<name>.json   one per network, in Docker's `network inspect` shape; "Containers"
                           holds the endpoints (container -> IP, MAC, aliases): the IPAM state
    networks/ports.json    published host ports -> container (so two containers never share one)
    networks/host.json     what we changed on the host that is not a link (ip_forward)
    networks/.lock         flock held while reading-modifying-writing any of them

One lock for all of it keeps the rules simple: concurrent `run`s serialize for the few
milliseconds of an allocation and can never be handed the same address or port.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import re

from minidock import paths
from minidock.errors import Conflict, InvalidArgument, NotFound
from minidock.util import fsutil

DEFAULT = "bridge"
DEFAULT_BRIDGE = "minidock0"
PREDEFINED = ("bridge", "host", "none")
# candidate subnets, in order: the default bridge first, then user networks
POOL = ["172.30.0.0/16", "172.31.0.0/16"] + [f"172.{n}.0.0/16" for n in range(29, 17, -1)] + \
    [f"192.168.{n}.0/24" for n in range(200, 256)]
_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")


def _dir():
    d = paths.networks()
    d.mkdir(parents=True, exist_ok=True)
    return d


def lock():
    """The networks' writers' lock (networks/.lock)."""
    return fsutil.flock(_dir() / ".lock")


def _write(path, data) -> None:
    fsutil.atomic_write_json(path, data, indent=2)


def _read(path, default=None):
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return default


# --- records ------------------------------------------------------------------------------------
def names() -> list[str]:
    d = paths.networks()
    if not d.is_dir():
        return []
    return sorted(p[:-5] for p in os.listdir(d) if p.endswith(".json") and p not in ("ports.json", "host.json"))


def load(name: str) -> dict | None:
    if not _NAME.match(name or ""):  # a name becomes a path: nothing else is looked up
        return None
    return _read(_dir() / f"{name}.json")


def save(net: dict) -> None:
    if not _NAME.match(net["Name"]):
        raise InvalidArgument(f"invalid network name {net['Name']!r}")
    _write(_dir() / f"{net['Name']}.json", net)


def delete(name: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        (_dir() / f"{name}.json").unlink()


def all_networks() -> list[dict]:
    return [n for n in (load(x) for x in names()) if n]


def find(ref: str) -> dict:
    """By name, full ID or ID prefix, like Docker."""
    net = load(ref) if _NAME.match(ref) else None
    if net:
        return net
    hits = [n for n in all_networks() if n["Id"].startswith(ref)] if ref else []
    if len(hits) == 1:
        return hits[0]
    raise NotFound(f"network {ref} not found")


def bridge_name(net: dict) -> str:
    return net["Options"]["com.docker.network.bridge.name"]


def subnet(net: dict) -> ipaddress.IPv4Network:
    return ipaddress.IPv4Network(net["IPAM"]["Config"][0]["Subnet"])


def gateway(net: dict) -> str:
    return net["IPAM"]["Config"][0]["Gateway"]


def host_routes(exclude_ifaces: set[str]) -> list[ipaddress.IPv4Network]:
    """Subnets routed on the host (this network namespace), from /proc/net/route."""
    out = []
    try:
        lines = open("/proc/net/route").read().splitlines()[1:]
    except OSError:
        return out
    for line in lines:
        f = line.split()
        if len(f) < 8 or f[0] in exclude_ifaces:
            continue
        dest, mask = int(f[1], 16), int(f[7], 16)
        if mask == 0:
            continue  # the default route clashes with nothing
        d = ipaddress.IPv4Address(int.from_bytes(dest.to_bytes(4, "little"), "big"))
        m = bin(mask).count("1")
        out.append(ipaddress.IPv4Network(f"{d}/{m}", strict=False))
    return out


def pick_subnet(existing: list[dict], wanted: str | None, *, default_first: bool) -> ipaddress.IPv4Network:
    taken = [subnet(n) for n in existing]
    ours = {bridge_name(n) for n in existing}
    routed = host_routes(ours)
    if wanted:
        try:
            net = ipaddress.IPv4Network(wanted, strict=True)
        except ValueError as e:
            raise InvalidArgument(f"invalid subnet {wanted}: {e}") from None
        if net.prefixlen > 30:
            raise InvalidArgument(f"subnet {wanted} is too small: use a prefix of /30 or shorter")
        for t in taken:
            if net.overlaps(t):
                raise Conflict(f"Pool overlaps with other one on this address space ({t})")
        return net
    pool = POOL if default_first else POOL[1:]
    for cand in map(ipaddress.IPv4Network, pool):
        if not any(cand.overlaps(t) for t in taken + routed):
            return cand
    raise Conflict("could not find an available, non-overlapping IPv4 address pool among the defaults "
                   "to assign to the network", "Give one with --subnet.")


def new_network(name: str, wanted_subnet: str | None = None, gw: str | None = None,
                labels: dict | None = None, internal: bool = False) -> dict:
    """Create the record (caller holds the lock). The bridge itself is made on first use."""
    from minidock.util import now

    if not _NAME.match(name):
        raise InvalidArgument(f"invalid network name {name!r}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
    if load(name) or (name in PREDEFINED and name != DEFAULT):
        raise Conflict(f"network with name {name} already exists")
    nid = os.urandom(32).hex()
    bridge = f"br-{nid[:12]}"
    if name == DEFAULT:
        # like dockerd's --bridge and --bip: lab groups (minidock/labs) give each state root its own
        bridge = default_bridge()
        wanted_subnet = wanted_subnet or os.environ.get("MINIDOCK_BRIDGE_SUBNET") or None
    sub = pick_subnet(all_networks(), wanted_subnet, default_first=name == DEFAULT)
    hosts = sub.hosts()
    gateway_ip = gw or str(next(hosts))
    if ipaddress.IPv4Address(gateway_ip) not in sub:
        raise InvalidArgument(f"no matching subnet for gateway {gateway_ip}")
    net = {
        "Name": name, "Id": nid, "Created": now(), "Scope": "local", "Driver": "bridge",
        "EnableIPv6": False,
        "IPAM": {"Driver": "default", "Options": {}, "Config": [{"Subnet": str(sub), "Gateway": gateway_ip}]},
        "Internal": internal, "Attachable": False, "Ingress": False, "ConfigFrom": {"Network": ""},
        "ConfigOnly": False, "Containers": {},
        "Options": {"com.docker.network.bridge.name": bridge,
                    "com.docker.network.bridge.default_bridge": str(name == DEFAULT).lower()},
        "Labels": labels or {},
        "UserSubnet": bool(wanted_subnet),
    }
    save(net)
    return net


def default_bridge() -> str:
    """The default network's bridge: minidock0, or $MINIDOCK_BRIDGE (one per lab group)."""
    b = os.environ.get("MINIDOCK_BRIDGE") or DEFAULT_BRIDGE
    if not re.fullmatch(r"[a-zA-Z0-9][a-zA-Z0-9_.-]{0,14}", b):
        raise InvalidArgument(f"invalid bridge name {b!r} in MINIDOCK_BRIDGE: at most 15 of [a-zA-Z0-9_.-]")
    return b


def get_or_create(name: str) -> dict:
    """The network called ``name``; the default bridge network is created on first use."""
    net = load(name)
    if net:
        return net
    if name == DEFAULT:
        return new_network(DEFAULT)
    raise NotFound(f"network {name} not found")


# --- IPAM -----------------------------------------------------------------------------------------
def allocate(net: dict, cid: str, wanted: str | None = None, preferred: str | None = None) -> str:
    """A free address in the network for container ``cid`` (caller holds the lock and saves);
    ``preferred`` (its previous address) when it is still free, else the lowest free one."""
    sub = subnet(net)
    used = {gateway(net)} | {e["IPv4Address"].split("/")[0] for c, e in net["Containers"].items() if c != cid}
    if preferred and not wanted and preferred not in used:
        try:
            addr = ipaddress.IPv4Address(preferred)
        except ValueError:
            addr = None
        if addr is not None and addr in sub and addr not in (sub.network_address, sub.broadcast_address):
            return preferred
    if wanted:
        if not net.get("UserSubnet"):
            raise InvalidArgument("user specified IP address is supported only when connecting to "
                                  "networks with user configured subnets")
        try:
            addr = ipaddress.IPv4Address(wanted)
        except ValueError:
            raise InvalidArgument(f"invalid IPv4 address: {wanted}") from None
        if addr not in sub or addr in (sub.network_address, sub.broadcast_address):
            raise InvalidArgument(f"no available IPv4 address on this network's address pools: "
                                  f"{net['Name']} ({net['Id'][:12]}): {wanted} is not in {sub}")
        if wanted in used:
            raise Conflict(f"Address already in use: {wanted}")
        return wanted
    for host in sub.hosts():
        ip = str(host)
        if ip not in used:
            return ip
    raise Conflict(f"no available IPv4 address on this network's address pools: {net['Name']} ({net['Id'][:12]})")


def mac_for(ip: str) -> str:
    """Docker's rule: 02:42 then the four bytes of the IPv4 address (unique on the subnet)."""
    return "02:42:" + ":".join(f"{int(b):02x}" for b in ip.split("."))


# --- published ports -----------------------------------------------------------------------------
def ports() -> dict:
    return _read(_dir() / "ports.json", {})


def save_ports(data: dict) -> None:
    _write(_dir() / "ports.json", data)


def host_state() -> dict:
    return _read(_dir() / "host.json", {})


def save_host_state(data: dict) -> None:
    if data:
        _write(_dir() / "host.json", data)
    else:
        with contextlib.suppress(FileNotFoundError):
            (_dir() / "host.json").unlink()
