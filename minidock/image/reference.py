"""Image references parsed the way Docker parses them (distribution/reference).

    alpine                      -> docker.io/library/alpine:latest
    user/app:1.0                -> docker.io/user/app:1.0
    localhost:5000/ns/app       -> localhost:5000/ns/app:latest
    app@sha256:<64 hex>         -> docker.io/library/app@sha256:...

The first path component is a registry host when it has a dot or a colon or is `localhost`.
Repository components are lowercase; a tag is [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}.
"""

from __future__ import annotations

import re

from minidock.errors import InvalidArgument

DEFAULT_DOMAIN = "docker.io"
LEGACY_DOMAINS = ("index.docker.io", "registry-1.docker.io")
_COMPONENT = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_DIGEST = re.compile(r"^sha256:[a-f0-9]{64}$")
_DOMAIN = re.compile(r"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)(?:\.[A-Za-z0-9-]+)*(?::[0-9]+)?$"
                     r"|^\[[0-9a-fA-F:]+\](?::[0-9]+)?$")


class Reference(tuple):
    """(domain, path, tag, digest), immutable and hashable: a named tuple. (Not a frozen
    dataclass: `minidock run` imports this module, and dataclasses costs ~4 ms to import.)"""

    __slots__ = ()

    def __new__(cls, domain: str, path: str, tag: str | None = None, digest: str | None = None):
        return tuple.__new__(cls, (domain, path, tag, digest))

    domain = property(lambda self: self[0])
    path = property(lambda self: self[1])  # "library/alpine"
    tag = property(lambda self: self[2])
    digest = property(lambda self: self[3])

    def __repr__(self) -> str:
        return f"Reference(domain={self[0]!r}, path={self[1]!r}, tag={self[2]!r}, digest={self[3]!r})"

    @property
    def repository(self) -> str:
        """Fully qualified repository: docker.io/library/alpine."""
        return f"{self.domain}/{self.path}"

    @property
    def familiar_repository(self) -> str:
        """What Docker prints: alpine, user/app, localhost:5000/app."""
        if self.domain == DEFAULT_DOMAIN:
            return self.path[8:] if self.path.startswith("library/") else self.path
        return self.repository

    def with_tag(self, tag: str) -> Reference:
        return Reference(self.domain, self.path, tag, None)

    def __str__(self) -> str:
        """The fully qualified form (the store's key)."""
        s = self.repository
        if self.tag:
            s += ":" + self.tag
        if self.digest:
            s += "@" + self.digest
        return s

    def familiar(self) -> str:
        s = self.familiar_repository
        if self.tag:
            s += ":" + self.tag
        if self.digest:
            s += "@" + self.digest
        return s


def parse(ref: str, default_tag: str | None = "latest") -> Reference:
    """Parse and normalize; a reference without tag or digest gets `default_tag`."""
    if not ref or ref != ref.strip():
        raise InvalidArgument(f"invalid reference format: {ref!r}")
    name, digest = ref, None
    if "@" in ref:
        name, _, digest = ref.partition("@")
        if not _DIGEST.match(digest):
            raise InvalidArgument(f"invalid reference format: {ref!r}: bad digest {digest!r}",
                                  "A digest looks like sha256: followed by 64 lowercase hex digits.")
    tag = None
    slash, colon = name.rfind("/"), name.rfind(":")
    if colon > slash:
        name, tag = name[:colon], name[colon + 1:]
        if not _TAG.match(tag):
            raise InvalidArgument(f"invalid reference format: {ref!r}: bad tag {tag!r}")
    if not name:
        raise InvalidArgument(f"invalid reference format: {ref!r}")
    first, sep, rest = name.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        domain, path = first, rest
        if not _DOMAIN.match(domain):
            raise InvalidArgument(f"invalid reference format: {ref!r}: bad registry host {domain!r}")
    else:
        domain, path = DEFAULT_DOMAIN, name
    if domain in LEGACY_DOMAINS:
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in path:
        path = "library/" + path
    for comp in path.split("/"):
        if not _COMPONENT.match(comp):
            if comp.lower() != comp and _COMPONENT.match(comp.lower()):
                raise InvalidArgument(f"invalid reference format: repository name ({path}) must be lowercase")
            raise InvalidArgument(f"invalid reference format: {ref!r}",
                                  "Names are lowercase letters, digits and separators (. _ -), "
                                  "optionally with a registry host and a :tag or @sha256:digest.")
    if len(domain) + 1 + len(path) > 255:
        raise InvalidArgument(f"invalid reference format: repository name must not be more than 255 "
                              f"characters: {ref!r}")
    if tag is None and digest is None:
        tag = default_tag
    return Reference(domain, path, tag, digest)


def looks_like_id(ref: str) -> bool:
    """An image ID or ID prefix (hex, optionally sha256:)."""
    h = ref[7:] if ref.startswith("sha256:") else ref
    return 1 <= len(h) <= 64 and all(c in "0123456789abcdef" for c in h)
