"""The WSGI application, for any server (and ``runserver``'s ``WSGI_APPLICATION``)."""

from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "examples.django_chat.settings")

application = get_wsgi_application()
