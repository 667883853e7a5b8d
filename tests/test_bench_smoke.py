"""Smoke test of the benchmark command: quick mode, our wsgiref server against raw TCP.

It asserts that every scenario produced numbers, never how fast they are. The
load client's venv (picows, uvloop) is created in ``tools/bench/.venvs/client`` on
first use and reused afterwards. The other tests check the harness's pure parts
(pinning checks, the guard's verdict, charts and the page) on made-up results:
no timing anywhere.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import math
import re
import shutil
import signal
import socket
import subprocess
import sys
import xml.dom.minidom
from pathlib import Path
from typing import Any

import pytest

from tools.bench import charts, guard, pinning, report

ROOT = Path(__file__).resolve().parent.parent

EXPECTED = {
    "echo-16": ("msgs_per_s", "p50_us", "p99_us", "server_cpu_us_per_msg", "client_cpu_us_per_msg"),
    "bulk-64k": ("mb_per_s", "p50_us"),
    "idle-200": ("handshakes_per_s", "rss_mib"),
    "broadcast-100": ("p50_ms", "p99_ms", "all_ms"),
}


def can_pin() -> bool:
    return shutil.which("taskset") is not None and len(pinning.usable_cpus()) >= 2


@pytest.mark.timeout(900)
def test_quick_bench_produces_numbers(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    docs = tmp_path / "benchmarks.rst"
    pinned = can_pin()
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
        *([] if pinned else ["--unpinned"]),
    ]
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=840)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    data = json.loads(out.read_text())
    assert [c["name"] for c in data["competitors"]] == ["ours-wsgiref", "raw", "raw-python"]
    assert data["pinning"]["pinned"] is pinned
    for scenario, keys in EXPECTED.items():
        for name in ("ours-wsgiref", "raw"):
            runs = data["results"][scenario][name]
            assert runs, (scenario, name)
            for run in runs:
                assert "error" not in run, (scenario, name, run)
                for key in keys:
                    value = run[key]
                    assert isinstance(value, int | float) and math.isfinite(value) and value >= 0, (scenario, key, run)
    # The Python floor takes part in the echo scenarios only.
    for scenario in ("echo-16", "bulk-64k"):
        runs = data["results"][scenario]["raw-python"]
        assert runs and all("error" not in run and run["messages"] > 0 for run in runs), (scenario, runs)
    assert not data["results"]["idle-200"].get("raw-python")
    assert data["results"]["idle-200"]["ours-wsgiref"][0]["connections"] == 200
    assert data["results"]["echo-16"]["ours-wsgiref"][0]["messages"] > 0
    page = docs.read_text()
    assert "ours-wsgiref" in page and "Client headroom" in page
    assert "echo-16" in proc.stdout
    for scenario in EXPECTED:
        assert f".. image:: _static/bench/{scenario}.svg" in page
        xml.dom.minidom.parse(str(tmp_path / "_static" / "bench" / f"{scenario}.svg"))
    if pinned:
        assert "taskset -c 0" in page


# -- pure parts, on made-up results ------------------------------------------------


def echo_runs(*values: float) -> list[dict[str, Any]]:
    return [{"msgs_per_s": v, "p50_us": 100.0, "p99_us": 200.0} for v in values]


def fake_run() -> dict[str, Any]:
    return {
        "date": "2026-01-01 00:00 UTC",
        "elapsed_s": 60.0,
        "command": "python -m tools.bench --made-up",
        "machine": {"cores": 2, "cpu": "test CPU", "python": "3.11", "kernel": "6.0", "memory_gib": 4},
        "revision": "abc1234",
        "versions": {"project": {"gevent": "1"}},
        "nofile": [1024, 1024],
        "pinning": {"pinned": True, "server_cpu": 0, "client_cpu": 1},
        "settings": {"rounds": 3, "warmup": 1.0, "duration": 3.0, "concurrency": 8, "broadcasts": 20},
        "competitors": [
            {"name": "ours-wsgiref", "label": "ours", "family": "ours", "server": "wsgiref", "pinned": True},
            {"name": "ours-wsgiref-unpinned", "label": "ours", "family": "ours", "server": "wsgiref", "pinned": False},
            {"name": "websockets", "label": "websockets", "family": "websockets", "server": None, "pinned": True},
            {
                "name": "http-wsgiref",
                "label": "the HTTP server alone",
                "family": "http",
                "server": "wsgiref",
                "pinned": True,
                "modes": ["idle"],
            },
        ],
        "scenarios": {
            "echo-16": {"key": "echo-16", "title": "echo, 16 connections, 32 B text", "mode": "echo", "size": 32},
            "idle-1000": {"key": "idle-1000", "title": "1,000 idle <connections>", "mode": "idle", "size": 32},
        },
        "results": {
            "echo-16": {
                "ours-wsgiref": echo_runs(9000, 10000, 11000),
                "ours-wsgiref-unpinned": echo_runs(12000, 4000, 13000),
                "websockets": echo_runs(8000, 8500, 9000),
            },
            "idle-1000": {
                "ours-wsgiref": [{"rss_per_conn_kib": 3.5, "handshakes_per_s": 3000.0}],
                "ours-wsgiref-unpinned": [{"error": "client timed out"}],
                "websockets": [{"rss_per_conn_kib": 12.0, "handshakes_per_s": 2000.0}],
                "http-wsgiref": [{"rss_per_conn_kib": 0.5, "handshakes_per_s": 2500.0}],
            },
        },
    }


def test_pinning_check_explains_what_is_missing() -> None:
    with pytest.raises(SystemExit, match="taskset"):
        pinning.check(0, 1, cpus={0, 1}, taskset="")
    with pytest.raises(SystemExit, match="at least 2 CPUs"):
        pinning.check(0, 1, cpus={0}, taskset="/usr/bin/taskset")
    with pytest.raises(SystemExit, match="must differ"):
        pinning.check(1, 1, cpus={0, 1}, taskset="/usr/bin/taskset")
    with pytest.raises(SystemExit, match="--client-cpu 5"):
        pinning.check(0, 5, cpus={0, 1}, taskset="/usr/bin/taskset")
    pin = pinning.check(0, 1, cpus={0, 1}, taskset="/usr/bin/taskset")
    assert pin.server_prefix() == ["/usr/bin/taskset", "-c", "0"]
    assert pin.client_prefix() == ["/usr/bin/taskset", "-c", "1"]


def test_guard_verdict_is_a_ratio_of_medians() -> None:
    results = {"ours-wsgiref": echo_runs(400, 500, 600), "websockets": echo_runs(900, 1000, 5000)}
    verdict = guard.judge(results, 0.5)
    assert verdict.ok and verdict.ratios == {"ours-wsgiref": 0.5}
    assert "0.50x" in verdict.lines[0]
    verdict = guard.judge(results, 0.6)
    assert not verdict.ok and "FAIL" in verdict.lines[-1]
    assert not guard.judge({"ours-wsgiref": [{"error": "x"}], "websockets": echo_runs(1)}, 0.5).ok
    assert not guard.judge({"ours-wsgiref": echo_runs(1), "websockets": [{"error": "boom"}]}, 0.5).ok
    assert not guard.judge({"websockets": echo_runs(1)}, 0.5).ok


def test_charts_and_page_from_a_run(tmp_path: Path) -> None:
    data = fake_run()
    written = charts.write_all(data, tmp_path / "_static" / "bench")
    assert sorted(written) == ["echo-16", "idle-1000"]
    for path in written.values():
        xml.dom.minidom.parse(str(path))  # well-formed, titles escaped
    echo = written["echo-16"].read_text()
    assert echo.count("<rect x=") == 3 and "msg/s" in echo and "higher is better" in echo
    idle = written["idle-1000"].read_text()
    assert "no result" in idle and "lower is better" in idle and "&lt;connections&gt;" in idle
    assert charts.nice_max(54872) == 60000 and charts.nice_max(0) == 1.0
    page = report.rst(data, {key: f"_static/bench/{path.name}" for key, path in written.items()})
    assert ".. image:: _static/bench/echo-16.svg" in page
    assert "taskset -c 0" in page and "ours-wsgiref-unpinned" in page
    assert "the machine's noise" in page
    # The HTTP server alone takes part in idle scenarios only, and is compared on handshakes alone.
    assert [row[0] for row in report.scenario_table(data, "echo-16")[1]] == [
        "ours-wsgiref",
        "ours-wsgiref-unpinned",
        "websockets",
    ]
    assert "http-wsgiref" in [row[0] for row in report.scenario_table(data, "idle-1000")[1]]
    ratios = {(row[0], row[1], row[2]): row[3:] for row in report.ratio_rows(data)[1]}
    assert ratios[("ours-wsgiref", "idle-1000", "handshakes/s")] == ["1.50x", "—", "1.20x", "—", "—"]
    assert ratios[("ours-wsgiref", "idle-1000", "RSS KiB/conn")] == ["0.29x", "—", "—", "—", "—"]
    assert ratios[("ours-wsgiref", "echo-16", "msg/s")][2] == "—"
    stability = {row[0]: row[2:] for row in report.target_rows(data)[1] if "slowest round" in row[1]}
    # Beside ours, the same ratio of the peers measured in the run (the machine's noise): websockets here, no raw TCP.
    assert stability == {
        "ours-wsgiref": ["0.90x (websockets 0.94x)", "PASS"],
        "ours-wsgiref-unpinned": ["0.33x (websockets 0.94x)", "FAIL"],
    }
    assert "Unpinned" in report.pinning_text({**data, "pinning": {"pinned": False}})


def test_a_measurement_disturbed_by_other_processes_is_repeated(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from tools.bench import run as bench

    def attempts(*values: tuple[float, float]) -> None:
        # (msg/s, cores other processes used meanwhile) of the successive measurements.
        sequence = iter([{"msgs_per_s": v, "other_core": o} for v, o in values])
        monkeypatch.setattr(bench, "measure", lambda competitor, scenario, settings: next(sequence))

    competitor = bench.Competitor("ours-wsgiref", "ours", "ours", None, [], "wsgiref")
    scenario = bench.SCENARIOS["echo-16"]
    settings = bench.Settings(1.0, 3.0, 1, 20, 1.0, 8, ("echo-16",), repeat_above=0.15, repeats=2)

    attempts((1000.0, 0.6), (2000.0, 0.3), (3000.0, 0.05))
    result = bench.measure_undisturbed(competitor, scenario, settings)
    assert result["msgs_per_s"] == 3000.0 and "still_disturbed" not in result
    assert [a["msgs_per_s"] for a in result["disturbed"]] == [1000.0, 2000.0]
    assert "other processes used 0.60 cores meanwhile" in capsys.readouterr().out

    # Disturbed every time: the least disturbed of the 1 + 2 attempts is kept, and says so.
    attempts((1000.0, 0.6), (2000.0, 0.3), (1500.0, 0.4))
    result = bench.measure_undisturbed(competitor, scenario, settings)
    assert result["msgs_per_s"] == 2000.0 and result["still_disturbed"] is True
    assert [a["msgs_per_s"] for a in result["disturbed"]] == [1000.0, 1500.0]

    # A quiet measurement, or repeats off: measured once, as is.
    for given in (settings, dataclasses.replace(settings, repeat_above=None)):
        attempts((1000.0, 0.1 if given.repeat_above else 0.9))
        assert "disturbed" not in bench.measure_undisturbed(competitor, scenario, given)
    assert bench.repeat_above(None, quick=False) == bench.REPEAT_ABOVE
    assert bench.repeat_above(None, quick=True) is None and bench.repeat_above(0.0, quick=False) is None

    # The page says what was set aside.
    data = fake_run()
    data["settings"] = {**data["settings"], "repeat_above": 0.15, "repeats": 2}
    first = data["results"]["echo-16"]["websockets"][0]
    first["disturbed"] = [{"msgs_per_s": 10.0, "other_core": 0.5}]
    note = report.repeats_note(data)
    assert "more than 0.15 cores" in note and "1 of 12 measurements were repeated (1 disturbed attempt(s)" in note
    assert "0 remained disturbed" in note
    assert "median reading per scenario" not in note  # the made-up run has no such readings
    assert note in report.rst(data)
    data["results"]["echo-16"]["ours-wsgiref"][0]["other_core"] = 0.02
    assert "the median reading per scenario was 0.02-0.02 cores" in report.repeats_note(data)
    assert "were not repeated" in report.repeats_note(fake_run())


def test_an_absolute_cpu_limit_is_shown_beside_both_floors_of_the_run() -> None:
    data = fake_run()
    data["competitors"] += [
        {"name": "raw", "label": "raw TCP", "family": "raw", "server": None, "pinned": True},
        {"name": "raw-python", "label": "raw TCP in Python", "family": "raw", "server": None, "pinned": True},
    ]
    echo = data["results"]["echo-16"]
    for name, cpu in (("ours-wsgiref", 19.0), ("raw", 12.0), ("raw-python", 14.5)):
        echo[name] = [{**run, "server_cpu_us_per_msg": cpu} for run in echo_runs(10000, 10000)]
    rows = {(row[0], row[1]): row[2:] for row in report.target_rows(data)[1]}
    assert rows[("ours-wsgiref", "echo-16 server_cpu_us_per_msg <= 15 µs")] == [
        "19.00 µs (raw TCP 12.00; raw TCP in Python 14.50)",
        "FAIL",
    ]
    ratios = {(row[0], row[1], row[2]): row[3:] for row in report.ratio_rows(data)[1]}
    assert ratios[("ours-wsgiref", "echo-16", "msg/s")][-2:] == ["1.00x", "1.00x"]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("server", ["cherrypy", "gevent"])
def test_http_server_alone_answers_the_upgrade_itself(server: str) -> None:
    """tools/bench/servers/http_alone.py: a 101 with the right accept key, from the HTTP server alone."""
    pytest.importorskip("cherrypy" if server == "cherrypy" else "gevent")
    script = ROOT / "tools" / "bench" / "servers" / "http_alone.py"
    proc = subprocess.Popen(
        [sys.executable, str(script), "--server", server, "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # the ready line; the server prints nothing before it
        match = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        assert match, line
        key = base64.b64encode(b"0123456789abcdef")
        request = (
            b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: " + key + b"\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        with socket.create_connection(("127.0.0.1", int(match.group(1))), timeout=10) as sock:
            sock.sendall(request)
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = sock.recv(4096)
                assert chunk, head
                head += chunk
        expected = base64.b64encode(hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
        assert head.startswith(b"HTTP/1.1 101 ")
        assert b"Sec-WebSocket-Accept: " + expected + b"\r\n" in head
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()


@pytest.mark.timeout(120)
def test_raw_tcp_in_python_echoes_every_byte_in_order() -> None:
    """tools/bench/servers/raw_python.py: E echoes (1 MiB records too, past the kernel's buffers), B is closed."""
    script = ROOT / "tools" / "bench" / "servers" / "raw_python.py"
    proc = subprocess.Popen([sys.executable, str(script), "--port", "0"], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        match = re.search(r"http://127\.0\.0\.1:(\d+)/", proc.stdout.readline())
        assert match
        address = ("127.0.0.1", int(match.group(1)))
        record = bytes(range(256)) * 4096  # 1 MiB
        with socket.create_connection(address, timeout=10) as sock:
            sock.sendall(b"E" + b"x")
            assert sock.recv(1) == b"x"
            received = bytearray()
            for _ in range(3):
                # The whole record goes out before any of its echo is read back:
                # the server keeps what the kernel does not take, in order.
                sock.sendall(record)
                while len(received) < len(record):
                    chunk = sock.recv(1 << 20)
                    assert chunk
                    received += chunk
                assert received == record
                received.clear()
        with socket.create_connection(address, timeout=10) as sock:
            sock.sendall(b"B")
            assert sock.recv(1) == b""
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            assert proc.wait(timeout=20) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
            if proc.stdout is not None:
                proc.stdout.close()
