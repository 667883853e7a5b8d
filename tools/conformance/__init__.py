"""Autobahn|Testsuite conformance runs against ``examples.echo`` (see ``tools/conformance/README.md``)."""
