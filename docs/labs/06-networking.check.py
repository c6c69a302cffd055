"""Checks for lab 06: a published port that answers, and a name that resolves on a user network."""

import urllib.request

from minidock.labs.checks import check


@check("web", "a container named web answers on the group's port (LAB_PORT) through the published port",
       hint="step 3: minidock run -d --name web -p $LAB_PORT:80 busybox sh -c '... httpd -f -p 80 -h /www'")
def web(lab):
    port = lab.group.port()
    c = lab.container("web")
    lab.require(c["State"]["Running"], "web is not running")
    bound = (c["HostConfig"].get("PortBindings") or {}).get("80/tcp") or []
    lab.require(any(str(b.get("HostPort")) == str(port) for b in bound),
                f"web does not publish port 80 on the group's port {port} (-p $LAB_PORT:80)")
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as r:
            body = r.read().decode(errors="replace")
    except OSError as e:
        lab.require(False, f"nothing answers on 127.0.0.1:{port}: {e}")
    lab.require(body.strip() == "hi", f"web answered {body.strip()!r}, not 'hi'")


@check("names", "a container named db on network labnet, reachable by its name",
       hint="step 4: minidock network create labnet; minidock run -d --name db --network labnet busybox sleep 600")
def names(lab):
    lab.network("labnet")
    c = lab.container("db")
    lab.require(c["State"]["Running"], "db is not running")
    lab.require("labnet" in c["NetworkSettings"]["Networks"], "db is not on labnet (--network labnet)")
    r = lab.md("run", "--rm", "--network", "labnet", "busybox", "ping", "-c1", "-W2", "db", timeout=60)
    lab.require(r.returncode == 0, f"a container on labnet cannot reach db by name: {(r.stdout + r.stderr).strip()}")
