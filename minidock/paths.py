"""Where minidock keeps its state.

Everything lives under one state root (MINIDOCK_ROOT, default /var/lib/minidock) so that tests
can point a whole engine at a temporary directory. Runtime-only state (sockets, pid files) lives
under MINIDOCK_RUN (default: <root>/run) and may be lost on reboot.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False  # (not typing's: importing typing costs ~5 ms)
if TYPE_CHECKING:
    from pathlib import Path

DEFAULT_ROOT = "/var/lib/minidock"


def root() -> Path:
    from pathlib import Path  # (~7 ms to import: `ps` and `inspect` use the plain strings below)

    return Path(os.environ.get("MINIDOCK_ROOT", DEFAULT_ROOT))


def root_str() -> str:
    """str(root()), without pathlib."""
    r = os.environ.get("MINIDOCK_ROOT", DEFAULT_ROOT)
    return r if r and r == os.path.normpath(r) else str(root())


def containers_str() -> str:
    """str(containers()), without pathlib."""
    return os.path.join(root_str(), "containers")


def run_root() -> Path:
    from pathlib import Path

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


ROOT_MODE = 0o711     # crossable (the runtime's state under run/ is reached by path), not listable
PRIVATE_MODE = 0o700  # image layers, containers, volumes, networks, logs: root's alone
CROSSABLE = {"run", "remap"}  # (the runtime chmods its own per-container dirs where a user namespace
# needs; remap/<id>/ holds what a container's mapped root must reach: 0710 root:<its gid>, engine/userns.py)


def ensure_private() -> None:
    """Docker's rule after CVE-2021-41091: other host users can neither list nor reach what the
    state root holds — image layers and volumes carry setuid-root files, records and logs carry
    secrets. The root is 0711 and each of its directories 0700 (run/ 0711); fixed on every start,
    so a state root made by an older minidock is locked down too (a few stat calls)."""
    r = root_str()
    try:
        st = os.stat(r)
    except FileNotFoundError:
        os.makedirs(r, mode=0o755, exist_ok=True)
        st = os.stat(r)
    if st.st_mode & 0o7777 != ROOT_MODE:
        os.chmod(r, ROOT_MODE)
    with os.scandir(r) as it:
        for e in it:
            if e.is_dir(follow_symlinks=False):
                want = ROOT_MODE if e.name in CROSSABLE else PRIVATE_MODE
                if e.stat(follow_symlinks=False).st_mode & 0o7777 != want:
                    os.chmod(e.path, want)
    for name in ("image", "containers", "volumes", "networks"):
        try:
            os.mkdir(os.path.join(r, name), PRIVATE_MODE)
        except FileExistsError:
            pass


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
