"""CLI conformance: the same command against minidock and a private dockerd, compared.

Each case runs its command lines (with `{e}` for the engine's own names) on both engines and
compares the exit code and the normalised stdout (IDs, times, durations, sizes, the engine's
name), plus side effects where a later command of the case reads them. Every case records what
it is today: "same", "differs" (both run, results differ: the reason is written down) or
"missing" (minidock has no such thing). The test fails when a case's outcome changes, so the
summary in the README (`python tests/conformance/test_cli.py` prints it) stays true.

dockerd runs once for the module: its own data root and socket, in a network namespace of its
own (with --bridge=none it would delete the host's docker0), no iptables. Without dockerd the
minidock side still runs and its exit codes are checked.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass, field

import pytest

from tests.dockerd import PrivateDockerd

REPO = __import__("pathlib").Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (runs containers)")


@dataclass
class Case:
    id: str
    bullet: str
    steps: list  # command lines (lists of args); the last one's output is compared (all exit codes)
    expect: str = "same"  # same | differs | missing
    why: str = ""  # for differs/missing: what differs
    compare: str = "text"  # text | lines (sorted) | jsonkeys | tar | exit
    setup: list = field(default_factory=list)  # run on both first, results ignored


NONE = ["--network", "none"]
RUN = ["run", "--rm", *NONE]

CASES = [
    # --- Go templates (inspect -f) ----------------------------------------------------------
    Case("tmpl-fields", "templates", [["inspect", "-f", "{{.State.Running}} {{.State.Status}} {{.Name}}", "cf-web"]]),
    Case("tmpl-hostconfig-defaults", "templates", [["inspect", "-f",
         "{{.HostConfig.Memory}} {{.HostConfig.ShmSize}} {{.HostConfig.PidsLimit}} {{json .HostConfig.CapAdd}} "
         "{{.HostConfig.RestartPolicy.Name}} {{.HostConfig.OomKillDisable}} {{.HostConfig.Binds}}", "cf-web"]]),
    Case("tmpl-range-map", "templates", [["inspect", "-f", "{{range $k, $v := .Config.Labels}}{{$k}}={{$v}};{{end}}",
                                          "cf-web"]]),
    Case("tmpl-index-missing", "templates", [["inspect", "-f",
         '{{index .Config.Labels "tier"}}|{{index .Config.Labels "nope"}}|{{.Config.Labels.nope}}', "cf-web"]]),
    Case("tmpl-unknown-field", "templates", [["inspect", "-f", "{{.Nope}}", "cf-web"]], compare="exit"),
    Case("tmpl-struct-print", "templates", [["inspect", "-f", "{{.State.Dead}} {{.Config.Tty}} {{.SizeRw}}",
                                             "cf-web"]]),
    Case("tmpl-json", "templates", [["inspect", "-f", "{{json .Config.Labels}} {{json .Config.Cmd}}", "cf-web"]]),
    Case("tmpl-docker-funcs", "templates", [["inspect", "-f",
         '{{len .Config.Cmd}} {{join .Config.Cmd "+"}} {{upper .Config.Image}} {{title "a b"}} {{lower "X"}} '
         '{{split "a,b" ","}} {{truncate "abcdef" 3}} {{pad "x" 1 1}}|', "cf-web"]]),
    Case("tmpl-control", "templates", [["inspect", "-f",
         '{{if eq .State.Status "running"}}up{{else if .State.Paused}}p{{else}}down{{end}} '
         '{{with .State}}{{.ExitCode}}{{end}} {{printf "%05d|%-3s|%q" 42 "a" "b"}} '
         '{{$x := 1}}{{$x = 2}}{{$x}} {{- " trim" -}} {{/* c */}} {{and 1 0}} {{or 0 "z"}} {{not true}}',
         "cf-done"]]),
    Case("tmpl-parse-error", "templates", [["inspect", "-f", "{{.State.Running", "cf-web"]], compare="exit"),
    Case("tmpl-nil-pointer", "templates", [["inspect", "-f", "{{.State.Health}} {{.HostConfig.Init}}",
                                            "cf-web"]]),
    # --- ps ---------------------------------------------------------------------------------------
    Case("ps-name-regex", "ps", [["ps", "--filter", "name=^/cf-web$", "--format",
                                  '{{.Names}} {{.Label "tier"}} {{.Labels}} {{.State}} {{.Command}}']]),
    Case("ps-name-substring", "ps", [["ps", "-a", "--filter", "name=cf-", "--filter", "label=cf",
                                      "--format", "{{.Names}}"]]),
    Case("ps-table", "ps", [["ps", "--filter", "label=tier=web", "--format", "table {{.Names}}\\t{{.Image}}"]]),
    Case("ps-json-keys", "ps", [["ps", "--filter", "name=^/cf-web$", "--format", "json"]], compare="jsonkeys"),
    Case("ps-last", "ps", [["ps", "-a", "-n", "1", "--filter", "label=cf", "--format", "{{.Names}}"]]),
    Case("ps-exited-status", "ps", [["ps", "-a", "--filter", "exited=3", "--filter", "label=cf", "--format",
                                     "{{.Names}} {{.Status}}"]]),
    Case("ps-size", "ps", [["ps", "-s", "--filter", "name=^/cf-web$", "--format", "{{.Size}}"]]),
    Case("ps-bad-filter", "ps", [["ps", "--filter", "bogus=1"]], compare="exit"),
    Case("prune-bad-filter", "verbs", [["container", "prune", "-f", "--filter", "nope=1"]], compare="exit"),
    Case("ps-bad-field", "ps", [["ps", "--format", "{{.Nope}}"]], compare="exit"),
    # --- images -----------------------------------------------------------------------------------
    Case("images-repo", "images", [["images", "cf-repo", "--format", "{{.Repository}}:{{.Tag}}"]], compare="lines"),
    Case("images-reference-glob", "images", [["images", "--filter", "reference=*/cf-repo", "--format",
                                              "{{.Repository}}:{{.Tag}}"]], compare="lines"),
    Case("images-reference-tag", "images", [["images", "--filter", "reference=cf-repo:1", "--format",
                                             "{{.Repository}}:{{.Tag}} {{.ID}}"]]),
    # --- other --format -------------------------------------------------------------------------
    Case("network-ls-format", "format", [["network", "ls", "--filter", "name=^none$", "--format",
                                          "{{.Name}} {{.Driver}} {{.Scope}}"]]),
    Case("volume-ls-format", "format", [["volume", "ls", "--filter", "name=cf-vol", "--format",
                                         "{{.Name}} {{.Driver}} {{.Scope}}"]], setup=[["volume", "create", "cf-vol"]]),
    Case("info-format", "format", [["info", "--format", "{{.OSType}} {{.Architecture}}"]]),
    Case("version-format", "format", [["version", "--format", "{{.Server.Os}} {{.Client.Os}}"]]),
    Case("history-format", "format", [["history", "--format", "{{.ID}} {{.Size}}", "busybox"]]),
    Case("inspect-size", "format", [["inspect", "--size", "-f", "{{if .SizeRootFs}}sized{{end}}", "cf-web"]]),
    Case("top-ps-args", "format", [["top", "cf-web", "-o", "comm"]]),
    # --- verbs ----------------------------------------------------------------------------------
    Case("pause-unpause", "verbs", [["pause", "cf-web"], ["ps", "--filter", "name=^/cf-web$", "--format",
                                                           "{{.State}}"], ["unpause", "cf-web"]]),
    Case("pause-twice", "verbs", [["pause", "cf-web"], ["pause", "cf-web"], ["unpause", "cf-web"]],
         compare="exit"),
    Case("diff", "verbs", [["diff", "cf-diff"]], compare="lines"),
    Case("run-attach-stdout", "verbs", [[*RUN, "-a", "stdout", "busybox", "sh", "-c", "echo out; echo err >&2"]]),
    Case("attach-stopped", "verbs", [["attach", "cf-done"]], compare="exit"),
    Case("prune-label", "verbs", [["container", "prune", "-f", "--filter", "label=cf-prune=yes"],
                                  ["ps", "-a", "--filter", "label=cf-prune", "-q"]],
         setup=[["create", "--label", "cf-prune=yes", *NONE, "busybox", "true"]]),
    # --- run/create flags -----------------------------------------------------------------------
    Case("sysctl-host-key-refused", "flags", [[*RUN, "--sysctl", "kernel.panic=1", "busybox", "true"]],
         compare="exit"),
    Case("sysctl-namespaced", "flags", [[*RUN, "--sysctl", "kernel.shmmax=123456", "busybox", "cat",
                                         "/proc/sys/kernel/shmmax"]]),
    Case("gpus-refused", "flags", [[*RUN, "--gpus", "all", "busybox", "true"]], compare="exit"),
    Case("ulimit", "flags", [[*RUN, "--ulimit", "nproc=100:200", "--ulimit", "core=-1", "busybox", "sh", "-c",
                              "ulimit -u; ulimit -c"]]),
    Case("shm-size", "flags", [[*RUN, "--shm-size", "16m", "busybox", "sh", "-c",
                                "df -k /dev/shm | tail -1 | awk '{print $2}'"]]),
    Case("pid-host", "flags", [[*RUN, "--pid", "host", "busybox", "sh", "-c",
                                'test $(ls /proc | grep -c "^[0-9]") -gt 20 && echo many']]),
    Case("uts-host", "flags", [[*RUN, "--uts", "host", "busybox", "hostname"]]),
    Case("device", "flags", [[*RUN, "--device", "/dev/fuse", "busybox", "sh", "-c",
                              "stat -c '%t:%T %F' /dev/fuse"]]),
    Case("oom-score-adj", "flags", [[*RUN, "--oom-score-adj", "500", "busybox", "cat", "/proc/self/oom_score_adj"]]),
    Case("oom-score-adj-negative", "flags", [[*RUN, "--oom-score-adj", "-5", "busybox", "true"]], compare="exit"),
    Case("ulimit-word", "flags", [[*RUN, "--ulimit", "core=unlimited", "busybox", "true"]], compare="exit"),
    Case("bad-pid-mode", "flags", [[*RUN, "--pid", "bogus", "busybox", "true"]], compare="exit"),
    Case("userns-host", "flags", [[*RUN, "--userns", "host", "busybox", "cat", "/proc/self/uid_map"]]),
    Case("bad-userns-mode", "flags", [[*RUN, "--userns", "bogus", "busybox", "true"]], compare="exit"),
    Case("uidmap", "flags", [[*RUN, "--uidmap", "0:100000:65536", "busybox", "cat", "/proc/self/uid_map"]],
         expect="differs", why="podman's flag (minidock maps 0 100000 65536); Docker has only the daemon-wide "
                               "dockerd --userns-remap and refuses it as an unknown flag"),
    # --- logs -----------------------------------------------------------------------------------
    Case("logs-until", "logs", [["logs", "--until", "2000-01-01T00:00:00Z", "cf-done"]]),
    Case("logs-since", "logs", [["logs", "--since", "1h", "cf-done"]]),
    Case("logs-none-driver", "logs", [["logs", "cf-nolog"]], compare="exit"),
    Case("log-opt-rotation", "logs", [["logs", "cf-rot"]], compare="lines", expect="differs",
         why="both keep max-file files of whole lines, but where a rotation falls differs (minidock kept "
             "lines 84-99 where Docker kept 78-99)"),
    # --- cp and the container environment -------------------------------------------------------
    Case("cp-tar-out", "cp", [["cp", "cf-done:/etc/passwd", "-"]], compare="tar"),
    Case("exec-missing-binary", "env", [["exec", "cf-web", "nosuch"]], compare="exit"),
    Case("etc-mtab", "env", [["exec", "cf-web", "readlink", "/etc/mtab"]]),
    Case("run-missing-binary", "env", [[*RUN, "busybox", "nosuch"]], compare="exit"),
    Case("container-marker", "env", [["exec", "cf-web", "sh", "-c", "ls /.dockerenv /run/.containerenv 2>/dev/null"]],
         expect="differs", why="minidock's marker is /run/.containerenv (as podman's), Docker's /.dockerenv"),
]

SETUP = [
    ["run", "-d", "--name", "cf-web", *NONE, "-l", "tier=web", "-l", "cf=1", "busybox", "sleep", "600"],
    ["run", "--name", "cf-done", *NONE, "-l", "cf=1", "busybox", "sh", "-c", "echo out; echo err >&2; exit 3"],
    ["run", "-d", "--name", "cf-diff", *NONE, "-l", "cf=1", "busybox", "sh", "-c",
     "rm /bin/ls; mkdir /newdir; echo x > /newdir/f; echo y >> /etc/passwd; sleep 600"],
    ["run", "--name", "cf-nolog", *NONE, "-l", "cf=1", "--log-driver", "none", "busybox", "echo", "hi"],
    ["run", "--name", "cf-rot", *NONE, "-l", "cf=1", "--log-opt", "max-size=1k", "--log-opt", "max-file=2",
     "busybox", "sh", "-c", 'i=0; while [ $i -lt 100 ]; do echo "line $i"; i=$((i+1)); done'],
    ["tag", "busybox", "cf-repo:1"], ["tag", "busybox", "cf-repo:2"], ["tag", "busybox", "cf-other/cf-repo:1"],
]
CLEANUP = [["rm", "-f", "cf-web", "cf-done", "cf-diff", "cf-nolog", "cf-rot"], ["volume", "rm", "cf-vol"],
           ["rmi", "cf-repo:1", "cf-repo:2", "cf-other/cf-repo:1"]]


# --- normalising ------------------------------------------------------------------------------
_NORM = [
    (re.compile(r"\b[0-9a-f]{64}\b"), "<ID>"), (re.compile(r"\b[0-9a-f]{12}\b"), "<ID>"),
    (re.compile(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(\.\d+)?(Z| [+-]\d{4} \w+)?"), "<TIME>"),
    (re.compile(r"(Less than a second|About an? \w+|\d+ (second|minute|hour|day|week|month|year)s?)"), "<AGO>"),
    (re.compile(r"\d+(\.\d+)?[kMG]?B\b"), "<SIZE>"),
    (re.compile(r"\bminidock\b"), "docker"),
]


def normalise(text: str) -> str:
    for rx, rep in _NORM:
        text = rx.sub(rep, text)
    return "\n".join(line.rstrip() for line in text.splitlines())


def view(case: Case, out: bytes) -> object:
    if case.compare == "tar":
        try:
            return sorted(m.name for m in tarfile.open(fileobj=io.BytesIO(out)).getmembers())
        except tarfile.TarError:
            return None
    text = out.decode(errors="replace")
    if case.compare == "jsonkeys":
        return [sorted(json.loads(line)) for line in text.splitlines() if line.strip()]
    if case.compare == "lines":
        return sorted(normalise(text).splitlines())
    if case.compare == "exit":
        return None
    return normalise(text)


# --- the engines ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def engines(state_root, busybox, tmp_path_factory):
    md_env = dict(os.environ)
    md_env["PYTHONPATH"] = str(REPO) + os.pathsep + md_env.get("PYTHONPATH", "")

    def md(*args, input=None):
        return subprocess.run([sys.executable, "-m", "minidock", *args], capture_output=True, env=md_env,
                              timeout=120, input=input)

    docker = _private_dockerd(tmp_path_factory.mktemp("dockerd"))
    try:
        if docker is not None:
            saved = tmp_path_factory.mktemp("img") / "busybox.tar"
            assert md("save", "-o", str(saved), busybox).returncode == 0
            assert docker("load", "-i", str(saved)).returncode == 0
        for eng in ([md, docker] if docker else [md]):
            for args in SETUP:
                r = eng(*args)
                assert r.returncode in (0, 3), (args, r.stderr)  # cf-done exits 3
        time.sleep(0.5)
        yield md, docker
    finally:
        for eng in ([md, docker] if docker else [md]):
            for args in CLEANUP:
                eng(*args)
        if docker is not None:
            docker.stop()


def _private_dockerd(d):
    """dockerd with its own root, socket and network namespace (tests/dockerd.py); None where it
    cannot run."""
    docker = PrivateDockerd(d, text=False)
    return None if docker.start(tries=150) else docker


def run_case(case: Case, eng) -> tuple[list[int], bytes]:
    for args in case.setup:
        eng(*args)
    codes, out = [], b""
    for args in case.steps:
        r = eng(*args)
        codes.append(r.returncode)
        out = r.stdout
    return codes, out


def outcome(case: Case, md_res, docker_res) -> str:
    (mc, mo), (dc, do) = md_res, docker_res
    if any(c == 2 or b"No such command" in mo for c in mc) and all(c == 0 for c in dc):
        return "missing"
    if mc != dc:
        return "differs"
    return "same" if view(case, mo) == view(case, do) else "differs"


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_conformance(case, engines):
    md, docker = engines
    md_res = run_case(case, md)
    if docker is None:
        if case.expect == "same":
            assert all(c in (0,) for c in md_res[0]) or case.compare == "exit", md_res
        return
    docker_res = run_case(case, docker)
    got = outcome(case, md_res, docker_res)
    detail = (f"minidock {md_res[0]} {view(case, md_res[1])!r}\n"
              f"docker   {docker_res[0]} {view(case, docker_res[1])!r}")
    RESULTS[case.id] = got
    assert got == case.expect, f"{case.id}: {got}, recorded as {case.expect} ({case.why})\n{detail}"


RESULTS: dict[str, str] = {}


def summary() -> str:
    counts = {k: sum(1 for c in CASES if c.expect == k) for k in ("same", "differs", "missing")}
    return (f"{len(CASES)} cases: {counts['same']} same, {counts['differs']} differ, {counts['missing']} missing")


if __name__ == "__main__":
    print(summary())
    for c in CASES:
        if c.expect != "same":
            print(f"  {c.expect}: {c.id}: {c.why}")
    _ = tempfile  # (kept for ad-hoc runs)
