"""`minidock`: the top-level command group (Click), the definition of the whole command line.

`minidock.cli.main` is the entry point: the hot commands are parsed there from a spec generated
from these definitions (cli/fastspec.py) without importing Click; everything else, and every
command line the fast parser is not sure of, comes here. Subcommands are loaded lazily (only
the module of the command being run is imported), so that `minidock run --network none ...` does not
pay for the image registry client, yaml or the build package. To add a command, add one line to
COMMANDS: "name": "module:attribute" (and, for a hot one, to fastspec.HOT).
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys

import click

from minidock import paths
from minidock.errors import MinidockError

COMMANDS: dict[str, str] = {
    # containers (engine)
    "run": "minidock.cli.containers:run",
    "create": "minidock.cli.containers:create",
    "start": "minidock.cli.containers:start",
    "stop": "minidock.cli.containers:stop",
    "restart": "minidock.cli.containers:restart",
    "kill": "minidock.cli.containers:kill",
    "rm": "minidock.cli.containers:rm",
    "ps": "minidock.cli.containers:ps",
    "logs": "minidock.cli.containers:logs",
    "exec": "minidock.cli.containers:exec_",
    "wait": "minidock.cli.containers:wait",
    "inspect": "minidock.cli.containers:inspect",
    "top": "minidock.cli.containers:top",
    "rename": "minidock.cli.containers:rename",
    "pause": "minidock.cli.containers:pause",
    "unpause": "minidock.cli.containers:unpause",
    "diff": "minidock.cli.containers:diff",
    "attach": "minidock.cli.containers:attach_",
    "container": "minidock.cli.containers:container",
    # resources (cgroups)
    "update": "minidock.cli.resources:update",
    "stats": "minidock.cli.resources:stats",
    # images
    "images": "minidock.cli.images:images",
    "image": "minidock.cli.images:image",
    "import": "minidock.cli.images:import_",
    "rmi": "minidock.cli.images:rmi",
    "pull": "minidock.cli.images:pull",
    "push": "minidock.cli.images:push",
    "tag": "minidock.cli.images:tag",
    "history": "minidock.cli.images:history",
    "save": "minidock.cli.images:save",
    "load": "minidock.cli.images:load",
    "export": "minidock.cli.images:export",
    "commit": "minidock.cli.images:commit",
    "login": "minidock.cli.images:login",
    "logout": "minidock.cli.images:logout",
    # build
    "build": "minidock.cli.build:build",
    "builder": "minidock.cli.build:builder",
    # networks and volumes
    "network": "minidock.cli.network:network",
    "port": "minidock.cli.network:port",
    "volume": "minidock.cli.volumes:volume",
    "cp": "minidock.cli.volumes:cp",
    # orchestration (Kubernetes YAML): minidock/apps
    "apply": "minidock.cli.apps:apply",
    "autoscale": "minidock.cli.apps:autoscale",
    "delete": "minidock.cli.apps:delete",
    "describe": "minidock.cli.apps:describe",
    "get": "minidock.cli.apps:get",
    "kube": "minidock.cli.apps:kube",
    "rollout": "minidock.cli.apps:rollout",
    "scale": "minidock.cli.apps:scale",
    "set": "minidock.cli.apps:set_",
    # system
    "info": "minidock.cli.system:info",
    "doctor": "minidock.cli.system:doctor",
    "events": "minidock.cli.events:events_",
    "system": "minidock.cli.system:system",
    "version": "minidock.cli.system:version",
    # teaching
    "lab": "minidock.cli.lab:lab",
    "diagram": "minidock.cli.lab:diagram",
    "replay": "minidock.cli.lab:replay",
}


NO_ROOT_NEEDED = {"version", "doctor", None}


class LazyGroup(click.Group):
    def list_commands(self, ctx):
        return sorted(c for c in COMMANDS if _available(c))

    def get_command(self, ctx, name):
        target = COMMANDS.get(name)
        if target is None:
            return None
        mod, _, attr = target.partition(":")
        try:
            module = importlib.import_module(mod)
        except ModuleNotFoundError as e:
            if e.name == mod:
                return None  # not written yet
            raise
        return getattr(module, attr, None)


def _available(name: str) -> bool:
    mod = COMMANDS[name].partition(":")[0]
    return importlib.util.find_spec(mod) is not None


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--root", envvar="MINIDOCK_ROOT", metavar="DIR",
              help="State directory (default /var/lib/minidock).")
@click.version_option(package_name="minidock", prog_name="minidock")
def cli(root):
    """A daemonless container engine: Docker's verbs, the kernel's features, nothing hidden."""
    if root:
        os.environ["MINIDOCK_ROOT"] = os.path.abspath(root)
    ctx = click.get_current_context()
    if ctx.invoked_subcommand in NO_ROOT_NEEDED or ctx.resilient_parsing or \
            any(a in ("-h", "--help") for a in sys.argv[1:]):
        return
    if os.geteuid() != 0:
        raise MinidockError("minidock needs root: run it with sudo",
                            "Containers need namespaces, mounts and cgroups; the state under "
                            f"{paths.root()} is root's alone.")
    paths.ensure_private()


def _explain_format(args: list[str]) -> list[str]:
    """`--explain=json` on a subcommand (see cli/explain_opt.py): only when it is there."""
    i = 0
    while i < len(args) and args[i].startswith("-"):
        i += 2 if args[i] == "--root" else 1
    cmd = cli.get_command(None, args[i]) if i < len(args) else None
    if cmd is None:
        return args
    from minidock.cli import explain_opt

    return args[:i + 1] + explain_opt.rewrite(cmd, args[i + 1:])


def main(args: list[str]) -> None:
    """The whole Click command line (minidock.cli.main decided it is needed): minidock errors as
    one clear line and Docker's exit codes, Click's usage errors as Click prints them."""
    from minidock.cli import exits as front

    try:
        if any(a.startswith("--explain=") for a in args):
            args = _explain_format(args)
        rv = cli.main(args=args, prog_name="minidock", standalone_mode=False)
    except MinidockError as e:
        front.report(e)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as e:
        e.show()
        click.echo("See 'minidock --help'.", err=True)
        sys.exit(125)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(0)
    except Exception as e:  # a bug: still one clear line, the traceback on request
        front.internal_error(e)
    front.leave(rv)
