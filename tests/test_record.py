"""aiotls's own record layer: takeover, KeyUpdate, limits, tampering."""

from __future__ import annotations

import os
import ssl
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import aiotls
from aiotls import _record
from aiotls.events import CloseNotifyReceived, ConnectionTerminated, DataReceived, LentDataReceived
from tests.helpers import PKI, VERSIONS, data_of, handshake, pump, split_records
from tests.stdlib_peer import StdlibPeer, run

SUITES = [
    ("TLSv1.3", "TLS_AES_128_GCM_SHA256"),
    ("TLSv1.3", "TLS_AES_256_GCM_SHA384"),
    ("TLSv1.3", "TLS_CHACHA20_POLY1305_SHA256"),
    ("TLSv1.2", "ECDHE-ECDSA-AES128-GCM-SHA256"),
    ("TLSv1.2", "ECDHE-ECDSA-AES256-GCM-SHA384"),
    ("TLSv1.2", "ECDHE-ECDSA-CHACHA20-POLY1305"),
]


def pair(pki: PKI, version: str, suite: str) -> tuple[aiotls.TLSConnection, aiotls.TLSConnection]:
    ctx = pki.client_context()
    ctx.minimum_version = ctx.maximum_version = VERSIONS[version]
    ctx.set_ciphers(suite)
    client, server = handshake(ctx, pki.server_context())
    assert client.cipher()[0] == suite, client.error
    client.events(), server.events()
    return client, server


@pytest.mark.parametrize(("version", "suite"), SUITES)
def test_fast_path_takes_over_every_aead_suite(pki: PKI, version: str, suite: str) -> None:
    client, server = pair(pki, version, suite)
    assert client._engine.records_taken_over
    assert server._engine.records_taken_over
    for size in (0, 1, 2**14 - 1, 2**14, 2**14 + 1, 100_000):
        blob = os.urandom(size)
        client.send_data(blob)
        server.send_data(blob[::-1])
        pump(client, server)
        assert data_of(server) == blob
        assert data_of(client) == blob[::-1]


@pytest.mark.parametrize(("version", "suite"), SUITES)
def test_fast_path_against_stdlib(pki: PKI, version: str, suite: str) -> None:
    """The record layer round-trips every suite with OpenSSL (stdlib ssl) on the other end."""
    ctx = pki.client_context()
    ctx.minimum_version = ctx.maximum_version = VERSIONS[version]
    ctx.set_ciphers(suite)
    peer = StdlibPeer(pki.stdlib_server_context(), server_side=True)
    conn = aiotls.TLSConnection(ctx, server_hostname="localhost")
    run(conn, peer)
    assert conn.cipher()[0] == suite
    assert conn._engine.records_taken_over
    blob = os.urandom(70_000)
    conn.send_data(blob)
    peer.incoming.write(conn.data_to_send())
    peer.step()
    assert bytes(peer.received) == blob
    peer.obj.write(blob[::-1])
    conn.events()
    conn.receive_data(peer.outgoing.read())
    assert data_of(conn) == blob[::-1]


def test_key_update_both_directions(pki: PKI) -> None:
    client, server = pair(pki, "TLSv1.3", "TLS_AES_128_GCM_SHA256")
    old_client_write = client._engine.record_keys(reading=False).key
    client.update_keys(request_peer_update=True)
    client.send_data(b"after update")
    pump(client, server)
    assert data_of(server) == b"after update"
    # the client's write key changed; the server answered with its own KeyUpdate
    def key(conn: aiotls.TLSConnection, reading: bool) -> bytes:
        return conn._engine.record_keys(reading=reading).key

    assert key(client, False) != old_client_write
    assert key(server, True) == key(client, False)
    assert key(client, True) == key(server, False)
    server.send_data(b"server after update")
    pump(client, server)
    assert data_of(client) == b"server after update"


def test_key_update_against_stdlib(pki: PKI) -> None:
    """OpenSSL accepts our KeyUpdate (request_update) and answers it; data keeps flowing."""
    ctx = pki.client_context()
    peer = StdlibPeer(pki.stdlib_server_context(), server_side=True)
    conn = aiotls.TLSConnection(ctx, server_hostname="localhost")
    run(conn, peer)
    before = [conn._engine.record_keys(reading=r).key for r in (True, False)]
    conn.update_keys(request_peer_update=True)
    conn.send_data(b"ping")
    peer.incoming.write(conn.data_to_send())
    peer.step()
    assert bytes(peer.received) == b"ping"
    peer.obj.write(b"pong")
    conn.events()
    conn.receive_data(peer.outgoing.read())
    assert data_of(conn) == b"pong"
    after = [conn._engine.record_keys(reading=r).key for r in (True, False)]
    assert after[0] != before[0]  # OpenSSL updated its keys as asked
    assert after[1] != before[1]


def test_automatic_key_update_before_limit(pki: PKI) -> None:
    client, server = pair(pki, "TLSv1.3", "TLS_AES_256_GCM_SHA384")
    client._engine.set_key_update_after(10)
    first_key = client._engine.record_keys(reading=False).key
    for i in range(25):
        client.send_data(b"record %d;" % i)
    pump(client, server)
    assert data_of(server) == b"".join(b"record %d;" % i for i in range(25))
    assert client._engine.record_keys(reading=False).key != first_key
    assert client._engine.record_keys(reading=False).seq < 25  # restarted with each new key


def test_tls12_sequence_exhaustion_closes(pki: PKI) -> None:
    client, server = pair(pki, "TLSv1.2", "ECDHE-ECDSA-AES128-GCM-SHA256")
    client._engine.set_sequence_number(reading=False, seq=_record.SEQ_LIMIT - 1)
    with pytest.raises(aiotls.TLSError, match="sequence number exhausted"):
        client.send_data(b"x")
    assert client.state is aiotls.ConnectionState.FAILED


def test_update_keys_is_tls13_only(pki: PKI) -> None:
    client, _ = pair(pki, "TLSv1.2", "ECDHE-ECDSA-AES128-GCM-SHA256")
    with pytest.raises(aiotls.TLSUsageError, match=r"TLS 1\.3"):
        client.update_keys()
    assert client.state is aiotls.ConnectionState.OPEN  # a misuse does not end the connection


def test_control_records_interleaved_with_data(pki: PKI) -> None:
    """A KeyUpdate between data records: data before and after are both delivered in order."""
    client, server = pair(pki, "TLSv1.3", "TLS_AES_128_GCM_SHA256")
    client.send_data(b"one")
    client.update_keys()
    client.send_data(b"two")
    client.close()
    server.receive_data(client.data_to_send())  # all of it in one call
    events = server.events()
    assert events[:2] == [DataReceived(b"one"), DataReceived(b"two")]
    assert isinstance(events[-1], ConnectionTerminated)
    assert events[-1].error is None


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_tampered_records_are_rejected(data: st.DataObject) -> None:
    """Flipped bits, reordered, replayed, dropped or truncated records never deliver data."""
    pki = _PKI
    version, suite = data.draw(st.sampled_from(SUITES))
    client, server = pair(pki, version, suite)
    messages = [os.urandom(data.draw(st.integers(1, 3000))) for _ in range(3)]
    for m in messages:
        client.send_data(m)
    records = split_records(client.data_to_send())
    assert len(records) == 3
    attack = data.draw(st.sampled_from(["flip", "reorder", "replay", "drop", "truncate"]))
    if attack == "flip":
        i = data.draw(st.integers(0, 2))
        rec = bytearray(records[i])
        bit = data.draw(st.integers(5 * 8, len(rec) * 8 - 1))  # anywhere after the header
        rec[bit // 8] ^= 1 << (bit % 8)
        records[i] = bytes(rec)
        wire, bad = records, i
    elif attack == "reorder":
        wire, bad = [records[1], records[0], records[2]], 0
    elif attack == "replay":
        wire, bad = [records[0], records[0], records[1]], 1
    elif attack == "drop":
        wire, bad = [records[0], records[2]], 1
    else:
        i = data.draw(st.integers(0, 2))
        cut = data.draw(st.integers(1, len(records[i]) - 6))
        rec = records[i][:5 + cut]
        # keep the header's length honest so the record is complete but too short
        rec = rec[:3] + cut.to_bytes(2, "big") + rec[5:]
        records[i] = rec
        wire, bad = records, i
    server.receive_data(b"".join(wire))
    events = server.events()
    delivered = b"".join(e.data for e in events if isinstance(e, DataReceived))
    # everything before the bad record arrives intact, nothing from it or after it
    assert delivered == b"".join(messages[:bad])
    last = events[-1]
    assert isinstance(last, ConnectionTerminated)
    assert isinstance(last.error, aiotls.PeerMisbehaved)
    assert last.error.alert in (aiotls.AlertDescription.bad_record_mac,
                                aiotls.AlertDescription.decode_error)
    assert server.data_to_send()  # the alert for the client


@pytest.fixture(autouse=True, scope="module")
def _module_pki(pki: PKI) -> None:
    global _PKI
    _PKI = pki


_PKI: PKI


@pytest.mark.interop
@pytest.mark.timeout(60)
@pytest.mark.parametrize(("version", "suite"), SUITES)
def test_fast_path_against_openssl_s_server(pki: PKI, version: str, suite: str) -> None:
    """Every AEAD suite round-trips through aiotls's record layer against ``openssl s_server``
    (``-rev`` answers each line reversed), in records of every size up to 2^14 bytes."""
    from tests.sockloop import OpenSSLProcess, SocketTLS, free_port, require_openssl

    openssl_bin = require_openssl()
    ctx = pki.client_context()
    ctx.minimum_version = ctx.maximum_version = VERSIONS[version]
    ctx.set_ciphers(suite)
    port = free_port()
    flag = "-tls1_3" if version == "TLSv1.3" else "-tls1_2"
    argv = [openssl_bin, "s_server", "-accept", f"127.0.0.1:{port}", "-cert", pki.server()[0],
            "-key", pki.server()[1], flag, "-naccept", "1", "-rev"]
    if version == "TLSv1.3":
        argv += ["-ciphersuites", suite]
    else:
        argv += ["-cipher", suite]
    with OpenSSLProcess(argv) as server:
        server.wait_for_output("ACCEPT", 20)
        with SocketTLS.connect(ctx, ("127.0.0.1", port), server_hostname="localhost",
                               timeout=20) as tls:
            tls.handshake()
            assert tls.conn.cipher()[0] == suite
            assert tls.conn._engine.records_taken_over
            # s_server -rev works line by line (lines under its 16 KiB buffer); a batch of
            # lines sent at once spans several full records.
            lines = [os.urandom(n).hex().encode() for n in (5, 3000, 4000, 4000, 4000, 4000)]
            tls.send(b"".join(line + b"\n" for line in lines))
            for line in lines:
                assert tls.recv_line() == line[::-1] + b"\n"
            tls.close()
        rc, output = server.wait(20)
    assert rc == 0, output
    assert f"Ciphersuite: {suite}" in output or suite in output


# --- close_notify, handled by the record layer itself ---------------------------------------


def _no_engine_records(monkeypatch: pytest.MonkeyPatch, *conns: aiotls.TLSConnection) -> None:
    def fail(record: bytes) -> None:
        raise AssertionError("a close_notify went to the engine")

    for conn in conns:
        monkeypatch.setattr(conn._engine, "control_record", fail)
        monkeypatch.setattr(conn._engine, "_send_alert", fail)


@pytest.mark.parametrize(("version", "suite"), SUITES)
@pytest.mark.parametrize("closer", ["client", "server"])
def test_close_notify_is_sealed_and_opened_by_the_record_layer(
        pki: PKI, monkeypatch: pytest.MonkeyPatch, version: str, suite: str, closer: str) -> None:
    client, server = pair(pki, version, suite)
    _no_engine_records(monkeypatch, client, server)
    first, second = (client, server) if closer == "client" else (server, client)
    second.send_data(b"before the close")
    first.close()
    sent = first.data_to_send()
    assert sent[0] == (23 if version == "TLSv1.3" else 21)
    second.receive_data(sent)
    assert second.events() == [CloseNotifyReceived(), ConnectionTerminated(error=None)]
    reply = second.data_to_send()
    assert len(reply) > len(sent) + len(b"before the close")  # the data, then the answer
    first.receive_data(reply)
    assert first.events() == [DataReceived(b"before the close"), CloseNotifyReceived(),
                              ConnectionTerminated(error=None)]
    assert first.state is second.state is aiotls.ConnectionState.CLOSED
    assert first.data_to_send() == b"" and second.data_to_send() == b""


@pytest.mark.parametrize(("version", "suite"), SUITES)
def test_close_notify_with_openssl_both_ways(pki: PKI, version: str, suite: str) -> None:
    """OpenSSL accepts aiotls's close_notify and its answer, and aiotls accepts OpenSSL's."""
    for aiotls_closes in (True, False):
        ctx = pki.client_context()
        ctx.minimum_version = ctx.maximum_version = VERSIONS[version]
        ctx.set_ciphers(suite)
        conn = aiotls.TLSConnection(ctx, server_hostname="localhost")
        peer = StdlibPeer(pki.stdlib_server_context(), server_side=True)
        run(conn, peer)
        assert conn.cipher()[0] == suite and conn._engine.records_taken_over, conn.error
        conn.events()
        if aiotls_closes:
            conn.close()
            peer.incoming.write(conn.data_to_send())
            peer.obj.unwrap()  # reads our close_notify (raises if it is bad) and answers
            conn.receive_data(peer.outgoing.read())
        else:
            with pytest.raises(ssl.SSLWantReadError):
                peer.obj.unwrap()  # sends close_notify, waits for ours
            conn.receive_data(peer.outgoing.read())
            peer.incoming.write(conn.data_to_send())
            peer.obj.unwrap()  # now complete: our answer was accepted
        assert conn.events() == [CloseNotifyReceived(), ConnectionTerminated(error=None)]


@pytest.mark.parametrize("version", VERSIONS)
def test_close_notify_at_fatal_level_still_closes(pki: PKI, version: str) -> None:
    client, server = pair(pki, version, SUITES[0][1] if version == "TLSv1.3" else SUITES[3][1])
    server.receive_data(client._engine.seal_record(21, b"\x02\x00"))
    assert server.events() == [CloseNotifyReceived(), ConnectionTerminated(error=None)]


@pytest.mark.parametrize("version", VERSIONS)
def test_other_alerts_still_reach_the_engine(pki: PKI, version: str) -> None:
    client, server = pair(pki, version, SUITES[0][1] if version == "TLSv1.3" else SUITES[3][1])
    server.receive_data(client._engine.seal_record(21, b"\x02\x50"))  # internal_error
    events = server.events()
    assert len(events) == 1 and isinstance(events[0], ConnectionTerminated)
    assert isinstance(events[0].error, aiotls.AlertReceived)
    assert events[0].error.alert_number == 80


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("bit", [0, 8 * 5 + 3, -1])
def test_tampered_close_notify_is_rejected(pki: PKI, version: str, bit: int) -> None:
    client, server = pair(pki, version, SUITES[0][1] if version == "TLSv1.3" else SUITES[3][1])
    client.close()
    record = bytearray(client.data_to_send())
    bit = bit if bit >= 0 else 8 * len(record) - 1
    if bit < 8 * 5:
        record[0] ^= 0x40  # content type 23/21 -> 87/85: not TLS at all
    else:
        record[bit // 8] ^= 1 << (bit % 8)
    server.receive_data(bytes(record))
    events = server.events()
    assert CloseNotifyReceived() not in events
    assert isinstance(events[-1], ConnectionTerminated) and events[-1].error is not None


def test_lent_plaintext_is_not_shared_while_lent(pki: PKI) -> None:
    """With lend_plaintext (the asyncio adapter's for BufferedProtocols) LentDataReceived
    carries a view of a decryption buffer that no other connection writes into until
    released."""
    from aiotls import _receive

    pairs = [pair(pki, "TLSv1.3", SUITES[0][1]) for _ in range(2)]
    blobs = [os.urandom(70_000), os.urandom(50_000)]
    views = []
    for (client, server), blob in zip(pairs, blobs, strict=True):
        server.lend_plaintext = True
        client.send_data(blob)
        server.receive_data(client.data_to_send())
        (event,) = server.events()
        assert isinstance(event, LentDataReceived) and isinstance(event.data, memoryview)
        views.append(event.data)
    # both are lent at once: different buffers, both intact
    assert views[0].obj is not views[1].obj
    assert [bytes(v) for v in views] == blobs
    buffers = [view.obj for view in views]
    for (_, server), view in zip(pairs, views, strict=True):
        view.release()
        server.release_plaintext()
        assert not server.plaintext_lent
    assert any(_receive._local.plain is b for b in buffers)  # pooled for the next batch
    # without lending: bytes, and nothing held
    client, server = pairs[0]
    server.lend_plaintext = False
    client.send_data(b"plain bytes")
    server.receive_data(client.data_to_send())
    assert server.events() == [DataReceived(b"plain bytes")] and not server.plaintext_lent


@pytest.mark.parametrize("size", [0, 1, 100, 2048, 2049, 5000])
def test_short_records_take_the_one_record_paths(pki: PKI, size: int) -> None:
    """Short writes and reads (interactive traffic) have their own one-record paths in the
    TLS 1.3 record layer: same bytes as OpenSSL expects, empty records deliver nothing,
    and anything unusual (padding, control records, bad tags) goes the general way."""
    client, server = pair(pki, "TLSv1.3", SUITES[0][1])
    blob = os.urandom(size)
    client.send_data(blob)
    wire = client.data_to_send()
    assert server._engine.records_taken_over
    small = server._engine.opener.open_small(wire)
    if size == 0:
        assert wire == b"" and small is None  # send_data(b"") sends nothing
    elif size <= 2048:
        assert small == blob
    else:
        assert small is None  # left to the general path, nothing consumed
        server.receive_data(wire)
        assert data_of(server) == blob
    # empty application data: no event
    client.send_data(b"")
    server.receive_data(client._engine.seal_record(23, b""))
    assert server.events() == []
    # a tampered short record is refused and not delivered
    client.send_data(b"hello")
    bad = bytearray(client.data_to_send())
    bad[-1] ^= 1
    with pytest.raises(_record.RecordError, match="bad_record_mac"):
        server._engine.opener.open_small(bad)  # (nothing consumed)
    server.receive_data(bytes(bad))
    events = server.events()
    assert not any(isinstance(e, DataReceived) for e in events)
    assert isinstance(events[-1], ConnectionTerminated) and events[-1].error is not None


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_records_split_anywhere_across_reads(data: st.DataObject) -> None:
    """Ciphertext arriving in arbitrary pieces (a header cut in two, one byte at a time,
    several records at once) decrypts to exactly what was sent, then the close."""
    version, suite = data.draw(st.sampled_from(SUITES))
    client, server = pair(_PKI, version, suite)
    server.lend_plaintext = data.draw(st.booleans())
    sizes = data.draw(st.lists(st.integers(0, 40_000), min_size=1, max_size=5))
    blobs = [os.urandom(n) for n in sizes]
    for blob in blobs:
        client.send_data(blob)
    client.close()
    wire = client.data_to_send()
    cuts = sorted(data.draw(st.lists(st.integers(1, len(wire) - 1), max_size=12, unique=True)))
    received = bytearray()
    events = []
    for start, stop in zip([0, *cuts], [*cuts, len(wire)], strict=True):
        server.receive_data(wire[start:stop])
        for event in server.events():
            if isinstance(event, DataReceived | LentDataReceived):
                received += event.data
            else:
                events.append(event)
        server.release_plaintext()
    assert bytes(received) == b"".join(blobs)
    assert events == [CloseNotifyReceived(), ConnectionTerminated(error=None)]


def test_bad_header_after_a_split_record_fails_at_once(pki: PKI) -> None:
    client, server = pair(pki, "TLSv1.3", SUITES[0][1])
    client.send_data(os.urandom(1000))
    wire = client.data_to_send()
    server.receive_data(wire[:3])  # a record header cut short
    server.receive_data(b"\xff\xff")  # ...completed as nonsense: refused now, not later
    (event,) = server.events()
    assert isinstance(event, ConnectionTerminated) and event.error is not None


def test_connections_share_one_seal_buffer_and_idle_ones_hold_none(pki: PKI) -> None:
    """TLS 1.3 sealing goes through one per-thread buffer: a record layer keeps no buffer
    of its own (16 KiB per connection before), and connections sealing in turn on one
    thread still produce what their peers decrypt."""
    import sys

    pairs = [pair(pki, "TLSv1.3", "TLS_AES_128_GCM_SHA256") for _ in range(3)]
    for client, _ in pairs:
        fast = client._engine.records
        assert sys.getsizeof(fast) + sum(sys.getsizeof(v) for v in vars(fast).values()
                                         if not callable(v)) < 4096
    payloads = [[os.urandom(n) for n in (70_000, 16_384, 1, 40_000)] for _ in pairs]
    for i in range(4):  # interleaved: each connection's records between the others'
        for (client, _), parts in zip(pairs, payloads, strict=True):
            client.send_data(parts[i])
    for (client, server), parts in zip(pairs, payloads, strict=True):
        server.receive_data(client.data_to_send())
        assert data_of(server) == b"".join(parts)


# --- one owner of record protection: every record is decrypted once --------------------------


class _CountingAEAD:
    """An AEAD object that counts decryptions (and otherwise is the real one)."""

    def __init__(self, aead: Any, counter: list[int]) -> None:
        self._aead = aead
        self._counter = counter

    def decrypt(self, *args: Any) -> Any:
        self._counter[0] += 1
        return self._aead.decrypt(*args)

    def decrypt_into(self, *args: Any) -> Any:
        self._counter[0] += 1
        return self._aead.decrypt_into(*args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._aead, name)


def _encrypted_records(stream: bytes, tls13: bool) -> int:
    """How many protected records a byte stream from one side holds (TLS 1.3: every record
    of outer type application_data; TLS 1.2: every record after ChangeCipherSpec)."""
    count, pos, protected = 0, 0, False
    while pos < len(stream):
        ctype = stream[pos]
        length = int.from_bytes(stream[pos + 3:pos + 5], "big")
        if (tls13 and ctype == 23) or (not tls13 and protected):
            count += 1
        protected = protected or ctype == 20
        pos += 5 + length
    assert pos == len(stream)
    return count


@pytest.mark.parametrize("version", VERSIONS)
def test_every_record_is_decrypted_exactly_once(pki: PKI, monkeypatch: pytest.MonkeyPatch,
                                                version: str) -> None:
    """Handshake records, session tickets, KeyUpdates, data and close_notify: each protected
    record is opened once, by the one record layer (control records are not handed back to
    the engine as ciphertext to be decrypted again)."""
    from aiotls import _crypto

    counter = [0]
    for name, factory in list(_crypto._AEAD_FACTORIES.items()):
        monkeypatch.setitem(_crypto._AEAD_FACTORIES, name,
                            lambda key, _f=factory: _CountingAEAD(_f(key), counter))
    ctx = pki.client_context()
    ctx.minimum_version = ctx.maximum_version = VERSIONS[version]
    client = aiotls.TLSConnection(ctx, server_hostname="localhost")
    server = aiotls.TLSConnection(pki.server_context(), server_side=True)
    streams = {client: bytearray(), server: bytearray()}

    def shuttle() -> None:
        for _ in range(50):
            moved = False
            for sender, receiver in ((client, server), (server, client)):
                out = sender.data_to_send()
                if out:
                    streams[sender] += out
                    receiver.receive_data(out)
                    moved = True
            if not moved:
                return

    shuttle()
    assert client.handshake_complete and server.handshake_complete
    for i in range(3):
        server.send_data(b"small %d" % i)
        client.send_data(os.urandom(40_000))
        shuttle()
    if version == "TLSv1.3":
        server.update_keys(request_peer_update=True)  # a KeyUpdate each way
        server.send_data(b"after the update")
        shuttle()
        client.update_keys(request_peer_update=False)
        client.send_data(b"x")
        shuttle()
    server.close()
    shuttle()
    assert client.error is None and server.error is None
    tls13 = version == "TLSv1.3"
    received = _encrypted_records(bytes(streams[server]), tls13) + \
        _encrypted_records(bytes(streams[client]), tls13)
    assert received > 10
    assert counter[0] == received
