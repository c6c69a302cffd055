"""info, doctor, version, and `system` (prune, info, df)."""

from __future__ import annotations

import os
import platform
import shutil
import sys

import click

from minidock import paths


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("minidock")
    except Exception:  # noqa: BLE001
        return "0.1.0"


def _namespaces() -> dict[str, bool]:
    return {ns: os.path.exists(f"/proc/self/ns/{ns}") for ns in
            ("pid", "mnt", "uts", "ipc", "net", "cgroup", "user", "time")}


def _filesystems() -> set[str]:
    try:
        with open("/proc/filesystems") as f:
            return {line.split()[-1] for line in f if line.strip()}
    except OSError:
        return set()


def _cgroup_info() -> dict:
    from minidock.runtime.cgroups import cgroup_version, mounts

    try:
        v = cgroup_version()
    except Exception as e:  # noqa: BLE001
        return {"version": 0, "controllers": [], "error": str(e)}
    m = mounts()
    if v == 2:
        with open(os.path.join(m["v2"], "cgroup.controllers")) as f:
            ctrls = f.read().split()
    else:
        ctrls = sorted(m["v1"])
    return {"version": v, "controllers": ctrls, "root": m["v2"] if v == 2 else "/sys/fs/cgroup (v1)"}


def _seccomp_lib() -> bool:
    import ctypes.util

    return ctypes.util.find_library("seccomp") is not None


def _pivot_root_possible() -> bool:
    """pivot_root(2) fails (EINVAL) when / is the initramfs (rootfs): Docker's DOCKER_RAMDISK case."""
    from minidock.util import mountinfo

    try:
        root = [m for m in mountinfo.read() if m.target == "/"]
    except OSError:
        return False
    return bool(root) and root[0].fstype not in ("rootfs", "ramfs")


def checks() -> list[tuple[str, bool, bool, str]]:
    """(what, ok, essential, how to fix)."""
    from minidock.engine.bundle import init_binary

    ns = _namespaces()
    fs = _filesystems()
    cg = _cgroup_info()
    try:
        init = init_binary()
    except Exception:  # noqa: BLE001
        init = None
    out = [
        ("running as root", os.geteuid() == 0, True, "run minidock with sudo"),
        *[(f"{n} namespace", ns[n], n in ("pid", "mnt", "uts", "ipc", "net"),
           "a kernel built with CONFIG_" + {"mnt": "NAMESPACES", "net": "NET_NS", "pid": "PID_NS",
                                            "ipc": "IPC_NS", "uts": "UTS_NS", "cgroup": "CGROUPS",
                                            "user": "USER_NS", "time": "TIME_NS"}[n])
          for n in ns],
        ("overlay filesystem", "overlay" in fs, True, "modprobe overlay"),
        ("pivot_root (/ is not an initramfs)", _pivot_root_possible(), False,
         "boot with a real root filesystem, or run containers with --no-pivot (chroot, weaker)"),
        (f"cgroups v{cg['version']} ({', '.join(cg['controllers']) or 'no controllers'})",
         bool(cg["version"]) and {"memory", "pids"} <= set(cg["controllers"]), True,
         "mount cgroup2 at /sys/fs/cgroup with the memory, cpu and pids controllers"),
        ("mqueue filesystem", "mqueue" in fs, False, "a kernel with CONFIG_POSIX_MQUEUE"),
        ("devpts filesystem", "devpts" in fs, True, "a kernel with CONFIG_UNIX98_PTYS"),
        ("nftables (nft)", shutil.which("nft") is not None, False, "apt-get install nftables (bridge networking)"),
        ("iptables", shutil.which("iptables") is not None, False, "apt-get install iptables (fallback for NAT)"),
        ("libseccomp", _seccomp_lib(), False, "apt-get install libseccomp2"),
        ("static init for --init (tini-static)", init is not None, False, "apt-get install tini"),
        ("ip_forward possible", os.path.exists("/proc/sys/net/ipv4/ip_forward"), False, "a kernel with IPv4"),
    ]
    return out


@click.command(context_settings={"help_option_names": ["--help"]})
@click.option("-f", "--format", "fmt", help="'json' or a Go template ({{.ServerVersion}}, {{json .}}).")
def info(fmt):
    """Display system-wide information."""
    from minidock.image.store import ImageStore
    from minidock.state import containers

    cg = _cgroup_info()
    running = stopped = 0
    for cid in containers.all_ids():
        try:
            if containers.load_state(cid).get("Running"):
                running += 1
            else:
                stopped += 1
        except (OSError, ValueError):
            continue
    data = {
        "ServerVersion": _version(),
        "Containers": running + stopped, "ContainersRunning": running, "ContainersStopped": stopped,
        "Images": len(ImageStore().ids()),
        "Driver": "overlay2", "DockerRootDir": str(paths.root()),
        "CgroupDriver": "cgroupfs", "CgroupVersion": str(cg["version"]),
        "CgroupControllers": cg["controllers"],
        "KernelVersion": platform.release(), "OperatingSystem": _os_name(),
        "Architecture": platform.machine(), "NCPU": os.cpu_count(),
        "MemTotal": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"),
        "Namespaces": [n for n, ok in _namespaces().items() if ok],
        "Runtime": "minidock-runtime (built in)",
        "Python": sys.version.split()[0],
    }
    data.update({"ContainersPaused": 0, "OSType": "linux", "Name": platform.node(), "ID": "",
                 "LoggingDriver": "json-file", "SecurityOptions": ["name=seccomp,profile=builtin"],
                 "Warnings": None})
    if os.environ.get("MINIDOCK_USERNS_REMAP", "").strip():  # Docker's mark of dockerd --userns-remap
        data["SecurityOptions"].append("name=userns")
    if fmt == "json":
        import json

        click.echo(json.dumps(data, indent=2))
        return
    if fmt:
        from minidock.cli.gotemplate import render

        click.echo(render(fmt, data))
        return
    click.echo(f"""Server Version: {data['ServerVersion']}
Containers: {data['Containers']}
 Running: {running}
 Stopped: {stopped}
Images: {data['Images']}
Storage Driver: overlay2 (overlayfs over shared layer snapshots)
Cgroup Driver: cgroupfs
Cgroup Version: {cg['version']}
 Controllers: {' '.join(cg['controllers'])}
Namespaces: {' '.join(data['Namespaces'])}
Runtime: {data['Runtime']}
Kernel Version: {data['KernelVersion']}
Operating System: {data['OperatingSystem']}
Architecture: {data['Architecture']}
CPUs: {data['NCPU']}
Total Memory: {data['MemTotal'] / (1 << 30):.2f}GiB
Root Dir: {data['DockerRootDir']}
Python: {data['Python']}""")


def _os_name() -> str:
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return platform.system()


@click.command(context_settings={"help_option_names": ["--help"]})
def doctor():
    """Check this host for what minidock needs (like Docker's check-config.sh)."""
    missing_essential = 0
    for what, ok, essential, fix in checks():
        mark = click.style("ok  ", fg="green") if ok else (
            click.style("MISSING", fg="red") if essential else click.style("missing", fg="yellow"))
        line = f"  {mark:<8} {what}"
        if not ok:
            line += f"  -> {fix}"
            missing_essential += essential
        click.echo(line)
    from minidock.network import firewall

    for what, value in firewall.report():  # facts of the host, not pass/fail
        click.echo(f"  {'info':<8} {what}: {value}")
    if missing_essential:
        click.echo(f"Verdict: {missing_essential} essential feature(s) missing: containers will not run here.")
        sys.exit(1)
    click.echo("Verdict: this host can run minidock containers.")


@click.command(context_settings={"help_option_names": ["--help"]})
@click.option("-f", "--format", "fmt", help="Format output using a Go template ({{.Client.Version}}, {{json .}}).")
def version(fmt):
    """Show the minidock version information."""
    if fmt:
        from minidock.cli.gotemplate import render

        click.echo(render(fmt, version_data()))
        return
    from minidock.runtime.cgroups import cgroup_version

    click.echo(f"minidock version {_version()}\n Python: {sys.version.split()[0]}\n Kernel: {platform.release()}\n"
               f" Cgroups: v{cgroup_version()}")


def version_data():
    """`docker version`'s data shape (a daemonless engine: Client and Server are the same program)."""
    from minidock.cli.gotemplate import Struct

    arch = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm"}.get(platform.machine(), platform.machine())
    common = {"Version": _version(), "ApiVersion": "1.41", "DefaultAPIVersion": "1.41", "GitCommit": "",
              "GoVersion": "python" + sys.version.split()[0], "Os": "linux", "Arch": arch, "BuildTime": ""}
    client = Struct({"Platform": Struct({"Name": "minidock"}), **common, "Context": "default",
                     "Experimental": True}, type_name="clientVersion")
    server = Struct({"Platform": Struct({"Name": "minidock"}),
                     "Components": [{"Name": "Engine", "Version": _version(),
                                     "Details": {"KernelVersion": platform.release(), "Os": "linux"}}],
                     **common, "MinAPIVersion": "1.12", "KernelVersion": platform.release(),
                     "Experimental": False}, type_name="*types.Version")
    return Struct({"Client": client, "Server": server}, type_name="versionInfo")


@click.group(context_settings={"help_option_names": ["--help"]})
def system():
    """Manage minidock (prune, info, df)."""


@system.command("boot")
def system_boot():
    """Start the containers whose restart policy says so (run at boot by minidock-boot.service)."""
    from minidock.engine import lifecycle

    for name, policy in lifecycle.boot():
        click.echo(f"{name}\t{policy}")


@system.command("prune")
@click.option("-a", "--all", "all_", is_flag=True, help="Remove all unused images not just dangling ones.")
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation.")
def system_prune(all_, force):
    """Remove stopped containers, crash leftovers (mounts, cgroups, links, rules) and unused images."""
    from minidock.engine import lifecycle

    if not force:
        click.confirm("WARNING! This will remove:\n  - all stopped containers\n  - leftovers of crashed "
                      "containers\n" + ("  - all images without at least one container associated to them\n"
                                        if all_ else "") + "Are you sure you want to continue?", abort=True)
    out = lifecycle.system_prune(all_=all_)
    from minidock.build.cache import Cache

    cache = Cache().prune()
    if out["containers"]:
        click.echo("Deleted Containers:\n" + "\n".join(out["containers"]))
    if out["networks"]:
        click.echo("Deleted Networks:\n" + "\n".join(out["networks"]))
    if out["images"]:
        click.echo("Deleted Images:\n" + "\n".join(f"deleted: {i}" for i in out["images"]))
    if out["orphans"]:
        click.echo("Removed leftovers:\n" + "\n".join(out["orphans"]))
    if cache["entries"]:
        from minidock.util import human_size

        click.echo(f"Deleted build cache objects: {cache['entries']}\nTotal reclaimed build cache: "
                   f"{human_size(cache['reclaimable'])}")


@system.command("df")
def system_df():
    """Show minidock disk usage."""
    from minidock.image.layers import dir_size
    from minidock.image.store import ImageStore
    from minidock.state import containers

    store = ImageStore()
    imgs = store.ids()
    layers = store.root / "layers" / "sha256"
    isize = dir_size(str(layers)) if layers.exists() else 0
    csize = sum(dir_size(str(containers.cdir(c) / "upper")) for c in containers.all_ids())
    vroot = paths.volumes()
    vsize = dir_size(str(vroot)) if vroot.exists() else 0
    click.echo(f"{'TYPE':<16}{'TOTAL':<8}{'SIZE':<10}")
    from minidock.util import human_size

    click.echo(f"{'Images':<16}{len(imgs):<8}{human_size(isize):<10}")
    click.echo(f"{'Containers':<16}{len(containers.all_ids()):<8}{human_size(csize):<10}")
    nvol = len(list(vroot.iterdir())) if vroot.exists() else 0
    click.echo(f"{'Local Volumes':<16}{nvol:<8}{human_size(vsize):<10}")
    from minidock.build.cache import Cache

    bc = Cache().usage()
    click.echo(f"{'Build Cache':<16}{bc['entries']:<8}{human_size(bc['size']):<10}")


system.add_command(info, "info")
