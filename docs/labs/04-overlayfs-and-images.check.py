"""Checks for lab 04: the upper dir's new file and whiteout, and a committed layer."""

import os
import stat

from minidock.labs.checks import check


@check("upper", "ov's upper dir holds /newfile and a whiteout for /etc/group",
       hint="step 1: minidock run -d --name ov busybox sh -c 'echo hello > /newfile; rm /etc/group; sleep 600'")
def upper(lab):
    c = lab.container("ov")
    up = c["GraphDriver"]["Data"]["UpperDir"]
    lab.require(os.path.isfile(os.path.join(up, "newfile")), f"no newfile in ov's upper dir {up}")
    st = os.lstat(os.path.join(up, "etc", "group")) if os.path.lexists(os.path.join(up, "etc", "group")) else None
    lab.require(st is not None and stat.S_ISCHR(st.st_mode) and st.st_rdev == 0,
                "no whiteout (a 0:0 character device) for etc/group in ov's upper dir: did ov delete /etc/group?")


@check("commit", "an image lab/ov:1 with the container's changes as its top layer",
       hint="step 3: minidock commit ov lab/ov:1")
def commit(lab):
    import json

    r = lab.md("image", "inspect", "lab/ov:1")
    lab.require(r.returncode == 0, "there is no image lab/ov:1 (minidock commit ov lab/ov:1)")
    img = json.loads(r.stdout)[0]
    n = len(img["RootFS"]["Layers"])
    lab.require(n == 2, f"lab/ov:1 has {n} layers, not busybox's + 1")
