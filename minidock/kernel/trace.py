"""The trace behind ``--explain``: each kernel call records a :class:`Step`.

Only the calls in ``minidock.kernel`` record steps; other packages may name long paths
(:func:`alias`) and print headings (:func:`note`), never steps of their own.
"""

from __future__ import annotations

import json
import os
import shlex
from dataclasses import dataclass, field


@dataclass
class Step:
    """One thing the kernel was asked to do."""

    op: str  # the syscall or file write, e.g. "mount", "unshare", "write"
    detail: str  # what exactly, e.g. "overlay on /var/lib/.../merged"
    why: str = ""  # the reason, in a learner's words
    shell: str = ""  # the equivalent shell command

    def render(self) -> str:
        line = f"{self.op:<12} {self.detail}"
        if self.why:
            line += f"\n{'':12}   why: {self.why}"
        if self.shell.startswith("("):  # "(no shell equivalent: ...)": a note, not a command
            line += f"\n{'':12}   # {self.shell}"
        elif self.shell:
            line += f"\n{'':12}   $ {self.shell}"
        return line


@dataclass
class Tracer:
    """Collects steps; when ``fd`` is set, also writes each one there at once.

    Writing at once matters: the steps of a container's init happen in a forked child, and they
    must appear in order with the parent's, before the container's own output.
    """

    enabled: bool = False
    fd: int | None = None
    steps: list[Step] = field(default_factory=list)
    count: int = 0
    aliases: dict[str, str] = field(default_factory=dict)
    fmt: str = "text"  # "json": one JSON object a line, for tools (--explain=json)
    who: str = "minidock (CLI)"  # the process that makes the next steps (see actor())
    where: str = "host"  # "host" or "container": which side of the isolation it stands on

    shared: object = None  # an anonymous shared mmap: the step counter survives fork()

    def _emit(self, obj: dict, text: str) -> None:
        if self.fd is None:
            return
        line = json.dumps(obj) if self.fmt == "json" else text
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
            self._emit({"alias": name, "path": path}, f"-- {name}={path}\n{'':15}$ {name}={shlex.quote(path)}")

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
