"""The hot commands' bodies, without Click: ps, inspect, logs, stop, start, kill, rm, wait, run,
create, exec.

Their Click definitions (flags, help) are in cli/containers.py, whose callbacks call these
functions with the same keywords; cli/main.py calls them directly when its fast parser, driven
by a spec generated from those definitions, has parsed the command line. So nothing here may
import Click, and what a command does not use is imported where it is used (`ps` reads records,
checks each monitor with one read of /proc/PID/stat and prints; it never imports the runtime).
"""

from __future__ import annotations

import os
import sys

from minidock.cli.exits import echo
from minidock.errors import InvalidArgument, MinidockError, NotFound
from minidock.state import containers


def version():
    """`minidock --version`, as Click's version option prints it (the package's version:
    util.VERSION, which tests/unit/test_version.py keeps equal to it)."""
    from minidock.util import VERSION

    echo(f"minidock, version {VERSION}")


# --- run, create --------------------------------------------------------------------------------
def _resources(kw: dict) -> tuple[dict, dict]:
    """Pop the resource flags out of kw -> (OCI resources, HostConfig fields)."""
    names = ("memory", "memory_swap", "memory_reservation", "cpus", "cpu_shares", "cpu_period",
             "cpu_quota", "cpuset_cpus", "cpuset_mems", "pids_limit", "blkio_weight")
    flags = {n: kw.pop(n) for n in names if n in kw}
    if not any(v is not None for v in flags.values()):
        return {}, {}
    from minidock.engine.resources import host_config_fields, resources_from_flags

    return resources_from_flags(**flags), host_config_fields(**flags)


def _warn(opts) -> None:
    """Docker's WARNING lines for settings the host cannot honour (the run goes on)."""
    if opts.oom_kill_disable:
        from minidock.runtime.cgroups import cgroup_version

        if cgroup_version() == 2:
            echo("WARNING: Your kernel does not support OomKillDisable. OomKillDisable discarded.", err=True)
            opts.oom_kill_disable = False
        elif not (opts.resource_flags or {}).get("Memory"):
            echo("WARNING: Disabling the OOM killer on containers without setting a '-m/--memory' limit "
                 "may be dangerous.", err=True)
    if opts.resource_flags:
        from minidock.engine.resources import warnings

        for w in warnings(opts.resource_flags):
            echo(f"WARNING: {w}", err=True)


def _options(image: str, command: tuple, kw: dict):
    from minidock.engine.create import RunOptions

    resources, hc_fields = _resources(kw)
    network = kw.pop("network") or ""
    fields = {k: (list(v) if isinstance(v, tuple) else v) for k, v in kw.items()}
    return RunOptions(image=image, command=list(command), network=network, resources=resources,
                      resource_flags=hc_fields, **fields)


def run(image, command, detach, explain, explain_format, attach_streams, sig_proxy, detach_keys, **kw):
    """Create and run a new container from an image."""
    if detach and attach_streams:
        raise InvalidArgument("Conflicting options: -a and -d")
    if kw["tty"] and kw["interactive"] and not detach and not os.isatty(0):
        raise MinidockError("the input device is not a TTY", exit_code=1)
    if explain:
        from minidock import kernel

        kernel.explain_to(2, explain_format)
    from minidock.engine import lifecycle
    from minidock.engine.create import create_container

    opts = _options(image, command, kw)
    _warn(opts)
    rec = create_container(opts)
    if detach:
        lifecycle.run_detached(rec, interactive=opts.interactive)
        echo(rec["Id"])
        return 0
    streams = [a.lower() for a in attach_streams] or ["stdin", "stdout", "stderr"]
    interactive = opts.interactive and "stdin" in streams
    if (not sig_proxy or detach_keys) and not opts.tty:
        # the container must outlive this process (^C stops only the client): a monitor runs it,
        # and we attach to it as `minidock attach` does
        from minidock.engine import reattach

        lifecycle.run_detached(rec, interactive=opts.interactive)
        return reattach.attach(rec["Id"], no_stdin=not interactive, sig_proxy=sig_proxy,
                               detach_keys=detach_keys, streams=streams)
    try:
        return lifecycle.run_attached(rec, interactive=interactive,
                                      streams=[s for s in streams if s != "stdin"])
    except BaseException:  # --rm removes the container even when it failed to start
        if opts.auto_remove and os.path.exists(containers.cdir(rec["Id"])):
            lifecycle.remove(rec["Id"], force=True, volumes=True)
        raise


def create(image, command, **kw):
    """Create a new container (without starting it)."""
    from minidock.engine.create import create_container

    rec = create_container(_options(image, command, kw))
    echo(rec["Id"])


# --- start, stop, kill, rm, wait ----------------------------------------------------------------
def start(attach, interactive, containers_):
    """Start one or more stopped containers."""
    from minidock.engine import lifecycle

    code = 0
    for ref in containers_:
        cid = containers.resolve(ref)
        rec = lifecycle.refresh(cid)
        if rec["State"].get("Running"):
            if not attach:
                echo(ref)
            continue
        if attach:
            return lifecycle.run_attached(rec, interactive=interactive)
        lifecycle.run_detached(rec, interactive=interactive)
        echo(ref)
    return code


def each(refs, fn) -> int:
    """Apply fn to each container; report errors per container like Docker; exit 1 if any failed."""
    failed = False
    for ref in refs:
        try:
            fn(containers.resolve(ref), ref)
        except MinidockError as e:
            echo(f"Error response from daemon: {e.message}", err=True)
            failed = True
    return 1 if failed else 0


def stop(timeout, sig, refs):
    """Stop one or more running containers (the stop signal, then SIGKILL after -t seconds)."""
    from minidock.engine import lifecycle

    return each(refs, lambda cid, ref: (lifecycle.stop(cid, timeout, sig), echo(ref)))


def kill(sig, refs):
    """Kill one or more running containers."""
    from minidock.engine import lifecycle

    signum = lifecycle.signal_number(sig)
    return each(refs, lambda cid, ref: (lifecycle.kill(cid, signum), echo(ref)))


def rm(force, volumes, refs):
    """Remove one or more containers."""
    from minidock.engine import lifecycle

    return each(refs, lambda cid, ref: (lifecycle.remove(cid, force=force, volumes=volumes), echo(ref)))


def wait(condition, refs):
    """Block until one or more containers stop, then print their exit codes."""
    from minidock.engine import lifecycle

    def do(cid, ref):
        echo(str(lifecycle.wait_condition(cid, condition)))

    return each(refs, do)


# --- ps -------------------------------------------------------------------------------------------
def ps(all_, quiet, no_trunc, last, latest, size, filters, fmt):
    """List containers."""
    from minidock.cli import views
    from minidock.engine.status import refresh

    if fmt and fmt not in ("json", "table"):
        from minidock.cli import gotemplate

        gotemplate.parse(fmt[5:] if fmt.startswith("table") else fmt)  # a bad template fails first
    flt = views.parse_filters(filters, views.PS_FILTERS) if filters else {}
    if latest:
        last = 1
    rows = []
    running_only = not all_ and last < 0
    for cid in containers.all_ids(complete=False):
        st = containers.load_state(cid) if running_only else None
        if st is not None and not st.get("Running"):
            continue  # (a stopped container stays stopped: its record is not read)
        try:
            rec = refresh(cid, state=st)
        except NotFound:
            continue
        if running_only and not rec["State"].get("Running"):
            continue
        if flt and not views.matches(rec, flt):
            continue
        rows.append(rec)
    rows.sort(key=lambda r: r["Created"], reverse=True)
    if last >= 0:
        rows = rows[:last]
    if quiet and not fmt:
        for r in rows:
            echo(r["Id"] if no_trunc else r["Id"][:12])
        return
    trunc = not no_trunc
    if not fmt or fmt == "table":  # Docker's default columns: no template engine needed
        sys.stdout.write(views.ps_default_table(rows, trunc=trunc, size=size))
        return
    from minidock.cli import gotemplate

    ctx = [views.ps_row(r, trunc=trunc, size=size or ".Size" in fmt) for r in rows]
    if fmt == "json":
        sys.stdout.write(gotemplate.docker_format("json", ctx, json_rows=[views.ps_json(c) for c in ctx]))
        return
    sys.stdout.write(gotemplate.docker_format(fmt, ctx, views.ps_header()))


# --- logs -----------------------------------------------------------------------------------------
def logs(follow, tail, timestamps, since, until, details, ref):
    """Fetch the logs of a container."""
    from minidock.engine import logs as lg
    from minidock.engine.status import refresh

    cid = containers.resolve(ref)
    rec = refresh(cid)
    if ((rec["HostConfig"].get("LogConfig") or {}).get("Type") or "json-file") == "none":
        raise MinidockError("configured logging driver does not support reading", exit_code=1)
    n = None
    if tail != "all":
        try:
            n = int(tail)
        except ValueError:
            raise InvalidArgument(f"invalid value for --tail: {tail!r}", "Use a number or 'all'.") from None
        if n < 0:
            n = None
    if since or until:
        from minidock.engine.ops import parse_time
    t_since = parse_time(since) if since else None
    t_until = parse_time(until) if until else None
    if follow:
        from minidock.engine.lifecycle import is_running

        lg.follow(rec["LogPath"], lambda: is_running(cid), tail=n, timestamps=timestamps,
                  since=t_since, until=t_until)
        return
    for stream, text in lg.read(rec["LogPath"], tail=n, timestamps=timestamps, since=t_since, until=t_until):
        (sys.stdout if stream == "stdout" else sys.stderr).write(text)
    sys.stdout.flush()


# --- exec -----------------------------------------------------------------------------------------
def exec_(interactive, tty, detach, env, user, workdir, privileged, explain, explain_format, ref, command):
    """Execute a command in a running container."""
    from minidock.engine import execute

    if tty and interactive and not detach and not os.isatty(0):
        raise MinidockError("the input device is not a TTY", exit_code=1)
    if explain:
        from minidock import kernel

        kernel.explain_to(2, explain_format)
    cid = containers.resolve(ref)
    return execute.exec_in(cid, list(command), interactive=interactive, tty=tty, detach=detach,
                           env=list(env), user=user, workdir=workdir, privileged=privileged)


# --- inspect --------------------------------------------------------------------------------------
def inspect(fmt, size, type_, kernel, refs):
    """Return low-level information on containers, images, networks or volumes."""
    if kernel:
        return _inspect_kernel(refs, fmt)

    def lookup(ref):
        obj = _inspect_one(ref, type_, size)
        if obj is None:
            raise NotFound(f"No such object: {ref}")
        return obj

    return inspect_many(refs, lookup, fmt)


def _inspect_kernel(refs, fmt: str | None) -> int:
    import json

    from minidock.labs import kernelview

    for ref in refs:
        _, r = kernelview.for_container(ref)
        echo(json.dumps(r, indent=2) if fmt == "json" else kernelview.render(r))
    return 0


def inspect_many(refs, lookup, fmt: str | None, prefix: str = "Error: ") -> int:
    """Docker's `inspect` output for every kind of object: a JSON list (or one template line per
    object); an unknown reference is one error line, and the exit code is 1 if there was one."""
    tmpl = None
    if fmt:
        from minidock.cli import gotemplate

        tmpl = gotemplate.parse(fmt)  # a template that does not parse: exit 64 first
    out, failed = [], False
    for ref in refs:
        try:
            out.append(lookup(ref))
        except MinidockError as e:
            echo(f"{prefix}{e.message}", err=True)
            failed = True
    if tmpl is not None:
        from minidock.cli.views import template_view

        for obj in out:
            echo(tmpl.execute(template_view(obj)))
    else:
        from minidock.util.jsonfast import dumps_indented

        echo(dumps_indented(out, 4))
    return 1 if failed else 0


def _inspect_one(ref: str, type_: str | None, size: bool = False):
    if type_ in (None, "container"):
        try:
            from minidock.cli.views import inspect_view
            from minidock.engine.status import refresh

            return inspect_view(refresh(containers.resolve(ref)), size=size)
        except (NotFound, InvalidArgument):
            if type_:
                return None
    if type_ in (None, "image"):
        try:
            from minidock.image.store import ImageStore

            return ImageStore().inspect(ref)
        except (NotFound, InvalidArgument, ImportError, AttributeError):
            pass
    for kind, mod in (("network", "minidock.network"), ("volume", "minidock.volumes")):
        if type_ in (None, kind):
            try:
                import importlib

                return importlib.import_module(mod).inspect(ref)
            except (NotFound, ImportError, AttributeError, InvalidArgument):
                pass
    return None
