"""The ``ssl`` facade: an :class:`ssl.SSLObject` driven by :class:`aiotls.TLSConnection`.

Theory of operation
-------------------
Frameworks that do TLS over memory BIOs (asyncio's and uvloop's ``sslproto``, anyio's
``TLSStream``, trio's ``SSLStream``, and through them httpx and aiohttp) call
``context.wrap_bio(incoming, outgoing, ...)`` and then drive the returned object with a
handful of Python-level calls: ``do_handshake``, ``read``, ``write``, ``unwrap``,
``pending``, ``getpeercert``, ``version``, ``cipher``...  They push the bytes they receive
into ``incoming`` and send whatever appears in ``outgoing``; a call that cannot finish
raises :class:`ssl.SSLWantReadError` and is repeated after more bytes arrived.

:class:`TLSObject` keeps that contract on top of the sans-IO core.  Every call runs one
*pump*: bytes waiting in ``incoming`` go to ``TLSConnection.receive_data`` (``write_eof``
becomes ``receive_data(b"")``), the connection's events are taken (plaintext is kept
here until ``read`` asks for it), and ``data_to_send()`` is written to ``outgoing``.

Two details keep the stdlib's semantics:

* After a close_notify, the bytes that follow it in ``incoming`` belong to whoever
  unwrapped the connection (STARTTLS-style protocols go on in plaintext): the connection
  leaves them in ``TLSConnection.unused_data`` and the pump puts them back into
  ``incoming`` untouched.
* Fatal errors are raised as aiotls's :class:`~aiotls.TLSError` (an :class:`ssl.SSLError`;
  certificate failures are :class:`ssl.SSLCertVerificationError`, an EOF without
  close_notify is :class:`ssl.SSLEOFError`) -- never :class:`ssl.SSLSyscallError`, which
  asyncio and uvloop take as "try again" and would wait on forever.  The alert owed to
  the peer is in ``outgoing`` before the error is raised.
"""

from __future__ import annotations

import ssl
import weakref
from collections import deque
from typing import Any, NoReturn

from .connection import ConnectionState, TLSConnection, TLSSession
from .context import TLSContext
from .errors import TLSUsageError
from .events import (
    CloseNotifyReceived,
    ConnectionTerminated,
    DataReceived,
    LentDataReceived,
)

__all__ = ["RefusedTLSObject", "TLSObject"]

def want_read() -> ssl.SSLWantReadError:
    """The stdlib's "try again once more bytes came in" (shared with :mod:`aiotls.sync`)."""
    return ssl.SSLWantReadError(ssl.SSL_ERROR_WANT_READ, "The operation did not complete (read)")


def normalise_hostname(name: str | bytes | None) -> str | None:
    """A ``server_hostname`` as the stdlib keeps it: ``str``, IDNA A-label."""
    if name is None:
        return None
    if isinstance(name, bytes | bytearray):
        name = bytes(name).decode("ascii")
    if not isinstance(name, str):
        raise TypeError(f"server_hostname must be str or bytes, not {type(name).__name__}")
    if not name.isascii():
        name = name.encode("idna").decode("ascii")
    return name


class TLSObject(ssl.SSLObject):
    """An :class:`ssl.SSLObject` whose TLS is done by aiotls (made by
    :meth:`aiotls.TLSContext.wrap_bio`).

    Behaves like the stdlib's where frameworks depend on it.  The underlying
    :class:`~aiotls.TLSConnection` is :attr:`connection`: everything aiotls knows about the
    connection (``group``, the negotiated events, ``update_keys()``...) is there.
    """

    def __init__(self, context: TLSContext, incoming: ssl.MemoryBIO, outgoing: ssl.MemoryBIO,
                 *, server_side: bool = False, server_hostname: str | bytes | None = None,
                 session: Any = None) -> None:
        # (ssl.SSLObject.__init__ refuses to run: it has no public constructor.)
        if not isinstance(incoming, ssl.MemoryBIO) or not isinstance(outgoing, ssl.MemoryBIO):
            raise TypeError("incoming and outgoing must be ssl.MemoryBIO objects")
        self._incoming = incoming
        self._outgoing = outgoing
        self._server_side = bool(server_side)
        self._server_hostname = normalise_hostname(server_hostname)
        self._conn = self._new_connection(context, session)
        self._context = context
        self._session: TLSSession | None = session
        self._started = False
        self._plain: deque[bytes | memoryview] = deque()  # bytes, or lent views
        self._pos = 0  # bytes of _plain[0] already read
        self._plain_size = 0
        self._peer_closed = False  # the peer's close_notify arrived
        self._unwrapped = False  # unwrap() was called
        self._eof_fed = False
        self._held = b""  # our answer to the peer's close_notify, until its data is read
        self._eof_reported = False  # read() returned b"" for the peer's close_notify

    def _new_connection(self, context: TLSContext, session: TLSSession | None) -> TLSConnection:
        """The connection for ``context`` and ``session`` (at construction, or when either
        is replaced before the connection has started)."""
        if not isinstance(context, TLSContext):
            raise TypeError(f"context must be an aiotls.TLSContext, not {type(context).__name__}")
        # half_close: as with OpenSSL, a TLS 1.3 peer's close_notify is answered when the
        # application unwraps, and data can be written until then
        conn = TLSConnection(context, server_side=self._server_side,
                             server_hostname=self._server_hostname, session=session,
                             half_close=True, lend_plaintext=True)
        conn._sni_owner = weakref.ref(self)  # (what a server's sni_callback is given)
        # Plaintext is lent (LentDataReceived, valid until release_plaintext()): read()
        # copies it out once -- into the caller's buffer, or into the bytes it returns --
        # and gives the buffers back when all was read.
        return conn

    # --- identity ------------------------------------------------------------------------------

    @property
    def connection(self) -> TLSConnection:
        """The :class:`aiotls.TLSConnection` doing the TLS."""
        return self._conn

    @property  # type: ignore[override]
    def context(self) -> TLSContext:
        """The :class:`aiotls.TLSContext`.  It may be replaced (by another context for the
        same side) until the connection has started, and by a server's ``sni_callback``."""
        conn = self._conn
        return conn.context if conn is not None else self._context

    @context.setter
    def context(self, ctx: TLSContext) -> None:
        if not isinstance(ctx, TLSContext):
            raise TypeError(f"context must be an aiotls.TLSContext, not {type(ctx).__name__}")
        if ctx is self._context:
            return
        if self._started and self._conn._sni_switching:
            self._conn.context = ctx  # (a server's sni_callback switches the handshake)
            self._context = ctx
            return
        if self._started:
            raise TLSUsageError(
                "cannot change the context of a connection that has started",
                hint="set the context before the first do_handshake(), read() or write()",
            )
        self._conn = self._new_connection(ctx, self._session)
        self._context = ctx

    @property
    def server_side(self) -> bool:
        """True for the server role."""
        return self._server_side

    @property
    def server_hostname(self) -> str | None:
        """The host name given to wrap_bio() (always a ``str``), or ``None``."""
        return self._server_hostname

    @property  # type: ignore[override]
    def session(self) -> TLSSession | None:
        """The :class:`aiotls.TLSSession` to resume later (clients, after the handshake).

        Assign one before the handshake starts to resume it."""
        return self._conn.session if self._conn.handshake_complete else self._session

    @session.setter
    def session(self, session: TLSSession | None) -> None:
        if self._started:
            raise ValueError("Cannot set session after handshake.")
        if session is not None and not isinstance(session, TLSSession):
            raise TypeError("session must be an aiotls.TLSSession (from a connection made "
                            "with an aiotls.TLSContext)")
        self._conn = self._new_connection(self._context, session)
        self._session = session

    @property
    def session_reused(self) -> bool:
        """True if the session was resumed."""
        return self._conn.session_reused

    # --- the pump ------------------------------------------------------------------------------

    def _pump(self) -> None:
        """Feed what ``incoming`` holds, take the events, write what is owed to ``outgoing``."""
        self._started = True
        conn = self._conn
        incoming = self._incoming
        if (incoming.pending or incoming.eof) and not self._eof_fed \
                and not self._peer_closed and not self._ended():
            # (after the peer's close_notify, incoming holds the next protocol's bytes)
            if incoming.pending:
                self._receive(incoming.read())
            if incoming.eof and not incoming.pending and not self._peer_closed:
                self._eof_fed = True
                if not self._ended():
                    conn.receive_data(b"")
                    self._take_events()
        self._flush()

    def _flush(self) -> None:
        """Write what the connection owes the peer to ``outgoing`` -- except, after the
        peer's close_notify, while plaintext it sent before is still unread: then our
        answering close_notify waits here.  OpenSSL answers only when the application
        reads up to the close_notify (or unwraps); a peer that gets the answer earlier
        may close TCP at once, and uvloop, which reads a ``BufferedProtocol``'s data a
        buffer at a time, drops what was still unread when that EOF arrives."""
        out = self._conn.data_to_send()
        if self._peer_closed and self._plain_size and not self._unwrapped:
            self._held += out
            return
        if self._held:
            out, self._held = self._held + out, b""
        if out:
            self._outgoing.write(out)

    def _handshake_done(self) -> bool:
        return self._conn.handshake_complete

    def _ended(self) -> bool:
        return self._conn.state in (ConnectionState.CLOSED, ConnectionState.FAILED)

    def _receive(self, data: bytes) -> None:
        conn = self._conn
        if self._ended():
            return
        plain = conn.receive(data)  # (one short record: its data, without an event)
        if plain is None:
            self._take_events()
        elif plain:
            self._plain.append(plain)
            self._plain_size += len(plain)
        if self._peer_closed and conn.unused_data:
            self._put_back(conn.unused_data)

    def _take_events(self) -> None:
        for event in self._conn.events():
            if type(event) is DataReceived or type(event) is LentDataReceived:
                self._plain.append(event.data)
                self._plain_size += len(event.data)
            elif type(event) is CloseNotifyReceived:
                self._peer_closed = True
            elif type(event) is ConnectionTerminated and event.error is None \
                    and event.truncated:
                self._peer_closed = True  # an EOF tolerated by suppress_ragged_eofs

    def _put_back(self, rest: bytes) -> None:
        if not rest:
            return
        if self._incoming.eof:
            return  # (a MemoryBIO takes no bytes after write_eof(): nobody can read them)
        tail = self._incoming.read()
        self._incoming.write(rest)
        if tail:
            self._incoming.write(tail)

    def _raise_if_failed(self) -> None:
        error = self._conn.error
        if error is not None:
            raise error

    # --- the SSLObject verbs -------------------------------------------------------------------

    def do_handshake(self) -> None:
        """Advance the handshake: write our flight to ``outgoing``; raise
        :class:`ssl.SSLWantReadError` until the peer's answer completes it."""
        if self._conn.handshake_complete:
            self._started = True
            return
        self._pump()
        if self._handshake_done():
            return
        self._raise_if_failed()
        if self._ended():
            raise ssl.SSLZeroReturnError(ssl.SSL_ERROR_ZERO_RETURN,
                                         "TLS/SSL connection has been closed (EOF)")
        raise want_read()

    def read(self, len: int = 1024, buffer: Any = None) -> Any:
        """Up to ``len`` bytes of plaintext (into ``buffer`` if given: the count).

        :class:`ssl.SSLWantReadError` when no whole record is there yet; ``b""`` (0) after
        the peer's close_notify; :class:`ssl.SSLZeroReturnError` after our own
        :meth:`unwrap`; :class:`ssl.SSLEOFError` (:class:`aiotls.TruncationError`) when
        ``incoming`` reached EOF without close_notify, unless the context's
        ``suppress_ragged_eofs`` is set.
        """
        if not self._plain_size:
            if not self._conn.handshake_complete:
                self.do_handshake()
            self._pump()
        if self._plain_size:
            given = self._give(len, buffer)
            if self._held and not self._plain_size:
                self._flush()  # all read: the answer to the peer's close_notify goes now
            return given
        if self._unwrapped:
            raise ssl.SSLZeroReturnError(ssl.SSL_ERROR_ZERO_RETURN,
                                         "TLS/SSL connection has been closed (EOF)")
        if self._peer_closed:
            self._eof_reported = True
            return 0 if buffer is not None else b""
        self._raise_if_failed()
        if self._conn.state is ConnectionState.CLOSED:
            self._eof_reported = True
            return 0 if buffer is not None else b""
        raise want_read()

    def _give(self, n: int, buffer: Any) -> Any:
        """Up to ``n`` buffered plaintext bytes (into ``buffer`` if given: the count).

        The first chunk is consumed through an offset (``_pos``), so that many small reads
        of a large chunk copy each byte once."""
        plain = self._plain
        pos = self._pos
        if buffer is not None:
            view = memoryview(buffer).cast("B")
            if n is None or n <= 0 or n > len(view):
                n = len(view)
        elif n is None or n <= 0:
            n = self._plain_size
        parts: list[Any] = []
        done = 0
        while plain and done < n:
            chunk = plain[0]
            take = min(n - done, len(chunk) - pos)
            if buffer is not None:
                view[done:done + take] = chunk[pos:pos + take]
            else:
                parts.append(chunk[pos:pos + take])
            done += take
            if pos + take < len(chunk):
                pos += take
            else:
                plain.popleft()
                pos = 0
        self._pos = pos
        self._plain_size -= done
        result: Any = done
        if buffer is None:
            result = bytes(parts[0]) if len(parts) == 1 else b"".join(parts)
        if not plain:
            self._conn.release_plaintext()  # every lent byte is copied out: give them back
        return result

    def write(self, data: Any) -> int:
        """Encrypt ``data`` into ``outgoing`` (driving the handshake first if needed);
        returns ``len(data)``."""
        conn = self._conn
        if not conn.handshake_complete:
            self.do_handshake()
        if self._unwrapped or conn.state is not ConnectionState.OPEN:
            self._raise_if_failed()
            raise ssl.SSLZeroReturnError(ssl.SSL_ERROR_ZERO_RETURN,
                                         "cannot write: the TLS connection is closed")
        view = memoryview(data)
        out = conn.send(view)
        if out:
            self._outgoing.write(out)
        return view.nbytes

    def pending(self) -> int:
        """Decrypted bytes ready for :meth:`read` without more input -- and 1 when none are
        left but the peer's close_notify is, until :meth:`read` has reported it (``b""``).

        OpenSSL decrypts one record per read, so a close_notify that came with the last
        data is still in ``incoming`` when that data has been read; aiotls takes in all of
        ``incoming`` at once.  uvloop reads only while ``incoming.pending`` or
        ``pending()`` is non-zero: without the 1 it would never read the ``b""`` and never
        tell the application (``eof_received``) that the peer closed."""
        if self._plain_size:
            return self._plain_size
        return int(self._peer_closed and not self._eof_reported and not self._unwrapped)

    def unwrap(self) -> None:
        """Send close_notify (once) and wait for the peer's: :class:`ssl.SSLWantReadError`
        until it arrived.  Bytes after the peer's close_notify stay in ``incoming``."""
        conn = self._conn
        if not self._unwrapped:
            self._unwrapped = True
            if conn.state in (ConnectionState.HANDSHAKING, ConnectionState.OPEN):
                conn.close()
            self._take_events()
        self._pump()
        if self._peer_closed or conn.state is ConnectionState.CLOSED:
            return None
        self._raise_if_failed()
        if self._eof_fed:
            raise ssl.SSLEOFError(ssl.SSL_ERROR_EOF, "EOF occurred in violation of protocol")
        raise want_read()

    # --- what the handshake negotiated --------------------------------------------------------

    def getpeercert(self, binary_form: bool = False) -> Any:
        """The peer's certificate (``ValueError`` before the handshake), like the stdlib's."""
        return self._conn.getpeercert(binary_form)

    def get_verified_chain(self) -> list[bytes]:
        """The verified path, leaf to trust anchor (DER); see
        :meth:`aiotls.TLSConnection.get_verified_chain`."""
        return self._conn.get_verified_chain()

    def get_unverified_chain(self) -> list[bytes]:
        """The peer's chain as sent (DER, leaf first)."""
        return self._conn.get_unverified_chain()

    def version(self) -> str | None:
        """``"TLSv1.3"`` / ``"TLSv1.2"``, or ``None`` before the handshake."""
        return self._conn.version()

    def cipher(self) -> tuple[str, str, int] | None:
        """``(name, protocol, secret_bits)``, or ``None`` before the handshake."""
        return self._conn.cipher()

    def shared_ciphers(self) -> list[tuple[str, str, int]] | None:
        """Server side: the suites the client offered that this context enables (``None``
        on clients and before the handshake, as in the stdlib)."""
        return self._conn.shared_ciphers()

    def compression(self) -> None:
        """Always ``None``: aiotls never compresses."""
        return None

    def selected_alpn_protocol(self) -> str | None:
        """The negotiated ALPN protocol, or ``None``."""
        return self._conn.selected_alpn_protocol()

    def selected_npn_protocol(self) -> None:
        """Always ``None``: NPN is not supported."""
        return None

    def get_channel_binding(self, cb_type: str = "tls-unique") -> bytes | None:
        """``"tls-unique"`` (RFC 5929, TLS 1.2) or ``"tls-exporter"`` (RFC 9266); ``None``
        before the handshake (see :meth:`aiotls.TLSConnection.get_channel_binding`)."""
        return self._conn.get_channel_binding(cb_type)

    def export_keying_material(self, label: str | bytes, context: bytes | None,
                               length: int) -> bytes:
        """RFC 5705 / RFC 8446 7.5 keying material (see
        :meth:`aiotls.TLSConnection.export_keying_material`)."""
        return self._conn.export_keying_material(label, context, length)

    def verify_client_post_handshake(self) -> None:
        """TLS 1.3 servers: ask for the client's certificate now (see
        :meth:`aiotls.TLSConnection.verify_client_post_handshake`)."""
        self._conn.verify_client_post_handshake()
        out = self._conn.data_to_send()
        if out:
            self._outgoing.write(out)

    def __repr__(self) -> str:
        return f"<aiotls.compat.TLSObject {self._conn!r}>"


#: A plaintext fatal alert, internal_error (RFC 8446 6.2; readable before any handshake).
_INTERNAL_ERROR_ALERT = bytes([21, 3, 3, 0, 2, 2, 80])


class RefusedTLSObject(TLSObject):
    """What a server context's :meth:`~aiotls.TLSContext.wrap_bio` returns when it cannot
    serve at all (a client context, no certificate): its handshake fails at once with the
    reason, after an internal_error alert, so that the framework closes the connection
    instead of leaving the client waiting."""

    _conn = None  # type: ignore[assignment]

    def __init__(self, context: TLSContext, incoming: ssl.MemoryBIO, outgoing: ssl.MemoryBIO,
                 error: Exception) -> None:
        self._context = context
        self._incoming = incoming
        self._outgoing = outgoing
        self._server_side = True
        self._server_hostname = None
        self._error = error
        self._alerted = False

    def _refuse(self) -> NoReturn:
        if not self._alerted:
            self._alerted = True
            self._outgoing.write(_INTERNAL_ERROR_ALERT)
        raise self._error

    @property
    def connection(self) -> TLSConnection:
        raise self._error

    def do_handshake(self) -> None:
        self._refuse()

    def read(self, len: int = 1024, buffer: Any = None) -> Any:
        self._refuse()

    def write(self, data: Any) -> int:
        self._refuse()

    def unwrap(self) -> None:
        return None

    def pending(self) -> int:
        return 0

    def getpeercert(self, binary_form: bool = False) -> Any:
        raise ValueError("handshake not done yet")

    def version(self) -> None:
        return None

    def cipher(self) -> None:
        return None

    def shared_ciphers(self) -> None:
        return None

    def selected_alpn_protocol(self) -> None:
        return None

    def get_channel_binding(self, cb_type: str = "tls-unique") -> None:
        return None

    def export_keying_material(self, label: str | bytes, context: bytes | None,
                               length: int) -> bytes:
        raise self._error

    def get_unverified_chain(self) -> list[bytes]:
        return []

    def get_verified_chain(self) -> list[bytes]:
        return []

    @property
    def session_reused(self) -> bool:
        return False

    @property  # type: ignore[misc]
    def session(self) -> None:  # type: ignore[override]
        return None

    def verify_client_post_handshake(self) -> None:
        self._refuse()

    def __repr__(self) -> str:
        return f"<aiotls.compat.RefusedTLSObject: {self._error}>"
