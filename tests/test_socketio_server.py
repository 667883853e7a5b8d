"""The Socket.IO server above a stand-in Engine.IO session: connect, events, acks both
ways, binary, namespaces, refusals, ACLs, rooms, malformed packets, timeouts.

The stand-in only records what the server sends; the real transport and
independent clients are in tests/test_socketio_clients.py.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
from typing import Any

import pytest

from tests.support.socketio import TIMEOUT, FakeEngine
from ws4py_integrations.socketio import (
    BaseNamespace,
    BroadcastMixin,
    ConnectionRefusedError,
    Namespace,
    RoomsMixin,
    Server,
    SocketIOMiddleware,
    SocketIOTimeout,
)


def echo_server(**options: Any) -> Server:
    """The examples.socketio_echo behaviour, built with the decorators."""
    sio = Server(namespaces=["/", "/custom"], **options)
    for ns in ("/", "/custom"):

        def connect(sid: str, environ: dict[str, Any], auth: Any, ns: str = ns) -> None:
            sio.emit("auth", auth, to=sid, namespace=ns)

        def message(sid: str, *args: Any, ns: str = ns) -> None:
            sio.emit("message-back", tuple(args), to=sid, namespace=ns)

        def message_with_ack(sid: str, *args: Any) -> tuple[Any, ...]:
            return args

        sio.on("connect", connect, namespace=ns)
        sio.on("message", message, namespace=ns)
        sio.on("message-with-ack", message_with_ack, namespace=ns)
    return sio


# -- the specification's test-suite, packet for packet ----------------------------------------


def test_connect_main_namespace_and_auth_event() -> None:
    eio = FakeEngine(echo_server())
    eio.feed("0")
    answer = eio.recv()
    assert isinstance(answer, str) and answer.startswith("0{")
    assert set(json.loads(answer[1:])) == {"sid"}
    assert eio.recv() == '2["auth",{}]'


def test_connect_with_payload_and_custom_namespace() -> None:
    eio = FakeEngine(echo_server())
    eio.feed('0{"token":"123"}')
    assert eio.recv().startswith("0{")  # type: ignore[union-attr]
    assert eio.recv() == '2["auth",{"token":"123"}]'
    eio.feed('0/custom,{"token":"abc"}')
    assert eio.recv().startswith('0/custom,{"sid":')  # type: ignore[union-attr]
    assert eio.recv() == '2/custom,["auth",{"token":"abc"}]'


def test_unknown_namespace_refused() -> None:
    eio = FakeEngine(echo_server())
    eio.feed("0/random")
    assert eio.recv() == '4/random,{"message":"Invalid namespace"}'
    assert not eio.closed


def test_events_acks_and_binary() -> None:
    eio = FakeEngine(echo_server())
    eio.connect()
    eio.recv()  # auth
    eio.feed('2["message",1,"2",{"3":[true]}]')
    assert eio.recv() == '2["message-back",1,"2",{"3":[true]}]'
    eio.feed('2456["message-with-ack",1,"2",{"3":[false]}]')
    assert eio.recv() == '3456[1,"2",{"3":[false]}]'
    eio.feed('52-["message",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]', b"\x01\x02\x03", b"\x04")
    assert eio.recv() == '52-["message-back",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]'
    assert eio.recv() == b"\x01\x02\x03"
    assert eio.recv() == b"\x04"
    eio.feed('52-789["message-with-ack",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]', b"a", b"b")
    assert eio.recv() == '62-789[{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]'
    assert (eio.recv(), eio.recv()) == (b"a", b"b")


def test_disconnect_from_a_namespace_keeps_the_others() -> None:
    eio = FakeEngine(echo_server())
    eio.connect()
    eio.recv()
    eio.connect("/custom")
    eio.recv()
    eio.feed("1/custom", '2["message","to main"]', '2/custom,["message","to custom"]')
    assert eio.recv() == '2["message-back","to main"]'
    eio.nothing()
    assert not eio.closed
    # a CONNECT right behind a DISCONNECT is a new connection
    eio.feed("1/custom,", "0/custom,")
    assert eio.recv().startswith('0/custom,{"sid":')  # type: ignore[union-attr]
    assert eio.recv() == '2/custom,["auth",{}]'


@pytest.mark.parametrize("bad", ["4abc", "2{}", '2abc["message-with-ack",1]', "9", b"stray binary"])
def test_malformed_packet_closes_that_session_only(bad: str | bytes, caplog: pytest.LogCaptureFixture) -> None:
    sio = echo_server()
    victim, bystander = FakeEngine(sio), FakeEngine(sio)
    victim.connect()
    bystander.connect()
    victim.recv(), bystander.recv()
    with caplog.at_level(logging.INFO, "ws4py_integrations.socketio"):
        victim.feed(bad)
    assert victim.closed_event.wait(TIMEOUT)
    assert "malformed packet" in caplog.text
    bystander.feed('2["message","still here"]')
    assert bystander.recv() == '2["message-back","still here"]'


def test_connect_timeout_closes_a_silent_session() -> None:
    sio = echo_server(connect_timeout=0.2)
    silent, prompt, refused = FakeEngine(sio), FakeEngine(sio), FakeEngine(sio)
    prompt.connect()
    refused.feed("0/nope,")
    assert refused.recv() == '4/nope,{"message":"Invalid namespace"}'
    assert silent.closed_event.wait(TIMEOUT)
    assert refused.closed_event.wait(TIMEOUT)  # refused everywhere: closed too
    assert not prompt.closed_event.wait(0.4)


# -- the API ----------------------------------------------------------------------------------


def test_connect_handler_refusals() -> None:
    sio = Server(namespaces="*")

    @sio.on("connect")
    def refuse_false(sid: str, environ: dict[str, Any]) -> bool:
        return False

    @sio.on("connect", namespace="/data")
    def refuse_data(sid: str, environ: dict[str, Any], auth: Any) -> None:
        raise ConnectionRefusedError("not authorized", {"retry": auth["n"] + 1})

    @sio.on("connect", namespace="/many")
    def refuse_many(sid: str, environ: dict[str, Any]) -> None:
        raise ConnectionRefusedError("no", 1, 2)

    @sio.on("connect", namespace="/broken")
    def broken(sid: str, environ: dict[str, Any]) -> None:
        raise RuntimeError("bug")

    eio = FakeEngine(sio)
    eio.feed("0")
    assert eio.recv() == '4{"message":"Connection rejected by server"}'
    eio.feed('0/data,{"n":1}')
    assert eio.recv() == '4/data,{"message":"not authorized","data":{"retry":2}}'
    eio.feed("0/many,")
    assert eio.recv() == '4/many,{"message":"no","data":[1,2]}'
    eio.feed("0/broken,")
    assert eio.recv() == '4/broken,{"message":"Connection rejected by server"}'
    eio.feed("0/other,")  # "*": any namespace, no handler needed
    assert eio.recv().startswith('0/other,{"sid":')  # type: ignore[union-attr]
    assert ConnectionRefusedError().error_args() == {"message": "Connection rejected by server"}


def test_environ_session_and_event_decorator() -> None:
    sio = Server()
    seen: queue.Queue[Any] = queue.Queue()

    @sio.event
    def connect(sid: str, environ: dict[str, Any]) -> None:
        with sio.session(sid) as session:
            session["cookie"] = environ["HTTP_COOKIE"]

    @sio.event
    def whoami(sid: str) -> str:
        env = sio.get_environ(sid)
        assert env is not None
        return f"{sio.session(sid)['cookie']} {env['PATH_INFO']} {sio.transport(sid)}"

    @sio.event(namespace="/n")
    def hello(sid: str) -> str:
        return "n"

    @sio.on("*")
    def anything(event: str, sid: str, *args: Any) -> None:
        seen.put((event, args))

    @sio.event
    def disconnect(sid: str, reason: str) -> None:
        seen.put(("gone", reason))

    eio = FakeEngine(sio)
    sid = eio.connect()
    eio.feed('21["whoami"]')
    assert eio.recv() == '31["user=ann /socket.io/ websocket"]'
    eio.connect("/n")
    eio.feed('2/n,2["hello"]')
    assert eio.recv() == '3/n,2["n"]'
    eio.feed('2["other",1]', "2[7,8]", "2[1.5]")
    assert seen.get(timeout=TIMEOUT) == ("other", (1,))
    assert seen.get(timeout=TIMEOUT) == ("7", (8,))
    assert seen.get(timeout=TIMEOUT) == ("1.5", ())
    sio.save_session(sid, {"x": 1})
    assert sio.get_session(sid) == {"x": 1}
    assert sio.connected(sid)
    eio.close()
    assert seen.get(timeout=TIMEOUT) == ("gone", "forced close")
    assert not sio.connected(sid)
    assert sio.get_environ(sid) is None
    with pytest.raises(KeyError):
        sio.session(sid)


def test_server_acks_callback_and_call_from_a_handler() -> None:
    sio = Server()
    results: queue.Queue[Any] = queue.Queue()

    @sio.event
    def ask(sid: str) -> Any:
        # Blocks this client's handler queue, not the transport: the ack comes through.
        return sio.call("question", "name?", to=sid, timeout=TIMEOUT)

    eio = FakeEngine(sio)
    sid = eio.connect()
    sio.emit("ping", 1, to=sid, callback=lambda *a: results.put(a))
    assert eio.recv() == '20["ping",1]'
    eio.feed('30["pong",2]')
    assert results.get(timeout=TIMEOUT) == ("pong", 2)
    eio.feed('27["ask"]')
    assert eio.recv() == '21["question","name?"]'
    eio.feed('31["ann"]')
    assert eio.recv() == '37["ann"]'
    eio.feed("35[]", "399[1]")  # an ack nobody waits for is ignored
    eio.nothing()
    # several arguments: a tuple; none: None
    threading.Timer(0.1, eio.feed, ["32[1,2]"]).start()
    assert sio.call("q", to=sid, timeout=TIMEOUT) == (1, 2)
    eio.recv()
    threading.Timer(0.1, eio.feed, ["33[]"]).start()
    assert sio.call("q", to=sid, timeout=TIMEOUT) is None
    eio.recv()


def test_call_times_out_and_fails_on_disconnect() -> None:
    sio = Server()
    eio = FakeEngine(sio)
    sid = eio.connect()
    with pytest.raises(SocketIOTimeout, match="within"):
        sio.call("q", to=sid, timeout=0.1)
    threading.Timer(0.1, eio.close).start()
    with pytest.raises(SocketIOTimeout, match="disconnected"):
        sio.call("q", to=sid, timeout=TIMEOUT)
    with pytest.raises(ValueError):
        sio.call("q")
    with pytest.raises(ValueError, match="callback"):
        sio.emit("x", to="room", callback=print)


def test_emit_during_connect_waits_for_the_connect_answer() -> None:
    sio = Server()

    @sio.event
    def connect(sid: str, environ: dict[str, Any]) -> None:
        sio.emit("welcome", to=sid)
        sio.enter_room(sid, "lobby")
        sio.emit("room", to="lobby")

    eio = FakeEngine(sio)
    sid = eio.connect()
    assert eio.recv() == '2["welcome"]'
    assert eio.recv() == '2["room"]'
    assert sio.rooms(sid) == sorted([sid, "lobby"])


def test_rooms_broadcast_and_skip() -> None:
    sio = Server(namespaces=["/chat"])
    a, b, c = FakeEngine(sio), FakeEngine(sio), FakeEngine(sio)
    sa, sb, sc = a.connect("/chat"), b.connect("/chat"), c.connect("/chat")
    other = FakeEngine(sio)
    other.connect()
    sio.enter_room(sa, "r", namespace="/chat")
    sio.enter_room(sb, "r")  # the namespace comes from the sid
    assert sio.participants("r", "/chat") == sorted([sa, sb])
    sio.emit("m", "room", to="r", namespace="/chat", skip_sid=sa)
    assert b.recv() == '2/chat,["m","room"]'
    a.nothing(0.05)
    c.nothing(0.05)
    sio.emit("m", "all", namespace="/chat")
    for e in (a, b, c):
        assert e.recv() == '2/chat,["m","all"]'
    other.nothing(0.05)
    sio.emit("m", "two rooms", room=["r", sc], namespace="/chat", skip_sid=[sb])
    assert a.recv() == '2/chat,["m","two rooms"]'
    assert c.recv() == '2/chat,["m","two rooms"]'
    b.nothing(0.05)
    sio.send("hi", to=sc)
    assert c.recv() == '2/chat,["message","hi"]'
    sio.emit("m", to=sc, skip_sid=sc)
    c.nothing(0.05)
    sio.leave_room(sb, "r")
    sio.leave_room(sb, "r")
    assert sio.rooms(sb) == [sb]
    sio.close_room("r", "/chat")
    assert sio.participants("r", "/chat") == []
    sio.emit("m", to="r", namespace="/chat")
    a.nothing(0.05)
    sio.disconnect(sa)
    assert a.recv() == "1/chat,"
    assert sio.rooms(sa) == []
    sio.emit("m", 0, namespace="/chat")
    a.nothing(0.05)
    assert b.recv() == '2/chat,["m",0]'
    sio.enter_room("nobody", "r")
    sio.leave_room("nobody", "r")
    sio.disconnect("nobody")


def test_class_namespace() -> None:
    events: queue.Queue[Any] = queue.Queue()

    class Chat(Namespace):
        def on_connect(self, sid: str, environ: dict[str, Any], auth: Any) -> bool:
            return bool(auth.get("ok"))

        def on_say(self, sid: str, text: str) -> str:
            self.enter_room(sid, "all")
            self.emit("said", text, room="all")
            self.send("also", to=sid)
            return text.upper()

        def on_message_back(self, sid: str) -> None:  # "message-back"
            events.put((self.rooms(sid), self.get_environ(sid) is not None, dict(self.session(sid))))
            self.leave_room(sid, "all")
            self.disconnect(sid)

        def on_disconnect(self, sid: str) -> None:
            events.put("bye")

    sio = Server()
    sio.register_namespace(Chat("/chat"))
    with pytest.raises(TypeError):
        sio.register_namespace(object)  # type: ignore[arg-type]
    with pytest.raises(RuntimeError):
        _ = Namespace().server
    eio = FakeEngine(sio)
    eio.feed("0/chat,")
    assert eio.recv() == '4/chat,{"message":"Connection rejected by server"}'
    sid = eio.connect("/chat", {"ok": True})
    eio.feed('2/chat,5["say","hi"]')
    assert eio.recv() == '2/chat,["said","hi"]'
    assert eio.recv() == '2/chat,["message","also"]'
    assert eio.recv() == '3/chat,5["HI"]'
    eio.feed('2/chat,["unknown"]', '2/chat,["message-back"]')
    assert events.get(timeout=TIMEOUT) == (sorted([sid, "all"]), True, {})
    assert eio.recv() == "1/chat,"
    assert events.get(timeout=TIMEOUT) == "bye"


def test_class_namespace_call() -> None:
    class Asker(Namespace):
        def on_ask(self, sid: str) -> Any:
            return self.call("q", "?", to=sid, timeout=TIMEOUT)

    sio = Server()
    sio.register_namespace(Asker("/a"))
    eio = FakeEngine(sio)
    eio.connect("/a")
    eio.feed('2/a,1["ask"]')
    assert eio.recv() == '2/a,0["q","?"]'
    eio.feed('3/a,0["yes"]')
    assert eio.recv() == '3/a,1["yes"]'


class Guarded(BaseNamespace, RoomsMixin, BroadcastMixin):
    """gevent-socketio style: a login lifts the ACL."""

    namespace = "/guarded"
    log: queue.Queue[Any] = queue.Queue()

    def initialize(self) -> None:
        self.count = 0

    def get_initial_acl(self) -> list[str]:
        return ["recv_connect", "on_login"]

    def recv_connect(self) -> bool:
        return self.auth.get("token") != "bad"

    def on_login(self, password: str) -> str:
        if password == "secret":
            self.lift_acl_restrictions()
            return "ok"
        return "no"

    def on_count(self) -> int:
        self.count += 1
        return self.count

    def on_restrict(self) -> None:
        self.reset_acl()
        self.add_acl_method("on_count")
        self.del_acl_method("on_login")

    def on_join(self, room: str) -> None:
        self.join(room)

    def on_leave(self, room: str) -> None:
        self.leave(room)

    def on_tell(self, room: str, text: str) -> None:
        self.emit_to_room(room, "told", text)

    def on_shout(self, text: str) -> None:
        self.broadcast_event("shout", text)

    def on_whisper(self, text: str) -> None:
        self.broadcast_event_not_me("whisper", text)

    def on_echo(self, *args: Any) -> None:
        self.emit("echo", *args, callback=lambda *a: self.log.put(a))
        self.send("sent")

    def on_quiz(self) -> Any:
        return self.call("quiz", 1, 2, timeout=TIMEOUT)

    def on_bye(self) -> None:
        self.disconnect()

    def on_later(self, text: str) -> None:
        def push() -> None:
            self.server.sleep(0.01)
            self.emit("later", text)

        self.spawn(push)

    def recv_disconnect(self) -> None:
        self.log.put(("disconnect", self.disconnect_reason, self.environ["HTTP_COOKIE"], dict(self.session)))


def test_base_namespace_acl_rooms_and_broadcast(caplog: pytest.LogCaptureFixture) -> None:
    sio = Server()
    sio.register_namespace(Guarded)
    a, b = FakeEngine(sio), FakeEngine(sio)
    a.feed('0/guarded,{"token":"bad"}')
    assert a.recv() == '4/guarded,{"message":"Connection rejected by server"}'
    a.connect("/guarded", {"token": "good"})
    b.connect("/guarded")
    with caplog.at_level(logging.WARNING, "ws4py_integrations.socketio"):
        a.feed('2/guarded,1["count"]')
        a.nothing()
    assert "on_count is not allowed by the ACL" in caplog.text
    a.feed('2/guarded,2["login","wrong"]')
    assert a.recv() == '3/guarded,2["no"]'
    a.feed('2/guarded,3["login","secret"]', '2/guarded,4["count"]', '2/guarded,5["count"]')
    assert a.recv() == '3/guarded,3["ok"]'
    assert a.recv() == "3/guarded,4[1]"
    assert a.recv() == "3/guarded,5[2]"
    a.feed('2/guarded,["restrict"]', '2/guarded,6["count"]', '2/guarded,7["login","secret"]')
    assert a.recv() == "3/guarded,6[3]"
    a.nothing()  # on_login is no longer allowed
    b.feed('2/guarded,["login","secret"]', '2/guarded,["join","r"]')
    a.feed('2/guarded,["restrict"]')
    b.feed('2/guarded,["tell","r","only others"]')
    b.nothing()
    b.feed('2/guarded,["shout","all"]', '2/guarded,["whisper","psst"]')
    assert a.recv() == '2/guarded,["shout","all"]'
    assert b.recv() == '2/guarded,["shout","all"]'
    assert a.recv() == '2/guarded,["whisper","psst"]'
    b.feed('2/guarded,["echo",1,2]')
    assert b.recv() == '2/guarded,0["echo",1,2]'
    assert b.recv() == '2/guarded,["message","sent"]'
    b.feed('3/guarded,0["got it"]')
    assert Guarded.log.get(timeout=TIMEOUT) == ("got it",)
    b.feed('2/guarded,9["quiz"]')
    assert b.recv() == '2/guarded,1["quiz",1,2]'
    b.feed("3/guarded,1[3]")
    assert b.recv() == "3/guarded,9[3]"
    b.feed('2/guarded,["later","pushed"]')
    assert b.recv() == '2/guarded,["later","pushed"]'
    b.feed('2/guarded,["leave","r"]', '2/guarded,["bye"]')
    assert b.recv() == "1/guarded,"
    assert Guarded.log.get(timeout=TIMEOUT) == ("disconnect", "server namespace disconnect", "user=ann", {})
    b.connect("/guarded")
    b.feed("1/guarded,")
    assert Guarded.log.get(timeout=TIMEOUT)[1] == "client namespace disconnect"


def test_del_acl_without_restrictions() -> None:
    class Open(BaseNamespace):
        pass

    sio = Server()
    sio.register_namespace(Open, "/open")
    eio = FakeEngine(sio)
    sid = eio.connect("/open")
    instance = sio._sockets[sid].instance
    assert instance is not None and instance.is_method_allowed("on_anything")
    with pytest.raises(ValueError):
        instance.del_acl_method("on_anything")
    instance.add_acl_method("on_x")
    assert instance.allowed_methods == {"on_x"}


def test_handler_failures_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    sio = Server()

    @sio.event
    def boom(sid: str) -> None:
        raise RuntimeError("boom")

    @sio.event
    def disconnect(sid: str) -> None:
        raise RuntimeError("disconnect boom")

    eio = FakeEngine(sio)
    eio.connect()
    with caplog.at_level(logging.ERROR, "ws4py_integrations.socketio"):
        eio.feed('21["boom"]', '2["nohandler"]')
        eio.nothing()
        eio.close()
        for _ in range(50):
            if "disconnect handler" in caplog.text:
                break
            threading.Event().wait(0.05)
    assert "handler of 'boom'" in caplog.text
    assert "disconnect handler" in caplog.text


def test_packets_for_unconnected_namespaces_are_ignored() -> None:
    sio = echo_server()
    eio = FakeEngine(sio)
    eio.feed('2["message",1]', "31[]", "0/custom,", "0/custom,")
    assert eio.recv().startswith("0/custom,")  # type: ignore[union-attr]
    assert eio.recv() == '2/custom,["auth",{}]'
    eio.nothing()  # the second CONNECT is ignored
    eio.feed('2["message",1]')
    eio.nothing()


def test_middleware_routes() -> None:
    sio = Server()
    calls: list[str] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        calls.append("app")
        start_response("200 OK", [])
        return [b"app"]

    sio._eio = lambda environ, start_response: calls.append("sio") or [b"sio"]
    mw = sio.wsgi_app(app)
    assert isinstance(mw, SocketIOMiddleware)
    assert mw({"PATH_INFO": "/socket.io/"}, None) == [b"sio"]
    assert mw({"PATH_INFO": "/socket.io"}, None) == [b"sio"]
    assert mw({"PATH_INFO": "/socket.iox"}, lambda *a: None) == [b"app"]
    statuses: list[str] = []
    assert SocketIOMiddleware(None, sio)({"PATH_INFO": "/"}, lambda s, h: statuses.append(s)) == [b"not found\n"]
    assert statuses == ["404 Not Found"]
    assert calls == ["sio", "sio", "app"]


def test_edges(caplog: pytest.LogCaptureFixture) -> None:
    from ws4py_integrations.socketio._runner import SerialRunner, Timers
    from ws4py_integrations.socketio.server import _BrokerTarget, _positional_count

    assert _positional_count(print) == 99  # no signature: everything
    assert _positional_count(lambda *a: None) == 99
    sio = Server(connect_timeout=0)  # no connect timeout at all
    target = _BrokerTarget(sio)
    with caplog.at_level(logging.WARNING, "ws4py_integrations.socketio"):
        assert target.broadcast_local(b"binary") == 0
        assert target.broadcast_local("{not json") == 0
        assert target.broadcast_local('{"ns": "/"}') == 0
    assert "non-text message" in caplog.text and "malformed emit" in caplog.text
    with pytest.raises(TypeError):
        sio.emit(1, to="x")  # type: ignore[arg-type]
    eio = FakeEngine(sio)
    eio.connect()
    eio.feed("0/nsp,")  # "/nsp" has no handler: refused
    assert eio.recv() == '4/nsp,{"message":"Invalid namespace"}'
    # callbacks for a gone engine session and unknown sessions are ignored
    eio.close()
    eio.close()
    sio.engine_handler.message(eio, '2["x"]')
    sio.engine_handler.disconnect(eio, "again")

    caplog.clear()
    with caplog.at_level(logging.ERROR, "ws4py_integrations.socketio"):
        done = threading.Event()
        runner = SerialRunner("t")
        runner.submit(lambda: 1 / 0)
        runner.submit(done.set)
        assert done.wait(TIMEOUT)
        fired = threading.Event()
        timers = Timers()
        timers.call_later(0.01, lambda: 1 / 0)
        timers.call_later(0.05, lambda: None).cancel()
        timers.call_later(0.1, fired.set)
        assert fired.wait(TIMEOUT)
    assert "t: handler" in caplog.text
    assert "timer callback" in caplog.text


def test_class_namespace_without_connect_and_disconnect_handlers() -> None:
    class Quiet(Namespace):
        def on_x(self, sid: str) -> int:
            return 1

    class Silent(BaseNamespace):
        def get_initial_acl(self) -> list[str]:
            return []  # not even recv_connect: connecting is still allowed

    sio = Server()
    sio.register_namespace(Quiet("/q"))
    sio.register_namespace(Silent, "/s")
    eio = FakeEngine(sio)
    sid = eio.connect("/q")
    eio.connect("/s")
    eio.feed('2/q,1["x"]', '2/s,2["recv_connect"]')
    assert eio.recv() == "3/q,1[1]"
    sio.disconnect(sid)
    assert eio.recv() == "1/q,"
    eio.nothing()


def test_attachment_limits_close_the_session() -> None:
    sio = Server(max_attachments=1, max_attachment_bytes=3)
    many, big = FakeEngine(sio), FakeEngine(sio)
    many.connect()
    big.connect()
    many.feed('52-["e",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]')
    assert many.closed_event.wait(TIMEOUT)
    big.feed('51-["e",{"_placeholder":true,"num":0}]', b"1234")
    assert big.closed_event.wait(TIMEOUT)
