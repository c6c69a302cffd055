"""`minidock-runtime`'s entry point: `state`, `start`, `kill` and `delete` without the click CLI.

Engines call `state ID` in loops (containerd's shim after every event, conmon, CRI-O), so it
must cost little more than the interpreter's start: importing click alone costs ~25 ms here, and
minidock.runtime.process (the kernel layer, the init, dataclasses) as much again. This module
imports only os, json and minidock.util, answers the common case

    minidock-runtime [--root DIR] [--log FILE] [--log-format F] [--debug] [--systemd-cgroup] state ID

itself -- the same bytes `runtime_cli.state` prints, from the same state.json -- and hands every
case it cannot decide cheaply (an error, an old state file, a systemd cgroup path) to the click
CLI in runtime_cli.py. `start ID`, `kill [-a] ID [SIG]` and `delete [-f] ID` skip click too (~25
ms each: an engine calls create, start, delete for every container): they run do_start/do_kill/
do_delete (runtime_ops.py), the very functions the click commands call, with the same error
lines (fail()). Any
other command line or flag (--explain, --help, `--`) goes to the click CLI.
test_oci_runtime.py's test_*fast_path* prove both paths print the same.
"""

from __future__ import annotations

import os
import sys

from minidock.cli.runtime_ops import Ctx, _create, do_delete, do_kill, do_start, error_text, fail
from minidock.errors import MinidockError

# global options the fast path understands: those with a value, and flags
_VALUE_OPTS = {"--root", "--log", "--log-format"}
_FLAGS = {"--debug", "--systemd-cgroup"}


def main(argv=None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    parsed = _parse(args)
    if parsed is None:
        return _full(args)
    ctx, verb, pos, flags = parsed
    if verb == "state":
        try:
            out = _state(ctx.root, pos[0])
        except Exception:  # noqa: BLE001 - anything unusual: the click CLI says it (and logs it)
            out = None
        if out is None:
            return _full(args)
        sys.stdout.write(out)
        sys.stdout.flush()
        os._exit(0)  # nothing to tear down; the interpreter's own teardown would cost more
    try:
        if verb == "create":
            _create(ctx, pos[0], flags.get("bundle", "."), flags.get("console-socket"), flags.get("pid-file"),
                    "no-pivot" in flags, int(flags.get("preserve-fds", 0)))
        elif verb == "start":
            do_start(ctx.root, pos[0])
        elif verb == "kill":
            do_kill(ctx.root, pos[0], pos[1] if len(pos) > 1 else "SIGTERM", "all" in flags)
        else:
            do_delete(ctx.root, pos[0], "force" in flags)
    except MinidockError as e:
        fail(ctx, error_text(e))
    except Exception as e:  # a bug: one line for the engine's log, the traceback with --debug
        if ctx.debug:
            raise
        fail(ctx, error_text(e))
    sys.exit(0)


def _full(args: list[str]) -> None:
    if sys.flags.no_site:  # started `python3 -I -S` (install.sh's launcher): click lives in site-packages
        import site

        site.main()
    from minidock.cli.runtime_cli import main as full

    full(args)


# verb -> (its flags {spelling: name}, its options with a value {spelling: name}, positionals: min, max),
# as the click commands of runtime_cli.py declare them
_CREATE_VALUES = {"-b": "bundle", "--bundle": "bundle", "--console-socket": "console-socket",
                  "--pid-file": "pid-file", "--preserve-fds": "preserve-fds"}
_VERBS = {"state": ({}, {}, 1, 1), "start": ({}, {}, 1, 1),
          "kill": ({"-a": "all", "--all": "all"}, {}, 1, 2),
          "delete": ({"-f": "force", "--force": "force"}, {}, 1, 1),
          "create": ({"--no-pivot": "no-pivot", "--no-new-keyring": "no-new-keyring"}, _CREATE_VALUES, 1, 1)}


def _parse(args: list[str]) -> tuple[Ctx, str, list[str], dict] | None:
    """(options, verb, positionals, flags) for the command lines handled here, else None."""
    opts: dict[str, str] = {}
    i = 0
    while i < len(args) and args[i].startswith("-"):
        name, eq, value = args[i].partition("=")
        if name in _VALUE_OPTS:
            if not eq:
                i += 1
                if i >= len(args):
                    return None
                value = args[i]
            opts[name] = value
        elif name not in _FLAGS or eq:
            return None
        i += 1
    if i >= len(args) or args[i] not in _VERBS or opts.get("--log-format", "text") not in ("text", "json"):
        return None
    verb = args[i]
    bools, values, least, most = _VERBS[verb]
    pos, flags = [], {}
    rest = args[i + 1:]
    j = 0
    while j < len(rest):
        a = rest[j]
        name, eq, value = a.partition("=") if a.startswith("--") else (a, "", "")
        if a in bools:
            flags[bools[a]] = True
        elif name in values and (eq or j + 1 < len(rest)):
            if not eq:
                j += 1
                value = rest[j]
            if not value or (value.startswith("-") and not eq):
                return None
            flags[values[name]] = value
        elif a.startswith("-") or not a:
            return None  # another flag, `--`, a negative number: the click CLI decides
        else:
            pos.append(a)
        j += 1
    if not least <= len(pos) <= most or not flags.get("preserve-fds", "0").isdigit():
        return None
    root = os.path.abspath(opts.get("--root") or os.environ.get("MINIDOCK_RUNTIME_ROOT") or "/run/minidock-runtime")
    ctx = Ctx(root, opts.get("--log"), opts.get("--log-format", "text"), "--debug" in args[:i],
              "--systemd-cgroup" in args[:i])
    return ctx, verb, pos, flags


def _state(root: str, cid: str) -> str | None:
    from minidock.util import jsonfast as json  # (the json package imports re: ~4 ms)
    from minidock.util import proc_start_time

    if "/" in cid or cid in (".", ".."):
        return None
    with open(os.path.join(root, cid, "state.json")) as f:  # missing: the click CLI's NotFound
        data = json.loads(f.read())
    spec = data.get("spec")
    cgroup = data.get("cgroup", "")
    if spec is None or "ociVersion" not in spec or ":" in cgroup:
        return None
    pid, init_start = data["pid"], data.get("init_start")
    if pid and init_start and proc_start_time(pid) == init_start:
        status = "paused" if cgroup and _frozen(cgroup, data.get("cgroup_layout")) else \
            "running" if data.get("started", False) else "created"
    else:
        status = "stopped"
    st = {"ociVersion": spec["ociVersion"], "id": cid, "status": status,
          "pid": pid if status != "stopped" else 0, "bundle": data["bundle"],
          "annotations": spec.get("annotations", {}),
          "rootfs": os.path.join(data["bundle"], spec.get("root", {}).get("path", "rootfs")),
          "created": data.get("created", "")}
    return json.dumps(st, indent=2) + "\n"


def _frozen(cgroup: str, layout: dict | None = None) -> bool:
    """As the cgroup drivers' frozen(): the driver chosen as cgroups.hierarchy.probe chooses it
    (v2 when cgroup2 holds memory and pids or no v1 hierarchy is mounted), its freezer file read.
    The probe recorded at create (state.json's cgroup_layout) spares reading mountinfo."""
    path = os.path.normpath("/" + cgroup).lstrip("/")
    if layout and layout.get("version") == 2 and (layout.get("mounts") or {}).get("v2"):
        return _read(os.path.join(layout["mounts"]["v2"], path, "cgroup.freeze")) == "1"
    if layout and layout.get("version") == 1 and isinstance((layout.get("mounts") or {}).get("v1"), dict):
        freezer = layout["mounts"]["v1"].get("freezer")
        return bool(freezer) and _read(os.path.join(freezer, path, "freezer.state")) == "FROZEN"
    v2, freezer, v1 = None, None, False
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            sep = fields.index("-")
            fstype, target = fields[sep + 1], fields[4].replace("\\040", " ")
            if fstype == "cgroup2":
                if v2 is None or target == "/sys/fs/cgroup":
                    v2 = target
            elif fstype == "cgroup":
                opts = fields[sep + 3].split(",")
                v1 = v1 or any(o not in _NOT_CONTROLLERS and "=" not in o for o in opts)
                if "freezer" in opts and freezer is None:
                    freezer = target
    if v2 and (not v1 or _controllers(v2) >= {"memory", "pids"}):
        return _read(os.path.join(v2, path, "cgroup.freeze")) == "1"
    return bool(freezer) and _read(os.path.join(freezer, path, "freezer.state")) == "FROZEN"


_NOT_CONTROLLERS = {"rw", "ro", "xattr", "noprefix", "clone_children", "cpuset_v2_mode", "none"}


def _controllers(root: str) -> set[str]:
    return set(_read(os.path.join(root, "cgroup.controllers")).split())


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return ""


if __name__ == "__main__":
    main()
