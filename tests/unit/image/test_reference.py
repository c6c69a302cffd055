"""Image references normalize the way Docker's distribution/reference does."""

import pytest

from minidock.errors import InvalidArgument
from minidock.image.reference import looks_like_id, parse


@pytest.mark.parametrize("ref, full, familiar", [
    ("alpine", "docker.io/library/alpine:latest", "alpine:latest"),
    ("alpine:3.19", "docker.io/library/alpine:3.19", "alpine:3.19"),
    ("user/app", "docker.io/user/app:latest", "user/app:latest"),
    ("index.docker.io/library/busybox:1", "docker.io/library/busybox:1", "busybox:1"),
    ("localhost:5000/ns/app:v1", "localhost:5000/ns/app:v1", "localhost:5000/ns/app:v1"),
    ("localhost/app", "localhost/app:latest", "localhost/app:latest"),
    ("quay.io/a/b/c:x", "quay.io/a/b/c:x", "quay.io/a/b/c:x"),
    ("app@sha256:" + "a" * 64, "docker.io/library/app@sha256:" + "a" * 64, "app@sha256:" + "a" * 64),
])
def test_normalize(ref, full, familiar):
    r = parse(ref)
    assert str(r) == full
    assert r.familiar() == familiar


@pytest.mark.parametrize("bad", ["", "UPPER", "a b", "app:", "app:-bad", "app@sha256:short", "/abs", "a//b",
                                 "app:" + "t" * 129, " alpine"])
def test_invalid_references_are_refused_clearly(bad):
    with pytest.raises(InvalidArgument) as e:
        parse(bad)
    assert "invalid reference format" in e.value.message


def test_uppercase_repository_says_lowercase():
    with pytest.raises(InvalidArgument, match="must be lowercase"):
        parse("Alpine")


def test_ids():
    assert looks_like_id("1adb053c58e5")
    assert looks_like_id("sha256:" + "0" * 64)
    assert not looks_like_id("busybox")
