"""Where minidock keeps its state.

Everything lives under one state root (MINIDOCK_ROOT, default /var/lib/minidock) so that tests
can point a whole engine at a temporary directory. Runtime-only state (sockets, pid files) lives
under MINIDOCK_RUN (default: <root>/run) and may be lost on reboot.
"""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_ROOT = "/var/lib/minidock"


def root() -> Path:
    return Path(os.environ.get("MINIDOCK_ROOT", DEFAULT_ROOT))


def run_root() -> Path:
    return Path(os.environ.get("MINIDOCK_RUN", str(root() / "run")))


def images() -> Path:
    return root() / "image"


def containers() -> Path:
    return root() / "containers"


def volumes() -> Path:
    return root() / "volumes"


def networks() -> Path:
    return root() / "networks"


def cgroup_parent() -> str:
    """The cgroup parent under which every container cgroup is made (one per state root)."""
    return os.environ.get("MINIDOCK_CGROUP_PARENT", "minidock")


def remove_tree(path) -> None:
    """rm -rf for our own small state dirs, without following symlinks.

    (shutil.rmtree would do; importing shutil costs ~1.7 ms, paid by every `run --rm`.)
    """
    try:
        entries = list(os.scandir(path))
    except FileNotFoundError:
        return
    except NotADirectoryError:
        os.unlink(path)
        return
    for e in entries:
        if e.is_dir(follow_symlinks=False):
            remove_tree(e.path)
        else:
            try:
                os.unlink(e.path)
            except FileNotFoundError:
                pass
    try:
        os.rmdir(path)
    except FileNotFoundError:
        pass
    except OSError:
        pass  # busy (a mount point still in use): the caller's leak check will say so
