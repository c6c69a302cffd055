"""The lab-sheet runner without root: parsing, tolerant matching, one bash session per sheet."""

import os

from minidock.labs import sheet


def _sheet(tmp_path, text):
    p = tmp_path / "01-x.md"
    p.write_text(text)
    return sheet.parse(str(p))


SHEET = """# Lab

```console
# echo hello
hello
# false
# echo $?
1
# echo only-v2   # v2
only-v2
```

<!-- lab: skip -->
```console
# this is never run
```

```sh
not a console block
```

```console
# X=41; echo \\
$((X + 1))
42
```
"""


def test_parse_finds_commands_outputs_and_conditions(tmp_path):
    s = _sheet(tmp_path, SHEET)
    assert [c.text for c in s.commands] == ["echo hello", "false", "echo $?", "echo only-v2   # v2",
                                            "X=41; echo \\\n$((X + 1))"]
    assert s.commands[0].expected == ["hello"] and s.commands[1].expected == []
    assert s.commands[1].status_shown and not s.commands[0].status_shown
    assert s.commands[3].only == "v2"
    assert s.commands[0].line == 4


def test_matching_is_tolerant_but_not_blind():
    assert sheet.matches(["[explain 34] unshare new mount"], ["[explain 42] unshare      new mount"])
    assert sheet.matches(["[explain 34] unshare"], ["[explain  9] unshare"])  # numbers below 10 are padded
    assert sheet.matches(["abc ... xyz"], ["abc 123 456 xyz"])
    assert sheet.matches(["first", "...", "last"], ["first", "a", "b", "last"])
    assert sheet.matches(["first", "...", "last"], ["first", "last"])
    assert sheet.matches(["id 3f2a9c1b7d4e at 172.30.0.2"], ["id 0123456789ab at 10.213.4.2"])
    assert sheet.matches(["spin 50.02% 388KiB / 23.54GiB"], ["spin 99.1% 1.2MiB / 1GiB"])
    assert sheet.matches(["pid:[4026532385]"], ["pid:[4026532999]"])
    # what must still fail: other words, missing or extra lines, other numbers
    assert not sheet.matches(["lab1"], ["lab2"])
    assert not sheet.matches(["true 137"], ["false 137"])
    assert not sheet.matches(["33554432"], ["67108864"])
    assert not sheet.matches(["a", "b"], ["a"])
    assert not sheet.matches(["a"], ["a", "b"])
    assert not sheet.matches(["PID 1"], ["PID 12"])


def test_run_keeps_one_session_and_judges_each_command(tmp_path):
    s = _sheet(tmp_path, SHEET)
    res = sheet.run(s, dict(os.environ), cgroup_version="v1")
    by_text = {r.command.text: r for r in res}
    assert "echo only-v2   # v2" not in by_text  # a v2-only command on a v1 host
    assert all(r.ok for r in res), sheet.report(res, s)
    assert by_text["echo $?"].output == ["1"]
    assert by_text["false"].ok  # its status is shown by the next command, not judged


def test_drift_is_reported_and_update_rewrites_only_it(tmp_path):
    text = "```console\n# echo one\none\n# echo two\nthree\n# exit 3\n```\n"
    s = _sheet(tmp_path, text)
    res = sheet.run(s, dict(os.environ), cgroup_version="v1")
    assert [r.ok for r in res] == [True, False, False]
    rep = sheet.report(res, s)
    assert "01-x.md:4: # echo two" in rep and "three" in rep and "two" in rep
    assert "did not finish" in rep  # `exit 3` ended the session
    assert sheet.update(s, res) == 1
    assert (tmp_path / "01-x.md").read_text() == "```console\n# echo one\none\n# echo two\ntwo\n# exit 3\n```\n"


def test_a_command_with_no_output_shown_must_succeed(tmp_path):
    s = _sheet(tmp_path, "```console\n# ls /nonexistent-dir\n# echo after\nafter\n```\n")
    res = sheet.run(s, dict(os.environ), cgroup_version="v1")
    assert not res[0].ok and res[0].status == 2
    assert res[1].ok
