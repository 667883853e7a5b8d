"""Hardening tools: load, soak and fuzz commands (``python -m hardening.<name>``)."""
