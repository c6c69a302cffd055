"""Resource flags for run/create, and the `update` and `stats` commands."""

from __future__ import annotations

import json
import os
import sys
import time

import click

from minidock.engine import lifecycle
from minidock.errors import Conflict, MinidockError
from minidock.state import containers

RESOURCE_FLAGS = ("memory", "memory_swap", "memory_reservation", "cpus", "cpu_shares", "cpu_period",
                  "cpu_quota", "cpuset_cpus", "cpuset_mems", "pids_limit", "blkio_weight")


def resource_options(f):
    """Docker's resource flags (run, create, update)."""
    opts = [
        click.option("-m", "--memory", help="Memory limit (e.g. 64m, 1g)."),
        click.option("--memory-swap", help="Swap limit equal to memory plus swap: -1 to enable unlimited swap."),
        click.option("--memory-reservation", help="Memory soft limit."),
        click.option("--cpus", help="Number of CPUs (e.g. 0.5)."),
        click.option("-c", "--cpu-shares", type=int, help="CPU shares (relative weight)."),
        click.option("--cpu-period", type=int, help="Limit CPU CFS (Completely Fair Scheduler) period."),
        click.option("--cpu-quota", type=int, help="Limit CPU CFS (Completely Fair Scheduler) quota."),
        click.option("--cpuset-cpus", help="CPUs in which to allow execution (0-3, 0,1)."),
        click.option("--cpuset-mems", help="MEMs in which to allow execution (0-3, 0,1)."),
        click.option("--pids-limit", type=int, help="Tune container pids limit (-1 for unlimited)."),
        click.option("--blkio-weight", type=int, help="Block IO (relative weight), between 10 and 1000, or 0."),
    ]
    for o in reversed(opts):
        f = o(f)
    return f


def _runtime(rec: dict):
    """The runtime's Container of a created/running container: update() and stats() its cgroup."""
    from minidock.runtime import load

    return load(rec["Id"])


@click.command(context_settings={"help_option_names": ["--help"]})
@resource_options
@click.option("--restart", help="Restart policy to apply when a container exits.")
@click.argument("refs", nargs=-1, required=True)
def update(refs, restart, **flags):
    """Update configuration of one or more containers."""
    from minidock.engine.resources import parse_flags, to_oci, warnings

    given = {k: v for k, v in flags.items() if v is not None}
    if not given and restart is None:
        raise click.UsageError("you must provide one or more flags when using this command")
    failed = False
    for ref in refs:
        try:
            cid = containers.resolve(ref)
            lifecycle.refresh(cid)
            if restart is not None:
                lifecycle.update_restart_policy(cid, restart)
            if not given:
                click.echo(ref)
                continue
            with containers.lock(cid):
                rec = containers.full(cid)
                hc = parse_flags(**given, current=rec["HostConfig"])
                for w in warnings(hc):
                    click.echo(f"WARNING: {w}", err=True)
                if rec["State"].get("Running"):
                    _runtime(rec).update(to_oci(hc))
                saved = containers.load(cid)
                saved["HostConfig"].update(hc)
                merged = {k: saved["HostConfig"].get(k) for k in (
                    "Memory", "MemorySwap", "MemoryReservation", "NanoCpus", "CpuShares", "CpuPeriod",
                    "CpuQuota", "CpusetCpus", "CpusetMems", "PidsLimit", "BlkioWeight") if k in saved["HostConfig"]}
                saved["HostConfig"]["Resources"] = to_oci(merged)
                containers.save(saved)
            click.echo(ref)
        except MinidockError as e:
            failed = True
            click.echo(f"minidock: Error: {e.message}", err=True)
    if failed:
        sys.exit(1)


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.4g}{unit}" if unit != "B" else f"{int(n)}B"
        n /= 1024
    return f"{n}B"


def _human_si(n: float) -> str:
    from minidock.util import human_size

    return human_size(n)


def _net(pid: int) -> tuple[int, int]:
    """Bytes received/sent on the container's interfaces (its netns, seen via its /proc)."""
    rx = tx = 0
    try:
        with open(f"/proc/{pid}/net/dev") as f:
            for line in f.readlines()[2:]:
                name, _, data = line.partition(":")
                if name.strip() == "lo":
                    continue
                v = data.split()
                rx, tx = rx + int(v[0]), tx + int(v[8])
    except OSError:
        pass
    return rx, tx


def sample(rec: dict) -> dict:
    st = _runtime(rec).stats()
    st["net_rx"], st["net_tx"] = _net(rec["State"]["Pid"])
    st["t"] = time.monotonic()
    return st


def row(rec: dict, a: dict, b: dict) -> dict:
    dt = max(b["t"] - a["t"], 1e-6)
    cpu = (b["cpu_usage_ns"] - a["cpu_usage_ns"]) / (dt * 1e9) * 100
    limit = b["memory_limit"]
    if not limit or limit >= 1 << 62:
        try:
            limit = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (ValueError, OSError):
            limit = 0
    usage = max(b["memory_usage"] - b.get("memory_cache", 0), 0)
    return {
        "ID": rec["Id"][:12], "Container": rec["Id"][:12], "Name": containers.name_of(rec),
        "CPUPerc": f"{cpu:.2f}%", "MemUsage": f"{_human(usage)} / {_human(limit)}",
        "MemPerc": f"{(usage / limit * 100) if limit else 0:.2f}%",
        "NetIO": f"{_human_si(b['net_rx'])} / {_human_si(b['net_tx'])}",
        "BlockIO": f"{_human_si(b['blkio_read'])} / {_human_si(b['blkio_write'])}",
        "PIDs": str(b["pids_current"]),
        # raw numbers, for scripts and tests
        "cpu_percent": cpu, "memory_usage": usage, "memory_limit": limit, "pids": b["pids_current"],
    }


COLUMNS = (("ID", "CONTAINER ID"), ("Name", "NAME"), ("CPUPerc", "CPU %"), ("MemUsage", "MEM USAGE / LIMIT"),
           ("MemPerc", "MEM %"), ("NetIO", "NET I/O"), ("BlockIO", "BLOCK I/O"), ("PIDs", "PIDS"))


STATS_HEADERS = {"Container": "CONTAINER", "ID": "CONTAINER ID", "Name": "NAME", "CPUPerc": "CPU %",
                 "MemUsage": "MEM USAGE / LIMIT", "MemPerc": "MEM %", "NetIO": "NET I/O", "BlockIO": "BLOCK I/O",
                 "PIDs": "PIDS"}


def _render(rows: list[dict], fmt: str | None) -> str:
    from minidock.cli.gotemplate import Struct, docker_format

    if fmt == "json":  # Docker's fields, plus the raw numbers scripts and tests use
        return "".join(json.dumps(r) + "\n" for r in rows)
    if fmt:
        return docker_format(fmt, [Struct(r, type_name="*formatter.statsContext") for r in rows], STATS_HEADERS)
    widths = {k: max([len(h)] + [len(r[k]) for r in rows]) for k, h in COLUMNS}
    lines = ["   ".join(h.ljust(widths[k]) for k, h in COLUMNS).rstrip()]
    lines += ["   ".join(r[k].ljust(widths[k]) for k, _ in COLUMNS).rstrip() for r in rows]
    return "\n".join(lines) + "\n"


@click.command(context_settings={"help_option_names": ["--help"]})
@click.option("-a", "--all", "all_", is_flag=True, help="Show all containers (default shows just running).")
@click.option("--no-stream", is_flag=True, help="Disable streaming stats and only pull the first result.")
@click.option("--format", "fmt", help="Format output: 'json' or a template {{.Name}} {{.CPUPerc}} ...")
@click.argument("refs", nargs=-1)
def stats(all_, no_stream, fmt, refs):
    """Display a live stream of container(s) resource usage statistics."""
    if refs:
        ids = [containers.resolve(r) for r in refs]
    else:
        ids = [c for c in containers.all_ids() if all_ or lifecycle.refresh(c)["State"].get("Running")]
    prev: dict[str, dict] = {}
    interactive = not no_stream and sys.stdout.isatty()
    while True:
        rows = []
        recs = {}
        for cid in ids:
            rec = lifecycle.refresh(cid)
            if not rec["State"].get("Running"):
                if refs and not all_:
                    raise Conflict(f"container {containers.name_of(rec)} is not running")
                continue
            recs[cid] = rec
            if cid not in prev:
                prev[cid] = sample(rec)
        if len(prev) and all(prev[c]["t"] > time.monotonic() - 0.05 for c in recs):
            time.sleep(0.5)  # CPU % needs two samples
        for cid, rec in recs.items():
            try:
                cur = sample(rec)
            except OSError:
                continue
            rows.append(row(rec, prev[cid], cur))
            prev[cid] = cur
        out = _render(rows, fmt)
        if interactive:
            sys.stdout.write("\x1b[2J\x1b[H" + out)
        else:
            sys.stdout.write(out)
        sys.stdout.flush()
        if no_stream:
            return
        time.sleep(1)
