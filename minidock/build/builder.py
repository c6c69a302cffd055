"""`minidock build`: a Dockerfile and a context in, an ordinary image in the store out.

How a build runs (docs/build.md tells it for users):

1. Parse the whole Dockerfile (minidock.build.dockerfile) and check every instruction of the
   stages the target needs (flags, arguments) — a mistake anywhere builds nothing.
2. Stages are built in order, only those the target needs (FROM <stage>, COPY --from,
   RUN --mount from=). A stage's state is its base's layers + config, then one instruction after
   another:
   * metadata instructions (ENV, LABEL, CMD, USER, EXPOSE, ...) only edit the config and add a
     history entry with `empty_layer`;
   * RUN runs in a *build container*: an ordinary container record (label org.minidock.build)
     started through the engine (same runtime, isolation, cgroup and journal as `run`), its rootfs
     an overlay of the state's layers; its upper dir, less the mount stubs the runtime made,
     becomes the step's layer (tar with .wh. whiteouts -> blob -> unpacked snapshot);
   * COPY/ADD/WORKDIR mount the same overlay (journaled in a build container that never starts),
     write into it, and keep the upper dir the same way.
3. Each filesystem step has a cache key chained from its parent's (minidock.build.cache); a step
   whose key is known and whose layer is still in the store is reused without running.
4. The image is recorded (store.add_image) only at the end: a failed build leaves no image, no
   container, no mount and no cgroup behind (layers of the steps that succeeded stay in the build
   cache, as with BuildKit; `builder prune` drops them).
"""

from __future__ import annotations

import json
import os
import stat
import sys
import time
from dataclasses import dataclass, field

from minidock.build import cache as C
from minidock.build import dockerfile as D
from minidock.errors import InvalidArgument, MinidockError, NotFound

PROXY_ARGS = D.PROXY_ARGS

DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DEFAULT_SHELL = ["/bin/sh", "-c"]
COMMENT = "buildkit.dockerfile.v0"
BUILD_LABEL = "org.minidock.build"

class BuildError(MinidockError):
    """A failed build: docker build exits 1."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message, hint, exit_code=1)


@dataclass
class Options:
    context: str = "."                   # a directory, or "-" (Dockerfile on stdin, no context)
    file: str | None = None              # -f; "-" reads stdin
    tags: list[str] = field(default_factory=list)
    build_args: dict[str, str] = field(default_factory=dict)
    target: str | None = None
    no_cache: bool = False
    pull: bool = False
    quiet: bool = False
    iidfile: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    network: str | None = None           # default|bridge|none|host
    progress: str = "auto"               # auto|plain|quiet


# --- progress ---------------------------------------------------------------------------------------
class Progress:
    """BuildKit's plain progress: `#N title`, output lines with their time, `#N DONE 0.3s`."""

    def __init__(self, mode: str, stream=None):
        self.quiet = mode == "quiet"
        self.stream = stream or sys.stderr
        self.n = 0
        self._shm = self._lockf = None

    def share(self) -> None:
        """Number steps from a counter shared with forked stage builders (parallel stages)."""
        if self._shm is None:
            import mmap
            import tempfile

            self._shm = mmap.mmap(-1, 8)
            self._lockf = tempfile.TemporaryFile()
            self._shm[:8] = self.n.to_bytes(8, "little")

    def _next(self) -> int:
        if self._shm is None:
            self.n += 1
            return self.n
        import fcntl

        fcntl.lockf(self._lockf, fcntl.LOCK_EX)  # POSIX locks: per process, also after fork
        try:
            self.n = int.from_bytes(self._shm[:8], "little") + 1
            self._shm[:8] = self.n.to_bytes(8, "little")
        finally:
            fcntl.lockf(self._lockf, fcntl.LOCK_UN)
        return self.n

    def _out(self, text: str) -> None:
        if not self.quiet:
            self.stream.write(text + "\n")
            self.stream.flush()

    def step(self, title: str) -> Step:
        n = self._next()
        self._out(f"#{n} {title}")
        return Step(self, n, title)


class Step:
    def __init__(self, progress: Progress, n: int, title: str):
        self.p, self.n, self.title, self.t0 = progress, n, title, time.monotonic()
        self.tail: list[str] = []
        self.partial = {"stdout": b"", "stderr": b""}

    def line(self, text: str) -> None:
        self.tail = (self.tail + [text])[-20:]
        self.p._out(f"#{self.n} {time.monotonic() - self.t0:.3f} {text}")

    def done(self) -> None:
        self.p._out(f"#{self.n} DONE {time.monotonic() - self.t0:.1f}s")

    def cached(self) -> None:
        self.p._out(f"#{self.n} CACHED")

    def error(self, msg: str) -> None:
        self.p._out(f"#{self.n} ERROR: {msg}")

    # the log interface attach.pump writes a build container's output to
    def write(self, stream: str, data: bytes) -> None:
        buf = self.partial[stream] + data
        *lines, rest = buf.split(b"\n")
        for ln in lines:
            self.line(ln.decode("utf-8", "replace"))
        self.partial[stream] = rest

    def close(self) -> None:
        for rest in self.partial.values():
            if rest:
                self.line(rest.decode("utf-8", "replace"))
        self.partial = {"stdout": b"", "stderr": b""}


# --- the state of a stage ---------------------------------------------------------------------------
@dataclass
class State:
    name: str                           # stage name or "stage-N"
    key: str                            # cache key of everything so far
    layers: list[dict]                  # store layer records, lowest first
    config: dict                        # the whole OCI image config
    base_id: str = ""                   # the image the stage started from ("" for scratch)
    args: dict[str, str] = field(default_factory=dict)   # ARGs in scope (declared in the stage)
    cmd_set: bool = False               # CMD given in this stage (ENTRYPOINT then keeps it)
    unset: set[str] = field(default_factory=set)          # ARGs declared without a value
    arg_last: set[str] = field(default_factory=set)       # ARGs declared after the last ENV of that name

    @property
    def cfg(self) -> dict:
        return self.config.setdefault("config", {})

    def env(self) -> dict[str, str]:
        return dict(e.partition("=")[::2] for e in self.cfg.get("Env") or [])

    def scope(self) -> dict[str, str]:
        """The variables a step sees (for expansion, and RUN's environment): the image's ENV,
        then the stage's ENV and ARG lines in order, a later one replacing an earlier one of the
        same name (BuildKit: `ENV V=env` then `ARG V` gives the ARG's value; `ARG W` then
        `ENV W=env` gives env)."""
        out = {**self.args, **self.env()}
        out.update({k: self.args[k] for k in self.arg_last if k in self.args})
        return out

    def shell(self) -> list[str]:
        return list(self.cfg.get("Shell") or DEFAULT_SHELL)

    def workdir(self) -> str:
        return self.cfg.get("WorkingDir") or "/"

    def history(self, created_by: str, *, empty: bool, created: str | None = None) -> None:
        from minidock.util import now as now_rfc3339

        h = {"created": created or now_rfc3339(), "created_by": created_by, "comment": COMMENT}
        if empty:
            h["empty_layer"] = True
        self.config.setdefault("history", []).append(h)
        self.config["created"] = h["created"]


def _host_platform() -> str:
    os_, arch, variant = D.host_platform()
    return f"{os_}/{arch}" + (f"/{variant}" if variant else "")


def _flags(inst) -> dict:
    """The instruction's flags (the parser refused unknown ones before anything was built)."""
    return D.parse_flags(inst)


def _go_list(words: list[str]) -> str:
    return "[" + " ".join(json.dumps(w) for w in words) + "]"


# --- the builder ------------------------------------------------------------------------------------
class Builder:
    def __init__(self, opts: Options, progress: Progress | None = None):
        self.opts = opts
        self.progress = progress or Progress("quiet" if opts.quiet else opts.progress)
        self.cache = C.Cache(disabled=opts.no_cache)
        self.hashes = C.FileHashes()
        self.ctx = None                  # context.Tree of the build context (None: no context)
        self.df = None
        self.filename = "Dockerfile"
        self.text = ""
        self.states: dict[int, State] = {}
        self.global_args: dict[str, str] = {}
        self.used_args: set[str] = set()
        self._store = None
        self._lease = None
        self._lease_cm = None

    @property
    def store(self):
        if self._store is None:
            from minidock.image.store import ImageStore

            self._store = ImageStore()
        return self._store

    # ---- input ------------------------------------------------------------------------------
    def load(self) -> None:
        o = self.opts
        stdin_text = None
        if o.context == "-":
            stdin_text = sys.stdin.read()
            self.filename = "Dockerfile"
        else:
            if not os.path.isdir(o.context):
                raise BuildError(f"unable to prepare context: path \"{o.context}\" not found",
                                 "Give a directory (the build context), or - to read a Dockerfile from stdin.")
            from minidock.build import dockerignore
            from minidock.build.context import Tree

            self.ctx = Tree(o.context, dockerignore.read_dockerignore(o.context), self.hashes)
        if stdin_text is None:
            if o.file == "-":
                stdin_text = sys.stdin.read()
            else:
                path = o.file or os.path.join(o.context, "Dockerfile")
                if o.file and not os.path.isabs(o.file) and not os.path.exists(o.file):
                    path = os.path.join(o.context, o.file)
                self.filename = os.path.basename(path)
                try:
                    with open(path) as f:
                        stdin_text = f.read()
                except FileNotFoundError:
                    raise BuildError(f"failed to read dockerfile: open {path}: no such file or directory",
                                     "Name the Dockerfile with -f, or put one in the context.") from None
        self.text = stdin_text
        self.df = D.parse(self.text, self.filename)

    # ---- stages -----------------------------------------------------------------------------
    def _stage_index(self, ref: str, before: int | None = None) -> int | None:
        """The stage a name or number refers to (only earlier stages when `before` is given)."""
        stages = self.df.stages if before is None else self.df.stages[:before]
        if ref.isdigit():
            i = int(ref)
            return i if i < len(stages) else None
        for s in stages:
            if s.name and s.name.lower() == ref.lower():
                return s.index
        return None

    def _expand(self, word: str, scope: dict) -> str:
        return D.expand(word, scope, self.df.escape)

    def _base_ref(self, stage) -> str:
        return self._expand(stage.base, self.global_args)

    def _deps(self, stage) -> set[int]:
        deps = set()
        base = self._base_ref(stage)
        i = self._stage_index(base, stage.index)
        if i is not None:
            deps.add(i)
        for inst in stage.instructions:
            fl = _flags(inst)
            refs = []
            if inst.cmd == "copy" and fl.get("from"):
                refs.append(fl["from"])
            for m in fl.get("mount", []) if inst.cmd == "run" else []:
                spec = D.parse_mount(m, lambda v: self._expand(v, self.global_args))
                if spec.from_:
                    refs.append(spec.from_)
            for r in refs:
                j = self._stage_index(self._expand(r, self.global_args), stage.index)
                if j is not None:
                    deps.add(j)
        return deps

    def needed(self, target: int) -> list[int]:
        out, todo = set(), [target]
        while todo:
            i = todo.pop()
            if i in out:
                continue
            out.add(i)
            todo += list(self._deps(self.df.stages[i]))
        return sorted(out)

    def _global_args(self, target: str | None) -> None:
        self.global_scope = D.global_scope(self.df, self.opts.build_args, target)
        self.global_args = dict(self.global_scope)
        for inst in self.df.global_args:
            self.used_args |= {k for k, _ in inst.arg_pairs if k in self.opts.build_args}

    def check(self, stages: list[int]) -> None:
        """What the parser leaves to the builder, refused before anything is built."""
        for i in stages:
            for inst in self.df.stages[i].instructions:
                fl = _flags(inst)
                where = f"{self.filename}:{inst.line}"
                if inst.cmd == "run" and fl.get("security") not in (None, "sandbox"):
                    raise BuildError(f"{where}: RUN --security={fl['security']} is not supported "
                                     "(it needs an entitlement minidock does not grant)")
                if inst.cmd == "run" and fl.get("network") not in (None, "default", "none", "host"):
                    raise BuildError(f"{where}: unsupported network mode {fl['network']!r} for RUN --network")
                for m in fl.get("mount", []):
                    t = D.parse_mount(m, lambda v: v).type
                    if t not in ("bind", "cache", "tmpfs"):
                        raise BuildError(f"{where}: RUN --mount=type={t} is not supported by minidock "
                                         "(bind, cache and tmpfs are)")
                if inst.cmd == "add" and (fl.get("keep-git-dir") or any(
                        a.startswith(("git@", "git://")) or a.endswith(".git") for a in inst.args[:-1])):
                    raise BuildError(f"{where}: ADD of a git repository is not supported by minidock")

    # ---- the whole build ---------------------------------------------------------------------
    def run(self) -> str:
        self.load()
        target = len(self.df.stages) - 1
        if self.opts.target:
            t = self._stage_index(self.opts.target)
            if t is None or self.opts.target.isdigit():
                raise BuildError(f"failed to reach build target {self.opts.target} in Dockerfile",
                                 "Name a stage given with FROM ... AS NAME.")
            target = t
        self._global_args(self.df.stages[target].name)
        stages = self.needed(target)
        self.check(stages)
        try:
            self.build_stages(stages)
            return self.export(self.states[target])
        except BaseException:
            if self._lease_cm is not None:
                self._lease_cm.__exit__(*sys.exc_info())
                self._lease_cm = None
            raise
        finally:
            if self._lease_cm is not None:
                self._lease_cm.__exit__(None, None, None)
            self.hashes.save()
            unused = [a for a in self.opts.build_args if a not in self.used_args and a not in PROXY_ARGS]
            if unused:
                self.progress._out(f"[Warning] One or more build-args {unused} were not consumed")

    # ---- stages in waves: independent ones in parallel --------------------------------------------
    def build_stages(self, stages: list[int]) -> None:
        """Build the stages in dependency order. Stages that are ready together (all they need is
        built) and independent of each other build in parallel, each in a forked process of its
        own (the engine's output pump needs a main thread: one process per stage, not threads),
        up to one per CPU; a lone ready stage builds in this process."""
        deps = {i: (self._deps(self.df.stages[i]) & set(stages)) - {i} for i in stages}
        done: set[int] = set()
        width = max(1, min(os.cpu_count() or 1, 4))
        while len(done) < len(stages):
            ready = [i for i in stages if i not in done and deps[i] <= done]
            if len(ready) == 1 or width == 1 or os.environ.get("MINIDOCK_BUILD_SERIAL"):
                i = ready[0]
                self.states[i] = self.build_stage(self.df.stages[i])
                done.add(i)
                continue
            for k in range(0, len(ready), width):
                wave = ready[k:k + width]
                self.states.update(self._parallel(wave))
                done |= set(wave)
                self.cache._index = None  # the stage builders wrote entries: read the index again

    def _parallel(self, wave: list[int]) -> dict[int, State]:
        import signal as _signal

        self.progress.share()
        sys.stdout.flush()
        sys.stderr.flush()
        kids: dict[int, tuple[int, int]] = {}
        try:
            for i in wave:
                r, w = os.pipe()
                pid = os.fork()
                if pid == 0:  # a stage builder
                    os.close(r)
                    self._stage_child(i, w)  # never returns
                os.close(w)
                kids[pid] = (i, r)
            out, errors = {}, []
            for pid, (i, r) in kids.items():
                chunks = []
                while chunk := os.read(r, 1 << 16):
                    chunks.append(chunk)
                os.close(r)
                os.waitpid(pid, 0)
                msg = json.loads(b"".join(chunks) or b'{"error": "the stage builder died"}')
                if "error" in msg:
                    errors.append(msg)
                    continue
                d = msg["state"]
                out[i] = State(d["name"], d["key"], d["layers"], d["config"], d["base_id"], d["args"],
                               d["cmd_set"], set(d["unset"]), set(d["arg_last"]))
                self.used_args |= set(msg.get("used_args", []))
            kids.clear()
            if errors:
                raise BuildError(errors[0]["error"], errors[0].get("hint"))
            return out
        except BaseException:
            for pid in kids:  # Ctrl-C reached them too; make sure, and wait for their clean-up
                try:
                    os.kill(pid, _signal.SIGINT)
                except ProcessLookupError:
                    pass
            for pid in kids:
                try:
                    os.waitpid(pid, 0)
                except ChildProcessError:
                    pass
            raise

    def _stage_child(self, i: int, w: int) -> None:
        code = 0
        self._lease = self._lease_cm = None  # the parent's lease stays the parent's
        try:
            st = self.build_stage(self.df.stages[i])
            if self._lease_cm is not None:
                self._lease_cm.__exit__(None, None, None)
            msg = {"state": {"name": st.name, "key": st.key, "layers": st.layers, "config": st.config,
                             "base_id": st.base_id, "args": st.args, "cmd_set": st.cmd_set,
                             "unset": sorted(st.unset), "arg_last": sorted(st.arg_last)},
                   "used_args": sorted(self.used_args)}
        except BaseException as e:  # noqa: BLE001 - reported to the parent, which raises it
            if self._lease_cm is not None:
                self._lease_cm.__exit__(*sys.exc_info())
            if isinstance(e, MinidockError):
                msg = {"error": e.message, "hint": e.hint}
            elif isinstance(e, KeyboardInterrupt):
                msg = {"error": "interrupted"}
            else:
                msg = {"error": f"internal error: {type(e).__name__}: {e}"}
            code = 1
        try:
            self.hashes.save()
            data = json.dumps(msg).encode()
            while data:
                data = data[os.write(w, data):]
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)

    @property
    def lease(self):
        if self._lease is None:
            self._lease_cm = self.store.lease()
            self._lease = self._lease_cm.__enter__()
        return self._lease

    # ---- FROM -------------------------------------------------------------------------------
    def _count(self, stage) -> int:
        return 1 + sum(1 for x in stage.instructions if x.cmd in ("run", "copy", "add", "workdir"))

    def build_stage(self, stage) -> State:
        name = stage.name or f"stage-{stage.index}"
        self._stage_label, self._stage_total, self._stage_pos = name, self._count(stage), 1
        base = self._base_ref(stage)
        if stage.platform:
            plat = self._expand(stage.platform, self.global_args)
            host = _host_platform()
            if plat.split("/")[:2] != host.split("/")[:2]:
                raise BuildError(f"{self.filename}:{stage.instructions and stage.instructions[0].line or 1}: "
                                 f"FROM --platform={plat}: minidock builds only for this host's platform ({host})",
                                 "Drop --platform, or use $BUILDPLATFORM/$TARGETPLATFORM.")
        step = self.progress.step(f"[{name} 1/{self._stage_total}] FROM {base}")
        j = self._stage_index(base, stage.index)
        if base.lower() == "scratch":
            os_, arch = _host_platform().split("/")[:2]
            st = State(name, C.chain("scratch", ""), [], {
                "architecture": arch, "os": os_, "config": {"Env": [DEFAULT_PATH], "WorkingDir": "/"},
                "rootfs": {"type": "layers", "diff_ids": []}, "history": []})
        elif j is not None:
            src = self.states[j]
            st = State(name, src.key, list(src.layers), json.loads(json.dumps(src.config)), src.base_id)
        else:
            img = self._image(base)
            cfg = json.loads(json.dumps(img.config))
            for k in ("container", "container_config", "docker_version"):
                cfg.pop(k, None)
            cfg.setdefault("config", {})
            if not any(e.startswith("PATH=") for e in cfg["config"].get("Env") or []):
                cfg["config"]["Env"] = [DEFAULT_PATH] + list(cfg["config"].get("Env") or [])
            st = State(name, C.chain("image", img.id), [dict(x) for x in img.record["Layers"]], cfg, img.id)
        step.done()
        triggers = list(st.cfg.get("OnBuild") or [])
        st.cfg["OnBuild"] = None
        if not st.cfg.get("OnBuild"):
            st.cfg.pop("OnBuild", None)
        for trig in triggers:  # ONBUILD triggers of the base image run first, in the child build
            sub = D.parse(f"FROM scratch\n{trig}\n", f"{self.filename} (ONBUILD of {base})")
            for inst in sub.stages[0].instructions:
                inst.line = inst.end_line = stage.from_inst.line if stage.from_inst else 1
                self.dispatch(st, inst)
        for inst in stage.instructions:
            self.dispatch(st, inst)
        return st

    def _image(self, ref: str):
        from minidock.image import reference

        try:
            reference.parse(ref)
        except InvalidArgument as e:
            raise BuildError(f"failed to parse stage name \"{ref}\": {e.message}") from None
        if self.opts.pull:
            from minidock.engine.create import resolve_image

            return resolve_image(ref, "always")
        try:
            return self.store.resolve(ref)
        except NotFound:
            from minidock.engine.create import resolve_image

            return resolve_image(ref, "missing")

    # ---- one instruction ----------------------------------------------------------------------
    def dispatch(self, st: State, inst) -> None:
        handler = getattr(self, "do_" + inst.cmd, None)
        if handler is None:
            raise BuildError(f"{self.filename}:{inst.line}: unknown instruction: {inst.cmd.upper()}")
        from minidock.build.shell import ShellWordError

        try:
            handler(st, inst, _flags(inst))
        except BuildError:
            raise
        except (ShellWordError, MinidockError) as e:  # name the instruction, as BuildKit does
            raise BuildError(f"{self._where(inst)}: {e.message}", e.hint) from None

    def _where(self, inst) -> str:
        return f"{self.filename}:{inst.line}"

    def _pairs(self, st: State, inst) -> list[tuple[str, str]]:
        """ENV/LABEL arguments, keys and values expanded, all of them with the variables as they
        were before the instruction (`ENV A=a B=$A` leaves B as $A was before, as Docker does)."""
        scope = st.scope()
        out = []
        for k, v in inst.pairs:
            k, v = self._expand(k, scope), self._expand(v, scope)
            if not k:
                raise BuildError(f"{self._where(inst)}: {inst.cmd.upper()} names can not be blank")
            out.append((k, v))
        return out

    def do_env(self, st, inst, fl):
        env = st.env()
        pairs = self._pairs(st, inst)
        env.update(pairs)
        st.cfg["Env"] = [f"{k}={v}" for k, v in env.items()]
        st.arg_last -= {k for k, _ in pairs}
        self._meta(st, "ENV " + " ".join(f"{k}={v}" for k, v in pairs))

    def do_label(self, st, inst, fl):
        pairs = self._pairs(st, inst)
        st.cfg["Labels"] = {**(st.cfg.get("Labels") or {}), **dict(pairs)}
        self._meta(st, "LABEL " + " ".join(f"{k}={v}" for k, v in pairs))

    def do_maintainer(self, st, inst, fl):
        st.config["author"] = " ".join(inst.args)
        self._meta(st, "MAINTAINER " + st.config["author"])

    def do_arg(self, st, inst, fl):
        shown = []
        for name, default in inst.arg_pairs:
            if name in self.opts.build_args:
                self.used_args.add(name)
            val = D.resolve_stage_arg(name, default, self.opts.build_args, self.global_scope, st.scope(),
                                      self.df.escape)
            if val is None:
                st.args.pop(name, None)
                st.unset.add(name)
            else:
                st.args[name] = val
                st.unset.discard(name)
                st.arg_last.add(name)
            shown.append(f"{name}={val}" if val is not None else name)
        self._meta(st, "ARG " + " ".join(shown))

    def do_user(self, st, inst, fl):
        st.cfg["User"] = self._expand(" ".join(inst.args), st.scope())
        self._meta(st, "USER " + st.cfg["User"])

    def do_expose(self, st, inst, fl):
        ports = dict(st.cfg.get("ExposedPorts") or {})
        words = []
        for a in inst.args:
            words += D.expand_words(a, st.scope(), self.df.escape)
        for p in words:
            num, _, proto = p.partition("/")
            proto = (proto or "tcp").lower()
            lo, _, hi = num.partition("-")
            if not lo.isdigit() or (hi and not hi.isdigit()) or proto not in ("tcp", "udp", "sctp"):
                raise BuildError(f"{self._where(inst)}: invalid containerPort: {p}")
            for n in range(int(lo), int(hi or lo) + 1):
                ports[f"{n}/{proto}"] = {}
        st.cfg["ExposedPorts"] = ports
        self._meta(st, "EXPOSE " + " ".join(f"map[{p}:{{}}]" if False else p for p in words))

    def do_volume(self, st, inst, fl):
        vols = dict(st.cfg.get("Volumes") or {})
        words = []
        for a in inst.args:
            words += [self._expand(a, st.scope())] if inst.json else D.expand_words(a, st.scope(), self.df.escape)
        for v in words:
            if not v:
                raise BuildError(f"{self._where(inst)}: VOLUME specified can not be an empty string")
            vols[v] = {}
        st.cfg["Volumes"] = vols
        self._meta(st, "VOLUME " + _go_list(words))

    def do_stopsignal(self, st, inst, fl):
        sig = self._expand(" ".join(inst.args), st.scope())
        from minidock.engine.lifecycle import signal_number

        try:
            signal_number(sig)
        except MinidockError:
            raise BuildError(f"{self._where(inst)}: Invalid signal: {sig}") from None
        st.cfg["StopSignal"] = sig
        self._meta(st, "STOPSIGNAL " + sig)

    def _command(self, st, inst) -> list[str]:
        if inst.json:
            return list(inst.args)
        return st.shell() + [" ".join(inst.args)]

    def do_cmd(self, st, inst, fl):
        st.cfg["Cmd"] = self._command(st, inst)
        st.cmd_set = True
        self._meta(st, "CMD " + _go_list(st.cfg["Cmd"]))

    def do_entrypoint(self, st, inst, fl):
        st.cfg["Entrypoint"] = self._command(st, inst)
        if not st.cmd_set:
            st.cfg["Cmd"] = None  # Docker: ENTRYPOINT drops a CMD inherited from the base image
        self._meta(st, "ENTRYPOINT " + _go_list(st.cfg["Entrypoint"]))

    def do_shell(self, st, inst, fl):
        st.cfg["Shell"] = list(inst.args)
        self._meta(st, "SHELL " + _go_list(st.cfg["Shell"]))

    def do_onbuild(self, st, inst, fl):
        trig = " ".join(inst.args).strip()
        st.cfg["OnBuild"] = list(st.cfg.get("OnBuild") or []) + [trig]
        self._meta(st, "ONBUILD " + trig)

    def do_healthcheck(self, st, inst, fl):
        args = list(inst.args)
        kind = args[0].upper() if args else ""
        if kind == "NONE":
            if len(args) > 1:
                raise BuildError(f"{self._where(inst)}: HEALTHCHECK NONE takes no arguments")
            st.cfg["Healthcheck"] = {"Test": ["NONE"]}
        elif kind == "CMD":
            rest = args[1:]
            if not rest:
                raise BuildError(f"{self._where(inst)}: Missing command after HEALTHCHECK CMD")
            if inst.json:
                test = ["CMD"] + rest
            elif len(rest) == 1 and rest[0].lstrip().startswith("["):
                try:
                    test = ["CMD"] + list(json.loads(rest[0]))
                except ValueError:
                    test = ["CMD-SHELL", rest[0]]
            else:
                test = ["CMD-SHELL", " ".join(rest)]
            hc = {"Test": test}
            for flag, key in (("interval", "Interval"), ("timeout", "Timeout"), ("start-period", "StartPeriod"),
                              ("start-interval", "StartInterval")):
                if fl.get(flag):
                    hc[key] = int(round(D.parse_duration(fl[flag]) * 1e9))
            if fl.get("retries"):
                try:
                    hc["Retries"] = int(fl["retries"])
                except ValueError:
                    raise BuildError(f"{self._where(inst)}: invalid --retries: {fl['retries']}") from None
            st.cfg["Healthcheck"] = hc
        else:
            raise BuildError(f"{self._where(inst)}: Unknown type {kind!r} in HEALTHCHECK (try CMD)")
        self._meta(st, "HEALTHCHECK " + json.dumps(st.cfg["Healthcheck"], separators=(",", ":")))

    def _meta(self, st: State, created_by: str) -> None:
        """A metadata step: config and history only. It does not enter the chain of step keys —
        what it changes that a later step depends on (env, user, workdir, shell) is in that
        step's own key, and the whole config is in the image's key (export)."""
        st.history(created_by, empty=True)

    # ---- filesystem steps ----------------------------------------------------------------------
    def _step(self, st: State, text: str) -> Step:
        self._stage_pos += 1
        return self.progress.step(f"[{st.name} {self._stage_pos}/{self._stage_total}] {text}")

    def _cached(self, st: State, key: str, step: Step, created_by: str) -> bool:
        entry = self.cache.lookup(key)
        if entry is None:
            return False
        layer = entry.get("layer")
        if layer and not (self.store.has_layer(layer["diff_id"]) and self.store.has_blob(layer["digest"])):
            return False
        step.cached()
        self._apply(st, key, layer, created_by, entry.get("created"))
        return True

    def _apply(self, st: State, key: str, layer: dict | None, created_by: str, created: str | None) -> None:
        st.key = key
        if layer:
            st.layers.append(dict(layer))
            st.config.setdefault("rootfs", {"type": "layers", "diff_ids": []})["diff_ids"] = \
                [x["diff_id"] for x in st.layers]
        st.history(created_by, empty=layer is None, created=created)

    def _done(self, st: State, key: str, layer: dict | None, created_by: str, step: Step) -> None:
        from minidock.util import now as now_rfc3339

        created = now_rfc3339()
        self.cache.record(key, layer, created)
        self._apply(st, key, layer, created_by, created)
        step.done()

    def layer_dirs(self, st: State) -> list[str]:
        return [str(self.store.layer_dir(x["diff_id"])) for x in st.layers]

    # RUN
    def _run_argv(self, st: State, inst) -> list[str]:
        if inst.json and not inst.heredocs:
            return list(inst.args)
        line = " ".join(inst.args)
        if inst.heredocs:
            import re

            only = re.fullmatch(r"\s*<<-?(['\"]?)([A-Za-z_][A-Za-z0-9_]*)\1\s*", line)
            if only and len(inst.heredocs) == 1:
                return st.shell() + [inst.heredocs[0].text]
            body = "".join(h.content + ("" if h.content.endswith("\n") else "\n") + h.name + "\n"
                           for h in inst.heredocs)
            return st.shell() + [line + "\n" + body]
        return st.shell() + [line]

    def do_run(self, st, inst, fl):
        argv = self._run_argv(st, inst)
        declared = dict(st.args)
        proxies = {k: v for k, v in self.opts.build_args.items() if k in PROXY_ARGS}
        scope = st.scope()
        env = {**proxies, **scope}
        mounts = [D.parse_mount(m, lambda v: self._expand(v, scope)) for m in fl.get("mount", [])]
        network = fl.get("network") or "default"
        shown = " ".join(inst.args) if not inst.json else _go_list(list(inst.args))
        created_by = "RUN " + (f"|{len(declared)} " + " ".join(f"{k}={v}" for k, v in declared.items()) + " "
                               if declared else "") + (" ".join(argv) if not inst.json else shown) + " # buildkit"
        step = self._step(st, "RUN " + shown.replace("\n", "\\n"))
        mount_keys = []
        for m in mounts:
            src_key = ""
            if m.type == "bind":
                j = self._stage_index(m.from_) if m.from_ else None
                if j is not None:
                    src_key = self.states[j].key
                elif m.from_:
                    src_key = "image:" + self._image(m.from_).id
                elif self.ctx is not None:
                    src_key = "context:" + self.ctx.checksum(self.ctx.resolve(m.source or "."))
            mount_keys.append([m.type, m.target, m.source, m.readonly, m.id, m.size, src_key])
        key = C.chain(st.key, {"op": "RUN", "argv": argv, "env": sorted(env.items()), "user": st.cfg.get("User"),
                               "workdir": st.workdir(), "network": network, "mounts": mount_keys})
        if self._cached(st, key, step, created_by):
            return
        layer = self._run_container(st, argv, env, mounts, network, step, inst)
        self._done(st, key, layer, created_by, step)

    def _run_container(self, st: State, argv, env, mounts, network, step, inst) -> dict | None:
        import signal as _signal

        from minidock.engine import attach, lifecycle

        bc = BuildContainer(self, st, network=network)
        try:
            oci_mounts = [self._mount(bc, st, m) for m in mounts]
            bc.create(argv, env, oci_mounts)
            io = attach.IO(tty_=False, interactive=False, attached=False)
            started = lifecycle.launch(bc.rec, io)
            started.log = step
            try:
                code = lifecycle.supervise(started)
            except BaseException:
                try:
                    os.kill(started.rt.pid, _signal.SIGKILL)
                    started.rt.wait()
                except Exception:  # noqa: BLE001
                    pass
                lifecycle.finish(bc.id, 137)
                raise
            if code != 0:
                what = _go_list(argv) if inst.json else " ".join(argv)
                step.error(f"process \"{what}\" did not complete successfully: exit code: {code}")
                raise BuildError(self._failure(inst, step, f"process \"{what}\" did not complete successfully: "
                                                           f"exit code: {code}"))
            bc.prune_stubs()
            return self.commit_upper(bc.upper)
        finally:
            bc.remove()

    def _mount(self, bc: BuildContainer, st: State, m) -> dict:
        """A RUN --mount (parsed by dockerfile.parse_mount) -> a Docker Mount for the build
        container's HostConfig: tmpfs; cache = a directory under builder/mounts kept between
        builds (by id, else target); bind = the context, a stage or an image, read-only unless rw
        (then a throwaway copy: writes are discarded, as in BuildKit)."""
        import hashlib

        target = os.path.normpath(os.path.join(st.workdir(), m.target))
        if m.type == "tmpfs":
            mnt = {"Type": "tmpfs", "Target": target}
            if m.size:
                mnt["TmpfsOptions"] = {"SizeBytes": m.size}
            return mnt
        if m.type == "cache":
            # one cache per id (default: the target) and owner/mode, as BuildKit keeps them apart
            ident = json.dumps([m.id or target, m.uid, m.gid, m.mode])
            d = os.path.join(C.root(), "mounts", hashlib.sha256(ident.encode()).hexdigest()[:32])
            if not os.path.isdir(d):
                os.makedirs(d, exist_ok=True)
                os.chmod(d, 0o755 if m.mode is None else m.mode)
                os.chown(d, m.uid or 0, m.gid or 0)
            return {"Type": "bind", "Source": d, "Target": target, "ReadOnly": m.readonly}
        if m.from_:
            from minidock.runtime.rootfs import secure_join

            path = secure_join(bc.mount_from(m.from_), m.source or "/")
        else:
            if self.ctx is None:
                raise BuildError("RUN --mount=type=bind needs a build context (none was given)")
            rels = self.ctx.resolve(m.source or ".")
            if not rels:
                from minidock.build.context import not_found

                raise not_found(m.source)
            path = os.path.join(self.ctx.root, rels[0])
        if not m.readonly:
            path = bc.scratch_copy(path)
        return {"Type": "bind", "Source": path, "Target": target, "ReadOnly": m.readonly}

    def _failure(self, inst, step: Step, msg: str) -> str:
        lines = self.text.split("\n")
        lo, hi = max(inst.line - 2, 1), min(inst.end_line or inst.line, len(lines))
        excerpt = "\n".join(f" {n:>3} | {'>>> ' if inst.line <= n <= (inst.end_line or inst.line) else '    '}"
                            f"{lines[n - 1]}" for n in range(lo, hi + 1))
        return (f"failed to solve: {msg}\n------\n > {step.title}:\n" +
                "".join(f" {t}\n" for t in step.tail[-10:]) +
                f"------\n{self.filename}:{inst.line}\n--------------------\n{excerpt}\n--------------------")

    # COPY / ADD
    def do_copy(self, st, inst, fl):
        self._copy(st, inst, fl, add=False)

    def do_add(self, st, inst, fl):
        self._copy(st, inst, fl, add=True)

    def _copy(self, st: State, inst, fl: dict, *, add: bool) -> None:
        scope = st.scope()
        fl = {k: (self._expand(v, scope) if k in ("chown", "chmod") and isinstance(v, str) else v)
              for k, v in fl.items()}
        if fl.get("chmod"):
            try:
                int(fl["chmod"], 8)
            except ValueError:
                raise BuildError(f"{self._where(inst)}: invalid chmod parameter: {fl['chmod']!r}",
                                 "Give an octal mode, e.g. --chmod=644.") from None
        paths, docs, dest = D.copy_sources(inst)
        paths = [self._expand(p, scope) for p in paths]
        dest = self._expand(dest, scope)
        srcs = paths + [d.name for d in docs]
        dest_abs = os.path.join(st.workdir(), dest)
        if dest.endswith("/") or dest in (".", "..") or dest.endswith("/.") or dest.endswith("/.."):
            dest_abs = os.path.normpath(dest_abs) + "/"
        what = "ADD" if add else "COPY"
        flag_text = "".join(f + " " for f in inst.flags)
        created_by = f"{what} {flag_text}{' '.join(inst.args)} # buildkit"
        step = self._step(st, f"{what} {flag_text}{' '.join(inst.args)}")
        plan = {"op": what, "dest": dest_abs, "chown": fl.get("chown"), "chmod": fl.get("chmod"), "srcs": []}
        src_from = fl.get("from")
        sources = []  # (kind, value): ("here", (name, text)) | ("ctx", rels) | ("url", url) | ("from", pattern)
        for h in docs:
            content = self._expand(h.text, scope) if h.expand else h.text
            sources.append(("here", (h.name, content)))
            plan["srcs"].append(["here", h.name, content])
        for s in paths:
            if add and s.startswith(("http://", "https://")):
                sources.append(("url", s))
                plan["srcs"].append(["url", s])
            elif s.startswith(("http://", "https://")) and not add:
                raise BuildError(f"{self._where(inst)}: source can't be a URL for COPY")
            elif src_from:
                sources.append(("from", s))
                plan["srcs"].append(["from", s])
            else:
                if self.ctx is None:
                    raise BuildError(f"{self._where(inst)}: {what} {s}: no build context",
                                     "A Dockerfile read from stdin (`-`) has no context to copy from.")
                rels = self.ctx.resolve(s)
                plan["srcs"].append(["ctx", s, rels, self.ctx.checksum(rels)])
                sources.append(("ctx", rels))
        if len(srcs) > 1 and not dest_abs.endswith("/"):
            raise BuildError(f"{self._where(inst)}: When using {what} with more than one source file, "
                             "the destination must be a directory and end with a /")
        # (a wildcard matching several files into a destination without `/` copies each to that
        # same path, the last match winning, as BuildKit does)
        urls, downloads = {}, []
        try:
            for k, v in sources:
                if k == "url":
                    from minidock.build import copier

                    downloads.append(self.store.tmpdir())
                    urls[v] = copier.fetch(v, downloads[-1], fl.get("checksum"))
                    plan["srcs"].append(["urlsum", v, urls[v][1]])
            self._copy_step(st, inst, fl, step, plan, sources, urls, dest_abs, created_by)
        finally:
            if downloads:
                import shutil

                for d in downloads:
                    shutil.rmtree(d, ignore_errors=True)

    def _copy_step(self, st, inst, fl, step, plan, sources, urls, dest_abs, created_by) -> None:
        scope = st.scope()
        src_from = fl.get("from")
        if src_from:
            j = self._stage_index(self._expand(src_from, scope))
            plan["from"] = self.states[j].key if j is not None else \
                "image:" + self._image(self._expand(src_from, scope)).id
        key = C.chain(st.key, plan)
        if self._cached(st, key, step, created_by):
            return
        from minidock.build import copier

        bc = BuildContainer(self, st)
        try:
            rootfs = bc.mount_rootfs()
            owner = copier.owner(rootfs, fl.get("chown")) if fl.get("chown") else None
            mode = int(fl["chmod"], 8) if fl.get("chmod") else None
            cp = copier.Copier(rootfs, owner=owner, mode=mode)
            for kind, v in sources:
                if kind == "here":
                    cp.write_file(v[0], v[1], dest_abs)
                elif kind == "url":
                    cp.copy_url(v, urls[v][0], dest_abs)
                elif kind == "ctx":
                    for rel in v:
                        cp.copy(self.ctx, rel, dest_abs, extract=plan["op"] == "ADD", keep_owner=False)
                else:
                    from minidock.build.context import Tree

                    root = bc.mount_from(self._expand(src_from, scope))
                    tree = Tree(root)
                    for rel in tree.resolve(v):
                        cp.copy(tree, rel, dest_abs, extract=False, keep_owner=owner is None)
            bc.umount_rootfs()
            layer = self.commit_upper(bc.upper)
        finally:
            bc.remove()
        self._done(st, key, layer, created_by, step)

    # WORKDIR
    def do_workdir(self, st, inst, fl):
        path = self._expand(" ".join(inst.args), st.scope())
        if not path.startswith("/"):  # BuildKit: path.Join for a relative one, an absolute one as written
            path = os.path.normpath(os.path.join(st.workdir(), path))
        st.cfg["WorkingDir"] = path
        created_by = f"WORKDIR {path}"
        step = self._step(st, created_by)
        key = C.chain(st.key, {"op": "WORKDIR", "path": path, "user": st.cfg.get("User")})
        if self._cached(st, key, step, created_by):
            return
        from minidock.build import copier

        bc = BuildContainer(self, st)
        try:
            rootfs = bc.mount_rootfs()
            user = st.cfg.get("User") or ""
            owner = copier.owner(rootfs, user) if user else (0, 0)
            copier.Copier(rootfs, owner=owner).mkdirs(path)
            bc.umount_rootfs()
            layer = self.commit_upper(bc.upper)
        finally:
            bc.remove()
        self._done(st, key, layer, created_by, step)

    # ---- layers and the image ------------------------------------------------------------------
    def commit_upper(self, upper: str) -> dict | None:
        """An overlay upper dir -> a stored layer (None when the step changed nothing)."""
        from minidock.engine.commit import tar_tree
        from minidock.image.store import MT_OCI_LAYER

        if not os.path.isdir(upper) or not os.listdir(upper):
            return None
        work = self.store.tmpdir()
        try:
            tmp = os.path.join(work, "layer.tar")
            with open(tmp, "wb") as f:
                tar_tree(upper, f, whiteouts=True)
            with open(tmp, "rb") as f:
                digest, size = self.lease.put_blob(f)
        finally:
            import shutil

            shutil.rmtree(work, ignore_errors=True)
        diff_id, unpacked = self.lease.unpack_layer(digest, digest)
        return {"digest": digest, "diff_id": diff_id, "mediaType": MT_OCI_LAYER, "size": size,
                "unpacked": unpacked or size}

    def export(self, st: State) -> str:
        step = self.progress.step("exporting to image")
        if self.opts.labels:
            st.cfg["Labels"] = {**(st.cfg.get("Labels") or {}), **self.opts.labels}
        cfg = {k: v for k, v in st.config.items() if k not in ("created", "history", "rootfs")}
        key = C.chain(st.key, {"config": cfg, "history": [h["created_by"] for h in st.config.get("history", [])]})
        st.config.setdefault("rootfs", {"type": "layers", "diff_ids": []})["diff_ids"] = \
            [x["diff_id"] for x in st.layers]
        image_id = self.cache.image(key)
        if image_id and self.store.exists(image_id):
            from minidock.image import reference

            self.progress._out(f"#{step.n} writing image {image_id} done")
            repos = self.store._repos()
            for t in self.opts.tags:
                if repos.get(str(reference.parse(t))) != image_id:  # a tag already right is not rewritten
                    self.store.tag(image_id, t)
        else:
            for lay in st.layers:
                lay.setdefault("unpacked", lay.get("size", 0))
            cfg = json.dumps(st.config, separators=(",", ":")).encode()
            img = self.store.add_image(cfg, st.layers, tags=list(self.opts.tags))
            image_id = img.id
            self.cache.record_image(key, image_id)
            self.progress._out(f"#{step.n} writing image {image_id} done")
        for t in self.opts.tags:
            from minidock.image import reference

            self.progress._out(f"#{step.n} naming to {reference.parse(t)} done")
        step.done()
        return image_id


# --- build containers -----------------------------------------------------------------------------
class BuildContainer:
    """An engine container record for one build step: its dir holds the overlay (upper, work,
    merged) and the journal of every mount made for the step, so a crash or Ctrl-C is undone
    like any container's (`system prune`, or the next command that finds it)."""

    STUBS = ("etc/hostname", "etc/hosts", "etc/resolv.conf", "etc/mtab", "run/.containerenv", "proc", "sys", "dev",
             ".dockerenv")

    def __init__(self, b: Builder, st: State, network: str = "default"):
        self.b, self.st, self.network = b, st, network
        self.rec = None
        self.extra = 0

    @property
    def id(self) -> str:
        return self.rec["Id"]

    @property
    def dir(self) -> str:
        from minidock.state import containers

        return str(containers.cdir(self.id))

    @property
    def upper(self) -> str:
        return os.path.join(self.dir, "upper")

    def lowers(self) -> list[str]:
        dirs = self.b.layer_dirs(self.st)
        return dirs or [_empty_dir()]

    def create(self, argv: list[str] | None = None, env: dict | None = None, mounts: list[dict] = ()) -> None:
        from minidock import paths
        from minidock.engine.create import default_network
        from minidock.state import containers

        if self.rec is not None:
            self.rec["Config"]["Cmd"] = argv
            self.rec["Config"]["Env"] = [f"{k}={v}" for k, v in (env or {}).items()]
            self.rec["HostConfig"]["Mounts"] = list(mounts)
            self.rec["LayerDirs"] = self.lowers()
            containers.save(self.rec)
            return
        net = self.b.opts.network or default_network()
        if self.network in ("none", "host"):
            net = self.network
        if net == "default":
            net = default_network()
        cfg = self.st.cfg
        config = {"Hostname": "buildkitsandbox", "Domainname": "", "User": cfg.get("User", ""),
                  "AttachStdin": False, "AttachStdout": True, "AttachStderr": True, "ExposedPorts": {},
                  "Tty": False, "OpenStdin": False, "StdinOnce": False,
                  "Env": [f"{k}={v}" for k, v in (env or {}).items()], "Cmd": argv, "Image": self.st.base_id,
                  "Volumes": None, "WorkingDir": self.st.workdir(), "Entrypoint": None,
                  "Labels": {BUILD_LABEL: self.st.name}, "StopSignal": "SIGKILL"}
        hc = {"Binds": [], "NetworkMode": net, "PortBindings": {}, "PublishAllPorts": False, "AutoRemove": False,
              "VolumesFrom": [], "CapAdd": [], "CapDrop": [], "Dns": [], "DnsSearch": [], "ExtraHosts": [],
              "GroupAdd": [], "Privileged": False, "ReadonlyRootfs": False, "SecurityOpt": [], "Tmpfs": {},
              "Mounts": list(mounts), "Init": False, "Ulimits": [], "OomScoreAdj": 0, "NoPivotRoot": False,
              "Sysctls": {}, "CgroupParent": paths.cgroup_parent(), "Resources": {}}
        import secrets

        self.rec = containers.new_record(image_ref=self.st.base_id or "scratch", image_id=self.st.base_id,
                                         name=f"minidock-build-{secrets.token_hex(6)}", config=config,
                                         host_config=hc)
        self.rec["LayerDirs"] = self.lowers()
        containers.save(self.rec)

    def mount_rootfs(self) -> str:
        from minidock.engine import bundle

        self.create()
        return bundle.mount_rootfs(self.rec, self.lowers())

    def umount_rootfs(self) -> None:
        from minidock.engine import bundle

        bundle.umount_rootfs(self.id)

    def mount_from(self, ref: str) -> str:
        """A stage's or an image's filesystem, mounted read-only for this step (journaled)."""
        from minidock import kernel as k
        from minidock.state import containers

        self.create()
        j = self.b._stage_index(ref)
        if j is not None:
            dirs = self.b.layer_dirs(self.b.states[j])
        else:
            dirs = self.b._image(ref).layer_dirs()
        dirs = dirs + [_empty_dir()] * max(0, 2 - len(dirs))  # overlay without upper: 2 lowers at least
        self.extra += 1
        target = os.path.join(self.dir, f"from{self.extra}")
        os.makedirs(target, exist_ok=True)
        containers.journal(self.id).record("mount", target=target)
        k.mount("overlay", target, "overlay", k.MS_RDONLY,
                "lowerdir=" + ":".join(reversed(dirs)), why=f"build: --from={ref} read-only")
        return target

    def scratch_copy(self, path: str) -> str:
        import shutil

        self.create()
        self.extra += 1
        dst = os.path.join(self.dir, f"rw{self.extra}")
        if os.path.isdir(path):
            shutil.copytree(path, dst, symlinks=True)
        else:
            shutil.copy2(path, dst)
        return dst

    def prune_stubs(self) -> None:
        """Drop what only the runtime made (empty mount points, /etc/hosts stubs, and the dirs
        copied up to hold them) from the upper dir: they are not the step's changes (BuildKit
        removes them too)."""
        up = self.upper
        lowers = self.lowers()
        # the engine's init files (engine.hostopts.write_init_files): /etc/mtab -> /proc/mounts
        # where the image had none, and /run/.containerenv, rewritten in every container
        mtab = os.path.join(up, "etc/mtab")
        if os.path.islink(mtab) and os.readlink(mtab) == "/proc/mounts" and \
                not any(os.path.lexists(os.path.join(d, "etc/mtab")) for d in lowers):
            os.unlink(mtab)
        cenv = os.path.join(up, "run/.containerenv")
        try:
            with open(cenv, "rb") as f:
                if f.read(17) == b'engine="minidock-':
                    os.unlink(cenv)
        except OSError:
            pass
        for t in self.STUBS:  # (RUN --mount targets stay: BuildKit keeps the dirs it made for them)
            while t and t != ".":
                p = os.path.join(up, t)
                try:
                    st = os.lstat(p)
                except FileNotFoundError:
                    t = os.path.dirname(t)  # (removed above): its parent may be a stub too
                    continue
                low = next((os.path.join(d, t) for d in reversed(lowers) if os.path.lexists(os.path.join(d, t))),
                           None)
                if stat.S_ISDIR(st.st_mode):
                    if os.listdir(p):
                        break
                    if low is not None:  # a copy-up: only drop it when nothing about it changed
                        lst = os.lstat(low)
                        if (lst.st_mode, lst.st_uid, lst.st_gid) != (st.st_mode, st.st_uid, st.st_gid) or \
                                _opaque(p):
                            break
                    os.rmdir(p)
                elif stat.S_ISREG(st.st_mode) and st.st_size == 0 and low is None:
                    os.unlink(p)
                else:
                    break
                t = os.path.dirname(t)

    def remove(self) -> None:
        if self.rec is None:
            return
        from minidock.engine import lifecycle

        lifecycle.remove(self.id, force=True)


def _opaque(path: str) -> bool:
    try:
        return os.getxattr(path, "trusted.overlay.opaque", follow_symlinks=False) == b"y"
    except OSError:
        return False


def _empty_dir() -> str:
    d = os.path.join(C.root(), "empty")
    if not os.path.isdir(d):
        os.makedirs(d, mode=0o755, exist_ok=True)
    return d


def build(opts: Options, progress: Progress | None = None) -> str:
    return Builder(opts, progress).run()
