"""`minidock build` against Docker itself (BuildKit on a private dockerd in its own network
namespace) on buildah's conformance cases: image config field by field, files by type, mode,
owner, size, link target and content. CI runs the fixed sample harness.CI_SAMPLE; every case
runs from `scripts/build-conformance` (MINIDOCK_BUILD_CONFORMANCE=all runs them all here too).
Cases that cannot run offline are skipped with their reason (`scripts/build-conformance --list`)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "conformance" / "build"))
import harness as H  # noqa: E402

_ALL = os.environ.get("MINIDOCK_BUILD_CONFORMANCE") == "all"
_CASES = {c.name: c for c in H.load_cases()}
_NAMES = [n for n in _CASES if _ALL or n in H.CI_SAMPLE]

pytestmark = pytest.mark.noleakcheck   # one dockerd for the module; its fixture cleans up


@pytest.fixture(scope="module")
def engines(busybox, state_root, tmp_path_factory):
    if H.corpus_dir() is None:
        pytest.skip("corpus absent: <repo>/../shared/corpus/build/buildah-conformance")
    env = dict(os.environ)
    md = H.Minidock(env)
    why = md.can_build()
    if why:
        pytest.skip(why)
    docker = H.DockerD()
    why = docker.start()
    if why:
        pytest.skip(why)
    work = tmp_path_factory.mktemp("bconf")
    try:
        H.prepare_bases(md, docker, work, busybox)
        yield md, docker, work
    finally:
        docker.stop()


@pytest.mark.parametrize("name", _NAMES)
def test_same_image_as_docker(name, engines):
    md, docker, work = engines
    case = _CASES[name]
    res = H.run_case(case, md, docker, work, H.corpus_dir())
    if res.status == "skip":
        pytest.skip(res.detail)
    assert res.status == "pass", res.detail + "".join("\n  " + d for d in res.diffs)
