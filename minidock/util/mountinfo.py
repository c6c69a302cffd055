"""The one /proc/PID/mountinfo parser (proc(5)): every line as a :class:`Mount`.

    36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
    (1)(2)(3)   (4)   (5)      (6)      (7)    (8) (9)   (10)         (11)

Paths are unescaped (the kernel writes a space as \\040).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_OCTAL = re.compile(r"\\([0-7]{3})")


def unescape(field: str) -> str:
    return _OCTAL.sub(lambda m: chr(int(m.group(1), 8)), field)


@dataclass(frozen=True)
class Mount:
    mount_id: int
    parent_id: int
    device: str  # major:minor
    root: str  # the mount's root within its filesystem
    target: str  # the mount point
    options: str  # per-mount options (rw,nosuid,...)
    optional: tuple[str, ...]  # shared:N, master:N, ...
    fstype: str
    source: str
    super_options: str  # per-superblock options (for cgroup v1: the controllers)


def parse(text: str) -> list[Mount]:
    out = []
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        fields, rfields = left.split(), right.split()
        if not sep or len(fields) < 6 or len(rfields) < 2:
            continue
        out.append(Mount(int(fields[0]), int(fields[1]), fields[2], unescape(fields[3]),
                         unescape(fields[4]), fields[5], tuple(fields[6:]), rfields[0],
                         unescape(rfields[1]), rfields[2] if len(rfields) > 2 else ""))
    return out


def read(pid: int | str = "self") -> list[Mount]:
    with open(f"/proc/{pid}/mountinfo") as f:
        return parse(f.read())
