"""The OCI Distribution API client: transport, auth (Basic, Bearer tokens per scope), manifests,
blobs, uploads; `login`. Media types and the registry's errors.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import os
import re
import ssl
import threading
import urllib.parse

from minidock.errors import MinidockError, NotFound
from minidock.image import reference
from minidock.image.store import (
    MT_DOCKER_CONFIG,
    MT_DOCKER_MANIFEST,
    MT_OCI_CONFIG,
    MT_OCI_MANIFEST,
    BadBlob,
    check_descriptors,
    check_digest,
)

MT_OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MT_DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MT_SCHEMA1 = ("application/vnd.docker.distribution.manifest.v1+prettyjws",
              "application/vnd.docker.distribution.manifest.v1+json")
INDEX_TYPES = (MT_OCI_INDEX, MT_DOCKER_LIST)
MANIFEST_TYPES = (MT_OCI_MANIFEST, MT_DOCKER_MANIFEST)
CONFIG_TYPES = (MT_OCI_CONFIG, MT_DOCKER_CONFIG)
ACCEPT = ", ".join(MANIFEST_TYPES + INDEX_TYPES)
USER_AGENT = "minidock/0.1 (+https://github.com/minidock)"


class RegistryError(MinidockError):
    pass


class Unauthorized(RegistryError):
    pass


def _hub(domain: str) -> str:
    return "registry-1.docker.io" if domain == reference.DEFAULT_DOMAIN else domain


def is_loopback(domain: str) -> bool:
    host = domain.rsplit(":", 1)[0] if not domain.endswith("]") else domain
    host = host.strip("[]")
    return host in ("localhost", "::1") or host.startswith("127.")


def insecure_registries() -> set[str]:
    return {x.strip() for x in os.environ.get("MINIDOCK_INSECURE_REGISTRIES", "").split(",") if x.strip()}


def _parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    scheme, _, rest = header.strip().partition(" ")
    params = {k.lower(): v for k, v in re.findall(r'(\w+)="([^"]*)"', rest)}
    for k, v in re.findall(r'(\w+)=([^",\s]+)', rest):
        params.setdefault(k.lower(), v)
    return scheme.lower(), params


def _errors_text(body: bytes) -> str:
    """The registry's own error text: {"errors": [{"code", "message", "detail"}]}."""
    try:
        errs = json.loads(body).get("errors") or []
        return "; ".join(f"{e.get('code', '').lower()}: {e.get('message', '')}".strip(": ") for e in errs)
    except (ValueError, AttributeError):
        return body[:200].decode("utf-8", "replace").strip()


def _chunk_size() -> int:
    """MINIDOCK_PUSH_CHUNK_SIZE (bytes): upload blobs bigger than this in chunks (0: monolithic)."""
    try:
        return max(0, int(os.environ.get("MINIDOCK_PUSH_CHUNK_SIZE", "0")))
    except ValueError:
        return 0


class Client:
    """One registry (host[:port]); thread-safe (one HTTP connection per thread and host)."""

    def __init__(self, domain: str, insecure: bool = False, creds: tuple[str, str] | None = None):
        from minidock.image import auth

        self.domain = domain
        self.host = _hub(domain)
        self.creds = creds if creds is not None else auth.get(domain)
        if is_loopback(self.host):
            self.schemes = ["http", "https-insecure"]
        elif insecure or domain in insecure_registries():
            self.schemes = ["https-insecure", "http"]
        else:
            self.schemes = ["https"]
        self.scheme: str | None = None
        self.challenge: tuple[str, dict] | None = None
        self.tokens: dict[str, str] = {}
        self._local = threading.local()
        self._lock = threading.Lock()

    # ---- transport ----------------------------------------------------------------------
    def _conn(self, scheme: str, host: str) -> http.client.HTTPConnection:
        conns = self._local.__dict__.setdefault("conns", {})
        key = (scheme, host)
        c = conns.get(key)
        if c is None:
            if scheme == "http":
                c = http.client.HTTPConnection(host, timeout=60)
            else:
                ctx = ssl.create_default_context()
                if scheme == "https-insecure":
                    ctx.check_hostname = False
                    ctx.verify_mode = ssl.CERT_NONE
                c = http.client.HTTPSConnection(host, timeout=60, context=ctx)
            conns[key] = c
        return c

    def _send(self, scheme: str, host: str, method: str, path: str, headers: dict, body=None):
        """One request; a dropped keep-alive connection is retried once on a new one."""
        for attempt in (0, 1):
            c = self._conn(scheme, host)
            try:
                c.request(method, path, body=body, headers={"User-Agent": USER_AGENT, **headers})
                return c.getresponse()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError,
                    http.client.CannotSendRequest, http.client.ResponseNotReady):
                c.close()
                self._local.conns.pop((scheme, host), None)
                if attempt or (body is not None and not isinstance(body, bytes)):
                    raise
        raise AssertionError("unreachable")

    def _base(self) -> str:
        if self.scheme is None:
            self.ping()
        return self.scheme

    def ping(self) -> None:
        """GET /v2/: pick the scheme that answers, and learn the auth challenge."""
        last = None
        for scheme in self.schemes:
            try:
                r = self._send(scheme, self.host, "GET", "/v2/", {})
                body = r.read()
            except (OSError, http.client.HTTPException) as e:
                last = e
                self._local.__dict__.get("conns", {}).pop((scheme, self.host), None)
                continue
            if r.status == 400 and b"HTTPS" in body:
                continue  # plain http to a TLS server
            self.scheme = scheme
            if r.status == 401:
                self.challenge = _parse_challenge(r.getheader("WWW-Authenticate", ""))
            elif r.status not in (200, 404):
                raise RegistryError(f"Error response from registry {self.domain}: {r.status} {r.reason} on /v2/",
                                    "Is this an OCI Distribution (v2) registry?")
            return
        url = f"{'http' if self.schemes[0] == 'http' else 'https'}://{self.host}/v2/"
        hint = "Is the registry running and reachable?"
        if isinstance(last, ssl.SSLError) and self.schemes == ["https"]:
            hint = (f"If {self.domain} serves plain http, allow it with --insecure or "
                    f"MINIDOCK_INSECURE_REGISTRIES={self.domain}.")
        raise RegistryError(f"Get \"{url}\": {getattr(last, 'strerror', None) or last}", hint)

    # ---- auth ---------------------------------------------------------------------------
    def _auth_header(self, scope: str | None) -> dict:
        if self.challenge is None:
            return {}
        kind, params = self.challenge
        if kind == "basic":
            return self._basic() or {}
        if kind == "bearer":
            key = scope or ""
            with self._lock:
                tok = self.tokens.get(key)
            if tok is None:
                tok = self._token(params, scope)
                with self._lock:
                    self.tokens[key] = tok
            return {"Authorization": f"Bearer {tok}"} if tok else {}
        return {}

    def _basic(self) -> dict | None:
        if not self.creds:
            return None
        raw = base64.b64encode(f"{self.creds[0]}:{self.creds[1]}".encode()).decode()
        return {"Authorization": f"Basic {raw}"}

    def _token(self, params: dict, scope: str | None) -> str:
        realm = params.get("realm")
        if not realm:
            raise RegistryError(f"registry {self.domain} asked for a Bearer token without a realm")
        q = {}
        if params.get("service"):
            q["service"] = params["service"]
        if scope:
            q["scope"] = scope
        if self.creds:
            q["account"] = self.creds[0]
        u = urllib.parse.urlsplit(realm)
        scheme = u.scheme if u.scheme == "http" else ("https-insecure" if "https-insecure" in self.schemes else "https")
        path = (u.path or "/") + "?" + "&".join(filter(None, [u.query, urllib.parse.urlencode(q)]))
        try:
            r = self._send(scheme, u.netloc, "GET", path, self._basic() or {})
            body = r.read()
        except (OSError, http.client.HTTPException) as e:
            raise RegistryError(f"Get \"{realm}\": {e}", "The registry's token service is unreachable.") from None
        if r.status in (401, 403):
            text = _errors_text(body) or "incorrect username or password"
            raise Unauthorized(f"Error response from registry {self.domain}: "
                               f"{text if text.startswith('unauthorized') else 'unauthorized: ' + text}",
                               f"Log in with: minidock login {self.domain}")
        if r.status != 200:
            raise RegistryError(f"token service {realm} answered {r.status} {r.reason}: {_errors_text(body)}")
        try:
            data = json.loads(body)
        except ValueError:
            raise RegistryError(f"token service {realm} sent something that is not JSON") from None
        return data.get("token") or data.get("access_token") or ""

    # ---- requests -----------------------------------------------------------------------
    def request(self, method: str, path: str, *, scope: str | None = None, headers: dict | None = None,
                body=None, ok=(200,), what: str = ""):
        """A request to the registry with auth; returns the response (body unread) if its status
        is in `ok`, else raises with the registry's error text. Follows redirects for GET/HEAD."""
        base = self._base()
        hdrs = dict(headers or {})
        data = None
        for attempt in (0, 1):
            r = self._send(base, self.host, method, path, {**hdrs, **self._auth_header(scope)}, body)
            data = None
            if r.status == 401 and attempt == 0 and (body is None or isinstance(body, bytes)):
                data = r.read()
                self.challenge = _parse_challenge(r.getheader("WWW-Authenticate", ""))
                with self._lock:
                    self.tokens.pop(scope or "", None)
                if self.challenge[0] == "basic" and self.creds is None:
                    break
                continue
            break
        if r.status in (301, 302, 303, 307, 308) and method in ("GET", "HEAD"):
            r.read()
            return self._redirect(method, r.getheader("Location"), path, ok, what)
        if r.status in ok:
            return r
        if data is None:
            data = r.read()
        text = _errors_text(data) if data else r.reason
        if r.status == 401:
            if text.lower().strip(": ") in ("unauthorized", "unauthorized: unauthorized", "authentication required"):
                text = "authentication required"
            elif text.startswith("unauthorized: "):
                text = text[14:]
            raise Unauthorized(f"Error response from registry {self.domain}: unauthorized: {text}",
                               f"Log in with: minidock login {self.domain}")
        if r.status == 403:
            raise Unauthorized(f"Error response from registry {self.domain}: denied: {text}")
        if r.status == 404:
            raise NotFound(f"{what or path}: not found: {text}")
        raise RegistryError(f"Error response from registry {self.domain}: {r.status} {r.reason} "
                            f"({method} {path}): {text}")

    def _redirect(self, method: str, location: str | None, path: str, ok, what: str, hops: int = 0):
        if not location or hops > 5:
            raise RegistryError(f"{what or path}: bad redirect from {self.domain}")
        base_url = f"{'http' if self.scheme == 'http' else 'https'}://{self.host}{path}"
        u = urllib.parse.urlsplit(urllib.parse.urljoin(base_url, location))
        scheme = "http" if u.scheme == "http" else ("https-insecure" if self.scheme == "https-insecure" else "https")
        r = self._send(scheme, u.netloc, method, (u.path or "/") + ("?" + u.query if u.query else ""), {})
        if r.status in (301, 302, 303, 307, 308):
            r.read()
            return self._redirect(method, r.getheader("Location"), path, ok, what, hops + 1)
        if r.status not in ok:
            data = r.read()
            raise RegistryError(f"{what or path}: {r.status} {r.reason} from {u.netloc}: {_errors_text(data)}")
        return r

    # ---- distribution API ---------------------------------------------------------------
    def manifest(self, repo: str, ref: str) -> tuple[bytes, str, str]:
        """(bytes, media type, digest) of a manifest by tag or digest, verified."""
        r = self.request("GET", f"/v2/{repo}/manifests/{ref}", scope=f"repository:{repo}:pull",
                         headers={"Accept": ACCEPT}, what=f"manifest for {repo}:{ref}")
        data = r.read()
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        sent = r.getheader("Docker-Content-Digest")
        if ref.startswith("sha256:") and digest != ref:
            raise BadBlob(f"manifest digest mismatch for {repo}@{ref}: the registry sent content with digest "
                          f"{digest}", "The registry or something between us is lying; nothing was stored.")
        if sent and sent.startswith("sha256:"):  # (another algorithm's header is not used)
            check_digest(sent, f"the registry's Docker-Content-Digest for {repo}:{ref}")
        if sent and sent.startswith("sha256:") and sent != digest:
            raise BadBlob(f"manifest digest mismatch for {repo}:{ref}: the registry says {sent}, the content "
                          f"is {digest}", "The registry or something between us is lying; nothing was stored.")
        mt = r.getheader("Content-Type", "").split(";")[0].strip()
        try:
            doc = json.loads(data)
        except ValueError:
            raise BadBlob(f"manifest for {repo}:{ref} is not JSON") from None
        check_descriptors(doc, f"the manifest of {repo}:{ref}")
        mt = doc.get("mediaType") or mt
        if mt not in MANIFEST_TYPES + INDEX_TYPES:
            if mt in MT_SCHEMA1 or doc.get("schemaVersion") == 1:
                raise RegistryError(f"{repo}:{ref} uses the deprecated Docker image manifest schema 1, "
                                    "which minidock does not support", "Push the image again with a current tool.")
            if "manifests" in doc:
                mt = MT_OCI_INDEX
            elif "config" in doc and "layers" in doc:
                mt = MT_OCI_MANIFEST
            else:
                raise RegistryError(f"unsupported manifest media type {mt!r} for {repo}:{ref}",
                                    "minidock pulls Docker schema 2 and OCI images and indexes.")
        return data, mt, digest

    def blob(self, repo: str, digest: str):
        return self.request("GET", f"/v2/{repo}/blobs/{digest}", scope=f"repository:{repo}:pull",
                            what=f"blob {digest}")

    def has_blob(self, repo: str, digest: str, scope: str) -> bool:
        r = self.request("HEAD", f"/v2/{repo}/blobs/{digest}", scope=scope, ok=(200, 404))
        r.read()
        return r.status == 200

    def upload(self, repo: str, digest: str, path: str, size: int, scope: str,
               mount_from: str | None = None) -> str:
        """Upload a blob (monolithic: POST then one PUT with the whole body). -> 'Pushed'|'Mounted'."""
        q = f"?mount={digest}&from={urllib.parse.quote(mount_from)}" if mount_from else ""
        r = self.request("POST", f"/v2/{repo}/blobs/uploads/{q}", scope=scope, headers={"Content-Length": "0"},
                         body=b"", ok=(201, 202), what=f"upload of {digest}")
        r.read()
        if r.status == 201:
            return "Mounted"
        loc = r.getheader("Location")
        if not loc:
            raise RegistryError(f"registry {self.domain} started an upload without a Location")
        chunk = _chunk_size()
        with open(path, "rb") as f:
            if chunk and size > chunk:
                loc = self._upload_chunks(loc, f, size, chunk, scope, digest)
                body, length = b"", 0
            else:
                body, length = f, size
            u = urllib.parse.urlsplit(loc)
            target = (u.path or "/") + "?" + "&".join(filter(None, [u.query, "digest=" + urllib.parse.quote(digest)]))
            r = self.request("PUT", target, scope=scope, body=body, ok=(201, 204), what=f"upload of {digest}",
                             headers={"Content-Type": "application/octet-stream", "Content-Length": str(length)})
            r.read()
        return "Pushed"

    def _upload_chunks(self, loc: str, f, size: int, chunk: int, scope: str, digest: str) -> str:
        """The spec's chunked upload: PATCH each chunk with its Content-Range to the Location the
        previous answer gave; the caller closes the upload with an empty PUT. -> last Location."""
        start = 0
        while start < size:
            data = f.read(chunk)
            u = urllib.parse.urlsplit(loc)
            r = self.request("PATCH", (u.path or "/") + ("?" + u.query if u.query else ""), scope=scope, body=data,
                             ok=(202,), what=f"upload of {digest}",
                             headers={"Content-Type": "application/octet-stream", "Content-Length": str(len(data)),
                                      "Content-Range": f"{start}-{start + len(data) - 1}"})
            r.read()
            loc = r.getheader("Location") or loc
            start += len(data)
        return loc

    def put_manifest(self, repo: str, ref: str, data: bytes, mt: str, scope: str) -> str:
        r = self.request("PUT", f"/v2/{repo}/manifests/{ref}", scope=scope, body=data, ok=(200, 201, 202),
                         headers={"Content-Type": mt, "Content-Length": str(len(data))}, what=f"manifest {ref}")
        r.read()
        return r.getheader("Docker-Content-Digest") or "sha256:" + hashlib.sha256(data).hexdigest()


# ---- platform selection -----------------------------------------------------------------------


def login(server: str, username: str, password: str, insecure: bool = False) -> str:
    """Check the credentials against the registry, then store them. -> where they were stored."""
    from minidock.image import auth

    domain = _server_domain(server)
    client = Client(domain, insecure, creds=(username, password))
    client.ping()
    if client.challenge is not None:
        kind, params = client.challenge
        if kind == "basic":
            r = client._send(client.scheme, client.host, "GET", "/v2/", client._basic())
            r.read()
            if r.status == 401:
                raise Unauthorized(f"Error response from registry {domain}: unauthorized: incorrect username "
                                   "or password")
        elif kind == "bearer":
            client._token(params, None)
    return str(auth.store(domain, username, password))


def _server_domain(server: str | None) -> str:
    if not server:
        return reference.DEFAULT_DOMAIN
    s = re.sub(r"^https?://", "", server).rstrip("/")
    s = s.split("/")[0]
    if s in ("index.docker.io", "registry-1.docker.io", "docker.io"):
        return reference.DEFAULT_DOMAIN
    return s
