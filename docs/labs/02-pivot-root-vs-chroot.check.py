"""Checks for lab 02: the escape attempted in the three modes, with the right results."""

import shutil
import subprocess
from pathlib import Path

from minidock.errors import MinidockError
from minidock.labs.checks import check

SOURCE = Path(__file__).with_name("escape") / "chroot-escape.c"


def prepare(group):
    """Build the escape program (static: the busybox image has no libc) into the sandbox."""
    out = group.root / "files" / "chroot-escape"
    if out.exists() and out.stat().st_mtime >= SOURCE.stat().st_mtime:
        return
    cc = shutil.which("cc") or shutil.which("gcc")
    if not cc:
        raise MinidockError("lab 02 needs a C compiler to build its escape program",
                            "Install one (apt-get install gcc libc6-dev), then run `minidock lab start 2` again.")
    r = subprocess.run([cc, "-static", "-O2", "-o", str(out), str(SOURCE)], capture_output=True, text=True)
    if r.returncode != 0:
        raise MinidockError(f"building {SOURCE.name} failed: {r.stderr.strip()}",
                            "A static build needs libc6-dev (apt-get install libc6-dev).")


def _ran(lab, name, switch, privileged=False):
    c = lab.container(name)
    lab.require(c["HostConfig"].get("RootfsSwitch", "pivot_root") == switch,
                f"{name} was not started with the {switch} mode "
                f"({'--chroot' if switch == 'chroot' else '--no-pivot' if switch == 'move+chroot' else 'no flag'})")
    lab.require(bool(c["HostConfig"].get("Privileged")) == privileged,
                f"{name} should {'' if privileged else 'not '}be --privileged")
    lab.require(not c["State"].get("Running"), f"{name} is still running: wait for it to finish")
    return c, lab.logs(name)


@check("chroot", "the escape works from a --chroot container (esc-chroot)",
       hint="step 2: minidock run --name esc-chroot --chroot -v $ESC:/escape:ro busybox /escape ...")
def chroot(lab):
    c, logs = _ran(lab, "esc-chroot", "chroot")
    lab.require("left the container's root" in logs and c["State"]["ExitCode"] == 0,
                "esc-chroot did not get out: did it run /escape (with the default capabilities)?")


@check("move", "the same escape fails with --no-pivot (esc-move)",
       hint="step 3: minidock run --name esc-move --no-pivot -v $ESC:/escape:ro busybox /escape ...")
def move(lab):
    c, logs = _ran(lab, "esc-move", "move+chroot")
    lab.require(c["State"]["ExitCode"] == 2 and "no escape" in logs,
                "esc-move did not run the escape to its end (exit 2, 'no escape' expected)")


@check("move-privileged", "a privileged --no-pivot container still reaches the host (esc-move-priv)",
       hint="step 3: ... --privileged --no-pivot ... sh -c 'cp /escape /esc; /esc --umount /bin/cat /etc/os-release'")
def move_privileged(lab):
    c, logs = _ran(lab, "esc-move-priv", "move+chroot", privileged=True)
    lab.require(c["State"]["ExitCode"] == 0 and "left the container's root" in logs,
                "esc-move-priv did not get out: it needs --privileged and /esc --umount")


@check("pivot", "with pivot_root nothing is left to reach (esc-pivot)",
       hint="step 4: minidock run --name esc-pivot -v $ESC:/escape:ro busybox /escape /bin/cat /etc/os-release")
def pivot(lab):
    c, logs = _ran(lab, "esc-pivot", "pivot_root")
    lab.require(c["State"]["ExitCode"] == 2 and "no escape" in logs,
                "esc-pivot did not run the escape to its end (exit 2, 'no escape' expected)")
