"""`network create/ls/inspect/rm/prune/connect/disconnect` and `port`: parse, call, print."""

from __future__ import annotations

import sys

import click

from minidock.errors import MinidockError


def _net():
    from minidock import network

    return network


@click.group()
def network():
    """Manage networks."""


class _GoBoolFlags(click.Command):
    """``--ipv6`` alone, or ``--ipv6=true|false``, as Go's pflag parses a bool flag (the value never
    comes from the next argument: `network create --ipv6 NAME`)."""

    def parse_args(self, ctx, args):
        out = []
        for a in args:
            if a.startswith("--ipv6="):
                v = a.partition("=")[2]
                if v.lower() not in ("true", "false", "1", "0", "t", "f"):
                    raise click.UsageError(f'invalid argument "{v}" for "--ipv6" flag: strconv.ParseBool: '
                                           f'parsing "{v}": invalid syntax', ctx)
                a = "--ipv6" if v.lower() in ("true", "1", "t") else "--no-ipv6"
            out.append(a)
        return super().parse_args(ctx, out)


@network.command("create", cls=_GoBoolFlags)
@click.option("-d", "--driver", default="bridge", help="Driver to manage the Network (bridge).")
@click.option("--subnet", "subnets", multiple=True,
              help="Subnet in CIDR format that represents a network segment (one IPv4, one IPv6).")
@click.option("--gateway", "gateways", multiple=True, help="IPv4 or IPv6 Gateway for the master subnet.")
@click.option("--ipv6/--no-ipv6", default=None,
              help="Enable or disable IPv6: --ipv6[=true|false] (default: on where the host has IPv6).")
@click.option("--label", "labels", multiple=True, help="Set metadata on a network.")
@click.option("--internal", is_flag=True, help="Restrict external access to the network (recorded only).")
@click.argument("name")
def create(driver, subnets, gateways, ipv6, labels, internal, name):
    """Create a network."""
    lab = dict(x.partition("=")[::2] for x in labels)
    net = _net().create(name, list(subnets), list(gateways), lab, driver, internal, ipv6)
    _event("create", net["Id"], name, driver or "bridge")
    click.echo(net["Id"])


def _event(action: str, net_id: str, name: str, type_: str = "bridge", **extra) -> None:
    from minidock.engine import events  # selfheal (issue 11): Docker's network events

    events.emit("network", action, net_id, {"name": name, "type": type_, **extra})


@network.command("ls")
@click.option("-q", "--quiet", is_flag=True, help="Only display network IDs.")
@click.option("--no-trunc", is_flag=True, help="Do not truncate the output.")
@click.option("-f", "--filter", "filters", multiple=True,
              help="Filter output (name=, driver=, id=, label=, scope=, type=).")
@click.option("--format", "fmt", help="Format output: 'table', 'table TEMPLATE', 'json' or a Go template.")
def ls(quiet, no_trunc, filters, fmt):
    """List networks."""
    import re

    from minidock.cli import gotemplate, views

    if fmt and fmt not in ("json", "table"):
        gotemplate.parse(fmt[5:] if fmt.startswith("table") else fmt)
    flt = views.parse_filters(filters, {"name": 1, "driver": 1, "id": 1, "label": 1, "scope": 1, "type": 1,
                                        "dangling": 1})
    nets = sorted(_net().listing(), key=lambda n: n["Name"])
    tests = {
        "name": lambda n, v: re.search(v, n["Name"]) is not None,
        "id": lambda n, v: re.search(v, n["Id"]) is not None,
        "driver": lambda n, v: n["Driver"] == v,
        "scope": lambda n, v: n.get("Scope") == v,
        "type": lambda n, v: (n["Name"] in ("bridge", "host", "none")) == (v == "builtin"),
        "label": lambda n, v: v.partition("=")[0] in (n.get("Labels") or {}) and (
            "=" not in v or (n.get("Labels") or {})[v.partition("=")[0]] == v.partition("=")[2]),
        "dangling": lambda n, v: not n.get("Containers") and n["Name"] not in ("bridge", "host", "none"),
    }
    for key, vals in flt.items():
        nets = [n for n in nets if any(tests[key](n, v) for v in vals)]
    if quiet and not fmt:
        for n in nets:
            click.echo(n["Id"] if no_trunc else n["Id"][:12])
        return
    rows = []
    for n in nets:
        labels = n.get("Labels") or {}
        row = gotemplate.Struct({
            "ID": n["Id"] if no_trunc else n["Id"][:12], "Name": n["Name"], "Driver": n["Driver"],
            "Scope": n.get("Scope", "local"), "IPv6": "true" if n.get("EnableIPv6") else "false",
            "Internal": "true" if n.get("Internal") else "false",
            "Labels": ",".join(f"{k}={v}" for k, v in sorted(labels.items())),
            "CreatedAt": views.go_time(n.get("Created", ""))}, type_name="*formatter.networkContext")
        row["Label"] = lambda k, labels=labels: labels.get(k, "")
        rows.append(row)
    gotemplate.write_listing(fmt, rows, "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}", {
        "ID": "NETWORK ID", "Name": "NAME", "Driver": "DRIVER", "Scope": "SCOPE", "IPv6": "IPV6",
        "Internal": "INTERNAL", "Labels": "LABELS", "Label": lambda *_: "LABEL", "CreatedAt": "CREATED"})


def _table(cols, rows):
    widths = [max([len(c)] + [len(str(r[i])) for r in rows]) for i, c in enumerate(cols)]
    click.echo("   ".join(c.ljust(w) for c, w in zip(cols, widths)).rstrip())
    for r in rows:
        click.echo("   ".join(str(v).ljust(w) for v, w in zip(r, widths)).rstrip())


@network.command("inspect")
@click.option("-f", "--format", "fmt", help="Format the output using a Go-like template.")
@click.argument("refs", metavar="NETWORK...", nargs=-1, required=True)
def inspect(fmt, refs):
    """Display detailed information on one or more networks."""
    from minidock.cli.containers import inspect_many

    return inspect_many(refs, _net().inspect, fmt, prefix="Error response from daemon: ")


@network.command("rm")
@click.argument("refs", metavar="NETWORK...", nargs=-1, required=True)
def rm(refs):
    """Remove one or more networks."""
    failed = False
    for ref in refs:
        try:
            info = _net().inspect(ref)
            _net().remove(ref)
            _event("destroy", info.get("Id", ref), info.get("Name", ref), info.get("Driver", "bridge"))
            click.echo(ref)
        except MinidockError as e:
            click.echo(f"Error response from daemon: {e.message}", err=True)
            failed = True
    return 1 if failed else 0


@network.command("prune")
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation.")
@click.option("--filter", "filters", multiple=True,
              help="Provide filter values (e.g. 'until=<timestamp>', 'label=k=v').")
def prune(force, filters):
    """Remove all unused networks."""
    if not force and sys.stdin.isatty():
        click.confirm("WARNING! This will remove all custom networks not used by at least one container.\n"
                      "Are you sure you want to continue?", abort=True)
    if filters:
        from minidock.cli.views import parse_time
        from minidock.engine.ops import prune_filter

        keep = prune_filter(list(filters))
        removed = []
        for n in _net().listing():
            if n["Name"] in ("bridge", "host", "none") or n.get("Containers"):
                continue
            if keep(parse_time(n.get("Created", "")), n.get("Labels") or {}):
                _net().remove(n["Name"])
                removed.append(n["Name"])
    else:
        removed = _net().prune()
    if removed:
        click.echo("Deleted Networks:")
        for n in removed:
            click.echo(n)


@network.command("connect")
@click.option("--ip", help="IPv4 address (e.g., 172.30.100.104).")
@click.option("--ip6", help="IPv6 address (e.g., fd00:1::104).")
@click.option("--alias", "aliases", multiple=True, help="Add network-scoped alias for the container.")
@click.argument("net")
@click.argument("ref", metavar="CONTAINER")
def connect(ip, ip6, aliases, net, ref):
    """Connect a container to a network (now if it runs, else at its next start)."""
    from minidock.engine import lifecycle
    from minidock.state import containers

    rec = lifecycle.refresh(containers.resolve(ref))
    _net().connect_container(net, rec, ip, list(aliases), ip6=ip6)
    info = _net().inspect(net)
    _event("connect", info.get("Id", net), info.get("Name", net), container=rec["Id"])


@network.command("disconnect")
@click.option("-f", "--force", is_flag=True, help="Force the container to disconnect from a network.")
@click.argument("net")
@click.argument("ref", metavar="CONTAINER")
def disconnect(force, net, ref):
    """Disconnect a container from a network."""
    from minidock.engine import lifecycle
    from minidock.state import containers

    rec = lifecycle.refresh(containers.resolve(ref))
    _net().disconnect_container(net, rec, force)
    info = _net().inspect(net)
    _event("disconnect", info.get("Id", net), info.get("Name", net), container=rec["Id"])


@click.command()
@click.argument("ref", metavar="CONTAINER")
@click.argument("private", metavar="[PRIVATE_PORT[/PROTO]]", required=False)
def port(ref, private):
    """List port mappings or a specific mapping for the container."""
    from minidock.engine import lifecycle
    from minidock.state import containers

    rec = lifecycle.refresh(containers.resolve(ref))
    if not rec["State"].get("Running"):
        if private:
            raise MinidockError(f"No public port '{private}' published for {containers.name_of(rec)}")
        return
    from minidock.network import port_lines

    for line in port_lines(rec, private):
        click.echo(line)
