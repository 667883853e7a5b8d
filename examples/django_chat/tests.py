"""The example's own Django tests: ``python -m examples.django_chat test examples.django_chat``.

A ``LiveServerTestCase`` whose live server hands WebSockets over
(``ws4py_integrations.django.testing``), with a real client.
"""

from __future__ import annotations

import json

from django.contrib.auth.models import User
from django.test import LiveServerTestCase
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from examples.django_chat.models import ChatMessage
from ws4py_integrations.django.testing import LiveServerThread


class ChatLiveServerTests(LiveServerTestCase):
    server_thread_class = LiveServerThread

    def ws_url(self, path: str) -> str:
        return self.live_server_url.replace("http://", "ws://", 1) + path

    def test_a_member_chats_and_the_line_is_stored(self) -> None:
        User.objects.create_user("dave", password="dave-password")
        self.assertTrue(self.client.login(username="dave", password="dave-password"))
        cookie = f"sessionid={self.client.cookies['sessionid'].value}"
        with connect(self.ws_url("/ws/chat/live/"), additional_headers={"Cookie": cookie}, open_timeout=10) as ws:
            hello = json.loads(ws.recv(timeout=10))
            self.assertEqual((hello["you"], hello["history"]), ("dave", []))
            ws.send("hello from a live server test")
            line = json.loads(ws.recv(timeout=10))
            self.assertEqual(line, {"type": "message", "user": "dave", "text": "hello from a live server test"})
        # Written by the handler, on the test's database.
        self.assertEqual(list(ChatMessage.objects.values_list("text", flat=True)), ["hello from a live server test"])

    def test_an_anonymous_client_is_refused(self) -> None:
        with self.assertRaises(InvalidStatus) as refused:
            connect(self.ws_url("/ws/chat/live/"), open_timeout=10)
        self.assertEqual(refused.exception.response.status_code, 403)
