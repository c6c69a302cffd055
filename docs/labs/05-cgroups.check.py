"""Checks for lab 05: memory, CPU and pids limits, each seen enforced."""

from minidock.labs.checks import check


@check("oom", "a container named hog, limited to 32 MiB, ended by the OOM killer",
       hint="step 1: minidock run --name hog -m 32m busybox sh -c 'x=$(head -c 100000000 /dev/zero | tr \"\\0\" a)'")
def oom(lab):
    c = lab.container("hog")
    lab.require(c["HostConfig"]["Memory"] == 32 * 1024 * 1024,
                f"hog's memory limit is {c['HostConfig']['Memory']} bytes, not 32 MiB (-m 32m)")
    lab.require(c["State"]["OOMKilled"] and c["State"]["ExitCode"] == 137,
                f"hog was not OOM-killed (OOMKilled={c['State']['OOMKilled']}, exit {c['State']['ExitCode']}): "
                "it must use more memory than its limit")


@check("cpu", "a container named spin limited to half a CPU, then given a whole one",
       hint="step 3: minidock run -d --name spin --cpus 0.5 ..., then minidock update --cpus 1 spin")
def cpu(lab):
    c = lab.container("spin")
    lab.require(c["State"]["Running"], "spin is not running (keep it until you have checked)")
    lab.require(c["HostConfig"]["NanoCpus"] == 1_000_000_000,
                f"spin's CPU limit is {c['HostConfig']['NanoCpus'] / 1e9:g} CPUs: update it to 1 (--cpus 1)")


@check("pids", "a fork bomb (container bomb) stopped by a limit of 20 processes",
       hint="step 4: minidock run --name bomb --pids-limit 20 busybox sh -c '...sleep 30 &...'")
def pids(lab):
    c = lab.container("bomb")
    lab.require(c["HostConfig"]["PidsLimit"] == 20, "bomb was not started with --pids-limit 20")
    lab.require("can't fork" in lab.logs("bomb"), "bomb never hit the limit: it must keep starting processes")
