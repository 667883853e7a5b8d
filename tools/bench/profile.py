"""Profile our server's hot path under the benchmark's load.

``python -m tools.bench profile --scenarios echo-16 bulk-1m`` samples our server
with py-spy (from ``tools/bench/.venvs/tools``) while the load client runs, then
prints the time per thread, per function (self) and per function (total).
``python -m tools.bench profile --memory`` compares tracemalloc snapshots taken
before and during N idle connections: bytes per connection per allocation site.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import signal
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

from . import venvs
from .run import (
    BENCH,
    HOST,
    PATCH_BOOT,
    RESULTS,
    ROOT,
    SCENARIOS,
    Competitor,
    ServerProcess,
    Settings,
    client_command,
    parse_variant,
)
from .run import raise_nofile as _raise_nofile

FRAME_RE = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def our_server(server: str, argv: list[str] | None = None, variant: str | None = None) -> Competitor:
    if variant is None:
        return Competitor(
            f"ours-{server}",
            f"ws4py_integrations ({server})",
            "ours",
            None,
            argv or ["-m", "examples.echo", "--server", server],
            server,
        )
    name, pairs, env = parse_variant(variant)
    return Competitor(
        f"ours-{server}+{name}",
        f"ws4py_integrations ({server}) patched",
        "ours",
        None,
        ["-c", PATCH_BOOT, "--server", server],
        server,
        env={**env, "BENCH_PATCH": json.dumps(pairs), "PYTHONPATH": str(ROOT)},
    )


def short(frame: str) -> str:
    """``func (path/to/file.py:12)`` -> ``func (file.py)``, grouping lines of one function."""
    match = FRAME_RE.match(frame)
    if not match:
        return frame
    path = match.group("file")
    for marker in ("ws4py_integrations/", "site-packages/", "lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
            if marker == "ws4py_integrations/":
                path = "ws4py_integrations/" + path
            break
    return f"{match.group('func')} ({path})"


def summarize(raw: Path, top: int) -> dict[str, Any]:
    """Collapsed stacks (py-spy ``--format raw --threads``) to thread, self and total shares."""
    threads: collections.Counter[str] = collections.Counter()
    self_time: collections.Counter[str] = collections.Counter()
    total_time: collections.Counter[str] = collections.Counter()
    lines_self: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        thread = re.sub(r"_\d+$|\(\d+\)", "_N", frames[0].split("): ", 1)[-1].strip('"'))
        frames = frames[1:] or ["<no python frame>"]
        total += count
        threads[thread] += count
        self_time[short(frames[-1])] += count
        lines_self[frames[-1]] += count
        for name in {short(f) for f in frames}:
            total_time[name] += count

    def share(counter: collections.Counter[str], n: int) -> list[tuple[str, float]]:
        return [(name, 100.0 * c / max(total, 1)) for name, c in counter.most_common(n)]

    return {
        "samples": total,
        "threads": share(threads, 10),
        "self": share(self_time, top),
        "total": share(total_time, top * 2),
        "lines": share(lines_self, top),
    }


def print_summary(title: str, summary: dict[str, Any], load: dict[str, Any]) -> None:
    print(f"\n=== {title}: {summary['samples']} samples of running threads", flush=True)
    print("load while profiled: " + ", ".join(f"{k} {v:.4g}" for k, v in load.items() if isinstance(v, float)))
    for section, label in (
        ("threads", "time per thread"),
        ("self", "self time per function"),
        ("lines", "self time per line"),
        ("total", "total time per function (with callees)"),
    ):
        print(f"\n-- {label}")
        for name, pct in summary[section]:
            print(f"{pct:6.1f}%  {name}")


def profile_cpu(args: argparse.Namespace) -> None:
    spy = venvs.ensure("tools").parent / "py-spy"
    venvs.ensure("client")
    settings = Settings(
        warmup=1.0,
        duration=args.duration,
        rounds=1,
        broadcasts=20,
        settle=1.0,
        concurrency=8,
        scenarios=tuple(args.scenarios),
    )
    out_dir = RESULTS / "profiles"
    out_dir.mkdir(parents=True, exist_ok=True)
    for key in args.scenarios:
        scenario = SCENARIOS[key]
        competitor = our_server(args.server, variant=args.variant)
        server = ServerProcess(competitor, RESULTS / "logs" / f"profile-{competitor.name}.log")
        port = server.start()
        raw = out_dir / f"{competitor.name}-{key}.txt"
        record = [
            str(spy),
            "record",
            "--pid",
            str(server.pid),
            "--rate",
            str(args.rate),
            "--duration",
            str(int(settings.warmup + settings.duration + 3)),
            "--format",
            "raw",
            "--threads",
            "--output",
            str(raw),
        ]
        if not args.all_threads:
            record.append("--gil")
        if not args.blocking:
            record.append("--nonblocking")
        spy_proc = subprocess.Popen(record, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            time.sleep(0.5)
            client = subprocess.run(
                client_command(competitor, scenario, settings, port, server.pid),
                capture_output=True,
                text=True,
                timeout=120 + settings.duration,
            )
            try:
                _, err = spy_proc.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                spy_proc.send_signal(signal.SIGINT)
                _, err = spy_proc.communicate(timeout=20)
        finally:
            if spy_proc.poll() is None:
                spy_proc.kill()
                spy_proc.wait(10)
            server.stop()
        lines = client.stdout.strip().splitlines()
        load = json.loads(lines[-1]) if lines else {"error": client.stderr[-500:]}
        if not raw.exists():
            print(f"bench profile: py-spy wrote nothing for {key}: {err[-1000:]}", flush=True)
            continue
        summary = summarize(raw, args.top)
        print_summary(f"{competitor.name} {key} ({scenario.title})", summary, load)
        (out_dir / f"{competitor.name}-{key}.json").write_text(json.dumps({"load": load, **summary}, indent=1))
        print(f"\nraw stacks: {raw}", flush=True)


# -- memory -----------------------------------------------------------------------

_BOOTSTRAP = """
import os, runpy, signal, sys, tracemalloc
tracemalloc.start(int(os.environ["BENCH_TRACE_FRAMES"]))
_out = os.environ["BENCH_SNAPSHOT"]
_n = [0]
def _dump(signum, frame):
    _n[0] += 1
    tmp = f"{_out}.{_n[0]}.tmp"
    tracemalloc.take_snapshot().dump(tmp)
    os.replace(tmp, f"{_out}.{_n[0]}")
signal.signal(signal.SIGUSR1, _dump)
sys.argv = ["examples.echo", *sys.argv[1:]]
runpy.run_module("examples.echo", run_name="__main__", alter_sys=True)
"""


def _snapshot(pid: int, path: Path, timeout: float = 60.0) -> tracemalloc.Snapshot:
    os.kill(pid, signal.SIGUSR1)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            return tracemalloc.Snapshot.load(str(path))
        time.sleep(0.1)
    raise TimeoutError(f"no tracemalloc snapshot at {path} after {timeout} s")


def _fd_count(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


def profile_memory(args: argparse.Namespace) -> None:
    venvs.ensure("client")
    out_dir = RESULTS / "profiles"
    out_dir.mkdir(parents=True, exist_ok=True)
    base = out_dir / f"tracemalloc-{args.server}"
    for old in out_dir.glob(f"{base.name}.*"):
        old.unlink()
    competitor = our_server(args.server, ["-c", _BOOTSTRAP, "--server", args.server])
    os.environ["BENCH_SNAPSHOT"] = str(base)
    os.environ["BENCH_TRACE_FRAMES"] = str(args.frames)
    server = ServerProcess(competitor, RESULTS / "logs" / f"memprofile-{args.server}.log")
    port = server.start()
    n = args.conns
    settings = Settings(1.0, 1.0, 1, 1, 1.0, 8, ("idle-1000",))
    warm = SCENARIOS["idle-200"]
    try:
        subprocess.run(
            client_command(competitor, warm, settings, port, server.pid), capture_output=True, timeout=120, check=True
        )
        time.sleep(1.0)
        fds0 = _fd_count(server.pid)
        before = _snapshot(server.pid, Path(f"{base}.1"))
        argv = client_command(competitor, SCENARIOS["idle-1000"], settings, port, server.pid)
        argv[argv.index("--conns") + 1] = str(n)
        client = subprocess.Popen([*argv, "--hold", "15"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        deadline = time.monotonic() + 120
        while _fd_count(server.pid) < fds0 + n and time.monotonic() < deadline and client.poll() is None:
            time.sleep(0.2)
        time.sleep(2.0)
        open_conns = _fd_count(server.pid) - fds0
        after = _snapshot(server.pid, Path(f"{base}.2"))
        out, _ = client.communicate(timeout=120)
    finally:
        server.stop()
    load = json.loads(out.strip().splitlines()[-1]) if out.strip() else {}
    stats = after.compare_to(before, "traceback")
    traced = sum(s.size_diff for s in stats)
    print(f"\n=== tracemalloc, {args.server}: {open_conns} connections open (of {n})")
    print(
        f"traced Python allocations: {traced / max(open_conns, 1):.0f} B/conn; "
        f"RSS growth measured by the client: {load.get('rss_per_conn_kib', float('nan')) * 1024:.0f} B/conn "
        "(RSS includes tracemalloc's own overhead)"
    )
    print("\n-- per allocation site (innermost frames first), bytes per connection")
    for stat in stats[: args.top]:
        if stat.size_diff <= 0:
            continue
        frames = [f"{_rel(f.filename)}:{f.lineno}" for f in reversed(stat.traceback)][: args.depth]
        per_conn = stat.size_diff / max(open_conns, 1)
        print(f"{per_conn:8.0f} B  {stat.count_diff / max(open_conns, 1):5.1f} blocks  " + " <- ".join(frames))
    by_file: collections.Counter[str] = collections.Counter()
    for stat in after.compare_to(before, "filename"):
        by_file[_rel(stat.traceback[0].filename)] += stat.size_diff
    print("\n-- per file, bytes per connection")
    for name, size in by_file.most_common(12):
        print(f"{size / max(open_conns, 1):8.0f} B  {name}")


def _rel(filename: str) -> str:
    for marker in ("site-packages/", "lib/python3.11/", str(ROOT) + "/"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return filename


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.bench profile", description=__doc__.splitlines()[0])
    parser.add_argument("--server", default="wsgiref", help="our server to profile (wsgiref, cherrypy, gevent)")
    parser.add_argument("--scenarios", nargs="+", default=["echo-16", "bulk-1m"], choices=sorted(SCENARIOS))
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of load measured")
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    parser.add_argument(
        "--all-threads", action="store_true", help="sample every non-idle thread, not only the one holding the GIL"
    )
    parser.add_argument("--blocking", action="store_true", help="pause the server at each sample (more overhead)")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--variant", help="profile a patched server (see python -m tools.bench --help)")
    parser.add_argument("--memory", action="store_true", help="tracemalloc per idle connection instead of CPU")
    parser.add_argument("--conns", type=int, default=1000, help="--memory: idle connections")
    parser.add_argument("--frames", type=int, default=8, help="--memory: traceback depth")
    parser.add_argument("--depth", type=int, default=4, help="--memory: frames printed per site")
    args = parser.parse_args(argv)
    _raise_nofile()
    if not (ROOT / "examples" / "_servers" / f"{args.server}.py").exists():
        print(f"bench profile: our {args.server} server is not available", file=sys.stderr)
        return 2
    if args.memory:
        profile_memory(args)
    else:
        profile_cpu(args)
    print(f"\n(bench dir: {BENCH}; loopback {HOST})")
    return 0
