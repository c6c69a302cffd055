"""Container commands: run, create, start, stop, restart, kill, rm, ps, logs, exec, wait,
inspect, top, rename, and the `container` group. Parse, call the engine, print."""

from __future__ import annotations

import sys

import click

from minidock.cli import explain_opt, hot
from minidock.cli.hot import inspect_many  # noqa: F401 (images, networks and volumes print through it)
from minidock.engine import lifecycle
from minidock.errors import InvalidArgument, MinidockError, NotFound
from minidock.state import containers

RUN_CTX = {"help_option_names": ["--help"], "allow_interspersed_args": False}


def _resource_options(f):
    from minidock.cli.resources import resource_options

    return resource_options(f)


def container_options(f):
    """The flags `run` and `create` share (Docker's names)."""
    opts = [
        click.option("-i", "--interactive", is_flag=True, help="Keep STDIN open."),
        click.option("-t", "--tty", is_flag=True, help="Allocate a pseudo-TTY."),
        click.option("--name", help="Assign a name to the container."),
        click.option("-e", "--env", multiple=True, help="Set environment variables."),
        click.option("--env-file", "env_files", multiple=True, help="Read in a file of environment variables."),
        click.option("-w", "--workdir", help="Working directory inside the container."),
        click.option("-u", "--user", help="Username or UID (format: <name|uid>[:<group|gid>])."),
        click.option("-h", "--hostname", help="Container host name."),
        click.option("--domainname", help="Container NIS domain name."),
        click.option("--entrypoint", help="Overwrite the default ENTRYPOINT of the image."),
        click.option("--rm", "auto_remove", is_flag=True,
                     help="Automatically remove the container when it exits (even if it failed to start)."),
        click.option("--init", is_flag=True,
                     help="Run an init inside the container that forwards signals and reaps processes."),
        click.option("--read-only", is_flag=True, help="Mount the container's root filesystem as read only."),
        click.option("--network", "--net", default=None,
                     help="Connect a container to a network (bridge, none, host, container:NAME, or a user network)."),
        click.option("-p", "--publish", multiple=True, help="Publish a container's port(s) to the host."),
        click.option("-P", "--publish-all", is_flag=True, help="Publish all exposed ports to random ports."),
        click.option("--expose", multiple=True, help="Expose a port or a range of ports."),
        click.option("-v", "--volume", "volumes", multiple=True, help="Bind mount a volume."),
        click.option("--mount", "mounts", multiple=True, help="Attach a filesystem mount to the container."),
        click.option("--tmpfs", multiple=True, help="Mount a tmpfs directory."),
        click.option("--volumes-from", multiple=True, help="Mount volumes from the specified container(s)."),
        click.option("--add-host", "add_hosts", multiple=True, help="Add a custom host-to-IP mapping (host:ip)."),
        click.option("--dns", multiple=True, help="Set custom DNS servers."),
        click.option("--dns-search", multiple=True, help="Set custom DNS search domains."),
        click.option("--ip", help="IPv4 address (e.g., 172.30.100.104)."),
        click.option("--ip6", help="IPv6 address (e.g., fd00:1::104)."),
        click.option("--network-alias", "aliases", multiple=True, help="Add network-scoped alias for the container."),
        click.option("--cap-add", multiple=True, help="Add Linux capabilities."),
        click.option("--cap-drop", multiple=True, help="Drop Linux capabilities."),
        click.option("--privileged", is_flag=True, help="Give extended privileges to this container."),
        click.option("--ulimit", "ulimits", multiple=True, help="Ulimit options (name=soft[:hard])."),
        click.option("--stop-signal", help="Signal to stop the container."),
        click.option("--stop-timeout", type=int, help="Timeout (in seconds) to stop a container."),
        click.option("-l", "--label", "labels", multiple=True, help="Set meta data on a container."),
        click.option("--group-add", multiple=True, help="Add additional groups to join."),
        click.option("--security-opt", multiple=True, help="Security options."),
        click.option("--sysctl", "sysctls", multiple=True, help="Sysctl options."),
        click.option("--no-pivot", "no_pivot", is_flag=True,
                     help="Use chroot instead of pivot_root (weaker: for the chroot-vs-pivot_root lab)."),
        click.option("--chroot", "chroot_only", is_flag=True,
                     help="Lab 02 only: enter the rootfs with a bare chroot(2), which a process with "
                          "CAP_SYS_CHROOT escapes."),
        click.option("--oom-score-adj", type=int, default=0,
                     help="Tune host's OOM preferences (-1000 to 1000; < 0 needs CAP_SYS_RESOURCE)."),
        click.option("--oom-kill-disable", is_flag=True, help="Disable OOM Killer (cgroup v1 only)."),
        click.option("--pid", help="PID namespace to use (host, container:NAME)."),
        click.option("--ipc", help="IPC mode to use (private, shareable, host, container:NAME, none)."),
        click.option("--uts", help="UTS namespace to use (host)."),
        click.option("--cgroupns", help="Cgroup namespace to use (host, private)."),
        click.option("--userns", help="User namespace to use (host, private, auto[:size=N]); default: none, "
                                      "or MINIDOCK_USERNS_REMAP's."),
        click.option("--uidmap", multiple=True,
                     help="UID map for the user namespace (CONTAINER_UID:HOST_UID:AMOUNT; repeatable)."),
        click.option("--gidmap", multiple=True,
                     help="GID map for the user namespace (CONTAINER_GID:HOST_GID:AMOUNT; repeatable)."),
        click.option("--subuidname", help="User namespace from the ranges of this name in /etc/subuid."),
        click.option("--subgidname", help="User namespace from the ranges of this name in /etc/subgid."),
        click.option("--device", "devices", multiple=True, help="Add a host device to the container."),
        click.option("--device-cgroup-rule", "device_cgroup_rules", multiple=True,
                     help="Add a rule to the cgroup allowed devices list (e.g. 'c 1:3 rwm')."),
        click.option("--shm-size", help="Size of /dev/shm (e.g. 128m)."),
        click.option("--cidfile", help="Write the container ID to the file."),
        click.option("--platform", help="Set platform if server is multi-platform capable (os/arch)."),
        click.option("--gpus", help="GPU devices to add to the container (not supported: refused)."),
        click.option("--log-driver", help="Logging driver for the container (json-file, local, none)."),
        click.option("--log-opt", "log_opts", multiple=True,
                     help="Log driver options (max-size=10m, max-file=3, compress=true)."),
        click.option("--restart", help="Restart policy: no, on-failure[:max-retries], always, unless-stopped."),
        click.option("--health-cmd", help="Command to run to check health."),
        click.option("--health-interval", help="Time between running the check (ms|s|m|h) (default 0s)."),
        click.option("--health-timeout", help="Maximum time to allow one check to run (ms|s|m|h) (default 0s)."),
        click.option("--health-retries", type=int, help="Consecutive failures needed to report unhealthy."),
        click.option("--health-start-period", help="Start period for the container to initialize before "
                                                   "starting health-retries countdown (ms|s|m|h) (default 0s)."),
        click.option("--health-start-interval", help="Time between running the check during the start "
                                                     "period (ms|s|m|h) (default 0s)."),
        click.option("--no-healthcheck", is_flag=True, help="Disable any container-specified HEALTHCHECK."),
        click.option("--health-on-failure", help="Action when the container turns unhealthy (podman): "
                                                 "none, kill, restart, stop."),
        click.option("--pull", "pull_policy", type=click.Choice(["always", "missing", "never"]), default="missing",
                     show_default=True, help="Pull image before running."),
    ]
    for o in reversed(opts):
        f = o(f)
    return _resource_options(f)


@click.command(context_settings=RUN_CTX)
@container_options
@click.option("-d", "--detach", is_flag=True, help="Run container in background and print container ID.")
@explain_opt.options("Print every kernel step (namespaces, mounts, pivot_root, capabilities, cgroups) "
                     "with the process that makes it and the equivalent shell command.")
@click.option("-a", "--attach", "attach_streams", multiple=True,
              type=click.Choice(["stdin", "stdout", "stderr"], case_sensitive=False),
              help="Attach to STDIN, STDOUT or STDERR.")
@click.option("--sig-proxy", type=bool, default=True, show_default=True,
              help="Proxy received signals to the process (--sig-proxy=false: ^C leaves it running).")
@click.option("--detach-keys", help="Override the key sequence for detaching a container.")
@click.argument("image")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def run(image, command, detach, explain, explain_format, attach_streams, sig_proxy, detach_keys, **kw):
    """Create and run a new container from an image."""
    return hot.run(image, command, detach, explain, explain_format, attach_streams, sig_proxy, detach_keys, **kw)

@click.command(context_settings=RUN_CTX)
@container_options
@click.argument("image")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def create(image, command, **kw):
    """Create a new container (without starting it)."""
    return hot.create(image, command, **kw)

@click.command()
@click.option("-a", "--attach", is_flag=True, help="Attach STDOUT/STDERR and forward signals.")
@click.option("-i", "--interactive", is_flag=True, help="Attach container's STDIN.")
@click.argument("containers_", metavar="CONTAINER...", nargs=-1, required=True)
def start(attach, interactive, containers_):
    """Start one or more stopped containers."""
    return hot.start(attach, interactive, containers_)

@click.command()
@click.option("-t", "--time", "timeout", type=int, default=None,
              help="Seconds to wait before killing the container (default 10).")
@click.option("-s", "--signal", "sig", help="Signal to send to the container.")
@click.argument("refs", metavar="CONTAINER...", nargs=-1, required=True)
def stop(timeout, sig, refs):
    """Stop one or more running containers (the stop signal, then SIGKILL after -t seconds)."""
    return hot.stop(timeout, sig, refs)

@click.command()
@click.option("-t", "--time", "timeout", type=int, default=None, help="Seconds to wait before killing.")
@click.argument("refs", metavar="CONTAINER...", nargs=-1, required=True)
def restart(timeout, refs):
    """Restart one or more containers."""
    def do(cid, ref):
        from minidock.engine import events

        lifecycle.stop(cid, timeout)
        rec = lifecycle.refresh(cid)
        lifecycle.run_detached(rec, interactive=rec["Config"].get("OpenStdin", False))
        events.container_event(rec, "restart")
        click.echo(ref)

    return hot.each(refs, do)


@click.command()
@click.option("-s", "--signal", "sig", default="KILL", help="Signal to send to the container.")
@click.argument("refs", metavar="CONTAINER...", nargs=-1, required=True)
def kill(sig, refs):
    """Kill one or more running containers."""
    return hot.kill(sig, refs)

@click.command()
@click.option("-f", "--force", is_flag=True, help="Force the removal of a running container (uses SIGKILL).")
@click.option("-v", "--volumes", is_flag=True, help="Remove anonymous volumes associated with the container.")
@click.argument("refs", metavar="CONTAINER...", nargs=-1, required=True)
def rm(force, volumes, refs):
    """Remove one or more containers."""
    return hot.rm(force, volumes, refs)

@click.command()
@click.option("--condition", default="not-running", show_default=True,
              type=click.Choice(["not-running", "next-exit", "removed"]),
              help="Wait until the container is not running, exits next, or is removed.")
@click.argument("refs", metavar="CONTAINER...", nargs=-1, required=True)
def wait(condition, refs):
    """Block until one or more containers stop, then print their exit codes."""
    return hot.wait(condition, refs)

# --- ps -------------------------------------------------------------------------------------------
@click.command()
@click.option("-a", "--all", "all_", is_flag=True, help="Show all containers (default shows just running).")
@click.option("-q", "--quiet", is_flag=True, help="Only display container IDs.")
@click.option("--no-trunc", is_flag=True, help="Don't truncate output.")
@click.option("-n", "--last", "last", type=int, default=-1,
              help="Show n last created containers (includes all states).")
@click.option("-l", "--latest", is_flag=True, help="Show the latest created container (includes all states).")
@click.option("-s", "--size", is_flag=True, help="Display total file sizes.")
@click.option("-f", "--filter", "filters", multiple=True,
              help="Filter output (name=, id=, label=, status=, exited=, ancestor=, before=, since=, volume=, "
                   "network=, publish=, expose=).")
@click.option("--format", "fmt", help="Format output: 'table', 'table TEMPLATE', 'json' or a Go template.")
def ps(all_, quiet, no_trunc, last, latest, size, filters, fmt):
    """List containers."""
    return hot.ps(all_, quiet, no_trunc, last, latest, size, filters, fmt)

def _print_table(cols: list[str], rows: list[list[str]]) -> None:
    from minidock.cli.gotemplate import tabwrite

    lines = ["\t".join(cols)] + ["\t".join(str(v) for v in r) for r in rows]
    sys.stdout.write(tabwrite("\n".join(lines) + "\n"))


# --- logs ------------------------------------------------------------------------------------------
@click.command()
@click.option("-f", "--follow", is_flag=True, help="Follow log output.")
@click.option("-n", "--tail", default="all", help='Number of lines to show from the end of the logs (default "all").')
@click.option("-t", "--timestamps", is_flag=True, help="Show timestamps.")
@click.option("--since", help="Show logs since timestamp (e.g. 2013-01-02T13:23:37Z) or relative (e.g. 42m).")
@click.option("--until", help="Show logs before a timestamp (e.g. 2013-01-02T13:23:37Z) or relative (e.g. 42m).")
@click.option("--details", is_flag=True, help="Show extra details provided to logs.")
@click.argument("ref", metavar="CONTAINER")
def logs(follow, tail, timestamps, since, until, details, ref):
    """Fetch the logs of a container."""
    return hot.logs(follow, tail, timestamps, since, until, details, ref)

# --- exec ------------------------------------------------------------------------------------------
@click.command("exec", context_settings={"allow_interspersed_args": False})
@click.option("-i", "--interactive", is_flag=True, help="Keep STDIN open.")
@click.option("-t", "--tty", is_flag=True, help="Allocate a pseudo-TTY.")
@click.option("-d", "--detach", is_flag=True, help="Detached mode: run command in the background.")
@click.option("-e", "--env", multiple=True, help="Set environment variables.")
@click.option("-u", "--user", help="Username or UID (format: <name|uid>[:<group|gid>]).")
@click.option("-w", "--workdir", help="Working directory inside the container.")
@click.option("--privileged", is_flag=True, help="Give extended privileges to the command.")
@explain_opt.options("Print every kernel step (setns, capabilities, ...).")
@click.argument("ref", metavar="CONTAINER")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def exec_(interactive, tty, detach, env, user, workdir, privileged, explain, explain_format, ref, command):
    """Execute a command in a running container."""
    return hot.exec_(interactive, tty, detach, env, user, workdir, privileged, explain, explain_format, ref, command)

# --- inspect, top, rename ---------------------------------------------------------------------------
@click.command()
@click.option("-f", "--format", "fmt", help="Format the output using a Go template, e.g. {{.State.Pid}}.")
@click.option("-s", "--size", is_flag=True, help="Display total file sizes if the type is container.")
@click.option("--type", "type_", type=click.Choice(["container", "image", "network", "volume"]), default=None)
@click.option("--kernel", is_flag=True,
              help="What the kernel holds for a running container: namespaces, cgroup counters, "
                   "capabilities, seccomp, mounts, veth and nft elements, id maps (-f json for tools).")
@click.argument("refs", metavar="NAME|ID...", nargs=-1, required=True)
def inspect(fmt, size, type_, kernel, refs):
    """Return low-level information on containers, images, networks or volumes."""
    return hot.inspect(fmt, size, type_, kernel, refs)

def format_template(fmt: str, obj) -> str:
    """One object through a Go template (the CLI's one engine: minidock.cli.gotemplate)."""
    from minidock.cli.gotemplate import render

    return render(fmt, obj)


@click.command(context_settings={"ignore_unknown_options": True, "help_option_names": ["--help"]})
@click.argument("ref", metavar="CONTAINER")
@click.argument("ps_args", nargs=-1, type=click.UNPROCESSED)
def top(ref, ps_args):
    """Display the running processes of a container ([ps OPTIONS] as Docker: `top c -o pid,comm`)."""
    from minidock.engine import execute

    cid = containers.resolve(ref)
    rows = execute.processes(cid)
    if ps_args:
        sys.stdout.write(_ps_filtered(list(ps_args), {r["pid"] for r in rows}))
        return
    _print_table(["UID", "PID", "PPID", "CONTAINER PID", "STIME", "TIME", "CMD"],
                 [[r["user"], r["pid"], r["ppid"], r["cpid"], r["stime"], r["time"], r["cmd"]] for r in rows])


def _ps_filtered(args: list[str], pids: set[int]) -> str:
    """Docker's `top CONTAINER [ps OPTIONS]`: run the host's ps with the options and keep the header
    and the lines of the container's processes (found by the PID column)."""
    import subprocess

    p = subprocess.run(["ps", *args], capture_output=True, text=True)
    if p.returncode != 0:
        raise MinidockError(f"Error response from daemon: ps: {p.stderr.strip()}", exit_code=1)
    lines = p.stdout.splitlines()
    if not lines:
        return ""
    head = lines[0].split()
    if "PID" not in head:
        raise MinidockError("Error response from daemon: Couldn't find PID field in ps output", exit_code=1)
    col = head.index("PID")
    out = [lines[0]]
    for line in lines[1:]:
        fields = line.split()
        if len(fields) > col and fields[col].isdigit() and int(fields[col]) in pids:
            out.append(line)
    return "\n".join(out) + "\n"


@click.command()
@click.argument("ref", metavar="CONTAINER")
@click.argument("new_name", metavar="NEW_NAME")
def rename(ref, new_name):
    """Rename a container."""
    from minidock.state.names import check_name

    cid = containers.resolve(ref)
    new_name = check_name(new_name)
    with containers.lock(cid):
        rec = containers.load(cid)
        old = containers.name_of(rec)
        if old == new_name:
            raise InvalidArgument(f"Renaming a container with the same name as its current name: {new_name}")
        containers.claim_name(new_name, cid)
        rec["Name"] = "/" + new_name
        containers.save(rec)
        containers.release_name(old, cid)
    from minidock.engine import events  # selfheal (issue 11): Docker's rename event

    events.container_event(rec, "rename", oldName="/" + old)


@click.group()
def container():
    """Manage containers (docker container ...)."""


@container.command("prune")
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation.")
@click.option("--filter", "filters", multiple=True,
              help="Provide filter values (e.g. 'until=<timestamp>', 'label=k=v').")
def container_prune(force, filters):
    """Remove all stopped containers."""
    if not force and sys.stdin.isatty():
        click.confirm("WARNING! This will remove all stopped containers.\nAre you sure you want to continue?",
                      abort=True)
    if filters:
        from minidock.cli.views import parse_time
        from minidock.engine.ops import prune_filter

        keep = prune_filter(list(filters))
        removed = []
        for cid in containers.all_ids():
            try:
                rec = lifecycle.refresh(cid)
            except NotFound:
                continue
            if rec["State"].get("Running") or not keep(parse_time(rec["Created"]), rec["Config"].get("Labels")):
                continue
            lifecycle.remove(cid)
            removed.append(cid)
    else:
        removed = lifecycle.prune()
    if removed:
        click.echo("Deleted Containers:")
        for cid in removed:
            click.echo(cid)
        click.echo()
    click.echo(f"Total reclaimed space: {len(removed)} containers")


# --- attach --------------------------------------------------------------------------------------------
@click.command("attach")
@click.option("--detach-keys", help="Override the key sequence for detaching a container (default ctrl-p,ctrl-q).")
@click.option("--no-stdin", is_flag=True, help="Do not attach STDIN.")
@click.option("--sig-proxy", type=bool, default=True, show_default=True,
              help="Proxy all received signals to the process.")
@click.argument("ref", metavar="CONTAINER")
def attach_(detach_keys, no_stdin, sig_proxy, ref):
    """Attach local standard input, output, and error streams to a running container."""
    from minidock.engine import reattach

    return reattach.attach(containers.resolve(ref), no_stdin=no_stdin, sig_proxy=sig_proxy,
                           detach_keys=detach_keys)


# --- pause, unpause, diff ------------------------------------------------------------------------------
@click.command()
@click.argument("refs", metavar="CONTAINER...", nargs=-1, required=True)
def pause(refs):
    """Pause all processes within one or more containers (the cgroup freezer)."""
    from minidock.engine import ops

    return hot.each(refs, lambda cid, ref: (ops.pause(cid), click.echo(ref)))


@click.command()
@click.argument("refs", metavar="CONTAINER...", nargs=-1, required=True)
def unpause(refs):
    """Unpause all processes within one or more containers."""
    from minidock.engine import ops

    return hot.each(refs, lambda cid, ref: (ops.unpause(cid), click.echo(ref)))


@click.command()
@click.argument("ref", metavar="CONTAINER")
def diff(ref):
    """Inspect changes to files or directories on a container's filesystem (A added, C changed,
    D deleted), read from its overlayfs upper directory."""
    from minidock.engine import ops

    for kind, path in ops.diff(containers.resolve(ref)):
        click.echo(f"{kind} {path}")


for _name, _cmd in (("run", run), ("create", create), ("start", start), ("stop", stop),
                    ("restart", restart), ("kill", kill), ("rm", rm), ("ps", ps), ("ls", ps),
                    ("logs", logs), ("exec", exec_), ("wait", wait), ("inspect", inspect),
                    ("top", top), ("rename", rename), ("pause", pause), ("unpause", unpause),
                    ("diff", diff), ("attach", attach_)):
    container.add_command(_cmd, _name)
