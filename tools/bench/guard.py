"""``python -m tools.bench guard``: a quick regression guard against websockets (part of ``make test``).

Echo, 32 B text at 16 connections, on our servers and on websockets' asyncio
server, pinned (server on one core, load client on the other), a fresh server
per measurement, rounds interleaved. It fails (exit 1) when a server of ours
reaches less than ``--margin`` times websockets' messages per second (ratio of
medians of this one run, never an absolute figure): a wide margin, so a shared
machine's noise does not trip it, while a real collapse does. A failed attempt
is measured again once (``--retries``); it fails only when every attempt does.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import report, venvs
from .run import (
    SCENARIOS,
    Settings,
    add_pinning_args,
    build_competitors,
    pinning_from,
    raise_nofile,
)
from .run import run as run_rounds

SCENARIO = "echo-16"
METRIC = "msgs_per_s"
REFERENCE = "websockets"
DEFAULT_MARGIN = 0.5


@dataclass(frozen=True)
class Verdict:
    ok: bool
    lines: list[str]
    ratios: dict[str, float | None]


def judge(results: dict[str, list[dict[str, Any]]], margin: float) -> Verdict:
    """Ours ÷ websockets (medians of ``METRIC``) for each of our servers in ``results``, against ``margin``."""
    ref = report.summary(results.get(REFERENCE, []), METRIC)
    ratios: dict[str, float | None] = {}
    lines: list[str] = []
    ok = True
    if ref is None or ref[0] <= 0:
        errors = sorted({r["error"] for r in results.get(REFERENCE, []) if "error" in r}) or ["no result"]
        return Verdict(False, [f"guard: FAIL: no figure for {REFERENCE} ({'; '.join(errors)})"], {})
    for name, runs in results.items():
        if name == REFERENCE:
            continue
        ours = report.summary(runs, METRIC)
        if ours is None:
            errors = sorted({r["error"] for r in runs if "error" in r}) or ["no result"]
            lines.append(f"guard: FAIL: {name}: no figure ({'; '.join(errors)})")
            ratios[name] = None
            ok = False
            continue
        ratio = ours[0] / ref[0]
        ratios[name] = ratio
        passed = ratio >= margin
        ok = ok and passed
        lines.append(
            f"guard: {'ok' if passed else 'FAIL'}: {name} {report.num(ours[0])} msg/s [{report.num(ours[1])}-"
            f"{report.num(ours[2])}] ÷ {REFERENCE} {report.num(ref[0])} msg/s [{report.num(ref[1])}-"
            f"{report.num(ref[2])}] = {ratio:.2f}x (must be >= {margin:g}x)"
        )
    if not ratios:
        return Verdict(False, ["guard: FAIL: no server of ours took part"], {})
    if not ok:
        lines.append(
            f"guard: FAIL: a server of ours fell below {margin:g}x websockets' asyncio server on {SCENARIO} "
            "(same machine, same run). Profile it: make profile SERVER=NAME"
        )
    return Verdict(ok, lines, ratios)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tools.bench guard", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--servers", nargs="+", default=["wsgiref", "gevent"], help="our servers (default wsgiref gevent)"
    )
    parser.add_argument(
        "--margin",
        type=float,
        default=DEFAULT_MARGIN,
        help=f"fail below this ratio of ours to websockets (default {DEFAULT_MARGIN:g})",
    )
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument("--duration", type=float, default=1.0, help="seconds measured per run (default 1)")
    parser.add_argument("--warmup", type=float, default=0.3, help="seconds of warm-up per run (default 0.3)")
    parser.add_argument(
        "--retries", type=int, default=1, help="measure again this many times after a failed attempt (default 1)"
    )
    add_pinning_args(parser)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.margin <= 0 or args.rounds < 1:
        print("guard: --margin must be > 0 and --rounds >= 1", file=sys.stderr)
        return 2
    t0 = time.monotonic()
    pin = pinning_from(args)
    raise_nofile()
    competitors = build_competitors(args.servers, [REFERENCE])
    for competitor in competitors:
        competitor.pin = pin
    for name in sorted({"client"} | {c.venv for c in competitors if c.venv}):
        venvs.ensure(name)
    settings = Settings(
        warmup=args.warmup,
        duration=args.duration,
        rounds=args.rounds,
        broadcasts=5,
        settle=0.5,
        concurrency=8,
        scenarios=(SCENARIO,),
    )
    print(
        f"guard: {SCENARIO} ({SCENARIOS[SCENARIO].title}), {args.rounds} interleaved round(s) of "
        f"{args.duration:g} s; {', '.join(c.name for c in competitors)}",
        flush=True,
    )
    for attempt in range(1 + max(0, args.retries)):
        if attempt:
            print(f"guard: below the margin; measuring again (attempt {attempt + 1})", flush=True)
        results = run_rounds(competitors, settings)[SCENARIO]
        verdict = judge(results, args.margin)
        for line in verdict.lines:
            print(line, flush=True)
        if verdict.ok:
            break
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps(
                {
                    "scenario": SCENARIO,
                    "margin": args.margin,
                    "attempts": attempt + 1,
                    "pinning": pin.as_json() if pin is not None else {"pinned": False},
                    "ratios": verdict.ratios,
                    "results": results,
                },
                indent=1,
            )
        )
    print(f"guard: {'passed' if verdict.ok else 'FAILED'} in {time.monotonic() - t0:.0f} s", flush=True)
    return 0 if verdict.ok else 1
