"""Registry credentials, stored the way Docker stores them.

`minidock login` writes ``{"auths": {"<registry>": {"auth": base64("user:password")}}}`` — the
shape of ``~/.docker/config.json`` — into our own file, so that we never rewrite a Docker user's
config. Lookups read ours first, then the user's Docker config (``$DOCKER_CONFIG/config.json`` or
``~/.docker/config.json``), so credentials from `docker login` work too.

Our file: ``$MINIDOCK_AUTH_CONFIG`` if set, else ``<state root>/auth.json`` (mode 0600).
Credential helpers (credsStore) are not run: a hint says so.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

from minidock import paths
from minidock.util import fsutil

DOCKER_HUB_KEYS = ("https://index.docker.io/v1/", "index.docker.io", "docker.io", "registry-1.docker.io")


def our_config() -> Path:
    env = os.environ.get("MINIDOCK_AUTH_CONFIG")
    return Path(env) if env else paths.root() / "auth.json"


def docker_config() -> Path:
    d = os.environ.get("DOCKER_CONFIG")
    return Path(d) / "config.json" if d else Path.home() / ".docker" / "config.json"


def _read(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _keys(registry: str) -> list[str]:
    """The keys a registry may be stored under (Docker Hub has several historical names)."""
    if registry in DOCKER_HUB_KEYS:
        return list(DOCKER_HUB_KEYS)
    return [registry, f"https://{registry}", f"http://{registry}", f"https://{registry}/v1/",
            f"https://{registry}/v2/"]


def _decode(entry: dict) -> tuple[str, str] | None:
    if entry.get("auth"):
        try:
            user, _, pw = base64.b64decode(entry["auth"]).decode().partition(":")
            return user, pw
        except (ValueError, UnicodeDecodeError):
            return None
    if entry.get("username"):
        return entry["username"], entry.get("password", "")
    return None


def get(registry: str) -> tuple[str, str] | None:
    """(username, password) for `registry` (a host[:port] or docker.io), or None."""
    for path in (our_config(), docker_config()):
        auths = _read(path).get("auths") or {}
        for k in _keys(registry):
            if k in auths:
                creds = _decode(auths[k] or {})
                if creds:
                    return creds
    return None


def store(registry: str, username: str, password: str) -> Path:
    path = our_config()
    data = _read(path)
    auths = data.setdefault("auths", {})
    key = "https://index.docker.io/v1/" if registry in DOCKER_HUB_KEYS else registry
    auths[key] = {"auth": base64.b64encode(f"{username}:{password}".encode()).decode()}
    path.parent.mkdir(parents=True, exist_ok=True)
    fsutil.atomic_write_json(path, data, mode=0o600, indent=1)
    return path


def remove(registry: str) -> bool:
    """Forget our stored credentials for `registry`. -> whether there were any."""
    path = our_config()
    data = _read(path)
    auths = data.get("auths") or {}
    found = False
    for k in _keys(registry):
        if k in auths:
            del auths[k]
            found = True
    if found:
        fsutil.atomic_write_json(path, data, mode=0o600, indent=1)
    return found
