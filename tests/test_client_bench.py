"""The client-connections benchmark command, reduced: 500 connections per client kind.

It asserts that every connection opened and that memory was measured, never how much.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
COMMAND = [sys.executable, "-m", "tools.bench.clients", "--connections", "500", "--kinds", "ours", "websockets"]


@pytest.mark.timeout(300)
def test_500_client_connections_per_kind(tmp_path: Path) -> None:
    out = tmp_path / "clients.json"
    result = subprocess.run(
        [*COMMAND, "--json", str(out), "--timeout", "240"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(out.read_text())
    for kind in ("ours", "websockets"):
        assert report[kind]["open"] == 500
        assert report[kind]["held"] > report[kind]["base"] > 0
