"""Handshake hardening: allowed hosts (DNS rebinding), strict same-origin, no body,
no duplicate or folded Host/Origin. The rules through ``negotiate()``, through the
middleware (WebTest), and through the three real servers over raw sockets."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from webtest import TestApp

from tests.support import app
from tests.support.hardening import exchange, frame_bytes, hardening_server
from tests.support.process import echo_example
from tests.support.servers import RunningServer, available
from ws4py_integrations import (
    Accept,
    Reject,
    WebSocket,
    WebSocketMiddleware,
    WebSocketOptions,
    WebSocketWSGIApplication,
    negotiate,
)
from ws4py_integrations.adapter import HANDOVER_KEY

KEY = "dGhlIHNhbXBsZSBub25jZQ=="
REBOUND = "evil.example:8000"


def environ(host: str = "127.0.0.1:8000", origin: str | None = None, **extra: Any) -> dict[str, Any]:
    result: dict[str, Any] = {
        "REQUEST_METHOD": "GET",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "PATH_INFO": "/ws",
        "wsgi.url_scheme": "http",
        "HTTP_HOST": host,
        "HTTP_UPGRADE": "websocket",
        "HTTP_CONNECTION": "Upgrade",
        "HTTP_SEC_WEBSOCKET_KEY": KEY,
        "HTTP_SEC_WEBSOCKET_VERSION": "13",
    }
    if origin is not None:
        result["HTTP_ORIGIN"] = origin
    result.update(extra)
    return result


def refused(result: Accept | Reject, status: int, reason: str) -> bool:
    return isinstance(result, Reject) and result.status == status and reason in result.reason


# -- allowed_hosts ---------------------------------------------------------------------


def test_dns_rebinding_is_refused_by_default_and_accepted_when_listed() -> None:
    env = environ(REBOUND, f"http://{REBOUND}")
    result = negotiate(env, WebSocketOptions())
    assert refused(result, 403, "Host 'evil.example:8000' is not allowed")
    assert isinstance(result, Reject) and "allowed_hosts" in result.reason
    assert isinstance(negotiate(env, WebSocketOptions(allowed_hosts=["evil.example"])), Accept)
    # Without an Origin (a non-browser client) the host is checked all the same.
    assert refused(negotiate(environ(REBOUND), WebSocketOptions()), 403, "allowed_hosts")


@pytest.mark.parametrize(
    "host",
    [
        "localhost",
        "LOCALHOST:80",
        "localhost.",
        "app.localhost:8000",
        "127.0.0.1",
        "127.5.6.7:9",
        "[::1]",
        "[::1]:8080",
        "[0:0::1]:8080",
        # Any IP literal: an address cannot be rebound by DNS.
        "10.0.0.5:8000",
        "[2001:db8::1]:443",
    ],
)
def test_default_trusts_loopback_names_and_ip_literals(host: str) -> None:
    assert isinstance(negotiate(environ(host), WebSocketOptions()), Accept)


@pytest.mark.parametrize(
    "host",
    [
        "evil.example",
        "evil.example:8000",
        "localhost.evil.example",
        "127.0.0.1.nip.io",
        "localhostx",
        "2130706433",  # a name, for this check: browsers send the dotted form
        "[::1",
        "[::1]x",
        "127.0.0.1:99999",
        "user@127.0.0.1",
        "127.0.0.1/x",
        "..",
    ],
)
def test_default_refuses_other_hosts_with_403(host: str) -> None:
    assert refused(negotiate(environ(host), WebSocketOptions()), 403, "is not allowed")


@pytest.mark.parametrize(
    ("allowed", "host", "ok"),
    [
        (["evil.example"], "evil.example:8000", True),
        (["evil.example"], "EVIL.Example", True),
        (["Evil.Example."], "evil.example.", True),
        (["evil.example"], "sub.evil.example", False),
        # A list replaces the default: loopback must be listed to stay allowed.
        (["evil.example"], "127.0.0.1:8000", False),
        (["evil.example", "127.0.0.1"], "127.0.0.1:8000", True),
        ([".example.com"], "example.com", True),
        ([".example.com"], "a.b.example.com:8443", True),
        ([".example.com"], "badexample.com", False),
        ([".example.com"], "example.com.evil.net", False),
        (["[::1]"], "[::1]:8080", True),
        (["[::1]"], "[0:0::1]", True),
        (["[::1]"], "127.0.0.1", False),
        (["10.0.0.1"], "10.0.0.1:80", True),
        (["*"], "anything.example:1", True),
        (["*"], "[::1", True),
        ([], "127.0.0.1", False),
    ],
)
def test_allowed_hosts_entries(allowed: list[str], host: str, ok: bool) -> None:
    options = WebSocketOptions.from_kwargs(allowed_hosts=allowed)
    result = negotiate(environ(host), options)
    if ok:
        assert isinstance(result, Accept), result
    else:
        assert refused(result, 403, f"Host {host!r} is not allowed (allowed_hosts)"), result


def test_explicit_origin_policy_alone_does_not_check_the_host() -> None:
    env = environ(REBOUND, "https://app.example")
    assert isinstance(negotiate(env, WebSocketOptions(origins=["https://app.example"])), Accept)
    assert isinstance(negotiate(environ(REBOUND), WebSocketOptions(origins="*")), Accept)
    # ...but allowed_hosts, when given, is checked under any origin policy.
    options = WebSocketOptions(origins=["https://app.example"], allowed_hosts=["app.example"])
    assert refused(negotiate(env, options), 403, "(allowed_hosts)")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("example.com", "must be a list"),
        (["*.example.com"], "'.example.com'"),
        (["::1"], "in brackets"),
        (["example.com:8000"], "without a port"),
        (["[zz::]"], "not an IPv6 address"),
        (["exa mple.com"], "is not a host name"),
        ([""], "is not a host name"),
        (["a..b"], "is not a host name"),
        ([b"example.com"], "must be strings"),
    ],
)
def test_allowed_hosts_validation(value: Any, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        WebSocketOptions.from_kwargs(allowed_hosts=value)


def test_allowed_hosts_valid_forms() -> None:
    entries = ("example.com", ".example.org", "[::1]", "127.0.0.1", "*", "host_1.internal.")
    assert WebSocketOptions.from_kwargs(allowed_hosts=entries).allowed_hosts == entries
    assert WebSocketOptions.from_kwargs(allowed_hosts=None).allowed_hosts is None


# -- strict same-origin ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("origin", "scheme", "ok"),
    [
        ("http://127.0.0.1:8000", "http", True),
        ("HTTP://127.0.0.1:8000", "http", True),
        ("https://127.0.0.1:8000", "http", False),
        ("http://127.0.0.1:8000", "https", False),
        ("https://127.0.0.1:8000", "https", True),
        ("ws://127.0.0.1:8000", "http", False),
        ("http://u@127.0.0.1:8000", "http", False),
        ("http://u:p@127.0.0.1:8000", "http", False),
        ("http://127.0.0.1:8000/", "http", False),
        ("http://127.0.0.1:8000/app", "http", False),
        ("http://127.0.0.1:8000?q", "http", False),
        ("http://127.0.0.1:8000#f", "http", False),
        ("http://127.0.0.1", "http", False),
        ("http://127.0.0.2:8000", "http", False),
        ("null", "http", False),
        ("", "http", False),
    ],
)
def test_same_origin_is_exact(origin: str, scheme: str, ok: bool) -> None:
    result = negotiate(environ(origin=origin, **{"wsgi.url_scheme": scheme}), WebSocketOptions())
    if ok:
        assert isinstance(result, Accept), result
    else:
        assert refused(result, 403, "is not allowed"), result


def test_same_origin_ipv6_and_default_ports() -> None:
    assert isinstance(negotiate(environ("[::1]:8080", "http://[::1]:8080"), WebSocketOptions()), Accept)
    assert isinstance(negotiate(environ("localhost", "http://localhost:80"), WebSocketOptions()), Accept)
    https = environ("localhost:443", "https://localhost", **{"wsgi.url_scheme": "https"})
    assert isinstance(negotiate(https, WebSocketOptions()), Accept)


def test_explicit_origin_lists_are_unchanged() -> None:
    # An exact string is compared exactly, userinfo or not: the list is the application's word.
    env = environ(origin="http://u@app.example")
    assert isinstance(negotiate(env, WebSocketOptions(origins=["http://u@app.example"])), Accept)
    env = environ(origin="https://127.0.0.1:8000")
    assert isinstance(negotiate(env, WebSocketOptions(origins=lambda origin, environ: True)), Accept)
    assert isinstance(negotiate(environ(origin="null"), WebSocketOptions(origins=["null"])), Accept)


# -- no body -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "ok"),
    [
        ({"CONTENT_LENGTH": "18"}, False),
        ({"CONTENT_LENGTH": "1"}, False),
        ({"CONTENT_LENGTH": "-1"}, False),
        ({"CONTENT_LENGTH": "abc"}, False),
        ({"HTTP_TRANSFER_ENCODING": "chunked"}, False),
        ({"HTTP_TRANSFER_ENCODING": "identity"}, False),
        ({"CONTENT_LENGTH": "0", "HTTP_TRANSFER_ENCODING": "chunked"}, False),
        ({"CONTENT_LENGTH": "0"}, True),
        ({"CONTENT_LENGTH": "00"}, True),
        ({"CONTENT_LENGTH": ""}, True),
        ({}, True),
    ],
)
def test_an_upgrade_with_a_body_is_400(extra: dict[str, str], ok: bool) -> None:
    result = negotiate(environ(**extra), WebSocketOptions())
    if ok:
        assert isinstance(result, Accept), result
    else:
        assert refused(result, 400, "a WebSocket upgrade request must not have a body"), result


def test_a_body_in_the_raw_head_is_400_even_if_the_environ_hides_it() -> None:
    raw = [("Host", "127.0.0.1:8000"), ("Content-Length", "5")]
    assert refused(negotiate(environ(), WebSocketOptions(), raw), 400, "must not have a body")
    raw = [("Host", "127.0.0.1:8000"), ("transfer-encoding", "chunked")]
    assert refused(negotiate(environ(), WebSocketOptions(), raw), 400, "must not have a body")
    raw = [("Host", "127.0.0.1:8000"), ("Content-Length", "0")]
    assert isinstance(negotiate(environ(), WebSocketOptions(), raw), Accept)


# -- duplicate and folded Host / Origin ------------------------------------------------------------

SAME = "http://127.0.0.1:8000"


@pytest.mark.parametrize(
    ("host", "origin", "reason"),
    [
        # What wsgiref and gevent make of two fields: the values joined by a comma.
        ("127.0.0.1:8000", f"http://evil.example,{SAME}", "duplicate Origin header"),
        ("127.0.0.1:8000", f"http://evil.example, {SAME}", "duplicate Origin header"),
        ("127.0.0.1:8000,evil.example", None, "duplicate Host header"),
        # An unfolded continuation line keeps its line break or its whitespace.
        ("127.0.0.1:8000", f"http://evil.example\r\n {SAME}", "folded or malformed Origin header"),
        ("127.0.0.1:8000", f"http://evil.example {SAME}", "folded or malformed Origin header"),
        ("127.0.0.1:8000", f"{SAME}\t", None),  # trailing whitespace is not part of a value
        ("127.0.0.1:8000", f"http://evil.example\t{SAME}", "folded or malformed Origin header"),
        ("127.0.0.1:8000 evil.example", None, "folded or malformed Host header"),
        ("127.0.0.1:8000\x00", None, "folded or malformed Host header"),
    ],
)
def test_environ_traces_of_merged_or_unfolded_fields_are_400(host: str, origin: str | None, reason: str | None) -> None:
    result = negotiate(environ(host, origin), WebSocketOptions(origins="*"))
    if reason is None:
        assert isinstance(result, Accept), result
    else:
        assert refused(result, 400, reason), result


@pytest.mark.parametrize(
    ("host", "origin"),
    [
        ("127.0.0.1:8000", SAME),
        ("[::1]:8080", "http://[::1]:8080"),
        ("localhost", "http://localhost"),
        ("[fe80::1%25eth0]:8080", None),
    ],
)
def test_legitimate_values_pass_the_duplicate_checks(host: str, origin: str | None) -> None:
    raw = [("Host", host)] + ([("Origin", origin)] if origin is not None else [])
    options = WebSocketOptions(allowed_hosts=["*"])
    assert isinstance(negotiate(environ(host, origin), options), Accept)
    assert isinstance(negotiate(environ(host, origin), options, raw), Accept)


@pytest.mark.parametrize(
    ("raw", "seen_origin", "reason"),
    [
        # cheroot keeps the last of two Origin fields: the environ looks clean.
        ([("Host", "127.0.0.1:8000"), ("Origin", "http://evil.example"), ("Origin", SAME)], SAME, "duplicate Origin"),
        ([("Host", "127.0.0.1:8000"), ("ORIGIN", "http://evil.example"), ("origin", SAME)], SAME, "duplicate Origin"),
        ([("Host", "127.0.0.1:8000"), ("Host", "127.0.0.1:8000"), ("Origin", SAME)], SAME, "duplicate Host"),
        # ...and the continuation of a folded line.
        ([("Host", "127.0.0.1:8000"), ("Origin", f"http://evil.example\n {SAME}")], SAME, "folded Origin"),
        ([("Host", "127.0.0.1:8000\n\tevil.example"), ("Origin", SAME)], SAME, "folded Host"),
        # The environ shows what the head does not say.
        ([("Host", "127.0.0.1:8000")], SAME, "Origin header differs from the request head"),
        ([("Host", "127.0.0.1:8000"), ("Origin", "http://evil.example")], SAME, "differs"),
    ],
)
def test_raw_head_shows_duplicate_and_folded_fields(raw: list[tuple[str, str]], seen_origin: str, reason: str) -> None:
    result = negotiate(environ(origin=seen_origin), WebSocketOptions(origins="*"), raw)
    assert refused(result, 400, reason), result


header_names = st.sampled_from(["Host", "host", "Origin", "ORIGIN", "Content-Length", "Transfer-Encoding", "X-A"])
header_values = st.text(alphabet=st.characters(min_codepoint=0x09, max_codepoint=0xFF), max_size=40)


@settings(max_examples=300, deadline=None)
@given(
    raw=st.lists(st.tuples(header_names, header_values), max_size=6),
    host=header_values,
    origin=st.one_of(st.none(), header_values),
)
def test_any_raw_head_gets_101_or_a_4xx_with_a_one_line_reason(
    raw: list[tuple[str, str]], host: str, origin: str | None
) -> None:
    result = negotiate(environ(host, origin), WebSocketOptions(), raw)
    if isinstance(result, Reject):
        assert 400 <= result.status < 500 and result.reason
        assert "\n" not in result.reason and "\r" not in result.reason
        result.status_line.encode("latin-1")


# -- through the middleware (WebTest) -----------------------------------------------------------------

GOOD = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Key": KEY, "Sec-WebSocket-Version": "13"}


def plain(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"plain"]


def make_testapp(**options: Any) -> TestApp:
    return TestApp(
        WebSocketMiddleware(plain, {"/ws": WebSocket}, **options),
        lint=False,
        extra_environ={"SERVER_PROTOCOL": "HTTP/1.1"},
    )


def test_wsgi_rebinding_is_403_unless_the_host_is_listed() -> None:
    headers = {**GOOD, "Origin": f"http://{REBOUND}"}
    rebound = {"HTTP_HOST": REBOUND}
    response = make_testapp().get("/ws", headers=headers, extra_environ=rebound, expect_errors=True)
    assert response.status_int == 403
    assert "not allowed" in response.text and "allowed_hosts" in response.text
    assert response.text.count("\n") == 1
    # Listed: the handshake passes (501: WebTest has no server adapter to hand over to).
    listed = make_testapp(allowed_hosts=["evil.example"])
    assert listed.get("/ws", headers=headers, extra_environ=rebound, expect_errors=True).status_int == 501
    # Plain HTTP requests are not the endpoint's business.
    assert make_testapp().get("/page", extra_environ=rebound).text == "plain"


def test_wsgi_upgrade_with_a_body_is_400() -> None:
    response = make_testapp().request(
        "/ws", method="GET", http_version="HTTP/1.1", headers=GOOD, body=b"\x81\x8c" + b"x" * 16, expect_errors=True
    )
    assert response.status_int == 400
    assert response.text == "a WebSocket upgrade request must not have a body\n"


@pytest.mark.parametrize(
    ("origin", "status"),
    [("https://localhost:80", 403), ("http://u@localhost:80", 403), ("http://evil.example,http://localhost:80", 400)],
)
def test_wsgi_origin_strictness_and_merged_origin(origin: str, status: int) -> None:
    response = make_testapp().get("/ws", headers={**GOOD, "Origin": origin}, expect_errors=True)
    assert response.status_int == status, response.text


class _RawHandover:
    """Only what check() reads from a handover before the upgrade."""

    manager = None

    def __init__(self, raw_headers: list[tuple[str, str]]) -> None:
        self.raw_headers = raw_headers


def test_the_middleware_passes_the_adapters_raw_head_to_negotiate() -> None:
    raw = [("Host", "localhost:80"), ("Origin", "http://evil.example"), ("Origin", "http://localhost:80")]
    response = make_testapp().get(
        "/ws",
        headers={**GOOD, "Origin": "http://localhost:80"},
        extra_environ={HANDOVER_KEY: _RawHandover(raw)},
        expect_errors=True,
    )
    assert response.status_int == 400
    assert response.text == "duplicate Origin header\n"


# -- through the real servers ------------------------------------------------------------------------


# An endpoint that lists a host, on the module's server: a test with a server of
# its own would need a second CherryPy server while the module's runs (one per process).
LISTED_HOST = "/echo-listed-host"


@pytest.fixture(scope="module", params=available())
def server(request: pytest.FixtureRequest) -> Iterator[RunningServer]:
    listed = WebSocketWSGIApplication(app.ENDPOINTS["/echo"][0], allowed_hosts=["evil.example"])
    with hardening_server(request.param, routes={LISTED_HOST: listed}) as running:
        yield running


def upgrade_head(host: str, *fields: str, path: str = "/echo") -> bytes:
    lines = [
        f"GET {path} HTTP/1.1",
        f"Host: {host}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {KEY}",
        "Sec-WebSocket-Version: 13",
        *fields,
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def test_server_refuses_dns_rebinding(server: RunningServer) -> None:
    rebound = f"evil.example:{server.port}"
    status, body = exchange(server, upgrade_head(rebound, f"Origin: http://{rebound}"))
    assert status == 403, body
    assert b"allowed_hosts" in body
    # The same request with the real (loopback) Host is accepted.
    local = f"{server.host}:{server.port}"
    assert exchange(server, upgrade_head(local, f"Origin: http://{local}"))[0] == 101


def test_server_accepts_a_listed_host(server: RunningServer) -> None:
    rebound = f"evil.example:{server.port}"
    status, _ = exchange(server, upgrade_head(rebound, f"Origin: http://{rebound}", path=LISTED_HOST))
    assert status == 101
    # The module's other endpoints list no host: the same request is refused there.
    assert exchange(server, upgrade_head(rebound, f"Origin: http://{rebound}"))[0] == 403


def test_server_refuses_an_upgrade_with_a_body(server: RunningServer) -> None:
    frame = frame_bytes(0x1, b"from-the-body")  # 2 + 4 + 13 bytes: a valid masked text frame
    request = upgrade_head(f"{server.host}:{server.port}", f"Content-Length: {len(frame)}") + frame
    status, body = exchange(server, request)
    assert status == 400, body
    assert b"must not have a body" in body
    assert b"from-the-body" not in body
    chunked = upgrade_head(f"{server.host}:{server.port}", "Transfer-Encoding: chunked") + b"0\r\n\r\n"
    assert exchange(server, chunked)[0] == 400


@pytest.mark.parametrize(
    ("fields", "what"),
    [
        (("Origin: http://evil.example", "Origin: http://{local}"), b"Origin"),
        (("Origin: http://{local}", "Host: evil.example"), b"Host"),
    ],
    ids=["origin", "host"],
)
def test_server_refuses_duplicate_fields(server: RunningServer, fields: tuple[str, ...], what: bytes) -> None:
    local = f"{server.host}:{server.port}"
    status, body = exchange(server, upgrade_head(local, *(field.format(local=local) for field in fields)))
    assert status == 400, (status, body)
    assert what in body


def test_server_refuses_a_folded_origin(server: RunningServer) -> None:
    local = f"{server.host}:{server.port}"
    status, body = exchange(server, upgrade_head(local, "Origin: http://evil.example", f" http://{local}"))
    # 400 from the middleware, or from a server that refuses obsolete line folding itself.
    assert status == 400, (status, body)


@pytest.mark.parametrize("server_name", ["wsgiref"])
def test_the_examples_take_allowed_hosts(server_name: str, tmp_path: Path) -> None:
    """``--allowed-host`` lets a real host name in; other names stay out (DNS rebinding)."""
    with echo_example(server_name, log_path=tmp_path / "echo.log", args=["--allowed-host", "chat.test"]) as proc:
        port = proc.port

        def status(host: str) -> int:
            head = upgrade_head(f"{host}:{port}", f"Origin: http://{host}:{port}")
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                sock.sendall(head.replace(b"GET /echo ", b"GET /ws "))
                return int(sock.recv(4096).split(b" ", 2)[1])

        assert status("chat.test") == 101
        assert status("evil.example") == 403
        assert status("127.0.0.1") == 101
