"""Lab 08's solution: the skeleton (docs/labs/exercise/myruntime.py) with the five TODOs done."""

import os
import sys

from minidock import kernel as k

HOSTNAME = "mycontainer"


def child(rootfs: str, argv: list[str]) -> None:
    # 2: nothing mounted from now on propagates back to the host
    k.mount(None, "/", None, k.MS_REC | k.MS_PRIVATE, why="keep our mounts out of the host's namespace")
    # 3: pivot_root needs a mount point; the new PID namespace needs its own /proc
    k.mount(rootfs, rootfs, None, k.MS_BIND | k.MS_REC, why="pivot_root needs the new root to be a mount point")
    k.mount("proc", os.path.join(rootfs, "proc"), "proc", k.MS_NOSUID | k.MS_NODEV | k.MS_NOEXEC,
            why="a proc of the new PID namespace")
    # 4: the rootfs becomes /, the host's root is detached
    k.chdir(rootfs, why="enter the new root")
    k.pivot_root(".", ".", why="the rootfs becomes /; the old root is stacked on it")
    k.mount(None, ".", None, k.MS_SLAVE | k.MS_REC, why="detaching the old root must not propagate")
    k.umount(".", k.MNT_DETACH, why="detach the host's root")
    k.chdir("/", why="start at the new /")
    # 5: our own hostname (UTS namespace)
    k.sethostname(HOSTNAME, why="the container's own hostname")
    os.execvp(argv[0], argv)


def main() -> None:
    rootfs, argv = os.path.abspath(sys.argv[1]), sys.argv[2:]
    if os.environ.get("EXPLAIN"):
        k.explain_to(2)
    # 1: new namespaces
    k.unshare(k.CLONE_NEWNS | k.CLONE_NEWUTS | k.CLONE_NEWIPC | k.CLONE_NEWPID, why="a world of its own")
    pid = os.fork()
    if pid == 0:
        try:
            child(rootfs, argv)
        except Exception as e:  # noqa: BLE001
            print(f"myruntime: {e}", file=sys.stderr)
            os._exit(126)
    _, status = os.waitpid(pid, 0)
    sys.exit(os.waitstatus_to_exitcode(status))


if __name__ == "__main__":
    main()
