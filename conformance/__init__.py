"""Autobahn|Testsuite conformance runs against ``examples.echo`` (see ``conformance/README.md``)."""
