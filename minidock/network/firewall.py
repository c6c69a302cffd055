"""Living next to the host's firewall: Docker, ufw and firewalld set iptables' FORWARD policy DROP.

minidock's own rules live in its nftables table (see nat.py), but an ``accept`` there does not
override a ``drop`` in another table's chain on the same hook: with Docker installed (FORWARD
policy DROP, br_netfilter loaded so that even frames between two ports of one bridge cross the
FORWARD chain) every container-to-container and outbound packet on a minidock bridge is dropped,
while published ports to the host still work (they go through INPUT).

So, when — and only when — the host's FORWARD policy is DROP, each minidock bridge gets two
accept rules in the host's filter table, as podman's CNI/netavark firewall plugins do:

    -i BRIDGE -j ACCEPT
    -o BRIDGE -m conntrack --ctstate RELATED,ESTABLISHED,DNAT -j ACCEPT

in the ``DOCKER-USER`` chain where it exists (the chain Docker keeps for the user's rules and
jumps to first), else at the top of ``FORWARD``. With the iptables fallback the target is
``MINIDOCK-FORWARD`` instead of ACCEPT, so the isolation between networks still applies.
Each rule is written to ``networks/host.json`` before it is added (the journal of host-global
state) and removed with its bridge, by ``network rm``/``prune`` and by ``system prune``.

IPv6: dockerd 28 sets ip6tables' FORWARD policy DROP too (with its default ip6tables=true), so a
dual-stack bridge gets the same two rules in ip6tables when *its* FORWARD policy is DROP. They
are journaled with the family (``[chain, rule, "ip6"]``) and removed the same way.

`doctor` shows the policy and br_netfilter (:func:`report`).
"""

from __future__ import annotations

from minidock import kernel as k
from minidock.network import store


def _iptables(v6: bool = False) -> str | None:
    import shutil

    name = "ip6tables" if v6 else "iptables"
    return shutil.which(name) or next((p for p in (f"/usr/sbin/{name}", f"/sbin/{name}")
                                       if shutil.which(p)), None)


def _run(args: list[str], why: str = "", v6: bool = False):
    import shlex

    cmd = [_iptables(v6) or ("ip6tables" if v6 else "iptables"), "-w", *args]
    return k.run_tool(cmd, why=why, op="ip6tables" if v6 else "iptables", detail=" ".join(args),
                      shell=shlex.join(cmd))


def forward_policy(v6: bool = False) -> str:
    """The policy of the host's ip(6)tables filter FORWARD chain: ACCEPT, DROP, or "unknown"."""
    if not _iptables(v6):
        return "unknown"
    r = _run(["-t", "filter", "-S", "FORWARD"], v6=v6)
    for line in r.stdout.splitlines():
        if line.startswith("-P FORWARD "):
            return line.split()[2]
    return "unknown"


def br_netfilter() -> str:
    """'on' if bridged frames cross iptables (br_netfilter loaded, bridge-nf-call-iptables=1)."""
    try:
        with open("/proc/sys/net/bridge/bridge-nf-call-iptables") as f:
            return "on" if f.read().strip() == "1" else "loaded, off"
    except OSError:
        return "not loaded"


def _chain_exists(chain: str, v6: bool = False) -> bool:
    return _run(["-t", "filter", "-S", chain], v6=v6).returncode == 0


def _rules(br: str, target: str) -> list[str]:
    return [f"-i {br} -j {target}",
            f"-o {br} -m conntrack --ctstate RELATED,ESTABLISHED,DNAT -j {target}"]


def open_bridge(br: str, iptables_mode: bool, v6: bool = False) -> None:
    """Accept rules for a new bridge when the host's FORWARD chain drops by default (lock held).

    ``v6``: the same, in ip6tables, for a dual-stack bridge."""
    if forward_policy(v6) != "DROP":
        return
    chain = "DOCKER-USER" if _chain_exists("DOCKER-USER", v6) else "FORWARD"
    target = "MINIDOCK-FORWARD" if iptables_mode and not v6 else "ACCEPT"
    rules = _rules(br, target)
    st = store.host_state()
    entries = [[chain, r, "ip6"] if v6 else [chain, r] for r in rules]
    st.setdefault("host_rules", {}).setdefault(br, [])
    st["host_rules"][br] = [e for e in st["host_rules"][br] if e not in entries] + entries
    store.save_host_state(st)  # journaled before the rules exist
    tool = "ip6tables" if v6 else "iptables"
    for r in reversed(rules):  # inserted at the top, in this order
        if _run(["-t", "filter", "-C", chain, *r.split()], v6=v6).returncode != 0:
            _run(["-t", "filter", "-I", chain, "1", *r.split()], v6=v6,
                 why=f"the host's {tool} FORWARD policy is DROP (Docker installed?): let {br}'s traffic through")


def close_bridge(br: str) -> None:
    """Remove the accept rules of a bridge that is gone (idempotent; lock held)."""
    st = store.host_state()
    rules = (st.get("host_rules") or {}).pop(br, None)
    if rules is None:
        return
    for entry in rules:
        chain, r = entry[0], entry[1]
        v6 = len(entry) > 2 and entry[2] == "ip6"
        while _run(["-t", "filter", "-D", chain, *r.split()], v6=v6,
                   why=f"{br} is gone: its accept rule in the host's {chain} chain too").returncode == 0:
            pass
    if not st["host_rules"]:
        del st["host_rules"]
    store.save_host_state(st)


def report() -> list[tuple[str, str]]:
    """Lines for `doctor`."""
    pol = forward_policy()
    note = {"DROP": "minidock adds accept rules for its bridges (DOCKER-USER where it exists)",
            "ACCEPT": "nothing to add", "unknown": "iptables not found"}.get(pol, "")
    pol6 = forward_policy(v6=True)
    note6 = {"DROP": "minidock adds accept rules for its dual-stack bridges",
             "ACCEPT": "nothing to add", "unknown": "ip6tables not found"}.get(pol6, "")
    return [("iptables FORWARD policy", f"{pol} ({note})"), ("ip6tables FORWARD policy", f"{pol6} ({note6})"),
            ("br_netfilter", br_netfilter())]
