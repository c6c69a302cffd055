"""The kept /etc/hosts and /etc/resolv.conf files of containers on user networks (rewritten in
place when a member joins or leaves: see docs/networking.md for why no DNS).
"""

from __future__ import annotations

import os

from minidock.errors import NotFound
from minidock.network import store
from minidock.network.common import LOCALHOST, _other, mode
from minidock.state import containers
from minidock.util import read_text


def hosts_file(rec: dict) -> str:
    m = mode(rec)
    if m.startswith("container:"):
        return read_text(_other(m[10:]).get("HostsPath", ""))
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
            if ep.get("GlobalIPv6Address"):  # a dual-stack network: the IPv6 address too, as Docker writes it
                lines.append(f"{ep['GlobalIPv6Address']}\t{' '.join(own)}\n")
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
            names = [ep["Name"]] + [a for a in ep.get("Aliases") or [] if a != ep["Name"]]
            for ip in (ep["IPv4Address"], ep.get("IPv6Address") or ""):
                line = f"{ip.split('/')[0]}\t{' '.join(names)}\n"
                if ip and line not in seen:
                    seen.add(line)
                    lines.append(line)
        for ip, names in (net.get("Hosts") or {}).items():  # extra names (minidock.apps: Services)
            lines.append(f"{ip}\t{' '.join(names)}\n")
    return "".join(lines)


def resolv_conf(rec: dict, default: str) -> str:
    """The container's resolv.conf: its network peer's (--network container:X) or ``default``."""
    m = mode(rec)
    if m.startswith("container:"):
        return read_text(_other(m[10:]).get("ResolvConfPath", ""))
    return default


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
