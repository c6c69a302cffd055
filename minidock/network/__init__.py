"""Container networking: the default bridge, user networks, published ports, /etc/hosts.

The package, one room each: common.py (shared naming), endpoints.py (addresses and ports),
links.py (bridge, veth, DNAT elements, undo handlers), etcfiles.py (hosts and resolv.conf);
this module is the API: connect, networks (create, rm, ls, inspect, prune), `network connect`.

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

from minidock.errors import Conflict, InvalidArgument, MinidockError, NotFound
from minidock.network import firewall, nat, store
from minidock.network.common import (  # noqa: F401 - the package's interface
    _VETH,
    LOCALHOST,
    NET_KINDS,
    _journal,
    _other,
    mode,
    veth_name,
    wanted_networks,
)
from minidock.network.endpoints import (  # noqa: F401 - the package's interface
    _endpoint,
    _forget_endpoint,
    _port_key,
    _port_taken,
    _random_port,
    _reserve_ports,
    _save_settings,
    check_ports,
    netns_path,
    port_bindings,
    port_lines,
    prepare,
)
from minidock.network.etcfiles import (  # noqa: F401 - the package's interface
    hosts_file,
    refresh_peers,
    resolv_conf,
)
from minidock.network.links import (  # noqa: F401 - the package's interface
    _default_mtu,
    _enable_forwarding,
    _netns_alive,
    _plug,
    _publish,
    _restore_forwarding,
    _undo_network,
    ensure_bridge,
    undo_ipam,
    undo_nft,
    undo_port,
    undo_veth,
)
from minidock.network.netlink import Netlink, in_netns
from minidock.state import containers


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
            _addresses(c, i, ep)
        c.add_default_route(nets[0][1]["Gateway"], "eth0")
        if nets[0][1].get("IPv6Gateway"):
            c.add_default_route(nets[0][1]["IPv6Gateway"], "eth0")
    settings["SandboxKey"] = netns
    settings["Bridge"] = ""
    _publish(journal)
    rec["NetworkSettings"] = settings
    refresh_peers(rec, [n for n, _ in nets])
    return settings


def _addresses(c: Netlink, i: int, ep: dict) -> None:
    """eth<i>'s addresses inside the container (IPv4, and IPv6 on a dual-stack network), then up."""
    c.add_address(f"eth{i}", ep["IPAddress"], ep["IPPrefixLen"])
    if ep.get("GlobalIPv6Address"):
        c.add_address(f"eth{i}", ep["GlobalIPv6Address"], ep["GlobalIPv6PrefixLen"])
    c.set_up(f"eth{i}")


def create(name: str, subnet: str | list[str] | None = None, gateway: str | list[str] | None = None,
           labels: dict | None = None, driver: str = "bridge", internal: bool = False,
           ipv6: bool | None = None) -> dict:
    """`network create`: ``subnet``/``gateway`` may each hold one IPv4 and one IPv6 value (the
    CLI's repeated --subnet/--gateway); ``ipv6`` None = dual-stack where the host has IPv6."""
    if driver != "bridge":
        raise InvalidArgument(f"plugin \"{driver}\" not found", "Only the bridge driver exists in minidock.")
    if name in store.PREDEFINED:
        raise Conflict(f"network with name {name} already exists")
    v4, v6 = _by_family(subnet, "subnet")
    g4, g6 = _by_family(gateway, "gateway")
    with store.lock():
        return store.new_network(name, v4, g4, labels, internal, ipv6=ipv6, wanted_subnet6=v6, gw6=g6)


def _by_family(values: str | list[str] | None, what: str) -> tuple[str | None, str | None]:
    if not values:
        return None, None
    values = [values] if isinstance(values, str) else list(values)
    v4 = [v for v in values if ":" not in v]
    v6 = [v for v in values if ":" in v]
    if len(v4) > 1 or len(v6) > 1:
        raise InvalidArgument(f"only one IPv4 and one IPv6 {what} are supported per network")
    return (v4[0] if v4 else None), (v6[0] if v6 else None)


def public(net: dict) -> dict:
    """The record as `network inspect` shows it (minus our bookkeeping)."""
    out = {k_: v for k_, v in net.items() if k_ not in ("UserSubnet", "UserSubnet6")}
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
    sub6 = store.subnet6(net)
    if sub6 and nat.table_exists("ip6"):
        nat.remove_network(str(sub6), br)
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
        nat.delete_table()  # (ip and ip6; each only if it is there)
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
                if nat.table_exists("ip6" if ":" in ip else "ip"):
                    nat.remove_port(proto, "" if ip == "0.0.0.0" else ip, int(port))
                del reserved[key]
                removed.append(f"port {key}")
        store.save_ports(reserved)
        removed += _orphan_links(alive)
        if not store.all_networks() and store.host_state().get("nft_table"):
            _last_gone()
            removed.append(f"nft table ip {nat.TABLE}")  # (and ip6 minidock, where there was one)
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


def connect_container(ref_net: str, rec: dict, ip: str | None = None, aliases: list[str] | None = None,
                      ip6: str | None = None) -> None:
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
    ipam = {k_: v for k_, v in (("IPv4Address", ip), ("IPv6Address", ip6)) if v}
    cfg = {"IPAMConfig": ipam, "Aliases": list(aliases or [])}
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
            _addresses(c, i, ep)
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
