"""The stdlib :mod:`ssl` module (OpenSSL) as an in-memory peer of an aiotls connection.

:class:`StdlibPeer` wraps an :class:`ssl.SSLContext` over a pair of :class:`ssl.MemoryBIO`
(client or server side); :func:`run` shuttles bytes between it and a sans-IO
:class:`aiotls.TLSConnection` until both are quiet.  The peer's verdict stays in
``peer.error`` (the ``ssl.SSLError`` it raised, e.g. for an alert aiotls sent), so a test
sees both sides' view of a failure::

    peer = StdlibPeer(pki.stdlib_client_context(), server_side=False,
                      server_hostname="localhost")
    server = aiotls.TLSConnection(pki.server_context(), server_side=True)
    run(server, peer)
    assert peer.handshake_done and peer.error is None

This is the one place tests build such a peer (tests never import from another
``tests/test_*.py`` file; tests/test_quality.py checks it).
"""

from __future__ import annotations

import ssl

import aiotls

__all__ = ["StdlibPeer", "run"]


class StdlibPeer:
    """The stdlib ssl module over memory BIOs.

    :meth:`step` advances the handshake, then reads whatever application data has arrived
    into ``received``; an ``ssl.SSLError`` ends it and is kept in ``error``."""

    def __init__(self, ctx: ssl.SSLContext, *, server_side: bool,
                 server_hostname: str | None = None,
                 session: ssl.SSLSession | None = None) -> None:
        self.incoming = ssl.MemoryBIO()
        self.outgoing = ssl.MemoryBIO()
        self.obj = ctx.wrap_bio(self.incoming, self.outgoing, server_side=server_side,
                                server_hostname=server_hostname, session=session)
        self.error: ssl.SSLError | None = None
        self.handshake_done = False
        self.received = bytearray()

    def step(self) -> None:
        if self.error is not None:
            return
        try:
            if not self.handshake_done:
                self.obj.do_handshake()
                self.handshake_done = True
            while True:
                chunk = self.obj.read(65536)
                if not chunk:
                    return
                self.received += chunk
        except (ssl.SSLWantReadError, ssl.SSLZeroReturnError):
            pass
        except ssl.SSLError as exc:
            self.error = exc


def run(conn: aiotls.TLSConnection, peer: StdlibPeer, rounds: int = 30) -> None:
    """Shuttle bytes between ``conn`` and ``peer`` until neither has anything to send
    (an :class:`AssertionError` after ``rounds`` rounds that all moved bytes)."""
    for _ in range(rounds):
        peer.step()
        out = peer.outgoing.read()
        if out:
            conn.receive_data(out)
        data = conn.data_to_send()
        if data:
            peer.incoming.write(data)
        if not out and not data:
            peer.step()
            return
    raise AssertionError("no progress")
