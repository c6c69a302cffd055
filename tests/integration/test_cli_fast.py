"""The fast front (cli/main.py) and Click (cli/app.py) print the same bytes and exit the same way.

Each command line runs twice on the same containers: as users run it (`python -m minidock`,
which takes the fast path for the hot commands) and through Click alone (cli/app.py's main).
Only the human durations ("Up 2 seconds") and the column padding they change are normalised,
in case a second passes between the two runs. tests/unit/cli/test_fastparse.py proves the
parse; this proves the commands' output.
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

pytestmark = pytest.mark.root

CLICK_ONLY = "import sys; from minidock.cli import app; app.main(sys.argv[1:])"
_DURATION = re.compile(r"Less than a second|About an? \w+|\d+ (second|minute|hour)s?")


def _norm(text: str) -> str:
    """Durations out, and the column padding they change."""
    return re.sub(r" {2,}", "  ", _DURATION.sub("D", text))


def _both(md_env, args):
    out = []
    for how in (["-m", "minidock"], ["-c", CLICK_ONLY]):
        r = subprocess.run([sys.executable, *how, *args], capture_output=True, text=True, env=md_env, timeout=60)
        out.append((r.returncode, _norm(r.stdout), _norm(r.stderr)))
    return out


def test_read_commands_print_what_click_prints(md, md_env, busybox, detached):
    name, _ = detached(busybox, "sh", "-c", "echo out; echo err >&2; sleep 300")
    other, _ = detached(busybox, "sleep", "300")
    md("create", "--name", f"{name}-c", "-l", "tier=web", busybox, "true")
    try:
        lines = [
            ["ps"], ["ps", "-a"], ["ps", "-aq"], ["ps", "--no-trunc"], ["ps", "-n", "2"], ["ps", "-s"],
            ["ps", "--format", "json"], ["ps", "-a", "--format", "{{.Names}} {{.Status}} {{.Label \"tier\"}}"],
            ["ps", "--format", "table {{.ID}}\t{{.Command}}\t{{.CreatedAt}}"], ["ps", "-f", f"name={name}"],
            ["ps", "--filter", "status=bogus"], ["ps", "--filter", "bogus=1"], ["ps", "--format", "{{"],
            ["ps", "--format", "{{.Nope}}"], ["ps", "-n", "x"],
            ["inspect", name], ["inspect", name, other], ["inspect", "-f", "{{.State.Running}} {{.Name}}", name],
            ["inspect", "-f", "{{json .Config.Labels}}", f"{name}-c"], ["inspect", "nosuch"],
            ["inspect", name, "nosuch"],
            ["inspect", "--type", "image", name], ["inspect", "-s", name],
            ["logs", name], ["logs", "-n", "1", name], ["logs", "--tail", "x", name], ["logs", "nosuch"],
            ["stop", "nosuch"], ["rm", "nosuch"], ["kill", "-s", "BOGUS", name], ["start", "nosuch"],
            ["wait", "--condition", "bogus", name], ["exec", "nosuch", "true"], ["exec", name, "echo", "hi"],
            ["run", "--pull", "sometimes", busybox],
            ["run", "--rm", "--network", "none", busybox, "sh", "-c", "exit 3"],
            ["run", "--rm", "--network", "none", "-e", "A=1", busybox, "sh", "-c", "echo $A"],
            ["create", "--name", name, busybox], ["run", "-d", "-a", "stdout", busybox],
        ]
        for args in lines:
            fast, click = _both(md_env, args)
            assert fast == click, args
            if args[0] == "ps" and len(args) == 1:
                assert name in fast[1] and other in fast[1]
    finally:
        md("rm", "-f", f"{name}-c")
