"""``trusted_proxies``: forwarded scheme and host, believed from configured proxies only.

``negotiate`` on environ dicts, then the middleware through WebTest (no server).
The same paths behind a real nginx are in tests/test_nginx.py.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from webtest import TestApp

from ws4py_integrations import Accept, Reject, WebSocket, WebSocketMiddleware, WebSocketOptions, negotiate

KEY = "dGhlIHNhbXBsZSBub25jZQ=="
PROXY = "10.0.0.7"
PUBLIC = "chat.example.com"
TRUSTING = WebSocketOptions.from_kwargs(trusted_proxies=["127.0.0.1", "10.0.0.0/8"], allowed_hosts=[PUBLIC])


def environ(remote: str = PROXY, host: str = PUBLIC, origin: str | None = None, **extra: Any) -> dict[str, Any]:
    """An upgrade request as the application sees it behind a TLS-terminating proxy (plain http)."""
    result: dict[str, Any] = {
        "REQUEST_METHOD": "GET",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "PATH_INFO": "/ws",
        "wsgi.url_scheme": "http",
        "REMOTE_ADDR": remote,
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


def reason(result: Accept | Reject) -> str:
    assert isinstance(result, Reject), f"accepted: {result}"
    return f"{result.status} {result.reason}"


# -- the option itself ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ("127.0.0.1", "must be a list"),
        (["10.0.0.1/8"], "is not an IP address or network"),
        (["proxy.example"], "is not an IP address or network"),
        ([7], "entries must be strings"),
        ([["127.0.0.1"]], "entries must be strings"),
        (["*"], "would trust every client"),
        (["0.0.0.0/0"], "would trust every client"),
    ],
)
def test_malformed_trusted_proxies_fail_at_construction(entries: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        WebSocketOptions.from_kwargs(trusted_proxies=entries)


def test_addresses_networks_and_ipv6_are_accepted() -> None:
    options = WebSocketOptions.from_kwargs(trusted_proxies=["127.0.0.1", "10.0.0.0/8", "[::1]", "fd00::/8"])
    assert options.trusted_proxies == ["127.0.0.1", "10.0.0.0/8", "[::1]", "fd00::/8"]


# -- X-Forwarded-Proto / X-Forwarded-Host ----------------------------------------------------


def test_https_origin_behind_tls_termination_is_refused_without_the_option() -> None:
    request = environ(origin=f"https://{PUBLIC}", HTTP_X_FORWARDED_PROTO="https")
    result = negotiate(request, WebSocketOptions.from_kwargs(allowed_hosts=[PUBLIC]))
    assert reason(result).startswith("403 Origin 'https://chat.example.com' is not allowed")
    # The refusal says what to do.
    assert "trusted_proxies" in reason(result)


def test_https_origin_is_accepted_with_x_forwarded_proto_from_a_trusted_proxy() -> None:
    request = environ(origin=f"https://{PUBLIC}", HTTP_X_FORWARDED_PROTO="https")
    assert isinstance(negotiate(request, TRUSTING), Accept)


def test_forwarded_headers_from_anyone_else_change_nothing(caplog: pytest.LogCaptureFixture) -> None:
    # A client that connects directly and claims https itself.
    request = environ(remote="203.0.113.9", origin=f"https://{PUBLIC}", HTTP_X_FORWARDED_PROTO="https")
    with caplog.at_level(logging.DEBUG, logger="ws4py_integrations.handshake"):
        assert reason(negotiate(request, TRUSTING)).startswith("403 Origin")
    assert "not in trusted_proxies" in caplog.text
    # Nor can it move the host: the Host it sent is judged.
    request = environ(remote="203.0.113.9", host="evil.example", HTTP_X_FORWARDED_HOST=PUBLIC)
    assert reason(negotiate(request, TRUSTING)) == "403 Host 'evil.example' is not allowed (allowed_hosts)"
    # And its plain-http same-origin request still works as before.
    assert isinstance(negotiate(environ(remote="203.0.113.9", origin=f"http://{PUBLIC}"), TRUSTING), Accept)


@pytest.mark.parametrize("remote", ["", "unix:/run/app.sock", "not an address", "::ffff:203.0.113.9"])
def test_unparsable_or_other_remote_addresses_are_not_trusted(remote: str) -> None:
    request = environ(remote=remote, origin=f"https://{PUBLIC}", HTTP_X_FORWARDED_PROTO="https")
    assert reason(negotiate(request, TRUSTING)).startswith("403 Origin")


def test_ipv4_mapped_and_ipv6_proxy_addresses_match() -> None:
    request = environ(remote="::ffff:10.1.2.3", origin=f"https://{PUBLIC}", HTTP_X_FORWARDED_PROTO="https")
    assert isinstance(negotiate(request, TRUSTING), Accept)
    options = WebSocketOptions.from_kwargs(trusted_proxies=["[::1]"], allowed_hosts=[PUBLIC])
    request = environ(remote="::1", origin=f"https://{PUBLIC}", HTTP_X_FORWARDED_PROTO="https")
    assert isinstance(negotiate(request, options), Accept)


def test_the_proto_is_the_public_scheme_in_both_directions() -> None:
    # An http page behind a proxy that reaches the application over https.
    request = environ(origin=f"http://{PUBLIC}", HTTP_X_FORWARDED_PROTO="http", **{"wsgi.url_scheme": "https"})
    assert isinstance(negotiate(request, TRUSTING), Accept)
    # wss counts as https, ws as http; a list means the last hop's value.
    for proto, origin in (("wss", "https"), ("WS", "http"), ("http, https", "https"), ("https,http", "http")):
        request = environ(origin=f"{origin}://{PUBLIC}", HTTP_X_FORWARDED_PROTO=proto)
        assert isinstance(negotiate(request, TRUSTING), Accept), proto
    request = environ(origin=f"http://{PUBLIC}", HTTP_X_FORWARDED_PROTO="https")
    assert reason(negotiate(request, TRUSTING)).startswith("403 Origin")


def test_x_forwarded_host_is_the_public_host_for_origin_and_allowed_hosts() -> None:
    # The proxy reaches the application by an internal name and forwards the public one.
    request = environ(
        host="app.internal:8001",
        origin=f"https://{PUBLIC}:8443",
        HTTP_X_FORWARDED_PROTO="https",
        HTTP_X_FORWARDED_HOST=f"{PUBLIC}:8443",
    )
    assert isinstance(negotiate(request, TRUSTING), Accept)
    # allowed_hosts judges the forwarded host, not the internal one.
    request = environ(host=PUBLIC, HTTP_X_FORWARDED_HOST="evil.example")
    assert reason(negotiate(request, TRUSTING)) == "403 Host 'evil.example' is not allowed (allowed_hosts)"
    # The default (no allowed_hosts) trusts loopback and IP literals only, forwarded or not.
    options = WebSocketOptions.from_kwargs(trusted_proxies=[PROXY])
    request = environ(host="127.0.0.1:8001", HTTP_X_FORWARDED_HOST=PUBLIC)
    assert "without allowed_hosts only loopback" in reason(negotiate(request, options))
    request = environ(host=PUBLIC, origin="https://127.0.0.1:8443", **{
        "HTTP_X_FORWARDED_HOST": "127.0.0.1:8443", "HTTP_X_FORWARDED_PROTO": "https"})  # fmt: skip
    assert isinstance(negotiate(request, options), Accept)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"HTTP_X_FORWARDED_PROTO": "ftp"}, "400 unsupported scheme 'ftp' in X-Forwarded-Proto from trusted proxy"),
        ({"HTTP_X_FORWARDED_PROTO": ""}, "400 unsupported scheme '' in X-Forwarded-Proto"),
        ({"HTTP_X_FORWARDED_HOST": "a b"}, "400 malformed host 'a b' in X-Forwarded-Host from trusted proxy 10.0.0.7"),
        ({"HTTP_X_FORWARDED_HOST": "user@host"}, "400 malformed host 'user@host' in X-Forwarded-Host"),
        ({"HTTP_X_FORWARDED_HOST": "host:99999"}, "400 malformed host 'host:99999'"),
    ],
)
def test_malformed_values_from_a_trusted_proxy_are_400(headers: dict[str, str], expected: str) -> None:
    assert reason(negotiate(environ(origin=f"https://{PUBLIC}", **headers), TRUSTING)).startswith(expected)


def test_the_same_malformed_values_from_a_client_are_ignored() -> None:
    request = environ(remote="192.0.2.1", origin=f"http://{PUBLIC}", HTTP_X_FORWARDED_PROTO="ftp")
    assert isinstance(negotiate(request, TRUSTING), Accept)


# -- Forwarded (RFC 7239) -----------------------------------------------------------------


@pytest.mark.parametrize(
    "forwarded",
    [
        f'proto=https;host="{PUBLIC}"',
        f"proto=https;host={PUBLIC}",
        f'for=192.0.2.60;proto=https;by=203.0.113.43;host="{PUBLIC}"',
        f'For="[2001:db8::1]:4711"; Proto=HTTPS ; Host="{PUBLIC}:443"',
        # Each proxy appends an element; the one our trusted proxy appended is the last.
        f"proto=http;host=evil.example, proto=https;host={PUBLIC}",
        f"proto=https;host={PUBLIC},",  # an empty list element counts for nothing
        f" , ;proto=https; host={PUBLIC} ;, \t",  # empty pairs and elements, optional whitespace
        f'proto=https;host="{PUBLIC}";ext="a \\"quoted\\" ;,= value"',
    ],
)
def test_forwarded_last_element_gives_proto_and_host(forwarded: str) -> None:
    request = environ(host="app.internal:8001", origin=f"https://{PUBLIC}", HTTP_FORWARDED=forwarded)
    assert isinstance(negotiate(request, TRUSTING), Accept), forwarded


def test_forwarded_wins_over_x_forwarded_headers() -> None:
    # One header family is read, never a mix: the proxy sets (or removes) the one it uses.
    request = environ(
        origin=f"https://{PUBLIC}",
        HTTP_FORWARDED="proto=http",
        HTTP_X_FORWARDED_PROTO="https",
    )
    assert reason(negotiate(request, TRUSTING)).startswith("403 Origin")
    # Without host= in the element, the request's Host stands.
    request = environ(origin=f"https://{PUBLIC}", HTTP_FORWARDED="proto=https", HTTP_X_FORWARDED_HOST="evil.example")
    assert isinstance(negotiate(request, TRUSTING), Accept)


@pytest.mark.parametrize(
    "forwarded",
    [
        "proto",
        "proto=",
        "proto=https;proto=http",
        'host="unterminated',
        "proto=https host=x",
        "=https",
        "proto=https;host=a\x00b",
    ],
)
def test_malformed_forwarded_from_a_trusted_proxy_is_400(forwarded: str) -> None:
    result = negotiate(environ(origin=f"https://{PUBLIC}", HTTP_FORWARDED=forwarded), TRUSTING)
    assert reason(result).startswith("400 malformed Forwarded header from trusted proxy 10.0.0.7: ")


@pytest.mark.parametrize(
    ("forwarded", "expected"),
    [
        ("proto=gopher", "400 unsupported scheme 'gopher' in Forwarded from trusted proxy 10.0.0.7"),
        ('host="a/b"', "400 malformed host 'a/b' in Forwarded from trusted proxy 10.0.0.7"),
        ('host=""', "400 malformed host '' in Forwarded from trusted proxy 10.0.0.7"),
    ],
)
def test_bad_forwarded_values_are_400(forwarded: str, expected: str) -> None:
    assert reason(negotiate(environ(HTTP_FORWARDED=forwarded), TRUSTING)) == expected


def test_an_empty_forwarded_header_changes_nothing() -> None:
    request = environ(origin=f"http://{PUBLIC}", HTTP_FORWARDED="")
    assert isinstance(negotiate(request, TRUSTING), Accept)


def test_trusted_decision_is_logged_at_debug(caplog: pytest.LogCaptureFixture) -> None:
    request = environ(origin=f"https://{PUBLIC}", HTTP_FORWARDED=f"proto=https;host={PUBLIC}")
    with caplog.at_level(logging.DEBUG, logger="ws4py_integrations.handshake"):
        assert isinstance(negotiate(request, TRUSTING), Accept)
    assert f"trusted proxy 10.0.0.7: public scheme https, host '{PUBLIC}'" in caplog.text


def test_explicit_origin_policies_and_hooks_see_the_real_environ() -> None:
    seen: list[str] = []

    def check(origin: str | None, env: Any) -> bool:
        seen.append(env["wsgi.url_scheme"])
        return True

    options = WebSocketOptions.from_kwargs(trusted_proxies=[PROXY], origins=check)
    assert isinstance(negotiate(environ(origin="https://x", HTTP_X_FORWARDED_PROTO="https"), options), Accept)
    assert seen == ["http"]


def test_without_the_option_forwarded_headers_are_never_parsed() -> None:
    request = environ(origin=f"http://{PUBLIC}", HTTP_FORWARDED="this is not parsed")
    assert isinstance(negotiate(request, WebSocketOptions.from_kwargs(allowed_hosts=[PUBLIC])), Accept)


# -- through the middleware (WebTest) -------------------------------------------------------


UPGRADE = {
    "Upgrade": "websocket",
    "Connection": "Upgrade",
    "Sec-WebSocket-Key": KEY,
    "Sec-WebSocket-Version": "13",
    "Origin": f"https://{PUBLIC}",
    "X-Forwarded-Proto": "https",
}


def webtest(remote: str, **options: Any) -> TestApp:
    app = WebSocketMiddleware(lambda env, start: [], {"/ws": WebSocket}, allowed_hosts=[PUBLIC], **options)
    return TestApp(app, lint=False, extra_environ={"SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": remote})


def test_webtest_trusted_proxy_reaches_the_upgrade() -> None:
    response = webtest(PROXY, trusted_proxies=["10.0.0.0/8"]).get(
        "/ws", headers={**UPGRADE, "Host": PUBLIC}, expect_errors=True
    )
    # 501: the handshake passed; WebTest has no server to hand the connection to.
    assert response.status_int == 501


def test_webtest_other_client_or_no_option_is_403() -> None:
    for app in (webtest("192.0.2.1", trusted_proxies=["10.0.0.0/8"]), webtest(PROXY)):
        response = app.get("/ws", headers={**UPGRADE, "Host": PUBLIC}, expect_errors=True)
        assert response.status_int == 403
        assert "Origin 'https://chat.example.com' is not allowed" in response.text


def test_webtest_malformed_forwarded_is_400_with_the_reason() -> None:
    response = webtest(PROXY, trusted_proxies=["10.0.0.0/8"]).get(
        "/ws", headers={**UPGRADE, "Host": PUBLIC, "Forwarded": "proto=https;;host"}, expect_errors=True
    )
    assert response.status_int == 400
    assert response.text == "malformed Forwarded header from trusted proxy 10.0.0.7: 'proto=https;;host'\n"
