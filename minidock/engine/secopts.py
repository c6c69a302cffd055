"""`--security-opt`: parsed and checked at create time, as Docker's daemon does, applied to the
OCI spec by bundle.py.

    seccomp=unconfined | builtin | PROFILE.json   (the file is read at create and kept in the
                                                   record as JSON, as Docker keeps it)
    no-new-privileges[=true|false]                (minidock's default is true, stricter than
                                                   Docker's false: see docs/security.md)
    apparmor=PROFILE | unconfined                 (applied where AppArmor is enabled, else refused)
    label=disable | user:U | role:R | type:T | level:L   (SELinux: same rule)
    systempaths=unconfined                        (no masked or read-only /proc and /sys paths)
    writable-cgroups=false                        (true is refused: minidock keeps /sys/fs/cgroup
                                                   read-only)

Anything else is refused with Docker's message (`invalid --security-opt 2: "foo=bar"`). The
``key:value`` spelling Docker deprecated is still accepted, as Docker does.
"""

from __future__ import annotations

import json
import os

from minidock.errors import InvalidArgument, MinidockError

SELINUX_DEFAULT = ["system_u", "system_r", "container_t", "s0"]


class SecurityOpts:
    """--security-opt, parsed. (A plain class: `minidock run` imports this module, and dataclasses
    costs ~4 ms to import, inspect and ast with it.)"""

    def __init__(self, seccomp: str | None = None, no_new_privileges: bool | None = None,
                 apparmor: str | None = None, label: list[str] | None = None,
                 systempaths_unconfined: bool = False):
        self.seccomp = seccomp  # None: the default profile; "unconfined"; or a profile as JSON
        self.no_new_privileges = no_new_privileges
        self.apparmor = apparmor
        self.label = [] if label is None else label
        self.systempaths_unconfined = systempaths_unconfined

    def __eq__(self, other) -> bool:
        return type(other) is SecurityOpts and vars(self) == vars(other)

    __hash__ = None

    def __repr__(self) -> str:
        return "SecurityOpts(" + ", ".join(f"{k}={v!r}" for k, v in vars(self).items()) + ")"

    def seccomp_profile(self) -> dict | None:
        if self.seccomp in (None, "builtin"):
            return None
        return json.loads(self.seccomp)


def _split(opt: str) -> tuple[str, str]:
    for sep in ("=", ":"):
        k, s, v = opt.partition(sep)
        if s:
            return k, v
    raise InvalidArgument(f'invalid --security-opt 1: "{opt}"',
                          "Valid options: seccomp=, apparmor=, label=, no-new-privileges, systempaths=unconfined.")


def _bool(opt: str, v: str) -> bool:
    low = v.lower()
    if low in ("1", "t", "true"):
        return True
    if low in ("0", "f", "false"):
        return False
    raise InvalidArgument(f'invalid --security-opt 2: "{opt}"')


def apparmor_enabled() -> bool:
    try:
        with open("/sys/module/apparmor/parameters/enabled") as f:
            return f.read().strip() == "Y" and os.path.isdir("/sys/kernel/security/apparmor")
    except OSError:
        return False


def selinux_enabled() -> bool:
    return os.path.exists("/sys/fs/selinux/enforce")


def parse(opts: list[str], *, read_files: bool = False) -> SecurityOpts:
    """Check every option (Docker's daemon rules). With read_files (at create), a seccomp
    profile path is read and validated; the record then holds its JSON."""
    out = SecurityOpts()
    for opt in opts or []:
        if opt == "no-new-privileges":
            out.no_new_privileges = True
            continue
        if opt == "disable":
            out.label.append("disable")
            continue
        k, v = _split(opt)
        if k == "seccomp":
            if v in ("unconfined", "builtin"):
                out.seccomp = v
            elif v.lstrip().startswith("{"):
                try:
                    json.loads(v)
                except ValueError:
                    raise InvalidArgument("decoding seccomp profile failed: not valid JSON") from None
                out.seccomp = v
            elif read_files:
                from minidock.runtime import seccomp as sc

                out.seccomp = json.dumps(sc.load_profile_file(v), separators=(",", ":"))
            else:
                raise InvalidArgument(f"seccomp profile {v!r} was not read at create time")
        elif k == "no-new-privileges":
            out.no_new_privileges = _bool(opt, v)
        elif k == "apparmor":
            out.apparmor = v
        elif k == "label":
            out.label.append(v)
        elif k == "systempaths":
            if v != "unconfined":
                raise InvalidArgument(f'invalid --security-opt 2: "{opt}"', 'Only "systempaths=unconfined".')
            out.systempaths_unconfined = True
        elif k == "writable-cgroups":
            if _bool(opt, v):
                raise MinidockError("--security-opt writable-cgroups=true is not supported by minidock",
                                    "The container's /sys/fs/cgroup stays read-only.")
        else:
            raise InvalidArgument(f'invalid --security-opt 2: "{opt}"',
                                  "Valid options: seccomp=, apparmor=, label=, no-new-privileges, "
                                  "systempaths=unconfined.")
    if out.apparmor and out.apparmor != "unconfined" and not apparmor_enabled():
        raise MinidockError(f"--security-opt apparmor={out.apparmor}: AppArmor is not enabled on this host",
                            "Drop the option, or run on a host with AppArmor (and the profile loaded).")
    if out.apparmor and out.apparmor != "unconfined" and apparmor_enabled():
        try:
            with open("/sys/kernel/security/apparmor/profiles") as f:
                loaded = {line.split(" (")[0] for line in f}
        except OSError:
            loaded = set()
        if out.apparmor not in loaded:
            raise MinidockError(f"AppArmor profile {out.apparmor!r} is not loaded",
                                f"Load it first: apparmor_parser -r /etc/apparmor.d/{out.apparmor}")
    labels = [v for v in out.label if v != "disable"]
    for v in labels:
        kind, sep, _ = v.partition(":")
        if not sep or kind not in ("user", "role", "type", "level", "filetype"):
            raise InvalidArgument(f'invalid --security-opt 2: "label={v}"',
                                  "label= takes disable, user:U, role:R, type:T or level:L.")
    if labels and not selinux_enabled():
        raise MinidockError(f"--security-opt label={labels[0]}: SELinux is not enabled on this host",
                            "Drop the option (or use label=disable), or run on a host with SELinux.")
    return out


def selinux_label(opts: SecurityOpts) -> str | None:
    """The process label for `label=user:/role:/type:/level:` (Docker's defaults otherwise)."""
    parts = list(SELINUX_DEFAULT)
    given = False
    for v in opts.label:
        kind, _, val = v.partition(":")
        idx = {"user": 0, "role": 1, "type": 2, "level": 3}.get(kind)
        if idx is not None:
            parts[idx] = val
            given = True
    return ":".join(parts) if given and "disable" not in opts.label else None


def for_record(opts: list[str]) -> list[str]:
    """At create: every option checked; `seccomp=PATH` becomes `seccomp=<the profile's JSON>`
    (Docker's CLI does the same), so the container keeps its profile if the file changes."""
    parse(opts, read_files=True)
    out = []
    for opt in opts or []:
        k, sep, v = opt.partition("=")
        if k == "seccomp" and sep and v not in ("unconfined", "builtin") and not v.lstrip().startswith("{"):
            from minidock.runtime import seccomp as sc

            opt = "seccomp=" + json.dumps(sc.load_profile_file(v), separators=(",", ":"))
        out.append(opt)
    return out
