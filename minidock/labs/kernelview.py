"""`minidock inspect --kernel CONTAINER`: what the kernel holds for a running container.

Everything here is *read* from the live kernel (``/proc/PID/...``, the cgroup files, netlink via
``ip``, nftables via ``nft``), never from minidock's records alone, so a student sees the
same facts the isolation is made of: namespace inodes next to the host's, live cgroup counters,
decoded capability sets, no_new_privs and seccomp, mount propagation with the masked and
read-only paths, the veth pair and its bridge, the nft elements of its ports, uid/gid maps.
"""

from __future__ import annotations

import json
import os
import subprocess

from minidock.kernel.constants import CAPABILITIES
from minidock.util import read_text

NAMESPACES = ("mnt", "uts", "ipc", "pid", "net", "cgroup", "user", "time")

CAPS = [c.removeprefix("CAP_") for c in CAPABILITIES]
SECCOMP_MODES = {"0": "disabled", "1": "strict", "2": "filter"}


def decode_caps(mask: int) -> list[str]:
    return [CAPS[i] if i < len(CAPS) else f"cap_{i}" for i in range(64) if mask >> i & 1]


def namespaces(pid: int) -> list[dict]:
    out = []
    for ns in NAMESPACES:
        try:
            mine = os.readlink(f"/proc/{pid}/ns/{ns}")
        except OSError:
            continue
        try:
            host = os.readlink(f"/proc/self/ns/{ns}")
        except OSError:
            host = "?"
        out.append({"type": ns, "container": mine, "host": host, "own": mine != host})
    return out


def status(pid: int) -> dict:
    st = {}
    for line in read_text(f"/proc/{pid}/status").splitlines():
        k, _, v = line.partition(":")
        st[k] = v.strip()
    caps = {k: int(st.get(k, "0"), 16) for k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")}
    return {
        "uid": st.get("Uid", ""), "gid": st.get("Gid", ""),
        "capabilities": {k: {"hex": f"{v:016x}", "names": decode_caps(v)} for k, v in caps.items()},
        "no_new_privs": st.get("NoNewPrivs") == "1",
        "seccomp": SECCOMP_MODES.get(st.get("Seccomp", ""), st.get("Seccomp", "?")),
        "seccomp_filters": int(st.get("Seccomp_filters", "0") or 0),
    }


def mounts(pid: int, spec: dict | None = None) -> dict:
    """Each mount with its propagation; which masked and read-only paths are in force."""
    from minidock.util import mountinfo

    rows = []
    try:
        mounts_ = mountinfo.read(pid)
    except OSError:
        mounts_ = []
    for m in mounts_:
        prop = "private"
        for o in m.optional:
            if o.startswith("shared:"):
                prop = "shared"
            elif o.startswith("master:"):
                prop = "slave"
        rows.append({"target": m.target, "fstype": m.fstype, "source": m.source, "options": m.options,
                     "propagation": prop})
    by_target = {r["target"]: r for r in rows}
    linux = (spec or {}).get("linux", {})
    def covered(p):  # a mask is an empty tmpfs over a directory, or /dev/null bound over a file
        m = by_target.get(p)
        return bool(m) and (m["fstype"] in ("tmpfs", "devtmpfs") or m["source"] in ("/dev/null", "udev"))

    masked = [{"path": p, "in_force": covered(p)} for p in linux.get("maskedPaths", [])]
    readonly = [{"path": p, "in_force": p in by_target and by_target[p]["options"].split(",")[0] == "ro"}
                for p in linux.get("readonlyPaths", [])]
    return {"mounts": rows, "masked": masked, "readonly": readonly}


def cgroup(rec: dict) -> dict:
    from minidock.runtime.cgroups import cgroup_version, open_cgroup

    path = f"{rec['HostConfig'].get('CgroupParent', 'minidock')}/{rec['Id']}"
    out = {"path": path, "version": cgroup_version()}
    try:
        from minidock.runtime import load

        out["counters"] = load(rec["Id"]).stats()  # the runtime's Container, as the engine asks it
    except Exception:  # noqa: BLE001 - not the runtime's (a replayed container): its cgroup by path
        try:
            out["counters"] = open_cgroup(path).stats()
        except Exception as e:  # noqa: BLE001 - a report: say what could not be read
            out["error"] = str(e)
    return out


def network(rec: dict, pid: int) -> dict:
    out: dict = {"interfaces": [], "host_veths": [], "ports": []}
    r = subprocess.run(["nsenter", "-t", str(pid), "-n", "ip", "-j", "addr"], capture_output=True, text=True)
    if r.returncode == 0 and r.stdout.strip():
        for link in json.loads(r.stdout):
            out["interfaces"].append({
                "name": link.get("ifname"), "peer_index": link.get("link_index"),
                "addresses": [f"{a['local']}/{a['prefixlen']}" for a in link.get("addr_info", [])]})
    peers = {i["peer_index"] for i in out["interfaces"] if i.get("peer_index")}
    r = subprocess.run(["ip", "-j", "link"], capture_output=True, text=True)
    if r.returncode == 0 and r.stdout.strip():
        for link in json.loads(r.stdout):
            if link.get("ifindex") in peers and link.get("link_type") == "ether":
                out["host_veths"].append({"name": link.get("ifname"), "bridge": link.get("master")})
    nets = (rec.get("NetworkSettings", {}).get("Networks") or {}).values()
    for fam, key in (("ip", "IPAddress"), ("ip6", "GlobalIPv6Address")):  # (ip6: dual-stack bridges)
        ips = [n.get(key) for n in nets if n.get(key)]
        if not ips:
            continue
        r = subprocess.run(["nft", "-j", "list", "map", fam, "minidock", "ports"], capture_output=True, text=True)
        if r.returncode == 0:
            for item in json.loads(r.stdout).get("nftables", []):
                for elem in (item.get("map") or {}).get("elem", []) or []:
                    if any(f'"{ip}"' in json.dumps(elem) for ip in ips):
                        out["ports"].append(elem)
    return out


def ids_maps(pid: int) -> dict:
    return {"uid_map": read_text(f"/proc/{pid}/uid_map").split("\n")[:-1],
            "gid_map": read_text(f"/proc/{pid}/gid_map").split("\n")[:-1]}


def for_container(ref: str) -> tuple[dict, dict]:
    """(record, report) of a running container, by name or ID."""
    from minidock.engine import lifecycle
    from minidock.errors import Conflict
    from minidock.state import containers

    cid = containers.resolve(ref)
    rec = lifecycle.refresh(cid)
    if not rec["State"].get("Running"):
        raise Conflict(f"container {ref} is not running: the kernel holds nothing for it",
                       "Start it first; `inspect` without --kernel shows its record.")
    try:
        with open(os.path.join(containers.cdir(cid), "bundle", "config.json")) as f:
            spec = json.load(f)
    except (OSError, ValueError):
        spec = None
    return rec, report(rec, spec)


def report(rec: dict, spec: dict | None) -> dict:
    pid = rec["State"].get("Pid") or 0
    return {"Id": rec["Id"], "Name": rec["Name"].lstrip("/"), "Pid": pid,
            "Namespaces": namespaces(pid), "Process": status(pid), "Cgroup": cgroup(rec),
            "Mounts": mounts(pid, spec), "Network": network(rec, pid), "IdMaps": ids_maps(pid)}


def render(r: dict) -> str:
    L = [f"container {r['Name']} ({r['Id'][:12]}), init process {r['Pid']} on the host", "",
         "namespaces                    container                host"]
    for n in r["Namespaces"]:
        L.append(f"  {n['type']:<8}{'own   ' if n['own'] else 'shared'}      {n['container']:<25}{n['host']}")
    p = r["Process"]
    L += ["", f"process        uid {' '.join(p['uid'].split())}   gid {' '.join(p['gid'].split())}"
          "   (real effective saved fs)",
          f"  no_new_privs {'yes' if p['no_new_privs'] else 'no'}   seccomp {p['seccomp']}"
          f" ({p['seccomp_filters']} filter{'s' if p['seccomp_filters'] != 1 else ''})"]
    for k in ("CapEff", "CapPrm", "CapBnd", "CapInh", "CapAmb"):
        c = p["capabilities"][k]
        L.append(f"  {k} {c['hex']}  {' '.join(c['names']) or '(none)'}")
    cg = r["Cgroup"]
    L += ["", f"cgroup v{cg['version']}  {cg['path']}"]
    for k, v in (cg.get("counters") or {}).items():
        L.append(f"  {k:<16}{v}")
    if cg.get("error"):
        L.append(f"  (counters unreadable: {cg['error']})")
    m = r["Mounts"]
    L += ["", "mounts (target, type, propagation)"]
    for row in m["mounts"]:
        L.append(f"  {row['target']:<32}{row['fstype']:<10}{row['propagation']:<8}{row['options']}")
    L.append("masked paths: " + ", ".join(f"{x['path']}{'' if x['in_force'] else ' (absent)'}" for x in m["masked"]))
    L.append("read-only paths: " + ", ".join(f"{x['path']}{'' if x['in_force'] else ' (absent)'}"
                                             for x in m["readonly"]))
    n = r["Network"]
    L += ["", "network"]
    for i in n["interfaces"]:
        L.append(f"  in the container: {i['name']:<6} {' '.join(i['addresses'])}")
    for v in n["host_veths"]:
        L.append(f"  on the host:      {v['name']} (veth peer) on bridge {v['bridge']}")
    for e in n["ports"]:
        L.append(f"  nft ports element: {json.dumps(e, separators=(',', ':'))}")
    idm = r["IdMaps"]
    L += ["", "uid_map: " + " | ".join(" ".join(x.split()) for x in idm["uid_map"]),
          "gid_map: " + " | ".join(" ".join(x.split()) for x in idm["gid_map"])]
    return "\n".join(L)
