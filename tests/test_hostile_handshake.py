"""Hostile handshakes: always a 101 or a 4xx with a reason, never a 500 or an exception."""

from __future__ import annotations

import base64
import logging
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.headers import parse_extension
from websockets.utils import accept_key

from tests.support.examples import examples
from tests.support.hardening import LogWatcher, assert_serving, exchange, hardening_server
from tests.support.servers import RunningServer, available
from ws4py_integrations import Accept, HandshakeRejected, Reject, WebSocketOptions, negotiate

GOOD_KEY = "dGhlIHNhbXBsZSBub25jZQ=="

BASE_ENVIRON: dict[str, Any] = {
    "REQUEST_METHOD": "GET",
    "SERVER_PROTOCOL": "HTTP/1.1",
    "PATH_INFO": "/echo",
    "wsgi.url_scheme": "http",
    "HTTP_HOST": "localhost:8080",
    "HTTP_UPGRADE": "websocket",
    "HTTP_CONNECTION": "Upgrade",
    "HTTP_SEC_WEBSOCKET_KEY": GOOD_KEY,
    "HTTP_SEC_WEBSOCKET_VERSION": "13",
}

# -- strategies ------------------------------------------------------------------------

# What an HTTP server can hand over as a header value: latin-1 without controls but tab.
header_text = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF, blacklist_characters="\x7f"), max_size=120
)


def key_values() -> st.SearchStrategy[str]:
    raw = st.binary(min_size=0, max_size=32)
    return st.one_of(
        raw.map(lambda b: base64.b64encode(b).decode()),
        raw.map(lambda b: base64.urlsafe_b64encode(b).decode()),
        raw.map(lambda b: base64.b64encode(b).decode().rstrip("=")),
        raw.map(lambda b: " " + base64.b64encode(b).decode() + " "),
        raw.map(lambda b: base64.b64encode(b).decode().replace("A", "*")),
        raw.map(lambda b: base64.b16encode(b).decode()),
        header_text,
    )


token = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_.!#$%&'*+^`|~", min_size=1, max_size=12)
versions = st.one_of(
    st.sampled_from(["13", " 13 ", "13, 8", "8, 13", "8", "7", "0", "14", "", "1e1", "13.0", "013", "thirteen"]),
    st.lists(st.integers(-1, 300).map(str), max_size=4).map(", ".join),
    header_text,
)
subprotocol_offers = st.one_of(
    st.lists(token, max_size=5).map(", ".join),
    st.lists(st.sampled_from(["chat", "superchat", "CHAT", "chat ", '"chat"', "", ","]), max_size=5).map(",".join),
    header_text,
)
deflate_params = st.lists(
    st.sampled_from(
        [
            "server_no_context_takeover",
            "client_no_context_takeover",
            "server_max_window_bits=8",
            "server_max_window_bits=15",
            "server_max_window_bits=16",
            "server_max_window_bits=7",
            "server_max_window_bits",
            "client_max_window_bits",
            "client_max_window_bits=9",
            "client_max_window_bits=99999999999999999999",
            'client_max_window_bits="10"',
            "client_max_window_bits=-1",
            "unknown_param=1",
            "server_no_context_takeover=1",
        ]
    ),
    max_size=4,
)
extension_offers = st.one_of(
    st.lists(
        st.tuples(
            st.sampled_from(["permessage-deflate", "x-webkit-deflate-frame", "permessage-foo"]), deflate_params
        ).map(lambda t: "; ".join([t[0], *t[1]])),
        max_size=3,
    ).map(", ".join),
    header_text,
)
origins = st.one_of(
    st.none(),
    st.sampled_from(
        [
            "http://localhost:8080",
            "https://good.example",
            "null",
            "",
            "http://[::1",
            "http://localhost:99999",
            "http://exa mple.com",
            "file://",
            "http://localhost:8080/path?q",
            "HTTP://EXAMPLE.COM:8080",
            "http://user@localhost:8080",
        ]
    ),
    header_text,
)
paths = st.one_of(
    st.sampled_from(
        ["/echo", "/", "", "//echo", "/echo/", "/ECHO", "/echo/../echo", "/\u00e9", "/echo;x", "/" + "a" * 5000]
    ),
    header_text.map(lambda t: "/" + t),
)
hosts = st.one_of(
    st.sampled_from(["localhost:8080", "localhost", "", "[::1", "[::1]:8080", "localhost:abc", ":", "a" * 300]),
    header_text,
)


@st.composite
def environs(draw: st.DrawFn) -> dict[str, Any]:
    environ = dict(BASE_ENVIRON)
    mutations: dict[str, st.SearchStrategy[Any]] = {
        "REQUEST_METHOD": st.sampled_from(["GET", "POST", "get", "HEAD", "CONNECT", "", "GET "]),
        "SERVER_PROTOCOL": st.sampled_from(["HTTP/1.1", "HTTP/1.0", "HTTP/2.0", "HTTP/0.9", "HTTP/1.10", "", "FOO"]),
        "PATH_INFO": paths,
        "HTTP_HOST": hosts,
        "HTTP_UPGRADE": st.one_of(
            st.sampled_from(["websocket", "WebSocket", "h2c, websocket", "websocket2", ""]), header_text
        ),
        "HTTP_CONNECTION": st.one_of(
            st.sampled_from(["Upgrade", "keep-alive, Upgrade", "upgrade", "close", ""]), header_text
        ),
        "HTTP_SEC_WEBSOCKET_KEY": key_values(),
        "HTTP_SEC_WEBSOCKET_VERSION": versions,
        "HTTP_SEC_WEBSOCKET_PROTOCOL": subprotocol_offers,
        "HTTP_SEC_WEBSOCKET_EXTENSIONS": extension_offers,
        "HTTP_ORIGIN": origins,
    }
    for name in draw(st.sets(st.sampled_from(sorted(mutations)), max_size=len(mutations))):
        value = draw(st.one_of(st.none(), mutations[name]) if name.startswith("HTTP_") else mutations[name])
        if value is None:
            environ.pop(name, None)
        else:
            environ[name] = value
    return environ


def _selector(offered: Sequence[str], environ: Mapping[str, Any]) -> str | None:
    return offered[-1] if offered else None


def _refusing_hook(environ: Mapping[str, Any]) -> bool:
    if "evil" in str(environ.get("HTTP_ORIGIN")):
        raise HandshakeRejected(401, "no evil", [("WWW-Authenticate", "Cookie")])
    return True


option_sets = st.sampled_from(
    [
        WebSocketOptions(),
        WebSocketOptions(compression=False),
        WebSocketOptions(protocols=["chat", "superchat"]),
        WebSocketOptions(protocols=_selector),
        WebSocketOptions(origins="*"),
        WebSocketOptions(origins=["https://good.example", re.compile(r"https://.*\.good\.example")]),
        WebSocketOptions(origins=lambda origin, environ: origin is not None and origin.endswith(".example")),
        WebSocketOptions(authorize=_refusing_hook),
        WebSocketOptions(allowed_hosts=["localhost", ".good.example", "[::1]"]),
        WebSocketOptions(allowed_hosts=["*"]),
        WebSocketOptions(origins=["https://good.example"], allowed_hosts=["good.example"]),
    ]
)


def check_result(result: Accept | Reject, environ: Mapping[str, Any]) -> None:
    if isinstance(result, Reject):
        assert 400 <= result.status < 500, result
        assert result.reason.strip(), "a rejection carries a reason"
        assert "\n" not in result.reason and "\r" not in result.reason
        result.status_line.encode("latin-1")
        for name, value in result.wsgi_headers():
            assert "\n" not in value and "\r" not in value
            (name + value).encode("latin-1")
        return
    assert isinstance(result, Accept)
    head = result.response.decode("latin-1")
    assert head.startswith("HTTP/1.1 101 ") and head.endswith("\r\n\r\n")
    assert head.count("\r\n\r\n") == 1
    headers = dict(result.headers)
    assert headers["Sec-WebSocket-Accept"] == accept_key(environ["HTTP_SEC_WEBSOCKET_KEY"])
    if result.subprotocol is not None:
        offered = [p.strip() for p in environ["HTTP_SEC_WEBSOCKET_PROTOCOL"].split(",")]
        assert result.subprotocol in offered
    if "Sec-WebSocket-Extensions" in headers:
        name, _ = parse_extension(headers["Sec-WebSocket-Extensions"])[0]
        assert name == "permessage-deflate"


# -- negotiate() directly ---------------------------------------------------------------


@settings(max_examples=examples(1500), deadline=None)
@given(environ=environs(), options=option_sets)
def test_negotiate_answers_101_or_4xx_with_a_reason(environ: dict[str, Any], options: WebSocketOptions) -> None:
    check_result(negotiate(environ, options), environ)


@settings(max_examples=examples(300), deadline=None)
@given(raw_key=st.binary(max_size=32), form=st.sampled_from(["standard", "urlsafe", "unpadded", "spaced"]))
def test_key_encodings(raw_key: bytes, form: str) -> None:
    encoded = base64.b64encode(raw_key).decode()
    key = {
        "standard": encoded,
        "urlsafe": base64.urlsafe_b64encode(raw_key).decode(),
        "unpadded": encoded.rstrip("="),
        "spaced": f"{encoded[:4]} {encoded[4:]}",
    }[form]
    result = negotiate({**BASE_ENVIRON, "HTTP_SEC_WEBSOCKET_KEY": key}, WebSocketOptions())
    valid = len(raw_key) == 16 and key == encoded
    assert isinstance(result, Accept) == valid, (key, result)
    if not valid:
        assert isinstance(result, Reject) and result.status == 400


@settings(max_examples=examples(200), deadline=None)
@given(version=versions)
def test_version_lists(version: str) -> None:
    result = negotiate({**BASE_ENVIRON, "HTTP_SEC_WEBSOCKET_VERSION": version}, WebSocketOptions())
    if version.strip() == "13":
        assert isinstance(result, Accept)
    else:
        assert isinstance(result, Reject) and result.status == 426
        assert ("Sec-WebSocket-Version", "13") in result.headers


@pytest.mark.parametrize(
    ("origin", "host"),
    [("http://[::1", "localhost:8080"), ("http://localhost:8080", "[::1")],
    ids=["origin", "host"],
)
def test_malformed_origin_or_host_is_refused_without_an_error_log(origin: str, host: str) -> None:
    with LogWatcher() as logs:
        result = negotiate({**BASE_ENVIRON, "HTTP_ORIGIN": origin, "HTTP_HOST": host}, WebSocketOptions())
    assert isinstance(result, Reject) and result.status == 403
    errors = [r for r in logs.records if r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage() for r in errors]


# -- the same, through real servers ----------------------------------------------------------


@pytest.fixture(scope="module", params=available())
def hserver(request: pytest.FixtureRequest) -> Iterator[RunningServer]:
    with hardening_server(request.param) as running:
        yield running


def request_bytes(environ: Mapping[str, Any]) -> bytes:
    names = {
        "HTTP_HOST": "Host",
        "HTTP_UPGRADE": "Upgrade",
        "HTTP_CONNECTION": "Connection",
        "HTTP_SEC_WEBSOCKET_KEY": "Sec-WebSocket-Key",
        "HTTP_SEC_WEBSOCKET_VERSION": "Sec-WebSocket-Version",
        "HTTP_SEC_WEBSOCKET_PROTOCOL": "Sec-WebSocket-Protocol",
        "HTTP_SEC_WEBSOCKET_EXTENSIONS": "Sec-WebSocket-Extensions",
        "HTTP_ORIGIN": "Origin",
    }
    lines = [f"GET {environ['PATH_INFO'] or '/'} HTTP/1.1"]
    lines += [f"{header}: {environ[key]}" for key, header in names.items() if key in environ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


@st.composite
def server_environs(draw: st.DrawFn) -> dict[str, Any]:
    environ = draw(environs())
    # The request line is fixed (GET ... HTTP/1.1); paths are URL-safe characters.
    environ["PATH_INFO"] = draw(
        st.one_of(
            st.sampled_from(
                ["/echo", "/strict", "/echo?x=1", "//echo", "/%65cho", "/echo/", "/nowhere", "/" + "a" * 4000]
            ),
            st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789/%.-_~!$&'()*+,;=:@?", max_size=60).map(
                lambda t: "/" + t
            ),
        )
    )
    return environ


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(environ=server_environs())
def test_server_answers_101_or_4xx_with_a_reason(hserver: RunningServer, environ: dict[str, Any]) -> None:
    status, body = exchange(hserver, request_bytes(environ))
    assert status is not None, "the server closed without answering"
    assert status == 101 or (400 <= status < 500 and body.strip()), (status, body[:200])


@pytest.mark.parametrize(
    "request_head",
    [
        b"GET /echo HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n",
        b"GET /echo HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-H%d: v\r\n" % i for i in range(500)) + b"\r\n",
        b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
        # A TLS ClientHello on the plain port (line ends added: else the server waits for one).
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\0" * 64 + b"\r\n\r\n",
        b"GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: "
        + GOOD_KEY.encode()
        + b"\r\nSec-WebSocket-Version: 13\r\nContent-Length: 5\r\n\r\nhello",
        b"GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: "
        + GOOD_KEY.encode()
        + b"\r\nSec-WebSocket-Version: 13\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    ],
    ids=["100k-header", "500-headers", "70k-path", "tls-on-plain", "upgrade-with-body", "upgrade-chunked"],
)
def test_odd_requests_never_get_a_5xx(hserver: RunningServer, request_head: bytes) -> None:
    status, _ = exchange(hserver, request_head)
    # A 4xx, a 101 (the body bytes then count as frames), or a closed connection.
    assert status is None or status == 101 or 400 <= status < 500, status
    assert_serving(hserver)
