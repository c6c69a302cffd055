"""`minidock diagram CONTAINER`: pictures of a live container, drawn from the kernel's state.

Four views, each one SVG (or plain text for a terminal), all from `inspect --kernel`'s report
(kernelview.py) and the container's record — nothing is drawn that was not read:

* namespaces — the container's namespaces next to the host's, own ones highlighted
* overlay    — the overlay stack: merged view, upper dir, lower dirs (shared image layers)
* cgroup     — the cgroup path from the root to the container, with its limits and counters
* network    — the packet path: eth0 — veth — bridge — NAT (nft) — host, with the published ports

scripts/lab-diagrams draws them for the lab sheets (docs/labs/img/).
"""

from __future__ import annotations

from html import escape

VIEWS = ("namespaces", "overlay", "cgroup", "network")
W = 760


class _Svg:
    def __init__(self, title: str):
        self.items: list[str] = []
        self.y = 40
        self.title = title

    def box(self, x, y, w, h, label, sub="", fill="#eef3fb", stroke="#4a6fa5", bold=False):
        self.items.append(f'<rect x="{x}" y="{y}" width="{w}" height="{h}" rx="6" fill="{fill}" stroke="{stroke}"/>')
        weight = ' font-weight="bold"' if bold else ""
        self.items.append(f'<text x="{x + 8}" y="{y + 18}" font-size="13"{weight}>{escape(label)}</text>')
        if sub:
            for i, line in enumerate(sub.split("\n")):
                self.items.append(f'<text x="{x + 8}" y="{y + 35 + 15 * i}" font-size="11" '
                                  f'fill="#333">{escape(line)}</text>')

    def arrow(self, x1, y1, x2, y2, label=""):
        self.items.append(f'<line x1="{x1}" y1="{y1}" x2="{x2}" y2="{y2}" stroke="#555" '
                          f'marker-end="url(#a)"/>')
        if label:
            self.items.append(f'<text x="{(x1 + x2) / 2 + 4}" y="{(y1 + y2) / 2 - 4}" font-size="11" '
                              f'fill="#555">{escape(label)}</text>')

    def render(self, height: int) -> str:
        head = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{height}" '
                f'font-family="monospace"><defs><marker id="a" markerWidth="8" markerHeight="8" refX="7" '
                f'refY="3" orient="auto"><path d="M0,0 L7,3 L0,6 z" fill="#555"/></marker></defs>'
                f'<rect width="100%" height="100%" fill="white"/>'
                f'<text x="10" y="22" font-size="15" font-weight="bold">{escape(self.title)}</text>')
        return head + "".join(self.items) + "</svg>\n"


def _short(path: str, keep: int = 60) -> str:
    return path if len(path) <= keep else "…" + path[-(keep - 1):]


def namespaces(rep: dict, rec: dict) -> tuple[str, str]:
    s = _Svg(f"namespaces of {rep['Name']} (init: host PID {rep['Pid']})")
    s.box(10, 40, 360, 30 + 22 * len(rep["Namespaces"]), "the host", fill="#f4f4f4", stroke="#888", bold=True)
    s.box(390, 40, 360, 30 + 22 * len(rep["Namespaces"]), f"container {rep['Name']}", bold=True)
    text = [f"namespaces of {rep['Name']}", f"{'type':<8}{'host':<24}container"]
    for i, n in enumerate(rep["Namespaces"]):
        y = 85 + 22 * i
        own = n["own"]
        s.items.append(f'<text x="20" y="{y}" font-size="12">{escape(n["type"]):<7} {escape(n["host"])}</text>')
        color = "#1b7f3b" if own else "#999"
        s.items.append(f'<text x="400" y="{y}" font-size="12" fill="{color}">{escape(n["type"]):<7} '
                       f'{escape(n["container"])}{"  (own)" if own else "  (shared)"}</text>')
        text.append(f"{n['type']:<8}{n['host']:<24}{n['container']}{'  own' if own else '  shared'}")
    return s.render(80 + 22 * len(rep["Namespaces"])), "\n".join(text)


def overlay(rep: dict, rec: dict) -> tuple[str, str]:
    data = (rec.get("GraphDriver") or {}).get("Data") or {}
    lowers = [x for x in (data.get("LowerDir") or "").split(":") if x]
    s = _Svg(f"overlay stack of {rep['Name']}")
    y = 40
    s.box(10, y, 740, 40, "merged: the container's /", _short(data.get("MergedDir", ""), 95), fill="#fff7e0",
          stroke="#b8860b", bold=True)
    y += 55
    s.box(10, y, 740, 40, "upper (read-write: this container's changes, whiteouts)",
          _short(data.get("UpperDir", ""), 95), fill="#e8f6ec", stroke="#1b7f3b")
    text = ["overlay stack (top to bottom)", f"merged  {data.get('MergedDir', '')}",
            f"upper   {data.get('UpperDir', '')}"]
    for i, low in enumerate(lowers):
        y += 55
        s.box(10, y, 740, 40, f"lower {i + 1} (read-only image layer, shared)", _short(low, 95))
        text.append(f"lower   {low}")
    return s.render(y + 55), "\n".join(text)


def cgroup(rep: dict, rec: dict) -> tuple[str, str]:
    cg = rep["Cgroup"]
    parts = cg["path"].split("/")
    s = _Svg(f"cgroup v{cg['version']} of {rep['Name']}")
    y, x = 40, 10
    text = [f"cgroup v{cg['version']}", "/ (the hierarchy's root)"]
    s.box(x, y, 300, 30, "/ (root of the hierarchy)", fill="#f4f4f4", stroke="#888")
    for i, p in enumerate(parts):
        px, py = x + 20 * (i + 1), y + 45 * (i + 1)
        s.arrow(px + 5, py - 15, px + 5, py)
        last = i == len(parts) - 1
        s.box(px, py, 740 - px, 30 if not last else 40 + 15 * len(cg.get("counters") or {}),
              (p[:12] if last and len(p) == 64 else p) + ("  <- the container's processes" if last else ""),
              "\n".join(f"{k} = {v}" for k, v in (cg.get("counters") or {}).items()) if last else "",
              fill="#e8f6ec" if last else "#eef3fb", stroke="#1b7f3b" if last else "#4a6fa5")
        text.append("  " * (i + 1) + p)
    for k, v in (cg.get("counters") or {}).items():
        text.append("  " * (len(parts) + 1) + f"{k} = {v}")
    return s.render(y + 45 * len(parts) + 60 + 15 * len(cg.get("counters") or {})), "\n".join(text)


def network(rep: dict, rec: dict) -> tuple[str, str]:
    net = rep["Network"]
    s = _Svg(f"packet path of {rep['Name']}")
    eth = [i for i in net["interfaces"] if i["name"] != "lo"]
    text = [f"packet path of {rep['Name']}"]
    if not eth:
        s.box(10, 40, 740, 40, "no network: only loopback (--network none) or the host's (--network host)")
        return s.render(100), "no interface but lo"
    e = eth[0]
    veth = net["host_veths"][0] if net["host_veths"] else {"name": "?", "bridge": "?"}
    v4 = [a for a in e["addresses"] if ":" not in a] or e["addresses"]
    s.box(10, 40, 220, 60, f"container: {e['name']}", " ".join(v4))
    s.arrow(230, 70, 270, 70)
    s.items.append('<text x="232" y="92" font-size="11" fill="#555">veth</text>')
    s.box(270, 40, 200, 60, f"host: {veth['name']}", "the veth's host end")
    s.arrow(470, 70, 510, 70)
    s.box(510, 40, 240, 60, f"bridge {veth['bridge']}", "the gateway of the subnet")
    s.arrow(630, 100, 630, 140)
    s.box(470, 140, 280, 60, "nftables: table ip minidock", "masquerade out, DNAT the\npublished ports in")
    s.arrow(610, 200, 610, 240)
    s.box(470, 240, 280, 45, "host: routing, eth0 of the machine")
    text += [f"{e['name']} {' '.join(e['addresses'])} (in the container)", f"  -- veth --> {veth['name']} (host)",
             f"  --> bridge {veth['bridge']}", "  --> nftables (ip minidock): masquerade / DNAT", "  --> host"]
    y = 150
    for p in net["ports"]:
        line = f"published: {port_text(p)}"
        s.items.append(f'<text x="20" y="{y}" font-size="12">{escape(line)}</text>')
        text.append(line)
        y += 16
    return s.render(300), "\n".join(text)


def port_text(elem) -> str:
    """One nft `ports` map element (JSON) as 'tcp 8080 -> 172.30.0.2:80'."""
    def flat(x):
        if isinstance(x, dict):
            return [v for item in x.get("concat", [x]) for v in flat(item)] if "concat" in x else \
                [str(x.get("prefix", x))]
        if isinstance(x, list):
            return [v for item in x for v in flat(item)]
        return [str(x)]

    parts = flat(elem)
    if len(parts) >= 4:
        return f"{parts[0]} {parts[-3]} -> {parts[-2]}:{parts[-1]}"
    return " ".join(parts)


def draw(view: str, rep: dict, rec: dict) -> tuple[str, str]:
    """(svg, text) of one view."""
    return {"namespaces": namespaces, "overlay": overlay, "cgroup": cgroup, "network": network}[view](rep, rec)
