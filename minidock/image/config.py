"""OCI image configs: a new one for `import`/`commit`, and Dockerfile-style `--change` edits.

    --change 'CMD ["sh"]'   --change 'ENV A=1 B=2'   --change 'EXPOSE 80/tcp'
    --change 'ENTRYPOINT /bin/app' (shell form -> ["/bin/sh", "-c", "/bin/app"])

Docker accepts CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, ONBUILD, USER, VOLUME, WORKDIR, STOPSIGNAL.
"""

from __future__ import annotations

import json
import platform as _platform
import shlex

from minidock.errors import InvalidArgument

ALLOWED = ("CMD", "ENTRYPOINT", "ENV", "EXPOSE", "LABEL", "ONBUILD", "USER", "VOLUME", "WORKDIR", "STOPSIGNAL")


def host_platform() -> tuple[str, str]:
    m = _platform.machine()
    arch = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386", "ppc64le": "ppc64le",
            "s390x": "s390x", "riscv64": "riscv64"}.get(m, m)
    return "linux", arch


def new_config(diff_ids: list[str], config: dict, *, created_by: str, comment: str = "",
               platform: str | None = None, history: list[dict] | None = None) -> dict:
    from minidock.util import now

    os_, arch = host_platform()
    variant = None
    if platform:
        parts = platform.split("/")
        os_, arch = parts[0], parts[1] if len(parts) > 1 else arch
        variant = parts[2] if len(parts) > 2 else None
    created = now()
    cfg = {
        "created": created,
        "architecture": arch,
        "os": os_,
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": list(diff_ids)},
        "history": list(history or []) + [{"created": created, "created_by": created_by, "comment": comment}],
    }
    if variant:
        cfg["variant"] = variant
    return cfg


def _json_or_shell(arg: str) -> list[str]:
    arg = arg.strip()
    if arg.startswith("["):
        try:
            v = json.loads(arg)
        except ValueError:
            v = None
        if isinstance(v, list) and all(isinstance(x, str) for x in v):
            return v
    return ["/bin/sh", "-c", arg]


def _pairs(arg: str, what: str) -> dict[str, str]:
    """ENV/LABEL: `K=V K2="v 2"` or the legacy `K V`."""
    words = shlex.split(arg)
    if not words:
        raise InvalidArgument(f"{what} requires at least one argument")
    if "=" not in words[0]:
        return {words[0]: arg.strip()[len(words[0]):].strip()}
    out = {}
    for w in words:
        k, sep, v = w.partition("=")
        if not sep or not k:
            raise InvalidArgument(f"{what} names can not be blank and need a value: {w!r}")
        out[k] = v
    return out


def apply_changes(config: dict, changes: list[str]) -> dict:
    """Apply Dockerfile instructions to an image's `config` section (returns a new dict)."""
    cfg = json.loads(json.dumps(config or {}))
    for change in changes:
        instr, _, arg = change.strip().partition(" ")
        instr = instr.upper()
        if instr not in ALLOWED:
            raise InvalidArgument(f"{instr} is not a valid change command",
                                  "Valid: " + ", ".join(ALLOWED))
        if instr == "CMD":
            cfg["Cmd"] = _json_or_shell(arg)
        elif instr == "ENTRYPOINT":
            cfg["Entrypoint"] = _json_or_shell(arg)
        elif instr == "ENV":
            env = dict(e.partition("=")[::2] for e in cfg.get("Env") or [])
            env.update(_pairs(arg, "ENV"))
            cfg["Env"] = [f"{k}={v}" for k, v in env.items()]
        elif instr == "LABEL":
            cfg["Labels"] = {**(cfg.get("Labels") or {}), **_pairs(arg, "LABEL")}
        elif instr == "EXPOSE":
            ports = dict(cfg.get("ExposedPorts") or {})
            for p in arg.split():
                if not p.split("/")[0].isdigit():
                    raise InvalidArgument(f"invalid containerPort: {p}")
                ports[p if "/" in p else f"{p}/tcp"] = {}
            cfg["ExposedPorts"] = ports
        elif instr == "VOLUME":
            vols = dict(cfg.get("Volumes") or {})
            for v in (_json_or_shell(arg) if arg.strip().startswith("[") else arg.split()):
                vols[v] = {}
            cfg["Volumes"] = vols
        elif instr == "USER":
            cfg["User"] = arg.strip()
        elif instr == "WORKDIR":
            cfg["WorkingDir"] = arg.strip()
        elif instr == "STOPSIGNAL":
            cfg["StopSignal"] = arg.strip()
        elif instr == "ONBUILD":
            cfg["OnBuild"] = [*(cfg.get("OnBuild") or []), arg.strip()]
    return cfg
