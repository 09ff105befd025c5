"""tlslite-ng's own TLSConnection as an independent peer of an aiotls connection.

tlslite-ng can be made to misbehave in ways real stacks refuse to (leave out extended master
secret, offer only ``psk_ke``, select an ALPN protocol nobody offered, send bad DH values,
sign with a forbidden scheme -- by options or by subclassing), so tests drive it as the
other side of an aiotls :class:`~aiotls.TLSConnection`:

* in memory: :class:`TlslitePeer` runs tlslite's handshake/read generators over a
  :class:`MemorySocket`, and :func:`exchange` shuttles bytes between it and an aiotls
  connection until both are quiet (a peer made with ``edit_in`` sees every chunk it is
  fed rewritten first: a man in the middle, e.g. one editing the ClientHello);
* over a real socket (a thread running tlslite's blocking API): build its settings and
  credentials with :func:`tlslite_settings` and :func:`tlslite_credentials`.

This is the one place tests build tlslite peers; aiotls itself imports tlslite only in
aiotls/_engine/.
"""

from __future__ import annotations

import errno
from collections.abc import Callable, Iterator
from typing import Any

from tlslite import HandshakeSettings, SessionCache, X509CertChain
from tlslite import TLSConnection as RawTLS
from tlslite.errors import TLSLocalAlert, TLSRemoteAlert
from tlslite.utils.keyfactory import parsePEMKey

import aiotls
from tests.certs import Issued

__all__ = ["MemorySocket", "RawTLS", "TlslitePeer", "exchange", "tlslite_credentials",
           "tlslite_settings"]


class MemorySocket:
    """What tlslite needs of a socket: ``recv`` raises EWOULDBLOCK when the inbox is empty
    (tlslite's generators turn that into "want read", a yielded 0); ``send`` and ``sendall``
    append to the outbox; ``close`` and ``shutdown`` do nothing.  (tlslite's other socket
    methods -- getpeername, settimeout... -- only pass through to the socket: not here.)"""

    def __init__(self) -> None:
        self.inbox = bytearray()
        self.outbox = bytearray()

    def recv(self, size: int) -> bytes:
        if not self.inbox:
            raise OSError(errno.EWOULDBLOCK, "would block")
        data = bytes(self.inbox[:size])
        del self.inbox[:size]
        return data

    def send(self, data: bytes) -> int:
        self.outbox += data
        return len(data)

    def sendall(self, data: bytes) -> None:
        self.outbox += data

    def take(self) -> bytes:
        """What tlslite wrote so far (the outbox is emptied)."""
        data = bytes(self.outbox)
        self.outbox.clear()
        return data

    def close(self) -> None:
        pass

    def shutdown(self, how: int) -> None:
        pass


def tlslite_settings(*, min_version: tuple[int, int] | None = None,
                     max_version: tuple[int, int] | None = None, ems: bool | None = None,
                     **attrs: Any) -> HandshakeSettings:
    """tlslite's HandshakeSettings (its defaults: TLS 1.0 to 1.3, extended master secret
    offered), with ``minVersion``/``maxVersion``/``useExtendedMasterSecret`` and any other
    attribute (``keyShares=[...]``, ``psk_modes=[...]``, ``cipherNames=[...]``...) set."""
    settings = HandshakeSettings()
    if min_version is not None:
        settings.minVersion = min_version
    if max_version is not None:
        settings.maxVersion = max_version
    if ems is not None:
        settings.useExtendedMasterSecret = ems
    for name, value in attrs.items():
        setattr(settings, name, value)
    return settings


def tlslite_credentials(source: Issued | tuple[str, str]) -> tuple[X509CertChain, Any]:
    """(certificate chain, private key) in tlslite's types, from a test-PKI certificate
    (:class:`tests.certs.Issued`) or a (certfile, keyfile) pair such as ``pki.server()``."""
    if isinstance(source, Issued):
        chain_pem, key_pem = source.chain_pem.decode(), source.key_pem.decode()
    else:
        with open(source[0]) as f:
            chain_pem = f.read()
        with open(source[1]) as f:
            key_pem = f.read()
    chain = X509CertChain()
    chain.parsePemList(chain_pem)
    return chain, parsePEMKey(key_pem, private=True)


class TlslitePeer:
    """A tlslite TLSConnection (or a subclass: ``tls_class``) driven by hand in memory.

    One generator of tlslite's async API runs at a time (:meth:`start`); :meth:`step` runs
    it until it wants input or ends.  A tlslite alert (sent or received) ends it and is kept
    in ``error`` -- the peer's verdict, for the test to examine; anything else tlslite raises
    propagates.  :meth:`client` and :meth:`server` start a handshake: ``handshake_done`` is
    set when it completes, and with ``keep_reading`` the peer then reads application data
    for as long as it comes (all of it in ``received``).  ``result`` holds what the last
    read returned.  :meth:`feed` hands it bytes from the other side, through ``edit_in``
    (bytes -> bytes) when given.
    """

    def __init__(self, tls_class: type[RawTLS] = RawTLS, *,
                 edit_in: Callable[[bytes], bytes] | None = None) -> None:
        self.sock = MemorySocket()
        self.edit_in = edit_in
        self.tls = tls_class(self.sock)
        self.gen: Iterator[Any] | None = None
        self.result: Any = None
        self.error: TLSLocalAlert | TLSRemoteAlert | None = None
        self.handshake_done = False
        self.received = bytearray()
        self.keep_reading = False
        self._handshake = False

    @classmethod
    def client(cls, settings: HandshakeSettings, *, tls_class: type[RawTLS] = RawTLS,
               session: Any = None, server_name: str = "localhost", keep_reading: bool = True,
               edit_in: Callable[[bytes], bytes] | None = None, **options: Any) -> TlslitePeer:
        """A client whose handshake has started (its ClientHello is in ``sock.outbox``)."""
        peer = cls(tls_class, edit_in=edit_in)
        peer.start(peer.tls.handshakeClientCert(settings=settings, serverName=server_name,
                                                session=session, async_=True, **options),
                   handshake=True, keep_reading=keep_reading)
        return peer

    @classmethod
    def server(cls, settings: HandshakeSettings, credentials: Issued | tuple[str, str], *,
               tls_class: type[RawTLS] = RawTLS, session_cache: SessionCache | None = None,
               keep_reading: bool = True, edit_in: Callable[[bytes], bytes] | None = None,
               **options: Any) -> TlslitePeer:
        """A server waiting for a ClientHello, with the certificate and key of
        ``credentials`` (see :func:`tlslite_credentials`); ``options`` go to tlslite's
        handshakeServerAsync (``reqCert=True``, ``alpn=[...]``...)."""
        peer = cls(tls_class, edit_in=edit_in)
        chain, key = tlslite_credentials(credentials)
        peer.start(peer.tls.handshakeServerAsync(certChain=chain, privateKey=key,
                                                 settings=settings, sessionCache=session_cache,
                                                 **options),
                   handshake=True, keep_reading=keep_reading)
        return peer

    def start(self, gen: Iterator[Any], *, handshake: bool = False,
              keep_reading: bool = False) -> None:
        """Run ``gen`` (e.g. ``peer.tls.readAsync()``) from the next :meth:`step` on."""
        self.gen, self.result = gen, None
        self._handshake, self.keep_reading = handshake, keep_reading

    def feed(self, data: bytes) -> None:
        """Bytes from the other side, for the peer to read (rewritten by ``edit_in``)."""
        self.sock.inbox += self.edit_in(data) if self.edit_in is not None else data

    @property
    def running(self) -> bool:
        return self.gen is not None

    def step(self) -> None:
        """Run the current generator until it wants input or ends."""
        while self.gen is not None:
            try:
                value = next(self.gen)
            except StopIteration:
                self.gen = None
                if self._handshake:
                    self.handshake_done, self._handshake = True, False
                if self.keep_reading:
                    self.gen = self.tls.readAsync()
                continue
            except (TLSLocalAlert, TLSRemoteAlert) as exc:
                self.error, self.gen = exc, None
                return
            if isinstance(value, int) and value in (0, 1):
                if value == 0:  # wants to read: the inbox is empty
                    return
                continue  # (1: wants to write; the memory socket never blocks)
            self.result = value  # (readAsync's data)
            self.received += value
            if not self.keep_reading or not value:  # (b"": the peer closed)
                self.gen = None
                return


def exchange(peer: TlslitePeer, conn: aiotls.TLSConnection, rounds: int = 60) -> None:
    """Shuttle bytes between a tlslite peer and an aiotls connection until both are quiet
    (nothing left to send either way, and nothing the peer's generator still has to read).
    Nothing is fed to ``conn`` once it failed."""
    for _ in range(rounds):
        peer.step()
        out = peer.sock.take()
        if out and conn.error is None:
            conn.receive_data(out)
        back = conn.data_to_send()
        if back:
            peer.feed(back)
        if not out and not back and not (peer.running and peer.sock.inbox):
            peer.step()
            return
    raise AssertionError("the peers did not go quiet")
