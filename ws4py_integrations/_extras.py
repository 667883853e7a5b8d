"""Clear errors for optional dependencies that are not installed."""

from __future__ import annotations

__all__ = ["missing_extra"]


def missing_extra(what: str, extra: str, exc: ImportError) -> ImportError:
    """The error to raise when ``what`` cannot import its dependency (from ``extra``)."""
    # The distribution to install, not the submodule that failed (cheroot.server).
    package = (exc.name or "").split(".")[0] or "an optional dependency"
    error = ImportError(f"{what} needs {package}, which is not installed: pip install 'ws4py_integrations[{extra}]'")
    error.name = exc.name and package
    return error
