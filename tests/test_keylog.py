"""Key logging (``TLSContext.keylog_filename``, ``SSLKEYLOGFILE``) in the NSS key log format.

The lines are checked three ways: against OpenSSL's own key log for the same connection
(the stdlib's ``keylog_filename`` on the peer: the same labels, random and secrets), by
decrypting the recorded records with keys derived from the logged secrets (RFC 8446 7.3,
computed here with ``cryptography``, not aiotls), and by Wireshark's dissector
(``tshark -o tls.keylog_file:...``) over a capture of the same bytes.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import ssl
import struct
import subprocess

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand

import aiotls
from aiotls.errors import TLSConfigurationError
from tests.helpers import PKI, pump
from tests.stdlib_peer import StdlibPeer, run

TLS13_LABELS = {"CLIENT_HANDSHAKE_TRAFFIC_SECRET", "SERVER_HANDSHAKE_TRAFFIC_SECRET",
                "CLIENT_TRAFFIC_SECRET_0", "SERVER_TRAFFIC_SECRET_0", "EXPORTER_SECRET"}


def _lines(path: pathlib.Path) -> set[tuple[str, str, str]]:
    out = set()
    for line in path.read_text().splitlines():
        if line and not line.startswith("#"):
            label, random, secret = line.split()
            out.add((label, random, secret))
    return out


@pytest.mark.parametrize("version", ["TLSv1_3", "TLSv1_2"])
@pytest.mark.parametrize("aiotls_side", ["server", "client"])
def test_lines_equal_openssls(pki: PKI, tmp_path: pathlib.Path, version: str,
                              aiotls_side: str) -> None:
    """aiotls and OpenSSL (the stdlib as the peer), each logging the same connection, write
    the same lines: full handshake, then a resumed one."""
    ours, theirs = tmp_path / "aiotls.keys", tmp_path / "openssl.keys"
    if aiotls_side == "server":
        ctx = pki.server_context()
        peer_ctx = pki.stdlib_client_context()
    else:
        ctx = pki.client_context()
        peer_ctx = pki.stdlib_server_context()
    peer_ctx.maximum_version = getattr(ssl.TLSVersion, version)
    ctx.keylog_filename = str(ours)
    peer_ctx.keylog_filename = str(theirs)
    session = None
    for _ in range(2):
        conn = aiotls.TLSConnection(ctx, server_side=aiotls_side == "server",
                                    server_hostname=None if aiotls_side == "server"
                                    else "localhost", session=session)
        peer = StdlibPeer(peer_ctx, server_side=aiotls_side == "client",
                          server_hostname="localhost" if aiotls_side == "server" else None)
        run(conn, peer)
        assert conn.handshake_complete and peer.error is None
        conn.send_data(b"x")  # (TLS 1.3 tickets ride behind the first data)
        run(conn, peer)
        session = conn.session if aiotls_side == "client" else None
    mine, openssls = _lines(ours), _lines(theirs)
    assert mine == openssls
    labels = {label for label, _, _ in mine}
    assert labels == (TLS13_LABELS if version == "TLSv1_3" else {"CLIENT_RANDOM"})
    assert len(mine) == (10 if version == "TLSv1_3" else 2)  # (two connections)
    assert ours.read_text().startswith("# TLS secrets log file")
    assert ours.stat().st_mode & 0o077 == 0  # (nobody else may read the keys)


def _expand_label(secret: bytes, label: bytes, length: int) -> bytes:
    info = length.to_bytes(2, "big") + bytes((len(b"tls13 " + label),)) + b"tls13 " + label \
        + b"\x00"
    return HKDFExpand(hashes.SHA256(), length, info).derive(secret)


def _records(data: bytes) -> list[tuple[int, bytes, bytes]]:
    out, at = [], 0
    while at + 5 <= len(data):
        size = int.from_bytes(data[at + 3:at + 5], "big")
        out.append((data[at], data[at:at + 5], data[at + 5:at + 5 + size]))
        at += 5 + size
    return out


def _open(secret: bytes, seq: int, header: bytes, body: bytes) -> bytes:
    key, iv = _expand_label(secret, b"key", 16), _expand_label(secret, b"iv", 12)
    nonce = (int.from_bytes(iv, "big") ^ seq).to_bytes(12, "big")
    return AESGCM(key).decrypt(nonce, body, header)


def test_logged_secrets_decrypt_the_connection(pki: PKI, tmp_path: pathlib.Path) -> None:
    log = tmp_path / "keys"
    client_ctx = pki.client_context()
    client_ctx.set_ciphers("TLS_AES_128_GCM_SHA256")
    client_ctx.keylog_filename = log
    assert client_ctx.keylog_filename == str(log)
    client = aiotls.TLSConnection(client_ctx, server_hostname="localhost")
    server = aiotls.TLSConnection(pki.server_context(), server_side=True)
    hello = client.data_to_send()
    server.receive_data(hello)
    flight = server.data_to_send()
    client.receive_data(flight)
    server.receive_data(client.data_to_send())
    client.send_data(b"secret request")
    request = client.data_to_send()
    secrets = {label: (random, secret) for label, random, secret in _lines(log)}
    random, server_hs = secrets["SERVER_HANDSHAKE_TRAFFIC_SECRET"]
    assert random == hello[11:43].hex()  # (the ClientHello's random names the connection)
    protected = [(h, b) for kind, h, b in _records(flight) if kind == 23]
    inner = _open(bytes.fromhex(server_hs), 0, *protected[0])
    assert inner[0] == 8 and inner.rstrip(b"\x00")[-1] == 22  # EncryptedExtensions
    _, client_app = secrets["CLIENT_TRAFFIC_SECRET_0"]
    app = [(h, b) for kind, h, b in _records(request) if kind == 23]
    assert _open(bytes.fromhex(client_app), 0, *app[-1]).rstrip(b"\x00") == \
        b"secret request\x17"


def _pcap(path: pathlib.Path, segments: list[tuple[bool, bytes]]) -> None:
    """A capture of one TCP connection (127.0.0.1:50000 -> 127.0.0.1:4433) carrying
    ``segments`` (from the client?, bytes), for Wireshark."""
    def packet(from_client: bool, seq: int, ack: int, flags: int, payload: bytes) -> bytes:
        sport, dport = (50000, 4433) if from_client else (4433, 50000)
        tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, 65535, 0, 0)
        total = 20 + len(tcp) + len(payload)
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, 0, 0, 64, 6, 0,
                         bytes((127, 0, 0, 1)), bytes((127, 0, 0, 1)))
        frame = b"\x00" * 12 + b"\x08\x00" + ip + tcp + payload
        return struct.pack("<IIII", 0, 0, len(frame), len(frame)) + frame
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]
    seq = {True: 1000, False: 5000}
    out.append(packet(True, seq[True] - 1, 0, 0x02, b""))
    out.append(packet(False, seq[False] - 1, seq[True], 0x12, b""))
    out.append(packet(True, seq[True], seq[False], 0x10, b""))
    for from_client, data in segments:
        out.append(packet(from_client, seq[from_client], seq[not from_client], 0x18, data))
        seq[from_client] += len(data)
    path.write_bytes(b"".join(out))


def test_wireshark_decrypts_with_the_key_log(pki: PKI, tmp_path: pathlib.Path) -> None:
    if shutil.which("tshark") is None:  # (CI installs it: missing is a failure, not a skip)
        pytest.fail("this test needs Wireshark's tshark (apt-get install tshark)",
                    pytrace=False)
    log = tmp_path / "keys"
    client_ctx = pki.client_context()
    client_ctx.keylog_filename = log
    client = aiotls.TLSConnection(client_ctx, server_hostname="localhost")
    server = aiotls.TLSConnection(pki.server_context(), server_side=True)
    segments: list[tuple[bool, bytes]] = []
    for _ in range(6):
        if out := client.data_to_send():
            segments.append((True, out))
            server.receive_data(out)
        if out := server.data_to_send():
            segments.append((False, out))
            client.receive_data(out)
    client.send_data(b"GET /keylog-proof HTTP/1.1\r\nHost: localhost\r\n\r\n")
    segments.append((True, client.data_to_send()))
    capture = tmp_path / "capture.pcap"
    _pcap(capture, segments)
    result = subprocess.run(
        ["tshark", "-r", str(capture), "-o", f"tls.keylog_file:{log}", "-o",
         "tls.desegment_ssl_records:TRUE", "-d", "tcp.port==4433,tls", "-T", "fields",
         "-e", "tls.handshake.type", "-e", "http.request.uri"],
        capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, "HOME": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    assert "/keylog-proof" in result.stdout  # (the application data, decrypted)
    assert "8" in result.stdout.replace(",", "\t").split()  # EncryptedExtensions, decrypted


def test_without_a_key_log_nothing_is_written(pki: PKI, tmp_path: pathlib.Path) -> None:
    ctx = pki.client_context()
    assert ctx.keylog_filename is None
    client = aiotls.TLSConnection(ctx, server_hostname="localhost")
    server = aiotls.TLSConnection(pki.server_context(), server_side=True)
    pump(client, server)
    assert client.handshake_complete and list(tmp_path.iterdir()) == []


def test_keylog_filename_errors(tmp_path: pathlib.Path) -> None:
    ctx = aiotls.TLSContext(ssl.PROTOCOL_TLS_CLIENT)
    with pytest.raises(TLSConfigurationError, match="cannot open the key log file"):
        ctx.keylog_filename = str(tmp_path / "missing" / "keys")
    with pytest.raises(TypeError):
        ctx.keylog_filename = 42  # type: ignore[assignment]
    ctx.keylog_filename = str(tmp_path / "keys")
    ctx.keylog_filename = None
    assert ctx.keylog_filename is None


def test_sslkeylogfile_is_read_by_create_default_context(
        tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSLKEYLOGFILE", str(tmp_path / "env.keys"))
    assert aiotls.create_default_context().keylog_filename == str(tmp_path / "env.keys")
    assert aiotls.TLSContext(ssl.PROTOCOL_TLS_CLIENT).keylog_filename is None  # (as ssl)
    monkeypatch.delenv("SSLKEYLOGFILE")
    assert aiotls.create_default_context().keylog_filename is None


def test_an_unwritable_key_log_never_fails_a_connection(
        pki: PKI, tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture) -> None:
    ctx = pki.client_context()
    directory = tmp_path / "gone"
    directory.mkdir()
    ctx.keylog_filename = directory / "keys"
    (directory / "keys").unlink()
    directory.rmdir()  # (the file can no longer be written)
    for _ in range(2):
        client = aiotls.TLSConnection(ctx, server_hostname="localhost")
        server = aiotls.TLSConnection(pki.server_context(), server_side=True)
        pump(client, server)
        assert client.handshake_complete
    assert [r for r in caplog.records if "cannot write the key log" in r.getMessage()] \
        and len([r for r in caplog.records if "key log" in r.getMessage()]) == 1
