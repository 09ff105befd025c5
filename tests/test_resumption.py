"""Session resumption: TLS 1.3 PSK tickets and TLS 1.2 session tickets."""

from __future__ import annotations

import datetime
import os
import ssl
from typing import Any

import pytest

import aiotls
from aiotls.events import DataReceived
from tests.helpers import PKI, VERSIONS, connect, pump
from tests.stdlib_peer import StdlibPeer, run


@pytest.mark.parametrize("version", VERSIONS)
def test_resumption(pki: PKI, version: str) -> None:
    cctx = pki.client_context()
    cctx.maximum_version = VERSIONS[version]
    sctx = pki.server_context()
    client, server = connect(cctx, sctx)
    assert not client.session_reused and not server.session_reused
    session = client.session
    assert session is not None and session.has_ticket
    assert session.version == version
    again, server2 = connect(cctx, sctx, session)
    assert again.session_reused, again.error
    assert server2.session_reused
    assert again.version() == version
    assert again.getpeercert(binary_form=True) == client.getpeercert(binary_form=True) or \
        version == "TLSv1.3"  # TLS 1.3 resumption carries no certificate
    data = b"".join(e.data for e in again.events() if isinstance(e, DataReceived))
    assert data == b"hello"
    assert again._engine.records_taken_over  # the record layer takes over resumed sessions too


def test_tickets_from_another_server_are_not_accepted(pki: PKI) -> None:
    cctx = pki.client_context()
    client, _ = connect(cctx, pki.server_context())
    other = pki.server_context()  # a different context: different ticket key
    again, server = connect(cctx, other, client.session)
    assert again.version() == "TLSv1.3"
    assert not again.session_reused and not server.session_reused  # full handshake instead


def test_shared_ticket_keys_resume_across_contexts(pki: PKI) -> None:
    keys = [os.urandom(32), os.urandom(32)]
    a, b = pki.server_context(), pki.server_context()
    a.set_session_ticket_keys(keys)
    b.set_session_ticket_keys(keys[::-1])  # rotated: b seals with keys[1], opens both
    cctx = pki.client_context()
    client, _ = connect(cctx, a)
    again, server = connect(cctx, b, client.session)
    assert again.session_reused and server.session_reused
    with pytest.raises(aiotls.TLSConfigurationError):
        a.set_session_ticket_keys([b"short"])


def test_expired_ticket_is_ignored(pki: PKI) -> None:
    sctx = pki.server_context()
    sctx.session_ticket_lifetime = 60
    cctx = pki.client_context()
    client, _ = connect(cctx, sctx)
    later = datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=2)
    again = aiotls.TLSConnection(cctx, server_hostname="localhost", session=client.session)
    server = aiotls.TLSConnection(sctx, server_side=True, now=lambda: later)
    pump(again, server)
    assert again.version() == "TLSv1.3", again.error or server.error
    assert not server.session_reused


def test_num_tickets_zero_disables_resumption(pki: PKI) -> None:
    sctx = pki.server_context()
    sctx.num_tickets = 0
    client, _ = connect(pki.client_context(), sctx)
    assert client.session is not None
    assert not client.session.has_ticket


def test_session_misuse(pki: PKI) -> None:
    client, _ = connect(pki.client_context(), pki.server_context())
    session = client.session
    assert session is not None
    with pytest.raises(aiotls.TLSUsageError, match="made with 'localhost'"):
        aiotls.TLSConnection(pki.client_context(), server_hostname="example.test",
                             session=session)
    with pytest.raises(aiotls.TLSUsageError):
        aiotls.TLSConnection(pki.server_context(), server_side=True, session=session)


def test_client_certificate_is_reverified_on_resumption(pki: PKI) -> None:
    """A session made with a client certificate resumes only while that certificate
    still verifies (aiotls re-checks it before issuing anything)."""
    sctx = pki.server_context()
    sctx.verify_mode = ssl.CERT_REQUIRED
    sctx.load_verify_locations(cafile=pki.ca_file)
    sctx.session_ticket_lifetime = 7 * 24 * 3600  # the most RFC 8446 4.6.1 allows
    now = datetime.datetime.now(datetime.UTC)
    short_lived = pki.ca.issue("client.example.test", client=True, server=False,
                               not_after=now + datetime.timedelta(days=1))
    cctx = pki.client_context()
    cctx.load_cert_chain(*short_lived.write(pki.directory, name="short-lived-client"))
    client, server = connect(cctx, sctx)
    assert server.getpeercert() is not None
    # the client certificate expires (as seen by the server's clock) before resumption,
    # while the ticket is still valid
    later = now + datetime.timedelta(days=2)
    again = aiotls.TLSConnection(cctx, server_hostname="localhost", session=client.session)
    server2 = aiotls.TLSConnection(sctx, server_side=True, now=lambda: later)
    pump(again, server2)
    assert isinstance(server2.error, aiotls.CertificateError)
    assert server2.error.code == "certificate-expired"


def test_openssl_client_resumes_with_aiotls_server(pki: PKI) -> None:
    sctx = pki.server_context()
    stdlib_ctx = pki.stdlib_client_context()
    first = StdlibPeer(stdlib_ctx, server_side=False, server_hostname="localhost")
    server = aiotls.TLSConnection(sctx, server_side=True)
    run(server, first)
    server.send_data(b"x")  # tickets travel with the first records
    first.incoming.write(server.data_to_send())
    first.step()
    session = first.obj.session
    assert session is not None and session.has_ticket
    second = StdlibPeer(stdlib_ctx, server_side=False, server_hostname="localhost")
    second.obj = stdlib_ctx.wrap_bio(second.incoming, second.outgoing, server_side=False,
                                     server_hostname="localhost", session=session)
    server2 = aiotls.TLSConnection(sctx, server_side=True)
    run(server2, second)
    assert second.obj.session_reused
    assert server2.session_reused


#: The random of a HelloRetryRequest (RFC 8446 4.1.3).
HRR_RANDOM = bytes.fromhex("cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c")


def test_resumption_through_a_hello_retry_request(pki: PKI) -> None:
    """A server that wants a group the client sent no key share for answers with a
    HelloRetryRequest, full handshake and resumption alike: the second ClientHello gets new
    PSK binders (over both hellos), and the session still resumes."""
    cctx = pki.client_context()
    assert cctx.get_groups()[-1] == "secp384r1"  # offered, but no key share for it
    sctx = pki.server_context()
    sctx.set_groups(["secp384r1"])
    session = None
    for resuming in (False, True):
        client = aiotls.TLSConnection(cctx, server_hostname="localhost", session=session)
        server = aiotls.TLSConnection(sctx, server_side=True)
        server.receive_data(client.data_to_send())
        answer = server.data_to_send()
        assert HRR_RANDOM in answer
        client.receive_data(answer)
        pump(client, server)
        server.send_data(b"x")  # (the tickets come with it)
        pump(client, server)
        assert client.handshake_complete and server.handshake_complete, client.error
        assert client.session_reused == server.session_reused == resuming
        assert server.group == "secp384r1"
        session = client.session


def test_resumption_through_an_openssl_hello_retry_request(pki: PKI) -> None:
    sctx = pki.stdlib_server_context()
    sctx.set_ecdh_curve("secp384r1")  # (only this group: a HelloRetryRequest)
    cctx = pki.client_context()
    session = _session_from_openssl(cctx, sctx)
    again = aiotls.TLSConnection(cctx, server_hostname="localhost", session=session)
    second = StdlibPeer(sctx, server_side=True)
    run(again, second)
    assert again.session_reused, again.error
    assert second.obj.session_reused
    assert again.group == "secp384r1"


def _openssl_client_session(stdlib_ctx: ssl.SSLContext, sctx: aiotls.TLSContext,
                            session: ssl.SSLSession | None = None,
                            ) -> tuple[StdlibPeer, aiotls.TLSConnection]:
    peer = StdlibPeer(stdlib_ctx, server_side=False, server_hostname="localhost")
    if session is not None:
        peer.obj = stdlib_ctx.wrap_bio(peer.incoming, peer.outgoing, server_side=False,
                                       server_hostname="localhost", session=session)
    server = aiotls.TLSConnection(sctx, server_side=True)
    run(server, peer)
    server.send_data(b"x")  # (TLS 1.3 tickets travel with the first records)
    peer.incoming.write(server.data_to_send())
    peer.step()
    return peer, server


@pytest.mark.parametrize("version", VERSIONS)
def test_server_issues_a_new_ticket_when_it_rejects_one(pki: PKI, version: str) -> None:
    """An OpenSSL client presenting a ticket an aiotls server cannot use (restarted with
    new ticket keys) gets a full handshake and a new ticket, and resumes with that one
    next time (RFC 5077 3.3; tlslite-ng alone issued TLS 1.2 tickets only to clients
    presenting none)."""
    stdlib_ctx = pki.stdlib_client_context()
    stdlib_ctx.maximum_version = VERSIONS[version]
    first, _ = _openssl_client_session(stdlib_ctx, pki.server_context())
    old = first.obj.session
    assert old is not None and old.has_ticket
    restarted = pki.server_context()  # other ticket keys
    second, server2 = _openssl_client_session(stdlib_ctx, restarted, old)
    assert not second.obj.session_reused and not server2.session_reused
    new = second.obj.session
    assert new is not None and new.has_ticket and new.id != old.id
    third, server3 = _openssl_client_session(stdlib_ctx, restarted, new)
    assert third.obj.session_reused and server3.session_reused
    assert third.obj.version() == version


def _session_from_openssl(cctx: aiotls.TLSContext, sctx: ssl.SSLContext) -> aiotls.TLSSession:
    """A session (with its ticket) from a first connection to an OpenSSL server."""
    first = StdlibPeer(sctx, server_side=True)
    client = aiotls.TLSConnection(cctx, server_hostname="localhost")
    run(client, first)
    first.obj.write(b"x")  # TLS 1.3 tickets come with the first data
    client.receive_data(first.outgoing.read())
    session = client.session
    assert session is not None and session.has_ticket
    return session


def test_aiotls_client_resumes_with_openssl_server(pki: PKI) -> None:
    sctx = pki.stdlib_server_context()
    cctx = pki.client_context()
    session = _session_from_openssl(cctx, sctx)
    second = StdlibPeer(sctx, server_side=True)
    again = aiotls.TLSConnection(cctx, server_hostname="localhost", session=session)
    run(again, second)
    assert again.session_reused, again.error
    assert second.obj.session_reused


@pytest.mark.parametrize("version", VERSIONS)
def test_rejected_ticket_falls_back_to_a_full_handshake(pki: PKI, version: str) -> None:
    """A server that cannot use the ticket (restarted with new ticket keys) gets a full
    handshake.  (tlslite's client took any TLS 1.2 ticket as accepted and failed with
    unexpected_message.)"""
    cctx = pki.client_context()
    cctx.maximum_version = VERSIONS[version]
    first, _ = connect(cctx, pki.server_context())
    session = first.session
    assert session is not None and session.has_ticket
    again, server = connect(cctx, pki.server_context(), session)  # other ticket keys
    assert again.handshake_complete and server.handshake_complete, again.error or server.error
    assert not again.session_reused and not server.session_reused
    assert again.version() == version
    # the server issued a new ticket in that full handshake (RFC 5077 3.3; tlslite-ng
    # alone issued TLS 1.2 tickets only to clients presenting none): the next one resumes
    third, server3 = connect(cctx, server.context, again.session)
    assert third.handshake_complete and server3.handshake_complete, third.error
    assert third.session_reused and server3.session_reused


@pytest.mark.parametrize("version", VERSIONS)
def test_openssl_server_restart_gets_a_full_handshake(pki: PKI, version: str) -> None:
    cctx = pki.client_context()
    cctx.maximum_version = VERSIONS[version]
    session = _session_from_openssl(cctx, pki.stdlib_server_context())
    restarted = StdlibPeer(pki.stdlib_server_context(), server_side=True)  # new ticket keys
    again = aiotls.TLSConnection(cctx, server_hostname="localhost", session=session)
    run(again, restarted)
    assert again.handshake_complete, again.error
    assert restarted.error is None and restarted.handshake_done
    assert not again.session_reused and not restarted.obj.session_reused


def test_tls12_ticket_resumption_with_openssl_server(pki: PKI) -> None:
    """The session ID aiotls sends with a TLS 1.2 ticket is echoed by OpenSSL on resumption."""
    sctx = pki.stdlib_server_context()
    sctx.maximum_version = ssl.TLSVersion.TLSv1_2
    cctx = pki.client_context()
    session = _session_from_openssl(cctx, sctx)
    assert session.version == "TLSv1.2"
    second = StdlibPeer(sctx, server_side=True)
    again = aiotls.TLSConnection(cctx, server_hostname="localhost", session=session)
    run(again, second)
    assert again.session_reused and second.obj.session_reused, again.error


def test_one_ticket_after_a_resumption(pki: PKI) -> None:
    """As OpenSSL: num_tickets tickets after a full TLS 1.3 handshake, one after a resumption
    (it replaces the one just used)."""
    cctx, sctx = pki.client_context(), pki.server_context()
    sctx.num_tickets = 3
    first, _ = connect(cctx, sctx)
    assert len(first.session._state.tickets) == 3
    again, server = connect(cctx, sctx, first.session)
    assert again.session_reused and server.session_reused
    assert len(again.session._state.tickets) == 1
    third, _ = connect(cctx, sctx, again.session)
    assert third.session_reused


# --- a TLS 1.3 ticket kept straight from aiotls's record layer --------------------------------


def _nst(lifetime: int = 7200, age_add: int = 12345, nonce: bytes = b"\x00\x01",
         ticket: bytes = b"T" * 40) -> bytes:
    from tlslite.messages import NewSessionTicket

    return bytes(NewSessionTicket().create(lifetime, age_add, bytearray(nonce),
                                           bytearray(ticket), []).write())


def _engine_of(conn: aiotls.TLSConnection) -> Any:
    return conn._engine


@pytest.mark.parametrize("pha", [True, False], ids=["transcript-kept", "transcript-spent"])
def test_ticket_taken_from_the_record_layer_equals_tlslites(pki: PKI, pha: bool) -> None:
    """The kept ticket is what tlslite's readAsync keeps: tlslite's parse of the message,
    with a receipt time, appended to the tickets; the message joins the transcript where
    one is still kept (a client with a certificate offers post-handshake authentication,
    which reads it); otherwise the transcript was let go when the handshake ended."""
    import time

    from tlslite.messages import NewSessionTicket
    from tlslite.utils.codec import Parser

    cctx = pki.client_context()
    cctx.maximum_version = VERSIONS["TLSv1.3"]
    if pha:
        cctx.load_cert_chain(pki.client[1], pki.client[2])
    client, _ = connect(cctx, pki.server_context())
    engine = _engine_of(client)
    before = len(engine.kept_tickets())
    transcript = engine.transcript()
    message = _nst()
    start = time.time()
    assert engine.take_ticket(memoryview(message))
    kept = engine.kept_tickets()[-1]
    assert len(engine.kept_tickets()) == before + 1 and start <= kept.time <= time.time()
    expected = NewSessionTicket().parse(Parser(bytearray(message[1:])))
    assert {k: v for k, v in vars(kept).items() if k != "time"} == \
        {k: v for k, v in vars(expected).items() if k != "time"}
    assert engine.transcript() == (transcript + message if pha else None)
    # two in one record (aiotls and OpenSSL servers send two after a full handshake)
    pair = _nst(nonce=b"\x02") + _nst(nonce=b"\x03", ticket=b"U" * 70)
    assert engine.take_ticket(pair)
    assert [bytes(t.ticket_nonce) for t in engine.kept_tickets()[-2:]] == [b"\x02", b"\x03"]
    assert engine.transcript() == (transcript + message + pair if pha else None)


@pytest.mark.parametrize("message", [
    _nst()[:-1],                                   # shorter than its length says
    _nst() + b"\x00",                              # longer
    b"\x18\x00\x00\x01\x01",                       # a KeyUpdate
    _nst()[:4] + b"\xff" * (len(_nst()) - 4),      # a ticket tlslite's parser refuses
    _nst() + b"\x18\x00\x00\x01\x01",                # a ticket, then a KeyUpdate
    _nst() + _nst()[:-3],                          # a ticket, then a fragment of one
    b"",                                           # nothing
    b"\x04\x00",                                   # a fragment of a header
])
def test_anything_else_is_left_to_tlslite(pki: PKI, message: bytes) -> None:
    cctx = pki.client_context()
    cctx.maximum_version = VERSIONS["TLSv1.3"]
    client, server = connect(cctx, pki.server_context())
    for conn in (client, server):
        engine = _engine_of(conn)
        tickets, transcript = engine.kept_tickets(), engine.transcript()
        assert not engine.take_ticket(message)
        assert engine.kept_tickets() == tickets
        assert engine.transcript() == transcript
    assert not _engine_of(server).take_ticket(_nst())  # a server takes no tickets


def test_tls12_connection_takes_no_ticket_this_way(pki: PKI) -> None:
    cctx = pki.client_context()
    cctx.maximum_version = VERSIONS["TLSv1.2"]
    client, _ = connect(cctx, pki.server_context())
    assert not _engine_of(client).take_ticket(_nst())


def test_real_tickets_take_the_short_way_and_resume(pki: PKI,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The server's tickets arrive through take_ticket (not tlslite's read path), and the
    session resumes; with the short way off, tlslite's path keeps them just the same."""
    from aiotls._engine import Engine

    taken: list[bool] = []
    original = Engine.take_ticket

    def spy(self: Any, message: Any) -> bool:
        taken.append(original(self, message))
        return taken[-1]

    monkeypatch.setattr(Engine, "take_ticket", spy)
    cctx = pki.client_context()
    cctx.maximum_version = VERSIONS["TLSv1.3"]
    sctx = pki.server_context()
    client, _ = connect(cctx, sctx)
    assert taken and all(taken)
    again, _ = connect(cctx, sctx, client.session)
    assert again.session_reused
    monkeypatch.setattr(Engine, "take_ticket", lambda self, message: False)
    slow, _ = connect(cctx, sctx)
    assert slow.session is not None and slow.session.has_ticket
    assert connect(cctx, sctx, slow.session)[0].session_reused


def test_the_client_ages_tickets_by_the_connections_clock(pki: PKI) -> None:
    """The engine reads no clock of its own: a TLS 1.3 client whose clock (``now``) says the
    ticket is a month old does not offer it (RFC 8446 4.6.1: seven days at most), although
    the machine's clock, and the server's, say it is fresh."""
    cctx, sctx = pki.client_context(), pki.server_context()
    client, _ = connect(cctx, sctx)
    session = client.session
    assert session is not None and session.has_ticket

    def month_later() -> datetime.datetime:
        return datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=30)

    late = aiotls.TLSConnection(cctx, server_hostname="localhost", session=session,
                                now=month_later)
    server = aiotls.TLSConnection(sctx, server_side=True)
    pump(late, server)
    assert late.handshake_complete and not late.session_reused and not server.session_reused
    again, server2 = connect(cctx, sctx, session)  # the machine's clock: still fresh
    assert again.session_reused and server2.session_reused
