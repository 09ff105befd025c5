"""What ``diagnose`` examines beyond one handshake's verdict: the chain as the server sent
it (order, a missing intermediate), the suites aiotls refuses by policy that a server may
offer alone, and the server's clock.

Each function returns words for the report, or ``None`` when it found nothing; none of
them raises for a server's misbehaviour.
"""

from __future__ import annotations

import contextlib
import datetime
import email.utils
import os
import socket
import struct
import time
import urllib.request
from dataclasses import dataclass

from cryptography import x509
from cryptography.x509.oid import AuthorityInformationAccessOID

from .. import _crypto
from .._legacy import refused_suite
from ..errors import AlertDescription, AlertReceived
from ._facts import issued_by, name_text

# --- the chain the server sends ------------------------------------------------------------


@dataclass(frozen=True)
class ChainAnalysis:
    problem: str | None
    """What is wrong with the chain as sent (order, a missing intermediate), if anything."""
    code: str | None
    """``chain-order``, ``chain-incomplete``, ``chain-untrusted-root`` or
    ``certificate-unknown-ca`` (an issuer neither sent nor trusted, nothing more known)."""


def _issues(issuer: x509.Certificate, cert: x509.Certificate) -> bool:
    return issued_by(cert, issuer)[0] in ("yes", "signature-not-checked")


def ca_issuers_urls(cert: x509.Certificate) -> list[str]:
    """The caIssuers URLs of ``cert``'s authorityInformationAccess (http only)."""
    try:
        aia = cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    except (x509.ExtensionNotFound, ValueError):
        return []
    return [d.access_location.value for d in aia
            if d.access_method == AuthorityInformationAccessOID.CA_ISSUERS
            and isinstance(d.access_location, x509.UniformResourceIdentifier)
            and d.access_location.value.lower().startswith("http://")]


#: The most ``fetch_issuer`` reads: a CA certificate (or a small bundle) is far smaller.
FETCH_LIMIT = 65536


def fetch_issuer(url: str, timeout: float) -> list[x509.Certificate]:
    """The certificate(s) at a caIssuers URL (DER, PEM or a PKCS#7 bundle), as browsers
    fetch a missing intermediate; empty when anything goes wrong.  Plain HTTP only, one
    request, bounded in time and size."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as reply:
            data = reply.read(FETCH_LIMIT + 1)
    except (OSError, ValueError):
        return []
    if len(data) > FETCH_LIMIT:
        return []
    for load in (lambda d: [x509.load_der_x509_certificate(d)], x509.load_pem_x509_certificates,
                 _crypto.load_pkcs7_certificates):
        with contextlib.suppress(ValueError, TypeError):
            return list(load(data))
    return []


def analyse_chain(chain: tuple[bytes, ...], anchors: list[x509.Certificate],
                  fetch_timeout: float = 5.0) -> ChainAnalysis:
    """Judge the chain a server sent (DER, leaf first) against the trust anchors: the
    issuers followed from the leaf through what was sent (in any order), then, when the
    last one's issuer is neither sent nor trusted, fetched from its caIssuers URL."""
    certs: list[x509.Certificate] = []
    for der in chain:
        try:
            certs.append(x509.load_der_x509_certificate(der))
        except ValueError:
            return ChainAnalysis(None, None)  # (the verifier's error says it)
    if not certs:
        return ChainAnalysis(None, None)
    path = [certs[0]]
    while not _crypto.certificate_is_self_issued_and_signed(path[-1]):
        nxt = next((c for c in certs if c not in path and _issues(c, path[-1])), None)
        if nxt is None:
            break
        path.append(nxt)
    top = path[-1]

    def anchored(cert: x509.Certificate) -> bool:
        return cert in anchors or any(a.subject == cert.issuer and _issues(a, cert)
                                      for a in anchors)

    if not anchored(top) and not _crypto.certificate_is_self_issued_and_signed(top):
        issuer = name_text(top.issuer)
        for url in ca_issuers_urls(top):
            for fetched in fetch_issuer(url, fetch_timeout):
                if _issues(fetched, top) and anchored(fetched):
                    return ChainAnalysis(
                        f"missing intermediate: the server sends an incomplete chain; "
                        f"{name_text(top.subject)} is issued by {issuer}, which the server "
                        f"does not send (fetched from {url}, it links to a trusted root): add "
                        "that intermediate certificate to the server's chain file, after the "
                        "leaf", "chain-incomplete")
        if len(path) > 1:
            return ChainAnalysis(
                f"missing intermediate: the server sends an incomplete chain; the last "
                f"certificate it sends, {name_text(top.subject)}, is issued by {issuer}, "
                "which it does not send and the trust store does not hold: add the missing "
                "intermediate certificate to the server's chain file (or, if it is a private "
                "root, pass it with --cafile)", "chain-incomplete")
        return ChainAnalysis(
            f"untrusted issuer: {name_text(top.subject)} is issued by {issuer}, which the "
            "trust store does not hold and the server does not send; if it is a CA you "
            "trust, pass it with --cafile FILE; if it is an intermediate CA, the server's "
            "chain is incomplete: add it to the server's chain file",
            "certificate-unknown-ca")
    if not anchored(top):
        return ChainAnalysis(
            f"untrusted issuer: the chain ends at {name_text(top.subject)}, a root the trust "
            "store does not hold: pass it with --cafile FILE if you trust it, or give the "
            "server a certificate from a CA clients trust", "chain-untrusted-root")
    if any(i >= len(certs) or certs[i] != c for i, c in enumerate(path)):
        sent = " -> ".join(name_text(c.subject) for c in certs)
        return ChainAnalysis(
            f"the server sends its chain in the wrong order ({sent}): TLS 1.2 (RFC 5246) "
            "requires each certificate to be followed by its issuer, and strict clients "
            "refuse it; list the leaf first, then each intermediate in order",
            "chain-order")
    return ChainAnalysis(None, None)


# --- suites aiotls refuses by policy -------------------------------------------------------

#: Well-known suites aiotls never offers, with their OpenSSL names: what a server left with
#: an old configuration may offer alone.
LEGACY_SUITES: tuple[tuple[int, str], ...] = (
    (0x002F, "AES128-SHA"), (0x0035, "AES256-SHA"), (0x009C, "AES128-GCM-SHA256"),
    (0x009D, "AES256-GCM-SHA384"), (0x003C, "AES128-SHA256"), (0x003D, "AES256-SHA256"),
    (0x000A, "DES-CBC3-SHA"), (0xC012, "ECDHE-RSA-DES-CBC3-SHA"),
    (0xC008, "ECDHE-ECDSA-DES-CBC3-SHA"), (0x0016, "EDH-RSA-DES-CBC3-SHA"),
    (0x0005, "RC4-SHA"), (0x0004, "RC4-MD5"), (0xC011, "ECDHE-RSA-RC4-SHA"),
    (0xC007, "ECDHE-ECDSA-RC4-SHA"), (0x0033, "DHE-RSA-AES128-SHA"),
    (0x0039, "DHE-RSA-AES256-SHA"), (0x0067, "DHE-RSA-AES128-SHA256"),
    (0x006B, "DHE-RSA-AES256-SHA256"), (0xC023, "ECDHE-ECDSA-AES128-SHA256"),
    (0xC027, "ECDHE-RSA-AES128-SHA256"), (0xC024, "ECDHE-ECDSA-AES256-SHA384"),
    (0xC028, "ECDHE-RSA-AES256-SHA384"), (0x0041, "CAMELLIA128-SHA"),
    (0x0084, "CAMELLIA256-SHA"), (0x0009, "DES-CBC-SHA"),
)

_VERSION_NAMES = {0x0301: "TLS 1.0", 0x0302: "TLS 1.1", 0x0303: "TLS 1.2", 0x0300: "SSL 3.0"}


def _client_hello(suites: list[int], servername: str | None) -> bytes:
    """A TLS 1.2 ClientHello offering ``suites`` (with the extensions servers expect)."""
    ext = b""
    if servername:
        name = servername.encode("ascii")
        entry = b"\x00" + struct.pack("!H", len(name)) + name
        ext += struct.pack("!HHH", 0, len(entry) + 2, len(entry)) + entry
    groups = struct.pack("!HHHH", 0x001D, 0x0017, 0x0018, 0x0019)
    ext += struct.pack("!HHH", 10, len(groups) + 2, len(groups)) + groups
    ext += struct.pack("!HHB", 11, 2, 1) + b"\x00"  # ec_point_formats: uncompressed
    schemes = struct.pack("!9H", 0x0403, 0x0503, 0x0804, 0x0805, 0x0401, 0x0501,
                          0x0201, 0x0203, 0x0601)
    ext += struct.pack("!HHH", 13, len(schemes) + 2, len(schemes)) + schemes
    ext += b"\xff\x01\x00\x01\x00"  # renegotiation_info, empty
    body = (b"\x03\x03" + os.urandom(32) + b"\x00"
            + struct.pack("!H", 2 * len(suites)) + struct.pack(f"!{len(suites)}H", *suites)
            + b"\x01\x00" + struct.pack("!H", len(ext)) + ext)
    handshake = b"\x01" + len(body).to_bytes(3, "big") + body
    return b"\x16\x03\x01" + struct.pack("!H", len(handshake)) + handshake


def _receive(sock: socket.socket, size: int, deadline: float) -> bytes:
    got = b""
    while len(got) < size:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        chunk = sock.recv(size - len(got))
        if not chunk:
            break
        got += chunk
    return got


def _chosen_suite(host: str, port: int, servername: str | None, suites: list[int],
                  timeout: float) -> tuple[int, int] | None:
    """(suite, version) the server picks from ``suites``, or None if it refuses them all."""
    deadline = time.monotonic() + timeout
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(_client_hello(suites, servername))
            header = _receive(sock, 5, deadline)
            if len(header) < 5 or header[0] != 22:
                return None  # (an alert, or anything else: none of them)
            record = _receive(sock, min(struct.unpack("!H", header[3:5])[0], 16384), deadline)
    except OSError:
        return None
    if len(record) < 39 or record[0] != 2:  # ServerHello: type, length, version, random
        return None
    version = struct.unpack("!H", record[4:6])[0]
    sid_len = record[38]
    offset = 39 + sid_len
    if len(record) < offset + 2:
        return None
    return struct.unpack("!H", record[offset:offset + 2])[0], version


def refused_suites_offered(host: str, port: int, servername: str | None,
                           timeout: float) -> list[tuple[str, str]]:
    """The suites aiotls refuses by policy that the server accepts, each with the version
    it chose: asked again without each one it picks (bounded by the list)."""
    remaining = dict(LEGACY_SUITES)
    found: list[tuple[str, str]] = []
    while remaining:
        chosen = _chosen_suite(host, port, servername, list(remaining), timeout)
        if chosen is None or chosen[0] not in remaining:
            break
        found.append((remaining.pop(chosen[0]), _VERSION_NAMES.get(chosen[1], hex(chosen[1]))))
    return found


def legacy_suites_words(found: list[tuple[str, str]]) -> str:
    """The finding for a server that offers only suites aiotls refuses: what each is and
    why it is refused, in the words ``set_ciphers`` uses."""
    parts = []
    for name, version in found:
        err = refused_suite(name)
        parts.append(f"{name} at {version} ({err.what.split(': it is ', 1)[1]}: {err.cause})"
                     if err is not None else f"{name} at {version}")
    return ("no cipher suite in common: the server offers only suites current clients refuse "
            "by policy: " + "; ".join(parts) + "; enable ECDHE with AES-GCM or "
            "ChaCha20-Poly1305 (and TLS 1.3) on the server")


# --- the server's clock --------------------------------------------------------------------

def http_date(reply: bytes) -> datetime.datetime | None:
    """The time in an HTTP response's ``Date`` header (the server's clock), if any."""
    head = reply.split(b"\r\n\r\n", 1)[0].decode("latin-1", "replace")
    if not head.startswith("HTTP/"):
        return None
    for line in head.split("\r\n")[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "date":
            with contextlib.suppress(TypeError, ValueError):
                return email.utils.parsedate_to_datetime(value.strip()).astimezone(
                    datetime.UTC)
    return None


def head_request(servername: str) -> bytes:
    return (f"HEAD / HTTP/1.1\r\nHost: {servername}\r\nUser-Agent: aiotls-diagnose\r\n"
            "Connection: close\r\n\r\n").encode("ascii", "replace")


# --- alerts that name a cause themselves ---------------------------------------------------

def received_alert(err: BaseException | None) -> AlertDescription | None:
    """The alert the server sent, when ``err`` is one."""
    if isinstance(err, AlertReceived) and err.alert is not None:
        with contextlib.suppress(ValueError):
            return AlertDescription(err.alert)
    return None
