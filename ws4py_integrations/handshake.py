"""The opening handshake, from a WSGI environ (RFC 6455 section 4.2). No I/O.

:func:`negotiate` validates the request and returns either an :class:`Accept`
(the 101 response and what was negotiated) or a :class:`Reject` (an HTTP
status with a one-line reason). It never raises for anything a client sends.
"""

from __future__ import annotations

import base64
import binascii
import functools
import ipaddress
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from websockets.exceptions import InvalidHandshake, NegotiationError
from websockets.extensions.base import Extension, ServerExtensionFactory
from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory
from websockets.headers import build_extension, parse_extension, parse_subprotocol
from websockets.typing import ExtensionHeader
from websockets.utils import accept_key

from .exceptions import HandshakeRejected
from .options import WebSocketOptions, proxy_networks

__all__ = ["Accept", "Reject", "is_upgrade_request", "negotiate"]

logger = logging.getLogger("ws4py_integrations.handshake")

_DEFAULT_PORTS = {"http": 80, "ws": 80, "https": 443, "wss": 443}
# websockets' defaults (12-bit windows, memLevel 5), plus server_no_context_takeover,
# which RFC 7692 section 7.1.1.1 lets a server add to any offer: each message
# is compressed on its own, so an idle connection keeps no compressor (about
# 32 KiB less each) and a broadcast is compressed once for all receivers with
# the same window. The factory holds settings only, so connections share it.
_DEFLATE: Sequence[ServerExtensionFactory] = (
    ServerPerMessageDeflateFactory(
        server_no_context_takeover=True,
        server_max_window_bits=12,
        client_max_window_bits=12,
        compress_settings={"memLevel": 5},
    ),
)


@dataclass(frozen=True, slots=True)
class Accept:
    """A valid handshake: the 101 to send and what was negotiated.

    ``extensions`` are the negotiated extension objects (they hold the
    per-connection compression state), in the order they apply.
    """

    headers: list[tuple[str, str]]
    subprotocol: str | None
    extensions: list[Extension]

    @property
    def response(self) -> bytes:
        """The complete 101 response head (section 4.2.2), with no body headers."""
        lines = ["HTTP/1.1 101 Switching Protocols"]
        lines.extend(f"{name}: {value}" for name, value in self.headers)
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


@dataclass(frozen=True, slots=True)
class Reject:
    """A refused handshake: an HTTP status and a one-line reason."""

    status: int
    reason: str
    headers: list[tuple[str, str]] = field(default_factory=list)

    @property
    def status_line(self) -> str:
        """The WSGI status string, for example ``"400 Bad Request"``."""
        try:
            phrase = HTTPStatus(self.status).phrase
        except ValueError:
            phrase = "Error"
        return f"{self.status} {phrase}"

    @property
    def body(self) -> bytes:
        """The one-line plain-text body."""
        return (self.reason + "\n").encode("utf-8")

    @property
    def response(self) -> bytes:
        """The complete HTTP response, for a connection already taken from its server."""
        head = [f"HTTP/1.1 {self.status_line}", *(f"{n}: {v}" for n, v in self.wsgi_headers()), "Connection: close"]
        return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + self.body

    def wsgi_headers(self) -> list[tuple[str, str]]:
        """Headers for ``start_response``: the body's type and length, then extras."""
        return [
            ("Content-Type", "text/plain; charset=utf-8"),
            ("Content-Length", str(len(self.body))),
            *self.headers,
        ]


def _tokens(value: str | None) -> list[str]:
    return [token.strip().lower() for token in (value or "").split(",") if token.strip()]


def _has_token(value: str | None, token: str) -> bool:
    """Whether the comma-separated ``value`` lists ``token`` (lowercase), in any case."""
    if value is None:
        return False
    # The usual value is the token alone: no list to build.
    return value.lower() == token or token in _tokens(value)


def is_upgrade_request(environ: Mapping[str, Any]) -> bool:
    """Whether the request asks for a WebSocket upgrade (``Upgrade: websocket``)."""
    return _has_token(environ.get("HTTP_UPGRADE"), "websocket")


# A Host value: a bracketed IPv6 literal (with an optional zone) or a
# registered name / IPv4 address, then an optional port. Anything else (a
# userinfo, a path, spaces) matches no host.
_HOST_RE = re.compile(r"(\[[0-9A-Fa-f:.]+(?:%[A-Za-z0-9._~-]+)?\]|[A-Za-z0-9._~-]+)(?::([0-9]{0,5}))?")
# A serialized origin (RFC 6454 6.1): scheme "://" host [":" port], nothing more.
_ORIGIN_RE = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://([^/?#@\\\s]+)")
# What no single Host or Origin field contains, but a server that merged two
# fields (", ") or unfolded a continuation line leaves in the environ.
_MERGED_RE = re.compile(r"[,\s\x00-\x1f\x7f]")
_LOOPBACK_NAMES = ("localhost",)


def _normal_host(host: str) -> str | None:
    """``host`` (no port) lowercased, IP literals in canonical form; ``None`` if malformed."""
    host = host.lower()
    if host.startswith("["):
        try:
            return f"[{ipaddress.IPv6Address(host[1:-1])}]"
        except ValueError:
            return None
    host = host.removesuffix(".")  # the fully qualified form names the same host
    if not host or host.startswith(".") or ".." in host:
        return None
    try:
        return str(ipaddress.IPv4Address(host))
    except ValueError:
        return host


def _split_host(value: str) -> tuple[str, int | None] | None:
    """A Host header (or an origin's authority) as ``(normal host, port)``; ``None`` if malformed."""
    # Every handshake parses the same few values (IP literal parsing was most of
    # negotiate's time): cached, for values no longer than a host name and port
    # can be, so that hostile requests cannot make the cache hold much.
    if len(value) <= _CACHED_LENGTH:
        return _split_host_cached(value)
    return _parse_host(value)


#: The longest value the host caches keep: a 253-character name, a port, brackets.
_CACHED_LENGTH = 264


def _parse_host(value: str) -> tuple[str, int | None] | None:
    """:func:`_split_host`, uncached."""
    match = _HOST_RE.fullmatch(value)
    if match is None:
        return None
    host = _normal_host(match[1])
    port = int(match[2]) if match[2] else None
    if host is None or (port is not None and port > 65535):
        return None
    return host, port


_split_host_cached = functools.lru_cache(maxsize=256)(_parse_host)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def _trusted_without_allowed_hosts(host: str) -> bool:
    """Loopback names and IP literals: a DNS rebinding attack cannot produce them."""
    if len(host) <= _CACHED_LENGTH:
        return _trusted_cached(host)
    return _is_trusted(host)


def _is_trusted(host: str) -> bool:
    return _is_ip(host) or host in _LOOPBACK_NAMES or host.endswith(".localhost")


_trusted_cached = functools.lru_cache(maxsize=256)(_is_trusted)


def _host_allowed(host: str | None, allowed: Sequence[str]) -> bool:
    if isinstance(allowed, str):  # a lone string given to the constructor directly
        allowed = (allowed,)
    for entry in allowed:
        if entry == "*":
            return True
        if host is None or not isinstance(entry, str) or not entry:
            continue
        if entry.startswith("."):
            domain = _normal_host(entry[1:])
            if domain is not None and (host == domain or host.endswith("." + domain)):
                return True
        elif _normal_host(entry) == host:
            return True
    return False


def _check_host(environ: Mapping[str, Any], options: WebSocketOptions) -> Reject | None:
    """The Host policy: ``allowed_hosts``, or loopback and IP literals under the same-origin default."""
    if options.allowed_hosts is None and options.origins is not None:
        return None  # an explicit origin policy already pins who may connect
    value = str(environ.get("HTTP_HOST", ""))
    parsed = _split_host(value)
    if options.allowed_hosts is not None:
        if not _host_allowed(parsed[0] if parsed else None, options.allowed_hosts):
            return Reject(403, f"Host {value[:100]!r} is not allowed (allowed_hosts)")
        return None
    if parsed is None or not _trusted_without_allowed_hosts(parsed[0]):
        return Reject(
            403,
            f"Host {value[:100]!r} is not allowed: without allowed_hosts only loopback and IP "
            "addresses are trusted; list this host name in allowed_hosts",
        )
    return None


def _same_origin(origin: str, environ: Mapping[str, Any]) -> bool:
    """Whether ``origin`` is exactly this request's scheme, host and port."""
    match = _ORIGIN_RE.fullmatch(origin)
    if match is None:
        return False  # "null", userinfo, a path, a query or a fragment
    scheme = match[1].lower()
    server_scheme = "https" if environ.get("wsgi.url_scheme") == "https" else "http"
    if scheme != server_scheme:
        return False
    origin_host = _split_host(match[2])
    request_host = _split_host(str(environ.get("HTTP_HOST") or ""))
    if origin_host is None or request_host is None:
        return False
    default = _DEFAULT_PORTS[server_scheme]
    return (origin_host[0], origin_host[1] or default) == (request_host[0], request_host[1] or default)


def _proxy_hint(environ: Mapping[str, Any], options: WebSocketOptions) -> str:
    """A hint for a refusal of a request that came through a proxy no option trusts."""
    if options.trusted_proxies is None and any(
        key in environ for key in ("HTTP_FORWARDED", "HTTP_X_FORWARDED_PROTO", "HTTP_X_FORWARDED_HOST")
    ):
        return "; it came through a proxy: list the proxy's address in trusted_proxies"
    return ""


def _origin_allowed(origin: str | None, environ: Mapping[str, Any], policy: Any) -> bool:
    if policy is None:
        # Non-browser clients send no Origin; browsers always do (RFC 6454).
        return origin is None or _same_origin(origin, environ)
    if policy == "*":
        return True
    if callable(policy) and not isinstance(policy, re.Pattern):
        return bool(policy(origin, environ))
    patterns: Sequence[Any] = [policy] if isinstance(policy, (str, re.Pattern)) else policy
    for allowed in patterns:
        if allowed == "*" or allowed == origin:
            return True
        if isinstance(allowed, re.Pattern) and origin is not None and allowed.fullmatch(origin):
            return True
    return False


# RFC 7239 section 4: forwarded-pair = token "=" value, value = token / quoted-string.
_FORWARDED_PAIR_RE = re.compile(
    r"""[ \t]*([!#$%&'*+.^_`|~0-9A-Za-z-]+)=([!#$%&'*+.^_`|~0-9A-Za-z-]+|"(?:[^"\\\x00-\x08\x0a-\x1f\x7f]|\\[\t\x20-\x7e\x80-\xff])*")[ \t]*"""
)
_FORWARDED_PROTOS = {"http": "http", "https": "https", "ws": "http", "wss": "https"}


def _last_forwarded_element(value: str) -> dict[str, str] | None:
    """The last non-empty element of a ``Forwarded`` value as ``{name: value}``; ``None`` if malformed."""
    elements: list[dict[str, str]] = [{}]
    pos = 0
    while True:
        match = _FORWARDED_PAIR_RE.match(value, pos)
        if match is not None:
            name, raw = match[1].lower(), match[2]
            if name in elements[-1]:
                return None  # a parameter must not occur twice in one element
            elements[-1][name] = re.sub(r"\\(.)", r"\1", raw[1:-1]) if raw.startswith('"') else raw
            pos = match.end()
        else:
            while pos < len(value) and value[pos] in " \t":
                pos += 1  # an empty pair or list element
        if pos == len(value):
            break
        if value[pos] == ";":
            pos += 1
        elif value[pos] == ",":
            elements.append({})
            pos += 1
        else:
            return None
    return next((element for element in reversed(elements) if element), {})


def _remote_is_trusted(remote: str, networks: Sequence[Any]) -> bool:
    try:
        address = ipaddress.ip_address(remote.strip("[]"))
    except ValueError:
        return False  # a Unix socket, or no address at all
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in network for network in networks)


def _public_view(environ: Mapping[str, Any], options: WebSocketOptions) -> Mapping[str, Any] | Reject:
    """The scheme and ``Host`` the browser used, for the origin and host checks.

    ``environ`` itself unless ``REMOTE_ADDR`` is one of ``trusted_proxies``;
    then the proxy's ``Forwarded`` header (its last element: the one the
    proxy nearest us appended) or, without one, the last value of
    ``X-Forwarded-Proto`` / ``X-Forwarded-Host``. A malformed value from a
    trusted proxy is refused with 400 rather than guessed around.
    """
    if options.trusted_proxies is None:
        return environ
    remote = str(environ.get("REMOTE_ADDR") or "")
    forwarded = environ.get("HTTP_FORWARDED")
    forwarded_proto = environ.get("HTTP_X_FORWARDED_PROTO")
    forwarded_host = environ.get("HTTP_X_FORWARDED_HOST")
    if forwarded is None and forwarded_proto is None and forwarded_host is None:
        return environ
    if not _remote_is_trusted(remote, proxy_networks(options.trusted_proxies)):
        logger.debug("ignoring forwarded headers from %r, which is not in trusted_proxies", remote)
        return environ
    if forwarded is not None:
        element = _last_forwarded_element(str(forwarded))
        if element is None:
            return Reject(400, f"malformed Forwarded header from trusted proxy {remote}: {str(forwarded)[:100]!r}")
        proto, host = element.get("proto"), element.get("host")
        proto_source = host_source = "Forwarded"
    else:
        # A list is one value per hop, appended in order: the last is our proxy's.
        proto = str(forwarded_proto).rsplit(",", 1)[-1].strip() if forwarded_proto is not None else None
        host = str(forwarded_host).rsplit(",", 1)[-1].strip() if forwarded_host is not None else None
        proto_source, host_source = "X-Forwarded-Proto", "X-Forwarded-Host"
    view = {"wsgi.url_scheme": environ.get("wsgi.url_scheme"), "HTTP_HOST": environ.get("HTTP_HOST")}
    if proto is not None:
        scheme = _FORWARDED_PROTOS.get(proto.lower())
        if scheme is None:
            return Reject(400, f"unsupported scheme {proto[:20]!r} in {proto_source} from trusted proxy {remote}")
        view["wsgi.url_scheme"] = scheme
    if host is not None:
        if _split_host(host) is None:
            return Reject(400, f"malformed host {host[:100]!r} in {host_source} from trusted proxy {remote}")
        view["HTTP_HOST"] = host
    logger.debug("trusted proxy %s: public scheme %s, host %r", remote, view["wsgi.url_scheme"], view["HTTP_HOST"])
    return view


def _check_fields(environ: Mapping[str, Any], raw_headers: Sequence[tuple[str, str]] | None) -> Reject | None:
    """Duplicate or folded Host and Origin fields, and a body, are refused with 400.

    A server merges duplicates (``a,b``), keeps the last or the continued
    value, or unfolds a line, and the policy would then judge a value the
    client did not send alone. The raw head, when the adapter has it, shows
    what was sent; otherwise the environ value shows the traces.
    """
    # One pass over the raw fields: the Host and Origin values, and whether one announces a body.
    found: dict[str, list[str]] | None = None
    raw_body = False
    if raw_headers is not None:
        found = {"host": [], "origin": []}
        for raw_name, value in raw_headers:
            field_name = raw_name.strip().lower()
            values = found.get(field_name)
            if values is not None:
                values.append(value)
            elif field_name == "transfer-encoding" or (
                field_name == "content-length" and value.strip() not in ("", "0")
            ):
                raw_body = True
    for name, key in (("Host", "HTTP_HOST"), ("Origin", "HTTP_ORIGIN")):
        seen = environ.get(key)
        if found is not None:
            values = found[name.lower()]
            if len(values) > 1:
                return Reject(400, f"duplicate {name} header")
            if any("\n" in value or "\r" in value for value in values):
                return Reject(400, f"folded {name} header")
            if (values[0].strip(" \t") if values else None) != (None if seen is None else str(seen).strip(" \t")):
                return Reject(400, f"{name} header differs from the request head")
        if seen is not None:
            merged = _MERGED_RE.search(str(seen).strip(" \t"))
            if merged is not None:
                trace = "duplicate" if merged[0] == "," else "folded or malformed"
                return Reject(400, f"{trace} {name} header")
    length = str(environ.get("CONTENT_LENGTH") or "").strip()
    if (length and not (length.isdigit() and int(length) == 0)) or "HTTP_TRANSFER_ENCODING" in environ or raw_body:
        # The server would not read it, so it would be taken for the first frames.
        return Reject(400, "a WebSocket upgrade request must not have a body")
    return None


_PROTOCOL_RE = re.compile(r"HTTP/(\d+)\.(\d+)")


def _validate_request(environ: Mapping[str, Any], raw_headers: Sequence[tuple[str, str]] | None) -> Reject | str:
    """Section 4.2.1, in order; returns the client's key or a rejection."""
    if environ.get("REQUEST_METHOD") != "GET":
        return Reject(400, "WebSocket handshake must use GET", [("Allow", "GET")])
    protocol = str(environ.get("SERVER_PROTOCOL", ""))
    if protocol != "HTTP/1.1":
        match = _PROTOCOL_RE.fullmatch(protocol)
        if match is None or (int(match[1]), int(match[2])) < (1, 1):
            return Reject(400, f"WebSocket handshake requires HTTP/1.1 or later, not {protocol or 'unknown'}")
    if not environ.get("HTTP_HOST"):
        return Reject(400, "WebSocket handshake is missing the Host header")
    if not is_upgrade_request(environ):
        return Reject(400, "WebSocket handshake is missing 'Upgrade: websocket'")
    if not _has_token(environ.get("HTTP_CONNECTION"), "upgrade"):
        return Reject(400, "WebSocket handshake is missing 'Connection: Upgrade'")
    key = environ.get("HTTP_SEC_WEBSOCKET_KEY")
    if not key:
        return Reject(400, "WebSocket handshake is missing Sec-WebSocket-Key")
    try:
        raw_key = base64.b64decode(key.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raw_key = b""
    if len(raw_key) != 16:
        return Reject(400, "Sec-WebSocket-Key must be 16 bytes encoded in base64")
    version = environ.get("HTTP_SEC_WEBSOCKET_VERSION")
    if version is None:
        return Reject(400, "WebSocket handshake is missing Sec-WebSocket-Version", [("Sec-WebSocket-Version", "13")])
    if version.strip() != "13":
        # 4.4: tell the client which version this server speaks.
        return Reject(
            426,
            f"unsupported Sec-WebSocket-Version {version[:20]!r}; this server speaks 13",
            [("Sec-WebSocket-Version", "13")],
        )
    # Last: a request that is no upgrade at all gets the reason above instead.
    refused = _check_fields(environ, raw_headers)
    if refused is not None:
        return refused
    return str(key)


def _select_subprotocol(environ: Mapping[str, Any], options: WebSocketOptions) -> str | None:
    offered: list[str] = []
    header = environ.get("HTTP_SEC_WEBSOCKET_PROTOCOL")
    if header:
        offered = list(parse_subprotocol(header))
    policy = options.protocols
    if policy is None or not offered:
        return None
    if callable(policy):
        chosen = policy(offered, environ)
        if chosen is not None and chosen not in offered:
            raise ValueError(f"subprotocol selector returned {chosen!r}, which the client did not offer")
        return chosen
    return next((name for name in policy if name in offered), None)


def negotiate(
    environ: Mapping[str, Any],
    options: WebSocketOptions,
    raw_headers: Sequence[tuple[str, str]] | None = None,
) -> Accept | Reject:
    """Validate the handshake in ``environ`` and negotiate subprotocol and extensions.

    ``raw_headers`` are the request's header fields as the server received
    them, in order (a folded continuation stays in its value after ``"\\n"``),
    when the server adapter has them (``Handover.raw_headers``): with them, duplicate
    and folded ``Host``/``Origin`` fields are seen whatever the server made of
    them.
    """
    checked = _validate_request(environ, raw_headers)
    if isinstance(checked, Reject):
        return checked
    key = checked
    public = _public_view(environ, options)
    if isinstance(public, Reject):
        return public
    refused = _check_host(public, options)
    if refused is not None:
        return refused
    origin = environ.get("HTTP_ORIGIN")
    try:
        # Only the same-origin default judges the public view; a callable policy gets the real environ.
        if not _origin_allowed(origin, public if options.origins is None else environ, options.origins):
            if options.origins is None:
                return Reject(
                    403,
                    f"Origin {str(origin)[:100]!r} is not allowed (not this request's scheme, host and port)"
                    + _proxy_hint(environ, options),
                )
            return Reject(403, f"Origin {origin!r} is not allowed")
        if options.authorize is not None and options.authorize(environ) is False:
            return Reject(403, "WebSocket upgrade refused")
    except HandshakeRejected as exc:
        return Reject(exc.status, exc.reason, exc.headers)
    except Exception:
        # A bug in an application hook must not open the door: fail closed.
        logger.exception("origin or authorize hook raised; refusing the upgrade")
        return Reject(403, "WebSocket upgrade refused")

    try:
        subprotocol = _select_subprotocol(environ, options)
        extensions_header, extensions = _negotiate_extensions(
            environ.get("HTTP_SEC_WEBSOCKET_EXTENSIONS"), _DEFLATE if options.compression else []
        )
    except InvalidHandshake as exc:
        return Reject(400, f"invalid WebSocket handshake header: {exc}")
    except Exception:
        logger.exception("subprotocol selection failed; refusing the upgrade")
        return Reject(400, "subprotocol negotiation failed")

    headers = [
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Accept", accept_key(key)),
    ]
    if extensions_header is not None:
        headers.append(("Sec-WebSocket-Extensions", extensions_header))
    if subprotocol is not None:
        headers.append(("Sec-WebSocket-Protocol", subprotocol))
    headers.extend(options.extra_headers)
    return Accept(headers, subprotocol, extensions)


def _negotiate_extensions(
    header: str | None, factories: Sequence[ServerExtensionFactory]
) -> tuple[str | None, list[Extension]]:
    """Accept each offered extension the first matching factory agrees to (RFC 6455 9.1).

    The server may only select from the client's offers, in the client's
    order; an offer no factory accepts is ignored.
    """
    if not header or not factories:
        return None, []
    accepted: list[Extension] = []
    answers: list[ExtensionHeader] = []
    for name, params in parse_extension(header):
        for factory in factories:
            if factory.name != name:
                continue
            try:
                response_params, extension = factory.process_request_params(params, accepted)
            except NegotiationError:
                continue
            answers.append((name, response_params))
            accepted.append(extension)
            break
    return (build_extension(answers) if answers else None), accepted
