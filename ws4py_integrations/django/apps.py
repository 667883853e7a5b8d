"""The Django app: ``"ws4py_integrations.django"`` in ``INSTALLED_APPS``."""

from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.core import checks

__all__ = ["WebSocketConfig", "check_runserver"]


class WebSocketConfig(AppConfig):  # type: ignore[misc]
    name = "ws4py_integrations.django"
    # "django", the default label, would read as Django's own.
    label = "ws4py_integrations"
    verbose_name = "WebSocket (ws4py_integrations)"

    def ready(self) -> None:
        checks.register(check_runserver)


def check_runserver(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Warn when another app's ``runserver`` command overrides ours (it is listed earlier)."""
    from django.core.management import get_commands

    owner = get_commands().get("runserver")
    if owner == WebSocketConfig.name:
        return []
    return [
        checks.Warning(
            f"the runserver command comes from {owner}, not ws4py_integrations.django: "
            "WebSocket routes answer 501 under runserver.",
            hint=f"List 'ws4py_integrations.django' above {owner!r} in INSTALLED_APPS.",
            id="ws4py_integrations.W001",
        )
    ]
