"""A per-container journal of host resources, written *before* each is created.

Removal — and clean-up after minidock itself crashed — reads the journal backwards and undoes
exactly what was recorded, and nothing else. Undoing something that is already gone is fine
(every undo handler must be idempotent): a crash can happen between the journal line and the
creation it announces.

Each line is one JSON object: {"kind": "...", ...data}. Packages register an undo handler for
the kinds they create with :func:`register`, e.g. the network package registers "veth",
"nft", "ipam" and "port"; the engine registers "mount" and "cgroup" (engine/journal_handlers.py).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

from minidock.util import fsutil

_HANDLERS: dict[str, Callable[[dict], None]] = {}
_LAZY: dict[str, str] = {
    # kind -> module that registers its handler on import (keeps pyroute2 out of the fast path)
    "mount": "minidock.engine.journal_handlers",
    "cgroup": "minidock.engine.journal_handlers",
    "veth": "minidock.network",
    "nft": "minidock.network",
    "ipam": "minidock.network",
    "port": "minidock.network",
}


_ON_DISK = {"ipam"}  # survives a reboot: an address lease in the network store


def register(kind: str, undo: Callable[[dict], None]) -> None:
    _HANDLERS[kind] = undo


def _handler(kind: str) -> Callable[[dict], None] | None:
    if kind not in _HANDLERS and kind in _LAZY:
        import importlib

        importlib.import_module(_LAZY[kind])
    return _HANDLERS.get(kind)


class Journal:
    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def record(self, kind: str, **data) -> None:
        """Append one entry before the resource exists.

        The write reaches the page cache before the resource is made, so a crash of minidock
        never loses it. Only a crash of the whole machine could, and then mounts, cgroups, links
        and nft rules are gone too: just the kinds kept on disk (_ON_DISK) are fsynced (~1.5 ms
        each here, paid by every `run`).
        """
        line = json.dumps({"kind": kind, **data}, sort_keys=True) + "\n"
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, line.encode())
            if kind in _ON_DISK:
                os.fsync(fd)
        finally:
            os.close(fd)

    def entries(self) -> list[dict]:
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return []
        out = []
        for line in text.splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                continue  # a torn last line after a crash: the resource was never made
        return out

    def undo(self, kinds: set[str] | None = None) -> list[str]:
        """Undo entries (newest first), optionally only of some kinds; returns the errors.

        Entries undone are removed from the journal; ones that failed stay for the next try.
        """
        errors: list[str] = []
        keep: list[dict] = []
        for entry in reversed(self.entries()):
            if kinds is not None and entry["kind"] not in kinds:
                keep.append(entry)
                continue
            handler = _handler(entry["kind"])
            if handler is None:
                errors.append(f"no undo handler for {entry['kind']}")
                keep.append(entry)
                continue
            try:
                handler(entry)
            except Exception as e:  # noqa: BLE001 - report, keep the entry, go on
                errors.append(f"undo {entry['kind']}: {e}")
                keep.append(entry)
        self._rewrite(list(reversed(keep)))
        return errors

    def _rewrite(self, entries: list[dict]) -> None:
        if not entries:
            try:
                self.path.unlink()
            except FileNotFoundError:
                pass
            return
        fsutil.atomic_write(self.path, "".join(json.dumps(e, sort_keys=True) + "\n" for e in entries), 0o600)
