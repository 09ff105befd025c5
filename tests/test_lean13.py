"""The common handshakes through aiotls's lean TLS 1.3 paths -- the server's flight
(``_engine/server13.py``) and the client's reading of it (``_engine/client13.py``) --
against tlslite-ng's methods, one side at a time.

Each handshake runs twice with the same randomness (random bytes, key shares, signatures,
clock): with the side's lean path on and off.  Every byte either end sends must be the
same, and so must both connections' state afterwards.  What only one side has (fallbacks,
malformed input, real peers) is in ``test_server13.py`` and ``test_client13.py``.
"""

from __future__ import annotations

import pytest

from tests.helpers import (
    ALPN_SNI_CASES,
    LEAN_GROUP_LISTS,
    LEAN_SUITES,
    PKI,
    Seeded,
    alpn_sni_contexts,
    lean_contexts,
    pump,
    same_both_ways,
    seeded_ticket,
)

pytestmark = [pytest.mark.speedups,  # (with the speed-ups off tlslite's methods run always)
              pytest.mark.parametrize("side", ["server", "client"])]


@pytest.mark.parametrize("key_type", ["ecdsa-p256", "ecdsa-p384", "rsa2048", "ed25519"])
def test_full_handshake_same_bytes_and_state(pki: PKI, seeded: Seeded,
                                             monkeypatch: pytest.MonkeyPatch, side: str,
                                             key_type: str) -> None:
    client_ctx, server_ctx = lean_contexts(pki, key_type)
    _, client, server, error = same_both_ways(side, seeded, monkeypatch, client_ctx, server_ctx)
    assert error is None and client.version() == "TLSv1.3" and not server.session_reused
    assert client.get_unverified_chain() and client.data_to_send() == b""


@pytest.mark.parametrize(("client_alpn", "server_alpn", "hostname"), ALPN_SNI_CASES)
def test_alpn_and_sni_same_as_tlslite(pki: PKI, seeded: Seeded,
                                      monkeypatch: pytest.MonkeyPatch, side: str,
                                      client_alpn: list[str] | None,
                                      server_alpn: list[str] | None,
                                      hostname: str | None) -> None:
    client_ctx, server_ctx = alpn_sni_contexts(pki, client_alpn, server_alpn, hostname)
    _, client, server, error = same_both_ways(side, seeded, monkeypatch, client_ctx,
                                              server_ctx, hostname=hostname)
    assert error is None
    assert client.selected_alpn_protocol() == server.selected_alpn_protocol()
    assert (client.selected_alpn_protocol() is not None) == bool(client_alpn and server_alpn)


@pytest.mark.parametrize("suite", LEAN_SUITES)
@pytest.mark.parametrize("groups", LEAN_GROUP_LISTS)
def test_suites_and_groups_same_as_tlslite(pki: PKI, seeded: Seeded,
                                           monkeypatch: pytest.MonkeyPatch, side: str,
                                           suite: str, groups: list[str]) -> None:
    client_ctx, server_ctx = lean_contexts(pki)
    client_ctx.set_groups(groups)
    client_ctx.set_ciphers(suite)
    _, client, _, error = same_both_ways(side, seeded, monkeypatch, client_ctx, server_ctx)
    assert error is None and client.cipher()[0] == suite  # type: ignore[index]


@pytest.mark.parametrize("suite", ["TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384"])
def test_resumption_same_as_tlslite(pki: PKI, seeded: Seeded,
                                    monkeypatch: pytest.MonkeyPatch, side: str,
                                    suite: str) -> None:
    client_ctx, server_ctx = lean_contexts(pki)
    client_ctx.set_ciphers(suite)
    session = seeded_ticket(client_ctx, server_ctx)
    _, client, server, error = same_both_ways(side, seeded, monkeypatch, client_ctx,
                                              server_ctx, session=session)
    assert error is None and client.session_reused and server.session_reused
    # the tickets the resumed connection receives resume again
    server.send_data(b"y")
    pump(client, server)
    again = client.session
    assert again is not None and again.has_ticket
    _, client, server, error = same_both_ways(side, seeded, monkeypatch, client_ctx,
                                              server_ctx, session=again)
    assert error is None and client.session_reused and server.session_reused
