"""One line of text per handshake message, alert or ChangeCipherSpec: the handshake trace's
words (see :mod:`.trace`, which feeds it and logs the lines).

:class:`Describer` reads the plaintext handshake byte stream of one connection as the
trace hands it over -- each message whole, type byte first -- and says what each carries
that matters when a handshake goes wrong: versions, cipher suites, groups, key shares,
ALPN, signature schemes, resumption, certificates (count, leaf subject and names), ticket
lifetimes.  It keeps what later messages are read by (the version and suite the
ServerHello chose, the session ID and PSK a ClientHello offered).  It never shows random
values, keys, key shares' contents, signatures, Finished values or tickets: only sizes.

Parsing is its own, over the bytes (RFC 8446 and RFC 5246 layouts), so it depends on no
parser state of tlslite's and cannot disturb the handshake; anything it cannot read is
described as ``unparsed`` by its caller.
"""

from __future__ import annotations

from typing import Any

from cryptography import x509
from tlslite.constants import (
    TLS_1_3_HRR,
    CipherSuite,
    ExtensionType,
    GroupName,
    HandshakeType,
    SignatureScheme,
)

from .._verify import certificate_names
from ..errors import AlertDescription, alert_advice
from .certcompress import DEFAULT_LIMIT, bounded_decompress

#: RFC 8446 / RFC 5246 names of the handshake messages a trace shows.
MESSAGE_NAMES: dict[int, str] = {
    0: "HelloRequest", 1: "ClientHello", 2: "ServerHello", 4: "NewSessionTicket",
    5: "EndOfEarlyData", 8: "EncryptedExtensions", 11: "Certificate",
    12: "ServerKeyExchange", 13: "CertificateRequest", 14: "ServerHelloDone",
    15: "CertificateVerify", 16: "ClientKeyExchange", 20: "Finished", 24: "KeyUpdate",
    25: "CompressedCertificate", 254: "message_hash",
}

#: RFC 8446 4.2.4 (tlslite-ng has no name for it).
_CERTIFICATE_AUTHORITIES = 47

#: TLS 1.2's ECDSA signature algorithms (the TLS 1.3 names add a curve).
_TLS12_ECDSA = {0x0203: "ecdsa_sha1", 0x0303: "ecdsa_sha224", 0x0403: "ecdsa_sha256",
                0x0503: "ecdsa_sha384", 0x0603: "ecdsa_sha512"}

_VERSIONS = {(3, 4): "TLS 1.3", (3, 3): "TLS 1.2", (3, 2): "TLS 1.1", (3, 1): "TLS 1.0",
             (3, 0): "SSL 3.0"}


class _Reader:
    """Big-endian fields off a message body; ``ValueError`` past its end."""

    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise ValueError("truncated")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def num(self, n: int) -> int:
        return int.from_bytes(self.take(n), "big")

    def vector(self, length_bytes: int) -> bytes:
        return self.take(self.num(length_bytes))

    def left(self) -> int:
        return len(self.data) - self.pos


def _items(data: bytes, size: int) -> list[int]:
    return [int.from_bytes(data[i:i + size], "big") for i in range(0, len(data) - size + 1, size)]


def _extension_block(reader: _Reader) -> dict[int, bytes]:
    """The extensions block at the reader's position (none if the message ends first)."""
    if not reader.left():
        return {}
    block = _Reader(reader.vector(2))
    found: dict[int, bytes] = {}
    while block.left():
        kind = block.num(2)
        found[kind] = block.vector(2)
    return found


def version_name(value: int) -> str:
    return _VERSIONS.get((value >> 8, value & 0xFF), f"0x{value:04X}")


def suite_name(value: int) -> str:
    return str(CipherSuite.ietfNames.get(value, f"0x{value:04X}"))


def group_name(value: int) -> str:
    return str(GroupName.toStr(value))


def scheme_name(value: int, *, tls13: bool = True) -> str:
    if not tls13 and value in _TLS12_ECDSA:  # (TLS 1.2 does not tie ECDSA to a curve)
        return _TLS12_ECDSA[value]
    return str(SignatureScheme.toRepr((value >> 8, value & 0xFF)) or f"0x{value:04X}")


def _extension_name(value: int) -> str:
    return str(ExtensionType.toStr(value))


def _alpn(data: bytes) -> list[str]:
    names = _Reader(_Reader(data).vector(2))
    out = []
    while names.left():
        out.append(names.vector(1).decode("ascii", "replace"))
    return out


def _sni(data: bytes) -> str | None:
    names = _Reader(_Reader(data).vector(2))
    while names.left():
        kind, name = names.num(1), names.vector(2)
        if kind == 0:
            return name.decode("ascii", "replace")
    return None


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def alert_text(level: int, description: int, *, sent: bool) -> str:
    """``fatal bad_certificate: <what it means>`` (the meaning for the side that sends or
    receives it, from the error catalogue: :func:`aiotls.errors.alert_advice`)."""
    name = AlertDescription.name_of(description)
    level_name = {1: "warning", 2: "fatal"}.get(level, f"level {level}")
    if description == AlertDescription.close_notify:
        meaning = "this side closes the connection" if sent \
            else "the peer closes the connection"
    else:
        meaning = alert_advice(description, sent=sent)[0]
    return f"{level_name} {name}: {meaning}"


class Describer:
    """The words for one connection's handshake messages, in the order they pass."""

    def __init__(self) -> None:
        #: The version the ServerHello chose ((3, 4) for TLS 1.3), once seen.
        self.version: tuple[int, int] | None = None
        self.suite: int | None = None
        self.resumed = False
        self.group: int | None = None
        self._client_session_id = b""
        self._psk_offered = False

    @property
    def tls13(self) -> bool:
        return self.version == (3, 4)

    def message(self, data: bytes) -> tuple[str, str]:
        """(name, details) of one whole handshake message (type, length, body)."""
        kind = data[0]
        name = MESSAGE_NAMES.get(kind, f"handshake message {kind}")
        body = _Reader(data[4:])
        describe = _DESCRIBE.get(kind)
        if describe is None:
            return name, _plural(len(data) - 4, "byte")
        if kind == HandshakeType.server_hello and data[6:38] == TLS_1_3_HRR:
            return "HelloRetryRequest", self._hello_retry_request(body)
        return name, describe(self, body)

    # --- hellos --------------------------------------------------------------------------

    def _client_hello(self, r: _Reader) -> str:
        legacy = r.num(2)
        r.take(32)
        session_id = r.vector(1)
        self._client_session_id = session_id
        suites = _items(r.vector(2), 2)
        r.vector(1)
        ext = _extension_block(r)
        parts = []
        if ExtensionType.supported_versions in ext:
            offered = _items(_Reader(ext[ExtensionType.supported_versions]).vector(1), 2)
            parts.append(" ".join(version_name(v) for v in offered if v & 0x0F0F != 0x0A0A)
                         + f" (legacy {version_name(legacy)})")
        else:
            parts.append(version_name(legacy))
        sni = _sni(ext[ExtensionType.server_name]) if ExtensionType.server_name in ext else None
        parts.append(f"SNI {sni}" if sni else "no SNI")
        named = [suite_name(s) for s in suites if s & 0x0F0F != 0x0A0A]
        parts.append(f"{_plural(len(named), 'suite')} ({', '.join(named)})")
        if ExtensionType.supported_groups in ext:
            groups = _items(_Reader(ext[ExtensionType.supported_groups]).vector(2), 2)
            parts.append("groups " + " ".join(group_name(g) for g in groups))
        if ExtensionType.key_share in ext:
            shares = _Reader(_Reader(ext[ExtensionType.key_share]).vector(2))
            shared = []
            while shares.left():
                shared.append(group_name(shares.num(2)))
                shares.vector(2)
            parts.append("key shares " + (" ".join(shared) or "none"))
        if ExtensionType.alpn in ext:
            parts.append("ALPN " + " ".join(_alpn(ext[ExtensionType.alpn])))
        if ExtensionType.signature_algorithms in ext:
            schemes = _items(_Reader(ext[ExtensionType.signature_algorithms]).vector(2), 2)
            parts.append("signature schemes " + " ".join(scheme_name(s) for s in schemes))
        parts.append("extended master secret"
                     if ExtensionType.extended_master_secret in ext else "no extended master secret")
        offers = []
        if ExtensionType.pre_shared_key in ext:
            self._psk_offered = True
            offers.append("TLS 1.3 ticket (PSK)")
        if ext.get(ExtensionType.session_ticket):
            offers.append("TLS 1.2 ticket")
        if session_id and ExtensionType.supported_versions not in ext:
            offers.append("session ID")
        if ExtensionType.early_data in ext:
            offers.append("early data")
        parts.append("psk/ticket offered: " + (", ".join(offers) if offers else "no"))
        return ", ".join(parts)

    def _server_hello(self, r: _Reader) -> str:
        legacy = r.num(2)
        r.take(32)
        session_id = r.vector(1)
        self.suite = r.num(2)
        r.num(1)
        ext = _extension_block(r)
        chosen = legacy
        if ExtensionType.supported_versions in ext:
            chosen = _Reader(ext[ExtensionType.supported_versions]).num(2)
        self.version = (chosen >> 8, chosen & 0xFF)
        parts = [version_name(chosen), suite_name(self.suite)]
        if self.tls13:
            if ExtensionType.key_share in ext:
                self.group = _Reader(ext[ExtensionType.key_share]).num(2)
                parts.append(f"key share {group_name(self.group)}")
            self.resumed = ExtensionType.pre_shared_key in ext
        else:
            self.resumed = bool(session_id) and session_id == self._client_session_id
            if ExtensionType.alpn in ext:
                parts.append("ALPN " + " ".join(_alpn(ext[ExtensionType.alpn])))
            parts.append("extended master secret" if ExtensionType.extended_master_secret in ext
                         else "no extended master secret")
        parts.append("resumed: " + ("yes" if self.resumed else "no"))
        return ", ".join(parts)

    def _hello_retry_request(self, r: _Reader) -> str:
        r.num(2)
        r.take(32)
        r.vector(1)
        self.suite = r.num(2)
        r.num(1)
        ext = _extension_block(r)
        self.version = (3, 4)
        parts = ["TLS 1.3", suite_name(self.suite)]
        if ExtensionType.key_share in ext:
            parts.append(f"asks for a key share for {group_name(_Reader(ext[ExtensionType.key_share]).num(2))}")
        if ExtensionType.cookie in ext:
            parts.append("cookie")
        return ", ".join(parts)

    # --- the server's other messages ---------------------------------------------------

    def _encrypted_extensions(self, r: _Reader) -> str:
        ext = _extension_block(r)
        parts = ["ALPN " + " ".join(_alpn(ext[ExtensionType.alpn]))
                 if ExtensionType.alpn in ext else "no ALPN"]
        others = [_extension_name(k) for k in ext if k != ExtensionType.alpn]
        if others:
            parts.append("extensions " + " ".join(others))
        return ", ".join(parts)

    def _certificate_request(self, r: _Reader) -> str:
        if self.tls13:
            r.vector(1)
            ext = _extension_block(r)
            schemes = _items(_Reader(ext[ExtensionType.signature_algorithms]).vector(2), 2) \
                if ExtensionType.signature_algorithms in ext else []
            names = ext.get(_CERTIFICATE_AUTHORITIES)
            authorities = _Reader(_Reader(names).vector(2)) if names else None
        else:
            r.vector(1)
            schemes = _items(r.vector(2), 2)
            authorities = _Reader(r.vector(2))
        count = 0
        while authorities is not None and authorities.left():
            authorities.vector(2)
            count += 1
        return (f"{_plural(count, 'CA name')}, signature schemes "
                + (" ".join(scheme_name(s, tls13=self.tls13) for s in schemes) or "none"))

    def _certificate_message(self, r: _Reader) -> str:
        if self.tls13:
            r.vector(1)
        entries = _Reader(r.vector(3))
        chain = []
        while entries.left():
            chain.append(entries.vector(3))
            if self.tls13:
                entries.vector(2)
        if not chain:
            return "empty (no certificate)"
        return f"{_plural(len(chain), 'certificate')}, leaf {_leaf(chain[0])}"

    def _compressed_certificate(self, r: _Reader) -> str:
        code = r.num(2)
        algorithm = {1: "zlib", 2: "brotli", 3: "zstd"}.get(code, "unknown algorithm")
        size = r.num(3)
        data = r.vector(3)
        try:  # (within the same bounds as the handshake's own reading: certcompress)
            inner = bounded_decompress(code, data, size, DEFAULT_LIMIT)
        except Exception:
            return f"{algorithm}, {len(data)} bytes for {size}: does not decompress"
        return f"{algorithm}, {len(data)} bytes for {size}: " \
            + self._certificate_message(_Reader(inner))

    def _certificate_verify(self, r: _Reader) -> str:
        return f"signature scheme {scheme_name(r.num(2), tls13=self.tls13)}"

    def _server_key_exchange(self, r: _Reader) -> str:
        name = suite_name(self.suite or 0)
        if "ECDHE" in name:
            r.num(1)
            self.group = r.num(2)
            r.vector(1)
            text = f"ECDHE group {group_name(self.group)}"
        elif "DHE" in name:
            prime = r.vector(2)
            r.vector(2)
            r.vector(2)
            bits = len(prime.lstrip(bytes(1))) * 8
            text = f"DHE, {bits}-bit prime"
        else:
            return _plural(r.left(), "byte")
        if r.left() >= 2:
            text += f", signed with {scheme_name(r.num(2), tls13=False)}"
        return text

    def _client_key_exchange(self, r: _Reader) -> str:
        return f"public key {_plural(r.left(), 'byte')}"

    def _finished_message(self, r: _Reader) -> str:
        return f"verify_data {_plural(r.left(), 'byte')}"

    def _new_session_ticket(self, r: _Reader) -> str:
        lifetime = r.num(4)
        if not self.tls13:
            return f"lifetime hint {lifetime} s, ticket {_plural(len(r.vector(2)), 'byte')}"
        r.num(4)
        r.vector(1)
        ticket = r.vector(2)
        ext = _extension_block(r)
        early = "early data allowed" if ExtensionType.early_data in ext else "no early data"
        return f"lifetime {lifetime} s, ticket {_plural(len(ticket), 'byte')}, {early}"

    def _key_update(self, r: _Reader) -> str:
        return "update_requested" if r.num(1) else "update_not_requested"

    def _empty(self, r: _Reader) -> str:
        return ""


def _leaf(der: bytes) -> str:
    try:
        cert = x509.load_der_x509_certificate(der)
    except ValueError:
        return "(not a parsable X.509 certificate)"
    names = certificate_names(cert)
    return (cert.subject.rfc4514_string() or "(empty subject)") + (
        f", SAN {' '.join(names)}" if names else ", no SAN")


_DESCRIBE: dict[int, Any] = {
    HandshakeType.client_hello: Describer._client_hello,
    HandshakeType.server_hello: Describer._server_hello,
    HandshakeType.encrypted_extensions: Describer._encrypted_extensions,
    HandshakeType.certificate_request: Describer._certificate_request,
    HandshakeType.certificate: Describer._certificate_message,
    HandshakeType.compressed_certificate: Describer._compressed_certificate,
    HandshakeType.certificate_verify: Describer._certificate_verify,
    HandshakeType.server_key_exchange: Describer._server_key_exchange,
    HandshakeType.server_hello_done: Describer._empty,
    HandshakeType.client_key_exchange: Describer._client_key_exchange,
    HandshakeType.finished: Describer._finished_message,
    HandshakeType.new_session_ticket: Describer._new_session_ticket,
    HandshakeType.key_update: Describer._key_update,
    HandshakeType.hello_request: Describer._empty,
    HandshakeType.end_of_early_data: Describer._empty,
}
