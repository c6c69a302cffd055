"""NAT with nftables, in a table of our own (`table ip minidock`): nothing of the host's is touched.

The rules are fixed when the table is made; what changes per network and per container is only
set and map *elements*:

* ``subnets`` / ``bridges``: masquerade what leaves a container subnet for anywhere but a bridge
  (outbound NAT), what reaches a bridge from 127.0.0.0/8 (published ports used from the
  host's loopback, see below), and DNAT'ed traffic from a container back into a bridge
  (hairpin: a container using a published port; the answer must come back through us);
* ``ports`` (proto . port -> container IP . port) and ``ports_ip`` (host IP . proto . port ->
  ...): DNAT of published ports, for traffic arriving from outside (prerouting) and from the host
  itself (output). A lookup that misses simply does not match.

Published ports and the host's loopback: `curl 127.0.0.1:8080` is DNAT'ed to the container in
the output hook; the kernel then refuses to route a 127.0.0.0/8 source out of a real interface
unless `route_localnet` is set on it, so we set it *on our bridge only*, and masquerade the
loopback source to the bridge address so the container can answer. This is Docker's
`userland-proxy=false` mode: no proxy process per port (cheaper, and nothing to supervise without
a daemon), at the price of route_localnet on the bridge.

route_localnet opens a hole (CVE-2020-8558): a container can send a crafted packet to
127.0.0.1 through the bridge and reach a host service bound only to loopback. Closed as kube-proxy
closes it: the ``input`` chain drops what arrives from a bridge for 127.0.0.0/8 unless its
connection was DNAT'ed (the answers of a loopback publish are).

Isolation between networks (Docker's DOCKER-ISOLATION chains): what one bridge forwards into
another is dropped, unless DNAT'ed (a published port stays reachable from everywhere, as it is
from the host's own addresses). ``same`` holds one ``bridge . bridge`` pair per network: traffic
within a bridge (seen by the forward hook when br_netfilter is loaded) is not "between networks".

IPv6 (dual-stack bridges, see docs/networking.md "IPv6"): a twin table, `table ip6 minidock`,
with the same sets, maps and chains for IPv6 subnets, container addresses and host addresses.
Two differences: no loopback rule (IPv6 has no route_localnet: the kernel never routes ::1 out
of a real interface, so ``publish`` returns early for ::1 and a client gets "connection refused"
at once, then falls back to 127.0.0.1), and no input chain (the CVE-2020-8558 hole needs
route_localnet). The iptables fallback is IPv4 only: without nft, bridges are IPv4-only.

Deleting an element that is already gone fails with ENOENT in nft < 1.0.8 (no `destroy`): we
ignore exactly that, so undo handlers stay idempotent.

Where `nft` is missing (or MINIDOCK_NAT=iptables), the same rules are made with iptables in
chains of our own (MINIDOCK-DNAT, MINIDOCK-POSTROUTING, MINIDOCK-FORWARD) hooked into the
built-in chains by one jump each; rules there are added and deleted one by one.
"""

from __future__ import annotations

from minidock import kernel as k
from minidock.errors import MinidockError

TABLE = "minidock"

INPUT_RULES = ["iifname @bridges ip daddr 127.0.0.0/8 ct status & dnat == 0 drop"]
FORWARD_RULES = ["iifname @bridges oifname @bridges iifname . oifname != @same ct status & dnat == 0 drop",
                 "oifname @bridges ct state related,established accept",
                 "iifname @bridges accept"]


def _chain(name: str, hook: str, rules: list[str]) -> str:
    body = "".join(f"    {r}\n" for r in rules)
    return f"  chain {name} {{ type filter hook {hook} priority filter; policy accept;\n{body}  }}\n"


RULESET = f"""
table ip {TABLE} {{
  set subnets {{ type ipv4_addr; flags interval; }}
  set bridges {{ type ifname; }}
  set same {{ type ifname . ifname; }}
  map ports {{ type inet_proto . inet_service : ipv4_addr . inet_service; }}
  map ports_ip {{ type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service; }}
  chain prerouting {{ type nat hook prerouting priority dstnat; policy accept;
    fib daddr type local jump publish
  }}
  chain output {{ type nat hook output priority -100; policy accept;
    fib daddr type local jump publish
  }}
  chain publish {{
    dnat ip to ip daddr . meta l4proto . th dport map @ports_ip
    dnat ip to meta l4proto . th dport map @ports
  }}
  chain postrouting {{ type nat hook postrouting priority srcnat; policy accept;
    ip saddr 127.0.0.0/8 oifname @bridges masquerade
    ip saddr @subnets oifname @bridges ct status dnat masquerade
    ip saddr @subnets oifname != @bridges masquerade
  }}
{_chain("input", "input", INPUT_RULES)}{_chain("forward", "forward", FORWARD_RULES)}}}
"""

RULESET6 = f"""
table ip6 {TABLE} {{
  set subnets {{ type ipv6_addr; flags interval; }}
  set bridges {{ type ifname; }}
  set same {{ type ifname . ifname; }}
  map ports {{ type inet_proto . inet_service : ipv6_addr . inet_service; }}
  map ports_ip {{ type ipv6_addr . inet_proto . inet_service : ipv6_addr . inet_service; }}
  chain prerouting {{ type nat hook prerouting priority dstnat; policy accept;
    fib daddr type local jump publish
  }}
  chain output {{ type nat hook output priority -100; policy accept;
    fib daddr type local jump publish
  }}
  chain publish {{
    ip6 daddr ::1 return
    dnat ip6 to ip6 daddr . meta l4proto . th dport map @ports_ip
    dnat ip6 to meta l4proto . th dport map @ports
  }}
  chain postrouting {{ type nat hook postrouting priority srcnat; policy accept;
    ip6 saddr @subnets oifname @bridges ct status dnat masquerade
    ip6 saddr @subnets oifname != @bridges masquerade
  }}
{_chain("forward", "forward", FORWARD_RULES)}}}
"""


def _family(ip: str) -> str:
    return "ip6" if ":" in (ip or "") else "ip"


def _nft_bin() -> str:
    import shutil

    path = shutil.which("nft") or next((p for p in ("/usr/sbin/nft", "/sbin/nft") if shutil.which(p)), None)
    if not path:
        raise MinidockError("nft (nftables) is needed for bridge networking and was not found",
                            "Install it (apt-get install nftables), or use --network none|host.")
    return path


def nft(script: str, *, why: str, ignore_missing: bool = False) -> bool:
    """Run an nft script; False if it failed only because an element/table was already gone."""
    r = k.run_tool([_nft_bin(), "-f", "-"], input=script, why=why, op="nft",
                   detail=script.strip().replace("\n", "; "), shell=f"nft {script.strip()!r}")
    if r.returncode == 0:
        return True
    if ignore_missing and ("No such file or directory" in r.stderr or "does not exist" in r.stderr):
        return False
    raise MinidockError(f"nft failed: {r.stderr.strip().splitlines()[0] if r.stderr.strip() else r.returncode}")


def _use_iptables() -> bool:
    import os
    import shutil

    forced = os.environ.get("MINIDOCK_NAT", "")
    if forced in ("iptables", "nft"):
        return forced == "iptables"
    return not _has_nft() and bool(shutil.which("iptables"))


def table_exists(family: str = "ip") -> bool:
    if family == "ip" and _use_iptables():
        return ipt.exists()
    r = k.run_tool([_nft_bin(), "list", "table", family, TABLE])
    return r.returncode == 0


def ensure_table(family: str = "ip") -> None:
    if family == "ip6":
        if not table_exists("ip6"):
            nft(RULESET6, why="minidock's own IPv6 NAT table: masquerade and published ports for the dual-stack "
                              "bridges, apart from the host's rules")
        return
    if _use_iptables():
        ipt.ensure()
        return
    if not table_exists():
        nft(RULESET, why="minidock's own NAT table: masquerade and published ports, apart from the host's rules")
    elif not _has_set("same"):
        _upgrade()


def _has_set(name: str) -> bool:
    return k.run_tool([_nft_bin(), "list", "set", "ip", TABLE, name]).returncode == 0


def _upgrade() -> None:
    """A table made by an older minidock (no loopback guard, no isolation): add what it lacks,
    keeping its elements (running containers' ports stay published)."""
    script = f"add set ip {TABLE} same {{ type ifname . ifname; }}\n"
    for name, rules in (("input", INPUT_RULES), ("forward", FORWARD_RULES)):
        script += (f"add chain ip {TABLE} {name} {{ type filter hook {name} priority filter; policy accept; }}\n"
                   f"flush chain ip {TABLE} {name}\n")
        script += "".join(f"add rule ip {TABLE} {name} {r}\n" for r in rules)
    for br in _bridges():
        script += f'add element ip {TABLE} same {{ "{br}" . "{br}" }}\n'
    nft(script, why="bring minidock's table up to date: loopback guard and isolation between networks")


def _bridges() -> list[str]:
    r = k.run_tool([_nft_bin(), "list", "set", "ip", TABLE, "bridges"])
    import re

    m = re.search(r"elements = \{([^}]*)\}", r.stdout)
    return [b.strip().strip('"') for b in m.group(1).split(",")] if m else []


def delete_table() -> None:
    """Both of minidock's tables (ip and ip6) go."""
    if _use_iptables():
        ipt.delete()
    else:
        nft(f"delete table ip {TABLE}\n", why="nothing of minidock's is left on this host", ignore_missing=True)
    if _has_nft() and table_exists("ip6"):
        nft(f"delete table ip6 {TABLE}\n", why="nothing of minidock's is left on this host (IPv6)",
            ignore_missing=True)


def _has_nft() -> bool:
    import os
    import shutil

    return bool(shutil.which("nft") or os.path.exists("/usr/sbin/nft"))


def add_network(subnet: str, bridge: str) -> None:
    """Masquerade and isolation for one subnet of a bridge (an IPv6 subnet: in the ip6 table)."""
    fam = _family(subnet)
    if fam == "ip" and _use_iptables():
        ipt.network("-A", subnet, bridge)
        return
    nft(f'add element {fam} {TABLE} subnets {{ {subnet} }}\nadd element {fam} {TABLE} bridges {{ "{bridge}" }}\n'
        f'add element {fam} {TABLE} same {{ "{bridge}" . "{bridge}" }}\n',
        why=f"masquerade what leaves {subnet}; let the host's loopback reach {bridge}; isolate it from "
            "the other networks" if fam == "ip" else
            f"masquerade what leaves {subnet} (IPv6); isolate {bridge} from the other networks")


def remove_network(subnet: str, bridge: str) -> None:
    fam = _family(subnet)
    if fam == "ip" and _use_iptables():
        ipt.network("-D", subnet, bridge)
        return
    nft(f"delete element {fam} {TABLE} subnets {{ {subnet} }}\n", why="the network is gone", ignore_missing=True)
    nft(f'delete element {fam} {TABLE} bridges {{ "{bridge}" }}\n', why="the network is gone", ignore_missing=True)
    nft(f'delete element {fam} {TABLE} same {{ "{bridge}" . "{bridge}" }}\n', why="the network is gone",
        ignore_missing=True)


def _port_element(proto: str, host_ip: str, host_port: int) -> tuple[str, str]:
    if host_ip and host_ip not in ("0.0.0.0", "::"):
        return "ports_ip", f"{host_ip} . {proto} . {host_port}"
    return "ports", f"{proto} . {host_port}"


def add_port(proto: str, host_ip: str, host_port: int, ip: str, cport: int) -> None:
    """DNAT host_ip:host_port to ip:cport; host_ip "" = every IPv4 address, "::" = every IPv6 one."""
    fam = _family(ip)
    if fam == "ip" and _use_iptables():
        ipt.add_port(proto, host_ip, host_port, ip, cport)
        return
    m, key = _port_element(proto, host_ip, host_port)
    shown = f"[{host_ip}]" if fam == "ip6" else (host_ip or "*")
    target = f"[{ip}]" if fam == "ip6" else ip
    nft(f"add element {fam} {TABLE} {m} {{ {key} : {ip} . {cport} }}\n",
        why=f"publish: {shown}:{host_port}/{proto} is forwarded (DNAT) to {target}:{cport}")


def add_ports(ports: list[tuple[str, str, int, str, int]]) -> None:
    """Several add_port()s (a container's IPv4 and IPv6 bindings) in one nft run."""
    script, why = "", []
    for proto, host_ip, host_port, ip, cport in ports:
        fam = _family(ip)
        if fam == "ip" and _use_iptables():
            ipt.add_port(proto, host_ip, host_port, ip, cport)
            continue
        m, key = _port_element(proto, host_ip, host_port)
        script += f"add element {fam} {TABLE} {m} {{ {key} : {ip} . {cport} }}\n"
        shown = f"[{host_ip}]" if fam == "ip6" else (host_ip or "*")
        why.append(f"{shown}:{host_port}/{proto} -> {f'[{ip}]' if fam == 'ip6' else ip}:{cport}")
    if script:
        nft(script, why="publish (DNAT): " + ", ".join(why))


def remove_port(proto: str, host_ip: str, host_port: int) -> None:
    fam = _family(host_ip)
    if fam == "ip" and _use_iptables():
        ipt.remove_port(proto, host_ip, host_port)
        return
    m, key = _port_element(proto, host_ip, host_port)
    nft(f"delete element {fam} {TABLE} {m} {{ {key} }}\n", why="unpublish the port", ignore_missing=True)


class _IPTables:
    """The iptables fallback: our own chains, one jump from each built-in chain we need."""

    CHAINS = (("nat", "MINIDOCK-DNAT"), ("nat", "MINIDOCK-POSTROUTING"), ("filter", "MINIDOCK-FORWARD"),
              ("filter", "MINIDOCK-ISOLATION"), ("filter", "MINIDOCK-INPUT"))
    JUMPS = [("nat", "PREROUTING", "-m addrtype --dst-type LOCAL -j MINIDOCK-DNAT"),
             ("nat", "OUTPUT", "-m addrtype --dst-type LOCAL -j MINIDOCK-DNAT"),
             ("nat", "POSTROUTING", "-j MINIDOCK-POSTROUTING"),
             ("filter", "FORWARD", "-j MINIDOCK-FORWARD"),
             ("filter", "INPUT", "-j MINIDOCK-INPUT")]

    def run(self, table: str, args: str, *, why: str = "", check: bool = True):
        import shlex
        import shutil

        cmd = [shutil.which("iptables") or "iptables", "-w", "-t", table, *shlex.split(args)]
        r = k.run_tool(cmd, why=why, op="iptables", detail=f"-t {table} {args}", shell=shlex.join(cmd))
        if check and r.returncode != 0:
            raise MinidockError(f"iptables -t {table} {args} failed: {r.stderr.strip()}")
        return r

    def exists(self) -> bool:
        return self.run("nat", "-S MINIDOCK-DNAT", check=False).returncode == 0

    def ensure(self) -> None:
        if self.exists() and self.run("filter", "-S MINIDOCK-INPUT", check=False).returncode == 0:
            return
        for table, chain in self.CHAINS:
            self.run(table, f"-N {chain}", why="minidock's own chain", check=False)
        for table, chain, rule in self.JUMPS:
            if self.run(table, f"-C {chain} {rule}", check=False).returncode != 0:
                self.run(table, f"-A {chain} {rule}", why="one jump into minidock's chain")

    def delete(self) -> None:
        for table, chain, rule in self.JUMPS:
            self.run(table, f"-D {chain} {rule}", why="remove minidock's jump", check=False)
        for table, chain in self.CHAINS:
            self.run(table, f"-F {chain}", check=False)
            self.run(table, f"-X {chain}", why="remove minidock's chain", check=False)

    def network(self, op: str, subnet: str, bridge: str) -> None:
        rules = [("nat", f"MINIDOCK-POSTROUTING -s {subnet} ! -o {bridge} -j MASQUERADE"),
                 ("nat", f"MINIDOCK-POSTROUTING -s 127.0.0.0/8 -o {bridge} -j MASQUERADE"),
                 ("nat", f"MINIDOCK-POSTROUTING -s {subnet} -o {bridge} -m conntrack --ctstate DNAT -j MASQUERADE"),
                 # CVE-2020-8558: nothing from the bridge reaches 127.0.0.0/8 unless DNAT'ed by us
                 ("filter", f"MINIDOCK-INPUT -i {bridge} -d 127.0.0.0/8 -m conntrack ! --ctstate DNAT -j DROP"),
                 # isolation between networks (Docker's DOCKER-ISOLATION stages 1 and 2)
                 ("filter", f"MINIDOCK-FORWARD -i {bridge} ! -o {bridge} -j MINIDOCK-ISOLATION"),
                 ("filter", f"MINIDOCK-ISOLATION -o {bridge} -m conntrack ! --ctstate DNAT -j DROP"),
                 ("filter", f"MINIDOCK-FORWARD -o {bridge} -m conntrack --ctstate RELATED,ESTABLISHED,DNAT "
                            "-j ACCEPT"),
                 ("filter", f"MINIDOCK-FORWARD -i {bridge} -j ACCEPT")]
        for table, rule in rules:
            self.run(table, f"{op} {rule}", why=f"NAT and forwarding for {subnet} on {bridge}", check=op == "-A")

    def _port_rule(self, proto: str, host_ip: str, host_port: int) -> str:
        dest = f"-d {host_ip}/32 " if host_ip and host_ip != "0.0.0.0" else ""
        return f"MINIDOCK-DNAT {dest}-p {proto} -m {proto} --dport {host_port} -j DNAT"

    def add_port(self, proto: str, host_ip: str, host_port: int, ip: str, cport: int) -> None:
        self.run("nat", f"-A {self._port_rule(proto, host_ip, host_port)} --to-destination {ip}:{cport}",
                 why=f"publish {host_port}/{proto} to {ip}:{cport}")

    def remove_port(self, proto: str, host_ip: str, host_port: int) -> None:
        want = self._port_rule(proto, host_ip, host_port)
        for line in self.run("nat", "-S MINIDOCK-DNAT", check=False).stdout.splitlines():
            if line.startswith(f"-A {want} --to-destination"):
                self.run("nat", "-D" + line[2:], why=f"unpublish {host_port}/{proto}", check=False)


ipt = _IPTables()
