"""A container's ID maps and the translation between host and container IDs.

The maps are kept in the record as podman shows them (HostConfig.IDMappings: {"UidMap":
["0:100000:65536"], "GidMap": [...]}, each "CONTAINER_ID:HOST_ID:AMOUNT"). The engine makes the
user namespace from them (engine/userns.py); `cp`, `commit` and `export` translate ownership with
them, as Docker's archive code does with its IdentityMapping: what a container's root writes is
owned by the mapped host uid on disk, and by 0 in a committed layer or an exported tar.
"""

from __future__ import annotations

from minidock.errors import InvalidArgument

MAX_ID = 4294967295  # (uint32)-1 is never a valid ID
OVERFLOW = 65534     # what an unmapped ID shows as (the kernel's overflowuid)


def parse_map(text: str, flag: str = "--uidmap") -> list[tuple[int, int, int]]:
    """`C:H:N[,C:H:N...]` -> [(container, host, amount)] (containers/storage's syntax and message)."""
    out = []
    for part in text.split(","):
        fields = part.split(":")
        if len(fields) != 3 or not all(f.isdigit() for f in fields) or max(map(int, fields)) > MAX_ID:
            what = "UID" if flag == "--uidmap" else "GID"
            raise InvalidArgument(f'initializing ID mappings: {what} setting is malformed expected '
                                  f'["uint32:uint32:uint32"]: ["{text}"]',
                                  f"Use {flag} CONTAINER_ID:HOST_ID:AMOUNT, e.g. {flag} 0:100000:65536.")
        c, h, n = (int(f) for f in fields)
        out.append((c, h, n))
    return out


def _shift(maps, i: int, frm: int, to: int) -> int | None:
    for m in maps:
        if m[frm] <= i < m[frm] + m[2]:
            return m[to] + i - m[frm]
    return None


class IDMap:
    def __init__(self, uids: list[tuple[int, int, int]], gids: list[tuple[int, int, int]]):
        self.uids, self.gids = uids, gids

    @classmethod
    def of(cls, rec: dict) -> IDMap | None:
        """The record's maps, or None: the container has no user namespace."""
        m = (rec.get("HostConfig") or {}).get("IDMappings") or {}
        if not m.get("UidMap"):
            return None
        return cls([x for t in m["UidMap"] for x in parse_map(t)],
                   [x for t in m.get("GidMap") or m["UidMap"] for x in parse_map(t)])

    def to_host(self, uid: int, gid: int) -> tuple[int, int]:
        """Container IDs -> host IDs (-1 where unmapped: chown leaves that one alone)."""
        h = _shift(self.uids, uid, 0, 1), _shift(self.gids, gid, 0, 1)
        return (-1 if h[0] is None else h[0]), (-1 if h[1] is None else h[1])

    def to_container(self, uid: int, gid: int) -> tuple[int, int]:
        """Host IDs -> container IDs (the overflow ID where unmapped, as the container sees it)."""
        c = _shift(self.uids, uid, 1, 0), _shift(self.gids, gid, 1, 0)
        return (OVERFLOW if c[0] is None else c[0]), (OVERFLOW if c[1] is None else c[1])

    def root(self) -> tuple[int, int]:
        """The host IDs of the container's root."""
        return self.to_host(0, 0)
