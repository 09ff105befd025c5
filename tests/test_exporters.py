"""Keying material exporters (RFC 5705, RFC 8446 7.5) and channel bindings (RFC 9266
tls-exporter, RFC 5929 tls-unique).

Checked three ways: both ends of an aiotls connection agree; aiotls equals OpenSSL's
``s_server``/``s_client -keymatexport`` for the same connection (with and without a client
certificate, and on a resumed connection); and aiotls equals the RFC formulas computed here
(with ``hmac``/``cryptography``, not aiotls) from the secrets OpenSSL itself logged for the
same connection (the stdlib peer's ``keylog_filename``), which covers a context value --
OpenSSL's command line exports without one.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import pathlib
import re
import socket
import ssl
import threading
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand

import aiotls
import aiotls.asyncio
import aiotls.compat
import aiotls.sync
from aiotls.errors import TLSUsageError
from tests.helpers import PKI, VERSION_PARAMS, VERSIONS, connect, handshake, pump
from tests.sockloop import OpenSSLProcess, SocketTLS, free_port, listen, require_openssl
from tests.stdlib_peer import StdlibPeer, run

LABEL = "EXPERIMENTAL-aiotls-test"
#: SSL_OP_NO_EXTENDED_MASTER_SECRET (OpenSSL 3.0), which Python 3.11's ssl does not name
_OP_NO_EMS = 1 << 0


# --- the RFC formulas, from OpenSSL's logged secrets ------------------------------------------


def _p_hash(secret: bytes, seed: bytes, length: int, name: str) -> bytes:
    out, a = b"", seed
    while len(out) < length:
        a = hmac.digest(secret, a, name)
        out += hmac.digest(secret, a + seed, name)
    return out[:length]


def _expand_label(secret: bytes, label: bytes, context: bytes, length: int,
                  algorithm: hashes.HashAlgorithm) -> bytes:
    full = b"tls13 " + label
    info = length.to_bytes(2, "big") + bytes((len(full),)) + full + bytes((len(context),)) \
        + context
    return HKDFExpand(algorithm, length, info).derive(secret)


def _rfc_export(keylog: dict[str, bytes], client_random: bytes, server_random: bytes,
                suite: str, label: bytes, context: bytes | None, length: int) -> bytes:
    """RFC 8446 7.5 / RFC 5705, with the hash of ``suite`` (an OpenSSL suite name)."""
    name = "sha384" if suite.endswith("SHA384") else "sha256"
    if suite.startswith("TLS_"):
        algo = hashes.SHA384() if name == "sha384" else hashes.SHA256()
        secret = _expand_label(keylog["EXPORTER_SECRET"], label, hashlib.new(name).digest(),
                               algo.digest_size, algo)
        return _expand_label(secret, b"exporter", hashlib.new(name, context or b"").digest(),
                             length, algo)
    seed = client_random + server_random
    if context is not None:
        seed += len(context).to_bytes(2, "big") + context
    return _p_hash(keylog["CLIENT_RANDOM"], label + seed, length, name)


def _keylog(path: pathlib.Path) -> dict[str, bytes]:
    """The last connection's secrets by label."""
    out = {}
    for line in path.read_text().splitlines():
        if line and not line.startswith("#"):
            label, _, secret = line.split()
            out[label] = bytes.fromhex(secret)
    return out


@pytest.mark.parametrize("version", list(VERSIONS))
@pytest.mark.parametrize("aiotls_side", ["client", "server"])
@pytest.mark.parametrize("mtls", [False, True], ids=["no-client-cert", "client-cert"])
def test_equal_to_the_rfc_formulas_over_openssls_secrets(
        pki: PKI, tmp_path: pathlib.Path, version: str, aiotls_side: str, mtls: bool) -> None:
    """With contexts (None, empty, some bytes), several lengths, a full handshake and then a
    resumed one: aiotls's exports equal the formulas applied to OpenSSL's logged secrets,
    and the RFC 9266 binding is that export with its label."""
    server_side = aiotls_side == "server"
    if server_side:
        ctx, peer_ctx = pki.server_context(), pki.stdlib_client_context()
        if mtls:
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.load_verify_locations(cafile=pki.ca_file)
            peer_ctx.load_cert_chain(pki.client[1], pki.client[2])
    else:
        ctx, peer_ctx = pki.client_context(), pki.stdlib_server_context()
        if mtls:
            ctx.load_cert_chain(pki.client[1], pki.client[2])
            peer_ctx.verify_mode = ssl.CERT_REQUIRED
            peer_ctx.load_verify_locations(cafile=pki.ca_file)
    peer_ctx.maximum_version = VERSIONS[version]
    log = tmp_path / "openssl.keys"
    session: Any = None
    for attempt in range(2):
        log.write_text("")
        peer_ctx.keylog_filename = str(log)
        conn = aiotls.TLSConnection(ctx, server_side=server_side,
                                    server_hostname=None if server_side else "localhost",
                                    session=None if server_side else session)
        peer = StdlibPeer(peer_ctx, server_side=not server_side,
                          server_hostname="localhost" if server_side else None,
                          session=session if server_side else None)
        run(conn, peer)
        assert conn.handshake_complete and peer.error is None, peer.error
        assert conn.version() == version
        conn.send_data(b"x")
        run(conn, peer)
        if attempt:
            assert conn.session_reused
        secrets = _keylog(log)
        tl = conn._engine._tl
        randoms = bytes(tl._clientRandom), bytes(tl._serverRandom)
        suite = conn.cipher()[0]  # type: ignore[index]
        for context in (None, b"", b"some context"):
            for length in (1, 32, 100):
                ours = conn.export_keying_material(LABEL, context, length)
                assert ours == _rfc_export(secrets, *randoms, suite, LABEL.encode(), context,
                                           length)
        assert conn.get_channel_binding("tls-exporter") == _rfc_export(
            secrets, *randoms, suite, b"EXPORTER-Channel-Binding", None, 32)
        session = peer.obj.session if server_side else conn.session


# --- both ends of aiotls ------------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSION_PARAMS)
@pytest.mark.parametrize("mtls", [False, True], ids=["no-client-cert", "client-cert"])
def test_both_ends_agree_also_when_resumed(pki: PKI, version: ssl.TLSVersion, mtls: bool) -> None:
    client_ctx, server_ctx = pki.mtls_contexts() if mtls else \
        (pki.client_context(), pki.server_context())
    client_ctx.maximum_version = version
    session = None
    seen = set()
    for attempt in range(3):
        client, server = connect(client_ctx, server_ctx, session)
        assert client.session_reused == bool(attempt)
        for context in (None, b"", b"\x00" * 300):
            ours = client.export_keying_material(LABEL, context, 48)
            assert ours == server.export_keying_material(LABEL.encode(), context, 48)
            seen.add(ours)
        binding = client.get_channel_binding("tls-exporter")
        assert binding is not None and len(binding) == 32
        assert binding == server.get_channel_binding("tls-exporter")
        assert binding == client.export_keying_material("EXPORTER-Channel-Binding", None, 32)
        # TLS 1.2: no context and an empty one differ (RFC 5705 4); TLS 1.3: the same
        none, empty = (client.export_keying_material(LABEL, c, 16) for c in (None, b""))
        assert (none == empty) == (version == ssl.TLSVersion.TLSv1_3)
        assert client.export_keying_material("EXPERIMENTAL-other", None, 16) != none
        # the length is an input in TLS 1.3 (HkdfLabel), not in TLS 1.2's PRF stream
        longer = client.export_keying_material(LABEL, None, 32)
        assert (longer[:16] == none) == (version == ssl.TLSVersion.TLSv1_2)
        session = client.session
    # every connection exports its own values (a resumed one too)
    assert len(seen) == 3 * (3 if version == ssl.TLSVersion.TLSv1_2 else 2)


def test_tls_unique_and_tls_exporter(pki: PKI) -> None:
    for version in VERSIONS.values():
        client_ctx = pki.client_context()
        client_ctx.maximum_version = version
        client, server = handshake(client_ctx, pki.server_context())
        unique = client.get_channel_binding("tls-unique")
        assert unique == server.get_channel_binding("tls-unique")
        assert (unique is None) == (version == ssl.TLSVersion.TLSv1_3)
        assert client.get_channel_binding("tls-exporter") != unique
        with pytest.raises(ValueError, match="tls-server-end-point"):
            client.get_channel_binding("tls-server-end-point")


# --- the errors ----------------------------------------------------------------------------------


def test_refused_before_the_handshake_and_after_the_close(pki: PKI) -> None:
    client = aiotls.TLSConnection(pki.client_context(), server_hostname="localhost")
    with pytest.raises(TLSUsageError, match="once the handshake completed"):
        client.export_keying_material(LABEL, None, 32)
    assert client.get_channel_binding("tls-exporter") is None
    client, server = handshake(pki.client_context(), pki.server_context())
    client.close()
    pump(client, server)
    for conn in (client, server):
        assert conn.state is aiotls.ConnectionState.CLOSED
        with pytest.raises(TLSUsageError, match="closed connection"):
            conn.export_keying_material(LABEL, None, 32)
        assert conn.get_channel_binding("tls-exporter") is None


def test_a_failed_connection_raises_its_error(pki: PKI) -> None:
    client, server = handshake(pki.client_context(), pki.server_context())
    client.receive_data(b"\x17\x03\x03\x00\x20" + b"\x00" * 32)  # (fails to open)
    assert client.error is not None
    with pytest.raises(type(client.error)):
        client.export_keying_material(LABEL, None, 32)


@pytest.mark.parametrize("label", ["client finished", "server finished", "master secret",
                                   "key expansion", "extended master secret",
                                   b"master secret"])
def test_tls_own_labels_are_refused(pki: PKI, label: str | bytes) -> None:
    for version in VERSIONS.values():
        client_ctx = pki.client_context()
        client_ctx.maximum_version = version
        client, _ = handshake(client_ctx, pki.server_context())
        with pytest.raises(TLSUsageError, match="reserved") as info:
            client.export_keying_material(label, None, 32)
        assert "RFC 5705" in info.value.cause
        # (a label that merely contains one is a label like any other)
        client.export_keying_material(f"EXPERIMENTAL {label!r}", None, 32)


def test_bad_arguments(pki: PKI) -> None:
    client, _ = handshake(pki.client_context(), pki.server_context())
    most = 255 * (48 if client.cipher()[0].endswith("SHA384") else 32)  # type: ignore[index]
    for label, context, length, error, match in [
            ("", None, 32, TLSUsageError, "empty"),
            ("é", None, 32, TLSUsageError, "not ASCII"),
            ("x" * 250, None, 32, TLSUsageError, "at most 249"),
            (LABEL, b"x" * 65536, 32, TLSUsageError, "at most 65535"),
            (LABEL, None, 0, TLSUsageError, "at least 1"),
            (LABEL, None, -5, TLSUsageError, "at least 1"),
            (LABEL, None, most + 1, TLSUsageError, f"at most {most}"),
            (42, None, 32, TypeError, "label must be"),
            (LABEL, "text", 32, TypeError, "context must be"),
            (LABEL, None, 32.0, TypeError, "length must be"),
            (LABEL, None, True, TypeError, "length must be")]:
        with pytest.raises(error, match=match):
            client.export_keying_material(label, context, length)  # type: ignore[arg-type]
    assert len(client.export_keying_material("x" * 249, None, most)) == most
    client_ctx = pki.client_context()
    client_ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    client, _ = handshake(client_ctx, pki.server_context())
    assert len(client.export_keying_material(LABEL, None, 65535)) == 65535
    with pytest.raises(TLSUsageError, match="at most 65535"):
        client.export_keying_material(LABEL, None, 65536)


def test_tls12_without_the_extended_master_secret_is_refused(pki: PKI) -> None:
    """RFC 7627 / RFC 9266 4.2: without EMS an exported value is not unique to the
    connection (triple handshake), so aiotls refuses rather than export it."""
    ctx = pki.client_context()
    ctx.require_extended_master_secret = False
    peer_ctx = pki.stdlib_server_context()
    peer_ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    peer_ctx.options |= _OP_NO_EMS
    conn = aiotls.TLSConnection(ctx, server_hostname="localhost")
    peer = StdlibPeer(peer_ctx, server_side=True)
    run(conn, peer)
    assert conn.handshake_complete and conn.version() == "TLSv1.2"
    assert not conn._engine._tl.session.extendedMasterSecret
    with pytest.raises(TLSUsageError, match="extended master secret") as info:
        conn.export_keying_material(LABEL, None, 32)
    assert "RFC 7627" in info.value.cause
    with pytest.raises(TLSUsageError, match="extended master secret"):
        conn.get_channel_binding("tls-exporter")
    assert conn.get_channel_binding("tls-unique") is not None  # (RFC 5929, unchanged)


# --- OpenSSL's command line -----------------------------------------------------------------------


def _openssl_exports(output: str) -> list[bytes]:
    return [bytes.fromhex(h) for h in re.findall(r"Keying material: ([0-9A-F]+)", output)]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("version", list(VERSIONS))
@pytest.mark.parametrize("mtls", [False, True], ids=["no-client-cert", "client-cert"])
def test_equal_to_openssl_s_server(pki: PKI, version: str, mtls: bool) -> None:
    """aiotls's client against ``openssl s_server -keymatexport``: a full handshake, then a
    resumed one; the server prints its exports."""
    openssl = require_openssl()
    ctx = pki.client_context()
    ctx.maximum_version = VERSIONS[version]
    port = free_port()
    argv = [openssl, "s_server", "-accept", f"127.0.0.1:{port}", "-cert", pki.server()[0],
            "-key", pki.server()[1], "-naccept", "2", "-keymatexport", LABEL,
            "-keymatexportlen", "40", "-tls1_3" if version == "TLSv1.3" else "-tls1_2"]
    if mtls:
        ctx.load_cert_chain(pki.client[1], pki.client[2])
        argv += ["-Verify", "1", "-CAfile", pki.ca_file]
    ours = []
    with OpenSSLProcess(argv, stdin=b"") as server:
        server.wait_for_output("ACCEPT", 20)
        session = None
        for _ in range(2):
            with SocketTLS.connect(ctx, ("127.0.0.1", port), server_hostname="localhost",
                                   session=session, timeout=20) as tls:
                tls.handshake()
                tls.send(b"ping\n")
                ours.append(tls.conn.export_keying_material(LABEL, None, 40))
                server.wait_for_output("ping", 20)
                session = tls.conn.session
                tls.close()
        rc, output = server.wait(20)
    assert _openssl_exports(output) == ours, output
    assert "Reused" in output or version == "TLSv1.3"  # (s_server names TLS 1.2 reuse)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("version", list(VERSIONS))
@pytest.mark.parametrize("mtls", [False, True], ids=["no-client-cert", "client-cert"])
def test_equal_to_openssl_s_client(pki: PKI, version: str, mtls: bool) -> None:
    """aiotls's server against ``openssl s_client -keymatexport``."""
    openssl = require_openssl()
    ctx = pki.server_context()
    argv = [openssl, "s_client", "-connect", "", "-CAfile", pki.ca_file,
            "-keymatexport", LABEL, "-keymatexportlen", "64",
            "-tls1_3" if version == "TLSv1.3" else "-tls1_2"]
    if mtls:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(cafile=pki.ca_file)
        argv += ["-cert", pki.client[1], "-key", pki.client[2]]
    with listen() as listener:
        argv[3] = f"127.0.0.1:{listener.getsockname()[1]}"
        with OpenSSLProcess(argv, stdin=b"hello\n") as client:
            with SocketTLS.accept(ctx, listener, timeout=20) as tls:
                tls.handshake()
                assert tls.recv_line() == b"hello\n"
                ours = tls.conn.export_keying_material(LABEL.encode(), None, 64)
                client.wait_for_output("Keying material: ", 20)
                client.close_stdin()
                tls.wait_closed(20)
            client.wait(20)
            assert tls.conn.getpeercert(binary_form=True) is not None or not mtls
            assert _openssl_exports(client.output) == [ours], client.output


# --- the facades -------------------------------------------------------------------------------


def test_facades_export_the_same(pki: PKI) -> None:
    """compat's TLSObject (what asyncio's sslproto drives) and sync's TLSSocket pass the
    calls through; the asyncio adapter's ``ssl_object`` is the TLSConnection itself."""
    client_ctx, server_ctx = pki.client_context(), pki.server_context()
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    client = client_ctx.wrap_bio(c_in, c_out, server_hostname="localhost")
    server = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    assert isinstance(client, aiotls.compat.TLSObject)
    assert client.get_channel_binding("tls-exporter") is None
    for _ in range(10):
        for obj in (client, server):
            with contextlib.suppress(ssl.SSLWantReadError):
                obj.do_handshake()
        s_in.write(c_out.read())
        c_in.write(s_out.read())
    assert client.export_keying_material(LABEL, b"c", 20) == \
        server.export_keying_material(LABEL, b"c", 20)
    assert client.get_channel_binding("tls-exporter") == \
        server.get_channel_binding("tls-exporter") is not None
    with pytest.raises(TLSUsageError, match="reserved"):
        client.export_keying_material("master secret", None, 20)


def test_sync_socket_exports(pki: PKI) -> None:
    with listen() as listener:
        port = listener.getsockname()[1]
        results: dict[str, bytes | None] = {}

        def serve() -> None:
            sock, _ = listener.accept()
            with aiotls.sync.wrap_socket(sock, pki.server_context(), server_side=True) as tls:
                tls.do_handshake()
                results["server"] = tls.export_keying_material(LABEL, None, 24)
                tls.recv(1)

        thread = threading.Thread(target=serve)
        thread.start()
        with socket.create_connection(("127.0.0.1", port), timeout=20) as raw:
            tls = aiotls.sync.wrap_socket(raw, pki.client_context(), server_hostname="localhost")
            results["client"] = tls.export_keying_material(LABEL, None, 24)
            results["binding"] = tls.get_channel_binding("tls-exporter")
            tls.sendall(b"x")
            tls.close()
            with pytest.raises(ValueError, match="closed"):
                tls.export_keying_material(LABEL, None, 24)
            assert tls.get_channel_binding("tls-exporter") is None
        thread.join(20)
    assert results["client"] == results["server"] and results["binding"]


@pytest.mark.timeout(30)
async def test_over_asyncio_both_adapters(pki: PKI) -> None:
    """``get_extra_info("ssl_object")``: the TLSConnection with aiotls.asyncio, the
    TLSObject with asyncio's own TLS (the facade); both ends agree."""
    exported: dict[str, bytes] = {}

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = writer.get_extra_info("ssl_object")
        assert isinstance(conn, aiotls.TLSConnection)
        exported["server"] = conn.export_keying_material(LABEL, b"ctx", 32)
        writer.write(await reader.readline())
        await writer.drain()
        writer.close()

    server = await aiotls.asyncio.start_server(handle, "127.0.0.1", 0,
                                               ssl=pki.server_context())
    port = server.sockets[0].getsockname()[1]
    async with server:
        for opener in (aiotls.asyncio.open_connection, asyncio.open_connection):
            reader, writer = await opener("127.0.0.1", port, ssl=pki.client_context(),
                                          server_hostname="localhost")
            obj = writer.get_extra_info("ssl_object")
            ours = obj.export_keying_material(LABEL, b"ctx", 32)
            binding = obj.get_channel_binding("tls-exporter")
            writer.write(b"line\n")
            assert await reader.readline() == b"line\n"
            assert ours == exported["server"] and binding and len(binding) == 32
            writer.close()
            with contextlib.suppress(ssl.SSLError, ConnectionError):
                await writer.wait_closed()
