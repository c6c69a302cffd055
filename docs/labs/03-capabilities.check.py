"""Checks for lab 03: a capability dropped, and the kernel refusing what it allowed."""

from minidock.labs.checks import check

CAP_CHOWN = 1 << 0


@check("nochown", "a container named nochown without CAP_CHOWN, whose chown failed",
       hint="step 1: minidock run --name nochown --cap-drop chown busybox chown nobody /tmp")
def nochown(lab):
    c = lab.container("nochown")
    drops = [x.upper().removeprefix("CAP_") for x in c["HostConfig"].get("CapDrop") or []]
    lab.require("CHOWN" in drops, "nochown was not started with --cap-drop chown")
    lab.require(c["State"]["ExitCode"] != 0 and "Operation not permitted" in lab.logs("nochown"),
                "nochown's chown did not fail with 'Operation not permitted'")
