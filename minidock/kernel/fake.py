"""A strict recording backend for unit tests: no root, nothing on the host changes.

* It knows exactly the operations of :class:`~minidock.kernel.backend.Backend`: any other
  attribute is an ``AttributeError``, and a call with the wrong arguments a ``TypeError`` (each
  method has the interface's signature).
* Every call is recorded as a :class:`Call`: the operation's name and its arguments by name.
* Errors can be injected: ``fake.fail("mount", errno.EPERM, times=1)`` makes the next mount raise
  ``OSError(EPERM)`` (which the traced call turns into ``KernelError``), optionally only where
  ``when(call)`` is true.
* Results can be scripted: ``fake.returns("umask", 0o022)`` or a function of the call.

    fake = kernel.FakeBackend()
    old = kernel.set_backend(fake)
    try:
        code_under_test()
    finally:
        kernel.set_backend(old)
    assert fake.ops() == ["unshare", "mount", ...]
"""

from __future__ import annotations

import abc
import inspect
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from minidock.kernel.backend import Backend


@dataclass(frozen=True)
class Call:
    """One recorded backend call: ``Call("mount", {"source": ..., "target": ..., ...})``.

    ``call.op`` is the operation; its arguments read as attributes (``call.target``).
    """

    op: str
    args: dict[str, Any] = field(default_factory=dict)

    def __getattr__(self, attr: str) -> Any:
        args = self.__dict__.get("args", {})
        if attr in args:
            return args[attr]
        raise AttributeError(f"{self.__dict__.get('op')} has no argument {attr!r}")

    def astuple(self) -> tuple:
        """(op, *arguments in the interface's order)."""
        return (self.op, *self.args.values())


@dataclass
class _Failure:
    name: str
    errno: int
    times: int | None
    when: Callable[[Call], bool] | None


class FakeBackend(Backend):
    """Records every :class:`Backend` call; changes nothing (see the module docstring)."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.files: dict[str, str] = {}  # what write_file wrote, by path
        self._failures: list[_Failure] = []
        self._results: dict[str, Any] = {}

    # --- test API
    def fail(self, name: str, err: int, *, times: int | None = 1,
             when: Callable[[Call], bool] | None = None) -> None:
        """The next ``times`` calls of ``name`` (None: all) for which ``when`` holds raise OSError(err)."""
        if name not in _OPS:
            raise AttributeError(f"the kernel backend has no operation {name!r}")
        self._failures.append(_Failure(name, err, times, when))

    def returns(self, name: str, value: Any) -> None:
        """What ``name`` returns from now on: a value, or a function of the :class:`Call`."""
        if name not in _OPS:
            raise AttributeError(f"the kernel backend has no operation {name!r}")
        self._results[name] = value

    def ops(self) -> list[str]:
        """The operations called, in order."""
        return [c.op for c in self.calls]

    def of(self, name: str) -> list[Call]:
        """The recorded calls of one operation."""
        return [c for c in self.calls if c.op == name]

    # --- the machinery
    def _call(self, name: str, args: dict[str, Any]) -> Any:
        call = Call(name, args)
        self.calls.append(call)
        for f in self._failures:
            if f.name == name and (f.times is None or f.times > 0) and (f.when is None or f.when(call)):
                if f.times is not None:
                    f.times -= 1
                raise OSError(f.errno, os.strerror(f.errno))
        effect = getattr(self, "_effect_" + name, None)
        result = effect(call) if effect else None
        if name in self._results:
            r = self._results[name]
            result = r(call) if callable(r) else r
        return result

    # default effects: what later calls (or the test) can observe
    def _effect_write_file(self, call: Call) -> None:
        self.files[call.path] = call.data

    def _effect_prctl(self, call: Call) -> int:
        return 0

    def _effect_umask(self, call: Call) -> int:
        return 0o022

    def _effect_netlink_open(self, call: Call) -> int:
        return 1000 + len(self.of("netlink_open"))

    def _effect_netlink_request(self, call: Call) -> list:
        return []

    def _effect_run_tool(self, call: Call) -> tuple[int, str, str]:
        return 0, "", ""

    def _effect_memfd_sealed(self, call: Call) -> int:
        return 6000 + len(self.of("memfd_sealed"))

    def _effect_join_session_keyring(self, call: Call) -> int:
        return 5000 + len(self.of("join_session_keyring"))

    def _effect_seccomp_prepare(self, call: Call) -> bool:
        return True

    def _effect_seccomp_load(self, call: Call) -> int:
        return len(call.rules)

    def _effect_userns_fd(self, call: Call) -> int:
        return os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)  # a real descriptor: the caller closes it

    def _effect_spawn(self, call: Call) -> int:
        return 4000 + len(self.of("spawn"))


def _recorder(name: str, sig: inspect.Signature):
    def method(self, *args, **kwargs):
        bound = sig.bind(self, *args, **kwargs)
        bound.apply_defaults()
        values = dict(bound.arguments)
        values.pop("self")
        return self._call(name, values)

    method.__name__ = method.__qualname__ = name
    method.__signature__ = sig
    method.__doc__ = f"Record {name}{sig} (see Backend.{name})."
    return method


_OPS = sorted(Backend.__abstractmethods__)
for _name in _OPS:
    if _name not in FakeBackend.__dict__:
        setattr(FakeBackend, _name, _recorder(_name, inspect.signature(getattr(Backend, _name))))
abc.update_abstractmethods(FakeBackend)
