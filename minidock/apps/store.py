"""Objects, status and events on disk, so `get`/`describe` need no running process.

    apps/objects/<namespace>/<plural>/<name>.json          the applied object (written by the CLI)
    apps/status/<namespace>/<plural>/<name>.json           its status (written by its controller)
    apps/pods/<namespace>/<pod>.json                       one record per pod (its controller's)
    apps/events/<namespace>.jsonl                          events, appended (describe, get events)
    apps/controllers/<namespace>.<kind>.<name>.lock        flock held by the running controller
    apps/.lock                                             writers of objects (apply, delete)

Every file is written atomically (temp file + rename). One writer per file: the CLI writes
objects, the object's controller its status and its pods' records.
"""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path

from minidock import paths
from minidock.util import fsutil


def root() -> Path:
    return paths.root() / "apps"


def _write(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fsutil.atomic_write_json(path, data, indent=1, sort_keys=True)


def _read(path: Path, default=None):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return default


@contextlib.contextmanager
def lock(name: str = ".lock"):
    p = root() / name
    p.parent.mkdir(parents=True, exist_ok=True)
    with fsutil.flock(p):
        yield


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


# --- objects --------------------------------------------------------------------------------------
def obj_path(plural: str, ns: str, name: str) -> Path:
    return root() / "objects" / ns / plural / f"{name}.json"


def get(plural: str, ns: str, name: str) -> dict | None:
    return _read(obj_path(plural, ns, name))


def put(obj: dict, plural: str) -> None:
    m = obj["metadata"]
    _write(obj_path(plural, m["namespace"], m["name"]), obj)


def remove(plural: str, ns: str, name: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        obj_path(plural, ns, name).unlink()


def listing(plural: str, ns: str | None = None) -> list[dict]:
    base = root() / "objects"
    nss = [ns] if ns else sorted(p.name for p in base.iterdir()) if base.is_dir() else []
    out = []
    for n in nss:
        d = base / n / plural
        if d.is_dir():
            for f in sorted(d.glob("*.json")):
                o = _read(f)
                if o:
                    out.append(o)
    return out


# --- status ---------------------------------------------------------------------------------------
def status_path(plural: str, ns: str, name: str) -> Path:
    return root() / "status" / ns / plural / f"{name}.json"


def get_status(plural: str, ns: str, name: str) -> dict:
    return _read(status_path(plural, ns, name), {}) or {}


def put_status(plural: str, ns: str, name: str, status: dict) -> None:
    _write(status_path(plural, ns, name), status)


def remove_status(plural: str, ns: str, name: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        status_path(plural, ns, name).unlink()


# --- pods -----------------------------------------------------------------------------------------
def pod_path(ns: str, name: str) -> Path:
    return root() / "pods" / ns / f"{name}.json"


def pods(ns: str | None = None, owner: str | None = None) -> list[dict]:
    base = root() / "pods"
    nss = [ns] if ns else sorted(p.name for p in base.iterdir()) if base.is_dir() else []
    out = []
    for n in nss:
        d = base / n
        if d.is_dir():
            for f in sorted(d.glob("*.json")):
                p = _read(f)
                if p and (owner is None or p.get("owner") == owner):
                    out.append(p)
    return out


def get_pod(ns: str, name: str) -> dict | None:
    return _read(pod_path(ns, name))


def put_pod(pod: dict) -> None:
    _write(pod_path(pod["namespace"], pod["name"]), pod)


def remove_pod(ns: str, name: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        pod_path(ns, name).unlink()


# --- events ---------------------------------------------------------------------------------------
def event(ns: str, kind: str, name: str, reason: str, message: str, type_: str = "Normal") -> None:
    p = root() / "events" / f"{ns}.jsonl"
    p.parent.mkdir(parents=True, exist_ok=True)
    line = (
        json.dumps(
            {"time": time.time(), "type": type_, "reason": reason, "kind": kind, "name": name, "message": message}
        )
        + "\n"
    )
    with open(p, "a") as f:  # one short write(2) on O_APPEND: lines of concurrent writers never mix
        f.write(line)


def events(ns: str, kind: str | None = None, name: str | None = None) -> list[dict]:
    p = root() / "events" / f"{ns}.jsonl"
    out = []
    try:
        with open(p) as f:
            for line in f:
                try:
                    e = json.loads(line)
                except ValueError:
                    continue
                if (kind is None or e["kind"] == kind) and (name is None or e["name"] == name):
                    out.append(e)
    except OSError:
        pass
    return out
