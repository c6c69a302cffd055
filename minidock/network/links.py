"""Links: the bridge (made, addressed, NATed on first use), a container's veth into its netns,
published ports' DNAT elements, and the journal's undo handlers for all of them.
"""

from __future__ import annotations

import contextlib
import errno
import os

from minidock import kernel as k
from minidock.errors import KernelError, NotFound
from minidock.network import firewall, nat, store
from minidock.network.common import _VETH, veth_name
from minidock.network.endpoints import _forget_endpoint, _port_key
from minidock.network.etcfiles import refresh_peers
from minidock.network.netlink import Netlink
from minidock.state.journal import register


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
        if k.tracing():  # what a learner replaying this trace needs to know is already there
            sub = store.subnet(net)
            sub6 = store.subnet6(net)
            v6 = (f"; ip addr add {store.gateway6(net)}/{sub6.prefixlen} dev {br} nodad (IPv6, NAT for {sub6} in "
                  f"nft table ip6 {nat.TABLE})") if sub6 else ""
            k.note(f"bridge {br} exists already ({store.gateway(net)}/{sub.prefixlen}, NAT for {sub} in nft table "
                   f"ip {nat.TABLE}): made by the first container on this network, with: ip link add {br} type "
                   f"bridge; ip addr add {store.gateway(net)}/{sub.prefixlen} dev {br}; ip link set {br} up{v6}")
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
        sub6 = store.subnet6(net)
        if sub6:  # a dual-stack bridge (docs/networking.md "IPv6")
            st = store.host_state()
            st["nft_table"] = True
            store.save_host_state(st)
            nl.add_address(br, store.gateway6(net), sub6.prefixlen, idx)
            nat.ensure_table("ip6")
            nat.add_network(str(sub6), br)
            firewall.open_bridge(br, False, v6=True)
            _enable_forwarding6()
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


def _enable_forwarding6() -> None:
    """IPv6 forwarding on, for published ports reached from other hosts and the containers' own
    IPv6 traffic; remembered to be restored with the last bridge, like ip_forward.

    Turning IPv6 forwarding on makes Linux ignore router advertisements on every interface whose
    accept_ra is 1: a host that got its IPv6 default route by SLAAC would lose it when the route
    expires. So those interfaces get accept_ra=2 ("accept them even when forwarding") first,
    remembered and put back with the rest."""
    import os

    path = "/proc/sys/net/ipv6/conf/all/forwarding"
    try:
        cur = open(path).read().strip()
    except OSError:
        return
    if cur == "1":
        return
    st = store.host_state()
    st["ip6_forward_was"] = cur
    ra = st.setdefault("accept_ra_was", {})
    ours = set(st.get("bridges", []))
    for iface in sorted(os.listdir("/proc/sys/net/ipv6/conf")):
        if iface in ("all", "default", "lo") or iface in ours or _VETH.match(iface):
            continue
        try:
            if open(f"/proc/sys/net/ipv6/conf/{iface}/accept_ra").read().strip() == "1":
                ra[iface] = "1"
        except OSError:
            continue
    if not ra:
        del st["accept_ra_was"]
    store.save_host_state(st)  # remembered before anything changes
    for iface in ra:
        with contextlib.suppress(OSError, KernelError):
            k.write_file(f"/proc/sys/net/ipv6/conf/{iface}/accept_ra", "2",
                         why=f"keep {iface} accepting router advertisements (its IPv6 default route) once "
                             "the host forwards IPv6")
    k.write_file(path, "1", why="route the containers' IPv6 traffic, and published ports reached over IPv6 "
                                "from other hosts")


def _restore_forwarding() -> None:
    st = store.host_state()
    if "ip_forward_was" in st:
        k.write_file("/proc/sys/net/ipv4/ip_forward", st.pop("ip_forward_was"),
                     why="minidock turned forwarding on; its last bridge is gone, so put it back")
        store.save_host_state(st)
    if "ip6_forward_was" in st:
        with contextlib.suppress(OSError, KernelError):
            k.write_file("/proc/sys/net/ipv6/conf/all/forwarding", st.pop("ip6_forward_was"),
                         why="minidock turned IPv6 forwarding on; its last bridge is gone, so put it back")
        for iface, was in (st.pop("accept_ra_was", None) or {}).items():
            with contextlib.suppress(OSError, KernelError):
                k.write_file(f"/proc/sys/net/ipv6/conf/{iface}/accept_ra", was,
                             why=f"{iface}'s accept_ra as it was before minidock forwarded IPv6")
        store.save_host_state(st)


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
    nat.add_ports([(e["proto"], e["host_ip"], e["host_port"], e["ip"], e["cport"])
                   for e in journal.entries() if e["kind"] == "port"])


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
