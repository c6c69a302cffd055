"""The kernel layer: the ONLY way minidock talks to the kernel.

Every namespace, mount, pivot_root, capability change, cgroup or /proc write goes through a
function here. Each call:

* is recorded as a :class:`Step` (what was asked, why, and the shell command a learner could type
  to do the same thing) when tracing is on — this is what ``minidock run --explain`` prints;
* raises :class:`minidock.errors.KernelError` naming the call, the object and the errno;
* is carried out by a *backend* (:class:`Backend`): :class:`LibcBackend` (ctypes into libc) for
  real, or :class:`FakeBackend` in unit tests, a strict fake that records the calls, touches
  nothing and can be told to fail.

The package, one room each:

    constants.py   numbers from the kernel headers (CLONE_*, MS_*, PR_*)
    trace.py       Step, the tracer, explain_to(), alias(), note()
    backend.py     Backend: the interface, the list of every operation
    libc.py        LibcBackend: the real thing
    calls.py       backend()/set_backend(); the traced calls the rest of minidock uses (mount, ...)
    fake.py        FakeBackend and Call: the recording fake

Keep it small and boring: no policy lives here, only the calls and their explanations.
Use it as ``from minidock import kernel as k; k.mount(...)``.
"""

from __future__ import annotations

from minidock.kernel.backend import Backend
from minidock.kernel.calls import *  # noqa: F403
from minidock.kernel.calls import __all__ as _calls
from minidock.kernel.constants import *  # noqa: F403
from minidock.kernel.constants import __all__ as _constants
from minidock.kernel.trace import Step, Tracer, actor, alias, explain_to, note, trace_fd, tracer, tracing

__all__ = [*_constants, *_calls, "Backend", "Call", "FakeBackend",  # noqa: F405 - three of them come lazily
           "LibcBackend", "Step", "Tracer", "actor", "alias", "explain_to", "note", "trace_fd", "tracer",
           "tracing"]

# the fake (dataclasses, inspect, typing) and the libc backend (ctypes) come on first use (PEP 562):
# `minidock-runtime start`/`delete` import this package and need neither
def __getattr__(name: str):
    if name in ("Call", "FakeBackend"):
        from minidock.kernel import fake

        return getattr(fake, name)
    if name == "LibcBackend":
        from minidock.kernel import libc

        return libc.LibcBackend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
