"""The ssl facade: TLSContext as an ssl.SSLContext, and wrap_bio()'s SSLObject.

Each behaviour frameworks depend on is checked on a memory-BIO pair, against the
stdlib's own SSLObject (OpenSSL) as the peer and with aiotls on both ends.
"""

from __future__ import annotations

import ssl
import threading
from typing import Any

import pytest

import aiotls
from aiotls.compat import TLSObject
from tests.helpers import PKI, VERSION_PARAMS

TLS12 = ssl.TLSVersion.TLSv1_2
TLS13 = ssl.TLSVersion.TLSv1_3


class End:
    """One side of a memory-BIO connection."""

    def __init__(self, ctx: ssl.SSLContext, *, server_side: bool,
                 server_hostname: str | bytes | None = None, session: Any = None) -> None:
        self.incoming = ssl.MemoryBIO()
        self.outgoing = ssl.MemoryBIO()
        self.obj = ctx.wrap_bio(self.incoming, self.outgoing, server_side=server_side,
                                server_hostname=server_hostname, session=session)

    def to(self, other: End) -> None:
        data = self.outgoing.read()
        if data:
            other.incoming.write(data)

    def read_all(self) -> bytes:
        out = b""
        while True:
            try:
                chunk = self.obj.read(1 << 20)
            except ssl.SSLWantReadError:
                return out
            if not chunk:
                return out
            out += chunk


def handshake(client: End, server: End, rounds: int = 10) -> None:
    done = [False, False]
    for _ in range(rounds):
        for index, (me, peer) in enumerate(((client, server), (server, client))):
            if not done[index]:
                try:
                    me.obj.do_handshake()
                    done[index] = True
                except ssl.SSLWantReadError:
                    pass
            me.to(peer)
        if all(done):
            return
    raise AssertionError(f"handshake did not finish: {done}")


def pair(pki: PKI, *, aiotls_client: bool = True, aiotls_server: bool = True,
         version: ssl.TLSVersion = TLS13, client_ctx: ssl.SSLContext | None = None,
         server_ctx: ssl.SSLContext | None = None) -> tuple[End, End]:
    cctx = client_ctx or (pki.client_context() if aiotls_client else pki.stdlib_client_context())
    sctx = server_ctx or (pki.server_context() if aiotls_server else pki.stdlib_server_context())
    cctx.maximum_version = version
    return End(cctx, server_side=False, server_hostname="localhost"), End(sctx, server_side=True)


PEERS = [pytest.param((True, False), id="aiotls-client-openssl-server"),
         pytest.param((False, True), id="openssl-client-aiotls-server"),
         pytest.param((True, True), id="aiotls-both")]


# --- the context -------------------------------------------------------------------------------


def test_tls_context_is_an_ssl_context_and_defines_every_public_name() -> None:
    """Nothing reaches the OpenSSL context underneath: every public name of ssl.SSLContext
    (and the private ones that would make OpenSSL objects) is TLSContext's own."""
    ctx = aiotls.TLSContext()
    assert isinstance(ctx, ssl.SSLContext)
    names = {n for n in dir(ssl.SSLContext) if not n.startswith("_")}
    names |= {"_wrap_bio", "_wrap_socket", "_msg_callback"}
    # and what newer Pythons add (3.13: external PSKs; 3.15: suites, groups, sigalgs)
    names |= {"set_psk_client_callback", "set_psk_server_callback", "set_ciphersuites",
              "set_groups", "get_groups", "set_client_sigalgs", "set_server_sigalgs"}
    ours = aiotls.TLSContext.__mro__[:aiotls.TLSContext.__mro__.index(ssl.SSLContext)]
    missing = sorted(n for n in names if not any(n in vars(cls) for cls in ours))
    assert not missing, f"inherited from ssl.SSLContext (would reach OpenSSL): {missing}"
    with pytest.raises(aiotls.TLSUsageError):
        ctx._wrap_bio(ssl.MemoryBIO(), ssl.MemoryBIO(), False, None)  # type: ignore[attr-defined]


def test_tls_object_defines_every_public_name_of_ssl_object() -> None:
    names = {n for n in dir(ssl.SSLObject) if not n.startswith("_")}
    names |= {"get_verified_chain", "get_unverified_chain"}  # (Python 3.13)
    missing = sorted(n for n in names if n not in vars(TLSObject))
    assert not missing, f"inherited from ssl.SSLObject (would reach OpenSSL): {missing}"


def test_protocol_tls_is_refused_before_an_openssl_context_is_made() -> None:
    with pytest.raises(aiotls.TLSConfigurationError, match="PROTOCOL_TLS"):
        aiotls.TLSContext(ssl.PROTOCOL_TLS)


def test_wrap_bio_refuses_a_context_for_the_other_side(pki: PKI) -> None:
    with pytest.raises(aiotls.TLSUsageError) as info:
        pki.server_context().wrap_bio(ssl.MemoryBIO(), ssl.MemoryBIO(), server_side=False,
                                      server_hostname="localhost")
    assert info.value.code == "wrong-side-context"


def test_a_server_that_cannot_serve_fails_each_handshake_with_an_alert(pki: PKI) -> None:
    """For servers wrap_bio() does not raise (frameworks call it per connection and would
    leave the connection hanging): the handshake fails, after an internal_error alert."""
    no_cert = aiotls.TLSContext(ssl.PROTOCOL_TLS_SERVER)
    for ctx, error in ((no_cert, aiotls.TLSConfigurationError),
                       (pki.client_context(), aiotls.TLSUsageError)):
        server = End(ctx, server_side=True)
        assert isinstance(server.obj, ssl.SSLObject)
        with pytest.raises(error):
            server.obj.do_handshake()
        assert server.outgoing.read() == bytes([21, 3, 3, 0, 2, 2, 80])
        with pytest.raises(error):
            server.obj.read(10)
        assert server.obj.version() is None and server.obj.pending() == 0


# --- identity ----------------------------------------------------------------------------------


def test_identity_attributes(pki: PKI) -> None:
    client = End(pki.client_context(), server_side=False, server_hostname=b"localhost")
    obj = client.obj
    assert isinstance(obj, ssl.SSLObject) and isinstance(obj, TLSObject)
    assert obj.server_hostname == "localhost" and isinstance(obj.server_hostname, str)
    assert obj.server_side is False
    for name in ("server_side", "server_hostname"):
        with pytest.raises(AttributeError):
            setattr(obj, name, None)
    assert isinstance(obj.connection, aiotls.TLSConnection)  # type: ignore[attr-defined]


def test_wrap_bio_positional_with_bytes_hostname_as_anyio_calls_it(pki: PKI) -> None:
    ctx = pki.client_context()
    obj = ctx.wrap_bio(ssl.MemoryBIO(), ssl.MemoryBIO(), False, b"localhost")
    assert obj.server_hostname == "localhost" and not obj.server_side


def test_context_can_be_replaced_before_the_connection_starts(pki: PKI) -> None:
    client, server = pair(pki)
    other = pki.client_context()
    other.set_groups(["secp384r1"])
    client.obj.context = other
    assert client.obj.context is other
    handshake(client, server)
    assert client.obj.connection.group == "secp384r1"  # type: ignore[attr-defined]
    with pytest.raises(aiotls.TLSUsageError, match="started"):
        client.obj.context = pki.client_context()
    with pytest.raises(TypeError):
        client.obj.context = ssl.create_default_context()  # type: ignore[assignment]


# --- the handshake -----------------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSION_PARAMS)
@pytest.mark.parametrize("peers", PEERS)
def test_do_handshake_writes_each_flight_and_wants_read_until_done(
        pki: PKI, version: ssl.TLSVersion, peers: tuple[bool, bool]) -> None:
    client, server = pair(pki, aiotls_client=peers[0], aiotls_server=peers[1], version=version)
    with pytest.raises(ssl.SSLWantReadError):
        client.obj.do_handshake()
    assert client.outgoing.pending > 0  # the ClientHello
    with pytest.raises(ssl.SSLWantReadError):
        client.obj.do_handshake()  # nothing arrived: nothing more to send
    assert client.obj.version() is None and client.obj.cipher() is None
    with pytest.raises(ValueError, match="handshake"):
        client.obj.getpeercert()
    handshake(client, server)
    for end in (client, server):
        assert end.obj.version() == {TLS12: "TLSv1.2", TLS13: "TLSv1.3"}[version]
        name, proto, bits = end.obj.cipher()  # type: ignore[misc]
        assert proto == end.obj.version() and bits >= 128
        assert end.obj.compression() is None
    assert client.obj.getpeercert()["subjectAltName"]
    assert client.obj.getpeercert(True)[:1] == b"\x30"


@pytest.mark.parametrize("peers", PEERS)
def test_verified_chain_runs_from_the_leaf_to_the_trust_anchor(
        pki: PKI, peers: tuple[bool, bool]) -> None:
    from cryptography.hazmat.primitives.serialization import Encoding

    client, server = pair(pki, aiotls_client=peers[0], aiotls_server=peers[1])
    handshake(client, server)
    if isinstance(client.obj, TLSObject):
        chain = client.obj.get_verified_chain()
        leaf = client.obj.getpeercert(True)
        assert chain[0] == leaf and len(chain) == 2
        assert chain[-1] == pki.ca.cert.public_bytes(Encoding.DER)
        assert client.obj.get_unverified_chain() == [leaf]
    if isinstance(server.obj, TLSObject):
        assert server.obj.get_verified_chain() == []  # no client certificate asked for


def test_write_before_the_handshake_drives_it(pki: PKI) -> None:
    client, server = pair(pki)
    with pytest.raises(ssl.SSLWantReadError):
        client.obj.write(b"early")
    assert client.outgoing.pending > 0
    handshake(client, server)
    assert client.obj.write(b"late") == 4
    client.to(server)
    assert server.read_all() == b"late"


def test_certificate_failure_is_a_cert_verification_error_with_the_alert_sent(
        pki: PKI) -> None:
    cctx = aiotls.TLSContext()  # trusts nothing
    client, server = pair(pki, client_ctx=cctx, aiotls_server=False)
    with pytest.raises(ssl.SSLWantReadError):
        client.obj.do_handshake()
    client.to(server)
    with pytest.raises(ssl.SSLWantReadError):
        server.obj.do_handshake()
    server.to(client)
    with pytest.raises(ssl.SSLCertVerificationError) as info:
        client.obj.do_handshake()
    assert isinstance(info.value, aiotls.CertificateError)
    client.to(server)  # the alert reached the OpenSSL server
    with pytest.raises(ssl.SSLError, match=r"UNKNOWN_CA|unknown ca"):
        server.obj.do_handshake()
    with pytest.raises(ssl.SSLCertVerificationError):  # sticky
        client.obj.do_handshake()


def test_fatal_errors_are_never_syscall_errors(pki: PKI) -> None:
    """asyncio and uvloop treat SSLSyscallError as "try again": a fatal error must not be
    one, and the alert goes out before the error is raised."""
    client, server = pair(pki, aiotls_client=False)
    handshake(client, server)
    server.incoming.write(b"\x17\x03\x03\x00\x20" + b"\x00" * 32)  # forged application data
    with pytest.raises(ssl.SSLError) as info:
        server.obj.read(100)
    assert not isinstance(info.value, ssl.SSLSyscallError)
    assert isinstance(info.value, aiotls.PeerMisbehaved)
    assert server.outgoing.pending > 0  # bad_record_mac, for the peer


# --- reading -----------------------------------------------------------------------------------


@pytest.mark.parametrize("peers", PEERS)
def test_read_wants_more_until_a_whole_record_arrived(pki: PKI,
                                                      peers: tuple[bool, bool]) -> None:
    client, server = pair(pki, aiotls_client=peers[0], aiotls_server=peers[1])
    handshake(client, server)
    server.read_all()  # (TLS 1.3 tickets, for an OpenSSL client)
    client.read_all()
    client.obj.write(b"x" * 1000)
    record = client.outgoing.read()
    server.incoming.write(record[:500])
    with pytest.raises(ssl.SSLWantReadError):
        server.obj.read(2000)
    assert server.obj.pending() == 0
    server.incoming.write(record[500:])
    assert server.obj.read(10) == b"x" * 10
    assert server.obj.pending() == 990
    buf = bytearray(2000)
    assert server.obj.read(2000, buf) == 990 and buf[:990] == b"x" * 990


def test_small_reads_of_large_records_return_every_byte_in_order(pki: PKI) -> None:
    client, server = pair(pki)
    handshake(client, server)
    payload = bytes(range(256)) * 700  # several records, delivered as one chunk
    client.obj.write(payload)
    client.obj.write(b"tail")
    client.to(server)
    got = bytearray()
    buf = bytearray(5)
    for i in range(len(payload) // 6 + 10):
        try:
            if i % 2:
                got += server.obj.read(7)
            else:
                count = server.obj.read(5, buf)
                got += buf[:count]
        except ssl.SSLWantReadError:
            break
    assert bytes(got) == payload + b"tail"
    assert server.obj.pending() == 0


@pytest.mark.parametrize("peers", PEERS)
def test_read_returns_empty_after_the_peers_close_notify(pki: PKI,
                                                         peers: tuple[bool, bool]) -> None:
    client, server = pair(pki, aiotls_client=peers[0], aiotls_server=peers[1])
    handshake(client, server)
    client.obj.write(b"last words")
    with pytest.raises(ssl.SSLWantReadError):
        client.obj.unwrap()
    client.to(server)
    assert server.read_all() == b"last words"
    assert server.obj.read(10) == b""
    assert server.obj.read(10, bytearray(10)) == 0
    server.obj.unwrap()  # the peer's close_notify is here: completes at once
    server.to(client)
    assert client.obj.unwrap() is None
    with pytest.raises(ssl.SSLZeroReturnError):  # after our own unwrap
        client.obj.read(10)


def test_tls13_write_after_the_peers_close_notify_until_unwrap(pki: PKI) -> None:
    """As with OpenSSL: a TLS 1.3 peer's close_notify closes its direction only; ours is
    answered at unwrap(), and data can be written until then (RFC 8446 6.1)."""
    client, server = pair(pki)
    handshake(client, server)
    with pytest.raises(ssl.SSLWantReadError):
        client.obj.unwrap()
    client.to(server)
    assert server.read_all() == b""
    assert server.outgoing.pending == 0  # no close_notify yet
    assert server.obj.write(b"late answer") == 11
    server.to(client)
    assert client.obj.read(100) == b"late answer"
    assert server.obj.unwrap() is None
    server.to(client)
    assert client.obj.unwrap() is None
    with pytest.raises(ssl.SSLZeroReturnError):
        server.obj.write(b"after unwrap")


def test_tls12_close_notify_ends_both_directions(pki: PKI) -> None:
    client, server = pair(pki, version=TLS12)
    handshake(client, server)
    with pytest.raises(ssl.SSLWantReadError):
        client.obj.unwrap()
    client.to(server)
    assert server.read_all() == b""
    with pytest.raises(ssl.SSLZeroReturnError):
        server.obj.write(b"too late")  # RFC 5246 7.2.1: no half-close
    server.to(client)
    assert client.obj.unwrap() is None


@pytest.mark.parametrize("peers", PEERS)
def test_eof_without_close_notify_is_an_eof_error(pki: PKI, peers: tuple[bool, bool]) -> None:
    client, server = pair(pki, aiotls_client=peers[0], aiotls_server=peers[1])
    handshake(client, server)
    client.obj.write(b"data")
    client.to(server)
    server.incoming.write_eof()
    assert server.obj.read(100) == b"data"  # what arrived before the EOF first
    with pytest.raises(ssl.SSLEOFError):
        server.obj.read(100)


def test_suppress_ragged_eofs_makes_eof_a_clean_end(pki: PKI) -> None:
    sctx = pki.server_context()
    sctx.suppress_ragged_eofs = True
    client, server = pair(pki, aiotls_client=False, server_ctx=sctx)
    handshake(client, server)
    server.incoming.write_eof()
    assert server.obj.read(100) == b""


def test_eof_during_the_handshake(pki: PKI) -> None:
    client, _server = pair(pki)
    with pytest.raises(ssl.SSLWantReadError):
        client.obj.do_handshake()
    client.incoming.write_eof()
    with pytest.raises(ssl.SSLEOFError):
        client.obj.do_handshake()


# --- unwrap ------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSION_PARAMS)
@pytest.mark.parametrize("peers", PEERS)
def test_unwrap_waits_for_the_peer_and_leaves_later_bytes_in_the_bio(
        pki: PKI, version: ssl.TLSVersion, peers: tuple[bool, bool]) -> None:
    client, server = pair(pki, aiotls_client=peers[0], aiotls_server=peers[1], version=version)
    handshake(client, server)
    server.obj.write(b"before")
    server.to(client)
    assert client.read_all() == b"before"
    with pytest.raises(ssl.SSLWantReadError):
        client.obj.unwrap()
    with pytest.raises(ssl.SSLWantReadError):
        client.obj.unwrap()  # still waiting; close_notify is not sent twice
    client.to(server)
    assert server.read_all() == b""
    server.obj.unwrap()
    server.to(client)
    client.incoming.write(b"PLAINTEXT AFTER TLS")
    assert client.obj.unwrap() is None
    assert client.incoming.read() == b"PLAINTEXT AFTER TLS"


@pytest.mark.parametrize("peers", PEERS)
def test_plaintext_in_the_same_read_as_close_notify_stays_in_the_bio(
        pki: PKI, peers: tuple[bool, bool]) -> None:
    client, server = pair(pki, aiotls_client=peers[0], aiotls_server=peers[1])
    handshake(client, server)
    client.read_all()
    with pytest.raises(ssl.SSLWantReadError):
        client.obj.unwrap()
    client.to(server)
    server.read_all()
    server.obj.unwrap()
    client.incoming.write(server.outgoing.read() + b"STARTTLS-DOWNGRADED")
    assert client.obj.unwrap() is None
    assert client.incoming.read() == b"STARTTLS-DOWNGRADED"


# --- what the handshake negotiated -------------------------------------------------------------


@pytest.mark.parametrize("peers", PEERS)
def test_alpn(pki: PKI, peers: tuple[bool, bool]) -> None:
    client, server = pair(pki, aiotls_client=peers[0], aiotls_server=peers[1])
    for end in (client, server):
        end.obj.context.set_alpn_protocols(["h2", "http/1.1"])
    # (set after wrap_bio: an aiotls object keeps the settings of its creation, like the
    # stdlib, so make fresh ones)
    cctx, sctx = client.obj.context, server.obj.context
    client = End(cctx, server_side=False, server_hostname="localhost")
    server = End(sctx, server_side=True)
    handshake(client, server)
    assert client.obj.selected_alpn_protocol() == server.obj.selected_alpn_protocol() == "h2"
    for end in (client, server):
        if isinstance(end.obj, TLSObject):
            assert end.obj.selected_npn_protocol() is None


@pytest.mark.parametrize("aiotls_client", [True, False], ids=["aiotls-client", "openssl-client"])
def test_shared_ciphers_are_the_clients_offer_that_the_server_enables(
        pki: PKI, aiotls_client: bool) -> None:
    cctx = pki.client_context() if aiotls_client else pki.stdlib_client_context()
    cctx.set_ciphers("ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384")
    # (what each offers; OpenSSL keeps its TLS 1.3 suites whatever set_ciphers says)
    offered = {c["name"] for c in cctx.get_ciphers()}
    assert "TLS_CHACHA20_POLY1305_SHA256" not in offered or not aiotls_client
    client, server = pair(pki, client_ctx=cctx)
    assert server.obj.shared_ciphers() is None  # before the handshake
    handshake(client, server)
    if aiotls_client:
        assert client.obj.shared_ciphers() is None  # client side, as in the stdlib
    shared = server.obj.shared_ciphers()
    assert shared is not None and server.obj.cipher() in shared
    enabled = {c["name"] for c in server.obj.context.get_ciphers()}
    assert {name for name, _, _ in shared} == offered & enabled
    protocols = {c["name"]: c["protocol"] for c in server.obj.context.get_ciphers()}
    assert all(proto == protocols[name] for name, proto, _ in shared)


@pytest.mark.parametrize("peers", PEERS)
def test_tls_unique_matches_openssls(pki: PKI, peers: tuple[bool, bool]) -> None:
    client, server = pair(pki, aiotls_client=peers[0], aiotls_server=peers[1], version=TLS12)
    assert client.obj.get_channel_binding("tls-unique") is None  # before the handshake
    handshake(client, server)
    ours = client.obj.get_channel_binding("tls-unique")
    assert ours is not None and len(ours) == 12
    assert server.obj.get_channel_binding("tls-unique") == ours
    with pytest.raises(ValueError, match="tls-server-end-point"):
        client.obj.get_channel_binding("tls-server-end-point")


def test_tls_unique_is_undefined_for_tls13(pki: PKI) -> None:
    client, server = pair(pki)
    handshake(client, server)
    assert client.obj.get_channel_binding("tls-unique") is None  # RFC 8446 C.5


@pytest.mark.parametrize("aiotls_server", [True, False], ids=["aiotls-server", "openssl-server"])
@pytest.mark.parametrize("version", VERSION_PARAMS)
def test_session_resumption_through_wrap_bio(pki: PKI, version: ssl.TLSVersion,
                                             aiotls_server: bool) -> None:
    cctx = pki.client_context()
    cctx.maximum_version = version
    sctx = pki.server_context() if aiotls_server else pki.stdlib_server_context()
    client, server = End(cctx, server_side=False, server_hostname="localhost"), End(
        sctx, server_side=True)
    handshake(client, server)
    assert not client.obj.session_reused
    client.obj.write(b"x")
    client.to(server)
    server.read_all()
    server.to(client)  # (TLS 1.3 tickets)
    client.read_all()
    session = client.obj.session
    assert isinstance(session, aiotls.TLSSession) and session.has_ticket
    again = End(cctx, server_side=False, server_hostname="localhost", session=session)
    server2 = End(sctx, server_side=True)
    handshake(again, server2)
    assert again.obj.session_reused and server2.obj.session_reused
    late = End(cctx, server_side=False, server_hostname="localhost")
    late.obj.session = session  # assignable before the handshake
    handshake(late, End(sctx, server_side=True))
    assert late.obj.session_reused
    with pytest.raises(ValueError, match="after handshake"):
        late.obj.session = session


def test_post_handshake_client_auth_with_an_openssl_client(pki: PKI) -> None:
    sctx = pki.server_context()
    sctx.verify_mode = ssl.CERT_REQUIRED
    sctx.post_handshake_auth = True
    sctx.load_verify_locations(cafile=pki.ca_file)
    cctx = pki.stdlib_client_context()
    cctx.post_handshake_auth = True
    cctx.load_cert_chain(*pki.client[1:])
    client, server = pair(pki, server_ctx=sctx, client_ctx=cctx)
    handshake(client, server)
    assert server.obj.getpeercert() is None
    server.read_all()
    server.obj.verify_client_post_handshake()
    server.to(client)
    client.read_all()  # OpenSSL answers while reading
    client.to(server)
    server.read_all()
    assert server.obj.getpeercert()["subject"]


# --- threads -----------------------------------------------------------------------------------


def test_wrap_bio_is_thread_safe(pki: PKI) -> None:
    """anyio calls wrap_bio in worker threads: many at once on one context, while the
    context's prepared settings are being built for the first time."""
    cctx = pki.client_context()
    sctx = pki.server_context()
    made: list[tuple[End, End]] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def work() -> None:
        try:
            for _ in range(5):
                ends = (End(cctx, server_side=False, server_hostname=b"localhost"),
                        End(sctx, server_side=True))
                with lock:
                    made.append(ends)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors and len(made) == 40
    for client, server in made:
        handshake(client, server)
        client.obj.write(b"ok")
        client.to(server)
        assert server.read_all() == b"ok"
