"""A lab group's sandbox: its own state root, cgroup parent, default bridge and subnet.

Groups sharing one VM never see each other's containers, images, networks or limits, and
``reset`` removes exactly one group's objects (never a global prune)::

    state root      $MINIDOCK_LABS_HOME/<group>         (default /var/lib/minidock-labs/<group>)
    cgroup parent   <parent>/lab-<group>                 (parent: $MINIDOCK_CGROUP_PARENT or minidock)
    default bridge  mdl-<group>  (at most 15 characters, the kernel's limit for a link name)
    subnet          the first free /24 of 10.213.0.0/16 not routed on the host (picked at start)
    LAB_PORT        20000 + the subnet's third byte: a host port to publish on (lab 06)

The group comes from ``--group NAME`` or ``$MINIDOCK_LAB_GROUP`` (default: ``default``).
Students enter it with ``eval "$(minidock lab env)"``; every ``minidock`` command they type then
works inside the sandbox.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import re
import subprocess
import sys
from pathlib import Path

from minidock.errors import InvalidArgument

_GROUP = re.compile(r"^[a-z0-9][a-z0-9-]{0,30}$")
SUBNETS = ipaddress.IPv4Network("10.213.0.0/16")


def home() -> Path:
    return Path(os.environ.get("MINIDOCK_LABS_HOME", "/var/lib/minidock-labs"))


def group_name(group: str | None) -> str:
    g = group or os.environ.get("MINIDOCK_LAB_GROUP") or "default"
    if not _GROUP.match(g):
        raise InvalidArgument(f"invalid lab group {g!r}: use lower-case letters, digits and '-' (at most 31)")
    return g


class Group:
    def __init__(self, group: str | None = None):
        self.name = group_name(group)
        self.root = home() / self.name
        base = os.environ.get("MINIDOCK_LAB_CGROUP_BASE") or os.environ.get("MINIDOCK_CGROUP_PARENT") or "minidock"
        if "/lab-" in base:  # already inside a group's environment: keep the base
            base = base.split("/lab-")[0]
        self.cgroup_parent = f"{base}/lab-{self.name}"
        # a link name has at most 15 characters: long group names are shortened with a hash
        short = self.name if len(self.name) <= 11 else self.name[:6] + hashlib.sha1(self.name.encode()).hexdigest()[:5]
        self.bridge = f"mdl-{short}"

    # ---- the environment a student's shell (and the sheet runner) uses -------------------------
    def subnet(self) -> str:
        meta = self._meta()
        return meta.get("subnet") or ""

    def port(self) -> int:
        """A host port of the group's own for labs that publish one (unique like its subnet)."""
        third = int(self.subnet().split(".")[2]) if self.subnet() else 0
        return 20000 + third

    def env(self, base: dict | None = None) -> dict:
        e = dict(os.environ if base is None else base)
        e.update({
            "MINIDOCK_ROOT": str(self.root), "MINIDOCK_CGROUP_PARENT": self.cgroup_parent,
            "MINIDOCK_BRIDGE": self.bridge, "MINIDOCK_LAB_GROUP": self.name,
            "MINIDOCK_RUNTIME_ROOT": str(self.root / "runtime"),
            "MINIDOCK_LAB_CGROUP_BASE": self.cgroup_parent.split("/lab-")[0],
        })
        if self.subnet():
            e["MINIDOCK_BRIDGE_SUBNET"] = self.subnet()
            e["LAB_PORT"] = str(self.port())
        e.pop("MINIDOCK_DEFAULT_NETWORK", None)
        if e.get("MINIDOCK_LAB_NETWORK"):  # a machine without bridges (the v2 test VM): e.g. "none"
            e["MINIDOCK_DEFAULT_NETWORK"] = e["MINIDOCK_LAB_NETWORK"]
        e.pop("MINIDOCK_RUN", None)
        # lab 08's runtime imports minidock.kernel with any python3
        pkg = str(Path(__file__).resolve().parents[2])
        if pkg not in e.get("PYTHONPATH", "").split(":"):
            e["PYTHONPATH"] = pkg + (":" + e["PYTHONPATH"] if e.get("PYTHONPATH") else "")
        return e

    def exports(self) -> str:
        keys = ("MINIDOCK_ROOT", "MINIDOCK_CGROUP_PARENT", "MINIDOCK_BRIDGE", "MINIDOCK_BRIDGE_SUBNET",
                "MINIDOCK_RUNTIME_ROOT",
                "MINIDOCK_LAB_GROUP", "MINIDOCK_LAB_CGROUP_BASE", "LAB_PORT", "PYTHONPATH")
        e = self.env({})
        lines = [f"export {k}={e[k]}" for k in keys if k in e]
        lines.append("unset MINIDOCK_DEFAULT_NETWORK")
        return "\n".join(lines)

    # ---- start / reset ---------------------------------------------------------------------------
    def _meta(self) -> dict:
        try:
            return json.loads((self.root / "lab-group.json").read_text())
        except (OSError, ValueError):
            return {}

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o711)
        meta = self._meta()
        if not meta.get("subnet"):
            meta = {"group": self.name, "subnet": str(self._free_subnet())}
            from minidock.util import fsutil

            fsutil.atomic_write_json(self.root / "lab-group.json", meta)
        self.ensure_busybox()

    def _free_subnet(self) -> ipaddress.IPv4Network:
        from minidock.network import store

        taken = store.host_routes(set())
        for g in home().glob("*/lab-group.json"):
            try:
                taken.append(ipaddress.IPv4Network(json.loads(g.read_text())["subnet"]))
            except (OSError, ValueError, KeyError):
                continue
        # start where the group's name points, so two groups rarely race for the same one
        subnets = list(SUBNETS.subnets(new_prefix=24))
        first = int(hashlib.sha1(self.name.encode()).hexdigest(), 16) % len(subnets)
        for cand in subnets[first:] + subnets[:first]:
            if not any(cand.overlaps(t) for t in taken):
                return cand
        raise InvalidArgument("no free /24 left in 10.213.0.0/16 for a lab group")

    def md(self, *args, input: str | None = None, check: bool = False, timeout: float = 120):
        """Run the minidock CLI inside the group (as the student would)."""
        return subprocess.run([sys.executable, "-m", "minidock", *map(str, args)], input=input,
                              capture_output=True, text=True, env=self.env(), timeout=timeout, check=check)

    def has_image(self, ref: str) -> bool:
        return self.md("image", "inspect", ref).returncode == 0

    def ensure_busybox(self) -> None:
        """The busybox image in the group's store: copied from the machine's store (`save | load`),
        else built offline from busybox-static with the repository's recipe."""
        if self.has_image("busybox"):
            return
        machine = dict(os.environ)
        if machine.get("MINIDOCK_ROOT", "").startswith(str(home())):
            machine.pop("MINIDOCK_ROOT")  # a student's shell inside another group: use the machine's
        save = subprocess.run([sys.executable, "-m", "minidock", "save", "busybox"], capture_output=True,
                              env=machine, timeout=120)
        if save.returncode == 0 and save.stdout:
            load = subprocess.run([sys.executable, "-m", "minidock", "load"], input=save.stdout,
                                  capture_output=True, env=self.env(), timeout=120)
            if load.returncode == 0:
                return
        recipe = Path(__file__).resolve().parents[2] / "rootfs" / "busybox.sh"
        if not recipe.exists():
            raise InvalidArgument("no busybox image to start the lab with",
                                  "Run `sudo ./install.sh` (it builds the busybox image), then try again.")
        tar = self.root / "busybox.tar"
        subprocess.run(["sh", str(recipe), str(tar)], check=True, capture_output=True, timeout=300)
        try:
            self.md("import", tar, "busybox:latest", "--change", 'CMD ["sh"]', check=True)
        finally:
            tar.unlink(missing_ok=True)

    def reset(self) -> list[str]:
        """Remove this group's containers, images, networks, volumes, bridge and cgroups."""
        done = []
        rt = self.root / "runtime"
        if rt.is_dir():  # containers the group made with minidock-runtime (lab 07)
            runtime = [sys.executable, "-c", "import sys; from minidock.cli.runtime_cli import main; main()"]
            for cid in sorted(p.name for p in rt.iterdir() if p.is_dir()):
                subprocess.run([*runtime, "delete", "-f", cid], capture_output=True, env=self.env(), timeout=60)
                done.append(f"runtime container {cid}")
        if self.root.is_dir():
            ids = self.md("ps", "-aq").stdout.split()
            if ids:
                self.md("rm", "-f", "-v", *ids, timeout=300)
                done.append(f"{len(ids)} container(s)")
            self.md("system", "prune", "--all", "--force", "--volumes", timeout=300)
            done.append("images, networks and volumes")
        # (not /sys/class/net: sysfs shows the namespace it was mounted in, not always ours)
        if subprocess.run(["ip", "link", "del", self.bridge], capture_output=True).returncode == 0:
            done.append(f"bridge {self.bridge}")
        _remove_cgroup_dirs(self.cgroup_parent)
        if self.root.is_dir():
            _umount_under(str(self.root))
            from minidock.paths import remove_tree

            remove_tree(self.root)
            done.append(f"state root {self.root}")
        return done


def _umount_under(prefix: str) -> None:
    from minidock.util import mountinfo

    targets = [m.target for m in mountinfo.read() if m.target.startswith(prefix + "/")]
    for t in sorted(targets, reverse=True):
        subprocess.run(["umount", "-l", t], capture_output=True)


def _remove_cgroup_dirs(parent: str) -> None:
    """rmdir the group's cgroup directories (deepest first), in every hierarchy."""
    from minidock.runtime.cgroups_mount import host_cgroup_mounts

    for base, _, _ in host_cgroup_mounts():
        top = Path(base, parent)
        if not top.is_dir():
            continue
        for d in sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: -len(str(p))):
            try:
                d.rmdir()
            except OSError:
                pass
        try:
            top.rmdir()
        except OSError:
            pass
