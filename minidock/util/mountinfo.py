"""The one /proc/PID/mountinfo parser (proc(5)): every line as a :class:`Mount`.

    36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
    (1)(2)(3)   (4)   (5)      (6)      (7)    (8) (9)   (10)         (11)

Paths are unescaped (the kernel writes a space as \\040).
"""

from __future__ import annotations

# (no re, no dataclasses: the runtime's short-lived processes read mountinfo; those two imports
# cost ~8 ms, the parsing of a whole table ~0.3 ms)


def unescape(field: str) -> str:
    """\\ooo (three octal digits) -> the character; anything else stays."""
    if "\\" not in field:
        return field
    out, i = [], 0
    while True:
        j = field.find("\\", i)
        if j < 0:
            out.append(field[i:])
            return "".join(out)
        octal = field[j + 1:j + 4]
        if len(octal) == 3 and all(c in "01234567" for c in octal):
            out += [field[i:j], chr(int(octal, 8))]
            i = j + 4
        else:
            out.append(field[i:j + 1])
            i = j + 1


class Mount(tuple):
    """One line, as a named (immutable, hashable) tuple."""

    __slots__ = ()
    _FIELDS = ("mount_id", "parent_id", "device", "root", "target", "options", "optional", "fstype",
               "source", "super_options")

    def __new__(cls, mount_id: int, parent_id: int, device: str, root: str, target: str, options: str,
                optional: tuple, fstype: str, source: str, super_options: str):
        return tuple.__new__(cls, (mount_id, parent_id, device, root, target, options, optional, fstype,
                                   source, super_options))

    mount_id = property(lambda self: self[0])
    parent_id = property(lambda self: self[1])
    device = property(lambda self: self[2])  # major:minor
    root = property(lambda self: self[3])  # the mount's root within its filesystem
    target = property(lambda self: self[4])  # the mount point
    options = property(lambda self: self[5])  # per-mount options (rw,nosuid,...)
    optional = property(lambda self: self[6])  # shared:N, master:N, ...
    fstype = property(lambda self: self[7])
    source = property(lambda self: self[8])
    super_options = property(lambda self: self[9])  # per-superblock options (for cgroup v1: the controllers)

    def __repr__(self) -> str:
        return "Mount(" + ", ".join(f"{n}={v!r}" for n, v in zip(self._FIELDS, self)) + ")"


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
