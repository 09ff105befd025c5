"""External PSKs (TLS 1.3, RFC 8446 4.2.11): TLSContext.set_external_psks, psk_modes and
Python 3.13's set_psk_client_callback / set_psk_server_callback.

Peers: aiotls itself in memory (run with and without AIOTLS_SPEEDUPS), ``openssl
s_server -psk ... -nocert`` and ``openssl s_client -psk ...`` over loopback (bounded waits,
processes ended by the context manager that started them), and the asyncio adapter and
the ``ssl`` facade (``asyncio.start_server(ssl=ctx)``) on both event loops.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

import pytest

import aiotls
import aiotls.asyncio
from tests.helpers import PKI, data_of, handshake, pump
from tests.sockloop import OpenSSLProcess, SocketTLS, free_port, listen, require_openssl

TIMEOUT = 10.0
KEY = bytes(range(32))
OTHER_KEY = bytes(range(100, 132))


def psk_client(psks: dict[Any, Any] | None = None, *, hash: str = "sha256",
               pki: PKI | None = None) -> aiotls.TLSContext:
    """A client with PSKs (default ``{"client1": KEY}``): it verifies certificates as ever
    (trusting the test CA if ``pki`` is given, else nothing)."""
    ctx = pki.client_context() if pki is not None else aiotls.TLSContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.set_external_psks(psks if psks is not None else {"client1": KEY}, hash=hash)
    return ctx


def psk_server(psks: dict[Any, Any] | None = None, *, hash: str = "sha256",
               pki: PKI | None = None) -> aiotls.TLSContext:
    """A server with PSKs; with the test certificate too if ``pki`` is given."""
    ctx = pki.server_context() if pki is not None else aiotls.TLSContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.set_external_psks(psks if psks is not None else {"client1": KEY}, hash=hash)
    return ctx


def exchange(client: aiotls.TLSConnection, server: aiotls.TLSConnection) -> None:
    client.send_data(b"ping")
    pump(client, server)
    assert data_of(server) == b"ping"
    server.send_data(b"pong")
    pump(client, server)
    assert data_of(client) == b"pong"


def both_failed(client: aiotls.TLSConnection,
                server: aiotls.TLSConnection) -> tuple[aiotls.TLSError, aiotls.TLSError]:
    assert client.error is not None and server.error is not None, (client.error, server.error)
    return client.error, server.error


# --- both ends aiotls ----------------------------------------------------------------------------


def test_psk_without_certificates() -> None:
    """The -nocert case: a server with only a PSK, a client that trusts no CA at all."""
    client, server = handshake(psk_client(), psk_server())
    assert client.handshake_complete and server.handshake_complete, client.error or server.error
    assert client.psk_identity == server.psk_identity == b"client1"
    assert client.version() == "TLSv1.3"
    assert client.cipher()[0] == "TLS_AES_128_GCM_SHA256"  # type: ignore[index]
    assert client.group == "x25519"  # psk_dhe_ke: (EC)DHE by default
    assert client.getpeercert() is None and server.getpeercert() is None
    assert not client.session_reused and not server.session_reused
    exchange(client, server)


def test_identities_as_str_or_bytes_and_several_psks() -> None:
    server = psk_server({b"\x00bin": OTHER_KEY, "client1": KEY})
    assert sorted(server.get_external_psk_identities()) == [b"\x00bin", b"client1"]
    client, srv = handshake(psk_client({"other": OTHER_KEY, b"\x00bin": OTHER_KEY}), server)
    assert client.psk_identity == srv.psk_identity == b"\x00bin"  # the first one it knows


def test_sha384_psk_takes_the_sha384_suite() -> None:
    client, server = handshake(psk_client(hash="sha384"), psk_server(hash="sha384"))
    assert server.psk_identity == b"client1"
    assert client.cipher()[0] == server.cipher()[0] == "TLS_AES_256_GCM_SHA384"  # type: ignore[index]
    # one PSK with its own hash among others
    client, server = handshake(psk_client({"a": (KEY, "SHA-384")}),
                               psk_server({"a": (KEY, "sha384"), "b": OTHER_KEY}))
    assert client.psk_identity == b"a"
    assert client.cipher()[0] == "TLS_AES_256_GCM_SHA384"  # type: ignore[index]


def test_sha256_psk_on_a_chacha_only_context() -> None:
    cctx = psk_client()
    cctx.set_ciphers("TLS_CHACHA20_POLY1305_SHA256")
    client, server = handshake(cctx, psk_server())
    assert client.psk_identity == b"client1"
    assert client.cipher()[0] == "TLS_CHACHA20_POLY1305_SHA256"  # type: ignore[index]


def test_psk_hash_without_a_matching_suite_is_refused_clearly() -> None:
    cctx = psk_client(hash="sha384")
    cctx.set_ciphers("TLS_AES_128_GCM_SHA256")
    with pytest.raises(aiotls.TLSConfigurationError, match="TLS_AES_256_GCM_SHA384"):
        aiotls.TLSConnection(cctx, server_hostname="localhost")
    sctx = psk_server()
    sctx.maximum_version = ssl.TLSVersion.TLSv1_2
    with pytest.raises(aiotls.TLSConfigurationError, match=r"need TLS 1\.3"):
        aiotls.TLSConnection(sctx, server_side=True)


def test_hash_mismatch_is_explained() -> None:
    """The same identity and key, SHA-256 on the client and SHA-384 on the server: the
    server takes the SHA-384 suite and the client's binder cannot verify."""
    client, server = handshake(psk_client(), psk_server(hash="sha384"))
    client_err, server_err = both_failed(client, server)
    assert server_err.code == "psk-mismatch" and server_err.alert_number == 51
    assert "hashes" in server_err.cause
    assert client_err.code == "psk-mismatch"


def test_wrong_key_is_decrypt_error_saying_the_psks_differ() -> None:
    client, server = handshake(psk_client({"client1": OTHER_KEY}), psk_server())
    client_err, server_err = both_failed(client, server)
    assert isinstance(server_err, aiotls.PeerIncompatible)
    assert server_err.code == "psk-mismatch"
    assert server_err.alert == aiotls.AlertDescription.decrypt_error
    assert "the PSKs differ" in server_err.cause and "'client1'" in server_err.what
    assert isinstance(client_err, aiotls.AlertReceived) and client_err.code == "psk-mismatch"
    assert "the PSKs differ" in client_err.cause


def test_wrong_key_with_a_certificate_still_fails() -> None:
    """A binder that does not verify is fatal even when a certificate could be used: the
    client asked for this PSK, and RFC 8446 4.2.11 says abort."""
    client, server = handshake(psk_client({"client1": OTHER_KEY}), psk_server(pki=None))
    assert both_failed(client, server)[1].code == "psk-mismatch"


def test_unknown_identity_without_certificate() -> None:
    client, server = handshake(psk_client({"stranger": KEY}), psk_server())
    client_err, server_err = both_failed(client, server)
    assert server_err.code == "psk-unknown-identity"
    assert server_err.alert == aiotls.AlertDescription.unknown_psk_identity
    assert "'stranger'" in server_err.what
    assert client_err.code == "psk-refused" and "'stranger'" in client_err.what


def test_client_without_psk_at_a_psk_only_server(pki: PKI) -> None:
    client, server = handshake(pki.client_context(), psk_server())
    client_err, server_err = both_failed(client, server)
    assert server_err.code == "psk-required", server_err
    assert client_err.alert == aiotls.AlertDescription.handshake_failure


def test_psk_only_server_is_tls13_only(pki: PKI) -> None:
    cctx = pki.client_context()
    cctx.maximum_version = ssl.TLSVersion.TLSv1_2
    client, server = handshake(cctx, psk_server())
    assert both_failed(client, server)[1].alert == aiotls.AlertDescription.protocol_version


def test_server_without_certificate_or_psk_is_still_refused() -> None:
    with pytest.raises(aiotls.TLSConfigurationError, match="needs a certificate") as info:
        aiotls.TLSConnection(aiotls.TLSContext(ssl.PROTOCOL_TLS_SERVER), server_side=True)
    assert info.value.code == "server-needs-certificate"


# --- alongside certificates ------------------------------------------------------------------------


def test_server_with_psk_and_certificate_serves_both_kinds_of_client(pki: PKI) -> None:
    sctx = psk_server(pki=pki)
    client, server = handshake(psk_client(), sctx)  # a client trusting no CA: the PSK
    assert client.psk_identity == server.psk_identity == b"client1"
    assert client.getpeercert() is None  # no certificate sent: the PSK authenticates
    exchange(client, server)
    client, server = handshake(pki.client_context(), sctx)  # a client without PSK
    assert client.handshake_complete, client.error
    assert client.psk_identity is None and client.getpeercert()["subjectAltName"]
    exchange(client, server)


def test_unknown_identity_falls_back_to_the_certificate(pki: PKI) -> None:
    client, server = handshake(psk_client({"stranger": KEY}, pki=pki), psk_server(pki=pki))
    assert client.handshake_complete and server.handshake_complete, client.error
    assert client.psk_identity is None and server.psk_identity is None
    assert ("DNS", "localhost") in client.getpeercert()["subjectAltName"]


def test_psk_client_is_not_lowered_to_a_certificate_less_handshake(pki: PKI) -> None:
    """A PSK client whose server does not take the PSK verifies the certificate as ever:
    here it trusts no CA, so a server with only a certificate is refused."""
    client, server = handshake(psk_client(), pki.server_context())
    assert isinstance(client.error, aiotls.CertificateError), client.error
    assert client.psk_identity is None
    # and with the CA trusted, the host name is still checked
    client, _ = handshake(psk_client(pki=pki), pki.server_context(), server_hostname="other.test")
    assert isinstance(client.error, aiotls.CertificateError), client.error


def test_server_requiring_client_certificates_accepts_psk_clients(pki: PKI) -> None:
    """TLS 1.3 has no CertificateRequest in a PSK handshake: the PSK authenticates the
    client; clients without the PSK still need a certificate."""
    cctx, sctx = pki.mtls_contexts()
    sctx.set_external_psks({"client1": KEY})
    client, server = handshake(psk_client(), sctx)
    assert server.psk_identity == b"client1" and server.getpeercert() is None
    client, server = handshake(pki.client_context(), sctx)
    assert server.error is not None  # no PSK, no certificate
    client, server = handshake(cctx, sctx)
    assert server.getpeercert()["subject"], server.error


# --- PSK modes -------------------------------------------------------------------------------------


def test_psk_ke_only_when_asked_in_so_many_words() -> None:
    both = ("psk_dhe_ke", "psk_ke")
    cctx, sctx = psk_client(), psk_server()
    assert cctx.psk_modes == sctx.psk_modes == ("psk_dhe_ke",)
    sctx.psk_modes = both
    client, _ = handshake(cctx, sctx)
    assert client.group == "x25519"  # (EC)DHE whenever the client allows it
    cctx.psk_modes = both
    assert handshake(cctx, sctx)[0].group == "x25519"
    cctx.psk_modes = ("psk_ke",)
    client, server = handshake(cctx, sctx)
    assert client.psk_identity == b"client1" and client.group is None  # no (EC)DHE
    exchange(client, server)
    # a server that did not ask for psk_ke refuses it (it has no certificate to offer)
    client, server = handshake(cctx, psk_server())
    assert both_failed(client, server)[1].code == "psk-mode-unsupported"


def test_psk_ke_client_at_a_certificate_server_gets_a_full_handshake(pki: PKI) -> None:
    cctx = psk_client(pki=pki)
    cctx.psk_modes = "psk_ke"
    client, _ = handshake(cctx, psk_server(pki=pki))
    assert client.handshake_complete and client.psk_identity is None
    assert client.group == "x25519" and client.getpeercert()


@pytest.mark.parametrize("modes", [(), ("psk_dhe_ke", "ke"), ("PSK_KE",)])
def test_invalid_psk_modes(modes: tuple[str, ...]) -> None:
    with pytest.raises(aiotls.TLSConfigurationError, match="psk_modes"):
        psk_client().psk_modes = modes


# --- configuration errors --------------------------------------------------------------------------


@pytest.mark.parametrize(("psks", "hash", "match"), [
    ({"id": b"short"}, "sha256", "only 5 bytes"),
    ({"": KEY}, "sha256", "0 bytes long"),
    ({"id": "text"}, "sha256", "must be bytes"),
    ({1: KEY}, "sha256", "str or bytes"),
    ({"id": KEY}, "md5", "unknown PSK hash"),
    ({"id": (KEY, "sha512")}, "sha256", "unknown PSK hash"),
])
def test_bad_psks_are_refused(psks: dict[Any, Any], hash: str, match: str) -> None:
    with pytest.raises(aiotls.TLSConfigurationError, match=match):
        aiotls.TLSContext().set_external_psks(psks, hash=hash)


def test_psks_can_be_removed() -> None:
    sctx = psk_server()
    sctx.set_external_psks(None)
    assert sctx.get_external_psk_identities() == []
    with pytest.raises(aiotls.TLSConfigurationError, match="needs a certificate"):
        aiotls.TLSConnection(sctx, server_side=True)


# --- Python 3.13's callbacks -----------------------------------------------------------------------


def test_python_313_callbacks() -> None:
    hints: list[str | None] = []
    asked: list[str | None] = []

    def client_cb(hint: str | None) -> tuple[str | None, bytes]:
        hints.append(hint)
        return "client1", KEY

    def server_cb(identity: str | None) -> bytes:
        asked.append(identity)
        return KEY if identity == "client1" else b""

    cctx = aiotls.TLSContext(ssl.PROTOCOL_TLS_CLIENT)
    cctx.set_psk_client_callback(client_cb)
    sctx = aiotls.TLSContext(ssl.PROTOCOL_TLS_SERVER)
    sctx.set_psk_server_callback(server_cb, identity_hint="ignored in TLS 1.3")
    client, server = handshake(cctx, sctx)
    assert server.psk_identity == client.psk_identity == b"client1", client.error or server.error
    assert hints == [None] and asked == ["client1"]
    exchange(client, server)
    # with the callback's own PSK, the context's are offered too; unknown ones refused
    cctx.set_external_psks({"stranger": OTHER_KEY})
    client, server = handshake(cctx, sctx)
    assert server.psk_identity == b"client1"
    assert asked[-2:] == ["stranger", "client1"]
    cctx.set_psk_client_callback(lambda hint: ("nobody", KEY))
    cctx.set_external_psks(None)
    client, server = handshake(cctx, sctx)
    assert both_failed(client, server)[1].code == "psk-unknown-identity"


def test_callback_answers_interoperate_with_set_external_psks() -> None:
    """The callback client meets a set_external_psks server and the reverse."""
    cctx = aiotls.TLSContext(ssl.PROTOCOL_TLS_CLIENT)
    cctx.set_psk_client_callback(lambda hint: ("client1", KEY))
    assert handshake(cctx, psk_server())[1].psk_identity == b"client1"
    sctx = aiotls.TLSContext(ssl.PROTOCOL_TLS_SERVER)
    sctx.set_psk_server_callback(lambda identity: KEY)
    assert handshake(psk_client(), sctx)[1].psk_identity == b"client1"


def test_callback_failures_are_clear() -> None:
    cctx = aiotls.TLSContext(ssl.PROTOCOL_TLS_CLIENT)
    cctx.set_psk_client_callback(lambda hint: (None, b""))
    with pytest.raises(aiotls.TLSConfigurationError, match="refused the connection") as info:
        aiotls.TLSConnection(cctx, server_hostname="localhost")
    assert info.value.code == "psk-callback-refused"
    cctx.set_psk_client_callback(lambda hint: 1 / 0)  # type: ignore[arg-type, return-value]
    with pytest.raises(aiotls.TLSConfigurationError, match="ZeroDivisionError") as info:
        aiotls.TLSConnection(cctx, server_hostname="localhost")
    assert info.value.code == "psk-callback-failed"
    cctx.set_psk_client_callback(lambda hint: (None, KEY))
    with pytest.raises(aiotls.TLSConfigurationError, match="no identity"):
        aiotls.TLSConnection(cctx, server_hostname="localhost")

    def broken(identity: str | None) -> bytes:
        raise RuntimeError("database down")

    sctx = aiotls.TLSContext(ssl.PROTOCOL_TLS_SERVER)
    sctx.set_psk_server_callback(broken)
    client, server = handshake(psk_client(), sctx)
    client_err, server_err = both_failed(client, server)
    assert server_err.code == "psk-callback-failed" and "database down" in server_err.what
    assert client_err.alert == aiotls.AlertDescription.internal_error


def test_callbacks_on_the_wrong_side_are_refused() -> None:
    with pytest.raises(aiotls.TLSConfigurationError, match="PROTOCOL_TLS_SERVER"):
        aiotls.TLSContext(ssl.PROTOCOL_TLS_SERVER).set_psk_client_callback(lambda h: ("a", KEY))
    with pytest.raises(aiotls.TLSConfigurationError, match="PROTOCOL_TLS_CLIENT"):
        aiotls.TLSContext().set_psk_server_callback(lambda i: KEY)
    with pytest.raises(TypeError):
        aiotls.TLSContext().set_psk_client_callback("not callable")  # type: ignore[arg-type]


# --- OpenSSL ---------------------------------------------------------------------------------------


def _s_server(openssl_bin: str, port: int, *extra: str) -> list[str]:
    return [openssl_bin, "s_server", "-accept", f"127.0.0.1:{port}", "-tls1_3", "-psk",
            KEY.hex(), "-psk_identity", "client1", "-nocert", "-naccept", "1", "-rev", *extra]


@pytest.mark.interop
@pytest.mark.parametrize(("modes", "extra", "group"), [
    (("psk_dhe_ke",), (), "x25519"),
    (("psk_ke",), ("-allow_no_dhe_kex",), None),
], ids=["psk_dhe_ke", "psk_ke"])
def test_client_and_openssl_s_server_nocert(modes: tuple[str, ...], extra: tuple[str, ...],
                                            group: str | None) -> None:
    openssl_bin = require_openssl()
    cctx = psk_client()
    cctx.psk_modes = modes
    port = free_port()
    with OpenSSLProcess(_s_server(openssl_bin, port, *extra)) as server:
        server.wait_for_output("ACCEPT", TIMEOUT)
        with SocketTLS.connect(cctx, ("127.0.0.1", port), server_hostname="localhost",
                               timeout=TIMEOUT) as tls:
            hs = tls.handshake()
            assert hs.version == "TLSv1.3" and hs.group == group
            assert tls.conn.psk_identity == b"client1"
            tls.send(b"abc\n")
            assert tls.recv_until(4) == b"cba\n"
            tls.close()
        server.wait(TIMEOUT)


@pytest.mark.interop
@pytest.mark.parametrize(("psks", "code"), [
    ({"client1": OTHER_KEY}, "psk-mismatch"),
    ({"stranger": KEY}, "psk-refused"),
], ids=["wrong-key", "unknown-identity"])
def test_client_refused_by_openssl_s_server(psks: dict[str, bytes], code: str) -> None:
    openssl_bin = require_openssl()
    port = free_port()
    with OpenSSLProcess(_s_server(openssl_bin, port)) as server:
        server.wait_for_output("ACCEPT", TIMEOUT)
        with SocketTLS.connect(psk_client(psks), ("127.0.0.1", port),
                               server_hostname="localhost", timeout=TIMEOUT) as tls:
            with pytest.raises(AssertionError):
                tls.handshake()
            err = tls.conn.error
            assert err is not None and err.code == code, err
        server.wait(TIMEOUT)


def _s_client(openssl_bin: str, port: int, key: bytes = KEY, identity: str = "client1",
              *extra: str) -> list[str]:
    return [openssl_bin, "s_client", "-connect", f"127.0.0.1:{port}", "-tls1_3", "-psk",
            key.hex(), "-psk_identity", identity, "-ign_eof", "-nocommands", *extra]


@pytest.mark.interop
@pytest.mark.parametrize("with_certificate", [False, True], ids=["nocert", "cert"])
@pytest.mark.parametrize("extra", [(), ("-allow_no_dhe_kex",)], ids=["dhe", "allow_no_dhe"])
def test_server_and_openssl_s_client(pki: PKI, with_certificate: bool,
                                     extra: tuple[str, ...]) -> None:
    openssl_bin = require_openssl()
    sctx = psk_server(pki=pki if with_certificate else None)
    sctx.psk_modes = ("psk_dhe_ke", "psk_ke")
    with listen("127.0.0.1", TIMEOUT) as listener:
        port = listener.getsockname()[1]
        with OpenSSLProcess(_s_client(openssl_bin, port, KEY, "client1", *extra),
                            stdin=b"ping\n") as client:
            client.close_stdin()
            with SocketTLS.accept(sctx, listener, timeout=TIMEOUT) as tls:
                hs = tls.handshake()
                assert hs.version == "TLSv1.3" and hs.group == "x25519"
                assert tls.conn.psk_identity == b"client1"
                assert tls.recv_until(5) == b"ping\n"
                tls.close()
            rc, output = client.wait(TIMEOUT)
    assert rc == 0, output
    assert "Reused, TLSv1.3" in output and "Server certificate" not in output, output


@pytest.mark.interop
@pytest.mark.parametrize(("key", "identity", "with_certificate", "alert"), [
    (OTHER_KEY, "client1", False, "decrypt error"),
    (OTHER_KEY, "client1", True, "decrypt error"),
    (KEY, "stranger", False, "unknown psk identity"),
    (KEY, "stranger", True, None),  # the certificate instead
], ids=["wrong-key-nocert", "wrong-key-cert", "unknown-nocert", "unknown-cert"])
def test_server_and_openssl_s_client_errors(pki: PKI, key: bytes, identity: str,
                                            with_certificate: bool, alert: str | None) -> None:
    openssl_bin = require_openssl()
    sctx = psk_server(pki=pki if with_certificate else None)
    with listen("127.0.0.1", TIMEOUT) as listener:
        port = listener.getsockname()[1]
        argv = _s_client(openssl_bin, port, key, identity, "-CAfile", pki.ca_file,
                         "-servername", "localhost", "-verify_return_error")
        with OpenSSLProcess(argv, stdin=b"ping\n") as client:
            client.close_stdin()
            with SocketTLS.accept(sctx, listener, timeout=TIMEOUT) as tls:
                if alert is None:
                    tls.handshake()
                    assert tls.conn.psk_identity is None
                    assert tls.recv_until(5) == b"ping\n"
                    tls.close()
                else:
                    with pytest.raises(AssertionError):
                        tls.handshake()
                    err = tls.conn.error
                    assert err is not None and err.code in ("psk-mismatch",
                                                            "psk-unknown-identity"), err
            rc, output = client.wait(TIMEOUT)
    if alert is None:
        assert rc == 0 and "Verification: OK" in output and "Server certificate" in output, \
            output
    else:
        assert rc != 0 and f"alert {alert}" in output, output


# --- the asyncio adapter and the ssl facade (both event loops) --------------------------------------


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        writer.write((await reader.readline()).upper())
        await writer.drain()
    finally:
        writer.close()


@pytest.mark.timeout(30)
async def test_asyncio_adapter_psk_only() -> None:
    async with asyncio.timeout(TIMEOUT):
        server = await aiotls.asyncio.start_server(_echo, "127.0.0.1", 0, ssl=psk_server())
        port = server.sockets[0].getsockname()[1]
        try:
            reader, writer = await aiotls.asyncio.open_connection(
                "127.0.0.1", port, ssl=psk_client(), server_hostname="localhost")
            writer.write(b"hello\n")
            assert await reader.readline() == b"HELLO\n"
            conn = writer.get_extra_info("tls_connection")
            assert conn.psk_identity == b"client1" and conn.getpeercert() is None
            writer.close()
            await writer.wait_closed()
        finally:
            server.close()
            await server.wait_closed()


@pytest.mark.timeout(30)
async def test_facade_wrap_bio_psk_only() -> None:
    """asyncio's own start_server/open_connection with ssl=TLSContext: TLSContext.wrap_bio,
    a PSK-only server context included (no certificate: no longer refused)."""
    async with asyncio.timeout(TIMEOUT):
        server = await asyncio.start_server(_echo, "127.0.0.1", 0, ssl=psk_server())
        port = server.sockets[0].getsockname()[1]
        try:
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", port, ssl=psk_client(), server_hostname="localhost")
            writer.write(b"hello\n")
            assert await reader.readline() == b"HELLO\n"
            ssl_object = writer.get_extra_info("ssl_object")
            assert ssl_object.version() == "TLSv1.3"
            assert ssl_object.connection.psk_identity == b"client1"
            assert ssl_object.getpeercert() is None
            writer.close()
            await writer.wait_closed()
        finally:
            server.close()
            await server.wait_closed()


@pytest.mark.timeout(30)
async def test_facade_client_with_the_wrong_key_gets_the_cause() -> None:
    """(asyncio's own server drops the connection without sending its alert when a
    handshake fails: the server here is aiotls's adapter, the client the facade.)"""
    async with asyncio.timeout(TIMEOUT):
        server = await aiotls.asyncio.start_server(_echo, "127.0.0.1", 0, ssl=psk_server())
        port = server.sockets[0].getsockname()[1]
        try:
            with pytest.raises(aiotls.TLSError, match="the PSKs differ") as info:
                await asyncio.open_connection("127.0.0.1", port,
                                              ssl=psk_client({"client1": OTHER_KEY}),
                                              server_hostname="localhost")
            assert info.value.code == "psk-mismatch"
        finally:
            server.close()
            await server.wait_closed()


# --- the client's checks of the server's choice (RFC 8446 4.2.11) ----------------------------------


def test_client_refuses_psk_ke_it_did_not_offer(monkeypatch: pytest.MonkeyPatch) -> None:
    """A server that takes the PSK without (EC)DHE although the client offered only
    psk_dhe_ke (here: an aiotls server made to read psk_ke into the client's offer; the
    binder still verifies, as it covers the bytes received) is refused: illegal_parameter.
    tlslite-ng's client alone accepted it, losing forward secrecy unasked."""
    from tlslite.constants import HandshakeType, PskKeyExchangeMode
    from tlslite.extensions import PskKeyExchangeModesExtension

    from aiotls._engine import tlsconn

    original = tlsconn._RECEIVED_CHECKS[(False, HandshakeType.client_hello)]

    def tampered(self: Any, hello: Any) -> Any:
        modes = hello.getExtension(45)  # psk_key_exchange_modes (shared: replaced, in a new
        wider = PskKeyExchangeModesExtension().create([*modes.modes, PskKeyExchangeMode.psk_ke])
        hello.extensions = [wider if e is modes else e for e in hello.extensions]  # list)
        yield from original(self, hello)

    monkeypatch.setitem(tlsconn._RECEIVED_CHECKS, (False, HandshakeType.client_hello), tampered)
    sctx = psk_server()
    sctx.psk_modes = ("psk_ke",)
    client, server = handshake(psk_client(), sctx)
    client_err, _ = both_failed(client, server)
    assert client_err.code == "psk-bad-selection", client_err
    assert client_err.alert == aiotls.AlertDescription.illegal_parameter
    assert "psk_ke" in client_err.what


def test_a_server_without_the_key_cannot_complete_a_psk_handshake(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A server (or a man in the middle) that ignores the client's binder and "takes" the
    PSK with another key cannot finish: the key schedule is the PSK's, so the client cannot
    open its flight. A PSK client is never brought to a certificate-less handshake by a
    server that does not have the key."""
    from tlslite.handshakehelpers import HandshakeHelpers

    from aiotls._engine import base

    def ignore(*args: Any, **kwargs: Any) -> None:
        return None

    monkeypatch.setattr(HandshakeHelpers, "verify_binder", staticmethod(ignore))
    monkeypatch.setattr(base._FastHandshakeHelpers, "verify_binder", staticmethod(ignore))
    client, server = handshake(psk_client(), psk_server({"client1": OTHER_KEY}))
    assert server._engine._tl._aiotls_psk_used == b"client1"  # taken, with its own key
    assert not client.handshake_complete and client.error is not None
    assert client.error.alert == aiotls.AlertDescription.bad_record_mac, client.error
