"""The runtime: an OCI bundle in, an isolated process out.

    from minidock.runtime import create, load
    c = create("id", "/path/to/bundle")     # namespaces, cgroup, rootfs, pivot_root; not yet run
    c.start(); code = c.wait(); c.delete()

See process.py for the parent/child protocol and init.py for the container init's checklist.
"""

from minidock.runtime.process import Container, create, exit_code, load

__all__ = ["Container", "create", "exit_code", "load"]
