"""Run the Autobahn|Testsuite fuzzingclient against ``examples.echo`` on each server.

``python -m tools.conformance.run`` runs cases 1 to 13 (permessage-deflate included)
on every server that has an example module, then prints per server the counts
of each behavior and every case that is not OK or INFORMATIONAL.

Each case group runs in its own wstest process: wstest writes its reports only
when a run ends, so a group that hangs must not take the finished ones with
it. A watchdog kills wstest when no case has started for ``--case-timeout``
seconds; the group is then rerun one case at a time and the case that hangs
alone is reported as FAILED.

A case passes when its behavior and its close behavior are both OK or
INFORMATIONAL. Exit status: 0 no regression (every failing case is tracked,
with that exact outcome, in ``tools/conformance/known_failures.json``; ``--strict``
ignores that list), 1 a regression, 2 a run could not be done, 3 Python 2.7 is
missing.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import importlib.metadata
import json
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parents[2]
HERE = ROOT / "tools" / "conformance"
INSTALL = HERE / "install.sh"
# install.sh reads the same variable: where the Python 2.7 venv with wstest lives.
WSTEST = Path(os.environ.get("WSTEST_VENV") or HERE / ".venv-wstest") / "bin" / "wstest"
REPORTS = HERE / "reports"
KNOWN = HERE / "known_failures.json"
HOST = "127.0.0.1"
#: As ``examples._servers.SERVERS`` (not imported: this runs from any directory).
SERVERS = ("wsgiref", "cherrypy", "gevent")

#: Case groups 1 to 13 that have cases: the testsuite defines none in 8 and 11.
ALL_GROUPS = ("1", "2", "3", "4", "5", "6", "7", "9", "10", "12", "13")
#: The outcomes wstest gives a case (``behavior``), in report order.
BEHAVIORS = ("OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED", "FAILED")
#: The outcomes of the closing handshake (``behaviorClose``).
CLOSE_BEHAVIORS = ("OK", "INFORMATIONAL", "FAILED BY CLIENT", "WRONG CODE", "UNCLEAN", "FAILED")
PASSING = frozenset({"OK", "INFORMATIONAL"})

#: permessage-deflate sample for the quick run: each payload kind of 12.x
#: (12.1 to 12.5) and each client offer of 13.x (13.1 to 13.7: combinations of
#: no_context_takeover and max_window_bits), at sizes up to 32 KiB, plain and
#: auto-fragmented; the largest payloads (seconds each) are left to the full run.
DEFLATE_SAMPLE = (
    "12.1.1",
    "12.1.11",
    "12.2.5",
    "12.3.7",
    "12.4.8",
    "12.5.6",
    "13.1.1",
    "13.1.12",
    "13.2.4",
    "13.3.6",
    "13.4.11",
    "13.5.5",
    "13.6.13",
    "13.7.8",
)
GROUPS_1_TO_7 = tuple(f"{g}.*" for g in range(1, 8))
#: The quick plan (what CI runs): which cases run where. Each entry names servers in
#: order of preference, so the plan still covers every case while a server's
#: example module does not exist yet.
QUICK_PLAN: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...] = (
    (("wsgiref", "gevent", "cherrypy"), (*GROUPS_1_TO_7, "10.*")),
    (("gevent", "cherrypy", "wsgiref"), (*GROUPS_1_TO_7, *DEFLATE_SAMPLE)),
    (("cherrypy", "gevent", "wsgiref"), (*GROUPS_1_TO_7, "9.1.1", "9.2.1", "12.1.1", "13.7.8")),
)

_RUNNING = re.compile(r"^Running test case ID (\S+) for agent")
_CASES = re.compile(r"^Cases = (\[.*\])\s*$")


class Py27Missing(RuntimeError):
    """wstest cannot be installed: no Python 2.7 interpreter."""


class RunError(RuntimeError):
    """A server or wstest could not be run."""


def case_key(case_id: str) -> tuple[int, ...]:
    return tuple(int(part) for part in case_id.split("."))


def log(message: str) -> None:
    print(f"conformance: {message}", flush=True)


def available_servers() -> list[str]:
    """Servers whose example module exists, in the examples' order."""
    return [name for name in SERVERS if (ROOT / "examples" / "_servers" / f"{name}.py").is_file()]


def ensure_wstest() -> Path:
    """Install wstest if needed (quick when it is); raise :class:`Py27Missing` without 2.7."""
    env = {**os.environ, "PYTHON3": os.environ.get("PYTHON3", sys.executable)}
    result = subprocess.run(["bash", str(INSTALL)], cwd=ROOT, env=env, timeout=1800)
    if result.returncode == 3:
        raise Py27Missing("Python 2.7 is missing: Autobahn|Testsuite (wstest) cannot run (see the message above)")
    if result.returncode != 0:
        raise RunError(f"{INSTALL.relative_to(ROOT)} failed with exit status {result.returncode}")
    return WSTEST


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _pump(stream: IO[str], lines: queue.Queue[str | None], copy: IO[str]) -> None:
    """Copy a child's output to a log file and a queue, so its pipe never fills."""
    for line in stream:
        copy.write(line)
        copy.flush()
        lines.put(line)
    lines.put(None)


def _stop(proc: subprocess.Popen[str], grace: float) -> bool:
    """SIGTERM, then SIGKILL after ``grace`` seconds; ``True`` if it exited on SIGTERM."""
    if proc.poll() is not None:
        return True
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(grace)
        return True
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)
        return False


class EchoServer:
    """``python -m examples.echo`` on one server, as a child process on a free port."""

    def __init__(self, name: str, logdir: Path, ready_timeout: float = 60.0) -> None:
        self.name = name
        self.logdir = logdir
        self.ready_timeout = ready_timeout
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""
        self.starts = 0
        self.notes: list[str] = []
        self._log: IO[str] | None = None

    def start(self) -> None:
        port = _free_port()
        self.starts += 1
        self._log = open(self.logdir / "server.log", "a", encoding="utf-8")  # noqa: SIM115 - closed in stop()
        self._log.write(f"--- start {self.starts} on port {port}\n")
        self._log.flush()
        cmd = [sys.executable, "-m", "examples.echo", "--server", self.name, "--host", HOST, "--port", str(port)]
        self.proc = subprocess.Popen(
            cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
        )
        assert self.proc.stdout is not None
        lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=_pump, args=(self.proc.stdout, lines, self._log), daemon=True).start()
        deadline = time.monotonic() + self.ready_timeout
        while True:
            try:
                line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                self.stop()
                raise RunError(f"{self.name}: no ready line within {self.ready_timeout:.0f} s") from None
            if line is None:
                code = self.proc.wait(10)
                raise RunError(f"{self.name}: the echo example exited with {code}; see {self.logdir / 'server.log'}")
            match = re.search(r"https?://([^/\s]+)/", line)
            if match:
                self.url = f"ws://{match.group(1)}/ws"
                return

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def ensure_alive(self) -> None:
        """Restart the server if it died (and say so: a dead server is a finding)."""
        if self.alive():
            return
        code = self.proc.returncode if self.proc is not None else None
        self.notes.append(f"the echo server exited unexpectedly (status {code}) and was restarted")
        log(f"{self.name}: {self.notes[-1]}")
        self.stop()
        self.start()

    def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None and not _stop(self.proc, grace=15.0):
            self.notes.append("the echo server did not stop within 15 s of SIGTERM and was killed")
        if self._log is not None:
            self._log.close()
            self._log = None


@dataclass
class WstestRun:
    status: str  # "done", "hung" or "error"
    cases: list[str] = field(default_factory=list)
    started: list[str] = field(default_factory=list)
    index: dict[str, dict[str, Any]] = field(default_factory=dict)


def run_wstest(
    patterns: Sequence[str], url: str, agent: str, outdir: Path, case_timeout: float, wstest: Path = WSTEST
) -> WstestRun:
    """One fuzzingclient run with a watchdog: no case started for ``case_timeout`` s means hung."""
    outdir.mkdir(parents=True, exist_ok=True)
    spec = {
        "outdir": str(outdir),
        "servers": [{"agent": agent, "url": url}],
        "cases": list(patterns),
        "exclude-cases": [],
        "exclude-agent-cases": {},
    }
    spec_path = outdir / "spec.json"
    spec_path.write_text(json.dumps(spec, indent=2) + "\n", encoding="utf-8")
    # Python 2 block-buffers a pipe: without this the watchdog would see no progress.
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    run = WstestRun("done")
    with open(outdir / "wstest.log", "w", encoding="utf-8") as copy:
        proc = subprocess.Popen(
            [str(wstest), "-m", "fuzzingclient", "-s", str(spec_path)],
            cwd=outdir,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
            env=env,
        )
        try:
            assert proc.stdout is not None
            lines: queue.Queue[str | None] = queue.Queue()
            threading.Thread(target=_pump, args=(proc.stdout, lines, copy), daemon=True).start()
            deadline = time.monotonic() + case_timeout
            while True:
                try:
                    line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    run.status = "hung"
                    proc.kill()
                    break
                if line is None:
                    break
                if match := _RUNNING.match(line):
                    run.started.append(match.group(1))
                    deadline = time.monotonic() + case_timeout
                elif match := _CASES.match(line):
                    run.cases = [str(case) for case in ast.literal_eval(match.group(1))]
                    if not run.cases:
                        # With nothing to run, wstest would wait forever.
                        proc.kill()
                        proc.wait(10)
                        return run
            proc.wait(30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
    if run.status == "done":
        index_path = outdir / "index.json"
        if proc.returncode != 0 or not index_path.is_file():
            run.status = "error"
        else:
            run.index = json.loads(index_path.read_text(encoding="utf-8")).get(agent, {})
    return run


def _hung_entry(case_timeout: float) -> dict[str, Any]:
    return {
        "behavior": "FAILED",
        "behaviorClose": "FAILED",
        "hung": True,
        "result": f"wstest hung on this case: no progress within {case_timeout:.0f} s (watchdog killed it)",
        "resultClose": "the connection was never closed",
    }


def _entries(run: WstestRun, outdir: Path, base: Path) -> dict[str, dict[str, Any]]:
    """Index entries with ``reportfile`` made relative to the server's report folder."""
    entries = {}
    for case_id, entry in run.index.items():
        entry = dict(entry)
        if entry.get("reportfile"):
            entry["reportfile"] = str((outdir / entry["reportfile"]).relative_to(base))
        entries[case_id] = entry
    return entries


def run_group(
    server: EchoServer, group: str, patterns: Sequence[str], base: Path, case_timeout: float
) -> dict[str, dict[str, Any]]:
    """Run one case group; on a hang, rerun it case by case to keep every other result."""
    server.ensure_alive()
    outdir = base / "groups" / group
    shutil.rmtree(outdir, ignore_errors=True)
    started = time.monotonic()
    run = run_wstest(patterns, server.url, server.name, outdir, case_timeout)
    if run.status == "done":
        log(f"{server.name}: group {group}: {len(run.index)} cases in {time.monotonic() - started:.0f} s")
        return _entries(run, outdir, base)
    if run.status == "error" or not run.cases:
        raise RunError(f"{server.name}: wstest failed on group {group}; see {outdir / 'wstest.log'}")
    last = run.started[-1] if run.started else "(none)"
    log(f"{server.name}: group {group} hung (last case started: {last}); rerunning its cases one at a time")
    entries: dict[str, dict[str, Any]] = {}
    for case_id in run.cases:
        server.ensure_alive()
        case_dir = outdir / case_id
        single = run_wstest([case_id], server.url, server.name, case_dir, case_timeout)
        if single.status == "done":
            entries.update(_entries(single, case_dir, base))
        elif single.status == "hung":
            log(f"{server.name}: case {case_id} hung")
            entries[case_id] = _hung_entry(case_timeout)
        else:
            raise RunError(f"{server.name}: wstest failed on case {case_id}; see {case_dir / 'wstest.log'}")
    return entries


def group_patterns(patterns: Iterable[str]) -> dict[str, list[str]]:
    """Case patterns by top-level group ("6.3.*" -> "6"), in numeric order."""
    groups: dict[str, list[str]] = {}
    for pattern in patterns:
        groups.setdefault(pattern.split(".")[0], []).append(pattern)
    return dict(sorted(groups.items(), key=lambda item: int(item[0])))


def _events(events: Iterable[Any]) -> str:
    """``[["timeout", "A"], ["message", "...", false]]`` -> ``"timeout A, message(3 B text)"``."""
    shown = []
    for event in events:
        kind, *rest = event if isinstance(event, list) else [event]
        if kind == "message" and rest:
            payload = rest[0] if isinstance(rest[0], str) else json.dumps(rest[0])
            binary = len(rest) > 1 and rest[1]
            shown.append(f"message({len(payload)} {'binary' if binary else 'text'})")
        else:
            shown.append(" ".join([str(kind), *(str(r)[:20] for r in rest)]))
    return ", ".join(shown) or "nothing"


def _case_details(base: Path, entry: dict[str, Any]) -> dict[str, Any]:
    """What a non-passing case's own report says: expectation, result, close details."""
    details: dict[str, Any] = {}
    report = entry.get("reportfile")
    if report and (base / report).is_file():
        data = json.loads((base / report).read_text(encoding="utf-8"))
        for key in (
            "description",
            "expectation",
            "result",
            "resultClose",
            "expectedClose",
            "localCloseCode",
            "remoteCloseCode",
            "remoteCloseReason",
            "wasClean",
            "wasNotCleanReason",
            "closedByMe",
            "droppedByMe",
            "failedByMe",
        ):
            details[key] = data.get(key)
        # Events: what each verdict required and what wstest saw (payloads shortened).
        details["expected"] = {verdict: _events(events) for verdict, events in (data.get("expected") or {}).items()}
        details["received"] = _events(data.get("received") or [])
    else:
        details = {key: entry[key] for key in ("result", "resultClose") if key in entry}
    return details


def passing(entry: dict[str, Any]) -> bool:
    return entry.get("behavior") in PASSING and entry.get("behaviorClose") in PASSING


def summarize(name: str, entries: dict[str, dict[str, Any]], base: Path, **extra: Any) -> dict[str, Any]:
    cases = {case_id: entries[case_id] for case_id in sorted(entries, key=case_key)}
    failing = {case_id: entry for case_id, entry in cases.items() if not passing(entry)}
    return {
        "server": name,
        "cases": len(cases),
        "ran": list(cases),
        "informational": [case_id for case_id, entry in cases.items() if entry.get("behavior") == "INFORMATIONAL"],
        "behavior": {b: sum(e.get("behavior") == b for e in cases.values()) for b in BEHAVIORS},
        "behaviorClose": dict(Counter(str(e.get("behaviorClose")) for e in cases.values())),
        "failing": {
            case_id: {
                "behavior": entry.get("behavior"),
                "behaviorClose": entry.get("behaviorClose"),
                "hung": bool(entry.get("hung")),
                **_case_details(base, entry),
            }
            for case_id, entry in failing.items()
        },
        **extra,
    }


def wstest_version(wstest: Path = WSTEST) -> str:
    try:
        out = subprocess.run([str(wstest), "-a"], capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    found = dict(re.findall(r"(Autobahn\w*) ([\d.]+)", out))
    return ", ".join(f"{k} {v}" for k, v in found.items()) or out.strip() or "unknown"


def run_server(name: str, patterns: Sequence[str], reports: Path, case_timeout: float, label: str) -> dict[str, Any]:
    """All requested case groups against one server; writes ``index.json`` and ``summary.json``."""
    base = reports / name
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir(parents=True)
    started = time.monotonic()
    server = EchoServer(name, base)
    entries: dict[str, dict[str, Any]] = {}
    log(f"{name}: running {label}")
    try:
        server.start()
        log(f"{name}: echo example ready at {server.url}")
        for group, group_cases in group_patterns(patterns).items():
            entries.update(run_group(server, group, group_cases, base, case_timeout))
    finally:
        server.stop()
    tracebacks = (base / "server.log").read_text(encoding="utf-8", errors="replace").count("Traceback (most recent")
    if tracebacks:
        server.notes.append(f"the echo server logged {tracebacks} traceback(s); see {base / 'server.log'}")
    (base / "index.json").write_text(json.dumps({name: entries}, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    summary = summarize(
        name,
        entries,
        base,
        selection=label,
        patterns=list(patterns),
        seconds=round(time.monotonic() - started),
        notes=server.notes,
        date=time.strftime("%Y-%m-%d"),
        wstest=wstest_version(),
        websockets=importlib.metadata.version("websockets"),
        python=sys.version.split()[0],
    )
    (base / "summary.json").write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    return summary


def describe(case: dict[str, Any]) -> str:
    """One line: what the case expected and what the server did."""
    parts = []
    if case.get("behavior") not in PASSING:
        expected = case.get("expected")
        if expected:
            parts.append("wanted " + "; ".join(f"{v}: [{expected[v]}]" for v in BEHAVIORS if v in expected))
            parts.append(f"got [{case.get('received')}]")
        else:
            parts.append(str(case.get("result")))
    if case.get("behaviorClose") not in PASSING or case.get("hung"):
        parts.append(f"close: {case.get('resultClose')}")
    if "remoteCloseCode" in case:
        code, reason = case.get("remoteCloseCode"), case.get("remoteCloseReason")
        parts.append(
            f"server closed with {code}" + (f" ({reason})" if reason else "") + f", clean={case.get('wasClean')}"
        )
    return " | ".join(" ".join(str(part).split()) for part in parts)


def print_summary(summary: dict[str, Any]) -> None:
    name = summary["server"]
    print(f"\n== {name}: {summary['cases']} cases ({summary['selection']}) in {summary['seconds']} s")
    print("   behavior:      " + "  ".join(f"{b} {summary['behavior'][b]}" for b in BEHAVIORS))
    closes = summary["behaviorClose"]
    order = [b for b in CLOSE_BEHAVIORS if b in closes] + sorted(set(closes) - set(CLOSE_BEHAVIORS))
    print("   behaviorClose: " + "  ".join(f"{b} {closes[b]}" for b in order))
    for note in summary["notes"]:
        print(f"   note: {note}")
    if summary.get("informational"):
        print(f"   INFORMATIONAL: {', '.join(summary['informational'])}")
    failing = summary["failing"]
    if not failing:
        print("   every case OK or INFORMATIONAL")
        return
    print(f"   {len(failing)} case(s) not OK/INFORMATIONAL (behavior / behaviorClose):")
    for case_id, case in failing.items():
        print(f"   {case_id:<9} {case['behavior']} / {case['behaviorClose']}: {describe(case)}")


def print_table(summaries: Sequence[dict[str, Any]]) -> None:
    header = ["server", *BEHAVIORS, "close not OK", "cases"]
    rows = [
        [
            s["server"],
            *(str(s["behavior"][b]) for b in BEHAVIORS),
            str(sum(n for b, n in s["behaviorClose"].items() if b not in PASSING)),
            str(s["cases"]),
        ]
        for s in summaries
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    print()
    for row in [header, *rows]:
        print(
            "  ".join(
                cell.ljust(width) if i == 0 else cell.rjust(width)
                for i, (cell, width) in enumerate(zip(row, widths, strict=True))
            )
        )


def parse_groups(text: str) -> list[str]:
    """``"1-7,12"`` -> ``["1", ..., "7", "12"]``."""
    groups: list[str] = []
    for part in text.split(","):
        low, _, high = part.strip().partition("-")
        for n in range(int(low), int(high or low) + 1):
            if str(n) not in ALL_GROUPS:
                if 1 <= n <= 13 and low != high and high:
                    continue  # a range such as 1-13 spans the empty groups 8 and 11
                raise argparse.ArgumentTypeError(f"no case group {n}; groups with cases: {', '.join(ALL_GROUPS)}")
            groups.append(str(n))
    return groups


def plan(args: argparse.Namespace, servers: Sequence[str]) -> list[tuple[str, list[str], str]]:
    """``(server, case patterns, label)`` for each server to run."""
    if args.quick:
        chosen: dict[str, list[str]] = {}
        for preference, cases in QUICK_PLAN:
            target = next((s for s in preference if s in servers), None)
            if target is not None:
                have = chosen.setdefault(target, [])
                have.extend(c for c in cases if c not in have)
        return [(s, chosen[s], "quick subset: " + " ".join(chosen[s])) for s in servers if s in chosen]
    if args.cases:
        return [(s, list(args.cases), "cases " + " ".join(args.cases)) for s in servers]
    groups = args.groups or list(ALL_GROUPS)
    label = "all cases 1-13" if groups == list(ALL_GROUPS) else "groups " + ",".join(groups)
    return [(s, [f"{g}.*" for g in groups], label) for s in servers]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.conformance.run", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--server", action="append", metavar="NAME", help="server to test (repeatable; default: every example server)"
    )
    selection = parser.add_mutually_exclusive_group()
    selection.add_argument("--groups", type=parse_groups, help="case groups, e.g. 1-7,12 (default: 1-13)")
    selection.add_argument("--cases", nargs="+", metavar="ID", help="case ids or patterns, e.g. 7.5.1 12.1.*")
    selection.add_argument("--quick", action="store_true", help="the CI subset (QUICK_PLAN), a few minutes")
    parser.add_argument(
        "--case-timeout", type=float, default=150.0, help="watchdog: seconds without a new case (default: 150)"
    )
    parser.add_argument("--reports", type=Path, help="report folder (default: tools/conformance/reports[/quick])")
    parser.add_argument("--docs", action="store_true", help="then regenerate docs/conformance.rst from the reports")
    parser.add_argument(
        "--strict", action="store_true", help="fail on every non-OK case, even those in known_failures.json"
    )
    parser.add_argument("--no-install", action="store_true", help="do not run tools/conformance/install.sh first")
    args = parser.parse_args(argv)

    servers = available_servers()
    if args.server:
        unknown = [s for s in args.server if s not in servers]
        if unknown:
            parser.error(f"no example server module for {', '.join(unknown)} (available: {', '.join(servers)})")
        servers = [s for s in servers if s in args.server]
    reports = args.reports or (REPORTS / "quick" if args.quick else REPORTS)

    try:
        if not args.no_install:
            ensure_wstest()
        if not WSTEST.exists():
            raise RunError(f"no wstest at {WSTEST}; run {INSTALL.relative_to(ROOT)}")
        summaries = [run_server(s, cases, reports, args.case_timeout, label) for s, cases, label in plan(args, servers)]
    except Py27Missing as exc:
        print(f"conformance: {exc}", file=sys.stderr)
        return 3
    except RunError as exc:
        print(f"conformance: {exc}", file=sys.stderr)
        return 2

    for summary in summaries:
        print_summary(summary)
    print_table(summaries)
    print(f"\nreports: {reports}/<server>/ (index.json, summary.json, per-case JSON and HTML)")
    if args.docs:
        from tools.conformance.docs import write_docs

        log(f"wrote {write_docs(reports).relative_to(ROOT)}")
    return verdict(summaries, {} if args.strict else load_known())


def load_known(path: Path = KNOWN) -> dict[str, dict[str, Any]]:
    """Tracked non-OK cases: ``{case id: {behavior, behaviorClose, servers?, reason}}``."""
    if not path.is_file():
        return {}
    known: dict[str, dict[str, Any]] = json.loads(path.read_text(encoding="utf-8"))
    return {case_id: entry for case_id, entry in known.items() if not case_id.startswith("_")}


def verdict(summaries: Sequence[dict[str, Any]], known: dict[str, dict[str, Any]]) -> int:
    """Print the outcome against the tracked list; 1 on any regression.

    A regression is a non-OK case that is not tracked in ``known_failures.json``
    with exactly that behavior and close behavior for that server.
    """
    regressions: list[str] = []
    tracked: list[str] = []
    fixed: list[str] = []
    for summary in summaries:
        name = summary["server"]
        for case_id, case in summary["failing"].items():
            entry = known.get(case_id)
            matches = (
                entry is not None
                and name in entry.get("servers", [name])
                and (entry.get("behavior"), entry.get("behaviorClose")) == (case["behavior"], case["behaviorClose"])
            )
            (tracked if matches else regressions).append(f"{name} {case_id}")
        for case_id, entry in known.items():
            ran_ok = case_id in summary.get("ran", ()) and case_id not in summary["failing"]
            if ran_ok and name in entry.get("servers", [name]):
                fixed.append(f"{name} {case_id}")
    if fixed:
        log(f"now OK, remove from {KNOWN.relative_to(ROOT)}: {', '.join(fixed)}")
    if tracked:
        log(f"{len(tracked)} tracked non-OK case(s) (in {KNOWN.relative_to(ROOT)}): {', '.join(tracked)}")
    if regressions:
        log(f"FAILED: {len(regressions)} case(s) not OK/INFORMATIONAL: {', '.join(regressions)}")
        return 1
    if tracked:
        log("no regression; the target (every case OK or INFORMATIONAL) is not met yet")
    else:
        log("every case OK or INFORMATIONAL on " + ", ".join(s["server"] for s in summaries))
    return 0


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Turn SIGTERM into KeyboardInterrupt so ``finally`` blocks stop our children."""

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    with _sigterm_as_interrupt():
        sys.exit(main())
