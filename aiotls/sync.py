"""Blocking sockets: :func:`wrap_socket` and :class:`TLSSocket`, an :class:`ssl.SSLSocket`
driven by a :class:`~aiotls.TLSConnection`.

Theory of operation
-------------------
``TLSContext.wrap_socket(sock, ...)`` lands here.  As the stdlib does, the new
:class:`TLSSocket` takes over ``sock``'s file descriptor (``sock`` is detached), so
the object *is* the socket: ``fileno()``, ``settimeout()``, ``getpeername()``,
``makefile()`` and ``select()`` work unchanged, and ``isinstance(s, ssl.SSLSocket)``
is true.  It is never initialised as an OpenSSL socket: ``_sslobj`` stays ``None``
and every method of :class:`ssl.SSLSocket` that would use it is overridden here, so
nothing falls back to OpenSSL.

Each method runs the sans-IO loop over the raw socket (the ``socket.socket``
methods, reached past the overrides):

* ciphertext the connection produces goes to an output queue, written by
  :meth:`TLSSocket._flush` -- a *writer* writes it all (blocking, honouring the
  socket's timeout); a *reader* that finds the queue busy leaves its bytes to the
  writer in progress (it re-checks after the writer is done), so a reader never
  waits behind a writer that waits for the peer;
* a read takes at most :data:`_READ_SIZE` raw bytes, feeds them to the connection
  and drains its events into a plaintext buffer (bounded by one read);
* the record boundaries of the raw stream are tracked, so :meth:`TLSSocket.unwrap`
  can read exactly up to the end of the peer's close_notify record and leave what
  follows (plaintext) in the kernel, as OpenSSL does.

Three locks: ``_lock`` guards the :class:`TLSConnection` and the buffers (held only
while computing, never during I/O); ``_read_lock`` makes readers (and the handshake)
take turns; ``_write_lock`` makes writers take turns.  One reader thread and one
writer thread may use a socket at the same time, as with the stdlib.

Timeouts are the socket's own: a blocking socket with a timeout raises
:class:`TimeoutError` when one raw operation waits longer; a non-blocking socket
raises :class:`ssl.SSLWantReadError` / :class:`ssl.SSLWantWriteError` like the stdlib.
Fatal TLS errors are raised as the :class:`~aiotls.TLSError` the connection reported
(after its alert was written), never as :class:`ssl.SSLSyscallError`.

:class:`Channel` is the same loop one level down, for programs that want the
connection's events rather than a socket (the command line is one): no locks, no
buffering, a deadline on every wait.
"""

from __future__ import annotations

import builtins
import contextlib
import errno
import socket
import ssl
import threading
import time
import weakref
from collections import deque
from typing import Any

from ._introspect import CHANNEL_BINDING_TYPES
from .compat import normalise_hostname, want_read
from .connection import ConnectionState, TLSConnection, TLSSession
from .context import TLSContext
from .errors import TLSError, TLSUsageError, TruncationError
from .events import (
    CloseNotifyReceived,
    ConnectionTerminated,
    DataReceived,
    Event,
    HandshakeCompleted,
)

__all__ = ["Channel", "TLSSocket", "wrap_socket"]

_READ_SIZE = 65536  # raw bytes per read: the plaintext buffer never holds more
_WRITE_CHUNK = 256 * 1024  # plaintext accepted per write(): the output queue stays bounded
_HEADER = 5


def wrap_socket(
    sock: socket.socket,
    context: TLSContext,
    *,
    server_side: bool = False,
    do_handshake_on_connect: bool = True,
    suppress_ragged_eofs: bool = True,
    server_hostname: str | bytes | None = None,
    session: TLSSession | None = None,
) -> TLSSocket:
    """Wrap a stream socket in TLS, like :meth:`ssl.SSLContext.wrap_socket`.

    ``sock`` is detached: use the returned :class:`TLSSocket` from now on.  A connected
    socket handshakes at once when ``do_handshake_on_connect`` (the default); an
    unconnected client handshakes after :meth:`~TLSSocket.connect`, a wrapped listening
    socket in :meth:`~TLSSocket.accept`.  ``suppress_ragged_eofs`` (default True, as in
    the stdlib) makes ``recv`` return ``b""`` when the peer closes the TCP connection
    without close_notify at a record boundary; otherwise that raises
    :class:`~aiotls.TruncationError`.  (It replaces ``context.suppress_ragged_eofs`` for
    this socket.)
    """
    return TLSSocket._wrap(sock, context, server_side=server_side,
                           do_handshake_on_connect=do_handshake_on_connect,
                           suppress_ragged_eofs=suppress_ragged_eofs,
                           server_hostname=server_hostname, session=session)


def _want_write() -> ssl.SSLWantWriteError:
    return ssl.SSLWantWriteError(ssl.SSL_ERROR_WANT_WRITE,
                                 "The operation did not complete (write)")


def _truncation() -> TruncationError:
    return TruncationError.without_close_notify(
        "wrap the socket with suppress_ragged_eofs=True")


class TLSSocket(ssl.SSLSocket):
    """A blocking TLS socket driven by aiotls; made by :func:`wrap_socket`.

    It behaves like :class:`ssl.SSLSocket` (of which it is a subclass) -- ``recv``,
    ``recv_into``, ``send``, ``sendall``, ``sendfile``, ``makefile``, ``unwrap``,
    ``getpeercert``, ``version``, ``cipher`` and the rest -- but the TLS is aiotls's:
    :attr:`connection` is the :class:`~aiotls.TLSConnection` behind it.
    """

    _context: TLSContext
    _conn: TLSConnection | None
    _session: TLSSession | None
    _connected: bool
    _lock: threading.Lock
    _read_lock: threading.Lock
    _write_lock: threading.RLock
    _sslobj: None
    #: Handshake in connect()/accept() (and at wrap time for connected sockets).
    do_handshake_on_connect: bool
    #: ``recv`` returns ``b""`` (not TruncationError) on EOF without close_notify.
    suppress_ragged_eofs: bool

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError("TLSSocket has no public constructor: use TLSContext.wrap_socket() "
                        "or aiotls.sync.wrap_socket()")

    @classmethod
    def _wrap(cls, sock: socket.socket, context: TLSContext, *, server_side: bool,
              do_handshake_on_connect: bool, suppress_ragged_eofs: bool,
              server_hostname: str | bytes | None, session: TLSSession | None) -> TLSSocket:
        if not isinstance(context, TLSContext):
            raise TypeError(f"context must be an aiotls.TLSContext, not {type(context).__name__}")
        if isinstance(sock, ssl.SSLSocket):
            raise TLSUsageError("the socket is already a TLS socket",
                                cause="wrap_socket() was given the result of a wrap_socket()",
                                hint="wrap the plain socket once")
        if sock.getsockopt(socket.SOL_SOCKET, socket.SO_TYPE) != socket.SOCK_STREAM:
            raise NotImplementedError("only stream sockets are supported")
        hostname = normalise_hostname(server_hostname)
        TLSConnection.check_context(context, server_side=server_side)
        connected = True
        try:
            sock.getpeername()
        except OSError as exc:
            if exc.errno not in (errno.ENOTCONN, errno.EINVAL):
                raise
            connected = False
        if connected and do_handshake_on_connect and sock.gettimeout() == 0.0:
            raise ValueError("do_handshake_on_connect should not be specified for "
                             "non-blocking sockets")
        # The connection is made before taking the socket over, so bad arguments leave
        # the caller's socket untouched.  A listening socket gets none: accept() wraps.
        conn: TLSConnection | None = None
        if connected or not server_side:
            conn = TLSConnection(context, server_side=server_side, server_hostname=hostname,
                                 session=session, half_close=True)
        kwargs: dict[str, Any] = {"family": sock.family, "type": sock.type,
                                  "proto": sock.proto, "fileno": sock.fileno()}
        self = cls.__new__(cls, **kwargs)
        socket.socket.__init__(self, **kwargs)
        timeout = sock.gettimeout()
        sock.detach()
        self.settimeout(timeout)
        self._context = context
        self._session = session
        self._sslobj = None  # never an OpenSSL object
        self.server_side = server_side
        self.server_hostname = hostname
        self.do_handshake_on_connect = do_handshake_on_connect
        self.suppress_ragged_eofs = suppress_ragged_eofs
        self._connected = connected
        self._lock = threading.Lock()
        self._read_lock = threading.Lock()
        self._write_lock = threading.RLock()
        self._reset(conn)
        if connected and do_handshake_on_connect:
            try:
                self.do_handshake()
            except BaseException:
                self.close()
                raise
        return self

    def _reset(self, conn: TLSConnection | None) -> None:
        self._conn = conn
        if conn is not None:
            conn._sni_owner = weakref.ref(self)  # (what a server's sni_callback is given)
        self._out: deque[bytes | bytearray | memoryview] = deque()
        self._plain = bytearray()
        self._rbuf = bytearray(_READ_SIZE) if conn is not None else bytearray()
        self._handshake_done = False
        self._terminated = False
        self._peer_closed = False  # the peer's close_notify arrived
        self._truncated = False
        self._error: TLSError | None = None
        self._discard = False  # unwrapping: data after our close_notify is dropped
        self._started = False  # bytes were exchanged (the connection can no longer change)
        self._rec_left = 0  # bytes of the current incoming record still to come
        self._rec_head = bytearray()  # a record header split across reads
        if conn is not None:
            self._collect()

    # --- the sans-IO loop ------------------------------------------------------------------------

    @property
    def connection(self) -> TLSConnection | None:
        """The :class:`~aiotls.TLSConnection` doing the TLS (``None`` once unwrapped or
        on a wrapped listening socket)."""
        return self._conn

    def _collect(self) -> None:
        """Drain the connection's events and output (``_lock`` held)."""
        conn = self._conn
        assert conn is not None
        event: Event | None
        while (event := conn.next_event()) is not None:
            if isinstance(event, DataReceived):
                if not self._discard:
                    self._plain += event.data
            elif isinstance(event, HandshakeCompleted):
                self._handshake_done = True
            elif isinstance(event, CloseNotifyReceived):
                # (TLS 1.3: our side stays open -- half_close -- until unwrap() or close())
                self._peer_closed = True
            elif isinstance(event, ConnectionTerminated):
                self._terminated = True
                self._error = event.error
                self._truncated = event.truncated
        out = conn.data_to_send()
        if out:
            self._out.append(out)

    def _flush(self, *, writer: bool) -> None:
        """Write the queued ciphertext.

        A writer writes all of it (raising :class:`TimeoutError`, ``OSError``, or
        ``SSLWantWriteError`` on a non-blocking socket); a reader writes only if no
        writer is busy (which then writes the reader's bytes too) and never raises
        for a full non-blocking socket (the bytes go out with the next call).
        """
        while self._out:
            if not self._write_lock.acquire(blocking=writer):
                return  # a writer is at work: it re-checks the queue before leaving
            try:
                while self._out:
                    chunk = self._out[0]
                    try:
                        sent = socket.socket.send(self, chunk)
                    except BlockingIOError:
                        if writer:
                            raise _want_write() from None
                        return
                    self._started = True
                    if sent < len(chunk):
                        self._out[0] = memoryview(chunk)[sent:]
                    else:
                        self._out.popleft()
            finally:
                self._write_lock.release()

    def _flush_owed(self) -> None:
        """Best effort to deliver the alert or close_notify owed to a peer that is leaving."""
        with contextlib.suppress(OSError):
            self._flush(writer=True)

    def _track(self, data: memoryview) -> None:
        """Follow the record boundaries of the incoming stream (for :meth:`unwrap`)."""
        pos, end = 0, len(data)
        while pos < end:
            if self._rec_left:
                step = min(self._rec_left, end - pos)
                self._rec_left -= step
                pos += step
                continue
            head = self._rec_head
            take = min(_HEADER - len(head), end - pos)
            head += data[pos:pos + take]
            pos += take
            if len(head) == _HEADER:
                self._rec_left = (head[3] << 8) | head[4]
                head.clear()

    def _receive(self, *, exact: bool = False) -> None:
        """One raw read fed to the connection (``_read_lock`` held).

        ``exact`` reads no further than the end of the current record.  Raises
        :class:`TimeoutError`, ``OSError``, or ``SSLWantReadError`` (non-blocking).
        """
        size = _READ_SIZE
        if exact:
            size = self._rec_left or _HEADER - len(self._rec_head)
        try:
            n = socket.socket.recv_into(self, self._rbuf, size)
        except BlockingIOError:
            raise want_read() from None
        data = memoryview(self._rbuf)[:n]
        self._track(data)
        with self._lock:
            conn = self._conn
            if conn is None or self._terminated:
                return
            with contextlib.suppress(TLSError):  # reported by ConnectionTerminated
                conn.receive_data(data)
            self._collect()
            failed = self._error is not None
        if failed:
            self._flush_owed()
        else:
            try:
                self._flush(writer=False)
            except OSError:
                if not self._terminated:
                    raise

    def _live(self, doing: str) -> TLSConnection:
        conn = self._conn
        if conn is None:
            raise ValueError(f"{doing} on closed or unwrapped SSL socket.")
        return conn

    def _ended(self, nbytes: bool) -> int | bytes:
        """What a read returns (or raises) once the connection is over (``_lock`` held)."""
        err = self._error
        if err is None:
            if self._truncated and not self.suppress_ragged_eofs:
                raise _truncation()
            return 0 if nbytes else b""
        if isinstance(err, TruncationError) and err.code == "truncated" \
                and self.suppress_ragged_eofs:
            return 0 if nbytes else b""
        raise err

    # --- handshake -------------------------------------------------------------------------------

    def _require_connected(self) -> None:
        if not self._connected:
            self.getpeername()  # raises ENOTCONN if the socket really is not connected

    def do_handshake(self, block: bool = False) -> None:
        """Run the handshake (a no-op once done)."""
        self._require_connected()
        timeout = self.gettimeout()
        try:
            if timeout == 0.0 and block:
                self.settimeout(None)
            self._handshake()
        finally:
            self.settimeout(timeout)

    def _handshake(self) -> None:
        self._live("Handshake")
        self._require_connected()
        with self._read_lock:
            self._flush(writer=True)  # a client's hello is ready from the start
            while not self._handshake_done:
                if self._terminated:
                    if self._error is not None:
                        raise self._error
                    raise ssl.SSLZeroReturnError(ssl.SSL_ERROR_ZERO_RETURN,
                                                 "TLS/SSL connection has been closed (EOF)")
                self._receive()
                self._flush(writer=True)

    # --- reading ---------------------------------------------------------------------------------

    def read(self, len: int = 1024, buffer: Any = None) -> Any:
        """Read up to ``len`` bytes (into ``buffer`` if given: returns the count)."""
        self._live("Read")
        if not self._handshake_done:
            self._handshake()
        with self._read_lock:
            while True:
                with self._lock:
                    plain = self._plain
                    if plain:
                        n = min(len, builtins.len(plain))
                        if buffer is not None:
                            with memoryview(buffer) as view, view.cast("B") as out:
                                out[:n] = plain[:n]
                            del plain[:n]
                            return n
                        data = bytes(plain[:n])
                        del plain[:n]
                        return data
                    if len <= 0:
                        return 0 if buffer is not None else b""
                    if self._terminated:
                        return self._ended(buffer is not None)
                    if self._peer_closed:
                        return 0 if buffer is not None else b""
                    if self._conn is None:
                        raise ValueError("Read on closed or unwrapped SSL socket.")
                self._receive()

    def recv(self, buflen: int = 1024, flags: int = 0) -> bytes:
        if self._conn is None:
            return super(ssl.SSLSocket, self).recv(buflen, flags)
        if flags != 0:
            raise ValueError(f"non-zero flags not allowed in calls to recv() on {type(self)}")
        data: bytes = self.read(buflen)
        return data

    def recv_into(self, buffer: Any, nbytes: int | None = None, flags: int = 0) -> int:
        if nbytes is None:
            with memoryview(buffer) as view:
                nbytes = view.nbytes or 1024
        if self._conn is None:
            return super(ssl.SSLSocket, self).recv_into(buffer, nbytes, flags)
        if flags != 0:
            raise ValueError(f"non-zero flags not allowed in calls to recv_into() on "
                             f"{type(self)}")
        count: int = self.read(nbytes, buffer)
        return count

    def recvfrom(self, buflen: int = 1024, flags: int = 0) -> Any:
        if self._conn is not None:
            raise ValueError(f"recvfrom not allowed on instances of {type(self)}")
        return super(ssl.SSLSocket, self).recvfrom(buflen, flags)

    def recvfrom_into(self, buffer: Any, nbytes: int | None = None, flags: int = 0) -> Any:
        if self._conn is not None:
            raise ValueError(f"recvfrom_into not allowed on instances of {type(self)}")
        return super(ssl.SSLSocket, self).recvfrom_into(buffer, nbytes or 0, flags)

    def pending(self) -> int:
        """Decrypted bytes waiting to be read."""
        with self._lock:
            return len(self._plain) if self._conn is not None else 0

    # --- writing ---------------------------------------------------------------------------------

    def write(self, data: Any) -> int:
        """Encrypt and send ``data``; returns how much of it was accepted (all of it up
        to 256 KiB per call; ``sendall`` loops)."""
        conn = self._live("Write")
        if not self._handshake_done:
            self._handshake()
        with memoryview(data) as view, view.cast("B") as flat:
            if not flat.nbytes:
                return 0
            self._flush(writer=True)  # (non-blocking: SSLWantWriteError, nothing accepted)
            chunk = flat[:_WRITE_CHUNK]
            with self._lock:
                if self._error is not None:
                    raise self._error
                try:
                    conn.send_data(chunk)
                finally:
                    self._collect()
            with contextlib.suppress(ssl.SSLWantWriteError):  # accepted: goes out later
                self._flush(writer=True)
            return chunk.nbytes

    def send(self, data: Any, flags: int = 0) -> int:
        if self._conn is None:
            return super(ssl.SSLSocket, self).send(data, flags)
        if flags != 0:
            raise ValueError(f"non-zero flags not allowed in calls to send() on {type(self)}")
        return self.write(data)

    def sendall(self, data: Any, flags: int = 0) -> None:
        if self._conn is None:
            super(ssl.SSLSocket, self).sendall(data, flags)
            return
        if flags != 0:
            raise ValueError(f"non-zero flags not allowed in calls to sendall() on {type(self)}")
        with memoryview(data) as view, view.cast("B") as flat:
            count = 0
            while count < flat.nbytes:
                count += self.write(flat[count:])

    def sendto(self, data: Any, flags_or_addr: Any, addr: Any = None) -> int:
        if self._conn is not None:
            raise ValueError(f"sendto not allowed on instances of {type(self)}")
        if addr is None:
            return super(ssl.SSLSocket, self).sendto(data, flags_or_addr)
        return super(ssl.SSLSocket, self).sendto(data, flags_or_addr, addr)

    def sendfile(self, file: Any, offset: int = 0, count: int | None = None) -> int:
        """Send a file through TLS (by ``send``; ``os.sendfile`` only once unwrapped)."""
        if self._conn is not None:
            return self._sendfile_use_send(file, offset, count)  # type: ignore[attr-defined,no-any-return]
        return super(ssl.SSLSocket, self).sendfile(file, offset, count)

    # --- closing ---------------------------------------------------------------------------------

    def unwrap(self) -> TLSSocket:
        """Exchange close_notify with the peer and return this socket, now plain
        (as the stdlib does).  Bytes the peer sends after its close_notify stay unread."""
        conn = self._conn
        if conn is None:
            raise ValueError(f"No SSL wrapper around {self}")
        with self._read_lock:
            with self._lock:
                self._discard = True
                self._plain.clear()
                conn.close()
                self._collect()
            self._flush(writer=True)
            while not self._terminated:
                self._receive(exact=True)
            with self._lock:
                err = self._error
            if err is not None and not (isinstance(err, TruncationError)
                                        and self.suppress_ragged_eofs):
                raise err
            with self._lock:
                self._reset(None)
        return self

    def shutdown(self, how: int) -> None:
        """Shut the TCP connection down; before ``SHUT_WR``/``SHUT_RDWR`` close_notify is
        sent (best effort), so the peer sees a clean TLS end.  Reading goes on after
        ``SHUT_WR`` (data the peer sent before its own close_notify)."""
        conn = self._conn
        if conn is not None and how in (socket.SHUT_WR, socket.SHUT_RDWR):
            with self._lock:
                conn.close()
                self._collect()
            self._flush_owed()
        super(ssl.SSLSocket, self).shutdown(how)

    def _real_close(self) -> None:
        conn = self._conn
        if conn is not None and self._handshake_done and not self._terminated:
            # close_notify without waiting (the stdlib sends none): written only if the
            # socket takes it at once and no writer is mid-record
            with self._lock:
                conn.close()
                self._collect()
                out = b"".join(self._out)
                self._out.clear()
            if out and self._write_lock.acquire(blocking=False):
                try:
                    with contextlib.suppress(OSError):
                        socket.socket.send(self, out, getattr(socket, "MSG_DONTWAIT", 0))
                finally:
                    self._write_lock.release()
        self._conn = None
        super(ssl.SSLSocket, self)._real_close()  # type: ignore[misc]

    # --- connecting and accepting ----------------------------------------------------------------

    def _real_connect(self, addr: Any, connect_ex: bool) -> int | None:
        if self.server_side:
            raise ValueError("can't connect in server-side mode")
        if self._connected:
            raise ValueError("attempt to connect already-connected SSLSocket!")
        if self._conn is None:
            raise ValueError(f"No SSL wrapper around {self}")
        rc: int | None = None
        if connect_ex:
            rc = super(ssl.SSLSocket, self).connect_ex(addr)
        else:
            super(ssl.SSLSocket, self).connect(addr)
        if not rc:
            self._connected = True
            if self.do_handshake_on_connect:
                self.do_handshake()
        return rc

    def connect(self, addr: Any) -> None:
        """Connect to ``addr``, then handshake (with ``do_handshake_on_connect``)."""
        self._real_connect(addr, False)

    def connect_ex(self, addr: Any) -> int:
        """Like :meth:`connect`, returning an ``errno`` instead of raising connection errors."""
        rc = self._real_connect(addr, True)
        return rc or 0

    def accept(self) -> tuple[TLSSocket, Any]:
        """Accept a connection, wrapped as a server-side :class:`TLSSocket` (which
        handshakes here with ``do_handshake_on_connect``)."""
        newsock, addr = super(ssl.SSLSocket, self).accept()
        wrapped = wrap_socket(newsock, self._context, server_side=True,
                              do_handshake_on_connect=self.do_handshake_on_connect,
                              suppress_ragged_eofs=self.suppress_ragged_eofs)
        return wrapped, addr

    # --- what was negotiated ---------------------------------------------------------------------

    @property  # type: ignore[override]
    def context(self) -> TLSContext:
        """The :class:`~aiotls.TLSContext`; assignable before any byte was exchanged, and
        by a server's ``sni_callback``."""
        conn = self._conn
        return conn.context if conn is not None else self._context

    @context.setter
    def context(self, ctx: TLSContext) -> None:
        if not isinstance(ctx, TLSContext):
            raise TypeError(f"context must be an aiotls.TLSContext, not {type(ctx).__name__}")
        conn = self._conn
        if conn is not None and conn._sni_switching:
            conn.context = ctx  # (a server's sni_callback switches the handshake)
            self._context = ctx
            return
        self._replace(ctx, self._session, "context")
        self._context = ctx

    @property  # type: ignore[override]
    def session(self) -> TLSSession | None:
        """The session to resume later (clients, after the handshake); assignable before
        the handshake to resume one."""
        conn = self._conn
        return conn.session if conn is not None else None

    @session.setter
    def session(self, session: TLSSession | None) -> None:
        self._replace(self._context, session, "session")
        self._session = session

    def _replace(self, ctx: TLSContext, session: TLSSession | None, what: str) -> None:
        """Rebuild the (not yet started) connection with another context or session."""
        with self._lock:
            if self._conn is None:
                return
            if self._started or self._handshake_done:
                raise ValueError(f"Cannot set {what} after handshake.")
            conn = TLSConnection(ctx, server_side=self.server_side,
                                 server_hostname=self.server_hostname, session=session,
                                 half_close=True)
            self._conn = conn
            conn._sni_owner = weakref.ref(self)
            self._out.clear()
            self._collect()

    @property
    def session_reused(self) -> bool | None:
        conn = self._conn
        return conn.session_reused if conn is not None else None

    def getpeercert(self, binary_form: bool = False) -> Any:
        """The peer's certificate (``ValueError`` before the handshake), as the stdlib."""
        self._require_connected()
        return self._live("getpeercert()").getpeercert(binary_form)

    def get_verified_chain(self) -> list[bytes]:
        """The verified path, leaf to trust anchor (DER; Python 3.13's name)."""
        return self._live("get_verified_chain()").get_verified_chain()

    def get_unverified_chain(self) -> list[bytes]:
        """The peer's chain as sent (DER, leaf first; Python 3.13's name)."""
        return self._live("get_unverified_chain()").get_unverified_chain()

    def version(self) -> str | None:
        conn = self._conn
        return conn.version() if conn is not None else None

    def cipher(self) -> tuple[str, str, int] | None:
        conn = self._conn
        return conn.cipher() if conn is not None else None

    def shared_ciphers(self) -> list[tuple[str, str, int]] | None:
        """Server side: the suites the client offered that this context enables (``None``
        on clients and before the handshake, as in the stdlib)."""
        conn = self._conn
        return conn.shared_ciphers() if conn is not None else None

    def compression(self) -> None:
        return None

    def selected_alpn_protocol(self) -> str | None:
        conn = self._conn
        return conn.selected_alpn_protocol() if conn is not None else None

    def selected_npn_protocol(self) -> None:
        """Always ``None``: NPN is obsolete and aiotls does not implement it."""
        return None

    def get_channel_binding(self, cb_type: str = "tls-unique") -> bytes | None:
        """``"tls-unique"`` (RFC 5929, TLS 1.2) or ``"tls-exporter"`` (RFC 9266); ``None``
        before the handshake (see :meth:`aiotls.TLSConnection.get_channel_binding`)."""
        if cb_type not in CHANNEL_BINDING_TYPES:
            raise ValueError(f"{cb_type} channel binding type not implemented")
        conn = self._conn
        if conn is None:
            return None
        return conn.get_channel_binding(cb_type)

    def export_keying_material(self, label: str | bytes, context: bytes | None,
                               length: int) -> bytes:
        """RFC 5705 / RFC 8446 7.5 keying material (see
        :meth:`aiotls.TLSConnection.export_keying_material`); ``ValueError`` once the
        socket is closed, as for the stdlib's other methods."""
        return self._live("export_keying_material()").export_keying_material(
            label, context, length)

    def verify_client_post_handshake(self) -> None:
        """TLS 1.3 server: request the client's certificate now; ``getpeercert()`` shows
        it once a later read has processed the answer."""
        conn = self._live("verify_client_post_handshake()")
        with self._lock:
            try:
                conn.verify_client_post_handshake()
            finally:
                self._collect()
        self._flush(writer=True)

    def __repr__(self) -> str:
        base = socket.socket.__repr__(self)
        conn = self._conn
        return base if conn is None else f"{base[:-1]}, tls={conn!r}>"


class Channel:
    """Drive a :class:`~aiotls.TLSConnection` over a blocking socket event by event,
    every wait bounded by a deadline (``time.monotonic()`` based).

    The plain sans-IO loop, for programs that want the events themselves (the command
    line uses it): write whatever ``data_to_send()`` holds, read from the socket,
    ``receive_data()``, repeat until ``next_event()`` has something.  A
    :class:`~aiotls.events.ConnectionTerminated` carrying an error is raised as that
    error.  Socket errors propagate as ``OSError`` (a missed deadline as
    :class:`TimeoutError`); :meth:`network_error` may turn them into something else.
    """

    def __init__(self, sock: socket.socket, conn: TLSConnection, *, peer: str,
                 io_timeout: float) -> None:
        self.sock = sock
        self.conn = conn
        #: Who the socket talks to, for messages.
        self.peer = peer
        #: Bound on one write.
        self.io_timeout = io_timeout
        self.terminated = False
        self.bytes_sent = 0
        self.bytes_received = 0
        # Each flush is a whole TLS flight or message: do not let Nagle hold it back.
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def network_error(self, exc: OSError, doing: str) -> Exception:
        """The exception to raise for a socket error while ``doing`` (``exc`` itself here)."""
        return exc

    def closed_error(self, waiting_for: str) -> Exception:
        """The exception to raise when waiting on a connection that is already over."""
        return TLSUsageError(f"the connection is already over ({waiting_for})",
                             cause="it was closed, or ended with an error reported before",
                             hint="open a new connection")

    def aborted_error(self) -> Exception:
        """The exception to raise when the connection ends cleanly during the handshake
        (closed locally)."""
        return TLSUsageError("the connection ended before the handshake completed",
                             cause="the connection was closed locally during the handshake",
                             hint="close the connection only after the handshake, or open a "
                             "new one")

    def flush(self) -> None:
        """Write what the connection has to send."""
        data = self.conn.data_to_send()
        if not data:
            return
        self.sock.settimeout(self.io_timeout)
        try:
            self.sock.sendall(data)
        except OSError as exc:
            if self.conn.state in (ConnectionState.FAILED, ConnectionState.CLOSED):
                return  # the peer is gone; the alert or close_notify we owed cannot be delivered
            raise self.network_error(exc, f"sending to {self.peer}") from None
        self.bytes_sent += len(data)

    def _fill(self, deadline: float, waiting_for: str) -> None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise self.network_error(TimeoutError(), f"{waiting_for} ({self.peer})")
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(_READ_SIZE)
        except OSError as exc:
            raise self.network_error(exc, f"{waiting_for} ({self.peer})") from None
        self.bytes_received += len(data)
        self.conn.receive_data(data)  # b"" tells the connection about EOF
        self.flush()  # replies the engine produced while reading (alerts, close_notify, ...)

    def next_event(self, deadline: float, waiting_for: str) -> Event:
        """The next event, reading as needed until ``deadline``."""
        while True:
            event = self.conn.next_event()
            if event is not None:
                if isinstance(event, ConnectionTerminated):
                    self.terminated = True
                    self.flush()
                    if event.error is not None:
                        raise event.error
                return event
            if self.terminated:
                raise self.closed_error(waiting_for)
            self._fill(deadline, waiting_for)

    def send(self, data: bytes) -> None:
        """Encrypt and write ``data``."""
        self.conn.send_data(data)
        self.flush()

    def handshake(self, deadline: float) -> HandshakeCompleted:
        """Run the handshake; its :class:`~aiotls.events.HandshakeCompleted` event."""
        self.flush()  # a client's ClientHello is ready right after construction
        while True:
            event = self.next_event(deadline, "waiting for the TLS handshake")
            if isinstance(event, HandshakeCompleted):
                return event
            if isinstance(event, ConnectionTerminated):
                raise self.aborted_error()

    def close(self, deadline: float) -> bool:
        """Send close_notify and wait for the peer's; True if the peer's close_notify
        arrived (False if the peer ended the connection without it)."""
        got_close_notify = False
        if self.terminated:
            return False
        self.conn.close()
        self.flush()
        while True:
            event = self.next_event(deadline, "waiting for the peer's close_notify")
            if isinstance(event, CloseNotifyReceived):
                got_close_notify = True
            elif isinstance(event, ConnectionTerminated):
                return got_close_notify
