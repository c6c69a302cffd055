"""Pure parts of the registry client and credentials: challenges, platforms, media types, the
loopback rule, and the Docker-shaped credential files."""

from __future__ import annotations

import base64
import json

import pytest

from minidock.errors import MinidockError, NotFound
from minidock.image import auth, registry


def test_parse_bearer_and_basic_challenges():
    kind, p = registry._parse_challenge(
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull"')
    assert kind == "bearer"
    assert p == {"realm": "https://auth.docker.io/token", "service": "registry.docker.io",
                 "scope": "repository:library/alpine:pull"}
    assert registry._parse_challenge('Basic realm="x"') == ("basic", {"realm": "x"})


@pytest.mark.parametrize("domain,loop", [("localhost:5000", True), ("127.0.0.1:5000", True), ("127.1.2.3", True),
                                         ("[::1]:5000", True), ("registry.example.com", False),
                                         ("docker.io", False), ("10.0.0.1:5000", False)])
def test_only_loopback_is_plain_http_by_default(domain, loop, monkeypatch):
    monkeypatch.delenv("MINIDOCK_INSECURE_REGISTRIES", raising=False)
    assert registry.is_loopback(domain) is loop
    c = registry.Client(domain, creds=("u", "p"))
    assert (c.schemes[0] == "http") is loop
    if not loop:
        assert c.schemes == ["https"]


def test_insecure_registries_from_the_environment(monkeypatch):
    monkeypatch.setenv("MINIDOCK_INSECURE_REGISTRIES", "reg.lan:5000, other")
    assert registry.Client("reg.lan:5000", creds=("u", "p")).schemes == ["https-insecure", "http"]
    assert registry.Client("docker.io", creds=("u", "p")).host == "registry-1.docker.io"


INDEX = {"manifests": [
    {"digest": "sha256:" + "a" * 64, "platform": {"os": "linux", "architecture": "amd64"}},
    {"digest": "sha256:" + "b" * 64, "platform": {"os": "linux", "architecture": "arm", "variant": "v6"}},
    {"digest": "sha256:" + "c" * 64, "platform": {"os": "linux", "architecture": "arm", "variant": "v7"}},
    {"digest": "sha256:" + "d" * 64, "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}},
]}


def test_platform_selection():
    assert registry.select_platform(INDEX, "linux/amd64", "x")["digest"][7] == "a"
    assert registry.select_platform(INDEX, "linux/arm/v7", "x")["digest"][7] == "c"
    assert registry.select_platform(INDEX, "linux/arm64", "x")["digest"][7] == "d"
    with pytest.raises(NotFound) as e:
        registry.select_platform(INDEX, "linux/s390x", "alpine")
    assert "no matching manifest for linux/s390x" in e.value.message and "linux/arm/v7" in e.value.hint
    with pytest.raises(MinidockError):
        registry.parse_platform("amd64")


def test_manifests_that_are_not_images_are_refused():
    ok = {"config": {"mediaType": "application/vnd.oci.image.config.v1+json"},
          "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": "sha256:" + "a" * 64}]}
    registry.check_manifest(ok, "x")
    with pytest.raises(MinidockError, match="unsupported config media type.*not a container image"):
        registry.check_manifest(dict(ok, config={"mediaType": "application/vnd.cncf.helm.config.v1+json"}), "x")
    with pytest.raises(MinidockError, match="unsupported layer media type"):
        registry.check_manifest(dict(ok, layers=[{"mediaType": "application/x-lz4", "digest": "x"}]), "x")


def test_server_names():
    assert registry._server_domain("") == "docker.io"
    assert registry._server_domain("https://index.docker.io/v1/") == "docker.io"
    assert registry._server_domain("http://localhost:5000/") == "localhost:5000"


def test_credentials_ours_first_then_dockers(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIDOCK_AUTH_CONFIG", str(tmp_path / "ours.json"))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker"))
    assert auth.get("reg:5000") is None
    (tmp_path / "docker").mkdir()
    (tmp_path / "docker" / "config.json").write_text(json.dumps({"auths": {
        "https://index.docker.io/v1/": {"auth": base64.b64encode(b"hub:pw").decode()},
        "reg:5000": {"auth": base64.b64encode(b"d:dpw:with:colons").decode()}}}))
    assert auth.get("docker.io") == ("hub", "pw")
    assert auth.get("reg:5000") == ("d", "dpw:with:colons")
    path = auth.store("reg:5000", "me", "secret")
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert json.loads(path.read_text())["auths"]["reg:5000"]["auth"] == base64.b64encode(b"me:secret").decode()
    assert auth.get("reg:5000") == ("me", "secret")
    assert auth.remove("reg:5000") is True
    assert auth.remove("reg:5000") is False
    assert auth.get("reg:5000") == ("d", "dpw:with:colons")  # Docker's own file is never rewritten
