"""Per-endpoint settings: limits, keepalive and negotiation policy.

Safe limits are on by default; every one can be changed or switched off
(``None``) per endpoint.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

__all__ = [
    "Authorize",
    "OriginPolicy",
    "SubprotocolSelector",
    "WebSocketOptions",
]

Environ = Mapping[str, Any]

#: ``authorize(environ)`` returns ``True``/``None`` to accept, ``False`` to
#: refuse with 403, or raises :class:`~ws4py_integrations.HandshakeRejected`.
Authorize = Callable[[Environ], "bool | None"]

#: ``select(offered, environ)`` returns one of ``offered`` or ``None``.
SubprotocolSelector = Callable[[Sequence[str], Environ], "str | None"]

#: ``"*"``, ``None`` (same origin), a list of exact strings and compiled
#: regular expressions, a single compiled regular expression, or a callable
#: ``check(origin, environ) -> bool``.
OriginPolicy = (
    str | re.Pattern[str] | Sequence["str | re.Pattern[str]"] | Callable[["str | None", Environ], bool] | None
)


@dataclass(frozen=True, slots=True)
class WebSocketOptions:
    """Settings of a WebSocket endpoint.

    Every keyword accepted by :class:`~ws4py_integrations.WebSocketWSGIApplication`
    is a field here.
    """

    #: Largest incoming message in bytes (after decompression); a larger one
    #: fails the connection with close code 1009. ``None`` means no limit.
    max_message_size: int | None = 2**20
    #: Seconds between keepalive pings; ``None`` disables them.
    ping_interval: float | None = 20.0
    #: Seconds a ping may wait for its pong before the connection is closed
    #: with 1011; ``None`` waits forever.
    ping_timeout: float | None = 20.0
    #: Seconds a partly received frame may wait for more bytes; a peer that
    #: stalls inside a frame longer than this is closed with 1008. ``None``
    #: waits forever.
    read_timeout: float | None = 60.0
    #: Seconds to wait for the closing handshake before dropping TCP.
    close_timeout: float = 10.0
    #: Bytes that may wait in a connection's outbound buffer. When a send finds
    #: more than this already waiting, the peer is too slow: the connection is
    #: closed with 1008. A single message larger than the limit is still sent
    #: when the buffer is below it. ``None`` means no limit.
    max_send_buffer: int | None = 16 * 2**20
    #: Messages received and not yet handled (``received_message`` has not
    #: returned) before the connection stops reading from its socket; reading
    #: resumes at a quarter of it. The peer then waits on TCP flow control
    #: instead of filling our memory. ``None`` means no limit.
    max_queue: int | None = 64
    #: Negotiate permessage-deflate (RFC 7692) when the client offers it.
    compression: bool = True
    #: Subprotocols in server preference order, or a selector callable.
    protocols: Sequence[str] | SubprotocolSelector | None = None
    #: Origin policy; the default (``None``) accepts requests without an
    #: ``Origin`` header and requests whose ``Origin`` is exactly the request's
    #: scheme, host and port (no userinfo, path or ``null``).
    origins: OriginPolicy = None
    #: Host names the ``Host`` header may name (any port): exact names or IP
    #: literals (IPv6 in brackets), ``".example.com"`` for a domain and its
    #: subdomains, ``"*"`` for any. Another host is refused with 403. ``None``:
    #: with the same-origin default only loopback names and IP literals are
    #: accepted (a DNS rebinding defence; list your public host names); with an
    #: explicit ``origins`` policy the host is not checked.
    allowed_hosts: Sequence[str] | None = None
    #: Addresses (``"127.0.0.1"``) and networks (``"10.0.0.0/8"``) of reverse
    #: proxies whose ``Forwarded`` (RFC 7239) or ``X-Forwarded-Proto`` /
    #: ``X-Forwarded-Host`` headers tell the public scheme and host: when
    #: ``REMOTE_ADDR`` is one of them, the same-origin check and
    #: ``allowed_hosts`` judge what the browser saw. From any other address
    #: those headers are ignored. ``None`` trusts no proxy.
    trusted_proxies: Sequence[str] | None = None
    #: Hook that sees the environ before the upgrade and may refuse it.
    authorize: Authorize | None = None
    #: Extra headers added to every 101 response.
    extra_headers: Sequence[tuple[str, str]] = field(default_factory=tuple)

    @classmethod
    def from_kwargs(cls, base: WebSocketOptions | None = None, **kwargs: Any) -> WebSocketOptions:
        """Build options from keyword arguments, rejecting unknown names clearly."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(kwargs) - known)
        if unknown:
            expected = ", ".join(sorted(known))
            raise TypeError(f"unknown WebSocket option(s): {', '.join(unknown)}; expected any of {expected}")
        values = {f.name: getattr(base, f.name) for f in fields(cls)} if base is not None else {}
        values.update(kwargs)
        options = cls(**values)
        options._validate()
        return options

    def _validate(self) -> None:
        for name in ("max_message_size", "max_send_buffer", "max_queue"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value <= 0):
                raise ValueError(f"{name} must be a positive int or None, not {value!r}")
        for name in ("ping_interval", "ping_timeout", "read_timeout"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"{name} must be positive or None, not {value!r}")
        if self.close_timeout <= 0:
            raise ValueError(f"close_timeout must be positive, not {self.close_timeout!r}")
        if self.allowed_hosts is not None:
            _validate_allowed_hosts(self.allowed_hosts)
        if self.trusted_proxies is not None:
            proxy_networks(self.trusted_proxies)


# A host name (letters, digits, "-", "_", dots between labels), an IPv4
# address, or an IPv6 address in brackets.
_NAME_RE = re.compile(r"[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*\.?")


def _validate_allowed_hosts(entries: Any) -> None:
    if isinstance(entries, (str, bytes)) or not isinstance(entries, Sequence):
        raise ValueError(f"allowed_hosts must be a list of host names or None, not {entries!r}")
    for entry in entries:
        if not isinstance(entry, str):
            raise ValueError(f"allowed_hosts entries must be strings, not {entry!r}")
        if entry == "*":
            continue
        if entry.startswith("*."):
            raise ValueError(f"allowed_hosts entry {entry!r}: write {entry[1:]!r} for a domain and its subdomains")
        name = entry.removeprefix(".")
        if name.startswith("[") and name.endswith("]") and not entry.startswith("."):
            try:
                ipaddress.IPv6Address(name[1:-1])
            except ValueError:
                raise ValueError(f"allowed_hosts entry {entry!r} is not an IPv6 address") from None
            continue
        if ":" in name:
            if _is_ipv6(name):
                raise ValueError(f"allowed_hosts entry {entry!r}: write IPv6 addresses in brackets, '[{name}]'")
            raise ValueError(f"allowed_hosts entry {entry!r}: give the host without a port (any port matches)")
        if not _NAME_RE.fullmatch(name):
            raise ValueError(f"allowed_hosts entry {entry!r} is not a host name, an IP address, '.domain' or '*'")


IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def proxy_networks(entries: Any) -> tuple[IPNetwork, ...]:
    """``trusted_proxies`` as networks; ``ValueError`` naming a malformed entry."""
    if isinstance(entries, (str, bytes)) or not isinstance(entries, Sequence):
        raise ValueError(f"trusted_proxies must be a list of addresses or networks or None, not {entries!r}")
    try:
        return _proxy_networks(tuple(entries))
    except TypeError:  # an unhashable entry
        raise ValueError(f"trusted_proxies entries must be strings, not {entries!r}") from None


@functools.lru_cache(maxsize=64)
def _proxy_networks(entries: tuple[Any, ...]) -> tuple[IPNetwork, ...]:
    # Cached: the options of an endpoint are checked on every handshake.
    networks: list[IPNetwork] = []
    for entry in entries:
        if not isinstance(entry, str):
            raise ValueError(f"trusted_proxies entries must be strings, not {entry!r}")
        if entry.strip() in ("*", "0.0.0.0/0", "::/0"):
            raise ValueError(
                f"trusted_proxies entry {entry!r} would trust every client's forwarded headers; "
                "list the proxies' addresses"
            )
        try:
            networks.append(ipaddress.ip_network(entry.strip().strip("[]"), strict=True))
        except ValueError as exc:
            raise ValueError(f"trusted_proxies entry {entry!r} is not an IP address or network ({exc})") from None
    return tuple(networks)


def _is_ipv6(value: str) -> bool:
    try:
        ipaddress.IPv6Address(value)
    except ValueError:
        return False
    return True
