"""How many examples the property-based tests draw.

The default test run draws a quarter of each test's full count, enough to
catch a regression in the common shapes; ``WS4PY_THOROUGH=1`` (``make fuzz``)
draws them all.
"""

from __future__ import annotations

import os

__all__ = ["examples"]

THOROUGH = os.environ.get("WS4PY_THOROUGH", "") not in ("", "0")


def examples(full: int) -> int:
    """``full`` under ``WS4PY_THOROUGH=1``, else a quarter of it (at least 50)."""
    return full if THOROUGH else max(50, full // 4)
