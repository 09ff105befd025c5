"""Events returned by :meth:`aiotls.TLSConnection.next_event`.

Events are frozen, slotted dataclasses.  A connection produces, in order:
at most one :class:`HandshakeCompleted`; any number of :class:`DataReceived` (and, on a
connection made with ``lend_plaintext=True``, :class:`LentDataReceived`);
at most one :class:`CloseNotifyReceived`; and exactly one
:class:`ConnectionTerminated`, always last.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import TLSError

__all__ = [
    "ClientCertificateReceived",
    "CloseNotifyReceived",
    "ConnectionTerminated",
    "DataReceived",
    "Event",
    "HandshakeCompleted",
    "LentDataReceived",
]


@dataclass(frozen=True, slots=True)
class HandshakeCompleted:
    """The handshake finished; application data can flow both ways."""

    #: Negotiated protocol version, stdlib spelling: ``"TLSv1.3"`` or ``"TLSv1.2"``.
    version: str
    #: Negotiated cipher suite, OpenSSL spelling (as :meth:`ssl.SSLSocket.cipher` shows it).
    cipher: str
    #: Key-exchange group, e.g. ``"x25519"``; ``None`` if not known.
    group: str | None
    #: ALPN protocol selected, or ``None`` if ALPN was not negotiated.
    alpn_protocol: str | None
    #: The peer's certificate chain as DER bytes, leaf first (empty if none was sent).
    peer_certificates: tuple[bytes, ...]
    #: The SNI host name: the one we asked for (client) or the client asked for (server).
    server_name: str | None
    #: True if the session was resumed rather than fully negotiated.
    session_reused: bool


@dataclass(frozen=True, slots=True)
class ClientCertificateReceived:
    """TLS 1.3 server: the client answered :meth:`~aiotls.TLSConnection.verify_client_post_handshake`
    with a certificate that verified (post-handshake authentication)."""

    #: The client's certificate chain as DER bytes, leaf first.
    peer_certificates: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class DataReceived:
    """Decrypted application data from the peer."""

    #: The plaintext, an immutable ``bytes`` object the receiver keeps.
    data: bytes


@dataclass(frozen=True, slots=True)
class LentDataReceived:
    """Decrypted application data from the peer, *lent*: only on a connection with
    :attr:`~aiotls.TLSConnection.lend_plaintext` on, instead of (some)
    :class:`DataReceived` events.

    ``data`` is a view of a decryption buffer the connection borrowed, valid until
    :meth:`~aiotls.TLSConnection.release_plaintext`: copy out what you keep before calling
    it.  Afterwards the buffer is reused and the view's contents are undefined.  For
    adapters that copy plaintext somewhere at once (a ``BufferedProtocol``'s buffer, a
    caller's ``recv_into`` buffer): this spares allocating a ``bytes`` per batch.
    """

    #: A memoryview of the plaintext, valid until ``release_plaintext()``.
    data: memoryview


@dataclass(frozen=True, slots=True)
class CloseNotifyReceived:
    """The peer sent close_notify: it will send no more data (a clean TLS EOF).

    aiotls has already queued its own close_notify in reply, so ``send_data`` is no
    longer possible and ``ConnectionTerminated(error=None)`` follows -- except on a TLS 1.3
    connection made with ``half_close=True``: there our side stays open until
    :meth:`~aiotls.TLSConnection.close`, which ends the connection.
    """


@dataclass(frozen=True, slots=True)
class ConnectionTerminated:
    """The TLS connection is over; this is the last event.

    ``error`` is ``None`` for a clean end (close_notify exchanged, or EOF
    tolerated by ``suppress_ragged_eofs``), otherwise the :class:`TLSError`
    that ended it.  Any alert owed to the peer is already in ``data_to_send()``.
    """

    #: Why the connection ended, or ``None`` for a clean close.
    error: TLSError | None = None
    #: True when the transport closed without close_notify and that was tolerated.
    truncated: bool = False


Event = (HandshakeCompleted | DataReceived | LentDataReceived | ClientCertificateReceived
         | CloseNotifyReceived | ConnectionTerminated)
