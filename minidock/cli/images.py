"""Image commands: pull, push, images, rmi, tag, history, import, save, load, export, commit,
login, logout, and the `image` group.

The registry client, archives and commit code are imported inside the commands that use them.
"""

from __future__ import annotations

import sys

import click

from minidock.cli.build import build as build_cmd
from minidock.errors import MinidockError


def _store():
    from minidock.image.store import ImageStore

    return ImageStore()


def _ago(ts: str) -> str:
    from minidock.cli.views import since

    return since(ts) + " ago"


@click.command("import", context_settings={"help_option_names": ["--help"]})
@click.argument("file")
@click.argument("reference", required=False)
@click.option("-c", "--change", "changes", multiple=True, help="Apply a Dockerfile instruction (CMD, ENV, ...).")
@click.option("-m", "--message", default="", help="Set a commit message for the imported image.")
@click.option("--platform", help="Set platform (os/arch[/variant]) of the image.")
def import_(file, reference, changes, message, platform):
    """Import the contents from a tarball to create a filesystem image."""
    img = _store().import_tarball(file, reference, list(changes), message, platform)
    _event("import", img.id, img.id)
    click.echo(img.id)


def familiar(ref: str) -> str:
    """Docker's familiar form of a reference: docker.io/library/busybox:1 -> busybox:1."""
    for prefix in ("docker.io/library/", "index.docker.io/library/", "docker.io/", "index.docker.io/"):
        if ref.startswith(prefix):
            return ref[len(prefix):]
    return ref


def _event(action: str, actor: str, name: str) -> None:
    from minidock.engine import events  # selfheal (issue 11): Docker's image events

    events.emit("image", action, actor, {"name": name})


def _path_match(pattern: str, name: str) -> bool:
    """Go's path.Match: `*` and `?` never cross a `/`; [classes]; backslash escapes."""
    import re

    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "\\" and i + 1 < len(pattern):
            i += 1
            out.append(re.escape(pattern[i]))
        elif c == "[":
            j = pattern.find("]", i + 1)
            if j < 0:
                return False  # ErrBadPattern matches nothing
            cls = pattern[i + 1:j]
            if cls.startswith("^"):
                cls = "^" + cls[1:].replace("\\", "\\\\")
            out.append("(?![/])[" + cls + "]")
            i = j
        else:
            out.append(re.escape(c))
        i += 1
    return re.fullmatch("".join(out), name) is not None


def reference_matches(pattern: str, tag: str) -> bool:
    """Docker's reference filter (FamiliarMatch): the pattern against `name:tag`, then `name`."""
    fam = familiar(tag)
    if _path_match(pattern, fam):
        return True
    name = fam.rsplit(":", 1)[0] if ":" in fam.rsplit("/", 1)[-1] else fam
    return _path_match(pattern, name)


IMAGE_HEADERS = {"Repository": "REPOSITORY", "Tag": "TAG", "Digest": "DIGEST", "ID": "IMAGE ID",
                 "CreatedSince": "CREATED", "CreatedAt": "CREATED AT", "Size": "SIZE",
                 "Containers": "CONTAINERS", "SharedSize": "SHARED SIZE", "UniqueSize": "UNIQUE SIZE",
                 "VirtualSize": "VIRTUAL SIZE"}


def _rows(imgs, tags_of, trunc: bool):
    from minidock.cli.gotemplate import Struct
    from minidock.cli.views import go_time
    from minidock.cli.views import human_size as hs

    for img in imgs:
        tags = tags_of(img)
        digests = img.record.get("RepoDigests") or []
        digest = digests[0].partition("@")[2] if digests else "<none>"
        size = hs(img.record.get("Size", 0))
        for t in tags or ["<none>:<none>"]:
            t = familiar(t)
            repo, _, tag = t.rpartition(":")
            yield Struct({"Containers": "N/A", "CreatedAt": go_time(img.record.get("Created", "")),
                          "CreatedSince": _ago(img.record.get("Created", "")), "Digest": digest,
                          "ID": img.short_id if trunc else img.id, "Repository": repo, "SharedSize": "N/A",
                          "Size": size, "Tag": tag, "UniqueSize": "N/A", "VirtualSize": size},
                         type_name="*formatter.imageContext")


@click.command("images", context_settings={"help_option_names": ["--help"]})
@click.argument("reference", required=False)
@click.option("-a", "--all", "all_", is_flag=True, help="Show all images.")
@click.option("-q", "--quiet", is_flag=True, help="Only show image IDs.")
@click.option("--digests", is_flag=True, help="Show digests.")
@click.option("--no-trunc", is_flag=True, help="Don't truncate output.")
@click.option("-f", "--filter", "filters", multiple=True,
              help="Filter output (reference=, dangling=, label=, before=, since=).")
@click.option("--format", "fmt", help="Format output: 'table', 'table TEMPLATE', 'json' or a Go template.")
def images(reference, all_, quiet, digests, no_trunc, filters, fmt):
    """List images (REPOSITORY[:TAG] and reference= match Docker's globs on name and tag)."""
    from minidock.cli import gotemplate, views

    if fmt and fmt not in ("json", "table"):
        gotemplate.parse(fmt[5:] if fmt.startswith("table") else fmt)
    flt = views.parse_filters(filters, {"reference": 1, "dangling": 1, "label": 1, "before": 1, "since": 1})
    store = _store()
    imgs = store.list()
    pats = ([reference] if reference else []) + flt.get("reference", [])
    for v in flt.get("dangling", []):
        if v.lower() not in ("true", "false", "1", "0"):
            raise MinidockError(f"Invalid filter 'dangling={v}'")
        imgs = [i for i in imgs if bool(not i.repo_tags) == (v.lower() in ("1", "true"))]
    for v in flt.get("label", []):
        k, eq, val = v.partition("=")
        imgs = [i for i in imgs if k in _labels(i) and (not eq or _labels(i)[k] == val)]
    for key in ("before", "since"):
        for v in flt.get(key, []):
            ref_created = store.resolve(v).record.get("Created", "")
            imgs = [i for i in imgs if (i.record.get("Created", "") < ref_created) == (key == "before")
                    and i.record.get("Created", "") != ref_created]

    def tags_of(img):
        if not pats:
            return img.repo_tags
        return [t for t in img.repo_tags if any(reference_matches(p, t) for p in pats)]

    if pats:
        imgs = [i for i in imgs if tags_of(i)]
    imgs.sort(key=lambda i: i.record.get("Created", ""), reverse=True)
    if quiet and not fmt:
        seen = []
        for i in imgs:
            ident = i.id if no_trunc else i.short_id
            if ident not in seen:
                seen.append(ident)
        click.echo("\n".join(seen) + ("\n" if seen else ""), nl=False)
        return
    rows = list(_rows(imgs, tags_of, not no_trunc))
    if not fmt or fmt == "table":
        fmt = "table {{.Repository}}\t{{.Tag}}\t" + ("{{.Digest}}\t" if digests else "") + \
            "{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
    sys.stdout.write(gotemplate.docker_format(fmt, rows, IMAGE_HEADERS))


def _labels(img) -> dict:
    return ((img.config or {}).get("config") or {}).get("Labels") or {}


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
            try:
                img_id = store.resolve(ref).id
            except MinidockError:
                img_id = ref
            for what, x in store.remove(ref, force=force, prune_layers=not no_prune):
                if what == "Untagged":
                    _event("untag", img_id, img_id)
                elif what == "Deleted" and x == img_id:
                    _event("delete", img_id, img_id)
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
    store = _store()
    store.tag(source, target)
    _event("tag", store.resolve(target).id, _familiar(target))


def _familiar(ref: str) -> str:
    """Docker's name in image events: busybox:latest, not docker.io/library/busybox:latest."""
    r = ref if ":" in ref.rsplit("/", 1)[-1] or "@" in ref else ref + ":latest"
    for p in ("docker.io/library/", "docker.io/"):
        if r.startswith(p):
            return r[len(p):]
    return r


@click.command("history", context_settings={"help_option_names": ["--help"]})
@click.argument("ref")
@click.option("-q", "--quiet", is_flag=True, help="Only show image IDs.")
@click.option("--no-trunc", is_flag=True, help="Don't truncate output.")
@click.option("-H", "--human", default=True, type=bool, help="Print sizes and dates in human readable format.")
@click.option("--format", "fmt", help="Format output: 'table', 'table TEMPLATE', 'json' or a Go template.")
def history(ref, quiet, no_trunc, human, fmt):
    """Show the history of an image."""
    from minidock.cli import gotemplate
    from minidock.cli.views import human_size as hs

    if fmt and fmt not in ("json", "table"):
        gotemplate.parse(fmt[5:] if fmt.startswith("table") else fmt)
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
        click.echo(img.id if no_trunc else img.short_id)
        return
    ctx = []
    for i, (created, by, size, comment) in enumerate(rows):
        ident = (img.id if no_trunc else img.short_id) if i == 0 else "<missing>"
        if not no_trunc and len(by) > 45:
            by = by[:44] + "…"
        ctx.append(gotemplate.Struct({
            "ID": ident, "CreatedSince": _ago(created) if human else created, "CreatedAt": created,
            "CreatedBy": by, "Size": hs(size) if human else str(size), "Comment": comment},
            type_name="*image.historyContext"))
    if not fmt or fmt == "table":
        fmt = "table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}"
    sys.stdout.write(gotemplate.docker_format(fmt, ctx, {
        "ID": "IMAGE", "CreatedSince": "CREATED", "CreatedAt": "CREATED AT", "CreatedBy": "CREATED BY",
        "Size": "SIZE", "Comment": "COMMENT"}))


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
@click.option("--filter", "filters", multiple=True,
              help="Provide filter values (e.g. 'until=<timestamp>', 'label=k=v').")
def image_prune(all_, force, filters):
    """Remove unused images."""
    if not force:
        what = "all images without at least one container associated to them" if all_ else "all dangling images"
        click.confirm(f"WARNING! This will remove {what}.\nAre you sure you want to continue?", abort=True)
    store = _store()
    if filters:
        from minidock.cli.views import parse_time
        from minidock.engine.ops import prune_filter

        keep = prune_filter(list(filters))
        users = store._containers_using()
        removed = []
        for img in store.list():
            if img.id in users or (img.repo_tags and not all_):
                continue
            if not keep(parse_time(img.record.get("Created", "")), _labels(img)):
                continue
            store.remove(img.id, force=True)
            removed.append(img.id)
    else:
        removed = store.prune(all_=all_)
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
    name = _familiar(ref)
    _event("pull", name, name.rsplit(":", 1)[0] if "@" not in name else name.split("@")[0])


@click.command("push", context_settings={"help_option_names": ["--help"]})
@click.argument("ref")
@click.option("-q", "--quiet", is_flag=True, help="Suppress verbose output.")
@click.option("--insecure", is_flag=True, help="Allow plain http or unverified TLS to this registry.")
def push(ref, quiet, insecure):
    """Upload an image to a registry."""
    import sys

    from minidock.image import reference, registry

    registry.push(ref, quiet=quiet, insecure=insecure, out=sys.stdout)
    r = reference.parse(ref)  # Docker: the pushed reference, its repository as the name
    _event("push", r.familiar(), r.familiar_repository)


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
    from minidock.image.store import ImageStore

    store = ImageStore()
    archive.save(list(refs), output, fmt, store)
    for img_id in dict.fromkeys(store.resolve(r).id for r in refs):  # Docker: one "save" per image, by ID
        _event("save", img_id, img_id)


@click.command("load", context_settings={"help_option_names": ["--help"]})
@click.option("-i", "--input", "input_", default="-", help="Read from tar archive file (or OCI layout dir).")
@click.option("-q", "--quiet", is_flag=True, help="Suppress the load output.")
def load(input_, quiet):
    """Load an image from a tar archive or STDIN (Docker archive or OCI layout)."""
    import sys

    from minidock.image import archive
    from minidock.image.store import ImageStore

    if input_ == "-" and sys.stdin.isatty():
        raise click.UsageError("requested load from stdin, but stdin is empty")
    store = ImageStore()
    lines = archive.load(input_, store)
    for line in lines:
        if not quiet:
            click.echo(line)
    ids = (line.split(": ", 1)[1] for line in lines if line.startswith("Loaded image"))
    for img_id in dict.fromkeys(store.resolve(ref).id for ref in ids):  # Docker: one "load" per image, by ID
        _event("load", img_id, img_id)


@click.command("export", context_settings={"help_option_names": ["--help"]})
@click.argument("container")
@click.option("-o", "--output", help="Write to a file, instead of STDOUT.")
def export(container, output):
    """Export a container's filesystem as a tar archive."""
    from minidock.engine import commit as c

    c.export(container, output)


@click.command("commit", context_settings={"help_option_names": ["--help"]})
@click.argument("container")
@click.argument("ref", required=False)
@click.option("-a", "--author", default="", help='Author (e.g., "John Hannibal Smith <hannibal@a-team.com>").')
@click.option("-c", "--change", "changes", multiple=True, help="Apply Dockerfile instruction to the created image.")
@click.option("-m", "--message", default="", help="Commit message.")
@click.option("-p", "--pause", type=bool, default=True, show_default=True,
              help="Pause container during commit.")
def commit(container, ref, author, changes, message, pause):
    """Create a new image from a container's changes."""
    from minidock.engine import commit as c

    img = c.commit(container, ref, changes=list(changes), message=message, author=author, pause=pause)
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
image.add_command(build_cmd, "build")
