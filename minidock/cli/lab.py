"""`minidock lab`: lab sessions with per-group sandboxes, self-checks, hints and answers."""

from __future__ import annotations

import click

_group_opt = click.option("--group", "-g", envvar="MINIDOCK_LAB_GROUP", metavar="NAME",
                          help="The group's sandbox (default: $MINIDOCK_LAB_GROUP or 'default').")


@click.group()
def lab():
    """Lab sheets that check themselves (docs/labs/)."""


@lab.command("list")
def list_():
    """List the labs."""
    from minidock.labs import checks

    click.echo(f"{'LAB':<5}{'TITLE':<62}CHECKS")
    for info in checks.catalog():
        n = len(checks.load(info))
        click.echo(f"{info.number:<5}{info.title[:60]:<62}{n}")


@lab.command()
@_group_opt
@click.argument("number")
def start(group, number):
    """Prepare a lab in the group's sandbox (own state root, bridge, subnet, cgroups)."""
    from minidock.labs import checks, sandbox

    info = checks.find(number)
    g = sandbox.Group(group)
    g.start()
    checks.prepare(info, g)
    click.echo(f"Lab {info.number}: {info.title}")
    click.echo(f"Group {g.name}: state {g.root}, bridge {g.bridge} ({g.subnet()}), cgroups {g.cgroup_parent}")
    click.echo(f"Sheet: {info.sheet}")
    click.echo("Enter the sandbox in your shell with:")
    click.echo(f'    eval "$(minidock lab env --group {g.name})"')
    click.echo(f"then follow the sheet; `minidock lab check {info.number}` says how you are doing.")


@lab.command()
@_group_opt
def env(group):
    """Print the shell exports that put `minidock` inside the group's sandbox."""
    from minidock.labs import sandbox

    click.echo(sandbox.Group(group).exports())


@lab.command()
@_group_opt
@click.argument("number")
@click.argument("step", required=False)
def check(group, number, step):
    """Check what the group did for a lab (or one STEP of it)."""
    from minidock.labs import checks, sandbox

    info = checks.find(number)
    g = sandbox.Group(group)
    results = checks.run_checks(info, g, step)
    if not results:
        click.echo(f"lab {info.number} has no checks")
        return 0
    failed = 0
    for c, why in results:
        if why is None:
            click.echo(f"PASS  {c.name}: {c.goal}")
        else:
            failed += 1
            click.echo(f"FAIL  {c.name}: {c.goal}")
            click.echo(f"      {why}")
            if c.hint:
                click.echo(f"      hint: {c.hint}")
    click.echo(f"{len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0


@lab.command()
@click.argument("number")
def hint(number):
    """The hints for each step of a lab."""
    from minidock.labs import checks

    info = checks.find(number)
    for c in checks.load(info):
        click.echo(f"{c.name}: {c.goal}")
        if c.hint:
            click.echo(f"    hint: {c.hint}")


@lab.command()
@click.argument("number")
def solution(number):
    """The answers (docs/labs/answers/): for instructors, or after trying."""
    from minidock.errors import NotFound
    from minidock.labs import checks

    info = checks.find(number)
    if not info.answers.exists():
        raise NotFound(f"lab {info.number} has no answers file ({info.answers})")
    click.echo(info.answers.read_text().rstrip())


@lab.command()
@_group_opt
@click.argument("number", required=False)
def reset(group, number):
    """Remove everything the group made (containers, images, networks, volumes, bridge, cgroups)."""
    from minidock.labs import sandbox

    g = sandbox.Group(group)
    done = g.reset()
    click.echo(f"group {g.name}: removed " + (", ".join(done) if done else "nothing (already clean)"))


@lab.command()
@_group_opt
@click.option("--update", is_flag=True, help="Rewrite the outputs that drifted with what the tool prints now.")
@click.argument("number")
def verify(group, update, number):
    """Run a lab's sheet end to end in a throwaway sandbox and compare every output (instructors)."""
    from minidock import labs
    from minidock.labs import checks, sandbox

    info = checks.find(number)
    g = sandbox.Group(group or f"verify-{info.number:02d}")
    results, text, updated = labs.verify(info, g, update=update)
    bad = sum(1 for r in results if not r.ok)
    if text:
        click.echo(text)
    if update and updated:
        click.echo(f"updated {updated} output(s) in {info.sheet}")
    click.echo(f"{len(results) - bad} passed, {bad} failed")
    return 1 if bad and not update else 0


@click.command()
@click.option("--view", type=click.Choice(["all", "namespaces", "overlay", "cgroup", "network"]), default="all",
              show_default=True, help="Which picture.")
@click.option("--svg", "svg", metavar="PATH", help="Write SVG: a file (one view) or a directory (NAME-VIEW.svg).")
@click.argument("ref", metavar="CONTAINER")
def diagram(view, svg, ref):
    """Draw a running container from the kernel's state: namespaces, overlay stack, cgroup, packet path."""
    import os

    from minidock.labs import diagram as dg
    from minidock.labs import kernelview

    rec, rep = kernelview.for_container(ref)
    views = dg.VIEWS if view == "all" else (view,)
    for v in views:
        picture, text = dg.draw(v, rep, rec)
        if not svg:
            click.echo(text + "\n")
            continue
        path = os.path.join(svg, f"{rep['Name']}-{v}.svg") if os.path.isdir(svg) or len(views) > 1 else svg
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        with open(path, "w") as f:
            f.write(picture)
        click.echo(path)


@click.command()
@click.option("-o", "--output", metavar="FILE", help="Write the script to FILE (default: standard output).")
@click.option("--check", "check_", is_flag=True,
              help="Run the script and compare the replayed container with the real one.")
@click.argument("ref", metavar="CONTAINER")
def replay(output, check_, ref):
    """A bash script that builds CONTAINER by hand (overlay, cgroup, unshare, mounts, pivot_root, exec)."""
    import json
    import os

    from minidock.labs import replay as rp
    from minidock.state import containers

    if check_:
        rows, ok = rp.check(ref)
        click.echo(f"{'':32}{'real container':<34}replayed")
        for what, a, b, same in rows:
            click.echo(f"{'  ' if same else '! '}{what:<30}{a[:32]:<34}{b[:60]}")
        click.echo("the replay matches the real container" if ok else
                   f"{sum(1 for r in rows if not r[3])} difference(s) (marked !)")
        return 0 if ok else 1
    cid = containers.resolve(ref)
    with open(os.path.join(containers.cdir(cid), "config.json")) as f:
        rec = json.load(f)
    with open(os.path.join(containers.cdir(cid), "bundle", "config.json")) as f:
        spec = json.load(f)
    text = rp.script(rec, spec)
    if output:
        with open(output, "w") as f:
            f.write(text)
        os.chmod(output, 0o755)
        click.echo(output)
    else:
        click.echo(text, nl=False)
    return 0
