"""`create`: from an image reference and Docker's flags to a container record.

Docker's rules, kept here in one place:
* Entrypoint and Cmd: --entrypoint replaces the image's ENTRYPOINT *and* drops its CMD; command
  arguments after the image replace CMD.
* Env: the image's, then --env-file files in order, then -e; `-e NAME` alone copies the value from
  the caller's environment (or is dropped if unset there).
* Hostname: --hostname, else the first 12 hex digits of the ID.
* Working directory: -w, else the image's WORKDIR, else /.
"""

from __future__ import annotations

import os

from minidock import paths
from minidock.engine import secopts
from minidock.errors import InvalidArgument, MinidockError, NotFound
from minidock.state import containers

# RunOptions' fields after the image, with their defaults (list/dict: a new one for each instance),
# in the order of the dataclass it was: a dataclass of ~75 fields costs ~2.3 ms to build (its
# __init__/__repr__/__eq__ are generated with exec) and dataclasses ~4 ms to import (inspect, ast),
# paid by every `minidock run`
_OPTIONS = {
    "command": list,
    "name": None,
    "env": list,
    "env_files": list,
    "workdir": None,
    "user": None,
    "hostname": None,
    "domainname": None,
    "entrypoint": None,
    "tty": False,
    "interactive": False,
    "auto_remove": False,
    "init": False,
    "read_only": False,
    "network": "",
    "publish": list,
    "publish_all": False,
    "expose": list,
    "volumes": list,
    "mounts": list,
    "tmpfs": list,
    "volumes_from": list,
    "add_hosts": list,
    "dns": list,
    "dns_search": list,
    "ip": None,
    "ip6": None,
    "aliases": list,
    "cap_add": list,
    "cap_drop": list,
    "privileged": False,
    "ulimits": list,
    "stop_signal": None,
    "stop_timeout": None,
    "labels": list,
    "group_add": list,
    "security_opt": list,
    "sysctls": list,
    "oom_score_adj": 0,
    # namespaces shared with the host or another container, devices, limits (engine/hostopts.py)
    "pid": None,
    "ipc": None,
    "uts": None,
    "cgroupns": None,
    "userns": None,  # --userns, --uidmap, --gidmap (engine/userns.py)
    "uidmap": list,
    "gidmap": list,
    "subuidname": None,  # podman's: the maps of a name in /etc/subuid, /etc/subgid
    "subgidname": None,
    "devices": list,
    "device_cgroup_rules": list,
    "shm_size": None,
    "cidfile": None,
    "platform": None,
    "oom_kill_disable": False,
    "gpus": None,
    "log_driver": None,
    "log_opts": list,
    "pull_policy": "missing",  # --pull always|missing|never
    "no_pivot": False,
    "chroot_only": False,  # lab 02: a bare chroot(2), no mount moved over / (escapable)
    "resources": dict,
    "resource_flags": dict,
    # self-healing: restart policy and health check (minidock.engine.health)
    "restart": None,
    "health_cmd": None,
    "health_interval": None,
    "health_timeout": None,
    "health_retries": None,
    "health_start_period": None,
    "health_start_interval": None,
    "no_healthcheck": False,
    "health_on_failure": None,
}


class RunOptions:
    """Docker's `run`/`create` flags, as keywords: RunOptions(image=..., command=[...], ...)."""

    def __init__(self, image: str, **flags):
        unknown = flags.keys() - _OPTIONS.keys()
        if unknown:
            raise TypeError(f"RunOptions() got an unexpected keyword argument {sorted(unknown)[0]!r}")
        self.image = image
        for name, default in _OPTIONS.items():
            if name in flags:
                value = flags[name]
            elif default is list or default is dict:
                value = default()
            else:
                value = default
            setattr(self, name, value)

    def __eq__(self, other) -> bool:
        return type(other) is RunOptions and vars(self) == vars(other)

    __hash__ = None

    def __repr__(self) -> str:
        return "RunOptions(" + ", ".join(f"{k}={v!r}" for k, v in vars(self).items()) + ")"


def parse_restart_policy(text: str | None) -> dict:
    """--restart no|always|unless-stopped|on-failure[:N] -> HostConfig.RestartPolicy, with the
    messages of Docker's client (format) and daemon (validateRestartPolicy)."""
    if not text:
        return {"Name": "no", "MaximumRetryCount": 0}
    parts = text.split(":")
    if len(parts) > 2:
        raise InvalidArgument("invalid restart policy format")
    count = 0
    if len(parts) == 2:
        try:
            count = int(parts[1])
        except ValueError:
            raise InvalidArgument("maximum retry count must be an integer") from None
    name = parts[0]
    if name in ("always", "unless-stopped", "no"):
        if count != 0:
            raise InvalidArgument(f"maximum retry count cannot be used with restart policy '{name}'")
    elif name == "on-failure":
        if count < 0:
            raise InvalidArgument("maximum retry count cannot be negative")
    else:
        raise InvalidArgument(f"invalid restart policy '{name}'",
                              "Use no, always, unless-stopped or on-failure[:max-retries].")
    return {"Name": name, "MaximumRetryCount": count}


def _self_healing(o: RunOptions, icfg: dict) -> tuple[dict, dict | None]:
    """(RestartPolicy, Healthcheck) from the flags, checked before anything is created."""
    policy = parse_restart_policy(o.restart)
    if o.auto_remove and policy["Name"] != "no":
        raise InvalidArgument("Conflicting options: --restart and --rm")
    from minidock.engine import health

    hc = health.from_flags(cmd=o.health_cmd, interval=o.health_interval, timeout=o.health_timeout,
                           retries=o.health_retries, start_period=o.health_start_period,
                           start_interval=o.health_start_interval, none=o.no_healthcheck,
                           image_check=icfg.get("Healthcheck"))
    if o.health_on_failure not in (None, *health.ON_FAILURE):
        raise InvalidArgument(f"invalid on failure action {o.health_on_failure!r}",
                              "Use none, kill, restart or stop.")
    return policy, hc


def default_network() -> str:
    """Docker's default is the bridge; MINIDOCK_DEFAULT_NETWORK changes it (tests use "none" so
    that containers started in the host's network namespace never touch the host's links)."""
    return os.environ.get("MINIDOCK_DEFAULT_NETWORK") or "bridge"


def parse_env_file(path: str) -> list[str]:
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except OSError as e:
        raise InvalidArgument(f"open {path}: {e.strerror.lower()}") from None
    out = []
    for line in lines:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        out.append(line)
    return out


def _expand_env(items: list[str]) -> list[str]:
    out = []
    for e in items:
        if "=" in e:
            if e.startswith("="):
                raise InvalidArgument(f"invalid environment variable: {e}")
            out.append(e)
        elif e in os.environ:
            out.append(f"{e}={os.environ[e]}")
    return out


def parse_ulimits(items: list[str]) -> list[dict]:
    out = []
    for u in items:
        name, sep, val = u.partition("=")
        if not sep:
            raise InvalidArgument(f"invalid ulimit argument: {u}",
                                  "Use --ulimit NAME=SOFT[:HARD], e.g. nofile=1024:2048.")
        soft, _, hard = val.partition(":")
        try:
            s = int(soft)
            h = int(hard) if hard else s
        except ValueError:
            raise InvalidArgument(f"invalid ulimit argument: {u}") from None
        if s > h:
            raise InvalidArgument(f"ulimit soft limit must be less than or equal to hard limit: {s} > {h}")
        out.append({"Name": name, "Soft": s, "Hard": h})
    return out


def _kv(items: list[str], what: str) -> dict:
    out = {}
    for item in items:
        key, sep, val = item.partition("=")
        if not key:
            raise InvalidArgument(f"invalid {what}: {item!r}")
        out[key] = val
    return out


def resolve_image(ref: str, policy: str = "missing"):
    """The image `ref`, pulled first as Docker's --pull says (missing: only when not here)."""
    from minidock.image.store import ImageStore

    store = ImageStore()
    if policy != "always":
        try:
            return store.resolve(ref)
        except NotFound:
            if policy == "never":
                raise NotFound(f"No such image: {ref}", "Pull it first (`minidock pull`), or drop --pull never.") \
                    from None
    pull = _puller()
    if policy == "always":
        pull(ref)
        _pull_event(ref)
        return store.resolve(ref)
    import sys

    print(f"Unable to find image '{ref}' locally", file=sys.stderr)
    pull(ref)
    _pull_event(ref)
    return store.resolve(ref)


def _pull_event(ref: str) -> None:
    from minidock.engine import events

    name = ref if ":" in ref.rsplit("/", 1)[-1] or "@" in ref else ref + ":latest"
    events.emit("image", "pull", name, {"name": name.rsplit(":", 1)[0]})


def _puller():
    from minidock.image import registry

    return registry.pull_for_run


def create_container(o: RunOptions) -> dict:
    parse_restart_policy(o.restart)  # bad flags fail before a pull
    from minidock.engine import hostopts as ho

    ho.refuse_gpus(o.gpus)
    ns_modes = {
        "PidMode": ho.check_mode("--pid", o.pid, ("", "host"), True),
        "IpcMode": ho.check_mode("--ipc", o.ipc, ("", "host", "private", "shareable", "none"), True) or "private",
        "UTSMode": ho.check_mode("--uts", o.uts, ("", "host"), False),
        "CgroupnsMode": ho.check_mode("--cgroupns", o.cgroupns, ("", "host", "private"), False) or "private",
    }
    ns_modes["UsernsMode"] = ""
    userns = None
    if o.userns or o.uidmap or o.gidmap or o.subuidname or o.subgidname or os.environ.get("MINIDOCK_USERNS_REMAP"):
        from minidock.engine import userns  # (only then: a plain `run` does not import it)

        ns_modes.update(userns.resolve(o.userns, o.uidmap, o.gidmap, privileged=o.privileged,
                                       network=o.network or default_network(), pid=ns_modes["PidMode"],
                                       subuidname=o.subuidname, subgidname=o.subgidname))
    ho.check_oom_score_adj(o.oom_score_adj)
    ulimits = ho.parse_ulimits(o.ulimits)
    devices = [ho.parse_device(d) for d in o.devices]
    cgroup_rules = [ho.parse_cgroup_rule(r) for r in o.device_cgroup_rules]
    shm_size = ho.parse_size(o.shm_size, "--shm-size") if o.shm_size else 64 << 20
    if o.cidfile and os.path.exists(o.cidfile):
        raise InvalidArgument(f"Container ID file found, make sure the other container isn't running "
                              f"or delete {o.cidfile}")
    if o.oom_score_adj < 0 and not ho.can_lower_oom_score():
        raise MinidockError(f"cannot set --oom-score-adj {o.oom_score_adj}: lowering a process's OOM score "
                            "needs CAP_SYS_RESOURCE, which root on this host does not have",
                            "Use a value >= 0, or run minidock where root has CAP_SYS_RESOURCE.")
    from minidock.engine.logs import log_config as _log_config

    log_config = _log_config(o.log_driver, o.log_opts)
    img = resolve_image(o.image, o.pull_policy)
    ho.check_platform(o.platform, img.config or {}, o.image)
    icfg = (img.config or {}).get("config", {}) or {}
    restart_policy, healthcheck = _self_healing(o, icfg)
    entrypoint = icfg.get("Entrypoint")
    cmd = icfg.get("Cmd")
    if o.entrypoint is not None:
        if o.entrypoint:
            import shlex  # (here: it imports re)

            entrypoint = shlex.split(o.entrypoint)
        else:
            entrypoint = None
        cmd = None
    if o.command:
        cmd = list(o.command)
    env = list(icfg.get("Env") or [])
    for f in o.env_files:
        env += _expand_env(parse_env_file(f))
    env += _expand_env(o.env)
    exposed = dict(icfg.get("ExposedPorts") or {})
    for p in o.expose:
        exposed[p if "/" in p else f"{p}/tcp"] = {}
    config = {
        "Hostname": o.hostname or "",
        "Domainname": o.domainname or "",
        "User": o.user if o.user is not None else icfg.get("User", ""),
        "AttachStdin": o.interactive, "AttachStdout": True, "AttachStderr": True,
        "ExposedPorts": exposed,
        "Tty": o.tty,
        "OpenStdin": o.interactive,
        "StdinOnce": o.interactive,
        "Env": env,
        "Cmd": cmd,
        "Image": o.image,
        "Volumes": icfg.get("Volumes"),
        "WorkingDir": o.workdir if o.workdir is not None else icfg.get("WorkingDir", ""),
        "Entrypoint": entrypoint,
        "Labels": {**(icfg.get("Labels") or {}), **_kv(o.labels, "label")},
        "StopSignal": o.stop_signal or icfg.get("StopSignal") or "SIGTERM",
    }
    if o.stop_timeout is not None:
        config["StopTimeout"] = o.stop_timeout
    if healthcheck is not None:
        config["Healthcheck"] = healthcheck
    if o.health_on_failure:
        config["HealthcheckOnFailureAction"] = o.health_on_failure  # podman's field
    if icfg.get("Shell"):
        config["Shell"] = icfg["Shell"]
    if o.workdir is not None and not o.workdir.startswith("/"):
        raise InvalidArgument(f"the working directory '{o.workdir}' is invalid, it needs to be an absolute path")
    if not (entrypoint or cmd):
        raise InvalidArgument("no command specified",
                              "The image has no CMD or ENTRYPOINT: give the command after the image name.")
    network = o.network or default_network()
    if network not in ("none", "host", "bridge") and not network.startswith("container:"):
        from minidock.network import store as netstore

        netstore.find(network)  # Docker refuses to create a container on a missing network
    host_config = {
        "Binds": list(o.volumes),
        "NetworkMode": network,
        "PortBindings": _ports(o.publish),
        "PublishAllPorts": o.publish_all,
        "AutoRemove": o.auto_remove,
        "RestartPolicy": restart_policy,
        "VolumesFrom": list(o.volumes_from),
        "CapAdd": list(o.cap_add),
        "CapDrop": list(o.cap_drop),
        "Dns": list(o.dns),
        "DnsSearch": list(o.dns_search),
        "ExtraHosts": list(o.add_hosts),
        "GroupAdd": list(o.group_add),
        "Privileged": o.privileged,
        "ReadonlyRootfs": o.read_only,
        "SecurityOpt": secopts.for_record(list(o.security_opt)),
        "Tmpfs": _tmpfs(o.tmpfs),
        "Mounts": [_mount_spec(m) for m in o.mounts],
        "Init": o.init,
        "Ulimits": ulimits,
        "OomScoreAdj": o.oom_score_adj,
        "NoPivotRoot": o.no_pivot or o.chroot_only,
        "RootfsSwitch": "chroot" if o.chroot_only else "move+chroot" if o.no_pivot else "pivot_root",
        "Sysctls": _kv(o.sysctls, "sysctl"),
        "CgroupParent": paths.cgroup_parent(),
        "Resources": o.resources,
        **o.resource_flags,
        **ns_modes,
        "Devices": devices,
        "DeviceCgroupRules": cgroup_rules or None,
        "ShmSize": shm_size,
        "ContainerIDFile": o.cidfile or "",
        "OomKillDisable": True if o.oom_kill_disable else None,
        "LogConfig": log_config,
    }
    ho.check_sysctls(host_config["Sysctls"], host_config)
    if o.ip or o.ip6 or o.aliases:
        host_config["_Endpoint"] = {"IPv4Address": o.ip, "Aliases": list(o.aliases)}
    if userns is not None:
        with userns.auto_allocation(host_config):  # --userns=auto: taken and recorded under a lock
            rec = containers.new_record(image_ref=o.image, image_id=img.id, name=o.name, config=config,
                                        host_config=host_config)
    else:
        rec = containers.new_record(image_ref=o.image, image_id=img.id, name=o.name, config=config,
                                    host_config=host_config)
    if not config["Hostname"]:
        rec["Config"]["Hostname"] = rec["Id"][:12]
    if host_config.get("IDMappings"):
        rec["GraphDriver"]["Data"]["MergedDir"] = str(userns.merged_dir(rec))
    if o.ip or o.ip6 or o.aliases:
        ipam = {k: v for k, v in (("IPv4Address", o.ip), ("IPv6Address", o.ip6)) if v}
        rec["NetworkingConfig"] = {"EndpointsConfig": {network: {"IPAMConfig": ipam, "Aliases": list(o.aliases)}}}
        rec["HostConfig"].pop("_Endpoint", None)
    from minidock.engine import events

    hc = rec["HostConfig"]
    if hc.get("Binds") or hc.get("Mounts") or hc.get("Tmpfs") or hc.get("VolumesFrom") or config.get("Volumes"):
        from minidock import volumes

        for name in volumes.create_for_container(rec):  # Docker makes them with the container
            events.emit("volume", "create", name, {"driver": "local"})
    containers.save(rec)
    if o.cidfile:
        ho.write_cidfile(o.cidfile, rec["Id"])
    events.container_event(rec, "create")
    return rec


def _ports(items: list[str]) -> dict:
    """-p [ip:][hostPort:]containerPort[/proto] -> Docker's PortBindings."""
    out: dict[str, list] = {}
    for item in items:
        spec, _, proto = item.partition("/")
        proto = proto or "tcp"
        if proto not in ("tcp", "udp", "sctp"):
            raise InvalidArgument(f"invalid proto: {proto}")
        parts = spec.rsplit(":", 2)
        if len(parts) == 1:
            host_ip, host_port, cport = "", "", parts[0]
        elif len(parts) == 2:
            host_ip, host_port, cport = "", parts[0], parts[1]
        else:
            host_ip, host_port, cport = parts
        for p in (cport, host_port):
            if p and not (p.isdigit() and 0 < int(p) < 65536):
                raise InvalidArgument(f"invalid port: {item!r}", "Ports are numbers from 1 to 65535.")
        if not cport:
            raise InvalidArgument(f"no port specified: {item}<empty>")
        out.setdefault(f"{cport}/{proto}", []).append({"HostIp": host_ip.strip("[]"), "HostPort": host_port})
    return out


def _tmpfs(items: list[str]) -> dict:
    out = {}
    for t in items:
        path, _, opts = t.partition(":")
        if not path.startswith("/"):
            raise InvalidArgument(f"invalid tmpfs mount: {t}: the path must be absolute")
        out[path] = opts
    return out


def _mount_spec(text: str) -> dict:
    """--mount type=bind,source=/a,target=/b,readonly -> a Docker Mount dict."""
    m: dict = {}
    for part in text.split(","):
        key, sep, val = part.partition("=")
        key = key.strip().lower()
        if key in ("readonly", "ro"):
            m["ReadOnly"] = val.lower() not in ("false", "0") if sep else True
        elif key == "type":
            m["Type"] = val
        elif key in ("source", "src"):
            m["Source"] = val
        elif key in ("target", "destination", "dst"):
            m["Target"] = val
        elif key == "bind-propagation":
            m.setdefault("BindOptions", {})["Propagation"] = val
        elif key == "tmpfs-size":
            m.setdefault("TmpfsOptions", {})["SizeBytes"] = val
        elif key == "tmpfs-mode":
            m.setdefault("TmpfsOptions", {})["Mode"] = int(val, 8)
        elif key == "volume-nocopy":
            m.setdefault("VolumeOptions", {})["NoCopy"] = True
        else:
            raise InvalidArgument(f"unexpected key '{key}' in '{text}'")
    if "Target" not in m:
        raise InvalidArgument(f"target is required in --mount {text}")
    m.setdefault("Type", "volume")
    if m["Type"] not in ("bind", "volume", "tmpfs"):
        raise InvalidArgument(f"invalid mount type {m['Type']!r} in --mount {text}")
    return m
