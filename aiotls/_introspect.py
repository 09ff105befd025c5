"""The ssl-named introspection of :class:`aiotls.TLSConnection` (``version()``,
``cipher()``, ``getpeercert()``, channel bindings, the chains...), apart so that each
module reads as one subject.  :class:`_Introspection` is a base of ``TLSConnection``
(its only subclass) and reads the connection's state."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import _verify
from ._engine import exporter
from ._state import ConnectionState
from .errors import TLSUsageError

#: The channel binding types :meth:`_Introspection.get_channel_binding` knows.
CHANNEL_BINDING_TYPES = ("tls-unique", "tls-exporter")
_ENDED = (ConnectionState.CLOSED, ConnectionState.FAILED)

if TYPE_CHECKING:
    from ._engine import Engine
    from .context import TLSContext
    from .errors import TLSError
    from .events import HandshakeCompleted


class _Introspection:
    """What a connection negotiated, with the stdlib's names."""

    if TYPE_CHECKING:
        # (the connection's state these methods use; see TLSConnection.__init__)
        context: TLSContext
        server_side: bool
        _engine: Engine
        _handshake_event: HandshakeCompleted | None
        _peer_chain: tuple[bytes, ...]
        _peer_closed: bool
        _unused: bytes
        _error: TLSError | None
        _state: ConnectionState

    def version(self) -> str | None:
        """``"TLSv1.3"``/``"TLSv1.2"``, or ``None`` before the handshake completed."""
        return self._handshake_event.version if self._handshake_event else None

    def cipher(self) -> tuple[str, str, int] | None:
        """``(name, protocol, secret_bits)`` like :meth:`ssl.SSLSocket.cipher`."""
        if self._handshake_event is None:
            return None
        name = self._engine.cipher_openssl_name()
        if name is None:
            return None
        return name[0], self._handshake_event.version, name[1]

    def selected_alpn_protocol(self) -> str | None:
        """The negotiated ALPN protocol, or ``None``."""
        return self._handshake_event.alpn_protocol if self._handshake_event else None

    def compression(self) -> None:
        """Always ``None``: TLS compression is insecure and never used."""
        return None

    def shared_ciphers(self) -> list[tuple[str, str, int]] | None:
        """Server side: the suites both the client offered and this context enables, in this
        context's order, as ``(name, protocol, secret_bits)`` like
        :meth:`ssl.SSLSocket.shared_ciphers`.  ``None`` on clients and before the
        handshake, as in the stdlib."""
        if not self.server_side or self._handshake_event is None:
            return None
        offered = set(self._engine.client_suites())
        return [(s.openssl_name, s.protocol, s.bits)
                for s in self.context._effective_suites() if s.id in offered]

    @property
    def session_reused(self) -> bool:
        """True if the session was resumed."""
        return bool(self._handshake_event and self._handshake_event.session_reused)

    @property
    def ignored_server_name(self) -> str | None:
        """Server side: the IP address the client sent as its SNI server name, if it did.

        RFC 6066 section 3 forbids IP literals in SNI, but some clients and scanners
        (sslscan) send one.  Like OpenSSL servers, aiotls ignores it -- the connection has
        no SNI (``HandshakeCompleted.server_name`` is ``None``) -- and keeps the literal
        here for diagnosis.  ``None`` on clients and when no IP literal was received.
        Available as soon as the ClientHello has been read.
        """
        return self._engine.ignored_sni()

    @property
    def requested_client_ca_names(self) -> tuple[bytes, ...] | None:
        """Client: ``None`` unless the server asked for a client certificate
        (CertificateRequest); then the DER distinguished names of the CAs it said it accepts
        (often none).  ``connect`` on the command line prints them."""
        return self._engine.requested_cas()

    @property
    def psk_identity(self) -> bytes | None:
        """The identity of the external PSK this handshake used (TLS 1.3; see
        :meth:`~aiotls.TLSContext.set_external_psks`), or ``None``: no external PSK (a
        certificate handshake, or a resumption with a session ticket).  With a PSK, no
        certificate was sent: the PSK authenticated both ends."""
        if self._handshake_event is None:
            return None
        used: bytes | None = self._engine._tl._aiotls_psk_used
        return used

    @property
    def group(self) -> str | None:
        """The key-exchange group, e.g. ``"x25519"``."""
        return self._handshake_event.group if self._handshake_event else None

    def getpeercert(self, binary_form: bool = False) -> Any:
        """The peer's certificate, like :meth:`ssl.SSLSocket.getpeercert`.

        ``binary_form=True`` gives DER bytes.  The dict form is empty when the
        certificate was not verified (``CERT_NONE``).  ``None`` if the peer sent none.
        Raises ``ValueError`` before the handshake completed.
        """
        if self._handshake_event is None:
            raise ValueError("handshake not done yet")
        chain = self._peer_chain or self._handshake_event.peer_certificates
        if not chain:
            return None
        if binary_form:
            return chain[0]
        if not self._engine.verified:
            return {}
        return _verify.peercert_dict(chain[0])

    def get_channel_binding(self, cb_type: str = "tls-unique") -> bytes | None:
        """Channel binding data, like :meth:`ssl.SSLSocket.get_channel_binding`.

        ``"tls-unique"`` (RFC 5929): the first Finished message's verify_data, for TLS 1.2;
        ``None`` for TLS 1.3, where RFC 8446 (C.5) leaves tls-unique undefined.
        ``"tls-exporter"`` (RFC 9266): 32 bytes exported with the label
        ``"EXPORTER-Channel-Binding"`` and no context, for TLS 1.3 and for TLS 1.2 with the
        extended master secret (refused without it, see :meth:`export_keying_material`).
        ``None`` before the handshake completed and once the connection is closed.  Other
        types raise ``ValueError``.
        """
        if cb_type not in CHANNEL_BINDING_TYPES:
            raise ValueError(f"{cb_type!r} channel binding type not implemented")
        if self._handshake_event is None or self._state in _ENDED:
            return None
        if cb_type == "tls-unique":
            return self._engine.tls_unique()
        return exporter.export(self._engine, b"EXPORTER-Channel-Binding", None, 32)

    def export_keying_material(self, label: str | bytes, context: bytes | None,
                               length: int) -> bytes:
        """``length`` bytes of keying material exported from the connection's secrets:
        RFC 8446 7.5 for TLS 1.3, RFC 5705 for TLS 1.2.  Both ends of a connection get
        the same bytes for the same arguments, as OpenSSL's ``SSL_export_keying_material``.

        :param label: the label a protocol registered for it (ASCII), e.g.
            ``"EXPORTER-my-protocol"``; TLS's own PRF labels (``"client finished"``,
            ``"server finished"``, ``"master secret"``, ``"key expansion"``,
            ``"extended master secret"``) are refused.
        :param context: a per-use value mixed in, or ``None``.  In TLS 1.2 ``None`` and
            ``b""`` give different bytes (RFC 5705 4); in TLS 1.3 the same.
        :param length: how many bytes, at least 1 (TLS 1.3: at most 255 hash lengths,
            8160 bytes with SHA-256 suites; TLS 1.2: at most 65535).

        Raises :class:`~aiotls.TLSUsageError` before the handshake completed, after the
        connection closed or failed, for a TLS 1.2 connection without the extended master
        secret (RFC 7627: its exported values would not be unique to it), and for the
        arguments above.
        """
        label_b, context_b, length = exporter.check_arguments(label, context, length)
        if self._error is not None:
            raise self._error
        if self._handshake_event is None:
            raise TLSUsageError("keying material can be exported only once the handshake "
                                "completed",
                                hint="wait for the HandshakeCompleted event (or do_handshake())")
        if self._state in _ENDED:
            raise TLSUsageError("keying material cannot be exported from a closed connection",
                                hint="export it while the connection is open, e.g. right "
                                "after the handshake")
        return exporter.export(self._engine, label_b, context_b, length)

    def get_verified_chain(self) -> list[bytes]:
        """The path the peer's certificate was verified along: DER, leaf first, ending with
        the trust anchor (like :meth:`ssl.SSLSocket.get_verified_chain`).  Empty when
        nothing was verified: ``CERT_NONE``, no certificate sent, or a resumed session."""
        return self._engine.verified_chain() if self._handshake_event else []

    def get_unverified_chain(self) -> list[bytes]:
        """The peer's chain as sent (DER, leaf first)."""
        return list(self._handshake_event.peer_certificates) if self._handshake_event else []

    @property
    def peer_closed(self) -> bool:
        """True once the peer's close_notify arrived (with ``half_close``, while our side
        may still send)."""
        return self._peer_closed

    @property
    def unused_data(self) -> bytes:
        """Bytes received after the peer's close_notify, which TLS does not cover.

        Protocols that go on in plaintext after TLS ends (STARTTLS-style downgrades,
        ``SSLObject.unwrap()``) hand them to the next reader; otherwise they are
        ignored.  Empty unless the peer closed with close_notify.  With ``half_close``,
        bytes fed after that are added, up to 256 KiB."""
        return self._unused

    @property
    def error(self) -> TLSError | None:
        """The error that ended the connection, if any."""
        return self._error
