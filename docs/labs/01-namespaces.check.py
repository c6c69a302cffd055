"""Checks for lab 01: a long-running container whose namespaces are not the host's."""

import os

from minidock.labs.checks import check


@check("ns1", "a container named ns1 running in namespaces of its own",
       hint="step 4: minidock run -d --name ns1 busybox sleep 600")
def ns1(lab):
    c = lab.container("ns1")
    lab.require(c["State"]["Running"], "ns1 is not running: `minidock run -d --name ns1 busybox sleep 600`")
    pid = c["State"]["Pid"]
    for ns in ("pid", "mnt", "uts", "ipc"):
        mine, host = os.readlink(f"/proc/{pid}/ns/{ns}"), os.readlink(f"/proc/self/ns/{ns}")
        lab.require(mine != host, f"ns1 shares the host's {ns} namespace ({mine})")
