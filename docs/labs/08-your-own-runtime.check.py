"""Checks for lab 08: the student's runtime (files/myruntime.py) builds a container, and its
kernel trace has the engine's essential steps in the engine's order."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from minidock.labs.checks import check

SKELETON = Path(__file__).with_name("exercise") / "myruntime.py"
STEP = re.compile(r"^\[explain +\d+\] (\S+) +(.*)$")
PROBE = "echo pid=$$; hostname; ls /; ls /HOST-MARKER 2>&1 || true"


def prepare(group):
    files = group.root / "files"
    mine = files / "myruntime.py"
    if not mine.exists():
        shutil.copy(SKELETON, mine)
    (files / "HOST-MARKER").write_text("this file is on the host only\n")
    rootfs = files / "rootfs"
    if not (rootfs / "bin").exists():
        rootfs.mkdir(exist_ok=True)
        group.md("rm", "-f", "lab8src")
        group.md("create", "--name", "lab8src", "busybox", "true", check=True)
        exp = subprocess.run([sys.executable, "-m", "minidock", "export", "lab8src"], env=group.env(),
                             capture_output=True, check=True, timeout=120)
        subprocess.run(["tar", "-x", "-C", str(rootfs)], input=exp.stdout, check=True)
        group.md("rm", "lab8src")


def key(op: str, detail: str) -> str | None:
    """The steps that make a container, as both traces name them."""
    if op in ("unshare", "pivot_root", "sethostname"):
        return op
    if op == "mount" and detail.startswith("proc on"):
        return "mount proc"
    if op == "umount" and detail.split()[0] == ".":
        return "umount old root"
    return None


def keys(trace: str) -> list[str]:
    out = []
    for line in trace.splitlines():
        m = STEP.match(line)
        if m and (kk := key(m.group(1), m.group(2))) and kk not in out:
            out.append(kk)
    return out


def _run(lab):
    cached = getattr(lab, "_lab08", None)
    if cached:
        return cached
    files = lab.group.root / "files"
    prog = os.environ.get("MINIDOCK_LAB08_PROGRAM") or str(files / "myruntime.py")
    env = dict(lab.group.env(), EXPLAIN="1", PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    # the probe looks for a file by its host path: after a pivot_root it must not be there
    r = subprocess.run([sys.executable, prog, str(files / "rootfs"), "sh", "-c",
                        PROBE.replace("/HOST-MARKER", str(files / "HOST-MARKER"))],
                       capture_output=True, text=True, env=env, timeout=60)
    engine = lab.md("run", "--rm", "--network", "none", "--explain", "busybox", "true")
    lab._lab08 = (r, keys(engine.stderr))
    return lab._lab08


@check("runs", "your runtime starts the command as PID 1 of a new PID namespace",
       hint="TODO 1 (unshare with CLONE_NEWPID) and the fork that follows it")
def runs(lab):
    r, _ = _run(lab)
    lab.require(r.returncode == 0, f"myruntime.py failed (exit {r.returncode}): "
                f"{(r.stderr.strip().splitlines() or ['no output'])[-1]}")
    lab.require("pid=1" in r.stdout.split(), "the command is not PID 1: unshare(CLONE_NEWPID), then fork")


@check("root", "the command sees the rootfs as / and nothing of the host's root",
       hint="TODOs 2-4: private mounts, the rootfs bound on itself, pivot_root and the old root detached")
def root(lab):
    r, _ = _run(lab)
    lab.require(r.returncode == 0, "myruntime.py does not run yet (see the first check)")
    lab.require("No such file" in r.stdout, "the host's files are still reachable from the container")
    lab.require("linuxrc" in r.stdout.split(), "/ is not the busybox rootfs")


@check("hostname", "the container has its own hostname (mycontainer)", hint="TODO 5: k.sethostname(HOSTNAME)")
def hostname(lab):
    r, _ = _run(lab)
    lab.require(r.returncode == 0, "myruntime.py does not run yet (see the first check)")
    lab.require("mycontainer" in r.stdout.split(), "the hostname is not mycontainer")


@check("trace", "your kernel trace has the engine's steps, in the engine's order",
       hint="compare `EXPLAIN=1 python3 myruntime.py ...` with `minidock run --rm --explain busybox true`")
def trace(lab):
    r, engine = _run(lab)
    mine = keys(r.stderr)
    lab.require(engine, "could not read the engine's trace (minidock run --explain)")
    missing = [s for s in engine if s not in mine]
    lab.require(not missing, f"your trace lacks: {', '.join(missing)} (the engine does: {' -> '.join(engine)})")
    order = [s for s in mine if s in engine]
    lab.require(order == engine, f"your order is {' -> '.join(order)}; the engine's is {' -> '.join(engine)}")
