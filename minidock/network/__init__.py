"""Container networking: the default bridge, user networks, published ports, /etc/hosts.

What a container on a bridge network gets (Docker's model):

* a bridge per network (``minidock0`` for the default ``bridge`` network, ``br-<id>`` for user
  networks) holding the gateway address, made on first use;
* a veth pair per container and network: the host end (``md<id10><n>``) on the bridge, the other
  end born inside the container's network namespace as ``eth<n>``; an address from the network's
  IPAM, a default route via the gateway, loopback up;
* outbound NAT and published ports in nftables, in our own table (see :mod:`.nat`);
* name resolution on user networks through *kept /etc/hosts files*: every member's hosts file is
  rewritten in place when a container joins or leaves (see docs/networking.md for why no DNS).

Order, as the engine calls us (minidock/engine/lifecycle.py launch()): check_ports (allocate the
addresses and host ports, refuse a taken port before anything starts) -> hosts_file/resolv_conf
-> runtime create -> connect (links into /proc/<pid>/ns/net) -> start. Everything is journaled in
the container's journal before it is made; the handlers registered below undo it (stop, rm, or
the clean-up after a crash).

Import cost matters: this package is imported by every `run` on a bridge. It imports no
pyroute2 (see netlink.py for why), and the nft binary runs only when a bridge is created or a
port is published.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import socket

from minidock import kernel as k
from minidock.errors import Conflict, InvalidArgument, KernelError, MinidockError, NotFound
from minidock.network import firewall, nat, store
from minidock.network.netlink import Netlink, in_netns
from minidock.state import containers
from minidock.state.journal import register

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


# --- before the container exists: addresses and ports ---------------------------------------------
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


def _other(ref: str) -> dict:
    return containers.full(containers.resolve(ref))


# --- the links ---------------------------------------------------------------------------------------
def _default_mtu(nl: Netlink) -> int:
    """The MTU of the interface holding the default route (1500 if none): no PMTU black holes."""
    try:
        for line in open("/proc/net/route").read().splitlines()[1:]:
            f = line.split()
            if len(f) > 7 and f[1] == "00000000" and f[7] == "00000000":
                return nl.link_mtu(f[0]) or 1500
    except OSError:
        pass
    return 1500


def ensure_bridge(nl: Netlink, net: dict) -> int:
    """The network's bridge link (made, addressed and NATed on first use); returns its index."""
    br = store.bridge_name(net)
    idx = nl.link_index(br)
    if idx:
        return idx
    with store.lock():
        idx = nl.link_index(br)
        if idx:
            return idx
        net = store.load(net["Name"]) or net
        mtu = _default_mtu(nl)
        st = store.host_state()  # remembered before it exists: prune_orphans may remove only ours
        st["bridges"] = sorted(set(st.get("bridges", [])) | {br})
        st["nft_table"] = True
        store.save_host_state(st)
        try:
            nl.add_bridge(br, mtu)
        except KernelError as e:
            if e.errno != errno.EEXIST:
                raise
        sub = store.subnet(net)
        nl.add_address(br, store.gateway(net), sub.prefixlen)
        idx = nl.link_index(br)
        nl.set_up(br, idx)
        nat.ensure_table()  # first: its input chain drops what the bridge sends to 127.0.0.0/8 (CVE-2020-8558)
        nat.add_network(str(sub), br)
        k.write_file(f"/proc/sys/net/ipv4/conf/{br}/route_localnet", "1",
                     why="let published ports answer 127.0.0.1: DNAT'ed loopback traffic may leave via this bridge "
                         "(minidock's input rule drops anything else from the bridge to 127.0.0.0/8)")
        firewall.open_bridge(br, nat._use_iptables())
        _enable_forwarding()
        net["Options"]["com.docker.network.driver.mtu"] = str(mtu)
        store.save(net)
    return idx


def _enable_forwarding() -> None:
    """ip_forward=1 for outbound NAT; we remember if it was 0, to restore it with the last bridge."""
    path = "/proc/sys/net/ipv4/ip_forward"
    try:
        cur = open(path).read().strip()
    except OSError:
        return
    if cur != "1":
        st = store.host_state()
        st["ip_forward_was"] = cur
        store.save_host_state(st)
        k.write_file(path, "1", why="route the containers' traffic out of their subnet (outbound NAT)")


def _restore_forwarding() -> None:
    st = store.host_state()
    if "ip_forward_was" in st:
        k.write_file("/proc/sys/net/ipv4/ip_forward", st.pop("ip_forward_was"),
                     why="minidock turned forwarding on; its last bridge is gone, so put it back")
        store.save_host_state(st)


def connect(rec: dict, pid: int, journal) -> dict:
    """Plug the container (init ``pid``) into its networks; returns NetworkSettings."""
    settings = rec.get("NetworkSettings") or {}
    if not settings.get("Networks"):
        prepare(rec)
        settings = rec["NetworkSettings"]
    netns = f"/proc/{pid}/ns/net"
    nets = list(settings["Networks"].items())
    with Netlink() as nl:
        for i, (name, ep) in enumerate(nets):
            _plug(nl, rec, i, store.load(name), ep, netns, journal)
    with in_netns(netns) as c:
        c.set_up("lo")
        for i, (_, ep) in enumerate(nets):
            c.add_address(f"eth{i}", ep["IPAddress"], ep["IPPrefixLen"])
            c.set_up(f"eth{i}")
        c.add_default_route(nets[0][1]["Gateway"], "eth0")
    settings["SandboxKey"] = netns
    settings["Bridge"] = ""
    _publish(journal)
    rec["NetworkSettings"] = settings
    refresh_peers(rec, [n for n, _ in nets])
    return settings


def _plug(nl: Netlink, rec: dict, i: int, net: dict | None, ep: dict, netns: str, journal) -> None:
    if net is None:
        raise NotFound(f"network {ep.get('NetworkID', '')[:12]} not found")
    br = ensure_bridge(nl, net)
    net = store.load(net["Name"]) or net  # (the MTU is known once the bridge exists)
    host = veth_name(rec["Id"], i)
    journal.record("veth", name=host, network=net["Name"], pid=int(netns.split("/")[2]),
                   netns_ino=os.stat(netns).st_ino)
    mtu = int(net["Options"].get("com.docker.network.driver.mtu") or 1500)
    fd = os.open(netns, os.O_RDONLY | os.O_CLOEXEC)
    try:
        nl.add_veth_into(host, f"eth{i}", fd, master=br, mtu=mtu, bridge=store.bridge_name(net),
                         mac=bytes.fromhex(ep["MacAddress"].replace(":", "")), netns_desc=netns)
    finally:
        os.close(fd)


def _publish(journal) -> None:
    """The DNAT map elements of the ports reserved in check_ports (journaled there)."""
    for e in journal.entries():
        if e["kind"] == "port":
            nat.add_port(e["proto"], e["host_ip"], e["host_port"], e["ip"], e["cport"])


def _undo_network(journal, network: str) -> list[str]:
    from minidock.state.journal import _handler

    errors, keep = [], []
    for e in reversed(journal.entries()):
        if e["kind"] in ("veth", "ipam") and e.get("network") == network:
            try:
                _handler(e["kind"])(e)
                continue
            except Exception as ex:  # noqa: BLE001
                errors.append(f"undo {e['kind']}: {ex}")
        keep.append(e)
    journal._rewrite(list(reversed(keep)))
    return errors


# --- /etc/hosts and /etc/resolv.conf -------------------------------------------------------------
def hosts_file(rec: dict) -> str:
    m = mode(rec)
    if m.startswith("container:"):
        return _read(_other(m[10:]).get("HostsPath", ""))
    hc, cfg = rec["HostConfig"], rec["Config"]
    settings = rec.get("NetworkSettings") or {}
    nets = settings.get("Networks") or {}
    lines = [LOCALHOST]
    hostname = cfg.get("Hostname") or rec["Id"][:12]
    if cfg.get("Domainname"):
        hostname = f"{hostname}.{cfg['Domainname']} {hostname}"
    cname = containers.name_of(rec) if rec.get("Name") else ""
    for i, (name, ep) in enumerate(nets.items()):
        own = [hostname] if i == 0 else []
        if name != store.DEFAULT:  # on user networks a container also knows itself by name
            own += [n for n in [cname, *(ep.get("Aliases") or [])] if n and n not in own]
        if own:
            lines.append(f"{ep['IPAddress']}\t{' '.join(own)}\n")
    gw = next((ep["Gateway"] for ep in nets.values()), "")
    for h in hc.get("ExtraHosts") or []:
        name, _, ip = h.partition(":")
        lines.append(f"{gw if ip == 'host-gateway' else ip}\t{name}\n")
    seen = set()
    for name in nets:
        if name == store.DEFAULT:
            continue  # like Docker: no name resolution on the default bridge
        net = store.load(name) or {"Containers": {}}
        for cid, ep in sorted(net["Containers"].items(), key=lambda kv: kv[1]["IPv4Address"]):
            if cid == rec["Id"]:
                continue
            ip = ep["IPv4Address"].split("/")[0]
            names = [ep["Name"]] + [a for a in ep.get("Aliases") or [] if a != ep["Name"]]
            line = f"{ip}\t{' '.join(names)}\n"
            if line not in seen:
                seen.add(line)
                lines.append(line)
        for ip, names in (net.get("Hosts") or {}).items():  # extra names (minidock.apps: Services)
            lines.append(f"{ip}\t{' '.join(names)}\n")
    return "".join(lines)


def resolv_conf(rec: dict, default: str) -> str:
    """The container's resolv.conf: its network peer's (--network container:X) or ``default``."""
    m = mode(rec)
    if m.startswith("container:"):
        return _read(_other(m[10:]).get("ResolvConfPath", ""))
    return default


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def refresh_peers(rec: dict | None, networks: list[str]) -> None:
    """Rewrite, in place, the hosts file of every running member of these user networks.

    In place (truncate + write, same inode): the file is bind-mounted into each container, and a
    rename would leave the container looking at the old inode.
    """
    done = {rec["Id"]} if rec else set()
    for name in networks:
        if name == store.DEFAULT:
            continue
        net = store.load(name)
        for cid in (net or {}).get("Containers", {}):
            if cid in done:
                continue
            done.add(cid)
            try:
                other = containers.load(cid)
            except (NotFound, OSError, ValueError):
                continue
            path = other.get("HostsPath")
            if path and os.path.exists(path):
                with open(path, "r+") as f:
                    f.truncate(0)
                    f.write(hosts_file(other))


# --- undo handlers (journal kinds veth, ipam, port, nft) -----------------------------------------
def undo_veth(entry: dict) -> None:
    """Delete the host end of the pair, unless the kernel is about to do it for us.

    When the container's namespace dies (its last process exited), the kernel destroys every
    link in it, and a veth's death takes its peer along. Deleting it ourselves costs ~30 ms
    (RTM_DELLINK waits for an RCU grace period), a third of a whole `run --rm`, so we only do it
    when the namespace is still alive (a crash clean-up, `network disconnect`, a live pid).
    """
    if entry.get("pid") and not _netns_alive(entry["pid"], entry.get("netns_ino")):
        return
    with Netlink() as nl:
        nl.delete_link(entry["name"])


def _netns_alive(pid: int, ino: int | None) -> bool:
    try:
        return os.stat(f"/proc/{pid}/ns/net").st_ino == ino
    except OSError:
        return False  # gone, or a zombie (no namespaces left)


def undo_ipam(entry: dict) -> None:
    with store.lock():
        net = store.load(entry["network"])
        if net and entry["cid"] in net["Containers"] and \
                net["Containers"][entry["cid"]]["IPv4Address"].split("/")[0] == entry["ip"]:
            del net["Containers"][entry["cid"]]
            store.save(net)
    with contextlib.suppress(Exception):
        refresh_peers({"Id": entry["cid"]}, [entry["network"]])
    with contextlib.suppress(Exception):
        _forget_endpoint(entry["cid"], entry["network"])


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


def undo_port(entry: dict) -> None:
    with store.lock():
        reserved = store.ports()
        key = _port_key(entry["proto"], entry["host_ip"], entry["host_port"])
        if reserved.get(key) == entry["cid"]:
            nat.remove_port(entry["proto"], entry["host_ip"], entry["host_port"])  # (no table: ignored)
            del reserved[key]
            store.save_ports(reserved)


def undo_nft(entry: dict) -> None:
    nat.nft(entry["script"], why="undo", ignore_missing=True)


register("veth", undo_veth)
register("ipam", undo_ipam)
register("port", undo_port)
register("nft", undo_nft)


# --- networks: create, rm, connect, prune ------------------------------------------------------
def create(name: str, subnet: str | None = None, gateway: str | None = None,
           labels: dict | None = None, driver: str = "bridge", internal: bool = False) -> dict:
    if driver != "bridge":
        raise InvalidArgument(f"plugin \"{driver}\" not found", "Only the bridge driver exists in minidock.")
    if name in store.PREDEFINED:
        raise Conflict(f"network with name {name} already exists")
    with store.lock():
        return store.new_network(name, subnet, gateway, labels, internal)


def public(net: dict) -> dict:
    """The record as `network inspect` shows it (minus our bookkeeping)."""
    out = {k_: v for k_, v in net.items() if k_ != "UserSubnet"}
    out["Containers"] = {cid: {k_: v for k_, v in ep.items() if k_ not in ("Aliases", "HostsPath")}
                         for cid, ep in net["Containers"].items()}
    return out


def pseudo(name: str) -> dict:
    import hashlib

    return {"Name": name, "Id": hashlib.sha256(f"minidock-{name}".encode()).hexdigest(), "Created": "",
            "Scope": "local", "Driver": "host" if name == "host" else "null", "EnableIPv6": False,
            "IPAM": {"Driver": "default", "Options": None, "Config": []}, "Internal": False,
            "Attachable": False, "Ingress": False, "ConfigFrom": {"Network": ""}, "ConfigOnly": False,
            "Containers": {}, "Options": {}, "Labels": {}}


def listing() -> list[dict]:
    nets = [public(n) for n in store.all_networks()]
    if not any(n["Name"] == store.DEFAULT for n in nets):
        nets.append(pseudo(store.DEFAULT) | {"Driver": "bridge"})
    return nets + [pseudo("host"), pseudo("none")]


def inspect(ref: str) -> dict:
    if ref in ("host", "none"):
        return pseudo(ref)
    try:
        return public(store.find(ref))
    except NotFound:
        if ref == store.DEFAULT:
            return pseudo(ref) | {"Driver": "bridge"}
        raise


def remove(ref: str) -> str:
    if ref in store.PREDEFINED:
        raise Conflict(f"{ref} is a pre-defined network and cannot be removed")
    with store.lock():
        net = store.find(ref)
        if net["Containers"]:
            raise Conflict(f"error while removing network: network {net['Name']} id {net['Id']} "
                           "has active endpoints")
        _teardown(net)
    return net["Name"]


def _teardown(net: dict) -> None:
    """Bridge, NAT elements and record of an unused network (lock held)."""
    br = store.bridge_name(net)
    with Netlink() as nl:
        nl.delete_link(br)
    if nat.table_exists():
        nat.remove_network(net["IPAM"]["Config"][0]["Subnet"], br)
    firewall.close_bridge(br)
    store.delete(net["Name"])
    st = store.host_state()
    if br in st.get("bridges", []):
        st["bridges"].remove(br)
        store.save_host_state(st)
    if not store.all_networks():
        _last_gone()


def _last_gone() -> None:
    st = store.host_state()
    if st.pop("nft_table", False):
        if nat.table_exists():
            nat.delete_table()
        store.save_host_state(st)
    _restore_forwarding()


def prune() -> list[str]:
    """Remove every network without endpoints (the default bridge too: it comes back on use)."""
    removed = []
    with store.lock():
        for net in store.all_networks():
            if not net["Containers"]:
                _teardown(net)
                if net["Name"] != store.DEFAULT:
                    removed.append(net["Name"])
        if not store.all_networks():
            _last_gone()
    return removed


def prune_orphans() -> list[str]:
    """Leftovers of crashes that belong to no existing container: endpoints, ports, veths, bridges."""
    alive = set(containers.all_ids())
    removed = []
    with store.lock():
        for net in store.all_networks():
            gone = [cid for cid in net["Containers"] if cid not in alive]
            for cid in gone:
                del net["Containers"][cid]
                removed.append(f"endpoint {net['Name']}/{cid[:12]}")
            if gone:
                store.save(net)
        reserved = store.ports()
        for key, cid in list(reserved.items()):
            if cid not in alive:
                proto, ip, port = key.split("/")
                if nat.table_exists():
                    nat.remove_port(proto, "" if ip == "0.0.0.0" else ip, int(port))
                del reserved[key]
                removed.append(f"port {key}")
        store.save_ports(reserved)
        removed += _orphan_links(alive)
        if not store.all_networks() and store.host_state().get("nft_table"):
            _last_gone()
            removed.append(f"nft table ip {nat.TABLE}")
    return removed


def _orphan_links(alive: set[str]) -> list[str]:
    """Our veths whose container is gone, and bridges we made whose network is gone (lock held).

    Ours means: named by us *and* (for bridges) remembered in host.json when we made them;
    br-<id> is Docker's naming too, and another state root's minidock0 is not ours either.
    """
    removed = []
    in_use = {store.bridge_name(n) for n in store.all_networks()}
    made = set(store.host_state().get("bridges", []))
    with Netlink() as nl:
        links = nl.links()
        bridges = {lk["index"]: lk["name"] for lk in links if lk["kind"] == "bridge"}
        for lk in links:
            mt = _VETH.match(lk["name"])
            if lk["kind"] == "veth" and mt and bridges.get(lk["master"]) in made | in_use \
                    and not any(c.startswith(mt.group(1)) for c in alive):
                nl.delete_link(lk["name"])
                removed.append(f"veth {lk['name']}")
        for name in bridges.values():
            if name in made and name not in in_use:
                nl.delete_link(name)
                removed.append(f"bridge {name}")
    for name in list(store.host_state().get("host_rules") or {}):
        if name not in in_use:
            firewall.close_bridge(name)
            removed.append(f"accept rules of {name}")
    st = store.host_state()
    if st.get("bridges") and any(b not in in_use for b in st["bridges"]):
        st["bridges"] = [b for b in st["bridges"] if b in in_use]
        store.save_host_state(st)
    return removed


# --- network connect / disconnect of existing containers -------------------------------------
def connect_container(ref_net: str, rec: dict, ip: str | None = None, aliases: list[str] | None = None) -> None:
    """`network connect`: ``rec`` is the container's record, refreshed by the caller."""
    net = store.find(ref_net) if ref_net != store.DEFAULT else store.get_or_create(ref_net)
    m = mode(rec)
    if m in ("host", "none") or m.startswith("container:"):
        raise Conflict("container cannot be disconnected from host network or connected to host network"
                       if m == "host" else f"container sharing network namespace with another container "
                       f"or host cannot be connected to any other network ({m})")
    name = net["Name"]
    eps = rec.setdefault("NetworkingConfig", {}).setdefault("EndpointsConfig", {})
    if name in eps or name == m:
        raise Conflict(f"endpoint with name {containers.name_of(rec)} already exists in network {name}")
    cfg = {"IPAMConfig": {"IPv4Address": ip} if ip else {}, "Aliases": list(aliases or [])}
    eps[name] = cfg
    if rec["State"].get("Running"):
        j = _journal(rec)
        with store.lock():
            ep = _endpoint(store.load(name), rec, cfg, j)
        i = len(rec["NetworkSettings"].get("Networks") or {})
        netns = f"/proc/{rec['State']['Pid']}/ns/net"
        with Netlink() as nl:
            _plug(nl, rec, i, store.load(name), ep, netns, j)
        with in_netns(netns) as c:
            c.add_address(f"eth{i}", ep["IPAddress"], ep["IPPrefixLen"])
            c.set_up(f"eth{i}")
        rec["NetworkSettings"].setdefault("Networks", {})[name] = ep
        _save_settings(rec)
        refresh_peers(None, [name])
    else:
        _save_settings(rec)


def disconnect_container(ref_net: str, rec: dict, force: bool = False) -> None:
    """`network disconnect`: ``rec`` is the container's record, refreshed by the caller."""
    cid = rec["Id"]
    net = store.find(ref_net)
    name = net["Name"]
    eps = (rec.get("NetworkingConfig") or {}).get("EndpointsConfig") or {}
    attached = name in (rec.get("NetworkSettings") or {}).get("Networks", {}) and rec["State"].get("Running")
    if name == mode(rec):
        raise Conflict(f"container {cid[:12]} is attached to {name} as its primary network (--network); "
                       "minidock cannot detach eth0 from a running container",
                       "Stop and recreate the container with another --network.")
    if name not in eps and not attached and not force:
        raise Conflict(f"container {cid} is not connected to network {name}")
    eps.pop(name, None)
    if attached:
        errors = _undo_network(_journal(rec), name)
        if errors:
            raise MinidockError("; ".join(errors))
        rec["NetworkSettings"]["Networks"].pop(name, None)
        refresh_peers(None, [name])
    _save_settings(rec)


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
