"""Small helpers every layer may use (no minidock imports beyond errors and paths).

    now()          the one clock for records: RFC 3339 UTC with nanoseconds, like Docker's
    human_size()   Docker's size units (powers of 1000, 3 significant digits)
"""

from __future__ import annotations

import time


def now() -> str:
    """The current time as Docker writes it in records: 2026-11-26T13:34:35.123456789Z."""
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e9):09d}Z"


def human_size(n: float) -> str:
    """Docker's units: powers of 1000, 3 significant digits (4.26MB)."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.3g}{unit}" if unit != "B" else f"{int(n)}B"
        n /= 1000
    return f"{n}B"
