"""`volume create/ls/inspect/rm/prune` and `cp`: parse, call, print."""

from __future__ import annotations

import sys

import click

from minidock.errors import MinidockError


def _vol():
    from minidock import volumes

    return volumes


@click.group()
def volume():
    """Manage volumes."""


@volume.command("create")
@click.option("-d", "--driver", default="local", help="Specify volume driver name (local).")
@click.option("--label", "labels", multiple=True, help="Set metadata for a volume.")
@click.option("-o", "--opt", "opts", multiple=True, help="Set driver specific options (recorded only).")
@click.argument("name", required=False)
def create(driver, labels, opts, name):
    """Create a volume."""
    if driver != "local":
        raise MinidockError(f'error looking up volume plugin {driver}: plugin "{driver}" not found')
    meta, _ = _vol().create(name, dict(x.partition("=")[::2] for x in labels),
                            options=dict(x.partition("=")[::2] for x in opts))
    from minidock.engine import events  # selfheal (issue 11): Docker's volume events

    events.emit("volume", "create", meta["Name"], {"driver": meta.get("Driver", "local")})
    click.echo(meta["Name"])


@volume.command("ls")
@click.option("-q", "--quiet", is_flag=True, help="Only display volume names.")
@click.option("-f", "--filter", "filters", multiple=True,
              help="Filter output (dangling=true|false, name=, label=, driver=).")
@click.option("--format", "fmt", help="Format output: 'table', 'table TEMPLATE', 'json' or a Go template.")
def ls(quiet, filters, fmt):
    """List volumes."""
    import re

    from minidock.cli import gotemplate, views

    if fmt and fmt not in ("json", "table"):
        gotemplate.parse(fmt[5:] if fmt.startswith("table") else fmt)
    flt = views.parse_filters(filters, {"dangling": 1, "name": 1, "label": 1, "driver": 1})
    vols = _vol().listing()
    for val in flt.get("dangling", []):
        dangling = {m["Name"] for m in vols if not _vol().users(m["Name"])}
        want = val.lower() in ("true", "1")
        vols = [m for m in vols if (m["Name"] in dangling) == want]
    if "name" in flt:
        vols = [m for m in vols if any(re.search(v, m["Name"]) for v in flt["name"])]
    if "driver" in flt:
        vols = [m for m in vols if m["Driver"] in flt["driver"]]
    for val in flt.get("label", []):
        lk, eq, lv = val.partition("=")
        vols = [m for m in vols if lk in (m.get("Labels") or {}) and (not eq or m["Labels"][lk] == lv)]
    if quiet and not fmt:
        for m in vols:
            click.echo(m["Name"])
        return
    rows = []
    for m in vols:
        labels = m.get("Labels") or {}
        row = gotemplate.Struct({
            "Name": m["Name"], "Driver": m["Driver"], "Scope": m.get("Scope", "local"),
            "Mountpoint": m.get("Mountpoint", ""), "Labels": ",".join(f"{k}={v}" for k, v in sorted(labels.items())),
            "Links": "N/A", "Size": "N/A", "Group": "N/A", "Availability": "N/A", "Status": "N/A"},
            type_name="*formatter.volumeContext")
        row["Label"] = lambda k, labels=labels: labels.get(k, "")
        rows.append(row)
    gotemplate.write_listing(fmt, rows, "table {{.Driver}}\t{{.Name}}", {
        "Name": "VOLUME NAME", "Driver": "DRIVER", "Scope": "SCOPE", "Mountpoint": "MOUNTPOINT",
        "Labels": "LABELS", "Label": lambda *_: "LABEL", "Links": "LINKS", "Size": "SIZE", "Group": "GROUP",
        "Availability": "AVAILABILITY", "Status": "STATUS"})


@volume.command("inspect")
@click.option("-f", "--format", "fmt", help="Format the output using a Go-like template.")
@click.argument("names", metavar="VOLUME...", nargs=-1, required=True)
def inspect(fmt, names):
    """Display detailed information on one or more volumes."""
    from minidock.cli.containers import inspect_many

    return inspect_many(names, _vol().inspect, fmt, prefix="Error response from daemon: ")


@volume.command("rm")
@click.option("-f", "--force", is_flag=True, help="Force the removal of one or more volumes.")
@click.argument("names", metavar="VOLUME...", nargs=-1, required=True)
def rm(force, names):
    """Remove one or more volumes (not while a container uses them)."""
    failed = False
    for n in names:
        try:
            _vol().remove(n, force)
            from minidock.engine import events

            events.emit("volume", "destroy", n, {"driver": "local"})
            click.echo(n)
        except MinidockError as e:
            if force and "no such volume" in e.message:
                continue
            click.echo(f"Error response from daemon: {e.message}", err=True)
            failed = True
    return 1 if failed else 0


@volume.command("prune")
@click.option("-a", "--all", "all_", is_flag=True, help="Remove all unused volumes, not just anonymous ones.")
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation.")
@click.option("--filter", "filters", multiple=True, help="Provide filter values (e.g. 'label=k=v', 'all=true').")
def prune(all_, force, filters):
    """Remove unused local volumes (anonymous ones; -a: all)."""
    if not force and sys.stdin.isatty():
        click.confirm("WARNING! This will remove anonymous local volumes not used by at least one container.\n"
                      "Are you sure you want to continue?", abort=True)
    if filters:
        from minidock.engine.ops import prune_filter
        from minidock.volumes import is_anonymous

        flt = [f for f in filters if not f.startswith("all=")]
        all_ = all_ or any(f.lower() in ("all=true", "all=1") for f in filters)
        if any(f.startswith("until=") for f in flt):
            raise MinidockError("invalid filter 'until'", exit_code=1)  # Docker: not for volumes
        keep = prune_filter(flt)
        vol = _vol()
        removed = []
        for meta in vol.listing():
            if vol.users(meta["Name"]) or not (all_ or is_anonymous(meta)):
                continue
            if keep(None, meta.get("Labels") or {}):
                vol.remove(meta["Name"])
                removed.append(meta["Name"])
    else:
        removed = _vol().prune(all_)
    if removed:
        click.echo("Deleted Volumes:")
        for n in removed:
            click.echo(n)
        click.echo()
    click.echo(f"Total reclaimed space: {len(removed)} volumes")


@click.command(context_settings={"allow_interspersed_args": False})
@click.option("-a", "--archive", is_flag=True, help="Archive mode (copy all uid/gid information).")
@click.option("-L", "--follow-link", is_flag=True, help="Always follow symbol link in SRC_PATH.")
@click.argument("src", metavar="SRC")
@click.argument("dest", metavar="DEST")
def cp(archive, follow_link, src, dest):
    """Copy files/folders between a container and the local filesystem.

    \b
    minidock cp CONTAINER:SRC_PATH DEST_PATH|-
    minidock cp SRC_PATH|- CONTAINER:DEST_PATH

    `-` is a tar stream (stdout / stdin). Copies to the host belong to you, copies into the
    container to its root, unless -a keeps the original uid/gid.
    """
    from minidock.engine.lifecycle import rootfs_mounted
    from minidock.volumes.cp import cp as do_cp

    do_cp(src, dest, rootfs_mounted=rootfs_mounted, archive=archive, follow_link=follow_link)
