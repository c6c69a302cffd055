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


def _v6_config(net: dict) -> dict | None:
    if not net.get("EnableIPv6"):
        return None
    return next((c for c in net["IPAM"]["Config"][1:] if ":" in c.get("Subnet", "")), None)


def subnet6(net: dict) -> ipaddress.IPv6Network | None:
    """The network's IPv6 subnet: None for an IPv4-only network (or one made before IPv6)."""
    c = _v6_config(net)
    return ipaddress.IPv6Network(c["Subnet"]) if c else None


def gateway6(net: dict) -> str:
    c = _v6_config(net)
    return c["Gateway"] if c else ""


# --- IPv6 ---------------------------------------------------------------------------------------
def host_ipv6() -> bool:
    """IPv6 is on in this network namespace (and not turned off for minidock with MINIDOCK_IPV6=0).

    Bridges are dual-stack only then: with IPv6 disabled the kernel refuses IPv6 addresses; and
    only with nftables (the iptables fallback is IPv4 only)."""
    if os.environ.get("MINIDOCK_IPV6", "") in ("0", "false", "no"):
        return False
    from minidock.network import nat

    if nat._use_iptables():
        return False  # the iptables fallback is IPv4 only
    try:
        with open("/proc/sys/net/ipv6/conf/all/disable_ipv6") as f:
            return f.read().strip() == "0"
    except OSError:
        return False  # no IPv6 in this kernel


def ula_prefix() -> ipaddress.IPv6Network:
    """This state root's unique local /48 (RFC 4193: fd + a 40-bit global ID).

    The ID is derived from the machine ID and the state root (as Docker 27+ derives its default
    ULA pool from the engine's host ID): stable across runs, different for each lab group's
    state root, with no state to keep."""
    import hashlib

    try:
        machine = open("/etc/machine-id").read().strip()
    except OSError:
        machine = ""
    gid = hashlib.sha256(f"{machine}:{paths.networks()}".encode()).digest()[:5]
    return ipaddress.IPv6Network((b"\xfd" + gid + b"\0" * 10, 48))


def host_routes6(exclude_ifaces: set[str]) -> list[ipaddress.IPv6Network]:
    """IPv6 prefixes routed on the host (this network namespace), from /proc/net/ipv6_route."""
    out = []
    try:
        lines = open("/proc/net/ipv6_route").read().splitlines()
    except OSError:
        return out
    for line in lines:
        f = line.split()
        if len(f) < 10 or f[9] in exclude_ifaces or f[9] == "lo":
            continue
        plen = int(f[1], 16)
        if plen == 0:
            continue
        d = ipaddress.IPv6Address(bytes.fromhex(f[0]))
        if d.is_link_local or d.is_multicast:
            continue
        out.append(ipaddress.IPv6Network(f"{d}/{plen}", strict=False))
    return out


def pick_subnet6(existing: list[dict], wanted: str | None, *, default_first: bool) -> ipaddress.IPv6Network:
    taken = [s for s in (subnet6(n) for n in existing) if s]
    if wanted:
        try:
            net = ipaddress.IPv6Network(wanted, strict=True)
        except ValueError as e:
            raise InvalidArgument(f"invalid subnet {wanted}: {e}") from None
        if net.prefixlen > 124:
            raise InvalidArgument(f"subnet {wanted} is too small: use a prefix of /124 or shorter")
        for t in taken:
            if net.overlaps(t):
                raise Conflict(f"Pool overlaps with other one on this address space ({t})")
        return net
    routed = host_routes6({bridge_name(n) for n in existing})
    base = ula_prefix()
    for i in range(0 if default_first else 1, 1 << 16):
        cand = ipaddress.IPv6Network((int(base.network_address) + (i << 64), 64))
        if not any(cand.overlaps(t) for t in taken + routed):
            return cand
    raise Conflict("could not find an available IPv6 subnet in this host's ULA prefix", "Give one with --subnet.")


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
                labels: dict | None = None, internal: bool = False, ipv6: bool | None = None,
                wanted_subnet6: str | None = None, gw6: str | None = None) -> dict:
    """Create the record (caller holds the lock). The bridge itself is made on first use.

    ``ipv6``: None = dual-stack when the host has IPv6 (minidock's default, see
    docs/networking.md "IPv6"), True = required, False = IPv4 only."""
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
    if (wanted_subnet6 or gw6) and ipv6 is None:
        ipv6 = True
    if ipv6 and not host_ipv6():
        raise InvalidArgument("cannot create an IPv6 network: IPv6 is disabled on this host "
                              "(/proc/sys/net/ipv6/conf/all/disable_ipv6 is 1, or MINIDOCK_IPV6=0)",
                              "Leave out --ipv6 and the IPv6 --subnet, or enable IPv6 on the host.")
    if (wanted_subnet6 or gw6) and ipv6 is False:
        raise InvalidArgument("an IPv6 subnet or gateway needs --ipv6")
    config = [{"Subnet": str(sub), "Gateway": gateway_ip}]
    if ipv6 is None:
        ipv6 = host_ipv6()
    if ipv6:
        sub6 = pick_subnet6(all_networks(), wanted_subnet6, default_first=name == DEFAULT)
        gw6_ip = gw6 or str(sub6.network_address + 1)
        try:
            if ipaddress.IPv6Address(gw6_ip) not in sub6:
                raise ValueError
        except ValueError:
            raise InvalidArgument(f"no matching subnet for gateway {gw6_ip}") from None
        config.append({"Subnet": str(sub6), "Gateway": gw6_ip})
    net = {
        "Name": name, "Id": nid, "Created": now(), "Scope": "local", "Driver": "bridge",
        "EnableIPv4": True, "EnableIPv6": bool(ipv6),
        "IPAM": {"Driver": "default", "Options": {}, "Config": config},
        "Internal": internal, "Attachable": False, "Ingress": False, "ConfigFrom": {"Network": ""},
        "ConfigOnly": False, "Containers": {},
        "Options": {"com.docker.network.bridge.name": bridge,
                    "com.docker.network.bridge.default_bridge": str(name == DEFAULT).lower()},
        "Labels": labels or {},
        "UserSubnet": bool(wanted_subnet),
        "UserSubnet6": bool(wanted_subnet6),
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


def allocate6(net: dict, cid: str, wanted: str | None = None, preferred: str | None = None) -> str:
    """An IPv6 address for ``cid`` on a dual-stack network: as allocate(), from the IPv6 subnet
    (the gateway is ::1, containers get ::2, ::3, ... like Docker's sequential IPAM)."""
    sub = subnet6(net)
    used = {ipaddress.IPv6Address(gateway6(net))} | {
        ipaddress.IPv6Address(e["IPv6Address"].split("/")[0])
        for c, e in net["Containers"].items() if c != cid and e.get("IPv6Address")}
    if wanted:
        if not net.get("UserSubnet6"):
            raise InvalidArgument("user specified IP address is supported only when connecting to "
                                  "networks with user configured subnets")
        try:
            addr = ipaddress.IPv6Address(wanted)
        except ValueError:
            raise InvalidArgument(f"invalid IPv6 address: {wanted}") from None
        if addr not in sub or addr == sub.network_address:  # (Docker's words)
            raise InvalidArgument(f"Invalid address {wanted}: It does not belong to any of this network's "
                                  f"subnets ({sub})")
        if addr in used:
            raise Conflict(f"Address already in use: {wanted}")
        return str(addr)
    if preferred:
        try:
            addr = ipaddress.IPv6Address(preferred)
            if addr in sub and addr != sub.network_address and addr not in used:
                return str(addr)
        except ValueError:
            pass
    addr = sub.network_address + 1
    last = sub.broadcast_address
    while addr <= last:
        if addr not in used:
            return str(addr)
        addr += 1
    raise Conflict(f"no available IPv6 address on this network's address pools: {net['Name']} ({net['Id'][:12]})")


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
