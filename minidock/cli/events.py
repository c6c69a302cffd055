"""`minidock events`: the host's event log (minidock.engine.events), Docker's flags and output."""

from __future__ import annotations

import json
import sys
import time

import click

from minidock.engine import events
from minidock.errors import InvalidArgument

FILTER_KEYS = ("config", "container", "daemon", "event", "image", "label", "network", "node",
               "plugin", "scope", "secret", "service", "type", "volume")


def parse_filters(items) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for f in items:
        key, sep, val = f.partition("=")
        if not sep:
            raise InvalidArgument(f"bad format of filter (expected name=value): {f}")
        key = key.strip().lower()
        if key not in FILTER_KEYS:
            raise InvalidArgument(f"Invalid filter '{key}'")
        out.setdefault(key, []).append(val)
    if "container" in out:  # a name or an ID prefix of an existing container: its full ID too
        from minidock.state import containers

        extra = []
        for v in out["container"]:
            try:
                extra.append(containers.resolve(v))
            except Exception:  # noqa: BLE001 - a removed container: match by name/ID as given
                pass
        out["container"] += extra
    return out


def line(msg: dict) -> str:
    """Docker's default output: local time with nanoseconds, type, action, actor, attributes."""
    t = msg.get("timeNano") or msg.get("time", 0) * 1_000_000_000
    secs, nanos = divmod(t, 1_000_000_000)
    lt = time.localtime(secs)
    off = time.strftime("%z", lt)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", lt) + f".{nanos:09d}" + (
        "Z" if off in ("+0000", "-0000") else f"{off[:3]}:{off[3:]}")
    actor = msg.get("Actor") or {}
    text = f"{stamp} {msg.get('Type')} {msg.get('Action')} {actor.get('ID', '')}"
    attrs = actor.get("Attributes") or {}
    if attrs:
        text += " (" + ", ".join(f"{k}={attrs[k]}" for k in sorted(attrs)) + ")"
    return text


def render(msg: dict, fmt: str | None) -> str:
    if not fmt:
        return line(msg)
    f = fmt.strip()
    if f in ("{{json .}}", "json"):
        return json.dumps(msg, separators=(",", ":"))
    from minidock.cli.gotemplate import render as go_render

    return go_render(fmt, msg)


@click.command(context_settings={"help_option_names": ["--help"]})
@click.option("--since", help="Show all events created since timestamp (or duration, e.g. 10m).")
@click.option("--until", help="Stream events until this timestamp (or duration).")
@click.option("-f", "--filter", "filters", multiple=True,
              help="Filter output based on conditions provided (type=, event=, container=, image=, ...).")
@click.option("--format", "fmt", help="Format the output using the given Go template ('{{json .}}').")
def events_(since, until, filters, fmt):
    """Get real time events from minidock (every container, image, network and volume change)."""
    flt = parse_filters(filters)
    now = time.time_ns()
    since_ns = events.parse_time(since, now) if since else None
    until_ns = events.parse_time(until, now) if until else None
    if until_ns is not None and since_ns is None:
        since_ns = 0
    if since_ns is not None and until_ns is not None and since_ns > until_ns:
        raise InvalidArgument("since must be before until")
    out = sys.stdout
    try:
        for msg in events.follow(since_ns, until_ns, flt):
            out.write(render(msg, fmt) + "\n")
            out.flush()
    except KeyboardInterrupt:
        return 0
    return 0
