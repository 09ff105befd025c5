"""The states of a :class:`~aiotls.TLSConnection` and every transition between them.

Every change of a :class:`~aiotls.TLSConnection`'s state goes through its ``_set_state``,
which asks :func:`next_phase`: only the rules of the table ``_TRANSITIONS`` are allowed
(the whole truth, as data -- the idea of h11's ``_state.py``; this is its picture)::

    HANDSHAKING ──► OPEN ──► CLOSING (we sent close_notify) ──► CLOSED
         │           │ │                                          ▲
         │           │ └──── peer's close_notify / tolerated EOF ─┤
         │           └─ half_close: peer's close_notify ─► OPEN* ─┘ close()
         ├──────────── close() during the handshake ──────────────┘
         └──── any fatal error, from any state but CLOSED ────► FAILED

``OPEN*`` is OPEN with :attr:`~aiotls.TLSConnection.peer_closed` set: that flag is part of the
state in the table (it decides what close() does), while :attr:`~aiotls.TLSConnection.state`
shows the states above.  The other flags are not states but records, so they stay out of
the table: ``handshake_complete`` (the handshake happened; still true once CLOSED or
FAILED), ``error`` (set together with FAILED), and ``_terminated`` (the one
ConnectionTerminated event is queued: true exactly in CLOSED and FAILED, set right after
``_set_state`` enters them).
"""

from __future__ import annotations

import enum

from .errors import AlertDescription, InternalError

__all__ = ["ConnectionState", "next_phase"]


class ConnectionState(enum.Enum):
    """Where a :class:`~aiotls.TLSConnection` is in its life."""

    #: members are singletons: hash them by identity (Enum's own __hash__ runs Python
    #: code, and these key the transition tables looked up on every state change)
    __hash__ = object.__hash__

    HANDSHAKING = "handshaking"
    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"
    FAILED = "failed"


class _Trigger(enum.Enum):
    """What moves a :class:`~aiotls.TLSConnection` from one state to another: the key of each
    rule in :data:`_TRANSITIONS`.  The value is the phrase errors show."""

    __hash__ = object.__hash__  # (as above)

    HANDSHAKE_COMPLETED = "the handshake completed"
    CLOSE = "close() was called"
    PEER_CLOSE_NOTIFY = "the peer's close_notify arrived"
    PEER_HALF_CLOSE = "the peer's close_notify arrived and half_close keeps our side open"
    EOF_TOLERATED = "EOF without close_notify, tolerated by suppress_ragged_eofs"
    EOF_AFTER_CLOSE = "EOF after our close_notify"
    FATAL_ERROR = "a fatal error"


_S = ConnectionState
_T = _Trigger
#: A connection's phase: its :class:`ConnectionState` and whether the peer's close_notify
#: has arrived (:attr:`~aiotls.TLSConnection.peer_closed`).  The second half is what ``half_close``
#: adds: a TLS 1.3 connection whose peer closed its direction stays OPEN for sending, and
#: close() then ends it at once instead of waiting in CLOSING for an answer.
_Phase = tuple[ConnectionState, bool]
_INITIAL_PHASE: _Phase = (_S.HANDSHAKING, False)
#: Every state change there is, as data (the idea of h11's ``_state.py``): phase -> trigger
#: -> next phase.  ``TLSConnection._set_state`` is the only writer of the state and refuses
#: anything not listed here (through :func:`next_phase`).  CLOSED and FAILED are final.
_TRANSITIONS: dict[_Phase, dict[_Trigger, _Phase]] = {
    (_S.HANDSHAKING, False): {
        _T.HANDSHAKE_COMPLETED: (_S.OPEN, False),
        _T.CLOSE: (_S.CLOSED, False),  # an abandoned handshake: nothing can follow it
        _T.FATAL_ERROR: (_S.FAILED, False),  # (EOF in the handshake is one)
    },
    (_S.OPEN, False): {
        _T.CLOSE: (_S.CLOSING, False),  # close_notify sent: the peer's answer is awaited
        _T.PEER_CLOSE_NOTIFY: (_S.CLOSED, True),  # answered with our close_notify at once
        _T.PEER_HALF_CLOSE: (_S.OPEN, True),
        _T.EOF_TOLERATED: (_S.CLOSED, False),
        _T.FATAL_ERROR: (_S.FAILED, False),
    },
    (_S.OPEN, True): {  # half-closed by the peer (TLS 1.3, half_close)
        _T.CLOSE: (_S.CLOSED, True),  # both directions are closed now
        _T.FATAL_ERROR: (_S.FAILED, True),
    },
    (_S.CLOSING, False): {
        _T.PEER_CLOSE_NOTIFY: (_S.CLOSED, True),
        _T.EOF_AFTER_CLOSE: (_S.CLOSED, False),
        _T.FATAL_ERROR: (_S.FAILED, False),
    },
    (_S.CLOSED, False): {},
    (_S.CLOSED, True): {},
    (_S.FAILED, False): {},
    (_S.FAILED, True): {},
}


def next_phase(phase: _Phase, new: ConnectionState, trigger: _Trigger, role: str) -> _Phase:
    """The phase after ``trigger`` in ``phase``, which must lead to state ``new``; anything
    the table does not allow raises :class:`~aiotls.errors.InternalError` (code
    ``illegal-state-transition``) naming the role, both states and the trigger."""
    target = _TRANSITIONS[phase].get(trigger)
    if target is None or target[0] is not new:
        old = phase[0].value + (" (peer closed)" if phase[1] else "")
        raise InternalError(
            f"illegal state transition of a TLS {role} connection: {old} -> {new.value} "
            f"on {trigger.value!r}",
            cause="a bug in aiotls: TLSConnection's transition table has no such rule",
            hint="please report it to aiotls with the calls and events that led here",
            alert=AlertDescription.internal_error, code="illegal-state-transition",
        )
    return target
