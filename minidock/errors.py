"""One error family for minidock.

Every error says what failed and, where we can, what to do about it. The CLI turns them into
Docker's exit codes: 125 for engine errors, 126 when a command cannot be run, 127 when it is not
found. Low-level failures keep the errno and the object they were about.
"""

from __future__ import annotations

import errno as _errno
import os


class MinidockError(Exception):
    """An error the user should see as one clear line (plus an optional hint)."""

    exit_code = 125

    def __init__(self, message: str, hint: str | None = None, *, exit_code: int | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        if exit_code is not None:
            self.exit_code = exit_code

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n{self.hint}"


class InvalidArgument(MinidockError):
    """Bad input from the user: a flag, a reference, a file."""


class NotFound(MinidockError):
    """No such container, image, network or volume."""


class Conflict(MinidockError):
    """The object exists, is in use, or is in the wrong state."""


class KernelError(MinidockError):
    """A syscall or kernel file write failed. Names the call and the object."""

    def __init__(self, call: str, obj: str, err: int, hint: str | None = None):
        self.call, self.obj, self.errno = call, obj, err
        msg = f"{call} {obj}: {os.strerror(err)} ({_errno.errorcode.get(err, err)})"
        super().__init__(msg, hint)


class CommandNotFound(MinidockError):
    """The container's command does not exist (Docker: exit 127)."""

    exit_code = 127


class CommandCannotRun(MinidockError):
    """The container's command exists but cannot be executed (Docker: exit 126)."""

    exit_code = 126
