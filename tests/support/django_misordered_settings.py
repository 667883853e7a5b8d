"""The example's settings with django.contrib.staticfiles listed above ws4py_integrations.django."""

from __future__ import annotations

from examples.django_chat.settings import *  # noqa: F403
from examples.django_chat.settings import INSTALLED_APPS as _APPS

INSTALLED_APPS = [app for app in _APPS if app != "ws4py_integrations.django"] + ["ws4py_integrations.django"]
