"""`minidock build` (also `image build`) and `minidock builder prune`.

Only click and the builder are imported here; the builder imports the engine, the runtime and
the registry client only when a step needs them, so a fully cached rebuild pays for none.
"""

from __future__ import annotations

import os
import sys

import click

from minidock.cli import explain_opt
from minidock.errors import InvalidArgument, MinidockError


def _kv(items, what: str) -> dict[str, str]:
    out = {}
    for item in items:
        k, sep, v = item.partition("=")
        if not k:
            raise InvalidArgument(f"invalid {what}: {item!r}")
        if not sep and what == "build-arg":
            if k not in os.environ:
                continue  # Docker: --build-arg NAME takes the value from the environment, if set
            v = os.environ[k]
        out[k] = v
    return out


@click.command(context_settings={"help_option_names": ["--help"]})
@click.option("-t", "--tag", "tags", multiple=True, metavar="NAME[:TAG]", help="Name and optionally a tag.")
@click.option("-f", "--file", "file_", metavar="PATH",
              help="Name of the Dockerfile (default: PATH/Dockerfile; - for stdin).")
@click.option("--build-arg", "build_args", multiple=True, metavar="K=V", help="Set build-time variables.")
@click.option("--target", metavar="STAGE", help="Set the target build stage to build.")
@click.option("--no-cache", is_flag=True, help="Do not use cache when building the image.")
@click.option("--pull", is_flag=True, help="Always attempt to pull a newer version of the base images.")
@click.option("-q", "--quiet", is_flag=True, help="Suppress the build output and print image ID on success.")
@click.option("--iidfile", metavar="FILE", help="Write the image ID to the file.")
@click.option("--label", "labels", multiple=True, metavar="K=V", help="Set metadata for an image.")
@click.option("--network", type=click.Choice(["default", "bridge", "none", "host"]),
              help="Networking mode for the RUN instructions during build (default: bridge).")
@click.option("--progress", type=click.Choice(["auto", "plain", "tty", "quiet"]), default="auto",
              help="Type of progress output (auto, plain, quiet).")
@explain_opt.options("Print every kernel step of each RUN (namespaces, mounts, pivot_root, cgroups), "
                     "like run --explain.")
@click.argument("context", metavar="PATH | -")
def build(tags, file_, build_args, target, no_cache, pull, quiet, iidfile, labels, network, progress, explain,
          explain_format, context):
    """Build an image from a Dockerfile."""
    from minidock.build.builder import Options
    from minidock.build.builder import build as do_build
    from minidock.image import reference

    for t in tags:
        r = reference.parse(t)
        if r.digest:
            raise InvalidArgument(f"invalid reference format: {t!r} (a tag cannot carry a digest)")
    if explain:
        from minidock import kernel

        kernel.explain_to(2, explain_format)
    opts = Options(context=context, file=file_, tags=list(tags), build_args=_kv(build_args, "build-arg"),
                   target=target, no_cache=no_cache, pull=pull, quiet=quiet or progress == "quiet", iidfile=iidfile,
                   labels=_kv(labels, "label"), network=None if network in (None, "default") else network,
                   progress="plain" if progress == "tty" else progress)
    try:
        image_id = do_build(opts)
    except MinidockError as e:
        e.exit_code = 1  # docker build exits 1 whatever failed
        raise
    if iidfile:
        with open(iidfile, "w") as f:
            f.write(image_id)
    if opts.quiet:
        click.echo(image_id)
    return 0


@click.group(context_settings={"help_option_names": ["--help"]})
def builder():
    """Manage the build cache."""


@builder.command("prune")
@click.option("-a", "--all", "all_", is_flag=True, help="Remove all build cache (minidock keeps no other kind).")
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation.")
def builder_prune(all_, force):
    """Remove the build cache (step results and RUN --mount=type=cache directories)."""
    from minidock.build.cache import Cache
    from minidock.util import human_size

    if not force and sys.stdin.isatty():
        click.confirm("WARNING! This will remove all dangling build cache. Are you sure you want to continue?",
                      abort=True)
    before = Cache().prune()
    click.echo(f"Total:\t{human_size(before['reclaimable'])}")


builder.add_command(build, "build")
