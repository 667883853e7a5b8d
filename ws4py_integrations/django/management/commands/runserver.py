"""``manage.py runserver`` that hands WebSocket connections over.

Django's own command (or ``django.contrib.staticfiles``' when that app is
installed: its static files keep being served), with
:class:`ws4py_integrations.django.server.WSGIServer` as the server class.
Every option, the autoreloader and the request log are Django's.
"""

from __future__ import annotations

from django.apps import apps

from ...server import WSGIServer

if apps.is_installed("django.contrib.staticfiles"):
    from django.contrib.staticfiles.management.commands.runserver import Command as BaseCommand
else:
    from django.core.management.commands.runserver import Command as BaseCommand

__all__ = ["Command"]


class Command(BaseCommand):  # type: ignore[misc]
    help = f"{BaseCommand.help.rstrip('.')}, with WebSocket routes (ws4py_integrations)."
    server_cls = WSGIServer
