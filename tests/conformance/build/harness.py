"""Build conformance against Docker itself: buildah's conformance cases (Dockerfiles and contexts
in <repo>/../shared/corpus/build/buildah-conformance, case table in cases.json) built by
`minidock build` and by `DOCKER_BUILDKIT=1 docker build --no-cache --network none` on a private
dockerd, then compared field by field (image config) and file by file (type, mode, owner, size,
link target, content hash).

Used by tests/integration/test_build_conformance.py (a fixed sample in CI) and by
scripts/build-conformance (every case, with a table of results).

What is left out of the comparison, and why:
* mtimes (buildah's own fsSkip lists are all mtimes or directories RUN bleeds into; BuildKit
  and the classic builder disagree on them too);
* mount stubs RUN leaves behind in BuildKit 0.8 (docker 20.10): an empty /etc/hosts,
  /etc/resolv.conf, /etc/hostname, /.dockerenv, or an empty /proc /sys /dev /run dir present on
  one side only;
* config fields outside the list the issue names (created, history, container_config, ...).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
sys.path.insert(0, str(REPO))

from minidock.build import dockerfile as D  # noqa: E402
from tests.dockerd import PrivateDockerd  # noqa: E402

CONFIG_FIELDS = ("Env", "Cmd", "Entrypoint", "WorkingDir", "User", "ExposedPorts", "Volumes", "Labels",
                 "Healthcheck", "StopSignal", "OnBuild", "Shell")
STUBS = {"etc/hosts", "etc/resolv.conf", "etc/hostname", ".dockerenv", "proc", "sys", "dev", "run"}
LOCAL_BASES = {"busybox", "busybox:latest", "mirror.gcr.io/busybox", "mirror.gcr.io/busybox:latest",
               "docker.io/library/busybox", "docker.io/library/busybox:latest", "scratch"}
# a fixed sample run in CI (every other case runs from scripts/build-conformance)
CI_SAMPLE = ("copy file to workdir", "copy directory to root without explicit slash", "directory",
             "environment", "run with JSON", "wildcard", "add-archive-1", "env-escaped-list",
             "multi-stage-derived", "copyglob-1", "dockerignore-is-even-there",
             "build-arg overrides header arg for FROM", "mount-cache-by-ownership",
             "minidock: global ARGs, platform ARGs, proxy ARGs",
             "minidock: CMD ENTRYPOINT SHELL HEALTHCHECK ONBUILD config",
             "minidock: ARG and ENV precedence",
             "minidock: expansion in ENV LABEL WORKDIR USER EXPOSE VOLUME STOPSIGNAL COPY")


def corpus_dir() -> Path | None:
    cands = [REPO.parent / "shared" / "corpus"]
    if os.environ.get("MINIDOCK_SHARED"):
        cands.append(Path(os.environ["MINIDOCK_SHARED"]) / "corpus")
    cands.append(Path("/work/shared/corpus"))
    for c in cands:
        if (c / "build" / "buildah-conformance").is_dir():
            return c / "build" / "buildah-conformance"
    return None


# ---- the cases -------------------------------------------------------------------------------------
@dataclass
class Case:
    name: str
    raw: dict
    skip: str | None = None            # why it cannot run here (offline, buildah-only, ...)
    dockerfile_text: str = ""
    fs_skip: set[str] = field(default_factory=set)

    @property
    def should_fail_at(self) -> int:
        return int(self.raw.get("shouldFailAt") or 0)

    @property
    def build_args(self) -> dict[str, str]:
        return dict(self.raw.get("buildArgs") or {})

    def dockerfile_name(self) -> str:
        return self.raw.get("dockerfile") or "Dockerfile"


# minidock's own cases, compared with Docker the same way: the language's corners that the
# buildah table leaves out (RUN writes what it sees into files, so the file comparison checks it)
EXTRA_CASES = [
    {"name": "minidock: ARG and ENV precedence", "buildArgs": {"V": "cli"}, "dockerfileContents": (
        "FROM busybox\nENV V=env\nARG V=arg\nRUN echo \"V=$V\" > /v\nARG W=arg\nENV W=env\n"
        "RUN echo \"W=$W\" > /w\nARG X=argx\nRUN echo \"X=$X\" > /x\nARG Y\nRUN echo \"Y=$Y.\" > /y\n")},
    {"name": "minidock: global ARGs, platform ARGs, proxy ARGs",
     "buildArgs": {"TAG": "latest", "HTTP_PROXY": "http://proxy.invalid:3128", "UNUSED": "1"},
     "dockerfileContents": (
        "ARG BASE=busybox\nARG TAG\nFROM --platform=$BUILDPLATFORM ${BASE}:${TAG:-nope} AS one\n"
        "RUN echo \"[$BASE] [$TAG] [$TARGETARCH]\" > /before\n"
        "ARG BASE\nARG TARGETARCH\nARG TARGETPLATFORM\nARG BUILDPLATFORM\n"
        "RUN echo \"[$BASE] [$TARGETARCH] [$TARGETPLATFORM] [$BUILDPLATFORM] [$HTTP_PROXY]\" > /after\n"
        "FROM one\nRUN cat /before /after > /both\n")},
    {"name": "minidock: expansion in ENV LABEL WORKDIR USER EXPOSE VOLUME STOPSIGNAL COPY",
     "dockerfileContents": (
        "FROM busybox\nENV A=a B=\"b c\" D=${NOPE:-dflt} E=${A:+alt} F='$A' G=\"$A\\$\" H=x\\ y\n"
        "ENV P=\"80 443/udp\" DIR=/work SIG=SIGUSR1 U=nobody\n"
        "LABEL l1=$A \"l 2\"=\"${B}\" l3=${D}\nWORKDIR $DIR/${A}\nEXPOSE $P 53\nVOLUME $DIR/vol /x\n"
        "STOPSIGNAL $SIG\nCOPY Dockerfile ${DIR}/copied\nUSER $U\n"
        "RUN env | grep -E '^[A-H]=' | sort > /tmp/env\n")},
    {"name": "minidock: escape directive, continuations, comments",
     "dockerfileContents": (
        "# escape=`\n\nFROM busybox\nRUN echo one `\n# a comment\n\n    two > /cont\n"
        "ENV WIN=C:\\dir\\sub\nRUN echo \"$WIN\" > /win\n")},
    {"name": "minidock: CMD ENTRYPOINT SHELL HEALTHCHECK ONBUILD config",
     "dockerfileContents": (
        "FROM busybox\nSHELL [\"/bin/sh\", \"-ec\"]\nCMD echo shell form\nENTRYPOINT [\"/bin/echo\"]\n"
        "HEALTHCHECK --interval=5s --timeout=2s --retries=4 CMD wget -q -O- localhost || exit 1\n"
        "ONBUILD RUN echo child\nONBUILD COPY . /src\nLABEL maintainer=me\nMAINTAINER someone\n")},
]


def load_cases(data: Path | None = None) -> list[Case]:
    data = data or corpus_dir()
    table = json.loads((HERE / "cases.json").read_text())["cases"] + EXTRA_CASES
    out = []
    for raw in table:
        c = Case(raw["name"], raw)
        c.skip = _why_skip(c, data)
        for s in raw.get("fsSkip") or []:
            parts = s.replace("(dir):", "").split(":")
            if parts[-1] != "mtime":
                c.fs_skip.add("/".join(parts))
        out.append(c)
    return out


def _why_skip(c: Case, data: Path | None) -> str | None:
    r = c.raw
    if data is None:
        return "corpus absent (<repo>/../shared/corpus/build/buildah-conformance)"
    if r.get("withoutDocker"):
        return "buildah-only feature (withoutDocker in buildah's table)"
    if r.get("transientMounts"):
        return "buildah-only feature (transient mounts)"
    if r.get("testUsingVolumes") or r.get("testUsingSetParent"):
        pass  # buildah compat flags: we compare against Docker's behaviour only
    tweak = r.get("tweakContextDir")
    if tweak and "dockerignore" not in tweak and c.name not in TWEAKS:
        return "its context is made by Go code in buildah's harness (tweakContextDir), not ported"
    if r.get("contextDir") and not (data / r["contextDir"]).is_dir():
        return f"context {r['contextDir']!r} is not in the corpus copy"
    if "dockerfileContents" in r:
        text = r["dockerfileContents"]
    else:
        base = data / r["contextDir"] if r.get("contextDir") else data
        p = base / c.dockerfile_name()
        if not p.is_file():
            return f"Dockerfile {c.dockerfile_name()!r} is not in the corpus copy"
        text = p.read_text(errors="surrogateescape")
    c.dockerfile_text = text
    try:
        df = D.parse(text)
    except D.DockerfileSyntaxError:
        return None  # a refusal is compared too (both must refuse at the same line)
    scope = D.global_scope(df, c.build_args)
    names = set()
    for st in df.stages:
        try:
            base = D.expand(st.base, scope, df.escape)
        except Exception:
            base = st.base
        if base.lower() not in names and base not in LOCAL_BASES:
            return f"needs base image {base!r} from the network"
        if st.name:
            names.add(st.name)
        for inst in st.instructions:
            if inst.cmd == "add" and any(re.match(r"^(https?|git)://|^git@", a) for a in inst.args[:-1]):
                return "ADD of a URL needs the network"
            if inst.cmd == "copy":
                frm = inst.options().get("from")
                if frm and frm.lower() not in names and not frm.isdigit() and frm not in LOCAL_BASES:
                    return f"COPY --from image {frm!r} needs the network"
    return None


def make_context(case: Case, data: Path, into: Path) -> tuple[Path, Path]:
    """The build context as buildah's harness makes it: the case's context dir (or just its
    Dockerfile) copied; inline contents written as <context>/Dockerfile."""
    ctx = into / "context"
    r = case.raw
    if r.get("contextDir"):
        shutil.copytree(data / r["contextDir"], ctx, symlinks=True)
    else:
        ctx.mkdir(parents=True)
        if r.get("dockerfile") and "dockerfileContents" not in r:
            dst = ctx / r["dockerfile"]
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(data / r["dockerfile"], dst)
    tweak = r.get("tweakContextDir")
    if tweak and "dockerignore" in tweak:
        di = ctx / ".dockerignore"
        di.write_text(tweak["dockerignore"])
        os.chmod(di, int(tweak["mode"], 8))
        os.utime(di, (TEST_DATE, TEST_DATE))
    elif tweak:
        TWEAKS[case.name](ctx)
    dfile = ctx / case.dockerfile_name()
    if "dockerfileContents" in r:
        dfile.parent.mkdir(parents=True, exist_ok=True)
        dfile.write_text(r["dockerfileContents"])
    return ctx, dfile


# ---- the context tweaks of buildah's table, ported (Go callbacks there) -----------------------------
TEST_DATE = 1485449953


def _put(path: Path, data: str, mode: int, uid: int = 0, gid: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data)
    os.chown(path, uid, gid)
    os.chmod(path, mode)
    os.utime(path, (TEST_DATE, TEST_DATE))


def _tweak_copy_escape_glob(ctx: Path) -> None:
    for d, content in (("jkl?", "another"), ("n?pe", "and also"), ("st*uv", "and yet")):
        (ctx / "app" / d).mkdir(mode=0o700)
        _put(ctx / "app" / d / "file.txt", content, 0o600)


def _tweak_copy_permissions(ctx: Path) -> None:
    (ctx / "subdir").mkdir(mode=0o755)
    _put(ctx / "subdir" / "would-be-owned-by-root", "test content", 0o640)
    _put(ctx / "subdir" / "would-be-owned-by-99", "test content", 0o640, 99, 99)


def _tweak_setuid_in_context(ctx: Path) -> None:
    for name, mode in (("should-be-setuid-file", 0o4755), ("should-be-setgid-file", 0o2755),
                       ("should-be-sticky-file", 0o1755), ("should-not-be-setuid-setgid-sticky-file", 0o640)):
        _put(ctx / name, "test content", mode)


def _tweak_setuid_in_archive(ctx: Path) -> None:
    with tarfile.open(ctx / "archive.tar", "w", format=tarfile.PAX_FORMAT) as t:
        for name, mode, is_dir in (("setuid-file", 0o4755, False), ("setgid-file", 0o2755, False),
                                   ("sticky-file", 0o1755, False), ("setuid-dir", 0o4755, True),
                                   ("setgid-dir", 0o2755, True), ("sticky-dir", 0o1755, True)):
            ti = tarfile.TarInfo(name)
            ti.mode, ti.mtime = mode, TEST_DATE
            if is_dir:
                ti.type = tarfile.DIRTYPE
                t.addfile(ti)
            else:
                ti.size = 8
                t.addfile(ti, io.BytesIO(b"whatever"))


TWEAKS = {
    "copy-escape-glob": _tweak_copy_escape_glob,
    "copy-permissions": _tweak_copy_permissions,
    "copy-permissions-implicit": _tweak_copy_permissions,
    "setuid-file-in-context": _tweak_setuid_in_context,
    "setuid-file-in-archive": _tweak_setuid_in_archive,
}


# ---- image summaries from a Docker archive (docker save / minidock save) ---------------------------
def summarize_archive(tar_path: Path) -> tuple[dict, dict]:
    """(config fields, {path: attributes}) of the image in a Docker archive, layers applied in
    order with whiteouts."""
    with tarfile.open(tar_path) as t:
        manifest = json.load(t.extractfile("manifest.json"))[0]
        cfg = json.load(t.extractfile(manifest["Config"]))
        files: dict[str, dict] = {}
        for layer in manifest["Layers"]:
            with tarfile.open(fileobj=io.BytesIO(t.extractfile(layer).read())) as lt:
                _apply_layer(lt, files)
    conf = cfg.get("config") or {}
    fields = {k: conf.get(k) for k in CONFIG_FIELDS}
    fields["Env"] = sorted(conf.get("Env") or [])
    for k in ("ExposedPorts", "Volumes", "Labels"):
        fields[k] = fields[k] or {}
    for k in ("Cmd", "Entrypoint", "OnBuild", "Shell"):
        fields[k] = fields[k] or None
    for k in ("WorkingDir", "User", "StopSignal"):
        fields[k] = fields[k] or ""
    return fields, files


def _norm(name: str) -> str:
    while name.startswith("./"):
        name = name[2:]
    name = name.strip("/")
    return "" if name == "." else name


def _apply_layer(lt: tarfile.TarFile, files: dict[str, dict]) -> None:
    members = lt.getmembers()
    for m in members:
        name = _norm(m.name)
        base = name.rsplit("/", 1)[-1]
        parent = name.rsplit("/", 1)[0] if "/" in name else ""
        if base == ".wh..wh..opq":
            for p in [p for p in files if p.startswith(parent + "/") if parent]:
                del files[p]
            continue
        if base.startswith(".wh."):
            victim = (parent + "/" if parent else "") + base[4:]
            for p in [p for p in files if p == victim or p.startswith(victim + "/")]:
                del files[p]
            continue
        if not name:
            continue
        if m.isdir() and name in files and files[name]["type"] == "dir":
            files[name].update(mode=oct(stat.S_IMODE(m.mode)), uid=m.uid, gid=m.gid)
            continue
        for p in [p for p in files if p == name or p.startswith(name + "/")]:
            if not (m.isdir() and p != name):
                del files[p]
        entry = {"mode": oct(stat.S_IMODE(m.mode)), "uid": m.uid, "gid": m.gid}
        if m.isdir():
            entry["type"] = "dir"
        elif m.issym():
            entry.update(type="symlink", target=m.linkname)
        elif m.islnk():
            tgt = _norm(m.linkname)
            src = files.get(tgt, {})
            entry.update(type="file", size=src.get("size"), sha256=src.get("sha256"))
        elif m.isfile():
            data = lt.extractfile(m).read()
            entry.update(type="file", size=len(data), sha256=hashlib.sha256(data).hexdigest())
        elif m.ischr() or m.isblk():
            entry.update(type="chr" if m.ischr() else "blk", dev=f"{m.devmajor}:{m.devminor}")
        elif m.isfifo():
            entry["type"] = "fifo"
        files[name] = entry


def compare(ref: tuple[dict, dict], got: tuple[dict, dict], fs_skip: set[str] = frozenset()) -> list[str]:
    """Differences, each "what: docker=... minidock=..."; [] when the images agree."""
    out = []
    rc, rf = ref
    gc, gf = got
    for k in CONFIG_FIELDS:
        if rc.get(k) != gc.get(k):
            out.append(f"config {k}: docker={rc.get(k)!r} minidock={gc.get(k)!r}")

    def skipped(p: str, entry: dict | None) -> bool:
        if p in fs_skip or any(p.startswith(s + "/") for s in fs_skip):
            return True
        if p in STUBS and entry is not None and entry.get("size", 0) in (0, None):
            return True
        return False

    for p in sorted(set(rf) | set(gf)):
        a, b = rf.get(p), gf.get(p)
        if a == b:
            continue
        if a is None:
            if not skipped(p, b):
                out.append(f"/{p}: only in minidock's image ({b})")
        elif b is None:
            if not skipped(p, a):
                out.append(f"/{p}: missing from minidock's image (docker: {a})")
        elif not skipped(p, None):
            diffs = {k: (a.get(k), b.get(k)) for k in set(a) | set(b) if a.get(k) != b.get(k)}
            out.append(f"/{p}: " + ", ".join(f"{k} docker={x!r} minidock={y!r}" for k, (x, y) in sorted(diffs.items())))
    return out


# ---- where a failed build stopped ------------------------------------------------------------------
def failing_line(output: str, dockerfile_text: str) -> int | None:
    """The Dockerfile line a failed build names: `Dockerfile:N`, `line N`, the instruction
    BuildKit prints as `> [stage n/m] INSTRUCTION:`, else the last step header of the progress
    output (`#4 [stage-0 2/3] INSTRUCTION`), matched to the Dockerfile's instructions."""
    for rx in (r"Dockerfile(?:\.[\w.-]+)?:(\d+)", r"\bline:? (\d+)"):
        m = re.search(rx, output)
        if m:
            return int(m.group(1))
    steps = re.findall(r"^\s*> \[[^\]]*\] (.*?):\s*$", output, re.M)
    steps = steps or re.findall(r"^#\d+ \[[^\]]*\] (.*?)\s*$", output, re.M)
    if not steps:
        return None
    want = " ".join(steps[-1].split())
    try:
        insts = D.parse_ast(dockerfile_text)[0]
    except D.DockerfileSyntaxError:
        return None
    for inst in insts:
        if " ".join(inst.original.split()) == want:
            return inst.line
    return None


# ---- the engines -----------------------------------------------------------------------------------
def run(cmd, env=None, timeout=600, input=None, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, env=env, timeout=timeout,
                          input=input, cwd=cwd)


def docker_cli() -> str:
    """The docker client of dockerd's own release (a newer stand-alone client needs the buildx
    plugin for BuildKit builds; 20.10's has BuildKit built in). $MINIDOCK_DOCKER_CLI overrides."""
    if os.environ.get("MINIDOCK_DOCKER_CLI"):
        return os.environ["MINIDOCK_DOCKER_CLI"]
    want = run(["dockerd", "--version"]).stdout.split(",")[0].split()[-1] if shutil.which("dockerd") else ""
    cands = [str(Path(p, "docker")) for p in os.environ.get("PATH", "").split(":")] + ["/usr/bin/docker"]
    for c in cands:
        if os.access(c, os.X_OK) and want and want in run([c, "--version"]).stdout:
            return c
    return shutil.which("docker") or "docker"


class DockerD(PrivateDockerd):
    """The private dockerd of tests/dockerd.py (own roots and socket, its own network namespace),
    driven with the client of its own release and BuildKit on; calls fail loudly by default."""

    def __init__(self) -> None:
        super().__init__(cli=docker_cli(), env={"DOCKER_BUILDKIT": "1"}, timeout=600)

    def __call__(self, *args, check=True, **kw):
        r = super().__call__(*args, **kw)
        if check and r.returncode != 0:
            raise RuntimeError(f"docker {' '.join(map(str, args))}: {r.stderr.strip()[-600:]}")
        return r


class Minidock:
    def __init__(self, env: dict | None = None) -> None:
        self.env = dict(env or os.environ)
        # $MINIDOCK_SRC: try another checkout's minidock (e.g. a builder not landed yet)
        self.env["PYTHONPATH"] = os.environ.get("MINIDOCK_SRC") or str(REPO)

    def __call__(self, *args, timeout=600, input=None):
        # from the source dir: `python -m` puts the working directory first on sys.path
        return run([sys.executable, "-m", "minidock", *args], env=self.env, timeout=timeout, input=input,
                   cwd=self.env["PYTHONPATH"])

    def can_build(self) -> str | None:
        r = self("build", "--help")
        if r.returncode != 0:
            return "`minidock build` is not available: " + (r.stderr.strip().splitlines() or ["?"])[-1]
        return None


def prepare_bases(md: Minidock, docker: DockerD, tmp: Path, base: str = "busybox") -> None:
    """The same busybox in both engines, also under the names the cases use."""
    tar = tmp / "busybox-base.tar"
    r = md("save", "-o", tar, base)
    if r.returncode != 0:
        raise RuntimeError(f"minidock save {base}: {r.stderr}")
    docker("load", "-i", tar)
    for alias in ("mirror.gcr.io/busybox:latest", "busybox:latest"):
        docker("tag", base if ":" in base else base + ":latest", alias)
        md("tag", base, alias)


@dataclass
class Result:
    name: str
    status: str                        # pass | fail | skip
    detail: str = ""
    diffs: list[str] = field(default_factory=list)


def run_case(case: Case, md: Minidock | None, docker: DockerD, work: Path, data: Path) -> Result:
    """One case; with md=None only the reference build runs (to check the docker side)."""
    if case.skip:
        return Result(case.name, "skip", case.skip)
    if md is None:
        return _docker_only(case, docker, work, data)
    tag = "bconf-" + re.sub(r"[^a-z0-9]+", "-", case.name.lower()).strip("-")
    d = Path(tempfile.mkdtemp(prefix="case-", dir=work))
    try:
        ctx, dfile = make_context(case, data, d)
        bargs = [a for k, v in case.build_args.items() for a in ("--build-arg", f"{k}={v}")]
        dr = docker("build", "--no-cache", "--network", "none", "-t", tag + ":docker", "-f", dfile, *bargs, ctx,
                    check=False)
        mr = md("build", "--no-cache", "--network", "none", "-t", tag + ":minidock", "-f", dfile, *bargs, ctx)
        dout, mout = dr.stdout + dr.stderr, mr.stdout + mr.stderr
        text = case.dockerfile_text or dfile.read_text(errors="surrogateescape")
        if case.should_fail_at:
            want = case.should_fail_at
            if dr.returncode == 0:
                return Result(case.name, "skip", f"reference docker build succeeded although the case expects a "
                                                 f"failure at line {want}")
            if mr.returncode == 0:
                return Result(case.name, "fail", f"minidock build succeeded; expected a failure at line {want} "
                                                 f"(docker failed: {_last(dout)})")
            dl, ml = failing_line(dout, text), failing_line(mout, text)
            if ml == want or (dl is not None and ml == dl):
                return Result(case.name, "pass", f"both fail at line {ml} (docker names line {dl})")
            return Result(case.name, "fail", f"minidock failed at line {ml}, expected {want} (docker names "
                                             f"line {dl}): {_last(mout)}")
        if dr.returncode != 0:
            return Result(case.name, "skip", f"reference docker build (BuildKit of dockerd "
                                             f"{docker_version(docker)}) fails: {_last(dout)}")
        if mr.returncode != 0:
            return Result(case.name, "fail", f"minidock build failed: {_last(mout)}")
        docker("save", "-o", d / "docker.tar", tag + ":docker")
        r = md("save", "-o", d / "minidock.tar", tag + ":minidock")
        if r.returncode != 0:
            return Result(case.name, "fail", f"minidock save: {r.stderr.strip()}")
        diffs = compare(summarize_archive(d / "docker.tar"), summarize_archive(d / "minidock.tar"), case.fs_skip)
        if diffs:
            return Result(case.name, "fail", f"{len(diffs)} difference(s)", diffs)
        return Result(case.name, "pass")
    finally:
        docker("rmi", "-f", tag + ":docker", check=False)
        md("rmi", "-f", tag + ":minidock")
        shutil.rmtree(d, ignore_errors=True)


def _docker_only(case: Case, docker: DockerD, work: Path, data: Path) -> Result:
    d = Path(tempfile.mkdtemp(prefix="case-", dir=work))
    tag = "bconf-ref:latest"
    try:
        ctx, dfile = make_context(case, data, d)
        bargs = [a for k, v in case.build_args.items() for a in ("--build-arg", f"{k}={v}")]
        dr = docker("build", "--no-cache", "--network", "none", "-t", tag, "-f", dfile, *bargs, ctx, check=False)
        out = dr.stdout + dr.stderr
        if dr.returncode != 0:
            line = failing_line(out, case.dockerfile_text or dfile.read_text(errors="surrogateescape"))
            ok = case.should_fail_at and line in (case.should_fail_at, None)
            return Result(case.name, "pass" if ok else "skip", f"docker fails at line {line}: {_last(out)}")
        docker("save", "-o", d / "docker.tar", tag)
        conf, files = summarize_archive(d / "docker.tar")
        return Result(case.name, "pass", f"docker built it: {len(files)} entries, Cmd={conf['Cmd']}")
    finally:
        docker("rmi", "-f", tag, check=False)
        shutil.rmtree(d, ignore_errors=True)


def _last(out: str) -> str:
    lines = [ln.strip() for ln in out.strip().splitlines() if ln.strip()]
    errs = [ln for ln in lines if "error" in ln.lower() or "failed" in ln.lower()]
    return (errs or lines or [""])[-1][:300]


_VERSION: dict[str, str] = {}


def docker_version(docker: DockerD) -> str:
    if "v" not in _VERSION:
        r = docker("version", "--format", "{{.Server.Version}}", check=False)
        _VERSION["v"] = r.stdout.strip() or "?"
    return _VERSION["v"]
