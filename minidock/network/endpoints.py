"""Before the container exists and around it: addresses (IPAM) and published ports reserved
and journaled, the netns to join, port listings.
"""

from __future__ import annotations

import errno
import os
import socket

from minidock.errors import Conflict, InvalidArgument, NotFound
from minidock.network import store
from minidock.network.common import _journal, _other, mode, wanted_networks
from minidock.network.etcfiles import hosts_file
from minidock.state import containers


def check_ports(rec: dict) -> None:
    """Allocate the container's addresses and host ports; a taken port fails here, before start."""
    m = mode(rec)
    if m.startswith("container:"):
        if rec["HostConfig"].get("PortBindings") or rec["HostConfig"].get("PublishAllPorts"):
            raise Conflict("conflicting options: port publishing and the container type network mode")
        return
    prepare(rec)


def prepare(rec: dict) -> None:
    j = _journal(rec)
    settings = {"Bridge": "", "SandboxKey": "", "Ports": {}, "IPAddress": "", "IPPrefixLen": 0,
                "Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0, "IPv6Gateway": "",
                "MacAddress": "", "Networks": {}}
    with store.lock():
        for name, cfg in wanted_networks(rec):
            settings["Networks"][name] = _endpoint(store.get_or_create(name), rec, cfg, j)
        primary = settings["Networks"][mode(rec)]
        settings["Ports"] = _reserve_ports(rec, primary["IPAddress"], j, primary["GlobalIPv6Address"])
    if mode(rec) == store.DEFAULT:
        settings.update({k: primary[k] for k in ("IPAddress", "IPPrefixLen", "Gateway", "MacAddress",
                                                  "GlobalIPv6Address", "GlobalIPv6PrefixLen", "IPv6Gateway")})
    rec["NetworkSettings"] = settings


def _endpoint(net: dict, rec: dict, cfg: dict, j) -> dict:
    """Allocate an address (two on a dual-stack network) for the container (lock held); journaled first."""
    cid = rec["Id"]
    ipam = cfg.get("IPAMConfig") or {}
    wanted = ipam.get("IPv4Address") or None
    wanted6 = ipam.get("IPv6Address") or None
    # a restarted container asks for its previous address (selfheal, issue 11: identity kept
    # where the network allows it); taken meanwhile, it gets another
    before = ((rec.get("NetworkSettings") or {}).get("Networks") or {}).get(net["Name"]) or {}
    sub6 = store.subnet6(net)
    if wanted6 and not sub6:
        raise InvalidArgument(f"--ip6 {wanted6}: network {net['Name']} has no IPv6 subnet",
                              "Create the network with --ipv6 --subnet fdXX:.../64.")
    ip = store.allocate(net, cid, wanted, preferred=before.get("IPAddress") or None)
    ip6 = store.allocate6(net, cid, wanted6, preferred=before.get("GlobalIPv6Address") or None) if sub6 else ""
    j.record("ipam", network=net["Name"], cid=cid, ip=ip, ip6=ip6)
    plen = store.subnet(net).prefixlen
    plen6 = sub6.prefixlen if sub6 else 0
    mac = store.mac_for(ip)
    name = containers.name_of(rec)
    aliases = list(cfg.get("Aliases") or [])
    if net["Name"] != store.DEFAULT:
        aliases.append(cid[:12])
    eid = os.urandom(32).hex()
    net["Containers"][cid] = {"Name": name, "EndpointID": eid, "MacAddress": mac,
                              "IPv4Address": f"{ip}/{plen}", "IPv6Address": f"{ip6}/{plen6}" if ip6 else "",
                              "Aliases": aliases, "HostsPath": rec.get("HostsPath", "")}
    store.save(net)
    return {"IPAMConfig": cfg.get("IPAMConfig") or None, "Links": None, "Aliases": aliases,
            "NetworkID": net["Id"], "EndpointID": eid, "Gateway": store.gateway(net),
            "IPAddress": ip, "IPPrefixLen": plen, "IPv6Gateway": store.gateway6(net) if ip6 else "",
            "GlobalIPv6Address": ip6, "GlobalIPv6PrefixLen": plen6, "MacAddress": mac, "DriverOpts": None}


def port_bindings(rec: dict) -> list[tuple[str, str, str]]:
    """(port/proto, host ip, host port or "") for -p, and for -P every EXPOSEd port not bound."""
    hc = rec["HostConfig"]
    out = [(cport, b.get("HostIp") or "", str(b.get("HostPort") or ""))
           for cport, binds in (hc.get("PortBindings") or {}).items() for b in binds or []]
    if hc.get("PublishAllPorts"):
        bound = {c for c, _, _ in out}
        out += [(p, "", "") for p in (rec["Config"].get("ExposedPorts") or {}) if p not in bound]
    return out


def _port_key(proto: str, host_ip: str, port: int) -> str:
    return f"{proto}/{host_ip or '0.0.0.0'}/{port}"


def _v6(ip: str) -> bool:
    return ":" in (ip or "")


def _shown(ip: str) -> str:
    """A host address as Docker prints it beside a port: 0.0.0.0, [::], [fd00::1]."""
    ip = ip or "0.0.0.0"
    return f"[{ip}]" if _v6(ip) else ip


def _port_taken(reserved: dict, proto: str, host_ip: str, port: int) -> bool:
    """Reserved by a container, or bound by a host process, in the same address family.

    ``host_ip``: "" (every IPv4 address), "::" (every IPv6 address), or one address."""
    v6 = _v6(host_ip)
    wild = "::" if v6 else "0.0.0.0"
    for key in reserved:
        p, ip, n = key.split("/")
        if p == proto and int(n) == port and _v6(ip) == v6 and (
                ip == wild or not host_ip or host_ip in (wild, ip)):
            return True
    stype = socket.SOCK_DGRAM if proto == "udp" else socket.SOCK_STREAM
    with socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, stype) as s:
        if v6:  # (only IPv6: a host process on 0.0.0.0 is the IPv4 binding's business)
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        try:
            s.bind((host_ip or wild, port))
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                return True
            if e.errno == errno.EADDRNOTAVAIL:
                raise InvalidArgument(f"cannot publish on {_shown(host_ip)}:{port}: no such address on this "
                                      "host") from None
            raise
    return False


def _random_port(reserved: dict, proto: str, host_ips: list[str] | str) -> int:
    """A host port free on every one of ``host_ips`` (IPv4 and IPv6 get the same port, as in Docker)."""
    if isinstance(host_ips, str):
        host_ips = [host_ips]
    stype = socket.SOCK_DGRAM if proto == "udp" else socket.SOCK_STREAM
    first = host_ips[0]
    for _ in range(100):
        with socket.socket(socket.AF_INET6 if _v6(first) else socket.AF_INET, stype) as s:
            s.bind((first or "0.0.0.0", 0))
            port = s.getsockname()[1]
        if not any(_port_taken(reserved, proto, h, port) for h in host_ips):
            return port
    raise Conflict("could not find a free host port to publish on")


def _host_ips(host_ip: str, ip6: str, name: str, cport: str, hp: str) -> list[str]:
    """The host addresses one -p binding becomes: "" = 0.0.0.0, "::" = every IPv6 address.

    No host address: IPv4, and IPv6 too when the container has an IPv6 address (Docker 28 shows
    both). An IPv6 host address needs an IPv6 container address: without a userland proxy, NAT
    cannot turn IPv6 into IPv4. ::1 cannot be NATed at all (the kernel never routes a loopback
    source out of a real interface, and IPv6 has no route_localnet)."""
    if not host_ip:
        return ["", "::"] if ip6 else [""]
    if not _v6(host_ip):
        return ["" if host_ip == "0.0.0.0" else host_ip]
    if host_ip == "::1" or host_ip.startswith("::ffff:"):
        raise InvalidArgument(f"cannot publish {cport} on [{host_ip}]:{hp or '<random>'}: minidock publishes "
                              "ports with NAT, and the kernel cannot NAT IPv6 loopback traffic into a bridge",
                              "Publish on 127.0.0.1 instead (or on [::] and connect to the host's own IPv6 "
                              "address).")
    if not ip6:
        raise InvalidArgument(f"cannot publish {cport} on [{host_ip}]:{hp or '<random>'}: container {name} "
                              "has no IPv6 address (its network is IPv4-only: the host's IPv6 is off, or "
                              "the network was made with --ipv6=false)",
                              "Publish on an IPv4 address, or use a network with IPv6.")
    return [host_ip]


def _reserve_ports(rec: dict, ip: str, j, ip6: str = "") -> dict:
    """Reserve each published host port (lock held) -> Docker's NetworkSettings.Ports."""
    ports: dict[str, list | None] = {p: None for p in rec["Config"].get("ExposedPorts") or {}}
    bindings = port_bindings(rec)
    if not bindings:
        return ports
    reserved = store.ports()
    name = containers.name_of(rec)
    for cport, host_ip, host_port in bindings:
        num, _, proto = cport.partition("/")
        proto = proto or "tcp"
        ips = _host_ips(host_ip, ip6, name, cport, host_port)
        if host_port:
            hp = int(host_port)
            for h in ips:
                if _port_taken(reserved, proto, h, hp):
                    raise Conflict(f"driver failed programming external connectivity on endpoint {name}: "
                                   f"Bind for {h or '0.0.0.0'}:{hp} failed: port is already allocated")
        else:
            hp = _random_port(reserved, proto, ips)
        for h in ips:
            target = ip6 if _v6(h) else ip
            j.record("port", cid=rec["Id"], proto=proto, host_ip=h, host_port=hp, ip=target, cport=int(num))
            reserved[_port_key(proto, h, hp)] = rec["Id"]
            store.save_ports(reserved)
            ports.setdefault(cport, None)
            ports[cport] = (ports[cport] or []) + [{"HostIp": h or "0.0.0.0", "HostPort": str(hp)}]
    return ports


def netns_path(rec: dict) -> str | None:
    """None: a new network namespace; for --network container:NAME, the other one's."""
    m = mode(rec)
    if m.startswith("container:"):
        other = _other(m[10:])
        if not other["State"].get("Running"):
            raise Conflict(f"cannot join network of a non running container: {m[10:]}")
        return f"/proc/{other['State']['Pid']}/ns/net"
    return None


def _forget_endpoint(cid: str, network: str) -> None:
    """A stopped container keeps its networks in inspect, without addresses or ports (Docker)."""
    rec = containers.load(cid)
    ns = rec.get("NetworkSettings") or {}
    ep = (ns.get("Networks") or {}).get(network)
    if ep is None:
        return
    gone = dict(IPAddress="", IPPrefixLen=0, Gateway="", MacAddress="", GlobalIPv6Address="",
                GlobalIPv6PrefixLen=0, IPv6Gateway="")
    ep.update(gone, EndpointID="")
    if network == mode(rec):
        ns.update(gone, Ports={}, SandboxKey="")
    containers.save(rec)


def _save_settings(rec: dict) -> None:
    with containers.lock(rec["Id"]):
        cur = containers.load(rec["Id"])
        cur["NetworkingConfig"] = rec.get("NetworkingConfig") or {}
        cur["NetworkSettings"] = rec["NetworkSettings"]
        containers.save(cur)
    path = rec.get("HostsPath")
    if path and os.path.exists(path):
        with open(path, "r+") as f:
            f.truncate(0)
            f.write(hosts_file(rec))


def port_lines(rec: dict, private: str | None = None) -> list[str]:
    """`port CONTAINER [PRIVATE_PORT[/PROTO]]`: "80/tcp -> 0.0.0.0:8080" lines."""
    ports = (rec.get("NetworkSettings") or {}).get("Ports") or {}
    if private and "/" not in private:
        private += "/tcp"
    out = []
    for cport, binds in ports.items():
        if private and cport != private:
            continue
        for b in binds or []:
            out.append(f"{_shown(b['HostIp'])}:{b['HostPort']}" if private
                       else f"{cport} -> {_shown(b['HostIp'])}:{b['HostPort']}")
    if private and not out:
        raise NotFound(f"No public port '{private}' published for {containers.name_of(rec)}")
    return out
