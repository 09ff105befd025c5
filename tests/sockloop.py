"""Drive a sans-IO :class:`aiotls.TLSConnection` over a real, blocking socket.

Used by the interop tests to talk to real peers (the stdlib :mod:`ssl` module,
``openssl s_server``/``s_client``) over loopback::

    tls = SocketTLS.connect(ctx, ("127.0.0.1", port), server_hostname="localhost")
    hs = tls.handshake()
    tls.send(b"ping")
    assert tls.recv_exactly(4) == b"pong"
    tls.close()                     # close_notify both ways, then the socket

Every wait is bounded: each method takes a ``timeout`` (default
:data:`DEFAULT_TIMEOUT`) that is turned into a deadline, and the socket's own
timeout is set to what is left of it before every ``recv``/``sendall``.  A
missed deadline raises :class:`TimeoutError` naming what was being waited for.

The peer side of a test runs in a thread (:func:`run_in_thread`), and
``openssl`` subprocesses are wrapped by :class:`OpenSSLProcess`, which collects
their output without ever blocking on a pipe (the other peers -- Java, node, GnuTLS --
are launched by :mod:`tests.peers`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Generic, ParamSpec, TypeVar

import pytest

import aiotls
from aiotls.events import (
    CloseNotifyReceived,
    ConnectionTerminated,
    DataReceived,
    Event,
    HandshakeCompleted,
)

__all__ = [
    "DEFAULT_TIMEOUT",
    "OpenSSLProcess",
    "PeerThread",
    "SocketTLS",
    "TLSFailed",
    "family_for",
    "find_openssl",
    "free_port",
    "listen",
    "peer_thread",
    "run_in_thread",
]

#: Default bound, in seconds, for any single wait.
DEFAULT_TIMEOUT = 5.0
_RECV_SIZE = 65536

P = ParamSpec("P")
T = TypeVar("T")


class TLSFailed(AssertionError):
    """The TLS connection ended (with or without an error) before what we waited for."""

    def __init__(self, message: str, error: aiotls.TLSError | None = None) -> None:
        if error is not None:
            message = f"{message}: {type(error).__name__}: {error}"
        super().__init__(message)
        self.error = error


def _deadline(timeout: float) -> float:
    return time.monotonic() + timeout


def _remaining(deadline: float, what: str) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError(f"timed out waiting for {what}")
    return left


def family_for(host: str) -> socket.AddressFamily:
    """``AF_INET6`` for IPv6 literals, else ``AF_INET``."""
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def listen(host: str = "127.0.0.1", timeout: float = DEFAULT_TIMEOUT) -> socket.socket:
    """A listening socket on an ephemeral loopback port; ``accept()`` is bounded by *timeout*."""
    sock = socket.socket(family_for(host), socket.SOCK_STREAM)
    try:
        sock.bind((host, 0))
        sock.listen(1)
        sock.settimeout(timeout)
    except BaseException:
        sock.close()
        raise
    return sock


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago (for subprocesses that must bind it themselves)."""
    with socket.socket(family_for(host), socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


class SocketTLS:
    """A :class:`aiotls.TLSConnection` bound to a connected blocking socket.

    Attributes for assertions:

    * :attr:`events` -- every event the connection produced, in order;
    * :attr:`handshake_event` -- the :class:`HandshakeCompleted`, once seen;
    * :attr:`terminated` -- the :class:`ConnectionTerminated`, once seen;
    * :attr:`close_notify_received` -- True once the peer's close_notify arrived;
    * :attr:`transport_eof` -- True once ``recv()`` returned ``b""``.

    Received plaintext accumulates in an internal buffer that the ``recv_*``
    methods consume from.
    """

    def __init__(self, conn: aiotls.TLSConnection, sock: socket.socket,
                 *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.conn = conn
        self.sock = sock
        self.timeout = timeout
        self.events: list[Event] = []
        self.handshake_event: HandshakeCompleted | None = None
        self.terminated: ConnectionTerminated | None = None
        self.close_notify_received = False
        self.transport_eof = False
        self.bytes_in = 0
        self.bytes_out = 0
        self._buffer = bytearray()

    # --- construction ----------------------------------------------------------------------

    @classmethod
    def client(cls, context: aiotls.TLSContext, sock: socket.socket, *,
               server_hostname: str | None, session: aiotls.TLSSession | None = None,
               timeout: float = DEFAULT_TIMEOUT) -> SocketTLS:
        """Wrap a connected socket as a TLS client (no handshake yet); closes the socket
        if the connection cannot be made."""
        try:
            conn = aiotls.TLSConnection(context, server_hostname=server_hostname,
                                        session=session)
        except BaseException:
            sock.close()
            raise
        return cls(conn, sock, timeout=timeout)

    @classmethod
    def connect(cls, context: aiotls.TLSContext, address: tuple[str, int], *,
                server_hostname: str | None, session: aiotls.TLSSession | None = None,
                timeout: float = DEFAULT_TIMEOUT) -> SocketTLS:
        """TCP-connect to *address* and wrap the socket as a TLS client (no handshake yet)."""
        sock = socket.create_connection(address, timeout=timeout)
        return cls.client(context, sock, server_hostname=server_hostname, session=session,
                          timeout=timeout)

    @classmethod
    def accept(cls, context: aiotls.TLSContext, listener: socket.socket, *,
               timeout: float = DEFAULT_TIMEOUT) -> SocketTLS:
        """Accept one connection on *listener* and wrap it as a TLS server (no handshake yet)."""
        listener.settimeout(timeout)
        sock, _ = listener.accept()
        try:
            conn = aiotls.TLSConnection(context, server_side=True)
        except BaseException:
            sock.close()
            raise
        return cls(conn, sock, timeout=timeout)

    def __enter__(self) -> SocketTLS:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.sock.close()

    # --- plumbing ----------------------------------------------------------------------------

    def flush(self, deadline: float | None = None) -> None:
        """Write whatever the connection has to send.

        Once the connection has terminated the peer may already be gone; a reset or
        broken pipe while sending the final alert / close_notify is then ignored.
        """
        out = self.conn.data_to_send()
        if not out:
            return
        deadline = _deadline(self.timeout) if deadline is None else deadline
        self.sock.settimeout(_remaining(deadline, f"sending {len(out)} bytes"))
        try:
            self.sock.sendall(out)
        except (BrokenPipeError, ConnectionResetError):
            if self.terminated is None:
                raise
            return
        self.bytes_out += len(out)

    def _drain_events(self) -> None:
        while (event := self.conn.next_event()) is not None:
            self.events.append(event)
            if isinstance(event, HandshakeCompleted):
                self.handshake_event = event
            elif isinstance(event, DataReceived):
                self._buffer += event.data
            elif isinstance(event, CloseNotifyReceived):
                self.close_notify_received = True
            elif isinstance(event, ConnectionTerminated):
                self.terminated = event

    def _read_once(self, deadline: float, what: str) -> None:
        """One ``recv`` (bounded by *deadline*), fed to the connection; replies flushed."""
        if self.terminated is not None:
            raise TLSFailed(f"connection already terminated while waiting for {what}",
                            self.terminated.error)
        self.sock.settimeout(_remaining(deadline, what))
        try:
            data = self.sock.recv(_RECV_SIZE)
        except TimeoutError:
            raise TimeoutError(f"timed out waiting for {what} "
                               f"(state {self.conn.state.value}, events {self.events_summary()})"
                               ) from None
        if not data:
            self.transport_eof = True
        self.bytes_in += len(data)
        self.conn.receive_data(data)
        self._drain_events()
        self.flush(deadline)

    def _wait(self, done: Callable[[], bool], what: str, timeout: float | None) -> None:
        deadline = _deadline(self.timeout if timeout is None else timeout)
        self.flush(deadline)
        self._drain_events()
        while not done():
            if self.terminated is not None:
                raise TLSFailed(f"connection ended while waiting for {what}",
                                self.terminated.error)
            if self.transport_eof:
                raise TLSFailed(f"transport EOF while waiting for {what}")
            self._read_once(deadline, what)

    def events_summary(self) -> list[str]:
        """Event class names (DataReceived runs collapsed), for error messages."""
        names: list[str] = []
        for event in self.events:
            name = type(event).__name__
            if name == "DataReceived" and names and names[-1] == name:
                continue
            names.append(name)
        return names

    # --- the API the tests use -----------------------------------------------------------------

    def handshake(self, timeout: float | None = None) -> HandshakeCompleted:
        """Run the handshake to completion; raises :class:`TLSFailed` if it fails."""
        self._wait(lambda: self.handshake_event is not None, "the handshake", timeout)
        assert self.handshake_event is not None
        return self.handshake_event

    def send(self, data: bytes, timeout: float | None = None) -> None:
        """Encrypt and write *data* (the peer must be reading, or this times out)."""
        self.conn.send_data(data)
        self.flush(_deadline(self.timeout if timeout is None else timeout))

    def recv_until(self, until: int | Callable[[bytes], bool],
                   timeout: float | None = None) -> bytes:
        """Read until *until* bytes are buffered (returns exactly that many) or until the
        predicate holds for the buffered bytes (returns and consumes all of them)."""
        if isinstance(until, int):
            n = until
            self._wait(lambda: len(self._buffer) >= n, f"{n} bytes of data "
                       f"(have {len(self._buffer)})", timeout)
            out = bytes(self._buffer[:n])
            del self._buffer[:n]
            return out
        predicate = until
        self._wait(lambda: predicate(bytes(self._buffer)), "data matching the predicate",
                   timeout)
        out = bytes(self._buffer)
        self._buffer.clear()
        return out

    def recv_exactly(self, n: int, timeout: float | None = None) -> bytes:
        """Exactly *n* bytes of plaintext."""
        return self.recv_until(n, timeout)

    def recv_line(self, timeout: float | None = None) -> bytes:
        """Everything buffered up to and including the first ``b"\\n"``."""
        self._wait(lambda: b"\n" in self._buffer, "a line of data", timeout)
        end = self._buffer.index(b"\n") + 1
        out = bytes(self._buffer[:end])
        del self._buffer[:end]
        return out

    @property
    def pending(self) -> bytes:
        """Plaintext received but not yet consumed."""
        return bytes(self._buffer)

    def close(self, timeout: float | None = None) -> ConnectionTerminated:
        """Send close_notify, wait for the peer's, then close the socket.

        Raises :class:`TLSFailed` unless the connection ended cleanly with the peer's
        close_notify (a bare EOF is not enough).
        """
        try:
            self.conn.close()
            return self._finish_close(timeout)
        finally:
            self.sock.close()

    def wait_closed(self, timeout: float | None = None) -> ConnectionTerminated:
        """Wait for the peer to send close_notify (our reply goes out automatically),
        then close the socket.  Same checks as :meth:`close`."""
        try:
            return self._finish_close(timeout)
        finally:
            self.sock.close()

    def _finish_close(self, timeout: float | None) -> ConnectionTerminated:
        deadline = _deadline(self.timeout if timeout is None else timeout)
        self.flush(deadline)
        self._drain_events()
        while self.terminated is None:
            if self.transport_eof:
                raise TLSFailed("transport EOF without ConnectionTerminated")
            self._read_once(deadline, "the peer's close_notify")
        self.flush(deadline)
        if self.terminated.error is not None:
            raise TLSFailed("connection did not close cleanly", self.terminated.error)
        if not self.close_notify_received:
            raise TLSFailed(f"the peer did not send close_notify (events {self.events_summary()})")
        if self.terminated.truncated:
            raise TLSFailed("connection end was a tolerated truncation, not close_notify")
        return self.terminated


class PeerThread(Generic[T]):
    """A function running in a daemon thread; :meth:`result` joins it (bounded)."""

    def __init__(self, fn: Callable[[], T], name: str = "tls-peer") -> None:
        self._fn = fn
        self._value: T | None = None
        self._error: BaseException | None = None
        self._done = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def _run(self) -> None:
        try:
            self._value = self._fn()
            self._done = True
        except BaseException as exc:
            self._error = exc

    def start(self) -> PeerThread[T]:
        self._thread.start()
        return self

    def join(self, timeout: float) -> bool:
        """Wait up to *timeout* seconds; True if the thread has finished."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def result(self, timeout: float = DEFAULT_TIMEOUT) -> T:
        """The function's return value; re-raises its exception; TimeoutError if still running."""
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise TimeoutError(f"peer thread {self._thread.name!r} still running after {timeout}s")
        if self._error is not None:
            raise self._error
        assert self._done
        return self._value  # type: ignore[return-value]

    @property
    def error(self) -> BaseException | None:
        """The exception the function raised, if it finished with one."""
        return self._error


def run_in_thread(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> PeerThread[T]:
    """Start ``fn(*args, **kwargs)`` in a daemon thread."""
    return PeerThread(lambda: fn(*args, **kwargs), name=getattr(fn, "__name__", "tls-peer")).start()


@contextlib.contextmanager
def peer_thread(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> Iterator[PeerThread[T]]:
    """:func:`run_in_thread` as a context manager.

    If the body raises, the peer usually failed too (or failed first): wait briefly
    for it and attach its exception as a note, so the report shows both sides.
    """
    peer = run_in_thread(fn, *args, **kwargs)
    try:
        yield peer
    except BaseException as exc:
        peer.join(2.0)
        if peer.error is not None:
            exc.add_note(f"peer thread failed with {type(peer.error).__name__}: {peer.error}")
        raise


# --- openssl subprocesses ----------------------------------------------------------------------


def find_openssl() -> str | None:
    """Path of the ``openssl`` command-line tool, or None."""
    return shutil.which("openssl") or (
        "/usr/bin/openssl" if shutil.which("/usr/bin/openssl") else None)


def require_openssl() -> str:
    """The openssl binary.  Missing openssl FAILS the test (CI installs it); never a skip."""
    path = find_openssl()
    if path is None:
        pytest.fail("these tests need the 'openssl' command-line tool (OpenSSL 3.x), "
                    "which is not installed or not on PATH; install it (apt-get install openssl)",
                    pytrace=False)
    return path


class OpenSSLProcess:
    """An ``openssl`` subprocess whose combined stdout/stderr is collected by a thread.

    Always use it as a context manager: the process is killed on exit if still running.
    """

    def __init__(self, argv: Sequence[str], *, stdin: bytes | None = None,
                 env: Mapping[str, str] | None = None) -> None:
        """``env``: variables added to this process's environment (e.g. ``OPENSSL_CONF``)."""
        self.argv = list(argv)
        self._lines: list[str] = []
        self._cond = threading.Condition()
        self._eof = False
        self.proc = subprocess.Popen(
            self.argv,
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env={**os.environ, **env} if env is not None else None,
        )
        self._reader = threading.Thread(target=self._read, name="openssl-output", daemon=True)
        self._reader.start()
        if stdin is not None:
            assert self.proc.stdin is not None
            with contextlib.suppress(BrokenPipeError):
                self.proc.stdin.write(stdin)
                self.proc.stdin.flush()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in iter(self.proc.stdout.readline, b""):
            with self._cond:
                self._lines.append(raw.decode("utf-8", "replace"))
                self._cond.notify_all()
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    @property
    def output(self) -> str:
        """Everything the process printed so far."""
        with self._cond:
            return "".join(self._lines)

    def wait_for_output(self, text: str, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Block until *text* appears in a line of output; fails if the process exits first."""
        deadline = _deadline(timeout)
        with self._cond:
            while not any(text in line for line in self._lines):
                if self._eof:
                    raise AssertionError(
                        f"{self.argv[0:2]} exited (rc={self.proc.poll()}) before printing "
                        f"{text!r}; output:\n{''.join(self._lines)}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"timed out waiting for {text!r} from {self.argv[0:2]}; "
                                       f"output so far:\n{''.join(self._lines)}")
                self._cond.wait(left)

    def close_stdin(self) -> None:
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            with contextlib.suppress(BrokenPipeError):
                self.proc.stdin.close()

    def wait(self, timeout: float = DEFAULT_TIMEOUT) -> tuple[int, str]:
        """Wait for exit (bounded) and for all output; returns (returncode, output)."""
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise TimeoutError(f"{self.argv[0:2]} still running after {timeout}s; output so "
                               f"far:\n{self.output}") from None
        self._reader.join(timeout)
        return rc, self.output

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(DEFAULT_TIMEOUT)
        self.close_stdin()
        if self.proc.stdout is not None:
            self._reader.join(DEFAULT_TIMEOUT)
            self.proc.stdout.close()

    def __enter__(self) -> OpenSSLProcess:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.kill()
