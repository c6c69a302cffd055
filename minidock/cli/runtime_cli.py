"""`minidock-runtime`: minidock's runtime layer behind a runc-compatible command line.

Engines (podman/conmon, containerd's shim, dockerd) drive an OCI runtime with these verbs:

    minidock-runtime [--root DIR] [--log FILE] [--log-format json] create --bundle B \
        [--console-socket S] [--pid-file F] ID
    minidock-runtime start ID          # the process execs now (it was waiting on exec.fifo)
    minidock-runtime state ID          # the OCI state JSON
    minidock-runtime kill ID [SIGNAL]  # [--all]
    minidock-runtime delete [--force] ID
    minidock-runtime run [-d] --bundle B ID, exec, ps, list, spec, features, pause, resume, update

It is the same code path as `minidock run` (minidock/runtime/): `create` returns once the
container's init waits on its exec.fifo, exactly as runc does, so the engine's monitor (conmon,
the shim) becomes the init's parent when we exit. Errors go to --log (JSON lines with
--log-format json: conmon and the shims read them back) and to stderr, exit code 1.
"""

from __future__ import annotations

import json
import os
import sys
import time

import click

from minidock.cli import explain_opt

# Ctx (the global options, the engine's log) and start/kill/delete: shared with runtime_fast.py,
# the entry point that runs them without building this click CLI
from minidock.cli.runtime_ops import (
    Ctx,
    _create,
    _send_console,
    _write_pid_file,
    do_delete,
    do_kill,
    do_start,
    error_text,
    fail,
)
from minidock.errors import MinidockError

DEFAULT_ROOT = "/run/minidock-runtime"


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--root", default=DEFAULT_ROOT, show_default=True, envvar="MINIDOCK_RUNTIME_ROOT",
              help="Where container state is kept ($MINIDOCK_RUNTIME_ROOT; lab groups get their own).")
@click.option("--log", "log", default=None, help="Log file (errors are written here for the engine).")
@click.option("--log-format", default="text", type=click.Choice(["text", "json"]))
@click.option("--debug", is_flag=True, help="Debug logging.")
@click.option("--systemd-cgroup", is_flag=True,
              help="Accepted for compatibility: cgroupsPath 'slice:prefix:name' is mapped to a plain "
                   "cgroupfs path (minidock does not talk to systemd).")
@click.option("--criu", hidden=True)
@click.option("--rootless", hidden=True)
@explain_opt.options("Print every kernel step of create/run/exec (namespaces, mounts, pivot_root, cgroups, "
                     "capabilities, seccomp) to stderr, with the process that makes it.")
@click.version_option(package_name="minidock", prog_name="minidock-runtime",
                      message="%(prog)s version %(version)s\nspec: 1.1.0")
@click.pass_context
def cli(ctx, root, log, log_format, debug, systemd_cgroup, criu, rootless, explain, explain_format):
    """A runc-compatible OCI runtime: an OCI bundle in, an isolated process out."""
    ctx.obj = Ctx(os.path.abspath(root), log, log_format, debug, systemd_cgroup)
    if explain:
        from minidock import kernel

        kernel.explain_to(2, explain_format)
        kernel.actor("minidock-runtime")


def _load(ctx: Ctx, cid: str):
    from minidock.runtime import load

    return load(cid, ctx.root)


def _bundle_opt(f):
    return click.option("-b", "--bundle", default=".", help="Path to the bundle (config.json, rootfs).")(f)


def _create_opts(f):
    for o in reversed([
        click.option("--console-socket", help="Unix socket that receives the pty master."),
        click.option("--pid-file", help="Write the container's PID here."),
        click.option("--no-pivot", is_flag=True, help="Use chroot instead of pivot_root."),
        click.option("--no-new-keyring", is_flag=True, help="Accepted (no session keyring is created)."),
        click.option("--preserve-fds", type=int, default=0, help="Pass N extra fds (3..3+N-1)."),
    ]):
        f = o(f)
    return _bundle_opt(f)


@cli.command()
@_create_opts
@click.argument("cid", metavar="ID")
@click.pass_obj
def create(ctx, bundle, console_socket, pid_file, no_pivot, no_new_keyring, preserve_fds, cid):
    """Create a container; its process waits for `start`."""
    _create(ctx, cid, bundle, console_socket, pid_file, no_pivot, preserve_fds)


@cli.command()
@click.argument("cid", metavar="ID")
@click.pass_obj
def start(ctx, cid):
    """Start a created container (its process execs)."""
    do_start(ctx.root, cid)


@cli.command()
@click.argument("cid", metavar="ID")
@click.pass_obj
def state(ctx, cid):
    """Output the state of a container (OCI runtime spec)."""
    c = _load(ctx, cid)
    st = c.state()
    st["rootfs"] = os.path.join(c.bundle, c.spec.get("root", {}).get("path", "rootfs"))
    st["created"] = c.created
    click.echo(json.dumps(st, indent=2))


@cli.command()
@click.option("-a", "--all", "all_", is_flag=True, help="Send the signal to every process of the container.")
@click.argument("cid", metavar="ID")
@click.argument("sig", default="SIGTERM")
@click.pass_obj
def kill(ctx, all_, cid, sig):
    """Send a signal to the container's init (default SIGTERM)."""
    do_kill(ctx.root, cid, sig, all_)


@cli.command()
@click.option("-f", "--force", is_flag=True, help="Kill a running container first.")
@click.argument("cid", metavar="ID")
@click.pass_obj
def delete(ctx, force, cid):
    """Delete a stopped container's resources (cgroup, state)."""
    do_delete(ctx.root, cid, force)


@cli.command()
@_create_opts
@click.option("-d", "--detach", is_flag=True, help="Detach from the container's process.")
@click.argument("cid", metavar="ID")
@click.pass_obj
def run(ctx, bundle, console_socket, pid_file, no_pivot, no_new_keyring, preserve_fds, detach, cid):
    """Create and start a container; without -d, wait and exit with its code."""
    c = _create(ctx, cid, bundle, console_socket, pid_file, no_pivot, preserve_fds, fifo=detach)
    if detach:
        c.start()
        return
    code = 1
    try:
        c.start()
        code = c.wait()
    finally:
        try:
            c.delete(force=True)
        except MinidockError:
            pass
    sys.exit(code)


@cli.command("list")
@click.option("-q", "--quiet", is_flag=True, help="Display only container IDs.")
@click.option("-f", "--format", "fmt", default="table", type=click.Choice(["table", "json"]))
@click.pass_obj
def list_(ctx, quiet, fmt):
    """List containers started by this runtime with this --root."""
    from minidock.errors import NotFound

    out = []
    if os.path.isdir(ctx.root):
        for cid in sorted(os.listdir(ctx.root)):
            try:
                c = _load(ctx, cid)
            except (NotFound, OSError, ValueError):
                continue
            st = c.state()
            out.append({"ociVersion": st["ociVersion"], "id": cid, "pid": st["pid"], "status": st["status"],
                        "bundle": c.bundle, "rootfs": os.path.join(c.bundle, c.spec.get("root", {}).get("path", "")),
                        "created": c.created, "owner": "root"})
    if quiet:
        for o in out:
            click.echo(o["id"])
    elif fmt == "json":
        click.echo(json.dumps(out))
    else:
        click.echo(f"{'ID':<20}{'PID':<10}{'STATUS':<10}{'BUNDLE':<40}{'CREATED':<32}OWNER")
        for o in out:
            click.echo(f"{o['id']:<20}{o['pid']:<10}{o['status']:<10}{o['bundle']:<40}{o['created']:<32}root")


@cli.command(context_settings={"ignore_unknown_options": True})
@click.option("-f", "--format", "fmt", default="table", type=click.Choice(["table", "json"]))
@click.argument("cid", metavar="ID")
@click.argument("ps_args", nargs=-1, type=click.UNPROCESSED)
@click.pass_obj
def ps(ctx, fmt, cid, ps_args):
    """Display the processes running inside a container."""
    import subprocess

    c = _load(ctx, cid)
    pids = _procs(c)
    if fmt == "json":
        click.echo(json.dumps(pids))
        return
    out = subprocess.run(["ps", *(ps_args or ["-ef"])], capture_output=True, text=True).stdout.splitlines()
    if not out:
        return
    click.echo(out[0])
    col = out[0].split().index("PID")
    for line in out[1:]:
        parts = line.split()
        if len(parts) > col and parts[col].isdigit() and int(parts[col]) in pids:
            click.echo(line)


def _procs(c) -> list[int]:
    if c.cgroup_path:
        return c.procs()
    return [c.pid] if c.status() != "stopped" else []


@cli.command()
@click.argument("cid", metavar="ID")
@click.pass_obj
def pause(ctx, cid):
    """Suspend every process of the container (freezer)."""
    c = _load(ctx, cid)
    if c.status() != "running":
        raise MinidockError(f"container {cid} is not running")
    c.pause()


@cli.command()
@click.argument("cid", metavar="ID")
@click.pass_obj
def resume(ctx, cid):
    """Resume a paused container."""
    c = _load(ctx, cid)
    if c.status() != "paused":
        raise MinidockError(f"container {cid} is not paused")
    c.resume()


@cli.command()
@click.option("-r", "--resources", "resources_file", help="OCI linux.resources JSON file ('-' for stdin).")
@click.option("--memory", help="Memory limit in bytes (or 64m).")
@click.option("--memory-swap", help="Memory+swap limit.")
@click.option("--cpu-quota", type=int)
@click.option("--cpu-period", type=int)
@click.option("--cpu-shares", type=int)
@click.option("--cpuset-cpus")
@click.option("--cpuset-mems")
@click.option("--pids-limit", type=int)
@click.argument("cid", metavar="ID")
@click.pass_obj
def update(ctx, resources_file, memory, memory_swap, cpu_quota, cpu_period, cpu_shares, cpuset_cpus, cpuset_mems,
           pids_limit, cid):
    """Update a container's resource limits."""
    from minidock.engine.resources import ram_in_bytes

    c = _load(ctx, cid)
    r: dict = {}
    if resources_file:
        r = json.load(sys.stdin if resources_file == "-" else open(resources_file))
    mem = {k: ram_in_bytes(v) for k, v in (("limit", memory), ("swap", memory_swap)) if v is not None}
    if mem:
        r.setdefault("memory", {}).update(mem)
    cpu = {k: v for k, v in (("quota", cpu_quota), ("period", cpu_period), ("shares", cpu_shares),
                             ("cpus", cpuset_cpus), ("mems", cpuset_mems)) if v is not None}
    if cpu:
        r.setdefault("cpu", {}).update(cpu)
    if pids_limit is not None:
        r["pids"] = {"limit": pids_limit}
    c.update(r)


@cli.command()
@click.option("--stats", is_flag=True, help="Display the container's stats once, then exit.")
@click.option("--interval", default="5s", help="Stats collection interval.")
@click.argument("cid", metavar="ID")
@click.pass_obj
def events(ctx, stats, interval, cid):
    """Display container events (stats, OOM) as JSON lines."""
    c = _load(ctx, cid)
    secs = float(interval.rstrip("s") or 5)
    oom_seen = False
    while True:
        s = c.stats()
        click.echo(json.dumps({"type": "stats", "id": cid, "data": {
            "cpu": {"usage": {"total": s["cpu_usage_ns"]}},
            "memory": {"usage": {"usage": s["memory_usage"], "limit": s["memory_limit"]}},
            "pids": {"current": s["pids_current"], "limit": s["pids_limit"]},
            "blkio": {"read": s["blkio_read"], "write": s["blkio_write"]}}}))
        if stats:
            return
        if c.oom_killed() and not oom_seen:
            oom_seen = True
            click.echo(json.dumps({"type": "oom", "id": cid}))
        if c.status() == "stopped":
            return
        time.sleep(secs)


@cli.command("exec", context_settings={"allow_interspersed_args": False})
@click.option("-p", "--process", "process_file", help="A process.json (OCI process) to run.")
@click.option("-d", "--detach", is_flag=True)
@click.option("--pid-file")
@click.option("--console-socket")
@click.option("-t", "--tty", is_flag=True)
@click.option("--cwd")
@click.option("-e", "--env", multiple=True)
@click.option("-u", "--user", help="UID[:GID].")
@click.option("--no-new-privs", is_flag=True)
@click.option("--preserve-fds", type=int, default=0, help="Pass N extra fds (3..3+N-1).")
@click.argument("cid", metavar="ID")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@click.pass_obj
def exec_(ctx, process_file, detach, pid_file, console_socket, tty, cwd, env, user, no_new_privs, preserve_fds,
          cid, command):
    """Run a process in a running container's namespaces and cgroup."""
    from minidock.runtime.process import exec_process

    c = _load(ctx, cid)
    if process_file:
        with open(process_file) as f:
            process = json.load(f)
    else:
        if not command:
            raise MinidockError("exec: no command given", "Give a command after the container ID, or --process.")
        process = json.loads(json.dumps(c.spec.get("process", {})))
        process["args"] = list(command)
        process["terminal"] = tty
        if cwd:
            process["cwd"] = cwd
        if env:
            process["env"] = list(process.get("env", [])) + list(env)
        if user:
            uid, _, gid = user.partition(":")
            process["user"] = {"uid": int(uid), "gid": int(gid or 0)}
        if no_new_privs:
            process["noNewPrivileges"] = True
    if process.get("terminal") and not console_socket:
        raise MinidockError("cannot allocate tty if runc will detach without setting console socket")
    p = exec_process(c, process, stdio=(0, 1, 2), preserve_fds=preserve_fds)
    if p.console_fd is not None:
        _send_console(console_socket, p.console_fd)
    _write_pid_file(pid_file, p.pid)
    p.start()
    if detach:
        return
    sys.exit(p.wait())


@cli.command()
@click.option("-b", "--bundle", default=".", help="Where to write config.json.")
@click.option("--rootless", is_flag=True, help="Accepted; rootless specs are not generated.")
def spec(bundle, rootless):
    """Write a default config.json (like `runc spec`) into the bundle."""
    from minidock.runtime import spec as ocispec

    path = os.path.join(bundle, "config.json")
    if os.path.exists(path):
        raise MinidockError("File config.json exists. Remove it first")
    s = ocispec.base_spec(["sh"], terminal=True)
    s["root"]["readonly"] = True
    with open(path, "w") as f:
        json.dump(s, f, indent=2)


@cli.command()
def features():
    """What this runtime supports (the OCI features document), read from the tables the code uses:
    the init's namespace table, the hook kinds, parse_options' mount options, the capability
    list, seccomp's actions, comparisons and the default profile's architectures."""
    from minidock import kernel as k
    from minidock.runtime import hooks, seccomp
    from minidock.runtime import rootfs as rfs
    from minidock.runtime import spec as ocispec

    archs = sorted({a for m in seccomp.default_profile().get("archMap") or []
                    for a in [m["architecture"], *(m.get("subArchitectures") or [])]})
    click.echo(json.dumps({
        "ociVersionMin": "1.0.0", "ociVersionMax": ocispec.OCI_VERSION,
        "hooks": list(hooks.SUPPORTED),
        "mountOptions": rfs.MOUNT_OPTIONS,
        "linux": {
            "namespaces": sorted(k.NS_FLAGS),
            "capabilities": list(ocispec.CAPABILITIES),
            "cgroup": {"v1": True, "v2": True, "systemd": False, "systemdUser": False, "rdma": False},
            "seccomp": {"enabled": True, "actions": seccomp.ACTIONS, "operators": sorted(seccomp.CMP),
                        "archs": archs},
            "apparmor": {"enabled": False}, "selinux": {"enabled": False},
        },
        "annotations": {"org.minidock.runtime": "minidock-runtime (Python, same code path as `minidock run`)"},
    }, indent=2))


def main(argv=None) -> None:
    log_ctx = Ctx(DEFAULT_ROOT, None, "text", False, False)
    args = list(sys.argv[1:] if argv is None else argv)
    # find --log/--log-format early, so even a usage error reaches the engine's log
    for i, a in enumerate(args):
        if a == "--log" and i + 1 < len(args):
            log_ctx.log = args[i + 1]
        elif a.startswith("--log="):
            log_ctx.log = a[6:]
        elif a == "--log-format" and i + 1 < len(args):
            log_ctx.log_format = args[i + 1]
        elif a.startswith("--log-format="):
            log_ctx.log_format = a[13:]
    try:
        if any(a.startswith("--explain=") for a in args):
            from minidock.cli import explain_opt

            args = explain_opt.rewrite(cli, args)
        cli.main(args=args, prog_name="minidock-runtime", standalone_mode=False)
    except MinidockError as e:
        fail(log_ctx, error_text(e))
    except click.ClickException as e:
        log_ctx.write_log("error", e.format_message())
        e.show()
        sys.exit(1)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except Exception as e:  # a bug: one line for the engine's log, the traceback with --debug
        if "--debug" in args:
            raise
        fail(log_ctx, error_text(e))
    sys.exit(0)


if __name__ == "__main__":
    main()
