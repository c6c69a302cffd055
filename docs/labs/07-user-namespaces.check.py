"""Checks for lab 07: a runtime container in a user namespace mapped to host uid 100000."""

import json
import subprocess
import sys

from minidock.labs.checks import check

RUNTIME = [sys.executable, "-c", "import sys; from minidock.cli.runtime_cli import main; "
           "sys.argv[0] = 'minidock-runtime'; main()"]


@check("userns", "your container runs as root inside and as uid 100000 on the host",
       hint="steps 1-2: usens sh -c '...sleep 600'; minidock-runtime run -d lab7-$MINIDOCK_LAB_GROUP")
def userns(lab):
    cid = f"lab7-{lab.group.name}"
    r = subprocess.run([*RUNTIME, "state", cid], capture_output=True, text=True, env=lab.group.env())
    lab.require(r.returncode == 0, f"minidock-runtime has no container {cid}: `minidock-runtime run -d $CID`")
    st = json.loads(r.stdout)
    lab.require(st["status"] == "running", f"{cid} is {st['status']}, not running (its command must keep it alive)")
    pid = st["pid"]
    uid_map = open(f"/proc/{pid}/uid_map").read().split()
    lab.require(uid_map[:3] == ["0", "100000", "65536"],
                f"{cid}'s uid map is {' '.join(uid_map)}, not '0 100000 65536' (uidMappings in config.json)")
    status = open(f"/proc/{pid}/status").read()
    uid = next(line.split()[1] for line in status.splitlines() if line.startswith("Uid:"))
    lab.require(uid == "100000", f"{cid}'s process runs as host uid {uid}, not 100000")
