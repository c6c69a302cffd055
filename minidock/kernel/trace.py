"""The trace behind ``--explain``: each kernel call records a :class:`Step`.

Only the calls in ``minidock.kernel`` record steps; other packages may name long paths
(:func:`alias`) and print headings (:func:`note`), never steps of their own.
"""

from __future__ import annotations

import os

# Plain classes, not dataclasses, and no json/shlex at import: every runtime process imports this
# module, and dataclasses (inspect, ast) and shlex (re, enum) cost ~8 ms of a ~15 ms process.

# shlex.quote's "safe" characters (its pattern [^\w@%+=:,./-] with re.ASCII)
_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_@%+=:,./-")


def quote(s: str) -> str:
    """shlex.quote(s), without importing re."""
    if not s:
        return "''"
    if all(c in _SAFE for c in s):
        return s
    return "'" + s.replace("'", "'\"'\"'") + "'"


def join(args) -> str:
    """shlex.join(args)."""
    return " ".join(quote(a) for a in args)


class Step:
    """One thing the kernel was asked to do."""

    __slots__ = ("op", "detail", "why", "shell")

    def __init__(self, op: str, detail: str, why: str = "", shell: str = ""):
        self.op = op  # the syscall or file write, e.g. "mount", "unshare", "write"
        self.detail = detail  # what exactly, e.g. "overlay on /var/lib/.../merged"
        self.why = why  # the reason, in a learner's words
        self.shell = shell  # the equivalent shell command

    def _tuple(self) -> tuple:
        return (self.op, self.detail, self.why, self.shell)

    def __eq__(self, other) -> bool:
        return type(other) is Step and self._tuple() == other._tuple()

    __hash__ = None

    def __repr__(self) -> str:
        return f"Step(op={self.op!r}, detail={self.detail!r}, why={self.why!r}, shell={self.shell!r})"

    def render(self) -> str:
        line = f"{self.op:<12} {self.detail}"
        if self.why:
            line += f"\n{'':12}   why: {self.why}"
        if self.shell.startswith("("):  # "(no shell equivalent: ...)": a note, not a command
            line += f"\n{'':12}   # {self.shell}"
        elif self.shell:
            line += f"\n{'':12}   $ {self.shell}"
        return line


class Tracer:
    """Collects steps; when ``fd`` is set, also writes each one there at once.

    Writing at once matters: the steps of a container's init happen in a forked child, and they
    must appear in order with the parent's, before the container's own output.
    """

    def __init__(self, enabled: bool = False, fd: int | None = None):
        self.enabled = enabled
        self.fd = fd
        self.steps: list[Step] = []
        self.count = 0
        self.aliases: dict[str, str] = {}
        self.fmt = "text"  # "json": one JSON object a line, for tools (--explain=json)
        self.who = "minidock (CLI)"  # the process that makes the next steps (see actor())
        self.where = "host"  # "host" or "container": which side of the isolation it stands on
        self.shared = None  # an anonymous shared mmap: the step counter survives fork()

    def _emit(self, obj: dict, text: str) -> None:
        if self.fd is None:
            return
        if self.fmt == "json":
            from minidock.util import jsonfast

            line = jsonfast.dumps(obj)
        else:
            line = text
        try:
            os.write(self.fd, (line + "\n").encode())
        except OSError:
            pass

    def _actor_changed(self) -> bool:
        """Has another process (or this one, as another actor) written the last step? The last
        writer's label lives in the shared page, so parent and children agree across fork()."""
        me = f"{self.who}|{self.where}".encode()[:120]
        if self.shared is None:
            return False
        last = bytes(self.shared[4:128]).rstrip(b"\0")
        if last == me:
            return False
        self.shared[4:128] = me.ljust(124, b"\0")
        return True

    def _next(self) -> int:
        if self.shared is None:
            return self.count + 1
        n = int.from_bytes(self.shared[:4], "little") + 1
        self.shared[:4] = n.to_bytes(4, "little")
        return n

    def alias(self, path: str, name: str) -> None:
        """Print ``path`` as $name from now on (long state paths drown the lesson)."""
        if self.enabled and path not in self.aliases:
            self.aliases[path] = name
            # a shell line too: the variables the later shell lines use are defined before them
            self._emit({"alias": name, "path": path}, f"-- {name}={path}\n{'':15}$ {name}={quote(path)}")

    def _short(self, text: str) -> str:
        for path, name in sorted(self.aliases.items(), key=lambda kv: -len(kv[0])):
            text = text.replace(path, "$" + name)
        return text

    def record(self, step: Step) -> None:
        if not self.enabled:
            return
        if self.aliases:
            step = Step(step.op, self._short(step.detail), self._short(step.why), self._short(step.shell))
        self.steps.append(step)
        if self._actor_changed():
            side = "in the container" if self.where == "container" else "on the host"
            self._emit({"actor": self.who, "where": self.where}, f"-- [{self.who}, {side}]")
        self.count = self._next()
        self._emit({"n": self.count, "op": step.op, "detail": step.detail, "why": step.why, "shell": step.shell,
                    "who": self.who, "where": self.where},
                   f"[explain {self.count:>2}] {step.render()}")

    def note(self, text: str) -> None:
        """A heading between steps (e.g. "in the container's init, PID 1")."""
        if self.enabled:
            text = self._short(text)
            self._emit({"note": text}, f"-- {text}")


tracer = Tracer()


def explain_to(fd: int | None, fmt: str = "text") -> None:
    """Turn tracing on (writing to ``fd``, as text or JSON lines) or off (``None``)."""
    import mmap

    tracer.enabled = fd is not None
    tracer.fd = os.dup(fd) if fd is not None else None
    tracer.fmt = fmt
    tracer.shared = mmap.mmap(-1, 128) if fd is not None else None
    if tracer.fd is not None:
        os.set_inheritable(tracer.fd, False)


def actor(who: str, where: str = "host") -> None:
    """Name the process making the steps that follow (CLI, runtime parent, intermediate, init,
    monitor) and its side (host or container): the trace shows a heading when it changes, and
    every JSON step carries both."""
    tracer.who, tracer.where = who, where


def trace(op: str, detail: str, why: str, shell: str) -> None:
    """Record one step (for the calls in this package only: nothing outside kernel/ writes steps)."""
    if tracer.enabled:
        tracer.record(Step(op, detail, why, shell))


def alias(path: str, name: str) -> None:
    """Print ``path`` as $name in the steps that follow."""
    tracer.alias(path, name)


def note(text: str) -> None:
    """A heading between steps (e.g. "in the container's init, PID 1")."""
    tracer.note(text)


def tracing() -> bool:
    return tracer.enabled


def trace_fd() -> int | None:
    """The descriptor the trace is written to (the init keeps it open across close-fds)."""
    return tracer.fd
