"""A pytest plugin for ``scripts/min-versions.sh``: websockets 15's client shortcuts on 14.

websockets 15 gave the sync client ``close_code`` and ``close_reason``, shortcuts of
``connection.protocol.close_code`` / ``close_reason``, which websockets 14 (the
floor) has. The tests read them on the independent client, never on our code, so
adding the two shortcuts where they are missing changes nothing the library does and
lets those tests run at the floor. Loaded with ``-p tests.support.floors_plugin``.
"""

from __future__ import annotations

from websockets.sync.connection import Connection

if not hasattr(Connection, "close_code"):
    Connection.close_code = property(lambda self: self.protocol.close_code)  # type: ignore[attr-defined]
    Connection.close_reason = property(lambda self: self.protocol.close_reason)  # type: ignore[attr-defined]
