"""Image commands: pull, push, images, rmi, tag, history, import, save, load, export, commit,
login, logout, and the `image` group.

The registry client, archives and commit code are imported inside the commands that use them.
"""

from __future__ import annotations

import json

import click

from minidock.errors import MinidockError


def _store():
    from minidock.image.store import ImageStore

    return ImageStore()


def human_size(n: float) -> str:
    """Docker's units: powers of 1000, 3 significant digits (4.26MB)."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.3g}{unit}" if unit != "B" else f"{int(n)}B"
        n /= 1000
    return f"{n}B"


def _ago(ts: str) -> str:
    from minidock.cli.containers import _ago as ago

    return ago(ts) + " ago"


@click.command("import", context_settings={"help_option_names": ["--help"]})
@click.argument("file")
@click.argument("reference", required=False)
@click.option("-c", "--change", "changes", multiple=True, help="Apply a Dockerfile instruction (CMD, ENV, ...).")
@click.option("-m", "--message", default="", help="Set a commit message for the imported image.")
@click.option("--platform", help="Set platform (os/arch[/variant]) of the image.")
def import_(file, reference, changes, message, platform):
    """Import the contents from a tarball to create a filesystem image."""
    img = _store().import_tarball(file, reference, list(changes), message, platform)
    click.echo(img.id)


def _matches(img, pattern: str) -> bool:
    import fnmatch

    return any(fnmatch.fnmatch(t.rpartition(":")[0], pattern) or fnmatch.fnmatch(t, pattern)
               for t in img.repo_tags)


def _rows(imgs, all_: bool, digests: bool):
    for img in imgs:
        tags = img.repo_tags or ["<none>:<none>"]
        digest = (img.record.get("RepoDigests") or ["@<none>"])[0].partition("@")[2]
        for t in tags:
            repo, _, tag = t.rpartition(":")
            yield {"Repository": repo, "Tag": tag, "Digest": digest, "ID": img.short_id,
                   "CreatedSince": _ago(img.record.get("Created", "")),
                   "CreatedAt": img.record.get("Created", ""),
                   "Size": human_size(img.record.get("Size", 0))}


@click.command("images", context_settings={"help_option_names": ["--help"]})
@click.argument("reference", required=False)
@click.option("-a", "--all", "all_", is_flag=True, help="Show all images.")
@click.option("-q", "--quiet", is_flag=True, help="Only show image IDs.")
@click.option("--digests", is_flag=True, help="Show digests.")
@click.option("--no-trunc", is_flag=True, help="Don't truncate output.")
@click.option("-f", "--filter", "filters", multiple=True, help="Filter output (reference=..., dangling=true).")
@click.option("--format", "fmt", help="Format output: 'json' or a template {{.Repository}}:{{.Tag}}.")
def images(reference, all_, quiet, digests, no_trunc, filters, fmt):
    """List images."""
    imgs = _store().list()
    pats = [reference] if reference else []
    for f in filters:
        k, _, v = f.partition("=")
        if k == "reference":
            pats.append(v)
        elif k == "dangling":
            imgs = [i for i in imgs if bool(not i.repo_tags) == (v.lower() in ("1", "true"))]
        else:
            raise click.BadParameter(f"invalid filter '{k}'", param_hint="--filter")
    for p in pats:
        imgs = [i for i in imgs if _matches(i, p)]
    if quiet:
        seen = []
        for i in imgs:
            ident = i.id if no_trunc else i.short_id
            if ident not in seen:
                seen.append(ident)
        click.echo("\n".join(seen) + ("\n" if seen else ""), nl=False)
        return
    rows = list(_rows(imgs, all_, digests))
    if no_trunc:
        for r, img in zip(rows, imgs):
            r["ID"] = img.id
    if fmt:
        from minidock.cli.containers import format_template

        for r in rows:
            click.echo(json.dumps(r) if fmt == "json" else format_template(fmt, r))
        return
    cols = ["Repository", "Tag"] + (["Digest"] if digests else []) + ["ID", "CreatedSince", "Size"]
    heads = {"Repository": "REPOSITORY", "Tag": "TAG", "Digest": "DIGEST", "ID": "IMAGE ID",
             "CreatedSince": "CREATED", "Size": "SIZE"}
    widths = {c: max([len(heads[c])] + [len(r[c]) for r in rows]) for c in cols}
    click.echo("   ".join(heads[c].ljust(widths[c]) for c in cols).rstrip())
    for r in rows:
        click.echo("   ".join(r[c].ljust(widths[c]) for c in cols).rstrip())


@click.command("rmi", context_settings={"help_option_names": ["--help"]})
@click.argument("refs", nargs=-1, required=True)
@click.option("-f", "--force", is_flag=True, help="Force removal of the image.")
@click.option("--no-prune", is_flag=True, help="Do not delete untagged parents.")
def rmi(refs, force, no_prune):
    """Remove one or more images."""
    failed = False
    store = _store()
    for ref in refs:
        try:
            for what, x in store.remove(ref, force=force, prune_layers=not no_prune):
                click.echo(f"{what}: {x}")
        except MinidockError as e:
            failed = True
            click.echo(f"minidock: Error: {e.message}", err=True)
    if failed:
        raise SystemExit(1)


@click.command("tag", context_settings={"help_option_names": ["--help"]})
@click.argument("source")
@click.argument("target")
def tag(source, target):
    """Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE."""
    _store().tag(source, target)


@click.command("history", context_settings={"help_option_names": ["--help"]})
@click.argument("ref")
@click.option("-q", "--quiet", is_flag=True, help="Only show image IDs.")
@click.option("--no-trunc", is_flag=True, help="Don't truncate output.")
@click.option("-H", "--human", default=True, type=bool, help="Print sizes and dates in human readable format.")
def history(ref, quiet, no_trunc, human):
    """Show the history of an image."""
    img = _store().resolve(ref)
    hist = img.config.get("history") or []
    sizes = [lay.get("size", 0) for lay in img.record["Layers"]]
    rows, li = [], 0
    for h in hist:
        size = 0
        if not h.get("empty_layer"):
            size = sizes[li] if li < len(sizes) else 0
            li += 1
        rows.append((h.get("created", ""), h.get("created_by", ""), size, h.get("comment", "")))
    rows.reverse()
    if quiet:
        click.echo(img.short_id)
        return
    cw = max([len("CREATED")] + [len(_ago(r[0])) for r in rows]) + 3
    click.echo(f"{'IMAGE':<14}{'CREATED':<{cw}}{'CREATED BY':<47}{'SIZE':<10}COMMENT")
    for i, (created, by, size, comment) in enumerate(rows):
        ident = img.short_id if i == 0 else "<missing>"
        by = by if no_trunc or len(by) <= 44 else by[:43] + "…"
        click.echo(f"{ident:<14}{_ago(created):<{cw}}{by:<47}{human_size(size):<10}{comment}".rstrip())


@click.command("inspect", context_settings={"help_option_names": ["--help"]})
@click.argument("refs", nargs=-1, required=True)
@click.option("-f", "--format", "fmt", help="Format the output using a template.")
def image_inspect(refs, fmt):
    """Display detailed information on one or more images."""
    from minidock.cli.containers import inspect_many

    if inspect_many(refs, _store().inspect, fmt, prefix="minidock: Error: "):
        raise SystemExit(1)


@click.command("prune", context_settings={"help_option_names": ["--help"]})
@click.option("-a", "--all", "all_", is_flag=True, help="Remove all unused images, not just dangling ones.")
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation.")
def image_prune(all_, force):
    """Remove unused images."""
    if not force:
        what = "all images without at least one container associated to them" if all_ else "all dangling images"
        click.confirm(f"WARNING! This will remove {what}.\nAre you sure you want to continue?", abort=True)
    removed = _store().prune(all_=all_)
    if removed:
        click.echo("Deleted Images:")
        for i in removed:
            click.echo(f"deleted: {i}")


@click.command("pull", context_settings={"help_option_names": ["--help"]})
@click.argument("ref")
@click.option("-q", "--quiet", is_flag=True, help="Suppress verbose output.")
@click.option("--platform", help="Set platform if server is multi-platform capable (os/arch[/variant]).")
@click.option("-a", "--all-tags", is_flag=True, hidden=True)
@click.option("--insecure", is_flag=True, help="Allow plain http or unverified TLS to this registry.")
def pull(ref, quiet, platform, all_tags, insecure):
    """Download an image from a registry."""
    import sys

    from minidock.image import registry

    if all_tags:
        raise click.UsageError("--all-tags is not supported")
    registry.pull(ref, platform=platform, quiet=quiet, insecure=insecure, out=sys.stdout)


@click.command("push", context_settings={"help_option_names": ["--help"]})
@click.argument("ref")
@click.option("-q", "--quiet", is_flag=True, help="Suppress verbose output.")
@click.option("--insecure", is_flag=True, help="Allow plain http or unverified TLS to this registry.")
def push(ref, quiet, insecure):
    """Upload an image to a registry."""
    import sys

    from minidock.image import registry

    registry.push(ref, quiet=quiet, insecure=insecure, out=sys.stdout)


@click.command("login", context_settings={"help_option_names": ["--help"]})
@click.argument("server", required=False)
@click.option("-u", "--username", help="Username.")
@click.option("-p", "--password", help="Password.")
@click.option("--password-stdin", is_flag=True, help="Take the password from stdin.")
@click.option("--insecure", is_flag=True, help="Allow plain http or unverified TLS to this registry.")
def login(server, username, password, password_stdin, insecure):
    """Log in to a registry (credentials are checked, then stored like ~/.docker/config.json)."""
    import sys

    from minidock.image import registry

    if password_stdin:
        if password:
            raise click.UsageError("--password and --password-stdin are mutually exclusive")
        if not username:
            raise click.UsageError("Must provide --username with --password-stdin")
        password = sys.stdin.read().rstrip("\r\n")
    if password and not password_stdin:
        click.echo("WARNING! Using --password via the CLI is insecure. Use --password-stdin.", err=True)
    if not username:
        username = click.prompt("Username")
    if not password:
        password = click.prompt("Password", hide_input=True)
    where = registry.login(server or "", username, password, insecure=insecure)
    click.echo(f"Credentials stored in {where}")
    click.echo("Login Succeeded")


@click.command("logout", context_settings={"help_option_names": ["--help"]})
@click.argument("server", required=False)
def logout(server):
    """Log out from a registry."""
    from minidock.image import auth, registry

    domain = registry._server_domain(server or "")
    if auth.remove(domain):
        click.echo(f"Removing login credentials for {domain}")
    else:
        click.echo(f"Not logged in to {domain}")


@click.command("save", context_settings={"help_option_names": ["--help"]})
@click.argument("refs", nargs=-1, required=True)
@click.option("-o", "--output", help="Write to a file (or an OCI layout directory), instead of STDOUT.")
@click.option("--format", "fmt", type=click.Choice(["docker", "oci"]), default="docker", show_default=True,
              help="docker: Docker's archive (also an OCI layout); oci: OCI layout with compressed layers.")
def save(refs, output, fmt):
    """Save one or more images to a tar archive (streamed to STDOUT by default)."""
    from minidock.image import archive

    archive.save(list(refs), output, fmt)


@click.command("load", context_settings={"help_option_names": ["--help"]})
@click.option("-i", "--input", "input_", default="-", help="Read from tar archive file (or OCI layout dir).")
@click.option("-q", "--quiet", is_flag=True, help="Suppress the load output.")
def load(input_, quiet):
    """Load an image from a tar archive or STDIN (Docker archive or OCI layout)."""
    import sys

    from minidock.image import archive

    if input_ == "-" and sys.stdin.isatty():
        raise click.UsageError("requested load from stdin, but stdin is empty")
    for line in archive.load(input_):
        if not quiet:
            click.echo(line)


@click.command("export", context_settings={"help_option_names": ["--help"]})
@click.argument("container")
@click.option("-o", "--output", help="Write to a file, instead of STDOUT.")
def export(container, output):
    """Export a container's filesystem as a tar archive."""
    from minidock.image import commit as c

    c.export(container, output)


@click.command("commit", context_settings={"help_option_names": ["--help"]})
@click.argument("container")
@click.argument("ref", required=False)
@click.option("-a", "--author", default="", help='Author (e.g., "John Hannibal Smith <hannibal@a-team.com>").')
@click.option("-c", "--change", "changes", multiple=True, help="Apply Dockerfile instruction to the created image.")
@click.option("-m", "--message", default="", help="Commit message.")
@click.option("-p", "--pause", type=bool, default=True, hidden=True)
def commit(container, ref, author, changes, message, pause):
    """Create a new image from a container's changes."""
    from minidock.image import commit as c

    img = c.commit(container, ref, changes=list(changes), message=message, author=author)
    click.echo(img.id)


@click.group("image", context_settings={"help_option_names": ["--help"]})
def image():
    """Manage images."""


image.add_command(images, "ls")
image.add_command(images, "list")
image.add_command(image_inspect, "inspect")
image.add_command(rmi, "rm")
image.add_command(tag, "tag")
image.add_command(history, "history")
image.add_command(import_, "import")
image.add_command(image_prune, "prune")
image.add_command(pull, "pull")
image.add_command(push, "push")
image.add_command(save, "save")
image.add_command(load, "load")
