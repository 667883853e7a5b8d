"""Local Sphinx extension: ``.. ws4py-options::`` renders the endpoint options table.

The table is built from :class:`ws4py_integrations.WebSocketOptions` itself
(field defaults and their ``#:`` comments), so the documented defaults are the
real ones.
"""

from __future__ import annotations

from dataclasses import MISSING, fields
from typing import Any

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.application import Sphinx
from sphinx.pycode import ModuleAnalyzer
from sphinx.util.docutils import SphinxDirective


def _format_default(name: str, value: Any) -> str:
    if value is None:
        # None turns an option off, except origins (the same-origin check) and
        # allowed_hosts (loopback only, under that check).
        if name == "origins":
            return "``None`` (same origin, or no ``Origin``)"
        if name == "allowed_hosts":
            return "``None`` (loopback and IP addresses, under the same-origin default)"
        return "``None`` (off)"
    if isinstance(value, bool):
        return f"``{value}``"
    if isinstance(value, int) and ("size" in name or "buffer" in name):
        for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
            if value >= scale and value % scale == 0:
                return f"{value // scale} {unit}"
        return f"{value} bytes"
    if isinstance(value, (int, float)) and ("timeout" in name or "interval" in name):
        return f"{value:g} s"
    if isinstance(value, tuple) and not value:
        return "none"
    return f"``{value!r}``"


class OptionsTable(SphinxDirective):
    """A list-table of every ``WebSocketOptions`` field: name, default, meaning."""

    has_content = False

    def run(self) -> list[nodes.Node]:
        from ws4py_integrations import options as module

        self.env.note_dependency(module.__file__ or "")
        docs = ModuleAnalyzer.for_module(module.__name__).find_attr_docs()
        lines = [".. list-table::", "   :header-rows: 1", "   :widths: 22 16 62", ""]
        lines += ["   * - option", "     - default", "     - meaning"]
        for field in fields(module.WebSocketOptions):
            default = field.default
            if default is MISSING and field.default_factory is not MISSING:
                default = field.default_factory()
            meaning = " ".join(line.strip() for line in docs.get(("WebSocketOptions", field.name), [])).strip()
            lines += [
                f"   * - ``{field.name}``",
                f"     - {_format_default(field.name, default)}",
                f"     - {meaning or '(undocumented)'}",
            ]
        container = nodes.container()
        self.state.nested_parse(StringList(lines, source="ws4py-options"), self.content_offset, container)
        return list(container.children)


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_directive("ws4py-options", OptionsTable)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
