"""Virtual hosting and identities: SNI on the server (``sni_callback``, ``sni_contexts``,
``sni_strict``), several certificates per context, the ALPN server preference and its
mismatch alert, and the client certificate chooser.

Peers: ``openssl s_client``/``s_server`` (subprocesses on loopback, bounded waits, ended
by this test), the stdlib's ``ssl`` and aiotls itself.  Async tests run on the default
event loop and on uvloop (conftest.py), over the ssl facade (``asyncio.start_server(ssl=
ctx)``) and over ``aiotls.asyncio``.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import os
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from cryptography import x509

import aiotls
import aiotls.asyncio
from tests.certs import CA
from tests.helpers import PKI, handshake, pump, stdlib_tls_server
from tests.sockloop import OpenSSLProcess, SocketTLS, free_port, require_openssl

TIMEOUT = 10.0
#: The names the virtual-host server serves: its own (the default context), another
#: context, and a wildcard's host.
NAMES = ("one.test", "two.test", "www.three.test")
SIGALGS = {"ECDSA": ("ECDSA+SHA256", "256 bit"), "RSA-PSS": ("RSA-PSS+SHA256", "2048 bit")}
TLS_FLAGS = {"TLSv1.3": "-tls1_3", "TLSv1.2": "-tls1_2"}


@dataclass(frozen=True)
class Hosts:
    """Certificate files for each name and key type, and the CA file."""

    ca_file: str
    files: dict[tuple[str, str], tuple[str, str]]  # (name, key type) -> (cert, key)

    def context(self, name: str, key_types: tuple[str, ...] = ("rsa2048", "ecdsa-p256"),
                ) -> aiotls.TLSContext:
        ctx = aiotls.TLSContext(ssl.PROTOCOL_TLS_SERVER)
        for key_type in key_types:
            ctx.load_cert_chain(*self.files[name, key_type])
        return ctx

    def server(self) -> aiotls.TLSContext:
        """one.test's context serving two.test and *.three.test too: three names, each
        with an RSA and an ECDSA certificate."""
        ctx = self.context("one.test")
        ctx.sni_contexts = {"two.test": self.context("two.test"),
                            "*.three.test": self.context("www.three.test")}
        return ctx

    def client(self) -> aiotls.TLSContext:
        ctx = aiotls.TLSContext()
        ctx.load_verify_locations(cafile=self.ca_file)
        return ctx


@pytest.fixture(scope="module")
def hosts(pki: PKI, tmp_path_factory: pytest.TempPathFactory) -> Hosts:
    directory = str(tmp_path_factory.mktemp("vhosts"))
    files = {}
    for name in (*NAMES, "other.test"):
        for key_type in ("rsa2048", "ecdsa-p256", "ed25519"):
            issued = pki.ca.issue(name, key_type=key_type)  # type: ignore[arg-type]
            files[name, key_type] = issued.write(directory, name=f"{name}-{key_type}")
    return Hosts(pki.ca_file, files)


def subject_cn(der: bytes) -> str:
    cert = x509.load_der_x509_certificate(der)
    return str(cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value)


async def s_client(port: int, *args: str) -> str:
    """``openssl s_client`` against 127.0.0.1:port (stdin at EOF: it handshakes, prints
    and leaves); its output."""
    proc = await asyncio.create_subprocess_exec(
        require_openssl(), "s_client", "-connect", f"127.0.0.1:{port}", *args,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT)
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), TIMEOUT)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    return out.decode("utf-8", "replace")


async def _quiet(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.close()


async def start(ctx: aiotls.TLSContext, api: str) -> tuple[asyncio.Server, int]:
    """A server over ``ctx`` through the ssl facade (asyncio's own TLS given the
    context: wrap_bio) or aiotls's own adapter."""
    if api == "facade":
        server = await asyncio.start_server(_quiet, "127.0.0.1", 0, ssl=ctx)
    else:
        server = await aiotls.asyncio.start_server(_quiet, "127.0.0.1", 0, ssl=ctx)
    return server, server.sockets[0].getsockname()[1]


# --- 1. SNI and several certificates: openssl s_client against one server ----------------------


@pytest.mark.interop
@pytest.mark.timeout(120)
@pytest.mark.parametrize("version", list(TLS_FLAGS))
@pytest.mark.parametrize("api", ["facade", "aiotls"])
async def test_each_name_and_key_type_gets_its_certificate(hosts: Hosts, api: str,
                                                           version: str) -> None:
    """One server, three names (one of them a wildcard's), two key types each: every
    s_client gets the certificate of the name it sent, of the type its -sigalgs allow."""
    server, port = await start(hosts.server(), api)
    async with server:
        for name in NAMES:
            for kind, (sigalgs, key_size) in SIGALGS.items():
                out = await s_client(port, "-servername", name, "-sigalgs", sigalgs,
                                     TLS_FLAGS[version], "-CAfile", hosts.ca_file,
                                     "-verify_return_error")
                assert f"subject=CN = {name}\n" in out, out
                assert f"Peer signature type: {kind}\n" in out, out
                assert f"Server public key is {key_size}" in out, out
                assert "Verify return code: 0 (ok)" in out, out
                assert f"New, {version}" in out, out


@pytest.mark.interop
@pytest.mark.timeout(60)
@pytest.mark.parametrize("api", ["facade", "aiotls"])
async def test_strict_mode_refuses_unknown_names(hosts: Hosts, api: str) -> None:
    ctx = hosts.server()
    ctx.sni_strict = True
    server, port = await start(ctx, api)
    async with server:
        out = await s_client(port, "-servername", "nobody.test", "-CAfile", hosts.ca_file)
        if api == "aiotls":
            assert "SSL alert number 112" in out, out
        # (asyncio's and uvloop's own TLS close the connection on a failed handshake without
        # sending what the ssl object wrote, the alert included: the client sees an EOF)
        assert "subject=" not in out and "Cipher is (NONE)" in out, out
        # no name at all: the default context
        out = await s_client(port, "-noservername", "-CAfile", hosts.ca_file)
        assert "subject=CN = one.test\n" in out, out
        # the stdlib's client sees the alert as OpenSSL names it
        client = ssl.create_default_context(cafile=hosts.ca_file)
        with pytest.raises(ssl.SSLError if api == "aiotls" else (ConnectionError, ssl.SSLError),
                           match="UNRECOGNIZED_NAME" if api == "aiotls" else None):
            await asyncio.wait_for(asyncio.open_connection(
                "127.0.0.1", port, ssl=client, server_hostname="nobody.test"), TIMEOUT)
        # a known name is served as before
        reader, writer = await asyncio.wait_for(asyncio.open_connection(
            "127.0.0.1", port, ssl=client, server_hostname="www.three.test"), TIMEOUT)
        assert writer.get_extra_info("peercert")["subject"] == ((("commonName",
                                                                   "www.three.test"),),)
        writer.close()
    # without strict mode the unknown name gets the default certificate
    server, port = await start(hosts.server(), api)
    async with server:
        out = await s_client(port, "-servername", "nobody.test", "-CAfile", hosts.ca_file)
        assert "subject=CN = one.test\n" in out, out


# --- 2. the stdlib-shaped callback through the facade (asyncio and uvloop) ---------------------


@pytest.mark.interop
@pytest.mark.timeout(60)
async def test_stdlib_shaped_sni_callback_on_start_server(hosts: Hosts,
                                                          caplog: pytest.LogCaptureFixture
                                                          ) -> None:
    default = hosts.context("one.test", ("ecdsa-p256",))
    other = hosts.context("two.test", ("rsa2048",))
    other.set_alpn_protocols(["h2", "http/1.1"])
    calls: list[tuple[Any, str | None, Any]] = []

    def callback(ssl_object: Any, name: str | None, ctx: Any) -> int | None:
        calls.append((ssl_object, name, ctx))
        if name == "two.test":
            ssl_object.context = other
        elif name == "denied.test":
            return ssl.ALERT_DESCRIPTION_ACCESS_DENIED
        elif name == "boom.test":
            raise RuntimeError("no such tenant")
        return None

    default.sni_callback = callback
    seen: list[Any] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(writer.get_extra_info("ssl_object").context)
        writer.write(b"hello\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=default)
    port = server.sockets[0].getsockname()[1]
    client = ssl.create_default_context(cafile=hosts.ca_file)
    client.set_alpn_protocols(["http/1.1", "h2"])
    async with server:
        for name, cn, alpn in (("two.test", "two.test", "h2"), ("one.test", "one.test", None)):
            reader, writer = await asyncio.wait_for(asyncio.open_connection(
                "127.0.0.1", port, ssl=client, server_hostname=name), TIMEOUT)
            assert await asyncio.wait_for(reader.readline(), TIMEOUT) == b"hello\n"
            sslobj = writer.get_extra_info("ssl_object")
            assert subject_cn(sslobj.getpeercert(True)) == cn
            assert sslobj.selected_alpn_protocol() == alpn
            writer.close()
        assert seen == [other, default]
        obj, name, ctx = calls[0]
        assert isinstance(obj, ssl.SSLObject) and name == "two.test" and ctx is default
        # (the loops' own TLS ends a failed handshake without sending the alert: the client
        # sees the connection end; aiotls.asyncio sends it, see the next test)
        with pytest.raises((ConnectionError, ssl.SSLError)):
            await asyncio.wait_for(asyncio.open_connection(
                "127.0.0.1", port, ssl=client, server_hostname="denied.test"), TIMEOUT)
        with caplog.at_level(logging.ERROR, logger="aiotls.sni"), pytest.raises(
                (ConnectionError, ssl.SSLError)):
            await asyncio.wait_for(asyncio.open_connection(
                "127.0.0.1", port, ssl=client, server_hostname="boom.test"), TIMEOUT)
        assert any("no such tenant" in (r.exc_text or "") for r in caplog.records)
        # the loop and the server go on
        reader, writer = await asyncio.wait_for(asyncio.open_connection(
            "127.0.0.1", port, ssl=client, server_hostname="one.test"), TIMEOUT)
        assert await asyncio.wait_for(reader.readline(), TIMEOUT) == b"hello\n"
        writer.close()


@pytest.mark.interop
@pytest.mark.timeout(60)
async def test_sni_callback_alerts_over_aiotls_asyncio(hosts: Hosts) -> None:
    """aiotls's own adapter sends the alert: the stdlib's client names it; the callback
    gets the TLSConnection."""
    default = hosts.server()
    got: list[Any] = []

    def callback(conn: Any, name: str | None, ctx: Any) -> int | None:
        got.append(conn)
        if name == "boom.test":
            raise RuntimeError("no such tenant")
        return ssl.ALERT_DESCRIPTION_ACCESS_DENIED if name == "denied.test" else None

    default.sni_callback = callback
    server, port = await start(default, "aiotls")
    client = ssl.create_default_context(cafile=hosts.ca_file)
    async with server:
        for name, match in (("denied.test", "ACCESS_DENIED"), ("boom.test", "INTERNAL_ERROR")):
            with pytest.raises(ssl.SSLError, match=match):
                await asyncio.wait_for(asyncio.open_connection(
                    "127.0.0.1", port, ssl=client, server_hostname=name), TIMEOUT)
        reader, writer = await asyncio.wait_for(asyncio.open_connection(
            "127.0.0.1", port, ssl=client, server_hostname="two.test"), TIMEOUT)
        assert subject_cn(writer.get_extra_info("ssl_object").getpeercert(True)) == "two.test"
        writer.close()
    assert all(isinstance(c, aiotls.TLSConnection) for c in got) and len(got) == 3


def test_sni_callback_gets_the_tls_socket_of_wrap_socket(hosts: Hosts) -> None:
    default = hosts.context("one.test", ("ecdsa-p256",))
    other = hosts.context("two.test", ("ecdsa-p256",))
    got: list[Any] = []

    def callback(sock: Any, name: str | None, ctx: Any) -> None:
        got.append(sock)
        sock.context = other

    default.sni_callback = callback
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(TIMEOUT)
    port = listener.getsockname()[1]
    result: list[Any] = []

    def serve() -> None:
        raw, _ = listener.accept()
        with default.wrap_socket(raw, server_side=True) as tls:
            result.append(tls.context)
            tls.sendall(b"x")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    client = ssl.create_default_context(cafile=hosts.ca_file)
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as raw, \
            client.wrap_socket(raw, server_hostname="two.test") as tls:
        assert tls.recv(1) == b"x"
        assert subject_cn(tls.getpeercert(True)) == "two.test"
    thread.join(TIMEOUT)
    listener.close()
    from aiotls.sync import TLSSocket

    assert isinstance(got[0], TLSSocket) and result == [other]


# --- 3. the sans-IO core -----------------------------------------------------------------------


def test_mapping_rules(hosts: Hosts) -> None:
    ctx = hosts.server()
    ctx.sni_contexts = {**ctx.sni_contexts, "ONE.test.": ctx}
    assert set(ctx.sni_contexts) == {"one.test", "two.test", "*.three.test"}
    for sent, expected in (("one.test", "one.test"), ("TWO.TEST", "two.test"),
                           ("two.test.", "two.test"), ("www.three.test", "www.three.test"),
                           ("three.test", "one.test"), ("a.b.three.test", "one.test")):
        client, server = handshake(hosts.client(), ctx, sent, client_kw={})
        assert server.handshake_complete or sent in ("three.test", "a.b.three.test")
        chain = server.context._chain_der
        assert subject_cn(chain[0]) == expected, sent
    ctx.sni_strict = True
    client, server = handshake(hosts.client(), ctx, "three.test")
    assert isinstance(server.error, aiotls.PeerIncompatible)
    assert server.error.code == "unrecognized-name" and "sni_contexts" in server.error.cause
    assert client.error is not None and "unrecognized_name" in str(client.error)


def test_strict_mode_accepts_names_the_callback_places(hosts: Hosts) -> None:
    ctx = hosts.server()
    ctx.sni_strict = True
    other = hosts.context("other.test")

    def place(conn: Any, name: str | None, c: Any) -> None:
        if name == "other.test":
            conn.context = other

    ctx.sni_callback = place
    client, server = handshake(hosts.client(), ctx, "other.test")
    assert server.handshake_complete and server.context is other
    client, server = handshake(hosts.client(), ctx, "nobody.test")
    assert server.error is not None and server.error.code == "unrecognized-name"


@pytest.mark.parametrize(("bad", "match"), [
    ({"*.test": None}, "wildcard"), ({"a.*.test": None}, "wildcard"),
    ({"": None}, "not a host name"), ({"x.test": "ctx"}, "not an aiotls.TLSContext"),
])
def test_mapping_refuses_bad_entries(hosts: Hosts, bad: dict[str, Any], match: str) -> None:
    ctx = hosts.server()
    entries = {k: (v if v is not None else hosts.context("two.test")) for k, v in bad.items()}
    with pytest.raises(aiotls.TLSConfigurationError, match=match):
        ctx.sni_contexts = entries
    assert "two.test" in ctx.sni_contexts  # unchanged


def test_mapping_refuses_client_contexts_and_contexts_without_certificate(hosts: Hosts) -> None:
    ctx = hosts.server()
    with pytest.raises(aiotls.TLSConfigurationError, match="client context"):
        ctx.sni_contexts = {"x.test": aiotls.TLSContext()}
    with pytest.raises(aiotls.TLSConfigurationError, match="no certificate"):
        ctx.sni_contexts = {"x.test": aiotls.TLSContext(ssl.PROTOCOL_TLS_SERVER)}
    with pytest.raises(aiotls.TLSConfigurationError, match="server contexts"):
        hosts.client().sni_contexts = {"x.test": ctx}
    with pytest.raises(TypeError):
        ctx.sni_callback = "not callable"  # type: ignore[assignment]


def test_a_connection_context_changes_only_in_the_callback(hosts: Hosts) -> None:
    conn = aiotls.TLSConnection(hosts.server(), server_side=True)
    with pytest.raises(aiotls.TLSUsageError, match="sni_callback"):
        conn.context = hosts.context("two.test")


def test_the_switched_context_brings_its_verification(hosts: Hosts, pki: PKI) -> None:
    """two.test requires a client certificate; one.test does not."""
    ctx = hosts.server()
    strict = hosts.context("two.test")
    strict.verify_mode = ssl.CERT_REQUIRED
    strict.load_verify_locations(cafile=pki.ca_file)
    ctx.sni_contexts = {"two.test": strict}
    client, server = handshake(hosts.client(), ctx, "one.test")
    assert server.handshake_complete and server.getpeercert() is None
    client, server = handshake(hosts.client(), ctx, "two.test")
    assert not server.handshake_complete and server.error is not None
    client_ctx, _ = pki.mtls_contexts()
    client, server = handshake(client_ctx, ctx, "two.test")
    assert server.handshake_complete and server.getpeercert() is not None


@pytest.mark.parametrize(("returned", "code"), [("yes", "sni-callback-failed"),
                                            (ssl.ALERT_DESCRIPTION_HANDSHAKE_FAILURE,
                                             "sni-refused")])
def test_callback_results(hosts: Hosts, returned: Any, code: str) -> None:
    ctx = hosts.server()
    ctx.sni_callback = lambda obj, name, c: returned
    client, server = handshake(hosts.client(), ctx, "one.test")
    assert server.error is not None and server.error.code == code
    assert client.error is not None and not client.handshake_complete


def test_a_raising_callback_fails_the_handshake_with_internal_error(
        hosts: Hosts, caplog: pytest.LogCaptureFixture) -> None:
    ctx = hosts.server()

    def broken(conn: Any, name: str | None, c: Any) -> None:
        raise KeyError(name)

    ctx.sni_callback = broken
    with caplog.at_level(logging.ERROR, logger="aiotls.sni"):
        client, server = handshake(hosts.client(), ctx, "one.test")
    assert isinstance(server.error, aiotls.InternalError)
    assert server.error.code == "sni-callback-failed" and "KeyError" in server.error.what
    assert isinstance(server.error.__cause__, KeyError)
    assert isinstance(client.error, aiotls.AlertReceived) and "internal_error" in str(client.error)
    assert any(r.exc_info and r.exc_info[0] is KeyError for r in caplog.records)


def test_callback_switching_to_a_client_context_fails_clearly(hosts: Hosts) -> None:
    ctx = hosts.server()

    def wrong(conn: Any, name: str | None, c: Any) -> None:
        conn.context = hosts.client()

    ctx.sni_callback = wrong
    client, server = handshake(hosts.client(), ctx, "one.test")
    assert isinstance(server.error, aiotls.InternalError)
    assert server.error.code == "sni-bad-context" and "client context" in server.error.what


def test_sni_callback_gets_none_without_a_name(hosts: Hosts) -> None:
    ctx = hosts.server()
    names: list[str | None] = []
    ctx.sni_callback = lambda conn, name, c: names.append(name)  # type: ignore[func-returns-value]
    cctx = hosts.client()
    cctx.check_hostname = False
    handshake(cctx, ctx, None)
    handshake(hosts.client(), ctx, "127.0.0.1")  # (an IP address is never a server name)
    assert names == [None, None]


@pytest.mark.parametrize("version", list(TLS_FLAGS))
def test_tickets_resume_only_in_the_context_that_issued_them(hosts: Hosts, version: str) -> None:
    """Each virtual host seals tickets with its own keys: a ticket from two.test resumes
    there, and not when presented for another name (a full handshake instead)."""
    ctx = hosts.server()
    cctx = hosts.client()
    cctx.maximum_version = ssl.TLSVersion[version.replace(".", "_")]

    def connect(name: str, session: aiotls.TLSSession | None) -> tuple[Any, Any]:
        client, server = handshake(cctx, ctx, name, client_kw={"session": session})
        server.send_data(b"x")
        pump(client, server)
        assert client.handshake_complete and server.handshake_complete
        return client, server

    first, _ = connect("two.test", None)
    again, server = connect("two.test", first.session)
    assert server.session_reused and server.context is ctx.sni_contexts["two.test"]
    assert again.session is not None
    # (a client presenting it for another name, as aiotls's own client never does)
    state = copy.copy(first.session._state)  # type: ignore[union-attr]
    state.serverName = "one.test"
    elsewhere = aiotls.TLSSession(state, "one.test", version)
    _, server = connect("one.test", elsewhere)
    assert not server.session_reused and server.context is ctx


def test_same_key_type_replaces_the_identity(hosts: Hosts) -> None:
    ctx = hosts.context("one.test", ("rsa2048", "ecdsa-p256"))
    ctx.load_cert_chain(*hosts.files["two.test", "rsa2048"])
    assert [i.key_type for i in ctx._cert_identities] == ["RSA", "ECDSA-secp256r1"]
    assert [subject_cn(i.chain[0]) for i in ctx._cert_identities] == ["two.test", "one.test"]
    client, _ = handshake(hosts.client(), ctx, "two.test")
    assert client.handshake_complete  # the RSA one, loaded last, is tried first


# --- 4. ALPN: the server's preference, the mismatch alert and its opt-out ----------------------


@pytest.mark.interop
@pytest.mark.timeout(60)
@pytest.mark.parametrize("version", list(TLS_FLAGS))
async def test_alpn_server_preference_and_mismatch(hosts: Hosts, version: str) -> None:
    ctx = hosts.context("one.test")
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    server, port = await start(ctx, "aiotls")
    base = ("-servername", "one.test", TLS_FLAGS[version], "-CAfile", hosts.ca_file)
    async with server:
        out = await s_client(port, *base, "-alpn", "http/1.1,h2")
        assert "ALPN protocol: h2\n" in out, out
        out = await s_client(port, *base, "-alpn", "http/1.1,spdy/3")
        assert "ALPN protocol: http/1.1\n" in out, out
        out = await s_client(port, *base, "-alpn", "spdy/3")
        assert "SSL alert number 120" in out, out
        ctx.alpn_mismatch_alert = False
        out = await s_client(port, *base, "-alpn", "spdy/3")
        assert "No ALPN negotiated" in out and f"New, {version}" in out, out
    # and the stdlib's client
    client = ssl.create_default_context(cafile=hosts.ca_file)
    client.maximum_version = ssl.TLSVersion[version.replace(".", "_")]
    client.set_alpn_protocols(["http/1.1", "h2"])
    ctx.alpn_mismatch_alert = True
    server, port = await start(ctx, "facade")
    async with server:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(
            "127.0.0.1", port, ssl=client, server_hostname="one.test"), TIMEOUT)
        assert writer.get_extra_info("ssl_object").selected_alpn_protocol() == "h2"
        writer.close()


@pytest.mark.parametrize("version", list(TLS_FLAGS))
def test_alpn_in_memory(hosts: Hosts, version: str) -> None:
    sctx = hosts.context("one.test")
    sctx.set_alpn_protocols(["h2", "http/1.1"])
    cctx = hosts.client()
    cctx.maximum_version = ssl.TLSVersion[version.replace(".", "_")]
    cctx.set_alpn_protocols(["http/1.1", "h2"])
    client, server = handshake(cctx, sctx, "one.test")
    assert client.selected_alpn_protocol() == server.selected_alpn_protocol() == "h2"
    cctx.set_alpn_protocols(["spdy/3"])
    client, server = handshake(cctx, sctx, "one.test")
    assert server.error is not None and server.error.alert_number == 120
    sctx.alpn_mismatch_alert = False
    client, server = handshake(cctx, sctx, "one.test")
    assert client.handshake_complete and client.selected_alpn_protocol() is None


# --- 5. the client certificate chooser ---------------------------------------------------------


@pytest.fixture(scope="module")
def client_identities(pki: PKI, tmp_path_factory: pytest.TempPathFactory,
                      ) -> tuple[aiotls.Identity, aiotls.Identity]:
    """A client identity from the test CA and one from another CA."""
    directory = str(tmp_path_factory.mktemp("client-ids"))
    ours = aiotls.Identity.load(pki.client[1], pki.client[2])
    stranger = CA(name="another CA").issue("stranger.test", client=True, server=False)
    return ours, aiotls.Identity.load(*stranger.write(directory, name="stranger"))


def chooser_context(pki: PKI, ids: tuple[aiotls.Identity, aiotls.Identity],
                    choose: Callable[[aiotls.CertificateRequest], aiotls.Identity | None],
                    ) -> aiotls.TLSContext:
    ctx = pki.client_context()
    ctx.client_certificate_chooser = choose
    return ctx


@pytest.fixture
def s_server(pki: PKI) -> Iterator[Callable[[str], int]]:
    """``openssl s_server`` requiring a client certificate from the test CA (it sends the
    CA's name); started per call with the version flag, ended by the fixture."""
    procs: list[OpenSSLProcess] = []

    def start_server(version_flag: str) -> int:
        port = free_port()
        proc = OpenSSLProcess([require_openssl(), "s_server", "-accept", str(port),
                               "-cert", pki.server("ecdsa-p256")[0],
                               "-key", pki.server("ecdsa-p256")[1], "-CAfile", pki.ca_file,
                               "-Verify", "1", "-verify_return_error", version_flag,
                               "-naccept", "1", "-rev"])
        procs.append(proc)
        proc.wait_for_output("ACCEPT", TIMEOUT)
        return port

    yield start_server
    for proc in procs:
        proc.__exit__(None, None, None)


@pytest.mark.interop
@pytest.mark.parametrize("version", list(TLS_FLAGS))
def test_chooser_against_openssl_s_server(pki: PKI, client_identities: Any, version: str,
                                          s_server: Callable[[str], int]) -> None:
    ours, stranger = client_identities
    requests: list[aiotls.CertificateRequest] = []

    def choose(request: aiotls.CertificateRequest) -> aiotls.Identity | None:
        requests.append(request)
        return next((i for i in (stranger, ours) if request.issued_by_requested_ca(i)), None)

    ctx = chooser_context(pki, client_identities, choose)
    port = s_server(TLS_FLAGS[version])
    with SocketTLS.connect(ctx, ("127.0.0.1", port), server_hostname="localhost",
                           timeout=TIMEOUT) as tls:
        hs = tls.handshake()
        tls.send(b"ping\n")
        assert tls.recv_line() == b"gnip\n"  # (s_server -rev: it got past verifying us)
    assert hs.version == version
    (request,) = requests
    assert request.ca_names == (pki.ca.cert.subject.public_bytes(),)
    assert request.version == version and request.server_hostname == "localhost"
    assert "ecdsa_secp256r1_sha256" in request.signature_algorithms


@pytest.mark.interop
@pytest.mark.parametrize("version", list(TLS_FLAGS))
def test_chooser_answering_none_against_openssl_s_server(pki: PKI, client_identities: Any,
                                                         version: str,
                                                         s_server: Callable[[str], int]
                                                         ) -> None:
    ctx = chooser_context(pki, client_identities, lambda request: None)
    port = s_server(TLS_FLAGS[version])
    with SocketTLS.connect(ctx, ("127.0.0.1", port), server_hostname="localhost",
                           timeout=TIMEOUT) as tls, pytest.raises(AssertionError, match="alert"):
        _ping(tls)
    assert isinstance(tls.conn.error, aiotls.AlertReceived), tls.conn.error
    expected = "certificate_required" if version == "TLSv1.3" else "handshake_failure"
    assert expected in str(tls.conn.error)


def _ping(tls: SocketTLS) -> None:
    tls.handshake()
    tls.send(b"ping\n")
    tls.recv_line()


@pytest.mark.interop
@pytest.mark.parametrize("version", list(TLS_FLAGS))
def test_chooser_against_the_stdlib_server(pki: PKI, client_identities: Any,
                                           version: str) -> None:
    """The stdlib's server names no CA: the chooser takes the context's identity."""
    sctx = pki.stdlib_server_context()
    sctx.verify_mode = ssl.CERT_REQUIRED
    sctx.load_verify_locations(cafile=pki.ca_file)
    sctx.maximum_version = ssl.TLSVersion[version.replace(".", "_")]
    asked: list[aiotls.CertificateRequest] = []

    def choose(request: aiotls.CertificateRequest) -> aiotls.Identity | None:
        asked.append(request)
        return request.identities[0]

    ctx = chooser_context(pki, client_identities, choose)
    ctx.load_cert_chain(pki.client[1], pki.client[2])
    with stdlib_tls_server(sctx) as port, SocketTLS.connect(
            ctx, ("127.0.0.1", port), server_hostname="localhost", timeout=TIMEOUT) as tls:
        tls.handshake()
        tls.send(b"ping\n")
        assert tls.recv_line() == b"ping\n"
    assert asked and asked[0].ca_names == () and len(asked[0].identities) == 1


@pytest.mark.parametrize("version", list(TLS_FLAGS))
def test_chooser_in_memory(pki: PKI, client_identities: Any, version: str,
                           caplog: pytest.LogCaptureFixture) -> None:
    ours, stranger = client_identities
    _, sctx = pki.mtls_contexts()

    def pick(identity: aiotls.Identity | None) -> aiotls.TLSContext:
        ctx = chooser_context(pki, client_identities, lambda request: identity)
        ctx.maximum_version = ssl.TLSVersion[version.replace(".", "_")]
        return ctx

    client, server = handshake(pick(ours), sctx)
    assert server.handshake_complete and subject_cn(server.getpeercert(True)) \
        == "client.example.test"
    client, server = handshake(pick(stranger), sctx)
    assert isinstance(server.error, aiotls.CertificateError)
    client, server = handshake(pick(None), sctx)
    assert not server.handshake_complete and server.error is not None

    def broken(request: aiotls.CertificateRequest) -> aiotls.Identity | None:
        raise ValueError("no wallet")

    ctx = chooser_context(pki, client_identities, broken)
    ctx.maximum_version = ssl.TLSVersion[version.replace(".", "_")]
    with caplog.at_level(logging.ERROR, logger="aiotls.sni"):
        client, server = handshake(ctx, sctx)
    assert isinstance(client.error, aiotls.InternalError)
    assert client.error.code == "client-certificate-chooser-failed"
    assert isinstance(client.error.__cause__, ValueError)
    assert server.error is not None and "internal_error" in str(server.error)
    assert any("no wallet" in (r.exc_text or "") for r in caplog.records)


def test_chooser_not_called_without_a_request(pki: PKI, client_identities: Any) -> None:
    called: list[Any] = []
    ctx = chooser_context(pki, client_identities, lambda r: called.append(r))  # type: ignore[func-returns-value]
    client, server = handshake(ctx, pki.server_context())
    assert client.handshake_complete and called == []


def test_identity_load_checks_like_load_cert_chain(pki: PKI) -> None:
    with pytest.raises(aiotls.TLSConfigurationError, match="does not match"):
        aiotls.Identity.load(pki.client[1], pki.server()[1])
    ident = aiotls.Identity.load(*pki.server("rsa2048"))
    assert ident.key_type == "RSA" and "RSA" in repr(ident)


def test_options_for_the_wrong_side_are_refused(pki: PKI) -> None:
    with pytest.raises(aiotls.TLSConfigurationError, match="client contexts"):
        pki.server_context().client_certificate_chooser = lambda r: None
    with pytest.raises(aiotls.TLSConfigurationError, match="server contexts"):
        pki.client_context().sni_callback = lambda *a: None
    assert os.path.exists(pki.ca_file)


# --- 6. aiotls.anyio: asyncio, uvloop and trio -------------------------------------------------


@pytest.fixture(params=[
    pytest.param(("asyncio", {"use_uvloop": False}), id="asyncio"),
    pytest.param(("asyncio", {"use_uvloop": True}), id="uvloop"),
    pytest.param("trio", id="trio"),
])
def anyio_backend(request: pytest.FixtureRequest) -> Any:
    return request.param


@pytest.mark.anyio
async def test_anyio_stream_serves_each_name(hosts: Hosts) -> None:
    import anyio

    from aiotls.anyio import TLSAttribute, TLSStream

    server_ctx = hosts.server()
    server_ctx.sni_strict = True
    names: list[str | None] = []
    server_ctx.sni_callback = lambda conn, name, ctx: names.append(name)  # type: ignore[func-returns-value]
    for name in ("two.test", "www.three.test", "nobody.test"):
        multi = await anyio.create_tcp_listener(local_host="127.0.0.1")
        async with multi:
            listener = multi.listeners[0]
            port = listener.extra(anyio.abc.SocketAttribute.local_port)
            outcome: dict[str, Any] = {}

            async def serve(listener: Any = listener, outcome: dict[str, Any] = outcome) -> None:
                transport = await listener.accept()
                try:
                    await TLSStream.wrap(transport, server_side=True, ssl_context=server_ctx)
                except Exception as exc:
                    outcome["error"] = exc
                    await transport.aclose()

            with anyio.fail_after(TIMEOUT):
                async with anyio.create_task_group() as tg:
                    tg.start_soon(serve)
                    transport = await anyio.connect_tcp("127.0.0.1", port)
                    if name == "nobody.test":
                        with pytest.raises(aiotls.AlertReceived, match="unrecognized_name"):
                            await TLSStream.wrap(transport, hostname=name,
                                                 ssl_context=hosts.client())
                        continue
                    stream = await TLSStream.wrap(transport, hostname=name,
                                                  ssl_context=hosts.client())
                    conn = stream.extra(TLSAttribute.ssl_object)
                    assert subject_cn(conn.getpeercert(True)) == name
                    await stream.aclose()
            if name == "nobody.test":
                assert getattr(outcome["error"], "code", None) == "unrecognized-name"
    assert names == ["two.test", "www.three.test", "nobody.test"]
