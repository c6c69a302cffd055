"""What Docker's CLI shows for a container: the `inspect` shape with every HostConfig key Docker
has (at its default), the rows of `ps` (Docker's ContainerContext: ID, Image, Command, ...,
`{{.Label "k"}}`), `ps --filter` and Docker's human durations and sizes."""

from __future__ import annotations

import time

from minidock.errors import InvalidArgument
from minidock.state import containers

# (re, calendar, strptime and the template engine are imported where used: `ps`'s default table
# needs none of them)

# Docker 28's HostConfig, in its order, with the value a container created without flags has.
# (None is JSON null: Docker's nil slices, maps and pointers.)
HOST_CONFIG_DEFAULTS: tuple[tuple[str, object], ...] = (
    ("Binds", None), ("ContainerIDFile", ""), ("LogConfig", {"Type": "json-file", "Config": {}}),
    ("NetworkMode", "bridge"), ("PortBindings", {}), ("RestartPolicy", {"Name": "no", "MaximumRetryCount": 0}),
    ("AutoRemove", False), ("VolumeDriver", ""), ("VolumesFrom", None), ("ConsoleSize", [0, 0]),
    ("Annotations", None), ("CapAdd", None), ("CapDrop", None), ("CgroupnsMode", "host"), ("Dns", []),
    ("DnsOptions", []), ("DnsSearch", []), ("ExtraHosts", None), ("GroupAdd", None), ("IpcMode", "private"),
    ("Cgroup", ""), ("Links", None), ("OomScoreAdj", 0), ("PidMode", ""), ("Privileged", False),
    ("PublishAllPorts", False), ("ReadonlyRootfs", False), ("SecurityOpt", None), ("UTSMode", ""),
    ("UsernsMode", ""), ("ShmSize", 67108864), ("Runtime", "minidock"), ("Isolation", ""),
    ("CpuShares", 0), ("Memory", 0), ("NanoCpus", 0), ("CgroupParent", ""), ("BlkioWeight", 0),
    ("BlkioWeightDevice", []), ("BlkioDeviceReadBps", []), ("BlkioDeviceWriteBps", []),
    ("BlkioDeviceReadIOps", []), ("BlkioDeviceWriteIOps", []), ("CpuPeriod", 0), ("CpuQuota", 0),
    ("CpuRealtimePeriod", 0), ("CpuRealtimeRuntime", 0), ("CpusetCpus", ""), ("CpusetMems", ""),
    ("Devices", []), ("DeviceCgroupRules", None), ("DeviceRequests", None), ("MemoryReservation", 0),
    ("MemorySwap", 0), ("MemorySwappiness", None), ("OomKillDisable", False), ("PidsLimit", None),
    ("Ulimits", []), ("CpuCount", 0), ("CpuPercent", 0), ("IOMaximumIOps", 0), ("IOMaximumBandwidth", 0),
    ("MaskedPaths", None), ("ReadonlyPaths", None),
)
# keys Docker omits when empty (omitempty) and shows when set
HOST_CONFIG_OPTIONAL = ("Mounts", "Init", "Sysctls", "Tmpfs", "StorageOpt")


def inspect_view(rec: dict, size: bool = False) -> dict:
    """The record as `docker inspect` shows it: HostConfig completed with Docker's defaults (the
    record's own values win), empty optional keys left out as Docker does."""
    hc = dict(rec.get("HostConfig") or {})
    out = {}
    for k, default in HOST_CONFIG_DEFAULTS:
        v = hc.pop(k, default)
        if v is None and default is not None:
            v = default
        out[k] = None if default is None and v == [] else v  # Docker: null for a flag never given
    if not out["Privileged"] and out["MaskedPaths"] is None:
        from minidock.runtime.defaults import DEFAULT_MASKED_PATHS, DEFAULT_READONLY_PATHS

        out["MaskedPaths"], out["ReadonlyPaths"] = list(DEFAULT_MASKED_PATHS), list(DEFAULT_READONLY_PATHS)
    for k in HOST_CONFIG_OPTIONAL:
        v = hc.pop(k, None)
        if k == "Init" and v is False:
            v = None
        if v not in (None, [], {}):
            out[k] = v
    out.update(hc)  # minidock's own keys (Resources, NoPivotRoot) after Docker's
    view = dict(rec)
    view["HostConfig"] = out
    if size:
        rw, root = sizes(rec)
        view["SizeRw"], view["SizeRootFs"] = rw, root
    return view


# Docker's struct types in a container's inspect data: a template sees them as structs (an unknown
# field is an error, `{{.State}}` prints `{...}`, json keeps field order); their maps stay maps
_CONFIG_FIELDS = ("Hostname", "Domainname", "User", "AttachStdin", "AttachStdout", "AttachStderr", "ExposedPorts",
                  "Tty", "OpenStdin", "StdinOnce", "Env", "Cmd", "Healthcheck", "ArgsEscaped", "Image", "Volumes",
                  "WorkingDir", "Entrypoint", "NetworkDisabled", "MacAddress", "OnBuild", "Labels", "StopSignal",
                  "StopTimeout", "Shell")
_STATE_FIELDS = ("Status", "Running", "Paused", "Restarting", "OOMKilled", "Dead", "Pid", "ExitCode", "Error",
                 "StartedAt", "FinishedAt", "Health")


def template_view(obj):
    """A container's inspect data as Docker's typed structs, for `inspect -f` (JSON output is
    unchanged). Other objects (images, networks, volumes) are returned as they are."""
    from minidock.cli.gotemplate import Nil, Struct

    if not (isinstance(obj, dict) and "HostConfig" in obj and "State" in obj):
        return obj

    def struct(d, fields=(), name="struct"):
        out = Struct(type_name=name)
        for f in fields:
            out[f] = d.get(f) if f in d else _zero(f)
        for k, v in d.items():
            out[k] = v
        return out

    def _zero(f):
        return {"Health": Nil("ptr"), "Healthcheck": Nil("ptr"), "StopTimeout": Nil("ptr"), "ArgsEscaped": False,
                "NetworkDisabled": False, "MacAddress": "", "StopSignal": "", "Shell": None, "OnBuild": None,
                "ExposedPorts": None, "Volumes": None, "Init": Nil("ptr"), "Mounts": Nil("slice"),
                "Sysctls": Nil("map"), "Tmpfs": Nil("map"), "StorageOpt": Nil("map")}.get(f)

    view = struct(obj, (), "types.ContainerJSON")
    view["Config"] = struct(obj.get("Config") or {}, _CONFIG_FIELDS, "*container.Config")
    view["State"] = struct(obj.get("State") or {}, _STATE_FIELDS, "*types.ContainerState")
    view["HostConfig"] = struct(obj.get("HostConfig") or {}, HOST_CONFIG_OPTIONAL, "*container.HostConfig")
    for k in ("NetworkSettings", "GraphDriver"):
        if isinstance(obj.get(k), dict):
            view[k] = struct(obj[k], (), f"*types.{k}")
    for k in ("SizeRw", "SizeRootFs"):
        view.setdefault(k, Nil("ptr"))
    return view


def sizes(rec: dict) -> tuple[int, int]:
    """(SizeRw, SizeRootFs): bytes in the container's upper dir, and that plus the image."""
    import os

    upper = containers.cdir(rec["Id"]) / "upper"
    rw = 0
    for dirpath, _dirnames, filenames in os.walk(upper):
        for f in filenames:
            try:
                st = os.lstat(os.path.join(dirpath, f))
            except OSError:
                continue
            rw += st.st_size
    image = 0
    try:
        from minidock.image.store import ImageStore

        image = int(ImageStore().resolve(rec["Image"]).record.get("Size", 0))
    except Exception:  # noqa: BLE001 - a removed image still lets ps -s show the rw size
        image = 0
    return rw, rw + image


# --- Docker's go-units ---------------------------------------------------------------------------
def parse_time(ts: str) -> float | None:
    """An RFC 3339 time from a record (UTC, optional fraction) -> Unix seconds."""
    t = _fast_timegm(ts)
    if t is None:
        return _parse_time_slow(ts)
    i = 20
    while i < len(ts) and ts[i] in _DIGITS:
        i += 1
    if i < len(ts) and ts[i].isdigit():
        return _parse_time_slow(ts)  # (other Unicode digits: as the regular expression reads them)
    if ts[19:20] != "." or i == 20:
        return t + 0.0
    return t + float("0." + ts[20:i])


_DIGITS = frozenset("0123456789")


def _parse_time_slow(ts) -> float | None:
    import calendar
    import re

    try:
        t = calendar.timegm(time.strptime(ts[:19], "%Y-%m-%dT%H:%M:%S"))
    except (ValueError, TypeError):
        return None
    frac = re.match(r"\.(\d+)", ts[19:])
    return t + (float("0." + frac.group(1)) if frac else 0.0)


def _fast_timegm(ts) -> int | None:
    """calendar.timegm(time.strptime(ts[:19], "%Y-%m-%dT%H:%M:%S")) for the plain case (what
    every record holds), without strptime (~0.05 ms a call, and `import calendar`); None for
    anything else, which the slow path then judges."""
    if not isinstance(ts, str) or len(ts) < 19 or ts[4] != "-" or ts[7] != "-" or ts[10] != "T" or \
            ts[13] != ":" or ts[16] != ":":
        return None
    parts = (ts[0:4], ts[5:7], ts[8:10], ts[11:13], ts[14:16], ts[17:19])
    if not all(p.isascii() and p.isdigit() for p in parts):
        return None
    y, mo, d, h, mi, sec = (int(p) for p in parts)
    if not (1 <= mo <= 12 and 1 <= d <= 28 and h <= 23 and mi <= 59 and sec <= 59 and y >= 1):
        return None
    # days from the civil date (H. Hinnant's algorithm), as calendar.timegm counts them
    y -= mo <= 2
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (mo + (-3 if mo > 2 else 9)) + 2) // 5 + d - 1
    days = era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468
    return days * 86400 + h * 3600 + mi * 60 + sec


def human_duration(seconds: float) -> str:
    """go-units HumanDuration (what `Up 5 minutes` and `2 hours ago` use)."""
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    minutes = int(seconds / 60)
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = int(round(seconds / 3600))
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{int(seconds / 3600) // 24 // 365} years"


def since(ts: str) -> str:
    t = parse_time(ts)
    return "" if t is None else human_duration(max(0.0, time.time() - t))


def human_size(n: float, precision: int = 3) -> str:
    """go-units HumanSizeWithPrecision: powers of 1000, `%.4g`-style (4.26MB, 0B)."""
    from minidock.cli.gotemplate import sprintf

    units = ("B", "kB", "MB", "GB", "TB", "PB")
    i = 0
    n = float(n)
    while n >= 1000 and i < len(units) - 1:
        n /= 1000
        i += 1
    return sprintf(f"%.{precision}g%s", n, units[i])


def go_time(ts: str) -> str:
    """Go's time.Time.String() in local time, as `ps`'s CreatedAt shows it."""
    t = parse_time(ts)
    if t is None:
        return ts
    lt = time.localtime(t)
    return time.strftime("%Y-%m-%d %H:%M:%S %z ", lt) + (time.strftime("%Z", lt) or "UTC")


# --- ps --------------------------------------------------------------------------------------------
def status_text(st: dict) -> str:
    if st.get("Running"):
        # selfheal (issue 11): Docker's State.String() for restarting and health-checked containers
        if st.get("Paused"):
            return "Up " + since(st.get("StartedAt", "")) + " (Paused)"
        if st.get("Restarting"):
            return f"Restarting ({st.get('ExitCode', 0)}) {since(st.get('FinishedAt', ''))} ago"
        health = (st.get("Health") or {}).get("Status")
        if health:
            return "Up " + since(st.get("StartedAt", "")) + (
                " (health: starting)" if health == "starting" else f" ({health})")
        return "Up " + since(st.get("StartedAt", ""))
    if st.get("Status") == "created" or st.get("FinishedAt", containers.ZERO_TIME) == containers.ZERO_TIME:
        return "Created"
    return f"Exited ({st.get('ExitCode', 0)}) {since(st.get('FinishedAt', ''))} ago"


def ports_text(rec: dict) -> str:
    ports = rec.get("NetworkSettings", {}).get("Ports") or {}
    out = []
    for cport, binds in sorted(ports.items(), key=lambda kv: _port_key(kv[0])):
        if not binds:
            out.append(cport)
            continue
        for b in binds:
            ip = b.get("HostIp") or "0.0.0.0"  # Docker 28's CLI: net.JoinHostPort, [::]:8080->80/tcp
            out.append(f"{'[' + ip + ']' if ':' in ip else ip}:{b['HostPort']}->{cport}")
    return ", ".join(out)


def _port_key(p: str):
    num, _, proto = p.partition("/")
    return (int(num) if num.isdigit() else 0, proto)


def _ellipsis(s: str, n: int) -> str:
    return s if len(s) <= n else s[:n - 1] + "…"


def _go_quote(s: str) -> str:
    from minidock.util.gostrconv import go_quote

    return go_quote(s)


PS_HEADERS = {"ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND", "CreatedAt": "CREATED AT",
              "RunningFor": "CREATED", "Ports": "PORTS", "State": "STATE", "Status": "STATUS",
              "Size": "SIZE", "Names": "NAMES", "Labels": "LABELS", "Mounts": "MOUNTS",
              "Networks": "NETWORKS", "LocalVolumes": "LOCAL VOLUMES", "Platform": "PLATFORM"}
PS_DEFAULT_TABLE = "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}"
_DEFAULT_COLUMNS = ("ID", "Image", "Command", "RunningFor", "Status", "Ports", "Names")


def ps_header() -> dict:
    h = dict(PS_HEADERS)
    h["Label"] = lambda *_a: "LABEL"
    return h


def _ps_command(rec: dict, trunc: bool) -> str:
    if rec["Path"]:
        cmd = " ".join([rec["Path"], *rec["Args"]])
    else:
        cmd = " ".join((rec["Config"].get("Entrypoint") or []) + (rec["Config"].get("Cmd") or []))
    return _go_quote(_ellipsis(cmd, 20) if trunc else cmd)


def _ps_image(rec: dict, trunc: bool) -> str:
    image = rec.get("ImageRef") or rec.get("Image", "")
    if trunc and image.startswith("sha256:"):
        image = image[7:19]
    return image


def _ps_size(rec: dict) -> str:
    rw, root = sizes(rec)
    return f"{human_size(rw)} (virtual {human_size(root)})"


def ps_default_table(recs: list[dict], trunc: bool = True, size: bool = False) -> str:
    """`ps` with Docker's default columns (PS_DEFAULT_TABLE, + SIZE with -s), exactly as the
    template engine prints them (every cell is a string), without it: only these columns are
    computed."""
    from minidock.cli.tabwriter import tabwrite

    cols = _DEFAULT_COLUMNS + (("Size",) if size else ())
    lines = ["\t".join(PS_HEADERS[c] for c in cols)]
    for rec in recs:
        cells = [rec["Id"][:12] if trunc else rec["Id"], _ps_image(rec, trunc), _ps_command(rec, trunc),
                 since(rec["Created"]) + " ago", status_text(rec["State"]), ports_text(rec), containers.name_of(rec)]
        if size:
            cells.append(_ps_size(rec))
        lines.append("\t".join(cells))
    return tabwrite("\n".join(lines) + "\n")


def ps_row(rec: dict, trunc: bool = True, size: bool = False):
    """Docker's ContainerContext for one container (the fields `ps --format` can use)."""
    from minidock.cli.gotemplate import Struct

    labels = rec["Config"].get("Labels") or {}
    mounts = []
    local = 0
    for m in rec.get("Mounts") or []:
        name = m.get("Name") or m.get("Source", "")
        mounts.append(_ellipsis(name, 15) if trunc else name)
        if m.get("Driver") == "local":
            local += 1
    nets = sorted((rec.get("NetworkSettings") or {}).get("Networks") or {})
    if not nets:
        mode = rec["HostConfig"].get("NetworkMode", "")
        nets = [mode] if mode in ("host", "none") else []
    row = Struct(type_name="*formatter.ContainerContext")
    row.update({
        "ID": rec["Id"][:12] if trunc else rec["Id"],
        "Image": _ps_image(rec, trunc),
        "Command": _ps_command(rec, trunc),
        "CreatedAt": go_time(rec["Created"]),
        "RunningFor": since(rec["Created"]) + " ago",
        "Ports": ports_text(rec),
        "State": rec["State"].get("Status", ""),
        "Status": status_text(rec["State"]),
        "Size": _ps_size(rec) if size else "0B",
        "Names": containers.name_of(rec),
        "Labels": ",".join(f"{k}={v}" for k, v in sorted(labels.items())),
        "Mounts": ",".join(mounts),
        "Networks": ",".join(nets),
        "LocalVolumes": str(local),
        "Platform": None,
    })
    row["Label"] = lambda name: labels.get(name, "")
    return row


def ps_json(row) -> dict:
    """`ps --format json`: Docker marshals every field as a string, keys sorted."""
    return {k: row[k] for k in sorted(row) if not callable(row[k])}


# --- ps --filter -----------------------------------------------------------------------------------
STATUSES = ("created", "restarting", "running", "removing", "paused", "exited", "dead")


def _f_name(rec, val):
    import re

    return re.search(val, "/" + containers.name_of(rec)) is not None


def _f_id(rec, val):
    import re

    return re.search(val, rec["Id"]) is not None


def _f_label(rec, val):
    labels = rec["Config"].get("Labels") or {}
    k, eq, v = val.partition("=")
    return k in labels and (not eq or labels[k] == v)


def _f_status(rec, val):
    if val not in STATUSES:
        raise InvalidArgument(f"invalid filter 'status={val}'",
                              f"Valid statuses: {', '.join(STATUSES)}.")
    st = rec["State"]
    status = "paused" if st.get("Paused") else st.get("Status", "")
    return status == val


def _f_exited(rec, val):
    try:
        code = int(val)
    except ValueError:
        raise InvalidArgument(f"invalid filter 'exited={val}'") from None
    st = rec["State"]
    return not st.get("Running") and st.get("Status") == "exited" and st.get("ExitCode") == code


def _f_ancestor(rec, val):
    if val in (rec.get("ImageRef"), rec.get("Image")) or rec.get("Image", "").startswith("sha256:" + val):
        return True
    try:
        from minidock.image.store import ImageStore

        return ImageStore().resolve(val).id == rec.get("Image")
    except Exception:  # noqa: BLE001 - an unknown image matches nothing
        return False


def _created(ref):
    return lambda: containers.load(containers.resolve(ref))["Created"]


def _f_before(rec, val):
    return rec["Created"] < containers.load(containers.resolve(val))["Created"]


def _f_since(rec, val):
    return rec["Created"] > containers.load(containers.resolve(val))["Created"]


def _f_volume(rec, val):
    return any(val in (m.get("Name"), m.get("Source"), m.get("Destination")) for m in rec.get("Mounts") or [])


def _f_network(rec, val):
    nets = (rec.get("NetworkSettings") or {}).get("Networks") or {}
    return val in nets or any(n.get("NetworkID", "").startswith(val) for n in nets.values() if isinstance(n, dict)) \
        or rec["HostConfig"].get("NetworkMode") == val


def _f_publish(rec, val):
    want = val if "/" in val else val + "/tcp"
    for cport, binds in ((rec.get("NetworkSettings") or {}).get("Ports") or {}).items():
        for b in binds or []:
            if f"{b.get('HostPort')}/{cport.partition('/')[2]}" == want:
                return True
    return False


def _f_expose(rec, val):
    want = val if "/" in val else val + "/tcp"
    return want in (rec["Config"].get("ExposedPorts") or {})


def _f_is_task(rec, val):
    return val.lower() in ("false", "0")


def _f_health(rec, val):  # selfheal (issue 11): starting, healthy, unhealthy, none
    return ((rec["State"].get("Health") or {}).get("Status") or "none") == val


# Each key's test; values of one key are OR'ed, keys are AND'ed (as Docker does). Add a key here.
PS_FILTERS = {"name": _f_name, "id": _f_id, "label": _f_label, "status": _f_status, "exited": _f_exited,
              "ancestor": _f_ancestor, "before": _f_before, "since": _f_since, "volume": _f_volume,
              "network": _f_network, "publish": _f_publish, "expose": _f_expose, "is-task": _f_is_task,
              "health": _f_health}


def parse_filters(items, valid: dict) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for f in items:
        key, eq, val = f.partition("=")
        if not eq:
            raise InvalidArgument(f"bad format of filter (expected name=value): {f!r}".replace("'", ""))
        if key not in valid:  # a daemon error for Docker's client: exit 1
            raise InvalidArgument(f"invalid filter '{key}'", exit_code=1)
        out.setdefault(key, []).append(val)
    return out


def matches(rec: dict, filters: dict[str, list[str]], table: dict = PS_FILTERS) -> bool:
    for key, vals in filters.items():
        test = table[key]
        if key == "label":
            if not all(test(rec, v) for v in vals):  # every label filter must match
                return False
        elif not any(test(rec, v) for v in vals):
            return False
    return True
