"""Side by side: our gunicorn ThreadWorker and werkzeug handover against Flask-Sock.

``python -m tools.bench.gthread`` (``make bench-gthread``) runs, in one go, the
same Flask echo application (``/ws``) four ways:

- ``ours-gthread``: ``gunicorn -k ws4py_integrations.gunicorn.ThreadWorker --threads 4``;
- ``flasksock-gthread``: Flask-Sock on stock ``gthread``, ``--threads`` = connections + 8
  for echo (it needs one thread per WebSocket), and ``--threads 4`` and ``--threads 1008``
  for the idle scenario;
- ``ours-werkzeug`` and ``flasksock-werkzeug``: ``app.run(threaded=True)``.

Scenarios (the load client of tools/bench/client.py, picows on uvloop): echo of
32 B text at 16 and 256 connections (messages/s), and 1,000 idle connections
(how many opened, the worker's RSS, and its peak thread count). The server is
pinned to CPU 0, the client to CPU 1 (``--unpinned`` to skip). Every row is
the median of ``--rounds`` runs; the last column is the ratio of medians to
``ours`` on the same server. Results go to stdout and
``tools/bench/results/gthread.json``. One worker process everywhere.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tools.bench import venvs
from tools.bench.pinning import Pinning, check

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "tools" / "bench"
RESULTS = BENCH / "results"
HOST = "127.0.0.1"


@dataclass(frozen=True)
class Setup:
    name: str
    venv: str | None  # None: the project's .venv
    server: str  # "gthread" or "werkzeug"
    module: str
    worker: str = "gthread"
    threads: int = 4

    def command(self, pin: Pinning | None) -> list[str]:
        python = str(venvs.PROJECT_PYTHON if self.venv is None else venvs.python_of(self.venv))
        prefix = pin.server_prefix() if pin is not None else []
        if self.server == "werkzeug":
            return [*prefix, python, "-m", self.module]
        return [
            *prefix, python, "-m", "gunicorn", "-k", self.worker, "--threads", str(self.threads), "-w", "1",
            "-b", f"{HOST}:0", "--worker-connections", "4000", "--timeout", "120", "--graceful-timeout", "5",
            "--log-level", "warning", "--error-logfile", "-", f"{self.module}:app",
        ]  # fmt: skip


class Server:
    """One server process; ``pid`` is the process that serves (gunicorn's worker)."""

    READY = re.compile(r"(?:Listening at: http://|Running on http://)127\.0\.0\.1:(?P<port>\d+)")

    def __init__(self, setup: Setup, pin: Pinning | None, log: Path) -> None:
        self.setup = setup
        command = setup.command(pin)
        if setup.server == "gthread":
            command = [c if c != "warning" else "info" for c in command]
        self.process = subprocess.Popen(
            command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=_env()
        )
        self.log = log
        self.port = 0
        self.pid = self.process.pid
        self._lines: list[str] = []
        assert self.process.stderr is not None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = self.process.stderr.readline()
            if not line:
                raise RuntimeError(f"{setup.name} exited at start: {''.join(self._lines)[-2000:]}")
            self._lines.append(line)
            match = self.READY.search(line)
            if match:
                self.port = int(match["port"])
                break
        else:
            raise RuntimeError(f"{setup.name} printed no ready line")
        threading.Thread(target=self._pump, daemon=True).start()
        if setup.server == "gthread":
            self.pid = self._worker_pid()
        self._wait_serving()

    def _pump(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self._lines.append(line)

    def _worker_pid(self) -> int:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children").read_text().split()
            except OSError:
                children = []
            if children:
                return int(children[0])
            time.sleep(0.05)
        raise RuntimeError(f"{self.setup.name}: gunicorn started no worker")

    def _wait_serving(self) -> None:
        import urllib.request

        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://{HOST}:{self.port}/", timeout=2) as response:
                    if response.read() == b"ok":
                        return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"{self.setup.name} does not answer")

    def threads(self) -> int:
        try:
            status = Path(f"/proc/{self.pid}/status").read_text()
        except OSError:
            return 0
        match = re.search(r"^Threads:\s+(\d+)", status, re.M)
        return int(match[1]) if match else 0

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(15)
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self.log.write_text("".join(self._lines))


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(ROOT)}


def concurrency(setup: Setup, mode: str, conns: int) -> int:
    """Handshakes in flight: 32, except where a thread per WebSocket starves the
    server (Flask-Sock on 4 threads): then all at once, so that the handshakes
    it can never answer time out together rather than 32 by 32."""
    if mode == "idle" and setup.server == "gthread" and setup.worker == "gthread" and setup.threads < conns:
        return conns
    return 32


def run_client(pin: Pinning | None, server: Server, mode: str, conns: int, args: argparse.Namespace) -> dict[str, Any]:
    prefix = pin.client_prefix() if pin is not None else []
    command = [
        *prefix, str(venvs.python_of("client")), str(BENCH / "client.py"), mode,
        "--host", HOST, "--port", str(server.port), "--server-pid", str(server.pid), "--conns", str(conns),
        "--size", "32", "--duration", str(args.duration), "--warmup", str(args.warmup), "--settle", "1",
        "--hold", "1" if mode == "idle" else "0", "--concurrency", str(concurrency(server.setup, mode, conns)),
    ]  # fmt: skip
    peak = [server.threads()]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.1):
            peak.append(server.threads())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        proc = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return {"error": "client timed out"}
    finally:
        done.set()
        sampler.join()
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        return {"error": (proc.stderr or "client failed").strip().splitlines()[-1]}
    result: dict[str, Any] = json.loads(lines[-1])
    result["peak_threads"] = max(peak)
    return result


def scenarios(quick: bool) -> list[tuple[str, str, int]]:
    rows = [("echo-16", "echo", 16), ("echo-256", "echo", 256), ("idle-1000", "idle", 1000)]
    return rows[:1] if quick else rows


def setups_for(scenario: str, conns: int) -> list[Setup]:
    ours = "ws4py_integrations.gunicorn.ThreadWorker"
    rows = [
        Setup("ours-gthread", None, "gthread", "tools.bench.servers.flask_ours", ours, 4),
        Setup("ours-werkzeug", None, "werkzeug", "tools.bench.servers.flask_ours"),
        Setup("flasksock-werkzeug", "flask-sock", "werkzeug", "tools.bench.servers.flask_sock_app"),
    ]
    module = "tools.bench.servers.flask_sock_app"
    if scenario.startswith("idle"):
        rows.insert(1, Setup("flasksock-gthread-t4", "flask-sock", "gthread", module, "gthread", 4))
        rows.insert(2, Setup(f"flasksock-gthread-t{conns + 8}", "flask-sock", "gthread", module, "gthread", conns + 8))
    else:
        rows.insert(1, Setup(f"flasksock-gthread-t{conns + 8}", "flask-sock", "gthread", module, "gthread", conns + 8))
    return rows


def summarize(results: list[dict[str, Any]], mode: str) -> dict[str, Any]:
    # An idle run where some connections failed still reports how many opened.
    good = [r for r in results if "error" not in r or "connections" in r]
    if not good:
        return {"error": results[-1].get("error", "no result") if results else "no result"}
    if mode == "echo":
        return {
            "msgs_per_s": statistics.median(r["msgs_per_s"] for r in good),
            "peak_threads": max(r["peak_threads"] for r in good),
            "rounds": len(good),
        }
    return {
        "opened": statistics.median(r["connections"] for r in good),
        "rss_mib": statistics.median(r["rss_mib"] for r in good),
        "peak_threads": max(r["peak_threads"] for r in good),
        "errors": sorted({r["error"] for r in good if r.get("error")}),
        "rounds": len(good),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--quick", action="store_true", help="echo-16 only, one round")
    parser.add_argument("--scenarios", nargs="*", help="a subset of echo-16, echo-256, idle-1000")
    parser.add_argument("--unpinned", action="store_true")
    parser.add_argument("--server-cpu", type=int, default=0)
    parser.add_argument("--client-cpu", type=int, default=1)
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds = 1
    pin = None if args.unpinned else check(args.server_cpu, args.client_cpu)
    venvs.ensure("client")
    venvs.ensure("flask-sock")
    report: dict[str, Any] = {"pinning": pin.as_json() if pin else {"pinned": False}, "scenarios": {}}
    for label, mode, conns in scenarios(args.quick):
        if args.scenarios and label not in args.scenarios:
            continue
        table: dict[str, Any] = {}
        for setup in setups_for(label, conns):
            runs = []
            for _ in range(args.rounds):
                try:
                    server = Server(setup, pin, RESULTS / "logs" / f"gthread-{setup.name}.log")
                except RuntimeError as exc:
                    runs.append({"error": str(exc).splitlines()[0]})
                    continue
                try:
                    runs.append(run_client(pin, server, mode, conns, args))
                finally:
                    server.stop()
            table[setup.name] = summarize(runs, mode)
            print(f"{label:10} {setup.name:26} {json.dumps(table[setup.name])}", flush=True)
        report["scenarios"][label] = table
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "gthread.json").write_text(json.dumps(report, indent=2) + "\n")
    print_ratios(report)


def print_ratios(report: dict[str, Any]) -> None:
    print("\nratios (ours / Flask-Sock on the same server, medians):")
    for label, table in report["scenarios"].items():
        key = "msgs_per_s" if label.startswith("echo") else "rss_mib"
        for server in ("gthread", "werkzeug"):
            ours = table.get(f"ours-{server}", {}).get(key)
            theirs = [v.get(key) for k, v in table.items() if k.startswith(f"flasksock-{server}") and v.get(key)]
            if ours and theirs:
                print(f"  {label:10} {server:9} {key}: {ours / theirs[-1]:.2f}x")


if __name__ == "__main__":
    main(sys.argv[1:])
