"""The runtime: an OCI bundle in, an isolated process out.

    from minidock.runtime import create, load
    c = create("id", "/path/to/bundle")     # namespaces, cgroup, rootfs, pivot_root; not yet run
    c.start(); code = c.wait(); c.delete()

See container.py for a created container's verbs, process.py (and sync.py) for the parent/child
protocol, init.py for the container init's checklist.
"""

__all__ = ["Container", "create", "exit_code", "load"]


def __getattr__(name: str):
    """The names above come from container.py/process.py on first use (PEP 562): importing a light submodule
    (spec, cgroups.hierarchy) must not pay for process.py, the init, the kernel layer and
    dataclasses -- `minidock-runtime state` runs in engines' loops."""
    if name == "create":
        from minidock.runtime import process

        return process.create
    if name in __all__:
        from minidock.runtime import container  # no init, no protocol

        return getattr(container, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
