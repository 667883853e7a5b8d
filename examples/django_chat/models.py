"""Chat history: what the WebSocket handler stores and replays."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class ChatMessage(models.Model):
    room = models.CharField(max_length=64, db_index=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    text = models.TextField()
    sent = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["sent", "id"]
