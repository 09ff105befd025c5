"""The client's ClientHello made from a remembered one (``_engine/client_hello.py``) against
tlslite-ng's ``_clientSendClientHello``.

Each handshake runs twice with the same randomness: once with the ClientHello made by
aiotls's path, once by tlslite-ng's method; every byte either end sends and both
connections' state must be the same.  The common handshakes (key types, ALPN/SNI, suites
and groups, resumption, bit flips) run in ``test_lean13.py`` (side "hello").  Here: a
HelloRetryRequest (tlslite changes and re-sends the message made here), with resumption;
a client certificate; an expired ticket; what the remembered message depends on (server
name, context changes) and what is left to tlslite-ng's method.
"""

from __future__ import annotations

import ssl
import time

import pytest

import aiotls
from aiotls._engine import client_hello
from aiotls._engine.settings import _prepare
from tests.helpers import (
    PKI,
    SEEDED_NOW,
    Seeded,
    lean_contexts,
    lean_path_taken,
    pump,
    same_both_ways,
    seeded_ticket,
)

pytestmark = pytest.mark.speedups  # (with the speed-ups off tlslite's method runs always)


@pytest.mark.parametrize("resume", [False, True])
def test_hello_retry_same_as_tlslite(pki: PKI, seeded: Seeded,
                                     monkeypatch: pytest.MonkeyPatch, resume: bool) -> None:
    """The server asks for another key share: tlslite replaces the shares of the message
    made here, recomputes the binder and sends it again."""
    client_ctx, server_ctx = lean_contexts(pki)
    client_ctx.set_groups(["x25519", "secp256r1"])
    session = seeded_ticket(client_ctx, server_ctx) if resume else None
    server_ctx.set_groups(["secp256r1"])
    _, client, _, error = same_both_ways("hello", seeded, monkeypatch, client_ctx, server_ctx,
                                         session=session)
    assert error is None and client.group == "secp256r1" and client.session_reused == resume


def test_hello_retry_leaves_later_hellos_alone(pki: PKI, seeded: Seeded,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """A HelloRetryRequest changes one connection's ClientHello only: the next ones made
    from the same remembered message are still tlslite's."""
    client_ctx, server_ctx = lean_contexts(pki)
    client_ctx.set_groups(["x25519", "secp256r1"])
    retry_ctx = pki.server_context()
    retry_ctx.set_groups(["secp256r1"])
    same_both_ways("hello", seeded, monkeypatch, client_ctx, retry_ctx)
    _, client, _, error = same_both_ways("hello", seeded, monkeypatch, client_ctx, server_ctx)
    assert error is None and client.group == "x25519"


def test_client_certificate_same_as_tlslite(pki: PKI, seeded: Seeded,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """A client with a certificate offers post-handshake authentication and keeps its key
    pair for it, as with tlslite's method; the server asks for the certificate."""
    client_ctx, server_ctx = pki.mtls_contexts()
    _, client, server, error = same_both_ways("hello", seeded, monkeypatch, client_ctx,
                                              server_ctx)
    assert error is None and server.get_unverified_chain()
    assert client._engine._tl._client_keypair is not None


def test_expired_ticket_not_offered_as_tlslite(pki: PKI, seeded: Seeded,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """tlslite's clock says the ticket is older than its lifetime and seven days: dropped
    from the session, no pre_shared_key offered, a full handshake."""
    client_ctx, server_ctx = lean_contexts(pki)
    session = seeded_ticket(client_ctx, server_ctx)
    monkeypatch.setattr(time, "time", lambda: SEEDED_NOW.timestamp() + 8 * 24 * 3600)
    _, client, _, error = same_both_ways("hello", seeded, monkeypatch, client_ctx, server_ctx,
                                         session=session)
    assert error is None and not client.session_reused


def test_each_server_name_gets_its_own(pki: PKI) -> None:
    """The remembered message is per server name: the SNI sent is this connection's."""
    client_ctx, server_ctx = lean_contexts(pki)
    for name in ("example.test", "localhost", "example.test"):  # (both in the certificate)
        aiotls.TLSConnection(client_ctx, server_hostname=name)
        client = aiotls.TLSConnection(client_ctx, server_hostname=name)
        server = aiotls.TLSConnection(server_ctx, server_side=True)
        pump(client, server)
        assert client._engine._tl._aiotls_lean_hello
        assert server._engine.sni() == name and client.handshake_complete


def test_context_changes_are_sent(pki: PKI) -> None:
    """A context changed after its first connections (ALPN, groups): the next ClientHello
    offers what the context says now."""
    client_ctx, server_ctx = lean_contexts(pki)
    client_ctx.set_alpn_protocols(["h2"])
    server_ctx.set_alpn_protocols(["http/1.1", "h2"])
    assert lean_path_taken("hello", client_ctx, server_ctx)
    client_ctx.set_alpn_protocols(["http/1.1"])
    client_ctx.set_groups(["secp384r1"])
    aiotls.TLSConnection(client_ctx, server_hostname="localhost")
    client = aiotls.TLSConnection(client_ctx, server_hostname="localhost")
    server = aiotls.TLSConnection(server_ctx, server_side=True)
    pump(client, server)
    assert client._engine._tl._aiotls_lean_hello
    assert client.selected_alpn_protocol() == server.selected_alpn_protocol() == "http/1.1"
    assert client.group == "secp384r1"


def test_remembered_messages_are_bounded(pki: PKI) -> None:
    """A client context connecting to many server names keeps a bounded number of
    remembered messages."""
    client_ctx = pki.client_context()
    client_ctx.check_hostname = False
    client_ctx.verify_mode = ssl.CERT_NONE
    for i in range(client_hello._MAX_TEMPLATES * 2 + 5):
        aiotls.TLSConnection(client_ctx, server_hostname=f"host{i}.example.test")
    remembered = vars(_prepare(client_ctx).client_settings._aiotls_validated)["_aiotls_hellos"]
    assert 0 < len(remembered) <= client_hello._MAX_TEMPLATES


def test_tls12_sessions_go_to_tlslite(pki: PKI) -> None:
    """A TLS 1.2 session (its ID or ticket) is resumed with tlslite's ClientHello."""
    client_ctx, server_ctx = lean_contexts(pki)
    server_ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    aiotls.TLSConnection(client_ctx, server_hostname="localhost")
    first = aiotls.TLSConnection(client_ctx, server_hostname="localhost")
    server = aiotls.TLSConnection(server_ctx, server_side=True)
    pump(first, server)
    assert first.version() == "TLSv1.2" and first._engine._tl._aiotls_lean_hello
    client = aiotls.TLSConnection(client_ctx, server_hostname="localhost",
                                  session=first.session)
    server = aiotls.TLSConnection(server_ctx, server_side=True)
    pump(client, server)
    assert client.session_reused and not client._engine._tl._aiotls_lean_hello


def test_tls12_only_client_goes_to_tlslite(pki: PKI) -> None:
    client_ctx, server_ctx = lean_contexts(pki)
    client_ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    assert not lean_path_taken("hello", client_ctx, server_ctx)
