"""Independent X25519MLKEM768 peers, run by the separate peer environment's Python.

That environment (``.pq-peers``, see tests/helpers.py ``pq_peer_python``) holds tlslite-ng
0.8.2 with kyber-py (tlslite's own hybrid groups: pure-Python ML-KEM, pure-Python X25519,
none of cryptography's OpenSSL) and curl_cffi (curl over BoringSSL, whose TLS stack and
ML-KEM are Google's).  aiotls is not importable there.

    pq_peer.py tlslite-server PORT CERT KEY   # one connection: echo a line back
    pq_peer.py tlslite-client PORT            # one connection: send a line, read it back
    pq_peer.py curl PORT CAFILE               # one HTTPS GET offering only X25519MLKEM768

Each prints ``ready`` (servers, once listening) and ``group NAME`` / ``body TEXT`` lines.
"""

from __future__ import annotations

import socket
import sys


def _tlslite_settings():  # type: ignore[no-untyped-def]
    from tlslite import HandshakeSettings
    from tlslite.utils.compat import ML_KEM_AVAILABLE

    assert ML_KEM_AVAILABLE, "kyber-py is not importable: tlslite cannot do ML-KEM"
    settings = HandshakeSettings()
    settings.minVersion = settings.maxVersion = (3, 4)
    settings.eccCurves = ["x25519mlkem768"]
    settings.keyShares = ["x25519mlkem768"]
    return settings


def _group(conn) -> str:  # type: ignore[no-untyped-def]
    from tlslite.constants import GroupName

    return str(GroupName.toStr(conn.ecdhCurve))


def tlslite_server(port: int, certfile: str, keyfile: str) -> None:
    from tlslite import TLSConnection, X509CertChain
    from tlslite.utils.keyfactory import parsePEMKey

    with open(certfile) as f:
        chain = X509CertChain()
        chain.parsePemList(f.read())
    with open(keyfile) as f:
        key = parsePEMKey(f.read(), private=True)
    listener = socket.create_server(("127.0.0.1", port))
    listener.settimeout(30)
    print("ready", flush=True)
    sock, _ = listener.accept()
    sock.settimeout(30)
    conn = TLSConnection(sock)
    conn.handshakeServer(certChain=chain, privateKey=key, settings=_tlslite_settings())
    print("group", _group(conn), flush=True)
    line = b""
    while not line.endswith(b"\n"):
        line += conn.read(max=100)
    conn.write(line)
    conn.close()
    listener.close()


def tlslite_client(port: int) -> None:
    from tlslite import TLSConnection

    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    conn = TLSConnection(sock)
    conn.handshakeClientCert(settings=_tlslite_settings(), serverName="localhost")
    print("group", _group(conn), flush=True)
    conn.write(b"ping\n")
    line = b""
    while not line.endswith(b"\n"):
        line += conn.read(max=100)
    print("body", line.decode().strip(), flush=True)
    conn.close()


def curl(port: int, cafile: str) -> None:
    from curl_cffi import CurlOpt, requests

    response = requests.get(f"https://localhost:{port}/", verify=cafile, timeout=30,
                            curl_options={CurlOpt.SSL_EC_CURVES: b"X25519MLKEM768"})
    print("status", response.status_code, flush=True)
    print("body", response.text.strip(), flush=True)


if __name__ == "__main__":
    mode, port = sys.argv[1], int(sys.argv[2])
    if mode == "tlslite-server":
        tlslite_server(port, sys.argv[3], sys.argv[4])
    elif mode == "tlslite-client":
        tlslite_client(port)
    elif mode == "curl":
        curl(port, sys.argv[3])
    else:
        raise SystemExit(f"unknown mode {mode}")
