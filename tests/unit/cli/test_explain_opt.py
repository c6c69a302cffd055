"""--explain[=json]: the = form carries the format; nothing after the first argument is touched."""

import click
import pytest

from minidock.cli import explain_opt


@click.command(context_settings={"allow_interspersed_args": False})
@click.option("-e", "--env", multiple=True)
@click.option("-d", "--detach", is_flag=True)
@explain_opt.options("Explain.")
@click.argument("image")
@click.argument("command", nargs=-1)
def cmd(env, detach, explain, explain_format, image, command):
    click.echo(f"{explain} {explain_format} {image} {list(command)}")


def _run(args):
    from click.testing import CliRunner

    return CliRunner().invoke(cmd, explain_opt.rewrite(cmd, args)).output.strip()


def test_flag_alone_and_with_json():
    assert _run(["--explain", "busybox", "true"]) == "True text busybox ['true']"
    assert _run(["--explain=json", "busybox", "true"]) == "True json busybox ['true']"
    assert _run(["busybox", "true"]) == "False text busybox ['true']"


def test_values_of_other_options_and_the_command_line_are_left_alone():
    # -e takes a value that looks like ours; the container's own arguments are never rewritten
    assert _run(["-e", "--explain=json", "-d", "busybox", "echo", "--explain=json"]) == \
        "False text busybox ['echo', '--explain=json']"
    assert _run(["--explain=json", "--", "busybox"]) == "True json busybox []"


def test_an_unknown_format_is_refused():
    with pytest.raises(click.BadParameter, match="--explain=json"):
        explain_opt.rewrite(cmd, ["--explain=xml", "busybox"])
