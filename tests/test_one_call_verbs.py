"""``TLSConnection.send`` and ``receive``: the verbs in one call, for interactive traffic.

``send(data)`` is ``send_data(data)`` then ``data_to_send()``; ``receive(data)`` is
``receive_data(data)`` that hands application data back itself when that is all the input
held and no event waits (``None``: read the events).  They must give the same bytes, in
the same order, with the same errors and events as the two-call forms, whatever the input.
"""

from __future__ import annotations

import array

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import aiotls
from aiotls import _record
from aiotls.events import (
    CloseNotifyReceived,
    ConnectionTerminated,
    DataReceived,
    Event,
)
from tests.helpers import PKI, VERSIONS, data_of, handshake, pump


def pair(pki: PKI, version: str = "TLSv1.3"
         ) -> tuple[aiotls.TLSConnection, aiotls.TLSConnection]:
    client_ctx, server_ctx = pki.client_context(), pki.server_context()
    for ctx in (client_ctx, server_ctx):
        ctx.minimum_version = ctx.maximum_version = VERSIONS[version]
    client, server = handshake(client_ctx, server_ctx)
    assert client.handshake_complete and server.handshake_complete
    client.events()
    server.events()
    return client, server


def received(conn: aiotls.TLSConnection, wire: bytes) -> tuple[bytes, list[Event]]:
    """What ``receive`` gives for ``wire``: the application data, in order, whether it came
    back directly or as events, and the other events."""
    data = bytearray()
    direct = conn.receive(wire)
    others = []
    if direct is not None:
        data += direct
    for event in conn.events():
        if isinstance(event, DataReceived):
            data += event.data
        else:
            others.append(event)
    return bytes(data), others


@pytest.mark.parametrize("version", ["TLSv1.2", "TLSv1.3"])
def test_send_is_send_data_then_data_to_send(pki: PKI, version: str) -> None:
    client, server = pair(pki, version)
    messages = [b"a", b"b" * 64, b"c" * 1000, b"d" * 16384, b"e" * 70000, b""]
    wire = b"".join(client.send(m) for m in messages)
    server.receive_data(wire)
    assert data_of(server) == b"".join(messages)
    # the same sequence numbers as the two calls: the peer goes on reading what follows
    client.send_data(b"after")
    server.receive_data(client.data_to_send())
    assert data_of(server) == b"after"


def test_send_includes_what_was_queued_before(pki: PKI) -> None:
    client, server = pair(pki)
    client.send_data(b"queued ")
    client.update_keys(request_peer_update=False)  # a KeyUpdate waits in the output too
    wire = client.send(b"then this")
    assert client.data_to_send() == b""
    server.receive_data(wire)
    assert data_of(server) == b"queued then this"


def test_send_before_the_handshake_queues_and_after_close_raises(pki: PKI) -> None:
    client = aiotls.TLSConnection(pki.client_context(), server_hostname="localhost")
    hello = client.send(b"early")  # HANDSHAKING: the data waits for the handshake
    assert hello and hello[0] == 22  # (what was due anyway: the ClientHello)
    server = aiotls.TLSConnection(pki.server_context(), server_side=True)
    server.receive_data(hello)
    pump(client, server)
    assert data_of(server) == b"early"
    client.close()
    with pytest.raises(aiotls.TLSUsageError, match="cannot send data"):
        client.send(b"late")


def test_send_past_the_key_update_mark_updates_the_keys(pki: PKI) -> None:
    client, server = pair(pki)
    client._engine.set_key_update_after(5)
    first_key = client._engine.record_keys(reading=False).key
    wire = b"".join(client.send(b"msg %d;" % i) for i in range(12))
    server.receive_data(wire)
    assert data_of(server) == b"".join(b"msg %d;" % i for i in range(12))
    assert client._engine.record_keys(reading=False).key != first_key


def test_send_with_the_sequence_exhausted_fails_as_send_data(pki: PKI) -> None:
    client, _ = pair(pki, "TLSv1.2")
    client._engine.set_sequence_number(reading=False, seq=_record.SEQ_LIMIT - 1)
    with pytest.raises(aiotls.TLSError, match="sequence number exhausted"):
        client.send(b"x")
    assert client.state is aiotls.ConnectionState.FAILED


def test_receive_returns_one_short_record_directly(pki: PKI) -> None:
    client, server = pair(pki)
    assert server.receive(client.send(b"ping")) == b"ping"
    assert server.events() == []  # no event for it
    empty = client._engine.seal_record(23, b"")  # (an empty record, as a peer may send)
    assert server.receive(empty) == b""  # no data either
    assert server.events() == [] and client.send(b"") == b""  # (send of nothing: no record)


@pytest.mark.parametrize("version", ["TLSv1.2", "TLSv1.3"])
def test_receive_of_anything_else_goes_to_the_events(pki: PKI, version: str) -> None:
    client, server = pair(pki, version)
    two = client.send(b"one") + client.send(b"two")
    assert server.receive(two) is None  # two records in one read
    assert data_of(server) == b"onetwo"
    big = client.send(b"z" * 20000)
    assert server.receive(big[:100]) is None  # a partial record: held
    assert server.receive(big[100:]) is None
    assert data_of(server) == b"z" * 20000
    if version == "TLSv1.2":
        assert server.receive(client.send(b"short")) is None  # TLS 1.2: always the events
        assert data_of(server) == b"short"


def test_receive_keeps_the_order_of_pending_events(pki: PKI) -> None:
    """With an event still unread, new data is queued behind it, not handed back first."""
    client, server = pair(pki)
    server.receive_data(client.send(b"first"))
    assert server.receive(client.send(b"second")) is None
    assert [e.data for e in server.events() if isinstance(e, DataReceived)] == [
        b"first", b"second"]


def test_receive_of_a_key_update_answers_it(pki: PKI) -> None:
    client, server = pair(pki)
    client.update_keys(request_peer_update=True)
    assert server.receive(client.data_to_send()) is None  # a control record
    assert server.events() == []
    client.receive_data(server.data_to_send())  # the server's own KeyUpdate
    assert client.receive(server.send(b"under new keys")) == b"under new keys"


def test_receive_of_close_notify_and_eof(pki: PKI) -> None:
    client, server = pair(pki)
    client.close()
    assert server.receive(client.data_to_send()) is None
    kinds = [type(e) for e in server.events()]
    assert kinds == [CloseNotifyReceived, ConnectionTerminated]
    client2, server2 = pair(pki)
    assert server2.receive(b"") is None  # an EOF: a truncation, reported as an event
    (event,) = server2.events()
    assert isinstance(event, ConnectionTerminated) and event.error is not None


def test_receive_of_a_forged_record_fails_as_receive_data(pki: PKI) -> None:
    client, server = pair(pki)
    record = bytearray(client.send(b"ping"))
    record[-1] ^= 1  # breaks the tag
    assert server.receive(bytes(record)) is None
    (event,) = server.events()
    assert isinstance(event, ConnectionTerminated)
    assert isinstance(event.error, aiotls.PeerMisbehaved) and event.error.alert == 20
    assert client.receive(server.data_to_send()) is None  # the bad_record_mac alert
    with pytest.raises(aiotls.TLSError):
        server.receive(b"more")  # after the end, as receive_data: raises


# --- differential: the one-call verbs against the two-call forms, on any traffic ------------

message = st.one_of(st.binary(max_size=40), st.binary(min_size=200, max_size=3000),
                    st.just(b"y" * 17000))
action = st.one_of(
    st.tuples(st.just("send"), message),
    st.tuples(st.just("key_update"), st.booleans()),
    st.tuples(st.just("split"), st.integers(min_value=1, max_value=60)),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(actions=st.lists(action, max_size=25), version=st.sampled_from(["TLSv1.2", "TLSv1.3"]))
def test_one_call_verbs_match_the_two_call_forms(pki: PKI, actions: list[tuple[str, object]],
                                                 version: str) -> None:
    """Random traffic (short and long messages, KeyUpdates, reads cut anywhere) through
    ``send``/``receive`` delivers exactly what was sent, in order, with the same other
    events as ``send_data``/``receive_data`` give for the same traffic."""
    one = pair(pki, version)
    two = pair(pki, version)
    sent = bytearray()
    got_one = bytearray()
    got_two = bytearray()
    other_one: list[str] = []
    other_two: list[str] = []
    cut = 0
    for kind, arg in actions:
        if kind == "split":
            cut = int(arg)  # type: ignore[call-overload]
            continue
        if kind == "send":
            data = bytes(arg)  # type: ignore[call-overload]
            sent += data
            wire_one = one[0].send(data)
            two[0].send_data(data)
            wire_two = two[0].data_to_send()
        else:
            if version != "TLSv1.3":
                continue
            for client, _ in (one, two):
                client.update_keys(request_peer_update=bool(arg))
            wire_one, wire_two = one[0].send(b""), two[0].data_to_send()
        assert len(wire_one) == len(wire_two)
        if not wire_one:
            continue  # (nothing to send: b"" would be an EOF)
        parts = [wire_one[:cut], wire_one[cut:]] if 0 < cut < len(wire_one) else [wire_one]
        for part in parts:
            data, others = received(one[1], part)
            got_one += data
            other_one += [type(e).__name__ for e in others]
        two[1].receive_data(wire_two)
        for event in two[1].events():
            if isinstance(event, DataReceived):
                got_two += event.data
            else:
                other_two.append(type(event).__name__)
        # the servers' answers (KeyUpdates) go back to the clients, which must accept them
        for client, server in (one, two):
            back = server.data_to_send()
            if back:
                client.receive_data(back)
                assert not [e for e in client.events() if isinstance(e, ConnectionTerminated)]
    assert bytes(got_one) == bytes(got_two) == bytes(sent)
    assert other_one == other_two == []
    assert one[1].state is two[1].state is aiotls.ConnectionState.OPEN



@pytest.mark.parametrize("buffer", [
    array.array("i", [1, 2, 3]),                          # 4-byte items, one short record
    array.array("d", range(5000)),                        # 8-byte items, several records
    memoryview(b"abcdefgh")[::2],                         # not contiguous
    memoryview(bytes(range(24))).cast("B", (4, 6)),       # two dimensions
    memoryview(b"x" * 10).cast("c"),                      # another one-byte format
], ids=["int-array", "double-array", "strided", "2-d", "char-format"])
@pytest.mark.parametrize("verb", ["send", "send_data"])
def test_any_bytes_like_object_is_sent_as_its_bytes(pki: PKI, buffer: object,
                                                    verb: str) -> None:
    """Lengths count bytes, not items: a memoryview of an array('i') of 3 items is 12 bytes
    (sealing it as 3 corrupted the record: the peer saw bad_record_mac)."""
    client, server = pair(pki)
    if verb == "send":
        wire = client.send(buffer)  # type: ignore[arg-type]
    else:
        client.send_data(buffer)  # type: ignore[arg-type]
        wire = client.data_to_send()
    server.receive_data(wire)
    assert data_of(server) == memoryview(buffer).tobytes()  # type: ignore[arg-type]
    assert server.state is aiotls.ConnectionState.OPEN


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(sizes=st.lists(st.integers(min_value=0, max_value=3000), min_size=1, max_size=6),
       flip=st.integers(min_value=0), bit=st.integers(min_value=0, max_value=7),
       version=st.sampled_from(["TLSv1.2", "TLSv1.3"]))
def test_a_damaged_record_ends_both_forms_alike(pki: PKI, sizes: list[int], flip: int,
                                                bit: int, version: str) -> None:
    """One bit flipped anywhere in a stream of records (header, body or tag): receive()
    and receive_data() deliver the same data before it, end the connection with the same
    error code and owe the peer the same alert."""
    outcomes = []
    for one_call in (True, False):
        client, server = pair(pki, version)
        wire = bytearray()
        for i, size in enumerate(sizes):
            wire += client.send(bytes([i % 251]) * size)
        if not wire:
            return
        wire[flip % len(wire)] ^= 1 << bit
        data = bytearray()
        if one_call:
            direct = server.receive(bytes(wire))
            data += direct or b""
        else:
            server.receive_data(bytes(wire))
        ends = []
        for event in server.events():
            if isinstance(event, DataReceived):
                data += event.data
            elif isinstance(event, ConnectionTerminated):
                ends.append(None if event.error is None else event.error.code)
        outcomes.append((bytes(data), ends, server.state, server.data_to_send()[:1]))
    assert outcomes[0][:3] == outcomes[1][:3]
    assert outcomes[0][3] == outcomes[1][3]  # (an alert record, or nothing, alike)
