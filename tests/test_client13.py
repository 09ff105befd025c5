"""The TLS 1.3 client's reading of the server's flight (``_engine/client13.py``) against
tlslite-ng's ``_clientTLS13Handshake``.

Each handshake runs twice with the same randomness: once through aiotls's path, once
through tlslite-ng's method.  Every byte either side sends must be the same, and so must
both connections' state afterwards.  Here: HelloRetryRequest, a flight arriving a few
bytes at a time, and the flights the path does not take (a CertificateRequest, another
extension, a signature, Finished or ChangeCipherSpec that does not check out, a chain
aiotls refuses), which must go to tlslite-ng's method and end as there; OpenSSL's server.
The common handshakes (key types, ALPN/SNI, suites and groups, resumption) are in
``test_lean13.py`` for both sides.
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import Callable

import pytest

import aiotls
from tests.helpers import (
    PKI,
    Seeded,
    flip_last_byte,
    lean_contexts,
    lean_path_taken,
    same_both_ways,
    seeded_ticket,
    split_records,
)

pytestmark = pytest.mark.speedups  # (with the speed-ups off tlslite's method runs always)

_EE, _CERTIFICATE, _CERTIFICATE_VERIFY, _FINISHED = 8, 11, 15, 20


def test_hello_retry_same_as_tlslite(pki: PKI, seeded: Seeded,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    client_ctx, server_ctx = lean_contexts(pki)
    client_ctx.set_groups(["x25519", "secp256r1"])
    server_ctx.set_groups(["secp256r1"])
    _, client, _, error = same_both_ways("client", seeded, monkeypatch, client_ctx, server_ctx)
    assert error is None and client.group == "secp256r1"


@pytest.mark.parametrize("chunk", [1, 7, 100])
def test_flight_in_pieces_same_as_tlslite(pki: PKI, seeded: Seeded,
                                          monkeypatch: pytest.MonkeyPatch, chunk: int) -> None:
    """The server's flight arriving a few bytes at a time: aiotls's path waits for it."""
    client_ctx, server_ctx = lean_contexts(pki)
    _, client, _, error = same_both_ways("client", seeded, monkeypatch, client_ctx, server_ctx,
                                         server_chunk=chunk)
    assert error is None and client.handshake_complete


# --- flights that go to tlslite's method, and failures ---------------------------------------


@pytest.mark.parametrize("kind", [_CERTIFICATE_VERIFY, _FINISHED])
def test_bad_signature_or_finished_same_error_as_tlslite(pki: PKI, seeded: Seeded,
                                                         monkeypatch: pytest.MonkeyPatch,
                                                         kind: int) -> None:
    client_ctx, server_ctx = lean_contexts(pki)
    _, client, _, error = same_both_ways("client", seeded, monkeypatch, client_ctx, server_ctx,
                                         edit_server=flip_last_byte(kind), expect_lean=False)
    assert isinstance(error, aiotls.TLSError) and not client.handshake_complete


def test_bad_resumed_finished_same_error_as_tlslite(pki: PKI, seeded: Seeded,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    client_ctx, server_ctx = lean_contexts(pki)
    session = seeded_ticket(client_ctx, server_ctx)
    *_, error = same_both_ways("client", seeded, monkeypatch, client_ctx, server_ctx,
                               session=session, edit_server=flip_last_byte(_FINISHED),
                               expect_lean=False)
    assert isinstance(error, aiotls.TLSError)


def _add_extension(kind: int, body: bytes) -> Callable[[bytes], bytes]:
    """An EncryptedExtensions with one more extension at its end."""
    def edit(message: bytes) -> bytes:
        if message[0] != _EE:
            return message
        extensions = message[6:] + kind.to_bytes(2, "big") + len(body).to_bytes(2, "big") + body
        inner = len(extensions).to_bytes(2, "big") + extensions
        return bytes((_EE,)) + len(inner).to_bytes(3, "big") + inner
    return edit


@pytest.mark.parametrize(("kind", "body", "alert"), [
    # unknown to this path (tlslite's method then finds the transcript, which the server
    # hashed before the edit, does not match the signature)
    (0x1234, b"\x00\x01", aiotls.AlertDescription.decrypt_error),
    # ALPN selected though the client offered none
    (0x0010, b"\x00\x03\x02h2", aiotls.AlertDescription.unsupported_extension),
    (0x001C, b"\x00\x10", aiotls.AlertDescription.illegal_parameter),  # record_size_limit < 64
])
def test_other_extensions_go_to_tlslite(pki: PKI, seeded: Seeded,
                                        monkeypatch: pytest.MonkeyPatch, kind: int,
                                        body: bytes, alert: int) -> None:
    client_ctx, server_ctx = lean_contexts(pki)
    _, client, _, error = same_both_ways("client", seeded, monkeypatch, client_ctx, server_ctx,
                                         edit_server=_add_extension(kind, body),
                                         expect_lean=False)
    assert isinstance(error, aiotls.TLSError) and error.alert == alert
    assert not client.handshake_complete


def _bad_ccs(flight: bytes) -> bytes:
    """The server's middlebox ChangeCipherSpec with a byte other than 1."""
    records = split_records(flight)
    return b"".join([records[0], records[1][:-1] + b"\x02", *records[2:]])


def _second_ccs(flight: bytes) -> bytes:
    records = split_records(flight)
    return b"".join([records[0], records[1], records[1], *records[2:]])


@pytest.mark.parametrize(("edit", "alert"), [
    (_bad_ccs, aiotls.AlertDescription.unexpected_message),  # (tlslite's method says so)
    (_second_ccs, None),  # (ignored by both, as any number of them in middlebox mode)
])
def test_unusual_change_cipher_spec_same_as_tlslite(pki: PKI, seeded: Seeded,
                                                    monkeypatch: pytest.MonkeyPatch,
                                                    edit: Callable[[bytes], bytes],
                                                    alert: int | None) -> None:
    client_ctx, server_ctx = lean_contexts(pki)
    _, client, _, error = same_both_ways("client", seeded, monkeypatch, client_ctx, server_ctx,
                                         edit_server_flight=edit,
                                         expect_lean=alert is None)
    if alert is None:
        assert error is None and client.handshake_complete
    else:
        assert client.error is not None and client.error.alert == alert


@pytest.mark.parametrize("hostname", ["other.test", "localhost"])
def test_refused_chain_fails_as_tlslite(pki: PKI, seeded: Seeded,
                                        monkeypatch: pytest.MonkeyPatch, hostname: str) -> None:
    """A flight whose certificate aiotls refuses (wrong name; unknown CA) goes to
    tlslite's method at the CertificateVerify, where it fails with aiotls's error."""
    client_ctx, server_ctx = lean_contexts(pki)
    if hostname == "localhost":
        client_ctx = aiotls.TLSContext(ssl.PROTOCOL_TLS_CLIENT)  # (trusts no CA here)
    _, client, server, error = same_both_ways("client", seeded, monkeypatch, client_ctx,
                                              server_ctx, hostname=hostname,
                                              expect_lean=False)
    assert isinstance(client.error, aiotls.CertificateError) and error is not None
    assert not client.handshake_complete and not server.handshake_complete




def test_certificate_request_goes_to_tlslite(pki: PKI) -> None:
    client_ctx, server_ctx = lean_contexts(pki)
    server_ctx.load_verify_locations(cafile=pki.ca_file)
    server_ctx.verify_mode = ssl.CERT_OPTIONAL  # (asks; the client has none)
    assert not lean_path_taken("client", client_ctx, server_ctx)
    client_ctx.load_cert_chain(*pki.client[1:])
    assert not lean_path_taken("client", client_ctx, server_ctx)
    server_ctx.verify_mode = ssl.CERT_NONE  # (a client with a certificate: tlslite's method)
    assert not lean_path_taken("client", client_ctx, server_ctx)


def test_common_handshakes_take_aiotls_path(pki: PKI) -> None:
    client_ctx, server_ctx = lean_contexts(pki)
    assert lean_path_taken("client", client_ctx, server_ctx)


# --- against OpenSSL's server -----------------------------------------------------------------


def _openssl_server(pki: PKI, client_ctx: aiotls.TLSContext, session: aiotls.TLSSession | None,
                    server_ctx: ssl.SSLContext, chunk: int | None = None,
                    ) -> aiotls.TLSConnection:
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = server_ctx.wrap_bio(incoming, outgoing, server_side=True)
    client = aiotls.TLSConnection(client_ctx, server_hostname="localhost", session=session)
    for _ in range(10):
        incoming.write(client.data_to_send())
        with contextlib.suppress(ssl.SSLWantReadError):
            obj.do_handshake()
        back = outgoing.read()
        step = chunk or max(1, len(back))
        for at in range(0, len(back), step):
            client.receive_data(back[at:at + step])
        if client.handshake_complete and obj.version():
            break
    assert client.error is None and client.handshake_complete
    client.send_data(b"ping")
    incoming.write(client.data_to_send())
    assert obj.read(4) == b"ping"
    obj.write(b"pong")  # (and tickets: OpenSSL sends them with its first write)
    client.receive_data(outgoing.read())
    return client


def test_openssl_server_full_and_resumed(pki: PKI) -> None:
    server_ctx = pki.stdlib_server_context()
    server_ctx.set_alpn_protocols(["h2", "http/1.1"])
    client_ctx = pki.client_context()
    client_ctx.set_alpn_protocols(["http/1.1"])
    session = None
    for round_ in range(3):
        client = _openssl_server(pki, client_ctx, session, server_ctx)
        assert client._engine._tl._aiotls_lean_client
        assert client.selected_alpn_protocol() == "http/1.1"
        assert client.session_reused == (round_ > 0)
        session = client.session


def test_openssl_flight_record_by_record(pki: PKI) -> None:
    """OpenSSL's flight, one record per message, read a byte at a time: aiotls's path
    checks each message as it comes, then takes the flight."""
    server_ctx = pki.stdlib_server_context()
    client = _openssl_server(pki, pki.client_context(), None, server_ctx, chunk=1)
    assert client.handshake_complete and client._engine._tl._aiotls_lean_client


def test_split_records_helper_sees_openssl_records(pki: PKI) -> None:
    """(How many records OpenSSL's flight takes, for the test above: more than one.)"""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = pki.stdlib_server_context().wrap_bio(incoming, outgoing, server_side=True)
    client = aiotls.TLSConnection(pki.client_context(), server_hostname="localhost")
    incoming.write(client.data_to_send())
    with contextlib.suppress(ssl.SSLWantReadError):
        obj.do_handshake()
    records = split_records(outgoing.read())
    assert len(records) >= 6  # ServerHello, ChangeCipherSpec, EE, Certificate, CV, Finished
