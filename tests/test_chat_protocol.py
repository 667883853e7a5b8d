"""The chat example's server rules, checked with websocket-client on each server adapter.

Every refused client message gets an ``error`` back on its own connection
and nothing at all on anyone else's.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
import websocket  # websocket-client

from examples.chat import make_app
from examples.chat.protocol import (
    MAX_FRAME,
    MAX_NICK,
    MAX_ROOM,
    MAX_TEXT,
    ChatError,
    Hello,
    Join,
    ListRooms,
    Say,
    check_nick,
    nick_key,
    parse,
)
from examples.chat.server import (
    DIRECTORY,
    RATE_BURST,
    ROOM_PREFIX,
    STATIC_DIR,
    TRANSPORT_MAX_MESSAGE,
    ChatLimits,
    DirectoryFeed,
    directory_listing,
)
from tests.support.servers import RunningServer, available, serve
from ws4py_integrations import ThreadedManager, WebSocketError

TIMEOUT = 10.0
# How long "nothing arrives" is watched for.
QUIET = 0.3


# -- the parser alone -----------------------------------------------------------------


def test_parse_accepts_each_command() -> None:
    assert parse('{"type": "hello", "nick": " Zoë-1 "}') == Hello("Zoë-1")
    assert parse('{"type": "join", "room": "Lobby"}') == Join("lobby")
    assert parse('{"type": "say", "room": "lobby", "text": " hi\\n there "}') == Say("lobby", "hi\n there")
    assert parse('{"type": "rooms"}') == ListRooms()


@pytest.mark.parametrize(
    ("data", "code"),
    [
        ("not json", "bad_json"),
        ("{", "bad_json"),
        ("[" * 5000 + "]" * 5000, "too_long"),
        ("[" * 2000 + "]" * 2000, "bad_json"),  # deep nesting: RecursionError, not a crash
        ("[1, 2]", "bad_message"),
        ('"hello"', "bad_message"),
        ("null", "bad_message"),
        ("{}", "bad_message"),
        ('{"type": "nope"}', "bad_message"),
        ('{"type": 1}', "bad_message"),
        ('{"type": "hello"}', "bad_message"),
        ('{"type": "hello", "nick": 5}', "bad_message"),
        ('{"type": "hello", "nick": "bob", "admin": true}', "bad_message"),
        ('{"type": "say", "room": "lobby"}', "bad_message"),
        ('{"type": "hello", "nick": ""}', "nick_invalid"),
        ('{"type": "hello", "nick": "two words"}', "nick_invalid"),
        ('{"type": "hello", "nick": "<script>"}', "nick_invalid"),
        ('{"type": "hello", "nick": "_underscore_first"}', "nick_invalid"),
        (json.dumps({"type": "hello", "nick": "x" * (MAX_NICK + 1)}), "nick_invalid"),
        ('{"type": "join", "room": "a/b"}', "bad_room"),
        ('{"type": "join", "room": ""}', "bad_room"),
        ('{"type": "say", "room": "lobby", "text": "   "}', "bad_text"),
        ('{"type": "say", "room": "lobby", "text": "\\u0000\\u202e"}', "bad_text"),
        (json.dumps({"type": "say", "room": "lobby", "text": "x" * (MAX_TEXT + 1)}), "too_long"),
        ("x" * (MAX_FRAME + 1), "too_long"),
        (b'{"type": "rooms"}', "bad_message"),
    ],
)
def test_parse_refuses(data: str | bytes, code: str) -> None:
    with pytest.raises(ChatError) as info:
        parse(data)
    assert info.value.code == code
    assert info.value.message


def test_parse_drops_control_and_bidi_characters() -> None:
    # U+202E would reverse how the rest of the line displays.
    assert parse(json.dumps({"type": "say", "room": "a", "text": "a\u202eb\x07c\td"})) == Say("a", "abc\td")


# -- nicknames: what looks the same is the same ---------------------------------------

# Spelled with escapes: the look-alikes would be invisible in the source.
CYRILLIC_A = "\u0430"
CYRILLIC_ES = "\u0441"
CYRILLIC_IE = "\u0435"
MARIA = "\u041c\u0430\u0440\u0438\u044f"  # Cyrillic "Maria"
GREEK_ABE = "\u0391\u0392\u0395"  # capitals alpha, beta, epsilon


@pytest.mark.parametrize(
    ("nick", "same_as"),
    [
        ("ALICE", "alice"),
        ("\uff21\uff2c\uff29\uff23\uff25", "alice"),  # fullwidth, folded by NFKC
        ("al\u200bice", "alice"),  # zero-width space
        ("a\u00adlice\u2060", "alice"),  # soft hyphen, word joiner
        ("alice\ufe0f", "alice"),  # variation selector
        ("\u202ealice\u202c", "alice"),  # bidi override
        (CYRILLIC_A + "lice", "alice"),  # one Cyrillic letter (refused anyway: mixed scripts)
        (CYRILLIC_A + CYRILLIC_ES + CYRILLIC_IE, "ace"),  # all Cyrillic, a whole-script look-alike
        (GREEK_ABE, "abe"),
        ("Stra\u00dfe", "STRASSE"),  # case folding, not lower()
        ("Zoe\u0308", "Zo\u00eb"),  # decomposed and composed
    ],
)
def test_nick_key_folds_look_alikes(nick: str, same_as: str) -> None:
    assert nick_key(nick) == nick_key(same_as)


@pytest.mark.parametrize(
    ("nick", "other"),
    [
        ("alice", "alice1"),
        # Latin-internal look-alikes are left apart on purpose (docs/chat.rst).
        ("bob", "b0b"),
        ("all", "al1"),
        (MARIA, "Maria"),
    ],
)
def test_nick_key_keeps_different_names_apart(nick: str, other: str) -> None:
    assert nick_key(nick) != nick_key(other)


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (MARIA, MARIA),  # all Cyrillic: fine
        ("\u0395\u03bb\u03ad\u03bd\u03b7", "\u0395\u03bb\u03ad\u03bd\u03b7"),  # all Greek
        ("Zoe\u0308", "Zo\u00eb"),  # shown NFC-normalized
        ("\uff21\uff2c\uff29\uff23\uff25", "\uff21\uff2c\uff29\uff23\uff25"),  # kept as typed (NFC)
        ("al\u200bice", "alice"),  # invisible characters dropped from the name shown
        ("taro\u7530\u4e2d", "taro\u7530\u4e2d"),  # Latin with Han is not a look-alike mix
        ("x_1.y-2", "x_1.y-2"),
    ],
)
def test_check_nick_accepts(value: str, shown: str) -> None:
    assert check_nick(value) == shown


@pytest.mark.parametrize(
    "value",
    [
        CYRILLIC_A + "lice",  # Latin with Cyrillic
        "\u041caria",  # Cyrillic capital EM, then Latin
        "\u03b1lpha",  # Greek alpha, then Latin
        MARIA + "\u03b1",  # Cyrillic with Greek
        "\u200b\u200c\u200d",  # only invisible characters
        "\u3164",  # Hangul filler: a letter that shows nothing
        "\ufe0f",
        "a\x00b",
        "a\x1b[31mb",  # terminal escape
        "a\x7fb",
        "",
        "two words",
    ],
)
def test_check_nick_refuses(value: str) -> None:
    with pytest.raises(ChatError) as info:
        check_nick(value)
    assert info.value.code == "nick_invalid" and info.value.message


def test_mixed_script_refusal_says_why() -> None:
    with pytest.raises(ChatError, match="Cyrillic and Latin"):
        check_nick(CYRILLIC_A + "lice")


# -- the room directory, bounded -------------------------------------------------------


def test_directory_lists_the_biggest_rooms_only() -> None:
    counts = {f"{ROOM_PREFIX}r{n:02}": n for n in range(1, 61)} | {DIRECTORY: 60, "other:room": 99}
    listing = directory_listing(counts, 50)
    assert listing["total"] == 60 and len(listing["rooms"]) == 50
    assert listing["rooms"][0] == {"name": "r60", "members": 60}
    assert listing["rooms"][-1] == {"name": "r11", "members": 11}


def test_directory_message_has_a_size_bound() -> None:
    """50 rooms with the longest names in 4-byte characters stay under 8 KiB."""
    widest = "\U00020000"  # a CJK ideograph: 4 bytes in UTF-8, a letter
    counts = {f"{ROOM_PREFIX}{widest * (MAX_ROOM - 2)}{n:02}": 99_999 for n in range(500)}
    data = json.dumps(directory_listing(counts, 50), ensure_ascii=False, separators=(",", ":"))
    assert len(data.encode()) < 8 * 1024


class FakeTimerManager:
    """The two manager methods DirectoryFeed uses, with timers run by hand."""

    def __init__(self) -> None:
        self.room_counts: dict[str, int] = {}
        self.timers: list[tuple[float, Callable[[], Any]]] = []
        self.sent: list[tuple[str, str | None]] = []

    def call_later(self, delay: float, func: Callable[[], Any]) -> Any:
        self.timers.append((delay, func))
        return None

    def rooms(self) -> dict[str, int]:
        return dict(self.room_counts)

    def broadcast_local(self, data: str, room: str | None = None) -> int:
        self.sent.append((data, room))
        return 1

    def fire(self) -> float:
        delay, func = self.timers.pop(0)
        func()
        return delay


def test_directory_feed_coalesces_changes() -> None:
    feed = DirectoryFeed(interval=1.0, size=50)
    manager = FakeTimerManager()
    for n in range(1000):  # a bot's joins and leaves between two pushes
        manager.room_counts = {f"{ROOM_PREFIX}bot": 1} if n % 2 else {}
        feed.changed(manager)  # type: ignore[arg-type]
    assert len(manager.timers) == 1 and manager.timers[0][0] == 0.0  # the first push goes out at once
    manager.room_counts = {f"{ROOM_PREFIX}lobby": 2}
    manager.fire()
    assert [json.loads(data)["rooms"] for data, _ in manager.sent] == [[{"name": "lobby", "members": 2}]]
    assert manager.sent[0][1] == DIRECTORY

    feed.changed(manager)  # type: ignore[arg-type]
    feed.changed(manager)  # type: ignore[arg-type]
    assert len(manager.timers) == 1 and 0.5 < manager.timers[0][0] <= 1.0  # the rest of the interval
    manager.fire()
    assert len(manager.sent) == 1  # unchanged since the last push: nothing sent
    manager.room_counts = {}
    feed.changed(manager)  # type: ignore[arg-type]
    manager.fire()
    assert len(manager.sent) == 2 and feed.pushes == 2


# -- on a live server ---------------------------------------------------------------


class Client:
    """A websocket-client connection speaking the chat's JSON."""

    def __init__(self, url: str) -> None:
        self.nick: str | None = None
        self.ws = websocket.create_connection(url, timeout=TIMEOUT)
        self.welcome = self.recv()
        assert self.welcome["type"] == "welcome"

    def send(self, data: Any) -> None:
        if isinstance(data, bytes):
            self.ws.send_binary(data)
        else:
            self.ws.send(data if isinstance(data, str) else json.dumps(data))

    def recv(self, skip: tuple[str, ...] = ()) -> dict[str, Any]:
        """The next message whose type is not in ``skip``."""
        while True:
            self.ws.settimeout(TIMEOUT)
            message: dict[str, Any] = json.loads(self.ws.recv())
            if message["type"] not in skip:
                return message

    def expect(self, kind: str) -> dict[str, Any]:
        """The next message but room-directory updates (which come as rooms change); must be ``kind``."""
        message = self.recv(skip=() if kind == "rooms" else ("rooms",))
        assert message["type"] == kind, message
        return message

    def quiet(self, skip: tuple[str, ...] = ("rooms",)) -> list[dict[str, Any]]:
        """Messages that arrive within QUIET seconds, directory updates left out."""
        got: list[dict[str, Any]] = []
        deadline = time.monotonic() + QUIET
        while (remaining := deadline - time.monotonic()) > 0:
            self.ws.settimeout(remaining)
            try:
                message = json.loads(self.ws.recv())
            except websocket.WebSocketTimeoutException:
                break
            if message["type"] not in skip:
                got.append(message)
        return got

    def hello(self, nick: str) -> dict[str, Any]:
        self.send({"type": "hello", "nick": nick})
        ready = self.expect("ready")
        self.nick = ready["nick"]
        return ready

    def join(self, room: str) -> dict[str, Any]:
        """Join ``room``: the snapshot, then our own arrival, as every member sees it."""
        self.send({"type": "join", "room": room})
        joined = self.expect("joined")
        presence = self.expect("presence")
        assert (presence["room"], presence["nick"], presence["event"]) == (room, self.nick, "join")
        return joined

    def close(self) -> None:
        self.ws.close(timeout=2)


@pytest.fixture(params=[pytest.param(name, id=name) for name in available()])
def chat_server(request: pytest.FixtureRequest) -> Iterator[RunningServer]:
    with serve(request.param, make_app(history=3)) as running:
        yield running


@pytest.fixture
def connect(chat_server: RunningServer) -> Iterator[Callable[[], Client]]:
    """Open clients on the chat; all closed at the end of the test."""
    with ExitStack() as stack:

        def open_client() -> Client:
            client = Client(chat_server.ws_url("/ws"))
            stack.callback(client.close)
            return client

        yield open_client


def test_welcome_tells_the_limits(connect: Callable[[], Client]) -> None:
    limits = connect().welcome["limits"]
    assert (limits["text"], limits["nick"], limits["frame"]) == (MAX_TEXT, MAX_NICK, MAX_FRAME)


@pytest.mark.parametrize(
    ("data", "code"),
    [
        ("not json at all", "bad_json"),
        ("[]", "bad_message"),
        ({"type": "launch"}, "bad_message"),
        ({"type": "hello", "nick": "bad nick!"}, "nick_invalid"),
        ({"type": "hello", "nick": "n" * 50}, "nick_invalid"),
        ("y" * (MAX_FRAME + 10), "too_long"),
        (b"\x00binary", "bad_message"),
        ({"type": "join", "room": "lobby"}, "not_ready"),
        ({"type": "say", "room": "lobby", "text": "hi"}, "not_ready"),
    ],
)
def test_refused_message_gets_an_error_and_the_connection_stays(
    connect: Callable[[], Client], data: Any, code: str
) -> None:
    client = connect()
    client.send(data)
    error = client.expect("error")
    assert error["code"] == code and error["message"]
    # Still usable afterwards.
    assert client.hello("survivor")["nick"] == "survivor"


def test_nickname_is_unique_until_released(connect: Callable[[], Client]) -> None:
    alice = connect()
    alice.hello("Alice")
    other = connect()
    other.send({"type": "hello", "nick": "ALICE"})
    assert other.expect("error")["code"] == "nick_taken"
    other.send({"type": "hello", "nick": "alice2"})
    other.expect("ready")
    other.send({"type": "hello", "nick": "again"})
    assert other.expect("error")["code"] == "already_named"

    alice.close()
    third = connect()
    deadline = time.monotonic() + TIMEOUT
    while True:  # the name is released once the server has seen the close
        third.send({"type": "hello", "nick": "alice"})
        reply = third.recv(skip=("rooms",))
        if reply["type"] == "ready":
            break
        assert reply["code"] == "nick_taken" and time.monotonic() < deadline
        time.sleep(0.05)


def test_look_alike_nicknames_are_taken(connect: Callable[[], Client]) -> None:
    alice = connect()
    alice.hello("alice")
    other = connect()
    for spoof in ("ALICE", "\uff21\uff2c\uff29\uff23\uff25", "al\u200bice", "alice\ufe0f"):
        other.send({"type": "hello", "nick": spoof})
        error = other.expect("error")
        assert error["code"] == "nick_taken" and "looks the same" in error["message"], spoof
    other.send({"type": "hello", "nick": CYRILLIC_A + "lice"})
    error = other.expect("error")
    assert error["code"] == "nick_invalid" and "Cyrillic and Latin" in error["message"]

    # A name in one non-Latin script is welcome, shown as typed, and unique too.
    assert other.hello(MARIA)["nick"] == MARIA
    third = connect()
    third.send({"type": "hello", "nick": MARIA.upper()})
    assert third.expect("error")["code"] == "nick_taken"
    # A whole-script look-alike of a Latin name in use.
    assert third.hello("ace")["nick"] == "ace"
    fourth = connect()
    fourth.send({"type": "hello", "nick": CYRILLIC_A + CYRILLIC_ES + CYRILLIC_IE})
    assert fourth.expect("error")["code"] == "nick_taken"
    assert alice.quiet() == []


def test_room_messages_presence_and_leave(connect: Callable[[], Client]) -> None:
    alice, bob = connect(), connect()
    alice.hello("alice")
    bob.hello("bob")
    assert alice.join("garden")["members"] == ["alice"]
    assert bob.join("garden")["members"] == ["alice", "bob"]
    assert alice.expect("presence") | {"ts": 0} == {
        "type": "presence",
        "room": "garden",
        "nick": "bob",
        "event": "join",
        "ts": 0,
    }

    alice.send({"type": "say", "room": "garden", "text": "<b>hi</b> bob"})
    to_bob, to_alice = bob.expect("message"), alice.expect("message")
    assert to_bob == to_alice
    assert (to_bob["nick"], to_bob["text"], to_bob["room"]) == ("alice", "<b>hi</b> bob", "garden")

    bob.send({"type": "leave", "room": "garden"})
    assert bob.expect("left")["room"] == "garden"
    leave = alice.expect("presence")
    assert (leave["nick"], leave["event"]) == ("bob", "leave")
    bob.send({"type": "say", "room": "garden", "text": "still here?"})
    assert bob.expect("error")["code"] == "not_in_room"
    assert alice.quiet() == []


def test_joiner_gets_the_last_n_messages(connect: Callable[[], Client]) -> None:
    alice = connect()
    alice.hello("alice")
    alice.join("history")
    for n in range(5):
        alice.send({"type": "say", "room": "history", "text": f"message {n}"})
        alice.expect("message")
    bob = connect()
    bob.hello("bob")
    history = bob.join("history")["history"]  # the fixture's app keeps 3
    assert [m["text"] for m in history] == ["message 2", "message 3", "message 4"]
    assert len({m["id"] for m in history}) == 3


def test_room_directory_is_live(connect: Callable[[], Client]) -> None:
    alice, bob = connect(), connect()
    assert alice.hello("alice")["rooms"] == []
    bob.hello("bob")
    alice.join("kitchen")
    rooms = bob.expect("rooms")["rooms"]
    assert rooms == [{"name": "kitchen", "members": 1}]
    bob.send({"type": "rooms"})
    assert bob.expect("rooms")["rooms"] == rooms


def test_malformed_messages_never_disturb_other_users(connect: Callable[[], Client]) -> None:
    alice, bob, mallory = connect(), connect(), connect()
    for client, nick in ((alice, "alice"), (bob, "bob"), (mallory, "mallory")):
        client.hello(nick)
        client.join("main")
    alice.quiet(), bob.quiet()  # presence of the later joiners

    garbage: list[Any] = [
        "}{",
        "[" * 1000,
        {"type": "say", "room": "main", "text": "z" * (MAX_TEXT + 1)},
        {"type": "say", "room": "main", "text": ""},
        {"type": "say", "room": "main", "text": "hi", "nick": "alice"},  # spoofing attempt
        {"type": "say", "room": "elsewhere", "text": "hi"},
        {"type": "join", "room": "../../etc"},
        {"type": "hello", "nick": "alice"},
        {"type": "leave", "room": "nowhere"},
        b"\xff\xfe",
        "q" * (MAX_FRAME + 1),
    ]
    for data in garbage:
        mallory.send(data)
        assert mallory.expect("error")["code"]
    assert alice.quiet() == [] and bob.quiet() == []

    alice.send({"type": "say", "room": "main", "text": "all fine here"})
    assert bob.expect("message")["text"] == alice.expect("message")["text"] == "all fine here"

    # Past the transport limit the library closes that connection alone (1009).
    mallory.send("x" * (TRANSPORT_MAX_MESSAGE + 1))
    mallory.ws.settimeout(TIMEOUT)
    opcode, frame = mallory.ws.recv_data_frame(control_frame=True)
    while opcode != websocket.ABNF.OPCODE_CLOSE:
        opcode, frame = mallory.ws.recv_data_frame(control_frame=True)
    assert int.from_bytes(frame.data[:2], "big") == 1009
    # As a browser does once the server has closed its side.
    mallory.ws.shutdown()  # type: ignore[no-untyped-call]
    for client in (alice, bob):
        leave = client.expect("presence")
        assert (leave["nick"], leave["event"]) == ("mallory", "leave")
    bob.send({"type": "say", "room": "main", "text": "still fine"})
    assert alice.expect("message")["text"] == "still fine"


def test_flood_is_throttled_for_the_flooder_only(connect: Callable[[], Client]) -> None:
    alice, flooder = connect(), connect()
    alice.hello("alice")
    alice.join("main")
    flooder.hello("flood")
    flooder.join("main")
    alice.quiet()
    sent = RATE_BURST * 3
    for n in range(sent):
        flooder.send({"type": "say", "room": "main", "text": f"spam {n}"})
    notices = [r["code"] for r in flooder.quiet(skip=("rooms", "message"))]
    spam = [m for m in alice.quiet() if m["type"] == "message"]
    # hello and join took two tokens of the burst; a few more refill meanwhile.
    assert RATE_BURST - 2 <= len(spam) < sent
    # A notice when throttling starts, not one per dropped message.
    assert set(notices) == {"rate_limited"} and len(notices) <= 1 + (len(spam) - (RATE_BURST - 2))
    alice.send({"type": "say", "room": "main", "text": "I can still talk"})
    assert alice.expect("message")["text"] == "I can still talk"


# -- a bot churning rooms costs the others little ---------------------------------

CYCLES = 500
# What an idle observer may receive while a bot churns rooms: at most one
# directory message per interval (plus the first and the last), none larger
# than the directory's 8 KiB bound.
DIRECTORY_BYTES_MAX = 8 * 1024


class Observer(Client):
    """A named, idle user that records every directory message and its size."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.hello("observer")
        self.directories: list[dict[str, Any]] = []
        self.bytes = 0

    def until_listed(self, room: str) -> None:
        """Read until a directory lists ``room``; every message read is counted."""
        deadline = time.monotonic() + TIMEOUT
        while (remaining := deadline - time.monotonic()) > 0:
            self.ws.settimeout(remaining)
            raw = self.ws.recv()
            self.bytes += len(raw.encode() if isinstance(raw, str) else raw)
            message = json.loads(raw)
            assert message["type"] == "rooms", message  # in no room: nothing else reaches it
            self.directories.append(message)
            if any(entry["name"] == room for entry in message["rooms"]):
                return
        raise AssertionError(f"no directory listed #{room} within {TIMEOUT} s")


def _bound(elapsed: float, interval: float) -> int:
    """Directory messages allowed in ``elapsed`` seconds: one per interval, plus both ends."""
    return int(elapsed / interval) + 2


@pytest.fixture(params=[pytest.param(name, id=name) for name in available()])
def server_name(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


def test_room_churn_without_rate_limits_is_coalesced(server_name: str) -> None:
    """Even with the rate limits lifted, 500 join/leave cycles cost an observer a few messages."""
    unlimited = ChatLimits(rate_burst=10**6, rate_per_second=10**6, room_burst=10**6, room_per_second=10**6)
    with serve(server_name, make_app(limits=unlimited)) as server, ExitStack() as stack:
        observer = Observer(server.ws_url("/ws"))
        stack.callback(observer.close)
        bot = Client(server.ws_url("/ws"))
        stack.callback(bot.close)
        bot.hello("bot")
        started = time.monotonic()
        for n in range(CYCLES):
            room = f"spam{n % 7}"
            bot.join(room)
            bot.send({"type": "leave", "room": room})
            assert bot.expect("left")["room"] == room
        bot.join("final")
        observer.until_listed("final")
        elapsed = time.monotonic() - started
    count = len(observer.directories)
    assert count <= _bound(elapsed, unlimited.directory_interval), (count, elapsed)
    assert observer.bytes <= count * DIRECTORY_BYTES_MAX
    # 1000 changes: without coalescing that would be 1000 directory messages.
    assert count < CYCLES // 10


def test_a_room_churning_bot_is_rate_limited(server_name: str) -> None:
    """A bot sending 500 join/leave cycles flat out: throttled, and the observer barely notices."""
    limits = ChatLimits()
    with serve(server_name, make_app()) as server, ExitStack() as stack:
        observer = Observer(server.ws_url("/ws"))
        stack.callback(observer.close)
        bot = Client(server.ws_url("/ws"))
        stack.callback(bot.close)
        bot.hello("bot")
        started = time.monotonic()
        for n in range(CYCLES):
            bot.send({"type": "join", "room": f"spam{n % 7}"})
            bot.send({"type": "leave", "room": f"spam{n % 7}"})
        # The replies to whatever got through, then one join once the limit
        # allows it again: the server has handled the whole flood by then.
        replies: list[dict[str, Any]] = []
        deadline = time.monotonic() + TIMEOUT
        while not any(r["type"] == "joined" and r["room"] == "final" for r in replies):
            assert time.monotonic() < deadline, "the bot never got to join again"
            bot.send({"type": "join", "room": "final"})
            replies += bot.quiet()
        observer.until_listed("final")
        elapsed = time.monotonic() - started
    codes = [r["code"] for r in replies if r["type"] == "error"]
    assert "rate_limited" in codes
    joins = sum(1 for r in replies if r["type"] == "joined")
    # The room limit's burst, then its rate, for the whole run.
    assert joins <= limits.room_burst + elapsed * limits.room_per_second + 1, (joins, elapsed)
    count = len(observer.directories)
    assert count <= _bound(elapsed, limits.directory_interval), (count, elapsed)
    assert observer.bytes <= 50 * 1024


class FlakyBrokerManager(ThreadedManager):
    """A manager whose cross-process delivery fails after the local one, as a broker's can."""

    failing = False

    def broadcast(self, data: Any, room: str | None = None, *, exclude: Any = ()) -> int:
        count = super().broadcast(data, room, exclude=exclude)
        if self.failing:
            raise WebSocketError("broker unreachable")
        return count


def test_a_failing_broker_is_reported_to_the_sender() -> None:
    manager = FlakyBrokerManager(name="chat-flaky")
    try:
        with serve("wsgiref", make_app(manager=manager)) as server, ExitStack() as stack:
            alice, bob = Client(server.ws_url("/ws")), Client(server.ws_url("/ws"))
            stack.callback(alice.close)
            stack.callback(bob.close)
            for client, nick in ((alice, "alice"), (bob, "bob")):
                client.hello(nick)
                client.join("main")
            alice.quiet()
            manager.failing = True
            alice.send({"type": "say", "room": "main", "text": "anyone?"})
            # Delivered in this process all the same, and the sender is told.
            assert bob.expect("message")["text"] == alice.expect("message")["text"] == "anyone?"
            assert alice.expect("error")["code"] == "delivery_failed"
            manager.failing = False
            bob.send({"type": "say", "room": "main", "text": "still connected"})
            assert alice.expect("message")["text"] == "still connected"
    finally:
        manager.stop(timeout=5)


# -- the page ----------------------------------------------------------------------------


def _get(server: RunningServer, path: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(server.http_url(path), method=method)
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def test_page_and_static_files(chat_server: RunningServer) -> None:
    status, headers, body = _get(chat_server, "/")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert "script-src 'self'" in headers["Content-Security-Policy"]
    assert b'<script src="/static/chat.js"' in body
    status, headers, body = _get(chat_server, "/static/chat.js")
    assert status == 200 and "javascript" in headers["Content-Type"]
    assert _get(chat_server, "/static/chat.css")[0] == 200
    for path in ("/static/../server.py", "/static/", "/static/missing.js", "/server.py"):
        assert _get(chat_server, path)[0] == 404, path
    assert _get(chat_server, "/", method="POST")[0] == 405


def test_page_builds_no_markup_from_data() -> None:
    """The page inserts text with textContent only: user data never becomes markup."""
    script = (STATIC_DIR / "chat.js").read_text()
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert sink not in script, sink
    html = (Path(STATIC_DIR) / "index.html").read_text()
    assert "<script>" not in html and "style=" not in html and "http" not in html.replace("http-equiv", "")
