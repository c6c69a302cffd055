"""`minidock lab check`: did the student do what the sheet asked?

Each lab's checks live next to its sheet, in ``docs/labs/NN-name.check.py``::

    from minidock.labs.checks import check

    @check("oom", "a container named hog, limited to 32 MiB, ended by the OOM killer",
           hint="minidock run --name hog -m 32m busybox sh -c '...' (step 1)")
    def oom(lab):
        c = lab.container("hog")
        lab.require(c["State"]["OOMKilled"], "hog was not OOM-killed: did it allocate more than 32 MiB?")

A check inspects what the student made inside their group's sandbox (``lab`` is a ``Lab``: the
group plus helpers) and either returns or fails with a sentence that says what is missing.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import re
from pathlib import Path

from minidock.errors import InvalidArgument, NotFound


class CheckFailed(Exception):
    pass


@dataclasses.dataclass
class Check:
    name: str
    goal: str
    hint: str
    fn: object


_registry: list[Check] = []


def check(name: str, goal: str, hint: str = ""):
    def deco(fn):
        _registry.append(Check(name, goal, hint, fn))
        return fn
    return deco


def labs_dir() -> Path:
    d = os.environ.get("MINIDOCK_LABS_DIR")
    return Path(d) if d else Path(__file__).resolve().parents[2] / "docs" / "labs"


@dataclasses.dataclass
class LabInfo:
    number: int
    slug: str
    title: str
    sheet: Path

    @property
    def checks_file(self) -> Path:
        return self.sheet.with_suffix(".check.py")

    @property
    def answers(self) -> Path:
        return self.sheet.parent / "answers" / self.sheet.name


def catalog() -> list[LabInfo]:
    out = []
    for p in sorted(labs_dir().glob("[0-9][0-9]-*.md")):
        first = p.read_text().split("\n", 1)[0].lstrip("# ").strip()
        out.append(LabInfo(int(p.name[:2]), p.stem, first, p))
    return out


def find(number: str | int) -> LabInfo:
    try:
        n = int(str(number))
    except ValueError:
        raise InvalidArgument(f"invalid lab {number!r}: give its number (see `minidock lab list`)") from None
    for lab in catalog():
        if lab.number == n:
            return lab
    raise NotFound(f"no lab {number}", "See `minidock lab list`.")


def _module(lab: LabInfo):
    if not lab.checks_file.exists():
        return None, []
    _registry.clear()
    spec = importlib.util.spec_from_file_location(f"minidock_lab_{lab.number:02d}_checks", lab.checks_file)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    found = list(_registry)
    _registry.clear()
    return mod, found


def load(lab: LabInfo) -> list[Check]:
    """The checks of one lab, in the order the file defines them."""
    return _module(lab)[1]


def prepare(lab: LabInfo, group) -> None:
    """What `lab start` does beyond the sandbox: the check file's optional prepare(group)."""
    mod, _ = _module(lab)
    if mod is not None and hasattr(mod, "prepare"):
        (group.root / "files").mkdir(parents=True, exist_ok=True)
        mod.prepare(group)


class Lab:
    """What a check sees: the student's group, and small helpers to read its state."""

    def __init__(self, group):
        self.group = group

    def md(self, *args, **kw):
        return self.group.md(*args, **kw)

    def container(self, name: str, *, required: bool = True) -> dict | None:
        r = self.md("inspect", "--type", "container", name)
        if r.returncode != 0:
            if required:
                raise CheckFailed(f"there is no container named {name} in group {self.group.name}")
            return None
        return json.loads(r.stdout)[0]

    def logs(self, name: str) -> str:
        r = self.md("logs", name)
        return r.stdout + r.stderr

    def exec(self, name: str, *cmd: str):
        return self.md("exec", name, *cmd)

    def network(self, name: str) -> dict:
        r = self.md("network", "inspect", name)
        if r.returncode != 0:
            raise CheckFailed(f"there is no network named {name} in group {self.group.name}")
        return json.loads(r.stdout)[0]

    @staticmethod
    def require(cond, message: str) -> None:
        if not cond:
            raise CheckFailed(message)

    @staticmethod
    def status_caps(status_text: str) -> int:
        m = re.search(r"^CapEff:\s*([0-9a-f]+)", status_text, re.M)
        return int(m.group(1), 16) if m else -1


def run_checks(lab: LabInfo, group, only: str | None = None) -> list[tuple[Check, str | None]]:
    """[(check, None if it passed else why not)]."""
    checks = load(lab)
    if only:
        checks = [c for c in checks if c.name == only]
        if not checks:
            raise NotFound(f"lab {lab.number} has no step {only!r}",
                           "Steps: " + ", ".join(c.name for c in load(lab)))
    ctx = Lab(group)
    out = []
    for c in checks:
        try:
            c.fn(ctx)
            out.append((c, None))
        except CheckFailed as e:
            out.append((c, str(e)))
        except (KeyError, IndexError, TypeError, ValueError) as e:
            out.append((c, f"could not read what the step made ({type(e).__name__}: {e})"))
    return out
