"""A broker on Redis pub/sub: rooms that span processes and machines.

Install the ``redis`` extra (``pip install ".[redis]"`` from a checkout)::

    from ws4py_integrations import ThreadedManager
    from ws4py_integrations.redis_broker import RedisBroker

    manager = ThreadedManager(broker=RedisBroker.from_url("redis://localhost:6379/0"))

Every process built this way shares rooms: ``manager.broadcast(data, room)`` in
any of them reaches the room's members in all of them, and
``manager.broadcast(data)`` every connection of every process. A process
without WebSockets publishes too (a cron job, a request in another app)::

    with RedisBroker.from_url("redis://localhost:6379/0") as broker:
        broker.publish("news", "hello")

How it works
    A publish goes first to the members in this process (encoded once), then
    to Redis on the channel ``<prefix>room:<room>`` (``<prefix>all`` for a
    broadcast). Each attached broker runs a subscriber (a thread; a greenlet
    under gevent's monkey patching) on the pattern ``<prefix>*`` and hands
    what other processes published to its manager, which sends it to its
    members of that room. The payload carries a type byte (text stays text,
    binary stays binary) and the publishing broker's id, so a process skips
    its own messages (their local members already have them). ``exclude``
    names connections of the publishing process; it applies there.

Delivery guarantee: at most once
    Redis pub/sub keeps nothing. A message published while a process is
    disconnected from Redis (Redis restarting, a network cut) never reaches
    that process's members; nothing is replayed on reconnection. Messages
    published from one thread arrive in the order published; messages from
    different processes may interleave differently in different processes
    (each process sees its own publishes first). Use a store (a database,
    Redis streams) for what must not be lost, and rooms for live updates.

When Redis goes away
    The subscriber logs a warning, reconnects with exponential backoff
    (``reconnect_delay`` doubling up to ``max_reconnect_delay``), logs when it
    is back and resumes delivery. Meanwhile :meth:`RedisBroker.publish` still
    delivers to this process's members, then raises
    :class:`~ws4py_integrations.broker.BrokerUnavailable` (with
    ``raise_errors=False`` it logs an error instead, once per outage, and
    returns normally: choose that in handlers that should not fail, since an
    exception escaping a handler closes its connection with 1011).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import urllib.parse
import uuid
from collections.abc import Iterable
from types import TracebackType
from typing import TYPE_CHECKING, Any

from ._extras import missing_extra
from .broker import BrokerError, BrokerUnavailable

if TYPE_CHECKING:
    import redis

    from .manager.base import Manager
    from .websocket import SendData, WebSocket

__all__ = ["RedisBroker", "publish"]

logger = logging.getLogger("ws4py_integrations.redis_broker")

_TEXT = b"t"
_BINARY = b"b"
_ORIGIN_SIZE = 16
_HEADER = 1 + _ORIGIN_SIZE

DEFAULT_PREFIX = "ws4py:"


def _import_redis() -> Any:
    try:
        import redis
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise missing_extra("RedisBroker", "redis", exc) from exc
    return redis


def _redact(url: str) -> str:
    """``url`` without its password, for logs and errors."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rpartition("@")[2]
    user = parts.username or ""
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


def _materialize(data: SendData) -> str | bytes | list[str | bytes]:
    """``data`` in a form that can be read twice (an iterable may be a generator)."""
    if isinstance(data, str | bytes):
        return data
    if isinstance(data, bytearray | memoryview):
        return bytes(data)
    return list(data)


def encode_payload(origin: bytes, data: str | bytes | list[str | bytes]) -> bytes:
    """The wire form: a type byte, the origin id, the message (fragments joined)."""
    if isinstance(data, str):
        return _TEXT + origin + data.encode()
    if isinstance(data, bytes):
        return _BINARY + origin + data
    if not data:
        raise ValueError("cannot send an empty iterable as a fragmented message")
    if all(isinstance(part, str) for part in data):
        return _TEXT + origin + "".join(data).encode()  # type: ignore[arg-type]
    if all(isinstance(part, bytes | bytearray | memoryview) for part in data):
        return _BINARY + origin + b"".join(data)  # type: ignore[arg-type]
    raise TypeError("fragments of one message must all be str or all bytes")


def decode_payload(payload: bytes) -> tuple[bytes, str | bytes]:
    """``(origin, message)`` from the wire form; ``ValueError`` if malformed."""
    if len(payload) < _HEADER:
        raise ValueError("payload too short")
    kind, origin, body = payload[:1], payload[1:_HEADER], payload[_HEADER:]
    if kind == _TEXT:
        return origin, body.decode()
    if kind == _BINARY:
        return origin, body
    raise ValueError(f"unknown payload type {kind!r}")


class RedisBroker:
    """A :class:`~ws4py_integrations.broker.Broker` on Redis pub/sub.

    ``url`` is a redis-py URL (``redis://[[user]:password@]host[:port][/db]``,
    ``rediss://`` for TLS, ``unix:///path/to/redis.sock``). Channels are
    ``<prefix>room:<room>`` and ``<prefix>all``: processes share rooms when
    they share Redis and ``prefix`` (another prefix isolates another app on
    the same Redis; pub/sub ignores the database number).

    ``raise_errors``: whether :meth:`publish` raises
    :class:`~ws4py_integrations.broker.BrokerUnavailable` when Redis cannot
    take the message (``True``) or logs it (``False``). ``client_options`` go
    to ``redis.Redis.from_url`` (timeouts, TLS, ``health_check_interval``...).

    Thread-safe; under gevent, monkey-patch first (redis-py's sockets and the
    subscriber thread then cooperate with the hub).
    """

    def __init__(
        self,
        url: str = "redis://localhost:6379/0",
        *,
        prefix: str = DEFAULT_PREFIX,
        raise_errors: bool = True,
        reconnect_delay: float = 0.1,
        max_reconnect_delay: float = 10.0,
        **client_options: Any,
    ) -> None:
        redis_mod = _import_redis()
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        self.url = url
        self.prefix = prefix
        self.raise_errors = raise_errors
        self.reconnect_delay = reconnect_delay
        self.max_reconnect_delay = max_reconnect_delay
        options: dict[str, Any] = {
            "socket_connect_timeout": 2.0,
            "socket_timeout": 5.0,
            "socket_keepalive": True,
            # Notices a dead peer (a cut network) on an idle subscription.
            "health_check_interval": 15,
            # One transparent retry heals a connection Redis closed (a restart);
            # a Redis that is down fails the publish at once.
            "retry": Retry(NoBackoff(), 1),
        }
        options.update(client_options)
        self._redis_errors: tuple[type[BaseException], ...] = (redis_mod.RedisError, OSError)
        self._client: redis.Redis = redis_mod.Redis.from_url(url, **options)
        self._origin = uuid.uuid4().bytes
        self._room_prefix = f"{prefix}room:".encode()
        self._all_channel = f"{prefix}all".encode()
        self._pattern = _glob_escape(prefix) + "*"
        self._manager: Manager | None = None
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closing = threading.Event()
        self._closed = False
        self._subscribed = threading.Event()
        self._publish_failing = False
        self.dropped = 0
        """Messages :meth:`publish` could not hand to Redis (with ``raise_errors=False``)."""

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> RedisBroker:
        """A broker on the Redis at ``url`` (the keyword options of :class:`RedisBroker`)."""
        return cls(url, **kwargs)

    # -- Broker protocol -----------------------------------------------------------

    def attach(self, manager: Manager) -> None:
        """Deliver to ``manager``: starts the subscriber (in the calling process)."""
        with self._lock:
            if self._closed:
                raise RuntimeError("this broker is closed")
            if self._manager is not None:
                if self._manager is manager:
                    return
                raise RuntimeError("this broker is already attached to another manager")
            self._manager = manager
            self._thread = threading.Thread(target=self._subscribe_loop, name="ws4py-redis-subscriber", daemon=True)
            self._thread.start()

    def publish(self, room: str | None, data: SendData, exclude: Iterable[WebSocket] = ()) -> int:
        """Send ``data`` to the members of ``room`` (``None``: every connection) in every process.

        Delivers to this process's members first (but ``exclude``), then to
        Redis. Returns how many connections of this process got it (``0``
        without a manager: a publish-only process). Raises
        :class:`~ws4py_integrations.broker.BrokerUnavailable` if Redis cannot
        take it (unless ``raise_errors=False``): members in this process have
        it by then, members elsewhere do not.
        """
        message = _materialize(data)
        manager = self._manager
        count = manager.broadcast_local(message, room, exclude=exclude) if manager is not None else 0
        try:
            self._send(room, message)
        except BrokerError as exc:
            if self.raise_errors:
                raise
            with self._lock:
                self.dropped += 1
                first, self._publish_failing = not self._publish_failing, True
            if first:
                logger.error("publish to other processes failed, dropping messages until Redis is back: %s", exc)
            return count
        if self._publish_failing:
            with self._lock:
                recovered, self._publish_failing = self._publish_failing, False
            if recovered:
                logger.warning("publishing through Redis again (%d messages dropped so far)", self.dropped)
        return count

    def publish_remote(self, room: str | None, data: SendData) -> int:
        """Send ``data`` to other processes only; returns how many processes Redis handed it to.

        That is Redis' ``PUBLISH`` reply: subscribed brokers (this one included
        if attached), not connections. Always raises
        :class:`~ws4py_integrations.broker.BrokerUnavailable` on failure.
        """
        return self._send(room, _materialize(data))

    def close(self) -> None:
        """Stop the subscriber and close the Redis connections; idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            thread = self._thread
        self._closing.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join(5.0)
        with contextlib.suppress(*self._redis_errors):
            self._client.close()

    # -- state ------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """Whether the subscriber is subscribed (messages from other processes arrive)."""
        return self._subscribed.is_set()

    def wait_connected(self, timeout: float | None = None) -> bool:
        """Wait until the subscriber is subscribed; ``False`` on timeout."""
        return self._subscribed.wait(timeout)

    def channel(self, room: str | None) -> bytes:
        """The Redis channel of ``room`` (``None``: the broadcast channel)."""
        return self._all_channel if room is None else self._room_prefix + room.encode()

    def __enter__(self) -> RedisBroker:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "connected" if self.connected else "attached" if self._manager else "idle"
        return f"<{type(self).__name__} {_redact(self.url)} prefix={self.prefix!r} {state}>"

    # -- internals ----------------------------------------------------------------------

    def _send(self, room: str | None, message: str | bytes | list[str | bytes]) -> int:
        if self._closed:
            raise BrokerUnavailable("this broker is closed")
        channel = self.channel(room)
        payload = encode_payload(self._origin, message)
        try:
            return int(self._client.publish(channel, payload))
        except self._redis_errors as exc:
            raise BrokerUnavailable(
                f"cannot publish to {channel.decode(errors='replace')!r} on {_redact(self.url)}: {exc}"
            ) from exc

    def _subscribe_loop(self) -> None:
        delay = self.reconnect_delay
        lost_at: float | None = None
        attempts = 0
        while not self._closing.is_set():
            pubsub = self._client.pubsub()  # type: ignore[no-untyped-call,unused-ignore]
            try:
                pubsub.psubscribe(self._pattern)
                while not self._closing.is_set():
                    message = pubsub.get_message(timeout=0.5)
                    if message is None:
                        continue
                    kind = message["type"]
                    if kind == "pmessage":
                        self._dispatch(message["channel"], message["data"])
                    elif kind == "psubscribe":
                        self._subscribed.set()
                        delay = self.reconnect_delay
                        attempts = 0
                        if lost_at is not None:
                            logger.warning(
                                "Redis at %s is back after %.1fs: receiving from other processes again",
                                _redact(self.url),
                                time.monotonic() - lost_at,
                            )
                            lost_at = None
                        else:
                            logger.info("subscribed to %s on %s", self._pattern, _redact(self.url))
            except self._redis_errors as exc:
                if self._closing.is_set():
                    break
                self._subscribed.clear()
                attempts += 1
                if lost_at is None:
                    lost_at = time.monotonic()
                    logger.warning(
                        "lost Redis at %s (%s): messages from other processes are lost until it is back; "
                        "reconnecting in %.1fs",
                        _redact(self.url),
                        exc,
                        delay,
                    )
                else:
                    logger.info(
                        "Redis at %s still unreachable (attempt %d, %s); next try in %.1fs",
                        _redact(self.url),
                        attempts,
                        exc,
                        delay,
                    )
            except Exception:
                self._subscribed.clear()
                logger.exception("Redis subscriber failed; restarting it in %.1fs", delay)
            finally:
                with contextlib.suppress(*self._redis_errors):
                    pubsub.close()
            if self._closing.wait(delay):
                break
            delay = min(delay * 2, self.max_reconnect_delay)
        self._subscribed.clear()

    def _dispatch(self, channel: bytes, payload: bytes) -> None:
        manager = self._manager
        if manager is None:
            return
        room: str | None
        try:
            if channel == self._all_channel:
                room = None
            elif channel.startswith(self._room_prefix):
                room = channel[len(self._room_prefix) :].decode()
            else:
                return  # another channel under the prefix: not ours
            origin, message = decode_payload(payload)
        except ValueError as exc:  # UnicodeDecodeError included
            logger.warning("ignoring a malformed message on %r: %s", channel, exc)
            return
        if origin == self._origin:
            return  # published here: local members already have it
        try:
            manager.broadcast_local(message, room)
        except Exception:
            logger.exception("delivering a message from %r failed", channel)


def _glob_escape(text: str) -> str:
    """``text`` as a literal in a Redis glob pattern."""
    return "".join("\\" + ch if ch in "*?[]\\" else ch for ch in text)


def publish(url: str, room: str | None, data: SendData, *, prefix: str = DEFAULT_PREFIX) -> int:
    """Publish once to ``room`` (``None``: every connection) on the Redis at ``url``, from
    any process; returns how many subscribed processes Redis handed it to.

    Raises :class:`~ws4py_integrations.broker.BrokerUnavailable` if Redis
    cannot be reached. For repeated publishes keep a :class:`RedisBroker`.
    """
    with RedisBroker(url, prefix=prefix) as broker:
        return broker.publish_remote(room, data)
