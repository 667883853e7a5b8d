"""The chat server: one WebSocket handler, shared room state, the static page.

Room traffic goes only through the manager's rooms (``join``/``leave``/
``publish``/``members``), so a manager whose ``publish`` reaches other
processes (a broker) carries the chat across them unchanged. What stays in
this process is the :class:`Chat` state: nicknames in use and each room's
recent history.

Server messages (JSON text)::

    {"type": "welcome",  "limits": {...}}                      on connect
    {"type": "ready",    "nick": "alice", "rooms": [...]}      hello accepted
    {"type": "rooms",    "rooms": [{"name": "lobby", "members": 2}, ...], "total": 1}
    {"type": "joined",   "room": "lobby", "members": [...], "history": [message, ...]}
    {"type": "left",     "room": "lobby"}
    {"type": "message",  "id": "...", "room": "lobby", "nick": "alice", "text": "hi", "ts": 1700000000.0}
    {"type": "presence", "room": "lobby", "nick": "bob", "event": "join" | "leave", "ts": ...}
    {"type": "error",    "code": "bad_json", "message": "..."}
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import mimetypes
import secrets
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ws4py_integrations import Manager, Message, WebSocket, WebSocketClosed, WebSocketError, WebSocketMiddleware
from ws4py_integrations.middleware import StartResponse, WSGIApp

from .protocol import (
    MAX_FRAME,
    MAX_NICK,
    MAX_ROOM,
    MAX_TEXT,
    ChatError,
    Command,
    Hello,
    Join,
    Leave,
    ListRooms,
    Say,
    nick_key,
    parse,
)

__all__ = ["STATIC_DIR", "Chat", "ChatLimits", "ChatWebSocket", "DirectoryFeed", "directory_listing", "make_app"]

logger = logging.getLogger("examples.chat")

STATIC_DIR = Path(__file__).with_name("static")

# Manager room names: prefixed, so the chat can share a manager with other
# endpoints without mixing rooms.
ROOM_PREFIX = "chat:room:"
# Every named user is in this room and gets the live room directory.
DIRECTORY = "chat:directory"

#: Rooms a connection may be in at once.
MAX_ROOMS_PER_USER = 10
# A connection may send RATE_BURST messages at once, then RATE_PER_SECOND.
RATE_BURST = 20
RATE_PER_SECOND = 5.0
# Of those, joins and leaves: ROOM_BURST at once (a reconnecting page rejoins
# all its rooms), then ROOM_PER_SECOND. Each one tells a room's members.
ROOM_BURST = MAX_ROOMS_PER_USER
ROOM_PER_SECOND = 1.0
#: At most one directory push per this many seconds, and only when it changed.
DIRECTORY_INTERVAL = 1.0
#: Rooms listed in the directory (the biggest); ``total`` tells how many exist.
DIRECTORY_SIZE = 50

# Frames larger than this fail the connection with 1009 before the chat sees
# them; between MAX_FRAME and this, the chat answers "too_long" instead.
TRANSPORT_MAX_MESSAGE = 64 * 1024


def _dump(obj: dict[str, Any]) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


@dataclass(frozen=True, slots=True)
class ChatLimits:
    """The flood and amplification limits of one chat application."""

    rate_burst: int = RATE_BURST
    rate_per_second: float = RATE_PER_SECOND
    room_burst: int = ROOM_BURST
    room_per_second: float = ROOM_PER_SECOND
    directory_interval: float = DIRECTORY_INTERVAL
    directory_size: int = DIRECTORY_SIZE


def directory_listing(counts: Mapping[str, int], size: int) -> dict[str, Any]:
    """The ``rooms`` message for manager room ``counts``: the ``size`` biggest chat rooms.

    Capped so that its size does not grow with the number of rooms a bot
    opens (at most ``size`` entries of at most MAX_ROOM characters each).
    """
    rooms = [(name[len(ROOM_PREFIX) :], count) for name, count in counts.items() if name.startswith(ROOM_PREFIX)]
    rooms.sort(key=lambda item: (-item[1], item[0]))
    listed = [{"name": name, "members": count} for name, count in rooms[:size]]
    return {"type": "rooms", "rooms": listed, "total": len(rooms)}


class DirectoryFeed:
    """Pushes the room directory to every named user, coalesced.

    Every join and leave marks the directory changed; at most one push
    follows per ``interval`` (the first one right away after a quiet
    interval), and only if the listing differs from the last one pushed.
    So a bot joining and leaving in a loop costs each user at most one
    capped message per interval, whatever its pace.
    """

    def __init__(self, interval: float = DIRECTORY_INTERVAL, size: int = DIRECTORY_SIZE) -> None:
        self.interval, self.size = interval, size
        self._lock = threading.Lock()
        self._due = False  # a push is scheduled
        self._last_push = -float("inf")
        self._last_sent: str | None = None
        #: Pushes made (a listing equal to the last one is not pushed).
        self.pushes = 0

    def changed(self, manager: Manager) -> None:
        """Note a change; the push runs on ``manager``'s timer, never on the caller's turn."""
        with self._lock:
            if self._due:
                return  # the push already scheduled will see this change too
            self._due = True
            delay = max(0.0, self._last_push + self.interval - time.monotonic())
        manager.call_later(delay, lambda: self._push(manager))

    def _push(self, manager: Manager) -> None:
        with self._lock:
            self._due = False
            self._last_push = time.monotonic()
            data = _dump(directory_listing(manager.rooms(), self.size))
            if data == self._last_sent:
                return
            self._last_sent = data
            self.pushes += 1
            # This process's rooms, to this process's users: not through a
            # broker, whose other processes have directories of their own.
            # The lock keeps two pushes from overtaking each other.
            manager.broadcast_local(data, DIRECTORY)


class _TokenBucket:
    """Per-connection flood control: only that connection is slowed down."""

    def __init__(self, burst: int, rate: float) -> None:
        self.burst, self.rate = burst, rate
        self.tokens = float(burst)
        self.stamp = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


class Chat:
    """State shared by the connections of one chat application.

    ``lock`` orders every change of a room with the messages about it: a
    joiner's history snapshot and the messages published after it never
    overlap or leave a gap, and every member sees one order.
    """

    def __init__(self, history: int = 50, max_history_rooms: int = 1000, limits: ChatLimits | None = None) -> None:
        self.history_size = history
        self.max_history_rooms = max_history_rooms
        self.limits = limits or ChatLimits()
        self.directory = DirectoryFeed(self.limits.directory_interval, self.limits.directory_size)
        self.lock = threading.RLock()
        self._nicks: dict[str, ChatWebSocket] = {}
        self._history: OrderedDict[str, deque[dict[str, Any]]] = OrderedDict()
        # Message ids stay unique across restarts (the page de-duplicates by id).
        self._boot = secrets.token_hex(4)
        self._seq = itertools.count(1)

    def claim_nick(self, nick: str, websocket: ChatWebSocket) -> bool:
        """Reserve ``nick`` for ``websocket``; ``False`` if it, or a look-alike, is in use.

        Look-alikes share their :func:`~examples.chat.protocol.nick_key`.
        """
        key = nick_key(nick)
        with self.lock:
            holder = self._nicks.get(key)
            if holder is not None and holder is not websocket and not holder.terminated:
                return False
            self._nicks[key] = websocket
            return True

    def release_nick(self, nick: str, websocket: ChatWebSocket) -> None:
        with self.lock:
            key = nick_key(nick)
            if self._nicks.get(key) is websocket:
                del self._nicks[key]

    def record(self, room: str, nick: str, text: str) -> dict[str, Any]:
        """A new message for ``room``, kept in its history (call with ``lock`` held)."""
        message = {
            "type": "message",
            "id": f"{self._boot}-{next(self._seq)}",
            "room": room,
            "nick": nick,
            "text": text,
            "ts": time.time(),
        }
        if self.history_size > 0:
            log = self._history.get(room)
            if log is None:
                log = self._history[room] = deque(maxlen=self.history_size)
                while len(self._history) > self.max_history_rooms:
                    self._history.popitem(last=False)
            self._history.move_to_end(room)
            log.append(message)
        return message

    def history(self, room: str) -> list[dict[str, Any]]:
        with self.lock:
            return list(self._history.get(room, ()))


class ChatWebSocket(WebSocket):
    """One chat user. :func:`make_app` binds a subclass to its :class:`Chat`."""

    chat: Chat

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.nick: str | None = None
        self.joined: set[str] = set()
        limits = self.chat.limits
        self._bucket = _TokenBucket(limits.rate_burst, limits.rate_per_second)
        self._throttled = False
        self._room_bucket = _TokenBucket(limits.room_burst, limits.room_per_second)
        self._room_throttled = False

    # -- callbacks ---------------------------------------------------------------

    def opened(self) -> None:
        self.send_json(
            {
                "type": "welcome",
                "limits": {
                    "text": MAX_TEXT,
                    "nick": MAX_NICK,
                    "room": MAX_ROOM,
                    "frame": MAX_FRAME,
                    "rooms": MAX_ROOMS_PER_USER,
                },
            }
        )

    def received_message(self, message: Message) -> None:
        if not self._bucket.take():
            # One notice per burst: answering every excess message would let a
            # flood fill our own send buffer.
            if not self._throttled:
                self._throttled = True
                self.send_error(ChatError("rate_limited", "too many messages; slow down"))
            return
        self._throttled = False
        try:
            self.dispatch(parse(message.data))
        except ChatError as exc:
            self.send_error(exc)

    def closed(self, code: int, reason: str = "") -> None:
        with self.chat.lock:
            for room in sorted(self.joined):
                self._leave(room)
            self.joined.clear()
            if self.nick is not None:
                self.manager.leave(self, DIRECTORY)
                self.chat.release_nick(self.nick, self)
        if self.nick is not None:
            self.directory_changed()

    # -- commands ----------------------------------------------------------------

    def dispatch(self, command: Command) -> None:
        if isinstance(command, Hello):
            self.hello(command.nick)
            return
        if self.nick is None:
            raise ChatError("not_ready", "send a hello with your nickname first")
        if isinstance(command, (Join, Leave)) and not self._room_bucket.take():
            # A join or leave tells a room's members and changes the
            # directory: limited on its own, below the general rate.
            if not self._room_throttled:
                self._room_throttled = True
                raise ChatError("rate_limited", "too many joins and leaves; slow down")
            return
        if isinstance(command, (Join, Leave)):
            self._room_throttled = False
        if isinstance(command, Join):
            self.join_room(command.room)
        elif isinstance(command, Leave):
            self.leave_room(command.room)
        elif isinstance(command, Say):
            self.say(command.room, command.text)
        elif isinstance(command, ListRooms):
            self.send_json(self.directory())

    def hello(self, nick: str) -> None:
        if self.nick is not None:
            raise ChatError("already_named", f"you are already {self.nick!r}")
        if not self.chat.claim_nick(nick, self):
            raise ChatError("nick_taken", f"the nickname {nick!r}, or one that looks the same, is in use; pick another")
        self.nick = nick
        self.manager.join(self, DIRECTORY)
        listing = self.directory()
        self.send_json({"type": "ready", "nick": nick, "rooms": listing["rooms"], "total": listing["total"]})

    def join_room(self, room: str) -> None:
        assert self.nick is not None
        with self.chat.lock:
            if room in self.joined:
                # Joining twice is harmless: answer with a fresh snapshot.
                self.send_joined(room)
                return
            if len(self.joined) >= MAX_ROOMS_PER_USER:
                raise ChatError("too_many_rooms", f"you can be in at most {MAX_ROOMS_PER_USER} rooms")
            self.manager.join(self, ROOM_PREFIX + room)
            self.joined.add(room)
            self.send_joined(room)
            self._publish(ROOM_PREFIX + room, self.presence(room, "join"))
        self.directory_changed()

    def leave_room(self, room: str) -> None:
        with self.chat.lock:
            if room not in self.joined:
                raise ChatError("not_in_room", f"you are not in #{room}")
            self.joined.discard(room)
            self._leave(room)
            self.send_json({"type": "left", "room": room})
        self.directory_changed()

    def say(self, room: str, text: str) -> None:
        assert self.nick is not None
        with self.chat.lock:
            if room not in self.joined:
                raise ChatError("not_in_room", f"join #{room} before writing to it")
            message = self.chat.record(room, self.nick, text)
            # The sender gets its own message back too: that is its delivery receipt.
            self._publish(ROOM_PREFIX + room, _dump(message))

    # -- helpers -----------------------------------------------------------------

    def _leave(self, room: str) -> None:
        self.manager.leave(self, ROOM_PREFIX + room)
        self._publish(ROOM_PREFIX + room, self.presence(room, "leave"), exclude=[self])

    def presence(self, room: str, event: str) -> str:
        return _dump({"type": "presence", "room": room, "nick": self.nick, "event": event, "ts": time.time()})

    def send_joined(self, room: str) -> None:
        members = sorted(
            {ws.nick for ws in self.manager.members(ROOM_PREFIX + room) if isinstance(ws, ChatWebSocket) and ws.nick},
            key=str.casefold,
        )
        self.send_json({"type": "joined", "room": room, "members": members, "history": self.chat.history(room)})

    def directory(self) -> dict[str, Any]:
        """The ``rooms`` message: open rooms (in this process), biggest first, capped."""
        return directory_listing(self.manager.rooms(), self.chat.limits.directory_size)

    def directory_changed(self) -> None:
        self.chat.directory.changed(self.manager)

    def _publish(self, room: str, data: str, exclude: Iterable[WebSocket] = ()) -> None:
        """``manager.broadcast`` to ``room``, telling the sender if a cross-process broker failed."""
        try:
            self.manager.broadcast(data, room, exclude=exclude)
        except WebSocketError as exc:
            # A broker that cannot reach its server raises after delivering
            # here: this process's members have it, other processes may not.
            logger.warning("publish to %s reached this process only: %s", room, exc)
            self.send_error(ChatError("delivery_failed", "your message may not have reached everyone"))

    def send_json(self, obj: dict[str, Any]) -> None:
        # The user may have left meanwhile; closed() cleans up.
        with contextlib.suppress(WebSocketClosed):
            self.send(_dump(obj))

    def send_error(self, error: ChatError) -> None:
        logger.info("client %s (%s): %s", self.peer_address, self.nick, error)
        self.send_json({"type": "error", "code": error.code, "message": error.message})


# -- the page ----------------------------------------------------------------------

# No inline script or style, nothing from elsewhere: the page works under a
# strict policy, which also blunts any markup that slipped into the DOM.
_SECURITY_HEADERS = [
    (
        "Content-Security-Policy",
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    ),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
]


class StaticFiles:
    """Serves ``index.html`` at ``/`` and the files of ``directory`` under ``/static/``.

    Only names listed at startup are served, so no request path can reach
    outside the directory.
    """

    def __init__(self, directory: Path = STATIC_DIR) -> None:
        self.files = {f"/static/{p.name}": p for p in directory.iterdir() if p.is_file()}
        self.files["/"] = directory / "index.html"

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = self.files.get(environ.get("PATH_INFO") or "/")
        if path is None:
            return self._plain(start_response, "404 Not Found", "not found\n")
        method = environ.get("REQUEST_METHOD", "GET")
        if method not in ("GET", "HEAD"):
            return self._plain(start_response, "405 Method Not Allowed", "GET or HEAD\n", [("Allow", "GET, HEAD")])
        body = path.read_bytes()
        ctype = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        if ctype.startswith("text/") or ctype in ("application/javascript", "image/svg+xml"):
            ctype += "; charset=utf-8"
        start_response(
            "200 OK",
            [
                ("Content-Type", ctype),
                ("Content-Length", str(len(body))),
                # The files change while someone works on the example.
                ("Cache-Control", "no-cache"),
                *_SECURITY_HEADERS,
            ],
        )
        return [] if method == "HEAD" else [body]

    @staticmethod
    def _plain(
        start_response: StartResponse, status: str, text: str, extra: list[tuple[str, str]] | None = None
    ) -> list[bytes]:
        body = text.encode()
        start_response(
            status,
            [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body))), *(extra or [])],
        )
        return [body]


def make_app(
    *, history: int = 50, manager: Manager | None = None, limits: ChatLimits | None = None, **options: Any
) -> WSGIApp:
    """The chat WSGI application: the page at ``/`` and the WebSocket at ``/ws``.

    ``history`` is how many recent messages of a room a joiner gets;
    ``limits`` the flood and directory limits (:class:`ChatLimits`).
    ``manager`` overrides the one the server adapter offers: the hook for a
    manager whose rooms span processes (a broker). ``options`` override the
    endpoint's :class:`~ws4py_integrations.WebSocketOptions`.
    """
    state = Chat(history=history, limits=limits)

    class BoundChatWebSocket(ChatWebSocket):
        chat = state

    settings: dict[str, Any] = {"max_message_size": TRANSPORT_MAX_MESSAGE, **options}
    return WebSocketMiddleware(StaticFiles(), {"/ws": BoundChatWebSocket}, manager=manager, **settings)
