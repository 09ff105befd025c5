"""Received alerts by the RFCs' rules (issue 11 #9): each alert x level x version x phase x role.

RFC 8446 6: in TLS 1.3 every alert except close_notify and user_canceled ends the connection,
whatever its level; user_canceled announces a close_notify.  RFC 5246 7.2: in TLS 1.2 a
warning-level alert lets the connection go on, except the alerts the RFC calls "always fatal".
Before the peer's hello no version is agreed and TLS 1.2's rules apply (as in OpenSSL): GnuTLS
sends a warning ``unrecognized_name`` there.  Unknown alerts are errors in both versions.

The alerts are injected into real in-memory handshakes: as plaintext records before the peer's
hello and in the handshake (TLS 1.3 accepts a plaintext alert while no protected record has
arrived yet), sealed by the peer's record layer after the handshake.
"""

from __future__ import annotations

import ssl

import pytest

import aiotls
from aiotls.errors import AlertDescription, AlertReceived, PeerMisbehaved
from aiotls.events import CloseNotifyReceived, ConnectionTerminated
from tests.helpers import PKI, VERSIONS, data_of, pump

A = AlertDescription
WARNING, FATAL = 1, 2
UNKNOWN_ALERT = 200

#: alert -> outcome for (TLS 1.2 warning, TLS 1.2 fatal, TLS 1.3 warning, TLS 1.3 fatal).
EXPECTED: dict[int, tuple[str, str, str, str]] = {
    A.user_canceled: ("ignore", "fatal", "ignore", "ignore"),
    A.no_renegotiation: ("ignore", "fatal", "fatal", "fatal"),
    A.unrecognized_name: ("ignore", "fatal", "fatal", "fatal"),
    A.certificate_expired: ("ignore", "fatal", "fatal", "fatal"),
    A.bad_certificate: ("ignore", "fatal", "fatal", "fatal"),
    A.certificate_unobtainable: ("ignore", "fatal", "fatal", "fatal"),
    UNKNOWN_ALERT: ("fatal", "fatal", "fatal", "fatal"),  # errors (RFC 8446 6)
    A.missing_extension: ("fatal", "fatal", "fatal", "fatal"),  # TLS 1.3's
    A.handshake_failure: ("fatal", "fatal", "fatal", "fatal"),
    A.unexpected_message: ("fatal", "fatal", "fatal", "fatal"),
    A.decode_error: ("fatal", "fatal", "fatal", "fatal"),
    A.internal_error: ("fatal", "fatal", "fatal", "fatal"),
}
PHASES = ("hello", "handshake", "open")


def _expected(description: int, level: int, version: str, phase: str) -> str:
    column = EXPECTED[description]
    # before the peer's hello no version is agreed: TLS 1.2's rules
    tls13 = version == "TLSv1.3" and phase != "hello"
    return column[(2 if tls13 else 0) + (level - 1)]


CASES = [
    pytest.param(d, level, v, phase, role, _expected(d, level, v, phase),
                 id=f"{A.name_of(d)}-{'warning' if level == 1 else 'fatal'}-{v}-{phase}-{role}")
    for d in EXPECTED for level in (WARNING, FATAL) for v in VERSIONS for phase in PHASES
    for role in ("client", "server")
]


def _plain_alert(level: int, description: int) -> bytes:
    return bytes((21, 3, 3, 0, 2, level, description))


def _records(wire: bytes) -> list[bytes]:
    out = []
    while wire:
        end = 5 + int.from_bytes(wire[3:5], "big")
        out.append(wire[:end])
        wire = wire[end:]
    return out


def _contexts(pki: PKI, version: str) -> tuple[aiotls.TLSContext, aiotls.TLSContext]:
    server_ctx = pki.server_context()
    server_ctx.maximum_version = ssl.TLSVersion[version.replace(".", "_")]
    return pki.client_context(), server_ctx


def _inject(pki: PKI, version: str, phase: str, role: str,
            alerts: list[bytes]) -> tuple[aiotls.TLSConnection, aiotls.TLSConnection]:
    """Run a handshake; the receiving end (``role``) gets ``alerts`` (level, description
    pairs) from its peer at ``phase``.  Returns (receiver, sender), pumped until quiet."""
    client_ctx, server_ctx = _contexts(pki, version)
    client = aiotls.TLSConnection(client_ctx, server_hostname="localhost")
    server = aiotls.TLSConnection(server_ctx, server_side=True)
    receiver, sender = (client, server) if role == "client" else (server, client)
    plain = b"".join(_plain_alert(a[0], a[1]) for a in alerts)
    if phase == "open":
        pump(client, server)
        assert client.handshake_complete and server.handshake_complete
        receiver.events()
        receiver.receive_data(b"".join(sender._engine.seal_record(21, a) for a in alerts))
        return receiver, sender
    hello = client.data_to_send()
    if role == "server":
        if phase == "hello":
            server.receive_data(plain + hello)
        else:
            server.receive_data(hello)
            client.receive_data(server.data_to_send())
            server.receive_data(plain + client.data_to_send())
    else:
        server.receive_data(hello)
        flight = server.data_to_send()
        if phase == "hello":
            client.receive_data(plain + flight)
        else:
            first, *rest = _records(flight)
            client.receive_data(first)  # ServerHello: the version is agreed now
            client.receive_data(plain + b"".join(rest))
    if not receiver.error and not sender.error:
        pump(client, server)
    return receiver, sender


def _error(conn: aiotls.TLSConnection) -> BaseException | None:
    for event in conn.events():
        if isinstance(event, ConnectionTerminated):
            return event.error
    return conn.error


@pytest.mark.parametrize(("description", "level", "version", "phase", "role", "outcome"), CASES)
def test_received_alert_rules(pki: PKI, description: int, level: int, version: str, phase: str,
                              role: str, outcome: str) -> None:
    receiver, sender = _inject(pki, version, phase, role, [bytes((level, description))])
    if outcome == "ignore":
        assert receiver.error is None, receiver.error
        assert receiver.handshake_complete and receiver.version() == version
        assert receiver.data_to_send() == b""  # no alert answered it
        receiver.events()
        sender.send_data(b"still open")
        receiver.receive_data(sender.data_to_send())
        assert data_of(receiver) == b"still open"
        receiver.send_data(b"both ways")
        sender.receive_data(receiver.data_to_send())
        assert data_of(sender) == b"both ways"
    else:
        err = _error(receiver)
        assert isinstance(err, AlertReceived), err
        assert err.alert_number == description
        assert err.code == f"alert-{A.name_of(description).replace('_', '-')}"
        if level == WARNING:
            assert "warning-level" in err.what and "ends the connection" in err.what
            assert "aborted" not in err.what
        assert not receiver.handshake_complete or phase == "open"


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("role", ["client", "server"])
def test_user_canceled_then_close_notify_after_the_handshake_is_a_clean_close(
        pki: PKI, version: str, role: str) -> None:
    # Java's SSLSocket.close() in TLS 1.3
    receiver, sender = _inject(pki, version, "open", role, [b"\x01\x5a", b"\x01\x00"])
    events = receiver.events()
    assert any(isinstance(e, CloseNotifyReceived) for e in events), events
    terminated = [e for e in events if isinstance(e, ConnectionTerminated)]
    assert terminated and terminated[0].error is None and receiver.error is None


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("phase", ["hello", "handshake"])
@pytest.mark.parametrize("role", ["client", "server"])
def test_user_canceled_then_close_notify_in_the_handshake_is_a_cancel(
        pki: PKI, version: str, phase: str, role: str) -> None:
    receiver, _ = _inject(pki, version, phase, role, [b"\x01\x5a", b"\x01\x00"])
    err = _error(receiver)
    assert isinstance(err, AlertReceived), err
    assert err.alert == A.user_canceled
    assert "the peer canceled the handshake" in err.what
    assert not receiver.handshake_complete


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("phase", PHASES)
def test_close_notify_in_the_handshake_says_closed(pki: PKI, version: str, phase: str) -> None:
    receiver, _ = _inject(pki, version, phase, "client", [b"\x01\x00"])
    err = _error(receiver)
    if phase == "open":
        assert err is None and receiver.error is None
        return
    assert isinstance(err, AlertReceived), err
    assert err.code == "closed-in-handshake"
    assert "before the handshake completed" in err.what and "aborted" not in err.what


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("phase", PHASES)
def test_a_flood_of_warning_alerts_fails(pki: PKI, version: str, phase: str) -> None:
    # user_canceled is ignorable in every version and phase; the 5th ends the connection
    receiver, _ = _inject(pki, version, phase, "server", [b"\x01\x5a"] * 5)
    err = _error(receiver)
    assert isinstance(err, PeerMisbehaved), err
    assert err.alert == A.unexpected_message and err.code == "warning-alert-flood"


@pytest.mark.parametrize("version", VERSIONS)
def test_warning_alerts_are_counted_over_the_connection(pki: PKI, version: str) -> None:
    # two in the handshake, two after it: still open; one more fails, data between or not
    receiver, sender = _inject(pki, version, "hello", "server", [b"\x01\x5a"] * 2)
    assert receiver.handshake_complete and receiver.error is None
    seal = sender._engine.seal_record
    receiver.events()
    for round_ in range(2):
        receiver.receive_data(seal(23, b"x%d" % round_) + seal(21, b"\x01\x5a"))
        assert data_of(receiver) == b"x%d" % round_
        assert receiver.error is None
    receiver.receive_data(seal(23, b"last") + seal(21, b"\x01\x5a"))
    assert isinstance(receiver.error, PeerMisbehaved)
    assert receiver.error.code == "warning-alert-flood"


@pytest.mark.parametrize("phase", PHASES)
def test_fatal_user_canceled_in_tls12_blames_the_right_moment(pki: PKI, phase: str) -> None:
    receiver, _ = _inject(pki, "TLSv1.2", phase, "client", [b"\x02\x5a"])
    err = _error(receiver)
    assert isinstance(err, AlertReceived) and err.alert == A.user_canceled
    stage = "after the handshake" if phase == "open" else "during the handshake"
    assert f"fatal user_canceled alert (90) {stage}" in err.what
    if phase == "open":  # nothing was being handshaken any more
        assert "handshake" not in err.cause and "gave up on the connection" in err.cause
    else:
        assert "canceled the handshake" in err.cause


@pytest.mark.parametrize("version", VERSIONS)
def test_warning_alert_that_ends_tls13_or_tls12_says_why(pki: PKI, version: str) -> None:
    receiver, _ = _inject(pki, version, "open", "client", [b"\x01\x70"])  # unrecognized_name
    err = _error(receiver)
    if version == "TLSv1.2":
        assert err is None and receiver.error is None  # ignorable in TLS 1.2
        return
    assert isinstance(err, AlertReceived)
    assert err.what.startswith("the peer sent a warning-level unrecognized_name alert (112) "
                               "after the handshake, which ends the connection")
    assert "RFC 8446 section 6" in err.what
