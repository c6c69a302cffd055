"""How every minidock command ends, with or without Click (cli/main.py, cli/app.py): output
as click.echo writes it, a MinidockError as one line and Docker's exit code, a bug as one line
(the traceback with MINIDOCK_DEBUG=1), and no interpreter teardown."""

from __future__ import annotations

import os
import sys


def echo(text: str = "", err: bool = False) -> None:
    """click.echo for str, without importing Click: one line, flushed; ANSI escapes stripped
    when the stream is not a terminal (as Click does)."""
    f = sys.stderr if err else sys.stdout
    if "\x1b" in text and not f.isatty():
        from click._compat import strip_ansi

        text = strip_ansi(text)
    f.write(text + "\n")
    f.flush()


def report(e) -> None:
    """A MinidockError as one line (and its hint), then Docker's exit code."""
    echo(f"minidock: Error: {e.message}", err=True)
    if e.hint:
        echo(e.hint, err=True)
    sys.exit(e.exit_code)


def internal_error(e: Exception) -> None:
    if os.environ.get("MINIDOCK_DEBUG"):
        raise e
    echo(f"minidock: Error: internal error: {type(e).__name__}: {e}", err=True)
    echo("This is a bug in minidock. Run again with MINIDOCK_DEBUG=1 for the traceback.", err=True)
    sys.exit(125)


def leave(rv) -> None:
    _exit(rv if isinstance(rv, int) else 0)


def _exit(code: int) -> None:
    """Flush and leave without the interpreter's teardown (~10 ms of freeing modules and objects,
    paid by every `run`): every file we write is closed by a `with` block before we get here."""
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (BrokenPipeError, ValueError):
        pass
    os._exit(code)
