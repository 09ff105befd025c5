"""TLSProtocol: drives a TLSConnection from an asyncio transport.

Theory of operation
-------------------
Two objects, as in CPython's ``asyncio.sslproto``:

* :class:`TLSProtocol` is the *lower* protocol.  It sits on a TCP transport
  (asyncio's or uvloop's; only their public Transport API is used) and receives
  ciphertext through ``get_buffer``/``buffer_updated``.
* :class:`_TLSTransport` (``transport.py``) is the *upper* transport handed to the
  application protocol: plaintext ``write``, ``close``, flow control, ``get_extra_info``.

The adapter is mechanical: feed ciphertext to the :class:`~aiotls.TLSConnection`,
drain its events, deliver them to the application, write ``data_to_send()``.
All TLS decisions live in the core.

States (every change goes through ``_set_state``, which allows only the rules of
``_TRANSITIONS``, as asyncio's sslproto does; the application protocol's own states go
through ``_set_app_state`` and ``_APP_TRANSITIONS``)::

    UNWRAPPED ─connection_made─► HANDSHAKING ─HandshakeCompleted─► WRAPPED
    WRAPPED ─close()─► FLUSHING (backlog encrypted, close_notify sent) ─► SHUTDOWN
    HANDSHAKING/WRAPPED/FLUSHING ─peer close_notify / error / EOF / abort─► SHUTDOWN
    any state ─lower connection_lost─► CLOSED

    application: INIT ─connection_made─► CON_MADE ─eof_received─► EOF
                 CON_MADE/EOF ─connection_lost─► CON_LOST

Flow control mirrors sslproto:

* writing: the app is paused when plaintext waiting to be encrypted, records not
  yet handed down and the lower transport's buffer reach the high-water mark
  (default 512 KiB); plaintext is not encrypted while the lower transport has
  paused us.
* batching (where aiotls differs from sslproto): the records of a write of a full
  record or more are handed down at the end of the loop iteration, in one
  ``writelines`` with every other write of that iteration, so that writes just over
  a TCP segment do not each leave a runt segment behind (see ``_COALESCE_MIN``).
  Smaller writes go down at once unless such a batch is pending (order is kept).
  Where the lower transport's ``writelines`` is asyncio's default, which joins its
  arguments into one new ``bytes`` (the default loop before Python 3.12), the records
  go down one ``write`` each instead: see ``_joins_writelines``.
* reading: while the app has paused reading, nothing is decrypted; ciphertext
  waits in a backlog, and the lower transport is paused once the backlog plus
  decrypted-but-undelivered data reach the read high-water mark (256 KiB).

Ordering for the application: ``connection_made`` (after the handshake) →
``data_received``/``buffer_updated`` … → ``eof_received`` (peer's close_notify)
→ ``connection_lost``, each at most once.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import mmap
import threading
from collections.abc import Callable
from typing import Any

from ..connection import TLSConnection, TLSSession
from ..context import TLSContext
from ..errors import HandshakeTimeoutError, ShutdownTimeoutError, TLSError
from ..events import (
    CloseNotifyReceived,
    ConnectionTerminated,
    DataReceived,
    Event,
    HandshakeCompleted,
    LentDataReceived,
)
from ._states import (
    _APP_TRANSITIONS,
    _COALESCE_MIN,
    _HIGH_WATER_READ,
    _HIGH_WATER_WRITE,
    _TRANSITIONS,
    SSL_HANDSHAKE_TIMEOUT,
    SSL_SHUTDOWN_TIMEOUT,
    _AppState,
    _check_timeout,
    _flow_limits,
    _illegal,
    _State,
)
from .transport import _TLSTransport

__all__ = ["HandshakeTimeoutError", "ShutdownTimeoutError", "TLSProtocol"]

logger = logging.getLogger("aiotls")

_LOG_THRESHOLD_FOR_CONNLOST_WRITES = 5
#: Bytes read per receive: one buffer per thread, not per connection, so it can be large.
#: 1 MiB moved 5-15% more bulk data than 256 KiB (the stdlib's per-connection size) in
#: interleaved A/B runs here; 2 MiB gained nothing more.
_RECV_BUFFER = 1024 * 1024

_local = threading.local()


def _recv_buffer() -> memoryview:
    """One receive buffer per thread, shared by every connection on that thread's loop.

    The loop fills it and calls ``buffer_updated`` right away; the bytes are copied out
    before returning, so idle connections hold no receive buffer at all.
    """
    view: memoryview | None = getattr(_local, "view", None)
    if view is None:
        view = _local.view = memoryview(_aligned_buffer(_RECV_BUFFER))
    return view


def _aligned_buffer(size: int) -> mmap.mmap:
    """A writable buffer that starts on a page boundary.

    The kernel copies received bytes into a buffer that starts a few bytes past a page
    boundary up to 6x slower on some CPUs (measured on AMD EPYC: the short-distance
    penalty of ``rep movsb``), and a large ``bytearray`` starts 16 bytes in (after
    malloc's header).  An anonymous mapping is page-aligned; its pages are only
    allocated once touched.
    """
    return mmap.mmap(-1, size)


def _joins_writelines(transport: Any) -> bool:
    """Whether ``transport.writelines`` is asyncio's default, ``write(b"".join(...))``.

    A batch is up to the write high-water mark (512 KiB), and a fresh allocation that
    large is where glibc's malloc maps and unmaps memory: with asyncio Streams on the
    default loop (Python 3.11) every page of the data faulted in twice and throughput
    halved; one ``write`` per record allocates nothing.  uvloop's ``writelines`` (writev)
    and Python 3.12's selector transport (sendmsg) copy nothing.
    """
    return getattr(type(transport), "writelines", None) is asyncio.WriteTransport.writelines


#: get_extra_info() names answered from the handshake once it completed (not a dict each).
_HANDSHAKE_EXTRA: dict[str, Callable[[TLSConnection, HandshakeCompleted], Any]] = {
    "cipher": lambda conn, info: conn.cipher(),
    "compression": lambda conn, info: None,
    "tls_version": lambda conn, info: info.version,
    "alpn_protocol": lambda conn, info: info.alpn_protocol,
    "server_name": lambda conn, info: info.server_name,
    "session_reused": lambda conn, info: info.session_reused,
    "tls_group": lambda conn, info: info.group,
    "peer_certificates": lambda conn, info: info.peer_certificates,
}


def _copies_at_once(protocol: asyncio.BaseProtocol) -> bool:
    """asyncio's own StreamReaderProtocol and StreamReader copy what ``data_received`` gets
    at once (``bytearray.extend``) and keep no reference: they can take a view of the
    decryption buffer instead of a large ``bytes`` per read (which made glibc give the
    heap's top back and fault it in again at every read, see docs/performance.md).
    Subclasses and other protocols get ``bytes``."""
    if type(protocol) is not asyncio.StreamReaderProtocol:
        return False
    return type(protocol._stream_reader) is asyncio.StreamReader  # type: ignore[attr-defined]


class TLSProtocol(asyncio.BufferedProtocol):
    """The lower protocol: runs TLS over a transport for an application protocol.

    Most code uses :func:`aiotls.asyncio.create_connection`, ``create_server`` or
    ``start_tls`` rather than this class directly.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        app_protocol: asyncio.BaseProtocol,
        context: TLSContext,
        waiter: asyncio.Future[None] | None,
        *,
        server_side: bool = False,
        server_hostname: str | None = None,
        call_connection_made: bool = True,
        ssl_handshake_timeout: float | None = None,
        ssl_shutdown_timeout: float | None = None,
        session: TLSSession | None = None,
    ) -> None:
        if not isinstance(context, TLSContext):
            raise TypeError(f"sslcontext is expected to be an aiotls.TLSContext, got {context!r}")
        self._handshake_timeout = _check_timeout(ssl_handshake_timeout, SSL_HANDSHAKE_TIMEOUT,
                                                 "ssl_handshake_timeout")
        self._shutdown_timeout = _check_timeout(ssl_shutdown_timeout, SSL_SHUTDOWN_TIMEOUT,
                                                "ssl_shutdown_timeout")
        self._loop = loop
        self._waiter = waiter
        self._conn = TLSConnection(context, server_side=server_side,
                                   server_hostname=server_hostname if not server_side else None,
                                   session=session)
        #: The handshake's outcome once the application may see it (get_extra_info).
        self._handshake_info: HandshakeCompleted | None = None
        # initial states (changed only by _set_state and _set_app_state from here on);
        # start_tls() wraps a connection whose protocol has had connection_made() already
        self._state = _State.UNWRAPPED
        self._app_state = _AppState.INIT if call_connection_made else _AppState.CON_MADE
        self._transport: asyncio.Transport | None = None
        self._app_transport: _TLSTransport | None = _TLSTransport(loop, self)
        self._set_app_protocol(app_protocol)
        self._error: BaseException | None = None
        self._conn_lost = 0
        self._handshake_timer: asyncio.TimerHandle | None = None
        self._shutdown_timer: asyncio.TimerHandle | None = None
        # writing
        # (queues: containers only while they hold something, see docs/performance.md)
        self._write_backlog: collections.deque[bytes] | tuple[()] = ()
        self._write_backlog_size = 0
        #: records of this loop iteration's large writes, not yet given to the transport
        self._outgoing: list[bytes | bytearray] | tuple[()] = ()
        self._outgoing_size = 0
        self._flush_scheduled = False
        self._one_write_per_record = False  # (set by connection_made, see _joins_writelines)
        self._tls_writing_paused = False
        self._app_writing_paused = False
        self._write_high, self._write_low = _flow_limits(None, None, _HIGH_WATER_WRITE)
        # reading
        self._incoming_backlog = bytearray()
        self._events: collections.deque[Event] | tuple[()] = ()
        self._undelivered = 0
        self._processing = 0  # nesting depth of _process (lent plaintext)
        self._app_reading_paused = False
        self._tls_reading_paused = False
        self._eof_pending = False
        self._read_high, self._read_low = _flow_limits(None, None, _HIGH_WATER_READ)

    def _set_state(self, new: _State, event: str) -> None:
        """Move to ``new`` on ``event``; a change not in ``_TRANSITIONS`` is a bug in aiotls
        and raises :class:`~aiotls.errors.InternalError` (``illegal-state-transition``)."""
        if new not in _TRANSITIONS[self._state]:
            raise _illegal("state", self._role(), self._state.value, new.value, event)
        self._state = new

    def _set_app_state(self, new: _AppState, event: str) -> None:
        """Record that the application protocol is told ``event`` (``new``); each callback
        at most once and in order, else :class:`~aiotls.errors.InternalError`."""
        if new not in _APP_TRANSITIONS[self._app_state]:
            raise _illegal("application protocol", self._role(), self._app_state.value,
                           new.value, event)
        self._app_state = new

    def _role(self) -> str:
        return "server" if self._conn.server_side else "client"

    @staticmethod
    def _validate_timeouts(handshake: float | None, shutdown: float | None) -> None:
        _check_timeout(handshake, SSL_HANDSHAKE_TIMEOUT, "ssl_handshake_timeout")
        _check_timeout(shutdown, SSL_SHUTDOWN_TIMEOUT, "ssl_shutdown_timeout")

    # --- application protocol --------------------------------------------------------------

    def _set_app_protocol(self, app_protocol: asyncio.BaseProtocol) -> None:
        self._app_protocol: Any = app_protocol
        self._app_is_buffered = isinstance(app_protocol, asyncio.BufferedProtocol)
        self._app_copies_at_once = _copies_at_once(app_protocol)
        # plaintext copied straight from the decryption buffer (see _copies_at_once)
        self._conn.lend_plaintext = self._app_is_buffered or self._app_copies_at_once

    def _mark_closed(self) -> None:
        """The application's transport is closing (its is_closing() turns true)."""
        if self._app_transport is not None:
            self._app_transport._closed = True

    def _get_extra_info(self, name: str, default: Any = None) -> Any:
        if name in ("sslcontext", "ssl_object", "tls_connection"):
            return self._conn.context if name == "sslcontext" else self._conn
        info = self._handshake_info
        if info is not None and name in _HANDSHAKE_EXTRA:
            return _HANDSHAKE_EXTRA[name](self._conn, info)
        if name == "peercert" and self._conn.handshake_complete:
            return self._conn.getpeercert()  # on demand: building the dict is not free
        if self._transport is not None:
            return self._transport.get_extra_info(name, default)
        return default

    def _wakeup_waiter(self, exc: BaseException | None = None) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is None or waiter.done():
            return
        if exc is not None:
            waiter.set_exception(exc)
        else:
            waiter.set_result(None)

    # --- lower transport callbacks ---------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses; only their API is used.
        self._transport = transport  # type: ignore[assignment]
        self._one_write_per_record = _joins_writelines(transport)
        self._set_state(_State.HANDSHAKING, "connection_made()")
        self._handshake_timer = self._loop.call_later(self._handshake_timeout,
                                                      self._on_handshake_timeout)
        self._flush_tls()  # a client's ClientHello

    def get_buffer(self, sizehint: int) -> memoryview:
        return _recv_buffer()

    def buffer_updated(self, nbytes: int) -> None:
        if self._state is _State.WRAPPED and not self._app_reading_paused \
                and not self._incoming_backlog and not self._events \
                and self._app_state is _AppState.CON_MADE:
            # Interactive traffic: a read that is one short record is opened and handed to
            # the application without events (TLSConnection.receive); anything else takes
            # the general path below, with the same result.
            try:
                data = self._conn.receive(_recv_buffer()[:nbytes])
            except TLSError:
                return  # fed after termination: nothing more to do
            if data is None:
                self._process()
            elif data:
                self._deliver_now(data)
            return
        self._on_ciphertext(_recv_buffer()[:nbytes])

    def data_received(self, data: bytes) -> None:  # for transports that ignore BufferedProtocol
        self._on_ciphertext(data)

    def eof_received(self) -> bool:
        if self._state in (_State.UNWRAPPED, _State.CLOSED):
            return False
        if self._holding_input():
            self._eof_pending = True  # deliver what is buffered first, see _resume_reading
            return True
        self._feed(b"")
        return True  # we close the transport ourselves once the events are handled

    def connection_lost(self, exc: BaseException | None) -> None:
        self._conn_lost += 1
        self._cancel_timers()
        self._write_backlog = ()
        self._write_backlog_size = 0
        self._drop_outgoing()
        self._mark_closed()
        error = self._error or exc
        if self._state is _State.HANDSHAKING or self._waiter is not None:
            self._wakeup_waiter(error or ConnectionResetError(
                "the connection was closed during the TLS handshake"))
        if self._app_state in (_AppState.CON_MADE, _AppState.EOF):
            self._set_app_state(_AppState.CON_LOST, "connection_lost()")
            self._loop.call_soon(self._app_protocol.connection_lost, error)
        self._set_state(_State.CLOSED, "connection_lost()")
        self._transport = None
        # Break the cycles application protocol -> transport -> this protocol -> application
        # protocol and transport, as asyncio's SSLProtocol does: the connection's objects
        # (its engine, tlslite's state, buffers) are then freed at once by reference
        # counting rather than left for the cyclic garbage collector, whose passes over
        # them cost a busy server a noticeable share of its time.  The transport keeps its
        # link to this protocol, so get_extra_info() still answers after the close;
        # get_protocol() returns None, as for asyncio's own transports.
        self._app_transport = None
        self._app_protocol = None

    def pause_writing(self) -> None:
        self._tls_writing_paused = True

    def resume_writing(self) -> None:
        self._tls_writing_paused = False
        if self._state is _State.WRAPPED:
            self._do_write()
        self._control_app_writing()

    # --- incoming --------------------------------------------------------------------------

    def _on_ciphertext(self, data: memoryview | bytes) -> None:
        if self._state in (_State.UNWRAPPED, _State.CLOSED):
            return
        if self._holding_input():
            self._incoming_backlog += data
            self._control_tls_reading()
            return
        self._feed(data)

    def _holding_input(self) -> bool:
        """Whether input must wait: the application paused reading, or ciphertext held
        back while it was paused is still to be fed (resume_reading() feeds it on the next
        loop iteration, and a read may come before that).  While shutting down nothing
        waits: the peer's close_notify must be seen even if the application paused."""
        return (self._app_reading_paused or bool(self._incoming_backlog)) \
            and self._state is _State.WRAPPED

    def _closing(self) -> bool:
        """The application closed the transport (close_notify sent or being sent)."""
        return self._state in (_State.FLUSHING, _State.SHUTDOWN)

    def _feed(self, data: memoryview | bytes) -> None:
        try:
            self._conn.receive_data(data)
        except TLSError:
            return  # fed after termination: nothing more to do
        self._process()

    def _process(self) -> None:
        """Drain the connection's events, deliver what the application may take, transmit."""
        conn = self._conn
        closing = self._closing()
        while (event := conn.next_event()) is not None:
            if isinstance(event, DataReceived | LentDataReceived):
                if closing:
                    # Decrypted after the application's close(): "no more data will be
                    # received" (as sslproto, which discards it while unwrapping).
                    continue
                self._undelivered += len(event.data)
            if not self._events:
                self._events = collections.deque()
            self._events.append(event)
        self._flush_tls()
        self._processing += 1
        try:
            self._deliver()
        finally:
            self._processing -= 1
            if not self._processing and conn.plaintext_lent:
                self._keep_undelivered()
                conn.release_plaintext()
            if not self._processing and not self._events:
                self._events = ()
        self._control_tls_reading()

    def _keep_undelivered(self) -> None:
        """Copy out plaintext still lent by the connection (the application paused)."""
        if not (events := self._events):
            return
        for i, event in enumerate(events):
            if isinstance(event, LentDataReceived):
                events[i] = DataReceived(bytes(event.data))

    def _deliver(self) -> None:
        events = self._events
        while events:
            event = events[0]
            # Once the application closed the transport, a paused reader no longer holds
            # back the end of the connection (the peer's close_notify must be answered).
            closing = self._closing()
            hold = self._app_reading_paused and not closing
            if isinstance(event, DataReceived | LentDataReceived):
                if self._app_reading_paused:
                    if not closing:
                        break
                    events.popleft()  # the app closed while paused: it does not want these
                    self._undelivered -= len(event.data)
                    continue
                events.popleft()
                self._undelivered -= len(event.data)
                if self._app_state is _AppState.CON_MADE and not self._deliver_now(event.data):
                    return
            elif isinstance(event, HandshakeCompleted):
                events.popleft()
                self._on_handshake_complete(event)
            elif isinstance(event, CloseNotifyReceived):
                if hold:
                    break
                events.popleft()
                self._call_eof_received()
            elif isinstance(event, ConnectionTerminated):
                if hold and event.error is None:
                    break
                events.popleft()
                if event.truncated:
                    self._call_eof_received()  # an EOF tolerated by suppress_ragged_eofs
                self._on_terminated(event)
            else:  # pragma: no cover - exhaustive
                events.popleft()

    def _deliver_now(self, data: bytes | memoryview) -> bool:
        """Hand ``data`` to the application; False if the application raised (the
        connection is then aborted, as sslproto does)."""
        try:
            self._deliver_data(data)
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:
            self._fatal_error(exc, "Fatal error in the application protocol")
            return False
        return True

    def _app_takes_buffers(self) -> bool:
        return self._app_is_buffered  # (re-read: buffer_updated() may call set_protocol())

    def _deliver_data(self, data: bytes | memoryview) -> None:
        if not self._app_is_buffered:
            # (lent plaintext reaches asyncio's StreamReader as is, and other protocols only
            # when set_protocol() switched to them meanwhile: as bytes)
            if isinstance(data, memoryview) and not self._app_copies_at_once:
                data = bytes(data)
            self._app_protocol.data_received(data)
            return
        view = memoryview(data)
        pos, total = 0, len(data)
        while pos < total:
            if self._app_reading_paused:
                # paused inside buffer_updated(): keep the rest for resume_reading()
                rest = bytes(view[pos:])
                if not self._events:
                    self._events = collections.deque()
                self._events.appendleft(DataReceived(rest))
                self._undelivered += len(rest)
                return
            if not self._app_takes_buffers():  # set_protocol() to a plain Protocol meanwhile
                self._app_protocol.data_received(bytes(view[pos:]))
                return
            buf = self._app_protocol.get_buffer(total - pos)
            n = min(len(buf), total - pos)
            if n <= 0:
                raise RuntimeError("get_buffer() returned an empty buffer")
            buf[:n] = view[pos:pos + n]
            pos += n
            self._app_protocol.buffer_updated(n)

    def _on_handshake_complete(self, event: HandshakeCompleted) -> None:
        if self._handshake_timer is not None:
            self._handshake_timer.cancel()
            self._handshake_timer = None
        if self._state is not _State.HANDSHAKING:
            return  # aborted meanwhile (a handshake timeout): too late to open
        self._set_state(_State.WRAPPED, "HandshakeCompleted")
        self._handshake_info = event
        if self._app_state is _AppState.INIT:
            self._set_app_state(_AppState.CON_MADE, "HandshakeCompleted")
            self._app_protocol.connection_made(self._app_transport)
        self._wakeup_waiter()
        if self._write_backlog:
            self._do_write()
            # writes made during the handshake may have paused the app: maybe resume it now
            self._control_app_writing()

    def _call_eof_received(self) -> None:
        if self._app_state is not _AppState.CON_MADE:
            return
        self._set_app_state(_AppState.EOF, "CloseNotifyReceived")
        try:
            keep_open = self._app_protocol.eof_received()
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:
            self._fatal_error(exc, "Error calling eof_received()")
            return
        if keep_open:
            logger.warning("returning true from eof_received() has no effect when using TLS")

    def _on_terminated(self, event: ConnectionTerminated) -> None:
        if event.error is not None:
            self._error = event.error
            if self._state is _State.HANDSHAKING:
                self._wakeup_waiter(event.error)
                if self._loop.get_debug() or self._conn.server_side:
                    logger.debug("TLS handshake failed: %s", event.error)
        self._set_state(_State.SHUTDOWN, "ConnectionTerminated")
        self._mark_closed()
        self._flush_tls()
        if self._transport is not None:
            self._transport.close()

    # --- outgoing --------------------------------------------------------------------------

    def _write_appdata(self, list_of_data: Any) -> None:
        if self._state not in (_State.HANDSHAKING, _State.WRAPPED, _State.UNWRAPPED) or \
                self._app_transport is None or self._app_transport._closed:
            if self._conn_lost >= _LOG_THRESHOLD_FOR_CONNLOST_WRITES:
                logger.warning("TLS connection is closed")
            self._conn_lost += 1
            return
        if self._state is _State.WRAPPED and not self._write_backlog \
                and not self._tls_writing_paused:
            # the common case: encrypt at once (no copy of the caller's data to keep)
            items = list_of_data if type(list_of_data) is tuple else list(list_of_data)
            data = items[0] if len(items) == 1 else b"".join(items)
            if data and not self._send_now(data):
                return
        else:
            for data in list_of_data:
                if data:
                    chunk = bytes(data)  # (its bytes, whatever the buffer's item size)
                    if not self._write_backlog:
                        self._write_backlog = collections.deque()
                    self._write_backlog.append(chunk)
                    self._write_backlog_size += len(chunk)
            if self._state is _State.WRAPPED:
                self._do_write()
        self._control_app_writing()

    def _send_small(self, data: bytes | bytearray | memoryview) -> None:
        """``_write_appdata`` for a write below ``_COALESCE_MIN`` while nothing waits to go
        out before it: one call seals it (TLSConnection.send), one write sends it."""
        try:
            out = self._conn.send(data)
        except TLSError as exc:
            self._fatal_error(exc, "Fatal error on TLS protocol")
            return
        transport = self._transport
        if out and transport is not None and not transport.is_closing():
            transport.write(out)
        self._control_app_writing()

    def _do_write(self) -> None:
        if self._tls_writing_paused or not self._write_backlog:
            return
        backlog = self._write_backlog
        data = backlog[0] if len(backlog) == 1 else b"".join(backlog)
        self._write_backlog = ()
        self._write_backlog_size = 0
        self._send_now(data)

    def _send_now(self, data: bytes | bytearray | memoryview) -> bool:
        """Encrypt and transmit; False if that failed (the connection is then aborted)."""
        try:
            self._conn.send_data(data)
        except TLSError as exc:
            self._fatal_error(exc, "Fatal error on TLS protocol")
            return False
        if len(data) >= _COALESCE_MIN or self._flush_scheduled:
            self._queue_tls()
        else:
            self._flush_tls()
        return True

    def _queue_tls(self) -> None:
        """Keep the records for the end of this loop iteration (see _COALESCE_MIN)."""
        out = self._conn.data_to_send()
        if out:
            if self._outgoing:
                self._outgoing.append(out)
            else:
                self._outgoing = [out]
            self._outgoing_size += len(out)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._scheduled_flush)

    def _scheduled_flush(self) -> None:
        self._flush_scheduled = False
        if self._transport is None:  # lost meanwhile: the application hears nothing more
            return
        self._flush_tls()
        self._control_app_writing()

    def _flush_tls(self) -> None:
        """Give the transport every record made so far, in order."""
        out = self._conn.data_to_send()
        outgoing = self._outgoing
        if outgoing:
            if out:
                outgoing.append(out)
            self._drop_outgoing()
            transport = self._transport
            if transport is not None and not transport.is_closing():
                if self._one_write_per_record:
                    for records in outgoing:
                        transport.write(records)
                else:
                    transport.writelines(outgoing)
        elif out and self._transport is not None and not self._transport.is_closing():
            self._transport.write(out)

    def _drop_outgoing(self) -> None:
        self._outgoing = ()
        self._outgoing_size = 0

    def _write_buffer_size(self) -> int:
        lower = self._transport.get_write_buffer_size() if self._transport is not None else 0
        return self._write_backlog_size + self._outgoing_size + lower

    def _control_app_writing(self) -> None:
        size = self._write_buffer_size()
        if size >= self._write_high and not self._app_writing_paused:
            self._app_writing_paused = True
            self._call_app("pause_writing")
        elif size <= self._write_low and self._app_writing_paused:
            self._app_writing_paused = False
            self._call_app("resume_writing")

    def _call_app(self, method: str) -> None:
        if self._app_protocol is None:  # the connection was lost: nothing to tell
            return
        try:
            getattr(self._app_protocol, method)()
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:
            self._loop.call_exception_handler({
                "message": f"protocol.{method}() failed", "exception": exc,
                "transport": self._app_transport, "protocol": self,
            })

    # --- reading flow control ----------------------------------------------------------------

    def _read_buffer_size(self) -> int:
        return len(self._incoming_backlog) + self._undelivered

    def _control_tls_reading(self) -> None:
        if self._transport is None:
            return
        size = self._read_buffer_size()
        if size >= self._read_high and not self._tls_reading_paused:
            self._tls_reading_paused = True
            self._transport.pause_reading()
        elif size <= self._read_low and self._tls_reading_paused:
            self._tls_reading_paused = False
            self._transport.resume_reading()

    def _paused(self) -> bool:
        return self._app_reading_paused

    def _resume_reading(self) -> None:
        if not self._app_reading_paused:
            return
        self._app_reading_paused = False

        def resume() -> None:
            if self._app_reading_paused or self._state in (_State.UNWRAPPED, _State.CLOSED):
                return
            self._deliver()
            if self._paused():  # the application may pause again while being fed
                return
            self._feed_held()
            self._control_tls_reading()

        self._loop.call_soon(resume)

    def _feed_held(self) -> None:
        """Feed the ciphertext, then the EOF, held back while the application paused reading.
        (Once the application is closing, its pause no longer holds back the EOF.)"""
        if self._incoming_backlog:
            backlog = bytes(self._incoming_backlog)
            self._incoming_backlog.clear()
            self._feed(backlog)
        else:
            self._process()
        if self._eof_pending and (self._closing() or not self._paused()):
            self._eof_pending = False
            self._feed(b"")

    # --- shutdown --------------------------------------------------------------------------

    def _start_shutdown(self) -> None:
        if self._state in (_State.FLUSHING, _State.SHUTDOWN, _State.UNWRAPPED, _State.CLOSED):
            return
        self._mark_closed()
        if self._state is _State.HANDSHAKING:
            self._abort(None)
            return
        self._set_state(_State.FLUSHING, "close()")
        self._shutdown_timer = self._loop.call_later(self._shutdown_timeout,
                                                     self._on_shutdown_timeout)
        self._tls_writing_paused = False  # everything left goes to the lower buffer now
        self._do_write()
        self._conn.close()
        self._flush_tls()
        self._set_state(_State.SHUTDOWN, "close_notify sent")
        if self._tls_reading_paused and self._transport is not None:
            self._tls_reading_paused = False
            self._transport.resume_reading()
        self._feed_held()  # the peer's close_notify may already be here

    def _abort(self, exc: BaseException | None) -> None:
        self._mark_closed()
        if self._state is _State.CLOSED:
            return  # the connection is already lost
        if exc is not None and self._error is None:
            self._error = exc
        if self._state is _State.HANDSHAKING:
            self._wakeup_waiter(exc or ConnectionAbortedError("TLS handshake aborted"))
        self._set_state(_State.SHUTDOWN, "abort")
        self._drop_outgoing()
        if self._transport is not None:
            self._transport.abort()

    def _on_handshake_timeout(self) -> None:
        self._handshake_timer = None
        if self._state is not _State.HANDSHAKING:
            return
        self._abort(HandshakeTimeoutError.after(self._handshake_timeout))

    def _on_shutdown_timeout(self) -> None:
        self._shutdown_timer = None
        if not self._closing():
            return
        self._abort(ShutdownTimeoutError.after(self._shutdown_timeout))

    def _fatal_error(self, exc: BaseException, message: str) -> None:
        if not isinstance(exc, OSError):
            self._loop.call_exception_handler({
                "message": message, "exception": exc,
                "transport": self._transport, "protocol": self,
            })
        elif self._loop.get_debug():
            logger.debug("%r: %s", self, message, exc_info=True)
        self._abort(exc)

    def _cancel_timers(self) -> None:
        for timer in (self._handshake_timer, self._shutdown_timer):
            if timer is not None:
                timer.cancel()
        self._handshake_timer = self._shutdown_timer = None

    def __repr__(self) -> str:
        return f"<aiotls.asyncio.TLSProtocol {self._state.value} {self._conn!r}>"
