"""A real OCI Distribution registry for tests (Debian's docker-registry), on 127.0.0.1.

    with Registry(tmp, auth=None | "htpasswd" | "token") as reg:
        reg.addr          # "127.0.0.1:<port>"
        reg.blob_file(d)  # where the registry keeps a blob on disk (to corrupt it on purpose)

auth="htpasswd": basic auth, user `tester` / password `s3cret` (bcrypt from `htpasswd -B`, or
crypt's blowfish method; the registry accepts bcrypt only).

auth="token": the Bearer flow as Docker Hub does it. The registry trusts a self-signed
certificate (rootcertbundle); a small token issuer in this process (http.server on another
loopback port) checks the same user/password with basic auth and answers with a JWT signed
RS256 by the certificate's key, carrying the certificate in its `x5c` header and granting the
requested scope. Signing uses the openssl command line: no Python crypto package needed.
"""

from __future__ import annotations

import base64
import http.server
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.parse
import urllib.request

USER, PASSWORD = "tester", "s3cret"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def have_registry() -> bool:
    return shutil.which("docker-registry") is not None


def _b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _bcrypt(password: str) -> str:
    if shutil.which("htpasswd"):
        out = subprocess.run(["htpasswd", "-nbB", USER, password], capture_output=True, text=True, check=True)
        return out.stdout.strip().split(":", 1)[1]
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt  # noqa: F401 (python < 3.13)

        return crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH))


class TokenIssuer:
    """GET /token?service=...&scope=repository:x:pull,push with basic auth -> {"token": JWT}."""

    def __init__(self, workdir: str, service: str, issuer: str):
        self.key = os.path.join(workdir, "token.key")
        self.cert = os.path.join(workdir, "token.crt")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", self.key,
                        "-out", self.cert, "-days", "2", "-subj", "/CN=minidock-test-token-issuer"],
                       check=True, capture_output=True)
        der = subprocess.run(["openssl", "x509", "-in", self.cert, "-outform", "DER"], check=True,
                             capture_output=True).stdout
        self.x5c = base64.b64encode(der).decode()
        self.service, self.issuer = service, issuer
        self.requests: list[dict] = []
        self.port = free_port()
        issuer_self = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                u = urllib.parse.urlsplit(self.path)
                q = urllib.parse.parse_qs(u.query)
                auth = self.headers.get("Authorization", "")
                issuer_self.requests.append({"path": u.path, "query": q, "auth": bool(auth)})
                user = None
                if auth.startswith("Basic "):
                    u_, _, p_ = base64.b64decode(auth[6:]).decode().partition(":")
                    if (u_, p_) != (USER, PASSWORD):
                        self.send_response(401)
                        self.end_headers()
                        self.wfile.write(b'{"errors":[{"code":"UNAUTHORIZED","message":"bad credentials"}]}')
                        return
                    user = u_
                access = []
                for scope in q.get("scope", []):
                    typ, name, actions = scope.split(":")
                    access.append({"type": typ, "name": name, "actions": actions.split(",") if user else []})
                body = json.dumps({"token": issuer_self.sign(user or "", access)}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def sign(self, subject: str, access: list[dict]) -> str:
        now = int(time.time())
        header = {"typ": "JWT", "alg": "RS256", "x5c": [self.x5c]}
        claims = {"iss": self.issuer, "sub": subject, "aud": self.service, "exp": now + 300,
                  "nbf": now - 10, "iat": now, "jti": base64.b16encode(os.urandom(8)).decode(), "access": access}
        signing_input = f"{_b64u(json.dumps(header).encode())}.{_b64u(json.dumps(claims).encode())}"
        sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", self.key], input=signing_input.encode(),
                             capture_output=True, check=True).stdout
        return f"{signing_input}.{_b64u(sig)}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Registry:
    def __init__(self, workdir: str, auth: str | None = None):
        self.dir = workdir
        self.auth = auth
        self.port = free_port()
        self.addr = f"127.0.0.1:{self.port}"
        self.storage = os.path.join(workdir, "storage")
        self.issuer: TokenIssuer | None = None
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> Registry:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def _config(self) -> str:
        lines = ["version: 0.1", "log:", "  level: error", "  accesslog:", "    disabled: true",
                 "storage:", "  filesystem:", f"    rootdirectory: {self.storage}",
                 "  delete:", "    enabled: true", "http:", f"  addr: {self.addr}"]
        if self.auth == "htpasswd":
            path = os.path.join(self.dir, "htpasswd")
            with open(path, "w") as f:
                f.write(f"{USER}:{_bcrypt(PASSWORD)}\n")
            lines += ["auth:", "  htpasswd:", "    realm: minidock-test", f"    path: {path}"]
        elif self.auth == "token":
            self.issuer = TokenIssuer(self.dir, "minidock-test-registry", "minidock-test-issuer")
            lines += ["auth:", "  token:", f"    realm: http://127.0.0.1:{self.issuer.port}/token",
                      "    service: minidock-test-registry", "    issuer: minidock-test-issuer",
                      f"    rootcertbundle: {self.issuer.cert}"]
        path = os.path.join(self.dir, "config.yml")
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        return path

    def start(self) -> None:
        os.makedirs(self.storage, exist_ok=True)
        cfg = self._config()
        self.log = open(os.path.join(self.dir, "registry.log"), "wb")
        self.proc = subprocess.Popen(["docker-registry", "serve", cfg], stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        for _ in range(100):
            try:
                urllib.request.urlopen(f"http://{self.addr}/v2/", timeout=1)
                return
            except urllib.error.HTTPError:
                return  # 401: up, and asking for auth
            except OSError:
                if self.proc.poll() is not None:
                    break
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"docker-registry did not start: {open(os.path.join(self.dir, 'registry.log')).read()}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.issuer:
            self.issuer.stop()
        if getattr(self, "log", None):
            self.log.close()

    def blob_file(self, digest: str) -> str:
        h = digest.split(":", 1)[1]
        return os.path.join(self.storage, "docker/registry/v2/blobs/sha256", h[:2], h, "data")


def store_listing(state_root) -> list[str]:
    """Everything the image store holds (to prove a failed operation changed nothing)."""
    from pathlib import Path

    img = Path(state_root) / "image"
    out = []
    for d in ("blobs", "layers", "images"):
        base = img / d
        if base.is_dir():
            out += sorted(str(p.relative_to(img)) for p in base.rglob("*"))
    repos = img / "repositories.json"
    out.append(repos.read_text() if repos.exists() else "")
    return out


def put_manifest(addr: str, repo: str, ref: str, doc: dict, media_type: str) -> str:
    """PUT a hand-made manifest into an anonymous registry. -> its digest."""
    import hashlib

    data = json.dumps(doc).encode()
    req = urllib.request.Request(f"http://{addr}/v2/{repo}/manifests/{ref}", data=data, method="PUT",
                                 headers={"Content-Type": media_type})
    urllib.request.urlopen(req, timeout=10).read()
    return "sha256:" + hashlib.sha256(data).hexdigest()


def get_manifest(addr: str, repo: str, ref: str) -> dict:
    req = urllib.request.Request(f"http://{addr}/v2/{repo}/manifests/{ref}", headers={"Accept": ", ".join([
        "application/vnd.oci.image.manifest.v1+json", "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.oci.image.index.v1+json"])})
    return json.loads(urllib.request.urlopen(req, timeout=10).read())
