"""A client for the OCI Distribution spec: pull, push and login, with http.client only.

Auth, as Docker does it: every request goes out anonymous (or with the token we already hold for
its scope); a ``401`` carries a ``WWW-Authenticate`` challenge:

* ``Basic realm=...``  -> retry with the stored username/password;
* ``Bearer realm=...,service=...,scope=...`` -> GET the realm with service and scope (with basic
  credentials if we have some) for a token, then retry with ``Authorization: Bearer <token>``.
  Tokens are cached per scope for the life of the client.

Transport: https, except for localhost/127.0.0.0/8/::1 (plain http, as Docker treats loopback
as an insecure registry) and for registries named in ``--insecure`` or
``MINIDOCK_INSECURE_REGISTRIES`` (comma-separated; https without verification, then http).

Integrity: every blob is stored through :meth:`ImageStore.put_blob` with its expected digest, so
a blob that does not hash to its descriptor is never stored; a manifest pulled by digest must
hash to it, and one pulled by tag must hash to the ``Docker-Content-Digest`` the registry sent.
A pull holds a store lease: gc leaves its blobs alone, and a failed pull removes what it added.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import os
import re
import ssl
import sys
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor

from minidock.errors import InvalidArgument, MinidockError, NotFound
from minidock.image import reference
from minidock.image.store import (
    LAYER_TYPES,
    MT_DOCKER_CONFIG,
    MT_DOCKER_MANIFEST,
    MT_OCI_CONFIG,
    MT_OCI_MANIFEST,
    BadBlob,
    ImageStore,
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
class Progress:
    """Docker's pull/push display: one line per layer. On a terminal, lines are redrawn in place
    (ANSI cursor moves, at most 10 times a second); otherwise each status change is one line;
    quiet prints nothing."""

    def __init__(self, out=None, quiet: bool = False):
        self.out = out or sys.stdout
        self.quiet = quiet
        self.tty = not quiet and hasattr(self.out, "isatty") and self.out.isatty()
        self.order: list[str] = []
        self.lines: dict[str, str] = {}
        self.drawn = 0
        self.last = 0.0
        self.lock = threading.Lock()

    def say(self, text: str) -> None:
        if self.quiet:
            return
        with self.lock:
            self.out.write(text + "\n")
            self.out.flush()

    def status(self, key: str, text: str, cur: int | None = None, total: int | None = None) -> None:
        if self.quiet:
            return
        with self.lock:
            if key not in self.lines:
                self.order.append(key)
            line = f"{key}: {text}"
            if cur is not None and total:
                width = 50
                done = min(width, int(width * cur / total))
                bar = "=" * done + (">" if done < width else "") + " " * max(0, width - done - 1)
                from minidock.util import human_size

                line += f" [{bar}]  {human_size(cur)}/{human_size(total)}"
            changed = self.lines.get(key, "").split(" [")[0] != line.split(" [")[0]
            self.lines[key] = line
            if self.tty:
                now = time.monotonic()
                if changed or now - self.last > 0.1:
                    self.last = now
                    self._redraw()
            elif changed:
                self.out.write(line + "\n")
                self.out.flush()

    def _redraw(self) -> None:
        buf = f"\x1b[{self.drawn}A" if self.drawn else ""
        for k in self.order:
            buf += "\x1b[2K" + self.lines[k] + "\n"
        self.drawn = len(self.order)
        self.out.write(buf)
        self.out.flush()

    def finish(self) -> None:
        if self.tty and self.order:
            with self.lock:
                self._redraw()
        self.order, self.lines, self.drawn = [], {}, 0


class _Counting:
    def __init__(self, raw, cb):
        self.raw, self.cb, self.n = raw, cb, 0

    def read(self, n=-1):
        data = self.raw.read(n)
        self.n += len(data)
        self.cb(self.n)
        return data


# ---- pull ---------------------------------------------------------------------------------------
def _chunk_size() -> int:
    """MINIDOCK_PUSH_CHUNK_SIZE (bytes): upload blobs bigger than this in chunks (0: monolithic)."""
    try:
        return max(0, int(os.environ.get("MINIDOCK_PUSH_CHUNK_SIZE", "0")))
    except ValueError:
        return 0


def _workers() -> int:
    try:
        return max(1, int(os.environ.get("MINIDOCK_MAX_CONCURRENT_DOWNLOADS", "3")))
    except ValueError:
        return 3


def pull(ref: str, *, platform: str | None = None, quiet: bool = False, out=None, insecure: bool = False,
         store: ImageStore | None = None):
    """Pull an image like `docker pull`. -> the Image in the store."""
    r = reference.parse(ref)
    store = store or ImageStore()
    prog = Progress(out, quiet)
    if not r.tag and not r.digest:
        r = r.with_tag("latest")
    if ":" not in ref.rsplit("/", 1)[-1] and "@" not in ref:
        prog.say("Using default tag: latest")
    client = Client(r.domain, insecure)
    what = r.familiar()
    data, mt, digest = client.manifest(r.path, r.digest or r.tag)
    prog.say(f"{r.digest or r.tag}: Pulling from {r.path}")
    manifest_digest = digest  # the repo digest: the index's when there is one, as docker shows it
    index_used = mt in INDEX_TYPES
    if index_used:
        child = select_platform(json.loads(data), platform, what)
        data, mt, _ = client.manifest(r.path, child["digest"])
        if mt in INDEX_TYPES:
            raise RegistryError(f"{what}: nested image indexes are not supported")
    doc = json.loads(data)
    check_manifest(doc, what)
    cdesc = doc["config"]
    with store.lease() as lease:
        if store.has_blob(cdesc["digest"]):
            lease.hold(cdesc["digest"])
            config = store.read_blob(cdesc["digest"])
        else:
            resp = client.blob(r.path, cdesc["digest"])
            lease.put_blob(resp, cdesc["digest"], cdesc.get("size"))
            config = store.read_blob(cdesc["digest"])
        cfg = check_descriptors(json.loads(config), f"the config of {what}")
        if platform and not index_used:
            want = parse_platform(platform)
            if (cfg.get("os"), cfg.get("architecture")) != want[:2]:
                raise NotFound(f"image with reference {what} was found but does not match the specified "
                               f"platform: wanted {platform}, actual: {cfg.get('os')}/{cfg.get('architecture')}")
        diff_ids = (cfg.get("rootfs") or {}).get("diff_ids") or []
        layers = doc.get("layers") or []
        if len(diff_ids) != len(layers):
            raise BadBlob(f"{what}: the manifest lists {len(layers)} layers but the config has "
                          f"{len(diff_ids)} diff_ids", "The image is malformed; nothing was stored.")
        old = _existing(store, cdesc["digest"])
        descs = []
        jobs = []
        for desc, diff in zip(layers, diff_ids):
            key = desc["digest"][7:19]
            descs.append({"digest": desc["digest"], "diff_id": diff, "mediaType": desc["mediaType"],
                          "size": desc.get("size", 0)})
            lease.hold(desc["digest"])
            lease.hold(diff)
            if store.has_blob(desc["digest"]) and store.has_layer(diff):
                prog.status(key, "Already exists")
            else:
                prog.status(key, "Pulling fs layer")
                jobs.append((key, desc, diff))
        with ThreadPoolExecutor(max_workers=_workers()) as pool:
            futs = [pool.submit(_fetch_layer, client, r.path, lease, prog, key, desc, diff)
                    for key, desc, diff in jobs]
            errors = []
            for f in futs:
                try:
                    f.result()
                except BaseException as e:  # wait for every worker before rolling back
                    errors.append(e)
            if errors:
                raise errors[0]
        lease.unpacked_sizes(descs)
        img = store.add_image(config, descs, manifest=data, tags=[str(r)] if r.tag else [],
                              repo_digest=f"{r.repository}@{manifest_digest}")
    prog.finish()
    prog.say(f"Digest: {manifest_digest}")
    if old and old.get("ManifestDigest"):
        prog.say(f"Status: Image is up to date for {what}")
    else:
        prog.say(f"Status: Downloaded newer image for {what}")
    if not quiet:
        prog.say(str(r))
    elif out is not None:
        out.write(str(r) + "\n")
    return img


def _existing(store: ImageStore, image_id: str) -> dict | None:
    try:
        return json.loads(store._record_path(image_id).read_text())
    except (OSError, ValueError):
        return None


def _fetch_layer(client: Client, repo: str, lease, prog: Progress, key: str, desc: dict, diff: str) -> None:
    store = lease.store
    size = desc.get("size") or 0
    if not store.has_blob(desc["digest"]):
        resp = client.blob(repo, desc["digest"])
        total = size or int(resp.getheader("Content-Length") or 0)
        prog.status(key, "Downloading", 0, total)
        lease.put_blob(_Counting(resp, lambda n: prog.status(key, "Downloading", n, total)),
                       desc["digest"], size or None)
        prog.status(key, "Download complete")
    prog.status(key, "Extracting")
    lease.unpack_layer(desc["digest"], diff)
    prog.status(key, "Pull complete")


def pull_for_run(ref: str) -> None:
    """`run`/`create` of a missing image: pull it with progress on stderr, as Docker does."""
    pull(ref, out=sys.stderr)


# ---- push ---------------------------------------------------------------------------------------
def push(ref: str, *, quiet: bool = False, out=None, insecure: bool = False,
         store: ImageStore | None = None) -> str:
    """Push a tagged image like `docker push`. -> the manifest digest."""
    store = store or ImageStore()
    r = reference.parse(ref)
    img = store.resolve(ref)
    prog = Progress(out, quiet)
    prog.say(f"The push refers to repository [{r.repository}]")
    client = Client(r.domain, insecure)
    scope = f"repository:{r.path}:pull,push"
    data = store.read_blob(img.record["ManifestDigest"])
    doc = json.loads(data)
    if doc.get("mediaType") in INDEX_TYPES or "manifests" in doc:
        raise RegistryError("pushing an image index is not supported")
    mt = doc.get("mediaType") or MT_OCI_MANIFEST
    sources = [d.split("@")[0] for d in img.record.get("RepoDigests", [])]
    mounts = [s.split("/", 1)[1] for s in sources if s.split("/", 1)[0] == r.domain and s != r.repository]

    def one(desc: dict) -> None:
        digest = desc["digest"]
        key = digest[7:19]
        if client.has_blob(r.path, digest, scope):
            prog.status(key, "Layer already exists")
            return
        prog.status(key, "Preparing")
        path = str(store.blob_path(digest))
        if not os.path.exists(path):
            raise NotFound(f"blob {digest} of {r.familiar()} is not in the store",
                           "Pull or load the image again before pushing it.")
        prog.status(key, "Pushing")
        how = client.upload(r.path, digest, path, os.path.getsize(path), scope,
                            mount_from=mounts[0] if mounts else None)
        if how == "Mounted":
            prog.status(key, f"Mounted from {mounts[0]}")
        else:
            prog.status(key, "Pushed")

    with ThreadPoolExecutor(max_workers=_workers()) as pool:
        list(pool.map(one, list(reversed(doc.get("layers") or []))))
    one(doc["config"])
    tag = r.tag or "latest"
    digest = client.put_manifest(r.path, r.digest or tag, data, mt, scope)
    prog.finish()
    with store.lock():
        path = store._record_path(img.id)
        rec = json.loads(path.read_text())
        rec["RepoDigests"] = sorted(set(rec.get("RepoDigests", [])) | {f"{r.repository}@{digest}"})
        store._write_json(path, rec)
    line = f"{tag}: digest: {digest} size: {len(data)}"
    if quiet:
        if out is not None:
            out.write(str(r) + "\n")
    else:
        prog.say(line)
    return digest


# ---- login ----------------------------------------------------------------------------------------
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
