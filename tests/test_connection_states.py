"""TLSConnection's state discipline: the transition table in aiotls/_state.py is
complete and true.

Each rule of ``_TRANSITIONS`` has a scenario here that reaches it through the public API
(one, a failure of a half-closed connection, can only come from a local failure and uses
the internal verb ``_fail``).  A spy on ``_set_state`` -- the only writer of the state --
records what each connection went through; the public ``state`` and ``peer_closed`` must
never change behind its back.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from typing import Any

import pytest

import aiotls
import aiotls._state as state_module
from aiotls import ConnectionState, TLSConnection
from aiotls.events import CloseNotifyReceived, ConnectionTerminated
from tests.helpers import PKI, handshake, pump

Phase = tuple[ConnectionState, bool]
#: (phase before, trigger name or None, phase after), per connection
Record = tuple[Phase, str | None, Phase]


def _phase(conn: TLSConnection) -> Phase:
    return conn.state, conn.peer_closed


@pytest.fixture
def transitions(monkeypatch: pytest.MonkeyPatch) -> dict[int, list[Record]]:
    """Every call of ``TLSConnection._set_state`` from now on, by connection."""
    seen: dict[int, list[Record]] = {}
    original = TLSConnection._set_state

    def spy(self: TLSConnection, *args: Any) -> None:
        before = _phase(self)
        trigger = args[1].name if len(args) > 1 else None
        original(self, *args)
        seen.setdefault(id(self), []).append((before, trigger, _phase(self)))

    monkeypatch.setattr(TLSConnection, "_set_state", spy)
    return seen


def _initial() -> Phase:
    return ConnectionState.HANDSHAKING, False


def _open_pair(pki: PKI, *, client_ctx: aiotls.TLSContext | None = None
               ) -> tuple[TLSConnection, TLSConnection]:
    client, server = handshake(client_ctx or pki.client_context(), pki.server_context())
    client.events(), server.events()
    return client, server


def _half_closed_server(pki: PKI) -> TLSConnection:
    cctx = pki.client_context()
    cctx.maximum_version = ssl.TLSVersion.TLSv1_3
    client = TLSConnection(cctx, server_hostname="localhost")
    server = TLSConnection(pki.server_context(), server_side=True, half_close=True)
    pump(client, server)
    client.close()
    server.receive_data(client.data_to_send())
    assert _phase(server) == (ConnectionState.OPEN, True)
    return server


def _handshake_completes(pki: PKI) -> TLSConnection:
    client, _ = handshake(pki.client_context(), pki.server_context())
    return client


def _close_during_handshake(pki: PKI) -> TLSConnection:
    client = TLSConnection(pki.client_context(), server_hostname="localhost")
    client.close()
    return client


def _garbage_during_handshake(pki: PKI) -> TLSConnection:
    server = TLSConnection(pki.server_context(), server_side=True)
    server.receive_data(b"GET / HTTP/1.1\r\n\r\n")
    return server


def _close_when_open(pki: PKI) -> TLSConnection:
    client, _ = _open_pair(pki)
    client.close()
    return client


def _peer_closes_when_open(pki: PKI) -> TLSConnection:
    client, server = _open_pair(pki)
    client.close()
    server.receive_data(client.data_to_send())
    return server


def _peer_half_closes(pki: PKI) -> TLSConnection:
    return _half_closed_server(pki)


def _tolerated_eof(pki: PKI) -> TLSConnection:
    cctx = pki.client_context()
    cctx.suppress_ragged_eofs = True
    client, _ = _open_pair(pki, client_ctx=cctx)
    client.receive_data(b"")
    return client


def _eof_without_close_notify(pki: PKI) -> TLSConnection:
    client, _ = _open_pair(pki)
    client.receive_data(b"")
    return client


def _close_after_peer_half_closed(pki: PKI) -> TLSConnection:
    server = _half_closed_server(pki)
    server.close()
    return server


def _local_failure_after_peer_half_closed(pki: PKI) -> TLSConnection:
    # A half-closed connection reads nothing more from the peer, so only a local failure
    # can end it: the internal verb every failure goes through.
    server = _half_closed_server(pki)
    server._fail(aiotls.InternalError("a simulated local failure"))
    return server


def _peer_answers_our_close(pki: PKI) -> TLSConnection:
    client, server = _open_pair(pki)
    client.close()
    server.receive_data(client.data_to_send())
    client.receive_data(server.data_to_send())
    return client


def _eof_after_our_close(pki: PKI) -> TLSConnection:
    client, _ = _open_pair(pki)
    client.close()
    client.receive_data(b"")
    return client


def _garbage_after_our_close(pki: PKI) -> TLSConnection:
    client, _ = _open_pair(pki)
    client.close()
    client.receive_data(b"\x17\x03\x03\x00\x20" + b"\x00" * 32)
    return client


_H, _O, _C = ConnectionState.HANDSHAKING, ConnectionState.OPEN, ConnectionState.CLOSING
#: (state, peer_closed, trigger) -> a public sequence that makes a connection take that rule
SCENARIOS: dict[tuple[ConnectionState, bool, str], Callable[[PKI], TLSConnection]] = {
    (_H, False, "HANDSHAKE_COMPLETED"): _handshake_completes,
    (_H, False, "CLOSE"): _close_during_handshake,
    (_H, False, "FATAL_ERROR"): _garbage_during_handshake,
    (_O, False, "CLOSE"): _close_when_open,
    (_O, False, "PEER_CLOSE_NOTIFY"): _peer_closes_when_open,
    (_O, False, "PEER_HALF_CLOSE"): _peer_half_closes,
    (_O, False, "EOF_TOLERATED"): _tolerated_eof,
    (_O, False, "FATAL_ERROR"): _eof_without_close_notify,
    (_O, True, "CLOSE"): _close_after_peer_half_closed,
    (_O, True, "FATAL_ERROR"): _local_failure_after_peer_half_closed,
    (_C, False, "PEER_CLOSE_NOTIFY"): _peer_answers_our_close,
    (_C, False, "EOF_AFTER_CLOSE"): _eof_after_our_close,
    (_C, False, "FATAL_ERROR"): _garbage_after_our_close,
}


def _rules() -> set[tuple[ConnectionState, bool, str]]:
    table = state_module._TRANSITIONS
    return {(state, peer_closed, trigger.name)
            for (state, peer_closed), rules in table.items() for trigger in rules}


def test_the_scenarios_cover_every_rule_of_the_table() -> None:
    assert set(SCENARIOS) == _rules()


def test_the_table_is_closed_and_every_open_phase_can_fail() -> None:
    """Every rule leads to a phase the table knows; CLOSED and FAILED are final; every
    other phase has a FATAL_ERROR rule to FAILED, so ending a connection on an error can
    never itself be illegal; every phase is reachable from the initial one."""
    table = state_module._TRANSITIONS
    trigger = state_module._Trigger
    for phase, rules in table.items():
        assert all(target in table for target in rules.values())
        if phase[0] in (ConnectionState.CLOSED, ConnectionState.FAILED):
            assert rules == {}
        else:
            assert rules[trigger.FATAL_ERROR] == (ConnectionState.FAILED, phase[1])
    reached = {state_module._INITIAL_PHASE}
    frontier = list(reached)
    while frontier:
        for target in table[frontier.pop()].values():
            if target not in reached:
                reached.add(target)
                frontier.append(target)
    assert reached == set(table)


@pytest.mark.parametrize("rule", sorted(SCENARIOS, key=lambda r: (r[0].value, r[1], r[2])),
                         ids=lambda r: f"{r[0].value}{'+peer_closed' if r[1] else ''}-{r[2]}")
def test_each_rule_is_reached_through_the_public_api(
        pki: PKI, transitions: dict[int, list[Record]],
        rule: tuple[ConnectionState, bool, str]) -> None:
    conn = SCENARIOS[rule](pki)
    state, peer_closed, trigger = rule
    target = state_module._TRANSITIONS[(state, peer_closed)][
        state_module._Trigger[trigger]]
    assert ((state, peer_closed), trigger, target) in transitions[id(conn)]
    # the connection's end is announced exactly when it reaches a final state
    ended = [e for e in conn.events() if isinstance(e, ConnectionTerminated)]
    assert len(ended) == (1 if conn.state in (ConnectionState.CLOSED,
                                              ConnectionState.FAILED) else 0)
    assert (conn.error is not None) == (conn.state is ConnectionState.FAILED)


@pytest.mark.parametrize("scenario", list(SCENARIOS.values()), ids=lambda f: f.__name__[1:])
def test_the_state_changes_only_through_set_state(
        pki: PKI, transitions: dict[int, list[Record]],
        scenario: Callable[[PKI], TLSConnection]) -> None:
    """What the spy saw of a connection is one unbroken chain from the initial phase to
    the public (state, peer_closed) it ends in: nothing wrote the state behind
    ``_set_state``'s back.  (Fails on the code before the table: ``_fail`` set FAILED and
    the half-close path set peer_closed directly.)"""
    conn = scenario(pki)
    chain = transitions.get(id(conn), [])
    phase = _initial()
    for before, _, after in chain:
        assert before == phase, chain
        phase = after
    assert phase == _phase(conn), chain


def test_an_illegal_transition_raises_an_internal_error_naming_it(pki: PKI) -> None:
    client = TLSConnection(pki.client_context(), server_hostname="localhost")
    trigger = state_module._Trigger
    with pytest.raises(aiotls.InternalError) as info:
        client._set_state(ConnectionState.CLOSING, trigger.CLOSE)  # (close() ends it at once)
    err = info.value
    assert err.code == "illegal-state-transition"
    assert err.alert is aiotls.AlertDescription.internal_error
    assert "client" in err.what and "handshaking -> closing" in err.what
    assert trigger.CLOSE.value in err.what
    assert client.state is ConnectionState.HANDSHAKING  # nothing changed

    client.close()  # final: no rule leads anywhere from CLOSED
    with pytest.raises(aiotls.InternalError) as info:
        client._set_state(ConnectionState.FAILED, trigger.FATAL_ERROR)
    assert "closed -> failed" in info.value.what
    assert client.state is ConnectionState.CLOSED


def test_a_half_closed_connections_close_ends_it_at_once(pki: PKI) -> None:
    """The rule the peer_closed half of the phase exists for: close() after the peer's
    close_notify goes straight to CLOSED (no answer to wait for), not to CLOSING."""
    server = _half_closed_server(pki)
    events = server.events()
    assert isinstance(events[-1], CloseNotifyReceived)
    server.close()
    assert _phase(server) == (ConnectionState.CLOSED, True)
    assert server.events() == [ConnectionTerminated(error=None)]
