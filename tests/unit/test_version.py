"""One version: minidock.__version__, util.VERSION (what the engine writes into containers) and
pyproject.toml's must agree."""

import re
from pathlib import Path

import minidock
from minidock import util


def test_versions_agree():
    pyproject = (Path(__file__).resolve().parents[2] / "pyproject.toml").read_text()
    declared = re.search(r'^version = "([^"]+)"', pyproject, re.M).group(1)
    assert minidock.__version__ == util.VERSION == declared
