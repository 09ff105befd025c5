"""aiotls for anyio: :class:`TLSStream` and :class:`TLSListener`.

Needs the ``anyio`` extra (``pip install ".[anyio]"`` from a clone).

Drop-in counterparts of :mod:`anyio.streams.tls`, on asyncio (and uvloop) and trio alike,
driving a :class:`~aiotls.TLSConnection` directly: no ``ssl.SSLObject``, no memory BIOs.

Theory of operation
-------------------
A :class:`TLSStream` owns one :class:`~aiotls.TLSConnection` and the byte stream below it
(the *transport*: a TCP stream, a Unix socket stream, anything that moves bytes).  It is
mechanical, like every aiotls adapter: feed what the transport delivers to the connection,
drain the connection's events, write ``data_to_send()`` to the transport.

Two locks, one per direction of the transport:

* the *read lock* is held by whoever reads the transport -- :meth:`TLSStream.receive`,
  :meth:`~TLSStream.unwrap` -- so two tasks never read it at once;
* the *write lock* is held by whoever writes it.  The holder sends everything the
  connection has queued, in order, and loops until nothing is left: bytes queued while
  it was sending (a KeyUpdate reply, a close_notify made by a receiving task) go out
  with the next round.  So a receiving task that made something to send while a sender
  holds the lock does not wait for it: the holder sends it.  Senders do wait (that is
  their back-pressure).

A send and a receive can therefore run at the same time in two tasks; within a
direction, calls queue on the lock.

The end of the stream, as anyio's :class:`anyio.streams.tls.TLSStream` reports it:

* the peer's close_notify: :exc:`anyio.EndOfStream`.  On TLS 1.3 our side stays open
  (``TLSConnection(half_close=True)``): :meth:`TLSStream.send` still works, and
  :meth:`TLSStream.aclose` sends our close_notify.  On TLS 1.2 it is answered at once and
  later sends fail (RFC 5246 7.2.1);
* transport EOF without close_notify (a possible truncation attack):
  :exc:`anyio.BrokenResourceError` from an :class:`aiotls.TruncationError` with
  ``standard_compatible=True``, :exc:`anyio.EndOfStream` otherwise (or when the
  context has ``suppress_ragged_eofs``);
* a TLS error (bad record, alert, certificate): the :class:`aiotls.TLSError` itself
  (an :class:`ssl.SSLError`), once the alert owed to the peer was sent (bounded) and the
  transport closed; later calls raise :exc:`anyio.BrokenResourceError`.

:meth:`TLSStream.send_eof` is a real half-close on TLS 1.3 (RFC 8446 6.1 lets each side
close its write side alone): it sends close_notify and the stream keeps receiving until
the peer's close_notify.  TLS 1.2 has no half-close (RFC 5246 7.2.1: the receiver of a
close_notify must answer and discard pending writes), so there it raises
:exc:`NotImplementedError`, as anyio's own stream does.

:meth:`TLSStream.unwrap` hands back the bytes that follow the peer's close_notify
(cleartext of the protocol that continues on the transport): the connection keeps them
in :attr:`aiotls.TLSConnection.unused_data`.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any, cast

import anyio
from anyio.abc import (
    AnyByteStream,
    ByteReceiveStream,
    ByteSendStream,
    ByteStream,
    Listener,
    SocketAttribute,
    TaskGroup,
)
from anyio.streams.tls import TLSAttribute

from ._gate import _Gate
from .connection import ConnectionState, TLSConnection, TLSSession
from .context import TLSContext
from .errors import TLSError, TLSUsageError, TruncationError
from .events import CloseNotifyReceived, ConnectionTerminated, DataReceived

__all__ = ["TLSListener", "TLSStream"]

logger = logging.getLogger(__name__)

#: Bytes asked of the transport per read.  On asyncio a stream hands over what the event
#: loop read (up to 256 KiB), and cuts a larger piece with two copies: ask for all of it.
_READ_SIZE = 256 * 1024
#: On trio a read allocates a buffer of the size asked for: 64 KiB stays below glibc's
#: mmap threshold (no fresh pages to fault in on every read) and decrypts to less than
#: a default receive() takes, so the plaintext is handed over without being cut (copied).
#: 256 KiB cost 3-7% of bulk throughput on trio in A/B runs here.
_READ_SIZE_TRIO = 64 * 1024


def _running_trio() -> bool:
    """Whether this task runs on trio (anyio's trio backend)."""
    trio = sys.modules.get("trio")
    if trio is None:
        return False
    try:
        trio.lowlevel.current_task()
    except RuntimeError:
        return False
    return True


def _a_labels(hostname: str) -> str:
    """An internationalised host name in its ASCII form (IDNA 2008, UTS 46 mapping), as
    anyio resolves it for its own TLS stream; ASCII names and IP addresses as they are."""
    try:
        hostname.encode("ascii")
    except UnicodeEncodeError:
        import idna  # anyio's own dependency

        return idna.encode(hostname, uts46=True).decode("ascii")
    return hostname




class TLSStream(ByteStream):
    """A byte stream that encrypts what is sent and decrypts what is received.

    Made with :meth:`wrap`, which performs the TLS handshake.  All the extra attributes of
    :class:`anyio.streams.tls.TLSAttribute` are supported (``shared_ciphers`` is ``None``
    on clients, as in anyio; ``channel_binding_tls_unique`` is ``None`` for TLS 1.3, RFC 8446
    C.5); ``ssl_object`` is the
    :class:`aiotls.TLSConnection`.  The transport's own attributes are passed through.

    :var transport_stream: the wrapped stream.
    :var standard_compatible: whether close_notify is sent on close and required from
        the peer (see :meth:`wrap`).
    :var close_timeout: seconds :meth:`aclose` (and a fatal error) may spend sending the
        last bytes -- close_notify, an alert -- before the transport is closed regardless.
    """

    transport_stream: AnyByteStream
    standard_compatible: bool
    close_timeout: float = 5.0

    def __init__(self, transport_stream: AnyByteStream, connection: TLSConnection, *,
                 standard_compatible: bool) -> None:
        """Internal: use :meth:`wrap`."""
        self.transport_stream = transport_stream
        self.standard_compatible = standard_compatible
        self._conn = connection
        # A byte stream is asked for large reads and sent the connection's bytearrays as
        # they are; an object stream of bytes (anyio's memory streams) gets bytes.
        self._bytes_out = not isinstance(transport_stream, ByteSendStream)
        self._receive_size = isinstance(transport_stream, ByteReceiveStream)
        self._read_size = _READ_SIZE_TRIO if _running_trio() else _READ_SIZE
        self._read_lock = _Gate()
        self._write_lock = _Gate()
        self._plain: deque[bytes] = deque()  # decrypted, not yet received
        self._head_pos = 0  # how much of _plain[0] was received already
        self._peer_closed = False  # the peer's close_notify arrived
        self._terminated: ConnectionTerminated | None = None
        self._eof_sent = False  # send_eof(): we still expect the peer's data
        self._closed = False  # aclose() or unwrap(): this stream is done
        self._discarding = False  # unwrap() or aclose() began: received data is dropped
        self._broken: BaseException | None = None  # the transport is unusable
        self._reported = False  # the terminating error was raised once already
        self._leftover = b""  # transport bytes after the peer's close_notify

    # --- making one ----------------------------------------------------------------------

    @classmethod
    async def wrap(
        cls,
        transport_stream: AnyByteStream,
        *,
        server_side: bool | None = None,
        hostname: str | None = None,
        ssl_context: TLSContext,
        standard_compatible: bool = True,
        session: TLSSession | None = None,
    ) -> TLSStream:
        """Wrap a byte stream with TLS; performs the handshake.

        :param transport_stream: the byte stream to run TLS over.
        :param server_side: ``True`` for the server side; defaults to ``not hostname``, as
            in anyio.
        :param hostname: the server's name (clients): sent as SNI and verified against the
            certificate when ``ssl_context.check_hostname`` is on.  An internationalised
            name is converted to its ASCII form (IDNA 2008), as anyio does.
        :param ssl_context: an :class:`aiotls.TLSContext` made for this side
            (``ssl.PROTOCOL_TLS_CLIENT`` or ``ssl.PROTOCOL_TLS_SERVER``).
        :param standard_compatible: ``False`` skips close_notify when closing and takes the
            transport's EOF without close_notify as a normal end of stream.
        :param session: a :class:`aiotls.TLSSession` to resume (clients), from
            ``stream.extra(TLSAttribute.ssl_object).session`` of an earlier connection.
        :raises aiotls.TLSError: the handshake failed (an :class:`ssl.SSLError`; e.g.
            :class:`aiotls.CertificateError` for a certificate that did not verify).  The
            transport is closed after the alert was sent.
        :raises anyio.BrokenResourceError: the transport closed during the handshake
            (``standard_compatible=False``: :exc:`anyio.EndOfStream`), or failed.
        """
        if not isinstance(ssl_context, TLSContext):
            raise TypeError("ssl_context must be an aiotls.TLSContext, not "
                            f"{type(ssl_context).__name__} (for an ssl.SSLContext use "
                            "anyio.streams.tls.TLSStream)")
        if server_side is None:
            server_side = not hostname
        if server_side and hostname:
            raise TLSUsageError("hostname is only meaningful for clients",
                                hint="drop hostname= on the server side")
        conn = TLSConnection(ssl_context, server_side=server_side,
                             server_hostname=_a_labels(hostname) if hostname else None,
                             session=session, half_close=True)
        stream = cls(transport_stream, conn, standard_compatible=standard_compatible)
        await stream._handshake()
        return stream

    async def _handshake(self) -> None:
        conn = self._conn
        async with self._read_lock:
            await self._flush(blocking=True)  # a client's ClientHello
            while not conn.handshake_complete and self._terminated is None:
                self._feed(await self._read_transport())
                if self._terminated is None:
                    await self._flush(blocking=True)  # our next flight
            if not conn.handshake_complete:
                await self._raise_end()
            # (an end right after the handshake is for receive() to report)

    # --- receiving -----------------------------------------------------------------------

    async def receive(self, max_bytes: int = 65536) -> bytes:
        """Up to ``max_bytes`` of decrypted data (at least one byte).

        :raises anyio.EndOfStream: the peer sent close_notify (or, see :meth:`wrap`, the
            transport closed without one and that is tolerated).
        :raises anyio.BrokenResourceError: the transport closed without close_notify
            (``standard_compatible``), failed, or the stream failed earlier.
        :raises aiotls.TLSError: the peer broke the protocol, sent an alert, ...
        :raises anyio.ClosedResourceError: this stream was closed.
        """
        if max_bytes < 1:
            raise ValueError("max_bytes must be a positive integer")
        lock = self._read_lock
        try:
            lock.acquire_nowait()  # (the usual case, without a coroutine of its own)
        except anyio.WouldBlock:
            await lock.acquire()
        try:
            while not self._plain:
                if self._closed:
                    raise anyio.ClosedResourceError
                if self._peer_closed or self._terminated is not None:
                    await self._raise_end()
                data = await self._read_transport()
                self._feed(data)
                await self._flush(blocking=False)  # replies made while reading
            return self._take(max_bytes)
        finally:
            lock.release()

    def _take(self, max_bytes: int) -> bytes:
        plain = self._plain
        head = plain[0]
        pos = self._head_pos
        if len(head) - pos > max_bytes:
            self._head_pos = pos + max_bytes
            return head[pos:pos + max_bytes]
        plain.popleft()
        self._head_pos = 0
        out = head[pos:] if pos else head
        if plain and len(out) + len(plain[0]) <= max_bytes:
            # small pieces, received separately: hand them over together
            parts = [out]
            size = len(out)
            while plain and size + len(plain[0]) <= max_bytes:
                part = plain.popleft()
                parts.append(part)
                size += len(part)
            out = b"".join(parts)
        return out

    async def _read_transport(self) -> bytes:
        """The transport's next bytes; ``b""`` at its EOF."""
        if self._broken is not None:
            raise anyio.BrokenResourceError from self._broken
        try:
            if self._receive_size:
                return await cast(ByteReceiveStream,
                                  self.transport_stream).receive(self._read_size)
            return await self.transport_stream.receive()
        except anyio.EndOfStream:
            return b""
        except anyio.ClosedResourceError:
            if self._closed:
                raise
            self._broken = anyio.ClosedResourceError()
            raise
        except (OSError, anyio.BrokenResourceError) as exc:
            self._broken = exc
            if isinstance(exc, anyio.BrokenResourceError):
                raise
            raise anyio.BrokenResourceError from exc

    def _feed(self, data: bytes) -> None:
        """Give transport bytes to the connection and collect what they meant."""
        conn = self._conn
        plain = conn.receive(data)  # (one short record: its data, without an event)
        if plain is None:
            self._drain()
        elif plain and not self._discarding:
            self._plain.append(plain)
        if self._peer_closed and conn.unused_data:
            # cleartext that followed the peer's close_notify: the next protocol's
            self._leftover = conn.unused_data

    def _drain(self) -> None:
        conn = self._conn
        while (event := conn.next_event()) is not None:
            if isinstance(event, DataReceived):
                if not self._discarding:  # (during unwrap() or aclose() nobody wants it)
                    self._plain.append(event.data)
            elif isinstance(event, CloseNotifyReceived):
                self._peer_closed = True
            elif isinstance(event, ConnectionTerminated):
                self._terminated = event
            # HandshakeCompleted: conn.handshake_complete says it; ClientCertificateReceived:
            # conn.getpeercert() has it.

    async def _raise_end(self) -> None:
        """Raise what the end of the connection means to a caller (see the module doc)."""
        event = self._terminated
        error = event.error if event is not None else None
        if error is not None and not isinstance(error, TruncationError):
            if not self._reported:
                self._reported = True
                await self._close_after_error()
                raise error
            raise anyio.BrokenResourceError from error
        truncated = isinstance(error, TruncationError) or (
            # EOF after our send_eof() without the peer's close_notify: the connection
            # calls that clean (we closed), but we were still reading the peer's data
            self._eof_sent and not self._peer_closed and not self._closed)
        if truncated:
            if not isinstance(error, TruncationError):
                error = TruncationError.without_close_notify(
                    "pass standard_compatible=False")
            if self.standard_compatible:
                raise anyio.BrokenResourceError from error
            raise anyio.EndOfStream
        raise anyio.EndOfStream

    async def _close_after_error(self, *, locked: bool = False) -> None:
        """A fatal TLS error: send the alert owed to the peer (bounded), close the transport.
        ``locked``: the caller holds the write lock."""
        with anyio.move_on_after(self.close_timeout):
            try:
                if not locked:
                    await self._flush(blocking=True)
                elif self._broken is None:
                    await self._send_queued()
            except (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError):
                pass
        self._broken = self._broken or self._conn.error
        await anyio.aclose_forcefully(self.transport_stream)

    # --- sending -------------------------------------------------------------------------

    async def send(self, item: bytes) -> None:
        """Encrypt ``item`` and send it.

        :raises anyio.ClosedResourceError: this side closed (``aclose``, ``send_eof``,
            ``unwrap``).
        :raises anyio.BrokenResourceError: the peer closed the connection, the transport
            failed, or the stream failed earlier.
        """
        lock = self._write_lock
        try:
            lock.acquire_nowait()
        except anyio.WouldBlock:
            await lock.acquire()
        try:
            self._check_writable()
            try:
                out = self._conn.send(item)
            except TLSUsageError as exc:
                raise anyio.BrokenResourceError from exc
            except TLSError:  # the connection failed (it reported it as an event, too)
                self._drain()
                self._reported = True
                await self._close_after_error(locked=True)
                raise
            await self._send_queued(out)
        finally:
            lock.release()

    def _check_writable(self) -> None:
        if self._closed or self._eof_sent:
            raise anyio.ClosedResourceError
        if self._broken is not None:
            raise anyio.BrokenResourceError from self._broken
        if self._terminated is not None:
            raise anyio.BrokenResourceError from self._terminated.error
        if self._peer_closed and self._conn.state is not ConnectionState.OPEN:
            raise anyio.BrokenResourceError  # (TLS 1.2: the peer's close_notify ends both)

    async def _flush(self, *, blocking: bool) -> None:
        """Send what the connection has queued.  Not ``blocking``: leave it to the task
        holding the write lock, if any (it sends everything queued before it lets go)."""
        if not blocking:
            if self._write_lock.locked():
                return
            out = self._conn.data_to_send()
            if not out:
                return
            self._write_lock.acquire_nowait()  # (free: checked above, nothing ran since)
            try:
                if self._broken is None:
                    with contextlib.suppress(OSError, anyio.BrokenResourceError,
                                             anyio.ClosedResourceError):
                        # A reply made while reading (a KeyUpdate answer, our close_notify)
                        # that cannot be sent: the next send() reports it; what was
                        # received still counts.
                        await self._send_queued(out)
            finally:
                self._write_lock.release()
            return
        async with self._write_lock:
            if self._broken is not None:
                raise anyio.BrokenResourceError from self._broken
            await self._send_queued()

    async def _send_queued(self, out: bytes | bytearray = b"") -> None:
        """With the write lock: send ``out`` (taken from the connection already), then the
        connection's output until none is left."""
        conn = self._conn
        while out or (out := conn.data_to_send()):
            try:
                await self.transport_stream.send(bytes(out) if self._bytes_out
                                                 else cast(bytes, out))
            except BaseException as exc:
                # These records used up sequence numbers: once they are lost, nothing sent
                # after them can be decrypted (anyio and trio treat it the same way).
                self._broken = exc if isinstance(exc, Exception) else anyio.BrokenResourceError()
                if isinstance(exc, OSError):
                    raise anyio.BrokenResourceError from exc
                raise
            out = b""

    async def send_eof(self) -> None:
        """TLS 1.3: send close_notify and go on receiving until the peer's (a half-close).

        After it :meth:`send` raises :exc:`anyio.ClosedResourceError`, :meth:`receive`
        delivers the peer's data until its close_notify.  aiotls and OpenSSL peers can
        go on sending; peers that answer a close_notify at once end their side too.

        :raises NotImplementedError: on TLS 1.2, which has no half-close.
        """
        version = self._conn.version()
        if version != "TLSv1.3":
            raise NotImplementedError(
                f"send_eof() needs TLS 1.3; this connection uses {version}, whose close_notify "
                "ends both directions (RFC 5246 7.2.1): use aclose() instead")
        async with self._write_lock:
            if self._eof_sent or self._closed:
                return
            self._check_writable()
            self._eof_sent = True
            self._conn.close()
            await self._send_queued()

    # --- closing -------------------------------------------------------------------------

    async def unwrap(self) -> tuple[AnyByteStream, bytes]:
        """Close TLS both ways and give back the transport, to go on in cleartext.

        Sends close_notify and waits for the peer's (bound it with
        :func:`anyio.fail_after`).  Data the peer sent before its close_notify and not yet
        received is discarded.

        :return: the transport stream and the bytes that followed the peer's close_notify
            on it (to be read before anything else from the transport).
        """
        async with self._read_lock:
            if self._closed:
                raise anyio.ClosedResourceError
            self._discarding = True
            async with self._write_lock:
                if self._conn.state in (ConnectionState.OPEN, ConnectionState.HANDSHAKING):
                    self._conn.close()
                self._eof_sent = True
                if self._broken is None:
                    await self._send_queued()
            self._plain.clear()
            self._head_pos = 0
            while not self._peer_closed:
                if self._terminated is not None:
                    await self._raise_end()  # the TLS error, or the transport's EOF
                self._feed(await self._read_transport())
            self._closed = True
            return self.transport_stream, self._leftover

    async def aclose(self) -> None:
        """Send close_notify (``standard_compatible``; for at most :attr:`close_timeout`
        seconds), then close the transport.  The peer's close_notify is not waited for
        (RFC 8446 6.1 allows it)."""
        if self._closed:
            return
        self._closed = self._discarding = True
        self._plain.clear()
        try:
            if self.standard_compatible and self._broken is None:
                with anyio.move_on_after(self.close_timeout):
                    async with self._write_lock:
                        self._conn.close()
                        if self._broken is None:
                            with contextlib.suppress(OSError, anyio.BrokenResourceError,
                                                     anyio.ClosedResourceError):
                                await self._send_queued()
        except BaseException:
            await anyio.aclose_forcefully(self.transport_stream)
            raise
        await self.transport_stream.aclose()

    # --- attributes ----------------------------------------------------------------------

    @property
    def extra_attributes(self) -> Mapping[Any, Callable[[], Any]]:
        conn = self._conn
        attributes: dict[Any, Callable[[], Any]] = {
            **self.transport_stream.extra_attributes,
            TLSAttribute.alpn_protocol: conn.selected_alpn_protocol,
            TLSAttribute.channel_binding_tls_unique: conn.get_channel_binding,
            TLSAttribute.cipher: conn.cipher,
            TLSAttribute.peer_certificate: lambda: conn.getpeercert(False),
            TLSAttribute.peer_certificate_binary: lambda: conn.getpeercert(True),
            TLSAttribute.server_side: lambda: conn.server_side,
            TLSAttribute.ssl_object: lambda: conn,
            TLSAttribute.standard_compatible: lambda: self.standard_compatible,
            TLSAttribute.tls_version: conn.version,
            TLSAttribute.shared_ciphers: conn.shared_ciphers,
        }
        return attributes

    def __repr__(self) -> str:
        return f"<aiotls.anyio.TLSStream {self._conn!r}>"


class TLSListener(Listener[TLSStream]):
    """A listener that performs the TLS handshake on each connection it accepts.

    Like :class:`anyio.streams.tls.TLSListener`: the handler gets a :class:`TLSStream`
    once the handshake succeeded; a handshake that fails or takes longer than
    ``handshake_timeout`` seconds is logged (logger ``aiotls.anyio``) and its connection
    closed, and the listener goes on.

    :param listener: the listener to wrap (e.g. from :func:`anyio.create_tcp_listener`).
    :param ssl_context: the server's :class:`aiotls.TLSContext` (checked now).
    :param standard_compatible: passed to :meth:`TLSStream.wrap`.
    :param handshake_timeout: seconds a client has to complete the handshake.
    """

    def __init__(self, listener: Listener[Any], ssl_context: TLSContext,
                 standard_compatible: bool = True, handshake_timeout: float = 30) -> None:
        TLSConnection.check_context(ssl_context, server_side=True)
        if handshake_timeout <= 0:
            raise ValueError(f"handshake_timeout should be a positive number, got "
                             f"{handshake_timeout}")
        self.listener = listener
        self.ssl_context = ssl_context
        self.standard_compatible = standard_compatible
        self.handshake_timeout = handshake_timeout

    @staticmethod
    async def handle_handshake_error(exc: BaseException, stream: AnyByteStream,
                                     peer: object = None) -> None:
        """Called when a handshake failed: logs ``exc`` (TLS errors, timeouts and early
        EOFs as one warning line; anything else with its traceback) with the ``peer``'s
        address, closes ``stream``, and re-raises cancellation and exceptions that are not
        :class:`Exception`."""
        if isinstance(exc, anyio.get_cancelled_exc_class()) or not isinstance(exc, Exception):
            await anyio.aclose_forcefully(stream)
            raise exc
        if isinstance(exc, TimeoutError):
            logger.warning("TLS handshake with %s timed out", peer)
        elif isinstance(exc, TLSError | anyio.EndOfStream | anyio.BrokenResourceError):
            detail = str(exc.__cause__ or exc) or "the connection closed"
            logger.warning("TLS handshake with %s failed: %s", peer, detail)
        else:
            logger.error("TLS handshake with %s failed", peer, exc_info=exc)
        await anyio.aclose_forcefully(stream)

    async def serve(self, handler: Callable[[TLSStream], Any],
                    task_group: TaskGroup | None = None) -> None:
        async def handshake_then_handle(stream: AnyByteStream) -> None:
            try:  # (read now: a failed handshake closes the socket)
                peer = stream.extra(SocketAttribute.remote_address, None)
            except Exception:
                peer = None
            try:
                with anyio.fail_after(self.handshake_timeout):
                    wrapped = await TLSStream.wrap(stream, server_side=True,
                                                   ssl_context=self.ssl_context,
                                                   standard_compatible=self.standard_compatible)
            except BaseException as exc:
                await self.handle_handshake_error(exc, stream, peer)
            else:
                await handler(wrapped)

        await self.listener.serve(handshake_then_handle, task_group)

    async def aclose(self) -> None:
        await self.listener.aclose()

    @property
    def extra_attributes(self) -> Mapping[Any, Callable[[], Any]]:
        return {
            **self.listener.extra_attributes,
            TLSAttribute.standard_compatible: lambda: self.standard_compatible,
        }
