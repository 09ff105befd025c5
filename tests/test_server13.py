"""The TLS 1.3 server flight written by aiotls (``_engine/server13.py``) against tlslite-ng's.

Each handshake runs twice with the same randomness (random bytes, key shares, signatures,
clock): once through aiotls's flight, once through tlslite-ng's ``_serverTLS13Handshake``.
Every byte either side sends must be the same, and so must both connections' state
afterwards.  The common handshakes (key types, ALPN/SNI, suites and groups, resumption) are
in ``test_lean13.py`` for both sides; here: tickets, corrupted binders and Finished values,
the client's Finished as it may arrive, what goes to tlslite-ng, and OpenSSL's client.
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import Callable

import pytest

import aiotls
from aiotls._engine import server13
from tests.helpers import (
    PKI,
    RecordForger,
    Seeded,
    flip_last_byte,
    lean_contexts,
    lean_path_taken,
    same_both_ways,
    seeded_ticket,
    split_records,
)

pytestmark = pytest.mark.speedups  # (with the speed-ups off tlslite's method runs always)


def test_unknown_ticket_gives_a_full_handshake_as_tlslite(pki: PKI, seeded: Seeded,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    client_ctx, server_ctx = lean_contexts(pki)
    session = seeded_ticket(client_ctx, server_ctx)
    other_server = pki.server_context()  # other ticket keys
    _, client, server, _ = same_both_ways("server", seeded, monkeypatch, client_ctx, other_server,
                                     session=session)
    assert client.handshake_complete and not server.session_reused


def test_ticket_of_another_hash_is_not_used_as_tlslite(pki: PKI, seeded: Seeded,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    client_ctx, server_ctx = lean_contexts(pki)
    client_ctx.set_ciphers("TLS_AES_256_GCM_SHA384")
    session = seeded_ticket(client_ctx, server_ctx)
    client_ctx.set_ciphers("TLS_AES_128_GCM_SHA256")  # a SHA-256 suite now
    _, client, server, _ = same_both_ways("server", seeded, monkeypatch, client_ctx, server_ctx,
                                     session=session)
    assert client.handshake_complete and not server.session_reused


@pytest.mark.parametrize("resume", [False, True])
def test_bad_client_finished_same_alert_as_tlslite(pki: PKI, seeded: Seeded,
                                                   monkeypatch: pytest.MonkeyPatch,
                                                   resume: bool) -> None:
    client_ctx, server_ctx = lean_contexts(pki)
    session = seeded_ticket(client_ctx, server_ctx) if resume else None
    _, _, server, error = same_both_ways("server", seeded, monkeypatch, client_ctx, server_ctx,
                                          session=session, edit_client=flip_last_byte(20))
    assert isinstance(error, aiotls.TLSError)
    assert not server.handshake_complete


def test_bad_binder_same_alert_as_tlslite(pki: PKI, seeded: Seeded,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    client_ctx, server_ctx = lean_contexts(pki)
    session = seeded_ticket(client_ctx, server_ctx)
    # the binder is the ClientHello's last bytes (the hello is sent before a tap could
    # see it: the record is edited)
    *_, error = same_both_ways("server", seeded, monkeypatch, client_ctx, server_ctx, session=session,
                                edit_hello=flip_last_byte(22))
    assert isinstance(error, aiotls.PeerMisbehaved)
    assert error.alert == aiotls.AlertDescription.illegal_parameter


@pytest.mark.parametrize("chunk", [1, 5, 40])
def test_client_finished_in_pieces_same_as_tlslite(pki: PKI, seeded: Seeded,
                                                   monkeypatch: pytest.MonkeyPatch,
                                                   chunk: int) -> None:
    """The client's second flight (ChangeCipherSpec, Finished) arriving a few bytes at a
    time: the server reads its Finished straight from the socket once it is whole."""
    client_ctx, server_ctx = lean_contexts(pki)
    _, client, server, error = same_both_ways("server", seeded, monkeypatch, client_ctx,
                                              server_ctx, client_chunk=chunk)
    assert error is None and server.handshake_complete


def _damage_last_record(flight: bytes, server: aiotls.TLSConnection) -> bytes:
    """The client's second flight with one ciphertext byte of its last record flipped."""
    records = split_records(flight)
    last = records[-1]
    records[-1] = last[:-3] + bytes((last[-3] ^ 0x40,)) + last[-2:]
    return b"".join(records)


def _second_ccs(flight: bytes, server: aiotls.TLSConnection) -> bytes:
    """A second ChangeCipherSpec before the Finished record."""
    records = split_records(flight)
    return b"".join([*records[:-1], records[0], records[-1]])


def _bad_ccs(flight: bytes, server: aiotls.TLSConnection) -> bytes:
    """A ChangeCipherSpec whose byte is not 1."""
    records = split_records(flight)
    return b"".join([records[0][:-1] + b"\x02", *records[1:]])


def _finished_in_two_records(flight: bytes, server: aiotls.TLSConnection) -> bytes:
    """The Finished message split over two protected records."""
    records = split_records(flight)
    forger = RecordForger(server)
    kind, finished = forger.unseal(records[-1])
    forger = RecordForger(server)
    return b"".join([*records[:-1], forger.seal(kind, finished[:10]),
                     forger.seal(kind, finished[10:])])


def _protected_alert(flight: bytes, server: aiotls.TLSConnection) -> bytes:
    """A protected fatal alert (handshake_failure) in place of the Finished record."""
    records = split_records(flight)
    return b"".join([*records[:-1], RecordForger(server).seal(21, b"\x02\x28")])


def _protected_ccs(flight: bytes, server: aiotls.TLSConnection) -> bytes:
    """A ChangeCipherSpec protected under the client's handshake keys before the Finished
    record (not the middlebox one, which is never protected; tlslite ignores it too)."""
    records = split_records(flight)
    kind, finished = RecordForger(server).unseal(records[-1])
    forger = RecordForger(server)
    return b"".join([*records[:-1], forger.seal(20, b"\x01"), forger.seal(kind, finished)])


def _finished_and_data(flight: bytes, server: aiotls.TLSConnection) -> bytes:
    """The Finished with 100 bytes of zero padding."""
    records = split_records(flight)
    forger = RecordForger(server)
    kind, finished = forger.unseal(records[-1])
    forger = RecordForger(server)
    return b"".join([*records[:-1], forger.seal(kind, finished, padding=100)])


@pytest.mark.parametrize(("edit", "alert"), [
    (_damage_last_record, aiotls.AlertDescription.bad_record_mac),
    (_second_ccs, None),  # (ignored, as any number of them in middlebox mode)
    (_bad_ccs, aiotls.AlertDescription.unexpected_message),
    (_finished_in_two_records, None),
    (_protected_alert, aiotls.AlertDescription.handshake_failure),
    (_protected_ccs, None),
    (_finished_and_data, None),
])
def test_unusual_client_finished_records_same_as_tlslite(
        pki: PKI, seeded: Seeded, monkeypatch: pytest.MonkeyPatch,
        edit: Callable[[bytes, aiotls.TLSConnection], bytes], alert: int | None) -> None:
    """A Finished record that does not open, a second ChangeCipherSpec, a Finished over
    two records or padded: each read by tlslite's method or the direct read alike, with
    the same outcome."""
    client_ctx, server_ctx = lean_contexts(pki)
    _, _, server, error = same_both_ways("server", seeded, monkeypatch, client_ctx, server_ctx,
                                         edit_finished=edit)
    if alert is not None:
        assert isinstance(error, aiotls.TLSError)
        assert server.error is not None and server.error.alert == alert
    else:
        assert error is None and server.handshake_complete


def test_client_alert_instead_of_finished_same_as_tlslite(pki: PKI, seeded: Seeded,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """A client that refuses the server's chain answers its flight with an alert where its
    ChangeCipherSpec and Finished would be (in plaintext: aiotls's client has not switched
    keys yet): read by tlslite's method, with the same outcome."""
    server_ctx = lean_contexts(pki)[1]
    client_ctx = aiotls.TLSContext(ssl.PROTOCOL_TLS_CLIENT)  # (trusts no CA)
    _, client, server, _ = same_both_ways("server", seeded, monkeypatch, client_ctx, server_ctx)
    assert isinstance(client.error, aiotls.CertificateError)
    assert isinstance(server.error, aiotls.AlertReceived)
    assert server.error.alert == aiotls.AlertDescription.unknown_ca


# --- what goes to tlslite's method ----------------------------------------------------------




def test_common_handshakes_take_aiotls_flight(pki: PKI) -> None:
    client_ctx, server_ctx = lean_contexts(pki)
    assert lean_path_taken("server", client_ctx, server_ctx)
    assert lean_path_taken("server", client_ctx, server_ctx, seeded_ticket(client_ctx, server_ctx))


def test_client_certificate_request_goes_to_tlslite(pki: PKI) -> None:
    client_ctx, server_ctx = lean_contexts(pki)
    client_ctx.load_cert_chain(*pki.client[1:])
    server_ctx.load_verify_locations(cafile=pki.ca_file)
    server_ctx.verify_mode = ssl.CERT_REQUIRED
    assert not lean_path_taken("server", client_ctx, server_ctx)


def test_hello_retry_goes_to_tlslite(pki: PKI) -> None:
    client_ctx, server_ctx = lean_contexts(pki)
    client_ctx.set_groups(["x25519", "secp256r1"])
    server_ctx.set_groups(["secp256r1"])
    assert not lean_path_taken("server", client_ctx, server_ctx)


def test_stdlib_client_resumes_through_aiotls_flight(pki: PKI) -> None:
    """OpenSSL's client (ssl.MemoryBIO) against the flight: ALPN, SNI, tickets, resumption."""
    server_ctx = pki.server_context()
    server_ctx.set_alpn_protocols(["h2", "http/1.1"])
    client_ctx = pki.stdlib_client_context()
    client_ctx.set_alpn_protocols(["http/1.1"])
    session = None
    for round_ in range(3):
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        obj = client_ctx.wrap_bio(incoming, outgoing, server_hostname="localhost",
                                  session=session)
        server = aiotls.TLSConnection(server_ctx, server_side=True)
        for _ in range(10):
            with contextlib.suppress(ssl.SSLWantReadError):
                obj.do_handshake()
            server.receive_data(outgoing.read())
            incoming.write(server.data_to_send())
            if server.handshake_complete and obj.version():
                break
        server.send_data(b"ping")
        incoming.write(server.data_to_send())
        assert obj.read(4) == b"ping"
        assert server._engine._tl._aiotls_lean
        assert obj.selected_alpn_protocol() == "http/1.1" == server.selected_alpn_protocol()
        assert server._engine.sni() == "localhost"
        assert obj.session_reused == (round_ > 0) == server.session_reused
        session = obj.session


@pytest.mark.parametrize("lean", [True, False])
def test_openssl_client_refusing_the_chain(pki: PKI, monkeypatch: pytest.MonkeyPatch,
                                           lean: bool) -> None:
    """OpenSSL's client refuses the chain (it trusts no CA here) with an alert where its
    Finished would be: the server reads it as that alert, with its flight written by aiotls
    or by tlslite-ng."""
    monkeypatch.setattr(server13, "ENABLED", lean)
    server = aiotls.TLSConnection(pki.server_context(), server_side=True)
    client_ctx = ssl.create_default_context()  # (the system's CAs: not the test CA)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = client_ctx.wrap_bio(incoming, outgoing, server_hostname="localhost")
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    server.receive_data(outgoing.read())
    incoming.write(server.data_to_send())
    with pytest.raises(ssl.SSLCertVerificationError):
        obj.do_handshake()
    server.receive_data(outgoing.read())
    assert server._engine._tl._aiotls_lean is lean
    assert isinstance(server.error, aiotls.AlertReceived)
    assert server.error.alert == aiotls.AlertDescription.unknown_ca
