"""Fuzzing the handshake and the frame feed: no exception escapes.

Hypothesis drives the targets of ``hardening.fuzz_targets`` here; atheris, when
installed, runs each for ``HARDENING_FUZZ_SECONDS`` (15 by default, both at
once). The long run is ``python -m tools.hardening.fuzz --seconds 600``.
"""

from __future__ import annotations

import os
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.examples import examples
from tools.hardening.fuzz import have_atheris, run_atheris
from tools.hardening.fuzz_targets import SEEDS, TARGETS, fast_path_target, frames_target, handshake_target

FUZZ_SECONDS = int(os.environ.get("HARDENING_FUZZ_SECONDS", "15"))


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_seeds(target: str) -> None:
    func = TARGETS[target]
    for seed in SEEDS[target]:
        func(seed)


@settings(max_examples=examples(1000), deadline=None)
@given(data=st.binary(max_size=512))
def test_handshake_target(data: bytes) -> None:
    handshake_target(data)


@settings(max_examples=examples(1000), deadline=None)
@given(data=st.binary(max_size=2048))
def test_frames_target(data: bytes) -> None:
    frames_target(data)


@settings(max_examples=examples(1000), deadline=None)
@given(data=st.binary(max_size=2048))
def test_fast_path_target(data: bytes) -> None:
    fast_path_target(data)


@pytest.mark.timeout(FUZZ_SECONDS + 300)
@pytest.mark.skipif(not have_atheris(), reason="atheris is not installed (pip install atheris)")
def test_atheris(tmp_path: os.PathLike[str]) -> None:
    results: dict[str, dict[str, object]] = {}

    def run(target: str) -> None:
        results[target] = run_atheris(target, FUZZ_SECONDS, os.fspath(tmp_path))

    threads = [threading.Thread(target=run, args=(target,)) for target in ("handshake", "frames", "fast-path")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(FUZZ_SECONDS + 240)
    for target in ("handshake", "frames", "fast-path"):
        result = results[target]
        print(f"atheris {target}: {result['executions']} executions in {result['seconds']} s")
        assert result["ok"], "\n".join(result["tail"])  # type: ignore[arg-type]
        assert result["executions"]
