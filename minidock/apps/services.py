"""Services: a stable virtual IP, names in the pods' hosts files, load balancing in the kernel.

kube-proxy's nftables design, in minidock's own table ``ip minidock`` (docs/apps.md):

    map svc_ips       { ipv4_addr . inet_proto . inet_service : verdict }   VIP:port  -> goto svc-...
    map svc_nodeports { inet_proto . inet_service : verdict }               nodePort  -> goto svc-...
    chain svc-<ns>-<name>-<port> { numgen random mod N vmap { 0 : goto sep-..., 1 : goto sep-..., ... } }
    chain sep-<ns>-<pod>-<port>  { meta l4proto tcp dnat to <pod ip>:<target port> }

entered from two base chains (nat prerouting and output, just before minidock's own NAT): the
VIP works from containers and from the host itself (a route for the service range points at the
apps bridge), a NodePort on every local address (127.0.0.1 included: route_localnet and the
masquerade of 127.0.0.0/8 towards our bridges are minidock's existing rules). No proxy process:
after the DNAT, packets go straight to the pod.

Endpoints are the *ready* pods whose labels match the selector and that are not terminating; the
whole service ruleset is rewritten in one nft transaction whenever a pod becomes ready or goes
away (``sync``), under a lock, from what is on disk: any controller or CLI command may call it.
The names (``web``, ``web.default``, ``web.default.svc``, ``web.default.svc.cluster.local``) are
written into the apps network's record (``Hosts``) and so into every member's hosts file.
"""

from __future__ import annotations

import hashlib
import ipaddress
import random
import subprocess

from minidock.apps import objects, pods, store
from minidock.errors import Conflict

NODEPORT_RANGE = (30000, 32767)


def allocate(svc: dict, old: dict | None) -> dict:
    """Fill spec.clusterIP and each NodePort port's nodePort (kept from ``old`` on re-apply)."""
    spec = svc["spec"]
    others = [
        s
        for s in store.listing("services")
        if (s["metadata"]["namespace"], s["metadata"]["name"])
        != (svc["metadata"]["namespace"], svc["metadata"]["name"])
    ]
    used_ips = {s["spec"].get("clusterIP") for s in others}
    old_ip = ((old or {}).get("spec") or {}).get("clusterIP")
    if spec.get("clusterIP"):
        if spec["clusterIP"] in used_ips:
            raise Conflict(
                f'Service "{svc["metadata"]["name"]}" is invalid: spec.clusterIP: Invalid value: '
                f'"{spec["clusterIP"]}": provided IP is already allocated'
            )
    elif old_ip:
        spec["clusterIP"] = old_ip
    else:
        net = ipaddress.ip_network(objects.SERVICE_CIDR)
        for host in list(net.hosts())[9:]:  # .1-.9 kept, as kube's 10.96.0.1 (the API server) and DNS .10
            if str(host) not in used_ips:
                spec["clusterIP"] = str(host)
                break
    used_ports = {p.get("nodePort") for s in others for p in s["spec"].get("ports") or []}
    old_ports = {
        (p.get("port"), p.get("protocol", "TCP")): p.get("nodePort")
        for p in ((old or {}).get("spec") or {}).get("ports") or []
    }
    for p in spec["ports"]:
        p.setdefault("protocol", "TCP")
        p.setdefault("targetPort", p["port"])
        if spec.get("type") != "NodePort":
            continue
        if p.get("nodePort"):
            if p["nodePort"] in used_ports:
                raise Conflict(
                    f'Service "{svc["metadata"]["name"]}" is invalid: spec.ports[].nodePort: '
                    f"Invalid value: {p['nodePort']}: provided port is already allocated"
                )
            continue
        keep = old_ports.get((p["port"], p["protocol"]))
        if keep and keep not in used_ports:
            p["nodePort"] = keep
            continue
        while True:
            n = random.randint(*NODEPORT_RANGE)
            if n not in used_ports:
                p["nodePort"] = n
                used_ports.add(n)
                break
    spec.setdefault("type", "ClusterIP")
    return svc


def _matches(selector: dict, labels: dict) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def _target(pod: dict, target) -> int | None:
    if isinstance(target, int):
        return target
    for c in pod["spec"].get("containers") or []:
        for p in c.get("ports") or []:
            if p.get("name") == target:
                return int(p["containerPort"])
    return None


def endpoints(svc: dict) -> list[tuple[str, str, dict]]:
    """(pod name, ip, {port name or number: target port}) of the ready, non-terminating pods."""
    out = []
    sel = svc["spec"].get("selector") or {}
    for pod in store.pods(svc["metadata"]["namespace"]):
        if (
            not _matches(sel, pod.get("labels") or {})
            or pod.get("terminating")
            or not pod.get("ready")
            or not pod.get("ip")
        ):
            continue
        out.append(
            (pod["name"], pod["ip"], {str(p["port"]): _target(pod, p["targetPort"]) for p in svc["spec"]["ports"]})
        )
    return out


def _cname(prefix: str, *parts: str) -> str:
    text = "-".join(parts)
    if len(text) > 40:
        text = text[:30] + "-" + hashlib.sha256(text.encode()).hexdigest()[:8]
    return f"{prefix}-{text}"


def ruleset() -> tuple[str, set[str]]:
    """The nft script of every service (and the names of the chains it defines)."""
    t = "ip minidock"
    lines = [
        "table ip minidock {",
        "  map svc_ips { type ipv4_addr . inet_proto . inet_service : verdict; }",
        "  map svc_nodeports { type inet_proto . inet_service : verdict; }",
        "  chain svc_prerouting { type nat hook prerouting priority -110; policy accept; }",
        "  chain svc_output { type nat hook output priority -110; policy accept; }",
        "}",
        f"flush chain {t} svc_prerouting",
        f"flush chain {t} svc_output",
        f"flush map {t} svc_ips",
        f"flush map {t} svc_nodeports",
    ]
    for hook in ("svc_prerouting", "svc_output"):
        lines.append(f"add rule {t} {hook} ip daddr . meta l4proto . th dport vmap @svc_ips")
        lines.append(f"add rule {t} {hook} fib daddr type local meta l4proto . th dport vmap @svc_nodeports")
    chains: set[str] = set()
    for svc in store.listing("services"):
        ns, name = svc["metadata"]["namespace"], svc["metadata"]["name"]
        eps = endpoints(svc)
        for p in svc["spec"]["ports"]:
            proto = p.get("protocol", "TCP").lower()
            eps_p = [(pn, ip, tp[str(p["port"])]) for pn, ip, tp in eps if tp.get(str(p["port"]))]
            if not eps_p:
                continue  # no ready endpoint: no element (kube-proxy would reject; here nothing answers)
            sc = _cname("svc", ns, name, str(p["port"]))
            chains.add(sc)
            lines += [f"add chain {t} {sc}", f"flush chain {t} {sc}"]
            targets = []
            for pn, ip, port in eps_p:
                ep = _cname("sep", ns, pn, str(port))
                chains.add(ep)
                lines += [
                    f"add chain {t} {ep}",
                    f"flush chain {t} {ep}",
                    f"add rule {t} {ep} meta l4proto {proto} dnat to {ip}:{port}",
                ]
                targets.append(ep)
            vmap = ", ".join(f"{i} : goto {ep}" for i, ep in enumerate(targets))
            lines.append(f"add rule {t} {sc} numgen random mod {len(targets)} vmap {{ {vmap} }}")
            lines.append(
                f"add element {t} svc_ips {{ {svc['spec']['clusterIP']} . {proto} . {p['port']} : goto {sc} }}"
            )
            if p.get("nodePort"):
                lines.append(f"add element {t} svc_nodeports {{ {proto} . {p['nodePort']} : goto {sc} }}")
    return "\n".join(lines) + "\n", chains


def _existing_chains() -> set[str]:
    from minidock.network import nat

    r = subprocess.run([nat._nft_bin(), "list", "chains", "ip", "minidock"], capture_output=True, text=True)
    out = set()
    for line in r.stdout.splitlines():
        line = line.strip()
        if line.startswith("chain "):
            name = line.split()[1]
            if name.startswith(("svc-", "sep-")):
                out.add(name)
    return out


BASE = [("map", "svc_ips"), ("map", "svc_nodeports"), ("chain", "svc_prerouting"), ("chain", "svc_output")]


def _journal():
    from minidock.state.journal import Journal

    return Journal(store.root() / "services.journal")


def sync() -> None:
    """Rewrite the service rules and names from what is on disk (one transaction; idempotent).

    The base maps and chains are journaled (``apps/services.journal``, kind ``nft``: the network
    package's undo handler) before they are first made, and undone when the last Service goes;
    per-service chains are swept by every sync; the whole table goes with the last network.
    """
    from minidock.network import nat

    with store.lock(".svc.lock"):
        services = store.listing("services")
        _names(services)
        j = _journal()
        if not services:
            if j.path.exists():
                _delete_chains(_existing_chains())
                if not j.undo():
                    j.path.unlink(missing_ok=True)
                _route(delete=True)
            return
        if not _bridge():
            return  # no apps network yet: nothing can be routed; the first pod's sync does it
        nat.ensure_table()
        if not j.path.exists():
            for what, name in BASE:  # undone backwards: chains first, then the maps they use
                j.record("nft", script=f"delete {what} ip minidock {name}\n")
        script, chains = ruleset()
        nat.nft(
            script, why="Services: virtual IPs and NodePorts DNAT'ed to ready endpoints (numgen into a verdict map)"
        )
        _delete_chains(_existing_chains() - chains)
        _route()


def _delete_chains(chains: set[str]) -> None:
    from minidock.network import nat

    if chains:
        nat.nft("".join(f"delete chain ip minidock {c}\n" for c in sorted(chains)),
                why="endpoints and services that are gone", ignore_missing=True)


def _bridge() -> str | None:
    from minidock.network import store as netstore
    from minidock.network.netlink import Netlink

    net = netstore.load(pods.APPS_NETWORK)
    if not net:
        return None
    br = netstore.bridge_name(net)
    with Netlink() as nl:
        return br if nl.link_index(br) else None


def _route(delete: bool = False) -> None:
    """The service range via the apps bridge: the host itself reaches the VIPs (as on a node).
    (It goes with the bridge; deleted with the last Service.)"""
    br = _bridge()
    if br:
        verb = "del" if delete else "replace"
        subprocess.run(["ip", "route", verb, objects.SERVICE_CIDR, "dev", br], capture_output=True)


def _names(services: list[dict]) -> None:
    """Service names -> VIPs in the apps network record, and so in every member's hosts file."""
    from minidock import network
    from minidock.network import store as netstore

    hosts = {}
    for s in services:
        ns, name = s["metadata"]["namespace"], s["metadata"]["name"]
        names = [f"{name}.{ns}.svc.cluster.local", f"{name}.{ns}.svc", f"{name}.{ns}"]
        if ns == "default":
            names.insert(0, name)
        hosts[s["spec"]["clusterIP"]] = hosts.get(s["spec"]["clusterIP"], []) + names
    with netstore.lock():
        net = netstore.load(pods.APPS_NETWORK)
        if net is None or net.get("Hosts", {}) == hosts:
            return
        net["Hosts"] = hosts
        netstore.save(net)
    network.refresh_peers(None, [pods.APPS_NETWORK])
