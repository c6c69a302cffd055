"""A private dockerd for the tests that compare minidock with Docker, written once.

    d = PrivateDockerd(workdir)          # or PrivateDockerd() for a fresh temporary directory
    why = d.start()                      # None when it answers `docker info`, else why not
    d("run", "--rm", "busybox", "true")  # the docker client on d's socket -> CompletedProcess
    d.stop()                             # containers removed, dockerd stopped, its mounts gone

Its own data root, exec root, socket and pid file, `--bridge=none --iptables=false
--ip6tables=false --ip-forward=false --ip-masq=false`, and its own network namespace (`unshare
--net`, loopback up): with --bridge=none dockerd deletes a `docker0` it finds, which would be the
host's otherwise. It runs without the tests' MINIDOCK_* environment (it is not one of our
processes) in a session of its own, so stop() reaches its shims too.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from tests.conftest import umount_under

_SCRIPT = ('ip link set lo up 2>/dev/null || true; d="$1"; s="$2"; shift 2; exec dockerd --data-root "$d/data" '
           '--exec-root "$d/exec" -H "$s" --pidfile "$d/dockerd.pid" --iptables=false --ip6tables=false '
           '--bridge=none --ip-forward=false --ip-masq=false "$@"')


def available() -> str | None:
    """None if a private dockerd can be tried here, else why not."""
    for tool in ("dockerd", "docker", "unshare"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    if os.environ.get("MINIDOCK_NO_DOCKERD"):
        return "MINIDOCK_NO_DOCKERD is set"
    return None


class PrivateDockerd:
    def __init__(self, workdir: str | os.PathLike | None = None, *, args: tuple = (), cli: str = "docker",
                 env: dict | None = None, text: bool = True, timeout: float = 180) -> None:
        self.dir = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="minidock-docker-"))
        self.owned = workdir is None  # a directory we made is removed by stop()
        self.sock = f"unix://{self.dir}/docker.sock"
        self.args = tuple(map(str, args))
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("MINIDOCK_")}
        self.env.update(env or {})
        self.base = [cli, "-H", self.sock]
        self.text, self.timeout = text, timeout
        self.proc: subprocess.Popen | None = None
        self.log = None

    def start(self, tries: int = 300) -> str | None:
        why = available()
        if why:
            return why
        self.log = open(self.dir / "dockerd.log", "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(["unshare", "--net", "--", "sh", "-c", _SCRIPT, "sh", str(self.dir), self.sock,
                                      *self.args], stdout=self.log, stderr=subprocess.STDOUT, env=self.env,
                                     start_new_session=True)
        for _ in range(tries):
            if self.proc.poll() is not None:
                break
            if self("info", check=False).returncode == 0:
                return None
            time.sleep(0.2)
        reason = (self.dir / "dockerd.log").read_text(errors="replace")[-400:]
        self.stop()
        return f"dockerd did not start: {reason}"

    def __call__(self, *args, check: bool = False, input=None, timeout: float | None = None,
                 text: bool | None = None) -> subprocess.CompletedProcess:
        r = subprocess.run([*self.base, *map(str, args)], capture_output=True, env=self.env, input=input,
                           timeout=timeout or self.timeout, text=self.text if text is None else text)
        if check and r.returncode != 0:
            err = r.stderr if isinstance(r.stderr, str) else r.stderr.decode(errors="replace")
            raise AssertionError(f"docker {' '.join(map(str, args))}: {err.strip()[-600:]}")
        return r

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                ids = self("ps", "-aq", check=False, text=True, timeout=60).stdout.split()
                if ids:
                    self("rm", "-f", *ids, check=False, timeout=120)
            except subprocess.TimeoutExpired:
                pass
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(60)
            except (subprocess.TimeoutExpired, ProcessLookupError):
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait()
        if self.log is not None:
            self.log.close()
            self.log = None
        umount_under(str(self.dir) + "/")
        if self.owned:
            shutil.rmtree(self.dir, ignore_errors=True)


def with_busybox(workdir, busybox_tar, **kw):
    """For a module fixture: a started private dockerd with the tests' busybox imported as
    `busybox`; yields the docker command line (["docker", "-H", sock]); skips where none starts."""
    import pytest

    d = PrivateDockerd(workdir, **kw)
    why = d.start(tries=150)
    if why:
        pytest.skip(why)
    try:
        d("import", busybox_tar, "busybox", check=True)
        yield d.base
    finally:
        d.stop()
