"""Fixtures: the server under test (by adapter and transport), TLS material."""

from __future__ import annotations

import resource
from collections.abc import Iterator

import pytest
import trustme

from tests.support import app as apps
from tests.support.servers import RunningServer, TLSFiles, available, serve

SERVERS = available()


def pytest_report_header() -> str:
    return f"servers under test: {', '.join(SERVERS)}"


def _shares_a_module_server(item: pytest.Item) -> bool:
    """Whether ``item`` uses (directly or not) a module-scoped parametrized fixture."""
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return False
    return any(
        definitions[-1].scope == "module" and definitions[-1].params is not None
        for definitions in info.name2fixturedefs.values()
        if definitions
    )


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """In each module, the tests that share no module-scoped server run first.

    pytest keeps a module's shared server up until the module's last test of
    that parameter; CherryPy allows one server per process, so a test starting
    a CherryPy server of its own after it would fail, depending on which tests
    were selected (``-k cherrypy`` did). After pytest's own reordering (trylast),
    which only groups the shared servers' tests: the order among those stays.
    """
    start = 0
    while start < len(items):
        end = start
        module = items[start].module if isinstance(items[start], pytest.Function) else None
        while end < len(items) and (items[end].module if isinstance(items[end], pytest.Function) else None) is module:
            end += 1
        run = items[start:end]
        items[start:end] = [i for i in run if not _shares_a_module_server(i)] + [
            i for i in run if _shares_a_module_server(i)
        ]
        start = end


@pytest.fixture(scope="session", autouse=True)
def _raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TLSFiles:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    directory = tmp_path_factory.mktemp("tls")
    certfile, keyfile = directory / "cert.pem", directory / "key.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(certfile))
    cert.private_key_pem.write_to_path(str(keyfile))
    import ssl

    client = ssl.create_default_context()
    ca.configure_trust(client)
    return TLSFiles(str(certfile), str(keyfile), client)


def _params() -> list[pytest.param]:  # type: ignore[valid-type]
    return [
        pytest.param((name, transport), id=f"{name}-{transport}") for name in SERVERS for transport in ("ws", "wss")
    ]


@pytest.fixture(scope="module", params=_params())
def server(request: pytest.FixtureRequest, tls_files: TLSFiles) -> Iterator[RunningServer]:
    """The behaviour-suite app on one server adapter, over ws or wss (shared by a module)."""
    name, transport = request.param
    with serve(name, apps.make_app(), tls_files if transport == "wss" else None) as running:
        running.extra["client_ssl"] = tls_files.client_context if running.tls else None
        yield running


@pytest.fixture(params=[pytest.param(name, id=name) for name in SERVERS])
def fresh_server(request: pytest.FixtureRequest) -> Iterator[RunningServer]:
    """A server of its own for one test (for tests that stop it), plain ws."""
    with serve(request.param, apps.make_app()) as running:
        running.extra["client_ssl"] = None
        yield running


@pytest.fixture(autouse=True)
def _drain_events() -> None:
    while not apps.events.empty():
        apps.events.get_nowait()
