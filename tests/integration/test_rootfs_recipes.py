"""The rootfs/ recipes build base images the store imports through its normal path."""

from __future__ import annotations

import subprocess
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _reachable(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=5).close()
        return True
    except Exception:  # noqa: BLE001 - any failure means: not reachable from here
        return False


def test_alpine_recipe_fails_clearly_offline_or_builds(tmp_path):
    out = tmp_path / "alpine.tar"
    r = subprocess.run(["sh", str(REPO / "rootfs" / "alpine.sh"), str(out)], capture_output=True, text=True,
                       timeout=120)
    if r.returncode == 0:  # a machine with internet
        assert out.stat().st_size > 1_000_000
        return
    assert r.returncode == 1
    assert "needs internet; use rootfs/busybox.sh or rootfs/debian.sh" in r.stderr
    assert "Traceback" not in r.stderr and not out.exists()


def test_debian_recipe_builds_a_runnable_image(md, busybox, tmp_path):
    if not _reachable("http://deb.debian.org/debian/dists/bookworm/Release"):
        pytest.skip("no Debian mirror reachable from here")
    out = tmp_path / "debian.tar"
    r = subprocess.run(["sh", str(REPO / "rootfs" / "debian.sh"), str(out)], capture_output=True, text=True,
                       timeout=900)
    assert r.returncode == 0, r.stderr
    assert md("import", out, "debian:test", "--change", 'CMD ["bash"]').returncode == 0
    r = md("run", "--rm", "debian:test", "cat", "/etc/debian_version")
    assert r.returncode == 0 and r.stdout.strip()[:2].isdigit()
    assert md("rmi", "debian:test").returncode == 0
