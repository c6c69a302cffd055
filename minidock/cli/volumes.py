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
    click.echo(meta["Name"])


@volume.command("ls")
@click.option("-q", "--quiet", is_flag=True, help="Only display volume names.")
@click.option("-f", "--filter", "filters", multiple=True, help="Filter output (dangling=true|false, name=, label=).")
def ls(quiet, filters):
    """List volumes."""
    vols = _vol().listing()
    for f in filters:
        key, _, val = f.partition("=")
        if key == "dangling":
            dangling = {m["Name"] for m in vols if not _vol().users(m["Name"])}
            want = val.lower() in ("true", "1")
            vols = [m for m in vols if (m["Name"] in dangling) == want]
        elif key == "name":
            vols = [m for m in vols if val in m["Name"]]
        elif key == "label":
            lk, _, lv = val.partition("=")
            vols = [m for m in vols if lk in m["Labels"] and (not lv or m["Labels"][lk] == lv)]
    if quiet:
        for m in vols:
            click.echo(m["Name"])
        return
    click.echo(f"{'DRIVER':<10}VOLUME NAME")
    for m in vols:
        click.echo(f"{m['Driver']:<10}{m['Name']}")


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
def prune(all_, force):
    """Remove unused local volumes (anonymous ones; -a: all)."""
    if not force and sys.stdin.isatty():
        click.confirm("WARNING! This will remove anonymous local volumes not used by at least one container.\n"
                      "Are you sure you want to continue?", abort=True)
    removed = _vol().prune(all_)
    if removed:
        click.echo("Deleted Volumes:")
        for n in removed:
            click.echo(n)
    click.echo(f"Total reclaimed space: {len(removed)} volumes")


@click.command(context_settings={"allow_interspersed_args": False})
@click.option("-a", "--archive", is_flag=True, help="Archive mode (copy all uid/gid information).")
@click.option("-L", "--follow-link", is_flag=True, help="Always follow symbol link in SRC_PATH.")
@click.argument("src", metavar="SRC")
@click.argument("dest", metavar="DEST")
def cp(archive, follow_link, src, dest):
    """Copy files/folders between a container and the local filesystem.

    \b
    minidock cp CONTAINER:SRC_PATH DEST_PATH
    minidock cp SRC_PATH CONTAINER:DEST_PATH
    """
    from minidock.volumes.cp import cp as do_cp

    if src == "-" or dest == "-":
        raise MinidockError("cp with a tar stream (-) is not supported by minidock yet")
    do_cp(src, dest)
