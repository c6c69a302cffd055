"""Container records: what `inspect` shows, kept on disk, one directory per container.

    containers/<id>/config.json   the record (Docker's inspect shape, minus State)
    containers/<id>/state.json    State (written by whoever supervises the container)
    containers/.names/<name>      a symlink to the id: creating it is the atomic name claim

A record is a plain dict with Docker's field names, so `inspect` is a json.dumps away. State is
kept apart because the monitor rewrites it while the CLI may rewrite the config (rename, update).
"""

from __future__ import annotations

import os

from minidock import paths
from minidock.errors import Conflict, InvalidArgument, NotFound
from minidock.util import jsonfast, now

TYPE_CHECKING = False  # (typing, pathlib, contextlib, json and the journal cost `ps` ~15 ms to import)
if TYPE_CHECKING:
    from pathlib import Path

    from minidock.state.journal import Journal

ZERO_TIME = "0001-01-01T00:00:00Z"
_HEX = frozenset("0123456789abcdef")


def _root() -> Path:
    return paths.containers()


def cdir(cid: str) -> Path:
    if len(cid) != 64 or not _HEX.issuperset(cid):  # an ID becomes a path: 64 hex digits only
        raise NotFound(f"No such container: {cid[:80]}")
    return _root() / cid


def record_file(cid: str, name: str) -> str:
    """cdir(cid)/name as a plain string (no pathlib: `ps`, `inspect` and `stop` never import it)."""
    return _file(cid, name)


def _file(cid: str, name: str) -> str:
    """cdir(cid)/name as a plain string: `ps` reads two files per container, and building
    pathlib paths for them cost more than reading them (~0.1 ms per container)."""
    if len(cid) != 64 or not _HEX.issuperset(cid):
        raise NotFound(f"No such container: {cid[:80]}")
    r = os.environ.get("MINIDOCK_ROOT", paths.DEFAULT_ROOT)  # what paths.containers() is made from
    base = _ROOTS.get(r) or _ROOTS.setdefault(r, paths.containers_str())
    return os.path.join(base, cid, name)


_ROOTS: dict[str, str] = {}  # MINIDOCK_ROOT -> str(paths.containers())


def _names_dir() -> Path:
    return _root() / ".names"


def _write_json(path: Path, data) -> None:
    from minidock.util import fsutil

    fsutil.atomic_write_json(path, data)  # one line: the C encoder (indent= would use the slow Python one)


# --- names ----------------------------------------------------------------------------------------
def claim_name(name: str, cid: str) -> None:
    d = _names_dir()
    d.mkdir(parents=True, exist_ok=True)
    try:
        os.symlink(cid, d / name)
    except FileExistsError:
        other = os.readlink(d / name)
        if len(other) == 64 and _HEX.issuperset(other) and (cdir(other) / "config.json").exists():
            raise Conflict(f'Conflict. The container name "/{name}" is already in use by container '
                           f'"{other}".', "You have to remove (or rename) that container to be able "
                           "to reuse that name.") from None
        os.unlink(d / name)  # a leftover of a crash: the container is gone
        os.symlink(cid, d / name)


def release_name(name: str, cid: str) -> None:
    link = _names_dir() / name
    try:
        if os.readlink(link) == cid:
            os.unlink(link)
    except OSError:
        pass


def taken_names() -> set[str]:
    d = _names_dir()
    return set(os.listdir(d)) if d.is_dir() else set()


# --- records --------------------------------------------------------------------------------------
def new_record(*, image_ref: str, image_id: str, name: str | None, config: dict, host_config: dict) -> dict:
    """Allocate an ID and a name and write the record; the caller fills in the rest later."""
    from minidock.state import names

    cid = names.new_id()
    name = names.check_name(name) if name else names.random_name(taken_names())
    _root().mkdir(parents=True, exist_ok=True)
    claim_name(name, cid)
    d = cdir(cid)
    try:
        d.mkdir(mode=0o700)
        rec = {
            "Id": cid,
            "Created": now(),
            "Path": "",
            "Args": [],
            "Name": "/" + name,
            "Image": image_id,
            "ImageRef": image_ref,
            "RestartCount": 0,
            "Driver": "overlay",
            "Platform": "linux",
            "MountLabel": "",
            "ProcessLabel": "",
            "AppArmorProfile": "",
            "HostnamePath": str(d / "hostname"),
            "HostsPath": str(d / "hosts"),
            "ResolvConfPath": str(d / "resolv.conf"),
            "LogPath": str(d / "ctr.log"),
            "Config": config,
            "HostConfig": host_config,
            "Mounts": [],
            "NetworkSettings": {"Networks": {}, "Ports": {}, "IPAddress": "", "Gateway": "",
                                "MacAddress": "", "SandboxKey": ""},
            "GraphDriver": {"Name": "overlay", "Data": {
                "LowerDir": "", "UpperDir": str(d / "upper"), "WorkDir": str(d / "work"),
                "MergedDir": str(d / "merged")}},
        }
        save(rec)
        save_state(cid, initial_state())
    except BaseException:
        release_name(name, cid)
        paths.remove_tree(d)
        raise
    return rec


def initial_state() -> dict:
    return {"Status": "created", "Running": False, "Paused": False, "Restarting": False,
            "OOMKilled": False, "Dead": False, "Pid": 0, "ExitCode": 0, "Error": "",
            "StartedAt": ZERO_TIME, "FinishedAt": ZERO_TIME}


def save(rec: dict) -> None:
    _write_json(_file(rec["Id"], "config.json"), rec)


def load(cid: str) -> dict:
    try:
        return jsonfast.loads(_read(_file(cid, "config.json")))
    except FileNotFoundError:
        raise NotFound(f"No such container: {cid}") from None


def load_state(cid: str) -> dict:
    try:
        return jsonfast.loads(_read(_file(cid, "state.json")))
    except FileNotFoundError:
        return initial_state()


def _read(path: str) -> str:
    """A record file's text (JSON is ASCII), read with plain system calls: a Python file object
    costs more than the read (`ps` reads two records per container)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        data = os.read(fd, 1 << 16)
        if len(data) == 1 << 16:  # (a big record: the rest)
            parts = [data]
            while data:
                data = os.read(fd, 1 << 16)
                parts.append(data)
            data = b"".join(parts)
    finally:
        os.close(fd)
    return data.decode()


def save_state(cid: str, state: dict) -> None:
    _write_json(_file(cid, "state.json"), state)


def update_state(cid: str, **changes) -> dict:
    with lock(cid):
        st = load_state(cid)
        st.update(changes)
        save_state(cid, st)
        return st


def lock(cid: str):
    """An exclusive lock on one container's state (between CLI, monitor and concurrent CLIs):
    `with containers.lock(cid): ...`."""
    from minidock.util import fsutil

    return fsutil.flock(_file(cid, "lock"))


def all_ids(*, complete: bool = True) -> list[str]:
    """The containers' IDs; ``complete=False`` skips the check that each has its record yet
    (for callers that read the record anyway and skip a NotFound: `ps`)."""
    root = paths.containers_str()
    try:
        entries = os.listdir(root)
    except (FileNotFoundError, NotADirectoryError):
        return []
    return [e for e in entries if len(e) == 64 and _HEX.issuperset(e) and (
        not complete or os.path.exists(os.path.join(root, e, "config.json")))]


def resolve(ref: str) -> str:
    """A name, a full ID or a unique ID prefix -> the full ID."""
    if not ref:
        raise InvalidArgument("container name or ID must not be empty")
    ref = ref.lstrip("/")
    link = os.path.join(paths.containers_str(), ".names", ref)
    if _is_name(ref) and os.path.islink(link):
        cid = os.readlink(link)
        if os.path.exists(_file(cid, "config.json")):
            return cid
    matches = [c for c in all_ids() if c.startswith(ref)]
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise InvalidArgument(f"multiple containers match the ID prefix {ref!r}",
                              "Use more characters of the ID, or the name.")
    raise NotFound(f"No such container: {ref}")


_NAME_FIRST = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
_NAME_REST = _NAME_FIRST | frozenset("_.-")


def _is_name(ref: str) -> bool:
    """names.NAME_RE.match(ref) without `re` (~4 ms to import): `$` also matches before a last
    newline."""
    if ref.endswith("\n"):
        ref = ref[:-1]
    if ref.startswith("/"):
        ref = ref[1:]
    return len(ref) >= 2 and ref[0] in _NAME_FIRST and _NAME_REST.issuperset(ref[1:])


def name_of(rec: dict) -> str:
    return rec["Name"].lstrip("/")


def full(cid: str, state: dict | None = None) -> dict:
    """The record with its State: what `inspect` prints (``state``: state.json, if just read)."""
    rec = load(cid)
    st = load_state(cid) if state is None else state
    rec["RestartCount"] = st.pop("RestartCount", 0)  # kept in state.json: the monitor counts
    st.pop("ManuallyStopped", None)
    st.pop("Retries", None)
    rec["State"] = st
    return rec


def remove_dir(cid: str) -> None:
    paths.remove_tree(cdir(cid))
    if os.path.isdir(paths.root() / "remap" / cid):  # a user namespace's reachable side (engine/userns.py)
        paths.remove_tree(paths.root() / "remap" / cid)


def journal(cid: str) -> Journal:
    """The container's journal of host resources (containers/<id>/journal)."""
    from minidock.state.journal import Journal

    return Journal(cdir(cid) / "journal")
