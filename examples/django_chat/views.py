"""The example's views: a page, a form that writes the session, and the chat WebSocket."""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.http import HttpRequest, HttpResponse, HttpResponseForbidden, HttpResponseRedirect
from django.middleware.csrf import get_token
from django.templatetags.static import static
from django.utils.html import escape
from django.views.decorators.http import require_POST

from examples.django_chat.models import ChatMessage
from ws4py_integrations import Message
from ws4py_integrations.django import DjangoBlockingWebSocket, DjangoWebSocket

#: Messages a joiner gets from the room's history.
HISTORY = 20
MAX_TEXT = 1000


def members_only(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Answer 403 to anonymous users (a WebSocket client cannot follow a redirect to a login page)."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.is_authenticated:
            return HttpResponseForbidden("log in first\n", content_type="text/plain")
        return view(request, *args, **kwargs)

    return wrapper


def display_name(request: HttpRequest) -> str:
    """The nickname chosen on the page (kept in the session), else the user name."""
    return str(request.session.get("nickname") or request.user.get_username())


class ChatRoom(DjangoWebSocket):
    """One member in one room: ``/ws/chat/<room>/``; text messages are chat lines."""

    def opened(self) -> None:
        self.room = str(self.kwargs["room"])
        self.name = display_name(self.request)
        recent = ChatMessage.objects.filter(room=self.room).select_related("user").order_by("-sent", "-id")
        history = [{"user": m.user.get_username(), "text": m.text} for m in reversed(recent[:HISTORY])]
        self.send(json.dumps({"type": "hello", "room": self.room, "you": self.name, "history": history}))
        self.join(f"chat.{self.room}")

    def received_message(self, message: Message) -> None:
        text = message.data.strip() if isinstance(message.data, str) else ""
        if not text or len(text) > MAX_TEXT:
            self.send(json.dumps({"type": "error", "error": f"send text of 1 to {MAX_TEXT} characters"}))
            return
        ChatMessage.objects.create(room=self.room, user=self.request.user, text=text)
        self.manager.broadcast(json.dumps({"type": "message", "user": self.name, "text": text}), f"chat.{self.room}")


def search(request: HttpRequest, ws: DjangoBlockingWebSocket, room: str) -> None:
    """``/ws/search/<room>/``, the blocking style: each text received is a search in the
    room's history; the answer is the matching lines. Runs on a worker of the handler pool."""
    ws.send(json.dumps({"type": "hello", "room": room, "you": display_name(request)}))
    for query in ws:
        if not isinstance(query, str):
            ws.close(1003, "send text")
            continue
        found = ChatMessage.objects.filter(room=room, text__icontains=query).select_related("user")
        lines = [{"user": m.user.get_username(), "text": m.text} for m in found[:HISTORY]]
        ws.send(json.dumps({"type": "found", "query": query, "lines": lines}))


PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Django chat</title></head>
<body>
<p>Logged in as {user}. <form method="post" action="/nickname/"><input type="hidden"
name="csrfmiddlewaretoken" value="{csrf}"><input name="nickname" value="{nickname}"><button>set
nickname</button></form></p>
<form id="f"><input id="m" autocomplete="off"><button>send</button></form>
<pre id="log"></pre>
<script src="{static}"></script>
</body></html>
"""


def index(request: HttpRequest) -> HttpResponse:
    if not request.user.is_authenticated:
        return HttpResponseRedirect("/login/")
    return HttpResponse(
        PAGE.format(
            user=escape(request.user.get_username()),
            csrf=escape(get_token(request)),
            nickname=escape(request.session.get("nickname", "")),
            static=escape(static("django_chat/chat.js")),
        )
    )


@require_POST
@members_only
def nickname(request: HttpRequest) -> HttpResponse:
    request.session["nickname"] = str(request.POST.get("nickname", ""))[:32]
    return HttpResponseRedirect("/")
