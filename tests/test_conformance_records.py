"""Record-layer conformance, table-driven: RFC 8446 5.1 (no other record between the
fragments of a handshake message), RFC 8446 5.4 / RFC 5246 6.2 (record size limits), and
RFC 8449 (the peer's record_size_limit), on every receive and send path.

Receive paths: aiotls's record layer after the handshake takes a lone short TLS 1.3 record
(``open_small``), runs of application data (``open_run``), and anything else one record
at a time (``open``, then the engine for control records); the engine (tlslite-ng) handles
the handshake.  Each rule is driven through them by how the records arrive: all in one
``receive_data`` call, one record per call, or cut inside headers and bodies across calls.

Hostile records are sealed by :class:`tests.helpers.RecordForger` with the keys the
victim reads with, independently of aiotls's own sealing code.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass

import pytest

import aiotls
import aiotls.asyncio
from aiotls import AlertDescription as A
from aiotls import ConnectionState as State
from aiotls.errors import AlertReceived, PeerMisbehaved, TLSError
from aiotls.events import ConnectionTerminated, DataReceived, Event, HandshakeCompleted
from tests.certs import Issued
from tests.helpers import (
    PKI,
    VERSIONS,
    RecordForger,
    handshake,
    pump,
    split_records,
)
from tests.peers import GNUTLS_TIMEOUT, gnutls_cli, gnutls_serv
from tests.sockloop import SocketTLS, listen, peer_thread
from tests.tlslite_peer import RawTLS, tlslite_credentials, tlslite_settings

TLS13, TLS12 = "TLSv1.3", "TLSv1.2"
ROLES = ("client", "server")
PATHS = ("one-call", "record-per-call", "split")
HANDSHAKE, APPDATA, ALERT, CCS = 22, 23, 21, 20
MAX = 2**14


# --- helpers -----------------------------------------------------------------------------------


def contexts(pki: PKI, version: str) -> tuple[aiotls.TLSContext, aiotls.TLSContext]:
    client = pki.client_context()
    client.minimum_version = client.maximum_version = ssl.TLSVersion[version.replace(".", "_")]
    return client, pki.server_context()


def established(pki: PKI, version: str, role: str) -> tuple[aiotls.TLSConnection,
                                                            aiotls.TLSConnection]:
    """(victim, honest peer) of an open connection; the victim plays ``role``."""
    client, server = handshake(*contexts(pki, version))
    for conn in (client, server):
        events = conn.events()
        assert [type(e) for e in events] == [HandshakeCompleted], events
        assert conn.version() == version
    return (client, server) if role == "client" else (server, client)


def plain(ctype: int, body: bytes) -> bytes:
    return bytes((ctype, 3, 3, len(body) >> 8, len(body) & 0xFF)) + body


def chunks_for(records: list[bytes], path: str) -> list[bytes]:
    """How the records reach ``receive_data`` on each path."""
    if path == "one-call":
        return [b"".join(records)]
    if path == "record-per-call":
        return list(records)
    # "split": each record cut inside its header and in the middle of its body, and the
    # cuts glued to the neighbouring record's pieces
    out: list[bytes] = []
    carry = b""
    for record in records:
        half = 5 + (len(record) - 5) // 2
        out += [carry + record[:3], record[3:half]]
        carry = record[half:]
    return [*out, carry]


def deliver(conn: aiotls.TLSConnection, records: list[bytes], path: str) -> list[Event]:
    """Feed the records along ``path``; the events (stops once the connection ended)."""
    events: list[Event] = []
    for chunk in chunks_for(records, path):
        if conn.state in (State.FAILED, State.CLOSED):
            break
        if chunk:
            conn.receive_data(chunk)
        events += conn.events()
    return events


def delivered(events: list[Event]) -> bytes:
    return b"".join(bytes(e.data) for e in events if isinstance(e, DataReceived))


def failure(events: list[Event]) -> TLSError:
    ends = [e for e in events if isinstance(e, ConnectionTerminated)]
    assert len(ends) == 1 and ends[0].error is not None, events
    return ends[0].error


def assert_alert_sent(conn: aiotls.TLSConnection, writer: RecordForger | None, alert: int) -> None:
    """The victim owes the peer a fatal ``alert``: decrypted with its write keys if given."""
    out = conn.data_to_send()
    assert out, "no alert was sent"
    if writer is None:
        assert alert in out  # (a plaintext or handshake-key alert: its byte is there)
        return
    content = [writer.unseal(r) for r in split_records(bytes(out))]
    assert content[-1] == (ALERT, bytes((2, alert))), content


# --- RFC 8446 5.1: nothing between the fragments of a handshake message, after the handshake ---


@dataclass(frozen=True)
class Between:
    """What the peer puts between two fragments of a handshake message."""

    name: str
    ctype: int
    content: bytes
    protected: bool = True
    #: The error code in TLS 1.3 (where every such record is refused)
    code: str = "interleaved-record"

    def record(self, forger: RecordForger) -> bytes:
        return forger.seal(self.ctype, self.content) if self.protected \
            else plain(self.ctype, self.content)

    @property
    def tls12_allowed(self) -> bool:
        """RFC 5246 6.2.1 lets TLS 1.2 interleave alerts and application data (not a
        change_cipher_spec, which would change keys in the middle of a message)."""
        return self.ctype != CCS


BETWEEN_AFTER = [
    Between("application-data-short", APPDATA, b"interleaved!"),  # (open_small's size)
    Between("application-data-long", APPDATA, b"interleaved!" * 400),  # (open_run's)
    Between("alert-close-notify", ALERT, b"\x01\x00"),
    Between("protected-change-cipher-spec", CCS, b"\x01"),
    # TLS 1.3 refuses any unprotected record after the handshake, before this rule
    Between("plain-change-cipher-spec", CCS, b"\x01", protected=False,
            code="unprotected-record"),
]


def fragments(version: str, role: str) -> tuple[bytes, bytes]:
    """A post-handshake handshake message cut in two: a KeyUpdate (TLS 1.3); a HelloRequest
    to a TLS 1.2 client; the start of a ClientHello to a TLS 1.2 server (never completed)."""
    if version == TLS13:
        return b"\x18\x00", b"\x00\x01\x00"
    if role == "client":
        return b"\x00\x00", b"\x00\x00"
    return b"\x01\x00", b"\x00\x40"


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(("version", "between"), [
    pytest.param(version, between, id=f"{version}-{between.name}")
    for version in VERSIONS for between in BETWEEN_AFTER
    # (TLS 1.2 protects every record type alike: a plain CCS is just a bad record MAC)
    if between.protected or version == TLS13
])
def test_interleaved_after_handshake(pki: PKI, version: str, role: str, between: Between,
                                     path: str) -> None:
    victim, _ = established(pki, version, role)
    forger = RecordForger(victim)
    writer = RecordForger(victim, sending=True)
    first, second = fragments(version, role)
    records = [forger.seal(APPDATA, b"before;"), forger.seal(HANDSHAKE, first),
               between.record(forger), forger.seal(HANDSHAKE, second),
               forger.seal(APPDATA, b"after")]
    events = deliver(victim, records, path)
    if version == TLS12 and between.tls12_allowed:
        if between.ctype == ALERT:  # close_notify: a clean close
            assert victim.state is State.CLOSED and victim.error is None
            assert delivered(events) == b"before;"
        else:
            assert victim.state is State.OPEN, victim.error
            assert delivered(events) == b"before;" + between.content + b"after"
        return
    # RFC 8446 5.1: unexpected_message, and nothing from the interleaved record or after it
    assert delivered(events) == b"before;"
    err = failure(events)
    assert isinstance(err, PeerMisbehaved), err
    assert err.alert is A.unexpected_message
    assert err.code == (between.code if version == TLS13 else "interleaved-record"), err
    assert victim.state is State.FAILED
    assert_alert_sent(victim, writer, A.unexpected_message)


@pytest.mark.parametrize(("version", "role"), [(TLS13, "client"), (TLS13, "server"),
                                               (TLS12, "client")])
def test_whole_messages_around_data_are_fine(pki: PKI, version: str, role: str) -> None:
    """The rule is about fragments: whole handshake messages between data records pass."""
    first, second = fragments(version, role)
    for path in PATHS:
        victim, peer = established(pki, version, role)
        if version == TLS13:  # a whole KeyUpdate (new keys after it: the peer seals)
            peer.send_data(b"one;")
            peer.update_keys()
            peer.send_data(b"two")
            records = split_records(bytes(peer.data_to_send()))
        else:  # a whole HelloRequest, refused with a warning
            forger = RecordForger(victim)
            records = [forger.seal(APPDATA, b"one;"), forger.seal(HANDSHAKE, first + second),
                       forger.seal(APPDATA, b"two")]
        events = deliver(victim, records, path)
        assert delivered(events) == b"one;two", path
        assert victim.state is State.OPEN, (path, victim.error)


@pytest.mark.parametrize("extra", [b"\x18\x00", b"\x18\x00\x00\x01\x00"],
                         ids=["fragment", "whole-key-update"])
def test_message_sharing_a_record_with_finished(pki: PKI, extra: bytes) -> None:
    """RFC 8446 5.1: handshake messages must not span a key change, so nothing may follow
    the server's Finished in its record -- which also means no fragment can be pending when
    aiotls's record layer takes over."""
    client_ctx, server_ctx = contexts(pki, TLS13)
    client = aiotls.TLSConnection(client_ctx, server_hostname="localhost")
    server = aiotls.TLSConnection(server_ctx, server_side=True)
    server.receive_data(client.data_to_send())
    sh, ccs, encrypted = split_records(server.data_to_send())
    client.receive_data(sh + ccs)
    _, messages = RecordForger(client).unseal(encrypted)
    client.receive_data(RecordForger(client).seal(HANDSHAKE, messages + extra))
    err = failure(client.events())
    assert isinstance(err, PeerMisbehaved) and err.alert is A.unexpected_message, err
    assert not client.handshake_complete


def _handover_records(version: str, case: str, f: RecordForger) -> list[bytes]:
    if case == "interleaved":
        if version == TLS13:
            return [f.seal(HANDSHAKE, b"\x18\x00"), f.seal(APPDATA, b"!"),
                    f.seal(HANDSHAKE, b"\x00\x01\x00")]
        return [f.seal(HANDSHAKE, b"\x00\x00"), f.seal(CCS, b"\x01"),
                f.seal(HANDSHAKE, b"\x00\x00")]
    if case == "content-2^14+1":
        return [f.seal(APPDATA, b"!" * (MAX + 1))]
    return [f.seal(APPDATA, b"!" * (MAX - 8), 9)]  # content-2^14-8+padding-9


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize(("version", "case", "alert"), [
    (TLS13, "interleaved", A.unexpected_message),
    (TLS13, "content-2^14+1", A.record_overflow),
    (TLS13, "content-2^14-8+padding-9", A.record_overflow),
    (TLS12, "interleaved", A.unexpected_message),
    (TLS12, "content-2^14+1", A.record_overflow),
])
def test_hostile_records_right_behind_the_handshake(pki: PKI, version: str, case: str,
                                                    alert: A, path: str) -> None:
    """The records that complete the client's handshake and hostile ones behind them in the
    same input: the connection layer hands the rest over to aiotls's record layer mid-way."""
    client_ctx, server_ctx = contexts(pki, version)
    client = aiotls.TLSConnection(client_ctx, server_hostname="localhost")
    server = aiotls.TLSConnection(server_ctx, server_side=True)
    server.receive_data(client.data_to_send())
    last = server.data_to_send()
    if version == TLS12:
        client.receive_data(last)
        server.receive_data(client.data_to_send())
        last = server.data_to_send()
    forger = RecordForger(server, sending=True)  # (the server's application keys)
    records = [*split_records(bytes(last)), forger.seal(APPDATA, b"first;"),
               *_handover_records(version, case, forger)]
    events = deliver(client, records, path)
    assert isinstance(events[0], HandshakeCompleted), events
    assert delivered(events) == b"first;"
    err = failure(events)
    assert isinstance(err, PeerMisbehaved) and err.alert is alert, err


# --- RFC 8446 5.1 during the handshake ---------------------------------------------------------


def _tls13_encrypted_flight(pki: PKI, role: str) -> tuple[aiotls.TLSConnection, bytes]:
    """A TLS 1.3 handshake in memory, stopped where ``role`` (the victim) is about to read
    its peer's encrypted flight: (victim, that flight's protected record -- the server's
    EncryptedExtensions..Finished, or the client's Finished)."""
    client_ctx, server_ctx = contexts(pki, TLS13)
    client = aiotls.TLSConnection(client_ctx, server_hostname="localhost")
    server = aiotls.TLSConnection(server_ctx, server_side=True)
    server.receive_data(client.data_to_send())
    sh, ccs, encrypted = split_records(server.data_to_send())
    if role == "client":
        client.receive_data(sh + ccs)
        return client, encrypted
    client.receive_data(sh + ccs + encrypted)
    client_ccs, finished = split_records(client.data_to_send())
    server.receive_data(client_ccs)
    return server, finished


def _split_encrypted_flight(victim: aiotls.TLSConnection, encrypted: bytes,
                            middle: Callable[[RecordForger], bytes]) -> list[bytes]:
    """Re-seal the handshake messages of ``encrypted`` as two records, the first cut two
    bytes into the first message, with ``middle`` between them."""
    _, messages = RecordForger(victim).unseal(encrypted)
    forger = RecordForger(victim)
    return [forger.seal(HANDSHAKE, messages[:2]), middle(forger),
            forger.seal(HANDSHAKE, messages[2:])]


BETWEEN_HANDSHAKE_13 = [
    ("application-data", lambda f: f.seal(APPDATA, b"early!")),
    ("alert", lambda f: f.seal(ALERT, b"\x02\x28")),
    ("plain-change-cipher-spec", lambda f: plain(CCS, b"\x01")),
]


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize(("name", "middle"), BETWEEN_HANDSHAKE_13,
                         ids=[row[0] for row in BETWEEN_HANDSHAKE_13])
@pytest.mark.parametrize("role", ROLES)
def test_interleaved_in_tls13_handshake(pki: PKI, role: str, name: str,
                                        middle: Callable[[RecordForger], bytes],
                                        path: str) -> None:
    victim, flight = _tls13_encrypted_flight(pki, role)
    records = _split_encrypted_flight(victim, flight, middle)
    events = deliver(victim, records, path)
    assert not any(isinstance(e, HandshakeCompleted | DataReceived) for e in events), events
    err = failure(events)
    assert isinstance(err, PeerMisbehaved), err
    assert err.alert is A.unexpected_message and err.code == "interleaved-record", err
    assert victim.data_to_send()  # the alert


def _plaintext_flight(pki: PKI, version: str, role: str) -> tuple[aiotls.TLSConnection, bytes]:
    """(victim, the plaintext flight it is about to read): a server and the ClientHello, or
    a client and the server's first flight (its records)."""
    client_ctx, server_ctx = contexts(pki, version)
    client = aiotls.TLSConnection(client_ctx, server_hostname="localhost")
    server = aiotls.TLSConnection(server_ctx, server_side=True)
    hello = client.data_to_send()
    if role == "server":
        return server, hello
    server.receive_data(hello)
    return client, server.data_to_send()


HELLO_BETWEEN = [
    # (name, record, allowed in TLS 1.2: RFC 5246 6.2.1 lets alerts interleave)
    ("change-cipher-spec", plain(CCS, b"\x01"), False),
    ("fatal-alert", plain(ALERT, b"\x02\x28"), True),
]


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize(("name", "middle", "allowed"), HELLO_BETWEEN,
                         ids=[row[0] for row in HELLO_BETWEEN])
@pytest.mark.parametrize("role", ROLES)
def test_interleaved_in_plaintext_handshake(pki: PKI, role: str, name: str, middle: bytes,
                                            allowed: bool, path: str) -> None:
    """TLS 1.2's plaintext flights (the server's; the ClientHello to a server): a
    change_cipher_spec between fragments would change keys mid-message (refused), a fatal
    alert there is the peer's alert (TLS 1.2 allows interleaved alerts)."""
    victim, flight = _plaintext_flight(pki, TLS12, role)
    payload = b"".join(r[5:] for r in split_records(flight))
    records = [plain(HANDSHAKE, payload[:2]), middle, plain(HANDSHAKE, payload[2:])]
    events = deliver(victim, records, path)
    err = failure(events)
    if allowed:
        assert isinstance(err, AlertReceived) and err.alert is A.handshake_failure, err
    else:
        assert isinstance(err, PeerMisbehaved) and err.alert is A.unexpected_message, err
        assert err.code == "interleaved-record", err
        assert_alert_sent(victim, None, A.unexpected_message)


# --- RFC 8446 5.4 / RFC 5246 6.2: record sizes after the handshake -----------------------------


@dataclass(frozen=True)
class Shape:
    name: str
    version: str
    content: int  # bytes of content
    padding: int = 0  # TLS 1.3 zero padding after the content type
    ctype: int = APPDATA
    accepted: bool = False
    garbage_length: int | None = None  # a header announcing this length, unauthentic body


SHAPES = [
    Shape("content-2^14", TLS13, MAX, accepted=True),
    Shape("content-2^14-1+padding-1", TLS13, MAX - 1, 1, accepted=True),
    Shape("content-2^14+1", TLS13, MAX + 1),
    Shape("content-2^14-8+padding-9", TLS13, MAX - 8, 9),
    Shape("content-2^14+padding-1", TLS13, MAX, 1),
    Shape("padding-only-2^14+2", TLS13, 0, MAX + 1),
    Shape("ciphertext-2^14+256", TLS13, MAX + 256 - 17),
    Shape("handshake-2^14+1", TLS13, MAX + 1, ctype=HANDSHAKE),
    Shape("alert+padding-2^14", TLS13, 2, MAX, ctype=ALERT),
    Shape("header-2^14+257", TLS13, 0, garbage_length=MAX + 257),
    Shape("content-2^14", TLS12, MAX, accepted=True),
    Shape("content-2^14+1", TLS12, MAX + 1),
    Shape("ciphertext-2^14+2048", TLS12, MAX + 2048 - 24),
    Shape("header-2^14+2049", TLS12, 0, garbage_length=MAX + 2049),
]
BEFORE = ("alone", "after-data")


@pytest.mark.parametrize("before", BEFORE)
@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"{s.version}-{s.name}")
def test_record_size_after_handshake(pki: PKI, shape: Shape, role: str, path: str,
                                     before: str) -> None:
    victim, _ = established(pki, shape.version, role)
    forger = RecordForger(victim)
    writer = RecordForger(victim, sending=True)
    records = [forger.seal(APPDATA, b"x" * 100), forger.seal(APPDATA, b"y" * 3000)] \
        if before == "after-data" else []
    prefix = b"x" * 100 + b"y" * 3000 if records else b""
    if shape.garbage_length is not None:
        records.append(bytes((APPDATA, 3, 3, shape.garbage_length >> 8,
                              shape.garbage_length & 0xFF)) + bytes(shape.garbage_length))
    else:
        content = bytes(range(256)) * (shape.content // 256) + b"z" * (shape.content % 256)
        if shape.ctype == ALERT:
            content = b"\x01\x00"
        records.append(forger.seal(shape.ctype, content, shape.padding))
    events = deliver(victim, records, path)
    if shape.accepted:
        assert victim.state is State.OPEN, victim.error
        assert delivered(events) == prefix + content
        return
    assert delivered(events) == prefix  # nothing from the oversized record
    err = failure(events)
    assert isinstance(err, PeerMisbehaved), err
    assert err.alert is A.record_overflow, err
    assert err.what.startswith("the peer sent"), err  # (blamed on the sender)
    assert_alert_sent(victim, writer, A.record_overflow)


ENGINE_PATH_CASES = [
    # (name, records after b"before;", error alert or None when accepted, delivered)
    ("interleaved-data", lambda f: [f.seal(HANDSHAKE, b"\x18\x00"), f.seal(APPDATA, b"!"),
                                    f.seal(HANDSHAKE, b"\x00\x01\x00")],
     A.unexpected_message, b""),
    ("interleaved-alert", lambda f: [f.seal(HANDSHAKE, b"\x18\x00"), f.seal(ALERT, b"\x01\x00")],
     A.unexpected_message, b""),
    ("content-2^14", lambda f: [f.seal(APPDATA, b"c" * MAX)], None, b"c" * MAX),
    ("content-2^14-1+padding-1", lambda f: [f.seal(APPDATA, b"c" * (MAX - 1), 1)], None,
     b"c" * (MAX - 1)),
    ("content-2^14+1", lambda f: [f.seal(APPDATA, b"c" * (MAX + 1))], A.record_overflow, b""),
    ("content-2^14-8+padding-9", lambda f: [f.seal(APPDATA, b"c" * (MAX - 8), 9)],
     A.record_overflow, b""),
    ("handshake-2^14+1", lambda f: [f.seal(HANDSHAKE, b"\x04" + bytes(MAX))], A.record_overflow,
     b""),
]


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize(("name", "make", "alert", "data"), ENGINE_PATH_CASES,
                         ids=[row[0] for row in ENGINE_PATH_CASES])
def test_engine_record_path_after_handshake(pki: PKI, name: str,
                                            make: Callable[[RecordForger], list[bytes]],
                                            alert: A | None, data: bytes, path: str) -> None:
    """TLS_AES_128_CCM_SHA256 stays on the engine's (tlslite's) record layer after the
    handshake: the same rules hold there."""
    client_ctx, server_ctx = contexts(pki, TLS13)
    for ctx in (client_ctx, server_ctx):
        ctx.set_ciphers("TLS_AES_128_CCM_SHA256")
    client = aiotls.TLSConnection(client_ctx, server_hostname="localhost")
    server = aiotls.TLSConnection(server_ctx, server_side=True)
    pump(client, server)
    assert server.cipher() is not None and server.cipher()[0] == "TLS_AES_128_CCM_SHA256"
    assert not server._engine.records_taken_over  # (the engine's path, which this test is about)
    server.events()
    forger = RecordForger(server)
    events = deliver(server, [forger.seal(APPDATA, b"before;"), *make(forger)], path)
    assert delivered(events) == b"before;" + data
    if alert is None:
        assert server.state is State.OPEN, server.error
        return
    err = failure(events)
    assert isinstance(err, PeerMisbehaved) and err.alert is alert, err


# --- record sizes during the handshake ---------------------------------------------------------


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize(("inner", "accepted"), [(MAX + 1, True), (MAX + 2, False)],
                         ids=["inner-2^14+1", "inner-2^14+2"])
@pytest.mark.parametrize("role", ROLES)
def test_padded_handshake_record(pki: PKI, role: str, inner: int, accepted: bool,
                                 path: str) -> None:
    """TLS 1.3 encrypted handshake messages padded to an inner plaintext of exactly the
    limit complete the handshake; one byte more is record_overflow."""
    victim, target = _tls13_encrypted_flight(pki, role)
    _, messages = RecordForger(victim).unseal(target)
    record = RecordForger(victim).seal(HANDSHAKE, messages, inner - len(messages) - 1)
    events = deliver(victim, [record], path)
    if accepted:
        assert [type(e) for e in events] == [HandshakeCompleted], victim.error
        return
    err = failure(events)
    assert isinstance(err, PeerMisbehaved) and err.alert is A.record_overflow, err


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("version", VERSIONS)
def test_plaintext_handshake_record_over_2_14(pki: PKI, version: str, role: str,
                                              path: str) -> None:
    """A plaintext handshake record (ClientHello; the server's first flight) with 2^14 + 1
    bytes of content: record_overflow before any of it is parsed."""
    victim, flight = _plaintext_flight(pki, version, role)
    payload = split_records(flight)[0][5:]
    record = plain(HANDSHAKE, payload + bytes(MAX + 1 - len(payload)))
    err = failure(deliver(victim, [record], path))
    assert isinstance(err, PeerMisbehaved) and err.alert is A.record_overflow, err


# --- RFC 8449 record_size_limit: what we seal ---------------------------------------------------


def _record_contents(wire: bytes, version: str) -> list[tuple[int, int]]:
    """(outer type, content bytes incl. TLS 1.3 content type and padding) of every
    protected record in ``wire`` (unprotected ones -- hellos, CCS -- are not limited).
    TLS 1.2 records are taken to be AES-GCM's (an explicit nonce)."""
    out = []
    protected = False
    for record in split_records(wire):
        if record[0] == CCS:
            protected = True  # TLS 1.2: everything after our CCS; TLS 1.3: after the hellos
            continue
        if version == TLS13 and record[0] == APPDATA:
            out.append((record[0], len(record) - 5 - 16))
        elif version == TLS12 and protected:
            out.append((record[0], len(record) - 5 - 16 - 8))  # (GCM: explicit nonce)
    return out


def _capture_sent(conn: aiotls.TLSConnection) -> bytearray:
    """From now on, a copy of every byte *conn* gives to send."""
    sent = bytearray()
    take = conn.data_to_send

    def capture() -> bytes | bytearray:
        out = take()
        sent.extend(out)
        return out

    conn.data_to_send = capture  # type: ignore[method-assign]
    return sent


def _tlslite_peer(sock: socket.socket, role: str, version: str, cipher: str, limit: int,
                  credentials: Issued, size: int) -> bytes:
    """tlslite-ng as the peer that asks for ``limit`` (it enforces it on what it reads)."""
    tls_version = (3, 4) if version == TLS13 else (3, 3)
    settings = tlslite_settings(min_version=tls_version, max_version=tls_version,
                                record_size_limit=limit, cipherNames=[cipher])
    conn = RawTLS(sock)
    if role == "server":
        chain, key = tlslite_credentials(credentials)
        conn.handshakeServer(certChain=chain, privateKey=key, settings=settings)
    else:
        conn.handshakeClientCert(settings=settings, serverName="localhost")
    got = bytearray()
    while len(got) < size:
        data = conn.read()
        if not data:
            break
        got += data
    conn.write(bytes(got[:1000]))
    conn.close()
    return bytes(got)


SEALING_SUITES = [
    # (version, suite, tlslite's cipher name): aiotls's record layer seals GCM application
    # data; CCM stays on the engine's (tlslite's) record layer
    (TLS13, "TLS_AES_128_GCM_SHA256", "aes128gcm"),
    (TLS13, "TLS_AES_128_CCM_SHA256", "aes128ccm"),
    (TLS12, "ECDHE-RSA-AES128-GCM-SHA256", "aes128gcm"),
]


@pytest.mark.parametrize("limit", [64, 512])
@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(("version", "suite", "cipher"), SEALING_SUITES,
                         ids=[row[1] for row in SEALING_SUITES])
def test_sealed_records_honour_peer_record_size_limit(pki: PKI, version: str, suite: str,
                                                      cipher: str, role: str,
                                                      limit: int) -> None:
    """Every protected record aiotls sends -- handshake messages (tlslite's record layer
    and the engine's TLS 1.3 path), tickets, application data (aiotls's record layer, or
    the engine's for CCM) -- fits the limit the peer (tlslite-ng) asked for, and the peer
    reads all of it."""
    client_ctx, _ = contexts(pki, version)
    issued, certfile, keyfile = pki.servers["rsa2048"]
    server_ctx = aiotls.TLSContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(certfile, keyfile)
    for ctx in (client_ctx, server_ctx):
        ctx.set_ciphers(suite)
    ours, theirs = socket.socketpair()
    size = 64 * 1024
    blob = bytes(range(256)) * (size // 256)
    peer_role = "client" if role == "server" else "server"
    with ours, theirs, peer_thread(_tlslite_peer, theirs, peer_role, version, cipher, limit,
                                   issued, size) as peer:
        conn = aiotls.TLSConnection(server_ctx, server_side=True) if role == "server" \
            else aiotls.TLSConnection(client_ctx, server_hostname="localhost")
        tls = SocketTLS(conn, ours, timeout=30)
        sent = _capture_sent(conn)
        tls.handshake()
        assert conn.cipher() is not None and conn.cipher()[0] == suite  # type: ignore[index]
        tls.send(blob)
        assert tls.recv_exactly(1000) == blob[:1000]
        with contextlib.suppress(Exception):
            tls.close()
        assert peer.result(30) == blob
    contents = _record_contents(bytes(sent), version)
    assert len(contents) > size // limit  # the data went out in many records
    assert max(n for _, n in contents) <= limit, sorted(contents, key=lambda x: x[1])[-3:]


# --- RFC 8449 with GnuTLS, the peer that showed the defect --------------------------------------

GNUTLS_LIMIT = 512
#: The TLS 1.2 suite (AES-GCM, which :func:`_record_contents` measures), ECDSA as pki.server().
GNUTLS_TLS12_SUITE = "ECDHE-ECDSA-AES128-GCM-SHA256"


def _lines(count: int, tag: bytes) -> list[bytes]:
    return [b"%05d %s %s\n" % (i, tag, bytes(range(97, 123)) * 3) for i in range(count)]


def _check_gnutls_limit(sent: bytes, version: str) -> None:
    """What aiotls sealed went out in many records, the largest exactly the limit GnuTLS
    advertised: ``--recordsize`` plus one in TLS 1.3 (for the content type byte), so 513."""
    contents = _record_contents(sent, version)
    assert len(contents) > 64 * 1024 // GNUTLS_LIMIT
    assert max(n for _, n in contents) == GNUTLS_LIMIT + (version == TLS13)


@pytest.mark.parametrize("version", VERSIONS)
def test_gnutls_server_with_record_size_limit(pki: PKI, version: str) -> None:
    """aiotls client, ``gnutls-serv --recordsize=512 --echo``: 64 KiB each way in many
    records; GnuTLS rejects any record over its limit ("record packet with invalid
    length"), and every record we sealed is checked too; close_notify both ways."""
    client_ctx, _ = contexts(pki, version)
    if version == TLS12:
        client_ctx.set_ciphers(GNUTLS_TLS12_SUITE)
    certfile, keyfile = pki.server()
    lines = _lines(700, b"to-gnutls")  # ~64 KiB
    with gnutls_serv(certfile=certfile, keyfile=keyfile, version=version,
                     record_size=GNUTLS_LIMIT, tickets=False) as server:
        conn = aiotls.TLSConnection(client_ctx, server_hostname="localhost")
        sent = _capture_sent(conn)
        with SocketTLS(conn, server.connect(), timeout=GNUTLS_TIMEOUT) as tls:
            assert tls.handshake().version == version
            for start in range(0, len(lines), 70):
                batch = b"".join(lines[start:start + 70])
                tls.send(batch)
                assert tls.recv_exactly(len(batch)) == batch
            tls.close()  # fails unless GnuTLS answers with close_notify
            assert tls.conn.error is None
    _check_gnutls_limit(bytes(sent), version)
    assert "invalid length" not in server.output, server.output


@pytest.mark.parametrize("version", VERSIONS)
def test_gnutls_client_with_record_size_limit(pki: PKI, version: str) -> None:
    """``gnutls-cli --recordsize=512`` to an aiotls server that sends it 64 KiB: every
    record fits, gnutls-cli prints all of it, and its close_notify ends the connection
    cleanly."""
    _, server_ctx = contexts(pki, version)
    if version == TLS12:
        server_ctx.set_ciphers(GNUTLS_TLS12_SUITE)
    lines = _lines(700, b"from-aiotls")
    request = b"hello from gnutls-cli\n"
    with listen("127.0.0.1", GNUTLS_TIMEOUT) as listener, \
            gnutls_cli(listener.getsockname()[1], ca=pki.ca_file, stdin=request,
                       version=version, record_size=GNUTLS_LIMIT) as client:
        with SocketTLS.accept(server_ctx, listener, timeout=GNUTLS_TIMEOUT) as tls:
            sent = _capture_sent(tls.conn)
            assert tls.handshake().version == version
            assert tls.recv_line() == request
            tls.send(b"".join(lines))
            client.wait_for_output("00699 from-aiotls", GNUTLS_TIMEOUT)
            client.close_stdin()  # end of its input: gnutls-cli sends close_notify
            tls.wait_closed()  # fails on any error, or without gnutls-cli's close_notify
            assert tls.conn.error is None
        rc, output = client.wait(GNUTLS_TIMEOUT)
    assert rc == 0, output
    assert "invalid length" not in output and "Fatal error" not in output, output
    received = [line + "\n" for line in output.splitlines() if "from-aiotls" in line]
    assert "".join(received).encode() == b"".join(lines)
    _check_gnutls_limit(bytes(sent), version)


# --- through aiotls.asyncio, on both event loops -----------------------------------------------


async def _raw_tls_client(pki: PKI, version: str, port: int) -> tuple[
        asyncio.StreamReader, asyncio.StreamWriter, aiotls.TLSConnection]:
    """A sans-IO client over a plain asyncio connection, handshake done (so the test can
    send records of its own making)."""
    client_ctx, _ = contexts(pki, version)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    conn = aiotls.TLSConnection(client_ctx, server_hostname="localhost")
    writer.write(conn.data_to_send())
    while not conn.handshake_complete:
        data = await reader.read(65536)
        assert data, "the server closed during the handshake"
        conn.receive_data(data)
        writer.write(conn.data_to_send())
    assert conn.version() == version
    conn.events()
    return reader, writer, conn


def _interleaved13(f: RecordForger) -> list[bytes]:
    return [f.seal(HANDSHAKE, b"\x18\x00"), f.seal(APPDATA, b"interleaved!"),
            f.seal(HANDSHAKE, b"\x00\x01\x00")]


def _interleaved12(f: RecordForger) -> list[bytes]:
    # (TLS 1.2 allows interleaved application data; a change_cipher_spec is refused)
    return [f.seal(HANDSHAKE, b"\x01\x00"), f.seal(CCS, b"\x01"), f.seal(HANDSHAKE, b"\x00\x00")]


ADAPTER_CASES: dict[tuple[str, str], tuple[Callable[[RecordForger], list[bytes]], A]] = {
    (TLS13, "interleaved"): (_interleaved13, A.unexpected_message),
    (TLS13, "oversized-content"): (lambda f: [f.seal(APPDATA, b"o" * (MAX + 1))],
                                   A.record_overflow),
    (TLS13, "oversized-padding"): (lambda f: [f.seal(APPDATA, b"p" * (MAX - 8), 9)],
                                   A.record_overflow),
    (TLS12, "interleaved"): (_interleaved12, A.unexpected_message),
    (TLS12, "oversized-content"): (lambda f: [f.seal(APPDATA, b"o" * (MAX + 1))],
                                   A.record_overflow),
}


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("version", "case"), list(ADAPTER_CASES),
                         ids=[f"{v}-{c}" for v, c in ADAPTER_CASES])
async def test_asyncio_server_refuses_hostile_records(pki: PKI, version: str,
                                                      case: str) -> None:
    """An aiotls.asyncio stream server: the reader gets the data before the bad record, then
    the error; nothing of the bad record; the peer gets the alert."""
    make, alert = ADAPTER_CASES[version, case]
    outcome: asyncio.Future[tuple[bytes, BaseException | None]] = \
        asyncio.get_running_loop().create_future()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        got = bytearray()
        try:
            while chunk := await reader.read(65536):
                got += chunk
        except aiotls.TLSError as exc:
            outcome.set_result((bytes(got), exc))
        else:
            outcome.set_result((bytes(got), None))
        finally:
            writer.close()

    server = await aiotls.asyncio.start_server(handler, "127.0.0.1", 0,
                                               ssl=pki.server_context())
    try:
        port = server.sockets[0].getsockname()[1]
        async with asyncio.timeout(30):
            reader, writer, conn = await _raw_tls_client(pki, version, port)
            forger = RecordForger(conn, sending=True)
            writer.write(forger.seal(APPDATA, b"before;") + b"".join(make(forger)))
            got, error = await outcome
            assert got == b"before;"
            assert isinstance(error, PeerMisbehaved), error
            assert error.alert is alert, error
            # the client hears the alert
            while conn.state is State.OPEN and (data := await reader.read(65536)):
                conn.receive_data(data)
            assert isinstance(conn.error, AlertReceived), conn.error
            assert conn.error.alert is alert
            writer.close()
    finally:
        server.close()
        await server.wait_closed()


# --- messages and what aiotls advertises --------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
def test_received_record_overflow_blames_our_records(pki: PKI, version: str) -> None:
    """A peer that rejects *our* record with record_overflow: the error must not say the
    sender (the peer) is broken -- the record was ours."""
    victim, _ = established(pki, version, "client")
    forger = RecordForger(victim)
    victim.receive_data(forger.seal(ALERT, bytes((2, A.record_overflow))))
    err = failure(victim.events())
    assert isinstance(err, AlertReceived) and err.alert is A.record_overflow, err
    assert "sender is broken" not in str(err)
    assert "record from aiotls" in err.cause and "record_size_limit" in err.cause, err.cause


def _extension(hello: bytes, ext_type: int) -> bytes | None:
    """An extension's payload in a ClientHello record (None if absent)."""
    body = hello[5 + 4:]
    pos = 2 + 32
    pos += 1 + body[pos]  # session id
    pos += 2 + int.from_bytes(body[pos:pos + 2], "big")  # cipher suites
    pos += 1 + body[pos]  # compression methods
    end = pos + 2 + int.from_bytes(body[pos:pos + 2], "big")
    pos += 2
    while pos < end:
        kind, size = int.from_bytes(body[pos:pos + 2], "big"), \
            int.from_bytes(body[pos + 2:pos + 4], "big")
        if kind == ext_type:
            return body[pos + 4:pos + 4 + size]
        pos += 4 + size
    return None


def test_advertised_record_size_limit_is_the_protocol_maximum(pki: PKI) -> None:
    """aiotls (through tlslite-ng's default) offers record_size_limit 2^14 + 1: what it
    accepts is exactly the protocol's limits, which the size tables above enforce."""
    client_ctx, _ = contexts(pki, TLS13)
    hello = bytes(aiotls.TLSConnection(client_ctx, server_hostname="localhost").data_to_send())
    assert _extension(hello, 28) == (MAX + 1).to_bytes(2, "big")
