"""Hostile clients cannot take the server's memory, nor its time from others.

The probes of the security review at reduced sizes, on every server, each
still well past the limit it tests (``python -m tools.hardening.probes`` runs
the full sizes). The attacker is a raw socket; the server's RSS is sampled by
PID; a fresh client (websockets' sync client) times echo round trips while the
attack runs. Targets: the echo example as users start it (monkey-patched under
gevent), and, for the two probes whose counts scale with the limits, the test
app's ``/echo``, which runs the library defaults (1 MiB messages, 16 MiB send
buffer), so those probes pass their limits with 200,000 frames.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.process import app_server
from tests.support.servers import available
from tools.hardening import probes
from tools.hardening.probes import MiB, ProbeResult, Sizes, Target
from ws4py_integrations import WebSocketOptions

SERVERS = [name for name in ("wsgiref", "cherrypy", "gevent") if name in available()]
#: The library defaults the test app's ``/echo`` runs with.
DEFAULT_MAX_MESSAGE_SIZE = int(WebSocketOptions().max_message_size or 0)
DEFAULT_MAX_SEND_BUFFER = int(WebSocketOptions().max_send_buffer or 0)

# -- sizes: each past its limit, small enough for ~2 minutes on 2 cores -----------
#: 200,000 pongs of 127 bytes are 24 MiB: past the default 16 MiB send buffer
#: even after the kernel's buffers (the attacker's is fixed at 64 KiB) took theirs.
PINGS = 200_000
#: 200,000 empty fragments cost 1.2 MB toward the default 1 MiB limit (6 bytes each).
FRAGMENTS = 200_000
#: Empty fragments under the example's 16 MiB limit, then a drop, 3 times.
DROPPED_FRAGMENTS, DROPPED_FRAGMENT_ROUNDS = 200_000, 3
#: 5 x 15 MiB unfinished then dropped: 75 MiB, if any of it stayed, shows.
UNFINISHED_SIZE, UNFINISHED_ROUNDS = 15 * MiB, 5
#: 200,000 one-byte messages read back: at the old ~230 bytes a message queued
#: (684 MiB for 3M on gevent) that is ~45 MiB, nearly the bound.
FLOOD = 200_000
#: Two 16 MiB messages (the example's limit) to 20 deflate receivers that take
#: the first and then stop reading: a compressed copy of the second each would
#: be 320 MiB waiting in send buffers.
BROADCAST_RECEIVERS, BROADCAST_MESSAGES, BROADCAST_SIZE = 20, 2, 16 * MiB
#: Upper bound on every wait of a probe.
TIMEOUT = 60.0

SIZES = Sizes(
    pings=PINGS,
    fragments=FRAGMENTS,
    dropped_fragments=DROPPED_FRAGMENTS,
    dropped_fragment_rounds=DROPPED_FRAGMENT_ROUNDS,
    unfinished_size=UNFINISHED_SIZE,
    unfinished_rounds=UNFINISHED_ROUNDS,
    flood=FLOOD,
    broadcast_receivers=BROADCAST_RECEIVERS,
    broadcast_messages=BROADCAST_MESSAGES,
    broadcast_size=BROADCAST_SIZE,
    timeout=TIMEOUT,
)

# -- bounds (the same the full-size command checks; see tools/hardening/probes.py) --
#: Pongs wait in the send buffer until it passes max_send_buffer, then 1008.
PINGS_GROWTH = probes.pings_growth(DEFAULT_MAX_SEND_BUFFER)
#: Empty fragments hold nothing; the message is refused with 1009.
FRAGMENTS_GROWTH = probes.FRAGMENTS_GROWTH
#: RSS back within this of where it was, SETTLE_SECONDS after the last drop.
DROPPED_KEPT = probes.DROPPED_KEPT
#: The same for empty fragments, which hold nothing: allocator noise only.
FRAGMENTS_DROPPED_KEPT = probes.FRAGMENTS_DROPPED_KEPT
#: Reading pauses at max_queue unhandled messages: the flood queues nothing.
FLOOD_GROWTH = probes.FLOOD_GROWTH
#: Shared copies (one plain, one compressed per message), not one per receiver.
BROADCAST_GROWTH = probes.BROADCAST_GROWTH
#: A fresh client's echo round trip while any attack runs.
FRESH_RTT = probes.FRESH_RTT
#: The same during the flood: one 256 KiB read of one-byte frames is queued whole.
FLOOD_RTT = probes.FLOOD_RTT

pytestmark = [pytest.mark.parametrize("server_name", SERVERS), pytest.mark.timeout(150)]


@pytest.fixture
def example(server_name: str, tmp_path: Path) -> Iterator[Target]:
    """The echo example on ``server_name``, as users start it."""
    with probes.echo_server(server_name, tmp_path / "server.log") as server:
        yield Target(server, server_name)


@pytest.fixture
def defaults(server_name: str, tmp_path: Path) -> Iterator[Target]:
    """The test app's ``/echo`` (library defaults) on ``server_name``."""
    with app_server(server_name, log_path=tmp_path / "server.log", log_level="WARNING") as server:
        yield Target(
            server,
            server_name,
            path="/echo",
            max_message_size=DEFAULT_MAX_MESSAGE_SIZE,
            max_send_buffer=DEFAULT_MAX_SEND_BUFFER,
        )


def check(result: ProbeResult) -> ProbeResult:
    print(probes.HEADER, result.row(), sep="\n")  # the figures, in the -s / failure output
    assert not result.failures, result.row()
    return result


def test_pings_never_read_close_1008(defaults: Target) -> None:
    result = check(probes.probe_pings(defaults, SIZES))
    assert result.close_code == 1008
    assert result.growth <= PINGS_GROWTH
    assert result.rtt is not None and result.rtt <= FRESH_RTT


def test_empty_fragments_close_1009(defaults: Target) -> None:
    result = check(probes.probe_fragments(defaults, SIZES))
    assert result.close_code == 1009
    assert result.growth <= FRAGMENTS_GROWTH
    assert result.rtt is not None and result.rtt <= FRESH_RTT


def test_fragments_dropped_keep_nothing(example: Target) -> None:
    result = check(probes.probe_fragments_dropped(example, SIZES))
    assert result.kept is not None and result.kept <= FRAGMENTS_DROPPED_KEPT


def test_unfinished_messages_dropped_keep_nothing(example: Target) -> None:
    result = check(probes.probe_unfinished_dropped(example, SIZES))
    assert result.kept is not None and result.kept <= DROPPED_KEPT


def test_one_byte_flood_is_paced(example: Target) -> None:
    result = check(probes.probe_flood(example, SIZES))
    assert result.growth <= FLOOD_GROWTH
    assert result.rtt is not None and result.rtt <= FLOOD_RTT


def test_large_broadcast_to_deflate_receivers(example: Target) -> None:
    result = check(probes.probe_broadcast(example, SIZES))
    assert result.growth <= BROADCAST_GROWTH
    assert result.rtt is not None and result.rtt <= FRESH_RTT
