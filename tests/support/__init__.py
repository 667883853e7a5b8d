"""Test fixtures shared by the suite and the tools: the test app, server harnesses, clients, runners.

Imports only the library, ``examples`` and itself (never ``tools`` nor test modules).
"""

from __future__ import annotations

import os

__all__ = ["in_ci"]


def in_ci() -> bool:
    """Whether we run in CI (``CI`` is 1, true or yes, any case): there, missing tools fail instead of skip."""
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")
