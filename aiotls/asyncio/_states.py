"""The asyncio adapter's states, their transition tables and its flow-control limits.

:class:`~aiotls.asyncio.TLSProtocol` changes its own state and its application protocol's
only through these tables (see its module docstring); the transport it hands the
application (:mod:`aiotls.asyncio.transport`) reads the same states and limits.
"""

from __future__ import annotations

import enum

from ..errors import AlertDescription, InternalError

SSL_HANDSHAKE_TIMEOUT = 60.0
SSL_SHUTDOWN_TIMEOUT = 30.0
_HIGH_WATER_READ = 256 * 1024
_HIGH_WATER_WRITE = 512 * 1024
#: Writes of at least this much plaintext (a full record) reach the lower transport at the
#: end of the loop iteration, together with the other writes of that iteration, instead of
#: one by one.  A 64 KiB write is 64 KiB + 88 bytes of records: sent alone, the 88 bytes
#: leave as a segment of their own (loopback carries at most ~64 KiB per segment), and that
#: runt per write cost 10-30% of bulk throughput in A/B runs here, most of it kernel time.
_COALESCE_MIN = 16 * 1024


class _State(enum.Enum):
    #: members are singletons: hash them by identity (Enum's own __hash__ runs Python
    #: code, and these key the transition tables looked up on every state change)
    __hash__ = object.__hash__

    UNWRAPPED = "unwrapped"
    HANDSHAKING = "handshaking"
    WRAPPED = "wrapped"
    FLUSHING = "flushing"
    SHUTDOWN = "shutdown"
    CLOSED = "closed"


class _AppState(enum.Enum):
    __hash__ = object.__hash__  # (as above)

    INIT = "init"  # connection_made() not called yet
    CON_MADE = "connection made"
    EOF = "eof received"
    CON_LOST = "connection lost"


#: Every change of TLSProtocol's state (``_set_state`` refuses any other).  SHUTDOWN ->
#: SHUTDOWN is real: the connection's end, an abort or a timeout may each come after
#: close() got there first.
_TRANSITIONS: dict[_State, frozenset[_State]] = {
    _State.UNWRAPPED: frozenset({_State.HANDSHAKING, _State.CLOSED}),
    _State.HANDSHAKING: frozenset({_State.WRAPPED, _State.SHUTDOWN, _State.CLOSED}),
    _State.WRAPPED: frozenset({_State.FLUSHING, _State.SHUTDOWN, _State.CLOSED}),
    # (FLUSHING lasts only while close() runs: an error on the way goes to SHUTDOWN)
    _State.FLUSHING: frozenset({_State.SHUTDOWN}),
    _State.SHUTDOWN: frozenset({_State.SHUTDOWN, _State.CLOSED}),
    _State.CLOSED: frozenset(),
}
#: The application protocol's states: each of its callbacks at most once, in order.
_APP_TRANSITIONS: dict[_AppState, frozenset[_AppState]] = {
    _AppState.INIT: frozenset({_AppState.CON_MADE}),
    _AppState.CON_MADE: frozenset({_AppState.EOF, _AppState.CON_LOST}),
    _AppState.EOF: frozenset({_AppState.CON_LOST}),
    _AppState.CON_LOST: frozenset(),
}


def _illegal(what: str, role: str, old: str, new: str, event: str) -> InternalError:
    return InternalError(
        f"illegal {what} transition of a TLS {role}: {old} -> {new} on {event}",
        cause="a bug in aiotls: the asyncio adapter's transition table has no such rule",
        hint="please report it to aiotls with the calls and events that led here",
        alert=AlertDescription.internal_error, code="illegal-state-transition",
    )


def _flow_limits(high: int | None, low: int | None, default: int) -> tuple[int, int]:
    if high is None:
        high = default if low is None else 4 * low
    if low is None:
        low = high // 4
    if not high >= low >= 0:
        raise ValueError(f"high ({high!r}) must be >= low ({low!r}) must be >= 0")
    return high, low


def _check_timeout(value: float | None, default: float, name: str) -> float:
    if value is None:
        return default
    if value <= 0:
        raise ValueError(f"{name} should be a positive number, got {value}")
    return float(value)
