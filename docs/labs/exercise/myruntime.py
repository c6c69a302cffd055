"""Your own container runtime, on minidock's kernel layer (lab 08).

    python3 myruntime.py ROOTFS COMMAND [ARG...]        (as root; EXPLAIN=1 prints every kernel call)

Every kernel call goes through `minidock.kernel` (imported as `k`), the same layer the real
engine uses: with EXPLAIN=1 your calls print exactly like `minidock run --explain`, and
`minidock lab check 8` compares your trace with the engine's.

Fill in the five TODOs, in order. The functions you need: k.unshare, k.mount, k.pivot_root,
k.umount, k.chdir, k.sethostname, and the constants k.CLONE_NEW*, k.MS_*, k.MNT_DETACH.
"""

import os
import sys

from minidock import kernel as k

HOSTNAME = "mycontainer"


def todo(what: str) -> None:
    sys.exit(f"myruntime: TODO: {what}")


def child(rootfs: str, argv: list[str]) -> None:
    """PID 1 of the new PID namespace: build its world, then become the command."""
    # TODO 2: make every mount in this (new) mount namespace private, recursively, so nothing
    #         you mount from now on propagates back to the host.
    todo("make the mounts private (k.mount(None, '/', None, k.MS_REC | k.MS_PRIVATE, ...))")
    # TODO 3: bind the rootfs onto itself (pivot_root's new root must be a mount point), then
    #         mount a fresh proc on ROOTFS/proc for the new PID namespace.
    # TODO 4: chdir into the rootfs, pivot_root(".", "."), make the old root (now on top of ".")
    #         a slave, detach it with k.umount(".", k.MNT_DETACH), chdir("/").
    # TODO 5: give the container its own hostname (HOSTNAME).
    os.execvp(argv[0], argv)


def main() -> None:
    if len(sys.argv) < 3:
        sys.exit("usage: myruntime.py ROOTFS COMMAND [ARG...]")
    rootfs, argv = os.path.abspath(sys.argv[1]), sys.argv[2:]
    if os.environ.get("EXPLAIN"):
        k.explain_to(2)
    # TODO 1: new mount, UTS, IPC and PID namespaces for what follows (one k.unshare call).
    pid = os.fork()  # the first child after unshare(CLONE_NEWPID) is PID 1 of the new namespace
    if pid == 0:
        try:
            child(rootfs, argv)
        except Exception as e:  # noqa: BLE001 - show the learner what failed, then leave
            print(f"myruntime: {e}", file=sys.stderr)
            os._exit(126)
    _, status = os.waitpid(pid, 0)
    sys.exit(os.waitstatus_to_exitcode(status))


if __name__ == "__main__":
    main()
