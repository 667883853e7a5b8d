"""Fuzz the handshake and the frame parser.

    python -m tools.hardening.fuzz --target handshake --seconds 600
    python -m tools.hardening.fuzz --target frames --seconds 600 [--engine hypothesis]

With atheris installed (the default engine when it imports), this is a
coverage-guided libFuzzer run over ``hardening.fuzz_targets``; crashes are
written to ``--artifacts`` (default ``./fuzz-artifacts``). Without atheris, or
with ``--engine hypothesis``, hypothesis drives the same targets with random
bytes for the given time. The last line printed is a JSON summary.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time

__all__ = ["main", "run_atheris", "run_hypothesis"]


def have_atheris() -> bool:
    try:
        import atheris  # type: ignore[import-untyped]  # noqa: F401
    except ImportError:
        return False
    return True


def _atheris_child(target: str, argv: list[str]) -> None:
    """Runs inside the fuzzing process: instrument the library, then fuzz."""
    import atheris

    with atheris.instrument_imports(include=["ws4py_integrations", "websockets", "tools.hardening"]):
        from tools.hardening import fuzz_targets

    func = fuzz_targets.TARGETS[target]
    atheris.Setup([sys.argv[0], *argv], func)
    atheris.Fuzz()


def run_atheris(target: str, seconds: int, artifacts: str) -> dict[str, object]:
    """A libFuzzer run in a child process (libFuzzer exits the process when done)."""
    from tools.hardening.fuzz_targets import SEEDS

    os.makedirs(artifacts, exist_ok=True)
    with tempfile.TemporaryDirectory() as corpus:
        for index, seed in enumerate(SEEDS[target]):
            with open(os.path.join(corpus, f"seed{index}"), "wb") as f:
                f.write(seed)
        argv = [
            f"-max_total_time={seconds}",
            f"-artifact_prefix={os.path.abspath(artifacts)}/{target}-",
            "-max_len=4096",
            "-print_final_stats=1",
            "-timeout=10",
            "-rss_limit_mb=2048",
            corpus,
        ]
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        code = f"from tools.hardening.fuzz import _atheris_child; _atheris_child({target!r}, {argv!r})"
        started = time.monotonic()
        proc = subprocess.run(
            [sys.executable, "-c", code],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=seconds + 120,
            env={**os.environ, "PYTHONPATH": root},
        )
        elapsed = time.monotonic() - started
    output = proc.stderr + proc.stdout
    runs = re.search(r"stat::number_of_executed_units:\s*(\d+)", output) or re.search(r"Done (\d+) runs", output)
    crashed = proc.returncode != 0
    return {
        "engine": "atheris",
        "target": target,
        "executions": int(runs[1]) if runs else None,
        "seconds": round(elapsed, 1),
        "ok": not crashed,
        "returncode": proc.returncode,
        "tail": output.strip().splitlines()[-40:] if crashed else [],
    }


def run_hypothesis(target: str, seconds: float) -> dict[str, object]:
    """Random bytes through the same target for ``seconds`` (no coverage guidance)."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from tools.hardening.fuzz_targets import SEEDS, TARGETS

    func = TARGETS[target]
    for seed in SEEDS[target]:
        func(seed)
    count = 0
    deadline = time.monotonic() + seconds
    failure: list[str] = []

    def check(data: bytes) -> None:
        nonlocal count
        count += 1
        func(data)

    started = time.monotonic()
    # Bounded batches until the time is up.
    while time.monotonic() < deadline:
        batch = settings(max_examples=2000, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        try:
            batch(given(st.binary(max_size=2048))(check))()
        except Exception as exc:  # the falsifying example is in the message
            failure.append(f"{type(exc).__name__}: {exc}")
            break
    return {
        "engine": "hypothesis",
        "target": target,
        "executions": count,
        "seconds": round(time.monotonic() - started, 1),
        "ok": not failure,
        "tail": failure,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="fuzz the handshake and the frame parser")
    parser.add_argument("--target", choices=["handshake", "frames", "all"], default="all")
    parser.add_argument("--seconds", type=int, default=600, help="time per target")
    parser.add_argument("--engine", choices=["auto", "atheris", "hypothesis"], default="auto")
    parser.add_argument("--artifacts", default="fuzz-artifacts", help="where atheris writes crashing inputs")
    args = parser.parse_args(argv)
    engine = args.engine
    if engine == "auto":
        engine = "atheris" if have_atheris() else "hypothesis"
    targets = ["handshake", "frames"] if args.target == "all" else [args.target]
    ok = True
    for target in targets:
        if engine == "atheris":
            result = run_atheris(target, args.seconds, args.artifacts)
        else:
            result = run_hypothesis(target, args.seconds)
        for line in result.pop("tail", None) or []:  # type: ignore[attr-defined]
            print(line)
        print(json.dumps(result), flush=True)
        ok = ok and bool(result["ok"])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
