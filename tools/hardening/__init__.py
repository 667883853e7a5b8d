"""Hardening tools: load, soak and fuzz commands (``python -m tools.hardening.<name>``)."""
