"""The asyncio adapter's state discipline (aiotls/asyncio/protocol.py).

TLSProtocol's own state and the application protocol's state change only through
``_set_state`` / ``_set_app_state``, against the whitelists ``_TRANSITIONS`` and
``_APP_TRANSITIONS`` (as asyncio's sslproto does).  Here: the paths a real loopback
connection takes through them, the application callbacks' order, an illegal transition
raising, and a handshake completing after a timeout no longer reviving the connection.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import aiotls
import aiotls.asyncio as aa
from aiotls.asyncio import protocol as protocol_module
from tests.asyncio_memory import EOF, LOST, MADE, SNI, MemoryTransport, feed
from tests.helpers import PKI

HOST = "127.0.0.1"
_State = protocol_module._State
_AppState = protocol_module._AppState


class Recorder(asyncio.Protocol):
    """Notes the application callbacks down, in order."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.transport: Any = None
        self.lost = asyncio.Event()
        self.exc: BaseException | None = None

    def connection_made(self, transport: Any) -> None:
        self.calls.append(MADE)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.calls.append("data_received")

    def eof_received(self) -> bool | None:
        self.calls.append(EOF)
        return None

    def connection_lost(self, exc: BaseException | None) -> None:
        self.calls.append(LOST)
        self.exc = exc
        self.lost.set()


def _is_path(table: dict[Any, frozenset[Any]], start: Any, steps: list[Any]) -> bool:
    state = start
    for new in steps:
        if new not in table[state]:
            return False
        state = new
    return True


async def test_a_loopback_connection_walks_the_tables_in_order(
        pki: PKI, monkeypatch: pytest.MonkeyPatch) -> None:
    """Client closes, server answers: each side's states and its application's states,
    as recorded by spies on the two verbs, are paths through the whitelists, and the
    application sees connection_made -> data -> eof_received -> connection_lost."""
    states: dict[int, list[_State]] = {}
    app_states: dict[int, list[_AppState]] = {}
    set_state, set_app_state = aa.TLSProtocol._set_state, aa.TLSProtocol._set_app_state

    def spy_state(self: aa.TLSProtocol, new: _State, event: str) -> None:
        set_state(self, new, event)
        states.setdefault(id(self), []).append(new)

    def spy_app_state(self: aa.TLSProtocol, new: _AppState, event: str) -> None:
        set_app_state(self, new, event)
        app_states.setdefault(id(self), []).append(new)

    monkeypatch.setattr(aa.TLSProtocol, "_set_state", spy_state)
    monkeypatch.setattr(aa.TLSProtocol, "_set_app_state", spy_app_state)
    servers: list[Recorder] = []

    def make() -> Recorder:
        servers.append(Recorder())
        return servers[-1]

    async with asyncio.timeout(20):
        listener = await aa.create_server(make, HOST, 0, ssl=pki.server_context())
        try:
            port = listener.sockets[0].getsockname()[1]
            transport, client = await aa.create_connection(
                Recorder, HOST, port, ssl=pki.client_context(), server_hostname=SNI)
            client_tls = transport.get_extra_info("tls_connection")
            transport.write(b"hello")
            while not servers or "data_received" not in servers[0].calls:
                await asyncio.sleep(0.01)
            transport.close()
            await client.lost.wait()
            await servers[0].lost.wait()
            await asyncio.sleep(0.05)  # a late or duplicated callback would show up now
        finally:
            listener.close()
    server = servers[0]
    assert client.exc is None and server.exc is None
    assert server.calls == [MADE, "data_received", EOF, LOST]
    assert client.calls in ([MADE, LOST], [MADE, EOF, LOST])

    assert len(states) == 2 and len(app_states) == 2
    by_role = {}
    for key, path in states.items():
        assert _is_path(protocol_module._TRANSITIONS, _State.UNWRAPPED, path), path
        assert path[:2] == [_State.HANDSHAKING, _State.WRAPPED] and path[-1] is _State.CLOSED
        by_role["client" if _State.FLUSHING in path else "server"] = path
        app_path = app_states[key]
        assert _is_path(protocol_module._APP_TRANSITIONS, _AppState.INIT, app_path), app_path
        assert app_path[0] is _AppState.CON_MADE and app_path[-1] is _AppState.CON_LOST
    # the closing side went through FLUSHING (close_notify sent), the other did not
    assert by_role["client"][2:4] == [_State.FLUSHING, _State.SHUTDOWN]
    assert by_role["server"] == [_State.HANDSHAKING, _State.WRAPPED, _State.SHUTDOWN,
                                 _State.CLOSED]
    assert client_tls.state is aiotls.ConnectionState.CLOSED


async def test_an_illegal_transition_raises_an_internal_error(pki: PKI) -> None:
    loop = asyncio.get_running_loop()
    tls = aa.TLSProtocol(loop, Recorder(), pki.client_context(), None, server_hostname=SNI)
    with pytest.raises(aiotls.InternalError) as info:
        tls._set_state(_State.WRAPPED, "a test")  # no handshake yet: not even connected
    err = info.value
    assert err.code == "illegal-state-transition"
    assert "client" in err.what and "unwrapped -> wrapped" in err.what
    assert "a test" in err.what
    with pytest.raises(aiotls.InternalError) as info:
        tls._set_app_state(_AppState.EOF, "a test")  # eof_received before connection_made
    assert info.value.code == "illegal-state-transition"
    assert "init -> eof received" in info.value.what
    # nothing changed: the protocol still connects normally
    wire = MemoryTransport()
    wire.protocol = tls
    tls.connection_made(wire)
    assert wire.take()[:1] == b"\x16"  # the ClientHello


async def test_a_handshake_completing_after_its_timeout_does_not_revive_the_connection(
        pki: PKI) -> None:
    """The handshake timeout fires, the caller gets HandshakeTimeoutError, and the peer's
    flight arrives before the transport reported connection_lost: the application must
    not get connection_made (the code before the state table reopened the protocol and
    called it)."""
    loop = asyncio.get_running_loop()
    app = Recorder()
    waiter = loop.create_future()
    tls = aa.TLSProtocol(loop, app, pki.client_context(), waiter, server_hostname=SNI,
                         ssl_handshake_timeout=0.05)
    peer = aiotls.TLSConnection(pki.server_context(), server_side=True)
    wire = MemoryTransport()
    wire.protocol = tls
    tls.connection_made(wire)
    peer.receive_data(wire.take())
    flight = peer.data_to_send()  # enough for a TLS 1.3 client to complete
    async with asyncio.timeout(5):
        with pytest.raises(aa.HandshakeTimeoutError) as info:
            await waiter
    assert info.value.code == "handshake-timeout"
    assert wire.closing  # aborted; its connection_lost is due on the next iteration
    feed(tls, flight)
    for _ in range(10):  # (the transport's connection_lost runs meanwhile)
        await asyncio.sleep(0)
    assert app.calls == []
