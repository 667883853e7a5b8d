"""Extra routes for the in-process Django tests (the example's, plus edge cases)."""

from __future__ import annotations

import json
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, HttpResponseForbidden
from django.urls import path, re_path

from examples.django_chat.urls import urlpatterns as example_patterns
from ws4py_integrations import Message
from ws4py_integrations.django import DjangoBlockingWebSocket, DjangoWebSocket, websocket


class TenantMiddleware:
    """A project's own middleware: refuses requests marked ``X-Block``, tags the others."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if "HTTP_X_BLOCK" in request.META:
            return HttpResponseForbidden("blocked by middleware\n", content_type="text/plain")
        request.tenant = request.META.get("HTTP_X_TENANT")  # type: ignore[attr-defined]
        return self.get_response(request)


class Args(DjangoWebSocket):
    """Says what it knows about its handshake."""

    def opened(self) -> None:
        user = self.request.user
        self.send(
            json.dumps(
                {
                    "args": list(self.args),
                    "kwargs": self.kwargs,
                    "user": user.get_username() if user.is_authenticated else None,
                    "subprotocol": self.subprotocol,
                    "tenant": getattr(self.request, "tenant", None),
                }
            )
        )


class Broken(DjangoWebSocket):
    def received_message(self, message: Message) -> None:
        raise RuntimeError("broken handler")


class Unbuildable(DjangoWebSocket):
    def __init__(self, *args: object) -> None:
        raise RuntimeError("cannot build")


@websocket(protocols=["chat.v1"])
def decorated(request: HttpRequest, ws: DjangoBlockingWebSocket, word: str) -> None:
    ws.send(f"{word} {ws.subprotocol} {request.method}")
    message = ws.receive(timeout=10)
    if message == "raise":
        raise RuntimeError("broken function")
    ws.send(f"got {message!r}")


urlpatterns = [
    *example_patterns,
    re_path(r"^ws/args/(\d+)/$", websocket(Args, protocols=["chat.v1"])),
    path("ws/broken/", websocket(Broken)),
    path("ws/unbuildable/", websocket(Unbuildable)),
    path("ws/decorated/<str:word>/", decorated),
]
