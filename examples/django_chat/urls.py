"""The example's routes: pages, and the chat's WebSocket route beside them."""

from __future__ import annotations

from django.contrib.auth.views import LoginView
from django.urls import path

from examples.django_chat import views
from ws4py_integrations.django import websocket

urlpatterns = [
    path("", views.index),
    path("login/", LoginView.as_view(template_name="django_chat/login.html")),
    path("nickname/", views.nickname),
    # A WebSocket class (callbacks) and a function (a blocking loop), behind the same check.
    path("ws/chat/<slug:room>/", views.members_only(websocket(views.ChatRoom))),
    path("ws/search/<slug:room>/", views.members_only(websocket(views.search))),
]
