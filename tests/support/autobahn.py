"""Runs a reduced Autobahn|Testsuite command for the conformance tests.

wstest needs Python 2.7: without it the test is skipped locally and fails in
CI (``CI`` set to 1, true or yes), where a missing interpreter must not pass as a green run.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from . import in_ci

__all__ = ["run_quick"]

ROOT = Path(__file__).resolve().parents[2]
#: The tools' exit status when no Python 2.7 is found for wstest.
PY27_MISSING = 3


def run_quick(module: str, reports: Path, timeout: float = 1150) -> tuple[int, str]:
    """``python -m MODULE --quick --reports REPORTS``: its exit status and output.

    Skips (fails in CI) when wstest has no Python 2.7 to run on.
    """
    result = subprocess.run(
        [sys.executable, "-m", module, "--quick", "--reports", str(reports)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    output = result.stdout + result.stderr
    if result.returncode == PY27_MISSING:
        message = "Python 2.7 is missing, so Autobahn|Testsuite (wstest) cannot run"
        if in_ci():
            pytest.fail(f"{message} (required in CI):\n{output}")
        pytest.skip(f"{message}; install it (pyenv install 2.7.18) or set PY27")
    print(output)
    return result.returncode, output
