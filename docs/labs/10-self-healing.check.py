"""Checks for lab 10: a restart policy at work, and a health check that heals a container."""

from minidock.labs.checks import check


@check("restart", "web crashed and was restarted 3 times by --restart on-failure:3",
       hint="step 1: minidock run -d --name web --restart on-failure:3 busybox sh -c '...; exit 7'")
def restart(lab):
    c = lab.container("web")
    pol = c["HostConfig"].get("RestartPolicy") or {}
    lab.require(pol == {"Name": "on-failure", "MaximumRetryCount": 3},
                f"web's restart policy is {pol.get('Name', 'no')}:{pol.get('MaximumRetryCount', 0)}, "
                "not on-failure:3")
    lab.require(c["State"]["Status"] == "exited" and c["State"]["ExitCode"] != 0,
                f"web is {c['State']['Status']} (exit {c['State']['ExitCode']}): it must crash (exit non-zero) "
                "until the policy gives up")
    lab.require(c["RestartCount"] == 3, f"web was restarted {c['RestartCount']} times, not 3")


@check("heal", "api turned unhealthy, was killed by its health check and restarted by its policy",
       hint="step 2: minidock run -d --name api --restart always --health-cmd 'test -f /tmp/ready' "
            "... --health-on-failure kill ..., then minidock exec api rm /tmp/ready")
def heal(lab):
    c = lab.container("api")
    lab.require((c["Config"].get("Healthcheck") or {}).get("Test", ["NONE"])[0] != "NONE",
                "api has no health check (--health-cmd)")
    lab.require(c["Config"].get("HealthcheckOnFailureAction") == "kill",
                "api was not started with --health-on-failure kill")
    lab.require((c["HostConfig"].get("RestartPolicy") or {}).get("Name") == "always",
                "api was not started with --restart always")
    lab.require(c["RestartCount"] >= 1, "api was never restarted: make its health check fail "
                                         "(minidock exec api rm /tmp/ready)")
    r = lab.md("events", "--since", "1h", "--until", "0s", "--filter", "container=api",
               "--filter", "event=health_status", "--format", "{{.Action}}")
    lab.require("health_status: unhealthy" in r.stdout.split("\n"),
                "api never turned unhealthy (see `minidock events --filter container=api`)")
