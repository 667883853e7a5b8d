"""Smoke test of the Socket.IO benchmark command (``python -m tools.bench.socketio --quick``).

Our wsgiref server against python-socketio on gevent, 4 event clients and 50
idle clients, one short round: it asserts that the load client spoke the
protocol to both (every ACK matched what was sent, every client connected)
and that every figure came out, never how fast anything is. The venvs
(``tools/bench/.venvs/client`` and ``python-socketio``) are created on first
use. The report's verdicts are checked on made-up results.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tools.bench import pinning
from tools.bench import socketio as sio_bench

ROOT = Path(__file__).resolve().parent.parent


def can_pin() -> bool:
    return shutil.which("taskset") is not None and len(pinning.usable_cpus()) >= 2


@pytest.mark.timeout(900)
def test_quick_socketio_bench_produces_numbers(tmp_path: Path) -> None:
    out = tmp_path / "socketio.json"
    section = tmp_path / "benchmarks_socketio.inc"
    command = [
        sys.executable, "-m", "tools.bench.socketio", "--quick", "--servers", "wsgiref",
        "--competitors", "psio-gevent", "--json", str(out), "--docs", str(section),
        *([] if can_pin() else ["--unpinned"]),
    ]  # fmt: skip
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=840)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    data = json.loads(out.read_text())
    assert data["names"] == ["ours-wsgiref", "psio-gevent"]
    for name in data["names"]:
        (echo,) = data["results"]["events-4"][name]
        assert "error" not in echo, (name, echo)
        assert echo["events"] > 0 and echo["mismatches"] == 0
        (idle,) = data["results"]["idle-50"][name]
        assert "error" not in idle, (name, idle)
        assert idle["connections"] == 50 and idle["failures"] == 0
        for value in (echo["events_per_s"], idle["rss_per_client_kib"], idle["connect_all_s"]):
            assert isinstance(value, int | float) and math.isfinite(value)
    assert "÷ psio-gevent" in proc.stdout
    text = section.read_text()
    assert text.startswith("Socket.IO\n---------") and "ours-wsgiref" in text and "psio-gevent" in text


def made_up() -> dict[str, Any]:
    def echo(v: float) -> dict[str, Any]:
        return {"events_per_s": v, "other_core": 0.5}

    def idle(kib: float, seconds: float) -> dict[str, Any]:
        return {"rss_per_client_kib": kib, "connect_all_s": seconds, "connections": 1000}

    return {
        "date": "2026-01-01 00:00 UTC",
        "elapsed_s": 60.0,
        "command": "python -m tools.bench.socketio",
        "revision": "abc1234",
        "load": "load average 0.1 0.1 0.1",
        "versions": {"python-socketio": "5"},
        "pinning": {"pinned": True, "server_cpu": 0, "client_cpu": 1},
        "competitors": [],
        "names": ["ours-wsgiref", "ours-gevent", "psio-gevent", "psio-threading"],
        "rounds": 3,
        "concurrency": 32,
        "scenarios": {
            "events-16": {"title": "events, 16 clients", "mode": "echo", "clients": 16},
            "idle-1000": {"title": "1,000 idle clients", "mode": "idle", "clients": 1000},
        },
        "results": {
            "events-16": {
                "ours-wsgiref": [echo(5000), echo(6000), echo(7000)],
                "ours-gevent": [echo(3000)],
                "psio-gevent": [echo(1000), echo(2000), echo(9000)],
                "psio-threading": [echo(2500), {"error": "boom"}],
            },
            "idle-1000": {
                "ours-wsgiref": [idle(5, 1.0)],
                "ours-gevent": [idle(20, 1.0)],
                "psio-gevent": [idle(30, 2.0)],
                "psio-threading": [{**idle(50, 4.0), "warning": "3 of 1000 clients failed to connect"}],
            },
        },
    }


def test_targets_compare_ratios_of_medians_with_the_better_competitor() -> None:
    _, rows = sio_bench.ratio_rows(made_up())
    verdicts = {(r[0], r[1], r[2]): r[3:] for r in rows}
    # events: medians 6000 (ours) vs 2000 (psio-gevent) and 2500 (psio-threading); target vs the best, 2500.
    assert verdicts["events-16", "events/s", "ours-wsgiref"] == ["3.00x", "2.40x", ">= 2x best", "PASS (2.40x)"]
    assert verdicts["events-16", "events/s", "ours-gevent"][-1] == "FAIL (1.20x)"
    # memory: lower is better, against the leaner of the two (30 KiB).
    assert verdicts["idle-1000", "RSS/client", "ours-wsgiref"][-1] == "PASS (0.17x)"
    assert verdicts["idle-1000", "RSS/client", "ours-gevent"][-1] == "FAIL (0.67x)"
    assert verdicts["idle-1000", "connect all", "ours-gevent"][:2] == ["0.50x", "0.25x"]


def test_report_text_and_rst_name_every_server() -> None:
    data = made_up()
    text = sio_bench.text(data)
    assert "psio-threading: boom" in text and "machine" in text and "3 of 1000 clients failed" in text
    rst = sio_bench.rst(data)
    assert rst.startswith("Socket.IO\n---------\n")
    assert ".. list-table::" in rst and "taskset -c 0" in rst and "2026-01-01 00:00 UTC" in rst
    assert "- psio-threading: 3 of 1000 clients failed to connect" in rst
    for name in data["names"]:
        assert name in rst
