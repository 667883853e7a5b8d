"""The benchmark command: servers, competitors, scenarios, rounds, report.

``python -m tools.bench`` starts each server fresh for every measurement, pinned to
one core (``taskset -c 0``), drives it with ``tools/bench/client.py`` (picows on
uvloop, in its own venv) pinned to the other core (``taskset -c 1``) and interleaves
the competitors within every round (the order rotates from round to round).
It prints medians with min-max over the rounds, ratios against the targets,
the client's headroom, and writes JSON to ``tools/bench/results/`` and (full runs)
the page ``docs/benchmarks.rst``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import charts, report, venvs
from .pinning import UNPINNED_JSON, Pinning
from .pinning import check as check_pinning

ROOT = venvs.ROOT
BENCH = ROOT / "tools" / "bench"
RESULTS = BENCH / "results"
HOST = "127.0.0.1"
KNOWN_SERVERS = ("wsgiref", "cherrypy", "gevent", "gunicorn-gevent")
#: ``--servers`` default (gunicorn-gevent is asked for by name).
DEFAULT_SERVERS = ("wsgiref", "cherrypy", "gevent")
#: Our servers that ws4py 0.6.0 also runs on (``tools/bench/servers/ws4py_server.py``).
WS4PY_SERVERS = ("wsgiref", "cherrypy", "gevent")
COMPETITOR_FAMILIES = ("websockets", "ws4py", "gevent-websocket", "http", "raw")
#: Our servers whose HTTP server runs alone as the "http" family (tools/bench/servers/http_alone.py).
HTTP_ALONE_SERVERS = ("cherrypy", "gevent")
READY_RE = re.compile(r"https?://127\.0\.0\.1:(\d+)/")
#: The gunicorn worker's pid in its ready line (tools/bench/servers/gunicorn_conf.py).
WORKER_PID_RE = re.compile(r"gunicorn-gevent worker (\d+): https?://")
START_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0


@dataclass(frozen=True)
class Scenario:
    """One measured configuration."""

    key: str
    title: str
    mode: str  # client scenario: echo, idle, broadcast
    conns: int
    size: int = 32
    kind: str = "text"


SCENARIOS = {
    s.key: s
    for s in (
        Scenario("echo-1", "echo, 1 connection, 32 B text", "echo", 1),
        Scenario("echo-16", "echo, 16 connections, 32 B text", "echo", 16),
        Scenario("echo-256", "echo, 256 connections, 32 B text", "echo", 256),
        Scenario("bulk-64k", "bulk echo, 64 KiB binary, 1 connection", "echo", 1, 64 * 1024, "binary"),
        Scenario("bulk-1m", "bulk echo, 1 MiB binary, 1 connection", "echo", 1, 2**20, "binary"),
        Scenario("idle-1000", "1,000 idle connections", "idle", 1000),
        Scenario("idle-5000", "5,000 idle connections", "idle", 5000),
        Scenario("idle-10000", "10,000 idle connections", "idle", 10000),
        Scenario("broadcast-1000", "broadcast to 1,000 clients, 32 B text", "broadcast", 1000),
        # Quick mode's smaller configurations.
        Scenario("idle-200", "200 idle connections", "idle", 200),
        Scenario("broadcast-100", "broadcast to 100 clients, 32 B text", "broadcast", 100),
    )
}
FULL = (
    "echo-1",
    "echo-16",
    "echo-256",
    "bulk-64k",
    "bulk-1m",
    "idle-1000",
    "idle-5000",
    "idle-10000",
    "broadcast-1000",
)
QUICK = ("echo-16", "bulk-64k", "idle-200", "broadcast-100")


@dataclass
class Competitor:
    """A server under test: how to start it and what it is."""

    name: str
    label: str
    family: str  # ours, ws4py, websockets, gevent-websocket, http, raw
    venv: str | None  # None: the project venv
    argv: list[str]
    server: str | None = None
    raw: bool = False
    env: dict[str, str] = field(default_factory=dict)
    #: The client scenarios (Scenario.mode) this server can take part in; empty: all.
    modes: tuple[str, ...] = ()

    #: Working directory (a frozen copy of the project for our servers).
    cwd: Path | None = None
    #: CPUs of this server and its load client; ``None``: unpinned.
    pin: Pinning | None = None
    #: How the address is passed: ``--host H --port P`` ("flags") or ``--bind H:P`` ("gunicorn").
    bind: str = "flags"
    #: The pid to measure is a child's (gunicorn's worker), found in the log with this pattern.
    pid_re: re.Pattern[str] | None = None

    def command(self, port: int) -> list[str]:
        python = str(venvs.PROJECT_PYTHON) if self.venv is None else str(venvs.python_of(self.venv))
        address = ["--bind", f"{HOST}:{port}"] if self.bind == "gunicorn" else ["--host", HOST, "--port", str(port)]
        prefix = self.pin.server_prefix() if self.pin is not None else []
        return [*prefix, python, *self.argv, *address]


@dataclass
class Settings:
    warmup: float
    duration: float
    rounds: int
    broadcasts: int
    settle: float
    concurrency: int
    scenarios: tuple[str, ...]
    quiet_wait: float = 0.0
    #: A measurement during which other processes used more than this many
    #: cores is measured again (``None``: never), at most ``repeats`` times.
    repeat_above: float | None = None
    repeats: int = 2


def raise_nofile() -> tuple[int, int]:
    """Raise RLIMIT_NOFILE's soft limit as far as allowed; children inherit it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if target > soft:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def ours_available(server: str) -> str | None:
    """``None`` if ``examples.echo --server NAME`` (or the gunicorn worker) can run, else why not."""
    if server == "gunicorn-gevent":
        module = "gunicorn, ws4py_integrations.gevent.gunicorn"
    elif not (ROOT / "examples" / "_servers" / f"{server}.py").exists():
        return f"examples/_servers/{server}.py does not exist (yet)"
    else:
        module = f"examples._servers.{server}"
    python = venvs.PROJECT_PYTHON
    if not python.exists():
        return "the project venv (.venv) is missing: run `make setup`"
    try:
        proc = subprocess.run(
            [str(python), "-c", f"import {module}"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
    except subprocess.TimeoutExpired:
        return "importing it timed out"
    if proc.returncode != 0:
        return (proc.stderr.strip().splitlines() or ["import failed"])[-1]
    return None


#: Runs ``examples.echo`` after setting module attributes (``--variant``): an A/B
#: experiment on our server without editing the library.
PATCH_BOOT = """
import ast, importlib, json, os, runpy, sys
for target, value in json.loads(os.environ["BENCH_PATCH"]):
    parts = target.split(".")
    for i in range(len(parts) - 1, 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
            break
        except ImportError:
            continue
    for name in parts[i:-1]:
        obj = getattr(obj, name)
    if value == "()":
        getattr(obj, parts[-1])()
    else:
        setattr(obj, parts[-1], ast.literal_eval(value))
sys.argv = ["examples.echo", *sys.argv[1:]]
runpy.run_module("examples.echo", run_name="__main__", alter_sys=True)
"""


def parse_variant(text: str) -> tuple[str, list[tuple[str, str]], dict[str, str]]:
    """``NAME:pkg.mod[.Class].ATTR=VALUE,pkg.mod.func(),$ENVVAR=VALUE`` -> name, patches, environment."""
    name, _, assignments = text.partition(":")
    pairs = []
    env: dict[str, str] = {}
    for item in assignments.split(","):
        if item.startswith("$") and "=" in item:
            var, _, value = item[1:].partition("=")
            env[var] = value
            continue
        if item.endswith("()"):
            target, value = item[:-2], "()"
        else:
            target, _, value = item.partition("=")
        if not name or "." not in target or not value:
            raise SystemExit(f"bad --variant {text!r}: expected NAME:module.ATTR=VALUE[,...]")
        pairs.append((target.strip(), value.strip()))
    return name, pairs, env


def freeze(revision: str | None) -> tuple[Path, str]:
    """A frozen copy of ``ws4py_integrations`` and ``examples`` our servers run from, and its label.

    The library may change while a long run goes on; every measurement of one
    run must see the same code. ``revision`` is a git revision (``git archive``);
    ``None`` copies the working tree as it is now.
    """
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    target = RESULTS / "snapshots" / stamp
    target.mkdir(parents=True, exist_ok=True)
    if revision is None:
        for name in ("ws4py_integrations", "examples"):
            shutil.copytree(ROOT / name, target / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        label = git_revision()
    else:
        archive = subprocess.run(
            ["git", "archive", "--format=tar", revision, "ws4py_integrations", "examples"],
            cwd=ROOT,
            capture_output=True,
            timeout=60,
            check=True,
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True, timeout=60)
        label = revision
    for old in sorted((RESULTS / "snapshots").iterdir())[:-5]:
        shutil.rmtree(old, ignore_errors=True)
    where = subprocess.run(
        [
            str(venvs.PROJECT_PYTHON),
            "-c",
            "import ws4py_integrations as w, examples as e; print(w.__file__, e.__file__)",
        ],
        cwd=target,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout.split()
    if len(where) != 2 or not all(path.startswith(str(target)) for path in where):
        raise SystemExit(f"bench: the frozen copy in {target} is not what python imports there: {where}")
    return target, label


def gunicorn_competitor() -> Competitor:
    """Ours under gunicorn with our gevent worker, one worker, as users start it."""
    servers_dir = BENCH / "servers"
    return Competitor(
        "ours-gunicorn-gevent",
        "ws4py_integrations (gunicorn, GunicornWorker, 1 worker)",
        "ours",
        None,
        [
            "-m",
            "gunicorn",
            "-k",
            "ws4py_integrations.gevent.GunicornWorker",
            "--workers",
            "1",
            "-c",
            str(servers_dir / "gunicorn_conf.py"),
            "--pythonpath",
            str(servers_dir),
            "gunicorn_app:app",
        ],
        "gunicorn-gevent",
        bind="gunicorn",
        pid_re=WORKER_PID_RE,
    )


def build_competitors(servers: list[str], families: list[str], variants: list[str] | None = None) -> list[Competitor]:
    """Our servers plus the requested competitor families; unavailable ones are skipped with a message."""
    result: list[Competitor] = []
    for server in servers:
        if server not in KNOWN_SERVERS:
            print(f"bench: skipping server {server!r}: unknown (known: {', '.join(KNOWN_SERVERS)})", flush=True)
            continue
        why = ours_available(server)
        if why is None and server == "gunicorn-gevent":
            result.append(gunicorn_competitor())
            if variants:
                print("bench: --variant does not apply to gunicorn-gevent", flush=True)
        elif why is None:
            result.append(
                Competitor(
                    f"ours-{server}",
                    f"ws4py_integrations ({server})",
                    "ours",
                    None,
                    ["-m", "examples.echo", "--server", server],
                    server,
                )
            )
            for variant in variants or []:
                name, pairs, env = parse_variant(variant)
                changes = [f"{t}={v}" for t, v in pairs] + [f"${k}={v}" for k, v in env.items()]
                result.append(
                    Competitor(
                        f"ours-{server}+{name}",
                        f"ws4py_integrations ({server}) with {', '.join(changes)}",
                        "ours",
                        None,
                        ["-c", PATCH_BOOT, "--server", server],
                        server,
                        env={**env, "BENCH_PATCH": json.dumps(pairs), "PYTHONPATH": str(ROOT)},
                    )
                )
        else:
            print(f"bench: skipping ours-{server}: {why}", flush=True)
        if "ws4py" in families and server in WS4PY_SERVERS:
            result.append(
                Competitor(
                    f"ws4py-{server}",
                    f"ws4py 0.6.0 ({server})",
                    "ws4py",
                    "ws4py",
                    [str(BENCH / "servers" / "ws4py_server.py"), "--server", server],
                    server,
                )
            )
    servers_dir = BENCH / "servers"
    if "gevent-websocket" in families:
        result.append(
            Competitor(
                "gevent-websocket",
                "gevent-websocket 0.10.1",
                "gevent-websocket",
                "gevent-websocket",
                [str(servers_dir / "geventws_server.py")],
            )
        )
    if "websockets" in families:
        result.append(
            Competitor(
                "websockets",
                "websockets asyncio",
                "websockets",
                "websockets",
                [str(servers_dir / "websockets_server.py")],
            )
        )
    if "http" in families:
        for server in HTTP_ALONE_SERVERS:
            if server in servers and ours_available(server) is None:
                result.append(
                    Competitor(
                        f"http-{server}",
                        f"{server}'s HTTP server alone, answering 101 by hand (idle only)",
                        "http",
                        None,
                        [str(servers_dir / "http_alone.py"), "--server", server],
                        server,
                        modes=("idle",),
                    )
                )
    if "raw" in families:
        result.append(
            Competitor("raw", "raw TCP echo (uvloop)", "raw", "client", [str(servers_dir / "raw_server.py")], raw=True)
        )
        # On our interpreter, as our servers run: the floor of a server written in Python.
        result.append(
            Competitor(
                "raw-python",
                "raw TCP echo (pure Python, selectors)",
                "raw",
                None,
                [str(servers_dir / "raw_python.py")],
                raw=True,
                modes=("echo",),
            )
        )
    return result


class ServerProcess:
    """One server process that we started; stopped by its PID only."""

    def __init__(self, competitor: Competitor, log_path: Path) -> None:
        self.competitor = competitor
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        #: The measured process when it is not the one started (gunicorn's worker).
        self.child_pid: int | None = None

    def start(self) -> int:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **self.competitor.env}
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                self.competitor.command(0),
                cwd=self.competitor.cwd or ROOT,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            output = self.log_path.read_text(errors="replace")[:16384]
            match = READY_RE.search(output)
            pid_re = self.competitor.pid_re
            child = pid_re.search(output) if pid_re is not None else None
            if match and (pid_re is None or child):
                self.port = int(match.group(1))
                self.child_pid = int(child.group(1)) if child else None
                return self.port
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        tail = self.log_path.read_text(errors="replace")[-2000:]
        self.stop()
        raise RuntimeError(f"{self.competitor.name} did not become ready:\n{tail}")

    @property
    def pid(self) -> int:
        """The process to measure: the server, or gunicorn's worker."""
        if self.child_pid is not None:
            return self.child_pid
        assert self.proc is not None
        return self.proc.pid

    def stop(self) -> None:
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        child = self.child_pid
        if child is not None and child_alive(child, proc.pid):
            # The arbiter is gone and its worker is not: stop the worker we started, by pid.
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)


def child_alive(pid: int, parent: int) -> bool:
    """Whether ``pid`` still runs and is still the gunicorn worker that ``parent`` forked."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    state = stat.rsplit(")", 1)[1].split()[0]
    return state != "Z" and b"gunicorn" in cmdline


def busy_cores(interval: float = 1.0) -> float:
    """Cores the whole machine kept busy over ``interval`` seconds (``/proc/stat``)."""

    def sample() -> tuple[int, int]:
        fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
        return sum(fields), fields[3] + fields[4]

    try:
        total0, idle0 = sample()
        time.sleep(interval)
        total1, idle1 = sample()
    except (OSError, ValueError, IndexError):
        return 0.0
    ticks = os.sysconf("SC_CLK_TCK")
    return ((total1 - total0) - (idle1 - idle0)) / ticks / interval


def wait_for_quiet(budget: float, threshold: float = 0.25) -> float:
    """Wait (at most ``budget`` seconds) until other processes use under ``threshold`` cores; return the last reading."""
    deadline = time.monotonic() + budget
    busy = busy_cores(0.5) if budget > 0 else 0.0
    while busy > threshold and time.monotonic() < deadline:
        busy = busy_cores(1.0)
    return busy


def client_command(competitor: Competitor, scenario: Scenario, settings: Settings, port: int, pid: int) -> list[str]:
    prefix = competitor.pin.client_prefix() if competitor.pin is not None else []
    argv = [
        *prefix,
        str(venvs.python_of("client")),
        str(BENCH / "client.py"),
        scenario.mode,
        "--host",
        HOST,
        "--port",
        str(port),
        "--server-pid",
        str(pid),
        "--conns",
        str(scenario.conns),
        "--size",
        str(scenario.size),
        "--kind",
        scenario.kind,
        "--warmup",
        str(settings.warmup),
        "--duration",
        str(settings.duration),
        "--concurrency",
        str(settings.concurrency),
        "--settle",
        str(settings.settle),
        "--rounds",
        str(settings.broadcasts),
    ]
    if competitor.raw:
        argv.append("--raw")
    return argv


def measure(competitor: Competitor, scenario: Scenario, settings: Settings) -> dict[str, Any]:
    """Start a fresh server, run one client scenario against it, stop it."""
    background = wait_for_quiet(settings.quiet_wait) if settings.quiet_wait > 0 else None
    server = ServerProcess(competitor, RESULTS / "logs" / f"{competitor.name}.log")
    try:
        port = server.start()
    except RuntimeError as exc:
        return {"error": str(exc).splitlines()[0]}
    timeout = 120 + settings.warmup + settings.duration + scenario.conns * 0.05 + settings.broadcasts
    try:
        proc = subprocess.run(
            client_command(competitor, scenario, settings, port, server.pid),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return {"error": f"client timed out after {timeout:.0f} s"}
    finally:
        server.stop()
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        err = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": f"client exited {proc.returncode}: {err}"}
    result: dict[str, Any] = json.loads(lines[-1])
    if background is not None:
        result["background_before_core"] = background
    return result


def disturbance(result: dict[str, Any]) -> float:
    """Cores other processes used while ``result`` was measured (0 when unknown)."""
    value = result.get("other_core")
    return float(value) if isinstance(value, int | float) else 0.0


def measure_undisturbed(competitor: Competitor, scenario: Scenario, settings: Settings) -> dict[str, Any]:
    """:func:`measure`, again (a fresh server each time) while other processes used more
    than ``settings.repeat_above`` cores meanwhile, up to ``settings.repeats`` times.

    A neighbour taking a core slows whichever server runs at that moment, and
    every server alike; the same rule applies to every competitor. The
    earlier attempts stay in the result, under ``"disturbed"``. When every
    attempt was disturbed, the least disturbed one is kept and says so.
    """
    result = measure(competitor, scenario, settings)
    limit = settings.repeat_above
    if limit is None or "error" in result or disturbance(result) <= limit:
        return result
    attempts = [result]
    for _ in range(settings.repeats):
        print(
            f"bench: {scenario.key} {competitor.name}: other processes used "
            f"{disturbance(attempts[-1]):.2f} cores meanwhile (over {limit:g}); measuring again",
            flush=True,
        )
        attempt = measure(competitor, scenario, settings)
        if "error" in attempt:
            break
        attempts.append(attempt)
        if disturbance(attempt) <= limit:
            break
    kept = min(attempts, key=disturbance)
    others = [a for a in attempts if a is not kept]
    kept = {**kept, "disturbed": others}
    if disturbance(kept) > limit:
        kept["still_disturbed"] = True
    return kept


def run(competitors: list[Competitor], settings: Settings) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """All rounds; within a round every scenario runs every competitor, order rotating."""
    results: dict[str, dict[str, list[dict[str, Any]]]] = {
        key: {c.name: [] for c in competitors} for key in settings.scenarios
    }
    for rnd in range(settings.rounds):
        for key in settings.scenarios:
            scenario = SCENARIOS[key]
            shift = rnd % len(competitors)
            order = competitors[shift:] + competitors[:shift]
            for competitor in order:
                if competitor.modes and scenario.mode not in competitor.modes:
                    continue
                t0 = time.monotonic()
                result = measure_undisturbed(competitor, scenario, settings)
                results[key][competitor.name].append(result)
                print(
                    f"bench: round {rnd + 1}/{settings.rounds} {key:<15} {competitor.name:<17} "
                    f"{report.one_line(scenario.mode, scenario.size, result)} ({time.monotonic() - t0:.1f} s)",
                    flush=True,
                )
    return results


def machine_info() -> dict[str, Any]:
    info: dict[str, Any] = {"cores": os.cpu_count(), "python": sys.version.split()[0], "kernel": os.uname().release}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                info["memory_gib"] = round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return info


def git_revision() -> str:
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "ws4py_integrations", "examples"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{rev}{' (modified)' if dirty else ''}" if rev else "unknown"


def versions(competitors: list[Competitor]) -> dict[str, dict[str, str]]:
    """Package versions per venv that took part."""
    names = ["ws4py_integrations", "websockets", "CherryPy", "cheroot", "gevent", "greenlet"]
    out = {"project": venvs.project_versions(names)}
    wanted = {
        "client": ["picows", "uvloop"],
        "websockets": ["websockets"],
        "ws4py": ["ws4py", "CherryPy", "cheroot", "gevent"],
        "gevent-websocket": ["gevent-websocket", "gevent"],
    }
    for venv in sorted({c.venv for c in competitors if c.venv} | {"client"}):
        out[venv] = venvs.installed_versions(venvs.python_of(venv), wanted.get(venv, []))
    return out


def add_pinning_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--server-cpu", type=int, default=0, help="CPU of the server under test (default 0)")
    parser.add_argument("--client-cpu", type=int, default=1, help="CPU of the load client (default 1)")
    parser.add_argument(
        "--unpinned", action="store_true", help="do not pin (servers and client may use every core; for comparison)"
    )


def pinning_from(args: argparse.Namespace) -> Pinning | None:
    """The pinning the arguments ask for; exits with a message when the machine cannot do it."""
    if args.unpinned:
        print("bench: unpinned: servers and the load client may use every core", flush=True)
        return None
    pin = check_pinning(args.server_cpu, args.client_cpu)
    print(f"bench: pinned: {pin.describe()}", flush=True)
    return pin


def unpinned_copy(competitor: Competitor) -> Competitor:
    """The same server, unpinned, as its own column."""
    return dataclasses.replace(
        competitor,
        name=f"{competitor.name}-unpinned",
        label=f"{competitor.label}, unpinned",
        pin=None,
    )


def write_page(data: dict[str, Any], page: Path) -> None:
    """The reST page and its charts (``_static/bench/*.svg`` beside it)."""
    page.parent.mkdir(parents=True, exist_ok=True)
    chart_dir = page.parent / "_static" / "bench"
    written = charts.write_all(data, chart_dir)
    images = {key: f"_static/bench/{path.name}" for key, path in written.items()}
    text = report.rst(data, images)
    if (page.parent / "benchmarks_socketio.inc").exists():
        # The Socket.IO section (python -m tools.bench.socketio --docs) survives a re-render.
        text = text.rstrip("\n") + "\n\n.. include:: benchmarks_socketio.inc\n"
    page.write_text(text)
    print(f"bench: results page {page}, {len(written)} chart(s) in {chart_dir}", flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tools.bench", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--servers",
        nargs="+",
        default=list(DEFAULT_SERVERS),
        help=f"our servers (and ws4py's on the same server) among {' '.join(KNOWN_SERVERS)} (default: {' '.join(DEFAULT_SERVERS)})",
    )
    parser.add_argument(
        "--competitors",
        nargs="*",
        default=None,
        help=f"families among {' '.join(COMPETITOR_FAMILIES)} (default: all; gevent-websocket only with gevent)",
    )
    parser.add_argument("--scenarios", nargs="+", choices=sorted(SCENARIOS), help="default: all (quick: a few)")
    parser.add_argument("--quick", action="store_true", help="short durations, fewer configs (CI smoke)")
    parser.add_argument("--rounds", type=int, help="rounds per competitor (default 5, quick 1)")
    parser.add_argument("--duration", type=float, help="seconds measured per echo run (default 3, quick 0.6)")
    parser.add_argument("--warmup", type=float, help="seconds of warm-up per echo run (default 1, quick 0.3)")
    parser.add_argument("--broadcasts", type=int, help="broadcasts measured per run (default 20, quick 5)")
    parser.add_argument(
        "--quiet-wait",
        type=float,
        help="seconds to wait before each measurement for other processes to go quiet (default 10, quick 0)",
    )
    parser.add_argument(
        "--repeat-disturbed",
        type=float,
        metavar="CORES",
        help="measure again when other processes used more than CORES cores meanwhile (default 0.15, quick: never; 0: never)",
    )
    parser.add_argument(
        "--max-repeats", type=int, default=2, help="at most this many repeats of one disturbed measurement (default 2)"
    )
    parser.add_argument("--concurrency", type=int, default=8, help="handshakes in flight while connecting")
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        help="also run our servers patched: NAME:module.ATTR=LITERAL, NAME:tools.bench.experiments.FUNC(), NAME:$ENV=VALUE (comma-separated)",
    )
    parser.add_argument(
        "--revision", help="run our servers from this git revision (default: a copy of the working tree)"
    )
    add_pinning_args(parser)
    parser.add_argument(
        "--also-unpinned",
        action="store_true",
        help="also run each of our servers unpinned (server and client free on every core), as extra columns",
    )
    parser.add_argument("--json", type=Path, help="write results here (default tools/bench/results/<time>.json)")
    parser.add_argument("--docs", type=Path, help="write the results page (default for full runs: docs/benchmarks.rst)")
    parser.add_argument("--no-docs", action="store_true", help="do not write the results page")
    parser.add_argument("--report", type=Path, help="only print (and with --docs, render) a saved results JSON")
    return parser.parse_args(argv)


#: Cores other processes may use during a measurement before it is repeated.
#: From a full run on the 2-core machine: the median reading of every scenario
#: was 0.00-0.04 cores, and the round that slowed every server, raw TCP
#: included, read 0.36-0.84 for 9 servers of 10.
REPEAT_ABOVE = 0.15


def repeat_above(given: float | None, quick: bool) -> float | None:
    if given is None:
        return None if quick else REPEAT_ABOVE
    return given if given > 0 else None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.report is not None:
        saved = json.loads(args.report.read_text())
        print(report.text(saved), flush=True)
        if args.docs is not None:
            write_page(saved, args.docs)
        return 0
    quick = args.quick
    settings = Settings(
        warmup=args.warmup if args.warmup is not None else (0.3 if quick else 1.0),
        duration=args.duration if args.duration is not None else (0.6 if quick else 3.0),
        rounds=args.rounds if args.rounds is not None else (1 if quick else 5),
        broadcasts=args.broadcasts if args.broadcasts is not None else (5 if quick else 20),
        settle=0.5 if quick else 1.0,
        concurrency=args.concurrency,
        scenarios=tuple(args.scenarios or (QUICK if quick else FULL)),
        quiet_wait=args.quiet_wait if args.quiet_wait is not None else (0.0 if quick else 10.0),
        repeat_above=repeat_above(args.repeat_disturbed, quick),
        repeats=max(0, args.max_repeats),
    )
    families = args.competitors
    if families is None:
        families = [f for f in COMPETITOR_FAMILIES if f != "gevent-websocket" or "gevent" in args.servers]
    unknown = sorted(set(families) - set(COMPETITOR_FAMILIES))
    if unknown:
        print(f"bench: ignoring unknown competitors: {', '.join(unknown)}", flush=True)
    pin = pinning_from(args)
    nofile = raise_nofile()
    print(f"bench: RLIMIT_NOFILE {nofile[0]} (hard {nofile[1]})", flush=True)
    competitors = build_competitors(args.servers, families, args.variant)
    for competitor in competitors:
        competitor.pin = pin
    if args.also_unpinned and pin is not None:
        competitors += [unpinned_copy(c) for c in competitors if c.family == "ours"]
    snapshot, revision = freeze(args.revision)
    for competitor in competitors:
        if competitor.family == "ours":
            competitor.cwd = snapshot
    print(f"bench: our servers run from {snapshot.relative_to(ROOT)} ({revision})", flush=True)
    if not competitors:
        print("bench: nothing to run", file=sys.stderr)
        return 2
    needed = {"client"} | {c.venv for c in competitors if c.venv}
    for name in sorted(needed):
        venvs.ensure(name)
    started = datetime.now(UTC)
    t0 = time.monotonic()
    results = run(competitors, settings)
    data: dict[str, Any] = {
        "date": started.strftime("%Y-%m-%d %H:%M UTC"),
        "elapsed_s": round(time.monotonic() - t0, 1),
        "command": "python -m tools.bench " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": machine_info(),
        "revision": revision,
        "versions": versions(competitors),
        "nofile": list(nofile),
        "pinning": pin.as_json() if pin is not None else UNPINNED_JSON,
        "settings": vars(settings),
        "competitors": [
            {
                "name": c.name,
                "label": c.label,
                "family": c.family,
                "server": c.server,
                "pinned": c.pin is not None,
                "modes": list(c.modes),
            }
            for c in competitors
        ],
        "scenarios": {key: vars(SCENARIOS[key]) for key in settings.scenarios},
        "results": results,
    }
    json_path = args.json or RESULTS / f"bench-{started.strftime('%Y%m%d-%H%M%S')}.json"
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(data, indent=1))
    print(report.text(data), flush=True)
    print(f"bench: results in {json_path}", flush=True)
    docs = args.docs if args.docs is not None else (None if quick else ROOT / "docs" / "benchmarks.rst")
    if docs is not None and not args.no_docs:
        write_page(data, docs)
    failed = [
        f"{key}/{name}"
        for key, per in results.items()
        for name, runs in per.items()
        if runs and all("error" in r for r in runs)  # no runs: a scenario the server does not take part in
    ]
    if failed:
        print(f"bench: no numbers for {', '.join(failed)}", flush=True)
    return 0
