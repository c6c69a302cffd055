"""Labs that check themselves: sheets that run, per-group sandboxes, and `lab check`.

* sheet.py   — docs/labs/*.md console blocks as scripts with expected output (tolerant matching)
* sandbox.py — a group's own state root, cgroup parent, bridge and subnet; start and reset
* checks.py  — each lab's checks (docs/labs/NN-*.check.py): pass/fail with a hint

This package sits above the engine: it drives minidock the way a student does (the CLI, in the
group's environment) and reads the results through `inspect`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def shim_dir(group) -> Path:
    """A bin/ with `minidock` and `minidock-runtime` that run THIS code (first on a sheet's PATH)."""
    d = group.root / "bin"
    d.mkdir(parents=True, exist_ok=True)
    pkg_parent = Path(__file__).resolve().parents[2]
    runners = {
        "minidock": "-m minidock",
        "minidock-runtime": "-c 'import sys; from minidock.cli.runtime_cli import main; sys.argv[0] = "
                            "\"minidock-runtime\"; main()'",
    }
    for name, how in runners.items():
        p = d / name
        p.write_text(f'#!/bin/sh\nPYTHONPATH="{pkg_parent}${{PYTHONPATH:+:$PYTHONPATH}}" '
                     f'exec "{sys.executable}" {how} "$@"\n')
        os.chmod(p, 0o755)
    return d


def verify(lab, group, *, update: bool = False, wrap: list[str] | None = None, timeout: float = 900):
    """Run a lab's sheet in a fresh sandbox of `group`; returns (results, report text, updated)."""
    from minidock.labs import checks
    from minidock.labs import sheet as sh
    from minidock.runtime.cgroups import cgroup_version

    s = sh.parse(str(lab.sheet))
    group.reset()
    group.start()
    try:
        checks.prepare(lab, group)
        env = group.env()
        env["PATH"] = f"{shim_dir(group)}:{env.get('PATH', '/usr/sbin:/usr/bin:/sbin:/bin')}"
        work = group.root / "work"
        work.mkdir(exist_ok=True)
        results = sh.run(s, env, cgroup_version=f"v{cgroup_version()}", wrap=wrap, cwd=str(work),
                         timeout=timeout)
    finally:
        group.reset()
    updated = sh.update(s, results) if update else 0
    return results, sh.report(results, s), updated
