"""Hostile-client probes: memory and responsiveness under the attacks of the
security review, at its full sizes.

``python -m tools.hardening.probes --server NAME|all --probe NAME|all``

Each probe starts the echo example as users start it (``python -m
examples.echo --server NAME``, port 0; monkey-patched under gevent), attacks it
from 127.0.0.1 with a raw socket, samples the server's RSS by PID and times a
fresh client's echo round trips on ``/ws`` while the attack runs. It prints a
table (server x probe: RSS growth, RSS kept after drops, time, close code,
worst fresh-client round trip) and exits 1 if any bound below is exceeded.
``tests/test_hostile_memory.py`` runs the same probes at reduced sizes.

Probes (full sizes from the review):

- ``pings``: 2M pings, never reading the pongs -> 1008 before the send buffer
  grows past ``max_send_buffer``;
- ``fragments``: one message left open, 8M empty continuation frames -> 1009
  (each fragment costs 6 bytes toward ``max_message_size``);
- ``fragments-dropped``: open a message, 2M empty continuations (under the
  limit), drop TCP; 5 times -> nothing kept;
- ``unfinished-dropped``: 30 x (15 MiB unfinished message, then TCP drop) ->
  nothing kept, with no other traffic to wake the cycle collector;
- ``flood``: 3M one-byte messages, reading every echo -> RSS bounded by
  ``max_queue`` (reading pauses);
- ``broadcast``: 3 x 16 MiB to ``/broadcast`` with 20 deflate receivers that
  do not read -> one shared compressed copy, and other clients' echoes on time.

``--root DIR`` runs the server from another checkout (e.g. ``git worktree add
/tmp/old 28cfe05``) to compare before and after.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

from websockets.sync.client import connect

from tests.support.hostile import (
    OP_BINARY,
    OP_CONT,
    OP_PING,
    OP_TEXT,
    EchoProber,
    HostileSocket,
    RssSampler,
    masked_frame,
)
from tests.support.process import ServerProcess, echo_example

__all__ = ["PROBES", "SERVERS", "ProbeResult", "Sizes", "main", "run_probe"]

MiB = 2**20
SERVERS = ("wsgiref", "cherrypy", "gevent")

# -- the limits the echo example runs with (examples/echo/__init__.py) -------------
#: ``max_message_size`` the example sets (Autobahn's largest message).
ECHO_MAX_MESSAGE_SIZE = 16 * MiB
#: ``max_send_buffer`` the example sets.
ECHO_MAX_SEND_BUFFER = 64 * MiB
#: What each fragment costs toward ``max_message_size`` beyond its payload.
FRAGMENT_OVERHEAD = 6

# -- bounds (what a probe may cost the server; any size of attack) --------------
#: Interpreter and allocator churn, a worker thread or greenlet stack, socket
#: objects: what any probe may add on top of what the limits allow.
MEMORY_SLACK = 48 * MiB


def pings_growth(max_send_buffer: int) -> int:
    """Pongs queue in the send buffer until it exceeds ``max_send_buffer`` (1008)."""
    return max_send_buffer + MEMORY_SLACK


#: Empty fragments hold nothing; the message is refused (1009) long before
#: the parser's bookkeeping matters.
FRAGMENTS_GROWTH = MEMORY_SLACK
#: After the drops the connections' messages are freed at once: RSS is back
#: within this of its level before the probe, with no other traffic.
DROPPED_KEPT = 32 * MiB
#: Empty fragments hold nothing once dropped (the old parser kept ~10 bytes a
#: fragment until the cycle collector ran): allocator noise only.
FRAGMENTS_DROPPED_KEPT = 4 * MiB
#: Seconds RSS may take to come back after the last drop (the server notices
#: the reset, aborts, frees; no cycle collection is waited for).
SETTLE_SECONDS = 5.0
#: While reading is paused at ``max_queue`` (64) unhandled messages, one-byte
#: messages cannot pile up: nothing beyond the slack.
FLOOD_GROWTH = MEMORY_SLACK
#: One message being received (reader buffer and the assembled copy), one
#: plain and one compressed shared copy per message waiting in send buffers
#: (3 messages fit under the 64 MiB send limit), and the slack -- not a copy
#: per receiver.
BROADCAST_GROWTH = 2 * ECHO_MAX_MESSAGE_SIZE + 2 * 3 * ECHO_MAX_MESSAGE_SIZE + MEMORY_SLACK
#: A fresh client's echo round trip while any probe runs: a blocked loop or a
#: starved worker pool shows as seconds.
FRESH_RTT = 1.0
#: The same during the one-byte flood: reading pauses at ``max_queue``, but a
#: read already taken (256 KiB: ~37,000 one-byte frames) is parsed and queued
#: whole, and handling it takes ~0.7 s of the GIL on 2 cores; the fresh client
#: waits behind at most about one such read.
FLOOD_RTT = 2.0


@dataclass(frozen=True)
class Target:
    """A running server to attack: its process, the echo path, and the limits
    that endpoint runs with (the bounds derive from them)."""

    server: ServerProcess
    name: str
    path: str = "/ws"
    max_message_size: int = ECHO_MAX_MESSAGE_SIZE
    max_send_buffer: int = ECHO_MAX_SEND_BUFFER

    @property
    def pid(self) -> int:
        return self.server.pid

    def url(self) -> str:
        return self.server.url(self.path)

    def attacker(self, path: str | None = None, *, rcvbuf: int | None = None) -> HostileSocket:
        return HostileSocket(self.server.host, self.server.port, path or self.path, rcvbuf=rcvbuf)


@dataclass(frozen=True)
class Sizes:
    """How big each attack is (the defaults are the review's)."""

    pings: int = 2_000_000
    fragments: int = 8_000_000
    dropped_fragments: int = 2_000_000
    dropped_fragment_rounds: int = 5
    unfinished_size: int = 15 * MiB
    unfinished_rounds: int = 30
    flood: int = 3_000_000
    broadcast_receivers: int = 20
    broadcast_messages: int = 3
    broadcast_size: int = 16 * MiB
    #: Upper bound on any one wait of a probe.
    timeout: float = 300.0


#: ``--quick``: every probe still past its limit on the echo example, in about a
#: minute per server (the fragments probe needs 2.8M frames to reach 16 MiB).
QUICK = Sizes(
    pings=600_000,
    fragments=2_900_000,
    dropped_fragments=200_000,
    dropped_fragment_rounds=3,
    unfinished_rounds=5,
    flood=200_000,
    broadcast_messages=2,
    timeout=60.0,
)


@dataclass
class ProbeResult:
    """What one probe measured, and which bounds it exceeded."""

    server: str
    probe: str
    growth: int = 0
    kept: int | None = None
    seconds: float = 0.0
    close_code: int | None = None
    rtt: float | None = None
    failures: list[str] = field(default_factory=list)

    def require(self, ok: bool, message: str) -> None:
        if not ok:
            self.failures.append(message)

    def row(self) -> str:
        kept = "-" if self.kept is None else f"{self.kept / MiB:.0f}"
        rtt = "-" if self.rtt is None else f"{self.rtt:.2f}"
        code = "-" if self.close_code is None else str(self.close_code)
        verdict = "ok" if not self.failures else "FAIL: " + "; ".join(self.failures)
        return (
            f"{self.server:<9} {self.probe:<19} {self.growth / MiB:>8.0f} {kept:>6} "
            f"{self.seconds:>7.1f} {code:>5} {rtt:>7}  {verdict}"
        )


HEADER = f"{'server':<9} {'probe':<19} {'growth':>8} {'kept':>6} {'seconds':>7} {'close':>5} {'rtt max':>7}  verdict"
UNITS = f"{'':<9} {'':<19} {'MiB':>8} {'MiB':>6} {'s':>7} {'':>5} {'s':>7}"

# The pinger's receive buffer: pongs must pile up in the server, not in our kernel.
_SMALL_RCVBUF = 64 * 1024
_BATCH = 8192  # frames written per sendall: few syscalls, bounded memory


def _send_repeated(sock: HostileSocket, frame: bytes, count: int, deadline: float) -> bool:
    """Write ``frame`` ``count`` times; ``False`` if the server dropped us first."""
    batch = frame * _BATCH
    sent = 0
    try:
        while sent < count and time.monotonic() < deadline:
            n = min(_BATCH, count - sent)
            sock.send(batch if n == _BATCH else frame * n)
            sent += n
    except OSError:
        return False
    return True


def probe_pings(target: Target, sizes: Sizes) -> ProbeResult:
    """Pings never read: their pongs count toward ``max_send_buffer`` (1008)."""
    result = ProbeResult(target.name, "pings")
    deadline = time.monotonic() + sizes.timeout
    ping = masked_frame(OP_PING, b"p" * 125)  # the largest control frame: most pong bytes per ping
    with RssSampler(target.pid) as rss, EchoProber(target.url()) as prober:
        start = time.monotonic()
        with target.attacker(rcvbuf=_SMALL_RCVBUF) as attacker:
            _send_repeated(attacker, ping, sizes.pings, deadline)
            result.close_code, _ = attacker.read_close(max(1.0, deadline - time.monotonic()))
        result.seconds = time.monotonic() - start
    _finish(result, rss, prober)
    bound = pings_growth(target.max_send_buffer)
    result.require(result.growth <= bound, f"RSS grew {result.growth / MiB:.0f} MiB > {bound // MiB}")
    result.require(result.close_code == 1008, f"close code {result.close_code}, expected 1008")
    return result


def probe_fragments(target: Target, sizes: Sizes) -> ProbeResult:
    """One message left open, empty continuations: refused with 1009."""
    result = ProbeResult(target.name, "fragments")
    deadline = time.monotonic() + sizes.timeout
    with RssSampler(target.pid) as rss, EchoProber(target.url()) as prober:
        start = time.monotonic()
        with target.attacker() as attacker:
            attacker.send(masked_frame(OP_TEXT, b"", fin=False))
            _send_repeated(attacker, masked_frame(OP_CONT, b"", fin=False), sizes.fragments, deadline)
            result.close_code, _ = attacker.read_close(max(1.0, deadline - time.monotonic()))
        result.seconds = time.monotonic() - start
    _finish(result, rss, prober)
    result.require(
        result.growth <= FRAGMENTS_GROWTH, f"RSS grew {result.growth / MiB:.0f} MiB > {FRAGMENTS_GROWTH // MiB}"
    )
    result.require(result.close_code == 1009, f"close code {result.close_code}, expected 1009")
    return result


def _dropped(
    target: Target, probe: str, rounds: int, attack: Callable[[HostileSocket], None], bound: int
) -> ProbeResult:
    """``rounds`` times: connect, ``attack``, drop TCP; then RSS must come back within ``bound``
    with no other traffic (nothing may wait for the cycle collector)."""
    result = ProbeResult(target.name, probe)
    with RssSampler(target.pid) as rss:
        start = time.monotonic()
        for _ in range(rounds):
            attacker = target.attacker()
            try:
                attack(attacker)
            finally:
                attacker.drop()
        result.seconds = time.monotonic() - start
        result.kept = rss.settle(bound, SETTLE_SECONDS)
    result.growth = rss.growth
    result.require(
        result.kept <= bound,
        f"{result.kept / MiB:.0f} MiB kept {SETTLE_SECONDS:.0f}s after the drops > {bound // MiB}",
    )
    return result


def probe_fragments_dropped(target: Target, sizes: Sizes) -> ProbeResult:
    """Empty continuations under the limit, then TCP dropped, several times."""
    # Under the limit: the message stays open until the drop.
    count = min(sizes.dropped_fragments, target.max_message_size // FRAGMENT_OVERHEAD - 1)

    def attack(sock: HostileSocket) -> None:
        sock.send(masked_frame(OP_TEXT, b"", fin=False))
        _send_repeated(sock, masked_frame(OP_CONT, b"", fin=False), count, time.monotonic() + sizes.timeout)
        _wait_read(sock)

    return _dropped(target, "fragments-dropped", sizes.dropped_fragment_rounds, attack, FRAGMENTS_DROPPED_KEPT)


def probe_unfinished_dropped(target: Target, sizes: Sizes) -> ProbeResult:
    """A large message never finished (whole fragments, then part of one), then TCP dropped."""
    piece = os.urandom(MiB)
    # Whole 1 MiB fragments, then half of a 2 MiB one: under the size limit.
    whole = max(1, min(sizes.unfinished_size, target.max_message_size - 2 * MiB) // MiB - 1)

    def attack(sock: HostileSocket) -> None:
        sock.send(masked_frame(OP_BINARY, piece, fin=False))
        for _ in range(whole - 1):
            sock.send(masked_frame(OP_CONT, piece, fin=False))
        _wait_read(sock)
        # Half of a 2 MiB fragment: the rest never comes (the reader holds it).
        sock.send(masked_frame(OP_CONT, piece * 2, fin=False)[: 14 + MiB])

    return _dropped(target, "unfinished-dropped", sizes.unfinished_rounds, attack, DROPPED_KEPT)


def _wait_read(sock: HostileSocket) -> None:
    """Wait until the server has parsed what we sent: an attack the server has
    not seen yet when RSS is measured proves nothing."""
    with contextlib.suppress(OSError):
        # A ping's pong comes back once everything before it was parsed.
        sock.send(masked_frame(OP_PING, b"sync"))
        sock.sock.settimeout(30.0)
        received = b""
        while b"sync" not in received and len(received) < 4096:
            chunk = sock.sock.recv(4096)
            if not chunk:
                return
            received += chunk


def probe_flood(target: Target, sizes: Sizes) -> ProbeResult:
    """One-byte messages as fast as TCP takes them, reading every echo."""
    result = ProbeResult(target.name, "flood")
    deadline = time.monotonic() + sizes.timeout
    expected = 3 * sizes.flood  # each echo: a 2-byte header and the byte
    with RssSampler(target.pid) as rss, EchoProber(target.url()) as prober:
        start = time.monotonic()
        with target.attacker() as attacker:
            writer = threading.Thread(
                target=_send_repeated,
                args=(attacker, masked_frame(OP_TEXT, b"x"), sizes.flood, deadline),
                name="flood-writer",
                daemon=True,
            )
            writer.start()
            received = len(attacker._rest)
            attacker.sock.settimeout(10.0)
            with contextlib.suppress(OSError):
                while received < expected and time.monotonic() < deadline:
                    chunk = attacker.sock.recv(1 << 20)
                    if not chunk:
                        break
                    received += len(chunk)
            writer.join(max(1.0, deadline - time.monotonic()))
        result.seconds = time.monotonic() - start
    _finish(result, rss, prober, FLOOD_RTT)
    result.require(received >= expected, f"{received // 3} of {sizes.flood} echoes came back")
    result.require(result.growth <= FLOOD_GROWTH, f"RSS grew {result.growth / MiB:.0f} MiB > {FLOOD_GROWTH // MiB}")
    return result


def probe_broadcast(target: Target, sizes: Sizes) -> ProbeResult:
    """Large messages to ``/broadcast``, deflate receivers that never read."""
    result = ProbeResult(target.name, "broadcast")
    url = target.server.url("/broadcast")
    payloads = [os.urandom(sizes.broadcast_size) for _ in range(sizes.broadcast_messages)]
    with contextlib.ExitStack() as stack:
        # Never read by the test; websockets' own reader stops after one
        # message (max_queue=1), so the rest wait in the server's send buffers.
        for _ in range(sizes.broadcast_receivers):
            stack.enter_context(
                connect(url, compression="deflate", max_size=None, max_queue=1, open_timeout=10, close_timeout=1)
            )
        # A deflate receiver that reads: it tells when the broadcast is through.
        witness = stack.enter_context(
            connect(url, compression="deflate", max_size=None, open_timeout=10, close_timeout=1)
        )
        attacker = stack.enter_context(target.attacker("/broadcast"))
        rss = stack.enter_context(RssSampler(target.pid))
        prober = stack.enter_context(EchoProber(target.url()))
        start = time.monotonic()
        frames = [masked_frame(OP_BINARY, payload) for payload in payloads]
        for frame in frames:
            attacker.send(frame)
        got = 0
        with contextlib.suppress(TimeoutError):
            while got < len(payloads):
                message = witness.recv(timeout=max(0.1, start + sizes.timeout - time.monotonic()))
                if message != payloads[got]:
                    raise AssertionError(f"broadcast {got} arrived altered ({len(message)} bytes)")
                got += 1
        result.seconds = time.monotonic() - start
        # Exit the prober and the sampler before the receivers close.
        prober.__exit__(None, None, None)
        rss.__exit__(None, None, None)
        _finish(result, rss, prober)
    result.require(got == len(payloads), f"the witness got {got} of {len(payloads)} broadcasts")
    result.require(
        result.growth <= BROADCAST_GROWTH, f"RSS grew {result.growth / MiB:.0f} MiB > {BROADCAST_GROWTH // MiB}"
    )
    return result


def _finish(result: ProbeResult, rss: RssSampler, prober: EchoProber, rtt_bound: float = FRESH_RTT) -> None:
    result.growth = rss.growth
    result.rtt = prober.worst
    result.require(prober.error is None, f"fresh client failed: {prober.error!r}")
    result.require(bool(prober.rtts), "fresh client got no echo")
    result.require(result.rtt <= rtt_bound, f"fresh client's echo took {result.rtt:.2f}s > {rtt_bound}s")


PROBES: dict[str, Callable[[Target, Sizes], ProbeResult]] = {
    "pings": probe_pings,
    "fragments": probe_fragments,
    "fragments-dropped": probe_fragments_dropped,
    "unfinished-dropped": probe_unfinished_dropped,
    "flood": probe_flood,
    "broadcast": probe_broadcast,
}


@contextlib.contextmanager
def echo_server(name: str, log_path: Path, root: Path | None = None) -> Iterator[ServerProcess]:
    """The echo example on server ``name`` (from checkout ``root`` if given)."""
    server = echo_example(name, log_path=log_path, log_level="WARNING")
    if root is not None:
        # `python -m` imports from the working directory first; exec keeps the PID.
        command = " ".join(server.command[1:])
        server.command = ["/bin/sh", "-c", f"cd {root} && exec {sys.executable} {command}"]
    with server:
        yield server


def run_probe(name: str, probe: str, sizes: Sizes, log_dir: Path, root: Path | None = None) -> ProbeResult:
    """One probe against a fresh echo example on server ``name``."""
    with echo_server(name, log_dir / f"{name}-{probe}.log", root) as server:
        return PROBES[probe](Target(server, name), sizes)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.hardening.probes", description=__doc__.split("\n\n")[0])
    parser.add_argument("--server", default="all", choices=[*SERVERS, "all"])
    parser.add_argument("--probe", default="all", choices=[*PROBES, "all"])
    parser.add_argument("--root", type=Path, help="run the server from this checkout (before/after comparisons)")
    parser.add_argument("--quick", action="store_true", help="reduced sizes, each still past its limit")
    parser.add_argument("--timeout", type=float, help="upper bound on each wait (s)")
    args = parser.parse_args(argv)
    servers = SERVERS if args.server == "all" else (args.server,)
    probes = list(PROBES) if args.probe == "all" else [args.probe]
    sizes = QUICK if args.quick else Sizes()
    if args.timeout is not None:
        sizes = replace(sizes, timeout=args.timeout)
    failed = False
    print(HEADER, UNITS, sep="\n", flush=True)
    with tempfile.TemporaryDirectory(prefix="probes-") as logs:
        for name in servers:
            for probe in probes:
                try:
                    result = run_probe(name, probe, sizes, Path(logs), args.root)
                except Exception as exc:  # one broken probe must not hide the others' figures
                    result = ProbeResult(name, probe, failures=[f"{type(exc).__name__}: {exc}"])
                failed = failed or bool(result.failures)
                print(result.row(), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
