"""Lab sheets that run: every console block of docs/labs/*.md is a script with expected output.

A sheet is Markdown. Each fenced block marked ``console`` holds commands and what they print::

    ```console
    # minidock run --rm -h lab1 busybox hostname
    lab1
    # minidock run -d --name ns1 busybox sleep 600      # a command with no output shown must succeed
    ```

* A line starting with ``# `` is a command (typed as root); the lines after it, up to the next
  command, are what it prints (stdout and stderr together). A command with no output lines below
  it must exit 0 (unless the next command is ``echo $?``, which then shows the status); a command
  with output lines is judged by its output alone.
* A command ending with ``\\`` continues on the next line.
* ``# v1`` or ``# v2`` at the end of a command: it runs only on a cgroup v1 / v2 host.
* Expected output is matched tolerantly: a line ``...`` stands for any number of lines, ``...``
  inside a line for any text; container IDs, digests, addresses, times, "N seconds ago", sizes
  and percentages, and ``[explain N]`` step numbers are compared as placeholders; runs of spaces
  count as one (columns move when widths change).
* ``<!-- lab: skip -->`` before a block: shown to students, not run (interactive steps).

All blocks of a sheet run in ONE bash session, in order, with the lab group's environment (see
sandbox.py), so `$PID=...` on one line is there on the next and `echo $?` sees the previous
command. ``verify`` reports each command whose output drifted from the sheet; ``update``
rewrites those outputs in the sheet with what the tool prints now.
"""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess

FENCE = re.compile(r"^```(\w*)\s*$")
SKIP = re.compile(r"<!--\s*lab:\s*skip\s*-->")
ONLY = re.compile(r"\s#\s*(v1|v2)\s*$")


@dataclasses.dataclass
class Command:
    text: str                 # the command as typed (continuations joined with newlines)
    expected: list[str]       # the output lines the sheet shows
    line: int                 # 1-based line of the command in the sheet
    out_start: int            # 0-based index of the first output line in the sheet's lines
    out_end: int              # one past the last output line
    only: str | None = None   # "v1" / "v2": run only on that cgroup version
    status_shown: bool = False  # the next command is `echo $?`: the sheet shows the status itself


@dataclasses.dataclass
class Sheet:
    path: str
    lines: list[str]
    commands: list[Command]


def parse(path: str) -> Sheet:
    with open(path) as f:
        lines = f.read().split("\n")
    cmds: list[Command] = []
    i, skip_next = 0, False
    while i < len(lines):
        if SKIP.search(lines[i]):
            skip_next = True
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        lang, start = m.group(1), i + 1
        end = start
        while end < len(lines) and not FENCE.match(lines[end]):
            end += 1
        if lang == "console" and not skip_next:
            cmds.extend(_block(lines, start, end))
        if lang:
            skip_next = False
        i = end + 1
    return Sheet(path, lines, cmds)


def _block(lines: list[str], start: int, end: int) -> list[Command]:
    out: list[Command] = []
    i = start
    while i < end:
        if not lines[i].startswith("# "):
            raise ValueError(f"line {i + 1}: output before any command in a console block")
        first = i
        text = lines[i][2:]
        while text.endswith("\\") and i + 1 < end:
            i += 1
            text = text + "\n" + lines[i]
        i += 1
        o = i
        while i < end and not lines[i].startswith("# "):
            i += 1
        m = ONLY.search(text)
        out.append(Command(text, lines[o:i], first + 1, o, i, m.group(1) if m else None))
    for a, b in zip(out, out[1:]):
        a.status_shown = b.text.startswith("echo $?")
    return out


# ---- tolerant matching ---------------------------------------------------------------------------
_NORMALIZE = [
    (re.compile(r"\[explain +\d+\]"), "[explain N]"),
    (re.compile(r"sha256:[0-9a-f]{64}"), "sha256:<DIGEST>"),
    (re.compile(r"\b[0-9a-f]{64}\b"), "<ID>"),
    (re.compile(r"\b[0-9a-f]{12}\b"), "<ID>"),
    (re.compile(r"\bmd[0-9a-f]{8,12}\b"), "<VETH>"),
    (re.compile(r"\b\d{4}-\d\d-\d\d[T ]\d\d:\d\d(:\d\d(\.\d+)?)?(Z|[+-]\d\d:?\d\d)?\b"), "<TIME>"),
    (re.compile(r"\b(\w{3} +\d+ +\d\d:\d\d)\b"), "<TIME>"),
    (re.compile(r"\b(\d+|About an?|Less than a|An?) (second|minute|hour|day|week)s? ago\b"), "<AGO>"),
    (re.compile(r"\b([0-9a-f]{2}:){5}[0-9a-f]{2}\b"), "<MAC>"),
    (re.compile(r"\[\d{9,}\]"), "[<INODE>]"),
    (re.compile(r"\b\d{1,3}(\.\d{1,3}){3}\b"), "<IP>"),
    (re.compile(r"\b\d+(\.\d+)?\s?(B|[kKMGT]i?B|%)(?=\W|$)"), "<N>"),
    (re.compile(r"\btime=\d+(\.\d+)? ms\b"), "time=<T> ms"),
    (re.compile(r"\b\d+(\.\d+)?(ms|s)\b"), "<DUR>"),
    (re.compile(r"[ \t]+"), " "),
]


def normalize(line: str) -> str:
    for rx, repl in _NORMALIZE:
        line = rx.sub(repl, line)
    return line.strip()


def _pattern(expected: str) -> re.Pattern:
    parts = normalize(expected).split("...")
    return re.compile(".*".join(re.escape(p) for p in parts) + r"\Z", re.S)


def matches(expected: list[str], actual: list[str]) -> bool:
    """Do the output lines match the sheet's (with ``...`` lines as wildcards)?"""
    exp = [e for e in expected if e.strip() or False] if expected else []
    act = [normalize(a) for a in actual if a.strip()]
    pats = [None if e.strip() == "..." else _pattern(e) for e in exp]
    memo: dict[tuple[int, int], bool] = {}

    def m(i: int, j: int) -> bool:
        if (i, j) in memo:
            return memo[i, j]
        if i == len(pats):
            r = j == len(act)
        elif pats[i] is None:
            r = m(i + 1, j) or (j < len(act) and m(i, j + 1))
        else:
            r = j < len(act) and bool(pats[i].match(act[j])) and m(i + 1, j + 1)
        memo[i, j] = r
        return r

    return m(0, 0)


# ---- running ---------------------------------------------------------------------------------------
MARK = "@@LAB"
_SPLIT = re.compile(r"\n?@@LAB (STEP|RC) (\d+) ?(\d*)@@\n")


def script(cmds: list[Command], cgroup_version: str) -> tuple[str, list[int]]:
    """One bash script running the commands in order; markers separate their outputs."""
    out = ["exec 2>&1", "__rc=0"]
    ran = []
    for n, c in enumerate(cmds):
        if c.only and c.only != cgroup_version:
            continue
        ran.append(n)
        out.append(f"printf '\\n{MARK} STEP {n}@@\\n'; (exit $__rc)")
        out.append(c.text)
        out.append(f"__rc=$?; printf '\\n{MARK} RC {n} %d@@\\n' \"$__rc\"")
    return "\n".join(out) + "\n", ran


@dataclasses.dataclass
class Result:
    command: Command
    output: list[str]
    status: int | None        # None: the sheet's script ended before this command finished

    @property
    def ok(self) -> bool:
        if self.status is None:
            return False
        if self.command.expected:
            return matches(self.command.expected, self.output)
        return self.status == 0 or self.command.status_shown


def run(sheet: Sheet, env: dict, *, cgroup_version: str, timeout: float = 600,
        wrap: list[str] | None = None, cwd: str | None = None) -> list[Result]:
    """Run every command of the sheet in one bash session; the results in sheet order."""
    import tempfile

    text, ran = script(sheet.commands, cgroup_version)
    # the script is a file and stdin is /dev/null: a command that reads stdin must not eat the sheet
    with tempfile.NamedTemporaryFile("w", prefix="minidock-sheet-", suffix=".sh") as f:
        f.write(text)
        f.flush()
        argv = [*(wrap or []), "bash", "--noprofile", "--norc", f.name]
        p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, env=env,
                           timeout=timeout, cwd=cwd)
    chunks = _SPLIT.split(p.stdout)
    outputs: dict[int, list[str]] = {}
    status: dict[int, int] = {}
    # chunks: [pre, kind, n, rc, text, kind, n, rc, text, ...]
    for k in range(1, len(chunks) - 3, 4):
        kind, n, rc, body = chunks[k], int(chunks[k + 1]), chunks[k + 2], chunks[k + 3]
        if kind == "STEP":
            outputs[n] = body.split("\n") if body else []
            if outputs[n] and outputs[n][-1] == "":
                outputs[n].pop()
        else:
            status[n] = int(rc)
    if p.stderr.strip():
        # only reachable if bash itself could not start; keep it visible
        outputs.setdefault(ran[0] if ran else 0, []).append(p.stderr)
    return [Result(sheet.commands[n], outputs.get(n, []), status.get(n)) for n in ran]


def report(results: list[Result], sheet: Sheet) -> str:
    lines = []
    for r in results:
        if r.ok:
            continue
        where = f"{os.path.basename(sheet.path)}:{r.command.line}"
        lines.append(f"--- {where}: # {r.command.text}")
        if r.status is None:
            lines.append("    (did not finish: the sheet stopped before this command)")
        elif not r.command.expected:
            lines.append(f"    exit status {r.status} (a command with no output shown must succeed)")
        else:
            lines.append("    expected:")
            lines += [f"      {e}" for e in r.command.expected]
        lines.append("    got:")
        lines += [f"      {a}" for a in r.output if a.strip()] or ["      (nothing)"]
    return "\n".join(lines)


def update(sheet: Sheet, results: list[Result]) -> int:
    """Rewrite the outputs that drifted with what the commands print now; returns how many."""
    lines = list(sheet.lines)
    changed = 0
    for r in sorted(results, key=lambda r: -r.command.out_start):
        if r.ok or not r.command.expected or r.status is None:
            continue
        lines[r.command.out_start:r.command.out_end] = [a for a in r.output if a.strip()]
        changed += 1
    if changed:
        with open(sheet.path, "w") as f:
            f.write("\n".join(lines))
    return changed
