"""Fixtures of the root-free tests."""

from __future__ import annotations

import pytest

from minidock import kernel as k


@pytest.fixture
def fake():
    """The kernel layer's recording fake in place of libc for one test (kernel.FakeBackend)."""
    f = k.FakeBackend()
    old = k.set_backend(f)
    yield f
    k.set_backend(old)
