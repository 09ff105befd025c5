"""Versions a context offers and accepts, bounds on what a peer can make a connection keep,
and the advice attached to alerts.

Peers: aiotls itself, tlslite-ng's own TLSConnection driven in memory (pinned to old
versions, or fed a hand-edited ClientHello), and ``openssl s_server`` over loopback
(bounded waits; the process is ended by the context manager that started it).
"""

from __future__ import annotations

import ssl
from typing import Any

import pytest
from tlslite import HandshakeSettings
from tlslite import errors as tl_errors
from tlslite.messages import Alert, ClientHello
from tlslite.utils.codec import Parser

import aiotls
from aiotls import errors
from aiotls._engine import client13, plainread
from aiotls.errors import AlertDescription
from tests.helpers import PKI, RecordForger, engine_record_layer, handshake, pump
from tests.sockloop import OpenSSLProcess, SocketTLS, find_openssl, free_port
from tests.tlslite_peer import MemorySocket, RawTLS, TlslitePeer, exchange, tlslite_settings

TIMEOUT = 10.0
V = ssl.TLSVersion


# --- tlslite-ng as an in-memory peer -------------------------------------------------------------


def pinned(version: tuple[int, int], **attrs: Any) -> HandshakeSettings:
    """tlslite settings that speak exactly one protocol version."""
    return tlslite_settings(min_version=version, max_version=version, versions=[version],
                            **attrs)


def parse_client_hello(record: bytes) -> ClientHello:
    return ClientHello().parse(Parser(bytearray(record[6:])))  # record header + type


def client_hello_record(hello: ClientHello) -> bytes:
    body = bytes(hello.write())
    return bytes((22, 3, 1)) + len(body).to_bytes(2, "big") + body


def without_supported_versions(data: bytes) -> bytes:
    """The client's first flight as a TLS 1.1-only server reads it: a legacy server does
    not know supported_versions, so this drops it from the ClientHello."""
    if data[:1] != b"\x16" or data[5:6] != b"\x01":
        return data
    hello = parse_client_hello(data)
    hello.extensions = [e for e in hello.extensions if e.extType != 43]
    return client_hello_record(hello)


# --- 1. versions: offered exactly as configured, refused below the minimum ---------------------


@pytest.mark.parametrize(("minimum", "maximum", "listed", "legacy"), [
    (V.TLSv1_3, V.TLSv1_3, [(3, 4)], (3, 3)),
    (V.TLSv1_2, V.TLSv1_3, [(3, 4), (3, 3)], (3, 3)),
    (V.TLSv1_2, V.TLSv1_2, None, (3, 3)),
])
def test_client_hello_offers_exactly_the_configured_versions(
        pki: PKI, minimum: ssl.TLSVersion, maximum: ssl.TLSVersion,
        listed: list[tuple[int, int]] | None, legacy: tuple[int, int]) -> None:
    """RFC 8446 4.2.1/4.1.2: supported_versions lists what the client is willing to
    negotiate, legacy_version is TLS 1.2 (0x0303) when TLS 1.2 or 1.3 is offered; the
    reported case listed TLS 1.3, 1.2, 1.1 and 1.0 even with minimum = maximum = TLS 1.3."""
    ctx = pki.client_context()
    ctx.minimum_version, ctx.maximum_version = minimum, maximum
    hello = parse_client_hello(aiotls.TLSConnection(ctx, server_hostname="localhost")
                               .data_to_send())
    ext = hello.getExtension(43)
    assert (list(ext.versions) if ext is not None else None) == listed
    assert tuple(hello.client_version) == legacy


def test_client_refuses_tls11_server(pki: PKI) -> None:
    """A TLS 1.1-only server (tlslite pinned to 1.1, reading the ClientHello as a legacy
    server does) answers TLS 1.1: the client, minimum TLS 1.2 by default, refuses it."""
    server = TlslitePeer.server(pinned((3, 2)), pki.server("rsa2048"),
                                edit_in=without_supported_versions)
    ctx = pki.client_context()
    ctx.set_ciphers("DEFAULT:ECDHE-RSA-AES128-SHA")  # a suite TLS 1.1 can use
    client = aiotls.TLSConnection(ctx, server_hostname="localhost")
    exchange(server, client)
    err = client.error
    assert isinstance(err, aiotls.PeerIncompatible), err
    assert err.alert == AlertDescription.protocol_version
    assert "TLS 1.1" in err.what or "TLSv1.1" in err.what, err.what
    assert "minimum_version" in err.hint, err.hint
    assert server.error is not None  # it got the alert


def test_client_pinned_to_tls13_refuses_tls12_server(pki: PKI) -> None:
    """A TLS 1.2 server (one that ignores supported_versions) answers TLS 1.2 to a client
    allowing TLS 1.3 only: the client refuses it and says which side to change."""
    server = TlslitePeer.server(pinned((3, 3)), pki.server("ecdsa-p256"),
                                edit_in=without_supported_versions)
    ctx = pki.client_context()
    ctx.minimum_version = V.TLSv1_3
    client = aiotls.TLSConnection(ctx, server_hostname="localhost")
    exchange(server, client)
    err = client.error
    assert isinstance(err, aiotls.PeerIncompatible), err
    assert err.alert == AlertDescription.protocol_version
    assert "the server chose TLSv1.2" in err.what and "TLSv1.3" in err.what, err.what
    assert "server" in err.hint and "minimum_version" in err.hint, err.hint


def _strip_tls13(data: bytes) -> bytes:
    """A man in the middle removing TLS 1.3 from the client's supported_versions."""
    if data[:1] != b"\x16" or data[5:6] != b"\x01":
        return data
    hello = parse_client_hello(data)
    hello.getExtension(43).versions = [(3, 3)]
    return client_hello_record(hello)


def test_client_detects_downgrade_sentinel(pki: PKI) -> None:
    """RFC 8446 4.1.3: a TLS 1.3-capable server forced down to TLS 1.2 (here by a MITM
    editing supported_versions) says so in its random; the client aborts with
    illegal_parameter and names the downgrade."""
    server = TlslitePeer.server(tlslite_settings(), pki.server("ecdsa-p256"),
                                edit_in=_strip_tls13)
    client = aiotls.TLSConnection(pki.client_context(), server_hostname="localhost")
    exchange(server, client)
    err = client.error
    assert isinstance(err, aiotls.PeerMisbehaved), err
    assert err.alert == AlertDescription.illegal_parameter
    assert "downgrade" in err.what and "TLSv1.2" in err.what, err.what


def test_server_refuses_tls11_client(pki: PKI) -> None:
    """A client speaking TLS 1.1 at most: a default server (TLS 1.2 minimum) refuses it
    with protocol_version and says the client is the side to upgrade."""
    client = TlslitePeer.client(pinned((3, 2)))
    sctx = pki.server_context("rsa2048")
    sctx.set_ciphers("DEFAULT:ECDHE-RSA-AES128-SHA")
    server = aiotls.TLSConnection(sctx, server_side=True)
    exchange(client, server)
    err = server.error
    assert isinstance(err, aiotls.PeerIncompatible), err
    assert err.alert == AlertDescription.protocol_version
    assert "the client offered only" in err.what and "TLSv1.1" in err.what, err.what
    assert "client" in err.hint and "minimum_version" in err.hint, err.hint
    assert client.error is not None  # the alert reached it


def test_server_ignores_versions_below_minimum_in_supported_versions(pki: PKI) -> None:
    """A ClientHello with legacy_version TLS 1.2 and supported_versions = [TLS 1.1]: a
    server whose minimum is TLS 1.2 must refuse it (it negotiated TLS 1.1, picking from
    tlslite's default list, when a suite TLS 1.1 can use was enabled)."""
    raw = MemorySocket()
    gen = RawTLS(raw).handshakeClientCert(settings=tlslite_settings(), serverName="localhost",
                                          async_=True)
    assert next(gen) == 0  # the ClientHello is out; it waits for the ServerHello
    hello = parse_client_hello(bytes(raw.outbox))
    hello.getExtension(43).versions = [(3, 2)]
    sctx = pki.server_context("rsa2048")
    sctx.set_ciphers("DEFAULT:ECDHE-RSA-AES128-SHA")
    server = aiotls.TLSConnection(sctx, server_side=True)
    server.receive_data(client_hello_record(hello))
    reply = server.data_to_send()
    assert reply[:1] == b"\x15" and reply[-1] == AlertDescription.protocol_version, reply[:16]
    err = server.error
    assert isinstance(err, aiotls.PeerIncompatible), err
    assert err.alert == AlertDescription.protocol_version
    assert "the client offered only" in err.what, err.what


@pytest.mark.interop
@pytest.mark.timeout(30)
def test_client_and_openssl_tls11_server(pki: PKI) -> None:
    """A real TLS 1.1-only server (openssl s_server -tls1_1): no version in common with
    a default client, and the error says so, naming the server as the side to change."""
    openssl_bin = find_openssl()
    if openssl_bin is None:
        pytest.fail("openssl is required for this test")
    certfile, keyfile = pki.server("rsa2048")
    port = free_port()
    argv = [openssl_bin, "s_server", "-accept", f"127.0.0.1:{port}", "-cert", certfile,
            "-key", keyfile, "-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0", "-naccept", "1"]
    ctx = pki.client_context()
    ctx.set_ciphers("DEFAULT:ECDHE-RSA-AES128-SHA")
    with OpenSSLProcess(argv, stdin=b"") as server:  # (s_server quits at end of stdin)
        server.wait_for_output("ACCEPT", TIMEOUT)
        with SocketTLS.connect(ctx, ("127.0.0.1", port), server_hostname="localhost",
                               timeout=TIMEOUT) as tls:
            with pytest.raises(AssertionError):
                tls.handshake()
            err = tls.conn.error
        server.wait(TIMEOUT)
    # The client offers TLS 1.3 and 1.2 only (on main it also listed 1.1, and refused the
    # server's TLS 1.1 itself); the server finds nothing in common and says so.
    assert isinstance(err, aiotls.AlertReceived), err
    assert err.alert == AlertDescription.protocol_version
    assert "minimum_version" in err.hint, err.hint


# --- 2. what a peer can make a connection keep --------------------------------------------------

KEPT_TICKETS = 9  # (TLSSession's documented bound: one to offer, 8 to carry over)


def _tickets(session: aiotls.TLSSession | None) -> list[Any]:
    assert session is not None
    return list(session._state.tickets)  # type: ignore[attr-defined]


def test_client_keeps_the_newest_tickets_of_a_real_server(pki: PKI) -> None:
    """A server sending 10,000 NewSessionTickets after one handshake: the client keeps
    the newest 9 (on main it kept all), and resumes with them."""
    sctx = pki.server_context()
    sctx.num_tickets = 10_000
    client, server = handshake(pki.client_context(), sctx)
    server.send_data(b"x")  # (the tickets travel with the first records)
    pump(client, server, rounds=200)
    tickets = _tickets(client.session)
    assert len(tickets) == KEPT_TICKETS
    times = [t.time for t in tickets]
    assert times == sorted(times)
    again = aiotls.TLSConnection(pki.client_context(), server_hostname="localhost",
                                 session=client.session)
    sctx.num_tickets = 1
    resumed_server = aiotls.TLSConnection(sctx, server_side=True)
    pump(again, resumed_server)
    assert again.session_reused and resumed_server.session_reused


def _new_session_ticket(n: int) -> bytes:
    """A NewSessionTicket (RFC 8446 4.6.1) whose nonce and ticket carry ``n``."""
    nonce = n.to_bytes(4, "big")
    ticket = b"forged-ticket-" + nonce
    body = (b"\x00\x00\x1c\x20" + b"\x01\x02\x03\x04" + bytes((len(nonce),)) + nonce
            + len(ticket).to_bytes(2, "big") + ticket + b"\x00\x00")
    return b"\x04" + len(body).to_bytes(3, "big") + body


@pytest.mark.parametrize("fragmented", [False, True], ids=["record-layer", "engine"])
def test_client_keeps_at_most_9_of_10000_forged_tickets(pki: PKI, fragmented: bool) -> None:
    """10,000 NewSessionTickets forged in the server's name, each in its own record (taken
    by aiotls's record layer) or split over two records (reassembled and taken by the
    engine, tlslite's path): the client keeps the newest 9, in order."""
    client, server = handshake(pki.client_context(), pki.server_context())
    server.send_data(b"x")
    pump(client, server)
    assert client.version() == "TLSv1.3"
    forger = RecordForger(client)
    count = 10_000
    records = []
    for n in range(count):
        message = _new_session_ticket(n)
        if fragmented:
            records += [forger.seal(22, message[:5]), forger.seal(22, message[5:])]
        else:
            records.append(forger.seal(22, message))
        if len(records) >= 500:
            client.receive_data(b"".join(records))
            records.clear()
    if records:
        client.receive_data(b"".join(records))
    assert client.error is None
    tickets = _tickets(client.session)
    assert [int.from_bytes(bytes(t.ticket_nonce), "big") for t in tickets] == \
        list(range(count - KEPT_TICKETS, count))
    forger_out = RecordForger(client, sending=True)  # the connection still works
    client.send_data(b"ping")
    kind, data = forger_out.unseal(client.data_to_send())
    assert (kind, data) == (23, b"ping")


@pytest.mark.parametrize("kind", [4, 24, 13, 99], ids=["ticket", "key_update",
                                                      "certificate_request", "unknown"])
def test_oversized_post_handshake_message_is_refused_at_its_first_fragment(
        pki: PKI, kind: int) -> None:
    """A handshake message header announcing 16 MiB after the handshake: the client aborts
    with illegal_parameter at once, instead of holding up to 16 MiB of fragments (on main
    it kept buffering every 16 KiB record that followed)."""
    client, server = handshake(pki.client_context(), pki.server_context())
    server.send_data(b"x")
    pump(client, server)
    forger = RecordForger(client)
    reader = RecordForger(client, sending=True)
    records = [forger.seal(22, bytes((kind,)) + b"\xff\xff\xff")]
    records += [forger.seal(22, bytes(16384)) for _ in range(64)]  # 1 MiB of "fragments"
    client.receive_data(b"".join(records))
    err = client.error
    assert isinstance(err, aiotls.PeerMisbehaved), err
    assert err.alert == AlertDescription.illegal_parameter
    assert "16777215 bytes" in err.what, err.what
    assert reader.unseal(client.data_to_send()) == \
        (21, bytes((2, AlertDescription.illegal_parameter)))


def test_largest_legal_ticket_is_still_accepted(pki: PKI) -> None:
    """The bound leaves room for every NewSessionTicket the RFC allows: a ticket of
    2^16 - 1 bytes arriving in five fragments is kept."""
    client, server = handshake(pki.client_context(), pki.server_context())
    server.send_data(b"x")
    pump(client, server)
    forger = RecordForger(client)
    ticket = bytes(65535)
    body = b"\x00\x00\x1c\x20" + bytes(4) + b"\x01\x07" + b"\xff\xff" + ticket + b"\x00\x00"
    message = b"\x04" + len(body).to_bytes(3, "big") + body
    for start in range(0, len(message), 16384):
        client.receive_data(forger.seal(22, message[start:start + 16384]))
    assert client.error is None
    assert bytes(_tickets(client.session)[-1].ticket) == ticket


# --- 3. advice that names the side and the fix --------------------------------------------------

#: Every alert aiotls (or tlslite under it) can send, and every standard alert a peer can.
ALERTS = list(AlertDescription)
SIDES = ("the peer", "this side", "this server", "this client", "the server", "the client")


def _advice(err: aiotls.TLSError) -> tuple[str, str]:
    return err.cause, err.hint


@pytest.mark.parametrize("alert", ALERTS, ids=[a.name for a in ALERTS])
def test_alert_advice_names_a_side_and_a_fix(alert: AlertDescription) -> None:
    """Each alert, sent or received, comes with its own cause and fix (not a generic
    fallback), the cause names the side at fault, and sent and received advice differ:
    an alert this side sent blames what the peer sent, one it received blames this side
    or reports the peer's own trouble.  (On main both directions shared one text, e.g.
    insufficient_security sent by aiotls advised enabling stronger suites on this side.)"""
    sent = errors.error_for_sent_alert(alert, "detail")
    received = errors.error_for_received_alert(alert, during_handshake=True)
    fallback_sent = errors.error_for_sent_alert(255, "detail")
    fallback_received = errors.error_for_received_alert(255, during_handshake=True)
    for err, fallback in ((sent, fallback_sent), (received, fallback_received)):
        cause, hint = _advice(err)
        assert cause and hint and (cause, hint) != _advice(fallback), (alert, cause, hint)
        assert any(side in cause for side in SIDES), (alert, cause)
        assert hint != cause
    if alert != AlertDescription.no_application_protocol:  # (the same fix either way)
        assert _advice(sent) != _advice(received), alert


def test_insufficient_security_points_the_right_way() -> None:
    sent = errors.error_for_sent_alert(AlertDescription.insufficient_security, "weak group")
    assert "the peer offered only parameters weaker" in sent.cause
    assert "configure the peer" in sent.hint and "enable stronger" not in sent.hint
    received = errors.error_for_received_alert(AlertDescription.insufficient_security,
                                               during_handshake=True)
    assert "the peer requires stronger parameters than this side offered" in received.cause
    assert "set_ciphers()" in received.hint


class _Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no text")


def _tlslite_exceptions() -> list[BaseException]:
    """Every exception class tlslite-ng defines, made with odd arguments."""
    odd: list[Any] = [None, b"bytes", ValueError("nested"), 12345, {"k": 1}, _Unprintable(),
                      "text"]
    made: list[BaseException] = []
    for cls in vars(tl_errors).values():
        if not (isinstance(cls, type) and issubclass(cls, BaseException)
                and cls.__module__ == tl_errors.__name__):
            continue
        for arg in odd:
            if issubclass(cls, tl_errors.TLSLocalAlert):
                for description in (AlertDescription.illegal_parameter,
                                    AlertDescription.protocol_version, 0, 255):
                    made.append(cls(Alert().create(description, 2), arg))
            elif issubclass(cls, tl_errors.TLSRemoteAlert):
                for description, level in ((40, 2), (255, 2), (255, 1), (0, 2)):
                    made.append(cls(Alert().create(description, level)))
            elif issubclass(cls, tl_errors.TLSValidationError):
                made.append(cls(arg, arg))
            else:
                made.append(cls(arg))
    return made


@pytest.mark.parametrize("side", ["client", "server"])
def test_no_tlslite_exception_shape_crashes_translation(pki: PKI, side: str,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Any tlslite exception, whatever it carries, becomes an aiotls error through
    receive_data (the fault is injected where the engine reads its next record): no
    TypeError or other crash escapes, and the error prints.  (The client reads the
    server's flight, and both the hellos, through tlslite's methods here: aiotls's paths
    read them from the socket itself, see test_client13.py and test_plainread.py.)"""
    monkeypatch.setattr(client13, "ENABLED", False)
    monkeypatch.setattr(plainread, "ENABLED", False)
    made = _tlslite_exceptions()
    assert len(made) > 100
    for exc in made:
        client = aiotls.TLSConnection(pki.client_context(), server_hostname="localhost")
        server = aiotls.TLSConnection(pki.server_context(), server_side=True)
        hello = client.data_to_send()
        victim, data = (server, hello) if side == "server" else (client, None)
        if data is None:
            server.receive_data(hello)
            data = server.data_to_send()

        def fault(*args: Any, _exc: BaseException = exc, **kwargs: Any) -> Any:
            raise _exc
            yield  # (a generator, as the method it replaces)

        engine_record_layer(victim).recvRecord = fault
        victim.receive_data(data)
        err = victim.error
        assert isinstance(err, aiotls.TLSError), (exc, err)
        assert str(err) and err.what, exc
