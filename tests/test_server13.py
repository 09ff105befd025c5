"""The TLS 1.3 server flight written by aiotls (``_engine/server13.py``) against tlslite-ng's.

Each handshake runs twice with the same randomness (random bytes, key shares, signatures,
clock): once through aiotls's flight, once through tlslite-ng's ``_serverTLS13Handshake``.
Every byte either side sends must be the same, and so must the server's connection state
afterwards (session secrets, group, signature scheme, flags).  Other tests check that the
handshakes aiotls does not write itself go to tlslite-ng, and real peers.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import random
import ssl
import time
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, x25519

import aiotls
from aiotls import _crypto
from aiotls._engine import server13
from tests.helpers import PKI, pump, tap_handshake

pytestmark = pytest.mark.speedups  # (with the speed-ups off tlslite's method runs always)

#: One clock reading for both runs of a handshake (tickets carry their creation time).
_NOW = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
_CURVES = {"secp256r1": ec.SECP256R1(), "secp384r1": ec.SECP384R1(),
           "secp521r1": ec.SECP521R1()}


class _Seeded:
    """Deterministic stand-ins for every source of randomness a handshake uses."""

    def __init__(self) -> None:
        self.counter = 0
        self.signatures: dict[tuple[Any, ...], bytes] = {}

    def reset(self) -> None:
        self.counter = 0

    def bytes(self, n: int) -> bytes:
        out = b""
        while len(out) < n:
            self.counter += 1
            out += hashlib.sha256(self.counter.to_bytes(8, "big")).digest()
        return out[:n]

    def key(self, group: Any) -> Any:
        seed = self.bytes(32)
        if group.name == "x25519":
            return x25519.X25519PrivateKey.from_private_bytes(seed)
        curve = _CURVES[group.name]
        return ec.derive_private_key(int.from_bytes(seed, "big") % (2**250) + 1, curve)


@pytest.fixture
def seeded(monkeypatch: pytest.MonkeyPatch) -> _Seeded:
    seeded = _Seeded()
    monkeypatch.setattr("os.urandom", seeded.bytes)
    monkeypatch.setattr(random, "_urandom", seeded.bytes)
    monkeypatch.setattr(time, "time", _NOW.timestamp)  # (tlslite's clock: ticket ages)
    monkeypatch.setattr(_crypto.ECDHGroup, "generate", lambda group: seeded.key(group))
    for name in ("ecdsa_sign_digest", "rsa_sign_digest"):
        sign = getattr(_crypto, name)

        def remembered(*args: Any, _sign: Callable[..., bytes] = sign, _name: str = name) -> bytes:
            key = (_name, id(args[0]), *(bytes(a) if isinstance(a, bytes | bytearray) else a
                                         for a in args[1:]))
            if key not in seeded.signatures:
                seeded.signatures[key] = _sign(*args)
            return seeded.signatures[key]

        monkeypatch.setattr(_crypto, name, remembered)
    return seeded


def _state(conn: aiotls.TLSConnection) -> dict[str, Any]:
    """What the server keeps of the handshake: tlslite's connection and session attributes
    (values of plain types), and the connection's introspection."""
    tl = conn._engine._tl
    plain = (bytes, bytearray, int, str, tuple, bool, type(None))
    state = {f"tl.{k}": v for k, v in vars(tl).items()
             if isinstance(v, plain) and k != "_aiotls_lean"}
    if tl.session is not None:
        state |= {f"session.{k}": v for k, v in vars(tl.session).items() if isinstance(v, plain)}
        state["session.appProto"] = tl.session.appProto
        state["session.serverCertChain"] = tl.session.serverCertChain is not None
    state |= {"version": conn.version(), "cipher": conn.cipher(), "group": conn.group,
              "alpn": conn.selected_alpn_protocol(), "resumed": conn.session_reused,
              "sni": conn._engine.sni(), "channel": conn.get_channel_binding()}
    return state


#: One run: every chunk sent (who, bytes), the client, the server, the error if any.
_Run = tuple[list[tuple[str, bytes]], aiotls.TLSConnection, aiotls.TLSConnection,
             Exception | None]


def _run(lean: bool, seeded: _Seeded, monkeypatch: pytest.MonkeyPatch,
         client_ctx: aiotls.TLSContext, server_ctx: aiotls.TLSContext, *,
         hostname: str | None = "localhost", session: aiotls.TLSSession | None = None,
         edit_client: Callable[[bytes], bytes] | None = None,
         edit_hello: Callable[[bytes], bytes] | None = None,
         ) -> _Run:
    """One handshake and a message each way; every chunk sent, in order."""
    monkeypatch.setattr(server13, "ENABLED", lean)
    aiotls.TLSConnection(server_ctx, server_side=True)  # (makes the context's ticket keys)
    seeded.reset()
    client = aiotls.TLSConnection(client_ctx, server_hostname=hostname, session=session,
                                  now=lambda: _NOW)
    server = aiotls.TLSConnection(server_ctx, server_side=True, now=lambda: _NOW)
    if edit_client is not None:
        tap_handshake(client, edit_client)
    sent: list[tuple[str, bytes]] = []
    error: Exception | None = None
    try:
        for i in range(20):
            out = client.data_to_send()
            if i == 0 and edit_hello is not None:
                out = edit_hello(bytes(out))
            if out:
                sent.append(("client", out))
                server.receive_data(out)
            back = server.data_to_send()
            if back:
                sent.append(("server", back))
                client.receive_data(back)
            if not out and not back:
                break
        if client.handshake_complete and server.handshake_complete:
            server.send_data(b"from the server")
            client.send_data(b"from the client")
            pump(client, server)
    except aiotls.TLSError as exc:
        error = exc
        for conn, who in ((server, "server"), (client, "client")):
            rest = conn.data_to_send()
            if rest:
                sent.append((who, rest))
    assert server._engine._tl._aiotls_lean is lean
    return sent, client, server, error or server.error or client.error


def _same_both_ways(seeded: _Seeded, monkeypatch: pytest.MonkeyPatch,
                    client_ctx: aiotls.TLSContext, server_ctx: aiotls.TLSContext,
                    **kw: Any) -> _Run:
    """One handshake (:func:`_run`'s arguments) through aiotls's flight and through
    tlslite's method: the same bytes, states and error; returns aiotls's run."""
    ours = _run(True, seeded, monkeypatch, client_ctx, server_ctx, **kw)
    theirs = _run(False, seeded, monkeypatch, client_ctx, server_ctx, **kw)
    assert [who for who, _ in ours[0]] == [who for who, _ in theirs[0]]
    for (who, mine), (_, expected) in zip(ours[0], theirs[0], strict=True):
        assert mine == expected, who
    assert _state(ours[2]) == _state(theirs[2])
    assert _state(ours[1]) == _state(theirs[1])
    assert (type(ours[3]), getattr(ours[3], "code", None)) == \
        (type(theirs[3]), getattr(theirs[3], "code", None))
    return ours


def _contexts(pki: PKI, key_type: str = "ecdsa-p256",
              ) -> tuple[aiotls.TLSContext, aiotls.TLSContext]:
    return pki.client_context(), pki.server_context(key_type)  # type: ignore[arg-type]


@pytest.mark.parametrize("key_type", ["ecdsa-p256", "ecdsa-p384", "rsa2048", "ed25519"])
def test_full_handshake_same_bytes_and_state(pki: PKI, seeded: _Seeded,
                                             monkeypatch: pytest.MonkeyPatch,
                                             key_type: str) -> None:
    client_ctx, server_ctx = _contexts(pki, key_type)
    _, client, server, _ = _same_both_ways(seeded, monkeypatch, client_ctx, server_ctx)
    assert client.version() == "TLSv1.3" and not server.session_reused
    assert client.data_to_send() == b""


@pytest.mark.parametrize(("client_alpn", "server_alpn", "hostname"), [
    (["http/1.1", "h2"], ["h2", "http/1.1"], "localhost"),
    (["h2"], None, "example.test"),
    (None, ["h2"], "127.0.0.1"),  # (an IP: no SNI)
    (["x", "h2", "http/1.1"], ["http/1.1", "h2"], None),
])
def test_alpn_and_sni_same_as_tlslite(pki: PKI, seeded: _Seeded,
                                      monkeypatch: pytest.MonkeyPatch,
                                      client_alpn: list[str] | None,
                                      server_alpn: list[str] | None,
                                      hostname: str | None) -> None:
    client_ctx, server_ctx = _contexts(pki)
    if hostname is None:
        client_ctx.check_hostname = False
    if client_alpn:
        client_ctx.set_alpn_protocols(client_alpn)
    if server_alpn:
        server_ctx.set_alpn_protocols(server_alpn)
    _, client, server, _ = _same_both_ways(seeded, monkeypatch, client_ctx, server_ctx,
                                     hostname=hostname)
    assert server.handshake_complete


@pytest.mark.parametrize("suite", ["TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384",
                                   "TLS_CHACHA20_POLY1305_SHA256"])
@pytest.mark.parametrize("groups", [["x25519"], ["secp256r1"], ["secp384r1", "x25519"]])
def test_suites_and_groups_same_as_tlslite(pki: PKI, seeded: _Seeded,
                                           monkeypatch: pytest.MonkeyPatch, suite: str,
                                           groups: list[str]) -> None:
    client_ctx, server_ctx = _contexts(pki)
    client_ctx.set_groups(groups)
    client_ctx.set_ciphers(suite)
    _, client, server, _ = _same_both_ways(seeded, monkeypatch, client_ctx, server_ctx)
    assert client.cipher()[0] == suite  # type: ignore[index]


def _ticket(pki: PKI, client_ctx: aiotls.TLSContext,
            server_ctx: aiotls.TLSContext) -> aiotls.TLSSession:
    client = aiotls.TLSConnection(client_ctx, server_hostname="localhost", now=lambda: _NOW)
    server = aiotls.TLSConnection(server_ctx, server_side=True, now=lambda: _NOW)
    pump(client, server)
    server.send_data(b"x")
    pump(client, server)
    session = client.session
    assert session is not None and session.has_ticket
    return session


def test_resumption_same_as_tlslite(pki: PKI, seeded: _Seeded,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    client_ctx, server_ctx = _contexts(pki)
    session = _ticket(pki, client_ctx, server_ctx)
    _, client, server, _ = _same_both_ways(seeded, monkeypatch, client_ctx, server_ctx,
                                     session=session)
    assert client.session_reused and server.session_reused


def test_unknown_ticket_gives_a_full_handshake_as_tlslite(pki: PKI, seeded: _Seeded,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    client_ctx, server_ctx = _contexts(pki)
    session = _ticket(pki, client_ctx, server_ctx)
    other_server = pki.server_context()  # other ticket keys
    _, client, server, _ = _same_both_ways(seeded, monkeypatch, client_ctx, other_server,
                                     session=session)
    assert client.handshake_complete and not server.session_reused


def test_ticket_of_another_hash_is_not_used_as_tlslite(pki: PKI, seeded: _Seeded,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    client_ctx, server_ctx = _contexts(pki)
    client_ctx.set_ciphers("TLS_AES_256_GCM_SHA384")
    session = _ticket(pki, client_ctx, server_ctx)
    client_ctx.set_ciphers("TLS_AES_128_GCM_SHA256")  # a SHA-256 suite now
    _, client, server, _ = _same_both_ways(seeded, monkeypatch, client_ctx, server_ctx,
                                     session=session)
    assert client.handshake_complete and not server.session_reused


def _flip_last_byte(kind: int) -> Callable[[bytes], bytes]:
    def edit(message: bytes) -> bytes:
        return message[:-1] + bytes((message[-1] ^ 1,)) if message[0] == kind else message
    return edit


@pytest.mark.parametrize("resume", [False, True])
def test_bad_client_finished_same_alert_as_tlslite(pki: PKI, seeded: _Seeded,
                                                   monkeypatch: pytest.MonkeyPatch,
                                                   resume: bool) -> None:
    client_ctx, server_ctx = _contexts(pki)
    session = _ticket(pki, client_ctx, server_ctx) if resume else None
    _, _, server, error = _same_both_ways(seeded, monkeypatch, client_ctx, server_ctx,
                                          session=session, edit_client=_flip_last_byte(20))
    assert isinstance(error, aiotls.TLSError)
    assert not server.handshake_complete


def test_bad_binder_same_alert_as_tlslite(pki: PKI, seeded: _Seeded,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    client_ctx, server_ctx = _contexts(pki)
    session = _ticket(pki, client_ctx, server_ctx)
    # the binder is the ClientHello's last bytes (the hello is sent before a tap could
    # see it: the record is edited)
    *_, error = _same_both_ways(seeded, monkeypatch, client_ctx, server_ctx, session=session,
                                edit_hello=_flip_last_byte(22))
    assert isinstance(error, aiotls.PeerMisbehaved)
    assert error.alert == aiotls.AlertDescription.illegal_parameter


# --- what goes to tlslite's method ----------------------------------------------------------


def _lean_taken(client_ctx: aiotls.TLSContext, server_ctx: aiotls.TLSContext,
                session: aiotls.TLSSession | None = None) -> bool:
    client = aiotls.TLSConnection(client_ctx, server_hostname="localhost", session=session)
    server = aiotls.TLSConnection(server_ctx, server_side=True)
    pump(client, server)
    assert client.handshake_complete and server.handshake_complete
    return bool(server._engine._tl._aiotls_lean)


def test_common_handshakes_take_aiotls_flight(pki: PKI) -> None:
    client_ctx, server_ctx = _contexts(pki)
    assert _lean_taken(client_ctx, server_ctx)
    assert _lean_taken(client_ctx, server_ctx, _ticket(pki, client_ctx, server_ctx))


def test_client_certificate_request_goes_to_tlslite(pki: PKI) -> None:
    client_ctx, server_ctx = _contexts(pki)
    client_ctx.load_cert_chain(*pki.client[1:])
    server_ctx.load_verify_locations(cafile=pki.ca_file)
    server_ctx.verify_mode = ssl.CERT_REQUIRED
    assert not _lean_taken(client_ctx, server_ctx)


def test_hello_retry_goes_to_tlslite(pki: PKI) -> None:
    client_ctx, server_ctx = _contexts(pki)
    client_ctx.set_groups(["x25519", "secp256r1"])
    server_ctx.set_groups(["secp256r1"])
    assert not _lean_taken(client_ctx, server_ctx)


def test_tls12_is_not_touched(pki: PKI) -> None:
    client_ctx, server_ctx = _contexts(pki)
    client_ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    assert not _lean_taken(client_ctx, server_ctx)


def test_stdlib_client_resumes_through_aiotls_flight(pki: PKI) -> None:
    """OpenSSL's client (ssl.MemoryBIO) against the flight: ALPN, SNI, tickets, resumption."""
    server_ctx = pki.server_context()
    server_ctx.set_alpn_protocols(["h2", "http/1.1"])
    client_ctx = pki.stdlib_client_context()
    client_ctx.set_alpn_protocols(["http/1.1"])
    session = None
    for round_ in range(3):
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        obj = client_ctx.wrap_bio(incoming, outgoing, server_hostname="localhost",
                                  session=session)
        server = aiotls.TLSConnection(server_ctx, server_side=True)
        for _ in range(10):
            with contextlib.suppress(ssl.SSLWantReadError):
                obj.do_handshake()
            server.receive_data(outgoing.read())
            incoming.write(server.data_to_send())
            if server.handshake_complete and obj.version():
                break
        server.send_data(b"ping")
        incoming.write(server.data_to_send())
        assert obj.read(4) == b"ping"
        assert server._engine._tl._aiotls_lean
        assert obj.selected_alpn_protocol() == "http/1.1" == server.selected_alpn_protocol()
        assert server._engine.sni() == "localhost"
        assert obj.session_reused == (round_ > 0) == server.session_reused
        session = obj.session
