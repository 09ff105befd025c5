"""Interop with independent TLS stacks: Java 17's JSSE, node 20's ``tls``, GnuTLS 3.7.

The peers (``tests/peers/``, ``gnutls-serv``/``gnutls-cli``) run as subprocesses on
loopback, started by :mod:`tests.peers` (``gnutls-serv`` in a network namespace of its
own, reached through :meth:`tests.peers.GnuTLSProcess.connect`); aiotls runs in the test's
thread over a blocking socket (:class:`tests.sockloop.SocketTLS`).  Every connection
exchanges data and must end with close_notify and no error on both sides.  One JVM serves
or makes several connections (a JVM start costs a second or more).  About 35 connections in
all, ~15 s.

Issue 11's interop defects, each against the stack that showed it:

* #9  Java's ``SSLSocket.close()`` in TLS 1.3 sends ``user_canceled`` then ``close_notify``;
  GnuTLS sends a warning ``unrecognized_name`` before its TLS 1.2 ServerHello.
* #10 GnuTLS with ``--recordsize=512`` (RFC 8449) in both roles: in
  ``tests/test_conformance_records.py`` with the other record_size_limit tests.
* #11 an RSA-CA-signed chain in TLS 1.3 with JSSE's PKIX key manager, both roles.
* #13 node's TLS 1.3 server sends no new ticket on resumption: the unused ticket of the
  first connection must carry the third.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest

import aiotls
import aiotls.asyncio
from aiotls.events import HandshakeCompleted
from tests.helpers import PKI, VERSIONS
from tests.peers import (
    JVM_TIMEOUT,
    GnuTLSProcess,
    PeerProcess,
    compile_java_peer,
    gnutls_cli,
    gnutls_serv,
    java_client,
    java_server,
    node_client,
    node_server,
    write_keystore,
)
from tests.sockloop import SocketTLS, listen

pytestmark = [pytest.mark.interop, pytest.mark.timeout(180)]

KEY_TYPES = [pytest.param("ecdsa-p256", id="ecdsa"), pytest.param("rsa2048", id="rsa")]
#: Only http/1.1 is common, whoever's preference wins.
AIOTLS_ALPN = ["x-aiotls-test", "http/1.1"]
PEER_ALPN = ["http/1.1", "h2"]
ECHO = 3000  # less than one full record
CLIENT_CN = "client.example.test"


def _payload(n: int) -> bytes:
    # what the Java and node peers send: a, b, ..., z, a, ...
    return bytes(97 + i % 26 for i in range(n))


def _text_payload(n: int) -> bytes:
    """Printable lines (gnutls-serv echoes and gnutls-cli prints them)."""
    line = b"0123456789abcdefghijklmnopqrstuvwxyz-aiotls-interop-line\n"
    return (line * (n // len(line) + 1))[:n - 1] + b"\n"


def _pin(ctx: aiotls.TLSContext, version: str) -> aiotls.TLSContext:
    ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion[version.replace(".", "_")]
    return ctx


def _client_ctx(pki: PKI, version: str, *, alpn: bool = False,
                client_cert: bool = False) -> aiotls.TLSContext:
    ctx = _pin(pki.client_context(), version)
    if alpn:
        ctx.set_alpn_protocols(AIOTLS_ALPN)
    if client_cert:
        ctx.load_cert_chain(pki.client[1], pki.client[2])
    return ctx


def _server_ctx(pki: PKI, version: str, key_type: str = "ecdsa-p256", *, alpn: bool = False,
                require_client_cert: bool = False) -> aiotls.TLSContext:
    ctx = _pin(pki.server_context(key_type), version)  # type: ignore[arg-type]
    if alpn:
        ctx.set_alpn_protocols(AIOTLS_ALPN)
    if require_client_cert:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(cafile=pki.ca_file)
    return ctx


def _connect(ctx: aiotls.TLSContext, peer: int | GnuTLSProcess, *,
             session: aiotls.TLSSession | None = None) -> SocketTLS:
    """A TLS client (no handshake yet) to 127.0.0.1:*peer*, or into gnutls-serv's namespace."""
    sock = (socket.create_connection(("127.0.0.1", peer), timeout=JVM_TIMEOUT)
            if isinstance(peer, int) else peer.connect(JVM_TIMEOUT))
    return SocketTLS.client(ctx, sock, server_hostname="localhost", session=session,
                            timeout=JVM_TIMEOUT)


def _client_echo(tls: SocketTLS, payload: bytes, *, peer_closes: bool) -> None:
    """aiotls client: send *payload*, read it back, then the clean close."""
    tls.send(payload)
    assert tls.recv_exactly(len(payload)) == payload
    if peer_closes:
        tls.wait_closed()  # fails on any error, or without the peer's close_notify
    else:
        tls.close()
    assert tls.conn.error is None


def _server_echo(tls: SocketTLS, n: int) -> None:
    """aiotls server: read *n* bytes, send them back, wait for the peer's clean close."""
    data = tls.recv_exactly(n)
    tls.send(data)
    tls.wait_closed()
    assert tls.conn.error is None


@pytest.fixture(scope="module")
def java_classes(tmp_path_factory: pytest.TempPathFactory) -> str:
    return compile_java_peer(str(tmp_path_factory.mktemp("java-peer")))


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    sock = listen(timeout=JVM_TIMEOUT)
    yield sock
    sock.close()


# --- #9: warning alerts ------------------------------------------------------------------------


def test_java_tls13_server_close_is_clean(pki: PKI, java_classes: str, tmp_path: Path) -> None:
    """JSSE closes a TLS 1.3 connection with user_canceled + close_notify: a clean close."""
    keystore = write_keystore(pki.servers["ecdsa-p256"][0], str(tmp_path))
    with java_server(java_classes, keystore=keystore, protocols=["TLSv1.3"], echo=ECHO,
                     count=2) as java:
        port = java.port()
        for _ in range(2):
            with _connect(_client_ctx(pki, "TLSv1.3"), port) as tls:
                assert tls.handshake().version == "TLSv1.3"
                _client_echo(tls, _payload(ECHO), peer_closes=True)
        java.finish()


def test_java_tls13_client_close_is_clean(pki: PKI, java_classes: str, tmp_path: Path,
                                          listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    with java_client(java_classes, port, trust=pki.ca_file, protocols=["TLSv1.3"], echo=ECHO,
                     count=2) as java:
        for _ in range(2):
            with SocketTLS.accept(_server_ctx(pki, "TLSv1.3"), listener,
                                  timeout=JVM_TIMEOUT) as tls:
                assert tls.handshake().version == "TLSv1.3"
                _server_echo(tls, ECHO)
        java.finish()


async def test_java_tls13_server_close_through_asyncio(pki: PKI, java_classes: str,
                                                       tmp_path: Path) -> None:
    """The same through aiotls.asyncio (each event loop): the reader sees a clean EOF."""
    keystore = write_keystore(pki.servers["ecdsa-p256"][0], str(tmp_path))
    with java_server(java_classes, keystore=keystore, protocols=["TLSv1.3"], echo=ECHO) as java:
        port = await asyncio.to_thread(java.port)
        reader, writer = await asyncio.wait_for(aiotls.asyncio.open_connection(
            "127.0.0.1", port, ssl=_client_ctx(pki, "TLSv1.3"), server_hostname="localhost"),
            JVM_TIMEOUT)
        writer.write(_payload(ECHO))
        assert await asyncio.wait_for(reader.readexactly(ECHO), JVM_TIMEOUT) == _payload(ECHO)
        assert await asyncio.wait_for(reader.read(), JVM_TIMEOUT) == b""  # no AlertReceived
        writer.close()
        await asyncio.wait_for(writer.wait_closed(), JVM_TIMEOUT)
        await asyncio.to_thread(java.finish)


async def test_java_tls13_client_close_through_asyncio(pki: PKI, java_classes: str) -> None:
    done: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            data = await reader.readexactly(ECHO)
            writer.write(data)
            rest = await reader.read()  # Java's user_canceled + close_notify: a clean EOF
            writer.close()
            done.set_result(rest)
        except Exception as exc:
            done.set_exception(exc)

    server = await aiotls.asyncio.start_server(serve, "127.0.0.1", 0,
                                               ssl=_server_ctx(pki, "TLSv1.3"))
    async with server:
        port = server.sockets[0].getsockname()[1]
        with java_client(java_classes, port, trust=pki.ca_file, protocols=["TLSv1.3"],
                         echo=ECHO) as java:
            assert await asyncio.wait_for(done, JVM_TIMEOUT) == b""
            await asyncio.to_thread(java.finish)


def test_gnutls_warning_unrecognized_name_before_server_hello(pki: PKI) -> None:
    """gnutls-serv serving another name answers our SNI with a warning unrecognized_name
    before its TLS 1.2 ServerHello; OpenSSL goes on, and so must aiotls."""
    certfile, keyfile = pki.server("ecdsa-p256")
    with gnutls_serv(certfile=certfile, keyfile=keyfile, version="TLSv1.2",
                     sni_hostname="other.example.test") as gnutls:
        with _connect(_client_ctx(pki, "TLSv1.2"), gnutls) as tls:
            assert tls.handshake().version == "TLSv1.2"
            _client_echo(tls, _text_payload(200), peer_closes=False)
        gnutls.wait_for_output("unrecognized host name")  # it did send the warning


# --- #11: an RSA-CA-signed chain in TLS 1.3 ---------------------------------------------------


def test_java_server_rsa_ca_chain_tls13_only_client(rsa_pki: PKI, java_classes: str,
                                                    tmp_path: Path) -> None:
    keystore = write_keystore(rsa_pki.servers["rsa2048"][0], str(tmp_path))
    with java_server(java_classes, keystore=keystore, protocols=["TLSv1.3"], echo=ECHO) as java:
        port = java.port()
        with _connect(_client_ctx(rsa_pki, "TLSv1.3"), port) as tls:
            assert tls.handshake().version == "TLSv1.3"
            _client_echo(tls, _payload(ECHO), peer_closes=True)
        java.finish()


def test_java_client_rsa_ca_client_certificate_tls13(rsa_pki: PKI, java_classes: str,
                                                     tmp_path: Path,
                                                     listener: socket.socket) -> None:
    keystore = write_keystore(rsa_pki.client[0], str(tmp_path))
    port = listener.getsockname()[1]
    with java_client(java_classes, port, trust=rsa_pki.ca_file, keystore=keystore,
                     protocols=["TLSv1.3"], echo=ECHO) as java:
        ctx = _server_ctx(rsa_pki, "TLSv1.3", "rsa2048", require_client_cert=True)
        with SocketTLS.accept(ctx, listener, timeout=JVM_TIMEOUT) as tls:
            handshake = tls.handshake()
            assert handshake.version == "TLSv1.3"
            assert handshake.peer_certificates  # the client's RSA-CA-signed chain
            assert tls.conn.getpeercert()["subject"] == ((("commonName", CLIENT_CN),),)
            _server_echo(tls, ECHO)
        java.finish()


# --- #13: resumption with a server that sends no new ticket ------------------------------------


def test_node_server_without_new_tickets_every_connection_resumes(pki: PKI) -> None:
    """Take the session from the last connection each time (the README's advice): the
    second connection resumes with the first ticket, the third with the second."""
    certfile, keyfile = pki.server("ecdsa-p256")
    with node_server(certfile=certfile, keyfile=keyfile, echo=100, count=3) as node:
        port = node.port()
        session = None
        reused = []
        for _ in range(3):
            with _connect(_client_ctx(pki, "TLSv1.3"), port, session=session) as tls:
                reused.append(tls.handshake().session_reused)
                _client_echo(tls, _payload(100), peer_closes=True)
                session = tls.conn.session
        node.finish()
    assert [h.reused for h in node.handshakes()] == [False, True, True]
    assert reused == [False, True, True]


# --- a matrix: each peer in both roles, TLS 1.2 and 1.3, ECDSA and RSA, ALPN, mutual TLS --------


def _check_peer_report(peer: PeerProcess, *, client_cert: bool) -> None:
    """The Java or node peer saw each version in turn, http/1.1, and (if it was the server)
    aiotls's client certificate."""
    handshakes = peer.handshakes()
    assert [h.protocol for h in handshakes] == list(VERSIONS), peer.output
    assert {h.alpn for h in handshakes} == {"http/1.1"}, peer.output
    if client_cert:
        assert all(h.peer is not None and CLIENT_CN in h.peer for h in handshakes), peer.output


def _matrix_handshake(tls: SocketTLS, version: str) -> HandshakeCompleted:
    handshake = tls.handshake()
    assert (handshake.version, handshake.alpn_protocol) == (version, "http/1.1")
    return handshake


def _matrix_aiotls_client(pki: PKI, server: PeerProcess) -> None:
    """aiotls, with a client certificate, connects to a Java or node *server* once per
    version; then the server's own report."""
    port = server.port()
    for version in VERSIONS:
        with _connect(_client_ctx(pki, version, alpn=True, client_cert=True), port) as tls:
            _matrix_handshake(tls, version)
            _client_echo(tls, _payload(ECHO), peer_closes=True)
    server.finish()
    _check_peer_report(server, client_cert=True)


def _matrix_aiotls_server(pki: PKI, key_type: str, client: PeerProcess,
                          listener: socket.socket) -> None:
    """aiotls, requiring a client certificate, serves a Java or node *client* once per
    version; then the client's own report."""
    for version in VERSIONS:
        ctx = _server_ctx(pki, version, key_type, alpn=True, require_client_cert=True)
        with SocketTLS.accept(ctx, listener, timeout=JVM_TIMEOUT) as tls:
            assert _matrix_handshake(tls, version).peer_certificates
            _server_echo(tls, ECHO)
    client.finish()
    _check_peer_report(client, client_cert=False)


@pytest.mark.parametrize("key_type", KEY_TYPES)
def test_matrix_java_server(pki: PKI, java_classes: str, tmp_path: Path, key_type: str) -> None:
    keystore = write_keystore(pki.servers[key_type][0], str(tmp_path))
    with java_server(java_classes, keystore=keystore, trust=pki.ca_file, need_client_auth=True,
                     alpn=PEER_ALPN, echo=ECHO, count=len(VERSIONS)) as java:
        _matrix_aiotls_client(pki, java)


@pytest.mark.parametrize("key_type", KEY_TYPES)
def test_matrix_java_client(pki: PKI, java_classes: str, tmp_path: Path, key_type: str,
                            listener: socket.socket) -> None:
    keystore = write_keystore(pki.client[0], str(tmp_path))
    port = listener.getsockname()[1]
    with java_client(java_classes, port, trust=pki.ca_file, keystore=keystore,
                     alpn=PEER_ALPN, echo=ECHO, count=len(VERSIONS)) as java:
        _matrix_aiotls_server(pki, key_type, java, listener)


@pytest.mark.parametrize("key_type", KEY_TYPES)
def test_matrix_node_server(pki: PKI, key_type: str) -> None:
    certfile, keyfile = pki.server(key_type)  # type: ignore[arg-type]
    with node_server(certfile=certfile, keyfile=keyfile, ca=pki.ca_file, request_cert=True,
                     alpn=PEER_ALPN, echo=ECHO, count=len(VERSIONS)) as node:
        _matrix_aiotls_client(pki, node)


@pytest.mark.parametrize("key_type", KEY_TYPES)
def test_matrix_node_client(pki: PKI, key_type: str, listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    _, client_cert, client_key = pki.client
    with node_client(port, ca=pki.ca_file, certfile=client_cert, keyfile=client_key,
                     alpn=PEER_ALPN, echo=ECHO, count=len(VERSIONS)) as node:
        _matrix_aiotls_server(pki, key_type, node, listener)


@pytest.mark.parametrize("key_type", KEY_TYPES)
def test_matrix_gnutls_server(pki: PKI, key_type: str) -> None:
    certfile, keyfile = pki.server(key_type)  # type: ignore[arg-type]
    with gnutls_serv(certfile=certfile, keyfile=keyfile, ca=pki.ca_file,
                     require_client_cert=True, alpn=PEER_ALPN) as gnutls:
        for version in VERSIONS:
            with _connect(_client_ctx(pki, version, alpn=True, client_cert=True),
                          gnutls) as tls:
                _matrix_handshake(tls, version)
                _client_echo(tls, _text_payload(ECHO), peer_closes=False)
    assert gnutls.output.count(CLIENT_CN) >= len(VERSIONS), gnutls.output


@pytest.mark.parametrize("key_type", KEY_TYPES)
@pytest.mark.parametrize("version", VERSIONS)
def test_matrix_gnutls_client(pki: PKI, key_type: str, version: str,
                              listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    request = _text_payload(ECHO)
    _, client_cert, client_key = pki.client
    with gnutls_cli(port, ca=pki.ca_file, stdin=request, certfile=client_cert,
                    keyfile=client_key, alpn=["http/1.1"]) as gnutls:
        ctx = _server_ctx(pki, version, key_type, alpn=True, require_client_cert=True)
        with SocketTLS.accept(ctx, listener) as tls:
            assert _matrix_handshake(tls, version).peer_certificates
            assert tls.recv_exactly(len(request)) == request
            tls.send(b"reply from aiotls\n")
            gnutls.wait_for_output("reply from aiotls")
            gnutls.close_stdin()
            tls.wait_closed()
            assert tls.conn.error is None
        rc, output = gnutls.wait()
    assert rc == 0, output
    assert "- Application protocol: http/1.1" in output, output
