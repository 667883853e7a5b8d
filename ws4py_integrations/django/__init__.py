"""WebSocket routes in a Django project, and a ``runserver`` that serves them.

Setup, one line: ``"ws4py_integrations.django"`` in ``INSTALLED_APPS``
(above ``django.contrib.staticfiles``), which makes ``manage.py runserver``
hand WebSocket connections over. Routes go in ``urls.py``::

    from ws4py_integrations.django import DjangoWebSocket, websocket

    class Chat(DjangoWebSocket):
        def opened(self):
            self.join(self.kwargs["room"])

        def received_message(self, message):
            self.manager.broadcast(f"{self.request.user}: {message.data}", self.kwargs["room"])

    def echo(request, ws, room):  # or a function, looping on a blocking WebSocket
        for message in ws:
            ws.send(message)

    urlpatterns = [
        path("ws/chat/<str:room>/", websocket(Chat)),
        path("ws/echo/<str:room>/", websocket(echo)),
    ]

Django's middleware runs on the handshake; database connections are
released around every callback and before every ``receive()``, as Django's
request cycle does. :mod:`ws4py_integrations.django.testing` lets
``LiveServerTestCase`` test the routes. In production, run the project on a server adapter that hands connections
over (gunicorn with a ``ws4py_integrations`` worker, CherryPy, gevent,
wsgiref): the routes are the same.
"""

from __future__ import annotations

from .._extras import missing_extra

try:
    import django  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised by the extras test
    raise missing_extra("ws4py_integrations.django", "django", exc) from None

from .views import REQUEST_KEY, DjangoBlockingWebSocket, DjangoWebSocket, release_connections, websocket

__all__ = ["REQUEST_KEY", "DjangoBlockingWebSocket", "DjangoWebSocket", "release_connections", "websocket"]
