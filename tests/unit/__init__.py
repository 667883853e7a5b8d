"""Byte-level unit tests of the core: no servers, fake backends, socket pairs."""
