"""Where the shared conformance corpus is: <repo>/../shared/corpus (CI), else $MINIDOCK_SHARED
or /work/shared (a local worktree)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]


def corpus_dir() -> Path | None:
    cands = [REPO.parent / "shared" / "corpus"]
    if os.environ.get("MINIDOCK_SHARED"):
        cands.append(Path(os.environ["MINIDOCK_SHARED"]) / "corpus")
    cands.append(Path("/work/shared/corpus"))
    for c in cands:
        if (c / "build").is_dir():
            return c
    return None


def build_corpus(sub: str) -> Path:
    c = corpus_dir()
    if c is None or not (c / "build" / sub).exists():
        pytest.skip(f"conformance corpus build/{sub} not found (looked in <repo>/../shared/corpus, "
                    "$MINIDOCK_SHARED/corpus, /work/shared/corpus)")
    return c / "build" / sub
