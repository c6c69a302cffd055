"""A fixed sample of the OCI runtime-tools validation suite, minidock-runtime against runc on
the same machine: for each test, at least runc's passes and no more failures than runc.

The whole suite (58 tests, a few minutes per runtime) runs from `scripts/oci-validation`; its
table is in docs/oci-runtime.md. The suite is built offline from the shared corpus
(<repo>/../shared/corpus/oci); where it cannot be built the test is skipped with the reason.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import shutil
from pathlib import Path

import pytest

pytestmark = pytest.mark.noleakcheck  # the script cleans its mounts, bundles and cgroups after each test

REPO = Path(__file__).resolve().parents[2]

# the tests the parity work was about, and a few quick ones (about 90 s for both
# runtimes; the 54-case linux_cgroups_memory runs in full from the script)
SAMPLE = [
    "config_updates_without_affect", "linux_ns_itype", "linux_ns_path", "linux_cgroups_relative_memory",
    "linux_cgroups_network", "linux_cgroups_blkio", "linux_rootfs_propagation", "linux_seccomp",
    "hooks_stdin", "pidfile",
]


def _script():
    loader = importlib.machinery.SourceFileLoader("oci_validation", str(REPO / "scripts" / "oci-validation"))
    spec = importlib.util.spec_from_loader("oci_validation", loader)
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    if shutil.which("runc") is None:
        pytest.skip("runc (the reference) is not installed")
    ov = _script()
    try:
        tree = ov.build()
    except ov.CannotBuild as e:
        pytest.skip(f"cannot build the OCI validation suite: {e}")
    work = tmp_path_factory.mktemp("ociv")
    runtimes = {label: path for label, path in (ov.resolve_runtime("runc", work),
                                                 ov.resolve_runtime("minidock", work))}
    return ov, tree, runtimes


@pytest.mark.parametrize("name", SAMPLE)
def test_validation_parity_with_runc(suite, name):
    ov, tree, runtimes = suite
    runc = ov.run_one(tree, runtimes["runc"], name)
    ours = ov.run_one(tree, runtimes["minidock-runtime"], name)
    assert ours["pass"] >= runc["pass"] and ours["fail"] <= runc["fail"], (
        f"{name}: runc {ov.cell(runc)}, minidock-runtime {ov.cell(ours)}; "
        f"minidock failures: {ours['failures'][:5]}")
