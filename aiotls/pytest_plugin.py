"""pytest fixtures for testing code that uses aiotls (like trustme's): a throwaway CA and a
matching server and client context pair, per test.

Enable them in a ``conftest.py``::

    pytest_plugins = ["aiotls.pytest_plugin"]

    def test_my_server(aiotls_server_context, aiotls_client_context):
        ...  # the client trusts the server's certificate (localhost, 127.0.0.1)

``aiotls_pki`` is the :class:`aiotls.testing.ThrowawayPKI` behind them (its files, its CA
to issue more certificates, stdlib contexts for the other end); it has a client
certificate, so ``aiotls_pki.server_context(require_client_cert=True)`` with
``aiotls_pki.client_context()`` tests mutual TLS.  Requires pytest (a test dependency,
never imported by aiotls itself).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .context import TLSContext
from .testing import ThrowawayPKI, temporary_pki

__all__ = ["aiotls_client_context", "aiotls_pki", "aiotls_server_context"]


@pytest.fixture
def aiotls_pki() -> Iterator[ThrowawayPKI]:
    """A throwaway CA, a server certificate for localhost and 127.0.0.1 and a client
    certificate, as files in a temporary directory removed after the test."""
    with temporary_pki(client_name="client.test") as pki:
        yield pki


@pytest.fixture
def aiotls_server_context(aiotls_pki: ThrowawayPKI) -> TLSContext:
    """A server context serving :func:`aiotls_pki`'s certificate."""
    return aiotls_pki.server_context()


@pytest.fixture
def aiotls_client_context(aiotls_pki: ThrowawayPKI) -> TLSContext:
    """A client context that trusts only :func:`aiotls_pki`'s CA (verification on) and
    holds its client certificate."""
    return aiotls_pki.client_context()
