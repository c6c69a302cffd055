"""Which manifest of an index: platform parsing and selection, manifest checks.
"""

from __future__ import annotations

from minidock.errors import InvalidArgument, NotFound
from minidock.image.registry.client import CONFIG_TYPES, RegistryError
from minidock.image.store import (
    LAYER_TYPES,
)


def parse_platform(platform: str | None) -> tuple[str, str, str | None]:
    from minidock.image.config import host_platform

    if not platform:
        os_, arch = host_platform()
        return os_, arch, ("v8" if arch == "arm64" else None)
    parts = platform.lower().split("/")
    if len(parts) < 2 or not all(parts):
        raise InvalidArgument(f"invalid platform {platform!r}", "Use os/arch[/variant], e.g. linux/amd64.")
    return parts[0], parts[1], parts[2] if len(parts) > 2 else None


def select_platform(index: dict, platform: str | None, what: str) -> dict:
    os_, arch, variant = parse_platform(platform)
    cands = []
    for m in index.get("manifests") or []:
        p = m.get("platform") or {}
        if p.get("os") == os_ and p.get("architecture") == arch:
            if variant and p.get("variant") and p["variant"] != variant:
                continue
            cands.append(m)
    if not cands:
        have = sorted({"/".join(filter(None, [(m.get("platform") or {}).get(k) for k in ("os", "architecture",
                       "variant")])) for m in index.get("manifests") or []} - {""})
        raise NotFound(f"no matching manifest for {os_}/{arch}{'/' + variant if variant else ''} in the "
                       f"manifest list entries of {what}",
                       f"Available: {', '.join(have) or 'none'}. Choose one with --platform.")
    exact = [m for m in cands if (m.get("platform") or {}).get("variant") == variant]
    return (exact or cands)[0]


def check_manifest(doc: dict, what: str) -> None:
    """Refuse what is not a container image (artifacts, unknown layer types) with a clear line."""
    cmt = (doc.get("config") or {}).get("mediaType", "")
    if cmt not in CONFIG_TYPES:
        raise RegistryError(f"unsupported config media type {cmt!r} in {what}: not a container image",
                            "minidock handles Docker and OCI container images only.")
    for lay in doc.get("layers") or []:
        if lay.get("mediaType") not in LAYER_TYPES:
            raise RegistryError(f"unsupported layer media type {lay.get('mediaType')!r} in {what}",
                                "minidock unpacks tar, tar+gzip and tar+zstd layers.")
        if lay.get("urls") and lay["mediaType"].endswith("foreign.diff.tar.gzip"):
            raise RegistryError(f"{what} has a foreign layer {lay['digest']} (Windows base layer): not supported")


# ---- progress ----------------------------------------------------------------------------------
