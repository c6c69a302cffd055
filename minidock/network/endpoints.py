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
                "Gateway": "", "MacAddress": "", "Networks": {}}
    with store.lock():
        for name, cfg in wanted_networks(rec):
            settings["Networks"][name] = _endpoint(store.get_or_create(name), rec, cfg, j)
        primary = settings["Networks"][mode(rec)]
        settings["Ports"] = _reserve_ports(rec, primary["IPAddress"], j)
    if mode(rec) == store.DEFAULT:
        settings.update(IPAddress=primary["IPAddress"], IPPrefixLen=primary["IPPrefixLen"],
                        Gateway=primary["Gateway"], MacAddress=primary["MacAddress"])
    rec["NetworkSettings"] = settings


def _endpoint(net: dict, rec: dict, cfg: dict, j) -> dict:
    """Allocate an address on ``net`` for the container (lock held); journaled first."""
    cid = rec["Id"]
    wanted = (cfg.get("IPAMConfig") or {}).get("IPv4Address") or None
    # a restarted container asks for its previous address (selfheal, issue 11: identity kept
    # where the network allows it); taken meanwhile, it gets another
    before = ((rec.get("NetworkSettings") or {}).get("Networks") or {}).get(net["Name"]) or {}
    ip = store.allocate(net, cid, wanted, preferred=before.get("IPAddress") or None)
    j.record("ipam", network=net["Name"], cid=cid, ip=ip)
    plen = store.subnet(net).prefixlen
    mac = store.mac_for(ip)
    name = containers.name_of(rec)
    aliases = list(cfg.get("Aliases") or [])
    if net["Name"] != store.DEFAULT:
        aliases.append(cid[:12])
    eid = os.urandom(32).hex()
    net["Containers"][cid] = {"Name": name, "EndpointID": eid, "MacAddress": mac,
                              "IPv4Address": f"{ip}/{plen}", "IPv6Address": "",
                              "Aliases": aliases, "HostsPath": rec.get("HostsPath", "")}
    store.save(net)
    return {"IPAMConfig": cfg.get("IPAMConfig") or None, "Links": None, "Aliases": aliases,
            "NetworkID": net["Id"], "EndpointID": eid, "Gateway": store.gateway(net),
            "IPAddress": ip, "IPPrefixLen": plen, "IPv6Gateway": "", "GlobalIPv6Address": "",
            "GlobalIPv6PrefixLen": 0, "MacAddress": mac, "DriverOpts": None}


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


def _port_taken(reserved: dict, proto: str, host_ip: str, port: int) -> bool:
    for key in reserved:
        p, ip, n = key.split("/")
        if p == proto and int(n) == port and (ip == "0.0.0.0" or not host_ip or host_ip in ("0.0.0.0", ip)):
            return True
    stype = socket.SOCK_DGRAM if proto == "udp" else socket.SOCK_STREAM
    with socket.socket(socket.AF_INET, stype) as s:
        try:
            s.bind((host_ip or "0.0.0.0", port))
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                return True
            if e.errno == errno.EADDRNOTAVAIL:
                raise InvalidArgument(f"cannot publish on {host_ip}:{port}: no such address on this host") from None
            raise
    return False


def _random_port(reserved: dict, proto: str, host_ip: str) -> int:
    stype = socket.SOCK_DGRAM if proto == "udp" else socket.SOCK_STREAM
    for _ in range(100):
        with socket.socket(socket.AF_INET, stype) as s:
            s.bind((host_ip or "0.0.0.0", 0))
            port = s.getsockname()[1]
        if not _port_taken(reserved, proto, host_ip, port):
            return port
    raise Conflict("could not find a free host port to publish on")


def _reserve_ports(rec: dict, ip: str, j) -> dict:
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
        if host_port:
            hp = int(host_port)
            if _port_taken(reserved, proto, host_ip, hp):
                raise Conflict(f"driver failed programming external connectivity on endpoint {name}: "
                               f"Bind for {host_ip or '0.0.0.0'}:{hp} failed: port is already allocated")
        else:
            hp = _random_port(reserved, proto, host_ip)
        j.record("port", cid=rec["Id"], proto=proto, host_ip=host_ip, host_port=hp, ip=ip, cport=int(num))
        reserved[_port_key(proto, host_ip, hp)] = rec["Id"]
        store.save_ports(reserved)
        ports.setdefault(cport, None)
        ports[cport] = (ports[cport] or []) + [{"HostIp": host_ip or "0.0.0.0", "HostPort": str(hp)}]
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
    ep.update(IPAddress="", IPPrefixLen=0, Gateway="", MacAddress="", EndpointID="")
    if network == mode(rec):
        ns.update(IPAddress="", IPPrefixLen=0, Gateway="", MacAddress="", Ports={}, SandboxKey="")
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
            out.append(f"{b['HostIp']}:{b['HostPort']}" if private
                       else f"{cport} -> {b['HostIp']}:{b['HostPort']}")
    if private and not out:
        raise NotFound(f"No public port '{private}' published for {containers.name_of(rec)}")
    return out
