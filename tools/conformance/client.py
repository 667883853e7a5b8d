"""Run the Autobahn|Testsuite fuzzingserver against :class:`ws4py_integrations.client.WebSocketClient`.

``python -m tools.conformance.client`` starts ``wstest -m fuzzingserver`` on a
free port and runs every case with our client as the echo agent: for each case
one connection to ``/runCase?case=N``, every message sent back as it came,
until the server closes. The client connections run on one
:class:`~ws4py_integrations.ThreadedManager`, as an application's would.

``--quick`` is the subset ``make test`` runs; the default is every case of
1 to 13. ``--docs`` writes the client section of ``docs/conformance.rst``
(after the server part, which ``tools.conformance.docs`` keeps). Exit status:
0 every case OK or INFORMATIONAL, 1 a case is not, 2 a run could not be done,
3 Python 2.7 is missing.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from tools.conformance.run import (
    HOST,
    PASSING,
    REPORTS,
    ROOT,
    WSTEST,
    Py27Missing,
    RunError,
    _free_port,
    _stop,
    case_key,
    ensure_wstest,
    log,
)

AGENT = "ws4py_integrations"
DOCS_PAGE = ROOT / "docs" / "conformance.rst"
#: Where the client section starts in docs/conformance.rst; tools.conformance.docs keeps it.
MARKER = ".. client-conformance (written by python -m tools.conformance.client --docs; keep this line)"

#: The subset ``make test`` runs: framing, pings, reserved bits, opcodes,
#: fragmentation, UTF-8 (fail-fast included), closing, a few large messages,
#: and one case of each permessage-deflate kind.
QUICK = (
    "1.*",
    "2.*",
    "3.*",
    "4.*",
    "5.*",
    "6.1.*",
    "6.2.*",
    "6.3.*",
    "6.4.*",
    "6.5.*",
    "6.6.*",
    "6.8.*",
    "6.12.*",
    "7.1.*",
    "7.3.*",
    "7.5.*",
    "7.7.*",
    "7.9.*",
    "9.1.1",
    "9.2.1",
    "10.*",
    "12.1.1",
    "12.5.6",
    "13.1.1",
    "13.3.6",
    "13.7.8",
)


def run_agent(url: str, case_timeout: float) -> int:
    """Run every case the fuzzingserver at ``url`` has; returns how many ran."""
    from ws4py_integrations import ThreadedManager
    from ws4py_integrations.client import InvalidHandshake, WebSocketClient
    from ws4py_integrations.events import Message

    class Echo(WebSocketClient):
        def received_message(self, message: Message) -> None:
            self.send(message.data)

    manager = ThreadedManager(name="autobahn-client")
    options: dict[str, Any] = {
        "max_message_size": 64 * 2**20,
        "max_send_buffer": None,
        "ping_interval": None,
        "close_timeout": 3.0,
        "read_timeout": None,
    }
    try:
        counter = WebSocketClient(f"{url}/getCaseCount", manager=manager, **options)
        counter.connect()
        message = counter.receive(30)
        counter.run_forever(10)
        if message is None:
            raise RunError("the fuzzingserver sent no case count")
        count = int(message.data)
        log(f"client: {count} cases")
        for case in range(1, count + 1):
            client = Echo(f"{url}/runCase?case={case}&agent={AGENT}", manager=manager, **options)
            try:
                client.connect()
            except InvalidHandshake as exc:
                # Some cases (9.x at full size) take long to answer; recorded by the server as failed.
                log(f"client: case {case}: handshake failed: {exc}")
                continue
            if not client.run_forever(case_timeout):
                log(f"client: case {case}: still open after {case_timeout}s; dropping it")
                client.terminate()
                client.run_forever(5)
        update = WebSocketClient(f"{url}/updateReports?agent={AGENT}", manager=manager, **options)
        update.connect()
        update.run_forever(120)
        return count
    finally:
        manager.stop(5)


def run(cases: list[str], outdir: Path, case_timeout: float) -> dict[str, Any]:
    """Start the fuzzingserver, run the agent, return the summary."""
    outdir.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    spec = {"url": f"ws://{HOST}:{port}", "outdir": str(outdir), "cases": cases, "exclude-cases": []}
    spec_path = outdir / "fuzzingserver.json"
    spec_path.write_text(json.dumps(spec, indent=2), encoding="utf-8")
    with open(outdir / "wstest.log", "w", encoding="utf-8") as wslog:
        proc = subprocess.Popen(
            # --webport 0: no report web server (its default port, 8080, is often taken).
            [str(WSTEST), "-m", "fuzzingserver", "-s", str(spec_path), "--webport", "0"],
            cwd=outdir,
            stdout=wslog,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            _wait_listening(port, proc, 60.0)
            started = time.monotonic()
            count = run_agent(f"ws://{HOST}:{port}", case_timeout)
            elapsed = time.monotonic() - started
        finally:
            _stop(proc, 10.0)
    index = outdir / "index.json"
    if not index.exists():
        raise RunError(f"wstest wrote no {index}; see {outdir / 'wstest.log'}")
    results: dict[str, dict[str, Any]] = json.loads(index.read_text(encoding="utf-8"))[AGENT]
    import websockets

    summary = {
        "date": time.strftime("%Y-%m-%d", time.gmtime()),
        "python": platform.python_version(),
        "websockets": websockets.__version__,
        "selection": "all cases 1-13" if cases == ["*"] else " ".join(cases),
        "count": count,
        "seconds": round(elapsed),
        "behavior": dict(Counter(r["behavior"] for r in results.values())),
        "close": dict(Counter(r["behaviorClose"] for r in results.values())),
        "informational": sorted((c for c, r in results.items() if r["behavior"] == "INFORMATIONAL"), key=case_key),
        "failing": {
            case: f"{r['behavior']}/{r['behaviorClose']}"
            for case, r in sorted(results.items(), key=lambda item: case_key(item[0]))
            if r["behavior"] not in PASSING or r["behaviorClose"] not in PASSING
        },
    }
    (outdir / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    return summary


def _wait_listening(port: int, proc: subprocess.Popen[str], timeout: float) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RunError(f"wstest exited with {proc.returncode} before listening")
        try:
            socket.create_connection((HOST, port), timeout=1.0).close()
        except OSError:
            time.sleep(0.1)
            continue
        # Listening, and still running a moment later (it binds its ports one by one).
        time.sleep(0.3)
        if proc.poll() is None:
            return
    raise RunError(f"the fuzzingserver did not listen within {timeout:.0f}s")


def render(summary: dict[str, Any]) -> str:
    """The client section of docs/conformance.rst."""
    behavior = ", ".join(f"{k} {v}" for k, v in sorted(summary["behavior"].items()))
    close = ", ".join(f"{k} {v}" for k, v in sorted(summary["close"].items()))
    lines = [
        MARKER,
        "",
        "The client",
        "----------",
        "",
        "The same testsuite in fuzzingserver mode, against",
        ":class:`~ws4py_integrations.client.WebSocketClient` as the echo agent (one",
        "connection per case, all on one :class:`~ws4py_integrations.ThreadedManager`):",
        "``make autobahn-client`` (``python -m tools.conformance.client --docs``);",
        "``make test`` runs a subset (``--quick``).",
        "",
        f"Run on {summary['date']} with websockets {summary['websockets']}, Python {summary['python']};",
        f"selection: {summary['selection']}.",
        "",
        f"{summary['count']} cases in {summary['seconds']} s. Behavior: {behavior}. Closing behavior: {close}.",
        "",
    ]
    if summary["informational"]:
        lines += [f"INFORMATIONAL (behavior left open by the RFC): {', '.join(summary['informational'])}.", ""]
    if summary["failing"]:
        lines += ["Not OK: " + ", ".join(f"{c} ({o})" for c, o in summary["failing"].items()) + ".", ""]
    else:
        lines += ["Every case is OK or INFORMATIONAL; none NON-STRICT.", ""]
    return "\n".join(lines)


def write_docs(summary: dict[str, Any], page: Path = DOCS_PAGE) -> None:
    text = page.read_text(encoding="utf-8")
    server_part = text.split(MARKER)[0].rstrip() + "\n"
    page.write_text(server_part + "\n" + render(summary).rstrip() + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.conformance.client", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="the subset make test runs")
    parser.add_argument("--cases", nargs="+", metavar="ID", help="case ids or patterns, e.g. 6.4.* 12.1.1")
    parser.add_argument(
        "--reports", type=Path, help="report folder (default: tools/conformance/reports/client[-quick])"
    )
    parser.add_argument("--case-timeout", type=float, default=120.0, help="seconds one case may take (default: 120)")
    parser.add_argument("--docs", action="store_true", help="then write the client section of docs/conformance.rst")
    parser.add_argument("--no-install", action="store_true", help="do not run tools/conformance/install.sh first")
    args = parser.parse_args(argv)
    cases = list(args.cases or (QUICK if args.quick else ["*"]))
    reports = args.reports or (REPORTS / ("client-quick" if args.quick else "client"))
    try:
        if not args.no_install:
            ensure_wstest()
        if not WSTEST.exists():
            raise RunError(f"no wstest at {WSTEST}; run tools/conformance/install.sh")
        summary = run(cases, reports, args.case_timeout)
    except Py27Missing as exc:
        print(f"conformance: {exc}", file=sys.stderr)
        return 3
    except RunError as exc:
        print(f"conformance: {exc}", file=sys.stderr)
        return 2
    log(f"client: {summary['count']} cases in {summary['seconds']} s; behavior {summary['behavior']}")
    log(f"client: closing behavior {summary['close']}")
    for case, outcome in summary["failing"].items():
        log(f"client: {case}: {outcome}")
    if args.docs:
        write_docs(summary)
        log(f"client: wrote {DOCS_PAGE.relative_to(ROOT)}")
    return 1 if summary["failing"] else 0


if __name__ == "__main__":
    sys.exit(main())
