"""`minidock`'s entry point: the hot commands without Click's start-up, everything else with Click.

Click defines the whole command line (minidock/cli/app.py and the command modules), but importing
it costs ~15 ms (click.core pulls inspect, enum, typing, ...), more than `docker ps` takes in
all. So the commands people run in loops (ps, inspect, logs, stop, start, kill, rm, wait, run,
create, exec) are parsed here from a spec *generated from the Click definitions*
(cli/_fastspec.py, made by cli/fastspec.py; a unit test proves the spec is current and that
the fast parse equals Click's for a corpus of command lines) and go straight to their click-free
bodies in cli/hot.py. Anything the fast parser is not sure of -- `--help`, an unknown or
malformed option, a missing argument, `--explain`, an option value Click would convert
differently -- goes to Click unchanged, so messages and exit codes stay Click's.
"""

from __future__ import annotations

import os
import sys


def main(argv=None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    from minidock.cli import fastparse

    hit = fastparse.parse(args)
    if hit is None:
        from minidock.cli import app

        app.main(args)
        return
    target, params, root = hit
    from minidock.cli.exits import internal_error, leave, report
    from minidock.errors import MinidockError

    try:
        if target != fastparse.VERSION:
            _group(root)
        mod, _, attr = target.partition(":")
        rv = getattr(__import__(mod, fromlist=[attr]), attr)(**params)
    except MinidockError as e:
        report(e)
    except KeyboardInterrupt:
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(0)
    except Exception as e:  # a bug: still one clear line, the traceback on request
        internal_error(e)
    leave(rv)


def _group(root: str | None) -> None:
    """What the `minidock` group does before a command (app.cli): the state root (--root, else
    $MINIDOCK_ROOT), root only, the state root's modes."""
    from minidock.errors import MinidockError

    if root is None:
        root = os.environ.get("MINIDOCK_ROOT")
    if root:
        os.environ["MINIDOCK_ROOT"] = os.path.abspath(root)
    from minidock import paths

    if os.geteuid() != 0:
        raise MinidockError("minidock needs root: run it with sudo",
                            "Containers need namespaces, mounts and cgroups; the state under "
                            f"{paths.root_str()} is root's alone.")
    paths.ensure_private()
