"""The handshake engine: tlslite-ng driven without a socket.  The only importer of tlslite.

Theory of operation
-------------------
tlslite-ng is written for sockets.  Its ``*Async`` methods return generators that yield
``0`` when they want to read and ``1`` when they want to write, and they read through
``sock.recv()`` and write through ``sock.send()``.  The engine gives it an in-memory
socket (:mod:`.driver`) and steps its generators: the handshake generator until it
finishes, then a ``readAsync()`` generator whenever a post-handshake record arrives
(NewSessionTicket, KeyUpdate, post-handshake authentication, alerts), which may write
replies.  The connection above frames whole TLS records out of the byte stream before
they reach the engine, so a generator that wants input is always suspended at a record
boundary and can be resumed later or dropped.

Record protection has one owner, :mod:`aiotls._record`: the engine's tlslite record layer
(:mod:`.records`) seals and opens every encrypted handshake record there, and after the
handshake the connection decrypts every record itself and hands the engine the plaintext
of those that are not application data.  Application writes never go through tlslite.

The modules, along the seams where aiotls meets tlslite (private API: the tlslite-ng
version is pinned, and every private name relied on is listed in :mod:`.registry`,
which a test checks):

``driver``        :class:`Engine`, the in-memory socket, generator stepping, engine verbs
``records``       tlslite's record layer over aiotls's; the alert rules
``tlsconn``       the tlslite connection class assembled from the mixins below
``verification``  aiotls's certificate verification inside the handshake
``tickets``       aiotls's sealed session tickets; tickets carried across resumptions
``exporter``      keying material exporters (RFC 5705, RFC 8446 7.5), tls-exporter
``certcompress``  certificate compression (RFC 8879) with bounded decompression
``fixes``         corrections of tlslite-ng behaviour (RFC rules, interoperability)
``accel``         key exchange and signatures through OpenSSL in tlslite's shapes
``rebind``        tlslite's own handshake code run with faster helpers
``quick``         quick parsers for hello extensions and remembered serialisations
``base``          the rebound tlslite class the mixins extend
``settings``      per-context tlslite settings, prepared once
``translate``     tlslite exceptions into aiotls errors (what, cause, fix; the alert)
``codec``         tlslite's message Parser with its hot reads in one call each
``hellos``        a received ClientHello parsed in one pass over its extensions
``registry``      every private tlslite-ng name aiotls relies on, and :func:`registry.check`
``sni``           the server's choices once the ClientHello is read (SNI, ALPN order)
``client_cert``   the client's certificate chosen at the server's CertificateRequest
``speedups``      the switch that turns every speed-up off (``AIOTLS_SPEEDUPS=0``)
"""

from __future__ import annotations

from .common import WANT_READ
from .driver import Engine
from .records import MAX_WARNING_ALERTS, alert_rule
from .sni import install as install_choices

__all__ = ["MAX_WARNING_ALERTS", "WANT_READ", "Engine", "alert_rule", "install_choices"]
