"""The Socket.IO v5 packet codec, against the encodings the specification's test-suite sends."""

from __future__ import annotations

import pytest

from ws4py_integrations.socketio import packet as pk


def test_encode_plain_packets() -> None:
    assert pk.encode(pk.Packet(pk.CONNECT, "/", {"sid": "abc"})) == ['0{"sid":"abc"}']
    assert pk.encode(pk.Packet(pk.CONNECT, "/admin", {"sid": "x"})) == ['0/admin,{"sid":"x"}']
    assert pk.encode(pk.Packet(pk.DISCONNECT, "/admin")) == ["1/admin,"]
    assert pk.encode(pk.Packet(pk.DISCONNECT)) == ["1"]
    assert pk.encode(pk.Packet(pk.EVENT, "/", ["message-back", 1, "2", {"3": [True]}])) == [
        '2["message-back",1,"2",{"3":[true]}]'
    ]
    assert pk.encode(pk.Packet(pk.ACK, "/", [1, "é"], 456)) == ['3456[1,"é"]']
    assert pk.encode(pk.Packet(pk.CONNECT_ERROR, "/random", {"message": "Invalid namespace"})) == [
        '4/random,{"message":"Invalid namespace"}'
    ]


def test_encode_binary_becomes_attachments() -> None:
    messages = pk.encode(pk.Packet(pk.EVENT, "/", ["message-back", b"\x01\x02\x03", {"x": bytearray(b"\x04")}]))
    assert messages == [
        '52-["message-back",{"_placeholder":true,"num":0},{"x":{"_placeholder":true,"num":1}}]',
        b"\x01\x02\x03",
        b"\x04",
    ]
    assert pk.encode(pk.Packet(pk.ACK, "/custom", [b"\x01"], 7)) == [
        '61-/custom,7[{"_placeholder":true,"num":0}]',
        b"\x01",
    ]
    # A binary type without binary data is sent as the plain type.
    assert pk.encode(pk.Packet(pk.BINARY_EVENT, "/", ["e"])) == ['2["e"]']
    assert pk.encode(pk.Packet(pk.BINARY_ACK, "/", [], 1)) == ["31[]"]


@pytest.mark.parametrize(
    ("namespace", "args"),
    [
        ("/", []),
        ("/", ["é", 1, None, {"a": [True, 2.5]}]),
        ("/admin", ["x"]),
        ("/", [b"\x01", {"b": bytearray(b"\x02")}]),
        ("/custom", [[b"\x03"]]),
        ("/", [("a", {"k": memoryview(b"m")}), 1.5, True]),
        ("/", [("a", {"k": [None, "x"]}), 1.5, True]),
    ],
)
def test_encode_ack_matches_encode(namespace: str, args: list[object]) -> None:
    expected = pk.encode(pk.Packet(pk.ACK, namespace, list(args), 12))
    assert pk.encode_ack(namespace, 12, args) == expected


def test_binary_is_found_wherever_it_is() -> None:
    class Text(str):
        pass

    assert pk.encode_ack("/", 1, [Text("t"), {"a": (1, [bytearray(b"b")])}])[1] == b"b"
    assert pk.encode_ack("/", 1, [Text("t"), {"a": (1, [None])}]) == ['31["t",{"a":[1,[null]]}]']


def test_encode_refuses_nan() -> None:
    with pytest.raises(ValueError):
        pk.encode_ack("/", 1, [float("nan")])


def test_decode_plain_packets() -> None:
    d = pk.Decoder()
    assert d.feed("0") == pk.Packet(pk.CONNECT, "/", None)
    assert d.feed('0{"token":"123"}') == pk.Packet(pk.CONNECT, "/", {"token": "123"})
    assert d.feed("0/custom,") == pk.Packet(pk.CONNECT, "/custom")
    assert d.feed("0/custom") == pk.Packet(pk.CONNECT, "/custom")  # the test-suite omits the comma
    assert d.feed('0/custom,{"token":"abc"}') == pk.Packet(pk.CONNECT, "/custom", {"token": "abc"})
    assert d.feed("1/custom") == pk.Packet(pk.DISCONNECT, "/custom")
    assert d.feed('2456["message-with-ack",1]') == pk.Packet(pk.EVENT, "/", ["message-with-ack", 1], 456)
    assert d.feed('2/a,1["e"]') == pk.Packet(pk.EVENT, "/a", ["e"], 1)
    assert d.feed("30[]") == pk.Packet(pk.ACK, "/", [], 0)
    assert d.feed("2[1,2]") == pk.Packet(pk.EVENT, "/", [1, 2])  # a number is an event name too


def test_decode_binary_packets() -> None:
    d = pk.Decoder()
    assert d.feed('52-789["message-with-ack",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]') is None
    assert d.waiting
    assert d.feed(b"\x01\x02\x03") is None
    packet = d.feed(b"\x04\x05\x06")
    assert packet == pk.Packet(pk.BINARY_EVENT, "/", ["message-with-ack", b"\x01\x02\x03", b"\x04\x05\x06"], 789)
    assert not d.waiting
    assert d.feed('61-/x,3[{"_placeholder":true,"num":0}]') is None
    assert d.feed(b"") == pk.Packet(pk.BINARY_ACK, "/x", [b""], 3)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "7",
        "x",
        '\u0662["x"]',  # an Arabic-Indic two is no packet type
        "4abc",  # CONNECT_ERROR from a client, and no JSON
        '4{"message":"x"}',  # never sent by a client
        "2{}",  # EVENT whose payload is no array
        "2[]",
        '2["connect"]',  # reserved event names
        '2["disconnect",1]',
        '2["newListener"]',
        "2[true]",
        "2[null]",
        '2abc["message-with-ack",1]',  # invalid ack id
        '2["e"',  # truncated JSON
        "0[]",  # CONNECT payload must be an object
        '1["x"]',  # DISCONNECT has no payload
        "3",  # ACK without id
        '3["x"]',
        "31{}",
        "01",  # an id on a CONNECT
        '5["e"]',  # attachments count missing
        '5x-["e"]',
        '50-["e"]',
        '5-1-["e"]',
        "2" + "9" * 16 + '["e"]',
    ],
)
def test_malformed_text_is_refused(text: str) -> None:
    with pytest.raises(pk.PacketError):
        pk.Decoder().feed(text)


def test_attachment_bounds() -> None:
    with pytest.raises(pk.PacketError):
        pk.Decoder(max_attachments=2).feed('53-["e"]')
    d = pk.Decoder(max_bytes=4)
    d.feed('52-["e"]')
    d.feed(b"abc")
    with pytest.raises(pk.PacketError, match="larger than 4 bytes"):
        d.feed(b"de")


def test_attachment_protocol_errors() -> None:
    with pytest.raises(pk.PacketError, match="binary message"):
        pk.Decoder().feed(b"stray")
    d = pk.Decoder()
    d.feed('51-["e",{"_placeholder":true,"num":0}]')
    with pytest.raises(pk.PacketError, match="text message"):
        d.feed('2["e"]')
    d = pk.Decoder()
    d.feed('51-["e",{"_placeholder":true,"num":3}]')
    with pytest.raises(pk.PacketError, match="missing attachment"):
        d.feed(b"x")
    d = pk.Decoder()
    d.feed('51-["e",{"_placeholder":true,"num":"0"}]')
    with pytest.raises(pk.PacketError):
        d.feed(b"x")


def test_unknown_type_constructing() -> None:
    with pytest.raises(ValueError):
        pk.Packet(9)
