"""A tiny rtnetlink client: just the link, address and route calls a container's network needs.

Why not pyroute2 here? Importing pyroute2 costs ~120 ms on this machine (it loads asyncio, ssl,
multiprocessing and its whole NDB), more than the 100 ms budget of a whole `run --rm` on the
default bridge. The dozen messages below are plain structs over an AF_NETLINK socket, so we
speak them directly, through the kernel layer (kernel.netlink_open/netlink: the socket, the
framing, acks and errors); each message that changes something records a `--explain` step with
the `ip` command that does the same thing.

Only what minidock needs: create a bridge, create a veth pair whose peer is born inside the
container's network namespace (already named eth0), set links up, add addresses (IPv4 and IPv6)
and default routes, look links up, delete links.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import struct

from minidock import kernel as k
from minidock.errors import KernelError

NETLINK_ROUTE = 0
NLM_F_REQUEST, NLM_F_MULTI, NLM_F_ACK = 1, 2, 4
NLM_F_EXCL, NLM_F_CREATE, NLM_F_DUMP = 0x200, 0x400, 0x300
RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK, RTM_SETLINK = 16, 17, 18, 19
RTM_NEWADDR, RTM_GETADDR = 20, 22
RTM_NEWROUTE = 24
IFLA_ADDRESS, IFLA_IFNAME, IFLA_MTU, IFLA_MASTER = 1, 3, 4, 10
IFLA_PROTINFO, IFLA_LINKINFO, IFLA_NET_NS_FD = 12, 18, 28
IFLA_BRPORT_MODE = 4  # hairpin
AF_BRIDGE = 7
IFLA_INFO_KIND, IFLA_INFO_DATA = 1, 2
VETH_INFO_PEER = 1
IFA_ADDRESS, IFA_LOCAL = 1, 2
IFA_F_NODAD = 0x02
RTA_DST, RTA_OIF, RTA_GATEWAY = 1, 4, 5
IFF_UP = 1
NLA_F_NESTED = 0x8000
CLONE_NEWNET = 0x40000000

_IFINFO = struct.Struct("=BxHiII")  # family, type, index, flags, change
_IFADDR = struct.Struct("=BBBBI")  # family, prefixlen, flags, scope, index
_RTMSG = struct.Struct("=BBBBBBBBI")  # family, dst_len, src_len, tos, table, proto, scope, type, flags


def attr(kind: int, value: bytes | str | int) -> bytes:
    if isinstance(value, str):
        value = value.encode() + b"\0"
    elif isinstance(value, int):
        value = struct.pack("=I", value)
    data = struct.pack("=HH", 4 + len(value), kind) + value
    return data + b"\0" * (-len(data) % 4)


def parse_attrs(data: bytes) -> dict[int, bytes]:
    out: dict[int, bytes] = {}
    off = 0
    while off + 4 <= len(data):
        length, kind = struct.unpack_from("=HH", data, off)
        if length < 4:
            break
        out.setdefault(kind & ~NLA_F_NESTED, data[off + 4:off + length])
        off += (length + 3) & ~3
    return out


class Netlink:
    """One rtnetlink socket, bound in the network namespace the caller is in when opening it."""

    def __init__(self) -> None:
        self.handle = k.netlink_open()

    def close(self) -> None:
        k.netlink_close(self.handle)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def request(self, mtype: int, flags: int, body: bytes, what: str,
                step: tuple[str, str, str] | None = None) -> list[tuple[int, bytes]]:
        """Send one message through the kernel layer; return the replies (type, payload).

        ``step`` = (detail, why, shell) for --explain, given where the message changes something.
        Raises KernelError on an error answer.
        """
        if step:
            detail, why, shell = step
            return k.netlink(self.handle, mtype, flags, body, what=what, detail=detail, why=why, shell=shell)
        return k.netlink(self.handle, mtype, flags, body, what=what)

    # --- links --------------------------------------------------------------------------------
    def link_index(self, name: str) -> int | None:
        try:
            replies = self.request(RTM_GETLINK, 0, _IFINFO.pack(0, 0, 0, 0, 0) + attr(IFLA_IFNAME, name),
                                   f"get link {name}")
        except KernelError as e:
            if e.errno in (errno.ENODEV, errno.ENOENT):
                return None
            raise
        for _, payload in replies:
            return _IFINFO.unpack_from(payload)[2]
        return None

    def link_mtu(self, name: str) -> int | None:
        try:
            replies = self.request(RTM_GETLINK, 0, _IFINFO.pack(0, 0, 0, 0, 0) + attr(IFLA_IFNAME, name),
                                   f"get link {name}")
        except KernelError:
            return None
        for _, payload in replies:
            attrs = parse_attrs(payload[_IFINFO.size:])
            if IFLA_MTU in attrs:
                return struct.unpack("=I", attrs[IFLA_MTU][:4])[0]
        return None

    def links(self) -> list[dict]:
        """Every link: {"index", "name", "master", "kind"}."""
        out = []
        for _, payload in self.request(RTM_GETLINK, NLM_F_DUMP, _IFINFO.pack(0, 0, 0, 0, 0), "dump links"):
            index = _IFINFO.unpack_from(payload)[2]
            attrs = parse_attrs(payload[_IFINFO.size:])
            info = parse_attrs(attrs.get(IFLA_LINKINFO, b""))
            out.append({"index": index, "name": attrs.get(IFLA_IFNAME, b"").rstrip(b"\0").decode(),
                        "master": struct.unpack("=I", attrs[IFLA_MASTER][:4])[0] if IFLA_MASTER in attrs else 0,
                        "kind": info.get(IFLA_INFO_KIND, b"").rstrip(b"\0").decode()})
        return out

    def add_bridge(self, name: str, mtu: int | None = None) -> None:
        body = _IFINFO.pack(0, 0, 0, 0, 0) + attr(IFLA_IFNAME, name)
        if mtu:
            body += attr(IFLA_MTU, mtu)
        body += attr(IFLA_LINKINFO | NLA_F_NESTED, attr(IFLA_INFO_KIND, "bridge"))
        self.request(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL | NLM_F_ACK, body, f"add bridge {name}",
                     step=(f"new bridge {name}", "the switch every container's veth plugs into",
               f"ip link add {name} type bridge"))

    def add_veth_into(self, host: str, peer: str, netns_fd: int, *, master: int, mtu: int, bridge: str = "<bridge>",
                      mac: bytes | None, netns_desc: str) -> None:
        """A veth pair: ``host`` on the bridge ``master``, ``peer`` created directly in the netns."""
        peer_body = _IFINFO.pack(0, 0, 0, 0, 0) + attr(IFLA_IFNAME, peer) + \
            attr(IFLA_NET_NS_FD, netns_fd) + attr(IFLA_MTU, mtu)
        if mac:
            peer_body += attr(IFLA_ADDRESS, mac)
        info = attr(IFLA_INFO_KIND, "veth") + attr(IFLA_INFO_DATA | NLA_F_NESTED,
                                                   attr(VETH_INFO_PEER | NLA_F_NESTED, peer_body))
        body = _IFINFO.pack(0, 0, 0, 0, 0) + attr(IFLA_IFNAME, host) + attr(IFLA_MTU, mtu) + \
            attr(IFLA_MASTER, master) + attr(IFLA_LINKINFO | NLA_F_NESTED, info)
        self.request(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL | NLM_F_ACK, body, f"add veth {host}",
                     step=(f"new veth {host} <-> {peer} (in {netns_desc}), {host} on the bridge",
               "a virtual cable: one end in the container's network namespace, one on the bridge",
               f"ip link add {host} mtu {mtu} master {bridge} up type veth peer name {peer} "
               f"netns {netns_desc}"))
        index = self.link_index(host)
        self.set_hairpin(host, index)
        self.set_up(host, index)  # (up at creation fails: a veth cannot open before its peer is linked)

    def set_up(self, name: str, index: int | None = None) -> None:
        index = index or self.link_index(name)
        if index is None:
            raise KernelError("netlink", f"set {name} up", errno.ENODEV)
        self.request(RTM_NEWLINK, NLM_F_ACK, _IFINFO.pack(0, 0, index, IFF_UP, IFF_UP), f"set {name} up",
                     step=(f"{name} up", "a link carries no traffic until it is up", f"ip link set {name} up"))

    def set_hairpin(self, name: str, index: int) -> None:
        body = _IFINFO.pack(AF_BRIDGE, 0, index, 0, 0) + \
            attr(IFLA_PROTINFO | NLA_F_NESTED, attr(IFLA_BRPORT_MODE, b"\x01"))
        self.request(RTM_SETLINK, NLM_F_ACK, body, f"hairpin on {name}",
                     step=(f"hairpin on {name}", "a container may reach its own published port through the host: "
               "the bridge must be allowed to send a frame back out of the port it came in by",
               f"bridge link set dev {name} hairpin on"))

    def delete_link(self, name: str) -> bool:
        """Delete a link by name; False if it was already gone (undo handlers are idempotent)."""
        try:
            self.request(RTM_DELLINK, NLM_F_ACK, _IFINFO.pack(0, 0, 0, 0, 0) + attr(IFLA_IFNAME, name),
                         f"delete link {name}",
                     step=(f"delete link {name}", "undo what we created", f"ip link del {name}"))
        except KernelError as e:
            if e.errno in (errno.ENODEV, errno.ENOENT):
                return False
            raise
        return True

    # --- addresses and routes -------------------------------------------------------------------
    def add_address(self, name: str, ip: str, prefix: int, index: int | None = None) -> None:
        index = index or self.link_index(name)
        v6 = ":" in ip
        family = socket.AF_INET6 if v6 else socket.AF_INET
        packed = socket.inet_pton(family, ip)
        # IPv6: no duplicate address detection (IFA_F_NODAD): the subnet is ours alone, and DAD
        # would keep the address "tentative" (unusable) for a second or more after each start
        body = _IFADDR.pack(family, prefix, IFA_F_NODAD if v6 else 0, 0, index) + attr(IFA_LOCAL, packed) + \
            attr(IFA_ADDRESS, packed)
        try:
            self.request(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL | NLM_F_ACK, body, f"add {ip} to {name}",
                     step=(f"address {ip}/{prefix} on {name}",
                           f"the interface's IPv{6 if v6 else 4} address in its subnet",
                           f"ip addr add {ip}/{prefix} dev {name}{' nodad' if v6 else ''}"))
        except KernelError as e:
            if e.errno != errno.EEXIST:
                raise

    def addresses(self) -> list[tuple[int, str, int]]:
        """(link index, address, prefix length) of every IPv4 address."""
        out = []
        for _, payload in self.request(RTM_GETADDR, NLM_F_DUMP, _IFADDR.pack(socket.AF_INET, 0, 0, 0, 0),
                                       "dump addresses"):
            _, plen, _, _, index = _IFADDR.unpack_from(payload)
            attrs = parse_attrs(payload[_IFADDR.size:])
            a = attrs.get(IFA_LOCAL) or attrs.get(IFA_ADDRESS)
            if a:
                out.append((index, socket.inet_ntoa(a[:4]), plen))
        return out

    def add_default_route(self, gateway: str, name: str, index: int | None = None) -> None:
        index = index or self.link_index(name)
        v6 = ":" in gateway
        family = socket.AF_INET6 if v6 else socket.AF_INET
        body = _RTMSG.pack(family, 0, 0, 0, 254, 3, 0, 1, 0) + \
            attr(RTA_GATEWAY, socket.inet_pton(family, gateway)) + attr(RTA_OIF, index)
        self.request(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL | NLM_F_ACK, body, f"default via {gateway}",
                     step=(f"default route via {gateway} dev {name}", "everything not on the subnet goes to the bridge",
               f"ip {'-6 ' if v6 else ''}route add default via {gateway} dev {name}"))


@contextlib.contextmanager
def in_netns(path: str):
    """A Netlink socket inside the namespace at ``path``; the caller stays in its own.

    A netlink socket belongs to the namespace it was created in, so we step in (setns), open the
    socket, and step straight back: everything sent on it then acts inside the container.
    """
    home = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        k.setns(path, CLONE_NEWNET, why="open a netlink socket inside the container's network namespace")
        try:
            nl = Netlink()
        finally:
            k.setns(f"/proc/self/fd/{home}", CLONE_NEWNET, why="back to our own network namespace")
    finally:
        os.close(home)
    try:
        yield nl
    finally:
        nl.close()
