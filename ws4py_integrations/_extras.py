"""Clear errors for optional dependencies that are not installed."""

from __future__ import annotations

__all__ = ["missing_extra"]


def missing_extra(what: str, extra: str, exc: ImportError) -> ImportError:
    """The error to raise when ``what`` cannot import ``exc.name`` (from ``extra``)."""
    error = ImportError(
        f"{what} needs {exc.name or 'an optional dependency'}, which is not installed: "
        f"pip install 'ws4py_integrations[{extra}]'"
    )
    error.name = exc.name
    return error
