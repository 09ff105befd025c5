"""Hostile input: what a TLSConnection does with bytes an attacker (or a broken peer) chose.

Three victims, each for TLS 1.2 and TLS 1.3 where it makes a difference:

* a fresh **server** fed bytes in place of a ClientHello;
* a **client** that sent its ClientHello, fed bytes in place of the server's reply;
* an **established** connection (either role) fed hostile records.

Every hostile input must end in exactly one ``ConnectionTerminated`` carrying an aiotls
``TLSError`` subclass (never an exception out of ``receive_data``), with the fatal alert the
peer is owed in ``data_to_send()`` (none after a transport EOF), quickly and without buffering
more than a record's worth of input.  Legal-but-unusual framing (one-byte records, one byte per
``receive_data``) must still complete the handshake.

Some tests here are regression tests for bugs found while writing them; they fail until aiotls
is fixed:

* TLS 1.3: an unprotected alert record injected after the handshake is accepted (a forged
  close_notify ends the connection "cleanly": a truncation attack);
* malformed hellos/certificates reported as an aiotls *internal* error (alert internal_error)
  instead of the peer's fault;
* alerts sent before any record was accepted are framed with record version 0x0000;
* authentic application data in the same receive_data() call as a later framing error (a
  non-TLS header, an oversized length) is dropped instead of delivered.
"""

from __future__ import annotations

import os
import random
import ssl
from collections.abc import Iterable
from dataclasses import dataclass

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import aiotls
from aiotls.errors import (
    AlertDescription,
    AlertReceived,
    CertificateError,
    PeerIncompatible,
    PeerMisbehaved,
    TLSError,
    TruncationError,
)
from aiotls.events import (
    CloseNotifyReceived,
    ConnectionTerminated,
    DataReceived,
    Event,
    HandshakeCompleted,
)
from tests.helpers import VERSIONS, engine_record_layer, pump

State = aiotls.ConnectionState
A = AlertDescription

ALERT, HANDSHAKE, CCS, APPDATA = 21, 22, 20, 23
MAX_RECORD_TLS12 = 2**14 + 2048  # RFC 5246 6.2.3: TLSCiphertext.length limit
MAX_RECORD_TLS13 = 2**14 + 256  # RFC 8446 5.2
#: What a connection may hold between calls: at most one incomplete record (header + body).
MAX_PARTIAL_RECORD = 5 + MAX_RECORD_TLS12
TLS12, TLS13 = "TLSv1.2", "TLSv1.3"
ROLES = ["client", "server"]

pytestmark = pytest.mark.timeout(20)


# --- byte-level helpers ------------------------------------------------------------------------


@dataclass(frozen=True)
class Record:
    ctype: int
    version: bytes
    body: bytes


def frame(ctype: int, body: bytes, version: bytes = b"\x03\x03") -> bytes:
    """One TLS record."""
    return bytes([ctype]) + version + len(body).to_bytes(2, "big") + body


def split_records(data: bytes) -> list[Record]:
    """Parse a byte stream into whole records (and fail on a partial one)."""
    out, pos = [], 0
    while pos < len(data):
        assert len(data) - pos >= 5, f"partial record header in output: {data[pos:].hex()}"
        length = int.from_bytes(data[pos + 3:pos + 5], "big")
        assert len(data) - pos - 5 >= length, "partial record in output"
        out.append(Record(data[pos], data[pos + 1:pos + 3], data[pos + 5:pos + 5 + length]))
        pos += 5 + length
    return out


def hs_msg(msg_type: int, body: bytes) -> bytes:
    """One handshake message (type, 24-bit length, body)."""
    return bytes([msg_type]) + len(body).to_bytes(3, "big") + body


def split_messages(payload: bytes) -> list[tuple[int, bytes]]:
    out, pos = [], 0
    while pos < len(payload):
        length = int.from_bytes(payload[pos + 1:pos + 4], "big")
        out.append((payload[pos], payload[pos + 4:pos + 4 + length]))
        pos += 4 + length
    return out


def handshake_payload(flight: bytes) -> bytes:
    """The concatenated handshake bytes of the plaintext handshake records of a flight."""
    return b"".join(r.body for r in split_records(flight) if r.ctype == HANDSHAKE)


def reframe(flight: bytes, size: int) -> bytes:
    """Re-cut every run of plaintext handshake records into records of ``size`` bytes.

    Legal TLS (RFC 8446 5.1, RFC 5246 6.2.1): handshake messages may be fragmented across
    any number of records.  Other records are passed through untouched.
    """
    out, run, version = [], b"", b"\x03\x03"

    def flush() -> None:
        nonlocal run
        for i in range(0, len(run), size):
            out.append(frame(HANDSHAKE, run[i:i + size], version))
        run = b""

    for rec in split_records(flight):
        if rec.ctype == HANDSHAKE:
            run += rec.body
            version = rec.version
        else:
            flush()
            out.append(frame(rec.ctype, rec.body, rec.version))
    flush()
    return b"".join(out)


def reframe_messages(messages: Iterable[tuple[int, bytes]], version: bytes = b"\x03\x03") -> bytes:
    payload = b"".join(hs_msg(t, b) for t, b in messages)
    return b"".join(frame(HANDSHAKE, payload[i:i + 2**14], version)
                    for i in range(0, len(payload), 2**14))


def der_tlv(data: bytes, pos: int) -> tuple[int, int, int]:
    """(tag, content start, content end) of the DER element at ``pos``."""
    tag = data[pos]
    first = data[pos + 1]
    if first < 0x80:
        return tag, pos + 2, pos + 2 + first
    n = first & 0x7F
    length = int.from_bytes(data[pos + 2:pos + 2 + n], "big")
    return tag, pos + 2 + n, pos + 2 + n + length


# ClientHello: legacy_version(2) random(32) session_id<1> cipher_suites<2> compression<1> exts<2>
def parse_client_hello(body: bytes) -> tuple[bytes, list[tuple[int, bytes]]]:
    pos = 2 + 32
    pos += 1 + body[pos]
    pos += 2 + int.from_bytes(body[pos:pos + 2], "big")
    pos += 1 + body[pos]
    head, end = body[:pos], pos + 2 + int.from_bytes(body[pos:pos + 2], "big")
    pos += 2
    exts = []
    while pos < end:
        ext_type = int.from_bytes(body[pos:pos + 2], "big")
        length = int.from_bytes(body[pos + 2:pos + 4], "big")
        exts.append((ext_type, body[pos + 4:pos + 4 + length]))
        pos += 4 + length
    return head, exts


def build_client_hello(head: bytes, exts: list[tuple[int, bytes]]) -> bytes:
    blob = b"".join(t.to_bytes(2, "big") + len(d).to_bytes(2, "big") + d for t, d in exts)
    return head + len(blob).to_bytes(2, "big") + blob


def chunked(data: bytes, sizes: list[int]) -> list[bytes]:
    """Cut ``data`` into pieces whose sizes cycle through ``sizes``."""
    out, pos, i = [], 0, 0
    while pos < len(data):
        n = sizes[i % len(sizes)]
        out.append(data[pos:pos + n])
        pos += n
        i += 1
    return out


# --- connection helpers ------------------------------------------------------------------------


@dataclass
class Contexts:
    server: aiotls.TLSContext
    client: dict[str, aiotls.TLSContext]  # by maximum version


@pytest.fixture(scope="module")
def ctxs(pki) -> Contexts:
    clients = {}
    for version in VERSIONS:
        ctx = pki.client_context()
        ctx.maximum_version = ssl.TLSVersion[version.replace(".", "_")]
        clients[version] = ctx
    return Contexts(pki.server_context(), clients)


def new_server(ctxs: Contexts) -> aiotls.TLSConnection:
    return aiotls.TLSConnection(ctxs.server, server_side=True)


def new_client(ctxs: Contexts, version: str = TLS13) -> tuple[aiotls.TLSConnection, bytes]:
    """A client and the ClientHello it wants to send."""
    client = aiotls.TLSConnection(ctxs.client[version], server_hostname="localhost")
    hello = client.data_to_send()
    assert hello[:1] == bytes([HANDSHAKE])
    return client, hello


def server_flight(ctxs: Contexts, version: str) -> tuple[aiotls.TLSConnection, aiotls.TLSConnection, bytes]:
    """(client, server, the server's first flight): a real handshake up to the server's reply."""
    client, hello = new_client(ctxs, version)
    server = new_server(ctxs)
    server.receive_data(hello)
    assert server.events() == []
    flight = server.data_to_send()
    assert flight
    return client, server, flight


def established(ctxs: Contexts, version: str, role: str) -> tuple[aiotls.TLSConnection, aiotls.TLSConnection]:
    """(victim, honest peer) of an open connection; the victim plays ``role``."""
    client, hello = new_client(ctxs, version)
    server = new_server(ctxs)
    server.receive_data(hello)
    pump(client, server)
    for conn in (client, server):
        assert conn.state is State.OPEN
        events = conn.events()
        assert len(events) == 1
        assert isinstance(events[0], HandshakeCompleted)
        assert events[0].version == version
    return (client, server) if role == "client" else (server, client)


def is_over(conn: aiotls.TLSConnection) -> bool:
    return conn.state in (State.FAILED, State.CLOSED)


def feed(conn: aiotls.TLSConnection, *chunks: bytes, eof: bool = False) -> list[Event]:
    """Deliver chunks (then EOF) and return the events.  Stops once the connection ended.

    Any exception out of receive_data fails the test: errors must come as events.
    """
    events: list[Event] = []
    for chunk in chunks:
        if is_over(conn):
            break
        conn.receive_data(chunk)
        events += conn.events()
        assert len(conn._inbuf) < MAX_PARTIAL_RECORD
    if eof and not is_over(conn):
        conn.receive_data(b"")
        events += conn.events()
    return events


def assert_terminated(conn: aiotls.TLSConnection, events: list[Event], cls: type[TLSError],
                      alert: AlertDescription | None = None) -> TLSError:
    """Exactly one ConnectionTerminated, last, carrying a ``cls`` error; the connection is poisoned."""
    assert events, f"no events; state {conn.state}"
    terminated = [e for e in events if isinstance(e, ConnectionTerminated)]
    assert len(terminated) == 1, events
    assert events[-1] is terminated[0], events
    err = terminated[0].error
    assert isinstance(err, TLSError), f"{err!r} is not an aiotls TLSError"
    assert isinstance(err, cls), f"expected {cls.__name__}, got {type(err).__name__}: {err}"
    assert isinstance(err, ssl.SSLError)
    if alert is not None:
        assert err.alert == alert, f"expected alert {alert.name}, got {err.alert!r}: {err}"
    assert err.what and str(err)
    assert conn.state is State.FAILED
    assert conn.error is err
    assert conn.next_event() is None
    # Poisoned: feeding more raises the stored error; EOF afterwards is a no-op.
    with pytest.raises(TLSError) as info:
        conn.receive_data(b"\x17\x03\x03\x00\x01\x00")
    assert info.value is err
    conn.receive_data(b"")
    assert conn.events() == []
    return err


def assert_plain_alert(out: bytes, alert: int) -> None:
    """``out`` ends with an unencrypted fatal alert record carrying ``alert``."""
    records = split_records(out)
    assert records, "no alert sent"
    last = records[-1]
    assert last.ctype == ALERT, f"last record has content type {last.ctype}, not alert: {out.hex()}"
    assert last.body == bytes([2, alert]), f"alert record body {last.body.hex()}, wanted fatal {alert}"


def assert_encrypted_alert(out: bytes, version: str, peer: aiotls.TLSConnection, alert: int) -> None:
    """``out`` ends with a protected alert record that the honest ``peer`` reads as ``alert``."""
    records = split_records(out)
    assert records, "no alert sent"
    # TLS 1.2 protects the alert under its real content type; TLS 1.3 hides it in application_data.
    assert records[-1].ctype == (ALERT if version == TLS12 else APPDATA)
    assert len(records[-1].body) > 2  # encrypted, not a bare alert
    events = feed(peer, out)
    err = assert_terminated(peer, events, AlertReceived)
    assert err.alert_number == alert


def assert_alert_owed(conn: aiotls.TLSConnection, err: TLSError, version: str | None = None,
                      peer: aiotls.TLSConnection | None = None) -> None:
    out = conn.data_to_send()
    assert err.alert_number is not None
    if peer is None:
        assert_plain_alert(out, err.alert_number)
    else:
        assert version is not None
        assert_encrypted_alert(out, version, peer, err.alert_number)
    assert conn.data_to_send() == b""


def expect_failure(conn: aiotls.TLSConnection, data: bytes | list[bytes], cls: type[TLSError],
                   alert: AlertDescription | None, *, version: str | None = None,
                   peer: aiotls.TLSConnection | None = None) -> TLSError:
    """Feed ``data``; the connection must fail with ``cls``/``alert`` and send that alert."""
    chunks = data if isinstance(data, list) else [data]
    events = feed(conn, *chunks)
    assert not any(isinstance(e, DataReceived | HandshakeCompleted) for e in events), events
    err = assert_terminated(conn, events, cls, alert)
    assert_alert_owed(conn, err, version, peer)
    return err


def expect_eof_failure(conn: aiotls.TLSConnection, data: bytes) -> TLSError:
    """Feed ``data`` then EOF: a TruncationError, and no alert (the transport is gone)."""
    events = feed(conn, data) if data else []
    assert events == []
    assert conn.state in (State.HANDSHAKING, State.OPEN)
    events = feed(conn, eof=True)
    err = assert_terminated(conn, events, TruncationError)
    assert err.alert is None
    assert isinstance(err, ssl.SSLEOFError)
    assert conn.data_to_send() == b""
    return err


def victim(ctxs: Contexts, role: str, version: str = TLS13) -> aiotls.TLSConnection:
    """A connection in the handshake: a fresh server, or a client that sent its ClientHello."""
    if role == "server":
        return new_server(ctxs)
    client, _ = new_client(ctxs, version)
    return client


def header(ctype: int, length: int, version: bytes = b"\x03\x03") -> bytes:
    return bytes([ctype]) + version + length.to_bytes(2, "big")


# =============================================================================================
# During the handshake: server (fed in place of a ClientHello) and client (after its ClientHello)
# =============================================================================================


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("seed", range(6))
def test_random_bytes_in_handshake(ctxs, role, seed):
    rng = random.Random(seed)
    data = rng.randbytes(rng.choice([1, 7, 64, 1000, 20000]))
    conn = victim(ctxs, role)
    events = feed(conn, data)
    if not events:  # random bytes that happen to open a plausible record: the peer hangs up
        assert conn.state is State.HANDSHAKING
        events = feed(conn, eof=True)
    err = assert_terminated(conn, events, TLSError)
    assert isinstance(err, PeerMisbehaved | TruncationError)
    if isinstance(err, PeerMisbehaved):
        assert_alert_owed(conn, err)


@pytest.mark.parametrize("role", ROLES)
def test_random_bytes_not_tls_is_unexpected_message(ctxs, role):
    conn = victim(ctxs, role)
    err = expect_failure(conn, bytes([0x42]) + random.Random(1).randbytes(300), PeerMisbehaved,
                         A.unexpected_message)
    assert "not a TLS record" in err.what


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("ctype", [HANDSHAKE, ALERT, APPDATA, CCS])
def test_oversized_record_header_in_handshake(ctxs, role, ctype):
    # Only the header: the connection must reject it without waiting for 18 KiB of body.
    conn = victim(ctxs, role)
    err = expect_failure(conn, header(ctype, MAX_RECORD_TLS12 + 1), PeerMisbehaved,
                         A.record_overflow)
    assert err.code == "record-overflow"


@pytest.mark.parametrize("role", ROLES)
def test_max_length_header_is_not_an_error_by_itself(ctxs, role):
    # 2**14 + 2048 is the largest length TLS 1.2 framing allows: wait for the body.
    conn = victim(ctxs, role)
    assert feed(conn, header(HANDSHAKE, MAX_RECORD_TLS12)) == []
    assert conn.state is State.HANDSHAKING
    expect_eof_failure(conn, b"")


@pytest.mark.parametrize("role", ROLES)
def test_length_ffff_header(ctxs, role):
    conn = victim(ctxs, role)
    expect_failure(conn, b"\x16\x03\x01\xff\xff" + b"\x00" * 100, PeerMisbehaved, A.record_overflow)


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("cut", [1, 3, 4, 5, 6, 50, -1])
def test_server_truncated_client_hello_then_eof(ctxs, version, cut):
    _, hello = new_client(ctxs, version)
    conn = new_server(ctxs)
    err = expect_eof_failure(conn, hello[:cut])
    assert err.code == "eof-in-handshake"


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("cut", [1, 4, 5, 6, 80, -1])
def test_client_truncated_server_flight_then_eof(ctxs, version, cut):
    client, _, flight = server_flight(ctxs, version)
    if version == TLS12:
        flight = reframe(flight, 2**14)  # one record: any cut leaves it incomplete
    else:
        flight = split_records(flight)[0]  # the ServerHello record
        flight = frame(flight.ctype, flight.body, flight.version)
    err = expect_eof_failure(client, flight[:cut])
    assert err.code == "eof-in-handshake"


# --- legal but unusual framing: must complete ------------------------------------------------


def finish_and_talk(client: aiotls.TLSConnection, server: aiotls.TLSConnection,
                    version: str, client_events: list[Event] | None = None,
                    server_events: list[Event] | None = None) -> None:
    """Complete the handshake and check data flows both ways."""
    client_events = list(client_events or [])
    server_events = list(server_events or [])
    for _ in range(10):
        out = client.data_to_send()
        if out:
            server_events += feed(server, out)
        back = server.data_to_send()
        if back:
            client_events += feed(client, back)
        if not out and not back:
            break
    for conn, events in ((client, client_events), (server, server_events)):
        assert conn.state is State.OPEN, events
        assert [type(e) for e in events] == [HandshakeCompleted], events
        assert events[0].version == version
    client.send_data(b"ping")
    assert feed(server, client.data_to_send()) == [DataReceived(b"ping")]
    server.send_data(b"pong")
    assert feed(client, server.data_to_send()) == [DataReceived(b"pong")]


@pytest.mark.parametrize("version", VERSIONS)
def test_client_hello_in_one_byte_records(ctxs, version):
    client, hello = new_client(ctxs, version)
    records = reframe(hello, 1)
    assert len(split_records(records)) == len(handshake_payload(hello)) > 100
    server = new_server(ctxs)
    events = feed(server, records)
    assert events == []
    assert server.state is State.HANDSHAKING
    finish_and_talk(client, server, version, server_events=events)


@pytest.mark.parametrize("version", VERSIONS)
def test_client_hello_one_byte_per_call(ctxs, version):
    client, hello = new_client(ctxs, version)
    server = new_server(ctxs)
    events = feed(server, *(hello[i:i + 1] for i in range(len(hello))))
    assert events == []
    assert server.data_to_send()[:1] == bytes([HANDSHAKE])  # it answered the whole hello
    server2 = new_server(ctxs)
    client2, hello2 = new_client(ctxs, version)
    feed(server2, *(hello2[i:i + 1] for i in range(len(hello2))))
    finish_and_talk(client2, server2, version)


@pytest.mark.parametrize("version", VERSIONS)
def test_one_byte_records_delivered_one_byte_per_call(ctxs, version):
    client, hello = new_client(ctxs, version)
    server = new_server(ctxs)
    records = reframe(hello, 1)
    events = feed(server, *(records[i:i + 1] for i in range(len(records))))
    assert events == []
    finish_and_talk(client, server, version)


@pytest.mark.parametrize("version", VERSIONS)
def test_server_flight_in_one_byte_records(ctxs, version):
    # TLS 1.3: only the ServerHello is plaintext; TLS 1.2: the whole first flight is.
    client, server, flight = server_flight(ctxs, version)
    events = feed(client, reframe(flight, 1))
    assert client.state in (State.HANDSHAKING, State.OPEN)
    finish_and_talk(client, server, version, client_events=events)


@pytest.mark.parametrize("version", VERSIONS)
def test_server_flight_one_byte_per_call(ctxs, version):
    client, server, flight = server_flight(ctxs, version)
    events = feed(client, *(flight[i:i + 1] for i in range(len(flight))))
    finish_and_talk(client, server, version, client_events=events)


# --- alerts, CCS and application data where a handshake message belongs ---------------------


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("description", [A.handshake_failure, A.internal_error, A.protocol_version])
def test_fatal_alert_instead_of_handshake(ctxs, role, description):
    conn = victim(ctxs, role)
    events = feed(conn, frame(ALERT, bytes([2, description]), b"\x03\x01"))
    err = assert_terminated(conn, events, AlertReceived, description)
    assert err.alert_number == description
    assert AlertDescription(description).name in err.what
    # An alert is never answered with an alert.
    assert all(r.ctype != ALERT or r.body[0] != 2 for r in split_records(conn.data_to_send()))


@pytest.mark.parametrize("role", ROLES)
def test_unknown_warning_alert_instead_of_handshake(ctxs, role):
    # RFC 8446 6: "Unknown Alert types MUST be treated as error alerts."
    conn = victim(ctxs, role)
    events = feed(conn, frame(ALERT, bytes([1, 254])))
    err = assert_terminated(conn, events, AlertReceived)
    assert err.alert is None
    assert err.alert_number == 254
    assert "254" in err.what
    assert all(r.ctype != ALERT or r.body[0] != 2 for r in split_records(conn.data_to_send()))


@pytest.mark.parametrize("role", ROLES)
def test_half_alert_instead_of_handshake(ctxs, role):
    # One byte of an alert.  RFC 8446 5.1 forbids fragmenting alerts, TLS 1.2 allows it:
    # either reject it at once or wait for the rest; at EOF the connection is truncated.
    conn = victim(ctxs, role)
    events = feed(conn, frame(ALERT, b"\x02"))
    if not events:
        expect_eof_failure(conn, b"")
        return
    err = assert_terminated(conn, events, PeerMisbehaved)
    assert err.alert in (A.decode_error, A.unexpected_message, A.illegal_parameter)
    assert_alert_owed(conn, err)


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("trailer", [b"\x00", b"\x02\x28", b"\xff" * 100])
def test_fatal_alert_with_trailing_bytes(ctxs, role, trailer):
    # The fatal alert is read first and ends the connection; what follows is never parsed.
    conn = victim(ctxs, role)
    events = feed(conn, frame(ALERT, b"\x02\x28" + trailer))
    assert_terminated(conn, events, AlertReceived, A.handshake_failure)


def test_server_change_cipher_spec_before_client_hello(ctxs):
    # RFC 8446 5: a CCS before the first ClientHello is an unexpected record type.
    expect_failure(new_server(ctxs), frame(CCS, b"\x01"), PeerMisbehaved, A.unexpected_message)


@pytest.mark.parametrize("version", VERSIONS)
def test_client_change_cipher_spec_before_server_hello(ctxs, version):
    # After sending a ClientHello, a TLS 1.3 client may drop a CCS; anything else is
    # unexpected_message.  Either way the handshake cannot go on without a ServerHello.
    conn, _ = new_client(ctxs, version)
    events = feed(conn, frame(CCS, b"\x01"))
    if events:
        err = assert_terminated(conn, events, PeerMisbehaved, A.unexpected_message)
        assert_alert_owed(conn, err)
    else:
        expect_eof_failure(conn, b"")


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("body", [b"\x01\x01", b"\x02", b"\x00"])
def test_bad_change_cipher_spec_before_handshake(ctxs, role, body):
    conn = victim(ctxs, role)
    expect_failure(conn, frame(CCS, body), PeerMisbehaved, A.unexpected_message)


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("body", [b"GET / HTTP/1.1\r\n", b"\x00" * 32])
def test_application_data_before_handshake(ctxs, role, body):
    conn = victim(ctxs, role)
    expect_failure(conn, frame(APPDATA, body), PeerMisbehaved, A.unexpected_message)


@pytest.mark.parametrize("role", ROLES)
def test_wrong_handshake_message_first(ctxs, role):
    # A Finished (type 20) where a hello belongs.
    conn = victim(ctxs, role)
    err = expect_failure(conn, frame(HANDSHAKE, hs_msg(20, b"\x00" * 32)), PeerMisbehaved, None)
    assert err.alert in (A.unexpected_message, A.decode_error)


# --- oversized length claims inside the handshake ----------------------------------------------


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("claimed", [2**24 - 1, 2**20, 300_000])
def test_huge_handshake_length_claim_then_eof(ctxs, role, claimed):
    msg_type = 1 if role == "server" else 2  # ClientHello / ServerHello
    conn = victim(ctxs, role)
    start = bytes([msg_type]) + claimed.to_bytes(3, "big") + b"\x03\x03" + b"\x00" * 40
    events = feed(conn, frame(HANDSHAKE, start))
    assert events == []  # a fragment: waiting for the rest is correct...
    assert conn.state is State.HANDSHAKING
    assert buffered(conn) < 4096  # ...but nothing was allocated for the claimed size
    expect_eof_failure(conn, b"")


@pytest.mark.parametrize("role", ROLES)
def test_huge_handshake_length_claim_exhausts_budget(ctxs, role):
    msg_type = 1 if role == "server" else 2
    conn = victim(ctxs, role)
    feed(conn, frame(HANDSHAKE, bytes([msg_type]) + (2**24 - 1).to_bytes(3, "big")))
    filler = frame(HANDSHAKE, b"\x00" * 2**14)
    budget = ctxs.server.max_handshake_size
    events: list[Event] = []
    sent = 0
    while not events:
        assert sent <= budget + len(filler), "handshake budget never enforced"
        events = feed(conn, filler)
        sent += len(filler)
        assert buffered(conn) <= budget + len(filler)
    err = assert_terminated(conn, events, PeerMisbehaved, A.illegal_parameter)
    assert err.code == "handshake-too-large"
    assert_alert_owed(conn, err)


@pytest.mark.parametrize("role", ROLES)
def test_huge_handshake_length_claim_in_one_call(ctxs, role):
    msg_type = 1 if role == "server" else 2
    conn = victim(ctxs, role)
    data = frame(HANDSHAKE, bytes([msg_type]) + (2**24 - 1).to_bytes(3, "big") + b"\x00" * 16380)
    data += frame(HANDSHAKE, b"\x00" * 2**14) * 40  # ~640 KiB in a single receive_data
    events = feed(conn, data)
    err = assert_terminated(conn, events, PeerMisbehaved, A.illegal_parameter)
    assert_alert_owed(conn, err)


# --- floods of empty records ---------------------------------------------------------------


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("ctype", [HANDSHAKE, ALERT, CCS])
def test_zero_length_record_flood_in_handshake(ctxs, role, ctype):
    # RFC 5246 6.2.1 / RFC 8446 5.1: zero-length fragments only for application data.
    conn = victim(ctxs, role)
    expect_failure(conn, frame(ctype, b"") * 10_000, PeerMisbehaved, A.unexpected_message)


@pytest.mark.parametrize("role", ROLES)
def test_zero_length_application_data_flood_in_handshake(ctxs, role):
    conn = victim(ctxs, role)
    expect_failure(conn, frame(APPDATA, b"") * 10_000, PeerMisbehaved, A.unexpected_message)


@pytest.mark.parametrize("role", ROLES)
def test_zero_length_flood_one_record_per_call(ctxs, role):
    conn = victim(ctxs, role)
    chunks = [frame(HANDSHAKE, b"")] * 2_000
    expect_failure(conn, chunks, PeerMisbehaved, A.unexpected_message)


# --- not TLS at all ------------------------------------------------------------------------


@pytest.mark.parametrize("request_line", [
    b"GET / HTTP/1.1\r\n",
    b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n",
    b"POST /api HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
    b"HEAD / HTTP/1.0\r\n\r\n",
])
def test_server_gets_plain_http(ctxs, request_line):
    err = expect_failure(new_server(ctxs), request_line, PeerMisbehaved, A.unexpected_message)
    assert "HTTP" in err.what
    assert err.code == "not-tls-http"


def test_server_gets_plain_http_one_byte_at_a_time(ctxs):
    data = b"GET / HTTP/1.1\r\n"
    conn = new_server(ctxs)
    err = expect_failure(conn, [data[i:i + 1] for i in range(len(data))], PeerMisbehaved,
                         A.unexpected_message)
    assert "HTTP" in err.what


def test_client_gets_plain_http_reply(ctxs):
    conn, _ = new_client(ctxs)
    reply = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"
    err = expect_failure(conn, reply, PeerMisbehaved, A.unexpected_message)
    assert "HTTP" in err.what


def sslv2_client_hello() -> bytes:
    """An SSLv2-format (SSL 2.0 record layer) ClientHello offering TLS 1.0, as old clients sent."""
    specs = bytes.fromhex("00002f" "000035" "00000a" "010080")
    challenge = bytes(range(16))
    body = b"\x01" + b"\x03\x01" + len(specs).to_bytes(2, "big") + b"\x00\x00" + \
        len(challenge).to_bytes(2, "big") + specs + challenge
    return (0x8000 | len(body)).to_bytes(2, "big") + body


def test_server_gets_sslv2_hello(ctxs):
    err = expect_failure(new_server(ctxs), sslv2_client_hello(), PeerMisbehaved, A.protocol_version)
    assert "SSLv2" in err.what


@pytest.mark.parametrize("record_version", [b"\x02\x00", b"\x00\x00", b"\xfe\xfd", b"\x04\x00"])
def test_non_tls_record_version(ctxs, record_version):
    _, hello = new_client(ctxs)
    bad = hello[:1] + record_version + hello[3:]
    expect_failure(new_server(ctxs), bad, PeerMisbehaved, A.unexpected_message)


@pytest.mark.parametrize("ctype", [0, 19, 24, 255])
def test_unknown_content_type(ctxs, ctype):
    expect_failure(new_server(ctxs), frame(ctype, b"\x01"), PeerMisbehaved, A.unexpected_message)


# --- the alert record itself must be valid TLS -----------------------------------------------


@pytest.mark.parametrize("data", [
    pytest.param(header(HANDSHAKE, MAX_RECORD_TLS12 + 1, b"\x03\x01"), id="record-overflow"),
    pytest.param(frame(24, b"\x01"), id="not-tls"),
])
def test_server_early_alert_has_tls_record_version(ctxs, data):
    """An alert sent before any record was accepted is still a well-formed TLS record.

    A TLS client whose first record the server rejects must be able to read the alert; with
    record version 0x0000 OpenSSL reports "wrong version number" instead of the alert.
    """
    conn = new_server(ctxs)
    events = feed(conn, data)
    err = assert_terminated(conn, events, PeerMisbehaved)
    out = conn.data_to_send()
    record = split_records(out)[-1]
    assert record.ctype == ALERT
    assert record.body == bytes([2, err.alert_number])
    assert record.version in (b"\x03\x01", b"\x03\x03"), \
        f"alert record {out.hex()} has record version {record.version.hex()}, not TLS"


# --- malformed hellos that aiotls must classify as the peer's fault ---------------------------
#
# These reach tlslite-ng code that crashes (IndexError, KeyError, AssertionError, ...) instead of
# rejecting the input; aiotls then reports "internal error in the TLS engine" with alert
# internal_error, blaming itself for the peer's malformed message.


def assert_peer_blamed(conn: aiotls.TLSConnection, events: list[Event],
                       allowed: tuple[type[TLSError], ...]) -> TLSError:
    err = assert_terminated(conn, events, TLSError)
    assert err.code != "internal-error" and err.alert is not A.internal_error, \
        f"hostile input reported as an aiotls bug: {err}"
    assert isinstance(err, allowed), f"{type(err).__name__}: {err}"
    assert_alert_owed(conn, err)
    return err


def mutate_client_hello(ctxs: Contexts, edit) -> tuple[aiotls.TLSConnection, list[Event]]:
    _, hello = new_client(ctxs, TLS13)
    [(msg_type, body)] = split_messages(handshake_payload(hello))
    head, exts = parse_client_hello(body)
    assert build_client_hello(head, exts) == body
    new_body = build_client_hello(head, edit(exts))
    server = new_server(ctxs)
    return server, feed(server, frame(HANDSHAKE, hs_msg(msg_type, new_body), b"\x03\x01"))


def test_client_hello_with_empty_server_name_list(ctxs):
    # server_name extension (0) whose server_name_list is empty (RFC 6066 3: must not be).
    server, events = mutate_client_hello(
        ctxs, lambda exts: [(t, b"\x00\x00" if t == 0 else d) for t, d in exts])
    assert_peer_blamed(server, events, (PeerMisbehaved,))


def test_client_hello_with_only_unknown_server_name_types(ctxs):
    # A server_name list whose one entry has name_type 1 (not host_name): RFC 6066 3 lets
    # servers ignore unknown types, so there is simply no host name (or a decode_error).
    entry = b"\x01" + len(b"localhost").to_bytes(2, "big") + b"localhost"
    sni = len(entry).to_bytes(2, "big") + entry
    server, events = mutate_client_hello(
        ctxs, lambda exts: [(t, sni if t == 0 else d) for t, d in exts])
    if not events:  # accepted without a name: the handshake goes on
        assert server.state is State.HANDSHAKING
        assert split_records(server.data_to_send())[0].ctype == HANDSHAKE
        return
    assert_peer_blamed(server, events, (PeerMisbehaved,))


@pytest.mark.parametrize("ext_type", [0, 43, 51], ids=["server_name", "supported_versions",
                                                         "key_share"])
def test_client_hello_with_duplicate_extension(ctxs, ext_type):
    # RFC 8446 4.2: "There MUST NOT be more than one extension of the same type".
    server, events = mutate_client_hello(
        ctxs, lambda exts: [*exts, *(e for e in exts if e[0] == ext_type)])
    assert_peer_blamed(server, events, (PeerMisbehaved,))


def test_client_hello_with_empty_supported_versions(ctxs):
    server, events = mutate_client_hello(
        ctxs, lambda exts: [(t, b"" if t == 43 else d) for t, d in exts])
    assert_peer_blamed(server, events, (PeerMisbehaved, PeerIncompatible))


def test_client_hello_without_extensions_is_handled(ctxs):
    # Control: a pre-TLS-1.2-style hello without extensions is simply refused (no EMS etc.).
    server, events = mutate_client_hello(ctxs, lambda exts: [])
    assert_peer_blamed(server, events, (PeerMisbehaved, PeerIncompatible))


def mutate_tls12_server_flight(ctxs: Contexts, edit) -> tuple[aiotls.TLSConnection, list[Event]]:
    client, _, flight = server_flight(ctxs, TLS12)
    messages = split_messages(handshake_payload(flight))
    assert [t for t, _ in messages] == [2, 11, 12, 14]  # ServerHello, Certificate, SKE, Done
    return client, feed(client, reframe_messages(edit(messages)))


def edit_message(messages, msg_type, fn):
    return [(t, fn(b) if t == msg_type else b) for t, b in messages]


def edit_leaf_certificate(messages, fn):
    def edit(body: bytes) -> bytes:
        leaf_len = int.from_bytes(body[3:6], "big")
        leaf = body[6:6 + leaf_len]
        new_leaf = fn(leaf)
        assert len(new_leaf) == len(leaf)
        return body[:6] + new_leaf + body[6 + leaf_len:]
    return edit_message(messages, 11, edit)


def test_server_key_exchange_with_explicit_curve(ctxs):
    # ECParameters.curve_type explicit_prime (1) instead of named_curve (3): RFC 8422 5.4.
    client, events = mutate_tls12_server_flight(
        ctxs, lambda msgs: edit_message(msgs, 12, lambda b: b"\x01" + b[1:]))
    assert_peer_blamed(client, events, (PeerMisbehaved, PeerIncompatible))


def test_certificate_with_unknown_signature_algorithm(ctxs):
    def unknown_sigalg(der: bytes) -> bytes:
        _, start, _ = der_tlv(der, 0)          # Certificate SEQUENCE
        _, _, tbs_end = der_tlv(der, start)    # tbsCertificate
        _, alg_start, _ = der_tlv(der, tbs_end)  # signatureAlgorithm SEQUENCE
        tag, _, oid_end = der_tlv(der, alg_start)
        assert tag == 0x06
        return der[:oid_end - 1] + b"\x7f" + der[oid_end:]  # 1.2.840.10045.4.3.127

    client, events = mutate_tls12_server_flight(
        ctxs, lambda msgs: edit_leaf_certificate(msgs, unknown_sigalg))
    assert_peer_blamed(client, events, (CertificateError, PeerMisbehaved))


def test_certificate_with_malformed_issuer_name(ctxs):
    def bad_issuer(der: bytes) -> bytes:
        cert = x509.load_der_x509_certificate(der)
        cn = cert.issuer.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value.encode()
        pos = der.index(cn)  # the issuer comes before the subject
        return der[:pos] + b"\xff" + der[pos + 1:]  # invalid UTF-8 in the UTF8String

    client, events = mutate_tls12_server_flight(
        ctxs, lambda msgs: edit_leaf_certificate(msgs, bad_issuer))
    err = assert_peer_blamed(client, events, (CertificateError, PeerMisbehaved))
    assert err.alert in (A.bad_certificate, A.decode_error, A.unknown_ca)


# =============================================================================================
# Established connections, TLS 1.2 and TLS 1.3, either role
# =============================================================================================


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("seed", range(3))
def test_established_random_bytes(ctxs, version, role, seed):
    conn, peer = established(ctxs, version, role)
    rng = random.Random(seed)
    data = rng.randbytes(rng.choice([10, 300, 5000]))
    events = feed(conn, data)
    if not events:
        events = feed(conn, eof=True)
        assert_terminated(conn, events, TruncationError)
        return
    err = assert_terminated(conn, events, PeerMisbehaved)
    assert not any(isinstance(e, DataReceived) for e in events)
    assert_alert_owed(conn, err, version, peer)


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("version", VERSIONS)
def test_established_not_tls(ctxs, version, role):
    conn, peer = established(ctxs, version, role)
    expect_failure(conn, b"GET / HTTP/1.1\r\n\r\n", PeerMisbehaved, A.unexpected_message,
                   version=version, peer=peer)


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("version", VERSIONS)
def test_established_oversized_record_header(ctxs, version, role):
    conn, peer = established(ctxs, version, role)
    limit = MAX_RECORD_TLS13 if version == TLS13 else MAX_RECORD_TLS12
    expect_failure(conn, header(APPDATA, limit + 1), PeerMisbehaved, A.record_overflow,
                   version=version, peer=peer)


@pytest.mark.parametrize("role", ROLES)
def test_established_tls13_tls12_sized_record_is_overflow(ctxs, role):
    # 2**14 + 257 is fine for TLS 1.2 but too long for TLS 1.3 (RFC 8446 5.2).
    conn, peer = established(ctxs, TLS13, role)
    expect_failure(conn, header(APPDATA, MAX_RECORD_TLS13 + 1), PeerMisbehaved, A.record_overflow,
                   version=TLS13, peer=peer)


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("version", VERSIONS)
def test_established_max_size_garbage_record(ctxs, version, role):
    # A record of exactly the largest legal size, full of garbage: fails authentication.
    conn, peer = established(ctxs, version, role)
    limit = MAX_RECORD_TLS13 if version == TLS13 else MAX_RECORD_TLS12
    assert feed(conn, header(APPDATA, limit)) == []
    err = expect_failure(conn, b"\x00" * limit, PeerMisbehaved, None, version=version, peer=peer)
    # TLS 1.2 may also object first that the plaintext would exceed 2**14 bytes (RFC 5246 6.2.3).
    assert err.alert in ((A.bad_record_mac,) if version == TLS13
                         else (A.bad_record_mac, A.record_overflow))


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("cut", [1, 4, 5, 6, -1])
def test_established_truncated_record_then_eof(ctxs, version, role, cut):
    conn, peer = established(ctxs, version, role)
    peer.send_data(b"x" * 1000)
    record = peer.data_to_send()
    err = expect_eof_failure(conn, record[:cut])
    assert err.code == "truncated-record"


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("version", VERSIONS)
def test_established_eof_without_close_notify(ctxs, version, role):
    conn, _ = established(ctxs, version, role)
    err = expect_eof_failure(conn, b"")
    assert err.code == "truncated"


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("where", ["first-body-byte", "middle", "tag", "header-type"])
def test_established_tampered_ciphertext(ctxs, version, role, where):
    conn, peer = established(ctxs, version, role)
    peer.send_data(b"attack at dawn" * 10)
    record = bytearray(peer.data_to_send())
    assert len(split_records(bytes(record))) == 1
    index = {"first-body-byte": 5, "middle": len(record) // 2, "tag": len(record) - 1,
             "header-type": 0}[where]
    alert = A.bad_record_mac
    if where == "header-type":
        # The type is authenticated (TLS 1.2: in the MAC/AAD; TLS 1.3: the outer type is in the
        # AAD, and a handshake-typed record after the handshake is an unexpected record type).
        record[0] = HANDSHAKE
        if version == TLS13:
            alert = None
    else:
        record[index] ^= 0x01
    err = expect_failure(conn, bytes(record), PeerMisbehaved, alert, version=version, peer=peer)
    assert err.alert in (A.bad_record_mac, A.unexpected_message)


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("version", VERSIONS)
def test_established_tampered_second_record(ctxs, version, role):
    """Data before the forged record is delivered; the forged record's data never is."""
    conn, peer = established(ctxs, version, role)
    peer.send_data(b"genuine")
    first = peer.data_to_send()
    peer.send_data(b"forged!")
    second = bytearray(peer.data_to_send())
    second[-5] ^= 0x80
    events = feed(conn, first + bytes(second))
    assert events[0] == DataReceived(b"genuine")
    err = assert_terminated(conn, events[1:], PeerMisbehaved, A.bad_record_mac)
    assert not any(isinstance(e, DataReceived) and b"forged" in e.data for e in events)
    assert_alert_owed(conn, err, version, peer)


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("version", VERSIONS)
def test_established_replayed_record(ctxs, version, role):
    conn, peer = established(ctxs, version, role)
    peer.send_data(b"pay 100")
    record = peer.data_to_send()
    events = feed(conn, record, record)
    assert events[0] == DataReceived(b"pay 100")
    assert_terminated(conn, events[1:], PeerMisbehaved, A.bad_record_mac)
    assert sum(isinstance(e, DataReceived) for e in events) == 1


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("version", VERSIONS)
def test_established_plaintext_change_cipher_spec(ctxs, version, role):
    conn, peer = established(ctxs, version, role)
    # TLS 1.3: a CCS after the peer's Finished is an unexpected record type (RFC 8446 5).
    # TLS 1.2: the record is decrypted under the current keys and fails authentication.
    alert = A.unexpected_message if version == TLS13 else A.bad_record_mac
    expect_failure(conn, frame(CCS, b"\x01"), PeerMisbehaved, alert, version=version, peer=peer)


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("version", VERSIONS)
def test_established_plaintext_handshake_message(ctxs, version, role):
    # A forged renegotiation request / ClientHello in the clear.
    conn, peer = established(ctxs, version, role)
    err = expect_failure(conn, frame(HANDSHAKE, hs_msg(0, b"")), PeerMisbehaved, None,
                         version=version, peer=peer)
    assert err.alert in (A.bad_record_mac, A.unexpected_message)


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(("version", "when"), [
    (version, when) for version in VERSIONS
    for when in ("first-record", "after-data", "after-key-update")
    if not (version == TLS12 and when == "after-key-update")  # KeyUpdate is TLS 1.3 only
])
@pytest.mark.parametrize("alert", [
    pytest.param(b"\x01\x00", id="close_notify"),
    pytest.param(b"\x02\x28", id="fatal-handshake_failure"),
    pytest.param(b"\x01\x5a", id="user_canceled"),
])
def test_established_forged_plaintext_alert(ctxs, version, role, alert, when):
    """An on-path attacker injects an unprotected alert record after the handshake.

    After the handshake every record is protected (RFC 8446 5.2: TLS 1.3 records carry outer
    type application_data; RFC 5246 6.2.3: TLS 1.2 alerts are encrypted).  A forged
    close_notify accepted as genuine is a truncation attack: the application sees a clean
    end of stream where the peer's data was cut off.
    """
    conn, peer = established(ctxs, version, role)
    if when == "after-data":
        peer.send_data(b"genuine")
        assert feed(conn, peer.data_to_send()) == [DataReceived(b"genuine")]
    elif when == "after-key-update":
        peer.send_data(b"genuine")
        peer.update_keys()  # the peer switches to new keys: sequence numbers restart at 0
        assert feed(conn, peer.data_to_send()) == [DataReceived(b"genuine")]
        assert conn.state is State.OPEN
    events = feed(conn, frame(ALERT, alert))
    assert not any(isinstance(e, CloseNotifyReceived) for e in events), \
        f"forged plaintext alert accepted as the peer's close_notify: {events}"
    err = assert_terminated(conn, events, PeerMisbehaved)
    # TLS 1.3: an unexpected record type (RFC 8446 5); TLS 1.2: fails authentication.
    assert err.alert in (A.unexpected_message, A.bad_record_mac, A.decode_error)
    assert_alert_owed(conn, err, version, peer)


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("version", VERSIONS)
def test_established_zero_length_ciphertext_flood(ctxs, version, role):
    # An AEAD record cannot be empty (no room for the tag).
    conn, peer = established(ctxs, version, role)
    expect_failure(conn, frame(APPDATA, b"") * 10_000, PeerMisbehaved, A.bad_record_mac,
                   version=version, peer=peer)


def empty_records(conn: aiotls.TLSConnection, count: int) -> bytes:
    """``count`` validly protected application-data records with no content, from ``conn``.

    aiotls never sends these (send_data(b"") is a no-op), so they are made with its record
    layer directly: legal TLS (RFC 5246 6.2.1, RFC 8446 5.4), and a classic CPU-burning flood.
    """
    engine = conn._engine
    fast = getattr(engine, "fast", None)
    if fast is not None:  # aiotls's own record layer protects application data
        return b"".join(bytes(fast.seal(b"")) for _ in range(count))
    from tlslite.messages import ApplicationData

    layer = engine_record_layer(conn)
    for _ in range(count):
        for _ in layer.sendRecord(ApplicationData().create(bytearray())):
            pass
    return conn.data_to_send()


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("version", VERSIONS)
def test_established_empty_record_flood_is_harmless(ctxs, version, role):
    conn, peer = established(ctxs, version, role)
    flood = empty_records(peer, 5_000)
    assert len(split_records(flood)) == 5_000
    peer.send_data(b"after the flood")
    events = feed(conn, flood + peer.data_to_send())
    assert events == [DataReceived(b"after the flood")]
    assert conn.state is State.OPEN
    assert len(conn._inbuf) == 0


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("split", [False, True], ids=["one-call", "two-calls"])
def test_established_close_notify_then_garbage(ctxs, version, role, split):
    """RFC 8446 6.1 / RFC 5246 7.2.1: data after close_notify is ignored; the close is clean."""
    conn, peer = established(ctxs, version, role)
    peer.send_data(b"last words")
    peer.close()
    garbage = b"GET / HTTP/1.1\r\n\r\n"
    stream = peer.data_to_send()
    events = feed(conn, stream, garbage) if split else feed(conn, stream + garbage)
    assert [type(e) for e in events] == [DataReceived, CloseNotifyReceived, ConnectionTerminated], \
        events
    assert events[0] == DataReceived(b"last words")
    assert events[-1].error is None
    assert conn.state is State.CLOSED


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("bad", [
    pytest.param(header(APPDATA, 0xFFFF), id="record-overflow"),
    pytest.param(b"GET / HTTP/1.1\r\n\r\n", id="not-tls"),
])
@pytest.mark.parametrize("split", [False, True], ids=["one-call", "two-calls"])
def test_established_authentic_data_before_framing_error_is_delivered(ctxs, version, role, bad,
                                                                      split):
    """What the peer really sent before the bad bytes is delivered, however TCP cut the stream.

    Delivered in two receive_data calls the authentic record yields DataReceived before the
    failure; in one call it must too (the outcome may not depend on segmentation).
    """
    conn, peer = established(ctxs, version, role)
    peer.send_data(b"authentic")
    good = peer.data_to_send()
    events = feed(conn, good, bad) if split else feed(conn, good + bad)
    assert events[:1] == [DataReceived(b"authentic")], events
    err = assert_terminated(conn, events[1:], PeerMisbehaved)
    assert_alert_owed(conn, err, version, peer)


# =============================================================================================
# Property tests
# =============================================================================================


def buffered(conn: aiotls.TLSConnection) -> int:
    """Bytes of peer input held anywhere inside the connection."""
    return len(conn._inbuf) + conn._engine.held_input()


def check_stream(conn: aiotls.TLSConnection, data: bytes, sizes: list[int],
                 may_complete: bool = False) -> None:
    """Deliver ``data`` in pieces and check the invariants after every call and at EOF."""
    events: list[Event] = []
    out = b""
    delivered = 0
    for piece in chunked(data, sizes):
        if is_over(conn):
            with pytest.raises(TLSError):
                conn.receive_data(piece)
            break
        conn.receive_data(piece)  # must never raise while the connection is alive
        delivered += len(piece)
        events += conn.events()
        out += conn.data_to_send()
        assert len(conn._inbuf) < MAX_PARTIAL_RECORD
        assert buffered(conn) <= 20 * 1024 + delivered
    check_events(conn, events, out, may_complete)
    if not is_over(conn):
        conn.receive_data(b"")
        tail = conn.events()
        assert len(tail) == 1
        assert isinstance(tail[0], ConnectionTerminated)
        assert isinstance(tail[0].error, TruncationError)
        assert conn.data_to_send() == b""
    assert buffered(conn) == 0 or conn.state is State.FAILED


def check_events(conn: aiotls.TLSConnection, events: list[Event], out: bytes,
                 may_complete: bool) -> None:
    if conn.state is State.HANDSHAKING:
        assert events == []
        return
    if conn.state is State.OPEN:
        assert may_complete
        assert [type(e) for e in events] == [HandshakeCompleted]
        return
    terminated = [e for e in events if isinstance(e, ConnectionTerminated)]
    assert len(terminated) == 1
    assert events[-1] is terminated[0]
    err = terminated[0].error
    assert isinstance(err, TLSError)
    assert conn.error is err
    assert not any(isinstance(e, DataReceived) for e in events)
    if err.alert_number is not None and not isinstance(err, AlertReceived | TruncationError):
        records = split_records(out)
        assert records, f"no alert sent for {err!r}"
        last = records[-1]
        assert last.ctype in (ALERT, APPDATA)
        if last.ctype == ALERT and len(last.body) == 2:
            assert last.body == bytes([2, err.alert_number])


def tls_record(ctype: int, version: bytes, body: bytes) -> bytes:
    return frame(ctype, body, version)


record_versions = st.sampled_from([b"\x03\x01", b"\x03\x03", b"\x03\x04", b"\x03\x00"])
handshake_bodies = st.one_of(
    st.builds(hs_msg, st.sampled_from([0, 1, 2, 4, 8, 11, 12, 13, 14, 15, 16, 20, 24, 254]),
              st.binary(max_size=300)),
    # A message whose length field disagrees with the data.
    st.builds(lambda t, n, b: bytes([t]) + n.to_bytes(3, "big") + b,
              st.sampled_from([1, 2, 11]), st.integers(0, 2**24 - 1), st.binary(max_size=64)),
)
records = st.one_of(
    st.builds(tls_record, st.sampled_from([ALERT, CCS, APPDATA, HANDSHAKE]), record_versions,
              st.binary(max_size=64)),
    st.builds(tls_record, st.just(HANDSHAKE), record_versions, handshake_bodies),
)
hostile_bytes = st.one_of(
    st.binary(min_size=1, max_size=2048),
    st.lists(records, min_size=1, max_size=8).map(b"".join),
    # TLS-looking header with an arbitrary length, then whatever follows.
    st.builds(lambda t, n, rest: header(t, n) + rest, st.sampled_from([ALERT, HANDSHAKE, APPDATA]),
              st.integers(0, 2**16 - 1), st.binary(max_size=512)),
)
chunk_sizes = st.lists(st.integers(1, 700), min_size=1, max_size=12)

PROPERTY = settings(max_examples=150, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
# The slow variants: 2000 examples each, or 400 when CI asks for a small budget.
HEAVY = settings(PROPERTY, max_examples=400 if os.environ.get("AIOTLS_SLOW_BUDGET") == "small"
                 else 2000)


def _server_property(ctxs, data, sizes):
    check_stream(new_server(ctxs), data, sizes)


def _client_property(ctxs, version, data, sizes):
    client, _ = new_client(ctxs, version)
    check_stream(client, data, sizes)


mutation = st.tuples(st.sampled_from(["flip", "insert", "delete", "set"]),
                     st.integers(0, 2**16), st.integers(0, 255))


def apply_mutations(data: bytes, mutations: list[tuple[str, int, int]]) -> bytes:
    buf = bytearray(data)
    for op, where, value in mutations:
        pos = where % (len(buf) + 1)
        if op == "insert":
            buf[pos:pos] = bytes([value])
        elif pos < len(buf):
            if op == "flip":
                buf[pos] ^= 1 << (value % 8)
            elif op == "delete":
                del buf[pos]
            else:
                buf[pos] = value
    return bytes(buf)


def _transcript_property(ctxs, version, mutations, sizes):
    client, _, flight = server_flight(ctxs, version)
    mutated = apply_mutations(flight, mutations)
    check_stream(client, mutated, sizes, may_complete=True)  # e.g. record version bytes


def _client_hello_property(ctxs, version, mutations, sizes):
    _, hello = new_client(ctxs, version)
    mutated = apply_mutations(hello, mutations)
    server = new_server(ctxs)
    check_stream(server, mutated, sizes)


def _established_property(ctxs, version, role, prefix_records, data, sizes):
    conn, peer = established(ctxs, version, role)
    for i in range(prefix_records):
        peer.send_data(b"record %d" % i)
    genuine = peer.data_to_send()
    events: list[Event] = []
    delivered = 0
    for piece in chunked(genuine + data, sizes):
        if is_over(conn):
            break
        conn.receive_data(piece)  # must never raise while the connection is alive
        delivered += len(piece)
        events += conn.events()
        assert len(conn._inbuf) < MAX_PARTIAL_RECORD
        assert buffered(conn) <= 20 * 1024 + delivered
    if not is_over(conn):
        conn.receive_data(b"")
        events += conn.events()
    data_events = [e for e in events if isinstance(e, DataReceived)]
    # Nothing but the peer's genuine records is ever delivered.
    assert b"".join(e.data for e in data_events) in b"".join(b"record %d" % i
                                                              for i in range(prefix_records))
    others = [e for e in events if not isinstance(e, DataReceived)]
    assert len(others) == 1, events  # hostile data cannot forge a close_notify
    assert isinstance(others[0], ConnectionTerminated)
    assert events[-1] is others[0]
    assert isinstance(others[0].error, TLSError)
    assert conn.state is State.FAILED


@pytest.mark.timeout(60)
@PROPERTY
@given(version=st.sampled_from(list(VERSIONS)), role=st.sampled_from(ROLES),
       prefix_records=st.integers(0, 3), data=hostile_bytes, sizes=chunk_sizes)
def test_property_established_survives_arbitrary_bytes(ctxs, version, role, prefix_records, data,
                                                       sizes):
    _established_property(ctxs, version, role, prefix_records, data, sizes)


@pytest.mark.timeout(60)
@PROPERTY
@given(data=hostile_bytes, sizes=chunk_sizes)
def test_property_server_survives_arbitrary_bytes(ctxs, data, sizes):
    _server_property(ctxs, data, sizes)


@pytest.mark.timeout(60)
@PROPERTY
@given(version=st.sampled_from(list(VERSIONS)), data=hostile_bytes, sizes=chunk_sizes)
def test_property_client_survives_arbitrary_reply(ctxs, version, data, sizes):
    _client_property(ctxs, version, data, sizes)


@pytest.mark.timeout(60)
@PROPERTY
@given(version=st.sampled_from(list(VERSIONS)), mutations=st.lists(mutation, min_size=1, max_size=4),
       sizes=chunk_sizes)
def test_property_client_survives_mutated_server_flight(ctxs, version, mutations, sizes):
    _transcript_property(ctxs, version, mutations, sizes)


@pytest.mark.timeout(60)
@PROPERTY
@given(version=st.sampled_from(list(VERSIONS)), mutations=st.lists(mutation, min_size=1, max_size=4),
       sizes=chunk_sizes)
def test_property_server_survives_mutated_client_hello(ctxs, version, mutations, sizes):
    _client_hello_property(ctxs, version, mutations, sizes)


@pytest.mark.slow
@pytest.mark.timeout(900)
@HEAVY
@given(data=hostile_bytes, sizes=chunk_sizes)
def test_property_server_survives_arbitrary_bytes_heavy(ctxs, data, sizes):
    _server_property(ctxs, data, sizes)


@pytest.mark.slow
@pytest.mark.timeout(900)
@HEAVY
@given(version=st.sampled_from(list(VERSIONS)), data=hostile_bytes, sizes=chunk_sizes)
def test_property_client_survives_arbitrary_reply_heavy(ctxs, version, data, sizes):
    _client_property(ctxs, version, data, sizes)


@pytest.mark.slow
@pytest.mark.timeout(900)
@HEAVY
@given(version=st.sampled_from(list(VERSIONS)), mutations=st.lists(mutation, min_size=1, max_size=4),
       sizes=chunk_sizes)
def test_property_client_survives_mutated_server_flight_heavy(ctxs, version, mutations, sizes):
    _transcript_property(ctxs, version, mutations, sizes)


@pytest.mark.slow
@pytest.mark.timeout(900)
@HEAVY
@given(version=st.sampled_from(list(VERSIONS)), mutations=st.lists(mutation, min_size=1, max_size=4),
       sizes=chunk_sizes)
def test_property_server_survives_mutated_client_hello_heavy(ctxs, version, mutations, sizes):
    _client_hello_property(ctxs, version, mutations, sizes)


@pytest.mark.slow
@pytest.mark.timeout(900)
@HEAVY
@given(version=st.sampled_from(list(VERSIONS)), role=st.sampled_from(ROLES),
       prefix_records=st.integers(0, 3), data=hostile_bytes, sizes=chunk_sizes)
def test_property_established_survives_arbitrary_bytes_heavy(ctxs, version, role, prefix_records,
                                                             data, sizes):
    _established_property(ctxs, version, role, prefix_records, data, sizes)
