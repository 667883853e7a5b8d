"""Fuzz targets: bytes in, no exception out. Shared by atheris and hypothesis.

- :func:`handshake_target` builds a WSGI environ (and endpoint options) from
  the bytes and calls :func:`~ws4py_integrations.negotiate`: the answer must
  be an ``Accept`` or a 4xx ``Reject`` with a one-line reason.
- :func:`frames_target` negotiates a connection (with or without
  permessage-deflate, with one of several size limits) and feeds the bytes,
  in fuzzed chunks, to its ``MessageProtocol``; then drains
  ``inbox`` and ``data_to_send``. Half of the inputs are read as a list of
  frame descriptions and serialized (masked, optionally compressed) so the
  fuzzer reaches deep states (fragments, deflate, closing) quickly.
"""

from __future__ import annotations

import zlib
from typing import Any

from websockets.frames import Frame, Opcode
from websockets.protocol import State

from ws4py_integrations import Accept, Message, Pong, Reject, WebSocketOptions, negotiate
from ws4py_integrations.handshake import Accept as _Accept
from ws4py_integrations.protocol import MessageProtocol

__all__ = ["Bytes", "frames_target", "handshake_target"]

GOOD_KEY = "dGhlIHNhbXBsZSBub25jZQ=="


class Bytes:
    """Consumes fuzz input; past the end every read returns zeros / empty."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def byte(self) -> int:
        if self.pos >= len(self.data):
            return 0
        self.pos += 1
        return self.data[self.pos - 1]

    def take(self, count: int) -> bytes:
        chunk = self.data[self.pos : self.pos + count]
        self.pos += len(chunk)
        return chunk

    def rest(self) -> bytes:
        return self.take(len(self.data))

    def pick(self, choices: list[Any]) -> Any:
        return choices[self.byte() % len(choices)]

    def text(self) -> str:
        """A header value: latin-1 text as WSGI hands it over, without CR or LF."""
        raw = self.take(self.byte() % 64)
        return raw.decode("latin-1").replace("\r", "").replace("\n", "")

    @property
    def exhausted(self) -> bool:
        return self.pos >= len(self.data)


_HEADERS: dict[str, list[str]] = {
    "REQUEST_METHOD": ["GET", "POST", "get", ""],
    "SERVER_PROTOCOL": ["HTTP/1.1", "HTTP/1.0", "HTTP/2", "HTTP/1.10", ""],
    "HTTP_HOST": ["example.com:8080", "example.com", "[::1]:8080", "[::1", "a:b:c", ""],
    "HTTP_UPGRADE": ["websocket", "WebSocket", "h2c, websocket", "web socket", ""],
    "HTTP_CONNECTION": ["Upgrade", "keep-alive, upgrade", "close", ""],
    "HTTP_SEC_WEBSOCKET_KEY": [GOOD_KEY, "dGhlIHNhbXBsZSBub25jZQ", "AAAAAAAAAAAAAAAAAAAAAA==", "x" * 24, ""],
    "HTTP_SEC_WEBSOCKET_VERSION": ["13", "8", "13, 8", " 13", ""],
    "HTTP_SEC_WEBSOCKET_PROTOCOL": ["chat", "superchat, chat", "a,,b", '"chat"', ""],
    "HTTP_SEC_WEBSOCKET_EXTENSIONS": [
        "permessage-deflate",
        "permessage-deflate; client_max_window_bits",
        "permessage-deflate; server_max_window_bits=8; client_no_context_takeover",
        "permessage-deflate; server_max_window_bits=99",
        "permessage-deflate, permessage-deflate; x=1",
        "foo; bar",
    ],
    "HTTP_ORIGIN": ["http://example.com:8080", "https://good.example", "null", "http://[::1", ""],
}

_OPTIONS = [
    WebSocketOptions(),
    WebSocketOptions(compression=False),
    WebSocketOptions(protocols=["chat", "superchat"]),
    WebSocketOptions(protocols=lambda offered, environ: offered[0] if offered else None),
    WebSocketOptions(origins="*"),
    WebSocketOptions(origins=["https://good.example"]),
]


def fuzzed_environ(src: Bytes) -> dict[str, Any]:
    environ: dict[str, Any] = {"wsgi.url_scheme": src.pick(["http", "https"]), "PATH_INFO": "/"}
    for name, choices in _HEADERS.items():
        how = src.byte() % 4
        if how == 0 and name.startswith("HTTP_") and name not in ("HTTP_HOST",):
            continue  # header absent
        environ[name] = src.text() if how == 3 else choices[src.byte() % len(choices)]
    return environ


def handshake_target(data: bytes) -> None:
    src = Bytes(data)
    options = src.pick(_OPTIONS)
    environ = fuzzed_environ(src)
    result = negotiate(environ, options)
    if isinstance(result, Reject):
        assert 400 <= result.status < 500, result
        assert result.reason and "\n" not in result.reason, result
        result.status_line.encode("latin-1")
        result.body.decode("utf-8")
        for name, value in result.wsgi_headers():
            (name + value).encode("latin-1")
    else:
        assert isinstance(result, Accept)
        assert result.response.endswith(b"\r\n\r\n")
        assert result.response.count(b"\r\n\r\n") == 1
        if src.byte() & 1:
            _feed(result, src)


def _accepted(src: Bytes) -> _Accept:
    return _negotiated(src, 1)[0]


def _negotiated(src: Bytes, copies: int) -> list[_Accept]:
    """``copies`` handshakes of one fuzzed request: each has extension objects of its own."""
    environ = {
        "REQUEST_METHOD": "GET",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": "localhost",
        "HTTP_UPGRADE": "websocket",
        "HTTP_CONNECTION": "Upgrade",
        "HTTP_SEC_WEBSOCKET_KEY": GOOD_KEY,
        "HTTP_SEC_WEBSOCKET_VERSION": "13",
    }
    flags = src.byte()
    if flags & 1:
        environ["HTTP_SEC_WEBSOCKET_EXTENSIONS"] = (
            "permessage-deflate; client_no_context_takeover" if flags & 2 else "permessage-deflate"
        )
    limit = [2**20, 1024, 64, None][(flags >> 2) % 4]
    results = [negotiate(environ, WebSocketOptions(max_message_size=limit)) for _ in range(copies)]
    assert all(isinstance(result, Accept) for result in results)
    return results  # type: ignore[return-value]


def _structured(src: Bytes, deflate: bool) -> bytes:
    """Frames described by the input, serialized as a client would (masked)."""
    out = bytearray()
    compressor = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -15)
    for _ in range(64):
        if src.exhausted:
            break
        head = src.byte()
        opcode = [0, 1, 2, 8, 9, 10, 3, 11][head & 7]
        fin = bool(head & 8)
        payload = src.take(src.byte() % 200)
        rsv1 = False
        if deflate and head & 16 and opcode in (0, 1, 2):
            payload = compressor.compress(payload) + compressor.flush(zlib.Z_SYNC_FLUSH)
            if fin:
                payload = payload[:-4]
            rsv1 = opcode != 0
        if opcode == 8 and head & 32:
            # Any code, valid or not; the reason as given.
            payload = (1000 + src.byte() % 16).to_bytes(2, "big") + payload[:20]
        first = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | (0x20 if head & 64 and head & 128 else 0) | opcode
        mask = src.take(4).ljust(4, b"\0")
        length = len(payload)
        if length < 126:
            out += bytes([first, 0x80 | length])
        else:
            out += bytes([first, 0x80 | 126]) + length.to_bytes(2, "big")
        out += mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes(out)


def _feed(accept: _Accept, src: Bytes, stream: bytes | None = None) -> None:
    protocol = MessageProtocol.accepted(accept, 2**20)
    if stream is None:
        stream = src.rest()
    chunks = Bytes(stream)
    sizes = [1, 2, 7, 64, 1000, len(stream) or 1]
    while not chunks.exhausted and protocol.state is not State.CLOSED:
        size = sizes[len(chunks.data) % len(sizes)] if chunks.pos == 0 else sizes[chunks.pos % len(sizes)]
        protocol.receive_data(chunks.take(size))
        for event in protocol.inbox:
            assert isinstance(event, (Message, Pong))
        protocol.inbox = []
        for output in protocol.data_to_send():
            assert isinstance(output, bytes)
        for received in protocol.events_received():
            assert isinstance(received, Frame)
    if protocol.state is not State.CLOSED:
        protocol.receive_eof()
        protocol.data_to_send()
    if protocol.close_sent is not None:
        assert protocol.close_sent.code in (1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011) or (
            3000 <= protocol.close_sent.code < 5000 or 1000 <= protocol.close_sent.code < 1016
        )


def frames_target(data: bytes) -> None:
    src = Bytes(data)
    accept = _accepted(src)
    mode = src.byte()
    stream = _structured(src, bool(accept.extensions)) if mode & 1 else src.rest()
    _feed(accept, src, stream)


def _observe(protocol: MessageProtocol) -> tuple[object, ...]:
    inbox, protocol.inbox = protocol.inbox, []
    rcvd, sent = protocol.close_rcvd, protocol.close_sent
    return (
        inbox,
        protocol.data_to_send(),
        protocol.state,
        rcvd and (rcvd.code, rcvd.reason),
        sent and (sent.code, sent.reason),
    )


def fast_path_target(data: bytes) -> None:
    """Differential: the same pieces to a protocol with the small-frame fast path
    and to one without; every step must end the same (messages, bytes out, state)."""
    src = Bytes(data)
    # One handshake each: a compressed connection's extension holds its inflater.
    accept_fast, accept_slow = _negotiated(src, 2)
    limit = [2**20, 1024, 130, None][src.byte() % 4]
    mode = src.byte()
    stream = _structured(src, bool(accept_fast.extensions)) if mode & 1 else src.rest()
    fast, slow = MessageProtocol.accepted(accept_fast, limit), MessageProtocol.accepted(accept_slow, limit)
    slow.fast_path = False
    chunks = Bytes(stream)
    sizes = [1, 2, 7, 64, 1000, len(stream) or 1]
    while not chunks.exhausted:
        piece = chunks.take(sizes[(chunks.pos + mode) % len(sizes)])
        outcomes = []
        for protocol in (fast, slow):
            try:
                protocol.receive_data(piece)
                outcomes.append(None)
            except EOFError as exc:
                outcomes.append(type(exc))
        assert outcomes[0] == outcomes[1]
        assert _observe(fast) == _observe(slow)
    fast.receive_eof()
    slow.receive_eof()
    assert _observe(fast) == _observe(slow)


TARGETS = {"handshake": handshake_target, "frames": frames_target, "fast-path": fast_path_target}

# Seeds: a valid exchange for each target, so engines start from the interesting part.
SEEDS: dict[str, list[bytes]] = {
    "handshake": [bytes(40), bytes([0, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 1])],
    "frames": [
        bytes([0, 0]) + Frame(Opcode.TEXT, b"hello").serialize(mask=True),
        bytes([1, 1]) + bytes([0x19, 5]) + b"hello" + b"\0\0\0\0",
        bytes([5, 1]) + bytes([0x02, 3]) + b"abc" + b"\1\2\3\4" + bytes([0x08, 2]) + b"de" + b"\0\0\0\0",
    ],
    "fast-path": [
        bytes([0, 0, 0]) + Frame(Opcode.TEXT, b"hello").serialize(mask=True) * 3,
        bytes([0, 1, 1]) + bytes([0x09, 5]) + b"hello" + b"\1\2\3\4" + bytes([0x0A, 1]) + b"!" + b"\0\0\0\0",
    ],
}
