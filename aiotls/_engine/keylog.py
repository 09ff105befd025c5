"""Key logging: every connection's secrets in the NSS key log format, for Wireshark.

A context with ``keylog_filename`` set (or made by ``create_default_context`` while the
``SSLKEYLOGFILE`` environment variable names a file, as the stdlib does) appends, per
connection, one line per secret: ``LABEL <client random> <secret>``, in hex -- the lines
OpenSSL writes for the same handshakes:

* TLS 1.3: ``CLIENT_HANDSHAKE_TRAFFIC_SECRET``, ``SERVER_HANDSHAKE_TRAFFIC_SECRET`` as the
  handshake keys are made, ``CLIENT_TRAFFIC_SECRET_0``, ``SERVER_TRAFFIC_SECRET_0`` as the
  application keys are, and ``EXPORTER_SECRET`` when the handshake completes;
* TLS 1.2: ``CLIENT_RANDOM`` (the master secret) when the handshake completes.

Both the handshake paths aiotls writes itself and tlslite-ng's make their traffic keys
through the record layer's ``calcTLS1_3PendingState``, where :func:`attach` hooks in; the
client random is the one the hellos carried (noted as they are read or sent).  Anyone who
can read the file can decrypt the connections it covers: it is for debugging.
"""

from __future__ import annotations

from typing import Any

from .._keylog import KeyLogFile

#: TLS 1.3 traffic secret labels, by key change (the first: handshake keys).
_LABELS = (("CLIENT_HANDSHAKE_TRAFFIC_SECRET", "SERVER_HANDSHAKE_TRAFFIC_SECRET"),
           ("CLIENT_TRAFFIC_SECRET_0", "SERVER_TRAFFIC_SECRET_0"))


def attach(tl: Any, log: KeyLogFile) -> None:
    """Log ``tl``'s secrets to ``log``: its record layer's key changes, and its session's
    secrets when the handshake completes."""
    layer = tl._recordLayer
    changes = [0]

    def on_keys(client_secret: Any, server_secret: Any) -> None:
        random = tl._aiotls_client_random
        if random is None or changes[0] >= len(_LABELS):
            return
        client_label, server_label = _LABELS[changes[0]]
        changes[0] += 1
        log.write([_line(client_label, random, client_secret),
                   _line(server_label, random, server_secret)])

    layer._aiotls_keylog = on_keys
    tl._aiotls_keylog = log


def handshake_done(tl: Any) -> None:
    """The secrets known once the handshake completes (exporter; TLS 1.2 master secret)."""
    log, session, random = tl._aiotls_keylog, tl.session, tl._aiotls_client_random
    if log is None or session is None or random is None:
        return
    if tuple(tl.version) > (3, 3):
        if session.exporterMasterSecret:
            log.write([_line("EXPORTER_SECRET", random, session.exporterMasterSecret)])
    elif session.masterSecret:
        log.write([_line("CLIENT_RANDOM", random, session.masterSecret)])


def _line(label: str, random: bytes, secret: Any) -> str:
    return f"{label} {bytes(random).hex()} {bytes(secret).hex()}"
