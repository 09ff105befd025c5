"""aiotls.testing: the throwaway PKI.  Contexts built from it complete real handshakes on
loopback with verification on, for every key type and for host names and IP addresses;
the files are written where and how it says; expired and intermediate certificates work
as a verifier expects."""

from __future__ import annotations

import contextlib
import datetime
import io
import os
import re
import ssl
import stat
import threading
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

import aiotls
from aiotls import testing
from aiotls.errors import CertificateError
from aiotls.events import HandshakeCompleted
from tests.sockloop import SocketTLS, TLSFailed, listen, peer_thread

TIMEOUT = 10.0


def _serve_once(ctx: aiotls.TLSContext, listener: Listener) -> HandshakeCompleted:
    """Accept one client, complete the handshake, echo one message, close cleanly."""
    with SocketTLS.accept(ctx, listener.sock, timeout=TIMEOUT) as tls:
        hs = tls.handshake()
        tls.send(tls.recv_exactly(4))
        tls.wait_closed()
        return hs


class Listener:
    def __init__(self, host: str = "127.0.0.1") -> None:
        self.sock = listen(host, timeout=TIMEOUT)
        self.port: int = self.sock.getsockname()[1]


def _loopback(server_ctx: aiotls.TLSContext, client_ctx: aiotls.TLSContext,
              server_hostname: str, host: str = "127.0.0.1",
              ) -> tuple[HandshakeCompleted, HandshakeCompleted]:
    """A real handshake over TCP on loopback, one echoed message, close_notify both ways;
    (client's, server's) HandshakeCompleted."""
    listener = Listener(host)
    with listener.sock, peer_thread(_serve_once, server_ctx, listener) as server:
        with SocketTLS.connect(client_ctx, (host, listener.port), server_hostname=server_hostname,
                               timeout=TIMEOUT) as tls:
            client_hs = tls.handshake()
            tls.send(b"ping")
            assert tls.recv_exactly(4) == b"ping"
            tls.close()
        return client_hs, server.result(TIMEOUT)


def _refused(server_ctx: aiotls.TLSContext, client_ctx: aiotls.TLSContext,
             server_hostname: str) -> CertificateError:
    """The error a client's handshake over loopback fails with."""
    listener = Listener()
    with listener.sock, peer_thread(_serve_once, server_ctx, listener), SocketTLS.connect(
            client_ctx, ("127.0.0.1", listener.port), server_hostname=server_hostname,
            timeout=TIMEOUT) as tls, pytest.raises(TLSFailed) as failed:
        tls.handshake()
    assert isinstance(failed.value.error, CertificateError), failed.value
    return failed.value.error


def _san(cert: x509.Certificate) -> tuple[list[str], list[str]]:
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return (list(san.get_values_for_type(x509.DNSName)),
            [str(ip) for ip in san.get_values_for_type(x509.IPAddress)])


@pytest.mark.parametrize(("key_type", "description"),
                         [("ecdsa", "ECDSA-secp256r1"), ("ecdsa-p384", "ECDSA-secp384r1"),
                          ("rsa", "RSA-2048"), ("ed25519", "Ed25519")])
@pytest.mark.parametrize("server_hostname", ["localhost", "127.0.0.1"])
def test_default_pki_handshakes_on_loopback(tmp_path: Path, key_type: testing.KeyType,
                                            description: str, server_hostname: str) -> None:
    pki = testing.generate_pki(tmp_path, key_type=key_type)
    client_ctx = pki.client_context()
    assert client_ctx.verify_mode == ssl.CERT_REQUIRED and client_ctx.check_hostname
    client_hs, server_hs = _loopback(pki.server_context(), client_ctx, server_hostname)
    assert client_hs.version == server_hs.version == "TLSv1.3"
    leaf = x509.load_der_x509_certificate(client_hs.peer_certificates[0])
    assert leaf == pki.server_cert
    assert _san(leaf) == (["localhost"], ["127.0.0.1"])
    assert aiotls._crypto.key_description(leaf.public_key()) == description


def test_names_wildcard_ipv6_and_idna(tmp_path: Path) -> None:
    pki = testing.generate_pki(tmp_path, "*.example.test", "::1", "bücher.example")
    assert _san(pki.server_cert) == (["*.example.test", "xn--bcher-kva.example"], ["::1"])
    server_ctx, client_ctx = pki.server_context(), pki.client_context()
    for name in ("www.example.test", "xn--bcher-kva.example"):  # TLSConnection takes A-labels
        client_hs, _ = _loopback(server_ctx, client_ctx, name)
        assert client_hs.version == "TLSv1.3"
    if socket_has_ipv6():
        _loopback(server_ctx, client_ctx, "::1", host="::1")
    # A name the certificate does not list: the client refuses it, with the verifier's code.
    assert _refused(server_ctx, client_ctx, "example.test").code == "hostname-mismatch"


def socket_has_ipv6() -> bool:
    try:
        listen("::1").close()
    except OSError:
        return False
    return True


def test_files_are_written(tmp_path: Path) -> None:
    pki = testing.generate_pki(tmp_path, client_name="client.example.test")
    assert pki.directory == str(tmp_path)
    expected = {"ca.pem", "server-cert.pem", "server-key.pem", "client-cert.pem",
                "client-key.pem"}
    assert set(os.listdir(tmp_path)) == expected
    for path in (pki.ca_file, pki.cert_file, pki.key_file, pki.client_cert_file,
                 pki.client_key_file):
        assert path is not None and os.path.isabs(path) and os.path.dirname(path) == str(tmp_path)
    for key in (pki.key_file, pki.client_key_file):
        assert key is not None and stat.S_IMODE(os.stat(key).st_mode) == 0o600
    assert x509.load_pem_x509_certificate(Path(pki.ca_file).read_bytes()) == pki.ca_cert
    assert x509.load_pem_x509_certificates(Path(pki.cert_file).read_bytes()) == [pki.server_cert]
    assert Path(pki.key_file).read_bytes() == pki.server.key_pem
    assert pki.server.key_pem.startswith(b"-----BEGIN PRIVATE KEY-----")
    assert pki.client is not None
    client_eku = pki.client.cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(client_eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    server_eku = pki.server_cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(server_eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    lifetime = pki.server_cert.not_valid_after_utc - pki.server_cert.not_valid_before_utc
    assert datetime.timedelta(days=1) <= lifetime <= datetime.timedelta(days=1, minutes=10)


def test_temporary_pki_is_removed() -> None:
    with testing.temporary_pki() as pki:
        assert os.path.isfile(pki.ca_file) and os.path.isfile(pki.key_file)
        directory = pki.directory
    assert not os.path.exists(directory)


def test_mutual_tls(tmp_path: Path) -> None:
    pki = testing.generate_pki(tmp_path, client_name="client.example.test")
    server_ctx = pki.server_context(require_client_cert=True)
    assert server_ctx.verify_mode == ssl.CERT_REQUIRED
    _, server_hs = _loopback(server_ctx, pki.client_context(), "localhost")
    assert server_hs.peer_certificates, "the server saw no client certificate"
    assert pki.client is not None
    assert x509.load_der_x509_certificate(server_hs.peer_certificates[0]) == pki.client.cert


def test_stdlib_contexts_interoperate(tmp_path: Path) -> None:
    """The stdlib (OpenSSL) contexts trust and present the same PKI: an OpenSSL server and
    an aiotls client agree on loopback."""
    pki = testing.generate_pki(tmp_path)
    server_ctx = pki.stdlib_server_context()
    listener = Listener()
    received: list[bytes] = []

    def serve() -> None:
        sock, _ = listener.sock.accept()
        sock.settimeout(TIMEOUT)
        with server_ctx.wrap_socket(sock, server_side=True) as tls:
            data = tls.recv(4)
            received.append(data)
            tls.sendall(data)
            tls.unwrap()

    thread = threading.Thread(target=serve, daemon=True)
    with listener.sock:
        thread.start()
        with SocketTLS.connect(pki.client_context(), ("127.0.0.1", listener.port),
                               server_hostname="localhost", timeout=TIMEOUT) as tls:
            tls.handshake()
            tls.send(b"pong")
            assert tls.recv_exactly(4) == b"pong"
            tls.close()
        thread.join(TIMEOUT)
    assert not thread.is_alive() and received == [b"pong"]
    # ... and the stdlib client context verifies the aiotls server's certificate.
    stdlib_client = pki.stdlib_client_context()
    assert stdlib_client.verify_mode == ssl.CERT_REQUIRED
    assert stdlib_client.get_ca_certs()[0]["subject"] == ((("commonName", "aiotls testing CA"),),)


def test_ca_pieces_intermediate_and_configure(tmp_path: Path) -> None:
    root = testing.CA(key_type="rsa")
    inter = root.intermediate()
    assert inter.depth == 1 and inter.root() is root
    leaf = inter.issue("service.test", key_type="ed25519")
    assert leaf.chain_pem.count(b"BEGIN CERTIFICATE") == 2
    server_ctx = aiotls.TLSContext(ssl.PROTOCOL_TLS_SERVER)
    leaf.configure_cert(server_ctx)
    client_ctx = aiotls.TLSContext(ssl.PROTOCOL_TLS_CLIENT)
    inter.configure_trust(client_ctx)  # trusts the root
    client_hs, _ = _loopback(server_ctx, client_ctx, "service.test")
    assert len(client_hs.peer_certificates) == 2
    assert os.path.basename(root.write(tmp_path)) == "ca.pem"
    assert leaf.write(tmp_path, "svc") == (str(tmp_path / "svc-cert.pem"),
                                           str(tmp_path / "svc-key.pem"))


def test_expired_certificate_is_refused(tmp_path: Path) -> None:
    ca = testing.CA()
    now = datetime.datetime.now(datetime.UTC)
    expired = ca.issue("localhost", not_before=now - datetime.timedelta(days=10),
                       not_after=now - datetime.timedelta(days=3))
    server_ctx = aiotls.TLSContext(ssl.PROTOCOL_TLS_SERVER)
    expired.configure_cert(server_ctx)
    client_ctx = aiotls.TLSContext(ssl.PROTOCOL_TLS_CLIENT)
    ca.configure_trust(client_ctx)
    assert _refused(server_ctx, client_ctx, "localhost").code == "certificate-expired"


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="ed25519"):
        testing.CA(key_type="ed25519")
    with pytest.raises(ValueError, match="unknown key type"):
        testing.CA().issue("x.test", key_type="dsa")  # type: ignore[arg-type]


def test_issue_defaults_to_localhost_and_loopback() -> None:
    issued = testing.CA().issue()
    assert issued.names == testing.DEFAULT_NAMES == ("localhost", "127.0.0.1")
    assert _san(issued.cert) == (["localhost"], ["127.0.0.1"])
    assert issued.cert.subject.rfc4514_string() == "CN=localhost"


def test_the_guide_examples_run() -> None:
    """docs/testing.md's Python blocks run and print what their comments say."""
    guide = (Path(__file__).resolve().parent.parent / "docs" / "testing.md").read_text("utf-8")
    blocks = re.findall(r"```python\n(.*?)```", guide, re.DOTALL)
    promised = [["True TLSv1.3"], ["('*.example.test', '10.0.0.1', '::1', 'bücher.example')"],
                ["2"], [], []]
    assert len(blocks) == len(promised)
    for block, expected in zip(blocks, promised, strict=True):
        for line in expected:
            assert f"# {line}" in block  # the comment says it
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(block, "docs/testing.md", "exec"), {"__name__": "testing_guide"})
        assert out.getvalue().splitlines() == expected
