"""Smoke test of the benchmark command: quick mode, our wsgiref server against raw TCP.

It asserts that every scenario produced numbers, never how fast they are. The
load client's venv (picows, uvloop) is created in ``tools/bench/.venvs/client`` on
first use and reused afterwards.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

EXPECTED = {
    "echo-16": ("msgs_per_s", "p50_us", "p99_us", "server_cpu_us_per_msg", "client_cpu_us_per_msg"),
    "bulk-64k": ("mb_per_s", "p50_us"),
    "idle-200": ("handshakes_per_s", "rss_mib"),
    "broadcast-100": ("p50_ms", "p99_ms", "all_ms"),
}


@pytest.mark.timeout(900)
def test_quick_bench_produces_numbers(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    docs = tmp_path / "benchmarks.rst"
    command = [
        sys.executable,
        "-m",
        "tools.bench",
        "--quick",
        "--servers",
        "wsgiref",
        "--competitors",
        "raw",
        "--json",
        str(out),
        "--docs",
        str(docs),
    ]
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=840)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    data = json.loads(out.read_text())
    assert [c["name"] for c in data["competitors"]] == ["ours-wsgiref", "raw"]
    for scenario, keys in EXPECTED.items():
        for name in ("ours-wsgiref", "raw"):
            runs = data["results"][scenario][name]
            assert runs, (scenario, name)
            for run in runs:
                assert "error" not in run, (scenario, name, run)
                for key in keys:
                    value = run[key]
                    assert isinstance(value, int | float) and math.isfinite(value) and value >= 0, (scenario, key, run)
    assert data["results"]["idle-200"]["ours-wsgiref"][0]["connections"] == 200
    assert data["results"]["echo-16"]["ours-wsgiref"][0]["messages"] > 0
    page = docs.read_text()
    assert "ours-wsgiref" in page and "Client headroom" in page
    assert "echo-16" in proc.stdout
