"""TLSConnection: the sans-IO TLS state machine.

Theory of operation
-------------------
A :class:`TLSConnection` does no I/O and reads no clock.  Three verbs:

* :meth:`receive_data` -- bytes that arrived from the peer (``b""`` means the
  transport reached EOF);
* :meth:`next_event` -- what those bytes meant (``None`` when drained);
* :meth:`data_to_send` -- bytes to write to the peer (handshake messages,
  encrypted data, alerts).  Call it after *every* ``receive_data`` too: the
  engine answers KeyUpdates and alerts while reading.

plus :meth:`send_data` and :meth:`close` for the application side.

Incoming bytes are cut into whole TLS records (5-byte header, length limits, a
cap on handshake size) before the engine sees them, so the engine never holds
half a record and hostile framing is rejected early with the right alert; after
the handshake every record is decrypted once, through the engine's record verbs.
That receive path is :mod:`aiotls._receive` (a base class of
:class:`TLSConnection`); this module holds the verbs, the state and the
introspection.  The connection talks to the engine only through its verbs.
Errors are reported as a :class:`~aiotls.events.ConnectionTerminated`
event carrying a :class:`~aiotls.errors.TLSError`; after that the connection is
*poisoned*: further calls raise the same error, while :meth:`data_to_send`
still returns the alert the peer is owed.

States: every change goes through ``_set_state``, along the transition table in
:mod:`aiotls._state` (which has its picture and says why the other flags are not states).
"""

from __future__ import annotations

import contextlib
import datetime
import ssl
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any, cast

from ._engine import Engine, install_choices
from ._identity import context_chooser
from ._introspect import _Introspection
from ._receive import _MAX_UNUSED, _NOT_SMALL, _give_back, _RecordReceiver
from ._state import _INITIAL_PHASE, ConnectionState, _Trigger, next_phase
from .context import TLSContext
from .errors import (
    TLSConfigurationError,
    TLSError,
    TLSUsageError,
    TruncationError,
)
from .events import (
    ClientCertificateReceived,
    CloseNotifyReceived,
    ConnectionTerminated,
    DataReceived,
    Event,
    HandshakeCompleted,
)

__all__ = ["ConnectionState", "TLSConnection", "TLSSession"]



class TLSSession:
    """A TLS session a client can resume later (``TLSConnection(..., session=...)``).

    Obtain it from :attr:`TLSConnection.session` after the handshake.  With TLS 1.3
    the server's tickets arrive just after the handshake, so take the session once
    some data has been exchanged (or at close).  Opaque otherwise.

    TLS 1.3: a connection offers the oldest ticket of the session it was given; if it
    resumes, its own session holds that session's other tickets followed by the ones the
    server sent (at most 8 carried over; of the tickets a server sends, a connection keeps
    the newest 9), so taking each session from the last connection
    uses every ticket once (RFC 8446 C.4), also with servers that send no ticket on
    resumption.  A session itself never changes: giving the same one to several
    connections offers the same ticket each time, as with OpenSSL.
    """

    __slots__ = ("_state", "server_hostname", "version")

    def __init__(self, state: object, server_hostname: str | None, version: str) -> None:
        self._state = state
        #: The host name the session was established with.
        self.server_hostname = server_hostname
        #: The protocol version of the session.
        self.version = version

    @property
    def has_ticket(self) -> bool:
        """True if the server gave us something to resume with."""
        state: Any = self._state
        return bool(getattr(state, "tickets", None) or getattr(state, "tls_1_0_tickets", None)
                    or getattr(state, "_aiotls_unused", None))

    def __repr__(self) -> str:
        return (f"<aiotls.TLSSession {self.version} for {self.server_hostname!r} "
                f"{'resumable' if self.has_ticket else 'no ticket yet'}>")


def _utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _plain_bytes(data: bytes | bytearray | memoryview) -> bytes | bytearray | memoryview:
    """``data`` as a sequence of its bytes: lengths and slices then count bytes, whatever
    the buffer's item size, shape or strides."""
    if type(data) is bytes or type(data) is bytearray:
        return data
    view = memoryview(data)
    if view.itemsize == 1 and view.ndim == 1 and view.c_contiguous:
        return view if view.format == "B" else view.cast("B")
    return view.tobytes()


class TLSConnection(_RecordReceiver, _Introspection):
    """One TLS connection, client or server, with no I/O of its own.

    :param context: the :class:`~aiotls.TLSContext` to use.
    :param server_side: True for the server role.
    :param server_hostname: the name to send as SNI and verify the certificate
        against (clients).  Required when ``context.check_hostname`` is on.
    :param now: clock used for certificate validity checks; returns an aware
        UTC datetime.  Defaults to the system clock.
    :param session: a :class:`TLSSession` to resume (clients).
    :param half_close: TLS 1.3: when the peer's close_notify arrives, keep our side open
        (RFC 8446 6.1 lets each side close its write direction alone): data can still be
        sent until :meth:`close`, which sends our close_notify and ends the connection.
        Off by default: aiotls then answers a close_notify at once, as TLS 1.2 requires
        (RFC 5246 7.2.1) and as TLS 1.2 connections always do.
    :param lend_plaintext: deliver application data as :class:`~aiotls.LentDataReceived`
        (views of lent decryption buffers) where aiotls's record layer decrypts it; see
        :attr:`lend_plaintext`.

    A client's ClientHello is ready in :meth:`data_to_send` right after construction.
    """

    def __init__(
        self,
        context: TLSContext,
        *,
        server_side: bool = False,
        server_hostname: str | None = None,
        now: Callable[[], datetime.datetime] | None = None,
        session: TLSSession | None = None,
        half_close: bool = False,
        lend_plaintext: bool = False,
    ) -> None:
        if not isinstance(context, TLSContext):
            raise TypeError(f"context must be an aiotls.TLSContext, not {type(context).__name__}")
        TLSConnection.check_context(context, server_side=server_side)
        if server_side and server_hostname is not None:
            raise TLSUsageError("server_hostname is only meaningful for clients",
                                hint="drop server_hostname= on the server side")
        if not server_side and context.check_hostname and not server_hostname:
            raise TLSUsageError(
                "check_hostname requires server_hostname",
                cause="a client context verifies the server's name, but no name was given",
                hint="pass server_hostname='the.host.name' (or set check_hostname = False)",
            )
        if server_hostname is not None and (
                not isinstance(server_hostname, str) or not server_hostname
                or server_hostname.startswith(".") or "\x00" in server_hostname):
            raise TLSUsageError(f"invalid server_hostname {server_hostname!r}",
                                    hint="pass a DNS name or an IP address")
        if server_hostname is not None and not server_hostname.isascii():
            raise TLSUsageError(
                f"server_hostname {server_hostname!r} is not ASCII",
                cause="TLS carries internationalised names as IDNA A-labels (RFC 6066 3)",
                hint="encode it as an A-label first, e.g. name.encode('idna').decode('ascii') "
                "(wrap_bio(), wrap_socket() and aiotls.anyio do this for you)",
            )
        if session is not None:
            if server_side:
                raise TLSUsageError("session= is for clients: servers resume from tickets",
                                    hint="drop session= on the server side")
            if not isinstance(session, TLSSession):
                raise TypeError(f"session must be an aiotls.TLSSession, not {type(session).__name__}")
            if session.server_hostname != server_hostname:
                raise TLSUsageError(
                    f"the session was made with {session.server_hostname!r}, not "
                    f"{server_hostname!r}",
                    cause="resuming a session with a different server would skip verifying it",
                    hint="only pass a session back to the same host name",
                )
        self._context = context
        self.server_side = server_side
        self.server_hostname = server_hostname
        # the phase (state, peer_closed): written only by _set_state from here on
        self._state, self._peer_closed = _INITIAL_PHASE
        self._events: deque[Event] | tuple[()] = ()  # (see _RecordReceiver._event)
        self._inbuf = bytearray()
        # data sent before the handshake completed (afterwards an empty tuple: nothing can
        # join it, and an established connection keeps one object fewer for the cyclic GC)
        self._pending_app: list[bytes] | tuple[()] = []
        self._handshake_bytes = 0
        self._tls13_limits = False
        # TLS 1.3, aiotls's record layer: the engine holds part of a handshake message, so
        # the next record must continue it (RFC 8446 5.1); the fast paths stand aside
        self._hs_partial = False
        self._error: TLSError | None = None
        self._terminated = False
        self._handshake_event: HandshakeCompleted | None = None
        self._peer_chain: tuple[bytes, ...] = ()
        # lending (see the lend_plaintext property): the buffers lent out, until
        # release_plaintext() gives them back
        self._lend = bool(lend_plaintext)
        self._lent: list[bytearray] | tuple[()] = ()  # (a list while buffers are lent)
        self._unused = b""
        self._half_close = bool(half_close)
        self._engine = Engine(context, server_side=server_side, server_hostname=server_hostname,
                              now=now or _utcnow,
                              session=session._state if session is not None else None)
        install_choices(self._engine, context, context_chooser(self) if server_side else None)
        if not server_side:
            self._guard(self._advance)

    #: What a server's sni_callback gets as its ssl object: a weak reference to the object
    #: this connection is known by (set by aiotls.compat and aiotls.sync), else None (then
    #: the connection itself).
    _sni_owner: Callable[[], Any] | None = None
    _sni_switching = False

    @property
    def context(self) -> TLSContext:
        """The :class:`~aiotls.TLSContext` this connection uses.  A server's
        :attr:`~aiotls.TLSContext.sni_callback` may assign another server context (that is
        the only time it can change): the handshake then goes on with it."""
        return self._context

    @context.setter
    def context(self, ctx: TLSContext) -> None:
        if not self._sni_switching:
            raise TLSUsageError(
                "the context of a TLSConnection cannot be changed",
                cause="only a server's sni_callback may switch it, while the handshake waits",
                hint="make a new TLSConnection with the other context, or switch it in the "
                "server context's sni_callback")
        if not isinstance(ctx, TLSContext):
            raise TypeError(f"context must be an aiotls.TLSContext, not {type(ctx).__name__}")
        self._context = ctx

    @contextlib.contextmanager
    def _switching_context(self) -> Iterator[None]:
        self._sni_switching = True
        try:
            yield
        finally:
            self._sni_switching = False

    @staticmethod
    def check_context(context: TLSContext, *, server_side: bool) -> None:
        """Raise the error making a connection of this role with ``context`` would raise.

        The context/side rule (as in :mod:`ssl`): a context made with
        :data:`ssl.PROTOCOL_TLS_CLIENT` makes only client connections, one made with
        :data:`ssl.PROTOCOL_TLS_SERVER` only server connections.  A server context on the
        client side would skip verifying the server (its ``verify_mode`` defaults to
        ``CERT_NONE``), so it is refused rather than used.  Servers also need a
        certificate.  Adapters that accept connections later (``create_server``) call
        this once at startup, so a wrong context fails there, visibly.
        """
        if not isinstance(context, TLSContext):
            raise TypeError(f"context must be an aiotls.TLSContext, not {type(context).__name__}")
        if not server_side and context.protocol != ssl.PROTOCOL_TLS_CLIENT:
            raise TLSUsageError(
                "cannot make a client-side connection with a server context "
                "(ssl.PROTOCOL_TLS_SERVER)",
                cause="the context was made for servers (TLSContext(ssl.PROTOCOL_TLS_SERVER) or "
                "create_default_context(ssl.Purpose.CLIENT_AUTH)); used by a client it would "
                "not verify the server's certificate",
                hint="make the client's context with ssl.PROTOCOL_TLS_CLIENT: "
                "aiotls.create_default_context() or TLSContext(ssl.PROTOCOL_TLS_CLIENT)",
                code="wrong-side-context",
            )
        if server_side and context.protocol != ssl.PROTOCOL_TLS_SERVER:
            raise TLSUsageError(
                "cannot make a server-side connection with a client context "
                "(ssl.PROTOCOL_TLS_CLIENT)",
                cause="the context was made for clients (TLSContext() / "
                "TLSContext(ssl.PROTOCOL_TLS_CLIENT) or create_default_context())",
                hint="make the server's context with ssl.PROTOCOL_TLS_SERVER: "
                "TLSContext(ssl.PROTOCOL_TLS_SERVER) or "
                "create_default_context(ssl.Purpose.CLIENT_AUTH), then load_cert_chain()",
                code="wrong-side-context",
            )
        if server_side and not context._chain_der and not context._has_external_psks():
            raise TLSConfigurationError(
                "a TLS server needs a certificate (or external PSKs)",
                cause="the context has no certificate chain loaded",
                hint="call load_cert_chain(certfile, keyfile) on the server context (or "
                "set_external_psks() for a server that accepts PSK clients only)",
                code="server-needs-certificate",
            )

    # --- state ---------------------------------------------------------------------------------

    @property
    def state(self) -> ConnectionState:
        """The current :class:`ConnectionState`."""
        return self._state

    def _set_state(self, new: ConnectionState, trigger: _Trigger) -> None:
        """Move to ``new`` because of ``trigger``: the only writer of the state and of
        :attr:`peer_closed`.  A change the table does not allow is a bug in aiotls and raises
        :class:`~aiotls.errors.InternalError` (``illegal-state-transition``), which inside the
        connection's processing ends the connection like any fatal error."""
        self._state, self._peer_closed = next_phase(
            (self._state, self._peer_closed), new, trigger,
            "server" if self.server_side else "client")

    @property
    def handshake_complete(self) -> bool:
        """True once the handshake has finished (and stays True afterwards)."""
        return self._handshake_event is not None

    # --- the three verbs -------------------------------------------------------------------------

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        """Feed bytes received from the peer; ``b""`` signals EOF on the transport.

        Protocol errors do not raise here: they produce a
        :class:`~aiotls.events.ConnectionTerminated` event (and an alert in
        :meth:`data_to_send`).  Calling this after the connection ended raises.
        """
        if self._terminated:
            if not data:
                return
            if self._error is not None:
                raise self._error
            raise TLSUsageError("receive_data() after the connection was closed",
                                hint="stop feeding data once ConnectionTerminated was seen")
        if self._peer_closed:
            # half-closed by the peer: what follows its close_notify is not TLS (RFC 8446
            # 6.1: ignored), and its EOF ends nothing we still send
            room = _MAX_UNUSED - len(self._unused)
            if data and room > 0:
                self._unused += bytes(data[:room])
            return
        if not data:
            self._on_eof()
            return
        if self._engine.records_taken_over:
            self._guard(self._process_fast, data)
            return
        self._inbuf += data
        self._guard(self._process_input)

    def next_event(self) -> Event | None:
        """The next event, or ``None`` if there is none until more data arrives."""
        events = self._events
        if events:
            event = events.popleft()
            if not events:
                self._events = ()
            return event
        return None

    def events(self) -> list[Event]:
        """All pending events (drains the queue)."""
        out = list(self._events)
        self._events = ()
        return out

    def data_to_send(self) -> bytes | bytearray:
        """Bytes to transmit to the peer now (possibly empty).

        The result may be a ``bytearray`` (to spare a copy of bulk data); it is a fresh
        object that the caller owns.
        """
        return self._engine.take_output()

    def send_data(self, data: bytes | bytearray | memoryview) -> None:
        """Encrypt application data for the peer.

        Before the handshake completes the data is buffered and sent right after it.
        Any bytes-like object is taken as its bytes (a ``memoryview`` of an ``array('i')``
        sends all its bytes, as ``ssl`` does).
        """
        data = _plain_bytes(data)
        if self._state is ConnectionState.OPEN:
            if data:
                self._guard(self._engine.write, data)
                if self._error is not None:
                    raise self._error
            return
        if self._state is ConnectionState.HANDSHAKING:
            if data and isinstance(self._pending_app, list):  # (a list until it is sent)
                self._pending_app.append(bytes(data))
            return
        if self._error is not None:
            raise self._error
        raise TLSUsageError(
            f"cannot send data: the connection is {self._state.value}",
            cause="close() was called, or the peer closed the connection",
            hint="open a new connection to send more data",
        )

    # --- the verbs in one call, for interactive traffic -----------------------------------------

    def send(self, data: bytes | bytearray | memoryview) -> bytes | bytearray:
        """:meth:`send_data` then :meth:`data_to_send` in one call: the records for
        ``data``, after anything queued before them, to transmit now.

        The same result, errors and events as the two calls; a short message on an open
        TLS 1.3 connection with nothing queued (interactive traffic) is sealed straight
        into the result.
        """
        data = _plain_bytes(data)
        if self._state is ConnectionState.OPEN and data:
            sealed = self._engine.seal_now(data)
            if sealed is not None:
                return sealed
        self.send_data(data)
        return self._engine.take_output()

    def receive(self, data: bytes | bytearray | memoryview) -> bytes | None:
        """:meth:`receive_data`, returning the application data itself when that is all
        ``data`` held and no event is pending: then no event is queued for it.

        ``None`` means the input was handled as :meth:`receive_data` handles it: read the
        events.  Either way the same bytes reach the caller in the same order, with the
        same errors; interactive traffic (one short TLS 1.3 record per read) takes the
        ``bytes`` path and spares the event.  ``b""`` (an empty record) is data too: none.
        An EOF (``b""`` given) always goes to the events.
        """
        engine = self._engine
        if data and not self._events and engine.records_taken_over and engine.tls13 \
                and not self._terminated and not self._peer_closed:
            try:
                small = self._open_small(data)
            except TLSError as err:  # (as receive_data: the connection ends, an event says so)
                self._fail(err)
                return None
            if small is not _NOT_SMALL:
                return cast(bytes | None, small)
        self.receive_data(data)
        return None

    def close(self) -> None:
        """Queue close_notify; nothing can be sent after it.

        Data the peer sent before its own close_notify is still delivered; its
        close_notify then arrives as :class:`~aiotls.events.CloseNotifyReceived`
        followed by ``ConnectionTerminated(error=None)``.  (When the *peer* closes
        first, aiotls answers with close_notify at once -- unless ``half_close`` keeps a
        TLS 1.3 connection's side open: then this sends it and ends the connection.)
        """
        if self._state in (ConnectionState.HANDSHAKING, ConnectionState.OPEN):
            # An aborted handshake, or (half_close) a peer that closed first: the connection
            # ends at once; otherwise it waits in CLOSING for the peer's close_notify.
            ends = self._state is ConnectionState.HANDSHAKING or self._peer_closed
            self._pending_app = ()
            self._engine.close_notify()
            if ends:
                self._set_state(ConnectionState.CLOSED, _Trigger.CLOSE)
                self._terminate(None)
            else:
                self._set_state(ConnectionState.CLOSING, _Trigger.CLOSE)

    def verify_client_post_handshake(self) -> None:
        """TLS 1.3 server: ask the client for its certificate now (post-handshake
        authentication), like :meth:`ssl.SSLSocket.verify_client_post_handshake`.

        The client must have offered it (aiotls clients do when they have a certificate).
        The answer is verified against this context's trust store and arrives as a
        :class:`~aiotls.events.ClientCertificateReceived` event; ``getpeercert()`` then
        returns it.  With ``verify_mode = CERT_REQUIRED`` an empty answer ends the
        connection with ``certificate_required``.
        """
        if self._state is not ConnectionState.OPEN:
            raise TLSUsageError(f"cannot authenticate: the connection is {self._state.value}")
        self._guard(self._engine.request_client_certificate)
        if self._error is not None:
            raise self._error

    def _check_pha(self) -> None:
        chain = self._engine.take_pha_result()
        if chain:
            self._peer_chain = tuple(chain)
            self._event(ClientCertificateReceived(tuple(chain)))

    def update_keys(self, request_peer_update: bool = False) -> None:
        """TLS 1.3: send a KeyUpdate and switch to fresh write keys.

        With ``request_peer_update=True`` the peer is asked to update its keys too.
        aiotls also does this by itself before a key has protected 2^23 records.
        """
        if self._state is not ConnectionState.OPEN:
            if self._error is not None:
                raise self._error
            raise TLSUsageError(f"cannot update keys: the connection is {self._state.value}",
                                hint="update keys only on an open connection")
        self._guard(lambda: self._engine.update_keys(request_peer=request_peer_update))
        if self._error is not None:
            raise self._error

    # --- lending plaintext (for adapters that copy it out at once) -----------------------------

    @property
    def lend_plaintext(self) -> bool:
        """Whether application data is lent rather than given (off by default).

        When on, what aiotls's record layer decrypts arrives as
        :class:`~aiotls.LentDataReceived`: a memoryview of a decryption buffer taken from a
        per-thread pool and lent to this connection, instead of a new ``bytes`` object per
        batch (for bulk data, allocating and filling that object is most of the receive
        cost).  The contract:

        * a lent view stays valid -- nothing overwrites it -- until
          :meth:`release_plaintext`, however many batches arrive meanwhile (each batch
          decrypts into a buffer of its own);
        * after :meth:`release_plaintext` its buffer goes back to the pool and is reused
          by the next decryption on this thread: a view used after release reads undefined
          bytes (never memory outside the buffer);
        * the connection keeps every lent buffer until then, so release after each batch
          once its data is copied out.

        Some data still arrives as :class:`~aiotls.DataReceived`, so handle both: single
        short TLS 1.3 records (decrypted straight into ``bytes``) and whatever the engine
        decrypts itself (data in the handshake's last flight, or all of it when aiotls's
        record layer is not in use).  May be switched at any time; it applies to the next
        batch.
        """
        return self._lend

    @lend_plaintext.setter
    def lend_plaintext(self, enabled: bool) -> None:
        self._lend = bool(enabled)

    @property
    def plaintext_lent(self) -> bool:
        """True while lent buffers are out (:meth:`release_plaintext` has work to do)."""
        return bool(self._lent)

    def release_plaintext(self) -> None:
        """The caller is done with every :class:`~aiotls.LentDataReceived` delivered so
        far: their buffers go back to the pool.  Harmless when nothing is lent, and when
        called twice."""
        for buf in self._lent:
            _give_back(buf)
        self._lent = ()

    # --- internals -----------------------------------------------------------------------------

    def _guard(self, fn: Callable[..., None], *args: Any) -> None:
        try:
            fn(*args)
        except TLSUsageError:
            raise  # the caller's mistake: reported to the caller, the connection goes on
        except TLSError as err:
            self._fail(err)

    def _fail(self, err: TLSError) -> None:
        """End the connection with the fatal error ``err`` (the alert it names goes to the
        peer): the internal verb every failure but an EOF goes through.  Nothing happens
        once the connection has ended."""
        if self._terminated:
            return
        self._engine.fail(err.alert_number if not self._engine.failed else None)
        self._error = err
        self._inbuf.clear()
        self._pending_app = ()
        self._set_state(ConnectionState.FAILED, _Trigger.FATAL_ERROR)
        self._terminate(err)

    def _terminate(self, err: TLSError | None, truncated: bool = False) -> None:
        if not self._terminated:
            self._terminated = True
            self._engine.ended(err)
            self._event(ConnectionTerminated(error=err, truncated=truncated))

    def _advance(self) -> None:
        engine = self._engine
        if self._state is ConnectionState.HANDSHAKING:
            if not engine.step_handshake():
                return
            self._on_handshake_complete()
        while self._state in (ConnectionState.OPEN, ConnectionState.CLOSING):
            data = engine.read()
            if data is None:
                return
            self._check_pha()
            if data:
                self._event(DataReceived(data))
                continue
            self._closed_by_peer()

    def _closed_by_peer(self) -> None:
        """The peer's close_notify arrived (answered already): the connection ends cleanly."""
        self._event(CloseNotifyReceived())
        self._set_state(ConnectionState.CLOSED, _Trigger.PEER_CLOSE_NOTIFY)
        self._terminate(None)

    def _on_handshake_complete(self) -> None:
        engine = self._engine
        version = engine.version or "unknown"
        self._tls13_limits = version == "TLSv1.3"
        name = engine.cipher_openssl_name()
        self._handshake_event = HandshakeCompleted(
            version=version,
            cipher=name[0] if name else "unknown",
            group=engine.group(),
            alpn_protocol=engine.alpn(),
            peer_certificates=tuple(engine.peer_chain()),
            server_name=engine.sni(),
            session_reused=engine.resumed(),
        )
        self._set_state(ConnectionState.OPEN, _Trigger.HANDSHAKE_COMPLETED)
        self._event(self._handshake_event)
        if engine.take_over_records():
            # (no handshake fragment can be pending here: the engine refuses a message that
            # shares a record with Finished, a key change -- RFC 8446 5.1)
            leftover = engine.leftover_input()
            if leftover:
                self._inbuf[:0] = leftover
        pending, self._pending_app = self._pending_app, ()
        for chunk in pending:
            engine.write(chunk)

    def _on_eof(self) -> None:
        state = self._state
        if state is ConnectionState.HANDSHAKING:
            err: TLSError = TruncationError(
                "the peer closed the connection during the handshake",
                cause="the peer rejected our hello without an alert, does not speak TLS, "
                "or a firewall cut the connection",
                hint="check the port and protocol with 'python -m aiotls connect HOST PORT'",
                code="eof-in-handshake",
            )
            self._fail_without_alert(err)
        elif self._inbuf:
            self._fail_without_alert(TruncationError(
                "the connection closed in the middle of a TLS record",
                cause="the peer or the network cut the connection abruptly",
                hint="retry; if it repeats, look for a proxy or load balancer dropping connections",
                code="truncated-record",
            ))
        elif state is ConnectionState.OPEN:
            if self.context.suppress_ragged_eofs:
                self._set_state(ConnectionState.CLOSED, _Trigger.EOF_TOLERATED)
                self._terminate(None, truncated=True)
            else:
                self._fail_without_alert(TruncationError.without_close_notify(
                    "set TLSContext.suppress_ragged_eofs = True"))
        elif state is ConnectionState.CLOSING:
            self._set_state(ConnectionState.CLOSED, _Trigger.EOF_AFTER_CLOSE)
            self._terminate(None)

    def _fail_without_alert(self, err: TLSError) -> None:
        self._engine.fail(None)
        self._error = err
        self._set_state(ConnectionState.FAILED, _Trigger.FATAL_ERROR)
        self._inbuf.clear()
        self._terminate(err)

    # --- introspection: see aiotls/_introspect.py; the session is made here -------------------

    @property
    def session(self) -> TLSSession | None:
        """The session to resume later (clients, after the handshake), else ``None``."""
        if self.server_side or self._handshake_event is None:
            return None
        state = self._engine.session()
        if state is None:
            return None
        return TLSSession(state, self.server_hostname, self._handshake_event.version)

    def __repr__(self) -> str:
        role = "server" if self.server_side else "client"
        extra = f" {self.version()} {self.cipher()[0]}" if self.cipher() else ""  # type: ignore[index]
        return f"<aiotls.TLSConnection {role} {self._state.value}{extra}>"

