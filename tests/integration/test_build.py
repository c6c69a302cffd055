"""`minidock build` as a user runs it: the CLI in a subprocess, the busybox image, the real
runtime. Cache behaviour (hit, one changed file, ARG change, --no-cache, builder prune),
multi-stage --target, heredocs, cache mounts, .dockerignore, every instruction's effect on the
image config, ONBUILD, ADD (tar, URL), failures that leave nothing behind (failing RUN, syntax
error, Ctrl-C, kill -9 then system prune), --explain, and the built image pushed to a real
registry and pulled and run by podman."""

from __future__ import annotations

import http.server
import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from fixtures_registry import Registry, have_registry, store_listing  # noqa: E402


def write(d: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        p = d / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return d


def steps(stderr: str) -> dict[str, str]:
    """{step title: "CACHED" | "DONE" | "ERROR"} from the plain progress output."""
    titles, out = {}, {}
    for line in stderr.splitlines():
        if not line.startswith("#"):
            continue
        n, _, rest = line.partition(" ")
        if rest.startswith("["):
            titles[n] = rest.split("] ", 1)[1]
        elif n in titles and rest.split(" ")[0] in ("CACHED", "DONE", "ERROR:"):
            out[titles[n]] = rest.split(" ")[0].rstrip(":")
    return out


def inspect(md, ref: str) -> dict:
    r = md("image", "inspect", ref)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)[0]


def build(md, ctx: Path, *args, ok=True, **kw):
    r = md("build", "--progress", "plain", *args, str(ctx), **kw)
    if ok:
        assert r.returncode == 0, r.stderr
    return r


@pytest.fixture
def ctx(tmp_path):
    d = tmp_path / "ctx"
    d.mkdir()
    return d


APP = """\
FROM busybox AS base
ARG GREETING=hello
ENV APP=/app
COPY a.txt /app/
RUN echo "$GREETING" > /app/greeting && rm /bin/vi
COPY b.txt /app/
RUN cat /app/a.txt /app/b.txt > /app/both
"""


# ---- the cache ------------------------------------------------------------------------------------
def test_cache_hit_content_change_and_mtime(md, busybox, ctx):
    write(ctx, {"Dockerfile": APP, "a.txt": "A\n", "b.txt": "B\n"})
    first = build(md, ctx, "-t", "bcache:1", "--iidfile", ctx.parent / "iid1")
    assert set(steps(first.stderr).values()) == {"DONE"}
    r = md("run", "--rm", "bcache:1", "sh", "-c", "cat /app/both /app/greeting; ls /bin/vi 2>&1; echo $APP")
    assert r.stdout.splitlines() == ["A", "B", "hello", "ls: /bin/vi: No such file or directory", "/app"]

    # the same inputs: every step cached, the very same image
    again = build(md, ctx, "-t", "bcache:1", "--iidfile", ctx.parent / "iid2")
    st = steps(again.stderr)
    assert [v for k, v in st.items() if not k.startswith("FROM")] == ["CACHED"] * 4
    assert (ctx.parent / "iid1").read_text() == (ctx.parent / "iid2").read_text()

    # a new mtime, same content: still cached (the cache hashes content, not mtimes)
    os.utime(ctx / "a.txt", (1, 1))
    st = steps(build(md, ctx, "-t", "bcache:1").stderr)
    assert list(st.values()).count("CACHED") == 4

    # b.txt changes: the steps before it stay cached, its COPY and what follows run again
    (ctx / "b.txt").write_text("B2\n")
    st = steps(build(md, ctx, "-t", "bcache:2").stderr)
    assert st == {"FROM busybox": "DONE", "COPY a.txt /app/": "CACHED",
                  'RUN echo "$GREETING" > /app/greeting && rm /bin/vi': "CACHED",
                  "COPY b.txt /app/": "DONE", "RUN cat /app/a.txt /app/b.txt > /app/both": "DONE"}
    assert md("run", "--rm", "bcache:2", "cat", "/app/both").stdout == "A\nB2\n"
    # the first image is untouched
    assert md("run", "--rm", "bcache:1", "cat", "/app/both").stdout == "A\nB\n"


def test_arg_change_and_no_cache(md, busybox, ctx):
    write(ctx, {"Dockerfile": APP, "a.txt": "A\n", "b.txt": "B\n"})
    build(md, ctx, "-t", "barg:1")
    st = steps(build(md, ctx, "-t", "barg:2", "--build-arg", "GREETING=bonjour").stderr)
    assert st["COPY a.txt /app/"] == "CACHED"  # ARG does not touch COPY
    assert st['RUN echo "$GREETING" > /app/greeting && rm /bin/vi'] == "DONE"
    assert md("run", "--rm", "barg:2", "cat", "/app/greeting").stdout == "bonjour\n"
    # back to the default value: cached again
    st = steps(build(md, ctx, "-t", "barg:3").stderr)
    assert list(st.values()).count("CACHED") == 4
    # --no-cache runs everything
    st = steps(build(md, ctx, "-t", "barg:4", "--no-cache").stderr)
    assert "CACHED" not in st.values() and len(st) == 5
    hist = inspect(md, "barg:2")
    assert hist["Config"]["Env"][-1] == "APP=/app"


def test_builder_prune_and_system_df(md, busybox, ctx):
    write(ctx, {"Dockerfile": "FROM busybox\nRUN echo x > /x\n"})
    build(md, ctx, "-t", "bprune:1")
    df = md("system", "df")
    assert "Build Cache" in df.stdout, df.stdout
    r = md("builder", "prune", "-f")
    assert r.returncode == 0 and r.stdout.startswith("Total:"), r.stderr
    st = steps(build(md, ctx, "-t", "bprune:1").stderr)
    assert st["RUN echo x > /x"] == "DONE"
    # system prune clears it too
    assert md("system", "prune", "-f").returncode == 0
    st = steps(build(md, ctx, "-t", "bprune:1").stderr)
    assert st["RUN echo x > /x"] == "DONE"


# ---- stages, heredocs, mounts, .dockerignore ---------------------------------------------------
def test_multistage_target_builds_only_what_it_needs(md, busybox, ctx):
    write(ctx, {"Dockerfile": """\
FROM busybox AS tools
RUN echo tool > /tool
FROM busybox AS never
RUN echo this stage must not run; exit 7
FROM scratch AS app
COPY --from=tools /tool /tool
COPY --from=busybox /bin/busybox /bin/sh
FROM app AS final
RUN ["/bin/sh", "-c", "echo final > /final"]
"""})
    r = build(md, ctx, "-t", "bstage:app", "--target", "app")
    assert "never" not in r.stderr and "final" not in r.stderr
    info = inspect(md, "bstage:app")
    assert len(info["RootFS"]["Layers"]) == 2
    assert md("run", "--rm", "bstage:app", "/bin/sh", "-c", "read x < /tool; echo $x").stdout == "tool\n"
    r = build(md, ctx, "-t", "bstage:final")  # the last stage: tools, app, final (not `never`)
    assert "never" not in r.stderr
    assert steps(r.stderr)["COPY --from=tools /tool /tool"] == "CACHED"
    r = build(md, ctx, "--target", "nosuch", ok=False)
    assert r.returncode == 1 and "failed to reach build target nosuch" in r.stderr


def test_independent_stages_build_in_parallel(md, busybox, ctx):
    """Stages a and b meet through a shared cache mount: each waits (up to 60 s) for the other's
    mark. Built one after the other, the first would give up (exit 9); in parallel both pass."""
    import uuid

    rv = uuid.uuid4().hex[:8]
    wait = "i=0; while [ ! -e /s/{0} ]; do i=$((i+1)); [ $i -gt 600 ] && exit 9; sleep 0.1; done"
    write(ctx, {"Dockerfile": f"""\
FROM busybox AS a
RUN --mount=type=cache,id={rv},target=/s touch /s/a; {wait.format("b")}; echo a saw b > /done-a
FROM busybox AS b
RUN --mount=type=cache,id={rv},target=/s touch /s/b; {wait.format("a")}; echo b saw a > /done-b
FROM busybox
COPY --from=a /done-a /
COPY --from=b /done-b /
"""})
    r = build(md, ctx, "-t", "bpar:1", timeout=180)
    assert md("run", "--rm", "bpar:1", "cat", "/done-a", "/done-b").stdout == "a saw b\nb saw a\n"
    numbers = [line.split()[0] for line in r.stderr.splitlines() if line.startswith("#") and "] " in line]
    assert len(numbers) == len(set(numbers))  # one step number per step, across the stage builders
    # a failure in one parallel stage fails the build, and nothing is left behind
    write(ctx, {"Dockerfile": "FROM busybox AS a\nRUN sleep 1\nFROM busybox AS b\nRUN exit 4\n"
                              "FROM busybox\nCOPY --from=a /bin/sh /a\nCOPY --from=b /bin/sh /b\n"})
    r = build(md, ctx, "-t", "bpar:2", ok=False)
    assert r.returncode == 1 and "exit code: 4" in r.stderr
    assert md("ps", "-aq").stdout.split() == []


def test_heredocs(md, busybox, ctx):
    write(ctx, {"Dockerfile": """\
FROM busybox
ENV WHO=world
RUN <<EOF
echo one > /one
echo "two $WHO" > /two
EOF
RUN cat <<'EOT' > /quoted
not $WHO
EOT
COPY <<EOF /etc/hello.txt
hello ${WHO}
EOF
COPY <<-"EOF" /raw.txt
	raw $WHO
	EOF
"""})
    build(md, ctx, "-t", "bheredoc:1")
    r = md("run", "--rm", "bheredoc:1", "cat", "/one", "/two", "/quoted", "/etc/hello.txt", "/raw.txt")
    assert r.stdout == "one\ntwo world\nnot $WHO\nhello world\nraw $WHO\n", r.stderr


def test_cache_mount_survives_between_builds(md, busybox, ctx):
    write(ctx, {"Dockerfile": """\
FROM busybox
RUN --mount=type=cache,target=/var/cache/app echo run >> /var/cache/app/log && wc -l < /var/cache/app/log > /count
RUN --mount=type=tmpfs,target=/scratch touch /scratch/x && ls /scratch > /tmpfs-saw
RUN --mount=type=bind,source=data,target=/data cp /data/in /copied
""", "data/in": "bound\n"})
    build(md, ctx, "-t", "bmount:1")
    build(md, ctx, "-t", "bmount:2", "--no-cache")
    r = md("run", "--rm", "bmount:2", "sh", "-c",
           "cat /count /tmpfs-saw /copied; find /var/cache/app /scratch -mindepth 1")
    # the cache dir kept the first build's line; mount targets stay as empty dirs (as in BuildKit)
    assert r.stdout.split() == ["2", "x", "bound"], r.stdout
    assert md("run", "--rm", "bmount:1", "cat", "/count").stdout.strip() == "1"


def test_dockerignore(md, busybox, ctx):
    write(ctx, {"Dockerfile": "FROM busybox\nCOPY . /ctx/\n",
                ".dockerignore": "secret.txt\n*.log\n!keep.log\nsub/**/*.tmp\n",
                "secret.txt": "s", "a.log": "l", "keep.log": "k", "sub/x/y.tmp": "t", "sub/x/ok": "o"})
    build(md, ctx, "-t", "bignore:1")
    r = md("run", "--rm", "bignore:1", "sh", "-c", "cd /ctx && find . -type f | sort")
    assert r.stdout.split() == ["./.dockerignore", "./Dockerfile", "./keep.log", "./sub/x/ok"]
    # an excluded file changing does not invalidate the COPY
    (ctx / "secret.txt").write_text("changed")
    assert steps(build(md, ctx, "-t", "bignore:1").stderr)["COPY . /ctx/"] == "CACHED"
    # naming an excluded file or a path outside the context: Docker's message, nothing built
    before = store_listing(os.environ["MINIDOCK_ROOT"])
    for src in ("secret.txt", "../outside.txt", "nosuch.txt"):
        (ctx / "Dockerfile").write_text(f"FROM busybox\nCOPY {src} /x\n")
        r = build(md, ctx, "-t", "bignore:2", ok=False)
        assert r.returncode == 1
        name = src.rsplit("/", 1)[-1]
        assert f'failed to compute cache key: failed to calculate checksum of ref: "/{name}": not found' in r.stderr
    assert store_listing(os.environ["MINIDOCK_ROOT"]) == before


# ---- instructions and the image config ------------------------------------------------------------
def test_instructions_make_the_config_and_history(md, busybox, ctx):
    write(ctx, {"Dockerfile": """\
# syntax=docker/dockerfile:1
FROM busybox
LABEL org.example.a="1 2" b=c
MAINTAINER someone
ENV PATH=/opt/bin:$PATH NAME=x
EXPOSE 80 53/udp
USER 1000:1000
WORKDIR /home/app
WORKDIR sub
USER root
VOLUME ["/data"]
STOPSIGNAL SIGUSR1
HEALTHCHECK --interval=5s --retries=2 CMD wget -q localhost || exit 1
SHELL ["/bin/sh", "-ec"]
RUN echo shell=$0 > /shell-used
ENTRYPOINT ["/bin/echo"]
CMD ["hi"]
ONBUILD RUN echo triggered > /onbuild
""", "f.txt": "f"})
    build(md, ctx, "-t", "binst:1", "--label", "from.cli=yes")
    cfg = inspect(md, "binst:1")["Config"]
    assert cfg["Labels"] == {"org.example.a": "1 2", "b": "c", "from.cli": "yes"}
    assert "PATH=/opt/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" in cfg["Env"]
    assert cfg["ExposedPorts"] == {"80/tcp": {}, "53/udp": {}}
    assert cfg["User"] == "root" and cfg["WorkingDir"] == "/home/app/sub"
    assert cfg["Volumes"] == {"/data": {}} and cfg["StopSignal"] == "SIGUSR1"
    assert cfg["Healthcheck"] == {"Test": ["CMD-SHELL", "wget -q localhost || exit 1"], "Interval": 5_000_000_000,
                                  "Retries": 2}
    assert cfg["Shell"] == ["/bin/sh", "-ec"] and cfg["Entrypoint"] == ["/bin/echo"] and cfg["Cmd"] == ["hi"]
    assert cfg["OnBuild"] == ["RUN echo triggered > /onbuild"]
    assert md("run", "--rm", "binst:1").stdout == "hi\n"
    r = md("run", "--rm", "--entrypoint", "", "binst:1", "sh", "-c",
           "stat -c '%u:%g %a' /home/app/sub; cat /shell-used")
    assert r.stdout == "1000:1000 755\nshell=/bin/sh\n"  # BuildKit: WORKDIR made as the USER
    r = md("history", "--no-trunc", "binst:1")
    assert "ENV PATH=/opt/bin:/usr/local/sbin" in r.stdout and "RUN /bin/sh -ec echo shell=$0 > /shell-used" in r.stdout
    info = inspect(md, "binst:1")
    base_layers = len(inspect(md, busybox)["RootFS"]["Layers"])
    assert len(info["RootFS"]["Layers"]) == base_layers + 3  # WORKDIR x2 (created) and the RUN
    # ONBUILD triggers run in the child build, and are not inherited further
    write(ctx, {"Dockerfile": "FROM binst:1\nRUN cat /onbuild\n"})
    r = build(md, ctx, "-t", "binst:child")
    assert "triggered" in r.stderr
    assert md("run", "--rm", "--entrypoint", "cat", "binst:child", "/onbuild").stdout == "triggered\n"
    assert not inspect(md, "binst:child")["Config"].get("OnBuild")


def test_history_of_a_built_image(md, busybox, ctx):
    write(ctx, {"Dockerfile": "FROM busybox\nENV A=1\nRUN echo x > /x\nCMD [\"sh\"]\n"})
    build(md, ctx, "-t", "bhist:1")
    r = md("image", "inspect", "-f", "{{json .RootFS.Layers}}", "bhist:1")
    layers = json.loads(r.stdout)
    assert len(layers) == len(inspect(md, busybox)["RootFS"]["Layers"]) + 1
    root = Path(os.environ["MINIDOCK_ROOT"]) / "image"
    cfg = json.loads((root / "blobs/sha256" / inspect(md, "bhist:1")["Id"][7:]).read_text())
    mine = cfg["history"][-3:]
    assert [h["created_by"] for h in mine] == ["ENV A=1", "RUN /bin/sh -c echo x > /x # buildkit", 'CMD ["sh"]']
    assert [h.get("empty_layer", False) for h in mine] == [True, False, True]
    # the RUN's layer on disk holds exactly its change
    diff = root / "layers/sha256" / layers[-1][7:]
    assert sorted(os.listdir(diff)) == ["x"]


def test_copy_chown_chmod_globs_and_add(md, busybox, ctx, tmp_path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        data = b"inside the tar\n"
        ti = tarfile.TarInfo("pkg/file.txt")
        ti.size, ti.uid, ti.gid, ti.mode = len(data), 12, 34, 0o640
        tf.addfile(ti, io.BytesIO(data))
    (ctx / "pkg.tar.gz").write_bytes(buf.getvalue())
    write(ctx, {"Dockerfile": """\
FROM busybox
ARG OWNER=nobody
COPY --chown=$OWNER:nogroup --chmod=600 one.txt /dst/
COPY *.md /docs/
COPY dir /dir-contents
ADD pkg.tar.gz /opt/
ADD one.txt /added/renamed.txt
""", "one.txt": "1", "a.md": "a", "b.md": "b", "dir/sub/f": "f"})
    build(md, ctx, "-t", "bcopy:1")
    r = md("run", "--rm", "bcopy:1", "sh", "-c",
           "stat -c '%n %u:%g %a' /dst/one.txt /opt/pkg/file.txt; ls /docs; ls /dir-contents/sub; "
           "cat /added/renamed.txt")
    assert r.stdout.splitlines() == ["/dst/one.txt 65534:65534 600", "/opt/pkg/file.txt 12:34 640", "a.md", "b.md",
                                     "f", "1"], r.stdout
    write(ctx, {"Dockerfile": "FROM busybox\nCOPY one.txt a.md /not-a-dir\n"})
    r = build(md, ctx, ok=False)
    assert "When using COPY with more than one source file, the destination must be a directory and end with a /" \
        in r.stderr


def test_add_url(md, busybox, ctx):
    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = b"downloaded\n"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    srv = http.server.HTTPServer(("127.0.0.1", 0), H)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        port = srv.server_address[1]
        write(ctx, {"Dockerfile": f"FROM busybox\nADD http://127.0.0.1:{port}/files/data.txt /web/\n"})
        build(md, ctx, "-t", "burl:1")
        r = md("run", "--rm", "burl:1", "sh", "-c", "cat /web/data.txt; stat -c %a /web/data.txt")
        assert r.stdout == "downloaded\n600\n"
    finally:
        srv.shutdown()
        srv.server_close()
    write(ctx, {"Dockerfile": f"FROM busybox\nADD http://127.0.0.1:{port}/gone /x\n"})
    r = build(md, ctx, ok=False)
    assert r.returncode == 1 and f'failed to load cache key: Get "http://127.0.0.1:{port}/gone"' in r.stderr
    assert "Connection refused" in r.stderr


def test_dockerfile_on_stdin_and_quiet(md, busybox, tmp_path):
    r = md("build", "-q", "-", input="FROM busybox\nRUN echo from-stdin > /s\n")
    assert r.returncode == 0, r.stderr
    image_id = r.stdout.strip()
    assert image_id.startswith("sha256:") and r.stderr == ""
    assert md("run", "--rm", image_id, "cat", "/s").stdout == "from-stdin\n"
    r = md("build", "-", input="FROM busybox\nCOPY x /x\n")
    assert r.returncode == 1 and "no build context" in r.stderr


def test_platform(md, busybox, ctx):
    write(ctx, {"Dockerfile": "FROM --platform=$BUILDPLATFORM busybox\nARG TARGETARCH\nRUN echo $TARGETARCH > /arch\n"})
    build(md, ctx, "-t", "bplat:1")
    arch = md("run", "--rm", "bplat:1", "cat", "/arch").stdout.strip()
    assert arch and arch == inspect(md, "bplat:1")["Architecture"]
    other = "s390x" if arch != "s390x" else "arm64"
    write(ctx, {"Dockerfile": f"FROM --platform=linux/{other} busybox\nRUN true\n"})
    r = build(md, ctx, ok=False)
    assert r.returncode == 1 and "minidock builds only for this host's platform" in r.stderr


# ---- failures leave nothing behind ---------------------------------------------------------------
def _containers(md) -> list[str]:
    return md("ps", "-aq").stdout.split()


def test_failing_run_leaves_nothing_behind(md, busybox, ctx):
    write(ctx, {"Dockerfile": "FROM busybox\nCOPY f /f\nRUN echo about to fail; echo oops >&2; exit 3\n"
                              "RUN echo never\n", "f": "1"})
    before = (store_listing(os.environ["MINIDOCK_ROOT"]), md("images", "-q").stdout, _containers(md))
    r = build(md, ctx, "-t", "bfail:1", ok=False)
    assert r.returncode == 1
    assert "about to fail" in r.stderr and "oops" in r.stderr
    assert 'process "/bin/sh -c echo about to fail; echo oops >&2; exit 3" did not complete successfully: ' \
           "exit code: 3" in r.stderr
    assert "Dockerfile:3" in r.stderr and ">>> RUN echo about to fail" in r.stderr and "never" not in r.stderr
    assert md("images", "-q").stdout == before[1] and _containers(md) == before[2]
    assert md("image", "inspect", "bfail:1").returncode != 0
    # (the leak check fixture proves no mount, cgroup or process is left)


def test_syntax_error_builds_nothing(md, busybox, ctx):
    write(ctx, {"Dockerfile": "FROM busybox\nRUN echo should-not-run\nCOPY --nope a b\n"})
    r = build(md, ctx, ok=False)
    assert r.returncode == 1
    assert "Dockerfile:3: unknown flag: --nope" in r.stderr and "should-not-run" not in r.stderr
    write(ctx, {"Dockerfile": "FROM busybox\nRUN echo should-not-run\nFROOM x\n"})
    r = build(md, ctx, ok=False)
    assert "Dockerfile:3: unknown instruction: FROOM" in r.stderr and "#1" not in r.stderr


def test_ctrl_c_mid_build_cleans_up(md_env, md, busybox, ctx):
    write(ctx, {"Dockerfile": "FROM busybox\nRUN echo started; sleep 60\n"})
    p = subprocess.Popen([sys.executable, "-m", "minidock", "build", "--progress", "plain", str(ctx)],
                         env=md_env, stderr=subprocess.PIPE, text=True)
    out = ""
    deadline = time.monotonic() + 60
    while not out.endswith(" started\n") and time.monotonic() < deadline:  # the RUN's output, not its title
        out = p.stderr.readline()
    p.send_signal(signal.SIGINT)
    p.communicate(timeout=60)
    assert p.returncode == 130
    assert _containers(md) == []


def test_killed_build_is_cleaned_by_system_prune(md_env, md, busybox, ctx):
    write(ctx, {"Dockerfile": "FROM busybox\nRUN echo started; sleep 60\n"})
    p = subprocess.Popen([sys.executable, "-m", "minidock", "build", "--progress", "plain", str(ctx)],
                         env=md_env, stderr=subprocess.PIPE, text=True, start_new_session=True)
    out = ""
    deadline = time.monotonic() + 60
    while not out.endswith(" started\n") and time.monotonic() < deadline:  # the RUN's output, not its title
        out = p.stderr.readline()
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    assert len(_containers(md)) == 1  # the build container, its mount and cgroup still there
    r = md("system", "prune", "-f")
    assert r.returncode == 0, r.stderr
    assert _containers(md) == []


def test_explain_shows_kernel_steps_of_run(md, busybox, ctx):
    write(ctx, {"Dockerfile": "FROM busybox\nRUN echo explained\n"})
    r = build(md, ctx, "--explain", "--no-cache")
    assert "[explain" in r.stderr and "pivot_root" in r.stderr and "mount" in r.stderr and "explained" in r.stderr


# ---- ship: the built image in a registry, pulled and run by podman --------------------------------
@pytest.mark.skipif(not have_registry(), reason="docker-registry is not installed")
def test_built_image_pushed_and_run_by_podman(md, busybox, ctx, tmp_path):
    import shutil

    if shutil.which("podman") is None:
        pytest.skip("podman is not installed")
    write(ctx, {"Dockerfile": "FROM busybox\nCOPY msg /msg\nRUN rm /bin/vi && echo built > /built\n"
                              "CMD [\"cat\", \"/msg\", \"/built\"]\n", "msg": "shipped\n"})
    regdir = tmp_path / "reg"
    regdir.mkdir()
    with Registry(str(regdir)) as reg:
        # the base comes from the registry: --pull fetches it even though it is not in the store
        base = f"{reg.addr}/lib/base:1"
        assert md("tag", busybox, base).returncode == 0
        assert md("push", base).returncode == 0
        assert md("rmi", base).returncode == 0
        (ctx / "Dockerfile").write_text((ctx / "Dockerfile").read_text().replace("FROM busybox", f"FROM {base}"))
        ref = f"{reg.addr}/build/app:1"
        r = build(md, ctx, "-t", ref, "--pull")
        assert "Pulling from lib/base" in r.stderr and "Digest: sha256:" in r.stderr, r.stderr
        r = md("push", ref)
        assert r.returncode == 0, r.stderr
        import tempfile

        pd = Path(tempfile.mkdtemp(prefix="md-bpod-"))  # podman: runroot path under 50 characters
        base = ["podman", "--root", f"{pd}/root", "--runroot", f"{pd}/run", "--cgroup-manager", "cgroupfs",
                "--events-backend", "none"] + (["--runtime", "runc"] if shutil.which("runc") else [])
        try:
            r = subprocess.run(base + ["pull", "--tls-verify=false", ref], capture_output=True, text=True,
                               timeout=180)
            if r.returncode != 0 and "podman" in r.stderr and "info" in r.stderr:
                pytest.skip(f"podman does not work here: {r.stderr[:200]}")
            assert r.returncode == 0, r.stderr
            r = subprocess.run(base + ["run", "--rm", "--network", "none", "--ulimit", "nproc=1024:1024",
                                       "--ulimit", "nofile=1024:1024", ref], capture_output=True, text=True,
                               timeout=180)
            assert r.returncode == 0, r.stderr
            assert r.stdout == "shipped\nbuilt\n"
            r = subprocess.run(base + ["run", "--rm", "--network", "none", "--ulimit", "nproc=1024:1024",
                                       "--ulimit", "nofile=1024:1024", ref, "ls", "/bin/vi"],
                               capture_output=True, text=True, timeout=180)
            assert r.returncode != 0  # the whiteout of the RUN's layer is honoured by podman
        finally:
            subprocess.run(base + ["rmi", "-af"], capture_output=True)
            subprocess.run(["umount", "-R", f"{pd}/root/overlay"], capture_output=True)
            shutil.rmtree(pd, ignore_errors=True)
